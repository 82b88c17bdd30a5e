/* int_reader.c — the real card-reader path end to end: the "libnfc" backend
 * (supervising parent + libnfc worker) through the real libnfc 1.8.0, a real
 * pty, and the emulated PN532 (build/…/yinian-pn532-emu) holding signed cards.
 *
 * Genuine DESFire and Classic cards: poll, read the record (and verify its
 * Ed25519 signature with firmware/core/card), write the stamp, read it back. Then
 * every misbehaviour of the emulator gives the right status and the next
 * operation works again: a clone (wrong key) is YN_EAUTH, a silent reader is
 * YN_ETIMEDOUT within its budget (measured), a card pulled during a write
 * leaves the old stamp, a status byte with bit 0x80 kills the worker (libnfc
 * abort()s) and the terminal carries on after the restart (measured).
 *
 * Env: BUILD (the build directory), TMPDIR (fresh). Exit 0 = pass. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "an10922.h"
#include "card.h"
#include "check.h"
#include "config.h"
#include "hex.h"
#include "log.h"
#include "nfc.h"
#include "testutil.h"

#define TIMEOUT_MS 200 /* [reader] timeout_ms for this test */

static char dir[PATH_MAX], link_path[PATH_MAX + 16], ctl_path[PATH_MAX + 16],
    cards_path[PATH_MAX + 16], log_path[PATH_MAX + 16];
static pid_t emu_pid;
static int ctl_fd = -1;

/* --- cards ------------------------------------------------------------- */

static const uint8_t district_master[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                            0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF};
static const uint8_t issuer_seed[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60};
static const uint8_t df_uid[7] = {0x04, 0x5A, 0x1E, 0x22, 0x91, 0x3C, 0x80};
static const uint8_t mfc_uid[4] = {0xC4, 0x17, 0x9A, 0x2B};

struct card_fixture {
    uint8_t key[16];
    uint8_t record[YN_CARD_RECORD_MAX];
    size_t record_len;
};
static struct card_fixture df_card, mfc_card;
static yn_card_keyring ring;

static void make_fixture(struct card_fixture *c, const uint8_t *uid, size_t uid_len,
                         const char *card_no)
{
    yn_card_record rec = {.format_version = YN_CARD_FORMAT_V1,
                          .key_version = 1,
                          .birth_ymd = 19460315,
                          .flags = YN_FLAG_DIBAO,
                          .district = 440304,
                          .street = 440304001,
                          .issue_ymd = 20250101,
                          .expiry_ymd = 20301231};
    snprintf(rec.card_no, sizeof rec.card_no, "%s", card_no);
    const char *why = NULL;
    if (yn_card_key_for_uid(district_master, uid, uid_len, c->key) != YN_OK ||
        yn_card_encode_signed(&rec, uid, uid_len, issuer_seed, c->record, sizeof c->record,
                              &c->record_len, &why) != YN_OK) {
        fprintf(stderr, "fixture: cannot sign a record: %s\n", why ? why : "?");
        exit(1);
    }
}

/* The virtual card file: index = line among cards. */
enum {
    C_DF,
    C_MFC,
    C_DF_CLONE,
    C_MFC_CLONE,
    C_DF_TAMPERED,
    C_DF_BLANK,
    C_MFC_DEFAULT,
    C_DF_FACTORY,
    C_MFC_FACTORY,
    C_DF_FOREIGN
};

static void write_cards(void)
{
    uint8_t pub[32];
    make_fixture(&df_card, df_uid, sizeof df_uid, "GD4403040001");
    make_fixture(&mfc_card, mfc_uid, sizeof mfc_uid, "GD4403040002");
    if (yn_card_public_key(issuer_seed, pub) != YN_OK ||
        yn_card_keyring_add(&ring, 1, pub) != YN_OK)
        exit(1);
    char u1[32], u2[32], k1[40], k2[40], r1[600], r2[600], rt[600], kc[40], kz[40];
    yn_hex_encode(df_uid, sizeof df_uid, u1);
    yn_hex_encode(mfc_uid, sizeof mfc_uid, u2);
    yn_hex_encode(df_card.key, 16, k1);
    yn_hex_encode(mfc_card.key, 16, k2);
    yn_hex_encode(df_card.record, df_card.record_len, r1);
    yn_hex_encode(mfc_card.record, mfc_card.record_len, r2);
    uint8_t tampered[YN_CARD_RECORD_MAX], clone_key[16];
    memcpy(tampered, df_card.record, df_card.record_len);
    tampered[31] ^= 0x01; /* category flag 特困: what a cheat would add */
    yn_hex_encode(tampered, df_card.record_len, rt);
    memcpy(clone_key, df_card.key, 16);
    clone_key[0] ^= 0x80; /* a clone: everything copied but the key it cannot read out */
    yn_hex_encode(clone_key, 16, kc);
    memcpy(clone_key, mfc_card.key, 16);
    clone_key[3] ^= 0x01;
    yn_hex_encode(clone_key, 16, kz);
    char text[8192];
    snprintf(text, sizeof text,
             "# int_reader virtual cards\n"
             "genuine DESFire|desfire|%s|%s|%s|\n"
             "genuine Classic|classic1k|%s|%s|%s|\n"
             "DESFire clone|desfire|%s|%s|%s|\n"
             "Classic clone|classic1k|%s|%s|%s|\n"
             "tampered DESFire|desfire|%s|%s|%s|\n"
             "blank DESFire|desfire|04000000000001|%s||\n"
             "transport Classic|classic1k|01020304|ffffffffffffffffffffffff00000000|%s|\n"
             "factory DESFire|desfire-blank|04f00000000007|||\n"
             "factory Classic|classic1k-blank|f0000008|||\n"
             "transit DESFire|desfire-foreign|04f00000000009|||\n",
             u1, k1, r1, u2, k2, r2, u1, kc, r1, u2, kz, r2, u1, k1, rt, k1, r2);
    char path[PATH_MAX + 16];
    yn_test_write(dir, "cards.txt", text, 0600, path, sizeof path);
    snprintf(cards_path, sizeof cards_path, "%s", path);
}

