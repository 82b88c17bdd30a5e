/* card.c — the 颐年卡 formats: the issuer-signed record (Ed25519), the "last
 * meal" stamp (CRC32), and the per-card AES key (NXP AN10922). Pure code over
 * byte buffers; the byte layouts are specified in firmware/core/CARD.md. */
#include "card.h"

#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "an10922.h"
#include "keystore.h"
#include "nfc.h"
#include "rules.h"
#include "timeutil.h"

/* --- record layout, version 1 (CARD.md "Record") ------------------------ */

enum {
    OFF_MAGIC = 0,     /* 2 bytes "YN" */
    OFF_FORMAT = 2,    /* 1 */
    OFF_KEYVER = 3,    /* 1 */
    OFF_CARD_NO = 4,   /* 20, NUL padded */
    OFF_BIRTH = 24,    /* 4 */
    OFF_FLAGS = 28,    /* 4 */
    OFF_DISTRICT = 32, /* 4 */
    OFF_STREET = 36,   /* 4 */
    OFF_ISSUE = 40,    /* 4 */
    OFF_EXPIRY = 44,   /* 4 */
    OFF_RESERVED = 48, /* 4, zero */
    OFF_SIG = 52,      /* 64 */
    SIGNED_LEN = OFF_SIG,
    CARD_NO_FIELD = 20,
};

_Static_assert(OFF_SIG + YN_CARD_SIG_LEN == YN_CARD_RECORD_V1_LEN, "record v1 layout");
_Static_assert(YN_CARD_RECORD_V1_LEN <= YN_CARD_RECORD_MAX, "record fits a reader area");
_Static_assert(CARD_NO_FIELD == YN_CARD_CARD_NO_MAX + 1, "card number field");
_Static_assert(sizeof(((yn_card_facts *)0)->card_no) == YN_CARD_CARD_NO_MAX + 1,
               "card number fits the policy's facts");
_Static_assert(YN_CARD_UID_MAX == YN_UID_MAX, "a card UID fits the reader's tag");
_Static_assert(YN_CARD_KEY_LEN == YN_NFC_KEY_LEN, "the card key is the reader's area key");
_Static_assert(YN_CARD_STAMP_LEN <= YN_CARD_RECORD_MAX, "stamp fits a reader area");

static const uint8_t record_magic[2] = {0x59, 0x4E}; /* "YN" */

/* Domain separation: a signature over a card record can never be taken for a
 * signature over anything else the issuer signs. */
static const char sign_tag[] = "YINIAN-POS/card-record/v1";
#define SIGN_TAG_LEN (sizeof sign_tag - 1)
#define SIGN_MSG_MAX (SIGN_TAG_LEN + 1 + YN_CARD_UID_MAX + SIGNED_LEN)

const uint8_t yn_card_aid[YN_CARD_AID_LEN] = {0x4E, 0x59, 0xF5}; /* AID 0xF5594E, LSB first */
const uint8_t yn_card_sysid[10] = {'Y', 'I', 'N', 'I', 'A', 'N', '-', 'P', 'O', 'S'};

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static void set_why(const char **why, const char *text)
{
    if (why)
        *why = text;
}

/* --- field rules ------------------------------------------------------- */

/* A real calendar day between 1900-01-01 and 2099-12-31: the shared date
 * rule (rules.h), within the years a card is made for. */
static bool ymd_valid(int32_t ymd)
{
    return yn_time_ymd_valid(ymd) && ymd <= 20991231;
}

