/* test_ledger.c — the ledger on real SQLite files: every operation and every
 * refusal, storage failures provoked for real (page quota, read-only, a lock
 * held by another connection), tampering found by verify, and the backup
 * taken before a schema upgrade. Values are asserted, not only statuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
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

#define WED_NOON_UTC  1749614400 /* 2025-06-11 12:00 Asia/Shanghai, a Wednesday lunch */
#define WED_EVE_UTC   1749636000 /* 2025-06-11 18:00: no period open */
#define DAY           20250611
#define HOME_DISTRICT 440304
#define HOME_STREET   440304001

static yn_policy *policy; /* shenzhen-2025, loaded once */

struct fx {
    char dir[512];
    char path[600];
    yn_ledger *l;
    int64_t next_tap;
    int64_t mono_ms;
};

/* ---- fixtures ------------------------------------------------------------- */

static int group_setup(void **state)
{
    (void)state;
    const char *src = getenv("YN_SRCDIR");
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/firmware/policies/shenzhen-2025.json", src ? src : ".");
    if (yn_policy_load_file(path, &policy, err, sizeof err) != YN_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, err);
        return -1;
    }
    yn_log_quiet(true); /* refusals and provoked failures log on purpose */
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    yn_policy_free(policy);
    return 0;
}

static yn_ledger_opts opts_for(const struct fx *f)
{
    yn_ledger_opts o = {
        .path = f->path, .terminal_id = "SZFT0001", .boot_id = "boot-a", .busy_timeout_ms = 200};
    return o;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/ledger.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/ledger.db", f->dir);
    yn_ledger_opts o = opts_for(f);
    if (yn_ledger_open(&o, &f->l) != YN_OK) {
        free(f);
        return -1;
    }
    f->next_tap = 1000;
    f->mono_ms = 5000000;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    yn_ledger_close(f->l);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void reopen(struct fx *f, const yn_ledger_opts *o)
{
    yn_ledger_close(f->l);
    f->l = NULL;
    assert_int_equal(yn_ledger_open(o, &f->l), YN_OK);
}

/* ---- cards and taps --------------------------------------------------------- */

/* 80 years old, 低保, living in the canteen's district: 15 yuan of city subsidy. */
static yn_card_facts key_card(const char *no)
{
    yn_card_facts c = {.birth_ymd = 19450301,
                       .flags = YN_FLAG_DIBAO,
                       .district = HOME_DISTRICT,
                       .street = HOME_STREET,
                       .expiry_ymd = 20301231};
    snprintf(c.card_no, sizeof c.card_no, "%s", no);
    return c;
}

/* 75 years old, no flags: 5 yuan. */
static yn_card_facts senior_card(const char *no)
{
    yn_card_facts c = key_card(no);
    c.birth_ymd = 19500101;
    c.flags = 0;
    return c;
}

static const yn_canteen canteen = {.district = HOME_DISTRICT, .street = HOME_STREET};

static yn_ledger_when at(struct fx *f, int64_t utc_s)
{
    f->mono_ms += 1000;
    yn_ledger_when w = {.utc_s = utc_s, .mono_ms = f->mono_ms, .clock_trusted = true};
    return w;
}

static int debit_at(struct fx *f, const yn_card_facts *c, int64_t price_fen, int64_t utc_s,
                    int64_t tap_id, yn_ledger_result *r)
{
    yn_meal meal = {.price_fen = price_fen};
    yn_ledger_tap tap = {.tap_id = tap_id,
                         .card = c,
                         .meal = &meal,
                         .canteen = &canteen,
                         .operator_id = "op1",
                         .when = at(f, utc_s)};
    return yn_ledger_debit(f->l, policy, &tap, r);
}

static int debit(struct fx *f, const yn_card_facts *c, int64_t price_fen, yn_ledger_result *r)
{
    int64_t tap_id = f->next_tap++;
    return debit_at(f, c, price_fen, WED_NOON_UTC + tap_id, tap_id, r);
}

static void topup(struct fx *f, const char *card_no, int64_t fen)
{
    yn_ledger_result r;
    yn_ledger_when w = at(f, WED_NOON_UTC - 3600);
    assert_int_equal(yn_ledger_topup(f->l, f->next_tap++, card_no, fen, "op1", &w, &r), YN_OK);
}

/* ---- what the ledger logs -------------------------------------------------------- */

static char log_path[700];
static int saved_stderr = -1;

/* Send the log (stderr) to a file until log_end(), which returns it (static). */
static void log_begin(const struct fx *f)
{
    snprintf(log_path, sizeof log_path, "%s/log.txt", f->dir);
    fflush(stderr);
    saved_stderr = dup(2);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved_stderr >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    yn_log_quiet(false);
}

static const char *log_end(void)
{
    static char text[8192];
    fflush(stderr);
    yn_log_quiet(true);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    FILE *in = fopen(log_path, "r");
    assert_non_null(in);
    size_t n = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    text[n] = '\0';
    return text;
}

/* ---- raw SQL views of the file (a second connection) --------------------------- */

static int64_t sql_i64(const char *path, const char *sql)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    int64_t v = -1;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return v;
}

static void sql_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    char *err = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    sqlite3_close(db);
}

static int64_t journal_count(struct fx *f)
{
    return sql_i64(f->path, "SELECT COUNT(*) FROM journal");
}

static int64_t wallet_of(struct fx *f, const char *card_no)
{
    yn_ledger_account a;
    assert_int_equal(yn_ledger_balance(f->l, card_no, WED_NOON_UTC, 0, &a), YN_OK);
    return a.wallet_fen;
}

static void assert_verifies(struct fx *f)
{
    yn_ledger_verify_report rep;
    int st = yn_ledger_verify(f->l, &rep);
    if (st != YN_OK)
        fail_msg("verify: seq %lld card %s: %s", (long long)rep.first_bad_seq, rep.bad_card,
                 rep.what);
    assert_int_equal(rep.records, journal_count(f));
    assert_int_equal(sql_i64(f->path, "SELECT integrity_check = 'ok' FROM pragma_integrity_check"),
                     1);
}

/* ---- open --------------------------------------------------------------------------- */

static void test_open_sets_up_schema_and_identity(void **state)
{
    struct fx *f = *state;
    assert_int_equal(sql_i64(f->path, "PRAGMA user_version"), yn_ledger_schema_version());
    assert_int_equal(yn_ledger_schema_version(), 4);
    assert_int_equal(sql_i64(f->path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"), 1);
    char v[64];
    assert_int_equal(yn_ledger_meta_get(f->l, "terminal_id", v, sizeof v), YN_OK);
    assert_string_equal(v, "SZFT0001");
    assert_int_equal(yn_ledger_meta_get(f->l, "boot_no", v, sizeof v), YN_OK);
    assert_string_equal(v, "1");
    assert_int_equal(yn_ledger_meta_get(f->l, "no_such_key", v, sizeof v), YN_ENOTFOUND);

    /* same boot: same number; a new boot id: the next number */
    yn_ledger_opts o = opts_for(f);
    reopen(f, &o);
    assert_int_equal(yn_ledger_meta_get(f->l, "boot_no", v, sizeof v), YN_OK);
    assert_string_equal(v, "1");
    o.boot_id = "boot-b";
    reopen(f, &o);
    assert_int_equal(yn_ledger_meta_get(f->l, "boot_no", v, sizeof v), YN_OK);
    assert_string_equal(v, "2");

    /* the file belongs to its terminal */
    yn_ledger *other = NULL;
    o.terminal_id = "SZFT0002";
    assert_int_equal(yn_ledger_open(&o, &other), YN_ECONFIG);
    assert_null(other);
    o.terminal_id = "bad\nid";
    assert_int_equal(yn_ledger_open(&o, &other), YN_EINVAL);
    /* no migration, so no backup for a fresh or current ledger */
    char bak[700];
    snprintf(bak, sizeof bak, "%s.v1.bak", f->path);
    assert_int_equal(access(bak, F_OK), -1);
}

/* ---- debit -------------------------------------------------------------------------- */

static void test_debit_subsidised_meal(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = key_card("4403040000000001");
    topup(f, c.card_no, 1000);
    yn_ledger_result r;
    assert_int_equal(debit(f, &c, 1800, &r), YN_OK);
    assert_int_equal(r.seq, 2);
    assert_int_equal(r.kind, YN_LEDGER_MEAL);
    assert_true(r.decision.allowed);
    assert_int_equal(r.decision.reason, YN_REASON_NONE);
    assert_string_equal(r.decision.category, "key_group");
    assert_string_equal(r.decision.period, "lunch");
    assert_int_equal(r.decision.price_fen, 1800);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(r.decision.n_layers, 1);
    assert_string_equal(r.decision.layers[0].source, "city");
    assert_int_equal(r.decision.layers[0].fen, 1500);
    assert_int_equal(r.decision.wallet_fen, 300);
    assert_int_equal(r.decision.cash_fen, 0);
    assert_int_equal(r.wallet_after_fen, 700);
    assert_int_equal(wallet_of(f, c.card_no), 700);

    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, 2, &rec), YN_OK);
    assert_string_equal(rec.terminal, "SZFT0001");
    assert_string_equal(rec.card_no, c.card_no);
    assert_int_equal(rec.local_ymd, DAY);
    assert_int_equal(rec.price_fen, 1800);
    assert_int_equal(rec.wallet_after_fen, 700);
    assert_int_equal(rec.card_prev_seq, 1);
    assert_string_equal(rec.operator_id, "op1");
    assert_int_equal(rec.policy_version, 1);
    assert_true(rec.clock_trusted);
    /* the chain: this record's prev_hash is record 1's hash, and its hash recomputes */
    yn_ledger_record first;
    assert_int_equal(yn_ledger_record_get(f->l, 1, &first), YN_OK);
    assert_memory_equal(rec.prev_hash, first.hash, YN_LEDGER_HASH_LEN);
    uint8_t h[YN_LEDGER_HASH_LEN];
    yn_ledger_record_hash(&rec, rec.prev_hash, h);
    assert_memory_equal(h, rec.hash, YN_LEDGER_HASH_LEN);
    int64_t head;
    assert_int_equal(yn_ledger_head(f->l, &head, h), YN_OK);
    assert_int_equal(head, 2);
    assert_memory_equal(h, rec.hash, YN_LEDGER_HASH_LEN);
    assert_int_equal(yn_ledger_record_get(f->l, 3, &rec), YN_ENOTFOUND);

    /* wallet short: the rest in cash */
    yn_card_facts poor = senior_card("4403040000000002");
    assert_int_equal(debit(f, &poor, 1200, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 500);
    assert_int_equal(r.decision.wallet_fen, 0);
    assert_int_equal(r.decision.cash_fen, 700);
    assert_int_equal(r.wallet_after_fen, 0);
    assert_verifies(f);
}

static void test_debit_weighed_meal(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = senior_card("4403040000000003");
    yn_meal meal = {.weight_g = 350, .price_per_100g_fen = 500};
    yn_ledger_tap tap = {
        .tap_id = 77, .card = &c, .meal = &meal, .canteen = &canteen, .when = at(f, WED_NOON_UTC)};
    yn_ledger_result r;
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_OK);
    assert_int_equal(r.decision.price_fen, 1750);
    assert_int_equal(r.decision.subsidy_fen, 500);
    assert_int_equal(r.decision.cash_fen, 1250);
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, r.seq, &rec), YN_OK);
    assert_int_equal(rec.weight_g, 350);
    assert_int_equal(rec.price_per_100g_fen, 500);
    assert_string_equal(rec.operator_id, "");

    /* bad input is the policy's EINVAL, nothing written */
    meal.price_fen = 100; /* fixed price and weight together */
    tap.tap_id = 78;
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_EINVAL);
    tap.tap_id = 0;
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_EINVAL);
    assert_int_equal(journal_count(f), 1);
}

