/* test_desfire.c — DESFire EV1 secure messaging: the primitives against known
 * vectors (CRC32, RFC 4493 CMAC, OpenSSL's own CMAC), and the reader
 * (hal/chips/desfire.c) against the independent emulated card (tools/emu/df_card.c)
 * in memory: authentication (AES, and DES/2K3DES/3K3DES at PICC level),
 * enciphered and MACed reads and writes, transactions, the card's access
 * rules, and a man in the middle who tampers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <string.h>

#include "desfire.h"
#include "emu/df_card.h"

static const uint8_t aid[3] = {0x4E, 0x59, 0xF5};
static const uint8_t card_key[16] = {0x10, 0x21, 0x32, 0x43, 0x54, 0x65, 0x76, 0x87,
                                     0x98, 0xA9, 0xBA, 0xCB, 0xDC, 0xED, 0xFE, 0x0F};
static const uint8_t master_key[16] = {0xA5, 0xA5, 0xA5, 0xA5, 0x01, 0x02, 0x03, 0x04,
                                       0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C};

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    for (const char *p = hex; p[0] && p[1]; p += 2) {
        unsigned v;
        sscanf(p, "%2x", &v);
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* --- primitives -------------------------------------------------------- */

static void test_crc32_known_string(void **state)
{
    (void)state;
    /* CRC-32/JAMCRC of "123456789": the IEEE CRC 0xCBF43926 without final XOR */
    assert_int_equal(yn_df_crc32((const uint8_t *)"123456789", 9), 0x340BC6D9u);
    assert_int_equal(yn_df_crc32(NULL, 0), 0xFFFFFFFFu);
}

static void test_cmac_rfc4493_vectors(void **state)
{
    (void)state;
    uint8_t key[16], msg[64], want[16], mac[16], iv[16];
    unhex("2b7e151628aed2a6abf7158809cf4f3c", key);
    unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
          "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
          msg);
    static const struct {
        size_t len;
        const char *tag;
    } v[] = {{0, "bb1d6929e95937287fa37d129b756746"},
             {16, "070a16b46b4d4144f79bdd9dd04a287c"},
             {40, "dfa66747de9ae63030ca32611497c827"},
             {64, "51f0bebf7e3b9d92fc49741779363cfe"}};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        memset(iv, 0, sizeof iv);
        unhex(v[i].tag, want);
        assert_int_equal(yn_df_cmac(key, iv, msg, v[i].len, mac), YN_OK);
        assert_memory_equal(mac, want, 16);
        assert_memory_equal(iv, want, 16); /* the tag becomes the next IV */
    }
}

static void evp_cmac(const uint8_t key[16], const uint8_t *msg, size_t n, uint8_t out[16])
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "CMAC", NULL);
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
    char cipher[] = "AES-128-CBC";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_CIPHER, cipher, 0),
                           OSSL_PARAM_construct_end()};
    size_t len = 0;
    assert_int_equal(EVP_MAC_init(ctx, key, 16, params), 1);
    assert_int_equal(EVP_MAC_update(ctx, msg, n), 1);
    assert_int_equal(EVP_MAC_final(ctx, out, &len, 16), 1);
    assert_int_equal(len, 16);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
}

/* Zero IV: identical to OpenSSL's EVP_MAC "CMAC". Chained IV V over a message of
 * at least one block equals the standard CMAC of the message whose first block
 * is XORed with V — which checks that the IV really enters the CBC chain. */
static void test_cmac_matches_openssl(void **state)
{
    (void)state;
    uint8_t msg[100], mac[16], ref[16], iv[16], chained_iv[16];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7 + 3);
    for (size_t n = 0; n <= sizeof msg; n += 3) {
        memset(iv, 0, sizeof iv);
        assert_int_equal(yn_df_cmac(card_key, iv, msg, n, mac), YN_OK);
        evp_cmac(card_key, msg, n, ref);
        assert_memory_equal(mac, ref, 16);
        if (n >= 16) {
            uint8_t x[100];
            memcpy(x, msg, n);
            for (int i = 0; i < 16; i++) {
                chained_iv[i] = (uint8_t)(0xC3 ^ i);
                x[i] ^= chained_iv[i];
            }
            assert_int_equal(yn_df_cmac(card_key, chained_iv, msg, n, mac), YN_OK);
            evp_cmac(card_key, x, n, ref);
            assert_memory_equal(mac, ref, 16);
        }
    }
}

static void test_cbc_round_trip_and_iv(void **state)
{
    (void)state;
    uint8_t buf[48], orig[48], iv_e[16] = {1}, iv_d[16] = {1};
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = orig[i] = (uint8_t)i;
    assert_int_equal(yn_df_cbc(card_key, iv_e, buf, sizeof buf, true), YN_OK);
    assert_memory_equal(iv_e, buf + 32, 16); /* IV = last ciphertext block */
    uint8_t last[16];
    memcpy(last, buf + 32, 16);
    assert_int_equal(yn_df_cbc(card_key, iv_d, buf, sizeof buf, false), YN_OK);
    assert_memory_equal(buf, orig, sizeof orig);
    assert_memory_equal(iv_d, last, 16);
    assert_int_equal(yn_df_cbc(card_key, iv_d, buf, 15, true), YN_EINVAL);
}

