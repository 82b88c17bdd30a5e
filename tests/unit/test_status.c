/* test_status.c — every status has its own technician text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "status.h"

static void test_every_status_has_distinct_text(void **state)
{
    (void)state;
    for (int a = 0; a < YN_STATUS_COUNT; a++) {
        assert_string_not_equal(yn_strerror(a), "unknown status");
        for (int b = a + 1; b < YN_STATUS_COUNT; b++)
            assert_string_not_equal(yn_strerror(a), yn_strerror(b));
    }
}

static void test_out_of_range_is_unknown(void **state)
{
    (void)state;
    assert_string_equal(yn_strerror(-1), "unknown status");
    assert_string_equal(yn_strerror(YN_STATUS_COUNT), "unknown status");
    assert_string_equal(yn_strerror(YN_ETIMEDOUT), "timed out");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_status_has_distinct_text),
        cmocka_unit_test(test_out_of_range_is_unknown),
    };
    return cmocka_run_group_tests_name("status", tests, NULL, NULL);
}
