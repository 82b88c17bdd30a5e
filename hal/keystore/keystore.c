/* keystore.c — the keystore's operations, and its file backend.
 *
 * A key file holds hex text; whitespace and '#' comments are allowed. A
 * terminal key pair (terminal_key_type = ecdsa-p256) is a PEM file (PKCS#8,
 * unencrypted: the file's mode is its protection, as for the hex keys).
 * Secret key files are re-checked at every use: regular file, owned by this
 * process's user, no access for group or others. A secret that leaked through
 * a bad mode is refused rather than used. The file backend reads the key for
 * each operation and wipes it after: no copy stays in memory between taps.
 * The token backend is hal/keystore/keystore_pkcs11.c. */
#include "keystore.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "an10922.h"
#include "fileio.h"
#include "hex.h"
#include "hal.h"
#include "keystore_int.h"
#include "log.h"
#include "sig.h"

static bool is_secret(enum yn_key_id id)
{
    return id == YN_KEYID_TERMINAL || id == YN_KEYID_CARD_MASTER;
}

static const char *path_of(const yn_keys_conf *cfg, enum yn_key_id id)
{
    switch (id) {
    case YN_KEYID_TERMINAL:
        return cfg->terminal_key;
    case YN_KEYID_CARD_MASTER:
        return cfg->card_master_key;
    case YN_KEYID_ISSUER_PUB:
        return cfg->issuer_pubkey;
    case YN_KEYID_DISTRICT_PUB:
        return cfg->district_pubkey;
    default:
        return "";
    }
}

const char *yn_key_id_name(enum yn_key_id id)
{
    static const char *const names[YN_KEYID_COUNT] = {"terminal_key", "card_master_key",
                                                      "issuer_pubkey", "district_pubkey"};
    return (unsigned)id < YN_KEYID_COUNT ? names[id] : "?";
}

void yn_ks_fail(yn_keystore *ks, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ks->error, sizeof ks->error, fmt, ap);
    va_end(ap);
    yn_err("keystore: %s", ks->error);
}

/* Read a key file's text (at most cap - 1 bytes) after checking it: a regular
 * file, and for a secret owned by us with no access for group or others. */
static int read_checked(const char *path, bool secret, const char *what, char *text, size_t cap,
                        size_t *len)
{
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        yn_err("keystore: cannot open %s '%s': %s", what, path, strerror(errno));
        return errno == ENOENT ? YN_ENOENT : YN_EPERM;
    }
    struct stat sb;
    int rc = YN_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        yn_err("keystore: %s '%s' is not a regular file", what, path);
        rc = YN_EPERM;
    } else if (secret && ((sb.st_mode & 077) || sb.st_uid != geteuid())) {
        yn_err("keystore: secret %s '%s' has mode %04o owner %u; expected mode 0600 owned by "
               "uid %u",
               what, path, (unsigned)(sb.st_mode & 07777), (unsigned)sb.st_uid,
               (unsigned)geteuid());
        rc = YN_EPERM;
    } else if ((size_t)sb.st_size >= cap) {
        yn_err("keystore: %s '%s' is too large", what, path);
        rc = YN_ELIMIT;
    }
    ssize_t got = rc == YN_OK ? read(fd, text, cap - 1) : -1;
    close(fd);
    if (rc != YN_OK)
        return rc;
    if (got < 0)
        return YN_EIO;
    text[got] = '\0';
    *len = (size_t)got;
    return YN_OK;
}

int yn_key_file_load(const char *path, bool secret, const char *what, uint8_t *buf, size_t cap,
                     size_t *len)
{
    char text[YN_KEY_MAX * 3 + 1];
    size_t n;
    *len = 0;
    int rc = read_checked(path, secret, what, text, sizeof text, &n);
    if (rc == YN_OK && (rc = yn_hex_decode(text, buf, cap, len)) != YN_OK)
        yn_err("keystore: %s '%s' is not hex text of at most %zu bytes", what, path, cap);
    explicit_bzero(text, sizeof text);
    return rc;
}

