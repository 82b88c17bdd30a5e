/* tap.c — the counter tap pipeline (see tap.h): card → key → record and
 * stamp (one read) → signature → ledger debit (commit) → stamp write. The
 * ledger commits first; the stamp follows, and a stamp that could not be
 * written is a notice on the journal, repaired at the card's next tap here.
 * A card that is not a 颐年卡 may still be an identity-only card: its
 * identifier bound in the roster (firmware/core/CARD.md §8). */
#include "tap.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "ident.h"
#include "log.h"
#include "timeutil.h"

uint16_t yn_tap_canteen_code(const char *canteen_id)
{
    return yn_card_period_code(canteen_id); /* the same folded FNV-1a, never 0 */
}

static int fail(yn_tap_outcome *out, int status, enum yn_reason reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(yn_tap_outcome *out, int status, enum yn_reason reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->detail, sizeof out->detail, fmt, ap);
    va_end(ap);
    out->status = status;
    out->reason = reason;
    yn_info("tap: %s", out->detail);
    return status;
}

/* Reader errors. A card that is not a 颐年卡 is named for what it is (blank,
 * another application, another kind of card) and never called a clone; a
 * card with our application that refuses our key fails authentication (a
 * clone); everything else is "tap again". */
static int read_failed(yn_tap_outcome *out, int rc, uint8_t kind, const char *what)
{
    switch (rc == YN_OK ? YN_CARD_KIND_OURS : kind) {
    case YN_CARD_KIND_BLANK:
        return fail(out, rc, YN_REASON_BLANK_CARD, "%s: a blank card, never issued (%s)", what,
                    yn_strerror(rc));
    case YN_CARD_KIND_OTHER_APP:
        return fail(out, rc, YN_REASON_OTHER_CARD,
                    "%s: a DESFire with other applications only, no 颐年卡 application (%s)", what,
                    yn_strerror(rc));
    case YN_CARD_KIND_FOREIGN:
        return fail(out, rc, YN_REASON_FOREIGN_CARD,
                    "%s: not a 颐年卡 (another card type, or keys that are not ours) (%s)", what,
                    yn_strerror(rc));
    default:
        break;
    }
    if (rc == YN_EAUTH)
        return fail(out, rc, YN_REASON_NOT_GENUINE,
                    "%s: %s (the card does not hold our diversified key: a clone or a foreign "
                    "card)",
                    what, yn_strerror(rc));
    return fail(out, rc, YN_REASON_READ_FAILED, "%s: %s", what, yn_strerror(rc));
}

static int64_t mono_ms(const yn_tap_env *env)
{
    return env->clock ? yn_clock_mono_ms(env->clock) : yn_time_mono_ms();
}

/* Read the card (record and stamp in one operation) with its own key and
 * check the issuer's signature. A DESFire whose record this terminal
 * verified before (env->cache) is only authenticated and its stamp read:
 * the AES authentication with the UID-diversified key proves the chip, the
 * cached signature check the record (CARD.md §5). */
static int read_card(const yn_tap_env *env, const yn_nfc_tag *tag, uint8_t key[YN_CARD_KEY_LEN],
                     yn_nfc_card_data *data, yn_tap_outcome *out)
{
    if (tag->type != YN_TAG_DESFIRE && tag->type != YN_TAG_CLASSIC_1K)
        return read_failed(out, YN_ENOTSUP, YN_CARD_KIND_FOREIGN,
                           tag->type == YN_TAG_ISO14443B ? "a type B card (its PUPI is all we read)"
                                                         : "reading the card");
    int rc = yn_card_key(env->keys, tag->uid, tag->uid_len, key);
    if (rc != YN_OK)
        return fail(out, rc, YN_REASON_READ_FAILED, "%s", "cannot derive the card key");
    int64_t now = mono_ms(env);
    const yn_card_record *known = env->cache && tag->type == YN_TAG_DESFIRE
                                      ? yn_card_cache_find(env->cache, tag->uid, tag->uid_len, now)
                                      : NULL;
    rc = yn_nfc_read_card(env->nfc, tag, key, known ? YN_NFC_SKIP_RECORD : 0, data);
    if (rc != YN_OK) {
        if (known && rc == YN_EAUTH)
            yn_card_cache_drop(env->cache, tag->uid, tag->uid_len);
        return read_failed(out, rc, data->kind, "reading the card");
    }
    if (known) {
        out->card = *known;
        out->card_ok = true;
        return YN_OK;
    }
    const char *why = "";
    rc = yn_card_read(data->record, data->record_len, tag->uid, tag->uid_len, env->ring, &out->card,
                      &why);
    if (rc != YN_OK)
        return fail(out, rc, YN_REASON_NOT_GENUINE, "card record refused: %s", why);
    out->card_ok = true;
    if (env->cache && tag->type == YN_TAG_DESFIRE)
        yn_card_cache_put(env->cache, tag->uid, tag->uid_len, &out->card, now);
    return YN_OK;
}

