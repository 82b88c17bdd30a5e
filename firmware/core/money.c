/* money.c — fen to text and staff-typed yuan to fen, integer only. */
#include "money.h"

#include <stdio.h>

void yn_fen_format(int64_t fen, char *buf, size_t len)
{
    uint64_t mag = fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;
    snprintf(buf, len, "%s¥%llu.%02llu", fen < 0 ? "-" : "", (unsigned long long)(mag / 100),
             (unsigned long long)(mag % 100));
}

int yn_fen_parse_yuan(const char *text, int64_t max_fen, int64_t *fen)
{
    int64_t yuan = 0, cents = 0;
    int int_digits = 0, frac_digits = -1; /* -1: no '.' seen */
    for (const char *p = text; *p; p++) {
        if (*p == '.') {
            if (frac_digits >= 0)
                return YN_EINVAL;
            frac_digits = 0;
        } else if (*p >= '0' && *p <= '9') {
            if (frac_digits < 0) {
                if (++int_digits > 9)
                    return YN_EINVAL;
                yuan = yuan * 10 + (*p - '0');
            } else {
                if (++frac_digits > 2)
                    return YN_EINVAL;
                cents = cents * 10 + (*p - '0');
            }
        } else {
            return YN_EINVAL;
        }
    }
    if (int_digits == 0 && frac_digits <= 0)
        return YN_EINVAL;
    if (frac_digits == 1)
        cents *= 10;
    int64_t v = yuan * 100 + cents;
    if (v > max_fen)
        return YN_EINVAL;
    *fen = v;
    return YN_OK;
}
