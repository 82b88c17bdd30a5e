/* test_keystore.c — the keystore's operations with both backends.
 *
 * Files: hex decoding, mode checks at every use, secrets never handed out.
 * Token (a throwaway SoftHSM2 token, tools/softhsm-token): the card key the
 * token derives equals the software derivation for NXP AN10922's own vector,
 * the project's vectors and random UIDs; the MAC equals OpenSSL's HMAC; the
 * master key cannot be read out through the raw PKCS#11 API (attributes,
 * C_GetAttributeValue of CKA_VALUE, wrapping, copying, re-flagging, other
 * uses); a readable key object is refused; a session the token drops is
 * opened again; wrong PIN, label, module and PIN file mode fail and say why.
 * Key pair (terminal_key_type = ecdsa-p256), both backends: generated once,
 * signatures verify under its public key (OpenSSL), no MAC, replaced only
 * when asked; in the token generated inside it and never readable; in a file
 * PEM of mode 0600, checked at every use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dlfcn.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "card.h"
#include "config.h"
#include "hex.h"
#include "keystore.h"
#include "testkeys.h"
#include "testutil.h"

static const uint8_t an_master[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                      0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF};
static uint8_t terminal_key[32];

static void unhex(const char *text, uint8_t *buf, size_t want)
{
    size_t n = 0;
    assert_int_equal(yn_hex_decode(text, buf, want, &n), YN_OK);
    assert_int_equal(n, want);
}

static void soft_hmac(const uint8_t *key, size_t key_len, const void *data, size_t len,
                      uint8_t out[32])
{
    unsigned int n = 32;
    assert_non_null(HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n));
    assert_int_equal(n, 32);
}

/* --- files --------------------------------------------------------------- */

static void test_file_checks_mode_each_time(void **state)
{
    (void)state;
    char dir[256];
    yn_config cfg;
    yn_config_defaults(&cfg);
    yn_test_tmpdir(dir, sizeof dir);
    yn_test_write(dir, "t.key", "00112233445566778899aabbccddeeff\n", 0600, cfg.keys.terminal_key,
                  sizeof cfg.keys.terminal_key);
    yn_test_write(dir, "i.pub", "abcd\n", 0644, cfg.keys.issuer_pubkey,
                  sizeof cfg.keys.issuer_pubkey);
    yn_keystore ks;
    uint8_t k[YN_KEYSTORE_SIG_LEN], mac[32], want[32];
    size_t n;
    assert_int_equal(yn_keystore_open(&ks, NULL, &cfg.keys),
                     YN_OK); /* backend = file, the default */
    assert_string_equal(ks.ops->name, "file");
    unhex("00112233445566778899aabbccddeeff", k, 16);
    soft_hmac(k, 16, "abc", 3, want);
    assert_int_equal(yn_keystore_mac(&ks, "abc", 3, mac), YN_OK);
    assert_memory_equal(mac, want, 32);
    /* public keys are read; secret ones never handed out */
    assert_int_equal(yn_keystore_load(&ks, YN_KEYID_ISSUER_PUB, k, sizeof k, &n), YN_OK);
    assert_int_equal(n, 2);
    assert_int_equal(yn_keystore_load(&ks, YN_KEYID_TERMINAL, k, sizeof k, &n), YN_EPERM);
    assert_int_equal(yn_keystore_load(&ks, YN_KEYID_CARD_MASTER, k, sizeof k, &n), YN_EPERM);
    assert_int_equal(n, 0);
    /* a secret that became readable by others is refused from then on */
    chmod(cfg.keys.terminal_key, 0640);
    assert_int_equal(yn_keystore_mac(&ks, "abc", 3, mac), YN_EPERM);
    assert_memory_not_equal(mac, want, 32);
    chmod(cfg.keys.terminal_key, 0400);
    assert_int_equal(yn_keystore_mac(&ks, "abc", 3, mac), YN_OK);
    /* not configured, missing */
    assert_int_equal(yn_keystore_load(&ks, YN_KEYID_DISTRICT_PUB, k, sizeof k, &n), YN_ENOTFOUND);
    static const uint8_t uid[7] = {4, 1, 2, 3, 4, 5, 6};
    assert_int_equal(yn_card_key(&ks, uid, 7, k), YN_ENOTFOUND);
    snprintf(cfg.keys.card_master_key, sizeof cfg.keys.card_master_key, "%s/nonexistent/m.key",
             dir);
    assert_int_equal(yn_card_key(&ks, uid, 7, k), YN_ENOENT);
    /* a master of the wrong length is not used */
    yn_test_write(dir, "m.key", "0011\n", 0600, cfg.keys.card_master_key,
                  sizeof cfg.keys.card_master_key);
    assert_int_equal(yn_card_key(&ks, uid, 7, k), YN_EINVAL);
    /* no signing key pair yet */
    assert_int_equal(yn_keystore_sign(&ks, "abc", 3, k), YN_ENOTSUP);
    yn_keystore_close(&ks);
}