/* --- identity-only cards (CARD.md §8) -------------------------------------- */

/* The card shows another identifier when activated again: a random UID or
 * PUPI without the 08 prefix. One more listing, only on the way to refusing
 * an unknown identifier. */
static bool identifier_changes(const yn_tap_env *env, const yn_nfc_tag *tag)
{
    yn_nfc_tag again;
    if (yn_nfc_release(env->nfc) != YN_OK || yn_nfc_poll(env->nfc, 0, &again) != YN_OK)
        return false; /* gone: nothing to tell */
    return again.type != tag->type || again.uid_len != tag->uid_len ||
           memcmp(again.uid, tag->uid, tag->uid_len) != 0;
}

/* A card the terminal cannot read as a 颐年卡: its holder is the card the
 * roster binds its identifier to. YN_OK with out->card.card_no and
 * out->ident (the ledger checks the binding again when it debits), or a
 * refusal: an identifier that identifies nobody (random, zero), one on the
 * blacklist, one bound to no card. */
static int by_identifier(const yn_tap_env *env, const yn_nfc_tag *tag, yn_tap_outcome *out)
{
    char uid[2 * YN_UID_MAX + 1];
    yn_nfc_uid_hex(tag, uid, sizeof uid);
    bool type_b = tag->type == YN_TAG_ISO14443B;
    if (yn_ident_make(type_b, tag->uid, tag->uid_len, out->ident) != YN_OK)
        return fail(out, YN_EREFUSED, YN_REASON_RANDOM_UID,
                    "card %s %s cannot identify anyone (a random or blank number)",
                    type_b ? "PUPI" : "UID", uid);
    bool lost = false;
    int rc = yn_ledger_ident_card(env->ledger, out->ident, out->card.card_no, &lost);
    if (rc == YN_OK) {
        out->by = YN_LEDGER_BY_IDENT;
        out->card_ok = true;
        return YN_OK;
    }
    if (rc != YN_ENOTFOUND)
        return fail(out, rc, YN_REASON_STORAGE, "identity card %s: ledger: %s", out->ident,
                    yn_strerror(rc));
    if (lost)
        return fail(out, YN_EREFUSED, YN_REASON_LOST,
                    "identity card %s is on the blacklist (reported lost)", out->ident);
    if (identifier_changes(env, tag))
        return fail(out, YN_EREFUSED, YN_REASON_RANDOM_UID,
                    "identity card %s shows another identifier when activated again: a random"
                    " UID",
                    out->ident);
    return fail(out, YN_EREFUSED, YN_REASON_NOT_ENROLLED,
                "card %s is not a 颐年卡 and the roster binds it to no card", out->ident);
}

/* Who holds the card in the field: a 颐年卡 read and verified (out->by card,
 * with data its stamp), or, when the policy accepts identity-only cards, a
 * card that is not one — blank, another application, another kind or keys
 * not ours, never a card that claims to be ours and fails (a clone) — by the
 * identifier the roster binds. A random UID is refused before any read. */
static int identify(const yn_tap_env *env, const yn_nfc_tag *tag, uint8_t key[YN_CARD_KEY_LEN],
                    yn_nfc_card_data *data, yn_tap_outcome *out)
{
    yn_policy_ident_rule rule = {.accepted = false}; /* no policy (diagnostics): cards only */
    if (env->policy)
        yn_policy_identity_only(env->policy, &rule);
    bool type_b = tag->type == YN_TAG_ISO14443B;
    if (rule.accepted && yn_ident_random(type_b, tag->uid, tag->uid_len)) {
        char uid[2 * YN_UID_MAX + 1];
        yn_nfc_uid_hex(tag, uid, sizeof uid);
        return fail(out, YN_EREFUSED, YN_REASON_RANDOM_UID,
                    "card UID %s is a random one (08 ...): it identifies nobody", uid);
    }
    int rc = read_card(env, tag, key, data, out);
    out->by = YN_LEDGER_BY_CARD;
    bool not_ours = out->reason == YN_REASON_BLANK_CARD || out->reason == YN_REASON_FOREIGN_CARD ||
                    out->reason == YN_REASON_OTHER_CARD;
    if (rc == YN_OK || !rule.accepted || !not_ours)
        return rc;
    return by_identifier(env, tag, out);
}

