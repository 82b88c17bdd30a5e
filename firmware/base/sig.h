/* sig.h — the public-key signatures the sync protocol uses, through
 * OpenSSL's EVP interface (no hand-written crypto):
 *
 *   ECDSA P-256 with SHA-256  a terminal's own key pair, generated in its
 *                             keystore (sync/PROTOCOL.md §10); a signature
 *                             travels as r ‖ s (32 bytes each, big-endian),
 *                             a public key as the uncompressed SEC1 point
 *                             04 ‖ X ‖ Y (65 bytes)
 *   Ed25519                   the district's key: update documents, and the
 *                             acknowledgements of key-pair terminals
 *
 * Pure code: no clock, no file. Verification refuses, never guesses: a
 * point not on the curve, r or s zero or not below the group order. */
#ifndef YN_SIG_H
#define YN_SIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define YN_SIG_P256_PUB_LEN    65 /* 04 ‖ X ‖ Y */
#define YN_SIG_P256_LEN        64 /* r ‖ s */
#define YN_SIG_ED25519_LEN     64
#define YN_SIG_ED25519_KEY_LEN 32 /* a private seed or a public key */
#define YN_SIG_FINGERPRINT_LEN 32 /* hex digits: the first 16 bytes of SHA-256(point) */

struct evp_pkey_st; /* OpenSSL's EVP_PKEY, for the callers that hold one */

/* ECDSA P-256 over SHA-256(data). YN_OK when sig verifies under pub;
 * YN_EAUTH when it does not; YN_EINVAL when pub is not a point of P-256;
 * YN_ENOMEM. */
int yn_sig_p256_verify(const uint8_t pub[YN_SIG_P256_PUB_LEN], const void *data, size_t len,
                       const uint8_t sig[YN_SIG_P256_LEN]) YN_MUST_CHECK;
/* Whether pub (len bytes) is an uncompressed point on P-256. */
bool yn_sig_p256_pub_ok(const uint8_t *pub, size_t len);
/* Sign SHA-256(data) with an EC P-256 private key held by OpenSSL (the file
 * keystore, tests): r ‖ s. YN_EINVAL for a key of another kind. */
int yn_sig_p256_sign(struct evp_pkey_st *key, const void *data, size_t len,
                     uint8_t sig[YN_SIG_P256_LEN]) YN_MUST_CHECK;
/* The public point of an EC P-256 key held by OpenSSL. */
int yn_sig_p256_public(struct evp_pkey_st *key, uint8_t pub[YN_SIG_P256_PUB_LEN]) YN_MUST_CHECK;
/* The public key's fingerprint as tools show it: the first 16 bytes of
 * SHA-256 of the 65-byte point, lowercase hex (the district logs the same). */
void yn_sig_fingerprint(const uint8_t pub[YN_SIG_P256_PUB_LEN],
                        char out[YN_SIG_FINGERPRINT_LEN + 1]);

/* Ed25519 of msg with the 32-byte seed priv; YN_ENOMEM on failure. */
int yn_sig_ed25519_sign(const uint8_t priv[YN_SIG_ED25519_KEY_LEN], const void *msg, size_t len,
                        uint8_t sig[YN_SIG_ED25519_LEN]) YN_MUST_CHECK;
/* YN_OK when sig is the signature of msg by pub's private half, else YN_EAUTH. */
int yn_sig_ed25519_verify(const uint8_t pub[YN_SIG_ED25519_KEY_LEN], const void *msg, size_t len,
                          const uint8_t sig[YN_SIG_ED25519_LEN]) YN_MUST_CHECK;

#endif
