/* hex.h — bytes as hex text and back (base layer): the one encoder of the
 * project (hashes, MACs, keys, UIDs in files, logs and URLs) and its two
 * decoders, strict for canonical fields and lenient for key files. */
#ifndef YN_HEX_H
#define YN_HEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* 2n lowercase hex digits and a NUL into out (2n + 1 bytes). */
void yn_hex_encode(const uint8_t *b, size_t n, char *out);
/* Exactly 2n lowercase hex digits (the canonical form we write: manifest
 * hashes, the ledger's mark) into n bytes; false for anything else. */
bool yn_hex_decode_exact(const char *s, uint8_t *out, size_t n);
/* Hex text of any length, either case, whitespace and '#' comments (to the
 * end of the line) skipped: key files, card files. YN_EINVAL for another
 * character or an odd number of digits, YN_ELIMIT over cap bytes. */
int yn_hex_decode(const char *text, uint8_t *buf, size_t cap, size_t *len) YN_MUST_CHECK;

#endif
