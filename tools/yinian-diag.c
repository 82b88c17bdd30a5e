/* yinian-diag — one command that tells a technician what is wrong with a
 * terminal, and a way to carry its records to the district on a USB stick.
 *
 *   yinian-diag [--config FILE] [--root DIR] [--card] [--json]
 *       every check (board.conf, keys, reader, card, scale, I/O, display,
 *       ledger, disk, clock, sync, versions) as OK / WARN / FAIL with what to do
 *   yinian-diag [--config FILE] export DIR
 *       unsent records as signed batch frames (exactly what sync uploads) and
 *       a manifest, for `yinian-district import` when the network is down
 *   yinian-diag [--config FILE] import-ack DIR
 *       the district's acknowledgements from that folder: each verified
 *       (MAC, range, head hash) against the ledger's batch, then marked sent
 *   yinian-diag [--config FILE] [--json] ledger verify
 *       the ledger check alone (every page, the whole chain, every card row,
 *       records lost below the high-water mark, restores, conflicts with the
 *       district), the command the terminal's screen names when it stops
 *       sales; works while yinian-pos runs (read only)
 *
 * Checks open the devices and the ledger themselves: stop yinian-pos first
 * (it holds the reader and serial ports). Nothing is written by the checks
 * except a test screen on a pixel display. Details: tools/DIAG.md.
 *
 * Exit codes: checks: 0 no FAIL (WARNs allowed), 1 at least one FAIL;
 * export / import-ack: 0 done, 1 failed or refused; 2 bad command line (and
 * for export / import-ack, an unusable board.conf). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "card.h"
#include "client.h"
#include "clock.h"
#include "config.h"
#include "hal.h"
#include "display.h"
#include "fileio.h"
#include "hex.h"
#include "io.h"
#include "keystore.h"
#include "ledger.h"
#include "log.h"
#include "nfc.h"
#if WITH_SIM
#include "nfc_sim.h"
#endif
#include "scale.h"
#include "tap.h"
#include "timeutil.h"

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define DEFAULT_CONFIG    "/etc/yinian/board.conf"
#define DEFAULT_ROOT      "/opt/yinian"
#define DISK_FAIL_BYTES   (20LL << 20)  /* below this the ledger may soon refuse sales */
#define DISK_WARN_BYTES   (200LL << 20) /* below this, time to look */
#define DRIFT_WARN_MS     5000          /* system clock vs the district's */
#define DRIFT_FAIL_MS     600000        /* more than the daemon steps once trusted */
#define UNSENT_WARN_AGE_S 3600          /* oldest record waiting longer: WARN */
#define UNSENT_FAIL_AGE_S (3 * 86400)   /* ... longer still: FAIL, carry it on USB */

enum verdict { V_OK, V_WARN, V_FAIL };
static const char *const verdict_name[] = {"OK", "WARN", "FAIL"};

/* What one check found: the worst verdict, every finding, the advice that
 * goes with the worst, and facts for --json. */
struct result {
    enum verdict status;
    char message[768];
    char advice[PATH_MAX + 600];
    json_t *data; /* object, never NULL while a check runs */
};

struct ctx {
    const char *config_path;
    const char *root;
    bool card;          /* --card: wait for a tap and verify the card */
    int card_timeout_s; /* how long to wait for it */
    yn_config cfg;
    yn_config_errors errs;
    bool config_usable; /* the values are there (only key files, if anything, are wrong) */
    yn_nfc nfc;
    bool nfc_open;
    yn_ledger *ledger; /* read-only handle, NULL when it does not open */
    bool ledger_missing;
    yn_keystore keys; /* as the daemon opens it: key files or the token */
    int keys_rc;      /* how opening it went; -1 = not tried yet */
};

/* The keystore, opened once on first use. */
static int open_keys(struct ctx *c)
{
    if (c->keys_rc < 0)
        c->keys_rc = yn_keystore_open(&c->keys, NULL, &c->cfg.keys);
    return c->keys_rc;
}

