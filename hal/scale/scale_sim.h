/* scale_sim.h — the simulated scale: what it reads, or a failure, set by a test.
 * Built with WITH_SIM=1 only (the host build and the tests; a board's daemon
 * has none of it: Makefile, tests/daemon-symbols). */
#ifndef YN_HAL_SCALE_SIM_H
#define YN_HAL_SCALE_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "scale.h"

/* sim backend: set what the scale reads, or make it fail. */
extern const yn_scale_ops yn_scale_sim_ops;
void yn_scale_sim_set(yn_scale *dev, int32_t net_g, bool stable, bool overload);
void yn_scale_sim_fail(yn_scale *dev, int status); /* YN_OK clears */

#endif
