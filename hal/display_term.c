/* display_term.c — the screen drawn as text on a terminal (ANSI colours when
 * stdout is a terminal, plain lines otherwise). For `make run` and for
 * technicians on a serial console. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "display.h"

struct term {
    FILE *out;
    bool ansi; /* colours and clearing */
};

static int term_open(yn_display *dev, const yn_config *cfg)
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

static int term_show(yn_display *dev, const yn_screen *s)
{
    struct term *t = dev->priv;
    FILE *o = t->out;
    if (t->ansi)
        fprintf(o, "\033[H\033[2J%s  %s  \033[0m\r\n\r\n", kind_colour(s->kind), s->title);
    else
        fprintf(o, "==== [%s] %s\n", s->name, s->title);
    for (int i = 0; i < s->n_lines; i++) {
        const yn_screen_line *l = &s->lines[i];
        if (t->ansi)
            fprintf(o, "%s  %s\033[0m\r\n",
                    l->size == YN_TEXT_HUGE    ? "\033[1;4m"
                    : l->size == YN_TEXT_LARGE ? "\033[1m"
                                               : "",
                    l->text);
        else
            fprintf(o, "  %s%s\n", l->size == YN_TEXT_HUGE ? "## " : "", l->text);
    }
    if (s->footer[0])
        fprintf(o, t->ansi ? "\r\n\033[2m%s\033[0m\r\n" : "  -- %s\n", s->footer);
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
