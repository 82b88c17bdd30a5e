/* test_ledger.c — the ledger core on real SQLite files: opening and identity, two handles
 * on one chain, storage failures provoked for real (page quota, read-only, a
 * lock held by another connection) with nothing half-written, and the backup
 * taken before a schema upgrade. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fileio.h"
#include "fix_ledger.h"
#include "ledger.h"
#include "log.h"
#include "policy.h"

/* ---- open --------------------------------------------------------------------------- */
static void test_open_sets_up_schema_and_identity(void **state)
{
    struct fx *f = *state;
    assert_int_equal(lf_sql_i64(f->path, "PRAGMA user_version"), yn_ledger_schema_version());
    assert_int_equal(yn_ledger_schema_version(), 6);
    assert_int_equal(lf_sql_i64(f->path, "SELECT journal_mode = 'wal' FROM pragma_journal_mode"),
                     1);
    char v[64];
    assert_int_equal(yn_ledger_meta_get(f->l, "terminal_id", v, sizeof v), YN_OK);
    assert_string_equal(v, "SZFT0001");
    assert_int_equal(yn_ledger_meta_get(f->l, "boot_no", v, sizeof v), YN_OK);
    assert_string_equal(v, "1");
    assert_int_equal(yn_ledger_meta_get(f->l, "no_such_key", v, sizeof v), YN_ENOTFOUND);

    /* same boot: same number; a new boot id: the next number */
    yn_ledger_opts o = lf_opts_for(f);
    lf_reopen(f, &o);
    assert_int_equal(yn_ledger_meta_get(f->l, "boot_no", v, sizeof v), YN_OK);
    assert_string_equal(v, "1");
    o.boot_id = "boot-b";
    lf_reopen(f, &o);
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

/* Two handles on one file (the terminal and, say, a sync process) take turns:
 * each sees the other's records, and the chain stays one chain. */
static void test_two_handles_one_chain(void **state)
{
    struct fx *f = *state;
    yn_ledger *other = NULL;
    yn_ledger_opts o = lf_opts_for(f);
    assert_int_equal(yn_ledger_open(&o, &other), YN_OK);
    yn_card_facts c = lf_senior_card("4403040000000012");
    yn_ledger_result r;
    for (int i = 0; i < 6; i++) {
        yn_meal meal = {.price_fen = 1000};
        yn_ledger_tap tap = {.tap_id = 50 + i,
                             .card = &c,
                             .meal = &meal,
                             .canteen = &lf_canteen,
                             .when = lf_at(f, WED_NOON_UTC + i)};
        assert_int_equal(yn_ledger_debit(i % 3 ? f->l : other, lf_policy, &tap, &r), YN_OK);
        assert_int_equal(r.seq, i + 1);
    }
    yn_ledger_result a;
    yn_ledger_when w = lf_at(f, WED_NOON_UTC + 10);
    assert_int_equal(yn_ledger_allocate(other, "a1", c.card_no, "district", 100, &w, &a), YN_OK);
    assert_int_equal(a.seq, 7);
    yn_meal meal = {.price_fen = 1000};
    yn_ledger_tap tap = {.tap_id = 99,
                         .card = &c,
                         .meal = &meal,
                         .canteen = &lf_canteen,
                         .when = lf_at(f, WED_NOON_UTC + 11)};
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_OK);
    assert_int_equal(r.seq, 8);
    assert_int_equal(r.wallet_after_fen, 0); /* the 100 credited by the other handle paid */
    assert_int_equal(r.decision.wallet_fen, 100);
    /* each handle knows the other's tap ids: the other's last one is no new
     * tap, for another card (refused) nor for the same card (its replay) */
    yn_card_facts d = lf_senior_card("4403040000000017");
    tap.card = &d;
    tap.tap_id = 98;
    assert_int_equal(yn_ledger_debit(other, lf_policy, &tap, &r), YN_EINVAL);
    tap.tap_id = 99;
    assert_int_equal(yn_ledger_debit(other, lf_policy, &tap, &r), YN_EINVAL);
    tap.card = &c;
    assert_int_equal(yn_ledger_debit(other, lf_policy, &tap, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, 8);
    tap.tap_id = 55; /* the other handle's own, not c's last */
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_EINVAL);
    assert_int_equal(lf_journal_count(f), 8);
    yn_ledger_close(other);
    lf_assert_verifies(f);
}

