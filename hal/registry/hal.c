/* hal.c — the backend registry: which backends this firmware has. */
#include "hal.h"

#include <stdio.h>
#include <string.h>

#include "audio.h"
#include "display.h"
#include "display_sim.h"
#include "input.h"
#include "input_script.h"
#include "io.h"
#include "io_sim.h"
#include "keystore.h"
#include "nfc.h"
#include "scale.h"
#if WITH_SIM
#include "display_sim.h"
#include "input_script.h"
#include "io_sim.h"
#include "nfc_sim.h"
#include "scale_sim.h"
#define SIM(ops) &ops,
#else
#define SIM(ops) /* a board's build has no simulated backends */
#endif
#include "scale_sim.h"

extern const yn_display_ops yn_display_terminal_ops;
extern const yn_display_ops yn_display_png_ops;
extern const yn_display_ops yn_display_fb_ops;
#if WITH_LIBNFC
extern const yn_nfc_ops yn_nfc_libnfc_ops;
#define LIBNFC_BACKEND &yn_nfc_libnfc_ops,
#else
#define LIBNFC_BACKEND
#endif
extern const yn_input_ops yn_input_terminal_ops;
extern const yn_scale_ops yn_scale_modbus_ops;
extern const yn_io_ops yn_io_modbus_ops;

/* SIM(x) is an entry and its comma, or nothing */
/* clang-format off */
static const void *const nfc_backends[] = {SIM(yn_nfc_sim_ops) LIBNFC_BACKEND NULL};
static const void *const scale_backends[] = {SIM(yn_scale_sim_ops) &yn_scale_modbus_ops, NULL};
static const void *const io_backends[] = {SIM(yn_io_sim_ops) &yn_io_modbus_ops, NULL};
static const void *const display_backends[] = {&yn_display_terminal_ops, SIM(yn_display_sim_ops)
                                               &yn_display_png_ops, &yn_display_fb_ops, NULL};
static const void *const input_backends[] = {&yn_input_terminal_ops, SIM(yn_input_script_ops)
                                             &yn_input_evdev_ops, NULL};
/* clang-format on */
static const void *const audio_backends[] = {&yn_audio_silent_ops, &yn_audio_alsa_ops, NULL};
static const void *const keystore_backends[] = {&yn_keystore_file_ops, &yn_keystore_pkcs11_ops,
                                                NULL};

static const void *const *const tables[YN_HAL_CLASS_COUNT] = {
    [YN_HAL_NFC] = nfc_backends,
    [YN_HAL_SCALE] = scale_backends,
    [YN_HAL_IO] = io_backends,
    [YN_HAL_DISPLAY] = display_backends,
    [YN_HAL_INPUT] = input_backends,
    [YN_HAL_AUDIO] = audio_backends,
    [YN_HAL_KEYSTORE] = keystore_backends,
};

/* Classes a terminal can run without. */
static bool optional(enum yn_hal_class c)
{
    return c == YN_HAL_SCALE || c == YN_HAL_IO;
}

const void *yn_hal_find(enum yn_hal_class c, const char *name)
{
    if ((unsigned)c >= YN_HAL_CLASS_COUNT || !name)
        return NULL;
    for (const void *const *t = tables[c]; *t; t++)
        if (strcmp(((const yn_hal_named *)*t)->name, name) == 0)
            return *t;
    return NULL;
}

bool yn_hal_known(enum yn_hal_class c, const char *name)
{
    return yn_hal_find(c, name) || (optional(c) && name && strcmp(name, "none") == 0);
}

void yn_hal_names(enum yn_hal_class c, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    if ((unsigned)c >= YN_HAL_CLASS_COUNT)
        return;
    for (const void *const *t = tables[c]; *t && used < len; t++) {
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "",
                         ((const yn_hal_named *)*t)->name);
        if (n < 0)
            return;
        used += (size_t)n;
    }
    if (optional(c) && used < len)
        snprintf(buf + used, len - used, ", none");
}

const char *yn_hal_class_name(enum yn_hal_class c)
{
    static const char *const names[YN_HAL_CLASS_COUNT] = {"reader", "scale", "io",  "display",
                                                          "input",  "audio", "keys"};
    return (unsigned)c < YN_HAL_CLASS_COUNT ? names[c] : "?";
}

bool yn_hal_backend_ok(const char *section, const char *name, char *built_in, size_t len)
{
    for (int c = 0; c < YN_HAL_CLASS_COUNT; c++) {
        if (strcmp(yn_hal_class_name((enum yn_hal_class)c), section) != 0)
            continue;
        if (yn_hal_known((enum yn_hal_class)c, name))
            return true;
        yn_hal_names((enum yn_hal_class)c, built_in, len);
        return false;
    }
    snprintf(built_in, len, "?");
    return false;
}
