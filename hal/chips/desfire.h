/* desfire.h — MIFARE DESFire EV1 secure messaging, the reader (PCD) side.
 *
 * Pure code: no device, no clock, no file. The reader (hal/nfc/nfc_libnfc_child.c)
 * hands in a transceive callback that moves one ISO 7816-4 wrapped frame
 * (`90 INS 00 00 [Lc data] 00` → `data 91 status`). The card side is NOT
 * here: the emulated card (tools/emu/df_card.c) is a separate, independent
 * implementation, so that the two can disagree where one of them is wrong.
 *
 * What is implemented (NXP MF3ICD81 "EV1" scheme, as AES-128 only):
 *   - AuthenticateAES (0xAA) 3-pass: IV chained over the three messages, RndB
 *     and RndA rotated left by one byte, session key
 *     RndA[0:4] ‖ RndB[0:4] ‖ RndA[12:16] ‖ RndB[12:16], IV reset to zero;
 *   - after authentication every command and every answer goes through the
 *     session CMAC (the CMAC's own IV is the session IV, and the full 16-byte
 *     CMAC becomes the next IV); answers carry CMAC[0:8] over data ‖ status;
 *   - enciphered comm mode: AES-CBC under the session IV, DESFire CRC32 (init
 *     0xFFFFFFFF, no final XOR) over command ‖ header ‖ data (commands) or
 *     data ‖ status (answers), zero padding;
 *   - additional-frame chaining (0xAF) both ways.
 * Commands: SelectApplication, AuthenticateAES, ReadData, WriteData,
 * CommitTransaction, AbortTransaction, GetVersion, GetFileSettings, and the
 * issuing desk's: GetApplicationIDs, CreateApplication, DeleteApplication,
 * ChangeKey (AES: the XOR/CRC form for another key, the plain form for the
 * key the session was opened with), CreateStdDataFile, CreateBackupDataFile.
 * At PICC level (AID 000000, key 0) the PICC master key may also be DES or
 * 2K3DES (legacy Authenticate 0x0A, D40 secure messaging) or 3K3DES
 * (AuthenticateISO 0x1A, EV1 secure messaging with 3DES CMAC): enough for the
 * issuing desk to list, create and delete applications on a factory card and
 * to change its PICC master key to AES.
 *
 * Results are enum yn_status: YN_EAUTH (authentication refused, i.e. wrong key),
 * YN_EPROTO (bad CMAC, bad CRC, short or malformed frame, unexpected status),
 * YN_EPERM (access rights), YN_ENOTFOUND (no such application or file),
 * YN_ELIMIT (size or boundary), or whatever the transceive callback returned. */
#ifndef YN_HAL_DESFIRE_H
#define YN_HAL_DESFIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define YN_DF_KEY_LEN  16  /* AES-128 */
#define YN_DF_BLOCK    16  /* AES block */
#define YN_DF_MAC_LEN  8   /* truncated CMAC carried on the wire */
#define YN_DF_AID_LEN  3   /* application id, LSB first on the wire */
#define YN_DF_DATA_MAX 256 /* largest file this code moves */
/* Data bytes per command frame (the APDU is 6 bytes longer) and per answer frame. */
#define YN_DF_CMD_FRAME_DATA 48
#define YN_DF_RSP_FRAME_DATA 59
/* Largest wrapped frame either side produces or accepts. */
#define YN_DF_FRAME_MAX 64
/* Largest logical message (command or answer, after chaining). */
#define YN_DF_MSG_MAX 320

