/* display_sim.h — the simulated screen: the last screen shown, for tests.
 * Built with WITH_SIM=1 only (the host build and the tests; a board's daemon
 * has none of it: Makefile, tests/daemon-symbols). */
#ifndef YN_HAL_DISPLAY_SIM_H
#define YN_HAL_DISPLAY_SIM_H

#include "display.h"

/* sim backend: the last screen shown and how many were shown. */
extern const yn_display_ops yn_display_sim_ops;
const yn_screen *yn_display_sim_last(const yn_display *dev);
int yn_display_sim_count(const yn_display *dev);

#endif