int yn_secret_file_text(const char *path, const char *what, char *text, size_t cap, size_t *len)
{
    int rc = read_checked(path, true, what, text, cap, len);
    while (rc == YN_OK && *len && (text[*len - 1] == '\n' || text[*len - 1] == '\r'))
        text[--*len] = '\0';
    return rc;
}

int yn_ks_soft_mac(const uint8_t *key, size_t key_len, const void *data, size_t len,
                   uint8_t out[YN_KEYSTORE_MAC_LEN])
{
    unsigned int n = YN_KEYSTORE_MAC_LEN;
    if (!HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &n) || n != YN_KEYSTORE_MAC_LEN) {
        memset(out, 0, YN_KEYSTORE_MAC_LEN);
        return YN_ENOMEM;
    }
    return YN_OK;
}

/* --- the file backend ------------------------------------------------------ */

static const yn_keys_conf *CFG(const yn_keystore *ks)
{
    return ks->cfg;
}

/* A secret key's bytes from its file, length checked; the caller wipes key. */
static int file_secret(yn_keystore *ks, enum yn_key_id id, uint8_t key[YN_KEYSTORE_TERMINAL_MAX],
                       size_t *len)
{
    const char *path = path_of(CFG(ks), id);
    size_t min = id == YN_KEYID_CARD_MASTER ? YN_KEYSTORE_CARD_MASTER : YN_KEYSTORE_TERMINAL_MIN;
    size_t max = id == YN_KEYID_CARD_MASTER ? YN_KEYSTORE_CARD_MASTER : YN_KEYSTORE_TERMINAL_MAX;
    uint8_t buf[YN_KEY_MAX];
    *len = 0;
    if (!path[0]) {
        yn_err("keystore: %s is not configured in %s [keys]", yn_key_id_name(id), CFG(ks)->source);
        return YN_ENOTFOUND;
    }
    int rc = yn_key_file_load(path, true, yn_key_id_name(id), buf, sizeof buf, len);
    if (rc == YN_OK && (*len < min || *len > max)) {
        yn_err("keystore: %s '%s' holds %zu bytes; expected %zu..%zu", yn_key_id_name(id), path,
               *len, min, max);
        rc = YN_EINVAL;
    }
    if (rc == YN_OK)
        memcpy(key, buf, *len);
    explicit_bzero(buf, sizeof buf);
    return rc;
}

static int file_open(yn_keystore *ks, const yn_keys_conf *cfg)
{
    (void)cfg;
    snprintf(ks->where, sizeof ks->where, "key files");
    return YN_OK;
}

static int file_diversify(yn_keystore *ks, const uint8_t *d, size_t d_len,
                          uint8_t out[YN_KEYSTORE_CARD_KEY_LEN])
{
    uint8_t master[YN_KEYSTORE_TERMINAL_MAX];
    size_t len;
    int rc = file_secret(ks, YN_KEYID_CARD_MASTER, master, &len);
    if (rc == YN_OK)
        rc = yn_an10922_cmac(master, d, d_len, out);
    explicit_bzero(master, sizeof master);
    return rc;
}

static int file_mac(yn_keystore *ks, const void *data, size_t n, uint8_t out[YN_KEYSTORE_MAC_LEN])
{
    uint8_t key[YN_KEYSTORE_TERMINAL_MAX];
    size_t len;
    int rc = file_secret(ks, YN_KEYID_TERMINAL, key, &len);
    if (rc == YN_OK)
        rc = yn_ks_soft_mac(key, len, data, n, out);
    explicit_bzero(key, sizeof key);
    return rc;
}

/* PEM text to hand OpenSSL: never ask for a passphrase (the file is not
 * encrypted; an encrypted one is refused, not prompted for). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return 0;
}

/* The terminal key file's path, or NULL (logged) when none is configured. */
static const char *terminal_path(const yn_keystore *ks)
{
    if (CFG(ks)->terminal_key[0])
        return CFG(ks)->terminal_key;
    yn_err("keystore: terminal_key is not configured in %s [keys]", CFG(ks)->source);
    return NULL;
}

