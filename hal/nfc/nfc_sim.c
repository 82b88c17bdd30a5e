/* nfc_sim.c — the simulated reader: virtual cards in memory, misbehaving on cue.
 * A card authenticates only with its own key, so a clone (same UID and record,
 * wrong key) fails exactly as it would on a real DESFire. A blank card has no
 * key until the issuing desk formats it (format/issue ops). */
#include "nfc_sim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hex.h"
#include "keystore.h"

struct sim {
    yn_sim_card cards[YN_SIM_CARDS_MAX];
    int n_cards;
    int present; /* index in the field, or -1 */
    enum yn_sim_fault fault;
    uint32_t activations; /* polls that found a card: the random UIDs' source */
};

static struct sim *S(const yn_nfc *dev)
{
    return dev->priv;
}

static int sim_open(yn_nfc *dev, const yn_nfc_conf *cfg)
{
    struct sim *s = calloc(1, sizeof *s);
    if (!s)
        return YN_ENOMEM;
    s->present = -1;
    dev->priv = s;
    if (cfg && cfg->sim_cards[0]) {
        char err[256];
        int rc = yn_nfc_sim_load(dev, cfg->sim_cards, err, sizeof err);
        if (rc != YN_OK) {
            fprintf(stderr, "%s\n", err);
            free(s);
            dev->priv = NULL;
            return rc;
        }
    }
    return YN_OK;
}

static void sim_close(yn_nfc *dev)
{
    free(dev->priv);
}

/* Consume a one-shot fault; the unplugged fault stays until cleared. */
static int take_fault(struct sim *s, enum yn_sim_fault which)
{
    if (s->fault == YN_SIM_UNPLUGGED)
        return YN_ENODEV;
    if (s->fault == YN_SIM_SILENT) {
        s->fault = YN_SIM_OK;
        return YN_ETIMEDOUT;
    }
    if (which != YN_SIM_OK && s->fault == which) {
        s->fault = YN_SIM_OK;
        return which == YN_SIM_GARBAGE ? YN_EPROTO : YN_ECARDGONE;
    }
    return YN_OK;
}

