/* db.h — the district server's storage: one small interface, two backends —
 * an SQLite file (the embedded default) and PostgreSQL through libpq, for a
 * district that outgrows one file. The server's modules write their SQL once,
 * with $1..$n parameters, in the subset both understand; the schema, the
 * transactions, the terminal row lock and the bulk insert of records are the
 * backends' own (db_sqlite.c, db_pg.c).
 *
 * Every SQLite and libpq return is checked and mapped once, here:
 *   YN_OK;
 *   YN_EBUSY      a lock not obtained within the busy budget, or the database
 *                 not reachable: the caller answers 503 and the client retries;
 *   YN_EDUPLICATE a unique key taken;
 *   YN_ENOSPC, YN_ENOMEM, YN_EROFS, YN_ECORRUPT as their names say;
 *   YN_EIO        anything else (yn_db_errmsg says what).
 * A failed statement inside a transaction leaves it to be rolled back; the
 * caller always ends a transaction with yn_db_commit or yn_db_rollback.
 *
 * A handle belongs to one thread at a time; the server keeps one per worker
 * thread. With SQLite, writers of one process are serialised by a mutex
 * taken in yn_db_begin (fair, no polling), then BEGIN IMMEDIATE waits for
 * other processes (the admin command line) within the same budget. */
#ifndef YN_DB_H
#define YN_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "rules.h"
#include "status.h"

typedef struct yn_db yn_db;

enum yn_db_backend { YN_DB_SQLITE, YN_DB_POSTGRESQL };

/* A statement parameter. */
typedef struct yn_db_val {
    enum yn_db_type { YN_DB_INT, YN_DB_TEXT, YN_DB_BLOB } type;
    int64_t i;     /* YN_DB_INT */
    const void *p; /* YN_DB_TEXT: NUL-terminated; YN_DB_BLOB: len bytes */
    size_t len;    /* YN_DB_BLOB */
} yn_db_val;

#define DB_INT(v)     ((yn_db_val){.type = YN_DB_INT, .i = (int64_t)(v)})
#define DB_TEXT(s)    ((yn_db_val){.type = YN_DB_TEXT, .p = (s)})
#define DB_BLOB(b, n) ((yn_db_val){.type = YN_DB_BLOB, .p = (b), .len = (n)})

/* The current row of a query, valid during the callback only. NULL reads as
 * 0, "" or an empty blob. */
typedef struct yn_db_row yn_db_row;
int64_t yn_db_int(const yn_db_row *row, int col);
const char *yn_db_text(const yn_db_row *row, int col);
const uint8_t *yn_db_blob(const yn_db_row *row, int col, size_t *len);

/* Called for each row; anything but YN_OK stops the query and is returned. */
typedef int (*yn_db_each)(void *arg, const yn_db_row *row);

typedef struct yn_db_opts {
    int busy_ms;   /* longest wait for a lock (or a connection); 0 = 2000 */
    bool readonly; /* reports and checks: never write (and never migrate) */
} yn_db_opts;

/* Open `where`: a PostgreSQL URI (postgresql://… or postgres://…) or
 * key=value conninfo ("host=/run/pg dbname=district"), else an SQLite file.
 * Creates or upgrades the schema (one transaction) unless readonly. On error
 * *out is NULL and err says what. */
int yn_db_open(const char *where, const yn_db_opts *opts, yn_db **out, char *err,
               size_t errlen) YN_MUST_CHECK;
void yn_db_close(yn_db *db);
/* Whether `where` names a PostgreSQL database (the rule of yn_db_open). */
bool yn_db_is_postgresql(const char *where);
enum yn_db_backend yn_db_backend_of(const yn_db *db);
/* The last error, with the backend's own words. */
const char *yn_db_errmsg(const yn_db *db);

int yn_db_begin(yn_db *db, bool write) YN_MUST_CHECK;
int yn_db_commit(yn_db *db) YN_MUST_CHECK;
void yn_db_rollback(yn_db *db);

