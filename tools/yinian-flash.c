/* yinian-flash — firmware bundles and A/B updates for technicians in the field.
 *
 *   keygen     the vendor's Ed25519 signing key pair
 *   bundle     build a signed bundle (manifest + payload) for one board architecture
 *   verify     check a bundle against the vendor public key and print its manifest
 *   install    verify, write the inactive slot, back up the ledger, switch
 *   boot       run by the board's init before the daemon: count the new slot's
 *              starts, self-test it, confirm it or roll back by itself
 *   status     both slots, which one is active and confirmed
 *   rollback   go back to the other slot by hand
 *   provision  give a new board its identity: board.conf and keys (files, or
 *              a PKCS#11 token that keeps them non-extractable)
 *   import-key put one secret key into the board's keystore (the token)
 *
 * Every change is a sequence of durable steps (each file fsynced, each switch
 * an atomic rename), so a kill or power cut at any point leaves a board that
 * starts a good version. YN_FLASH_STOP_AT=N makes the tool SIGKILL itself
 * right after its N-th durable step (the tests kill it at every step in turn).
 * This file is the command line; each job is a module of tools/flash/ (the
 * slot state machine, pure, in slots.c). Layout, bundle format, state file and
 * the modules: tools/FLASH.md.
 *
 * Exit codes: 0 done (boot: the active slot may start); 1 refused or failed
 * (the message says why and what to do); 2 bad command line or input. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flash.h"
#include "log.h"

void yn_fl_usage(FILE *to)
{
    fputs(
        "usage: yinian-flash COMMAND [options]\n"
        "  keygen [--force] PRIVATE_OUT PUBLIC_OUT\n"
        "      vendor Ed25519 key pair (hex; private 0600)\n"
        "  bundle --key VENDOR_KEY --out FILE [--version X.Y.Z] [--arch host|aarch64|armhf]\n"
        "      [--ledger-schema N] [--gitrev REV] ENTRY...\n"
        "      ENTRY: DIR (its files, at their paths under DIR) or DEST=SRC (one file);\n"
        "      the payload must hold bin/yinian-pos and share/board.conf\n"
        "  verify --pubkey VENDOR_PUB [--json] BUNDLE\n"
        "  install [--root DIR] [--pubkey FILE] [--arch A] [--attempts N] [--config FILE]\n"
        "      [--force] [--json] BUNDLE\n"
        "      --force installs an older or the same version, or over an unconfirmed one\n"
        "  boot [--root DIR] [--config FILE] [--timeout S] [--json]\n"
        "      before the daemon starts: self-test a new slot, confirm it or roll back\n"
        "  status [--root DIR] [--json]\n"
        "  rollback [--root DIR] [--config FILE] [--force] [--json]\n"
        "  provision [--root DIR] --terminal-id ID --canteen ID --district CODE --street CODE\n"
        "      [--canteen-name TEXT] [--mode pos|kiosk] --card-master-key FILE --issuer-pub FILE\n"
        "      [--terminal-key FILE] [--district-pub FILE] [--vendor-pub FILE] [--policy FILE]\n"
        "      [--server-url https://HOST[:PORT] --ca FILE] [--template FILE]\n"
        "      [--set SECTION.KEY=VALUE]... [--enrol-token TOKEN] [--force]\n"
        "      [--pkcs11-module PATH --token-label LABEL --pin-file FILE] [--key-pair]\n"
        "      writes ROOT/etc/board.conf from the shipped template and the keys (0600);\n"
        "      with --pkcs11-module the secret keys go into that token instead (non-\n"
        "      extractable; the master once: --force replaces another), no key file is kept;\n"
        "      with --key-pair the terminal's key is an ECDSA P-256 key pair made here, in the\n"
        "      token (or a 0600 PEM file), never outside it; its public key is printed and\n"
        "      written to ROOT/etc/keys/terminal.pub, and enrolment sends it to the district;\n"
        "      with --enrol-token, then enrols with the district server (needs --server-url)\n"
        "  import-key [--config FILE] [--force] card-master|terminal KEYFILE\n"
        "      one secret key (hex file) into the keystore board.conf names: with backend =\n"
        "      pkcs11 a non-extractable token object; --force replaces another key\n"
        "  --root defaults to " DEFAULT_ROOT "; --config to ROOT/etc/board.conf;\n"
        "  --pubkey to ROOT/etc/keys/vendor.pub; --arch to this machine's\n"
        "exit: 0 done (boot: may start), 1 refused or failed, 2 bad command line or input\n",
        to);
}

/* ---- main ------------------------------------------------------------------------------------ */

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

