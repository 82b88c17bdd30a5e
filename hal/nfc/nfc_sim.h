/* nfc_sim.h — the simulated reader: a set of virtual cards that a test or the
 * keyboard presents and removes, and misbehaviours on cue. */
#ifndef YN_HAL_NFC_SIM_H
#define YN_HAL_NFC_SIM_H

#include <stdbool.h>

#include "nfc.h"

#define YN_SIM_AREA_MAX  256
#define YN_SIM_CARDS_MAX 64

typedef struct yn_sim_card {
    char label[32]; /* shown in the demo, e.g. "张桂英 (低保)" */
    yn_nfc_tag tag;
    uint8_t key[YN_NFC_KEY_LEN]; /* the card's own key: a clone has a wrong one */
    uint8_t record[YN_SIM_AREA_MAX];
    size_t record_len;
    uint8_t stamp[YN_SIM_AREA_MAX];
    size_t stamp_len;
    bool blank; /* factory-blank: no application / transport keys; key unused */
    /* Not a 颐年卡 (identity-only candidates, firmware/core/CARD.md §8): what a read
     * says it is (enum yn_nfc_card_kind), 0 = a 颐年卡 (or blank) */
    uint8_t foreign_kind;
    bool random_uid;                    /* a new UID (type A: 08 xx xx xx) or PUPI at every poll */
    uint8_t issuer_key[YN_NFC_KEY_LEN]; /* DESFire key 0 (loaded cards: key XOR FF, as
                                           the PN532 emulator's stand-in) */
} yn_sim_card;

enum yn_sim_fault {
    YN_SIM_OK,               /* behave */
    YN_SIM_SILENT,           /* the next operation times out */
    YN_SIM_PULL_ON_WRITE,    /* the card leaves during the next write; nothing written */
    YN_SIM_PULL_AFTER_WRITE, /* the next write takes effect, then the card leaves before
                                its reply (a lost reply: YN_ECARDGONE, card written) */
    YN_SIM_GARBAGE,          /* the next read answers garbage (protocol error) */
    YN_SIM_UNPLUGGED,        /* the reader is gone until the fault is cleared */
};

extern const yn_nfc_ops yn_nfc_sim_ops;

/* Add a card; returns its index or -1 when full. */
int yn_nfc_sim_add(yn_nfc *dev, const yn_sim_card *card);
int yn_nfc_sim_count(const yn_nfc *dev);
const yn_sim_card *yn_nfc_sim_card(const yn_nfc *dev, int index);
/* Put card `index` in the field (removing any other), or -1 to clear it. */
int yn_nfc_sim_present(yn_nfc *dev, int index) YN_MUST_CHECK;
/* The card in the field, or -1. */
int yn_nfc_sim_current(const yn_nfc *dev);
void yn_nfc_sim_fault(yn_nfc *dev, enum yn_sim_fault fault);

/* Load virtual cards from a text file: one card a line,
 *   label|type|uid-hex|key-hex|record-hex|stamp-hex
 * type desfire or classic1k; desfire-blank or classic1k-blank is a
 * factory-blank card (key, record and stamp fields empty) for
 * yinian-card format; cards that are not 颐年卡 (key, record and stamp
 * empty): desfire-foreign (other applications), classic1k-foreign (keys
 * not ours), desfire-random (a blank DESFire with a new 08 xx xx xx UID at
 * each poll), iso14443b (a type B card, uid = its PUPI) and iso14443b-random
 * (a new PUPI at each poll), as the PN532 emulator holds them. '#' starts a
 * comment. Errors name the file and line. */
int yn_nfc_sim_load(yn_nfc *dev, const char *path, char *err, size_t errlen) YN_MUST_CHECK;

#endif
