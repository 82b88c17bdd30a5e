/* card.h — the 颐年卡: its issuer-signed record, its "last meal" stamp, and the
 * per-card AES key (NXP AN10922 diversification). Pure code: no clock, no file,
 * no reader. The byte formats are specified in firmware/core/CARD.md.
 *
 * Results: YN_OK; YN_EINVAL for a bad argument or a record/stamp that must not
 * be written; YN_ECORRUPT for bytes from a card that do not decode (too short,
 * too long, unknown format version, impossible date, reserved bits set, bad
 * stamp checksum, …); YN_ENOTFOUND when the record names an issuer key version
 * the key ring does not hold; YN_EAUTH when the Ed25519 signature is wrong. */
#ifndef YN_CARD_H
#define YN_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "status.h"

/* --- the record -------------------------------------------------------- */

#define YN_CARD_FORMAT_V1     1   /* the only record format this firmware reads */
#define YN_CARD_RECORD_V1_LEN 116 /* exact encoded size of a version 1 record */
#define YN_CARD_RECORD_MAX    256 /* no record format may exceed one reader area */
#define YN_CARD_CARD_NO_MAX   19  /* characters of card number, without NUL */
#define YN_CARD_SIG_LEN       64  /* Ed25519 signature */
#define YN_CARD_PUBKEY_LEN    32  /* raw Ed25519 public key */
#define YN_CARD_PRIVKEY_LEN   32  /* raw Ed25519 private key (RFC 8032 seed) */
#define YN_CARD_UID_MAX       10  /* a card UID is 4, 7 or 10 bytes */
#define YN_CARD_KEY_LEN       16  /* AES-128 card key */
/* Every category flag bit this format defines (enum yn_card_flag); others are reserved. */
#define YN_CARD_FLAGS_KNOWN 0x7Fu

typedef struct yn_card_record {
    uint8_t format_version;                /* YN_CARD_FORMAT_V1 */
    uint8_t key_version;                   /* 1..255: issuer key + master key generation */
    char card_no[YN_CARD_CARD_NO_MAX + 1]; /* 1..19 graphic ASCII chars (0x21..0x7E), NUL */
    int32_t birth_ymd;                     /* YYYYMMDD, a real day, not after issue_ymd */
    uint32_t flags;                        /* enum yn_card_flag bits, only YN_CARD_FLAGS_KNOWN */
    uint32_t district;                     /* GB/T 2260 six digits, valid province prefix */
    uint32_t street;                       /* district * 1000 + NNN, NNN 001..999 */
    int32_t issue_ymd;                     /* YYYYMMDD, day the card was written */
    int32_t expiry_ymd;                    /* YYYYMMDD, last valid day, after issue_ymd */
    uint8_t signature[YN_CARD_SIG_LEN];    /* issuer's Ed25519 signature, see CARD.md */
} yn_card_record;

/* Exact encoded size of a record of this format version, or 0 if unknown.
 * Lets a Classic backend trim the zero padding of its fixed blocks. */
size_t yn_card_record_size(uint8_t format_version);

/* Encode rec (signature as it stands) into buf. YN_EINVAL if rec breaks a
 * rule of CARD.md (the reason in *why, if why is non-NULL), YN_ELIMIT if cap
 * is too small. *len = bytes written. */
int yn_card_encode(const yn_card_record *rec, uint8_t *buf, size_t cap, size_t *len,
                   const char **why) YN_MUST_CHECK;

/* Sign rec for the card with this UID (fills rec->signature) using the raw
 * Ed25519 private key of issuer key version rec->key_version. */
int yn_card_sign(yn_card_record *rec, const uint8_t *uid, size_t uid_len,
                 const uint8_t privkey[YN_CARD_PRIVKEY_LEN], const char **why) YN_MUST_CHECK;

/* What the issuing tool writes to a card: sign rec (as yn_card_sign) and encode. */
int yn_card_encode_signed(yn_card_record *rec, const uint8_t *uid, size_t uid_len,
                          const uint8_t privkey[YN_CARD_PRIVKEY_LEN], uint8_t *buf, size_t cap,
                          size_t *len, const char **why) YN_MUST_CHECK;

