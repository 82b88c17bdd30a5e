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

/* The roster binds identifiers: one card, one identifier, each way; binding
 * an identifier again moves it, an entry without one unbinds. The blacklist
 * names a card number or an identifier; malformed ones are refused whole. */
static void test_roster_binds_identifiers(void **state)
{
    struct fx *f = *state;
    char card[20];
    bool lost = true;
    lf_roster(f, "4403040000000801", "A:04A1B2C3D4E5F6", 1);
    assert_int_equal(yn_ledger_ident_card(f->l, "A:04A1B2C3D4E5F6", card, &lost), YN_OK);
    assert_string_equal(card, "4403040000000801");
    assert_false(lost);
    assert_int_equal(yn_ledger_ident_card(f->l, "A:04A1B2C3D4E5F7", card, &lost), YN_ENOTFOUND);
    assert_string_equal(card, "");
    assert_int_equal(yn_ledger_ident_card(f->l, "a:04a1b2c3d4e5f6", card, NULL), YN_EINVAL);
    /* the same identifier bound to another card: it moves */
    lf_roster(f, "4403040000000802", "A:04A1B2C3D4E5F6", 2);
    assert_int_equal(yn_ledger_ident_card(f->l, "A:04A1B2C3D4E5F6", card, NULL), YN_OK);
    assert_string_equal(card, "4403040000000802");
    assert_int_equal(lf_sql_i64(f->path,
                                "SELECT COUNT(*) FROM cards WHERE card_no = '4403040000000801'"
                                " AND ident IS NULL AND roster_version = 1"),
                     1);
    /* a card gets another identifier (a new card issued): the old one is free */
    lf_roster(f, "4403040000000802", "B:1A2B3C4D", 3);
    assert_int_equal(yn_ledger_ident_card(f->l, "A:04A1B2C3D4E5F6", card, NULL), YN_ENOTFOUND);
    assert_int_equal(yn_ledger_ident_card(f->l, "B:1A2B3C4D", card, NULL), YN_OK);
    /* an entry without one unbinds */
    lf_roster(f, "4403040000000802", "", 4);
    assert_int_equal(yn_ledger_ident_card(f->l, "B:1A2B3C4D", card, NULL), YN_ENOTFOUND);
    /* a malformed identifier refuses the whole roster update */
    yn_card_facts c[2] = {lf_key_card("4403040000000803"), lf_key_card("4403040000000804")};
    snprintf(c[1].ident, sizeof c[1].ident, "A:0102");
    assert_int_equal(yn_ledger_roster_put(f->l, c, 2, 5), YN_EINVAL);
    assert_int_equal(lf_sql_i64(f->path, "SELECT COUNT(*) FROM cards WHERE roster_version = 5"), 0);

    /* the blacklist by identifier, whether bound or not, and by card number */
    lf_roster(f, "4403040000000801", "A:0A0B0C0D", 6);
    yn_ledger_blacklist_entry e[3] = {{.seq = 10, .lost = true},
                                      {.seq = 11, .lost = true},
                                      {.seq = 12, .card_no = "4403040000000802", .lost = true}};
    snprintf(e[0].ident, sizeof e[0].ident, "A:0A0B0C0D");
    snprintf(e[1].ident, sizeof e[1].ident, "A:99887766");
    assert_int_equal(yn_ledger_blacklist_apply_many(f->l, e, 3), YN_OK);
    assert_int_equal(yn_ledger_ident_card(f->l, "A:0A0B0C0D", card, &lost), YN_OK);
    assert_true(lost);
    assert_int_equal(yn_ledger_ident_card(f->l, "A:99887766", card, &lost), YN_ENOTFOUND);
    assert_true(lost);
    int64_t seq;
    assert_int_equal(yn_ledger_blacklist_seq(f->l, &seq), YN_OK);
    assert_int_equal(seq, 12);
    /* found again */
    yn_ledger_blacklist_entry found = {.seq = 13, .lost = false};
    snprintf(found.ident, sizeof found.ident, "A:0A0B0C0D");
    assert_int_equal(yn_ledger_blacklist_apply_many(f->l, &found, 1), YN_OK);
    assert_int_equal(yn_ledger_ident_card(f->l, "A:0A0B0C0D", card, &lost), YN_OK);
    assert_false(lost);
    /* neither, both, or a malformed identifier: refused, nothing applied */
    yn_ledger_blacklist_entry bad[3] = {{.seq = 20, .lost = true},
                                        {.seq = 21, .card_no = "4403040000000801", .lost = true},
                                        {.seq = 22, .lost = true}};
    snprintf(bad[1].ident, sizeof bad[1].ident, "A:0A0B0C0D");
    snprintf(bad[2].ident, sizeof bad[2].ident, "A:0a0b0c0d");
    for (int i = 0; i < 3; i++)
        assert_int_equal(yn_ledger_blacklist_apply_many(f->l, &bad[i], 1), YN_EINVAL);
    assert_int_equal(yn_ledger_blacklist_seq(f->l, &seq), YN_OK);
    assert_int_equal(seq, 13);
}

