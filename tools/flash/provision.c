/* provision.c — provision (board.conf from the template and the keys, or
 * the keys into a PKCS#11 token) and import-key. */
#include <errno.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flash.h"
#include "card.h"
#include "client.h"
#include "config.h"
#include "fileio.h"
#include "hal.h"
#include "hex.h"
#include "sig.h"

struct setting {
    char section[32], key[48], value[512];
    bool done;
};

static int add_setting(struct setting *s, int *n, const char *section, const char *key,
                       const char *value)
{
    if (*n >= MAX_SETS + 32)
        return yn_fl_fail(EXIT_USAGE, "too many settings");
    if (strchr(value, '\n') || strchr(value, '\r') || strlen(value) >= sizeof s->value ||
        strlen(section) >= sizeof s->section || strlen(key) >= sizeof s->key)
        return yn_fl_fail(EXIT_USAGE, "[%s] %s: the value must be one line under %zu bytes",
                          section, key, sizeof s->value);
    for (int i = 0; i < *n; i++)
        if (!strcmp(s[i].section, section) && !strcmp(s[i].key, key)) {
            snprintf(s[i].value, sizeof s[i].value, "%s", value); /* later wins */
            return 0;
        }
    snprintf(s[*n].section, sizeof s->section, "%s", section);
    snprintf(s[*n].key, sizeof s->key, "%s", key);
    snprintf(s[*n].value, sizeof s->value, "%s", value);
    s[*n].done = false;
    (*n)++;
    return 0;
}

static void buf_add(char **buf, size_t *len, size_t *cap, const char *text, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = (*cap + n + 1) * 2;
        char *p = realloc(*buf, ncap);
        if (!p)
            return;
        *buf = p;
        *cap = ncap;
    }
    memcpy(*buf + *len, text, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static void append_pending(char **out, size_t *len, size_t *cap, struct setting *s, int n,
                           const char *section)
{
    char line[700];
    for (int i = 0; i < n; i++)
        if (!s[i].done && !strcmp(s[i].section, section)) {
            int k = snprintf(line, sizeof line, "%s = %s\n", s[i].key, s[i].value);
            buf_add(out, len, cap, line, (size_t)k);
            s[i].done = true;
        }
}

/* The template with each setting's value put in place of its key's line
 * (comments and order kept); keys the template lacks are added at the end of
 * their section, sections it lacks at the end. */
static char *apply_settings(const char *tmpl, struct setting *s, int n, const char *header)
{
    char *out = NULL, section[64] = "";
    size_t len = 0, cap = 0;
    buf_add(&out, &len, &cap, header, strlen(header));
    for (const char *p = tmpl; *p;) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(ll < sizeof line ? ll : sizeof line - 1), p);
        const char *t = line;
        while (*t == ' ' || *t == '\t')
            t++;
        bool replaced = false;
        if (*t == '[') {
            append_pending(&out, &len, &cap, s, n, section);
            const char *e = strchr(t, ']');
            snprintf(section, sizeof section, "%.*s", e ? (int)(e - t - 1) : 0, t + 1);
        } else if (*t && *t != ';' && *t != '#' && strchr(t, '=')) {
            char key[64];
            const char *eq = strchr(t, '=');
            int kl = (int)(eq - t);
            while (kl > 0 && (t[kl - 1] == ' ' || t[kl - 1] == '\t'))
                kl--;
            snprintf(key, sizeof key, "%.*s", kl, t);
            for (int i = 0; i < n; i++)
                if (!strcmp(s[i].section, section) && !strcmp(s[i].key, key)) {
                    char nline[700];
                    int k = snprintf(nline, sizeof nline, "%s = %s\n", key, s[i].value);
                    buf_add(&out, &len, &cap, nline, (size_t)k);
                    s[i].done = replaced = true;
                }
        }
        if (!replaced) {
            buf_add(&out, &len, &cap, p, ll);
            buf_add(&out, &len, &cap, "\n", 1);
        }
        p += ll + (nl ? 1 : 0);
    }
    append_pending(&out, &len, &cap, s, n, section);
    for (int i = 0; i < n; i++)
        if (!s[i].done) {
            char line[100];
            int k = snprintf(line, sizeof line, "\n[%s]\n", s[i].section);
            buf_add(&out, &len, &cap, line, (size_t)k);
            append_pending(&out, &len, &cap, s, n, s[i].section);
        }
    return out;
}