/* --- the emulator ------------------------------------------------------ */

static void emu_start(void)
{
    const char *build = getenv("BUILD");
    char emu[PATH_MAX];
    snprintf(emu, sizeof emu, "%s/yinian-pn532-emu", build && *build ? build : "build/host");
    emu_pid = fork();
    if (emu_pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(emu, emu, "--link", link_path, "--cards", cards_path, "--control", ctl_path,
              (char *)NULL);
        perror(emu);
        _exit(127);
    }
    for (int i = 0; i < 500 && access(link_path, F_OK) != 0; i++)
        yn_test_sleep_ms(10);
    if (access(link_path, F_OK) != 0) {
        fprintf(stderr, "emulator did not come up (%s)\n", emu);
        exit(1);
    }
    ctl_fd = open(ctl_path, O_WRONLY | O_CLOEXEC);
    if (ctl_fd < 0) {
        perror(ctl_path);
        exit(1);
    }
}

/* A control command; the emulator reads control before the reader's next frame. */
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

static void emu_stop(void)
{
    emu("quit");
    int status;
    for (int i = 0; i < 200 && waitpid(emu_pid, &status, WNOHANG) == 0; i++)
        yn_test_sleep_ms(10);
    kill(emu_pid, SIGKILL);
    waitpid(emu_pid, &status, 0);
}

