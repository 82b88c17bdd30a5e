/* update.c — verify, parse and sign update documents (sync/PROTOCOL.md §5).
 *
 * The envelope is {"v":1,"payload":"<base64>","sig":"<base64>"}: the
 * signature covers "YNUPD1" ‖ NUL ‖ the decoded payload bytes exactly, so no
 * JSON canonicalisation is needed. The payload is parsed only after the
 * signature verified, with duplicate keys and unknown keys refused. */
#include "update.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "rules.h"
#include "sig.h"

#define SIG_LEN YN_SIG_ED25519_LEN

char *yn_base64_encode(const uint8_t *data, size_t len)
{
    size_t cap = 4 * ((len + 2) / 3) + 1;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    return out;
}

int yn_base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len % 4 != 0 || len > (size_t)INT32_MAX)
        return YN_EPROTO;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/' || (c == '=' && i >= len - 2);
        if (!ok || (c != '=' && i > 0 && text[i - 1] == '='))
            return YN_EPROTO;
    }
    uint8_t *buf = malloc(len / 4 * 3 + 1);
    if (!buf)
        return YN_ENOMEM;
    int n = len ? EVP_DecodeBlock(buf, (const unsigned char *)text, (int)len) : 0;
    if (n < 0) {
        free(buf);
        return YN_EPROTO;
    }
    size_t pad = (len >= 1 && text[len - 1] == '=') + (len >= 2 && text[len - 2] == '=');
    *out = buf;
    *out_len = (size_t)n - pad;
    return YN_OK;
}

/* domain ‖ NUL ‖ payload, the bytes that are signed */
static uint8_t *signed_bytes(const uint8_t *payload, size_t len, size_t *out_len)
{
    size_t dl = sizeof YN_UPDATE_DOMAIN; /* includes the NUL */
    uint8_t *m = malloc(dl + len + 1);
    if (!m)
        return NULL;
    memcpy(m, YN_UPDATE_DOMAIN, dl);
    if (len)
        memcpy(m + dl, payload, len);
    *out_len = dl + len;
    return m;
}

int yn_update_sign(const char *payload, size_t len, const uint8_t priv[YN_UPDATE_PRIVKEY_LEN],
                   char **body, size_t *body_len)
{
    *body = NULL;
    *body_len = 0;
    size_t msg_len;
    uint8_t *msg = signed_bytes((const uint8_t *)payload, len, &msg_len);
    uint8_t sig[SIG_LEN];
    int rc = msg ? yn_sig_ed25519_sign(priv, msg, msg_len, sig) : YN_ENOMEM;
    if (rc == YN_OK) {
        rc = YN_ENOMEM;
        char *p64 = yn_base64_encode((const uint8_t *)payload, len);
        char *s64 = yn_base64_encode(sig, SIG_LEN);
        size_t cap = (p64 ? strlen(p64) : 0) + (s64 ? strlen(s64) : 0) + 64;
        char *out = p64 && s64 ? malloc(cap) : NULL;
        if (out) {
            int n = snprintf(out, cap, "{\"v\":%d,\"payload\":\"%s\",\"sig\":\"%s\"}",
                             YN_UPDATE_FORMAT, p64, s64);
            *body = out;
            *body_len = (size_t)n;
            rc = YN_OK;
        }
        free(p64);
        free(s64);
    }
    free(msg);
    return rc;
}

/* --- payload ----------------------------------------------------------------- */

typedef struct perr {
    char *buf;
    size_t len;
} perr;

