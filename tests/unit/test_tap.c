/* test_tap.c — the counter tap pipeline on the simulated reader, real
 * ledger files and the shipped Shenzhen policy: genuine cards are charged and
 * stamped; clones, tampered and foreign cards are refused; the ledger commits
 * before the stamp is written, so a failed commit leaves no stamp and a lost
 * stamp leaves a charged meal and a notice; the same tap twice charges once;
 * another terminal's stamp counts, this terminal's own is checked against its
 * ledger; a second terminal (its own ledger, offline) sees at most one meal's
 * window; after a restart the unshown tap is replayed and lost stamps noted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "cardfix.h"
#include "config.h"
#include "ident.h"
#include "ledger.h"
#include "nfc_sim.h"
#include "tap.h"
#include "testkeys.h"
#include "testutil.h"

#define LUNCH_UTC 1773115200LL /* 2026-03-10 (Tuesday) 12:00 Asia/Shanghai */

enum { ZHANG, LI, CHEN, CLONE, TAMPERED, LOST, LUOHU, BLANK, N_CARDS };

struct rig {
    char dir[256];
    yn_cardfix fix;
    yn_testkeys keys; /* the master, in files or a token (YN_KEYS_BACKEND) */
    yn_nfc nfc;
    yn_ledger *ledger;
    yn_ledger *ledger2; /* terminal T2 at canteen C-FT-002, never synced with T1 */
    yn_policy *policy;
    yn_tap_env env, env2;
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
    snprintf(path, sizeof path, "%s/ledger2.db", r->dir);
    lo.path = path;
    lo.terminal_id = "T2";
    assert_int_equal(yn_ledger_open(&lo, &r->ledger2), YN_OK);

    yn_config cfg;
    yn_config_defaults(&cfg);
    assert_int_equal(yn_nfc_open(&r->nfc, &cfg.reader), YN_OK);
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
    yn_cardfix_card(&r->fix, &c, 8, "4403040008", 19450312, 0, 440304001);
    c.blank = true; /* factory-blank: never issued */
    c.record_len = 0;
    assert_int_equal(yn_nfc_sim_add(&r->nfc, &c), BLANK);

    r->env = (yn_tap_env){.nfc = &r->nfc,
                          .ledger = r->ledger,
                          .policy = r->policy,
                          .keys = &r->keys.ks,
                          .ring = &r->fix.ring,
                          .canteen = {.district = 440304, .street = 440304001},
                          .canteen_code = yn_tap_canteen_code("C-FT-001"),
                          .terminal_code = yn_card_terminal_code("T1")};
    r->env2 = r->env;
    r->env2.ledger = r->ledger2;
    r->env2.canteen_code = yn_tap_canteen_code("C-FT-002");
    r->env2.terminal_code = yn_card_terminal_code("T2");
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
    yn_ledger_close(r->ledger2);
    yn_policy_free(r->policy);
    yn_testkeys_close(&r->keys);
    free(r);
    return 0;
}

static const yn_meal meal_15 = {.price_fen = 1500};

/* Present card i at the terminal of env, arm a reader fault, and run one tap
 * with a new tap id. */
static int tap_at(struct rig *r, const yn_tap_env *env, int i, enum yn_sim_fault fault,
                  yn_tap_outcome *out)
{
    yn_nfc_tag tag;
    assert_int_equal(yn_nfc_sim_present(&r->nfc, i), YN_OK);
    assert_int_equal(yn_nfc_poll(&r->nfc, 0, &tag), YN_OK);
    yn_nfc_sim_fault(&r->nfc, fault);
    return yn_tap_debit(env, &tag, &meal_15, r->next_tap++, NULL, "op1", &r->when, out);
}

static int tap_fault(struct rig *r, int i, enum yn_sim_fault fault, yn_tap_outcome *out)
{
    return tap_at(r, &r->env, i, fault, out);
}

static int tap(struct rig *r, int i, yn_tap_outcome *out)
{
    return tap_fault(r, i, YN_SIM_OK, out);
}

