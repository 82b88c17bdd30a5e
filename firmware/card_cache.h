/* card_cache.h — 颐年卡 records already verified, kept by UID, so that a
 * repeat tap of a DESFire card authenticates and reads only its stamp (four
 * card exchanges fewer). Why that is safe, and its limits: firmware/CARD.md
 * §5 "Verified-record cache". Pure: the caller passes the monotonic time. */
#ifndef YN_CARD_CACHE_H
#define YN_CARD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "card.h"

#define YN_CARD_CACHE_SLOTS  512
#define YN_CARD_CACHE_TTL_MS (12LL * 3600 * 1000) /* a record is trusted this long */

typedef struct yn_card_cache_entry {
    bool used;
    uint8_t uid[YN_CARD_UID_MAX];
    size_t uid_len;
    yn_card_record rec;  /* decoded, issuer signature verified for this UID */
    int64_t verified_ms; /* monotonic */
} yn_card_cache_entry;

typedef struct yn_card_cache {
    yn_card_cache_entry slots[YN_CARD_CACHE_SLOTS];
    unsigned long hits, misses;
} yn_card_cache;

/* The verified record of uid, or NULL (unknown or older than the TTL). */
const yn_card_record *yn_card_cache_find(yn_card_cache *c, const uint8_t *uid, size_t uid_len,
                                         int64_t now_ms);
/* Remember a record whose signature was just verified for uid. */
void yn_card_cache_put(yn_card_cache *c, const uint8_t *uid, size_t uid_len,
                       const yn_card_record *rec, int64_t now_ms);
/* Forget uid (its card failed authentication). */
void yn_card_cache_drop(yn_card_cache *c, const uint8_t *uid, size_t uid_len);

#endif