/* Add a finding; the worst one decides the verdict and the advice. */
static void note(struct result *r, enum verdict v, const char *advice, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void note(struct result *r, enum verdict v, const char *advice, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    size_t used = strlen(r->message);
    snprintf(r->message + used, sizeof r->message - used, "%s%s", used ? "; " : "", text);
    if (v > r->status || (advice && !r->advice[0] && v == r->status && v != V_OK)) {
        if (v > r->status)
            r->advice[0] = '\0';
        r->status = v;
        if (advice)
            snprintf(r->advice, sizeof r->advice, "%s", advice);
    }
}

static void fmt_utc(int64_t utc_s, char *buf, size_t len)
{
    time_t t = (time_t)utc_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void fmt_age(int64_t s, char *buf, size_t len)
{
    if (s < 120)
        snprintf(buf, len, "%lld s", (long long)s);
    else if (s < 7200)
        snprintf(buf, len, "%lld min", (long long)(s / 60));
    else if (s < 2 * 86400)
        snprintf(buf, len, "%lld h", (long long)(s / 3600));
    else
        snprintf(buf, len, "%lld days", (long long)(s / 86400));
}

static int64_t meta_i64(yn_ledger *l, const char *key, bool *found)
{
    char v[32];
    *found = yn_ledger_meta_get(l, key, v, sizeof v) == YN_OK;
    return *found ? strtoll(v, NULL, 10) : 0;
}

/* --- the checks ----------------------------------------------------------------- */

static void check_config(struct ctx *c, struct result *r)
{
    if (c->errs.count == 0) {
        note(r, V_OK, NULL, "%s valid: terminal %s, canteen %s, mode %s", c->cfg.path,
             c->cfg.terminal.id, c->cfg.terminal.canteen_id, yn_mode_name(c->cfg.terminal.mode));
        json_object_set_new(r->data, "terminal", json_string(c->cfg.terminal.id));
        return;
    }
    json_t *errs = json_array();
    for (int i = 0; i < c->errs.count && i < YN_CONFIG_MAX_ERRORS; i++) {
        note(r, V_FAIL,
             "correct the lines named in board.conf (yinian-pos --check-config lists them); "
             "a key file's mode or owner: see the keys check",
             "%s", c->errs.msg[i]);
        json_array_append_new(errs, json_string(c->errs.msg[i]));
    }
    json_object_set_new(r->data, "errors", errs);
}

struct key_spec {
    const char *what;
    enum yn_key_id id;
    bool secret;
    size_t min_len, max_len; /* decoded bytes */
};

/* YN_KEYID_COUNT stands for the token's PIN file: a secret, not hex. */
static const struct key_spec key_specs[] = {
    {"terminal_key", YN_KEYID_TERMINAL, true, YN_BATCH_KEY_MIN, 64},
    {"card_master_key", YN_KEYID_CARD_MASTER, true, YN_CARD_MASTER_LEN, YN_CARD_MASTER_LEN},
    {"issuer_pubkey", YN_KEYID_ISSUER_PUB, false, 32, YN_KEY_MAX},
    {"district_pubkey", YN_KEYID_DISTRICT_PUB, false, 32, 32},
    {"pin_file", YN_KEYID_COUNT, true, 0, 0},
};

static const char *key_path(const yn_config *cfg, enum yn_key_id id)
{
    switch (id) {
    case YN_KEYID_TERMINAL:
        return cfg->keys.terminal_key;
    case YN_KEYID_CARD_MASTER:
        return cfg->keys.card_master_key;
    case YN_KEYID_ISSUER_PUB:
        return cfg->keys.issuer_pubkey;
    case YN_KEYID_DISTRICT_PUB:
        return cfg->keys.district_pubkey;
    default:
        return cfg->keys.pin_file;
    }
}

/* What to do when the token does not open, by what went wrong. */
static const char *token_advice(int rc)
{
    switch (rc) {
    case YN_ENODEV:
        return "plug the token in (a TPM: initialised with tpm2_ptool and the token made); check "
               "[keys] token_label against the token's label (pkcs11-tool -L); for SoftHSM2 "
               "check SOFTHSM2_CONF";
    case YN_EAUTH:
        return "the PIN file holds a PIN the token refuses, or the PIN is locked: the token's "
               "security officer sets a new user PIN, then write it to [keys] pin_file (mode "
               "0600)";
    case YN_EPERM:
        return "the PIN file must be the daemon user's, mode 0600 (run yinian-diag as that "
               "user): chmod 600 / chown it";
    case YN_ECONFIG:
        return "give the token a label no other token has, and name it in [keys] token_label";
    default:
        return "check [keys] pkcs11_module: the token's PKCS#11 module (package softhsm2, "
               "libtpm2-pkcs11-1, or the secure element's) must be installed at that path";
    }
}

/* The token of backend = pkcs11: module loads, token present, PIN taken,
 * each secret key found, unreadable, and working. */
static void check_token(struct ctx *c, struct result *r)
{
    int rc = open_keys(c);
    if (rc != YN_OK) {
        note(r, V_FAIL, token_advice(rc), "token: %s", c->keys.error);
        return;
    }
    note(r, V_OK, NULL, "%s answers, PIN accepted", c->keys.where);
    json_object_set_new(r->data, "token", json_string(c->keys.where));
    char advice[PATH_MAX + 600];
    for (enum yn_key_id id = YN_KEYID_TERMINAL; id <= YN_KEYID_CARD_MASTER; id++) {
        bool master = id == YN_KEYID_CARD_MASTER;
        yn_keystore_key_info info;
        rc = yn_keystore_inspect(&c->keys, id, &info);
        if (rc != YN_OK || !info.present) {
            if (master)
                snprintf(advice, sizeof advice,
                         "import the district's master key once: yinian-flash import-key "
                         "--config %s card-master FILE (then remove FILE from the board)",
                         c->cfg.path);
            else
                snprintf(advice, sizeof advice,
                         "enrol with the district: yinian-pos --config %s --enrol TOKEN",
                         c->cfg.path);
            note(r, master || c->cfg.sync.enabled ? V_FAIL : V_WARN, advice, "%s",
                 rc != YN_OK ? yn_strerror(rc) : info.detail);
        } else if (!info.unreadable) {
            note(r, V_FAIL,
                 "this key could be read out of the token: import it again (yinian-flash "
                 "import-key --force makes a non-extractable object), and ask the district "
                 "whether to treat the old key as exposed",
                 "%s", info.detail);
        } else if (!info.works) {
            note(r, V_FAIL,
                 "the token holds the key but cannot use it: it must offer CKM_AES_CMAC and "
                 "CKM_SHA256_HMAC, or for a key pair CKM_ECDSA (pkcs11-tool -M); see the "
                 "daemon's log with --verbose",
                 "%s", info.detail);
        } else {
            note(r, V_OK, NULL, "%s", info.detail);
            if (info.fingerprint[0])
                json_object_set_new(r->data, "terminal_public_key", json_string(info.fingerprint));
        }
    }
}

/* A terminal key pair in a file (backend = file, terminal_key_type =
 * ecdsa-p256): PEM, not hex; the keystore reads it and signs a test text. */
static void check_pair_file(struct ctx *c, struct result *r, const char *path)
{
    yn_keystore_key_info info = {0};
    int rc = open_keys(c);
    if (rc == YN_OK)
        rc = yn_keystore_inspect(&c->keys, YN_KEYID_TERMINAL, &info);
    if (rc != YN_OK || !info.works) {
        char advice[PATH_MAX + 200];
        snprintf(advice, sizeof advice,
                 "%s must hold this terminal's ECDSA P-256 key pair (PEM): enrol again "
                 "(yinian-pos --enrol TOKEN makes a new one)",
                 path);
        note(r, V_FAIL, advice, "terminal key pair %s: %s", path,
             rc != YN_OK ? yn_strerror(rc) : info.detail);
        return;
    }
    note(r, V_OK, NULL, "terminal key pair ok, public key %s", info.fingerprint);
    json_object_set_new(r->data, "terminal_public_key", json_string(info.fingerprint));
}

/* Each key file: there, mode and owner as the daemon demands, decodes, right
 * length; with backend = pkcs11 the PIN file and the token. */
static void check_keys(struct ctx *c, struct result *r)
{
    char advice[PATH_MAX + 600];
    bool pair = c->cfg.keys.terminal_key_type == YN_KEY_ECDSA_P256;
    json_object_set_new(r->data, "backend", json_string(c->cfg.keys.backend));
    json_object_set_new(r->data, "terminal_key_type", json_string(pair ? "ecdsa-p256" : "hmac"));
    for (size_t i = 0; i < sizeof key_specs / sizeof key_specs[0]; i++) {
        const struct key_spec *k = &key_specs[i];
        const char *path = key_path(&c->cfg, k->id);
        struct stat sb;
        if (!path[0]) {
            if (k->id == YN_KEYID_DISTRICT_PUB && c->cfg.sync.enabled)
                note(r, V_FAIL, "set [keys] district_pubkey (the district gives it)",
                     "[keys] district_pubkey not set but sync is on");
            continue;
        }
        if (stat(path, &sb) != 0) {
            if (k->id == YN_KEYID_TERMINAL)
                snprintf(advice, sizeof advice,
                         "enrol with the district: yinian-pos --enrol TOKEN (writes %s)", path);
            else
                snprintf(advice, sizeof advice,
                         "put the %s file in place (yinian-flash provision, or from the "
                         "district's issuing office)",
                         k->what);
            note(r, V_FAIL, advice, "%s %s: %s", k->what, path, strerror(errno));
            continue;
        }
        if (k->secret && (sb.st_mode & 077)) {
            snprintf(advice, sizeof advice,
                     "chmod 600 %s (a secret key must be readable by its owner only; the daemon "
                     "refuses it otherwise)",
                     path);
            note(r, V_FAIL, advice, "%s %s has mode %04o: group or others can read it", k->what,
                 path, (unsigned)(sb.st_mode & 07777));
            continue;
        }
        if (k->secret && geteuid() != 0 && sb.st_uid != geteuid()) {
            snprintf(advice, sizeof advice, "chown the key to the user yinian-pos runs as: %s",
                     path);
            note(r, V_FAIL, advice, "%s %s is owned by uid %u, not by us", k->what, path,
                 (unsigned)sb.st_uid);
            continue;
        }
        if (!k->secret && (sb.st_mode & 022)) {
            snprintf(advice, sizeof advice, "chmod 644 %s", path);
            note(r, V_FAIL, advice, "%s %s is writable by group or others (mode %04o)", k->what,
                 path, (unsigned)(sb.st_mode & 07777));
            continue;
        }
        if (k->id == YN_KEYID_COUNT) { /* a PIN, not hex: its content is the token's to judge */
            note(r, V_OK, NULL, "%s ok", k->what);
            continue;
        }
        if (k->id == YN_KEYID_TERMINAL && pair) {
            check_pair_file(c, r, path);
            continue;
        }
        static uint8_t buf[YN_KEY_MAX];
        size_t len = 0;
        /* as root, check what is in it even when owned by the daemon's user */
        int rc =
            yn_key_file_load(path, k->secret && geteuid() != 0, k->what, buf, sizeof buf, &len);
        explicit_bzero(buf, sizeof buf);
        if (rc != YN_OK || len < k->min_len || len > k->max_len) {
            snprintf(advice, sizeof advice,
                     "replace %s with the right key (hex text; %zu..%zu bytes)", path, k->min_len,
                     k->max_len);
            note(r, V_FAIL, advice, "%s %s: %s", k->what, path,
                 rc != YN_OK ? yn_strerror(rc) : "wrong length");
            continue;
        }
        note(r, V_OK, NULL, "%s ok", k->what);
    }
    if (strcmp(c->cfg.keys.backend, "pkcs11") == 0)
        check_token(c, r);
}

static const char *reader_where(const yn_config *cfg)
{
    return strcmp(cfg->reader.backend, "sim") == 0 ? cfg->reader.sim_cards : cfg->reader.connstring;
}

static void check_reader(struct ctx *c, struct result *r)
{
    char what[200], advice[PATH_MAX + 600];
    json_object_set_new(r->data, "backend", json_string(c->cfg.reader.backend));
    int rc = yn_nfc_open(&c->nfc, &c->cfg.reader);
    if (rc != YN_OK) {
        snprintf(advice, sizeof advice,
                 "check the reader's cable and power and [reader] connstring (now '%s'); if "
                 "yinian-pos is running it holds the reader: systemctl stop yinian-pos, then "
                 "run yinian-diag again",
                 reader_where(&c->cfg));
        note(r, V_FAIL, advice, "%s reader at '%s' does not open: %s", c->cfg.reader.backend,
             reader_where(&c->cfg), yn_strerror(rc));
        return;
    }
    c->nfc_open = true;
    rc = yn_nfc_describe(&c->nfc, what, sizeof what);
    if (rc == YN_ENOTSUP)
        note(r, V_OK, NULL, "%s reader opened (it cannot describe itself)", c->cfg.reader.backend);
    else if (rc != YN_OK)
        note(r, V_FAIL,
             "the reader opened but does not answer: unplug and replug it, check its power; "
             "replace it if it stays silent",
             "%s reader opened but does not answer: %s", c->cfg.reader.backend, yn_strerror(rc));
    else {
        note(r, V_OK, NULL, "%s", what);
        json_object_set_new(r->data, "firmware", json_string(what));
    }
}

/* --card: wait for a tap, then read and verify the card as a counter tap does. */
static void check_card(struct ctx *c, struct result *r)
{
    if (!c->nfc_open) {
        note(r, V_FAIL, "fix the reader first (see the reader check)", "no reader to read with");
        return;
    }
    uint8_t ring_bytes[YN_KEY_MAX];
    size_t rlen = 0;
    yn_card_keyring ring;
    char err[200];
    int rc = open_keys(c);
    if (rc == YN_OK)
        rc = yn_keystore_load(&c->keys, YN_KEYID_ISSUER_PUB, ring_bytes, sizeof ring_bytes, &rlen);
    if (rc == YN_OK &&
        yn_card_keyring_from_bytes(ring_bytes, rlen, &ring, err, sizeof err) != YN_OK)
        rc = YN_EINVAL;
    if (rc != YN_OK) {
        note(r, V_FAIL, "fix the keys first (see the keys check)", "card keys not usable: %s",
             yn_strerror(rc));
        return;
    }
    bool sim = strcmp(c->cfg.reader.backend, "sim") == 0;
#if WITH_SIM
    if (sim && yn_nfc_sim_present(&c->nfc, 0) != YN_OK)
        note(r, V_WARN, NULL, "the sim reader has no virtual card to present");
#endif
    if (!sim) {
        fprintf(stderr, "yinian-diag: tap a card on the reader (waiting %d s)\n",
                c->card_timeout_s);
    }
    yn_nfc_tag tag;
    int64_t until_ms = yn_time_mono_ms() + (int64_t)c->card_timeout_s * 1000;
    do
        rc = yn_nfc_poll(&c->nfc, 500, &tag);
    while (rc == YN_ENOCARD && yn_time_mono_ms() < until_ms);
    if (rc != YN_OK) {
        note(r, rc == YN_ENOCARD ? V_WARN : V_FAIL,
             "hold a card flat on the reader and run again with --card; if a card never shows, "
             "check the reader's antenna and cable",
             "no card read within %d s: %s", c->card_timeout_s, yn_strerror(rc));
        return;
    }
    yn_tap_env env = {.nfc = &c->nfc, .ledger = c->ledger, .keys = &c->keys, .ring = &ring};
    yn_tap_outcome out;
    char uid[2 * YN_UID_MAX + 1];
    yn_nfc_uid_hex(&tag, uid, sizeof uid);
    rc = yn_tap_identify(&env, &tag, &out);
    if (yn_nfc_release(&c->nfc) != YN_OK)
        yn_debug("reader: release after the card check failed");
    json_object_set_new(r->data, "uid", json_string(uid));
    if (rc == YN_OK && out.card_ok) {
        note(r, V_OK, NULL, "card %s (%s, uid %s) read, issuer signature verified, expires %d",
             out.card.card_no, yn_tag_type_name(tag.type), uid, (int)out.card.expiry_ymd);
        json_object_set_new(r->data, "card_no", json_string(out.card.card_no));
        return;
    }
    note(r, V_FAIL,
         out.reason == YN_REASON_NOT_GENUINE
             ? "the card does not verify with this board's keys: if no card does, the card "
               "master key (file or token) or [keys] issuer_pubkey are not this district's; "
               "otherwise the card is not genuine or was issued elsewhere"
             : "hold the card still on the reader and try again; if every card fails, check the "
               "reader",
         "card uid %s: %s", uid, out.detail[0] ? out.detail : yn_strerror(rc));
}

static void check_scale(struct ctx *c, struct result *r)
{
    json_object_set_new(r->data, "backend", json_string(c->cfg.scale.backend));
    if (strcmp(c->cfg.scale.backend, "none") == 0) {
        note(r, V_OK, NULL, "no scale configured");
        return;
    }
    yn_scale scale;
    yn_weight w;
    char advice[PATH_MAX + 600];
    snprintf(advice, sizeof advice,
             "check the scale's power and RS-485 cable (A/B not swapped) and [scale] device "
             "'%s', baud %d, slave_id %d; stop yinian-pos if it is running",
             c->cfg.scale.line.device, c->cfg.scale.line.baud, c->cfg.scale.line.slave_id);
    int rc = yn_scale_open(&scale, &c->cfg.scale);
    if (rc != YN_OK) {
        note(r, V_FAIL, advice, "%s scale at %s does not open: %s", c->cfg.scale.backend,
             c->cfg.scale.line.device, yn_strerror(rc));
        return;
    }
    if ((rc = yn_scale_read(&scale, &w)) != YN_OK) {
        bool answered = rc >= YN_EDEV_FUNCTION && rc <= YN_EDEV_EXCEPTION;
        snprintf(advice, sizeof advice,
                 "%s ([scale] device '%s', baud %d, slave_id %d; stop "
                 "yinian-pos if it is running)",
                 yn_scale_advice(rc), c->cfg.scale.line.device, c->cfg.scale.line.baud,
                 c->cfg.scale.line.slave_id);
        note(r, V_FAIL, advice, "%s scale at %s %s: %s", c->cfg.scale.backend,
             c->cfg.scale.line.device,
             answered        ? "answers with an error"
             : rc == YN_ECRC ? "answers garbled"
                             : "does not answer",
             yn_strerror(rc));
        json_object_set_new(r->data, "status", json_string(yn_strerror(rc)));
    } else if (w.overload)
        note(r, V_WARN, "take everything off the scale; if it stays, zero it or have it serviced",
             "scale answers but reports overload");
    else {
        note(r, V_OK, NULL, "%s scale answers: %d g%s", c->cfg.scale.backend, (int)w.net_g,
             w.stable ? ", stable" : ", settling");
        json_object_set_new(r->data, "net_g", json_integer(w.net_g));
    }
    yn_scale_close(&scale);
}

static void check_io(struct ctx *c, struct result *r)
{
    json_object_set_new(r->data, "backend", json_string(c->cfg.io.backend));
    if (strcmp(c->cfg.io.backend, "none") == 0) {
        note(r, V_OK, NULL, "no I/O module configured");
        return;
    }
    yn_io io;
    char what[200], advice[PATH_MAX + 600];
    snprintf(advice, sizeof advice,
             "check the I/O module's power and cable and [io] device '%s', slave_id %d; stop "
             "yinian-pos if it is running",
             c->cfg.io.line.device, c->cfg.io.line.slave_id);
    int rc = yn_io_open(&io, &c->cfg.io);
    if (rc != YN_OK) {
        note(r, V_FAIL, advice, "%s I/O module does not open: %s", c->cfg.io.backend,
             yn_strerror(rc));
        return;
    }
    rc = yn_io_describe(&io, what, sizeof what);
    if (rc == YN_OK || rc == YN_ENOTSUP)
        note(r, V_OK, NULL, "%s", rc == YN_OK ? what : "I/O module opened");
    else
        note(r, V_FAIL, advice, "%s I/O module does not answer: %s", c->cfg.io.backend,
             yn_strerror(rc));
    yn_io_close(&io);
}

static void check_display(struct ctx *c, struct result *r)
{
    const char *b = c->cfg.display.backend;
    json_object_set_new(r->data, "backend", json_string(b));
    if (strcmp(b, "terminal") == 0 || strcmp(b, "sim") == 0) {
        note(r, V_OK, NULL, "%s display: nothing to write to", b);
        return;
    }
    yn_display d;
    char what[200], advice[PATH_MAX + 600];
    snprintf(advice, sizeof advice,
             strcmp(b, "fb") == 0 ? "check that %s exists and the daemon's user may write it "
                                    "(group video); check the panel's cable"
                                  : "check that the folder %s exists and is writable",
             strcmp(b, "fb") == 0 ? c->cfg.display.device : c->cfg.display.snapshot_dir);
    int rc = yn_display_open(&d, &c->cfg.display);
    if (rc != YN_OK) {
        note(r, V_FAIL, advice, "%s display does not open: %s", b, yn_strerror(rc));
        return;
    }
    yn_screen s;
    yn_screen_init(&s, YN_SCREEN_INFO, "diag", "设备自检");
    yn_screen_add(&s, YN_TEXT_LARGE, "维护中，请稍候");
    if ((rc = yn_display_show(&d, &s)) != YN_OK)
        note(r, V_FAIL, advice, "%s display: a test screen was not written: %s", b,
             yn_strerror(rc));
    else if (yn_display_describe(&d, what, sizeof what) == YN_OK)
        note(r, V_OK, NULL, "test screen written: %s", what);
    else
        note(r, V_OK, NULL, "test screen written (%s)", b);
    yn_display_close(&d);
}

/* SQLite's own check of the file (pages, indexes), independent of the chain. */
static int integrity_check(const char *path, char *what, size_t len)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check(5)", -1, &st, NULL);
    what[0] = '\0';
    bool ok = false;
    while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        const char *row = (const char *)sqlite3_column_text(st, 0);
        if (row && strcmp(row, "ok") == 0)
            ok = true;
        else if (row && !what[0])
            snprintf(what, len, "%s", row);
        for (char *p = strchr(what, '\n'); p; p = strchr(p, '\n'))
            *p = ' ';
    }
    if (rc != SQLITE_OK || (!ok && !what[0]))
        snprintf(what, len, "%s", db ? sqlite3_errmsg(db) : "cannot open");
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok ? YN_OK : YN_ECORRUPT;
}

