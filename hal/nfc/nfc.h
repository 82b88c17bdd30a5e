/* nfc.h — the card reader.
 *
 * A backend finds a card in the field and moves the card's two data areas —
 * the signed record and the "last meal" stamp — with the per-card key that the
 * caller derived (firmware/core/card). Backends map the areas onto their card's
 * layout (DESFire files, Classic sectors). Every call has a bounded time:
 * YN_ETIMEDOUT when the reader or card stays silent, YN_ECARDGONE when the card
 * leaves mid-operation, YN_ENODEV when the reader itself is gone. A write is
 * all-or-nothing on the card (DESFire backup file + CommitTransaction). */
#ifndef YN_HAL_NFC_H
#define YN_HAL_NFC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal_conf.h"
#include "status.h"

/* [reader] of board.conf. */
typedef struct yn_nfc_conf {
    char backend[YN_BACKEND_MAX];
    char connstring[YN_DEV_MAX]; /* libnfc connstring, e.g. pn532_uart:/dev/ttyS1 */
    int timeout_ms;              /* per exchange with the card */
    int debounce_ms;             /* same card again within this = same tap */
    int rf_kbps;                 /* ISO 14443-4 bit rate after activation (106, 212, 424: InPSL) */
    bool type_b;                 /* list ISO 14443-B cards too (identity-only cards by PUPI) */
    char sim_cards[PATH_MAX];    /* sim: file of virtual cards */
    char demo_control[PATH_MAX]; /* demo: emulator's control FIFO for card keys; "" = none */
    size_t record_len; /* bytes of the card record (firmware/core/card.h yn_card_record_size,
                        * set by firmware/app/config.c): the reader reads it whole */
} yn_nfc_conf;

#define YN_UID_MAX     10
#define YN_NFC_KEY_LEN 16 /* AES-128 */

/* What the listing tells. YN_TAG_ISO14443B: a type B card (uid = its 4-byte
 * PUPI), listed only when [reader] type_b is on; the terminal can only know
 * it by that identifier (firmware/core/CARD.md §8). */
enum yn_tag_type { YN_TAG_UNKNOWN, YN_TAG_DESFIRE, YN_TAG_CLASSIC_1K, YN_TAG_ISO14443B };

enum yn_nfc_area {
    YN_NFC_AREA_RECORD, /* the issuer-signed card record, written at issue */
    YN_NFC_AREA_STAMP,  /* the "last meal" stamp, rewritten at each subsidised debit */
};

typedef struct yn_nfc_tag {
    uint8_t uid[YN_UID_MAX];
    size_t uid_len; /* 4, 7 or 10 bytes (type A UID); 4 (type B PUPI) */
    enum yn_tag_type type;
} yn_nfc_tag;

typedef struct yn_nfc yn_nfc;

/* The type of a DESFire PICC master key (a factory card: DES, all zero). */
enum yn_nfc_picc_key_type {
    YN_PICC_KEY_DES,    /* 8 bytes used (16 stored with equal halves) */
    YN_PICC_KEY_2K3DES, /* 16 bytes */
    YN_PICC_KEY_3K3DES, /* 24 bytes */
    YN_PICC_KEY_AES,    /* 16 bytes */
};

/* What the issuing desk needs to personalise a card (firmware/core/CARD.md §3, §5, §6). */
typedef struct yn_nfc_issue_keys {
    uint8_t card_key[YN_NFC_KEY_LEN];   /* DESFire key 1 / Classic K: yn_card_key_for_uid */
    uint8_t issuer_key[YN_NFC_KEY_LEN]; /* DESFire key 0, application master (CARD.md §5) */
    uint8_t picc_key[24];  /* DESFire PICC master key if has_picc_key, else the factory DES zero */
    uint8_t picc_key_type; /* enum yn_nfc_picc_key_type */
    bool has_picc_key;
    uint8_t new_picc_key[YN_NFC_KEY_LEN]; /* format: make the PICC master key this AES key */
    bool has_new_picc_key;
    uint8_t key_version; /* DESFire key version byte given to keys 0 and 1 (the generation) */
} yn_nfc_issue_keys;

/* What a card in the field is, when it is not a readable 颐年卡. */
enum yn_nfc_card_kind {
    YN_CARD_KIND_OURS,      /* our layout (it may still fail authentication: a clone) */
    YN_CARD_KIND_BLANK,     /* factory-blank: no application / transport keys */
    YN_CARD_KIND_OTHER_APP, /* a DESFire with other applications only (transit, access) */
    YN_CARD_KIND_FOREIGN,   /* another kind of card, or keys that are not ours */
};

#define YN_NFC_STAMP_MAX 32 /* DESFire 16; Classic primary ‖ copy */
#define YN_NFC_AREA_MAX  256

/* One read of a card: the record (unless skipped) and the stamp. */
typedef struct yn_nfc_card_data {
    uint8_t record[YN_NFC_AREA_MAX];
    size_t record_len; /* 0 when YN_NFC_SKIP_RECORD */
    uint8_t stamp[YN_NFC_STAMP_MAX];
    size_t stamp_len;
    uint8_t kind; /* enum yn_nfc_card_kind; meaningful when the read failed */
} yn_nfc_card_data;

