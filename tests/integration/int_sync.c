/* int_sync.c — sync end to end on loopback against a real yinian-district
 * process over TLS: enrolment, normal sync, replies lost to 5xx / reset /
 * truncation / corruption / slowness, the server killed and restarted, a
 * forged update. After recovery the server holds every record exactly once
 * and its totals agree with the terminal's to the fen. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "district.h"
#include "keystore.h"
#include "testkeys.h"
#include "ledger.h"
#include "log.h"

static yn_test_district D;
static char ledger_path[700];

static int64_t n_records;
static int64_t sum_wallet, sum_cash, sum_alloc;

static void add_records(yn_ledger *l, int n)
{
    for (int i = 0; i < n; i++) {
        yn_ledger_when w = {.utc_s = 1740970800 + n_records * 11, .mono_ms = n_records * 11000};
        yn_ledger_result r;
        char card[20];
        snprintf(card, sizeof card, "4403040010%04d", (int)(n_records % 300));
        int64_t amount = 500 + (n_records % 7) * 100;
        int rc = yn_ledger_topup(l, 1000 + n_records, card, amount, "staff01", &w, &r);
        CHECK(rc == YN_OK, "topup: %s", yn_strerror(rc));
        n_records++;
        sum_wallet -= amount;
        sum_cash += amount;
    }
}

/* Rounds with backoff until everything is acknowledged (bounded). */
static int sync_until_done(yn_sync *s, yn_ledger *l, int max_rounds)
{
    for (int round = 0; round < max_rounds; round++) {
        yn_sync_stats st;
        int rc = yn_sync_round(s, l, 1740990000, &st);
        int64_t count, age;
        if (rc == YN_OK && yn_ledger_unsent(l, 1740990000, &count, &age) == YN_OK && count == 0)
            return YN_OK;
        usleep((useconds_t)yn_sync_backoff_ms(round < 3 ? round : 3, 50, 400) * 1000);
    }
    return YN_ETIMEDOUT;
}

static void check_agree(const char *when)
{
    long long t[YN_TOT_N];
    yn_test_district_totals(&D, "T-INT", t);
    CHECK(t[YN_TOT_RECORDS] == n_records, "%s: server holds %lld records, terminal made %lld", when,
          t[YN_TOT_RECORDS], (long long)n_records);
    CHECK(t[YN_TOT_WALLET] == sum_wallet && t[YN_TOT_CASH] == sum_cash,
          "%s: totals differ: wallet %lld/%lld cash %lld/%lld", when, t[YN_TOT_WALLET],
          (long long)sum_wallet, t[YN_TOT_CASH], (long long)sum_cash);
    CHECK(t[YN_TOT_ALLOCATION] == sum_alloc && t[YN_TOT_MEAL_SUBSIDY] == 0,
          "%s: allocations %lld/%lld in their own column, meal subsidy %lld", when,
          t[YN_TOT_ALLOCATION], (long long)sum_alloc, t[YN_TOT_MEAL_SUBSIDY]);
}