/* ---- storage failures ---------------------------------------------------------------- */
static void test_disk_full_writes_nothing(void **state)
{
    struct fx *f = *state;
    lf_make_some_records(f);
    /* a quota of the pages the file has now: soon a debit needs one more */
    yn_ledger_opts o = lf_opts_for(f);
    o.max_pages = lf_sql_i64(f->path, "PRAGMA page_count");
    lf_reopen(f, &o);
    yn_card_facts c = lf_senior_card("4403040000000110");
    lf_topup(f, c.card_no, 100000);
    yn_ledger_result r;
    int st = YN_OK, ok = 0;
    int64_t wallet = 0, count = 0;
    while (st == YN_OK && ok < 100000) {
        wallet = lf_wallet_of(f, c.card_no);
        count = lf_journal_count(f);
        st = lf_debit_at(f, &c, 1000, WED_EVE_UTC + ok, 100000 + ok, &r);
        ok += st == YN_OK;
    }
    assert_int_equal(st, YN_ENOSPC);
    assert_true(ok > 0);
    assert_false(r.decision.allowed);
    assert_int_equal(r.decision.reason, YN_REASON_STORAGE);
    assert_int_equal(r.seq, 0);
    /* nothing of the refused debit: no record, no charge, no tap id */
    assert_int_equal(lf_journal_count(f), count);
    assert_int_equal(lf_wallet_of(f, c.card_no), wallet);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM journal WHERE tap_id = %d", 100000 + ok);
    assert_int_equal(lf_sql_i64(f->path, sql), 0);
    lf_assert_verifies(f);
    /* room again: the same tap goes through */
    o.max_pages = 0;
    lf_reopen(f, &o);
    assert_int_equal(lf_debit_at(f, &c, 1000, WED_EVE_UTC + ok, 100000 + ok, &r), YN_OK);
    assert_int_equal(r.wallet_after_fen, wallet - 1000);
    lf_assert_verifies(f);
}

static void test_read_only_writes_nothing(void **state)
{
    struct fx *f = *state;
    lf_make_some_records(f);
    int64_t count = lf_journal_count(f);
    yn_ledger_opts o = lf_opts_for(f);
    o.read_only = true;
    lf_reopen(f, &o);
    yn_card_facts c = lf_key_card("4403040000000100");
    yn_ledger_result r;
    assert_int_equal(lf_debit(f, &c, 1800, &r), YN_EROFS);
    assert_int_equal(r.decision.reason, YN_REASON_STORAGE);
    assert_false(r.decision.allowed);
    yn_ledger_when w = lf_at(f, WED_NOON_UTC);
    assert_int_equal(yn_ledger_topup(f->l, f->next_tap++, c.card_no, 100, "op1", &w, &r), YN_EROFS);
    assert_int_equal(lf_journal_count(f), count);
    /* reads still work: the kiosk and diagnostics */
    assert_int_equal(lf_wallet_of(f, c.card_no), 1000 - 3 * 300);
    lf_assert_verifies(f);

    /* the file mode 0444 (meaningless to root, who writes anyway) */
    if (geteuid() != 0) {
        o.read_only = false;
        yn_ledger_close(f->l);
        f->l = NULL;
        assert_int_equal(chmod(f->path, 0444), 0);
        int st = yn_ledger_open(&o, &f->l);
        if (st == YN_OK) {
            assert_int_equal(lf_debit(f, &c, 1800, &r), YN_EROFS);
            assert_int_equal(lf_journal_count(f), count);
        } else {
            assert_int_equal(st, YN_EROFS);
        }
        assert_int_equal(chmod(f->path, 0644), 0);
    }
}

