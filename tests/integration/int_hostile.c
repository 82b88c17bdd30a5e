/* int_hostile.c — the reference district server against a hostile client,
 * over real TLS on loopback. A good batch is stored once (and again
 * harmlessly). Each bad frame gets its own 4xx, never a 500, and changes
 * nothing: a bad CRC, a bad HMAC, a truncated frame, an oversized body, a zip
 * bomb (413), an unknown terminal, a replayed batch with different content
 * (409), a prev_hash that is not the held one (409). Records the format can
 * carry but the rules refuse get 400 bad_record naming the field: a meal of
 * -1,000,000 fen, two meals of 2^62 fen, a card "AB C", a duplicate layer
 * source (was 500 on every retry), a fabricated allocation, a reversal of a
 * meal reversed before or of no meal, bad UTF-8 (400 bad_body). A batch of
 * 40 records of 24 bytes each (refused by the old raw_len rule) is stored.
 * The server's report stays the same across every refusal. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "batch.h"
#include "check.h"
#include "client.h"
#include "district.h"
#include "keystore.h"
#include "ledger.h"
#include "log.h"

static yn_test_district D;
static uint8_t key[64];
static size_t key_len;
static char last_body[1024]; /* the last reply's body */

/* POST body to /v1/batches; the HTTP status, or -1. */
static long post(const void *body, size_t len)
{
    yn_test_reply r = yn_test_district_post(&D, "POST", "/v1/batches", body, len, NULL, 0);
    snprintf(last_body, sizeof last_body, "%s", r.body);
    yn_test_reply_free(&r);
    return r.status;
}

