/* nfc_libnfc_child.c — the libnfc worker process of the reader backend.
 *
 * Owns the nfc_context/nfc_device and does the real work for the supervising
 * parent (hal/nfc/nfc_libnfc.c): card listing, DESFire EV1 secure messaging
 * (hal/chips/desfire.c over nfc_initiator_transceive_bytes) and MIFARE Classic
 * sector access, laid out as hal/nfc/nfc_libnfc_layout.h says. Every exchange with
 * the card has an explicit timeout (never libnfc's 0 = forever). It may die
 * (libnfc abort()s on some chip answers): the parent restarts it.
 *
 * No logging here: this process was forked from a possibly threaded parent,
 * so it keeps to libnfc and plain syscalls; details travel back in the answer. */
#include "nfc_libnfc.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <fcntl.h>
#include <nfc/nfc.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "desfire.h"
#include "nfc_libnfc_layout.h"
#include "timeutil.h"

/* libnfc marks a serial port it opened with this c_iflag bit and refuses to
 * open a port that has it; a worker that died never cleared it. */
#define LIBNFC_CCLAIMED 0x80000000u

struct child {
    nfc_context *ctx;
    nfc_device *pnd;
    char port[YN_LNFC_CONN_MAX]; /* serial device of the connstring, "" if none */
    int timeout_ms;              /* per exchange with the card */
    int rf_kbps;                 /* ISO-DEP bit rate to switch DESFire cards to (InPSL) */
    bool type_b;                 /* list ISO 14443-B cards when no type A card answers */
    size_t record_len;           /* bytes of a card record (the caller's format) */
    bool selected;               /* current is activated in the field */
    yn_nfc_tag current;
    yn_df_pcd pcd;
    bool df_ready; /* DESFire: application selected and authenticated with df_key */
    uint8_t df_key[YN_NFC_KEY_LEN];
    int mfc_sector; /* Classic: authenticated sector, or -1 */
    bool mfc_key_b;
    char detail[YN_LNFC_TEXT_MAX]; /* what went wrong, for the parent's log */
};

static const nfc_modulation nm_a106 = {.nmt = NMT_ISO14443A, .nbr = NBR_106};
static const nfc_modulation nm_b106 = {.nmt = NMT_ISO14443B, .nbr = NBR_106};
/* Listing pace: a listing starts at most this often. A real PN532 takes
 * longer than this for an empty listing (three REQA attempts, hal/nfc/READER.md),
 * so it only keeps an instant emulator from being hammered. */
#define LIST_PACE_MS 4

/* "pn532_uart:/dev/ttyS1:115200" → "/dev/ttyS1" */
static void port_of(const char *connstring, char *port, size_t len)
{
    port[0] = '\0';
    const char *p = strchr(connstring, ':');
    if (!p)
        return;
    snprintf(port, len, "%s", p + 1);
    char *colon = strchr(port, ':');
    if (colon)
        *colon = '\0';
}

static bool port_gone(const struct child *st)
{
    return st->port[0] == '/' && access(st->port, F_OK) != 0;
}

