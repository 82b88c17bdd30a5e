/* tap.h — one tap, from a card in the field to a durable decision.
 *
 * The pipeline every counter tap goes through: derive the card's key
 * (AN10922), read and authenticate the record, check the issuer's signature,
 * read the last-meal stamp, decide and record the debit in the ledger, and —
 * for a subsidised meal — write the new stamp to the card BEFORE the ledger
 * commits. A card pulled away before its stamp is written leaves no charge;
 * a charge is only ever reported after its commit returned. */
#ifndef YN_TAP_H
#define YN_TAP_H

#include <stdbool.h>
#include <stdint.h>

#include "card.h"
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
    uint16_t canteen_code;       /* the canteen in card stamps (yn_tap_canteen_code) */
} yn_tap_env;

typedef struct yn_tap_outcome {
    int status;              /* YN_OK charged now; YN_EDUPLICATE same tap seen before;
                                YN_EREFUSED refused by rule; else a failure */
    enum yn_reason reason;   /* what the screen says (NONE for a subsidised meal) */
    bool charged;            /* a committed debit stands for this tap */
    bool card_ok;            /* record read, decoded and genuine */
    yn_card_record card;     /* valid when card_ok */
    yn_ledger_result result; /* the ledger's outcome (seq, decision, wallet after) */
    bool stamp_written;      /* the card now carries this meal's stamp */
    char detail[192];        /* exact text for staff and the log */
} yn_tap_outcome;

/* Read and verify the card in the field (no debit): what the kiosk needs.
 * YN_OK with out->card filled, or a failure with out->reason
 * (YN_REASON_NOT_GENUINE / YN_REASON_READ_FAILED) and out->detail. */
int yn_tap_identify(const yn_tap_env *env, const yn_nfc_tag *tag, yn_tap_outcome *out);

/* The whole counter tap. tap_id identifies one physical tap and must be
 * higher than every tap id journaled before (firmware/ledger.h); the same id
 * again returns the original result and charges nothing. Returns out->status. */
int yn_tap_debit(const yn_tap_env *env, const yn_nfc_tag *tag, const yn_meal *meal, int64_t tap_id,
                 const char *operator_id, const yn_ledger_when *when, yn_tap_outcome *out);

/* The 16-bit canteen code written into stamps, from the canteen id. */
uint16_t yn_tap_canteen_code(const char *canteen_id);

#endif
