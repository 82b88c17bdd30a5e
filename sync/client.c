/* client.c — HTTPS sync client (libcurl) and the apply step into the ledger.
 * See client.h and sync/PROTOCOL.md. TLS verification is always on: there is
 * no option to turn it off, and a URL that is not https:// is refused. */
#include "client.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "clock.h"
#include "hex.h"
#include "log.h"
#include "sig.h"
#include "timeutil.h"

#define REPLY_MAX         (YN_UPDATE_MAX_BODY + 1024)
#define RECORDS_MAX_BYTES 8388608 /* what /v1/records may send at once (its cap) */

struct yn_sync {
    yn_sync_opts o;
    CURL *curl;
    bool conflict; /* the district refused our records as conflicting: nothing more is sent */
    int64_t conflict_first, conflict_last;
};

typedef struct reply_buf {
    char *p;
    size_t len;
    bool too_big;
    long status;  /* HTTP status */
    int64_t held; /* X-YN-Held (/v1/records); -1 when absent */
    int more;     /* X-YN-More: 1 when the district holds more above what it sent */
} reply_buf;

static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
    reply_buf *b = arg;
    size_t len = size * n;
    if (b->len + len > REPLY_MAX) {
        b->too_big = true;
        return 0; /* aborts the transfer */
    }
    char *np = realloc(b->p, b->len + len + 1);
    if (!np)
        return 0;
    memcpy(np + b->len, data, len);
    b->p = np;
    b->len += len;
    b->p[b->len] = '\0';
    return len;
}

/* The two headers of a /v1/records reply (PROTOCOL.md): X-YN-Held, X-YN-More. */
static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    reply_buf *b = arg;
    size_t len = size * n;
    char line[128];
    if (len >= sizeof line)
        return len;
    memcpy(line, data, len);
    line[len] = '\0';
    if (strncasecmp(line, "X-YN-Held:", 10) == 0)
        b->held = strtoll(line + 10, NULL, 10);
    else if (strncasecmp(line, "X-YN-More:", 10) == 0)
        b->more = atoi(line + 10) == 1;
    return len;
}

/* The header that authenticates a JSON request (PROTOCOL.md §1.1, §10):
 * X-YN-MAC (HMAC under the shared key) or X-YN-SIG (ECDSA by the key pair),
 * as the terminal's key is; the keystore computes it. */
static int request_auth(yn_keystore *keys, const void *body, size_t len, char line[160])
{
    uint8_t tag[YN_KEYSTORE_SIG_LEN];
    char hex[2 * YN_KEYSTORE_SIG_LEN + 1];
    bool pair = yn_keystore_terminal_type(keys) == YN_KEY_ECDSA_P256;
    int rc = pair ? yn_keystore_sign(keys, body, len, tag) : yn_keystore_mac(keys, body, len, tag);
    if (rc != YN_OK)
        return rc;
    yn_hex_encode(tag, pair ? YN_KEYSTORE_SIG_LEN : YN_KEYSTORE_MAC_LEN, hex);
    snprintf(line, 160, "%s: %s", pair ? "X-YN-SIG" : "X-YN-MAC", hex);
    return YN_OK;
}

/* Common TLS settings: verification on, https only, bounded time. */
static int curl_setup(CURL *c, const char *ca_file, const char *cert, const char *key,
                      long timeout_ms)
{
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    if (cert && *cert) {
        curl_easy_setopt(c, CURLOPT_SSLCERT, cert);
        curl_easy_setopt(c, CURLOPT_SSLKEY, key);
    }
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    return YN_OK;
}

/* POST body to url+path with an authentication header line (or NULL);
 * YN_OK only for HTTP 200 with a complete body. */
