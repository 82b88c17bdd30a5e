/* terminals.c — enrolment, keys and request authentication (terminals.h).
 * The database keeps each terminal's credential as key_type (0 a shared key,
 * 1 an ECDSA P-256 key pair: enum yn_batch_auth) and key (the shared key, or
 * the public point). */
#include "terminals.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "hex.h"
#include "rules.h"

#define NO_END_SEQ INT64_MAX /* enrolments.to_seq of the current canteen */

/* A stored credential: a shared key of 16..64 bytes, or a point of P-256. */
static int take_key(void *arg, const yn_db_row *row)
{
    yn_terminal_cred *c = arg;
    size_t len;
    const uint8_t *b = yn_db_blob(row, 0, &len);
    int64_t type = yn_db_int(row, 1);
    bool pair = type == YN_BATCH_AUTH_ECDSA_P256;
    if ((type == YN_BATCH_AUTH_HMAC && len >= YN_BATCH_KEY_MIN && len <= 64) ||
        (pair && len == YN_SIG_P256_PUB_LEN)) {
        memcpy(c->key, b, len);
        c->key_len = len;
        c->auth = pair ? YN_BATCH_AUTH_ECDSA_P256 : YN_BATCH_AUTH_HMAC;
    }
    return YN_OK;
}

int yn_terminal_key(yn_db *db, const char *terminal, yn_terminal_cred *cred)
{
    memset(cred, 0, sizeof *cred);
    int rc = YN_DB_RUN(db, "SELECT key, key_type FROM terminals WHERE id = $1", take_key, cred,
                       DB_TEXT(terminal));
    return rc != YN_OK ? rc : cred->key_len ? YN_OK : YN_ENOTFOUND;
}

int yn_terminal_request_check(yn_db *db, const char *terminal, const void *body, size_t len,
                              const char *mac_hex, const char *sig_hex)
{
    yn_terminal_cred c;
    int rc = yn_rules_id(terminal) ? yn_terminal_key(db, terminal, &c) : YN_ENOTFOUND;
    if (rc != YN_OK)
        return rc;
    uint8_t tag[YN_SIG_P256_LEN], mac[YN_BATCH_MAC_LEN];
    if (c.auth == YN_BATCH_AUTH_ECDSA_P256) /* a key pair: X-YN-SIG, and no MAC */
        rc = !mac_hex && sig_hex && yn_hex_decode_exact(sig_hex, tag, YN_SIG_P256_LEN) &&
                     yn_sig_p256_verify(c.key, body, len, tag) == YN_OK
                 ? YN_OK
                 : YN_EAUTH;
    else { /* a shared key: X-YN-MAC, and no signature */
        yn_batch_hmac(c.key, c.key_len, body, len, mac);
        rc = !sig_hex && mac_hex && yn_hex_decode_exact(mac_hex, tag, YN_BATCH_MAC_LEN) &&
                     CRYPTO_memcmp(tag, mac, YN_BATCH_MAC_LEN) == 0
                 ? YN_OK
                 : YN_EAUTH;
    }
    OPENSSL_cleanse(&c, sizeof c);
    return rc;
}

int yn_terminal_token_new(yn_db *db, const char *terminal, const char *canteen, char token[33])
{
    if (!yn_rules_id(terminal) || !yn_rules_ref(canteen))
        return YN_EINVAL;
    uint8_t raw[16], th[SHA256_DIGEST_LENGTH];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return YN_EIO;
    yn_hex_encode(raw, sizeof raw, token);
    SHA256((const uint8_t *)token, strlen(token), th);
    return YN_DB_RUN(db, "INSERT INTO tokens(token_hash, terminal, canteen) VALUES ($1, $2, $3)",
                     NULL, NULL, DB_BLOB(th, sizeof th), DB_TEXT(terminal), DB_TEXT(canteen));
}

struct spent {
    char *terminal, *canteen;
    bool found;
};

static int take_spent(void *arg, const yn_db_row *row)
{
    struct spent *s = arg;
    snprintf(s->terminal, YN_LEDGER_ID_MAX, "%s", yn_db_text(row, 0));
    snprintf(s->canteen, YN_LEDGER_REF_MAX, "%s", yn_db_text(row, 1));
    s->found = true;
    return YN_OK;
}

