/* test_ident.c — identifiers of identity-only cards: one text form per UID or
 * PUPI, random and meaningless values refused, the form checked strictly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ident.h"

static void test_make(void **state)
{
    (void)state;
    char id[YN_IDENT_MAX];
    static const uint8_t uid7[7] = {0x04, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6};
    static const uint8_t uid4[4] = {0xc4, 0x17, 0x9a, 0x2b};
    static const uint8_t uid10[10] = {0x04, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    assert_int_equal(yn_ident_make(false, uid7, 7, id), YN_OK);
    assert_string_equal(id, "A:04A1B2C3D4E5F6");
    assert_int_equal(yn_ident_make(false, uid4, 4, id), YN_OK);
    assert_string_equal(id, "A:C4179A2B");
    assert_int_equal(yn_ident_make(true, uid4, 4, id), YN_OK);
    assert_string_equal(id, "B:C4179A2B"); /* a PUPI is not the UID of the same bytes */
    assert_int_equal(yn_ident_make(false, uid10, 10, id), YN_OK);
    assert_string_equal(id, "A:04010203040506070809");
    assert_true(yn_ident_valid("A:04010203040506070809"));
}

static void test_refused(void **state)
{
    (void)state;
    char id[YN_IDENT_MAX] = "x";
    static const uint8_t random4[4] = {0x08, 0x12, 0x34, 0x56};
    static const uint8_t zero4[4] = {0}, ones4[4] = {0xff, 0xff, 0xff, 0xff};
    static const uint8_t uid7[7] = {0x04, 0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6};
    assert_true(yn_ident_random(false, random4, 4));
    assert_false(yn_ident_random(true, random4, 4)); /* a PUPI has no such prefix rule */
    assert_false(yn_ident_random(false, uid7, 7));   /* 08 only marks random single-size UIDs */
    assert_int_equal(yn_ident_make(false, random4, 4, id), YN_EREFUSED);
    assert_string_equal(id, "");
    assert_int_equal(yn_ident_make(true, zero4, 4, id), YN_EREFUSED);
    assert_int_equal(yn_ident_make(false, ones4, 4, id), YN_EREFUSED);
    assert_int_equal(yn_ident_make(true, uid7, 7, id), YN_EINVAL); /* a PUPI has 4 bytes */
    assert_int_equal(yn_ident_make(false, uid7, 5, id), YN_EINVAL);
    assert_int_equal(yn_ident_make(false, NULL, 4, id), YN_EINVAL);
}

static void test_valid(void **state)
{
    (void)state;
    static const char *const good[] = {"A:04A1B2C3D4E5F6", "A:C4179A2B", "B:1A2B3C4D"};
    static const char *const bad[] = {"",
                                      "A:",
                                      "a:04A1B2C3D4E5F6",
                                      "A:04a1b2c3d4e5f6", /* one spelling: upper case */
                                      "A-04A1B2C3D4E5F6",
                                      "C:04A1B2C3",
                                      "A:04A1B2C3D4E5",           /* 6 bytes */
                                      "B:04A1B2C3D4E5F6",         /* a 7-byte PUPI */
                                      "A:04A1B2C3D4E5F6 ",        /* trailing byte */
                                      "A:04A1B2C3D4E5FG",         /* not hex */
                                      "A:0401020304050607080900", /* 11 bytes */
                                      "A:08A1B2C3",               /* random UID */
                                      "A:00000000",
                                      "B:FFFFFFFF",
                                      NULL};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        assert_true(yn_ident_valid(good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (yn_ident_valid(bad[i]))
            fail_msg("accepted \"%s\"", bad[i] ? bad[i] : "(null)");
}

/* Each refusal says what is wrong, in words an operator at a CSV can act on. */
static void test_fault(void **state)
{
    (void)state;
    static const struct {
        const char *s, *says;
    } cases[] = {
        {"04A1B2C3", "must start with A:"},   {"A:04a1b2c3", "hex digits 0-9 and A-F, upper case"},
        {"A:04A1B2C3D4", "4, 7 or 10 bytes"}, {"B:04A1B2C3D4E5F6", "PUPI is 4 bytes"},
        {"A:08A1B2C3", "random UID"},         {"A:00000000", "all-zero or all-FF"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *why = yn_ident_fault(cases[i].s);
        if (!why || !strstr(why, cases[i].says))
            fail_msg("\"%s\": \"%s\", expected \"%s\"", cases[i].s, why ? why : "(accepted)",
                     cases[i].says);
    }
    assert_null(yn_ident_fault("A:04A1B2C3D4E5F6"));
    assert_null(yn_ident_fault("A:C8A1B2C3D4E5F6")); /* 7 bytes: 08 is not random there */
    assert_null(yn_ident_fault("A:08A1B2C3D4E5F6"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_fault),
    };
    return cmocka_run_group_tests_name("ident", tests, NULL, NULL);
}
