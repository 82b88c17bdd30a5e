/* ingest.c — one batch frame into the district, whole or not at all
 * (ingest.h). */
#include "ingest.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "rules.h"
#include "sig.h"

static int refuse(yn_ingest *g, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(yn_ingest *g, unsigned status, const char *code, const char *fmt, ...)
{
    g->status = status;
    g->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->message, sizeof g->message, fmt, ap);
    va_end(ap);
    return -1;
}

unsigned yn_ingest_storage_status(int status, const char **code)
{
    bool busy = status == YN_EBUSY || status == YN_ENOMEM;
    *code = busy ? "unavailable" : "storage";
    return busy ? 503 : 500;
}

static int storage(yn_ingest *g, yn_db *db, int status)
{
    const char *code;
    unsigned http = yn_ingest_storage_status(status, &code);
    return refuse(g, http, code, "%s", http == 503 ? "busy, try again" : yn_db_errmsg(db));
}

static int bad_record(yn_ingest *g, int64_t seq, const char *field, const char *why)
{
    g->seq = seq;
    snprintf(g->field, sizeof g->field, "%s", field);
    return refuse(g, 400, "bad_record", "record %lld: %s: %s", (long long)seq, field, why);
}

/* The acknowledgement (PROTOCOL.md §4): the range now held, MACed with a
 * shared key (v 1), or for a key-pair terminal signed by the district's key
 * (v 2, §10; NULL without it). */
