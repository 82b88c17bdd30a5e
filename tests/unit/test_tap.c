/* test_tap.c — the counter tap pipeline on the simulated reader, a real
 * ledger file and the shipped Shenzhen policy: genuine cards are charged and
 * stamped; clones, tampered and foreign cards are refused; a card pulled away
 * before its stamp is written leaves no charge; the same tap twice charges
 * once; another canteen's stamp counts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardfix.h"
#include "config.h"
#include "ledger.h"
#include "nfc_sim.h"
#include "tap.h"
#include "testkeys.h"
#include "testutil.h"

#define LUNCH_UTC 1773115200LL /* 2026-03-10 (Tuesday) 12:00 Asia/Shanghai */

enum { ZHANG, LI, CHEN, CLONE, TAMPERED, LOST, LUOHU, N_CARDS };

struct rig {
    char dir[256];
    yn_cardfix fix;
    yn_testkeys keys; /* the master, in files or a token (YN_KEYS_BACKEND) */
    yn_nfc nfc;
    yn_ledger *ledger;
    yn_policy *policy;
    yn_tap_env env;
    yn_ledger_when when;
    int64_t next_tap;
};

static int setup(void **state)
{
    struct rig *r = calloc(1, sizeof *r);
    yn_test_tmpdir(r->dir, sizeof r->dir);
    yn_cardfix_init(&r->fix);
    yn_testkeys_open(&r->keys, r->dir, r->fix.master, NULL, 0);

    char path[512], err[256];
    snprintf(path, sizeof path, "%s/firmware/policies/shenzhen-2025.json", yn_test_srcdir());
    assert_int_equal(yn_policy_load_file(path, &r->policy, err, sizeof err), YN_OK);
    snprintf(path, sizeof path, "%s/ledger.db", r->dir);
    yn_ledger_opts lo = {
        .path = path, .terminal_id = "T1", .min_interval_s = 60, .boot_id = "test-boot"};
    assert_int_equal(yn_ledger_open(&lo, &r->ledger), YN_OK);
    assert_int_equal(yn_ledger_blacklist_apply(r->ledger, 1, "4403040006", true), YN_OK);

    yn_config cfg;
    yn_config_defaults(&cfg);
    assert_int_equal(yn_nfc_open(&r->nfc, &cfg), YN_OK);
    yn_sim_card c;
    yn_cardfix_card(&r->fix, &c, 1, "4403040001", 19450312, YN_FLAG_DIBAO,
                    440304001); /* 81, 低保 */
    assert_int_equal(yn_nfc_sim_add(&r->nfc, &c), ZHANG);
    yn_cardfix_card(&r->fix, &c, 2, "4403040002", 19610101, 0, 440304002); /* 65: no subsidy */
    assert_int_equal(yn_nfc_sim_add(&r->nfc, &c), LI);
    yn_cardfix_card(&r->fix, &c, 3, "4403040003", 19500505, 0, 440304003); /* 75: ¥5 */
    assert_int_equal(yn_nfc_sim_add(&r->nfc, &c), CHEN);
    yn_cardfix_card(&r->fix, &c, 1, "4403040001", 19450312, YN_FLAG_DIBAO, 440304001);
    c.key[0] ^= 0x01; /* same UID and record, keys not ours */
    assert_int_equal(yn_nfc_sim_add(&r->nfc, &c), CLONE);
    yn_cardfix_card(&r->fix, &c, 5, "4403040005", 19500505, 0, 440304001);
    c.record[31] ^= 0x02; /* 低保 added after signing */
    assert_int_equal(yn_nfc_sim_add(&r->nfc, &c), TAMPERED);
    yn_cardfix_card(&r->fix, &c, 6, "4403040006", 19450312, YN_FLAG_TEKUN, 440304001);
    assert_int_equal(yn_nfc_sim_add(&r->nfc, &c), LOST);
    yn_cardfix_card(&r->fix, &c, 7, "4403030007", 19450312, YN_FLAG_DIBAO, 440303001);
    assert_int_equal(yn_nfc_sim_add(&r->nfc, &c), LUOHU);

    r->env = (yn_tap_env){.nfc = &r->nfc,
                          .ledger = r->ledger,
                          .policy = r->policy,
                          .keys = &r->keys.ks,
                          .ring = &r->fix.ring,
                          .canteen = {.district = 440304, .street = 440304001},
                          .canteen_code = yn_tap_canteen_code("C-FT-001")};
    r->when = (yn_ledger_when){.utc_s = LUNCH_UTC, .mono_ms = 1000000, .clock_trusted = true};
    r->next_tap = 100;
    *state = r;
    return 0;
}

static int teardown(void **state)
{
    struct rig *r = *state;
    yn_nfc_close(&r->nfc);
    yn_ledger_close(r->ledger);
    yn_policy_free(r->policy);
    yn_testkeys_close(&r->keys);
    free(r);
    return 0;
}

