/* keystore.h — secret and public keys. The file backend reads key files named
 * in board.conf [keys]; secret files must be mode 0600/0400 and owned by the
 * process, re-checked at every load. Room for a SAM backend later. */
#ifndef YN_HAL_KEYSTORE_H
#define YN_HAL_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct yn_config;

enum yn_key_id {
    YN_KEYID_TERMINAL,     /* secret: HMAC key for batches (32 bytes) */
    YN_KEYID_CARD_MASTER,  /* secret: AN10922 master key (16 bytes) */
    YN_KEYID_ISSUER_PUB,   /* public: card issuer Ed25519 key(s) */
    YN_KEYID_DISTRICT_PUB, /* public: district Ed25519 key */
    YN_KEYID_COUNT
};

#define YN_KEY_MAX 4096

typedef struct yn_keystore yn_keystore;

typedef struct yn_keystore_ops {
    const char *name;
    int (*open)(yn_keystore *ks, const struct yn_config *cfg);
    void (*close)(yn_keystore *ks);
    /* Copy key material into buf. Files hold hex text (whitespace and '#'
     * comments allowed); the bytes returned are the decoded key. */
    int (*load)(yn_keystore *ks, enum yn_key_id id, uint8_t *buf, size_t cap, size_t *len);
} yn_keystore_ops;

struct yn_keystore {
    const yn_keystore_ops *ops;
    void *priv;
};

extern const yn_keystore_ops yn_keystore_file_ops;

int yn_keystore_open(yn_keystore *ks, const yn_keystore_ops *ops,
                     const struct yn_config *cfg) YN_MUST_CHECK;
void yn_keystore_close(yn_keystore *ks);
int yn_keystore_load(yn_keystore *ks, enum yn_key_id id, uint8_t *buf, size_t cap,
                     size_t *len) YN_MUST_CHECK;
const char *yn_key_id_name(enum yn_key_id id);
/* Load one hex key file; a secret one must be a regular file owned by us with
 * no access for group or others. `what` names the key in log lines. */
int yn_key_file_load(const char *path, bool secret, const char *what, uint8_t *buf, size_t cap,
                     size_t *len) YN_MUST_CHECK;
/* Decode hex text (whitespace and '#' comments skipped). */
int yn_hex_decode(const char *text, uint8_t *buf, size_t cap, size_t *len) YN_MUST_CHECK;

#endif
