/* card_cache.h — 颐年卡 records already verified, kept by UID, so that a
 * repeat tap of a DESFire card authenticates and reads only its stamp (three
 * card exchanges fewer). Why that is safe, and its limits: firmware/core/CARD.md
 * §5 "Verified-record cache". Pure: the caller passes the monotonic time,
 * and keeps the cache across restarts as bytes (encode/decode) in a file. */
#ifndef YN_CARD_CACHE_H
#define YN_CARD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "card.h"

#define YN_CARD_CACHE_SLOTS    2048                             /* a canteen's regular diners */
#define YN_CARD_CACHE_TTL_MS   (30LL * 86400 * 1000)            /* a record is trusted this long */
#define YN_CARD_CACHE_FILE_MAX (64 + YN_CARD_CACHE_SLOTS * 160) /* encoded, bytes */

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
    bool dirty; /* changed since the last encode */
} yn_card_cache;

/* The verified record of uid, or NULL (unknown or older than the TTL). */
const yn_card_record *yn_card_cache_find(yn_card_cache *c, const uint8_t *uid, size_t uid_len,
                                         int64_t now_ms);
/* Remember a record whose signature was just verified for uid. */
void yn_card_cache_put(yn_card_cache *c, const uint8_t *uid, size_t uid_len,
                       const yn_card_record *rec, int64_t now_ms);
/* Forget uid (its card failed authentication). */
void yn_card_cache_drop(yn_card_cache *c, const uint8_t *uid, size_t uid_len);

/* The cache as bytes for a file: every live entry's UID, the UTC second it
 * was verified (now_utc_s minus its age) and its record as encoded on the
 * card, signature included. *len = bytes written (cap >=
 * YN_CARD_CACHE_FILE_MAX always suffices). Clears dirty. */
int yn_card_cache_encode(yn_card_cache *c, int64_t now_ms, int64_t now_utc_s, uint8_t *buf,
                         size_t cap, size_t *len) YN_MUST_CHECK;
/* Fill an empty cache from such bytes. Every record is checked again — the
 * decoder's rules and the issuer signature for its UID against ring — so a
 * file altered on disk yields nothing it should not; entries older than the
 * TTL by the wall clock, or dated in the future, are left out. *kept and
 * *dropped count the entries. YN_ECORRUPT when the bytes are not a cache. */
int yn_card_cache_decode(yn_card_cache *c, const uint8_t *buf, size_t len,
                         const yn_card_keyring *ring, int64_t now_ms, int64_t now_utc_s, int *kept,
                         int *dropped) YN_MUST_CHECK;

#endif
