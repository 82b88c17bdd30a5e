/* crash_power.c — power cuts at random points of a scripted lunch.
 *
 * kill -9 (crash_ledger) keeps the kernel's page cache; a power cut does not.
 * Here the ledger runs on tests/support/powervfs.c, a SQLite VFS that keeps
 * what was written since the last sync in memory and, at a random write,
 * truncation or sync, cuts the power: the unsynced writes are dropped (the
 * last one maybe torn), or kept, dropped and torn in any mix, and nothing
 * more reaches the disk. The ledger is then opened again on what is left, as
 * the daemon starts after the power comes back, and checked:
 *   - every tap that returned YN_OK or YN_EDUPLICATE before the cut is in the
 *     journal with its seq; every acknowledged 冲正 and allocation too;
 *   - no tap twice: each tap id once, only the acknowledged ones and the one
 *     in flight at the cut, whose retry (same tap id) is answered as the
 *     original (YN_EDUPLICATE, same seq) when it survived, else charged once;
 *   - PRAGMA integrity_check; yn_ledger_verify (the chain from record 1,
 *     every card row against the journal: balances, usage, last tap);
 *   - yn_ledger_check (pages, chain tail, high-water mark): fit to sell — the
 *     mark never above what survived — and every record the district was
 *     sent is there with the same hash;
 *   - check_card_agreement(): the hook for the card-stamp check (below).
 * The lunch goes through the real tap pipeline (firmware/app/tap.c: card key,
 * record, signature, stamp, debit) with simulated cards, on two ledger
 * handles as in the daemon: the counter's (taps, cash top-ups, 冲正, idle
 * checkpoints) and sync's (district allocations; uploads: batch, high-water
 * mark, acknowledgement). A lunch is STEPS taps on a fresh ledger; cuts come
 * after 1..MAX_CUT_OPS file operations, the first even while the ledger is
 * created.
 *
 *   crash_power [--cuts N] [--seed S]   (default 1000 cuts; YN_LONG=1: 20000)
 * Prints one summary line (with the seed); exits non-zero on any violation. */
#include <inttypes.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cardfix.h"
#include "config.h"
#include "ledger.h"
#include "log.h"
#include "nfc_sim.h"
#include "policy.h"
#include "powervfs.h"
#include "tap.h"
#include "testkeys.h"

#define TERMINAL    "SZFT0001"
#define N_CARDS     24
#define STEPS       400          /* taps of one lunch, then a fresh ledger */
#define MAX_RECORDS (STEPS * 3)  /* taps, reversals and allocations of a lunch */
#define MAX_CUT_OPS 300          /* a cut after 1..this many file operations */
#define TAP_BASE    1000000      /* tap id of step 0 */
#define NOON_UTC    1749614400LL /* 2025-06-11 12:00 Asia/Shanghai, a Wednesday */
#define STEP_S      5            /* seconds between two taps */
#define MAX_REPORTS 20           /* violations printed in full */

/* What one step of the lunch does, in this order (each may be cut). */
enum phase { PH_TAP, PH_REVERSE, PH_ALLOCATE, PH_UPLOAD, PH_CHECKPOINT, PH_DONE };

struct lunch {
    int number;
    char dir[600], path[700];
    yn_nfc nfc; /* the cards keep what was written to them across cuts */
    yn_tap_env env;
    yn_ledger *counter, *sync;
    int64_t boot;             /* boots so far (a cut is a reboot) */
    int step;                 /* the step in progress */
    enum phase phase;         /* its phase in progress */
    bool in_flight;           /* that phase was cut: its outcome is unknown until retried */
    int64_t tap_seq[STEPS];   /* seq acknowledged for the step's tap; 0: none yet */
    bool tap_refused[STEPS];  /* the step's tap was refused (nothing journaled) */
    int64_t rev_seq[STEPS];   /* reversal acknowledged at the step */
    int64_t rev_of[STEPS];    /* the meal it undoes */
    int64_t alloc_seq[STEPS]; /* allocation acknowledged at the step */
    int64_t last_meal_seq;    /* the newest acknowledged meal, for 冲正 */
    int64_t district_upto;    /* the district was sent records 1..district_upto: */
    uint8_t district_hash[MAX_RECORDS + 1][YN_LEDGER_HASH_LEN]; /* with these hashes */
};

