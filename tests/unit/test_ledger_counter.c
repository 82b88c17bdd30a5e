/* test_ledger_counter.c — the counter (ledger_counter.c): debits of every kind, tap ids and
 * replays, every refusal, the card stamp floor, the stamp meal and its notice,
 * reversals, and the offline cap. Values are asserted, not only statuses. */
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

/* ---- debit -------------------------------------------------------------------------- */
static void test_debit_subsidised_meal(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = lf_key_card("4403040000000001");
    lf_topup(f, c.card_no, 1000);
    yn_ledger_result r;
    assert_int_equal(lf_debit(f, &c, 1800, &r), YN_OK);
    assert_int_equal(r.seq, 2);
    assert_int_equal(r.kind, YN_LEDGER_MEAL);
    assert_true(r.decision.allowed);
    assert_int_equal(r.decision.reason, YN_REASON_NONE);
    assert_string_equal(r.decision.category, "key_group");
    assert_string_equal(r.decision.period, "lunch");
    assert_int_equal(r.decision.price_fen, 1800);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(r.decision.n_layers, 1);
    assert_string_equal(r.decision.layers[0].source, "city");
    assert_int_equal(r.decision.layers[0].fen, 1500);
    assert_int_equal(r.decision.wallet_fen, 300);
    assert_int_equal(r.decision.cash_fen, 0);
    assert_int_equal(r.wallet_after_fen, 700);
    assert_int_equal(lf_wallet_of(f, c.card_no), 700);

    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, 2, &rec), YN_OK);
    assert_string_equal(rec.terminal, "SZFT0001");
    assert_string_equal(rec.card_no, c.card_no);
    assert_int_equal(rec.local_ymd, DAY);
    assert_int_equal(rec.price_fen, 1800);
    assert_int_equal(rec.wallet_after_fen, 700);
    assert_int_equal(rec.card_prev_seq, 1);
    assert_string_equal(rec.operator_id, "op1");
    assert_int_equal(rec.policy_version, 1);
    assert_true(rec.clock_trusted);
    /* the chain: this record's prev_hash is record 1's hash, and its hash recomputes */
    yn_ledger_record first;
    assert_int_equal(yn_ledger_record_get(f->l, 1, &first), YN_OK);
    assert_memory_equal(rec.prev_hash, first.hash, YN_LEDGER_HASH_LEN);
    uint8_t h[YN_LEDGER_HASH_LEN];
    yn_ledger_record_hash(&rec, rec.prev_hash, h);
    assert_memory_equal(h, rec.hash, YN_LEDGER_HASH_LEN);
    int64_t head;
    assert_int_equal(yn_ledger_head(f->l, &head, h), YN_OK);
    assert_int_equal(head, 2);
    assert_memory_equal(h, rec.hash, YN_LEDGER_HASH_LEN);
    assert_int_equal(yn_ledger_record_get(f->l, 3, &rec), YN_ENOTFOUND);

    /* wallet short: the rest in cash */
    yn_card_facts poor = lf_senior_card("4403040000000002");
    assert_int_equal(lf_debit(f, &poor, 1200, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 500);
    assert_int_equal(r.decision.wallet_fen, 0);
    assert_int_equal(r.decision.cash_fen, 700);
    assert_int_equal(r.wallet_after_fen, 0);
    lf_assert_verifies(f);
}

static void test_debit_weighed_meal(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = lf_senior_card("4403040000000003");
    yn_meal meal = {.weight_g = 350, .price_per_100g_fen = 500};
    yn_ledger_tap tap = {.tap_id = 77,
                         .card = &c,
                         .meal = &meal,
                         .canteen = &lf_canteen,
                         .when = lf_at(f, WED_NOON_UTC)};
    yn_ledger_result r;
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_OK);
    assert_int_equal(r.decision.price_fen, 1750);
    assert_int_equal(r.decision.subsidy_fen, 500);
    assert_int_equal(r.decision.cash_fen, 1250);
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, r.seq, &rec), YN_OK);
    assert_int_equal(rec.weight_g, 350);
    assert_int_equal(rec.price_per_100g_fen, 500);
    assert_string_equal(rec.operator_id, "");

    /* bad input is the policy's EINVAL, nothing written */
    meal.price_fen = 100; /* fixed price and weight together */
    tap.tap_id = 78;
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_EINVAL);
    tap.tap_id = 0;
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_EINVAL);
    assert_int_equal(lf_journal_count(f), 1);
}

static void test_replayed_tap_returns_original(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = lf_key_card("4403040000000010");
    lf_topup(f, c.card_no, 2000);
    yn_ledger_result first, again;
    int64_t t = f->next_tap++;
    assert_int_equal(lf_debit_at(f, &c, 1800, WED_NOON_UTC, t, &first), YN_OK);
    int64_t n = lf_journal_count(f);
    /* the same tap id later, even with another price: the original, no charge */
    assert_int_equal(lf_debit_at(f, &c, 2500, WED_NOON_UTC + 5, t, &again), YN_EDUPLICATE);
    assert_int_equal(again.seq, first.seq);
    assert_int_equal(again.kind, YN_LEDGER_MEAL);
    assert_int_equal(again.decision.price_fen, 1800);
    assert_int_equal(again.decision.subsidy_fen, 1500);
    assert_int_equal(again.decision.wallet_fen, 300);
    assert_int_equal(again.wallet_after_fen, 1700);
    assert_true(again.decision.allowed);
    assert_string_equal(again.decision.category, "key_group");
    assert_int_equal(lf_journal_count(f), n);
    assert_int_equal(lf_wallet_of(f, c.card_no), 1700);
    /* replayed after the card was blacklisted, or within the minimum interval:
     * still the original result, not a refusal */
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 1, c.card_no, true), YN_OK);
    assert_int_equal(lf_debit_at(f, &c, 1800, WED_NOON_UTC + 6, t, &again), YN_EDUPLICATE);
    assert_int_equal(again.seq, first.seq);
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 2, c.card_no, false), YN_OK);
    yn_ledger_opts o = lf_opts_for(f);
    o.min_interval_s = 60;
    lf_reopen(f, &o);
    assert_int_equal(lf_debit_at(f, &c, 1800, WED_NOON_UTC + 7, t, &again), YN_EDUPLICATE);
    assert_int_equal(again.seq, first.seq);
    assert_int_equal(again.wallet_after_fen, 1700);
    /* usage was not counted twice: period still used once */
    yn_ledger_account a;
    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC, 5, &a), YN_OK);
    assert_int_equal(a.meals_month, 1);
    assert_int_equal(a.subsidy_month_fen, 1500);
    /* the card's last tap is kept in its row */
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT last_tap FROM cards WHERE card_no = '%s'", c.card_no);
    assert_int_equal(lf_sql_i64(f->path, sql), t);
    /* no index on tap_id: the journal has only its two partial indexes on
     * reverses_seq (reversals, stamp notices), which a meal does not touch */
    assert_int_equal(lf_sql_i64(f->path,
                                "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index'"
                                " AND tbl_name = 'journal' AND sql LIKE '%WHERE kind = %'"),
                     2);
    assert_int_equal(lf_sql_i64(f->path, "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index'"
                                         " AND tbl_name = 'journal'"),
                     2);
    lf_assert_verifies(f);
}