static int post(CURL *c, const char *base, const char *path, const char *ca, const char *cert,
                const char *ckey, long timeout_ms, const char *content_type, const char *auth,
                const void *body, size_t len, reply_buf *out)
{
    char url[1024], ct[96];
    snprintf(url, sizeof url, "%s%s", base, path);
    curl_setup(c, ca, cert, ckey, timeout_ms);
    struct curl_slist *h = NULL;
    snprintf(ct, sizeof ct, "Content-Type: %s", content_type);
    h = curl_slist_append(h, ct);
    h = curl_slist_append(h, "Expect:");
    if (auth)
        h = curl_slist_append(h, auth);
    memset(out, 0, sizeof *out);
    out->held = -1;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    CURLcode cr = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    out->status = status;
    curl_slist_free_all(h);
    if (cr != CURLE_OK) {
        yn_warn("sync: %s: %s", url, curl_easy_strerror(cr));
        return cr == CURLE_OPERATION_TIMEDOUT ? YN_ETIMEDOUT : out->too_big ? YN_ELIMIT : YN_EIO;
    }
    if (status != 200) {
        yn_warn("sync: %s: HTTP %ld: %.200s", url, status, out->p ? out->p : "");
        return status >= 500 ? YN_EIO : status == 401 || status == 403 ? YN_EAUTH : YN_EPROTO;
    }
    return YN_OK;
}

int yn_sync_new(const yn_sync_opts *o, yn_sync **out)
{
    *out = NULL;
    if (!o->url || strncmp(o->url, "https://", 8) != 0 || !o->ca_file || !*o->ca_file ||
        !o->terminal_id || !o->keys) {
        yn_err("sync: needs an https:// url, a CA file, a terminal id and a keystore");
        return YN_ECONFIG;
    }
    yn_sync *s = calloc(1, sizeof *s);
    if (!s)
        return YN_ENOMEM;
    s->o = *o;
    if (!s->o.max_batch_records)
        s->o.max_batch_records = 5000;
    if (s->o.max_batch_records > YN_BATCH_MAX_RECORDS)
        s->o.max_batch_records = YN_BATCH_MAX_RECORDS;
    if (!s->o.timeout_ms)
        s->o.timeout_ms = 30000;
    if (!s->o.max_requests_per_round)
        s->o.max_requests_per_round = 1000;
    s->curl = curl_easy_init();
    if (!s->curl) {
        free(s);
        return YN_ENOMEM;
    }
    *out = s;
    return YN_OK;
}

void yn_sync_free(yn_sync *s)
{
    if (!s)
        return;
    curl_easy_cleanup(s->curl);
    free(s);
}

int yn_sync_ack_verify(const char *ack, size_t len, yn_keystore *keys,
                       const uint8_t district_pub[YN_UPDATE_PUBKEY_LEN], const yn_batch_header *h)
{
    json_t *j = json_loadb(ack ? ack : "", ack ? len : 0, JSON_REJECT_DUPLICATES, NULL);
    bool pair = yn_keystore_terminal_type(keys) == YN_KEY_ECDSA_P256;
    const char *terminal, *head_hex, *tag_hex; /* "mac" (v 1) or "sig" (v 2) */
    json_int_t v, batch_id, first, last;
    int rc = YN_EPROTO;
    if (j &&
        json_unpack(j, "{s:I, s:s, s:I, s:I, s:I, s:s, s:s !}", "v", &v, "terminal", &terminal,
                    "batch_id", &batch_id, "first_seq", &first, "last_seq", &last, "head_hash",
                    &head_hex, pair ? "sig" : "mac", &tag_hex) == 0 &&
        v == (pair ? 2 : 1)) {
        char head[65], msg[256];
        uint8_t tag[YN_SIG_ED25519_LEN], want[YN_KEYSTORE_MAC_LEN];
        yn_hex_encode(h->head_hash, 32, head);
        size_t n =
            yn_batch_ack_text((int)v, terminal, batch_id, first, last, head_hex, msg, sizeof msg);
        int arc = YN_EAUTH;
        if (pair) /* signed by the district's key: terminals hold its public half */
            arc = district_pub && yn_hex_decode_exact(tag_hex, tag, YN_SIG_ED25519_LEN)
                      ? yn_sig_ed25519_verify(district_pub, msg, n, tag)
                      : YN_EAUTH;
        else if ((arc = yn_keystore_mac(keys, msg, n, want)) == YN_OK)
            arc = yn_hex_decode_exact(tag_hex, tag, YN_KEYSTORE_MAC_LEN) &&
                          CRYPTO_memcmp(want, tag, YN_KEYSTORE_MAC_LEN) == 0
                      ? YN_OK
                      : YN_EAUTH;
        if (arc != YN_OK)
            rc = arc; /* the MAC or signature does not verify, or the keystore could not say */
        else if (strcmp(terminal, h->terminal) == 0 && batch_id == h->batch_id &&
                 first == h->first_seq && last == h->last_seq && strcmp(head_hex, head) == 0)
            rc = YN_OK;
    }
    json_decref(j);
    return rc;
}