int yn_terminal_enrol(yn_db *db, const char *token, int64_t terminal_last_seq,
                      const uint8_t pubkey[YN_SIG_P256_PUB_LEN], char *terminal, char *canteen,
                      char key_hex[65])
{
    uint8_t th[SHA256_DIGEST_LENGTH], key[32];
    SHA256((const uint8_t *)token, strlen(token), th);
    key_hex[0] = '\0';
    if (!pubkey && RAND_bytes(key, sizeof key) != 1)
        return YN_EIO;
    struct spent s = {terminal, canteen, false};
    int64_t held = 0;
    int rc = yn_db_begin(db, true);
    if (rc == YN_OK)
        rc = YN_DB_RUN(db,
                       "UPDATE tokens SET used = 1 WHERE token_hash = $1 AND used = 0"
                       " RETURNING terminal, canteen",
                       take_spent, &s, DB_BLOB(th, sizeof th));
    if (rc == YN_OK && !s.found)
        rc = YN_EAUTH;
    if (rc == YN_OK) {
        rc = yn_db_int_of(db, "SELECT last_seq FROM terminals WHERE id = $1",
                          (const yn_db_val[]){DB_TEXT(terminal)}, 1, &held);
        rc = rc == YN_ENOTFOUND ? YN_OK : rc;
    }
    /* the new canteen counts from the record after everything the terminal
     * made before, as far as the district or the terminal knows; never before
     * the current canteen's first record */
    int64_t from = (terminal_last_seq > held ? terminal_last_seq : held) + 1, current = 0;
    if (rc == YN_OK) {
        rc = yn_db_int_of(db, "SELECT from_seq FROM enrolments WHERE terminal = $1 AND to_seq = $2",
                          (const yn_db_val[]){DB_TEXT(terminal), DB_INT(NO_END_SEQ)}, 2, &current);
        rc = rc == YN_ENOTFOUND ? YN_OK : rc;
    }
    if (from < current)
        from = current;
    /* the new credential replaces the old, of either kind */
    if (rc == YN_OK)
        rc = YN_DB_RUN(db,
                       "INSERT INTO terminals(id, canteen, key, key_type) VALUES ($1, $2, $3, $4)"
                       " ON CONFLICT(id) DO UPDATE SET key = excluded.key,"
                       " key_type = excluded.key_type, canteen = excluded.canteen",
                       NULL, NULL, DB_TEXT(terminal), DB_TEXT(canteen),
                       pubkey ? DB_BLOB(pubkey, YN_SIG_P256_PUB_LEN) : DB_BLOB(key, sizeof key),
                       DB_INT(pubkey ? YN_BATCH_AUTH_ECDSA_P256 : YN_BATCH_AUTH_HMAC));
    if (rc == YN_OK && current == from) /* nothing made since the last enrolment */
        rc = YN_DB_RUN(db, "UPDATE enrolments SET canteen = $3 WHERE terminal = $1 AND to_seq = $2",
                       NULL, NULL, DB_TEXT(terminal), DB_INT(NO_END_SEQ), DB_TEXT(canteen));
    else if (rc == YN_OK)
        rc = YN_DB_RUN(db, "UPDATE enrolments SET to_seq = $2 WHERE terminal = $1 AND to_seq = $3",
                       NULL, NULL, DB_TEXT(terminal), DB_INT(from), DB_INT(NO_END_SEQ));
    if (rc == YN_OK && current != from)
        rc = YN_DB_RUN(db, "INSERT INTO enrolments VALUES ($1, $2, $3, $4)", NULL, NULL,
                       DB_TEXT(terminal), DB_INT(from), DB_INT(NO_END_SEQ), DB_TEXT(canteen));
    if (rc == YN_OK)
        rc = yn_db_commit(db);
    else
        yn_db_rollback(db);
    if (rc == YN_OK && !pubkey)
        yn_hex_encode(key, sizeof key, key_hex);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}
