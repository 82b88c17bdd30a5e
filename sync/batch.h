/* batch.h — the batch frame that carries journal records from a terminal to
 * the district (sync/PROTOCOL.md §3): a fixed header, a zlib-compressed body of
 * column-wise delta-encoded records, and a trailer that authenticates both:
 * an HMAC-SHA256 under the terminal's shared key, or — header flags bit 0 —
 * an ECDSA P-256 signature by its enrolled key pair (§10). Pure code: no
 * clock, no file, no network.
 *
 * Decoding trusts nothing: every length is bounded, the body is inflated into
 * a buffer of at most YN_BATCH_MAX_RAW bytes, and the records' hash chain is
 * recomputed from the header's prev_hash and must end at its head hash. */
#ifndef YN_BATCH_H
#define YN_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "status.h"

#define YN_BATCH_MAGIC       "YNB1"
#define YN_BATCH_VERSION     2   /* highest frame version read; 1 = 25 columns, 2 = 28 */
#define YN_BATCH_HEADER_LEN  128 /* fixed header, bytes */
#define YN_BATCH_MAC_LEN     32  /* HMAC-SHA256 trailer */
#define YN_BATCH_SIG_LEN     64  /* ECDSA P-256 trailer (r ‖ s), flags bit 0 */
#define YN_BATCH_TRAILER_MAX 64
#define YN_BATCH_FLAG_SIGNED 0x0001  /* header flags: the trailer is a signature */
#define YN_BATCH_MAX_RECORDS 20000   /* records per batch */
#define YN_BATCH_MAX_RAW     8388608 /* inflated body, bytes (the zip-bomb cap) */
#define YN_BATCH_MAX_BODY    4194304 /* compressed body, bytes */
#define YN_BATCH_MAX_FRAME   (YN_BATCH_HEADER_LEN + YN_BATCH_MAX_BODY + YN_BATCH_TRAILER_MAX)
#define YN_BATCH_KEY_MIN     16 /* shortest terminal key accepted, bytes */

/* How a frame is authenticated: its header's flags bit 0, independent of
 * the frame version (PROTOCOL.md §3.1, §10). */
enum yn_batch_auth {
    YN_BATCH_AUTH_HMAC,      /* 32-byte HMAC-SHA256 under the shared terminal key */
    YN_BATCH_AUTH_ECDSA_P256 /* 64-byte ECDSA P-256 signature, r ‖ s */
};

/* What a frame is checked against: the terminal's credential as the
 * district enrolled it. */
typedef struct yn_batch_cred {
    enum yn_batch_auth auth;
    const uint8_t *key; /* HMAC: the shared key; ECDSA: the public point 04 ‖ X ‖ Y */
    size_t key_len;     /* HMAC: YN_BATCH_KEY_MIN..64; ECDSA: 65 */
} yn_batch_cred;

/* The header fields as decoded (PROTOCOL.md §3.1). */
typedef struct yn_batch_header {
    int version;                           /* YN_BATCH_VERSION */
    enum yn_batch_auth auth;               /* flags bit 0: what the trailer is */
    char terminal[YN_LEDGER_ID_MAX];       /* 1..16 bytes */
    int64_t batch_id;                      /* >= 1 */
    int64_t first_seq, last_seq;           /* 1 <= first <= last */
    uint32_t count;                        /* = last - first + 1 */
    uint32_t raw_len;                      /* inflated body, bytes */
    uint32_t body_len;                     /* compressed body, bytes */
    uint32_t crc32;                        /* CRC-32 (zlib) of the compressed body */
    uint8_t prev_hash[YN_LEDGER_HASH_LEN]; /* chain hash of record first_seq - 1 */
    uint8_t head_hash[YN_LEDGER_HASH_LEN]; /* chain hash of record last_seq */
} yn_batch_header;

/* Encode n consecutive records (seq first..first+n-1, all of one terminal,
 * as yn_ledger_record_get gives them) as a frame for batch_id. *out is
 * malloc'd (free() it), *out_len its size. YN_EINVAL for records that are not
 * consecutive, of another terminal, or whose fields do not fit the format. */
int yn_batch_encode(int64_t batch_id, const yn_ledger_record *recs, size_t n, const uint8_t *key,
                    size_t key_len, uint8_t **out, size_t *out_len) YN_MUST_CHECK;

