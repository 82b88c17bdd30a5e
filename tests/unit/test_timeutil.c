/* test_timeutil.c — the calendar arithmetic against libc's timegm/gmtime
 * over four centuries around 1970, leap days, the Asia/Shanghai date at the
 * edges of a day, weekdays, and the monotonic clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <time.h>

#include "timeutil.h"

static int32_t ymd_of_tm(const struct tm *tm)
{
    return (tm->tm_year + 1900) * 10000 + (tm->tm_mon + 1) * 100 + tm->tm_mday;
}

/* Every 7th day from 1800 to 2200, both ways, against gmtime_r. */
static void test_days_against_libc(void **state)
{
    (void)state;
    for (int64_t days = -62000; days < 84000; days += 7) {
        time_t t = (time_t)(days * YN_TIME_DAY_S);
        struct tm tm;
        assert_non_null(gmtime_r(&t, &tm));
        int32_t ymd = ymd_of_tm(&tm);
        assert_int_equal(yn_time_ymd_of_days(days), ymd);
        assert_int_equal(yn_time_days_of_ymd(ymd), days);
        assert_int_equal(yn_time_weekday_of_days(days), tm.tm_wday == 0 ? 7 : tm.tm_wday);
    }
    assert_int_equal(yn_time_days_of_ymd(19700101), 0);
    assert_int_equal(yn_time_ymd_of_days(-1), 19691231);
    assert_int_equal(yn_time_weekday_of_days(0), 4); /* a Thursday */
}

static void test_valid_days(void **state)
{
    (void)state;
    assert_true(yn_time_ymd_valid(20240229));
    assert_true(yn_time_ymd_valid(20000229));  /* divisible by 400 */
    assert_false(yn_time_ymd_valid(21000229)); /* by 100 only */
    assert_false(yn_time_ymd_valid(20250229));
    assert_false(yn_time_ymd_valid(20250431));
    assert_false(yn_time_ymd_valid(20251300));
    assert_false(yn_time_ymd_valid(20250100));
    assert_false(yn_time_ymd_valid(18991231));
    assert_true(yn_time_ymd_valid(19000101));
    assert_true(yn_time_ymd_valid(99991231));
    assert_false(yn_time_ymd_valid(0));
}

/* Midnight in Shanghai is 16:00 UTC the day before. */
static void test_local_date(void **state)
{
    (void)state;
    struct tm tm = {.tm_year = 125, .tm_mon = 5, .tm_mday = 11, .tm_hour = 16};
    int64_t midnight = (int64_t)timegm(&tm); /* 2025-06-12 00:00 in Shanghai */
    assert_int_equal(yn_time_local_ymd(midnight - 1), 20250611);
    assert_int_equal(yn_time_local_ymd(midnight), 20250612);
    assert_int_equal(yn_time_local_ymd(0), 19700101);
    assert_int_equal(yn_time_local_ymd(-8 * 3600 - 1), 19691231);
    assert_int_equal(yn_time_local_ymd(2147483648LL), 20380119); /* past the 32-bit wrap */
}

static void test_monotonic(void **state)
{
    (void)state;
    int64_t a = yn_time_mono_ms();
    yn_time_sleep_ms(20);
    int64_t b = yn_time_mono_ms();
    assert_true(b - a >= 20);
    yn_time_sleep_ms(-5); /* nothing */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_days_against_libc),
        cmocka_unit_test(test_valid_days),
        cmocka_unit_test(test_local_date),
        cmocka_unit_test(test_monotonic),
    };
    return cmocka_run_group_tests_name("timeutil", tests, NULL, NULL);
}
