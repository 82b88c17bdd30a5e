/* test_card.c — the card record (encode, sign, decode, verify), the key ring,
 * AN10922 key diversification and the "last meal" stamp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "an10922.h"
#include "card.h"
#include "hex.h"
#include "keystore.h"

static const uint8_t uid7[7] = {0x04, 0xA1, 0xB2, 0xC3, 0xD4, 0xE5, 0xF6};

/* A fresh issuer key pair for each test group run. */
static uint8_t issuer_priv[YN_CARD_PRIVKEY_LEN], issuer_pub[YN_CARD_PUBKEY_LEN];
static uint8_t other_priv[YN_CARD_PRIVKEY_LEN], other_pub[YN_CARD_PUBKEY_LEN];

static void keygen(uint8_t priv[32], uint8_t pub[32])
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    EVP_PKEY *pkey = NULL;
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_keygen_init(ctx), 1);
    assert_int_equal(EVP_PKEY_keygen(ctx, &pkey), 1);
    size_t n = 32;
    assert_int_equal(EVP_PKEY_get_raw_private_key(pkey, priv, &n), 1);
    assert_int_equal(n, 32);
    n = 32;
    assert_int_equal(EVP_PKEY_get_raw_public_key(pkey, pub, &n), 1);
    assert_int_equal(n, 32);
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(ctx);
}

static int setup_keys(void **state)
{
    (void)state;
    keygen(issuer_priv, issuer_pub);
    keygen(other_priv, other_pub);
    return 0;
}

static yn_card_record sample(void)
{
    yn_card_record r;
    memset(&r, 0, sizeof r);
    r.format_version = YN_CARD_FORMAT_V1;
    r.key_version = 3;
    strcpy(r.card_no, "GD4403040012345");
    r.birth_ymd = 19450312;
    r.flags = YN_FLAG_DIBAO | YN_FLAG_SHIDU;
    r.district = 440304;
    r.street = 440304001;
    r.issue_ymd = 20250102;
    r.expiry_ymd = 20291231;
    return r;
}

static yn_card_keyring ring_with(uint8_t version, const uint8_t pub[32])
{
    yn_card_keyring ring;
    memset(&ring, 0, sizeof ring);
    assert_int_equal(yn_card_keyring_add(&ring, version, pub), YN_OK);
    return ring;
}

/* A signed, encoded sample record for uid7. */
static size_t issue(uint8_t buf[YN_CARD_RECORD_MAX])
{
    yn_card_record r = sample();
    size_t len = 0;
    const char *why = NULL;
    assert_int_equal(yn_card_encode_signed(&r, uid7, sizeof uid7, issuer_priv, buf,
                                           YN_CARD_RECORD_MAX, &len, &why),
                     YN_OK);
    assert_int_equal(len, YN_CARD_RECORD_V1_LEN);
    return len;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Decoding buf must fail with ECORRUPT and a reason containing `expect`. */
static void assert_corrupt(const uint8_t *buf, size_t len, const char *expect)
{
    yn_card_record out;
    const char *why = NULL;
    assert_int_equal(yn_card_decode(buf, len, &out, &why), YN_ECORRUPT);
    assert_non_null(why);
    if (!strstr(why, expect))
        fail_msg("reason \"%s\" does not contain \"%s\"", why, expect);
}

/* Patch a 32-bit field of a good record and expect the decoder's reason. */
static void assert_field_corrupt(size_t off, uint32_t value, const char *expect)
{
    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t len = issue(buf);
    put_be32(buf + off, value);
    assert_corrupt(buf, len, expect);
}

/* --- record ------------------------------------------------------------ */

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t len = issue(buf);
    yn_card_record want = sample(), got;
    const char *why = NULL;
    assert_int_equal(yn_card_decode(buf, len, &got, &why), YN_OK);
    assert_string_equal(why, "ok");
    assert_int_equal(got.format_version, 1);
    assert_int_equal(got.key_version, 3);
    assert_string_equal(got.card_no, "GD4403040012345");
    assert_int_equal(got.birth_ymd, 19450312);
    assert_int_equal(got.flags, want.flags);
    assert_int_equal(got.district, 440304);
    assert_int_equal(got.street, 440304001);
    assert_int_equal(got.issue_ymd, 20250102);
    assert_int_equal(got.expiry_ymd, 20291231);
    assert_memory_equal(got.signature, buf + 52, 64);

    yn_card_keyring ring = ring_with(3, issuer_pub);
    assert_int_equal(yn_card_verify(&got, uid7, sizeof uid7, &ring), YN_OK);
    yn_card_record read;
    assert_int_equal(yn_card_read(buf, len, uid7, sizeof uid7, &ring, &read, &why), YN_OK);
    assert_memory_equal(&read, &got, sizeof got);

    /* canonical: re-encoding the decoded record gives the same bytes */
    uint8_t again[YN_CARD_RECORD_MAX];
    size_t again_len = 0;
    assert_int_equal(yn_card_encode(&got, again, sizeof again, &again_len, NULL), YN_OK);
    assert_int_equal(again_len, len);
    assert_memory_equal(again, buf, len);

    /* Ed25519 is deterministic: issuing twice writes the same bytes */
    uint8_t twice[YN_CARD_RECORD_MAX];
    assert_int_equal(issue(twice), len);
    assert_memory_equal(twice, buf, len);
}

static void test_layout_offsets(void **state)
{
    (void)state;
    uint8_t buf[YN_CARD_RECORD_MAX];
    issue(buf);
    static const uint8_t head[] = "YN\x01\x03"               /* magic, format, key version */
                                  "GD4403040012345\0\0\0\0"; /* card number, 20 bytes */
    assert_memory_equal(buf, head, 24);
    assert_int_equal(buf[23], 0);
    static const uint8_t fields[] = {
        0x01, 0x28, 0xC9, 0xC8, /* 24 birth 19450312 */
        0x00, 0x00, 0x00, 0x12, /* 28 flags DIBAO|SHIDU */
        0x00, 0x06, 0xB7, 0xF0, /* 32 district 440304 */
        0x1A, 0x3E, 0x81, 0x81, /* 36 street 440304001 */
        0x01, 0x34, 0xFD, 0xF6, /* 40 issue 20250102 */
        0x01, 0x35, 0x9E, 0x9F, /* 44 expiry 20291231 */
        0x00, 0x00, 0x00, 0x00, /* 48 reserved */
    };
    assert_memory_equal(buf + 24, fields, sizeof fields);
    assert_int_equal(yn_card_record_size(1), 116);
    assert_int_equal(yn_card_record_size(0), 0);
    assert_int_equal(yn_card_record_size(2), 0);
}

