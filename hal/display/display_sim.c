/* display_sim.c — a display that keeps the last screen for tests. */
#include <stdio.h>
#include <stdlib.h>

#include "display.h"
#include "display_sim.h"

struct sim_display {
    yn_screen last;
    int shown; /* screens shown since open */
};

static int sim_open(yn_display *dev, const yn_display_conf *cfg)
{
    (void)cfg;
    dev->priv = calloc(1, sizeof(struct sim_display));
    return dev->priv ? YN_OK : YN_ENOMEM;
}

static void sim_close(yn_display *dev)
{
    free(dev->priv);
    dev->priv = NULL;
}

static int sim_show(yn_display *dev, const yn_screen *screen)
{
    struct sim_display *s = dev->priv;
    s->last = *screen;
    s->shown++;
    return YN_OK;
}

const yn_display_ops yn_display_sim_ops = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .show = sim_show,
};

const yn_screen *yn_display_sim_last(const yn_display *dev)
{
    return &((const struct sim_display *)dev->priv)->last;
}

int yn_display_sim_count(const yn_display *dev)
{
    return ((const struct sim_display *)dev->priv)->shown;
}