static char *make_ack(const yn_terminal_cred *c, const uint8_t *district_priv,
                      const yn_batch_header *h)
{
    bool pair = c->auth == YN_BATCH_AUTH_ECDSA_P256;
    int v = pair ? 2 : 1;
    char head_hex[65], tag_hex[2 * YN_SIG_ED25519_LEN + 1], msg[256];
    uint8_t tag[YN_SIG_ED25519_LEN];
    yn_hex_encode(h->head_hash, YN_LEDGER_HASH_LEN, head_hex);
    size_t n = yn_batch_ack_text(v, h->terminal, h->batch_id, h->first_seq, h->last_seq, head_hex,
                                 msg, sizeof msg);
    if (!pair)
        yn_batch_hmac(c->key, c->key_len, msg, n, tag);
    else if (!district_priv || yn_sig_ed25519_sign(district_priv, msg, n, tag) != YN_OK)
        return NULL;
    yn_hex_encode(tag, pair ? YN_SIG_ED25519_LEN : YN_BATCH_MAC_LEN, tag_hex);
    json_t *j = json_pack("{s:i, s:s, s:I, s:I, s:I, s:s, s:s}", "v", v, "terminal", h->terminal,
                          "batch_id", (json_int_t)h->batch_id, "first_seq",
                          (json_int_t)h->first_seq, "last_seq", (json_int_t)h->last_seq,
                          "head_hash", head_hex, pair ? "sig" : "mac", tag_hex);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

/* The hashes held for seq from..to, compared with the batch's (PROTOCOL.md
 * §3.4): from = first_seq - 1 gives the prev_hash. */
struct held_hashes {
    const yn_batch_header *h;
    const yn_ledger_record *recs;
    int64_t next;     /* the seq the next row must have */
    bool differs;     /* a held hash is not the batch's */
    const char *what; /* why */
};

static int compare_held(void *arg, const yn_db_row *row)
{
    struct held_hashes *c = arg;
    int64_t seq = yn_db_int(row, 0);
    size_t len;
    const uint8_t *hash = yn_db_blob(row, 1, &len);
    const uint8_t *want =
        seq == c->h->first_seq - 1 ? c->h->prev_hash : c->recs[seq - c->h->first_seq].hash;
    if (seq != c->next || len != YN_LEDGER_HASH_LEN || memcmp(hash, want, len) != 0) {
        c->differs = true;
        c->what = seq == c->h->first_seq - 1 ? "prev_hash differs from the record held"
                                             : "replayed batch with different content";
        return YN_EINVAL;
    }
    c->next++;
    return YN_OK;
}

/* Against what is held: a gap, prev_hash, replayed records. NULL when the
 * batch fits, else why (409). *st gets a storage status. */
static const char *check_held(yn_db *db, const yn_batch_header *h, const yn_ledger_record *recs,
                              int64_t held, const uint8_t held_hash[32], int *st)
{
    *st = YN_OK;
    if (h->first_seq > held + 1)
        return "gap: records before first_seq have not arrived";
    if (h->first_seq == held + 1) /* the common case: nothing of it held */
        return memcmp(h->prev_hash, held ? held_hash : (const uint8_t[YN_LEDGER_HASH_LEN]){0},
                      YN_LEDGER_HASH_LEN) != 0
                   ? "prev_hash differs from the record held"
                   : NULL;
    int64_t from = h->first_seq > 1 ? h->first_seq - 1 : 1;
    int64_t to = h->last_seq < held ? h->last_seq : held;
    if (h->first_seq == 1 &&
        memcmp(h->prev_hash, (const uint8_t[YN_LEDGER_HASH_LEN]){0}, YN_LEDGER_HASH_LEN) != 0)
        return "prev_hash of record 1 must be zeros";
    struct held_hashes c = {.h = h, .recs = recs, .next = from};
    *st = YN_DB_RUN(db,
                    "SELECT seq, hash FROM records WHERE terminal = $1 AND seq >= $2"
                    " AND seq <= $3 ORDER BY seq",
                    compare_held, &c, DB_TEXT(h->terminal), DB_INT(from), DB_INT(to));
    if (c.differs) {
        *st = YN_OK;
        return c.what;
    }
    if (*st == YN_OK && c.next != to + 1)
        return "records held before this batch are missing (quarantined?)";
    return NULL;
}

/* A record held by the district (for an undo's check). */
struct held_record {
    yn_ledger_record *r;
    bool found;
};

static int take_record(void *arg, const yn_db_row *row)
{
    struct held_record *m = arg;
    yn_db_record_of(row, 0, m->r);
    m->found = true;
    return YN_OK;
}

static int held_record(yn_db *db, const char *terminal, int64_t seq, yn_ledger_record *r,
                       bool *found)
{
    struct held_record m = {r, false};
    memset(r, 0, sizeof *r);
    int rc = YN_DB_RUN(db,
                       "SELECT " YN_DB_RECORD_COLUMNS " FROM records WHERE terminal = $1"
                       " AND seq = $2",
                       take_record, &m, DB_TEXT(terminal), DB_INT(seq));
    *found = m.found;
    return rc;
}

struct published {
    const yn_ledger_record *r;
    bool found, same;
};

static int take_published(void *arg, const yn_db_row *row)
{
    struct published *p = arg;
    p->found = true;
    p->same = strcmp(yn_db_text(row, 0), p->r->card_no) == 0 &&
              strcmp(yn_db_text(row, 1), p->r->layers[0].source) == 0 &&
              yn_db_int(row, 2) == p->r->subsidy_fen;
    return YN_OK;
}

/* The rules that need other records, for the new records (seq > held):
 * an undo names a meal of this terminal (held or earlier in this batch),
 * undone once, shares negated; a mention names a meal of the same card; an
 * allocation is one the district published, with its card, source and
 * amount. 0 when all hold; -1 refused (g filled); *st a storage status. */
static int check_references(yn_db *db, const yn_batch_header *h, const yn_ledger_record *recs,
                            int64_t held, yn_ingest *g, int *st)
{
    *st = YN_OK;
    for (uint32_t i = 0; i < h->count && *st == YN_OK; i++) {
        const yn_ledger_record *r = &recs[i];
        const yn_rules_kind *k = yn_rules_kind_of(r->kind); /* known: the rules passed */
        if (r->seq <= held)
            continue;
        if (k->reverses != YN_RULES_REF_NONE) {
            yn_ledger_record stored = {0};
            const yn_ledger_record *meal = NULL;
            bool found = false;
            if (r->reverses_seq >= h->first_seq) {
                meal = &recs[r->reverses_seq - h->first_seq];
            } else {
                *st = held_record(db, h->terminal, r->reverses_seq, &stored, &found);
                meal = found ? &stored : NULL;
            }
            if (*st != YN_OK)
                break;
            if (!meal)
                return bad_record(g, r->seq, "reverses_seq",
                                  "names a record the district does"
                                  " not hold");
            yn_rules_fault f;
            if (k->reverses == YN_RULES_REF_UNDO) {
                if (yn_rules_undo(r, meal, &f) != YN_OK)
                    return bad_record(g, r->seq, f.field, f.why);
                /* once: not by a record held, nor by an earlier one of this batch */
                for (uint32_t j = 0; j < i; j++)
                    if (recs[j].seq > held && recs[j].reverses_seq == r->reverses_seq &&
                        yn_rules_kind_of(recs[j].kind)->reverses == YN_RULES_REF_UNDO)
                        return bad_record(g, r->seq, "reverses_seq", "that meal is undone twice");
                int64_t undone = 0;
                *st = yn_db_int_of(db,
                                   "SELECT r.seq FROM records r WHERE r.terminal = $1 AND"
                                   " r.reverses_seq = $2 AND r.kind = $3",
                                   (const yn_db_val[]){DB_TEXT(h->terminal),
                                                       DB_INT(r->reverses_seq), DB_INT(r->kind)},
                                   3, &undone);
                if (*st == YN_OK)
                    return bad_record(g, r->seq, "reverses_seq", "that meal was undone before");
                *st = *st == YN_ENOTFOUND ? YN_OK : *st;
            } else if (meal->kind != YN_LEDGER_MEAL || strcmp(meal->card_no, r->card_no) != 0) {
                return bad_record(g, r->seq, "reverses_seq", "names no meal of this card");
            }
        }
        if (k->ref == YN_RULES_TEXT_ALLOCATION) {
            struct published p = {r, false, false};
            *st = YN_DB_RUN(db, "SELECT card_no, source, amount_fen FROM allocations WHERE id = $1",
                            take_published, &p, DB_TEXT(r->ref));
            if (*st == YN_OK && !p.found)
                return bad_record(g, r->seq, "ref", "no allocation of the district has this id");
            if (*st == YN_OK && !p.same)
                return bad_record(g, r->seq, "ref",
                                  "card, source or amount differ from the district's allocation");
        }
    }
    return 0;
}

/* Verify the frame (no storage touched). 0, or -1 with g filled. */
static int verify(yn_db *db, const uint8_t *frame, size_t len, yn_ingest *g,
                  yn_ledger_record **recs, yn_terminal_cred *cred)
{
    int rc = yn_batch_peek(frame, len, &g->hdr);
    if (rc == YN_ELIMIT)
        return refuse(g, 413, "too_large", "batch sizes over the limits");
    if (rc != YN_OK)
        return refuse(g, 400, "bad_frame", "malformed or truncated batch frame");
    rc = yn_terminal_key(db, g->hdr.terminal, cred);
    if (rc == YN_ENOTFOUND)
        return refuse(g, 403, "unknown_terminal", "terminal %s is not enrolled", g->hdr.terminal);
    if (rc != YN_OK)
        return storage(g, db, rc);
    yn_batch_error err;
    yn_batch_cred bc = {cred->auth, cred->key, cred->key_len};
    rc = yn_batch_verify_cred(frame, len, &bc, &g->hdr, recs, &err);
    switch (rc) {
    case YN_OK:
        return 0;
    case YN_EAUTH:
        return refuse(g, 401, "bad_mac", "%s", err.why);
    case YN_ELIMIT:
        return refuse(g, 413, "too_large", "%s", err.why);
    case YN_ECORRUPT:
        return refuse(g, 400, "bad_crc_or_chain", "%s", err.why);
    case YN_EINVAL:
        return bad_record(g, err.seq, err.field, err.why);
    case YN_ENOMEM:
        return refuse(g, 503, "unavailable", "out of memory, try again");
    default:
        return refuse(g, 400, "bad_body", "%s", err.why);
    }
}

int yn_ingest_check(yn_db *db, const uint8_t *frame, size_t len, const uint8_t *district_priv,
                    yn_ingest *g)
{
    memset(g, 0, sizeof *g);
    g->code = "";
    g->frame = frame;
    g->frame_len = len;
    g->district_priv = district_priv;
    return verify(db, frame, len, g, &g->recs, &g->cred);
}

/* One identity-only card's identifier used at two canteens in one meal
 * period: a copied UID (firmware/core/CARD.md §8). Such an identifier goes on the
 * blacklist at once (tools/DISTRICT.md §8: automatic, found-ident undoes it),
 * unless it is there already; `report shared-ident` lists the meals. */
static int flag_shared_idents(yn_db *db, const yn_ledger_record *recs, int64_t n)
{
    int st = YN_OK;
    bool locked = false;
    for (int64_t i = 0; i < n && st == YN_OK; i++) {
        const yn_ledger_record *r = &recs[i];
        if (r->by != YN_LEDGER_BY_IDENT || r->kind != YN_LEDGER_MEAL)
            continue;
        /* PostgreSQL commits different terminals' batches in parallel: two
         * canteens' meals of one identifier, stored at once, would each miss
         * the other. Batches with identity-only meals take this lock (held to
         * the commit), so the second one's check sees the first's records
         * (read committed: each statement sees what committed before it).
         * SQLite has one writer already. */
        if (!locked && yn_db_backend_of(db) == YN_DB_POSTGRESQL)
            st = yn_db_run(db, "SELECT pg_advisory_xact_lock(1650016)", NULL, 0, NULL, NULL);
        locked = true;
        int64_t canteens = 0, lost = 0, seq = 0;
        if (st != YN_OK)
            break;
        st = yn_db_int_of(db,
                          "SELECT COUNT(DISTINCT e.canteen) FROM records r JOIN enrolments e ON"
                          " e.terminal = r.terminal AND r.seq >= e.from_seq AND r.seq < e.to_seq"
                          " WHERE r.identified = 2 AND r.ident = $1 AND r.local_ymd = $2"
                          " AND r.period = $3 AND r.kind = $4",
                          (const yn_db_val[]){DB_TEXT(r->ident), DB_INT(r->local_ymd),
                                              DB_TEXT(r->period), DB_INT(YN_LEDGER_MEAL)},
                          4, &canteens);
        if (st != YN_OK || canteens < 2)
            continue;
        st = yn_db_int_of(db,
                          "SELECT COUNT(*) FROM blacklist WHERE ident = $1 AND lost <> 0 AND"
                          " seq = (SELECT MAX(seq) FROM blacklist WHERE ident = $1)",
                          (const yn_db_val[]){DB_TEXT(r->ident)}, 1, &lost);
        if (st == YN_OK && !lost) {
            st = yn_db_blacklist_put(db, "", r->ident, true, &seq);
            if (st == YN_OK)
                fprintf(stderr,
                        "yinian-district: identifier %s used at %lld canteens in %s of %d:"
                        " a copied card? on the blacklist (change %lld; report shared-ident"
                        " lists the meals, found-ident undoes it)\n",
                        r->ident, (long long)canteens, r->period, (int)r->local_ymd,
                        (long long)seq);
        }
    }
    return st;
}

int yn_ingest_store(yn_db *db, yn_ingest *g, int64_t now_utc_s)
{
    const yn_batch_header *h = &g->hdr;
    const yn_ledger_record *recs = g->recs;
    uint8_t held_hash[YN_LEDGER_HASH_LEN];
    int64_t held = 0;
    int refused = 0;
    int st = yn_db_terminal_lock(db, h->terminal, &held, held_hash);
    if (st == YN_ENOTFOUND)
        return refuse(g, 403, "unknown_terminal", "terminal %s is not enrolled", h->terminal),
               YN_OK;
    if (st == YN_OK) {
        const char *conflict = check_held(db, h, recs, held, held_hash, &st);
        if (conflict)
            refused = refuse(g, 409, "conflict", "%s", conflict);
    }
    if (st == YN_OK && !refused)
        refused = check_references(db, h, recs, held, g, &st);
    if (st != YN_OK || refused)
        return st;
    int64_t first_new = held + 1 > h->first_seq ? held + 1 : h->first_seq;
    g->stored = h->last_seq >= first_new ? h->last_seq - first_new + 1 : 0;
    if (g->stored) {
        st = yn_db_put_records(db, recs + (first_new - h->first_seq), (size_t)g->stored);
        if (st == YN_OK)
            st = flag_shared_idents(db, recs + (first_new - h->first_seq), g->stored);
        if (st == YN_OK) /* the frame as uploaded, for POST /v1/records */
            st = YN_DB_RUN(db, "INSERT INTO frames VALUES ($1, $2, $3, $4)", NULL, NULL,
                           DB_TEXT(h->terminal), DB_INT(h->last_seq), DB_INT(h->first_seq),
                           DB_BLOB(g->frame, g->frame_len));
        if (st == YN_OK)
            st = YN_DB_RUN(db, "UPDATE terminals SET last_seq = $2, last_hash = $3 WHERE id = $1",
                           NULL, NULL, DB_TEXT(h->terminal), DB_INT(h->last_seq),
                           DB_BLOB(h->head_hash, YN_LEDGER_HASH_LEN));
    }
    if (st == YN_OK)
        st = YN_DB_RUN(db,
                       "INSERT INTO batches VALUES ($1, $2, $3, $4, $5)"
                       " ON CONFLICT(terminal, batch_id, first_seq) DO NOTHING",
                       NULL, NULL, DB_TEXT(h->terminal), DB_INT(h->batch_id), DB_INT(h->first_seq),
                       DB_INT(h->last_seq), DB_INT(now_utc_s));
    return st;
}

/* After the transaction: the reply. storage_status is the commit's. */
static int finish(yn_db *db, yn_ingest *g, int storage_status)
{
    free(g->recs);
    g->recs = NULL;
    if (g->status) { /* refused inside the transaction */
        g->stored = 0;
        return -1;
    }
    if (storage_status != YN_OK) {
        g->stored = 0;
        return storage(g, db, storage_status);
    }
    g->status = 200;
    if (g->stored)
        snprintf(g->message, sizeof g->message, "%lld new records stored", (long long)g->stored);
    else
        snprintf(g->message, sizeof g->message, "already stored, nothing changed");
    g->ack = make_ack(&g->cred, g->district_priv, &g->hdr);
    bool unsigned_ack = g->cred.auth == YN_BATCH_AUTH_ECDSA_P256 && !g->district_priv;
    OPENSSL_cleanse(&g->cred, sizeof g->cred);
    if (unsigned_ack) /* stored; the caller says what is missing */
        return 0;
    if (!g->ack)
        return refuse(g, 503, "unavailable", "out of memory, try again");
    return 0;
}

int yn_ingest_frame(yn_db *db, const uint8_t *frame, size_t len, const uint8_t *district_priv,
                    int64_t now_utc_s, yn_ingest *g)
{
    return yn_ingest_check(db, frame, len, district_priv, g) == 0
               ? yn_ingest_commit(db, g, now_utc_s)
               : -1;
}

int yn_ingest_commit(yn_db *db, yn_ingest *g, int64_t now_utc_s)
{
    int st = yn_db_begin(db, true);
    if (st == YN_OK)
        st = yn_ingest_store(db, g, now_utc_s);
    if (st == YN_OK && !g->status)
        st = yn_db_commit(db);
    else
        yn_db_rollback(db);
    return finish(db, g, st);
}

/* --- group commit ---------------------------------------------------------------- */

struct waiter {
    yn_ingest *g;
    int64_t now_utc_s;
    bool done;
    int rc;
    struct waiter *next;
};

struct yn_ingest_queue {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct waiter *head, **tail;
    bool leading; /* a thread is storing a group */
};

yn_ingest_queue *yn_ingest_queue_new(void)
{
    yn_ingest_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->tail = &q->head;
    return q;
}

void yn_ingest_queue_free(yn_ingest_queue *q)
{
    if (!q)
        return;
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->cv);
    free(q);
}