/* Store: the file appears 0600; the same key again is fine, another one
 * only with replace. */
static void test_file_store(void **state)
{
    (void)state;
    char dir[256];
    yn_test_tmpdir(dir, sizeof dir);
    setenv("YN_KEYS_BACKEND", "file", 1);
    yn_testkeys t;
    yn_testkeys_open(&t, dir, an_master, terminal_key, sizeof terminal_key);
    struct stat sb;
    assert_int_equal(stat(t.cfg.keys.card_master_key, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    uint8_t other[16], key[16], want[16];
    memcpy(other, an_master, 16);
    other[0] ^= 1;
    assert_int_equal(yn_keystore_store(&t.ks, YN_KEYID_CARD_MASTER, an_master, 16, false), YN_OK);
    assert_int_equal(yn_keystore_store(&t.ks, YN_KEYID_CARD_MASTER, other, 16, false),
                     YN_EDUPLICATE);
    assert_int_equal(yn_keystore_store(&t.ks, YN_KEYID_CARD_MASTER, other, 15, true), YN_EINVAL);
    assert_int_equal(yn_keystore_store(&t.ks, YN_KEYID_ISSUER_PUB, other, 16, true), YN_EINVAL);
    assert_int_equal(yn_keystore_store(&t.ks, YN_KEYID_CARD_MASTER, other, 16, true), YN_OK);
    static const uint8_t uid[4] = {0xDE, 0xAD, 0xBE, 0xEF};
    assert_int_equal(yn_card_key(&t.ks, uid, 4, key), YN_OK);
    assert_int_equal(yn_card_key_for_uid(other, uid, 4, want), YN_OK);
    assert_memory_equal(key, want, 16);
    yn_keystore_key_info info;
    assert_int_equal(yn_keystore_inspect(&t.ks, YN_KEYID_CARD_MASTER, &info), YN_OK);
    assert_true(info.present && info.unreadable && info.works);
    yn_testkeys_close(&t);
}

/* --- the token ------------------------------------------------------------ */

struct token {
    char dir[256];
    yn_testkeys t;
};

/* The host's SoftHSM2 module cannot load into a board build under qemu-user
 * (tests/run-unit sets YN_CROSS there): the token tests run natively, in
 * make check. */
static bool under_qemu(void)
{
    return yn_test_under_qemu("the host's SoftHSM2 module is not the board's");
}

/* The test's token, or skip the test. */
#define TOKEN(state)                                                                               \
    ({                                                                                             \
        if (!*(state))                                                                             \
            skip();                                                                                \
        (struct token *)*(state);                                                                  \
    })

static int token_setup(void **state)
{
    *state = NULL;
    if (under_qemu())
        return 0;
    struct token *tk = calloc(1, sizeof *tk);
    yn_test_tmpdir(tk->dir, sizeof tk->dir);
    setenv("YN_KEYS_BACKEND", "pkcs11", 1);
    yn_testkeys_open(&tk->t, tk->dir, an_master, terminal_key, sizeof terminal_key);
    *state = tk;
    return 0;
}

static int token_teardown(void **state)
{
    struct token *tk = *state;
    if (!tk)
        return 0;
    yn_testkeys_close(&tk->t);
    free(tk);
    return 0;
}

/* The raw PKCS#11 API, as anyone holding the board and the PIN may use it:
 * the same module, already initialised by the keystore in this process. */
struct raw {
    void *lib;
    CK_FUNCTION_LIST_PTR f;
    CK_SESSION_HANDLE h;
    CK_SLOT_ID slot;
};

static void raw_open(struct raw *r, const yn_testkeys *t)
{
    memset(r, 0, sizeof *r);
    r->lib = dlopen(t->cfg.keys.pkcs11_module, RTLD_NOW);
    assert_non_null(r->lib);
    CK_C_GetFunctionList get = NULL;
    *(void **)&get = dlsym(r->lib, "C_GetFunctionList");
    assert_non_null(get);
    assert_int_equal(get(&r->f), CKR_OK);
    CK_RV rv = r->f->C_Initialize(NULL);
    assert_true(rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED);
    CK_SLOT_ID slots[8];
    CK_ULONG n = 8;
    assert_int_equal(r->f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
    bool found = false;
    for (CK_ULONG i = 0; i < n && !found; i++) {
        CK_TOKEN_INFO ti;
        assert_int_equal(r->f->C_GetTokenInfo(slots[i], &ti), CKR_OK);
        found = memcmp(ti.label, "yinian-test ", 12) == 0;
        r->slot = slots[i];
    }
    assert_true(found);
    assert_int_equal(
        r->f->C_OpenSession(r->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &r->h),
        CKR_OK);
    char pin[64];
    size_t pl;
    assert_int_equal(yn_secret_file_text(t->cfg.keys.pin_file, "pin", pin, sizeof pin, &pl), YN_OK);
    rv = r->f->C_Login(r->h, CKU_USER, (CK_UTF8CHAR_PTR)pin, pl);
    assert_true(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN);
}

static void raw_close(struct raw *r)
{
    r->f->C_CloseSession(r->h);
    dlclose(r->lib); /* a reference of ours; the keystore keeps its own */
}

static CK_OBJECT_HANDLE raw_find(struct raw *r, const char *label)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE o[4];
    CK_ULONG n = 0;
    assert_int_equal(r->f->C_FindObjectsInit(r->h, t, 2), CKR_OK);
    assert_int_equal(r->f->C_FindObjects(r->h, o, 4, &n), CKR_OK);
    assert_int_equal(r->f->C_FindObjectsFinal(r->h), CKR_OK);
    assert_int_equal(n, 1);
    return o[0];
}

static CK_BBOOL raw_bool(struct raw *r, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type)
{
    CK_BBOOL v = 2;
    CK_ATTRIBUTE a = {type, &v, sizeof v};
    assert_int_equal(r->f->C_GetAttributeValue(r->h, o, &a, 1), CKR_OK);
    return v;
}

/* The token's card keys are the software's: AN10922's own example, the
 * project's vectors (CARD.md §3), and 3,000 random UIDs of each length. */
static void test_token_card_key_equals_software(void **state)
{
    struct token *tk = TOKEN(state);
    uint8_t uid[10], aid[3], sysid[7], want[16], got[16];
    unhex("04782E21801D80", uid, 7);
    unhex("3042F5", aid, 3);
    unhex("4E585020416275", sysid, 7);
    unhex("A8DD63A3B89D54B37CA802473FDA9175", want, 16);
    assert_int_equal(yn_keystore_diversify(&tk->t.ks, uid, 7, aid, 3, sysid, 7, got), YN_OK);
    assert_memory_equal(got, want, 16);
    unhex("9B13CB54D73AF91E5D52897C9D339DC8", want, 16);
    assert_int_equal(yn_card_key(&tk->t.ks, uid, 7, got), YN_OK);
    assert_memory_equal(got, want, 16);
    unhex("DEADBEEF", uid, 4);
    unhex("5BC52F5DEB40C9E8102DF7B6CF672B4C", want, 16);
    assert_int_equal(yn_card_key(&tk->t.ks, uid, 4, got), YN_OK);
    assert_memory_equal(got, want, 16);
    static const size_t lens[3] = {4, 7, 10};
    for (int i = 0; i < 3000; i++) {
        size_t len = lens[i % 3];
        assert_int_equal(RAND_bytes(uid, (int)len), 1);
        assert_int_equal(yn_card_key(&tk->t.ks, uid, len, got), YN_OK);
        assert_int_equal(yn_card_key_for_uid(an_master, uid, len, want), YN_OK);
        assert_memory_equal(got, want, 16);
    }
    /* inputs where the AN's padding is not standard CMAC are refused, not guessed */
    assert_int_equal(yn_keystore_diversify(&tk->t.ks, uid, 4, aid, 3, sysid, 7, got), YN_EINVAL);
    assert_int_equal(yn_card_key(&tk->t.ks, uid, 5, got), YN_EINVAL);
}

static void test_token_mac_equals_software(void **state)
{
    struct token *tk = TOKEN(state);
    static uint8_t data[1 << 20];
    uint8_t got[32], want[32];
    assert_int_equal(RAND_bytes(data, sizeof data), 1);
    static const size_t lens[] = {0, 1, 63, 64, 65, 1000, sizeof data};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        assert_int_equal(yn_keystore_mac(&tk->t.ks, data, lens[i], got), YN_OK);
        soft_hmac(terminal_key, sizeof terminal_key, data, lens[i], want);
        assert_memory_equal(got, want, 32);
    }
    uint8_t sig[YN_KEYSTORE_SIG_LEN];
    assert_int_equal(yn_keystore_sign(&tk->t.ks, data, 10, sig), YN_ENOTSUP);
}

/* Whoever holds the powered board and the PIN can use the keys through the
 * token, but cannot read them out. */
static void test_token_keys_cannot_be_read_out(void **state)
{
    struct token *tk = TOKEN(state);
    struct raw r;
    raw_open(&r, &tk->t);
    const char *labels[2] = {"yinian-card-master", "yinian-terminal"};
    for (int i = 0; i < 2; i++) {
        CK_OBJECT_HANDLE key = raw_find(&r, labels[i]);
        assert_int_equal(raw_bool(&r, key, CKA_EXTRACTABLE), CK_FALSE);
        assert_int_equal(raw_bool(&r, key, CKA_SENSITIVE), CK_TRUE);
        assert_int_equal(raw_bool(&r, key, CKA_MODIFIABLE), CK_FALSE);
        uint8_t value[64];
        CK_ATTRIBUTE a = {CKA_VALUE, value, sizeof value};
        assert_int_equal(r.f->C_GetAttributeValue(r.h, key, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
        assert_int_equal(a.ulValueLen, CK_UNAVAILABLE_INFORMATION);
        /* nor made extractable, or not sensitive, afterwards */
        CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
        CK_ATTRIBUTE x = {CKA_EXTRACTABLE, &yes, sizeof yes};
        assert_int_not_equal(r.f->C_SetAttributeValue(r.h, key, &x, 1), CKR_OK);
        CK_ATTRIBUTE s = {CKA_SENSITIVE, &no, sizeof no};
        assert_int_not_equal(r.f->C_SetAttributeValue(r.h, key, &s, 1), CKR_OK);
        assert_int_equal(raw_bool(&r, key, CKA_EXTRACTABLE), CK_FALSE);
        /* nor copied into an extractable object */
        CK_OBJECT_HANDLE copy = CK_INVALID_HANDLE;
        assert_int_not_equal(r.f->C_CopyObject(r.h, key, &x, 1, &copy), CKR_OK);
        /* nor wrapped under a key of ours */
        CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
        CK_KEY_TYPE aes = CKK_AES;
        CK_ULONG len = 16;
        CK_ATTRIBUTE wt[] = {
            {CKA_CLASS, &cls, sizeof cls},     {CKA_KEY_TYPE, &aes, sizeof aes},
            {CKA_VALUE_LEN, &len, sizeof len}, {CKA_WRAP, &yes, sizeof yes},
            {CKA_TOKEN, &no, sizeof no},       {CKA_EXTRACTABLE, &yes, sizeof yes}};
        CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
        CK_OBJECT_HANDLE wrapper;
        assert_int_equal(r.f->C_GenerateKey(r.h, &gen, wt, 6, &wrapper), CKR_OK);
        uint8_t wrapped[128];
        CK_ULONG wl = sizeof wrapped;
        CK_MECHANISM wrap = {CKM_AES_KEY_WRAP_PAD, NULL, 0};
        CK_RV rv = r.f->C_WrapKey(r.h, &wrap, wrapper, key, wrapped, &wl);
        assert_true(rv == CKR_KEY_UNEXTRACTABLE || rv == CKR_KEY_NOT_WRAPPABLE);
        r.f->C_DestroyObject(r.h, wrapper);
        /* nor used for anything but signing (an encryption or derivation oracle) */
        CK_MECHANISM ecb = {CKM_AES_ECB, NULL, 0};
        assert_int_not_equal(r.f->C_EncryptInit(r.h, &ecb, key), CKR_OK);
        assert_int_not_equal(r.f->C_DecryptInit(r.h, &ecb, key), CKR_OK);
    }
    raw_close(&r);
}

/* Storing: the same key again changes nothing; another one needs replace
 * and leaves exactly one object, of the next generation. */
static void test_token_store_replace(void **state)
{
    struct token *tk = TOKEN(state);
    uint8_t other[16], got[16], want[16];
    memcpy(other, an_master, 16);
    other[15] ^= 0x80;
    assert_int_equal(yn_keystore_store(&tk->t.ks, YN_KEYID_CARD_MASTER, an_master, 16, false),
                     YN_OK);
    assert_int_equal(yn_keystore_store(&tk->t.ks, YN_KEYID_CARD_MASTER, other, 16, false),
                     YN_EDUPLICATE);
    static const uint8_t uid[7] = {0x04, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60};
    assert_int_equal(yn_card_key(&tk->t.ks, uid, 7, got), YN_OK);
    assert_int_equal(yn_card_key_for_uid(an_master, uid, 7, want), YN_OK);
    assert_memory_equal(got, want, 16); /* still the first */
    assert_int_equal(yn_keystore_store(&tk->t.ks, YN_KEYID_CARD_MASTER, other, 16, true), YN_OK);
    assert_int_equal(yn_card_key(&tk->t.ks, uid, 7, got), YN_OK);
    assert_int_equal(yn_card_key_for_uid(other, uid, 7, want), YN_OK);
    assert_memory_equal(got, want, 16);
    yn_keystore_key_info info;
    assert_int_equal(yn_keystore_inspect(&tk->t.ks, YN_KEYID_CARD_MASTER, &info), YN_OK);
    assert_true(info.present && info.unreadable && info.works);
    assert_int_equal(info.copies, 1);
    assert_non_null(strstr(info.detail, "generation 2"));
    /* enrolment replaces the terminal key */
    uint8_t k2[32], mac[32], wmac[32];
    memset(k2, 0x5A, sizeof k2);
    assert_int_equal(yn_keystore_store(&tk->t.ks, YN_KEYID_TERMINAL, k2, 32, true), YN_OK);
    assert_int_equal(yn_keystore_mac(&tk->t.ks, "x", 1, mac), YN_OK);
    soft_hmac(k2, 32, "x", 1, wmac);
    assert_memory_equal(mac, wmac, 32);
}

/* A key object someone made readable (e.g. imported by hand without the
 * flags) is not used; storing again with replace puts a good one. */
static void test_token_refuses_readable_key(void **state)
{
    struct token *tk = TOKEN(state);
    struct raw r;
    raw_open(&r, &tk->t);
    CK_OBJECT_HANDLE key = raw_find(&r, "yinian-card-master");
    assert_int_equal(r.f->C_DestroyObject(r.h, key), CKR_OK);
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE aes = CKK_AES;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    const char *label = "yinian-card-master";
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},      {CKA_KEY_TYPE, &aes, sizeof aes},
        {CKA_TOKEN, &yes, sizeof yes},      {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_VALUE, (void *)an_master, 16}, {CKA_SIGN, &yes, sizeof yes},
        {CKA_SENSITIVE, &no, sizeof no},    {CKA_EXTRACTABLE, &yes, sizeof yes}};
    assert_int_equal(r.f->C_CreateObject(r.h, t, 8, &key), CKR_OK);
    raw_close(&r);
    uint8_t got[16];
    static const uint8_t uid[4] = {1, 2, 3, 4};
    assert_int_equal(yn_card_key(&tk->t.ks, uid, 4, got), YN_EPERM);
    yn_keystore_key_info info;
    assert_int_equal(yn_keystore_inspect(&tk->t.ks, YN_KEYID_CARD_MASTER, &info), YN_OK);
    assert_true(info.present);
    assert_false(info.unreadable);
    assert_false(info.works);
    assert_non_null(strstr(info.detail, "EXTRACTABLE"));
    /* not silently replaced, even by the same bytes */
    assert_int_equal(yn_keystore_store(&tk->t.ks, YN_KEYID_CARD_MASTER, an_master, 16, false),
                     YN_EPERM);
    assert_int_equal(yn_keystore_store(&tk->t.ks, YN_KEYID_CARD_MASTER, an_master, 16, true),
                     YN_OK);
    assert_int_equal(yn_card_key(&tk->t.ks, uid, 4, got), YN_OK);
    assert_int_equal(yn_keystore_inspect(&tk->t.ks, YN_KEYID_CARD_MASTER, &info), YN_OK);
    assert_true(info.unreadable && info.works && info.copies == 1);
}

/* The token drops every session of ours (a reset, a removed and replaced
 * token): the next tap opens a session again and logs in once more. */
static void test_token_session_dropped(void **state)
{
    struct token *tk = TOKEN(state);
    struct raw r;
    uint8_t got[16], want[16], mac[32];
    static const uint8_t uid[7] = {0x04, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF};
    assert_int_equal(yn_card_key(&tk->t.ks, uid, 7, got), YN_OK);
    raw_open(&r, &tk->t);
    assert_int_equal(r.f->C_CloseAllSessions(r.slot), CKR_OK); /* logged out too */
    dlclose(r.lib);
    memset(got, 0, sizeof got);
    assert_int_equal(yn_card_key(&tk->t.ks, uid, 7, got), YN_OK);
    assert_int_equal(yn_card_key_for_uid(an_master, uid, 7, want), YN_OK);
    assert_memory_equal(got, want, 16);
    assert_int_equal(yn_keystore_mac(&tk->t.ks, "y", 1, mac), YN_OK);
}

struct worker {
    yn_keystore *ks;
    bool mac; /* else card keys */
    int failures;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 300; i++) {
        uint8_t uid[7] = {0x04, 1, 2, 3, 4, (uint8_t)(i >> 8), (uint8_t)i};
        uint8_t got[32], want[32];
        if (w->mac) {
            w->failures += yn_keystore_mac(w->ks, uid, sizeof uid, got) != YN_OK;
            unsigned int n = 32;
            HMAC(EVP_sha256(), terminal_key, 32, uid, sizeof uid, want, &n);
            w->failures += memcmp(got, want, 32) != 0;
        } else {
            w->failures += yn_card_key(w->ks, uid, 7, got) != YN_OK;
            w->failures += yn_card_key_for_uid(an_master, uid, 7, want) != YN_OK;
            w->failures += memcmp(got, want, 16) != 0;
        }
    }
    return NULL;
}

