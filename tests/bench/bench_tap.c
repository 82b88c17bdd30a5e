/* bench_tap.c — a tap as a senior feels it: card entering the field →
 * decision committed, through the daemon's own path: the libnfc backend
 * (parent + worker), libnfc 1.8.0, a pty, and the emulated PN532 with its
 * timing model on (UART, RF, PN532 and card times: hal/nfc/READER.md "Timing
 * model"). One tap = the card is presented, the worker's listing loop finds
 * it, yn_tap_debit reads record and stamp, checks the issuer signature,
 * debits the ledger (a real SQLite file, fsync) and writes and commits the
 * stamp on the card.
 *
 * Rows (what each change bought), each N taps of distinct cards:
 *   1. 115200 baud, 106 kbit/s, no cache   (one read op, no GetFileSettings)
 *   2. 460800 baud (SetSerialBaudRate)
 *   3. + 424 kbit/s (InPSL)
 *   4. + the verified-record cache: the same cards again the next day (warm)
 * BENCH lines per row: p50, p99, card exchanges and UART bytes per tap; the
 * final configuration's warm taps are tap_p50_ms / tap_p99_ms.
 *
 * Another reader or emulator instead of our own (hal/nfc/READER.md §"Another
 * reader"): YN_BENCH_CONNSTRING (e.g. pn532_uart:/dev/ttyS1:460800),
 * YN_BENCH_MASTER (card master key file), YN_BENCH_ISSUER_PUB (issuer key
 * ring), YN_BENCH_CONTROL (that emulator's control FIFO; its cards 0..N-1
 * issued with those keys). Without YN_BENCH_CONTROL a person taps and lifts
 * the cards, and the time runs from detection. YN_BENCH_TAPS = taps a row. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "card.h"
#include "card_cache.h"
#include "cardfix.h"
#include "config.h"
#include "keystore.h"
#include "ledger.h"
#include "log.h"
#include "nfc.h"
#include "policy.h"
#include "tap.h"
#include "testkeys.h"
#include "testutil.h"

#define TAPS_DEFAULT 60
#define TAPS_MAX     400
#define LUNCH_UTC    1773115200LL /* 2026-03-10 (Tuesday) 12:00 Asia/Shanghai */

static char dir[PATH_MAX], link_path[PATH_MAX + 16], ctl_path[PATH_MAX + 16],
    out_path[PATH_MAX + 16];
static int ctl_fd = -1;
static pid_t emu_pid;
static yn_cardfix fix;
static yn_card_keyring ring;
static uint8_t master[YN_CARD_MASTER_LEN];

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, int p)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (n * p + 99) / 100 - 1;
    return v[i < 0 ? 0 : i];
}

static void control(const char *line)
{
    if (ctl_fd < 0)
        return;
    size_t n = strlen(line);
    if (write(ctl_fd, line, n) != (ssize_t)n)
        perror("bench_tap: control");
}

/* The emulator's counters (a "stats" line in its output). */
static int emu_stats(unsigned long *cmds, unsigned long *bytes)
{
    if (!out_path[0])
        return -1;
    control("stats reset\n");
    for (int tries = 0; tries < 200; tries++) {
        usleep(5000);
        FILE *f = fopen(out_path, "r");
        char line[512], last[512] = "";
        while (f && fgets(line, sizeof line, f))
            if (strstr(line, "stats frames="))
                snprintf(last, sizeof last, "%s", line);
        if (f)
            fclose(f);
        const char *c = strstr(last, "card_commands="), *b = strstr(last, "uart_bytes=");
        if (c && b && !strstr(last, "STALE")) {
            *cmds = strtoul(c + 14, NULL, 10);
            *bytes = strtoul(b + 11, NULL, 10);
            /* mark it read so the next call waits for a fresh one */
            int fd = open(out_path, O_WRONLY | O_APPEND);
            if (fd >= 0) {
                if (write(fd, "STALE\n", 6) != 6)
                    perror("bench_tap");
                close(fd);
            }
            return 0;
        }
    }
    return -1;
}