int yn_sync_batch_frame(yn_ledger *l, const yn_ledger_batch *b, yn_keystore *keys, uint8_t **frame,
                        size_t *len)
{
    *frame = NULL;
    *len = 0;
    if (b->first_seq < 1 || b->last_seq < b->first_seq ||
        b->last_seq - b->first_seq >= YN_BATCH_MAX_RECORDS)
        return YN_EINVAL;
    size_t n = (size_t)(b->last_seq - b->first_seq + 1);
    yn_ledger_record *recs = calloc(n, sizeof *recs);
    if (!recs)
        return YN_ENOMEM;
    int rc = YN_OK;
    for (size_t i = 0; i < n && rc == YN_OK; i++)
        rc = yn_ledger_record_get(l, b->first_seq + (int64_t)i, &recs[i]);
    bool pair = yn_keystore_terminal_type(keys) == YN_KEY_ECDSA_P256;
    enum yn_batch_auth auth = pair ? YN_BATCH_AUTH_ECDSA_P256 : YN_BATCH_AUTH_HMAC;
    size_t trailer = yn_batch_trailer_len(auth);
    if (rc == YN_OK)
        rc = yn_batch_encode_unsigned(b->id, recs, n, auth, frame, len);
    if (rc == YN_OK && pair)
        rc = yn_keystore_sign(keys, *frame, *len - trailer, *frame + *len - trailer);
    else if (rc == YN_OK)
        rc = yn_keystore_mac(keys, *frame, *len - trailer, *frame + *len - trailer);
    if (rc != YN_OK) {
        free(*frame);
        *frame = NULL;
        *len = 0;
    }
    free(recs);
    if (rc != YN_OK)
        yn_err("sync: batch %lld (records %lld..%lld) not built: %s", (long long)b->id,
               (long long)b->first_seq, (long long)b->last_seq, yn_strerror(rc));
    return rc;
}

/* The district refused batch b with 409: it holds other records under these
 * seqs (or lacks those before them). Nothing more is sent; the caller is told
 * (on_conflict) and yinian-diag finds it in meta sync_conflict. */
static int conflict(yn_sync *s, yn_ledger *l, const yn_ledger_batch *b, const char *reply,
                    int64_t now_utc_s)
{
    s->conflict = true;
    s->conflict_first = b->first_seq;
    s->conflict_last = b->last_seq;
    yn_err("sync: batch %lld (records %lld..%lld) refused by the district as conflicting with "
           "what it holds (409: %.200s): this ledger and the district's copy disagree; nothing "
           "more is sent and sales stop; run yinian-diag ledger verify",
           (long long)b->id, (long long)b->first_seq, (long long)b->last_seq, reply ? reply : "");
    char note[96];
    snprintf(note, sizeof note, "%lld %lld %lld", (long long)b->first_seq, (long long)b->last_seq,
             (long long)now_utc_s);
    if (yn_ledger_meta_put(l, "sync_conflict", note) != YN_OK)
        yn_warn("sync: the conflict could not be noted in the ledger");
    return YN_EREFUSED;
}

int yn_sync_upload_one(yn_sync *s, yn_ledger *l, int64_t now_utc_s, int64_t *records)
{
    *records = 0;
    if (s->conflict)
        return YN_EREFUSED;
    yn_ledger_batch b;
    int rc = yn_ledger_batch_next(l, s->o.max_batch_records, now_utc_s, &b);
    if (rc != YN_OK)
        return rc;
    uint8_t *frame = NULL;
    size_t len = 0;
    if ((rc = yn_sync_batch_frame(l, &b, s->o.keys, &frame, &len)) != YN_OK)
        return rc;
    /* the high-water mark first: whatever the district may hold is at or below it */
    if ((rc = yn_ledger_mark_raise(l, b.last_seq)) != YN_OK) {
        free(frame);
        return rc;
    }
    yn_batch_header h;
    if ((rc = yn_batch_peek(frame, len, &h)) == YN_OK) {
        reply_buf r;
        rc = post(s->curl, s->o.url, "/v1/batches", s->o.ca_file, s->o.client_cert, s->o.client_key,
                  s->o.timeout_ms, "application/octet-stream", NULL, frame, len, &r);
        if (rc != YN_OK && r.status == 409)
            rc = conflict(s, l, &b, r.p, now_utc_s);
        if (rc == YN_OK && strcmp(h.terminal, s->o.terminal_id) != 0)
            rc = YN_EPROTO; /* our ledger is another terminal's: never take an ack for it */
        if (rc == YN_OK &&
            (rc = yn_sync_ack_verify(r.p, r.len, s->o.keys, s->o.district_pub, &h)) != YN_OK)
            yn_warn("sync: batch %lld: acknowledgement refused (%s): %.200s", (long long)h.batch_id,
                    yn_strerror(rc), r.p ? r.p : "");
        free(r.p);
    }
    free(frame);
    if (rc == YN_OK && (rc = yn_ledger_batch_ack(l, b.id, now_utc_s)) == YN_OK)
        *records = (int64_t)(b.last_seq - b.first_seq + 1);
    return rc;
}