/* Decode bytes read from a card, checking every rule of CARD.md. Does not
 * check the signature (yn_card_verify). YN_ECORRUPT with the reason in *why
 * (a static string for the technician's log) when the bytes are not a record. */
int yn_card_decode(const uint8_t *buf, size_t len, yn_card_record *out,
                   const char **why) YN_MUST_CHECK;

/* Derive the raw public key of a raw Ed25519 private key (for the issuer tool). */
int yn_card_public_key(const uint8_t privkey[YN_CARD_PRIVKEY_LEN],
                       uint8_t pubkey[YN_CARD_PUBKEY_LEN]) YN_MUST_CHECK;

/* --- issuer public keys ------------------------------------------------ */

#define YN_CARD_KEYRING_MAX 8

typedef struct yn_card_issuer_key {
    uint8_t version;                    /* key version named by records, 1..255 */
    uint8_t pubkey[YN_CARD_PUBKEY_LEN]; /* raw Ed25519 public key */
} yn_card_issuer_key;

typedef struct yn_card_keyring {
    int n_keys;                                   /* 0..YN_CARD_KEYRING_MAX */
    yn_card_issuer_key keys[YN_CARD_KEYRING_MAX]; /* versions distinct */
} yn_card_keyring;

/* Parse the key ring text of CARD.md: one key a line, "VV <64 hex digits>"
 * (VV = key version as two hex digits), '#' comments and blank lines ignored.
 * YN_EINVAL (syntax, duplicate version, no key at all) or YN_ELIMIT (more
 * than YN_CARD_KEYRING_MAX keys) with "line N: …" in err; *ring untouched
 * on error. */
int yn_card_keyring_parse(const char *text, yn_card_keyring *ring, char *err,
                          size_t errlen) YN_MUST_CHECK;
/* The same key ring as the keystore hands it over after hex decoding:
 * concatenated 33-byte entries version ‖ pubkey. */
int yn_card_keyring_from_bytes(const uint8_t *buf, size_t len, yn_card_keyring *ring, char *err,
                               size_t errlen) YN_MUST_CHECK;
/* Add one key; YN_EINVAL for version 0 or a duplicate, YN_ELIMIT when full. */
int yn_card_keyring_add(yn_card_keyring *ring, uint8_t version,
                        const uint8_t pubkey[YN_CARD_PUBKEY_LEN]) YN_MUST_CHECK;

/* Check rec->signature over the domain tag, the UID and the record fields
 * with the issuer key named by rec->key_version. YN_OK, YN_ENOTFOUND (no such
 * key version in ring), YN_EAUTH (wrong signature), YN_EINVAL (rec invalid). */
int yn_card_verify(const yn_card_record *rec, const uint8_t *uid, size_t uid_len,
                   const yn_card_keyring *ring) YN_MUST_CHECK;

/* Decode then verify: what a terminal does with the record area it read. */
int yn_card_read(const uint8_t *buf, size_t len, const uint8_t *uid, size_t uid_len,
                 const yn_card_keyring *ring, yn_card_record *out, const char **why) YN_MUST_CHECK;

/* True when the card is no longer valid on today_ymd (local date): after its
 * expiry_ymd, before its issue_ymd, or today_ymd is not a real date. */
bool yn_card_expired(const yn_card_record *rec, int32_t today_ymd);

/* The facts the policy engine needs. */
void yn_card_to_facts(const yn_card_record *rec, yn_card_facts *facts);

/* --- per-card key (NXP AN10922, AES-128) ------------------------------- */

#define YN_CARD_AID_LEN    3
#define YN_CARD_MASTER_LEN 16
/* The project's DESFire application 0xF5594E, as bytes on the wire (LSB first). */
extern const uint8_t yn_card_aid[YN_CARD_AID_LEN];
/* The project's system identifier in the diversification input: "YINIAN-POS". */
extern const uint8_t yn_card_sysid[10];

