/* nfc_libnfc_layout.h — where a 颐年卡's two areas (record, stamp) live on a
 * MIFARE DESFire EV1/EV2 and on a MIFARE Classic 1K card. Shared by the reader
 * backend (hal/nfc/nfc_libnfc_child.c) and the emulator (tools/yinian-pn532-emu.c)
 * so that both sides read the same spec; hal/nfc/READER.md explains it in words.
 * Header-only on purpose: the emulator is built even when WITH_LIBNFC=0. */
#ifndef YN_HAL_NFC_LIBNFC_LAYOUT_H
#define YN_HAL_NFC_LIBNFC_LAYOUT_H

#include <stdint.h>
#include <string.h>

/* --- DESFire ------------------------------------------------------------
 * Application 0xF5594E (firmware/core/card.h yn_card_aid; LSB first on the wire),
 * two AES keys. Key 0 is the application master key (issuer only); key 1 is the
 * per-card key the terminal holds (AN10922-diversified, firmware/core/card.c).
 * File 1 = record: standard data file, enciphered, exactly the record's size,
 *          read key 1, write/read-write/change key 0 (written once at issue).
 * File 2 = stamp: backup data file, enciphered, 16 bytes, read/write key 1,
 *          change key 0. A write becomes visible only after CommitTransaction. */
#define YN_LAYOUT_DF_AID_BYTES                                                                     \
    {                                                                                              \
        0x4E, 0x59, 0xF5                                                                           \
    }
/* Application key settings (CreateApplication): 0x0B = ChangeKey with the
 * master key (0x0_), configuration changeable (bit 3), creating/deleting
 * files needs the master key (bit 2 clear), free directory listing (bit 1:
 * GetFileIDs/GetFileSettings without key 0, so a terminal holding key 1 may
 * ask), master key changeable (bit 0). firmware/core/CARD.md §5 says why. */
#define YN_LAYOUT_DF_KEY_SETTINGS 0x0B
#define YN_LAYOUT_DF_KEY_MASTER   0
#define YN_LAYOUT_DF_KEY_CARD     1
#define YN_LAYOUT_DF_FILE_RECORD  1
#define YN_LAYOUT_DF_FILE_STAMP   2
#define YN_LAYOUT_DF_STAMP_SIZE   16 /* bytes; one firmware stamp (YN_CARD_STAMP_LEN) */

/* --- MIFARE Classic 1K (firmware/core/CARD.md §6) -----------------------------
 * Crypto-1 keys from the 16-byte card key: key A = key[0..5] (reads),
 * key B = key[6..11] (writes), key[12..15] unused — firmware/core/card.h
 * yn_card_classic_keys. Sector 0 stays as manufactured (transport keys).
 * Record area: the data blocks of sectors 1..3 (blocks 4-6, 8-10, 12-14,
 *   144 bytes), record then zero padding; the reader trims to the record's
 *   size (yn_nfc_conf.record_len: firmware/core/card.h yn_card_record_size) when
 *   bytes 0..1 are "YN".
 * Stamp area: block 16 (primary) and block 17 (copy) of sector 4. A write
 *   writes the copy, then the primary; a read returns both, 32 bytes
 *   primary ‖ copy, and yn_card_stamp_decode picks the survivor of a tear.
 * Sectors 1..4 carry access bits 78 77 88 (data: read A|B, write B;
 * trailer: keys writable with B only, key A unreadable). */
#define YN_LAYOUT_MFC_BLOCKS         64
#define YN_LAYOUT_MFC_RECORD_SECTOR0 1
#define YN_LAYOUT_MFC_RECORD_BLOCKS  9
#define YN_LAYOUT_MFC_RECORD_AREA    (16 * YN_LAYOUT_MFC_RECORD_BLOCKS) /* bytes */
#define YN_LAYOUT_MFC_STAMP_PRIMARY  16
#define YN_LAYOUT_MFC_STAMP_COPY     17
#define YN_LAYOUT_MFC_STAMP_LEN      16 /* one block; a read returns two */
#define YN_LAYOUT_MFC_ACCESS_ISSUED                                                                \
    {                                                                                              \
        0x78, 0x77, 0x88, 0x69                                                                     \
    }
#define YN_LAYOUT_MFC_ACCESS_TRANSPORT                                                             \
    {                                                                                              \
        0xFF, 0x07, 0x80, 0x69                                                                     \
    }

/* Block number of the i-th data block (0-based) of the record area. */
static inline int yn_layout_mfc_record_block(int i)
{
    return (YN_LAYOUT_MFC_RECORD_SECTOR0 + i / 3) * 4 + i % 3;
}

static inline void yn_layout_mfc_keys(const uint8_t key[16], uint8_t key_a[6], uint8_t key_b[6])
{
    memcpy(key_a, key, 6);
    memcpy(key_b, key + 6, 6);
}

#endif
