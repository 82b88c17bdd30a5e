/* input_term.c — the keypad on a terminal, for `make run` and bench work.
 *
 * Numeric-keypad keys map to themselves (0-9 . Enter Backspace / * - +, Esc is
 * cancel). Letters drive the simulated reader: a..p present virtual card 0..15
 * (the terminal says when there is no such card),
 * x takes the card away, q quits. The terminal is put in raw mode while open
 * and restored on close. Every byte read is used: a paste ("12.5" Enter) or
 * keys typed faster than the loop turns arrive together and come out as one
 * event each, in order; an escape sequence (arrow, F-key) is skipped whole. */
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include "input.h"

#define TERM_BUF 64

struct term_in {
    int fd;
    bool raw; /* termios changed: restore on close */
    struct termios saved;
    unsigned char buf[TERM_BUF]; /* bytes read, not yet turned into events */
    size_t len, pos;             /* buf[pos..len) is pending */
};

static int term_open(yn_input *dev, const yn_input_conf *cfg)
{
    (void)cfg;
    struct term_in *t = calloc(1, sizeof *t);
    if (!t)
        return YN_ENOMEM;
    t->fd = STDIN_FILENO;
    if (isatty(t->fd) && tcgetattr(t->fd, &t->saved) == 0) {
        struct termios raw = t->saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        t->raw = tcsetattr(t->fd, TCSANOW, &raw) == 0;
    }
    dev->priv = t;
    return YN_OK;
}

static void term_close(yn_input *dev)
{
    struct term_in *t = dev->priv;
    if (t->raw)
        tcsetattr(t->fd, TCSANOW, &t->saved);
    free(t);
    dev->priv = NULL;
}

/* Map one byte to an event; false for bytes that mean nothing. */
static bool map_byte(unsigned char c, yn_input_event *ev)
{
    ev->type = YN_EV_KEY;
    if ((c >= '0' && c <= '9') || c == '.' || c == '*' || c == '/' || c == '-' || c == '+')
        ev->key = c;
    else if (c == '\r' || c == '\n')
        ev->key = YN_KEY_ENTER;
    else if (c == 127 || c == '\b')
        ev->key = YN_KEY_BACK;
    else if (c == 27)
        ev->key = YN_KEY_CANCEL;
    else if (c >= 'a' && c <= 'p') {
        ev->type = YN_EV_SIM_PRESENT;
        ev->card = c - 'a';
    } else if (c == 'x')
        ev->type = YN_EV_SIM_REMOVE;
    else if (c == 'q' || c == 4 /* ^D */)
        ev->type = YN_EV_QUIT;
    else
        return false;
    return true;
}

/* Skip an escape sequence starting at buf[pos] (ESC [ ... final, ESC O x);
 * false when the ESC stands alone: the cancel key. */
static bool skip_escape(struct term_in *t)
{
    size_t i = t->pos + 1;
    if (i >= t->len || (t->buf[i] != '[' && t->buf[i] != 'O'))
        return false;
    bool csi = t->buf[i] == '[';
    for (i++; i < t->len; i++)
        if (!csi || (t->buf[i] >= 0x40 && t->buf[i] <= 0x7E))
            break;
    t->pos = i < t->len ? i + 1 : t->len;
    return true;
}

static int term_next(yn_input *dev, int timeout_ms, yn_input_event *ev)
{
    struct term_in *t = dev->priv;
    for (;;) {
        while (t->pos < t->len) {
            if (t->buf[t->pos] == 27 && skip_escape(t))
                continue;
            if (map_byte(t->buf[t->pos++], ev))
                return YN_OK;
        }
        struct pollfd p = {.fd = t->fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            return YN_ETIMEDOUT;
        ssize_t got = read(t->fd, t->buf, sizeof t->buf);
        if (got == 0) {
            ev->type = YN_EV_QUIT; /* end of input */
            return YN_OK;
        }
        if (got < 0)
            return YN_EIO;
        t->len = (size_t)got;
        t->pos = 0;
        timeout_ms = 0; /* what was read is all there is to wait for */
    }
}

const yn_input_ops yn_input_terminal_ops = {
    .name = "terminal",
    .open = term_open,
    .close = term_close,
    .next = term_next,
};