static yn_policy *policy;
static yn_cardfix fix;
static yn_testkeys keys; /* the card master, in key files (the tap derives each card's key) */
static int64_t violations, cuts_done, retried_taps, dup_answers, acked_taps;
static uint64_t rng;

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    if (violations++ < MAX_REPORTS) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "crash_power: ");
        vfprintf(stderr, fmt, ap);
        fprintf(stderr, " (after cut %" PRId64 ")\n", cuts_done);
        va_end(ap);
    }
}

static yn_ledger_when when_of(int step)
{
    return (yn_ledger_when){.utc_s = NOON_UTC + (int64_t)step * STEP_S,
                            .mono_ms = 1000000 + (int64_t)step * STEP_S * 1000,
                            .clock_trusted = true};
}

/* ---- the ledger, opened as the daemon opens it ------------------------------------- */

static int open_handles(struct lunch *lu)
{
    char boot_id[48];
    snprintf(boot_id, sizeof boot_id, "boot-%" PRId64, ++lu->boot);
    yn_ledger_opts o = {.path = lu->path,
                        .terminal_id = TERMINAL,
                        .min_interval_s = 60,
                        .boot_id = boot_id,
                        .lock = true};
    int st = yn_ledger_open(&o, &lu->counter);
    o.lock = false;
    if (st == YN_OK)
        st = yn_ledger_open(&o, &lu->sync);
    lu->env.ledger = lu->counter;
    return st;
}

/* At the cut the reader loses power with the rest of the terminal: no card
 * is written after it (the code that goes on running here stands for nothing
 * a real terminal would do). Cleared when the power comes back. */
static void reader_dies(void *arg)
{
    yn_nfc_sim_fault(&((struct lunch *)arg)->nfc, YN_SIM_UNPLUGGED);
}

static void close_handles(struct lunch *lu)
{
    yn_ledger_close(lu->sync);
    yn_ledger_close(lu->counter);
    lu->sync = lu->counter = NULL;
    char shm[720];
    snprintf(shm, sizeof shm, "%s-shm", lu->path); /* what a reboot leaves is rebuilt */
    (void)unlink(shm);
}

/* ---- the card-stamp agreement check ---------------------------------------------------
 * Issue 11, item 1: no senior loses a subsidy or pays twice because a card's
 * last-meal stamp and the ledger disagree. The ledger commits first and the
 * stamp follows (LEDGER.md "Card stamps"), so after any cut:
 *   - a card whose stamp names this terminal names a subsidised meal of that
 *     card that the ledger holds (a stamp of a meal the ledger lost would make
 *     another canteen refuse the senior's subsidy: the senior would lose);
 *   - a card whose newest subsidised meal here is not on its stamp is a
 *     double-subsidy window of at most that one meal: counted (windows), and
 *     allowed only for the meal in flight at a cut — the terminal records it
 *     as a notice at its next start (resume_taps, test_tap/test_terminal).
 * Returns the number of disagreements, each reported with violation(). */
static int64_t windows_max; /* most cards in a window after one cut */

static int64_t check_card_agreement(struct lunch *lu)
{
    int64_t bad = 0, windows = 0;
    uint32_t own = yn_card_terminal_code(TERMINAL);
    for (int i = 0; i < yn_nfc_sim_count(&lu->nfc); i++) {
        const yn_sim_card *c = yn_nfc_sim_card(&lu->nfc, i);
        yn_card_record rec;
        yn_card_stamp st;
        const char *why = "";
        if (yn_card_read(c->record, c->record_len, c->tag.uid, c->tag.uid_len, &fix.ring, &rec,
                         &why) != YN_OK ||
            yn_card_stamp_decode(c->stamp, c->stamp_len, &st, &why) != YN_OK) {
            violation("card %d: record or stamp unreadable (%s)", i, why);
            bad++;
            continue;
        }
        yn_ledger_account acc;
        if (yn_ledger_balance(lu->counter, rec.card_no, NOON_UTC, YN_LEDGER_LAST_MAX, &acc) !=
            YN_OK) {
            violation("card %s: no balance", rec.card_no);
            bad++;
            continue;
        }
        int64_t newest = 0; /* the card's newest subsidised meal not reversed, here */
        for (int k = 0; k < acc.n_last && !newest; k++)
            if (acc.last[k].subsidy_fen > 0 && !acc.last[k].reversed)
                newest = acc.last[k].seq;
        if (st.version == 2 && st.terminal_code == own) {
            yn_ledger_record meal;
            if (yn_ledger_record_get(lu->counter, (int64_t)st.seq, &meal) != YN_OK ||
                meal.kind != YN_LEDGER_MEAL || meal.subsidy_fen <= 0 ||
                strcmp(meal.card_no, rec.card_no) != 0) {
                violation("card %s: its stamp names meal seq %" PRIu32
                          " which the ledger does not hold: the senior would lose a subsidy",
                          rec.card_no, st.seq);
                bad++;
                continue;
            }
        }
        if (newest && !(st.version == 2 && st.terminal_code == own && st.seq == (uint32_t)newest))
            windows++;
    }
    if (windows > windows_max)
        windows_max = windows;
    return bad;
}

