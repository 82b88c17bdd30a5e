/* test_clock.c — sim clock set/jump, server correction within bounds, waits
 * on the monotonic clock. */
#include <errno.h>
#include <pthread.h>
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

/* A deadline on the monotonic clock is honoured by the condition variable:
 * were it measured on CLOCK_REALTIME, a deadline of some seconds after boot
 * would lie in 1970 and the wait would end at once. */
static void test_cond_waits_on_monotonic_clock(void **state)
{
    (void)state;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv;
    assert_int_equal(yn_clock_cond_init(&cv), YN_OK);
    int64_t t0 = yn_clock_mono_now_ms();
    struct timespec until = yn_clock_mono_deadline(t0 + 50);
    int rc = 0;
    pthread_mutex_lock(&mu);
    while (rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&cv, &mu, &until);
    pthread_mutex_unlock(&mu);
    int64_t waited_ms = yn_clock_mono_now_ms() - t0;
    assert_true(waited_ms >= 50);
    assert_true(waited_ms < 60000);
    pthread_cond_destroy(&cv);
    /* the deadline is the monotonic time, split as pthread wants it */
    until = yn_clock_mono_deadline(123456789);
    assert_int_equal(until.tv_sec, 123456);
    assert_int_equal(until.tv_nsec, 789000000L);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sim_clock),
        cmocka_unit_test(test_correction_bounds),
        cmocka_unit_test(test_system_clock_moves),
        cmocka_unit_test(test_cond_waits_on_monotonic_clock),
    };
    return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
