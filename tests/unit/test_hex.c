/* test_hex.c — the one hex encoder and its two decoders: lenient for key
 * and card files (case, whitespace, comments), strict for the canonical
 * fields we write ourselves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "hex.h"

static void test_encode(void **state)
{
    (void)state;
    char out[9];
    memset(out, 'x', sizeof out);
    yn_hex_encode((const uint8_t[]){0x00, 0x0a, 0xff, 0x10}, 4, out);
    assert_string_equal(out, "000aff10");
    yn_hex_encode(NULL, 0, out);
    assert_string_equal(out, "");
}

static void test_decode_exact(void **state)
{
    (void)state;
    uint8_t b[3];
    assert_true(yn_hex_decode_exact("0aff10", b, 3));
    assert_memory_equal(b, ((const uint8_t[]){0x0a, 0xff, 0x10}), 3);
    assert_false(yn_hex_decode_exact("0AFF10", b, 3)); /* not the form we write */
    assert_false(yn_hex_decode_exact("0aff1", b, 3));
    assert_false(yn_hex_decode_exact("0aff1000", b, 3));
    assert_false(yn_hex_decode_exact("0a ff10", b, 3));
    assert_false(yn_hex_decode_exact("+aff10", b, 3));
}

static void test_decode_lenient(void **state)
{
    (void)state;
    uint8_t b[4];
    size_t n;
    assert_int_equal(yn_hex_decode("# c\n0a Ff\n10 # x\n", b, sizeof b, &n), YN_OK);
    assert_int_equal(n, 3);
    assert_int_equal(b[0], 0x0a);
    assert_int_equal(b[1], 0xff);
    assert_int_equal(b[2], 0x10);
    assert_int_equal(yn_hex_decode("0a0", b, sizeof b, &n), YN_EINVAL);
    assert_int_equal(yn_hex_decode("zz", b, sizeof b, &n), YN_EINVAL);
    assert_int_equal(yn_hex_decode("0102030405", b, sizeof b, &n), YN_ELIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_decode_exact),
        cmocka_unit_test(test_decode_lenient),
    };
    return cmocka_run_group_tests_name("hex", tests, NULL, NULL);
}
