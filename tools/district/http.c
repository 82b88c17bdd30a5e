/* http.c — the HTTPS front of the district server (http.h). */
#include "http.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "hex.h"
#include "ingest.h"
#include "restore.h"
#include "rules.h"
#include "sig.h"
#include "terminals.h"
#include "update.h"
#include "updates.h"

#define SMALL_REQUEST 65536 /* bytes of a JSON request body */
#define RETRY_AFTER_S "1"   /* the Retry-After of a 503 */
#define FD_SPARE      64    /* descriptors kept for the databases, logs and listen socket */

struct server {
    yn_http_opts *o;
    pthread_key_t db_key; /* each worker thread's database handle */
    atomic_int next_fault;
    atomic_size_t buffered; /* bytes of request bodies held now */
    yn_ingest_queue *queue; /* group commit (SQLite), NULL: a transaction per batch */
};

/* What one request has received so far. */
struct request {
    uint8_t *body;
    size_t len, cap; /* cap is counted in server.buffered */
    bool too_big;    /* over the endpoint's limit: 413 */
    bool no_room;    /* over the server's body budget: 503 */
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void close_db(void *db)
{
    yn_db_close(db);
}

/* This worker thread's database handle, opened on first use. */
static yn_db *thread_db(struct server *s)
{
    yn_db *db = pthread_getspecific(s->db_key);
    if (db)
        return db;
    char err[300];
    if (yn_db_open(s->o->db_where, &s->o->db, &db, err, sizeof err) != YN_OK) {
        fprintf(stderr, "yinian-district: database: %s\n", err);
        return NULL;
    }
    if (pthread_setspecific(s->db_key, db) != 0) {
        yn_db_close(db);
        return NULL;
    }
    return db;
}

/* --- replies ---------------------------------------------------------------- */

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, const char *type,
                             struct MHD_Response *r)
{
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (status == 503)
        MHD_add_response_header(r, "Retry-After", RETRY_AFTER_S);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             const void *body, size_t len)
{
    return queue(c, status, type,
                 MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY));
}

/* {"error": code, "message": text} (+ "seq" and "field" for bad_record). */
static enum MHD_Result reply_error_at(struct MHD_Connection *c, unsigned status, const char *code,
                                      const char *message, int64_t seq, const char *field)
{
    json_t *j = json_pack("{s:s, s:s}", "error", code, "message", message);
    if (j && field && *field) {
        json_object_set_new(j, "seq", json_integer(seq));
        json_object_set_new(j, "field", json_string(field));
    }
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    fprintf(stderr, "yinian-district: %u %s: %s\n", status, code, message);
    enum MHD_Result ret = text ? reply(c, status, "application/json", text, strlen(text)) : MHD_NO;
    free(text);
    return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *code,
                                   const char *message)
{
    return reply_error_at(c, status, code, message, 0, NULL);
}

static enum MHD_Result reply_storage(struct MHD_Connection *c, yn_db *db, int status)
{
    const char *code;
    unsigned http = yn_ingest_storage_status(status, &code);
    return reply_error(c, http, code, http == 503 ? "busy, try again" : yn_db_errmsg(db));
}

struct trunc_body {
    char *text;
    size_t len;
};

static ssize_t trunc_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct trunc_body *t = cls;
    size_t half = t->len / 2;
    if (pos >= half)
        return MHD_CONTENT_READER_END_WITH_ERROR; /* the connection drops mid-body */
    size_t n = half - (size_t)pos < max ? half - (size_t)pos : max;
    memcpy(buf, t->text + pos, n);
    return (ssize_t)n;
}

static void trunc_free(void *cls)
{
    struct trunc_body *t = cls;
    free(t->text);
    free(t);
}

/* A successful reply, through the next configured fault if any. The work
 * (storing a batch) is already committed: a lost reply must be harmless. */