static void write_cards(int n, char *path, size_t len)
{
    size_t cap = (size_t)n * 600 + 64, used = 0;
    char *text = malloc(cap);
    if (!text)
        exit(1);
    for (int i = 0; i < n; i++) {
        yn_sim_card c;
        char no[20], uid[32], key[40], rec[600];
        snprintf(no, sizeof no, "44030490%04d", i);
        yn_cardfix_card(&fix, &c, (uint32_t)(0x100 + i), no, 19450312, YN_FLAG_DIBAO, 440304001);
        for (size_t k = 0; k < c.tag.uid_len; k++)
            sprintf(uid + 2 * k, "%02x", c.tag.uid[k]);
        for (size_t k = 0; k < 16; k++)
            sprintf(key + 2 * k, "%02x", c.key[k]);
        for (size_t k = 0; k < c.record_len; k++)
            sprintf(rec + 2 * k, "%02x", c.record[k]);
        used += (size_t)snprintf(text + used, cap - used, "bench %d|desfire|%s|%s|%s|\n", i, uid,
                                 key, rec);
    }
    yn_test_write(dir, "cards.txt", text, 0600, path, len);
    free(text);
}

static int start_emulator(const char *cards)
{
    const char *build = getenv("BUILD");
    char emu[PATH_MAX];
    snprintf(emu, sizeof emu, "%s/yinian-pn532-emu", build && *build ? build : "build/host");
    snprintf(out_path, sizeof out_path, "%s/emu.out", dir);
    emu_pid = fork();
    if (emu_pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0)
            dup2(fd, 1);
        execl(emu, emu, "--link", link_path, "--cards", cards, "--control", ctl_path, "--timing",
              (char *)NULL);
        perror(emu);
        _exit(127);
    }
    for (int i = 0; i < 500 && access(link_path, F_OK) != 0; i++)
        usleep(10000);
    ctl_fd = open(ctl_path, O_WRONLY | O_CLOEXEC);
    return ctl_fd >= 0 ? 0 : -1;
}

struct row {
    const char *name;
    unsigned baud;
    int rf_kbps;
    bool cache;
    int day;    /* each row taps on another day: yesterday's stamp does not block */
    bool warm;  /* the cache knows these cards */
    bool token; /* the card keys come from the SoftHSM2 token (hal/keystore/KEYSTORE.md) */
};

static int run_row(const struct row *r, int taps, const char *connstring, yn_keystore *ks,
                   yn_ledger *ledger, const yn_policy *policy, yn_card_cache *cache,
                   int64_t *tap_id, double *warm, double *cold, int *n_warm, int *n_cold)
{
    yn_config cfg;
    yn_config_defaults(&cfg);
    snprintf(cfg.reader.backend, sizeof cfg.reader.backend, "libnfc");
    if (connstring)
        snprintf(cfg.reader.connstring, sizeof cfg.reader.connstring, "%s", connstring);
    else if (snprintf(cfg.reader.connstring, sizeof cfg.reader.connstring, "pn532_uart:%s:%u",
                      link_path, r->baud) >= (int)sizeof cfg.reader.connstring)
        return 1;
    cfg.reader.rf_kbps = r->rf_kbps;
    yn_nfc dev;
    if (yn_nfc_open(&dev, &cfg.reader) != YN_OK) {
        fprintf(stderr, "bench_tap: cannot open %s\n", cfg.reader.connstring);
        return 1;
    }
    yn_tap_env env = {.nfc = &dev,
                      .ledger = ledger,
                      .policy = policy,
                      .keys = ks,
                      .ring = &ring,
                      .canteen = {.district = 440304, .street = 440304001},
                      .canteen_code = yn_tap_canteen_code("C-BENCH"),
                      .terminal_code = yn_card_terminal_code("T-BENCH"),
                      .cache = r->cache ? cache : NULL};
    static double t[TAPS_MAX];
    unsigned long cmds = 0, bytes = 0;
    emu_stats(&cmds, &bytes);
    int status = 0;
    for (int i = 0; i < taps && status == 0; i++) {
        yn_ledger_when when = {.utc_s = LUNCH_UTC + 86400LL * r->day,
                               .mono_ms = (int64_t)now_ms(),
                               .clock_trusted = true};
        static const yn_meal meal = {.price_fen = 1500};
        char line[64];
        yn_nfc_tag tag;
        yn_tap_outcome out = {0};
        snprintf(line, sizeof line, "present %d\n", i);
        double t0 = now_ms();
        control(line);
        int rc;
        while ((rc = yn_nfc_poll(&dev, 50, &tag)) == YN_ENOCARD)
            ;
        if (ctl_fd < 0)
            t0 = now_ms(); /* a person's tap: from detection */
        if (rc == YN_OK)
            rc = yn_tap_debit(&env, &tag, &meal, ++*tap_id, NULL, "bench", &when, &out);
        t[i] = now_ms() - t0;
        if (rc != YN_OK || out.stamp != YN_TAP_STAMP_WRITTEN) {
            fprintf(stderr, "bench_tap: %s: tap %d: %s (%s)\n", r->name, i, yn_strerror(rc),
                    rc == YN_OK ? "no stamp written" : out.detail);
            status = 1;
        }
        if (yn_nfc_release(&dev) != YN_OK)
            yn_debug("bench_tap: release failed");
        control("remove\n");
        if (ctl_fd < 0) /* a person lifts the card */
            while (yn_nfc_poll(&dev, 50, &tag) == YN_OK)
                ;
        if (r->warm)
            warm[(*n_warm)++] = t[i];
        else
            cold[(*n_cold)++] = t[i];
    }
    yn_nfc_close(&dev);
    if (status)
        return status;
    bool have = emu_stats(&cmds, &bytes) == 0;
    printf("BENCH tap_%s_p50_ms %.1f ms\n", r->name, pct(t, taps, 50));
    printf("BENCH tap_%s_p99_ms %.1f ms\n", r->name, pct(t, taps, 99));
    if (have) {
        printf("BENCH tap_%s_exchanges %.1f per_tap\n", r->name, (double)cmds / taps);
        printf("BENCH tap_%s_uart_bytes %.0f per_tap\n", r->name, (double)bytes / taps);
    }
    return 0;
}