static void test_to_facts_and_expiry(void **state)
{
    (void)state;
    yn_card_record r = sample();
    yn_card_facts f;
    memset(&f, 0xAA, sizeof f);
    yn_card_to_facts(&r, &f);
    assert_string_equal(f.card_no, "GD4403040012345");
    assert_int_equal(f.birth_ymd, 19450312);
    assert_int_equal(f.flags, YN_FLAG_DIBAO | YN_FLAG_SHIDU);
    assert_int_equal(f.district, 440304);
    assert_int_equal(f.street, 440304001);
    assert_int_equal(f.expiry_ymd, 20291231);

    assert_false(yn_card_expired(&r, 20250102)); /* issue day */
    assert_false(yn_card_expired(&r, 20270615));
    assert_false(yn_card_expired(&r, 20291231)); /* last valid day */
    assert_true(yn_card_expired(&r, 20300101));
    assert_true(yn_card_expired(&r, 20250101)); /* before issue: clock or card wrong */
    assert_true(yn_card_expired(&r, 20250230)); /* not a date: fail closed */
    assert_true(yn_card_expired(&r, 0));
    assert_true(yn_card_expired(NULL, 20270615));
}

static void test_field_change_breaks_signature(void **state)
{
    (void)state;
    yn_card_keyring ring = ring_with(3, issuer_pub);
    uint8_t good[YN_CARD_RECORD_MAX];
    size_t len = issue(good);
    /* each change leaves a well-formed record: only the signature catches it */
    static const struct {
        size_t off;
        uint8_t xor_mask;
    } changes[] = {
        {4 + 14, 0x01},  /* card number last digit 5 -> 4 */
        {24 + 3, 0x01},  /* birth 19450312 -> 19450313 */
        {28 + 3, 0x01},  /* flags + TEKUN */
        {44 + 3, 0x02},  /* expiry 20291231 -> 20291229 */
        {52, 0x01},      /* signature R */
        {52 + 40, 0x10}, /* signature S */
        {115, 0x01},     /* signature last byte */
    };
    for (size_t i = 0; i < sizeof changes / sizeof changes[0]; i++) {
        uint8_t buf[YN_CARD_RECORD_MAX];
        memcpy(buf, good, len);
        buf[changes[i].off] ^= changes[i].xor_mask;
        yn_card_record out;
        assert_int_equal(yn_card_decode(buf, len, &out, NULL), YN_OK);
        const char *why = NULL;
        assert_int_equal(yn_card_read(buf, len, uid7, sizeof uid7, &ring, &out, &why), YN_EAUTH);
        assert_non_null(strstr(why, "signature"));
    }
}

static void test_every_byte_flip_rejected(void **state)
{
    (void)state;
    yn_card_keyring ring = ring_with(3, issuer_pub);
    uint8_t good[YN_CARD_RECORD_MAX];
    size_t len = issue(good);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t buf[YN_CARD_RECORD_MAX];
            memcpy(buf, good, len);
            buf[i] ^= (uint8_t)(1u << bit);
            yn_card_record out;
            int rc = yn_card_read(buf, len, uid7, sizeof uid7, &ring, &out, NULL);
            if (i == 3) /* key version: unknown to this ring */
                assert_int_equal(rc, YN_ENOTFOUND);
            else if (i >= 52) /* signature bytes */
                assert_int_equal(rc, YN_EAUTH);
            else if (rc != YN_EAUTH && rc != YN_ECORRUPT)
                fail_msg("byte %zu bit %d: status %d", i, bit, rc);
        }
    }
}

static void test_uid_is_signed(void **state)
{
    (void)state;
    yn_card_keyring ring = ring_with(3, issuer_pub);
    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t len = issue(buf);
    yn_card_record out;
    for (size_t i = 0; i < sizeof uid7; i++) {
        uint8_t other[7];
        memcpy(other, uid7, sizeof other);
        other[i] ^= 0x01;
        assert_int_equal(yn_card_read(buf, len, other, sizeof other, &ring, &out, NULL), YN_EAUTH);
    }
    /* same leading bytes, other length */
    assert_int_equal(yn_card_read(buf, len, uid7, 4, &ring, &out, NULL), YN_EAUTH);
    /* not a UID length at all */
    assert_int_equal(yn_card_read(buf, len, uid7, 5, &ring, &out, NULL), YN_EINVAL);
    assert_int_equal(yn_card_read(buf, len, NULL, 7, &ring, &out, NULL), YN_EINVAL);
    /* the genuine card still reads */
    assert_int_equal(yn_card_read(buf, len, uid7, sizeof uid7, &ring, &out, NULL), YN_OK);
}

static void test_key_versions(void **state)
{
    (void)state;
    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t len = issue(buf);
    yn_card_record out;
    const char *why = NULL;

    yn_card_keyring ring = ring_with(4, issuer_pub); /* right key, other version */
    assert_int_equal(yn_card_read(buf, len, uid7, sizeof uid7, &ring, &out, &why), YN_ENOTFOUND);
    assert_non_null(strstr(why, "key version"));
    yn_card_keyring empty;
    memset(&empty, 0, sizeof empty);
    assert_int_equal(yn_card_read(buf, len, uid7, sizeof uid7, &empty, &out, NULL), YN_ENOTFOUND);

    /* version 3 known but holds another issuer's key */
    ring = ring_with(3, other_pub);
    assert_int_equal(yn_card_read(buf, len, uid7, sizeof uid7, &ring, &out, NULL), YN_EAUTH);

    /* the key version is signed: relabelling a record for another known key fails */
    ring = ring_with(3, issuer_pub);
    assert_int_equal(yn_card_keyring_add(&ring, 4, other_pub), YN_OK);
    buf[3] = 4;
    assert_int_equal(yn_card_read(buf, len, uid7, sizeof uid7, &ring, &out, NULL), YN_EAUTH);
    buf[3] = 3;
    assert_int_equal(yn_card_read(buf, len, uid7, sizeof uid7, &ring, &out, NULL), YN_OK);

    /* a record signed by key version 4 verifies with the same ring */
    yn_card_record r = sample();
    r.key_version = 4;
    size_t len4 = 0;
    assert_int_equal(
        yn_card_encode_signed(&r, uid7, sizeof uid7, other_priv, buf, sizeof buf, &len4, NULL),
        YN_OK);
    assert_int_equal(yn_card_read(buf, len4, uid7, sizeof uid7, &ring, &out, NULL), YN_OK);
    assert_int_equal(out.key_version, 4);

    /* key version 0 is reserved */
    buf[3] = 0;
    assert_corrupt(buf, len4, "key version 0");
}

