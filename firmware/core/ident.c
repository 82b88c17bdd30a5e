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

const char *yn_ident_fault(const char *s)
{
    if (!s || (s[0] != 'A' && s[0] != 'B') || s[1] != ':')
        return "must start with A: (a type A UID) or B: (a type B PUPI)";
    bool type_b = s[0] == 'B';
    size_t hex = strnlen(s + 2, YN_IDENT_MAX);
    for (size_t i = 2; i < 2 + hex; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
            return "the UID must be hex digits 0-9 and A-F, upper case, nothing else";
    if (hex % 2 || !length_ok(type_b, hex / 2))
        return type_b ? "a type B PUPI is 4 bytes (8 hex digits)"
                      : "a type A UID is 4, 7 or 10 bytes (8, 14 or 20 hex digits)";
    uint8_t uid[10];
    for (size_t i = 0; i < hex / 2; i++) {
        unsigned v;
        sscanf(s + 2 + 2 * i, "%2X", &v);
        uid[i] = (uint8_t)v;
    }
    if (yn_ident_random(type_b, uid, hex / 2))
        return "a random UID (4 bytes, the first 08) changes at every tap: it cannot identify"
               " a card";
    char again[YN_IDENT_MAX];
    if (yn_ident_make(type_b, uid, hex / 2, again) != YN_OK)
        return "an all-zero or all-FF UID is not a serial number: it cannot identify a card";
    return NULL;
}

bool yn_ident_valid(const char *s)
{
    return yn_ident_fault(s) == NULL;
}
