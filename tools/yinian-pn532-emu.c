/* yinian-pn532-emu — an emulated PN532 reader (HSU/UART framing) on a pty,
 * holding virtual 颐年卡 cards, that misbehaves on cue.
 *
 *   yinian-pn532-emu --link PATH --cards FILE [--control FIFO] [--present N] [--verbose]
 *
 * libnfc (and Debian's nfc-list / nfc-mfclassic) talk to it unmodified through
 * the connstring pn532_uart:PATH. Cards come from the virtual card file of
 * hal/nfc_sim.h; DESFire cards run the PICC half of hal/desfire.c with the
 * layout of hal/nfc_libnfc_layout.h, Classic 1K cards are laid out the same way
 * and Crypto-1 is emulated as a key comparison (a real PN532 does Crypto-1
 * itself, the host only sees the outcome). Control commands, one a line, on
 * the FIFO: see usage() and hal/READER.md. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "desfire.h"
#include "nfc.h"
#include "nfc_libnfc_layout.h"
#include "nfc_sim.h"

#define RX_MAX  4096
#define CMD_MAX 600
#define ANS_MAX 600

enum fault {
    F_NONE,
    F_SILENT,        /* ACK, then never answer the next card command */
    F_SLOW,          /* answer the next card command after fault_ms */
    F_BADCRC,        /* the next card command's answer frame has a wrong DCS */
    F_PULL_ON_WRITE, /* the card leaves during the next write (see READER.md) */
    F_SHORT,         /* the next InDataExchange answer is cut to one byte */
    F_GARBAGE,       /* the next InDataExchange answer is random bytes */
    F_STATUS80,      /* the next InDataExchange status byte has bit 0x80 */
    F_DRIBBLE,       /* every card answer trickles out one byte every fault_ms, until cleared */
    F_TEAR,          /* the card leaves at the N-th card command from now: before it reaches
                        the card, or after the card executed it (its reply lost) */
};

struct card {
    yn_sim_card sim;
    yn_df_picc df;                         /* DESFire model */
    uint8_t mfc[YN_LAYOUT_MFC_BLOCKS][16]; /* Classic 1K memory */
};

struct emu {
    const char *link, *control, *cards_path;
    bool verbose;
    int master, slave; /* pty; the slave stays open so the master never reads EIO */
    char pts[128];
    bool plugged;
    int ctl;
    char ctl_buf[1024];
    size_t ctl_len;

    uint8_t rx[RX_MAX];
    size_t rx_len;

    uint8_t regs[0x10000]; /* PN532 register file, as the host wrote it */
    uint8_t params;        /* SetParameters flags */
    bool field_on;

    struct card *cards;
    int n_cards;
    int present;    /* card in the field, or -1 */
    bool selected;  /* activated by InListPassiveTarget */
    bool iso_dep;   /* RATS done: DESFire frames go to the PICC */
    bool halted;    /* Classic: after a failed authentication */
    int mfc_sector; /* Classic: authenticated sector, or -1 */
    bool mfc_key_b; /* Classic: ... with key B */

    enum fault fault;
    int fault_ms;
    int fault_count; /* pull-on-write: the N-th write-like command; tear: the N-th card command */
    bool tear_after; /* tear: after the card executed the command (else before it) */

    uint8_t pending[ANS_MAX + 16]; /* a slow answer waiting for its time */
    size_t pending_len, pending_pos;
    int64_t pending_due_ms; /* monotonic: when the next part goes out */
    int pending_step_ms;    /* dribble: one byte per step; 0: all at once */