/* The card key derivation alone: BENCH card_key_<name>_p50_us, _p99_us. */
static int derivations(yn_keystore *ks, const char *name)
{
    static double t[2000];
    for (int i = 0; i < 2000; i++) {
        uint8_t uid[7] = {0x04, 0x31, 0x7C, 0x52, (uint8_t)(i >> 8), (uint8_t)i, 0x80}, key[16];
        double t0 = now_ms();
        if (yn_card_key(ks, uid, sizeof uid, key) != YN_OK)
            return 1;
        t[i] = (now_ms() - t0) * 1000;
    }
    printf("BENCH card_key_%s_p50_us %.1f us\n", name, pct(t, 2000, 50));
    printf("BENCH card_key_%s_p99_us %.1f us\n", name, pct(t, 2000, 99));
    return 0;
}

static int load_keys(void)
{
    const char *mp = getenv("YN_BENCH_MASTER"), *rp = getenv("YN_BENCH_ISSUER_PUB");
    yn_cardfix_init(&fix);
    memcpy(master, fix.master, sizeof master);
    ring = fix.ring;
    if (!mp && !rp)
        return 0;
    uint8_t bytes[YN_CARD_KEYRING_MAX * 33];
    size_t n = 0;
    char err[160];
    if (!mp || !rp || yn_key_file_load(mp, true, "card master key", master, sizeof master, &n) ||
        n != sizeof master ||
        yn_key_file_load(rp, false, "issuer key ring", bytes, sizeof bytes, &n) ||
        yn_card_keyring_from_bytes(bytes, n, &ring, err, sizeof err)) {
        fprintf(stderr, "bench_tap: YN_BENCH_MASTER and YN_BENCH_ISSUER_PUB: both, readable\n");
        return 1;
    }
    return 0;
}