/* One transaction for the group; a savepoint around each batch, so a
 * refused one leaves the others in. A storage failure fails them all. */
static void store_group(yn_db *db, struct waiter *w)
{
    int st = yn_db_begin(db, true);
    for (struct waiter *x = w; x && st == YN_OK; x = x->next) {
        st = yn_db_run(db, "SAVEPOINT batch", NULL, 0, NULL, NULL);
        if (st == YN_OK)
            st = yn_ingest_store(db, x->g, x->now_utc_s);
        if (st == YN_OK && x->g->status)
            st = yn_db_run(db, "ROLLBACK TO SAVEPOINT batch", NULL, 0, NULL, NULL);
        if (st == YN_OK)
            st = yn_db_run(db, "RELEASE SAVEPOINT batch", NULL, 0, NULL, NULL);
    }
    if (st == YN_OK)
        st = yn_db_commit(db);
    else
        yn_db_rollback(db);
    for (struct waiter *x = w; x; x = x->next)
        x->rc = finish(db, x->g, st);
}

int yn_ingest_queued(yn_ingest_queue *q, yn_db *db, yn_ingest *g, int64_t now_utc_s)
{
    struct waiter me = {.g = g, .now_utc_s = now_utc_s};
    pthread_mutex_lock(&q->mu);
    /* me lives on this stack until done: the leader unlinks it before that */
    *q->tail = &me;
    q->tail = &me.next; // cppcheck-suppress autoVariables
    while (!me.done) {
        if (q->leading) {
            pthread_cond_wait(&q->cv, &q->mu);
            continue;
        }
        /* lead: take the waiting batches, up to YN_INGEST_GROUP_RECORDS records */
        q->leading = true;
        struct waiter *group = q->head, **end = &q->head;
        int64_t records = 0;
        while (*end &&
               (records == 0 || records + (*end)->g->hdr.count <= YN_INGEST_GROUP_RECORDS)) {
            records += (*end)->g->hdr.count;
            end = &(*end)->next;
        }
        q->head = *end;
        if (!q->head)
            q->tail = &q->head;
        *end = NULL;
        pthread_mutex_unlock(&q->mu);
        store_group(db, group);
        pthread_mutex_lock(&q->mu);
        for (struct waiter *x = group; x; x = x->next)
            x->done = true;
        q->leading = false;
        pthread_cond_broadcast(&q->cv);
    }
    pthread_mutex_unlock(&q->mu);
    return me.rc;
}

void yn_ingest_done(yn_ingest *g)
{
    free(g->ack);
    free(g->recs);
    g->ack = NULL;
    g->recs = NULL;
    OPENSSL_cleanse(&g->cred, sizeof g->cred);
}