static const char lost_advice[] =
    "the district holds these records: start yinian-pos with the network up and sync on; it "
    "restores them from the district before it sells again (sales stay stopped until then). "
    "Do not sell from a copy of this ledger meanwhile";

static const char ledger_damaged_advice[] =
    "the ledger is damaged: stop yinian-pos, copy the ledger file aside (keep it for the "
    "district) and ask the district to reconcile from the records it holds; yinian-flash "
    "keeps a backup only from before an update that changed the ledger's schema "
    "(<ledger>.before-<version>.bak, tools/FLASH.md), and it lacks every record made since";

/* What the ledger's meta says happened: a restore from the district, a
 * conflict with it (sync/client.c writes both). */
static void ledger_history(struct ctx *c, struct result *r)
{
    bool found;
    char when[32];
    int64_t first = meta_i64(c->ledger, "restored_first", &found);
    int64_t last = meta_i64(c->ledger, "restored_last", &found);
    int64_t mark = meta_i64(c->ledger, "restored_mark", &found);
    int64_t at = meta_i64(c->ledger, "restored_utc_s", &found);
    if (found) {
        fmt_utc(at, when, sizeof when);
        if (first > 0)
            note(r, V_OK, NULL,
                 "records %lld-%lld were lost here and restored from the district "
                 "on %s",
                 (long long)first, (long long)last, when);
        if (mark > (last > 0 ? last : 0))
            note(r, V_OK, NULL,
                 "on %s the district held records up to %lld only: records up "
                 "to %lld (the high-water mark then) had never reached it",
                 when, (long long)(last > 0 ? last : first - 1), (long long)mark);
        json_object_set_new(r->data, "restored",
                            json_pack("{s:I, s:I, s:I, s:I}", "first", (json_int_t)first, "last",
                                      (json_int_t)last, "mark", (json_int_t)mark, "utc_s",
                                      (json_int_t)at));
    }
    char v[96];
    long long cf = 0, cl = 0, cat = 0;
    if (yn_ledger_meta_get(c->ledger, "sync_conflict", v, sizeof v) == YN_OK &&
        sscanf(v, "%lld %lld %lld", &cf, &cl, &cat) == 3) {
        int64_t acked = meta_i64(c->ledger, "acked_seq", &found);
        fmt_utc(cat, when, sizeof when);
        if (acked < cf)
            note(r, V_FAIL,
                 "the district holds other records under these seqs: this ledger lost records "
                 "(before the high-water mark existed) or belongs to another terminal; copy the "
                 "ledger aside and have the district compare its records with it",
                 "on %s the district refused records %lld-%lld as conflicting with what it holds",
                 when, cf, cl);
        else
            note(r, V_OK, NULL,
                 "the conflict of %s over records %lld-%lld is resolved (acknowledged since)", when,
                 cf, cl);
    }
}

