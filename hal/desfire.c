/* desfire.c — MIFARE DESFire EV1 secure messaging (AES-128), both sides.
 *
 * The reader (PCD) half drives a card through a transceive callback; the card
 * (PICC) half is what the emulator answers with. Both share the primitives
 * below, so a mistake in one shows up as a failed round trip in the unit test,
 * and the PCD half is also checked against the RFC 4493 vectors and OpenSSL.
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

static void rotl1(const uint8_t in[YN_DF_BLOCK], uint8_t out[YN_DF_BLOCK])
{
    uint8_t first = in[0];
    memmove(out, in + 1, YN_DF_BLOCK - 1);
    out[YN_DF_BLOCK - 1] = first;
}

static int default_random(uint8_t *buf, size_t n)
{
    return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

static void session_key(const uint8_t rnd_a[YN_DF_BLOCK], const uint8_t rnd_b[YN_DF_BLOCK],
                        yn_df_session *s, uint8_t key_no)
{
    memcpy(s->session_key, rnd_a, 4);
    memcpy(s->session_key + 4, rnd_b, 4);
    memcpy(s->session_key + 8, rnd_a + 12, 4);
    memcpy(s->session_key + 12, rnd_b + 12, 4);
    memset(s->iv, 0, sizeof s->iv);
    s->key_no = key_no;
    s->authenticated = true;
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
    if (!pcd->s.authenticated)
        return YN_OK;
    uint8_t mac[YN_DF_BLOCK];
    return yn_df_cmac(pcd->s.session_key, pcd->s.iv, cmd, n, mac);
}

/* Check and strip the 8-byte CMAC over data ‖ status of an answer. */
static int sm_answer_cmac(yn_df_pcd *pcd, uint8_t *data, size_t *len, uint8_t status)
{
    if (!pcd->s.authenticated)
        return YN_OK;
    if (*len < YN_DF_MAC_LEN || *len - YN_DF_MAC_LEN >= YN_DF_MSG_MAX)
        return YN_EPROTO;
    size_t n = *len - YN_DF_MAC_LEN;
    uint8_t msg[YN_DF_MSG_MAX], mac[YN_DF_BLOCK];
    memcpy(msg, data, n);
    msg[n] = status;
    int rc = yn_df_cmac(pcd->s.session_key, pcd->s.iv, msg, n + 1, mac);
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

int yn_df_authenticate_aes(yn_df_pcd *pcd, uint8_t key_no, const uint8_t key[YN_DF_KEY_LEN])
{
    session_drop(&pcd->s);
    uint8_t cmd[1 + 2 * YN_DF_BLOCK] = {YN_DF_CMD_AUTHENTICATE_AES, key_no};
    uint8_t rsp[YN_DF_MSG_MAX], st = 0, iv[YN_DF_BLOCK] = {0};
    uint8_t rnd_a[YN_DF_BLOCK], rnd_b[YN_DF_BLOCK], token[2 * YN_DF_BLOCK];
    size_t len = 0;
    int rc = exchange(pcd, cmd, 2, rsp, sizeof rsp, &len, &st, true);
    if (rc != YN_OK)
        return rc;
    if (st != YN_DF_ST_ADDITIONAL_FRAME)
        return status_result(pcd, st == YN_DF_ST_OK ? YN_DF_ST_INTEGRITY_ERROR : st);
    if (len != YN_DF_BLOCK)
        return YN_EPROTO;
    /* ek(RndB) → RndB; the ciphertext is the IV of our answer */
    memcpy(rnd_b, rsp, YN_DF_BLOCK);
    if ((rc = yn_df_cbc(key, iv, rnd_b, YN_DF_BLOCK, false)) != YN_OK)
        return rc;
    if ((rc = pcd_random(pcd, rnd_a, sizeof rnd_a)) != YN_OK)
        return rc;
    memcpy(token, rnd_a, YN_DF_BLOCK);
    rotl1(rnd_b, token + YN_DF_BLOCK);
    if ((rc = yn_df_cbc(key, iv, token, sizeof token, true)) != YN_OK)
        return rc;
    cmd[0] = YN_DF_CMD_ADDITIONAL_FRAME;
    memcpy(cmd + 1, token, sizeof token);
    rc = exchange(pcd, cmd, sizeof cmd, rsp, sizeof rsp, &len, &st, true);
    if (rc != YN_OK)
        return rc;
    if (st != YN_DF_ST_OK)
        return status_result(pcd, st == YN_DF_ST_ADDITIONAL_FRAME ? YN_DF_ST_INTEGRITY_ERROR : st);
    if (len != YN_DF_BLOCK)
        return YN_EPROTO;
    /* ek(RndA') must be our RndA rotated: the card knows the key */
    if ((rc = yn_df_cbc(key, iv, rsp, YN_DF_BLOCK, false)) != YN_OK)
        return rc;
    uint8_t want[YN_DF_BLOCK];
    rotl1(rnd_a, want);
    if (CRYPTO_memcmp(want, rsp, YN_DF_BLOCK) != 0)
        return YN_EAUTH;
    session_key(rnd_a, rnd_b, &pcd->s, key_no);
    OPENSSL_cleanse(rnd_a, sizeof rnd_a);
    OPENSSL_cleanse(rnd_b, sizeof rnd_b);
    return YN_OK;
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

/* --- PICC side --------------------------------------------------------- */

void yn_df_picc_init(yn_df_picc *c, const uint8_t *uid, size_t uid_len)
{
    memset(c, 0, sizeof *c);
    c->uid_len = uid_len > sizeof c->uid ? sizeof c->uid : uid_len;
    memcpy(c->uid, uid, c->uid_len);
    c->picc_settings = YN_DF_PICC_SETTINGS_FACTORY;
}

int yn_df_picc_app(yn_df_picc *c, const uint8_t aid[YN_DF_AID_LEN],
                   const uint8_t keys[][YN_DF_KEY_LEN], int n_keys)
{
    if (n_keys < 1 || n_keys > YN_DF_KEYS_MAX)
        return YN_EINVAL;
    memcpy(c->aid, aid, YN_DF_AID_LEN);
    c->key_settings = 0x09; /* firmware/CARD.md §5 */
    for (int i = 0; i < n_keys; i++)
        memcpy(c->keys[i], keys[i], YN_DF_KEY_LEN);
    c->n_keys = n_keys;
    return YN_OK;
}

yn_df_file *yn_df_picc_find_file(yn_df_picc *c, uint8_t file_no)
{
    for (int i = 0; i < c->n_files; i++)
        if (c->files[i].file_no == file_no)
            return &c->files[i];
    return NULL;
}

int yn_df_picc_file(yn_df_picc *c, const yn_df_file *settings, const uint8_t *data, size_t len)
{
    if (c->n_files >= YN_DF_FILES_MAX)
        return YN_ELIMIT;
    if (settings->size == 0 || settings->size > YN_DF_DATA_MAX || len > settings->size ||
        yn_df_picc_find_file(c, settings->file_no))
        return YN_EINVAL;
    yn_df_file *f = &c->files[c->n_files++];
    *f = *settings;
    memset(f->data, 0, sizeof f->data);
    if (len)
        memcpy(f->data, data, len);
    memcpy(f->mirror, f->data, sizeof f->mirror);
    f->dirty = false;
    return YN_OK;
}

static void picc_discard(yn_df_picc *c)
{
    for (int i = 0; i < c->n_files; i++)
        c->files[i].dirty = false;
}

/* Authentication lost: the session ends and an open transaction is aborted. */
static void picc_drop(yn_df_picc *c)
{
    session_drop(&c->s);
    c->auth_step = 0;
    picc_discard(c);
}

void yn_df_picc_reset(yn_df_picc *c)
{
    picc_drop(c);
    c->app_selected = false;
    c->in_len = c->in_need = 0;
    c->out_len = c->out_pos = 0;
    c->out_short_frames = 0;
}

static int picc_random(yn_df_picc *c, uint8_t *buf, size_t n)
{
    yn_df_random_fn fn = c->random ? c->random : default_random;
    return fn(buf, n) == 0 ? YN_OK : YN_EIO;
}

/* The logical answer of one command: status + data to be sent (chained). */
struct answer {
    uint8_t status;
    uint8_t data[YN_DF_MSG_MAX];
    size_t len;
};

static void answer_error(yn_df_picc *c, struct answer *a, uint8_t status)
{
    picc_drop(c);
    a->status = status;
    a->len = 0;
}

/* A successful answer: data is sent plain with a CMAC (authenticated), or
 * enciphered with a CRC, or plain (not authenticated). */
static void answer_ok(yn_df_picc *c, struct answer *a, const uint8_t *data, size_t n, bool encipher)
{
    a->status = YN_DF_ST_OK;
    a->len = 0;
    if (!c->s.authenticated) {
        if (n)
            memcpy(a->data, data, n);
        a->len = n;
        return;
    }
    if (encipher) {
        uint8_t st = YN_DF_ST_OK;
        memcpy(a->data, data, n);
        put_le32(a->data + n, crc_update(crc_update(0xFFFFFFFFu, data, n), &st, 1));
        size_t len = n + 4;
        while (len % YN_DF_BLOCK)
            a->data[len++] = 0x00;
        if (yn_df_cbc(c->s.session_key, c->s.iv, a->data, len, true) != YN_OK) {
            answer_error(c, a, YN_DF_ST_COMMAND_ABORTED);
            return;
        }
        a->len = len;
        return;
    }
    uint8_t msg[YN_DF_MSG_MAX], mac[YN_DF_BLOCK];
    if (n)
        memcpy(msg, data, n);
    msg[n] = YN_DF_ST_OK;
    if (yn_df_cmac(c->s.session_key, c->s.iv, msg, n + 1, mac) != YN_OK) {
        answer_error(c, a, YN_DF_ST_COMMAND_ABORTED);
        return;
    }
    if (n)
        memcpy(a->data, data, n);
    memcpy(a->data + n, mac, YN_DF_MAC_LEN);
    a->len = n + YN_DF_MAC_LEN;
}

/* Keep the IV in step with a plain command the PCD CMAC'd. */
static void picc_command_cmac(yn_df_picc *c, const uint8_t *cmd, size_t n)
{
    uint8_t mac[YN_DF_BLOCK];
    if (c->s.authenticated && yn_df_cmac(c->s.session_key, c->s.iv, cmd, n, mac) != YN_OK)
        picc_drop(c);
}

/* May the session reach this file? *comm = the mode the data travels in. */
static bool picc_access(const yn_df_picc *c, const yn_df_file *f, bool write, uint8_t *comm)
{
    uint8_t k1 = write ? f->key_write : f->key_read, k2 = f->key_rw;
    if (c->s.authenticated && (c->s.key_no == k1 || c->s.key_no == k2)) {
        *comm = f->comm;
        return true;
    }
    if (k1 == YN_DF_ACCESS_FREE || k2 == YN_DF_ACCESS_FREE) {
        *comm = YN_DF_COMM_PLAIN;
        return true;
    }
    return false;
}

/* Bytes a WriteData command carries in total, from its header, or 0 if the
 * header is short or the file unknown (then it is processed at once and fails). */
static size_t write_total_len(const yn_df_picc *c, const uint8_t *cmd, size_t n)
{
    if (n < 8)
        return 0;
    const yn_df_file *f = NULL;
    for (int i = 0; i < c->n_files; i++)
        if (c->files[i].file_no == cmd[1])
            f = &c->files[i];
    uint8_t comm = YN_DF_COMM_PLAIN;
    if (!f || !c->app_selected || !picc_access(c, f, true, &comm))
        return 0;
    size_t len = get_le24(cmd + 5);
    if (len == 0 || len > YN_DF_DATA_MAX)
        return 0;
    if (comm == YN_DF_COMM_ENCIPHERED)
        return 8 + (len + 4 + YN_DF_BLOCK - 1) / YN_DF_BLOCK * YN_DF_BLOCK;
    if (comm == YN_DF_COMM_MACED)
        return 8 + len + YN_DF_MAC_LEN;
    return 8 + len;
}

static void picc_select(yn_df_picc *c, const uint8_t *cmd, size_t n, struct answer *a)
{
    if (n != 1 + YN_DF_AID_LEN) {
        answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
        return;
    }
    picc_drop(c);
    static const uint8_t picc_level[YN_DF_AID_LEN] = {0, 0, 0};
    if (memcmp(cmd + 1, picc_level, YN_DF_AID_LEN) == 0) {
        c->app_selected = false;
    } else if (c->n_keys && memcmp(cmd + 1, c->aid, YN_DF_AID_LEN) == 0) {
        c->app_selected = true;
    } else {
        c->app_selected = false;
        answer_error(c, a, YN_DF_ST_APPLICATION_NOT_FOUND);
        return;
    }
    a->status = YN_DF_ST_OK;
    a->len = 0;
}

static void picc_read(yn_df_picc *c, const uint8_t *cmd, size_t n, struct answer *a)
{
    if (n != 8) {
        answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
        return;
    }
    picc_command_cmac(c, cmd, n);
    yn_df_file *f = c->app_selected ? yn_df_picc_find_file(c, cmd[1]) : NULL;
    uint8_t comm = YN_DF_COMM_PLAIN;
    if (!f) {
        answer_error(c, a, YN_DF_ST_FILE_NOT_FOUND);
        return;
    }
    if (!picc_access(c, f, false, &comm)) {
        answer_error(c, a, YN_DF_ST_PERMISSION_DENIED);
        return;
    }
    size_t off = get_le24(cmd + 2), len = get_le24(cmd + 5);
    if (off > f->size || len > f->size - off) {
        answer_error(c, a, YN_DF_ST_BOUNDARY_ERROR);
        return;
    }
    if (len == 0)
        len = f->size - off;
    answer_ok(c, a, f->data + off, len, comm == YN_DF_COMM_ENCIPHERED);
}

static void picc_write(yn_df_picc *c, const uint8_t *cmd, size_t n, struct answer *a)
{
    if (n < 8) {
        answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
        return;
    }
    yn_df_file *f = c->app_selected ? yn_df_picc_find_file(c, cmd[1]) : NULL;
    uint8_t comm = YN_DF_COMM_PLAIN;
    if (!f) {
        answer_error(c, a, YN_DF_ST_FILE_NOT_FOUND);
        return;
    }
    if (!picc_access(c, f, true, &comm)) {
        answer_error(c, a, YN_DF_ST_PERMISSION_DENIED);
        return;
    }
    size_t off = get_le24(cmd + 2), len = get_le24(cmd + 5), body = n - 8;
    uint8_t plain[YN_DF_MSG_MAX];
    if (len == 0 || len > YN_DF_DATA_MAX) {
        answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
        return;
    }
    if (comm == YN_DF_COMM_ENCIPHERED) {
        if (body == 0 || body % YN_DF_BLOCK != 0 || len + 4 > body ||
            body - (len + 4) >= YN_DF_BLOCK) {
            answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
            return;
        }
        memcpy(plain, cmd + 8, body);
        if (yn_df_cbc(c->s.session_key, c->s.iv, plain, body, false) != YN_OK) {
            answer_error(c, a, YN_DF_ST_COMMAND_ABORTED);
            return;
        }
        uint32_t crc = crc_update(crc_update(0xFFFFFFFFu, cmd, 8), plain, len);
        bool ok = crc == get_le32(plain + len);
        for (size_t i = len + 4; i < body; i++)
            ok = ok && plain[i] == 0x00;
        if (!ok) {
            answer_error(c, a, YN_DF_ST_INTEGRITY_ERROR);
            return;
        }
    } else if (comm == YN_DF_COMM_MACED) {
        uint8_t mac[YN_DF_BLOCK];
        if (body != len + YN_DF_MAC_LEN ||
            yn_df_cmac(c->s.session_key, c->s.iv, cmd, n - YN_DF_MAC_LEN, mac) != YN_OK ||
            CRYPTO_memcmp(mac, cmd + n - YN_DF_MAC_LEN, YN_DF_MAC_LEN) != 0) {
            answer_error(c, a, YN_DF_ST_INTEGRITY_ERROR);
            return;
        }
        memcpy(plain, cmd + 8, len);
    } else {
        if (body != len) {
            answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
            return;
        }
        picc_command_cmac(c, cmd, n);
        memcpy(plain, cmd + 8, len);
    }
    if (off > f->size || len > f->size - off) {
        answer_error(c, a, YN_DF_ST_BOUNDARY_ERROR);
        return;
    }
    if (f->type == YN_DF_FILE_BACKUP) {
        if (!f->dirty)
            memcpy(f->mirror, f->data, f->size);
        memcpy(f->mirror + off, plain, len);
        f->dirty = true;
    } else {
        memcpy(f->data + off, plain, len);
    }
    answer_ok(c, a, NULL, 0, false);
}

static void picc_commit(yn_df_picc *c, const uint8_t *cmd, size_t n, bool commit, struct answer *a)
{
    if (n != 1) {
        answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
        return;
    }
    picc_command_cmac(c, cmd, n);
    for (int i = 0; i < c->n_files; i++) {
        yn_df_file *f = &c->files[i];
        if (f->dirty && commit)
            memcpy(f->data, f->mirror, f->size);
        f->dirty = false;
    }
    answer_ok(c, a, NULL, 0, false);
}

static void picc_get_version(yn_df_picc *c, const uint8_t *cmd, size_t n, struct answer *a)
{
    if (n != 1) {
        answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
        return;
    }
    picc_command_cmac(c, cmd, n);
    /* hardware and software: NXP, DESFire, v1.0 (EV1), 4 kB, ISO 14443-2/3/4 */
    uint8_t v[28] = {0x04, 0x01, 0x01, 0x01, 0x00, 0x18, 0x05,
                     0x04, 0x01, 0x01, 0x01, 0x04, 0x18, 0x05};
    memcpy(v + 14, c->uid, c->uid_len);
    static const uint8_t batch[7] = {0xBA, 0x5E, 0x00, 0x00, 0x01, 0x12, 0x25};
    memcpy(v + 21, batch, sizeof batch);
    answer_ok(c, a, v, sizeof v, false);
    c->out_short_frames = a->status == YN_DF_ST_OK ? 2 : 0;
}

static void picc_file_settings(yn_df_picc *c, const uint8_t *cmd, size_t n, struct answer *a)
{
    if (n != 2) {
        answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
        return;
    }
    picc_command_cmac(c, cmd, n);
    const yn_df_file *f = c->app_selected ? yn_df_picc_find_file(c, cmd[1]) : NULL;
    if (!f) {
        answer_error(c, a, YN_DF_ST_FILE_NOT_FOUND);
        return;
    }
    uint8_t s[7] = {f->type, f->comm, (uint8_t)(f->key_rw << 4 | f->key_change),
                    (uint8_t)(f->key_read << 4 | f->key_write)};
    put_le24(s + 4, (uint32_t)f->size);
    answer_ok(c, a, s, sizeof s, false);
}

/* The key an authentication at the current level uses: the application's
 * key key_no, or the PICC master key at PICC level. */
static const uint8_t *picc_key_of(const yn_df_picc *c, uint8_t key_no)
{
    return c->app_selected ? c->keys[key_no] : c->picc_key;
}

/* Is the session the master key's of the current level (PICC or application)? */
static bool picc_master_session(const yn_df_picc *c)
{
    return c->s.authenticated && c->s.key_no == 0;
}

static void picc_app_ids(yn_df_picc *c, const uint8_t *cmd, size_t n, struct answer *a)
{
    if (n != 1) {
        answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
        return;
    }
    picc_command_cmac(c, cmd, n);
    if (c->app_selected ||
        (!(c->picc_settings & YN_DF_KS_FREE_LISTING) && !picc_master_session(c))) {
        answer_error(c, a, YN_DF_ST_PERMISSION_DENIED);
        return;
    }
    answer_ok(c, a, c->aid, c->n_keys ? YN_DF_AID_LEN : 0, false);
}

/* CreateApplication. This model holds one application: a second one is
 * "out of EEPROM". */
static void picc_create_app(yn_df_picc *c, const uint8_t *cmd, size_t n, struct answer *a)
{
    if (n != 1 + YN_DF_AID_LEN + 2) {
        answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
        return;
    }
    picc_command_cmac(c, cmd, n);
    uint8_t ks2 = cmd[5], n_keys = ks2 & 0x0F;
    static const uint8_t picc_level[YN_DF_AID_LEN] = {0, 0, 0};
    if (c->app_selected || (!(c->picc_settings & YN_DF_KS_FREE_CREATE) && !picc_master_session(c)))
        answer_error(c, a, YN_DF_ST_PERMISSION_DENIED);
    else if (c->n_keys && memcmp(c->aid, cmd + 1, YN_DF_AID_LEN) == 0)
        answer_error(c, a, YN_DF_ST_DUPLICATE_ERROR);
    else if (c->n_keys)
        answer_error(c, a, YN_DF_ST_OUT_OF_EEPROM);
    else if ((ks2 & 0xC0) != YN_DF_KS2_AES || n_keys == 0 || n_keys > 14 ||
             memcmp(cmd + 1, picc_level, YN_DF_AID_LEN) == 0)
        answer_error(c, a, YN_DF_ST_PARAMETER_ERROR);
    else if (n_keys > YN_DF_KEYS_MAX)
        answer_error(c, a, YN_DF_ST_OUT_OF_EEPROM);
    else {
        memcpy(c->aid, cmd + 1, YN_DF_AID_LEN);
        c->key_settings = cmd[4];
        memset(c->keys, 0, sizeof c->keys);
        c->n_keys = n_keys;
        c->n_files = 0;
        answer_ok(c, a, NULL, 0, false);
    }
}

static void picc_delete_app(yn_df_picc *c, const uint8_t *cmd, size_t n, struct answer *a)
{
    if (n != 1 + YN_DF_AID_LEN) {
        answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
        return;
    }
    picc_command_cmac(c, cmd, n);
    bool exists = c->n_keys && memcmp(c->aid, cmd + 1, YN_DF_AID_LEN) == 0;
    /* the PICC master key, or the application's own master key with it selected */
    if (!picc_master_session(c)) {
        answer_error(c, a, YN_DF_ST_PERMISSION_DENIED);
        return;
    }
    if (!exists) {
        answer_error(c, a,
                     c->app_selected ? YN_DF_ST_PERMISSION_DENIED : YN_DF_ST_APPLICATION_NOT_FOUND);
        return;
    }
    answer_ok(c, a, NULL, 0, false);
    memset(c->keys, 0, sizeof c->keys);
    c->n_keys = 0;
    c->n_files = 0;
    c->app_selected = false;
    session_drop(&c->s); /* the PCD selects 000000 again */
}

/* ChangeKey (AES), EV1: enciphered cryptogram under the session key. */
static void picc_change_key(yn_df_picc *c, const uint8_t *cmd, size_t n, struct answer *a)
{
    if (n != 2 + 2 * YN_DF_BLOCK) {
        answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
        return;
    }
    uint8_t key_no = cmd[1] & 0x0F, change = c->key_settings >> 4;
    if (!c->app_selected || !c->s.authenticated) {
        answer_error(c, a, YN_DF_ST_PERMISSION_DENIED);
        return;
    }
    if (key_no >= c->n_keys) {
        answer_error(c, a, YN_DF_ST_NO_SUCH_KEY);
        return;
    }
    bool same = key_no == c->s.key_no;
    bool allowed = key_no == 0      ? same && (c->key_settings & 0x01)
                   : change == 0x0E ? same
                   : change == 0x0F ? false
                                    : c->s.key_no == change;
    if (!allowed) {
        answer_error(c, a, YN_DF_ST_PERMISSION_DENIED);
        return;
    }
    uint8_t plain[2 + 2 * YN_DF_BLOCK], new_key[YN_DF_KEY_LEN];
    memcpy(plain, cmd, n);
    if (yn_df_cbc(c->s.session_key, c->s.iv, plain + 2, 2 * YN_DF_BLOCK, false) != YN_OK) {
        answer_error(c, a, YN_DF_ST_COMMAND_ABORTED);
        return;
    }
    const uint8_t *p = plain + 2;
    bool ok = yn_df_crc32(plain, 2 + 17) == get_le32(p + 17);
    for (int i = 0; i < YN_DF_KEY_LEN; i++)
        new_key[i] = same ? p[i] : (uint8_t)(p[i] ^ c->keys[key_no][i]);
    size_t end = 21;
    if (!same) {
        ok = ok && yn_df_crc32(new_key, YN_DF_KEY_LEN) == get_le32(p + 21);
        end = 25;
    }
    for (size_t i = end; i < 2 * YN_DF_BLOCK; i++)
        ok = ok && p[i] == 0x00;
    OPENSSL_cleanse(plain, sizeof plain);
    if (!ok) {
        OPENSSL_cleanse(new_key, sizeof new_key);
        answer_error(c, a, YN_DF_ST_INTEGRITY_ERROR);
        return;
    }
    memcpy(c->keys[key_no], new_key, YN_DF_KEY_LEN);
    OPENSSL_cleanse(new_key, sizeof new_key);
    if (same)
        picc_drop(c); /* the session key came from the old key: the answer is plain */
    answer_ok(c, a, NULL, 0, false);
}

static void picc_create_file(yn_df_picc *c, const uint8_t *cmd, size_t n, struct answer *a)
{
    if (n != 8) {
        answer_error(c, a, YN_DF_ST_LENGTH_ERROR);
        return;
    }
    picc_command_cmac(c, cmd, n);
    size_t size = get_le24(cmd + 5);
    yn_df_file f = {.file_no = cmd[1],
                    .type = cmd[0] == YN_DF_CMD_CREATE_BACKUP_DATA_FILE ? YN_DF_FILE_BACKUP
                                                                        : YN_DF_FILE_STANDARD,
                    .comm = cmd[2] & 0x03,
                    .key_rw = cmd[3] >> 4,
                    .key_change = cmd[3] & 0x0F,
                    .key_read = cmd[4] >> 4,
                    .key_write = cmd[4] & 0x0F,
                    .size = size};
    if (!c->app_selected || (!(c->key_settings & 0x04) && !picc_master_session(c)))
        answer_error(c, a, YN_DF_ST_PERMISSION_DENIED);
    else if (cmd[1] > 0x1F || size == 0)
        answer_error(c, a, YN_DF_ST_PARAMETER_ERROR);
    else if (yn_df_picc_find_file(c, cmd[1]))
        answer_error(c, a, YN_DF_ST_DUPLICATE_ERROR);
    else if (size > YN_DF_DATA_MAX || yn_df_picc_file(c, &f, NULL, 0) != YN_OK)
        answer_error(c, a, YN_DF_ST_OUT_OF_EEPROM);
    else
        answer_ok(c, a, NULL, 0, false);
}

/* First message of AuthenticateAES: ek(RndB). */
static void picc_auth1(yn_df_picc *c, const uint8_t *cmd, size_t n, uint8_t *st, uint8_t *rd,
                       size_t *rlen)
{
    picc_drop(c);
    if (n != 2) {
        *st = YN_DF_ST_LENGTH_ERROR;
        return;
    }
    if (c->app_selected ? cmd[1] >= c->n_keys : cmd[1] != 0) {
        *st = YN_DF_ST_NO_SUCH_KEY;
        return;
    }
    uint8_t iv[YN_DF_BLOCK] = {0};
    if (picc_random(c, c->rnd_b, YN_DF_BLOCK) != YN_OK) {
        *st = YN_DF_ST_COMMAND_ABORTED;
        return;
    }
    memcpy(rd, c->rnd_b, YN_DF_BLOCK);
    if (yn_df_cbc(picc_key_of(c, cmd[1]), iv, rd, YN_DF_BLOCK, true) != YN_OK) {
        *st = YN_DF_ST_COMMAND_ABORTED;
        return;
    }
    memcpy(c->auth_iv, iv, YN_DF_BLOCK);
    c->auth_key_no = cmd[1];
    c->auth_step = 1;
    *rlen = YN_DF_BLOCK;
    *st = YN_DF_ST_ADDITIONAL_FRAME;
}

/* Second message: check RndB', answer ek(RndA'), open the session. */
static void picc_auth2(yn_df_picc *c, const uint8_t *d, size_t n, uint8_t *st, uint8_t *rd,
                       size_t *rlen)
{
    c->auth_step = 0;
    if (n != 2 * YN_DF_BLOCK) {
        *st = YN_DF_ST_LENGTH_ERROR;
        return;
    }
    const uint8_t *key = picc_key_of(c, c->auth_key_no);
    uint8_t buf[2 * YN_DF_BLOCK], want[YN_DF_BLOCK];
    memcpy(buf, d, sizeof buf);
    if (yn_df_cbc(key, c->auth_iv, buf, sizeof buf, false) != YN_OK) {
        *st = YN_DF_ST_COMMAND_ABORTED;
        return;
    }
    rotl1(c->rnd_b, want);
    if (CRYPTO_memcmp(want, buf + YN_DF_BLOCK, YN_DF_BLOCK) != 0) {
        *st = YN_DF_ST_AUTHENTICATION_ERROR;
        return;
    }
    rotl1(buf, rd);
    if (yn_df_cbc(key, c->auth_iv, rd, YN_DF_BLOCK, true) != YN_OK) {
        *st = YN_DF_ST_COMMAND_ABORTED;
        return;
    }
    session_key(buf, c->rnd_b, &c->s, c->auth_key_no);
    OPENSSL_cleanse(buf, sizeof buf);
    *rlen = YN_DF_BLOCK;
    *st = YN_DF_ST_OK;
}

static void picc_process(yn_df_picc *c, const uint8_t *cmd, size_t n, struct answer *a)
{
    c->out_short_frames = 0;
    switch (cmd[0]) {
    case YN_DF_CMD_SELECT_APPLICATION:
        picc_select(c, cmd, n, a);
        break;
    case YN_DF_CMD_READ_DATA:
        picc_read(c, cmd, n, a);
        break;
    case YN_DF_CMD_WRITE_DATA:
        picc_write(c, cmd, n, a);
        break;
    case YN_DF_CMD_COMMIT:
        picc_commit(c, cmd, n, true, a);
        break;
    case YN_DF_CMD_ABORT:
        picc_commit(c, cmd, n, false, a);
        break;
    case YN_DF_CMD_GET_VERSION:
        picc_get_version(c, cmd, n, a);
        break;
    case YN_DF_CMD_GET_FILE_SETTINGS:
        picc_file_settings(c, cmd, n, a);
        break;
    case YN_DF_CMD_GET_APPLICATION_IDS:
        picc_app_ids(c, cmd, n, a);
        break;
    case YN_DF_CMD_CREATE_APPLICATION:
        picc_create_app(c, cmd, n, a);
        break;
    case YN_DF_CMD_DELETE_APPLICATION:
        picc_delete_app(c, cmd, n, a);
        break;
    case YN_DF_CMD_CHANGE_KEY:
        picc_change_key(c, cmd, n, a);
        break;
    case YN_DF_CMD_CREATE_STD_DATA_FILE:
    case YN_DF_CMD_CREATE_BACKUP_DATA_FILE:
        picc_create_file(c, cmd, n, a);
        break;
    default:
        answer_error(c, a, YN_DF_ST_ILLEGAL_COMMAND);
        break;
    }
}

/* Next frame of the pending answer. */
static void picc_next_chunk(yn_df_picc *c, uint8_t *st, uint8_t *rd, size_t *rlen)
{
    size_t max = YN_DF_RSP_FRAME_DATA;
    if (c->out_short_frames > 0) {
        max = 7;
        c->out_short_frames--;
    }
    size_t left = c->out_len - c->out_pos;
    size_t chunk = left < max ? left : max;
    memcpy(rd, c->out + c->out_pos, chunk);
    c->out_pos += chunk;
    *rlen = chunk;
    if (c->out_pos < c->out_len) {
        *st = YN_DF_ST_ADDITIONAL_FRAME;
    } else {
        *st = c->out_status;
        c->out_len = c->out_pos = 0;
    }
}

/* Run a complete command and start sending its answer. */
static void picc_run(yn_df_picc *c, const uint8_t *cmd, size_t n, uint8_t *st, uint8_t *rd,
                     size_t *rlen)
{
    struct answer a;
    picc_process(c, cmd, n, &a);
    memcpy(c->out, a.data, a.len);
    c->out_len = a.len;
    c->out_pos = 0;
    c->out_status = a.status;
    if (a.len == 0) {
        *st = a.status;
        *rlen = 0;
        return;
    }
    picc_next_chunk(c, st, rd, rlen);
}

static void picc_command(yn_df_picc *c, uint8_t ins, const uint8_t *d, size_t n, uint8_t *st,
                         uint8_t *rd, size_t *rlen)
{
    *rlen = 0;
    if (ins == YN_DF_CMD_ADDITIONAL_FRAME) {
        if (c->out_pos < c->out_len && n == 0) {
            picc_next_chunk(c, st, rd, rlen);
        } else if (c->in_need) {
            if (n > c->in_need - c->in_len) {
                c->in_need = c->in_len = 0;
                picc_drop(c);
                *st = YN_DF_ST_LENGTH_ERROR;
                return;
            }
            if (n)
                memcpy(c->in + c->in_len, d, n);
            c->in_len += n;
            if (c->in_len < c->in_need) {
                *st = YN_DF_ST_ADDITIONAL_FRAME;
                return;
            }
            c->in_need = 0;
            picc_run(c, c->in, c->in_len, st, rd, rlen);
        } else if (c->auth_step == 1) {
            picc_auth2(c, d, n, st, rd, rlen);
        } else {
            picc_drop(c);
            *st = YN_DF_ST_ILLEGAL_COMMAND;
        }
        return;
    }
    /* a new command cancels whatever was chained */
    c->out_len = c->out_pos = 0;
    c->in_need = c->in_len = 0;
    if (n + 1 > sizeof c->in) {
        picc_drop(c);
        *st = YN_DF_ST_LENGTH_ERROR;
        return;
    }
    c->in[0] = ins;
    if (n)
        memcpy(c->in + 1, d, n);
    c->in_len = n + 1;
    if (ins == YN_DF_CMD_AUTHENTICATE_AES) {
        picc_auth1(c, c->in, c->in_len, st, rd, rlen);
        return;
    }
    if (ins == YN_DF_CMD_WRITE_DATA) {
        size_t need = write_total_len(c, c->in, c->in_len);
        if (need > sizeof c->in) {
            picc_drop(c);
            *st = YN_DF_ST_LENGTH_ERROR;
            return;
        }
        if (need && c->in_len < need) {
            c->in_need = need;
            *st = YN_DF_ST_ADDITIONAL_FRAME;
            return;
        }
    }
    picc_run(c, c->in, c->in_len, st, rd, rlen);
}

int yn_df_picc_frame(yn_df_picc *c, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                     size_t *out_len)
{
    *out_len = 0;
    if (cap < YN_DF_FRAME_MAX)
        return YN_ELIMIT;
    uint8_t st = YN_DF_ST_OK, rd[YN_DF_FRAME_MAX];
    size_t rlen = 0;
    bool wrapped = in_len >= 5 && in[0] == 0x90 && in[2] == 0x00 && in[3] == 0x00;
    if (wrapped) {
        /* 90 INS 00 00 Le  |  90 INS 00 00 Lc data [Le] */
        size_t lc = in_len == 5 ? 0 : in[4];
        bool shape_ok = in_len == 5 || (lc > 0 && (in_len == 6 + lc || in_len == 5 + lc));
        if (!shape_ok) {
            picc_drop(c);
            st = YN_DF_ST_LENGTH_ERROR;
        } else {
            picc_command(c, in[1], lc ? in + 5 : NULL, lc, &st, rd, &rlen);
        }
        if (rlen)
            memcpy(out, rd, rlen);
        out[rlen] = 0x91;
        out[rlen + 1] = st;
        *out_len = rlen + 2;
        return YN_OK;
    }
    if (in_len == 0) {
        st = YN_DF_ST_LENGTH_ERROR;
    } else {
        picc_command(c, in[0], in + 1, in_len - 1, &st, rd, &rlen);
    }
    out[0] = st;
    if (rlen)
        memcpy(out + 1, rd, rlen);
    *out_len = rlen + 1;
    return YN_OK;
}
