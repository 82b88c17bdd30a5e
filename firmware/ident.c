/* ident.c — identifiers of identity-only cards (ident.h). */
#include "ident.h"

#include <stdio.h>
#include <string.h>

bool yn_ident_random(bool type_b, const uint8_t *uid, size_t uid_len)
{
    return !type_b && uid_len == 4 && uid[0] == 0x08;
}

static bool length_ok(bool type_b, size_t n)
{
    return type_b ? n == 4 : n == 4 || n == 7 || n == 10;
}

int yn_ident_make(bool type_b, const uint8_t *uid, size_t uid_len, char out[YN_IDENT_MAX])
{
    out[0] = '\0';
    if (!uid || !length_ok(type_b, uid_len))
        return YN_EINVAL;
    bool zero = true, ones = true;
    for (size_t i = 0; i < uid_len; i++) {
        zero &= uid[i] == 0x00;
        ones &= uid[i] == 0xFF;
    }
    if (zero || ones || yn_ident_random(type_b, uid, uid_len))
        return YN_EREFUSED;
    int n = snprintf(out, YN_IDENT_MAX, "%c:", type_b ? 'B' : 'A');
    for (size_t i = 0; i < uid_len; i++)
        n += snprintf(out + n, YN_IDENT_MAX - (size_t)n, "%02X", uid[i]);
    return YN_OK;
}

bool yn_ident_valid(const char *s)
{
    if (!s || (s[0] != 'A' && s[0] != 'B') || s[1] != ':')
        return false;
    size_t hex = strnlen(s + 2, YN_IDENT_MAX);
    if (hex % 2 || !length_ok(s[0] == 'B', hex / 2))
        return false;
    for (size_t i = 2; i < 2 + hex; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}
