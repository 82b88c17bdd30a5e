/* main.c — the yinian-pos daemon: read board.conf, open the devices, run the
 * terminal loop until SIGTERM/SIGINT (the tap in progress finishes first). */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "card.h"
#include "client.h"
#include "config.h"
#if WITH_SIM
#include "demo.h"
#endif
#include "hal.h"
#include "devices.h"
#include "fileio.h"
#include "keeper.h"
#include "ledger.h"
#include "log.h"
#include "policy.h"
#include "screens.h"
#include "service.h"
#include "terminal.h"

#define DEFAULT_CONFIG "/etc/yinian/board.conf"

/* Exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage. */
enum { EXIT_RUNTIME = 1, EXIT_CONFIG = 2 };

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *to)
{
    fprintf(to, "usage: yinian-pos [--config FILE] [--check-config | --self-test | --version]\n"
                "  --config FILE    board configuration (default " DEFAULT_CONFIG ")\n"
                "  --check-config   validate FILE and exit: 0 valid, 2 invalid\n"
                "  --self-test      open every configured device and exit: 0 all answer\n"
                "  --enrol TOKEN    enrol with the district server ([sync] url, ca_file) using\n"
                "                   a one-time token; the key goes into the keystore: [keys]\n"
                "                   terminal_key (mode 0600), or the token (backend = pkcs11)\n"
                "  --verbose        debug logging\n"
                "  --version        print the version\n");
}

static int load_config(const char *path, yn_config *cfg)
{
    static yn_config_errors errs;
    int rc = yn_config_load(path, yn_hal_backend_ok, cfg, &errs);
    if (rc == YN_OK)
        return YN_OK;
    for (int i = 0; i < errs.count && i < YN_CONFIG_MAX_ERRORS; i++)
        fprintf(stderr, "%s\n", errs.msg[i]);
    if (errs.count > YN_CONFIG_MAX_ERRORS)
        fprintf(stderr, "%s: … and %d more problems\n", path, errs.count - YN_CONFIG_MAX_ERRORS);
    return rc;
}

/* Trade a one-time token for this terminal's key with the district server:
 * a shared key goes straight into the keystore; a key pair is generated
 * there and its public half enrolled. */
static int enrol(const yn_config *cfg, const char *token)
{
    char id[YN_ID_MAX];
    yn_keystore keys;
    if (!cfg->sync.url[0] || !cfg->sync.ca_file[0]) {
        fprintf(stderr, "%s: --enrol needs [sync] url and ca_file\n", cfg->path);
        return EXIT_CONFIG;
    }
    if (yn_keystore_open(&keys, NULL, &cfg->keys) != YN_OK) {
        fprintf(stderr, "%s\n", keys.error);
        return EXIT_RUNTIME;
    }
    int rc = yn_sync_enrol(cfg->sync.url, cfg->sync.ca_file, token, &keys, id, sizeof id);
    char where[sizeof keys.where], fp[YN_SIG_FINGERPRINT_LEN + 1] = "";
    snprintf(where, sizeof where, "%s", keys.where);
    uint8_t pub[YN_KEYSTORE_PUB_LEN];
    bool pair = cfg->keys.terminal_key_type == YN_KEY_ECDSA_P256;
    if (rc == YN_OK && pair && yn_keystore_public_key(&keys, pub) == YN_OK)
        yn_sig_fingerprint(pub, fp);
    yn_keystore_close(&keys);
    if (rc != YN_OK) {
        fprintf(stderr, "enrolment with %s failed: %s\n", cfg->sync.url, yn_strerror(rc));
        return EXIT_RUNTIME;
    }
    if (strcmp(id, cfg->terminal.id) != 0)
        fprintf(stderr,
                "warning: the district enrolled this board as terminal %s but %s says "
                "%s: correct [terminal] id\n",
                id, cfg->path, cfg->terminal.id);
    if (pair)
        printf("enrolled as terminal %s with its key pair in %s, public key %s\n", id, where, fp);
    else
        printf("enrolled as terminal %s; key stored in %s\n", id, where);
    return 0;
}