static void test_replayed_tap_returns_original(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = key_card("4403040000000010");
    topup(f, c.card_no, 2000);
    yn_ledger_result first, again;
    int64_t t = f->next_tap++;
    assert_int_equal(debit_at(f, &c, 1800, WED_NOON_UTC, t, &first), YN_OK);
    int64_t n = journal_count(f);
    /* the same tap id later, even with another price: the original, no charge */
    assert_int_equal(debit_at(f, &c, 2500, WED_NOON_UTC + 5, t, &again), YN_EDUPLICATE);
    assert_int_equal(again.seq, first.seq);
    assert_int_equal(again.kind, YN_LEDGER_MEAL);
    assert_int_equal(again.decision.price_fen, 1800);
    assert_int_equal(again.decision.subsidy_fen, 1500);
    assert_int_equal(again.decision.wallet_fen, 300);
    assert_int_equal(again.wallet_after_fen, 1700);
    assert_true(again.decision.allowed);
    assert_string_equal(again.decision.category, "key_group");
    assert_int_equal(journal_count(f), n);
    assert_int_equal(wallet_of(f, c.card_no), 1700);
    /* replayed after the card was blacklisted, or within the minimum interval:
     * still the original result, not a refusal */
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 1, c.card_no, true), YN_OK);
    assert_int_equal(debit_at(f, &c, 1800, WED_NOON_UTC + 6, t, &again), YN_EDUPLICATE);
    assert_int_equal(again.seq, first.seq);
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 2, c.card_no, false), YN_OK);
    yn_ledger_opts o = opts_for(f);
    o.min_interval_s = 60;
    reopen(f, &o);
    assert_int_equal(debit_at(f, &c, 1800, WED_NOON_UTC + 7, t, &again), YN_EDUPLICATE);
    assert_int_equal(again.seq, first.seq);
    assert_int_equal(again.wallet_after_fen, 1700);
    /* usage was not counted twice: period still used once */
    yn_ledger_account a;
    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC, 5, &a), YN_OK);
    assert_int_equal(a.meals_month, 1);
    assert_int_equal(a.subsidy_month_fen, 1500);
    /* the card's last tap is kept in its row */
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT last_tap FROM cards WHERE card_no = '%s'", c.card_no);
    assert_int_equal(sql_i64(f->path, sql), t);
    /* no index on tap_id: the journal has only its reversal index */
    assert_int_equal(sql_i64(f->path, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index'"
                                      " AND tbl_name = 'journal'"),
                     1);
    assert_verifies(f);
}

/* A replay is the card's own last tap, whatever happened since elsewhere; any
 * other tap id must be above every one journaled. */
static void test_tap_ids_increase(void **state)
{
    struct fx *f = *state;
    yn_card_facts a = key_card("4403040000000013"), b = senior_card("4403040000000014");
    topup(f, a.card_no, 5000);
    yn_ledger_result ra, rb, r;
    int64_t ta = f->next_tap++, tb = f->next_tap++;
    assert_int_equal(debit_at(f, &a, 1800, WED_NOON_UTC, ta, &ra), YN_OK);
    assert_int_equal(debit_at(f, &b, 1500, WED_NOON_UTC + 1, tb, &rb), YN_OK);
    int64_t n = journal_count(f);

    /* a's last tap after b's: still a replay of a's meal */
    assert_int_equal(debit_at(f, &a, 1800, WED_NOON_UTC + 2, ta, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, ra.seq);
    assert_int_equal(r.wallet_after_fen, 5000 - 300);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    /* b's id with card a, a's id with card b: not a replay of the other card's
     * tap, and not new either: refused, nothing written, and the log says why */
    log_begin(f);
    assert_int_equal(debit_at(f, &a, 1800, WED_NOON_UTC + 3, tb, &r), YN_EINVAL);
    const char *log = log_end();
    assert_non_null(strstr(log, "tap id not increasing"));
    assert_non_null(strstr(log, a.card_no));
    assert_int_equal(r.seq, 0);
    assert_false(r.decision.allowed);
    assert_int_equal(debit_at(f, &b, 1500, WED_NOON_UTC + 3, ta, &r), YN_EINVAL);
    assert_int_equal(r.seq, 0);
    /* what a terminal starts above after a restart */
    int64_t max_tap = 0;
    assert_int_equal(yn_ledger_tap_id_max(f->l, &max_tap), YN_OK);
    assert_int_equal(max_tap, tb);
    /* stale ids of no card, below the highest: refused too */
    assert_int_equal(debit_at(f, &a, 1800, WED_NOON_UTC + 4, ta - 1, &r), YN_EINVAL);
    assert_int_equal(debit_at(f, &b, 1500, WED_NOON_UTC + 4, 1, &r), YN_EINVAL);
    assert_int_equal(journal_count(f), n);
    assert_int_equal(wallet_of(f, a.card_no), 5000 - 300);

    /* after a reversal and an allocation on card a, its last tap is still a replay:
     * the original meal, not the reversal */
    yn_ledger_when w = at(f, WED_NOON_UTC + 60);
    yn_ledger_result rv;
    assert_int_equal(yn_ledger_reverse(f->l, policy, ra.seq, "op2", &w, &rv), YN_OK);
    assert_int_equal(yn_ledger_allocate(f->l, "alloc-13", a.card_no, "district", 100, &w, &r),
                     YN_OK);
    n = journal_count(f);
    assert_int_equal(debit_at(f, &a, 1800, WED_NOON_UTC + 61, ta, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, ra.seq);
    assert_int_equal(r.kind, YN_LEDGER_MEAL);
    assert_int_equal(r.decision.price_fen, 1800);
    assert_int_equal(journal_count(f), n);
    assert_int_equal(wallet_of(f, a.card_no), 5000 + 100);

    /* the next id goes through, for either card; ids may skip */
    int64_t next = f->next_tap + 50;
    f->next_tap = next + 1;
    assert_int_equal(debit_at(f, &b, 1500, WED_EVE_UTC, next, &r), YN_OK);
    assert_int_equal(r.seq, n + 1);
    /* a refused tap is not journaled and its id not used up */
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 1, a.card_no, true), YN_OK);
    assert_int_equal(debit_at(f, &a, 1800, WED_EVE_UTC + 1, next + 1, &r), YN_EREFUSED);
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 2, a.card_no, false), YN_OK);
    assert_int_equal(debit_at(f, &a, 1800, WED_EVE_UTC + 2, next + 1, &r), YN_OK);
    f->next_tap = next + 2;

    /* a new handle (the terminal restarted) knows the highest id from the file */
    yn_ledger_opts o = opts_for(f);
    reopen(f, &o);
    assert_int_equal(debit_at(f, &a, 1800, WED_EVE_UTC + 3, next, &r), YN_EINVAL);
    assert_int_equal(debit_at(f, &b, 1500, WED_EVE_UTC + 3, next, &r), YN_EDUPLICATE);
    assert_int_equal(debit_at(f, &a, 1800, WED_EVE_UTC + 3, next + 1, &r), YN_EDUPLICATE);
    assert_int_equal(debit_at(f, &b, 1500, WED_EVE_UTC + 3, next + 2, &r), YN_OK);
    assert_verifies(f);
}

