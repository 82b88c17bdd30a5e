/* ledger_schema.c — the ledger's schema and its versioned migrations (each
 * backed up before it runs), the prepared statements, open and close.
 * firmware/ledger/LEDGER.md, "Schema". */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "ledger_int.h"
#include "log.h"

/* ---- schema --------------------------------------------------------------- */

/* The journal without tap_id's UNIQUE constraint (v3 on), as table name with
 * kinds 1..kind_max. Both rebuilds (v3, v5) use it: the text of a shipped
 * step is exactly what it was. */
#define JOURNAL_TABLE(name, kind_max)                                                              \
    "CREATE TABLE " name "("                                                                       \
    " seq INTEGER PRIMARY KEY,"                                                                    \
    " terminal TEXT NOT NULL,"                                                                     \
    " tap_id INTEGER,"                                                                             \
    " card_no TEXT NOT NULL,"                                                                      \
    " kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND " kind_max "),"                              \
    " category TEXT, period TEXT,"                                                                 \
    " local_ymd INTEGER NOT NULL,"                                                                 \
    " price_fen INTEGER NOT NULL, subsidy_fen INTEGER NOT NULL,"                                   \
    " wallet_fen INTEGER NOT NULL, cash_fen INTEGER NOT NULL,"                                     \
    " src1 TEXT, fen1 INTEGER, src2 TEXT, fen2 INTEGER,"                                           \
    " src3 TEXT, fen3 INTEGER, src4 TEXT, fen4 INTEGER,"                                           \
    " weight_g INTEGER NOT NULL, per100g_fen INTEGER NOT NULL,"                                    \
    " reason TEXT, operator TEXT,"                                                                 \
    " utc_s INTEGER NOT NULL, mono_ms INTEGER NOT NULL, boot_no INTEGER NOT NULL,"                 \
    " clock_trusted INTEGER NOT NULL,"                                                             \
    " reverses_seq INTEGER REFERENCES journal(seq),"                                               \
    " ref TEXT, policy_version INTEGER NOT NULL,"                                                  \
    " wallet_after_fen INTEGER NOT NULL, card_prev_seq INTEGER NOT NULL,"                          \
    " prev_hash BLOB NOT NULL, hash BLOB NOT NULL,"                                                \
    " CHECK (price_fen = subsidy_fen + wallet_fen + cash_fen));"

/* The journal is append-only. */
#define JOURNAL_TRIGGERS                                                                           \
    "CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal"                                    \
    " BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;"                                   \
    "CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal"                                    \
    " BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;"

/* Each step takes the schema from version i to i + 1, inside one transaction.
 * Never edit a shipped step: add a new one. */
