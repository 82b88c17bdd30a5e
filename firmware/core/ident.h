/* ident.h — the identifier of a card whose record the terminal cannot read
 * (another issuer's card, another application, keys that are not ours): what
 * any reader can read of it, the ISO/IEC 14443-A UID or the 14443-B PUPI, in
 * one text form the roster, the blacklist, the journal and the batches share.
 * Such an "identity-only" card is served only when the district's roster binds
 * its identifier to a senior (firmware/core/CARD.md §8). Pure code.
 *
 * Text form: "A:" or "B:" then the bytes in upper-case hex, e.g.
 * "A:04A1B2C3D4E5F6" (a 7-byte type A UID), "B:1A2B3C4D" (a type B PUPI).
 * One spelling per identifier: yn_ident_valid refuses lower case, other
 * lengths and other prefixes, so equal identifiers are equal strings. */
#ifndef YN_IDENT_H
#define YN_IDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define YN_IDENT_MAX 23 /* "A:" + 20 hex digits (a 10-byte UID) + NUL */

/* The identifier of a type A UID (4, 7 or 10 bytes) or, with type_b, of a
 * type B PUPI (4 bytes). YN_EINVAL for another length; YN_EREFUSED when the
 * bytes cannot identify a card: a random UID (yn_ident_random) or an
 * all-zero (or all-FF) value, which some cards answer with instead of a
 * serial number. */
int yn_ident_make(bool type_b, const uint8_t *uid, size_t uid_len,
                  char out[YN_IDENT_MAX]) YN_MUST_CHECK;

/* A random UID by its form: 4 bytes whose first is 0x08 (ISO/IEC 14443-3
 * §6.4.4: "UID0 = 08h, random number"), what phones and privacy cards show
 * with a new value at each activation. Cards that change their UID without
 * that prefix are found by activating them twice (firmware/app/tap.c). */
bool yn_ident_random(bool type_b, const uint8_t *uid, size_t uid_len);

/* s is an identifier in its one text form, of a UID that can identify a
 * card: what yn_ident_make makes. */
bool yn_ident_valid(const char *s);
/* Why s is not a valid identifier (a sentence for an operator: prefix, hex,
 * length, a random or all-zero UID), or NULL when it is. */
const char *yn_ident_fault(const char *s);

#endif
