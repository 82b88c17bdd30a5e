/* yinian-pn532-emu — an emulated PN532 reader (HSU/UART framing) on a pty,
 * holding virtual cards, with a timing model and faults on cue.
 *
 *   yinian-pn532-emu --link PATH --cards FILE [--control FIFO] [--present N]
 *                    [--timing] [--verbose]
 *
 * libnfc (and Debian's nfc-list, nfc-poll, nfc-mfclassic, libfreefare) talk to
 * it unmodified through the connstring pn532_uart:PATH. The cards are the
 * independent card models of tools/emu/ (DESFire EV1, Classic 1K, a type B
 * card); the PN532 side follows the PN532 user manual (UM0701-02) and the
 * activation ISO/IEC 14443-3/-4. hal/nfc/READER.md ("The emulated PN532") lists
 * the commands, the card file, the control grammar and the timing model. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "emu/df_card.h"
#include "emu/emu_io.h"
#include "emu/mfc_card.h"
#include "emu/timing.h"

#define RX_MAX    4096
#define CMD_MAX   600
#define ANS_MAX   600
#define CARDS_MAX 64
#define OUTQ      4

/* The 颐年卡 layouts (firmware/core/CARD.md §5-6) the loader builds issued cards with. */
static const uint8_t our_aid[3] = {0x4E, 0x59, 0xF5};
static const uint8_t foreign_aid[3] = {0x01, 0x55, 0x48}; /* "a transit application" */
#define OUR_KEY_SETTINGS 0x0B

enum kind { K_DESFIRE, K_CLASSIC, K_TYPEB };

struct card {
    char label[48];
    enum kind kind;
    uint8_t uid[10];
    size_t uid_len;
    bool random_uid;     /* a new UID at every activation: type A 08 xx xx xx; type B
                            any PUPI (ISO/IEC 14443-3 lets a PUPI be random) */
    uint8_t cur_uid[10]; /* the UID of this activation */
    emu_df_card df;
    emu_mfc_card mfc;
};

enum fault {
    F_NONE,
    F_SILENT,
    F_SLOW,
    F_BADCRC,
    F_PULL_ON_WRITE,
    F_SHORT,
    F_GARBAGE,
    F_STATUS80,
    F_DRIBBLE,
    F_TEAR,
};

struct outq {
    uint8_t b[ANS_MAX + 16];
    size_t n, pos;
    int64_t due_us; /* when the next part goes out */
    int step_us;    /* dribble: one byte per step */
};

struct emu {
    yn_emu_pty pty;
    yn_emu_ctl ctl;
    const char *cards_path;
    bool verbose, timing;
    uint8_t rx[RX_MAX];
    size_t rx_len;
    struct outq q[OUTQ];
    int nq;
    int64_t busy_until_us; /* timing: the chip is still working until then */

    /* the PN532 */
    uint8_t regs[0x10000];
    uint8_t params;
    bool field_on;
    uint8_t retries; /* MxRtyPassiveActivation */
    unsigned chip_baud, host_seen_baud;
    unsigned rf_kbps;
    /* the target */
    struct card *cards;
    int n_cards, present;
    bool selected, l4, type_b;
    uint8_t blk; /* ISO-DEP block number (PN532-driven and raw) */
    /* InAutoPoll waiting for a card */
    bool autopoll;
    int64_t autopoll_end_us; /* 0: endless */
    uint8_t ap_types[16];
    size_t ap_n;

    enum fault fault;
    int fault_ms, fault_count;
    bool tear_after;

