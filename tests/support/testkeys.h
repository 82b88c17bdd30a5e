/* testkeys.h — a keystore for tests, with the backend the run asks for:
 * YN_KEYS_BACKEND=pkcs11 puts the keys into a throwaway SoftHSM2 token
 * (tools/softhsm-token, under the test's own directory); anything else, or
 * nothing, uses key files. The same tap, sync and diag tests run with both
 * (Makefile, tests/run-integration). */
#ifndef YN_TESTKEYS_H
#define YN_TESTKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "keystore.h"

typedef struct yn_testkeys {
    yn_config cfg;  /* [keys] as board.conf would have them (cfg must outlive ks) */
    yn_keystore ks; /* open */
} yn_testkeys;

/* "pkcs11" or "file", from YN_KEYS_BACKEND. */
const char *yn_testkeys_backend(void);
bool yn_testkeys_token(void);
/* The module SoftHSM2 installs (YN_SOFTHSM_MODULE overrides). */
const char *yn_testkeys_softhsm_module(void);
/* Set cfg's [keys] for the backend in dir (token: make it, SOFTHSM2_CONF set
 * for this process) without opening anything. YN_OK or a failure. */
int yn_testkeys_configure(yn_config *cfg, const char *dir);
/* The same with the backend named ("file" or "pkcs11"). A process has one
 * SoftHSM2 token store (SOFTHSM2_CONF is read once): a second keystore of a
 * test wants "file". */
int yn_testkeys_configure_as(yn_config *cfg, const char *backend, const char *dir);
/* The same into t->cfg, from the defaults. */
int yn_testkeys_config(yn_testkeys *t, const char *dir);
/* yn_testkeys_config, open the keystore, and store master (16 bytes, or
 * NULL) and terminal (or NULL) in it. Aborts the test program on failure. */
void yn_testkeys_open(yn_testkeys *t, const char *dir, const uint8_t *master,
                      const uint8_t *terminal, size_t terminal_len);
void yn_testkeys_open_as(yn_testkeys *t, const char *backend, const char *dir,
                         const uint8_t *master, const uint8_t *terminal, size_t terminal_len);
/* A keystore whose terminal key is a key pair ([keys] terminal_key_type =
 * ecdsa-p256) generated in it, with master (or NULL) stored; pub (or NULL)
 * gets the public key. Aborts the test program on failure. */
void yn_testkeys_open_pair(yn_testkeys *t, const char *backend, const char *dir,
                           const uint8_t *master, uint8_t pub[YN_KEYSTORE_PUB_LEN]);
void yn_testkeys_close(yn_testkeys *t);

#endif
