/* yinian-district — the reference district server (sync/PROTOCOL.md) and its
 * admin command line. A small real server a district can run for a pilot and
 * that the tests use: HTTPS (libmicrohttpd + TLS), SQLite storage, terminal
 * enrolment with one-time tokens, batch ingest that stores each (terminal,
 * sequence) exactly once, signed update documents, CSV reports.
 *
 * Hostile input gets a 4xx and changes nothing: every check runs before the
 * one transaction that stores a batch. --fault lets tests make the server
 * misbehave on cue (5xx, reset, slow, truncated or corrupted replies), as
 * libmodbus's unit-test server does.
 *
 * Exit codes: 0 done; 1 runtime failure; 2 bad command line or input. */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "card.h"
#include "fileio.h"
#include "keystore.h"
#include "policy.h"
#include "update.h"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };
#define UPDATE_LIMIT  5000 /* items of each kind per update document */
#define REQUEST_MAX   (YN_BATCH_MAX_FRAME)
#define SMALL_REQUEST 65536
#define RESTORE_MAX   (8 << 20) /* bytes of frames in one /v1/records reply */

static const char schema[] =
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = FULL;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS terminals(id TEXT PRIMARY KEY, canteen TEXT NOT NULL,"
    " key BLOB NOT NULL, last_seq INTEGER NOT NULL DEFAULT 0, last_hash BLOB NOT NULL"
    " DEFAULT (zeroblob(32)), update_version INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS tokens(token_hash BLOB PRIMARY KEY, terminal TEXT NOT NULL,"
    " canteen TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE IF NOT EXISTS records(terminal TEXT NOT NULL, seq INTEGER NOT NULL,"
    " kind INTEGER NOT NULL, card_no TEXT NOT NULL, category TEXT NOT NULL, period TEXT NOT NULL,"
    " local_ymd INTEGER NOT NULL, price_fen INTEGER NOT NULL, subsidy_fen INTEGER NOT NULL,"
    " wallet_fen INTEGER NOT NULL, cash_fen INTEGER NOT NULL, utc_s INTEGER NOT NULL,"
    " clock_trusted INTEGER NOT NULL, reverses_seq INTEGER NOT NULL, ref TEXT NOT NULL,"
    " hash BLOB NOT NULL, PRIMARY KEY(terminal, seq)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS layers(terminal TEXT NOT NULL, seq INTEGER NOT NULL,"
    " source TEXT NOT NULL, fen INTEGER NOT NULL, PRIMARY KEY(terminal, seq, source))"
    " WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS batches(terminal TEXT NOT NULL, batch_id INTEGER NOT NULL,"
    " first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, received_utc_s INTEGER NOT NULL,"
    " PRIMARY KEY(terminal, batch_id, first_seq));"
    "CREATE TABLE IF NOT EXISTS frames(terminal TEXT NOT NULL, last_seq INTEGER NOT NULL,"
    " first_seq INTEGER NOT NULL, frame BLOB NOT NULL, PRIMARY KEY(terminal, last_seq));"
    "CREATE TABLE IF NOT EXISTS cards(card_no TEXT PRIMARY KEY, birth_ymd INTEGER NOT NULL,"
    " flags INTEGER NOT NULL, district INTEGER NOT NULL, street INTEGER NOT NULL,"
    " expiry_ymd INTEGER NOT NULL, version INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS cards_version ON cards(version);"
    "CREATE TABLE IF NOT EXISTS blacklist(seq INTEGER PRIMARY KEY, card_no TEXT NOT NULL,"
    " lost INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS policies(version INTEGER PRIMARY KEY, json TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS allocations(seq INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,"
    " card_no TEXT NOT NULL, source TEXT NOT NULL, amount_fen INTEGER NOT NULL);";

/* --- small helpers ------------------------------------------------------------ */

static sqlite3 *db_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", path, db ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    char *err = NULL;
    if (sqlite3_exec(db, schema, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "%s: schema: %s\n", path, err);
        sqlite3_free(err);
        sqlite3_close(db);
        return NULL;
    }
    return db;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void to_hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    out[2 * n] = '\0';
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "sql: %s: %s\n", sqlite3_errmsg(db), sql);
        return NULL;
    }
    return st;
}

/* Bump a counter in meta and return its new value (inside the caller's transaction). */
static int64_t next_counter(sqlite3 *db, const char *key)
{
    sqlite3_stmt *st = prep(db, "INSERT INTO meta(key, value) VALUES (?1, 1) ON CONFLICT(key)"
                                " DO UPDATE SET value = value + 1 RETURNING value");
    int64_t v = -1;
    if (!st)
        return -1;
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* --- the HTTP server ---------------------------------------------------------- */

enum fault { F_NONE, F_500, F_RESET, F_SLOW, F_TRUNCATE, F_CORRUPT };

struct server {
    sqlite3 *db;
    uint8_t district_priv[32];
    enum fault faults[64]; /* applied to successive replies, then none */
    int n_faults, next_fault;
    int slow_ms;
};

struct request {
    uint8_t *body;
    size_t len, cap;
    bool too_big;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             const void *body, size_t len)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Error replies: {"error": code, "message": text} with a 4xx/5xx status. */
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *code,
                                   const char *message)
{
    json_t *j = json_pack("{s:s, s:s}", "error", code, "message", message);
    char *text = json_dumps(j, JSON_COMPACT);
    enum MHD_Result ret = reply(c, status, "application/json", text, strlen(text));
    fprintf(stderr, "yinian-district: %u %s: %s\n", status, code, message);
    free(text);
    json_decref(j);
    return ret;
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
    enum fault f = s->next_fault < s->n_faults ? s->faults[s->next_fault++] : F_NONE;
    size_t len = strlen(text);
    switch (f) {
    case F_500:
        return reply_error(c, 503, "unavailable", "fault injected: service unavailable");
    case F_RESET:
        fprintf(stderr, "yinian-district: fault injected: connection reset\n");
        return MHD_NO;
    case F_SLOW:
        usleep((useconds_t)s->slow_ms * 1000);
        break;
    case F_TRUNCATE: {
        struct trunc_body *t = malloc(sizeof *t);
        t->text = strdup(text);
        t->len = len;
        struct MHD_Response *r =
            MHD_create_response_from_callback(len, 4096, trunc_reader, t, trunc_free);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    case F_CORRUPT: {
        char *bad = strdup(text);
        for (size_t i = len / 3; i < len && i < len / 3 + 8; i++)
            bad[i] = (char)(bad[i] ^ 0x21);
        enum MHD_Result ret = reply(c, 200, "application/json", bad, len);
        free(bad);
        return ret;
    }
    case F_NONE:
        break;
    }
    return reply(c, 200, "application/json", text, len);
}

/* Terminal's key; false when unknown. */
static bool terminal_key(sqlite3 *db, const char *terminal, uint8_t key[64], size_t *key_len)
{
    sqlite3_stmt *st = prep(db, "SELECT key FROM terminals WHERE id = ?1");
    bool found = false;
    sqlite3_bind_text(st, 1, terminal, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) <= 64) {
        *key_len = (size_t)sqlite3_column_bytes(st, 0);
        memcpy(key, sqlite3_column_blob(st, 0), *key_len);
        found = true;
    }
    sqlite3_finalize(st);
    return found;
}