    unsigned long frames_in, answers_out, card_cmds, uart_bytes, listings, mismatched;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

#define say yn_emu_say

/* --- output, with the timing model -------------------------------------- */

static void queue_out(struct emu *e, const uint8_t *b, size_t n, int64_t due_us, int step_us)
{
    if (e->nq == OUTQ)
        return;
    struct outq *o = &e->q[e->nq++];
    memcpy(o->b, b, n);
    o->n = n;
    o->pos = 0;
    o->due_us = due_us;
    o->step_us = step_us;
}

/* Send what is due. */
static void flush_due(struct emu *e)
{
    int64_t now = yn_emu_now_us();
    while (e->nq && now >= e->q[0].due_us) {
        struct outq *o = &e->q[0];
        size_t part = o->step_us ? 1 : o->n - o->pos;
        if (e->verbose)
            yn_emu_hexdump("TX", o->b + o->pos, part);
        yn_emu_pty_write(&e->pty, o->b + o->pos, part);
        e->uart_bytes += part;
        o->pos += part;
        if (o->pos < o->n) {
            o->due_us = now + o->step_us;
            return;
        }
        e->answers_out++;
        memmove(&e->q[0], &e->q[1], (size_t)(e->nq - 1) * sizeof e->q[0]);
        e->nq--;
    }
}

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
    uint8_t sum = (uint8_t)(0xD5 + cmd + 1);
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

/* --- cards -------------------------------------------------------------- */

static struct card *current(struct emu *e)
{
    return e->present >= 0 ? &e->cards[e->present] : NULL;
}

static void card_reset(struct card *c)
{
    emu_df_reset(&c->df);
    emu_mfc_reset(&c->mfc);
}

/* The target is released or the field drops: volatile state is lost. */
static void deactivate(struct emu *e)
{
    struct card *c = current(e);
    if (c)
        card_reset(c);
    e->selected = e->l4 = e->type_b = false;
    e->rf_kbps = 106;
}

/* The card leaves the field. The PN532 still believes its target selected,
 * so the next card command gets no answer (status 0x01). */
static void card_leaves(struct emu *e)
{
    struct card *c = current(e);
    if (c)
        card_reset(c); /* uncommitted DESFire changes are discarded */
    e->present = -1;
    e->l4 = false;
}

static int hex_field(const char *s, uint8_t *out, size_t cap, size_t *n)
{
    *n = 0;
    for (const char *p = s; *p;) {
        if (*p == ' ' || *p == '\t') {
            p++;
            continue;
        }
        unsigned v;
        if (*n >= cap || sscanf(p, "%2x", &v) != 1 || !p[1])
            return -1;
        out[(*n)++] = (uint8_t)v;
        p += 2;
    }
    return 0;
}

/* A DESFire PICC master key "type:hex" (des, 2k3des, 3k3des, aes), for
 * blank cards whose issuer changed it. */
static int picc_key_field(emu_df_card *df, const char *s)
{
    uint8_t k[24];
    size_t n = 0;
    const char *colon = strchr(s, ':');
    if (!colon)
        return *s ? -1 : 0;
    size_t tl = (size_t)(colon - s);
    if (hex_field(colon + 1, k, sizeof k, &n) != 0)
        return -1;
    memset(df->picc_key.k, 0, sizeof df->picc_key.k);
    if (tl == 3 && !strncmp(s, "des", 3) && n == 8) {
        memcpy(df->picc_key.k, k, 8);
        memcpy(df->picc_key.k + 8, k, 8);
        df->picc_key_type = EMU_DF_KEY_2K3DES;
    } else if (tl == 6 && !strncmp(s, "2k3des", 6) && n == 16) {
        memcpy(df->picc_key.k, k, 16);
        df->picc_key_type = EMU_DF_KEY_2K3DES;
    } else if (tl == 6 && !strncmp(s, "3k3des", 6) && n == 24) {
        memcpy(df->picc_key.k, k, 24);
        df->picc_key_type = EMU_DF_KEY_3K3DES;
    } else if (tl == 3 && !strncmp(s, "aes", 3) && n == 16) {
        memcpy(df->picc_key.k, k, 16);
        df->picc_key_type = EMU_DF_KEY_AES;
    } else {
        return -1;
    }
    return 0;
}

/* An issued 颐年卡 DESFire: application F5594E (settings 0x0B), AES key 0 =
 * a stand-in for the issuer's (key XOR FF), key 1 = the card key; file 1 the
 * record, file 2 the stamp (backup file). */
static int build_issued_desfire(struct card *c, const uint8_t *key, const uint8_t *rec, size_t rl,
                                const uint8_t *stamp, size_t sl)
{
    uint8_t keys[2][16];
    for (int i = 0; i < 16; i++) {
        keys[0][i] = (uint8_t)(key[i] ^ 0xFF);
        keys[1][i] = key[i];
    }
    if (emu_df_add_app(&c->df, our_aid, OUR_KEY_SETTINGS, EMU_DF_KEY_AES, 2,
                       (const uint8_t(*)[16])keys) != 0)
        return -1;
    if (rl &&
        emu_df_add_file(&c->df, our_aid, 1, EMU_DF_STD, 3, 1, 0, 0, 0, (uint32_t)rl, rec, rl) != 0)
        return -1;
    uint32_t ss = sl > 16 ? (uint32_t)sl : 16;
    return emu_df_add_file(&c->df, our_aid, 2, EMU_DF_BACKUP, 3, 1, 1, 1, 0, ss, stamp, sl);
}

static int build_classic(struct card *c, const uint8_t *key, bool blank, const uint8_t *rec,
                         size_t rl, const uint8_t *stamp, size_t sl)
{
    emu_mfc_card *m = &c->mfc;
    emu_mfc_init(m, c->uid, c->uid_len);
    if (blank)
        return 0;
    static const uint8_t issued[4] = {0x78, 0x77, 0x88, 0x69};
    for (int s = 1; s < 16; s++) {
        uint8_t *t = m->mem[s * 4 + 3];
        memcpy(t, key, 6);
        if (s <= 4)
            memcpy(t + 6, issued, 4);
        memcpy(t + 10, key + 6, 6);
    }
    uint8_t area[144] = {0};
    if (rl > sizeof area)
        return -1;
    memcpy(area, rec, rl);
    for (int i = 0; i < 9; i++)
        memcpy(m->mem[(1 + i / 3) * 4 + i % 3], area + 16 * i, 16);
    if (sl == 16) {
        memcpy(m->mem[16], stamp, 16);
        memcpy(m->mem[17], stamp, 16);
    } else if (sl == 32) {
        memcpy(m->mem[16], stamp, 16);
        memcpy(m->mem[17], stamp + 16, 16);
    } else if (sl) {
        return -1;
    }
    return 0;
}

/* One card line: label|type|uid|key|record|stamp. */
static const char *load_line(struct card *c, char *line)
{
    char *f[6] = {0};
    int n = 0;
    for (char *p = line; n < 6; n++) {
        f[n] = p;
        char *bar = strchr(p, '|');
        if (!bar) {
            n++;
            break;
        }
        *bar = '\0';
        p = bar + 1;
    }
    if (n < 4)
        return "expected label|type|uid|key|record|stamp";
    for (int i = n; i < 6; i++)
        f[i] = "";
    snprintf(c->label, sizeof c->label, "%s", f[0]);
    uint8_t key[24] = {0}, rec[EMU_DF_FILE_MAX], stamp[64];
    size_t kl = 0, rl = 0, sl = 0;
    const char *type = f[1];
    if (hex_field(f[2], c->uid, sizeof c->uid, &c->uid_len) != 0 ||
        (c->uid_len != 4 && c->uid_len != 7 && c->uid_len != 10))
        return "the UID must be 4, 7 or 10 bytes of hex";
    bool picc_typed = strchr(f[3], ':') != NULL;
    if ((!picc_typed && hex_field(f[3], key, sizeof key, &kl) != 0) ||
        hex_field(f[4], rec, sizeof rec, &rl) != 0 ||
        hex_field(f[5], stamp, sizeof stamp, &sl) != 0)
        return "bad hex in key, record or stamp";
    memcpy(c->cur_uid, c->uid, c->uid_len);
    if (!strcmp(type, "desfire") || !strcmp(type, "desfire-blank") ||
        !strcmp(type, "desfire-foreign") || !strcmp(type, "desfire-random")) {
        c->kind = K_DESFIRE;
        if (c->uid_len != 7)
            return "a DESFire UID is 7 bytes";
        emu_df_init(&c->df, c->uid, c->uid_len);
        if (picc_typed && picc_key_field(&c->df, f[3]) != 0)
            return "PICC key: des:HEX16, 2k3des:HEX32, 3k3des:HEX48 or aes:HEX32";
        if (!strcmp(type, "desfire")) {
            if (kl != 16)
                return "a DESFire card key is 16 bytes";
            if (build_issued_desfire(c, key, rec, rl, stamp, sl) != 0)
                return "record or stamp does not fit the DESFire layout";
        } else if (!strcmp(type, "desfire-foreign")) {
            uint8_t k[1][16] = {{0}};
            if (kl == 16)
                memcpy(k[0], key, 16);
            if (emu_df_add_app(&c->df, foreign_aid, 0x09, EMU_DF_KEY_AES, 1,
                               (const uint8_t(*)[16])k) != 0 ||
                emu_df_add_file(&c->df, foreign_aid, 1, EMU_DF_BACKUP, 3, 0, 0, 0, 0, 32, NULL,
                                0) != 0)
                return "cannot build the foreign DESFire";
        } else if (!strcmp(type, "desfire-random")) {
            c->random_uid = c->df.random_uid = true;
        }
        return NULL;
    }
    if (!strcmp(type, "classic1k") || !strcmp(type, "classic1k-blank")) {
        c->kind = K_CLASSIC;
        bool blank = !strcmp(type, "classic1k-blank");
        if (!blank && kl != 16)
            return "a Classic card key is 16 bytes";
        if (build_classic(c, key, blank, rec, rl, stamp, sl) != 0)
            return "record or stamp does not fit the Classic layout";
        return NULL;
    }
    if (!strcmp(type, "iso14443b") || !strcmp(type, "iso14443b-random")) {
        c->kind = K_TYPEB;
        c->random_uid = !strcmp(type, "iso14443b-random");
        if (c->uid_len != 4)
            return "a type B PUPI is 4 bytes";
        return NULL;
    }
    return "type must be desfire, desfire-blank, desfire-foreign, desfire-random, classic1k, "
           "classic1k-blank, iso14443b or iso14443b-random";
}

static int load_cards(struct emu *e)
{
    FILE *f = fopen(e->cards_path, "r");
    if (!f) {
        perror(e->cards_path);
        return -1;
    }
    e->cards = calloc(CARDS_MAX, sizeof *e->cards);
    if (!e->cards) {
        fclose(f);
        return -1;
    }
    char line[2048];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0] || line[0] == '#')
            continue;
        if (e->n_cards == CARDS_MAX) {
            fprintf(stderr, "pn532-emu: %s:%d: more than %d cards\n", e->cards_path, lineno,
                    CARDS_MAX);
            fclose(f);
            return -1;
        }
        const char *why = load_line(&e->cards[e->n_cards], line);
        if (why) {
            fprintf(stderr, "pn532-emu: %s:%d: %s\n", e->cards_path, lineno, why);
            fclose(f);
            return -1;
        }
        e->n_cards++;
    }
    fclose(f);
    return 0;
}