/* Every rule a record must satisfy, whether it is written or read. */
static bool record_valid(const yn_card_record *rec, const char **why)
{
    if (rec->format_version != YN_CARD_FORMAT_V1) {
        set_why(why, "unsupported record format version");
        return false;
    }
    if (rec->key_version == 0) {
        set_why(why, "key version 0 is reserved");
        return false;
    }
    if (!memchr(rec->card_no, '\0', sizeof rec->card_no) || !rec->card_no[0]) {
        set_why(why, "card number empty or longer than 19 characters");
        return false;
    }
    if (!yn_rules_card_no(rec->card_no)) {
        set_why(why, "card number has a character outside printable ASCII 0x21..0x7E");
        return false;
    }
    if (!ymd_valid(rec->birth_ymd)) {
        set_why(why, "birth date is not a real day YYYYMMDD (1900..2099)");
        return false;
    }
    if (rec->flags & ~YN_CARD_FLAGS_KNOWN) {
        set_why(why, "category flags has reserved bits set");
        return false;
    }
    if (!yn_rules_district(rec->district)) {
        set_why(why, "district is not a six-digit GB/T 2260 county code with a valid province");
        return false;
    }
    if (!yn_rules_street(rec->street, rec->district)) {
        set_why(why, "street is not district * 1000 + NNN (001..999)");
        return false;
    }
    if (!ymd_valid(rec->issue_ymd)) {
        set_why(why, "issue date is not a real day YYYYMMDD (1900..2099)");
        return false;
    }
    if (!ymd_valid(rec->expiry_ymd)) {
        set_why(why, "expiry date is not a real day YYYYMMDD (1900..2099)");
        return false;
    }
    if (rec->birth_ymd > rec->issue_ymd) {
        set_why(why, "birth date after issue date");
        return false;
    }
    if (rec->expiry_ymd <= rec->issue_ymd) {
        set_why(why, "expiry date not after issue date");
        return false;
    }
    return true;
}

static bool uid_len_ok(const uint8_t *uid, size_t uid_len)
{
    return uid && (uid_len == 4 || uid_len == 7 || uid_len == 10);
}

/* --- encode / decode --------------------------------------------------- */

size_t yn_card_record_size(uint8_t format_version)
{
    return format_version == YN_CARD_FORMAT_V1 ? YN_CARD_RECORD_V1_LEN : 0;
}

/* The first SIGNED_LEN bytes of the encoding: everything the signature covers. */
static void encode_fields(const yn_card_record *rec, uint8_t *p)
{
    memcpy(p + OFF_MAGIC, record_magic, sizeof record_magic);
    p[OFF_FORMAT] = rec->format_version;
    p[OFF_KEYVER] = rec->key_version;
    memset(p + OFF_CARD_NO, 0, CARD_NO_FIELD);
    memcpy(p + OFF_CARD_NO, rec->card_no, strlen(rec->card_no)); /* validated: <= 19 */
    put_u32(p + OFF_BIRTH, (uint32_t)rec->birth_ymd);
    put_u32(p + OFF_FLAGS, rec->flags);
    put_u32(p + OFF_DISTRICT, rec->district);
    put_u32(p + OFF_STREET, rec->street);
    put_u32(p + OFF_ISSUE, (uint32_t)rec->issue_ymd);
    put_u32(p + OFF_EXPIRY, (uint32_t)rec->expiry_ymd);
    put_u32(p + OFF_RESERVED, 0);
}

int yn_card_encode(const yn_card_record *rec, uint8_t *buf, size_t cap, size_t *len,
                   const char **why)
{
    if (!rec || !buf || !len) {
        set_why(why, "missing argument");
        return YN_EINVAL;
    }
    if (!record_valid(rec, why))
        return YN_EINVAL;
    if (cap < YN_CARD_RECORD_V1_LEN) {
        set_why(why, "buffer too small for the record");
        return YN_ELIMIT;
    }
    encode_fields(rec, buf);
    memcpy(buf + OFF_SIG, rec->signature, YN_CARD_SIG_LEN);
    *len = YN_CARD_RECORD_V1_LEN;
    set_why(why, "ok");
    return YN_OK;
}

