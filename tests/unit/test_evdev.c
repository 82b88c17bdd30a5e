/* test_evdev.c — the evdev keypad backend reading real struct input_event
 * records (from a FIFO standing in for /dev/input/eventN): keypad keys map,
 * releases and other events are ignored, an unplugged keypad is waited for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <linux/input.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "input.h"
#include "testutil.h"

static void emit(int fd, unsigned type, unsigned code, int value)
{
    struct input_event ev;
    memset(&ev, 0, sizeof ev);
    ev.type = (unsigned short)type;
    ev.code = (unsigned short)code;
    ev.value = value;
    assert_int_equal(write(fd, &ev, sizeof ev), sizeof ev);
}

static void test_key_map(void **state)
{
    (void)state;
    assert_int_equal(yn_evdev_key(KEY_KP7), '7');
    assert_int_equal(yn_evdev_key(KEY_KPENTER), YN_KEY_ENTER);
    assert_int_equal(yn_evdev_key(KEY_KPDOT), YN_KEY_DOT);
    assert_int_equal(yn_evdev_key(KEY_KPASTERISK), YN_KEY_MENU);
    assert_int_equal(yn_evdev_key(KEY_KPPLUS), YN_KEY_PLUS);
    assert_int_equal(yn_evdev_key(KEY_BACKSPACE), YN_KEY_BACK);
    assert_int_equal(yn_evdev_key(KEY_ESC), YN_KEY_CANCEL);
    assert_int_equal(yn_evdev_key(KEY_A), YN_KEY_NONE);
}

static void test_events_from_a_device_node(void **state)
{
    (void)state;
    char dir[256];
    yn_test_tmpdir(dir, sizeof dir);
    yn_config cfg;
    yn_config_defaults(&cfg);
    snprintf(cfg.input.backend, sizeof cfg.input.backend, "evdev");
    snprintf(cfg.input.device, sizeof cfg.input.device, "%.100s/event0", dir);
    assert_int_equal(mkfifo(cfg.input.device, 0600), 0);
    int w = open(cfg.input.device, O_RDWR); /* keeps the FIFO open for the reader */
    assert_true(w >= 0);
    yn_input in;
    yn_input_event ev;
    assert_int_equal(yn_input_open(&in, &cfg.input), YN_OK);
    assert_int_equal(yn_input_next(&in, 10, &ev), YN_ETIMEDOUT);
    emit(w, EV_MSC, MSC_SCAN, 0x70059);
    emit(w, EV_KEY, KEY_KP1, 1);
    emit(w, EV_SYN, SYN_REPORT, 0);
    emit(w, EV_KEY, KEY_KP1, 0); /* release */
    emit(w, EV_KEY, KEY_A, 1);   /* not a keypad key */
    emit(w, EV_KEY, KEY_KPENTER, 1);
    assert_int_equal(yn_input_next(&in, 100, &ev), YN_OK);
    assert_int_equal(ev.type, YN_EV_KEY);
    assert_int_equal(ev.key, '1');
    assert_int_equal(yn_input_next(&in, 100, &ev), YN_OK);
    assert_int_equal(ev.key, YN_KEY_ENTER);
    assert_int_equal(yn_input_next(&in, 10, &ev), YN_ETIMEDOUT);
    /* unplugged: the writer goes away, the reader sees end of file */
    close(w);
    assert_int_equal(yn_input_next(&in, 10, &ev), YN_ETIMEDOUT);
    unlink(cfg.input.device);
    assert_int_equal(yn_input_next(&in, 10, &ev), YN_ETIMEDOUT); /* still gone */
    /* plugged back in */
    assert_int_equal(mkfifo(cfg.input.device, 0600), 0);
    w = open(cfg.input.device, O_RDWR);
    emit(w, EV_KEY, KEY_KP9, 1);
    assert_int_equal(yn_input_next(&in, 100, &ev), YN_OK); /* reopened by itself */
    assert_int_equal(ev.key, '9');
    close(w);
    yn_input_close(&in);

    snprintf(cfg.input.device, sizeof cfg.input.device, "/nonexistent/event9");
    assert_int_equal(yn_input_open(&in, &cfg.input), YN_ENODEV);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_map),
        cmocka_unit_test(test_events_from_a_device_node),
    };
    return cmocka_run_group_tests_name("evdev", tests, NULL, NULL);
}
