/* yinian-card — for issuing offices and technicians: make issuer keys, issue
 * (personalise) cards, read and verify them, wipe their stamp, issue test
 * cards in bulk from a CSV file, and enrol a card another issuer made (an
 * identity-only card, firmware/core/CARD.md §8): its identifier read through the
 * reader, written as the roster line the district imports.
 *
 * Cards are written either through a reader named in a board.conf (--config:
 * the libnfc backend and its PN532, or the emulated one), or as lines of a
 * virtual card file (--sim-out) for the simulated reader and the PN532
 * emulator.
 *
 * Exit codes: 0 done; 1 the card was refused or could not be read/written
 * (message says why); 2 bad command line or bad input file. */
#include <errno.h>
#include <getopt.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "an10922.h"
#include "card.h"
#include "config.h"
#include "hal.h"
#include "fileio.h"
#include "hex.h"
#include "ident.h"
#include "keystore.h"
#include "log.h"
#include "nfc.h"
#if WITH_SIM
#include "nfc_sim.h"
#endif

enum { EXIT_CARD = 1, EXIT_USAGE = 2 };

static void usage(FILE *to)
{
    fputs("usage:\n"
          "  yinian-card keygen [--key-version N] PRIVATE_OUT PUBLIC_OUT\n"
          "      new issuer Ed25519 key pair; the private file is written 0600, the public\n"
          "      key is appended to the key ring PUBLIC_OUT ('VV <hex>' lines)\n"
          "  yinian-card issue --master FILE --issuer FILE [--key-version N] --uid HEX\n"
          "      [--type desfire|classic1k] --card-no NO --birth YYYYMMDD [--flags a+b]\n"
          "      --district CODE --street CODE [--issued YYYYMMDD] --expiry YYYYMMDD\n"
          "      [--label TEXT] (--sim-out FILE | --config BOARD_CONF [--app-master FILE])\n"
          "      --config: the record is written as the issuer (DESFire key 0) and the stamp\n"
          "      wiped, on a card made by format\n"
          "  yinian-card read (--config BOARD_CONF | --cards FILE --index N)\n"
          "      --master FILE --issuer-pub FILE\n"
          "  yinian-card format (--config BOARD_CONF [--force] [--picc-key FILE\n"
          "      [--picc-key-type des|2k3des|3k3des|aes]] [--set-picc-key FILE]\n"
          "      [--app-master FILE] | --sim-out FILE --uid HEX [--type T] [--label TEXT])\n"
          "      --master FILE\n"
          "      reader: personalise a factory-blank card (DESFire: application F5594E, keys,\n"
          "      files; Classic: sector keys); a formatted card only with --force;\n"
          "      --picc-key: the card's PICC master key (default: the factory key, DES zero;\n"
          "      type from its length: 8 des, 16 aes, 24 3k3des, or --picc-key-type);\n"
          "      --set-picc-key: make the PICC master key this AES key (16 bytes)\n"
          "      --sim-out: add a formatted, unissued card line with its key\n"
          "  yinian-card enrol --config BOARD_CONF --master FILE --card-no NO --birth YYYYMMDD\n"
          "      [--flags a+b] --district CODE --street CODE --expiry YYYYMMDD [--out CSV]\n"
          "      an identity-only card (a card another issuer made, e.g. a city card): its\n"
          "      identifier (type A UID, or type B PUPI with [reader] type_b) bound to the\n"
          "      senior as a roster line for yinian-district import-cards:\n"
          "      card_no,birth_ymd,flags,district,street,expiry_ymd,ident — printed, or\n"
          "      appended to --out (a header line first when the file is new). Refused: a\n"
          "      颐年卡 (read it as itself), a random UID (08 ..., or another UID when the\n"
          "      card is activated again) and a blank identifier\n"
          "  yinian-card batch --master FILE --issuer FILE --sim-out FILE CSV\n"
          "      CSV header: label,uid,type,card_no,birth,flags,district,street,issued,expiry\n"
          "      (flags joined with '+', e.g. dibao+shidu; empty = none)\n"
          "exit: 0 done, 1 card refused or unreadable, 2 bad command line or input\n",
          to);
}

struct opts {
    const char *master, *issuer, *issuer_pub, *sim_out, *config, *cards, *label, *type, *out;
    const char *uid_hex;
    const char *app_master; /* DESFire key 0 master (default: master) */
    const char *picc_key;   /* DESFire PICC master key, optional (default: factory DES zero) */
    const char *picc_type;  /* its type, when its length does not tell */
    const char *new_picc;   /* format: the PICC master key becomes this AES key */
    bool force;
    int key_version, index;
    yn_card_record rec;
};

static int parse_ymd(const char *s, int32_t *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (strlen(s) != 8 || *end || v < 19000101 || v > 20991231)
        return YN_EINVAL;
    *out = (int32_t)v;
    return YN_OK;
}

static int parse_u32(const char *s, size_t digits, uint32_t *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (strlen(s) != digits || *end)
        return YN_EINVAL;
    *out = (uint32_t)v;
    return YN_OK;
}