/* --- the RF side -------------------------------------------------------- */

static const uint8_t desfire_ats[6] = {0x06, 0x75, 0x77, 0x81, 0x02, 0x80};

/* Activate the card in the field (ISO 14443-3 anticollision; RATS when
 * want_ats and the card speaks ISO-DEP). Target data as InListPassiveTarget
 * returns it into out (from Tg on); *rf_us = time on the air. */
static size_t activate_a(struct emu *e, struct card *c, bool want_ats, uint8_t *out, int64_t *rf_us)
{
    if (c->random_uid) { /* ISO 14443-3 random UID: 08 + 3 random bytes, each activation */
        c->cur_uid[0] = 0x08;
        for (int i = 1; i < 4; i++)
            c->cur_uid[i] = (uint8_t)(rand() & 0xFF);
    }
    size_t uid_len = c->random_uid ? 4 : c->uid_len;
    bool df = c->kind == K_DESFIRE;
    size_t f = 0;
    out[f++] = 0x01;                       /* Tg */
    out[f++] = df ? 0x03 : 0x00;           /* ATQA: DESFire 03 44 (03 04 random ID) */
    out[f++] = uid_len == 4 ? 0x04 : 0x44; /* UID size in bits 7-8 */
    out[f++] = df ? 0x20 : 0x08;           /* SAK */
    out[f++] = (uint8_t)uid_len;
    memcpy(out + f, c->cur_uid, uid_len);
    f += uid_len;
    int levels = uid_len == 4 ? 1 : uid_len == 7 ? 2 : 3;
    /* REQA+ATQA, per level ANTICOLLISION (2 → 5) and SELECT (9 → 3) */
    int64_t t = emu_rf_us(1, 106) + emu_rf_us(2, 106) + 2 * EMU_T_FDT_US;
    t += levels * (emu_rf_us(2, 106) + emu_rf_us(5, 106) + emu_rf_us(9, 106) + emu_rf_us(3, 106) +
                   4 * EMU_T_FDT_US);
    e->l4 = false;
    if (df && want_ats) {
        memcpy(out + f, desfire_ats, sizeof desfire_ats);
        f += sizeof desfire_ats;
        t += emu_rf_us(4, 106) + emu_rf_us(8, 106) + 2 * EMU_T_FDT_US + EMU_T_SFGT_US;
        e->l4 = true;
        e->blk = 0;
    }
    e->selected = true;
    *rf_us = t;
    return f;
}