/* 忘带卡 looks a senior up by the card number's last digits and the birth
 * date: every match up to max, and whether there were more. */
static void test_roster_find(void **state)
{
    struct fx *f = *state;
    yn_card_facts c[4] = {lf_key_card("4403040000001234"), lf_key_card("4403049999991234"),
                          lf_key_card("4403040000005678"), lf_key_card("1234")};
    c[1].birth_ymd = 19450302; /* another birthday */
    assert_int_equal(yn_ledger_roster_put(f->l, c, 4, 1), YN_OK);
    yn_card_facts found[2];
    size_t n = 99;
    assert_int_equal(yn_ledger_roster_find(f->l, "1234", 19450301, found, 2, &n), YN_OK);
    assert_int_equal(n, 2);
    assert_string_equal(found[0].card_no, "1234");
    assert_string_equal(found[1].card_no, "4403040000001234");
    assert_int_equal(found[1].flags, YN_FLAG_DIBAO);
    assert_int_equal(yn_ledger_roster_find(f->l, "01234", 19450301, found, 2, &n), YN_OK);
    assert_int_equal(n, 1);
    assert_string_equal(found[0].card_no, "4403040000001234");
    assert_int_equal(yn_ledger_roster_find(f->l, "1234", 19450301, found, 1, &n), YN_OK);
    assert_int_equal(n, 2); /* one returned, more held */
    assert_int_equal(yn_ledger_roster_find(f->l, "1234", 19450303, found, 2, &n), YN_OK);
    assert_int_equal(n, 0);
    assert_int_equal(yn_ledger_roster_find(f->l, "", 19450301, found, 2, &n), YN_EINVAL);
    /* cards known only by their taps are not the roster */
    yn_ledger_result r;
    yn_card_facts off = lf_key_card("4403040000009999");
    assert_int_equal(lf_debit(f, &off, 1500, &r), YN_OK);
    assert_int_equal(yn_ledger_roster_find(f->l, "9999", 19450301, found, 2, &n), YN_OK);
    assert_int_equal(n, 0);
    /* by the birth-date index, not a scan of the cards */
    sqlite3 *db;
    sqlite3_stmt *s;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "EXPLAIN QUERY PLAN SELECT card_no FROM cards WHERE"
                                        " birth_ymd = 1 AND roster_version IS NOT NULL",
                                        -1, &s, NULL),
                     SQLITE_OK);
    bool indexed = false;
    while (sqlite3_step(s) == SQLITE_ROW)
        indexed |= strstr((const char *)sqlite3_column_text(s, 3), "cards_birth") != NULL;
    sqlite3_finalize(s);
    sqlite3_close(db);
    assert_true(indexed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, lf_setup, lf_teardown)
        T(test_allocate_twice),
        T(test_policy_store_and_active),
        T(test_apply_update_all_or_nothing),
        T(test_roster_binds_identifiers),
        T(test_roster_find),
#undef T
    };
    return cmocka_run_group_tests_name("ledger_district", tests, lf_group_setup, lf_group_teardown);
}