/* The acknowledgement (PROTOCOL.md §4): the range now held, with a MAC. */
static char *make_ack(const uint8_t *key, size_t key_len, const char *terminal, int64_t batch_id,
                      int64_t first, int64_t last, const uint8_t head[32])
{
    char head_hex[65], mac_hex[65], msg[256];
    uint8_t mac[32];
    to_hex(head, 32, head_hex);
    int n = snprintf(msg, sizeof msg, "YNACK1 %s %lld %lld %lld %s", terminal, (long long)batch_id,
                     (long long)first, (long long)last, head_hex);
    yn_batch_hmac(key, key_len, msg, (size_t)n, mac);
    to_hex(mac, 32, mac_hex);
    json_t *j = json_pack("{s:i, s:s, s:I, s:I, s:I, s:s, s:s}", "v", 1, "terminal", terminal,
                          "batch_id", (json_int_t)batch_id, "first_seq", (json_int_t)first,
                          "last_seq", (json_int_t)last, "head_hash", head_hex, "mac", mac_hex);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

static bool stored_hash(sqlite3 *db, const char *terminal, int64_t seq, uint8_t out[32])
{
    sqlite3_stmt *st = prep(db, "SELECT hash FROM records WHERE terminal = ?1 AND seq = ?2");
    bool ok = false;
    sqlite3_bind_text(st, 1, terminal, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, seq);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_bytes(st, 0) == 32) {
        memcpy(out, sqlite3_column_blob(st, 0), 32);
        ok = true;
    }
    sqlite3_finalize(st);
    return ok;
}

/* What ingesting one batch frame came to: the HTTP status and error code
 * the endpoint answers with, or 200 and the acknowledgement. */
struct ingest {
    unsigned status;     /* 200, or the 4xx/5xx of the refusal */
    const char *code;    /* error code ("" for 200) */
    char message[200];   /* why refused, or what was stored */
    char *ack;           /* 200: the acknowledgement document (malloc'd) */
    yn_batch_header hdr; /* valid from the header check on */
    int64_t stored;      /* records new to the district (0: all held already) */
};

static int ingest_refuse(struct ingest *g, unsigned status, const char *code, const char *why)
{
    g->status = status;
    g->code = code;
    snprintf(g->message, sizeof g->message, "%s", why);
    return -1;
}

/* One batch frame, exactly once (PROTOCOL.md §3.4): every check runs before
 * the one transaction that stores what is new. Shared by POST /v1/batches
 * and `import` of a USB stick, so both treat a frame the same way.
 * 0 stored (or held already), -1 refused. */