/* InListPassiveTarget: 106 kbps type A (0x00) or type B (0x03). */
static size_t list_passive(struct emu *e, const uint8_t *d, size_t n, uint8_t *out, int64_t *rf_us)
{
    size_t f = 0;
    out[f++] = 0x00; /* NbTg */
    *rf_us = (int64_t)(e->retries + 1) * EMU_T_REQA_WAIT_US;
    e->listings++;
    if (n < 2 || !e->field_on)
        return f;
    deactivate(e);
    struct card *c = current(e);
    if (d[1] == 0x03) { /* type B: REQB/ATQB, ATTRIB */
        if (!c || c->kind != K_TYPEB)
            return f;
        static const uint8_t app_data[4] = {0x00, 0x00, 0x00, 0x00};
        if (c->random_uid) /* a new PUPI at each REQB */
            for (int i = 0; i < 4; i++)
                c->cur_uid[i] = (uint8_t)(rand() & 0xFF);
        out[0] = 1;
        out[f++] = 0x01;
        out[f++] = 0x50; /* ATQB */
        memcpy(out + f, c->random_uid ? c->cur_uid : c->uid, 4);
        f += 4;
        memcpy(out + f, app_data, 4);
        f += 4;
        out[f++] = 0x00; /* bit rates: 106 only */
        out[f++] = 0x71; /* max frame 128, ISO 14443-4 */
        out[f++] = 0x85; /* FWI 8, no NAD/CID */
        out[f++] = 0x01; /* ATTRIB_RES length */
        out[f++] = 0x00;
        e->selected = e->l4 = e->type_b = true;
        e->blk = 0;
        *rf_us = emu_rf_us(5, 106) + emu_rf_us(14, 106) + emu_rf_us(11, 106) + emu_rf_us(3, 106) +
                 2 * EMU_T_FDT_US;
        return f;
    }
    if (d[1] != 0x00 || !c || c->kind == K_TYPEB)
        return f;
    if (n > 2) { /* a particular UID asked for: plain, or with cascade tags 0x88 */
        uint8_t flat[12] = {0};
        size_t fl = 0;
        if (n - 2 > sizeof flat)
            return f;
        for (size_t i = 2; i < n; i++)
            if (!(d[i] == 0x88 && (i - 2 == 0 || i - 2 == 4) && n - 2 > 7))
                flat[fl++] = d[i];
        size_t ul = c->random_uid ? 4 : c->uid_len;
        if (fl != ul || memcmp(flat, c->cur_uid, ul) != 0)
            return f;
    }
    out[0] = 1;
    f += activate_a(e, c, (e->params & 0x10) != 0, out + f, rf_us);
    return f;
}

/* One ISO-DEP exchange with the card's application layer (DESFire or the
 * type B card, which knows no command). */
static void apdu(struct emu *e, struct card *c, const uint8_t *in, size_t n, uint8_t *out,
                 size_t *olen, int64_t *card_us)
{
    (void)e;
    if (c->kind == K_DESFIRE) {
        emu_df_frame(&c->df, in, n, out, olen);
        *card_us = c->df.busy_us;
        return;
    }
    out[0] = 0x6D; /* type B card: instruction not supported */
    out[1] = 0x00;
    *olen = 2;
    *card_us = 300;
}

/* DESFire commands after which the card's content has changed (pull-on-write). */
static bool desfire_write_like(const uint8_t *fr, size_t n)
{
    uint8_t ins = n >= 5 && fr[0] == 0x90 && fr[2] == 0 && fr[3] == 0 ? fr[1] : n ? fr[0] : 0;
    return ins == 0xC7 || ins == 0xC4 || ins == 0xCA || ins == 0xDA || ins == 0xCD || ins == 0xCB;
}

/* The tear fault counts card commands; true when this one is the N-th. */
static bool tear_now(struct emu *e)
{
    if (e->fault != F_TEAR || --e->fault_count > 0)
        return false;
    e->fault = F_NONE;
    return true;
}

