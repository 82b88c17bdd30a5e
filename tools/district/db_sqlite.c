/* db_sqlite.c — the SQLite backend of the district storage (db.h): one file
 * in WAL mode, synchronous=FULL (an acknowledged batch survives a power cut),
 * statements prepared once per handle. Writers of this process queue on one
 * mutex (no busy polling among threads); BEGIN IMMEDIATE then waits for
 * other processes within what is left of the busy budget. */
#include "db_private.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "clock.h"
#include "timeutil.h"

/* The schema of version 2, on a new database. */
static const char *const schema[] = {
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE terminals(id TEXT PRIMARY KEY, canteen TEXT NOT NULL, key BLOB NOT NULL,"
    " last_seq INTEGER NOT NULL DEFAULT 0, last_hash BLOB NOT NULL DEFAULT (zeroblob(32)),"
    " update_version INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE tokens(token_hash BLOB PRIMARY KEY, terminal TEXT NOT NULL,"
    " canteen TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0)",
    /* the queryable fields of every record, its layers inline, and its chain hash */
    "CREATE TABLE records(terminal TEXT NOT NULL, seq INTEGER NOT NULL, kind INTEGER NOT NULL,"
    " card_no TEXT NOT NULL, category TEXT NOT NULL, period TEXT NOT NULL,"
    " local_ymd INTEGER NOT NULL, price_fen INTEGER NOT NULL, subsidy_fen INTEGER NOT NULL,"
    " wallet_fen INTEGER NOT NULL, cash_fen INTEGER NOT NULL, utc_s INTEGER NOT NULL,"
    " clock_trusted INTEGER NOT NULL, reverses_seq INTEGER NOT NULL, ref TEXT NOT NULL,"
    " hash BLOB NOT NULL, src1 TEXT, fen1 INTEGER, src2 TEXT, fen2 INTEGER, src3 TEXT,"
    " fen3 INTEGER, src4 TEXT, fen4 INTEGER, PRIMARY KEY(terminal, seq)) WITHOUT ROWID",
    "CREATE TABLE batches(terminal TEXT NOT NULL, batch_id INTEGER NOT NULL,"
    " first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL, received_utc_s INTEGER NOT NULL,"
    " PRIMARY KEY(terminal, batch_id, first_seq))",
    "CREATE TABLE frames(terminal TEXT NOT NULL, last_seq INTEGER NOT NULL,"
    " first_seq INTEGER NOT NULL, frame BLOB NOT NULL, PRIMARY KEY(terminal, last_seq))",
    "CREATE TABLE cards(card_no TEXT PRIMARY KEY, birth_ymd INTEGER NOT NULL,"
    " flags INTEGER NOT NULL, district INTEGER NOT NULL, street INTEGER NOT NULL,"
    " expiry_ymd INTEGER NOT NULL, version INTEGER NOT NULL)",
    "CREATE INDEX cards_version ON cards(version)",
    "CREATE TABLE blacklist(seq INTEGER PRIMARY KEY, card_no TEXT NOT NULL,"
    " lost INTEGER NOT NULL)",
    "CREATE TABLE policies(version INTEGER PRIMARY KEY, json TEXT NOT NULL)",
    "CREATE TABLE allocations(seq INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL,"
    " card_no TEXT NOT NULL, source TEXT NOT NULL, amount_fen INTEGER NOT NULL)",
};

/* A database of version 1 (the first reference server's) is brought to
 * version 2: frames kept (the server with /v1/records added them), each
 * record's layers moved into its row (version 1 did not keep a record's
 * order of sources; they are distinct, so nothing depends on it). */
static const char *const from_v1[] = {
    "CREATE TABLE IF NOT EXISTS frames(terminal TEXT NOT NULL, last_seq INTEGER NOT NULL,"
    " first_seq INTEGER NOT NULL, frame BLOB NOT NULL, PRIMARY KEY(terminal, last_seq))",
    "ALTER TABLE records ADD COLUMN src1 TEXT",
    "ALTER TABLE records ADD COLUMN fen1 INTEGER",
    "ALTER TABLE records ADD COLUMN src2 TEXT",
    "ALTER TABLE records ADD COLUMN fen2 INTEGER",
    "ALTER TABLE records ADD COLUMN src3 TEXT",
    "ALTER TABLE records ADD COLUMN fen3 INTEGER",
    "ALTER TABLE records ADD COLUMN src4 TEXT",
    "ALTER TABLE records ADD COLUMN fen4 INTEGER",
    "UPDATE records SET (src1, fen1) = (SELECT source, fen FROM layers l WHERE"
    " l.terminal = records.terminal AND l.seq = records.seq ORDER BY source LIMIT 1 OFFSET 0),"
    " (src2, fen2) = (SELECT source, fen FROM layers l WHERE l.terminal = records.terminal AND"
    " l.seq = records.seq ORDER BY source LIMIT 1 OFFSET 1), (src3, fen3) = (SELECT source,"
    " fen FROM layers l WHERE l.terminal = records.terminal AND l.seq = records.seq ORDER BY"
    " source LIMIT 1 OFFSET 2), (src4, fen4) = (SELECT source, fen FROM layers l WHERE"
    " l.terminal = records.terminal AND l.seq = records.seq ORDER BY source LIMIT 1 OFFSET 3)",
    "DROP TABLE layers",
};

/* Version 3: how the holder of each record was identified, with the
 * supervisor and (served_by) the operator of a manual entry — '' for every
 * other record, whose operator the district does not keep (the quarantine
 * keeps the same columns), the identifier a roster card is bound to, and the
 * blacklist by identifier (firmware/core/CARD.md §8). Added columns: old rows read
 * as records identified by their card, cards bound to nothing. */
static const char *const v3[] = {
    "ALTER TABLE records ADD COLUMN identified INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE records ADD COLUMN ident TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE records ADD COLUMN supervisor TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE records ADD COLUMN served_by TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE quarantine ADD COLUMN identified INTEGER NOT NULL DEFAULT 1",
    "ALTER TABLE quarantine ADD COLUMN ident TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE quarantine ADD COLUMN supervisor TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE quarantine ADD COLUMN served_by TEXT NOT NULL DEFAULT ''",
    "CREATE INDEX records_ident ON records(ident, local_ymd) WHERE identified = 2",
    "ALTER TABLE cards ADD COLUMN ident TEXT NOT NULL DEFAULT ''",
    "CREATE INDEX cards_ident ON cards(ident) WHERE ident <> ''",
    "ALTER TABLE blacklist ADD COLUMN ident TEXT NOT NULL DEFAULT ''",
    "INSERT INTO meta VALUES ('schema_version', 3) ON CONFLICT(key) DO UPDATE SET value = 3",
};

/* Version 2's additions, on either path. */
static const char *const v2[] = {
    "CREATE TABLE enrolments(terminal TEXT NOT NULL, from_seq INTEGER NOT NULL,"
    " to_seq INTEGER NOT NULL, canteen TEXT NOT NULL, PRIMARY KEY(terminal, from_seq))",
    "CREATE INDEX records_reverses ON records(terminal, reverses_seq) WHERE reverses_seq > 0",
    "CREATE TABLE quarantine AS SELECT *, '' AS why FROM records WHERE 0",
    /* each terminal's history so far at its canteen; counters that number
     * blacklist changes and allocations from now on (never reused) */
    "INSERT INTO enrolments SELECT id, 1, 9223372036854775807, canteen FROM terminals",
    "INSERT INTO meta VALUES ('blacklist_seq', (SELECT COALESCE(MAX(seq), 0) FROM blacklist))"
    " ON CONFLICT(key) DO NOTHING",
    "INSERT INTO meta VALUES ('alloc_seq', (SELECT COALESCE(MAX(seq), 0) FROM allocations))"
    " ON CONFLICT(key) DO NOTHING",
    "INSERT INTO meta VALUES ('schema_version', 2) ON CONFLICT(key) DO UPDATE SET value = 2",
};

/* Version 4: a terminal enrolled with a key pair (PROTOCOL.md §10) keeps its
 * public point in key, and key_type says which (0 a shared key, as every
 * terminal of an older database). */
static const char *const v4[] = {
    "ALTER TABLE terminals ADD COLUMN key_type INTEGER NOT NULL DEFAULT 0",
    "UPDATE meta SET value = 4 WHERE key = 'schema_version'",
};

struct lite {
    sqlite3 *db;
    int busy_ms;          /* the budget of the wait in progress */
    int64_t busy_from_ms; /* when that wait began (monotonic) */
    struct {
        sqlite3_stmt *st;
        int param[YN_DB_PARAMS_MAX]; /* bind index of $1..$n */
    } cache[YN_DB_CACHE_MAX];        /* slot i: db->cached[i] */
    bool holds_mutex;                /* this handle has the process's write turn */
    char path[4096];
};

/* One writer at a time in this process. */
static pthread_mutex_t write_turn = PTHREAD_MUTEX_INITIALIZER;

static int status_of(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return YN_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return YN_EBUSY;
    case SQLITE_CONSTRAINT:
        return rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE ? YN_EDUPLICATE
                                                                                    : YN_EIO;
    case SQLITE_FULL:
        return YN_ENOSPC;
    case SQLITE_NOMEM:
        return YN_ENOMEM;
    case SQLITE_READONLY:
        return YN_EROFS;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return YN_ECORRUPT;
    default:
        return YN_EIO;
    }
}

