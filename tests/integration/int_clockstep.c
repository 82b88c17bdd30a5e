/* int_clockstep.c — the sync thread keeps its schedule when the wall clock
 * steps a year back and then a year forward, against a real yinian-district
 * over TLS on loopback.
 *
 * A test cannot step the machine's clock, so this program steps its own view
 * of it: it defines clock_gettime, which every call of this program (the sync
 * thread, the ledger) and of its libraries reaches first, and adds step_s to
 * CLOCK_REALTIME. The kernel's clock does not move — exactly how a deadline
 * taken from the wall clock before a step looks after it. A thread that
 * waits on CLOCK_REALTIME then sleeps a year (step forward) or stops waiting
 * at all and spins (step back); on CLOCK_MONOTONIC it never notices.
 *
 * Interval 1 s. After each step, three times: records are added and must be
 * acknowledged within 10 s, and no two rounds may come closer than the
 * interval. And the sync marks (last sync, acknowledgements) carry the
 * terminal's time (yn_sync_opts.now_utc_s: the daemon's clock estimate), not
 * the stepped wall clock, so the offline cap compares like with like. About
 * 8 s. */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "client.h"
#include "district.h"
#include "keystore.h"
#include "testkeys.h"
#include "ledger.h"
#include "log.h"

#define YEAR_S     (365LL * 86400)
#define ACK_MS     10000 /* a batch must be acknowledged within this after it is written */
#define MIN_GAP_MS 950   /* rounds come at least an interval (1 s) apart */

static _Atomic int64_t step_s;

/* The terminal's clock: it saw the steps for what they are (hal/clock/clock.h) and
 * keeps the time the steps did not change. */
