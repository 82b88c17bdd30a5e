/* int_kill.c — the district server killed (SIGKILL) at random moments while
 * 8 terminals upload batch after batch and an admin load writes to the same
 * database (cards imported, cards lost and found, allocations published,
 * which the terminals then journal and upload). After each kill the server
 * is started again; the terminals' retries must then succeed: at the end the
 * district holds every record of every terminal exactly once — the rows'
 * count and sums equal the ledgers', and the frames it gives back
 * (/v1/records) hold exactly the ledgers' records, hash for hash — no reply
 * was a 500, and `check` finds nothing wrong. 25 kills (about 30 s);
 * YN_LONG=1: 200. */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "batch.h"
#include "check.h"
#include "client.h"
#include "district.h"
#include "keystore.h"
#include "ledger.h"
#include "log.h"

enum { TERMINALS = 8 };

static yn_test_district D;
static uint8_t pub[32];
static atomic_bool stop_making, stop_all;

struct terminal {
    char id[YN_LEDGER_ID_MAX], token[64], ledger_path[800];
    yn_test_key k; /* its key file and keystore */
    int64_t made;
    int rounds, failed_rounds;
    pthread_t thread;
    atomic_bool done; /* drained: everything acknowledged */
};
static struct terminal terms[TERMINALS];

static void *terminal_main(void *arg)
{
    struct terminal *t = arg;
    char key_path[800];
    snprintf(key_path, sizeof key_path, "%s/%s.key", D.dir, t->id);
    snprintf(t->ledger_path, sizeof t->ledger_path, "%s/%s.db", D.dir, t->id);
    yn_ledger_opts lo = {.path = t->ledger_path, .terminal_id = t->id};
    yn_ledger *l;
    yn_sync *s = NULL;
    int rc = yn_test_district_enrol(&D, t->token, key_path, &t->k);
    if (rc != YN_OK || yn_ledger_open(&lo, &l) != YN_OK)
        return NULL;
    yn_sync_opts so = {.url = D.url,
                       .ca_file = D.ca,
                       .terminal_id = t->id,
                       .keys = &t->k.ks,
                       .max_batch_records = 30,
                       .timeout_ms = 3000};
    memcpy(so.district_pub, pub, 32);
    if (yn_sync_new(&so, &s) != YN_OK)
        return NULL;
    int failures = 0;
    while (!atomic_load(&stop_all)) {
        if (!atomic_load(&stop_making))
            for (int i = 0; i < 7; i++) {
                yn_ledger_when w = {.utc_s = 1773115200 + t->made, .mono_ms = t->made * 1000};
                yn_ledger_result res;
                char card[20];
                snprintf(card, sizeof card, "440304003%05d", (int)(t->made % 40));
                t->made++;
                CHECK_RC(yn_ledger_topup(l, t->made, card, 100 + t->made % 900, "1001", &w, &res),
                         YN_OK);
            }
        yn_sync_stats st;
        rc = yn_sync_round(s, l, 1773200000, &st);
        t->rounds++;
        if (rc != YN_OK) {
            t->failed_rounds++;
            usleep((useconds_t)yn_sync_backoff_ms(failures < 4 ? failures : 4, 20, 300) * 1000);
            failures++;
        } else {
            failures = 0;
            int64_t unsent = -1, age;
            if (atomic_load(&stop_making) &&
                yn_ledger_unsent(l, 1773200000, &unsent, &age) == YN_OK && unsent == 0)
                break;
        }
    }
    yn_sync_free(s);
    yn_ledger_close(l);
    atomic_store(&t->done, true);
    return NULL;
}

