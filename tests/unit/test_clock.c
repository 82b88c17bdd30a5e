/* test_clock.c — sim clock set/jump, server correction within bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock.h"

static void test_sim_clock(void **state)
{
    (void)state;
    yn_clock c;
    yn_clock_init(&c, &yn_clock_sim_ops);
    yn_clock_sim_set(&c, 1700000000123LL);
    int64_t m0 = yn_clock_mono_ms(&c);
    assert_int_equal(yn_clock_utc_ms(&c), 1700000000123LL);
    assert_int_equal(yn_clock_utc_s(&c), 1700000000LL);
    yn_clock_sleep_ms(&c, 1500);
    assert_int_equal(yn_clock_utc_ms(&c), 1700000001623LL);
    assert_int_equal(yn_clock_mono_ms(&c) - m0, 1500);
    yn_clock_sim_jump_wall(&c, -3600000); /* wall jumps back an hour */
    assert_int_equal(yn_clock_utc_ms(&c), 1699996401623LL);
    assert_int_equal(yn_clock_mono_ms(&c) - m0, 1500); /* monotonic does not */
    assert_false(c.trusted);
}

static void test_correction_bounds(void **state)
{
    (void)state;
    yn_clock c;
    yn_clock_init(&c, &yn_clock_sim_ops);
    yn_clock_sim_set(&c, 1000000);
    assert_int_equal(yn_clock_correct(&c, 1000000 + 5000, 10000), YN_OK);
    assert_true(c.trusted);
    assert_int_equal(yn_clock_utc_ms(&c), 1005000);
    assert_int_equal(yn_clock_correct(&c, 1005000 + 60000, 10000), YN_EREFUSED);
    assert_false(c.trusted);
    assert_int_equal(yn_clock_utc_ms(&c), 1005000);              /* unchanged */
    assert_int_equal(yn_clock_correct(&c, 99000000, -1), YN_OK); /* first sync: any step */
    assert_int_equal(yn_clock_utc_ms(&c), 99000000);
}

static void test_system_clock_moves(void **state)
{
    (void)state;
    yn_clock c;
    yn_clock_init(&c, &yn_clock_system_ops);
    int64_t a = yn_clock_mono_ms(&c);
    yn_clock_sleep_ms(&c, 20);
    int64_t b = yn_clock_mono_ms(&c);
    assert_true(b - a >= 20);
    assert_true(yn_clock_utc_s(&c) > 1700000000LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_clock),
        cmocka_unit_test(test_correction_bounds),
        cmocka_unit_test(test_system_clock_moves),
    };
    return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
