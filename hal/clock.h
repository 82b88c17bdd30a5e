/* clock.h — time. Wall clock (UTC) for records, monotonic for ordering and
 * debounce. The wall clock carries a correction learnt from the district
 * server and says whether it is trusted (synced since boot). The sim clock can
 * be set and jumped by tests. */
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
} yn_clock_ops;

struct yn_clock {
    const yn_clock_ops *ops;
    int64_t offset_ms;                /* correction added to wall_ms (from server time) */
    bool trusted;                     /* corrected from the server since start */
    int64_t sim_wall_ms, sim_mono_ms; /* sim backend state */
};

extern const yn_clock_ops yn_clock_system_ops;
extern const yn_clock_ops yn_clock_sim_ops;

void yn_clock_init(yn_clock *c, const yn_clock_ops *ops);
int64_t yn_clock_utc_ms(yn_clock *c);
int64_t yn_clock_utc_s(yn_clock *c);
int64_t yn_clock_mono_ms(yn_clock *c);
void yn_clock_sleep_ms(yn_clock *c, int ms);
/* Server says it is server_utc_ms now: adopt it if the step is within
 * max_step_ms (or always on the first sync when max_step_ms < 0). */
int yn_clock_correct(yn_clock *c, int64_t server_utc_ms, int64_t max_step_ms) YN_MUST_CHECK;

/* Waits and timeouts: every one runs on CLOCK_MONOTONIC, which a step of the
 * wall clock (NTP, the server's correction, a technician's date -s) never
 * moves, so a wait neither stalls nor ends early when the date changes.
 * yn_clock_mono_now_ms: the system's monotonic time outside a yn_clock
 * (threads, tools). yn_clock_cond_init: a condition variable whose timed
 * waits measure CLOCK_MONOTONIC; yn_clock_mono_deadline: the absolute time
 * pthread_cond_timedwait takes for it, at_ms a yn_clock_mono_now_ms time. */
int64_t yn_clock_mono_now_ms(void);
int yn_clock_cond_init(pthread_cond_t *cv) YN_MUST_CHECK;
struct timespec yn_clock_mono_deadline(int64_t at_ms);

/* sim only */
void yn_clock_sim_set(yn_clock *c, int64_t utc_ms);
void yn_clock_sim_advance(yn_clock *c, int64_t ms);   /* both clocks move */
void yn_clock_sim_jump_wall(yn_clock *c, int64_t ms); /* wall only: a clock jump */

#endif