/* Native command codes. */
enum yn_df_cmd {
    YN_DF_CMD_AUTHENTICATE_AES = 0xAA,
    YN_DF_CMD_SELECT_APPLICATION = 0x5A,
    YN_DF_CMD_READ_DATA = 0xBD,
    YN_DF_CMD_WRITE_DATA = 0x3D,
    YN_DF_CMD_COMMIT = 0xC7,
    YN_DF_CMD_ABORT = 0xA7,
    YN_DF_CMD_GET_VERSION = 0x60,
    YN_DF_CMD_GET_FILE_SETTINGS = 0xF5,
    YN_DF_CMD_ADDITIONAL_FRAME = 0xAF,
    YN_DF_CMD_GET_APPLICATION_IDS = 0x6A,
    YN_DF_CMD_CREATE_APPLICATION = 0xCA,
    YN_DF_CMD_DELETE_APPLICATION = 0xDA,
    YN_DF_CMD_CHANGE_KEY = 0xC4,
    YN_DF_CMD_CREATE_STD_DATA_FILE = 0xCD,
    YN_DF_CMD_CREATE_BACKUP_DATA_FILE = 0xCB,
};

/* PICC status codes (the byte after 0x91). */
enum yn_df_status {
    YN_DF_ST_OK = 0x00,
    YN_DF_ST_OUT_OF_EEPROM = 0x0E,
    YN_DF_ST_ILLEGAL_COMMAND = 0x1C,
    YN_DF_ST_INTEGRITY_ERROR = 0x1E,
    YN_DF_ST_NO_SUCH_KEY = 0x40,
    YN_DF_ST_LENGTH_ERROR = 0x7E,
    YN_DF_ST_PERMISSION_DENIED = 0x9D,
    YN_DF_ST_PARAMETER_ERROR = 0x9E,
    YN_DF_ST_APPLICATION_NOT_FOUND = 0xA0,
    YN_DF_ST_AUTHENTICATION_ERROR = 0xAE,
    YN_DF_ST_ADDITIONAL_FRAME = 0xAF,
    YN_DF_ST_BOUNDARY_ERROR = 0xBE,
    YN_DF_ST_COMMAND_ABORTED = 0xCA,
    YN_DF_ST_DUPLICATE_ERROR = 0xDE,
    YN_DF_ST_FILE_NOT_FOUND = 0xF0,
};

/* CreateApplication key settings 2: AES keys, low nibble = number of keys. */
#define YN_DF_KS2_AES 0x80
/* PICC master key settings of a factory-blank card: everything allowed. */
#define YN_DF_PICC_SETTINGS_FACTORY 0x0F
/* PICC key settings bits: directory listing / create without the master key. */
#define YN_DF_KS_FREE_LISTING 0x02
#define YN_DF_KS_FREE_CREATE  0x04

enum yn_df_file_type { YN_DF_FILE_STANDARD = 0x00, YN_DF_FILE_BACKUP = 0x01 };

/* File communication settings. */
enum yn_df_comm { YN_DF_COMM_PLAIN = 0, YN_DF_COMM_MACED = 1, YN_DF_COMM_ENCIPHERED = 3 };

/* An access-right nibble: a key number, or these two. */
#define YN_DF_ACCESS_FREE  0x0E
#define YN_DF_ACCESS_NEVER 0x0F

/* Cipher of a key or session (the PICC master key may be any of them). */
enum yn_df_cipher {
    YN_DF_CIPHER_AES,
    YN_DF_CIPHER_DES, /* a 2K3DES key with equal halves: the factory key */
    YN_DF_CIPHER_2K3DES,
    YN_DF_CIPHER_3K3DES,
};

/* Secure-messaging state once an authentication succeeded. */
typedef struct yn_df_session {
    bool authenticated;
    bool d40;       /* legacy (0x0A) session: no CMAC, CRC16 */
    uint8_t cipher; /* enum yn_df_cipher of the session key */
    uint8_t key_no; /* key the session was opened with */
    uint8_t session_key[24];
    uint8_t iv[YN_DF_BLOCK]; /* running IV: last CMAC or last ciphertext block */
} yn_df_session;

/* Fill buf with n random bytes; 0 on success. Default: OpenSSL RAND_bytes. */
typedef int (*yn_df_random_fn)(uint8_t *buf, size_t n);

/* --- primitives -------------------------------------------------------- */