int yn_card_decode(const uint8_t *buf, size_t len, yn_card_record *out, const char **why)
{
    if ((!buf && len) || !out) {
        set_why(why, "missing argument");
        return YN_EINVAL;
    }
    if (len < OFF_KEYVER + 1) {
        set_why(why, "record shorter than its header (blank or foreign card?)");
        return YN_ECORRUPT;
    }
    if (memcmp(buf + OFF_MAGIC, record_magic, sizeof record_magic) != 0) {
        set_why(why, "record does not start with \"YN\" (blank or foreign card?)");
        return YN_ECORRUPT;
    }
    size_t want = yn_card_record_size(buf[OFF_FORMAT]);
    if (want == 0) {
        set_why(why, "unsupported record format version");
        return YN_ECORRUPT;
    }
    if (len < want) {
        set_why(why, "record truncated: shorter than its format version needs");
        return YN_ECORRUPT;
    }
    if (len > want) {
        set_why(why, "record oversized: longer than its format version allows");
        return YN_ECORRUPT;
    }

    yn_card_record rec;
    memset(&rec, 0, sizeof rec);
    rec.format_version = buf[OFF_FORMAT];
    rec.key_version = buf[OFF_KEYVER];
    const uint8_t *no = buf + OFF_CARD_NO;
    size_t n = 0;
    while (n < CARD_NO_FIELD && no[n] != 0)
        n++;
    if (n == CARD_NO_FIELD) {
        set_why(why, "card number not NUL-terminated within its 20 bytes");
        return YN_ECORRUPT;
    }
    for (size_t i = n; i < CARD_NO_FIELD; i++) {
        if (no[i] != 0) {
            set_why(why, "card number padding is not zero");
            return YN_ECORRUPT;
        }
    }
    memcpy(rec.card_no, no, n);
    rec.birth_ymd = (int32_t)get_u32(buf + OFF_BIRTH);
    rec.flags = get_u32(buf + OFF_FLAGS);
    rec.district = get_u32(buf + OFF_DISTRICT);
    rec.street = get_u32(buf + OFF_STREET);
    rec.issue_ymd = (int32_t)get_u32(buf + OFF_ISSUE);
    rec.expiry_ymd = (int32_t)get_u32(buf + OFF_EXPIRY);
    if (get_u32(buf + OFF_RESERVED) != 0) {
        set_why(why, "reserved field is not zero");
        return YN_ECORRUPT;
    }
    memcpy(rec.signature, buf + OFF_SIG, YN_CARD_SIG_LEN);
    if (!record_valid(&rec, why))
        return YN_ECORRUPT;
    *out = rec;
    set_why(why, "ok");
    return YN_OK;
}

/* tag ‖ uid_len ‖ uid ‖ record bytes 0..51. */
static size_t signed_message(const yn_card_record *rec, const uint8_t *uid, size_t uid_len,
                             uint8_t msg[SIGN_MSG_MAX])
{
    size_t n = 0;
    memcpy(msg, sign_tag, SIGN_TAG_LEN);
    n += SIGN_TAG_LEN;
    msg[n++] = (uint8_t)uid_len;
    memcpy(msg + n, uid, uid_len);
    n += uid_len;
    encode_fields(rec, msg + n);
    return n + SIGNED_LEN;
}

int yn_card_sign(yn_card_record *rec, const uint8_t *uid, size_t uid_len,
                 const uint8_t privkey[YN_CARD_PRIVKEY_LEN], const char **why)
{
    if (!rec || !privkey || !uid_len_ok(uid, uid_len)) {
        set_why(why, "missing argument or UID not 4, 7 or 10 bytes");
        return YN_EINVAL;
    }
    if (!record_valid(rec, why))
        return YN_EINVAL;
    uint8_t msg[SIGN_MSG_MAX];
    size_t msg_len = signed_message(rec, uid, uid_len, msg);

    int rc = YN_ENOMEM;
    set_why(why, "out of memory in the Ed25519 signer");
    EVP_PKEY *pkey =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, privkey, YN_CARD_PRIVKEY_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (pkey && ctx) {
        size_t sig_len = YN_CARD_SIG_LEN;
        uint8_t sig[YN_CARD_SIG_LEN];
        if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
            EVP_DigestSign(ctx, sig, &sig_len, msg, msg_len) == 1 && sig_len == YN_CARD_SIG_LEN) {
            memcpy(rec->signature, sig, sizeof sig);
            set_why(why, "ok");
            rc = YN_OK;
        } else {
            set_why(why, "Ed25519 signing failed");
            rc = YN_EINVAL;
        }
    }
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey); /* clears the private key */
    ERR_clear_error();
    return rc;
}

