/* ledger_counter.c — the one place that writes money at the counter: debit
 * (with the tap id rules, minimum interval, policy, offline cap and the
 * one durable commit), the notice of a card stamp that is missing after its
 * meal committed, reversal (冲正), and the credits: allocations and top-ups.
 * firmware/ledger/LEDGER.md, "Operations" and "Card stamps". */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_int.h"
#include "log.h"

/* ---- debit ------------------------------------------------------------------ */

/* Inside a tap's write transaction, once the card row is read (cs): the tap
 * id rules of LEDGER.md, "Tap ids". Returns SQLITE_OK with *st = YN_OK when
 * the tap is new and may be recorded; YN_EDUPLICATE when it is the card's last
 * tap (out holds that record's result: found along the card's own chain, a
 * reversal or allocation may have followed it); YN_EINVAL when the id is not
 * above the highest tap id journaled. In the last two cases the transaction
 * is ended. Anything else is a storage error (rolled back by the caller). */
static int tap_check(yn_ledger *l, const char *op, const char *card_no, const struct card_state *cs,
                     int64_t tap_id, yn_ledger_result *out, int *st)
{
    *st = YN_OK;
    int rc = yn_lg_head_current(l);
    if (rc != SQLITE_OK)
        return rc;
    if (cs->last_tap == tap_id) {
        yn_ledger_record rec;
        int64_t seq = cs->last_seq;
        bool found = false;
        while (seq > 0 && rc == SQLITE_OK) {
            rc = yn_lg_record_by(l, ST_BY_SEQ, seq, &rec, &found);
            if (rc != SQLITE_OK || !found || rec.tap_id == tap_id)
                break;
            found = false;
            if (rec.card_prev_seq >= seq) /* a damaged chain: it must go back */
                break;
            seq = rec.card_prev_seq;
        }
        if (rc != SQLITE_OK)
            return rc;
        if (!found || strcmp(rec.card_no, card_no) != 0) {
            yn_err("ledger %s: %s tap %" PRId64 " card %s: the card's last tap id is not in"
                   " its records: run yinian-diag ledger verify",
                   l->path, op, tap_id, card_no);
            return SQLITE_CORRUPT;
        }
        yn_lg_tx_end(l);
        yn_lg_result_from_record(&rec, out);
        *st = YN_EDUPLICATE;
        return SQLITE_OK;
    }
    if (tap_id <= l->tap_max) {
        yn_lg_tx_end(l);
        yn_warn("ledger %s: %s tap %" PRId64 " card %s refused: tap id not increasing (highest"
                " tap id journaled is %" PRId64 ", this card's last is %" PRId64 "): nothing"
                " recorded; the terminal must give every new tap a higher id",
                l->path, op, tap_id, card_no, l->tap_max, cs->last_tap);
        *st = YN_EINVAL;
    }
    return SQLITE_OK;
}

/* Inside a debit's transaction, after the policy granted d->subsidy_fen > 0:
 * the offline cap (LEDGER.md, "Offline cap"). Offline = no successful sync
 * recorded (meta last_sync_utc_s, written by a batch acknowledgement and by
 * an applied update) or the last one more than offline_after_s before the
 * tap. Then the card's subsidy of the local day may not exceed
 * offline_cap_fen: the layers are cut, last first (as the month cap does),
 * and what is cut is paid by the diner like any due, wallet first as far as
 * the balance left covers it, then cash. Nothing left: no subsidy at all,
 * reason month_cap (the subsidy cap reached; the log says which). */