static int64_t head_of(yn_ledger *l)
{
    int64_t seq;
    uint8_t h[YN_LEDGER_HASH_LEN];
    assert_int_equal(yn_ledger_head(l, &seq, h), YN_OK);
    return seq;
}

static int64_t head(struct rig *r)
{
    return head_of(r->ledger);
}

/* Subsidised meals of a card in a ledger, not reversed. */
static int subsidised_meals(yn_ledger *l, const char *card_no)
{
    int n = 0;
    for (int64_t seq = head_of(l); seq > 0; seq--) {
        yn_ledger_record rec;
        assert_int_equal(yn_ledger_record_get(l, seq, &rec), YN_OK);
        if (strcmp(rec.card_no, card_no) != 0)
            continue;
        if (rec.kind == YN_LEDGER_MEAL && rec.subsidy_fen > 0)
            n++;
        else if (rec.kind == YN_LEDGER_REVERSAL && rec.subsidy_fen < 0)
            n--;
    }
    return n;
}

/* The stamp notices in a ledger, and the last one's meal and cause. */
static int notices(yn_ledger *l, int64_t *meal_seq, char *cause, size_t len)
{
    int n = 0;
    for (int64_t seq = head_of(l); seq > 0; seq--) {
        yn_ledger_record rec;
        assert_int_equal(yn_ledger_record_get(l, seq, &rec), YN_OK);
        if (rec.kind != YN_LEDGER_STAMP_MISSING)
            continue;
        if (n++ == 0 && meal_seq)
            *meal_seq = rec.reverses_seq;
        if (n == 1 && cause)
            snprintf(cause, len, "%s", rec.ref);
    }
    return n;
}

static void assert_verifies(yn_ledger *l)
{
    yn_ledger_verify_report rep;
    assert_int_equal(yn_ledger_verify(l, &rep), YN_OK);
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
    assert_int_equal(o.stamp, YN_TAP_STAMP_WRITTEN);
    assert_int_equal(o.stamp_meal_seq, 1);
    yn_card_stamp st;
    read_stamp(r, ZHANG, &st);
    assert_int_equal(st.version, YN_CARD_STAMP_V2);
    assert_int_equal(st.date_ymd, 20260310);
    assert_int_equal(st.period_code, yn_card_period_code("lunch"));
    assert_int_equal(st.terminal_code, yn_card_terminal_code("T1"));
    assert_int_equal(st.seq, 1);
    assert_int_equal(head(r), 1); /* the meal, nothing else */

    /* 70-99: ¥5 of the ¥15 meal, the rest in cash (empty wallet) */
    assert_int_equal(tap(r, CHEN, &o), YN_OK);
    assert_int_equal(o.result.decision.subsidy_fen, 500);
    assert_int_equal(o.result.decision.cash_fen, 1000);
    assert_int_equal(o.stamp, YN_TAP_STAMP_WRITTEN);
}

static void test_same_tap_twice_charges_once(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o1, o2;
    yn_nfc_tag tag;
    assert_int_equal(yn_nfc_sim_present(&r->nfc, ZHANG), YN_OK);
    assert_int_equal(yn_nfc_poll(&r->nfc, 0, &tag), YN_OK);
    assert_int_equal(yn_tap_debit(&r->env, &tag, &meal_15, 42, NULL, "op1", &r->when, &o1), YN_OK);
    r->when.mono_ms += 300;
    assert_int_equal(yn_tap_debit(&r->env, &tag, &meal_15, 42, NULL, "op1", &r->when, &o2),
                     YN_EDUPLICATE);
    assert_int_equal(o2.stamp, YN_TAP_STAMP_NONE); /* the card names it already */
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
    assert_int_equal(o.stamp, YN_TAP_STAMP_NONE); /* only subsidised meals are stamped */
    yn_card_stamp st;
    read_stamp(r, ZHANG, &st);
    assert_int_equal(st.seq, 1); /* still the subsidised lunch */
}

static void put_stamp(struct rig *r, int i, const yn_card_stamp *st)
{
    const char *why;
    yn_sim_card *c = (yn_sim_card *)yn_nfc_sim_card(&r->nfc, i);
    assert_int_equal(yn_card_stamp_encode(st, c->stamp, &why), YN_OK);
    c->stamp_len = YN_CARD_STAMP_LEN;
}