int yn_card_encode_signed(yn_card_record *rec, const uint8_t *uid, size_t uid_len,
                          const uint8_t privkey[YN_CARD_PRIVKEY_LEN], uint8_t *buf, size_t cap,
                          size_t *len, const char **why)
{
    int rc = yn_card_sign(rec, uid, uid_len, privkey, why);
    if (rc != YN_OK)
        return rc;
    return yn_card_encode(rec, buf, cap, len, why);
}

int yn_card_public_key(const uint8_t privkey[YN_CARD_PRIVKEY_LEN],
                       uint8_t pubkey[YN_CARD_PUBKEY_LEN])
{
    if (!privkey || !pubkey)
        return YN_EINVAL;
    EVP_PKEY *pkey =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, privkey, YN_CARD_PRIVKEY_LEN);
    size_t n = YN_CARD_PUBKEY_LEN;
    int rc = pkey && EVP_PKEY_get_raw_public_key(pkey, pubkey, &n) == 1 && n == YN_CARD_PUBKEY_LEN
                 ? YN_OK
                 : YN_ENOMEM;
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return rc;
}

/* --- key ring ---------------------------------------------------------- */

int yn_card_keyring_add(yn_card_keyring *ring, uint8_t version,
                        const uint8_t pubkey[YN_CARD_PUBKEY_LEN])
{
    if (!ring || !pubkey || version == 0 || ring->n_keys < 0 || ring->n_keys > YN_CARD_KEYRING_MAX)
        return YN_EINVAL;
    for (int i = 0; i < ring->n_keys; i++)
        if (ring->keys[i].version == version)
            return YN_EINVAL;
    if (ring->n_keys == YN_CARD_KEYRING_MAX)
        return YN_ELIMIT;
    ring->keys[ring->n_keys].version = version;
    memcpy(ring->keys[ring->n_keys].pubkey, pubkey, YN_CARD_PUBKEY_LEN);
    ring->n_keys++;
    return YN_OK;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Exactly 2*n hex digits at p into out; false otherwise. */
static bool hex_exact(const char *p, size_t avail, uint8_t *out, size_t n)
{
    if (avail < 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(p[2 * i]), lo = hex_digit(p[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Add one key and turn the status into a line-numbered message. */
static int add_reporting(yn_card_keyring *ring, uint8_t version, const uint8_t *pubkey, int line,
                         char *err, size_t errlen)
{
    int rc = yn_card_keyring_add(ring, version, pubkey);
    if (rc == YN_ELIMIT && err)
        snprintf(err, errlen, "line %d: more than %d issuer keys", line, YN_CARD_KEYRING_MAX);
    else if (rc != YN_OK && err)
        snprintf(err, errlen, "line %d: key version %02x is 00 or appears twice", line, version);
    return rc;
}

int yn_card_keyring_parse(const char *text, yn_card_keyring *ring, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!text || !ring)
        return YN_EINVAL;
    yn_card_keyring tmp;
    memset(&tmp, 0, sizeof tmp);
    int line = 0;
    const char *p = text;
    while (*p) {
        line++;
        const char *end = strchr(p, '\n');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        const char *hash = memchr(p, '#', n);
        if (hash)
            n = (size_t)(hash - p);
        while (n && is_blank(p[n - 1]))
            n--;
        size_t i = 0;
        while (i < n && is_blank(p[i]))
            i++;
        if (i < n) {
            uint8_t version, pubkey[YN_CARD_PUBKEY_LEN];
            size_t j = i + 2;
            bool ok = hex_exact(p + i, n - i, &version, 1) && j < n && is_blank(p[j]);
            while (ok && j < n && is_blank(p[j]))
                j++;
            ok = ok && n - j == 2 * YN_CARD_PUBKEY_LEN &&
                 hex_exact(p + j, n - j, pubkey, YN_CARD_PUBKEY_LEN);
            if (!ok) {
                if (err)
                    snprintf(err, errlen,
                             "line %d: expected \"VV <64 hex digits>\": key version as two hex "
                             "digits, then the 32-byte Ed25519 public key",
                             line);
                return YN_EINVAL;
            }
            int rc = add_reporting(&tmp, version, pubkey, line, err, errlen);
            if (rc != YN_OK)
                return rc;
        }
        if (!end)
            break;
        p = end + 1;
    }
    if (tmp.n_keys == 0) {
        if (err)
            snprintf(err, errlen, "no issuer key: expected lines \"VV <64 hex digits>\"");
        return YN_EINVAL;
    }
    *ring = tmp;
    return YN_OK;
}

int yn_card_keyring_from_bytes(const uint8_t *buf, size_t len, yn_card_keyring *ring, char *err,
                               size_t errlen)
{
    const size_t entry = 1 + YN_CARD_PUBKEY_LEN;
    if (err && errlen)
        err[0] = '\0';
    if ((!buf && len) || !ring)
        return YN_EINVAL;
    if (len == 0 || len % entry != 0) {
        if (err)
            snprintf(err, errlen, "%zu bytes is not a whole number of 33-byte keys", len);
        return YN_EINVAL;
    }
    yn_card_keyring tmp;
    memset(&tmp, 0, sizeof tmp);
    for (size_t off = 0; off < len; off += entry) {
        int rc = add_reporting(&tmp, buf[off], buf + off + 1, (int)(off / entry) + 1, err, errlen);
        if (rc != YN_OK)
            return rc;
    }
    *ring = tmp;
    return YN_OK;
}

static const yn_card_issuer_key *keyring_find(const yn_card_keyring *ring, uint8_t version)
{
    for (int i = 0; i < ring->n_keys && i < YN_CARD_KEYRING_MAX; i++)
        if (ring->keys[i].version == version)
            return &ring->keys[i];
    return NULL;
}

int yn_card_verify(const yn_card_record *rec, const uint8_t *uid, size_t uid_len,
                   const yn_card_keyring *ring)
{
    if (!rec || !ring || !uid_len_ok(uid, uid_len) || !record_valid(rec, NULL))
        return YN_EINVAL;
    const yn_card_issuer_key *key = keyring_find(ring, rec->key_version);
    if (!key)
        return YN_ENOTFOUND;
    uint8_t msg[SIGN_MSG_MAX];
    size_t msg_len = signed_message(rec, uid, uid_len, msg);

    int rc = YN_ENOMEM;
    EVP_PKEY *pkey =
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, key->pubkey, YN_CARD_PUBKEY_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (pkey && ctx) {
        rc = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
                     EVP_DigestVerify(ctx, rec->signature, YN_CARD_SIG_LEN, msg, msg_len) == 1
                 ? YN_OK
                 : YN_EAUTH;
    }
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    ERR_clear_error(); /* a bad signature is an answer, not an error to leave queued */
    return rc;
}

int yn_card_read(const uint8_t *buf, size_t len, const uint8_t *uid, size_t uid_len,
                 const yn_card_keyring *ring, yn_card_record *out, const char **why)
{
    yn_card_record rec;
    int rc = yn_card_decode(buf, len, &rec, why);
    if (rc != YN_OK)
        return rc;
    rc = yn_card_verify(&rec, uid, uid_len, ring);
    if (rc == YN_ENOTFOUND)
        set_why(why, "record signed with an issuer key version this terminal does not hold");
    else if (rc == YN_EAUTH)
        set_why(why, "issuer signature does not match this UID and record (forged or cloned)");
    else if (rc != YN_OK)
        set_why(why, "cannot verify the record");
    if (rc == YN_OK && out)
        *out = rec;
    return rc;
}

bool yn_card_expired(const yn_card_record *rec, int32_t today_ymd)
{
    if (!rec || !ymd_valid(today_ymd))
        return true;
    return today_ymd < rec->issue_ymd || today_ymd > rec->expiry_ymd;
}

void yn_card_to_facts(const yn_card_record *rec, yn_card_facts *facts)
{
    memset(facts, 0, sizeof *facts);
    memcpy(facts->card_no, rec->card_no, sizeof facts->card_no);
    facts->card_no[sizeof facts->card_no - 1] = '\0';
    facts->birth_ymd = rec->birth_ymd;
    facts->flags = rec->flags;
    facts->district = rec->district;
    facts->street = rec->street;
    facts->expiry_ymd = rec->expiry_ymd;
}

/* --- AN10922 AES-128 diversification ----------------------------------- */

int yn_card_key_for_uid(const uint8_t master[YN_CARD_MASTER_LEN], const uint8_t *uid,
                        size_t uid_len, uint8_t out[YN_CARD_KEY_LEN])
{
    if (!uid_len_ok(uid, uid_len))
        return YN_EINVAL;
    return yn_an10922_diversify(master, uid, uid_len, yn_card_aid, YN_CARD_AID_LEN, yn_card_sysid,
                                sizeof yn_card_sysid, out);
}

int yn_card_key(yn_keystore *ks, const uint8_t *uid, size_t uid_len, uint8_t out[YN_CARD_KEY_LEN])
{
    if (!uid_len_ok(uid, uid_len))
        return YN_EINVAL;
    return yn_keystore_diversify(ks, uid, uid_len, yn_card_aid, YN_CARD_AID_LEN, yn_card_sysid,
                                 sizeof yn_card_sysid, out);
}

void yn_card_classic_keys(const uint8_t key[YN_CARD_KEY_LEN], uint8_t key_a[6], uint8_t key_b[6])
{
    memcpy(key_a, key, 6);
    memcpy(key_b, key + 6, 6);
}

/* --- the "last meal" stamp (CARD.md §4) ------------------------------- */

/* Version 1 (older firmware; read, written only for tests and tools). */
enum {
    V1_VERSION = 0,  /* 1 */
    V1_RESERVED = 1, /* 1, zero */
    V1_PERIOD = 2,   /* 2 */
    V1_DATE = 4,     /* 4, YYYYMMDD */
    V1_CANTEEN = 8,  /* 2 */
    V1_SEQ = 10,     /* 2, low 16 bits of the seq */
};
/* Version 2 (written by this firmware). */
enum {
    V2_VERSION = 0,  /* 1 */
    V2_TERMINAL = 1, /* 3, yn_card_terminal_code */
    V2_PERIOD = 4,   /* 2 */
    V2_DAY = 6,      /* 2, days since 2000-01-01 (local date) */
    V2_SEQ = 8,      /* 4, low 32 bits of the meal's ledger seq */
};
enum { ST_CRC = 12 /* 4, CRC32 of bytes 0..11, both versions */ };

#define V2_FIRST_YMD 20000101 /* day 0 of the v2 day count */

/* CRC-32/ISO-HDLC (zlib's crc32): reflected 0xEDB88320, init and final xor ~0. */
static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int b = 0; b < 8; b++)
            crc = (crc >> 1) ^ (0xEDB88320u & -(crc & 1u));
    }
    return ~crc;
}

static uint32_t fnv1a32(const char *text)
{
    uint32_t h = 2166136261u;
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        h ^= *c;
        h *= 16777619u;
    }
    return h;
}