/* The terminal's key pair from its PEM file (checked as a secret file). */
static int file_pair(yn_keystore *ks, EVP_PKEY **key)
{
    char text[8192];
    size_t n = 0;
    const char *path = terminal_path(ks);
    *key = NULL;
    if (!path)
        return YN_ENOTFOUND;
    int rc = read_checked(path, true, "terminal key pair", text, sizeof text, &n);
    BIO *bio = rc == YN_OK ? BIO_new_mem_buf(text, (int)n) : NULL;
    if (rc == YN_OK)
        *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    uint8_t pub[YN_KEYSTORE_PUB_LEN];
    if (rc == YN_OK && (!*key || yn_sig_p256_public(*key, pub) != YN_OK)) {
        yn_err("keystore: terminal_key '%s' holds no ECDSA P-256 key pair (PEM) but [keys] "
               "terminal_key_type = ecdsa-p256: enrol again (yinian-pos --enrol TOKEN makes one)",
               path);
        EVP_PKEY_free(*key);
        *key = NULL;
        rc = YN_EINVAL;
    }
    BIO_free(bio);
    explicit_bzero(text, sizeof text);
    return rc;
}

static int file_sign(yn_keystore *ks, const void *data, size_t len,
                     uint8_t sig[YN_KEYSTORE_SIG_LEN])
{
    EVP_PKEY *key;
    int rc = file_pair(ks, &key);
    if (rc == YN_OK)
        rc = yn_sig_p256_sign(key, data, len, sig);
    EVP_PKEY_free(key);
    return rc;
}

static int file_public_key(yn_keystore *ks, uint8_t pub[YN_KEYSTORE_PUB_LEN])
{
    EVP_PKEY *key;
    int rc = file_pair(ks, &key);
    if (rc == YN_OK)
        rc = yn_sig_p256_public(key, pub);
    EVP_PKEY_free(key);
    return rc;
}

int yn_key_file_new_pair(const char *path, uint8_t pub[YN_KEYSTORE_PUB_LEN])
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIO *bio = key ? BIO_new(BIO_s_secmem()) : NULL;
    char *pem = NULL;
    long n = 0;
    int rc = YN_ENOMEM;
    if (bio && PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1 &&
        (n = BIO_get_mem_data(bio, &pem)) > 0 && yn_sig_p256_public(key, pub) == YN_OK)
        rc = yn_file_write_atomic(path, pem, (size_t)n, 0600);
    if (rc != YN_OK)
        yn_err("keystore: no key pair written to '%s': %s", path, yn_strerror(rc));
    BIO_free(bio); /* secure memory: cleared as it is freed */
    EVP_PKEY_free(key);
    return rc;
}

/* A new pair replaces the file atomically: the old one is used until the
 * rename, never lost half way. */
static int file_generate(yn_keystore *ks, uint8_t pub[YN_KEYSTORE_PUB_LEN])
{
    const char *path = terminal_path(ks);
    return path ? yn_key_file_new_pair(path, pub) : YN_ENOTFOUND;
}

static int file_store(yn_keystore *ks, enum yn_key_id id, const uint8_t *key, size_t len)
{
    const char *path = path_of(CFG(ks), id);
    char text[2 * YN_KEYSTORE_TERMINAL_MAX + 2];
    if (!path[0]) {
        yn_err("keystore: %s is not configured in %s [keys]", yn_key_id_name(id), CFG(ks)->source);
        return YN_ENOTFOUND;
    }
    yn_hex_encode(key, len, text);
    text[2 * len] = '\n';
    int rc = yn_file_write_atomic(path, text, 2 * len + 1, 0600);
    explicit_bzero(text, sizeof text);
    if (rc != YN_OK)
        yn_err("keystore: %s '%s' not written: %s", yn_key_id_name(id), path, yn_strerror(rc));
    return rc;
}