/* A ledger of n top-ups for terminal id, and its first batch as a frame. */
static uint8_t *make_frame(const char *name, const char *terminal, int n, int64_t base_fen,
                           const uint8_t *k, size_t klen, size_t *len)
{
    char path[900];
    snprintf(path, sizeof path, "%s/%s.db", D.dir, name);
    yn_ledger_opts lo = {.path = path, .terminal_id = terminal};
    yn_ledger *l;
    if (yn_ledger_open(&lo, &l) != YN_OK)
        return NULL;
    yn_ledger_when w = {.utc_s = 1773115200, .mono_ms = 1, .clock_trusted = true};
    for (int i = 0; i < n; i++) {
        yn_ledger_result r;
        if (yn_ledger_topup(l, 1 + i, "4403040001", base_fen + i, "1001", &w, &r) != YN_OK)
            return NULL;
    }
    yn_ledger_batch b;
    static yn_ledger_record recs[100];
    uint8_t *frame = NULL;
    if (yn_ledger_batch_next(l, 100, w.utc_s, &b) != YN_OK ||
        (b.last_seq - b.first_seq + 1) > (int64_t)(sizeof recs / sizeof recs[0]))
        return NULL;
    /* the frame built here with the raw key: this test plays a thief who has it */
    int64_t n_recs = 0;
    for (int64_t seq = b.first_seq; seq <= b.last_seq; seq++)
        if (yn_ledger_record_get(l, seq, &recs[n_recs++]) != YN_OK)
            return NULL;
    if (yn_batch_encode(b.id, recs, (size_t)n_recs, k, klen, &frame, len) != YN_OK)
        frame = NULL;
    yn_ledger_close(l);
    return frame;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Re-seal a frame whose body changed: sizes, CRC and HMAC made consistent. */
static uint8_t *reseal(const uint8_t *frame, const uint8_t *body, size_t body_len, uint32_t raw_len,
                       size_t *len)
{
    *len = YN_BATCH_HEADER_LEN + body_len + YN_BATCH_MAC_LEN;
    uint8_t *f = malloc(*len);
    memcpy(f, frame, YN_BATCH_HEADER_LEN);
    memcpy(f + YN_BATCH_HEADER_LEN, body, body_len);
    put_be32(f + 52, raw_len);
    put_be32(f + 56, (uint32_t)body_len);
    put_be32(f + 60, (uint32_t)crc32(0L, body, (uInt)body_len));
    yn_batch_hmac(key, key_len, f, YN_BATCH_HEADER_LEN + body_len,
                  f + YN_BATCH_HEADER_LEN + body_len);
    return f;
}

/* The chain the district holds for T-HOST: seq and hash of its last record. */
static int64_t held_seq;
static uint8_t held_hash[32];
static int64_t next_batch_id = 10;

/* A meal record after the held chain (seq at index i of a batch). */
static yn_ledger_record meal(int64_t seq, int64_t price_fen)
{
    yn_ledger_record r = {.seq = seq,
                          .tap_id = 100 + seq,
                          .kind = YN_LEDGER_MEAL,
                          .local_ymd = 20260310,
                          .price_fen = price_fen,
                          .n_layers = 1,
                          .subsidy_fen = price_fen / 2,
                          .cash_fen = price_fen - price_fen / 2,
                          .utc_s = 1773115300 + seq,
                          .mono_ms = 1000 * seq,
                          .boot_no = 1,
                          .policy_version = 1};
    strcpy(r.terminal, "T-HOST");
    strcpy(r.card_no, "4403040001");
    strcpy(r.category, "age70");
    strcpy(r.period, "lunch");
    strcpy(r.layers[0].source, "city");
    r.layers[0].fen = r.subsidy_fen;
    return r;
}

static yn_ledger_record reversal_of(const yn_ledger_record *m, int64_t seq)
{
    yn_ledger_record r = *m;
    r.seq = seq;
    r.kind = YN_LEDGER_REVERSAL;
    r.tap_id = 0;
    r.reverses_seq = m->seq;
    r.price_fen = -m->price_fen;
    r.subsidy_fen = -m->subsidy_fen;
    r.wallet_fen = -m->wallet_fen;
    r.cash_fen = -m->cash_fen;
    for (int i = 0; i < r.n_layers; i++)
        r.layers[i].fen = -m->layers[i].fen;
    r.utc_s = m->utc_s + 10;
    return r;
}

/* Chain and encode n records after the held chain; post; on 200 the chain
 * moves on. The HTTP status. */
static long send_records(yn_ledger_record *r, size_t n)
{
    const uint8_t *prev = held_hash;
    for (size_t i = 0; i < n; i++) {
        memcpy(r[i].prev_hash, prev, 32);
        yn_ledger_record_hash(&r[i], prev, r[i].hash);
        prev = r[i].hash;
    }
    uint8_t *f;
    size_t len;
    if (yn_batch_encode(next_batch_id++, r, n, key, key_len, &f, &len) != YN_OK)
        return -2;
    long code = post(f, len);
    free(f);
    if (code == 200) {
        held_seq = r[n - 1].seq;
        memcpy(held_hash, r[n - 1].hash, 32);
    }
    return code;
}

/* The reply named this error code and field. */
static bool said(const char *code, const char *field)
{
    char want[96];
    snprintf(want, sizeof want, "\"error\":\"%s\"", code);
    bool ok = strstr(last_body, want) != NULL;
    if (field) {
        snprintf(want, sizeof want, "\"field\":\"%s\"", field);
        ok = ok && strstr(last_body, want) != NULL;
    }
    return ok;
}

int main(void)
{
    const char *build = getenv("BUILD"), *tmp = getenv("TMPDIR");
    if (!build || !tmp)
        return 2;
    yn_log_init("int_hostile", YN_LOG_ERR, false);
    /* a one-time token for T-HOST, made before the server holds the database */
    char dir_path[512], token[64] = "", tkey_path[900];
    snprintf(dir_path, sizeof dir_path, "%s/hostile", tmp);
    if (yn_test_district_init(&D, build, dir_path) != 0 ||
        yn_test_district_token(&D, "T-HOST", token, sizeof token) != 0)
        return 1;
    pid_t srv = yn_test_district_start(&D, NULL, NULL);
    snprintf(tkey_path, sizeof tkey_path, "%s/terminal.key", D.dir);
    static yn_test_key k;
    int rc = yn_test_district_enrol(&D, token, tkey_path, &k);
    memcpy(key, k.key, sizeof key);
    key_len = k.key_len;
    yn_test_key_close(&k); /* a thief's copy of the key is all this test needs */
    CHECK(rc == YN_OK, "enrol: %s", yn_strerror(rc));
    uint8_t other_key[32];
    memset(other_key, 0x5A, sizeof other_key);

    size_t good_len, len;
    uint8_t *good = make_frame("a", "T-HOST", 5, 1000, key, key_len, &good_len);
    CHECK(good != NULL, "a good frame");
    if (!good)
        goto out;
    long long before[YN_TOT_N], after[YN_TOT_N];
    CHECK(post(good, good_len) == 200, "a good batch is stored: %s", last_body);
    yn_test_district_totals(&D, "T-HOST", before);
    CHECK(before[YN_TOT_RECORDS] == 5, "5 records stored: %lld", before[YN_TOT_RECORDS]);
    CHECK(post(good, good_len) == 200, "the same batch again is harmless");
    {
        yn_batch_header h;
        yn_ledger_record *recs;
        CHECK_RC(yn_batch_decode(good, good_len, key, key_len, &h, &recs, NULL), YN_OK);
        held_seq = h.last_seq;
        memcpy(held_hash, h.head_hash, 32);
        free(recs);
    }

    /* bad CRC: one body byte changed, the HMAC made to match (only the CRC fails) */
    uint8_t *f = malloc(good_len);
    memcpy(f, good, good_len);
    f[YN_BATCH_HEADER_LEN] ^= 0x01;
    yn_batch_hmac(key, key_len, f, good_len - YN_BATCH_MAC_LEN, f + good_len - YN_BATCH_MAC_LEN);
    long code = post(f, good_len);
    CHECK(code == 400 && said("bad_crc_or_chain", NULL), "bad CRC: HTTP %ld %s", code, last_body);
    /* bad HMAC */
    memcpy(f, good, good_len);
    f[good_len - 1] ^= 0x01;
    code = post(f, good_len);
    CHECK(code == 401 && said("bad_mac", NULL), "bad HMAC: HTTP %ld", code);
    /* the header's prev_hash changed, sealed: the chain no longer reaches its head */
    memcpy(f, good, good_len);
    f[64] ^= 0x01;
    yn_batch_hmac(key, key_len, f, good_len - YN_BATCH_MAC_LEN, f + good_len - YN_BATCH_MAC_LEN);
    code = post(f, good_len);
    CHECK(code == 400 && said("bad_crc_or_chain", NULL), "prev_hash changed: HTTP %ld", code);
    free(f);
    /* truncated */
    code = post(good, good_len - 10);
    CHECK(code == 400 && said("bad_frame", NULL), "truncated: HTTP %ld", code);
    /* oversized: over the largest frame there can be */
    size_t big = YN_BATCH_MAX_FRAME + 4096;
    uint8_t *huge = calloc(1, big);
    memcpy(huge, good, YN_BATCH_HEADER_LEN);
    code = post(huge, big);
    CHECK(code == 413, "oversized: HTTP %ld", code);
    free(huge);
    /* zip bomb: 64 MiB of zeros deflated into a correctly sealed frame: 413 */
    size_t raw = 64u << 20;
    uint8_t *zeros = calloc(1, raw);
    uLongf zlen = compressBound(raw);
    uint8_t *z = malloc(zlen);
    CHECK(compress2(z, &zlen, zeros, raw, 9) == Z_OK, "deflate");
    free(zeros);
    f = reseal(good, z, zlen, 4096, &len);
    code = post(f, len);
    CHECK(code == 413 && said("too_large", NULL), "zip bomb (%lu bytes): HTTP %ld",
          (unsigned long)zlen, code);
    free(f);
    free(z);
    /* unknown terminal: a frame of a terminal the district never enrolled */
    uint8_t *stranger = make_frame("b", "T-NOBODY", 2, 500, other_key, sizeof other_key, &len);
    code = stranger ? post(stranger, len) : -1;
    CHECK(code == 403 && said("unknown_terminal", NULL), "unknown terminal: HTTP %ld", code);
    free(stranger);
    /* replayed batch with different content: same terminal, same seqs, other fen */
    uint8_t *forged = make_frame("c", "T-HOST", 5, 9000, key, key_len, &len);
    code = forged ? post(forged, len) : -1;
    CHECK(code == 409 && said("conflict", NULL), "replayed batch with different content: HTTP %ld",
          code);
    free(forged);

    /* a chain that is whole but does not continue the held one: 409 */
    yn_ledger_record r[48];
    int64_t s = held_seq + 1;
    held_hash[0] ^= 1;
    r[0] = meal(s, 1500);
    code = send_records(r, 1);
    held_hash[0] ^= 1;
    CHECK(code == 409 && said("conflict", NULL), "prev_hash not the held one: HTTP %ld %s", code,
          last_body);
    /* a gap: 409 */
    r[0] = meal(s + 1, 1500);
    code = send_records(r, 1);
    CHECK(code == 409 && said("conflict", NULL), "a gap: HTTP %ld", code);

    /* records the rules refuse: 400 bad_record naming the field, nothing stored */
    r[0] = meal(s, 1500);
    r[0].price_fen = r[0].cash_fen = -1000000;
    r[0].subsidy_fen = r[0].layers[0].fen = 0;
    code = send_records(r, 1);
    CHECK(code == 400 && said("bad_record", "price_fen"), "meal of -1,000,000: %ld %s", code,
          last_body);
    r[0] = meal(s, 1500);
    r[1] = meal(s + 1, 1500);
    for (int i = 0; i < 2; i++) {
        r[i].price_fen = r[i].cash_fen = INT64_C(1) << 62;
        r[i].subsidy_fen = r[i].layers[0].fen = 0;
    }
    code = send_records(r, 2);
    CHECK(code == 400 && said("bad_record", "price_fen"), "two meals of 2^62: %ld %s", code,
          last_body);
    r[0] = meal(s, 1500);
    strcpy(r[0].card_no, "AB C");
    code = send_records(r, 1);
    CHECK(code == 400 && said("bad_record", "card_no"), "card \"AB C\": %ld %s", code, last_body);
    r[0] = meal(s, 1500);
    r[0].n_layers = 2;
    r[0].layers[1] = r[0].layers[0];
    r[0].layers[1].fen = 0;
    code = send_records(r, 1);
    CHECK(code == 400 && said("bad_record", "layers[1].source"), "duplicate source: %ld %s", code,
          last_body);
    code = send_records(r, 1); /* a retry gets the same answer, never 500 */
    CHECK(code == 400, "duplicate source again: %ld", code);
    memset(&r[0], 0, sizeof r[0]);
    r[0] = meal(s, 0);
    r[0].kind = YN_LEDGER_ALLOCATION;
    r[0].tap_id = 0;
    strcpy(r[0].ref, "A-FAKE");
    r[0].subsidy_fen = r[0].layers[0].fen = 1000000000;
    r[0].wallet_fen = -1000000000;
    r[0].cash_fen = 0;
    code = send_records(r, 1);
    CHECK(code == 400 && said("bad_record", "subsidy_fen"), "allocation of 1e9: %ld %s", code,
          last_body);
    r[0].subsidy_fen = r[0].layers[0].fen = 3000;
    r[0].wallet_fen = -3000;
    code = send_records(r, 1);
    CHECK(code == 400 && said("bad_record", "ref"), "allocation the district never made: %ld %s",
          code, last_body);
    r[0] = meal(s, 1500);
    r[1] = reversal_of(&r[0], s + 1);
    r[2] = reversal_of(&r[0], s + 2);
    code = send_records(r, 3);
    CHECK(code == 400 && said("bad_record", "reverses_seq"), "double reversal in a batch: %ld %s",
          code, last_body);
    r[1] = reversal_of(&r[0], s + 1);
    r[1].cash_fen += 1;
    r[1].price_fen += 1;
    code = send_records(r, 2);
    CHECK(code == 400 && said("bad_record", NULL), "reversal with other amounts: %ld %s", code,
          last_body);
    r[1] = reversal_of(&r[0], s + 1);
    r[1].reverses_seq = held_seq; /* a top-up, not a meal */
    code = send_records(r, 2);
    CHECK(code == 400 && said("bad_record", "reverses_seq"), "reversal of a top-up: %ld %s", code,
          last_body);
    /* bad UTF-8 in the string table: the body is refused */
    {
        r[0] = meal(s, 1500);
        strcpy(r[0].category, "a\xff");
        code = send_records(r, 1);
        CHECK(code == 400 && said("bad_body", NULL), "bad UTF-8: %ld %s", code, last_body);
    }
    yn_test_district_totals(&D, "T-HOST", after);
    CHECK(memcmp(before, after, sizeof before) == 0, "nothing changed: %lld records, %lld fen",
          after[YN_TOT_RECORDS], after[YN_TOT_CASH]);

    /* what is valid goes in: a meal, then its reversal in the next batch (the
     * meal held), then the same reversal again (refused), then 40 records of
     * 24 bytes each */
    r[0] = meal(s, 1500);
    code = send_records(r, 1);
    CHECK(code == 200, "a meal: %ld %s", code, last_body);
    r[0] = reversal_of(&r[0], s + 1);
    yn_ledger_record undo = r[0];
    code = send_records(r, 1);
    CHECK(code == 200, "its reversal in the next batch: %ld %s", code, last_body);
    undo.seq = s + 2;
    r[0] = undo;
    code = send_records(r, 1);
    CHECK(code == 400 && said("bad_record", "reverses_seq"), "reversed again later: %ld %s", code,
          last_body);
    /* a stamp-missing notice (kind 5) names a meal of this card: held; of no meal: refused */
    yn_ledger_record notice = meal(s + 2, 0);
    notice.kind = 5;
    notice.tap_id = 0;
    notice.n_layers = 0;
    notice.subsidy_fen = notice.cash_fen = 0;
    notice.reverses_seq = held_seq - 1; /* the reversed meal, still a meal of this card */
    strcpy(notice.ref, "card_gone");
    yn_ledger_record bad_notice = notice;
    bad_notice.reverses_seq = held_seq; /* the reversal: not a meal */
    r[0] = bad_notice;
    code = send_records(r, 1);
    CHECK(code == 400 && said("bad_record", "reverses_seq"), "a notice of a reversal: %ld %s", code,
          last_body);
    r[0] = notice;
    code = send_records(r, 1);
    CHECK(code == 200, "a stamp-missing notice: %ld %s", code, last_body);
    s++;
    for (int i = 0; i < 40; i++) { /* no layers, nothing but deltas of 0 or 1: 24 bytes */
        r[i] = meal(s + 2 + i, 0);
        r[i].n_layers = 0;
        r[i].subsidy_fen = r[i].cash_fen = 0;
        r[i].category[0] = r[i].period[0] = '\0';
        r[i].utc_s = 1773115300;
        r[i].mono_ms = 1000;
        r[i].policy_version = 0;
        strcpy(r[i].card_no, "1");
    }
    code = send_records(r, 40);
    CHECK(code == 200, "40 records of 24 bytes: %ld %s", code, last_body);
    yn_test_district_totals(&D, "T-HOST", after);
    CHECK(after[YN_TOT_RECORDS] == 5 + 2 + 1 + 40, "records held: %lld", after[YN_TOT_RECORDS]);
    CHECK(after[YN_TOT_MEAL_SUBSIDY] == 0 && after[YN_TOT_PRICE] == before[YN_TOT_PRICE],
          "a meal and its reversal net to nothing: subsidy %lld", after[YN_TOT_MEAL_SUBSIDY]);
out:
    free(good);
    yn_test_district_stop(srv, SIGTERM);
    printf("int_hostile: %d checks, %d failed\n", yn_checks, yn_failures);
    return yn_failures ? 1 : 0;
}
