/* terminals.h — who may talk to the district: one-time enrolment tokens, the
 * enrolment that trades one for a terminal key — a shared key made here, or
 * the public half of a key pair the terminal made itself (PROTOCOL.md §10) —
 * (and re-enrolment, which moves a terminal to another canteen from its next
 * record on), the credential lookup, and the authentication of a terminal's
 * signed JSON requests (/v1/updates, /v1/records). PROTOCOL.md §2. */
#ifndef YN_DISTRICT_TERMINALS_H
#define YN_DISTRICT_TERMINALS_H

#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "db.h"
#include "sig.h"

#define YN_TERMINAL_KEY_MAX 65 /* a shared key (16..64 bytes) or a public point (65) */

/* A terminal's credential as enrolled (terminals.key_type, terminals.key). */
typedef struct yn_terminal_cred {
    enum yn_batch_auth auth; /* shared key (0) or key pair (1): key_type in the database */
    uint8_t key[YN_TERMINAL_KEY_MAX];
    size_t key_len;
} yn_terminal_cred;

/* The terminal's credential. YN_ENOTFOUND when it is not enrolled. */
int yn_terminal_key(yn_db *db, const char *terminal, yn_terminal_cred *cred) YN_MUST_CHECK;

/* A JSON request body signed by terminal, with the header of its kind:
 * mac_hex the lowercase hex HMAC-SHA256 of body under its shared key, or
 * sig_hex the lowercase hex ECDSA signature (r ‖ s) of body by its key pair;
 * the other header must be absent (NULL). YN_OK; YN_ENOTFOUND (not enrolled,
 * 403); YN_EAUTH (missing, of the other kind, or not verifying: 401);
 * storage errors. */
int yn_terminal_request_check(yn_db *db, const char *terminal, const void *body, size_t len,
                              const char *mac_hex, const char *sig_hex) YN_MUST_CHECK;

/* A new one-time token for terminal at canteen (ids checked: YN_EINVAL);
 * token gets 32 lowercase hex digits. Only its SHA-256 is stored. */
int yn_terminal_token_new(yn_db *db, const char *terminal, const char *canteen,
                          char token[33]) YN_MUST_CHECK;

/* Spend token: the terminal named by it is enrolled with pubkey (the public
 * point of its key pair; the caller has checked it and the request's
 * signature by it) or, pubkey NULL, a fresh random shared key (key_hex, 64
 * lowercase hex digits; "" for a key pair) — either replacing what it had —
 * and the canteen of the token from record max(held, terminal_last_seq) + 1
 * on (PROTOCOL.md §2.2); records up to there stay with the canteen where they
 * were made. YN_EAUTH for an unknown or spent token. terminal and canteen
 * get the ids (sizes 17 and 65). */
int yn_terminal_enrol(yn_db *db, const char *token, int64_t terminal_last_seq,
                      const uint8_t pubkey[YN_SIG_P256_PUB_LEN], char *terminal, char *canteen,
                      char key_hex[65]) YN_MUST_CHECK;

#endif
