/* db_pg.c — the PostgreSQL backend of the district storage (db.h), through
 * libpq: one connection per handle, statements prepared once per connection,
 * parameters and results in binary form, rows streamed (single-row mode) so a
 * report over millions of rows never holds them all. A terminal's batch
 * locks that terminal's row (SELECT … FOR UPDATE): uploads of different
 * terminals commit in parallel and PostgreSQL groups their WAL flushes.
 * Records go in with COPY (one round trip for a whole batch). A lock waited
 * for longer than the busy budget (lock_timeout) is YN_EBUSY, and so is a
 * lost connection (it is re-established at the next transaction). */
#include "db_private.h"
#include "hex.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Type OIDs of the PostgreSQL catalog (stable since 7.x). */
enum { BOOLOID = 16, BYTEAOID = 17, INT8OID = 20, INT2OID = 21, INT4OID = 23, TEXTOID = 25 };

/* The same tables as db_sqlite.c, in PostgreSQL's types. */
static const char *const schema[] = {
    "SELECT pg_advisory_xact_lock(7270013)", /* one server process creates it at a time */
    "SET LOCAL client_min_messages = warning",
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS terminals(id TEXT PRIMARY KEY, canteen TEXT NOT NULL,"
    " key BYTEA NOT NULL, last_seq BIGINT NOT NULL DEFAULT 0, last_hash BYTEA NOT NULL"
    " DEFAULT decode(repeat('00', 32), 'hex'), update_version BIGINT NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS tokens(token_hash BYTEA PRIMARY KEY, terminal TEXT NOT NULL,"
    " canteen TEXT NOT NULL, used BIGINT NOT NULL DEFAULT 0)",
    /* as SQLite's; narrow types where the range allows (less padding per row) */
    "CREATE TABLE IF NOT EXISTS records(terminal TEXT NOT NULL, seq BIGINT NOT NULL,"
    " kind SMALLINT NOT NULL, card_no TEXT NOT NULL, category TEXT NOT NULL,"
    " period TEXT NOT NULL, local_ymd INTEGER NOT NULL, price_fen BIGINT NOT NULL,"
    " subsidy_fen BIGINT NOT NULL, wallet_fen BIGINT NOT NULL, cash_fen BIGINT NOT NULL,"
    " utc_s BIGINT NOT NULL, clock_trusted SMALLINT NOT NULL, reverses_seq BIGINT NOT NULL,"
    " ref TEXT NOT NULL, hash BYTEA NOT NULL, src1 TEXT, fen1 BIGINT, src2 TEXT, fen2 BIGINT,"
    " src3 TEXT, fen3 BIGINT, src4 TEXT, fen4 BIGINT, PRIMARY KEY(terminal, seq))",
    "CREATE TABLE IF NOT EXISTS batches(terminal TEXT NOT NULL, batch_id BIGINT NOT NULL,"
    " first_seq BIGINT NOT NULL, last_seq BIGINT NOT NULL, received_utc_s BIGINT NOT NULL,"
    " PRIMARY KEY(terminal, batch_id, first_seq))",
    "CREATE TABLE IF NOT EXISTS frames(terminal TEXT NOT NULL, last_seq BIGINT NOT NULL,"
    " first_seq BIGINT NOT NULL, frame BYTEA NOT NULL, PRIMARY KEY(terminal, last_seq))",
    "CREATE TABLE IF NOT EXISTS cards(card_no TEXT PRIMARY KEY, birth_ymd BIGINT NOT NULL,"
    " flags BIGINT NOT NULL, district BIGINT NOT NULL, street BIGINT NOT NULL,"
    " expiry_ymd BIGINT NOT NULL, version BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS cards_version ON cards(version)",
    "CREATE TABLE IF NOT EXISTS blacklist(seq BIGINT PRIMARY KEY, card_no TEXT NOT NULL,"
    " lost BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS policies(version BIGINT PRIMARY KEY, json TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS allocations(seq BIGINT PRIMARY KEY, id TEXT UNIQUE NOT NULL,"
    " card_no TEXT NOT NULL, source TEXT NOT NULL, amount_fen BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS enrolments(terminal TEXT NOT NULL, from_seq BIGINT NOT NULL,"
    " to_seq BIGINT NOT NULL, canteen TEXT NOT NULL, PRIMARY KEY(terminal, from_seq))",
    "CREATE INDEX IF NOT EXISTS records_reverses ON records(terminal, reverses_seq)"
    " WHERE reverses_seq > 0",
    "CREATE TABLE IF NOT EXISTS quarantine(LIKE records, why TEXT NOT NULL)",
    "INSERT INTO meta VALUES ('blacklist_seq', 0) ON CONFLICT(key) DO NOTHING",
    "INSERT INTO meta VALUES ('alloc_seq', 0) ON CONFLICT(key) DO NOTHING",
    /* version 3 (db_sqlite.c says what): the same columns, added where missing */
    "ALTER TABLE records ADD COLUMN IF NOT EXISTS identified SMALLINT NOT NULL DEFAULT 1",
    "ALTER TABLE records ADD COLUMN IF NOT EXISTS ident TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE records ADD COLUMN IF NOT EXISTS supervisor TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE records ADD COLUMN IF NOT EXISTS served_by TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS identified SMALLINT NOT NULL DEFAULT 1",
    "ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS ident TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS supervisor TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS served_by TEXT NOT NULL DEFAULT ''",
    "CREATE INDEX IF NOT EXISTS records_ident ON records(ident, local_ymd) WHERE identified = 2",
    "ALTER TABLE cards ADD COLUMN IF NOT EXISTS ident TEXT NOT NULL DEFAULT ''",
    "CREATE INDEX IF NOT EXISTS cards_ident ON cards(ident) WHERE ident <> ''",
    "ALTER TABLE blacklist ADD COLUMN IF NOT EXISTS ident TEXT NOT NULL DEFAULT ''",
    /* version 4: a terminal's key pair (PROTOCOL.md §10); 0 = a shared key */
    "ALTER TABLE terminals ADD COLUMN IF NOT EXISTS key_type SMALLINT NOT NULL DEFAULT 0",
    "INSERT INTO meta VALUES ('schema_version', 4) ON CONFLICT(key) DO UPDATE SET value = 4",
};

struct pg {
    PGconn *conn;
    char names[YN_DB_CACHE_MAX][12]; /* slot i's prepared statement: db->cached[i] */
    char where[1024];
};

/* A row in single-row mode. */
struct pg_row {
    PGresult *res;
};

static int status_of_state(const char *state)
{
    if (!state)
        return YN_EBUSY; /* no SQLSTATE: the connection failed */
    if (!strcmp(state, "23505"))
        return YN_EDUPLICATE;
    if (!strcmp(state, "55P03") || !strcmp(state, "40001") || !strcmp(state, "40P01") ||
        !strcmp(state, "57014") || !strncmp(state, "08", 2) || !strcmp(state, "57P01") ||
        !strcmp(state, "57P03") || !strcmp(state, "53300"))
        return YN_EBUSY;
    if (!strcmp(state, "53100"))
        return YN_ENOSPC;
    if (!strcmp(state, "53200"))
        return YN_ENOMEM;
    if (!strcmp(state, "25006"))
        return YN_EROFS;
    if (!strncmp(state, "XX", 2))
        return YN_ECORRUPT;
    return YN_EIO;
}

static int fail_res(yn_db *db, PGresult *res, const char *what)
{
    struct pg *p = db->impl;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res ? PQresultErrorMessage(res) : "";
    if (!msg || !*msg)
        msg = PQerrorMessage(p->conn);
    int st = yn_db_fail(db, status_of_state(state), "postgresql: %.100s: %.*s [%s]", what,
                        (int)strcspn(msg, "\n"), msg, state ? state : "no sqlstate");
    PQclear(res);
    return st;
}

/* A statement that returns no rows, by its text. */
static int exec(yn_db *db, const char *sql)
{
    struct pg *p = db->impl;
    PGresult *res = PQexec(p->conn, sql);
    ExecStatusType es = PQresultStatus(res);
    if (es != PGRES_COMMAND_OK && es != PGRES_TUPLES_OK)
        return fail_res(db, res, sql);
    PQclear(res);
    return YN_OK;
}

static int create_schema(yn_db *db, int64_t version)
{
    (void)version; /* every statement is idempotent: the same list brings any version up */
    int rc = YN_OK;
    for (size_t i = 0; rc == YN_OK && i < sizeof schema / sizeof schema[0]; i++)
        rc = exec(db, schema[i]);
    return rc;
}

static int connect_now(yn_db *db)
{
    struct pg *p = db->impl;
    PQfinish(p->conn);
    db->n_cached = 0; /* prepared statements live in the connection */
    const char *keys[] = {"dbname", "connect_timeout", "application_name", NULL};
    const char *values[] = {p->where, "5", "yinian-district", NULL};
    p->conn = PQconnectdbParams(keys, values, 1);
    if (!p->conn || PQstatus(p->conn) != CONNECTION_OK)
        return yn_db_fail(db, YN_EBUSY, "postgresql: cannot connect: %.200s",
                          p->conn ? PQerrorMessage(p->conn) : "out of memory");
    char set[96];
    snprintf(set, sizeof set, "SET lock_timeout = %d", db->opts.busy_ms);
    int rc = exec(db, set);
    if (rc == YN_OK)
        rc = exec(db, "SET client_min_messages = warning");
    return rc;
}

static int pg_open(yn_db *db, const char *where)
{
    struct pg *p = calloc(1, sizeof *p);
    if (!p)
        return YN_ENOMEM;
    db->impl = p;
    snprintf(p->where, sizeof p->where, "%s", where);
    return connect_now(db);
}

static void pg_close(yn_db *db)
{
    struct pg *p = db->impl;
    if (!p)
        return;
    PQfinish(p->conn);
    free(p);
    db->impl = NULL;
}

static int pg_begin(yn_db *db, bool write)
{
    struct pg *p = db->impl;
    if (PQstatus(p->conn) != CONNECTION_OK) {
        int rc = connect_now(db);
        if (rc != YN_OK)
            return rc;
    }
    return exec(db, write ? "BEGIN" : "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
}

static int pg_commit(yn_db *db)
{
    struct pg *p = db->impl;
    PGresult *res = PQexec(p->conn, "COMMIT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail_res(db, res, "COMMIT");
    /* a transaction that failed before answers COMMIT with ROLLBACK */
    bool committed = strcmp(PQcmdStatus(res), "COMMIT") == 0;
    PQclear(res);
    return committed ? YN_OK
                     : yn_db_fail(db, YN_EIO, "postgresql: the transaction was rolled back");
}

static void pg_rollback(yn_db *db)
{
    struct pg *p = db->impl;
    if (PQtransactionStatus(p->conn) != PQTRANS_IDLE)
        PQclear(PQexec(p->conn, "ROLLBACK")); /* nothing left to do on error */
}

static int pg_prepare(yn_db *db, int slot, const char *sql, const yn_db_val *args, int n)
{
    struct pg *p = db->impl;
    Oid types[YN_DB_PARAMS_MAX];
    for (int k = 0; k < n; k++)
        types[k] = args[k].type == YN_DB_INT    ? INT8OID
                   : args[k].type == YN_DB_BLOB ? BYTEAOID
                                                : TEXTOID;
    snprintf(p->names[slot], sizeof p->names[slot], "s%d", slot);
    PGresult *res = PQprepare(p->conn, p->names[slot], sql, n, types);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return fail_res(db, res, sql);
    PQclear(res);
    return YN_OK;
}

static void put_be64(uint8_t *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (uint8_t)v;
}

static int pg_run(yn_db *db, int slot, const yn_db_val *args, int n, yn_db_each each, void *arg)
{
    struct pg *p = db->impl;
    const char *sql = db->cached[slot];
    int st = YN_OK;
    const char *values[YN_DB_PARAMS_MAX];
    int lengths[YN_DB_PARAMS_MAX], formats[YN_DB_PARAMS_MAX];
    uint8_t ints[YN_DB_PARAMS_MAX][8];
    for (int k = 0; k < n; k++) {
        switch (args[k].type) {
        case YN_DB_INT:
            put_be64(ints[k], (uint64_t)args[k].i);
            values[k] = (const char *)ints[k];
            lengths[k] = 8;
            formats[k] = 1;
            break;
        case YN_DB_TEXT:
            values[k] = args[k].p;
            lengths[k] = 0;
            formats[k] = 0;
            break;
        case YN_DB_BLOB:
            values[k] = args[k].len ? args[k].p : "";
            lengths[k] = (int)args[k].len;
            formats[k] = 1;
            break;
        }
    }
    if (!PQsendQueryPrepared(p->conn, p->names[slot], n, values, lengths, formats, 1))
        return fail_res(db, NULL, sql);
    if (!PQsetSingleRowMode(p->conn))
        st = yn_db_fail(db, YN_EIO, "postgresql: single-row mode refused");
    PGresult *res;
    while ((res = PQgetResult(p->conn))) { /* read to the end, whatever happens */
        ExecStatusType es = PQresultStatus(res);
        if (es == PGRES_SINGLE_TUPLE) {
            struct pg_row pr = {res};
            struct yn_db_row row = {.ops = &yn_db_pg_ops, .impl = &pr};
            if (st == YN_OK && each)
                st = each(arg, &row);
            PQclear(res);
        } else if (es == PGRES_TUPLES_OK || es == PGRES_COMMAND_OK) {
            PQclear(res);
        } else if (st == YN_OK) {
            st = fail_res(db, res, sql);
        } else {
            PQclear(res);
        }
    }
    return st;
}

/* COPY text format: backslash, tab, newline and CR escaped. */
static void copy_text(char **w, const char *s)
{
    for (; *s; s++) {
        char c = *s;
        if (c == '\\' || c == '\t' || c == '\n' || c == '\r') {
            *(*w)++ = '\\';
            c = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : '\\';
        }
        *(*w)++ = c;
    }
}

static int copy_in(yn_db *db, const char *sql, const char *data, size_t len)
{
    struct pg *p = db->impl;
    PGresult *res = PQexec(p->conn, sql);
    if (PQresultStatus(res) != PGRES_COPY_IN)
        return fail_res(db, res, sql);
    PQclear(res);
    int ok = PQputCopyData(p->conn, data, (int)len) == 1;
    ok = PQputCopyEnd(p->conn, ok ? NULL : "client could not send the rows") == 1 && ok;
    int st = YN_OK;
    while ((res = PQgetResult(p->conn))) {
        if (PQresultStatus(res) != PGRES_COMMAND_OK && st == YN_OK)
            st = fail_res(db, res, sql);
        else
            PQclear(res);
    }
    return st == YN_OK && !ok ? yn_db_fail(db, YN_EIO, "postgresql: COPY not sent") : st;
}

static int pg_put_records(yn_db *db, const yn_ledger_record *recs, size_t n)
{
    /* a line: 28 fields, strings escaped at most x2, hash as \\x + 64 hex */
    size_t cap = n * (14 * 24 + 2 * (17 + 20 + 2 * 24 + 65 + 4 * 24 + 23 + 2 * 17) + 100);
    char *buf = malloc(cap), *w = buf;
    if (!buf)
        return YN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const yn_ledger_record *r = &recs[i];
        copy_text(&w, r->terminal);
        w += sprintf(w, "\t%lld\t%d\t", (long long)r->seq, r->kind);
        copy_text(&w, r->card_no);
        *w++ = '\t';
        copy_text(&w, r->category);
        *w++ = '\t';
        copy_text(&w, r->period);
        w += sprintf(w, "\t%d\t%lld\t%lld\t%lld\t%lld\t%lld\t%d\t%lld\t", (int)r->local_ymd,
                     (long long)r->price_fen, (long long)r->subsidy_fen, (long long)r->wallet_fen,
                     (long long)r->cash_fen, (long long)r->utc_s, r->clock_trusted ? 1 : 0,
                     (long long)r->reverses_seq);
        copy_text(&w, r->ref);
        w += sprintf(w, "\t\\\\x");
        yn_hex_encode(r->hash, YN_LEDGER_HASH_LEN, w);
        w += 2 * YN_LEDGER_HASH_LEN;
        for (int k = 0; k < YN_POLICY_MAX_LAYERS; k++) {
            if (k >= r->n_layers) {
                w += sprintf(w, "\t\\N\t\\N");
                continue;
            }
            *w++ = '\t';
            copy_text(&w, r->layers[k].source);
            w += sprintf(w, "\t%lld", (long long)r->layers[k].fen);
        }
        w += sprintf(w, "\t%d\t", r->by ? r->by : YN_LEDGER_BY_CARD);
        copy_text(&w, r->ident);
        *w++ = '\t';
        copy_text(&w, r->supervisor_id);
        *w++ = '\t';
        copy_text(&w, r->by == YN_LEDGER_BY_MANUAL ? r->operator_id : "");
        *w++ = '\n';
    }
    int rc = copy_in(db, "COPY records FROM STDIN", buf, (size_t)(w - buf)); /* every column */
    free(buf);
    return rc;
}

static int pg_stage_cards(yn_db *db, const yn_card_facts *c, size_t n, int64_t v)
{
    char *buf = malloc(n * (2 * 19 + 6 * 21 + 2 * 23 + 9)), *w = buf;
    if (!buf)
        return YN_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        copy_text(&w, c[i].card_no);
        w += sprintf(w, "\t%d\t%u\t%u\t%u\t%d\t%lld\t", (int)c[i].birth_ymd, c[i].flags,
                     c[i].district, c[i].street, (int)c[i].expiry_ymd, (long long)(v + (int64_t)i));
        copy_text(&w, c[i].ident);
        *w++ = '\n';
    }
    int rc = copy_in(db, "COPY cards_in FROM STDIN", buf, (size_t)(w - buf));
    free(buf);
    return rc;
}

static int pg_size(yn_db *db, int64_t *bytes)
{
    return yn_db_int_of(db, "SELECT pg_database_size(current_database())", NULL, 0, bytes);
}

static uint64_t be(const uint8_t *b, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | b[i];
    return v;
}

static int64_t pg_int(const yn_db_row *row, int col)
{
    const struct pg_row *pr = row->impl;
    if (PQgetisnull(pr->res, 0, col))
        return 0;
    const uint8_t *v = (const uint8_t *)PQgetvalue(pr->res, 0, col);
    switch (PQftype(pr->res, col)) {
    case INT8OID:
        return (int64_t)be(v, 8);
    case INT4OID:
        return (int32_t)(uint32_t)be(v, 4);
    case INT2OID:
        return (int16_t)(uint16_t)be(v, 2);
    case BOOLOID:
        return v[0] != 0;
    default: /* text holding a number */
        return strtoll((const char *)v, NULL, 10);
    }
}

static const char *pg_text(const yn_db_row *row, int col)
{
    const struct pg_row *pr = row->impl;
    return PQgetisnull(pr->res, 0, col) ? "" : PQgetvalue(pr->res, 0, col); /* NUL-ended */
}

static const uint8_t *pg_blob(const yn_db_row *row, int col, size_t *len)
{
    const struct pg_row *pr = row->impl;
    if (PQgetisnull(pr->res, 0, col)) {
        *len = 0;
        return NULL;
    }
    *len = (size_t)PQgetlength(pr->res, 0, col);
    return (const uint8_t *)PQgetvalue(pr->res, 0, col);
}

const struct yn_db_ops yn_db_pg_ops = {
    .name = "postgresql",
    .open = pg_open,
    .create_schema = create_schema,
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .prepare = pg_prepare,
    .run = pg_run,
    .put_records = pg_put_records,
    .stage_cards = pg_stage_cards,
    .size = pg_size,
    .col_int = pg_int,
    .col_text = pg_text,
    .col_blob = pg_blob,
    .lock_terminal_sql = "SELECT last_seq, last_hash FROM terminals WHERE id = $1 FOR UPDATE",
};
