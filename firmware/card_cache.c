/* card_cache.c — verified records by UID (see card_cache.h). */
#include "card_cache.h"

#include <string.h>

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
}

void yn_card_cache_drop(yn_card_cache *c, const uint8_t *uid, size_t uid_len)
{
    yn_card_cache_entry *e = slot_of(c, uid, uid_len);
    if (e)
        e->used = false;
}