static int bad(perr *e, int rc, const char *fmt, ...)
{
    if (e->buf && e->len) {
        int n = snprintf(e->buf, e->len, "update: ");
        va_list ap;
        va_start(ap, fmt);
        if (n >= 0 && (size_t)n < e->len)
            vsnprintf(e->buf + n, e->len - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Only these keys may appear in obj (NULL-terminated list). */
static int only_keys(perr *e, json_t *obj, const char *where, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        (void)v;
        bool ok = false;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(key, *a) == 0;
        if (!ok)
            return bad(e, YN_EPROTO, "%s: unknown key \"%s\"", where, key);
    }
    return YN_OK;
}

static int get_int(perr *e, json_t *obj, const char *key, const char *where, int64_t lo, int64_t hi,
                   bool required, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *out = 0;
        return required ? bad(e, YN_EPROTO, "%s: \"%s\" missing", where, key) : YN_OK;
    }
    if (!json_is_integer(v))
        return bad(e, YN_EPROTO, "%s: \"%s\" is not an integer", where, key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return bad(e, YN_EPROTO, "%s: \"%s\" = %lld out of range %lld..%lld", where, key,
                   (long long)x, (long long)lo, (long long)hi);
    *out = (int64_t)x;
    return YN_OK;
}

/* A string of 1..size-1 graphic ASCII characters (ids, card numbers, sources). */
static int get_id(perr *e, json_t *obj, const char *key, const char *where, char *dst, size_t size)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_string(v))
        return bad(e, YN_EPROTO, "%s: \"%s\" missing or not a string", where, key);
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n >= size)
        return bad(e, YN_EPROTO, "%s: \"%s\" must be 1..%zu characters", where, key, size - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return bad(e, YN_EPROTO, "%s: \"%s\" has a character outside printable ASCII", where,
                       key);
    memcpy(dst, s, n + 1);
    return YN_OK;
}

/* An optional identifier of an identity-only card (firmware/core/ident.h): absent
 * is "". */
static int get_ident(perr *e, json_t *obj, const char *where, char dst[YN_IDENT_MAX])
{
    json_t *v = json_object_get(obj, "ident");
    dst[0] = '\0';
    if (!v)
        return YN_OK;
    if (!json_is_string(v) || !yn_ident_valid(json_string_value(v)))
        return bad(e, YN_EPROTO,
                   "%s: \"ident\" is not an identifier (\"A:\" or \"B:\" and"
                   " the UID in upper-case hex)",
                   where);
    memcpy(dst, json_string_value(v), strlen(json_string_value(v)) + 1);
    return YN_OK;
}

/* The shared rules' verdict on an entry (rules.h), with where and the field. */
static int rules_ok(perr *e, int verdict, const yn_rules_fault *f, const char *where)
{
    return verdict == YN_OK ? YN_OK : bad(e, YN_EPROTO, "%s: %s: %s", where, f->field, f->why);
}

static json_t *get_array(perr *e, json_t *obj, const char *key, const char *where, int *rc)
{
    json_t *a = json_object_get(obj, key);
    *rc = YN_OK;
    if (!a)
        return NULL;
    if (!json_is_array(a)) {
        *rc = bad(e, YN_EPROTO, "%s: \"%s\" is not an array", where, key);
        return NULL;
    }
    if (json_array_size(a) > YN_UPDATE_MAX_ITEMS) {
        *rc =
            bad(e, YN_ELIMIT, "%s: \"%s\" has more than %d items", where, key, YN_UPDATE_MAX_ITEMS);
        return NULL;
    }
    return a;
}

