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

static void make_card(const yn_cardfix *f, yn_sim_card *c, const uint8_t *uid, size_t uid_len,
                      enum yn_tag_type type, const char *card_no, int32_t birth_ymd, uint32_t flags,
                      uint32_t street)
{
    memset(c, 0, sizeof *c);
    snprintf(c->label, sizeof c->label, "%s", card_no);
    memcpy(c->tag.uid, uid, uid_len);
    c->tag.uid_len = uid_len;
    c->tag.type = type;
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
    if (yn_card_encode_signed(&rec, uid, uid_len, f->issuer_priv, c->record, sizeof c->record,
                              &c->record_len, &why) != YN_OK ||
        yn_card_key_for_uid(f->master, uid, uid_len, c->key) != YN_OK) {
        fprintf(stderr, "cardfix: %s\n", why);
        abort();
    }
}

void yn_cardfix_card(const yn_cardfix *f, yn_sim_card *c, uint32_t uid_tail, const char *card_no,
                     int32_t birth_ymd, uint32_t flags, uint32_t street)
{
    uint8_t uid[7] = {0x04,
                      0xA1,
                      0,
                      (uint8_t)(uid_tail >> 24),
                      (uint8_t)(uid_tail >> 16),
                      (uint8_t)(uid_tail >> 8),
                      (uint8_t)uid_tail};
    make_card(f, c, uid, sizeof uid, YN_TAG_DESFIRE, card_no, birth_ymd, flags, street);
}

void yn_cardfix_classic(const yn_cardfix *f, yn_sim_card *c, uint32_t uid, const char *card_no,
                        int32_t birth_ymd, uint32_t flags, uint32_t street)
{
    uint8_t nuid[4] = {(uint8_t)(uid >> 24), (uint8_t)(uid >> 16), (uint8_t)(uid >> 8),
                       (uint8_t)uid};
    make_card(f, c, nuid, sizeof nuid, YN_TAG_CLASSIC_1K, card_no, birth_ymd, flags, street);
}