static int ingest_batch(sqlite3 *db, const uint8_t *body, size_t len, struct ingest *g)
{
    memset(g, 0, sizeof *g);
    g->code = "";
    yn_batch_header h;
    int rc = yn_batch_peek(body, len, &h);
    if (rc == YN_ELIMIT)
        return ingest_refuse(g, 413, "too_large", "batch sizes over the limits");
    if (rc != YN_OK)
        return ingest_refuse(g, 400, "bad_frame", "malformed or truncated batch frame");
    g->hdr = h;
    uint8_t key[64];
    size_t key_len;
    if (!terminal_key(db, h.terminal, key, &key_len))
        return ingest_refuse(g, 403, "unknown_terminal", "terminal is not enrolled");
    yn_ledger_record *recs = NULL;
    const char *why = "";
    rc = yn_batch_decode(body, len, key, key_len, &h, &recs, &why);
    if (rc != YN_OK) {
        unsigned status = rc == YN_EAUTH ? 401 : rc == YN_ELIMIT ? 413 : 400;
        const char *code = rc == YN_EAUTH      ? "bad_mac"
                           : rc == YN_ELIMIT   ? "too_large"
                           : rc == YN_ECORRUPT ? "bad_crc_or_chain"
                                               : "bad_body";
        return ingest_refuse(g, status, code, why);
    }
    /* one transaction: check against what is held, then store what is new */
    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    sqlite3_stmt *st = prep(db, "SELECT last_seq, last_hash FROM terminals WHERE id = ?1");
    sqlite3_bind_text(st, 1, h.terminal, -1, SQLITE_STATIC);
    int64_t last_seq = 0;
    uint8_t last_hash[32] = {0};
    if (sqlite3_step(st) == SQLITE_ROW) {
        last_seq = sqlite3_column_int64(st, 0);
        if (sqlite3_column_bytes(st, 1) == 32)
            memcpy(last_hash, sqlite3_column_blob(st, 1), 32);
    }
    sqlite3_finalize(st);
    const char *conflict = NULL;
    uint8_t prev[32] = {0};
    if (h.first_seq > last_seq + 1)
        conflict = "gap: records before first_seq have not arrived";
    else if (h.first_seq > 1 &&
             !(h.first_seq == last_seq + 1 ? (memcpy(prev, last_hash, 32), true)
                                           : stored_hash(db, h.terminal, h.first_seq - 1, prev)))
        conflict = "previous record not held";
    else if (memcmp(prev, h.prev_hash, 32) != 0)
        conflict = "prev_hash differs from the record held";
    for (uint32_t i = 0; !conflict && i < h.count && recs[i].seq <= last_seq; i++) {
        uint8_t held[32];
        if (!stored_hash(db, h.terminal, recs[i].seq, held) || memcmp(held, recs[i].hash, 32) != 0)
            conflict = "replayed batch with different content";
    }
    if (conflict) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        free(recs);
        return ingest_refuse(g, 409, "conflict", conflict);
    }
    sqlite3_stmt *ins = prep(db, "INSERT INTO records VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
                                 " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)");
    sqlite3_stmt *lay = prep(db, "INSERT INTO layers VALUES (?1, ?2, ?3, ?4)");
    bool ok = ins && lay;
    for (uint32_t i = 0; ok && i < h.count; i++) {
        const yn_ledger_record *r = &recs[i];
        if (r->seq <= last_seq)
            continue; /* held already, same content: exactly once */
        g->stored++;
        sqlite3_reset(ins);
        sqlite3_bind_text(ins, 1, h.terminal, -1, SQLITE_STATIC);
        sqlite3_bind_int64(ins, 2, r->seq);
        sqlite3_bind_int(ins, 3, r->kind);
        sqlite3_bind_text(ins, 4, r->card_no, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 5, r->category, -1, SQLITE_STATIC);
        sqlite3_bind_text(ins, 6, r->period, -1, SQLITE_STATIC);
        sqlite3_bind_int(ins, 7, r->local_ymd);
        sqlite3_bind_int64(ins, 8, r->price_fen);
        sqlite3_bind_int64(ins, 9, r->subsidy_fen);
        sqlite3_bind_int64(ins, 10, r->wallet_fen);
        sqlite3_bind_int64(ins, 11, r->cash_fen);
        sqlite3_bind_int64(ins, 12, r->utc_s);
        sqlite3_bind_int(ins, 13, r->clock_trusted);
        sqlite3_bind_int64(ins, 14, r->reverses_seq);
        sqlite3_bind_text(ins, 15, r->ref, -1, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 16, r->hash, 32, SQLITE_STATIC);
        ok = sqlite3_step(ins) == SQLITE_DONE;
        for (int k = 0; ok && k < r->n_layers; k++) {
            sqlite3_reset(lay);
            sqlite3_bind_text(lay, 1, h.terminal, -1, SQLITE_STATIC);
            sqlite3_bind_int64(lay, 2, r->seq);
            sqlite3_bind_text(lay, 3, r->layers[k].source, -1, SQLITE_STATIC);
            sqlite3_bind_int64(lay, 4, r->layers[k].fen);
            ok = sqlite3_step(lay) == SQLITE_DONE;
        }
    }
    sqlite3_finalize(ins);
    sqlite3_finalize(lay);
    if (ok && g->stored) { /* the frame as uploaded, for POST /v1/records */
        st = prep(db, "INSERT INTO frames VALUES (?1, ?2, ?3, ?4)");
        sqlite3_bind_text(st, 1, h.terminal, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, h.last_seq);
        sqlite3_bind_int64(st, 3, h.first_seq);
        sqlite3_bind_blob(st, 4, body, (int)len, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    if (ok && h.last_seq > last_seq) {
        st = prep(db, "UPDATE terminals SET last_seq = ?2, last_hash = ?3 WHERE id = ?1");
        sqlite3_bind_text(st, 1, h.terminal, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, h.last_seq);
        sqlite3_bind_blob(st, 3, h.head_hash, 32, SQLITE_STATIC);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    if (ok) {
        st = prep(db, "INSERT OR IGNORE INTO batches VALUES (?1, ?2, ?3, ?4, ?5)");
        sqlite3_bind_text(st, 1, h.terminal, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, h.batch_id);
        sqlite3_bind_int64(st, 3, h.first_seq);
        sqlite3_bind_int64(st, 4, h.last_seq);
        sqlite3_bind_int64(st, 5, now_ms() / 1000);
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    free(recs);
    if (!ok || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        ingest_refuse(g, 500, "storage", sqlite3_errmsg(db));
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    g->status = 200;
    if (g->stored)
        snprintf(g->message, sizeof g->message, "%lld new records stored", (long long)g->stored);
    else
        snprintf(g->message, sizeof g->message, "already stored, nothing changed");
    g->ack = make_ack(key, key_len, h.terminal, h.batch_id, h.first_seq, h.last_seq, h.head_hash);
    return 0;
}

static enum MHD_Result handle_batch(struct server *s, struct MHD_Connection *c, const uint8_t *body,
                                    size_t len)
{
    struct ingest g;
    if (ingest_batch(s->db, body, len, &g) != 0)
        return reply_error(c, g.status, g.code, g.message);
    enum MHD_Result ret = reply_ok(s, c, g.ack);
    free(g.ack);
    return ret;
}

/* POST /v1/enrol {"token": hex, "terminal": id} -> {"terminal", "canteen", "key"} */
static enum MHD_Result handle_enrol(struct server *s, struct MHD_Connection *c, const char *body,
                                    size_t len)
{
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *token = NULL;
    if (!j || json_unpack(j, "{s:s}", "token", &token) != 0 || strlen(token) < 16) {
        json_decref(j);
        return reply_error(c, 400, "bad_request", "expected {\"token\": \"…\"}");
    }
    uint8_t th[32];
    SHA256((const uint8_t *)token, strlen(token), th);
    json_decref(j);
    sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    sqlite3_stmt *st = prep(s->db, "UPDATE tokens SET used = 1 WHERE token_hash = ?1 AND used = 0"
                                   " RETURNING terminal, canteen");
    sqlite3_bind_blob(st, 1, th, 32, SQLITE_STATIC);
    char terminal[YN_LEDGER_ID_MAX] = "", canteen[64] = "";
    if (sqlite3_step(st) == SQLITE_ROW) {
        snprintf(terminal, sizeof terminal, "%s", (const char *)sqlite3_column_text(st, 0));
        snprintf(canteen, sizeof canteen, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    if (!*terminal) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return reply_error(c, 403, "bad_token", "unknown or already used enrolment token");
    }
    uint8_t key[32];
    char key_hex[65];
    bool ok = RAND_bytes(key, sizeof key) == 1;
    st = prep(s->db, "INSERT INTO terminals(id, canteen, key) VALUES (?1, ?2, ?3) ON CONFLICT(id)"
                     " DO UPDATE SET key = excluded.key, canteen = excluded.canteen");
    sqlite3_bind_text(st, 1, terminal, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, canteen, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, key, 32, SQLITE_STATIC);
    ok = ok && sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    if (!ok || sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return reply_error(c, 500, "storage", "enrolment not stored");
    }
    to_hex(key, 32, key_hex);
    json_t *out =
        json_pack("{s:s, s:s, s:s}", "terminal", terminal, "canteen", canteen, "key", key_hex);
    char *text = json_dumps(out, JSON_COMPACT);
    enum MHD_Result ret = reply(c, 200, "application/json", text, strlen(text));
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(key_hex, sizeof key_hex);
    free(text);
    json_decref(out);
    return ret;
}

/* Build the payload of PROTOCOL.md §5.2 for what the terminal says it has. */
static char *build_update(struct server *s, const char *terminal, int64_t roster_have,
                          int64_t bl_have, int64_t alloc_have, int64_t policy_have)
{
    json_t *p = json_object();
    bool more = false;
    sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    sqlite3_stmt *st = prep(s->db, "UPDATE terminals SET update_version = update_version + 1"
                                   " WHERE id = ?1 RETURNING update_version");
    sqlite3_bind_text(st, 1, terminal, -1, SQLITE_STATIC);
    int64_t version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    json_object_set_new(p, "v", json_integer(1));
    json_object_set_new(p, "terminal", json_string(terminal));
    json_object_set_new(p, "version", json_integer(version));
    json_object_set_new(p, "server_utc_ms", json_integer(now_ms()));

    st = prep(s->db, "SELECT card_no, birth_ymd, flags, district, street, expiry_ymd, version"
                     " FROM cards WHERE version > ?1 ORDER BY version LIMIT ?2");
    sqlite3_bind_int64(st, 1, roster_have);
    sqlite3_bind_int(st, 2, UPDATE_LIMIT);
    json_t *cards = json_array();
    int64_t rv = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        json_array_append_new(cards,
                              json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "card_no",
                                        (const char *)sqlite3_column_text(st, 0), "birth_ymd",
                                        (json_int_t)sqlite3_column_int64(st, 1), "flags",
                                        (json_int_t)sqlite3_column_int64(st, 2), "district",
                                        (json_int_t)sqlite3_column_int64(st, 3), "street",
                                        (json_int_t)sqlite3_column_int64(st, 4), "expiry_ymd",
                                        (json_int_t)sqlite3_column_int64(st, 5)));
        rv = sqlite3_column_int64(st, 6);
    }
    sqlite3_finalize(st);
    more |= json_array_size(cards) == UPDATE_LIMIT;
    if (rv)
        json_object_set_new(p, "roster",
                            json_pack("{s:I, s:o}", "version", (json_int_t)rv, "cards", cards));
    else
        json_decref(cards);

    st = prep(s->db, "SELECT seq, card_no, lost FROM blacklist WHERE seq > ?1 ORDER BY seq"
                     " LIMIT ?2");
    sqlite3_bind_int64(st, 1, bl_have);
    sqlite3_bind_int(st, 2, UPDATE_LIMIT);
    json_t *bl = json_array();
    while (sqlite3_step(st) == SQLITE_ROW)
        json_array_append_new(bl, json_pack("{s:I, s:s, s:b}", "seq",
                                            (json_int_t)sqlite3_column_int64(st, 0), "card_no",
                                            (const char *)sqlite3_column_text(st, 1), "lost",
                                            sqlite3_column_int(st, 2)));
    sqlite3_finalize(st);
    more |= json_array_size(bl) == UPDATE_LIMIT;
    json_object_set_new(p, "blacklist", bl);

    st = prep(s->db, "SELECT seq, id, card_no, source, amount_fen FROM allocations WHERE seq > ?1"
                     " ORDER BY seq LIMIT ?2");
    sqlite3_bind_int64(st, 1, alloc_have);
    sqlite3_bind_int(st, 2, UPDATE_LIMIT);
    json_t *items = json_array();
    int64_t aseq = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        aseq = sqlite3_column_int64(st, 0);
        json_array_append_new(
            items, json_pack("{s:s, s:s, s:s, s:I}", "id", (const char *)sqlite3_column_text(st, 1),
                             "card_no", (const char *)sqlite3_column_text(st, 2), "source",
                             (const char *)sqlite3_column_text(st, 3), "amount_fen",
                             (json_int_t)sqlite3_column_int64(st, 4)));
    }
    sqlite3_finalize(st);
    more |= json_array_size(items) == UPDATE_LIMIT;
    if (aseq)
        json_object_set_new(p, "allocations",
                            json_pack("{s:I, s:o}", "seq", (json_int_t)aseq, "items", items));
    else
        json_decref(items);

    st = prep(s->db, "SELECT version, json FROM policies WHERE version > ?1 ORDER BY version DESC"
                     " LIMIT 1");
    sqlite3_bind_int64(st, 1, policy_have);
    if (sqlite3_step(st) == SQLITE_ROW)
        json_object_set_new(p, "policy", json_string((const char *)sqlite3_column_text(st, 1)));
    sqlite3_finalize(st);
    json_object_set_new(p, "more", json_boolean(more));
    sqlite3_exec(s->db, version ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    char *text = version ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    return text;
}

/* A JSON request signed by a terminal (POST /v1/updates, /v1/records): the
 * terminal must be enrolled and the header X-YN-MAC must be the lowercase hex
 * HMAC-SHA256 of the exact body under its key. 0 when authentic, else the
 * error reply was queued and *ret holds it. */
static int request_authentic(struct server *s, struct MHD_Connection *c, const char *terminal,
                             const char *body, size_t len, enum MHD_Result *ret)
{
    uint8_t key[64], mac[32];
    size_t key_len;
    char mac_hex[65];
    const char *given = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-YN-MAC");
    if (!terminal_key(s->db, terminal, key, &key_len)) {
        *ret = reply_error(c, 403, "unknown_terminal", "terminal is not enrolled");
        return -1;
    }
    yn_batch_hmac(key, key_len, body, len, mac);
    OPENSSL_cleanse(key, sizeof key);
    to_hex(mac, 32, mac_hex);
    if (!given || strlen(given) != 64 || CRYPTO_memcmp(given, mac_hex, 64) != 0) {
        *ret = reply_error(c, 401, "bad_mac", "request MAC does not verify");
        return -1;
    }
    return 0;
}

/* POST /v1/updates, body {"terminal", "roster", "blacklist", "allocations", "policy"}
 * (what it has), header X-YN-MAC = hex HMAC-SHA256(terminal key, body). */
static enum MHD_Result handle_updates(struct server *s, struct MHD_Connection *c, const char *body,
                                      size_t len)
{
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *terminal = NULL;
    json_int_t roster = 0, bl = 0, alloc = 0, policy = 0;
    if (!j ||
        json_unpack(j, "{s:s, s:I, s:I, s:I, s:I !}", "terminal", &terminal, "roster", &roster,
                    "blacklist", &bl, "allocations", &alloc, "policy", &policy) != 0) {
        json_decref(j);
        return reply_error(c, 400, "bad_request", "malformed update request");
    }
    enum MHD_Result ret;
    if (request_authentic(s, c, terminal, body, len, &ret) != 0) {
        json_decref(j);
        return ret;
    }
    char term[YN_LEDGER_ID_MAX];
    snprintf(term, sizeof term, "%s", terminal);
    json_decref(j);
    char *payload = build_update(s, term, roster, bl, alloc, policy);
    char *signed_body = NULL;
    size_t signed_len;
    if (!payload ||
        yn_update_sign(payload, strlen(payload), s->district_priv, &signed_body, &signed_len)) {
        free(payload);
        return reply_error(c, 500, "storage", "update not built");
    }
    ret = reply_ok(s, c, signed_body);
    free(payload);
    free(signed_body);
    return ret;
}

/* POST /v1/records, body {"terminal", "after_seq", "max_bytes"?}, header
 * X-YN-MAC as for /v1/updates: the frames the terminal uploaded, byte for
 * byte, that hold every record above after_seq (PROTOCOL.md §6). Each stored
 * frame added the records from the previous frame's last_seq + 1 to its own
 * last_seq, so the frames with last_seq > after_seq, in order, hold exactly
 * the records wanted (the first may also hold some at or below after_seq). */
static enum MHD_Result handle_records(struct server *s, struct MHD_Connection *c, const char *body,
                                      size_t len)
{
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const char *terminal = NULL;
    json_int_t after = -1, max_bytes = RESTORE_MAX;
    if (!j ||
        json_unpack(j, "{s:s, s:I, s?:I !}", "terminal", &terminal, "after_seq", &after,
                    "max_bytes", &max_bytes) != 0 ||
        after < 0 || max_bytes < 1) {
        json_decref(j);
        return reply_error(c, 400, "bad_request",
                           "expected {\"terminal\": id, \"after_seq\": N >= 0,"
                           " \"max_bytes\": M >= 1 (optional)}");
    }
    if (max_bytes > RESTORE_MAX)
        max_bytes = RESTORE_MAX;
    enum MHD_Result ret;
    if (request_authentic(s, c, terminal, body, len, &ret) != 0) {
        json_decref(j);
        return ret;
    }
    char term[YN_LEDGER_ID_MAX];
    snprintf(term, sizeof term, "%s", terminal);
    json_decref(j);

    /* one read transaction: the held seq and the frames agree */
    int64_t held = 0;
    bool more = false, ok = sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
    sqlite3_stmt *st = ok ? prep(s->db, "SELECT last_seq FROM terminals WHERE id = ?1") : NULL;
    ok = st != NULL;
    if (ok) {
        sqlite3_bind_text(st, 1, term, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        held = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
        ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    }
    sqlite3_finalize(st);
    uint8_t *out = NULL;
    size_t out_len = 0;
    bool gap = false;
    st = ok && held > after ? prep(s->db, "SELECT first_seq, frame FROM frames WHERE terminal = ?1"
                                          " AND last_seq > ?2 ORDER BY last_seq")
                            : NULL;
    ok = ok && (held <= after || st);
    if (st) {
        sqlite3_bind_text(st, 1, term, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, after);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            size_t n = (size_t)sqlite3_column_bytes(st, 1);
            if (out_len == 0 && sqlite3_column_int64(st, 0) > after + 1) {
                gap = true; /* stored before this server kept frames */
                break;
            }
            if (out_len && out_len + n > (size_t)max_bytes) {
                more = true;
                break;
            }
            uint8_t *grown = realloc(out, out_len + n);
            if (!grown) {
                rc = SQLITE_NOMEM;
                break;
            }
            out = grown;
            memcpy(out + out_len, sqlite3_column_blob(st, 1), n);
            out_len += n;
        }
        ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    if (!ok || (held > after && out_len == 0 && !gap)) {
        free(out);
        return reply_error(c, 500, "storage", "frames not read");
    }
    if (gap) {
        free(out);
        return reply_error(c, 409, "not_restorable",
                           "records above after_seq were stored before frames were kept");
    }
    struct MHD_Response *r =
        out ? MHD_create_response_from_buffer(out_len, out, MHD_RESPMEM_MUST_FREE)
            : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(out);
        return MHD_NO;
    }
    char held_text[24];
    snprintf(held_text, sizeof held_text, "%lld", (long long)held);
    MHD_add_response_header(r, "Content-Type", "application/octet-stream");
    MHD_add_response_header(r, "X-YN-Held", held_text);
    MHD_add_response_header(r, "X-YN-More", more ? "1" : "0");
    ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
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
    size_t cap = strcmp(url, "/v1/batches") == 0 ? REQUEST_MAX : SMALL_REQUEST;
    if (*upload_len) {
        if (rq->len + *upload_len > cap) {
            rq->too_big = true;
        } else if (!rq->too_big) {
            if (rq->len + *upload_len > rq->cap) {
                size_t ncap = rq->cap ? rq->cap : 65536;
                while (ncap < rq->len + *upload_len)
                    ncap *= 2;
                uint8_t *nb = realloc(rq->body, ncap);
                if (!nb)
                    return MHD_NO;
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
    if (strcmp(url, "/v1/batches") == 0)
        return handle_batch(s, c, rq->body, rq->len);
    if (strcmp(url, "/v1/updates") == 0)
        return handle_updates(s, c, (const char *)rq->body, rq->len);
    if (strcmp(url, "/v1/enrol") == 0)
        return handle_enrol(s, c, (const char *)rq->body, rq->len);
    if (strcmp(url, "/v1/records") == 0)
        return handle_records(s, c, (const char *)rq->body, rq->len);
    return reply_error(c, 404, "not_found", "no such endpoint");
}

static void on_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    struct request *rq = *con_cls;
    if (rq) {
        free(rq->body);
        free(rq);
    }
    *con_cls = NULL;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap + 1);
    size_t got;
    while (b && (got = fread(b + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(b, 2 * cap + 1);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (b)
        b[n] = '\0';
    if (len)
        *len = n;
    return b;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int parse_faults(struct server *s, const char *spec)
{
    /* e.g. "500,reset,slow,truncate,corrupt,none" */
    char *copy = strdup(spec), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && s->n_faults < 64;
         t = strtok_r(NULL, ",", &save)) {
        enum fault f = !strcmp(t, "500")        ? F_500
                       : !strcmp(t, "reset")    ? F_RESET
                       : !strcmp(t, "slow")     ? F_SLOW
                       : !strcmp(t, "truncate") ? F_TRUNCATE
                       : !strcmp(t, "corrupt")  ? F_CORRUPT
                       : !strcmp(t, "none")     ? F_NONE
                                                : (enum fault) - 1;
        if ((int)f < 0) {
            fprintf(stderr, "--faults: unknown fault '%s'\n", t);
            free(copy);
            return EXIT_USAGE;
        }
        s->faults[s->n_faults++] = f;
    }
    free(copy);
    return 0;
}

static int cmd_serve(sqlite3 *db, int argc, char **argv)
{
    const char *cert = NULL, *keyf = NULL, *dkey = NULL, *listen_addr = "127.0.0.1";
    int port = 8443;
    static struct server s;
    s.db = db;
    s.slow_ms = 3000;
    for (int i = 0; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--cert"))
            cert = argv[i + 1];
        else if (!strcmp(argv[i], "--key"))
            keyf = argv[i + 1];
        else if (!strcmp(argv[i], "--district-key"))
            dkey = argv[i + 1];
        else if (!strcmp(argv[i], "--port"))
            port = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--listen"))
            listen_addr = argv[i + 1];
        else if (!strcmp(argv[i], "--slow-ms"))
            s.slow_ms = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--faults")) {
            if (parse_faults(&s, argv[i + 1]))
                return EXIT_USAGE;
        } else {
            fprintf(stderr, "serve: unknown option %s\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    size_t klen;
    if (!cert || !keyf || !dkey || port <= 0 || port > 65535) {
        fprintf(stderr, "serve needs --cert, --key, --district-key and a valid --port\n");
        return EXIT_USAGE;
    }
    if (yn_key_file_load(dkey, true, "district signing key", s.district_priv,
                         sizeof s.district_priv, &klen) != YN_OK ||
        klen != 32) {
        fprintf(stderr, "%s: district key must be 32 bytes of hex, mode 0600\n", dkey);
        return EXIT_USAGE;
    }
    char *cert_pem = slurp(cert, NULL), *key_pem = slurp(keyf, NULL);
    if (!cert_pem || !key_pem)
        return EXIT_USAGE;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, listen_addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "--listen: not an IPv4 address: %s\n", listen_addr);
        return EXIT_USAGE;
    }
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
        NULL, on_request, &s, MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_HTTPS_MEM_KEY,
        key_pem, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_NOTIFY_COMPLETED, on_done, NULL,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "serve: cannot listen on %s:%d\n", listen_addr, port);
        return EXIT_RUNTIME;
    }
    struct sigaction act = {.sa_handler = on_signal};
    sigaction(SIGTERM, &act, NULL);
    sigaction(SIGINT, &act, NULL);
    fprintf(stderr, "yinian-district: serving on https://%s:%d\n", listen_addr, port);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    OPENSSL_cleanse(s.district_priv, sizeof s.district_priv);
    free(cert_pem);
    OPENSSL_cleanse(key_pem, strlen(key_pem));
    free(key_pem);
    return 0;
}

/* --- admin commands ----------------------------------------------------------- */

static int cmd_keygen(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "keygen PRIVATE_OUT PUBLIC_OUT\n");
        return EXIT_USAGE;
    }
    uint8_t priv[32], pub[32];
    char hex[80];
    if (RAND_bytes(priv, 32) != 1 || yn_card_public_key(priv, pub) != YN_OK)
        return EXIT_RUNTIME;
    to_hex(priv, 32, hex);
    strcat(hex, "\n");
    int rc = yn_file_write_atomic(argv[0], hex, strlen(hex), 0600);
    to_hex(pub, 32, hex);
    strcat(hex, "\n");
    if (rc == YN_OK)
        rc = yn_file_write_atomic(argv[1], hex, strlen(hex), 0644);
    OPENSSL_cleanse(priv, sizeof priv);
    return rc == YN_OK ? 0 : EXIT_RUNTIME;
}

static int cmd_token(sqlite3 *db, int argc, char **argv)
{
    if (argc != 2 || !*argv[0] || strlen(argv[0]) >= YN_LEDGER_ID_MAX) {
        fprintf(stderr, "enrol-token TERMINAL CANTEEN\n");
        return EXIT_USAGE;
    }
    uint8_t raw[16], th[32];
    char token[33];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return EXIT_RUNTIME;
    to_hex(raw, sizeof raw, token);
    SHA256((const uint8_t *)token, strlen(token), th);
    sqlite3_stmt *st = prep(db, "INSERT INTO tokens(token_hash, terminal, canteen) VALUES (?,?,?)");
    sqlite3_bind_blob(st, 1, th, 32, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, argv[0], -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, argv[1], -1, SQLITE_STATIC);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    if (!ok)
        return EXIT_RUNTIME;
    printf("%s\n", token);
    return 0;
}

/* CSV: card_no,birth_ymd,flags,district,street,expiry_ymd (header line first). */
static int cmd_import(sqlite3 *db, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "import-cards CSV\n");
        return EXIT_USAGE;
    }
    FILE *f = fopen(argv[0], "r");
    if (!f) {
        fprintf(stderr, "%s: %s\n", argv[0], strerror(errno));
        return EXIT_USAGE;
    }
    char line[512];
    int lineno = 0, n = 0, rc = 0;
    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    sqlite3_stmt *st = prep(db, "INSERT INTO cards VALUES (?1,?2,?3,?4,?5,?6,?7) ON CONFLICT"
                                "(card_no) DO UPDATE SET birth_ymd=?2, flags=?3, district=?4,"
                                " street=?5, expiry_ymd=?6, version=?7");
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char card[32];
        long long birth, flags, district, street, expiry;
        if (lineno == 1 && strncmp(line, "card_no", 7) == 0)
            continue;
        if (sscanf(line, "%31[^,],%lld,%lld,%lld,%lld,%lld", card, &birth, &flags, &district,
                   &street, &expiry) != 6 ||
            strlen(card) > 19) {
            fprintf(stderr, "%s:%d: expected card_no,birth_ymd,flags,district,street,expiry_ymd\n",
                    argv[0], lineno);
            rc = EXIT_USAGE;
            break;
        }
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, card, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, birth);
        sqlite3_bind_int64(st, 3, flags);
        sqlite3_bind_int64(st, 4, district);
        sqlite3_bind_int64(st, 5, street);
        sqlite3_bind_int64(st, 6, expiry);
        sqlite3_bind_int64(st, 7, next_counter(db, "roster_version"));
        if (sqlite3_step(st) != SQLITE_DONE) {
            rc = EXIT_RUNTIME;
            break;
        }
        n++;
    }
    fclose(f);
    sqlite3_finalize(st);
    sqlite3_exec(db, rc ? "ROLLBACK" : "COMMIT", NULL, NULL, NULL);
    if (!rc)
        printf("%d cards imported\n", n);
    return rc;
}

