/* test_money.c — fen formatting and staff price entry. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "money.h"

static void test_format(void **state)
{
    (void)state;
    char b[32];
    yn_fen_format(1500, b, sizeof b);
    assert_string_equal(b, "¥15.00");
    yn_fen_format(5, b, sizeof b);
    assert_string_equal(b, "¥0.05");
    yn_fen_format(-50, b, sizeof b);
    assert_string_equal(b, "-¥0.50");
    yn_fen_format(INT64_MIN, b, sizeof b);
    assert_string_equal(b, "-¥92233720368547758.08");
}

static void test_parse(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t fen; /* -1 = refused */
    } cases[] = {{"15", 1500},    {"12.5", 1250}, {"9.05", 905}, {"0.5", 50},
                 {".5", 50},      {"8.", 800},    {"0", 0},      {"1000", 100000},
                 {"1000.01", -1}, {"", -1},       {".", -1},     {"1.234", -1},
                 {"1..2", -1},    {"1a", -1},     {"-3", -1},    {"1234567890", -1}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int64_t fen = -7;
        int rc = yn_fen_parse_yuan(cases[i].in, 100000, &fen);
        if (cases[i].fen < 0) {
            assert_int_equal(rc, YN_EINVAL);
            assert_int_equal(fen, -7);
        } else {
            assert_int_equal(rc, YN_OK);
            assert_int_equal(fen, cases[i].fen);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests_name("money", tests, NULL, NULL);
}
