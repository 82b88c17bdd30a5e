/* card_cache.c — verified records by UID (see card_cache.h). */
#include "card_cache.h"

#include <string.h>

/* The file: "YNC1", the entry count (4 bytes, big-endian), then per entry
 * uid_len (1), the UID zero-padded to YN_CARD_UID_MAX, verified_utc_s (8,
 * big-endian), the record's length (1) and its bytes as on the card. */
static const uint8_t cache_magic[4] = {'Y', 'N', 'C', '1'};

static yn_card_cache_entry *slot_of(yn_card_cache *c, const uint8_t *uid, size_t uid_len)
{
    for (size_t i = 0; i < YN_CARD_CACHE_SLOTS; i++) {
        yn_card_cache_entry *e = &c->slots[i];
        if (e->used && e->uid_len == uid_len && memcmp(e->uid, uid, uid_len) == 0)
            return e;
    }
    return NULL;
}

const yn_card_record *yn_card_cache_find(yn_card_cache *c, const uint8_t *uid, size_t uid_len,
                                         int64_t now_ms)
{
    yn_card_cache_entry *e = slot_of(c, uid, uid_len);
    if (e && now_ms - e->verified_ms >= 0 && now_ms - e->verified_ms < YN_CARD_CACHE_TTL_MS) {
        c->hits++;
        return &e->rec;
    }
    if (e)
        e->used = false; /* expired */
    c->misses++;
    return NULL;
}

void yn_card_cache_put(yn_card_cache *c, const uint8_t *uid, size_t uid_len,
                       const yn_card_record *rec, int64_t now_ms)
{
    if (uid_len == 0 || uid_len > YN_CARD_UID_MAX)
        return;
    yn_card_cache_entry *e = slot_of(c, uid, uid_len), *oldest = &c->slots[0];
    for (size_t i = 0; !e && i < YN_CARD_CACHE_SLOTS; i++) {
        if (!c->slots[i].used) {
            e = &c->slots[i];
            break;
        }
        if (c->slots[i].verified_ms < oldest->verified_ms)
            oldest = &c->slots[i];
    }
    if (!e)
        e = oldest; /* full: the least recently verified goes */
    e->used = true;
    memcpy(e->uid, uid, uid_len);
    e->uid_len = uid_len;
    e->rec = *rec;
    e->verified_ms = now_ms;
    c->dirty = true;
}

void yn_card_cache_drop(yn_card_cache *c, const uint8_t *uid, size_t uid_len)
{
    yn_card_cache_entry *e = slot_of(c, uid, uid_len);
    if (e) {
        e->used = false;
        c->dirty = true;
    }
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

int yn_card_cache_encode(yn_card_cache *c, int64_t now_ms, int64_t now_utc_s, uint8_t *buf,
                         size_t cap, size_t *len)
{
    size_t at = 8;
    uint32_t n = 0;
    if (cap < at)
        return YN_ELIMIT;
    for (size_t i = 0; i < YN_CARD_CACHE_SLOTS; i++) {
        const yn_card_cache_entry *e = &c->slots[i];
        int64_t age_ms = now_ms - e->verified_ms;
        if (!e->used || age_ms < 0 || age_ms >= YN_CARD_CACHE_TTL_MS)
            continue;
        uint8_t rec[YN_CARD_RECORD_MAX];
        size_t rec_len;
        if (yn_card_encode(&e->rec, rec, sizeof rec, &rec_len, NULL) != YN_OK)
            continue; /* cannot happen: it was decoded by the same rules */
        size_t need = 1 + YN_CARD_UID_MAX + 8 + 1 + rec_len;
        if (cap - at < need)
            return YN_ELIMIT;
        uint8_t *p = buf + at;
        p[0] = (uint8_t)e->uid_len;
        memset(p + 1, 0, YN_CARD_UID_MAX);
        memcpy(p + 1, e->uid, e->uid_len);
        put_be(p + 1 + YN_CARD_UID_MAX, (uint64_t)(now_utc_s - age_ms / 1000), 8);
        p[1 + YN_CARD_UID_MAX + 8] = (uint8_t)rec_len;
        memcpy(p + 1 + YN_CARD_UID_MAX + 9, rec, rec_len);
        at += need;
        n++;
    }
    memcpy(buf, cache_magic, sizeof cache_magic);
    put_be(buf + 4, n, 4);
    *len = at;
    c->dirty = false;
    return YN_OK;
}

int yn_card_cache_decode(yn_card_cache *c, const uint8_t *buf, size_t len,
                         const yn_card_keyring *ring, int64_t now_ms, int64_t now_utc_s, int *kept,
                         int *dropped)
{
    *kept = *dropped = 0;
    if (len < 8 || memcmp(buf, cache_magic, sizeof cache_magic) != 0)
        return YN_ECORRUPT;
    uint64_t n = get_be(buf + 4, 4);
    size_t at = 8;
    for (uint64_t i = 0; i < n; i++) {
        if (len - at < 1 + YN_CARD_UID_MAX + 9)
            return YN_ECORRUPT;
        const uint8_t *p = buf + at;
        size_t uid_len = p[0], rec_len = p[1 + YN_CARD_UID_MAX + 8];
        int64_t verified_utc_s = (int64_t)get_be(p + 1 + YN_CARD_UID_MAX, 8);
        if (len - at - (1 + YN_CARD_UID_MAX + 9) < rec_len)
            return YN_ECORRUPT;
        at += 1 + YN_CARD_UID_MAX + 9 + rec_len;
        int64_t age_s = now_utc_s - verified_utc_s;
        yn_card_record rec;
        const char *why;
        if (uid_len < 1 || uid_len > YN_CARD_UID_MAX || age_s < 0 ||
            age_s >= YN_CARD_CACHE_TTL_MS / 1000 ||
            yn_card_read(p + 1 + YN_CARD_UID_MAX + 9, rec_len, p + 1, uid_len, ring, &rec, &why) !=
                YN_OK) {
            (*dropped)++;
            continue;
        }
        yn_card_cache_put(c, p + 1, uid_len, &rec, now_ms - age_s * 1000);
        (*kept)++;
    }
    if (at != len)
        return YN_ECORRUPT;
    c->dirty = false;
    return YN_OK;
}