/* What the terminal works with besides its devices. */
struct app {
    yn_ledger *ledger;
    yn_policy *policy;
    yn_card_keyring ring;
    bool ledger_damaged; /* the ledger or its policy could not be read: damaged */
};

static void app_close(struct app *a)
{
    yn_ledger_close(a->ledger);
    yn_policy_free(a->policy);
}

/* Whether secret key id can be used now: logged with where it is. */
static int key_ready(yn_keystore *keys, enum yn_key_id id)
{
    yn_keystore_key_info info;
    int rc = yn_keystore_inspect(keys, id, &info);
    if (rc == YN_OK && !info.works)
        rc = info.present ? YN_EPERM : YN_ENOTFOUND;
    if (rc != YN_OK)
        yn_err("keys: %s not usable (%s): %s", yn_key_id_name(id), yn_strerror(rc), info.detail);
    return rc;
}

/* Keys, ledger and the policy in force: board.conf's policy file is offered
 * to the ledger, which keeps whichever version is newer (the district's
 * updates arrive there too). lock: the daemon's own run takes the ledger's
 * lock (one daemon per ledger), the self-test does not. */
static int app_open(const yn_config *cfg, yn_keystore *keys, struct app *a, bool lock)
{
    uint8_t buf[YN_KEY_MAX];
    size_t len;
    char err[256];
    memset(a, 0, sizeof *a);
    int rc = key_ready(keys, YN_KEYID_CARD_MASTER);
    if (rc == YN_OK)
        rc = yn_keystore_load(keys, YN_KEYID_ISSUER_PUB, buf, sizeof buf, &len);
    if (rc == YN_OK && (rc = yn_card_keyring_from_bytes(buf, len, &a->ring, err, sizeof err)))
        yn_err("%s: issuer_pubkey: %s", cfg->path, err);
    if (rc != YN_OK)
        return rc;

    yn_ledger_opts lo = {.path = cfg->ledger.path,
                         .terminal_id = cfg->terminal.id,
                         .min_interval_s = cfg->ledger.min_interval_s,
                         .offline_cap_fen = cfg->sync.enabled ? cfg->sync.offline_cap_fen : 0,
                         .offline_after_s = 3 * cfg->sync.interval_s,
                         .lock = lock};
    if ((rc = yn_ledger_open(&lo, &a->ledger)) != YN_OK) {
        a->ledger_damaged = rc == YN_ECORRUPT || rc == YN_EIO;
        return rc;
    }
    FILE *f = fopen(cfg->policy.file, "r");
    char *json = NULL;
    size_t n = 0;
    if (f) {
        static char text[1 << 20];
        n = fread(text, 1, sizeof text, f);
        fclose(f);
        rc = yn_ledger_policy_store(a->ledger, text, n, true, err, sizeof err);
        if (rc != YN_OK && rc != YN_ESTALE && rc != YN_EDUPLICATE)
            yn_warn("%s: policy %s not taken: %s", cfg->path, cfg->policy.file, err);
    }
    char id[64];
    int64_t version;
    rc = yn_ledger_policy_active(a->ledger, &json, &n, id, sizeof id, &version);
    if (rc == YN_OK) {
        rc = yn_policy_load(json, n, &a->policy, err, sizeof err);
        if (rc != YN_OK)
            yn_err("ledger: active policy %s v%lld does not load: %s", id, (long long)version, err);
    } else {
        yn_err("ledger %s: no policy in force (%s): the terminal cannot decide subsidies",
               cfg->ledger.path, yn_strerror(rc));
        a->ledger_damaged = rc == YN_ECORRUPT || rc == YN_EIO;
    }
    free(json);
    if (rc == YN_OK)
        yn_info("policy in force: %s version %lld", id, (long long)version);
    return rc;
}

