/* bench_sync.c — sync figures: wire bytes per meal record for a realistic
 * lunch (sync_bytes_per_record, bar 16) and 100,000 records uploaded to the
 * reference server over TLS on loopback (sync_100k_s, bar 10 s); with
 * YN_KEY_PAIR=1 the terminal signs with a key pair instead of MACing. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"

#include "client.h"
#include "district.h"
#include "keystore.h"
#include "testkeys.h"
#include "ledger.h"
#include "log.h"
#include "lunch.h"

static yn_test_district D;
static char ledger_path[700];

/* A lunch at one canteen: 300 diners in 90 minutes out of a roster of 2,000
 * local cards, categories fixed per card (Shenzhen 2025 shares), a few
 * wallet payers, the odd 冲正. Bytes of the frames per record. */
static double lunch_bytes_per_record(void)
{
    enum { DAYS = 5, DINERS = 300 };
    static yn_ledger_record r[DAYS * DINERS];
    static int64_t wallet[2000], last_seq[2000];
    uint8_t key32[32] = {1}, prev[32] = {0};
    srand(42);
    size_t n = 0;
    for (int d = 0; d < DAYS; d++) {
        int64_t t = 1740970800 + d * 86400 + 11 * 3600 - 8 * 3600;
        for (int i = 0; i < DINERS; i++, n++) {
            yn_ledger_record *x = &r[n];
            int card = rand() % 2000;
            yn_test_lunch_meal(x, card);
            x->seq = (int64_t)n + 1;
            strcpy(x->terminal, "SZ-FT-0012");
            x->tap_id = x->seq + d * 7;
            x->local_ymd = 20250303 + d;
            t += 5 + rand() % 30;
            x->utc_s = t;
            x->mono_ms = (t - 1740970800) * 1000 + rand() % 1000;
            if (!wallet[card])
                wallet[card] = 20000;
            wallet[card] -= x->wallet_fen;
            x->wallet_after_fen = wallet[card];
            x->card_prev_seq = last_seq[card];
            last_seq[card] = x->seq;
        }
    }
    const uint8_t *p = prev;
    for (size_t i = 0; i < n; i++) {
        memcpy(r[i].prev_hash, p, 32);
        yn_ledger_record_hash(&r[i], p, r[i].hash);
        p = r[i].hash;
    }
    size_t total = 0;
    for (size_t off = 0; off < n; off += DINERS) { /* one batch per lunch */
        uint8_t *f;
        size_t len;
        if (yn_batch_encode((int64_t)off / DINERS + 1, r + off, DINERS, key32, 32, &f, &len))
            return -1;
        total += len;
        free(f);
    }
    return (double)total / (double)n;
}

int main(void)
{
    yn_log_init("bench_sync", YN_LOG_ERR, false);
    printf("BENCH sync_bytes_per_record %.2f bytes\n", lunch_bytes_per_record());

    const char *build = getenv("BUILD"), *tmp = getenv("TMPDIR");
    if (!build)
        build = "build/host";
    char dir_path[512], token[64] = "";
    snprintf(dir_path, sizeof dir_path, "%s/bsync", tmp && *tmp ? tmp : "/tmp");
    if (yn_test_district_init(&D, build, dir_path) != 0 ||
        yn_test_district_token(&D, "T-INT", token, sizeof token) != 0)
        return 1;
    snprintf(ledger_path, sizeof ledger_path, "%s/ledger.db", D.dir);
    pid_t srv = yn_test_district_start(&D, D.dkey, "none");
    char url[64], term[YN_LEDGER_ID_MAX];
    snprintf(url, sizeof url, "https://127.0.0.1:%d", D.port);
    uint8_t pub[64];
    size_t pl;
    yn_testkeys keys;                         /* YN_KEYS_BACKEND: key files, or the token */
    const char *pair = getenv("YN_KEY_PAIR"); /* 1: a key pair signs (PROTOCOL.md §10) */
    if (pair && !strcmp(pair, "1"))
        yn_testkeys_open_pair(&keys, yn_testkeys_backend(), D.dir, NULL, NULL);
    else
        yn_testkeys_open(&keys, D.dir, NULL, NULL, 0);
    if (yn_sync_enrol(url, D.ca, token, &keys.ks, term, sizeof term) != YN_OK ||
        yn_key_file_load(D.dpub, false, "district key", pub, sizeof pub, &pl) != YN_OK) {
        yn_test_district_stop(srv, SIGTERM);
        return 1;
    }
    yn_sync_opts so = {.url = url,
                       .ca_file = D.ca,
                       .terminal_id = "T-INT",
                       .keys = &keys.ks,
                       .max_batch_records = 10000,
                       .timeout_ms = 30000};
    memcpy(so.district_pub, pub, 32);
    yn_sync *s;
    yn_ledger_opts lo = {.path = ledger_path, .terminal_id = "T-INT"};
    yn_ledger *l;
    if (yn_sync_new(&so, &s) != YN_OK || yn_ledger_open(&lo, &l) != YN_OK)
        return 1;
    for (int i = 0; i < 100000; i++) { /* fill the journal (not timed) */
        yn_ledger_when w = {.utc_s = 1740970800 + i * 3, .mono_ms = (int64_t)i * 3000};
        yn_ledger_result r;
        char card[20];
        snprintf(card, sizeof card, "4403040010%04d", i % 2000);
        if (yn_ledger_topup(l, 1 + i, card, 500 + (i % 7) * 100, "op1", &w, &r) != YN_OK)
            return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    yn_sync_stats st;
    int rc = yn_sync_round(s, l, 1741000000, &st);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    long long t[YN_TOT_N];
    yn_test_district_totals(&D, "T-INT", t);
    yn_test_district_stop(srv, SIGTERM);
    yn_sync_free(s);
    yn_testkeys_close(&keys);
    yn_ledger_close(l);
    if (rc != YN_OK || st.records_acked != 100000 || t[0] != 100000) {
        fprintf(stderr, "bench_sync: upload failed: %s, %lld acked, server holds %lld\n",
                yn_strerror(rc), (long long)st.records_acked, t[0]);
        return 1;
    }
    printf("BENCH sync_100k_s %.2f s\n", secs);
    return 0;
}