/* import DIR: the batch frames a terminal wrote to a USB stick (`yinian-diag
 * export`), through the same ingest as POST /v1/batches. For each frame
 * batch-T-N.ynb an acknowledgement ack-T-N.json is written next to it: the
 * document the HTTPS endpoint would have answered, for `yinian-diag
 * import-ack` on the terminal. Importing again stores nothing new. */
static int names_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmd_import_dir(sqlite3 *db, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "import DIR\n");
        return EXIT_USAGE;
    }
    const char *dir = argv[0];
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return EXIT_USAGE;
    }
    char **names = NULL;
    size_t n = 0;
    const struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "batch-", 6) != 0 || l < 10 || strcmp(e->d_name + l - 4, ".ynb"))
            continue;
        char **nn = realloc(names, (n + 1) * sizeof *names);
        if (!nn || !(nn[n] = strdup(e->d_name))) {
            names = nn ? nn : names;
            break;
        }
        names = nn;
        n++;
    }
    closedir(d);
    if (n == 0)
        fprintf(stderr, "%s: no batch-*.ynb files: not a yinian-diag export folder\n", dir);
    qsort(names, n, sizeof *names, names_cmp);
    int rc = n ? 0 : EXIT_USAGE;
    int64_t stored = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096], ack_path[4096];
        size_t len;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        uint8_t *frame = (uint8_t *)slurp(path, &len);
        struct ingest g;
        if (!frame || len > REQUEST_MAX) {
            fprintf(stderr, "%s: unreadable or over %d bytes\n", path, REQUEST_MAX);
            rc = EXIT_RUNTIME;
        } else if (ingest_batch(db, frame, len, &g) != 0) {
            fprintf(stderr, "%s: refused (%s): %s\n", path, g.code, g.message);
            rc = EXIT_RUNTIME;
        } else {
            snprintf(ack_path, sizeof ack_path, "%s/ack-%.*s.json", dir,
                     (int)(strlen(names[i]) - 10), names[i] + 6);
            char *text = NULL;
            if (asprintf(&text, "%s\n", g.ack) < 0 ||
                yn_file_write_atomic(ack_path, text, strlen(text), 0644) != YN_OK) {
                fprintf(stderr, "%s: acknowledgement not written\n", ack_path);
                rc = EXIT_RUNTIME;
            } else {
                printf("%s: terminal %s batch %lld records %lld..%lld: %s; %s written\n", names[i],
                       g.hdr.terminal, (long long)g.hdr.batch_id, (long long)g.hdr.first_seq,
                       (long long)g.hdr.last_seq, g.message, ack_path);
                stored += g.stored;
            }
            free(text);
            free(g.ack);
        }
        free(frame);
        free(names[i]);
    }
    free(names);
    if (n)
        printf("%zu batch files, %lld new records stored\n", n, (long long)stored);
    return rc;
}