static enum MHD_Result reply_ok(struct server *s, struct MHD_Connection *c, const char *text)
{
    int i = atomic_fetch_add(&s->next_fault, 1);
    enum yn_http_fault f = i < s->o->n_faults ? s->o->faults[i] : YN_FAULT_NONE;
    size_t len = strlen(text);
    switch (f) {
    case YN_FAULT_503:
        return reply_error(c, 503, "unavailable", "fault injected: service unavailable");
    case YN_FAULT_RESET:
        fprintf(stderr, "yinian-district: fault injected: connection reset\n");
        return MHD_NO;
    case YN_FAULT_SLOW:
        usleep((useconds_t)s->o->slow_ms * 1000);
        break;
    case YN_FAULT_TRUNCATE: {
        struct trunc_body *t = malloc(sizeof *t);
        if (!t || !(t->text = strdup(text))) {
            free(t);
            return MHD_NO;
        }
        t->len = len;
        return queue(c, 200, "application/json",
                     MHD_create_response_from_callback(len, 4096, trunc_reader, t, trunc_free));
    }
    case YN_FAULT_CORRUPT: {
        char *bad = strdup(text);
        if (!bad)
            return MHD_NO;
        for (size_t k = len / 3; k < len && k < len / 3 + 8; k++)
            bad[k] = (char)(bad[k] ^ 0x21);
        enum MHD_Result ret = reply(c, 200, "application/json", bad, len);
        free(bad);
        return ret;
    }
    case YN_FAULT_NONE:
        break;
    }
    return reply(c, 200, "application/json", text, len);
}

/* --- endpoints --------------------------------------------------------------- */

/* POST /v1/enrol {"token", "last_seq"?} -> {"terminal", "canteen", "key"};
 * with "pubkey" (a key pair, PROTOCOL.md §10) and X-YN-SIG over the body by
 * that key -> {"terminal", "canteen"}. */
static enum MHD_Result handle_enrol(struct server *s, struct MHD_Connection *c, yn_db *db,
                                    const char *body, size_t len)
{
    (void)s;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *token = NULL, *pub_hex = NULL;
    json_int_t last_seq = 0;
    uint8_t pub[YN_SIG_P256_PUB_LEN], sig[YN_SIG_P256_LEN];
    if (!j ||
        json_unpack(j, "{s:s, s?:I, s?:s !}", "token", &token, "last_seq", &last_seq, "pubkey",
                    &pub_hex) != 0 ||
        strlen(token) < 16 || strlen(token) > 64 || last_seq < 0 ||
        (pub_hex && (!yn_hex_decode_exact(pub_hex, pub, sizeof pub) ||
                     !yn_sig_p256_pub_ok(pub, sizeof pub)))) {
        json_decref(j);
        return reply_error(c, 400, "bad_request",
                           "expected {\"token\": 16..64 characters, \"last_seq\": N >= 0"
                           " (optional), \"pubkey\": 130 lowercase hex digits of a P-256 point"
                           " (optional)}");
    }
    /* a key pair proves it holds the private half: the body is signed by it */
    const char *sig_hex = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-YN-SIG");
    if (pub_hex && (!sig_hex || !yn_hex_decode_exact(sig_hex, sig, sizeof sig) ||
                    yn_sig_p256_verify(pub, body, len, sig) != YN_OK)) {
        json_decref(j);
        return reply_error(c, 401, "bad_mac",
                           "X-YN-SIG is missing or not the body's signature by pubkey");
    }
    char terminal[YN_LEDGER_ID_MAX], canteen[YN_LEDGER_REF_MAX], key_hex[65];
    int rc =
        yn_terminal_enrol(db, token, last_seq, pub_hex ? pub : NULL, terminal, canteen, key_hex);
    json_decref(j);
    if (rc == YN_EAUTH)
        return reply_error(c, 403, "bad_token", "unknown or already used enrolment token");
    if (rc != YN_OK)
        return reply_storage(c, db, rc);
    char fp[YN_SIG_FINGERPRINT_LEN + 1] = "";
    if (pub_hex)
        yn_sig_fingerprint(pub, fp);
    fprintf(stderr, "yinian-district: terminal %s enrolled at %s with %s%s\n", terminal, canteen,
            pub_hex ? "a key pair, public key " : "a shared key", fp);
    json_t *out = pub_hex ? json_pack("{s:s, s:s}", "terminal", terminal, "canteen", canteen)
                          : json_pack("{s:s, s:s, s:s}", "terminal", terminal, "canteen", canteen,
                                      "key", key_hex);
    char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;
    enum MHD_Result ret = text ? reply(c, 200, "application/json", text, strlen(text)) : MHD_NO;
    OPENSSL_cleanse(key_hex, sizeof key_hex);
    if (text)
        OPENSSL_cleanse(text, strlen(text));
    free(text);
    json_decref(out);
    return ret;
}

