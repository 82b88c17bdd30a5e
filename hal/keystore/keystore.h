/* keystore.h — the terminal's keys, used through operations.
 *
 * Secret keys are not handed out: the keystore derives the one card's key for
 * a UID (AN10922, firmware/core/CARD.md §3) and authenticates to the district
 * with the terminal key (sync/PROTOCOL.md) — HMAC-SHA256 under a shared key,
 * or with terminal_key_type = ecdsa-p256 an ECDSA P-256 signature by the
 * terminal's own key pair, generated in the keystore (§10). Backends (board.conf
 * [keys] backend):
 *
 *   file    key files, mode 0600/0400 and ours, re-checked at every use (hex;
 *           a key pair in PEM); the key passes through this process's memory
 *           for each operation and is wiped after it
 *   pkcs11  a PKCS#11 token (SoftHSM2 in tests, a TPM 2.0 or a secure element
 *           on a board): sensitive, non-extractable key objects; the token
 *           computes the AES-CMAC, the HMAC and the ECDSA signature, the keys
 *           never enter this process; a key pair is generated inside it
 *
 * Public keys (issuer ring, district key) are files with every backend.
 * Every operation may be called from two threads at once (the counter and the
 * sync thread); none is bounded in time by us — a PKCS#11 call returns when
 * the token answers. Design, threat model, provisioning: hal/keystore/KEYSTORE.md.
 *
 * Results: YN_OK; YN_EINVAL bad argument; YN_ENOTFOUND key not configured or
 * not in the token; YN_ENOENT key file or module missing; YN_EPERM a file
 * mode, or a token object that could be read out; YN_EAUTH PIN refused;
 * YN_ENODEV token absent; YN_EDUPLICATE another key is stored already;
 * YN_ENOTSUP operation this backend does not have, or of the other
 * terminal_key_type; YN_EIO anything else the token said (logged with its
 * CKR_ name). */
#ifndef YN_HAL_KEYSTORE_H
#define YN_HAL_KEYSTORE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal_conf.h"
#include "sig.h"
#include "status.h"

/* How the terminal authenticates to the district (board.conf [keys]
 * terminal_key_type; sync/PROTOCOL.md §2, §10): a shared HMAC key the district
 * hands out at enrolment, or its own ECDSA P-256 key pair, generated in the
 * keystore, whose public half the district enrols. */
enum yn_key_type { YN_KEY_HMAC, YN_KEY_ECDSA_P256 };

/* [keys] of board.conf. */
typedef struct yn_keys_conf {
    char source[PATH_MAX];              /* the board.conf they come from, named in messages */
    char backend[YN_BACKEND_MAX];       /* file | pkcs11: where the secret keys live */
    enum yn_key_type terminal_key_type; /* hmac | ecdsa-p256: what the terminal key is */
    char terminal_key[PATH_MAX];        /* file: secret, 0600: HMAC key (hex) or key pair (PEM) */
    char card_master_key[PATH_MAX];     /* file: secret, 0600: AN10922 master key */
    char issuer_pubkey[PATH_MAX];       /* card issuer's Ed25519 public key(s) */
    char district_pubkey[PATH_MAX];     /* district's Ed25519 public key */
    char pkcs11_module[PATH_MAX];       /* pkcs11: the token's module, not writable by others */
    char token_label[33];               /* pkcs11: the token's label, 1..32 bytes */
    char pin_file[PATH_MAX];            /* pkcs11: secret, 0600: the token's user PIN */
} yn_keys_conf;

enum yn_key_id {
    YN_KEYID_TERMINAL,     /* secret: HMAC key (16..64 bytes) or ECDSA P-256 key pair */
    YN_KEYID_CARD_MASTER,  /* secret: AN10922 master key (16 bytes) */
    YN_KEYID_ISSUER_PUB,   /* public: card issuer Ed25519 key(s) */
    YN_KEYID_DISTRICT_PUB, /* public: district Ed25519 key */
    YN_KEYID_COUNT
};