/* Top-ups follow the same tap id rules, on the same sequence of ids. */
static void test_topup_tap_ids(void **state)
{
    struct fx *f = *state;
    const char *a = "4403040000000015", *b = "4403040000000016";
    yn_ledger_when w = at(f, WED_NOON_UTC);
    yn_ledger_result r1, r;
    int64_t t = f->next_tap++;
    assert_int_equal(yn_ledger_topup(f->l, t, a, 800, "op1", &w, &r1), YN_OK);
    assert_int_equal(r1.kind, YN_LEDGER_TOPUP);
    int64_t n = journal_count(f);
    /* replay: the original, credited once */
    assert_int_equal(yn_ledger_topup(f->l, t, a, 900, "op1", &w, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, r1.seq);
    assert_int_equal(r.kind, YN_LEDGER_TOPUP);
    assert_int_equal(r.decision.cash_fen, 800);
    assert_int_equal(r.wallet_after_fen, 800);
    /* the id on another card, or an id below the highest: refused, nothing written */
    log_begin(f);
    assert_int_equal(yn_ledger_topup(f->l, t, b, 800, "op1", &w, &r), YN_EINVAL);
    const char *log = log_end();
    assert_non_null(strstr(log, "top-up"));
    assert_non_null(strstr(log, "tap id not increasing"));
    assert_int_equal(r.seq, 0);
    assert_int_equal(yn_ledger_topup(f->l, t - 1, a, 800, "op1", &w, &r), YN_EINVAL);
    /* a debit may not reuse a top-up's id either: on the same card it is that
     * top-up's replay (its record, kind top-up), on another card refused */
    yn_card_facts cb = senior_card(b), ca = senior_card(a);
    assert_int_equal(debit_at(f, &cb, 1500, WED_NOON_UTC, t, &r), YN_EINVAL);
    assert_int_equal(debit_at(f, &ca, 1500, WED_NOON_UTC, t, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, r1.seq);
    assert_int_equal(r.kind, YN_LEDGER_TOPUP);
    assert_int_equal(journal_count(f), n);
    assert_int_equal(wallet_of(f, a), 800);
    assert_int_equal(wallet_of(f, b), 0);
    /* a meal on the card, then the top-up's id again: no longer the card's last tap */
    yn_ledger_result m;
    assert_int_equal(debit(f, &ca, 1500, &m), YN_OK);
    assert_int_equal(yn_ledger_topup(f->l, t, a, 800, "op1", &w, &r), YN_EINVAL);
    assert_int_equal(yn_ledger_topup(f->l, f->next_tap++, b, 300, "op1", &w, &r), YN_OK);
    assert_int_equal(r.wallet_after_fen, 300);
    assert_verifies(f);
}

/* Two handles on one file (the terminal and, say, a sync process) take turns:
 * each sees the other's records, and the chain stays one chain. */
static void test_two_handles_one_chain(void **state)
{
    struct fx *f = *state;
    yn_ledger *other = NULL;
    yn_ledger_opts o = opts_for(f);
    assert_int_equal(yn_ledger_open(&o, &other), YN_OK);
    yn_card_facts c = senior_card("4403040000000012");
    yn_ledger_result r;
    for (int i = 0; i < 6; i++) {
        yn_meal meal = {.price_fen = 1000};
        yn_ledger_tap tap = {.tap_id = 50 + i,
                             .card = &c,
                             .meal = &meal,
                             .canteen = &canteen,
                             .when = at(f, WED_NOON_UTC + i)};
        assert_int_equal(yn_ledger_debit(i % 3 ? f->l : other, policy, &tap, &r), YN_OK);
        assert_int_equal(r.seq, i + 1);
    }
    yn_ledger_result a;
    yn_ledger_when w = at(f, WED_NOON_UTC + 10);
    assert_int_equal(yn_ledger_allocate(other, "a1", c.card_no, "district", 100, &w, &a), YN_OK);
    assert_int_equal(a.seq, 7);
    yn_meal meal = {.price_fen = 1000};
    yn_ledger_tap tap = {.tap_id = 99,
                         .card = &c,
                         .meal = &meal,
                         .canteen = &canteen,
                         .when = at(f, WED_NOON_UTC + 11)};
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_OK);
    assert_int_equal(r.seq, 8);
    assert_int_equal(r.wallet_after_fen, 0); /* the 100 credited by the other handle paid */
    assert_int_equal(r.decision.wallet_fen, 100);
    /* each handle knows the other's tap ids: the other's last one is no new
     * tap, for another card (refused) nor for the same card (its replay) */
    yn_card_facts d = senior_card("4403040000000017");
    tap.card = &d;
    tap.tap_id = 98;
    assert_int_equal(yn_ledger_debit(other, policy, &tap, &r), YN_EINVAL);
    tap.tap_id = 99;
    assert_int_equal(yn_ledger_debit(other, policy, &tap, &r), YN_EINVAL);
    tap.card = &c;
    assert_int_equal(yn_ledger_debit(other, policy, &tap, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, 8);
    tap.tap_id = 55; /* the other handle's own, not c's last */
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_EINVAL);
    assert_int_equal(journal_count(f), 8);
    yn_ledger_close(other);
    assert_verifies(f);
}

static void test_second_meal_in_period_full_price(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = key_card("4403040000000011");
    yn_ledger_result r;
    assert_int_equal(debit(f, &c, 1800, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(debit(f, &c, 1800, &r), YN_OK); /* sold without subsidy */
    assert_int_equal(r.decision.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(r.decision.subsidy_fen, 0);
    assert_int_equal(r.decision.cash_fen, 1800);
    /* evening: no period, full price, usage untouched */
    assert_int_equal(debit_at(f, &c, 1000, WED_EVE_UTC, 9001, &r), YN_OK);
    assert_int_equal(r.decision.reason, YN_REASON_NO_PERIOD);
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, r.seq, &rec), YN_OK);
    assert_int_equal(rec.reason, YN_REASON_NO_PERIOD);
    yn_ledger_account a;
    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC, 5, &a), YN_OK);
    assert_int_equal(a.meals_month, 1);
    /* next day's lunch is subsidised again */
    assert_int_equal(debit_at(f, &c, 1800, WED_NOON_UTC + 86400, 9002, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC, 5, &a), YN_OK);
    assert_int_equal(a.meals_month, 2);
    assert_int_equal(a.subsidy_month_fen, 3000);
    assert_verifies(f);
}

static void test_too_soon(void **state)
{
    struct fx *f = *state;
    yn_ledger_opts o = opts_for(f);
    o.min_interval_s = 60;
    reopen(f, &o);
    yn_card_facts c = key_card("4403040000000020");
    yn_meal meal = {.price_fen = 1800};
    yn_ledger_tap tap = {.tap_id = 1,
                         .card = &c,
                         .meal = &meal,
                         .canteen = &canteen,
                         .when = {.utc_s = WED_NOON_UTC, .mono_ms = 100000, .clock_trusted = true}};
    yn_ledger_result r;
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_OK);

    tap.tap_id = 2; /* 10 s later by both clocks */
    tap.when.utc_s += 10;
    tap.when.mono_ms += 10000;
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_EREFUSED);
    assert_false(r.decision.allowed);
    assert_int_equal(r.decision.reason, YN_REASON_TOO_SOON);
    assert_int_equal(r.seq, 0);
    assert_int_equal(journal_count(f), 1);

    /* the wall clock jumped an hour ahead, the monotonic one says 20 s: still too soon */
    tap.when.utc_s += 3600;
    tap.when.mono_ms += 10000;
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_EREFUSED);
    assert_int_equal(r.decision.reason, YN_REASON_TOO_SOON);

    /* 61 s by the monotonic clock: allowed */
    tap.when.mono_ms = 100000 + 61000;
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_OK);
    assert_int_equal(r.decision.reason, YN_REASON_PERIOD_USED);

    /* after a reboot the monotonic clock restarts: the wall clock decides */
    o.boot_id = "boot-b";
    reopen(f, &o);
    tap.tap_id = 3;
    tap.when.mono_ms = 5000; /* small, but of another boot */
    tap.when.utc_s = WED_NOON_UTC + 3600 + 20 + 30;
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_EREFUSED);
    assert_int_equal(r.decision.reason, YN_REASON_TOO_SOON);
    tap.when.utc_s += 60;
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_OK);
    assert_int_equal(journal_count(f), 3);
    assert_verifies(f);
}

static void test_blacklisted_card_refused(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = key_card("4403040000000030");
    topup(f, c.card_no, 1000);
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 5, c.card_no, true), YN_OK);
    int64_t seq;
    assert_int_equal(yn_ledger_blacklist_seq(f->l, &seq), YN_OK);
    assert_int_equal(seq, 5);
    int64_t n = journal_count(f);
    yn_ledger_result r;
    assert_int_equal(debit(f, &c, 1800, &r), YN_EREFUSED);
    assert_false(r.decision.allowed);
    assert_int_equal(r.decision.reason, YN_REASON_LOST);
    assert_int_equal(r.decision.wallet_fen, 0);
    assert_int_equal(journal_count(f), n);
    assert_int_equal(wallet_of(f, c.card_no), 1000);

    /* sequence numbers only go up: a stale or repeated change is refused whole */
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 5, c.card_no, false), YN_ESTALE);
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 3, c.card_no, false), YN_ESTALE);
    yn_ledger_blacklist_entry batch[2] = {{.seq = 6, .card_no = "X1", .lost = true},
                                          {.seq = 6, .lost = false}};
    strcpy(batch[1].card_no, c.card_no);
    assert_int_equal(yn_ledger_blacklist_apply_many(f->l, batch, 2), YN_ESTALE);
    assert_int_equal(sql_i64(f->path, "SELECT COUNT(*) FROM blacklist WHERE card_no = 'X1'"), 0);
    assert_int_equal(yn_ledger_debit(f->l, policy, NULL, &r), YN_EINVAL);
    assert_int_equal(debit(f, &c, 1800, &r), YN_EREFUSED);

    /* found again */
    batch[1].seq = 7;
    assert_int_equal(yn_ledger_blacklist_apply_many(f->l, batch, 2), YN_OK);
    assert_int_equal(yn_ledger_blacklist_seq(f->l, &seq), YN_OK);
    assert_int_equal(seq, 7);
    assert_int_equal(debit(f, &c, 1800, &r), YN_OK);
    assert_int_equal(r.wallet_after_fen, 700);
}

static void test_roster_overrides_card(void **state)
{
    struct fx *f = *state;
    /* the card says it lives in another district: no subsidy here */
    yn_card_facts c = key_card("4403040000000040");
    c.district = 440305;
    c.street = 440305001;
    yn_ledger_result r;
    assert_int_equal(debit(f, &c, 1800, &r), YN_OK);
    assert_int_equal(r.decision.reason, YN_REASON_OUTSIDE_AREA);
    assert_int_equal(r.decision.subsidy_fen, 0);
    /* the roster (the district's latest word) says it moved here */
    yn_card_facts roster = key_card(c.card_no);
    roster.flags = YN_FLAG_DIBAO;
    assert_int_equal(yn_ledger_roster_put(f->l, &roster, 1, 42), YN_OK);
    assert_int_equal(debit_at(f, &c, 1800, WED_NOON_UTC + 86400, 2001, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    char v[32];
    assert_int_equal(yn_ledger_meta_get(f->l, "roster_version", v, sizeof v), YN_OK);
    assert_string_equal(v, "42");
    /* and then that the card expired */
    roster.expiry_ymd = 20250101;
    assert_int_equal(yn_ledger_roster_put(f->l, &roster, 1, 43), YN_OK);
    int64_t n = journal_count(f);
    assert_int_equal(debit_at(f, &c, 1800, WED_NOON_UTC + 2 * 86400, 2002, &r), YN_EREFUSED);
    assert_int_equal(r.decision.reason, YN_REASON_EXPIRED);
    assert_int_equal(journal_count(f), n);
    assert_int_equal(sql_i64(f->path, "SELECT version FROM roster"), 43);
}

/* What the card's stamp says (a meal at another canteen) counts like the ledger's own. */
static void test_usage_floor_from_card(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = key_card("4403040000000045");
    yn_usage floor = {.meals_period = 1, .meals_day = 1};
    yn_meal meal = {.price_fen = 1800};
    yn_ledger_tap tap = {.tap_id = 1,
                         .card = &c,
                         .meal = &meal,
                         .canteen = &canteen,
                         .when = at(f, WED_NOON_UTC),
                         .usage_floor = &floor};
    yn_ledger_result r;
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_OK);
    assert_int_equal(r.decision.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(r.decision.subsidy_fen, 0);
    assert_int_equal(r.decision.cash_fen, 1800);
    yn_ledger_account a;
    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC, 5, &a), YN_OK);
    assert_int_equal(a.meals_month, 0); /* nothing subsidised here */
    /* a floor below the ledger's count changes nothing: the larger one counts */
    floor.meals_period = 0;
    tap.tap_id = 2;
    tap.when = at(f, WED_NOON_UTC + 86400);
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_verifies(f);
}

struct hook_probe {
    int calls;
    int status;               /* what the hook returns */
    yn_ledger_result pending; /* what it was shown */
    int64_t journal_seen;     /* journal rows a second connection saw meanwhile */
    const char *path;
};

static int hook(void *arg, const yn_ledger_result *pending)
{
    struct hook_probe *h = arg;
    h->calls++;
    h->pending = *pending;
    h->journal_seen = sql_i64(h->path, "SELECT COUNT(*) FROM journal");
    return h->status;
}