static int parse_roster(perr *e, json_t *r, yn_update *u)
{
    static const char *const keys[] = {"version", "cards", NULL};
    static const char *const card_keys[] = {"card_no", "birth_ymd",  "flags", "district",
                                            "street",  "expiry_ymd", "ident", NULL};
    int rc;
    if (!json_is_object(r))
        return bad(e, YN_EPROTO, "roster is not an object");
    if ((rc = only_keys(e, r, "roster", keys)) ||
        (rc = get_int(e, r, "version", "roster", 1, INT64_MAX, true, &u->roster_version)))
        return rc;
    json_t *a = get_array(e, r, "cards", "roster", &rc);
    if (rc != YN_OK)
        return rc;
    if (!a)
        return bad(e, YN_EPROTO, "roster: \"cards\" missing");
    u->n_cards = json_array_size(a);
    u->cards = calloc(u->n_cards ? u->n_cards : 1, sizeof *u->cards);
    if (!u->cards)
        return YN_ENOMEM;
    for (size_t i = 0; i < u->n_cards; i++) {
        json_t *c = json_array_get(a, i);
        char where[48];
        snprintf(where, sizeof where, "roster.cards[%zu]", i);
        yn_card_facts *f = &u->cards[i];
        yn_rules_fault fault;
        int64_t birth, flags, district, street, expiry;
        if (!json_is_object(c))
            return bad(e, YN_EPROTO, "%s is not an object", where);
        if ((rc = only_keys(e, c, where, card_keys)) ||
            (rc = get_id(e, c, "card_no", where, f->card_no, sizeof f->card_no)) ||
            (rc = get_int(e, c, "birth_ymd", where, 0, 99991231, true, &birth)) ||
            (rc = get_int(e, c, "flags", where, 0, UINT32_MAX, true, &flags)) ||
            (rc = get_int(e, c, "district", where, 0, 999999, true, &district)) ||
            (rc = get_int(e, c, "street", where, 0, 999999999, true, &street)) ||
            (rc = get_int(e, c, "expiry_ymd", where, 0, 99991231, true, &expiry)) ||
            (rc = get_ident(e, c, where, f->ident)))
            return rc;
        f->birth_ymd = (int32_t)birth;
        f->flags = (uint32_t)flags;
        f->district = (uint32_t)district;
        f->street = (uint32_t)street;
        f->expiry_ymd = (int32_t)expiry;
        if ((rc = rules_ok(e, yn_rules_roster_card(f, &fault), &fault, where)))
            return rc;
    }
    return YN_OK;
}

static int parse_blacklist(perr *e, json_t *root, yn_update *u)
{
    static const char *const keys[] = {"seq", "card_no", "ident", "lost", NULL};
    int rc;
    json_t *a = get_array(e, root, "blacklist", "payload", &rc);
    if (!a)
        return rc;
    u->n_blacklist = json_array_size(a);
    u->blacklist = calloc(u->n_blacklist ? u->n_blacklist : 1, sizeof *u->blacklist);
    if (!u->blacklist)
        return YN_ENOMEM;
    for (size_t i = 0; i < u->n_blacklist; i++) {
        json_t *b = json_array_get(a, i);
        char where[48];
        snprintf(where, sizeof where, "blacklist[%zu]", i);
        yn_ledger_blacklist_entry *be = &u->blacklist[i];
        if (!json_is_object(b))
            return bad(e, YN_EPROTO, "%s is not an object", where);
        if ((rc = only_keys(e, b, where, keys)) ||
            (rc = get_int(e, b, "seq", where, 1, INT64_MAX, true, &be->seq)))
            return rc;
        /* a card number, or an identity-only card's identifier: one of the two */
        bool by_ident = json_object_get(b, "ident") != NULL;
        if (by_ident && json_object_get(b, "card_no"))
            return bad(e, YN_EPROTO, "%s: \"card_no\" and \"ident\" both given", where);
        if ((rc = by_ident ? get_ident(e, b, where, be->ident)
                           : get_id(e, b, "card_no", where, be->card_no, sizeof be->card_no)))
            return rc;
        json_t *lost = json_object_get(b, "lost");
        if (!json_is_boolean(lost))
            return bad(e, YN_EPROTO, "%s: \"lost\" missing or not true/false", where);
        be->lost = json_is_true(lost);
        yn_rules_fault fault;
        if ((rc = rules_ok(e, yn_rules_blacklist(be, &fault), &fault, where)))
            return rc;
        if (i > 0 && be->seq <= u->blacklist[i - 1].seq)
            return bad(e, YN_EPROTO, "%s: seq %lld not above the one before", where,
                       (long long)be->seq);
    }
    return YN_OK;
}

