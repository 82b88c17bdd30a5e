/* test_bundle.c — the firmware bundle format (header, manifest, signature),
 * versions, payload path rules (the slot state machine: test_flash_slots.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "bundle.h"

static yn_bundle_version ver(const char *s)
{
    yn_bundle_version v = {0, 0, 0};
    assert_int_equal(yn_bundle_version_parse(s, &v), YN_OK);
    return v;
}

static void test_versions(void **state)
{
    (void)state;
    yn_bundle_version v;
    v = ver("0.1.0");
    assert_int_equal(v.major, 0);
    assert_int_equal(v.minor, 1);
    assert_int_equal(v.patch, 0);
    v = ver("12.345.999999");
    assert_int_equal(v.patch, 999999);
    const char *bad[] = {"",       "1",     "1.2",         "1.2.3.4", "01.2.3",
                         "1.02.3", "a.b.c", "1.2.3-rc1",   "1.2.3 ",  " 1.2.3",
                         "1..3",   "1.2.",  "1234567.0.0", "-1.2.3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(yn_bundle_version_parse(bad[i], &v), YN_EINVAL);
    assert_int_equal(yn_bundle_version_parse(NULL, &v), YN_EINVAL);

    yn_bundle_version a = ver("1.9.9"), b = ver("1.10.0"), c = ver("1.10.0"), d = ver("2.0.0");
    assert_true(yn_bundle_version_cmp(&a, &b) < 0); /* numeric, not text order */
    assert_true(yn_bundle_version_cmp(&b, &a) > 0);
    assert_int_equal(yn_bundle_version_cmp(&b, &c), 0);
    assert_true(yn_bundle_version_cmp(&d, &b) > 0);
    yn_bundle_version e = ver("1.10.1");
    assert_true(yn_bundle_version_cmp(&b, &e) < 0);
}

static void test_paths_and_arch(void **state)
{
    (void)state;
    const char *good[] = {"bin/yinian-pos",          "share/board.conf", "a",
                          "share/clips/zh_CN+1.wav", "x/y/z/w.json",     ".hidden"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(yn_bundle_path_ok(good[i]));
    char longp[YN_BUNDLE_PATH_MAX + 1];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    const char *bad[] = {
        "",        "/etc/passwd", "../x",    "bin/../../x", "bin//x",        "bin/",
        "./bin/x", "bin/./x",     "bin/x y", "bin\\x",      "manifest.json", "VERSION",
        "bin/ä",   "bin/x\n",     "..",      longp};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(yn_bundle_path_ok(bad[i]));
    assert_true(yn_bundle_path_ok("bin/VERSION")); /* only the top-level names are reserved */
    assert_false(yn_bundle_path_ok(NULL));

    assert_true(yn_bundle_arch_ok("host"));
    assert_true(yn_bundle_arch_ok("aarch64"));
    assert_true(yn_bundle_arch_ok("armhf"));
    assert_false(yn_bundle_arch_ok("x86_64"));
    assert_false(yn_bundle_arch_ok(""));
    assert_string_equal(yn_bundle_arch_of_machine("aarch64"), "aarch64");
    assert_string_equal(yn_bundle_arch_of_machine("arm64"), "aarch64");
    assert_string_equal(yn_bundle_arch_of_machine("armv7l"), "armhf");
    assert_string_equal(yn_bundle_arch_of_machine("armv6l"), "armhf");
    assert_string_equal(yn_bundle_arch_of_machine("x86_64"), "host");
}

static yn_bundle_manifest *sample(void)
{
    static yn_bundle_manifest m;
    memset(&m, 0, sizeof m);
    snprintf(m.product, sizeof m.product, "%s", YN_BUNDLE_PRODUCT);
    snprintf(m.version, sizeof m.version, "0.2.0");
    snprintf(m.arch, sizeof m.arch, "aarch64");
    snprintf(m.gitrev, sizeof m.gitrev, "8a8ac20-dirty");
    m.ledger_schema = 3;
    m.created_utc = 1763000000;
    m.n_files = 3;
    const char *paths[] = {"bin/yinian-pos", "bin/yinian-flash", "share/board.conf"};
    const uint64_t sizes[] = {775072, 529800, 5045};
    for (int i = 0; i < 3; i++) {
        snprintf(m.files[i].path, sizeof m.files[i].path, "%s", paths[i]);
        m.files[i].mode = i < 2 ? 0755 : 0644;
        m.files[i].size = sizes[i];
        memset(m.files[i].sha256, 0x11 * (i + 1), sizeof m.files[i].sha256);
    }
    return &m;
}

static void test_manifest_roundtrip(void **state)
{
    (void)state;
    static yn_bundle_manifest back;
    char *json;
    size_t len;
    char err[256];
    yn_bundle_manifest *m = sample();
    assert_int_equal(yn_bundle_manifest_encode(m, &json, &len), YN_OK);
    assert_int_equal(strlen(json), len);
    assert_int_equal(m->payload_size, 775072 + 529800 + 5045);
    assert_int_equal(yn_bundle_manifest_decode(json, len, &back, err, sizeof err), YN_OK);
    assert_string_equal(back.version, "0.2.0");
    assert_int_equal(back.v.minor, 2);
    assert_string_equal(back.arch, "aarch64");
    assert_string_equal(back.gitrev, "8a8ac20-dirty");
    assert_int_equal(back.ledger_schema, 3);
    assert_int_equal(back.created_utc, 1763000000);
    assert_int_equal(back.n_files, 3);
    assert_int_equal(back.payload_size, m->payload_size);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(back.files[i].path, m->files[i].path);
        assert_int_equal(back.files[i].mode, m->files[i].mode);
        assert_int_equal(back.files[i].size, m->files[i].size);
        assert_memory_equal(back.files[i].sha256, m->files[i].sha256, YN_BUNDLE_HASH_LEN);
    }
    assert_int_equal(back.files[1].offset, 775072);
    assert_int_equal(back.files[2].offset, 775072 + 529800);
    assert_int_equal(yn_bundle_manifest_find(&back, "share/board.conf"), 2);
    assert_int_equal(yn_bundle_manifest_find(&back, "bin/nothing"), -1);
    free(json);
}

