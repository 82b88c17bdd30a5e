/* test_batch.c — the batch frame: round trips of every field, the test
 * vector of PROTOCOL.md, and every rejection (header, sizes, CRC, HMAC,
 * truncation, zip bomb, malformed body, broken chain). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "batch.h"
#include "hex.h"
#include "reason.h"
#include "rules.h"
#include "sig.h"

static const uint8_t key[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};

/* n records of terminal T-0001 from seq first, fields varied, chain computed. */
static yn_ledger_record *make_records(int64_t first, size_t n, const uint8_t prev_hash[32])
{
    yn_ledger_record *r = calloc(n, sizeof *r);
    assert_non_null(r);
    for (size_t i = 0; i < n; i++) {
        yn_ledger_record *x = &r[i];
        x->seq = first + (int64_t)i;
        strcpy(x->terminal, "T-0001");
        x->tap_id = 1000 + (int64_t)i * 2;
        x->kind = YN_LEDGER_MEAL;
        if (i % 7 == 3)
            strcpy(x->card_no, "0044030400123"); /* leading zero: sent as a string */
        else if (i % 11 == 5)
            strcpy(x->card_no, "CARD-X");
        else
            snprintf(x->card_no, sizeof x->card_no, "44030400%06zu", (i * 7919) % 500);
        strcpy(x->category, i % 3 ? "age70" : "dibao");
        strcpy(x->period, "lunch");
        x->local_ymd = 20250303 + (int32_t)(i / 50);
        x->price_fen = 1200;
        x->subsidy_fen = i % 3 ? 500 : 1200;
        x->n_layers = i % 3 ? 1 : 2;
        strcpy(x->layers[0].source, "city");
        x->layers[0].fen = i % 3 ? 500 : 600;
        if (x->n_layers == 2) {
            strcpy(x->layers[1].source, "district");
            x->layers[1].fen = 600;
        }
        x->wallet_fen = i % 3 ? 700 : 0;
        x->cash_fen = x->price_fen - x->subsidy_fen - x->wallet_fen;
        x->utc_s = 1740970800 + (int64_t)i * 13;
        x->mono_ms = 5000000 + (int64_t)i * 13001;
        x->boot_no = 3;
        x->clock_trusted = i % 5 != 0;
        strcpy(x->operator_id, "staff01");
        x->policy_version = 7;
        x->wallet_after_fen = 10000 - (int64_t)i * 100;
        x->card_prev_seq = x->seq > 3 ? x->seq - 3 : 0;
        if (i == 4) { /* a reversal of the meal before */
            x->kind = YN_LEDGER_REVERSAL;
            x->tap_id = 0;
            x->reverses_seq = x->seq - 1;
            x->price_fen = -r[i - 1].price_fen;
            x->subsidy_fen = -r[i - 1].subsidy_fen;
            x->wallet_fen = -r[i - 1].wallet_fen;
            x->cash_fen = -r[i - 1].cash_fen;
            x->n_layers = r[i - 1].n_layers;
            for (int k = 0; k < x->n_layers; k++) {
                x->layers[k] = r[i - 1].layers[k];
                x->layers[k].fen = -x->layers[k].fen;
            }
            x->card_prev_seq = x->seq - 1;
            strcpy(x->card_no, r[i - 1].card_no);
            x->wallet_after_fen = r[i - 1].wallet_after_fen - x->wallet_fen;
        }
        if (i == 6) { /* an allocation */
            x->kind = YN_LEDGER_ALLOCATION;
            x->tap_id = 0;
            strcpy(x->category, "");
            strcpy(x->period, "");
            strcpy(x->ref, "ALLOC-2025-03-0001");
            x->price_fen = 0;
            x->subsidy_fen = 3000;
            x->n_layers = 1;
            strcpy(x->layers[0].source, "district");
            x->layers[0].fen = 3000;
            x->wallet_fen = -3000;
            x->cash_fen = 0;
        }
        if (i == 8) { /* weighed, refused subsidy */
            x->weight_g = 432;
            x->price_per_100g_fen = 250;
            x->price_fen = 1080;
            x->subsidy_fen = 0;
            x->n_layers = 0;
            x->wallet_fen = 0;
            x->cash_fen = 1080;
            x->reason = YN_REASON_PERIOD_USED;
        }
    }
    const uint8_t *prev = prev_hash;
    for (size_t i = 0; i < n; i++) {
        memcpy(r[i].prev_hash, prev, 32);
        yn_ledger_record_hash(&r[i], prev, r[i].hash);
        prev = r[i].hash;
    }
    return r;
}