/* The card's stamp is written inside the transaction: no stamp, no charge. */
static void test_before_commit_hook(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = key_card("4403040000000046");
    topup(f, c.card_no, 1000);
    struct hook_probe h = {.status = YN_ECARDGONE, .path = f->path};
    yn_meal meal = {.price_fen = 1800};
    yn_ledger_tap tap = {.tap_id = f->next_tap++,
                         .card = &c,
                         .meal = &meal,
                         .canteen = &canteen,
                         .when = at(f, WED_NOON_UTC),
                         .before_commit = hook,
                         .hook_arg = &h};
    yn_ledger_result r;
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_ECARDGONE);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.pending.seq, 2);
    assert_int_equal(h.pending.decision.subsidy_fen, 1500);
    assert_int_equal(h.pending.wallet_after_fen, 700);
    assert_int_equal(h.journal_seen, 1); /* not visible before the commit */
    assert_int_equal(r.seq, 0);
    assert_int_equal(journal_count(f), 1);
    assert_int_equal(wallet_of(f, c.card_no), 1000);
    /* the same tap again, the card stays: charged once, under the seq it was shown */
    h.status = YN_OK;
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_OK);
    assert_int_equal(h.calls, 2);
    assert_int_equal(r.seq, 2);
    assert_int_equal(r.wallet_after_fen, 700);
    /* a replay or a refusal does not call it */
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_EDUPLICATE);
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 1, c.card_no, true), YN_OK);
    tap.tap_id = f->next_tap++;
    assert_int_equal(yn_ledger_debit(f->l, policy, &tap, &r), YN_EREFUSED);
    assert_int_equal(h.calls, 2);
    assert_verifies(f);
}

/* ---- reversal ----------------------------------------------------------------------- */

static void test_reverse(void **state)
{
    struct fx *f = *state;
    yn_ledger_opts o = opts_for(f);
    o.min_interval_s = 60;
    reopen(f, &o);
    yn_card_facts c = key_card("4403040000000050");
    topup(f, c.card_no, 1000);
    yn_ledger_result meal, rev, r;
    assert_int_equal(debit(f, &c, 1800, &meal), YN_OK);
    assert_int_equal(meal.wallet_after_fen, 700);

    yn_ledger_when w = at(f, WED_NOON_UTC + 2000);
    assert_int_equal(yn_ledger_reverse(f->l, policy, meal.seq, "op2", &w, &rev), YN_OK);
    assert_int_equal(rev.kind, YN_LEDGER_REVERSAL);
    assert_int_equal(rev.seq, meal.seq + 1);
    assert_int_equal(rev.decision.price_fen, -1800);
    assert_int_equal(rev.decision.subsidy_fen, -1500);
    assert_int_equal(rev.decision.layers[0].fen, -1500);
    assert_int_equal(rev.decision.wallet_fen, -300);
    assert_int_equal(rev.wallet_after_fen, 1000);
    assert_int_equal(wallet_of(f, c.card_no), 1000);
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, rev.seq, &rec), YN_OK);
    assert_int_equal(rec.reverses_seq, meal.seq);
    assert_string_equal(rec.operator_id, "op2");
    /* the original is untouched */
    assert_int_equal(yn_ledger_record_get(f->l, meal.seq, &rec), YN_OK);
    assert_int_equal(rec.price_fen, 1800);

    /* usage given back, and the minimum interval lifted: the right charge at once */
    yn_ledger_account a;
    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC, 5, &a), YN_OK);
    assert_int_equal(a.meals_month, 0);
    assert_int_equal(a.subsidy_month_fen, 0);
    assert_int_equal(debit(f, &c, 1600, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(r.wallet_after_fen, 900);

    /* twice: the first reversal is returned */
    w = at(f, WED_NOON_UTC + 2010);
    int64_t n = journal_count(f);
    assert_int_equal(yn_ledger_reverse(f->l, policy, meal.seq, "op2", &w, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, rev.seq);
    /* a reversal, a top-up, an unknown record: refused */
    assert_int_equal(yn_ledger_reverse(f->l, policy, rev.seq, "op2", &w, &r), YN_EREFUSED);
    assert_int_equal(yn_ledger_reverse(f->l, policy, 1, "op2", &w, &r), YN_EREFUSED);
    assert_int_equal(yn_ledger_reverse(f->l, policy, 999, "op2", &w, &r), YN_ENOTFOUND);
    assert_int_equal(yn_ledger_reverse(f->l, policy, meal.seq, NULL, &w, &r), YN_EINVAL);
    assert_int_equal(journal_count(f), n);
    assert_int_equal(wallet_of(f, c.card_no), 900);
    assert_verifies(f);
}

static void test_reverse_outside_window(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = key_card("4403040000000060");
    yn_ledger_result meal, r;
    assert_int_equal(debit_at(f, &c, 1800, WED_NOON_UTC, 1, &meal), YN_OK);
    yn_ledger_record m;
    assert_int_equal(yn_ledger_record_get(f->l, meal.seq, &m), YN_OK);
    /* the policy's window is 600 s, measured by the monotonic clock */
    yn_ledger_when w = {.utc_s = WED_NOON_UTC + 100, .mono_ms = m.mono_ms + 601000};
    assert_int_equal(yn_ledger_reverse(f->l, policy, meal.seq, "op2", &w, &r), YN_EREFUSED);
    assert_int_equal(journal_count(f), 1);
    w.mono_ms = m.mono_ms + 599000;
    /* the options can narrow it */
    yn_ledger_opts o = opts_for(f);
    o.reverse_window_s = 60;
    reopen(f, &o);
    assert_int_equal(yn_ledger_reverse(f->l, policy, meal.seq, "op2", &w, &r), YN_EREFUSED);
    w.mono_ms = m.mono_ms + 59000;
    assert_int_equal(yn_ledger_reverse(f->l, NULL, meal.seq, "op2", &w, &r), YN_OK);
    assert_int_equal(journal_count(f), 2);
    assert_verifies(f);
}

/* ---- credits ------------------------------------------------------------------------ */

static void test_allocate_twice(void **state)
{
    struct fx *f = *state;
    yn_ledger_when w = at(f, WED_NOON_UTC);
    yn_ledger_result r1, r2;
    assert_int_equal(yn_ledger_allocate(f->l, "2025-06/440304/77", "4403040000000070", "district",
                                        3000, &w, &r1),
                     YN_OK);
    assert_int_equal(r1.kind, YN_LEDGER_ALLOCATION);
    assert_int_equal(r1.wallet_after_fen, 3000);
    assert_int_equal(r1.decision.wallet_fen, -3000);
    assert_int_equal(r1.decision.subsidy_fen, 3000);
    assert_int_equal(r1.decision.price_fen, 0);
    assert_int_equal(yn_ledger_allocate(f->l, "2025-06/440304/77", "4403040000000070", "district",
                                        3000, &w, &r2),
                     YN_EDUPLICATE);
    assert_int_equal(r2.seq, r1.seq);
    assert_int_equal(r2.wallet_after_fen, 3000);
    assert_int_equal(wallet_of(f, "4403040000000070"), 3000);
    assert_int_equal(journal_count(f), 1);
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, r1.seq, &rec), YN_OK);
    assert_string_equal(rec.ref, "2025-06/440304/77");
    assert_int_equal(rec.tap_id, 0);
    assert_int_equal(yn_ledger_allocate(f->l, "a2", "4403040000000070", "district", 0, &w, &r2),
                     YN_EINVAL);
    assert_int_equal(yn_ledger_allocate(f->l, "a2", "4403040000000070", "district", -5, &w, &r2),
                     YN_EINVAL);
    /* a top-up is idempotent on its tap id */
    assert_int_equal(yn_ledger_topup(f->l, 900, "4403040000000070", 500, "op1", &w, &r1), YN_OK);
    assert_int_equal(r1.wallet_after_fen, 3500);
    assert_int_equal(r1.decision.cash_fen, 500);
    assert_int_equal(yn_ledger_topup(f->l, 900, "4403040000000070", 500, "op1", &w, &r2),
                     YN_EDUPLICATE);
    assert_int_equal(r2.seq, r1.seq);
    assert_int_equal(wallet_of(f, "4403040000000070"), 3500);
    assert_verifies(f);
}

/* ---- kiosk -------------------------------------------------------------------------- */

static void test_balance(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = key_card("4403040000000080");
    yn_ledger_account a;
    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC, 5, &a), YN_OK);
    assert_int_equal(a.wallet_fen, 0);
    assert_int_equal(a.n_last, 0);
    assert_int_equal(a.month_ym, 202506);

    topup(f, c.card_no, 5000);
    yn_ledger_result r1, r2, r3;
    assert_int_equal(debit_at(f, &c, 1800, WED_NOON_UTC, 1001, &r1), YN_OK);              /* 300 */
    assert_int_equal(debit_at(f, &c, 2000, WED_NOON_UTC + 86400, 1002, &r2), YN_OK);      /* 500 */
    assert_int_equal(debit_at(f, &c, 1200, WED_NOON_UTC + 86400 + 60, 1003, &r3), YN_OK); /* 1200 */
    yn_ledger_when w = at(f, WED_NOON_UTC + 86400 + 120);
    yn_ledger_result rv;
    assert_int_equal(yn_ledger_reverse(f->l, policy, r3.seq, "op1", &w, &rv), YN_OK);
    yn_card_facts other = key_card("4403040000000081");
    assert_int_equal(debit_at(f, &other, 1800, WED_NOON_UTC, 1004, &r1), YN_OK);

    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC + 86400, 10, &a), YN_OK);
    assert_int_equal(a.wallet_fen, 5000 - 300 - 500);
    assert_int_equal(a.meals_month, 2);
    assert_int_equal(a.subsidy_month_fen, 3000);
    assert_int_equal(a.n_last, 3);
    assert_int_equal(a.last[0].seq, r3.seq);
    assert_true(a.last[0].reversed);
    assert_int_equal(a.last[0].paid_fen, 1200);
    assert_int_equal(a.last[1].seq, r2.seq);
    assert_false(a.last[1].reversed);
    assert_int_equal(a.last[1].local_ymd, 20250612);
    assert_int_equal(a.last[1].subsidy_fen, 1500);
    assert_int_equal(a.last[1].paid_fen, 500);
    assert_string_equal(a.last[1].terminal, "SZFT0001");
    assert_string_equal(a.last[1].period, "lunch");
    assert_int_equal(a.last[2].local_ymd, DAY);
    /* n_last limits; next month counts from zero */
    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC + 30 * 86400, 1, &a), YN_OK);
    assert_int_equal(a.n_last, 1);
    assert_int_equal(a.month_ym, 202507);
    assert_int_equal(a.meals_month, 0);
    assert_int_equal(a.wallet_fen, 4200);
}

/* ---- settlement ------------------------------------------------------------------------ */

