/* input_evdev.c — a USB numeric keypad through Linux evdev
 * (/dev/input/eventN, [input] device). Key presses (value 1) and repeats
 * (value 2) of the keypad's keys become yn_key events; everything else is
 * ignored. A keypad unplugged mid-shift is reopened by itself. */
#include <errno.h>
#include <fcntl.h>
#include <linux/input.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "input.h"
#include "log.h"

struct evdev {
    int fd; /* -1 while unplugged */
    char device[YN_DEV_MAX];
};

/* The keypad's keys (and the main keyboard's equivalents). */
int yn_evdev_key(unsigned code)
{
    switch (code) {
    case KEY_KP0:
    case KEY_0:
        return '0';
    case KEY_KP1:
    case KEY_1:
        return '1';
    case KEY_KP2:
    case KEY_2:
        return '2';
    case KEY_KP3:
    case KEY_3:
        return '3';
    case KEY_KP4:
    case KEY_4:
        return '4';
    case KEY_KP5:
    case KEY_5:
        return '5';
    case KEY_KP6:
    case KEY_6:
        return '6';
    case KEY_KP7:
    case KEY_7:
        return '7';
    case KEY_KP8:
    case KEY_8:
        return '8';
    case KEY_KP9:
    case KEY_9:
        return '9';
    case KEY_KPDOT:
    case KEY_DOT:
        return YN_KEY_DOT;
    case KEY_KPENTER:
    case KEY_ENTER:
        return YN_KEY_ENTER;
    case KEY_BACKSPACE:
        return YN_KEY_BACK;
    case KEY_ESC:
    case KEY_NUMLOCK:
        return YN_KEY_CANCEL;
    case KEY_KPASTERISK:
        return YN_KEY_MENU;
    case KEY_KPSLASH:
        return YN_KEY_F1;
    case KEY_KPMINUS:
        return YN_KEY_MINUS;
    case KEY_KPPLUS:
        return YN_KEY_PLUS;
    default:
        return YN_KEY_NONE;
    }
}

static int reopen(struct evdev *e)
{
    e->fd = open(e->device, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    return e->fd >= 0 ? YN_OK : YN_ENODEV;
}

static int evdev_open(yn_input *dev, const yn_input_conf *cfg)
{
    struct evdev *e = calloc(1, sizeof *e);
    if (!e)
        return YN_ENOMEM;
    snprintf(e->device, sizeof e->device, "%s", cfg->device);
    if (reopen(e) != YN_OK) {
        yn_err("input: cannot open keypad %s: %s", e->device, strerror(errno));
        free(e);
        return YN_ENODEV;
    }
    dev->priv = e;
    return YN_OK;
}

static void evdev_close(yn_input *dev)
{
    struct evdev *e = dev->priv;
    if (e->fd >= 0)
        close(e->fd);
    free(e);
    dev->priv = NULL;
}

static int evdev_next(yn_input *dev, int timeout_ms, yn_input_event *ev)
{
    struct evdev *e = dev->priv;
    if (e->fd < 0 && reopen(e) != YN_OK) {
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return YN_ETIMEDOUT; /* still unplugged */
    }
    struct pollfd p = {.fd = e->fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) <= 0)
        return YN_ETIMEDOUT;
    struct input_event in;
    for (;;) {
        ssize_t n = read(e->fd, &in, sizeof in);
        if (n == (ssize_t)sizeof in) {
            if (in.type != EV_KEY || in.value == 0)
                continue; /* sync, release, LEDs … */
            int key = yn_evdev_key(in.code);
            if (key == YN_KEY_NONE)
                continue;
            *ev = (yn_input_event){.type = YN_EV_KEY, .key = key};
            return YN_OK;
        }
        if (n < 0 && errno == EAGAIN)
            return YN_ETIMEDOUT;
        if (n < 0 && errno == EINTR)
            continue;
        /* ENODEV, EOF or a short read: the keypad went away */
        yn_warn("input: keypad %s gone (%s); waiting for it", e->device,
                n < 0 ? strerror(errno) : "end of file");
        close(e->fd);
        e->fd = -1;
        return YN_ETIMEDOUT;
    }
}

const yn_input_ops yn_input_evdev_ops = {
    .name = "evdev",
    .open = evdev_open,
    .close = evdev_close,
    .next = evdev_next,
};