static void assert_same(const yn_ledger_record *a, const yn_ledger_record *b)
{
    assert_int_equal(a->seq, b->seq);
    assert_string_equal(a->terminal, b->terminal);
    assert_int_equal(a->tap_id, b->tap_id);
    assert_string_equal(a->card_no, b->card_no);
    assert_int_equal(a->kind, b->kind);
    assert_string_equal(a->category, b->category);
    assert_string_equal(a->period, b->period);
    assert_int_equal(a->local_ymd, b->local_ymd);
    assert_int_equal(a->price_fen, b->price_fen);
    assert_int_equal(a->subsidy_fen, b->subsidy_fen);
    assert_int_equal(a->wallet_fen, b->wallet_fen);
    assert_int_equal(a->cash_fen, b->cash_fen);
    assert_int_equal(a->n_layers, b->n_layers);
    for (int k = 0; k < a->n_layers; k++) {
        assert_string_equal(a->layers[k].source, b->layers[k].source);
        assert_int_equal(a->layers[k].fen, b->layers[k].fen);
    }
    assert_int_equal(a->weight_g, b->weight_g);
    assert_int_equal(a->price_per_100g_fen, b->price_per_100g_fen);
    assert_int_equal(a->reason, b->reason);
    assert_string_equal(a->operator_id, b->operator_id);
    assert_int_equal(a->utc_s, b->utc_s);
    assert_int_equal(a->mono_ms, b->mono_ms);
    assert_int_equal(a->boot_no, b->boot_no);
    assert_int_equal(a->clock_trusted, b->clock_trusted);
    assert_int_equal(a->reverses_seq, b->reverses_seq);
    assert_string_equal(a->ref, b->ref);
    assert_int_equal(a->policy_version, b->policy_version);
    assert_int_equal(a->wallet_after_fen, b->wallet_after_fen);
    assert_int_equal(a->card_prev_seq, b->card_prev_seq);
    assert_int_equal(a->by ? a->by : YN_LEDGER_BY_CARD, b->by);
    assert_string_equal(a->ident, b->ident);
    assert_string_equal(a->supervisor_id, b->supervisor_id);
    assert_memory_equal(a->prev_hash, b->prev_hash, 32);
    assert_memory_equal(a->hash, b->hash, 32);
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t prev[32];
    memset(prev, 0xab, sizeof prev);
    yn_ledger_record *r = make_records(101, 300, prev);
    uint8_t *f;
    size_t len;
    assert_int_equal(yn_batch_encode(9, r, 300, key, sizeof key, &f, &len), YN_OK);
    yn_batch_header h;
    yn_ledger_record *d;
    const char *why;
    assert_int_equal(yn_batch_decode(f, len, key, sizeof key, &h, &d, &why), YN_OK);
    assert_int_equal(h.batch_id, 9);
    assert_int_equal(h.version, 1); /* every holder identified by the card: version 1 */
    assert_int_equal(h.first_seq, 101);
    assert_int_equal(h.last_seq, 400);
    assert_int_equal(h.count, 300);
    assert_string_equal(h.terminal, "T-0001");
    assert_memory_equal(h.prev_hash, prev, 32);
    assert_memory_equal(h.head_hash, r[299].hash, 32);
    for (size_t i = 0; i < 300; i++)
        assert_same(&r[i], &d[i]);
    free(d);
    free(f);
    free(r);
}

static void test_extremes_round_trip(void **state)
{
    (void)state;
    uint8_t zero[32] = {0};
    yn_ledger_record *r = make_records(1, 3, zero);
    strcpy(r[0].card_no, "9223372036854775807"); /* largest numeric form */
    strcpy(r[1].card_no, "9223372036854775808"); /* one above: string form */
    strcpy(r[2].card_no, "0");
    r[0].tap_id = INT64_MAX; /* the widest ranges the rules allow: deltas wrap modulo 2^64 */
    r[1].tap_id = 1;
    r[0].utc_s = 0;
    r[1].utc_s = 253402300799; /* 9999-12-31T23:59:59Z */
    r[1].mono_ms = INT64_MAX;
    r[2].mono_ms = 0;
    r[2].boot_no = INT64_MAX;
    r[0].local_ymd = 19000101;
    r[1].local_ymd = 99991231;
    r[1].policy_version = INT64_MAX;
    r[2].wallet_after_fen = -1000000000000;
    for (int i = 0; i < 3; i++) {
        const uint8_t *p = i ? r[i - 1].hash : zero;
        memcpy(r[i].prev_hash, p, 32);
        yn_ledger_record_hash(&r[i], p, r[i].hash);
    }
    uint8_t *f;
    size_t len;
    assert_int_equal(yn_batch_encode(1, r, 3, key, sizeof key, &f, &len), YN_OK);
    yn_batch_header h;
    yn_ledger_record *d;
    assert_int_equal(yn_batch_decode(f, len, key, sizeof key, &h, &d, NULL), YN_OK);
    for (int i = 0; i < 3; i++)
        assert_same(&r[i], &d[i]);
    free(d);
    free(f);
    free(r);
}

static void test_encode_refuses(void **state)
{
    (void)state;
    uint8_t zero[32] = {0};
    yn_ledger_record *r = make_records(1, 4, zero);
    uint8_t *f = (uint8_t *)1;
    size_t len = 1;
    assert_int_equal(yn_batch_encode(1, r, 0, key, sizeof key, &f, &len), YN_EINVAL);
    assert_null(f);
    assert_int_equal(yn_batch_encode(0, r, 4, key, sizeof key, &f, &len), YN_EINVAL);
    assert_int_equal(yn_batch_encode(1, r, 4, key, 8, &f, &len), YN_EINVAL); /* short key */
    r[2].seq = 9;                                                            /* a gap */
    assert_int_equal(yn_batch_encode(1, r, 4, key, sizeof key, &f, &len), YN_EINVAL);
    r[2].seq = 3;
    strcpy(r[3].terminal, "T-0002");
    assert_int_equal(yn_batch_encode(1, r, 4, key, sizeof key, &f, &len), YN_EINVAL);
    strcpy(r[3].terminal, "T-0001");
    r[3].n_layers = 5;
    assert_int_equal(yn_batch_encode(1, r, 4, key, sizeof key, &f, &len), YN_EINVAL);
    free(r);
}