static void test_truncated_and_oversized(void **state)
{
    (void)state;
    uint8_t buf[YN_CARD_RECORD_MAX + 1];
    memset(buf, 0, sizeof buf);
    size_t len = issue(buf);
    assert_corrupt(buf, 0, "shorter than its header");
    assert_corrupt(buf, 3, "shorter than its header");
    for (size_t n = 4; n < len; n++)
        assert_corrupt(buf, n, "truncated");
    assert_corrupt(buf, len + 1, "oversized");
    assert_corrupt(buf, sizeof buf, "oversized");
    yn_card_record out;
    assert_int_equal(yn_card_decode(buf, len, &out, NULL), YN_OK);
    assert_int_equal(yn_card_decode(NULL, 5, &out, NULL), YN_EINVAL);
    assert_int_equal(yn_card_decode(buf, len, NULL, NULL), YN_EINVAL);

    /* a blank card area: all zero */
    uint8_t zero[YN_CARD_RECORD_V1_LEN] = {0};
    assert_corrupt(zero, sizeof zero, "\"YN\"");
}

static void test_format_version_and_magic(void **state)
{
    (void)state;
    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t len = issue(buf);
    buf[2] = 2;
    assert_corrupt(buf, len, "format version");
    buf[2] = 0;
    assert_corrupt(buf, len, "format version");
    buf[2] = 1;
    buf[0] = 'y';
    assert_corrupt(buf, len, "\"YN\"");

    yn_card_record r = sample();
    r.format_version = 2;
    size_t n;
    const char *why = NULL;
    assert_int_equal(yn_card_encode(&r, buf, sizeof buf, &n, &why), YN_EINVAL);
    assert_non_null(strstr(why, "format version"));
}

static void test_bad_dates(void **state)
{
    (void)state;
    assert_field_corrupt(24, 19450230, "birth date"); /* Feb 30 */
    assert_field_corrupt(24, 19451301, "birth date"); /* month 13 */
    assert_field_corrupt(24, 19450001, "birth date"); /* month 0 */
    assert_field_corrupt(24, 19450100, "birth date"); /* day 0 */
    assert_field_corrupt(24, 19450431, "birth date"); /* April 31 */
    assert_field_corrupt(24, 19430229, "birth date"); /* not a leap year */
    assert_field_corrupt(24, 19000229, "birth date"); /* 1900 is not a leap year */
    assert_field_corrupt(24, 18991231, "birth date"); /* before 1900 */
    assert_field_corrupt(24, 0xFFFFFFFFu, "birth date");
    assert_field_corrupt(40, 20250229, "issue date");
    assert_field_corrupt(44, 20291331, "expiry date");
    assert_field_corrupt(44, 21000101, "expiry date"); /* after 2099 */

    /* leap days that exist are fine (the signature then fails, not the decoder) */
    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t len = issue(buf);
    put_be32(buf + 24, 19440229);
    yn_card_record out;
    assert_int_equal(yn_card_decode(buf, len, &out, NULL), YN_OK);
    put_be32(buf + 24, 20000229); /* 2000 is a leap year */
    assert_int_equal(yn_card_decode(buf, len, &out, NULL), YN_OK);
    put_be32(buf + 24, 20280229); /* a real day, but after the issue date */
    assert_corrupt(buf, len, "birth date after issue");

    /* the issuer cannot write one either */
    yn_card_record r = sample();
    r.birth_ymd = 19450230;
    size_t n;
    assert_int_equal(yn_card_encode(&r, buf, sizeof buf, &n, NULL), YN_EINVAL);
    assert_int_equal(yn_card_sign(&r, uid7, sizeof uid7, issuer_priv, NULL), YN_EINVAL);
}

static void test_expiry_not_after_issue(void **state)
{
    (void)state;
    assert_field_corrupt(44, 20250101, "expiry date not after issue");
    assert_field_corrupt(44, 20250102, "expiry date not after issue"); /* same day */
    assert_field_corrupt(40, 20300101, "expiry date not after issue");
    yn_card_record r = sample();
    r.expiry_ymd = 20241231;
    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t n;
    const char *why = NULL;
    assert_int_equal(yn_card_encode(&r, buf, sizeof buf, &n, &why), YN_EINVAL);
    assert_string_equal(why, "expiry date not after issue date");
}

static void test_card_number(void **state)
{
    (void)state;
    static const uint8_t bad_chars[] = {0x07, ' ', 0x7F, 0x80, 0xE4, 0xFF};
    for (size_t i = 0; i < sizeof bad_chars; i++) {
        uint8_t buf[YN_CARD_RECORD_MAX];
        size_t len = issue(buf);
        buf[4 + 3] = bad_chars[i];
        assert_corrupt(buf, len, "printable ASCII");
    }
    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t len = issue(buf);
    buf[4] = 0; /* empty card number, padding then "not zero" */
    assert_corrupt(buf, len, "padding");
    memset(buf + 4, 0, 20);
    assert_corrupt(buf, len, "card number empty");
    memset(buf + 4, '7', 20); /* 20 characters: no room for NUL */
    assert_corrupt(buf, len, "not NUL-terminated");
    len = issue(buf);
    buf[4 + 19] = 'X'; /* garbage after the NUL */
    assert_corrupt(buf, len, "padding");

    /* 19 characters is the maximum and works end to end */
    yn_card_record r = sample();
    strcpy(r.card_no, "ABCDEFGHIJ123456789");
    size_t n;
    yn_card_keyring ring = ring_with(3, issuer_pub);
    assert_int_equal(
        yn_card_encode_signed(&r, uid7, sizeof uid7, issuer_priv, buf, sizeof buf, &n, NULL),
        YN_OK);
    yn_card_record out;
    assert_int_equal(yn_card_read(buf, n, uid7, sizeof uid7, &ring, &out, NULL), YN_OK);
    assert_string_equal(out.card_no, "ABCDEFGHIJ123456789");

    /* encode refuses an unterminated or non-printable card number */
    r = sample();
    memset(r.card_no, 'A', sizeof r.card_no);
    assert_int_equal(yn_card_encode(&r, buf, sizeof buf, &n, NULL), YN_EINVAL);
    r = sample();
    strcpy(r.card_no, "GD 1");
    assert_int_equal(yn_card_encode(&r, buf, sizeof buf, &n, NULL), YN_EINVAL);
    r.card_no[0] = '\0';
    assert_int_equal(yn_card_encode(&r, buf, sizeof buf, &n, NULL), YN_EINVAL);
}