static void test_settle_totals_equal_journal(void **state)
{
    struct fx *f = *state;
    yn_card_facts k = key_card("4403040000000090"), s = senior_card("4403040000000091"),
                  y = senior_card("4403040000000092");
    y.birth_ymd = 19700101; /* 55: no category */
    topup(f, k.card_no, 1000);
    yn_ledger_result r, rk;
    assert_int_equal(debit_at(f, &k, 1800, WED_NOON_UTC, 1001, &rk), YN_OK);
    assert_int_equal(debit_at(f, &s, 1500, WED_NOON_UTC + 10, 1002, &r), YN_OK);
    assert_int_equal(debit_at(f, &y, 1500, WED_NOON_UTC + 20, 1003, &r), YN_OK);
    assert_int_equal(debit_at(f, &s, 900, WED_EVE_UTC, 1004, &r), YN_OK);
    yn_ledger_result rs;
    assert_int_equal(debit_at(f, &s, 1000, WED_NOON_UTC + 30, 1005, &rs), YN_OK); /* period used */
    yn_ledger_when w = at(f, WED_NOON_UTC + 40);
    assert_int_equal(yn_ledger_reverse(f->l, policy, rk.seq, "op1", &w, &r), YN_OK);
    assert_int_equal(yn_ledger_allocate(f->l, "a1", s.card_no, "district", 2000, &w, &r), YN_OK);
    /* another day, not in this settlement */
    assert_int_equal(debit_at(f, &k, 1800, WED_NOON_UTC + 86400, 1006, &r), YN_OK);

    yn_ledger_settlement st;
    assert_int_equal(yn_ledger_settle(f->l, DAY, &st), YN_OK);
    assert_int_equal(st.local_ymd, DAY);
    assert_int_equal(st.meals.count, 5);
    assert_int_equal(st.reversals.count, -1);
    assert_int_equal(st.total.count, 4);
    assert_int_equal(st.total.price_fen, 1500 + 1500 + 900 + 1000);
    assert_int_equal(st.total.subsidy_fen, 500);
    assert_int_equal(st.total.price_fen,
                     st.total.subsidy_fen + st.total.wallet_fen + st.total.cash_fen);
    assert_int_equal(st.allocations.count, 1);
    assert_int_equal(st.allocations.wallet_fen, -2000);
    assert_int_equal(st.topups.count, 1);
    assert_int_equal(st.topups.cash_fen, 1000);
    assert_int_equal(st.first_seq, 1);
    assert_int_equal(st.last_seq, 8);

    /* net sums equal the journal's, computed independently */
    assert_int_equal(st.total.price_fen,
                     sql_i64(f->path, "SELECT SUM(price_fen) FROM journal"
                                      " WHERE local_ymd = 20250611 AND kind IN (1, 2)"));
    assert_int_equal(st.total.cash_fen,
                     sql_i64(f->path, "SELECT SUM(cash_fen) FROM journal"
                                      " WHERE local_ymd = 20250611 AND kind IN (1, 2)"));
    assert_int_equal(st.total.wallet_fen,
                     sql_i64(f->path, "SELECT SUM(wallet_fen) FROM journal"
                                      " WHERE local_ymd = 20250611 AND kind IN (1, 2)"));
    int64_t cat_price = 0, cat_count = 0, per_price = 0, src_fen = 0;
    for (int i = 0; i < st.n_categories; i++) {
        cat_price += st.categories[i].price_fen;
        cat_count += st.categories[i].count;
    }
    for (int i = 0; i < st.n_periods; i++)
        per_price += st.periods[i].price_fen;
    for (int i = 0; i < st.n_sources; i++)
        src_fen += st.sources[i].subsidy_fen;
    assert_int_equal(cat_price, st.total.price_fen);
    assert_int_equal(cat_count, st.total.count);
    assert_int_equal(per_price, st.total.price_fen);
    assert_int_equal(src_fen, st.total.subsidy_fen);
    /* key_group: meal and its reversal net to nothing */
    assert_int_equal(st.n_categories, 3);
    assert_string_equal(st.categories[0].name, "");
    assert_int_equal(st.categories[0].count, 1);
    assert_string_equal(st.categories[1].name, "age_70_99");
    assert_int_equal(st.categories[1].count, 3);
    assert_int_equal(st.categories[1].subsidy_fen, 500);
    assert_string_equal(st.categories[2].name, "key_group");
    assert_int_equal(st.categories[2].count, 0);
    assert_int_equal(st.categories[2].price_fen, 0);
    assert_int_equal(st.n_periods, 2);
    assert_string_equal(st.periods[0].name, "");
    assert_int_equal(st.periods[0].price_fen, 900);
    assert_string_equal(st.periods[1].name, "lunch");
    assert_int_equal(st.n_sources, 1);
    assert_string_equal(st.sources[0].name, "city");
    assert_int_equal(st.sources[0].count, 1);
    assert_int_equal(st.sources[0].subsidy_fen, 500);

    /* CSV, to a stream and atomically to a file */
    char path[700], line[256];
    snprintf(path, sizeof path, "%s/settle.csv", f->dir);
    assert_int_equal(yn_ledger_settle_csv_path(f->l, DAY, path), YN_OK);
    FILE *csv = fopen(path, "r");
    assert_non_null(csv);
    assert_non_null(fgets(line, sizeof line, csv));
    assert_string_equal(line, "local_ymd,section,name,count,price_fen,subsidy_fen,wallet_fen,"
                              "cash_fen\n");
    assert_non_null(fgets(line, sizeof line, csv));
    char expect[256];
    snprintf(expect, sizeof expect, "20250611,total,\"\",4,4900,500,%lld,%lld\n",
             (long long)st.total.wallet_fen, (long long)st.total.cash_fen);
    assert_string_equal(line, expect);
    int lines = 2;
    while (fgets(line, sizeof line, csv))
        lines++;
    fclose(csv);
    assert_int_equal(lines, 2 + 2 + 3 + 2 + 1 + 2);
    snprintf(path, sizeof path, "%s/settle.csv.new", f->dir);
    assert_int_equal(access(path, F_OK), -1);

    /* an empty day */
    assert_int_equal(yn_ledger_settle(f->l, 20250101, &st), YN_OK);
    assert_int_equal(st.total.count, 0);
    assert_int_equal(st.first_seq, 0);
    assert_verifies(f);
}

/* ---- verify --------------------------------------------------------------------------- */

static void make_some_records(struct fx *f)
{
    yn_card_facts a = key_card("4403040000000100"), b = senior_card("4403040000000101");
    topup(f, a.card_no, 1000);
    yn_ledger_result r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(debit_at(f, &a, 1800, WED_NOON_UTC + i * 86400, f->next_tap++, &r), YN_OK);
        assert_int_equal(debit_at(f, &b, 1500, WED_NOON_UTC + i * 86400, f->next_tap++, &r), YN_OK);
    }
}

static void test_verify_detects_tampered_row(void **state)
{
    struct fx *f = *state;
    make_some_records(f);
    assert_verifies(f);
    yn_ledger_verify_report rep;
    /* the triggers refuse edits through a plain connection */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_not_equal(
        sqlite3_exec(db, "UPDATE journal SET cash_fen = 0 WHERE seq = 3", NULL, NULL, NULL),
        SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM journal WHERE seq = 3", NULL, NULL, NULL),
                         SQLITE_OK);
    /* a tamperer drops them, and moves 1 yuan from cash to subsidy on record 4 */
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TRIGGER journal_no_update;"
                                  "UPDATE journal SET cash_fen = cash_fen - 100,"
                                  " subsidy_fen = subsidy_fen + 100, fen1 = fen1 + 100"
                                  " WHERE seq = 4",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(yn_ledger_verify(f->l, &rep), YN_ECORRUPT);
    assert_int_equal(rep.first_bad_seq, 4);
    assert_non_null(strstr(rep.what, "hash"));
    assert_int_equal(rep.records, 7);
}

static void test_verify_detects_missing_row_and_bad_wallet(void **state)
{
    struct fx *f = *state;
    make_some_records(f);
    yn_ledger_verify_report rep;
    sql_exec(f->path, "DROP TRIGGER journal_no_delete; DELETE FROM journal WHERE seq = 5;");
    assert_int_equal(yn_ledger_verify(f->l, &rep), YN_ECORRUPT);
    assert_int_equal(rep.first_bad_seq, 5);
    assert_non_null(strstr(rep.what, "missing"));
    assert_int_equal(rep.records, 6);

    /* a fresh ledger with a wallet changed behind the journal's back */
    struct fx *g = NULL;
    assert_int_equal(setup((void **)&g), 0);
    make_some_records(g);
    sql_exec(g->path, "UPDATE cards SET balance_fen = balance_fen + 10000"
                      " WHERE card_no = '4403040000000100'");
    assert_int_equal(yn_ledger_verify(g->l, &rep), YN_ECORRUPT);
    assert_string_equal(rep.bad_card, "4403040000000100");
    assert_int_equal(rep.first_bad_seq, 0);
    assert_non_null(strstr(rep.what, "wallet"));
    /* or a usage counter */
    sql_exec(g->path, "UPDATE cards SET balance_fen = balance_fen - 10000,"
                      " month_meals = 0 WHERE card_no = '4403040000000100'");
    assert_int_equal(yn_ledger_verify(g->l, &rep), YN_ECORRUPT);
    assert_non_null(strstr(rep.what, "usage"));
    /* or the last tap id a replay is checked against */
    sql_exec(g->path, "UPDATE cards SET month_meals = 3, last_tap = 7"
                      " WHERE card_no = '4403040000000100'");
    assert_int_equal(yn_ledger_verify(g->l, &rep), YN_ECORRUPT);
    assert_string_equal(rep.bad_card, "4403040000000100");
    assert_non_null(strstr(rep.what, "last tap"));
    void *gs = g;
    assert_int_equal(teardown(&gs), 0);
}

/* ---- storage failures ---------------------------------------------------------------- */

static void test_disk_full_writes_nothing(void **state)
{
    struct fx *f = *state;
    make_some_records(f);
    /* a quota of the pages the file has now: soon a debit needs one more */
    yn_ledger_opts o = opts_for(f);
    o.max_pages = sql_i64(f->path, "PRAGMA page_count");
    reopen(f, &o);
    yn_card_facts c = senior_card("4403040000000110");
    topup(f, c.card_no, 100000);
    yn_ledger_result r;
    int st = YN_OK, ok = 0;
    int64_t wallet = 0, count = 0;
    while (st == YN_OK && ok < 100000) {
        wallet = wallet_of(f, c.card_no);
        count = journal_count(f);
        st = debit_at(f, &c, 1000, WED_EVE_UTC + ok, 100000 + ok, &r);
        ok += st == YN_OK;
    }
    assert_int_equal(st, YN_ENOSPC);
    assert_true(ok > 0);
    assert_false(r.decision.allowed);
    assert_int_equal(r.decision.reason, YN_REASON_STORAGE);
    assert_int_equal(r.seq, 0);
    /* nothing of the refused debit: no record, no charge, no tap id */
    assert_int_equal(journal_count(f), count);
    assert_int_equal(wallet_of(f, c.card_no), wallet);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM journal WHERE tap_id = %d", 100000 + ok);
    assert_int_equal(sql_i64(f->path, sql), 0);
    assert_verifies(f);
    /* room again: the same tap goes through */
    o.max_pages = 0;
    reopen(f, &o);
    assert_int_equal(debit_at(f, &c, 1000, WED_EVE_UTC + ok, 100000 + ok, &r), YN_OK);
    assert_int_equal(r.wallet_after_fen, wallet - 1000);
    assert_verifies(f);
}

