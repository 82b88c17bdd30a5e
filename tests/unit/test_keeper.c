/* test_keeper.c — whether sales may go on (keeper.c), on a real ledger file:
 * a ledger damaged at start stops sales for good; records lost stop them
 * until they are back, then sales go on by themselves; a storage failure is
 * followed by a check before the next tap; the background verification
 * finds a card row that disagrees with the journal; a conflict reported by
 * sync stops sales; the WAL is checkpointed once the counter is idle, never
 * before. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fix_ledger.h"
#include "keeper.h"
#include "ledger.h"

static yn_keeper *start(struct fx *f, int64_t verify_every_ms, yn_sales_stop *v)
{
    yn_keeper_opts o = {.ledger = f->l,
                        .path = f->path,
                        .terminal_id = "SZFT0001",
                        .can_restore = true,
                        .verify_every_ms = verify_every_ms};
    yn_keeper *k = NULL;
    assert_int_equal(yn_keeper_start(&o, 0, &k, v), YN_OK);
    return k;
}

/* Records in the main file alone, as a copy without its WAL shows them. */
static int64_t in_main_file(struct fx *f)
{
    char copy[700], cmd[2200];
    snprintf(copy, sizeof copy, "%s/main-only.db", f->dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s' && rm -f '%s-wal'", f->path, copy, copy);
    assert_int_equal(system(cmd), 0);
    int64_t n = lf_sql_i64(copy, "SELECT COUNT(*) FROM sqlite_schema WHERE name = 'journal'");
    return n == 1 ? lf_sql_i64(copy, "SELECT COUNT(*) FROM journal") : 0;
}

static void test_checkpoint_when_idle_only(void **state)
{
    struct fx *f = *state;
    yn_sales_stop v;
    lf_sell(f, 3);
    yn_keeper *k = start(f, -1, &v);
    assert_int_equal(v.why, YN_STOP_NONE);
    yn_keeper_tick(k, 100, 1, &v); /* a tap: busy */
    lf_sell(f, 2);
    yn_keeper_tick(k, 1500, 2, &v); /* another */
    yn_keeper_tick(k, 3000, 2, &v); /* 1.5 s since: not yet idle */
    assert_int_equal(in_main_file(f), 0);
    yn_keeper_tick(k, 3600, 2, &v); /* 2.1 s: idle */
    assert_int_equal(in_main_file(f), 5);
    assert_int_equal(v.why, YN_STOP_NONE);
    yn_keeper_stop(k);
}

static void test_damaged_at_start_stays_stopped(void **state)
{
    struct fx *f = *state;
    lf_sell(f, 5);
    lf_tamper(f, 4, 1);
    yn_sales_stop v;
    lf_log_begin(f);
    yn_keeper *k = start(f, -1, &v);
    const char *log = lf_log_end();
    assert_int_equal(v.why, YN_STOP_DAMAGED);
    assert_int_equal(v.first_seq, 4);
    assert_non_null(strstr(log, "checked at start: damaged"));
    assert_non_null(strstr(log, "run yinian-diag ledger verify"));
    lf_tamper(f, 4, -1); /* repaired behind its back: a restart decides */
    yn_keeper_tick(k, 5000, 0, &v);
    assert_int_equal(v.why, YN_STOP_DAMAGED);
    yn_keeper_stop(k);
}

static void test_lost_records_stop_sales_until_restored(void **state)
{
    struct fx *f = *state;
    yn_ledger_record *district = lf_lose_records(f, 2, 2);
    yn_sales_stop v;
    yn_keeper *k = start(f, -1, &v);
    assert_int_equal(v.why, YN_STOP_LOST);
    assert_int_equal(v.first_seq, 3);
    assert_int_equal(v.last_seq, 4);
    assert_true(v.can_restore);
    yn_keeper_tick(k, 1500, 0, &v);
    assert_int_equal(v.why, YN_STOP_LOST);
    /* sync restores them (its own handle in the daemon) */
    int64_t n = 0;
    assert_int_equal(yn_ledger_restore_append(f->l, district, 2, &n), YN_OK);
    assert_int_equal(yn_ledger_restore_finish(f->l, 3, 4, WED_NOON_UTC), YN_OK);
    yn_keeper_tick(k, 2000, 0, &v); /* within the second since the last look */
    assert_int_equal(v.why, YN_STOP_LOST);
    yn_keeper_tick(k, 2600, 0, &v);
    assert_int_equal(v.why, YN_STOP_NONE);
    yn_keeper_stop(k);
    free(district);
}

static void test_storage_failure_is_followed_by_a_check(void **state)
{
    struct fx *f = *state;
    lf_sell(f, 3);
    yn_ledger_opts o = lf_opts_for(f);
    o.max_pages = lf_sql_i64(f->path, "PRAGMA page_count");
    lf_reopen(f, &o);
    yn_sales_stop v;
    yn_keeper *k = start(f, -1, &v);
    assert_int_equal(v.why, YN_STOP_NONE);
    /* the disk fills up: checked, found fit (nothing damaged), sales go on */
    yn_card_facts c = lf_key_card("4403040000000777");
    yn_ledger_result r;
    int st = YN_OK;
    for (int i = 0; i < 200 && st == YN_OK; i++)
        st = lf_debit(f, &c, 1500, &r);
    assert_int_equal(st, YN_ENOSPC);
    lf_log_begin(f);
    yn_keeper_tick(k, 100, 1, &v);
    const char *log = lf_log_end();
    assert_int_equal(v.why, YN_STOP_NONE);
    assert_null(strstr(log, "damaged"));
    /* a record altered meanwhile: the next storage failure's check finds it */
    int64_t head = lf_journal_count(f);
    char sql[256];
    snprintf(sql, sizeof sql,
             "DROP TRIGGER journal_no_update; UPDATE journal SET hash = zeroblob(32) WHERE seq = "
             "%lld",
             (long long)head);
    lf_sql_exec(f->path, sql);
    assert_int_equal(lf_debit(f, &c, 1500, &r), YN_ENOSPC);
    yn_keeper_tick(k, 200, 2, &v);
    assert_int_equal(v.why, YN_STOP_DAMAGED);
    assert_int_equal(v.first_seq, head);
    yn_keeper_stop(k);
}

static void test_background_verification_finds_a_card_row(void **state)
{
    struct fx *f = *state;
    lf_sell(f, 4);
    /* a card row off by one fen: nothing the quick check looks at */
    lf_sql_exec(
        f->path,
        "UPDATE cards SET balance_fen = balance_fen + 1 WHERE card_no = '4403040000000101'");
    yn_sales_stop v;
    lf_log_begin(f);
    yn_keeper *k = start(f, 0, &v);
    assert_int_equal(v.why, YN_STOP_NONE); /* the quick check at start does not see it */
    for (int i = 0; i < 6000 && v.why == YN_STOP_NONE; i++) { /* nice 19: up to a minute */
        struct timespec d = {0, 10 * 1000000L};
        nanosleep(&d, NULL);
        yn_keeper_tick(k, 100 + i, 0, &v);
    }
    const char *log = lf_log_end();
    assert_int_equal(v.why, YN_STOP_DAMAGED);
    assert_non_null(strstr(log, "card 4403040000000101"));
    assert_non_null(strstr(log, "background verification found it damaged"));
    yn_keeper_stop(k);
}

static void test_conflict_from_sync_stops_sales(void **state)
{
    struct fx *f = *state;
    lf_sell(f, 2);
    yn_sales_stop v;
    yn_keeper *k = start(f, -1, &v);
    yn_keeper_conflict(k, 3, 9);
    yn_keeper_tick(k, 100, 0, &v);
    assert_int_equal(v.why, YN_STOP_CONFLICT);
    assert_int_equal(v.first_seq, 3);
    assert_int_equal(v.last_seq, 9);
    yn_keeper_tick(k, 5000, 0, &v);
    assert_int_equal(v.why, YN_STOP_CONFLICT);
    yn_keeper_stop(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checkpoint_when_idle_only, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_at_start_stays_stopped, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(test_lost_records_stop_sales_until_restored, lf_setup,
                                        lf_teardown),
        cmocka_unit_test_setup_teardown(test_storage_failure_is_followed_by_a_check, lf_setup,
                                        lf_teardown),
        cmocka_unit_test_setup_teardown(test_background_verification_finds_a_card_row, lf_setup,
                                        lf_teardown),
        cmocka_unit_test_setup_teardown(test_conflict_from_sync_stops_sales, lf_setup, lf_teardown),
    };
    return cmocka_run_group_tests(tests, lf_group_setup, lf_group_teardown);
}
