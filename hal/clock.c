/* clock.c — wall and monotonic time, server correction, the sim clock, and
 * the monotonic deadlines every wait uses. */
#include "clock.h"

#include <errno.h>
#include <time.h>

#include "log.h"

static int64_t ts_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t sys_wall_ms(yn_clock *c)
{
    (void)c;
    return ts_ms(CLOCK_REALTIME);
}

static int64_t sys_mono_ms(yn_clock *c)
{
    (void)c;
    return ts_ms(CLOCK_MONOTONIC);
}

static void sys_sleep_ms(yn_clock *c, int ms)
{
    (void)c;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

const yn_clock_ops yn_clock_system_ops = {
    .name = "system",
    .wall_ms = sys_wall_ms,
    .monotonic_ms = sys_mono_ms,
    .sleep_ms = sys_sleep_ms,
};

static int64_t sim_wall_ms(yn_clock *c)
{
    return c->sim_wall_ms;
}

static int64_t sim_mono_ms(yn_clock *c)
{
    return c->sim_mono_ms;
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
};

void yn_clock_init(yn_clock *c, const yn_clock_ops *ops)
{
    *c = (yn_clock){
        .ops = ops, .sim_wall_ms = 1767225600000LL /* 2026-01-01Z */, .sim_mono_ms = 1000};
}

int64_t yn_clock_utc_ms(yn_clock *c)
{
    return c->ops->wall_ms(c) + c->offset_ms;
}

int64_t yn_clock_utc_s(yn_clock *c)
{
    int64_t ms = yn_clock_utc_ms(c);
    return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

int64_t yn_clock_mono_ms(yn_clock *c)
{
    return c->ops->monotonic_ms(c);
}

void yn_clock_sleep_ms(yn_clock *c, int ms)
{
    if (ms > 0)
        c->ops->sleep_ms(c, ms);
}

int yn_clock_correct(yn_clock *c, int64_t server_utc_ms, int64_t max_step_ms)
{
    int64_t step = server_utc_ms - yn_clock_utc_ms(c);
    int64_t mag = step < 0 ? -step : step;
    if (max_step_ms >= 0 && mag > max_step_ms) {
        yn_warn("clock: server time differs by %lld ms, more than the %lld ms allowed; "
                "keeping local time, marked untrusted",
                (long long)step, (long long)max_step_ms);
        c->trusted = false;
        return YN_EREFUSED;
    }
    c->offset_ms += step;
    c->trusted = true;
    return YN_OK;
}

void yn_clock_sim_set(yn_clock *c, int64_t utc_ms)
{
    c->sim_wall_ms = utc_ms;
}

void yn_clock_sim_advance(yn_clock *c, int64_t ms)
{
    c->sim_wall_ms += ms;
    c->sim_mono_ms += ms;
}

void yn_clock_sim_jump_wall(yn_clock *c, int64_t ms)
{
    c->sim_wall_ms += ms;
}

int64_t yn_clock_mono_now_ms(void)
{
    return ts_ms(CLOCK_MONOTONIC);
}

int yn_clock_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return YN_ENOMEM;
    int rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 && pthread_cond_init(cv, &ca) == 0
                 ? YN_OK
                 : YN_ENOMEM;
    pthread_condattr_destroy(&ca);
    return rc;
}

struct timespec yn_clock_mono_deadline(int64_t at_ms)
{
    struct timespec ts = {.tv_sec = (time_t)(at_ms / 1000),
                          .tv_nsec = (long)(at_ms % 1000) * 1000000L};
    return ts;
}