static int sim_poll(yn_nfc *dev, int timeout_ms, yn_nfc_tag *tag)
{
    struct sim *s = S(dev);
    int rc = take_fault(s, YN_SIM_OK);
    if (rc != YN_OK)
        return rc;
    if (s->present < 0) {
        /* nothing can arrive while we wait (cards come from the caller's
         * keys): wait the time out, as a reader would */
        if (timeout_ms > 0) {
            struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        return YN_ENOCARD;
    }
    yn_sim_card *c = &s->cards[s->present];
    if (c->random_uid) { /* each activation shows another identifier */
        uint32_t n = ++s->activations * 2654435761u;
        bool b = c->tag.type == YN_TAG_ISO14443B;
        c->tag.uid[0] = b ? (uint8_t)(0x40 | (n >> 26)) : 0x08;
        c->tag.uid[1] = (uint8_t)(n >> 16);
        c->tag.uid[2] = (uint8_t)(n >> 8);
        c->tag.uid[3] = (uint8_t)n;
        c->tag.uid_len = 4;
    }
    *tag = c->tag;
    return YN_OK;
}

/* The card addressed by tag, if it is still in the field. */
static yn_sim_card *card_in_field(struct sim *s, const yn_nfc_tag *tag)
{
    if (s->present < 0)
        return NULL;
    yn_sim_card *c = &s->cards[s->present];
    if (c->tag.uid_len != tag->uid_len || memcmp(c->tag.uid, tag->uid, tag->uid_len) != 0)
        return NULL;
    return c;
}

/* The card in the field that tag names, opened with key: what a card says
 * when it has left, is blank (a DESFire without our application, a Classic
 * refusing our key) or refuses the key. */
static int open_card(struct sim *s, const yn_nfc_tag *tag, const uint8_t key[YN_NFC_KEY_LEN],
                     yn_sim_card **out)
{
    yn_sim_card *c = *out = card_in_field(s, tag);
    if (!c)
        return YN_ECARDGONE;
    if (c->blank)
        return c->tag.type == YN_TAG_DESFIRE ? YN_ENOTFOUND : YN_EAUTH;
    if (memcmp(c->key, key, YN_NFC_KEY_LEN) != 0)
        return YN_EAUTH;
    return YN_OK;
}

static int sim_read(yn_nfc *dev, const yn_nfc_tag *tag, enum yn_nfc_area area,
                    const uint8_t key[YN_NFC_KEY_LEN], uint8_t *buf, size_t cap, size_t *len)
{
    struct sim *s = S(dev);
    int rc = take_fault(s, YN_SIM_GARBAGE);
    if (rc != YN_OK)
        return rc;
    yn_sim_card *c;
    rc = open_card(s, tag, key, &c);
    if (rc != YN_OK)
        return rc;
    const uint8_t *src = area == YN_NFC_AREA_RECORD ? c->record : c->stamp;
    size_t n = area == YN_NFC_AREA_RECORD ? c->record_len : c->stamp_len;
    if (n > cap)
        return YN_ELIMIT;
    memcpy(buf, src, n);
    *len = n;
    return YN_OK;
}

static int sim_write(yn_nfc *dev, const yn_nfc_tag *tag, enum yn_nfc_area area,
                     const uint8_t key[YN_NFC_KEY_LEN], const uint8_t *buf, size_t len)
{
    struct sim *s = S(dev);
    int rc = take_fault(s, YN_SIM_PULL_ON_WRITE);
    if (rc == YN_ECARDGONE)
        s->present = -1; /* the card really left */
    if (rc != YN_OK)
        return rc;
    yn_sim_card *c;
    rc = open_card(s, tag, key, &c);
    if (rc != YN_OK)
        return rc;
    if (area == YN_NFC_AREA_RECORD && c->tag.type == YN_TAG_DESFIRE)
        return YN_EPERM; /* the record file is written with key 0 only */
    if (len > YN_SIM_AREA_MAX)
        return YN_ELIMIT;
    if (area == YN_NFC_AREA_RECORD) {
        memcpy(c->record, buf, len);
        c->record_len = len;
    } else {
        memcpy(c->stamp, buf, len);
        c->stamp_len = len;
    }
    if (s->fault == YN_SIM_PULL_AFTER_WRITE) { /* written; the reply is lost */
        s->fault = YN_SIM_OK;
        s->present = -1;
        return YN_ECARDGONE;
    }
    return YN_OK;
}

/* A blank card gets its keys and an empty layout; a formatted one only with
 * YN_NFC_FORCE (the sim does not model the PICC master key). */
static int sim_format(yn_nfc *dev, const yn_nfc_tag *tag, const yn_nfc_issue_keys *keys,
                      size_t record_size, unsigned flags)
{
    struct sim *s = S(dev);
    int rc = take_fault(s, YN_SIM_PULL_ON_WRITE);
    if (rc == YN_ECARDGONE)
        s->present = -1;
    if (rc != YN_OK)
        return rc;
    yn_sim_card *c = card_in_field(s, tag);
    if (!c)
        return YN_ECARDGONE;
    if (record_size == 0 || record_size > YN_SIM_AREA_MAX)
        return YN_ELIMIT;
    if (!c->blank && !(flags & YN_NFC_FORCE))
        return YN_EDUPLICATE;
    c->blank = false;
    memcpy(c->key, keys->card_key, YN_NFC_KEY_LEN);
    memcpy(c->issuer_key, keys->issuer_key, YN_NFC_KEY_LEN);
    c->record_len = 0;
    memset(c->stamp, 0, sizeof c->stamp);
    c->stamp_len = 16;
    return YN_OK;
}

static int sim_issue(yn_nfc *dev, const yn_nfc_tag *tag, const yn_nfc_issue_keys *keys,
                     const uint8_t *record, size_t len)
{
    struct sim *s = S(dev);
    int rc = take_fault(s, YN_SIM_PULL_ON_WRITE);
    if (rc == YN_ECARDGONE)
        s->present = -1;
    if (rc != YN_OK)
        return rc;
    yn_sim_card *c = card_in_field(s, tag);
    if (!c)
        return YN_ECARDGONE;
    if (c->blank)
        return c->tag.type == YN_TAG_DESFIRE ? YN_ENOTFOUND : YN_EAUTH;
    const uint8_t *want = c->tag.type == YN_TAG_DESFIRE ? c->issuer_key : c->key;
    const uint8_t *have = c->tag.type == YN_TAG_DESFIRE ? keys->issuer_key : keys->card_key;
    if (memcmp(want, have, YN_NFC_KEY_LEN) != 0)
        return YN_EAUTH;
    if (len == 0 || len > YN_SIM_AREA_MAX)
        return YN_ELIMIT;
    memcpy(c->record, record, len);
    c->record_len = len;
    memset(c->stamp, 0, sizeof c->stamp);
    c->stamp_len = 16;
    return YN_OK;
}

static int sim_describe(yn_nfc *dev, char *buf, size_t len)
{
    snprintf(buf, len, "simulated reader, %d virtual cards", S(dev)->n_cards);
    return S(dev)->fault == YN_SIM_UNPLUGGED ? YN_ENODEV : YN_OK;
}

/* Both areas; a blank card says so (kind) instead of "not found". */
static int sim_read_card(yn_nfc *dev, const yn_nfc_tag *tag, const uint8_t key[YN_NFC_KEY_LEN],
                         unsigned flags, yn_nfc_card_data *out)
{
    struct sim *s = S(dev);
    yn_sim_card *c = card_in_field(s, tag);
    if (c && c->foreign_kind && s->fault == YN_SIM_OK) {
        out->kind = c->foreign_kind;
        return c->foreign_kind == YN_CARD_KIND_FOREIGN && c->tag.type == YN_TAG_CLASSIC_1K
                   ? YN_EAUTH
                   : YN_ENOTFOUND;
    }
    if (c && c->blank && s->fault == YN_SIM_OK) {
        out->kind = YN_CARD_KIND_BLANK;
        return YN_ENOTFOUND;
    }
    int rc = YN_OK;
    if (!(flags & YN_NFC_SKIP_RECORD))
        rc = sim_read(dev, tag, YN_NFC_AREA_RECORD, key, out->record, sizeof out->record,
                      &out->record_len);
    if (rc == YN_OK)
        rc = sim_read(dev, tag, YN_NFC_AREA_STAMP, key, out->stamp, sizeof out->stamp,
                      &out->stamp_len);
    return rc;
}

const yn_nfc_ops yn_nfc_sim_ops = {
    .name = "sim",
    .open = sim_open,
    .close = sim_close,
    .poll = sim_poll,
    .read_card = sim_read_card,
    .read = sim_read,
    .write = sim_write,
    .describe = sim_describe,
    .format = sim_format,
    .issue = sim_issue,
};

int yn_nfc_sim_add(yn_nfc *dev, const yn_sim_card *card)
{
    struct sim *s = S(dev);
    if (s->n_cards >= YN_SIM_CARDS_MAX)
        return -1;
    s->cards[s->n_cards] = *card;
    return s->n_cards++;
}

int yn_nfc_sim_count(const yn_nfc *dev)
{
    return S(dev)->n_cards;
}

const yn_sim_card *yn_nfc_sim_card(const yn_nfc *dev, int index)
{
    const struct sim *s = S(dev);
    return index >= 0 && index < s->n_cards ? &s->cards[index] : NULL;
}

int yn_nfc_sim_present(yn_nfc *dev, int index)
{
    struct sim *s = S(dev);
    if (index < -1 || index >= s->n_cards)
        return YN_ENOTFOUND;
    s->present = index;
    return YN_OK;
}

int yn_nfc_sim_current(const yn_nfc *dev)
{
    return S(dev)->present;
}

void yn_nfc_sim_fault(yn_nfc *dev, enum yn_sim_fault fault)
{
    S(dev)->fault = fault;
}

static const char *next_field(char **p)
{
    char *start = *p;
    if (!start)
        return NULL;
    char *bar = strchr(start, '|');
    if (bar) {
        *bar = '\0';
        *p = bar + 1;
    } else {
        *p = NULL;
    }
    return start;
}

/* The tag type and kind of a card file's type field; false if unknown. */
static bool sim_type(const char *type, yn_sim_card *c)
{
    static const struct {
        const char *name;
        enum yn_tag_type tag;
        bool blank, random;
        uint8_t kind;
    } types[] = {
        {"desfire", YN_TAG_DESFIRE, false, false, 0},
        {"classic1k", YN_TAG_CLASSIC_1K, false, false, 0},
        {"desfire-blank", YN_TAG_DESFIRE, true, false, 0},
        {"classic1k-blank", YN_TAG_CLASSIC_1K, true, false, 0},
        {"desfire-foreign", YN_TAG_DESFIRE, false, false, YN_CARD_KIND_OTHER_APP},
        {"classic1k-foreign", YN_TAG_CLASSIC_1K, false, false, YN_CARD_KIND_FOREIGN},
        {"desfire-random", YN_TAG_DESFIRE, true, true, 0},
        {"iso14443b", YN_TAG_ISO14443B, false, false, YN_CARD_KIND_FOREIGN},
        {"iso14443b-random", YN_TAG_ISO14443B, false, true, YN_CARD_KIND_FOREIGN},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(type, types[i].name) == 0) {
            c->tag.type = types[i].tag;
            c->blank = types[i].blank;
            c->random_uid = types[i].random;
            c->foreign_kind = types[i].kind;
            return true;
        }
    return false;
}

int yn_nfc_sim_load(yn_nfc *dev, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open virtual card file (%s)", path, strerror(errno));
        return YN_ENOENT;
    }
    char line[2048];
    int lineno = 0, rc = YN_OK;
    while (rc == YN_OK && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        char *p = line;
        const char *label = next_field(&p), *type = next_field(&p), *uid = next_field(&p),
                   *key = next_field(&p), *rec = next_field(&p), *stamp = next_field(&p);
        yn_sim_card c = {0};
        size_t n;
        const char *what = NULL;
        if (!label || !type || !uid || !key || !rec || !stamp || p)
            what = "expected 6 fields: label|type|uid-hex|key-hex|record-hex|stamp-hex";
        else if (strlen(label) >= sizeof c.label)
            what = "label longer than 31 bytes";
        else if (!sim_type(type, &c))
            what = "type must be desfire, classic1k, desfire-blank, classic1k-blank, "
                   "desfire-foreign, classic1k-foreign, desfire-random, iso14443b or "
                   "iso14443b-random";
        else if ((c.blank && (*key || *rec || *stamp)) || (c.foreign_kind && (*rec || *stamp)))
            what = "a blank card has empty key, record and stamp fields, a card that is not a "
                   "颐年卡 empty record and stamp fields";
        else if (yn_hex_decode(uid, c.tag.uid, sizeof c.tag.uid, &c.tag.uid_len) != YN_OK ||
                 (c.tag.uid_len != 4 && c.tag.uid_len != 7) ||
                 (c.tag.type == YN_TAG_ISO14443B && c.tag.uid_len != 4))
            what = "uid must be 4 or 7 bytes of hex (a type B PUPI: 4)";
        else if (!c.blank && !c.foreign_kind &&
                 (yn_hex_decode(key, c.key, sizeof c.key, &n) != YN_OK || n != YN_NFC_KEY_LEN))
            what = "key must be 16 bytes of hex";
        else if (yn_hex_decode(rec, c.record, sizeof c.record, &c.record_len) != YN_OK)
            what = "record must be hex, at most 256 bytes";
        else if (yn_hex_decode(stamp, c.stamp, sizeof c.stamp, &c.stamp_len) != YN_OK)
            what = "stamp must be hex, at most 256 bytes";
        if (what) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, what);
            rc = YN_EINVAL;
            break;
        }
        snprintf(c.label, sizeof c.label, "%s", label);
        for (int i = 0; i < YN_NFC_KEY_LEN; i++)
            c.issuer_key[i] = c.blank ? 0 : (uint8_t)(c.key[i] ^ 0xFF);
        if (yn_nfc_sim_add(dev, &c) < 0) {
            snprintf(err, errlen, "%s:%d: more than %d cards", path, lineno, YN_SIM_CARDS_MAX);
            rc = YN_ELIMIT;
        }
    }
    fclose(f);
    return rc;
}
