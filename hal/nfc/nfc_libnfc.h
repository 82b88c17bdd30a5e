/* nfc_libnfc.h — private to the libnfc reader backend: the messages between
 * the supervising parent (hal/nfc/nfc_libnfc.c, the yn_nfc_ops the firmware
 * calls) and the worker child that owns libnfc (hal/nfc/nfc_libnfc_child.c).
 *
 * Why a child at all: libnfc 1.8.0 calls abort() when a PN532 answer carries a
 * status byte with bit 0x80, and a few of its paths wait without a timeout. A
 * hostile card or a sick reader must cost one failed tap, never the terminal,
 * so libnfc runs in a process that the parent can lose, kill and restart.
 *
 * Transport: a SOCK_SEQPACKET socketpair, one fixed-size message each way per
 * operation. The child greets with a YN_LNFC_HELLO answer (seq 0) once the
 * reader is open. Answers carry the request's seq; the parent drops stale ones. */
#ifndef YN_HAL_NFC_LIBNFC_H
#define YN_HAL_NFC_LIBNFC_H

#include <stdbool.h>
#include <stdint.h>

#include "nfc.h"

#define YN_LNFC_DATA_MAX 288 /* an area: 256 bytes, a Classic record area 144, stamps 16/32 */
#define YN_LNFC_TEXT_MAX 192
#define YN_LNFC_CONN_MAX 128

enum yn_lnfc_op {
    YN_LNFC_HELLO,     /* child → parent only: the reader is open (or why not) */
    YN_LNFC_POLL,      /* one card listing, repeated up to timeout_ms */
    YN_LNFC_READ,      /* an area of the tag, with key */
    YN_LNFC_WRITE,     /* an area of the tag, with key */
    YN_LNFC_RELEASE,   /* deselect the card */
    YN_LNFC_FORMAT,    /* issuing desk: personalise the tag (keys, layout) */
    YN_LNFC_ISSUE,     /* issuing desk: record as the issuer, stamp wiped */
    YN_LNFC_QUIT,      /* close the reader and exit */
    YN_LNFC_READ_CARD, /* record (unless skipped) and stamp, one session */
};

typedef struct yn_lnfc_req {
    uint32_t seq;       /* 1, 2, …; echoed in the answer */
    uint8_t op;         /* enum yn_lnfc_op */
    uint8_t area;       /* enum yn_nfc_area */
    int32_t timeout_ms; /* POLL: wait for a card up to this long */
    yn_nfc_tag tag;     /* READ/WRITE: the card polled */
    uint8_t key[YN_NFC_KEY_LEN];
    uint16_t len; /* WRITE, ISSUE: bytes in data */
    uint8_t data[YN_LNFC_DATA_MAX];
    /* FORMAT, ISSUE: key holds the card key (key 1 / Classic K) */
    uint8_t issuer_key[YN_NFC_KEY_LEN]; /* DESFire key 0 */
    uint8_t picc_key[24];               /* DESFire PICC master key, if has_picc_key */
    uint8_t picc_key_type;
    uint8_t has_picc_key;
    uint8_t new_picc_key[YN_NFC_KEY_LEN]; /* FORMAT: the PICC master key becomes this AES key */
    uint8_t has_new_picc_key;
    uint8_t key_version;
    uint8_t flags;        /* FORMAT: enum yn_nfc_issue_flag; READ_CARD: enum yn_nfc_read_flag */
    uint16_t record_size; /* FORMAT: bytes of the DESFire record file */
} yn_lnfc_req;

typedef struct yn_lnfc_rsp {
    uint32_t seq;
    int32_t status; /* enum yn_status */
    yn_nfc_tag tag; /* POLL: the card found */
    uint16_t len;   /* READ: bytes in data */
    uint8_t data[YN_LNFC_DATA_MAX];
    uint8_t stamp[YN_NFC_STAMP_MAX]; /* READ_CARD: the stamp area */
    uint8_t stamp_len;
    uint8_t kind;                /* READ_CARD: enum yn_nfc_card_kind */
    char text[YN_LNFC_TEXT_MAX]; /* HELLO: the reader's description; errors: detail */
} yn_lnfc_rsp;

/* The worker: opens connstring (clearing a stale serial-port claim first when
 * clear_claim, i.e. after a worker died holding it), greets on sock, serves
 * requests until QUIT or until the parent goes away. Every exchange with the
 * card uses timeout_ms; type_b: listings look for ISO 14443-B cards too. A
 * card record is record_len bytes (the format is the caller's:
 * firmware/core/card.h). Never returns. */
void yn_lnfc_child_main(int sock, const char *connstring, int timeout_ms, int rf_kbps, bool type_b,
                        size_t record_len, bool clear_claim) __attribute__((noreturn));

#endif