uint32_t yn_card_terminal_code(const char *terminal_id)
{
    if (!terminal_id || !*terminal_id)
        return 0;
    uint32_t h = fnv1a32(terminal_id);
    uint32_t code = (h >> 24) ^ (h & 0xFFFFFFu);
    return code ? code : 1;
}

uint16_t yn_card_period_code(const char *period)
{
    if (!period || !*period)
        return 0;
    uint32_t h = fnv1a32(period);
    uint16_t code = (uint16_t)((h >> 16) ^ (h & 0xFFFFu));
    return code ? code : 1;
}

static bool stamp_valid(const yn_card_stamp *s, const char **why)
{
    if (s->version != YN_CARD_STAMP_V1 && s->version != YN_CARD_STAMP_V2) {
        set_why(why, "unsupported stamp version");
        return false;
    }
    if (s->period_code == 0) {
        set_why(why, "stamp period code is 0");
        return false;
    }
    if (!ymd_valid(s->date_ymd) || (s->version == YN_CARD_STAMP_V2 && s->date_ymd < V2_FIRST_YMD)) {
        set_why(why, "stamp date is not a real day YYYYMMDD (v2: from 2000-01-01)");
        return false;
    }
    if (s->version == YN_CARD_STAMP_V1) {
        if (s->canteen_id == 0 || s->terminal_code != 0 || s->seq > 0xFFFFu) {
            set_why(why, "v1 stamp: canteen id is 0, or a v2 field is set");
            return false;
        }
        return true;
    }
    if (s->terminal_code == 0 || s->terminal_code > 0xFFFFFFu || s->canteen_id != 0) {
        set_why(why, "v2 stamp: terminal code is 0 or wider than 24 bits, or a v1 field is set");
        return false;
    }
    if (s->seq == 0) {
        set_why(why, "v2 stamp: record seq is 0");
        return false;
    }
    return true;
}

