/* devices.h — every device of a terminal, opened from board.conf. */
#ifndef YN_DEVICES_H
#define YN_DEVICES_H

#include "audio.h"
#include "clock.h"
#include "config.h"
#include "display.h"
#include "input.h"
#include "io.h"
#include "keystore.h"
#include "nfc.h"
#include "scale.h"

typedef struct yn_devices {
    yn_nfc nfc;
    yn_scale scale;
    yn_io io;
    yn_display display;
    yn_input input;
    yn_audio audio;
    yn_keystore keys;
    yn_clock clock;
} yn_devices;

/* Open every configured device. On failure closes what was opened and
 * returns the first error (logged with the device's name). */
int yn_devices_open(yn_devices *d, const yn_config *cfg) YN_MUST_CHECK;
void yn_devices_close(yn_devices *d);

#endif