/* Recompute CRC and HMAC after a test edited the frame. */
static void reseal(uint8_t *f, size_t len)
{
    uint32_t body_len = (uint32_t)(len - YN_BATCH_HEADER_LEN - YN_BATCH_MAC_LEN);
    uint32_t crc = (uint32_t)crc32(0L, f + YN_BATCH_HEADER_LEN, body_len);
    for (int i = 0; i < 4; i++)
        f[60 + i] = (uint8_t)(crc >> (24 - 8 * i));
    yn_batch_hmac(key, sizeof key, f, len - YN_BATCH_MAC_LEN, f + len - YN_BATCH_MAC_LEN);
}

/* A frame with the header of `model` and any raw body, compressed and sealed. */
static uint8_t *frame_with_body(const uint8_t *model, const uint8_t *raw, size_t raw_len,
                                uint32_t declared_raw, size_t *out_len)
{
    uLongf cap = compressBound((uLong)raw_len);
    uint8_t *f = malloc(YN_BATCH_HEADER_LEN + cap + YN_BATCH_MAC_LEN);
    assert_int_equal(compress2(f + YN_BATCH_HEADER_LEN, &cap, raw, (uLong)raw_len, 9), Z_OK);
    memcpy(f, model, YN_BATCH_HEADER_LEN);
    for (int i = 0; i < 4; i++) {
        f[52 + i] = (uint8_t)(declared_raw >> (24 - 8 * i));
        f[56 + i] = (uint8_t)(cap >> (24 - 8 * i));
    }
    *out_len = YN_BATCH_HEADER_LEN + cap + YN_BATCH_MAC_LEN;
    reseal(f, *out_len);
    return f;
}

static int decode_rc(const uint8_t *f, size_t len, const char **why)
{
    yn_batch_header h;
    yn_ledger_record *d = (yn_ledger_record *)1;
    int rc = yn_batch_decode(f, len, key, sizeof key, &h, &d, why);
    if (rc == YN_OK)
        free(d);
    else
        assert_null(d);
    return rc;
}

static void test_rejections(void **state)
{
    (void)state;
    uint8_t zero[32] = {0};
    yn_ledger_record *r = make_records(1, 20, zero);
    uint8_t *f;
    size_t len;
    const char *why;
    assert_int_equal(yn_batch_encode(1, r, 20, key, sizeof key, &f, &len), YN_OK);
    uint8_t *g = malloc(len);

    /* truncated, extended, empty */
    assert_int_equal(decode_rc(f, len - 1, &why), YN_EPROTO);
    assert_int_equal(decode_rc(f, 10, &why), YN_EPROTO);
    assert_int_equal(decode_rc(f, 0, &why), YN_EPROTO);
    /* bad magic, version, flags, terminal padding, ranges */
    static const size_t offs[] = {0, 5, 7, 8, 20, 31, 39, 47, 51};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        memcpy(g, f, len);
        g[offs[i]] ^= i == 4 ? 0x41 : 0x01;
        assert_int_not_equal(decode_rc(g, len, &why), YN_OK);
    }
    /* CRC: a body bit flipped */
    memcpy(g, f, len);
    g[YN_BATCH_HEADER_LEN + 3] ^= 0x10;
    assert_int_equal(decode_rc(g, len, &why), YN_ECORRUPT);
    assert_non_null(strstr(why, "CRC"));
    /* HMAC: the trailer, the header's batch id, or another key */
    memcpy(g, f, len);
    g[len - 1] ^= 1;
    assert_int_equal(decode_rc(g, len, &why), YN_EAUTH);
    memcpy(g, f, len);
    g[31] ^= 2; /* batch id: CRC is over the body only */
    assert_int_equal(decode_rc(g, len, &why), YN_EAUTH);
    uint8_t other[32] = {9};
    yn_batch_header h;
    yn_ledger_record *d;
    assert_int_equal(yn_batch_decode(f, len, other, sizeof other, &h, &d, &why), YN_EAUTH);
    /* chain: the head hash changed and resealed */
    memcpy(g, f, len);
    g[100] ^= 1;
    reseal(g, len);
    assert_int_equal(decode_rc(g, len, &why), YN_ECORRUPT);
    /* chain: prev_hash changed */
    memcpy(g, f, len);
    g[64] ^= 1;
    reseal(g, len);
    assert_int_equal(decode_rc(g, len, &why), YN_ECORRUPT);
    /* sizes over the caps */
    memcpy(g, f, len);
    g[52] = 0x7f; /* raw_len huge */
    reseal(g, len);
    assert_int_equal(decode_rc(g, len, &why), YN_ELIMIT);
    memcpy(g, f, len);
    g[40 + 7] = 0xff; /* last_seq far away: count disagrees */
    reseal(g, len);
    assert_int_equal(decode_rc(g, len, &why), YN_EPROTO);

    /* zip bomb: 8 MiB of zeros declared as 5000 bytes */
    size_t bomb_len = 8u << 20, blen;
    uint8_t *zeros = calloc(1, bomb_len);
    uint8_t *bomb = frame_with_body(f, zeros, bomb_len, 5000, &blen);
    assert_int_equal(decode_rc(bomb, blen, &why), YN_ELIMIT);
    free(bomb);
    /* body shorter than declared */
    bomb = frame_with_body(f, zeros, 600, 5000, &blen);
    assert_int_equal(decode_rc(bomb, blen, &why), YN_EPROTO);
    free(bomb);
    /* valid zlib, garbage body */
    uint8_t junk[5000];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i * 37 + 11);
    bomb = frame_with_body(f, junk, sizeof junk, sizeof junk, &blen);
    assert_int_equal(decode_rc(bomb, blen, &why), YN_EPROTO);
    free(bomb);
    /* all 0xff varints: overlong */
    memset(junk, 0xff, sizeof junk);
    bomb = frame_with_body(f, junk, sizeof junk, sizeof junk, &blen);
    assert_int_equal(decode_rc(bomb, blen, &why), YN_EPROTO);
    free(bomb);
    /* not zlib at all */
    memcpy(g, f, len);
    memset(g + YN_BATCH_HEADER_LEN, 0x55, len - YN_BATCH_HEADER_LEN - YN_BATCH_MAC_LEN);
    reseal(g, len);
    assert_int_equal(decode_rc(g, len, &why), YN_EPROTO);
    free(zeros);
    free(g);
    free(f);
    free(r);
}