enum yn_nfc_read_flag {
    /* the caller holds this card's verified record (firmware/core/CARD.md §5,
     * "Verified-record cache"): authenticate and read the stamp only */
    YN_NFC_SKIP_RECORD = 1u << 0,
};

enum yn_nfc_issue_flag {
    YN_NFC_FORCE = 1u << 0, /* format: re-personalise a card that already is (or half is) */
};

typedef struct yn_nfc_ops {
    const char *name; /* first: see hal.h */
    int (*open)(yn_nfc *dev, const yn_nfc_conf *cfg);
    void (*close)(yn_nfc *dev);
    /* Wait up to timeout_ms for a card: YN_OK and *tag, or YN_ENOCARD. */
    int (*poll)(yn_nfc *dev, int timeout_ms, yn_nfc_tag *tag);
    /* Read the record and the stamp in one operation (authenticating with
     * key once; the session stays for the stamp write). Optional: without it
     * yn_nfc_read_card reads the two areas. On a card that is not a 颐年卡:
     * YN_ENOTFOUND (or YN_EAUTH for foreign keys) and out->kind says what it is. */
    int (*read_card)(yn_nfc *dev, const yn_nfc_tag *tag, const uint8_t key[YN_NFC_KEY_LEN],
                     unsigned flags, yn_nfc_card_data *out);
    /* Read an area (authenticating with key). *len = bytes read. */
    int (*read)(yn_nfc *dev, const yn_nfc_tag *tag, enum yn_nfc_area area,
                const uint8_t key[YN_NFC_KEY_LEN], uint8_t *buf, size_t cap, size_t *len);
    /* Replace an area atomically. */
    int (*write)(yn_nfc *dev, const yn_nfc_tag *tag, enum yn_nfc_area area,
                 const uint8_t key[YN_NFC_KEY_LEN], const uint8_t *buf, size_t len);
    /* Done with this card (deselect, field reset). Optional. */
    int (*release)(yn_nfc *dev);
    /* One line about the reader (chip, firmware) for diagnostics. Optional. */
    int (*describe)(yn_nfc *dev, char *buf, size_t len);
    /* Issuing desk, optional. Personalise a factory-blank card: DESFire:
     * application, keys 0 and 1, record file of record_size bytes, stamp file;
     * Classic: sector trailers. A card that already carries our layout:
     * YN_EDUPLICATE unless flags has YN_NFC_FORCE (then it is redone). */
    int (*format)(yn_nfc *dev, const yn_nfc_tag *tag, const yn_nfc_issue_keys *keys,
                  size_t record_size, unsigned flags);
    /* Issuing desk, optional: write the record as the issuer (DESFire key 0,
     * Classic key B) and wipe the stamp. */
    int (*issue)(yn_nfc *dev, const yn_nfc_tag *tag, const yn_nfc_issue_keys *keys,
                 const uint8_t *record, size_t len);
} yn_nfc_ops;

struct yn_nfc {
    const yn_nfc_ops *ops;
    void *priv; /* backend state */
};

/* Open the backend named in cfg->backend ([reader] backend). */
int yn_nfc_open(yn_nfc *dev, const yn_nfc_conf *cfg) YN_MUST_CHECK;
void yn_nfc_close(yn_nfc *dev);
int yn_nfc_poll(yn_nfc *dev, int timeout_ms, yn_nfc_tag *tag) YN_MUST_CHECK;
int yn_nfc_read(yn_nfc *dev, const yn_nfc_tag *tag, enum yn_nfc_area area,
                const uint8_t key[YN_NFC_KEY_LEN], uint8_t *buf, size_t cap,
                size_t *len) YN_MUST_CHECK;
int yn_nfc_read_card(yn_nfc *dev, const yn_nfc_tag *tag, const uint8_t key[YN_NFC_KEY_LEN],
                     unsigned flags, yn_nfc_card_data *out) YN_MUST_CHECK;
int yn_nfc_write(yn_nfc *dev, const yn_nfc_tag *tag, enum yn_nfc_area area,
                 const uint8_t key[YN_NFC_KEY_LEN], const uint8_t *buf, size_t len) YN_MUST_CHECK;
int yn_nfc_release(yn_nfc *dev) YN_MUST_CHECK;
int yn_nfc_describe(yn_nfc *dev, char *buf, size_t len) YN_MUST_CHECK;
/* Issuing desk; YN_ENOTSUP when the backend has no such op. */
int yn_nfc_format(yn_nfc *dev, const yn_nfc_tag *tag, const yn_nfc_issue_keys *keys,
                  size_t record_size, unsigned flags) YN_MUST_CHECK;
int yn_nfc_issue(yn_nfc *dev, const yn_nfc_tag *tag, const yn_nfc_issue_keys *keys,
                 const uint8_t *record, size_t len) YN_MUST_CHECK;
/* "04a1b2c3d4e5f6" */
void yn_nfc_uid_hex(const yn_nfc_tag *tag, char *buf, size_t len);
const char *yn_tag_type_name(enum yn_tag_type t);
const char *yn_card_kind_name(enum yn_nfc_card_kind k);

#endif