/* --- PCD ↔ PICC in memory ---------------------------------------------- */

enum tamper {
    T_NONE,
    T_ANSWER_LAST,
    T_ANSWER_FIRST,
    T_COMMAND_LAST,
    T_SHORT,
    T_NO_91,
    T_ENDLESS_AF
};

struct link {
    emu_df_card card;
    enum tamper tamper;
    int tamper_at;  /* tamper with the N-th frame from now (0 = next) */
    int frames;     /* frames moved */
    bool card_gone; /* transport: the card left */
};

static int link_xfer(void *io, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t rx_cap,
                     size_t *rx_len)
{
    struct link *l = io;
    uint8_t cmd[YN_DF_FRAME_MAX + 8];
    assert_true(tx_len <= YN_DF_CMD_FRAME_DATA + 6);
    if (l->card_gone)
        return YN_ECARDGONE;
    memcpy(cmd, tx, tx_len);
    bool hit = l->tamper != T_NONE && l->tamper_at-- == 0;
    if (hit && l->tamper == T_COMMAND_LAST)
        cmd[tx_len - 2] ^= 0x01;
    l->frames++;
    assert_true(rx_cap >= EMU_DF_FRAME_MAX);
    emu_df_frame(&l->card, cmd, tx_len, rx, rx_len);
    if (!hit)
        return YN_OK;
    switch (l->tamper) {
    case T_ANSWER_LAST:
        if (*rx_len > 2)
            rx[*rx_len - 3] ^= 0x40;
        break;
    case T_ANSWER_FIRST:
        rx[0] ^= 0x01;
        break;
    case T_SHORT:
        *rx_len = 1;
        break;
    case T_NO_91:
        rx[*rx_len - 2] = 0x90;
        break;
    case T_ENDLESS_AF:
        rx[0] = 0x55;
        rx[1] = 0x91;
        rx[2] = 0xAF;
        *rx_len = 3;
        l->tamper_at = 0; /* and again, forever */
        break;
    default:
        break;
    }
    return YN_OK;
}

static uint8_t fixed_byte;
static int fixed_random(uint8_t *buf, size_t n)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(fixed_byte + i);
    return 0;
}

static uint8_t record[116];

static void make_card(struct link *l, const uint8_t key1[16])
{
    static const uint8_t uid[7] = {0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66};
    memset(l, 0, sizeof *l);
    emu_df_init(&l->card, uid, sizeof uid);
    uint8_t keys[2][16];
    memcpy(keys[0], master_key, 16);
    memcpy(keys[1], key1, 16);
    assert_int_equal(
        emu_df_add_app(&l->card, aid, 0x0B, EMU_DF_KEY_AES, 2, (const uint8_t(*)[16])keys), 0);
    for (size_t i = 0; i < sizeof record; i++)
        record[i] = (uint8_t)(0xA0 + i);
    /* number, type, comm, R, W, RW, Change, size */
    assert_int_equal(emu_df_add_file(&l->card, aid, 1, EMU_DF_STD, 3, 1, 0, 0, 0, sizeof record,
                                     record, sizeof record),
                     0);
    assert_int_equal(emu_df_add_file(&l->card, aid, 2, EMU_DF_BACKUP, 3, 1, 1, 1, 0, 16, NULL, 0),
                     0);
    assert_int_equal(emu_df_add_file(&l->card, aid, 3, EMU_DF_STD, 1, 1, 1, 1, 0, 256, NULL, 0), 0);
    assert_int_equal(emu_df_add_file(&l->card, aid, 4, EMU_DF_STD, 0, YN_DF_ACCESS_FREE,
                                     YN_DF_ACCESS_NEVER, YN_DF_ACCESS_NEVER, 0, 4,
                                     (const uint8_t *)"OPEN", 4),
                     0);
}

/* The card's key k of our application, NULL when it is gone. */
static const uint8_t *app_key(const struct link *l, int k)
{
    for (int i = 0; i < EMU_DF_APPS; i++)
        if (l->card.apps[i].used && memcmp(l->card.apps[i].aid, aid, 3) == 0)
            return l->card.apps[i].keys[k].k;
    return NULL;
}

static void connect(struct link *l, yn_df_pcd *pcd, const uint8_t key[16])
{
    yn_df_pcd_init(pcd, link_xfer, l);
    assert_int_equal(yn_df_select_application(pcd, aid), YN_OK);
    assert_int_equal(yn_df_authenticate_aes(pcd, 1, key), YN_OK);
}

static void test_auth_round_trip_session_key(void **state)
{
    (void)state;
    struct link l;
    yn_df_pcd pcd;
    make_card(&l, card_key);
    yn_df_pcd_init(&pcd, link_xfer, &l);
    pcd.random = fixed_random;
    assert_int_equal(yn_df_select_application(&pcd, aid), YN_OK);
    fixed_byte = 0x00; /* RndA = 00 01 .. 0F; RndB is the card's */
    assert_int_equal(yn_df_authenticate_aes(&pcd, 1, card_key), YN_OK);
    assert_true(pcd.s.authenticated);
    assert_int_equal(l.card.sm, 2);
    assert_memory_equal(pcd.s.session_key, l.card.s_key, 16);
    assert_memory_equal(pcd.s.iv, l.card.s_iv, 16);
    /* key = A[0:4] B[0:4] A[12:16] B[12:16] */
    const uint8_t *b = l.card.a_rnd_b;
    const uint8_t want[16] = {0,  1,  2,  3,  b[0],  b[1],  b[2],  b[3],
                              12, 13, 14, 15, b[12], b[13], b[14], b[15]};
    assert_memory_equal(pcd.s.session_key, want, 16);
    assert_int_equal(l.frames, 3);
}

