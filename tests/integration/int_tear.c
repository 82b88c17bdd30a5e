/* int_tear.c — card-side tears at every card exchange of a tap, DESFire and
 * Classic, through the real path: the tap pipeline (firmware/app/tap.c) and two
 * real ledger files, the "libnfc" reader backend, libnfc 1.8.0 on a pty, and
 * the emulated PN532 with its `fault tear N before|after` (the card leaves
 * before the N-th card command from now reaches it, or after the card
 * executed it and before its reply — a torn CommitTransaction included).
 *
 * For every N and both sides, a fresh senior (a ¥15 低保 card) taps at
 * terminal T1 with the tear armed; told to tap again (nothing charged) the
 * senior does so at T1; then taps at T2, another canteen whose ledger never
 * hears of T1 (offline). Then, and for every case:
 *   - no lost subsidy: the senior had one subsidised lunch, at T1 or T2;
 *   - never charged twice for one tap: at most one meal per ledger;
 *   - a second subsidised lunch only where T1's journal holds the
 *     stamp-missing notice of its meal (the window, recorded for the district);
 *   - both ledgers verify.
 * Where T1 charged but noted a missing stamp, a second fresh senior goes back
 * to T1 first: sold at full price (本餐已享受补贴), the stamp repaired, and T2
 * then refuses the subsidy: no window at all.
 *
 * Bounded: about 30 tear points × 2 sides × 3 taps, ~10 s. Env: BUILD,
 * TMPDIR. Exit 0 = pass. */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cardfix.h"
#include "check.h"
#include "config.h"
#include "hex.h"
#include "ledger.h"
#include "log.h"
#include "nfc.h"
#include "policy.h"
#include "tap.h"
#include "testkeys.h"
#include "testutil.h"

#define LUNCH_UTC  1773115200LL /* 2026-03-10 (Tuesday) 12:00 Asia/Shanghai */
#define N_CARDS    60           /* fresh seniors per card type */
#define MAX_POINTS 40           /* card commands of one tap, more than any has */
#define TIMEOUT_MS 200

static char dir[PATH_MAX], link_path[PATH_MAX + 16], ctl_path[PATH_MAX + 16],
    cards_path[PATH_MAX + 16], log_path[PATH_MAX + 16];
static pid_t emu_pid;
static int ctl_fd = -1;
static yn_cardfix fix;
static yn_testkeys keys; /* the card master: the taps derive each card's key from it */
static yn_sim_card cards[N_CARDS];
static yn_policy *policy;