static const char *const migrations[SCHEMA_LATEST] = {
    /* v1: the journal, wallets and usage, what the district sends. */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;"
    "CREATE TABLE journal("
    " seq INTEGER PRIMARY KEY,"
    " terminal TEXT NOT NULL,"
    " tap_id INTEGER UNIQUE,"
    " card_no TEXT NOT NULL,"
    " kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 4),"
    " category TEXT, period TEXT,"
    " local_ymd INTEGER NOT NULL,"
    " price_fen INTEGER NOT NULL, subsidy_fen INTEGER NOT NULL,"
    " wallet_fen INTEGER NOT NULL, cash_fen INTEGER NOT NULL,"
    " src1 TEXT, fen1 INTEGER, src2 TEXT, fen2 INTEGER,"
    " src3 TEXT, fen3 INTEGER, src4 TEXT, fen4 INTEGER,"
    " weight_g INTEGER NOT NULL, per100g_fen INTEGER NOT NULL,"
    " reason TEXT, operator TEXT,"
    " utc_s INTEGER NOT NULL, mono_ms INTEGER NOT NULL, boot_no INTEGER NOT NULL,"
    " clock_trusted INTEGER NOT NULL,"
    " reverses_seq INTEGER REFERENCES journal(seq),"
    " ref TEXT, policy_version INTEGER NOT NULL,"
    " wallet_after_fen INTEGER NOT NULL, card_prev_seq INTEGER NOT NULL,"
    " prev_hash BLOB NOT NULL, hash BLOB NOT NULL,"
    " CHECK (price_fen = subsidy_fen + wallet_fen + cash_fen));"
    "CREATE UNIQUE INDEX journal_reverses ON journal(reverses_seq)"
    " WHERE reverses_seq IS NOT NULL;" JOURNAL_TRIGGERS
    /* one row per card this terminal knows: a debit reads one page and writes
     * that same page (LEDGER.md, "Why one cards table") */
    "CREATE TABLE cards("
    " card_no TEXT PRIMARY KEY,"
    /* the roster: the district's facts, NULL when the card is not on it */
    " roster_version INTEGER, birth_ymd INTEGER, flags INTEGER, district INTEGER,"
    " street INTEGER, expiry_ymd INTEGER,"
    /* the blacklist: NULL when never listed */
    " bl_seq INTEGER, lost INTEGER NOT NULL DEFAULT 0,"
    /* wallet, last meal and usage counters, in step with the journal */
    " balance_fen INTEGER NOT NULL DEFAULT 0, last_seq INTEGER NOT NULL DEFAULT 0,"
    " meal_seq INTEGER NOT NULL DEFAULT 0, meal_utc_s INTEGER NOT NULL DEFAULT 0,"
    " meal_mono_ms INTEGER NOT NULL DEFAULT 0, meal_boot INTEGER NOT NULL DEFAULT 0,"
    " month_ym INTEGER NOT NULL DEFAULT 0, month_meals INTEGER NOT NULL DEFAULT 0,"
    " month_subsidy_fen INTEGER NOT NULL DEFAULT 0,"
    " day_ymd INTEGER NOT NULL DEFAULT 0, day_meals INTEGER NOT NULL DEFAULT 0,"
    " period TEXT NOT NULL DEFAULT '', period_meals INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE VIEW roster AS SELECT card_no, birth_ymd, flags, district, street, expiry_ymd,"
    " roster_version AS version FROM cards WHERE roster_version IS NOT NULL;"
    "CREATE VIEW blacklist AS SELECT card_no, bl_seq AS seq, lost FROM cards"
    " WHERE bl_seq IS NOT NULL;"
    "CREATE VIEW wallets AS SELECT card_no, balance_fen, last_seq, month_ym, month_meals,"
    " month_subsidy_fen FROM cards WHERE last_seq > 0;"
    "CREATE TABLE policies("
    " id TEXT NOT NULL, version INTEGER NOT NULL, json TEXT NOT NULL,"
    " active INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (id, version)) WITHOUT ROWID;"
    "CREATE UNIQUE INDEX policies_active ON policies(active) WHERE active = 1;"
    "CREATE TABLE allocations("
    " id TEXT PRIMARY KEY, seq INTEGER NOT NULL UNIQUE REFERENCES journal(seq)) WITHOUT ROWID;",

    /* v2: sync batches, and the day index that settles a day without a scan
     * (filled from the journal for ledgers made at v1). */
    "CREATE TABLE batches("
    " id INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL, last_seq INTEGER NOT NULL,"
    " created_utc_s INTEGER NOT NULL, acked_utc_s INTEGER,"
    " CHECK (first_seq <= last_seq));"
    "CREATE TABLE day_runs(first_seq INTEGER PRIMARY KEY, local_ymd INTEGER NOT NULL);"
    "CREATE INDEX day_runs_ymd ON day_runs(local_ymd);"
    "INSERT INTO day_runs(first_seq, local_ymd)"
    " SELECT j.seq, j.local_ymd FROM journal j LEFT JOIN journal p ON p.seq = j.seq - 1"
    " WHERE p.seq IS NULL OR p.local_ymd != j.local_ymd;",

    /* v3: no index on tap_id (it cost a third page written per debit). The
     * terminal issues increasing tap ids; a card's row keeps the tap id of its
     * last meal or top-up, which is what a replay is checked against
     * (LEDGER.md, "Tap ids"). A UNIQUE column constraint cannot be dropped, so
     * the journal is rebuilt (SQLite's 12-step ALTER TABLE; foreign keys are
     * off during migrations), with the same columns, index and triggers. The
     * two meta keys say what the ledger held before ids had to increase. */
    JOURNAL_TABLE(
        "journal_v3",
        "4") "INSERT INTO journal_v3 SELECT * FROM journal ORDER BY seq;"
             "DROP TABLE journal;"
             "ALTER TABLE journal_v3 RENAME TO journal;"
             "CREATE UNIQUE INDEX journal_reverses ON journal(reverses_seq)"
             " WHERE reverses_seq IS NOT NULL;" JOURNAL_TRIGGERS
             "ALTER TABLE cards ADD COLUMN last_tap INTEGER NOT NULL DEFAULT 0;"
             /* the tap id of each card's newest meal or top-up (bare column of MAX) */
             "UPDATE cards SET last_tap = t.tap FROM (SELECT card_no, tap_id AS tap, MAX(seq)"
             " FROM journal WHERE tap_id IS NOT NULL GROUP BY card_no) AS t"
             " WHERE t.card_no = cards.card_no;"
             "INSERT INTO meta(key, value) SELECT 'tap_id_floor', IFNULL(MAX(tap_id), 0) FROM "
             "journal;"
             "INSERT INTO meta(key, value) SELECT 'tap_ids_increase_after_seq', IFNULL(MAX(seq), 0)"
             " FROM journal;",

    /* v4: the subsidy a card received on its counted day (day_ymd), for the
     * offline cap (LEDGER.md, "Offline cap"); filled from the journal: that
     * day's subsidised meals not reversed, as verify counts them. */
    "ALTER TABLE cards ADD COLUMN day_subsidy_fen INTEGER NOT NULL DEFAULT 0;"
    "UPDATE cards SET day_subsidy_fen = IFNULL((SELECT SUM(j.subsidy_fen) FROM journal j"
    " WHERE j.card_no = cards.card_no AND j.kind = 1 AND j.subsidy_fen > 0"
    " AND j.local_ymd = cards.day_ymd AND j.seq NOT IN (SELECT reverses_seq FROM journal"
    " WHERE reverses_seq IS NOT NULL)), 0) WHERE day_ymd != 0;",

    /* v5: the ledger commits before the card's stamp is written (LEDGER.md,
     * "Card stamps"). Kind 5, a notice without money that a meal's stamp is
     * missing, names its meal in reverses_seq: the journal is rebuilt for the
     * wider kind CHECK (as in v3), the reversal index covers reversals only
     * and a second partial index allows one notice per meal. cards.stamp_seq
     * is the meal a card's stamp should name: its newest subsidised meal,
     * unless reversed since; filled in one grouped pass. */
    JOURNAL_TABLE(
        "journal_v5",
        "5") "INSERT INTO journal_v5 SELECT * FROM journal ORDER BY seq;"
             "DROP TABLE journal;"
             "ALTER TABLE journal_v5 RENAME TO journal;"
             "CREATE UNIQUE INDEX journal_reverses ON journal(reverses_seq) WHERE kind = 2;"
             "CREATE UNIQUE INDEX journal_stamp_missing ON journal(reverses_seq) WHERE kind = "
             "5;" JOURNAL_TRIGGERS
             "ALTER TABLE cards ADD COLUMN stamp_seq INTEGER NOT NULL DEFAULT 0;"
             "UPDATE cards SET stamp_seq = t.s FROM (SELECT card_no, MAX(seq) AS s FROM journal"
             " WHERE kind = 1 AND subsidy_fen > 0 GROUP BY card_no) AS t"
             " WHERE t.card_no = cards.card_no;"
             "UPDATE cards SET stamp_seq = 0 WHERE stamp_seq IN (SELECT reverses_seq FROM journal"
             " WHERE kind = 2);",

    /* v6: how the holder of a meal was identified (LEDGER.md, "How the holder
     * was identified"): by the 颐年卡 (1, every record before), an
     * identity-only card bound in the roster (2, its identifier) or manual
     * entry (3, the supervisor who authorised). Added columns, no rebuild:
     * old rows read as identified by the card, and hash as before. The
     * roster binds identifiers to cards (one each way), the blacklist may name
     * an identifier, and 忘带卡 looks roster cards up by birth date. */
    "ALTER TABLE journal ADD COLUMN identified INTEGER NOT NULL DEFAULT 1"
    " CHECK (identified BETWEEN 1 AND 3);"
    "ALTER TABLE journal ADD COLUMN ident TEXT;"
    "ALTER TABLE journal ADD COLUMN supervisor TEXT;"
    "ALTER TABLE cards ADD COLUMN ident TEXT;"
    "CREATE UNIQUE INDEX cards_ident ON cards(ident) WHERE ident IS NOT NULL;"
    "CREATE INDEX cards_birth ON cards(birth_ymd) WHERE roster_version IS NOT NULL;"
    "CREATE TABLE ident_blacklist(ident TEXT PRIMARY KEY, bl_seq INTEGER NOT NULL,"
    " lost INTEGER NOT NULL) WITHOUT ROWID;"
    "DROP VIEW roster;"
    "CREATE VIEW roster AS SELECT card_no, birth_ymd, flags, district, street, expiry_ymd,"
    " roster_version AS version, ident FROM cards WHERE roster_version IS NOT NULL;",
};