static void test_auth_random_sessions_differ(void **state)
{
    (void)state;
    struct link l;
    yn_df_pcd pcd;
    make_card(&l, card_key);
    connect(&l, &pcd, card_key);
    uint8_t first[16];
    memcpy(first, pcd.s.session_key, 16);
    assert_memory_equal(pcd.s.session_key, l.card.s_key, 16);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 1, card_key), YN_OK);
    assert_memory_not_equal(pcd.s.session_key, first, 16);
    assert_memory_equal(pcd.s.session_key, l.card.s_key, 16);
}

static void test_wrong_key_is_eauth(void **state)
{
    (void)state;
    struct link l;
    yn_df_pcd pcd;
    uint8_t clone_key[16];
    memcpy(clone_key, card_key, 16);
    clone_key[15] ^= 1;
    make_card(&l, clone_key); /* a clone: right everything, wrong key */
    yn_df_pcd_init(&pcd, link_xfer, &l);
    assert_int_equal(yn_df_select_application(&pcd, aid), YN_OK);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 1, card_key), YN_EAUTH);
    assert_int_equal(pcd.last_status, YN_DF_ST_AUTHENTICATION_ERROR);
    assert_false(pcd.s.authenticated);
    assert_int_equal(l.card.sm, 0);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 7, card_key), YN_ENOTFOUND);
    static const uint8_t other[3] = {1, 2, 3};
    assert_int_equal(yn_df_select_application(&pcd, other), YN_ENOTFOUND);
}

static void test_enciphered_read_of_chained_record(void **state)
{
    (void)state;
    struct link l;
    yn_df_pcd pcd;
    uint8_t buf[256];
    size_t len = 0;
    make_card(&l, card_key);
    connect(&l, &pcd, card_key);
    l.frames = 0;
    assert_int_equal(yn_df_read_data(&pcd, 1, 0, 0, YN_DF_COMM_ENCIPHERED, buf, sizeof buf, &len),
                     YN_OK);
    assert_int_equal(len, sizeof record);
    assert_memory_equal(buf, record, sizeof record);
    /* GetFileSettings, then 128 bytes of ciphertext in 59 + 59 + 10 */
    assert_int_equal(l.frames, 4);
    yn_df_file_settings fs;
    assert_int_equal(yn_df_get_file_settings(&pcd, 1, &fs), YN_OK);
    assert_int_equal(fs.type, YN_DF_FILE_STANDARD);
    assert_int_equal(fs.comm, YN_DF_COMM_ENCIPHERED);
    assert_int_equal(fs.size, sizeof record);
    assert_int_equal(fs.key_read, 1);
    assert_int_equal(fs.key_write, 0);
    /* a part, with its length known */
    assert_int_equal(yn_df_read_data(&pcd, 1, 10, 20, YN_DF_COMM_ENCIPHERED, buf, sizeof buf, &len),
                     YN_OK);
    assert_int_equal(len, 20);
    assert_memory_equal(buf, record + 10, 20);
    assert_memory_equal(pcd.s.iv, l.card.s_iv, 16);
    /* too small a buffer */
    assert_int_equal(yn_df_read_data(&pcd, 1, 0, 0, YN_DF_COMM_ENCIPHERED, buf, 50, &len),
                     YN_ELIMIT);
}

static void test_enciphered_write_commit_and_abort(void **state)
{
    (void)state;
    struct link l;
    yn_df_pcd pcd;
    uint8_t stamp[16], buf[32];
    size_t len = 0;
    make_card(&l, card_key);
    connect(&l, &pcd, card_key);
    for (int i = 0; i < 16; i++)
        stamp[i] = (uint8_t)(0x50 + i);
    assert_int_equal(yn_df_write_data(&pcd, 2, 0, stamp, 16, YN_DF_COMM_ENCIPHERED), YN_OK);
    /* not committed yet: a read gives the old content */
    assert_int_equal(yn_df_read_data(&pcd, 2, 0, 0, YN_DF_COMM_ENCIPHERED, buf, sizeof buf, &len),
                     YN_OK);
    assert_int_equal(len, 16);
    static const uint8_t zero[16] = {0};
    assert_memory_equal(buf, zero, 16);
    assert_int_equal(yn_df_commit(&pcd), YN_OK);
    assert_int_equal(yn_df_read_data(&pcd, 2, 0, 16, YN_DF_COMM_ENCIPHERED, buf, sizeof buf, &len),
                     YN_OK);
    assert_memory_equal(buf, stamp, 16);

    /* a write cut off before the commit (card left the field) leaves the old stamp */
    stamp[0] = 0xEE;
    assert_int_equal(yn_df_write_data(&pcd, 2, 0, stamp, 16, YN_DF_COMM_ENCIPHERED), YN_OK);
    emu_df_reset(&l.card);
    connect(&l, &pcd, card_key);
    assert_int_equal(yn_df_read_data(&pcd, 2, 0, 16, YN_DF_COMM_ENCIPHERED, buf, sizeof buf, &len),
                     YN_OK);
    assert_int_equal(buf[0], 0x50);

    /* abort discards as well */
    assert_int_equal(yn_df_write_data(&pcd, 2, 0, stamp, 16, YN_DF_COMM_ENCIPHERED), YN_OK);
    assert_int_equal(yn_df_abort_transaction(&pcd), YN_OK);
    assert_int_equal(yn_df_commit(&pcd), YN_OK);
    assert_int_equal(yn_df_read_data(&pcd, 2, 0, 16, YN_DF_COMM_ENCIPHERED, buf, sizeof buf, &len),
                     YN_OK);
    assert_int_equal(buf[0], 0x50);

    /* a write past the end of the file */
    assert_int_equal(yn_df_write_data(&pcd, 2, 8, stamp, 16, YN_DF_COMM_ENCIPHERED), YN_ELIMIT);
    assert_false(pcd.s.authenticated);
}