int yn_card_stamp_make(int32_t date_ymd, const char *period, uint32_t terminal_code, uint64_t seq,
                       yn_card_stamp *out)
{
    if (!out)
        return YN_EINVAL;
    yn_card_stamp s = {
        .version = YN_CARD_STAMP_V2,
        .period_code = yn_card_period_code(period),
        .date_ymd = date_ymd,
        .terminal_code = terminal_code,
        .seq = (uint32_t)(seq & 0xFFFFFFFFu),
    };
    if (!stamp_valid(&s, NULL))
        return YN_EINVAL;
    *out = s;
    return YN_OK;
}

int yn_card_stamp_encode(const yn_card_stamp *stamp, uint8_t out[YN_CARD_STAMP_LEN],
                         const char **why)
{
    if (!stamp || !out) {
        set_why(why, "missing argument");
        return YN_EINVAL;
    }
    if (!stamp_valid(stamp, why))
        return YN_EINVAL;
    memset(out, 0, YN_CARD_STAMP_LEN);
    if (stamp->version == YN_CARD_STAMP_V1) {
        out[V1_VERSION] = stamp->version;
        put_u16(out + V1_PERIOD, stamp->period_code);
        put_u32(out + V1_DATE, (uint32_t)stamp->date_ymd);
        put_u16(out + V1_CANTEEN, stamp->canteen_id);
        put_u16(out + V1_SEQ, (uint16_t)stamp->seq);
    } else {
        out[V2_VERSION] = stamp->version;
        out[V2_TERMINAL] = (uint8_t)(stamp->terminal_code >> 16);
        put_u16(out + V2_TERMINAL + 1, (uint16_t)(stamp->terminal_code & 0xFFFFu));
        put_u16(out + V2_PERIOD, stamp->period_code);
        put_u16(out + V2_DAY, (uint16_t)(yn_time_days_of_ymd(stamp->date_ymd) -
                                         yn_time_days_of_ymd(V2_FIRST_YMD)));
        put_u32(out + V2_SEQ, stamp->seq);
    }
    put_u32(out + ST_CRC, crc32_ieee(out, ST_CRC));
    set_why(why, "ok");
    return YN_OK;
}

