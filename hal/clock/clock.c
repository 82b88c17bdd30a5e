/* clock.c — wall, monotonic and boot time; the evidence that the wall clock
 * can be believed (server anchor, floor, step detection against the boot
 * clock: see clock.h); and the monotonic deadlines every wait uses. The sim
 * clock is clock_sim.c. */
#include "clock.h"

#include <errno.h>
#include <time.h>

#include "log.h"
#include "timeutil.h"

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

static int64_t sys_boot_ms(yn_clock *c)
{
    (void)c;
    return ts_ms(CLOCK_BOOTTIME);
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
    .boot_ms = sys_boot_ms,
};

void yn_clock_init(yn_clock *c, const yn_clock_ops *ops)
{
    *c = (yn_clock){.ops = ops,
                    .sim_wall_ms = 1767225600000LL /* 2026-01-01Z */,
                    .sim_mono_ms = 1000,
                    .sim_boot_ms = 1000};
}

int64_t yn_clock_mono_ms(yn_clock *c)
{
    return c->ops->monotonic_ms(c);
}

int64_t yn_clock_boot_ms(yn_clock *c)
{
    return c->ops->boot_ms ? c->ops->boot_ms(c) : c->ops->monotonic_ms(c);
}

static int64_t abs64(int64_t v)
{
    return v < 0 ? -v : v;
}

static void anchor(yn_clock *c, int64_t utc_ms, int64_t boot_ms)
{
    c->anchored = true;
    c->anchor_utc_ms = utc_ms;
    c->anchor_boot_ms = boot_ms;
}

void yn_clock_read(yn_clock *c, yn_clock_reading *out)
{
    int64_t system = c->ops->wall_ms(c) + c->offset_ms, boot = yn_clock_boot_ms(c);
    out->system_ms = system;
    if (!c->anchored) {
        if (c->floor_utc_ms > 0 && system < c->floor_utc_ms - YN_CLOCK_FLOOR_SLACK_MS) {
            out->utc_ms = c->floor_utc_ms;
            out->trusted = false;
            out->state = YN_CLOCK_UNKNOWN;
            return;
        }
        anchor(c, system, boot);
        yn_info("clock: anchored on the system clock (%lld ms UTC)%s", (long long)system,
                c->trusted ? ", corrected from the server" : ", not verified by the server yet");
    }
    int64_t elapsed = boot - c->anchor_boot_ms;
    int64_t estimate = c->anchor_utc_ms + elapsed;
    int64_t drift = system - estimate;
    bool in_step = abs64(drift) <= YN_CLOCK_STEP_MS + abs64(elapsed) / 1000;
    if (in_step != !c->stepped) {
        c->stepped = !in_step;
        if (c->stepped)
            yn_warn("clock: the system clock stepped by %lld ms (boot clock says %lld ms UTC, "
                    "system clock %lld): using the estimate, records marked untrusted until "
                    "the clocks agree or the server's time is learnt",
                    (long long)drift, (long long)estimate, (long long)system);
        else
            yn_info("clock: the system clock agrees with the estimate again (%lld ms apart)",
                    (long long)drift);
    }
    int64_t utc = c->stepped ? estimate : system;
    if (!c->stepped && elapsed >= YN_CLOCK_REANCHOR_MS)
        anchor(c, system, boot); /* follow the system clock's slew */
    out->trusted = c->trusted && !c->stepped;
    out->state = c->stepped ? YN_CLOCK_ESTIMATED : c->trusted ? YN_CLOCK_SERVER : YN_CLOCK_LOCAL;
    if (!out->trusted && utc < c->floor_utc_ms)
        utc = c->floor_utc_ms; /* dates never run back below the ledger's last record */
    out->utc_ms = utc;
}

int64_t yn_clock_utc_ms(yn_clock *c)
{
    yn_clock_reading r;
    yn_clock_read(c, &r);
    return r.utc_ms;
}

int64_t yn_clock_utc_s(yn_clock *c)
{
    int64_t ms = yn_clock_utc_ms(c);
    return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

void yn_clock_sleep_ms(yn_clock *c, int ms)
{
    if (ms > 0)
        c->ops->sleep_ms(c, ms);
}

int64_t yn_clock_device_ms(const yn_clock *c)
{
    (void)c;
    return yn_time_mono_ms();
}

void yn_clock_device_sleep_ms(const yn_clock *c, int ms)
{
    (void)c;
    if (ms > 0)
        yn_time_sleep_ms(ms);
}

int yn_clock_correct(yn_clock *c, int64_t server_utc_ms, int64_t max_step_ms)
{
    yn_clock_reading now;
    yn_clock_read(c, &now);
    int64_t step = server_utc_ms - (now.state == YN_CLOCK_UNKNOWN ? now.system_ms : now.utc_ms);
    if (max_step_ms >= 0 && abs64(step) > max_step_ms) {
        yn_warn("clock: server time differs by %lld ms, more than the %lld ms allowed; "
                "keeping local time, marked untrusted",
                (long long)step, (long long)max_step_ms);
        c->trusted = false;
        return YN_EREFUSED;
    }
    if (!c->trusted || c->stepped || abs64(step) > YN_CLOCK_STEP_MS)
        yn_info("clock: set from the server's time (%lld ms from %s)", (long long)step,
                now.state == YN_CLOCK_ESTIMATED ? "the estimate" : "the system clock");
    c->offset_ms = server_utc_ms - c->ops->wall_ms(c);
    c->trusted = true;
    c->stepped = false;
    anchor(c, server_utc_ms, yn_clock_boot_ms(c));
    return YN_OK;
}

void yn_clock_set_floor(yn_clock *c, int64_t floor_utc_ms)
{
    c->floor_utc_ms = floor_utc_ms;
    if (c->anchored && !c->trusted && c->anchor_utc_ms < floor_utc_ms - YN_CLOCK_FLOOR_SLACK_MS) {
        c->anchored = false; /* anchored on a clock the ledger proves wrong */
        c->stepped = false;
    }
}

void yn_clock_resume(yn_clock *c, int64_t anchor_boot_ms, int64_t anchor_utc_ms, int64_t offset_ms,
                     bool server)
{
    c->offset_ms = offset_ms;
    c->trusted = server;
    c->stepped = false;
    anchor(c, anchor_utc_ms, anchor_boot_ms);
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