static void test_locked_writes_nothing(void **state)
{
    struct fx *f = *state;
    lf_make_some_records(f);
    int64_t count = lf_journal_count(f);
    yn_card_facts c = lf_key_card("4403040000000120");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    yn_ledger_result r;
    assert_int_equal(lf_debit(f, &c, 1800, &r), YN_EBUSY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t waited_ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(waited_ms >= 150); /* busy_timeout 200 ms */
    assert_int_equal(r.decision.reason, YN_REASON_STORAGE);
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(lf_journal_count(f), count);
    assert_int_equal(lf_debit(f, &c, 1800, &r), YN_OK);
    assert_int_equal(lf_journal_count(f), count + 1);
    lf_assert_verifies(f);
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
    assert_int_equal(lf_sql_i64(path, "PRAGMA user_version"), 1);
    assert_int_equal(access(bak, F_OK), -1);
    /* a v1 ledger with data */
    lf_sql_exec(path, "INSERT INTO meta(key, value) VALUES ('note', 'kept');"
                      "INSERT INTO journal(seq, terminal, card_no, kind, local_ymd, price_fen,"
                      " subsidy_fen, wallet_fen, cash_fen, weight_g, per100g_fen, utc_s, mono_ms,"
                      " boot_no, clock_trusted, policy_version, wallet_after_fen, card_prev_seq,"
                      " prev_hash, hash) VALUES (1, 'SZFT0001', 'c', 4, 20250611, 0, 0, -100, 100,"
                      " 0, 0, 1, 1, 1, 1, 0, 100, 0, zeroblob(32), zeroblob(32)),"
                      " (2, 'SZFT0001', 'c', 4, 20250612, 0, 0, -100, 100,"
                      " 0, 0, 1, 1, 1, 1, 0, 200, 1, zeroblob(32), zeroblob(32));");

    o.schema_target = 0;
    assert_int_equal(yn_ledger_open(&o, &l), YN_OK);
    assert_int_equal(lf_sql_i64(path, "PRAGMA user_version"), yn_ledger_schema_version());
    assert_int_equal(access(bak, F_OK), 0);
    assert_int_equal(lf_sql_i64(bak, "PRAGMA user_version"), 1);
    assert_int_equal(lf_sql_i64(bak, "SELECT COUNT(*) FROM meta WHERE value = 'kept'"), 1);
    assert_int_equal(lf_sql_i64(bak, "SELECT COUNT(*) FROM journal"), 2);
    assert_int_equal(lf_sql_i64(bak, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'day_runs'"),
                     0);
    /* the upgrade filled the day index from the journal, the steps of v2 and v3 ran */
    assert_int_equal(lf_sql_i64(path, "SELECT COUNT(*) FROM day_runs"), 2);
    assert_int_equal(lf_sql_i64(path, "SELECT COUNT(*) FROM journal"), 2);
    assert_int_equal(lf_sql_i64(path, "SELECT COUNT(*) FROM pragma_table_info('cards')"
                                      " WHERE name = 'last_tap'"),
                     1);
    char v[16];
    assert_int_equal(yn_ledger_meta_get(l, "note", v, sizeof v), YN_OK);
    assert_string_equal(v, "kept");
    yn_ledger_close(l);

    /* a ledger of a newer firmware is not touched */
    lf_sql_exec(path, "PRAGMA user_version = 99");
    assert_int_equal(yn_ledger_open(&o, &l), YN_ENOTSUP);
    /* a file that is not a ledger is not touched either */
    snprintf(path, sizeof path, "%s/other.db", f->dir);
    lf_sql_exec(path, "CREATE TABLE t(x)");
    o.path = path;
    assert_int_equal(yn_ledger_open(&o, &l), YN_ECORRUPT);
    assert_int_equal(lf_sql_i64(path, "SELECT COUNT(*) FROM sqlite_schema"), 1);
}

/* The backup before an upgrade goes through the one durable-write module:
 * a failed fsync or rename of it (the fault hook) stops the upgrade with
 * the old file untouched and no half-written backup left; the same copy,
 * for the tools (yn_ledger_file_copy), stands alone and reads back. */
static void test_migration_backup_failure_stops_upgrade(void **state)
{
    struct fx *f = *state;
    char path[700], bak[720], copy[720];
    snprintf(path, sizeof path, "%s/old.db", f->dir);
    snprintf(bak, sizeof bak, "%s.v1.bak", path);
    snprintf(copy, sizeof copy, "%s/copy.db", f->dir);
    yn_ledger_opts o = {
        .path = path, .terminal_id = "SZFT0001", .boot_id = "b", .schema_target = 1};
    yn_ledger *l = NULL;
    assert_int_equal(yn_ledger_open(&o, &l), YN_OK);
    yn_ledger_close(l);
    o.schema_target = 0;
    const unsigned ops[] = {YN_FILE_OP_SYNC, YN_FILE_OP_RENAME};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        yn_file_fault(ops[i], 1, EIO);
        assert_int_not_equal(yn_ledger_open(&o, &l), YN_OK);
        assert_true(yn_file_fault_fired());
        yn_file_fault(0, 0, 0);
        assert_null(l);
        assert_int_equal(lf_sql_i64(path, "PRAGMA user_version"), 1);
        assert_int_equal(access(bak, F_OK), -1);
        char tmp[740];
        snprintf(tmp, sizeof tmp, "%s.new", bak);
        assert_int_equal(access(tmp, F_OK), -1);
    }
    int v = 0;
    assert_int_equal(yn_ledger_file_schema(path, &v), YN_OK);
    assert_int_equal(v, 1);
    assert_int_equal(yn_ledger_file_copy(path, copy, true), YN_OK);
    assert_int_equal(yn_ledger_file_schema(copy, &v), YN_OK);
    assert_int_equal(v, 1);
    /* not WAL (header bytes 18 and 19 are 1, rollback journal): stands alone */
    unsigned char head[20];
    FILE *cf = fopen(copy, "rb");
    assert_non_null(cf);
    assert_int_equal(fread(head, 1, sizeof head, cf), sizeof head);
    fclose(cf);
    assert_int_equal(head[18], 1);
    assert_int_equal(yn_ledger_open(&o, &l), YN_OK);
    yn_ledger_close(l);
    assert_int_equal(access(bak, F_OK), 0);
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
                         " prev_hash, hash, reverses_seq) VALUES (?1, ?2, ?3, ?4, ?5, NULL, NULL,"
                         " ?6, ?7, ?8, ?9, ?10, ?11, ?12, 0, 0, ?13, ?14, ?15, ?16, 1, 1, ?17, 0,"
                         " ?18, ?19, ?20, ?21, ?22)",
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
    if (r->reverses_seq)
        sqlite3_bind_int64(s, 22, r->reverses_seq);
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
    yn_ledger_opts o = lf_opts_for(f);
    o.path = path;
    o.schema_target = 2;
    yn_ledger *l = NULL;
    assert_int_equal(yn_ledger_open(&o, &l), YN_OK);
    yn_ledger_close(l);
    assert_int_equal(lf_sql_i64(path, "PRAGMA user_version"), 2);
    assert_int_equal(lf_sql_i64(path, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index'"
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
    assert_int_equal(lf_sql_i64(bak, "PRAGMA user_version"), 2);
    assert_int_equal(lf_sql_i64(bak, "SELECT COUNT(*) FROM journal"), 4);
    assert_int_equal(lf_sql_i64(bak, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index'"
                                     " AND tbl_name = 'journal'"),
                     2);
    /* the upgraded file: no tap_id index, the reversal index (and, from v5, the
     * stamp notice index) and the triggers back */
    assert_int_equal(lf_sql_i64(path, "PRAGMA user_version"), yn_ledger_schema_version());
    assert_int_equal(lf_sql_i64(path, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index'"
                                      " AND tbl_name = 'journal'"),
                     2);
    assert_int_equal(lf_sql_i64(path, "SELECT COUNT(*) FROM sqlite_schema WHERE name ="
                                      " 'journal_reverses'"),
                     1);
    assert_int_equal(lf_sql_i64(path, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'trigger'"
                                      " AND tbl_name = 'journal'"),
                     2);
    assert_int_equal(lf_sql_i64(path, "SELECT COUNT(*) FROM journal"), 4);
    assert_int_equal(
        lf_sql_i64(path, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'journal_v3'"), 0);
    assert_int_equal(lf_sql_i64(path, "SELECT last_tap FROM cards WHERE card_no = 'A'"), 50);
    assert_int_equal(lf_sql_i64(path, "SELECT last_tap FROM cards WHERE card_no = 'B'"), 100);
    assert_int_equal(lf_sql_i64(path, "SELECT value FROM meta WHERE key = 'tap_id_floor'"), 500);
    assert_int_equal(lf_sql_i64(path, "SELECT value FROM meta WHERE key ="
                                      " 'tap_ids_increase_after_seq'"),
                     4);
    assert_int_equal(lf_sql_i64(path, "SELECT integrity_check = 'ok' FROM pragma_integrity_check"),
                     1);
    assert_int_equal(lf_sql_i64(path, "SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);

    yn_ledger_close(f->l);
    f->l = l;
    snprintf(f->path, sizeof f->path, "%s", path);
    lf_assert_verifies(f);
    /* the old records' ids count as seen; each card's last is its replay */
    yn_card_facts a = lf_senior_card("A"), b = lf_senior_card("B");
    yn_ledger_result r;
    assert_int_equal(lf_debit_at(f, &b, 1000, WED_EVE_UTC + 10, 500, &r), YN_EINVAL);
    assert_int_equal(lf_debit_at(f, &b, 1000, WED_EVE_UTC + 10, 499, &r), YN_EINVAL);
    assert_int_equal(lf_debit_at(f, &a, 1000, WED_EVE_UTC + 10, 50, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, 4);
    assert_int_equal(r.wallet_after_fen, 300);
    assert_int_equal(lf_debit_at(f, &b, 1000, WED_EVE_UTC + 10, 100, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, 2);
    assert_int_equal(lf_journal_count(f), 4);
    assert_int_equal(lf_debit_at(f, &b, 1000, WED_EVE_UTC + 10, 501, &r), YN_OK);
    assert_int_equal(r.seq, 5);
    /* the append-only triggers and the foreign keys hold on the rebuilt journal */
    yn_ledger_when w = lf_at(f, WED_EVE_UTC + 20);
    yn_ledger_result rv;
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, 5, "op2", &w, &rv), YN_OK);
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, 5, "op2", &w, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, rv.seq);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_not_equal(
        sqlite3_exec(db, "UPDATE journal SET cash_fen = 0 WHERE seq = 1", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(yn_ledger_topup(f->l, 502, "A", 100, "op1", &w, &r), YN_OK);
    assert_int_equal(r.wallet_after_fen, 400);
    lf_assert_verifies(f);
    /* opening again does not upgrade or back up again */
    assert_int_equal(unlink(bak), 0);
    yn_ledger_opts again = lf_opts_for(f);
    lf_reopen(f, &again);
    assert_int_equal(access(bak, F_OK), -1);
    assert_int_equal(lf_debit_at(f, &a, 1000, WED_EVE_UTC + 30, 502, &r), YN_EDUPLICATE);
    /* verify holds the records after the upgrade to increasing ids, only them */
    lf_sql_exec(f->path, "UPDATE meta SET value = '1' WHERE key = 'tap_ids_increase_after_seq'");
    yn_ledger_verify_report rep;
    assert_int_equal(yn_ledger_verify(f->l, &rep), YN_ECORRUPT);
    assert_int_equal(rep.first_bad_seq, 2);
    assert_non_null(strstr(rep.what, "tap id"));
}

/* v4 -> v5: the journal takes kind 5 (stamp notices), the reversal index
 * covers reversals only, and each card's stamp meal comes from the journal:
 * its newest subsidised meal, none when that one was reversed. */
static void test_migration_v4_to_v5(void **state)
{
    struct fx *f = *state;
    char path[600];
    snprintf(path, sizeof path, "%s/v4.db", f->dir);
    yn_ledger_opts o = lf_opts_for(f);
    o.path = path;
    o.schema_target = 4;
    yn_ledger *l = NULL;
    assert_int_equal(yn_ledger_open(&o, &l), YN_OK);
    yn_ledger_close(l);
    /* A: a subsidised lunch, then a full-price one; B: a subsidised lunch, reversed */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    uint8_t prev[YN_LEDGER_HASH_LEN] = {0};
    static const struct {
        int64_t tap;
        const char *card;
        int kind;
        int64_t price, subsidy, cash, card_prev, reverses;
    } rows[] = {
        {10, "A", YN_LEDGER_MEAL, 1500, 1500, 0, 0, 0},
        {11, "B", YN_LEDGER_MEAL, 1500, 500, 1000, 0, 0},
        {0, "B", YN_LEDGER_REVERSAL, -1500, -500, -1000, 2, 2},
        {12, "A", YN_LEDGER_MEAL, 1500, 0, 1500, 1, 0},
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
        r.cash_fen = rows[i].cash;
        if (r.subsidy_fen) {
            r.n_layers = 1;
            strcpy(r.layers[0].source, "city");
            r.layers[0].fen = r.subsidy_fen;
        }
        strcpy(r.operator_id, "op1");
        r.utc_s = WED_NOON_UTC + i;
        r.mono_ms = f->mono_ms + i; /* this boot, a moment ago: within the 冲正 window */
        r.boot_no = 1;
        r.clock_trusted = true;
        r.card_prev_seq = rows[i].card_prev;
        r.reverses_seq = rows[i].reverses;
        raw_record(db, &r, prev);
    }
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO day_runs(first_seq, local_ymd) VALUES (1, 20250611);"
                     "INSERT INTO cards(card_no, last_seq, meal_seq, meal_utc_s, month_ym,"
                     " month_meals, month_subsidy_fen, day_ymd, day_meals, period, period_meals,"
                     " last_tap, day_subsidy_fen) VALUES"
                     " ('A', 4, 4, 1749614403, 202506, 1, 1500, 20250611, 1, '', 1, 12, 1500),"
                     " ('B', 3, 0, 0, 202506, 0, 0, 20250611, 0, '', 0, 11, 0);"
                     "COMMIT",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    o.schema_target = 0;
    assert_int_equal(yn_ledger_open(&o, &l), YN_OK);
    assert_int_equal(lf_sql_i64(path, "PRAGMA user_version"), yn_ledger_schema_version());
    assert_int_equal(lf_sql_i64(path, "SELECT stamp_seq FROM cards WHERE card_no = 'A'"), 1);
    assert_int_equal(lf_sql_i64(path, "SELECT stamp_seq FROM cards WHERE card_no = 'B'"), 0);
    assert_int_equal(lf_sql_i64(path, "SELECT COUNT(*) FROM journal"), 4);
    assert_int_equal(lf_sql_i64(path, "SELECT integrity_check = 'ok' FROM pragma_integrity_check"),
                     1);
    yn_ledger_close(f->l);
    f->l = l;
    snprintf(f->path, sizeof f->path, "%s", path);
    lf_assert_verifies(f);
    /* kind 5 is taken now; a meal's notice and its reversal both name it */
    yn_ledger_when w = lf_at(f, WED_NOON_UTC + 60);
    yn_ledger_result r;
    assert_int_equal(yn_ledger_stamp_missing(f->l, 1, "restart", &w, &r), YN_OK);
    assert_int_equal(r.seq, 5);
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, 1, "op2", &w, &r), YN_OK);
    assert_int_equal(r.seq, 6);
    assert_int_equal(lf_sql_i64(path, "SELECT stamp_seq FROM cards WHERE card_no = 'A'"), 0);
    /* the replay of A's last tap still finds it, past the notice and the reversal */
    yn_card_facts a = lf_senior_card("A");
    assert_int_equal(lf_debit_at(f, &a, 1500, WED_NOON_UTC + 90, 12, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, 4);
    lf_assert_verifies(f);
}

/* Schema v6 (how the holder was identified): a v5 ledger's records keep
 * their hashes — the chain head of the records below is pinned as the
 * firmware before v6 computed it — read as identified by their card, and the
 * chain goes on with records of identity-only cards and of manual entry,
 * whose hashes cover the new fields. */
static void test_migration_v5_to_v6(void **state)
{
    struct fx *f = *state;
    char path[600];
    snprintf(path, sizeof path, "%s/v5.db", f->dir);
    yn_ledger_opts o = lf_opts_for(f);
    o.path = path;
    o.schema_target = 5;
    yn_ledger *l = NULL;
    assert_int_equal(yn_ledger_open(&o, &l), YN_OK);
    yn_ledger_close(l);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL), SQLITE_OK);
    uint8_t prev[YN_LEDGER_HASH_LEN] = {0};
    static const struct {
        int64_t tap;
        const char *card;
        int kind;
        int64_t price, subsidy, cash, card_prev, reverses;
    } rows[] = {
        {10, "A", YN_LEDGER_MEAL, 1500, 1500, 0, 0, 0},
        {11, "B", YN_LEDGER_MEAL, 1500, 500, 1000, 0, 0},
        {0, "B", YN_LEDGER_REVERSAL, -1500, -500, -1000, 2, 2},
    };
    for (int i = 0; i < 3; i++) {
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
        r.cash_fen = rows[i].cash;
        if (r.subsidy_fen) {
            r.n_layers = 1;
            strcpy(r.layers[0].source, "city");
            r.layers[0].fen = r.subsidy_fen;
        }
        strcpy(r.operator_id, "op1");
        r.utc_s = WED_NOON_UTC + i;
        r.mono_ms = 5000000 + i;
        r.boot_no = 1;
        r.clock_trusted = true;
        r.card_prev_seq = rows[i].card_prev;
        r.reverses_seq = rows[i].reverses;
        raw_record(db, &r, prev);
    }
    /* the head as the v5 firmware hashed these records */
    static const uint8_t head_v5[YN_LEDGER_HASH_LEN] = {
        0x1f, 0xc8, 0xdd, 0x4e, 0xbe, 0x09, 0x5a, 0x76, 0x81, 0x1e, 0x69,
        0x98, 0x1b, 0xe4, 0x7a, 0x9c, 0xe0, 0xa3, 0x72, 0x78, 0xf9, 0xd2,
        0x70, 0xe3, 0xd7, 0x9c, 0x3a, 0xc4, 0xc1, 0x0d, 0xa0, 0xeb};
    assert_memory_equal(prev, head_v5, sizeof head_v5);
    assert_int_equal(
        sqlite3_exec(db,
                     "INSERT INTO day_runs(first_seq, local_ymd) VALUES (1, 20250611);"
                     "INSERT INTO cards(card_no, last_seq, meal_seq, meal_utc_s, month_ym,"
                     " month_meals, month_subsidy_fen, day_ymd, day_meals, period, period_meals,"
                     " last_tap, day_subsidy_fen, stamp_seq) VALUES"
                     " ('A', 1, 1, 1749614400, 202506, 1, 1500, 20250611, 1, '', 1, 10, 1500, 1),"
                     " ('B', 3, 0, 0, 202506, 0, 0, 20250611, 0, '', 0, 11, 0, 0);"
                     "COMMIT",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    o.schema_target = 0;
    assert_int_equal(yn_ledger_open(&o, &l), YN_OK);
    assert_int_equal(lf_sql_i64(path, "PRAGMA user_version"), 6);
    assert_int_equal(lf_sql_i64(path, "SELECT COUNT(*) FROM journal WHERE identified = 1"), 3);
    char bak[700];
    snprintf(bak, sizeof bak, "%s.v5.bak", path);
    assert_int_equal(access(bak, F_OK), 0);
    yn_ledger_close(f->l);
    f->l = l;
    snprintf(f->path, sizeof f->path, "%s", path);
    lf_assert_verifies(f);
    int64_t seq;
    uint8_t head[YN_LEDGER_HASH_LEN];
    assert_int_equal(yn_ledger_head(f->l, &seq, head), YN_OK);
    assert_int_equal(seq, 3);
    assert_memory_equal(head, head_v5, sizeof head);

    /* the chain goes on: an identity-only card, a manual entry, a card */
    lf_roster(f, "C", "A:04A1B2C3D4E5F6", 1);
    lf_roster(f, "D", "", 2);
    yn_ledger_result r;
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_IDENT, "C", "A:04A1B2C3D4E5F6", NULL, NULL,
                                 WED_NOON_UTC + 60, &r),
                     YN_OK);
    assert_int_equal(
        lf_debit_by(f, YN_LEDGER_BY_MANUAL, "D", NULL, "op1", "sup1", WED_NOON_UTC + 70, &r),
        YN_OK);
    yn_card_facts e = lf_senior_card("E");
    assert_int_equal(lf_debit_at(f, &e, 1500, WED_NOON_UTC + 80, f->next_tap++, &r), YN_OK);
    assert_int_equal(lf_sql_i64(path, "SELECT group_concat(identified, '') FROM (SELECT"
                                      " identified FROM journal ORDER BY seq)"),
                     111231);
    lf_assert_verifies(f);
    /* the new fields are in the hash: one changed, the record no longer verifies */
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, 5, &rec), YN_OK);
    uint8_t h[YN_LEDGER_HASH_LEN];
    yn_ledger_record_hash(&rec, rec.prev_hash, h);
    assert_memory_equal(h, rec.hash, sizeof h);
    snprintf(rec.supervisor_id, sizeof rec.supervisor_id, "sup2");
    yn_ledger_record_hash(&rec, rec.prev_hash, h);
    assert_memory_not_equal(h, rec.hash, sizeof h);
    rec.by = YN_LEDGER_BY_CARD; /* and as a card's record it hashes otherwise */
    rec.supervisor_id[0] = '\0';
    yn_ledger_record_hash(&rec, rec.prev_hash, h);
    assert_memory_not_equal(h, rec.hash, sizeof h);
    lf_sql_exec(path, "DROP TRIGGER journal_no_update;"
                      "UPDATE journal SET supervisor = 'sup2' WHERE seq = 5");
    yn_ledger_verify_report rep;
    assert_int_equal(yn_ledger_verify(f->l, &rep), YN_ECORRUPT);
    assert_int_equal(rep.first_bad_seq, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, lf_setup, lf_teardown)
        T(test_open_sets_up_schema_and_identity),
        T(test_two_handles_one_chain),
        T(test_disk_full_writes_nothing),
        T(test_read_only_writes_nothing),
        T(test_locked_writes_nothing),
        T(test_migration_backs_up_first),
        T(test_migration_backup_failure_stops_upgrade),
        T(test_migration_v2_to_v3),
        T(test_migration_v4_to_v5),
        T(test_migration_v5_to_v6),
#undef T
    };
    return cmocka_run_group_tests_name("ledger", tests, lf_group_setup, lf_group_teardown);
}