static void emu(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emu(const char *fmt, ...)
{
    char line[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    strcat(line, "\n");
    if (write(ctl_fd, line, strlen(line)) != (ssize_t)strlen(line))
        perror("control");
    yn_test_sleep_ms(2);
}

static void hex(const uint8_t *p, size_t n, FILE *f)
{
    char text[2 * YN_NFC_AREA_MAX + 1];
    yn_hex_encode(p, n, text);
    fputs(text, f);
}

/* N_CARDS fresh seniors of one card type in the emulator's card file. */
static void write_cards(enum yn_tag_type type)
{
    FILE *f = fopen(cards_path, "w");
    if (!f) {
        perror(cards_path);
        exit(1);
    }
    for (int i = 0; i < N_CARDS; i++) {
        char no[20];
        snprintf(no, sizeof no, "44030400%02d%02d", type == YN_TAG_DESFIRE ? 1 : 2, i);
        if (type == YN_TAG_DESFIRE)
            yn_cardfix_card(&fix, &cards[i], 0x100 + (uint32_t)i, no, 19450312, YN_FLAG_DIBAO,
                            440304001);
        else
            yn_cardfix_classic(&fix, &cards[i], 0xC4170000u + (uint32_t)i, no, 19450312,
                               YN_FLAG_DIBAO, 440304001);
        fprintf(f, "%s|%s|", no, type == YN_TAG_DESFIRE ? "desfire" : "classic1k");
        hex(cards[i].tag.uid, cards[i].tag.uid_len, f);
        fputc('|', f);
        hex(cards[i].key, 16, f);
        fputc('|', f);
        hex(cards[i].record, cards[i].record_len, f);
        fputs("|\n", f);
    }
    fclose(f);
}

static void emu_start(void)
{
    const char *build = getenv("BUILD");
    char prog[PATH_MAX];
    snprintf(prog, sizeof prog, "%s/yinian-pn532-emu", build && *build ? build : "build/host");
    unlink(link_path);
    emu_pid = fork();
    if (emu_pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(prog, prog, "--link", link_path, "--cards", cards_path, "--control", ctl_path,
              (char *)NULL);
        perror(prog);
        _exit(127);
    }
    for (int i = 0; i < 500 && access(link_path, F_OK) != 0; i++)
        yn_test_sleep_ms(10);
    ctl_fd = open(ctl_path, O_WRONLY | O_CLOEXEC);
    if (access(link_path, F_OK) != 0 || ctl_fd < 0) {
        fprintf(stderr, "the emulator did not come up (%s)\n", prog);
        exit(1);
    }
}

static void emu_stop(void)
{
    emu("quit");
    int status;
    for (int i = 0; i < 200 && waitpid(emu_pid, &status, WNOHANG) == 0; i++)
        yn_test_sleep_ms(10);
    kill(emu_pid, SIGKILL);
    waitpid(emu_pid, &status, 0);
    close(ctl_fd);
}

/* How many tears the emulator has reported so far. */
static int tears_seen(void)
{
    FILE *f = fopen(log_path, "r");
    char line[256];
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strncmp(line, "pn532-emu: tear:", 16) == 0;
    if (f)
        fclose(f);
    return n;
}

struct terminal {
    const char *id;
    yn_ledger *ledger;
    yn_tap_env env;
};

static int64_t next_tap = 1;

/* Card i taps at terminal t (an optional fault armed first). */
static int tap(struct terminal *t, yn_nfc *dev, int i, const char *fault, yn_tap_outcome *o)
{
    yn_nfc_tag tag;
    emu("present %d", i);
    int rc = YN_ENOCARD;
    for (int tries = 0; tries < 20 && rc != YN_OK; tries++)
        rc = yn_nfc_poll(dev, 100, &tag);
    if (rc != YN_OK) {
        memset(o, 0, sizeof *o);
        return rc;
    }
    if (fault)
        emu("%s", fault);
    yn_ledger_when when = {.utc_s = LUNCH_UTC, .mono_ms = 5000000, .clock_trusted = true};
    rc = yn_tap_debit(&t->env, &tag, &(yn_meal){.price_fen = 1500}, next_tap++, NULL, "op1", &when,
                      o);
    emu("fault none");
    if (yn_nfc_release(dev) != YN_OK)
        fprintf(stderr, "int_tear: release failed (ignored: the card is taken away)\n");
    emu("remove");
    return rc;
}

struct tally {
    int meals, subsidised, notices;
};

static struct tally tally_of(yn_ledger *l, const char *card_no)
{
    struct tally t = {0};
    int64_t head;
    uint8_t h[YN_LEDGER_HASH_LEN];
    if (yn_ledger_head(l, &head, h) != YN_OK)
        return t;
    for (int64_t seq = 1; seq <= head; seq++) {
        yn_ledger_record r;
        if (yn_ledger_record_get(l, seq, &r) != YN_OK || strcmp(r.card_no, card_no) != 0)
            continue;
        t.meals += r.kind == YN_LEDGER_MEAL;
        t.subsidised += r.kind == YN_LEDGER_MEAL && r.subsidy_fen > 0;
        t.notices += r.kind == YN_LEDGER_STAMP_MISSING;
    }
    return t;
}

static void open_terminal(struct terminal *t, const char *id, const char *canteen, yn_nfc *dev,
                          const char *type_name)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s-%s.db", dir, id, type_name);
    yn_ledger_opts lo = {.path = path, .terminal_id = id, .boot_id = "tear-boot"};
    t->id = id;
    if (yn_ledger_open(&lo, &t->ledger) != YN_OK) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    t->env = (yn_tap_env){.nfc = dev,
                          .ledger = t->ledger,
                          .policy = policy,
                          .keys = &keys.ks,
                          .ring = &fix.ring,
                          .canteen = {.district = 440304, .street = 440304001},
                          .canteen_code = yn_tap_canteen_code(canteen),
                          .terminal_code = yn_card_terminal_code(id)};
}

/* Every tear point of one card type. Returns the number of points found. */
static int tear_card_type(enum yn_tag_type type, const char *type_name)
{
    write_cards(type);
    emu_start();
    yn_config cfg;
    yn_config_defaults(&cfg);
    snprintf(cfg.reader.backend, sizeof cfg.reader.backend, "libnfc");
    if (snprintf(cfg.reader.connstring, sizeof cfg.reader.connstring, "pn532_uart:%s", link_path) >=
        (int)sizeof cfg.reader.connstring) {
        fprintf(stderr, "TMPDIR too long for a connstring: %s\n", link_path);
        exit(1);
    }
    cfg.reader.timeout_ms = TIMEOUT_MS;
    yn_nfc dev;
    if (yn_nfc_open(&dev, &cfg.reader) != YN_OK) {
        fprintf(stderr, "cannot open the reader\n");
        exit(1);
    }
    struct terminal t1, t2;
    open_terminal(&t1, "T-FT-0001", "C-FT-001", &dev, type_name);
    open_terminal(&t2, "T-FT-0002", "C-FT-002", &dev, type_name);
    int card = 0, points = 0, windows = 0, repaired = 0;
    for (int n = 1; n <= MAX_POINTS && card + 2 < N_CARDS; n++) {
        bool any = false;
        for (int after = 0; after < 2 && card + 2 < N_CARDS; after++) {
            char fault[48];
            snprintf(fault, sizeof fault, "fault tear %d %s", n, after ? "after" : "before");
            int i = card++;
            const char *no = cards[i].label;
            int seen = tears_seen();
            yn_tap_outcome o1, o2;
            int rc1 = tap(&t1, &dev, i, fault, &o1);
            if (tears_seen() == seen) { /* the tap had fewer than n card commands */
                CHECK(rc1 == YN_OK && o1.result.decision.subsidy_fen == 1500,
                      "%s: an untorn tap is a subsidised lunch (%s)", type_name, yn_strerror(rc1));
                continue;
            }
            any = true;
            if (!o1.charged) /* told to tap again: at the same terminal */
                CHECK(tap(&t1, &dev, i, NULL, &o2) == YN_OK && o2.charged,
                      "%s %s: the retry at T1 is charged", type_name, fault);
            struct tally a = tally_of(t1.ledger, no);
            tap(&t2, &dev, i, NULL, &o2);
            struct tally b = tally_of(t2.ledger, no);
            CHECK(a.subsidised + b.subsidised >= 1, "%s %s: the senior lost the subsidy", type_name,
                  fault);
            CHECK(a.meals <= 1 && b.meals <= 1, "%s %s: charged twice for one tap (%d, %d)",
                  type_name, fault, a.meals, b.meals);
            CHECK(a.subsidised + b.subsidised <= 1 + a.notices,
                  "%s %s: a second subsidy without a recorded window", type_name, fault);
            CHECK(a.notices <= 1, "%s %s: one notice per meal", type_name, fault);
            windows += a.subsidised + b.subsidised > 1;
            if (!o1.charged || o1.stamp != YN_TAP_STAMP_MISSING)
                continue;
            /* the same tear, and the senior comes back to T1 before T2 */
            int j = card++;
            tap(&t1, &dev, j, fault, &o1);
            CHECK(o1.charged && o1.stamp == YN_TAP_STAMP_MISSING, "%s %s: the same tear again",
                  type_name, fault);
            CHECK(tap(&t1, &dev, j, NULL, &o2) == YN_OK && o2.reason == YN_REASON_PERIOD_USED &&
                      o2.stamp != YN_TAP_STAMP_MISSING,
                  "%s %s: back at T1: full price, stamp settled", type_name, fault);
            tap(&t2, &dev, j, NULL, &o2);
            CHECK(o2.reason == YN_REASON_PERIOD_USED && o2.result.decision.subsidy_fen == 0,
                  "%s %s: after the repair T2 sees the meal", type_name, fault);
            repaired++;
        }
        if (!any)
            break;
        points++;
    }
    yn_ledger_verify_report rep;
    CHECK_RC(yn_ledger_verify(t1.ledger, &rep), YN_OK);
    CHECK_RC(yn_ledger_verify(t2.ledger, &rep), YN_OK);
    printf("int_tear: %s: %d tear points x before/after, %d open windows (all noted), "
           "%d stamps repaired\n",
           type_name, points, windows, repaired);
    yn_ledger_close(t1.ledger);
    yn_ledger_close(t2.ledger);
    yn_nfc_close(&dev);
    emu_stop();
    return points;
}

int main(void)
{
#if !WITH_LIBNFC
    printf("int_tear: skipped, built without the libnfc backend (make WITH_LIBNFC=1)\n");
    return 0;
#endif
    alarm(300); /* a hang is a failure */
    yn_log_init("int_tear", YN_LOG_ERR, false);
    yn_test_tmpdir(dir, sizeof dir);
    snprintf(link_path, sizeof link_path, "%s/pn532", dir);
    snprintf(ctl_path, sizeof ctl_path, "%s/pn532.ctl", dir);
    snprintf(cards_path, sizeof cards_path, "%s/cards.txt", dir);
    snprintf(log_path, sizeof log_path, "%s/emu.log", dir);
    yn_cardfix_init(&fix);
    yn_testkeys_open(&keys, dir, fix.master, NULL, 0); /* files, or a token (YN_KEYS_BACKEND) */
    char path[PATH_MAX], err[256];
    snprintf(path, sizeof path, "%s/firmware/policies/shenzhen-2025.json", yn_test_srcdir());
    if (yn_policy_load_file(path, &policy, err, sizeof err) != YN_OK) {
        fprintf(stderr, "%s: %s\n", path, err);
        return 1;
    }
    int df = tear_card_type(YN_TAG_DESFIRE, "desfire");
    int mfc = tear_card_type(YN_TAG_CLASSIC_1K, "classic");
    CHECK(df >= 6 && mfc >= 12, "tear points found: DESFire %d, Classic %d", df, mfc);
    yn_policy_free(policy);
    if (yn_failures) {
        char cmd[PATH_MAX + 32];
        snprintf(cmd, sizeof cmd, "tail -30 %s >&2", log_path);
        if (system(cmd) != 0)
            fprintf(stderr, "(no emulator log)\n");
    }
    printf("int_tear: %d checks, %d failed\n", yn_checks, yn_failures);
    return yn_failures ? 1 : 0;
}
