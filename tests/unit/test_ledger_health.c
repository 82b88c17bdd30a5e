/* test_ledger_health.c — is the ledger fit to sell from (ledger_health.c):
 * one daemon per ledger (the lock, and the message naming the holder); the
 * check of the pages, of the chain's tail and of the high-water mark finds a
 * damaged page, an altered record, records lost that may have left the
 * terminal, and a seq written again over lost records; storage failures are
 * counted for the daemon to check after. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fix_ledger.h"
#include "ledger.h"
#include "log.h"

static void write_at(const char *path, long offset, const void *bytes, size_t n)
{
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, bytes, n, offset), (ssize_t)n);
    close(fd);
}

/* ---- one daemon per ledger ------------------------------------------------------- */

static void test_one_daemon_per_ledger(void **state)
{
    struct fx *f = *state;
    yn_ledger_opts o = lf_opts_for(f);
    o.lock = true;
    yn_ledger *first = NULL, *second = NULL, *unlocked = NULL;
    assert_int_equal(yn_ledger_open(&o, &first), YN_OK);
    lf_log_begin(f);
    assert_int_equal(yn_ledger_open(&o, &second), YN_EBUSY);
    const char *log = lf_log_end();
    assert_null(second);
    char want[96];
    snprintf(want, sizeof want, "in use by another test_ledger_health (pid %ld)", (long)getpid());
    assert_non_null(strstr(log, want));
    assert_non_null(strstr(log, "stop that one first"));
    /* the same daemon's sync handle and a technician's read-only look do not lock */
    yn_ledger_opts plain = lf_opts_for(f);
    assert_int_equal(yn_ledger_open(&plain, &unlocked), YN_OK);
    yn_ledger_close(unlocked);
    yn_ledger_close(first);
    /* gone with the holder */
    assert_int_equal(yn_ledger_open(&o, &second), YN_OK);
    yn_ledger_close(second);
}

/* ---- the check -------------------------------------------------------------------- */

static void test_healthy_ledger_checks(void **state)
{
    struct fx *f = *state;
    yn_ledger_health h;
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_PAGES, &h), YN_OK);
    assert_int_equal(h.head_seq, 0);
    lf_sell(f, 80); /* more than the tail */
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_PAGES, &h), YN_OK);
    assert_int_equal(h.head_seq, 80);
    assert_int_equal(h.mark_seq, 0);
    assert_string_equal(h.what, "");
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_TAIL, &h), YN_OK);
}

static void test_tail_finds_an_altered_record(void **state)
{
    struct fx *f = *state;
    lf_sell(f, 80);
    /* an old record altered: outside the tail (the full verify finds it) */
    lf_tamper(f, 3, -1);
    yn_ledger_health h;
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_TAIL, &h), YN_OK);
    yn_ledger_verify_report rep;
    assert_int_equal(yn_ledger_verify(f->l, &rep), YN_ECORRUPT);
    assert_int_equal(rep.first_bad_seq, 3);
    /* a recent one: the tail */
    lf_tamper(f, 70, -1);
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_TAIL, &h), YN_ECORRUPT);
    assert_int_equal(h.first_bad_seq, 70);
    assert_non_null(strstr(h.what, "record 70: its hash does not match"));
    /* a record's stored hash altered: the next one's link breaks too, the record is named */
    lf_tamper(f, 70, 1);
    lf_sql_exec(f->path, "UPDATE journal SET hash = zeroblob(32) WHERE seq = 75");
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_TAIL, &h), YN_ECORRUPT);
    assert_int_equal(h.first_bad_seq, 75);
    /* the head missing: the chain's last record is not the head */
    lf_sql_exec(f->path, "UPDATE journal SET hash = (SELECT prev_hash FROM journal WHERE seq = 76)"
                         " WHERE seq = 75; DROP TRIGGER journal_no_delete;"
                         " DELETE FROM journal WHERE seq = 78");
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_TAIL, &h), YN_ECORRUPT);
    assert_int_equal(h.first_bad_seq, 78);
    assert_non_null(strstr(h.what, "record 78 missing"));
}

static void test_pages_check_finds_a_damaged_page(void **state)
{
    struct fx *f = *state;
    lf_sell(f, 10);
    char older[700];
    snprintf(older, sizeof older, "%s/copy.db", f->dir);
    lf_snapshot(f, older); /* the WAL now in the file */
    int64_t page = lf_sql_i64(f->path, "SELECT rootpage FROM sqlite_schema WHERE name = 'cards'");
    yn_ledger_close(f->l);
    /* the cards page's b-tree header: a page type that does not exist, a cell count too big */
    write_at(f->path, (page - 1) * 4096, "\x07\x00\x00\x7f\xff", 5);
    yn_ledger_opts o = lf_opts_for(f);
    assert_int_equal(yn_ledger_open(&o, &f->l), YN_OK);
    yn_ledger_health h;
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_TAIL, &h), YN_OK); /* not its job */
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_PAGES, &h), YN_ECORRUPT);
    assert_non_null(strstr(h.what, "SQLite quick_check"));
}

/* ---- the high-water mark ---------------------------------------------------------------- */