/* One line of the self-test: OK or FAIL, the device, what it said. */
static int report(const char *device, int rc, const char *what)
{
    printf("%s %s: %s\n", rc == YN_OK ? "OK  " : "FAIL", device,
           rc == YN_OK ? what : yn_strerror(rc));
    return rc != YN_OK;
}

/* Open each configured device and ask it to answer. 0 only when all do. */
static int self_test(const yn_config *cfg)
{
    yn_devices dev;
    int rc = yn_devices_open(&dev, cfg);
    if (report("devices", rc, "opened"))
        return EXIT_RUNTIME;
    char what[160];
    int failures = report("reader", yn_nfc_describe(&dev.nfc, what, sizeof what), what);
    if (strcmp(cfg->scale.backend, "none") != 0) {
        yn_weight w;
        rc = yn_scale_read(&dev.scale, &w);
        failures += report("scale", rc, "answers");
        if (rc != YN_OK)
            printf("     %s\n", yn_scale_advice(rc));
    }
    if (strcmp(cfg->io.backend, "none") != 0)
        failures += report("io", yn_io_describe(&dev.io, what, sizeof what), what);
    /* the card master always; the terminal key when sync needs it */
    char keys[sizeof dev.keys.where + 96];
    yn_keystore_key_info terminal;
    int keys_rc = key_ready(&dev.keys, YN_KEYID_CARD_MASTER);
    bool have_terminal =
        yn_keystore_inspect(&dev.keys, YN_KEYID_TERMINAL, &terminal) == YN_OK && terminal.works;
    if (keys_rc == YN_OK && cfg->sync.enabled && !have_terminal)
        keys_rc = key_ready(&dev.keys, YN_KEYID_TERMINAL);
    snprintf(keys, sizeof keys, "%s: card master%s usable", dev.keys.where,
             have_terminal ? " and terminal key" : ", no terminal key yet (sync is off)");
    failures += report("keys", keys_rc, keys);
    struct app app;
    failures +=
        report("ledger, keys and policy", app_open(cfg, &dev.keys, &app, false), cfg->ledger.path);
    app_close(&app);
    yn_devices_close(&dev);
    return failures ? EXIT_RUNTIME : 0;
}

/* Server time from a verified update, handed from the sync thread to the
 * main loop, which owns the clock (0 = none pending). */
static _Atomic int64_t server_time_ms;

static void on_server_time(void *arg, int64_t utc_ms)
{
    (void)arg;
    atomic_store(&server_time_ms, utc_ms);
}

/* The terminal's time (hal/clock/clock.h: the estimate while the wall clock is off),
 * published by the main loop, which owns the clock, for the sync thread. */
static _Atomic int64_t clock_now_s;

static int64_t sync_now_utc_s(void *arg)
{
    (void)arg;
    return atomic_load(&clock_now_s);
}

/* Largest clock step taken from the server once the clock is trusted. */
#define CLOCK_MAX_STEP_MS (10 * 60 * 1000)

/* Sync found the district holding other records under our seqs. */
static void on_conflict(void *arg, int64_t first_seq, int64_t last_seq)
{
    yn_keeper_conflict(arg, first_seq, last_seq);
}

/* The sync thread, when [sync] enabled: its own ledger handle, never
 * delaying a tap (SQLite WAL lets both work). It restores records the
 * ledger lost and reports conflicts to the keeper. */