/* Check a key file: loads as hex, the right length (0 = an issuer key ring,
 * checked as one). Secret files must be 0600 and ours, as the daemon wants. */
static int check_key(const char *src, bool secret, const char *what, size_t want_len)
{
    uint8_t buf[YN_KEY_MAX];
    size_t n;
    char err[160] = "";
    int rc = yn_key_file_load(src, secret, what, buf, sizeof buf, &n);
    if (rc == YN_OK && want_len && n != want_len) {
        snprintf(err, sizeof err, "%zu bytes, expected %zu", n, want_len);
        rc = YN_EINVAL;
    } else if (rc == YN_OK && !want_len) { /* a key ring: "VV <hex>" lines */
        static yn_card_keyring ring;
        rc = yn_card_keyring_from_bytes(buf, n, &ring, err, sizeof err);
    }
    explicit_bzero(buf, sizeof buf);
    if (rc != YN_OK)
        return yn_fl_fail(EXIT_USAGE, "%s %s: %s", what, src, err[0] ? err : yn_strerror(rc));
    return 0;
}

/* One file provision puts under ROOT/etc, and the board.conf key naming it. */
struct prov_file {
    const char *src;     /* given by the technician, or NULL */
    const char *rel;     /* under ROOT/etc */
    const char *what;    /* for messages */
    const char *section; /* board.conf key naming it, or NULL */
    const char *key;
    unsigned mode;          /* of the copy */
    bool secret;            /* a secret key: 0600 and ours at the source too */
    size_t key_len;         /* key bytes; 0 = issuer ring; SIZE_MAX = not a key */
    bool required;          /* must be given unless ROOT/etc has it already */
    char src_abs[PATH_MAX]; /* where the check reads it from */
    bool into_token;        /* a secret the token takes: checked, never copied or named */
};