static int cmd_lost(sqlite3 *db, int argc, char **argv, bool lost)
{
    if (argc != 1) {
        fprintf(stderr, "%s CARD_NO\n", lost ? "lost" : "found");
        return EXIT_USAGE;
    }
    sqlite3_stmt *st = prep(db, "INSERT INTO blacklist(card_no, lost) VALUES (?1, ?2)");
    sqlite3_bind_text(st, 1, argv[0], -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, lost);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 0 : EXIT_RUNTIME;
}

static int cmd_policy(sqlite3 *db, int argc, char **argv)
{
    size_t len;
    char *text = argc == 1 ? slurp(argv[0], &len) : NULL;
    if (!text) {
        fprintf(stderr, "publish-policy FILE.json\n");
        return EXIT_USAGE;
    }
    yn_policy *p = NULL;
    char err[256];
    json_t *j = json_loadb(text, len, 0, NULL);
    json_int_t version = 0;
    if (yn_policy_load(text, len, &p, err, sizeof err) != YN_OK || !j ||
        json_unpack(j, "{s:I}", "version", &version) != 0) {
        fprintf(stderr, "%s: policy refused: %s\n", argv[0], err);
        free(text);
        json_decref(j);
        yn_policy_free(p);
        return EXIT_USAGE;
    }
    yn_policy_free(p);
    json_decref(j);
    sqlite3_stmt *st = prep(db, "INSERT INTO policies VALUES (?1, ?2)");
    sqlite3_bind_int64(st, 1, version);
    sqlite3_bind_text(st, 2, text, (int)len, SQLITE_STATIC);
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    free(text);
    if (!ok)
        fprintf(stderr, "policy version %lld already published\n", (long long)version);
    return ok ? 0 : EXIT_USAGE;
}