/* One 16-byte stamp (or the blank 0-byte area). */
static int stamp_decode_one(const uint8_t *buf, size_t len, yn_card_stamp *out, const char **why)
{
    yn_card_stamp s;
    memset(&s, 0, sizeof s);
    if (len == 0) {
        *out = s;
        set_why(why, "blank stamp");
        return YN_OK;
    }
    if (len != YN_CARD_STAMP_LEN) {
        set_why(why, "stamp is not exactly 16 bytes (or 32 for a Classic pair)");
        return YN_ECORRUPT;
    }
    uint8_t any = 0;
    for (size_t i = 0; i < len; i++)
        any |= buf[i];
    if (!any) {
        *out = s;
        set_why(why, "blank stamp");
        return YN_OK;
    }
    if (buf[0] != YN_CARD_STAMP_V1 && buf[0] != YN_CARD_STAMP_V2) {
        set_why(why, "unsupported stamp version");
        return YN_ECORRUPT;
    }
    /* Not a secret: the CRC detects a torn or damaged write, see CARD.md. */
    if (get_u32(buf + ST_CRC) != crc32_ieee(buf, ST_CRC)) {
        set_why(why, "stamp checksum mismatch (torn or damaged write)");
        return YN_ECORRUPT;
    }
    s.version = buf[0];
    if (s.version == YN_CARD_STAMP_V1) {
        if (buf[V1_RESERVED] != 0) {
            set_why(why, "stamp reserved byte is not zero");
            return YN_ECORRUPT;
        }
        s.period_code = get_u16(buf + V1_PERIOD);
        s.date_ymd = (int32_t)get_u32(buf + V1_DATE);
        s.canteen_id = get_u16(buf + V1_CANTEEN);
        s.seq = get_u16(buf + V1_SEQ);
    } else {
        s.terminal_code = (uint32_t)buf[V2_TERMINAL] << 16 | get_u16(buf + V2_TERMINAL + 1);
        s.period_code = get_u16(buf + V2_PERIOD);
        s.date_ymd = yn_time_ymd_of_days(yn_time_days_of_ymd(V2_FIRST_YMD) + get_u16(buf + V2_DAY));
        s.seq = get_u32(buf + V2_SEQ);
    }
    if (!stamp_valid(&s, why))
        return YN_ECORRUPT;
    *out = s;
    set_why(why, "ok");
    return YN_OK;
}