static void check_ledger(struct ctx *c, struct result *r)
{
    const char *path = c->cfg.ledger.path;
    struct stat sb;
    json_object_set_new(r->data, "path", json_string(path));
    if (stat(path, &sb) != 0) {
        c->ledger_missing = true;
        note(r, V_WARN,
             "nothing to do if this terminal has never run; otherwise check [ledger] path",
             "no ledger at %s yet (yinian-pos creates it at its first start)", path);
        return;
    }
    char what[256];
    if (integrity_check(path, what, sizeof what) != YN_OK)
        note(r, V_FAIL, ledger_damaged_advice, "SQLite integrity check of %s: %s", path, what);
    yn_ledger_opts lo = {.path = path, .terminal_id = c->cfg.terminal.id, .read_only = true};
    int rc = yn_ledger_open(&lo, &c->ledger);
    if (rc != YN_OK) {
        note(r, V_FAIL,
             rc == YN_ECORRUPT || rc == YN_EIO ? ledger_damaged_advice
             : rc == YN_EINVAL ? "this ledger belongs to another terminal id: check "
                                 "[terminal] id and [ledger] path"
                               : ledger_damaged_advice,
             "%s does not open: %s", path, yn_strerror(rc));
        return;
    }
    yn_ledger_verify_report rep;
    rc = yn_ledger_verify(c->ledger, &rep);
    json_object_set_new(r->data, "records", json_integer(rep.records));
    if (rc == YN_OK) {
        note(r, V_OK, NULL, "%lld records and %lld wallets verified: hash chain intact",
             (long long)rep.records, (long long)rep.cards);
    } else {
        json_object_set_new(r->data, "first_bad_seq", json_integer(rep.first_bad_seq));
        note(r, V_FAIL, ledger_damaged_advice, "chain verification at seq %lld: %s (%s)",
             (long long)rep.first_bad_seq, rep.what[0] ? rep.what : "failed", yn_strerror(rc));
    }
    /* the high-water mark: records that may have left and are not here */
    yn_ledger_health h;
    rc = yn_ledger_check(c->ledger, YN_LEDGER_CHECK_TAIL, &h);
    json_object_set_new(r->data, "mark", json_integer(h.mark_seq));
    if (rc == YN_ESTALE) {
        json_object_set_new(r->data, "lost",
                            json_pack("{s:I, s:I}", "first", (json_int_t)h.lost_first, "last",
                                      (json_int_t)h.lost_last));
        note(r, V_FAIL, lost_advice, "%s", h.what);
    } else if (rc != YN_OK && h.what[0]) {
        note(r, V_FAIL, ledger_damaged_advice, "%s", h.what);
    }
    ledger_history(c, r);
}

