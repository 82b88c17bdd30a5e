/* db_private.h — what db.c shares with the two storage backends: the ops
 * table each backend fills (as libnfc's driver struct) and the handle. */
#ifndef YN_DB_PRIVATE_H
#define YN_DB_PRIVATE_H

#include "db.h"

struct yn_db_row {
    const struct yn_db_ops *ops;
    void *impl; /* the backend's row: an sqlite3_stmt, a PGresult */
};

struct yn_db_ops {
    const char *name; /* "sqlite", "postgresql" */
    int (*open)(yn_db *db, const char *where);
    /* inside a write transaction: create the schema (version 0), or bring it
     * from version to YN_DB_SCHEMA */
    int (*create_schema)(yn_db *db, int64_t version);
    void (*close)(yn_db *db);
    int (*begin)(yn_db *db, bool write);
    int (*commit)(yn_db *db);
    void (*rollback)(yn_db *db);
    /* prepare sql as cache slot (the first time it is run; args give the types) */
    int (*prepare)(yn_db *db, int slot, const char *sql, const yn_db_val *args, int n);
    int (*run)(yn_db *db, int slot, const yn_db_val *args, int n, yn_db_each each, void *arg);
    int (*put_records)(yn_db *db, const yn_ledger_record *recs, size_t n);
    int (*stage_cards)(yn_db *db, const yn_card_facts *cards, size_t n, int64_t first_version);
    int (*size)(yn_db *db, int64_t *bytes);
    int64_t (*col_int)(const yn_db_row *row, int col);
    const char *(*col_text)(const yn_db_row *row, int col);
    const uint8_t *(*col_blob)(const yn_db_row *row, int col, size_t *len);
    const char *lock_terminal_sql; /* SELECT last_seq, last_hash … locking the row */
};

#define YN_DB_CACHE_MAX  96 /* distinct statements one handle prepares */
#define YN_DB_PARAMS_MAX 32 /* parameters of one statement */

struct yn_db {
    const struct yn_db_ops *ops;
    void *impl;      /* the backend's connection state */
    yn_db_opts opts; /* busy_ms filled in */
    /* prepared statements, by the address of the caller's static SQL text;
     * the backend keeps its own handle for slot i at index i */
    const char *cached[YN_DB_CACHE_MAX];
    int n_cached;
    char errmsg[256]; /* last error, for the log */
};

/* Set db->errmsg (printf-style) and return status. */
int yn_db_fail(yn_db *db, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

extern const struct yn_db_ops yn_db_sqlite_ops;
#if WITH_POSTGRESQL
extern const struct yn_db_ops yn_db_pg_ops;
#endif

/* The schema version this server writes (meta key "schema_version"). 3: how
 * the holder of each record was identified, roster bindings, the blacklist
 * by identifier (firmware/core/CARD.md §8). 4: a terminal's key type, a shared
 * key or a key pair's public point (sync/PROTOCOL.md §10). */
#define YN_DB_SCHEMA 4

#endif
