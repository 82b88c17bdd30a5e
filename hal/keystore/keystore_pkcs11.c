/* keystore_pkcs11.c — the keystore in a PKCS#11 token (board.conf [keys]
 * backend = pkcs11).
 *
 * The card master key (CKK_AES) and the terminal key (CKK_GENERIC_SECRET) are
 * token objects that are sensitive, not extractable, not modifiable and good
 * for signing only; the token computes AN10922's CMAC (CKM_AES_CMAC) and the
 * batch MACs (CKM_SHA256_HMAC). The module board.conf names is dlopen()ed and
 * entered through C_GetFunctionList — the loading contract of PKCS#11 itself
 * — with p11-kit's copy of the OASIS header (hal/keystore/KEYSTORE.md says why).
 *
 * Keys are found by label; CKA_ID holds a generation (8 bytes, big-endian)
 * so that a new key can be made before the old one is destroyed: the newest
 * is used, and a store interrupted in between leaves two, never none. One
 * session per kind of operation, each behind its own mutex, so a tap never
 * waits behind the HMAC of a 4 MiB batch; a session the token dropped
 * (removed, reset, logged out) is opened again once per operation. */
#include <dlfcn.h>
#include <limits.h>
#include <p11-kit/pkcs11.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keystore.h"
#include "keystore_int.h"
#include "log.h"

#define LABEL_MASTER   "yinian-card-master"
#define LABEL_TERMINAL "yinian-terminal"
#define MAX_COPIES     8   /* objects of one label looked at */
#define MAX_SLOTS      64  /* slots looked at */
#define PIN_MAX        256 /* bytes of a PIN */

/* --- the module: loaded and initialised once per process ------------------- */

/* PKCS#11 allows one C_Initialize per process and keeps the login per
 * process, so every keystore on one module shares it. */
struct module {
    struct module *next;
    char path[PATH_MAX];
    void *lib;
    CK_FUNCTION_LIST_PTR f;
    bool finalize; /* we initialised it, so we finalise it */
    int refs;
};

static pthread_mutex_t modules_mu = PTHREAD_MUTEX_INITIALIZER;
static struct module *modules;