static int file_inspect(yn_keystore *ks, enum yn_key_id id, yn_keystore_key_info *info)
{
    const char *path = path_of(CFG(ks), id);
    struct stat sb;
    if (!path[0]) {
        snprintf(info->detail, sizeof info->detail, "not configured ([keys] %s)",
                 yn_key_id_name(id));
        return YN_OK;
    }
    if (stat(path, &sb) != 0) {
        snprintf(info->detail, sizeof info->detail, "%.400s: %s", path, strerror(errno));
        return YN_OK;
    }
    info->present = true;
    info->copies = 1;
    info->unreadable = S_ISREG(sb.st_mode) && !(sb.st_mode & 077) && sb.st_uid == geteuid();
    snprintf(info->detail, sizeof info->detail, "file %.400s, mode %04o, owner uid %u%s", path,
             (unsigned)(sb.st_mode & 07777), (unsigned)sb.st_uid,
             id == YN_KEYID_TERMINAL && yn_keystore_terminal_type(ks) == YN_KEY_ECDSA_P256
                 ? ", ECDSA P-256 key pair (PEM)"
                 : "");
    return YN_OK;
}

const yn_keystore_ops yn_keystore_file_ops = {
    .name = "file",
    .open = file_open,
    .diversify = file_diversify,
    .mac = file_mac,
    .sign = file_sign,
    .generate = file_generate,
    .public_key = file_public_key,
    .store = file_store,
    .inspect = file_inspect,
};

/* --- the operations, whatever the backend ---------------------------------- */

int yn_keystore_open(yn_keystore *ks, const yn_keystore_ops *ops, const yn_keys_conf *cfg)
{
    memset(ks, 0, sizeof *ks);
    ks->cfg = cfg;
    if (!ops && !(ops = yn_hal_find(YN_HAL_KEYSTORE, cfg->backend))) {
        yn_ks_fail(ks, "%s: [keys] backend = '%s' is not built into this firmware", cfg->source,
                   cfg->backend);
        return YN_ECONFIG;
    }
    ks->ops = ops;
    int rc = ops->open(ks, cfg);
    if (rc != YN_OK) {
        if (!ks->error[0])
            yn_ks_fail(ks, "%s keystore does not open: %s", ops->name, yn_strerror(rc));
        ks->ops = NULL;
    }
    return rc;
}

void yn_keystore_close(yn_keystore *ks)
{
    if (ks->ops && ks->ops->close)
        ks->ops->close(ks);
    ks->ops = NULL;
    ks->priv = NULL;
}

int yn_keystore_diversify(yn_keystore *ks, const uint8_t *uid, size_t uid_len, const uint8_t *aid,
                          size_t aid_len, const uint8_t *sysid, size_t sysid_len,
                          uint8_t out[YN_KEYSTORE_CARD_KEY_LEN])
{
    uint8_t d[YN_AN10922_INPUT_MAX];
    size_t d_len;
    if (!ks->ops)
        return YN_ENODEV;
    int rc = yn_an10922_input(uid, uid_len, aid, aid_len, sysid, sysid_len, d, &d_len);
    /* a token computes standard CMAC: the AN's form equals it from 17 bytes on */
    if (rc == YN_OK && d_len < 17)
        rc = YN_EINVAL;
    if (rc == YN_OK)
        rc = ks->ops->diversify(ks, d, d_len, out);
    if (rc != YN_OK)
        explicit_bzero(out, YN_KEYSTORE_CARD_KEY_LEN);
    return rc;
}

enum yn_key_type yn_keystore_terminal_type(const yn_keystore *ks)
{
    return ks->cfg ? ks->cfg->terminal_key_type : YN_KEY_HMAC;
}

