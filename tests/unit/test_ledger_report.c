/* test_ledger_report.c — reads (ledger_report.c): the kiosk balance and the settlement (日结),
 * whose totals must equal the journal to the fen. */
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

/* ---- kiosk -------------------------------------------------------------------------- */
static void test_balance(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = lf_key_card("4403040000000080");
    yn_ledger_account a;
    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC, 5, &a), YN_OK);
    assert_int_equal(a.wallet_fen, 0);
    assert_int_equal(a.n_last, 0);
    assert_int_equal(a.month_ym, 202506);

    lf_topup(f, c.card_no, 5000);
    yn_ledger_result r1, r2, r3;
    assert_int_equal(lf_debit_at(f, &c, 1800, WED_NOON_UTC, 1001, &r1), YN_OK);         /* 300 */
    assert_int_equal(lf_debit_at(f, &c, 2000, WED_NOON_UTC + 86400, 1002, &r2), YN_OK); /* 500 */
    assert_int_equal(lf_debit_at(f, &c, 1200, WED_NOON_UTC + 86400 + 60, 1003, &r3),
                     YN_OK); /* 1200 */
    yn_ledger_when w = lf_at(f, WED_NOON_UTC + 86400 + 120);
    yn_ledger_result rv;
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, r3.seq, "op1", &w, &rv), YN_OK);
    yn_card_facts other = lf_key_card("4403040000000081");
    assert_int_equal(lf_debit_at(f, &other, 1800, WED_NOON_UTC, 1004, &r1), YN_OK);

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
    yn_card_facts k = lf_key_card("4403040000000090"), s = lf_senior_card("4403040000000091"),
                  y = lf_senior_card("4403040000000092");
    y.birth_ymd = 19700101; /* 55: no category */
    lf_topup(f, k.card_no, 1000);
    yn_ledger_result r, rk;
    assert_int_equal(lf_debit_at(f, &k, 1800, WED_NOON_UTC, 1001, &rk), YN_OK);
    assert_int_equal(lf_debit_at(f, &s, 1500, WED_NOON_UTC + 10, 1002, &r), YN_OK);
    assert_int_equal(lf_debit_at(f, &y, 1500, WED_NOON_UTC + 20, 1003, &r), YN_OK);
    assert_int_equal(lf_debit_at(f, &s, 900, WED_EVE_UTC, 1004, &r), YN_OK);
    yn_ledger_result rs;
    assert_int_equal(lf_debit_at(f, &s, 1000, WED_NOON_UTC + 30, 1005, &rs),
                     YN_OK); /* period used */
    yn_ledger_when w = lf_at(f, WED_NOON_UTC + 40);
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, rk.seq, "op1", &w, &r), YN_OK);
    assert_int_equal(yn_ledger_allocate(f->l, "a1", s.card_no, "district", 2000, &w, &r), YN_OK);
    /* another day, not in this settlement */
    assert_int_equal(lf_debit_at(f, &k, 1800, WED_NOON_UTC + 86400, 1006, &r), YN_OK);

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
                     lf_sql_i64(f->path, "SELECT SUM(price_fen) FROM journal"
                                         " WHERE local_ymd = 20250611 AND kind IN (1, 2)"));
    assert_int_equal(st.total.cash_fen,
                     lf_sql_i64(f->path, "SELECT SUM(cash_fen) FROM journal"
                                         " WHERE local_ymd = 20250611 AND kind IN (1, 2)"));
    assert_int_equal(st.total.wallet_fen,
                     lf_sql_i64(f->path, "SELECT SUM(wallet_fen) FROM journal"
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
    assert_int_equal(lines, 2 + 2 + 3 + 2 + 1 + 2 + 1 + 2); /* + identity_only, manual */
    snprintf(path, sizeof path, "%s/settle.csv.new", f->dir);
    assert_int_equal(access(path, F_OK), -1);

    /* an empty day */
    assert_int_equal(yn_ledger_settle(f->l, 20250101, &st), YN_OK);
    assert_int_equal(st.total.count, 0);
    assert_int_equal(st.first_seq, 0);
    lf_assert_verifies(f);
}

/* 日结 counts the meals of identity-only cards and of manual entry apart
 * (they are also in the totals); the CSV has a row for each. */
static void test_settle_counts_how_holders_were_identified(void **state)
{
    struct fx *f = *state;
    yn_ledger_result r;
    lf_roster(f, "4403040000000901", "A:04A1B2C3D4E5F6", 1);
    lf_roster(f, "4403040000000902", "", 2);
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_IDENT, "4403040000000901", "A:04A1B2C3D4E5F6",
                                 "op1", NULL, WED_NOON_UTC + 1, &r),
                     YN_OK);
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_MANUAL, "4403040000000902", NULL, "op1", "sup1",
                                 WED_NOON_UTC + 2, &r),
                     YN_OK);
    yn_card_facts c = lf_senior_card("4403040000000903");
    assert_int_equal(lf_debit(f, &c, 1500, &r), YN_OK);
    yn_ledger_settlement st;
    assert_int_equal(yn_ledger_settle(f->l, DAY, &st), YN_OK);
    assert_int_equal(st.total.count, 3);
    assert_int_equal(st.by_ident.count, 1);
    assert_int_equal(st.by_ident.price_fen, 1500);
    assert_int_equal(st.by_ident.subsidy_fen, 500); /* never synced: the policy's offline cap */
    assert_int_equal(st.by_manual.count, 1);
    assert_int_equal(st.by_manual.subsidy_fen, 500);
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    assert_int_equal(yn_ledger_settle_csv(f->l, DAY, mem), YN_OK);
    fclose(mem);
    assert_non_null(strstr(text, "20250611,identity_only,\"\",1,1500,500,0,1000\n"));
    assert_non_null(strstr(text, "20250611,manual,\"\",1,1500,500,0,1000\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, lf_setup, lf_teardown)
        T(test_balance),
        T(test_settle_totals_equal_journal),
        T(test_settle_counts_how_holders_were_identified),
#undef T
    };
    return cmocka_run_group_tests_name("ledger_report", tests, lf_group_setup, lf_group_teardown);
}