/* A replay is the card's own last tap, whatever happened since elsewhere; any
 * other tap id must be above every one journaled. */
static void test_tap_ids_increase(void **state)
{
    struct fx *f = *state;
    yn_card_facts a = lf_key_card("4403040000000013"), b = lf_senior_card("4403040000000014");
    lf_topup(f, a.card_no, 5000);
    yn_ledger_result ra, rb, r;
    int64_t ta = f->next_tap++, tb = f->next_tap++;
    assert_int_equal(lf_debit_at(f, &a, 1800, WED_NOON_UTC, ta, &ra), YN_OK);
    assert_int_equal(lf_debit_at(f, &b, 1500, WED_NOON_UTC + 1, tb, &rb), YN_OK);
    int64_t n = lf_journal_count(f);

    /* a's last tap after b's: still a replay of a's meal */
    assert_int_equal(lf_debit_at(f, &a, 1800, WED_NOON_UTC + 2, ta, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, ra.seq);
    assert_int_equal(r.wallet_after_fen, 5000 - 300);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    /* b's id with card a, a's id with card b: not a replay of the other card's
     * tap, and not new either: refused, nothing written, and the log says why */
    lf_log_begin(f);
    assert_int_equal(lf_debit_at(f, &a, 1800, WED_NOON_UTC + 3, tb, &r), YN_EINVAL);
    const char *log = lf_log_end();
    assert_non_null(strstr(log, "tap id not increasing"));
    assert_non_null(strstr(log, a.card_no));
    assert_int_equal(r.seq, 0);
    assert_false(r.decision.allowed);
    assert_int_equal(lf_debit_at(f, &b, 1500, WED_NOON_UTC + 3, ta, &r), YN_EINVAL);
    assert_int_equal(r.seq, 0);
    /* what a terminal starts above after a restart */
    int64_t max_tap = 0;
    assert_int_equal(yn_ledger_tap_id_max(f->l, &max_tap), YN_OK);
    assert_int_equal(max_tap, tb);
    /* stale ids of no card, below the highest: refused too */
    assert_int_equal(lf_debit_at(f, &a, 1800, WED_NOON_UTC + 4, ta - 1, &r), YN_EINVAL);
    assert_int_equal(lf_debit_at(f, &b, 1500, WED_NOON_UTC + 4, 1, &r), YN_EINVAL);
    assert_int_equal(lf_journal_count(f), n);
    assert_int_equal(lf_wallet_of(f, a.card_no), 5000 - 300);

    /* after a reversal and an allocation on card a, its last tap is still a replay:
     * the original meal, not the reversal */
    yn_ledger_when w = lf_at(f, WED_NOON_UTC + 60);
    yn_ledger_result rv;
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, ra.seq, "op2", &w, &rv), YN_OK);
    assert_int_equal(yn_ledger_allocate(f->l, "alloc-13", a.card_no, "district", 100, &w, &r),
                     YN_OK);
    n = lf_journal_count(f);
    assert_int_equal(lf_debit_at(f, &a, 1800, WED_NOON_UTC + 61, ta, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, ra.seq);
    assert_int_equal(r.kind, YN_LEDGER_MEAL);
    assert_int_equal(r.decision.price_fen, 1800);
    assert_int_equal(lf_journal_count(f), n);
    assert_int_equal(lf_wallet_of(f, a.card_no), 5000 + 100);

    /* the next id goes through, for either card; ids may skip */
    int64_t next = f->next_tap + 50;
    f->next_tap = next + 1;
    assert_int_equal(lf_debit_at(f, &b, 1500, WED_EVE_UTC, next, &r), YN_OK);
    assert_int_equal(r.seq, n + 1);
    /* a refused tap is not journaled and its id not used up */
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 1, a.card_no, true), YN_OK);
    assert_int_equal(lf_debit_at(f, &a, 1800, WED_EVE_UTC + 1, next + 1, &r), YN_EREFUSED);
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 2, a.card_no, false), YN_OK);
    assert_int_equal(lf_debit_at(f, &a, 1800, WED_EVE_UTC + 2, next + 1, &r), YN_OK);
    f->next_tap = next + 2;

    /* a new handle (the terminal restarted) knows the highest id from the file */
    yn_ledger_opts o = lf_opts_for(f);
    lf_reopen(f, &o);
    assert_int_equal(lf_debit_at(f, &a, 1800, WED_EVE_UTC + 3, next, &r), YN_EINVAL);
    assert_int_equal(lf_debit_at(f, &b, 1500, WED_EVE_UTC + 3, next, &r), YN_EDUPLICATE);
    assert_int_equal(lf_debit_at(f, &a, 1800, WED_EVE_UTC + 3, next + 1, &r), YN_EDUPLICATE);
    assert_int_equal(lf_debit_at(f, &b, 1500, WED_EVE_UTC + 3, next + 2, &r), YN_OK);
    lf_assert_verifies(f);
}