/* The admin load: short writes to the same database, in a loop. */
static pid_t admin_load(void)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    char cmd[4096], csv[800];
    snprintf(csv, sizeof csv, "%s/load.csv", D.dir);
    if (!freopen("/dev/null", "w", stdout))
        _exit(1);
    for (unsigned n = 0;; n++) {
        FILE *f = fopen(csv, "w");
        for (int i = 0; f && i < 200; i++)
            fprintf(f, "440304003%05d,19%02u0101,1,440304,440304001,20301231\n", i, 30 + n % 60);
        if (f)
            fclose(f);
        snprintf(cmd, sizeof cmd,
                 "B='%s'; DB='%s'; $B --db \"$DB\" import-cards '%s' && $B --db \"$DB\" %s"
                 " 440304003%05u && $B --db \"$DB\" allocate A-%u-%d 440304003%05u district %u",
                 D.bin, D.db, csv, n % 2 ? "found" : "lost", n % 40, n, (int)getpid(), n % 40,
                 100 + n % 500);
        if (system(cmd) != 0)
            usleep(50000); /* refused while the database was busy: go on */
    }
}

/* Every frame the district gives back, in order: their records must be the
 * ledger's, hash for hash. The number of records checked, -1 on a mismatch. */
static int64_t restore_matches(struct terminal *t)
{
    yn_ledger_opts lo = {.path = t->ledger_path, .terminal_id = t->id, .read_only = true};
    yn_ledger *l;
    if (yn_ledger_open(&lo, &l) != YN_OK)
        return -1;
    int64_t next = 1, after = 0;
    bool ok = true, more = true;
    while (ok && more) {
        char body[128];
        snprintf(body, sizeof body, "{\"terminal\":\"%s\",\"after_seq\":%lld}", t->id,
                 (long long)after);
        yn_test_reply r = yn_test_district_post(&D, "POST", "/v1/records", body, strlen(body),
                                                t->k.key, t->k.key_len);
        ok = r.status == 200 && r.len > 0;
        more = r.more == 1;
        for (size_t off = 0; ok && off < r.len;) {
            yn_batch_header h;
            yn_ledger_record *recs = NULL;
            /* a frame's length: from its header's body_len */
            size_t flen =
                YN_BATCH_HEADER_LEN + YN_BATCH_MAC_LEN +
                ((size_t)(uint8_t)r.body[off + 56] << 24 | (size_t)(uint8_t)r.body[off + 57] << 16 |
                 (size_t)(uint8_t)r.body[off + 58] << 8 | (uint8_t)r.body[off + 59]);
            ok = off + flen <= r.len &&
                 yn_batch_decode((const uint8_t *)r.body + off, flen, t->k.key, t->k.key_len, &h,
                                 &recs, NULL) == YN_OK;
            for (uint32_t i = 0; ok && i < h.count; i++) {
                yn_ledger_record mine;
                if (recs[i].seq < next)
                    continue; /* overlap of two frames: seen already */
                ok = recs[i].seq == next && yn_ledger_record_get(l, recs[i].seq, &mine) == YN_OK &&
                     memcmp(mine.hash, recs[i].hash, 32) == 0;
                next++;
            }
            after = ok ? h.last_seq : after;
            free(recs);
            off += flen;
        }
        yn_test_reply_free(&r);
    }
    int64_t head = 0;
    uint8_t hh[32];
    ok = ok && yn_ledger_head(l, &head, hh) == YN_OK && next - 1 == head;
    yn_ledger_close(l);
    return ok ? next - 1 : -1;
}

/* The ledger's own sums: records, wallet, cash. */
static void ledger_sums(struct terminal *t, long long out[3])
{
    yn_ledger_opts lo = {.path = t->ledger_path, .terminal_id = t->id, .read_only = true};
    yn_ledger *l;
    memset(out, 0, 3 * sizeof out[0]);
    if (yn_ledger_open(&lo, &l) != YN_OK)
        return;
    int64_t head = 0;
    uint8_t hh[32];
    if (yn_ledger_head(l, &head, hh) == YN_OK)
        for (int64_t seq = 1; seq <= head; seq++) {
            yn_ledger_record r;
            if (yn_ledger_record_get(l, seq, &r) != YN_OK)
                break;
            out[0]++;
            out[1] += r.wallet_fen;
            out[2] += r.cash_fen;
        }
    yn_ledger_close(l);
}

