/* hal.h — what all device classes share: the backend registry.
 *
 * Each device class (hal/nfc/nfc.h, hal/scale/scale.h, …) has a const ops table per
 * backend, filled with named fields like libnfc's struct nfc_driver. The
 * registry tells which backends this firmware was built with, so that
 * board.conf can be checked before any device is opened. */
#ifndef YN_HAL_H
#define YN_HAL_H

#include <stdbool.h>
#include <stddef.h>

enum yn_hal_class {
    YN_HAL_NFC,
    YN_HAL_SCALE,
    YN_HAL_IO,
    YN_HAL_DISPLAY,
    YN_HAL_INPUT,
    YN_HAL_AUDIO,
    YN_HAL_KEYSTORE,
    YN_HAL_CLASS_COUNT
};

/* Every ops table starts with its backend name, so the registry can search
 * them all alike. */
typedef struct yn_hal_named {
    const char *name;
} yn_hal_named;

/* The ops table of backend `name` of class c, or NULL (also for "none"). */
const void *yn_hal_find(enum yn_hal_class c, const char *name);
/* True when name is a backend of class c built into this firmware, or "none"
 * for an optional class (scale, io). */
bool yn_hal_known(enum yn_hal_class c, const char *name);
/* "sim, libnfc" — the names built in, for error messages. */
void yn_hal_names(enum yn_hal_class c, char *buf, size_t len);
const char *yn_hal_class_name(enum yn_hal_class c);
/* board.conf's check of a [section] backend key (firmware/app/config.h
 * yn_config_backend_fn): whether name is a backend of the class named
 * section built in (or "none" of an optional one); if not, built_in lists
 * those that are. */
bool yn_hal_backend_ok(const char *section, const char *name, char *built_in, size_t len);

#endif