/* Top-ups follow the same tap id rules, on the same sequence of ids. */
static void test_topup_tap_ids(void **state)
{
    struct fx *f = *state;
    const char *a = "4403040000000015", *b = "4403040000000016";
    yn_ledger_when w = lf_at(f, WED_NOON_UTC);
    yn_ledger_result r1, r;
    int64_t t = f->next_tap++;
    assert_int_equal(yn_ledger_topup(f->l, t, a, 800, "op1", &w, &r1), YN_OK);
    assert_int_equal(r1.kind, YN_LEDGER_TOPUP);
    int64_t n = lf_journal_count(f);
    /* replay: the original, credited once */
    assert_int_equal(yn_ledger_topup(f->l, t, a, 900, "op1", &w, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, r1.seq);
    assert_int_equal(r.kind, YN_LEDGER_TOPUP);
    assert_int_equal(r.decision.cash_fen, 800);
    assert_int_equal(r.wallet_after_fen, 800);
    /* the id on another card, or an id below the highest: refused, nothing written */
    lf_log_begin(f);
    assert_int_equal(yn_ledger_topup(f->l, t, b, 800, "op1", &w, &r), YN_EINVAL);
    const char *log = lf_log_end();
    assert_non_null(strstr(log, "top-up"));
    assert_non_null(strstr(log, "tap id not increasing"));
    assert_int_equal(r.seq, 0);
    assert_int_equal(yn_ledger_topup(f->l, t - 1, a, 800, "op1", &w, &r), YN_EINVAL);
    /* a debit may not reuse a top-up's id either: on the same card it is that
     * top-up's replay (its record, kind top-up), on another card refused */
    yn_card_facts cb = lf_senior_card(b), ca = lf_senior_card(a);
    assert_int_equal(lf_debit_at(f, &cb, 1500, WED_NOON_UTC, t, &r), YN_EINVAL);
    assert_int_equal(lf_debit_at(f, &ca, 1500, WED_NOON_UTC, t, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, r1.seq);
    assert_int_equal(r.kind, YN_LEDGER_TOPUP);
    assert_int_equal(lf_journal_count(f), n);
    assert_int_equal(lf_wallet_of(f, a), 800);
    assert_int_equal(lf_wallet_of(f, b), 0);
    /* a meal on the card, then the top-up's id again: no longer the card's last tap */
    yn_ledger_result m;
    assert_int_equal(lf_debit(f, &ca, 1500, &m), YN_OK);
    assert_int_equal(yn_ledger_topup(f->l, t, a, 800, "op1", &w, &r), YN_EINVAL);
    assert_int_equal(yn_ledger_topup(f->l, f->next_tap++, b, 300, "op1", &w, &r), YN_OK);
    assert_int_equal(r.wallet_after_fen, 300);
    lf_assert_verifies(f);
}

static void test_second_meal_in_period_full_price(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = lf_key_card("4403040000000011");
    yn_ledger_result r;
    assert_int_equal(lf_debit(f, &c, 1800, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(lf_debit(f, &c, 1800, &r), YN_OK); /* sold without subsidy */
    assert_int_equal(r.decision.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(r.decision.subsidy_fen, 0);
    assert_int_equal(r.decision.cash_fen, 1800);
    /* evening: no period, full price, usage untouched */
    assert_int_equal(lf_debit_at(f, &c, 1000, WED_EVE_UTC, 9001, &r), YN_OK);
    assert_int_equal(r.decision.reason, YN_REASON_NO_PERIOD);
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, r.seq, &rec), YN_OK);
    assert_int_equal(rec.reason, YN_REASON_NO_PERIOD);
    yn_ledger_account a;
    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC, 5, &a), YN_OK);
    assert_int_equal(a.meals_month, 1);
    /* next day's lunch is subsidised again */
    assert_int_equal(lf_debit_at(f, &c, 1800, WED_NOON_UTC + 86400, 9002, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC, 5, &a), YN_OK);
    assert_int_equal(a.meals_month, 2);
    assert_int_equal(a.subsidy_month_fen, 3000);
    lf_assert_verifies(f);
}

static void test_too_soon(void **state)
{
    struct fx *f = *state;
    yn_ledger_opts o = lf_opts_for(f);
    o.min_interval_s = 60;
    lf_reopen(f, &o);
    yn_card_facts c = lf_key_card("4403040000000020");
    yn_meal meal = {.price_fen = 1800};
    yn_ledger_tap tap = {.tap_id = 1,
                         .card = &c,
                         .meal = &meal,
                         .canteen = &lf_canteen,
                         .when = {.utc_s = WED_NOON_UTC, .mono_ms = 100000, .clock_trusted = true}};
    yn_ledger_result r;
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_OK);

    tap.tap_id = 2; /* 10 s later by both clocks */
    tap.when.utc_s += 10;
    tap.when.mono_ms += 10000;
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_EREFUSED);
    assert_false(r.decision.allowed);
    assert_int_equal(r.decision.reason, YN_REASON_TOO_SOON);
    assert_int_equal(r.seq, 0);
    assert_int_equal(lf_journal_count(f), 1);

    /* the wall clock jumped an hour ahead, the monotonic one says 20 s: still too soon */
    tap.when.utc_s += 3600;
    tap.when.mono_ms += 10000;
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_EREFUSED);
    assert_int_equal(r.decision.reason, YN_REASON_TOO_SOON);

    /* 61 s by the monotonic clock: allowed */
    tap.when.mono_ms = 100000 + 61000;
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_OK);
    assert_int_equal(r.decision.reason, YN_REASON_PERIOD_USED);

    /* after a reboot the monotonic clock restarts: the wall clock decides */
    o.boot_id = "boot-b";
    lf_reopen(f, &o);
    tap.tap_id = 3;
    tap.when.mono_ms = 5000; /* small, but of another boot */
    tap.when.utc_s = WED_NOON_UTC + 3600 + 20 + 30;
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_EREFUSED);
    assert_int_equal(r.decision.reason, YN_REASON_TOO_SOON);
    tap.when.utc_s += 60;
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_OK);
    assert_int_equal(lf_journal_count(f), 3);
    lf_assert_verifies(f);
}