static void check_disk(struct ctx *c, struct result *r)
{
    char dir[PATH_MAX], wal[PATH_MAX + 8];
    snprintf(dir, sizeof dir, "%s", c->cfg.ledger.path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    struct statvfs vfs;
    if (statvfs(dir, &vfs) != 0) {
        note(r, V_FAIL, "check that the data partition is mounted", "%s: %s", dir, strerror(errno));
        return;
    }
    long long free_b = (long long)vfs.f_bavail * (long long)vfs.f_frsize;
    long long total_b = (long long)vfs.f_blocks * (long long)vfs.f_frsize;
    long long size_b = 0;
    struct stat sb;
    if (stat(c->cfg.ledger.path, &sb) == 0)
        size_b += sb.st_size;
    snprintf(wal, sizeof wal, "%s-wal", c->cfg.ledger.path);
    if (stat(wal, &sb) == 0)
        size_b += sb.st_size;
    json_object_set_new(r->data, "ledger_bytes", json_integer(size_b));
    json_object_set_new(r->data, "free_bytes", json_integer(free_b));
    char msg[PATH_MAX + 256];
    snprintf(msg, sizeof msg, "ledger %.1f MiB; %.0f MiB free of %.0f MiB on %s",
             (double)size_b / 1048576.0, (double)free_b / 1048576.0, (double)total_b / 1048576.0,
             dir);
    if (vfs.f_flag & ST_RDONLY)
        note(r, V_FAIL, "the data partition is read-only (often after a disk error): fsck it",
             "%s is mounted read-only; %s", dir, msg);
    else if (free_b < DISK_FAIL_BYTES)
        note(r, V_FAIL,
             "free space now: remove old logs and snapshots; the ledger refuses sales when full",
             "%s", msg);
    else if (free_b < DISK_WARN_BYTES || free_b * 20 < total_b)
        note(r, V_WARN, "free some space soon (old logs, snapshots, downloaded bundles)", "%s",
             msg);
    else
        note(r, V_OK, NULL, "%s", msg);
}

static int64_t boot_utc_s(void)
{
    struct timespec up, now;
    if (clock_gettime(CLOCK_BOOTTIME, &up) != 0)
        return 0;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec - (int64_t)up.tv_sec;
}

/* The system clock against the district's, as the last sync saw both. */
static void check_clock(struct ctx *c, struct result *r)
{
    int64_t now = (int64_t)time(NULL);
    char when[32], age[32];
    fmt_utc(now, when, sizeof when);
    json_object_set_new(r->data, "system_utc", json_string(when));
    if (now < 1704067200) /* 2024-01-01 */
        note(r, V_FAIL,
             "the board's clock is wrong (RTC battery flat?): set it (timedatectl) and enable NTP",
             "system clock says %s", when);
    bool have_server = false, have_local = false;
    int64_t server_ms = c->ledger ? meta_i64(c->ledger, "sync_server_utc_ms", &have_server) : 0;
    int64_t local_ms = c->ledger ? meta_i64(c->ledger, "sync_local_utc_ms", &have_local) : 0;
    if (!have_server || !have_local) {
        note(r, V_WARN,
             "connect the terminal to the district network: its first sync since boot sets the "
             "time; until then records are marked untrusted",
             "never compared with the district's clock: untrusted since boot (system clock %s)",
             when);
        return;
    }
    int64_t drift_ms = local_ms - server_ms;
    fmt_utc(local_ms / 1000, when, sizeof when);
    fmt_age(now - local_ms / 1000, age, sizeof age);
    json_object_set_new(r->data, "drift_ms", json_integer(drift_ms));
    json_object_set_new(r->data, "compared_utc", json_string(when));
    int64_t abs_ms = drift_ms < 0 ? -drift_ms : drift_ms;
    if (local_ms / 1000 < boot_utc_s())
        note(r, V_WARN,
             "wait for a sync (check the network): the terminal marks records untrusted until "
             "the district confirms the time",
             "not compared with the district since this boot (last %s ago, system clock was "
             "%+.1f s off then): untrusted since boot",
             age, (double)drift_ms / 1000.0);
    else if (abs_ms > DRIFT_FAIL_MS)
        note(r, V_FAIL,
             "set the clock (timedatectl set-time) and enable NTP; check the RTC battery",
             "system clock %+.1f s off the district's (at %s): more than the terminal corrects "
             "by itself",
             (double)drift_ms / 1000.0, when);
    else if (abs_ms > DRIFT_WARN_MS)
        note(r, V_WARN,
             "enable NTP (timedatectl set-ntp true) or check the RTC battery; the terminal "
             "corrects its own time meanwhile",
             "system clock %+.1f s off the district's (at %s)", (double)drift_ms / 1000.0, when);
    else
        note(r, V_OK, NULL, "trusted: system clock %+.1f s off the district's %s ago",
             (double)drift_ms / 1000.0, age);
}

static void check_sync(struct ctx *c, struct result *r)
{
    json_object_set_new(r->data, "enabled", json_boolean(c->cfg.sync.enabled));
    if (!c->ledger) {
        if (c->ledger_missing)
            note(r, V_OK, NULL, "no ledger yet: nothing waiting");
        else
            note(r, V_FAIL, "fix the ledger first (see the ledger check)",
                 "ledger not readable: records waiting unknown");
        return;
    }
    int64_t now = (int64_t)time(NULL), unsent = 0, oldest = 0;
    bool have_last = false;
    int64_t last = meta_i64(c->ledger, "last_sync_utc_s", &have_last);
    int rc = yn_ledger_unsent(c->ledger, now, &unsent, &oldest);
    if (rc != YN_OK) {
        note(r, V_FAIL, "fix the ledger first (see the ledger check)",
             "records waiting unknown: %s", yn_strerror(rc));
        return;
    }
    char last_s[120] = "never", age[32];
    if (have_last && last > 0) {
        char when[32];
        fmt_utc(last, when, sizeof when);
        fmt_age(now - last, age, sizeof age);
        snprintf(last_s, sizeof last_s, "%s ago", age);
        json_object_set_new(r->data, "last_sync_utc", json_string(when));
    }
    /* a USB acknowledgement (import-ack) marks records sent; it is no sync */
    bool have_usb = false;
    int64_t usb = meta_i64(c->ledger, "last_usb_ack_utc_s", &have_usb);
    if (have_usb && usb > 0) {
        char when[32];
        fmt_utc(usb, when, sizeof when);
        fmt_age(now - usb, age, sizeof age);
        size_t n = strlen(last_s);
        snprintf(last_s + n, sizeof last_s - n, " (records acknowledged by USB stick %s ago)", age);
        json_object_set_new(r->data, "last_usb_ack_utc", json_string(when));
    }
    json_object_set_new(r->data, "unsent", json_integer(unsent));
    json_object_set_new(r->data, "oldest_unsent_age_s", json_integer(oldest));
    fmt_age(oldest, age, sizeof age);
    const char *export_advice =
        "records are kept safely; check the network and [sync] url, or carry them on a USB "
        "stick: yinian-diag export /media/usb (then yinian-district import there)";
    if (unsent == 0)
        note(r, c->cfg.sync.enabled && !(have_last && last > 0) ? V_WARN : V_OK,
             "check the network, [sync] url and enrolment (yinian-pos --enrol TOKEN)",
             "nothing waiting; last sync %s", last_s);
    else if (!c->cfg.sync.enabled)
        note(r, V_WARN, export_advice, "sync is off: %lld records waiting, oldest %s",
             (long long)unsent, age);
    else if (oldest >= UNSENT_FAIL_AGE_S)
        note(r, V_FAIL, export_advice,
             "%lld records waiting, oldest %s: the district has not had them; last sync %s",
             (long long)unsent, age, last_s);
    else if (oldest >= UNSENT_WARN_AGE_S)
        note(r, V_WARN, export_advice, "%lld records waiting, oldest %s; last sync %s",
             (long long)unsent, age, last_s);
    else
        note(r, V_OK, NULL, "%lld records waiting, oldest %s; last sync %s", (long long)unsent, age,
             last_s);
}

/* yinian-flash's state file (tools/FLASH.md): key = value lines. */
static bool state_get(const char *text, const char *key, char *out, size_t len)
{
    size_t klen = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncmp(p, key, klen) != 0)
            continue;
        const char *q = p + klen;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q != '=')
            continue;
        q++;
        while (*q == ' ' || *q == '\t')
            q++;
        size_t n = strcspn(q, " \t\r\n#");
        snprintf(out, len, "%.*s", (int)n, q);
        return true;
    }
    return false;
}