/* The card key of this UID with the project's AID and system identifier.
 * Software, with the master in memory: the issuing desk's way. A terminal
 * asks its keystore (yn_card_key), which may keep the master in a
 * token. */
int yn_card_key_for_uid(const uint8_t master[YN_CARD_MASTER_LEN], const uint8_t *uid,
                        size_t uid_len, uint8_t out[YN_CARD_KEY_LEN]) YN_MUST_CHECK;
/* The same from the terminal's keystore (the master may be in a token). */
struct yn_keystore;
int yn_card_key(struct yn_keystore *ks, const uint8_t *uid, size_t uid_len,
                uint8_t out[YN_CARD_KEY_LEN]) YN_MUST_CHECK;
/* MIFARE Classic sector keys from a card key: A = key[0..5], B = key[6..11]. */
void yn_card_classic_keys(const uint8_t key[YN_CARD_KEY_LEN], uint8_t key_a[6], uint8_t key_b[6]);

/* --- the "last meal" stamp (CARD.md §4) --------------------------------- */

#define YN_CARD_STAMP_V1       1  /* older firmware: canteen + low 16 bits of seq (read only) */
#define YN_CARD_STAMP_V2       2  /* written now: the terminal and the meal's record */
#define YN_CARD_STAMP_LEN      16 /* one MIFARE Classic block */
#define YN_CARD_STAMP_PAIR_LEN 32 /* Classic: primary block ‖ copy block */

typedef struct yn_card_stamp {
    uint8_t version;        /* 2 (written), 1 (older firmware), or 0: blank (no meal yet) */
    uint16_t period_code;   /* yn_card_period_code(period name), nonzero */
    int32_t date_ymd;       /* local (Asia/Shanghai) date of the meal, YYYYMMDD (v2: >= 2000) */
    uint32_t terminal_code; /* v2: yn_card_terminal_code of the writer, 1..2^24-1; v1: 0 */
    uint16_t canteen_id;    /* v1: the writer's canteen code, nonzero; v2: 0 */
    uint32_t seq;           /* v2: the meal's ledger seq (low 32 bits), nonzero; v1: low 16 bits */
} yn_card_stamp;

/* 16-bit code of a meal period name (FNV-1a folded; never 0). "" gives 0. */
uint16_t yn_card_period_code(const char *period);
/* 24-bit code of a terminal id in v2 stamps (FNV-1a folded; never 0). "" gives 0. */
uint32_t yn_card_terminal_code(const char *terminal_id);

/* Fill a v2 stamp for the subsidised meal that record seq of the terminal
 * with this code committed. YN_EINVAL on a bad date, empty period, terminal
 * code 0 or seq 0. */
int yn_card_stamp_make(int32_t date_ymd, const char *period, uint32_t terminal_code, uint64_t seq,
                       yn_card_stamp *out) YN_MUST_CHECK;
/* Encode a (non-blank) stamp of either version: exactly YN_CARD_STAMP_LEN
 * bytes into out. Terminals write v2 only; v1 is encoded for tests and tools. */
int yn_card_stamp_encode(const yn_card_stamp *stamp, uint8_t out[YN_CARD_STAMP_LEN],
                         const char **why) YN_MUST_CHECK;
/* Decode a stamp area: len 0 or 16 zero bytes is a blank stamp (version 0);
 * other 16 bytes must be a valid v1 or v2 stamp with a good CRC32. 32 bytes
 * is a Classic pair, primary ‖ copy (CARD.md §6): a valid non-blank copy
 * wins (it is written first, so never older), else a valid primary; both
 * damaged → YN_ECORRUPT. */
int yn_card_stamp_decode(const uint8_t *buf, size_t len, yn_card_stamp *out,
                         const char **why) YN_MUST_CHECK;
bool yn_card_stamp_is_blank(const yn_card_stamp *stamp);
/* True when the stamp records a subsidised meal on today_ymd in this period:
 * a second subsidised meal must be refused. Blank stamp, other day, other
 * period or empty period → false. */
bool yn_card_stamp_blocks(const yn_card_stamp *stamp, int32_t today_ymd, const char *period);

#endif