/* InDataExchange: the card's answer (status + data) into out. */
static size_t data_exchange(struct emu *e, const uint8_t *d, size_t n, uint8_t *out, int64_t *rf_us)
{
    struct card *c = current(e);
    size_t alen = 0;
    int64_t card_us = 0;
    *rf_us = 0;
    if (n < 1 || d[0] != 0x01 || !e->selected) {
        out[0] = 0x27; /* no such target */
        return 1;
    }
    bool tear = tear_now(e);
    if (tear && !e->tear_after) {
        say("tear: card %d left before the command reached it", e->present);
        card_leaves(e);
        c = NULL;
    }
    if (!c) {
        out[0] = 0x01;                                /* the card does not answer */
        *rf_us = emu_rf_us(n + 2, e->rf_kbps) + 5000; /* FWT spent waiting */
        return 1;
    }
    uint8_t st;
    if (c->kind == K_CLASSIC) {
        bool torn = e->fault == F_PULL_ON_WRITE && n > 1 && d[1] == 0xA0 && --e->fault_count <= 0;
        st = emu_mfc_command(&c->mfc, d + 1, n - 1, out + 1, &alen, torn);
        *rf_us = emu_rf_us(n + 1, 106) + emu_rf_us(alen + 2, 106) + 2 * EMU_T_FDT_US +
                 (n > 1 && d[1] == 0xA0 ? EMU_T_MFC_WRITE_US : EMU_T_MFC_US);
        if (torn) {
            e->fault = F_NONE;
            say("pull-on-write: card %d left during the write of block %u (torn)", e->present,
                d[2]);
            card_leaves(e);
        }
    } else {
        if (!e->l4) {
            out[0] = 0x01; /* no RATS: the card does not understand raw frames */
            return 1;
        }
        if (c->kind == K_DESFIRE && e->fault == F_PULL_ON_WRITE &&
            desfire_write_like(d + 1, n - 1) && --e->fault_count <= 0) {
            e->fault = F_NONE;
            say("pull-on-write: card %d left before command %02x", e->present,
                n > 2 && d[1] == 0x90 ? d[2] : d[1]);
            card_leaves(e);
            out[0] = 0x01;
            return 1;
        }
        apdu(e, c, d + 1, n - 1, out + 1, &alen, &card_us);
        /* I-blocks: PCB + INF + CRC each way; the PN532 chains above FSC 64 */
        size_t tx = n - 1, blocks = tx > 61 ? (tx + 60) / 61 : 1;
        *rf_us = emu_rf_us(tx + 3 * blocks, e->rf_kbps) + emu_rf_us(alen + 3, e->rf_kbps) +
                 (int64_t)(2 * blocks) * EMU_T_FDT_US + card_us +
                 (int64_t)(blocks - 1) * (emu_rf_us(3, e->rf_kbps) + EMU_T_FDT_US);
        e->blk ^= 1;
        st = 0x00;
    }
    if (tear) {
        say("tear: card %d executed command %02x and left before its reply", e->present,
            n > 2 && d[1] == 0x90 ? d[2] : d[1]);
        card_leaves(e);
        out[0] = 0x01;
        return 1;
    }
    out[0] = st;
    return 1 + alen;
}

/* InCommunicateThru: raw frames (CRC by the PN532). ISO 14443-4 blocks for a
 * card in protocol state, RATS for one that is only selected. */
static size_t communicate_thru(struct emu *e, const uint8_t *d, size_t n, uint8_t *out,
                               int64_t *rf_us)
{
    struct card *c = current(e);
    bool tear = tear_now(e);
    *rf_us = emu_rf_us(n + 2, e->rf_kbps) + EMU_T_FDT_US;
    if (tear && !e->tear_after) {
        say("tear: card %d left before the command reached it", e->present);
        card_leaves(e);
        c = NULL;
    }
    if (!c || !e->selected || n == 0 || c->kind == K_CLASSIC) {
        out[0] = 0x01; /* no answer (a Classic card ignores RATS) */
        *rf_us += 5000;
        return 1;
    }
    size_t o = 1;
    if (!e->l4) {
        if (d[0] != 0xE0 || n != 2 || c->kind != K_DESFIRE) {
            out[0] = 0x01;
            return 1;
        }
        memcpy(out + 1, desfire_ats, sizeof desfire_ats); /* RATS → ATS */
        o += sizeof desfire_ats;
        e->l4 = true;
        e->blk = 0;
    } else {
        uint8_t pcb = d[0];
        size_t hdr = (pcb & 0x08) ? 2 : 1;      /* CID follows */
        if ((pcb & 0xE2) == 0x02 && n >= hdr) { /* I-block */
            size_t alen = 0;
            int64_t card_us = 0;
            memcpy(out + 1, d, hdr);
            apdu(e, c, d + hdr, n - hdr, out + 1 + hdr, &alen, &card_us);
            o += hdr + alen;
            e->blk = pcb & 1;
            *rf_us += card_us;
        } else if ((pcb & 0xE6) == 0xA2) { /* R(ACK/NAK): acknowledge */
            out[o++] = (uint8_t)(0xA2 | (pcb & 0x08) | e->blk);
            if (pcb & 0x08)
                out[o++] = d[1];
        } else if ((pcb & 0xF7) == 0xC2) { /* S(DESELECT) */
            memcpy(out + 1, d, n);
            o += n;
            deactivate(e);
        } else {
            out[0] = 0x01; /* not a block a card answers */
            return 1;
        }
    }
    *rf_us += emu_rf_us(o + 1, e->rf_kbps) + EMU_T_FDT_US;
    if (tear) {
        say("tear: card %d executed the frame and left before its reply", e->present);
        card_leaves(e);
        out[0] = 0x01;
        return 1;
    }
    out[0] = 0x00;
    return o;
}

/* InAutoPoll: answer with the first card of a requested type, or nothing. */
static size_t autopoll_answer(struct emu *e, uint8_t *out, int64_t *rf_us)
{
    struct card *c = current(e);
    size_t f = 0;
    out[f++] = 0;
    *rf_us = 0;
    if (!c || !e->field_on)
        return f;
    for (size_t i = 0; i < e->ap_n; i++) {
        uint8_t t = e->ap_types[i];
        bool a = t == 0x00 || t == 0x10 || t == 0x20;
        bool ok = c->kind == K_TYPEB ? (t == 0x03 || t == 0x23)
                  : t == 0x20        ? c->kind == K_DESFIRE
                                     : a;
        if (!ok)
            continue;
        uint8_t data[64];
        size_t dl;
        deactivate(e);
        if (c->kind == K_TYPEB) {
            uint8_t req[2] = {0x01, 0x03};
            dl = list_passive(e, req, 2, data, rf_us) - 1;
            memmove(data, data + 1, dl);
        } else {
            dl = activate_a(e, c, t == 0x20, data, rf_us);
        }
        out[0] = 1;
        out[f++] = t;
        out[f++] = (uint8_t)dl;
        memcpy(out + f, data, dl);
        f += dl;
        break;
    }
    return f;
}

