/* test_input.c — script tokens and the script backend's timing; the terminal
 * keypad uses every byte it reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "input.h"
#include "input_script.h"
#include "testutil.h"

static void test_tokens(void **state)
{
    (void)state;
    yn_input_event ev;
    int wait;
    assert_int_equal(yn_input_parse_token("7", &ev, &wait), YN_OK);
    assert_int_equal(ev.type, YN_EV_KEY);
    assert_int_equal(ev.key, '7');
    assert_int_equal(wait, -1);
    assert_int_equal(yn_input_parse_token("enter", &ev, &wait), YN_OK);
    assert_int_equal(ev.key, YN_KEY_ENTER);
    assert_int_equal(yn_input_parse_token("esc", &ev, &wait), YN_OK);
    assert_int_equal(ev.key, YN_KEY_CANCEL);
    assert_int_equal(yn_input_parse_token("menu", &ev, &wait), YN_OK);
    assert_int_equal(ev.key, YN_KEY_MENU);
    assert_int_equal(yn_input_parse_token("card:12", &ev, &wait), YN_OK);
    assert_int_equal(ev.type, YN_EV_SIM_PRESENT);
    assert_int_equal(ev.card, 12);
    assert_int_equal(yn_input_parse_token("remove", &ev, &wait), YN_OK);
    assert_int_equal(ev.type, YN_EV_SIM_REMOVE);
    assert_int_equal(yn_input_parse_token("wait:250", &ev, &wait), YN_OK);
    assert_int_equal(wait, 250);
    assert_int_equal(yn_input_parse_token("quit", &ev, &wait), YN_OK);
    assert_int_equal(ev.type, YN_EV_QUIT);
    const char *bad[] = {"12", "card:", "card:x", "card:-1", "wait:", "wait:9999999", "enterr", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(yn_input_parse_token(bad[i], &ev, &wait), YN_EINVAL);
}

static void test_script_file_order_and_waits(void **state)
{
    (void)state;
    char dir[256];
    yn_config cfg;
    yn_config_defaults(&cfg);
    yn_test_tmpdir(dir, sizeof dir);
    yn_test_write(dir, "s.txt", "# lunch\n1 enter  card:0 # tap\nwait:30 remove\nquit\n", 0644,
                  cfg.input.script, sizeof cfg.input.script);
    snprintf(cfg.input.backend, sizeof cfg.input.backend, "script");
    yn_input in;
    yn_input_event ev;
    assert_int_equal(yn_input_open(&in, &cfg.input), YN_OK);
    assert_int_equal(yn_input_next(&in, 10, &ev), YN_OK);
    assert_int_equal(ev.key, '1');
    assert_int_equal(yn_input_next(&in, 10, &ev), YN_OK);
    assert_int_equal(ev.key, YN_KEY_ENTER);
    assert_int_equal(yn_input_next(&in, 10, &ev), YN_OK);
    assert_int_equal(ev.type, YN_EV_SIM_PRESENT);
    assert_int_equal(yn_input_next(&in, 10, &ev), YN_ETIMEDOUT); /* 10 of the 30 ms */
    assert_int_equal(yn_input_next(&in, 10, &ev), YN_ETIMEDOUT); /* 20 */
    assert_int_equal(yn_input_next(&in, 50, &ev), YN_OK);        /* rest, then the event */
    assert_int_equal(ev.type, YN_EV_SIM_REMOVE);
    assert_int_equal(yn_input_next(&in, 10, &ev), YN_OK);
    assert_int_equal(ev.type, YN_EV_QUIT);
    assert_int_equal(yn_input_next(&in, 1, &ev), YN_ETIMEDOUT); /* exhausted */
    assert_int_equal(yn_input_script_push(&in, "5 bogus"), YN_EINVAL);
    yn_input_close(&in);

    yn_test_write(dir, "bad.txt", "1\n2\nflip\n", 0644, cfg.input.script, sizeof cfg.input.script);
    assert_int_equal(yn_input_open(&in, &cfg.input), YN_EINVAL);
}

/* A paste of "12.5" Enter arrives in one read: five events, in order (on
 * d18a5b3 only the first byte was used and the price became ¥1.00). An arrow
 * key's escape sequence is skipped whole; a lone Esc is cancel. */
static void test_terminal_uses_every_byte(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDIN_FILENO);
    assert_true(dup2(fds[0], STDIN_FILENO) >= 0);
    yn_config cfg;
    yn_config_defaults(&cfg);
    snprintf(cfg.input.backend, sizeof cfg.input.backend, "terminal");
    yn_input in;
    assert_int_equal(yn_input_open(&in, &cfg.input), YN_OK);
    static const char paste[] = "12.5\n\033[A\033OPk";
    assert_int_equal(write(fds[1], paste, sizeof paste - 1), (ssize_t)(sizeof paste - 1));
    static const int want[] = {'1', '2', YN_KEY_DOT, '5', YN_KEY_ENTER};
    yn_input_event ev;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(yn_input_next(&in, 100, &ev), YN_OK);
        assert_int_equal(ev.type, YN_EV_KEY);
        assert_int_equal(ev.key, want[i]);
    }
    assert_int_equal(yn_input_next(&in, 100, &ev), YN_OK); /* the arrow and F1 skipped */
    assert_int_equal(ev.type, YN_EV_SIM_PRESENT);
    assert_int_equal(ev.card, 'k' - 'a');
    assert_int_equal(yn_input_next(&in, 0, &ev), YN_ETIMEDOUT);
    assert_int_equal(write(fds[1], "\033", 1), 1);
    assert_int_equal(yn_input_next(&in, 100, &ev), YN_OK);
    assert_int_equal(ev.key, YN_KEY_CANCEL);
    close(fds[1]);
    assert_int_equal(yn_input_next(&in, 100, &ev), YN_OK);
    assert_int_equal(ev.type, YN_EV_QUIT); /* end of input */
    yn_input_close(&in);
    assert_true(dup2(saved, STDIN_FILENO) >= 0);
    close(saved);
    close(fds[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_script_file_order_and_waits),
        cmocka_unit_test(test_terminal_uses_every_byte),
    };
    return cmocka_run_group_tests_name("input", tests, NULL, NULL);
}