static enum MHD_Result handle_batch(struct server *s, struct MHD_Connection *c, yn_db *db,
                                    const uint8_t *body, size_t len)
{
    yn_ingest g;
    int64_t now_s = wall_ms() / 1000;
    int rc = yn_ingest_check(db, body, len, s->o->district_priv, &g);
    if (rc == 0) /* SQLite has one writer: concurrent batches share a commit */
        rc = s->queue ? yn_ingest_queued(s->queue, db, &g, now_s) : yn_ingest_commit(db, &g, now_s);
    enum MHD_Result ret = rc == 0 ? reply_ok(s, c, g.ack)
                                  : reply_error_at(c, g.status, g.code, g.message, g.seq, g.field);
    yn_ingest_done(&g);
    return ret;
}

/* A signed JSON request, parsed (j, released here) and checked: its terminal
 * (copied to term) enrolled and the header of its kind verifying — X-YN-MAC
 * for a shared key, X-YN-SIG for a key pair, never the other. 0, or the
 * reply queued. */
static int authentic(struct MHD_Connection *c, yn_db *db, json_t *j, const char *terminal,
                     const char *body, size_t len, char term[YN_LEDGER_ID_MAX],
                     enum MHD_Result *ret)
{
    bool fits = strlen(terminal) < YN_LEDGER_ID_MAX; /* terminal lives in j */
    snprintf(term, YN_LEDGER_ID_MAX, "%s", terminal);
    json_decref(j);
    const char *mac = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-YN-MAC");
    const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-YN-SIG");
    int rc = fits ? yn_terminal_request_check(db, term, body, len, mac, sig) : YN_ENOTFOUND;
    if (rc == YN_OK)
        return 0;
    *ret = rc == YN_ENOTFOUND ? reply_error(c, 403, "unknown_terminal", "terminal is not enrolled")
           : rc == YN_EAUTH   ? reply_error(c, 401, "bad_mac",
                                            "request MAC or signature missing, of the other kind "
                                              "than the terminal's key, or not verifying")
                              : reply_storage(c, db, rc);
    return -1;
}

/* POST /v1/updates {"terminal", "roster", "blacklist", "allocations", "policy"} + X-YN-MAC */
static enum MHD_Result handle_updates(struct server *s, struct MHD_Connection *c, yn_db *db,
                                      const char *body, size_t len)
{
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *terminal = NULL;
    json_int_t r = -1, b = -1, a = -1, p = -1;
    if (!j ||
        json_unpack(j, "{s:s, s:I, s:I, s:I, s:I !}", "terminal", &terminal, "roster", &r,
                    "blacklist", &b, "allocations", &a, "policy", &p) != 0 ||
        r < 0 || b < 0 || a < 0 || p < 0) {
        json_decref(j);
        return reply_error(c, 400, "bad_request",
                           "expected {\"terminal\", \"roster\", \"blacklist\", \"allocations\","
                           " \"policy\"} with numbers >= 0");
    }
    char term[YN_LEDGER_ID_MAX];
    enum MHD_Result ret;
    if (authentic(c, db, j, terminal, body, len, term, &ret) != 0)
        return ret;
    yn_updates_have have = {.roster = r, .blacklist = b, .allocations = a, .policy = p};
    char *payload = NULL, *signed_body = NULL;
    size_t signed_len;
    int64_t skipped;
    int rc = yn_updates_build(db, term, &have, wall_ms(), &payload, &skipped);
    if (rc == YN_ENOTFOUND)
        return reply_error(c, 403, "unknown_terminal", "terminal is not enrolled");
    if (rc != YN_OK)
        return reply_storage(c, db, rc);
    rc = yn_update_sign(payload, strlen(payload), s->o->district_priv, &signed_body, &signed_len);
    free(payload);
    if (rc != YN_OK)
        return reply_error(c, 503, "unavailable", "update not signed (out of memory)");
    ret = reply_ok(s, c, signed_body);
    free(signed_body);
    return ret;
}