/* Whatever the data, "read to the end" returns exactly the file: the CRC
 * position is never guessed (a search would misplace it ~1 in 40,000 reads). */
static void test_read_to_end_never_misplaces_the_crc(void **state)
{
    (void)state;
    struct link l;
    yn_df_pcd pcd;
    uint8_t stamp[16], buf[64];
    size_t len = 0;
    uint32_t x = 7;
    make_card(&l, card_key);
    connect(&l, &pcd, card_key);
    for (int i = 0; i < 3000; i++) {
        for (int k = 0; k < 16; k++) {
            x = x * 1103515245u + 12345u;
            stamp[k] = (uint8_t)(x >> 16);
        }
        assert_int_equal(yn_df_write_data(&pcd, 2, 0, stamp, 16, YN_DF_COMM_ENCIPHERED), YN_OK);
        assert_int_equal(yn_df_commit(&pcd), YN_OK);
        assert_int_equal(
            yn_df_read_data(&pcd, 2, 0, 0, YN_DF_COMM_ENCIPHERED, buf, sizeof buf, &len), YN_OK);
        assert_int_equal(len, 16);
        assert_memory_equal(buf, stamp, 16);
    }
}

static void test_maced_long_write_is_chained(void **state)
{
    (void)state;
    struct link l;
    yn_df_pcd pcd;
    uint8_t data[200], buf[256];
    size_t len = 0;
    make_card(&l, card_key);
    connect(&l, &pcd, card_key);
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i ^ 0x5A);
    l.frames = 0;
    assert_int_equal(yn_df_write_data(&pcd, 3, 30, data, sizeof data, YN_DF_COMM_MACED), YN_OK);
    assert_true(l.frames >= 5); /* 7 + 200 + 8 bytes in frames of 48 */
    assert_int_equal(
        yn_df_read_data(&pcd, 3, 30, sizeof data, YN_DF_COMM_MACED, buf, sizeof buf, &len), YN_OK);
    assert_int_equal(len, sizeof data);
    assert_memory_equal(buf, data, sizeof data);
    /* and enciphered writes chain too (file 3 is MACed: the card refuses the mode mix) */
    assert_int_equal(yn_df_write_data(&pcd, 3, 0, data, 100, YN_DF_COMM_ENCIPHERED), YN_EPROTO);
}

static void test_access_rights(void **state)
{
    (void)state;
    struct link l;
    yn_df_pcd pcd;
    uint8_t buf[256];
    size_t len = 0;
    make_card(&l, card_key);
    yn_df_pcd_init(&pcd, link_xfer, &l);
    assert_int_equal(yn_df_select_application(&pcd, aid), YN_OK);
    /* not authenticated: the PCD refuses an enciphered read itself; plain is
     * refused by the card (AUTHENTICATION_ERROR: no session at all) */
    assert_int_equal(yn_df_read_data(&pcd, 1, 0, 0, YN_DF_COMM_ENCIPHERED, buf, sizeof buf, &len),
                     YN_EPERM);
    assert_int_equal(yn_df_read_data(&pcd, 1, 0, 0, YN_DF_COMM_PLAIN, buf, sizeof buf, &len),
                     YN_EAUTH);
    /* a free file reads plain */
    assert_int_equal(yn_df_read_data(&pcd, 4, 0, 0, YN_DF_COMM_PLAIN, buf, sizeof buf, &len),
                     YN_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, "OPEN", 4);
    /* key 1 may not write the record (issuer's key 0 only) */
    assert_int_equal(yn_df_authenticate_aes(&pcd, 1, card_key), YN_OK);
    assert_int_equal(yn_df_write_data(&pcd, 1, 0, buf, 4, YN_DF_COMM_ENCIPHERED), YN_EPERM);
    assert_int_equal(pcd.last_status, YN_DF_ST_PERMISSION_DENIED);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 1, card_key), YN_OK);
    assert_int_equal(yn_df_read_data(&pcd, 9, 0, 0, YN_DF_COMM_PLAIN, buf, sizeof buf, &len),
                     YN_ENOTFOUND);
    /* a free file read while authenticated: plain data, the answer CMAC'd */
    assert_int_equal(yn_df_authenticate_aes(&pcd, 1, card_key), YN_OK);
    assert_int_equal(yn_df_read_data(&pcd, 4, 0, 0, YN_DF_COMM_PLAIN, buf, sizeof buf, &len),
                     YN_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(pcd.s.iv, l.card.s_iv, 16);
}