/* Every single-byte truncation of the inflated body is refused, never read past. */
static void test_every_truncated_body(void **state)
{
    (void)state;
    uint8_t zero[32] = {0};
    yn_ledger_record *r = make_records(1, 12, zero);
    uint8_t *f;
    size_t len;
    assert_int_equal(yn_batch_encode(1, r, 12, key, sizeof key, &f, &len), YN_OK);
    yn_batch_header h;
    assert_int_equal(yn_batch_peek(f, len, &h), YN_OK);
    uint8_t *raw = malloc(h.raw_len);
    uLongf rl = h.raw_len;
    assert_int_equal(uncompress(raw, &rl, f + YN_BATCH_HEADER_LEN, h.body_len), Z_OK);
    for (uint32_t cut = 12 * 25; cut < h.raw_len; cut++) {
        size_t blen;
        uint8_t *g = frame_with_body(f, raw, cut, cut, &blen);
        const char *why;
        assert_int_equal(decode_rc(g, blen, &why), YN_EPROTO);
        free(g);
    }
    free(raw);
    free(f);
    free(r);
}

/* A record can take 24 bytes of the inflated body (no layers: column 12 is
 * empty). A valid batch of 40 such records has raw_len < 25 x 40 and was
 * refused by the old `raw_len >= 25 x count` rule. */
static void test_smallest_records(void **state)
{
    (void)state;
    enum { N = 40 };
    yn_ledger_record r[N];
    memset(r, 0, sizeof r);
    uint8_t zero[32] = {0};
    for (int i = 0; i < N; i++) {
        r[i].seq = 1 + i;
        strcpy(r[i].terminal, "T-0001");
        r[i].tap_id = 1 + i;
        r[i].kind = YN_LEDGER_MEAL;
        strcpy(r[i].card_no, "1");
        r[i].local_ymd = 19700101;
        r[i].utc_s = 0;
        r[i].mono_ms = 0;
        memcpy(r[i].prev_hash, i ? r[i - 1].hash : zero, 32);
        yn_ledger_record_hash(&r[i], r[i].prev_hash, r[i].hash);
    }
    uint8_t *f;
    size_t len;
    assert_int_equal(yn_batch_encode(1, r, N, key, sizeof key, &f, &len), YN_OK);
    yn_batch_header h;
    assert_int_equal(yn_batch_peek(f, len, &h), YN_OK);
    assert_true(h.raw_len < 25 * N);
    assert_true(h.raw_len >= 24 * N + 2);
    yn_ledger_record *d;
    assert_int_equal(yn_batch_decode(f, len, key, sizeof key, &h, &d, NULL), YN_OK);
    assert_same(&r[N - 1], &d[N - 1]);
    free(d);
    free(f);
}

/* Records the format can carry but the rules refuse (PROTOCOL.md §3.5): each
 * is YN_EINVAL naming the record and the field, never accepted. */