static void test_read_only_writes_nothing(void **state)
{
    struct fx *f = *state;
    make_some_records(f);
    int64_t count = journal_count(f);
    yn_ledger_opts o = opts_for(f);
    o.read_only = true;
    reopen(f, &o);
    yn_card_facts c = key_card("4403040000000100");
    yn_ledger_result r;
    assert_int_equal(debit(f, &c, 1800, &r), YN_EROFS);
    assert_int_equal(r.decision.reason, YN_REASON_STORAGE);
    assert_false(r.decision.allowed);
    yn_ledger_when w = at(f, WED_NOON_UTC);
    assert_int_equal(yn_ledger_topup(f->l, f->next_tap++, c.card_no, 100, "op1", &w, &r), YN_EROFS);
    assert_int_equal(journal_count(f), count);
    /* reads still work: the kiosk and diagnostics */
    assert_int_equal(wallet_of(f, c.card_no), 1000 - 3 * 300);
    assert_verifies(f);

    /* the file mode 0444 (meaningless to root, who writes anyway) */
    if (geteuid() != 0) {
        o.read_only = false;
        yn_ledger_close(f->l);
        f->l = NULL;
        assert_int_equal(chmod(f->path, 0444), 0);
        int st = yn_ledger_open(&o, &f->l);
        if (st == YN_OK) {
            assert_int_equal(debit(f, &c, 1800, &r), YN_EROFS);
            assert_int_equal(journal_count(f), count);
        } else {
            assert_int_equal(st, YN_EROFS);
        }
        assert_int_equal(chmod(f->path, 0644), 0);
    }
}