static void test_blacklisted_card_refused(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = lf_key_card("4403040000000030");
    lf_topup(f, c.card_no, 1000);
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 5, c.card_no, true), YN_OK);
    int64_t seq;
    assert_int_equal(yn_ledger_blacklist_seq(f->l, &seq), YN_OK);
    assert_int_equal(seq, 5);
    int64_t n = lf_journal_count(f);
    yn_ledger_result r;
    assert_int_equal(lf_debit(f, &c, 1800, &r), YN_EREFUSED);
    assert_false(r.decision.allowed);
    assert_int_equal(r.decision.reason, YN_REASON_LOST);
    assert_int_equal(r.decision.wallet_fen, 0);
    assert_int_equal(lf_journal_count(f), n);
    assert_int_equal(lf_wallet_of(f, c.card_no), 1000);

    /* sequence numbers only go up: a stale or repeated change is refused whole */
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 5, c.card_no, false), YN_ESTALE);
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 3, c.card_no, false), YN_ESTALE);
    yn_ledger_blacklist_entry batch[2] = {{.seq = 6, .card_no = "X1", .lost = true},
                                          {.seq = 6, .lost = false}};
    strcpy(batch[1].card_no, c.card_no);
    assert_int_equal(yn_ledger_blacklist_apply_many(f->l, batch, 2), YN_ESTALE);
    assert_int_equal(lf_sql_i64(f->path, "SELECT COUNT(*) FROM blacklist WHERE card_no = 'X1'"), 0);
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, NULL, &r), YN_EINVAL);
    assert_int_equal(lf_debit(f, &c, 1800, &r), YN_EREFUSED);

    /* found again */
    batch[1].seq = 7;
    assert_int_equal(yn_ledger_blacklist_apply_many(f->l, batch, 2), YN_OK);
    assert_int_equal(yn_ledger_blacklist_seq(f->l, &seq), YN_OK);
    assert_int_equal(seq, 7);
    assert_int_equal(lf_debit(f, &c, 1800, &r), YN_OK);
    assert_int_equal(r.wallet_after_fen, 700);
}

static void test_roster_overrides_card(void **state)
{
    struct fx *f = *state;
    /* the card says it lives in another district: no subsidy here */
    yn_card_facts c = lf_key_card("4403040000000040");
    c.district = 440305;
    c.street = 440305001;
    yn_ledger_result r;
    assert_int_equal(lf_debit(f, &c, 1800, &r), YN_OK);
    assert_int_equal(r.decision.reason, YN_REASON_OUTSIDE_AREA);
    assert_int_equal(r.decision.subsidy_fen, 0);
    /* the roster (the district's latest word) says it moved here */
    yn_card_facts roster = lf_key_card(c.card_no);
    roster.flags = YN_FLAG_DIBAO;
    assert_int_equal(yn_ledger_roster_put(f->l, &roster, 1, 42), YN_OK);
    assert_int_equal(lf_debit_at(f, &c, 1800, WED_NOON_UTC + 86400, 2001, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    char v[32];
    assert_int_equal(yn_ledger_meta_get(f->l, "roster_version", v, sizeof v), YN_OK);
    assert_string_equal(v, "42");
    /* and then that the card expired */
    roster.expiry_ymd = 20250101;
    assert_int_equal(yn_ledger_roster_put(f->l, &roster, 1, 43), YN_OK);
    int64_t n = lf_journal_count(f);
    assert_int_equal(lf_debit_at(f, &c, 1800, WED_NOON_UTC + 2 * 86400, 2002, &r), YN_EREFUSED);
    assert_int_equal(r.decision.reason, YN_REASON_EXPIRED);
    assert_int_equal(lf_journal_count(f), n);
    assert_int_equal(lf_sql_i64(f->path, "SELECT version FROM roster"), 43);
}

/* What the card's stamp says (a meal at another canteen) counts like the ledger's own. */
static void test_usage_floor_from_card(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = lf_key_card("4403040000000045");
    yn_usage floor = {.meals_period = 1, .meals_day = 1};
    yn_meal meal = {.price_fen = 1800};
    yn_ledger_tap tap = {.tap_id = 1,
                         .card = &c,
                         .meal = &meal,
                         .canteen = &lf_canteen,
                         .when = lf_at(f, WED_NOON_UTC),
                         .usage_floor = &floor};
    yn_ledger_result r;
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_OK);
    assert_int_equal(r.decision.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(r.decision.subsidy_fen, 0);
    assert_int_equal(r.decision.cash_fen, 1800);
    yn_ledger_account a;
    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC, 5, &a), YN_OK);
    assert_int_equal(a.meals_month, 0); /* nothing subsidised here */
    /* a floor below the ledger's count changes nothing: the larger one counts */
    floor.meals_period = 0;
    tap.tap_id = 2;
    tap.when = lf_at(f, WED_NOON_UTC + 86400);
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    lf_assert_verifies(f);
}

/* The ledger commits first; a card stamp that could not be written after the
 * commit is a notice without money that names its meal (kind 5), at most one
 * per meal, beside its reversal; replays, verify and 日结 see through it. */