/* POST /v1/records {"terminal", "after_seq", "max_bytes"?} + X-YN-MAC */
static enum MHD_Result handle_records(struct MHD_Connection *c, yn_db *db, const char *body,
                                      size_t len)
{
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *terminal = NULL;
    json_int_t after = -1, max_bytes = YN_RESTORE_MAX_BYTES;
    if (!j ||
        json_unpack(j, "{s:s, s:I, s?:I !}", "terminal", &terminal, "after_seq", &after,
                    "max_bytes", &max_bytes) != 0 ||
        after < 0 || max_bytes < 1) {
        json_decref(j);
        return reply_error(c, 400, "bad_request",
                           "expected {\"terminal\": id, \"after_seq\": N >= 0,"
                           " \"max_bytes\": M >= 1 (optional)}");
    }
    char term[YN_LEDGER_ID_MAX];
    enum MHD_Result ret;
    if (authentic(c, db, j, terminal, body, len, term, &ret) != 0)
        return ret;
    yn_restore out;
    int rc = yn_restore_frames(
        db, term, after,
        max_bytes > YN_RESTORE_MAX_BYTES ? YN_RESTORE_MAX_BYTES : (size_t)max_bytes, &out);
    if (rc == YN_ENOTFOUND)
        return reply_error(c, 409, "not_restorable",
                           "records above after_seq were stored before frames were kept");
    if (rc != YN_OK)
        return reply_storage(c, db, rc);
    struct MHD_Response *r =
        out.frames ? MHD_create_response_from_buffer(out.len, out.frames, MHD_RESPMEM_MUST_FREE)
                   : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(out.frames);
        return MHD_NO;
    }
    char held[24];
    snprintf(held, sizeof held, "%lld", (long long)out.held);
    MHD_add_response_header(r, "X-YN-Held", held);
    MHD_add_response_header(r, "X-YN-More", out.more ? "1" : "0");
    return queue(c, 200, "application/octet-stream", r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **con_cls)
{
    (void)version;
    struct server *s = cls;
    struct request *rq = *con_cls;
    if (!rq) {
        rq = calloc(1, sizeof *rq);
        *con_cls = rq;
        return rq ? MHD_YES : MHD_NO;
    }
    size_t limit = strcmp(url, "/v1/batches") == 0 ? YN_BATCH_MAX_FRAME : SMALL_REQUEST;
    if (*upload_len) {
        if (rq->len + *upload_len > limit) {
            rq->too_big = true;
        } else if (!rq->too_big && !rq->no_room) {
            if (rq->len + *upload_len > rq->cap) {
                size_t ncap = rq->cap ? rq->cap : 16384;
                while (ncap < rq->len + *upload_len)
                    ncap *= 2;
                size_t was = atomic_fetch_add(&s->buffered, ncap - rq->cap);
                uint8_t *nb =
                    was + ncap - rq->cap <= s->o->body_budget ? realloc(rq->body, ncap) : NULL;
                if (!nb) {
                    atomic_fetch_sub(&s->buffered, ncap - rq->cap);
                    rq->no_room = true;
                    *upload_len = 0;
                    return MHD_YES;
                }
                rq->body = nb;
                rq->cap = ncap;
            }
            memcpy(rq->body + rq->len, upload, *upload_len);
            rq->len += *upload_len;
        }
        *upload_len = 0;
        return MHD_YES;
    }
    if (strcmp(method, "POST") != 0)
        return reply_error(c, 405, "method", "only POST is served");
    if (rq->too_big)
        return reply_error(c, 413, "too_large", "request body over the limit");
    if (rq->no_room)
        return reply_error(c, 503, "unavailable", "too many uploads in progress, try again");
    bool known = !strcmp(url, "/v1/batches") || !strcmp(url, "/v1/updates") ||
                 !strcmp(url, "/v1/enrol") || !strcmp(url, "/v1/records");
    if (!known)
        return reply_error(c, 404, "not_found", "no such endpoint");
    yn_db *db = thread_db(s);
    if (!db)
        return reply_error(c, 503, "unavailable", "database not reachable, try again");
    const char *text = rq->body ? (const char *)rq->body : "";
    if (!strcmp(url, "/v1/batches"))
        return handle_batch(s, c, db, rq->body, rq->len);
    if (!strcmp(url, "/v1/updates"))
        return handle_updates(s, c, db, text, rq->len);
    if (!strcmp(url, "/v1/records"))
        return handle_records(c, db, text, rq->len);
    return handle_enrol(s, c, db, text, rq->len);
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)c;
    (void)toe;
    struct server *s = cls;
    struct request *rq = *con_cls;
    if (rq) {
        atomic_fetch_sub(&s->buffered, rq->cap);
        free(rq->body);
        free(rq);
    }
    *con_cls = NULL;
}

