/* int_hostile.c — the reference district server against hostile batches, over
 * real TLS on loopback: a good batch is stored once (and again harmlessly);
 * a bad CRC, a bad HMAC, a truncated frame, an oversized body, a zip bomb, an
 * unknown terminal and a replayed batch with different content each get a
 * clear 4xx and change nothing (the server's report stays the same). */
#include <curl/curl.h>
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
#include "testkeys.h"

static yn_test_district D;

/* POST body to /v1/batches; the HTTP status, or -1. */
static long post(const void *body, size_t len)
{
    CURL *c = curl_easy_init();
    char u[128];
    snprintf(u, sizeof u, "%s/v1/batches", D.url);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    FILE *sink = fopen("/dev/null", "w");
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_CAINFO, D.ca);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    long code = -1;
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    fclose(sink);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return code;
}

/* A ledger of n allocations for terminal id, and its first batch as a frame. */
static uint8_t *make_frame(const char *name, const char *terminal, int n, int64_t base_fen,
                           yn_keystore *keys, size_t *len)
{
    char path[900];
    snprintf(path, sizeof path, "%s/%s.db", D.dir, name);
    yn_ledger_opts lo = {.path = path, .terminal_id = terminal};
    yn_ledger *l;
    if (yn_ledger_open(&lo, &l) != YN_OK)
        return NULL;
    yn_ledger_when w = {.utc_s = 1773115200, .mono_ms = 1, .clock_trusted = true};
    for (int i = 0; i < n; i++) {
        char id[32];
        yn_ledger_result r;
        snprintf(id, sizeof id, "alloc-%d", i);
        if (yn_ledger_allocate(l, id, "4403040001", "district", base_fen + i, &w, &r) != YN_OK)
            return NULL;
    }
    yn_ledger_batch b;
    uint8_t *frame = NULL;
    if (yn_ledger_batch_next(l, 100, w.utc_s, &b) != YN_OK ||
        yn_sync_batch_frame(l, &b, keys, &frame, len) != YN_OK)
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
static uint8_t *reseal(const uint8_t *frame, const uint8_t *body, size_t body_len,
                       const uint8_t *key, size_t key_len, size_t *len)
{
    *len = YN_BATCH_HEADER_LEN + body_len + YN_BATCH_MAC_LEN;
    uint8_t *f = malloc(*len);
    memcpy(f, frame, YN_BATCH_HEADER_LEN);
    memcpy(f + YN_BATCH_HEADER_LEN, body, body_len);
    put_be32(f + 56, (uint32_t)body_len);
    put_be32(f + 60, (uint32_t)crc32(0L, body, (uInt)body_len));
    yn_batch_hmac(key, key_len, f, YN_BATCH_HEADER_LEN + body_len,
                  f + YN_BATCH_HEADER_LEN + body_len);
    return f;
}

int main(void)
{
    const char *build = getenv("BUILD"), *tmp = getenv("TMPDIR");
    if (!build || !tmp)
        return 2;
    yn_log_init("int_hostile", YN_LOG_ERR, false);
    /* a one-time token for T-HOST, made before the server holds the database */
    char dir_path[512], token[64] = "", tkey_path[900], id[32];
    snprintf(dir_path, sizeof dir_path, "%s/hostile", tmp);
    if (yn_test_district_init(&D, build, dir_path) != 0 ||
        yn_test_district_token(&D, "T-HOST", token, sizeof token) != 0)
        return 1;
    pid_t srv = yn_test_district_start(&D, NULL, NULL);
    /* key files: this test forges frames, so it plays a thief who has the key */
    yn_testkeys keys, other;
    uint8_t key[64], other_key[32];
    memset(other_key, 0x5A, sizeof other_key);
    yn_testkeys_open_as(&keys, "file", D.dir, NULL, NULL, 0);
    snprintf(tkey_path, sizeof tkey_path, "%s/other", D.dir);
    mkdir(tkey_path, 0700);
    yn_testkeys_open_as(&other, "file", tkey_path, NULL, other_key, sizeof other_key);
    int rc = YN_EIO;
    for (int i = 0; i < 100 && rc != YN_OK; i++) {
        yn_test_sleep_ms(100);
        rc = yn_sync_enrol(D.url, D.ca, token, &keys.ks, id, sizeof id);
    }
    CHECK(rc == YN_OK, "enrol: %s", yn_strerror(rc));
    size_t key_len = 0;
    CHECK(yn_key_file_load(keys.cfg.keys.terminal_key, true, "terminal key", key, sizeof key,
                           &key_len) == YN_OK,
          "terminal key");

    size_t good_len, len;
    uint8_t *good = make_frame("a", "T-HOST", 5, 1000, &keys.ks, &good_len);
    CHECK(good != NULL, "a good frame");
    if (!good)
        goto out;
    long long before[5], after[5];
    CHECK(post(good, good_len) == 200, "a good batch is stored");
    yn_test_district_totals(&D, "T-HOST", before);
    CHECK(before[0] == 5, "5 records stored: %lld", before[0]);
    CHECK(post(good, good_len) == 200, "the same batch again is harmless");

    /* bad CRC: one body byte changed, the HMAC made to match (only the CRC fails) */
    uint8_t *f = malloc(good_len);
    memcpy(f, good, good_len);
    f[YN_BATCH_HEADER_LEN] ^= 0x01;
    yn_batch_hmac(key, key_len, f, good_len - YN_BATCH_MAC_LEN, f + good_len - YN_BATCH_MAC_LEN);
    long code = post(f, good_len);
    CHECK(code == 400, "bad CRC: HTTP %ld", code);
    /* bad HMAC */
    memcpy(f, good, good_len);
    f[good_len - 1] ^= 0x01;
    code = post(f, good_len);
    CHECK(code == 401, "bad HMAC: HTTP %ld", code);
    free(f);
    /* truncated */
    code = post(good, good_len - 10);
    CHECK(code == 400, "truncated: HTTP %ld", code);
    /* oversized: over the largest frame there can be */
    size_t big = YN_BATCH_MAX_FRAME + 4096;
    uint8_t *huge = calloc(1, big);
    memcpy(huge, good, YN_BATCH_HEADER_LEN);
    code = post(huge, big);
    CHECK(code == 413, "oversized: HTTP %ld", code);
    free(huge);
    /* zip bomb: 64 MiB of zeros deflated into a correctly sealed frame */
    size_t raw = 64u << 20;
    uint8_t *zeros = calloc(1, raw);
    uLongf zlen = compressBound(raw);
    uint8_t *z = malloc(zlen);
    CHECK(compress2(z, &zlen, zeros, raw, 9) == Z_OK, "deflate");
    free(zeros);
    f = reseal(good, z, zlen, key, key_len, &len);
    code = post(f, len);
    CHECK(code == 400 || code == 413, "zip bomb (%lu bytes): HTTP %ld", (unsigned long)zlen, code);
    free(f);
    free(z);
    /* unknown terminal: a frame of a terminal the district never enrolled */
    uint8_t *stranger = make_frame("b", "T-NOBODY", 2, 500, &other.ks, &len);
    code = stranger ? post(stranger, len) : -1;
    CHECK(code == 401 || code == 403 || code == 404, "unknown terminal: HTTP %ld", code);
    free(stranger);
    /* replayed batch with different content: same terminal, same seqs, other fen */
    uint8_t *forged = make_frame("c", "T-HOST", 5, 9000, &keys.ks, &len);
    code = forged ? post(forged, len) : -1;
    CHECK(code == 409, "replayed batch with different content: HTTP %ld", code);
    free(forged);

    yn_test_district_totals(&D, "T-HOST", after);
    CHECK(memcmp(before, after, sizeof before) == 0, "nothing changed: %lld records, %lld fen",
          after[0], after[3]);
out:
    free(good);
    yn_testkeys_close(&keys);
    yn_testkeys_close(&other);
    yn_test_district_stop(srv, SIGTERM);
    printf("int_hostile: %d checks, %d failed\n", yn_checks, yn_failures);
    return yn_failures ? 1 : 0;
}
