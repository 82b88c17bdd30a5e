/* test_terminal.c — the terminal state machine on simulated devices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "devices.h"
#include "nfc_sim.h"
#include "terminal.h"
#include "testutil.h"

struct rig {
    yn_config cfg;
    yn_devices dev;
    yn_terminal *term;
};

static int setup(void **state)
{
    static struct rig r;
    memset(&r, 0, sizeof r);
    yn_config_defaults(&r.cfg);
    snprintf(r.cfg.terminal.id, sizeof r.cfg.terminal.id, "T1");
    snprintf(r.cfg.terminal.canteen_name, sizeof r.cfg.terminal.canteen_name, "测试饭堂");
    snprintf(r.cfg.display.backend, sizeof r.cfg.display.backend, "sim");
    snprintf(r.cfg.input.backend, sizeof r.cfg.input.backend, "script");
    assert_int_equal(yn_devices_open(&r.dev, &r.cfg), YN_OK);
    yn_clock_init(&r.dev.clock, &yn_clock_sim_ops);
    yn_sim_card c = {.label = "张桂英",
                     .tag = {.uid = {4, 1, 2, 3, 4, 5, 6}, .uid_len = 7, .type = YN_TAG_DESFIRE}};
    assert_int_equal(yn_nfc_sim_add(&r.dev.nfc, &c), 0);
    c.tag.uid[6] = 9;
    assert_int_equal(yn_nfc_sim_add(&r.dev.nfc, &c), 1);
    assert_int_equal(yn_terminal_new(&r.cfg, &r.dev, &r.term), YN_OK);
    yn_terminal_start(r.term);
    *state = &r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    yn_terminal_free(r->term);
    yn_devices_close(&r->dev);
    return 0;
}

static void step(struct rig *r, const char *tokens, int times)
{
    if (tokens)
        assert_int_equal(yn_input_script_push(&r->dev.input, tokens), YN_OK);
    for (int i = 0; i < times; i++) {
        assert_int_equal(yn_terminal_step(r->term, 0), YN_OK);
        yn_clock_sim_advance(&r->dev.clock, 50);
    }
}

static const char *screen(struct rig *r)
{
    return yn_display_sim_last(&r->dev.display)->name;
}

static void test_idle_then_tap_then_back_to_idle(void **state)
{
    struct rig *r = *state;
    assert_string_equal(screen(r), "idle");
    assert_string_equal(yn_display_sim_last(&r->dev.display)->title, "测试饭堂");
    step(r, "card:0", 1);
    assert_string_equal(screen(r), "card");
    assert_int_equal(yn_terminal_taps(r->term), 1);
    /* result_ms (4000) later the idle screen is back */
    step(r, NULL, 4000 / 50 + 1);
    assert_string_equal(screen(r), "idle");
}

static void test_same_card_is_one_tap(void **state)
{
    struct rig *r = *state;
    step(r, "card:0", 10); /* left on the reader */
    assert_int_equal(yn_terminal_taps(r->term), 1);
    step(r, "remove", 2);
    step(r, "card:0", 2); /* back within debounce_ms (2000) */
    assert_int_equal(yn_terminal_taps(r->term), 1);
    step(r, "card:1", 2); /* another card is another tap */
    assert_int_equal(yn_terminal_taps(r->term), 2);
    step(r, "remove", 2);
    step(r, NULL, 2000 / 50 + 1); /* after debounce the same card is a new tap */
    step(r, "card:1", 1);
    assert_int_equal(yn_terminal_taps(r->term), 3);
}

static void test_cancel_and_quit(void **state)
{
    struct rig *r = *state;
    step(r, "card:0", 1);
    assert_string_equal(screen(r), "card");
    step(r, "esc", 1);
    assert_string_equal(screen(r), "idle");
    assert_false(yn_terminal_done(r->term));
    step(r, "card:7 quit", 2); /* no such card: warned, ignored */
    assert_true(yn_terminal_done(r->term));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idle_then_tap_then_back_to_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_card_is_one_tap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_quit, setup, teardown),
    };
    return cmocka_run_group_tests_name("terminal", tests, NULL, NULL);
}