/* Children of this process other than the emulator (the libnfc worker). */
static int workers(void)
{
    char path[300], buf[512];
    int n = 0;
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    for (struct dirent *de; (de = readdir(d));) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0 || pid == emu_pid)
            continue;
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        if (fgets(buf, sizeof buf, f)) {
            const char *rp = strrchr(buf, ')');
            int ppid = 0;
            char state;
            if (rp && sscanf(rp + 2, "%c %d", &state, &ppid) == 2 && ppid == getpid() &&
                state != 'Z')
                n++;
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

/* --- helpers ----------------------------------------------------------- */

static yn_nfc dev;
static yn_nfc_tag tag;

static int tap(int card)
{
    emu("present %d", card);
    return yn_nfc_poll(&dev, 0, &tag);
}

static int read_area(enum yn_nfc_area area, const uint8_t *key, uint8_t *buf, size_t *len)
{
    return yn_nfc_read(&dev, &tag, area, key, buf, YN_CARD_RECORD_MAX + 32, len);
}

static void make_stamp(int32_t ymd, const char *period, uint64_t seq, uint8_t out[16])
{
    yn_card_stamp st;
    const char *why = NULL;
    if (yn_card_stamp_make(ymd, period, 1203, seq, &st) != YN_OK ||
        yn_card_stamp_encode(&st, out, &why) != YN_OK) {
        fprintf(stderr, "cannot make a stamp\n");
        exit(1);
    }
}

/* The terminal still works: a full read of the genuine DESFire card. */
static void still_works(const char *after)
{
    uint8_t buf[YN_CARD_RECORD_MAX + 32];
    size_t len = 0;
    int rc = tap(C_DF);
    if (rc == YN_OK)
        rc = read_area(YN_NFC_AREA_RECORD, df_card.key, buf, &len);
    CHECK(rc == YN_OK && len == df_card.record_len, "after %s the next tap fails: %s", after,
          yn_strerror(rc));
}

/* --- the tests --------------------------------------------------------- */

static void test_open_and_describe(void)
{
    char what[256] = "";
    CHECK_RC(yn_nfc_describe(&dev, what, sizeof what), YN_OK);
    CHECK(strstr(what, "PN532 v1.6") && strstr(what, "libnfc 1.8"), "describe: %s", what);
    printf("reader: %s\n", what);
    CHECK(workers() == 1, "one libnfc worker, found %d", workers());
}

static void test_no_card(void)
{
    emu("remove");
    CHECK_RC(yn_nfc_poll(&dev, 0, &tag), YN_ENOCARD);
    int64_t t0 = yn_test_now_ms();
    CHECK_RC(yn_nfc_poll(&dev, 150, &tag), YN_ENOCARD);
    int64_t took = yn_test_now_ms() - t0;
    CHECK(took >= 140 && took < 1000, "poll(150 ms) with no card took %lld ms", (long long)took);
}

static void test_genuine_desfire(void)
{
    uint8_t buf[YN_CARD_RECORD_MAX + 32], stamp[16];
    size_t len = 0;
    CHECK_RC(tap(C_DF), YN_OK);
    CHECK(tag.type == YN_TAG_DESFIRE, "type %s", yn_tag_type_name(tag.type));
    CHECK(tag.uid_len == 7 && memcmp(tag.uid, df_uid, 7) == 0, "uid");
    CHECK_RC(read_area(YN_NFC_AREA_RECORD, df_card.key, buf, &len), YN_OK);
    CHECK(len == df_card.record_len && memcmp(buf, df_card.record, len) == 0, "record: %zu bytes",
          len);
    yn_card_record rec;
    const char *why = NULL;
    CHECK_RC(yn_card_read(buf, len, tag.uid, tag.uid_len, &ring, &rec, &why), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_STAMP, df_card.key, buf, &len), YN_OK);
    CHECK(len == 16, "blank stamp is 16 bytes, got %zu", len);
    yn_card_stamp st;
    CHECK_RC(yn_card_stamp_decode(buf, len, &st, &why), YN_OK);
    CHECK(yn_card_stamp_is_blank(&st), "new card: blank stamp");
    make_stamp(20250314, "lunch", 0x1234, stamp);
    CHECK_RC(yn_nfc_write(&dev, &tag, YN_NFC_AREA_STAMP, df_card.key, stamp, 16), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_STAMP, df_card.key, buf, &len), YN_OK);
    CHECK(len == 16 && memcmp(buf, stamp, 16) == 0, "stamp read back");
    /* a later tap (new session) sees it too */
    CHECK_RC(tap(C_DF), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_STAMP, df_card.key, buf, &len), YN_OK);
    CHECK(len == 16 && memcmp(buf, stamp, 16) == 0, "stamp after a new tap");
    CHECK(yn_card_stamp_decode(buf, len, &st, &why) == YN_OK &&
              yn_card_stamp_blocks(&st, 20250314, "lunch"),
          "a second lunch is blocked by the stamp");
    /* terminals cannot rewrite the issuer's record (key 0 only) */
    CHECK_RC(yn_nfc_write(&dev, &tag, YN_NFC_AREA_RECORD, df_card.key, df_card.record, 16),
             YN_EPERM);
    CHECK_RC(yn_nfc_write(&dev, &tag, YN_NFC_AREA_STAMP, df_card.key, buf, 17), YN_ELIMIT);
    CHECK_RC(yn_nfc_release(&dev), YN_OK);
}

static void test_genuine_classic(void)
{
    uint8_t buf[YN_CARD_RECORD_MAX + 32], stamp[16];
    size_t len = 0;
    CHECK_RC(tap(C_MFC), YN_OK);
    CHECK(tag.type == YN_TAG_CLASSIC_1K, "type %s", yn_tag_type_name(tag.type));
    CHECK(tag.uid_len == 4 && memcmp(tag.uid, mfc_uid, 4) == 0, "uid");
    CHECK_RC(read_area(YN_NFC_AREA_RECORD, mfc_card.key, buf, &len), YN_OK);
    CHECK(len == mfc_card.record_len && memcmp(buf, mfc_card.record, len) == 0,
          "record trimmed to %zu bytes, got %zu", mfc_card.record_len, len);
    yn_card_record rec;
    const char *why = NULL;
    CHECK_RC(yn_card_read(buf, len, tag.uid, tag.uid_len, &ring, &rec, &why), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_STAMP, mfc_card.key, buf, &len), YN_OK);
    CHECK(len == 32, "Classic stamp area = primary ‖ copy, got %zu", len);
    yn_card_stamp st;
    CHECK(yn_card_stamp_decode(buf, len, &st, &why) == YN_OK && yn_card_stamp_is_blank(&st),
          "blank Classic stamp");
    make_stamp(20250314, "dinner", 0x99, stamp);
    CHECK_RC(yn_nfc_write(&dev, &tag, YN_NFC_AREA_STAMP, mfc_card.key, stamp, 16), YN_OK);
    CHECK_RC(tap(C_MFC), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_STAMP, mfc_card.key, buf, &len), YN_OK);
    CHECK(len == 32 && memcmp(buf, stamp, 16) == 0 && memcmp(buf + 16, stamp, 16) == 0,
          "Classic stamp read back in both blocks");
}

