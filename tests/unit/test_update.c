/* test_update.c — signed update documents: a full document round trip, and
 * every refusal (signature, other terminal, old version, malformed parts,
 * unknown keys, duplicate keys, bad policy, limits). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "card.h"
#include "testutil.h"
#include "update.h"

static uint8_t priv[32], pub[32], other_priv[32];
static char *policy_text;

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < 32; i++) {
        priv[i] = (uint8_t)(i * 7 + 1);
        other_priv[i] = (uint8_t)(i * 5 + 3);
    }
    assert_int_equal(yn_card_public_key(priv, pub), YN_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/firmware/policies/shenzhen-2025.json", yn_test_srcdir());
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    policy_text = calloc(1, 1 << 20);
    size_t n = fread(policy_text, 1, (1 << 20) - 1, f);
    fclose(f);
    policy_text[n] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(policy_text);
    return 0;
}

/* Sign payload with key k and parse it as terminal T1 after last_version. */
static int parse_as(const char *payload, const uint8_t *k, int64_t last, yn_update *u, char *err,
                    size_t errlen)
{
    char *body;
    size_t len;
    assert_int_equal(yn_update_sign(payload, strlen(payload), k, &body, &len), YN_OK);
    int rc = yn_update_parse(body, len, pub, "T1", last, u, err, errlen);
    free(body);
    return rc;
}

static int try_payload(const char *payload)
{
    yn_update u;
    char err[256];
    int rc = parse_as(payload, priv, 0, &u, err, sizeof err);
    if (rc == YN_OK)
        yn_update_free(&u);
    else
        assert_true(strncmp(err, "update: ", 8) == 0);
    return rc;
}

static void test_full_document(void **state)
{
    (void)state;
    /* the policy as a JSON string: escape quotes, backslashes and newlines */
    size_t n = strlen(policy_text);
    char *esc = malloc(2 * n + 1), *p = esc;
    for (size_t i = 0; i < n; i++) {
        char c = policy_text[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = c;
        } else if (c == '\n') {
            *p++ = '\\';
            *p++ = 'n';
        } else if ((unsigned char)c >= 0x20) {
            *p++ = c;
        }
    }
    *p = '\0';
    size_t cap = strlen(esc) + 2048;
    char *doc = malloc(cap);
    snprintf(doc, cap,
             "{\"v\":1,\"terminal\":\"T1\",\"version\":5,\"server_utc_ms\":1740970800123,"
             "\"roster\":{\"version\":3,\"cards\":[{\"card_no\":\"440304001\",\"birth_ymd\":"
             "19400101,\"flags\":3,\"district\":440304,\"street\":440304001,\"expiry_ymd\":"
             "20301231}]},"
             "\"blacklist\":[{\"seq\":7,\"card_no\":\"440304002\",\"lost\":true},"
             "{\"seq\":9,\"card_no\":\"440304002\",\"lost\":false}],"
             "\"policy\":\"%s\","
             "\"allocations\":{\"seq\":4,\"items\":[{\"id\":\"A-1\",\"card_no\":\"440304001\","
             "\"source\":\"district\",\"amount_fen\":3000}]},\"more\":true}",
             esc);
    yn_update u;
    char err[256];
    assert_int_equal(parse_as(doc, priv, 4, &u, err, sizeof err), YN_OK);
    assert_string_equal(u.terminal, "T1");
    assert_int_equal(u.version, 5);
    assert_int_equal(u.server_utc_ms, 1740970800123LL);
    assert_int_equal(u.roster_version, 3);
    assert_int_equal(u.n_cards, 1);
    assert_string_equal(u.cards[0].card_no, "440304001");
    assert_int_equal(u.cards[0].street, 440304001);
    assert_int_equal(u.n_blacklist, 2);
    assert_true(u.blacklist[0].lost);
    assert_false(u.blacklist[1].lost);
    assert_int_equal(u.blacklist[1].seq, 9);
    assert_non_null(u.policy_json);
    assert_int_equal(u.policy_len, n);
    assert_int_equal(u.alloc_seq, 4);
    assert_int_equal(u.n_allocs, 1);
    assert_int_equal(u.allocs[0].amount_fen, 3000);
    assert_true(u.more);
    yn_update_free(&u);

    /* the same document again: a replay */
    assert_int_equal(parse_as(doc, priv, 5, &u, err, sizeof err), YN_ESTALE);
    assert_int_equal(parse_as(doc, priv, 9, &u, err, sizeof err), YN_ESTALE);
    assert_null(u.cards);
    /* signed by another key */
    assert_int_equal(parse_as(doc, other_priv, 0, &u, err, sizeof err), YN_EAUTH);
    /* for another terminal */
    char *body;
    size_t len;
    assert_int_equal(yn_update_sign(doc, strlen(doc), priv, &body, &len), YN_OK);
    assert_int_equal(yn_update_parse(body, len, pub, "T2", 0, &u, err, sizeof err), YN_EAUTH);
    /* one payload character changed after signing */
    char *pl = strstr(body, "\"payload\":\"") + 11;
    pl[20] = pl[20] == 'A' ? 'B' : 'A';
    assert_int_equal(yn_update_parse(body, len, pub, "T1", 0, &u, err, sizeof err), YN_EAUTH);
    free(body);
    free(doc);
    free(esc);
}

