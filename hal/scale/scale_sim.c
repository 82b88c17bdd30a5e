/* scale_sim.c — a simulated scale: tests set the weight it reads. */
#include <stdio.h>
#include <stdlib.h>

#include "scale.h"
#include "scale_sim.h"

struct sim_scale {
    yn_weight now;  /* what the platform holds */
    int32_t tare_g; /* subtracted after a tare */
    int fail;       /* status every call returns, YN_OK normally */
};

static int sim_open(yn_scale *dev, const yn_scale_conf *cfg)
{
    (void)cfg;
    dev->priv = calloc(1, sizeof(struct sim_scale));
    return dev->priv ? YN_OK : YN_ENOMEM;
}

static void sim_close(yn_scale *dev)
{
    free(dev->priv);
    dev->priv = NULL;
}

static int sim_read(yn_scale *dev, yn_weight *w)
{
    struct sim_scale *s = dev->priv;
    if (s->fail != YN_OK)
        return s->fail;
    *w = s->now;
    w->net_g -= s->tare_g;
    return YN_OK;
}

static int sim_tare(yn_scale *dev)
{
    struct sim_scale *s = dev->priv;
    if (s->fail != YN_OK)
        return s->fail;
    s->tare_g = s->now.net_g;
    return YN_OK;
}

static int sim_zero(yn_scale *dev)
{
    struct sim_scale *s = dev->priv;
    if (s->fail != YN_OK)
        return s->fail;
    s->tare_g = 0;
    s->now.net_g = 0;
    return YN_OK;
}

static int sim_describe(yn_scale *dev, char *buf, size_t len)
{
    (void)dev;
    snprintf(buf, len, "simulated scale");
    return YN_OK;
}

const yn_scale_ops yn_scale_sim_ops = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .read = sim_read,
    .tare = sim_tare,
    .zero = sim_zero,
    .describe = sim_describe,
};

void yn_scale_sim_set(yn_scale *dev, int32_t net_g, bool stable, bool overload)
{
    struct sim_scale *s = dev->priv;
    s->now = (yn_weight){.net_g = net_g, .stable = stable, .overload = overload};
}

void yn_scale_sim_fail(yn_scale *dev, int status)
{
    ((struct sim_scale *)dev->priv)->fail = status;
}