/* ---- the checks after a cut ------------------------------------------------------------ */

static int64_t sql_i64(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static void check_ledger(struct lunch *lu)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(lu->path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        violation("the ledger does not open read-only: %s", sqlite3_errmsg(db));
        sqlite3_close(db);
        return;
    }
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK ||
        sqlite3_step(s) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(s, 0), "ok"))
        violation("integrity_check: %s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    if (sql_i64(db, "SELECT COUNT(*) FROM (SELECT tap_id FROM journal WHERE tap_id IS NOT NULL"
                    " GROUP BY tap_id HAVING COUNT(*) > 1)") != 0)
        violation("a tap id is journaled twice");
    /* every journaled tap was acknowledged, but the one in flight */
    if (sqlite3_prepare_v2(db, "SELECT seq, tap_id FROM journal WHERE tap_id IS NOT NULL", -1, &s,
                           NULL) == SQLITE_OK) {
        while (sqlite3_step(s) == SQLITE_ROW) {
            int64_t seq = sqlite3_column_int64(s, 0), step = sqlite3_column_int64(s, 1) - TAP_BASE;
            bool flying = step == lu->step && lu->phase == PH_TAP;
            if (step < 0 || step > lu->step || (!flying && lu->tap_seq[step] != seq))
                violation("record %" PRId64 " holds tap %" PRId64 ", which was %s", seq,
                          step + TAP_BASE,
                          step < 0 || step > lu->step ? "never made"
                          : lu->tap_refused[step]     ? "refused"
                                                      : "acknowledged with another seq");
        }
    }
    sqlite3_finalize(s);
    sqlite3_close(db);
    /* every acknowledged record, where it was acknowledged */
    for (int i = 0; i <= lu->step && i < STEPS; i++) {
        yn_ledger_record r;
        if (lu->tap_seq[i] && (yn_ledger_record_get(lu->counter, lu->tap_seq[i], &r) != YN_OK ||
                               r.tap_id != TAP_BASE + i))
            violation("acknowledged tap %d (seq %" PRId64 ") lost", TAP_BASE + i, lu->tap_seq[i]);
        if (lu->rev_seq[i] && (yn_ledger_record_get(lu->counter, lu->rev_seq[i], &r) != YN_OK ||
                               r.kind != YN_LEDGER_REVERSAL || r.reverses_seq != lu->rev_of[i]))
            violation("acknowledged 冲正 of step %d (seq %" PRId64 ") lost", i, lu->rev_seq[i]);
        char ref[32];
        snprintf(ref, sizeof ref, "A-%d-%d", lu->number, i);
        if (lu->alloc_seq[i] && (yn_ledger_record_get(lu->counter, lu->alloc_seq[i], &r) != YN_OK ||
                                 r.kind != YN_LEDGER_ALLOCATION || strcmp(r.ref, ref) != 0))
            violation("acknowledged allocation %s (seq %" PRId64 ") lost", ref, lu->alloc_seq[i]);
    }
    yn_ledger_verify_report rep;
    if (yn_ledger_verify(lu->counter, &rep) != YN_OK)
        violation("verify: seq %" PRId64 " card %s: %s", rep.first_bad_seq, rep.bad_card, rep.what);
    yn_ledger_health h;
    int st = yn_ledger_check(lu->counter, YN_LEDGER_CHECK_PAGES, &h);
    if (st != YN_OK)
        violation("not fit to sell (%s): %s", yn_strerror(st), h.what);
    for (int64_t seq = 1; seq <= lu->district_upto; seq++) {
        yn_ledger_record r;
        if (yn_ledger_record_get(lu->counter, seq, &r) != YN_OK ||
            memcmp(r.hash, lu->district_hash[seq], YN_LEDGER_HASH_LEN) != 0) {
            violation("record %" PRId64 ", which the district holds, is %s", seq,
                      seq > h.head_seq ? "gone" : "not the one it holds");
            break;
        }
    }
    int64_t stamps = check_card_agreement(lu);
    if (stamps)
        violation("%" PRId64 " cards disagree with the ledger", stamps);
}