static void test_other_terminals_stamp_counts_offline(void **state)
{
    struct rig *r = *state;
    /* lunch already eaten today at another terminal: its stamp is on the card */
    yn_card_stamp st;
    assert_int_equal(
        yn_card_stamp_make(20260310, "lunch", yn_card_terminal_code("T-FT-0002"), 7, &st), YN_OK);
    put_stamp(r, ZHANG, &st);
    yn_tap_outcome o;
    assert_int_equal(tap(r, ZHANG, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(o.result.decision.subsidy_fen, 0);
    /* a v1 stamp of older firmware at another canteen counts the same */
    yn_card_stamp v1 = {.version = YN_CARD_STAMP_V1,
                        .period_code = yn_card_period_code("lunch"),
                        .date_ymd = 20260310,
                        .canteen_id = yn_tap_canteen_code("C-FT-002"),
                        .seq = 7};
    put_stamp(r, CHEN, &v1);
    assert_int_equal(tap(r, CHEN, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_PERIOD_USED);
    /* yesterday's stamp does not count */
    assert_int_equal(
        yn_card_stamp_make(20260309, "lunch", yn_card_terminal_code("T-FT-0002"), 7, &st), YN_OK);
    put_stamp(r, CHEN, &st);
    r->when.utc_s += 86400; /* the next day: CHEN's ledger counters are of yesterday */
    r->when.mono_ms += 86400000;
    assert_int_equal(
        yn_card_stamp_make(20260310, "lunch", yn_card_terminal_code("T-FT-0002"), 7, &st), YN_OK);
    put_stamp(r, CHEN, &st); /* dated yesterday by now */
    assert_int_equal(tap(r, CHEN, &o), YN_OK);
    assert_int_equal(o.result.decision.subsidy_fen, 500);
    assert_int_equal(o.stamp, YN_TAP_STAMP_WRITTEN);
}

/* This terminal's own stamps are not a floor: its ledger decides. A stamp of
 * a meal the ledger reversed, or of a seq it does not hold, counts nothing. */
static void test_own_stamp_is_checked_against_the_ledger(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    assert_int_equal(tap(r, ZHANG, &o), YN_OK);
    assert_int_equal(o.result.seq, 1);
    yn_ledger_result rev;
    r->when.utc_s += 60;
    r->when.mono_ms += 60000;
    assert_int_equal(yn_ledger_reverse(r->ledger, r->policy, 1, "sup1", &r->when, &rev), YN_OK);
    /* the card still names meal 1, which no longer counts: the right charge follows */
    assert_int_equal(tap(r, ZHANG, &o), YN_OK);
    assert_int_equal(o.result.decision.subsidy_fen, 1500);
    assert_int_equal(o.result.seq, 3);
    assert_int_equal(o.stamp, YN_TAP_STAMP_WRITTEN);
    /* a stamp naming this terminal and a seq its ledger never held counts nothing */
    yn_card_stamp st;
    assert_int_equal(yn_card_stamp_make(20260310, "lunch", yn_card_terminal_code("T1"), 999, &st),
                     YN_OK);
    put_stamp(r, CHEN, &st);
    assert_int_equal(tap(r, CHEN, &o), YN_OK);
    assert_int_equal(o.result.decision.subsidy_fen, 500);
    /* this terminal's code with a seq that is another card's meal here: not ours
     * (another terminal with the same code): counted as another canteen's meal */
    assert_int_equal(yn_card_stamp_make(20260310, "lunch", yn_card_terminal_code("T1"), 3, &st),
                     YN_OK);
    put_stamp(r, LUOHU, &st);
    r->env.canteen.district = 440303; /* a Luohu canteen, where LUOHU is subsidised */
    r->env.canteen.street = 440303001;
    assert_int_equal(tap(r, LUOHU, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(subsidised_meals(r->ledger, "4403030007"), 0);
    assert_verifies(r->ledger);
}

/* Finding 1: the ledger's commit fails (the storage refuses the write) — the
 * card must not keep a stamp of a meal that was never charged: once the
 * storage is back, the same senior's lunch is subsidised. (Failed on main:
 * the stamp was written before the commit, and the retry was 本餐已享受补贴.) */
static void test_failed_commit_leaves_no_stamp(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    assert_int_equal(tap(r, CHEN, &o), YN_OK); /* some records first */
    char wal[600];
    snprintf(wal, sizeof wal, "%s/ledger.db-wal", r->dir);
    struct stat sb;
    assert_int_equal(stat(wal, &sb), 0);
    /* no byte more for any file of this process: the WAL append of the commit fails */
    struct rlimit old_lim, lim = {.rlim_cur = (rlim_t)sb.st_size, .rlim_max = RLIM_INFINITY};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old_lim), 0);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = tap(r, ZHANG, &o);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old_lim), 0);
    assert_int_not_equal(rc, YN_OK);
    assert_false(o.charged);
    assert_int_equal(o.reason, YN_REASON_STORAGE);
    assert_int_equal(o.stamp, YN_TAP_STAMP_NONE);
    yn_card_stamp st;
    read_stamp(r, ZHANG, &st);
    assert_true(yn_card_stamp_is_blank(&st)); /* no stamp of an uncharged meal */
    assert_int_equal(head(r), 1);
    /* storage back: the lunch is subsidised, here and — had the senior gone
     * there instead — at another canteen */
    r->when.utc_s += 30;
    r->when.mono_ms += 30000;
    assert_int_equal(tap_at(r, &r->env2, ZHANG, YN_SIM_OK, &o), YN_OK);
    assert_int_equal(o.result.decision.subsidy_fen, 1500);
    assert_int_equal(o.reason, YN_REASON_NONE);
    assert_verifies(r->ledger);
}

/* Finding 1: the card left after its stamp was written, the reply lost (a
 * DESFire CommitTransaction that ran): the meal committed before and stands —
 * charged once, shown 成功 — the unknown outcome is noted, and the senior has
 * had the subsidised lunch wherever they go next. (Failed on main: the debit
 * was rolled back with the stamp on the card, so after another card's tap the
 * senior paid full price with no subsidised meal anywhere.) */
static void test_lost_reply_after_the_stamp_meal_stands(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    assert_int_equal(tap_fault(r, ZHANG, YN_SIM_PULL_AFTER_WRITE, &o), YN_OK);
    assert_true(o.charged);
    assert_int_equal(o.result.seq, 1);
    assert_int_equal(o.result.decision.subsidy_fen, 1500);
    assert_int_equal(o.stamp, YN_TAP_STAMP_MISSING);
    int64_t meal = 0;
    char cause[YN_LEDGER_REF_MAX] = "";
    assert_int_equal(notices(r->ledger, &meal, cause, sizeof cause), 1);
    assert_int_equal(meal, 1);
    assert_string_equal(cause, "card_gone");
    /* another card taps, then the senior comes back here or goes elsewhere */
    assert_int_equal(tap(r, CHEN, &o), YN_OK);
    r->when.utc_s += 120;
    r->when.mono_ms += 120000;
    assert_int_equal(tap_at(r, &r->env2, ZHANG, YN_SIM_OK, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_PERIOD_USED); /* the stamp is on the card */
    assert_int_equal(tap(r, ZHANG, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(o.stamp, YN_TAP_STAMP_NONE); /* it names meal 1 already */
    /* exactly one subsidised lunch, and it is in the ledger the district settles */
    assert_int_equal(subsidised_meals(r->ledger, "4403040001"), 1);
    assert_int_equal(subsidised_meals(r->ledger2, "4403040001"), 0);
    assert_verifies(r->ledger);
    assert_verifies(r->ledger2);
}

/* The card left before its stamp was written: the meal stands, the notice
 * names it. Back here first, the stamp is rewritten, and the other terminal
 * then sees the meal. At the other terminal first (offline), the one window
 * the design leaves: a second subsidised lunch, bounded to that one meal,
 * noted on the first terminal's journal for the district. */
static void test_stamp_lost_before_it_was_written(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    assert_int_equal(tap_fault(r, ZHANG, YN_SIM_PULL_ON_WRITE, &o), YN_OK);
    assert_true(o.charged);
    assert_int_equal(o.stamp, YN_TAP_STAMP_MISSING);
    yn_card_stamp st;
    read_stamp(r, ZHANG, &st);
    assert_true(yn_card_stamp_is_blank(&st));
    /* back here: not charged again (the ledger counts the meal), stamp repaired */
    r->when.utc_s += 90;
    r->when.mono_ms += 90000;
    assert_int_equal(tap(r, ZHANG, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(o.stamp, YN_TAP_STAMP_WRITTEN);
    assert_int_equal(o.stamp_meal_seq, 1);
    read_stamp(r, ZHANG, &st);
    assert_int_equal(st.seq, 1);
    assert_int_equal(st.terminal_code, yn_card_terminal_code("T1"));
    /* now the other terminal knows */
    assert_int_equal(tap_at(r, &r->env2, ZHANG, YN_SIM_OK, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(subsidised_meals(r->ledger2, "4403040001"), 0);

    /* the other order, with CHEN: the other terminal first — the window */
    assert_int_equal(tap_fault(r, CHEN, YN_SIM_PULL_ON_WRITE, &o), YN_OK);
    int64_t chen_meal = o.result.seq;
    assert_int_equal(o.stamp, YN_TAP_STAMP_MISSING);
    assert_int_equal(tap_at(r, &r->env2, CHEN, YN_SIM_OK, &o), YN_OK);
    assert_int_equal(o.result.decision.subsidy_fen, 500); /* the one open window */
    int64_t meal = 0;
    assert_int_equal(notices(r->ledger, &meal, NULL, 0), 2);
    assert_int_equal(meal, chen_meal); /* …listed for the district */
    /* and no further: the card now carries T2's stamp, T2's ledger has it */
    r->when.utc_s += 90;
    r->when.mono_ms += 90000;
    assert_int_equal(tap(r, CHEN, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(tap_at(r, &r->env2, CHEN, YN_SIM_OK, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(
        subsidised_meals(r->ledger, "4403040003") + subsidised_meals(r->ledger2, "4403040003"), 2);
    assert_verifies(r->ledger);
    assert_verifies(r->ledger2);
}

/* After a restart: the tap whose outcome was never shown is replayed with its
 * own id when its card comes back — the original outcome, nothing charged —
 * and every subsidised meal not settled gets its notice, once. */
static void test_restart_replays_and_notes(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    assert_int_equal(tap(r, CHEN, &o), YN_OK);  /* seq 1: settled */
    assert_int_equal(tap(r, ZHANG, &o), YN_OK); /* seq 2: the stop came before 成功 */
    yn_ledger_record unshown;
    assert_int_equal(yn_ledger_newest_tap(r->ledger, &unshown), YN_OK);
    assert_int_equal(unshown.seq, 2);
    int noted = 0;
    assert_int_equal(yn_tap_recover(&r->env, 1, 100, &r->when, &noted), YN_OK);
    assert_int_equal(noted, 1);
    assert_int_equal(yn_tap_recover(&r->env, 1, 100, &r->when, &noted), YN_OK);
    assert_int_equal(noted, 0); /* once */
    assert_int_equal(head(r), 3);
    /* another card first: a tap of its own */
    yn_nfc_tag tag;
    assert_int_equal(yn_nfc_sim_present(&r->nfc, LI), YN_OK);
    assert_int_equal(yn_nfc_poll(&r->nfc, 0, &tag), YN_OK);
    assert_int_equal(yn_tap_debit(&r->env, &tag, &meal_15, 1000, &unshown, "op1", &r->when, &o),
                     YN_OK);
    assert_int_equal(o.unshown_utc_s, 0);
    assert_int_equal(head(r), 4);
    /* the senior comes back, hours later: the original outcome, not a charge */
    r->when.utc_s += 3 * 3600;
    r->when.mono_ms += 3 * 3600 * 1000LL;
    assert_int_equal(yn_nfc_sim_present(&r->nfc, ZHANG), YN_OK);
    assert_int_equal(yn_nfc_poll(&r->nfc, 0, &tag), YN_OK);
    assert_int_equal(yn_tap_debit(&r->env, &tag, &meal_15, 1001, &unshown, "op1", &r->when, &o),
                     YN_EDUPLICATE);
    assert_true(o.charged);
    assert_int_equal(o.result.seq, 2);
    assert_int_equal(o.result.decision.subsidy_fen, 1500);
    assert_int_equal(o.unshown_utc_s, LUNCH_UTC);
    assert_int_equal(head(r), 4);
    assert_int_equal(subsidised_meals(r->ledger, "4403040001"), 1);
    assert_verifies(r->ledger);
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

/* A blank card is told for what it is — never "not genuine" (a clone) nor
 * "tap again". */
static void test_blank_card_is_not_a_clone(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    assert_int_equal(tap(r, BLANK, &o), YN_ENOTFOUND);
    assert_int_equal(o.reason, YN_REASON_BLANK_CARD);
    assert_false(o.charged);
    assert_non_null(strstr(o.detail, "blank"));
    assert_string_equal(yn_reason_kind(o.reason), "这张卡还没有开通，请到社区服务中心办理");
    assert_int_equal(head(r), 0);
}

/* A repeat DESFire tap reads only the stamp: the verified record is cached
 * by UID, and a card that then fails authentication is forgotten. */
static void test_verified_record_cache(void **state)
{
    struct rig *r = *state;
    yn_tap_outcome o;
    static yn_card_cache cache;
    memset(&cache, 0, sizeof cache);
    r->env.cache = &cache;
    assert_int_equal(tap(r, ZHANG, &o), YN_OK);
    assert_int_equal(cache.misses, 1);
    yn_sim_card *c = (yn_sim_card *)yn_nfc_sim_card(&r->nfc, ZHANG);
    c->record[40] ^= 0x01; /* the record on the card changes: a hit does not read it */
    yn_nfc_tag tag;
    assert_int_equal(yn_nfc_sim_present(&r->nfc, ZHANG), YN_OK);
    assert_int_equal(yn_nfc_poll(&r->nfc, 0, &tag), YN_OK);
    assert_int_equal(yn_tap_identify(&r->env, &tag, &o), YN_OK);
    assert_int_equal(cache.hits, 1);
    assert_string_equal(o.card.card_no, "4403040001");
    c->record[40] ^= 0x01;
    /* the clone of the same UID fails authentication: refused, and forgotten */
    assert_int_equal(tap(r, CLONE, &o), YN_EAUTH);
    assert_int_equal(o.reason, YN_REASON_NOT_GENUINE);
    assert_null(yn_card_cache_find(&cache, c->tag.uid, c->tag.uid_len, 0));
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

/* --- identity-only cards (CARD.md §8) --------------------------------------- */

/* A card that is not a 颐年卡, as the reader sees it: type, identifier, kind. */
static int add_other(struct rig *r, enum yn_tag_type type, const uint8_t *uid, size_t uid_len,
                     uint8_t kind, bool random)
{
    yn_sim_card c = {.foreign_kind = kind, .random_uid = random, .blank = kind == 0};
    c.tag.type = type;
    memcpy(c.tag.uid, uid, uid_len);
    c.tag.uid_len = uid_len;
    snprintf(c.label, sizeof c.label, "not a 颐年卡");
    int i = yn_nfc_sim_add(&r->nfc, &c);
    assert_true(i >= 0);
    return i;
}

static void bind(struct rig *r, const char *card_no, const char *ident, int64_t version)
{
    yn_card_facts c = {.birth_ymd = 19450312,
                       .flags = YN_FLAG_DIBAO,
                       .district = 440304,
                       .street = 440304001,
                       .expiry_ymd = 20301231};
    snprintf(c.card_no, sizeof c.card_no, "%s", card_no);
    snprintf(c.ident, sizeof c.ident, "%s", ident);
    assert_int_equal(yn_ledger_roster_put(r->ledger, &c, 1, version), YN_OK);
}

/* Under a policy that accepts identity-only cards: a card bound in the
 * roster is served under the policy with the roster's facts and the
 * ledger's own counts (once a lunch), no stamp written (it has none); an
 * unbound one, a random UID (08 …, or another identifier at a second
 * activation), a lost identifier are refused kindly; a clone of a 颐年卡
 * stays "not genuine" even when its UID is bound elsewhere. Under the
 * shipped policy nothing changes. */
static void test_identity_only_cards(void **state)
{
    struct rig *r = *state;
    static const uint8_t transit[7] = {0x04, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
    static const uint8_t shebao[4] = {0x5C, 0x01, 0x02, 0x03};
    static const uint8_t pupi[4] = {0x1A, 0x2B, 0x3C, 0x4D};
    static const uint8_t random[4] = {0x08, 0, 0, 1};
    int foreign = add_other(r, YN_TAG_DESFIRE, transit, 7, YN_CARD_KIND_OTHER_APP, false);
    int classic = add_other(r, YN_TAG_CLASSIC_1K, shebao, 4, YN_CARD_KIND_FOREIGN, false);
    int type_b = add_other(r, YN_TAG_ISO14443B, pupi, 4, YN_CARD_KIND_FOREIGN, false);
    int phone = add_other(r, YN_TAG_DESFIRE, random, 4, 0, true);
    int rand_b = add_other(r, YN_TAG_ISO14443B, pupi, 4, YN_CARD_KIND_FOREIGN, true);
    yn_tap_outcome o;
    /* the shipped policy: a transit card is another card, as before */
    assert_int_equal(tap(r, foreign, &o), YN_ENOTFOUND);
    assert_int_equal(o.reason, YN_REASON_OTHER_CARD);

    yn_policy *p = yn_test_policy_ident(20);
    assert_non_null(p);
    r->env.policy = p;
    assert_int_equal(yn_ledger_meta_put(r->ledger, "last_sync_utc_s", "1773115000"), YN_OK);
    bind(r, "4403040100", "A:04334455667788", 1);
    bind(r, "4403040101", "B:1A2B3C4D", 2);
    /* bound: served under the policy with the roster's facts (81, 低保: ¥15) */
    assert_int_equal(tap(r, foreign, &o), YN_OK);
    assert_true(o.charged);
    assert_int_equal(o.by, YN_LEDGER_BY_IDENT);
    assert_string_equal(o.ident, "A:04334455667788");
    assert_string_equal(o.card.card_no, "4403040100");
    assert_int_equal(o.result.decision.subsidy_fen, 1500);
    assert_int_equal(o.stamp, YN_TAP_STAMP_NONE); /* nothing is written on such a card */
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(r->ledger, o.result.seq, &rec), YN_OK);
    assert_int_equal(rec.by, YN_LEDGER_BY_IDENT);
    assert_string_equal(rec.ident, "A:04334455667788");
    /* the same lunch again: the ledger's count, full price */
    r->when.utc_s += 120;
    r->when.mono_ms += 120000;
    assert_int_equal(tap(r, foreign, &o), YN_OK);
    assert_int_equal(o.reason, YN_REASON_PERIOD_USED);
    assert_int_equal(o.result.decision.subsidy_fen, 0);
    /* a type B card by its PUPI */
    assert_int_equal(tap(r, type_b, &o), YN_OK);
    assert_int_equal(o.result.decision.subsidy_fen, 1500);
    assert_string_equal(o.ident, "B:1A2B3C4D");
    int64_t records = head(r);
    /* unbound: a kind refusal naming the identifier for staff */
    assert_int_equal(tap(r, classic, &o), YN_EREFUSED);
    assert_int_equal(o.reason, YN_REASON_NOT_ENROLLED);
    assert_false(o.charged);
    assert_non_null(strstr(o.detail, "A:5C010203"));
    assert_string_equal(yn_reason_kind(o.reason), "这张卡还没有登记，请到社区服务中心登记");
    /* a random UID, by its 08 prefix: refused before any read */
    assert_int_equal(tap(r, phone, &o), YN_EREFUSED);
    assert_int_equal(o.reason, YN_REASON_RANDOM_UID);
    /* a type B card with a new PUPI at each activation: found by a second one */
    assert_int_equal(tap(r, rand_b, &o), YN_EREFUSED);
    assert_int_equal(o.reason, YN_REASON_RANDOM_UID);
    assert_non_null(strstr(o.detail, "activated again"));
    /* a clone of a 颐年卡 whose UID the roster binds to someone: still not genuine */
    const yn_sim_card *clone = yn_nfc_sim_card(&r->nfc, CLONE);
    char ident[YN_IDENT_MAX];
    assert_int_equal(yn_ident_make(false, clone->tag.uid, clone->tag.uid_len, ident), YN_OK);
    bind(r, "4403040102", ident, 3);
    assert_int_equal(tap(r, CLONE, &o), YN_EAUTH);
    assert_int_equal(o.reason, YN_REASON_NOT_GENUINE);
    /* a lost identity card: by its identifier */
    yn_ledger_blacklist_entry lost = {.seq = 2, .lost = true};
    snprintf(lost.ident, sizeof lost.ident, "A:04334455667788");
    assert_int_equal(yn_ledger_blacklist_apply_many(r->ledger, &lost, 1), YN_OK);
    assert_int_equal(tap(r, foreign, &o), YN_EREFUSED);
    assert_int_equal(o.reason, YN_REASON_LOST);
    assert_int_equal(head(r), records);
    /* the kiosk knows a bound card by its card number */
    yn_nfc_tag tag;
    assert_int_equal(yn_nfc_sim_present(&r->nfc, type_b), YN_OK);
    assert_int_equal(yn_nfc_poll(&r->nfc, 0, &tag), YN_OK);
    assert_int_equal(yn_tap_identify(&r->env, &tag, &o), YN_OK);
    assert_string_equal(o.card.card_no, "4403040101");
    /* a genuine 颐年卡 is read the normal way, whatever the roster binds */
    assert_int_equal(tap(r, ZHANG, &o), YN_OK);
    assert_int_equal(o.by, YN_LEDGER_BY_CARD);
    assert_int_equal(o.stamp, YN_TAP_STAMP_WRITTEN);
    assert_verifies(r->ledger);
    yn_policy_free(p);
}

/* After a restart no stamp notice is written for a meal without a card. */
static void test_restart_notes_only_card_meals(void **state)
{
    struct rig *r = *state;
    static const uint8_t pupi[4] = {0x1A, 0x2B, 0x3C, 0x4D};
    int type_b = add_other(r, YN_TAG_ISO14443B, pupi, 4, YN_CARD_KIND_FOREIGN, false);
    yn_policy *p = yn_test_policy_ident(20);
    r->env.policy = p;
    bind(r, "4403040101", "B:1A2B3C4D", 1);
    yn_tap_outcome o;
    assert_int_equal(tap(r, type_b, &o), YN_OK);
    assert_int_equal(tap(r, CHEN, &o), YN_OK);
    int noted = -1;
    assert_int_equal(yn_tap_recover(&r->env, 0, 100, &r->when, &noted), YN_OK);
    assert_int_equal(noted, 1); /* CHEN's */
    assert_int_equal(notices(r->ledger, NULL, NULL, 0), 1);
    yn_policy_free(p);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_genuine_card_is_charged_and_stamped),
        T(test_same_tap_twice_charges_once),
        T(test_blank_card_is_not_a_clone),
        T(test_verified_record_cache),
        T(test_second_meal_same_lunch_gets_no_subsidy),
        T(test_other_terminals_stamp_counts_offline),
        T(test_own_stamp_is_checked_against_the_ledger),
        T(test_forged_and_cloned_cards_are_refused),
        T(test_failed_commit_leaves_no_stamp),
        T(test_lost_reply_after_the_stamp_meal_stands),
        T(test_stamp_lost_before_it_was_written),
        T(test_restart_replays_and_notes),
        T(test_reader_faults_are_one_failed_tap),
        T(test_lost_and_other_district),
        T(test_identify_for_the_kiosk),
        T(test_identity_only_cards),
        T(test_restart_notes_only_card_meals),
    };
    return cmocka_run_group_tests_name("tap", tests, NULL, NULL);
}