static const yn_meal meal_15 = {.price_fen = 1500};

/* Present card i, arm a reader fault, and run one tap with a new tap id. */
static int tap_fault(struct rig *r, int i, enum yn_sim_fault fault, yn_tap_outcome *out)
{
    yn_nfc_tag tag;
    assert_int_equal(yn_nfc_sim_present(&r->nfc, i), YN_OK);
    assert_int_equal(yn_nfc_poll(&r->nfc, 0, &tag), YN_OK);
    yn_nfc_sim_fault(&r->nfc, fault);
    return yn_tap_debit(&r->env, &tag, &meal_15, r->next_tap++, "op1", &r->when, out);
}

static int tap(struct rig *r, int i, yn_tap_outcome *out)
{
    return tap_fault(r, i, YN_SIM_OK, out);
}

static int64_t head(struct rig *r)
{
    int64_t seq;
    uint8_t h[YN_LEDGER_HASH_LEN];
    assert_int_equal(yn_ledger_head(r->ledger, &seq, h), YN_OK);
    return seq;
}

static void read_stamp(struct rig *r, int i, yn_card_stamp *st)
{
    const yn_sim_card *c = yn_nfc_sim_card(&r->nfc, i);
    const char *why;
    assert_int_equal(yn_card_stamp_decode(c->stamp, c->stamp_len, st, &why), YN_OK);
}

static void test_genuine_card_is_charged_and_stamped(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    assert_int_equal(tap(r, ZHANG, &o), YN_OK);
    assert_true(o.charged);
    assert_true(o.card_ok);
    assert_string_equal(o.card.card_no, "4403040001");
    assert_int_equal(o.reason, YN_REASON_NONE);
    assert_int_equal(o.result.seq, 1);
    assert_int_equal(o.result.decision.subsidy_fen, 1500);
    assert_int_equal(o.result.decision.cash_fen, 0);
    assert_true(o.stamp_written);
    yn_card_stamp st;
    read_stamp(r, ZHANG, &st);
    assert_int_equal(st.date_ymd, 20260310);
    assert_int_equal(st.period_code, yn_card_period_code("lunch"));
    assert_int_equal(st.canteen_id, yn_tap_canteen_code("C-FT-001"));
    assert_int_equal(st.seq16, 1);

    /* 70-99: ¥5 of the ¥15 meal, the rest in cash (empty wallet) */
    assert_int_equal(tap(r, CHEN, &o), YN_OK);
    assert_int_equal(o.result.decision.subsidy_fen, 500);
    assert_int_equal(o.result.decision.cash_fen, 1000);
    assert_true(o.stamp_written);
}

static void test_same_tap_twice_charges_once(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o1, o2;
    yn_nfc_tag tag;
    assert_int_equal(yn_nfc_sim_present(&r->nfc, ZHANG), YN_OK);
    assert_int_equal(yn_nfc_poll(&r->nfc, 0, &tag), YN_OK);
    assert_int_equal(yn_tap_debit(&r->env, &tag, &meal_15, 42, "op1", &r->when, &o1), YN_OK);
    r->when.mono_ms += 300;
    assert_int_equal(yn_tap_debit(&r->env, &tag, &meal_15, 42, "op1", &r->when, &o2),
                     YN_EDUPLICATE);
    assert_true(o2.charged);
    assert_int_equal(o2.result.seq, o1.result.seq);
    assert_int_equal(o2.result.decision.subsidy_fen, 1500);
    assert_int_equal(head(r), 1);
}

