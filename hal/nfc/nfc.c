/* nfc.c — dispatch to the configured reader backend. */
#include "nfc.h"

#include <stdio.h>
#include <string.h>

#include "hal.h"
#include "hex.h"
#include "log.h"

int yn_nfc_open(yn_nfc *dev, const yn_nfc_conf *cfg)
{
    dev->priv = NULL;
    dev->ops = yn_hal_find(YN_HAL_NFC, cfg->backend);
    if (!dev->ops) {
        yn_err("reader: backend '%s' is not built in", cfg->backend);
        return YN_ENODEV;
    }
    int rc = dev->ops->open(dev, cfg);
    if (rc != YN_OK) {
        yn_err("reader: %s backend failed to open: %s", dev->ops->name, yn_strerror(rc));
        dev->ops = NULL;
    }
    return rc;
}

void yn_nfc_close(yn_nfc *dev)
{
    if (dev->ops && dev->ops->close)
        dev->ops->close(dev);
    dev->ops = NULL;
    dev->priv = NULL;
}

int yn_nfc_poll(yn_nfc *dev, int timeout_ms, yn_nfc_tag *tag)
{
    return dev->ops ? dev->ops->poll(dev, timeout_ms, tag) : YN_ENODEV;
}

int yn_nfc_read(yn_nfc *dev, const yn_nfc_tag *tag, enum yn_nfc_area area,
                const uint8_t key[YN_NFC_KEY_LEN], uint8_t *buf, size_t cap, size_t *len)
{
    *len = 0;
    return dev->ops ? dev->ops->read(dev, tag, area, key, buf, cap, len) : YN_ENODEV;
}

int yn_nfc_read_card(yn_nfc *dev, const yn_nfc_tag *tag, const uint8_t key[YN_NFC_KEY_LEN],
                     unsigned flags, yn_nfc_card_data *out)
{
    memset(out, 0, sizeof *out);
    if (!dev->ops)
        return YN_ENODEV;
    if (dev->ops->read_card)
        return dev->ops->read_card(dev, tag, key, flags, out);
    int rc = YN_OK;
    if (!(flags & YN_NFC_SKIP_RECORD))
        rc = dev->ops->read(dev, tag, YN_NFC_AREA_RECORD, key, out->record, sizeof out->record,
                            &out->record_len);
    if (rc == YN_OK)
        rc = dev->ops->read(dev, tag, YN_NFC_AREA_STAMP, key, out->stamp, sizeof out->stamp,
                            &out->stamp_len);
    return rc;
}

int yn_nfc_write(yn_nfc *dev, const yn_nfc_tag *tag, enum yn_nfc_area area,
                 const uint8_t key[YN_NFC_KEY_LEN], const uint8_t *buf, size_t len)
{
    return dev->ops ? dev->ops->write(dev, tag, area, key, buf, len) : YN_ENODEV;
}

int yn_nfc_release(yn_nfc *dev)
{
    if (!dev->ops)
        return YN_ENODEV;
    return dev->ops->release ? dev->ops->release(dev) : YN_OK;
}

int yn_nfc_describe(yn_nfc *dev, char *buf, size_t len)
{
    if (!dev->ops)
        return YN_ENODEV;
    if (!dev->ops->describe)
        return YN_ENOTSUP;
    return dev->ops->describe(dev, buf, len);
}

int yn_nfc_format(yn_nfc *dev, const yn_nfc_tag *tag, const yn_nfc_issue_keys *keys,
                  size_t record_size, unsigned flags)
{
    if (!dev->ops)
        return YN_ENODEV;
    if (!dev->ops->format)
        return YN_ENOTSUP;
    return dev->ops->format(dev, tag, keys, record_size, flags);
}

int yn_nfc_issue(yn_nfc *dev, const yn_nfc_tag *tag, const yn_nfc_issue_keys *keys,
                 const uint8_t *record, size_t len)
{
    if (!dev->ops)
        return YN_ENODEV;
    if (!dev->ops->issue)
        return YN_ENOTSUP;
    return dev->ops->issue(dev, tag, keys, record, len);
}

void yn_nfc_uid_hex(const yn_nfc_tag *tag, char *buf, size_t len)
{
    size_t n = tag->uid_len < YN_UID_MAX ? tag->uid_len : YN_UID_MAX;
    if (len == 0)
        return;
    if (2 * n + 1 > len)
        n = (len - 1) / 2; /* the whole bytes that fit */
    yn_hex_encode(tag->uid, n, buf);
}

const char *yn_tag_type_name(enum yn_tag_type t)
{
    switch (t) {
    case YN_TAG_DESFIRE:
        return "desfire";
    case YN_TAG_CLASSIC_1K:
        return "classic1k";
    case YN_TAG_ISO14443B:
        return "iso14443b";
    default:
        return "unknown";
    }
}

const char *yn_card_kind_name(enum yn_nfc_card_kind k)
{
    switch (k) {
    case YN_CARD_KIND_OURS:
        return "ours";
    case YN_CARD_KIND_BLANK:
        return "blank";
    case YN_CARD_KIND_OTHER_APP:
        return "other-applications";
    default:
        return "foreign";
    }
}
