/* cardfix.h — genuine (and deliberately wrong) 颐年卡 for tests: an issuer
 * key, a master key, and virtual cards signed with them. */
#ifndef YN_CARDFIX_H
#define YN_CARDFIX_H

#include "card.h"
#include "nfc_sim.h"

typedef struct yn_cardfix {
    uint8_t master[YN_CARD_MASTER_LEN];
    uint8_t issuer_priv[YN_CARD_PRIVKEY_LEN];
    yn_card_keyring ring; /* holds the issuer key as version 1 */
} yn_cardfix;

/* Fixed keys (deterministic tests). */
void yn_cardfix_init(yn_cardfix *f);
/* A signed DESFire card for this holder: card_no, birth, flags, district and
 * street as given, issued 2025-01-01, expiring 2030-12-31, UID from uid_tail. */
void yn_cardfix_card(const yn_cardfix *f, yn_sim_card *c, uint32_t uid_tail, const char *card_no,
                     int32_t birth_ymd, uint32_t flags, uint32_t street);
/* The same on a MIFARE Classic 1K with this 4-byte NUID. */
void yn_cardfix_classic(const yn_cardfix *f, yn_sim_card *c, uint32_t uid, const char *card_no,
                        int32_t birth_ymd, uint32_t flags, uint32_t street);

#endif