static int parse_flags(const char *s, uint32_t *out)
{
    char buf[256];
    *out = 0;
    if (!*s)
        return YN_OK;
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *tok = strtok_r(buf, "+", &save); tok;
         tok = strtok_r(NULL, "+", &save)) {
        uint32_t bit = yn_flag_bit(tok);
        if (!bit)
            return YN_EINVAL;
        *out |= bit;
    }
    return YN_OK;
}

static int today_ymd(void)
{
    time_t now = time(NULL) + 8 * 3600; /* Asia/Shanghai */
    struct tm tm;
    gmtime_r(&now, &tm);
    return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

static int load_master(const char *path, uint8_t master[YN_CARD_MASTER_LEN])
{
    size_t n;
    int rc = yn_key_file_load(path, true, "card master key", master, YN_CARD_MASTER_LEN, &n);
    if (rc == YN_OK && n != YN_CARD_MASTER_LEN) {
        fprintf(stderr, "yinian-card: %s: the master key must be 16 bytes (32 hex digits)\n", path);
        rc = YN_EINVAL;
    }
    return rc;
}

static int load_issuer(const char *path, uint8_t priv[YN_CARD_PRIVKEY_LEN])
{
    size_t n;
    int rc = yn_key_file_load(path, true, "issuer private key", priv, YN_CARD_PRIVKEY_LEN, &n);
    if (rc == YN_OK && n != YN_CARD_PRIVKEY_LEN) {
        fprintf(stderr, "yinian-card: %s: an issuer private key is 32 bytes (64 hex digits)\n",
                path);
        rc = YN_EINVAL;
    }
    return rc;
}

/* Append one virtual card line (label|type|uid|key|record|stamp) to path. */
static int append_sim(const char *path, const char *label, const char *type, const uint8_t *uid,
                      size_t uid_len, const uint8_t key[16], const uint8_t *record,
                      size_t record_len)
{
    if (strchr(label, '|') || strchr(label, '\n') || strlen(label) >= 32) {
        fprintf(stderr, "yinian-card: label '%s' must be under 32 bytes without '|'\n", label);
        return YN_EINVAL;
    }
    FILE *f = fopen(path, "a");
    if (!f) {
        fprintf(stderr, "yinian-card: cannot open %s: %s\n", path, strerror(errno));
        return YN_EIO;
    }
    char u[2 * YN_CARD_UID_MAX + 1], k[33], r[2 * YN_CARD_RECORD_MAX + 1];
    yn_hex_encode(uid, uid_len, u);
    yn_hex_encode(key, 16, k);
    yn_hex_encode(record, record_len, r);
    fprintf(f, "%s|%s|%s|%s|%s|\n", label, type, u, k, r);
    return fclose(f) == 0 ? YN_OK : YN_EIO;
}

static int parse_uid(const char *s, uint8_t uid[YN_CARD_UID_MAX], size_t *len)
{
    if (!s || yn_hex_decode(s, uid, YN_CARD_UID_MAX, len) != YN_OK ||
        (*len != 4 && *len != 7 && *len != 10)) {
        fprintf(stderr, "yinian-card: --uid must be 4, 7 or 10 bytes of hex\n");
        return YN_EINVAL;
    }
    return YN_OK;
}

/* Open the reader of a board.conf and wait (up to 10 s) for a card. */
static int open_reader(const char *config, yn_config *cfg, yn_nfc *nfc, yn_nfc_tag *tag)
{
    yn_config_errors errs;
    int rc = yn_config_load(config, yn_hal_backend_ok, cfg, &errs);
    if (rc != YN_OK) {
        for (int i = 0; i < errs.count && i < YN_CONFIG_MAX_ERRORS; i++)
            fprintf(stderr, "%s\n", errs.msg[i]);
        return YN_ECONFIG;
    }
    if ((rc = yn_nfc_open(nfc, &cfg->reader)) != YN_OK)
        return rc;
    rc = YN_ENOCARD;
#if WITH_SIM
    if (nfc->ops == &yn_nfc_sim_ops && yn_nfc_sim_count(nfc) > 0)
        rc = yn_nfc_sim_present(nfc, 0); /* a sim reader has no hand to tap */
#endif
    for (int waited = 0; waited < 10000 && rc != YN_ENODEV; waited += 100) {
        rc = yn_nfc_poll(nfc, 100, tag);
        if (rc != YN_ENOCARD)
            break;
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
    if (rc == YN_ENOCARD)
        fprintf(stderr, "yinian-card: no card on the reader within 10 s\n");
    if (rc != YN_OK)
        yn_nfc_close(nfc);
    return rc;
}

static int cmd_keygen(int argc, char **argv, const struct opts *o)
{
    if (argc != 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    uint8_t priv[YN_CARD_PRIVKEY_LEN], pub[YN_CARD_PUBKEY_LEN];
    if (RAND_priv_bytes(priv, sizeof priv) != 1 || yn_card_public_key(priv, pub) != YN_OK) {
        fprintf(stderr, "yinian-card: cannot generate a key\n");
        return EXIT_CARD;
    }
    char text[2 * YN_CARD_PRIVKEY_LEN + 80], h[2 * YN_CARD_PRIVKEY_LEN + 1];
    yn_hex_encode(priv, sizeof priv, h);
    int n = snprintf(text, sizeof text, "# issuer private key, version %02x — keep secret\n%s\n",
                     o->key_version, h);
    explicit_bzero(priv, sizeof priv);
    int rc = yn_file_write_atomic(argv[0], text, (size_t)n, 0600);
    explicit_bzero(text, sizeof text);
    if (rc != YN_OK)
        return EXIT_CARD;
    FILE *f = fopen(argv[1], "a");
    yn_hex_encode(pub, sizeof pub, h);
    if (!f || fprintf(f, "%02x %s\n", o->key_version, h) < 0 || fclose(f) != 0) {
        fprintf(stderr, "yinian-card: cannot append to %s\n", argv[1]);
        return EXIT_CARD;
    }
    printf("issuer key version %02x: private %s, public %s\n", o->key_version, argv[0], argv[1]);
    return 0;
}

/* Key 0 of the DESFire application (firmware/core/CARD.md §5): AN10922 like the
 * card key, from the issuer's application master (--app-master, else the
 * district master) with its own system identifier, so key 0 ≠ key 1 even
 * from one master. */
static const uint8_t key0_sysid[13] = {'Y', 'I', 'N', 'I', 'A', 'N', '-',
                                       'P', 'O', 'S', '-', 'K', '0'};

/* Everything the issuing desk's HAL ops need for the card on the reader. */
static int issue_keys_for(const struct opts *o, const uint8_t master[16], const yn_nfc_tag *tag,
                          yn_nfc_issue_keys *k)
{
    uint8_t app_master[16];
    size_t n = 0;
    memset(k, 0, sizeof *k);
    k->key_version = (uint8_t)o->key_version;
    if (o->app_master && load_master(o->app_master, app_master) != YN_OK)
        return YN_EINVAL;
    if (!o->app_master)
        memcpy(app_master, master, sizeof app_master);
    int rc = yn_card_key_for_uid(master, tag->uid, tag->uid_len, k->card_key);
    if (rc == YN_OK)
        rc = yn_an10922_diversify(app_master, tag->uid, tag->uid_len, yn_card_aid, YN_CARD_AID_LEN,
                                  key0_sysid, sizeof key0_sysid, k->issuer_key);
    explicit_bzero(app_master, sizeof app_master);
    if (rc == YN_OK && o->picc_key) {
        rc = yn_key_file_load(o->picc_key, true, "PICC master key", k->picc_key, sizeof k->picc_key,
                              &n);
        static const struct {
            const char *name;
            uint8_t type;
            size_t len;
        } types[] = {{"des", YN_PICC_KEY_DES, 8},
                     {"2k3des", YN_PICC_KEY_2K3DES, 16},
                     {"3k3des", YN_PICC_KEY_3K3DES, 24},
                     {"aes", YN_PICC_KEY_AES, 16}};
        bool known = false;
        for (size_t i = 0; rc == YN_OK && i < sizeof types / sizeof types[0]; i++) {
            bool named = o->picc_type && !strcmp(o->picc_type, types[i].name);
            bool by_len = !o->picc_type && n == types[i].len && types[i].type != YN_PICC_KEY_2K3DES;
            if ((named || by_len) && n == types[i].len) {
                k->picc_key_type = types[i].type;
                known = true;
            }
        }
        if (rc == YN_OK && !known) {
            fprintf(stderr,
                    "yinian-card: %s: a PICC master key is 8 (des), 16 (aes, or 2k3des with "
                    "--picc-key-type 2k3des) or 24 (3k3des) bytes\n",
                    o->picc_key);
            rc = YN_EINVAL;
        }
        k->has_picc_key = rc == YN_OK;
    }
    if (rc == YN_OK && o->new_picc) {
        rc = yn_key_file_load(o->new_picc, true, "new PICC master key", k->new_picc_key,
                              sizeof k->new_picc_key, &n);
        if (rc == YN_OK && n != sizeof k->new_picc_key) {
            fprintf(stderr, "yinian-card: %s: the new PICC master key is AES: 16 bytes\n",
                    o->new_picc);
            rc = YN_EINVAL;
        }
        k->has_new_picc_key = rc == YN_OK;
    }
    return rc;
}

/* Build, sign and write one record (to the sim file or the card on the reader). */
static int issue_one(const struct opts *o, const uint8_t master[16], const uint8_t priv[32],
                     const char *where)
{
    uint8_t uid[YN_CARD_UID_MAX], key[YN_CARD_KEY_LEN], buf[YN_CARD_RECORD_MAX];
    size_t uid_len = 0, len;
    const char *why = "";
    yn_card_record rec = o->rec;
    const char *type = o->type ? o->type : "desfire";
    if (strcmp(type, "desfire") != 0 && strcmp(type, "classic1k") != 0) {
        fprintf(stderr, "%s: type must be desfire or classic1k\n", where);
        return EXIT_USAGE;
    }
    yn_config cfg;
    yn_nfc nfc;
    yn_nfc_tag tag;
    if (o->config) {
        int rc = open_reader(o->config, &cfg, &nfc, &tag);
        if (rc != YN_OK)
            return rc == YN_ECONFIG ? EXIT_USAGE : EXIT_CARD;
        memcpy(uid, tag.uid, tag.uid_len);
        uid_len = tag.uid_len;
    } else if (parse_uid(o->uid_hex, uid, &uid_len) != YN_OK) {
        return EXIT_USAGE;
    }
    rec.format_version = YN_CARD_FORMAT_V1;
    rec.key_version = (uint8_t)o->key_version;
    if (yn_card_encode_signed(&rec, uid, uid_len, priv, buf, sizeof buf, &len, &why) != YN_OK) {
        fprintf(stderr, "%s: record refused: %s\n", where, why);
        if (o->config)
            yn_nfc_close(&nfc);
        return EXIT_USAGE;
    }
    if (yn_card_key_for_uid(master, uid, uid_len, key) != YN_OK)
        return EXIT_CARD;
    int rc;
    if (o->config) {
        yn_nfc_issue_keys keys;
        rc = issue_keys_for(o, master, &tag, &keys);
        if (rc != YN_OK) {
            yn_nfc_close(&nfc);
            return EXIT_USAGE;
        }
        rc = yn_nfc_issue(&nfc, &tag, &keys, buf, len);
        if (rc == YN_ENOTSUP) /* a backend without the issuing desk's op */
            rc = yn_nfc_write(&nfc, &tag, YN_NFC_AREA_RECORD, key, buf, len);
        explicit_bzero(&keys, sizeof keys);
        yn_nfc_close(&nfc);
        if (rc != YN_OK) {
            fprintf(stderr, "%s: writing the record failed: %s%s\n", where, yn_strerror(rc),
                    rc == YN_EAUTH || rc == YN_ENOTFOUND
                        ? " (is the card formatted by this issuer? yinian-card format)"
                        : "");
            return EXIT_CARD;
        }
    } else {
        rc = append_sim(o->sim_out, o->label ? o->label : rec.card_no, type, uid, uid_len, key, buf,
                        len);
        if (rc != YN_OK)
            return EXIT_CARD;
    }
    char u[2 * YN_CARD_UID_MAX + 1];
    yn_hex_encode(uid, uid_len, u);
    printf("issued card %s on UID %s (key version %02x)\n", rec.card_no, u, rec.key_version);
    return 0;
}

static int cmd_issue(const struct opts *o)
{
    uint8_t master[16], priv[32];
    if (!o->master || !o->issuer || (!o->sim_out == !o->config)) {
        fprintf(stderr, "yinian-card issue: needs --master, --issuer and one of --sim-out or "
                        "--config\n");
        return EXIT_USAGE;
    }
    if (load_master(o->master, master) != YN_OK || load_issuer(o->issuer, priv) != YN_OK)
        return EXIT_USAGE;
    int rc = issue_one(o, master, priv, "yinian-card issue");
    explicit_bzero(priv, sizeof priv);
    return rc;
}

static void print_record(const yn_card_record *r)
{
    printf("card number   %s\n", r->card_no);
    printf("key version   %02x\n", r->key_version);
    printf("birth date    %08d\n", r->birth_ymd);
    printf("categories   ");
    for (uint32_t bit = 1; bit; bit <<= 1)
        if ((r->flags & bit) && yn_flag_name(bit))
            printf(" %s", yn_flag_name(bit));
    printf("%s\n", r->flags ? "" : " none");
    printf("home          district %06u street %09u\n", (unsigned)r->district, (unsigned)r->street);
    printf("valid         %08d .. %08d\n", r->issue_ymd, r->expiry_ymd);
}

static int cmd_read(const struct opts *o)
{
    uint8_t master[16], key[16];
    yn_nfc_card_data card;
    size_t ring_len;
    uint8_t ring_bytes[YN_CARD_KEYRING_MAX * 33];
    yn_card_keyring ring;
    char err[160];
    if (!o->master || !o->issuer_pub || (!o->config == !o->cards)) {
        fprintf(stderr, "yinian-card read: needs --master, --issuer-pub and one of --config or "
                        "--cards\n");
        return EXIT_USAGE;
    }
    if (load_master(o->master, master) != YN_OK ||
        yn_key_file_load(o->issuer_pub, false, "issuer key ring", ring_bytes, sizeof ring_bytes,
                         &ring_len) != YN_OK)
        return EXIT_USAGE;
    if (yn_card_keyring_from_bytes(ring_bytes, ring_len, &ring, err, sizeof err) != YN_OK) {
        fprintf(stderr, "yinian-card: %s: %s\n", o->issuer_pub, err);
        return EXIT_USAGE;
    }
    yn_config cfg;
    yn_nfc nfc;
    yn_nfc_tag tag;
    int rc;
    if (o->config) {
        if ((rc = open_reader(o->config, &cfg, &nfc, &tag)) != YN_OK)
            return rc == YN_ECONFIG ? EXIT_USAGE : EXIT_CARD;
    } else {
#if WITH_SIM
        yn_config_defaults(&cfg);
        snprintf(cfg.reader.sim_cards, sizeof cfg.reader.sim_cards, "%s", o->cards);
        if (yn_nfc_open(&nfc, &cfg.reader) != YN_OK)
            return EXIT_USAGE;
        if (yn_nfc_sim_present(&nfc, o->index) != YN_OK || yn_nfc_poll(&nfc, 0, &tag) != YN_OK) {
            fprintf(stderr, "yinian-card: %s has no card %d\n", o->cards, o->index);
            yn_nfc_close(&nfc);
            return EXIT_USAGE;
        }
#else
        fprintf(stderr, "yinian-card: --cards needs the simulated reader (a WITH_SIM=1 build)\n");
        return EXIT_USAGE;
#endif
    }
    char u[2 * YN_UID_MAX + 1];
    yn_nfc_uid_hex(&tag, u, sizeof u);
    printf("UID           %s (%s)\n", u, yn_tag_type_name(tag.type));
    rc = yn_card_key_for_uid(master, tag.uid, tag.uid_len, key);
    memset(&card, 0, sizeof card);
    if (rc == YN_OK)
        rc =
            tag.type == YN_TAG_UNKNOWN ? YN_ENOTFOUND : yn_nfc_read_card(&nfc, &tag, key, 0, &card);
    if (tag.type == YN_TAG_UNKNOWN)
        card.kind = YN_CARD_KIND_FOREIGN;
    yn_nfc_close(&nfc);
    if (rc != YN_OK && card.kind != YN_CARD_KIND_OURS) {
        static const char *const what[] = {
            [YN_CARD_KIND_BLANK] = "a blank card: never issued (yinian-card format, then issue)",
            [YN_CARD_KIND_OTHER_APP] = "not a 颐年卡: a DESFire with other applications only",
            [YN_CARD_KIND_FOREIGN] =
                "not a 颐年卡: another kind of card, or keys that are not ours"};
        printf("card          %s\n", what[card.kind]);
        return EXIT_CARD;
    }
    if (rc != YN_OK) {
        fprintf(stderr, "yinian-card: reading the card failed: %s%s\n", yn_strerror(rc),
                rc == YN_EAUTH ? " (the card's key is not ours: a clone or a foreign card)" : "");
        return EXIT_CARD;
    }
    yn_card_record rec;
    const char *why = "";
    rc = yn_card_read(card.record, card.record_len, tag.uid, tag.uid_len, &ring, &rec, &why);
    if (rc != YN_OK && rc != YN_EAUTH && rc != YN_ENOTFOUND) {
        fprintf(stderr, "yinian-card: the record does not decode: %s\n", why);
        return EXIT_CARD;
    }
    print_record(&rec);
    if (rc != YN_OK) {
        printf("signature     NOT GENUINE: %s\n", why);
        return EXIT_CARD;
    }
    printf("signature     genuine\n");
    printf("today         %s\n", yn_card_expired(&rec, today_ymd()) ? "EXPIRED" : "valid");
    yn_card_stamp st;
    if (yn_card_stamp_decode(card.stamp, card.stamp_len, &st, &why) != YN_OK)
        printf("last meal     unreadable stamp: %s\n", why);
    else if (yn_card_stamp_is_blank(&st))
        printf("last meal     none\n");
    else if (st.version == YN_CARD_STAMP_V1)
        printf("last meal     %08d period %04x canteen %04x seq …%04x (v1 stamp)\n", st.date_ymd,
               st.period_code, st.canteen_id, (unsigned)st.seq);
    else
        printf("last meal     %08d period %04x terminal %06x seq %u\n", st.date_ymd, st.period_code,
               (unsigned)st.terminal_code, (unsigned)st.seq);
    return 0;
}

/* --- enrol: an identity-only card bound to a senior (CARD.md §8) ---------------- */

/* The card on the reader is one the roster may bind: not a 颐年卡 (read with
 * our key, or carrying our application), an identifier that stays the same
 * when the card is activated again. *why says what it is otherwise. */
static int enrol_check(yn_nfc *nfc, const yn_nfc_tag *tag, const uint8_t master[16],
                       const char **why)
{
    bool type_b = tag->type == YN_TAG_ISO14443B;
    if (yn_ident_random(type_b, tag->uid, tag->uid_len)) {
        *why = "a random UID (08 ...): it changes at every tap, phones and some bank cards do that";
        return YN_EREFUSED;
    }
    if (tag->type == YN_TAG_DESFIRE || tag->type == YN_TAG_CLASSIC_1K) {
        uint8_t key[16];
        yn_nfc_card_data card = {.kind = YN_CARD_KIND_FOREIGN};
        int rc = yn_card_key_for_uid(master, tag->uid, tag->uid_len, key);
        if (rc == YN_OK)
            rc = yn_nfc_read_card(nfc, tag, key, 0, &card);
        explicit_bzero(key, sizeof key);
        if (rc == YN_OK || card.kind == YN_CARD_KIND_OURS) {
            *why = rc == YN_OK ? "a 颐年卡: terminals read it as itself, never by its UID"
                               : "it carries the 颐年卡 application but refuses our key (a clone?)";
            return YN_EREFUSED;
        }
    }
    yn_nfc_tag again;
    if (yn_nfc_release(nfc) != YN_OK || yn_nfc_poll(nfc, 500, &again) != YN_OK) {
        *why = "the card left the reader: hold it there until enrolment is done";
        return YN_ECARDGONE;
    }
    if (again.type != tag->type || again.uid_len != tag->uid_len ||
        memcmp(again.uid, tag->uid, tag->uid_len) != 0) {
        *why = "it shows another identifier when activated again: a random UID";
        return YN_EREFUSED;
    }
    return YN_OK;
}

static int cmd_enrol(const struct opts *o)
{
    uint8_t master[16];
    const yn_card_record *r = &o->rec;
    if (!o->config || !o->master || !r->card_no[0] || !r->birth_ymd || !r->district || !r->street ||
        !r->expiry_ymd) {
        fprintf(stderr, "yinian-card enrol: needs --config, --master, --card-no, --birth,"
                        " --district, --street and --expiry\n");
        return EXIT_USAGE;
    }
    /* the senior's facts pass the rules a card record obeys */
    yn_card_record check = *r;
    check.format_version = YN_CARD_FORMAT_V1;
    check.key_version = 1;
    check.issue_ymd = check.birth_ymd; /* any day up to the expiry: only the facts matter */
    uint8_t buf[YN_CARD_RECORD_MAX];
    size_t len;
    const char *why = "";
    if (yn_card_encode(&check, buf, sizeof buf, &len, &why) != YN_OK) {
        fprintf(stderr, "yinian-card enrol: %s\n", why);
        return EXIT_USAGE;
    }
    if (load_master(o->master, master) != YN_OK)
        return EXIT_USAGE;
    yn_config cfg;
    yn_nfc nfc;
    yn_nfc_tag tag;
    int rc = open_reader(o->config, &cfg, &nfc, &tag);
    if (rc != YN_OK) {
        explicit_bzero(master, sizeof master);
        return rc == YN_ECONFIG ? EXIT_USAGE : EXIT_CARD;
    }
    rc = enrol_check(&nfc, &tag, master, &why);
    explicit_bzero(master, sizeof master);
    yn_nfc_close(&nfc);
    char ident[YN_IDENT_MAX], u[2 * YN_UID_MAX + 1];
    yn_nfc_uid_hex(&tag, u, sizeof u);
    if (rc == YN_OK &&
        yn_ident_make(tag.type == YN_TAG_ISO14443B, tag.uid, tag.uid_len, ident) != YN_OK) {
        why = "its identifier is all zero or all FF: it names no card";
        rc = YN_EREFUSED;
    }
    if (rc != YN_OK) {
        fprintf(stderr, "yinian-card enrol: card %s (%s) not enrolled: %s\n", u,
                yn_tag_type_name(tag.type), why);
        return EXIT_CARD;
    }
    FILE *f = stdout;
    bool header = false;
    if (o->out) {
        f = fopen(o->out, "a");
        if (!f) {
            fprintf(stderr, "yinian-card: cannot open %s: %s\n", o->out, strerror(errno));
            return EXIT_USAGE;
        }
        header = ftell(f) == 0;
    }
    if (header)
        fprintf(f, "card_no,birth_ymd,flags,district,street,expiry_ymd,ident\n");
    fprintf(f, "%s,%d,%u,%u,%u,%d,%s\n", r->card_no, (int)r->birth_ymd, (unsigned)r->flags,
            (unsigned)r->district, (unsigned)r->street, (int)r->expiry_ymd, ident);
    if (o->out && fclose(f) != 0) {
        fprintf(stderr, "yinian-card: writing %s: %s\n", o->out, strerror(errno));
        return EXIT_CARD;
    }
    fprintf(stderr, "enrolled %s card %s as %s for card number %s\n", yn_tag_type_name(tag.type), u,
            ident, r->card_no);
    return 0;
}

static int cmd_format(const struct opts *o)
{
    uint8_t master[16], key[16], uid[YN_CARD_UID_MAX];
    size_t uid_len;
    if (!o->master || (!o->sim_out == !o->config)) {
        fprintf(stderr, "yinian-card format: needs --master and one of --config or --sim-out\n");
        return EXIT_USAGE;
    }
    if (load_master(o->master, master) != YN_OK)
        return EXIT_USAGE;
    if (o->sim_out) {
        const char *type = o->type ? o->type : "desfire";
        if (parse_uid(o->uid_hex, uid, &uid_len) != YN_OK ||
            (strcmp(type, "desfire") && strcmp(type, "classic1k")) ||
            yn_card_key_for_uid(master, uid, uid_len, key) != YN_OK)
            return EXIT_USAGE;
        return append_sim(o->sim_out, o->label ? o->label : "blank", type, uid, uid_len, key, NULL,
                          0) == YN_OK
                   ? 0
                   : EXIT_CARD;
    }
    yn_config cfg;
    yn_nfc nfc;
    yn_nfc_tag tag;
    yn_nfc_issue_keys keys;
    int rc = open_reader(o->config, &cfg, &nfc, &tag);
    if (rc != YN_OK)
        return rc == YN_ECONFIG ? EXIT_USAGE : EXIT_CARD;
    if (issue_keys_for(o, master, &tag, &keys) != YN_OK) {
        yn_nfc_close(&nfc);
        return EXIT_USAGE;
    }
    rc = yn_nfc_format(&nfc, &tag, &keys, yn_card_record_size(YN_CARD_FORMAT_V1),
                       o->force ? YN_NFC_FORCE : 0);
    explicit_bzero(&keys, sizeof keys);
    yn_nfc_close(&nfc);
    char u[2 * YN_UID_MAX + 1];
    yn_nfc_uid_hex(&tag, u, sizeof u);
    if (rc == YN_EDUPLICATE) {
        fprintf(stderr,
                "yinian-card: card %s is already formatted (or an earlier format was "
                "interrupted); nothing changed. Run format again with --force to redo it — "
                "this erases its record\n",
                u);
        return EXIT_CARD;
    }
    if (rc != YN_OK) {
        fprintf(stderr, "yinian-card: formatting card %s failed: %s%s\n", u, yn_strerror(rc),
                rc == YN_ECARDGONE ? " (card pulled: put it back and run format --force)" : "");
        return EXIT_CARD;
    }
    printf("formatted %s card %s\n", yn_tag_type_name(tag.type), u);
    return 0;
}

/* One CSV data line into o->rec / uid / type / label. Returns a reason or NULL. */
static const char *parse_csv_line(char *line, struct opts *o)
{
    char *f[11];
    int n = 0;
    for (char *p = line; n < 11; n++) {
        f[n] = p;
        p = strchr(p, ',');
        if (!p) {
            n++;
            break;
        }
        *p++ = '\0';
    }
    if (n != 10)
        return "expected 10 fields: label,uid,type,card_no,birth,flags,district,street,issued,"
               "expiry";
    memset(&o->rec, 0, sizeof o->rec);
    o->label = f[0];
    o->uid_hex = f[1];
    o->type = f[2];
    if (strlen(f[3]) > YN_CARD_CARD_NO_MAX || !f[3][0])
        return "card_no must be 1 to 19 characters";
    snprintf(o->rec.card_no, sizeof o->rec.card_no, "%s", f[3]);
    if (parse_ymd(f[4], &o->rec.birth_ymd))
        return "birth must be YYYYMMDD";
    if (parse_flags(f[5], &o->rec.flags))
        return "flags: unknown category (tekun dibao dibao_edge sanshu_wulao shidu "
               "disabled_severe disabled_moderate, joined with +)";
    if (parse_u32(f[6], 6, &o->rec.district))
        return "district must be six digits";
    if (parse_u32(f[7], 9, &o->rec.street))
        return "street must be nine digits";
    if (parse_ymd(f[8], &o->rec.issue_ymd))
        return "issued must be YYYYMMDD";
    if (parse_ymd(f[9], &o->rec.expiry_ymd))
        return "expiry must be YYYYMMDD";
    return NULL;
}

static int cmd_batch(int argc, char **argv, struct opts *o)
{
    uint8_t master[16], priv[32];
    if (argc != 1 || !o->master || !o->issuer || !o->sim_out) {
        fprintf(stderr, "yinian-card batch: needs --master, --issuer, --sim-out and one CSV\n");
        return EXIT_USAGE;
    }
    FILE *in = fopen(argv[0], "r");
    if (!in) {
        fprintf(stderr, "yinian-card: cannot open %s: %s\n", argv[0], strerror(errno));
        return EXIT_USAGE;
    }
    if (load_master(o->master, master) != YN_OK || load_issuer(o->issuer, priv) != YN_OK) {
        fclose(in);
        return EXIT_USAGE;
    }
    char line[512], where[300];
    int lineno = 0, issued = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, in)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (lineno == 1 || !line[0] || line[0] == '#')
            continue; /* header, blank, comment */
        snprintf(where, sizeof where, "%s:%d", argv[0], lineno);
        const char *why = parse_csv_line(line, o);
        if (why) {
            fprintf(stderr, "%s: %s\n", where, why);
            rc = EXIT_USAGE;
            break;
        }
        rc = issue_one(o, master, priv, where);
        issued += rc == 0;
    }
    explicit_bzero(priv, sizeof priv);
    fclose(in);
    printf("%d cards issued to %s\n", issued, o->sim_out);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option long_opts[] = {{"master", required_argument, NULL, 'm'},
                                              {"issuer", required_argument, NULL, 'i'},
                                              {"issuer-pub", required_argument, NULL, 'p'},
                                              {"key-version", required_argument, NULL, 'k'},
                                              {"uid", required_argument, NULL, 'u'},
                                              {"type", required_argument, NULL, 't'},
                                              {"card-no", required_argument, NULL, 'n'},
                                              {"birth", required_argument, NULL, 'b'},
                                              {"flags", required_argument, NULL, 'f'},
                                              {"district", required_argument, NULL, 'd'},
                                              {"street", required_argument, NULL, 's'},
                                              {"issued", required_argument, NULL, 'I'},
                                              {"expiry", required_argument, NULL, 'e'},
                                              {"label", required_argument, NULL, 'l'},
                                              {"sim-out", required_argument, NULL, 'o'},
                                              {"config", required_argument, NULL, 'c'},
                                              {"cards", required_argument, NULL, 'C'},
                                              {"index", required_argument, NULL, 'x'},
                                              {"force", no_argument, NULL, 'F'},
                                              {"picc-key", required_argument, NULL, 'P'},
                                              {"picc-key-type", required_argument, NULL, 'T'},
                                              {"set-picc-key", required_argument, NULL, 'N'},
                                              {"app-master", required_argument, NULL, 'A'},
                                              {"out", required_argument, NULL, 'O'},
                                              {"help", no_argument, NULL, 'h'},
                                              {NULL, 0, NULL, 0}};
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    struct opts o = {.key_version = 1};
    o.rec.issue_ymd = today_ymd();
    yn_log_init("yinian-card", YN_LOG_WARN, false);
    optind = 2;
    int c;
    char *end;
    bool bad = false;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            o.master = optarg;
            break;
        case 'i':
            o.issuer = optarg;
            break;
        case 'p':
            o.issuer_pub = optarg;
            break;
        case 'k':
            o.key_version = (int)strtol(optarg, &end, 10);
            bad |= *end || o.key_version < 1 || o.key_version > 255;
            break;
        case 'u':
            o.uid_hex = optarg;
            break;
        case 't':
            o.type = optarg;
            break;
        case 'n':
            bad |= strlen(optarg) > YN_CARD_CARD_NO_MAX;
            snprintf(o.rec.card_no, sizeof o.rec.card_no, "%s", optarg);
            break;
        case 'b':
            bad |= parse_ymd(optarg, &o.rec.birth_ymd) != YN_OK;
            break;
        case 'f':
            bad |= parse_flags(optarg, &o.rec.flags) != YN_OK;
            break;
        case 'd':
            bad |= parse_u32(optarg, 6, &o.rec.district) != YN_OK;
            break;
        case 's':
            bad |= parse_u32(optarg, 9, &o.rec.street) != YN_OK;
            break;
        case 'I':
            bad |= parse_ymd(optarg, &o.rec.issue_ymd) != YN_OK;
            break;
        case 'e':
            bad |= parse_ymd(optarg, &o.rec.expiry_ymd) != YN_OK;
            break;
        case 'l':
            o.label = optarg;
            break;
        case 'o':
            o.sim_out = optarg;
            break;
        case 'c':
            o.config = optarg;
            break;
        case 'C':
            o.cards = optarg;
            break;
        case 'x':
            o.index = (int)strtol(optarg, &end, 10);
            bad |= *end || o.index < 0;
            break;
        case 'F':
            o.force = true;
            break;
        case 'P':
            o.picc_key = optarg;
            break;
        case 'T':
            o.picc_type = optarg;
            bad |= strcmp(optarg, "des") && strcmp(optarg, "2k3des") && strcmp(optarg, "3k3des") &&
                   strcmp(optarg, "aes");
            break;
        case 'N':
            o.new_picc = optarg;
            break;
        case 'A':
            o.app_master = optarg;
            break;
        case 'O':
            o.out = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            bad = true;
        }
        if (bad) {
            fprintf(stderr, "yinian-card: bad option or value '%s' (see --help)\n",
                    optarg ? optarg : argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    argc -= optind;
    argv += optind;
    if (strcmp(cmd, "keygen") == 0)
        return cmd_keygen(argc, argv, &o);
    if (argc != 0 && strcmp(cmd, "batch") != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (strcmp(cmd, "issue") == 0)
        return cmd_issue(&o);
    if (strcmp(cmd, "read") == 0)
        return cmd_read(&o);
    if (strcmp(cmd, "format") == 0)
        return cmd_format(&o);
    if (strcmp(cmd, "enrol") == 0)
        return cmd_enrol(&o);
    if (strcmp(cmd, "batch") == 0)
        return cmd_batch(argc, argv, &o);
    fprintf(stderr, "yinian-card: unknown command '%s'\n", cmd);
    usage(stderr);
    return EXIT_USAGE;
}
