/* cardfix.c — see cardfix.h. */
#include "cardfix.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void yn_cardfix_init(yn_cardfix *f)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < YN_CARD_MASTER_LEN; i++)
        f->master[i] = (uint8_t)(0x10 + i);
    for (int i = 0; i < YN_CARD_PRIVKEY_LEN; i++)
        f->issuer_priv[i] = (uint8_t)(0xA0 ^ i);
    uint8_t pub[YN_CARD_PUBKEY_LEN];
    if (yn_card_public_key(f->issuer_priv, pub) != YN_OK ||
        yn_card_keyring_add(&f->ring, 1, pub) != YN_OK)
        abort();
}

void yn_cardfix_card(const yn_cardfix *f, yn_sim_card *c, uint32_t uid_tail, const char *card_no,
                     int32_t birth_ymd, uint32_t flags, uint32_t street)
{
    memset(c, 0, sizeof *c);
    snprintf(c->label, sizeof c->label, "%s", card_no);
    uint8_t uid[7] = {0x04,
                      0xA1,
                      0,
                      (uint8_t)(uid_tail >> 24),
                      (uint8_t)(uid_tail >> 16),
                      (uint8_t)(uid_tail >> 8),
                      (uint8_t)uid_tail};
    memcpy(c->tag.uid, uid, sizeof uid);
    c->tag.uid_len = sizeof uid;
    c->tag.type = YN_TAG_DESFIRE;
    yn_card_record rec = {.format_version = YN_CARD_FORMAT_V1,
                          .key_version = 1,
                          .birth_ymd = birth_ymd,
                          .flags = flags,
                          .district = street / 1000,
                          .street = street,
                          .issue_ymd = 20250101,
                          .expiry_ymd = 20301231};
    snprintf(rec.card_no, sizeof rec.card_no, "%s", card_no);
    const char *why = "";
    if (yn_card_encode_signed(&rec, uid, sizeof uid, f->issuer_priv, c->record, sizeof c->record,
                              &c->record_len, &why) != YN_OK ||
        yn_card_key_for_uid(f->master, uid, sizeof uid, c->key) != YN_OK) {
        fprintf(stderr, "cardfix: %s\n", why);
        abort();
    }
}