static int offline_cap(yn_ledger *l, const struct card_state *cs, const yn_moment *m,
                       const yn_ledger_tap *tap, int64_t cap_fen, yn_decision *d)
{
    int64_t last_sync = 0;
    int rc = yn_lg_meta_get_i64(l, "last_sync_utc_s", &last_sync);
    if (rc != SQLITE_OK)
        return rc;
    if (last_sync > 0 && tap->when.utc_s - last_sync <= l->offline_after_s)
        return SQLITE_OK; /* online */
    int64_t used_fen = cs->day_ymd == m->local_ymd ? cs->day_subsidy_fen : 0;
    int64_t room_fen = cap_fen - used_fen;
    if (room_fen < 0)
        room_fen = 0;
    int64_t cut_fen = d->subsidy_fen - room_fen;
    if (cut_fen <= 0)
        return SQLITE_OK;
    int64_t excess_fen = cut_fen;
    for (int i = d->n_layers - 1; i >= 0 && excess_fen > 0; i--) {
        int64_t c = d->layers[i].fen < excess_fen ? d->layers[i].fen : excess_fen;
        d->layers[i].fen -= c;
        excess_fen -= c;
    }
    d->subsidy_fen -= cut_fen;
    int64_t balance_left_fen = cs->balance_fen - d->wallet_fen;
    int64_t from_wallet_fen = balance_left_fen <= 0        ? 0
                              : balance_left_fen < cut_fen ? balance_left_fen
                                                           : cut_fen;
    d->wallet_fen += from_wallet_fen;
    d->cash_fen += cut_fen - from_wallet_fen;
    if (d->subsidy_fen == 0) { /* as the policy's "no subsidy" */
        d->reason = YN_REASON_MONTH_CAP;
        d->n_layers = 0;
        memset(d->layers, 0, sizeof d->layers);
    }
    yn_info("ledger: debit tap %" PRId64 " card %s (%s): offline (last sync %" PRId64 ", %s): day"
            " subsidy capped at %" PRId64 " fen, %" PRId64 " fen used today, %" PRId64
            " fen of subsidy moved to the diner",
            tap->tap_id, tap->card->card_no, yn_ledger_by_name(tap->by), last_sync,
            last_sync ? "too long ago" : "never", cap_fen, used_fen, cut_fen);
    return SQLITE_OK;
}

/* The offline cap of a tap, fen; -1 = none. A card read and authenticated
 * has the board's ([sync] offline_cap_fen, 0 = none); a holder identified
 * otherwise has the policy's for that way, and the board's too if lower. */
static int64_t offline_cap_of(const yn_ledger *l, const yn_ledger_tap *tap,
                              const yn_policy_ident_rule *rule)
{
    int64_t board_fen = l->offline_cap_fen > 0 ? l->offline_cap_fen : -1;
    if (tap->by == 0 || tap->by == YN_LEDGER_BY_CARD)
        return board_fen;
    return board_fen >= 0 && board_fen < rule->offline_cap_fen ? board_fen : rule->offline_cap_fen;
}

/* The identification fields of a tap are consistent (LEDGER.md, "How the
 * holder was identified"). */
static bool tap_by_ok(const yn_ledger_tap *tap)
{
    switch (tap->by) {
    case 0:
    case YN_LEDGER_BY_CARD:
        return !tap->ident && !tap->supervisor_id;
    case YN_LEDGER_BY_IDENT:
        return yn_ident_valid(tap->ident) && !tap->supervisor_id;
    case YN_LEDGER_BY_MANUAL:
        return !tap->ident && yn_lg_text_ok(tap->supervisor_id, YN_LEDGER_ID_MAX, false) &&
               yn_lg_text_ok(tap->operator_id, YN_LEDGER_ID_MAX, false) &&
               strcmp(tap->operator_id, tap->supervisor_id) != 0;
    default:
        return false;
    }
}

/* Inside a debit's transaction, for a holder identified otherwise than by
 * the card (tap->by): the policy accepts the way, the roster has the card
 * (its facts are all the policy sees), the identifier is still bound to it
 * and not lost, the terminal's manual meals of the day are below the cap.
 * Returns SQLITE_OK with *why = YN_REASON_NONE when the tap may go on. */
