/* clock_sim.h — the simulated clock: set, advanced and stepped by tests (its state is
 * yn_clock's sim_* fields).
 * Built with WITH_SIM=1 only (the host build and the tests; a board's daemon
 * has none of it: Makefile, tests/daemon-symbols). */
#ifndef YN_HAL_CLOCK_SIM_H
#define YN_HAL_CLOCK_SIM_H

#include <stdint.h>

#include "clock.h"

extern const yn_clock_ops yn_clock_sim_ops;

/* the wall clock, as if it had always said so: not a step (the anchor is dropped) */
void yn_clock_sim_set(yn_clock *c, int64_t utc_ms);
void yn_clock_sim_advance(yn_clock *c, int64_t ms);   /* all clocks move */
void yn_clock_sim_jump_wall(yn_clock *c, int64_t ms); /* wall only: a clock step */

#endif
