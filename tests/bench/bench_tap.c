/* bench_tap.c — how long a tap takes through the real reader path: the
 * "libnfc" backend (parent + worker), libnfc 1.8.0, a pty, and the emulated
 * PN532 (yinian-pn532-emu) holding a genuine signed DESFire card.
 *
 * One tap = poll (card listing) + the card's AES key from the keystore
 * (AN10922) + SelectApplication + AES authentication + enciphered read of
 * the record + the issuer's Ed25519 signature check (firmware/card
 * yn_card_read) + enciphered read of the stamp + stamp write +
 * CommitTransaction. 1,000 taps, CLOCK_MONOTONIC; then 200 Classic taps.
 * The emulator answers at once, so this measures our code, libnfc and the pty
 * (a real PN532 adds RF time; NFC-NOTES.md timing anchors). Bar: p99 ≤ 150 ms.
 * The DESFire taps run twice: the keys in files ([keys] backend = file), then
 * in a SoftHSM2 token (backend = pkcs11, hal/KEYSTORE.md); and the card key
 * derivation alone with each.
 *
 * Prints BENCH tap_p50_ms / tap_p99_ms (DESFire, files), tap_pkcs11_p50_ms /
 * tap_pkcs11_p99_ms (token), card_key_{file,pkcs11}_p50_us / _p99_us, and the
 * Classic figures. */
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
#include "config.h"
#include "log.h"
#include "keystore.h"
#include "nfc.h"
#include "testkeys.h"
#include "testutil.h"

#define TAPS_DESFIRE 1000
#define TAPS_CLASSIC 200

static const uint8_t master[16] = {0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                   0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE, 0xFF};
static const uint8_t issuer_seed[32] = {
    0x4c, 0xcd, 0x08, 0x9b, 0x28, 0xff, 0x96, 0xda, 0x9d, 0xb6, 0xc3, 0x46, 0xec, 0x11, 0x4e, 0x0f,
    0x5b, 0x8a, 0x31, 0x9f, 0x35, 0xab, 0xa6, 0x24, 0xda, 0x8c, 0xf6, 0xed, 0x4f, 0xb8, 0xa6, 0xfb};
static const uint8_t df_uid[7] = {0x04, 0x31, 0x7C, 0x52, 0xA2, 0x64, 0x80};
static const uint8_t mfc_uid[4] = {0x7E, 0x21, 0x05, 0x9C};

struct fixture {
    uint8_t key[16];
    uint8_t record[YN_CARD_RECORD_MAX];
    size_t record_len;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = '\0';
}

