/* update.h — the signed update document the district sends a terminal
 * (sync/PROTOCOL.md §5): roster delta, blacklist delta, policy, allocations
 * and server time, signed with the district's Ed25519 key and numbered by a
 * per-terminal version that only goes up. Pure code: parse, verify, sign.
 *
 * Everything is checked before anything is trusted: the signature over the
 * exact payload bytes, the terminal it is for, its version against the last
 * applied, every field's type and range, the policy document itself. A
 * document that passes can be applied without a further check failing. */
#ifndef YN_UPDATE_H
#define YN_UPDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "rules.h"
#include "status.h"

#define YN_UPDATE_FORMAT      1
#define YN_UPDATE_DOMAIN      "YNUPD1" /* signed bytes = domain ‖ NUL ‖ payload */
#define YN_UPDATE_MAX_BODY    (32u << 20)
#define YN_UPDATE_MAX_ITEMS   200000 /* roster cards, blacklist changes, allocations: each */
#define YN_UPDATE_MAX_POLICY  (1u << 20)
#define YN_UPDATE_MAX_AMOUNT  YN_RULES_MAX_FEN /* one allocation, fen */
#define YN_UPDATE_PUBKEY_LEN  32
#define YN_UPDATE_PRIVKEY_LEN 32

/* One allocation: the ledger's own type, so a document is applied as parsed. */
typedef yn_ledger_alloc yn_update_alloc;

typedef struct yn_update {
    char terminal[YN_LEDGER_ID_MAX];
    int64_t version;        /* this document's number for the terminal, >= 1 */
    int64_t server_utc_ms;  /* server's clock when it signed */
    int64_t roster_version; /* 0 = no roster part */
    size_t n_cards;
    yn_card_facts *cards;
    size_t n_blacklist; /* seqs strictly increasing */
    yn_ledger_blacklist_entry *blacklist;
    char *policy_json; /* NULL = no policy part; else a document yn_policy_load accepts */
    size_t policy_len;
    int64_t alloc_seq; /* the district's allocation counter the items reach; 0 = none */
    size_t n_allocs;
    yn_update_alloc *allocs;
    bool more; /* the server holds more: ask again at once */
} yn_update;

/* Verify and parse an update body. terminal: this terminal's id;
 * last_version: the last document version applied (0 if none). Returns
 *   YN_OK     *out filled (yn_update_free it);
 *   YN_EAUTH  bad signature, or a document for another terminal;
 *   YN_ESTALE version not above last_version (an old or replayed document);
 *   YN_EPROTO malformed envelope or payload (err says which field);
 *   YN_ELIMIT over a size limit.
 * On error *out is zeroed and owns nothing. */
int yn_update_parse(const char *body, size_t len, const uint8_t pubkey[YN_UPDATE_PUBKEY_LEN],
                    const char *terminal, int64_t last_version, yn_update *out, char *err,
                    size_t errlen) YN_MUST_CHECK;
void yn_update_free(yn_update *u);

/* Wrap payload (the JSON text of PROTOCOL.md §5.2) in a signed envelope:
 * *body is malloc'd, NUL-terminated (free() it). For the district server. */
int yn_update_sign(const char *payload, size_t len, const uint8_t privkey[YN_UPDATE_PRIVKEY_LEN],
                   char **body, size_t *body_len) YN_MUST_CHECK;

/* Base64 (RFC 4648, padded) helpers shared with the server. */
char *yn_base64_encode(const uint8_t *data, size_t len);
int yn_base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len) YN_MUST_CHECK;

#endif