/* ---- restore: records the ledger lost, back from the district ---------------------- */

int yn_sync_frame_own(yn_keystore *keys, const uint8_t *f, size_t len, yn_batch_header *h,
                      yn_ledger_record **recs, const char **why)
{
    *recs = NULL;
    *why = "malformed frame";
    if (yn_keystore_terminal_type(keys) == YN_KEY_ECDSA_P256) {
        /* our signature, checked with our public key (read from the keystore) */
        uint8_t pub[YN_KEYSTORE_PUB_LEN];
        int rc = yn_keystore_public_key(keys, pub);
        if (rc != YN_OK) {
            *why = "this terminal's public key is not readable";
            return rc;
        }
        yn_batch_cred cred = {YN_BATCH_AUTH_ECDSA_P256, pub, sizeof pub};
        yn_batch_error err;
        rc = yn_batch_verify_cred(f, len, &cred, h, recs, &err);
        *why = err.why;
        return rc;
    }
    /* our MAC, computed by the keystore (the key may be in a token) */
    uint8_t mac[YN_BATCH_MAC_LEN];
    int rc = yn_batch_peek(f, len, h);
    if (rc == YN_OK && h->auth != YN_BATCH_AUTH_HMAC) {
        *why = "frame signed with a key pair, but this terminal has a shared key";
        return YN_EAUTH;
    }
    if (rc == YN_OK)
        rc = yn_keystore_mac(keys, f, len - YN_BATCH_MAC_LEN, mac);
    if (rc == YN_OK && CRYPTO_memcmp(mac, f + len - YN_BATCH_MAC_LEN, YN_BATCH_MAC_LEN) != 0) {
        *why = "its MAC does not verify under this terminal's key";
        rc = YN_EAUTH;
    }
    return rc == YN_OK ? yn_batch_decode_authenticated(f, len, h, recs, why) : rc;
}

/* The frames of one /v1/records reply, each verified as this terminal's own
 * (our MAC or signature, CRC, the chain within it), their records appended
 * after the head (those at or below it skipped). */
static int restore_frames(yn_sync *s, yn_ledger *l, const uint8_t *p, size_t len, int64_t *appended)
{
    int rc = YN_OK;
    while (len > 0 && rc == YN_OK) {
        size_t flen = 0;
        yn_batch_header h;
        yn_ledger_record *recs = NULL;
        const char *why = "malformed";
        int64_t n = 0;
        rc = yn_batch_frame_len(p, len, &flen);
        if (rc == YN_OK)
            rc = yn_sync_frame_own(s->o.keys, p, flen, &h, &recs, &why);
        if (rc == YN_OK && strcmp(h.terminal, s->o.terminal_id) != 0) {
            why = "another terminal's frame";
            rc = YN_EPROTO;
        }
        if (rc != YN_OK)
            yn_err("sync: restore: a frame from the district refused (%s: %s): nothing of it "
                   "restored",
                   yn_strerror(rc), why);
        if (rc == YN_OK)
            rc = yn_ledger_restore_append(l, recs, h.count, &n);
        free(recs);
        *appended += n;
        p += flen;
        len -= flen;
    }
    return rc;
}

/* Records lost (h: the journal ends below the high-water mark): ask the
 * district for every record it holds above the head, append them, then note
 * the restore and bring the mark down to what the district holds. */