static void test_second_meal_same_lunch_gets_no_subsidy(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    assert_int_equal(tap(r, ZHANG, &o), YN_OK);
    r->when.utc_s += 120;
    r->when.mono_ms += 120000;
    /* Shenzhen sells without subsidy: full price, reason period_used */
    assert_int_equal(tap(r, ZHANG, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(o.result.decision.subsidy_fen, 0);
    assert_int_equal(o.result.decision.cash_fen, 1500);
    assert_false(o.stamp_written); /* only subsidised meals are stamped */
}

static void test_other_canteens_stamp_counts_offline(void **state)
{
    struct rig *r = *state;
    /* lunch already eaten today at another canteen: its stamp is on the card */
    yn_card_stamp st;
    const char *why;
    assert_int_equal(yn_card_stamp_make(20260310, "lunch", yn_tap_canteen_code("C-FT-002"), 7, &st),
                     YN_OK);
    yn_sim_card *c = (yn_sim_card *)yn_nfc_sim_card(&r->nfc, ZHANG);
    assert_int_equal(yn_card_stamp_encode(&st, c->stamp, &why), YN_OK);
    c->stamp_len = YN_CARD_STAMP_LEN;
    yn_tap_outcome o;
    assert_int_equal(tap(r, ZHANG, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(o.result.decision.subsidy_fen, 0);
    /* yesterday's stamp does not count */
    assert_int_equal(yn_card_stamp_make(20260309, "lunch", yn_tap_canteen_code("C-FT-002"), 7, &st),
                     YN_OK);
    c = (yn_sim_card *)yn_nfc_sim_card(&r->nfc, CHEN);
    assert_int_equal(yn_card_stamp_encode(&st, c->stamp, &why), YN_OK);
    c->stamp_len = YN_CARD_STAMP_LEN;
    assert_int_equal(tap(r, CHEN, &o), YN_OK);
    assert_int_equal(o.result.decision.subsidy_fen, 500);
}

static void test_forged_and_cloned_cards_are_refused(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    assert_int_equal(tap(r, CLONE, &o), YN_EAUTH);
    assert_int_equal(o.reason, YN_REASON_NOT_GENUINE);
    assert_false(o.charged);
    assert_non_null(strstr(o.detail, "clone"));
    assert_int_equal(tap(r, TAMPERED, &o), YN_EAUTH);
    assert_int_equal(o.reason, YN_REASON_NOT_GENUINE);
    assert_non_null(strstr(o.detail, "signature"));
    /* a card signed by an issuer key this terminal does not hold */
    yn_card_keyring empty = {0};
    r->env.ring = &empty;
    assert_int_equal(tap(r, ZHANG, &o), YN_ENOTFOUND);
    assert_int_equal(o.reason, YN_REASON_NOT_GENUINE);
    assert_int_equal(head(r), 0);
}

static void test_pulled_away_before_the_stamp_leaves_no_charge(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    assert_int_equal(tap_fault(r, ZHANG, YN_SIM_PULL_ON_WRITE, &o), YN_ECARDGONE);
    assert_int_equal(o.reason, YN_REASON_READ_FAILED);
    assert_false(o.charged);
    assert_false(o.stamp_written);
    assert_int_equal(head(r), 0); /* rolled back */
    assert_int_equal(yn_nfc_sim_card(&r->nfc, ZHANG)->stamp_len, 0);
    /* tapped again: charged normally, and only once */
    assert_int_equal(tap(r, ZHANG, &o), YN_OK);
    assert_int_equal(o.result.seq, 1);
    assert_int_equal(o.result.decision.subsidy_fen, 1500);
}

static void test_reader_faults_are_one_failed_tap(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    assert_int_equal(tap_fault(r, ZHANG, YN_SIM_SILENT, &o), YN_ETIMEDOUT);
    assert_int_equal(o.reason, YN_REASON_READ_FAILED);
    assert_int_equal(tap_fault(r, ZHANG, YN_SIM_GARBAGE, &o), YN_EPROTO);
    assert_int_equal(o.reason, YN_REASON_READ_FAILED);
    assert_int_equal(head(r), 0);
    assert_int_equal(tap(r, ZHANG, &o), YN_OK); /* and the next tap works */
}

static void test_lost_and_other_district(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    assert_int_equal(tap(r, LOST, &o), YN_EREFUSED);
    assert_int_equal(o.reason, YN_REASON_LOST);
    assert_false(o.charged);
    /* a Luohu resident in Futian: no subsidy here (same-district rule), full price */
    assert_int_equal(tap(r, LUOHU, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_OUTSIDE_AREA);
    assert_int_equal(o.result.decision.subsidy_fen, 0);
    /* under 70 and no key group: full price */
    assert_int_equal(tap(r, LI, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_NOT_ELIGIBLE);
    assert_int_equal(o.result.decision.cash_fen, 1500);
    assert_int_equal(head(r), 2);
}

static void test_identify_for_the_kiosk(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    yn_nfc_tag tag;
    assert_int_equal(yn_nfc_sim_present(&r->nfc, CHEN), YN_OK);
    assert_int_equal(yn_nfc_poll(&r->nfc, 0, &tag), YN_OK);
    assert_int_equal(yn_tap_identify(&r->env, &tag, &o), YN_OK);
    assert_string_equal(o.card.card_no, "4403040003");
    assert_int_equal(o.card.birth_ymd, 19500505);
    assert_int_equal(head(r), 0);
    assert_int_equal(yn_nfc_sim_present(&r->nfc, CLONE), YN_OK);
    assert_int_equal(yn_nfc_poll(&r->nfc, 0, &tag), YN_OK);
    assert_int_equal(yn_tap_identify(&r->env, &tag, &o), YN_EAUTH);
    assert_int_equal(o.reason, YN_REASON_NOT_GENUINE);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_genuine_card_is_charged_and_stamped),
        T(test_same_tap_twice_charges_once),
        T(test_second_meal_same_lunch_gets_no_subsidy),
        T(test_other_canteens_stamp_counts_offline),
        T(test_forged_and_cloned_cards_are_refused),
        T(test_pulled_away_before_the_stamp_leaves_no_charge),
        T(test_reader_faults_are_one_failed_tap),
        T(test_lost_and_other_district),
        T(test_identify_for_the_kiosk),
    };
    return cmocka_run_group_tests_name("tap", tests, NULL, NULL);
}
