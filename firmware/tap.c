/* tap.c — the counter tap pipeline (see tap.h): card → key → record →
 * signature → stamp → ledger debit, the new stamp written before the commit. */
#include "tap.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

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

/* Reader errors: a clone fails authentication; everything else is "tap again". */
static int read_failed(yn_tap_outcome *out, int rc, const char *what)
{
    if (rc == YN_EAUTH)
        return fail(out, rc, YN_REASON_NOT_GENUINE,
                    "%s: %s (the card does not hold our diversified key: a clone or a foreign "
                    "card)",
                    what, yn_strerror(rc));
    return fail(out, rc, YN_REASON_READ_FAILED, "%s: %s", what, yn_strerror(rc));
}

/* Read the record with the card's own key and check the issuer's signature. */
static int read_card(const yn_tap_env *env, const yn_nfc_tag *tag, uint8_t key[YN_CARD_KEY_LEN],
                     yn_tap_outcome *out)
{
    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t len;
    int rc = yn_keystore_card_key(env->keys, tag->uid, tag->uid_len, key);
    if (rc != YN_OK)
        return fail(out, rc, YN_REASON_READ_FAILED, "%s", "cannot derive the card key");
    rc = yn_nfc_read(env->nfc, tag, YN_NFC_AREA_RECORD, key, buf, sizeof buf, &len);
    if (rc != YN_OK)
        return read_failed(out, rc, "reading the card record");
    const char *why = "";
    rc = yn_card_read(buf, len, tag->uid, tag->uid_len, env->ring, &out->card, &why);
    if (rc != YN_OK)
        return fail(out, rc, YN_REASON_NOT_GENUINE, "card record refused: %s", why);
    out->card_ok = true;
    return YN_OK;
}

int yn_tap_identify(const yn_tap_env *env, const yn_nfc_tag *tag, yn_tap_outcome *out)
{
    uint8_t key[YN_CARD_KEY_LEN];
    memset(out, 0, sizeof *out);
    int rc = read_card(env, tag, key, out);
    explicit_bzero(key, sizeof key);
    return rc;
}

/* Whether a stamp of this canteen is that of a meal in this ledger that a
 * 冲正 has undone since: the card still carries it (a reversal does not touch
 * the card), but the meal no longer counts. */
static bool stamp_reversed(const yn_tap_env *env, const yn_card_stamp *st, const char *card_no,
                           int64_t now_utc_s)
{
    yn_ledger_account acc;
    if (st->canteen_id != env->canteen_code ||
        yn_ledger_balance(env->ledger, card_no, now_utc_s, 3, &acc) != YN_OK)
        return false;
    for (int i = 0; i < acc.n_last; i++)
        if ((uint16_t)(acc.last[i].seq & 0xFFFF) == st->seq16 &&
            acc.last[i].local_ymd == st->date_ymd)
            return acc.last[i].reversed;
    return false;
}

/* What the card's stamp says was eaten already today: a floor under the
 * ledger's own counts, so a meal at another (offline) canteen still counts. */
static void usage_from_stamp(const yn_tap_env *env, const yn_card_stamp *st, const yn_moment *m,
                             int64_t next_seq, const char *card_no, int64_t now_utc_s,
                             yn_usage *floor)
{
    memset(floor, 0, sizeof *floor);
    if (yn_card_stamp_is_blank(st) || st->date_ymd != m->local_ymd)
        return;
    /* our own stamp of a tap whose commit failed: the retry gets the same seq */
    if (st->canteen_id == env->canteen_code && st->seq16 == (uint16_t)(next_seq & 0xFFFF))
        return;
    if (stamp_reversed(env, st, card_no, now_utc_s))
        return;
    floor->meals_day = 1;
    if (yn_card_stamp_blocks(st, m->local_ymd, m->period))
        floor->meals_period = 1;
}

struct stamp_job {
    const yn_tap_env *env;
    const yn_nfc_tag *tag;
    const uint8_t *key;
    int32_t local_ymd;
    int status;   /* what the stamp write returned */
    bool written; /* the card carries the new stamp */
};

/* Ledger hook, inside the debit's transaction: write this meal's stamp. A
 * failure rolls the debit back. */
