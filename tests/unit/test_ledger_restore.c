/* test_ledger_restore.c — records lost here, restored from the district's
 * copy (ledger_restore.c): appended exactly as they were (seq, hash) after
 * the head, the card rows rebuilt equal to those of the ledger that never
 * lost them, the ledger then verifies and sells on above them; a record that
 * does not chain, differs from what its hash says, skips a seq or does not
 * follow its card's row is refused and nothing is restored; when the
 * district holds fewer than the high-water mark, the mark comes down to
 * what it holds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fix_ledger.h"
#include "ledger.h"
#include "log.h"

#define KEY_CARD    "4403040000000100"
#define SENIOR_CARD "4403040000000101"

/* Records 1..3 (older copy taken at 3), then 4..11: meals over two days, a
 * top-up, an allocation, and the reversal of a meal made before the copy. */
static int64_t make_history(struct fx *f, const char *older)
{
    yn_card_facts a = lf_key_card(KEY_CARD), b = lf_senior_card(SENIOR_CARD);
    yn_ledger_result r;
    lf_topup(f, a.card_no, 2000);
    assert_int_equal(lf_debit_at(f, &a, 1800, WED_NOON_UTC, f->next_tap++, &r), YN_OK);
    assert_int_equal(lf_debit_at(f, &b, 1500, WED_NOON_UTC + 10, f->next_tap++, &r), YN_OK);
    lf_snapshot(f, older);
    yn_ledger_when w = lf_at(f, WED_NOON_UTC + 60);
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, 3, "2001", &w, &r), YN_OK); /* 4 */
    assert_int_equal(lf_debit_at(f, &b, 1500, WED_NOON_UTC + 120, f->next_tap++, &r), YN_OK);
    w = lf_at(f, WED_NOON_UTC + 130);
    assert_int_equal(yn_ledger_allocate(f->l, "A-1", KEY_CARD, "district", 3000, &w, &r), YN_OK);
    for (int day = 1; day <= 2; day++) {
        assert_int_equal(lf_debit_at(f, &a, 1800, WED_NOON_UTC + day * 86400, f->next_tap++, &r),
                         YN_OK);
        assert_int_equal(
            lf_debit_at(f, &b, 1500, WED_NOON_UTC + day * 86400 + 5, f->next_tap++, &r), YN_OK);
    }
    lf_topup(f, b.card_no, 500); /* 11 */
    return 11;
}

/* The district's copy of records first..last: as this ledger gives them. */
static yn_ledger_record *copy_of(struct fx *f, int64_t first, int64_t last)
{
    yn_ledger_record *recs = calloc((size_t)(last - first + 1), sizeof *recs);
    assert_non_null(recs);
    for (int64_t s = first; s <= last; s++)
        assert_int_equal(yn_ledger_record_get(f->l, s, &recs[s - first]), YN_OK);
    return recs;
}

static void test_lost_records_come_back_as_they_were(void **state)
{
    struct fx *f = *state;
    char older[700], whole[700];
    snprintf(older, sizeof older, "%s/older.db", f->dir);
    snprintf(whole, sizeof whole, "%s/whole.db", f->dir);
    int64_t n = make_history(f, older);
    assert_int_equal(yn_ledger_mark_raise(f->l, n), YN_OK); /* sent, then lost here */
    yn_ledger_record *district = copy_of(f, 1, n);
    int64_t tap_max = 0;
    assert_int_equal(yn_ledger_tap_id_max(f->l, &tap_max), YN_OK);
    lf_snapshot(f, whole);
    char *cards_whole = lf_cards_text(whole);

    lf_put_back(f, older);
    yn_ledger_health h;
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_TAIL, &h), YN_ESTALE);
    assert_int_equal(h.lost_first, 4);
    assert_int_equal(h.lost_last, n);
    /* the district answers with whole frames: the first one may begin below the head */
    int64_t appended = 0;
    assert_int_equal(yn_ledger_restore_append(f->l, district, 6, &appended), YN_OK);
    assert_int_equal(appended, 3); /* 4..6 */
    assert_int_equal(yn_ledger_restore_append(f->l, district + 6, (size_t)n - 6, &appended), YN_OK);
    assert_int_equal(appended, n - 6);
    for (int64_t s = 1; s <= n; s++) {
        yn_ledger_record r;
        assert_int_equal(yn_ledger_record_get(f->l, s, &r), YN_OK);
        assert_memory_equal(r.hash, district[s - 1].hash, YN_LEDGER_HASH_LEN);
    }
    char *cards_now = lf_cards_text(f->path);
    assert_string_equal(cards_now, cards_whole);
    assert_int_equal(lf_sql_i64(f->path, "SELECT seq FROM allocations WHERE id = 'A-1'"), 6);
    lf_assert_verifies(f);
    int64_t tap_now = 0;
    assert_int_equal(yn_ledger_tap_id_max(f->l, &tap_now), YN_OK);
    assert_int_equal(tap_now, tap_max);

    assert_int_equal(yn_ledger_restore_finish(f->l, 4, n, WED_NOON_UTC + 3 * 86400), YN_OK);
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_PAGES, &h), YN_OK);
    assert_int_equal(h.mark_seq, n);
    assert_int_equal(lf_sql_i64(f->path, "SELECT value FROM meta WHERE key = 'restored_first'"), 4);
    assert_int_equal(lf_sql_i64(f->path, "SELECT value FROM meta WHERE key = 'restored_last'"), n);
    /* selling goes on above them; the allocation is not applied twice */
    yn_card_facts a = lf_key_card(KEY_CARD);
    yn_ledger_result r;
    assert_int_equal(lf_debit_at(f, &a, 1800, WED_NOON_UTC + 3 * 86400, tap_max, &r),
                     YN_EINVAL); /* the restored tap ids count: not above the highest */
    assert_int_equal(lf_debit_at(f, &a, 1800, WED_NOON_UTC + 3 * 86400, tap_max + 1, &r), YN_OK);
    assert_int_equal(r.seq, n + 1);
    yn_ledger_when w = lf_at(f, WED_NOON_UTC + 3 * 86400);
    assert_int_equal(yn_ledger_allocate(f->l, "A-1", KEY_CARD, "district", 3000, &w, &r),
                     YN_EDUPLICATE);
    lf_assert_verifies(f);
    free(cards_now);
    free(cards_whole);
    free(district);
}