/* The counter and the sync thread at once. */
static void test_token_two_threads(void **state)
{
    struct token *tk = TOKEN(state);
    struct worker w[2] = {{&tk->t.ks, false, 0}, {&tk->t.ks, true, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(w[0].failures + w[1].failures, 0);
}

/* --- the terminal's key pair (sync/PROTOCOL.md §10), both backends -------- */

/* What both backends must do with a key pair: made once (a second call keeps
 * it), signatures that verify under its public key and no other data, no
 * MAC and no imported key, a fingerprint, and a new pair only when asked. */
static void pair_behaves(yn_testkeys *t, const uint8_t pub[YN_KEYSTORE_PUB_LEN])
{
    uint8_t again[YN_KEYSTORE_PUB_LEN], sig[YN_KEYSTORE_SIG_LEN], mac[32];
    bool made = true;
    assert_true(yn_sig_p256_pub_ok(pub, YN_KEYSTORE_PUB_LEN));
    assert_int_equal(yn_keystore_generate(&t->ks, false, again, &made), YN_OK);
    assert_false(made);
    assert_memory_equal(again, pub, YN_KEYSTORE_PUB_LEN);
    assert_int_equal(yn_keystore_public_key(&t->ks, again), YN_OK);
    assert_memory_equal(again, pub, YN_KEYSTORE_PUB_LEN);
    static uint8_t data[70000];
    assert_int_equal(RAND_bytes(data, sizeof data), 1);
    static const size_t lens[] = {0, 1, 64, 1000, sizeof data};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        assert_int_equal(yn_keystore_sign(&t->ks, data, lens[i], sig), YN_OK);
        assert_int_equal(yn_sig_p256_verify(pub, data, lens[i], sig), YN_OK);
        data[0] ^= 1; /* another message: refused */
        assert_int_equal(yn_sig_p256_verify(pub, data, lens[i], sig), lens[i] ? YN_EAUTH : YN_OK);
        data[0] ^= 1;
        sig[10] ^= 0x40; /* a changed signature: refused */
        assert_int_equal(yn_sig_p256_verify(pub, data, lens[i], sig), YN_EAUTH);
    }
    /* a key-pair terminal has no shared key: no MAC, nothing imported */
    assert_int_equal(yn_keystore_mac(&t->ks, data, 10, mac), YN_ENOTSUP);
    assert_int_equal(
        yn_keystore_store(&t->ks, YN_KEYID_TERMINAL, terminal_key, sizeof terminal_key, true),
        YN_EINVAL);
    yn_keystore_key_info info;
    assert_int_equal(yn_keystore_inspect(&t->ks, YN_KEYID_TERMINAL, &info), YN_OK);
    assert_true(info.present && info.unreadable && info.works);
    assert_int_equal(info.copies, 1);
    char fp[YN_SIG_FINGERPRINT_LEN + 1];
    yn_sig_fingerprint(pub, fp);
    assert_string_equal(info.fingerprint, fp);
    assert_non_null(strstr(info.detail, fp));
    /* replace: a new pair; the old public key no longer verifies */
    assert_int_equal(yn_keystore_generate(&t->ks, true, again, &made), YN_OK);
    assert_true(made);
    assert_memory_not_equal(again, pub, YN_KEYSTORE_PUB_LEN);
    assert_int_equal(yn_keystore_sign(&t->ks, data, 100, sig), YN_OK);
    assert_int_equal(yn_sig_p256_verify(again, data, 100, sig), YN_OK);
    assert_int_equal(yn_sig_p256_verify(pub, data, 100, sig), YN_EAUTH);
    assert_int_equal(yn_keystore_inspect(&t->ks, YN_KEYID_TERMINAL, &info), YN_OK);
    assert_int_equal(info.copies, 1); /* the older pair is gone */
}

/* The file backend: the pair is a PEM file of mode 0600, checked at every
 * use; an HMAC terminal's keystore signs nothing. */
static void test_file_key_pair(void **state)
{
    (void)state;
    char dir[256];
    yn_test_tmpdir(dir, sizeof dir);
    yn_testkeys t;
    uint8_t pub[YN_KEYSTORE_PUB_LEN], sig[YN_KEYSTORE_SIG_LEN];
    yn_testkeys_open_pair(&t, "file", dir, an_master, pub);
    struct stat sb;
    assert_int_equal(stat(t.cfg.keys.terminal_key, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    FILE *f = fopen(t.cfg.keys.terminal_key, "r");
    char line[64] = "";
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_string_equal(line, "-----BEGIN PRIVATE KEY-----\n");
    pair_behaves(&t, pub);
    chmod(t.cfg.keys.terminal_key, 0644);
    assert_int_equal(yn_keystore_sign(&t.ks, "x", 1, sig), YN_EPERM);
    chmod(t.cfg.keys.terminal_key, 0600);
    assert_int_equal(yn_keystore_sign(&t.ks, "x", 1, sig), YN_OK);
    yn_testkeys_close(&t);

    yn_test_tmpdir(dir, sizeof dir);
    yn_testkeys_open_as(&t, "file", dir, NULL, terminal_key, sizeof terminal_key);
    assert_int_equal(yn_keystore_sign(&t.ks, "x", 1, sig), YN_ENOTSUP);
    assert_int_equal(yn_keystore_generate(&t.ks, false, pub, NULL), YN_ENOTSUP);
    yn_testkeys_close(&t);
}

/* The token: the pair is generated inside it (CKA_LOCAL,
 * CKA_NEVER_EXTRACTABLE), its private half sensitive, not extractable, for
 * signing only — and cannot be read out. */
static void test_token_key_pair(void **state)
{
    (void)state;
    if (under_qemu())
        skip();
    char dir[256];
    yn_test_tmpdir(dir, sizeof dir);
    yn_testkeys t;
    uint8_t pub[YN_KEYSTORE_PUB_LEN];
    yn_testkeys_open_pair(&t, "pkcs11", dir, an_master, pub);
    pair_behaves(&t, pub);
    yn_keystore_key_info info;
    assert_int_equal(yn_keystore_inspect(&t.ks, YN_KEYID_TERMINAL, &info), YN_OK);
    assert_non_null(strstr(info.detail, "generated in the token"));
    struct raw r;
    raw_open(&r, &t);
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    const char *label = "yinian-terminal";
    CK_ATTRIBUTE tp[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE o[4];
    CK_ULONG n = 0;
    assert_int_equal(r.f->C_FindObjectsInit(r.h, tp, 2), CKR_OK);
    assert_int_equal(r.f->C_FindObjects(r.h, o, 4, &n), CKR_OK);
    assert_int_equal(r.f->C_FindObjectsFinal(r.h), CKR_OK);
    assert_int_equal(n, 1);
    assert_int_equal(raw_bool(&r, o[0], CKA_SENSITIVE), CK_TRUE);
    assert_int_equal(raw_bool(&r, o[0], CKA_EXTRACTABLE), CK_FALSE);
    assert_int_equal(raw_bool(&r, o[0], CKA_NEVER_EXTRACTABLE), CK_TRUE);
    assert_int_equal(raw_bool(&r, o[0], CKA_LOCAL), CK_TRUE);
    assert_int_equal(raw_bool(&r, o[0], CKA_DECRYPT), CK_FALSE);
    assert_int_equal(raw_bool(&r, o[0], CKA_DERIVE), CK_FALSE);
    uint8_t value[128];
    CK_ATTRIBUTE a = {CKA_VALUE, value, sizeof value};
    assert_int_equal(r.f->C_GetAttributeValue(r.h, o[0], &a, 1), CKR_ATTRIBUTE_SENSITIVE);
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE x = {CKA_EXTRACTABLE, &yes, sizeof yes};
    assert_int_not_equal(r.f->C_SetAttributeValue(r.h, o[0], &x, 1), CKR_OK);
    raw_close(&r);
    yn_testkeys_close(&t);
}

/* Wrong PIN, label, module or PIN file mode: the keystore does not open and
 * says why — it never falls back to anything else. A fresh token holds no
 * key: the operations say so. */
static void test_token_open_failures(void **state)
{
    (void)state;
    if (under_qemu())
        skip();
    char dir[256], pin[PATH_MAX];
    yn_test_tmpdir(dir, sizeof dir);
    setenv("YN_KEYS_BACKEND", "pkcs11", 1);
    yn_testkeys t;
    assert_int_equal(yn_testkeys_config(&t, dir), YN_OK);
    yn_keystore ks;
    /* a fresh token: opens, holds nothing */
    assert_int_equal(yn_keystore_open(&ks, NULL, &t.cfg.keys), YN_OK);
    uint8_t out[32];
    static const uint8_t uid[4] = {9, 8, 7, 6};
    assert_int_equal(yn_card_key(&ks, uid, 4, out), YN_ENOTFOUND);
    assert_int_equal(yn_keystore_mac(&ks, "a", 1, out), YN_ENOTFOUND);
    yn_keystore_key_info info;
    assert_int_equal(yn_keystore_inspect(&ks, YN_KEYID_CARD_MASTER, &info), YN_OK);
    assert_false(info.present);
    yn_keystore_close(&ks);

    yn_config cfg = t.cfg;
    snprintf(cfg.keys.token_label, sizeof cfg.keys.token_label, "no-such-token");
    assert_int_equal(yn_keystore_open(&ks, NULL, &cfg.keys), YN_ENODEV);
    assert_non_null(strstr(ks.error, "no token labelled 'no-such-token'"));
    assert_non_null(strstr(ks.error, "'yinian-test'"));

    cfg = t.cfg;
    snprintf(cfg.keys.pkcs11_module, sizeof cfg.keys.pkcs11_module, "%s/no-module.so", dir);
    assert_int_equal(yn_keystore_open(&ks, NULL, &cfg.keys), YN_EIO);
    assert_non_null(strstr(ks.error, "does not load"));

    cfg = t.cfg;
    yn_test_write(dir, "wrong.pin", "123456\n", 0600, pin, sizeof pin);
    snprintf(cfg.keys.pin_file, sizeof cfg.keys.pin_file, "%s", pin);
    assert_int_equal(yn_keystore_open(&ks, NULL, &cfg.keys), YN_EAUTH);
    assert_non_null(strstr(ks.error, "CKR_PIN_INCORRECT"));

    chmod(t.cfg.keys.pin_file, 0640);
    assert_int_equal(yn_keystore_open(&ks, NULL, &t.cfg.keys), YN_EPERM);
    assert_non_null(strstr(ks.error, "mode 0600"));
    chmod(t.cfg.keys.pin_file, 0600);

    cfg = t.cfg;
    snprintf(cfg.keys.backend, sizeof cfg.keys.backend, "pkcs12");
    assert_int_equal(yn_keystore_open(&ks, NULL, &cfg.keys), YN_ECONFIG);
    assert_non_null(strstr(ks.error, "not built into"));
    /* after all that, the right configuration still opens */
    assert_int_equal(yn_keystore_open(&ks, NULL, &t.cfg.keys), YN_OK);
    yn_keystore_close(&ks);
}

int main(void)
{
    for (size_t i = 0; i < sizeof terminal_key; i++)
        terminal_key[i] = (uint8_t)(0x20 + i);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_checks_mode_each_time),
        cmocka_unit_test(test_file_store),
        cmocka_unit_test_setup_teardown(test_token_card_key_equals_software, token_setup,
                                        token_teardown),
        cmocka_unit_test_setup_teardown(test_token_mac_equals_software, token_setup,
                                        token_teardown),
        cmocka_unit_test_setup_teardown(test_token_keys_cannot_be_read_out, token_setup,
                                        token_teardown),
        cmocka_unit_test_setup_teardown(test_token_store_replace, token_setup, token_teardown),
        cmocka_unit_test_setup_teardown(test_token_refuses_readable_key, token_setup,
                                        token_teardown),
        cmocka_unit_test_setup_teardown(test_token_session_dropped, token_setup, token_teardown),
        cmocka_unit_test_setup_teardown(test_token_two_threads, token_setup, token_teardown),
        cmocka_unit_test(test_token_open_failures),
        cmocka_unit_test(test_file_key_pair),
        cmocka_unit_test(test_token_key_pair),
    };
    return cmocka_run_group_tests_name("keystore", tests, NULL, NULL);
}
