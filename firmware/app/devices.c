/* devices.c — open and close a terminal's devices as board.conf names them. */
#include "devices.h"

#include <string.h>

#include "log.h"

int yn_devices_open(yn_devices *d, const yn_config *cfg)
{
    memset(d, 0, sizeof *d);
    yn_clock_init(&d->clock, &yn_clock_system_ops);
    int rc = yn_keystore_open(&d->keys, NULL, &cfg->keys);
    if (rc == YN_OK)
        rc = yn_display_open(&d->display, &cfg->display);
    if (rc == YN_OK)
        rc = yn_input_open(&d->input, &cfg->input);
    if (rc == YN_OK)
        rc = yn_nfc_open(&d->nfc, &cfg->reader);
    if (rc == YN_OK)
        rc = yn_scale_open(&d->scale, &cfg->scale);
    if (rc == YN_OK)
        rc = yn_io_open(&d->io, &cfg->io);
    if (rc == YN_OK)
        rc = yn_audio_open(&d->audio, &cfg->audio);
    if (rc != YN_OK)
        yn_devices_close(d);
    return rc;
}

void yn_devices_close(yn_devices *d)
{
    yn_audio_close(&d->audio);
    yn_io_close(&d->io);
    yn_scale_close(&d->scale);
    yn_nfc_close(&d->nfc);
    yn_input_close(&d->input);
    yn_display_close(&d->display);
    yn_keystore_close(&d->keys);
}