int yn_card_stamp_decode(const uint8_t *buf, size_t len, yn_card_stamp *out, const char **why)
{
    if ((!buf && len) || !out) {
        set_why(why, "missing argument");
        return YN_EINVAL;
    }
    if (len != YN_CARD_STAMP_PAIR_LEN)
        return stamp_decode_one(buf, len, out, why);

    /* Classic pair: every write puts the copy first, then the primary, so a
     * valid copy is never older than the primary: a tear after the copy
     * leaves the new stamp in the copy (the ledger committed that meal
     * already), a torn copy leaves the old primary, a torn primary the new
     * copy. A blank copy beside a stamped primary (damage) yields to it. */
    yn_card_stamp primary, copy;
    const char *why_copy = NULL;
    int rc_copy = stamp_decode_one(buf + YN_CARD_STAMP_LEN, YN_CARD_STAMP_LEN, &copy, &why_copy);
    if (rc_copy == YN_OK && !yn_card_stamp_is_blank(&copy)) {
        *out = copy;
        set_why(why, why_copy);
        return YN_OK;
    }
    int rc_primary = stamp_decode_one(buf, YN_CARD_STAMP_LEN, &primary, why);
    if (rc_primary == YN_OK) {
        *out = primary;
        return YN_OK;
    }
    if (rc_copy == YN_OK) { /* blank copy, damaged primary: no meal recorded yet */
        *out = copy;
        set_why(why, why_copy);
        return YN_OK;
    }
    set_why(why, "both stamp copies damaged");
    return YN_ECORRUPT;
}

bool yn_card_stamp_is_blank(const yn_card_stamp *stamp)
{
    return !stamp || stamp->version == 0;
}

bool yn_card_stamp_blocks(const yn_card_stamp *stamp, int32_t today_ymd, const char *period)
{
    if (yn_card_stamp_is_blank(stamp))
        return false;
    uint16_t code = yn_card_period_code(period);
    return code != 0 && stamp->period_code == code && stamp->date_ymd == today_ymd;
}