static void test_rules_refuse_records(void **state)
{
    (void)state;
    static const struct {
        const char *field;
    } cases[] = {
        {"price_fen"},        /* a meal of -1,000,000 fen */
        {"price_fen"},        /* a meal of 2^62 fen */
        {"card_no"},          /* "AB C" */
        {"layers[1].source"}, /* the same source twice */
        {"local_ymd"},        /* 2025-02-30 */
        {"subsidy_fen"},      /* an allocation of 1e9 fen */
        {"reverses_seq"},     /* a meal that names another record */
        {"tap_id"},           /* a meal without a tap id */
        {"wallet_fen"},       /* a top-up that takes money out of the wallet */
        {"kind"},             /* kind 9 */
    };
    uint8_t zero[32] = {0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        yn_ledger_record *r = make_records(1, 3, zero);
        yn_ledger_record *x = &r[1];
        switch (c) {
        case 0:
        case 1:
            x->price_fen = c == 0 ? -1000000 : INT64_C(1) << 62;
            x->subsidy_fen = x->n_layers = 0;
            x->wallet_fen = 0;
            x->cash_fen = x->price_fen;
            break;
        case 2:
            strcpy(x->card_no, "AB C");
            break;
        case 3:
            strcpy(x->layers[1].source, x->layers[0].source);
            x->layers[1].fen = 0;
            x->n_layers = 2;
            x->layers[0].fen = x->subsidy_fen;
            break;
        case 4:
            x->local_ymd = 20250230;
            break;
        case 5:
            x->kind = YN_LEDGER_ALLOCATION;
            x->tap_id = 0;
            strcpy(x->ref, "A-1");
            x->price_fen = x->cash_fen = 0;
            x->n_layers = 1;
            x->subsidy_fen = x->layers[0].fen = 1000000000;
            x->wallet_fen = -1000000000;
            break;
        case 6:
            x->reverses_seq = 1;
            break;
        case 7:
            x->tap_id = 0;
            break;
        case 8:
            x->kind = YN_LEDGER_TOPUP;
            x->price_fen = x->subsidy_fen = x->n_layers = 0;
            x->wallet_fen = 500;
            x->cash_fen = -500;
            break;
        case 9:
            x->kind = 9;
            break;
        }
        for (int i = 0; i < 3; i++) {
            memcpy(r[i].prev_hash, i ? r[i - 1].hash : zero, 32);
            yn_ledger_record_hash(&r[i], r[i].prev_hash, r[i].hash);
        }
        uint8_t *f;
        size_t len;
        yn_batch_header h;
        yn_ledger_record *d = NULL;
        yn_batch_error err;
        if (c == 9) { /* the encoder itself refuses an unknown kind */
            assert_int_equal(yn_batch_encode(1, r, 3, key, sizeof key, &f, &len), YN_EINVAL);
            free(r);
            continue;
        }
        assert_int_equal(yn_batch_encode(1, r, 3, key, sizeof key, &f, &len), YN_OK);
        assert_int_equal(yn_batch_verify(f, len, key, sizeof key, &h, &d, &err), YN_EINVAL);
        assert_null(d);
        assert_int_equal(err.seq, 2);
        assert_string_equal(err.field, cases[c].field);
        assert_true(strlen(err.why) > 5);
        free(f);
        free(r);
    }
}

/* A string that is not UTF-8 (or holds a control character) is refused. */
static void test_strings_utf8(void **state)
{
    (void)state;
    uint8_t zero[32] = {0};
    yn_ledger_record *r = make_records(1, 2, zero);
    uint8_t *f;
    size_t len;
    assert_int_equal(yn_batch_encode(1, r, 2, key, sizeof key, &f, &len), YN_OK);
    yn_batch_header h;
    assert_int_equal(yn_batch_peek(f, len, &h), YN_OK);
    uint8_t *raw = malloc(h.raw_len);
    uLongf rl = h.raw_len;
    assert_int_equal(uncompress(raw, &rl, f + YN_BATCH_HEADER_LEN, h.body_len), Z_OK);
    /* the string table starts: count, then "" (0), then "dibao" (5 bytes) */
    assert_int_equal(raw[2], 5);
    static const uint8_t bad[][2] = {{0xff, 'b'}, {0xc0, 0x80}, {'\n', 'b'}, {0xe4, 'b'}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *copy = malloc(rl);
        memcpy(copy, raw, rl);
        memcpy(copy + 3, bad[i], 2);
        size_t blen;
        uint8_t *g = frame_with_body(f, copy, rl, (uint32_t)rl, &blen);
        const char *why = NULL;
        assert_int_equal(decode_rc(g, blen, &why), YN_EPROTO);
        assert_non_null(strstr(why, "UTF-8"));
        free(g);
        free(copy);
    }
    free(raw);
    free(f);
    free(r);
}

/* Lines of hex appended to buf at *len. */
static void unhex_lines(const char *const *lines, size_t n, uint8_t *buf, size_t *len)
{
    for (size_t i = 0; i < n; i++)
        for (const char *p = lines[i]; *p; p += 2) {
            unsigned v;
            assert_int_equal(sscanf(p, "%2x", &v), 1);
            buf[(*len)++] = (uint8_t)v;
        }
}

/* The test vector of PROTOCOL.md §8 (key = bytes 01..20): this exact frame
 * decodes to these records, whatever zlib version made it. */
static const char *const vector_hex[] = {
    "594e423100010000542d30303031000000000000000000000000000000000001",
    "000000000000000100000000000000020000000200000080000000806ff6db09",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "a1e1e8859554aa74e23f0c5535092386a33b5910121d8cb965fa5d8c3bf17f6b",
    "78da6367604dc94c4acc674d4c4f353760cd29cd4bce6049ce2ca9e448c92c2e",
    "29ca4c2e612f2e494c4b33306464bcc0cfd278e07ceb972691e36c8c4cccccff",
    "7e2d1766782004822fd8197e7031303031b26ce064ddc0c902e483011bdb8337",
    "2bfef048fd5fb07ed6ea54263606064690301fc382398c376601d900683f2790",
    "e76b3fe6f079f3e3476c02a6fafc881df85c70a4c4faffca4b4534716b577c0d",
};