static void test_get_version_chained_with_cmac(void **state)
{
    (void)state;
    struct link l;
    yn_df_pcd pcd;
    uint8_t buf[64];
    size_t len = 0;
    make_card(&l, card_key);
    yn_df_pcd_init(&pcd, link_xfer, &l);
    l.frames = 0;
    assert_int_equal(yn_df_get_version(&pcd, buf, sizeof buf, &len), YN_OK);
    assert_int_equal(len, 28);
    assert_int_equal(l.frames, 3); /* 7 + 7 + 14 like a real card */
    assert_int_equal(buf[0], 0x04);
    assert_memory_equal(buf + 14, l.card.uid, 7);
    connect(&l, &pcd, card_key);
    assert_int_equal(yn_df_get_version(&pcd, buf, sizeof buf, &len), YN_OK);
    assert_int_equal(len, 28);
    assert_true(pcd.s.authenticated);
}

/* A man in the middle flips a bit: every variant is refused, never accepted. */
static void test_tampered_frames_are_refused(void **state)
{
    (void)state;
    struct link l;
    yn_df_pcd pcd;
    uint8_t buf[256], stamp[16] = {1, 2, 3};
    size_t len = 0;
    static const enum tamper kinds[] = {T_ANSWER_LAST, T_ANSWER_FIRST, T_SHORT, T_NO_91,
                                        T_ENDLESS_AF};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        make_card(&l, card_key);
        connect(&l, &pcd, card_key);
        l.tamper = kinds[k];
        l.tamper_at = 0;
        assert_int_equal(
            yn_df_read_data(&pcd, 1, 0, 0, YN_DF_COMM_ENCIPHERED, buf, sizeof buf, &len),
            YN_EPROTO);
        assert_false(pcd.s.authenticated);
        /* the tampered stamp write: the MAC over the status, or the command */
        make_card(&l, card_key);
        connect(&l, &pcd, card_key);
        l.tamper = kinds[k];
        l.tamper_at = 0;
        assert_int_not_equal(yn_df_write_data(&pcd, 2, 0, stamp, 16, YN_DF_COMM_ENCIPHERED), YN_OK);
        /* a fresh session works again */
        l.tamper = T_NONE;
        connect(&l, &pcd, card_key);
        assert_int_equal(yn_df_commit(&pcd), YN_OK);
    }
    /* tampered command: the card refuses with INTEGRITY_ERROR, nothing written */
    make_card(&l, card_key);
    connect(&l, &pcd, card_key);
    l.tamper = T_COMMAND_LAST;
    l.tamper_at = 0;
    assert_int_equal(yn_df_write_data(&pcd, 2, 0, stamp, 16, YN_DF_COMM_ENCIPHERED), YN_EPROTO);
    assert_int_equal(pcd.last_status, YN_DF_ST_INTEGRITY_ERROR);
    connect(&l, &pcd, card_key);
    assert_int_equal(yn_df_commit(&pcd), YN_OK);
    assert_int_equal(yn_df_read_data(&pcd, 2, 0, 16, YN_DF_COMM_ENCIPHERED, buf, sizeof buf, &len),
                     YN_OK);
    static const uint8_t zero[16] = {0};
    assert_memory_equal(buf, zero, 16);
    /* MACed data with a flipped byte */
    l.tamper = T_ANSWER_FIRST;
    l.tamper_at = 0;
    assert_int_equal(yn_df_read_data(&pcd, 3, 0, 16, YN_DF_COMM_MACED, buf, sizeof buf, &len),
                     YN_EPROTO);
}

static void test_transport_errors_pass_through(void **state)
{
    (void)state;
    struct link l;
    yn_df_pcd pcd;
    uint8_t buf[256];
    size_t len = 0;
    make_card(&l, card_key);
    connect(&l, &pcd, card_key);
    l.card_gone = true;
    assert_int_equal(yn_df_read_data(&pcd, 1, 0, 0, YN_DF_COMM_ENCIPHERED, buf, sizeof buf, &len),
                     YN_ECARDGONE);
    assert_false(pcd.s.authenticated);
}

/* Garbage frames into the card never crash it and always get an answer. */
static void test_picc_survives_garbage(void **state)
{
    (void)state;
    struct link l;
    uint8_t in[80], out[YN_DF_FRAME_MAX + 8];
    size_t out_len;
    make_card(&l, card_key);
    uint32_t x = 12345;
    for (int round = 0; round < 5000; round++) {
        size_t n = (x >> 8) % sizeof in;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            in[i] = (uint8_t)(x >> 16);
        }
        if (n > 1 && round % 3 == 0)
            in[0] = 0x90; /* wrapped-looking */
        emu_df_frame(&l.card, in, n, out, &out_len);
        assert_true(out_len >= 1 && out_len <= YN_DF_FRAME_MAX);
        x = x * 1103515245u + 12345u;
    }
}

/* --- the issuing desk -------------------------------------------------- */

