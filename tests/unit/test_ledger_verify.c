/* test_ledger_verify.c — verification (ledger_verify.c): a tampered row, a missing row and a
 * wrong wallet are found. */
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
#include <unistd.h>

#include "fix_ledger.h"
#include "ledger.h"
#include "log.h"
#include "policy.h"

/* ---- verify --------------------------------------------------------------------------- */

static void test_verify_detects_tampered_row(void **state)
{
    struct fx *f = *state;
    lf_make_some_records(f);
    lf_assert_verifies(f);
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
    lf_make_some_records(f);
    yn_ledger_verify_report rep;
    lf_sql_exec(f->path, "DROP TRIGGER journal_no_delete; DELETE FROM journal WHERE seq = 5;");
    assert_int_equal(yn_ledger_verify(f->l, &rep), YN_ECORRUPT);
    assert_int_equal(rep.first_bad_seq, 5);
    assert_non_null(strstr(rep.what, "missing"));
    assert_int_equal(rep.records, 6);

    /* a fresh ledger with a wallet changed behind the journal's back */
    struct fx *g = NULL;
    assert_int_equal(lf_setup((void **)&g), 0);
    lf_make_some_records(g);
    lf_sql_exec(g->path, "UPDATE cards SET balance_fen = balance_fen + 10000"
                         " WHERE card_no = '4403040000000100'");
    assert_int_equal(yn_ledger_verify(g->l, &rep), YN_ECORRUPT);
    assert_string_equal(rep.bad_card, "4403040000000100");
    assert_int_equal(rep.first_bad_seq, 0);
    assert_non_null(strstr(rep.what, "wallet"));
    /* or a usage counter */
    lf_sql_exec(g->path, "UPDATE cards SET balance_fen = balance_fen - 10000,"
                         " month_meals = 0 WHERE card_no = '4403040000000100'");
    assert_int_equal(yn_ledger_verify(g->l, &rep), YN_ECORRUPT);
    assert_non_null(strstr(rep.what, "usage"));
    /* or the last tap id a replay is checked against */
    lf_sql_exec(g->path, "UPDATE cards SET month_meals = 3, last_tap = 7"
                         " WHERE card_no = '4403040000000100'");
    assert_int_equal(yn_ledger_verify(g->l, &rep), YN_ECORRUPT);
    assert_string_equal(rep.bad_card, "4403040000000100");
    assert_non_null(strstr(rep.what, "last tap"));
    void *gs = g;
    assert_int_equal(lf_teardown(&gs), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, lf_setup, lf_teardown)
        T(test_verify_detects_tampered_row),
        T(test_verify_detects_missing_row_and_bad_wallet),
#undef T
    };
    return cmocka_run_group_tests_name("ledger_verify", tests, lf_group_setup, lf_group_teardown);
}