static void test_minimal_and_malformed(void **state)
{
    (void)state;
    const char *base = "{\"v\":1,\"terminal\":\"T1\",\"version\":1,\"server_utc_ms\":5";
    char doc[1024];
    snprintf(doc, sizeof doc, "%s}", base);
    assert_int_equal(try_payload(doc), YN_OK);
    static const char *const bad_tails[] = {
        ",\"extra\":1}",
        ",\"roster\":[]}",
        ",\"roster\":{\"version\":1}}",
        ",\"roster\":{\"version\":0,\"cards\":[]}}",
        ",\"roster\":{\"version\":1,\"cards\":[{\"card_no\":\"1\"}]}}",
        ",\"roster\":{\"version\":1,\"cards\":[{\"card_no\":\"\",\"birth_ymd\":1,\"flags\":0,"
        "\"district\":1,\"street\":1,\"expiry_ymd\":1}]}}",
        ",\"blacklist\":[{\"seq\":2,\"card_no\":\"1\",\"lost\":true},{\"seq\":2,\"card_no\":"
        "\"2\",\"lost\":true}]}",
        ",\"blacklist\":[{\"seq\":2,\"card_no\":\"1\",\"lost\":1}]}",
        ",\"blacklist\":{}}",
        ",\"policy\":{}}",
        ",\"policy\":\"{}\"}",
        ",\"allocations\":{\"seq\":1,\"items\":[{\"id\":\"a\",\"card_no\":\"1\",\"source\":"
        "\"d\",\"amount_fen\":0}]}}",
        ",\"allocations\":{\"seq\":1,\"items\":[{\"id\":\"a\",\"card_no\":\"1\",\"source\":"
        "\"d\",\"amount_fen\":100000001}]}}",
        ",\"allocations\":{\"items\":[]}}",
        ",\"more\":1}",
        ",\"version\":2}", /* duplicate key */
        /* the shared rules (rules.h): what the district must never publish */
        ",\"roster\":{\"version\":1,\"cards\":[{\"card_no\":\"1\",\"birth_ymd\":19400101,"
        "\"flags\":128,\"district\":440304,\"street\":440304001,\"expiry_ymd\":20301231}]}}",
        ",\"roster\":{\"version\":1,\"cards\":[{\"card_no\":\"1\",\"birth_ymd\":19400101,"
        "\"flags\":1,\"district\":440304,\"street\":440305001,\"expiry_ymd\":20301231}]}}",
        ",\"roster\":{\"version\":1,\"cards\":[{\"card_no\":\"1\",\"birth_ymd\":19400230,"
        "\"flags\":1,\"district\":440304,\"street\":440304001,\"expiry_ymd\":20301231}]}}",
        ",\"blacklist\":[{\"seq\":2,\"card_no\":\"4403 040001';\",\"lost\":true}]}",
        ",\"allocations\":{\"seq\":1,\"items\":[{\"id\":\"a\",\"card_no\":\"1\",\"source\":"
        "\"a23456789012345678901234\",\"amount_fen\":1}]}}",
        ",\"card_no\":\"x\u00e9\"}",
    };
    for (size_t i = 0; i < sizeof bad_tails / sizeof bad_tails[0]; i++) {
        snprintf(doc, sizeof doc, "%s%s", base, bad_tails[i]);
        assert_int_not_equal(try_payload(doc), YN_OK);
    }
    assert_int_equal(try_payload("[]"), YN_EPROTO);
    assert_int_equal(try_payload("{\"v\":2,\"terminal\":\"T1\",\"version\":1,\"server_utc_ms\":5}"),
                     YN_EPROTO);
    assert_int_equal(try_payload("{\"v\":1,\"terminal\":\"T1\",\"version\":0,\"server_utc_ms\":5}"),
                     YN_EPROTO);
    assert_int_equal(try_payload("not json"), YN_EPROTO);
}

/* The roster binds identifiers ("ident", optional), the blacklist may name
 * one instead of a card number; anything but an identifier's one spelling,
 * or both names at once, refuses the document. */