static void test_district_and_street(void **state)
{
    (void)state;
    assert_field_corrupt(32, 990304, "district");  /* no province 99 */
    assert_field_corrupt(32, 200304, "district");  /* no province 20 */
    assert_field_corrupt(32, 440000, "district");  /* a province, not a county */
    assert_field_corrupt(32, 44030, "district");   /* five digits */
    assert_field_corrupt(32, 4403041, "district"); /* seven digits */
    assert_field_corrupt(32, 440305, "street");    /* valid district, other street */
    assert_field_corrupt(36, 440305001, "street");
    assert_field_corrupt(36, 440304000, "street"); /* NNN = 000 */
    assert_field_corrupt(36, 440304, "street");

    /* a city without districts (Dongguan 441900) and Macau (82) are fine */
    yn_card_record r = sample();
    r.district = 441900;
    r.street = 441900003;
    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t n;
    assert_int_equal(yn_card_encode(&r, buf, sizeof buf, &n, NULL), YN_OK);
    r.district = 820001;
    r.street = 820001999;
    assert_int_equal(yn_card_encode(&r, buf, sizeof buf, &n, NULL), YN_OK);
    r.street = 820002999;
    assert_int_equal(yn_card_encode(&r, buf, sizeof buf, &n, NULL), YN_EINVAL);
}

static void test_reserved_bits(void **state)
{
    (void)state;
    assert_field_corrupt(28, 0x80u, "reserved bits");
    assert_field_corrupt(28, 0x80000000u | YN_FLAG_DIBAO, "reserved bits");
    assert_field_corrupt(48, 1, "reserved field");
    assert_field_corrupt(48, 0x01000000u, "reserved field");

    yn_card_record r = sample();
    r.flags |= 1u << 7;
    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t n;
    assert_int_equal(yn_card_encode(&r, buf, sizeof buf, &n, NULL), YN_EINVAL);
    r.flags = YN_CARD_FLAGS_KNOWN; /* every defined flag at once is fine */
    assert_int_equal(yn_card_encode(&r, buf, sizeof buf, &n, NULL), YN_OK);
}

static void test_encode_arguments(void **state)
{
    (void)state;
    yn_card_record r = sample();
    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t n = 0;
    assert_int_equal(yn_card_encode(&r, buf, YN_CARD_RECORD_V1_LEN - 1, &n, NULL), YN_ELIMIT);
    assert_int_equal(yn_card_encode(&r, buf, YN_CARD_RECORD_V1_LEN, &n, NULL), YN_OK);
    assert_int_equal(yn_card_encode(NULL, buf, sizeof buf, &n, NULL), YN_EINVAL);
    assert_int_equal(yn_card_encode(&r, NULL, sizeof buf, &n, NULL), YN_EINVAL);
    assert_int_equal(yn_card_sign(&r, uid7, 5, issuer_priv, NULL), YN_EINVAL);
    assert_int_equal(yn_card_sign(&r, uid7, sizeof uid7, NULL, NULL), YN_EINVAL);
    r.key_version = 0;
    assert_int_equal(yn_card_sign(&r, uid7, sizeof uid7, issuer_priv, NULL), YN_EINVAL);

    /* UIDs of 4 and 10 bytes work too */
    static const uint8_t uid4[4] = {0xDE, 0xAD, 0xBE, 0xEF};
    static const uint8_t uid10[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    yn_card_keyring ring = ring_with(3, issuer_pub);
    yn_card_record out;
    r = sample();
    assert_int_equal(yn_card_encode_signed(&r, uid4, 4, issuer_priv, buf, sizeof buf, &n, NULL),
                     YN_OK);
    assert_int_equal(yn_card_read(buf, n, uid4, 4, &ring, &out, NULL), YN_OK);
    assert_int_equal(yn_card_read(buf, n, uid10, 10, &ring, &out, NULL), YN_EAUTH);
    assert_int_equal(yn_card_encode_signed(&r, uid10, 10, issuer_priv, buf, sizeof buf, &n, NULL),
                     YN_OK);
    assert_int_equal(yn_card_read(buf, n, uid10, 10, &ring, &out, NULL), YN_OK);
}

/* RFC 8032 §7.1 TEST 1: the public key of a known private key. */
static void test_public_key_rfc8032(void **state)
{
    (void)state;
    uint8_t priv[32], pub[32], want[32];
    size_t n;
    assert_int_equal(
        yn_hex_decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", priv,
                      sizeof priv, &n),
        YN_OK);
    assert_int_equal(
        yn_hex_decode("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", want,
                      sizeof want, &n),
        YN_OK);
    assert_int_equal(yn_card_public_key(priv, pub), YN_OK);
    assert_memory_equal(pub, want, 32);
    assert_int_equal(yn_card_public_key(issuer_priv, pub), YN_OK);
    assert_memory_equal(pub, issuer_pub, 32);
}

/* --- key ring ---------------------------------------------------------- */

static void hex32(const uint8_t key[32], char out[65])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", key[i]);
}

static void test_keyring_parse_good(void **state)
{
    (void)state;
    char a[65], b[65], text[512];
    hex32(issuer_pub, a);
    hex32(other_pub, b);
    for (int i = 0; b[i]; i++) /* upper case is fine too */
        if (b[i] >= 'a' && b[i] <= 'f')
            b[i] = (char)(b[i] - 'a' + 'A');
    snprintf(text, sizeof text,
             "# issuer keys of the Futian district\n"
             "\n"
             "03 %s  # 2025 key\r\n"
             "\t0A\t%s\n"
             "   # retired: 02 ...\n",
             a, b);
    yn_card_keyring ring;
    char err[160];
    assert_int_equal(yn_card_keyring_parse(text, &ring, err, sizeof err), YN_OK);
    assert_string_equal(err, "");
    assert_int_equal(ring.n_keys, 2);
    assert_int_equal(ring.keys[0].version, 3);
    assert_memory_equal(ring.keys[0].pubkey, issuer_pub, 32);
    assert_int_equal(ring.keys[1].version, 10);
    assert_memory_equal(ring.keys[1].pubkey, other_pub, 32);

    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t len = issue(buf);
    yn_card_record out;
    assert_int_equal(yn_card_read(buf, len, uid7, sizeof uid7, &ring, &out, NULL), YN_OK);

    /* no trailing newline */
    snprintf(text, sizeof text, "01 %s", a);
    assert_int_equal(yn_card_keyring_parse(text, &ring, err, sizeof err), YN_OK);
    assert_int_equal(ring.n_keys, 1);
    assert_int_equal(ring.keys[0].version, 1);

    /* the same file, read through the keystore's hex decoder */
    snprintf(text, sizeof text, "# keys\n03 %s # 2025\n0a %s\n", a, b);
    uint8_t raw[2 * 33];
    size_t raw_len = 0;
    assert_int_equal(yn_hex_decode(text, raw, sizeof raw, &raw_len), YN_OK);
    assert_int_equal(raw_len, 66);
    yn_card_keyring from_bytes;
    assert_int_equal(yn_card_keyring_from_bytes(raw, raw_len, &from_bytes, err, sizeof err), YN_OK);
    assert_int_equal(yn_card_keyring_parse(text, &ring, err, sizeof err), YN_OK);
    assert_int_equal(from_bytes.n_keys, 2);
    assert_memory_equal(&from_bytes, &ring, sizeof ring);
}