/* PROTOCOL.md §8, the version 2 vector: an identity-only meal and a manual one. */
static const char *const vector2_hex[] = {
    "594e423100020000542d30303031000000000000000000000000000000000001",
    "000000000000000100000000000000020000000200000087000000806b08e967",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "5bf14ae3497c8d45623d297c25b525b6696c90184faec36643739f8362bf5d9e",
    "78da6367604dc94c4acc67cd29cd4bce6049ce2ca9642f2e494c4b33301470b4",
    "3230713474327236763171357533632f2e2d482d323062645c20cfd47ce07ceb",
    "97261166464626a67fbf960b33ec1087400620606464de21ce0c613330b0b03c",
    "78b3e20f8fc6ff05eb67ad4e6560034a8384f9c0924cccac0c0c6c004f992300",
    "05a65c088f39f0c450b12039ffb16ac64c7d78518fcdd3082cd475569baa4cfd",
};

static void test_vector_v2(void **state)
{
    (void)state;
    uint8_t f[512];
    size_t len = 0;
    unhex_lines(vector2_hex, sizeof vector2_hex / sizeof vector2_hex[0], f, &len);
    yn_batch_header h;
    yn_ledger_record *d;
    const char *why;
    assert_int_equal(yn_batch_decode(f, len, key, sizeof key, &h, &d, &why), YN_OK);
    assert_int_equal(h.version, 2);
    assert_int_equal(h.raw_len, 135);
    assert_string_equal(d[0].card_no, "44030400000001");
    assert_int_equal(d[0].by, YN_LEDGER_BY_IDENT);
    assert_string_equal(d[0].ident, "A:04A1B2C3D4E5F6");
    assert_string_equal(d[0].supervisor_id, "");
    assert_int_equal(d[0].subsidy_fen, 1500);
    assert_string_equal(d[1].card_no, "44030400000002");
    assert_int_equal(d[1].by, YN_LEDGER_BY_MANUAL);
    assert_string_equal(d[1].operator_id, "staff01");
    assert_string_equal(d[1].supervisor_id, "super02");
    assert_int_equal(d[1].utc_s, 1740970820);
    static const uint8_t hash1[4] = {0x03, 0x62, 0xde, 0x02};
    assert_memory_equal(d[0].hash, hash1, sizeof hash1);
    free(d);
}

/* Meals of identity-only cards and of manual entry: a version 2 frame (28
 * columns) carries how each holder was identified; a frame relabelled as the
 * other version is refused; the encoder refuses fields that do not fit. */
static void test_identified_round_trip(void **state)
{
    (void)state;
    uint8_t zero[32] = {0};
    yn_ledger_record *r = make_records(1, 40, zero);
    for (size_t i = 10; i < 40; i += 3) {
        if (r[i].kind != YN_LEDGER_MEAL)
            continue;
        if (i % 2) {
            r[i].by = YN_LEDGER_BY_IDENT;
            snprintf(r[i].ident, sizeof r[i].ident, "A:04A1B2C3D4E5%02zX", i);
        } else {
            r[i].by = YN_LEDGER_BY_MANUAL;
            strcpy(r[i].supervisor_id, "sup-0001");
        }
    }
    for (size_t i = 0; i < 40; i++) {
        const uint8_t *p = i ? r[i - 1].hash : zero;
        memcpy(r[i].prev_hash, p, 32);
        yn_ledger_record_hash(&r[i], p, r[i].hash);
    }
    uint8_t *f, *g;
    size_t len, glen;
    assert_int_equal(yn_batch_encode(3, r, 40, key, sizeof key, &f, &len), YN_OK);
    yn_batch_header h;
    yn_ledger_record *d;
    const char *why;
    assert_int_equal(yn_batch_decode(f, len, key, sizeof key, &h, &d, &why), YN_OK);
    assert_int_equal(h.version, 2);
    for (size_t i = 0; i < 40; i++)
        assert_same(&r[i], &d[i]);
    assert_int_equal(d[13].by, YN_LEDGER_BY_IDENT);
    assert_string_equal(d[13].ident, "A:04A1B2C3D4E50D");
    assert_int_equal(d[10].by, YN_LEDGER_BY_MANUAL);
    assert_string_equal(d[10].supervisor_id, "sup-0001");
    assert_int_equal(d[11].by, YN_LEDGER_BY_CARD);
    free(d);
    /* relabelled: a version 2 frame as version 1 leaves columns unread, a
     * version 1 frame as version 2 ends inside a column */
    f[5] = 1;
    reseal(f, len);
    assert_int_equal(decode_rc(f, len, &why), YN_EPROTO);
    assert_non_null(strstr(why, "bytes left"));
    assert_int_equal(yn_batch_encode(4, r, 10, key, sizeof key, &g, &glen), YN_OK);
    assert_int_equal(g[5], 1);
    g[5] = 2;
    reseal(g, glen);
    assert_int_equal(decode_rc(g, glen, &why), YN_EPROTO);
    free(g);
    free(f);
    /* fields that do not fit how the holder was identified */
    r[11].supervisor_id[0] = 'x'; /* a card's record naming a supervisor */
    assert_int_equal(yn_batch_encode(1, r, 40, key, sizeof key, &f, &len), YN_EINVAL);
    r[11].supervisor_id[0] = '\0';
    strcpy(r[13].ident, "A:04a1"); /* not an identifier */
    assert_int_equal(yn_batch_encode(1, r, 40, key, sizeof key, &f, &len), YN_EINVAL);
    snprintf(r[13].ident, sizeof r[13].ident, "A:04A1B2C3D4E50D");
    strcpy(r[10].supervisor_id, r[10].operator_id); /* one person both */
    assert_int_equal(yn_batch_encode(1, r, 40, key, sizeof key, &f, &len), YN_EINVAL);
    strcpy(r[10].supervisor_id, "sup-0001");
    r[4].by = YN_LEDGER_BY_MANUAL; /* a reversal is not identified */
    strcpy(r[4].supervisor_id, "sup-0001");
    assert_int_equal(yn_batch_encode(1, r, 40, key, sizeof key, &f, &len), YN_EINVAL);
    r[10].by = 4;
    assert_int_equal(yn_batch_encode(1, r, 40, key, sizeof key, &f, &len), YN_EINVAL);
    free(r);
}