/* ---- one phase of one step ---------------------------------------------------------------- */

/* The step's tap: through the tap pipeline, every 11th a cash top-up. A
 * retry (in_flight) must be answered as the original when it survived. */
static void do_tap(struct lunch *lu, int step)
{
    int card = (step * 7) % N_CARDS;
    int64_t tap_id = TAP_BASE + step;
    yn_ledger_when w = when_of(step);
    yn_ledger_record before = {0};
    bool survived = false;
    if (lu->in_flight) { /* was it journaled before the power went? */
        retried_taps++;
        int64_t head = 0;
        uint8_t hh[YN_LEDGER_HASH_LEN];
        if (yn_ledger_head(lu->counter, &head, hh) == YN_OK)
            for (int64_t s = head; s > 0 && s > head - 8 && !survived; s--)
                survived = yn_ledger_record_get(lu->counter, s, &before) == YN_OK &&
                           before.tap_id == tap_id;
    }
    int st;
    int64_t seq = 0;
    if (step % 11 == 5) {
        yn_ledger_result r = {0};
        const yn_sim_card *c = yn_nfc_sim_card(&lu->nfc, card);
        yn_card_record rec;
        const char *why;
        st = yn_card_read(c->record, c->record_len, c->tag.uid, c->tag.uid_len, &fix.ring, &rec,
                          &why);
        if (st == YN_OK)
            st = yn_ledger_topup(lu->counter, tap_id, rec.card_no, 2000, "1001", &w, &r);
        seq = r.seq;
    } else {
        yn_nfc_tag tag;
        yn_tap_outcome o = {0};
        yn_meal meal = {.price_fen = 1500};
        st = yn_nfc_sim_present(&lu->nfc, card);
        if (st == YN_OK)
            st = yn_nfc_poll(&lu->nfc, 0, &tag);
        if (st == YN_OK)
            st = yn_tap_debit(&lu->env, &tag, &meal, tap_id, NULL, "1001", &w, &o);
        if (yn_nfc_release(&lu->nfc) != YN_OK)
            violation("the reader does not release the card");
        seq = o.result.seq;
        if (st == YN_OK && o.result.kind == YN_LEDGER_MEAL)
            lu->last_meal_seq = seq;
    }
    if (yn_power_cut())
        return; /* in flight: its outcome is not known */
    if (st == YN_OK || st == YN_EDUPLICATE) {
        if (st == YN_EDUPLICATE && !(survived && before.seq == seq))
            violation("tap %" PRId64 " answered as a replay (seq %" PRId64 ") but %s", tap_id, seq,
                      survived ? "it was journaled under another seq" : "it never was");
        if (st == YN_OK && survived)
            violation("tap %" PRId64 " charged again (seq %" PRId64 ") though seq %" PRId64
                      " survived the cut",
                      tap_id, seq, before.seq);
        dup_answers += st == YN_EDUPLICATE;
        lu->tap_seq[step] = seq;
        acked_taps++;
    } else if (st == YN_EREFUSED) {
        lu->tap_refused[step] = true;
    } else {
        violation("tap %" PRId64 ": %s", tap_id, yn_strerror(st));
    }
}

static void do_reverse(struct lunch *lu, int step)
{
    if (step % 13 != 7 || !lu->last_meal_seq)
        return;
    yn_ledger_when w = when_of(step);
    yn_ledger_result r;
    int st = yn_ledger_reverse(lu->counter, policy, lu->last_meal_seq, "2001", &w, &r);
    if (yn_power_cut())
        return;
    if (st == YN_OK || (st == YN_EDUPLICATE && lu->in_flight)) {
        lu->rev_seq[step] = r.seq;
        lu->rev_of[step] = lu->last_meal_seq;
    } else if (st != YN_EREFUSED && st != YN_EDUPLICATE) {
        violation("冲正 of %" PRId64 ": %s", lu->last_meal_seq, yn_strerror(st));
    }
}

static void do_allocate(struct lunch *lu, int step)
{
    if (step % 17 != 3)
        return;
    char ref[32], card_no[20];
    snprintf(ref, sizeof ref, "A-%d-%d", lu->number, step);
    snprintf(card_no, sizeof card_no, "44030400%02d", (step * 5) % N_CARDS);
    yn_ledger_when w = when_of(step);
    yn_ledger_result r;
    int st = yn_ledger_allocate(lu->sync, ref, card_no, "district", 500, &w, &r);
    if (yn_power_cut())
        return;
    if (st == YN_OK || (st == YN_EDUPLICATE && lu->in_flight))
        lu->alloc_seq[step] = r.seq;
    else
        violation("allocation %s: %s", ref, yn_strerror(st));
}