int yn_tap_identify(const yn_tap_env *env, const yn_nfc_tag *tag, yn_tap_outcome *out)
{
    uint8_t key[YN_CARD_KEY_LEN];
    yn_nfc_card_data data;
    memset(out, 0, sizeof *out);
    int rc = identify(env, tag, key, &data, out);
    explicit_bzero(key, sizeof key);
    return rc;
}

/* --- what the card's stamp means here ---------------------------------- */

static bool own_stamp(const yn_tap_env *env, const yn_card_stamp *st)
{
    return st->version == YN_CARD_STAMP_V2 && st->terminal_code == env->terminal_code;
}

/* The stamp names exactly this meal of this terminal. */
static bool stamp_names(const yn_tap_env *env, const yn_card_stamp *st, int64_t seq)
{
    return own_stamp(env, st) && st->seq == (uint32_t)seq;
}

/* The record is the meal the stamp describes: this card, its date, its period. */
static bool record_is_stamped_meal(const yn_ledger_record *r, const yn_card_stamp *st,
                                   const char *card_no)
{
    return r->kind == YN_LEDGER_MEAL && r->subsidy_fen > 0 && strcmp(r->card_no, card_no) == 0 &&
           r->local_ymd == st->date_ymd && yn_card_period_code(r->period) == st->period_code;
}

/* A v1 stamp (older firmware) of this canteen naming one of the card's last
 * meals in this ledger: the ledger counts that meal (or its reversal). */
static bool v1_stamp_is_ours(const yn_tap_env *env, const yn_card_stamp *st, const char *card_no,
                             int64_t now_utc_s)
{
    yn_ledger_account acc;
    if (st->version != YN_CARD_STAMP_V1 || st->canteen_id != env->canteen_code ||
        yn_ledger_balance(env->ledger, card_no, now_utc_s, 3, &acc) != YN_OK)
        return false;
    for (int i = 0; i < acc.n_last; i++)
        if ((acc.last[i].seq & 0xFFFF) == st->seq && acc.last[i].local_ymd == st->date_ymd)
            return true;
    return false;
}

/* What the card's stamp says was eaten already today, as a floor under the
 * ledger's own counts: a meal at another (offline) terminal still counts.
 * This terminal's own stamps are not a floor: its ledger is authoritative
 * for them (a meal it holds is counted there, reversed or not; a meal it does
 * not hold counts nothing). CARD.md §4. */
static void usage_from_stamp(const yn_tap_env *env, const yn_card_stamp *st, const yn_moment *m,
                             const char *card_no, int64_t now_utc_s, yn_usage *floor)
{
    memset(floor, 0, sizeof *floor);
    if (yn_card_stamp_is_blank(st) || st->date_ymd != m->local_ymd)
        return;
    if (own_stamp(env, st)) {
        yn_ledger_record r;
        int rc = yn_ledger_record_get(env->ledger, st->seq, &r);
        if (rc == YN_ENOTFOUND) {
            yn_warn("tap: card %s: its stamp names meal seq %" PRIu32 " of this terminal, which "
                    "this ledger does not hold: it counts nothing",
                    card_no, st->seq);
            return;
        }
        if (rc == YN_OK && record_is_stamped_meal(&r, st, card_no))
            return; /* counted by the ledger itself */
        yn_warn("tap: card %s: its stamp names this terminal's code and seq %" PRIu32 ", which "
                "is not that meal here (another terminal with the same code?): counted as "
                "another canteen's meal",
                card_no, st->seq);
    } else if (v1_stamp_is_ours(env, st, card_no, now_utc_s)) {
        return;
    }
    floor->meals_day = 1;
    if (yn_card_stamp_blocks(st, m->local_ymd, m->period))
        floor->meals_period = 1;
}

/* Whether the card's stamp is older than this terminal's meal: blank, another
 * meal of this terminal, or another terminal's meal of an earlier day. (Of the
 * same day, another terminal's stamp cannot be ordered against ours: left.) */
static bool stamp_older_than(const yn_tap_env *env, const yn_card_stamp *st,
                             const yn_ledger_record *meal)
{
    if (yn_card_stamp_is_blank(st) || own_stamp(env, st))
        return true;
    return st->date_ymd < meal->local_ymd;
}

static const char *stamp_cause(int rc)
{
    switch (rc) {
    case YN_ECARDGONE:
        return "card_gone";
    case YN_ETIMEDOUT:
        return "no_reply";
    case YN_EAUTH:
    case YN_EPERM:
        return "card_refused";
    default:
        return "write_failed";
    }
}

