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
    const yn_policy *policy;
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
    int status;              /* YN_OK charged now; YN_EDUPLICATE same tap seen before;
                                YN_EREFUSED refused by rule; else a failure */
    enum yn_reason reason;   /* what the screen says (NONE for a subsidised meal) */
    bool charged;            /* a committed debit stands for this tap */
    bool card_ok;            /* record read, decoded and genuine */
    yn_card_record card;     /* valid when card_ok */
    yn_ledger_result result; /* the ledger's outcome (seq, decision, wallet after) */
    enum yn_tap_stamp stamp; /* what became of the card's stamp */
    int64_t stamp_meal_seq;  /* the meal the stamp names or should name; 0 none */
    int64_t unshown_utc_s;   /* a replay of a tap whose outcome was never shown: its time */
    char detail[192];        /* exact text for staff and the log */
} yn_tap_outcome;

/* Read and verify the card in the field (no debit): what the kiosk needs.
 * YN_OK with out->card filled, or a failure with out->reason
 * (YN_REASON_NOT_GENUINE, YN_REASON_READ_FAILED, or BLANK_CARD / OTHER_CARD /
 * FOREIGN_CARD for a card that is not a 颐年卡) and out->detail. */
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
