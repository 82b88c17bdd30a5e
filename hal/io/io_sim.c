/* io_sim.c — simulated outputs: remembers what was switched, for tests. */
#include <stdio.h>
#include <stdlib.h>

#include "io.h"
#include "io_sim.h"

struct sim_io {
    yn_io_sim_state st;
    int fail; /* status every call returns, YN_OK normally */
};

static int sim_open(yn_io *dev, const yn_io_conf *cfg)
{
    (void)cfg;
    dev->priv = calloc(1, sizeof(struct sim_io));
    return dev->priv ? YN_OK : YN_ENOMEM;
}

static void sim_close(yn_io *dev)
{
    free(dev->priv);
    dev->priv = NULL;
}

static int sim_set(yn_io *dev, enum yn_output out, bool on)
{
    struct sim_io *s = dev->priv;
    if (s->fail != YN_OK)
        return s->fail;
    s->st.on[out] = on;
    return YN_OK;
}

static int sim_pulse(yn_io *dev, enum yn_output out, int ms)
{
    struct sim_io *s = dev->priv;
    if (s->fail != YN_OK)
        return s->fail;
    s->st.pulses[out]++;
    s->st.last_pulse_ms[out] = ms;
    return YN_OK;
}

static int sim_describe(yn_io *dev, char *buf, size_t len)
{
    (void)dev;
    snprintf(buf, len, "simulated outputs");
    return YN_OK;
}

const yn_io_ops yn_io_sim_ops = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .set = sim_set,
    .pulse = sim_pulse,
    .describe = sim_describe,
};

const yn_io_sim_state *yn_io_sim_state_of(const yn_io *dev)
{
    return &((const struct sim_io *)dev->priv)->st;
}

void yn_io_sim_fail(yn_io *dev, int status)
{
    ((struct sim_io *)dev->priv)->fail = status;
}
