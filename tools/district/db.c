/* db.c — the storage interface (db.h): picks the backend, and the few
 * operations written once for both. */
#include "db_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int yn_db_fail(yn_db *db, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->errmsg, sizeof db->errmsg, fmt, ap);
    va_end(ap);
    return status;
}

bool yn_db_is_postgresql(const char *where)
{
    if (strncmp(where, "postgresql://", 13) == 0 || strncmp(where, "postgres://", 11) == 0)
        return true;
    /* conninfo: key=value pairs, the first key lowercase letters and '_' */
    const char *p = where;
    while ((*p >= 'a' && *p <= 'z') || *p == '_')
        p++;
    return p > where && *p == '=';
}

/* Create the schema, or bring it to this version, in one write transaction;
 * nothing when it is current. */
static int migrate(yn_db *db)
{
    int64_t version = 0;
    if (yn_db_int_of(db, "SELECT value FROM meta WHERE key = 'schema_version'", NULL, 0,
                     &version) == YN_OK &&
        version == YN_DB_SCHEMA)
        return YN_OK;
    if (version > YN_DB_SCHEMA)
        return yn_db_fail(db, YN_ENOTSUP, "database schema %lld is newer than this server's %d",
                          (long long)version, YN_DB_SCHEMA);
    int rc = yn_db_begin(db, true);
    if (rc == YN_OK)
        rc = db->ops->create_schema(db, version);
    if (rc == YN_OK)
        return yn_db_commit(db);
    yn_db_rollback(db);
    return rc;
}

int yn_db_open(const char *where, const yn_db_opts *opts, yn_db **out, char *err, size_t errlen)
{
    *out = NULL;
    const struct yn_db_ops *ops = &yn_db_sqlite_ops;
    if (yn_db_is_postgresql(where)) {
#if WITH_POSTGRESQL
        ops = &yn_db_pg_ops;
#else
        snprintf(err, errlen,
                 "%s: this yinian-district was built without PostgreSQL"
                 " (WITH_POSTGRESQL=0)",
                 where);
        return YN_ENOTSUP;
#endif
    }
    yn_db *db = calloc(1, sizeof *db);
    if (!db) {
        snprintf(err, errlen, "out of memory");
        return YN_ENOMEM;
    }
    db->ops = ops;
    if (opts)
        db->opts = *opts;
    if (db->opts.busy_ms <= 0)
        db->opts.busy_ms = 2000;
    int rc = ops->open(db, where);
    if (rc == YN_OK)
        rc = migrate(db);
    if (rc != YN_OK) {
        snprintf(err, errlen, "%s", db->errmsg[0] ? db->errmsg : "out of memory");
        ops->close(db);
        free(db);
        return rc;
    }
    *out = db;
    return YN_OK;
}

void yn_db_close(yn_db *db)
{
    if (!db)
        return;
    db->ops->close(db);
    free(db);
}

enum yn_db_backend yn_db_backend_of(const yn_db *db)
{
    return db->ops == &yn_db_sqlite_ops ? YN_DB_SQLITE : YN_DB_POSTGRESQL;
}

const char *yn_db_errmsg(const yn_db *db)
{
    return db->errmsg;
}

int yn_db_begin(yn_db *db, bool write)
{
    return db->ops->begin(db, write);
}

int yn_db_commit(yn_db *db)
{
    return db->ops->commit(db);
}

void yn_db_rollback(yn_db *db)
{
    db->ops->rollback(db);
}

int yn_db_run(yn_db *db, const char *sql, const yn_db_val *args, int n, yn_db_each each, void *arg)
{
    int slot = 0;
    while (slot < db->n_cached && db->cached[slot] != sql)
        slot++;
    if (slot == db->n_cached) { /* the first run of this statement on this handle */
        if (slot == YN_DB_CACHE_MAX || n > YN_DB_PARAMS_MAX)
            return yn_db_fail(db, YN_EIO, "statement cache full or too many parameters: %.80s",
                              sql);
        int rc = db->ops->prepare(db, slot, sql, args, n);
        if (rc != YN_OK)
            return rc;
        db->cached[db->n_cached++] = sql;
    }
    return db->ops->run(db, slot, args, n, each, arg);
}

int64_t yn_db_int(const yn_db_row *row, int col)
{
    return row->ops->col_int(row, col);
}

const char *yn_db_text(const yn_db_row *row, int col)
{
    return row->ops->col_text(row, col);
}

const uint8_t *yn_db_blob(const yn_db_row *row, int col, size_t *len)
{
    return row->ops->col_blob(row, col, len);
}

struct first_int {
    bool found;
    int64_t v;
};

static int take_first_int(void *arg, const yn_db_row *row)
{
    struct first_int *f = arg;
    if (!f->found) {
        f->found = true;
        f->v = yn_db_int(row, 0);
    }
    return YN_OK;
}

int yn_db_int_of(yn_db *db, const char *sql, const yn_db_val *args, int n, int64_t *out)
{
    struct first_int f = {0};
    int rc = yn_db_run(db, sql, args, n, take_first_int, &f);
    *out = f.v;
    return rc != YN_OK ? rc : f.found ? YN_OK : YN_ENOTFOUND;
}

struct held {
    bool found;
    int64_t seq;
    uint8_t *hash;
};

