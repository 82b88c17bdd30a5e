/* nfc.h — the card reader.
 *
 * A backend finds a card in the field and moves the card's two data areas —
 * the signed record and the "last meal" stamp — with the per-card key that the
 * caller derived (firmware/card). Backends map the areas onto their card's
 * layout (DESFire files, Classic sectors). Every call has a bounded time:
 * YN_ETIMEDOUT when the reader or card stays silent, YN_ECARDGONE when the card
 * leaves mid-operation, YN_ENODEV when the reader itself is gone. A write is
 * all-or-nothing on the card (DESFire backup file + CommitTransaction). */
#ifndef YN_HAL_NFC_H
#define YN_HAL_NFC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct yn_config;

#define YN_UID_MAX     10
#define YN_NFC_KEY_LEN 16 /* AES-128 */

enum yn_tag_type { YN_TAG_UNKNOWN, YN_TAG_DESFIRE, YN_TAG_CLASSIC_1K };

enum yn_nfc_area {
    YN_NFC_AREA_RECORD, /* the issuer-signed card record, written at issue */
    YN_NFC_AREA_STAMP,  /* the "last meal" stamp, rewritten at each subsidised debit */
};

typedef struct yn_nfc_tag {
    uint8_t uid[YN_UID_MAX];
    size_t uid_len; /* 4, 7 or 10 bytes */
    enum yn_tag_type type;
} yn_nfc_tag;

typedef struct yn_nfc yn_nfc;

/* What the issuing desk needs to personalise a card (firmware/CARD.md §3, §5, §6). */
typedef struct yn_nfc_issue_keys {
    uint8_t card_key[YN_NFC_KEY_LEN];   /* DESFire key 1 / Classic K: yn_card_key_for_uid */
    uint8_t issuer_key[YN_NFC_KEY_LEN]; /* DESFire key 0, application master (CARD.md §5) */
    uint8_t picc_key[YN_NFC_KEY_LEN];   /* DESFire PICC master key (AES), if has_picc_key */
    bool has_picc_key;
    uint8_t key_version; /* DESFire key version byte given to keys 0 and 1 (the generation) */
} yn_nfc_issue_keys;

enum yn_nfc_issue_flag {
    YN_NFC_FORCE = 1u << 0, /* format: re-personalise a card that already is (or half is) */
};

typedef struct yn_nfc_ops {
    const char *name; /* first: see hal.h */
    int (*open)(yn_nfc *dev, const struct yn_config *cfg);
    void (*close)(yn_nfc *dev);
    /* Wait up to timeout_ms for a card: YN_OK and *tag, or YN_ENOCARD. */
    int (*poll)(yn_nfc *dev, int timeout_ms, yn_nfc_tag *tag);
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

/* Open the backend named in cfg->reader.backend. */
int yn_nfc_open(yn_nfc *dev, const struct yn_config *cfg) YN_MUST_CHECK;
void yn_nfc_close(yn_nfc *dev);
int yn_nfc_poll(yn_nfc *dev, int timeout_ms, yn_nfc_tag *tag) YN_MUST_CHECK;
int yn_nfc_read(yn_nfc *dev, const yn_nfc_tag *tag, enum yn_nfc_area area,
                const uint8_t key[YN_NFC_KEY_LEN], uint8_t *buf, size_t cap,
                size_t *len) YN_MUST_CHECK;
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

#endif
