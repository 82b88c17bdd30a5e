/* test_ledger_outbox.c — the sync outbox (ledger_outbox.c): batches, acknowledgements and
 * the backlog. */
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

static void test_batches_and_unsent(void **state)
{
    struct fx *f = *state;
    int64_t count, age;
    assert_int_equal(yn_ledger_unsent(f->l, WED_NOON_UTC, &count, &age), YN_OK);
    assert_int_equal(count, 0);
    assert_int_equal(age, 0);
    yn_ledger_batch b;
    assert_int_equal(yn_ledger_batch_next(f->l, 100, WED_NOON_UTC, &b), YN_ENOTFOUND);
    yn_card_facts c = lf_senior_card("4403040000000130");
    yn_ledger_result r;
    for (int i = 0; i < 3; i++)
        assert_int_equal(lf_debit_at(f, &c, 1000, WED_NOON_UTC + 100 * i, 1 + i, &r), YN_OK);
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
#define T(name) cmocka_unit_test_setup_teardown(name, lf_setup, lf_teardown)
        T(test_batches_and_unsent),
#undef T
    };
    return cmocka_run_group_tests_name("ledger_outbox", tests, lf_group_setup, lf_group_teardown);
}
