/* timing.h — how long a real PN532 on a UART, the RF link and the card take:
 * the emulator's timing model (hal/nfc/READER.md "Timing model" gives every
 * figure with its source). Pure arithmetic, microseconds. */
#ifndef YN_EMU_TIMING_H
#define YN_EMU_TIMING_H

#include <stddef.h>
#include <stdint.h>

#define EMU_T_PN532_ACK_US  100  /* frame checked, ACK started */
#define EMU_T_PN532_CMD_US  400  /* a command without RF (registers, parameters) */
#define EMU_T_PN532_CARD_US 1000 /* a card command: CIU set-up, CRC, ISO-DEP, answer frame */
#define EMU_T_REQA_WAIT_US  1000 /* one REQA with no answer (empty field) */
#define EMU_T_FDT_US        86   /* PICC frame delay time at 106 kbit/s (1172/fc) */
#define EMU_T_SFGT_US       604  /* after the ATS: SFGI 1 (ATS TB 0x81) */
#define EMU_T_MFC_US        600  /* Classic read/auth step inside the card */
#define EMU_T_MFC_WRITE_US  2500 /* Classic block write (EEPROM) */

/* UART 8N1: 10 bits a byte. */
static inline int64_t emu_uart_us(size_t bytes, unsigned baud)
{
    return baud ? (int64_t)bytes * 10 * 1000000 / baud : 0;
}

/* ISO/IEC 14443-A frame of n bytes at kbps (106/212/424/848): 9 bits a byte
 * (parity) plus start and end, one bit = 128/fc at 106 kbit/s. */
static inline int64_t emu_rf_us(size_t bytes, unsigned kbps)
{
    unsigned rate = kbps ? kbps : 106;
    return ((int64_t)bytes * 9 + 2) * 9440 / 1000 * 106 / rate;
}

#endif