static int identify_tx(yn_ledger *l, const yn_ledger_tap *tap, const yn_policy_ident_rule *rule,
                       bool on_roster, const char *bound, const yn_moment *m, enum yn_reason *why)
{
    *why = YN_REASON_NONE;
    if (!rule->accepted || !on_roster) {
        *why = YN_REASON_NOT_ENROLLED;
        return SQLITE_OK;
    }
    if (tap->by == YN_LEDGER_BY_IDENT) {
        sqlite3_stmt *s = l->st[ST_IDENT_GET];
        sqlite3_bind_text(s, 1, tap->ident, -1, SQLITE_STATIC);
        int rc = sqlite3_step(s);
        bool lost = rc == SQLITE_ROW && sqlite3_column_int(s, 1) != 0;
        sqlite3_reset(s);
        if (rc != SQLITE_ROW)
            return rc;
        if (lost)
            *why = YN_REASON_LOST;
        else if (strcmp(bound, tap->ident) != 0)
            *why = YN_REASON_NOT_ENROLLED; /* bound elsewhere since it was looked up */
        return SQLITE_OK;
    }
    sqlite3_stmt *s = l->st[ST_MANUAL_COUNT];
    sqlite3_bind_int(s, 1, m->local_ymd);
    int rc = sqlite3_step(s);
    int64_t manual = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return rc;
    if (manual >= rule->per_terminal_day)
        *why = YN_REASON_MANUAL_CAP;
    return SQLITE_OK;
}

/* The refusal the ledger itself decides, before the policy is asked. */
static void refuse(yn_ledger_result *out, enum yn_reason why)
{
    out->decision.allowed = false;
    out->decision.reason = why;
}