const char *const yn_lg_stmt_sql[ST_COUNT] = {
    [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_BY_SEQ] = "SELECT " JOURNAL_COLS " FROM journal WHERE seq = ?1",
    [ST_BY_REVERSES] = "SELECT " JOURNAL_COLS " FROM journal WHERE reverses_seq = ?1 AND kind = 2",
    [ST_NOTICE_OF] = "SELECT " JOURNAL_COLS " FROM journal WHERE reverses_seq = ?1 AND kind = 5",
    [ST_HEAD] = "SELECT seq, hash, local_ymd FROM journal ORDER BY seq DESC LIMIT 1",
    /* the newest tap id after seq ?1: a backward walk from the head that stops
     * at the first record with a tap id (tap ids increase with seq) */
    [ST_TAP_NEWEST] = "SELECT tap_id FROM journal WHERE seq > ?1 AND tap_id IS NOT NULL"
                      " ORDER BY seq DESC LIMIT 1",
    [ST_INSERT] = "INSERT INTO journal(" JOURNAL_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
                  " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23,"
                  " ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36, ?37, ?38)",
    [ST_DAY_RUN] = "INSERT INTO day_runs(first_seq, local_ymd) VALUES (?1, ?2)",
    /* everything a debit needs to know about a card, in one statement */
    [ST_CARD] = "SELECT " STATE_COLS ", 1, lost, roster_version IS NOT NULL, birth_ymd, flags,"
                " district, street, expiry_ymd, ident FROM cards WHERE card_no = ?1",
    [ST_STATE_GET] = "SELECT " STATE_COLS ", 1 FROM cards WHERE card_no = ?1",
    [ST_STATE_INSERT] =
        "INSERT INTO cards(card_no, " STATE_COLS ")"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    /* in place: a same-size row is overwritten on its page, no rebalancing */
    [ST_STATE_UPDATE] = "UPDATE cards SET balance_fen = ?2, last_seq = ?3, meal_seq = ?4,"
                        " meal_utc_s = ?5, meal_mono_ms = ?6, meal_boot = ?7, month_ym = ?8,"
                        " month_meals = ?9, month_subsidy_fen = ?10, day_ymd = ?11,"
                        " day_meals = ?12, period = ?13, period_meals = ?14, last_tap = ?15,"
                        " day_subsidy_fen = ?16, stamp_seq = ?17"
                        " WHERE card_no = ?1",
    [ST_ALLOC_GET] = "SELECT seq FROM allocations WHERE id = ?1",
    [ST_ALLOC_PUT] = "INSERT INTO allocations(id, seq) VALUES (?1, ?2)",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_PUT] = "INSERT INTO meta(key, value) VALUES (?1, ?2)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [ST_ROSTER_PUT] = "INSERT INTO cards(card_no, birth_ymd, flags, district, street, expiry_ymd,"
                      " roster_version, ident) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                      " ON CONFLICT(card_no) DO UPDATE SET birth_ymd = excluded.birth_ymd,"
                      " flags = excluded.flags, district = excluded.district,"
                      " street = excluded.street, expiry_ymd = excluded.expiry_ymd,"
                      " roster_version = excluded.roster_version, ident = excluded.ident",
    /* an identifier bound again to another card leaves the card it was bound to */
    [ST_IDENT_UNBIND] = "UPDATE cards SET ident = NULL WHERE ident = ?1 AND card_no != ?2",
    [ST_BLACKLIST_PUT] = "INSERT INTO cards(card_no, bl_seq, lost) VALUES (?1, ?2, ?3)"
                         " ON CONFLICT(card_no) DO UPDATE SET bl_seq = excluded.bl_seq,"
                         " lost = excluded.lost",
    [ST_IDENT_BL_PUT] = "INSERT INTO ident_blacklist(ident, bl_seq, lost) VALUES (?1, ?2, ?3)"
                        " ON CONFLICT(ident) DO UPDATE SET bl_seq = excluded.bl_seq,"
                        " lost = excluded.lost",
    [ST_IDENT_GET] = "SELECT (SELECT card_no FROM cards WHERE ident = ?1),"
                     " (SELECT lost FROM ident_blacklist WHERE ident = ?1)",
    /* by the birth-date index; the card number's tail compared on those few */
    [ST_ROSTER_FIND] = "SELECT card_no, birth_ymd, flags, district, street, expiry_ymd, ident"
                       " FROM cards WHERE birth_ymd = ?1 AND roster_version IS NOT NULL"
                       " AND length(card_no) >= length(?2) AND substr(card_no, -length(?2)) = ?2"
                       " ORDER BY card_no LIMIT ?3",
    /* the day's records: from the day's first run on (day_runs), a range of seq */
    [ST_MANUAL_COUNT] = "SELECT COUNT(*) FROM journal WHERE seq >= IFNULL((SELECT MIN(first_seq)"
                        " FROM day_runs WHERE local_ymd = ?1), 9223372036854775807)"
                        " AND local_ymd = ?1 AND kind = 1 AND identified = 3",
};