static int write_stamp(void *arg, const yn_ledger_result *pending)
{
    struct stamp_job *job = arg;
    if (pending->decision.subsidy_fen <= 0)
        return YN_OK; /* only subsidised meals are stamped */
    yn_card_stamp st;
    uint8_t bytes[YN_CARD_STAMP_LEN];
    const char *why = "";
    int rc = yn_card_stamp_make(job->local_ymd, pending->decision.period, job->env->canteen_code,
                                (uint64_t)pending->seq, &st);
    if (rc == YN_OK)
        rc = yn_card_stamp_encode(&st, bytes, &why);
    if (rc == YN_OK)
        rc =
            yn_nfc_write(job->env->nfc, job->tag, YN_NFC_AREA_STAMP, job->key, bytes, sizeof bytes);
    job->status = rc;
    job->written = rc == YN_OK;
    return rc;
}

int yn_tap_debit(const yn_tap_env *env, const yn_nfc_tag *tag, const yn_meal *meal, int64_t tap_id,
                 const char *operator_id, const yn_ledger_when *when, yn_tap_outcome *out)
{
    uint8_t key[YN_CARD_KEY_LEN], sbuf[2 * YN_CARD_STAMP_LEN];
    size_t slen;
    memset(out, 0, sizeof *out);
    int rc = read_card(env, tag, key, out);
    if (rc != YN_OK)
        goto done;

    /* the stamp: a blank or unreadable one counts nothing (logged) */
    yn_card_stamp st = {0};
    rc = yn_nfc_read(env->nfc, tag, YN_NFC_AREA_STAMP, key, sbuf, sizeof sbuf, &slen);
    if (rc != YN_OK) {
        read_failed(out, rc, "reading the card stamp");
        goto done;
    }
    const char *why = "";
    if (yn_card_stamp_decode(sbuf, slen, &st, &why) != YN_OK) {
        yn_warn("tap: card %s: stamp unreadable (%s); counted as no meal", out->card.card_no, why);
        memset(&st, 0, sizeof st);
    }
    yn_moment m;
    yn_policy_locate(env->policy, when->utc_s, &m);
    int64_t head = 0;
    uint8_t head_hash[YN_LEDGER_HASH_LEN];
    if ((rc = yn_ledger_head(env->ledger, &head, head_hash)) != YN_OK) {
        fail(out, rc, YN_REASON_STORAGE, "ledger head: %s", yn_strerror(rc));
        goto done;
    }
    yn_usage floor;
    usage_from_stamp(env, &st, &m, head + 1, out->card.card_no, when->utc_s, &floor);

    yn_card_facts facts;
    yn_card_to_facts(&out->card, &facts);
    struct stamp_job job = {.env = env, .tag = tag, .key = key, .local_ymd = m.local_ymd};
    yn_ledger_tap t = {.tap_id = tap_id,
                       .card = &facts,
                       .meal = meal,
                       .canteen = &env->canteen,
                       .operator_id = operator_id,
                       .when = *when,
                       .usage_floor = &floor,
                       .before_commit = write_stamp,
                       .hook_arg = &job};
    rc = yn_ledger_debit(env->ledger, env->policy, &t, &out->result);
    out->status = rc;
    out->stamp_written = job.written;
    out->reason = out->result.decision.reason;
    if (job.status != YN_OK) {
        /* the stamp write failed inside the transaction: nothing was charged */
        read_failed(out, job.status, "writing the card stamp (debit rolled back)");
        goto done;
    }
    switch (rc) {
    case YN_OK:
    case YN_EDUPLICATE:
        out->charged = true;
        snprintf(out->detail, sizeof out->detail,
                 "card %s seq %" PRId64 ": price %" PRId64 " subsidy %" PRId64 " wallet %" PRId64
                 " cash %" PRId64 " fen%s",
                 facts.card_no, out->result.seq, out->result.decision.price_fen,
                 out->result.decision.subsidy_fen, out->result.decision.wallet_fen,
                 out->result.decision.cash_fen, rc == YN_EDUPLICATE ? " (same tap again)" : "");
        break;
    case YN_EREFUSED:
        snprintf(out->detail, sizeof out->detail, "card %s refused: %s", facts.card_no,
                 yn_reason_staff(out->reason));
        break;
    default:
        out->reason = YN_REASON_STORAGE;
        snprintf(out->detail, sizeof out->detail, "card %s: ledger: %s", facts.card_no,
                 yn_strerror(rc));
        break;
    }
    yn_info("tap: %s", out->detail);
done:
    explicit_bzero(key, sizeof key);
    return out->status;
}