static void test_stamp_meal_and_notice(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = lf_key_card("4403040000000046");
    yn_card_facts senior = lf_senior_card("4403040000000047");
    lf_topup(f, c.card_no, 1000);
    yn_meal meal = {.price_fen = 1800};
    yn_ledger_tap tap = {.tap_id = f->next_tap++,
                         .card = &c,
                         .meal = &meal,
                         .canteen = &lf_canteen,
                         .when = lf_at(f, WED_NOON_UTC)};
    yn_ledger_result r, n;
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_OK);
    assert_int_equal(r.seq, 2);
    assert_int_equal(r.stamp_seq, 2);         /* the card's stamp should name this meal */
    assert_int_equal(lf_journal_count(f), 2); /* one commit, no other record */

    /* the stamp write failed after the commit: the notice */
    yn_ledger_when later = lf_at(f, WED_NOON_UTC + 5);
    later.clock_trusted = false;
    assert_int_equal(yn_ledger_stamp_missing(f->l, 2, "card_gone", &later, &n), YN_OK);
    assert_int_equal(n.seq, 3);
    assert_int_equal(n.kind, YN_LEDGER_STAMP_MISSING);
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, 3, &rec), YN_OK);
    assert_int_equal(rec.kind, YN_LEDGER_STAMP_MISSING);
    assert_int_equal(rec.reverses_seq, 2);
    assert_string_equal(rec.ref, "card_gone");
    assert_string_equal(rec.card_no, c.card_no);
    assert_string_equal(rec.period, "lunch");
    assert_int_equal(rec.price_fen, 0);
    assert_int_equal(rec.subsidy_fen, 0);
    assert_int_equal(rec.wallet_fen, 0);
    assert_int_equal(rec.cash_fen, 0);
    assert_int_equal(rec.n_layers, 0);
    assert_int_equal(rec.tap_id, 0);
    assert_int_equal(rec.card_prev_seq, 2);
    assert_int_equal(rec.wallet_after_fen, 700);
    assert_false(rec.clock_trusted);
    assert_int_equal(lf_wallet_of(f, c.card_no), 700); /* no money moved */
    /* one notice per meal; only subsidised meals of this ledger */
    assert_int_equal(yn_ledger_stamp_missing(f->l, 2, "restart", &later, &n), YN_EDUPLICATE);
    assert_int_equal(n.seq, 3);
    assert_int_equal(yn_ledger_stamp_missing(f->l, 1, "restart", &later, &n), YN_EREFUSED);
    assert_int_equal(yn_ledger_stamp_missing(f->l, 3, "restart", &later, &n), YN_EREFUSED);
    assert_int_equal(yn_ledger_stamp_missing(f->l, 99, "restart", &later, &n), YN_ENOTFOUND);
    assert_int_equal(yn_ledger_stamp_missing(f->l, 2, "", &later, &n), YN_EINVAL);
    assert_int_equal(lf_journal_count(f), 3);

    /* the same tap again: the original meal, found past the notice */
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, 2);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(r.stamp_seq, 2);
    /* a refusal still says which meal the stamp should name */
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 1, c.card_no, true), YN_OK);
    tap.tap_id = f->next_tap++;
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_EREFUSED);
    assert_int_equal(r.stamp_seq, 2);
    assert_int_equal(yn_ledger_blacklist_apply(f->l, 2, c.card_no, false), YN_OK);
    /* a full-price meal does not move it */
    tap.tap_id = f->next_tap++;
    tap.when = lf_at(f, WED_NOON_UTC + 120);
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 0);
    assert_int_equal(r.seq, 4);
    assert_int_equal(r.stamp_seq, 2);
    assert_int_equal(yn_ledger_stamp_missing(f->l, 4, "restart", &later, &n), YN_EREFUSED);
    lf_assert_verifies(f);

    /* the meal can still be reversed beside its notice; then its stamp names nothing */
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, 2, "sup1", &later, &n), YN_OK);
    assert_int_equal(n.seq, 5);
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, 2, "sup1", &later, &n), YN_EDUPLICATE);
    assert_int_equal(n.seq, 5);
    tap.tap_id = f->next_tap++;
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500); /* the lunch is free again */
    assert_int_equal(r.stamp_seq, 6);
    /* another card's subsidised meal: its own stamp meal */
    assert_int_equal(lf_debit(f, &senior, 1500, &r), YN_OK);
    assert_int_equal(r.stamp_seq, r.seq);
    lf_assert_verifies(f);

    yn_ledger_settlement st;
    assert_int_equal(yn_ledger_settle(f->l, DAY, &st), YN_OK);
    assert_int_equal(st.stamp_missing.count, 1);
    assert_int_equal(st.stamp_missing.price_fen, 0);
    assert_int_equal(st.meals.count, 4);
    assert_int_equal(st.reversals.count, -1);
    assert_int_equal(st.topups.count, 1);
    assert_int_equal(st.total.count, 3);
}

