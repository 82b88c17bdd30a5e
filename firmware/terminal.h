/* terminal.h — the terminal's main loop: one state machine that turns keys
 * and card taps into screens, voice and lights. */
#ifndef YN_TERMINAL_H
#define YN_TERMINAL_H

#include <stdbool.h>

#include "config.h"
#include "devices.h"

typedef struct yn_terminal yn_terminal;

int yn_terminal_new(const yn_config *cfg, yn_devices *dev, yn_terminal **out) YN_MUST_CHECK;
void yn_terminal_free(yn_terminal *t);
/* Show the first screen. */
void yn_terminal_start(yn_terminal *t);
/* One turn of the loop: wait up to timeout_ms for a key, look for a card,
 * advance the state. */
int yn_terminal_step(yn_terminal *t, int timeout_ms) YN_MUST_CHECK;
/* The operator (or the script) asked to stop. */
bool yn_terminal_done(const yn_terminal *t);
/* Cards handled since start (taps that reached a decision). */
int yn_terminal_taps(const yn_terminal *t);

#endif