static void assert_parse_fails(const char *text, int status, const char *expect)
{
    yn_card_keyring ring;
    memset(&ring, 0x5A, sizeof ring);
    yn_card_keyring before = ring;
    char err[200];
    assert_int_equal(yn_card_keyring_parse(text, &ring, err, sizeof err), status);
    if (!strstr(err, expect))
        fail_msg("error \"%s\" does not contain \"%s\" for input \"%s\"", err, expect, text);
    assert_memory_equal(&ring, &before, sizeof ring); /* untouched */
}

static void test_keyring_parse_bad(void **state)
{
    (void)state;
    char a[65], text[1024];
    hex32(issuer_pub, a);

    assert_parse_fails("", YN_EINVAL, "no issuer key");
    assert_parse_fails("# only a comment\n\n", YN_EINVAL, "no issuer key");
    snprintf(text, sizeof text, "# c\n03 %s\n3 %s\n", a, a);
    assert_parse_fails(text, YN_EINVAL, "line 3: expected");
    snprintf(text, sizeof text, "003 %s\n", a);
    assert_parse_fails(text, YN_EINVAL, "line 1: expected");
    snprintf(text, sizeof text, "03%s\n", a); /* no separator */
    assert_parse_fails(text, YN_EINVAL, "line 1: expected");
    snprintf(text, sizeof text, "03 %.63s\n", a); /* 63 digits */
    assert_parse_fails(text, YN_EINVAL, "line 1: expected");
    snprintf(text, sizeof text, "03 %s0\n", a); /* 65 digits */
    assert_parse_fails(text, YN_EINVAL, "line 1: expected");
    snprintf(text, sizeof text, "03 %s extra\n", a);
    assert_parse_fails(text, YN_EINVAL, "line 1: expected");
    snprintf(text, sizeof text, "0x %s\n", a);
    assert_parse_fails(text, YN_EINVAL, "line 1: expected");
    snprintf(text, sizeof text, "03 %.62sg0\n", a); /* not hex */
    assert_parse_fails(text, YN_EINVAL, "line 1: expected");
    assert_parse_fails("03\n", YN_EINVAL, "line 1: expected");
    snprintf(text, sizeof text, "00 %s\n", a);
    assert_parse_fails(text, YN_EINVAL, "line 1: key version 00");
    snprintf(text, sizeof text, "03 %s\n\n03 %s\n", a, a);
    assert_parse_fails(text, YN_EINVAL, "line 3: key version 03");

    size_t off = 0;
    for (int v = 1; v <= YN_CARD_KEYRING_MAX + 1; v++)
        off += (size_t)snprintf(text + off, sizeof text - off, "%02x %s\n", v, a);
    assert_parse_fails(text, YN_ELIMIT, "line 9: more than 8");

    yn_card_keyring ring;
    assert_int_equal(yn_card_keyring_parse(NULL, &ring, NULL, 0), YN_EINVAL);

    /* bytes form */
    uint8_t raw[34] = {0};
    char err[100];
    assert_int_equal(yn_card_keyring_from_bytes(raw, 32, &ring, err, sizeof err), YN_EINVAL);
    assert_non_null(strstr(err, "33-byte"));
    assert_int_equal(yn_card_keyring_from_bytes(raw, 0, &ring, err, sizeof err), YN_EINVAL);
    assert_int_equal(yn_card_keyring_from_bytes(raw, 33, &ring, err, sizeof err), YN_EINVAL);
    assert_non_null(strstr(err, "key version 00"));

    /* add */
    memset(&ring, 0, sizeof ring);
    for (int v = 1; v <= YN_CARD_KEYRING_MAX; v++)
        assert_int_equal(yn_card_keyring_add(&ring, (uint8_t)v, issuer_pub), YN_OK);
    assert_int_equal(yn_card_keyring_add(&ring, 99, issuer_pub), YN_ELIMIT);
    assert_int_equal(yn_card_keyring_add(&ring, 1, issuer_pub), YN_EINVAL);
}

/* --- AN10922 ----------------------------------------------------------- */

static void unhex(const char *text, uint8_t *buf, size_t want)
{
    size_t n = 0;
    assert_int_equal(yn_hex_decode(text, buf, want, &n), YN_OK);
    assert_int_equal(n, want);
}

/* AN10922 §2.2.1 example: AES-128, 7-byte UID, AID 3042F5, system id "NXP Abu". */
static void test_an10922_vector(void **state)
{
    (void)state;
    uint8_t master[16], uid[7], aid[3], sysid[7], want[16], got[16];
    unhex("00112233445566778899AABBCCDDEEFF", master, 16);
    unhex("04782E21801D80", uid, 7);
    unhex("3042F5", aid, 3);
    unhex("4E585020416275", sysid, 7);
    unhex("A8DD63A3B89D54B37CA802473FDA9175", want, 16);
    assert_int_equal(yn_an10922_diversify(master, uid, 7, aid, YN_CARD_AID_LEN, sysid, 7, got),
                     YN_OK);
    assert_memory_equal(got, want, 16);

    /* only M = uid ‖ aid ‖ sysid matters, not how it is split */
    uint8_t m[17];
    unhex("04782E21801D803042F54E585020416275", m, 17);
    memset(got, 0, sizeof got);
    assert_int_equal(yn_an10922_diversify(master, m, 10, m + 10, YN_CARD_AID_LEN, m + 13, 4, got),
                     YN_OK);
    assert_memory_equal(got, want, 16);
    memset(got, 0, sizeof got);
    assert_int_equal(yn_an10922_diversify(master, NULL, 0, m, YN_CARD_AID_LEN, m + 3, 14, got),
                     YN_OK);
    assert_memory_equal(got, want, 16);
}

/* Standard AES-CMAC (OpenSSL EVP_MAC) of 0x01 ‖ M. */
static void std_cmac(const uint8_t key[16], const uint8_t *d, size_t n, uint8_t out[16])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    char cipher[] = "AES-128-CBC";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0),
        OSSL_PARAM_construct_end(),
    };
    size_t len = 0;
    assert_int_equal(EVP_MAC_init(ctx, key, 16, params), 1);
    assert_int_equal(EVP_MAC_update(ctx, d, n), 1);
    assert_int_equal(EVP_MAC_final(ctx, out, &len, 16), 1);
    assert_int_equal(len, 16);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
}

