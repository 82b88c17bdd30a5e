/* test_clock.c — sim clock set/jump, server correction within bounds, the
 * evidence a reading rests on (steps detected against the boot clock, the
 * floor kept by the ledger, the estimate used while the wall clock is off),
 * and waits on the monotonic clock. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clock_sim.h"
#include "timeutil.h"

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
    yn_clock_sim_jump_wall(&c, -3600000); /* wall jumps back an hour: a step */
    yn_clock_reading rd;
    yn_clock_read(&c, &rd);
    assert_int_equal(rd.system_ms, 1699996401623LL);
    assert_int_equal(rd.utc_ms, 1700000001623LL); /* the estimate goes on */
    assert_int_equal(rd.state, YN_CLOCK_ESTIMATED);
    assert_false(rd.trusted);
    assert_int_equal(yn_clock_mono_ms(&c) - m0, 1500); /* monotonic does not */
    assert_false(c.trusted);
}

/* 1970, a year ahead and back, a step during lunch; small slew is no step. */
static void test_steps_are_detected(void **state)
{
    (void)state;
    const int64_t lunch = 1773115200000LL; /* 2026-03-10 12:00 Asia/Shanghai */
    yn_clock c;
    yn_clock_reading rd;
    yn_clock_init(&c, &yn_clock_sim_ops);
    yn_clock_sim_set(&c, lunch - 1000);
    assert_int_equal(yn_clock_correct(&c, lunch, -1), YN_OK);
    yn_clock_read(&c, &rd);
    assert_int_equal(rd.state, YN_CLOCK_SERVER);
    assert_true(rd.trusted);
    assert_int_equal(rd.utc_ms, lunch);
    /* NTP's slew (500 ppm) over an hour: 1.8 s, no step */
    yn_clock_sim_advance(&c, 3600 * 1000);
    yn_clock_sim_jump_wall(&c, 1800);
    yn_clock_read(&c, &rd);
    assert_int_equal(rd.state, YN_CLOCK_SERVER);
    assert_int_equal(rd.utc_ms, lunch + 3600 * 1000 + 1800);
    static const int64_t steps[] = {-lunch + 86400000LL, 366 * 86400000LL, 5 * 60 * 1000};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        yn_clock_read(&c, &rd);
        int64_t before = rd.utc_ms;
        yn_clock_sim_jump_wall(&c, steps[i]);
        yn_clock_sim_advance(&c, 1000);
        yn_clock_read(&c, &rd);
        assert_int_equal(rd.state, YN_CLOCK_ESTIMATED);
        assert_false(rd.trusted);
        assert_int_equal(rd.utc_ms, before + 1000);
        yn_clock_sim_jump_wall(&c, -steps[i]); /* and back */
        yn_clock_read(&c, &rd);
        assert_int_equal(rd.state, YN_CLOCK_SERVER);
        assert_true(rd.trusted);
        assert_int_equal(rd.utc_ms, before + 1000);
    }
    /* the server's time ends an estimate */
    yn_clock_sim_jump_wall(&c, 7 * 86400000LL);
    yn_clock_read(&c, &rd);
    assert_int_equal(rd.state, YN_CLOCK_ESTIMATED);
    assert_int_equal(yn_clock_correct(&c, rd.utc_ms + 20, 10 * 60 * 1000), YN_OK);
    yn_clock_read(&c, &rd);
    assert_int_equal(rd.state, YN_CLOCK_SERVER);
}

/* No time before the ledger's floor: 1970 at boot is no evidence at all; a
 * little below is held at the floor; a correct clock is taken unverified. */
static void test_floor(void **state)
{
    (void)state;
    const int64_t floor = 1773115200000LL;
    yn_clock c;
    yn_clock_reading rd;
    yn_clock_init(&c, &yn_clock_sim_ops);
    yn_clock_sim_set(&c, 86400000LL); /* 1970-01-02 */
    yn_clock_set_floor(&c, floor);
    yn_clock_read(&c, &rd);
    assert_int_equal(rd.state, YN_CLOCK_UNKNOWN);
    assert_false(rd.trusted);
    assert_int_equal(rd.utc_ms, floor);
    assert_int_equal(rd.system_ms, 86400000LL);
    /* someone sets the clock: now plausible, taken (unverified) */
    yn_clock_sim_jump_wall(&c, floor + 60000 - 86400000LL);
    yn_clock_read(&c, &rd);
    assert_int_equal(rd.state, YN_CLOCK_LOCAL);
    assert_int_equal(rd.utc_ms, floor + 60000);
    /* a clock anchored before the ledger said otherwise is dropped */
    yn_clock_init(&c, &yn_clock_sim_ops);
    yn_clock_sim_set(&c, 86400000LL);
    yn_clock_read(&c, &rd);
    assert_int_equal(rd.state, YN_CLOCK_LOCAL);
    yn_clock_set_floor(&c, floor);
    yn_clock_read(&c, &rd);
    assert_int_equal(rd.state, YN_CLOCK_UNKNOWN);
    /* five minutes below the floor (an NTP correction): held at the floor */
    yn_clock_init(&c, &yn_clock_sim_ops);
    yn_clock_sim_set(&c, floor - 5 * 60 * 1000);
    yn_clock_set_floor(&c, floor);
    yn_clock_read(&c, &rd);
    assert_int_equal(rd.state, YN_CLOCK_LOCAL);
    assert_int_equal(rd.utc_ms, floor);
    yn_clock_sim_advance(&c, 6 * 60 * 1000);
    yn_clock_read(&c, &rd);
    assert_int_equal(rd.utc_ms, floor + 60 * 1000);
    /* the server's time wins over the floor */
    assert_int_equal(yn_clock_correct(&c, floor - 3600 * 1000, -1), YN_OK);
    yn_clock_read(&c, &rd);
    assert_int_equal(rd.state, YN_CLOCK_SERVER);
    assert_int_equal(rd.utc_ms, floor - 3600 * 1000);
}

/* The program restarts in the same boot: the kept anchor continues, so a
 * step made while it was down is seen. */
static void test_resume(void **state)
{
    (void)state;
    yn_clock c;
    yn_clock_reading rd;
    yn_clock_init(&c, &yn_clock_sim_ops);
    yn_clock_sim_set(&c, 1000000000000LL);
    yn_clock_sim_advance(&c, 10000); /* boot clock 11000 */
    yn_clock_resume(&c, 1000, 1000000000000LL + 30000, 30000, true);
    yn_clock_read(&c, &rd); /* wall 1e12 + 10 s + offset 30 s = the anchor's estimate */
    assert_int_equal(rd.state, YN_CLOCK_SERVER);
    assert_int_equal(rd.utc_ms, 1000000000000LL + 40000);
    yn_clock_sim_jump_wall(&c, 3600 * 1000);
    yn_clock_read(&c, &rd);
    assert_int_equal(rd.state, YN_CLOCK_ESTIMATED);
    assert_int_equal(rd.utc_ms, 1000000000000LL + 40000);
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
    int64_t t0 = yn_time_mono_ms();
    struct timespec until = yn_clock_mono_deadline(t0 + 50);
    int rc = 0;
    pthread_mutex_lock(&mu);
    while (rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&cv, &mu, &until);
    pthread_mutex_unlock(&mu);
    int64_t waited_ms = yn_time_mono_ms() - t0;
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
        cmocka_unit_test(test_steps_are_detected),
        cmocka_unit_test(test_floor),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_system_clock_moves),
        cmocka_unit_test(test_cond_waits_on_monotonic_clock),
    };
    return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