/* The terminal key is one kind: an operation of the other is not supported. */
static int terminal_is(const yn_keystore *ks, enum yn_key_type type, const void *op)
{
    if (!ks->ops)
        return YN_ENODEV;
    return yn_keystore_terminal_type(ks) == type && op ? YN_OK : YN_ENOTSUP;
}

int yn_keystore_mac(yn_keystore *ks, const void *data, size_t len, uint8_t out[YN_KEYSTORE_MAC_LEN])
{
    int rc = terminal_is(ks, YN_KEY_HMAC, ks->ops ? (const void *)ks->ops->mac : NULL);
    if (rc == YN_OK && !data && len)
        rc = YN_EINVAL;
    if (rc == YN_OK)
        rc = ks->ops->mac(ks, data ? data : "", len, out);
    if (rc != YN_OK)
        memset(out, 0, YN_KEYSTORE_MAC_LEN); /* never matches a real MAC */
    return rc;
}

int yn_keystore_sign(yn_keystore *ks, const void *data, size_t len,
                     uint8_t sig[YN_KEYSTORE_SIG_LEN])
{
    int rc = terminal_is(ks, YN_KEY_ECDSA_P256, ks->ops ? (const void *)ks->ops->sign : NULL);
    if (rc == YN_OK && !data && len)
        rc = YN_EINVAL;
    if (rc == YN_OK)
        rc = ks->ops->sign(ks, data ? data : "", len, sig);
    if (rc != YN_OK)
        memset(sig, 0, YN_KEYSTORE_SIG_LEN); /* never verifies */
    return rc;
}

int yn_keystore_public_key(yn_keystore *ks, uint8_t pub[YN_KEYSTORE_PUB_LEN])
{
    int rc = terminal_is(ks, YN_KEY_ECDSA_P256, ks->ops ? (const void *)ks->ops->public_key : NULL);
    if (rc == YN_OK)
        rc = ks->ops->public_key(ks, pub);
    if (rc == YN_OK && !yn_sig_p256_pub_ok(pub, YN_KEYSTORE_PUB_LEN)) {
        yn_err("keystore: the terminal's public key in %s is not a point of P-256", ks->where);
        rc = YN_ECORRUPT;
    }
    if (rc != YN_OK)
        memset(pub, 0, YN_KEYSTORE_PUB_LEN);
    return rc;
}

static int probe(yn_keystore *ks, enum yn_key_id id, uint8_t out[YN_KEYSTORE_MAC_LEN]);

int yn_keystore_generate(yn_keystore *ks, bool replace, uint8_t pub[YN_KEYSTORE_PUB_LEN],
                         bool *made)
{
    bool made_here = false;
    int rc = terminal_is(ks, YN_KEY_ECDSA_P256, ks->ops ? (const void *)ks->ops->generate : NULL);
    if (rc == YN_ENOTSUP && ks->ops)
        yn_err("keystore: a key pair is made only with [keys] terminal_key_type = ecdsa-p256 (%s)",
               ks->where);
    /* the pair there, if it works: a test signature verifies under its public key */
    uint8_t out[YN_KEYSTORE_MAC_LEN];
    yn_keystore_key_info info;
    bool there = rc == YN_OK && !replace &&
                 ks->ops->inspect(ks, YN_KEYID_TERMINAL, &info) == YN_OK && info.present;
    if (rc == YN_OK && (!there || probe(ks, YN_KEYID_TERMINAL, out) != YN_OK)) {
        made_here = true;
        bool generated = (rc = ks->ops->generate(ks, pub)) == YN_OK;
        if (generated && (rc = probe(ks, YN_KEYID_TERMINAL, out)) != YN_OK)
            yn_err("keystore: the key pair made in %s does not sign as its public key says: %s",
                   ks->where, yn_strerror(rc));
        /* the new pair works: the older ones go; it does not: it goes */
        if (generated && ks->ops->settle && ks->ops->settle(ks, rc == YN_OK) != YN_OK)
            yn_warn("keystore: %s keeps an older terminal key pair (the newest is used)",
                    ks->where);
    }
    if (rc == YN_OK)
        rc = yn_keystore_public_key(ks, pub);
    if (rc == YN_OK) {
        char fp[YN_SIG_FINGERPRINT_LEN + 1];
        yn_sig_fingerprint(pub, fp);
        yn_info("keystore: terminal key pair %s %s, public key %s",
                made_here ? "generated in" : "kept in", ks->where, fp);
    } else {
        memset(pub, 0, YN_KEYSTORE_PUB_LEN);
    }
    if (made)
        *made = rc == YN_OK && made_here;
    return rc;
}

