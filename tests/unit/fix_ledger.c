/* fix_ledger.c — the ledger tests' shared fixture (fix_ledger.h). */
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
#include <unistd.h>

#include "fix_ledger.h"
#include "log.h"
#include "testutil.h"

yn_policy *lf_policy;
yn_policy *lf_policy_ident;

/* ---- fixtures ------------------------------------------------------------- */

int lf_group_setup(void **state)
{
    (void)state;
    const char *src = getenv("YN_SRCDIR");
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/firmware/policies/shenzhen-2025.json", src ? src : ".");
    if (yn_policy_load_file(path, &lf_policy, err, sizeof err) != YN_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, err);
        return -1;
    }
    if (!(lf_policy_ident = yn_test_policy_ident(2)))
        return -1;
    yn_log_quiet(true); /* refusals and provoked failures log on purpose */
    return 0;
}

int lf_group_teardown(void **state)
{
    (void)state;
    yn_policy_free(lf_policy);
    yn_policy_free(lf_policy_ident);
    return 0;
}

yn_ledger_opts lf_opts_for(const struct fx *f)
{
    yn_ledger_opts o = {
        .path = f->path, .terminal_id = "SZFT0001", .boot_id = "boot-a", .busy_timeout_ms = 200};
    return o;
}

int lf_setup(void **state)
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
    yn_ledger_opts o = lf_opts_for(f);
    if (yn_ledger_open(&o, &f->l) != YN_OK) {
        free(f);
        return -1;
    }
    f->next_tap = 1000;
    f->mono_ms = 5000000;
    *state = f;
    return 0;
}

int lf_teardown(void **state)
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

void lf_reopen(struct fx *f, const yn_ledger_opts *o)
{
    yn_ledger_close(f->l);
    f->l = NULL;
    assert_int_equal(yn_ledger_open(o, &f->l), YN_OK);
}

/* ---- cards and taps --------------------------------------------------------- */

/* 80 years old, 低保, living in the canteen's district: 15 yuan of city subsidy. */
yn_card_facts lf_key_card(const char *no)
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
yn_card_facts lf_senior_card(const char *no)
{
    yn_card_facts c = lf_key_card(no);
    c.birth_ymd = 19500101;
    c.flags = 0;
    return c;
}

const yn_canteen lf_canteen = {.district = HOME_DISTRICT, .street = HOME_STREET};

yn_ledger_when lf_at(struct fx *f, int64_t utc_s)
{
    f->mono_ms += 1000;
    yn_ledger_when w = {.utc_s = utc_s, .mono_ms = f->mono_ms, .clock_trusted = true};
    return w;
}

int lf_debit_at(struct fx *f, const yn_card_facts *c, int64_t price_fen, int64_t utc_s,
                int64_t tap_id, yn_ledger_result *r)
{
    yn_meal meal = {.price_fen = price_fen};
    yn_ledger_tap tap = {.tap_id = tap_id,
                         .card = c,
                         .meal = &meal,
                         .canteen = &lf_canteen,
                         .operator_id = "op1",
                         .when = lf_at(f, utc_s)};
    return yn_ledger_debit(f->l, lf_policy, &tap, r);
}

int lf_debit_by(struct fx *f, int by, const char *card_no, const char *ident,
                const char *operator_id, const char *supervisor_id, int64_t utc_s,
                yn_ledger_result *r)
{
    yn_card_facts c = {0}; /* nothing read from a card: the roster says it all */
    snprintf(c.card_no, sizeof c.card_no, "%s", card_no);
    yn_meal meal = {.price_fen = 1500};
    yn_ledger_tap tap = {.tap_id = f->next_tap++,
                         .card = &c,
                         .meal = &meal,
                         .canteen = &lf_canteen,
                         .operator_id = operator_id,
                         .when = lf_at(f, utc_s),
                         .by = by,
                         .ident = ident,
                         .supervisor_id = supervisor_id};
    return yn_ledger_debit(f->l, lf_policy_ident, &tap, r);
}

void lf_roster(struct fx *f, const char *card_no, const char *ident, int64_t version)
{
    yn_card_facts c = lf_key_card(card_no);
    snprintf(c.ident, sizeof c.ident, "%s", ident);
    assert_int_equal(yn_ledger_roster_put(f->l, &c, 1, version), YN_OK);
}

int lf_debit(struct fx *f, const yn_card_facts *c, int64_t price_fen, yn_ledger_result *r)
{
    int64_t tap_id = f->next_tap++;
    return lf_debit_at(f, c, price_fen, WED_NOON_UTC + tap_id, tap_id, r);
}

void lf_topup(struct fx *f, const char *card_no, int64_t fen)
{
    yn_ledger_result r;
    yn_ledger_when w = lf_at(f, WED_NOON_UTC - 3600);
    assert_int_equal(yn_ledger_topup(f->l, f->next_tap++, card_no, fen, "op1", &w, &r), YN_OK);
}

void lf_sell(struct fx *f, int n)
{
    yn_card_facts a = lf_key_card("4403040000000100"), b = lf_senior_card("4403040000000101");
    yn_ledger_result r;
    for (int i = 0; i < n; i++)
        assert_int_equal(lf_debit(f, i % 2 ? &b : &a, 1500, &r), YN_OK);
}

/* ---- what the ledger logs -------------------------------------------------------- */