/* Long options without a short letter (provision's): codes above any char. */
enum {
    OPT_TERMINAL_ID = 256,
    OPT_CANTEEN,
    OPT_CANTEEN_NAME,
    OPT_DISTRICT,
    OPT_STREET,
    OPT_MODE,
    OPT_CARD_MASTER_KEY,
    OPT_ISSUER_PUB,
    OPT_TERMINAL_KEY,
    OPT_DISTRICT_PUB,
    OPT_VENDOR_PUB,
    OPT_POLICY,
    OPT_SERVER_URL,
    OPT_CA,
    OPT_TEMPLATE,
    OPT_SET,
    OPT_ENROL_TOKEN,
    OPT_PKCS11_MODULE,
    OPT_TOKEN_LABEL,
    OPT_PIN_FILE,
    OPT_KEY_PAIR,
};

int main(int argc, char **argv)
{
    static const struct option lopts[] = {
        {"root", required_argument, NULL, 'r'},
        {"key", required_argument, NULL, 'k'},
        {"pubkey", required_argument, NULL, 'p'},
        {"out", required_argument, NULL, 'o'},
        {"arch", required_argument, NULL, 'a'},
        {"version", required_argument, NULL, 'V'},
        {"gitrev", required_argument, NULL, 'g'},
        {"ledger-schema", required_argument, NULL, 'L'},
        {"attempts", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"config", required_argument, NULL, 'c'},
        {"force", no_argument, NULL, 'f'},
        {"json", no_argument, NULL, 'j'},
        {"terminal-id", required_argument, NULL, OPT_TERMINAL_ID},
        {"canteen", required_argument, NULL, OPT_CANTEEN},
        {"canteen-name", required_argument, NULL, OPT_CANTEEN_NAME},
        {"district", required_argument, NULL, OPT_DISTRICT},
        {"street", required_argument, NULL, OPT_STREET},
        {"mode", required_argument, NULL, OPT_MODE},
        {"card-master-key", required_argument, NULL, OPT_CARD_MASTER_KEY},
        {"issuer-pub", required_argument, NULL, OPT_ISSUER_PUB},
        {"terminal-key", required_argument, NULL, OPT_TERMINAL_KEY},
        {"district-pub", required_argument, NULL, OPT_DISTRICT_PUB},
        {"vendor-pub", required_argument, NULL, OPT_VENDOR_PUB},
        {"policy", required_argument, NULL, OPT_POLICY},
        {"server-url", required_argument, NULL, OPT_SERVER_URL},
        {"ca", required_argument, NULL, OPT_CA},
        {"template", required_argument, NULL, OPT_TEMPLATE},
        {"set", required_argument, NULL, OPT_SET},
        {"enrol-token", required_argument, NULL, OPT_ENROL_TOKEN},
        {"pkcs11-module", required_argument, NULL, OPT_PKCS11_MODULE},
        {"token-label", required_argument, NULL, OPT_TOKEN_LABEL},
        {"pin-file", required_argument, NULL, OPT_PIN_FILE},
        {"key-pair", no_argument, NULL, OPT_KEY_PAIR},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    static struct yn_fl_opts o;
    const char *root = DEFAULT_ROOT;
    o.attempts = DEFAULT_ATTEMPTS;
    o.timeout_s = DEFAULT_TIMEOUT;
    yn_log_init("yinian-flash", YN_LOG_INFO, false);

    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        printf("yinian-flash %s (%s)\n", YN_VERSION, YN_GITREV);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-') {
        yn_fl_usage(argc < 2 ? stderr : stdout);
        return argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? 0 : EXIT_USAGE;
    }
    yn_fl.command = argv[1];
    const char *stop = getenv("YN_FLASH_STOP_AT");
    if (stop)
        yn_fl.stop_at = strtol(stop, NULL, 10);
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            root = optarg;
            break;
        case 'k':
            o.key = optarg;
            break;
        case 'p':
            o.pubkey = optarg;
            break;
        case 'o':
            o.out = optarg;
            break;
        case 'a':
            o.arch = optarg;
            break;
        case 'V':
            o.version = optarg;
            break;
        case 'g':
            o.gitrev = optarg;
            break;
        case 'L':
            if (parse_int(optarg, 1, 1000000, &o.ledger_schema))
                return yn_fl_fail(EXIT_USAGE, "--ledger-schema must be a positive integer");
            break;
        case 'n':
            if (parse_int(optarg, 1, 20, &o.attempts))
                return yn_fl_fail(EXIT_USAGE, "--attempts must be 1..20");
            break;
        case 't':
            if (parse_int(optarg, 1, 3600, &o.timeout_s))
                return yn_fl_fail(EXIT_USAGE, "--timeout must be 1..3600 seconds");
            break;
        case 'c':
            o.config = optarg;
            break;
        case 'f':
            o.force = true;
            break;
        case 'j':
            o.json = true;
            break;
        case OPT_TERMINAL_ID:
            o.terminal_id = optarg;
            break;
        case OPT_CANTEEN:
            o.canteen = optarg;
            break;
        case OPT_CANTEEN_NAME:
            o.canteen_name = optarg;
            break;
        case OPT_DISTRICT:
            o.district = optarg;
            break;
        case OPT_STREET:
            o.street = optarg;
            break;
        case OPT_MODE:
            o.mode = optarg;
            break;
        case OPT_CARD_MASTER_KEY:
            o.card_master_key = optarg;
            break;
        case OPT_ISSUER_PUB:
            o.issuer_pub = optarg;
            break;
        case OPT_TERMINAL_KEY:
            o.terminal_key = optarg;
            break;
        case OPT_DISTRICT_PUB:
            o.district_pub = optarg;
            break;
        case OPT_VENDOR_PUB:
            o.vendor_pub = optarg;
            break;
        case OPT_POLICY:
            o.policy = optarg;
            break;
        case OPT_SERVER_URL:
            o.server_url = optarg;
            break;
        case OPT_CA:
            o.ca = optarg;
            break;
        case OPT_TEMPLATE:
            o.template = optarg;
            break;
        case OPT_ENROL_TOKEN:
            o.enrol_token = optarg;
            break;
        case OPT_PKCS11_MODULE:
            o.pkcs11_module = optarg;
            break;
        case OPT_TOKEN_LABEL:
            o.token_label = optarg;
            break;
        case OPT_PIN_FILE:
            o.pin_file = optarg;
            break;
        case OPT_KEY_PAIR:
            o.key_pair = true;
            break;
        case OPT_SET:
            if (o.n_sets >= MAX_SETS)
                return yn_fl_fail(EXIT_USAGE, "at most %d --set options", MAX_SETS);
            o.sets[o.n_sets++] = optarg;
            break;
        case 'h':
            yn_fl_usage(stdout);
            return 0;
        default:
            yn_fl_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (o.arch && !yn_bundle_arch_ok(o.arch))
        return yn_fl_fail(EXIT_USAGE, "--arch must be host, aarch64 or armhf");
    /* the root as an absolute path: the current link and the self-test rely on it */
    if (root[0] == '/') {
        snprintf(o.root, sizeof o.root, "%s", root);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd) || yn_fl_pathf(o.root, sizeof o.root, "%s/%s", cwd, root))
            return yn_fl_fail(EXIT_USAGE, "--root %s: path too long", root);
    }
    yn_fl.json = o.json;
    yn_fl.tty = !o.json && isatty(STDERR_FILENO);

    static const struct {
        const char *name;
        int (*run)(const struct yn_fl_opts *, int, char **);
    } cmds[] = {{"keygen", yn_fl_cmd_keygen},
                {"bundle", yn_fl_cmd_bundle},
                {"verify", yn_fl_cmd_verify},
                {"install", yn_fl_cmd_install},
                {"boot", yn_fl_cmd_boot},
                {"status", yn_fl_cmd_status},
                {"rollback", yn_fl_cmd_rollback},
                {"provision", yn_fl_cmd_provision},
                {"import-key", yn_fl_cmd_import_key}};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        if (strcmp(argv[1], cmds[i].name) != 0)
            continue;
        int rc = cmds[i].run(&o, argc - optind, argv + optind);
        yn_fl_end_progress_line();
        if (rc != 0 && yn_fl.json && !yn_fl.result_done)
            yn_fl_emit(json_pack("{s:s, s:b, s:s, s:s, s:i}", "event", "result", "ok", 0, "command",
                                 argv[1], "error", yn_fl.error, "exit", rc));
        return rc;
    }
    fprintf(stderr, "yinian-flash: unknown command '%s'\n", argv[1]);
    yn_fl_usage(stderr);
    return EXIT_USAGE;
}