/* ChangeKey cryptograms against vectors computed independently (Python's
 * `cryptography` AES-CBC + zlib's CRC-32 without the final XOR, following the
 * EV1 rules: key ≠ session key: (new ⊕ old) ‖ version ‖ CRC32(C4 ‖ KeyNo ‖
 * that) ‖ CRC32(new); same key: new ‖ version ‖ CRC32(C4 ‖ KeyNo ‖ that);
 * zero padding to 32 bytes, AES-CBC under the session key from the IV). */
static void test_change_key_cryptogram_vectors(void **state)
{
    (void)state;
    uint8_t sk[16], iv[16], new_key[16], old_key[16], out[32], want[32];
    static const uint8_t zero[16];
    static const struct {
        uint8_t auth_key_no, key_no, version;
        bool counting_old;
        const char *want;
    } v[] = {
        {0, 1, 0x01, false, "9ad3603092e634d56de87ae88da7c66128aaf35673bf5089e70f077773fe1185"},
        {0, 1, 0x05, true, "0d054e3d53c64135c44a4b80ece24e70504d2bbd3eb6057f182296ffd5f6fcc6"},
        {0, 0, 0x00, false, "9ad3603092e634d56de87ae88da7c661938675677002e3d76f0490f14aed6195"},
    };
    unhex("00112233445566778899aabbccddeeff", sk);
    unhex("9b13cb54d73af91e5d52897c9d339dc8", new_key);
    for (int i = 0; i < 16; i++)
        old_key[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        unhex("0f0e0d0c0b0a09080706050403020100", iv);
        unhex(v[i].want, want);
        assert_int_equal(yn_df_change_key_cryptogram(sk, iv, v[i].auth_key_no, v[i].key_no, new_key,
                                                     v[i].counting_old ? old_key : zero,
                                                     v[i].version, out),
                         YN_OK);
        assert_memory_equal(out, want, 32);
        assert_memory_equal(iv, want + 16, 16); /* the IV runs on */
    }
    /* another key without its old value cannot be changed */
    assert_int_equal(yn_df_change_key_cryptogram(sk, iv, 0, 1, new_key, NULL, 0, out), YN_EINVAL);
}

/* A factory-blank card personalised as yinian-card format does, then the
 * issuer writes the record with key 0 and a terminal (key 1) can read but
 * not write it. */
static void test_personalise_blank_card(void **state)
{
    (void)state;
    static const uint8_t uid[7] = {0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x67};
    static const uint8_t picc_level[3] = {0, 0, 0}, zero[16];
    struct link l;
    yn_df_pcd pcd;
    uint8_t aids[4][3], buf[256];
    size_t n = 0;
    memset(&l, 0, sizeof l);
    emu_df_init(&l.card, uid, sizeof uid);
    yn_df_pcd_init(&pcd, link_xfer, &l);
    assert_int_equal(yn_df_select_application(&pcd, aid), YN_ENOTFOUND);
    assert_int_equal(yn_df_select_application(&pcd, picc_level), YN_OK);
    assert_int_equal(yn_df_get_application_ids(&pcd, aids, 4, &n), YN_OK);
    assert_int_equal(n, 0);
    assert_int_equal(yn_df_create_application(&pcd, aid, 0x0B, YN_DF_KS2_AES | 2), YN_OK);
    assert_int_equal(yn_df_create_application(&pcd, aid, 0x0B, YN_DF_KS2_AES | 2), YN_EDUPLICATE);
    assert_int_equal(yn_df_get_application_ids(&pcd, aids, 4, &n), YN_OK);
    assert_int_equal(n, 1);
    assert_memory_equal(aids[0], aid, 3);
    assert_int_equal(yn_df_get_application_ids(&pcd, aids, 0, &n), YN_ELIMIT);
    /* a new application's keys are all zero; files need its master key */
    assert_int_equal(yn_df_select_application(&pcd, aid), YN_OK);
    assert_int_equal(yn_df_create_data_file(&pcd, 1, YN_DF_FILE_STANDARD, YN_DF_COMM_ENCIPHERED, 1,
                                            0, 0, 0, sizeof record),
                     YN_EAUTH);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 0, zero), YN_OK);
    assert_int_equal(yn_df_change_key(&pcd, 1, card_key, zero, 1), YN_OK);
    assert_true(pcd.s.authenticated); /* another key: the session goes on */
    assert_int_equal(yn_df_create_data_file(&pcd, 1, YN_DF_FILE_STANDARD, YN_DF_COMM_ENCIPHERED, 1,
                                            0, 0, 0, sizeof record),
                     YN_OK);
    assert_int_equal(
        yn_df_create_data_file(&pcd, 2, YN_DF_FILE_BACKUP, YN_DF_COMM_ENCIPHERED, 1, 1, 1, 0, 16),
        YN_OK);
    assert_int_equal(
        yn_df_create_data_file(&pcd, 2, YN_DF_FILE_BACKUP, YN_DF_COMM_ENCIPHERED, 1, 1, 1, 0, 16),
        YN_EDUPLICATE);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 0, zero), YN_OK);
    assert_int_equal(yn_df_change_key(&pcd, 0, master_key, NULL, 1), YN_OK);
    assert_false(pcd.s.authenticated); /* its own key: the session ends on both sides */
    assert_int_equal(l.card.sm, 0);
    assert_memory_equal(app_key(&l, 0), master_key, 16);
    assert_memory_equal(app_key(&l, 1), card_key, 16);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 0, zero), YN_EAUTH);
    /* the issuer writes the record with key 0 ... */
    for (size_t i = 0; i < sizeof record; i++)
        record[i] = (uint8_t)(0x30 + i);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 0, master_key), YN_OK);
    assert_int_equal(yn_df_write_data(&pcd, 1, 0, record, sizeof record, YN_DF_COMM_ENCIPHERED),
                     YN_OK);
    assert_int_equal(yn_df_commit(&pcd), YN_OK);
    /* ... the stamp is key 1's; key 0 may not touch it */
    assert_int_equal(yn_df_write_data(&pcd, 2, 0, zero, 16, YN_DF_COMM_ENCIPHERED), YN_EPERM);
    /* a terminal reads the record, and cannot forge it */
    assert_int_equal(yn_df_authenticate_aes(&pcd, 1, card_key), YN_OK);
    assert_int_equal(yn_df_read_data(&pcd, 1, 0, 0, YN_DF_COMM_ENCIPHERED, buf, sizeof buf, &n),
                     YN_OK);
    assert_int_equal(n, sizeof record);
    assert_memory_equal(buf, record, sizeof record);
    assert_int_equal(yn_df_write_data(&pcd, 1, 0, record, sizeof record, YN_DF_COMM_ENCIPHERED),
                     YN_EPERM);
    /* key settings 0x0B: free directory listing, so key 1 may ask GetFileSettings
     * (with 0x09 a card answers AUTHENTICATION_ERROR: test_directory_needs_key0) */
    yn_df_file_settings fs;
    assert_int_equal(yn_df_authenticate_aes(&pcd, 1, card_key), YN_OK);
    assert_int_equal(yn_df_get_file_settings(&pcd, 1, &fs), YN_OK);
    assert_int_equal(fs.size, sizeof record);
    /* nor change keys: key settings 0x_B leave that to key 0 */
    assert_int_equal(yn_df_authenticate_aes(&pcd, 1, card_key), YN_OK);
    assert_int_equal(yn_df_change_key(&pcd, 1, zero, card_key, 0), YN_EPERM);
    assert_memory_equal(app_key(&l, 1), card_key, 16);
}