static void test_records_that_do_not_fit_are_refused(void **state)
{
    struct fx *f = *state;
    char older[700];
    snprintf(older, sizeof older, "%s/older.db", f->dir);
    int64_t n = make_history(f, older);
    yn_ledger_record *district = copy_of(f, 4, n);
    lf_put_back(f, older);
    char *cards_before = lf_cards_text(f->path);
    int64_t appended = -1;

    yn_ledger_record altered[3];
    memcpy(altered, district, sizeof altered);
    altered[2].cash_fen += 100; /* record 6's content changed, its hash not */
    altered[2].price_fen += 100;
    assert_int_equal(yn_ledger_restore_append(f->l, altered, 3, &appended), YN_ECORRUPT);
    assert_int_equal(appended, 0);
    assert_int_equal(lf_journal_count(f), 3);

    assert_int_equal(yn_ledger_restore_append(f->l, district + 1, 2, &appended),
                     YN_ECORRUPT); /* 5 does not follow 3 */
    memcpy(altered, district, sizeof altered);
    altered[0].prev_hash[0] ^= 1; /* hash recomputed with it: chains to nothing here */
    yn_ledger_record_hash(&altered[0], altered[0].prev_hash, altered[0].hash);
    assert_int_equal(yn_ledger_restore_append(f->l, altered, 1, &appended), YN_ECORRUPT);
    memcpy(altered, district, sizeof altered);
    snprintf(altered[0].terminal, sizeof altered[0].terminal, "OTHER");
    assert_int_equal(yn_ledger_restore_append(f->l, altered, 1, &appended), YN_ECORRUPT);

    /* the card's row here does not lead to the district's record */
    lf_sql_exec(f->path,
                "UPDATE cards SET balance_fen = balance_fen + 1 WHERE card_no = '" KEY_CARD "'");
    free(cards_before);
    cards_before = lf_cards_text(f->path);
    lf_log_begin(f);
    assert_int_equal(yn_ledger_restore_append(f->l, district, (size_t)(n - 3), &appended),
                     YN_ECORRUPT);
    const char *log = lf_log_end();
    assert_non_null(strstr(log, "restore: record"));
    assert_non_null(strstr(log, "does not follow its card's row"));
    assert_int_equal(lf_journal_count(f), 3);
    char *cards_after = lf_cards_text(f->path);
    assert_string_equal(cards_after, cards_before);
    free(cards_after);
    free(cards_before);
    free(district);
}

static void test_district_holds_less_than_the_mark(void **state)
{
    struct fx *f = *state;
    char older[700];
    snprintf(older, sizeof older, "%s/older.db", f->dir);
    int64_t n = make_history(f, older);
    assert_int_equal(yn_ledger_mark_raise(f->l, n), YN_OK);
    yn_ledger_record *district = copy_of(f, 4, 5); /* the rest never arrived there */
    lf_put_back(f, older);
    int64_t appended = 0;
    assert_int_equal(yn_ledger_restore_append(f->l, district, 2, &appended), YN_OK);
    assert_int_equal(yn_ledger_restore_finish(f->l, 4, 6, WED_NOON_UTC), YN_EINVAL); /* not yet */
    assert_int_equal(yn_ledger_restore_finish(f->l, 4, 5, WED_NOON_UTC), YN_OK);
    yn_ledger_health h;
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_TAIL, &h), YN_OK);
    assert_int_equal(h.mark_seq, 5);
    assert_int_equal(lf_sql_i64(f->path, "SELECT value FROM meta WHERE key = 'restored_mark'"), n);
    yn_card_facts c = lf_senior_card("4403040000000555");
    yn_ledger_result r;
    assert_int_equal(lf_debit(f, &c, 1500, &r), YN_OK);
    assert_int_equal(r.seq, 6); /* the district never held a 6 */
    lf_assert_verifies(f);
    free(district);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lost_records_come_back_as_they_were, lf_setup,
                                        lf_teardown),
        cmocka_unit_test_setup_teardown(test_records_that_do_not_fit_are_refused, lf_setup,
                                        lf_teardown),
        cmocka_unit_test_setup_teardown(test_district_holds_less_than_the_mark, lf_setup,
                                        lf_teardown),
    };
    return cmocka_run_group_tests(tests, lf_group_setup, lf_group_teardown);
}