int main(void)
{
    const char *build = getenv("BUILD"), *tmp = getenv("TMPDIR");
    if (!build || !tmp)
        return 2;
    yn_log_init("int_kill", YN_LOG_ERR, false);
    yn_log_quiet(true); /* the terminals' connection failures are the point */
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int kills = getenv("YN_LONG") && !strcmp(getenv("YN_LONG"), "1") ? 200 : 25;
    char dir_path[512];
    snprintf(dir_path, sizeof dir_path, "%s/kill", tmp);
    if (yn_test_district_init(&D, build, dir_path) != 0)
        return 1;
    uint8_t pubbuf[64];
    size_t pl;
    if (yn_key_file_load(D.dpub, false, "district key", pubbuf, sizeof pubbuf, &pl) != YN_OK)
        return 1;
    memcpy(pub, pubbuf, 32);
    for (int i = 0; i < TERMINALS; i++) {
        snprintf(terms[i].id, sizeof terms[i].id, "T-K%d", i);
        if (yn_test_district_token(&D, terms[i].id, terms[i].token, sizeof terms[i].token) != 0)
            return 1;
    }
    srand((unsigned)getpid());
    pid_t srv = yn_test_district_start(&D, NULL, NULL);
    pid_t load = admin_load();
    for (int i = 0; i < TERMINALS; i++)
        pthread_create(&terms[i].thread, NULL, terminal_main, &terms[i]);
    int64_t t0 = yn_test_now_ms();
    for (int k = 0; k < kills; k++) {
        usleep((useconds_t)(150000 + rand() % 400000)); /* uploads in flight */
        kill(srv, SIGKILL);
        waitpid(srv, NULL, 0);
        srv = yn_test_district_start(&D, NULL, NULL);
    }
    printf("int_kill: %d kills in %lld ms\n", kills, (long long)(yn_test_now_ms() - t0));
    atomic_store(&stop_making, true);
    kill(load, SIGKILL);
    waitpid(load, NULL, 0);
    /* the terminals drain what they hold; bounded */
    for (int w = 0; w < 600; w++) {
        bool all_done = true;
        for (int i = 0; i < TERMINALS; i++)
            all_done = all_done && atomic_load(&terms[i].done);
        if (all_done)
            break;
        if (w == 599)
            atomic_store(&stop_all, true);
        usleep(100000);
    }
    atomic_store(&stop_all, true);
    printf("int_kill: drained in %lld ms\n", (long long)(yn_test_now_ms() - t0));
    int rounds = 0, failed = 0;
    for (int i = 0; i < TERMINALS; i++) {
        pthread_join(terms[i].thread, NULL);
        rounds += terms[i].rounds;
        failed += terms[i].failed_rounds;
    }
    for (int i = 0; i < TERMINALS; i++) {
        long long mine[3], tot[YN_TOT_N];
        ledger_sums(&terms[i], mine);
        yn_test_district_totals(&D, terms[i].id, tot);
        CHECK(tot[YN_TOT_RECORDS] == mine[0] && tot[YN_TOT_WALLET] == mine[1] &&
                  tot[YN_TOT_CASH] == mine[2],
              "%s: district %lld records wallet %lld cash %lld, ledger %lld / %lld / %lld",
              terms[i].id, tot[YN_TOT_RECORDS], tot[YN_TOT_WALLET], tot[YN_TOT_CASH], mine[0],
              mine[1], mine[2]);
        int64_t n = restore_matches(&terms[i]);
        CHECK(n == mine[0] && n > 0, "%s: frames given back hold the ledger's %lld records: %lld",
              terms[i].id, mine[0], (long long)n);
    }
    char log[800];
    snprintf(log, sizeof log, "%s/server.log", D.dir);
    int rc = yn_test_exit(yn_test_sh("grep -q ': 500 \\| 500 storage' '%s'", log));
    CHECK(rc == 1, "no reply was a 500 (grep: %d)", rc);
    rc = yn_test_exit(yn_test_sh("%s --db '%s' check >/dev/null", D.bin, D.db));
    CHECK(rc == 0, "check finds nothing wrong: exit %d", rc);
    yn_test_district_stop(srv, SIGTERM);
    printf("int_kill: %d kills; %d sync rounds, %d failed and retried; every record once\n", kills,
           rounds, failed);
    printf("int_kill: %d checks, %d failed\n", yn_checks, yn_failures);
    curl_global_cleanup();
    return yn_failures ? 1 : 0;
}
