/* yinian-district — the reference district server (sync/PROTOCOL.md) and its
 * admin command line. This file reads the command line; the work is in
 * tools/district/: http (the HTTPS front), ingest, restore, updates,
 * terminals (enrolment and keys), admin, report, and db with its two storage
 * backends (an SQLite file, or PostgreSQL). Design, deployment and figures:
 * tools/DISTRICT.md.
 *
 * Exit codes: 0 done; 1 runtime failure; 2 bad command line or input. */
#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "card.h"
#include "db.h"
#include "fileio.h"
#include "http.h"
#include "keystore.h"
#include "report.h"
#include "rules.h"

#define PEM_MAX (1u << 20)

static void usage(FILE *to)
{
    fputs("usage: yinian-district COMMAND ...\n"
          "  keygen PRIVATE_OUT PUBLIC_OUT        district Ed25519 signing key (private 0600)\n"
          "  --db DB serve --cert PEM --key PEM --district-key FILE [--listen 127.0.0.1]\n"
          "      [--port 8443] [--threads 16] [--max-connections 10000] [--per-ip 256]\n"
          "      [--timeout-s 30] [--busy-ms 2000] [--body-budget-mib 512]\n"
          "      [--faults 500,reset,slow,truncate,corrupt,none] [--slow-ms N]\n"
          "  --db DB enrol-token TERMINAL CANTEEN   one-time enrolment token (printed)\n"
          "  --db DB enrol-tokens CSV               terminal,canteen lines -> terminal,token\n"
          "  --db DB import-cards CSV               card_no,birth_ymd,flags,district,street,"
          "expiry_ymd[,ident]\n"
          "  --db DB import DIR [--district-key FILE]  batch files of a USB export (yinian-diag\n"
          "                                         export); writes ack-*.json into DIR (a key-\n"
          "                                         pair terminal's are signed: --district-key)\n"
          "  --db DB lost CARD_NO | found CARD_NO   report a card lost / found\n"
          "  --db DB lost-ident ID | found-ident ID an identity-only card (A:04A1B2C3D4E5F6)\n"
          "  --db DB publish-policy FILE.json\n"
          "  --db DB allocate ID CARD_NO SOURCE AMOUNT_FEN\n"
          "  --db DB report canteen|terminal|category|period|day|layer|\n"
          "             identified|shared-ident|stamp-missing   CSV on stdout\n"
          "  --db DB check | fix                    entries terminals would refuse: list,"
          " remove\n"
          "  --db DB stats                          records held and bytes on disk\n"
          "DB: an SQLite file, or PostgreSQL: postgresql://… or a conninfo (host=… dbname=…)\n"
          "exit: 0 done, 1 runtime failure, 2 bad command line or input\n",
          to);
}

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int cmd_keygen(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "keygen PRIVATE_OUT PUBLIC_OUT\n");
        return YN_EXIT_USAGE;
    }
    uint8_t priv[32], pub[32];
    char hex[80];
    if (RAND_bytes(priv, 32) != 1 || yn_card_public_key(priv, pub) != YN_OK)
        return YN_EXIT_RUNTIME;
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", priv[i]);
    strcat(hex, "\n");
    int rc = yn_file_write_atomic(argv[0], hex, strlen(hex), 0600);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", pub[i]);
    strcat(hex, "\n");
    if (rc == YN_OK)
        rc = yn_file_write_atomic(argv[1], hex, strlen(hex), 0644);
    OPENSSL_cleanse(priv, sizeof priv);
    OPENSSL_cleanse(hex, sizeof hex);
    return rc == YN_OK ? YN_EXIT_OK : YN_EXIT_RUNTIME;
}

static int parse_faults(yn_http_opts *o, const char *spec)
{
    char *copy = strdup(spec), *save = NULL;
    if (!copy)
        return YN_EXIT_RUNTIME;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        static const struct {
            const char *name;
            enum yn_http_fault f;
        } names[] = {{"500", YN_FAULT_503},         {"reset", YN_FAULT_RESET},
                     {"slow", YN_FAULT_SLOW},       {"truncate", YN_FAULT_TRUNCATE},
                     {"corrupt", YN_FAULT_CORRUPT}, {"none", YN_FAULT_NONE}};
        size_t i = 0;
        while (i < sizeof names / sizeof names[0] && strcmp(t, names[i].name) != 0)
            i++;
        if (i == sizeof names / sizeof names[0] || o->n_faults == YN_HTTP_FAULTS_MAX) {
            fprintf(stderr,
                    "--faults: '%s': expected up to %d of 500, reset, slow, truncate,"
                    " corrupt, none\n",
                    t, YN_HTTP_FAULTS_MAX);
            free(copy);
            return YN_EXIT_USAGE;
        }
        o->faults[o->n_faults++] = names[i].f;
    }
    free(copy);
    return YN_EXIT_OK;
}