static void test_clones_and_tampering(void)
{
    uint8_t buf[YN_CARD_RECORD_MAX + 32];
    size_t len = 0;
    CHECK_RC(tap(C_DF_CLONE), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_RECORD, df_card.key, buf, &len), YN_EAUTH);
    CHECK_RC(tap(C_MFC_CLONE), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_RECORD, mfc_card.key, buf, &len), YN_EAUTH);
    still_works("a clone");
    /* tampered record: the reader moves the bytes, the signature refuses them */
    CHECK_RC(tap(C_DF_TAMPERED), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_RECORD, df_card.key, buf, &len), YN_OK);
    yn_card_record rec;
    const char *why = NULL;
    CHECK_RC(yn_card_read(buf, len, tag.uid, tag.uid_len, &ring, &rec, &why), YN_EAUTH);
    /* a DESFire without the 颐年卡 record file */
    CHECK_RC(tap(C_DF_BLANK), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_RECORD, df_card.key, buf, &len), YN_ENOTFOUND);
    still_works("a blank card");
}

/* One read of record and stamp; a card that is not a 颐年卡 says what it is. */
static void test_card_kinds(void)
{
    yn_nfc_card_data d;
    CHECK_RC(tap(C_DF), YN_OK);
    CHECK_RC(yn_nfc_read_card(&dev, &tag, df_card.key, 0, &d), YN_OK);
    CHECK(d.record_len == df_card.record_len && d.stamp_len == 16, "record %zu, stamp %zu",
          d.record_len, d.stamp_len);
    CHECK_RC(yn_nfc_read_card(&dev, &tag, df_card.key, YN_NFC_SKIP_RECORD, &d), YN_OK);
    CHECK(d.record_len == 0 && d.stamp_len == 16, "stamp only: record %zu", d.record_len);
    CHECK_RC(tap(C_MFC), YN_OK);
    CHECK_RC(yn_nfc_read_card(&dev, &tag, mfc_card.key, 0, &d), YN_OK);
    CHECK(d.record_len == mfc_card.record_len && d.stamp_len == 32, "Classic read_card");
    static const struct {
        int card, rc, kind;
    } cases[] = {
        {C_DF_FACTORY, YN_ENOTFOUND, YN_CARD_KIND_BLANK},
        {C_MFC_FACTORY, YN_EAUTH, YN_CARD_KIND_BLANK},
        {C_DF_FOREIGN, YN_ENOTFOUND, YN_CARD_KIND_OTHER_APP},
        {C_MFC_CLONE, YN_EAUTH, YN_CARD_KIND_FOREIGN},
        {C_DF_CLONE, YN_EAUTH, YN_CARD_KIND_OURS}, /* our application, not our key: a clone */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_RC(tap(cases[i].card), YN_OK);
        const uint8_t *key = tag.type == YN_TAG_DESFIRE ? df_card.key : mfc_card.key;
        int rc = yn_nfc_read_card(&dev, &tag, key, 0, &d);
        CHECK(rc == cases[i].rc && d.kind == cases[i].kind, "card %d: %s, kind %s", cases[i].card,
              yn_strerror(rc), yn_card_kind_name((enum yn_nfc_card_kind)d.kind));
    }
    still_works("cards that are not ours");
}

/* fault tear N before|after, counted in card commands from the next one:
 * the stamp write is WriteData (1) then CommitTransaction (2). */
static void test_tear(void)
{
    uint8_t buf[YN_CARD_RECORD_MAX + 32], s1[16], s2[16];
    size_t len = 0;
    yn_nfc_card_data d;
    make_stamp(20250401, "lunch", 0x4001, s1);
    make_stamp(20250402, "lunch", 0x4002, s2);
    static const struct {
        const char *fault;
        bool takes; /* the new stamp stands afterwards */
    } cases[] = {
        {"tear 2 after", true},   /* the commit takes effect, its answer is lost */
        {"tear 2 before", false}, /* the card leaves before CommitTransaction reaches it */
        {"tear 1 before", false}, /* ... before the WriteData itself */
    };
    CHECK_RC(tap(C_DF), YN_OK);
    CHECK_RC(yn_nfc_read_card(&dev, &tag, df_card.key, 0, &d), YN_OK);
    const uint8_t *now = d.stamp;
    uint8_t before[16];
    memcpy(before, now, 16);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const uint8_t *next = i % 2 ? s2 : s1;
        emu("fault %s", cases[i].fault);
        CHECK_RC(yn_nfc_write(&dev, &tag, YN_NFC_AREA_STAMP, df_card.key, next, 16), YN_ECARDGONE);
        CHECK_RC(tap(C_DF), YN_OK);
        CHECK_RC(read_area(YN_NFC_AREA_STAMP, df_card.key, buf, &len), YN_OK);
        CHECK(len == 16 && memcmp(buf, cases[i].takes ? next : before, 16) == 0,
              "%s: the %s stamp stands", cases[i].fault, cases[i].takes ? "new" : "old");
        memcpy(before, buf, 16);
    }
    still_works("tears");
}