    unsigned long frames_in, answers_out;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pn532-emu: ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

static void hexdump(const struct emu *e, const char *what, const uint8_t *p, size_t n)
{
    if (!e->verbose)
        return;
    fprintf(stderr, "pn532-emu %s:", what);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %02x", p[i]);
    fputc('\n', stderr);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void write_all(struct emu *e, const uint8_t *p, size_t n)
{
    hexdump(e, "TX", p, n);
    while (n && e->plugged) {
        ssize_t w = write(e->master, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pfd = {.fd = e->master, .events = POLLOUT};
                poll(&pfd, 1, 100);
                continue;
            }
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void send_ack(struct emu *e)
{
    static const uint8_t ack[6] = {0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00};
    write_all(e, ack, sizeof ack);
}

/* Build an answer frame 00 00 FF LEN LCS D5 CMD+1 data DCS 00 (extended form
 * when it does not fit a normal frame). */
static size_t build_frame(uint8_t cmd, const uint8_t *data, size_t n, uint8_t *out, bool bad_dcs)
{
    size_t len = n + 2, f = 0;
    out[f++] = 0x00;
    out[f++] = 0x00;
    out[f++] = 0xFF;
    if (len <= 254) {
        out[f++] = (uint8_t)len;
        out[f++] = (uint8_t)(0x100 - len);
    } else {
        out[f++] = 0xFF;
        out[f++] = 0xFF;
        out[f++] = (uint8_t)(len >> 8);
        out[f++] = (uint8_t)len;
        out[f++] = (uint8_t)(0x100 - ((len >> 8) + (len & 0xFF)));
    }
    uint8_t sum = 0xD5 + (uint8_t)(cmd + 1);
    out[f++] = 0xD5;
    out[f++] = (uint8_t)(cmd + 1);
    for (size_t i = 0; i < n; i++) {
        out[f++] = data[i];
        sum = (uint8_t)(sum + data[i]);
    }
    out[f++] = (uint8_t)(0x100 - sum + (bad_dcs ? 0x5A : 0));
    out[f++] = 0x00;
    return f;
}

static void send_error_frame(struct emu *e)
{
    static const uint8_t err[8] = {0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00};
    write_all(e, err, sizeof err);
}

/* --- cards ------------------------------------------------------------- */

static struct card *current(struct emu *e)
{
    return e->present >= 0 ? &e->cards[e->present] : NULL;
}

static bool is_desfire(const struct card *c)
{
    return c->sim.tag.type == YN_TAG_DESFIRE;
}

/* The card leaves the field. The PN532 still believes its target selected, so
 * the next InDataExchange gets no answer from the card (status 0x01). */
static void card_leaves(struct emu *e)
{
    struct card *c = current(e);
    if (c && is_desfire(c))
        yn_df_picc_reset(&c->df); /* discards an uncommitted backup-file write */
    e->halted = false;
    e->mfc_sector = -1;
    e->present = -1;
}

/* The target is released (or the field drops): volatile state is lost. */
static void deactivate(struct emu *e)
{
    struct card *c = current(e);
    if (c && is_desfire(c))
        yn_df_picc_reset(&c->df);
    e->selected = false;
    e->iso_dep = false;
    e->halted = false;
    e->mfc_sector = -1;
}

static int build_desfire(struct card *c)
{
    static const uint8_t aid[3] = YN_LAYOUT_DF_AID_BYTES;
    uint8_t keys[2][16];
    if (c->sim.blank) { /* factory-blank: no application, PICC key zero, settings 0x0F */
        yn_df_picc_init(&c->df, c->sim.tag.uid, c->sim.tag.uid_len);
        return YN_OK;
    }
    /* key 0: a stand-in for the issuer's application master key, never used by terminals */
    for (int i = 0; i < 16; i++)
        keys[0][i] = (uint8_t)(c->sim.key[i] ^ 0xFF);
    memcpy(keys[1], c->sim.key, 16);
    yn_df_picc_init(&c->df, c->sim.tag.uid, c->sim.tag.uid_len);
    int rc = yn_df_picc_app(&c->df, aid, (const uint8_t(*)[16])keys, 2);
    if (rc != YN_OK)
        return rc;
    if (c->sim.record_len) {
        yn_df_file rec = {.file_no = YN_LAYOUT_DF_FILE_RECORD,
                          .type = YN_DF_FILE_STANDARD,
                          .comm = YN_DF_COMM_ENCIPHERED,
                          .key_read = YN_LAYOUT_DF_KEY_CARD,
                          .key_write = YN_LAYOUT_DF_KEY_MASTER,
                          .key_rw = YN_LAYOUT_DF_KEY_MASTER,
                          .key_change = YN_LAYOUT_DF_KEY_MASTER,
                          .size = c->sim.record_len};
        if ((rc = yn_df_picc_file(&c->df, &rec, c->sim.record, c->sim.record_len)) != YN_OK)
            return rc;
    }
    yn_df_file stamp = {.file_no = YN_LAYOUT_DF_FILE_STAMP,
                        .type = YN_DF_FILE_BACKUP,
                        .comm = YN_DF_COMM_ENCIPHERED,
                        .key_read = YN_LAYOUT_DF_KEY_CARD,
                        .key_write = YN_LAYOUT_DF_KEY_CARD,
                        .key_rw = YN_LAYOUT_DF_KEY_CARD,
                        .key_change = YN_LAYOUT_DF_KEY_MASTER,
                        .size = c->sim.stamp_len > YN_LAYOUT_DF_STAMP_SIZE
                                    ? c->sim.stamp_len
                                    : YN_LAYOUT_DF_STAMP_SIZE};
    return yn_df_picc_file(&c->df, &stamp, c->sim.stamp, c->sim.stamp_len);
}

static int build_classic(struct card *c)
{
    uint8_t(*m)[16] = c->mfc;
    const yn_sim_card *s = &c->sim;
    memset(c->mfc, 0, sizeof c->mfc);
    /* block 0: UID, BCC (4-byte UIDs), SAK, ATQA, manufacturer data */
    memcpy(m[0], s->tag.uid, s->tag.uid_len);
    size_t p = s->tag.uid_len;
    if (s->tag.uid_len == 4) {
        m[0][4] = (uint8_t)(s->tag.uid[0] ^ s->tag.uid[1] ^ s->tag.uid[2] ^ s->tag.uid[3]);
        p = 5;
    }
    m[0][p] = 0x08;
    m[0][p + 1] = s->tag.uid_len == 4 ? 0x04 : 0x44;
    m[0][p + 2] = 0x00;
    for (size_t i = p + 3; i < 16; i++)
        m[0][i] = (uint8_t)(0x60 + i);
    /* trailers: sector 0 as manufactured, the others keyed from the card key;
     * sectors 1..4 (record, stamp) with the issued access bits */
    uint8_t key_a[6], key_b[6];
    static const uint8_t transport_key[6] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    static const uint8_t issued[4] = YN_LAYOUT_MFC_ACCESS_ISSUED;
    static const uint8_t transport[4] = YN_LAYOUT_MFC_ACCESS_TRANSPORT;
    yn_layout_mfc_keys(s->key, key_a, key_b);
    for (int sector = 0; sector < 16; sector++) {
        uint8_t *t = m[sector * 4 + 3];
        bool keyed = sector && !s->blank; /* a blank card has transport keys everywhere */
        memcpy(t, keyed ? key_a : transport_key, 6);
        memcpy(t + 6, keyed && sector <= 4 ? issued : transport, 4);
        memcpy(t + 10, keyed ? key_b : transport_key, 6);
    }
    if (s->record_len > YN_LAYOUT_MFC_RECORD_AREA)
        return YN_ELIMIT;
    uint8_t area[YN_LAYOUT_MFC_RECORD_AREA] = {0};
    if (s->record_len)
        memcpy(area, s->record, s->record_len);
    for (int i = 0; i < YN_LAYOUT_MFC_RECORD_BLOCKS; i++)
        memcpy(m[yn_layout_mfc_record_block(i)], area + 16 * i, 16);
    /* stamp: 16 bytes go to primary and copy; 32 bytes are primary ‖ copy as given
     * (a test can start from a torn pair) */
    if (s->stamp_len == YN_LAYOUT_MFC_STAMP_LEN) {
        memcpy(m[YN_LAYOUT_MFC_STAMP_PRIMARY], s->stamp, 16);
        memcpy(m[YN_LAYOUT_MFC_STAMP_COPY], s->stamp, 16);
    } else if (s->stamp_len == 2 * YN_LAYOUT_MFC_STAMP_LEN) {
        memcpy(m[YN_LAYOUT_MFC_STAMP_PRIMARY], s->stamp, 16);
        memcpy(m[YN_LAYOUT_MFC_STAMP_COPY], s->stamp + 16, 16);
    } else if (s->stamp_len != 0) {
        return YN_ELIMIT;
    }
    return YN_OK;
}

static int load_cards(struct emu *e)
{
    yn_nfc dev = {.ops = &yn_nfc_sim_ops};
    char err[512];
    if (dev.ops->open(&dev, NULL) != YN_OK)
        return -1;
    int rc = yn_nfc_sim_load(&dev, e->cards_path, err, sizeof err);
    if (rc != YN_OK) {
        fprintf(stderr, "pn532-emu: %s\n", err);
        dev.ops->close(&dev);
        return -1;
    }
    e->n_cards = yn_nfc_sim_count(&dev);
    e->cards = calloc((size_t)(e->n_cards ? e->n_cards : 1), sizeof *e->cards);
    if (!e->cards) {
        dev.ops->close(&dev);
        return -1;
    }
    for (int i = 0; i < e->n_cards; i++) {
        struct card *c = &e->cards[i];
        c->sim = *yn_nfc_sim_card(&dev, i);
        rc = is_desfire(c) ? build_desfire(c) : build_classic(c);
        if (rc != YN_OK) {
            fprintf(stderr, "pn532-emu: %s: card %d (%s) does not fit the %s layout (%s)\n",
                    e->cards_path, i, c->sim.label, yn_tag_type_name(c->sim.tag.type),
                    yn_strerror(rc));
            dev.ops->close(&dev);
            return -1;
        }
    }
    dev.ops->close(&dev);
    return 0;
}

/* --- the card side of InDataExchange ----------------------------------- */

/* Access condition bits C1 C2 C3 of block b (0..3) of a sector, from its trailer. */
static unsigned access_bits(const uint8_t *trailer, int b)
{
    unsigned c1 = (trailer[7] >> (4 + b)) & 1, c2 = (trailer[8] >> b) & 1,
             c3 = (trailer[8] >> (4 + b)) & 1;
    return c1 << 2 | c2 << 1 | c3;
}

/* May a data block be read / written with the key the sector was opened with? */
static bool data_access(const uint8_t *trailer, int b, bool key_b, bool write)
{
    switch (access_bits(trailer, b)) {
    case 0: /* 000: transport, A|B both ways */
        return true;
    case 2: /* 010 */
    case 1: /* 001 */
        return !write;
    case 4: /* 100: read A|B, write B */
    case 6: /* 110 */
        return !write || key_b;
    case 3: /* 011: read B, write B */
        return key_b;
    case 5: /* 101: read B */
        return key_b && !write;
    default: /* 111 */
        return false;
    }
}

/* MIFARE Classic command as the PN532 would relay it. The PN532 runs Crypto-1
 * itself; here authentication is a key comparison with the same outcome. */
static uint8_t classic_exchange(struct emu *e, struct card *c, const uint8_t *cmd, size_t n,
                                uint8_t *ans, size_t *alen)
{
    *alen = 0;
    if (e->halted || n == 0)
        return 0x01; /* the card does not answer */
    uint8_t blk = n > 1 ? cmd[1] : 0xFF;
    const uint8_t *trailer = blk < YN_LAYOUT_MFC_BLOCKS ? c->mfc[blk / 4 * 4 + 3] : NULL;
    switch (cmd[0]) {
    case 0x60:
    case 0x61: {
        if (n != 12 || !trailer)
            return 0x01;
        const uint8_t *uid4 = c->sim.tag.uid + c->sim.tag.uid_len - 4;
        const uint8_t *key = cmd[0] == 0x60 ? trailer : trailer + 10;
        if (memcmp(cmd + 8, uid4, 4) != 0 || memcmp(cmd + 2, key, 6) != 0) {
            e->halted = true; /* a failed Crypto-1 authentication halts the card */
            e->mfc_sector = -1;
            return 0x14;
        }
        e->mfc_sector = blk / 4;
        e->mfc_key_b = cmd[0] == 0x61;
        return 0x00;
    }
    case 0x30:
        if (n != 2 || !trailer)
            return 0x01;
        if (e->mfc_sector != blk / 4)
            return 0x14;
        memcpy(ans, c->mfc[blk], 16);
        if (blk % 4 == 3) {
            memset(ans, 0, 6); /* key A never reads back */
            if (access_bits(trailer, 3) != 1)
                memset(ans + 10, 0, 6); /* key B readable only in the transport setting */
        } else if (!data_access(trailer, blk % 4, e->mfc_key_b, false)) {
            e->halted = true; /* the card NAKs and the PN532 reports a failure */
            return 0x14;
        }
        *alen = 16;
        return 0x00;
    case 0xA0:
        if (n != 18 || !trailer || blk == 0)
            return 0x01;
        if (e->mfc_sector != blk / 4)
            return 0x14;
        if (blk % 4 != 3 && !data_access(trailer, blk % 4, e->mfc_key_b, true)) {
            e->halted = true;
            return 0x14;
        }
        if (e->fault == F_PULL_ON_WRITE && --e->fault_count <= 0) {
            /* torn write: half the block made it, then the card left */
            e->fault = F_NONE;
            memcpy(c->mfc[blk], cmd + 2, 8);
            say("pull-on-write: card %d left during the write of block %u (torn)", e->present, blk);
            card_leaves(e);
            return 0x01;
        }
        memcpy(c->mfc[blk], cmd + 2, 16);
        return 0x00;
    case 0x50: /* HLTA: no answer by definition */
        e->halted = true;
        e->mfc_sector = -1;
        return 0x01;
    default:
        return 0x01;
    }
}

/* Commands after which the card's content has changed: CommitTransaction and
 * the issuing desk's. (WriteData is not: a backup file only changes at the
 * commit, and a pull there is what the stamp test wants.) */
static bool desfire_is_write_like(const uint8_t *frame, size_t n)
{
    uint8_t ins;
    if (n >= 5 && frame[0] == 0x90 && frame[2] == 0 && frame[3] == 0)
        ins = frame[1];
    else if (n >= 1)
        ins = frame[0];
    else
        return false;
    return ins == YN_DF_CMD_COMMIT || ins == YN_DF_CMD_CHANGE_KEY ||
           ins == YN_DF_CMD_CREATE_APPLICATION || ins == YN_DF_CMD_DELETE_APPLICATION ||
           ins == YN_DF_CMD_CREATE_STD_DATA_FILE || ins == YN_DF_CMD_CREATE_BACKUP_DATA_FILE;
}

/* The tear fault counts card commands (InDataExchange frames to a card in
 * the field); true when this one is the N-th. */
static bool tear_now(struct emu *e)
{
    if (e->fault != F_TEAR || --e->fault_count > 0)
        return false;
    e->fault = F_NONE;
    return true;
}

static size_t exchange_with_card(struct emu *e, struct card *c, const uint8_t *d, size_t n,
                                 uint8_t *out);

/* InDataExchange: the card's answer (status byte + data) into out. A tear
 * makes the card leave before the command reaches it, or right after it
 * executed the command (a DESFire transaction it committed stays; an
 * uncommitted one is lost with the field; a Classic block is written). */
static size_t data_exchange(struct emu *e, const uint8_t *d, size_t n, uint8_t *out)
{
    struct card *c = current(e);
    if (n < 1 || d[0] != 0x01 || !e->selected) {
        out[0] = 0x27; /* not acceptable in this context: no such target */
        return 1;
    }
    if (!c) {
        out[0] = 0x01; /* the card left: it does not answer */
        return 1;
    }
    bool tear = tear_now(e);
    if (tear && !e->tear_after) {
        say("tear: card %d left before the command reached it", e->present);
        card_leaves(e);
        out[0] = 0x01;
        return 1;
    }
    size_t o = exchange_with_card(e, c, d, n, out);
    if (tear && current(e) == c) {
        say("tear: card %d executed the command and left before its reply", e->present);
        card_leaves(e);
        out[0] = 0x01;
        return 1;
    }
    return o;
}

static size_t exchange_with_card(struct emu *e, struct card *c, const uint8_t *d, size_t n,
                                 uint8_t *out)
{
    size_t alen = 0;
    uint8_t st;
    if (is_desfire(c)) {
        if (!e->iso_dep) {
            out[0] = 0x01;
            return 1;
        }
        if (e->fault == F_PULL_ON_WRITE && desfire_is_write_like(d + 1, n - 1) &&
            --e->fault_count <= 0) {
            e->fault = F_NONE;
            say("pull-on-write: card %d left before command %02x", e->present,
                d[1] == 0x90 ? d[2] : d[1]);
            card_leaves(e);
            out[0] = 0x01;
            return 1;
        }
        if (yn_df_picc_frame(&c->df, d + 1, n - 1, out + 1, ANS_MAX - 1, &alen) != YN_OK) {
            out[0] = 0x01;
            return 1;
        }
        st = 0x00;
    } else {
        st = classic_exchange(e, c, d + 1, n - 1, out + 1, &alen);
    }
    out[0] = st;
    return 1 + alen;
}

/* InListPassiveTarget, 106 kbps type A only. */
static size_t list_passive(struct emu *e, const uint8_t *d, size_t n, uint8_t *out)
{
    size_t f = 0;
    out[f++] = 0x00; /* NbTg */
    if (n < 2 || d[1] != 0x00 || !e->field_on)
        return f;
    deactivate(e);
    struct card *c = current(e);
    if (!c)
        return f;
    const yn_nfc_tag *t = &c->sim.tag;
    if (n > 2) { /* a particular UID asked for: plain, or with the cascade tag 0x88 */
        const uint8_t *want = d + 2;
        size_t want_len = n - 2;
        uint8_t flat[12] = {0};
        size_t flat_len = 0;
        if (want_len > sizeof flat)
            return f;
        for (size_t i = 0; i < want_len; i++)
            if (!(want[i] == 0x88 && (i == 0 || i == 4) && want_len > 7))
                flat[flat_len++] = want[i];
        if (flat_len != t->uid_len || memcmp(flat, t->uid, t->uid_len) != 0)
            return f;
    }
    out[0] = 1;
    out[f++] = 0x01; /* Tg */
    bool df = is_desfire(c);
    out[f++] = df ? 0x03 : 0x00;
    out[f++] = t->uid_len == 4 ? 0x04 : 0x44;
    out[f++] = df ? 0x20 : 0x08;
    out[f++] = (uint8_t)t->uid_len;
    memcpy(out + f, t->uid, t->uid_len);
    f += t->uid_len;
    e->selected = true;
    if (df && (e->params & 0x10)) { /* fAutomaticRATS: the PN532 got the ATS */
        static const uint8_t ats[6] = {0x06, 0x75, 0x77, 0x81, 0x02, 0x80};
        memcpy(out + f, ats, sizeof ats);
        f += sizeof ats;
        e->iso_dep = true;
    }
    return f;
}

/* --- the PN532 --------------------------------------------------------- */

static bool is_card_command(uint8_t cmd)
{
    return cmd == 0x4A || cmd == 0x40 || cmd == 0x42;
}

/* Send an answer now, or later for the slow fault. */
static void answer(struct emu *e, uint8_t cmd, const uint8_t *data, size_t n)
{
    uint8_t frame[ANS_MAX + 16];
    bool bad = false;
    if (is_card_command(cmd) && e->fault == F_BADCRC) {
        e->fault = F_NONE;
        bad = true;
    }
    size_t f = build_frame(cmd, data, n, frame, bad);
    if (is_card_command(cmd) && (e->fault == F_SLOW || e->fault == F_DRIBBLE)) {
        e->pending_step_ms = e->fault == F_DRIBBLE ? e->fault_ms : 0;
        if (e->fault == F_SLOW)
            e->fault = F_NONE; /* dribble stays until cleared */
        memcpy(e->pending, frame, f);
        e->pending_len = f;
        e->pending_pos = 0;
        e->pending_due_ms = now_ms() + e->fault_ms;
        return;
    }
    e->answers_out++;
    write_all(e, frame, f);
}

static void handle_command(struct emu *e, const uint8_t *cmd, size_t n)
{
    uint8_t out[ANS_MAX];
    size_t o = 0;
    const uint8_t *d = cmd + 1;
    size_t dn = n - 1;
    e->frames_in++;
    e->pending_len = 0; /* a new command cancels a delayed answer */
    send_ack(e);
    if (is_card_command(cmd[0]) && e->fault == F_SILENT) {
        e->fault = F_NONE;
        say("silent: no answer to command %02x", cmd[0]);
        return;
    }
    switch (cmd[0]) {
    case 0x00: /* Diagnose: echo the communication test */
        memcpy(out, d, dn);
        o = dn;
        if (dn >= 1 && d[0] != 0x00) {
            out[0] = 0x00;
            o = 1;
        }
        break;
    case 0x02: /* GetFirmwareVersion: PN532 v1.6, ISO14443A/B + ISO18092 */
        out[o++] = 0x32;
        out[o++] = 0x01;
        out[o++] = 0x06;
        out[o++] = 0x07;
        break;
    case 0x04: /* GetGeneralStatus */
        out[o++] = 0x00;
        out[o++] = e->field_on;
        out[o++] = e->selected ? 1 : 0;
        if (e->selected) {
            out[o++] = 0x01;
            out[o++] = 0x00;
            out[o++] = 0x00;
            out[o++] = 0x00;
        }
        out[o++] = 0x00;
        break;
    case 0x06: /* ReadRegister */
        for (size_t i = 0; i + 1 < dn; i += 2)
            out[o++] = e->regs[(size_t)d[i] << 8 | d[i + 1]];
        break;
    case 0x08: /* WriteRegister */
        for (size_t i = 0; i + 2 < dn; i += 3)
            e->regs[(size_t)d[i] << 8 | d[i + 1]] = d[i + 2];
        break;
    case 0x12: /* SetParameters */
        if (dn >= 1)
            e->params = d[0];
        break;
    case 0x14: /* SAMConfiguration */
        break;
    case 0x16: /* PowerDown */
        out[o++] = 0x00;
        break;
    case 0x32: /* RFConfiguration */
        if (dn >= 2 && d[0] == 0x01) {
            e->field_on = d[1] & 0x01;
            if (!e->field_on)
                deactivate(e);
        }
        break;
    case 0x4A:
        o = list_passive(e, d, dn, out);
        break;
    case 0x40:
        o = data_exchange(e, d, dn, out);
        if (o > 2 && e->fault == F_SHORT) { /* the next answer that carries data */
            e->fault = F_NONE;
            o = 2;
        } else if (o >= 1 && e->fault == F_GARBAGE) {
            e->fault = F_NONE;
            for (size_t i = 1; i < o || i < 12; i++)
                out[i] = (uint8_t)(rand() & 0xFF);
            o = o < 12 ? 12 : o;
            out[0] = 0x00;
        } else if (o >= 1 && e->fault == F_STATUS80) {
            e->fault = F_NONE;
            out[0] |= 0x80;
        }
        break;
    case 0x42: /* InCommunicateThru: raw frames; no card here answers them */
        out[o++] = 0x01;
        break;
    case 0x44: /* InDeselect */
    case 0x52: /* InRelease */
        deactivate(e);
        out[o++] = 0x00;
        break;
    case 0x50: /* InSelect */
        out[o++] = e->present >= 0 ? 0x00 : 0x27;
        break;
    case 0x60: /* InAutoPoll: nothing found */
        out[o++] = 0x00;
        break;
    default:
        send_error_frame(e); /* syntax error: unknown command */
        return;
    }
    answer(e, cmd[0], out, o);
}

/* Take complete frames out of the host's byte stream. Junk (wake-up 55 55 00…,
 * postambles, host ACKs, frames with bad checksums) is skipped. */
static void parse_host_bytes(struct emu *e)
{
    for (;;) {
        size_t i = 0;
        while (i + 1 < e->rx_len && !(e->rx[i] == 0x00 && e->rx[i + 1] == 0xFF))
            i++;
        if (i + 1 >= e->rx_len) { /* keep a trailing 00: it may start 00 FF */
            bool keep = e->rx_len && e->rx[e->rx_len - 1] == 0x00;
            e->rx[0] = 0x00;
            e->rx_len = keep ? 1 : 0;
            return;
        }
        memmove(e->rx, e->rx + i, e->rx_len - i);
        e->rx_len -= i;
        if (e->rx_len < 4)
            return;
        size_t hdr, len;
        uint8_t l = e->rx[2], lcs = e->rx[3];
        if (l == 0x00 && lcs == 0xFF) { /* ACK (abort) from the host */
            memmove(e->rx, e->rx + 4, e->rx_len - 4);
            e->rx_len -= 4;
            e->pending_len = 0;
            continue;
        }
        if (l == 0xFF && lcs == 0xFF) {
            if (e->rx_len < 7)
                return;
            if (((e->rx[4] + e->rx[5] + e->rx[6]) & 0xFF) != 0) {
                memmove(e->rx, e->rx + 2, e->rx_len - 2);
                e->rx_len -= 2;
                continue;
            }
            hdr = 7;
            len = (size_t)e->rx[4] << 8 | e->rx[5];
        } else {
            if (((l + lcs) & 0xFF) != 0) {
                memmove(e->rx, e->rx + 2, e->rx_len - 2);
                e->rx_len -= 2;
                continue;
            }
            hdr = 4;
            len = l;
        }
        if (len < 2 || len > CMD_MAX) {
            memmove(e->rx, e->rx + 2, e->rx_len - 2);
            e->rx_len -= 2;
            continue;
        }
        if (e->rx_len < hdr + len + 1)
            return;
        const uint8_t *body = e->rx + hdr;
        uint8_t sum = 0;
        for (size_t k = 0; k < len + 1; k++)
            sum = (uint8_t)(sum + body[k]);
        uint8_t cmd[CMD_MAX];
        bool ok = body[0] == 0xD4 && sum == 0;
        if (ok) {
            memcpy(cmd, body + 1, len - 1);
            hexdump(e, "RX", e->rx, hdr + len + 1);
        }
        memmove(e->rx, e->rx + hdr + len + 1, e->rx_len - (hdr + len + 1));
        e->rx_len -= hdr + len + 1;
        if (ok)
            handle_command(e, cmd, len - 1);
    }
}

/* --- pty and control --------------------------------------------------- */

static int plug(struct emu *e)
{
    struct termios tio;
    if (openpty(&e->master, &e->slave, e->pts, NULL, NULL) < 0) {
        perror("pn532-emu: openpty");
        return -1;
    }
    tcgetattr(e->slave, &tio);
    cfmakeraw(&tio);
    tcsetattr(e->slave, TCSANOW, &tio);
    fcntl(e->master, F_SETFL, fcntl(e->master, F_GETFL) | O_NONBLOCK);
    fcntl(e->master, F_SETFD, FD_CLOEXEC);
    fcntl(e->slave, F_SETFD, FD_CLOEXEC);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.new", e->link);
    unlink(tmp);
    if (symlink(e->pts, tmp) < 0 || rename(tmp, e->link) < 0) {
        perror("pn532-emu: symlink");
        return -1;
    }
    e->plugged = true;
    e->rx_len = 0;
    e->pending_len = 0;
    return 0;
}

static void unplug(struct emu *e)
{
    if (!e->plugged)
        return;
    unlink(e->link);
    close(e->master);
    close(e->slave);
    e->plugged = false;
    deactivate(e);
}

static bool set_fault(struct emu *e, const char *kind, const char *arg, const char *when)
{
    static const struct {
        const char *name;
        enum fault f;
    } kinds[] = {{"none", F_NONE},
                 {"silent", F_SILENT},
                 {"slow", F_SLOW},
                 {"badcrc", F_BADCRC},
                 {"pull-on-write", F_PULL_ON_WRITE},
                 {"short", F_SHORT},
                 {"garbage", F_GARBAGE},
                 {"status80", F_STATUS80},
                 {"dribble", F_DRIBBLE},
                 {"tear", F_TEAR}};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(kind, kinds[i].name) != 0)
            continue;
        if (kinds[i].f == F_SLOW || kinds[i].f == F_DRIBBLE) {
            char *end = NULL;
            long ms = arg ? strtol(arg, &end, 10) : -1;
            if (!arg || *end || ms < 0 || ms > 600000)
                return false;
            e->fault_ms = (int)ms;
        }
        e->fault_count = 1;
        if (kinds[i].f == F_TEAR) { /* tear N before|after */
            char *end = NULL;
            long count = arg ? strtol(arg, &end, 10) : -1;
            if (!arg || *end || count < 1 || count > 1000 || !when ||
                (strcmp(when, "before") != 0 && strcmp(when, "after") != 0))
                return false;
            e->fault_count = (int)count;
            e->tear_after = strcmp(when, "after") == 0;
        }
        if (kinds[i].f == F_PULL_ON_WRITE && arg) {
            char *end = NULL;
            long count = strtol(arg, &end, 10);
            if (*end || count < 1 || count > 1000)
                return false;
            e->fault_count = (int)count;
        }
        e->fault = kinds[i].f;
        return true;
    }
    return false;
}

/* One control line. Returns false on quit. */
static bool control_line(struct emu *e, char *line)
{
    char *words[4] = {0};
    int nw = 0;
    for (char *tok = strtok(line, " \t\r"); tok && nw < 4; tok = strtok(NULL, " \t\r"))
        words[nw++] = tok;
    if (nw == 0 || words[0][0] == '#')
        return true;
    const char *w = words[0];
    if (!strcmp(w, "present") && nw == 2) {
        char *end = NULL;
        long idx = strtol(words[1], &end, 10);
        if (*end || idx < 0 || idx >= e->n_cards) {
            say("error: present: no card %s (have %d)", words[1], e->n_cards);
            return true;
        }
        deactivate(e);
        e->present = (int)idx;
        say("ok present %ld %s", idx, e->cards[idx].sim.label);
    } else if (!strcmp(w, "remove") && nw == 1) {
        card_leaves(e);
        say("ok remove");
    } else if (!strcmp(w, "fault") && nw >= 2 && set_fault(e, words[1], words[2], words[3])) {
        say("ok fault %s%s%s%s%s", words[1], words[2] ? " " : "", words[2] ? words[2] : "",
            words[3] ? " " : "", words[3] ? words[3] : "");
    } else if (!strcmp(w, "unplug") && nw == 1) {
        unplug(e);
        say("ok unplug");
    } else if (!strcmp(w, "plug") && nw == 1) {
        if (!e->plugged && plug(e) == 0)
            say("ok plug %s -> %s", e->link, e->pts);
        else
            say("error: plug");
    } else if (!strcmp(w, "verbose") && nw == 2) {
        e->verbose = !strcmp(words[1], "on");
        say("ok verbose %s", e->verbose ? "on" : "off");
    } else if (!strcmp(w, "stats") && nw == 1) {
        say("stats frames=%lu answers=%lu present=%d", e->frames_in, e->answers_out, e->present);
    } else if (!strcmp(w, "quit") && nw == 1) {
        say("ok quit");
        return false;
    } else {
        say("error: unknown command '%s' (present N, remove, fault KIND [MS|N [before|after]], "
            "unplug, plug, "
            "verbose on|off, stats, quit)",
            w);
    }
    return true;
}

static bool read_control(struct emu *e)
{
    ssize_t r = read(e->ctl, e->ctl_buf + e->ctl_len, sizeof e->ctl_buf - 1 - e->ctl_len);
    if (r <= 0)
        return true;
    e->ctl_len += (size_t)r;
    e->ctl_buf[e->ctl_len] = '\0';
    char *nl;
    while ((nl = memchr(e->ctl_buf, '\n', e->ctl_len))) {
        *nl = '\0';
        char line[sizeof e->ctl_buf];
        snprintf(line, sizeof line, "%s", e->ctl_buf);
        size_t used = (size_t)(nl - e->ctl_buf) + 1;
        memmove(e->ctl_buf, nl + 1, e->ctl_len - used);
        e->ctl_len -= used;
        if (!control_line(e, line))
            return false;
    }
    if (e->ctl_len == sizeof e->ctl_buf - 1)
        e->ctl_len = 0; /* an endless line: drop it */
    return true;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: yinian-pn532-emu --link PATH --cards FILE [--control FIFO] [--present N]\n"
            "                        [--verbose]\n"
            "  --link PATH     symlink to the emulator's pty (libnfc: pn532_uart:PATH)\n"
            "  --cards FILE    virtual cards, label|type|uid-hex|key-hex|record-hex|stamp-hex\n"
            "                  (type desfire, classic1k, desfire-blank, classic1k-blank)\n"
            "  --control FIFO  control commands, one a line (created if missing):\n"
            "                    present N | remove | fault KIND [MS] | unplug | plug |\n"
            "                    verbose on|off | stats | quit\n"
            "                  KIND: silent, slow MS, dribble MS, badcrc, pull-on-write [N],\n"
            "                        short, garbage, status80, none (one-shot: the next card\n"
            "                        command; pull-on-write: the N-th write, default 1),\n"
            "                        tear N before|after (the card leaves at the N-th card\n"
            "                        command from now, before it or after it ran: reply lost)\n"
            "  --present N     start with card N (0-based line among the cards) in the field\n");
}

int main(int argc, char **argv)
{
    static struct emu e = {.master = -1, .slave = -1, .ctl = -1, .present = -1};
    e.mfc_sector = -1;
    e.field_on = true;
    int start_card = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--link") && v)
            e.link = argv[++i];
        else if (!strcmp(a, "--cards") && v)
            e.cards_path = argv[++i];
        else if (!strcmp(a, "--control") && v)
            e.control = argv[++i];
        else if (!strcmp(a, "--present") && v)
            start_card = atoi(argv[++i]);
        else if (!strcmp(a, "--verbose"))
            e.verbose = true;
        else {
            usage();
            return 2;
        }
    }
    if (!e.link || !e.cards_path) {
        usage();
        return 2;
    }
    if (load_cards(&e) != 0)
        return 1;
    if (start_card >= e.n_cards) {
        fprintf(stderr, "pn532-emu: --present %d: only %d cards\n", start_card, e.n_cards);
        return 2;
    }
    e.present = start_card;
    srand(1);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    bool made_fifo = false;
    if (e.control) {
        struct stat st;
        if (stat(e.control, &st) != 0) {
            if (mkfifo(e.control, 0600) != 0) {
                perror("pn532-emu: mkfifo");
                return 1;
            }
            made_fifo = true;
        }
        /* O_RDWR: we are a writer too, so the FIFO never reports end of file */
        e.ctl = open(e.control, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (e.ctl < 0) {
            perror("pn532-emu: control");
            return 1;
        }
    }
    if (plug(&e) != 0) /* the link appears last: when it exists, we are ready */
        return 1;
    say("ready link=%s pty=%s cards=%d", e.link, e.pts, e.n_cards);

    bool running = true;
    while (running && !stop_flag) {
        struct pollfd pfd[2];
        int n = 0, ctl_i = -1, pty_i = -1;
        if (e.ctl >= 0) {
            ctl_i = n;
            pfd[n++] = (struct pollfd){.fd = e.ctl, .events = POLLIN};
        }
        if (e.plugged) {
            pty_i = n;
            pfd[n++] = (struct pollfd){.fd = e.master, .events = POLLIN};
        }
        int wait_ms = 1000;
        if (e.pending_len) {
            int64_t left = e.pending_due_ms - now_ms();
            wait_ms = left < 0 ? 0 : (int)left;
        }
        int r = poll(pfd, (nfds_t)n, wait_ms);
        if (r < 0 && errno != EINTR)
            break;
        /* control first: a command written before the host's next frame applies to it */
        if (r > 0 && ctl_i >= 0 && (pfd[ctl_i].revents & POLLIN))
            running = read_control(&e);
        if (r > 0 && pty_i >= 0 && e.plugged && (pfd[pty_i].revents & (POLLIN | POLLHUP))) {
            ssize_t got = read(e.master, e.rx + e.rx_len, sizeof e.rx - e.rx_len);
            if (got > 0) {
                e.rx_len += (size_t)got;
                parse_host_bytes(&e);
                if (e.rx_len == sizeof e.rx)
                    e.rx_len = 0;
            }
        }
        if (e.pending_len && now_ms() >= e.pending_due_ms) {
            size_t part = e.pending_step_ms ? 1 : e.pending_len - e.pending_pos;
            write_all(&e, e.pending + e.pending_pos, part);
            e.pending_pos += part;
            e.pending_due_ms = now_ms() + e.pending_step_ms;
            if (e.pending_pos >= e.pending_len) {
                e.answers_out++;
                e.pending_len = 0;
            }
        }
    }
    unplug(&e);
    if (e.ctl >= 0)
        close(e.ctl);
    if (made_fifo)
        unlink(e.control);
    free(e.cards);
    return 0;
}
