/* bench_ledger.c — decide + durable debit against a full-size ledger, and the
 * storage floor it is held to.
 *
 * Builds a ledger with 1,000,000 roster cards, 1,000,000 blacklist entries and
 * 5,000,000 journal records (YN_BENCH_SMALL=1: 1/50 of that), then times
 * yn_ledger_debit() (policy decision + one fsync'd commit) and a bare
 * single-row INSERT + commit through a second connection on the same file
 * with the same pragmas, interleaved so both see the same cache and WAL.
 *
 * The bulk load writes rows directly (one transaction, journal off, synchronous
 * off), with a real hash chain built by yn_ledger_record_hash(), so the loaded
 * ledger verifies like any other (checked at the end in the small run).
 *
 * Then retries REPLAYS of the measured taps (a card held again): each must come
 * back YN_EDUPLICATE with its original seq.
 *
 * Prints: BENCH ledger_debit_p50_ms / ledger_debit_p99_ms / ledger_insert_p50_ms
 * / ledger_floor_ratio / ledger_replay_p50_ms / ledger_mib_per_million. */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"
#include "log.h"
#include "policy.h"

#define TERMINAL    "SZFT0001"
#define DISTRICT    440304
#define STREET      440304001
#define BASE_UTC    1704080400LL /* 2024-01-01 11:40 Asia/Shanghai */
#define MEASURE_UTC 1749612600LL /* 2025-06-11 11:30, a Wednesday lunch */
#define DAY_S       86400
#define WARMUP      200 /* operations of each kind not counted at the start */
#define BLOCK       100 /* operations of one kind in a row */
#define SETTLE      3   /* operations not counted after a switch of kind */
#define REPLAYS     500 /* retries of measured taps, timed after the run */

struct sizes {
    int64_t roster, blacklist, journal, per_day, debits;
};

/* Per-card state the loader keeps to write cards rows that agree with the journal. */
struct card_acc {
    int64_t last_seq;
    int64_t last_utc_s;
    int32_t month_ym, month_meals;
    int64_t month_fen;
    int32_t day_ymd, day_meals;
};

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int64_t mono_ms(void)
{
    return (int64_t)now_ms();
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void die(const char *what, sqlite3 *db)
{
    fprintf(stderr, "bench_ledger: %s: %s\n", what, db ? sqlite3_errmsg(db) : "");
    exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "bench_ledger: %s: %s\n", sql, err);
        exit(1);
    }
}

/* Roster card i and blacklisted card i interleave: 2i and 2i + 1, so a lookup
 * lands anywhere in the one cards tree. */
static void card_no_of(int64_t i, char *buf, size_t size)
{
    snprintf(buf, size, "44030400%08" PRId64, 2 * i);
}

static void lost_card_no_of(int64_t i, char *buf, size_t size)
{
    snprintf(buf, size, "44030400%08" PRId64, 2 * i + 1);
}

