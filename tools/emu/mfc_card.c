/* mfc_card.c — the emulated MIFARE Classic 1K (see mfc_card.h). */
#include "mfc_card.h"

#include <string.h>

void emu_mfc_init(emu_mfc_card *c, const uint8_t *uid, size_t uid_len)
{
    memset(c, 0, sizeof *c);
    c->uid_len = uid_len == 7 ? 7 : 4;
    memcpy(c->uid, uid, c->uid_len);
    uint8_t *b0 = c->mem[0];
    memcpy(b0, uid, c->uid_len);
    size_t p = c->uid_len;
    if (c->uid_len == 4) {
        b0[4] = (uint8_t)(uid[0] ^ uid[1] ^ uid[2] ^ uid[3]); /* BCC */
        p = 5;
    }
    b0[p] = 0x08;                              /* SAK */
    b0[p + 1] = c->uid_len == 4 ? 0x04 : 0x44; /* ATQA */
    b0[p + 2] = 0x00;
    for (size_t i = p + 3; i < 16; i++)
        b0[i] = (uint8_t)(0x60 + i); /* manufacturer data */
    static const uint8_t transport[16] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x07,
                                          0x80, 0x69, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    for (int s = 0; s < 16; s++)
        memcpy(c->mem[s * 4 + 3], transport, 16);
    c->sector = -1;
}

void emu_mfc_reset(emu_mfc_card *c)
{
    c->halted = false;
    c->sector = -1;
    c->value_pending = false;
}

/* Access condition bits C1 C2 C3 of block b (0..3) of a sector (MF1S50 §8.7). */
static unsigned access_bits(const uint8_t *t, int b)
{
    unsigned c1 = (t[7] >> (4 + b)) & 1, c2 = (t[8] >> b) & 1, c3 = (t[8] >> (4 + b)) & 1;
    return c1 << 2 | c2 << 1 | c3;
}

enum acc { A_READ, A_WRITE, A_INC, A_DEC }; /* DEC also covers transfer and restore */

/* Data and value blocks (MF1S50 Table 8): may key A / key B do it? */
static bool data_ok(const uint8_t *t, int b, bool key_b, enum acc what)
{
    /* key B is readable (trailer 000, 001, 010): then it cannot be used for data */
    unsigned tb = access_bits(t, 3);
    if (key_b && (tb == 0 || tb == 1 || tb == 2))
        return false;
    switch (access_bits(t, b)) {
    case 0: /* 000: A|B everything */
        return true;
    case 2: /* 010: read A|B */
        return what == A_READ;
    case 4: /* 100: read A|B, write B */
        return what == A_READ || (what == A_WRITE && key_b);
    case 6: /* 110: read A|B, write B, increment B, decrement A|B */
        return what == A_READ || what == A_DEC || key_b;
    case 1: /* 001: read A|B, decrement A|B */
        return what == A_READ || what == A_DEC;
    case 3: /* 011: read B, write B */
        return key_b && (what == A_READ || what == A_WRITE);
    case 5: /* 101: read B */
        return key_b && what == A_READ;
    default: /* 111: never */
        return false;
    }
}

/* Sector trailer (MF1S50 Table 7): may the key write the trailer? */
static bool trailer_write_ok(const uint8_t *t, bool key_b)
{
    switch (access_bits(t, 3)) {
    case 0: /* 000: keys by A, access bits never */
    case 1: /* 001: transport: A writes all */
        return !key_b;
    case 3: /* 011: B writes keys and access bits */
    case 4: /* 100: B writes keys */
        return key_b;
    default:
        return false;
    }
}

static bool value_block_ok(const uint8_t *b)
{
    for (int i = 0; i < 4; i++)
        if (b[i] != b[8 + i] || (unsigned)b[i] + b[4 + i] != 0xFFu)
            return false;
    return b[12] == b[14] && (unsigned)b[12] + b[13] == 0xFFu && b[13] == b[15];
}