static int parse_allocations(perr *e, json_t *root, yn_update *u)
{
    static const char *const keys[] = {"seq", "items", NULL};
    static const char *const item_keys[] = {"id", "card_no", "source", "amount_fen", NULL};
    json_t *o = json_object_get(root, "allocations");
    int rc;
    if (!o)
        return YN_OK;
    if (!json_is_object(o))
        return bad(e, YN_EPROTO, "allocations is not an object");
    if ((rc = only_keys(e, o, "allocations", keys)) ||
        (rc = get_int(e, o, "seq", "allocations", 1, INT64_MAX, true, &u->alloc_seq)))
        return rc;
    json_t *a = get_array(e, o, "items", "allocations", &rc);
    if (rc != YN_OK)
        return rc;
    if (!a)
        return bad(e, YN_EPROTO, "allocations: \"items\" missing");
    u->n_allocs = json_array_size(a);
    u->allocs = calloc(u->n_allocs ? u->n_allocs : 1, sizeof *u->allocs);
    if (!u->allocs)
        return YN_ENOMEM;
    for (size_t i = 0; i < u->n_allocs; i++) {
        json_t *it = json_array_get(a, i);
        char where[48];
        snprintf(where, sizeof where, "allocations.items[%zu]", i);
        yn_update_alloc *al = &u->allocs[i];
        if (!json_is_object(it))
            return bad(e, YN_EPROTO, "%s is not an object", where);
        if ((rc = only_keys(e, it, where, item_keys)) ||
            (rc = get_id(e, it, "id", where, al->id, sizeof al->id)) ||
            (rc = get_id(e, it, "card_no", where, al->card_no, sizeof al->card_no)) ||
            (rc = get_id(e, it, "source", where, al->source, sizeof al->source)) ||
            (rc = get_int(e, it, "amount_fen", where, 1, YN_UPDATE_MAX_AMOUNT, true,
                          &al->amount_fen)))
            return rc;
        yn_rules_fault fault;
        if ((rc = rules_ok(e, yn_rules_alloc(al, &fault), &fault, where)))
            return rc;
    }
    return YN_OK;
}