static void check_versions(struct ctx *c, struct result *r)
{
    char path[PATH_MAX + 8], text[4096];
    json_object_set_new(r->data, "diag_version", json_string(YN_VERSION));
    snprintf(path, sizeof path, "%s/state", c->root);
    FILE *f = fopen(path, "r");
    if (!f) {
        note(r, V_WARN,
             "install releases with yinian-flash install, so a bad update rolls back by itself "
             "(tools/FLASH.md)",
             "not installed with yinian-flash (no %s); this tool is %s", path, YN_VERSION);
        return;
    }
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char active[8] = "-", left[16] = "?", format[8] = "1";
    state_get(text, "active", active, sizeof active);
    state_get(text, "attempts_left", left, sizeof left);
    state_get(text, "format", format, sizeof format);
    if (atoi(format) > 1) {
        note(r, V_WARN, "use the yinian-flash of the installed release: yinian-flash status",
             "%s has format %s, newer than this tool reads", path, format);
        return;
    }
    json_object_set_new(r->data, "active", json_string(active));
    for (const char *slot = "a"; slot; slot = slot[0] == 'a' ? "b" : NULL) {
        char key[32], status[24] = "empty", version[64] = "-";
        snprintf(key, sizeof key, "%s.status", slot);
        state_get(text, key, status, sizeof status);
        snprintf(key, sizeof key, "%s.version", slot);
        state_get(text, key, version, sizeof version);
        json_object_set_new(r->data, slot,
                            json_pack("{s:s, s:s}", "status", status, "version", version));
        bool is_active = strcmp(active, slot) == 0;
        if (is_active && strcmp(status, "installed") == 0)
            note(r, V_WARN,
                 "let the board start once more so the new version proves itself, or go back: "
                 "yinian-flash rollback",
                 "slot %s (%s) active on trial, %s starts left", slot, version, left);
        else if (strcmp(status, "failed") == 0)
            note(r, V_WARN,
                 "the version in this slot failed its self-test and was rolled back from; "
                 "report it to the vendor before installing it again",
                 "slot %s (%s) failed", slot, version);
        else
            note(r, V_OK, NULL, "slot %s%s: %s %s", slot, is_active ? " (active)" : "", version,
                 status);
    }
    if (strcmp(active, "-") == 0)
        note(r, V_WARN, "install a release: yinian-flash install BUNDLE",
             "yinian-flash state present but no slot active");
}

typedef void (*check_fn)(struct ctx *c, struct result *r);

static const struct check {
    const char *name;
    check_fn run;
} checks[] = {
    {"config", check_config},   {"keys", check_keys},     {"reader", check_reader},
    {"card", check_card},       {"scale", check_scale},   {"io", check_io},
    {"display", check_display}, {"ledger", check_ledger}, {"disk", check_disk},
    {"clock", check_clock},     {"sync", check_sync},     {"versions", check_versions},
};

/* only: run just the config and that check (NULL: all). */
static int run_checks(struct ctx *c, bool json, const char *only)
{
    int counts[3] = {0};
    json_t *all = json_array();
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        const struct check *k = &checks[i];
        if (strcmp(k->name, "card") == 0 && !c->card)
            continue;
        if (only && i > 0 && strcmp(k->name, only) != 0)
            continue;
        if (i > 0 && !c->config_usable)
            break;
        struct result r = {.status = V_OK, .data = json_object()};
        k->run(c, &r);
        counts[r.status]++;
        if (json) {
            json_t *o =
                json_pack("{s:s, s:s, s:s, s:s}", "name", k->name, "status", verdict_name[r.status],
                          "message", r.message, "advice", r.status == V_OK ? "" : r.advice);
            json_object_set_new(o, "data", r.data);
            json_array_append_new(all, o);
        } else {
            printf("%-4s  %-8s  %s\n", verdict_name[r.status], k->name, r.message);
            if (r.status != V_OK && r.advice[0])
                printf("      %-8s  → %s\n", "", r.advice);
            json_decref(r.data);
        }
        fflush(stdout);
    }
    if (!c->config_usable && !json)
        printf("      (the other checks need a readable board.conf)\n");
    int rc = counts[V_FAIL] ? EXIT_FAIL : 0;
    if (json) {
        json_t *doc = json_pack("{s:s, s:s, s:s, s:o, s:{s:i, s:i, s:i}, s:i}", "tool",
                                "yinian-diag", "version", YN_VERSION, "config", c->config_path,
                                "checks", all, "summary", "ok", counts[V_OK], "warn",
                                counts[V_WARN], "fail", counts[V_FAIL], "exit", rc);
        char *text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("%s\n", text);
        free(text);
        json_decref(doc);
    } else {
        json_decref(all);
        printf("%d FAIL, %d WARN, %d OK\n", counts[V_FAIL], counts[V_WARN], counts[V_OK]);
    }
    if (c->nfc_open)
        yn_nfc_close(&c->nfc);
    yn_ledger_close(c->ledger);
    yn_keystore_close(&c->keys);
    return rc;
}

/* --- USB export and the district's acknowledgements ------------------------------- */

/* board.conf, the terminal key (in the keystore) and the ledger (read-write)
 * for export / import-ack. */
static int open_terminal(struct ctx *c, yn_ledger **l)
{
    if (c->errs.count) {
        for (int i = 0; i < c->errs.count && i < YN_CONFIG_MAX_ERRORS; i++)
            fprintf(stderr, "%s\n", c->errs.msg[i]);
        return EXIT_USAGE;
    }
    yn_keystore_key_info info = {.works = false};
    int rc = open_keys(c);
    if (rc == YN_OK && (rc = yn_keystore_inspect(&c->keys, YN_KEYID_TERMINAL, &info)) == YN_OK &&
        !info.works)
        rc = YN_ENOTFOUND;
    if (rc != YN_OK) {
        fprintf(stderr, "terminal key not usable (%s): %s: enrol first (yinian-pos --enrol)\n",
                yn_strerror(rc), c->keys_rc != YN_OK ? c->keys.error : info.detail);
        return EXIT_FAIL;
    }
    yn_ledger_opts lo = {
        .path = c->cfg.ledger.path, .terminal_id = c->cfg.terminal.id, .lock = true};
    if ((rc = yn_ledger_open(&lo, l)) != YN_OK) {
        fprintf(stderr, "%s: ledger does not open: %s (%s)\n", c->cfg.ledger.path, yn_strerror(rc),
                rc == YN_EBUSY ? "yinian-pos is running on it: stop it first"
                               : "run yinian-diag for details");
        return EXIT_FAIL;
    }
    return 0;
}

static int write_json(const char *path, json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    int rc = YN_ENOMEM;
    if (text) {
        size_t n = strlen(text);
        char *line = realloc(text, n + 2);
        if (line) {
            text = line;
            text[n] = '\n';
            text[n + 1] = '\0';
            rc = yn_file_write_atomic(path, text, n + 1, 0644);
        }
    }
    free(text);
    return rc;
}

/* One batch onto the stick: its frame (decoded again: our own check of what
 * goes on the stick) and its manifest entry; sums[4] and *records add up. */
