/* tap.h — one tap, from a card in the field to a durable decision.
 *
 * The pipeline every counter tap goes through: derive the card's key
 * (AN10922), read and authenticate the record, check the issuer's signature,
 * read the last-meal stamp, decide and record the debit in the ledger — its
 * one durable commit — and only then, for a subsidised meal, write the new
 * stamp to the card. The LEDGER IS THE TRUTH: a charge is reported once its
 * commit returned, whatever happens to the stamp; a stamp that could not be
 * written (card pulled, reply lost) leaves a stamp-missing notice on the
 * journal and is rewritten the next time the card is seen here
 * (firmware/core/CARD.md §4, firmware/ledger/LEDGER.md "Card stamps"). */
#ifndef YN_TAP_H
#define YN_TAP_H

#include <stdbool.h>
#include <stdint.h>

#include "card.h"
#include "card_cache.h"
#include "clock.h"
#include "keystore.h"
#include "ledger.h"
#include "nfc.h"
#include "policy.h"

typedef struct yn_tap_env {
    yn_nfc *nfc;
    yn_ledger *ledger;
    const yn_policy *policy;     /* NULL (diagnostics, identify only): no identity-only cards */
    yn_keystore *keys;           /* derives each card's key (the master stays inside) */
    const yn_card_keyring *ring; /* issuer public keys */
    yn_canteen canteen;          /* where this terminal stands */
    uint16_t canteen_code;       /* this canteen in v1 stamps (yn_tap_canteen_code) */
    uint32_t terminal_code;      /* this terminal in v2 stamps (yn_card_terminal_code) */
    yn_card_cache *cache;        /* verified records by UID, or NULL (CARD.md §5) */
    yn_clock *clock;             /* the terminal's clock (cache ages); NULL: the system's */
} yn_tap_env;

/* What became of the card's stamp in a tap. */
enum yn_tap_stamp {
    YN_TAP_STAMP_NONE,    /* nothing to write (a refusal, a full-price sale, already right) */
    YN_TAP_STAMP_WRITTEN, /* the card now names the card's last subsidised meal here */
    YN_TAP_STAMP_MISSING, /* the write failed or its outcome is unknown: notice on the journal */
    YN_TAP_STAMP_UNNOTED, /* the write failed and the notice could not be recorded either
                             (storage): the terminal must record it later */
};

typedef struct yn_tap_outcome {
    int status;               /* YN_OK charged now; YN_EDUPLICATE same tap seen before;
                                 YN_EREFUSED refused by rule; else a failure */
    enum yn_reason reason;    /* what the screen says (NONE for a subsidised meal) */
    bool charged;             /* a committed debit stands for this tap */
    bool card_ok;             /* the holder is known: record read, decoded and genuine, or
                                 (by YN_LEDGER_BY_IDENT) the identifier bound in the roster */
    yn_card_record card;      /* valid when card_ok; identity-only: the card number only */
    int by;                   /* enum yn_ledger_by: how the holder was identified */
    char ident[YN_IDENT_MAX]; /* a card that is not a 颐年卡: its identifier ("" none) */
    char supervisor_id[YN_LEDGER_ID_MAX]; /* manual entry: who authorised ("" none) */
    yn_ledger_result result;              /* the ledger's outcome (seq, decision, wallet after) */
    enum yn_tap_stamp stamp;              /* what became of the card's stamp */
    int64_t stamp_meal_seq;               /* the meal the stamp names or should name; 0 none */
    int64_t unshown_utc_s; /* a replay of a tap whose outcome was never shown: its time */
    char detail[192];      /* exact text for staff and the log */
} yn_tap_outcome;

/* Read and verify the card in the field (no debit): what the kiosk needs.
 * YN_OK with out->card filled, or a failure with out->reason
 * (YN_REASON_NOT_GENUINE, YN_REASON_READ_FAILED, or BLANK_CARD / OTHER_CARD /
 * FOREIGN_CARD for a card that is not a 颐年卡) and out->detail. When the
 * policy accepts identity-only cards (firmware/core/CARD.md §8), a card that is
 * not a 颐年卡 is known by the card number its identifier is bound to in the
 * roster (out->by YN_LEDGER_BY_IDENT, out->ident; only out->card.card_no is
 * set), else refused: NOT_ENROLLED, RANDOM_UID (a random UID: 08 xx xx xx,
 * or another identifier when activated again), LOST (the identifier is on
 * the blacklist). */
int yn_tap_identify(const yn_tap_env *env, const yn_nfc_tag *tag, yn_tap_outcome *out);

/* The whole counter tap. tap_id identifies one physical tap and must be
 * higher than every tap id journaled before (firmware/ledger/ledger.h); the same id
 * again returns the original result and charges nothing. unshown (NULL: none)
 * is the record of a tap whose outcome the terminal never showed (it stopped
 * first): when the card in the field is that record's card, this tap is that
 * tap again — its tap id is reused, the ledger answers with the original
 * outcome, nothing is charged. Returns out->status. */
int yn_tap_debit(const yn_tap_env *env, const yn_nfc_tag *tag, const yn_meal *meal, int64_t tap_id,
                 const yn_ledger_record *unshown, const char *operator_id,
                 const yn_ledger_when *when, yn_tap_outcome *out);

/* 忘带卡: a meal for the senior of roster card card_no, whom staff looked up
 * (yn_ledger_roster_find), served by operator_id and authorised by
 * supervisor_id (another person): the same policy and limits as a tap, the
 * record marked manual with both ids, within the policy's daily cap per
 * terminal (firmware/ledger/LEDGER.md, "How the holder was identified"). tap_id as
 * for yn_tap_debit. Returns out->status (YN_EREFUSED with NOT_ENROLLED when
 * the policy does not accept manual entry, MANUAL_CAP at the cap). */
int yn_tap_manual(const yn_tap_env *env, const char *card_no, const yn_meal *meal, int64_t tap_id,
                  const char *operator_id, const char *supervisor_id, const yn_ledger_when *when,
                  yn_tap_outcome *out);

/* After a restart: record a stamp-missing notice ("restart") for every
 * subsidised meal after settled_seq — the last seq whose stamp outcome and
 * screen the terminal had settled (LEDGER.md, "Card stamps") — that has none
 * yet: the program stopped before it knew whether the stamp was written. At
 * most max_back records are looked at. *noted = notices written. */
int yn_tap_recover(const yn_tap_env *env, int64_t settled_seq, int64_t max_back,
                   const yn_ledger_when *when, int *noted) YN_MUST_CHECK;

/* The 16-bit canteen code of v1 stamps (older firmware), from the canteen id. */
uint16_t yn_tap_canteen_code(const char *canteen_id);

#endif