/* --- the PN532 ------------------------------------------------------------ */

static bool is_card_command(uint8_t cmd)
{
    return cmd == 0x4A || cmd == 0x40 || cmd == 0x42 || cmd == 0x60;
}

/* Queue the answer frame of cmd: ready work_us after the host frame ended. */
static void answer(struct emu *e, uint8_t cmd, const uint8_t *data, size_t n, int64_t t0,
                   int64_t work_us)
{
    uint8_t frame[ANS_MAX + 16];
    bool bad = false;
    if (is_card_command(cmd) && e->fault == F_BADCRC) {
        e->fault = F_NONE;
        bad = true;
    }
    size_t f = build_frame(cmd, data, n, frame, bad);
    int64_t due = t0 + (e->timing ? work_us + emu_uart_us(f, e->chip_baud) : 0);
    int step = 0;
    if (is_card_command(cmd) && (e->fault == F_SLOW || e->fault == F_DRIBBLE)) {
        due += (int64_t)e->fault_ms * 1000;
        step = e->fault == F_DRIBBLE ? e->fault_ms * 1000 : 0;
        if (e->fault == F_SLOW)
            e->fault = F_NONE; /* dribble stays until cleared */
    }
    queue_out(e, frame, f, due, step);
    e->busy_until_us = due;
}

static void handle_command(struct emu *e, const uint8_t *cmd, size_t n, int64_t t0)
{
    uint8_t out[ANS_MAX];
    size_t o = 0;
    const uint8_t *d = cmd + 1;
    size_t dn = n - 1;
    int64_t rf = 0, work = EMU_T_PN532_CMD_US;
    static const uint8_t ack[6] = {0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00};
    e->frames_in++;
    e->nq = 0; /* a new command cancels a delayed answer */
    e->autopoll = false;
    queue_out(e, ack, sizeof ack,
              t0 + (e->timing ? EMU_T_PN532_ACK_US + emu_uart_us(6, e->chip_baud) : 0), 0);
    if (cmd[0] == 0x40 || cmd[0] == 0x42)
        e->card_cmds++;
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
            out[o++] = (uint8_t)(e->rf_kbps == 424 ? 2 : e->rf_kbps == 212 ? 1 : 0);
            out[o++] = (uint8_t)(e->rf_kbps == 424 ? 2 : e->rf_kbps == 212 ? 1 : 0);
            out[o++] = e->type_b ? 0x03 : 0x00;
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
    case 0x10: { /* SetSerialBaudRate: answered at the old rate, then the new one */
        static const unsigned rates[9] = {9600,   19200,  38400,  57600,  115200,
                                          230400, 460800, 921600, 1288000};
        if (dn != 1 || d[0] > 8) {
            out[o++] = 0x01;
            break;
        }
        answer(e, cmd[0], NULL, 0, t0, work);
        e->chip_baud = rates[d[0]];
        say("baud %u", e->chip_baud);
        return;
    }
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
        } else if (dn >= 4 && d[0] == 0x05) {
            e->retries = d[3] == 0xFF ? 0 : d[3]; /* MxRtyPassiveActivation */
        }
        break;
    case 0x4A:
        o = list_passive(e, d, dn, out, &rf);
        work = EMU_T_PN532_CARD_US + rf;
        break;
    case 0x4E: /* InPSL: PPS to the ISO-DEP target */
        if (dn == 3 && e->selected && e->l4 && !e->type_b && d[1] <= 2 && d[2] <= 2) {
            e->rf_kbps = 106u << (d[1] > d[2] ? d[2] : d[1]);
            out[o++] = 0x00;
            rf = emu_rf_us(5, 106) + emu_rf_us(3, 106) + 2 * EMU_T_FDT_US;
            say("rf %u kbit/s", e->rf_kbps);
        } else {
            out[o++] = 0x27; /* not an ISO-DEP target: not acceptable now */
        }
        work = EMU_T_PN532_CARD_US + rf;
        break;
    case 0x40:
        o = data_exchange(e, d, dn, out, &rf);
        work = EMU_T_PN532_CARD_US + rf;
        if (o > 2 && e->fault == F_SHORT) {
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
    case 0x42:
        o = communicate_thru(e, d, dn, out, &rf);
        work = EMU_T_PN532_CARD_US + rf;
        break;
    case 0x44: /* InDeselect */
    case 0x52: /* InRelease */
        deactivate(e);
        out[o++] = 0x00;
        break;
    case 0x50: /* InSelect */
        out[o++] = e->present >= 0 ? 0x00 : 0x27;
        break;
    case 0x60: { /* InAutoPoll: PollNr, Period (× 150 ms), types */
        if (dn < 3) {
            out[o++] = 0x00;
            break;
        }
        e->ap_n = dn - 2 < sizeof e->ap_types ? dn - 2 : sizeof e->ap_types;
        memcpy(e->ap_types, d + 2, e->ap_n);
        o = autopoll_answer(e, out, &rf);
        if (out[0] == 0) { /* nothing yet: answer when a card comes, or at the end */
            e->autopoll = true;
            e->autopoll_end_us =
                d[0] == 0xFF ? 0 : t0 + (int64_t)d[0] * d[1] * 150000 * (int64_t)e->ap_n;
            return;
        }
        work = EMU_T_PN532_CARD_US + rf;
        break;
    }
    default: {
        static const uint8_t err[8] = {0x00, 0x00, 0xFF, 0x01, 0xFF, 0x7F, 0x81, 0x00};
        queue_out(e, err, sizeof err, t0, 0); /* syntax error: unknown command */
        return;
    }
    }
    answer(e, cmd[0], out, o, t0, work);
}