/* Decode json and expect YN_EINVAL with `why` in the message. */
static void expect_bad(const char *json, const char *why)
{
    static yn_bundle_manifest m;
    char err[256] = "";
    assert_int_equal(yn_bundle_manifest_decode(json, strlen(json), &m, err, sizeof err), YN_EINVAL);
    if (!strstr(err, why))
        fail_msg("error '%s' does not say '%s'", err, why);
}

#define H64 "0000000000000000000000000000000000000000000000000000000000000000"
#define HEAD                                                                                       \
    "\"format\":1,\"product\":\"yinian-pos\",\"version\":\"1.0.0\",\"arch\":\"host\","             \
    "\"gitrev\":\"\",\"ledger_schema\":2,\"created_utc\":1"
#define FILE1 "{\"path\":\"bin/yinian-pos\",\"mode\":\"0755\",\"size\":5,\"sha256\":\"" H64 "\"}"

static void test_manifest_refusals(void **state)
{
    (void)state;
    static yn_bundle_manifest m;
    char err[256];
    const char *ok = "{" HEAD ",\"payload_size\":5,\"files\":[" FILE1 "]}";
    assert_int_equal(yn_bundle_manifest_decode(ok, strlen(ok), &m, err, sizeof err), YN_OK);
    /* unknown members are ignored (forward compatible within format 1) */
    const char *extra = "{" HEAD ",\"payload_size\":5,\"later\":true,\"files\":[" FILE1 "]}";
    assert_int_equal(yn_bundle_manifest_decode(extra, strlen(extra), &m, err, sizeof err), YN_OK);

    expect_bad("[1]", "not a JSON object");
    expect_bad("{" HEAD ",\"payload_size\":5,\"files\":[" FILE1 "]", "not a JSON object");
    expect_bad("{" HEAD ",\"payload_size\":6,\"files\":[" FILE1 "]}", "payload_size");
    expect_bad("{" HEAD ",\"files\":[" FILE1 "]}", "payload_size");
    expect_bad("{" HEAD ",\"payload_size\":0,\"files\":[]}", "1..256 files");
    expect_bad("{" HEAD ",\"payload_size\":10,\"files\":[" FILE1 "," FILE1 "]}", "listed twice");
    expect_bad("{" HEAD ",\"payload_size\":5,\"payload_size\":5,\"files\":[" FILE1 "]}",
               "not a JSON object"); /* duplicate keys refused */
    expect_bad("{\"format\":2,\"product\":\"yinian-pos\",\"version\":\"1.0.0\",\"arch\":\"host\","
               "\"gitrev\":\"\",\"ledger_schema\":2,\"created_utc\":1,\"payload_size\":5,"
               "\"files\":[" FILE1 "]}",
               "format");
    expect_bad("{\"format\":1,\"product\":\"other\",\"version\":\"1.0.0\",\"arch\":\"host\","
               "\"gitrev\":\"\",\"ledger_schema\":2,\"created_utc\":1,\"payload_size\":5,"
               "\"files\":[" FILE1 "]}",
               "product");
    expect_bad("{\"format\":1,\"product\":\"yinian-pos\",\"version\":\"1.0\",\"arch\":\"host\","
               "\"gitrev\":\"\",\"ledger_schema\":2,\"created_utc\":1,\"payload_size\":5,"
               "\"files\":[" FILE1 "]}",
               "x.y.z");
    expect_bad("{\"format\":1,\"product\":\"yinian-pos\",\"version\":\"1.0.0\",\"arch\":\"mips\","
               "\"gitrev\":\"\",\"ledger_schema\":2,\"created_utc\":1,\"payload_size\":5,"
               "\"files\":[" FILE1 "]}",
               "arch");
    expect_bad("{\"format\":1,\"product\":\"yinian-pos\",\"version\":\"1.0.0\",\"arch\":\"host\","
               "\"gitrev\":\"\",\"ledger_schema\":0,\"created_utc\":1,\"payload_size\":5,"
               "\"files\":[" FILE1 "]}",
               "ledger_schema");
    expect_bad("{" HEAD ",\"payload_size\":5,\"files\":[{\"path\":\"../etc/passwd\",\"mode\":"
               "\"0644\",\"size\":5,\"sha256\":\"" H64 "\"}]}",
               "not allowed");
    expect_bad("{" HEAD ",\"payload_size\":5,\"files\":[{\"path\":\"bin/x\",\"mode\":"
               "\"4755\",\"size\":5,\"sha256\":\"" H64 "\"}]}",
               "mode");
    expect_bad("{" HEAD ",\"payload_size\":5,\"files\":[{\"path\":\"bin/x\",\"mode\":"
               "\"0644\",\"size\":5,\"sha256\":\"XY" H64 "\"}]}",
               "sha256");
    expect_bad("{" HEAD ",\"payload_size\":5,\"files\":[{\"path\":\"bin/x\",\"mode\":"
               "\"0644\",\"size\":-5,\"sha256\":\"" H64 "\"}]}",
               "size");
    expect_bad("{" HEAD ",\"payload_size\":5,\"files\":[{\"path\":\"bin/x\",\"mode\":"
               "\"0644\",\"size\":5}]}",
               "sha256");
}