char lf_log_path[700];
int lf_saved_stderr = -1;

/* Send the log (stderr) to a file until log_end(), which returns it (static). */
void lf_log_begin(const struct fx *f)
{
    snprintf(lf_log_path, sizeof lf_log_path, "%s/log.txt", f->dir);
    fflush(stderr);
    lf_saved_stderr = dup(2);
    int fd = open(lf_log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(lf_saved_stderr >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    yn_log_quiet(false);
}

const char *lf_log_end(void)
{
    static char text[8192];
    fflush(stderr);
    yn_log_quiet(true);
    dup2(lf_saved_stderr, 2);
    close(lf_saved_stderr);
    FILE *in = fopen(lf_log_path, "r");
    assert_non_null(in);
    size_t n = fread(text, 1, sizeof text - 1, in);
    fclose(in);
    text[n] = '\0';
    return text;
}

/* ---- raw SQL views of the file (a second connection) --------------------------- */

int64_t lf_sql_i64(const char *path, const char *sql)
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

void lf_sql_exec(const char *path, const char *sql)
{
    sqlite3 *db;
    char *err = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, err);
    sqlite3_close(db);
}

void lf_tamper(struct fx *f, int64_t seq, int64_t fen)
{
    char sql[256];
    snprintf(
        sql, sizeof sql,
        "DROP TRIGGER IF EXISTS journal_no_update; UPDATE journal SET cash_fen = cash_fen + %lld,"
        " price_fen = price_fen + %lld WHERE seq = %lld",
        (long long)fen, (long long)fen, (long long)seq);
    lf_sql_exec(f->path, sql);
}

int64_t lf_journal_count(struct fx *f)
{
    return lf_sql_i64(f->path, "SELECT COUNT(*) FROM journal");
}

int64_t lf_wallet_of(struct fx *f, const char *card_no)
{
    yn_ledger_account a;
    assert_int_equal(yn_ledger_balance(f->l, card_no, WED_NOON_UTC, 0, &a), YN_OK);
    return a.wallet_fen;
}

void lf_assert_verifies(struct fx *f)
{
    yn_ledger_verify_report rep;
    int st = yn_ledger_verify(f->l, &rep);
    if (st != YN_OK)
        fail_msg("verify: seq %lld card %s: %s", (long long)rep.first_bad_seq, rep.bad_card,
                 rep.what);
    assert_int_equal(rep.records, lf_journal_count(f));
    assert_int_equal(
        lf_sql_i64(f->path, "SELECT integrity_check = 'ok' FROM pragma_integrity_check"), 1);
}

/* Six meals of two cards over three days, after a top-up. */
void lf_make_some_records(struct fx *f)
{
    yn_card_facts a = lf_key_card("4403040000000100"), b = lf_senior_card("4403040000000101");
    lf_topup(f, a.card_no, 1000);
    yn_ledger_result r;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(lf_debit_at(f, &a, 1800, WED_NOON_UTC + i * 86400, f->next_tap++, &r),
                         YN_OK);
        assert_int_equal(lf_debit_at(f, &b, 1500, WED_NOON_UTC + i * 86400, f->next_tap++, &r),
                         YN_OK);
    }
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_true(in && out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

void lf_snapshot(struct fx *f, const char *to)
{
    yn_ledger_opts o = lf_opts_for(f);
    yn_ledger_close(f->l); /* the last connection: WAL checkpointed and removed */
    copy_file(f->path, to);
    assert_int_equal(yn_ledger_open(&o, &f->l), YN_OK);
}

void lf_put_back(struct fx *f, const char *from)
{
    yn_ledger_opts o = lf_opts_for(f);
    char wal[700];
    yn_ledger_close(f->l);
    copy_file(from, f->path);
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    (void)unlink(wal);
    assert_int_equal(yn_ledger_open(&o, &f->l), YN_OK);
}

yn_ledger_record *lf_lose_records(struct fx *f, int kept, int lost)
{
    char older[700];
    snprintf(older, sizeof older, "%s/older.db", f->dir);
    lf_sell(f, kept);
    lf_snapshot(f, older);
    lf_sell(f, lost);
    assert_int_equal(yn_ledger_mark_raise(f->l, kept + lost), YN_OK);
    yn_ledger_record *district = calloc((size_t)lost, sizeof *district);
    assert_non_null(district);
    for (int i = 0; i < lost; i++)
        assert_int_equal(yn_ledger_record_get(f->l, kept + 1 + i, &district[i]), YN_OK);
    lf_put_back(f, older);
    return district;
}

char *lf_cards_text(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *s;
    char *text = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT group_concat(card_no || ':' || balance_fen || ':' ||"
                           " last_seq || ':' || meal_seq || ':' || month_ym || ':' ||"
                           " month_meals || ':' || month_subsidy_fen || ':' || day_ymd"
                           " || ':' || day_meals || ':' || period || ':' ||"
                           " period_meals || ':' || last_tap || ':' ||"
                           " day_subsidy_fen || ':' || meal_utc_s, ' ')"
                           " FROM (SELECT * FROM cards ORDER BY card_no)",
                           -1, &s, NULL),
        SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        text = strdup((const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    assert_non_null(text);
    return text;
}

/* The Shenzhen 2025 policy document as text (NUL-terminated); its length. */
size_t lf_read_policy_doc(char *doc, size_t size)
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