static int restore(yn_sync *s, yn_ledger *l, const yn_ledger_health *h, int64_t now_utc_s,
                   yn_sync_stats *st)
{
    yn_warn("sync: ledger: %s: asking the district for them", h->what);
    int64_t held = -1;
    int rc = YN_OK;
    while (rc == YN_OK && held < 0 && st->requests < s->o.max_requests_per_round) {
        int64_t head = 0;
        uint8_t head_hash[YN_LEDGER_HASH_LEN];
        if ((rc = yn_ledger_head(l, &head, head_hash)) != YN_OK)
            break;
        char body[256], auth[160];
        int n =
            snprintf(body, sizeof body, "{\"terminal\":\"%s\",\"after_seq\":%lld,\"max_bytes\":%d}",
                     s->o.terminal_id, (long long)head, RECORDS_MAX_BYTES);
        if ((rc = request_auth(s->o.keys, body, (size_t)n, auth)) != YN_OK)
            break;
        reply_buf r;
        st->requests++;
        rc = post(s->curl, s->o.url, "/v1/records", s->o.ca_file, s->o.client_cert, s->o.client_key,
                  s->o.timeout_ms, "application/json", auth, body, (size_t)n, &r);
        if (rc != YN_OK && r.status == 409) { /* not_restorable: kept before frames were */
            yn_ledger_batch b = {.first_seq = head + 1, .last_seq = h->lost_last};
            rc = conflict(s, l, &b, r.p, now_utc_s);
        }
        if (rc == YN_OK && r.held < 0) {
            yn_err("sync: restore: the district's reply has no X-YN-Held");
            rc = YN_EPROTO;
        }
        int64_t appended = 0;
        if (rc == YN_OK && r.len > 0)
            rc = restore_frames(s, l, (const uint8_t *)r.p, r.len, &appended);
        st->records_restored += appended;
        if (rc == YN_OK && (r.len == 0 || !r.more))
            held = r.held;
        else if (rc == YN_OK && appended == 0) {
            yn_err("sync: restore: the district said it holds more but sent nothing above %lld",
                   (long long)head);
            rc = YN_EPROTO;
        }
        free(r.p);
    }
    if (rc == YN_ECORRUPT) { /* its records do not follow ours: they differ */
        int64_t head = 0;
        uint8_t head_hash[YN_LEDGER_HASH_LEN];
        if (yn_ledger_head(l, &head, head_hash) == YN_OK) {
            yn_ledger_batch b = {.first_seq = head + 1, .last_seq = h->lost_last};
            rc =
                conflict(s, l, &b, "the district's records do not follow this ledger's", now_utc_s);
        }
    }
    if (rc == YN_OK && held < 0)
        rc = YN_ELIMIT; /* the rest next round */
    if (rc == YN_OK)
        rc = yn_ledger_restore_finish(l, h->head_seq + 1, held, now_utc_s);
    if (rc == YN_OK)
        yn_info("sync: restore: %lld records back from the district, which holds up to %lld",
                (long long)st->records_restored, (long long)held);
    return rc;
}

static int64_t meta_int(yn_ledger *l, const char *key)
{
    char v[32];
    return yn_ledger_meta_get(l, key, v, sizeof v) == YN_OK ? strtoll(v, NULL, 10) : 0;
}

/* Apply u in one ledger transaction (yn_ledger_apply_update): roster,
 * blacklist, policy, allocations, and the meta facts sync keeps (the roster
 * and allocation counters the next request names, the document version, the
 * sync time, and the server's clock against ours when now_ms is known) —
 * all of it or nothing. */
