/* mfc_card.h — an emulated MIFARE Classic 1K (MF1S50) as a PN532 relays it:
 * the PN532 runs Crypto-1 itself and only reports the outcome, so an
 * authentication here is a key comparison with the same result. Access bits
 * are enforced for data blocks, value blocks and sector trailers; a failed
 * authentication halts the card until it is activated again. */
#ifndef YN_EMU_MFC_CARD_H
#define YN_EMU_MFC_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct emu_mfc_card {
    uint8_t uid[7];
    size_t uid_len; /* 4 (NUID) or 7 */
    uint8_t mem[64][16];
    /* volatile */
    bool halted;
    int sector; /* authenticated sector, or -1 */
    bool key_b;
    uint8_t value_buf[4]; /* increment/decrement/restore result, until transfer */
    bool value_pending;
} emu_mfc_card;

/* Block 0 from the UID, every trailer FF…FF FF0780 69 FF…FF (transport). */
void emu_mfc_init(emu_mfc_card *c, const uint8_t *uid, size_t uid_len);
/* Field off / reactivation. */
void emu_mfc_reset(emu_mfc_card *c);
/* A MIFARE command (60/61 auth, 30 read, A0 write, C0/C1/C2 + B0 value ops,
 * 50 halt). Returns the PN532 status (0 ok, 0x14 auth failed / NAK,
 * 0x01 no answer) and the answer bytes. tear_at_write: the write leaves the
 * first 8 bytes and the card goes (caller removes it). */
uint8_t emu_mfc_command(emu_mfc_card *c, const uint8_t *cmd, size_t n, uint8_t *ans, size_t *alen,
                        bool tear_at_write);

#endif