static void make_fixture(struct fixture *f, const uint8_t *uid, size_t uid_len)
{
    yn_card_record rec = {.format_version = YN_CARD_FORMAT_V1,
                          .key_version = 1,
                          .birth_ymd = 19430704,
                          .flags = YN_FLAG_TEKUN,
                          .district = 440106,
                          .street = 440106012,
                          .issue_ymd = 20250201,
                          .expiry_ymd = 20291231};
    snprintf(rec.card_no, sizeof rec.card_no, "GZ440106-0042");
    const char *why = NULL;
    if (yn_card_key_for_uid(master, uid, uid_len, f->key) != YN_OK ||
        yn_card_encode_signed(&rec, uid, uid_len, issuer_seed, f->record, sizeof f->record,
                              &f->record_len, &why) != YN_OK) {
        fprintf(stderr, "bench_tap: cannot sign a record: %s\n", why ? why : "?");
        exit(1);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(double *v, int n, int pct)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (n * pct + 99) / 100 - 1;
    return v[i < 0 ? 0 : i];
}

/* One tap; returns its duration in ms, or -1 on failure. The card's key
 * comes from the keystore, as in a counter tap, and must be the fixture's. */
static double tap(yn_nfc *dev, yn_keystore *ks, const struct fixture *f,
                  const yn_card_keyring *ring, int n, enum yn_tag_type want)
{
    uint8_t buf[YN_CARD_RECORD_MAX + 32], stamp_bytes[16], key[16];
    size_t len = 0;
    yn_nfc_tag tag;
    yn_card_record rec;
    yn_card_stamp stamp;
    const char *why = NULL;
    double t0 = now_ms();
    int rc = yn_nfc_poll(dev, 0, &tag);
    if (rc == YN_OK && tag.type != want)
        rc = YN_EPROTO;
    if (rc == YN_OK)
        rc = yn_keystore_card_key(ks, tag.uid, tag.uid_len, key);
    if (rc == YN_OK && memcmp(key, f->key, sizeof key) != 0)
        rc = YN_EAUTH;
    if (rc == YN_OK)
        rc = yn_nfc_read(dev, &tag, YN_NFC_AREA_RECORD, key, buf, sizeof buf, &len);
    if (rc == YN_OK)
        rc = yn_card_read(buf, len, tag.uid, tag.uid_len, ring, &rec, &why);
    if (rc == YN_OK)
        rc = yn_nfc_read(dev, &tag, YN_NFC_AREA_STAMP, key, buf, sizeof buf, &len);
    if (rc == YN_OK)
        rc = yn_card_stamp_decode(buf, len, &stamp, &why);
    if (rc == YN_OK)
        rc = yn_card_stamp_make(20250314, n % 2 ? "lunch" : "dinner", 1203, (uint64_t)n, &stamp);
    if (rc == YN_OK)
        rc = yn_card_stamp_encode(&stamp, stamp_bytes, &why);
    if (rc == YN_OK)
        rc = yn_nfc_write(dev, &tag, YN_NFC_AREA_STAMP, key, stamp_bytes, sizeof stamp_bytes);
    double took = now_ms() - t0;
    explicit_bzero(key, sizeof key);
    if (rc != YN_OK) {
        fprintf(stderr, "bench_tap: tap %d failed: %s%s%s\n", n, yn_strerror(rc), why ? ": " : "",
                why ? why : "");
        return -1;
    }
    return took;
}

/* DESFire taps with the keys of ks; prints BENCH tap<name>_p50_ms, _p99_ms. */
static int desfire_taps(yn_nfc *dev, yn_keystore *ks, const struct fixture *df,
                        const yn_card_keyring *ring, const char *name)
{
    static double t[TAPS_DESFIRE];
    for (int i = 0; i < TAPS_DESFIRE; i++)
        if ((t[i] = tap(dev, ks, df, ring, i, YN_TAG_DESFIRE)) < 0)
            return 1;
    printf("BENCH tap%s_p50_ms %.2f ms\n", name, percentile(t, TAPS_DESFIRE, 50));
    printf("BENCH tap%s_p99_ms %.2f ms\n", name, percentile(t, TAPS_DESFIRE, 99));
    printf("BENCH tap%s_max_ms %.2f ms\n", name, percentile(t, TAPS_DESFIRE, 100));
    if (percentile(t, TAPS_DESFIRE, 99) > 150)
        fprintf(stderr, "bench_tap: DESFire%s p99 above the 150 ms bar\n", name);
    return 0;
}

/* The card key derivation alone: BENCH card_key_<name>_p50_us, _p99_us. */
static int derivations(yn_keystore *ks, const char *name)
{
    static double t[2000];
    for (int i = 0; i < 2000; i++) {
        uint8_t uid[7] = {0x04, 0x31, 0x7C, 0x52, (uint8_t)(i >> 8), (uint8_t)i, 0x80}, key[16];
        double t0 = now_ms();
        if (yn_keystore_card_key(ks, uid, sizeof uid, key) != YN_OK)
            return 1;
        t[i] = (now_ms() - t0) * 1000;
    }
    printf("BENCH card_key_%s_p50_us %.1f us\n", name, percentile(t, 2000, 50));
    printf("BENCH card_key_%s_p99_us %.1f us\n", name, percentile(t, 2000, 99));
    return 0;
}

int main(void)
{
#if !WITH_LIBNFC
    printf("bench_tap: skipped, built without the libnfc backend (make WITH_LIBNFC=1)\n");
    return 0;
#endif
    char dir[PATH_MAX], path[PATH_MAX + 32], link_path[PATH_MAX + 16], ctl[PATH_MAX + 16];
    yn_log_init("bench_tap", YN_LOG_WARN, false);
    yn_test_tmpdir(dir, sizeof dir);
    snprintf(link_path, sizeof link_path, "%s/pn532", dir);
    snprintf(ctl, sizeof ctl, "%s/pn532.ctl", dir);

    struct fixture df, mfc;
    yn_card_keyring ring = {0};
    uint8_t pub[32];
    make_fixture(&df, df_uid, sizeof df_uid);
    make_fixture(&mfc, mfc_uid, sizeof mfc_uid);
    if (yn_card_public_key(issuer_seed, pub) != YN_OK ||
        yn_card_keyring_add(&ring, 1, pub) != YN_OK)
        return 1;
    char u1[32], u2[32], k1[40], k2[40], r1[600], r2[600], text[4096];
    hex(df_uid, sizeof df_uid, u1);
    hex(mfc_uid, sizeof mfc_uid, u2);
    hex(df.key, 16, k1);
    hex(mfc.key, 16, k2);
    hex(df.record, df.record_len, r1);
    hex(mfc.record, mfc.record_len, r2);
    snprintf(text, sizeof text,
             "bench DESFire|desfire|%s|%s|%s|\nbench Classic|classic1k|%s|%s|%s|\n", u1, k1, r1, u2,
             k2, r2);
    yn_test_write(dir, "cards.txt", text, 0600, path, sizeof path);

    const char *build = getenv("BUILD");
    char emu[PATH_MAX];
    snprintf(emu, sizeof emu, "%s/yinian-pn532-emu", build && *build ? build : "build/host");
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 1);
        execl(emu, emu, "--link", link_path, "--cards", path, "--control", ctl, "--present", "0",
              (char *)NULL);
        perror(emu);
        _exit(127);
    }
    for (int i = 0; i < 500 && access(link_path, F_OK) != 0; i++)
        usleep(10000);

    yn_config cfg;
    yn_config_defaults(&cfg);
    snprintf(cfg.reader.backend, sizeof cfg.reader.backend, "libnfc");
    if (snprintf(cfg.reader.connstring, sizeof cfg.reader.connstring, "pn532_uart:%s", link_path) >=
        (int)sizeof cfg.reader.connstring) {
        fprintf(stderr, "bench_tap: TMPDIR too long\n");
        return 1;
    }
    /* the same master in key files and in a SoftHSM2 token */
    char file_dir[PATH_MAX + 8], token_dir[PATH_MAX + 8];
    snprintf(file_dir, sizeof file_dir, "%s/file", dir);
    snprintf(token_dir, sizeof token_dir, "%s/token", dir);
    mkdir(file_dir, 0700);
    mkdir(token_dir, 0700);
    yn_testkeys files, token;
    yn_testkeys_open_as(&files, "file", file_dir, master, NULL, 0);
    yn_testkeys_open_as(&token, "pkcs11", token_dir, master, NULL, 0);

    yn_nfc dev;
    int rc = yn_nfc_open(&dev, &cfg);
    int status = 0;
    if (rc == YN_OK) {
        static double t[TAPS_CLASSIC];
        status = desfire_taps(&dev, &files.ks, &df, &ring, "");
        if (status == 0)
            status = desfire_taps(&dev, &token.ks, &df, &ring, "_pkcs11");
        if (status == 0)
            status = derivations(&files.ks, "file");
        if (status == 0)
            status = derivations(&token.ks, "pkcs11");
        int fd = open(ctl, O_WRONLY);
        if (fd >= 0 && write(fd, "present 1\n", 10) == 10)
            usleep(5000);
        for (int i = 0; i < TAPS_CLASSIC && status == 0; i++)
            if ((t[i] = tap(&dev, &files.ks, &mfc, &ring, i, YN_TAG_CLASSIC_1K)) < 0)
                status = 1;
        if (status == 0) {
            printf("BENCH tap_classic_p50_ms %.2f ms\n", percentile(t, TAPS_CLASSIC, 50));
            printf("BENCH tap_classic_p99_ms %.2f ms\n", percentile(t, TAPS_CLASSIC, 99));
        }
        if (status == 0 && percentile(t, TAPS_CLASSIC, 99) > 150)
            fprintf(stderr, "bench_tap: Classic p99 above the 150 ms bar\n");
        yn_nfc_close(&dev); /* before the emulator quits: the worker powers the reader down */
        if (fd >= 0) {
            if (write(fd, "quit\n", 5) != 5)
                perror("control");
            close(fd);
        }
    } else {
        fprintf(stderr, "bench_tap: cannot open the emulated reader: %s\n", yn_strerror(rc));
        status = 1;
    }
    usleep(100000);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    yn_testkeys_close(&files);
    yn_testkeys_close(&token);
    return status;
}