/* A card arrived (or the time ran out) while InAutoPoll waits. */
static void autopoll_check(struct emu *e)
{
    if (!e->autopoll)
        return;
    int64_t now = yn_emu_now_us(), rf = 0;
    uint8_t out[128];
    size_t o = autopoll_answer(e, out, &rf);
    if (out[0] == 0 && (!e->autopoll_end_us || now < e->autopoll_end_us))
        return;
    e->autopoll = false;
    answer(e, 0x60, out, o, now, EMU_T_PN532_CARD_US + rf);
}

/* Take complete frames out of the host's byte stream. Junk (wake-up 55 55
 * 00…, postambles, host ACKs, frames with bad checksums) is skipped. */
static void parse_host_bytes(struct emu *e, int64_t t_read)
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
            e->nq = 0;
            e->autopoll = false;
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
        size_t total = hdr + len + 1;
        if (ok) {
            memcpy(cmd, body + 1, len - 1);
            if (e->verbose)
                yn_emu_hexdump("RX", e->rx, total);
        }
        memmove(e->rx, e->rx + total, e->rx_len - total);
        e->rx_len -= total;
        e->uart_bytes += total + 2; /* with preamble and postamble */
        if (!ok)
            continue;
        /* the host must talk at the chip's rate, or the chip hears noise */
        unsigned host = yn_emu_pty_client_baud(&e->pty);
        if (host && host != e->chip_baud) {
            if (host != e->host_seen_baud)
                say("host at %u baud, the chip at %u: frame not understood", host, e->chip_baud);
            e->host_seen_baud = host;
            e->mismatched++;
            continue;
        }
        /* timing: the frame's last byte arrives after the line time; the chip
         * takes it once it is done with the previous one */
        int64_t t0 = t_read + (e->timing ? emu_uart_us(total + 2, e->chip_baud) : 0);
        if (e->timing && e->busy_until_us > t0)
            t0 = e->busy_until_us;
        handle_command(e, cmd, len - 1, t0);
    }
}

/* --- control ------------------------------------------------------------- */

static bool set_fault(struct emu *e, char **w, int nw)
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
    const char *arg = nw > 2 ? w[2] : NULL;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (strcmp(w[1], kinds[i].name) != 0)
            continue;
        char *end = NULL;
        e->fault_count = 1;
        if (kinds[i].f == F_SLOW || kinds[i].f == F_DRIBBLE) {
            long ms = arg ? strtol(arg, &end, 10) : -1;
            if (!arg || *end || ms < 0 || ms > 600000)
                return false;
            e->fault_ms = (int)ms;
        }
        if (kinds[i].f == F_PULL_ON_WRITE && arg) {
            long count = strtol(arg, &end, 10);
            if (*end || count < 1 || count > 1000)
                return false;
            e->fault_count = (int)count;
        }
        if (kinds[i].f == F_TEAR) { /* tear N before|after */
            long count = arg ? strtol(arg, &end, 10) : -1;
            if (!arg || *end || count < 1 || count > 100000 || nw != 4 ||
                (strcmp(w[3], "before") && strcmp(w[3], "after")))
                return false;
            e->fault_count = (int)count;
            e->tear_after = !strcmp(w[3], "after");
        }
        e->fault = kinds[i].f;
        return true;
    }
    return false;
}