static int32_t ymd_of_day(int64_t day)
{
    time_t t = (time_t)(BASE_UTC + day * DAY_S + 8 * 3600);
    struct tm tm;
    gmtime_r(&t, &tm);
    return (int32_t)((tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday);
}

static int64_t file_bytes(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *t)
{
    if (t && *t)
        sqlite3_bind_text(s, i, t, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s, i);
}

/* The same columns and NULL conventions as the ledger's own insert. */
static void insert_record(sqlite3 *db, sqlite3_stmt *s, const yn_ledger_record *r)
{
    sqlite3_bind_int64(s, 1, r->seq);
    sqlite3_bind_text(s, 2, r->terminal, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(s, 3, r->tap_id);
    sqlite3_bind_text(s, 4, r->card_no, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(s, 5, r->kind);
    bind_text_or_null(s, 6, r->category);
    bind_text_or_null(s, 7, r->period);
    sqlite3_bind_int(s, 8, r->local_ymd);
    sqlite3_bind_int64(s, 9, r->price_fen);
    sqlite3_bind_int64(s, 10, r->subsidy_fen);
    sqlite3_bind_int64(s, 11, r->wallet_fen);
    sqlite3_bind_int64(s, 12, r->cash_fen);
    for (int i = 0; i < 4; i++) {
        if (i < r->n_layers) {
            sqlite3_bind_text(s, 13 + 2 * i, r->layers[i].source, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(s, 14 + 2 * i, r->layers[i].fen);
        } else {
            sqlite3_bind_null(s, 13 + 2 * i);
            sqlite3_bind_null(s, 14 + 2 * i);
        }
    }
    sqlite3_bind_int(s, 21, r->weight_g);
    sqlite3_bind_int64(s, 22, r->price_per_100g_fen);
    bind_text_or_null(s, 23, r->reason == YN_REASON_NONE ? NULL : yn_reason_code(r->reason));
    bind_text_or_null(s, 24, r->operator_id);
    sqlite3_bind_int64(s, 25, r->utc_s);
    sqlite3_bind_int64(s, 26, r->mono_ms);
    sqlite3_bind_int64(s, 27, r->boot_no);
    sqlite3_bind_int(s, 28, r->clock_trusted);
    sqlite3_bind_null(s, 29);
    sqlite3_bind_null(s, 30);
    sqlite3_bind_int64(s, 31, r->policy_version);
    sqlite3_bind_int64(s, 32, r->wallet_after_fen);
    sqlite3_bind_int64(s, 33, r->card_prev_seq);
    sqlite3_bind_blob(s, 34, r->prev_hash, YN_LEDGER_HASH_LEN, SQLITE_TRANSIENT);
    sqlite3_bind_blob(s, 35, r->hash, YN_LEDGER_HASH_LEN, SQLITE_TRANSIENT);
    if (sqlite3_step(s) != SQLITE_DONE)
        die("journal insert", db);
    sqlite3_reset(s);
}

/* Journal (with the day index), then the cards (roster with the state the
 * journal left, blacklist). Returns the journal's bytes. */
static int64_t bulk_load(const char *path, const struct sizes *z)
{
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        die("open for load", db);
    exec(db, "PRAGMA journal_mode = DELETE");
    exec(db, "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA cache_size = -262144;"
             " PRAGMA foreign_keys = OFF; PRAGMA page_size = 4096;");
    sqlite3_stmt *s;
    char card[24];

    double t0 = now_ms();
    int64_t before = file_bytes(path);

    exec(db, "BEGIN");
    struct card_acc *acc = calloc((size_t)z->roster, sizeof *acc);
    if (!acc)
        die("out of memory", NULL);
    sqlite3_prepare_v2(db,
                       "INSERT INTO journal(seq, terminal, tap_id, card_no, kind, category,"
                       " period, local_ymd, price_fen, subsidy_fen, wallet_fen, cash_fen, src1,"
                       " fen1, src2, fen2, src3, fen3, src4, fen4, weight_g, per100g_fen, reason,"
                       " operator, utc_s, mono_ms, boot_no, clock_trusted, reverses_seq, ref,"
                       " policy_version, wallet_after_fen, card_prev_seq, prev_hash, hash) VALUES"
                       " (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
                       " ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30,"
                       " ?31, ?32, ?33, ?34, ?35)",
                       -1, &s, NULL);
    sqlite3_stmt *run;
    sqlite3_prepare_v2(db, "INSERT INTO day_runs VALUES (?1, ?2)", -1, &run, NULL);
    yn_ledger_record r;
    uint8_t prev[YN_LEDGER_HASH_LEN] = {0};
    for (int64_t seq = 1; seq <= z->journal; seq++) {
        int64_t day = (seq - 1) / z->per_day;
        int64_t ci = (int64_t)(rnd() % (uint64_t)z->roster);
        struct card_acc *a = &acc[ci];
        memset(&r, 0, sizeof r);
        r.seq = seq;
        strcpy(r.terminal, TERMINAL);
        r.tap_id = seq;
        card_no_of(ci, r.card_no, sizeof r.card_no);
        r.kind = YN_LEDGER_MEAL;
        r.local_ymd = ymd_of_day(day);
        r.utc_s = BASE_UTC + day * DAY_S + (seq % z->per_day) % 7200;
        r.mono_ms = seq % 1000; /* a long-gone boot's clock */
        r.boot_no = 1;
        r.clock_trusted = true;
        r.price_fen = 1500 + (int64_t)(seq % 5) * 100;
        bool subsidised = a->day_ymd != r.local_ymd; /* one per lunch, like the policy */
        if (subsidised) {
            strcpy(r.category, ci % 5 == 0 ? "key_group" : "age_70_99");
            strcpy(r.period, "lunch");
            r.n_layers = 1;
            strcpy(r.layers[0].source, "city");
            r.layers[0].fen = ci % 5 == 0 ? 1500 : 500;
            r.subsidy_fen = r.layers[0].fen;
        } else {
            strcpy(r.category, ci % 5 == 0 ? "key_group" : "age_70_99");
            strcpy(r.period, "lunch");
            r.reason = YN_REASON_PERIOD_USED;
        }
        r.cash_fen = r.price_fen - r.subsidy_fen;
        strcpy(r.operator_id, "op1");
        r.policy_version = 1;
        r.card_prev_seq = a->last_seq;
        memcpy(r.prev_hash, prev, sizeof prev);
        yn_ledger_record_hash(&r, prev, r.hash);
        memcpy(prev, r.hash, sizeof prev);
        insert_record(db, s, &r);
        if (seq == 1 || (seq - 1) % z->per_day == 0) {
            sqlite3_bind_int64(run, 1, seq);
            sqlite3_bind_int(run, 2, r.local_ymd);
            if (sqlite3_step(run) != SQLITE_DONE)
                die("day run insert", db);
            sqlite3_reset(run);
        }
        a->last_seq = seq;
        a->last_utc_s = r.utc_s;
        if (subsidised) {
            if (a->month_ym != r.local_ymd / 100) {
                a->month_ym = r.local_ymd / 100;
                a->month_meals = 0;
                a->month_fen = 0;
            }
            a->month_meals++;
            a->month_fen += r.subsidy_fen;
            a->day_ymd = r.local_ymd;
            a->day_meals = 1;
        }
    }
    sqlite3_finalize(s);
    sqlite3_finalize(run);
    exec(db, "COMMIT");
    int64_t after = file_bytes(path);

    fprintf(stderr, "bench_ledger: journal %" PRId64 " records in %.1f s\n", z->journal,
            (now_ms() - t0) / 1e3);

    /* the cards: roster (with the state the journal left, the last tap id
     * being the last seq) and blacklist, in key order */
    t0 = now_ms();
    exec(db, "BEGIN");
    sqlite3_prepare_v2(db,
                       "INSERT INTO cards(card_no, roster_version, birth_ymd, flags, district,"
                       " street, expiry_ymd, balance_fen, last_seq, meal_seq, meal_utc_s,"
                       " meal_mono_ms, meal_boot, month_ym, month_meals, month_subsidy_fen,"
                       " day_ymd, day_meals, period, period_meals, last_tap) VALUES (?1, 1, ?2,"
                       " ?3, ?4, ?5, ?6, 0, ?7, ?7, ?8, ?9, 1, ?10, ?11, ?12, ?13, ?14, ?15, ?16,"
                       " ?7)",
                       -1, &s, NULL);
    sqlite3_stmt *lost;
    sqlite3_prepare_v2(db, "INSERT INTO cards(card_no, bl_seq, lost) VALUES (?1, ?2, 1)", -1, &lost,
                       NULL);
    int64_t n_cards = z->roster > z->blacklist ? z->roster : z->blacklist;
    for (int64_t i = 0; i < n_cards; i++) {
        if (i < z->roster) {
            struct card_acc *a = &acc[i];
            card_no_of(i, card, sizeof card);
            sqlite3_bind_text(s, 1, card, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int(s, 2, 19300101 + (int)(i % 30) * 10000); /* ages 65..95 */
            sqlite3_bind_int(s, 3, i % 5 == 0 ? YN_FLAG_DIBAO : 0);
            sqlite3_bind_int(s, 4, DISTRICT);
            sqlite3_bind_int(s, 5, STREET);
            sqlite3_bind_int(s, 6, 20301231);
            sqlite3_bind_int64(s, 7, a->last_seq);
            sqlite3_bind_int64(s, 8, a->last_seq ? a->last_utc_s : 0);
            sqlite3_bind_int64(s, 9, a->last_seq % 1000);
            sqlite3_bind_int(s, 10, a->month_ym);
            sqlite3_bind_int(s, 11, a->month_meals);
            sqlite3_bind_int64(s, 12, a->month_fen);
            sqlite3_bind_int(s, 13, a->day_ymd);
            sqlite3_bind_int(s, 14, a->day_meals);
            sqlite3_bind_text(s, 15, a->day_ymd ? "lunch" : "", -1, SQLITE_STATIC);
            sqlite3_bind_int(s, 16, a->day_meals);
            if (sqlite3_step(s) != SQLITE_DONE)
                die("roster insert", db);
            sqlite3_reset(s);
        }
        if (i < z->blacklist) {
            lost_card_no_of(i, card, sizeof card);
            sqlite3_bind_text(lost, 1, card, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(lost, 2, i + 1);
            if (sqlite3_step(lost) != SQLITE_DONE)
                die("blacklist insert", db);
            sqlite3_reset(lost);
        }
    }
    sqlite3_finalize(s);
    sqlite3_finalize(lost);
    char v[96];
    snprintf(v, sizeof v, "INSERT INTO meta VALUES ('blacklist_seq', '%" PRId64 "')", z->blacklist);
    exec(db, v);
    exec(db, "COMMIT");
    free(acc);
    fprintf(stderr, "bench_ledger: roster %" PRId64 " + blacklist %" PRId64 " in %.1f s\n",
            z->roster, z->blacklist, (now_ms() - t0) / 1e3);
    exec(db, "PRAGMA journal_mode = WAL");
    sqlite3_close(db);
    return after - before;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, int p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (int)((int64_t)n * p / 100);
    return v[i < n ? i : n - 1];
}

int main(void)
{
    bool small = getenv("YN_BENCH_SMALL") && atoi(getenv("YN_BENCH_SMALL")) == 1;
    struct sizes z = {1000000, 1000000, 5000000, 10000, 2000};
    if (small) {
        z.roster /= 50;
        z.blacklist /= 50;
        z.journal /= 50;
        z.per_day /= 50;
    }
    const char *tmp = getenv("TMPDIR");
    const char *src = getenv("YN_SRCDIR");
    char path[1024], ppath[1024], err[256];
    snprintf(path, sizeof path, "%s/bench-ledger.db", tmp && *tmp ? tmp : "/tmp");
    snprintf(ppath, sizeof ppath, "%s/firmware/policies/shenzhen-2025.json", src ? src : ".");
    for (const char *suffix = ""; suffix;) {
        char p[1100];
        snprintf(p, sizeof p, "%s%s", path, suffix);
        unlink(p);
        suffix = !*suffix ? "-wal" : suffix[1] == 'w' ? "-shm" : NULL;
    }
    yn_log_init("bench_ledger", YN_LOG_WARN, false);

    yn_policy *policy;
    if (yn_policy_load_file(ppath, &policy, err, sizeof err) != YN_OK) {
        fprintf(stderr, "bench_ledger: %s: %s\n", ppath, err);
        return 1;
    }
    yn_ledger_opts o = {.path = path, .terminal_id = TERMINAL, .min_interval_s = 60};
    yn_ledger *l;
    if (yn_ledger_open(&o, &l) != YN_OK)
        die("yn_ledger_open", NULL);
    yn_ledger_close(l);
    int64_t journal_bytes = bulk_load(path, &z);

    if (yn_ledger_open(&o, &l) != YN_OK)
        die("yn_ledger_open after load", NULL);

    /* Debits and floor inserts alternate in blocks of BLOCK, so both meet the
     * same moments of machine noise. After each switch the first SETTLE
     * operations are not timed: a commit by the other connection empties this
     * connection's page cache (SQLite resets it when another connection has
     * written the file), which a terminal with one writer never sees. */
    sqlite3 *db;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        die("floor open", db);
    exec(db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
             " PRAGMA cache_size = -8192;");
    sqlite3_busy_timeout(db, 1000);
    exec(db, "CREATE TABLE IF NOT EXISTS bench_floor(id INTEGER PRIMARY KEY, utc_s INTEGER,"
             " note BLOB)");
    sqlite3_stmt *ins;
    sqlite3_prepare_v2(db, "INSERT INTO bench_floor(utc_s, note) VALUES (?1, ?2)", -1, &ins, NULL);
    static const uint8_t note[32] = {1, 2, 3};

    int total = WARMUP + (int)z.debits;
    double *debit_ms = calloc((size_t)total, sizeof(double));
    double *insert_ms = calloc((size_t)total, sizeof(double));
    int64_t tap_id = z.journal + 1; /* increasing, above every id of the bulk load */
    struct {
        int64_t tap_id, ci, seq;
    } *done = calloc((size_t)total, sizeof *done);
    int64_t start = (int64_t)(rnd() % (uint64_t)z.roster);
    int n_debit = 0, n_insert = 0, k = 0;
    while (n_debit < total || n_insert < total) {
        for (int b = 0; b < SETTLE + BLOCK && n_debit < total; b++, k++) {
            /* distinct cards spread over the roster (7919 is prime: a permutation) */
            int64_t ci = (start + (int64_t)k * 7919) % z.roster;
            yn_card_facts card = {.birth_ymd = 19300101 + (int)(ci % 30) * 10000,
                                  .flags = ci % 5 == 0 ? YN_FLAG_DIBAO : 0,
                                  .district = DISTRICT,
                                  .street = STREET,
                                  .expiry_ymd = 20301231};
            card_no_of(ci, card.card_no, sizeof card.card_no);
            yn_meal meal = {.price_fen = 1500 + (k % 5) * 100};
            yn_canteen canteen = {.district = DISTRICT, .street = STREET};
            yn_ledger_tap tap = {.tap_id = tap_id,
                                 .card = &card,
                                 .meal = &meal,
                                 .canteen = &canteen,
                                 .operator_id = "op1",
                                 .when = {.utc_s = MEASURE_UTC + k * 2,
                                          .mono_ms = mono_ms(),
                                          .clock_trusted = true}};
            tap_id++;
            yn_ledger_result r;
            double t0 = now_ms();
            int st = yn_ledger_debit(l, policy, &tap, &r);
            double t1 = now_ms();
            if (st != YN_OK) {
                fprintf(stderr, "bench_ledger: debit %d: %s (reason %s)\n", k, yn_strerror(st),
                        yn_reason_code(r.decision.reason));
                return 1;
            }
            done[n_debit].tap_id = tap.tap_id;
            done[n_debit].ci = ci;
            done[n_debit].seq = r.seq;
            if (b >= SETTLE)
                debit_ms[n_debit++] = t1 - t0;
        }
        for (int b = 0; b < SETTLE + BLOCK && n_insert < total; b++) {
            sqlite3_bind_int64(ins, 1, MEASURE_UTC + b);
            sqlite3_bind_blob(ins, 2, note, sizeof note, SQLITE_STATIC);
            double t0 = now_ms();
            if (sqlite3_step(ins) != SQLITE_DONE)
                die("floor insert", db);
            double t1 = now_ms();
            sqlite3_reset(ins);
            if (b >= SETTLE)
                insert_ms[n_insert++] = t1 - t0;
        }
    }
    sqlite3_finalize(ins);
    sqlite3_close(db);

    /* replays of measured taps, spread over the run: the original result, no charge */
    double *replay_ms = calloc(REPLAYS, sizeof(double));
    for (int i = 0; i < REPLAYS; i++) {
        int j = (int)((int64_t)i * (n_debit - 1) / (REPLAYS - 1));
        yn_card_facts card = {.birth_ymd = 19300101 + (int)(done[j].ci % 30) * 10000,
                              .flags = done[j].ci % 5 == 0 ? YN_FLAG_DIBAO : 0,
                              .district = DISTRICT,
                              .street = STREET,
                              .expiry_ymd = 20301231};
        card_no_of(done[j].ci, card.card_no, sizeof card.card_no);
        yn_meal meal = {.price_fen = 1500};
        yn_canteen canteen = {.district = DISTRICT, .street = STREET};
        yn_ledger_tap tap = {
            .tap_id = done[j].tap_id,
            .card = &card,
            .meal = &meal,
            .canteen = &canteen,
            .operator_id = "op1",
            .when = {.utc_s = MEASURE_UTC + k * 2, .mono_ms = mono_ms(), .clock_trusted = true}};
        yn_ledger_result r;
        double t0 = now_ms();
        int st = yn_ledger_debit(l, policy, &tap, &r);
        replay_ms[i] = now_ms() - t0;
        if (st != YN_EDUPLICATE || r.seq != done[j].seq) {
            fprintf(stderr,
                    "bench_ledger: replay of tap %" PRId64 ": %s, seq %" PRId64
                    " (recorded as %" PRId64 ")\n",
                    done[j].tap_id, yn_strerror(st), r.seq, done[j].seq);
            return 1;
        }
    }

    double *d = debit_ms + WARMUP, *f = insert_ms + WARMUP;
    int n = (int)z.debits;
    double d50 = pct(d, n, 50), d99 = pct(d, n, 99), f50 = pct(f, n, 50);
    int rc = 0;
    if (small) { /* the bulk-loaded prefix and the measured debits form one valid chain */
        yn_ledger_verify_report rep;
        if (yn_ledger_verify(l, &rep) != YN_OK) {
            fprintf(stderr, "bench_ledger: verify: seq %" PRId64 " card %s: %s\n",
                    rep.first_bad_seq, rep.bad_card, rep.what);
            rc = 1;
        }
    }
    yn_ledger_close(l);
    yn_policy_free(policy);
    printf("BENCH ledger_debit_p50_ms %.3f ms\n", d50);
    printf("BENCH ledger_debit_p99_ms %.3f ms\n", d99);
    printf("BENCH ledger_insert_p50_ms %.3f ms\n", f50);
    printf("BENCH ledger_floor_ratio %.2f ratio\n", d50 / f50);
    printf("BENCH ledger_replay_p50_ms %.3f ms\n", pct(replay_ms, REPLAYS, 50));
    printf("BENCH ledger_mib_per_million %.1f MiB\n",
           (double)journal_bytes / (1024.0 * 1024.0) / ((double)z.journal / 1e6));
    free(debit_ms);
    free(insert_ms);
    free(replay_ms);
    free(done);
    return rc;
}
