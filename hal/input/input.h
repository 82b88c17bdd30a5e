/* input.h — the keypad (a USB numeric keypad on the board).
 *
 * Keys are those of a numeric keypad: digits, '.', Enter, Backspace, and the
 * four operator keys above the digits (/ * - +), plus Esc as cancel. The
 * terminal and script backends also deliver "sim" events — present or remove
 * a virtual card — which the daemon hands to a simulated reader. */
#ifndef YN_HAL_INPUT_H
#define YN_HAL_INPUT_H

#include <limits.h>
#include <stddef.h>

#include "hal_conf.h"
#include "status.h"

/* [input] of board.conf. */
typedef struct yn_input_conf {
    char backend[YN_BACKEND_MAX];
    char device[YN_DEV_MAX]; /* evdev: /dev/input/eventN */
    char script[PATH_MAX];   /* script: file of keys and card events */
} yn_input_conf;

enum yn_key {
    YN_KEY_NONE = 0,
    YN_KEY_0 = '0', /* '0'..'9' are the digits */
    YN_KEY_DOT = '.',
    YN_KEY_ENTER = '\n',
    YN_KEY_BACK = '\b',
    YN_KEY_CANCEL = 27, /* Esc */
    YN_KEY_MENU = '*',  /* staff menu */
    YN_KEY_F1 = '/',    /* meal / function keys */
    YN_KEY_MINUS = '-',
    YN_KEY_PLUS = '+',
};

enum yn_event_type { YN_EV_KEY, YN_EV_SIM_PRESENT, YN_EV_SIM_REMOVE, YN_EV_QUIT };

typedef struct yn_input_event {
    enum yn_event_type type;
    int key;  /* YN_EV_KEY: enum yn_key */
    int card; /* YN_EV_SIM_PRESENT: virtual card index */
} yn_input_event;

typedef struct yn_input yn_input;

typedef struct yn_input_ops {
    const char *name;
    int (*open)(yn_input *dev, const yn_input_conf *cfg);
    void (*close)(yn_input *dev);
    /* Wait up to timeout_ms: YN_OK with *ev, or YN_ETIMEDOUT. */
    int (*next)(yn_input *dev, int timeout_ms, yn_input_event *ev);
} yn_input_ops;

struct yn_input {
    const yn_input_ops *ops;
    void *priv;
};

int yn_input_open(yn_input *dev, const yn_input_conf *cfg) YN_MUST_CHECK;
void yn_input_close(yn_input *dev);
int yn_input_next(yn_input *dev, int timeout_ms, yn_input_event *ev) YN_MUST_CHECK;

/* Parse one script token: a key name ("5", "enter", "esc", "back", "menu", ".",
 * "+", "-", "/"), "card:N", "remove", "quit", or "wait:MS". Returns YN_OK,
 * with *wait_ms set for waits. */
int yn_input_parse_token(const char *tok, yn_input_event *ev, int *wait_ms) YN_MUST_CHECK;

/* evdev backend: the yn_key of a Linux key code, YN_KEY_NONE if not a keypad key. */
extern const yn_input_ops yn_input_evdev_ops;
int yn_evdev_key(unsigned code);

#endif