uint8_t emu_mfc_command(emu_mfc_card *c, const uint8_t *cmd, size_t n, uint8_t *ans, size_t *alen,
                        bool tear_at_write)
{
    *alen = 0;
    if (c->halted || n == 0)
        return 0x01; /* the card does not answer */
    uint8_t blk = n > 1 ? cmd[1] : 0xFF;
    if (blk >= 64 && cmd[0] != 0x50)
        return 0x01;
    uint8_t *t = blk < 64 ? c->mem[blk / 4 * 4 + 3] : NULL;
    bool in_sector = blk < 64 && c->sector == blk / 4;
    switch (cmd[0]) {
    case 0x60:
    case 0x61: {
        if (n != 12)
            return 0x01;
        const uint8_t *uid4 = c->uid + c->uid_len - 4;
        const uint8_t *key = cmd[0] == 0x60 ? t : t + 10;
        if (memcmp(cmd + 8, uid4, 4) != 0 || memcmp(cmd + 2, key, 6) != 0) {
            c->halted = true; /* a failed Crypto-1 authentication halts the card */
            c->sector = -1;
            return 0x14;
        }
        c->sector = blk / 4;
        c->key_b = cmd[0] == 0x61;
        return 0x00;
    }
    case 0x30:
        if (n != 2)
            return 0x01;
        if (!in_sector)
            return 0x14;
        memcpy(ans, c->mem[blk], 16);
        if (blk % 4 == 3) {
            memset(ans, 0, 6); /* key A never reads back */
            unsigned tb = access_bits(t, 3);
            if (!(tb == 0 || tb == 1 || tb == 2))
                memset(ans + 10, 0, 6); /* key B readable only in those settings */
        } else if (!data_ok(t, blk % 4, c->key_b, A_READ)) {
            c->halted = true; /* the card NAKs; the PN532 reports a failure */
            return 0x14;
        }
        *alen = 16;
        return 0x00;
    case 0xA0:
        if (n != 18 || blk == 0)
            return 0x01;
        if (!in_sector)
            return 0x14;
        if (blk % 4 == 3 ? !trailer_write_ok(t, c->key_b)
                         : !data_ok(t, blk % 4, c->key_b, A_WRITE)) {
            c->halted = true;
            return 0x14;
        }
        if (tear_at_write) {
            memcpy(c->mem[blk], cmd + 2, 8); /* half the block made it */
            return 0x01;
        }
        memcpy(c->mem[blk], cmd + 2, 16);
        return 0x00;
    case 0xC0: /* decrement */
    case 0xC1: /* increment */
    case 0xC2: /* restore */
        if (n != 6 || !in_sector || blk % 4 == 3)
            return 0x14;
        if (!data_ok(t, blk % 4, c->key_b, cmd[0] == 0xC1 ? A_INC : A_DEC) ||
            !value_block_ok(c->mem[blk])) {
            c->halted = true;
            return 0x14;
        }
        {
            int32_t v = (int32_t)((uint32_t)c->mem[blk][0] | (uint32_t)c->mem[blk][1] << 8 |
                                  (uint32_t)c->mem[blk][2] << 16 | (uint32_t)c->mem[blk][3] << 24);
            int32_t d = (int32_t)((uint32_t)cmd[2] | (uint32_t)cmd[3] << 8 |
                                  (uint32_t)cmd[4] << 16 | (uint32_t)cmd[5] << 24);
            int64_t r = cmd[0] == 0xC0 ? (int64_t)v - d : cmd[0] == 0xC1 ? (int64_t)v + d : v;
            for (int i = 0; i < 4; i++)
                c->value_buf[i] = (uint8_t)((uint64_t)r >> (8 * i));
            c->value_pending = true;
        }
        return 0x00;
    case 0xB0: /* transfer */
        if (n != 2 || !in_sector || blk % 4 == 3 || !c->value_pending ||
            !data_ok(t, blk % 4, c->key_b, A_DEC)) {
            c->halted = true;
            return 0x14;
        }
        for (int i = 0; i < 4; i++) {
            c->mem[blk][i] = c->mem[blk][8 + i] = c->value_buf[i];
            c->mem[blk][4 + i] = (uint8_t)~c->value_buf[i];
        }
        c->value_pending = false;
        return 0x00;
    case 0x50: /* HLTA: no answer by definition */
        c->halted = true;
        c->sector = -1;
        return 0x01;
    default:
        return 0x01;
    }
}