static int sync_start(const yn_config *cfg, yn_keystore *keys, yn_keeper *keeper,
                      yn_sync_thread **out)
{
    uint8_t pub[YN_KEY_MAX];
    size_t pub_len = 0;
    *out = NULL;
    if (!cfg->sync.enabled)
        return YN_OK;
    int rc = key_ready(keys, YN_KEYID_TERMINAL);
    if (rc == YN_OK)
        rc = yn_keystore_load(keys, YN_KEYID_DISTRICT_PUB, pub, sizeof pub, &pub_len);
    if (rc == YN_OK && pub_len != YN_UPDATE_PUBKEY_LEN) {
        yn_err("%s: [keys] district_pubkey must hold %d bytes", cfg->path, YN_UPDATE_PUBKEY_LEN);
        rc = YN_EINVAL;
    }
    if (rc != YN_OK)
        return rc;
    yn_sync_opts so = {.url = cfg->sync.url,
                       .ca_file = cfg->sync.ca_file,
                       .terminal_id = cfg->terminal.id,
                       .keys = keys,
                       .clock_max_step_ms = CLOCK_MAX_STEP_MS,
                       .on_server_time = on_server_time,
                       .on_conflict = on_conflict,
                       .now_utc_s = sync_now_utc_s,
                       .arg = keeper};
    memcpy(so.district_pub, pub, YN_UPDATE_PUBKEY_LEN);
    yn_ledger_opts lo = {.path = cfg->ledger.path,
                         .terminal_id = cfg->terminal.id,
                         .min_interval_s = cfg->ledger.min_interval_s,
                         .offline_cap_fen = cfg->sync.enabled ? cfg->sync.offline_cap_fen : 0,
                         .offline_after_s = 3 * cfg->sync.interval_s};
    return yn_sync_thread_start(&so, &lo, cfg->sync.interval_s, out);
}

/* Leftovers of writes a kill or a power cut interrupted: 日结 files and the
 * ledger's own (the high-water mark, migration backups). Under the ledger's
 * lock: no other daemon is writing them. */
static void remove_stale(const yn_config *cfg)
{
    char dir[PATH_MAX], prefix[PATH_MAX + 8];
    snprintf(dir, sizeof dir, "%s", cfg->ledger.path);
    char *slash = strrchr(dir, '/');
    const char *base = slash ? slash + 1 : cfg->ledger.path;
    snprintf(prefix, sizeof prefix, "%s.", base);
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    if (yn_file_remove_stale(dir, prefix) < 0 ||
        yn_file_remove_stale(cfg->ledger.settle_dir, "settle-") < 0)
        yn_warn("cannot look for files left by interrupted writes next to %s or in %s",
                cfg->ledger.path, cfg->ledger.settle_dir);
}

/* The ledger does not even open, or its policy cannot be read from it: no
 * sale; the screen says so for staff until the daemon is stopped. */
static int stopped_for_good(yn_devices *dev)
{
    yn_sales_stop stop = {.why = YN_STOP_DAMAGED};
    yn_screen s;
    yn_screens_sales_stopped(&s, &stop);
    if (yn_display_show(&dev->display, &s) != YN_OK)
        yn_err("display: cannot show that sales are stopped");
    yn_service_ready("ledger damaged: sales stopped");
    while (!stop_requested) {
        yn_input_event ev;
        if (yn_input_next(&dev->input, 500, &ev) == YN_OK && ev.type == YN_EV_QUIT)
            break;
        yn_service_alive(yn_clock_mono_ms(&dev->clock));
    }
    return EXIT_RUNTIME;
}

