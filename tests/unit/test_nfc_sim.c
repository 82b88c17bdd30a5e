/* test_nfc_sim.c — the simulated reader: cards come and go, keys are checked,
 * faults happen on cue, card files are validated line by line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "config.h"
#include "hal.h"
#include "nfc_sim.h"
#include "testutil.h"

static const uint8_t key_a[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t key_b[16] = {0};

static void open_sim(yn_nfc *dev)
{
    yn_config cfg;
    yn_config_defaults(&cfg);
    assert_int_equal(yn_nfc_open(dev, &cfg.reader), YN_OK);
    yn_sim_card c = {.label = "A",
                     .tag = {.uid = {4, 1, 2, 3, 4, 5, 6}, .uid_len = 7, .type = YN_TAG_DESFIRE}};
    memcpy(c.key, key_a, 16);
    memcpy(c.record, "REC", 3);
    c.record_len = 3;
    assert_int_equal(yn_nfc_sim_add(dev, &c), 0);
    c.tag.uid[6] = 7;
    memcpy(c.key, key_b, 16);
    assert_int_equal(yn_nfc_sim_add(dev, &c), 1);
}

static void test_poll_present_remove(void **state)
{
    (void)state;
    yn_nfc dev;
    yn_nfc_tag tag;
    open_sim(&dev);
    assert_int_equal(yn_nfc_poll(&dev, 10, &tag), YN_ENOCARD);
    assert_int_equal(yn_nfc_sim_present(&dev, 1), YN_OK);
    assert_int_equal(yn_nfc_poll(&dev, 10, &tag), YN_OK);
    assert_int_equal(tag.uid_len, 7);
    assert_int_equal(tag.uid[6], 7);
    char hex[32];
    yn_nfc_uid_hex(&tag, hex, sizeof hex);
    assert_string_equal(hex, "04010203040507");
    assert_int_equal(yn_nfc_sim_present(&dev, 5), YN_ENOTFOUND);
    assert_int_equal(yn_nfc_sim_present(&dev, -1), YN_OK);
    assert_int_equal(yn_nfc_poll(&dev, 10, &tag), YN_ENOCARD);
    yn_nfc_close(&dev);
}

static void test_read_write_needs_the_cards_key(void **state)
{
    (void)state;
    yn_nfc dev;
    yn_nfc_tag tag;
    uint8_t buf[64];
    size_t len;
    open_sim(&dev);
    assert_int_equal(yn_nfc_sim_present(&dev, 0), YN_OK);
    assert_int_equal(yn_nfc_poll(&dev, 10, &tag), YN_OK);
    assert_int_equal(yn_nfc_read(&dev, &tag, YN_NFC_AREA_RECORD, key_b, buf, sizeof buf, &len),
                     YN_EAUTH); /* a clone's key */
    assert_int_equal(yn_nfc_read(&dev, &tag, YN_NFC_AREA_RECORD, key_a, buf, sizeof buf, &len),
                     YN_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "REC", 3);
    assert_int_equal(yn_nfc_write(&dev, &tag, YN_NFC_AREA_STAMP, key_a, (const uint8_t *)"S1", 2),
                     YN_OK);
    assert_int_equal(yn_nfc_read(&dev, &tag, YN_NFC_AREA_STAMP, key_a, buf, sizeof buf, &len),
                     YN_OK);
    assert_int_equal(len, 2);
    assert_memory_equal(buf, "S1", 2);
    assert_int_equal(yn_nfc_read(&dev, &tag, YN_NFC_AREA_RECORD, key_a, buf, 2, &len), YN_ELIMIT);
    yn_nfc_close(&dev);
}