static int cmd_allocate(sqlite3 *db, int argc, char **argv)
{
    if (argc != 4 || atoll(argv[3]) < 1 || atoll(argv[3]) > YN_UPDATE_MAX_AMOUNT) {
        fprintf(stderr, "allocate ID CARD_NO SOURCE AMOUNT_FEN\n");
        return EXIT_USAGE;
    }
    sqlite3_stmt *st =
        prep(db, "INSERT INTO allocations(id, card_no, source, amount_fen) VALUES (?,?,?,?)");
    for (int i = 0; i < 3; i++)
        sqlite3_bind_text(st, i + 1, argv[i], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, atoll(argv[3]));
    int ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
    return ok ? 0 : EXIT_USAGE;
}

/* report canteen|category|layer|day|terminal: CSV of counts and fen. */
static int cmd_report(sqlite3 *db, int argc, char **argv)
{
    static const struct {
        const char *by, *sql;
    } reports[] = {
        {"canteen", "SELECT t.canteen, COUNT(*), SUM(price_fen), SUM(subsidy_fen),"
                    " SUM(wallet_fen), SUM(cash_fen) FROM records r JOIN terminals t ON"
                    " t.id = r.terminal GROUP BY 1 ORDER BY 1"},
        {"terminal", "SELECT terminal, COUNT(*), SUM(price_fen), SUM(subsidy_fen),"
                     " SUM(wallet_fen), SUM(cash_fen) FROM records GROUP BY 1 ORDER BY 1"},
        {"category", "SELECT category, COUNT(*), SUM(price_fen), SUM(subsidy_fen),"
                     " SUM(wallet_fen), SUM(cash_fen) FROM records GROUP BY 1 ORDER BY 1"},
        {"day", "SELECT local_ymd, COUNT(*), SUM(price_fen), SUM(subsidy_fen),"
                " SUM(wallet_fen), SUM(cash_fen) FROM records GROUP BY 1 ORDER BY 1"},
        {"layer", "SELECT source, COUNT(*), 0, SUM(fen), 0, 0 FROM layers GROUP BY 1 ORDER BY 1"},
    };
    for (size_t i = 0; argc == 1 && i < sizeof reports / sizeof reports[0]; i++) {
        if (strcmp(argv[0], reports[i].by) != 0)
            continue;
        sqlite3_stmt *st = prep(db, reports[i].sql);
        printf("%s,records,price_fen,subsidy_fen,wallet_fen,cash_fen\n", reports[i].by);
        while (sqlite3_step(st) == SQLITE_ROW)
            printf("%s,%lld,%lld,%lld,%lld,%lld\n", (const char *)sqlite3_column_text(st, 0),
                   (long long)sqlite3_column_int64(st, 1), (long long)sqlite3_column_int64(st, 2),
                   (long long)sqlite3_column_int64(st, 3), (long long)sqlite3_column_int64(st, 4),
                   (long long)sqlite3_column_int64(st, 5));
        sqlite3_finalize(st);
        return 0;
    }
    fprintf(stderr, "report canteen|terminal|category|layer|day\n");
    return EXIT_USAGE;
}

