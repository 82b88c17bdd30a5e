/* io_sim.h — the simulated lights, buzzer and gate: what each output did.
 * Built with WITH_SIM=1 only (the host build and the tests; a board's daemon
 * has none of it: Makefile, tests/daemon-symbols). */
#ifndef YN_HAL_IO_SIM_H
#define YN_HAL_IO_SIM_H

#include <stdbool.h>

#include "io.h"

/* sim backend: what each output did. */
extern const yn_io_ops yn_io_sim_ops;
typedef struct yn_io_sim_state {
    bool on[YN_OUT_COUNT];
    int pulses[YN_OUT_COUNT]; /* pulses seen per output */
    int last_pulse_ms[YN_OUT_COUNT];
} yn_io_sim_state;
const yn_io_sim_state *yn_io_sim_state_of(const yn_io *dev);
void yn_io_sim_fail(yn_io *dev, int status); /* YN_OK clears */

#endif
