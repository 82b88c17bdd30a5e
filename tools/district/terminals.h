/* terminals.h — who may talk to the district: one-time enrolment tokens, the
 * enrolment that trades one for a terminal key (and re-enrolment, which
 * moves a terminal to another canteen from its next record on), the key
 * lookup, and the authentication of a terminal's signed JSON requests
 * (/v1/updates, /v1/records). PROTOCOL.md §2. */
#ifndef YN_DISTRICT_TERMINALS_H
#define YN_DISTRICT_TERMINALS_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"

#define YN_TERMINAL_KEY_MAX 64 /* bytes of a terminal key the server holds */

/* The terminal's key. YN_ENOTFOUND when it is not enrolled. */
int yn_terminal_key(yn_db *db, const char *terminal, uint8_t key[YN_TERMINAL_KEY_MAX],
                    size_t *key_len) YN_MUST_CHECK;

/* A JSON request body signed by terminal: mac_hex must be the lowercase hex
 * HMAC-SHA256 of body under its key. YN_OK; YN_ENOTFOUND (not enrolled,
 * 403); YN_EAUTH (no or wrong MAC, 401); storage errors. */
int yn_terminal_request_check(yn_db *db, const char *terminal, const void *body, size_t len,
                              const char *mac_hex) YN_MUST_CHECK;

/* A new one-time token for terminal at canteen (ids checked: YN_EINVAL);
 * token gets 32 lowercase hex digits. Only its SHA-256 is stored. */
int yn_terminal_token_new(yn_db *db, const char *terminal, const char *canteen,
                          char token[33]) YN_MUST_CHECK;

/* Spend token: the terminal named by it gets a fresh random key (key_hex, 64
 * lowercase hex digits) and the canteen of the token from record
 * max(held, terminal_last_seq) + 1 on (PROTOCOL.md §2.2); records up to there
 * stay with the canteen where they were made. YN_EAUTH for an unknown or
 * spent token. terminal and canteen get the ids (sizes 17 and 65). */
int yn_terminal_enrol(yn_db *db, const char *token, int64_t terminal_last_seq, char *terminal,
                      char *canteen, char key_hex[65]) YN_MUST_CHECK;

#endif