static int take_held(void *arg, const yn_db_row *row)
{
    struct held *h = arg;
    size_t len;
    const uint8_t *hash = yn_db_blob(row, 1, &len);
    h->found = true;
    h->seq = yn_db_int(row, 0);
    if (len == YN_LEDGER_HASH_LEN)
        memcpy(h->hash, hash, len);
    return YN_OK;
}

int yn_db_terminal_lock(yn_db *db, const char *terminal, int64_t *held_seq,
                        uint8_t held_hash[YN_LEDGER_HASH_LEN])
{
    struct held h = {.hash = held_hash};
    memset(held_hash, 0, YN_LEDGER_HASH_LEN);
    int rc = YN_DB_RUN(db, db->ops->lock_terminal_sql, take_held, &h, DB_TEXT(terminal));
    *held_seq = h.seq;
    return rc != YN_OK ? rc : h.found ? YN_OK : YN_ENOTFOUND;
}

int yn_db_put_records(yn_db *db, const yn_ledger_record *recs, size_t n)
{
    return n ? db->ops->put_records(db, recs, n) : YN_OK;
}

int yn_db_stage_cards(yn_db *db, const yn_card_facts *cards, size_t n, int64_t first_version)
{
    return n ? db->ops->stage_cards(db, cards, n, first_version) : YN_OK;
}

int yn_db_size(yn_db *db, int64_t *bytes)
{
    return db->ops->size(db, bytes);
}

void yn_db_record_of(const yn_db_row *row, int c, yn_ledger_record *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->terminal, sizeof r->terminal, "%s", yn_db_text(row, c));
    r->seq = yn_db_int(row, c + 1);
    r->kind = (int)yn_db_int(row, c + 2);
    snprintf(r->card_no, sizeof r->card_no, "%s", yn_db_text(row, c + 3));
    snprintf(r->category, sizeof r->category, "%s", yn_db_text(row, c + 4));
    snprintf(r->period, sizeof r->period, "%s", yn_db_text(row, c + 5));
    r->local_ymd = (int32_t)yn_db_int(row, c + 6);
    r->price_fen = yn_db_int(row, c + 7);
    r->subsidy_fen = yn_db_int(row, c + 8);
    r->wallet_fen = yn_db_int(row, c + 9);
    r->cash_fen = yn_db_int(row, c + 10);
    r->utc_s = yn_db_int(row, c + 11);
    r->clock_trusted = yn_db_int(row, c + 12) != 0;
    r->reverses_seq = yn_db_int(row, c + 13);
    snprintf(r->ref, sizeof r->ref, "%s", yn_db_text(row, c + 14));
    for (int k = 0; k < YN_POLICY_MAX_LAYERS; k++) {
        if (!*yn_db_text(row, c + 15 + 2 * k)) /* NULL: no more layers */
            break;
        snprintf(r->layers[k].source, sizeof r->layers[k].source, "%s",
                 yn_db_text(row, c + 15 + 2 * k));
        r->layers[k].fen = yn_db_int(row, c + 16 + 2 * k);
        r->n_layers = k + 1;
    }
    r->by = (int)yn_db_int(row, c + 23);
    snprintf(r->ident, sizeof r->ident, "%s", yn_db_text(row, c + 24));
    snprintf(r->supervisor_id, sizeof r->supervisor_id, "%s", yn_db_text(row, c + 25));
    snprintf(r->operator_id, sizeof r->operator_id, "%s", yn_db_text(row, c + 26));
}

bool yn_db_card_of(const yn_db_row *row, yn_card_facts *c, yn_rules_fault *f)
{
    const char *no = yn_db_text(row, 0), *ident = yn_db_text(row, 6);
    *c = (yn_card_facts){.birth_ymd = (int32_t)yn_db_int(row, 1),
                         .flags = (uint32_t)yn_db_int(row, 2),
                         .district = (uint32_t)yn_db_int(row, 3),
                         .street = (uint32_t)yn_db_int(row, 4),
                         .expiry_ymd = (int32_t)yn_db_int(row, 5)};
    snprintf(c->card_no, sizeof c->card_no, "%s", no);
    snprintf(c->ident, sizeof c->ident, "%s", ident);
    if (strlen(no) >= sizeof c->card_no)
        *f = (yn_rules_fault){"card_no", "must be 1..19 bytes of graphic ASCII"};
    else if (strlen(ident) >= sizeof c->ident)
        *f = (yn_rules_fault){"ident", "longer than any identifier"};
    else
        return true;
    return false;
}

int yn_db_counter_take(yn_db *db, const char *key, int64_t n, int64_t *first)
{
    int64_t last = 0;
    int rc = yn_db_int_of(db,
                          "INSERT INTO meta VALUES ($1, $2) ON CONFLICT(key) DO UPDATE"
                          " SET value = meta.value + $2 RETURNING value",
                          (const yn_db_val[]){DB_TEXT(key), DB_INT(n)}, 2, &last);
    *first = last - n + 1;
    return rc;
}

int yn_db_blacklist_put(yn_db *db, const char *card_no, const char *ident, bool lost, int64_t *seq)
{
    int rc = yn_db_counter_take(db, "blacklist_seq", 1, seq);
    if (rc == YN_OK)
        rc = YN_DB_RUN(db,
                       "INSERT INTO blacklist(seq, card_no, ident, lost) VALUES ($1, $2, $3, $4)",
                       NULL, NULL, DB_INT(*seq), DB_TEXT(card_no), DB_TEXT(ident), DB_INT(lost));
    return rc;
}