/* As many descriptors as the hard limit allows; the connection limit fits in them. */
static unsigned fit_connections(unsigned wanted)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return wanted;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)wanted + FD_SPARE) {
        unsigned fit = rl.rlim_cur > FD_SPARE ? (unsigned)(rl.rlim_cur - FD_SPARE) : 1;
        fprintf(stderr,
                "yinian-district: RLIMIT_NOFILE is %llu: serving %u connections, not %u (raise"
                " the limit: LimitNOFILE= in the systemd unit)\n",
                (unsigned long long)rl.rlim_cur, fit, wanted);
        return fit;
    }
    return wanted;
}

int yn_http_serve(yn_http_opts *o, volatile sig_atomic_t *stop)
{
    static struct server s;
    s.o = o;
    if (pthread_key_create(&s.db_key, close_db) != 0)
        return 1;
    s.queue = !yn_db_is_postgresql(o->db_where) || getenv("YN_DISTRICT_GROUP_COMMIT")
                  ? yn_ingest_queue_new()
                  : NULL;
    unsigned conns = fit_connections(o->max_connections);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request,
        &s, MHD_OPTION_HTTPS_MEM_CERT, o->cert_pem, MHD_OPTION_HTTPS_MEM_KEY, o->key_pem,
        MHD_OPTION_SOCK_ADDR, &o->listen, MHD_OPTION_NOTIFY_COMPLETED, on_done, &s,
        MHD_OPTION_THREAD_POOL_SIZE, o->threads, MHD_OPTION_CONNECTION_LIMIT, conns,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, o->per_ip, MHD_OPTION_CONNECTION_TIMEOUT, o->timeout_s,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "yinian-district: cannot listen on port %u\n", ntohs(o->listen.sin_port));
        return 1;
    }
    fprintf(stderr,
            "yinian-district: serving on https://%s:%u (%u threads, %u connections, %u per"
            " address, %u s idle timeout)\n",
            inet_ntoa(o->listen.sin_addr), ntohs(o->listen.sin_port), o->threads, conns, o->per_ip,
            o->timeout_s);
    while (!*stop)
        pause();
    MHD_stop_daemon(d);
    pthread_key_delete(s.db_key);
    yn_ingest_queue_free(s.queue);
    return 0;
}