/* What a key computes on a fixed input: a card key of a probe UID for the
 * master, a MAC of a probe text for the terminal key. Compares keys without
 * reading them (a key check value). */
static const uint8_t probe_uid[7] = {0x04, 0x59, 0x4E, 0x4B, 0x43, 0x56, 0x01};
/* the card format's AID and system identifier (firmware/core/card.h): the check
 * value of a master is the card key of the probe UID, as it always was */
static const uint8_t probe_aid[3] = {0x4E, 0x59, 0xF5};
static const uint8_t probe_sysid[10] = {'Y', 'I', 'N', 'I', 'A', 'N', '-', 'P', 'O', 'S'};
static const char probe_text[] = "YINIAN-POS keystore check v1";

static int probe(yn_keystore *ks, enum yn_key_id id, uint8_t out[YN_KEYSTORE_MAC_LEN])
{
    memset(out, 0, YN_KEYSTORE_MAC_LEN);
    if (id == YN_KEYID_CARD_MASTER)
        return yn_keystore_diversify(ks, probe_uid, sizeof probe_uid, probe_aid, sizeof probe_aid,
                                     probe_sysid, sizeof probe_sysid, out);
    if (yn_keystore_terminal_type(ks) == YN_KEY_HMAC)
        return yn_keystore_mac(ks, probe_text, sizeof probe_text - 1, out);
    /* a key pair: a signature of the probe verifies under its public key */
    uint8_t sig[YN_KEYSTORE_SIG_LEN], pub[YN_KEYSTORE_PUB_LEN];
    int rc = yn_keystore_sign(ks, probe_text, sizeof probe_text - 1, sig);
    if (rc == YN_OK)
        rc = yn_keystore_public_key(ks, pub);
    if (rc == YN_OK && yn_sig_p256_verify(pub, probe_text, sizeof probe_text - 1, sig) != YN_OK)
        rc = YN_ECORRUPT;
    return rc;
}

static int soft_probe(enum yn_key_id id, const uint8_t *key, size_t len,
                      uint8_t out[YN_KEYSTORE_MAC_LEN])
{
    memset(out, 0, YN_KEYSTORE_MAC_LEN);
    if (id == YN_KEYID_CARD_MASTER)
        return len == YN_AN10922_KEY_LEN
                   ? yn_an10922_diversify(key, probe_uid, sizeof probe_uid, probe_aid,
                                          sizeof probe_aid, probe_sysid, sizeof probe_sysid, out)
                   : YN_EINVAL;
    return yn_ks_soft_mac(key, len, probe_text, sizeof probe_text - 1, out);
}

