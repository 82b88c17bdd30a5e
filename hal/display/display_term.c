/* display_term.c — the screen drawn as text on a terminal (ANSI colours when
 * stdout is a terminal, plain lines otherwise). For `make run` and for
 * technicians on a serial console. Lines are never cut: on a terminal they
 * wrap at its width with the screen layout's own breaking rules (layout.h),
 * a Chinese character taking two cells; plain output keeps each line whole. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "display.h"
#include "layout.h"

#define TERM_COLS_DEFAULT 80
#define TERM_INDENT       2

struct term {
    FILE *out;
    bool ansi; /* colours and clearing */
};

static int term_open(yn_display *dev, const yn_display_conf *cfg)
{
    (void)cfg;
    struct term *t = calloc(1, sizeof *t);
    if (!t)
        return YN_ENOMEM;
    t->out = stdout;
    t->ansi = isatty(STDOUT_FILENO);
    dev->priv = t;
    return YN_OK;
}

static void term_close(yn_display *dev)
{
    struct term *t = dev->priv;
    if (t->ansi)
        fputs("\033[0m\n", t->out);
    free(t);
    dev->priv = NULL;
}

static const char *kind_colour(enum yn_screen_kind k)
{
    switch (k) {
    case YN_SCREEN_OK:
        return "\033[1;97;42m"; /* white on green */
    case YN_SCREEN_REFUSED:
    case YN_SCREEN_ERROR:
        return "\033[1;97;41m"; /* white on red */
    case YN_SCREEN_PROMPT:
        return "\033[1;30;103m"; /* black on yellow */
    default:
        return "\033[1;97;44m"; /* white on blue */
    }
}

/* Terminal cells of a code point: East Asian wide characters take two. */
static int cells(void *arg, uint32_t cp, int size)
{
    (void)arg;
    (void)size;
    bool wide = (cp >= 0x1100 && cp <= 0x115F) || (cp >= 0x2E80 && cp <= 0xA4CF) ||
                (cp >= 0xAC00 && cp <= 0xD7A3) || (cp >= 0xF900 && cp <= 0xFAFF) ||
                (cp >= 0xFE30 && cp <= 0xFE4F) || (cp >= 0xFF00 && cp <= 0xFF60) ||
                (cp >= 0xFFE0 && cp <= 0xFFE6) || cp >= 0x20000;
    return wide ? 2 : 1;
}

static int term_cols(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 2 * TERM_INDENT + 10)
        return ws.ws_col;
    return TERM_COLS_DEFAULT;
}

/* One line of the screen, wrapped to the terminal's width after the indent. */
static void put_wrapped(FILE *o, const char *style, const char *text, int cols)
{
    int start[YN_SCREEN_TEXT], end[YN_SCREEN_TEXT];
    int n = yn_layout_wrap(text, cols - TERM_INDENT, 1, cells, NULL, start, end, YN_SCREEN_TEXT);
    for (int i = 0; i < n; i++)
        fprintf(o, "%*s%s%.*s\033[0m\r\n", TERM_INDENT, "", style, end[i] - start[i],
                text + start[i]);
}

static int term_show(yn_display *dev, const yn_screen *s)
{
    struct term *t = dev->priv;
    FILE *o = t->out;
    if (t->ansi) {
        int cols = term_cols();
        fprintf(o, "\033[H\033[2J");
        put_wrapped(o, kind_colour(s->kind), s->title, cols);
        fprintf(o, "\r\n");
        for (int i = 0; i < s->n_lines; i++) {
            const yn_screen_line *l = &s->lines[i];
            put_wrapped(o,
                        l->size == YN_TEXT_HUGE    ? "\033[1;4m"
                        : l->size == YN_TEXT_LARGE ? "\033[1m"
                                                   : "",
                        l->text, cols);
        }
        if (s->footer[0]) {
            fprintf(o, "\r\n");
            put_wrapped(o, "\033[2m", s->footer, cols);
        }
    } else {
        fprintf(o, "==== [%s] %s\n", s->name, s->title);
        for (int i = 0; i < s->n_lines; i++)
            fprintf(o, "  %s%s\n", s->lines[i].size == YN_TEXT_HUGE ? "## " : "", s->lines[i].text);
        if (s->footer[0])
            fprintf(o, "  -- %s\n", s->footer);
    }
    fflush(o);
    return ferror(o) ? YN_EIO : YN_OK;
}

static int term_describe(yn_display *dev, char *buf, size_t len)
{
    snprintf(buf, len, "text terminal%s", ((struct term *)dev->priv)->ansi ? " (ANSI)" : "");
    return YN_OK;
}

const yn_display_ops yn_display_terminal_ops = {
    .name = "terminal",
    .open = term_open,
    .close = term_close,
    .show = term_show,
    .describe = term_describe,
};
