/* money.h — amounts are int64 fen; these turn them into text and back. */
#ifndef YN_MONEY_H
#define YN_MONEY_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* "¥15.00", "-¥0.50". */
void yn_fen_format(int64_t fen, char *buf, size_t len);
/* Parse staff input in yuan: "15", "12.5", "9.05" (at most two decimals),
 * 0 <= result <= max_fen. YN_EINVAL otherwise. */
int yn_fen_parse_yuan(const char *text, int64_t max_fen, int64_t *fen) YN_MUST_CHECK;

#endif