static int64_t terminal_now_s(void *arg)
{
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec - atomic_load(&step_s);
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
    static int (*real)(clockid_t, struct timespec *);
    if (!real) /* the libc symbol of this build's 64-bit time_t */
        real = (int (*)(clockid_t, struct timespec *))dlsym(
            RTLD_NEXT, __TIMESIZE == 32 ? "__clock_gettime64" : "clock_gettime");
    int rc = real(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        ts->tv_sec += (time_t)atomic_load(&step_s);
    return rc;
}

/* Each round ends with one verified update: its time on the monotonic clock. */
static pthread_mutex_t rounds_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_round_ms, min_gap_ms = INT64_MAX;
static int rounds;

static void on_round(void *arg, int64_t server_utc_ms)
{
    (void)arg;
    (void)server_utc_ms;
    int64_t now = yn_test_now_ms();
    pthread_mutex_lock(&rounds_mu);
    if (rounds++ > 0 && now - last_round_ms < min_gap_ms)
        min_gap_ms = now - last_round_ms;
    last_round_ms = now;
    pthread_mutex_unlock(&rounds_mu);
}

static void rounds_reset(void)
{
    pthread_mutex_lock(&rounds_mu);
    rounds = 0;
    min_gap_ms = INT64_MAX;
    pthread_mutex_unlock(&rounds_mu);
}

static int64_t n_records;

static void add_records(yn_ledger *l, int n)
{
    for (int i = 0; i < n; i++, n_records++) {
        yn_ledger_when w = {.utc_s = 1740970800 + n_records, .mono_ms = n_records * 1000};
        yn_ledger_result r;
        CHECK_RC(yn_ledger_topup(l, 1000 + n_records, "44030400100001", 500, "staff01", &w, &r),
                 YN_OK);
    }
}

/* Milliseconds until the sync thread acknowledged everything; -1 after ACK_MS. */
static int64_t ms_until_acked(yn_ledger *l)
{
    int64_t t0 = yn_test_now_ms();
    for (;;) {
        int64_t count = -1, age;
        if (yn_ledger_unsent(l, 1740990000, &count, &age) == YN_OK && count == 0)
            return yn_test_now_ms() - t0;
        if (yn_test_now_ms() - t0 > ACK_MS)
            return -1;
        yn_test_sleep_ms(50);
    }
}

static void phase(yn_ledger *l, const char *name, int64_t step)
{
    atomic_store(&step_s, step);
    rounds_reset();
    for (int k = 0; k < 3; k++) {
        add_records(l, 3);
        int64_t ms = ms_until_acked(l);
        CHECK(ms >= 0, "%s, batch %d: not acknowledged within %d ms: the sync thread stalled", name,
              k, ACK_MS);
        if (ms < 0)
            return;
    }
    pthread_mutex_lock(&rounds_mu);
    CHECK(min_gap_ms >= MIN_GAP_MS,
          "%s: two rounds %lld ms apart (interval 1000 ms): the sync thread does not wait", name,
          (long long)min_gap_ms);
    printf("int_clockstep: %s: %d rounds, closest %lld ms apart\n", name, rounds,
           (long long)min_gap_ms);
    pthread_mutex_unlock(&rounds_mu);
}

int main(void)
{
    yn_log_init("int_clockstep", YN_LOG_WARN, false);
    const char *build = getenv("BUILD"), *tmp = getenv("TMPDIR");
    static yn_test_district d;
    char dir[512], token[64] = "", tkey[700], ledger_path[700], term[YN_LEDGER_ID_MAX];
    snprintf(dir, sizeof dir, "%s/clockstep", tmp && *tmp ? tmp : "/tmp");
    if (yn_test_district_init(&d, build ? build : "build/host", dir) != 0 ||
        yn_test_district_token(&d, "T-CLK", token, sizeof token) != 0)
        return 1;
    pid_t srv = yn_test_district_start(&d, d.dkey, "none");
    snprintf(tkey, sizeof tkey, "%s/terminal.key", d.dir);
    snprintf(ledger_path, sizeof ledger_path, "%s/ledger.db", d.dir);
    yn_testkeys keys;
    yn_testkeys_open(&keys, d.dir, NULL, NULL, 0);
    CHECK_RC(yn_sync_enrol(d.url, d.ca, token, &keys.ks, term, sizeof term), YN_OK);
    uint8_t pub[64];
    size_t pub_len = 0;
    CHECK_RC(yn_key_file_load(d.dpub, false, "district key", pub, sizeof pub, &pub_len), YN_OK);
    if (yn_failures) {
        yn_test_district_stop(srv, SIGTERM);
        return 1;
    }
    yn_sync_opts so = {.url = d.url,
                       .ca_file = d.ca,
                       .terminal_id = "T-CLK",
                       .keys = &keys.ks,
                       .timeout_ms = 3000,
                       .on_server_time = on_round,
                       .now_utc_s = terminal_now_s};
    memcpy(so.district_pub, pub, sizeof so.district_pub);
    yn_ledger_opts lo = {.path = ledger_path, .terminal_id = "T-CLK"};
    yn_ledger *l;
    CHECK_RC(yn_ledger_open(&lo, &l), YN_OK);
    yn_sync_thread *t;
    CHECK_RC(yn_sync_thread_start(&so, &lo, 1, &t), YN_OK);

    phase(l, "wall clock as it is", 0);
    phase(l, "wall clock a year back", -YEAR_S);
    phase(l, "wall clock a year ahead", YEAR_S);
    char v[32];
    int64_t synced = 0;
    if (yn_ledger_meta_get(l, "last_sync_utc_s", v, sizeof v) == YN_OK)
        synced = strtoll(v, NULL, 10);
    int64_t off = synced - terminal_now_s(NULL);
    CHECK(off > -30 && off <= 1,
          "the last sync is marked %lld s from the terminal's time (a stepped wall clock's)",
          (long long)off);

    yn_sync_thread_stop(t);
    yn_testkeys_close(&keys);
    yn_ledger_close(l);
    yn_test_district_stop(srv, SIGTERM);
    if (yn_failures)
        fprintf(stderr, "int_clockstep: %d of %d checks failed\n", yn_failures, yn_checks);
    else
        printf("int_clockstep: ok (%lld records synced on schedule through both steps)\n",
               (long long)n_records);
    return yn_failures ? 1 : 0;
}
