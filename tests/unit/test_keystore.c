/* test_keystore.c — key files: hex decoding, mode checks at every load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "keystore.h"
#include "testutil.h"

static void test_hex(void **state)
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

static void test_load_checks_mode_each_time(void **state)
{
    (void)state;
    char dir[256];
    yn_config cfg;
    yn_config_defaults(&cfg);
    yn_test_tmpdir(dir, sizeof dir);
    yn_test_write(dir, "t.key", "00112233445566778899aabbccddeeff\n", 0600, cfg.keys.terminal_key,
                  sizeof cfg.keys.terminal_key);
    yn_test_write(dir, "i.pub", "abcd\n", 0644, cfg.keys.issuer_pubkey,
                  sizeof cfg.keys.issuer_pubkey);
    yn_keystore ks;
    uint8_t k[64];
    size_t n;
    assert_int_equal(yn_keystore_open(&ks, &yn_keystore_file_ops, &cfg), YN_OK);
    assert_int_equal(yn_keystore_load(&ks, YN_KEYID_TERMINAL, k, sizeof k, &n), YN_OK);
    assert_int_equal(n, 16);
    assert_int_equal(k[15], 0xff);
    assert_int_equal(yn_keystore_load(&ks, YN_KEYID_ISSUER_PUB, k, sizeof k, &n), YN_OK);
    assert_int_equal(n, 2);
    /* a secret that became readable by others is refused from then on */
    chmod(cfg.keys.terminal_key, 0640);
    assert_int_equal(yn_keystore_load(&ks, YN_KEYID_TERMINAL, k, sizeof k, &n), YN_EPERM);
    assert_int_equal(n, 0);
    chmod(cfg.keys.terminal_key, 0400);
    assert_int_equal(yn_keystore_load(&ks, YN_KEYID_TERMINAL, k, sizeof k, &n), YN_OK);
    /* not configured, missing */
    assert_int_equal(yn_keystore_load(&ks, YN_KEYID_DISTRICT_PUB, k, sizeof k, &n), YN_ENOTFOUND);
    strcat(cfg.keys.card_master_key, "/nonexistent/m.key");
    assert_int_equal(yn_keystore_load(&ks, YN_KEYID_CARD_MASTER, k, sizeof k, &n), YN_ENOENT);
    yn_keystore_close(&ks);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_load_checks_mode_each_time),
    };
    return cmocka_run_group_tests_name("keystore", tests, NULL, NULL);
}