/* ---- reversal ----------------------------------------------------------------------- */
static void test_reverse(void **state)
{
    struct fx *f = *state;
    yn_ledger_opts o = lf_opts_for(f);
    o.min_interval_s = 60;
    lf_reopen(f, &o);
    yn_card_facts c = lf_key_card("4403040000000050");
    lf_topup(f, c.card_no, 1000);
    yn_ledger_result meal, rev, r;
    assert_int_equal(lf_debit(f, &c, 1800, &meal), YN_OK);
    assert_int_equal(meal.wallet_after_fen, 700);

    yn_ledger_when w = lf_at(f, WED_NOON_UTC + 2000);
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, meal.seq, "op2", &w, &rev), YN_OK);
    assert_int_equal(rev.kind, YN_LEDGER_REVERSAL);
    assert_int_equal(rev.seq, meal.seq + 1);
    assert_int_equal(rev.decision.price_fen, -1800);
    assert_int_equal(rev.decision.subsidy_fen, -1500);
    assert_int_equal(rev.decision.layers[0].fen, -1500);
    assert_int_equal(rev.decision.wallet_fen, -300);
    assert_int_equal(rev.wallet_after_fen, 1000);
    assert_int_equal(lf_wallet_of(f, c.card_no), 1000);
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, rev.seq, &rec), YN_OK);
    assert_int_equal(rec.reverses_seq, meal.seq);
    assert_string_equal(rec.operator_id, "op2");
    /* the original is untouched */
    assert_int_equal(yn_ledger_record_get(f->l, meal.seq, &rec), YN_OK);
    assert_int_equal(rec.price_fen, 1800);

    /* usage given back, and the minimum interval lifted: the right charge at once */
    yn_ledger_account a;
    assert_int_equal(yn_ledger_balance(f->l, c.card_no, WED_NOON_UTC, 5, &a), YN_OK);
    assert_int_equal(a.meals_month, 0);
    assert_int_equal(a.subsidy_month_fen, 0);
    assert_int_equal(lf_debit(f, &c, 1600, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(r.wallet_after_fen, 900);

    /* twice: the first reversal is returned */
    w = lf_at(f, WED_NOON_UTC + 2010);
    int64_t n = lf_journal_count(f);
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, meal.seq, "op2", &w, &r), YN_EDUPLICATE);
    assert_int_equal(r.seq, rev.seq);
    /* a reversal, a top-up, an unknown record: refused */
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, rev.seq, "op2", &w, &r), YN_EREFUSED);
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, 1, "op2", &w, &r), YN_EREFUSED);
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, 999, "op2", &w, &r), YN_ENOTFOUND);
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, meal.seq, NULL, &w, &r), YN_EINVAL);
    assert_int_equal(lf_journal_count(f), n);
    assert_int_equal(lf_wallet_of(f, c.card_no), 900);
    lf_assert_verifies(f);
}

static void test_reverse_outside_window(void **state)
{
    struct fx *f = *state;
    yn_card_facts c = lf_key_card("4403040000000060");
    yn_ledger_result meal, r;
    assert_int_equal(lf_debit_at(f, &c, 1800, WED_NOON_UTC, 1, &meal), YN_OK);
    yn_ledger_record m;
    assert_int_equal(yn_ledger_record_get(f->l, meal.seq, &m), YN_OK);
    /* the policy's window is 600 s, measured by the monotonic clock */
    yn_ledger_when w = {.utc_s = WED_NOON_UTC + 100, .mono_ms = m.mono_ms + 601000};
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, meal.seq, "op2", &w, &r), YN_EREFUSED);
    assert_int_equal(lf_journal_count(f), 1);
    w.mono_ms = m.mono_ms + 599000;
    /* the options can narrow it */
    yn_ledger_opts o = lf_opts_for(f);
    o.reverse_window_s = 60;
    lf_reopen(f, &o);
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy, meal.seq, "op2", &w, &r), YN_EREFUSED);
    w.mono_ms = m.mono_ms + 59000;
    assert_int_equal(yn_ledger_reverse(f->l, NULL, meal.seq, "op2", &w, &r), YN_OK);
    assert_int_equal(lf_journal_count(f), 2);
    lf_assert_verifies(f);
}

/* ---- offline cap -------------------------------------------------------------------- */

/* shenzhen-2025 without the one-meal-per-lunch limit: several subsidised meals a day. */
static yn_policy *policy_no_limits(void)
{
    static char doc[1 << 16];
    size_t n = lf_read_policy_doc(doc, sizeof doc);
    char *limit = strstr(doc, "\"per_period\": 1");
    assert_non_null(limit);
    memcpy(limit, "\"per_month\": 99", strlen("\"per_month\": 99")); /* same length */
    yn_policy *p = NULL;
    char err[256];
    assert_int_equal(yn_policy_load(doc, n, &p, err, sizeof err), YN_OK);
    return p;
}

static int debit_with(struct fx *f, const yn_policy *p, const yn_card_facts *c, int64_t price_fen,
                      int64_t utc_s, yn_ledger_result *r)
{
    yn_meal meal = {.price_fen = price_fen};
    yn_ledger_tap tap = {.tap_id = f->next_tap++,
                         .card = c,
                         .meal = &meal,
                         .canteen = &lf_canteen,
                         .operator_id = "op1",
                         .when = lf_at(f, utc_s)};
    return yn_ledger_debit(f->l, p, &tap, r);
}