/* The PN532's UART rate: the worker switches it (SetSerialBaudRate), a new
 * worker finds it there, a power cycle brings it back to 115200; the RF rate
 * goes to 424 kbit/s by InPSL for DESFire, Classic stays at 106. */
static void test_rates(void)
{
    yn_config cfg;
    yn_nfc fast;
    char what[256] = "";
    uint8_t buf[YN_CARD_RECORD_MAX + 32];
    size_t len = 0;
    yn_config_defaults(&cfg);
    snprintf(cfg.reader.backend, sizeof cfg.reader.backend, "libnfc");
    if (snprintf(cfg.reader.connstring, sizeof cfg.reader.connstring, "pn532_uart:%s:460800",
                 link_path) >= (int)sizeof cfg.reader.connstring)
        return;
    cfg.reader.timeout_ms = TIMEOUT_MS;
    cfg.reader.rf_kbps = 424;
    for (int round = 0; round < 3; round++) {
        if (round == 2)
            emu("power-cycle");
        CHECK_RC(yn_nfc_open(&fast, &cfg.reader), YN_OK);
        CHECK_RC(yn_nfc_describe(&fast, what, sizeof what), YN_OK);
        bool switched = strstr(what, "switched from 115200") != NULL;
        CHECK(switched == (round != 1), "round %d: %s", round, what);
        emu("present %d", C_DF);
        CHECK_RC(yn_nfc_poll(&fast, 0, &tag), YN_OK);
        CHECK_RC(yn_nfc_read(&fast, &tag, YN_NFC_AREA_RECORD, df_card.key, buf, sizeof buf, &len),
                 YN_OK);
        emu("present %d", C_MFC);
        CHECK_RC(yn_nfc_poll(&fast, 0, &tag), YN_OK);
        CHECK_RC(yn_nfc_read(&fast, &tag, YN_NFC_AREA_RECORD, mfc_card.key, buf, sizeof buf, &len),
                 YN_OK);
        yn_nfc_close(&fast);
    }
    char log[65536] = "";
    FILE *f = fopen(log_path, "r");
    size_t n = f ? fread(log, 1, sizeof log - 1, f) : 0;
    log[n] = '\0';
    if (f)
        fclose(f);
    CHECK(strstr(log, "pn532-emu: baud 460800") && strstr(log, "pn532-emu: rf 424 kbit/s"),
          "the emulator saw SetSerialBaudRate and InPSL");
}

static void test_faults(void)
{
    uint8_t buf[YN_CARD_RECORD_MAX + 32];
    size_t len = 0;
    static const struct {
        const char *fault;
        int want;
    } cases[] = {
        {"badcrc", YN_EPROTO}, {"short", YN_EPROTO},        {"garbage", YN_EPROTO},
        {"slow 50", YN_OK},    {"slow 1500", YN_ETIMEDOUT}, {"silent", YN_ETIMEDOUT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CHECK_RC(tap(C_DF), YN_OK);
        emu("fault %s", cases[i].fault);
        int rc = read_area(YN_NFC_AREA_RECORD, df_card.key, buf, &len);
        CHECK(rc == cases[i].want, "fault %s: %s, want %s", cases[i].fault, yn_strerror(rc),
              yn_strerror(cases[i].want));
        still_works(cases[i].fault);
        /* the same on a Classic card */
        CHECK_RC(tap(C_MFC), YN_OK);
        emu("fault %s", cases[i].fault);
        rc = read_area(YN_NFC_AREA_RECORD, mfc_card.key, buf, &len);
        CHECK(rc == cases[i].want, "Classic, fault %s: %s, want %s", cases[i].fault,
              yn_strerror(rc), yn_strerror(cases[i].want));
        still_works(cases[i].fault);
    }
    /* the reader goes silent while the card is being listed */
    emu("fault silent");
    CHECK_RC(yn_nfc_poll(&dev, 0, &tag), YN_ETIMEDOUT);
    still_works("a silent poll");
    /* the card leaves between two operations */
    CHECK_RC(tap(C_DF), YN_OK);
    emu("remove");
    CHECK_RC(read_area(YN_NFC_AREA_RECORD, df_card.key, buf, &len), YN_ECARDGONE);
    still_works("a removed card");
}

static void test_silent_budget(void)
{
    uint8_t buf[YN_CARD_RECORD_MAX + 32];
    size_t len = 0;
    CHECK_RC(tap(C_DF), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_RECORD, df_card.key, buf, &len), YN_OK);
    emu("fault silent");
    int64_t t0 = yn_test_now_ms();
    CHECK_RC(read_area(YN_NFC_AREA_STAMP, df_card.key, buf, &len), YN_ETIMEDOUT);
    int64_t took = yn_test_now_ms() - t0;
    int budget = 4 * TIMEOUT_MS + 800; /* hal/nfc/nfc_libnfc.c op_budget_ms */
    CHECK(took >= TIMEOUT_MS && took <= budget, "silent: %lld ms, budget %d ms", (long long)took,
          budget);
    printf("MEASURE silent_timeout_ms %lld (timeout_ms %d, budget %d)\n", (long long)took,
           TIMEOUT_MS, budget);
    still_works("the silent budget test");
}