int yn_ledger_debit(yn_ledger *l, const yn_policy *p, const yn_ledger_tap *tap,
                    yn_ledger_result *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    if (!p || !tap || !tap->card || !tap->meal || !tap->canteen || tap->tap_id <= 0 ||
        !yn_lg_text_ok(tap->card->card_no, CARD_NO_MAX, false) ||
        !yn_lg_text_ok(tap->operator_id, YN_LEDGER_ID_MAX, true) || !tap_by_ok(tap))
        return YN_EINVAL;
    bool by_card = tap->by == 0 || tap->by == YN_LEDGER_BY_CARD;
    yn_policy_ident_rule rule = {0};
    if (tap->by == YN_LEDGER_BY_IDENT)
        yn_policy_identity_only(p, &rule);
    else if (tap->by == YN_LEDGER_BY_MANUAL)
        yn_policy_manual_entry(p, &rule);
    const char *card_no = tap->card->card_no;
    char what[96]; /* filled only when there is something to say */

    int rc = yn_lg_tx_begin(l, true);
    if (rc != SQLITE_OK)
        goto storage;

    /* 1. the card: wallet, usage and last tap, the district's blacklist and roster */
    sqlite3_stmt *s = l->st[ST_CARD];
    sqlite3_bind_text(s, 1, card_no, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    struct card_state cs;
    memset(&cs, 0, sizeof cs);
    yn_card_facts facts = *tap->card;
    if (!by_card)
        facts.birth_ymd = 0; /* the roster's word is all there is */
    bool lost = false, on_roster = false;
    char bound[YN_IDENT_MAX] = "";
    if (rc == SQLITE_ROW) {
        yn_lg_state_from_row(s, &cs);
        lost = sqlite3_column_int(s, STATE_NCOLS + 1) != 0;
        on_roster = sqlite3_column_int(s, STATE_NCOLS + 2) != 0;
        yn_lg_col_text(s, STATE_NCOLS + 8, bound, sizeof bound);
        if (on_roster) { /* the roster's word supersedes */
            if (facts.birth_ymd == 0)
                facts.birth_ymd = sqlite3_column_int(s, STATE_NCOLS + 3);
            facts.flags = (uint32_t)sqlite3_column_int64(s, STATE_NCOLS + 4);
            facts.district = (uint32_t)sqlite3_column_int64(s, STATE_NCOLS + 5);
            facts.street = (uint32_t)sqlite3_column_int64(s, STATE_NCOLS + 6);
            facts.expiry_ymd = sqlite3_column_int(s, STATE_NCOLS + 7);
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        goto storage;

    /* 2. the card's last tap again is a replay: its original result, no charge,
     * even if the card was blacklisted or the interval has not passed since.
     * Any other tap id must be above every one journaled. */
    int st;
    if ((rc = tap_check(l, "debit", card_no, &cs, tap->tap_id, out, &st)) != SQLITE_OK)
        goto storage;
    out->stamp_seq = cs.stamp_seq; /* what the card's stamp should name (refusals, replays) */
    if (st != YN_OK)
        return st;

    if (lost) {
        yn_lg_tx_end(l);
        refuse(out, YN_REASON_LOST);
        yn_info("ledger: debit tap %" PRId64 " card %s refused: card is on the blacklist",
                tap->tap_id, card_no);
        return YN_EREFUSED;
    }

    /* 2b. a holder identified otherwise than by the card */
    yn_moment m;
    yn_policy_locate(p, tap->when.utc_s, &m);
    if (!by_card) {
        enum yn_reason why;
        if ((rc = identify_tx(l, tap, &rule, on_roster, bound, &m, &why)) != SQLITE_OK)
            goto storage;
        if (why != YN_REASON_NONE) {
            yn_lg_tx_end(l);
            refuse(out, why);
            yn_info("ledger: debit tap %" PRId64 " card %s (%s%s%s) refused: %s", tap->tap_id,
                    card_no, yn_ledger_by_name(tap->by), tap->ident ? " " : "",
                    tap->ident ? tap->ident : "", yn_reason_log(why));
            return YN_EREFUSED;
        }
    }

    /* 3. not twice within the minimum interval */
    int64_t since_ms;
    if (l->min_interval_ms > 0 && cs.meal_seq > 0 &&
        yn_lg_elapsed_ms(l, cs.meal_boot, cs.meal_mono_ms, cs.meal_utc_s, &tap->when, &since_ms) &&
        since_ms < l->min_interval_ms) {
        yn_lg_tx_end(l);
        refuse(out, YN_REASON_TOO_SOON);
        yn_info("ledger: debit tap %" PRId64 " card %s refused: last meal (seq %" PRId64
                ") %" PRId64 " ms ago",
                tap->tap_id, card_no, cs.meal_seq, since_ms);
        return YN_EREFUSED;
    }

    /* 4. the policy */
    yn_usage usage;
    yn_lg_usage_of(&cs, &m, &usage);
    if (tap->usage_floor) { /* e.g. the card's stamp of a meal at another canteen */
        const yn_usage *f = tap->usage_floor;
        if (f->meals_period > usage.meals_period)
            usage.meals_period = f->meals_period;
        if (f->meals_day > usage.meals_day)
            usage.meals_day = f->meals_day;
        if (f->meals_month > usage.meals_month)
            usage.meals_month = f->meals_month;
        if (f->subsidy_month_fen > usage.subsidy_month_fen)
            usage.subsidy_month_fen = f->subsidy_month_fen;
    }
    st = yn_policy_decide(p, &facts, tap->meal, tap->canteen, tap->when.utc_s, &usage,
                          cs.balance_fen > 0 ? cs.balance_fen : 0, &out->decision);
    if (st != YN_OK || !out->decision.allowed) {
        yn_lg_tx_end(l);
        if (st != YN_OK) {
            yn_warn("ledger: debit tap %" PRId64 " card %s: policy %s refused the input: %s",
                    tap->tap_id, card_no, yn_policy_id(p), yn_strerror(st));
            memset(out, 0, sizeof *out);
            return st;
        }
        return YN_EREFUSED;
    }

    /* 5. while offline, the day's subsidy of the card is capped */
    int64_t cap_fen = offline_cap_of(l, tap, &rule);
    if (cap_fen >= 0 && out->decision.subsidy_fen > 0) {
        if ((rc = offline_cap(l, &cs, &m, tap, cap_fen, &out->decision)) != SQLITE_OK)
            goto storage;
    }

    /* 6. the record, then the card's state, in the same transaction */
    const yn_decision *d = &out->decision;
    yn_ledger_record rec;
    yn_lg_record_base(l, &rec, YN_LEDGER_MEAL, card_no, &tap->when);
    rec.tap_id = tap->tap_id;
    rec.local_ymd = m.local_ymd;
    memcpy(rec.category, d->category, sizeof rec.category);
    yn_lg_copy_str(rec.period, sizeof rec.period, d->period[0] ? d->period : m.period);
    rec.price_fen = d->price_fen;
    rec.n_layers = d->n_layers;
    memcpy(rec.layers, d->layers, sizeof rec.layers);
    rec.subsidy_fen = d->subsidy_fen;
    rec.wallet_fen = d->wallet_fen;
    rec.cash_fen = d->cash_fen;
    if (tap->meal->weight_g > 0) {
        rec.weight_g = tap->meal->weight_g;
        rec.price_per_100g_fen = tap->meal->price_per_100g_fen;
    }
    rec.reason = d->reason;
    yn_lg_copy_str(rec.operator_id, sizeof rec.operator_id, tap->operator_id);
    rec.policy_version = yn_policy_version(p);
    rec.wallet_after_fen = cs.balance_fen - d->wallet_fen;
    rec.card_prev_seq = cs.last_seq;
    if (!by_card) {
        rec.by = tap->by;
        yn_lg_copy_str(rec.ident, sizeof rec.ident, tap->ident);
        yn_lg_copy_str(rec.supervisor_id, sizeof rec.supervisor_id, tap->supervisor_id);
    }
    if ((rc = yn_lg_append(l, &rec)) != SQLITE_OK)
        goto storage;

    yn_lg_state_apply(&cs, &rec, NULL); /* rec.local_ymd, rec.period: the moment's keys */
    if ((rc = yn_lg_state_put(l, card_no, &cs)) != SQLITE_OK)
        goto storage;
    /* 7. commit: the one durable write of the tap. The card's stamp is
     * written after this returned (LEDGER.md, "Card stamps"). */
    if ((rc = yn_lg_tx_commit_append(l, &rec)) != SQLITE_OK)
        goto storage;
    out->seq = rec.seq;
    out->kind = YN_LEDGER_MEAL;
    out->wallet_after_fen = rec.wallet_after_fen;
    out->stamp_seq = cs.stamp_seq;
    return YN_OK;

storage:
    snprintf(what, sizeof what, "debit tap %" PRId64 " card %s", tap->tap_id, card_no);
    st = yn_lg_fail(l, rc, what);
    memset(out, 0, sizeof *out);
    refuse(out, YN_REASON_STORAGE);
    return st;
}

/* ---- card stamp notice -------------------------------------------------------- */

int yn_ledger_stamp_missing(yn_ledger *l, int64_t meal_seq, const char *cause,
                            const yn_ledger_when *when, yn_ledger_result *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    if (meal_seq <= 0 || !when || !yn_lg_text_ok(cause, YN_LEDGER_REF_MAX, false))
        return YN_EINVAL;
    char what[96];
    snprintf(what, sizeof what, "stamp notice for meal seq %" PRId64, meal_seq);
    int rc = yn_lg_tx_begin(l, true);
    if (rc != SQLITE_OK)
        goto storage;
    yn_ledger_record meal, rec;
    bool found;
    if ((rc = yn_lg_record_by(l, ST_BY_SEQ, meal_seq, &meal, &found)) != SQLITE_OK)
        goto storage;
    if (!found) {
        yn_lg_tx_end(l);
        yn_warn("ledger %s: %s: no such record", l->path, what);
        return YN_ENOTFOUND;
    }
    if (meal.kind != YN_LEDGER_MEAL || meal.subsidy_fen <= 0 ||
        strcmp(meal.terminal, l->terminal) != 0 || meal.by != YN_LEDGER_BY_CARD) {
        yn_lg_tx_end(l);
        yn_warn("ledger %s: %s refused: not a subsidised meal of this terminal identified by its"
                " card (a meal without a card has no stamp)",
                l->path, what);
        return YN_EREFUSED;
    }
    if ((rc = yn_lg_record_by(l, ST_NOTICE_OF, meal_seq, &rec, &found)) != SQLITE_OK)
        goto storage;
    if (found) {
        yn_lg_tx_end(l);
        yn_lg_result_from_record(&rec, out);
        return YN_EDUPLICATE;
    }
    struct card_state cs;
    if ((rc = yn_lg_state_get(l, meal.card_no, &cs)) != SQLITE_OK)
        goto storage;
    yn_lg_record_base(l, &rec, YN_LEDGER_STAMP_MISSING, meal.card_no, when);
    memcpy(rec.category, meal.category, sizeof rec.category);
    memcpy(rec.period, meal.period, sizeof rec.period);
    rec.reverses_seq = meal.seq;
    yn_lg_copy_str(rec.ref, sizeof rec.ref, cause);
    rec.wallet_after_fen = cs.balance_fen;
    rec.card_prev_seq = cs.last_seq;
    if ((rc = yn_lg_append(l, &rec)) != SQLITE_OK)
        goto storage;
    cs.last_seq = rec.seq;
    if ((rc = yn_lg_state_put(l, meal.card_no, &cs)) != SQLITE_OK ||
        (rc = yn_lg_tx_commit_append(l, &rec)) != SQLITE_OK)
        goto storage;
    yn_lg_result_from_record(&rec, out);
    yn_warn("ledger: card %s: the card stamp of meal seq %" PRId64 " (%d %s) is missing (%s):"
            " notice seq %" PRId64 ". Until the card is seen here again, another canteen offline"
            " may subsidise this period once more; the district lists it",
            meal.card_no, meal.seq, (int)meal.local_ymd, meal.period, cause, rec.seq);
    return YN_OK;

storage:;
    int st = yn_lg_fail(l, rc, what);
    memset(out, 0, sizeof *out);
    return st;
}

/* ---- reversal ---------------------------------------------------------------- */

int yn_ledger_reverse(yn_ledger *l, const yn_policy *p, int64_t seq, const char *operator_id,
                      const yn_ledger_when *when, yn_ledger_result *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    if (seq <= 0 || !when || !yn_lg_text_ok(operator_id, YN_LEDGER_ID_MAX, false))
        return YN_EINVAL;
    char what[96];
    snprintf(what, sizeof what, "reversal of seq %" PRId64 " by %s", seq, operator_id);
    int32_t window_s = l->reverse_window_s > 0 ? l->reverse_window_s
                       : p                     ? yn_policy_reverse_window_s(p)
                                               : YN_LEDGER_DEFAULT_REVERSE_WINDOW_S;

    int rc = yn_lg_tx_begin(l, true);
    if (rc != SQLITE_OK)
        goto storage;
    yn_ledger_record meal, rec;
    bool found;
    if ((rc = yn_lg_record_by(l, ST_BY_SEQ, seq, &meal, &found)) != SQLITE_OK)
        goto storage;
    if (!found) {
        yn_lg_tx_end(l);
        yn_warn("ledger %s: %s: no such record", l->path, what);
        return YN_ENOTFOUND;
    }
    if (meal.kind != YN_LEDGER_MEAL) {
        yn_lg_tx_end(l);
        yn_warn("ledger %s: %s refused: record is a %s, only meals can be reversed", l->path, what,
                meal.kind == YN_LEDGER_REVERSAL ? "reversal" : "credit");
        return YN_EREFUSED;
    }
    if ((rc = yn_lg_record_by(l, ST_BY_REVERSES, seq, &rec, &found)) != SQLITE_OK)
        goto storage;
    if (found) {
        yn_lg_tx_end(l);
        yn_lg_result_from_record(&rec, out);
        yn_warn("ledger %s: %s refused: already reversed by seq %" PRId64, l->path, what, rec.seq);
        return YN_EDUPLICATE;
    }
    int64_t age_ms;
    if (!yn_lg_elapsed_ms(l, meal.boot_no, meal.mono_ms, meal.utc_s, when, &age_ms) ||
        age_ms > (int64_t)window_s * 1000) {
        yn_lg_tx_end(l);
        yn_warn("ledger %s: %s refused: outside the %d s window", l->path, what, (int)window_s);
        return YN_EREFUSED;
    }

    struct card_state cs;
    if ((rc = yn_lg_state_get(l, meal.card_no, &cs)) != SQLITE_OK)
        goto storage;
    yn_lg_record_base(l, &rec, YN_LEDGER_REVERSAL, meal.card_no, when);
    memcpy(rec.category, meal.category, sizeof rec.category);
    memcpy(rec.period, meal.period, sizeof rec.period);
    rec.price_fen = -meal.price_fen;
    rec.n_layers = meal.n_layers;
    for (int i = 0; i < meal.n_layers; i++) {
        rec.layers[i] = meal.layers[i];
        rec.layers[i].fen = -meal.layers[i].fen;
    }
    rec.subsidy_fen = -meal.subsidy_fen;
    rec.wallet_fen = -meal.wallet_fen;
    rec.cash_fen = -meal.cash_fen;
    rec.weight_g = meal.weight_g;
    rec.price_per_100g_fen = meal.price_per_100g_fen;
    rec.reason = meal.reason;
    yn_lg_copy_str(rec.operator_id, sizeof rec.operator_id, operator_id);
    rec.reverses_seq = meal.seq;
    rec.policy_version = meal.policy_version;
    rec.wallet_after_fen = cs.balance_fen + meal.wallet_fen;
    rec.card_prev_seq = cs.last_seq;
    if ((rc = yn_lg_append(l, &rec)) != SQLITE_OK)
        goto storage;

    yn_lg_state_apply(&cs, &rec, &meal);
    if ((rc = yn_lg_state_put(l, meal.card_no, &cs)) != SQLITE_OK)
        goto storage;
    if ((rc = yn_lg_tx_commit_append(l, &rec)) != SQLITE_OK)
        goto storage;
    yn_lg_result_from_record(&rec, out);
    yn_info("ledger: %s recorded as seq %" PRId64, what, rec.seq);
    return YN_OK;

storage:;
    int st = yn_lg_fail(l, rc, what);
    memset(out, 0, sizeof *out);
    return st;
}

/* ---- credits: allocations and top-ups ------------------------------------------ */

/* Append a wallet credit record (allocation or top-up) to the card whose
 * state is cs, and update the card. */
int yn_lg_credit(yn_ledger *l, struct card_state *cs, yn_ledger_record *rec, int64_t amount_fen)
{
    rec->wallet_fen = -amount_fen;
    rec->wallet_after_fen = cs->balance_fen + amount_fen;
    rec->card_prev_seq = cs->last_seq;
    int rc = yn_lg_append(l, rec);
    if (rc != SQLITE_OK)
        return rc;
    yn_lg_state_apply(cs, rec, NULL);
    return yn_lg_state_put(l, rec->card_no, cs);
}

bool yn_lg_alloc_ok(const yn_ledger_alloc *a)
{
    return yn_lg_text_ok(a->id, YN_LEDGER_REF_MAX, false) &&
           yn_lg_text_ok(a->card_no, CARD_NO_MAX, false) &&
           yn_lg_text_ok(a->source, YN_NAME_MAX, false) && a->amount_fen > 0;
}

/* Inside an open write transaction: credit allocation a (checked with
 * alloc_ok). *st = YN_EDUPLICATE when its id was applied before, with *rec
 * that original record (seq 0 if it cannot be found); else YN_OK with *rec
 * the record appended. Returns a SQLite code. */
int yn_lg_allocate_tx(yn_ledger *l, const yn_ledger_alloc *a, const yn_ledger_when *when,
                      yn_ledger_record *rec, int *st)
{
    *st = YN_OK;
    memset(rec, 0, sizeof *rec);
    sqlite3_stmt *s = l->st[ST_ALLOC_GET];
    sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int64_t seq = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    if (seq) {
        bool found;
        *st = YN_EDUPLICATE;
        rc = yn_lg_record_by(l, ST_BY_SEQ, seq, rec, &found);
        if (rc == SQLITE_OK && !found)
            memset(rec, 0, sizeof *rec);
        return rc;
    }
    yn_lg_record_base(l, rec, YN_LEDGER_ALLOCATION, a->card_no, when);
    yn_lg_copy_str(rec->ref, sizeof rec->ref, a->id);
    rec->n_layers = 1;
    yn_lg_copy_str(rec->layers[0].source, sizeof rec->layers[0].source, a->source);
    rec->layers[0].fen = a->amount_fen;
    rec->subsidy_fen = a->amount_fen;
    struct card_state cs;
    if ((rc = yn_lg_state_get(l, a->card_no, &cs)) != SQLITE_OK ||
        (rc = yn_lg_credit(l, &cs, rec, a->amount_fen)) != SQLITE_OK)
        return rc;
    s = l->st[ST_ALLOC_PUT];
    sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, rec->seq);
    return yn_lg_run(l, ST_ALLOC_PUT);
}

int yn_ledger_allocate(yn_ledger *l, const char *alloc_id, const char *card_no, const char *source,
                       int64_t amount_fen, const yn_ledger_when *when, yn_ledger_result *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    yn_ledger_alloc a = {.amount_fen = amount_fen};
    if (!yn_lg_text_ok(alloc_id, YN_LEDGER_REF_MAX, false) ||
        !yn_lg_text_ok(card_no, CARD_NO_MAX, false) || !yn_lg_text_ok(source, YN_NAME_MAX, false) ||
        !when)
        return YN_EINVAL;
    yn_lg_copy_str(a.id, sizeof a.id, alloc_id);
    yn_lg_copy_str(a.card_no, sizeof a.card_no, card_no);
    yn_lg_copy_str(a.source, sizeof a.source, source);
    if (!yn_lg_alloc_ok(&a))
        return YN_EINVAL;
    char what[160];
    snprintf(what, sizeof what, "allocation %s to card %s", alloc_id, card_no);

    yn_ledger_record rec;
    int st = YN_OK;
    int rc = yn_lg_tx_begin(l, true);
    if (rc == SQLITE_OK)
        rc = yn_lg_allocate_tx(l, &a, when, &rec, &st);
    if (rc == SQLITE_OK && st == YN_EDUPLICATE) {
        yn_lg_tx_end(l);
        if (rec.seq)
            yn_lg_result_from_record(&rec, out);
        return YN_EDUPLICATE;
    }
    if (rc == SQLITE_OK)
        rc = yn_lg_tx_commit_append(l, &rec);
    if (rc != SQLITE_OK) {
        st = yn_lg_fail(l, rc, what);
        memset(out, 0, sizeof *out);
        return st;
    }
    yn_lg_result_from_record(&rec, out);
    return YN_OK;
}

int yn_ledger_topup(yn_ledger *l, int64_t tap_id, const char *card_no, int64_t amount_fen,
                    const char *operator_id, const yn_ledger_when *when, yn_ledger_result *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    if (tap_id <= 0 || !yn_lg_text_ok(card_no, CARD_NO_MAX, false) || amount_fen <= 0 || !when ||
        !yn_lg_text_ok(operator_id, YN_LEDGER_ID_MAX, false))
        return YN_EINVAL;
    char what[96];
    snprintf(what, sizeof what, "top-up tap %" PRId64 " card %s", tap_id, card_no);

    int rc = yn_lg_tx_begin(l, true);
    if (rc != SQLITE_OK)
        goto storage;
    struct card_state cs;
    int st;
    if ((rc = yn_lg_state_get(l, card_no, &cs)) != SQLITE_OK ||
        (rc = tap_check(l, "top-up", card_no, &cs, tap_id, out, &st)) != SQLITE_OK)
        goto storage;
    if (st != YN_OK)
        return st;
    yn_ledger_record rec;
    yn_lg_record_base(l, &rec, YN_LEDGER_TOPUP, card_no, when);
    rec.tap_id = tap_id;
    rec.cash_fen = amount_fen;
    yn_lg_copy_str(rec.operator_id, sizeof rec.operator_id, operator_id);
    if ((rc = yn_lg_credit(l, &cs, &rec, amount_fen)) != SQLITE_OK)
        goto storage;
    if ((rc = yn_lg_tx_commit_append(l, &rec)) != SQLITE_OK)
        goto storage;
    yn_lg_result_from_record(&rec, out);
    return YN_OK;

storage:
    st = yn_lg_fail(l, rc, what);
    memset(out, 0, sizeof *out);
    return st;
}
