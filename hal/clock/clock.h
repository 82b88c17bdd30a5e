/* clock.h — time. Wall clock (UTC) for records, monotonic for ordering and
 * debounce, and the boot clock (CLOCK_BOOTTIME: never steps, counts suspend)
 * to tell whether the wall clock can be believed.
 *
 * The wall clock is never trusted without evidence (firmware/ledger/LEDGER.md,
 * "Clock"). Evidence is: the district server's time (yn_clock_correct), and a
 * floor — no time can be earlier than the ledger's last committed record or
 * the last anchor it kept (yn_clock_set_floor). A reading compares the system
 * clock with its last good anchor plus the boot time elapsed since: a step
 * (back to 1970, a year ahead, an hour during lunch) is detected, and from then
 * on the time is that estimate, marked untrusted, until the system clock agrees
 * with it again or the server re-anchors it. A system clock below the floor
 * with nothing to anchor on is YN_CLOCK_UNKNOWN: the caller must not guess a
 * date from it. The sim clock can be set, advanced and jumped by tests. */
#ifndef YN_HAL_CLOCK_H
#define YN_HAL_CLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "status.h"

typedef struct yn_clock yn_clock;

typedef struct yn_clock_ops {
    const char *name;
    int64_t (*wall_ms)(yn_clock *c);      /* UTC milliseconds, before correction */
    int64_t (*monotonic_ms)(yn_clock *c); /* never goes back */
    void (*sleep_ms)(yn_clock *c, int ms);
    /* Optional: CLOCK_BOOTTIME in ms (never steps, counts suspend); NULL =
     * monotonic_ms. */
    int64_t (*boot_ms)(yn_clock *c);
} yn_clock_ops;

/* Where a reading's time comes from. */
enum yn_clock_state {
    YN_CLOCK_SERVER,    /* the system clock, agreeing with the server's time of this boot */
    YN_CLOCK_LOCAL,     /* the system clock, plausible (not below the floor), unverified */
    YN_CLOCK_ESTIMATED, /* the system clock stepped: the last good anchor + boot time since */
    YN_CLOCK_UNKNOWN,   /* no evidence: the system clock is below the floor, nothing anchored */
};

typedef struct yn_clock_reading {
    int64_t utc_ms;            /* the time to use (UNKNOWN: the floor, not to be used for dates) */
    int64_t system_ms;         /* the system clock (+ server correction), for logs and screens */
    bool trusted;              /* state SERVER: what records call clock_trusted */
    enum yn_clock_state state; /* see above */
} yn_clock_reading;

struct yn_clock {
    const yn_clock_ops *ops;
    int64_t offset_ms;      /* correction added to wall_ms (from server time) */
    bool trusted;           /* anchored to the server's time in this boot (stepped or not) */
    int64_t floor_utc_ms;   /* no reading is earlier than this (untrusted); 0 = none */
    bool anchored;          /* anchor_* hold a good reading */
    bool stepped;           /* the system clock left the anchor: readings are estimates */
    int64_t anchor_utc_ms;  /* a good reading's time … */
    int64_t anchor_boot_ms; /* … and the boot clock then */
    int64_t sim_wall_ms, sim_mono_ms; /* sim backend state */
    int64_t sim_boot_ms;              /* sim backend: moves with sim_mono_ms */
};

/* How far the system clock may wander from anchor + boot time before it
 * counts as a step: 2 s, plus 1 ms per second elapsed (twice NTP's largest
 * slew rate, 500 ppm). */
#define YN_CLOCK_STEP_MS 2000
/* A system clock this little below the floor (a small correction between the
 * last record and a restart) is taken, held at the floor until it passes it. */
#define YN_CLOCK_FLOOR_SLACK_MS (10 * 60 * 1000)
/* Re-anchor on the system clock this often while it agrees (follow NTP's slew). */
#define YN_CLOCK_REANCHOR_MS (10 * 60 * 1000)

extern const yn_clock_ops yn_clock_system_ops;

void yn_clock_init(yn_clock *c, const yn_clock_ops *ops);
/* The time to use now, where it comes from, whether it is trusted. Logs each
 * change of state (a step detected, back in step, no evidence). */
void yn_clock_read(yn_clock *c, yn_clock_reading *out);
/* yn_clock_read's utc_ms, in ms and in seconds. */
int64_t yn_clock_utc_ms(yn_clock *c);
int64_t yn_clock_utc_s(yn_clock *c);
int64_t yn_clock_mono_ms(yn_clock *c);
int64_t yn_clock_boot_ms(yn_clock *c);
void yn_clock_sleep_ms(yn_clock *c, int ms);
/* Waits on a device (the scale settling, a relay's pulse): the device's
 * time is real even under the sim clock, which moves only when a test says
 * so — CLOCK_MONOTONIC (timeutil.h) whatever the ops. */
int64_t yn_clock_device_ms(const yn_clock *c);
void yn_clock_device_sleep_ms(const yn_clock *c, int ms);
/* Server says it is server_utc_ms now: adopt it if the step is within
 * max_step_ms (or always on the first sync when max_step_ms < 0); it becomes
 * the anchor, and readings are trusted. */
int yn_clock_correct(yn_clock *c, int64_t server_utc_ms, int64_t max_step_ms) YN_MUST_CHECK;
/* Evidence from the ledger: no time before floor_utc_ms (its last record, the
 * anchor it kept). A local anchor below it by more than the slack is dropped. */
void yn_clock_set_floor(yn_clock *c, int64_t floor_utc_ms);
/* An anchor kept by an earlier run of the program in this same boot (the boot
 * clock did not restart): continue from it, so a step made while the program
 * was down is detected too. offset_ms is the server correction it had. */
void yn_clock_resume(yn_clock *c, int64_t anchor_boot_ms, int64_t anchor_utc_ms, int64_t offset_ms,
                     bool server);

/* Waits and timeouts: every one runs on CLOCK_MONOTONIC, which a step of the
 * wall clock (NTP, the server's correction, a technician's date -s) never
 * moves, so a wait neither stalls nor ends early when the date changes.
 * The system's monotonic time outside a yn_clock (threads, tools) is
 * yn_time_mono_ms (timeutil.h). yn_clock_cond_init: a condition variable
 * whose timed waits measure CLOCK_MONOTONIC; yn_clock_mono_deadline: the
 * absolute time pthread_cond_timedwait takes for it, at_ms a yn_time_mono_ms
 * time. */
int yn_clock_cond_init(pthread_cond_t *cv) YN_MUST_CHECK;
struct timespec yn_clock_mono_deadline(int64_t at_ms);

#endif