static void test_pull_on_write(void)
{
    uint8_t buf[YN_CARD_RECORD_MAX + 32], old_stamp[16], new_stamp[16];
    size_t len = 0;
    yn_card_stamp st;
    const char *why = NULL;
    /* DESFire: the card leaves after WriteData, before CommitTransaction */
    CHECK_RC(tap(C_DF), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_STAMP, df_card.key, old_stamp, &len), YN_OK);
    make_stamp(20250315, "lunch", 0x1235, new_stamp);
    emu("fault pull-on-write");
    CHECK_RC(yn_nfc_write(&dev, &tag, YN_NFC_AREA_STAMP, df_card.key, new_stamp, 16), YN_ECARDGONE);
    CHECK_RC(yn_nfc_poll(&dev, 0, &tag), YN_ENOCARD);
    CHECK_RC(tap(C_DF), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_STAMP, df_card.key, buf, &len), YN_OK);
    CHECK(len == 16 && memcmp(buf, old_stamp, 16) == 0, "DESFire: the old stamp stands");

    /* Classic: the copy block is torn, the primary keeps the old stamp */
    CHECK_RC(tap(C_MFC), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_STAMP, mfc_card.key, buf, &len), YN_OK);
    memcpy(old_stamp, buf, 16);
    emu("fault pull-on-write");
    CHECK_RC(yn_nfc_write(&dev, &tag, YN_NFC_AREA_STAMP, mfc_card.key, new_stamp, 16),
             YN_ECARDGONE);
    CHECK_RC(tap(C_MFC), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_STAMP, mfc_card.key, buf, &len), YN_OK);
    CHECK(len == 32 && memcmp(buf, old_stamp, 16) == 0 && memcmp(buf + 16, old_stamp, 16) != 0,
          "Classic: primary old, copy torn");
    CHECK_RC(yn_card_stamp_decode(buf, len, &st, &why), YN_OK);
    yn_card_stamp old;
    CHECK(yn_card_stamp_decode(old_stamp, 16, &old, &why) == YN_OK && st.date_ymd == old.date_ymd &&
              st.seq == old.seq,
          "Classic: the firmware reads the old stamp from the torn pair");
    /* and a complete write afterwards */
    CHECK_RC(yn_nfc_write(&dev, &tag, YN_NFC_AREA_STAMP, mfc_card.key, new_stamp, 16), YN_OK);
    CHECK_RC(read_area(YN_NFC_AREA_STAMP, mfc_card.key, buf, &len), YN_OK);
    CHECK(len == 32 && memcmp(buf, new_stamp, 16) == 0, "Classic: new stamp after a full write");
}

static void test_worker_death_and_overrun(void)
{
    uint8_t buf[YN_CARD_RECORD_MAX + 32];
    size_t len = 0;
    for (int round = 0; round < 3; round++) {
        CHECK_RC(tap(round == 1 ? C_MFC : C_DF), YN_OK);
        emu("fault status80");
        int64_t t0 = yn_test_now_ms();
        int rc = read_area(YN_NFC_AREA_RECORD, round == 1 ? mfc_card.key : df_card.key, buf, &len);
        int64_t took = yn_test_now_ms() - t0;
        CHECK(rc == YN_EIO, "status80: %s, want %s", yn_strerror(rc), yn_strerror(YN_EIO));
        printf("MEASURE status80_abort_and_restart_ms %lld\n", (long long)took);
        CHECK(workers() == 1, "after the restart: one worker, found %d", workers());
        /* the next poll works straight away: the worker was restarted at once */
        CHECK_RC(yn_nfc_poll(&dev, 0, &tag), YN_OK);
        still_works("status80");
    }
    char what[256] = "";
    CHECK_RC(yn_nfc_describe(&dev, what, sizeof what), YN_OK);
    CHECK(strstr(what, "restarted 3 times") != NULL, "describe counts restarts: %s", what);
    /* the overrun below must be a kill by the parent, not a libnfc timeout */

    /* a reader trickling its answer byte by byte never times libnfc out: the
     * parent's budget does, and it kills the worker */
    CHECK_RC(tap(C_DF), YN_OK);
    emu("fault dribble %d", TIMEOUT_MS / 4); /* well inside libnfc's per-byte timeout */
    int64_t t0 = yn_test_now_ms();
    CHECK_RC(read_area(YN_NFC_AREA_RECORD, df_card.key, buf, &len), YN_ETIMEDOUT);
    int64_t took = yn_test_now_ms() - t0;
    emu("fault none"); /* dribble lasts until cleared */
    int budget = 4 * TIMEOUT_MS + 800;
    CHECK(took >= budget && took < budget + 2000, "overrun: %lld ms, budget %d ms", (long long)took,
          budget);
    printf("MEASURE overrun_kill_and_restart_ms %lld (budget %d)\n", (long long)took, budget);
    CHECK_RC(yn_nfc_describe(&dev, what, sizeof what), YN_OK);
    CHECK(strstr(what, "restarted 4 times") != NULL, "the overrun killed the worker: %s", what);
    still_works("an overrun");
}