static void test_faults_on_cue(void **state)
{
    (void)state;
    yn_nfc dev;
    yn_nfc_tag tag;
    uint8_t buf[64];
    size_t len;
    open_sim(&dev);
    assert_int_equal(yn_nfc_sim_present(&dev, 0), YN_OK);
    assert_int_equal(yn_nfc_poll(&dev, 10, &tag), YN_OK);

    yn_nfc_sim_fault(&dev, YN_SIM_SILENT);
    assert_int_equal(yn_nfc_read(&dev, &tag, YN_NFC_AREA_RECORD, key_a, buf, sizeof buf, &len),
                     YN_ETIMEDOUT);
    assert_int_equal(yn_nfc_read(&dev, &tag, YN_NFC_AREA_RECORD, key_a, buf, sizeof buf, &len),
                     YN_OK); /* one-shot */

    yn_nfc_sim_fault(&dev, YN_SIM_GARBAGE);
    assert_int_equal(yn_nfc_read(&dev, &tag, YN_NFC_AREA_RECORD, key_a, buf, sizeof buf, &len),
                     YN_EPROTO);

    /* pulled away mid-write: nothing written, card gone */
    yn_nfc_sim_fault(&dev, YN_SIM_PULL_ON_WRITE);
    assert_int_equal(yn_nfc_write(&dev, &tag, YN_NFC_AREA_STAMP, key_a, (const uint8_t *)"S2", 2),
                     YN_ECARDGONE);
    assert_int_equal(yn_nfc_poll(&dev, 10, &tag), YN_ENOCARD);
    assert_int_equal(yn_nfc_sim_present(&dev, 0), YN_OK);
    assert_int_equal(yn_nfc_poll(&dev, 10, &tag), YN_OK);
    assert_int_equal(yn_nfc_read(&dev, &tag, YN_NFC_AREA_STAMP, key_a, buf, sizeof buf, &len),
                     YN_OK);
    assert_int_equal(len, 0);

    /* another card in the field: operations on the old tag fail */
    yn_nfc_tag old = tag;
    assert_int_equal(yn_nfc_sim_present(&dev, 1), YN_OK);
    assert_int_equal(yn_nfc_read(&dev, &old, YN_NFC_AREA_RECORD, key_a, buf, sizeof buf, &len),
                     YN_ECARDGONE);

    yn_nfc_sim_fault(&dev, YN_SIM_UNPLUGGED);
    assert_int_equal(yn_nfc_poll(&dev, 10, &tag), YN_ENODEV);
    assert_int_equal(yn_nfc_poll(&dev, 10, &tag), YN_ENODEV); /* stays unplugged */
    char what[64];
    assert_int_equal(yn_nfc_describe(&dev, what, sizeof what), YN_ENODEV);
    yn_nfc_sim_fault(&dev, YN_SIM_OK);
    assert_int_equal(yn_nfc_poll(&dev, 10, &tag), YN_OK);
    yn_nfc_close(&dev);
}