static void test_identifiers(void **state)
{
    (void)state;
    yn_update u;
    char err[256];
    const char *doc =
        "{\"v\":1,\"terminal\":\"T1\",\"version\":3,\"server_utc_ms\":1,"
        "\"roster\":{\"version\":2,\"cards\":["
        "{\"card_no\":\"440304001\",\"birth_ymd\":19400101,\"flags\":3,\"district\":440304,"
        "\"street\":440304001,\"expiry_ymd\":20301231,\"ident\":\"A:04A1B2C3D4E5F6\"},"
        "{\"card_no\":\"440304002\",\"birth_ymd\":19400101,\"flags\":0,\"district\":440304,"
        "\"street\":440304001,\"expiry_ymd\":20301231}]},"
        "\"blacklist\":[{\"seq\":7,\"ident\":\"B:1A2B3C4D\",\"lost\":true},"
        "{\"seq\":8,\"card_no\":\"440304003\",\"lost\":true}]}";
    assert_int_equal(parse_as(doc, priv, 0, &u, err, sizeof err), YN_OK);
    assert_int_equal(u.n_cards, 2);
    assert_string_equal(u.cards[0].ident, "A:04A1B2C3D4E5F6");
    assert_string_equal(u.cards[1].ident, "");
    assert_int_equal(u.n_blacklist, 2);
    assert_string_equal(u.blacklist[0].ident, "B:1A2B3C4D");
    assert_string_equal(u.blacklist[0].card_no, "");
    assert_string_equal(u.blacklist[1].card_no, "440304003");
    assert_string_equal(u.blacklist[1].ident, "");
    yn_update_free(&u);
    static const char *const bad[] = {
        "{\"v\":1,\"terminal\":\"T1\",\"version\":3,\"server_utc_ms\":1,"
        "\"blacklist\":[{\"seq\":7,\"ident\":\"B:1A2B3C4D\",\"card_no\":\"1\","
        "\"lost\":true}]}",
        "{\"v\":1,\"terminal\":\"T1\",\"version\":3,\"server_utc_ms\":1,"
        "\"blacklist\":[{\"seq\":7,\"ident\":\"b:1a2b3c4d\",\"lost\":true}]}",
        "{\"v\":1,\"terminal\":\"T1\",\"version\":3,\"server_utc_ms\":1,"
        "\"blacklist\":[{\"seq\":7,\"ident\":null,\"lost\":true}]}",
        "{\"v\":1,\"terminal\":\"T1\",\"version\":3,\"server_utc_ms\":1,"
        "\"blacklist\":[{\"seq\":7,\"lost\":true}]}",
        "{\"v\":1,\"terminal\":\"T1\",\"version\":3,\"server_utc_ms\":1,"
        "\"roster\":{\"version\":2,\"cards\":[{\"card_no\":\"440304001\",\"birth_ymd\":1,"
        "\"flags\":3,\"district\":440304,\"street\":440304001,\"expiry_ymd\":20301231,"
        "\"ident\":\"A:04A1B2C3D4E5\"}]}}",
        NULL};
    for (int i = 0; bad[i]; i++)
        if (try_payload(bad[i]) != YN_EPROTO)
            fail_msg("bad document %d accepted", i);
}

static void test_envelope(void **state)
{
    (void)state;
    yn_update u;
    char err[256];
    static const char *const bodies[] = {
        "",
        "{}",
        "{\"v\":1,\"payload\":\"e30=\"}",
        "{\"v\":1,\"payload\":\"e30=\",\"sig\":\"AAAA\"}",
        "{\"v\":1,\"payload\":\"e30\",\"sig\":\"AAAA\"}",
        "{\"v\":1,\"payload\":\"e3=0\",\"sig\":\"AAAA\"}",
        "{\"v\":1,\"payload\":\"e30=\",\"sig\":\"AAAA\",\"x\":1}",
        "{\"v\":2,\"payload\":\"e30=\",\"sig\":\"AAAA\"}",
        "{\"v\":1,\"payload\":7,\"sig\":\"AAAA\"}",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
        assert_int_equal(
            yn_update_parse(bodies[i], strlen(bodies[i]), pub, "T1", 0, &u, err, sizeof err),
            YN_EPROTO);
    /* a valid-looking 64-byte signature of zeros */
    char body[256];
    uint8_t zero_sig[64] = {0};
    char *sig64 = yn_base64_encode(zero_sig, sizeof zero_sig);
    snprintf(body, sizeof body, "{\"v\":1,\"payload\":\"e30=\",\"sig\":\"%s\"}", sig64);
    free(sig64);
    assert_int_equal(yn_update_parse(body, strlen(body), pub, "T1", 0, &u, err, sizeof err),
                     YN_EAUTH);
    assert_int_equal(yn_update_parse(body, YN_UPDATE_MAX_BODY + 1, pub, "T1", 0, &u, err, 8),
                     YN_ELIMIT);
}

static void test_base64(void **state)
{
    (void)state;
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    for (size_t i = 0; i < 7; i++) {
        char *e = yn_base64_encode((const uint8_t *)in[i], strlen(in[i]));
        uint8_t *d;
        size_t n;
        assert_int_equal(yn_base64_decode(e, strlen(e), &d, &n), YN_OK);
        assert_int_equal(n, strlen(in[i]));
        assert_memory_equal(d, in[i], n);
        free(d);
        free(e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_document), cmocka_unit_test(test_minimal_and_malformed),
        cmocka_unit_test(test_envelope),      cmocka_unit_test(test_identifiers),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