/* Clear libnfc's claim on the serial port; true if there was one. */
static bool clear_stale_claim(const char *port)
{
    if (port[0] != '/')
        return false;
    int fd = open(port, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct termios tio;
    bool claimed = tcgetattr(fd, &tio) == 0 && (tio.c_iflag & LIBNFC_CCLAIMED);
    if (claimed) {
        tio.c_iflag &= ~(tcflag_t)LIBNFC_CCLAIMED;
        tcsetattr(fd, TCSANOW, &tio);
    }
    close(fd);
    return claimed;
}

static void note(struct child *st, const char *fmt, const char *what, int nfc_err)
{
    snprintf(st->detail, sizeof st->detail, fmt, what, nfc_err);
}

/* libnfc error → project status. */
static int map_nfc(struct child *st, int res)
{
    switch (res) {
    case NFC_ETIMEOUT:
        return YN_ETIMEDOUT; /* the reader did not answer in time */
    case NFC_ERFTRANS:
    case NFC_ETGRELEASED:
        return YN_ECARDGONE; /* the card did not answer, or left */
    case NFC_EMFCAUTHFAIL:
        return YN_EAUTH;
    case NFC_EIO:
        return port_gone(st) ? YN_ENODEV : YN_EPROTO; /* bad frame, or the reader vanished */
    case NFC_ENOTSUCHDEV:
        return YN_ENODEV;
    case NFC_EOVFLOW:
    case NFC_ECHIP:
        return YN_EPROTO;
    case NFC_ENOTIMPL:
    case NFC_EDEVNOTSUPP:
        return YN_ENOTSUP;
    default:
        return YN_EIO;
    }
}

static void forget_card(struct child *st)
{
    st->selected = false;
    st->df_ready = false;
    st->mfc_sector = -1;
    yn_df_pcd_reset(&st->pcd);
}

/* One exchange with the card, bounded by timeout_ms. */
static int transceive(struct child *st, const uint8_t *tx, size_t tx_len, uint8_t *rx,
                      size_t rx_cap, size_t *rx_len, const char *what)
{
    uint8_t buf[300];
    int res = nfc_initiator_transceive_bytes(st->pnd, tx, tx_len, buf, sizeof buf, st->timeout_ms);
    if (res < 0) {
        note(st, "%s: libnfc error %d", what, res);
        return map_nfc(st, res);
    }
    if ((size_t)res > rx_cap) {
        note(st, "%s: answer too long (%d bytes)", what, res);
        return YN_EPROTO;
    }
    memcpy(rx, buf, (size_t)res);
    *rx_len = (size_t)res;
    return YN_OK;
}

static int df_xfer(void *io, const uint8_t *tx, size_t tx_len, uint8_t *rx, size_t rx_cap,
                   size_t *rx_len)
{
    return transceive(io, tx, tx_len, rx, rx_cap, rx_len, "DESFire exchange");
}

static enum yn_tag_type classify(const nfc_iso14443a_info *nai)
{
    static const uint8_t desfire_ats[4] = {0x75, 0x77, 0x81, 0x02};
    if ((nai->btSak & 0x20) && nai->szAtsLen >= 5 && memcmp(nai->abtAts, desfire_ats, 4) == 0)
        return YN_TAG_DESFIRE;
    if (nai->btSak == 0x08 || nai->btSak == 0x88) /* 0x88: Infineon's Classic 1K */
        return YN_TAG_CLASSIC_1K;
    return YN_TAG_UNKNOWN;
}

/* List (or re-select by UID) a type A card. With rf_kbps above 106, libnfc
 * follows the listing with InPSL; a card that refuses the rate (MIFARE
 * Classic) is listed again at 106. */
static int select_a(struct child *st, const uint8_t *uid, size_t uid_len, nfc_target *nt)
{
    if (st->rf_kbps >= 212) {
        nfc_modulation fast = {.nmt = NMT_ISO14443A, .nbr = st->rf_kbps >= 424 ? NBR_424 : NBR_212};
        int res = nfc_initiator_select_passive_target(st->pnd, fast, uid, uid_len, nt);
        if (res >= 0)
            return res;
    }
    return nfc_initiator_select_passive_target(st->pnd, nm_a106, uid, uid_len, nt);
}

static int do_poll(struct child *st, int timeout_ms, yn_nfc_tag *tag)
{
    int64_t deadline = yn_time_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    forget_card(st);
    for (;;) {
        nfc_target nt;
        int64_t started = yn_time_mono_ms();
        /* libnfc bounds one listing itself (300 ms); NP_INFINITE_SELECT is off */
        int res = select_a(st, NULL, 0, &nt);
        bool type_b = false;
        if (res == 0 && st->type_b) { /* REQB/ATQB, ATTRIB: the PUPI is all we learn */
            res = nfc_initiator_select_passive_target(st->pnd, nm_b106, NULL, 0, &nt);
            type_b = true;
        }
        if (res < 0) {
            note(st, "%s: libnfc error %d", "card listing", res);
            return map_nfc(st, res);
        }
        if (res > 0) {
            memset(tag, 0, sizeof *tag);
            if (type_b) {
                tag->uid_len = sizeof nt.nti.nbi.abtPupi;
                memcpy(tag->uid, nt.nti.nbi.abtPupi, tag->uid_len);
                tag->type = YN_TAG_ISO14443B;
            } else {
                tag->uid_len = nt.nti.nai.szUidLen <= YN_UID_MAX ? nt.nti.nai.szUidLen : YN_UID_MAX;
                memcpy(tag->uid, nt.nti.nai.abtUid, tag->uid_len);
                tag->type = classify(&nt.nti.nai);
            }
            st->current = *tag;
            st->selected = true;
            return YN_OK;
        }
        int64_t left = deadline - yn_time_mono_ms();
        if (left <= 0)
            return YN_ENOCARD;
        /* no fixed sleep between listings: a card is seen at the next one */
        int64_t pace = started + LIST_PACE_MS - yn_time_mono_ms();
        if (pace > 0) {
            struct timespec pause = {0, (pace < left ? pace : left) * 1000000L};
            nanosleep(&pause, NULL);
        }
    }
}

/* Make sure tag is the activated card: re-select it by UID after an error. */
static int ensure_selected(struct child *st, const yn_nfc_tag *tag)
{
    if (st->selected && st->current.uid_len == tag->uid_len &&
        memcmp(st->current.uid, tag->uid, tag->uid_len) == 0)
        return YN_OK;
    forget_card(st);
    nfc_target nt;
    int res = select_a(st, tag->uid, tag->uid_len, &nt);
    if (res < 0) {
        note(st, "%s: libnfc error %d", "re-selecting the card", res);
        return map_nfc(st, res);
    }
    if (res == 0) {
        snprintf(st->detail, sizeof st->detail, "the card is no longer in the field");
        return YN_ECARDGONE;
    }
    st->current = *tag;
    st->selected = true;
    return YN_OK;
}

/* --- DESFire ----------------------------------------------------------- */

static int df_session(struct child *st, const uint8_t key[YN_NFC_KEY_LEN])
{
    static const uint8_t aid[3] = YN_LAYOUT_DF_AID_BYTES;
    if (st->df_ready && memcmp(st->df_key, key, YN_NFC_KEY_LEN) == 0)
        return YN_OK;
    st->df_ready = false;
    int rc = yn_df_select_application(&st->pcd, aid);
    if (rc != YN_OK) {
        if (rc == YN_ENOTFOUND)
            snprintf(st->detail, sizeof st->detail,
                     "no application F5594E on this DESFire (not a 颐年卡)");
        return rc;
    }
    rc = yn_df_authenticate_aes(&st->pcd, YN_LAYOUT_DF_KEY_CARD, key);
    if (rc == YN_EAUTH)
        snprintf(st->detail, sizeof st->detail,
                 "AES authentication with the card key refused (wrong key: a clone?)");
    if (rc != YN_OK)
        return rc;
    memcpy(st->df_key, key, YN_NFC_KEY_LEN);
    st->df_ready = true;
    return YN_OK;
}

static uint8_t df_file(enum yn_nfc_area area)
{
    return area == YN_NFC_AREA_RECORD ? YN_LAYOUT_DF_FILE_RECORD : YN_LAYOUT_DF_FILE_STAMP;
}

/* Our application is missing: a factory-blank card, or one that carries
 * other applications only (GetApplicationIDs; refused listing: foreign). */
static uint8_t df_classify(struct child *st)
{
    static const uint8_t card_level[3] = {0, 0, 0};
    uint8_t aids[28][3];
    size_t n = 0;
    st->df_ready = false;
    int rc = yn_df_select_application(&st->pcd, card_level);
    if (rc == YN_OK)
        rc = yn_df_get_application_ids(&st->pcd, aids, 28, &n);
    uint8_t kind = rc == YN_OK && n == 0            ? YN_CARD_KIND_BLANK
                   : rc == YN_OK || rc == YN_ELIMIT ? YN_CARD_KIND_OTHER_APP
                                                    : YN_CARD_KIND_FOREIGN;
    snprintf(st->detail, sizeof st->detail, "no application F5594E on this DESFire: %s",
             kind == YN_CARD_KIND_BLANK       ? "a blank card (no application at all)"
             : kind == YN_CARD_KIND_OTHER_APP ? "it carries other applications only"
                                              : "and it does not list its applications");
    return kind;
}

/* The record file: read with the record's size (record_len), so that the CRC of
 * the enciphered answer sits where we expect it without asking
 * GetFileSettings (one exchange less, and a card issued with key settings
 * 0x09 refuses GetFileSettings to key 1). Another size (a future format):
 * GetFileSettings, then the whole file. */
static int df_read_record(struct child *st, const uint8_t *key, uint8_t *buf, size_t cap,
                          size_t *len)
{
    uint32_t want = (uint32_t)st->record_len;
    int rc = yn_df_read_data(&st->pcd, YN_LAYOUT_DF_FILE_RECORD, 0, want, YN_DF_COMM_ENCIPHERED,
                             buf, cap, len);
    if (rc != YN_ELIMIT)
        return rc;
    st->df_ready = false; /* the error ended the session */
    rc = df_session(st, key);
    if (rc == YN_OK)
        rc = yn_df_read_data(&st->pcd, YN_LAYOUT_DF_FILE_RECORD, 0, 0, YN_DF_COMM_ENCIPHERED, buf,
                             cap, len);
    return rc;
}

static int df_read(struct child *st, enum yn_nfc_area area, const uint8_t *key, uint8_t *buf,
                   size_t cap, size_t *len)
{
    int rc = df_session(st, key);
    if (rc == YN_OK && area == YN_NFC_AREA_RECORD)
        return df_read_record(st, key, buf, cap, len);
    if (rc == YN_OK)
        rc = yn_df_read_data(&st->pcd, YN_LAYOUT_DF_FILE_STAMP, 0, YN_LAYOUT_DF_STAMP_SIZE,
                             YN_DF_COMM_ENCIPHERED, buf, cap, len);
    return rc;
}

/* Record (unless skipped) and stamp in one session: select, authenticate,
 * read, read — the session stays for the stamp write that follows. */
static int df_read_card(struct child *st, const yn_lnfc_req *rq, yn_lnfc_rsp *rs, size_t *len)
{
    size_t slen = 0;
    int rc = df_session(st, rq->key);
    if (rc == YN_ENOTFOUND) {
        rs->kind = df_classify(st);
        return rc;
    }
    if (rc == YN_OK && !(rq->flags & YN_NFC_SKIP_RECORD))
        rc = df_read_record(st, rq->key, rs->data, sizeof rs->data, len);
    if (rc == YN_OK)
        rc = yn_df_read_data(&st->pcd, YN_LAYOUT_DF_FILE_STAMP, 0, YN_LAYOUT_DF_STAMP_SIZE,
                             YN_DF_COMM_ENCIPHERED, rs->stamp, sizeof rs->stamp, &slen);
    rs->stamp_len = (uint8_t)slen;
    return rc;
}

/* WriteData then CommitTransaction: until the commit the card keeps the old
 * content (backup file), so a card pulled in between loses nothing. */
static int df_write(struct child *st, enum yn_nfc_area area, const uint8_t *key,
                    const uint8_t *data, size_t len)
{
    uint8_t buf[YN_DF_DATA_MAX] = {0};
    size_t n = len;
    if (area == YN_NFC_AREA_STAMP) {
        if (len > YN_LAYOUT_DF_STAMP_SIZE)
            return YN_ELIMIT;
        n = YN_LAYOUT_DF_STAMP_SIZE; /* the whole file: replace, zero-padded */
    }
    if (len > sizeof buf || len == 0)
        return YN_ELIMIT;
    memcpy(buf, data, len);
    int rc = df_session(st, key);
    if (rc == YN_OK)
        rc = yn_df_write_data(&st->pcd, df_file(area), 0, buf, n, YN_DF_COMM_ENCIPHERED);
    if (rc == YN_OK)
        rc = yn_df_commit(&st->pcd);
    if (rc == YN_EPERM)
        snprintf(st->detail, sizeof st->detail, "the card refused the write (access rights)");
    return rc;
}

/* --- MIFARE Classic 1K ------------------------------------------------- */

/* Authenticate the sector of block with a 6-byte Crypto-1 key. */
static int mfc_auth_raw(struct child *st, int block, bool key_b, const uint8_t key6[6])
{
    uint8_t cmd[12], rx[16];
    size_t n = 0;
    cmd[0] = key_b ? 0x61 : 0x60;
    cmd[1] = (uint8_t)block;
    memcpy(cmd + 2, key6, 6);
    memcpy(cmd + 8, st->current.uid + st->current.uid_len - 4, 4);
    st->mfc_sector = -1;
    int rc = transceive(st, cmd, sizeof cmd, rx, sizeof rx, &n, "Classic authentication");
    if (rc == YN_EAUTH)
        snprintf(st->detail, sizeof st->detail,
                 "Classic sector %d refused key %c (wrong key: a clone?)", block / 4,
                 key_b ? 'B' : 'A');
    if (rc == YN_OK && n != 0) {
        snprintf(st->detail, sizeof st->detail, "Classic authentication: unexpected answer");
        rc = YN_EPROTO;
    }
    if (rc != YN_OK)
        return rc;
    st->mfc_sector = block / 4;
    st->mfc_key_b = key_b;
    return YN_OK;
}

static int mfc_auth(struct child *st, int block, bool key_b, const uint8_t *key)
{
    if (st->mfc_sector == block / 4 && st->mfc_key_b == key_b)
        return YN_OK;
    uint8_t ka[6], kb[6];
    yn_layout_mfc_keys(key, ka, kb);
    return mfc_auth_raw(st, block, key_b, key_b ? kb : ka);
}

static int mfc_read_block(struct child *st, int block, const uint8_t *key, uint8_t out[16])
{
    uint8_t cmd[2] = {0x30, (uint8_t)block}, rx[32];
    size_t n = 0;
    int rc = mfc_auth(st, block, false, key);
    if (rc == YN_OK)
        rc = transceive(st, cmd, sizeof cmd, rx, sizeof rx, &n, "Classic read");
    if (rc == YN_OK && n != 16) {
        snprintf(st->detail, sizeof st->detail, "Classic read of block %d: %zu bytes, not 16",
                 block, n);
        rc = YN_EPROTO;
    }
    if (rc == YN_OK)
        memcpy(out, rx, 16);
    return rc;
}

static int mfc_write_block(struct child *st, int block, const uint8_t *key, const uint8_t in[16])
{
    uint8_t cmd[18] = {0xA0, (uint8_t)block}, rx[16];
    size_t n = 0;
    memcpy(cmd + 2, in, 16);
    int rc = mfc_auth(st, block, true, key);
    if (rc == YN_OK)
        rc = transceive(st, cmd, sizeof cmd, rx, sizeof rx, &n, "Classic write");
    if (rc == YN_OK && n != 0) {
        snprintf(st->detail, sizeof st->detail, "Classic write of block %d: unexpected answer",
                 block);
        rc = YN_EPROTO;
    }
    return rc;
}

static int mfc_read(struct child *st, enum yn_nfc_area area, const uint8_t *key, uint8_t *buf,
                    size_t cap, size_t *len)
{
    uint8_t area_buf[YN_LAYOUT_MFC_RECORD_AREA] = {0};
    size_t n = 0;
    int rc = YN_OK;
    if (area == YN_NFC_AREA_STAMP) {
        rc = mfc_read_block(st, YN_LAYOUT_MFC_STAMP_PRIMARY, key, area_buf);
        if (rc == YN_OK)
            rc = mfc_read_block(st, YN_LAYOUT_MFC_STAMP_COPY, key, area_buf + 16);
        n = 2 * YN_LAYOUT_MFC_STAMP_LEN;
    } else {
        for (int i = 0; rc == YN_OK && i < YN_LAYOUT_MFC_RECORD_BLOCKS; i++)
            rc = mfc_read_block(st, yn_layout_mfc_record_block(i), key, area_buf + 16 * i);
        n = sizeof area_buf;
        /* trim the zero padding of the fixed blocks to the record's size
         * ("YN" first: a record; its format byte is the card module's to judge) */
        if (area_buf[0] == 0x59 && area_buf[1] == 0x4E && st->record_len && st->record_len <= n)
            n = st->record_len;
    }
    if (rc != YN_OK)
        return rc;
    if (n > cap)
        return YN_ELIMIT;
    memcpy(buf, area_buf, n);
    *len = n;
    return YN_OK;
}

/* Our key A does not open sector 1: transport keys mean a blank card,
 * anything else a card that is not ours. */
static uint8_t mfc_classify(struct child *st, const yn_nfc_tag *tag)
{
    static const uint8_t transport[6] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    forget_card(st);
    if (ensure_selected(st, tag) != YN_OK)
        return YN_CARD_KIND_FOREIGN;
    bool blank = mfc_auth_raw(st, yn_layout_mfc_record_block(0), false, transport) == YN_OK;
    forget_card(st);
    snprintf(st->detail, sizeof st->detail, "Classic sector 1 refused our key A: %s",
             blank ? "it opens with the transport key (a blank card)"
                   : "and the transport key (not a 颐年卡, or keys changed)");
    return blank ? YN_CARD_KIND_BLANK : YN_CARD_KIND_FOREIGN;
}

static int mfc_read_card(struct child *st, const yn_lnfc_req *rq, yn_lnfc_rsp *rs, size_t *len)
{
    size_t slen = 0;
    int rc = YN_OK;
    if (!(rq->flags & YN_NFC_SKIP_RECORD))
        rc = mfc_read(st, YN_NFC_AREA_RECORD, rq->key, rs->data, sizeof rs->data, len);
    if (rc == YN_OK)
        rc = mfc_read(st, YN_NFC_AREA_STAMP, rq->key, rs->stamp, sizeof rs->stamp, &slen);
    if (rc == YN_EAUTH && !(rq->flags & YN_NFC_SKIP_RECORD))
        rs->kind = mfc_classify(st, &rq->tag);
    rs->stamp_len = (uint8_t)slen;
    return rc;
}

static int mfc_write(struct child *st, enum yn_nfc_area area, const uint8_t *key,
                     const uint8_t *data, size_t len)
{
    uint8_t area_buf[YN_LAYOUT_MFC_RECORD_AREA] = {0};
    size_t cap = area == YN_NFC_AREA_STAMP ? YN_LAYOUT_MFC_STAMP_LEN : sizeof area_buf;
    if (len == 0 || len > cap)
        return YN_ELIMIT;
    memcpy(area_buf, data, len);
    if (area == YN_NFC_AREA_STAMP) {
        /* copy first, then primary: a tear damages only one, its CRC tells which */
        int rc = mfc_write_block(st, YN_LAYOUT_MFC_STAMP_COPY, key, area_buf);
        if (rc == YN_OK)
            rc = mfc_write_block(st, YN_LAYOUT_MFC_STAMP_PRIMARY, key, area_buf);
        return rc;
    }
    int rc = YN_OK;
    for (int i = 0; rc == YN_OK && i < YN_LAYOUT_MFC_RECORD_BLOCKS; i++)
        rc = mfc_write_block(st, yn_layout_mfc_record_block(i), key, area_buf + 16 * i);
    return rc;
}

/* --- the issuing desk -------------------------------------------------- */

/* Authenticate at PICC level with the PICC master key given (any type), or
 * the factory key (DES, all zero) when none was given. */
static int df_master_auth(struct child *st, const yn_lnfc_req *rq)
{
    static const uint8_t card_level[3] = {0, 0, 0}, zero[24] = {0};
    uint8_t k[24];
    uint8_t type = rq->has_picc_key ? rq->picc_key_type : YN_PICC_KEY_DES;
    memcpy(k, rq->has_picc_key ? rq->picc_key : zero, sizeof k);
    if (type == YN_PICC_KEY_DES)
        memcpy(k + 8, k, 8); /* DES: a 2K3DES key with equal halves */
    int rc = yn_df_select_application(&st->pcd, card_level);
    if (rc == YN_OK)
        rc = type == YN_PICC_KEY_AES
                 ? yn_df_authenticate_aes(&st->pcd, 0, k)
                 : yn_df_authenticate_des(&st->pcd, 0,
                                          type == YN_PICC_KEY_3K3DES   ? YN_DF_CIPHER_3K3DES
                                          : type == YN_PICC_KEY_2K3DES ? YN_DF_CIPHER_2K3DES
                                                                       : YN_DF_CIPHER_DES,
                                          k);
    OPENSSL_cleanse(k, sizeof k);
    if (rc == YN_EAUTH)
        snprintf(st->detail, sizeof st->detail, "the PICC master key was refused%s",
                 rq->has_picc_key ? "" : " (the factory DES key; give the card's with --picc-key)");
    return rc;
}

/* Delete our application for a forced format: with the issuer's key 0, or
 * the all-zero key 0 of an interrupted format (CreateApplication sets it, our
 * format changes it last), or at PICC level with the PICC master key. */
static int df_delete_ours(struct child *st, const yn_lnfc_req *rq)
{
    static const uint8_t aid[3] = YN_LAYOUT_DF_AID_BYTES, zero[16] = {0};
    const uint8_t *tries[2] = {rq->issuer_key, zero};
    int rc = YN_EAUTH;
    for (int i = 0; i < 3 && rc == YN_EAUTH; i++) {
        if (i < 2) {
            rc = yn_df_select_application(&st->pcd, aid);
            if (rc == YN_OK)
                rc = yn_df_authenticate_aes(&st->pcd, 0, tries[i]);
        } else {
            rc = df_master_auth(st, rq);
        }
        if (rc == YN_OK)
            rc = yn_df_delete_application(&st->pcd, aid);
    }
    if (rc == YN_EAUTH)
        snprintf(st->detail, sizeof st->detail,
                 "cannot delete application F5594E: neither the issuer key 0 nor a zero key 0 "
                 "opens it, and the PICC master key was refused%s",
                 rq->has_picc_key ? "" : " (give the card's with --picc-key)");
    return rc;
}

/* Personalise a DESFire (firmware/core/CARD.md §5). Key 0 is changed last, so a
 * card pulled at any step keeps key 0 = zero or = the issuer's: --force can
 * always delete the half-made application and start again. */
static int df_format(struct child *st, const yn_lnfc_req *rq)
{
    static const uint8_t aid[3] = YN_LAYOUT_DF_AID_BYTES, card_level[3] = {0, 0, 0}, zero[16] = {0};
    yn_df_pcd *pcd = &st->pcd;
    uint8_t aids[28][3];
    size_t n = 0;
    bool ours = false;
    st->df_ready = false;
    /* a PICC master key given or to be changed: work authenticated at PICC level */
    bool picc_session = rq->has_picc_key || rq->has_new_picc_key;
    int rc = picc_session ? df_master_auth(st, rq) : yn_df_select_application(pcd, card_level);
    if (rc == YN_OK)
        rc = yn_df_get_application_ids(pcd, aids, 28, &n);
    if (rc != YN_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        ours |= memcmp(aids[i], aid, 3) == 0;
    if (ours && !(rq->flags & YN_NFC_FORCE)) {
        snprintf(st->detail, sizeof st->detail,
                 "the card already has application F5594E (formatted, or a format was "
                 "interrupted)");
        return YN_EDUPLICATE;
    }
    if (ours && (rc = df_delete_ours(st, rq)) != YN_OK)
        return rc;
    if (rq->has_new_picc_key) {
        /* CARD.md §5 step 2: the PICC master key becomes the issuer's AES key */
        if ((ours && (rc = df_master_auth(st, rq)) != YN_OK) ||
            (rc = yn_df_change_master_key_aes(pcd, rq->new_picc_key, 0)) != YN_OK)
            return rc;
        rc = yn_df_select_application(pcd, card_level);
        if (rc == YN_OK)
            rc = yn_df_authenticate_aes(pcd, 0, rq->new_picc_key);
    } else if (ours) {
        rc = picc_session ? df_master_auth(st, rq) : yn_df_select_application(pcd, card_level);
    }
    if (rc != YN_OK)
        return rc;
    rc = yn_df_create_application(pcd, aid, YN_LAYOUT_DF_KEY_SETTINGS, YN_DF_KS2_AES | 2);
    if (rc == YN_EPERM || rc == YN_EAUTH)
        snprintf(st->detail, sizeof st->detail,
                 "the card refused CreateApplication: its PICC settings need the PICC master key "
                 "(--picc-key)");
    if (rc == YN_OK)
        rc = yn_df_select_application(pcd, aid);
    if (rc == YN_OK)
        rc = yn_df_authenticate_aes(pcd, YN_LAYOUT_DF_KEY_MASTER, zero);
    if (rc == YN_OK)
        rc = yn_df_change_key(pcd, YN_LAYOUT_DF_KEY_CARD, rq->key, zero, rq->key_version);
    if (rc == YN_OK)
        rc = yn_df_create_data_file(pcd, YN_LAYOUT_DF_FILE_RECORD, YN_DF_FILE_STANDARD,
                                    YN_DF_COMM_ENCIPHERED, YN_LAYOUT_DF_KEY_CARD,
                                    YN_LAYOUT_DF_KEY_MASTER, YN_LAYOUT_DF_KEY_MASTER,
                                    YN_LAYOUT_DF_KEY_MASTER, rq->record_size);
    if (rc == YN_OK)
        rc = yn_df_create_data_file(pcd, YN_LAYOUT_DF_FILE_STAMP, YN_DF_FILE_BACKUP,
                                    YN_DF_COMM_ENCIPHERED, YN_LAYOUT_DF_KEY_CARD,
                                    YN_LAYOUT_DF_KEY_CARD, YN_LAYOUT_DF_KEY_CARD,
                                    YN_LAYOUT_DF_KEY_MASTER, YN_LAYOUT_DF_STAMP_SIZE);
    if (rc == YN_OK) /* last: the session ends with it */
        rc = yn_df_change_key(pcd, YN_LAYOUT_DF_KEY_MASTER, rq->issuer_key, NULL, rq->key_version);
    return rc;
}

/* The record as the issuer (key 0), then the stamp wiped (key 1's file). */
static int df_issue(struct child *st, const yn_lnfc_req *rq)
{
    static const uint8_t aid[3] = YN_LAYOUT_DF_AID_BYTES;
    static const uint8_t blank[YN_LAYOUT_DF_STAMP_SIZE] = {0};
    st->df_ready = false;
    int rc = yn_df_select_application(&st->pcd, aid);
    if (rc == YN_ENOTFOUND)
        snprintf(st->detail, sizeof st->detail,
                 "no application F5594E on this DESFire: format the card first");
    if (rc == YN_OK && (rc = yn_df_authenticate_aes(&st->pcd, YN_LAYOUT_DF_KEY_MASTER,
                                                    rq->issuer_key)) == YN_EAUTH)
        snprintf(st->detail, sizeof st->detail,
                 "key 0 refused the issuer's key: not formatted by this issuer (format --force)");
    if (rc == YN_OK)
        rc = yn_df_write_data(&st->pcd, YN_LAYOUT_DF_FILE_RECORD, 0, rq->data, rq->len,
                              YN_DF_COMM_ENCIPHERED);
    if (rc == YN_ELIMIT)
        snprintf(st->detail, sizeof st->detail,
                 "the record file is smaller than the record (format --force)");
    if (rc == YN_OK)
        rc = df_write(st, YN_NFC_AREA_STAMP, rq->key, blank, sizeof blank);
    return rc;
}

/* Authenticate the sector of block with the first of keys[] that opens it;
 * a refusal halts a Classic card, so it is selected again before the next.
 * *which = the index that worked. */
static int mfc_auth_first(struct child *st, const yn_nfc_tag *tag, int block,
                          const uint8_t (*keys)[6], const bool *key_b, int n, int *which)
{
    int rc = YN_EAUTH;
    for (int i = 0; i < n && rc == YN_EAUTH; i++) {
        if (i > 0) {
            forget_card(st);
            if ((rc = ensure_selected(st, tag)) != YN_OK)
                return rc;
        }
        st->mfc_sector = -1;
        rc = mfc_auth_raw(st, block, key_b[i], keys[i]);
        *which = i;
    }
    return rc;
}

/* Classic: trailers of sectors 1..15 keyed from K (CARD.md §6). Sectors
 * already keyed are recognised by key B; a torn trailer by key A. */
static int mfc_format(struct child *st, const yn_lnfc_req *rq)
{
    static const uint8_t issued[4] = YN_LAYOUT_MFC_ACCESS_ISSUED;
    static const uint8_t transport[4] = YN_LAYOUT_MFC_ACCESS_TRANSPORT;
    uint8_t keys[4][6], ka[6], kb[6];
    bool key_b[4] = {false, true, false, true};
    yn_layout_mfc_keys(rq->key, ka, kb);
    for (int sector = 1; sector < YN_LAYOUT_MFC_BLOCKS / 4; sector++) {
        int block = sector * 4 + 3, which = 0;
        /* who may rewrite this trailer once we formatted it: key B in sectors
         * 1-4 (access 78 77 88), key A in 5-15 (FF 07 80, key B readable) */
        bool ours_b = sector <= 4;
        memset(keys[0], 0xFF, 6); /* transport key A */
        memcpy(keys[1], ours_b ? kb : ka, 6);
        memcpy(keys[2], ours_b ? ka : kb, 6); /* a torn trailer: the other half new */
        memset(keys[3], 0xFF, 6);             /* transport key B */
        key_b[1] = ours_b;
        key_b[2] = !ours_b;
        int rc = mfc_auth_first(st, &rq->tag, block, (const uint8_t(*)[6])keys, key_b, 4, &which);
        if (rc == YN_EAUTH)
            snprintf(st->detail, sizeof st->detail,
                     "Classic sector %d opens with neither the transport keys nor ours "
                     "(a foreign card)",
                     sector);
        if (rc != YN_OK)
            return rc;
        if (sector == 1 && which != 0 && !(rq->flags & YN_NFC_FORCE)) {
            snprintf(st->detail, sizeof st->detail,
                     "Classic sector 1 already carries our keys (formatted, or a format was "
                     "interrupted)");
            return YN_EDUPLICATE;
        }
        uint8_t trailer[16], cmd[18] = {0xA0, (uint8_t)block}, rx[16];
        size_t n = 0;
        memcpy(trailer, ka, 6);
        memcpy(trailer + 6, sector <= 4 ? issued : transport, 4);
        memcpy(trailer + 10, kb, 6);
        memcpy(cmd + 2, trailer, 16);
        rc = transceive(st, cmd, sizeof cmd, rx, sizeof rx, &n, "Classic trailer write");
        if (rc == YN_OK && n != 0)
            rc = YN_EPROTO;
        if (rc != YN_OK)
            return rc;
        st->mfc_sector = -1; /* the sector's keys just changed */
    }
    return YN_OK;
}

static int mfc_issue(struct child *st, const yn_lnfc_req *rq)
{
    static const uint8_t blank[YN_LAYOUT_MFC_STAMP_LEN] = {0};
    int rc = mfc_write(st, YN_NFC_AREA_RECORD, rq->key, rq->data, rq->len);
    if (rc == YN_OK)
        rc = mfc_write(st, YN_NFC_AREA_STAMP, rq->key, blank, sizeof blank);
    return rc;
}

/* --- the request loop -------------------------------------------------- */

static void serve(struct child *st, const yn_lnfc_req *rq, yn_lnfc_rsp *rs)
{
    size_t len = 0;
    int rc;
    st->detail[0] = '\0';
    switch (rq->op) {
    case YN_LNFC_POLL:
        rc = do_poll(st, rq->timeout_ms, &rs->tag);
        break;
    case YN_LNFC_READ:
    case YN_LNFC_WRITE:
        if (rq->tag.uid_len < 4 || rq->tag.uid_len > YN_UID_MAX || rq->len > YN_LNFC_DATA_MAX) {
            rc = YN_EINVAL;
            break;
        }
        rc = ensure_selected(st, &rq->tag);
        if (rc != YN_OK)
            break;
        if (rq->tag.type == YN_TAG_DESFIRE)
            rc = rq->op == YN_LNFC_READ
                     ? df_read(st, rq->area, rq->key, rs->data, sizeof rs->data, &len)
                     : df_write(st, rq->area, rq->key, rq->data, rq->len);
        else if (rq->tag.type == YN_TAG_CLASSIC_1K)
            rc = rq->op == YN_LNFC_READ
                     ? mfc_read(st, rq->area, rq->key, rs->data, sizeof rs->data, &len)
                     : mfc_write(st, rq->area, rq->key, rq->data, rq->len);
        else
            rc = YN_ENOTSUP;
        if (rc != YN_OK)
            forget_card(st); /* after any error, re-select before the next operation */
        break;
    case YN_LNFC_READ_CARD:
        if (rq->tag.uid_len < 4 || rq->tag.uid_len > YN_UID_MAX) {
            rc = YN_EINVAL;
            break;
        }
        rc = ensure_selected(st, &rq->tag);
        if (rc != YN_OK)
            break;
        if (rq->tag.type == YN_TAG_DESFIRE) {
            rc = df_read_card(st, rq, rs, &len);
        } else if (rq->tag.type == YN_TAG_CLASSIC_1K) {
            rc = mfc_read_card(st, rq, rs, &len);
        } else {
            rs->kind = YN_CARD_KIND_FOREIGN;
            snprintf(st->detail, sizeof st->detail, "neither a DESFire nor a MIFARE Classic 1K");
            rc = YN_ENOTFOUND;
        }
        if (rc != YN_OK)
            forget_card(st);
        break;
    case YN_LNFC_FORMAT:
    case YN_LNFC_ISSUE:
        if (rq->tag.uid_len < 4 || rq->tag.uid_len > YN_UID_MAX || rq->len > YN_LNFC_DATA_MAX ||
            (rq->op == YN_LNFC_FORMAT &&
             (rq->record_size == 0 || rq->record_size > YN_DF_DATA_MAX)) ||
            (rq->op == YN_LNFC_ISSUE && rq->len == 0)) {
            rc = YN_EINVAL;
            break;
        }
        rc = ensure_selected(st, &rq->tag);
        if (rc != YN_OK)
            break;
        if (rq->tag.type == YN_TAG_DESFIRE)
            rc = rq->op == YN_LNFC_FORMAT ? df_format(st, rq) : df_issue(st, rq);
        else if (rq->tag.type == YN_TAG_CLASSIC_1K)
            rc = rq->op == YN_LNFC_FORMAT ? mfc_format(st, rq) : mfc_issue(st, rq);
        else
            rc = YN_ENOTSUP;
        forget_card(st); /* keys changed: a new session for whatever comes next */
        break;
    case YN_LNFC_RELEASE: {
        int res = nfc_initiator_deselect_target(st->pnd);
        forget_card(st);
        rc = res < 0 ? map_nfc(st, res) : YN_OK;
        break;
    }
    default:
        rc = YN_EINVAL;
        break;
    }
    rs->status = rc;
    rs->len = (uint16_t)len;
    snprintf(rs->text, sizeof rs->text, "%s", st->detail);
}

static void answer(int sock, const yn_lnfc_rsp *rs)
{
    ssize_t n;
    do
        n = send(sock, rs, sizeof *rs, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
}

/* --- the PN532's UART rate --------------------------------------------------
 * A PN532 boots at 115200 baud; SetSerialBaudRate (0x10) moves it until it
 * loses power. libnfc never sends it (it only sets the host's side from the
 * connstring), so the worker does, before libnfc opens the port: it first
 * asks at the wanted rate (a worker restarted after a death finds the chip
 * already there), else switches from 115200 (UM0701-02 §7.2.11: the answer
 * comes at the old rate, the host ACKs, then both use the new one). */

static speed_t speed_code(unsigned baud)
{
    switch (baud) {
    case 9600:
        return B9600;
    case 19200:
        return B19200;
    case 38400:
        return B38400;
    case 57600:
        return B57600;
    case 230400:
        return B230400;
    case 460800:
        return B460800;
    default:
        return B115200;
    }
}

static int pn532_rate_code(unsigned baud)
{
    static const unsigned rates[] = {9600, 19200, 38400, 57600, 115200, 230400, 460800};
    for (int i = 0; i < 7; i++)
        if (rates[i] == baud)
            return i;
    return -1;
}

static void set_speed(int fd, unsigned baud)
{
    struct termios tio;
    if (tcgetattr(fd, &tio) != 0)
        return;
    cfmakeraw(&tio);
    tio.c_cflag |= CLOCAL | CREAD;
    cfsetispeed(&tio, speed_code(baud));
    cfsetospeed(&tio, speed_code(baud));
    tcsetattr(fd, TCSADRAIN, &tio);
    tcflush(fd, TCIOFLUSH);
}

/* Read until want bytes or timeout_ms of silence. */
static size_t read_for(int fd, uint8_t *buf, size_t want, int timeout_ms)
{
    size_t got = 0;
    while (got < want) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            break;
        ssize_t r = read(fd, buf + got, want - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* One command frame (after the wake-up preamble); true when the chip ACKs
 * and answers with cmd + 1. */
static bool pn532_raw(int fd, const uint8_t *cmd, size_t n, int timeout_ms)
{
    static const uint8_t wake[16] = {0x55, 0x55};
    uint8_t f[32] = {0x00, 0x00, 0xFF, (uint8_t)(n + 1), (uint8_t)(0x100 - (n + 1)), 0xD4};
    uint8_t sum = 0xD4;
    memcpy(f + 6, cmd, n);
    for (size_t i = 0; i < n; i++)
        sum = (uint8_t)(sum + cmd[i]);
    f[6 + n] = (uint8_t)(0x100 - sum);
    f[7 + n] = 0x00;
    if (write(fd, wake, sizeof wake) != (ssize_t)sizeof wake ||
        write(fd, f, 8 + n) != (ssize_t)(8 + n))
        return false;
    uint8_t rx[64];
    size_t got = read_for(fd, rx, 6 + 7 + 1, timeout_ms); /* ACK + the shortest answer */
    for (size_t i = 0; i + 5 < got; i++)
        if (rx[i] == 0x00 && rx[i + 1] == 0xFF && rx[i + 2] != 0x00 && rx[i + 4] == 0xD5 &&
            rx[i + 5] == (uint8_t)(cmd[0] + 1))
            return true;
    return false;
}

/* Make the chip talk at want baud. *switched: it was at 115200 and now is not. */
static int pn532_set_baud(const char *port, unsigned want, bool *switched)
{
    *switched = false;
    int code = pn532_rate_code(want);
    if (want == 115200 || port[0] != '/')
        return YN_OK;
    if (code < 0)
        return YN_ECONFIG;
    int fd = open(port, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (fd < 0)
        return YN_ENODEV;
    struct termios saved;
    bool have = tcgetattr(fd, &saved) == 0;
    static const uint8_t version[1] = {0x02}, sam[2] = {0x14, 0x01};
    int rc = YN_OK;
    set_speed(fd, want);
    if (!pn532_raw(fd, version, 1, 60)) { /* not there yet: from the boot rate */
        set_speed(fd, 115200);
        uint8_t cmd[2] = {0x10, (uint8_t)code};
        static const uint8_t ack[6] = {0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00};
        if (!pn532_raw(fd, sam, 2, 200) || !pn532_raw(fd, cmd, 2, 200) ||
            write(fd, ack, sizeof ack) != (ssize_t)sizeof ack) {
            rc = YN_ENODEV;
        } else {
            tcdrain(fd);
            set_speed(fd, want);
            *switched = true;
            if (!pn532_raw(fd, version, 1, 200))
                rc = YN_EIO;
        }
    }
    if (have) {
        saved.c_iflag &= ~(tcflag_t)LIBNFC_CCLAIMED;
        tcsetattr(fd, TCSANOW, &saved);
    }
    close(fd);
    return rc;
}

/* "pn532_uart:/dev/ttyS1:460800" → 460800; 115200 when absent. */
static unsigned baud_of(const char *connstring)
{
    const char *p = strchr(connstring, ':');
    p = p ? strchr(p + 1, ':') : NULL;
    return p && p[1] ? (unsigned)strtoul(p + 1, NULL, 10) : 115200;
}

/* Open the reader; on failure say why in text. */
static int open_reader(struct child *st, const char *connstring, bool clear_claim, char *text,
                       size_t len)
{
    bool cleared = clear_claim && clear_stale_claim(st->port);
    bool switched = false;
    unsigned baud = baud_of(connstring);
    int brc = strncmp(connstring, "pn532_uart:", 11) == 0
                  ? pn532_set_baud(st->port, baud, &switched)
                  : YN_OK;
    if (brc != YN_OK) {
        snprintf(text, len, "reader %s: cannot bring the PN532 to %u baud (%s)", connstring, baud,
                 yn_strerror(brc));
        return brc == YN_ECONFIG ? YN_ECONFIG : YN_ENODEV;
    }
    nfc_init(&st->ctx);
    if (!st->ctx) {
        snprintf(text, len, "libnfc could not initialise");
        return YN_ENOMEM;
    }
    st->pnd = nfc_open(st->ctx, connstring);
    if (!st->pnd && !clear_claim && clear_stale_claim(st->port)) {
        cleared = true; /* a previous process died holding the port: take it back */
        st->pnd = nfc_open(st->ctx, connstring);
    }
    if (!st->pnd) {
        snprintf(text, len, "cannot open reader %s%s", connstring,
                 port_gone(st) ? " (no such device)" : " (no answer, or not a PN53x)");
        return YN_ENODEV;
    }
    int res = nfc_initiator_init(st->pnd);
    if (res >= 0)
        res = nfc_device_set_property_bool(st->pnd, NP_INFINITE_SELECT, false);
    if (res < 0) {
        snprintf(text, len, "reader %s: initiator init failed (libnfc error %d)", connstring, res);
        return map_nfc(st, res) == YN_ENODEV ? YN_ENODEV : YN_EIO;
    }
    char chip[64] = "unknown chip";
    char *info = NULL;
    if (nfc_device_get_information_about(st->pnd, &info) >= 0 && info) {
        const char *c = strstr(info, "chip: ");
        if (c) {
            snprintf(chip, sizeof chip, "%s", c + 6);
            chip[strcspn(chip, "\n")] = '\0';
        }
        nfc_free(info);
    }
    snprintf(text, len, "%s on %s (libnfc %s)%s%s", chip, connstring, nfc_version(),
             cleared ? ", stale port claim cleared" : "",
             switched ? ", switched from 115200 baud" : "");
    return YN_OK;
}

void yn_lnfc_child_main(int sock, const char *connstring, int timeout_ms, int rf_kbps, bool type_b,
                        size_t record_len, bool clear_claim)
{
    static struct child st;
    static yn_lnfc_req rq;
    static yn_lnfc_rsp rs;
    memset(&st, 0, sizeof st);
    st.timeout_ms = timeout_ms > 0 ? timeout_ms : 300; /* 0 would mean "forever" to libnfc */
    st.rf_kbps = rf_kbps;
    st.type_b = type_b;
    st.record_len = record_len;
    st.mfc_sector = -1;
    port_of(connstring, st.port, sizeof st.port);
    yn_df_pcd_init(&st.pcd, df_xfer, &st);

    memset(&rs, 0, sizeof rs);
    rs.seq = 0;
    rs.status = open_reader(&st, connstring, clear_claim, rs.text, sizeof rs.text);
    answer(sock, &rs);
    if (rs.status != YN_OK) {
        if (st.pnd)
            nfc_close(st.pnd);
        if (st.ctx)
            nfc_exit(st.ctx);
        _exit(1);
    }
    for (;;) {
        ssize_t n = recv(sock, &rq, sizeof rq, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != (ssize_t)sizeof rq || rq.op == YN_LNFC_QUIT)
            break; /* the parent closed, or asked us to */
        memset(&rs, 0, sizeof rs);
        rs.seq = rq.seq;
        serve(&st, &rq, &rs);
        memset(rq.key, 0, sizeof rq.key);
        memset(rq.issuer_key, 0, sizeof rq.issuer_key);
        memset(rq.picc_key, 0, sizeof rq.picc_key);
        answer(sock, &rs);
    }
    memset(&st.pcd, 0, sizeof st.pcd);
    nfc_close(st.pnd);
    nfc_exit(st.ctx);
    _exit(0);
}