/* PROTOCOL.md §8, the signed vector (§10): the version 1 vector's header
 * and body with flags bit 0 set, and an ECDSA P-256 signature by the key
 * pair whose private scalar is bytes 01..20 and whose public key is this. */
static const char vector_pub_hex[] =
    "04515c3d6eb9e396b904d3feca7f54fdcd0cc1e997bf375dca515ad0a6c3b4035f4536be3a50f318fbf9a5475902"
    "a221502bef0d57e08c53b2cc0a56f17d9f9354";
/* its trailer; the rest is vector_hex's header and body, flags bit 0 set */
static const char *const vector_signed_sig_hex[] = {
    "3ebd6f93a7519c339a04fc9e7a4d485711c97c7bc3adf7c923c842d1b688cda1",
    "e126af138e304a70794ad35221e6ce258a59736d84bfcc28e5c42009b373a702",
};

static void test_vector_signed(void **state)
{
    (void)state;
    uint8_t f[512], pub[YN_SIG_P256_PUB_LEN];
    size_t len = 0;
    unhex_lines(vector_hex, sizeof vector_hex / sizeof vector_hex[0], f, &len);
    len -= YN_BATCH_MAC_LEN;
    f[7] = YN_BATCH_FLAG_SIGNED;
    unhex_lines(vector_signed_sig_hex, 2, f, &len);
    assert_int_equal(len, 128 + 128 + 64);
    assert_true(yn_hex_decode_exact(vector_pub_hex, pub, sizeof pub));
    yn_batch_cred cred = {YN_BATCH_AUTH_ECDSA_P256, pub, sizeof pub};
    yn_batch_header h;
    yn_ledger_record *d;
    yn_batch_error err;
    assert_int_equal(yn_batch_verify_cred(f, len, &cred, &h, &d, &err), YN_OK);
    assert_int_equal(h.version, 1);
    assert_int_equal(h.auth, YN_BATCH_AUTH_ECDSA_P256);
    uint8_t zero[32] = {0};
    yn_ledger_record *r = make_records(1, 2, zero);
    assert_same(&r[0], &d[0]);
    assert_same(&r[1], &d[1]);
    free(d);
    free(r);
    /* the shared key of the HMAC vector does not authenticate it */
    const char *why;
    assert_int_equal(yn_batch_decode(f, len, key, sizeof key, &h, &d, &why), YN_EAUTH);
    assert_non_null(strstr(why, "enrolled with a shared key"));
    /* a changed signature, or the flag taken away, is refused */
    f[len - 1] ^= 1;
    assert_int_equal(yn_batch_verify_cred(f, len, &cred, &h, &d, &err), YN_EAUTH);
    f[len - 1] ^= 1;
    f[7] = 0; /* now a 32-byte trailer is expected: the length does not match */
    assert_int_equal(yn_batch_verify_cred(f, len, &cred, &h, &d, &err), YN_EPROTO);
    f[7] = 3; /* an unknown flag */
    assert_int_equal(yn_batch_peek(f, len, &h), YN_EPROTO);
}

/* A frame signed by a key pair round-trips (version 1 and 2 alike); it is
 * refused under another key pair, under a shared key, and a MACed frame is
 * refused for a terminal enrolled with a key pair. */
