/* an10922.h — NXP AN10922 §2.2 AES-128 key diversification: a per-card key
 * from a master key and the card's UID, application id and a system
 * identifier. Pure code (OpenSSL's AES); the card format's own inputs are
 * firmware/core/card.h's (yn_card_key_for_uid), a token's CMAC is hal/keystore/keystore.h's. */
#ifndef YN_HAL_AN10922_H
#define YN_HAL_AN10922_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define YN_AN10922_KEY_LEN   16 /* AES-128 master and diversified keys */
#define YN_AN10922_INPUT_MAX 32 /* bytes of D */

/* The diversification input D = 0x01 ‖ M, M = uid ‖ aid ‖ sysid of 1..31
 * bytes: *d_len = 2..32 bytes written to d. */
int yn_an10922_input(const uint8_t *uid, size_t uid_len, const uint8_t *aid, size_t aid_len,
                     const uint8_t *sysid, size_t sysid_len, uint8_t d[YN_AN10922_INPUT_MAX],
                     size_t *d_len) YN_MUST_CHECK;
/* The AN's CMAC' of D (2..32 bytes) under master: D padded to 32 bytes
 * (0x80 0x00…, subkey K2) unless it is exactly 32 (subkey K1). For D of
 * 17..32 bytes this equals standard AES-CMAC (NIST SP 800-38B) — what a
 * PKCS#11 token's CKM_AES_CMAC computes (hal/keystore/KEYSTORE.md). */
int yn_an10922_cmac(const uint8_t master[YN_AN10922_KEY_LEN], const uint8_t *d, size_t d_len,
                    uint8_t out[YN_AN10922_KEY_LEN]) YN_MUST_CHECK;
/* out = CMAC'(master, 0x01 ‖ uid ‖ aid ‖ sysid). */
int yn_an10922_diversify(const uint8_t master[YN_AN10922_KEY_LEN], const uint8_t *uid,
                         size_t uid_len, const uint8_t *aid, size_t aid_len, const uint8_t *sysid,
                         size_t sysid_len, uint8_t out[YN_AN10922_KEY_LEN]) YN_MUST_CHECK;

#endif