/* For 0x01 ‖ M of 17..32 bytes AN10922 equals standard CMAC; for shorter input
 * the AN still pads to 32 bytes (K2), which standard CMAC does not. */
static void test_an10922_against_cmac(void **state)
{
    (void)state;
    uint8_t master[16], m[31], d[32], got[16], cmac[16];
    for (int i = 0; i < 16; i++)
        master[i] = (uint8_t)(0xA0 + i);
    for (int i = 0; i < 31; i++)
        m[i] = (uint8_t)(i * 7 + 1);
    static const uint8_t aid[3] = {0x4E, 0x59, 0xF5};
    for (size_t m_len = 3; m_len <= 31; m_len++) {
        size_t sys_len = m_len - 3;
        assert_int_equal(
            yn_an10922_diversify(master, NULL, 0, aid, YN_CARD_AID_LEN, m, sys_len, got), YN_OK);
        d[0] = 0x01;
        memcpy(d + 1, aid, 3);
        memcpy(d + 4, m, sys_len);
        std_cmac(master, d, m_len + 1, cmac);
        if (m_len + 1 > 16)
            assert_memory_equal(got, cmac, 16);
        else
            assert_memory_not_equal(got, cmac, 16);
    }
    assert_int_equal(yn_an10922_diversify(master, m, 1, aid, YN_CARD_AID_LEN, m, 28, got),
                     YN_EINVAL); /* 32 */
    assert_int_equal(yn_an10922_diversify(NULL, m, 7, aid, YN_CARD_AID_LEN, NULL, 0, got),
                     YN_EINVAL);
    assert_int_equal(yn_an10922_diversify(master, NULL, 7, aid, YN_CARD_AID_LEN, NULL, 0, got),
                     YN_EINVAL);
}

static void test_project_key_for_uid(void **state)
{
    (void)state;
    uint8_t master[16], got[16], want[16];
    unhex("00112233445566778899AABBCCDDEEFF", master, 16);
    static const uint8_t aid[3] = {0x4E, 0x59, 0xF5};
    assert_memory_equal(yn_card_aid, aid, 3);
    assert_memory_equal(yn_card_sysid, "YINIAN-POS", 10);
    assert_int_equal(yn_card_key_for_uid(master, uid7, 7, got), YN_OK);
    assert_int_equal(yn_an10922_diversify(master, uid7, 7, aid, YN_CARD_AID_LEN,
                                          (const uint8_t *)"YINIAN-POS", 10, want),
                     YN_OK);
    assert_memory_equal(got, want, 16);
    /* CARD.md's worked example, cross-checked with Python cryptography's CMAC */
    unhex("9B13CB54D73AF91E5D52897C9D339DC8", want, 16);
    uint8_t an_uid[7];
    unhex("04782E21801D80", an_uid, 7);
    assert_int_equal(yn_card_key_for_uid(master, an_uid, 7, got), YN_OK);
    assert_memory_equal(got, want, 16);
    static const uint8_t uid4[4] = {0xDE, 0xAD, 0xBE, 0xEF};
    unhex("5BC52F5DEB40C9E8102DF7B6CF672B4C", want, 16);
    assert_int_equal(yn_card_key_for_uid(master, uid4, 4, got), YN_OK);
    assert_memory_equal(got, want, 16);
    assert_int_equal(yn_card_key_for_uid(master, uid7, 7, got), YN_OK);
    /* another card, another key; another master, another key */
    uint8_t other_uid[7];
    memcpy(other_uid, uid7, 7);
    other_uid[6] ^= 1;
    assert_int_equal(yn_card_key_for_uid(master, other_uid, 7, want), YN_OK);
    assert_memory_not_equal(got, want, 16);
    master[0] ^= 1;
    assert_int_equal(yn_card_key_for_uid(master, uid7, 7, want), YN_OK);
    assert_memory_not_equal(got, want, 16);
    assert_int_equal(yn_card_key_for_uid(master, uid7, 4, want), YN_OK);
    assert_int_equal(yn_card_key_for_uid(master, uid7, 5, want), YN_EINVAL);
    assert_int_equal(yn_card_key_for_uid(master, NULL, 7, want), YN_EINVAL);

    uint8_t a[6], b[6];
    yn_card_classic_keys(got, a, b);
    assert_memory_equal(a, got, 6);
    assert_memory_equal(b, got + 6, 6);
}

/* --- stamp ------------------------------------------------------------- */

static void test_stamp_round_trip(void **state)
{
    (void)state;
    yn_card_stamp s, back;
    assert_int_equal(yn_card_terminal_code("T-FT-0001"), 0xB8589B);
    assert_int_equal(yn_card_stamp_make(20250314, "lunch", 0xB8589B, 0x1ABCD1234ull, &s), YN_OK);
    assert_int_equal(s.version, YN_CARD_STAMP_V2);
    assert_int_equal(s.period_code, 0x3901);
    assert_int_equal(s.seq, 0xABCD1234u); /* the low 32 bits */
    uint8_t buf[YN_CARD_STAMP_LEN];
    assert_int_equal(yn_card_stamp_encode(&s, buf, NULL), YN_OK);
    /* independently computed (Python: FNV-1a, date.toordinal, zlib.crc32) */
    uint8_t want[16];
    unhex("02b8589b390123f4abcd1234ca8100ff", want, 16);
    assert_memory_equal(buf, want, 16);
    const char *why = NULL;
    assert_int_equal(yn_card_stamp_decode(buf, sizeof buf, &back, &why), YN_OK);
    assert_string_equal(why, "ok");
    assert_false(yn_card_stamp_is_blank(&back));
    assert_int_equal(back.version, YN_CARD_STAMP_V2);
    assert_int_equal(back.period_code, 0x3901);
    assert_int_equal(back.date_ymd, 20250314);
    assert_int_equal(back.terminal_code, 0xB8589B);
    assert_int_equal(back.canteen_id, 0);
    assert_int_equal(back.seq, 0xABCD1234u);
    /* day 0 and the last day of the format's range round-trip too */
    assert_int_equal(yn_card_stamp_make(20000101, "lunch", 1, 1, &s), YN_OK);
    assert_int_equal(yn_card_stamp_encode(&s, buf, NULL), YN_OK);
    assert_int_equal(yn_card_stamp_decode(buf, sizeof buf, &back, NULL), YN_OK);
    assert_int_equal(back.date_ymd, 20000101);
    assert_int_equal(yn_card_stamp_make(20991231, "lunch", 1, 1, &s), YN_OK);
    assert_int_equal(yn_card_stamp_encode(&s, buf, NULL), YN_OK);
    assert_int_equal(yn_card_stamp_decode(buf, sizeof buf, &back, NULL), YN_OK);
    assert_int_equal(back.date_ymd, 20991231);
}