static int apply_at(yn_ledger *l, const yn_update *u, int64_t now_utc_s, int64_t now_ms)
{
    char roster_v[24], alloc_seq[24], version[24], sync_s[24], server_ms[24], local_ms[24];
    yn_ledger_meta_kv kv[6];
    size_t n_kv = 0;
    bool roster = u->n_cards && u->roster_version > meta_int(l, "sync_roster_version");
    if (roster) {
        snprintf(roster_v, sizeof roster_v, "%lld", (long long)u->roster_version);
        kv[n_kv++] = (yn_ledger_meta_kv){"sync_roster_version", roster_v};
    }
    if (u->alloc_seq) {
        snprintf(alloc_seq, sizeof alloc_seq, "%lld", (long long)u->alloc_seq);
        kv[n_kv++] = (yn_ledger_meta_kv){"sync_alloc_seq", alloc_seq};
    }
    snprintf(version, sizeof version, "%lld", (long long)u->version);
    kv[n_kv++] = (yn_ledger_meta_kv){"sync_update_version", version};
    snprintf(sync_s, sizeof sync_s, "%lld", (long long)now_utc_s);
    kv[n_kv++] = (yn_ledger_meta_kv){"last_sync_utc_s", sync_s};
    if (u->server_utc_ms > 0 && now_ms > 0) { /* clock drift, for yinian-diag */
        snprintf(server_ms, sizeof server_ms, "%lld", (long long)u->server_utc_ms);
        snprintf(local_ms, sizeof local_ms, "%lld", (long long)now_ms);
        kv[n_kv++] = (yn_ledger_meta_kv){"sync_server_utc_ms", server_ms};
        kv[n_kv++] = (yn_ledger_meta_kv){"sync_local_utc_ms", local_ms};
    }
    yn_ledger_update lu = {.cards = roster ? u->cards : NULL,
                           .n_cards = roster ? u->n_cards : 0,
                           .roster_version = u->roster_version,
                           .blacklist = u->blacklist,
                           .n_blacklist = u->n_blacklist,
                           .allocs = u->allocs,
                           .n_allocs = u->n_allocs,
                           .alloc_when = {.utc_s = now_utc_s},
                           .policy_json = u->policy_json,
                           .policy_len = u->policy_len,
                           .policy_activate = true,
                           .meta = kv,
                           .n_meta = n_kv};
    char err[200];
    int rc = yn_ledger_apply_update(l, &lu, err, sizeof err);
    if (rc != YN_OK)
        yn_err("sync: update %lld not applied, nothing of it stored: %s (%s)",
               (long long)u->version, err, yn_strerror(rc));
    return rc;
}

int yn_sync_apply(yn_ledger *l, const yn_update *u, int64_t now_utc_s)
{
    return apply_at(l, u, now_utc_s, 0);
}

/* The time sync marks carry: the caller's clock (yn_sync_opts.now_utc_s),
 * else the system's wall clock. */
static int64_t now_s(const yn_sync *s)
{
    if (s->o.now_utc_s)
        return s->o.now_utc_s(s->o.arg);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec;
}