/* Sync's upload: a batch, the high-water mark raised, the district holds
 * the records from then on, the acknowledgement. */
static void do_upload(struct lunch *lu, int step)
{
    if (step % 40 != 39)
        return;
    yn_ledger_batch b;
    int64_t now = when_of(step).utc_s;
    int st = yn_ledger_batch_next(lu->sync, 200, now, &b);
    if (yn_power_cut() || st == YN_ENOTFOUND)
        return;
    if (st == YN_OK)
        st = yn_ledger_mark_raise(lu->sync, b.last_seq);
    if (yn_power_cut())
        return;
    for (int64_t s = b.first_seq; st == YN_OK && s <= b.last_seq && s <= MAX_RECORDS; s++) {
        yn_ledger_record r;
        st = yn_ledger_record_get(lu->sync, s, &r);
        memcpy(lu->district_hash[s], r.hash, YN_LEDGER_HASH_LEN);
        if (s > lu->district_upto)
            lu->district_upto = s;
    }
    if (st == YN_OK)
        st = yn_ledger_batch_ack(lu->sync, b.id, now);
    if (!yn_power_cut() && st != YN_OK)
        violation("upload of %" PRId64 "..%" PRId64 ": %s", b.first_seq, b.last_seq,
                  yn_strerror(st));
}

static void do_checkpoint(struct lunch *lu, int step)
{
    if (step % 25 != 24)
        return;
    int st = yn_ledger_checkpoint(lu->counter);
    if (!yn_power_cut() && st != YN_OK)
        violation("checkpoint: %s", yn_strerror(st));
}

/* Run the lunch from where it is until a cut or its end; false at a cut. */
static bool run(struct lunch *lu)
{
    static void (*const phases[])(struct lunch *, int) = {[PH_TAP] = do_tap,
                                                          [PH_REVERSE] = do_reverse,
                                                          [PH_ALLOCATE] = do_allocate,
                                                          [PH_UPLOAD] = do_upload,
                                                          [PH_CHECKPOINT] = do_checkpoint};
    for (; lu->step < STEPS; lu->step++, lu->phase = PH_TAP) {
        for (; lu->phase < PH_DONE; lu->phase++) {
            phases[lu->phase](lu, lu->step);
            if (yn_power_cut()) {
                lu->in_flight = true;
                return false;
            }
            lu->in_flight = false;
        }
    }
    return true;
}

/* ---- lunches --------------------------------------------------------------------------- */

static void lunch_begin(struct lunch *lu, int number, const char *root)
{
    memset(lu, 0, sizeof *lu);
    lu->number = number;
    snprintf(lu->dir, sizeof lu->dir, "%s/lunch-%d", root, number);
    snprintf(lu->path, sizeof lu->path, "%s/ledger.db", lu->dir);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", lu->dir);
    if (system(cmd) != 0)
        abort();
    yn_config cfg;
    yn_config_defaults(&cfg);
    if (yn_nfc_open(&lu->nfc, &cfg.reader) != YN_OK)
        abort();
    for (int i = 0; i < N_CARDS; i++) { /* 低保 80, 75, 65 (no subsidy), 特困 90 */
        static const struct {
            int32_t birth;
            uint32_t flags;
        } kinds[] = {
            {19450312, YN_FLAG_DIBAO}, {19500505, 0}, {19600101, 0}, {19350101, YN_FLAG_TEKUN}};
        yn_sim_card c;
        char no[20];
        snprintf(no, sizeof no, "44030400%02d", i);
        yn_cardfix_card(&fix, &c, (uint32_t)(100 + i), no, kinds[i % 4].birth, kinds[i % 4].flags,
                        440304001);
        if (yn_nfc_sim_add(&lu->nfc, &c) != i)
            abort();
    }
    lu->env = (yn_tap_env){.nfc = &lu->nfc,
                           .policy = policy,
                           .keys = &keys.ks,
                           .ring = &fix.ring,
                           .canteen = {.district = 440304, .street = 440304001},
                           .canteen_code = yn_tap_canteen_code("C-FT-001"),
                           .terminal_code = yn_card_terminal_code(TERMINAL)};
}

static void lunch_end(struct lunch *lu, bool keep)
{
    close_handles(lu);
    yn_power_settle();
    yn_nfc_close(&lu->nfc);
    if (!keep) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", lu->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "crash_power: could not remove %s\n", lu->dir);
    }
}