/* ---- open, migrate, close ------------------------------------------------------------ */

int yn_ledger_schema_version(void)
{
    return SCHEMA_LATEST;
}

static int pragma_int(sqlite3 *db, const char *sql, int64_t *v)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(s);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* SQLite online backup of src into dst_path. standalone: dst_path is a new
 * file, written as dst_path.new (journal mode DELETE: no -wal or -shm beside
 * it), synced, renamed into place and its folder synced; otherwise dst_path
 * is a live ledger, overwritten in one of its transactions. Returns an sqlite
 * code; msg gets the sqlite message of a failure. */
static int backup_into(sqlite3 *src, const char *dst_path, bool standalone, char *msg,
                       size_t msglen)
{
    char tmp[PATH_MAX + 8], journal[PATH_MAX + 16];
    msg[0] = '\0';
    if (snprintf(tmp, sizeof tmp, "%s%s", dst_path, standalone ? ".new" : "") >= (int)sizeof tmp)
        return SQLITE_CANTOPEN;
    snprintf(journal, sizeof journal, "%s-journal", tmp);
    if (standalone) {
        (void)unlink(tmp);
        (void)unlink(journal);
    }
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(tmp, &dst,
                             SQLITE_OPEN_READWRITE | (standalone ? SQLITE_OPEN_CREATE : 0), NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(dst, 5000);
    if (rc == SQLITE_OK) {
        sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
        if (!b) {
            rc = sqlite3_errcode(dst);
        } else {
            rc = sqlite3_backup_step(b, -1);
            int frc = sqlite3_backup_finish(b);
            rc = rc == SQLITE_DONE ? frc : rc;
        }
    }
    if (rc == SQLITE_OK && standalone)
        rc = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        snprintf(msg, msglen, "%s", dst ? sqlite3_errmsg(dst) : sqlite3_errstr(rc));
    if (sqlite3_close(dst) != SQLITE_OK && rc == SQLITE_OK)
        rc = SQLITE_IOERR;
    if (rc == SQLITE_OK && standalone &&
        (yn_file_sync_path(tmp) != YN_OK || yn_file_rename(tmp, dst_path) != YN_OK))
        rc = SQLITE_IOERR;
    if (rc != SQLITE_OK && standalone)
        (void)unlink(tmp);
    return rc;
}

/* Copy the ledger as it is to path.v<version>.bak (atomically). */
static int backup_before_migration(yn_ledger *l, int64_t version)
{
    char bak[PATH_MAX], msg[256];
    if (snprintf(bak, sizeof bak, "%s.v%" PRId64 ".bak", l->path, version) >= (int)sizeof bak)
        return SQLITE_CANTOPEN;
    int rc = backup_into(l->db, bak, true, msg, sizeof msg);
    if (rc != SQLITE_OK) {
        yn_err("ledger %s: backup to %s before the schema upgrade failed (sqlite %d: %s): the "
               "upgrade is not run; free space next to the ledger and restart",
               l->path, bak, rc, msg);
        return rc;
    }
    yn_info("ledger %s: backed up to %s before the schema upgrade from v%" PRId64, l->path, bak,
            version);
    return SQLITE_OK;
}

/* A ledger file by name, for the tools (no yn_ledger: nothing migrated). */
static int open_file(const char *path, sqlite3 **db)
{
    int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(*db, 5000);
    return rc;
}

int yn_ledger_file_schema(const char *path, int *version)
{
    sqlite3 *db = NULL;
    int64_t v = 0;
    int rc = open_file(path, &db);
    if (rc == SQLITE_OK)
        rc = pragma_int(db, "PRAGMA user_version", &v);
    if (rc != SQLITE_OK)
        yn_err("ledger %s: cannot read its schema version: %s", path,
               db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close(db);
    *version = (int)v;
    return rc == SQLITE_OK ? YN_OK : yn_lg_status_of(rc);
}

int yn_ledger_file_copy(const char *from, const char *to, bool standalone)
{
    sqlite3 *src = NULL;
    char msg[256] = "";
    int rc = open_file(from, &src);
    if (rc == SQLITE_OK)
        rc = backup_into(src, to, standalone, msg, sizeof msg);
    else
        snprintf(msg, sizeof msg, "%s", src ? sqlite3_errmsg(src) : sqlite3_errstr(rc));
    sqlite3_close(src);
    if (rc != SQLITE_OK) {
        yn_err("ledger copy %s -> %s failed (sqlite %d: %s)", from, to, rc, msg);
        return yn_lg_status_of(rc);
    }
    return YN_OK;
}

/* Bring the schema to target, all steps in one transaction, after a backup
 * when the ledger already held a schema. Returns a yn_status. */
static int migrate(yn_ledger *l, int target)
{
    int64_t version = 0, objects = 0;
    int rc = pragma_int(l->db, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK)
        rc = pragma_int(l->db, "SELECT COUNT(*) FROM sqlite_schema", &objects);
    if (rc != SQLITE_OK) {
        yn_err("ledger %s: cannot read the schema: %s (sqlite %d): %s", l->path,
               sqlite3_errmsg(l->db), rc, yn_lg_advice_for(yn_lg_status_of(rc)));
        return yn_lg_status_of(rc);
    }
    if (version > SCHEMA_LATEST) {
        yn_err("ledger %s: schema v%" PRId64 " is newer than this firmware's v%d: was the "
               "firmware downgraded? Reinstall the newer firmware or restore a backup",
               l->path, version, SCHEMA_LATEST);
        return YN_ENOTSUP;
    }
    if (version == 0 && objects > 0) {
        yn_err("ledger %s: file holds tables but is not a yinian ledger: check ledger.path",
               l->path);
        return YN_ECORRUPT;
    }
    if (version >= target)
        return YN_OK;
    if (l->read_only) {
        yn_err("ledger %s: schema v%" PRId64 " needs an upgrade to v%d, but it is opened "
               "read-only",
               l->path, version, target);
        return YN_EROFS;
    }
    if (version > 0 && (rc = backup_before_migration(l, version)) != SQLITE_OK)
        return yn_lg_status_of(rc);
    /* Steps may rebuild a table that others refer to (v3: the journal), which
     * SQLite allows only with foreign keys off (a no-op inside a transaction);
     * PRAGMA foreign_key_check proves them intact before the commit. */
    rc = sqlite3_exec(l->db, "PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (int64_t v = version; v < target && rc == SQLITE_OK; v++)
        rc = sqlite3_exec(l->db, migrations[v], NULL, NULL, NULL);
    int64_t dangling = 0;
    if (rc == SQLITE_OK && version > 0 &&
        (rc = pragma_int(l->db, "SELECT COUNT(*) FROM pragma_foreign_key_check", &dangling)) ==
            SQLITE_OK &&
        dangling > 0) {
        yn_err("ledger %s: %" PRId64 " references to missing records after the upgrade", l->path,
               dangling);
        rc = SQLITE_CONSTRAINT_FOREIGNKEY;
    }
    if (rc == SQLITE_OK) {
        char sql[48];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", target);
        rc = sqlite3_exec(l->db, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL);
    char msg[256];
    yn_lg_copy_str(msg, sizeof msg, sqlite3_errmsg(l->db));
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(l->db))
        (void)sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    int fk = sqlite3_exec(l->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (rc == SQLITE_OK && fk != SQLITE_OK) {
        rc = fk;
        yn_lg_copy_str(msg, sizeof msg, sqlite3_errmsg(l->db));
    }
    if (rc != SQLITE_OK) {
        int st = yn_lg_status_of(rc);
        yn_err("ledger %s: schema upgrade v%" PRId64 " -> v%d failed, nothing changed: %s "
               "(sqlite %d: %s): %s",
               l->path, version, target, yn_strerror(st), rc, msg, yn_lg_advice_for(st));
        return st;
    }
    if (version > 0)
        yn_info("ledger %s: schema upgraded v%" PRId64 " -> v%d", l->path, version, target);
    return YN_OK;
}

static void read_boot_id(const yn_ledger_opts *o, char *buf, size_t size)
{
    if (o->boot_id) {
        yn_lg_copy_str(buf, size, o->boot_id);
        return;
    }
    yn_lg_copy_str(buf, size, "unknown");
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (!f)
        return;
    if (fgets(buf, (int)size, f))
        buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

/* Check the terminal id; number this boot (monotonic clocks restart with it). */
static int identify(yn_ledger *l, const yn_ledger_opts *o)
{
    char boot_id[64], stored[64] = "";
    read_boot_id(o, boot_id, sizeof boot_id);
    int rc = yn_lg_tx_begin(l, !l->read_only);
    sqlite3_stmt *s = l->st[ST_META_GET];
    sqlite3_bind_text(s, 1, "terminal_id", -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
        yn_lg_col_text(s, 0, stored, sizeof stored);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rc = SQLITE_OK;
    if (rc == SQLITE_OK && stored[0] && strcmp(stored, l->terminal) != 0) {
        yn_lg_tx_end(l);
        yn_err("ledger %s belongs to terminal %s, but this terminal is %s: check "
               "terminal.id and ledger.path in board.conf",
               l->path, stored, l->terminal);
        return YN_ECONFIG;
    }
    if (rc == SQLITE_OK && !stored[0] && !l->read_only)
        rc = yn_lg_meta_put_text(l, "terminal_id", l->terminal);
    int64_t boot_no = 0;
    if (rc == SQLITE_OK)
        rc = yn_lg_meta_get_i64(l, "boot_no", &boot_no);
    stored[0] = '\0';
    sqlite3_bind_text(s, 1, "boot_id", -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
        yn_lg_col_text(s, 0, stored, sizeof stored);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rc = SQLITE_OK;
    if (rc == SQLITE_OK && !l->read_only && (boot_no == 0 || strcmp(stored, boot_id) != 0)) {
        boot_no++;
        rc = yn_lg_meta_put_i64(l, "boot_no", boot_no);
        if (rc == SQLITE_OK)
            rc = yn_lg_meta_put_text(l, "boot_id", boot_id);
    }
    if (rc == SQLITE_OK && !l->read_only)
        rc = yn_lg_head_current(l); /* the highest tap id, before the first tap asks */
    if (rc == SQLITE_OK)
        rc = yn_lg_tx_commit(l);
    if (rc != SQLITE_OK) {
        int st = yn_lg_status_of(rc);
        yn_err("ledger %s: cannot read or stamp the terminal identity: %s (sqlite %d: %s): %s",
               l->path, yn_strerror(st), rc, sqlite3_errmsg(l->db), yn_lg_advice_for(st));
        if (!sqlite3_get_autocommit(l->db))
            (void)yn_lg_run(l, ST_ROLLBACK);
        return st;
    }
    l->boot_no = boot_no > 0 ? boot_no : 1;
    return YN_OK;
}

static int configure(yn_ledger *l, const yn_ledger_opts *o)
{
    sqlite3_extended_result_codes(l->db, 1);
    sqlite3_busy_timeout(l->db, o->busy_timeout_ms > 0 ? o->busy_timeout_ms : DEFAULT_BUSY_MS);
    char sql[96];
    snprintf(sql, sizeof sql, "PRAGMA cache_size = -%d",
             o->cache_kib > 0 ? (int)o->cache_kib : CACHE_KIB);
    int rc = sqlite3_exec(l->db,
                          "PRAGMA foreign_keys = ON; PRAGMA trusted_schema = OFF;"
                          " PRAGMA synchronous = FULL;",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(l->db, sql, NULL, NULL, NULL);
    if (rc == SQLITE_OK && !l->read_only) {
        /* a new file: 4 KiB pages; then WAL, kept unless someone changes it */
        rc = sqlite3_exec(l->db,
                          "PRAGMA page_size = 4096; PRAGMA journal_mode = WAL;"
                          " PRAGMA journal_size_limit = 67108864;",
                          NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK && o->max_pages > 0) {
        snprintf(sql, sizeof sql, "PRAGMA max_page_count = %" PRId64, o->max_pages);
        rc = sqlite3_exec(l->db, sql, NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        int st = yn_lg_status_of(rc);
        yn_err("ledger %s: cannot set up the connection: %s (sqlite %d: %s): %s", l->path,
               yn_strerror(st), rc, sqlite3_errmsg(l->db), yn_lg_advice_for(st));
        return st;
    }
    return YN_OK;
}

int yn_ledger_open(const yn_ledger_opts *o, yn_ledger **out)
{
    if (!out)
        return YN_EINVAL;
    *out = NULL;
    if (!o || !o->path || !*o->path || !yn_lg_text_ok(o->terminal_id, YN_LEDGER_ID_MAX, false) ||
        o->min_interval_s < 0 || o->reverse_window_s < 0 || o->schema_target < 0 ||
        o->offline_cap_fen < 0 || o->offline_after_s < 0 || o->schema_target > SCHEMA_LATEST ||
        o->cache_kib < 0)
        return YN_EINVAL;
    /* No allocation statistics: they take a global mutex on every malloc.
     * Only possible before SQLite is first used in the process; tried once. */
    static bool configured;
    if (!configured) {
        configured = true;
        (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    }
    yn_ledger *l = calloc(1, sizeof *l);
    if (!l)
        return YN_ENOMEM;
    l->lock_fd = -1;
    l->path = strdup(o->path);
    l->md_ctx = EVP_MD_CTX_new();
    l->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!l->path || !l->md_ctx || !l->md) {
        yn_ledger_close(l);
        return YN_ENOMEM;
    }
    yn_lg_copy_str(l->terminal, sizeof l->terminal, o->terminal_id);
    l->min_interval_ms = (int64_t)o->min_interval_s * 1000;
    l->reverse_window_s = o->reverse_window_s;
    l->offline_cap_fen = o->offline_cap_fen;
    l->offline_after_s = o->offline_after_s > 0 ? o->offline_after_s : DEFAULT_OFFLINE_AFTER_S;
    l->read_only = o->read_only;

    int st;
    if (o->lock && (st = yn_lg_lock_take(l)) != YN_OK) { /* one daemon per ledger */
        yn_ledger_close(l);
        return st;
    }
    int flags = SQLITE_OPEN_NOMUTEX |
                (o->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(o->path, &l->db, flags, NULL);
    if (rc != SQLITE_OK) {
        st = yn_lg_status_of(rc);
        yn_err("ledger %s: cannot open: %s (sqlite %d: %s): check ledger.path and its directory",
               o->path, yn_strerror(st), rc, l->db ? sqlite3_errmsg(l->db) : "out of memory");
        yn_ledger_close(l);
        return st;
    }
    int target = o->schema_target ? o->schema_target : SCHEMA_LATEST;
    if ((st = configure(l, o)) != YN_OK || (st = migrate(l, target)) != YN_OK) {
        yn_ledger_close(l);
        return st;
    }
    if (target < SCHEMA_LATEST) { /* an old-format ledger for upgrade tests: close only */
        *out = l;
        return YN_OK;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(l->db, yn_lg_stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &l->st[i],
                                NULL);
        if (rc != SQLITE_OK) {
            st = yn_lg_status_of(rc);
            yn_err("ledger %s: cannot prepare a statement: %s (sqlite %d: %s): %s", o->path,
                   yn_strerror(st), rc, sqlite3_errmsg(l->db), yn_lg_advice_for(st));
            yn_ledger_close(l);
            return st;
        }
    }
    if ((st = identify(l, o)) != YN_OK) {
        yn_ledger_close(l);
        return st;
    }
    l->ready = true;
    *out = l;
    return YN_OK;
}

void yn_ledger_close(yn_ledger *l)
{
    if (!l)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(l->st[i]);
    if (l->db && sqlite3_close(l->db) != SQLITE_OK)
        yn_warn("ledger %s: close: %s", l->path ? l->path : "?", sqlite3_errmsg(l->db));
    yn_lg_lock_release(l); /* after SQLite let go of the file */
    EVP_MD_free(l->md);
    EVP_MD_CTX_free(l->md_ctx);
    free(l->path);
    free(l);
}