int yn_keystore_store(yn_keystore *ks, enum yn_key_id id, const uint8_t *key, size_t len,
                      bool replace)
{
    if (!ks->ops)
        return YN_ENODEV;
    bool master = id == YN_KEYID_CARD_MASTER;
    if (!master && yn_keystore_terminal_type(ks) == YN_KEY_ECDSA_P256) {
        yn_err("keystore: [keys] terminal_key_type = ecdsa-p256: the terminal's key pair is "
               "generated in %s (enrolment, yinian-flash generate-key), never imported",
               ks->where);
        return YN_EINVAL;
    }
    if (!is_secret(id) || !key ||
        (master ? len != YN_KEYSTORE_CARD_MASTER
                : len < YN_KEYSTORE_TERMINAL_MIN || len > YN_KEYSTORE_TERMINAL_MAX))
        return YN_EINVAL;
    uint8_t have[YN_KEYSTORE_MAC_LEN], want[YN_KEYSTORE_MAC_LEN];
    int rc = soft_probe(id, key, len, want);
    if (rc != YN_OK)
        return rc;
    yn_keystore_key_info info;
    int there = yn_keystore_inspect(ks, id, &info);
    if (there == YN_OK)
        there = info.present ? probe(ks, id, have) : YN_ENOTFOUND;
    if (there == YN_OK && CRYPTO_memcmp(have, want, sizeof want) == 0) {
        yn_info("keystore: %s is in %s already", yn_key_id_name(id), ks->where);
        return YN_OK;
    }
    if (!replace && there != YN_ENOTFOUND && there != YN_ENOENT) {
        yn_err("keystore: %s in %s holds another key%s: not replaced", yn_key_id_name(id),
               ks->where, there == YN_OK ? "" : " (or one that cannot be used)");
        return there == YN_OK ? YN_EDUPLICATE : there;
    }
    if ((rc = ks->ops->store(ks, id, key, len)) != YN_OK)
        return rc;
    /* what the keystore computes now must be what these bytes compute */
    if ((rc = probe(ks, id, have)) == YN_OK && CRYPTO_memcmp(have, want, sizeof want) != 0)
        rc = YN_ECORRUPT;
    if (rc != YN_OK)
        yn_err("keystore: %s stored in %s but it does not compute what the key does: %s",
               yn_key_id_name(id), ks->where, yn_strerror(rc));
    else
        yn_info("keystore: %s stored in %s", yn_key_id_name(id), ks->where);
    return rc;
}

int yn_keystore_inspect(yn_keystore *ks, enum yn_key_id id, yn_keystore_key_info *info)
{
    memset(info, 0, sizeof *info);
    if (!is_secret(id))
        return YN_EINVAL;
    if (!ks->ops)
        return YN_ENODEV;
    int rc = ks->ops->inspect(ks, id, info);
    uint8_t out[YN_KEYSTORE_MAC_LEN];
    int works = rc == YN_OK && info->present ? probe(ks, id, out) : YN_ENOTFOUND;
    info->works = works == YN_OK;
    bool pair = id == YN_KEYID_TERMINAL && yn_keystore_terminal_type(ks) == YN_KEY_ECDSA_P256;
    uint8_t pub[YN_KEYSTORE_PUB_LEN];
    size_t used = strlen(info->detail);
    if (rc == YN_OK && info->present && !info->works) {
        snprintf(info->detail + used, sizeof info->detail - used, "; a test %s fails: %s",
                 id == YN_KEYID_CARD_MASTER ? "card key derivation"
                 : pair                     ? "signature"
                                            : "MAC",
                 yn_strerror(works));
    } else if (rc == YN_OK && info->works && pair && yn_keystore_public_key(ks, pub) == YN_OK) {
        yn_sig_fingerprint(pub, info->fingerprint);
        snprintf(info->detail + used, sizeof info->detail - used, "; public key %s",
                 info->fingerprint);
    }
    return rc;
}

int yn_keystore_load(yn_keystore *ks, enum yn_key_id id, uint8_t *buf, size_t cap, size_t *len)
{
    *len = 0;
    if ((unsigned)id >= YN_KEYID_COUNT)
        return YN_EINVAL;
    if (is_secret(id)) {
        yn_err("keystore: %s is used through the keystore's operations, never read out",
               yn_key_id_name(id));
        return YN_EPERM;
    }
    if (!ks->cfg)
        return YN_ENODEV;
    const char *path = path_of(ks->cfg, id);
    if (!path[0]) {
        yn_err("keystore: %s is not configured in %s [keys]", yn_key_id_name(id), ks->cfg->source);
        return YN_ENOTFOUND;
    }
    return yn_key_file_load(path, false, yn_key_id_name(id), buf, cap, len);
}