static void test_card_file(void **state)
{
    (void)state;
    char dir[256], path[512], err[256];
    yn_test_tmpdir(dir, sizeof dir);
    yn_nfc dev;
    yn_config cfg;
    yn_config_defaults(&cfg);
    assert_int_equal(yn_nfc_open(&dev, &cfg.reader), YN_OK);
    yn_test_write(dir, "ok.txt",
                  "# comment\n张桂英|desfire|04a1b2c3d4e5f6|000102030405060708090a0b0c0d0e0f|"
                  "cafe|\nB|classic1k|a1b2c3d4|000102030405060708090a0b0c0d0e0f||\n",
                  0644, path, sizeof path);
    assert_int_equal(yn_nfc_sim_load(&dev, path, err, sizeof err), YN_OK);
    assert_int_equal(yn_nfc_sim_count(&dev), 2);
    const yn_sim_card *c = yn_nfc_sim_card(&dev, 0);
    assert_string_equal(c->label, "张桂英");
    assert_int_equal(c->tag.type, YN_TAG_DESFIRE);
    assert_int_equal(c->record_len, 2);
    assert_int_equal(yn_nfc_sim_card(&dev, 1)->tag.type, YN_TAG_CLASSIC_1K);

    static const struct {
        const char *text, *expect;
    } bad[] = {
        {"A|desfire|04a1\n", ":1: expected 6 fields"},
        {"\nA|mifare|04a1b2c3d4e5f6|000102030405060708090a0b0c0d0e0f||\n", ":2: type must be"},
        {"A|desfire|04a1b2|000102030405060708090a0b0c0d0e0f||\n", ":1: uid must be 4 or 7"},
        {"A|desfire|04a1b2c3d4e5f6|0001||\n", ":1: key must be 16 bytes"},
        {"A|desfire|04a1b2c3d4e5f6|000102030405060708090a0b0c0d0e0f|xyz|\n", ":1: record must"},
        {"A|desfire|04a1b2c3d4e5f6|000102030405060708090a0b0c0d0e0f|||\n", ":1: expected 6"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        yn_test_write(dir, "bad.txt", bad[i].text, 0644, path, sizeof path);
        assert_int_not_equal(yn_nfc_sim_load(&dev, path, err, sizeof err), YN_OK);
        assert_non_null(strstr(err, bad[i].expect));
    }
    yn_nfc_close(&dev);
}

static void test_registry(void **state)
{
    (void)state;
    char names[128];
    assert_true(yn_hal_known(YN_HAL_NFC, "sim"));
    assert_false(yn_hal_known(YN_HAL_NFC, "none")); /* a terminal needs a reader */
    assert_true(yn_hal_known(YN_HAL_SCALE, "none"));
    assert_false(yn_hal_known(YN_HAL_DISPLAY, "hologram"));
    assert_ptr_equal(yn_hal_find(YN_HAL_NFC, "sim"), &yn_nfc_sim_ops);
    yn_hal_names(YN_HAL_SCALE, names, sizeof names);
    assert_non_null(strstr(names, "sim"));
    assert_non_null(strstr(names, "none"));
}

/* The issuing desk on the sim: a blank card (loaded as desfire-blank) has no
 * application until format; issue checks key 0; a second format needs force. */
static void test_blank_card_format_and_issue(void **state)
{
    (void)state;
    char dir[256], path[300], err[256];
    yn_test_tmpdir(dir, sizeof dir);
    yn_test_write(dir, "blank.txt",
                  "blank|desfire-blank|04aabbccddeeff|||\n"
                  "bad|desfire-blank|04aabbccddeeff|00112233445566778899aabbccddeeff||\n",
                  0600, path, sizeof path);
    yn_nfc dev;
    yn_nfc_tag tag;
    yn_config cfg;
    yn_config_defaults(&cfg);
    assert_int_equal(yn_nfc_open(&dev, &cfg.reader), YN_OK);
    assert_int_equal(yn_nfc_sim_load(&dev, path, err, sizeof err), YN_EINVAL);
    assert_non_null(strstr(err, ":2: a blank card has empty key"));
    assert_int_equal(yn_nfc_sim_count(&dev), 1);
    assert_int_equal(yn_nfc_sim_present(&dev, 0), YN_OK);
    assert_int_equal(yn_nfc_poll(&dev, 0, &tag), YN_OK);
    uint8_t buf[64];
    size_t len = 0;
    yn_nfc_issue_keys keys = {.key_version = 1};
    memcpy(keys.card_key, key_a, 16);
    memset(keys.issuer_key, 0x5A, 16);
    assert_int_equal(yn_nfc_read(&dev, &tag, YN_NFC_AREA_RECORD, key_a, buf, sizeof buf, &len),
                     YN_ENOTFOUND);
    assert_int_equal(yn_nfc_issue(&dev, &tag, &keys, (const uint8_t *)"REC", 3), YN_ENOTFOUND);
    assert_int_equal(yn_nfc_format(&dev, &tag, &keys, 116, 0), YN_OK);
    assert_int_equal(yn_nfc_format(&dev, &tag, &keys, 116, 0), YN_EDUPLICATE);
    yn_nfc_issue_keys wrong = keys;
    memcpy(wrong.issuer_key, key_a, 16); /* the terminal's key is not key 0 */
    assert_int_equal(yn_nfc_issue(&dev, &tag, &wrong, (const uint8_t *)"REC", 3), YN_EAUTH);
    assert_int_equal(yn_nfc_issue(&dev, &tag, &keys, (const uint8_t *)"REC", 3), YN_OK);
    assert_int_equal(yn_nfc_write(&dev, &tag, YN_NFC_AREA_RECORD, key_a, buf, 3), YN_EPERM);
    assert_int_equal(yn_nfc_read(&dev, &tag, YN_NFC_AREA_RECORD, key_a, buf, sizeof buf, &len),
                     YN_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "REC", 3);
    yn_nfc_sim_fault(&dev, YN_SIM_PULL_ON_WRITE);
    assert_int_equal(yn_nfc_format(&dev, &tag, &keys, 116, YN_NFC_FORCE), YN_ECARDGONE);
    assert_int_equal(yn_nfc_sim_present(&dev, 0), YN_OK);
    assert_int_equal(yn_nfc_format(&dev, &tag, &keys, 116, YN_NFC_FORCE), YN_OK);
    yn_nfc_close(&dev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poll_present_remove),
        cmocka_unit_test(test_read_write_needs_the_cards_key),
        cmocka_unit_test(test_faults_on_cue),
        cmocka_unit_test(test_card_file),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_blank_card_format_and_issue),
    };
    return cmocka_run_group_tests_name("nfc_sim", tests, NULL, NULL);
}