/* Run one statement with n parameters; each (may be NULL) sees every row. */
int yn_db_run(yn_db *db, const char *sql, const yn_db_val *args, int n, yn_db_each each,
              void *arg) YN_MUST_CHECK;
/* The same with the parameters inline: YN_DB_RUN(db, sql, each, arg, DB_INT(1), …). */
#define YN_DB_RUN(db, sql, each, arg, ...)                                                         \
    yn_db_run((db), (sql), (const yn_db_val[]){__VA_ARGS__},                                       \
              (int)(sizeof((const yn_db_val[]){__VA_ARGS__}) / sizeof(yn_db_val)), (each), (arg))
/* One integer from the first row (0 when no row); YN_ENOTFOUND when no row. */
int yn_db_int_of(yn_db *db, const char *sql, const yn_db_val *args, int n,
                 int64_t *out) YN_MUST_CHECK;

/* Inside a write transaction: lock the terminal's row until commit and read
 * what is held (PROTOCOL.md §3.4). YN_ENOTFOUND when the terminal is unknown. */
int yn_db_terminal_lock(yn_db *db, const char *terminal, int64_t *held_seq,
                        uint8_t held_hash[YN_LEDGER_HASH_LEN]) YN_MUST_CHECK;
/* Inside a write transaction: insert records (and their layers), all of one
 * terminal, none of them held yet. */
int yn_db_put_records(yn_db *db, const yn_ledger_record *recs, size_t n) YN_MUST_CHECK;

/* Inside a write transaction: put n roster cards into the temporary table
 * cards_in (made by the caller), card i with roster version first_version + i. */
int yn_db_stage_cards(yn_db *db, const yn_card_facts *cards, size_t n,
                      int64_t first_version) YN_MUST_CHECK;

/* The columns of a records row, in this order, that yn_db_record_of reads
 * back (the layers are kept inline, src1/fen1 … src4/fen4, NULL when absent). */
#define YN_DB_RECORD_COLUMNS                                                                       \
    "terminal, seq, kind, card_no, category, period, local_ymd, price_fen, subsidy_fen,"           \
    " wallet_fen, cash_fen, utc_s, clock_trusted, reverses_seq, ref, src1, fen1, src2, fen2,"      \
    " src3, fen3, src4, fen4, identified, ident, supervisor, served_by"
/* Every column of a records row (the quarantine table has them and why). */
#define YN_DB_RECORD_ROW YN_DB_RECORD_COLUMNS ", hash"
/* A record as kept (a row of YN_DB_RECORD_COLUMNS from column col); the
 * fields a row does not keep are 0 (the operator is kept for a manual entry
 * only, whose rules need both staff ids). Strings too long for their field are cut
 * to one byte over their rule's limit (so still refused by the rules). */
void yn_db_record_of(const yn_db_row *row, int col, yn_ledger_record *r);

/* Inside a write transaction: take n numbers of the counter key (meta):
 * *first is the first of them. */
int yn_db_counter_take(yn_db *db, const char *key, int64_t n, int64_t *first) YN_MUST_CHECK;
/* Inside a write transaction: the next blacklist change, of a card number or
 * (card_no "") an identity-only card's identifier; *seq is its number. */
int yn_db_blacklist_put(yn_db *db, const char *card_no, const char *ident, bool lost,
                        int64_t *seq) YN_MUST_CHECK;

/* The columns of a cards row, in this order, that yn_db_card_of reads back. */
#define YN_DB_CARD_COLUMNS "card_no, birth_ymd, flags, district, street, expiry_ymd, ident"
/* A roster card as kept (a row of YN_DB_CARD_COLUMNS from column 0): true,
 * or false with *f saying which string is too long for its field. */
bool yn_db_card_of(const yn_db_row *row, yn_card_facts *c, yn_rules_fault *f);

/* Bytes the database takes on disk (file + WAL, or pg_database_size). */
int yn_db_size(yn_db *db, int64_t *bytes) YN_MUST_CHECK;

#endif