static void synced_at(struct fx *f, int64_t utc_s)
{
    char v[24];
    snprintf(v, sizeof v, "%lld", (long long)utc_s);
    assert_int_equal(yn_ledger_meta_put(f->l, "last_sync_utc_s", v), YN_OK);
}
static void test_offline_cap(void **state)
{
    struct fx *f = *state;
    yn_ledger_opts o = lf_opts_for(f);
    o.offline_cap_fen = 2000;
    o.offline_after_s = 900;
    lf_reopen(f, &o);
    yn_policy *p = policy_no_limits();
    yn_card_facts c = lf_key_card("4403040000000401"); /* 1500 fen a meal */
    lf_topup(f, c.card_no, 10000);
    yn_ledger_result r;
    const int64_t t = WED_NOON_UTC;

    /* never synced since the ledger was made: offline. 1500, then the rest of
     * the cap (500, the cut 1000 paid from the wallet), then nothing */
    assert_int_equal(debit_with(f, p, &c, 1800, t, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(r.decision.wallet_fen, 300);
    assert_int_equal(debit_with(f, p, &c, 1800, t + 60, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 500);
    assert_int_equal(r.decision.layers[0].fen, 500);
    assert_int_equal(r.decision.wallet_fen, 1300);
    assert_int_equal(r.decision.reason, YN_REASON_NONE);
    assert_int_equal(debit_with(f, p, &c, 1800, t + 120, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 0);
    assert_int_equal(r.decision.n_layers, 0);
    assert_int_equal(r.decision.wallet_fen, 1800);
    assert_int_equal(r.decision.reason, YN_REASON_MONTH_CAP);
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, r.seq, &rec), YN_OK);
    assert_int_equal(rec.reason, YN_REASON_MONTH_CAP);
    assert_int_equal(lf_wallet_of(f, c.card_no), 10000 - 300 - 1300 - 1800);

    /* a sync: online, uncapped (the day's subsidy goes above the cap) */
    synced_at(f, t + 150);
    assert_int_equal(debit_with(f, p, &c, 1800, t + 180, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(debit_with(f, p, &c, 1800, t + 240, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);

    /* next day, no sync since: offline again, and the wallet is empty: cash */
    yn_card_facts d = lf_key_card("4403040000000402");
    assert_int_equal(debit_with(f, p, &d, 1800, t + 86400, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_int_equal(r.decision.cash_fen, 300);
    assert_int_equal(debit_with(f, p, &d, 1800, t + 86400 + 60, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 500);
    assert_int_equal(r.decision.cash_fen, 1300);
    /* a reversal gives the day's subsidy back */
    yn_ledger_when w = lf_at(f, t + 86400 + 90);
    yn_ledger_result rev;
    assert_int_equal(yn_ledger_reverse(f->l, p, r.seq, "op1", &w, &rev), YN_OK);
    assert_int_equal(debit_with(f, p, &d, 1800, t + 86400 + 120, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 500);
    /* back online: uncapped */
    synced_at(f, t + 86400 + 130);
    assert_int_equal(debit_with(f, p, &d, 1800, t + 86400 + 180, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    /* no cap configured: uncapped while offline */
    o.offline_cap_fen = 0;
    lf_reopen(f, &o);
    assert_int_equal(debit_with(f, p, &d, 1800, t + 2 * 86400, &r), YN_OK);
    assert_int_equal(debit_with(f, p, &d, 1800, t + 2 * 86400 + 60, &r), YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    lf_assert_verifies(f);
    assert_int_equal(lf_sql_i64(f->path, "SELECT day_subsidy_fen FROM cards"
                                         " WHERE card_no = '4403040000000402'"),
                     3000);
    yn_policy_free(p);
}

/* ---- holders identified otherwise than by the card ----------------------------------- */

/* An identity-only card: served only while the roster binds its identifier
 * to a card of the roster, under the policy with that card's facts and the
 * ledger's own counts; the record says how the holder was identified; a lost
 * identifier, an identifier bound to another card, a policy that does not
 * accept the way: refused, nothing written. While offline its subsidy is
 * capped by the policy (¥5 a day), not by the board. */
static void test_identity_only_card(void **state)
{
    struct fx *f = *state;
    yn_ledger_result r;
    const char *id = "A:04A1B2C3D4E5F6";
    /* not on the roster: refused */
    assert_int_equal(
        lf_debit_by(f, YN_LEDGER_BY_IDENT, "4403040000000601", id, "op1", NULL, WED_NOON_UTC, &r),
        YN_EREFUSED);
    assert_int_equal(r.decision.reason, YN_REASON_NOT_ENROLLED);
    lf_roster(f, "4403040000000601", id, 5);
    /* bound: the roster's 80-year-old 低保 gets ¥15 (the card's facts are all zero) */
    synced_at(f, WED_NOON_UTC);
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_IDENT, "4403040000000601", id, "op1", NULL,
                                 WED_NOON_UTC + 10, &r),
                     YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    assert_string_equal(r.decision.category, "key_group");
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, r.seq, &rec), YN_OK);
    assert_int_equal(rec.by, YN_LEDGER_BY_IDENT);
    assert_string_equal(rec.ident, id);
    assert_string_equal(rec.supervisor_id, "");
    assert_int_equal(lf_sql_i64(f->path, "SELECT identified FROM journal ORDER BY seq DESC"), 2);
    /* the same lunch again: the ledger's own count, full price */
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_IDENT, "4403040000000601", id, "op1", NULL,
                                 WED_NOON_UTC + 100, &r),
                     YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 0);
    assert_int_equal(r.decision.reason, YN_REASON_PERIOD_USED);
    int64_t records = lf_journal_count(f);
    /* the identifier given does not match the card's binding */
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_IDENT, "4403040000000601", "A:04A1B2C3D4E5F7",
                                 "op1", NULL, WED_NOON_UTC + 200, &r),
                     YN_EREFUSED);
    assert_int_equal(r.decision.reason, YN_REASON_NOT_ENROLLED);
    /* the identifier reported lost: refused although still bound */
    yn_ledger_blacklist_entry lost = {.seq = 1, .lost = true};
    snprintf(lost.ident, sizeof lost.ident, "%s", id);
    assert_int_equal(yn_ledger_blacklist_apply_many(f->l, &lost, 1), YN_OK);
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_IDENT, "4403040000000601", id, "op1", NULL,
                                 WED_NOON_UTC + 300, &r),
                     YN_EREFUSED);
    assert_int_equal(r.decision.reason, YN_REASON_LOST);
    /* the shipped policy does not accept identity-only cards */
    yn_card_facts c = {.card_no = "4403040000000601"};
    yn_meal meal = {.price_fen = 1500};
    yn_ledger_tap tap = {.tap_id = f->next_tap++,
                         .card = &c,
                         .meal = &meal,
                         .canteen = &lf_canteen,
                         .when = lf_at(f, WED_NOON_UTC + 400),
                         .by = YN_LEDGER_BY_IDENT,
                         .ident = "A:11223344"};
    assert_int_equal(yn_ledger_debit(f->l, lf_policy, &tap, &r), YN_EREFUSED);
    assert_int_equal(r.decision.reason, YN_REASON_NOT_ENROLLED);
    assert_int_equal(lf_journal_count(f), records);

    /* offline (the sync was too long ago), another bound card: ¥5 of the ¥15 */
    lf_roster(f, "4403040000000602", "B:1A2B3C4D", 6);
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_IDENT, "4403040000000602", "B:1A2B3C4D", "op1",
                                 NULL, WED_NOON_UTC + 3000, &r),
                     YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 500);
    assert_int_equal(r.decision.cash_fen, 1000);
    /* the board's cap (lower) applies too; a card's own tap has the board's only */
    yn_ledger_opts o = lf_opts_for(f);
    o.offline_cap_fen = 300;
    lf_reopen(f, &o);
    lf_roster(f, "4403040000000603", "A:0A0B0C0D", 7);
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_IDENT, "4403040000000603", "A:0A0B0C0D", "op1",
                                 NULL, WED_NOON_UTC + 3100, &r),
                     YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 300);
    lf_assert_verifies(f);
}