static void test_reader_unplugged(void)
{
    uint8_t buf[YN_CARD_RECORD_MAX + 32];
    size_t len = 0;
    CHECK_RC(tap(C_DF), YN_OK);
    emu("unplug");
    int rc = read_area(YN_NFC_AREA_RECORD, df_card.key, buf, &len);
    CHECK(rc == YN_ENODEV, "unplugged: %s", yn_strerror(rc));
    int64_t t0 = yn_test_now_ms();
    CHECK_RC(yn_nfc_poll(&dev, 0, &tag), YN_ENODEV);
    CHECK(yn_test_now_ms() - t0 < 100, "while the reader is gone, polls fail fast");
    emu("plug");
    yn_test_sleep_ms(1100); /* the backend waits 1 s before it opens the reader again */
    still_works("the reader came back");
}

static void test_open_missing_reader(void)
{
    yn_config cfg;
    yn_nfc other;
    yn_config_defaults(&cfg);
    snprintf(cfg.reader.backend, sizeof cfg.reader.backend, "libnfc");
    if (snprintf(cfg.reader.connstring, sizeof cfg.reader.connstring, "pn532_uart:%s/none", dir) >=
        (int)sizeof cfg.reader.connstring)
        return;
    int64_t t0 = yn_test_now_ms();
    CHECK_RC(yn_nfc_open(&other, &cfg.reader), YN_ENODEV);
    CHECK(yn_test_now_ms() - t0 < 1000, "a missing reader is reported at once");
    CHECK(workers() == 1, "no worker left behind by a failed open, found %d", workers());
}

/* The issuing desk's ops on factory-blank cards: format, issue as the issuer,
 * the terminal's key reads the record but cannot write it, a second format is
 * refused, a forced one works. */
