/* display.h — the screen.
 *
 * Firmware describes a screen as content (kind, title, lines with sizes);
 * backends present it: the terminal backend as text, the sim backend keeps
 * it for tests, and pixel backends (framebuffer, PNG) render it with the
 * shared renderer. Text is UTF-8 Chinese. */
#ifndef YN_HAL_DISPLAY_H
#define YN_HAL_DISPLAY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "hal_conf.h"
#include "status.h"

/* [display] of board.conf. */
typedef struct yn_display_conf {
    char backend[YN_BACKEND_MAX];
    char device[YN_DEV_MAX]; /* fb: /dev/fb0 */
    int width_px, height_px;
    char snapshot_dir[PATH_MAX]; /* png: where screens are written */
    int result_ms;               /* result screen stays this long */
} yn_display_conf;

#define YN_SCREEN_LINES 10
#define YN_SCREEN_TEXT  256 /* bytes of one line incl. NUL: about 80 Chinese characters */

enum yn_screen_kind {
    YN_SCREEN_IDLE,    /* waiting: canteen, period, clock, status */
    YN_SCREEN_PROMPT,  /* asking for something: 请刷卡, PIN entry */
    YN_SCREEN_OK,      /* success: green */
    YN_SCREEN_REFUSED, /* refusal: red, kind sentence */
    YN_SCREEN_INFO,    /* balances, summaries */
    YN_SCREEN_ERROR,   /* device or system trouble: staff must act */
};

enum yn_text_size { YN_TEXT_NORMAL, YN_TEXT_LARGE, YN_TEXT_HUGE };

typedef struct yn_screen_line {
    char text[YN_SCREEN_TEXT];
    enum yn_text_size size;
} yn_screen_line;

typedef struct yn_screen {
    enum yn_screen_kind kind;
    char name[32]; /* stable id: "idle", "ok", "refused_lost" (snapshots) */
    char title[YN_SCREEN_TEXT];
    int n_lines;
    yn_screen_line lines[YN_SCREEN_LINES];
    char footer[YN_SCREEN_TEXT]; /* status bar: online, waiting records, operator */
    bool cut; /* a line was longer than YN_SCREEN_TEXT or beyond YN_SCREEN_LINES: a bug */
} yn_screen;

typedef struct yn_display yn_display;

typedef struct yn_display_ops {
    const char *name;
    int (*open)(yn_display *dev, const yn_display_conf *cfg);
    void (*close)(yn_display *dev);
    int (*show)(yn_display *dev, const yn_screen *screen);
    int (*describe)(yn_display *dev, char *buf, size_t len);
} yn_display_ops;

struct yn_display {
    const yn_display_ops *ops;
    void *priv;
};

int yn_display_open(yn_display *dev, const yn_display_conf *cfg) YN_MUST_CHECK;
void yn_display_close(yn_display *dev);
int yn_display_show(yn_display *dev, const yn_screen *screen) YN_MUST_CHECK;
int yn_display_describe(yn_display *dev, char *buf, size_t len) YN_MUST_CHECK;

/* Screen building helpers. A line that does not fit YN_SCREEN_TEXT, or a
 * line past YN_SCREEN_LINES, is logged as an error (a bug in the screen). */
void yn_screen_init(yn_screen *s, enum yn_screen_kind kind, const char *name, const char *title);
void yn_screen_add(yn_screen *s, enum yn_text_size size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