static void usage(FILE *to)
{
    fputs("usage: yinian-district COMMAND ...\n"
          "  keygen PRIVATE_OUT PUBLIC_OUT        district Ed25519 signing key (private 0600)\n"
          "  --db FILE serve --cert PEM --key PEM --district-key FILE [--listen 127.0.0.1]\n"
          "      [--port 8443] [--faults 500,reset,slow,truncate,corrupt,none] [--slow-ms N]\n"
          "  --db FILE enrol-token TERMINAL CANTEEN   one-time enrolment token (printed)\n"
          "  --db FILE import-cards CSV               card_no,birth_ymd,flags,district,street,"
          "expiry_ymd\n"
          "  --db FILE import DIR                     batch files of a USB export (yinian-diag\n"
          "                                           export); writes ack-*.json into DIR\n"
          "  --db FILE lost CARD_NO | found CARD_NO   report a card lost / found\n"
          "  --db FILE publish-policy FILE.json\n"
          "  --db FILE allocate ID CARD_NO SOURCE AMOUNT_FEN\n"
          "  --db FILE report canteen|terminal|category|layer|day   CSV on stdout\n"
          "exit: 0 done, 1 runtime failure, 2 bad command line or input\n",
          to);
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "keygen"))
        return cmd_keygen(argc - 2, argv + 2);
    if (argc < 4 || strcmp(argv[1], "--db") != 0) {
        usage(argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
        return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : EXIT_USAGE;
    }
    sqlite3 *db = db_open(argv[2]);
    if (!db)
        return EXIT_RUNTIME;
    const char *cmd = argv[3];
    int n = argc - 4, rc;
    char **a = argv + 4;
    if (!strcmp(cmd, "serve"))
        rc = cmd_serve(db, n, a);
    else if (!strcmp(cmd, "enrol-token"))
        rc = cmd_token(db, n, a);
    else if (!strcmp(cmd, "import-cards"))
        rc = cmd_import(db, n, a);
    else if (!strcmp(cmd, "import"))
        rc = cmd_import_dir(db, n, a);
    else if (!strcmp(cmd, "lost") || !strcmp(cmd, "found"))
        rc = cmd_lost(db, n, a, !strcmp(cmd, "lost"));
    else if (!strcmp(cmd, "publish-policy"))
        rc = cmd_policy(db, n, a);
    else if (!strcmp(cmd, "allocate"))
        rc = cmd_allocate(db, n, a);
    else if (!strcmp(cmd, "report"))
        rc = cmd_report(db, n, a);
    else {
        usage(stderr);
        rc = EXIT_USAGE;
    }
    sqlite3_close(db);
    return rc;
}
