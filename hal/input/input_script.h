/* input_script.h — the scripted keypad: events queued by a test or read from a script file.
 * Built with WITH_SIM=1 only (the host build and the tests; a board's daemon
 * has none of it: Makefile, tests/daemon-symbols). */
#ifndef YN_HAL_INPUT_SCRIPT_H
#define YN_HAL_INPUT_SCRIPT_H

#include "input.h"

/* script/sim backend: events queued by a test or read from a script file. */
extern const yn_input_ops yn_input_script_ops;
int yn_input_script_push(yn_input *dev, const char *tokens) YN_MUST_CHECK;

#endif
