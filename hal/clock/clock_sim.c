/* clock_sim.c — the simulated clock: time moves only when a test says so
 * (a sleep advances it). */
#include "clock_sim.h"

static int64_t sim_wall_ms(yn_clock *c)
{
    return c->sim_wall_ms;
}

static int64_t sim_mono_ms(yn_clock *c)
{
    return c->sim_mono_ms;
}

static int64_t sim_boot_ms(yn_clock *c)
{
    return c->sim_boot_ms;
}

static void sim_sleep_ms(yn_clock *c, int ms)
{
    yn_clock_sim_advance(c, ms);
}

const yn_clock_ops yn_clock_sim_ops = {
    .name = "sim",
    .wall_ms = sim_wall_ms,
    .monotonic_ms = sim_mono_ms,
    .sleep_ms = sim_sleep_ms,
    .boot_ms = sim_boot_ms,
};

void yn_clock_sim_set(yn_clock *c, int64_t utc_ms)
{
    c->sim_wall_ms = utc_ms;
    c->anchored = c->stepped = false;
}

void yn_clock_sim_advance(yn_clock *c, int64_t ms)
{
    c->sim_wall_ms += ms;
    c->sim_mono_ms += ms;
    c->sim_boot_ms += ms;
}

void yn_clock_sim_jump_wall(yn_clock *c, int64_t ms)
{
    c->sim_wall_ms += ms;
}