/* After a cut: the power back, the ledger opened again and checked, the
 * next cut armed. false when it does not even open. */
static bool after_cut(struct lunch *lu)
{
    cuts_done++;
    close_handles(lu);
    yn_power_revive();
    yn_nfc_sim_fault(&lu->nfc, YN_SIM_OK); /* the reader is powered again */
    int st = open_handles(lu);
    if (st != YN_OK) {
        violation("the ledger does not open after the cut: %s", yn_strerror(st));
        return false;
    }
    check_ledger(lu);
    return true;
}

int main(int argc, char **argv)
{
    int64_t cuts = getenv("YN_LONG") && atoi(getenv("YN_LONG")) == 1 ? 20000 : 1000;
    uint64_t seed = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cuts") == 0 && i + 1 < argc) {
            cuts = atoll(argv[++i]);
        } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 0);
        } else {
            fprintf(stderr, "usage: crash_power [--cuts N] [--seed S]\n");
            return 2;
        }
    }
    rng = seed ? seed : 1;
    const char *tmp = getenv("TMPDIR"), *src = getenv("YN_SRCDIR");
    char root[600], ppath[1024], err[256];
    snprintf(root, sizeof root, "%s/crash-power.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        perror("crash_power: mkdtemp");
        return 2;
    }
    snprintf(ppath, sizeof ppath, "%s/firmware/policies/shenzhen-2025.json", src ? src : ".");
    if (yn_policy_load_file(ppath, &policy, err, sizeof err) != YN_OK) {
        fprintf(stderr, "crash_power: %s: %s\n", ppath, err);
        return 2;
    }
    if (yn_power_install(seed ^ 0x5bd1e995ull) != 0) {
        fprintf(stderr, "crash_power: cannot install the power-loss VFS\n");
        return 2;
    }
    yn_log_quiet(true); /* every cut leaves log lines of what it interrupted */
    yn_cardfix_init(&fix);
    char keys_dir[700];
    snprintf(keys_dir, sizeof keys_dir, "%s/keys", root);
    if (mkdir(keys_dir, 0700) != 0) {
        perror("crash_power: keys");
        return 2;
    }
    yn_testkeys_open_as(&keys, "file", keys_dir, fix.master, NULL, 0);

    static struct lunch lu;
    yn_power_on_cut(reader_dies, &lu);
    time_t started = time(NULL);
    int lunches = 0;
    while (cuts_done < cuts && violations == 0) {
        lunch_begin(&lu, ++lunches, root);
        yn_power_arm(1 + (int64_t)(rnd() % MAX_CUT_OPS)); /* even while it is created */
        int st = open_handles(&lu);
        if (yn_power_cut()) { /* cut while it was being made: whatever open said */
            if (!after_cut(&lu))
                break;
        } else if (st != YN_OK) {
            violation("a new ledger does not open: %s", yn_strerror(st));
            break;
        }
        while (violations == 0 && cuts_done < cuts) {
            yn_power_arm(1 + (int64_t)(rnd() % MAX_CUT_OPS));
            if (run(&lu))
                break; /* the lunch is over */
            if (!after_cut(&lu))
                break;
        }
        yn_power_arm(0);
        lunch_end(&lu, violations != 0);
    }
    yn_power_stats ps;
    yn_power_stats_get(&ps);
    printf("crash_power: %" PRId64 " power cuts in %ld s over %d lunches (seed %#" PRIx64
           "): %" PRId64 " taps acknowledged, %" PRId64 " in flight retried (%" PRId64
           " had survived); %" PRId64 " file ops, %" PRId64
           " syncs; unsynced writes at the cuts: %" PRId64 " dropped, %" PRId64 " kept, %" PRId64
           " torn; at most %" PRId64 " cards at once in a stamp window; %" PRId64 " violations\n",
           cuts_done, (long)(time(NULL) - started), lunches, seed, acked_taps, retried_taps,
           dup_answers, ps.ops, ps.syncs, ps.dropped, ps.kept, ps.torn, windows_max, violations);
    yn_policy_free(policy);
    yn_testkeys_close(&keys);
    if (violations == 0) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
        if (system(cmd) != 0)
            fprintf(stderr, "crash_power: could not remove %s\n", root);
    } else {
        fprintf(stderr, "crash_power: ledger kept for inspection under %s (seed %#" PRIx64 ")\n",
                root, seed);
    }
    return violations == 0 ? 0 : 1;
}