static void test_header(void **state)
{
    (void)state;
    uint8_t h[YN_BUNDLE_HEADER_LEN];
    uint32_t n = 0;
    char err[128];
    yn_bundle_header_encode(h, 1234);
    assert_memory_equal(h, "YNFWBUN1", 8);
    assert_int_equal(h[8], 0);
    assert_int_equal(h[10], 0x04);
    assert_int_equal(h[11], 0xd2);
    assert_int_equal(yn_bundle_header_decode(h, &n, err, sizeof err), YN_OK);
    assert_int_equal(n, 1234);

    uint8_t bad[YN_BUNDLE_HEADER_LEN];
    memcpy(bad, h, sizeof bad);
    bad[0] = 'X';
    assert_int_equal(yn_bundle_header_decode(bad, &n, err, sizeof err), YN_EINVAL);
    assert_non_null(strstr(err, "magic"));
    memcpy(bad, h, sizeof bad);
    bad[7] = '2';
    assert_int_equal(yn_bundle_header_decode(bad, &n, err, sizeof err), YN_ENOTSUP);
    assert_non_null(strstr(err, "bundle format 2 is newer than this tool reads (1)"));
    /* format byte 0 (or any non-digit) is damage, not a newer format (d18a5b3 said "newer") */
    bad[7] = 0;
    assert_int_equal(yn_bundle_header_decode(bad, &n, err, sizeof err), YN_EINVAL);
    assert_non_null(strstr(err, "format byte 0x00 is not a format this tool knows"));
    assert_null(strstr(err, "newer"));
    bad[7] = '0';
    assert_int_equal(yn_bundle_header_decode(bad, &n, err, sizeof err), YN_EINVAL);
    assert_null(strstr(err, "newer"));
    yn_bundle_header_encode(bad, YN_BUNDLE_MANIFEST_MAX + 1);
    assert_int_equal(yn_bundle_header_decode(bad, &n, err, sizeof err), YN_EINVAL);
    memcpy(bad, h, sizeof bad);
    bad[15] = 65; /* signature length */
    assert_int_equal(yn_bundle_header_decode(bad, &n, err, sizeof err), YN_EINVAL);
}

static void test_signature(void **state)
{
    (void)state;
    uint8_t priv[YN_BUNDLE_KEY_LEN], pub[YN_BUNDLE_KEY_LEN], other_priv[YN_BUNDLE_KEY_LEN],
        other_pub[YN_BUNDLE_KEY_LEN], sig[YN_BUNDLE_SIG_LEN];
    assert_int_equal(RAND_bytes(priv, sizeof priv), 1);
    assert_int_equal(RAND_bytes(other_priv, sizeof other_priv), 1);
    assert_int_equal(yn_bundle_public_key(priv, pub), YN_OK);
    assert_int_equal(yn_bundle_public_key(other_priv, other_pub), YN_OK);
    char *json;
    size_t len;
    assert_int_equal(yn_bundle_manifest_encode(sample(), &json, &len), YN_OK);
    assert_int_equal(yn_bundle_sign(priv, json, len, sig), YN_OK);
    assert_int_equal(yn_bundle_verify(pub, json, len, sig), YN_OK);
    assert_int_equal(yn_bundle_verify(other_pub, json, len, sig), YN_EAUTH);
    json[len / 2] ^= 1; /* one bit of the manifest */
    assert_int_equal(yn_bundle_verify(pub, json, len, sig), YN_EAUTH);
    json[len / 2] ^= 1;
    sig[10] ^= 0x80;
    assert_int_equal(yn_bundle_verify(pub, json, len, sig), YN_EAUTH);
    sig[10] ^= 0x80;
    assert_int_equal(yn_bundle_verify(pub, json, len - 1, sig), YN_EAUTH);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_versions),
        cmocka_unit_test(test_paths_and_arch),
        cmocka_unit_test(test_manifest_roundtrip),
        cmocka_unit_test(test_manifest_refusals),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_signature),
    };
    return cmocka_run_group_tests_name("bundle", tests, NULL, NULL);
}