/* After the ledger answered: make the card's stamp name the card's newest
 * subsidised meal here (out->result.stamp_seq) — the meal just committed, a
 * replay's meal, or an earlier one whose stamp was lost — unless it already
 * does or another terminal wrote a newer one. A write that fails records the
 * window on the journal. fresh: the meal just committed (date/period known). */
static void settle_stamp(const yn_tap_env *env, const yn_nfc_tag *tag, const uint8_t *key,
                         const yn_card_stamp *st, const yn_moment *m, bool fresh,
                         const yn_ledger_when *when, yn_tap_outcome *out)
{
    int64_t want = out->result.stamp_seq;
    out->stamp_meal_seq = want;
    if (want <= 0 || stamp_names(env, st, want))
        return;
    yn_ledger_record meal;
    memset(&meal, 0, sizeof meal);
    if (fresh && want == out->result.seq) {
        meal.seq = want;
        meal.local_ymd = m->local_ymd;
        snprintf(meal.period, sizeof meal.period, "%s",
                 out->result.decision.period[0] ? out->result.decision.period : m->period);
    } else if (yn_ledger_record_get(env->ledger, want, &meal) != YN_OK) {
        return; /* logged by the ledger; the next tap tries again */
    }
    if (!stamp_older_than(env, st, &meal))
        return;
    yn_card_stamp next;
    uint8_t bytes[YN_CARD_STAMP_LEN];
    const char *why = "";
    int rc =
        yn_card_stamp_make(meal.local_ymd, meal.period, env->terminal_code, (uint64_t)want, &next);
    if (rc == YN_OK)
        rc = yn_card_stamp_encode(&next, bytes, &why);
    if (rc == YN_OK)
        rc = yn_nfc_write(env->nfc, tag, YN_NFC_AREA_STAMP, key, bytes, sizeof bytes);
    if (rc == YN_OK) {
        out->stamp = YN_TAP_STAMP_WRITTEN;
        if (!fresh || want != out->result.seq)
            yn_info("tap: card %s: stamp rewritten to name meal seq %" PRId64, out->card.card_no,
                    want);
        return;
    }
    yn_ledger_result notice;
    int nrc = yn_ledger_stamp_missing(env->ledger, want, stamp_cause(rc), when, &notice);
    out->stamp = nrc == YN_OK || nrc == YN_EDUPLICATE ? YN_TAP_STAMP_MISSING : YN_TAP_STAMP_UNNOTED;
    yn_warn("tap: card %s: the stamp of meal seq %" PRId64 " was not written (%s); %s",
            out->card.card_no, want, yn_strerror(rc),
            out->stamp == YN_TAP_STAMP_MISSING ? "the window is noted on the journal"
                                               : "the notice could not be recorded yet");
}

/* The ledger's debit of t, and what it says for staff and the log (a holder
 * not identified by the card: how, at the end of the log line). */
static int debit(const yn_tap_env *env, const yn_ledger_tap *t, yn_tap_outcome *out)
{
    const char *card_no = t->card->card_no;
    int rc = yn_ledger_debit(env->ledger, env->policy, t, &out->result);
    out->status = rc;
    out->reason = out->result.decision.reason;
    switch (rc) {
    case YN_OK:
    case YN_EDUPLICATE:
        out->charged = true;
        snprintf(out->detail, sizeof out->detail,
                 "card %s seq %" PRId64 ": price %" PRId64 " subsidy %" PRId64 " wallet %" PRId64
                 " cash %" PRId64 " fen%s",
                 card_no, out->result.seq, out->result.decision.price_fen,
                 out->result.decision.subsidy_fen, out->result.decision.wallet_fen,
                 out->result.decision.cash_fen, rc == YN_EDUPLICATE ? " (same tap again)" : "");
        break;
    case YN_EREFUSED:
        snprintf(out->detail, sizeof out->detail, "card %s refused: %s", card_no,
                 yn_reason_log(out->reason));
        break;
    default:
        out->reason = YN_REASON_STORAGE;
        snprintf(out->detail, sizeof out->detail, "card %s: ledger: %s", card_no, yn_strerror(rc));
        break;
    }
    if (t->by == YN_LEDGER_BY_IDENT)
        yn_info("tap: %s (identity-only card %s)", out->detail, t->ident);
    else if (t->by == YN_LEDGER_BY_MANUAL)
        yn_info("tap: %s (忘带卡: operator %s, supervisor %s)", out->detail, t->operator_id,
                t->supervisor_id);
    else
        yn_info("tap: %s", out->detail);
    return rc;
}