/* The rule that broke 颐年卡 reads: with key settings 0x09 (bit 1 clear)
 * GetFileSettings needs the application master key; key 1 gets AE, and the
 * session is gone. */
static void test_directory_needs_key0(void **state)
{
    (void)state;
    struct link l;
    yn_df_pcd pcd;
    yn_df_file_settings fs;
    make_card(&l, card_key);
    l.card.apps[0].settings = 0x09;
    connect(&l, &pcd, card_key);
    assert_int_equal(yn_df_get_file_settings(&pcd, 1, &fs), YN_EAUTH);
    assert_int_equal(l.card.sm, 0);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 0, master_key), YN_OK);
    assert_int_equal(yn_df_get_file_settings(&pcd, 1, &fs), YN_OK);
    /* the record read with its known size needs no GetFileSettings */
    uint8_t buf[256];
    size_t n = 0;
    connect(&l, &pcd, card_key);
    assert_int_equal(
        yn_df_read_data(&pcd, 1, 0, sizeof record, YN_DF_COMM_ENCIPHERED, buf, sizeof buf, &n),
        YN_OK);
    assert_int_equal(n, sizeof record);
}

/* A factory card's PICC master key (DES, zero) authenticates with the legacy
 * command and becomes an AES key; 2K3DES and 3K3DES keys authenticate too. */
static void test_picc_key_types(void **state)
{
    (void)state;
    static const uint8_t picc_level[3] = {0, 0, 0}, zero[24];
    struct link l;
    yn_df_pcd pcd;
    uint8_t aids[4][3];
    size_t n = 0;
    make_card(&l, card_key);
    yn_df_pcd_init(&pcd, link_xfer, &l);
    assert_int_equal(yn_df_select_application(&pcd, picc_level), YN_OK);
    assert_int_equal(yn_df_authenticate_des(&pcd, 0, YN_DF_CIPHER_DES, master_key), YN_EAUTH);
    assert_int_equal(yn_df_select_application(&pcd, picc_level), YN_OK);
    assert_int_equal(yn_df_authenticate_des(&pcd, 0, YN_DF_CIPHER_DES, zero), YN_OK);
    assert_int_equal(yn_df_change_master_key_aes(&pcd, master_key, 7), YN_OK);
    assert_int_equal(l.card.picc_key_type, EMU_DF_KEY_AES);
    assert_int_equal(yn_df_select_application(&pcd, picc_level), YN_OK);
    assert_int_equal(yn_df_authenticate_des(&pcd, 0, YN_DF_CIPHER_DES, zero), YN_EAUTH);
    assert_int_equal(yn_df_select_application(&pcd, picc_level), YN_OK);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 0, master_key), YN_OK);
    assert_int_equal(yn_df_get_application_ids(&pcd, aids, 4, &n), YN_OK); /* CMAC'd */
    assert_int_equal(n, 1);
    /* 2K3DES (halves differ) with 0x0A; 3K3DES with 0x1A and EV1 (3DES CMAC) */
    uint8_t k2[16], k3[24];
    for (int i = 0; i < 24; i++)
        k3[i] = (uint8_t)(0x10 * i + 3);
    memcpy(k2, k3, 16);
    memcpy(l.card.picc_key.k, k2, 16);
    l.card.picc_key_type = EMU_DF_KEY_2K3DES;
    assert_int_equal(yn_df_select_application(&pcd, picc_level), YN_OK);
    assert_int_equal(yn_df_authenticate_des(&pcd, 0, YN_DF_CIPHER_2K3DES, k2), YN_OK);
    assert_int_equal(pcd.s.cipher, YN_DF_CIPHER_2K3DES);
    assert_int_equal(yn_df_get_application_ids(&pcd, aids, 4, &n), YN_OK);
    memcpy(l.card.picc_key.k, k3, 24);
    l.card.picc_key_type = EMU_DF_KEY_3K3DES;
    assert_int_equal(yn_df_select_application(&pcd, picc_level), YN_OK);
    assert_int_equal(yn_df_authenticate_des(&pcd, 0, YN_DF_CIPHER_3K3DES, k3), YN_OK);
    assert_false(pcd.s.d40);
    assert_int_equal(yn_df_get_application_ids(&pcd, aids, 4, &n), YN_OK); /* 3DES CMAC */
    assert_int_equal(yn_df_change_master_key_aes(&pcd, card_key, 1), YN_OK);
    assert_int_equal(yn_df_select_application(&pcd, picc_level), YN_OK);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 0, card_key), YN_OK);
}