static bool control_line(void *arg, char *line)
{
    struct emu *e = arg;
    char *w[5] = {0};
    int nw = yn_emu_words(line, w, 5);
    if (nw == 0 || w[0][0] == '#')
        return true;
    if (!strcmp(w[0], "present") && nw == 2) {
        char *end = NULL;
        long idx = strtol(w[1], &end, 10);
        if (*end || idx < 0 || idx >= e->n_cards) {
            say("error: present: no card %s (have %d)", w[1], e->n_cards);
            return true;
        }
        deactivate(e);
        e->present = (int)idx;
        say("ok present %ld %s", idx, e->cards[idx].label);
        autopoll_check(e);
    } else if (!strcmp(w[0], "remove") && nw == 1) {
        card_leaves(e);
        say("ok remove");
    } else if (!strcmp(w[0], "fault") && nw >= 2 && set_fault(e, w, nw)) {
        say("ok fault %s%s%s%s%s", w[1], nw > 2 ? " " : "", nw > 2 ? w[2] : "", nw > 3 ? " " : "",
            nw > 3 ? w[3] : "");
    } else if (!strcmp(w[0], "timing") && nw == 2) {
        e->timing = !strcmp(w[1], "on");
        say("ok timing %s", e->timing ? "on" : "off");
    } else if (!strcmp(w[0], "unplug") && nw == 1) {
        yn_emu_pty_unplug(&e->pty);
        deactivate(e);
        say("ok unplug");
    } else if (!strcmp(w[0], "plug") && nw == 1) {
        if (!e->pty.plugged && yn_emu_pty_plug(&e->pty) == 0) {
            e->rx_len = 0;
            e->nq = 0;
            say("ok plug %s -> %s", e->pty.link, e->pty.pts);
        } else {
            say("error: plug");
        }
    } else if (!strcmp(w[0], "power-cycle") && nw == 1) {
        e->chip_baud = 115200; /* the PN532 boots at 115200 baud */
        deactivate(e);
        say("ok power-cycle");
    } else if (!strcmp(w[0], "verbose") && nw == 2) {
        e->verbose = !strcmp(w[1], "on");
        say("ok verbose %s", e->verbose ? "on" : "off");
    } else if (!strcmp(w[0], "stats") && nw <= 2) {
        say("stats frames=%lu answers=%lu card_commands=%lu uart_bytes=%lu listings=%lu "
            "present=%d baud=%u rf_kbps=%u mismatched=%lu",
            e->frames_in, e->answers_out, e->card_cmds, e->uart_bytes, e->listings, e->present,
            e->chip_baud, e->rf_kbps, e->mismatched);
        if (nw == 2 && !strcmp(w[1], "reset"))
            e->frames_in = e->answers_out = e->card_cmds = e->uart_bytes = e->listings = 0;
    } else if (!strcmp(w[0], "quit") && nw == 1) {
        say("ok quit");
        return false;
    } else {
        say("error: unknown command '%s' (present N, remove, fault KIND [ARG], timing on|off, "
            "unplug, plug, power-cycle, verbose on|off, stats [reset], quit)",
            w[0]);
    }
    return true;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: yinian-pn532-emu --link PATH --cards FILE [--control FIFO] [--present N]\n"
            "                        [--timing] [--verbose]\n"
            "  --link PATH     symlink to the emulator's pty (libnfc: pn532_uart:PATH)\n"
            "  --cards FILE    virtual cards, label|type|uid-hex|key-hex|record-hex|stamp-hex\n"
            "                  (type desfire, desfire-blank, desfire-foreign, desfire-random,\n"
            "                  classic1k, classic1k-blank, iso14443b, iso14443b-random)\n"
            "  --control FIFO  control commands, one a line (created if missing):\n"
            "                    present N | remove | fault KIND [ARG] | timing on|off |\n"
            "                    unplug | plug | power-cycle | verbose on|off | stats [reset] |\n"
            "                    quit\n"
            "                  KIND: silent, slow MS, dribble MS, badcrc, pull-on-write [N],\n"
            "                        short, garbage, status80, tear N before|after, none\n"
            "  --present N     start with card N (0-based line among the cards) in the field\n"
            "  --timing        answer as late as a real PN532, RF link and card would\n"
            "                  (hal/nfc/READER.md \"Timing model\"); default: at once\n");
}

int main(int argc, char **argv)
{
    static struct emu e = {.pty = {.master = -1, .slave = -1}, .ctl = {.fd = -1}, .present = -1};
    const char *control = NULL;
    e.field_on = true;
    e.chip_baud = 115200;
    e.rf_kbps = 106;
    e.retries = 2;
    int start_card = -1;
    yn_emu_set_name("pn532-emu");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--link") && v)
            e.pty.link = argv[++i];
        else if (!strcmp(a, "--cards") && v)
            e.cards_path = argv[++i];
        else if (!strcmp(a, "--control") && v)
            control = argv[++i];
        else if (!strcmp(a, "--present") && v)
            start_card = atoi(argv[++i]);
        else if (!strcmp(a, "--timing"))
            e.timing = true;
        else if (!strcmp(a, "--verbose"))
            e.verbose = true;
        else {
            usage();
            return 2;
        }
    }
    if (!e.pty.link || !e.cards_path) {
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
    srand((unsigned)getpid());
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (yn_emu_ctl_open(&e.ctl, control) != 0)
        return 1;
    if (yn_emu_pty_plug(&e.pty) != 0) /* the link appears last: then we are ready */
        return 1;
    say("ready link=%s pty=%s cards=%d timing=%s", e.pty.link, e.pty.pts, e.n_cards,
        e.timing ? "on" : "off");

    bool running = true;
    while (running && !stop_flag) {
        struct pollfd pfd[2];
        int n = 0, ctl_i = -1, pty_i = -1;
        if (e.ctl.fd >= 0) {
            ctl_i = n;
            pfd[n++] = (struct pollfd){.fd = e.ctl.fd, .events = POLLIN};
        }
        if (e.pty.plugged) {
            pty_i = n;
            pfd[n++] = (struct pollfd){.fd = e.pty.master, .events = POLLIN};
        }
        struct timespec wait = {1, 0};
        int64_t next = e.nq                              ? e.q[0].due_us
                       : e.autopoll && e.autopoll_end_us ? e.autopoll_end_us
                                                         : 0;
        if (next) {
            int64_t left = next - yn_emu_now_us();
            if (left < 0)
                left = 0;
            wait.tv_sec = (time_t)(left / 1000000);
            wait.tv_nsec = (long)(left % 1000000) * 1000;
        }
        int r = ppoll(pfd, (nfds_t)n, &wait, NULL);
        if (r < 0 && errno != EINTR)
            break;
        /* control first: a command written before the host's next frame applies to it */
        if (r > 0 && ctl_i >= 0 && (pfd[ctl_i].revents & POLLIN))
            running = yn_emu_ctl_read(&e.ctl, control_line, &e);
        if (r > 0 && pty_i >= 0 && e.pty.plugged && (pfd[pty_i].revents & (POLLIN | POLLHUP))) {
            int64_t t_read = yn_emu_now_us();
            ssize_t got = read(e.pty.master, e.rx + e.rx_len, sizeof e.rx - e.rx_len);
            if (got > 0) {
                e.rx_len += (size_t)got;
                parse_host_bytes(&e, t_read);
                if (e.rx_len == sizeof e.rx)
                    e.rx_len = 0;
            }
        }
        autopoll_check(&e);
        flush_due(&e);
    }
    yn_emu_pty_unplug(&e.pty);
    yn_emu_ctl_close(&e.ctl);
    free(e.cards);
    return 0;
}