int yn_sync_update_one(yn_sync *s, yn_ledger *l, bool *more)
{
    *more = false;
    int64_t bl = 0, policy_version = 0;
    char *pj = NULL, pid[64];
    size_t pl;
    if (yn_ledger_blacklist_seq(l, &bl) != YN_OK)
        bl = 0;
    if (yn_ledger_policy_active(l, &pj, &pl, pid, sizeof pid, &policy_version) != YN_OK)
        policy_version = 0;
    free(pj);
    int64_t last_version = meta_int(l, "sync_update_version");
    char body[512], auth[160];
    int n = snprintf(body, sizeof body,
                     "{\"terminal\":\"%s\",\"roster\":%lld,\"blacklist\":%lld,\"allocations\":%lld,"
                     "\"policy\":%lld}",
                     s->o.terminal_id, (long long)meta_int(l, "sync_roster_version"), (long long)bl,
                     (long long)meta_int(l, "sync_alloc_seq"), (long long)policy_version);
    int rc = request_auth(s->o.keys, body, (size_t)n, auth);
    if (rc != YN_OK)
        return rc;
    reply_buf r;
    rc = post(s->curl, s->o.url, "/v1/updates", s->o.ca_file, s->o.client_cert, s->o.client_key,
              s->o.timeout_ms, "application/json", auth, body, (size_t)n, &r);
    if (rc != YN_OK) {
        free(r.p);
        return rc;
    }
    yn_update u;
    char err[256];
    rc = yn_update_parse(r.p ? r.p : "", r.len, s->o.district_pub, s->o.terminal_id, last_version,
                         &u, err, sizeof err);
    free(r.p);
    if (rc != YN_OK) {
        yn_err("sync: update refused, nothing applied: %s (%s)", err, yn_strerror(rc));
        return rc;
    }
    struct timespec ts; /* the system clock, for the drift yinian-diag shows */
    clock_gettime(CLOCK_REALTIME, &ts);
    rc = apply_at(l, &u, now_s(s), (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    if (rc == YN_OK) {
        *more = u.more;
        if (s->o.on_server_time)
            s->o.on_server_time(s->o.arg, u.server_utc_ms);
        yn_info("sync: update %lld applied: %zu roster, %zu blacklist, %zu allocations%s",
                (long long)u.version, u.n_cards, u.n_blacklist, u.n_allocs,
                u.policy_json ? ", a policy" : "");
    } else {
        yn_err("sync: update %lld not applied (%s); it is asked for again next round",
               (long long)u.version, yn_strerror(rc));
    }
    yn_update_free(&u);
    return rc;
}

int yn_sync_round(yn_sync *s, yn_ledger *l, int64_t now_utc_s, yn_sync_stats *st)
{
    memset(st, 0, sizeof *st);
    /* nothing leaves a ledger that is not fit; records it lost come back first */
    yn_ledger_health h;
    int rc = s->conflict ? YN_EREFUSED : yn_ledger_check(l, YN_LEDGER_CHECK_TAIL, &h);
    if (rc == YN_ESTALE)
        rc = restore(s, l, &h, now_utc_s, st);
    else if (rc != YN_OK && rc != YN_EREFUSED)
        yn_err("sync: ledger not fit to send from (%s: %s): nothing sent", yn_strerror(rc), h.what);
    while (rc == YN_OK && st->requests < s->o.max_requests_per_round) {
        int64_t n;
        st->requests++;
        rc = yn_sync_upload_one(s, l, now_utc_s, &n);
        if (rc == YN_ENOTFOUND) {
            rc = YN_OK;
            break;
        }
        if (rc != YN_OK)
            break;
        st->batches_acked++;
        st->records_acked += n;
    }
    bool more = rc == YN_OK;
    while (rc == YN_OK && more && st->requests < s->o.max_requests_per_round) {
        st->requests++;
        rc = yn_sync_update_one(s, l, &more);
        if (rc == YN_OK)
            st->updates_applied++;
        else if (rc == YN_EAUTH || rc == YN_ESTALE || rc == YN_EPROTO)
            st->updates_refused++;
    }
    st->last_error = rc;
    st->conflict = s->conflict;
    st->conflict_first = s->conflict_first;
    st->conflict_last = s->conflict_last;
    return rc;
}

int64_t yn_sync_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms)
{
    int64_t d = base_ms;
    for (int i = 0; i < attempt && d < cap_ms; i++)
        d *= 2;
    if (d > cap_ms)
        d = cap_ms;
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
        r = (uint32_t)rand();
    return d / 2 + (int64_t)(r % (uint64_t)(d / 2 + 1));
}

int yn_sync_enrol(const char *url, const char *ca_file, const char *token, yn_keystore *keys,
                  char *terminal_id, size_t id_size)
{
    if (!url || strncmp(url, "https://", 8) != 0)
        return YN_ECONFIG;
    bool pair = yn_keystore_terminal_type(keys) == YN_KEY_ECDSA_P256;
    uint8_t pub[YN_KEYSTORE_PUB_LEN];
    char pub_hex[2 * YN_KEYSTORE_PUB_LEN + 1], auth[160];
    /* the key pair in the keystore (yinian-flash provision made it), or one
     * made now inside it; the district gets its public half, and the request
     * is signed by it (proof of possession). A pair made for an enrolment
     * that fails stays: it is the one the next attempt sends. */
    int rc = pair ? yn_keystore_generate(keys, false, pub, NULL) : YN_OK;
    if (pair)
        yn_hex_encode(pub, sizeof pub, pub_hex);
    json_t *req = pair ? json_pack("{s:s, s:s}", "token", token, "pubkey", pub_hex)
                       : json_pack("{s:s}", "token", token);
    char *body = req ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (rc == YN_OK && !body)
        rc = YN_ENOMEM;
    if (rc == YN_OK && pair)
        rc = request_auth(keys, body, strlen(body), auth);
    CURL *c = rc == YN_OK ? curl_easy_init() : NULL;
    if (rc == YN_OK && !c)
        rc = YN_ENOMEM;
    reply_buf r = {0};
    if (rc == YN_OK)
        rc = post(c, url, "/v1/enrol", ca_file, NULL, NULL, 30000, "application/json",
                  pair ? auth : NULL, body, strlen(body), &r);
    free(body);
    curl_easy_cleanup(c);
    json_t *j = rc == YN_OK ? json_loadb(r.p, r.len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    const char *terminal = "", *canteen, *key_hex = "";
    if (rc == YN_OK &&
        (!j ||
         (pair ? json_unpack(j, "{s:s, s:s !}", "terminal", &terminal, "canteen", &canteen)
               : json_unpack(j, "{s:s, s:s, s:s}", "terminal", &terminal, "canteen", &canteen,
                             "key", &key_hex)) != 0 ||
         (!pair && strlen(key_hex) != 64) || strlen(terminal) >= id_size))
        rc = YN_EPROTO;
    uint8_t key[32];
    size_t key_len = 0;
    if (rc == YN_OK && !pair && yn_hex_decode(key_hex, key, sizeof key, &key_len) != YN_OK)
        rc = YN_EPROTO;
    if (rc == YN_OK && !pair)
        rc = yn_keystore_store(keys, YN_KEYID_TERMINAL, key, key_len, true);
    if (rc == YN_OK)
        snprintf(terminal_id, id_size, "%s", terminal);
    OPENSSL_cleanse(key, sizeof key);
    json_decref(j);
    if (r.p)
        OPENSSL_cleanse(r.p, r.len);
    free(r.p);
    return rc;
}

/* --- the background thread --------------------------------------------------- */

struct yn_sync_thread {
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    yn_sync *s;
    yn_ledger_opts lo;
    char path[4096], terminal[YN_LEDGER_ID_MAX];
    int interval_s;
};

static void *sync_main(void *arg)
{
    yn_sync_thread *t = arg;
    yn_ledger *l = NULL;
    int failures = 0;
    bool conflict_told = false;
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        pthread_mutex_unlock(&t->mu);
        int64_t wait_ms = (int64_t)t->interval_s * 1000;
        int rc = l ? YN_OK : yn_ledger_open(&t->lo, &l);
        if (rc == YN_OK) {
            yn_sync_stats st;
            rc = yn_sync_round(t->s, l, now_s(t->s), &st);
            if (st.records_acked)
                yn_info("sync: %lld records in %lld batches acknowledged",
                        (long long)st.records_acked, (long long)st.batches_acked);
            if (st.conflict && !conflict_told && t->s->o.on_conflict) {
                t->s->o.on_conflict(t->s->o.arg, st.conflict_first, st.conflict_last);
                conflict_told = true;
            }
        }
        if (rc != YN_OK) {
            wait_ms = yn_sync_backoff_ms(failures < 30 ? failures : 30, 2000,
                                         (int64_t)t->interval_s * 1000 * 10);
            failures++;
        } else {
            failures = 0;
        }
        pthread_mutex_lock(&t->mu);
        /* monotonic: a step of the wall clock neither stalls nor hurries sync */
        struct timespec until = yn_clock_mono_deadline(yn_time_mono_ms() + wait_ms);
        while (!t->stop && pthread_cond_timedwait(&t->cv, &t->mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&t->mu);
    yn_ledger_close(l);
    return NULL;
}

int yn_sync_thread_start(const yn_sync_opts *opts, const yn_ledger_opts *lo, int interval_s,
                         yn_sync_thread **out)
{
    *out = NULL;
    yn_sync_thread *t = calloc(1, sizeof *t);
    if (!t)
        return YN_ENOMEM;
    int rc = yn_sync_new(opts, &t->s);
    if (rc != YN_OK) {
        free(t);
        return rc;
    }
    t->lo = *lo;
    snprintf(t->path, sizeof t->path, "%s", lo->path);
    snprintf(t->terminal, sizeof t->terminal, "%s", lo->terminal_id);
    t->lo.path = t->path;
    t->lo.terminal_id = t->terminal;
    t->interval_s = interval_s > 0 ? interval_s : 60;
    if (yn_clock_cond_init(&t->cv) != YN_OK) {
        yn_sync_free(t->s);
        free(t);
        return YN_ENOMEM;
    }
    pthread_mutex_init(&t->mu, NULL);
    if (pthread_create(&t->tid, NULL, sync_main, t) != 0) {
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        yn_sync_free(t->s);
        free(t);
        return YN_ENOMEM;
    }
    *out = t;
    return YN_OK;
}

void yn_sync_thread_stop(yn_sync_thread *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->tid, NULL);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    yn_sync_free(t->s);
    free(t);
}