int main(void)
{
    yn_log_init("int_sync", YN_LOG_WARN, false);
    const char *build = getenv("BUILD"), *tmp = getenv("TMPDIR");
    if (!build)
        build = "build/host";
    char dir_path[512], token[64] = "";
    snprintf(dir_path, sizeof dir_path, "%s/sync", tmp && *tmp ? tmp : "/tmp");
    if (yn_test_district_init(&D, build, dir_path) != 0 ||
        yn_test_district_token(&D, "T-INT", token, sizeof token) != 0)
        return 1;
    snprintf(ledger_path, sizeof ledger_path, "%s/ledger.db", D.dir);

    pid_t srv = yn_test_district_start(&D, D.dkey, "none");
    char url[64], term[YN_LEDGER_ID_MAX], tkey[700];
    snprintf(url, sizeof url, "https://127.0.0.1:%d", D.port);
    /* the terminal's keystore (YN_KEYS_BACKEND): enrolment puts the key there */
    yn_testkeys keys;
    yn_testkeys_open(&keys, D.dir, NULL, NULL, 0);
    int rc = yn_sync_enrol(url, D.ca, token, &keys.ks, term, sizeof term);
    CHECK(rc == YN_OK && strcmp(term, "T-INT") == 0, "enrol: %s", yn_strerror(rc));
    rc = yn_sync_enrol(url, D.ca, token, &keys.ks, term, sizeof term);
    CHECK(rc != YN_OK, "a used token must be refused");
    yn_keystore_key_info info;
    CHECK(yn_keystore_inspect(&keys.ks, YN_KEYID_TERMINAL, &info) == YN_OK && info.works &&
              info.unreadable,
          "terminal key stored, usable, unreadable by others: %s", info.detail);
    snprintf(tkey, sizeof tkey, "%s/terminal.key", D.dir);
    if (yn_testkeys_token()) /* a token: the key never touches a file */
        CHECK(access(tkey, F_OK) != 0, "no terminal key file with the token");
    else
        CHECK(access(tkey, F_OK) == 0, "the terminal key file");

    uint8_t pub[64];
    size_t pl;
    CHECK(yn_key_file_load(D.dpub, false, "district key", pub, sizeof pub, &pl) == YN_OK &&
              pl == 32,
          "district public key");
    yn_sync_opts so = {.url = url,
                       .ca_file = D.ca,
                       .terminal_id = "T-INT",
                       .keys = &keys.ks,
                       .max_batch_records = 40,
                       .timeout_ms = 1500};
    memcpy(so.district_pub, pub, 32);
    yn_sync *s;
    CHECK(yn_sync_new(&so, &s) == YN_OK, "sync new");
    yn_sync_opts plain = so;
    plain.url = "http://127.0.0.1:1";
    yn_sync *bad;
    CHECK(yn_sync_new(&plain, &bad) == YN_ECONFIG, "http:// must be refused");

    yn_ledger_opts lo = {.path = ledger_path, .terminal_id = "T-INT"};
    yn_ledger *l;
    if (yn_ledger_open(&lo, &l) != YN_OK)
        return 1;

    /* 1. normal sync, with district data coming down */
    yn_test_sh(
        "printf 'card_no,birth_ymd,flags,district,street,expiry_ymd\\n44030400100001,19400101,1,"
        "440304,440304001,20301231\\n' > %s/cards.csv && %s --db '%s' import-cards %s/cards.csv"
        " >/dev/null && %s --db '%s' lost 44030400100002 && %s --db '%s' allocate A-1 "
        "44030400100001"
        " district 3000",
        D.dir, D.bin, D.db, D.dir, D.bin, D.db, D.bin, D.db);
    add_records(l, 100);
    rc = sync_until_done(s, l, 5);
    CHECK(rc == YN_OK, "normal sync: %s", yn_strerror(rc));
    n_records++; /* the allocation A-1 became a journal record, uploaded next round */
    sum_wallet -= 3000;
    sum_alloc += 3000;
    rc = sync_until_done(s, l, 5);
    CHECK(rc == YN_OK, "second round: %s", yn_strerror(rc));
    int64_t bl;
    CHECK(yn_ledger_blacklist_seq(l, &bl) == YN_OK && bl == 1, "blacklist delta applied");
    check_agree("normal sync");

    /* 2. every kind of lost reply, then recovery */
    yn_test_district_stop(srv, SIGTERM);
    srv = yn_test_district_start(&D, D.dkey, "500,reset,truncate,corrupt,slow,500,reset");
    add_records(l, 200);
    rc = sync_until_done(s, l, 40);
    CHECK(rc == YN_OK, "sync through faults: %s", yn_strerror(rc));
    check_agree("after faults");

    /* 3. server killed (SIGKILL) and restarted between and during uploads */
    for (int k = 0; k < 3; k++) {
        add_records(l, 120);
        yn_sync_stats st;
        pid_t child = fork();
        if (child == 0) { /* kill the server while the parent uploads */
            usleep(20000 + (useconds_t)k * 15000);
            kill(srv, SIGKILL);
            _exit(0);
        }
        int killed_rc = yn_sync_round(s, l, 1740990000, &st);
        (void)killed_rc; /* may fail: the server dies under it */
        waitpid(child, NULL, 0);
        waitpid(srv, NULL, 0);
        srv = yn_test_district_start(&D, D.dkey, "none");
        rc = sync_until_done(s, l, 20);
        CHECK(rc == YN_OK, "after kill %d: %s", k, yn_strerror(rc));
    }
    check_agree("after kills");

    /* 4. a forged update (signed by another key) changes nothing */
    char fkey[700], fpub[700];
    snprintf(fkey, sizeof fkey, "%s/forged.key", D.dir);
    snprintf(fpub, sizeof fpub, "%s/forged.pub", D.dir);
    yn_test_sh("%s keygen %s %s", D.bin, fkey, fpub);
    yn_test_district_stop(srv, SIGTERM);
    srv = yn_test_district_start(&D, fkey, "none");
    yn_test_sh("%s --db '%s' lost 44030400100003", D.bin, D.db);
    bool more;
    rc = yn_sync_update_one(s, l, &more);
    CHECK(rc == YN_EAUTH, "forged update must be refused: %s", yn_strerror(rc));
    CHECK(yn_ledger_blacklist_seq(l, &bl) == YN_OK && bl == 1, "forged update changed nothing");
    yn_test_district_stop(srv, SIGTERM);
    srv = yn_test_district_start(&D, D.dkey, "none");
    rc = yn_sync_update_one(s, l, &more);
    CHECK(rc == YN_OK, "genuine update after the forged one: %s", yn_strerror(rc));
    CHECK(yn_ledger_blacklist_seq(l, &bl) == YN_OK && bl == 2, "blacklist now at 2");

    /* 5. hostile batch: wrong key gets 401 and changes nothing */
    uint8_t wrong[32] = {7};
    char wdir[600];
    snprintf(wdir, sizeof wdir, "%s/wrong", D.dir);
    mkdir(wdir, 0700);
    yn_testkeys wrong_keys;
    yn_testkeys_open_as(&wrong_keys, "file", wdir, NULL, wrong, sizeof wrong);
    yn_sync_opts wo = so;
    wo.keys = &wrong_keys.ks;
    yn_sync *ws;
    CHECK(yn_sync_new(&wo, &ws) == YN_OK, "sync new");
    add_records(l, 5);
    int64_t n;
    rc = yn_sync_upload_one(ws, l, 1740990000, &n);
    CHECK(rc == YN_EAUTH, "bad HMAC must get 401: %s", yn_strerror(rc));
    yn_sync_free(ws);
    yn_testkeys_close(&wrong_keys);
    rc = sync_until_done(s, l, 5);
    CHECK(rc == YN_OK, "final sync: %s", yn_strerror(rc));
    check_agree("final");

    yn_test_district_stop(srv, SIGTERM);
    yn_sync_free(s);
    yn_testkeys_close(&keys);
    yn_ledger_close(l);
    if (yn_failures)
        fprintf(stderr, "int_sync: %d failures\n", yn_failures);
    else
        printf("int_sync: ok (%lld records, exactly once, totals agree; keys: %s)\n",
               (long long)n_records, yn_testkeys_backend());
    return yn_failures ? 1 : 0;
}
