/* keystore_int.h — what the keystore backends share (hal/keystore/keystore.c,
 * hal/keystore/keystore_pkcs11.c); not for firmware code. */
#ifndef YN_HAL_KEYSTORE_INT_H
#define YN_HAL_KEYSTORE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "keystore.h"

/* HMAC-SHA256 in software (OpenSSL), for the file backend and to check what
 * a token computes. */
int yn_ks_soft_mac(const uint8_t *key, size_t key_len, const void *data, size_t len,
                   uint8_t out[YN_KEYSTORE_MAC_LEN]) YN_MUST_CHECK;
/* Note why open failed in ks->error, and log it. */
void yn_ks_fail(yn_keystore *ks, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