static void test_locked_writes_nothing(void **state)
{
    struct fx *f = *state;
    make_some_records(f);
    int64_t count = journal_count(f);
    yn_card_facts c = key_card("4403040000000120");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    yn_ledger_result r;
    assert_int_equal(debit(f, &c, 1800, &r), YN_EBUSY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t waited_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(waited_ms >= 150); /* busy_timeout 200 ms */
    assert_int_equal(r.decision.reason, YN_REASON_STORAGE);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(journal_count(f), count);
    assert_int_equal(debit(f, &c, 1800, &r), YN_OK);
    assert_int_equal(journal_count(f), count + 1);
    assert_verifies(f);
}

/* ---- schema ----------------------------------------------------------------------------- */

static void test_migration_backs_up_first(void **state)
{
    struct fx *f = *state;
    char path[700], bak[720];
    snprintf(path, sizeof path, "%s/old.db", f->dir);
    snprintf(bak, sizeof bak, "%s.v1.bak", path);
    yn_ledger_opts o = {
        .path = path, .terminal_id = "SZFT0001", .boot_id = "b", .schema_target = 1};
    yn_ledger *l = NULL;
    assert_int_equal(yn_ledger_open(&o, &l), YN_OK);
    yn_ledger_result r;
    yn_ledger_when w = {.utc_s = WED_NOON_UTC};
    assert_int_equal(yn_ledger_topup(l, 1, "c", 100, "op", &w, &r), YN_EINVAL); /* close-only */
    yn_ledger_close(l);
    assert_int_equal(sql_i64(path, "PRAGMA user_version"), 1);
    assert_int_equal(access(bak, F_OK), -1);
    /* a v1 ledger with data */
    sql_exec(path, "INSERT INTO meta(key, value) VALUES ('note', 'kept');"
                   "INSERT INTO journal(seq, terminal, card_no, kind, local_ymd, price_fen,"
                   " subsidy_fen, wallet_fen, cash_fen, weight_g, per100g_fen, utc_s, mono_ms,"
                   " boot_no, clock_trusted, policy_version, wallet_after_fen, card_prev_seq,"
                   " prev_hash, hash) VALUES (1, 'SZFT0001', 'c', 4, 20250611, 0, 0, -100, 100,"
                   " 0, 0, 1, 1, 1, 1, 0, 100, 0, zeroblob(32), zeroblob(32)),"
                   " (2, 'SZFT0001', 'c', 4, 20250612, 0, 0, -100, 100,"
                   " 0, 0, 1, 1, 1, 1, 0, 200, 1, zeroblob(32), zeroblob(32));");

    o.schema_target = 0;
    assert_int_equal(yn_ledger_open(&o, &l), YN_OK);
    assert_int_equal(sql_i64(path, "PRAGMA user_version"), yn_ledger_schema_version());
    assert_int_equal(access(bak, F_OK), 0);
    assert_int_equal(sql_i64(bak, "PRAGMA user_version"), 1);
    assert_int_equal(sql_i64(bak, "SELECT COUNT(*) FROM meta WHERE value = 'kept'"), 1);
    assert_int_equal(sql_i64(bak, "SELECT COUNT(*) FROM journal"), 2);
    assert_int_equal(sql_i64(bak, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'day_runs'"), 0);
    /* the upgrade filled the day index from the journal, the steps of v2 and v3 ran */
    assert_int_equal(sql_i64(path, "SELECT COUNT(*) FROM day_runs"), 2);
    assert_int_equal(sql_i64(path, "SELECT COUNT(*) FROM journal"), 2);
    assert_int_equal(sql_i64(path, "SELECT COUNT(*) FROM pragma_table_info('cards')"
                                   " WHERE name = 'last_tap'"),
                     1);
    char v[16];
    assert_int_equal(yn_ledger_meta_get(l, "note", v, sizeof v), YN_OK);
    assert_string_equal(v, "kept");
    yn_ledger_close(l);

    /* a ledger of a newer firmware is not touched */
    sql_exec(path, "PRAGMA user_version = 99");
    assert_int_equal(yn_ledger_open(&o, &l), YN_ENOTSUP);
    /* a file that is not a ledger is not touched either */
    snprintf(path, sizeof path, "%s/other.db", f->dir);
    sql_exec(path, "CREATE TABLE t(x)");
    o.path = path;
    assert_int_equal(yn_ledger_open(&o, &l), YN_ECORRUPT);
    assert_int_equal(sql_i64(path, "SELECT COUNT(*) FROM sqlite_schema"), 1);
}

/* Write r as a v2 ledger would have (its hash chained on prev). */
static void raw_record(sqlite3 *db, yn_ledger_record *r, uint8_t prev[YN_LEDGER_HASH_LEN])
{
    memcpy(r->prev_hash, prev, YN_LEDGER_HASH_LEN);
    yn_ledger_record_hash(r, prev, r->hash);
    memcpy(prev, r->hash, YN_LEDGER_HASH_LEN);
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_prepare_v2(
                         db,
                         "INSERT INTO journal(seq, terminal, tap_id, card_no, kind, category,"
                         " period, local_ymd, price_fen, subsidy_fen, wallet_fen, cash_fen, src1,"
                         " fen1, weight_g, per100g_fen, reason, operator, utc_s, mono_ms, boot_no,"
                         " clock_trusted, ref, policy_version, wallet_after_fen, card_prev_seq,"
                         " prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL, ?6, ?7, ?8,"
                         " ?9, ?10, ?11, ?12, 0, 0, ?13, ?14, ?15, ?16, 1, 1, ?17, 0, ?18, ?19,"
                         " ?20, ?21)",
                         -1, &s, NULL),
                     SQLITE_OK);
    sqlite3_bind_int64(s, 1, r->seq);
    sqlite3_bind_text(s, 2, r->terminal, -1, SQLITE_STATIC);
    if (r->tap_id)
        sqlite3_bind_int64(s, 3, r->tap_id);
    sqlite3_bind_text(s, 4, r->card_no, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 5, r->kind);
    sqlite3_bind_int(s, 6, r->local_ymd);
    sqlite3_bind_int64(s, 7, r->price_fen);
    sqlite3_bind_int64(s, 8, r->subsidy_fen);
    sqlite3_bind_int64(s, 9, r->wallet_fen);
    sqlite3_bind_int64(s, 10, r->cash_fen);
    if (r->n_layers) {
        sqlite3_bind_text(s, 11, r->layers[0].source, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 12, r->layers[0].fen);
    }
    if (r->reason != YN_REASON_NONE)
        sqlite3_bind_text(s, 13, yn_reason_code(r->reason), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 14, r->operator_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 15, r->utc_s);
    sqlite3_bind_int64(s, 16, r->mono_ms);
    if (r->ref[0])
        sqlite3_bind_text(s, 17, r->ref, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 18, r->wallet_after_fen);
    sqlite3_bind_int64(s, 19, r->card_prev_seq);
    sqlite3_bind_blob(s, 20, r->prev_hash, YN_LEDGER_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(s, 21, r->hash, YN_LEDGER_HASH_LEN, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(s), SQLITE_DONE);
    sqlite3_finalize(s);
}

/* v2 -> v3: the tap_id index goes, each card's last tap id comes from the
 * journal, tap ids of the old records (which did not have to increase) stay
 * valid as they were, and the v2 file is kept as a backup first. */
static void test_migration_v2_to_v3(void **state)
{
    struct fx *f = *state;
    char path[600], bak[720];
    snprintf(path, sizeof path, "%s/v2.db", f->dir);
    snprintf(bak, sizeof bak, "%s.v2.bak", path);
    yn_ledger_opts o = opts_for(f);
    o.path = path;
    o.schema_target = 2;
    yn_ledger *l = NULL;
    assert_int_equal(yn_ledger_open(&o, &l), YN_OK);
    yn_ledger_close(l);
    assert_int_equal(sql_i64(path, "PRAGMA user_version"), 2);
    assert_int_equal(sql_i64(path, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index'"
                                   " AND tbl_name = 'journal'"),
                     2); /* tap_id's and reverses_seq's */

    /* v2 ids did not have to increase: A top-up 500, B meal 100, A allocation, A meal 50 */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    uint8_t prev[YN_LEDGER_HASH_LEN] = {0};
    static const struct {
        int64_t tap;
        const char *card;
        int kind;
        int64_t price, subsidy, wallet, cash, after, card_prev;
    } rows[] = {
        {500, "A", YN_LEDGER_TOPUP, 0, 0, -1000, 1000, 1000, 0},
        {100, "B", YN_LEDGER_MEAL, 1200, 0, 0, 1200, 0, 0},
        {0, "A", YN_LEDGER_ALLOCATION, 0, 300, -300, 0, 1300, 1},
        {50, "A", YN_LEDGER_MEAL, 1000, 0, 1000, 0, 300, 3},
    };
    for (int i = 0; i < 4; i++) {
        yn_ledger_record r;
        memset(&r, 0, sizeof r);
        r.seq = i + 1;
        strcpy(r.terminal, "SZFT0001");
        r.tap_id = rows[i].tap;
        strcpy(r.card_no, rows[i].card);
        r.kind = rows[i].kind;
        r.local_ymd = DAY;
        r.price_fen = rows[i].price;
        r.subsidy_fen = rows[i].subsidy;
        r.wallet_fen = rows[i].wallet;
        r.cash_fen = rows[i].cash;
        if (r.kind == YN_LEDGER_ALLOCATION) {
            r.n_layers = 1;
            strcpy(r.layers[0].source, "district");
            r.layers[0].fen = r.subsidy_fen;
            strcpy(r.ref, "alloc-1");
        }
        if (r.kind == YN_LEDGER_MEAL)
            r.reason = YN_REASON_NO_PERIOD;
        strcpy(r.operator_id, "op1");
        r.utc_s = WED_EVE_UTC + i;
        r.mono_ms = 1000 + i;
        r.boot_no = 1;
        r.clock_trusted = true;
        r.wallet_after_fen = rows[i].after;
        r.card_prev_seq = rows[i].card_prev;
        raw_record(db, &r, prev);
    }
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO allocations(id, seq) VALUES ('alloc-1', 3);"
                     "INSERT INTO day_runs(first_seq, local_ymd) VALUES (1, 20250611);"
                     "INSERT INTO cards(card_no, balance_fen, last_seq, meal_seq, meal_utc_s)"
                     " VALUES ('A', 300, 4, 4, 1749636003), ('B', 0, 2, 2, 1749636001);"
                     "COMMIT",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    o.schema_target = 0;
    assert_int_equal(yn_ledger_open(&o, &l), YN_OK);
    /* the backup is the v2 file as it was, index and all */
    assert_int_equal(access(bak, F_OK), 0);
    assert_int_equal(sql_i64(bak, "PRAGMA user_version"), 2);
    assert_int_equal(sql_i64(bak, "SELECT COUNT(*) FROM journal"), 4);
    assert_int_equal(sql_i64(bak, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index'"
                                  " AND tbl_name = 'journal'"),
                     2);
    /* the upgraded file: no tap_id index, the reversal index and the triggers back */
    assert_int_equal(sql_i64(path, "PRAGMA user_version"), yn_ledger_schema_version());
    assert_int_equal(sql_i64(path, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index'"
                                   " AND tbl_name = 'journal'"),
                     1);
    assert_int_equal(sql_i64(path, "SELECT COUNT(*) FROM sqlite_schema WHERE name ="
                                   " 'journal_reverses'"),
                     1);
    assert_int_equal(sql_i64(path, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'trigger'"
                                   " AND tbl_name = 'journal'"),
                     2);
    assert_int_equal(sql_i64(path, "SELECT COUNT(*) FROM journal"), 4);
    assert_int_equal(sql_i64(path, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'journal_v3'"),
                     0);
    assert_int_equal(sql_i64(path, "SELECT last_tap FROM cards WHERE card_no = 'A'"), 50);
    assert_int_equal(sql_i64(path, "SELECT last_tap FROM cards WHERE card_no = 'B'"), 100);
    assert_int_equal(sql_i64(path, "SELECT value FROM meta WHERE key = 'tap_id_floor'"), 500);
    assert_int_equal(sql_i64(path, "SELECT value FROM meta WHERE key ="
                                   " 'tap_ids_increase_after_seq'"),
                     4);
    assert_int_equal(sql_i64(path, "SELECT integrity_check = 'ok' FROM pragma_integrity_check"), 1);
    assert_int_equal(sql_i64(path, "SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);

    yn_ledger_close(f->l);
    f->l = l;
    snprintf(f->path, sizeof f->path, "%s", path);
    assert_verifies(f);
    /* the old records' ids count as seen; each card's last is its replay */
    yn_card_facts a = senior_card("A"), b = senior_card("B");
    yn_ledger_result r;
    assert_int_equal(debit_at(f, &b, 1000, WED_EVE_UTC + 10, 500, &r), YN_EINVAL);
    assert_int_equal(debit_at(f, &b, 1000, WED_EVE_UTC + 10, 499, &r), YN_EINVAL);
    assert_int_equal(debit_at(f, &a, 1000, WED_EVE_UTC + 10, 50, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, 4);
    assert_int_equal(r.wallet_after_fen, 300);
    assert_int_equal(debit_at(f, &b, 1000, WED_EVE_UTC + 10, 100, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, 2);
    assert_int_equal(journal_count(f), 4);
    assert_int_equal(debit_at(f, &b, 1000, WED_EVE_UTC + 10, 501, &r), YN_OK);
    assert_int_equal(r.seq, 5);
    /* the append-only triggers and the foreign keys hold on the rebuilt journal */
    yn_ledger_when w = at(f, WED_EVE_UTC + 20);
    yn_ledger_result rv;
    assert_int_equal(yn_ledger_reverse(f->l, policy, 5, "op2", &w, &rv), YN_OK);
    assert_int_equal(yn_ledger_reverse(f->l, policy, 5, "op2", &w, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, rv.seq);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_not_equal(
        sqlite3_exec(db, "UPDATE journal SET cash_fen = 0 WHERE seq = 1", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(yn_ledger_topup(f->l, 502, "A", 100, "op1", &w, &r), YN_OK);
    assert_int_equal(r.wallet_after_fen, 400);
    assert_verifies(f);
    /* opening again does not upgrade or back up again */
    assert_int_equal(unlink(bak), 0);
    yn_ledger_opts again = opts_for(f);
    reopen(f, &again);
    assert_int_equal(access(bak, F_OK), -1);
    assert_int_equal(debit_at(f, &a, 1000, WED_EVE_UTC + 30, 502, &r), YN_EDUPLICATE);
    /* verify holds the records after the upgrade to increasing ids, only them */
    sql_exec(f->path, "UPDATE meta SET value = '1' WHERE key = 'tap_ids_increase_after_seq'");
    yn_ledger_verify_report rep;
    assert_int_equal(yn_ledger_verify(f->l, &rep), YN_ECORRUPT);
    assert_int_equal(rep.first_bad_seq, 2);
    assert_non_null(strstr(rep.what, "tap id"));
}

/* ---- district updates, sync ------------------------------------------------------------ */

static void test_policy_store_and_active(void **state)
{
    struct fx *f = *state;
    char path[1024], err[256], id[64];
    const char *src = getenv("YN_SRCDIR");
    snprintf(path, sizeof path, "%s/firmware/policies/shenzhen-2025.json", src ? src : ".");
    FILE *in = fopen(path, "rb");
    assert_non_null(in);
    static char doc[1 << 16];
    size_t n = fread(doc, 1, sizeof doc - 1, in);
    fclose(in);
    doc[n] = '\0';

    char *json = NULL;
    size_t len = 0;
    int64_t version = 0;
    assert_int_equal(yn_ledger_policy_active(f->l, &json, &len, id, sizeof id, &version),
                     YN_ENOTFOUND);
    assert_int_equal(yn_ledger_policy_store(f->l, doc, n, true, err, sizeof err), YN_OK);
    assert_int_equal(yn_ledger_policy_active(f->l, &json, &len, id, sizeof id, &version), YN_OK);
    assert_int_equal(len, n);
    assert_memory_equal(json, doc, n);
    assert_string_equal(id, "shenzhen-2025");
    assert_int_equal(version, 1);
    free(json);
    assert_int_equal(yn_ledger_policy_store(f->l, doc, n, true, err, sizeof err), YN_EDUPLICATE);
    assert_int_equal(yn_ledger_policy_store(f->l, "{\"format\": 1}", 13, true, err, sizeof err),
                     YN_EINVAL);
    assert_true(strlen(err) > 0);
    assert_int_equal(sql_i64(f->path, "SELECT COUNT(*) FROM policies"), 1);
}

/* ---- update documents: one transaction ------------------------------------------- */

static size_t read_policy_doc(char *doc, size_t size)
{
    char path[1024];
    const char *src = getenv("YN_SRCDIR");
    snprintf(path, sizeof path, "%s/firmware/policies/shenzhen-2025.json", src ? src : ".");
    FILE *in = fopen(path, "rb");
    assert_non_null(in);
    size_t n = fread(doc, 1, size - 1, in);
    fclose(in);
    doc[n] = '\0';
    return n;
}

/* Counts that show what an update left in the file. */
static int64_t update_traces(struct fx *f)
{
    return sql_i64(f->path, "SELECT (SELECT COUNT(*) FROM journal) * 1000000"
                            " + (SELECT COUNT(*) FROM roster) * 10000"
                            " + (SELECT COUNT(*) FROM allocations) * 100"
                            " + (SELECT COUNT(*) FROM policies) * 10"
                            " + (SELECT COUNT(*) FROM meta WHERE key IN ('doc_version',"
                            " 'roster_version', 'blacklist_seq'))");
}

static void test_apply_update_all_or_nothing(void **state)
{
    struct fx *f = *state;
    static char doc[1 << 16];
    size_t n = read_policy_doc(doc, sizeof doc);
    yn_card_facts cards[2] = {key_card("4403040000000301"), senior_card("4403040000000302")};
    yn_ledger_alloc allocs[2] = {{"A-1", "4403040000000301", "district", 3000},
                                 {"A-2", "4403040000000302", "district", 2000}};
    /* the last part fails: seq 8 after 9 */
    yn_ledger_blacklist_entry bl[2] = {{.seq = 9, .card_no = "4403040000000303", .lost = true},
                                       {.seq = 8, .card_no = "4403040000000304", .lost = true}};
    yn_ledger_meta_kv kv[1] = {{"doc_version", "1"}};
    yn_ledger_update u = {.cards = cards,
                          .n_cards = 2,
                          .roster_version = 5,
                          .blacklist = bl,
                          .n_blacklist = 2,
                          .allocs = allocs,
                          .n_allocs = 2,
                          .alloc_when = at(f, WED_NOON_UTC),
                          .policy_json = doc,
                          .policy_len = n,
                          .policy_activate = true,
                          .meta = kv,
                          .n_meta = 1};
    char err[200], v[32];
    int64_t before = update_traces(f);
    assert_int_equal(yn_ledger_apply_update(f->l, &u, err, sizeof err), YN_ESTALE);
    assert_true(strlen(err) > 0);
    assert_int_equal(update_traces(f), before); /* roster, allocations, policy, meta: none */
    assert_int_equal(journal_count(f), 0);
    assert_int_equal(wallet_of(f, "4403040000000301"), 0);
    assert_int_equal(yn_ledger_meta_get(f->l, "doc_version", v, sizeof v), YN_ENOTFOUND);

    /* a bad policy document: nothing either */
    bl[1].seq = 10;
    u.policy_json = "{\"format\": 1}";
    u.policy_len = 13;
    assert_int_equal(yn_ledger_apply_update(f->l, &u, err, sizeof err), YN_EINVAL);
    assert_int_equal(update_traces(f), before);

    /* the normal path: everything, in one commit */
    u.policy_json = doc;
    u.policy_len = n;
    assert_int_equal(yn_ledger_apply_update(f->l, &u, err, sizeof err), YN_OK);
    assert_int_equal(sql_i64(f->path, "SELECT COUNT(*) FROM roster WHERE version = 5"), 2);
    assert_int_equal(wallet_of(f, "4403040000000301"), 3000);
    assert_int_equal(wallet_of(f, "4403040000000302"), 2000);
    assert_int_equal(journal_count(f), 2);
    int64_t seq;
    assert_int_equal(yn_ledger_blacklist_seq(f->l, &seq), YN_OK);
    assert_int_equal(seq, 10);
    assert_int_equal(sql_i64(f->path, "SELECT COUNT(*) FROM blacklist WHERE lost = 1"), 2);
    assert_int_equal(sql_i64(f->path, "SELECT COUNT(*) FROM policies WHERE active = 1"), 1);
    assert_int_equal(yn_ledger_meta_get(f->l, "doc_version", v, sizeof v), YN_OK);
    assert_string_equal(v, "1");

    /* the same document again (a lost reply): applied parts skipped, no error */
    kv[0].value = "2";
    assert_int_equal(yn_ledger_apply_update(f->l, &u, err, sizeof err), YN_OK);
    assert_int_equal(journal_count(f), 2);
    assert_int_equal(wallet_of(f, "4403040000000301"), 3000);
    assert_int_equal(yn_ledger_meta_get(f->l, "doc_version", v, sizeof v), YN_OK);
    assert_string_equal(v, "2");
    /* the counter's handle keeps a good head: a debit after it chains on */
    yn_ledger_result r;
    assert_int_equal(debit(f, &cards[0], 1200, &r), YN_OK);
    assert_int_equal(r.seq, 3);
    assert_verifies(f);
}

/* ---- offline cap -------------------------------------------------------------------- */

/* shenzhen-2025 without the one-meal-per-lunch limit: several subsidised meals a day. */
static yn_policy *policy_no_limits(void)
{
    static char doc[1 << 16];
    size_t n = read_policy_doc(doc, sizeof doc);
    char *limit = strstr(doc, "\"per_period\": 1");
    assert_non_null(limit);
    memcpy(limit, "\"per_month\": 99", strlen("\"per_month\": 99")); /* same length */
    yn_policy *p = NULL;
    char err[256];
    assert_int_equal(yn_policy_load(doc, n, &p, err, sizeof err), YN_OK);
    return p;
}

static int debit_with(struct fx *f, const yn_policy *p, const yn_card_facts *c, int64_t price_fen,
                      int64_t utc_s, yn_ledger_result *r)
{
    yn_meal meal = {.price_fen = price_fen};
    yn_ledger_tap tap = {.tap_id = f->next_tap++,
                         .card = c,
                         .meal = &meal,
                         .canteen = &canteen,
                         .operator_id = "op1",
                         .when = at(f, utc_s)};
    return yn_ledger_debit(f->l, p, &tap, r);
}

static void synced_at(struct fx *f, int64_t utc_s)
{
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)utc_s);
    assert_int_equal(yn_ledger_meta_put(f->l, "last_sync_utc_s", v), YN_OK);
}

static void test_offline_cap(void **state)
{
    struct fx *f = *state;
    yn_ledger_opts o = opts_for(f);
    o.offline_cap_fen = 2000;
    o.offline_after_s = 900;
    reopen(f, &o);
    yn_policy *p = policy_no_limits();
    yn_card_facts c = key_card("4403040000000401"); /* 1500 fen a meal */
    topup(f, c.card_no, 10000);
    yn_ledger_result r;
    const int64_t t = WED_NOON_UTC;

    /* never synced since the ledger was made: offline. 1500, then the rest of
     * the cap (500, the cut 1000 paid from the wallet), then nothing */
    assert_int_equal(debit_with(f, p, &c, 1800, t, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(r.decision.wallet_fen, 300);
    assert_int_equal(debit_with(f, p, &c, 1800, t + 60, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 500);
    assert_int_equal(r.decision.layers[0].fen, 500);
    assert_int_equal(r.decision.wallet_fen, 1300);
    assert_int_equal(r.decision.reason, YN_REASON_NONE);
    assert_int_equal(debit_with(f, p, &c, 1800, t + 120, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 0);
    assert_int_equal(r.decision.n_layers, 0);
    assert_int_equal(r.decision.wallet_fen, 1800);
    assert_int_equal(r.decision.reason, YN_REASON_MONTH_CAP);
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, r.seq, &rec), YN_OK);
    assert_int_equal(rec.reason, YN_REASON_MONTH_CAP);
    assert_int_equal(wallet_of(f, c.card_no), 10000 - 300 - 1300 - 1800);

    /* a sync: online, uncapped (the day's subsidy goes above the cap) */
    synced_at(f, t + 150);
    assert_int_equal(debit_with(f, p, &c, 1800, t + 180, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(debit_with(f, p, &c, 1800, t + 240, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);

    /* next day, no sync since: offline again, and the wallet is empty: cash */
    yn_card_facts d = key_card("4403040000000402");
    assert_int_equal(debit_with(f, p, &d, 1800, t + 86400, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(r.decision.cash_fen, 300);
    assert_int_equal(debit_with(f, p, &d, 1800, t + 86400 + 60, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 500);
    assert_int_equal(r.decision.cash_fen, 1300);
    /* a reversal gives the day's subsidy back */
    yn_ledger_when w = at(f, t + 86400 + 90);
    yn_ledger_result rev;
    assert_int_equal(yn_ledger_reverse(f->l, p, r.seq, "op1", &w, &rev), YN_OK);
    assert_int_equal(debit_with(f, p, &d, 1800, t + 86400 + 120, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 500);
    /* back online: uncapped */
    synced_at(f, t + 86400 + 130);
    assert_int_equal(debit_with(f, p, &d, 1800, t + 86400 + 180, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    /* no cap configured: uncapped while offline */
    o.offline_cap_fen = 0;
    reopen(f, &o);
    assert_int_equal(debit_with(f, p, &d, 1800, t + 2 * 86400, &r), YN_OK);
    assert_int_equal(debit_with(f, p, &d, 1800, t + 2 * 86400 + 60, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_verifies(f);
    assert_int_equal(sql_i64(f->path, "SELECT day_subsidy_fen FROM cards"
                                      " WHERE card_no = '4403040000000402'"),
                     3000);
    yn_policy_free(p);
}

static void test_batches_and_unsent(void **state)
{
    struct fx *f = *state;
    int64_t count, age;
    assert_int_equal(yn_ledger_unsent(f->l, WED_NOON_UTC, &count, &age), YN_OK);
    assert_int_equal(count, 0);
    assert_int_equal(age, 0);
    yn_ledger_batch b;
    assert_int_equal(yn_ledger_batch_next(f->l, 100, WED_NOON_UTC, &b), YN_ENOTFOUND);
    yn_card_facts c = senior_card("4403040000000130");
    yn_ledger_result r;
    for (int i = 0; i < 3; i++)
        assert_int_equal(debit_at(f, &c, 1000, WED_NOON_UTC + 100 * i, 1 + i, &r), YN_OK);
    assert_int_equal(yn_ledger_unsent(f->l, WED_NOON_UTC + 1000, &count, &age), YN_OK);
    assert_int_equal(count, 3);
    assert_int_equal(age, 1000);

    assert_int_equal(yn_ledger_batch_next(f->l, 2, WED_NOON_UTC + 1000, &b), YN_OK);
    assert_int_equal(b.id, 1);
    assert_int_equal(b.first_seq, 1);
    assert_int_equal(b.last_seq, 2);
    yn_ledger_batch again;
    assert_int_equal(yn_ledger_batch_next(f->l, 2, WED_NOON_UTC + 1001, &again), YN_OK);
    assert_int_equal(again.id, 1); /* resent until acknowledged */
    assert_int_equal(again.last_seq, 2);
    assert_int_equal(yn_ledger_batch_ack(f->l, 1, WED_NOON_UTC + 1002), YN_OK);
    assert_int_equal(yn_ledger_batch_ack(f->l, 1, WED_NOON_UTC + 1002), YN_EDUPLICATE);
    assert_int_equal(yn_ledger_batch_ack(f->l, 9, WED_NOON_UTC + 1002), YN_ENOTFOUND);
    assert_int_equal(yn_ledger_unsent(f->l, WED_NOON_UTC + 1000, &count, &age), YN_OK);
    assert_int_equal(count, 1);
    assert_int_equal(age, 800);
    assert_int_equal(yn_ledger_batch_next(f->l, 2, WED_NOON_UTC + 1003, &b), YN_OK);
    assert_int_equal(b.id, 2);
    assert_int_equal(b.first_seq, 3);
    assert_int_equal(b.last_seq, 3);
    assert_int_equal(yn_ledger_batch_ack(f->l, 2, WED_NOON_UTC + 1004), YN_OK);
    assert_int_equal(yn_ledger_batch_next(f->l, 2, WED_NOON_UTC + 1005, &b), YN_ENOTFOUND);
    char v[32];
    assert_int_equal(yn_ledger_meta_get(f->l, "last_sync_utc_s", v, sizeof v), YN_OK);
    assert_int_equal(atoll(v), WED_NOON_UTC + 1004);
    assert_int_equal(yn_ledger_meta_put(f->l, "note", "x"), YN_OK);
    assert_int_equal(yn_ledger_checkpoint(f->l), YN_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_open_sets_up_schema_and_identity),
        T(test_debit_subsidised_meal),
        T(test_debit_weighed_meal),
        T(test_replayed_tap_returns_original),
        T(test_tap_ids_increase),
        T(test_topup_tap_ids),
        T(test_two_handles_one_chain),
        T(test_second_meal_in_period_full_price),
        T(test_too_soon),
        T(test_blacklisted_card_refused),
        T(test_roster_overrides_card),
        T(test_usage_floor_from_card),
        T(test_before_commit_hook),
        T(test_reverse),
        T(test_reverse_outside_window),
        T(test_allocate_twice),
        T(test_balance),
        T(test_settle_totals_equal_journal),
        T(test_verify_detects_tampered_row),
        T(test_verify_detects_missing_row_and_bad_wallet),
        T(test_disk_full_writes_nothing),
        T(test_read_only_writes_nothing),
        T(test_locked_writes_nothing),
        T(test_migration_backs_up_first),
        T(test_migration_v2_to_v3),
        T(test_policy_store_and_active),
        T(test_apply_update_all_or_nothing),
        T(test_offline_cap),
        T(test_batches_and_unsent),
#undef T
    };
    return cmocka_run_group_tests_name("ledger", tests, group_setup, group_teardown);
}