/* A numeric option in lo..hi; false (with the message) otherwise. */
static bool number(const char *opt, const char *text, int64_t lo, int64_t hi, unsigned *out)
{
    int64_t v;
    if (!yn_rules_parse_int(text, lo, hi, &v)) {
        fprintf(stderr, "serve: %s %s: expected a whole number %lld..%lld\n", opt, text,
                (long long)lo, (long long)hi);
        return false;
    }
    *out = (unsigned)v;
    return true;
}

static int cmd_serve(const char *where, int argc, char **argv)
{
    static yn_http_opts o = {.threads = 16,
                             .max_connections = 10000,
                             .per_ip = 256,
                             .timeout_s = 30,
                             .slow_ms = 3000,
                             .db = {.busy_ms = 2000}};
    const char *cert = NULL, *keyf = NULL, *dkey = NULL, *listen_addr = "127.0.0.1";
    unsigned port = 8443, busy = 2000, budget_mib = 512, slow = 3000;
    bool ok = true;
    o.db_where = where;
    for (int i = 0; ok && i < argc; i += 2) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!val) {
            fprintf(stderr, "serve: %s needs a value\n", opt);
            ok = false;
        } else if (!strcmp(opt, "--cert")) {
            cert = val;
        } else if (!strcmp(opt, "--key")) {
            keyf = val;
        } else if (!strcmp(opt, "--district-key")) {
            dkey = val;
        } else if (!strcmp(opt, "--listen")) {
            listen_addr = val;
        } else if (!strcmp(opt, "--port")) {
            ok = number(opt, val, 1, 65535, &port);
        } else if (!strcmp(opt, "--threads")) {
            ok = number(opt, val, 1, 256, &o.threads);
        } else if (!strcmp(opt, "--max-connections")) {
            ok = number(opt, val, 1, 1000000, &o.max_connections);
        } else if (!strcmp(opt, "--per-ip")) {
            ok = number(opt, val, 1, 1000000, &o.per_ip);
        } else if (!strcmp(opt, "--timeout-s")) {
            ok = number(opt, val, 1, 3600, &o.timeout_s);
        } else if (!strcmp(opt, "--busy-ms")) {
            ok = number(opt, val, 1, 600000, &busy);
        } else if (!strcmp(opt, "--body-budget-mib")) {
            ok = number(opt, val, 8, 65536, &budget_mib);
        } else if (!strcmp(opt, "--slow-ms")) {
            ok = number(opt, val, 0, 600000, &slow);
        } else if (!strcmp(opt, "--faults")) {
            ok = parse_faults(&o, val) == YN_EXIT_OK;
        } else {
            fprintf(stderr, "serve: unknown option %s\n", opt);
            ok = false;
        }
    }
    if (ok && (!cert || !keyf || !dkey)) {
        fprintf(stderr, "serve needs --cert, --key and --district-key\n");
        ok = false;
    }
    o.listen = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (ok && inet_pton(AF_INET, listen_addr, &o.listen.sin_addr) != 1) {
        fprintf(stderr, "--listen: not an IPv4 address: %s\n", listen_addr);
        ok = false;
    }
    size_t klen = 0;
    if (ok && (yn_key_file_load(dkey, true, "district signing key", o.district_priv,
                                sizeof o.district_priv, &klen) != YN_OK ||
               klen != 32)) {
        fprintf(stderr, "%s: district key must be 32 bytes of hex, mode 0600\n", dkey);
        ok = false;
    }
    char *cert_pem = NULL, *key_pem = NULL, err[300];
    size_t len;
    if (ok && (yn_file_read_regular(cert, PEM_MAX, &cert_pem, &len, err, sizeof err) != YN_OK ||
               yn_file_read_regular(keyf, PEM_MAX, &key_pem, &len, err, sizeof err) != YN_OK)) {
        fprintf(stderr, "serve: %s\n", err);
        ok = false;
    }
    o.db.busy_ms = (int)busy;
    o.slow_ms = (int)slow;
    o.body_budget = (size_t)budget_mib << 20;
    o.cert_pem = cert_pem;
    o.key_pem = key_pem;
    /* the schema is created or upgraded once, before any worker opens it */
    yn_db *db = NULL;
    if (ok && yn_db_open(where, &o.db, &db, err, sizeof err) != YN_OK) {
        fprintf(stderr, "yinian-district: %s\n", err);
        free(cert_pem);
        free(key_pem);
        return YN_EXIT_RUNTIME;
    }
    yn_db_close(db);
    int rc = ok ? YN_EXIT_OK : YN_EXIT_USAGE;
    if (ok) {
        struct sigaction act = {.sa_handler = on_signal};
        sigaction(SIGTERM, &act, NULL);
        sigaction(SIGINT, &act, NULL);
        signal(SIGPIPE, SIG_IGN);
        rc = yn_http_serve(&o, &stop) == 0 ? YN_EXIT_OK : YN_EXIT_RUNTIME;
    }
    OPENSSL_cleanse(o.district_priv, sizeof o.district_priv);
    free(cert_pem);
    if (key_pem)
        OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
    return rc;
}