int main(void)
{
#if !WITH_LIBNFC
    printf("bench_tap: skipped, built without the libnfc backend (make WITH_LIBNFC=1)\n");
    return 0;
#endif
    yn_log_init("bench_tap", YN_LOG_WARN, false);
    yn_test_tmpdir(dir, sizeof dir);
    snprintf(link_path, sizeof link_path, "%s/pn532", dir);
    snprintf(ctl_path, sizeof ctl_path, "%s/pn532.ctl", dir);
    const char *connstring = getenv("YN_BENCH_CONNSTRING"), *ext_ctl = getenv("YN_BENCH_CONTROL");
    const char *taps_env = getenv("YN_BENCH_TAPS");
    int taps = taps_env ? atoi(taps_env) : TAPS_DEFAULT;
    if (taps < 1 || taps > TAPS_MAX || load_keys() != 0)
        return 1;
    if (connstring) {
        ctl_fd = ext_ctl ? open(ext_ctl, O_WRONLY | O_CLOEXEC) : -1;
    } else {
        char cards[PATH_MAX + 32];
        write_cards(taps, cards, sizeof cards);
        if (start_emulator(cards) != 0) {
            fprintf(stderr, "bench_tap: the emulator did not start\n");
            return 1;
        }
    }
    char path[PATH_MAX + 32], err[256];
    yn_policy *policy = NULL;
    snprintf(path, sizeof path, "%s/firmware/policies/shenzhen-2025.json", yn_test_srcdir());
    if (yn_policy_load_file(path, &policy, err, sizeof err) != YN_OK) {
        fprintf(stderr, "bench_tap: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof path, "%s/ledger.db", dir);
    yn_ledger_opts lo = {.path = path, .terminal_id = "BENCH", .boot_id = "bench-boot"};
    yn_ledger *ledger = NULL;
    if (yn_ledger_open(&lo, &ledger) != YN_OK)
        return 1;
    static yn_card_cache cache;
    /* the same master in key files and in a SoftHSM2 token */
    char file_dir[PATH_MAX + 8], token_dir[PATH_MAX + 8];
    snprintf(file_dir, sizeof file_dir, "%s/file", dir);
    snprintf(token_dir, sizeof token_dir, "%s/token", dir);
    mkdir(file_dir, 0700);
    mkdir(token_dir, 0700);
    static yn_testkeys files, token;
    yn_testkeys_open_as(&files, "file", file_dir, master, NULL, 0);
    yn_testkeys_open_as(&token, "pkcs11", token_dir, master, NULL, 0);
    static const struct row rows[] = {
        {"115200_106", 115200, 106, false, 0, false, false},
        {"460800_106", 460800, 106, false, 1, false, false},
        {"460800_424", 460800, 424, true, 2, false, false}, /* fills the cache (cold taps) */
        {"cached", 460800, 424, true, 3, true, false},      /* the same cards the next day */
        {"token", 460800, 424, true, 7, false, true},       /* the keys in a token (warm) */
    };
    static double warm[TAPS_MAX], cold[TAPS_MAX];
    int n_warm = 0, n_cold = 0, status = 0;
    int64_t tap_id = 0;
    int first = connstring ? 3 : 0; /* another reader: its own rate, the final rows */
    for (size_t i = (size_t)first; i < sizeof rows / sizeof rows[0] && status == 0; i++) {
        n_cold = 0; /* the cold figures are the last cold row's */
        static double other_warm[TAPS_MAX], other_cold[TAPS_MAX];
        int n_other_warm = 0, n_other_cold = 0; /* the token row has BENCH lines of its own */
        if (rows[i].token)
            status = run_row(&rows[i], taps, connstring, &token.ks, ledger, policy, &cache, &tap_id,
                             other_warm, other_cold, &n_other_warm, &n_other_cold);
        else
            status = run_row(&rows[i], taps, connstring, &files.ks, ledger, policy, &cache, &tap_id,
                             warm, cold, &n_warm, &n_cold);
    }
    if (status == 0)
        status = derivations(&files.ks, "file");
    if (status == 0)
        status = derivations(&token.ks, "pkcs11");
    if (status == 0 && n_warm) {
        printf("BENCH tap_p50_ms %.1f ms\n", pct(warm, n_warm, 50));
        printf("BENCH tap_p99_ms %.1f ms\n", pct(warm, n_warm, 99));
        if (pct(warm, n_warm, 99) > 60)
            fprintf(stderr, "bench_tap: p99 above the 60 ms bar\n");
    }
    if (status == 0 && n_cold) {
        printf("BENCH tap_cold_p50_ms %.1f ms\n", pct(cold, n_cold, 50));
        printf("BENCH tap_cold_p99_ms %.1f ms\n", pct(cold, n_cold, 99));
    }
    yn_ledger_close(ledger);
    yn_policy_free(policy);
    yn_testkeys_close(&files);
    yn_testkeys_close(&token);
    control("quit\n");
    if (emu_pid > 0) {
        usleep(100000);
        kill(emu_pid, SIGTERM);
        waitpid(emu_pid, NULL, 0);
    }
    return status;
}
