/* df_card.c — the emulated DESFire EV1 card (see df_card.h). Written from the
 * card's side: what a command needs (key settings, access rights, session),
 * what it answers, and how long the card takes (busy_us, for the emulator's
 * timing model). Crypto primitives come from OpenSSL; the protocol is ours. */
#include "df_card.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <string.h>

/* status bytes */
enum {
    ST_OK = 0x00,
    ST_NO_CHANGES = 0x0C,
    ST_OUT_OF_EEPROM = 0x0E,
    ST_ILLEGAL_COMMAND = 0x1C,
    ST_INTEGRITY = 0x1E,
    ST_NO_SUCH_KEY = 0x40,
    ST_LENGTH = 0x7E,
    ST_PERMISSION = 0x9D,
    ST_PARAMETER = 0x9E,
    ST_APP_NOT_FOUND = 0xA0,
    ST_AUTH = 0xAE,
    ST_MORE = 0xAF,
    ST_BOUNDARY = 0xBE,
    ST_ABORTED = 0xCA,
    ST_DUPLICATE = 0xDE,
    ST_FILE_NOT_FOUND = 0xF0,
};

enum { SM_NONE, SM_D40, SM_EV1 };
enum { C_DES, C_2K3DES, C_3K3DES, C_AES }; /* cipher of a key or session key */

#define FREE  0x0E
#define NEVER 0x0F

/* --- timing (hal/nfc/READER.md "Timing model": estimates, see there) ------------ */
#define T_BASE_US   300  /* decode, dispatch, status */
#define T_BLOCK_US  25   /* one cipher block */
#define T_AUTH_US   1500 /* random number, key load, 2-3 blocks */
#define T_EEPROM_US 1800 /* one EEPROM page write (backup mirror, keys, settings) */
#define T_COMMIT_US 2800 /* CommitTransaction: mirror and transaction flags */
#define T_CREATE_US 3500 /* creating or deleting an application or file */

/* --- primitives --------------------------------------------------------- */