static void test_signed_round_trip(void **state)
{
    (void)state;
    uint8_t zero[32] = {0}, pub[YN_SIG_P256_PUB_LEN], other_pub[YN_SIG_P256_PUB_LEN];
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(k);
    assert_non_null(other);
    assert_int_equal(yn_sig_p256_public(k, pub), YN_OK);
    assert_int_equal(yn_sig_p256_public(other, other_pub), YN_OK);
    yn_ledger_record *r = make_records(1, 60, zero);
    r[10].by = YN_LEDGER_BY_MANUAL; /* the second frame: version 2 */
    strcpy(r[10].supervisor_id, "sup-0001");
    for (size_t i = 0; i < 60; i++) {
        const uint8_t *p = i ? r[i - 1].hash : zero;
        memcpy(r[i].prev_hash, p, 32);
        yn_ledger_record_hash(&r[i], p, r[i].hash);
    }
    static const size_t counts[2] = {10, 60};
    for (int v = 0; v < 2; v++) {
        uint8_t *f;
        size_t len;
        assert_int_equal(
            yn_batch_encode_unsigned(7, r, counts[v], YN_BATCH_AUTH_ECDSA_P256, &f, &len), YN_OK);
        assert_int_equal(f[5], v + 1);
        assert_int_equal(f[7], YN_BATCH_FLAG_SIGNED);
        assert_int_equal(yn_batch_trailer_len(YN_BATCH_AUTH_ECDSA_P256), YN_BATCH_SIG_LEN);
        assert_int_equal(yn_sig_p256_sign(k, f, len - YN_BATCH_SIG_LEN, f + len - YN_BATCH_SIG_LEN),
                         YN_OK);
        yn_batch_cred cred = {YN_BATCH_AUTH_ECDSA_P256, pub, sizeof pub};
        yn_batch_header h;
        yn_ledger_record *d;
        yn_batch_error err;
        assert_int_equal(yn_batch_verify_cred(f, len, &cred, &h, &d, &err), YN_OK);
        assert_int_equal(h.count, counts[v]);
        for (size_t i = 0; i < counts[v]; i++)
            assert_same(&r[i], &d[i]);
        free(d);
        yn_batch_cred wrong = {YN_BATCH_AUTH_ECDSA_P256, other_pub, sizeof other_pub};
        assert_int_equal(yn_batch_verify_cred(f, len, &wrong, &h, &d, &err), YN_EAUTH);
        assert_non_null(strstr(err.why, "signature does not verify"));
        assert_int_equal(yn_batch_verify(f, len, key, sizeof key, &h, &d, &err), YN_EAUTH);
        free(f);
        /* a MACed frame from a terminal enrolled with a key pair */
        assert_int_equal(yn_batch_encode(7, r, counts[v], key, sizeof key, &f, &len), YN_OK);
        assert_int_equal(yn_batch_verify_cred(f, len, &cred, &h, &d, &err), YN_EAUTH);
        assert_non_null(strstr(err.why, "enrolled with a key pair"));
        free(f);
    }
    free(r);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

static void test_vector(void **state)
{
    (void)state;
    uint8_t f[512];
    size_t len = 0;
    unhex_lines(vector_hex, sizeof vector_hex / sizeof vector_hex[0], f, &len);
    yn_batch_header h;
    yn_ledger_record *d;
    const char *why;
    assert_int_equal(yn_batch_decode(f, len, key, sizeof key, &h, &d, &why), YN_OK);
    assert_int_equal(h.batch_id, 1);
    assert_int_equal(h.first_seq, 1);
    assert_int_equal(h.last_seq, 2);
    assert_int_equal(h.raw_len, 128);
    assert_int_equal(h.body_len, 128);
    uint8_t zero[32] = {0};
    yn_ledger_record *r = make_records(1, 2, zero);
    assert_same(&r[0], &d[0]);
    assert_same(&r[1], &d[1]);
    assert_string_equal(d[0].card_no, "44030400000000");
    assert_string_equal(d[0].category, "dibao");
    assert_int_equal(d[0].subsidy_fen, 1200);
    assert_int_equal(d[0].n_layers, 2);
    assert_false(d[0].clock_trusted);
    assert_string_equal(d[1].card_no, "44030400000419");
    assert_int_equal(d[1].wallet_fen, 700);
    assert_int_equal(d[1].utc_s, 1740970813);
    assert_int_equal(d[1].mono_ms, 5013001);
    /* the chain-hash vector of PROTOCOL.md §3.6: record 1 */
    static const char hash1[] = "da5fe98555ec0809c6b118d9f13cd665a94f0db063e88a16a8e8f9778542859a";
    for (int i = 0; i < 32; i++) {
        unsigned v;
        assert_int_equal(sscanf(hash1 + 2 * i, "%2x", &v), 1);
        assert_int_equal(d[0].hash[i], v);
    }
    if (getenv("YN_PRINT_VECTOR")) {
        for (size_t i = 0; i < 2; i++)
            printf("seq %lld card %s hash %02x%02x…\n", (long long)d[i].seq, d[i].card_no,
                   d[i].hash[0], d[i].hash[1]);
        uint8_t raw[128];
        uLongf rl = sizeof raw;
        assert_int_equal(uncompress(raw, &rl, f + YN_BATCH_HEADER_LEN, h.body_len), Z_OK);
        for (size_t i = 0; i < rl; i++)
            printf("%02x%s", raw[i], i % 32 == 31 ? "\n" : "");
        printf("\n");
    }
    free(d);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_extremes_round_trip),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_rejections),
        cmocka_unit_test(test_every_truncated_body),
        cmocka_unit_test(test_vector),
        cmocka_unit_test(test_vector_signed),
        cmocka_unit_test(test_signed_round_trip),
        cmocka_unit_test(test_smallest_records),
        cmocka_unit_test(test_rules_refuse_records),
        cmocka_unit_test(test_strings_utf8),
        cmocka_unit_test(test_identified_round_trip),
        cmocka_unit_test(test_vector_v2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
