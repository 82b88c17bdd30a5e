/* desfire.c — MIFARE DESFire EV1 secure messaging, the reader (PCD) side.
 *
 * It drives a card through a transceive callback. The card side it is tested
 * against is a separate implementation (tools/emu/df_card.c, never linked
 * into the daemon), and libfreefare in the conformance test; the primitives
 * are also checked against the RFC 4493 vectors and OpenSSL.
 *
 * Hostile cards: every length from the card is checked before use, answer
 * chaining is bounded (YN_DF_MSG_MAX bytes, a fixed number of frames), a MAC
 * or CRC that does not verify is YN_EPROTO, and any error drops the session. */
#include "desfire.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

/* Most frames an answer may be chained over before we call it a hostile card. */
#define MAX_ANSWER_FRAMES 16

/* --- primitives -------------------------------------------------------- */

static uint32_t crc_update(uint32_t crc, const uint8_t *data, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc;
}

uint32_t yn_df_crc32(const uint8_t *data, size_t n)
{
    return crc_update(0xFFFFFFFFu, data, n);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le24(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 3; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le24(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
}

int yn_df_cbc(const uint8_t key[YN_DF_KEY_LEN], uint8_t iv[YN_DF_BLOCK], uint8_t *buf, size_t n,
              bool encrypt)
{
    if (n % YN_DF_BLOCK != 0 || n > (size_t)YN_DF_MSG_MAX * 2)
        return YN_EINVAL;
    if (n == 0)
        return YN_OK;
    uint8_t next_iv[YN_DF_BLOCK];
    if (!encrypt)
        memcpy(next_iv, buf + n - YN_DF_BLOCK, YN_DF_BLOCK);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int out_len = 0;
    int ok = ctx && EVP_CipherInit_ex(ctx, EVP_aes_128_cbc(), NULL, key, iv, encrypt ? 1 : 0) &&
             EVP_CIPHER_CTX_set_padding(ctx, 0) &&
             EVP_CipherUpdate(ctx, buf, &out_len, buf, (int)n) && out_len == (int)n;
    EVP_CIPHER_CTX_free(ctx);
    if (!ok)
        return YN_EIO;
    memcpy(iv, encrypt ? buf + n - YN_DF_BLOCK : next_iv, YN_DF_BLOCK);
    return YN_OK;
}

/* Shift a block left by one bit; XOR 0x87 into the last byte if a one fell out
 * (RFC 4493 subkey generation). */
static void cmac_double(const uint8_t in[YN_DF_BLOCK], uint8_t out[YN_DF_BLOCK])
{
    uint8_t carry = 0;
    for (int i = YN_DF_BLOCK - 1; i >= 0; i--) {
        uint8_t b = in[i];
        out[i] = (uint8_t)(b << 1 | carry);
        carry = b >> 7;
    }
    if (in[0] & 0x80)
        out[YN_DF_BLOCK - 1] ^= 0x87;
}

int yn_df_cmac(const uint8_t key[YN_DF_KEY_LEN], uint8_t iv[YN_DF_BLOCK], const uint8_t *msg,
               size_t n, uint8_t mac[YN_DF_BLOCK])
{
    uint8_t buf[YN_DF_MSG_MAX + YN_DF_BLOCK];
    if (n > YN_DF_MSG_MAX)
        return YN_ELIMIT;
    uint8_t l[YN_DF_BLOCK] = {0}, zero_iv[YN_DF_BLOCK] = {0}, k1[YN_DF_BLOCK], k2[YN_DF_BLOCK];
    int rc = yn_df_cbc(key, zero_iv, l, YN_DF_BLOCK, true);
    if (rc != YN_OK)
        return rc;
    cmac_double(l, k1);
    cmac_double(k1, k2);
    if (n)
        memcpy(buf, msg, n);
    size_t len = n;
    const uint8_t *sub = k1;
    if (n == 0 || n % YN_DF_BLOCK != 0) {
        buf[len++] = 0x80;
        while (len % YN_DF_BLOCK)
            buf[len++] = 0x00;
        sub = k2;
    }
    for (int i = 0; i < YN_DF_BLOCK; i++)
        buf[len - YN_DF_BLOCK + i] ^= sub[i];
    rc = yn_df_cbc(key, iv, buf, len, true);
    OPENSSL_cleanse(l, sizeof l);
    if (rc == YN_OK)
        memmove(mac, iv, YN_DF_BLOCK);
    return rc;
}

static int default_random(uint8_t *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

static void session_drop(yn_df_session *s)
{
    OPENSSL_cleanse(s, sizeof *s);
    s->authenticated = false;
}

const char *yn_df_status_name(uint8_t status)
{
    switch (status) {
    case YN_DF_ST_OK:
        return "OPERATION_OK";
    case YN_DF_ST_OUT_OF_EEPROM:
        return "OUT_OF_EEPROM_ERROR";
    case YN_DF_ST_ILLEGAL_COMMAND:
        return "ILLEGAL_COMMAND_CODE";
    case YN_DF_ST_INTEGRITY_ERROR:
        return "INTEGRITY_ERROR";
    case YN_DF_ST_NO_SUCH_KEY:
        return "NO_SUCH_KEY";
    case YN_DF_ST_LENGTH_ERROR:
        return "LENGTH_ERROR";
    case YN_DF_ST_PERMISSION_DENIED:
        return "PERMISSION_DENIED";
    case YN_DF_ST_PARAMETER_ERROR:
        return "PARAMETER_ERROR";
    case YN_DF_ST_APPLICATION_NOT_FOUND:
        return "APPLICATION_NOT_FOUND";
    case YN_DF_ST_AUTHENTICATION_ERROR:
        return "AUTHENTICATION_ERROR";
    case YN_DF_ST_ADDITIONAL_FRAME:
        return "ADDITIONAL_FRAME";
    case YN_DF_ST_BOUNDARY_ERROR:
        return "BOUNDARY_ERROR";
    case YN_DF_ST_COMMAND_ABORTED:
        return "COMMAND_ABORTED";
    case YN_DF_ST_FILE_NOT_FOUND:
        return "FILE_NOT_FOUND";
    case YN_DF_ST_DUPLICATE_ERROR:
        return "DUPLICATE_ERROR";
    default:
        return "unknown status";
    }
}

int yn_df_status_to_yn(uint8_t status)
{
    switch (status) {
    case YN_DF_ST_OK:
        return YN_OK;
    case YN_DF_ST_AUTHENTICATION_ERROR:
        return YN_EAUTH;
    case YN_DF_ST_PERMISSION_DENIED:
        return YN_EPERM;
    case YN_DF_ST_NO_SUCH_KEY:
    case YN_DF_ST_APPLICATION_NOT_FOUND:
    case YN_DF_ST_FILE_NOT_FOUND:
        return YN_ENOTFOUND;
    case YN_DF_ST_BOUNDARY_ERROR:
        return YN_ELIMIT;
    case YN_DF_ST_OUT_OF_EEPROM:
        return YN_ENOSPC;
    case YN_DF_ST_ILLEGAL_COMMAND:
        return YN_ENOTSUP;
    case YN_DF_ST_PARAMETER_ERROR:
        return YN_EINVAL;
    case YN_DF_ST_DUPLICATE_ERROR:
        return YN_EDUPLICATE;
    default: /* INTEGRITY, LENGTH, COMMAND_ABORTED, an unexpected AF, garbage */
        return YN_EPROTO;
    }
}

/* --- DES, 2K3DES and 3K3DES next to AES (the PICC master key) ----------- */

static int blk_of(int cipher)
{
    return cipher == YN_DF_CIPHER_AES ? 16 : 8;
}

/* One block, ECB. DES runs as 2K3DES with both halves equal. */
static int ecb_any(int cipher, const uint8_t *key, const uint8_t *in, uint8_t *out, bool enc)
{
    uint8_t k[24];
    const EVP_CIPHER *ev = EVP_des_ede_ecb();
    if (cipher == YN_DF_CIPHER_AES) {
        ev = EVP_aes_128_ecb();
        memcpy(k, key, 16);
    } else if (cipher == YN_DF_CIPHER_3K3DES) {
        ev = EVP_des_ede3_ecb();
        memcpy(k, key, 24);
    } else if (cipher == YN_DF_CIPHER_DES) {
        memcpy(k, key, 8);
        memcpy(k + 8, key, 8);
    } else {
        memcpy(k, key, 16);
    }
    int len = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int ok = ctx && EVP_CipherInit_ex(ctx, ev, NULL, k, NULL, enc ? 1 : 0) &&
             EVP_CIPHER_CTX_set_padding(ctx, 0) &&
             EVP_CipherUpdate(ctx, out, &len, in, blk_of(cipher)) && len == blk_of(cipher);
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(k, sizeof k);
    return ok ? YN_OK : YN_EIO;
}

/* CBC over n bytes in place; *iv becomes the last ciphertext block. */
static int cbc_any(int cipher, const uint8_t *key, uint8_t *iv, uint8_t *p, size_t n, bool enc)
{
    size_t bs = (size_t)blk_of(cipher);
    uint8_t c[16];
    if (n % bs)
        return YN_EINVAL;
    for (size_t o = 0; o < n; o += bs) {
        int rc;
        if (enc) {
            for (size_t i = 0; i < bs; i++)
                p[o + i] ^= iv[i];
            rc = ecb_any(cipher, key, p + o, p + o, true);
            memcpy(iv, p + o, bs);
        } else {
            memcpy(c, p + o, bs);
            rc = ecb_any(cipher, key, p + o, p + o, false);
            for (size_t i = 0; i < bs; i++)
                p[o + i] ^= iv[i];
            memcpy(iv, c, bs);
        }
        if (rc != YN_OK)
            return rc;
    }
    return YN_OK;
}

/* The D40 "send mode": each block, xored with the previous result, goes
 * through the DEcryption (IV zero for every message). */
static int d40_send(int cipher, const uint8_t *key, uint8_t *p, size_t n)
{
    uint8_t prev[8] = {0};
    for (size_t o = 0; o + 8 <= n; o += 8) {
        for (int i = 0; i < 8; i++)
            p[o + (size_t)i] ^= prev[i];
        int rc = ecb_any(cipher, key, p + o, p + o, false);
        if (rc != YN_OK)
            return rc;
        memcpy(prev, p + o, 8);
    }
    return YN_OK;
}

/* CMAC (NIST SP 800-38B) for 8- or 16-byte blocks, chained from *iv. */
static int cmac_any(int cipher, const uint8_t *key, uint8_t *iv, const uint8_t *m, size_t n,
                    uint8_t *mac)
{
    if (cipher == YN_DF_CIPHER_AES)
        return yn_df_cmac(key, iv, m, n, mac);
    uint8_t l[8] = {0}, k1[8] = {0}, k2[8] = {0}, buf[YN_DF_MSG_MAX + 8];
    if (n > YN_DF_MSG_MAX)
        return YN_ELIMIT;
    int rc = ecb_any(cipher, key, l, l, true);
    if (rc != YN_OK)
        return rc;
    for (int pass = 0; pass < 2; pass++) { /* K1 = dbl(L), K2 = dbl(K1), R = 0x1B */
        const uint8_t *in = pass ? k1 : l;
        uint8_t *out = pass ? k2 : k1;
        for (int i = 0; i < 8; i++)
            out[i] = (uint8_t)(in[i] << 1 | (i < 7 ? in[i + 1] >> 7 : 0));
        if (in[0] & 0x80)
            out[7] ^= 0x1B;
    }
    size_t len = n;
    if (n)
        memcpy(buf, m, n);
    const uint8_t *sub = k1;
    if (n == 0 || n % 8) {
        buf[len++] = 0x80;
        while (len % 8)
            buf[len++] = 0;
        sub = k2;
    }
    for (int i = 0; i < 8; i++)
        buf[len - 8 + (size_t)i] ^= sub[i];
    rc = cbc_any(cipher, key, iv, buf, len, true);
    if (rc == YN_OK)
        memcpy(mac, iv, 8);
    return rc;
}

/* DES keys are 2K3DES keys with equal halves (the key version in the low
 * bits does not count). */
static int des_cipher_of(const uint8_t key[16])
{
    for (int i = 0; i < 8; i++)
        if ((key[i] & 0xFE) != (key[i + 8] & 0xFE))
            return YN_DF_CIPHER_2K3DES;
    return YN_DF_CIPHER_DES;
}

/* ISO/IEC 14443-3 CRC_A, the D40 scheme's CRC. */
static uint16_t crc16_a(const uint8_t *p, size_t n)
{
    uint16_t c = 0x6363;
    while (n--) {
        uint8_t b = (uint8_t)(*p++ ^ (uint8_t)c);
        b ^= (uint8_t)(b << 4);
        c = (uint16_t)((c >> 8) ^ ((uint16_t)b << 8) ^ ((uint16_t)b << 3) ^ (b >> 4));
    }
    return c;
}

/* --- PCD side ---------------------------------------------------------- */

void yn_df_pcd_init(yn_df_pcd *pcd, yn_df_transceive_fn xfer, void *io)
{
    memset(pcd, 0, sizeof *pcd);
    pcd->xfer = xfer;
    pcd->io = io;
}

void yn_df_pcd_reset(yn_df_pcd *pcd)
{
    session_drop(&pcd->s);
}

static int pcd_random(yn_df_pcd *pcd, uint8_t *buf, size_t n)
{
    yn_df_random_fn fn = pcd->random ? pcd->random : default_random;
    return fn(buf, n) == 0 ? YN_OK : YN_EIO;
}

/* One logical exchange. cmd = INS ‖ data is sent in wrapped frames of at most
 * YN_DF_CMD_FRAME_DATA data bytes (0xAF between them); the answer's frames are
 * collected while the card says 0xAF, unless af_final (authentication, where
 * 0xAF is the answer). *status = the last frame's status. */
static int exchange(yn_df_pcd *pcd, const uint8_t *cmd, size_t n, uint8_t *rsp, size_t cap,
                    size_t *rsp_len, uint8_t *status, bool af_final)
{
    uint8_t frame[YN_DF_FRAME_MAX], rx[YN_DF_FRAME_MAX + 8];
    size_t pos = 1, frames = 0;
    uint8_t ins = cmd[0];
    *rsp_len = 0;
    for (;;) {
        size_t chunk = n - pos < YN_DF_CMD_FRAME_DATA ? n - pos : YN_DF_CMD_FRAME_DATA;
        size_t f = 0;
        frame[f++] = 0x90;
        frame[f++] = ins;
        frame[f++] = 0x00;
        frame[f++] = 0x00;
        if (chunk) {
            frame[f++] = (uint8_t)chunk;
            memcpy(frame + f, cmd + pos, chunk);
            f += chunk;
        }
        frame[f++] = 0x00;
        pos += chunk;
        size_t rx_len = 0;
        int rc = pcd->xfer(pcd->io, frame, f, rx, sizeof rx, &rx_len);
        if (rc != YN_OK)
            return rc;
        if (rx_len < 2 || rx_len > sizeof rx || rx[rx_len - 2] != 0x91)
            return YN_EPROTO;
        uint8_t st = rx[rx_len - 1];
        size_t data_len = rx_len - 2;
        pcd->last_status = st;
        if (pos < n) {
            /* more of the command to send: the card must ask for it, empty-handed */
            if (st != YN_DF_ST_ADDITIONAL_FRAME) {
                *status = st;
                return YN_OK;
            }
            if (data_len != 0)
                return YN_EPROTO;
            ins = YN_DF_CMD_ADDITIONAL_FRAME;
            continue;
        }
        if (data_len > cap - *rsp_len)
            return YN_EPROTO;
        memcpy(rsp + *rsp_len, rx, data_len);
        *rsp_len += data_len;
        if (st != YN_DF_ST_ADDITIONAL_FRAME || af_final) {
            *status = st;
            return YN_OK;
        }
        if (++frames >= MAX_ANSWER_FRAMES)
            return YN_EPROTO;
        ins = YN_DF_CMD_ADDITIONAL_FRAME;
        n = pos; /* nothing more to send: the next frames are bare 0xAF */
    }
}

/* After authentication a plain command still runs through the CMAC, to keep
 * the IV in step with the card's. */
static int sm_command_cmac(yn_df_pcd *pcd, const uint8_t *cmd, size_t n)
{
    if (!pcd->s.authenticated || pcd->s.d40)
        return YN_OK; /* D40 (legacy) sessions MAC only MACed files */
    uint8_t mac[YN_DF_BLOCK];
    return cmac_any(pcd->s.cipher, pcd->s.session_key, pcd->s.iv, cmd, n, mac);
}

/* Check and strip the 8-byte CMAC over data ‖ status of an answer. */
static int sm_answer_cmac(yn_df_pcd *pcd, uint8_t *data, size_t *len, uint8_t status)
{
    if (!pcd->s.authenticated || pcd->s.d40)
        return YN_OK;
    if (*len < YN_DF_MAC_LEN || *len - YN_DF_MAC_LEN >= YN_DF_MSG_MAX)
        return YN_EPROTO;
    size_t n = *len - YN_DF_MAC_LEN;
    uint8_t msg[YN_DF_MSG_MAX], mac[YN_DF_BLOCK];
    memcpy(msg, data, n);
    msg[n] = status;
    int rc = cmac_any(pcd->s.cipher, pcd->s.session_key, pcd->s.iv, msg, n + 1, mac);
    if (rc != YN_OK)
        return rc;
    if (CRYPTO_memcmp(mac, data + n, YN_DF_MAC_LEN) != 0)
        return YN_EPROTO;
    *len = n;
    return YN_OK;
}

/* Decrypt an enciphered answer of exactly `expect` data bytes:
 * data ‖ CRC32(data ‖ status) ‖ zero padding. The length must be known: the
 * card sends none, and searching for the CRC is ambiguous — with the DESFire
 * CRC (no final XOR) a wrong position verifies about once in 40,000 reads
 * (measured), which would turn a genuine card into a "bad signature". */
static int sm_answer_decipher(yn_df_pcd *pcd, uint8_t *data, size_t *len, uint8_t status,
                              size_t expect)
{
    size_t n = *len;
    if (!pcd->s.authenticated || n == 0 || n % YN_DF_BLOCK != 0 || n > YN_DF_MSG_MAX ||
        expect + 4 > n || n - (expect + 4) >= YN_DF_BLOCK)
        return YN_EPROTO;
    int rc = yn_df_cbc(pcd->s.session_key, pcd->s.iv, data, n, false);
    if (rc != YN_OK)
        return rc;
    for (size_t i = expect + 4; i < n; i++)
        if (data[i] != 0x00)
            return YN_EPROTO;
    uint32_t crc = crc_update(crc_update(0xFFFFFFFFu, data, expect), &status, 1);
    if (crc != get_le32(data + expect))
        return YN_EPROTO;
    *len = expect;
    return YN_OK;
}

/* Common end of a command: a bad status drops the session and maps. */
static int fail(yn_df_pcd *pcd, int rc)
{
    session_drop(&pcd->s);
    return rc;
}

static int status_result(yn_df_pcd *pcd, uint8_t st)
{
    return st == YN_DF_ST_OK ? YN_OK : fail(pcd, yn_df_status_to_yn(st));
}

/* A command sent plain (CMAC'd for the IV when authenticated) whose answer
 * carries a CMAC when authenticated. */
static int plain_command(yn_df_pcd *pcd, const uint8_t *cmd, size_t n, uint8_t *rsp, size_t cap,
                         size_t *rsp_len)
{
    uint8_t st = 0;
    int rc = sm_command_cmac(pcd, cmd, n);
    if (rc == YN_OK)
        rc = exchange(pcd, cmd, n, rsp, cap, rsp_len, &st, false);
    if (rc != YN_OK)
        return fail(pcd, rc);
    if ((rc = status_result(pcd, st)) != YN_OK)
        return rc;
    if ((rc = sm_answer_cmac(pcd, rsp, rsp_len, st)) != YN_OK)
        return fail(pcd, rc);
    return YN_OK;
}

int yn_df_select_application(yn_df_pcd *pcd, const uint8_t aid[YN_DF_AID_LEN])
{
    uint8_t cmd[1 + YN_DF_AID_LEN] = {YN_DF_CMD_SELECT_APPLICATION};
    memcpy(cmd + 1, aid, YN_DF_AID_LEN);
    session_drop(&pcd->s); /* selecting resets authentication on the card too */
    uint8_t rsp[YN_DF_FRAME_MAX], st = 0;
    size_t len = 0;
    int rc = exchange(pcd, cmd, sizeof cmd, rsp, sizeof rsp, &len, &st, false);
    if (rc != YN_OK)
        return rc;
    if (st == YN_DF_ST_OK && len != 0)
        return YN_EPROTO;
    return status_result(pcd, st);
}

/* The three-pass authentication, every kind: legacy 0x0A (DES, 2K3DES: 8-byte
 * random numbers, D40 "send mode"), ISO 0x1A (3K3DES) and AES 0xAA (16-byte
 * random numbers, CBC with the IV chained over the three messages). The
 * session key interleaves RndA and RndB halves by cipher. */
static int authenticate(yn_df_pcd *pcd, uint8_t key_no, enum yn_df_cipher cipher,
                        const uint8_t *key)
{
    session_drop(&pcd->s);
    bool legacy = cipher == YN_DF_CIPHER_DES || cipher == YN_DF_CIPHER_2K3DES;
    size_t L = legacy ? 8 : 16; /* RndA/RndB length */
    uint8_t cmd[1 + 32] = {legacy                          ? 0x0A
                           : cipher == YN_DF_CIPHER_3K3DES ? 0x1A
                                                           : YN_DF_CMD_AUTHENTICATE_AES,
                           key_no};
    uint8_t rsp[YN_DF_MSG_MAX], st = 0, iv[YN_DF_BLOCK] = {0};
    uint8_t rnd_a[16], rnd_b[16], token[32], want[16];
    size_t len = 0;
    int rc = exchange(pcd, cmd, 2, rsp, sizeof rsp, &len, &st, true);
    if (rc != YN_OK)
        return rc;
    if (st != YN_DF_ST_ADDITIONAL_FRAME)
        return status_result(pcd, st == YN_DF_ST_OK ? YN_DF_ST_INTEGRITY_ERROR : st);
    if (len != L)
        return YN_EPROTO;
    memcpy(rnd_b, rsp, L);
    if ((rc = cbc_any(cipher, key, iv, rnd_b, L, false)) != YN_OK ||
        (rc = pcd_random(pcd, rnd_a, L)) != YN_OK)
        return rc;
    memcpy(token, rnd_a, L);
    memcpy(token + L, rnd_b + 1, L - 1);
    token[2 * L - 1] = rnd_b[0];
    rc =
        legacy ? d40_send(cipher, key, token, 2 * L) : cbc_any(cipher, key, iv, token, 2 * L, true);
    if (rc != YN_OK)
        return rc;
    cmd[0] = YN_DF_CMD_ADDITIONAL_FRAME;
    memcpy(cmd + 1, token, 2 * L);
    if ((rc = exchange(pcd, cmd, 1 + 2 * L, rsp, sizeof rsp, &len, &st, true)) != YN_OK)
        return rc;
    if (st != YN_DF_ST_OK)
        return status_result(pcd, st == YN_DF_ST_ADDITIONAL_FRAME ? YN_DF_ST_INTEGRITY_ERROR : st);
    if (len != L)
        return YN_EPROTO;
    if (legacy)
        memset(iv, 0, sizeof iv); /* D40: every message starts from a zero IV */
    if ((rc = cbc_any(cipher, key, iv, rsp, L, false)) != YN_OK)
        return rc;
    memcpy(want, rnd_a + 1, L - 1);
    want[L - 1] = rnd_a[0];
    if (CRYPTO_memcmp(want, rsp, L) != 0)
        return YN_EAUTH;
    yn_df_session *s = &pcd->s;
    memset(s, 0, sizeof *s);
    memcpy(s->session_key, rnd_a, 4);
    memcpy(s->session_key + 4, rnd_b, 4);
    if (cipher == YN_DF_CIPHER_2K3DES) {
        memcpy(s->session_key + 8, rnd_a + 4, 4);
        memcpy(s->session_key + 12, rnd_b + 4, 4);
    } else if (cipher == YN_DF_CIPHER_AES) {
        memcpy(s->session_key + 8, rnd_a + 12, 4);
        memcpy(s->session_key + 12, rnd_b + 12, 4);
    } else if (cipher == YN_DF_CIPHER_3K3DES) {
        memcpy(s->session_key + 8, rnd_a + 6, 4);
        memcpy(s->session_key + 12, rnd_b + 6, 4);
        memcpy(s->session_key + 16, rnd_a + 12, 4);
        memcpy(s->session_key + 20, rnd_b + 12, 4);
    }
    s->cipher = (uint8_t)cipher;
    s->d40 = legacy;
    s->key_no = key_no;
    s->authenticated = true;
    OPENSSL_cleanse(rnd_a, sizeof rnd_a);
    OPENSSL_cleanse(rnd_b, sizeof rnd_b);
    OPENSSL_cleanse(token, sizeof token);
    return YN_OK;
}

int yn_df_authenticate_aes(yn_df_pcd *pcd, uint8_t key_no, const uint8_t key[YN_DF_KEY_LEN])
{
    return authenticate(pcd, key_no, YN_DF_CIPHER_AES, key);
}

int yn_df_get_file_settings(yn_df_pcd *pcd, uint8_t file_no, yn_df_file_settings *out)
{
    uint8_t cmd[2] = {YN_DF_CMD_GET_FILE_SETTINGS, file_no}, rsp[YN_DF_FRAME_MAX];
    size_t n = 0;
    memset(out, 0, sizeof *out);
    int rc = plain_command(pcd, cmd, sizeof cmd, rsp, sizeof rsp, &n);
    if (rc != YN_OK)
        return rc;
    if (n < 4 || ((rsp[0] == YN_DF_FILE_STANDARD || rsp[0] == YN_DF_FILE_BACKUP) && n != 7))
        return fail(pcd, YN_EPROTO);
    out->type = rsp[0];
    out->comm = rsp[1] & 0x03;
    out->key_rw = rsp[2] >> 4;
    out->key_change = rsp[2] & 0x0F;
    out->key_read = rsp[3] >> 4;
    out->key_write = rsp[3] & 0x0F;
    out->size = n == 7 ? get_le24(rsp + 4) : 0;
    return YN_OK;
}

int yn_df_read_data(yn_df_pcd *pcd, uint8_t file_no, uint32_t offset, uint32_t length,
                    enum yn_df_comm comm, uint8_t *buf, size_t cap, size_t *len)
{
    *len = 0;
    if (offset > 0xFFFFFF || length > YN_DF_DATA_MAX)
        return YN_EINVAL;
    if (comm != YN_DF_COMM_PLAIN && !pcd->s.authenticated)
        return YN_EPERM;
    int rc;
    if (length == 0 && comm == YN_DF_COMM_ENCIPHERED) {
        /* "to the end of the file": learn how long that is, see sm_answer_decipher */
        yn_df_file_settings fs;
        if ((rc = yn_df_get_file_settings(pcd, file_no, &fs)) != YN_OK)
            return rc;
        if (fs.type > YN_DF_FILE_BACKUP || fs.size > YN_DF_DATA_MAX || offset >= fs.size)
            return fail(pcd, fs.size > YN_DF_DATA_MAX ? YN_ELIMIT : YN_EPROTO);
        length = fs.size - offset;
    }
    uint8_t cmd[8] = {YN_DF_CMD_READ_DATA, file_no};
    put_le24(cmd + 2, offset);
    put_le24(cmd + 5, length);
    uint8_t rsp[YN_DF_MSG_MAX], st = 0;
    size_t n = 0;
    rc = sm_command_cmac(pcd, cmd, sizeof cmd);
    if (rc == YN_OK)
        rc = exchange(pcd, cmd, sizeof cmd, rsp, sizeof rsp, &n, &st, false);
    if (rc != YN_OK)
        return fail(pcd, rc);
    if ((rc = status_result(pcd, st)) != YN_OK)
        return rc;
    if (comm == YN_DF_COMM_ENCIPHERED)
        rc = sm_answer_decipher(pcd, rsp, &n, st, length);
    else
        rc = sm_answer_cmac(pcd, rsp, &n, st);
    if (rc != YN_OK)
        return fail(pcd, rc);
    if ((length && n != length) || n > YN_DF_DATA_MAX)
        return fail(pcd, YN_EPROTO);
    if (n > cap)
        return YN_ELIMIT;
    memcpy(buf, rsp, n);
    *len = n;
    return YN_OK;
}

int yn_df_write_data(yn_df_pcd *pcd, uint8_t file_no, uint32_t offset, const uint8_t *data,
                     size_t len, enum yn_df_comm comm)
{
    if (offset > 0xFFFFFF || len == 0 || len > YN_DF_DATA_MAX)
        return YN_EINVAL;
    if (comm != YN_DF_COMM_PLAIN && !pcd->s.authenticated)
        return YN_EPERM;
    uint8_t cmd[YN_DF_MSG_MAX] = {YN_DF_CMD_WRITE_DATA, file_no};
    put_le24(cmd + 2, offset);
    put_le24(cmd + 5, (uint32_t)len);
    memcpy(cmd + 8, data, len);
    size_t n = 8 + len;
    int rc = YN_OK;
    if (comm == YN_DF_COMM_ENCIPHERED) {
        /* header ‖ E(data ‖ CRC32(INS ‖ header ‖ data) ‖ zero padding) */
        put_le32(cmd + n, yn_df_crc32(cmd, n));
        n += 4;
        while ((n - 8) % YN_DF_BLOCK)
            cmd[n++] = 0x00;
        rc = yn_df_cbc(pcd->s.session_key, pcd->s.iv, cmd + 8, n - 8, true);
    } else if (comm == YN_DF_COMM_MACED) {
        uint8_t mac[YN_DF_BLOCK];
        rc = yn_df_cmac(pcd->s.session_key, pcd->s.iv, cmd, n, mac);
        memcpy(cmd + n, mac, YN_DF_MAC_LEN);
        n += YN_DF_MAC_LEN;
    } else {
        rc = sm_command_cmac(pcd, cmd, n);
    }
    if (rc != YN_OK)
        return fail(pcd, rc);
    uint8_t rsp[YN_DF_FRAME_MAX], st = 0;
    size_t rsp_len = 0;
    rc = exchange(pcd, cmd, n, rsp, sizeof rsp, &rsp_len, &st, false);
    if (rc != YN_OK)
        return fail(pcd, rc);
    if ((rc = status_result(pcd, st)) != YN_OK)
        return rc;
    if ((rc = sm_answer_cmac(pcd, rsp, &rsp_len, st)) != YN_OK || rsp_len != 0)
        return fail(pcd, rc != YN_OK ? rc : YN_EPROTO);
    return YN_OK;
}

static int no_data_command(yn_df_pcd *pcd, uint8_t ins)
{
    uint8_t cmd[1] = {ins}, rsp[YN_DF_FRAME_MAX];
    size_t len = 0;
    int rc = plain_command(pcd, cmd, 1, rsp, sizeof rsp, &len);
    if (rc == YN_OK && len != 0)
        return fail(pcd, YN_EPROTO);
    return rc;
}

int yn_df_commit(yn_df_pcd *pcd)
{
    return no_data_command(pcd, YN_DF_CMD_COMMIT);
}

int yn_df_abort_transaction(yn_df_pcd *pcd)
{
    return no_data_command(pcd, YN_DF_CMD_ABORT);
}

int yn_df_get_version(yn_df_pcd *pcd, uint8_t *buf, size_t cap, size_t *len)
{
    uint8_t cmd[1] = {YN_DF_CMD_GET_VERSION}, rsp[YN_DF_MSG_MAX];
    size_t n = 0;
    *len = 0;
    int rc = plain_command(pcd, cmd, 1, rsp, sizeof rsp, &n);
    if (rc != YN_OK)
        return rc;
    if (n > cap)
        return YN_ELIMIT;
    memcpy(buf, rsp, n);
    *len = n;
    return YN_OK;
}

/* --- PCD side: the issuing desk ---------------------------------------- */

int yn_df_get_application_ids(yn_df_pcd *pcd, uint8_t (*aids)[YN_DF_AID_LEN], size_t max, size_t *n)
{
    uint8_t cmd[1] = {YN_DF_CMD_GET_APPLICATION_IDS}, rsp[YN_DF_MSG_MAX];
    size_t len = 0;
    *n = 0;
    int rc = plain_command(pcd, cmd, 1, rsp, sizeof rsp, &len);
    if (rc != YN_OK)
        return rc;
    if (len % YN_DF_AID_LEN != 0)
        return fail(pcd, YN_EPROTO);
    *n = len / YN_DF_AID_LEN;
    for (size_t i = 0; i < *n && i < max; i++)
        memcpy(aids[i], rsp + i * YN_DF_AID_LEN, YN_DF_AID_LEN);
    return *n > max ? YN_ELIMIT : YN_OK;
}

/* A plain command whose answer carries no data. */
static int no_answer_command(yn_df_pcd *pcd, const uint8_t *cmd, size_t n)
{
    uint8_t rsp[YN_DF_FRAME_MAX];
    size_t len = 0;
    int rc = plain_command(pcd, cmd, n, rsp, sizeof rsp, &len);
    if (rc == YN_OK && len != 0)
        return fail(pcd, YN_EPROTO);
    return rc;
}

int yn_df_create_application(yn_df_pcd *pcd, const uint8_t aid[YN_DF_AID_LEN], uint8_t key_settings,
                             uint8_t ks2)
{
    uint8_t cmd[1 + YN_DF_AID_LEN + 2] = {YN_DF_CMD_CREATE_APPLICATION};
    memcpy(cmd + 1, aid, YN_DF_AID_LEN);
    cmd[4] = key_settings;
    cmd[5] = ks2;
    return no_answer_command(pcd, cmd, sizeof cmd);
}

int yn_df_delete_application(yn_df_pcd *pcd, const uint8_t aid[YN_DF_AID_LEN])
{
    uint8_t cmd[1 + YN_DF_AID_LEN] = {YN_DF_CMD_DELETE_APPLICATION};
    memcpy(cmd + 1, aid, YN_DF_AID_LEN);
    int rc = no_answer_command(pcd, cmd, sizeof cmd);
    if (rc == YN_OK)
        session_drop(&pcd->s); /* callers select (000000) again before going on */
    return rc;
}

int yn_df_change_key_cryptogram(const uint8_t session_key[YN_DF_KEY_LEN], uint8_t iv[YN_DF_BLOCK],
                                uint8_t auth_key_no, uint8_t key_no,
                                const uint8_t new_key[YN_DF_KEY_LEN],
                                const uint8_t old_key[YN_DF_KEY_LEN], uint8_t key_version,
                                uint8_t out[2 * YN_DF_BLOCK])
{
    /* the CRC covers the command header too: C4 ‖ KeyNo ‖ key data ‖ version */
    uint8_t buf[2 + 2 * YN_DF_BLOCK] = {YN_DF_CMD_CHANGE_KEY, key_no};
    uint8_t *p = buf + 2;
    bool other = (key_no & 0x0F) != (auth_key_no & 0x0F);
    if (other && !old_key)
        return YN_EINVAL;
    for (int i = 0; i < YN_DF_KEY_LEN; i++)
        p[i] = other ? (uint8_t)(new_key[i] ^ old_key[i]) : new_key[i];
    p[16] = key_version;
    put_le32(p + 17, yn_df_crc32(buf, 2 + 17));
    size_t n = 21;
    if (other) { /* the card checks it has reconstructed the right new key */
        put_le32(p + n, yn_df_crc32(new_key, YN_DF_KEY_LEN));
        n += 4;
    }
    while (n < 2 * YN_DF_BLOCK)
        p[n++] = 0x00;
    int rc = yn_df_cbc(session_key, iv, p, 2 * YN_DF_BLOCK, true);
    if (rc == YN_OK)
        memcpy(out, p, 2 * YN_DF_BLOCK);
    OPENSSL_cleanse(buf, sizeof buf);
    return rc;
}

int yn_df_change_key(yn_df_pcd *pcd, uint8_t key_no, const uint8_t new_key[YN_DF_KEY_LEN],
                     const uint8_t old_key[YN_DF_KEY_LEN], uint8_t key_version)
{
    if (!pcd->s.authenticated)
        return YN_EPERM;
    bool same = (key_no & 0x0F) == (pcd->s.key_no & 0x0F);
    uint8_t cmd[2 + 2 * YN_DF_BLOCK] = {YN_DF_CMD_CHANGE_KEY, key_no};
    int rc = yn_df_change_key_cryptogram(pcd->s.session_key, pcd->s.iv, pcd->s.key_no, key_no,
                                         new_key, old_key, key_version, cmd + 2);
    if (rc != YN_OK)
        return fail(pcd, rc);
    uint8_t rsp[YN_DF_FRAME_MAX], st = 0;
    size_t len = 0;
    rc = exchange(pcd, cmd, sizeof cmd, rsp, sizeof rsp, &len, &st, false);
    OPENSSL_cleanse(cmd, sizeof cmd);
    if (rc != YN_OK)
        return fail(pcd, rc);
    if ((rc = status_result(pcd, st)) != YN_OK)
        return rc;
    if (same) {
        /* the session key belonged to the old key: the card ends the session
         * and answers without a CMAC */
        session_drop(&pcd->s);
        return len == 0 ? YN_OK : YN_EPROTO;
    }
    if ((rc = sm_answer_cmac(pcd, rsp, &len, st)) != YN_OK || len != 0)
        return fail(pcd, rc != YN_OK ? rc : YN_EPROTO);
    return YN_OK;
}

int yn_df_create_data_file(yn_df_pcd *pcd, uint8_t file_no, enum yn_df_file_type type,
                           enum yn_df_comm comm, uint8_t key_read, uint8_t key_write,
                           uint8_t key_rw, uint8_t key_change, uint32_t size)
{
    if (size == 0 || size > 0xFFFFFF || file_no > 0x1F ||
        (type != YN_DF_FILE_STANDARD && type != YN_DF_FILE_BACKUP))
        return YN_EINVAL;
    uint8_t cmd[8] = {type == YN_DF_FILE_BACKUP ? YN_DF_CMD_CREATE_BACKUP_DATA_FILE
                                                : YN_DF_CMD_CREATE_STD_DATA_FILE,
                      file_no, (uint8_t)comm, (uint8_t)((key_rw & 0x0F) << 4 | (key_change & 0x0F)),
                      (uint8_t)((key_read & 0x0F) << 4 | (key_write & 0x0F))};
    put_le24(cmd + 5, size);
    return no_answer_command(pcd, cmd, sizeof cmd);
}

/* --- PCD side: other PICC master key types ------------------------------ */

int yn_df_authenticate_des(yn_df_pcd *pcd, uint8_t key_no, enum yn_df_cipher cipher,
                           const uint8_t *key)
{
    session_drop(&pcd->s);
    if (cipher == YN_DF_CIPHER_AES)
        return YN_EINVAL;
    if (cipher != YN_DF_CIPHER_3K3DES)
        cipher = des_cipher_of(key); /* equal halves: the card runs single DES */
    return authenticate(pcd, key_no, cipher, key);
}

int yn_df_change_master_key_aes(yn_df_pcd *pcd, const uint8_t new_key[YN_DF_KEY_LEN],
                                uint8_t version)
{
    yn_df_session *s = &pcd->s;
    if (!s->authenticated || s->key_no != 0)
        return YN_EPERM;
    /* key number 0x80: key 0, the new key is AES; the session's own key, so
     * no XOR with the old key and one CRC */
    uint8_t cmd[2 + 32] = {YN_DF_CMD_CHANGE_KEY, 0x80}, *p = cmd + 2;
    memcpy(p, new_key, YN_DF_KEY_LEN);
    p[16] = version;
    size_t n;
    int rc;
    if (s->d40) {
        uint16_t crc = crc16_a(p, 17);
        p[17] = (uint8_t)crc;
        p[18] = (uint8_t)(crc >> 8);
        memset(p + 19, 0, 5);
        n = 24;
        rc = d40_send(s->cipher, s->session_key, p, n);
    } else {
        put_le32(p + 17, yn_df_crc32(cmd, 2 + 17));
        size_t bs = (size_t)blk_of(s->cipher);
        n = (21 + bs - 1) / bs * bs;
        memset(p + 21, 0, n - 21);
        rc = cbc_any(s->cipher, s->session_key, s->iv, p, n, true);
    }
    uint8_t rsp[YN_DF_FRAME_MAX], st = 0;
    size_t len = 0;
    if (rc == YN_OK)
        rc = exchange(pcd, cmd, 2 + n, rsp, sizeof rsp, &len, &st, false);
    OPENSSL_cleanse(cmd, sizeof cmd);
    session_drop(s); /* success or not, the old session key is gone */
    if (rc != YN_OK)
        return rc;
    return st == YN_DF_ST_OK ? (len == 0 ? YN_OK : YN_EPROTO) : yn_df_status_to_yn(st);
}
