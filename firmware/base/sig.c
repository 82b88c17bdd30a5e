/* sig.c — ECDSA P-256 and Ed25519 through OpenSSL EVP (sig.h).
 *
 * OpenSSL speaks DER for ECDSA signatures (ECDSA-Sig-Value, SEQUENCE of two
 * INTEGERs); the wire and PKCS#11's CKM_ECDSA speak r ‖ s. The conversion is
 * OpenSSL's own ECDSA_SIG object, not a DER writer of ours. */
#include "sig.h"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "hex.h"

#define P256_HALF 32 /* bytes of r, of s, of a coordinate */

/* pub as an OpenSSL key of P-256; NULL when it is not a point of it. */
static EVP_PKEY *p256_key(const uint8_t *pub, size_t len)
{
    if (!pub || len != YN_SIG_P256_PUB_LEN || pub[0] != 0x04)
        return NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub, len),
        OSSL_PARAM_construct_end()};
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    /* on the curve, not the point at infinity, of the group's order */
    EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    bool ok = check && EVP_PKEY_public_check(check) == 1;
    EVP_PKEY_CTX_free(check);
    if (!ok) {
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

bool yn_sig_p256_pub_ok(const uint8_t *pub, size_t len)
{
    EVP_PKEY *key = p256_key(pub, len);
    EVP_PKEY_free(key);
    return key != NULL;
}

/* Whether key is an EC key on P-256. */
static bool is_p256(EVP_PKEY *key)
{
    char group[32] = "";
    size_t n = 0;
    return key && EVP_PKEY_is_a(key, "EC") &&
           EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                          &n) == 1 &&
           strcmp(group, "prime256v1") == 0;
}

int yn_sig_p256_verify(const uint8_t pub[YN_SIG_P256_PUB_LEN], const void *data, size_t len,
                       const uint8_t sig[YN_SIG_P256_LEN])
{
    EVP_PKEY *key = p256_key(pub, YN_SIG_P256_PUB_LEN);
    if (!key)
        return YN_EINVAL;
    int rc = YN_ENOMEM;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, P256_HALF, NULL), *s = BN_bin2bn(sig + P256_HALF, P256_HALF, NULL);
    unsigned char *der = NULL;
    int der_len = 0;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* es owns them */
        der_len = i2d_ECDSA_SIG(es, &der);
    }
    EVP_MD_CTX *ctx = der_len > 0 ? EVP_MD_CTX_new() : NULL;
    if (ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1)
        rc = EVP_DigestVerify(ctx, der, (size_t)der_len, data, len) == 1 ? YN_OK : YN_EAUTH;
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    EVP_PKEY_free(key);
    return rc;
}

int yn_sig_p256_sign(EVP_PKEY *key, const void *data, size_t len, uint8_t sig[YN_SIG_P256_LEN])
{
    memset(sig, 0, YN_SIG_P256_LEN);
    if (!is_p256(key))
        return YN_EINVAL;
    unsigned char der[80];
    size_t der_len = sizeof der;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = YN_ENOMEM;
    if (ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestSign(ctx, der, &der_len, data, len) == 1) {
        const unsigned char *p = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
        const BIGNUM *r = NULL, *s = NULL;
        if (es)
            ECDSA_SIG_get0(es, &r, &s);
        if (r && s && BN_bn2binpad(r, sig, P256_HALF) == P256_HALF &&
            BN_bn2binpad(s, sig + P256_HALF, P256_HALF) == P256_HALF)
            rc = YN_OK;
        ECDSA_SIG_free(es);
    }
    EVP_MD_CTX_free(ctx);
    if (rc != YN_OK)
        memset(sig, 0, YN_SIG_P256_LEN);
    return rc;
}

int yn_sig_p256_public(EVP_PKEY *key, uint8_t pub[YN_SIG_P256_PUB_LEN])
{
    size_t n = 0;
    memset(pub, 0, YN_SIG_P256_PUB_LEN);
    if (!is_p256(key))
        return YN_EINVAL;
    /* an EC key encodes its point uncompressed unless told otherwise */
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub,
                                        YN_SIG_P256_PUB_LEN, &n) != 1 ||
        n != YN_SIG_P256_PUB_LEN || pub[0] != 0x04) {
        memset(pub, 0, YN_SIG_P256_PUB_LEN);
        return YN_EINVAL;
    }
    return YN_OK;
}

void yn_sig_fingerprint(const uint8_t pub[YN_SIG_P256_PUB_LEN],
                        char out[YN_SIG_FINGERPRINT_LEN + 1])
{
    uint8_t h[SHA256_DIGEST_LENGTH];
    SHA256(pub, YN_SIG_P256_PUB_LEN, h);
    yn_hex_encode(h, YN_SIG_FINGERPRINT_LEN / 2, out);
}

int yn_sig_ed25519_sign(const uint8_t priv[YN_SIG_ED25519_KEY_LEN], const void *msg, size_t len,
                        uint8_t sig[YN_SIG_ED25519_LEN])
{
    EVP_PKEY *key =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, YN_SIG_ED25519_KEY_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t n = YN_SIG_ED25519_LEN;
    int rc = key && ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
                     EVP_DigestSign(ctx, sig, &n, msg, len) == 1 && n == YN_SIG_ED25519_LEN
                 ? YN_OK
                 : YN_ENOMEM;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    if (rc != YN_OK)
        memset(sig, 0, YN_SIG_ED25519_LEN);
    return rc;
}

int yn_sig_ed25519_verify(const uint8_t pub[YN_SIG_ED25519_KEY_LEN], const void *msg, size_t len,
                          const uint8_t sig[YN_SIG_ED25519_LEN])
{
    EVP_PKEY *key =
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, YN_SIG_ED25519_KEY_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = key && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
                     EVP_DigestVerify(ctx, sig, YN_SIG_ED25519_LEN, msg, len) == 1
                 ? YN_OK
                 : YN_EAUTH;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    return rc;
}