static void put_le(uint8_t *p, uint32_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le(const uint8_t *p, int n)
{
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* CRC32 as DESFire EV1 uses it: IEEE polynomial, reflected, preset all ones,
 * no final complement. */
static uint32_t crc32_df(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    while (n--) {
        c ^= *p++;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0xEDB88320u : c >> 1;
    }
    return c;
}

/* CRC_A of ISO/IEC 14443-3 (D40 secure messaging). */
static uint16_t crc16_a(const uint8_t *p, size_t n)
{
    uint16_t c = 0x6363;
    while (n--) {
        uint8_t b = *p++;
        b ^= (uint8_t)c;
        b ^= (uint8_t)(b << 4);
        c = (uint16_t)((c >> 8) ^ ((uint16_t)b << 8) ^ ((uint16_t)b << 3) ^ (b >> 4));
    }
    return c;
}

static int block_size(int cipher)
{
    return cipher == C_AES ? 16 : 8;
}

/* One block through the cipher (ECB): DES as 2K3DES with K1 = K2. */
static void ecb(int cipher, const uint8_t *key, const uint8_t *in, uint8_t *out, bool enc)
{
    uint8_t k[24];
    const EVP_CIPHER *ev;
    switch (cipher) {
    case C_AES:
        ev = EVP_aes_128_ecb();
        memcpy(k, key, 16);
        break;
    case C_3K3DES:
        ev = EVP_des_ede3_ecb();
        memcpy(k, key, 24);
        break;
    case C_DES:
        ev = EVP_des_ede_ecb();
        memcpy(k, key, 8);
        memcpy(k + 8, key, 8);
        break;
    default:
        ev = EVP_des_ede_ecb();
        memcpy(k, key, 16);
        break;
    }
    int bs = block_size(cipher), len = 0;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx || !EVP_CipherInit_ex(ctx, ev, NULL, k, NULL, enc) ||
        !EVP_CIPHER_CTX_set_padding(ctx, 0) || !EVP_CipherUpdate(ctx, out, &len, in, bs))
        memset(out, 0, (size_t)bs); /* cannot happen with valid keys; a wrong answer follows */
    EVP_CIPHER_CTX_free(ctx);
    OPENSSL_cleanse(k, sizeof k);
}

/* CBC encryption in place, *iv in and out (the last ciphertext block). */
static void cbc_enc(int cipher, const uint8_t *key, uint8_t *iv, uint8_t *p, size_t n)
{
    int bs = block_size(cipher);
    for (size_t o = 0; o + (size_t)bs <= n; o += (size_t)bs) {
        for (int i = 0; i < bs; i++)
            p[o + (size_t)i] ^= iv[i];
        ecb(cipher, key, p + o, p + o, true);
        memcpy(iv, p + o, (size_t)bs);
    }
}

/* CBC decryption in place, *iv in and out (the last ciphertext block). */
static void cbc_dec(int cipher, const uint8_t *key, uint8_t *iv, uint8_t *p, size_t n)
{
    int bs = block_size(cipher);
    uint8_t c[16];
    for (size_t o = 0; o + (size_t)bs <= n; o += (size_t)bs) {
        memcpy(c, p + o, (size_t)bs);
        ecb(cipher, key, p + o, p + o, false);
        for (int i = 0; i < bs; i++)
            p[o + (size_t)i] ^= iv[i];
        memcpy(iv, c, (size_t)bs);
    }
}

/* The PCD's "send mode" of the D40 scheme, undone by the card: the PCD ran
 * each block (xored with the previous output) through the DECRYPTION, so the
 * card ENCRYPTS to recover it. IV zero at the start of every message. */
static void d40_recover(int cipher, const uint8_t *key, uint8_t *p, size_t n)
{
    uint8_t prev[8] = {0}, c[8];
    for (size_t o = 0; o + 8 <= n; o += 8) {
        memcpy(c, p + o, 8);
        ecb(cipher, key, p + o, p + o, true);
        for (int i = 0; i < 8; i++)
            p[o + (size_t)i] ^= prev[i];
        memcpy(prev, c, 8);
    }
}

static void shift_left(const uint8_t *in, uint8_t *out, int bs)
{
    uint8_t carry = 0;
    for (int i = bs - 1; i >= 0; i--) {
        uint8_t b = in[i];
        out[i] = (uint8_t)(b << 1 | carry);
        carry = b >> 7;
    }
    if (in[0] & 0x80)
        out[bs - 1] ^= bs == 16 ? 0x87 : 0x1B;
}

/* CMAC (NIST SP 800-38B) whose chain starts from *iv; the full tag becomes
 * the new *iv (EV1 secure messaging). */
static void cmac(int cipher, const uint8_t *key, uint8_t *iv, const uint8_t *m, size_t n,
                 uint8_t *tag)
{
    int bs = block_size(cipher);
    uint8_t l[16] = {0}, k1[16], k2[16], last[16];
    ecb(cipher, key, l, l, true);
    shift_left(l, k1, bs);
    shift_left(k1, k2, bs);
    size_t full = n == 0 ? 0 : (n - 1) / (size_t)bs; /* blocks before the last */
    size_t rest = n - full * (size_t)bs;
    uint8_t x[16];
    memcpy(x, iv, (size_t)bs);
    for (size_t b = 0; b < full; b++) {
        for (int i = 0; i < bs; i++)
            x[i] ^= m[b * (size_t)bs + (size_t)i];
        ecb(cipher, key, x, x, true);
    }
    memset(last, 0, sizeof last);
    if (rest)
        memcpy(last, m + full * (size_t)bs, rest);
    const uint8_t *sub = k1;
    if (rest < (size_t)bs) {
        last[rest] = 0x80;
        sub = k2;
    }
    for (int i = 0; i < bs; i++)
        x[i] ^= last[i] ^ sub[i];
    ecb(cipher, key, x, x, true);
    memcpy(tag, x, (size_t)bs);
    memcpy(iv, x, (size_t)bs);
    OPENSSL_cleanse(l, sizeof l);
}

static void rotl(const uint8_t *in, uint8_t *out, size_t n)
{
    uint8_t first = in[0];
    memmove(out, in + 1, n - 1);
    out[n - 1] = first;
}

/* --- keys ---------------------------------------------------------------- */

static bool des_halves_equal(const uint8_t *k)
{
    for (int i = 0; i < 8; i++)
        if ((k[i] & 0xFE) != (k[i + 8] & 0xFE))
            return false;
    return true;
}

static int key_cipher(uint8_t type, const emu_df_key *k)
{
    if (type == EMU_DF_KEY_AES)
        return C_AES;
    if (type == EMU_DF_KEY_3K3DES)
        return C_3K3DES;
    return des_halves_equal(k->k) ? C_DES : C_2K3DES;
}

static int key_len(uint8_t type)
{
    return type == EMU_DF_KEY_3K3DES ? 24 : 16;
}

static uint8_t key_version(uint8_t type, const emu_df_key *k)
{
    if (type == EMU_DF_KEY_AES)
        return k->aes_version;
    uint8_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (uint8_t)(v << 1 | (k->k[i] & 1));
    return v;
}

/* --- card set-up ----------------------------------------------------------- */

void emu_df_init(emu_df_card *c, const uint8_t *uid, size_t uid_len)
{
    memset(c, 0, sizeof *c);
    memcpy(c->uid, uid, uid_len > 7 ? 7 : uid_len);
    c->picc_key_type = EMU_DF_KEY_2K3DES; /* all zero: DES */
    c->picc_settings = 0x0F;
    c->sel = -1;
}

static emu_df_app *find_app(emu_df_card *c, const uint8_t aid[3])
{
    for (int i = 0; i < EMU_DF_APPS; i++)
        if (c->apps[i].used && memcmp(c->apps[i].aid, aid, 3) == 0)
            return &c->apps[i];
    return NULL;
}

static emu_df_file *find_file(emu_df_app *a, uint8_t no)
{
    for (int i = 0; i < EMU_DF_FILES; i++)
        if (a->files[i].used && a->files[i].no == no)
            return &a->files[i];
    return NULL;
}

const emu_df_file *emu_df_find_file(const emu_df_card *c, const uint8_t aid[3], uint8_t no)
{
    emu_df_app *a = find_app((emu_df_card *)c, aid);
    return a ? find_file(a, no) : NULL;
}

int emu_df_add_app(emu_df_card *c, const uint8_t aid[3], uint8_t settings, uint8_t key_type,
                   int n_keys, const uint8_t (*keys)[16])
{
    if (find_app(c, aid) || n_keys < 1 || n_keys > EMU_DF_KEYS)
        return -1;
    for (int i = 0; i < EMU_DF_APPS; i++) {
        emu_df_app *a = &c->apps[i];
        if (a->used)
            continue;
        memset(a, 0, sizeof *a);
        a->used = true;
        memcpy(a->aid, aid, 3);
        a->settings = settings;
        a->key_type = key_type;
        a->n_keys = (uint8_t)n_keys;
        for (int k = 0; k < n_keys; k++)
            memcpy(a->keys[k].k, keys[k], 16);
        return 0;
    }
    return -1;
}

int emu_df_add_file(emu_df_card *c, const uint8_t aid[3], uint8_t no, uint8_t type, uint8_t comm,
                    uint8_t r, uint8_t w, uint8_t rw, uint8_t change, uint32_t size,
                    const uint8_t *data, size_t len)
{
    emu_df_app *a = find_app(c, aid);
    if (!a || find_file(a, no) || size == 0 || size > EMU_DF_FILE_MAX || len > size)
        return -1;
    for (int i = 0; i < EMU_DF_FILES; i++) {
        emu_df_file *f = &a->files[i];
        if (f->used)
            continue;
        memset(f, 0, sizeof *f);
        f->used = true;
        f->no = no;
        f->type = type;
        f->comm = comm;
        f->ar[0] = (uint8_t)(rw << 4 | change);
        f->ar[1] = (uint8_t)(r << 4 | w);
        f->size = size;
        if (len)
            memcpy(f->data, data, len);
        return 0;
    }
    return -1;
}

/* --- session --------------------------------------------------------------- */

static void drop_session(emu_df_card *c)
{
    c->sm = SM_NONE;
    c->auth_step = 0;
    OPENSSL_cleanse(c->s_key, sizeof c->s_key);
    memset(c->s_iv, 0, sizeof c->s_iv);
}

static emu_df_app *cur_app(emu_df_card *c)
{
    return c->sel >= 0 ? &c->apps[c->sel] : NULL;
}

/* Discard uncommitted backup and value file changes of the selected app. */
static void abort_tx(emu_df_card *c)
{
    emu_df_app *a = cur_app(c);
    for (int i = 0; a && i < EMU_DF_FILES; i++)
        a->files[i].dirty = false;
}

void emu_df_reset(emu_df_card *c)
{
    abort_tx(c);
    drop_session(c);
    c->sel = -1;
    c->in_len = c->in_need = c->out_len = c->out_pos = 0;
}

static bool authed(const emu_df_card *c)
{
    return c->sm != SM_NONE;
}

static bool master_session(const emu_df_card *c)
{
    return authed(c) && c->s_key_no == 0;
}

static int s_bs(const emu_df_card *c)
{
    return block_size(c->s_type);
}

/* --- answers ------------------------------------------------------------- */

struct ans {
    uint8_t st;
    uint8_t d[EMU_DF_MSG_MAX];
    size_t n;
    bool enciphered; /* d is already secured: no CMAC */
    bool drop_after; /* the session ends once this answer is out */
};

static void err(emu_df_card *c, struct ans *a, uint8_t st)
{
    a->st = st;
    a->n = 0;
    drop_session(c); /* any error ends the authenticated state */
}

/* OK with plain data (CMAC'd in an EV1 session). */
static void ok(struct ans *a, const uint8_t *d, size_t n)
{
    a->st = ST_OK;
    if (n)
        memcpy(a->d, d, n);
    a->n = n;
}

/* EV1: every command the card accepts runs through the CMAC (IV update). */
static void cmd_cmac(emu_df_card *c, const uint8_t *cmd, size_t n)
{
    uint8_t t[16];
    if (c->sm == SM_EV1)
        cmac(c->s_type, c->s_key, c->s_iv, cmd, n, t);
}

/* Secure an answer's data for the comm mode: 0 plain, 1 MACed, 3 enciphered. */
static void secure_answer(emu_df_card *c, struct ans *a, int comm)
{
    uint8_t buf[EMU_DF_MSG_MAX + 32];
    int bs = s_bs(c);
    if (c->sm == SM_EV1 && comm == 3) {
        size_t n = a->n;
        memcpy(buf, a->d, n);
        buf[n] = ST_OK;
        put_le(buf + n, crc32_df(buf, n + 1), 4); /* over data ‖ status */
        n += 4;
        while (n % (size_t)bs)
            buf[n++] = 0;
        cbc_enc(c->s_type, c->s_key, c->s_iv, buf, n);
        memcpy(a->d, buf, n);
        a->n = n;
        a->enciphered = true;
    } else if (c->sm == SM_D40 && comm == 3) {
        size_t n = a->n;
        memcpy(buf, a->d, n);
        uint16_t crc = crc16_a(buf, n);
        buf[n++] = (uint8_t)crc;
        buf[n++] = (uint8_t)(crc >> 8);
        while (n % 8)
            buf[n++] = 0;
        uint8_t iv[8] = {0};
        cbc_enc(c->s_type, c->s_key, iv, buf, n);
        memcpy(a->d, buf, n);
        a->n = n;
        a->enciphered = true;
    } else if (c->sm == SM_D40 && comm == 1) {
        size_t n = (a->n + 7) / 8 * 8;
        memset(buf, 0, n ? n : 8);
        memcpy(buf, a->d, a->n);
        uint8_t iv[8] = {0};
        cbc_enc(c->s_type, c->s_key, iv, buf, n ? n : 8);
        memcpy(a->d + a->n, iv, 4); /* MAC: first half of the last block */
        a->n += 4;
        a->enciphered = true;
    }
}

/* Recover a command's secured payload (p, n) for the comm mode; hdr is the
 * command up to the payload (EV1 CRC and CMAC cover it). Returns the payload
 * length, or -status. */
static int open_payload(emu_df_card *c, int comm, const uint8_t *hdr, size_t hn, uint8_t *p,
                        size_t n, size_t want)
{
    uint8_t buf[EMU_DF_MSG_MAX + 32];
    if (comm == 0 || c->sm == SM_NONE) {
        if (c->sm == SM_EV1) {
            memcpy(buf, hdr, hn);
            memcpy(buf + hn, p, n);
            cmd_cmac(c, buf, hn + n);
        }
        return n == want ? (int)n : -ST_LENGTH;
    }
    if (comm == 1) {
        size_t mac = c->sm == SM_EV1 ? 8 : 4;
        if (n != want + mac)
            return -ST_LENGTH;
        uint8_t t[16];
        if (c->sm == SM_EV1) {
            memcpy(buf, hdr, hn);
            memcpy(buf + hn, p, want);
            cmac(c->s_type, c->s_key, c->s_iv, buf, hn + want, t);
        } else {
            size_t m = (want + 7) / 8 * 8;
            memset(buf, 0, m ? m : 8);
            memcpy(buf, p, want);
            uint8_t iv[8] = {0};
            cbc_enc(c->s_type, c->s_key, iv, buf, m ? m : 8);
            memcpy(t, iv, 4);
        }
        return CRYPTO_memcmp(t, p + want, mac) == 0 ? (int)want : -ST_INTEGRITY;
    }
    /* enciphered: payload ‖ CRC ‖ zero padding */
    int bs = s_bs(c);
    if (n == 0 || n % (size_t)bs || n > sizeof buf)
        return -ST_LENGTH;
    memcpy(buf, p, n);
    size_t crc_len = c->sm == SM_EV1 ? 4 : 2;
    if (c->sm == SM_EV1)
        cbc_dec(c->s_type, c->s_key, c->s_iv, buf, n);
    else
        d40_recover(c->s_type, c->s_key, buf, n);
    if (want + crc_len > n || n - (want + crc_len) >= (size_t)bs)
        return -ST_LENGTH;
    for (size_t i = want + crc_len; i < n; i++)
        if (buf[i] != 0)
            return -ST_INTEGRITY;
    bool good;
    if (c->sm == SM_EV1) {
        uint8_t all[EMU_DF_MSG_MAX + 32];
        memcpy(all, hdr, hn);
        memcpy(all + hn, buf, want);
        good = crc32_df(all, hn + want) == get_le(buf + want, 4);
    } else {
        good = crc16_a(buf, want) == get_le(buf + want, 2);
    }
    if (!good)
        return -ST_INTEGRITY;
    memcpy(p, buf, want);
    return (int)want;
}

/* Length of a secured payload of `plain` bytes as the PCD sends it. */
static size_t secured_len(const emu_df_card *c, int comm, size_t plain)
{
    if (c->sm == SM_NONE || comm == 0)
        return plain;
    if (comm == 1)
        return plain + (c->sm == SM_EV1 ? 8 : 4);
    size_t bs = (size_t)s_bs(c), n = plain + (c->sm == SM_EV1 ? 4 : 2);
    return (n + bs - 1) / bs * bs;
}

/* --- access -------------------------------------------------------------- */

enum op { OP_READ, OP_WRITE, OP_CREDIT, OP_DEBIT, OP_LCREDIT };

/* Whether the session may do op on f: the comm mode to use (0 free/plain, or
 * the file's), or -status. */
static int file_access(const emu_df_card *c, const emu_df_file *f, enum op op)
{
    uint8_t rw = f->ar[0] >> 4, r = f->ar[1] >> 4, w = f->ar[1] & 0x0F;
    uint8_t allowed[3];
    int n = 0;
    switch (op) {
    case OP_READ:
        allowed[n++] = r;
        allowed[n++] = rw;
        if (f->type == EMU_DF_VALUE)
            allowed[n++] = w; /* GetValue: R, W or RW */
        break;
    case OP_WRITE:
    case OP_LCREDIT:
        allowed[n++] = w;
        allowed[n++] = rw;
        break;
    case OP_CREDIT:
        allowed[n++] = rw;
        break;
    case OP_DEBIT:
        allowed[n++] = r;
        allowed[n++] = w;
        allowed[n++] = rw;
        break;
    }
    for (int i = 0; i < n; i++)
        if (allowed[i] == FREE)
            return 0; /* free access: plain communication */
    if (!authed(c))
        return -ST_AUTH;
    for (int i = 0; i < n; i++)
        if (allowed[i] == c->s_key_no)
            return f->comm;
    return -ST_PERMISSION;
}

/* Directory commands (GetFileIDs, GetFileSettings, GetKeySettings,
 * GetApplicationIDs): free with settings bit 1, else the master key. */
static int dir_access(const emu_df_card *c)
{
    emu_df_app *a = c->sel >= 0 ? (emu_df_app *)&c->apps[c->sel] : NULL;
    uint8_t s = a ? a->settings : c->picc_settings;
    if ((s & 0x02) || master_session(c))
        return 0;
    return ST_AUTH;
}

/* Create/delete files (app) or applications (PICC): bit 2, else the master key. */
static int create_access(const emu_df_card *c)
{
    emu_df_app *a = c->sel >= 0 ? (emu_df_app *)&c->apps[c->sel] : NULL;
    uint8_t s = a ? a->settings : c->picc_settings;
    if ((s & 0x04) || master_session(c))
        return 0;
    return ST_AUTH;
}

/* --- commands ------------------------------------------------------------ */

static void c_select(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    static const uint8_t picc[3] = {0, 0, 0};
    abort_tx(c); /* leaving an application discards its uncommitted changes */
    drop_session(c);
    if (n != 4)
        return err(c, a, ST_LENGTH);
    if (memcmp(m + 1, picc, 3) == 0) {
        c->sel = -1;
        return ok(a, NULL, 0);
    }
    emu_df_app *app = find_app(c, m + 1);
    if (!app) {
        c->sel = -1;
        return err(c, a, ST_APP_NOT_FOUND);
    }
    c->sel = (int)(app - c->apps);
    ok(a, NULL, 0);
}

/* The key an authentication of key_no at the current level uses. */
static int auth_key(emu_df_card *c, uint8_t key_no, emu_df_key **k, uint8_t *type)
{
    emu_df_app *app = cur_app(c);
    if (!app) {
        if (key_no != 0)
            return ST_NO_SUCH_KEY;
        *k = &c->picc_key;
        *type = c->picc_key_type;
        return 0;
    }
    if (key_no >= app->n_keys)
        return ST_NO_SUCH_KEY;
    *k = &app->keys[key_no];
    *type = app->key_type;
    return 0;
}

static void c_auth1(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    emu_df_key *k;
    uint8_t type;
    drop_session(c);
    if (n != 2)
        return err(c, a, ST_LENGTH);
    int st = auth_key(c, m[1], &k, &type);
    if (st)
        return err(c, a, (uint8_t)st);
    int cipher = key_cipher(type, k);
    bool fits = m[0] == 0x0A   ? (cipher == C_DES || cipher == C_2K3DES)
                : m[0] == 0x1A ? cipher != C_AES
                               : cipher == C_AES;
    if (!fits)
        return err(c, a, ST_AUTH);
    /* 3K3DES and AES exchange 16-byte random numbers, DES and 2K3DES 8 */
    c->a_len = cipher == C_DES || cipher == C_2K3DES ? 8 : 16;
    if (RAND_bytes(c->a_rnd_b, (int)c->a_len) != 1)
        return err(c, a, ST_ABORTED);
    memcpy(a->d, c->a_rnd_b, c->a_len);
    memset(c->a_iv, 0, sizeof c->a_iv);
    cbc_enc(cipher, k->k, c->a_iv, a->d, c->a_len);
    c->a_cmd = m[0];
    c->a_key_no = m[1];
    c->auth_step = 1;
    a->st = ST_MORE;
    a->n = c->a_len;
    a->enciphered = true;
}

static void c_auth2(emu_df_card *c, const uint8_t *d, size_t n, struct ans *a)
{
    emu_df_key *k;
    uint8_t type;
    c->auth_step = 0;
    size_t L = c->a_len;
    if (n != 2 * L)
        return err(c, a, ST_LENGTH);
    if (auth_key(c, c->a_key_no, &k, &type))
        return err(c, a, ST_AUTH);
    int cipher = key_cipher(type, k);
    uint8_t tok[32], want[16], rnd_a[16];
    memcpy(tok, d, 2 * L);
    bool legacy = c->a_cmd == 0x0A;
    if (legacy)
        d40_recover(cipher, k->k, tok, 2 * L);
    else
        cbc_dec(cipher, k->k, c->a_iv, tok, 2 * L);
    rotl(c->a_rnd_b, want, L);
    if (CRYPTO_memcmp(want, tok + L, L) != 0)
        return err(c, a, ST_AUTH);
    memcpy(rnd_a, tok, L);
    rotl(rnd_a, a->d, L);
    if (legacy) {
        uint8_t iv[16] = {0};
        cbc_enc(cipher, k->k, iv, a->d, L);
    } else {
        cbc_enc(cipher, k->k, c->a_iv, a->d, L);
    }
    /* session key: RndA and RndB halves interleaved, by cipher */
    const uint8_t *ra = rnd_a, *rb = c->a_rnd_b;
    uint8_t *s = c->s_key;
    memcpy(s, ra, 4);
    memcpy(s + 4, rb, 4);
    if (cipher == C_2K3DES) {
        memcpy(s + 8, ra + 4, 4);
        memcpy(s + 12, rb + 4, 4);
    } else if (cipher == C_3K3DES) {
        memcpy(s + 8, ra + 6, 4);
        memcpy(s + 12, rb + 6, 4);
        memcpy(s + 16, ra + 12, 4);
        memcpy(s + 20, rb + 12, 4);
    } else if (cipher == C_AES) {
        memcpy(s + 8, ra + 12, 4);
        memcpy(s + 12, rb + 12, 4);
    }
    c->s_type = (uint8_t)cipher;
    c->s_key_no = c->a_key_no;
    c->sm = legacy ? SM_D40 : SM_EV1;
    memset(c->s_iv, 0, sizeof c->s_iv);
    OPENSSL_cleanse(tok, sizeof tok);
    OPENSSL_cleanse(rnd_a, sizeof rnd_a);
    a->st = ST_OK;
    a->n = L;
    a->enciphered = true;
}

static void c_get_version(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    if (n != 1)
        return err(c, a, ST_LENGTH);
    cmd_cmac(c, m, n);
    /* vendor NXP, type DESFire, EV1 (v1.0), 4 kB, ISO 14443-2 and -3/-4 */
    static const uint8_t hw_sw[14] = {0x04, 0x01, 0x01, 0x01, 0x00, 0x18, 0x05,
                                      0x04, 0x01, 0x01, 0x01, 0x04, 0x18, 0x05};
    static const uint8_t batch[7] = {0xBA, 0x7C, 0x11, 0x00, 0x10, 0x12, 0x25};
    uint8_t v[28];
    memcpy(v, hw_sw, 14);
    if (c->random_uid)
        memset(v + 14, 0, 7); /* random ID: the UID only after authentication */
    else
        memcpy(v + 14, c->uid, 7);
    memcpy(v + 21, batch, 7);
    ok(a, v, sizeof v);
    c->out_short = 2;
}

static void c_app_ids(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    if (n != 1)
        return err(c, a, ST_LENGTH);
    if (c->sel >= 0)
        return err(c, a, ST_PERMISSION);
    int st = dir_access(c);
    if (st)
        return err(c, a, (uint8_t)st);
    cmd_cmac(c, m, n);
    uint8_t d[3 * EMU_DF_APPS];
    size_t k = 0;
    for (int i = 0; i < EMU_DF_APPS; i++)
        if (c->apps[i].used) {
            memcpy(d + k, c->apps[i].aid, 3);
            k += 3;
        }
    ok(a, d, k);
}

static void c_free_mem(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    if (n != 1)
        return err(c, a, ST_LENGTH);
    cmd_cmac(c, m, n);
    uint32_t used = 0;
    for (int i = 0; i < EMU_DF_APPS; i++)
        for (int f = 0; c->apps[i].used && f < EMU_DF_FILES; f++)
            if (c->apps[i].files[f].used)
                used += (c->apps[i].files[f].size + 31) / 32 * 32 *
                        (c->apps[i].files[f].type == EMU_DF_BACKUP ? 2 : 1);
    uint8_t d[3];
    put_le(d, used < 4096 ? 4096 - used : 0, 3);
    ok(a, d, 3);
}

static void c_create_app(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    static const uint8_t picc[3] = {0, 0, 0};
    if (n < 6)
        return err(c, a, ST_LENGTH);
    if (c->sel >= 0)
        return err(c, a, ST_PERMISSION);
    int st = create_access(c);
    if (st)
        return err(c, a, (uint8_t)st);
    uint8_t ks2 = m[5], type = ks2 & 0xC0, keys = ks2 & 0x0F;
    bool iso = ks2 & 0x20;
    if ((!iso && n != 6) || (iso && (n < 8 || n > 24)))
        return err(c, a, ST_LENGTH);
    if (memcmp(m + 1, picc, 3) == 0 || keys == 0 || keys > EMU_DF_KEYS || type == 0xC0)
        return err(c, a, ST_PARAMETER);
    if (find_app(c, m + 1))
        return err(c, a, ST_DUPLICATE);
    cmd_cmac(c, m, n);
    uint8_t zero[EMU_DF_KEYS][16] = {{0}};
    if (emu_df_add_app(c, m + 1, m[4], type, keys, (const uint8_t(*)[16])zero) != 0)
        return err(c, a, ST_OUT_OF_EEPROM);
    c->busy_us += T_CREATE_US;
    ok(a, NULL, 0);
}

static void c_delete_app(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    if (n != 4)
        return err(c, a, ST_LENGTH);
    emu_df_app *app = find_app(c, m + 1);
    /* the PICC master key, or the application's own master key with it selected */
    bool own = app && c->sel == (int)(app - c->apps);
    if (!master_session(c) || (c->sel >= 0 && !own))
        return err(c, a, authed(c) ? ST_PERMISSION : ST_AUTH);
    if (!app)
        return err(c, a, ST_APP_NOT_FOUND);
    cmd_cmac(c, m, n);
    memset(app, 0, sizeof *app);
    if (own) {
        c->sel = -1;
        a->drop_after = true; /* its keys no longer exist: answered, then gone */
    }
    c->busy_us += T_CREATE_US;
    ok(a, NULL, 0);
}

static void c_format(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    if (n != 1)
        return err(c, a, ST_LENGTH);
    if (c->sel >= 0 || !master_session(c))
        return err(c, a, authed(c) ? ST_PERMISSION : ST_AUTH);
    cmd_cmac(c, m, n);
    memset(c->apps, 0, sizeof c->apps);
    c->busy_us += 4 * T_CREATE_US;
    ok(a, NULL, 0);
}

static void c_key_settings(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    if (n != 1)
        return err(c, a, ST_LENGTH);
    int st = dir_access(c);
    if (st)
        return err(c, a, (uint8_t)st);
    cmd_cmac(c, m, n);
    emu_df_app *app = cur_app(c);
    uint8_t d[2] = {app ? app->settings : c->picc_settings,
                    app ? (uint8_t)(app->n_keys | app->key_type) : (uint8_t)(1 | c->picc_key_type)};
    ok(a, d, 2);
}

static void c_key_version(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    emu_df_key *k;
    uint8_t type;
    if (n != 2)
        return err(c, a, ST_LENGTH);
    int st = auth_key(c, m[1] & 0x0F, &k, &type);
    if (st)
        return err(c, a, (uint8_t)st);
    cmd_cmac(c, m, n);
    uint8_t v = key_version(type, k);
    ok(a, &v, 1);
}

/* ChangeKeySettings: new settings, enciphered. */
static void c_change_settings(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    emu_df_app *app = cur_app(c);
    uint8_t *s = app ? &app->settings : &c->picc_settings;
    if (!master_session(c))
        return err(c, a, ST_AUTH);
    if (!(*s & 0x08))
        return err(c, a, ST_PERMISSION);
    uint8_t p[EMU_DF_MSG_MAX];
    if (n < 2)
        return err(c, a, ST_LENGTH);
    memcpy(p, m + 1, n - 1);
    int got = open_payload(c, 3, m, 1, p, n - 1, 1);
    if (got < 0)
        return err(c, a, (uint8_t)-got);
    *s = p[0];
    c->busy_us += T_EEPROM_US;
    ok(a, NULL, 0);
}

/* ChangeKey: the cryptogram carries the new key (xored with the old one when
 * another key than the session's changes), its version, CRC(s), padding. */
static void c_change_key(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    if (n < 2)
        return err(c, a, ST_LENGTH);
    if (!authed(c))
        return err(c, a, ST_AUTH);
    emu_df_app *app = cur_app(c);
    uint8_t key_no = m[1] & 0x0F, new_type;
    emu_df_key *k;
    uint8_t type;
    if (!app) {
        /* PICC master key: the key number byte also names the new key's type */
        if (key_no != 0 || !master_session(c))
            return err(c, a, ST_PERMISSION);
        if (!(c->picc_settings & 0x01))
            return err(c, a, ST_PERMISSION);
        new_type = m[1] & 0xC0;
        k = &c->picc_key;
        type = c->picc_key_type;
    } else {
        if (key_no >= app->n_keys)
            return err(c, a, ST_NO_SUCH_KEY);
        uint8_t rule = app->settings >> 4;
        bool same = key_no == c->s_key_no;
        bool allowed = key_no == 0    ? same && (app->settings & 0x01)
                       : rule == 0x0E ? same
                       : rule == 0x0F ? false
                                      : c->s_key_no == rule;
        if (!allowed)
            return err(c, a, ST_PERMISSION);
        new_type = app->key_type;
        k = &app->keys[key_no];
        type = app->key_type;
    }
    bool same = key_no == c->s_key_no;
    size_t klen = (size_t)key_len(new_type), bs = (size_t)s_bs(c);
    size_t plain = klen + (new_type == EMU_DF_KEY_AES ? 1 : 0);
    size_t crcs = c->sm == SM_EV1 ? 4 : 2, body = plain + crcs + (same ? 0 : crcs);
    size_t enc = (body + bs - 1) / bs * bs;
    if (n - 2 != enc)
        return err(c, a, ST_LENGTH);
    uint8_t p[64];
    memcpy(p, m + 2, enc);
    if (c->sm == SM_EV1)
        cbc_dec(c->s_type, c->s_key, c->s_iv, p, enc);
    else
        d40_recover(c->s_type, c->s_key, p, enc);
    uint8_t nk[24];
    memcpy(nk, p, klen);
    if (!same) /* xored with the old key (of the same length) */
        for (size_t i = 0; i < klen; i++)
            nk[i] ^= i < (size_t)key_len(type) ? k->k[i] : 0;
    bool good;
    if (c->sm == SM_EV1) {
        uint8_t all[2 + 64];
        memcpy(all, m, 2);
        memcpy(all + 2, p, plain);
        good = crc32_df(all, 2 + plain) == get_le(p + plain, 4);
        if (!same)
            good = good && crc32_df(nk, klen) == get_le(p + plain + 4, 4);
    } else {
        good = crc16_a(p, plain) == get_le(p + plain, 2);
        if (!same)
            good = good && crc16_a(nk, klen) == get_le(p + plain + 2, 2);
    }
    for (size_t i = body; i < enc; i++)
        good = good && p[i] == 0;
    uint8_t version = new_type == EMU_DF_KEY_AES ? p[klen] : 0; /* after the key */
    OPENSSL_cleanse(p, sizeof p);
    if (!good) {
        OPENSSL_cleanse(nk, sizeof nk);
        return err(c, a, ST_INTEGRITY);
    }
    memset(k->k, 0, sizeof k->k);
    memcpy(k->k, nk, klen);
    k->aes_version = version;
    OPENSSL_cleanse(nk, sizeof nk);
    if (!app)
        c->picc_key_type = new_type;
    c->busy_us += T_EEPROM_US;
    if (same) {
        drop_session(c); /* the session key came from the old key: a bare status */
        a->st = ST_OK;
        a->n = 0;
        a->enciphered = true;
        return;
    }
    ok(a, NULL, 0);
}

static void c_file_ids(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    emu_df_app *app = cur_app(c);
    if (n != 1)
        return err(c, a, ST_LENGTH);
    if (!app)
        return err(c, a, ST_PERMISSION);
    int st = dir_access(c);
    if (st)
        return err(c, a, (uint8_t)st);
    cmd_cmac(c, m, n);
    uint8_t d[EMU_DF_FILES];
    size_t k = 0;
    for (int i = 0; i < EMU_DF_FILES; i++)
        if (app->files[i].used)
            d[k++] = app->files[i].no;
    ok(a, d, k);
}

static void c_file_settings(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    emu_df_app *app = cur_app(c);
    if (n != 2)
        return err(c, a, ST_LENGTH);
    if (!app)
        return err(c, a, ST_PERMISSION);
    int st = dir_access(c);
    if (st)
        return err(c, a, (uint8_t)st);
    emu_df_file *f = find_file(app, m[1]);
    if (!f)
        return err(c, a, ST_FILE_NOT_FOUND);
    cmd_cmac(c, m, n);
    uint8_t d[17] = {f->type, f->comm, f->ar[0], f->ar[1]};
    size_t k = 4;
    if (f->type == EMU_DF_VALUE) {
        put_le(d + 4, (uint32_t)f->lower, 4);
        put_le(d + 8, (uint32_t)f->upper, 4);
        put_le(d + 12, (uint32_t)f->limited, 4);
        d[16] = f->lc_enabled;
        k = 17;
    } else {
        put_le(d + 4, f->size, 3);
        k = 7;
    }
    ok(a, d, k);
}

static void c_create_file(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    emu_df_app *app = cur_app(c);
    bool value = m[0] == 0xCC;
    if (n != (value ? 18u : 8u))
        return err(c, a, ST_LENGTH);
    if (!app)
        return err(c, a, ST_PERMISSION);
    int st = create_access(c);
    if (st)
        return err(c, a, (uint8_t)st);
    if (m[1] > 0x1F || (m[2] & 0x03) == 2)
        return err(c, a, ST_PARAMETER);
    if (find_file(app, m[1]))
        return err(c, a, ST_DUPLICATE);
    uint32_t size = value ? 4 : get_le(m + 5, 3);
    uint8_t type = value ? EMU_DF_VALUE : m[0] == 0xCB ? EMU_DF_BACKUP : EMU_DF_STD;
    if (size == 0)
        return err(c, a, ST_PARAMETER);
    if (emu_df_add_file(c, app->aid, m[1], type, m[2] & 0x03, m[4] >> 4, m[4] & 0x0F, m[3] >> 4,
                        m[3] & 0x0F, size, NULL, 0) != 0)
        return err(c, a, ST_OUT_OF_EEPROM);
    if (value) {
        emu_df_file *f = find_file(app, m[1]);
        f->lower = (int32_t)get_le(m + 5, 4);
        f->upper = (int32_t)get_le(m + 9, 4);
        f->value = (int32_t)get_le(m + 13, 4);
        f->lc_enabled = m[17] & 0x01;
        if (f->lower > f->upper || f->value < f->lower || f->value > f->upper) {
            memset(f, 0, sizeof *f);
            return err(c, a, ST_BOUNDARY);
        }
    }
    cmd_cmac(c, m, n);
    c->busy_us += T_CREATE_US;
    ok(a, NULL, 0);
}

static void c_delete_file(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    emu_df_app *app = cur_app(c);
    if (n != 2)
        return err(c, a, ST_LENGTH);
    if (!app)
        return err(c, a, ST_PERMISSION);
    int st = create_access(c);
    if (st)
        return err(c, a, (uint8_t)st);
    emu_df_file *f = find_file(app, m[1]);
    if (!f)
        return err(c, a, ST_FILE_NOT_FOUND);
    cmd_cmac(c, m, n);
    memset(f, 0, sizeof *f);
    c->busy_us += T_EEPROM_US;
    ok(a, NULL, 0);
}

/* The file a data (value false) or value command names, or an error answer. */
static emu_df_file *file_of(emu_df_card *c, uint8_t no, bool value, struct ans *a)
{
    emu_df_app *app = cur_app(c);
    emu_df_file *f = app ? find_file(app, no) : NULL;
    if (!f || (f->type == EMU_DF_VALUE) != value) {
        err(c, a, !app || f ? ST_PERMISSION : ST_FILE_NOT_FOUND);
        return NULL;
    }
    return f;
}

static void c_read(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    if (n != 8)
        return err(c, a, ST_LENGTH);
    emu_df_file *f = file_of(c, m[1], false, a);
    if (!f)
        return;
    int comm = file_access(c, f, OP_READ);
    if (comm < 0)
        return err(c, a, (uint8_t)-comm);
    uint32_t off = get_le(m + 2, 3), len = get_le(m + 5, 3);
    if (off >= f->size || (len && off + len > f->size))
        return err(c, a, ST_BOUNDARY);
    if (len == 0)
        len = f->size - off; /* to the end of the file */
    cmd_cmac(c, m, n);
    ok(a, f->data + off, len); /* a backup file reads its committed content */
    secure_answer(c, a, comm);
    c->busy_us += T_BLOCK_US * (len / 16 + 1);
}

/* Total length of a WriteData command for chaining (0 = unknown: run it). */
static size_t write_need(emu_df_card *c, const uint8_t *m, size_t n)
{
    emu_df_app *app = cur_app(c);
    if (n < 8 || !app)
        return 0;
    emu_df_file *f = find_file(app, m[1]);
    if (!f)
        return 0;
    int comm = file_access(c, f, OP_WRITE);
    if (comm < 0)
        return 0;
    return 8 + secured_len(c, comm, get_le(m + 5, 3));
}

static void c_write(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    if (n < 8)
        return err(c, a, ST_LENGTH);
    emu_df_file *f = file_of(c, m[1], false, a);
    if (!f)
        return;
    int comm = file_access(c, f, OP_WRITE);
    if (comm < 0)
        return err(c, a, (uint8_t)-comm);
    uint32_t off = get_le(m + 2, 3), len = get_le(m + 5, 3);
    if (len == 0 || off + len > f->size)
        return err(c, a, ST_BOUNDARY);
    uint8_t p[EMU_DF_MSG_MAX];
    if (n - 8 > sizeof p)
        return err(c, a, ST_LENGTH);
    memcpy(p, m + 8, n - 8);
    int got = open_payload(c, comm, m, 8, p, n - 8, len);
    if (got < 0)
        return err(c, a, (uint8_t)-got);
    if (f->type == EMU_DF_BACKUP) {
        if (!f->dirty)
            memcpy(f->shadow, f->data, f->size);
        memcpy(f->shadow + off, p, len);
        f->dirty = true;
    } else {
        memcpy(f->data + off, p, len);
    }
    c->busy_us += T_EEPROM_US * ((len + 31) / 32);
    ok(a, NULL, 0);
}

static void c_get_value(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    if (n != 2)
        return err(c, a, ST_LENGTH);
    emu_df_file *f = file_of(c, m[1], true, a);
    if (!f)
        return;
    int comm = file_access(c, f, OP_READ);
    if (comm < 0)
        return err(c, a, (uint8_t)-comm);
    cmd_cmac(c, m, n);
    uint8_t d[4];
    put_le(d, (uint32_t)f->value, 4); /* the committed value */
    ok(a, d, 4);
    secure_answer(c, a, comm);
}

static void c_value_op(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    if (n < 2)
        return err(c, a, ST_LENGTH);
    emu_df_file *f = file_of(c, m[1], true, a);
    if (!f)
        return;
    enum op op = m[0] == 0x0C ? OP_CREDIT : m[0] == 0xDC ? OP_DEBIT : OP_LCREDIT;
    int comm = file_access(c, f, op);
    if (comm < 0)
        return err(c, a, (uint8_t)-comm);
    uint8_t p[64];
    if (n - 2 > sizeof p)
        return err(c, a, ST_LENGTH);
    memcpy(p, m + 2, n - 2);
    int got = open_payload(c, comm, m, 2, p, n - 2, 4);
    if (got < 0)
        return err(c, a, (uint8_t)-got);
    int32_t v = (int32_t)get_le(p, 4), cur = f->dirty ? f->shadow_value : f->value;
    int64_t next = op == OP_DEBIT ? (int64_t)cur - v : (int64_t)cur + v;
    if (v < 0 || next < f->lower || next > f->upper || (op == OP_LCREDIT && !f->lc_enabled))
        return err(c, a, op == OP_LCREDIT && !f->lc_enabled ? ST_PERMISSION : ST_BOUNDARY);
    f->shadow_value = (int32_t)next;
    f->dirty = true;
    c->busy_us += T_EEPROM_US;
    ok(a, NULL, 0);
}

static void c_commit(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a, bool commit)
{
    emu_df_app *app = cur_app(c);
    if (n != 1)
        return err(c, a, ST_LENGTH);
    if (!app)
        return err(c, a, ST_PERMISSION);
    cmd_cmac(c, m, n);
    bool any = false;
    for (int i = 0; i < EMU_DF_FILES; i++) {
        emu_df_file *f = &app->files[i];
        if (!f->used || !f->dirty)
            continue;
        any = true;
        if (commit && f->type == EMU_DF_BACKUP)
            memcpy(f->data, f->shadow, f->size);
        if (commit && f->type == EMU_DF_VALUE)
            f->value = f->shadow_value;
        f->dirty = false;
    }
    if (commit && any) {
        c->commits++;
        c->busy_us += T_COMMIT_US;
    }
    ok(a, NULL, 0);
}

static void c_card_uid(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    if (n != 1)
        return err(c, a, ST_LENGTH);
    if (!authed(c))
        return err(c, a, ST_AUTH);
    cmd_cmac(c, m, n);
    ok(a, c->uid, 7);
    secure_answer(c, a, 3);
}

static void dispatch(emu_df_card *c, const uint8_t *m, size_t n, struct ans *a)
{
    c->out_short = 0;
    switch (m[0]) {
    case 0x5A:
        return c_select(c, m, n, a);
    case 0x60:
        return c_get_version(c, m, n, a);
    case 0x6A:
        return c_app_ids(c, m, n, a);
    case 0x6E:
        return c_free_mem(c, m, n, a);
    case 0xCA:
        return c_create_app(c, m, n, a);
    case 0xDA:
        return c_delete_app(c, m, n, a);
    case 0xFC:
        return c_format(c, m, n, a);
    case 0x45:
        return c_key_settings(c, m, n, a);
    case 0x64:
        return c_key_version(c, m, n, a);
    case 0x54:
        return c_change_settings(c, m, n, a);
    case 0xC4:
        return c_change_key(c, m, n, a);
    case 0x6F:
        return c_file_ids(c, m, n, a);
    case 0xF5:
        return c_file_settings(c, m, n, a);
    case 0xCD:
    case 0xCB:
    case 0xCC:
        return c_create_file(c, m, n, a);
    case 0xDF:
        return c_delete_file(c, m, n, a);
    case 0xBD:
        return c_read(c, m, n, a);
    case 0x3D:
        return c_write(c, m, n, a);
    case 0x6C:
        return c_get_value(c, m, n, a);
    case 0x0C:
    case 0xDC:
    case 0x1C:
        return c_value_op(c, m, n, a);
    case 0xC7:
        return c_commit(c, m, n, a, true);
    case 0xA7:
        return c_commit(c, m, n, a, false);
    case 0x51:
        return c_card_uid(c, m, n, a);
    default:
        return err(c, a, ST_ILLEGAL_COMMAND);
    }
}

/* --- framing --------------------------------------------------------------- */

/* The next frame of the pending answer into d; returns its status. */
static uint8_t next_chunk(emu_df_card *c, uint8_t *d, size_t *dn)
{
    size_t max = 59;
    if (c->out_short > 0) {
        max = 7;
        c->out_short--;
    }
    size_t left = c->out_len - c->out_pos, k = left < max ? left : max;
    memcpy(d, c->out + c->out_pos, k);
    c->out_pos += k;
    *dn = k;
    if (c->out_pos < c->out_len)
        return ST_MORE;
    c->out_len = c->out_pos = 0;
    return c->out_status;
}

/* Run a complete command; its answer (CMAC'd when due) starts going out. */
static uint8_t run(emu_df_card *c, const uint8_t *m, size_t n, uint8_t *d, size_t *dn)
{
    static struct ans a;
    memset(&a, 0, sizeof a);
    dispatch(c, m, n, &a);
    if (a.st == ST_OK && c->sm == SM_EV1 && !a.enciphered) {
        uint8_t buf[EMU_DF_MSG_MAX + 1], t[16];
        memcpy(buf, a.d, a.n);
        buf[a.n] = ST_OK;
        cmac(c->s_type, c->s_key, c->s_iv, buf, a.n + 1, t);
        memcpy(a.d + a.n, t, 8);
        a.n += 8;
    }
    if (a.drop_after)
        drop_session(c);
    memcpy(c->out, a.d, a.n);
    c->out_len = a.n;
    c->out_pos = 0;
    c->out_status = a.st;
    if (a.n == 0) {
        *dn = 0;
        return a.st;
    }
    return next_chunk(c, d, dn);
}

static uint8_t command(emu_df_card *c, uint8_t ins, const uint8_t *p, size_t n, uint8_t *d,
                       size_t *dn)
{
    *dn = 0;
    if (ins == 0xAF) {
        if (c->out_pos < c->out_len && n == 0)
            return next_chunk(c, d, dn);
        if (c->in_need) {
            if (n > c->in_need - c->in_len) {
                c->in_need = c->in_len = 0;
                drop_session(c);
                return ST_LENGTH;
            }
            memcpy(c->in + c->in_len, p, n);
            c->in_len += n;
            if (c->in_len < c->in_need)
                return ST_MORE;
            c->in_need = 0;
            return run(c, c->in, c->in_len, d, dn);
        }
        if (c->auth_step == 1) {
            static struct ans a;
            memset(&a, 0, sizeof a);
            c_auth2(c, p, n, &a);
            memcpy(d, a.d, a.n);
            *dn = a.n;
            c->busy_us += T_AUTH_US;
            return a.st;
        }
        drop_session(c);
        return ST_ILLEGAL_COMMAND;
    }
    c->out_len = c->out_pos = 0; /* a new command cancels what was chained */
    c->in_need = c->in_len = 0;
    c->auth_step = 0;
    if (n + 1 > sizeof c->in) {
        drop_session(c);
        return ST_LENGTH;
    }
    c->in[0] = ins;
    memcpy(c->in + 1, p, n);
    c->in_len = n + 1;
    if (ins == 0x0A || ins == 0x1A || ins == 0xAA) {
        static struct ans a;
        memset(&a, 0, sizeof a);
        c_auth1(c, c->in, c->in_len, &a);
        memcpy(d, a.d, a.n);
        *dn = a.n;
        c->busy_us += T_AUTH_US;
        return a.st;
    }
    if (ins == 0x3D) {
        size_t need = write_need(c, c->in, c->in_len);
        if (need > sizeof c->in) {
            drop_session(c);
            return ST_LENGTH;
        }
        if (need > c->in_len) {
            c->in_need = need;
            return ST_MORE;
        }
    }
    return run(c, c->in, c->in_len, d, dn);
}

void emu_df_frame(emu_df_card *c, const uint8_t *in, size_t n, uint8_t *out, size_t *out_len)
{
    uint8_t d[EMU_DF_FRAME_MAX] = {0}, st;
    size_t dn = 0;
    c->busy_us = T_BASE_US;
    bool wrapped = n >= 5 && in[0] == 0x90 && in[2] == 0x00 && in[3] == 0x00;
    if (wrapped) {
        size_t lc = n == 5 ? 0 : in[4];
        if (n != 5 && (lc == 0 || (n != 6 + lc && n != 5 + lc))) {
            drop_session(c);
            st = ST_LENGTH;
        } else {
            st = command(c, in[1], in + 5, lc, d, &dn);
        }
        memcpy(out, d, dn);
        out[dn] = 0x91;
        out[dn + 1] = st;
        *out_len = dn + 2;
        return;
    }
    st = n ? command(c, in[0], in + 1, n - 1, d, &dn) : ST_LENGTH;
    out[0] = st;
    memcpy(out + 1, d, dn);
    *out_len = dn + 1;
}