static void test_mark_follows_what_may_leave(void **state)
{
    struct fx *f = *state;
    lf_sell(f, 5);
    assert_int_equal(yn_ledger_mark_raise(f->l, 4), YN_OK);
    assert_int_equal(yn_ledger_mark_raise(f->l, 2), YN_OK); /* never lowered by a raise */
    assert_int_equal(yn_ledger_mark_raise(f->l, 9), YN_ENOTFOUND);
    yn_ledger_health h;
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_TAIL, &h), YN_OK);
    assert_int_equal(h.mark_seq, 4);
    char path[700], text[256];
    snprintf(path, sizeof path, "%s.mark", f->path);
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    assert_non_null(fgets(text, sizeof text, in));
    fclose(in);
    assert_memory_equal(text, "yinian-ledger-mark 1 SZFT0001 4 ", 32);
    snprintf(path, sizeof path, "%s.mark.new", f->path);
    assert_int_not_equal(access(path, F_OK), 0);
}

static void test_records_lost_below_the_mark(void **state)
{
    struct fx *f = *state;
    free(lf_lose_records(f, 3, 3)); /* 4..6 sent, then lost here */
    yn_ledger_health h;
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_PAGES, &h), YN_ESTALE);
    assert_int_equal(h.head_seq, 3);
    assert_int_equal(h.mark_seq, 6);
    assert_int_equal(h.lost_first, 4);
    assert_int_equal(h.lost_last, 6);
    assert_non_null(strstr(h.what, "records 4-6 lost"));
    /* sold over them anyway (what the daemon must never do): the seq now differs */
    lf_sell(f, 3);
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_TAIL, &h), YN_ECORRUPT);
    assert_int_equal(h.first_bad_seq, 6);
    assert_non_null(strstr(h.what, "record 6 is not the one that may have been sent"));
}

static void test_acknowledged_records_lost_without_a_mark(void **state)
{
    struct fx *f = *state;
    lf_sell(f, 4);
    yn_ledger_batch b;
    assert_int_equal(yn_ledger_batch_next(f->l, 100, WED_NOON_UTC, &b), YN_OK);
    assert_int_equal(yn_ledger_batch_ack(f->l, b.id, WED_NOON_UTC), YN_OK);
    /* a ledger whose meta says 4 acknowledged but whose journal ends at 2 */
    lf_sql_exec(f->path, "DROP TRIGGER journal_no_delete; DELETE FROM journal WHERE seq > 2;"
                         "DELETE FROM day_runs WHERE first_seq > 2");
    yn_ledger_health h;
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_TAIL, &h), YN_ESTALE);
    assert_int_equal(h.lost_first, 3);
    assert_int_equal(h.lost_last, 4);
    assert_non_null(strstr(h.what, "acknowledged by the district"));
}

static void test_a_mark_that_is_not_ours(void **state)
{
    struct fx *f = *state;
    lf_sell(f, 2);
    char path[700];
    snprintf(path, sizeof path, "%s.mark", f->path);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fputs("garbage\n", out);
    fclose(out);
    yn_ledger_health h;
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_TAIL, &h), YN_ECORRUPT);
    assert_non_null(strstr(h.what, "is not a mark file"));
    assert_int_equal(yn_ledger_mark_raise(f->l, 2), YN_ECORRUPT); /* nothing leaves */
    out = fopen(path, "w");
    assert_non_null(out);
    fprintf(out, "yinian-ledger-mark 1 OTHER 1 %064d\n", 0);
    fclose(out);
    assert_int_equal(yn_ledger_check(f->l, YN_LEDGER_CHECK_TAIL, &h), YN_ECORRUPT);
    assert_non_null(strstr(h.what, "terminal OTHER's"));
}

static void test_storage_errors_are_counted(void **state)
{
    struct fx *f = *state;
    lf_sell(f, 2);
    int last = -1;
    assert_int_equal(yn_ledger_storage_errors(f->l, &last), 0);
    assert_int_equal(last, YN_OK);
    yn_ledger_opts o = lf_opts_for(f);
    o.max_pages = lf_sql_i64(f->path, "PRAGMA page_count");
    lf_reopen(f, &o);
    yn_card_facts c = lf_key_card("4403040000000777");
    yn_ledger_result r;
    int st = YN_OK;
    for (int i = 0; i < 200 && st == YN_OK; i++) /* until the quota is reached */
        st = lf_debit(f, &c, 1500, &r);
    assert_int_equal(st, YN_ENOSPC);
    assert_int_equal(yn_ledger_storage_errors(f->l, &last), 1);
    assert_int_equal(last, YN_ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_one_daemon_per_ledger, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(test_healthy_ledger_checks, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(test_tail_finds_an_altered_record, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(test_pages_check_finds_a_damaged_page, lf_setup,
                                        lf_teardown),
        cmocka_unit_test_setup_teardown(test_mark_follows_what_may_leave, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(test_records_lost_below_the_mark, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(test_acknowledged_records_lost_without_a_mark, lf_setup,
                                        lf_teardown),
        cmocka_unit_test_setup_teardown(test_a_mark_that_is_not_ours, lf_setup, lf_teardown),
        cmocka_unit_test_setup_teardown(test_storage_errors_are_counted, lf_setup, lf_teardown),
    };
    return cmocka_run_group_tests(tests, lf_group_setup, lf_group_teardown);
}