static int export_batch(yn_ledger *l, const yn_ledger_batch *b, yn_keystore *keys, const char *dir,
                        json_t *list, int64_t sums[4], int64_t *records,
                        uint8_t head[YN_LEDGER_HASH_LEN])
{
    uint8_t *frame = NULL;
    size_t len = 0;
    yn_ledger_record *recs = NULL;
    yn_batch_header h;
    const char *why = "";
    int rc = yn_sync_batch_frame(l, b, keys, &frame, &len);
    /* our own check of what goes on the stick: MAC or signature, chain and all */
    if (rc == YN_OK && (rc = yn_sync_frame_own(keys, frame, len, &h, &recs, &why)) != YN_OK)
        fprintf(stderr, "export: our own frame does not decode: %s\n", why);
    char name[96], path[PATH_MAX], head_hex[65], sha_hex[65];
    if (rc == YN_OK) {
        snprintf(name, sizeof name, "batch-%s-%06lld.ynb", h.terminal, (long long)h.batch_id);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if ((rc = yn_file_write_atomic(path, frame, len, 0644)) != YN_OK)
            fprintf(stderr, "%s: not written: %s\n", path, yn_strerror(rc));
    }
    if (rc == YN_OK) {
        uint8_t sha[SHA256_DIGEST_LENGTH];
        SHA256(frame, len, sha);
        yn_hex_encode(sha, sizeof sha, sha_hex);
        yn_hex_encode(h.head_hash, sizeof h.head_hash, head_hex);
        memcpy(head, h.head_hash, YN_LEDGER_HASH_LEN);
        int64_t s[4] = {0}, meals = 0;
        for (uint32_t i = 0; i < h.count; i++) {
            s[0] += recs[i].price_fen;
            s[1] += recs[i].subsidy_fen;
            s[2] += recs[i].wallet_fen;
            s[3] += recs[i].cash_fen;
            meals += recs[i].kind == YN_LEDGER_MEAL;
        }
        for (int i = 0; i < 4; i++)
            sums[i] += s[i];
        *records += h.count;
        json_array_append_new(
            list, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I, s:I}, s:s, s:s, s:I}",
                            "file", name, "batch_id", (json_int_t)h.batch_id, "first_seq",
                            (json_int_t)h.first_seq, "last_seq", (json_int_t)h.last_seq, "records",
                            (json_int_t)h.count, "meals", (json_int_t)meals, "sums", "price_fen",
                            (json_int_t)s[0], "subsidy_fen", (json_int_t)s[1], "wallet_fen",
                            (json_int_t)s[2], "cash_fen", (json_int_t)s[3], "head_hash", head_hex,
                            "sha256", sha_hex, "bytes", (json_int_t)len));
        printf("%s: batch %lld, records %lld..%lld (%u), %lld fen\n", name, (long long)h.batch_id,
               (long long)h.first_seq, (long long)h.last_seq, h.count, (long long)s[0]);
    }
    free(recs);
    free(frame);
    return rc;
}

/* export DIR: every unsent record as the batch frames sync would upload:
 * the open batch (the one sync is retrying, if any), then batches of up to
 * YN_BATCH_MAX_RECORDS with the ids the ledger will give them (ids follow
 * one another), so each acknowledgement matches the ledger's batch when
 * import-ack (or sync) gets to it. The manifest is written last: a folder
 * with a manifest is a complete export. */
static int cmd_export(struct ctx *c, const char *dir)
{
    yn_ledger *l = NULL;
    int ex = open_terminal(c, &l);
    if (ex)
        return ex;
    int64_t now = (int64_t)time(NULL), unsent = 0, oldest = 0, head_seq = 0;
    uint8_t head[YN_LEDGER_HASH_LEN];
    json_t *list = json_array();
    int64_t sums[4] = {0}, records = 0;
    yn_ledger_batch b;
    int rc = yn_ledger_unsent(l, now, &unsent, &oldest);
    if (rc == YN_OK && unsent == 0) {
        printf("nothing to export: the district has acknowledged every record\n");
        goto out;
    }
    if (rc == YN_OK && mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        ex = EXIT_FAIL;
        goto out;
    }
    if (rc == YN_OK)
        rc = yn_ledger_head(l, &head_seq, head);
    /* the high-water mark first: whatever reaches the district is at or below it */
    if (rc == YN_OK)
        rc = yn_ledger_mark_raise(l, head_seq);
    if (rc == YN_OK)
        rc = yn_ledger_batch_next(l, YN_BATCH_MAX_RECORDS, now, &b);
    while (rc == YN_OK) {
        rc = export_batch(l, &b, &c->keys, dir, list, sums, &records, head);
        if (rc != YN_OK || b.last_seq >= head_seq)
            break;
        int64_t first = b.last_seq + 1;
        b = (yn_ledger_batch){.id = b.id + 1,
                              .first_seq = first,
                              .last_seq = head_seq - first + 1 > YN_BATCH_MAX_RECORDS
                                              ? first + YN_BATCH_MAX_RECORDS - 1
                                              : head_seq};
    }
    if (rc != YN_OK) {
        fprintf(stderr, "export: %s (export incomplete: no manifest written)\n", yn_strerror(rc));
        ex = EXIT_FAIL;
        goto out;
    }
    char path[PATH_MAX], head_hex[65], created[32];
    yn_hex_encode(head, sizeof head, head_hex);
    fmt_utc(now, created, sizeof created);
    json_t *man = json_pack(
        "{s:i, s:s, s:s, s:s, s:s, s:s, s:I, s:O, s:I, s:{s:I, s:I, s:I, s:I}, s:I, s:s}", "v", 1,
        "kind", "yinian-export", "terminal", c->cfg.terminal.id, "canteen",
        c->cfg.terminal.canteen_id, "firmware", YN_VERSION, "created_utc", created, "created_utc_s",
        (json_int_t)now, "batches", list, "records", (json_int_t)records, "sums", "price_fen",
        (json_int_t)sums[0], "subsidy_fen", (json_int_t)sums[1], "wallet_fen", (json_int_t)sums[2],
        "cash_fen", (json_int_t)sums[3], "head_seq", (json_int_t)b.last_seq, "head_hash", head_hex);
    snprintf(path, sizeof path, "%s/manifest-%s.json", dir, c->cfg.terminal.id);
    rc = man ? write_json(path, man) : YN_ENOMEM;
    json_decref(man);
    if (rc != YN_OK) {
        fprintf(stderr, "%s: not written: %s\n", path, yn_strerror(rc));
        ex = EXIT_FAIL;
        goto out;
    }
    printf("exported %lld records of terminal %s in %zu batches (%lld fen); manifest %s\n",
           (long long)records, c->cfg.terminal.id, json_array_size(list), (long long)sums[0], path);
    printf("next: yinian-district --db DB import %s at the district; bring the stick back and "
           "run yinian-diag import-ack %s (or let sync acknowledge them)\n",
           dir, dir);
out:
    json_decref(list);
    yn_ledger_close(l);
    yn_keystore_close(&c->keys);
    return ex;
}