/* The same frame with its trailer zero, for a terminal whose keystore
 * computes it (hal/keystore.h: the key may never leave a token): auth sets
 * the header's flag and the trailer's length (yn_batch_trailer_len); the
 * caller puts the HMAC or the signature of frame[0 .. len - trailer) there. */
int yn_batch_encode_unsigned(int64_t batch_id, const yn_ledger_record *recs, size_t n,
                             enum yn_batch_auth auth, uint8_t **out, size_t *out_len) YN_MUST_CHECK;
/* Bytes of the trailer of a frame authenticated so. */
size_t yn_batch_trailer_len(enum yn_batch_auth auth);

/* Read only the header of a frame (to find the terminal, hence the key). Checks
 * magic, version, flags, field ranges and that len = header + body_len +
 * the trailer its flags say.
 * YN_EPROTO for a malformed header, YN_ELIMIT for sizes over the caps. */
int yn_batch_peek(const uint8_t *frame, size_t len, yn_batch_header *hdr) YN_MUST_CHECK;

/* The length of the frame at the start of f (len bytes available, more
 * frames may follow: the district's /v1/records reply concatenates them),
 * from its header. YN_EPROTO when buf does not start with a frame header or
 * the frame runs past len, YN_ELIMIT for a body over the cap. */
int yn_batch_frame_len(const uint8_t *f, size_t len, size_t *frame_len) YN_MUST_CHECK;

/* Why a frame was refused. */
typedef struct yn_batch_error {
    const char *why;   /* one static sentence ("" when none) */
    int64_t seq;       /* the record the rules refused (YN_EINVAL); 0 otherwise */
    const char *field; /* that record's field (rules.h names); NULL otherwise */
} yn_batch_error;

/* Verify and decode a whole frame: header (as yn_batch_peek), CRC (YN_ECORRUPT),
 * the trailer against cred (YN_EAUTH: it does not verify, or the frame is
 * authenticated the other way than cred), inflate within raw_len (YN_ELIMIT when it would inflate
 * beyond it, YN_EPROTO), columns (YN_EPROTO), hash chain (YN_ECORRUPT), then
 * every record by the shared rules (rules.h; YN_EINVAL with err->seq and
 * err->field). On YN_OK *recs is a malloc'd array of hdr->count records
 * (free() it) with prev_hash and hash filled in. err may be NULL. */
int yn_batch_verify_cred(const uint8_t *frame, size_t len, const yn_batch_cred *cred,
                         yn_batch_header *hdr, yn_ledger_record **recs,
                         yn_batch_error *err) YN_MUST_CHECK;
/* The same with a shared key (cred YN_BATCH_AUTH_HMAC). */
int yn_batch_verify(const uint8_t *frame, size_t len, const uint8_t *key, size_t key_len,
                    yn_batch_header *hdr, yn_ledger_record **recs,
                    yn_batch_error *err) YN_MUST_CHECK;
/* The same, with only the sentence: `why` (may be NULL) gets it. */
int yn_batch_decode(const uint8_t *frame, size_t len, const uint8_t *key, size_t key_len,
                    yn_batch_header *hdr, yn_ledger_record **recs, const char **why) YN_MUST_CHECK;

/* The same for a frame whose trailer the caller has verified itself (the
 * key in a token: yn_keystore_mac over header ‖ body, compared in constant
 * time). */
int yn_batch_decode_authenticated(const uint8_t *frame, size_t len, yn_batch_header *hdr,
                                  yn_ledger_record **out, const char **why) YN_MUST_CHECK;
/* The text an acknowledgement authenticates (PROTOCOL.md §4, §10):
 * "YNACK<v> T B F L H", v = 1 (MACed by a shared key) or 2 (signed by the
 * district), H the head hash in lowercase hex. Its length, or 0 when it does
 * not fit in cap. */
size_t yn_batch_ack_text(int v, const char *terminal, int64_t batch_id, int64_t first_seq,
                         int64_t last_seq, const char *head_hex, char *out, size_t cap);
/* HMAC-SHA256 of data under key (helper shared with the ack and update requests). */
void yn_batch_hmac(const uint8_t *key, size_t key_len, const void *data, size_t len,
                   uint8_t out[YN_BATCH_MAC_LEN]);

#endif