static int cmd_report(yn_db *db, const char *by)
{
    char err[300];
    int rc = yn_report_write(db, by, stdout, err, sizeof err);
    if (rc == YN_OK)
        return YN_EXIT_OK;
    fprintf(stderr, "report %s: %s\n", by, err);
    return rc == YN_EINVAL ? YN_EXIT_USAGE : YN_EXIT_RUNTIME;
}

static int cmd_stats(yn_db *db)
{
    int64_t records = 0, bytes = 0;
    int rc = yn_db_int_of(db, "SELECT COUNT(*) FROM records", NULL, 0, &records);
    if (rc == YN_OK)
        rc = yn_db_size(db, &bytes);
    if (rc != YN_OK) {
        fprintf(stderr, "stats: %s\n", yn_db_errmsg(db));
        return YN_EXIT_RUNTIME;
    }
    printf("records %lld\nbytes %lld\n", (long long)records, (long long)bytes);
    return YN_EXIT_OK;
}

/* The admin commands: name, number of arguments. */
static int admin(yn_db *db, const char *cmd, int n, char **a)
{
    static const struct {
        const char *name;
        int args;
        const char *usage;
    } cmds[] = {
        {"enrol-token", 2, "enrol-token TERMINAL CANTEEN"},
        {"enrol-tokens", 1, "enrol-tokens CSV"},
        {"import-cards", 1, "import-cards CSV"},
        {"import", 1, "import DIR [--district-key FILE]"},
        {"lost", 1, "lost CARD_NO"},
        {"found", 1, "found CARD_NO"},
        {"lost-ident", 1, "lost-ident A:UID|B:PUPI"},
        {"found-ident", 1, "found-ident A:UID|B:PUPI"},
        {"publish-policy", 1, "publish-policy FILE.json"},
        {"allocate", 4, "allocate ID CARD_NO SOURCE AMOUNT_FEN"},
        {"report", 1,
         "report canteen|terminal|category|period|day|layer|identified|shared-ident|"
         "stamp-missing"},
        {"check", 0, "check"},
        {"fix", 0, "fix"},
        {"stats", 0, "stats"},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        if (strcmp(cmd, cmds[i].name) != 0)
            continue;
        bool import_key = i == 3 && n == 3 && !strcmp(a[1], "--district-key");
        if (n != cmds[i].args && !import_key) {
            fprintf(stderr, "usage: yinian-district --db DB %s\n", cmds[i].usage);
            return YN_EXIT_USAGE;
        }
        switch (i) {
        case 0:
            return yn_admin_token(db, a[0], a[1]);
        case 1:
            return yn_admin_tokens(db, a[0]);
        case 2:
            return yn_admin_import_cards(db, a[0]);
        case 3: {
            uint8_t priv[32];
            size_t klen = 0;
            if (import_key && (yn_key_file_load(a[2], true, "district signing key", priv,
                                                sizeof priv, &klen) != YN_OK ||
                               klen != sizeof priv)) {
                fprintf(stderr, "%s: district key must be 32 bytes of hex, mode 0600\n", a[2]);
                return YN_EXIT_USAGE;
            }
            int rc = yn_admin_import_dir(db, a[0], import_key ? priv : NULL);
            OPENSSL_cleanse(priv, sizeof priv);
            return rc;
        }
        case 4:
        case 5:
            return yn_admin_lost(db, a[0], i == 4, false);
        case 6:
        case 7:
            return yn_admin_lost(db, a[0], i == 6, true);
        case 8:
            return yn_admin_publish_policy(db, a[0]);
        case 9:
            return yn_admin_allocate(db, a[0], a[1], a[2], a[3]);
        case 10:
            return cmd_report(db, a[0]);
        case 11:
        case 12:
            return yn_admin_check(db, i == 12);
        default:
            return cmd_stats(db);
        }
    }
    usage(stderr);
    return YN_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "keygen"))
        return cmd_keygen(argc - 2, argv + 2);
    if (argc < 4 || strcmp(argv[1], "--db") != 0) {
        bool help = argc >= 2 && !strcmp(argv[1], "--help");
        usage(help ? stdout : stderr);
        return help ? YN_EXIT_OK : YN_EXIT_USAGE;
    }
    const char *where = argv[2], *cmd = argv[3];
    if (!strcmp(cmd, "serve"))
        return cmd_serve(where, argc - 4, argv + 4);
    yn_db *db;
    char err[300];
    yn_db_opts opts = {.busy_ms = 10000}; /* an admin command may wait for the server */
    if (yn_db_open(where, &opts, &db, err, sizeof err) != YN_OK) {
        fprintf(stderr, "yinian-district: %s\n", err);
        return YN_EXIT_RUNTIME;
    }
    int rc = admin(db, cmd, argc - 4, argv + 4);
    yn_db_close(db);
    return rc;
}