/* DESFire CRC32: reflected 0xEDB88320, init 0xFFFFFFFF, no final XOR.
 * Appended little-endian. */
uint32_t yn_df_crc32(const uint8_t *data, size_t n);

/* AES-128 CMAC (RFC 4493) whose CBC starts from *iv instead of zero; the full
 * 16-byte tag is written to mac and becomes the new *iv. With a zero iv this is
 * plain RFC 4493 CMAC. (OpenSSL's EVP_MAC "CMAC" has no IV parameter, which
 * DESFire's chained session IV needs; the unit test checks the two agree.) */
int yn_df_cmac(const uint8_t key[YN_DF_KEY_LEN], uint8_t iv[YN_DF_BLOCK], const uint8_t *msg,
               size_t n, uint8_t mac[YN_DF_BLOCK]) YN_MUST_CHECK;

/* AES-128-CBC over n bytes (a multiple of 16) in place; *iv is updated to the
 * last ciphertext block (the DESFire way for both directions). */
int yn_df_cbc(const uint8_t key[YN_DF_KEY_LEN], uint8_t iv[YN_DF_BLOCK], uint8_t *buf, size_t n,
              bool encrypt) YN_MUST_CHECK;

/* Technician text of a PICC status byte ("PERMISSION_DENIED"). */
const char *yn_df_status_name(uint8_t status);
/* The project status for a PICC status byte. */
int yn_df_status_to_yn(uint8_t status);

/* --- PCD side (the reader) --------------------------------------------- */

/* Move one wrapped frame to the card and its answer back. Return YN_OK or the
 * transport's failure (YN_ETIMEDOUT, YN_ECARDGONE, YN_EPROTO, ...). */
typedef int (*yn_df_transceive_fn)(void *io, const uint8_t *tx, size_t tx_len, uint8_t *rx,
                                   size_t rx_cap, size_t *rx_len);

typedef struct yn_df_pcd {
    yn_df_transceive_fn xfer;
    void *io;
    yn_df_random_fn random; /* NULL: RAND_bytes */
    yn_df_session s;
    uint8_t last_status; /* last PICC status seen, for the technician's log */
} yn_df_pcd;

void yn_df_pcd_init(yn_df_pcd *pcd, yn_df_transceive_fn xfer, void *io);
/* Forget the session (card changed, error seen). */
void yn_df_pcd_reset(yn_df_pcd *pcd);

int yn_df_select_application(yn_df_pcd *pcd, const uint8_t aid[YN_DF_AID_LEN]) YN_MUST_CHECK;
int yn_df_authenticate_aes(yn_df_pcd *pcd, uint8_t key_no,
                           const uint8_t key[YN_DF_KEY_LEN]) YN_MUST_CHECK;
/* PICC master key of another type: DES or 2K3DES (16 bytes, legacy 0x0A) or
 * 3K3DES (24 bytes, AuthenticateISO 0x1A). */
int yn_df_authenticate_des(yn_df_pcd *pcd, uint8_t key_no, enum yn_df_cipher cipher,
                           const uint8_t *key) YN_MUST_CHECK;
/* After a PICC master key authentication of any kind: make the PICC master
 * key the AES key new_key (version). The session ends. */
int yn_df_change_master_key_aes(yn_df_pcd *pcd, const uint8_t new_key[YN_DF_KEY_LEN],
                                uint8_t version) YN_MUST_CHECK;
/* Read length bytes at offset (length 0 = to the end of the file) in the
 * file's comm mode. *len = bytes read. An enciphered read of length 0 asks
 * GetFileSettings for the size first: the CRC position must be known. */
int yn_df_read_data(yn_df_pcd *pcd, uint8_t file_no, uint32_t offset, uint32_t length,
                    enum yn_df_comm comm, uint8_t *buf, size_t cap, size_t *len) YN_MUST_CHECK;