static int parse_payload(perr *e, const uint8_t *p, size_t len, const char *terminal,
                         int64_t last_version, yn_update *u)
{
    static const char *const keys[] = {"v",      "terminal",  "version", "server_utc_ms",
                                       "roster", "blacklist", "policy",  "allocations",
                                       "more",   NULL};
    json_error_t jerr;
    json_t *root = json_loadb((const char *)p, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return bad(e, YN_EPROTO, "payload line %d column %d: %s", jerr.line, jerr.column,
                   jerr.text);
    int rc;
    int64_t v;
    if (!json_is_object(root))
        rc = bad(e, YN_EPROTO, "payload is not an object");
    else if ((rc = only_keys(e, root, "payload", keys)) ||
             (rc =
                  get_int(e, root, "v", "payload", YN_UPDATE_FORMAT, YN_UPDATE_FORMAT, true, &v)) ||
             (rc = get_id(e, root, "terminal", "payload", u->terminal, sizeof u->terminal)) ||
             (rc = get_int(e, root, "version", "payload", 1, INT64_MAX, true, &u->version)) ||
             (rc = get_int(e, root, "server_utc_ms", "payload", 0, INT64_MAX, true,
                           &u->server_utc_ms)))
        ;
    else if (strcmp(u->terminal, terminal) != 0)
        rc = bad(e, YN_EAUTH, "document is for terminal %s, not %s", u->terminal, terminal);
    else if (u->version <= last_version)
        rc = bad(e, YN_ESTALE, "document version %lld is not above %lld already applied",
                 (long long)u->version, (long long)last_version);
    if (rc == YN_OK && json_object_get(root, "roster"))
        rc = parse_roster(e, json_object_get(root, "roster"), u);
    if (rc == YN_OK)
        rc = parse_blacklist(e, root, u);
    if (rc == YN_OK)
        rc = parse_allocations(e, root, u);
    json_t *pol = json_object_get(root, "policy");
    if (rc == YN_OK && pol && !json_is_null(pol)) {
        if (!json_is_string(pol)) {
            rc = bad(e, YN_EPROTO, "policy is not a string (the policy document's text)");
        } else if (json_string_length(pol) > YN_UPDATE_MAX_POLICY) {
            rc = bad(e, YN_ELIMIT, "policy document over %u bytes", YN_UPDATE_MAX_POLICY);
        } else {
            yn_policy *pp = NULL;
            char perr_text[200];
            u->policy_len = json_string_length(pol);
            u->policy_json = malloc(u->policy_len + 1);
            if (!u->policy_json) {
                rc = YN_ENOMEM;
            } else {
                memcpy(u->policy_json, json_string_value(pol), u->policy_len + 1);
                if (yn_policy_load(u->policy_json, u->policy_len, &pp, perr_text,
                                   sizeof perr_text) != YN_OK)
                    rc = bad(e, YN_EPROTO, "policy document refused: %s", perr_text);
                yn_policy_free(pp);
            }
        }
    }
    json_t *more = json_object_get(root, "more");
    if (rc == YN_OK && more && !json_is_boolean(more))
        rc = bad(e, YN_EPROTO, "more is not true/false");
    if (rc == YN_OK)
        u->more = json_is_true(more);
    json_decref(root);
    return rc;
}

void yn_update_free(yn_update *u)
{
    if (!u)
        return;
    free(u->cards);
    free(u->blacklist);
    free(u->policy_json);
    free(u->allocs);
    memset(u, 0, sizeof *u);
}

int yn_update_parse(const char *body, size_t len, const uint8_t pubkey[YN_UPDATE_PUBKEY_LEN],
                    const char *terminal, int64_t last_version, yn_update *out, char *err,
                    size_t errlen)
{
    perr e = {err, errlen};
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    if (!body || len > YN_UPDATE_MAX_BODY)
        return bad(&e, YN_ELIMIT, "body over %u bytes", YN_UPDATE_MAX_BODY);
    json_error_t jerr;
    json_t *env = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!env)
        return bad(&e, YN_EPROTO, "envelope line %d column %d: %s", jerr.line, jerr.column,
                   jerr.text);
    static const char *const keys[] = {"v", "payload", "sig", NULL};
    int rc;
    int64_t v;
    json_t *jp = json_object_get(env, "payload"), *js = json_object_get(env, "sig");
    uint8_t *payload = NULL, *sig = NULL, *msg = NULL;
    size_t payload_len = 0, sig_len = 0, msg_len = 0;
    if (!json_is_object(env))
        rc = bad(&e, YN_EPROTO, "envelope is not an object");
    else if ((rc = only_keys(&e, env, "envelope", keys)) ||
             (rc = get_int(&e, env, "v", "envelope", YN_UPDATE_FORMAT, YN_UPDATE_FORMAT, true, &v)))
        ;
    else if (!json_is_string(jp) || !json_is_string(js))
        rc = bad(&e, YN_EPROTO, "envelope: payload and sig must be strings");
    else if (yn_base64_decode(json_string_value(jp), json_string_length(jp), &payload,
                              &payload_len) != YN_OK ||
             yn_base64_decode(json_string_value(js), json_string_length(js), &sig, &sig_len) !=
                 YN_OK)
        rc = bad(&e, YN_EPROTO, "envelope: payload or sig is not base64");
    else if (sig_len != SIG_LEN)
        rc = bad(&e, YN_EPROTO, "envelope: sig is not 64 bytes");
    else if (!(msg = signed_bytes(payload, payload_len, &msg_len)))
        rc = YN_ENOMEM;
    else if (yn_sig_ed25519_verify(pubkey, msg, msg_len, sig) != YN_OK)
        rc = bad(&e, YN_EAUTH, "signature does not verify under the district key");
    json_decref(env);
    free(sig);
    free(msg);
    if (rc == YN_OK)
        rc = parse_payload(&e, payload, payload_len, terminal, last_version, out);
    free(payload);
    if (rc != YN_OK)
        yn_update_free(out);
    return rc;
}