#define YN_KEY_MAX               4096                /* bytes of a decoded key file */
#define YN_KEYSTORE_CARD_KEY_LEN 16                  /* AES-128 card key */
#define YN_KEYSTORE_MAC_LEN      32                  /* HMAC-SHA256 */
#define YN_KEYSTORE_SIG_LEN      YN_SIG_P256_LEN     /* ECDSA P-256 r ‖ s */
#define YN_KEYSTORE_PUB_LEN      YN_SIG_P256_PUB_LEN /* its public key: 04 ‖ X ‖ Y */
#define YN_KEYSTORE_TERMINAL_MIN 16                  /* terminal key bytes */
#define YN_KEYSTORE_TERMINAL_MAX 64
#define YN_KEYSTORE_CARD_MASTER  16 /* card master key bytes */
#define YN_KEYSTORE_TOKEN_LABEL  32 /* PKCS#11 token labels are 32 bytes */
#define YN_KEYSTORE_ERROR_LEN    320

/* What a secret key looks like (yinian-diag, yinian-pos --self-test). */
typedef struct yn_keystore_key_info {
    bool present;     /* the key is there */
    bool unreadable;  /* token: sensitive and not extractable; file: mode 0600/0400, ours */
    bool works;       /* a test operation with it (a card key, a MAC) succeeded */
    int copies;       /* token objects with its label (> 1 after an interrupted store) */
    char detail[512]; /* where it is and what was found, for the technician */
    char fingerprint[YN_SIG_FINGERPRINT_LEN + 1]; /* a key pair's public key; "" otherwise */
} yn_keystore_key_info;

typedef struct yn_keystore yn_keystore;

typedef struct yn_keystore_ops {
    const char *name;
    int (*open)(yn_keystore *ks, const yn_keys_conf *cfg);
    void (*close)(yn_keystore *ks);
    /* AN10922 CMAC of D = 0x01 ‖ M (17..32 bytes: there the AN's form is
     * standard CMAC) under the card master key. */
    int (*diversify)(yn_keystore *ks, const uint8_t *d, size_t d_len,
                     uint8_t out[YN_KEYSTORE_CARD_KEY_LEN]);
    /* HMAC-SHA256 of data under the terminal key. */
    int (*mac)(yn_keystore *ks, const void *data, size_t len, uint8_t out[YN_KEYSTORE_MAC_LEN]);
    /* Optional, as the three below (terminal_key_type = ecdsa-p256): ECDSA
     * P-256 over SHA-256 of data with the terminal's private key (r ‖ s). */
    int (*sign)(yn_keystore *ks, const void *data, size_t len, uint8_t sig[YN_KEYSTORE_SIG_LEN]);
    /* A new terminal key pair, checked, then in use; the older ones are
     * destroyed only after that. Gives the new public key. */
    int (*generate)(yn_keystore *ks, uint8_t pub[YN_KEYSTORE_PUB_LEN]);
    /* Optional (a token keeps every generation until told): keep, the pairs
     * older than the newest are destroyed; else the newest is. */
    int (*settle)(yn_keystore *ks, bool keep);
    /* The public half of the key pair in use. */
    int (*public_key)(yn_keystore *ks, uint8_t pub[YN_KEYSTORE_PUB_LEN]);
    /* Put a secret key in, replacing any other (yn_keystore_store decides
     * whether it may, and checks the result). */
    int (*store)(yn_keystore *ks, enum yn_key_id id, const uint8_t *key, size_t len);
    /* Describe a secret key (never its value). */
    int (*inspect)(yn_keystore *ks, enum yn_key_id id, yn_keystore_key_info *info);
} yn_keystore_ops;

struct yn_keystore {
    const yn_keystore_ops *ops;
    void *priv;
    const yn_keys_conf *cfg;           /* names the public key files */
    char where[320];                   /* "key files" or "token 'L' (maker model) of MODULE" */
    char error[YN_KEYSTORE_ERROR_LEN]; /* why open failed, with what to do */
};

extern const yn_keystore_ops yn_keystore_file_ops;
extern const yn_keystore_ops yn_keystore_pkcs11_ops;

/* Open the backend board.conf [keys] names (ops NULL) or the one given. On
 * failure ks->error says why and what to do (also logged). A token is
 * opened and logged in; keys are looked up when first used. */
int yn_keystore_open(yn_keystore *ks, const yn_keystore_ops *ops,
                     const yn_keys_conf *cfg) YN_MUST_CHECK;