static int fail_rc(yn_db *db, int rc, const char *what)
{
    struct lite *l = db->impl;
    return yn_db_fail(db, status_of(rc), "%s: %s: %s (sqlite %d)", l->path, what,
                      l->db ? sqlite3_errmsg(l->db) : sqlite3_errstr(rc), rc);
}

static int exec(yn_db *db, const char *sql)
{
    struct lite *l = db->impl;
    int rc = sqlite3_exec(l->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? YN_OK : fail_rc(db, rc, sql);
}

static int create_schema(yn_db *db, int64_t version)
{
    int64_t old = 0; /* a version-1 database has records and no schema_version */
    int rc = yn_db_int_of(db, "SELECT COUNT(*) FROM sqlite_master WHERE name = 'records'", NULL, 0,
                          &old);
    if (version < 2) {
        const char *const *step = old ? from_v1 : schema;
        size_t n = old ? sizeof from_v1 / sizeof from_v1[0] : sizeof schema / sizeof schema[0];
        for (size_t i = 0; rc == YN_OK && i < n; i++)
            rc = exec(db, step[i]);
        for (size_t i = 0; rc == YN_OK && i < sizeof v2 / sizeof v2[0]; i++)
            rc = exec(db, v2[i]);
    }
    for (size_t i = 0; rc == YN_OK && version < 3 && i < sizeof v3 / sizeof v3[0]; i++)
        rc = exec(db, v3[i]);
    for (size_t i = 0; rc == YN_OK && i < sizeof v4 / sizeof v4[0]; i++)
        rc = exec(db, v4[i]);
    return rc;
}

/* SQLite's own busy handler sleeps longer and longer (up to 100 ms): another
 * process that commits short transactions back to back (an import) would
 * take the lock again before the waiter looked. Polling every millisecond
 * catches the gap between two of its transactions. */
static int poll_busy(void *arg, int count)
{
    struct lite *l = arg;
    int64_t now_ms = yn_time_mono_ms();
    if (count == 0)
        l->busy_from_ms = now_ms;
    if (now_ms - l->busy_from_ms >= l->busy_ms)
        return 0;
    yn_time_sleep_ms(1);
    return 1;
}

static void set_busy(struct lite *l, int ms)
{
    l->busy_ms = ms;
}

static int lite_open(yn_db *db, const char *where)
{
    struct lite *l = calloc(1, sizeof *l);
    if (!l)
        return YN_ENOMEM;
    db->impl = l;
    snprintf(l->path, sizeof l->path, "%s", where);
    int rc = sqlite3_open_v2(
        where, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    int st = rc == SQLITE_OK ? YN_OK : fail_rc(db, rc, "open");
    if (st == YN_OK) {
        sqlite3_extended_result_codes(l->db, 1);
        set_busy(l, db->opts.busy_ms);
        sqlite3_busy_handler(l->db, poll_busy, l);
        st = exec(db, "PRAGMA journal_mode = WAL");
    }
    if (st == YN_OK)
        st = exec(db, "PRAGMA synchronous = FULL");
    if (st == YN_OK)
        st = exec(db, "PRAGMA cache_size = -4096"); /* 4 MiB: a handle per worker thread */
    return st;
}

static void lite_close(yn_db *db)
{
    struct lite *l = db->impl;
    if (!l)
        return;
    if (l->holds_mutex)
        pthread_mutex_unlock(&write_turn);
    for (int i = 0; i < db->n_cached; i++)
        sqlite3_finalize(l->cache[i].st);
    sqlite3_close(l->db);
    free(l);
    db->impl = NULL;
}

static void release_turn(struct lite *l)
{
    if (l->holds_mutex) {
        l->holds_mutex = false;
        pthread_mutex_unlock(&write_turn);
    }
}

static int lite_begin(yn_db *db, bool write)
{
    struct lite *l = db->impl;
    if (!write)
        return exec(db, "BEGIN");
    const int64_t start_ms = yn_time_mono_ms();
    struct timespec until = yn_clock_mono_deadline(start_ms + db->opts.busy_ms);
    int e = pthread_mutex_clocklock(&write_turn, CLOCK_MONOTONIC, &until);
    if (e != 0)
        return yn_db_fail(db, e == ETIMEDOUT ? YN_EBUSY : YN_EIO,
                          "%s: no write turn within %d ms (%s)", l->path, db->opts.busy_ms,
                          strerror(e));
    l->holds_mutex = true;
    int64_t left_ms = db->opts.busy_ms - (yn_time_mono_ms() - start_ms);
    set_busy(l, left_ms > 1 ? (int)left_ms : 1);
    int rc = exec(db, "BEGIN IMMEDIATE");
    set_busy(l, db->opts.busy_ms);
    if (rc != YN_OK)
        release_turn(l);
    return rc;
}

static void lite_rollback(yn_db *db)
{
    struct lite *l = db->impl;
    if (!sqlite3_get_autocommit(l->db))
        (void)sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL); /* nothing left to do on error */
    release_turn(l);
}

static int lite_commit(yn_db *db)
{
    struct lite *l = db->impl;
    int rc = exec(db, "COMMIT");
    if (rc != YN_OK)
        lite_rollback(db);
    release_turn(l);
    return rc;
}

/* Prepare sql into slot, with $k -> bind index. */
static int lite_prepare(yn_db *db, int slot, const char *sql, const yn_db_val *args, int n)
{
    (void)args;
    struct lite *l = db->impl;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(l->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    int status = rc == SQLITE_OK ? YN_OK : fail_rc(db, rc, sql);
    if (status == YN_OK && sqlite3_bind_parameter_count(st) != n)
        status = yn_db_fail(db, YN_EIO, "statement takes %d parameters, %d given: %.80s",
                            sqlite3_bind_parameter_count(st), n, sql);
    for (int k = 0; k < n && status == YN_OK; k++) {
        char name[16];
        snprintf(name, sizeof name, "$%d", k + 1);
        l->cache[slot].param[k] = sqlite3_bind_parameter_index(st, name);
        if (!l->cache[slot].param[k])
            status = yn_db_fail(db, YN_EIO, "statement has no parameter %s: %.80s", name, sql);
    }
    if (status != YN_OK) {
        sqlite3_finalize(st);
        return status;
    }
    l->cache[slot].st = st;
    return YN_OK;
}

static int lite_run(yn_db *db, int slot, const yn_db_val *args, int n, yn_db_each each, void *arg)
{
    struct lite *l = db->impl;
    int st = YN_OK;
    sqlite3_stmt *s = l->cache[slot].st;
    int rc = SQLITE_OK;
    for (int k = 0; k < n && rc == SQLITE_OK; k++) {
        int at = l->cache[slot].param[k];
        switch (args[k].type) {
        case YN_DB_INT:
            rc = sqlite3_bind_int64(s, at, args[k].i);
            break;
        case YN_DB_TEXT:
            rc = sqlite3_bind_text(s, at, args[k].p, -1, SQLITE_STATIC);
            break;
        case YN_DB_BLOB:
            rc = sqlite3_bind_blob64(s, at, args[k].p, args[k].len, SQLITE_STATIC);
            break;
        }
    }
    if (rc != SQLITE_OK)
        st = fail_rc(db, rc, "bind");
    struct yn_db_row row = {.ops = &yn_db_sqlite_ops, .impl = s};
    while (st == YN_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
        if (each)
            st = each(arg, &row);
    if (st == YN_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        st = fail_rc(db, rc, sqlite3_sql(s));
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return st;
}

static const char insert_record[] =
    "INSERT INTO records VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14,"
    " $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28)";

/* A layer's source and fen, or NULLs when the record has fewer layers. */
static yn_db_val layer_src(const yn_ledger_record *r, int k)
{
    return k < r->n_layers ? DB_TEXT(r->layers[k].source) : DB_TEXT(NULL);
}

static yn_db_val layer_fen(const yn_ledger_record *r, int k)
{
    return k < r->n_layers ? DB_INT(r->layers[k].fen) : DB_TEXT(NULL);
}

static int lite_put_records(yn_db *db, const yn_ledger_record *recs, size_t n)
{
    int rc = YN_OK;
    for (size_t i = 0; i < n && rc == YN_OK; i++) {
        const yn_ledger_record *r = &recs[i];
        rc = YN_DB_RUN(
            db, insert_record, NULL, NULL, DB_TEXT(r->terminal), DB_INT(r->seq), DB_INT(r->kind),
            DB_TEXT(r->card_no), DB_TEXT(r->category), DB_TEXT(r->period), DB_INT(r->local_ymd),
            DB_INT(r->price_fen), DB_INT(r->subsidy_fen), DB_INT(r->wallet_fen),
            DB_INT(r->cash_fen), DB_INT(r->utc_s), DB_INT(r->clock_trusted),
            DB_INT(r->reverses_seq), DB_TEXT(r->ref), DB_BLOB(r->hash, YN_LEDGER_HASH_LEN),
            layer_src(r, 0), layer_fen(r, 0), layer_src(r, 1), layer_fen(r, 1), layer_src(r, 2),
            layer_fen(r, 2), layer_src(r, 3), layer_fen(r, 3),
            DB_INT(r->by ? r->by : YN_LEDGER_BY_CARD), DB_TEXT(r->ident), DB_TEXT(r->supervisor_id),
            DB_TEXT(r->by == YN_LEDGER_BY_MANUAL ? r->operator_id : ""));
    }
    return rc;
}

static int lite_stage_cards(yn_db *db, const yn_card_facts *c, size_t n, int64_t v)
{
    int rc = YN_OK;
    for (size_t i = 0; i < n && rc == YN_OK; i++)
        rc = YN_DB_RUN(db, "INSERT INTO cards_in VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", NULL,
                       NULL, DB_TEXT(c[i].card_no), DB_INT(c[i].birth_ymd), DB_INT(c[i].flags),
                       DB_INT(c[i].district), DB_INT(c[i].street), DB_INT(c[i].expiry_ymd),
                       DB_INT(v + (int64_t)i), DB_TEXT(c[i].ident));
    return rc;
}

static int lite_size(yn_db *db, int64_t *bytes)
{
    struct lite *l = db->impl;
    *bytes = 0;
    int rc = exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
    char wal[4200];
    snprintf(wal, sizeof wal, "%s-wal", l->path);
    struct stat sb;
    if (rc == YN_OK && stat(l->path, &sb) == 0)
        *bytes += sb.st_size;
    if (rc == YN_OK && stat(wal, &sb) == 0)
        *bytes += sb.st_size;
    return rc;
}

static int64_t lite_int(const yn_db_row *row, int col)
{
    return sqlite3_column_int64(row->impl, col);
}

static const char *lite_text(const yn_db_row *row, int col)
{
    const char *t = (const char *)sqlite3_column_text(row->impl, col);
    return t ? t : "";
}

static const uint8_t *lite_blob(const yn_db_row *row, int col, size_t *len)
{
    const uint8_t *b = sqlite3_column_blob(row->impl, col);
    *len = b ? (size_t)sqlite3_column_bytes(row->impl, col) : 0;
    return b;
}

const struct yn_db_ops yn_db_sqlite_ops = {
    .name = "sqlite",
    .open = lite_open,
    .create_schema = create_schema,
    .close = lite_close,
    .begin = lite_begin,
    .commit = lite_commit,
    .rollback = lite_rollback,
    .prepare = lite_prepare,
    .run = lite_run,
    .put_records = lite_put_records,
    .stage_cards = lite_stage_cards,
    .size = lite_size,
    .col_int = lite_int,
    .col_text = lite_text,
    .col_blob = lite_blob,
    /* BEGIN IMMEDIATE has the whole file: no row lock needed */
    .lock_terminal_sql = "SELECT last_seq, last_hash FROM terminals WHERE id = $1",
};