static const char *ckr_name(CK_RV rv)
{
    static const struct {
        CK_RV rv;
        const char *name;
    } names[] = {
        {CKR_OK, "CKR_OK"},
        {CKR_HOST_MEMORY, "CKR_HOST_MEMORY"},
        {CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID"},
        {CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR"},
        {CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED"},
        {CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD"},
        {CKR_ATTRIBUTE_READ_ONLY, "CKR_ATTRIBUTE_READ_ONLY"},
        {CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE"},
        {CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID"},
        {CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID"},
        {CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR"},
        {CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY"},
        {CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED"},
        {CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED"},
        {CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID"},
        {CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE"},
        {CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT"},
        {CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED"},
        {CKR_KEY_NOT_WRAPPABLE, "CKR_KEY_NOT_WRAPPABLE"},
        {CKR_KEY_UNEXTRACTABLE, "CKR_KEY_UNEXTRACTABLE"},
        {CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID"},
        {CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID"},
        {CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID"},
        {CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE"},
        {CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT"},
        {CKR_PIN_INVALID, "CKR_PIN_INVALID"},
        {CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE"},
        {CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED"},
        {CKR_PIN_LOCKED, "CKR_PIN_LOCKED"},
        {CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED"},
        {CKR_SESSION_COUNT, "CKR_SESSION_COUNT"},
        {CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID"},
        {CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY"},
        {CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE"},
        {CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT"},
        {CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT"},
        {CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED"},
        {CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED"},
        {CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN"},
        {CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED"},
        {CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID"},
        {CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL"},
        {CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED"},
        {CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].rv == rv)
            return names[i].name;
    static _Thread_local char other[32];
    snprintf(other, sizeof other, "CKR 0x%lx", (unsigned long)rv);
    return other;
}

static int status_of(CK_RV rv)
{
    switch (rv) {
    case CKR_OK:
        return YN_OK;
    case CKR_PIN_INCORRECT:
    case CKR_PIN_INVALID:
    case CKR_PIN_LEN_RANGE:
    case CKR_PIN_EXPIRED:
    case CKR_PIN_LOCKED:
    case CKR_USER_PIN_NOT_INITIALIZED:
        return YN_EAUTH;
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_DEVICE_REMOVED:
    case CKR_SLOT_ID_INVALID:
        return YN_ENODEV;
    case CKR_HOST_MEMORY:
    case CKR_DEVICE_MEMORY:
        return YN_ENOMEM;
    case CKR_MECHANISM_INVALID:
    case CKR_FUNCTION_NOT_SUPPORTED:
    case CKR_KEY_FUNCTION_NOT_PERMITTED:
    case CKR_KEY_TYPE_INCONSISTENT:
        return YN_ENOTSUP;
    case CKR_KEY_SIZE_RANGE:
        return YN_EINVAL;
    case CKR_ATTRIBUTE_SENSITIVE:
    case CKR_KEY_UNEXTRACTABLE:
        return YN_EPERM;
    default:
        return YN_EIO;
    }
}

/* What a fresh session (and a fresh look-up) may cure. */
static bool recoverable(CK_RV rv)
{
    return rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
           rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_DEVICE_ERROR || rv == CKR_DEVICE_REMOVED ||
           rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_OBJECT_HANDLE_INVALID ||
           rv == CKR_KEY_HANDLE_INVALID;
}

static int module_get(yn_keystore *ks, const char *path, struct module **out)
{
    pthread_mutex_lock(&modules_mu);
    for (struct module *m = modules; m; m = m->next)
        if (strcmp(m->path, path) == 0) {
            m->refs++;
            *out = m;
            pthread_mutex_unlock(&modules_mu);
            return YN_OK;
        }
    int rc = YN_ENOMEM;
    struct module *m = calloc(1, sizeof *m);
    if (!m)
        goto out;
    snprintf(m->path, sizeof m->path, "%s", path);
    m->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!m->lib) {
        yn_ks_fail(ks,
                   "PKCS#11 module %s does not load (%s): check [keys] pkcs11_module and that the "
                   "token's package is installed",
                   path, dlerror());
        rc = YN_EIO;
        goto out;
    }
    CK_C_GetFunctionList get = NULL;
    *(void **)&get = dlsym(m->lib, "C_GetFunctionList"); /* POSIX's way to a function */
    CK_RV rv = get ? get(&m->f) : CKR_FUNCTION_NOT_SUPPORTED;
    if (rv != CKR_OK || !m->f) {
        yn_ks_fail(ks, "%s is not a PKCS#11 module (C_GetFunctionList: %s)", path,
                   get ? ckr_name(rv) : "missing");
        rc = YN_EIO;
        goto out;
    }
    CK_C_INITIALIZE_ARGS args = {.flags = CKF_OS_LOCKING_OK};
    rv = m->f->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        yn_ks_fail(ks,
                   "PKCS#11 module %s: C_Initialize: %s (for SoftHSM2: is SOFTHSM2_CONF right?)",
                   path, ckr_name(rv));
        rc = YN_EIO;
        goto out;
    }
    m->finalize = rv == CKR_OK;
    m->refs = 1;
    m->next = modules;
    modules = m;
    *out = m;
    m = NULL;
    rc = YN_OK;
out:
    if (m && m->lib)
        dlclose(m->lib);
    free(m);
    pthread_mutex_unlock(&modules_mu);
    return rc;
}

static void module_put(struct module *m)
{
    pthread_mutex_lock(&modules_mu);
    if (--m->refs == 0) {
        for (struct module **pp = &modules; *pp; pp = &(*pp)->next)
            if (*pp == m) {
                *pp = m->next;
                break;
            }
        if (m->finalize)
            m->f->C_Finalize(NULL);
        dlclose(m->lib);
        free(m);
    }
    pthread_mutex_unlock(&modules_mu);
}

/* --- the token -------------------------------------------------------------- */

struct session {
    pthread_mutex_t mu;
    CK_SESSION_HANDLE h;  /* CK_INVALID_HANDLE: open it when next needed */
    CK_OBJECT_HANDLE key; /* cached key object; CK_INVALID_HANDLE: look it up */
};

struct p11 {
    struct module *m;
    CK_FUNCTION_LIST_PTR f;
    pthread_mutex_t slot_mu;
    CK_SLOT_ID slot; /* under slot_mu: a token may come back in another slot */
    char label[YN_KEYSTORE_TOKEN_LABEL + 1];
    char pin_file[PATH_MAX];
    struct session card; /* card key derivation: the counter */
    struct session mac;  /* batch MACs: the sync thread */
    bool ready;          /* open finished: later failures are logged, ks->error stays */
};

static struct p11 *P(const yn_keystore *ks)
{
    return ks->priv;
}

/* A failure of the token: while opening, what ks->error says (yinian-diag
 * shows it); once open, the counter and the sync thread may fail at the same
 * time, so it is only logged. */
static void token_fail(yn_keystore *ks, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void token_fail(yn_keystore *ks, const char *fmt, ...)
{
    char text[YN_KEYSTORE_ERROR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (P(ks) && P(ks)->ready)
        yn_err("keystore: %s", text);
    else
        yn_ks_fail(ks, "%s", text);
}

static const char *label_of(enum yn_key_id id)
{
    return id == YN_KEYID_CARD_MASTER ? LABEL_MASTER : LABEL_TERMINAL;
}

/* PKCS#11 text fields are blank-padded, not terminated. */
static void field_text(const CK_UTF8CHAR *f, size_t n, char *out)
{
    while (n && (f[n - 1] == ' ' || f[n - 1] == '\0'))
        n--;
    memcpy(out, f, n);
    out[n] = '\0';
}

/* The slot whose token carries our label; exactly one must. */
static int find_slot(yn_keystore *ks, struct p11 *p, bool at_open)
{
    CK_SLOT_ID slots[MAX_SLOTS];
    CK_ULONG n = MAX_SLOTS;
    CK_RV rv = p->f->C_GetSlotList(CK_TRUE, slots, &n);
    if (rv != CKR_OK) {
        token_fail(ks, "PKCS#11 module %s: C_GetSlotList: %s", p->m->path, ckr_name(rv));
        return status_of(rv);
    }
    int matches = 0;
    CK_SLOT_ID found = 0;
    char seen[160] = "", label[YN_KEYSTORE_TOKEN_LABEL + 1], model[40], maker[40];
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (p->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        field_text(ti.label, sizeof ti.label, label);
        snprintf(seen + strlen(seen), sizeof seen - strlen(seen), "%s'%s'", seen[0] ? ", " : "",
                 label);
        if (strcmp(label, p->label) != 0)
            continue;
        if (matches++ == 0) {
            found = slots[i];
            field_text(ti.model, sizeof ti.model, model);
            field_text(ti.manufacturerID, sizeof ti.manufacturerID, maker);
            if (at_open)
                snprintf(ks->where, sizeof ks->where, "token '%s' (%s %s) of %.190s", label, maker,
                         model, p->m->path);
            if (!(ti.flags & CKF_USER_PIN_INITIALIZED))
                yn_warn("keystore: token '%s' has no user PIN set", label);
        }
    }
    if (matches > 1) {
        token_fail(ks, "%d tokens are labelled '%s' in %s: a label must name one token", matches,
                   p->label, p->m->path);
        return YN_ECONFIG;
    }
    if (matches == 0) {
        token_fail(ks,
                   "no token labelled '%s' in %s (tokens present: %s): check [keys] token_label, "
                   "that the token is plugged in (a TPM: initialised), and for SoftHSM2 "
                   "SOFTHSM2_CONF",
                   p->label, p->m->path, seen[0] ? seen : "none");
        return YN_ENODEV;
    }
    pthread_mutex_lock(&p->slot_mu);
    p->slot = found;
    pthread_mutex_unlock(&p->slot_mu);
    return YN_OK;
}

/* Log in on session h with the PIN from pin_file (read and wiped each time). */
static int login(yn_keystore *ks, struct p11 *p, CK_SESSION_HANDLE h)
{
    char pin[PIN_MAX];
    size_t n = 0;
    int rc = yn_secret_file_text(p->pin_file, "token PIN file", pin, sizeof pin, &n);
    if (rc != YN_OK) {
        token_fail(ks,
                   "the PIN file %s is not usable (%s): it must be a file of the daemon's user "
                   "with mode 0600",
                   p->pin_file, yn_strerror(rc));
        explicit_bzero(pin, sizeof pin);
        return rc;
    }
    CK_RV rv = p->f->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)n);
    explicit_bzero(pin, sizeof pin);
    if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN)
        return YN_OK;
    token_fail(ks, "token '%s' refused the PIN of %s: %s%s", p->label, p->pin_file, ckr_name(rv),
               rv == CKR_PIN_LOCKED ? " (the token's security officer must unblock it)"
               : rv == CKR_PIN_INCORRECT
                   ? " (the file holds the wrong PIN; tokens lock after a few wrong ones)"
                   : "");
    return status_of(rv);
}

/* Open a session on our token and log in (the login is per process: once
 * logged in, every session of ours is). */
static int session_open(yn_keystore *ks, struct p11 *p, CK_SESSION_HANDLE *h, bool rw)
{
    CK_FLAGS flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
    CK_RV rv = CKR_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        pthread_mutex_lock(&p->slot_mu);
        CK_SLOT_ID slot = p->slot;
        pthread_mutex_unlock(&p->slot_mu);
        rv = p->f->C_OpenSession(slot, flags, NULL, NULL, h);
        if (rv == CKR_OK)
            break;
        /* a token taken out and put back may sit in another slot */
        if (attempt > 0 ||
            (rv != CKR_SLOT_ID_INVALID && rv != CKR_TOKEN_NOT_PRESENT &&
             rv != CKR_DEVICE_REMOVED) ||
            find_slot(ks, p, false) != YN_OK)
            break;
    }
    if (rv != CKR_OK) {
        token_fail(ks, "token '%s': C_OpenSession: %s", p->label, ckr_name(rv));
        *h = CK_INVALID_HANDLE;
        return status_of(rv);
    }
    int rc = login(ks, p, *h);
    if (rc != YN_OK) {
        p->f->C_CloseSession(*h);
        *h = CK_INVALID_HANDLE;
    }
    return rc;
}

static bool get_bool(struct p11 *p, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
                     bool *known)
{
    CK_BBOOL v = CK_FALSE;
    CK_ATTRIBUTE a = {type, &v, sizeof v};
    *known = p->f->C_GetAttributeValue(h, o, &a, 1) == CKR_OK && a.ulValueLen == sizeof v;
    return *known && v == CK_TRUE;
}

struct object {
    CK_OBJECT_HANDLE h;
    uint64_t generation; /* CKA_ID, 8 bytes big-endian; 0 if it has none */
};

/* Every secret key object labelled for id, up to MAX_COPIES. */
static CK_RV find_all(struct p11 *p, CK_SESSION_HANDLE h, enum yn_key_id id, struct object *out,
                      int *n)
{
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    const char *label = label_of(id);
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls},
                        {CKA_LABEL, (void *)label, (CK_ULONG)strlen(label)}};
    CK_OBJECT_HANDLE objs[MAX_COPIES];
    CK_ULONG count = 0;
    *n = 0;
    CK_RV rv = p->f->C_FindObjectsInit(h, t, 2);
    if (rv != CKR_OK)
        return rv;
    rv = p->f->C_FindObjects(h, objs, MAX_COPIES, &count);
    CK_RV fin = p->f->C_FindObjectsFinal(h);
    if (rv == CKR_OK)
        rv = fin;
    for (CK_ULONG i = 0; rv == CKR_OK && i < count; i++) {
        uint8_t gen[8] = {0};
        CK_ATTRIBUTE a = {CKA_ID, gen, sizeof gen};
        uint64_t g = 0;
        if (p->f->C_GetAttributeValue(h, objs[i], &a, 1) == CKR_OK && a.ulValueLen == sizeof gen)
            for (int b = 0; b < 8; b++)
                g = g << 8 | gen[b];
        out[(*n)++] = (struct object){objs[i], g};
    }
    return rv;
}

static struct object newest(const struct object *o, int n)
{
    struct object best = o[0];
    for (int i = 1; i < n; i++)
        if (o[i].generation > best.generation)
            best = o[i];
    return best;
}

/* The key object to use for id: the newest of its label, of the right type,
 * and one that cannot be read out. *rv: the token's last answer. */
static int find_key(struct p11 *p, CK_SESSION_HANDLE h, enum yn_key_id id, CK_OBJECT_HANDLE *key,
                    CK_RV *rv)
{
    struct object objs[MAX_COPIES];
    int n;
    *key = CK_INVALID_HANDLE;
    if ((*rv = find_all(p, h, id, objs, &n)) != CKR_OK)
        return status_of(*rv); /* the caller says so */
    if (n == 0) {
        yn_err("keystore: token '%s' holds no %s (%s): %s", p->label, label_of(id),
               yn_key_id_name(id),
               id == YN_KEYID_TERMINAL ? "enrol with the district (yinian-pos --enrol TOKEN)"
                                       : "yinian-flash import-key card-master FILE");
        return YN_ENOTFOUND;
    }
    struct object o = newest(objs, n);
    CK_KEY_TYPE type = 0;
    CK_ATTRIBUTE a = {CKA_KEY_TYPE, &type, sizeof type};
    bool known_s, known_x;
    bool sensitive = get_bool(p, h, o.h, CKA_SENSITIVE, &known_s);
    bool extractable = get_bool(p, h, o.h, CKA_EXTRACTABLE, &known_x);
    CK_KEY_TYPE want = id == YN_KEYID_CARD_MASTER ? CKK_AES : CKK_GENERIC_SECRET;
    if ((*rv = p->f->C_GetAttributeValue(h, o.h, &a, 1)) != CKR_OK || type != want) {
        yn_err("keystore: token '%s': %s is not a %s key", p->label, label_of(id),
               want == CKK_AES ? "CKK_AES" : "CKK_GENERIC_SECRET");
        return *rv != CKR_OK ? status_of(*rv) : YN_EINVAL;
    }
    if (!known_s || !known_x || !sensitive || extractable) {
        yn_err("keystore: token '%s': %s could be read out of the token (CKA_SENSITIVE %s, "
               "CKA_EXTRACTABLE %s): refused; import it again with yinian-flash import-key --force",
               p->label, label_of(id), known_s ? sensitive ? "true" : "false" : "unknown",
               known_x ? extractable ? "true" : "false" : "unknown");
        return YN_EPERM;
    }
    *key = o.h;
    return YN_OK;
}

/* One signing operation (CMAC or HMAC) with key id on session s; the session
 * is opened again once if the token dropped it. cache: keep the key handle
 * between calls (the counter); otherwise look it up each time, so that a key
 * enrolled by another process is taken at once (sync). */
static int token_sign(yn_keystore *ks, struct session *s, enum yn_key_id id, CK_MECHANISM_TYPE mech,
                      bool cache, const void *data, size_t len, uint8_t *out, CK_ULONG out_len)
{
    struct p11 *p = P(ks);
    int rc = YN_EIO;
    CK_RV rv = CKR_OK;
    pthread_mutex_lock(&s->mu);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (s->h == CK_INVALID_HANDLE && (rc = session_open(ks, p, &s->h, false)) != YN_OK)
            break;
        const char *what = "looking for";
        rv = CKR_OK;
        if ((!cache || s->key == CK_INVALID_HANDLE) &&
            (rc = find_key(p, s->h, id, &s->key, &rv)) != YN_OK && rv == CKR_OK)
            break; /* no such key, or not one to use: find_key said why */
        if (rv == CKR_OK) {
            CK_MECHANISM m = {mech, NULL, 0};
            CK_ULONG n = out_len;
            what = mech == CKM_AES_CMAC ? "CKM_AES_CMAC with" : "CKM_SHA256_HMAC with";
            rv = p->f->C_SignInit(s->h, &m, s->key);
            if (rv == CKR_OK)
                rv = p->f->C_Sign(s->h, (CK_BYTE_PTR)data, (CK_ULONG)len, out, &n);
            rc = rv == CKR_OK && n != out_len ? YN_EIO : status_of(rv);
            if (rc == YN_OK)
                break;
        }
        bool again = attempt == 0 && recoverable(rv);
        yn_log(again ? YN_LOG_WARN : YN_LOG_ERR, "keystore: token '%s': %s %s: %s%s", p->label,
               what, label_of(id), rv == CKR_OK ? "wrong length" : ckr_name(rv),
               again ? "; trying a new session" : "");
        if (!again)
            break;
        /* the token dropped the session or the object: once more, afresh */
        s->key = CK_INVALID_HANDLE;
        if (rv != CKR_OBJECT_HANDLE_INVALID && rv != CKR_KEY_HANDLE_INVALID) {
            p->f->C_CloseSession(s->h);
            s->h = CK_INVALID_HANDLE;
        }
    }
    if (!cache)
        s->key = CK_INVALID_HANDLE;
    pthread_mutex_unlock(&s->mu);
    return rc;
}

static int p11_diversify(yn_keystore *ks, const uint8_t *d, size_t d_len,
                         uint8_t out[YN_KEYSTORE_CARD_KEY_LEN])
{
    if (d_len < 17 || d_len > 32)
        return YN_EINVAL; /* standard CMAC equals AN10922's form only there */
    return token_sign(ks, &P(ks)->card, YN_KEYID_CARD_MASTER, CKM_AES_CMAC, true, d, d_len, out,
                      YN_KEYSTORE_CARD_KEY_LEN);
}

static int p11_mac(yn_keystore *ks, const void *data, size_t len, uint8_t out[YN_KEYSTORE_MAC_LEN])
{
    return token_sign(ks, &P(ks)->mac, YN_KEYID_TERMINAL, CKM_SHA256_HMAC, false, data, len, out,
                      YN_KEYSTORE_MAC_LEN);
}

/* Forget the cached key handles (after a store or a destroy). */
static void forget_keys(struct p11 *p)
{
    struct session *all[] = {&p->card, &p->mac};
    for (size_t i = 0; i < 2; i++) {
        pthread_mutex_lock(&all[i]->mu);
        all[i]->key = CK_INVALID_HANDLE;
        pthread_mutex_unlock(&all[i]->mu);
    }
}

/* A new object of the next generation, checked; then the older ones go. */
static int p11_store(yn_keystore *ks, enum yn_key_id id, const uint8_t *key, size_t len)
{
    struct p11 *p = P(ks);
    CK_SESSION_HANDLE h;
    int rc = session_open(ks, p, &h, true);
    if (rc != YN_OK)
        return rc;
    struct object old[MAX_COPIES];
    int n_old = 0;
    CK_RV rv = find_all(p, h, id, old, &n_old);
    uint64_t gen = n_old ? newest(old, n_old).generation + 1 : 1;
    uint8_t id_bytes[8];
    for (int b = 0; b < 8; b++)
        id_bytes[b] = (uint8_t)(gen >> (8 * (7 - b)));
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = id == YN_KEYID_CARD_MASTER ? CKK_AES : CKK_GENERIC_SECRET;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    const char *label = label_of(id);
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_KEY_TYPE, &type, sizeof type},
        {CKA_TOKEN, &yes, sizeof yes},
        {CKA_PRIVATE, &yes, sizeof yes},
        {CKA_LABEL, (void *)label, (CK_ULONG)strlen(label)},
        {CKA_ID, id_bytes, sizeof id_bytes},
        {CKA_VALUE, (void *)key, (CK_ULONG)len},
        {CKA_SENSITIVE, &yes, sizeof yes},
        {CKA_EXTRACTABLE, &no, sizeof no},
        {CKA_SIGN, &yes, sizeof yes},
        {CKA_VERIFY, &no, sizeof no},
        {CKA_ENCRYPT, &no, sizeof no},
        {CKA_DECRYPT, &no, sizeof no},
        {CKA_WRAP, &no, sizeof no},
        {CKA_UNWRAP, &no, sizeof no},
        {CKA_DERIVE, &no, sizeof no},
        {CKA_MODIFIABLE, &no, sizeof no},
        {CKA_COPYABLE, &no, sizeof no},
    };
    CK_OBJECT_HANDLE obj = CK_INVALID_HANDLE;
    if (rv == CKR_OK)
        rv = p->f->C_CreateObject(h, t, sizeof t / sizeof t[0], &obj);
    if (rv != CKR_OK) {
        yn_err("keystore: token '%s' did not take %s: %s", p->label, label, ckr_name(rv));
        rc = status_of(rv);
    } else {
        /* a module that ignores the template gets its object destroyed */
        bool ks_, kx;
        bool sensitive = get_bool(p, h, obj, CKA_SENSITIVE, &ks_);
        bool extractable = get_bool(p, h, obj, CKA_EXTRACTABLE, &kx);
        if (!ks_ || !kx || !sensitive || extractable) {
            yn_err("keystore: token '%s' made %s readable (CKA_SENSITIVE %d, CKA_EXTRACTABLE %d): "
                   "destroyed; this token cannot keep the key",
                   p->label, label, sensitive, extractable);
            p->f->C_DestroyObject(h, obj);
            rc = YN_EPERM;
        }
    }
    for (int i = 0; rc == YN_OK && i < n_old; i++)
        if ((rv = p->f->C_DestroyObject(h, old[i].h)) != CKR_OK)
            yn_warn("keystore: token '%s': the older %s (generation %llu) stays: %s", p->label,
                    label, (unsigned long long)old[i].generation, ckr_name(rv));
    p->f->C_CloseSession(h);
    forget_keys(p);
    return rc;
}

static int p11_inspect(yn_keystore *ks, enum yn_key_id id, yn_keystore_key_info *info)
{
    struct p11 *p = P(ks);
    CK_SESSION_HANDLE h;
    int rc = session_open(ks, p, &h, false);
    if (rc != YN_OK) {
        snprintf(info->detail, sizeof info->detail, "token '%s' opens no session (%s): see the log",
                 p->label, yn_strerror(rc));
        return rc;
    }
    struct object objs[MAX_COPIES];
    int n = 0;
    CK_RV rv = find_all(p, h, id, objs, &n);
    info->copies = n;
    if (rv != CKR_OK || n == 0) {
        snprintf(info->detail, sizeof info->detail, "token '%s' holds no %s%s%s", p->label,
                 label_of(id), rv != CKR_OK ? ": " : "", rv != CKR_OK ? ckr_name(rv) : "");
        p->f->C_CloseSession(h);
        return rv != CKR_OK ? status_of(rv) : YN_OK;
    }
    struct object o = newest(objs, n);
    info->present = true;
    bool k1, k2, k3, k4;
    bool sensitive = get_bool(p, h, o.h, CKA_SENSITIVE, &k1);
    bool extractable = get_bool(p, h, o.h, CKA_EXTRACTABLE, &k2);
    bool modifiable = get_bool(p, h, o.h, CKA_MODIFIABLE, &k3);
    bool never_extractable = get_bool(p, h, o.h, CKA_NEVER_EXTRACTABLE, &k4);
    CK_ULONG value_len = 0;
    CK_ATTRIBUTE a = {CKA_VALUE_LEN, &value_len, sizeof value_len};
    if (p->f->C_GetAttributeValue(h, o.h, &a, 1) != CKR_OK)
        value_len = 0;
    info->unreadable = k1 && k2 && sensitive && !extractable;
    snprintf(info->detail, sizeof info->detail,
             "token '%s': %s, %lu bytes, generation %llu, %s, %s, %s%s%s", p->label, label_of(id),
             (unsigned long)value_len, (unsigned long long)o.generation,
             sensitive ? "sensitive" : "NOT sensitive",
             extractable ? "EXTRACTABLE" : "not extractable",
             k3 && !modifiable ? "not modifiable" : "modifiable",
             k4 && never_extractable ? ", generated in the token" : ", imported",
             n > 1 ? " (older copies left by an interrupted store)" : "");
    p->f->C_CloseSession(h);
    return YN_OK;
}

static void p11_close(yn_keystore *ks)
{
    struct p11 *p = P(ks);
    if (!p)
        return;
    struct session *all[] = {&p->card, &p->mac};
    for (size_t i = 0; i < 2; i++) {
        if (all[i]->h != CK_INVALID_HANDLE)
            p->f->C_CloseSession(all[i]->h);
        pthread_mutex_destroy(&all[i]->mu);
    }
    pthread_mutex_destroy(&p->slot_mu);
    if (p->m)
        module_put(p->m);
    free(p);
    ks->priv = NULL;
}

/* Load the module, find the token, log in: what yinian-diag calls "the token
 * answers". The keys are looked up when first used. */
static int p11_open(yn_keystore *ks, const yn_keys_conf *cfg)
{
    struct p11 *p = calloc(1, sizeof *p);
    if (!p)
        return YN_ENOMEM;
    ks->priv = p;
    pthread_mutex_init(&p->slot_mu, NULL);
    pthread_mutex_init(&p->card.mu, NULL);
    pthread_mutex_init(&p->mac.mu, NULL);
    p->card.h = p->mac.h = CK_INVALID_HANDLE;
    snprintf(p->label, sizeof p->label, "%s", cfg->token_label);
    snprintf(p->pin_file, sizeof p->pin_file, "%s", cfg->pin_file);
    int rc = YN_ECONFIG;
    if (!cfg->pkcs11_module[0] || !p->label[0] || !p->pin_file[0])
        yn_ks_fail(ks, "%s: [keys] backend = pkcs11 needs pkcs11_module, token_label and pin_file",
                   cfg->source);
    else if ((rc = module_get(ks, cfg->pkcs11_module, &p->m)) == YN_OK) {
        p->f = p->m->f;
        rc = find_slot(ks, p, true);
    }
    if (rc == YN_OK)
        rc = session_open(ks, p, &p->card.h, false);
    if (rc == YN_OK)
        rc = session_open(ks, p, &p->mac.h, false);
    if (rc != YN_OK)
        p11_close(ks);
    else
        p->ready = true;
    return rc;
}

const yn_keystore_ops yn_keystore_pkcs11_ops = {
    .name = "pkcs11",
    .open = p11_open,
    .close = p11_close,
    .diversify = p11_diversify,
    .mac = p11_mac,
    .store = p11_store,
    .inspect = p11_inspect,
};