static int ack_names_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One acknowledgement file: its MAC and range against the ledger's batch. */
static int import_one_ack(struct ctx *c, yn_ledger *l, const char *path)
{
    FILE *f = fopen(path, "r");
    char text[2048];
    size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
    if (f)
        fclose(f);
    text[n] = '\0';
    json_t *j = json_loads(text, 0, NULL);
    json_int_t batch_id = 0, first = 0, last = 0;
    const char *terminal = "";
    if (!j || json_unpack(j, "{s:s, s:I, s:I, s:I}", "terminal", &terminal, "batch_id", &batch_id,
                          "first_seq", &first, "last_seq", &last) != 0) {
        json_decref(j);
        fprintf(stderr, "%s: refused: not an acknowledgement document\n", path);
        return EXIT_FAIL;
    }
    if (strcmp(terminal, c->cfg.terminal.id) != 0) {
        printf("%s: for terminal %s, not this one (%s): skipped\n", path, terminal,
               c->cfg.terminal.id);
        json_decref(j);
        return 0;
    }
    json_decref(j);
    /* the MAC first, over the range it claims and the ledger's own hash there */
    yn_batch_header h = {.batch_id = batch_id, .first_seq = first, .last_seq = last};
    snprintf(h.terminal, sizeof h.terminal, "%s", c->cfg.terminal.id);
    yn_ledger_record head;
    if (first < 1 || last < first || yn_ledger_record_get(l, last, &head) != YN_OK) {
        fprintf(stderr, "%s: refused: records %lld..%lld are not in this ledger\n", path,
                (long long)first, (long long)last);
        return EXIT_FAIL;
    }
    memcpy(h.head_hash, head.hash, sizeof h.head_hash);
    /* a key-pair terminal's acknowledgements are signed by the district key */
    bool pair = c->cfg.keys.terminal_key_type == YN_KEY_ECDSA_P256;
    uint8_t district_pub[YN_UPDATE_PUBKEY_LEN];
    size_t pub_len = 0;
    if (pair && (yn_keystore_load(&c->keys, YN_KEYID_DISTRICT_PUB, district_pub,
                                  sizeof district_pub, &pub_len) != YN_OK ||
                 pub_len != sizeof district_pub)) {
        fprintf(stderr, "%s: refused: [keys] district_pubkey (32 bytes) is needed to check it\n",
                path);
        return EXIT_FAIL;
    }
    int rc = yn_sync_ack_verify(text, n, &c->keys, pair ? district_pub : NULL, &h);
    if (rc != YN_OK) {
        fprintf(stderr, "%s: refused (%s): %s\n", path, yn_strerror(rc),
                rc != YN_EAUTH ? "its terminal, range, head hash or kind differ from the ledger's"
                : pair         ? "its signature does not verify under the district key"
                               : "its MAC does not verify under this terminal's key");
        return EXIT_FAIL;
    }
    char v[32];
    int64_t acked =
        yn_ledger_meta_get(l, "acked_seq", v, sizeof v) == YN_OK ? strtoll(v, NULL, 10) : 0;
    if (acked >= last) {
        printf("%s: batch %lld (records %lld..%lld) was acknowledged already: nothing to do\n",
               path, (long long)batch_id, (long long)first, (long long)last);
        return 0;
    }
    /* then the ledger's batch: the open one, or the next, made to end where the ack does */
    int64_t now = (int64_t)time(NULL);
    yn_ledger_batch b;
    rc = yn_ledger_batch_next(l, last - acked, now, &b);
    if (rc == YN_OK && (b.id != batch_id || b.first_seq != first || b.last_seq != last)) {
        fprintf(stderr,
                "%s: refused: it answers batch %lld (records %lld..%lld) but the ledger's batch "
                "is %lld (records %lld..%lld): let sync acknowledge them\n",
                path, (long long)batch_id, (long long)first, (long long)last, (long long)b.id,
                (long long)b.first_seq, (long long)b.last_seq);
        return EXIT_FAIL;
    }
    if (rc == YN_OK)
        rc = yn_ledger_batch_ack_usb(l, b.id, now); /* not a sync: the network may be down */
    if (rc != YN_OK) {
        fprintf(stderr, "%s: ledger: batch %lld not marked sent: %s\n", path, (long long)batch_id,
                yn_strerror(rc));
        return EXIT_FAIL;
    }
    printf("%s: batch %lld acknowledged: records %lld..%lld marked sent\n", path, (long long)b.id,
           (long long)b.first_seq, (long long)b.last_seq);
    return 0;
}

static int cmd_import_ack(struct ctx *c, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return EXIT_USAGE;
    }
    char **names = NULL;
    size_t n = 0;
    const struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "ack-", 4) != 0 || len < 10 || strcmp(e->d_name + len - 5, ".json"))
            continue;
        char **nn = realloc(names, (n + 1) * sizeof *names);
        if (!nn)
            break;
        names = nn;
        if (!(names[n] = strdup(e->d_name)))
            break;
        n++;
    }
    closedir(d);
    int ex = 0;
    yn_ledger *l = NULL;
    if (n == 0) {
        fprintf(stderr, "%s: no ack-*.json: import the export at the district first\n", dir);
        ex = EXIT_USAGE;
    } else {
        ex = open_terminal(c, &l);
    }
    qsort(names, n, sizeof *names, ack_names_cmp);
    for (size_t i = 0; i < n && !ex; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (import_one_ack(c, l, path) != 0)
            ex = EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (l) {
        int64_t unsent = 0, oldest = 0;
        if (yn_ledger_unsent(l, (int64_t)time(NULL), &unsent, &oldest) == YN_OK)
            printf("%lld records still waiting for the district\n", (long long)unsent);
    }
    yn_ledger_close(l);
    yn_keystore_close(&c->keys);
    return ex;
}

static void usage(FILE *to)
{
    fprintf(to,
            "usage: yinian-diag [--config FILE] [--root DIR] [--card [--card-timeout S]] [--json]\n"
            "       yinian-diag [--config FILE] export DIR\n"
            "       yinian-diag [--config FILE] import-ack DIR\n"
            "       yinian-diag [--config FILE] [--json] ledger verify\n"
            "  --config FILE    board configuration (default " DEFAULT_CONFIG ")\n"
            "  --root DIR       yinian-flash install root (default " DEFAULT_ROOT ")\n"
            "  --card           also wait for a card and read + verify it (default 20 s)\n"
            "  --json           one JSON document on stdout\n"
            "  --verbose        the firmware's own log lines on stderr\n"
            "  export DIR       unsent records as signed batches + manifest (USB stick)\n"
            "  import-ack DIR   the district's ack-*.json from DIR: mark those records sent\n"
            "  ledger verify    the ledger alone: pages, chain, card rows, records lost,\n"
            "                   restores (read only: yinian-pos may run)\n"
            "exit: checks 0 no FAIL (WARNs allowed), 1 a FAIL; export/import-ack 0 done,\n"
            "      1 failed or refused; 2 bad command line or board.conf\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"root", required_argument, NULL, 'r'},
        {"card", no_argument, NULL, 'C'},         {"card-timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},         {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    static struct ctx c;
    c.config_path = DEFAULT_CONFIG;
    c.root = DEFAULT_ROOT;
    c.keys_rc = -1;
    c.card_timeout_s = 20;
    bool json = false, verbose = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            c.config_path = optarg;
            break;
        case 'r':
            c.root = optarg;
            break;
        case 'C':
            c.card = true;
            break;
        case 't':
            c.card_timeout_s = atoi(optarg);
            if (c.card_timeout_s < 1 || c.card_timeout_s > 600) {
                fprintf(stderr, "--card-timeout: 1..600 seconds\n");
                return EXIT_USAGE;
            }
            break;
        case 'j':
            json = true;
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    const char *cmd = optind < argc ? argv[optind] : NULL;
    bool ledger_verify = cmd && strcmp(cmd, "ledger") == 0 && optind + 2 == argc &&
                         strcmp(argv[optind + 1], "verify") == 0;
    if (cmd && !ledger_verify &&
        !((strcmp(cmd, "export") == 0 || strcmp(cmd, "import-ack") == 0) && optind + 2 == argc)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (ledger_verify)
        cmd = NULL;
    yn_log_init("yinian-diag", verbose ? YN_LOG_DEBUG : YN_LOG_ERR, false);
    /* the checks say what is wrong themselves; the firmware's lines only with --verbose */
    yn_log_quiet(!verbose && !cmd);
    int rc = yn_config_load(c.config_path, yn_hal_backend_ok, &c.cfg, &c.errs);
    c.config_usable = rc == YN_OK;
    if (rc == YN_ECONFIG) {
        c.config_usable = true; /* only key files wrong: the values are all there */
        for (int i = 0; i < c.errs.count && i < YN_CONFIG_MAX_ERRORS; i++)
            if (!strstr(c.errs.msg[i], "[keys]"))
                c.config_usable = false;
        if (c.errs.count > YN_CONFIG_MAX_ERRORS)
            c.config_usable = false;
    }
    if (cmd && strcmp(cmd, "export") == 0)
        return cmd_export(&c, argv[optind + 1]);
    if (cmd)
        return cmd_import_ack(&c, argv[optind + 1]);
    return run_checks(&c, json, ledger_verify ? "ledger" : NULL);
}