/* 忘带卡: a meal by manual entry carries both staff ids (two people), under
 * the same policy and the ledger's own counts; the policy's daily cap per
 * terminal counts every manual meal of the day, reversed or not. */
static void test_manual_entry(void **state)
{
    struct fx *f = *state;
    yn_ledger_result r;
    lf_roster(f, "4403040000000701", "", 1);
    lf_roster(f, "4403040000000702", "", 2);
    lf_roster(f, "4403040000000703", "", 3);
    synced_at(f, WED_NOON_UTC);
    /* malformed: no supervisor, the same person twice, no operator, an identifier */
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_MANUAL, "4403040000000701", NULL, "op1", NULL,
                                 WED_NOON_UTC + 1, &r),
                     YN_EINVAL);
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_MANUAL, "4403040000000701", NULL, "op1", "op1",
                                 WED_NOON_UTC + 2, &r),
                     YN_EINVAL);
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_MANUAL, "4403040000000701", NULL, NULL, "sup1",
                                 WED_NOON_UTC + 3, &r),
                     YN_EINVAL);
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_MANUAL, "4403040000000701", "A:11223344", "op1",
                                 "sup1", WED_NOON_UTC + 4, &r),
                     YN_EINVAL);
    assert_int_equal(lf_journal_count(f), 0);
    /* not on the roster */
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_MANUAL, "4403040000000799", NULL, "op1", "sup1",
                                 WED_NOON_UTC + 5, &r),
                     YN_EREFUSED);
    assert_int_equal(r.decision.reason, YN_REASON_NOT_ENROLLED);
    /* served */
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_MANUAL, "4403040000000701", NULL, "op1", "sup1",
                                 WED_NOON_UTC + 10, &r),
                     YN_OK);
    assert_int_equal(r.decision.subsidy_fen, 1500);
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(f->l, r.seq, &rec), YN_OK);
    assert_int_equal(rec.by, YN_LEDGER_BY_MANUAL);
    assert_string_equal(rec.operator_id, "op1");
    assert_string_equal(rec.supervisor_id, "sup1");
    assert_string_equal(rec.ident, "");
    /* once per period: the ledger's count, whether the card was read or not */
    yn_card_facts card = lf_key_card("4403040000000701");
    assert_int_equal(lf_debit_at(f, &card, 1500, WED_NOON_UTC + 20, f->next_tap++, &r), YN_OK);
    assert_int_equal(r.decision.reason, YN_REASON_PERIOD_USED);
    /* no card stamp to miss: a notice for a manual meal is refused */
    yn_ledger_when w = lf_at(f, WED_NOON_UTC + 30);
    assert_int_equal(yn_ledger_stamp_missing(f->l, rec.seq, "restart", &w, &r), YN_EREFUSED);
    /* the second manual meal of the day, then reversed: still counted for the cap */
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_MANUAL, "4403040000000702", NULL, "op1", "sup1",
                                 WED_NOON_UTC + 40, &r),
                     YN_OK);
    int32_t n = 0;
    assert_int_equal(yn_ledger_manual_count(f->l, DAY, &n), YN_OK);
    assert_int_equal(n, 2);
    w = lf_at(f, WED_NOON_UTC + 50);
    yn_ledger_result rev;
    assert_int_equal(yn_ledger_reverse(f->l, lf_policy_ident, r.seq, "sup1", &w, &rev), YN_OK);
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_MANUAL, "4403040000000703", NULL, "op1", "sup1",
                                 WED_NOON_UTC + 60, &r),
                     YN_EREFUSED);
    assert_int_equal(r.decision.reason, YN_REASON_MANUAL_CAP);
    /* the next day the cap starts again */
    assert_int_equal(yn_ledger_manual_count(f->l, DAY + 1, &n), YN_OK);
    assert_int_equal(n, 0);
    assert_int_equal(lf_debit_by(f, YN_LEDGER_BY_MANUAL, "4403040000000703", NULL, "op1", "sup1",
                                 WED_NOON_UTC + 86400, &r),
                     YN_OK);
    assert_int_equal(yn_ledger_manual_count(f->l, DAY + 1, &n), YN_OK);
    assert_int_equal(n, 1);
    lf_assert_verifies(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, lf_setup, lf_teardown)
        T(test_debit_subsidised_meal),
        T(test_debit_weighed_meal),
        T(test_replayed_tap_returns_original),
        T(test_tap_ids_increase),
        T(test_topup_tap_ids),
        T(test_second_meal_in_period_full_price),
        T(test_too_soon),
        T(test_blacklisted_card_refused),
        T(test_roster_overrides_card),
        T(test_usage_floor_from_card),
        T(test_stamp_meal_and_notice),
        T(test_reverse),
        T(test_reverse_outside_window),
        T(test_offline_cap),
        T(test_identity_only_card),
        T(test_manual_entry),
#undef T
    };
    return cmocka_run_group_tests_name("ledger_counter", tests, lf_group_setup, lf_group_teardown);
}
