/* test_ledger_district.c — what the district sends (ledger_district.c): allocations applied
 * once, policies stored and activated, whole update documents all or nothing. */
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

/* ---- credits ------------------------------------------------------------------------ */
static void test_allocate_twice(void **state)
{
    struct fx *f = *state;
    yn_ledger_when w = lf_at(f, WED_NOON_UTC);
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
    assert_int_equal(lf_wallet_of(f, "4403040000000070"), 3000);
    assert_int_equal(lf_journal_count(f), 1);
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
    assert_int_equal(lf_wallet_of(f, "4403040000000070"), 3500);
    lf_assert_verifies(f);
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
    assert_int_equal(lf_sql_i64(f->path, "SELECT COUNT(*) FROM policies"), 1);
}

/* ---- update documents: one transaction ------------------------------------------- */

/* Counts that show what an update left in the file. */
static int64_t update_traces(struct fx *f)
{
    return lf_sql_i64(f->path, "SELECT (SELECT COUNT(*) FROM journal) * 1000000"
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
    size_t n = lf_read_policy_doc(doc, sizeof doc);
    yn_card_facts cards[2] = {lf_key_card("4403040000000301"), lf_senior_card("4403040000000302")};
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
                          .alloc_when = lf_at(f, WED_NOON_UTC),
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
    assert_int_equal(lf_journal_count(f), 0);
    assert_int_equal(lf_wallet_of(f, "4403040000000301"), 0);
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
    assert_int_equal(lf_sql_i64(f->path, "SELECT COUNT(*) FROM roster WHERE version = 5"), 2);
    assert_int_equal(lf_wallet_of(f, "4403040000000301"), 3000);
    assert_int_equal(lf_wallet_of(f, "4403040000000302"), 2000);
    assert_int_equal(lf_journal_count(f), 2);
    int64_t seq;
    assert_int_equal(yn_ledger_blacklist_seq(f->l, &seq), YN_OK);
    assert_int_equal(seq, 10);
    assert_int_equal(lf_sql_i64(f->path, "SELECT COUNT(*) FROM blacklist WHERE lost = 1"), 2);
    assert_int_equal(lf_sql_i64(f->path, "SELECT COUNT(*) FROM policies WHERE active = 1"), 1);
    assert_int_equal(yn_ledger_meta_get(f->l, "doc_version", v, sizeof v), YN_OK);
    assert_string_equal(v, "1");

    /* the same document again (a lost reply): applied parts skipped, no error */
    kv[0].value = "2";
    assert_int_equal(yn_ledger_apply_update(f->l, &u, err, sizeof err), YN_OK);
    assert_int_equal(lf_journal_count(f), 2);
    assert_int_equal(lf_wallet_of(f, "4403040000000301"), 3000);
    assert_int_equal(yn_ledger_meta_get(f->l, "doc_version", v, sizeof v), YN_OK);
    assert_string_equal(v, "2");
    /* the counter's handle keeps a good head: a debit after it chains on */
    yn_ledger_result r;
    assert_int_equal(lf_debit(f, &cards[0], 1200, &r), YN_OK);
    assert_int_equal(r.seq, 3);
    lf_assert_verifies(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, lf_setup, lf_teardown)
        T(test_allocate_twice),
        T(test_policy_store_and_active),
        T(test_apply_update_all_or_nothing),
#undef T
    };
    return cmocka_run_group_tests_name("ledger_district", tests, lf_group_setup, lf_group_teardown);
}