static int run(const yn_config *cfg)
{
    yn_devices dev;
    struct app app;
    yn_terminal *term = NULL;
    yn_sync_thread *sync = NULL;
    yn_keeper *keeper = NULL;
    yn_sales_stop verdict = {0}, shown = {0};
    if (yn_devices_open(&dev, cfg) != YN_OK)
        return EXIT_RUNTIME;
    int rc = app_open(cfg, &dev.keys, &app, true);
    if (rc != YN_OK && app.ledger_damaged) {
        app_close(&app);
        rc = stopped_for_good(&dev);
        yn_devices_close(&dev);
        return rc;
    }
    if (rc == YN_OK)
        remove_stale(cfg);
    yn_terminal_deps deps = {
        .ledger = app.ledger, .policy = app.policy, .keys = &dev.keys, .ring = &app.ring};
#if WITH_SIM
    static yn_demo demo; /* the card keys of a demo: host builds only */
    deps.demo = yn_demo_init(&demo, cfg, &dev.nfc);
#endif
    if (rc == YN_OK)
        rc = yn_terminal_new(cfg, &dev, &deps, &term);
    yn_keeper_opts ko = {.ledger = app.ledger,
                         .path = cfg->ledger.path,
                         .terminal_id = cfg->terminal.id,
                         .can_restore = cfg->sync.enabled};
    if (rc == YN_OK &&
        (rc = yn_keeper_start(&ko, yn_clock_mono_ms(&dev.clock), &keeper, &verdict)) == YN_OK)
        yn_terminal_set_stop(term, &verdict);
    shown = verdict;
    atomic_store(&clock_now_s, yn_clock_utc_s(&dev.clock));
    if (rc == YN_OK && (rc = sync_start(cfg, &dev.keys, keeper, &sync)) != YN_OK)
        yn_err("sync: cannot start: %s", yn_strerror(rc));
    if (rc != YN_OK) {
        yn_keeper_stop(keeper);
        yn_terminal_free(term);
        app_close(&app);
        yn_devices_close(&dev);
        return EXIT_RUNTIME;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    yn_info("yinian-pos %s started: terminal %s, canteen %s, mode %s, sync %s", YN_VERSION,
            cfg->terminal.id, cfg->terminal.canteen_id, yn_mode_name(cfg->terminal.mode),
            sync ? cfg->sync.url : "off");
    yn_terminal_start(term);
    char status[128];
    snprintf(status, sizeof status, "terminal %s ready, mode %s", cfg->terminal.id,
             yn_mode_name(cfg->terminal.mode));
    yn_service_ready(status);
    while (!stop_requested && !yn_terminal_done(term) && rc == YN_OK) {
        rc = yn_terminal_step(term, 50);
        yn_keeper_tick(keeper, yn_clock_mono_ms(&dev.clock), yn_terminal_taps(term), &verdict);
        if (verdict.why != shown.why || verdict.first_seq != shown.first_seq ||
            verdict.last_seq != shown.last_seq) {
            yn_terminal_set_stop(term, &verdict);
            shown = verdict;
        }
        int64_t server_ms = atomic_exchange(&server_time_ms, 0);
        if (server_ms && yn_clock_correct(&dev.clock, server_ms,
                                          dev.clock.trusted ? CLOCK_MAX_STEP_MS : -1) != YN_OK)
            yn_warn("clock: server time not taken; records stay marked untrusted");
        atomic_store(&clock_now_s, yn_clock_utc_s(&dev.clock));
        yn_service_alive(yn_clock_mono_ms(&dev.clock));
    }
    yn_service_stopping();
    yn_info("yinian-pos stopping after %d taps", yn_terminal_taps(term));
    yn_sync_thread_stop(sync);
    yn_keeper_stop(keeper);
    yn_terminal_free(term);
    app_close(&app);
    yn_devices_close(&dev);
    return rc == YN_OK ? 0 : EXIT_RUNTIME;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'k'},
        {"self-test", no_argument, NULL, 's'},    {"enrol", required_argument, NULL, 'e'},
        {"version", no_argument, NULL, 'V'},      {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *config = DEFAULT_CONFIG;
    enum { RUN, CHECK, SELFTEST, ENROL } action = RUN;
    const char *token = NULL;
    bool verbose = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'k':
            action = CHECK;
            break;
        case 's':
            action = SELFTEST;
            break;
        case 'e':
            action = ENROL;
            token = optarg;
            break;
        case 'v':
            verbose = true;
            break;
        case 'V':
            printf("yinian-pos %s (%s)\n", YN_VERSION, YN_GITREV);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_CONFIG;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return EXIT_CONFIG;
    }
    yn_log_init("yinian-pos", verbose ? YN_LOG_DEBUG : YN_LOG_INFO, WITH_SYSLOG && action == RUN);
    static yn_config cfg;
    if (load_config(config, &cfg) != YN_OK)
        return EXIT_CONFIG;
    if (action == CHECK) {
        printf("%s: ok\n", config);
        return 0;
    }
    if (action == SELFTEST)
        return self_test(&cfg);
    if (action == ENROL)
        return enrol(&cfg, token);
    return run(&cfg);
}