static void test_issuing_desk(void)
{
    static const uint8_t sysid_k0[13] = {'Y', 'I', 'N', 'I', 'A', 'N', '-',
                                         'P', 'O', 'S', '-', 'K', '0'};
    for (int card = C_DF_FACTORY; card <= C_MFC_FACTORY; card++) {
        uint8_t buf[YN_CARD_RECORD_MAX + 32], record[YN_CARD_RECORD_MAX];
        size_t len = 0, record_len = 0;
        yn_nfc_issue_keys keys = {.key_version = 1};
        const char *why = NULL;
        CHECK_RC(tap(card), YN_OK);
        CHECK(yn_card_key_for_uid(district_master, tag.uid, tag.uid_len, keys.card_key) == YN_OK &&
                  yn_an10922_diversify(district_master, tag.uid, tag.uid_len, yn_card_aid,
                                       YN_CARD_AID_LEN, sysid_k0, sizeof sysid_k0,
                                       keys.issuer_key) == YN_OK,
              "keys");
        yn_card_record rec = {.format_version = YN_CARD_FORMAT_V1,
                              .key_version = 1,
                              .birth_ymd = 19400101,
                              .district = 440304,
                              .street = 440304001,
                              .issue_ymd = 20250101,
                              .expiry_ymd = 20301231};
        snprintf(rec.card_no, sizeof rec.card_no, "GD-FACTORY-%c", '0' + card % 10);
        CHECK(yn_card_encode_signed(&rec, tag.uid, tag.uid_len, issuer_seed, record, sizeof record,
                                    &record_len, &why) == YN_OK,
              "sign: %s", why ? why : "?");
        /* blank: nothing a terminal can read, nothing to issue onto */
        CHECK_RC(read_area(YN_NFC_AREA_RECORD, keys.card_key, buf, &len),
                 card == C_DF_FACTORY ? YN_ENOTFOUND : YN_EAUTH);
        CHECK_RC(tap(card), YN_OK);
        CHECK_RC(yn_nfc_issue(&dev, &tag, &keys, record, record_len),
                 card == C_DF_FACTORY ? YN_ENOTFOUND : YN_EAUTH);
        CHECK_RC(tap(card), YN_OK);
        CHECK_RC(yn_nfc_format(&dev, &tag, &keys, record_len, 0), YN_OK);
        CHECK_RC(yn_nfc_issue(&dev, &tag, &keys, record, record_len), YN_OK);
        CHECK_RC(read_area(YN_NFC_AREA_RECORD, keys.card_key, buf, &len), YN_OK);
        yn_card_record back;
        CHECK(len == record_len &&
                  yn_card_read(buf, len, tag.uid, tag.uid_len, &ring, &back, &why) == YN_OK,
              "issued record reads back genuine");
        CHECK_RC(read_area(YN_NFC_AREA_STAMP, keys.card_key, buf, &len), YN_OK);
        if (card == C_DF_FACTORY) {
            /* the terminal's key 1 cannot write the record: only key 0 can */
            CHECK_RC(
                yn_nfc_write(&dev, &tag, YN_NFC_AREA_RECORD, keys.card_key, record, record_len),
                YN_EPERM);
            /* nor can the terminal's key pose as the issuer's */
            yn_nfc_issue_keys forged = keys;
            memcpy(forged.issuer_key, keys.card_key, 16);
            CHECK_RC(yn_nfc_issue(&dev, &tag, &forged, record, record_len), YN_EAUTH);
        }
        /* the terminal's ordinary stamp write works on the new card */
        uint8_t stamp[16];
        make_stamp(20250314, "lunch", 7, stamp);
        CHECK_RC(tap(card), YN_OK);
        CHECK_RC(yn_nfc_write(&dev, &tag, YN_NFC_AREA_STAMP, keys.card_key, stamp, 16), YN_OK);
        /* formatted: refused without force, redone with it */
        CHECK_RC(yn_nfc_format(&dev, &tag, &keys, record_len, 0), YN_EDUPLICATE);
        CHECK_RC(tap(card), YN_OK);
        CHECK_RC(yn_nfc_format(&dev, &tag, &keys, record_len, YN_NFC_FORCE), YN_OK);
        CHECK_RC(yn_nfc_issue(&dev, &tag, &keys, record, record_len), YN_OK);
        CHECK_RC(read_area(YN_NFC_AREA_STAMP, keys.card_key, buf, &len), YN_OK);
        CHECK(len >= 16 && memcmp(buf, (const uint8_t[16]){0}, 16) == 0, "issue wiped the stamp");
        CHECK_RC(yn_nfc_release(&dev), YN_OK);
    }
    still_works("the issuing desk");
}

static void test_close(void)
{
    yn_nfc_close(&dev);
    CHECK(workers() == 0, "close ends the worker, %d left", workers());
}

int main(void)
{
#if !WITH_LIBNFC
    printf("int_reader: skipped, built without the libnfc backend (make WITH_LIBNFC=1)\n");
    return 0;
#endif
    alarm(180); /* a hang is a failure */
    yn_log_init("int_reader", YN_LOG_WARN, false);
    yn_test_tmpdir(dir, sizeof dir);
    snprintf(link_path, sizeof link_path, "%s/pn532", dir);
    snprintf(ctl_path, sizeof ctl_path, "%s/pn532.ctl", dir);
    snprintf(log_path, sizeof log_path, "%s/emu.log", dir);
    write_cards();
    emu_start();

    yn_config cfg;
    yn_config_defaults(&cfg);
    snprintf(cfg.reader.backend, sizeof cfg.reader.backend, "libnfc");
    if (snprintf(cfg.reader.connstring, sizeof cfg.reader.connstring, "pn532_uart:%s", link_path) >=
        (int)sizeof cfg.reader.connstring) {
        fprintf(stderr, "TMPDIR too long for a connstring: %s\n", link_path);
        return 1;
    }
    cfg.reader.timeout_ms = TIMEOUT_MS;
    int rc = yn_nfc_open(&dev, &cfg.reader);
    CHECK(rc == YN_OK, "open: %s", yn_strerror(rc));
    if (rc == YN_OK) {
        test_open_and_describe();
        test_no_card();
        test_genuine_desfire();
        test_genuine_classic();
        test_clones_and_tampering();
        test_card_kinds();
        test_tear();
        test_faults();
        test_silent_budget();
        test_pull_on_write();
        test_worker_death_and_overrun();
        test_reader_unplugged();
        test_open_missing_reader();
        test_issuing_desk();
        test_close();
        test_rates();
    }
    emu_stop();
    if (yn_failures) {
        char cmd[PATH_MAX + 32];
        fprintf(stderr, "--- emulator log\n");
        snprintf(cmd, sizeof cmd, "tail -40 %s >&2", log_path);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
    }
    printf("int_reader: %d checks, %d failed\n", yn_checks, yn_failures);
    return yn_failures ? 1 : 0;
}