/* Cards in the field still carry v1 stamps of older firmware: they are read. */
static void test_stamp_v1_still_read(void **state)
{
    (void)state;
    yn_card_stamp back;
    uint8_t v1[16];
    unhex("010039010134feca04b312346e6c6d05", v1, 16);
    assert_int_equal(yn_card_stamp_decode(v1, sizeof v1, &back, NULL), YN_OK);
    assert_int_equal(back.version, YN_CARD_STAMP_V1);
    assert_int_equal(back.period_code, 0x3901);
    assert_int_equal(back.date_ymd, 20250314);
    assert_int_equal(back.canteen_id, 1203);
    assert_int_equal(back.terminal_code, 0);
    assert_int_equal(back.seq, 0x1234);
    assert_true(yn_card_stamp_blocks(&back, 20250314, "lunch"));
    uint8_t again[16];
    assert_int_equal(yn_card_stamp_encode(&back, again, NULL), YN_OK);
    assert_memory_equal(again, v1, 16);
}

static void test_stamp_blank(void **state)
{
    (void)state;
    yn_card_stamp s;
    memset(&s, 0x77, sizeof s);
    const char *why = NULL;
    assert_int_equal(yn_card_stamp_decode(NULL, 0, &s, &why), YN_OK);
    assert_true(yn_card_stamp_is_blank(&s));
    assert_string_equal(why, "blank stamp");
    uint8_t zero[16] = {0};
    memset(&s, 0x77, sizeof s);
    assert_int_equal(yn_card_stamp_decode(zero, sizeof zero, &s, NULL), YN_OK);
    assert_true(yn_card_stamp_is_blank(&s));
    assert_int_equal(s.date_ymd, 0);
    assert_false(yn_card_stamp_blocks(&s, 20250314, "lunch"));
    assert_false(yn_card_stamp_blocks(NULL, 20250314, "lunch"));
    /* a blank stamp is never written */
    uint8_t buf[16];
    assert_int_equal(yn_card_stamp_encode(&s, buf, NULL), YN_EINVAL);
}

static void assert_stamp_corrupt(const uint8_t *buf, size_t len, const char *expect)
{
    yn_card_stamp s;
    const char *why = NULL;
    assert_int_equal(yn_card_stamp_decode(buf, len, &s, &why), YN_ECORRUPT);
    if (!strstr(why, expect))
        fail_msg("reason \"%s\" does not contain \"%s\"", why, expect);
}

/* Write a CRC32 (zlib) over bytes 0..11 so only the field check can fail. */
static void fix_crc(uint8_t buf[16])
{
    put_be32(buf + 12, (uint32_t)crc32(0L, buf, 12));
}