int yn_df_write_data(yn_df_pcd *pcd, uint8_t file_no, uint32_t offset, const uint8_t *data,
                     size_t len, enum yn_df_comm comm) YN_MUST_CHECK;
int yn_df_commit(yn_df_pcd *pcd) YN_MUST_CHECK;
int yn_df_abort_transaction(yn_df_pcd *pcd) YN_MUST_CHECK;
/* What GetFileSettings tells about a data file (size 0 for other file types). */
typedef struct yn_df_file_settings {
    uint8_t type; /* enum yn_df_file_type; others are value/record files */
    uint8_t comm; /* enum yn_df_comm */
    uint8_t key_read, key_write, key_rw, key_change;
    uint32_t size; /* bytes */
} yn_df_file_settings;

int yn_df_get_file_settings(yn_df_pcd *pcd, uint8_t file_no,
                            yn_df_file_settings *out) YN_MUST_CHECK;
/* GetVersion: 28 bytes (hardware 7, software 7, UID 7, batch 5, week, year). */
int yn_df_get_version(yn_df_pcd *pcd, uint8_t *buf, size_t cap, size_t *len) YN_MUST_CHECK;

/* --- PCD side: the issuing desk ---------------------------------------- */

/* GetApplicationIDs (PICC level): up to max AIDs (3 bytes, wire order) into
 * aids, *n = how many the card has listed (YN_ELIMIT if more than max). */
int yn_df_get_application_ids(yn_df_pcd *pcd, uint8_t (*aids)[YN_DF_AID_LEN], size_t max,
                              size_t *n) YN_MUST_CHECK;
/* CreateApplication (PICC level): key_settings (e.g. 0x09), ks2 = key type |
 * number of keys (YN_DF_KS2_AES | 2). The new keys are all-zero, version 0. */
int yn_df_create_application(yn_df_pcd *pcd, const uint8_t aid[YN_DF_AID_LEN], uint8_t key_settings,
                             uint8_t ks2) YN_MUST_CHECK;
/* DeleteApplication: at PICC level after PICC master key authentication, or
 * with the application selected and its key 0 authenticated (then the card
 * falls back to PICC level). Our session ends either way: select 000000
 * again before the next command (a real card keeps a PICC-level session). */
int yn_df_delete_application(yn_df_pcd *pcd, const uint8_t aid[YN_DF_AID_LEN]) YN_MUST_CHECK;
/* ChangeKey of an AES key. key_no ≠ the session's key: the cryptogram carries
 * new ⊕ old, the version, CRC32 over the command and CRC32 of the new key
 * (old_key is needed); key_no = the session's key: new key, version, CRC32 —
 * and the session ends on both sides. */
int yn_df_change_key(yn_df_pcd *pcd, uint8_t key_no, const uint8_t new_key[YN_DF_KEY_LEN],
                     const uint8_t old_key[YN_DF_KEY_LEN], uint8_t key_version) YN_MUST_CHECK;
/* The 32-byte ChangeKey cryptogram as yn_df_change_key sends it, enciphered
 * with session_key from *iv (updated). Pure; exposed for the unit vector. */
int yn_df_change_key_cryptogram(const uint8_t session_key[YN_DF_KEY_LEN], uint8_t iv[YN_DF_BLOCK],
                                uint8_t auth_key_no, uint8_t key_no,
                                const uint8_t new_key[YN_DF_KEY_LEN],
                                const uint8_t old_key[YN_DF_KEY_LEN], uint8_t key_version,
                                uint8_t out[2 * YN_DF_BLOCK]) YN_MUST_CHECK;
/* CreateStdDataFile / CreateBackupDataFile (type) in the selected application. */
int yn_df_create_data_file(yn_df_pcd *pcd, uint8_t file_no, enum yn_df_file_type type,
                           enum yn_df_comm comm, uint8_t key_read, uint8_t key_write,
                           uint8_t key_rw, uint8_t key_change, uint32_t size) YN_MUST_CHECK;

#endif