static void test_change_key_tampered_and_delete(void **state)
{
    (void)state;
    static const uint8_t picc_level[3] = {0, 0, 0}, zero[16];
    struct link l;
    yn_df_pcd pcd;
    make_card(&l, card_key);
    yn_df_pcd_init(&pcd, link_xfer, &l);
    /* a flipped cryptogram byte: the card's CRC check refuses it, key unchanged */
    assert_int_equal(yn_df_select_application(&pcd, aid), YN_OK);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 0, master_key), YN_OK);
    l.tamper = T_COMMAND_LAST;
    l.tamper_at = 0;
    assert_int_equal(yn_df_change_key(&pcd, 1, zero, card_key, 0), YN_EPROTO);
    l.tamper = T_NONE;
    assert_memory_equal(app_key(&l, 1), card_key, 16);
    /* DeleteApplication: not with key 1, yes with the application's key 0 */
    assert_int_equal(yn_df_authenticate_aes(&pcd, 1, card_key), YN_OK);
    assert_int_equal(yn_df_delete_application(&pcd, aid), YN_EPERM);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 0, master_key), YN_OK);
    assert_int_equal(yn_df_delete_application(&pcd, aid), YN_OK);
    assert_null(app_key(&l, 0));
    assert_int_equal(yn_df_select_application(&pcd, aid), YN_ENOTFOUND);
    /* and at PICC level with the PICC master key (the factory key: DES, zero) */
    assert_int_equal(yn_df_select_application(&pcd, picc_level), YN_OK);
    assert_int_equal(yn_df_delete_application(&pcd, aid), YN_EAUTH);
    assert_int_equal(yn_df_create_application(&pcd, aid, 0x0B, YN_DF_KS2_AES | 2), YN_OK);
    assert_int_equal(yn_df_authenticate_aes(&pcd, 0, zero), YN_EAUTH); /* a DES key */
    assert_int_equal(yn_df_select_application(&pcd, picc_level), YN_OK);
    assert_int_equal(yn_df_authenticate_des(&pcd, 0, YN_DF_CIPHER_DES, zero), YN_OK);
    assert_true(pcd.s.d40);
    assert_int_equal(yn_df_delete_application(&pcd, aid), YN_OK);
    assert_int_equal(yn_df_select_application(&pcd, picc_level), YN_OK);
    assert_int_equal(yn_df_authenticate_des(&pcd, 0, YN_DF_CIPHER_DES, zero), YN_OK);
    assert_int_equal(yn_df_delete_application(&pcd, aid), YN_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32_known_string),
        cmocka_unit_test(test_cmac_rfc4493_vectors),
        cmocka_unit_test(test_cmac_matches_openssl),
        cmocka_unit_test(test_cbc_round_trip_and_iv),
        cmocka_unit_test(test_auth_round_trip_session_key),
        cmocka_unit_test(test_auth_random_sessions_differ),
        cmocka_unit_test(test_wrong_key_is_eauth),
        cmocka_unit_test(test_enciphered_read_of_chained_record),
        cmocka_unit_test(test_enciphered_write_commit_and_abort),
        cmocka_unit_test(test_read_to_end_never_misplaces_the_crc),
        cmocka_unit_test(test_maced_long_write_is_chained),
        cmocka_unit_test(test_access_rights),
        cmocka_unit_test(test_get_version_chained_with_cmac),
        cmocka_unit_test(test_tampered_frames_are_refused),
        cmocka_unit_test(test_transport_errors_pass_through),
        cmocka_unit_test(test_picc_survives_garbage),
        cmocka_unit_test(test_change_key_cryptogram_vectors),
        cmocka_unit_test(test_personalise_blank_card),
        cmocka_unit_test(test_directory_needs_key0),
        cmocka_unit_test(test_picc_key_types),
        cmocka_unit_test(test_change_key_tampered_and_delete),
    };
    return cmocka_run_group_tests_name("desfire", tests, NULL, NULL);
}