void yn_keystore_close(yn_keystore *ks);

/* AN10922 (hal/chips/an10922.h) under the card master key, M = uid ‖ aid ‖ sysid
 * of 16..31 bytes. The card format's inputs are firmware/core/card.h's
 * (yn_card_key: a terminal's card key of a UID); the caller wipes out. */
int yn_keystore_diversify(yn_keystore *ks, const uint8_t *uid, size_t uid_len, const uint8_t *aid,
                          size_t aid_len, const uint8_t *sysid, size_t sysid_len,
                          uint8_t out[YN_KEYSTORE_CARD_KEY_LEN]) YN_MUST_CHECK;
/* What the terminal key is: board.conf [keys] terminal_key_type. */
enum yn_key_type yn_keystore_terminal_type(const yn_keystore *ks);
/* HMAC-SHA256 under the terminal key (terminal_key_type = hmac; else
 * YN_ENOTSUP: a key-pair terminal has no shared key to MAC with). */
int yn_keystore_mac(yn_keystore *ks, const void *data, size_t len,
                    uint8_t out[YN_KEYSTORE_MAC_LEN]) YN_MUST_CHECK;
/* ECDSA P-256 over SHA-256(data) with the terminal's key pair, r ‖ s
 * (terminal_key_type = ecdsa-p256; else YN_ENOTSUP). */
int yn_keystore_sign(yn_keystore *ks, const void *data, size_t len,
                     uint8_t sig[YN_KEYSTORE_SIG_LEN]) YN_MUST_CHECK;
/* The public half of the terminal's key pair (the token's CKA_EC_POINT, or
 * derived from the key file): what the district enrolled. */
int yn_keystore_public_key(yn_keystore *ks, uint8_t pub[YN_KEYSTORE_PUB_LEN]) YN_MUST_CHECK;
/* The terminal's key pair (terminal_key_type = ecdsa-p256): the one there
 * if it works and not replace (*made false), else a new one generated inside
 * the keystore (*made true) — in a token the private half is sensitive, not
 * extractable, sign-only, and never exists outside it. A new pair is checked
 * (a token's attributes read back, a test signature verified under its
 * public key) before the older ones are destroyed. pub gets its public key;
 * made may be NULL. */
int yn_keystore_generate(yn_keystore *ks, bool replace, uint8_t pub[YN_KEYSTORE_PUB_LEN],
                         bool *made) YN_MUST_CHECK;
/* Store a secret key: afterwards the keystore holds exactly this key. The
 * same key stored already is YN_OK; another one is YN_EDUPLICATE unless
 * replace (enrolment replaces, a second provisioning does only with --force).
 * A token gets a sensitive, non-extractable, unmodifiable object, checked
 * after it is made (attributes read back, a test operation compared with
 * software); a file is written atomically with mode 0600. */
int yn_keystore_store(yn_keystore *ks, enum yn_key_id id, const uint8_t *key, size_t len,
                      bool replace) YN_MUST_CHECK;
/* What is known about a secret key (YN_EINVAL for a public id). */
int yn_keystore_inspect(yn_keystore *ks, enum yn_key_id id,
                        yn_keystore_key_info *info) YN_MUST_CHECK;
/* A public key's bytes (hex file decoded). Secret ids: YN_EPERM — secrets
 * are used through the operations above. */
int yn_keystore_load(yn_keystore *ks, enum yn_key_id id, uint8_t *buf, size_t cap,
                     size_t *len) YN_MUST_CHECK;
const char *yn_key_id_name(enum yn_key_id id);

/* Load one hex key file; a secret one must be a regular file owned by us with
 * no access for group or others. `what` names the key in log lines. */
int yn_key_file_load(const char *path, bool secret, const char *what, uint8_t *buf, size_t cap,
                     size_t *len) YN_MUST_CHECK;
/* Read a secret file as text (a token's PIN): checked as a secret key file,
 * at most cap - 1 bytes, trailing newlines removed. The caller wipes text. */
int yn_secret_file_text(const char *path, const char *what, char *text, size_t cap,
                        size_t *len) YN_MUST_CHECK;

#endif