int yn_tap_debit(const yn_tap_env *env, const yn_nfc_tag *tag, const yn_meal *meal, int64_t tap_id,
                 const yn_ledger_record *unshown, const char *operator_id,
                 const yn_ledger_when *when, yn_tap_outcome *out)
{
    uint8_t key[YN_CARD_KEY_LEN];
    yn_nfc_card_data data;
    memset(out, 0, sizeof *out);
    int rc = identify(env, tag, key, &data, out);
    if (rc != YN_OK)
        goto done;
    bool by_card = out->by == YN_LEDGER_BY_CARD;

    /* the stamp (read with the record): a blank or unreadable one counts nothing (logged);
     * an identity-only card has none */
    yn_card_stamp st = {0};
    const char *why = "";
    if (by_card && yn_card_stamp_decode(data.stamp, data.stamp_len, &st, &why) != YN_OK) {
        yn_warn("tap: card %s: stamp unreadable (%s); counted as no meal", out->card.card_no, why);
        memset(&st, 0, sizeof st);
    }
    if (unshown && strcmp(unshown->card_no, out->card.card_no) == 0) {
        /* the tap the terminal never finished showing: the same tap again */
        tap_id = unshown->tap_id;
        out->unshown_utc_s = unshown->utc_s;
    }
    yn_moment m;
    yn_policy_locate(env->policy, when->utc_s, &m);
    yn_usage floor;
    usage_from_stamp(env, &st, &m, out->card.card_no, when->utc_s, &floor);

    yn_card_facts facts;
    yn_card_to_facts(&out->card, &facts); /* identity-only: the card number; the roster the rest */
    yn_ledger_tap t = {.tap_id = tap_id,
                       .card = &facts,
                       .meal = meal,
                       .canteen = &env->canteen,
                       .operator_id = operator_id,
                       .when = *when,
                       .usage_floor = by_card ? &floor : NULL,
                       .by = out->by,
                       .ident = by_card ? NULL : out->ident};
    rc = debit(env, &t, out);
    if (by_card && (rc == YN_OK || rc == YN_EDUPLICATE || rc == YN_EREFUSED))
        settle_stamp(env, tag, key, &st, &m, rc == YN_OK, when, out);
done:
    explicit_bzero(key, sizeof key);
    return out->status;
}

int yn_tap_manual(const yn_tap_env *env, const char *card_no, const yn_meal *meal, int64_t tap_id,
                  const char *operator_id, const char *supervisor_id, const yn_ledger_when *when,
                  yn_tap_outcome *out)
{
    memset(out, 0, sizeof *out);
    yn_card_facts facts = {0};
    snprintf(facts.card_no, sizeof facts.card_no, "%s", card_no);
    snprintf(out->card.card_no, sizeof out->card.card_no, "%s", card_no);
    snprintf(out->supervisor_id, sizeof out->supervisor_id, "%s", supervisor_id);
    out->by = YN_LEDGER_BY_MANUAL;
    out->card_ok = true;
    yn_ledger_tap t = {.tap_id = tap_id,
                       .card = &facts,
                       .meal = meal,
                       .canteen = &env->canteen,
                       .operator_id = operator_id,
                       .when = *when,
                       .by = YN_LEDGER_BY_MANUAL,
                       .supervisor_id = supervisor_id};
    return debit(env, &t, out);
}

int yn_tap_recover(const yn_tap_env *env, int64_t settled_seq, int64_t max_back,
                   const yn_ledger_when *when, int *noted)
{
    *noted = 0;
    int64_t head;
    uint8_t hash[YN_LEDGER_HASH_LEN];
    int rc = yn_ledger_head(env->ledger, &head, hash);
    if (rc != YN_OK)
        return rc;
    int64_t from = settled_seq + 1;
    if (max_back > 0 && from < head - max_back + 1) {
        yn_warn("tap: %" PRId64 " records since the last settled one (%" PRId64 "): only the "
                "last %" PRId64 " are checked for missing card stamps",
                head - settled_seq, settled_seq, max_back);
        from = head - max_back + 1;
    }
    for (int64_t seq = from; seq <= head; seq++) {
        yn_ledger_record r;
        if ((rc = yn_ledger_record_get(env->ledger, seq, &r)) != YN_OK)
            return rc;
        if (r.kind != YN_LEDGER_MEAL || r.subsidy_fen <= 0 || r.by != YN_LEDGER_BY_CARD)
            continue; /* a meal without a card has no stamp to miss */
        yn_ledger_result notice;
        rc = yn_ledger_stamp_missing(env->ledger, seq, "restart", when, &notice);
        if (rc == YN_OK)
            (*noted)++;
        else if (rc != YN_EDUPLICATE)
            return rc;
    }
    return YN_OK;
}
