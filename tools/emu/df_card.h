/* df_card.h — an emulated MIFARE DESFire EV1 card (MF3ICD81), the card side
 * only, written from the card's public descriptions (NXP MF3ICD81 short data
 * sheet, AN10922, ISO/IEC 7816-4 wrapping) and checked against libfreefare.
 * It is the second, independent implementation the reader (hal/chips/desfire.c) is
 * tested against: it shares no protocol code with it (hal/nfc/READER.md, "The
 * emulated card", says which document each rule follows).
 *
 * Strict like a card: PICC and application key settings (directory listing,
 * create/delete, configuration change, master key change, ChangeKey rights),
 * file access rights by key number with free (E) and no (F) access, the
 * session lost on any error, on SelectApplication and when the field drops,
 * backup and value files changed only by CommitTransaction, keys DES, 2K3DES,
 * 3K3DES and AES with the legacy (0x0A), ISO (0x1A) and AES (0xAA)
 * authentications and their secure messaging (D40: MAC/CRC16; EV1: CMAC/CRC32).
 *
 * Input: one frame as the PCD sends it, ISO 7816-4 wrapped (90 INS 00 00 [Lc
 * data] 00) or native (INS data); output: the answer in the same form. */
#ifndef YN_EMU_DF_CARD_H
#define YN_EMU_DF_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum emu_df_key_type {
    EMU_DF_KEY_2K3DES = 0x00, /* DES when both halves are equal (the factory key) */
    EMU_DF_KEY_3K3DES = 0x40,
    EMU_DF_KEY_AES = 0x80,
};

enum emu_df_file_type { EMU_DF_STD = 0, EMU_DF_BACKUP = 1, EMU_DF_VALUE = 2 };

#define EMU_DF_APPS      8
#define EMU_DF_FILES     8
#define EMU_DF_KEYS      14
#define EMU_DF_FILE_MAX  512 /* bytes of one data file */
#define EMU_DF_MSG_MAX   640 /* a command or answer after chaining */
#define EMU_DF_FRAME_MAX 64  /* one frame either way */

typedef struct emu_df_key {
    uint8_t k[24]; /* 16 bytes for 2K3DES/DES and AES, 24 for 3K3DES */
    uint8_t aes_version;
} emu_df_key;

typedef struct emu_df_file {
    bool used;
    uint8_t no, type, comm; /* comm: 0 plain, 1 MACed, 3 enciphered */
    uint8_t ar[2];          /* access rights as on the wire: RW<<4|Change, R<<4|W */
    uint32_t size;          /* data files: bytes */
    uint8_t data[EMU_DF_FILE_MAX];
    uint8_t shadow[EMU_DF_FILE_MAX]; /* backup file: written, not committed */
    int32_t value, shadow_value, lower, upper, limited;
    bool lc_enabled, dirty;
} emu_df_file;

typedef struct emu_df_app {
    bool used;
    uint8_t aid[3]; /* LSB first, as on the wire */
    uint8_t settings, n_keys, key_type;
    emu_df_key keys[EMU_DF_KEYS];
    emu_df_file files[EMU_DF_FILES];
} emu_df_app;

typedef struct emu_df_card {
    /* persistent */
    uint8_t uid[7];
    bool random_uid; /* anticollision gives 08 + 3 random bytes, new per activation */
    emu_df_key picc_key;
    uint8_t picc_key_type, picc_settings;
    emu_df_app apps[EMU_DF_APPS];
    /* volatile: lost when the field drops (emu_df_reset) */
    int sel; /* selected application index, -1 = PICC level */
    int sm;  /* secure messaging of the session: 0 none, 1 D40 (0x0A), 2 EV1 */
    uint8_t s_key_no, s_type, s_key[24], s_iv[16];
    int auth_step; /* 1: waiting for the second authentication message */
    uint8_t a_cmd, a_key_no, a_rnd_b[16], a_iv[16];
    size_t a_len;
    uint8_t in[EMU_DF_MSG_MAX]; /* a command being collected over AF frames */
    size_t in_len, in_need;
    uint8_t out[EMU_DF_MSG_MAX]; /* an answer being sent over AF frames */
    size_t out_len, out_pos;
    uint8_t out_status;
    int out_short;    /* GetVersion: 7-byte frames first */
    uint32_t busy_us; /* processing time of the last frame (timing model) */
    unsigned long commits;
} emu_df_card;

/* A factory-fresh EV1: PICC master key all-zero DES (2K3DES with equal
 * halves), key version 0, PICC key settings 0x0F, no application. */
void emu_df_init(emu_df_card *c, const uint8_t *uid, size_t uid_len);
/* Add an application (keys all given, of key_type). */
int emu_df_add_app(emu_df_card *c, const uint8_t aid[3], uint8_t settings, uint8_t key_type,
                   int n_keys, const uint8_t (*keys)[16]);
/* Add a data file to an application; data (len ≤ size) then zeros. */
int emu_df_add_file(emu_df_card *c, const uint8_t aid[3], uint8_t no, uint8_t type, uint8_t comm,
                    uint8_t r, uint8_t w, uint8_t rw, uint8_t change, uint32_t size,
                    const uint8_t *data, size_t len);
/* The field dropped: session, selection, chaining and uncommitted changes gone. */
void emu_df_reset(emu_df_card *c);
/* One frame in, one frame out; always answers. */
void emu_df_frame(emu_df_card *c, const uint8_t *in, size_t n, uint8_t *out, size_t *out_len);
/* Committed content of a data file (tests and the emulator's dump). */
const emu_df_file *emu_df_find_file(const emu_df_card *c, const uint8_t aid[3], uint8_t no);

#endif
