/* hex.c — bytes as hex text and back. */
#include "hex.h"

#include <string.h>

static int digit_value(char c, bool upper_too)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (upper_too && c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void yn_hex_encode(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

bool yn_hex_decode_exact(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = digit_value(s[2 * i], false), lo = digit_value(s[2 * i + 1], false);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

int yn_hex_decode(const char *text, uint8_t *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    int hi = -1;
    *len = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '#') {
            while (*p && *p != '\n')
                p++;
            if (!*p)
                break;
            continue;
        }
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            continue;
        int v = digit_value(*p, true);
        if (v < 0)
            return YN_EINVAL;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n >= cap)
            return YN_ELIMIT;
        buf[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    if (hi >= 0)
        return YN_EINVAL; /* odd number of digits */
    *len = n;
    return YN_OK;
}