static void test_stamp_rejections(void **state)
{
    (void)state;
    uint8_t good[16], v1[16];
    unhex("02b8589b390123f4abcd1234ca8100ff", good, 16);
    unhex("010039010134feca04b312346e6c6d05", v1, 16);
    uint8_t big[17] = {0};
    memcpy(big, good, 16);
    assert_stamp_corrupt(good, 15, "16 bytes");
    assert_stamp_corrupt(big, 17, "16 bytes");
    assert_stamp_corrupt(good, 1, "16 bytes");
    for (int i = 0; i < 16; i++) {
        for (int bit = 0; bit < 8; bit++) {
            uint8_t buf[16];
            yn_card_stamp s;
            memcpy(buf, good, 16);
            buf[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(yn_card_stamp_decode(buf, 16, &s, NULL), YN_ECORRUPT);
            memcpy(buf, v1, 16);
            buf[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(yn_card_stamp_decode(buf, 16, &s, NULL), YN_ECORRUPT);
        }
    }
    uint8_t buf[16];
    memcpy(buf, good, 16);
    buf[5] ^= 1;
    assert_stamp_corrupt(buf, 16, "checksum");
    memcpy(buf, good, 16);
    buf[0] = 3;
    fix_crc(buf);
    assert_stamp_corrupt(buf, 16, "version");
    memcpy(buf, good, 16);
    buf[1] = buf[2] = buf[3] = 0;
    fix_crc(buf);
    assert_stamp_corrupt(buf, 16, "terminal");
    memcpy(buf, good, 16);
    buf[4] = buf[5] = 0;
    fix_crc(buf);
    assert_stamp_corrupt(buf, 16, "period");
    memcpy(buf, good, 16);
    put_be32(buf + 8, 0);
    fix_crc(buf);
    assert_stamp_corrupt(buf, 16, "seq");
    memcpy(buf, good, 16);
    buf[6] = buf[7] = 0xFF; /* day 65535: 2179, beyond the date rule */
    fix_crc(buf);
    assert_stamp_corrupt(buf, 16, "date");
    /* v1 rules still apply to v1 stamps */
    memcpy(buf, v1, 16);
    buf[1] = 1;
    fix_crc(buf);
    assert_stamp_corrupt(buf, 16, "reserved");
    memcpy(buf, v1, 16);
    put_be32(buf + 4, 20250230);
    fix_crc(buf);
    assert_stamp_corrupt(buf, 16, "date");
    memcpy(buf, v1, 16);
    buf[8] = buf[9] = 0;
    fix_crc(buf);
    assert_stamp_corrupt(buf, 16, "canteen");
    /* an erased 0xFF area is not a blank stamp */
    memset(buf, 0xFF, 16);
    assert_stamp_corrupt(buf, 16, "version");

    yn_card_stamp s;
    assert_int_equal(yn_card_stamp_make(20250230, "lunch", 1, 1, &s), YN_EINVAL);
    assert_int_equal(yn_card_stamp_make(20251301, "lunch", 1, 1, &s), YN_EINVAL);
    assert_int_equal(yn_card_stamp_make(19991231, "lunch", 1, 1, &s), YN_EINVAL);
    assert_int_equal(yn_card_stamp_make(20250314, "", 1, 1, &s), YN_EINVAL);
    assert_int_equal(yn_card_stamp_make(20250314, NULL, 1, 1, &s), YN_EINVAL);
    assert_int_equal(yn_card_stamp_make(20250314, "lunch", 0, 1, &s), YN_EINVAL);
    assert_int_equal(yn_card_stamp_make(20250314, "lunch", 0x1000000, 1, &s), YN_EINVAL);
    assert_int_equal(yn_card_stamp_make(20250314, "lunch", 1, 0, &s), YN_EINVAL);
    assert_int_equal(yn_card_stamp_decode(NULL, 16, &s, NULL), YN_EINVAL);
    assert_int_equal(yn_card_terminal_code(""), 0);
    assert_int_equal(yn_card_terminal_code(NULL), 0);
}

static void test_stamp_blocks(void **state)
{
    (void)state;
    yn_card_stamp s;
    assert_int_equal(yn_card_stamp_make(20250314, "lunch", 7, 42, &s), YN_OK);
    assert_true(yn_card_stamp_blocks(&s, 20250314, "lunch"));   /* same period, same day */
    assert_false(yn_card_stamp_blocks(&s, 20250314, "dinner")); /* other period */
    assert_false(yn_card_stamp_blocks(&s, 20250315, "lunch"));  /* next day */
    assert_false(yn_card_stamp_blocks(&s, 20250313, "lunch"));  /* other day */
    assert_false(yn_card_stamp_blocks(&s, 20250314, ""));       /* no open period */
    assert_false(yn_card_stamp_blocks(&s, 20250314, NULL));
    /* through the bytes, as another canteen reads it */
    uint8_t buf[16];
    yn_card_stamp read;
    assert_int_equal(yn_card_stamp_encode(&s, buf, NULL), YN_OK);
    assert_int_equal(yn_card_stamp_decode(buf, 16, &read, NULL), YN_OK);
    assert_true(yn_card_stamp_blocks(&read, 20250314, "lunch"));
    assert_false(yn_card_stamp_blocks(&read, 20250314, "breakfast"));

    assert_int_equal(yn_card_period_code(""), 0);
    assert_int_equal(yn_card_period_code(NULL), 0);
    assert_int_equal(yn_card_period_code("lunch"), 0x3901);
    assert_int_equal(yn_card_period_code("dinner"), 0x58CF);
    assert_int_equal(yn_card_period_code("breakfast"), 0x6254);
    assert_int_equal(yn_card_period_code("午餐"), 0x8EE6);
}

/* Classic keeps two copies; a write tears at most one of them. */
static void test_stamp_classic_pair(void **state)
{
    (void)state;
    yn_card_stamp old_s, new_s, got;
    uint8_t old_b[16], new_b[16], torn[16], zero[16] = {0}, pair[32];
    assert_int_equal(yn_card_stamp_make(20250313, "dinner", 5, 100, &old_s), YN_OK);
    assert_int_equal(yn_card_stamp_make(20250314, "lunch", 7, 101, &new_s), YN_OK);
    assert_int_equal(yn_card_stamp_encode(&old_s, old_b, NULL), YN_OK);
    assert_int_equal(yn_card_stamp_encode(&new_s, new_b, NULL), YN_OK);
    memcpy(torn, new_b, 8);
    memcpy(torn + 8, old_b + 8, 8); /* half written */
    const char *why = NULL;
#define PAIR(a, b) (memcpy(pair, (a), 16), memcpy(pair + 16, (b), 16), pair)
    /* both written */
    assert_int_equal(yn_card_stamp_decode(PAIR(new_b, new_b), 32, &got, NULL), YN_OK);
    assert_int_equal(got.date_ymd, 20250314);
    /* copy written, primary torn: the new stamp */
    assert_int_equal(yn_card_stamp_decode(PAIR(torn, new_b), 32, &got, NULL), YN_OK);
    assert_int_equal(got.date_ymd, 20250314);
    assert_true(yn_card_stamp_blocks(&got, 20250314, "lunch"));
    /* copy torn, primary still old: the old stamp */
    assert_int_equal(yn_card_stamp_decode(PAIR(old_b, torn), 32, &got, NULL), YN_OK);
    assert_int_equal(got.date_ymd, 20250313);
    /* the card left after the copy, before the primary: the copy is newer */
    assert_int_equal(yn_card_stamp_decode(PAIR(old_b, new_b), 32, &got, NULL), YN_OK);
    assert_int_equal(got.date_ymd, 20250314);
    assert_int_equal(got.seq, 101);
    /* first ever write: copy written, primary not yet */
    assert_int_equal(yn_card_stamp_decode(PAIR(zero, new_b), 32, &got, NULL), YN_OK);
    assert_int_equal(got.terminal_code, 7);
    /* a blank copy beside a stamped primary (damage, never a write order) */
    assert_int_equal(yn_card_stamp_decode(PAIR(new_b, zero), 32, &got, NULL), YN_OK);
    assert_int_equal(got.seq, 101);
    /* first ever write torn in the copy: still no meal */
    assert_int_equal(yn_card_stamp_decode(PAIR(zero, torn), 32, &got, NULL), YN_OK);
    assert_true(yn_card_stamp_is_blank(&got));
    /* a blank card */
    assert_int_equal(yn_card_stamp_decode(PAIR(zero, zero), 32, &got, NULL), YN_OK);
    assert_true(yn_card_stamp_is_blank(&got));
    /* both damaged */
    assert_int_equal(yn_card_stamp_decode(PAIR(torn, torn), 32, &got, &why), YN_ECORRUPT);
    assert_string_equal(why, "both stamp copies damaged");
#undef PAIR
    for (size_t n = 17; n <= 40; n++) {
        uint8_t buf[40] = {0};
        if (n != 32)
            assert_stamp_corrupt(buf, n, "16 bytes");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_layout_offsets),
        cmocka_unit_test(test_to_facts_and_expiry),
        cmocka_unit_test(test_field_change_breaks_signature),
        cmocka_unit_test(test_every_byte_flip_rejected),
        cmocka_unit_test(test_uid_is_signed),
        cmocka_unit_test(test_key_versions),
        cmocka_unit_test(test_truncated_and_oversized),
        cmocka_unit_test(test_format_version_and_magic),
        cmocka_unit_test(test_bad_dates),
        cmocka_unit_test(test_expiry_not_after_issue),
        cmocka_unit_test(test_card_number),
        cmocka_unit_test(test_district_and_street),
        cmocka_unit_test(test_reserved_bits),
        cmocka_unit_test(test_encode_arguments),
        cmocka_unit_test(test_public_key_rfc8032),
        cmocka_unit_test(test_keyring_parse_good),
        cmocka_unit_test(test_keyring_parse_bad),
        cmocka_unit_test(test_an10922_vector),
        cmocka_unit_test(test_an10922_against_cmac),
        cmocka_unit_test(test_project_key_for_uid),
        cmocka_unit_test(test_stamp_round_trip),
        cmocka_unit_test(test_stamp_v1_still_read),
        cmocka_unit_test(test_stamp_blank),
        cmocka_unit_test(test_stamp_rejections),
        cmocka_unit_test(test_stamp_blocks),
        cmocka_unit_test(test_stamp_classic_pair),
    };
    return cmocka_run_group_tests_name("card", tests, setup_keys, NULL);
}
