/* an10922.c — NXP AN10922 AES-128 key diversification (a chip-level
 * primitive, as DESFire secure messaging is): the input D and the AN's CMAC'. */
#include "an10922.h"

#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

/* AES-128-CBC with a zero IV over n (multiple of 16) bytes: one block is ECB. */
static int aes_cbc_zero_iv(const uint8_t key[16], const uint8_t *in, int n, uint8_t *out)
{
    static const uint8_t zero_iv[16];
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int outl = 0, fin = 0;
    int ok = ctx && EVP_EncryptInit_ex(ctx, EVP_aes_128_cbc(), NULL, key, zero_iv) == 1 &&
             EVP_CIPHER_CTX_set_padding(ctx, 0) == 1 &&
             EVP_EncryptUpdate(ctx, out, &outl, in, n) == 1 &&
             EVP_EncryptFinal_ex(ctx, out + outl, &fin) == 1 && outl + fin == n;
    EVP_CIPHER_CTX_free(ctx);
    ERR_clear_error();
    return ok ? YN_OK : YN_ENOMEM;
}

/* Multiply by x in GF(2^128) (NIST SP 800-38B subkey generation). */
static void gf_double(const uint8_t in[16], uint8_t out[16])
{
    uint8_t carry = in[0] >> 7;
    for (int i = 0; i < 15; i++)
        out[i] = (uint8_t)(in[i] << 1 | in[i + 1] >> 7);
    out[15] = (uint8_t)(in[15] << 1);
    out[15] ^= (uint8_t)(0x87 & -carry);
}

int yn_an10922_input(const uint8_t *uid, size_t uid_len, const uint8_t *aid, size_t aid_len,
                     const uint8_t *sysid, size_t sysid_len, uint8_t d[YN_AN10922_INPUT_MAX],
                     size_t *d_len)
{
    *d_len = 0;
    if (!d || (!uid && uid_len) || (!aid && aid_len) || (!sysid && sysid_len))
        return YN_EINVAL;
    size_t m_len = uid_len + aid_len + sysid_len;
    if (m_len < 1 || m_len > YN_AN10922_INPUT_MAX - 1)
        return YN_EINVAL;
    size_t n = 0;
    d[n++] = 0x01;
    if (uid_len)
        memcpy(d + n, uid, uid_len);
    n += uid_len;
    if (aid_len)
        memcpy(d + n, aid, aid_len);
    n += aid_len;
    if (sysid_len)
        memcpy(d + n, sysid, sysid_len);
    *d_len = n + sysid_len;
    return YN_OK;
}

int yn_an10922_cmac(const uint8_t master[YN_AN10922_KEY_LEN], const uint8_t *d, size_t d_len,
                    uint8_t out[YN_AN10922_KEY_LEN])
{
    if (!master || !d || !out || d_len < 2 || d_len > YN_AN10922_INPUT_MAX)
        return YN_EINVAL;
    /* D padded to 32 bytes as AN10922 §2.2 says, whatever its length */
    uint8_t dp[YN_AN10922_INPUT_MAX] = {0};
    memcpy(dp, d, d_len);
    bool padded = d_len < sizeof dp;
    if (padded)
        // cppcheck-suppress arrayIndexOutOfBoundsCond ; padded means d_len < 32
        dp[d_len] = 0x80;

    uint8_t l[16], k1[16], k2[16], mac[32];
    static const uint8_t zero[16];
    int rc = aes_cbc_zero_iv(master, zero, 16, l);
    if (rc == YN_OK) {
        gf_double(l, k1);
        gf_double(k1, k2);
        const uint8_t *sub = padded ? k2 : k1;
        for (int i = 0; i < 16; i++)
            dp[16 + i] ^= sub[i];
        rc = aes_cbc_zero_iv(master, dp, 32, mac);
        if (rc == YN_OK)
            memcpy(out, mac + 16, YN_AN10922_KEY_LEN);
    }
    OPENSSL_cleanse(l, sizeof l);
    OPENSSL_cleanse(k1, sizeof k1);
    OPENSSL_cleanse(k2, sizeof k2);
    OPENSSL_cleanse(mac, sizeof mac);
    OPENSSL_cleanse(dp, sizeof dp);
    return rc;
}

int yn_an10922_diversify(const uint8_t master[YN_AN10922_KEY_LEN], const uint8_t *uid,
                         size_t uid_len, const uint8_t *aid, size_t aid_len, const uint8_t *sysid,
                         size_t sysid_len, uint8_t out[YN_AN10922_KEY_LEN])
{
    uint8_t d[YN_AN10922_INPUT_MAX];
    size_t d_len;
    if (!master || !out)
        return YN_EINVAL;
    int rc = yn_an10922_input(uid, uid_len, aid, aid_len, sysid, sysid_len, d, &d_len);
    if (rc == YN_OK)
        rc = yn_an10922_cmac(master, d, d_len, out);
    OPENSSL_cleanse(d, sizeof d);
    return rc;
}