/* Inputs checked before anything is written: keys, the CA, the policy. */
static int provision_inputs(const struct yn_fl_opts *o, struct prov_file *f, int n)
{
    char path[PATH_MAX], rel[64];
    for (int i = 0; i < n; i++) {
        snprintf(rel, sizeof rel, "etc/%s", f[i].rel);
        if (yn_fl_root_path(o, path, sizeof path, rel) != YN_OK)
            return EXIT_USAGE;
        f[i].src_abs[0] = '\0';
        if (!f[i].src) {
            if (yn_fl_exists(path))
                snprintf(f[i].src_abs, sizeof f[i].src_abs, "%s", path);
            else if (f[i].required)
                return yn_fl_fail(EXIT_USAGE, "%s is needed (this board has none yet)", f[i].what);
            continue;
        }
        if (!realpath(f[i].src, f[i].src_abs))
            return yn_fl_fail(EXIT_USAGE, "%s %s: %s", f[i].what, f[i].src, strerror(errno));
        int rc = 0;
        if (f[i].key_len != SIZE_MAX) {
            rc = check_key(f[i].src_abs, f[i].secret, f[i].what, f[i].key_len);
        } else if (!strcmp(f[i].rel, "keys/token.pin")) {
            char pin[256];
            size_t pin_len;
            if (yn_secret_file_text(f[i].src_abs, "token PIN file", pin, sizeof pin, &pin_len) !=
                    YN_OK ||
                pin_len == 0)
                rc = yn_fl_fail(EXIT_USAGE,
                                "--pin-file %s: the token's PIN, in a file of ours with mode "
                                "0600",
                                f[i].src);
            explicit_bzero(pin, sizeof pin);
        } else if (!strcmp(f[i].rel, "ca.pem")) {
            FILE *fp = fopen(f[i].src_abs, "r");
            X509 *x = fp ? PEM_read_X509(fp, NULL, NULL, NULL) : NULL;
            if (fp)
                fclose(fp);
            if (!x)
                rc = yn_fl_fail(EXIT_USAGE, "--ca %s is not a PEM certificate", f[i].src);
            X509_free(x);
        } else {
            yn_policy *p = NULL;
            char err[256];
            if (yn_policy_load_file(f[i].src_abs, &p, err, sizeof err) != YN_OK)
                rc = yn_fl_fail(EXIT_USAGE, "--policy %s: %s", f[i].src, err);
            yn_policy_free(p);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* board.conf text from the template and the settings; in check mode every
 * provisioned file is named where it is now (absolute), else where it goes. */
static char *provision_text(const struct yn_fl_opts *o, const char *tmpl, const char *tmpl_path,
                            const struct prov_file *f, int nf, bool check)
{
    static struct setting sets[MAX_SETS + 32];
    char ledger[PATH_MAX + 16], header[PATH_MAX + 160], stamp[32];
    int n = 0, rc = 0;
    for (int i = 0; i < nf && !rc; i++)
        if (f[i].section && f[i].src_abs[0] && !f[i].into_token)
            rc = add_setting(sets, &n, f[i].section, f[i].key, check ? f[i].src_abs : f[i].rel);
    char module[PATH_MAX];
    if (!rc && o->pkcs11_module && !realpath(o->pkcs11_module, module))
        rc = yn_fl_fail(EXIT_USAGE, "--pkcs11-module %s: %s", o->pkcs11_module, strerror(errno));
    if (!rc && o->pkcs11_module) { /* the secret keys are in the token: no key file is named */
        const char *token[][2] = {{"backend", "pkcs11"},
                                  {"pkcs11_module", module},
                                  {"token_label", o->token_label},
                                  {"terminal_key", ""},
                                  {"card_master_key", ""}};
        for (size_t i = 0; i < sizeof token / sizeof *token && !rc; i++)
            rc = add_setting(sets, &n, "keys", token[i][0], token[i][1]);
    }
    if (!rc && o->key_pair)
        rc = add_setting(sets, &n, "keys", "terminal_key_type", "ecdsa-p256");
    if (!rc && o->server_url)
        rc = add_setting(sets, &n, "sync", "url", o->server_url);
    snprintf(ledger, sizeof ledger, "%s/var/ledger.db", o->root);
    const char *ident[][3] = {
        {"terminal", "id", o->terminal_id},
        {"terminal", "canteen_id", o->canteen},
        {"terminal", "canteen_name", o->canteen_name ? o->canteen_name : ""},
        {"terminal", "district", o->district},
        {"terminal", "street", o->street},
        {"terminal", "mode", o->mode},
        {"ledger", "path", ledger},
    };
    for (size_t i = 0; i < sizeof ident / sizeof *ident && !rc; i++)
        if (ident[i][2])
            rc = add_setting(sets, &n, ident[i][0], ident[i][1], ident[i][2]);
    /* the technician's own --set SECTION.KEY=VALUE last: they win */
    for (int i = 0; i < o->n_sets && !rc; i++) {
        const char *dot = strchr(o->sets[i], '.'), *eq = strchr(o->sets[i], '=');
        char section[32], key[48];
        if (!dot || !eq || dot > eq || dot - o->sets[i] >= (int)sizeof section ||
            eq - dot - 1 >= (int)sizeof key || dot == o->sets[i] || eq == dot + 1) {
            rc = yn_fl_fail(EXIT_USAGE, "--set %s: expected SECTION.KEY=VALUE", o->sets[i]);
            break;
        }
        snprintf(section, sizeof section, "%.*s", (int)(dot - o->sets[i]), o->sets[i]);
        snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
        rc = add_setting(sets, &n, section, key, eq + 1);
    }
    if (rc)
        return NULL;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%SZ", &tm);
    snprintf(header, sizeof header,
             "; provisioned by yinian-flash on %s for terminal %s (template %s)\n", stamp,
             o->terminal_id, tmpl_path);
    char *text = apply_settings(tmpl, sets, n, header);
    if (!text)
        yn_fl_fail(EXIT_FAIL, "out of memory");
    return text;
}

/* Does text load as board.conf (written next to where it will live)? The
 * configuration it loads to, if cfg is given. */
static int provision_check(const char *conf, const char *text, const yn_config **loaded)
{
    static yn_config cfg;
    static yn_config_errors errs;
    if (loaded)
        *loaded = &cfg;
    char check[PATH_MAX + 16];
    snprintf(check, sizeof check, "%s.check", conf);
    if (yn_file_write_atomic(check, text, strlen(text), 0644) != YN_OK)
        return yn_fl_fail(EXIT_FAIL, "cannot write %s", check);
    int rc = yn_config_load(check, yn_hal_backend_ok, &cfg, &errs);
    unlink(check);
    if (rc == YN_OK)
        return 0;
    for (int i = 0; i < errs.count && i < YN_CONFIG_MAX_ERRORS; i++)
        fprintf(stderr, "%s\n", errs.msg[i]);
    return yn_fl_fail(EXIT_USAGE,
                      "the board.conf this would write does not load (above, checked as "
                      "%s): fix the options; nothing was changed",
                      check);
}

static int check_args(const struct yn_fl_opts *o)
{
    if (!o->terminal_id || !o->canteen || !o->district || !o->street)
        return yn_fl_fail(EXIT_USAGE, "provision needs --terminal-id, --canteen, --district and "
                                      "--street");
    if (!!o->server_url != !!o->ca)
        return yn_fl_fail(EXIT_USAGE, "--server-url and --ca go together");
    if (o->enrol_token && !o->server_url)
        return yn_fl_fail(EXIT_USAGE, "--enrol-token needs --server-url and --ca");
    if (o->server_url && strncmp(o->server_url, "https://", 8) != 0)
        return yn_fl_fail(EXIT_USAGE, "--server-url must be https://HOST[:PORT]");
    if (!!o->pkcs11_module != !!o->token_label || !!o->pkcs11_module != !!o->pin_file)
        return yn_fl_fail(EXIT_USAGE, "--pkcs11-module, --token-label and --pin-file go together");
    if (o->key_pair && o->terminal_key)
        return yn_fl_fail(EXIT_USAGE, "--key-pair makes the terminal's key on the board: no "
                                      "--terminal-key");
    return 0;
}

/* One secret key from a hex file (0600, ours) into the keystore. */
static int import_key_file(yn_keystore *ks, enum yn_key_id id, const char *path, bool force)
{
    uint8_t key[YN_KEY_MAX];
    size_t n = 0;
    const char *what = id == YN_KEYID_CARD_MASTER ? "card master key" : "terminal key";
    int rc = yn_key_file_load(path, true, what, key, sizeof key, &n);
    if (rc == YN_OK)
        rc = yn_keystore_store(ks, id, key, n, force);
    explicit_bzero(key, sizeof key);
    if (rc == YN_EDUPLICATE)
        return yn_fl_fail(EXIT_FAIL,
                          "%s holds another %s: not replaced (--force replaces it; the old "
                          "one is destroyed)",
                          ks->where, what);
    if (rc != YN_OK)
        return yn_fl_fail(EXIT_FAIL, "%s %s not stored in %s: %s", what, path, ks->where,
                          yn_strerror(rc));
    return 0;
}

/* --key-pair: the public half of the terminal's pair, for the summary. */
static uint8_t pair_pub[YN_KEYSTORE_PUB_LEN];

/* The terminal's key pair, made inside the keystore (kept when it has a
 * working one, unless replace); its public half into pair_pub. */
static int make_pair(yn_keystore *ks, bool replace)
{
    bool made = false;
    int rc = yn_keystore_generate(ks, replace, pair_pub, &made);
    if (rc != YN_OK)
        return yn_fl_fail(EXIT_FAIL, "no terminal key pair in %s: %s", ks->where, yn_strerror(rc));
    yn_fl_durable_step(made ? "provision: terminal key pair made" : "provision: key pair kept");
    return 0;
}

/* backend = file with --key-pair: the pair as a PEM file (0600) where
 * board.conf will name it, made by a keystore on that file alone. */
static int make_file_pair(const char *path, bool replace)
{
    static yn_keys_conf kc;
    memset(&kc, 0, sizeof kc);
    snprintf(kc.source, sizeof kc.source, "yinian-flash provision");
    snprintf(kc.backend, sizeof kc.backend, "file");
    snprintf(kc.terminal_key, sizeof kc.terminal_key, "%s", path);
    kc.terminal_key_type = YN_KEY_ECDSA_P256;
    yn_keystore ks;
    if (yn_keystore_open(&ks, &yn_keystore_file_ops, &kc) != YN_OK)
        return yn_fl_fail(EXIT_FAIL, "%s", ks.error);
    int rc = make_pair(&ks, replace);
    yn_keystore_close(&ks);
    return rc;
}

/* backend = pkcs11: the master key (and a terminal key, if given) into the
 * token, as non-extractable objects; no file of them goes onto the board. */
static int provision_token(const struct yn_fl_opts *o, const yn_config *cfg,
                           const struct prov_file *f)
{
    yn_keystore ks;
    if (yn_keystore_open(&ks, NULL, &cfg->keys) != YN_OK)
        return yn_fl_fail(EXIT_FAIL, "%s", ks.error);
    int rc = 0;
    yn_keystore_key_info info;
    if (f[0].src)
        rc = import_key_file(&ks, YN_KEYID_CARD_MASTER, f[0].src_abs, o->force);
    else if (yn_keystore_inspect(&ks, YN_KEYID_CARD_MASTER, &info) != YN_OK || !info.works)
        rc = yn_fl_fail(EXIT_USAGE, "--card-master-key is needed: %s holds none yet", ks.where);
    if (!rc && f[2].src)
        rc = import_key_file(&ks, YN_KEYID_TERMINAL, f[2].src_abs, o->force);
    if (!rc && o->key_pair)
        rc = make_pair(&ks, o->force);
    if (!rc)
        yn_fl_durable_step("provision: keys in the token");
    yn_keystore_close(&ks);
    return rc;
}

/* A new terminal key (32 random bytes, hex, 0600) when the board has none. */
static int make_terminal_key(const char *path)
{
    uint8_t key[32];
    char text[2 * sizeof key + 2];
    if (yn_fl_exists(path))
        return 0;
    if (RAND_priv_bytes(key, sizeof key) != 1)
        return yn_fl_fail(EXIT_FAIL, "no random bytes for the terminal key");
    yn_hex_encode(key, sizeof key, text);
    explicit_bzero(key, sizeof key);
    strcat(text, "\n");
    int rc = yn_file_write_atomic(path, text, strlen(text), 0600);
    explicit_bzero(text, sizeof text);
    if (rc != YN_OK)
        return yn_fl_fail(EXIT_FAIL, "cannot write %s: %s", path, yn_strerror(rc));
    yn_fl_durable_step("provision: terminal key made");
    return 0;
}

/* Everything is checked first (the key files, the CA, the policy, and the
 * board.conf that would result, loaded as the daemon loads it); then the
 * files are copied in, each atomically, and board.conf is replaced last. */
int yn_fl_cmd_provision(const struct yn_fl_opts *o, int argc, char **argv)
{
    (void)argv;
    char conf[PATH_MAX], tmpl_path[PATH_MAX], dir[PATH_MAX], path[PATH_MAX], rel[64];
    char *tmpl = NULL, *text = NULL;
    size_t tlen;
    int lock = -1, rc;
    if (argc != 0) {
        yn_fl_usage(stderr);
        return EXIT_USAGE;
    }
    if ((rc = check_args(o)))
        return rc;
    if (yn_fl_root_path(o, conf, sizeof conf, "etc/board.conf") != YN_OK)
        return EXIT_USAGE;
    if (o->template)
        snprintf(tmpl_path, sizeof tmpl_path, "%s", o->template);
    else if (yn_fl_root_path(o, tmpl_path, sizeof tmpl_path, "current/share/board.conf"))
        return EXIT_USAGE;
    if (yn_file_read_all(tmpl_path, 1 << 20, &tmpl, &tlen) != YN_OK)
        return yn_fl_fail(
            EXIT_USAGE,
            "cannot read the board.conf template %s: install a firmware bundle first, "
            "or give --template",
            tmpl_path);
    bool token = o->pkcs11_module != NULL;
    /* the order of the first three is provision_token's */
    struct prov_file f[] = {
        {o->card_master_key, "keys/card-master.key", "--card-master-key", "keys", "card_master_key",
         0600, true, YN_CARD_MASTER_LEN, !token, "", token},
        {o->issuer_pub, "keys/issuer.pub", "--issuer-pub", "keys", "issuer_pubkey", 0600, false, 0,
         true, "", false},
        {o->terminal_key, "keys/terminal.key", "--terminal-key", "keys", "terminal_key", 0600, true,
         32, !token, "", token},
        {o->pin_file, "keys/token.pin", "--pin-file", token ? "keys" : NULL, "pin_file", 0600, true,
         SIZE_MAX, token, "", false},
        {o->district_pub, "keys/district.pub", "--district-pub", "keys", "district_pubkey", 0600,
         false, 32, false, "", false},
        {o->vendor_pub, "keys/vendor.pub", "--vendor-pub", NULL, NULL, 0600, false,
         YN_BUNDLE_KEY_LEN, false, "", false},
        {o->ca, "ca.pem", "--ca", "sync", "ca_file", 0644, false, SIZE_MAX, false, "", false},
        {o->policy, "policy.json", "--policy", "policy", "file", 0644, false, SIZE_MAX, true, "",
         false},
    };
    const int nf = (int)(sizeof f / sizeof *f);

    if ((rc = yn_fl_lock_root(o, &lock)) != YN_OK) {
        free(tmpl);
        return EXIT_FAIL;
    }
    if (yn_fl_exists(conf) && !o->force)
        rc = yn_fl_fail(EXIT_FAIL,
                        "%s exists: this board is provisioned already (--force to provision it "
                        "again; the ledger and an existing terminal key are kept)",
                        conf);
    if (!rc &&
        (yn_fl_root_path(o, dir, sizeof dir, "etc/keys") || yn_fl_mkdir_p(dir, 0700) != YN_OK ||
         yn_fl_root_path(o, path, sizeof path, "var") || yn_fl_mkdir_p(path, 0750) != YN_OK ||
         yn_fl_root_path(o, path, sizeof path, "etc/keys/terminal.key")))
        rc = EXIT_FAIL;
    /* the one file made here rather than brought: harmless to make early */
    if (!rc && !o->terminal_key && !token && o->key_pair)
        rc = make_file_pair(path, o->force);
    else if (!rc && !o->terminal_key && !token)
        rc = make_terminal_key(path);
    if (!rc)
        rc = provision_inputs(o, f, nf);
    if (!rc && !(text = provision_text(o, tmpl, tmpl_path, f, nf, true)))
        rc = EXIT_USAGE;
    const yn_config *checked = NULL;
    if (!rc)
        rc = provision_check(conf, text, &checked);
    free(text);
    text = NULL;
    /* all checked: the token takes its keys, then files are copied in, then
     * board.conf (checked once more where it lives) */
    if (!rc && token)
        rc = provision_token(o, checked, f);
    for (int i = 0; i < nf && !rc; i++) {
        if (!f[i].src || f[i].into_token)
            continue;
        snprintf(rel, sizeof rel, "etc/%s", f[i].rel);
        if (yn_fl_root_path(o, path, sizeof path, rel) ||
            yn_fl_copy_file_atomic(f[i].src_abs, path, f[i].mode))
            rc = EXIT_FAIL;
        else
            yn_fl_durable_step("provision: file copied in");
    }
    if (!rc && !(text = provision_text(o, tmpl, tmpl_path, f, nf, false)))
        rc = EXIT_FAIL;
    if (!rc)
        rc = provision_check(conf, text, NULL);
    if (!rc && yn_file_write_atomic(conf, text, strlen(text), 0644) != YN_OK)
        rc = yn_fl_fail(EXIT_FAIL, "cannot write %s", conf);
    if (!rc)
        yn_fl_durable_step("provision: board.conf written");
    if (!rc && yn_fl_ensure_boot_helper(o, NULL) != YN_OK)
        rc = EXIT_FAIL;
    char pub_hex[2 * YN_KEYSTORE_PUB_LEN + 2], fp[YN_SIG_FINGERPRINT_LEN + 1] = "";
    if (!rc && o->key_pair) { /* the public half, for the district's enrolment */
        yn_hex_encode(pair_pub, sizeof pair_pub, pub_hex);
        yn_sig_fingerprint(pair_pub, fp);
        strcat(pub_hex, "\n");
        if (yn_fl_root_path(o, path, sizeof path, "etc/keys/terminal.pub") ||
            yn_file_write_atomic(path, pub_hex, strlen(pub_hex), 0644) != YN_OK)
            rc = yn_fl_fail(EXIT_FAIL, "cannot write the terminal's public key to %s", path);
        pub_hex[2 * YN_KEYSTORE_PUB_LEN] = '\0';
    }
    free(text);
    free(tmpl);
    close(lock);
    if (rc)
        return rc;
    bool enrolled = false;
    if (o->enrol_token) {
        /* the district issues this terminal's key against the one-time token; it goes
         * into the keystore the new board.conf names (a file, or the token) */
        char ca[PATH_MAX], id[YN_ID_MAX];
        static yn_config cfg;
        static yn_config_errors errs;
        yn_keystore ks;
        if (yn_fl_root_path(o, ca, sizeof ca, "etc/ca.pem"))
            return EXIT_USAGE;
        if (yn_config_load(conf, yn_hal_backend_ok, &cfg, &errs) != YN_OK ||
            yn_keystore_open(&ks, NULL, &cfg.keys))
            return yn_fl_fail(EXIT_FAIL,
                              "provisioned, but %s or its keystore does not open for the "
                              "enrolment (yinian-diag says why)",
                              conf);
        int er = yn_sync_enrol(o->server_url, ca, o->enrol_token, &ks, id, sizeof id);
        yn_keystore_close(&ks);
        if (er != YN_OK)
            return yn_fl_fail(
                EXIT_FAIL,
                "provisioned, but enrolment with %s failed: %s (run yinian-pos --config %s "
                "--enrol TOKEN once the network is there)",
                o->server_url, yn_strerror(er), conf);
        if (strcmp(id, o->terminal_id) != 0)
            return yn_fl_fail(
                EXIT_FAIL,
                "the district enrolled this board as terminal %s, not %s: provision again "
                "with --terminal-id %s --force",
                id, o->terminal_id, id);
        yn_fl_durable_step("provision: enrolled");
        enrolled = true;
    }
    if (yn_fl.json)
        yn_fl_emit(json_pack("{s:s, s:b, s:s, s:s, s:s, s:b, s:s, s:s}", "event", "result", "ok", 1,
                             "command", "provision", "terminal", o->terminal_id, "board_conf", conf,
                             "enrolled", enrolled, "public_key", o->key_pair ? pub_hex : "",
                             "public_key_fingerprint", fp));
    else {
        printf("provisioned terminal %s (canteen %s, district %s, street %s): %s, keys in "
               "%s\n",
               o->terminal_id, o->canteen, o->district, o->street, conf,
               token ? "the token (non-extractable)" : "etc/keys (0600)");
        if (token && o->card_master_key)
            printf("the token holds the card master key now: remove %s from this board (keep it "
                   "only at the issuing desk)\n",
                   o->card_master_key);
        if (o->key_pair)
            printf("terminal key pair (ECDSA P-256) made in %s; public key (also in "
                   "etc/keys/terminal.pub), fingerprint %s:\n  %s\n",
                   token ? "the token, never outside it" : "etc/keys/terminal.key (0600)", fp,
                   pub_hex);
        if (enrolled)
            printf("enrolled with %s: %s\n", o->server_url,
                   o->key_pair ? "the district holds the public key"
                               : "the terminal key came from the district");
        else if (o->server_url)
            printf("enrol with the district (one-time token from yinian-district enrol-token):\n"
                   "  %s/current/bin/yinian-pos --config %s --enrol TOKEN\n",
                   o->root, conf);
        else
            printf("no district server given: the terminal works offline\n");
    }
    return 0;
}

/* import-key: one secret key into the keystore board.conf names — on a board
 * with a token, how the master key gets there without provisioning again. */
int yn_fl_cmd_import_key(const struct yn_fl_opts *o, int argc, char **argv)
{
    static yn_config cfg;
    static yn_config_errors errs;
    char conf[PATH_MAX];
    if (argc != 2 || (strcmp(argv[0], "card-master") != 0 && strcmp(argv[0], "terminal") != 0)) {
        yn_fl_usage(stderr);
        return EXIT_USAGE;
    }
    enum yn_key_id id = !strcmp(argv[0], "card-master") ? YN_KEYID_CARD_MASTER : YN_KEYID_TERMINAL;
    if (o->config)
        snprintf(conf, sizeof conf, "%s", o->config);
    else if (yn_fl_root_path(o, conf, sizeof conf, "etc/board.conf"))
        return EXIT_USAGE;
    if (yn_config_load(conf, yn_hal_backend_ok, &cfg, &errs) != YN_OK) {
        for (int i = 0; i < errs.count && i < YN_CONFIG_MAX_ERRORS; i++)
            fprintf(stderr, "%s\n", errs.msg[i]);
        return yn_fl_fail(EXIT_USAGE, "%s does not load: fix it first", conf);
    }
    yn_keystore ks;
    if (yn_keystore_open(&ks, NULL, &cfg.keys) != YN_OK)
        return yn_fl_fail(EXIT_FAIL, "%s", ks.error);
    int rc = import_key_file(&ks, id, argv[1], o->force);
    if (!rc)
        yn_fl_durable_step("import-key: stored");
    if (!rc && yn_fl.json)
        yn_fl_emit(json_pack("{s:s, s:b, s:s, s:s, s:s}", "event", "result", "ok", 1, "command",
                             "import-key", "key", argv[0], "keystore", ks.where));
    else if (!rc)
        printf("%s key stored in %s%s\n", argv[0], ks.where,
               strcmp(cfg.keys.backend, "pkcs11") == 0
                   ? " (non-extractable): remove the key file from this board"
                   : "");
    yn_keystore_close(&ks);
    return rc;
}
