/* ledger.c — the durable SQLite ledger: hash-chained append-only journal,
 * wallets and usage counters kept in step in the same transaction, and the
 * tables the district fills (roster, blacklist, policies, allocations).
 *
 * Design notes, schema and the canonical hash encoding: firmware/LEDGER.md.
 * Internal helpers return SQLite result codes; the public functions map them
 * to enum yn_status once, log what failed with the file and the record, and
 * roll back, so nothing half-written remains. */
#include "ledger.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "rules.h"

#define SCHEMA_LATEST           4
#define TZ_OFFSET_S             (8 * 3600) /* Asia/Shanghai, UTC+8, no DST */
#define CACHE_KIB               8192       /* SQLite page cache per handle */
#define WALK_MAX                256        /* records walked for the kiosk's last meals */
#define ENC_MAX                 1024       /* canonical encoding of one record, bytes */
#define CARD_NO_MAX             20         /* as yn_card_facts.card_no, incl. NUL */
#define DEFAULT_BUSY_MS         1000
#define DEFAULT_OFFLINE_AFTER_S (3 * 300) /* 3 x the default sync interval */

/* ---- schema --------------------------------------------------------------- */

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
    " WHERE reverses_seq IS NOT NULL;"
    "CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal"
    " BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;"
    "CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal"
    " BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;"
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
    "CREATE TABLE journal_v3("
    " seq INTEGER PRIMARY KEY,"
    " terminal TEXT NOT NULL,"
    " tap_id INTEGER,"
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
    "INSERT INTO journal_v3 SELECT * FROM journal ORDER BY seq;"
    "DROP TABLE journal;"
    "ALTER TABLE journal_v3 RENAME TO journal;"
    "CREATE UNIQUE INDEX journal_reverses ON journal(reverses_seq)"
    " WHERE reverses_seq IS NOT NULL;"
    "CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal"
    " BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;"
    "CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal"
    " BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END;"
    "ALTER TABLE cards ADD COLUMN last_tap INTEGER NOT NULL DEFAULT 0;"
    /* the tap id of each card's newest meal or top-up (bare column of MAX) */
    "UPDATE cards SET last_tap = t.tap FROM (SELECT card_no, tap_id AS tap, MAX(seq)"
    " FROM journal WHERE tap_id IS NOT NULL GROUP BY card_no) AS t"
    " WHERE t.card_no = cards.card_no;"
    "INSERT INTO meta(key, value) SELECT 'tap_id_floor', IFNULL(MAX(tap_id), 0) FROM journal;"
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
};

#define JOURNAL_COLS                                                                               \
    "seq, terminal, tap_id, card_no, kind, category, period, local_ymd, price_fen, "               \
    "subsidy_fen, wallet_fen, cash_fen, src1, fen1, src2, fen2, src3, fen3, src4, fen4, "          \
    "weight_g, per100g_fen, reason, operator, utc_s, mono_ms, boot_no, clock_trusted, "            \
    "reverses_seq, ref, policy_version, wallet_after_fen, card_prev_seq, prev_hash, hash"
#define JOURNAL_NCOLS 35

#define STATE_COLS                                                                                 \
    "balance_fen, last_seq, meal_seq, meal_utc_s, meal_mono_ms, meal_boot, month_ym, "             \
    "month_meals, month_subsidy_fen, day_ymd, day_meals, period, period_meals, last_tap, "         \
    "day_subsidy_fen"
#define STATE_NCOLS 15

/* Statements prepared once per handle (SQLITE_PREPARE_PERSISTENT). */
enum stmt_id {
    ST_BEGIN_WRITE,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_TAP_NEWEST,
    ST_BY_SEQ,
    ST_BY_REVERSES,
    ST_HEAD,
    ST_INSERT,
    ST_DAY_RUN,
    ST_CARD,
    ST_STATE_GET,
    ST_STATE_INSERT,
    ST_STATE_UPDATE,
    ST_ALLOC_GET,
    ST_ALLOC_PUT,
    ST_META_GET,
    ST_META_PUT,
    ST_ROSTER_PUT,
    ST_BLACKLIST_PUT,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_BY_SEQ] = "SELECT " JOURNAL_COLS " FROM journal WHERE seq = ?1",
    [ST_BY_REVERSES] = "SELECT " JOURNAL_COLS " FROM journal WHERE reverses_seq = ?1",
    [ST_HEAD] = "SELECT seq, hash, local_ymd FROM journal ORDER BY seq DESC LIMIT 1",
    /* the newest tap id after seq ?1: a backward walk from the head that stops
     * at the first record with a tap id (tap ids increase with seq) */
    [ST_TAP_NEWEST] = "SELECT tap_id FROM journal WHERE seq > ?1 AND tap_id IS NOT NULL"
                      " ORDER BY seq DESC LIMIT 1",
    [ST_INSERT] = "INSERT INTO journal(" JOURNAL_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
                  " ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23,"
                  " ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35)",
    [ST_DAY_RUN] = "INSERT INTO day_runs(first_seq, local_ymd) VALUES (?1, ?2)",
    /* everything a debit needs to know about a card, in one statement */
    [ST_CARD] = "SELECT " STATE_COLS ", 1, lost, roster_version IS NOT NULL, birth_ymd, flags,"
                " district, street, expiry_ymd FROM cards WHERE card_no = ?1",
    [ST_STATE_GET] = "SELECT " STATE_COLS ", 1 FROM cards WHERE card_no = ?1",
    [ST_STATE_INSERT] =
        "INSERT INTO cards(card_no, " STATE_COLS ")"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    /* in place: a same-size row is overwritten on its page, no rebalancing */
    [ST_STATE_UPDATE] = "UPDATE cards SET balance_fen = ?2, last_seq = ?3, meal_seq = ?4,"
                        " meal_utc_s = ?5, meal_mono_ms = ?6, meal_boot = ?7, month_ym = ?8,"
                        " month_meals = ?9, month_subsidy_fen = ?10, day_ymd = ?11,"
                        " day_meals = ?12, period = ?13, period_meals = ?14, last_tap = ?15,"
                        " day_subsidy_fen = ?16"
                        " WHERE card_no = ?1",
    [ST_ALLOC_GET] = "SELECT seq FROM allocations WHERE id = ?1",
    [ST_ALLOC_PUT] = "INSERT INTO allocations(id, seq) VALUES (?1, ?2)",
    [ST_META_GET] = "SELECT value FROM meta WHERE key = ?1",
    [ST_META_PUT] = "INSERT INTO meta(key, value) VALUES (?1, ?2)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [ST_ROSTER_PUT] = "INSERT INTO cards(card_no, birth_ymd, flags, district, street, expiry_ymd,"
                      " roster_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                      " ON CONFLICT(card_no) DO UPDATE SET birth_ymd = excluded.birth_ymd,"
                      " flags = excluded.flags, district = excluded.district,"
                      " street = excluded.street, expiry_ymd = excluded.expiry_ymd,"
                      " roster_version = excluded.roster_version",
    [ST_BLACKLIST_PUT] = "INSERT INTO cards(card_no, bl_seq, lost) VALUES (?1, ?2, ?3)"
                         " ON CONFLICT(card_no) DO UPDATE SET bl_seq = excluded.bl_seq,"
                         " lost = excluded.lost",
};

struct yn_ledger {
    sqlite3 *db;
    char *path;                      /* for log lines */
    char terminal[YN_LEDGER_ID_MAX]; /* stamped on every record */
    int64_t min_interval_ms;         /* between two meals of one card; 0 = none */
    int32_t reverse_window_s;        /* 0 = the policy's */
    int64_t offline_cap_fen;         /* subsidy per card per local day while offline; 0 = none */
    int64_t offline_after_s;         /* no sync for this long = offline */
    int64_t boot_no;                 /* this boot's number in the ledger, >= 1 */
    bool read_only;
    bool ready; /* statements prepared (schema is the latest) */
    sqlite3_stmt *st[ST_COUNT];
    EVP_MD_CTX *md_ctx; /* reused for every record hash */
    EVP_MD *md;         /* SHA-256, fetched once */
    /* The journal's last record as this handle last saw it committed. Valid
     * while the file's data version is head_dv: any other commit (another
     * connection, another process, any other operation) changes that version,
     * and head_current() reads the head again. */
    bool head_valid;
    unsigned int head_dv;
    int64_t head_seq;
    int32_t head_ymd;
    uint8_t head_hash[YN_LEDGER_HASH_LEN];
    /* The highest tap id in the journal's records 1..tap_upto (committed,
     * append-only: it stays true). A new tap id must be above it (LEDGER.md,
     * "Tap ids"). When the head moved past tap_upto, only the newer records
     * are looked at. */
    bool tap_known;
    int64_t tap_upto;
    int64_t tap_max;
};

/* The part of a cards row kept in step with the journal (0 = none). */
struct card_state {
    bool exists; /* the card has a row (roster, blacklist or records) */
    int64_t balance_fen;
    int64_t last_seq; /* newest record of the card */
    int64_t meal_seq; /* last meal not reversed, for the minimum interval */
    int64_t meal_utc_s;
    int64_t meal_mono_ms;
    int64_t meal_boot;
    int32_t month_ym; /* key of the month counters (YYYYMM), 0 = none */
    int32_t month_meals;
    int64_t month_subsidy_fen;
    int32_t day_ymd; /* key of the day and period counters */
    int32_t day_meals;
    char period[YN_NAME_MAX]; /* with day_ymd: key of the period counter */
    int32_t period_meals;
    int64_t last_tap;        /* tap id of the card's newest meal or top-up; 0 = none */
    int64_t day_subsidy_fen; /* subsidy received on day_ymd (meals not reversed) */
};

/* ---- small helpers ------------------------------------------------------- */

static void copy_str(char *dst, size_t size, const char *src)
{
    if (!src)
        src = "";
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* A printable id of 1..max-1 bytes without control characters. */
static bool text_ok(const char *s, size_t max, bool optional)
{
    if (!s)
        return optional;
    size_t n = strnlen(s, max);
    if (n == max || (n == 0 && !optional))
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/* Asia/Shanghai civil date of a UTC moment, YYYYMMDD (days-from-civil inverse,
 * H. Hinnant), the same arithmetic as the policy engine. */
static int32_t local_ymd_of(int64_t utc_s)
{
    int64_t t = utc_s + TZ_OFFSET_S;
    int64_t z = (t >= 0 ? t : t - 86399) / 86400 + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t y = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2)
        y++;
    return (int32_t)(y * 10000 + m * 100 + d);
}

static enum yn_reason reason_from_code(const char *code)
{
    if (!code || !*code)
        return YN_REASON_NONE;
    for (int r = 0; r < YN_REASON_COUNT; r++)
        if (strcmp(code, yn_reason_code((enum yn_reason)r)) == 0)
            return (enum yn_reason)r;
    return YN_REASON_COUNT; /* unknown: kept distinct so verify notices */
}

/* Time between an earlier event and now: monotonic when both are of this
 * boot, else the wall clock. false when it cannot be told (clock went back). */
static bool elapsed_ms(const yn_ledger *l, int64_t then_boot, int64_t then_mono_ms,
                       int64_t then_utc_s, const yn_ledger_when *now, int64_t *out_ms)
{
    if (then_boot == l->boot_no && now->mono_ms >= then_mono_ms) {
        *out_ms = now->mono_ms - then_mono_ms;
        return true;
    }
    if (now->utc_s >= then_utc_s) {
        *out_ms = (now->utc_s - then_utc_s) * 1000;
        return true;
    }
    return false;
}

/* ---- status mapping and failure reports ---------------------------------- */

static int status_of(int src)
{
    if (src == SQLITE_IOERR_NOMEM)
        return YN_ENOMEM;
    switch (src & 0xff) {
    case SQLITE_OK:
        return YN_OK;
    case SQLITE_FULL:
        return YN_ENOSPC;
    case SQLITE_READONLY:
        return YN_EROFS;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return YN_EBUSY;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_CONSTRAINT:
        return YN_ECORRUPT;
    case SQLITE_NOMEM:
        return YN_ENOMEM;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return YN_EPERM;
    case SQLITE_CANTOPEN:
        return YN_ENOENT;
    default:
        return YN_EIO;
    }
}

static const char *advice_for(int status)
{
    switch (status) {
    case YN_ENOSPC:
        return "storage is full: free space on the ledger's filesystem, or export the "
               "ledger with yinian-diag and archive it";
    case YN_EROFS:
        return "the ledger file or its filesystem is read-only: check the mount and the "
               "file mode, then restart";
    case YN_EBUSY:
        return "another program holds the ledger locked: stop it (yinian-diag?) and retry";
    case YN_ECORRUPT:
        return "the ledger is damaged or was tampered with: run yinian-diag ledger verify";
    case YN_ENOMEM:
        return "out of memory: restart the terminal";
    default:
        return "run yinian-diag ledger to check the storage";
    }
}

/* Roll back the open transaction, if any. The cached head and highest tap id
 * may have been read inside it (a transaction appending several records):
 * forget them, head_current() reads them again. */
static void rollback(yn_ledger *l)
{
    if (!sqlite3_get_autocommit(l->db)) {
        sqlite3_reset(l->st[ST_ROLLBACK]);
        (void)sqlite3_step(l->st[ST_ROLLBACK]);
        sqlite3_reset(l->st[ST_ROLLBACK]);
    }
    l->head_valid = false;
    l->tap_known = false;
}

/* Roll back whatever the failed operation wrote, log the exact cause and
 * return the status. what names the operation and its record. */
static int fail(yn_ledger *l, int src, const char *what)
{
    int st = status_of(src);
    char msg[256];
    copy_str(msg, sizeof msg, sqlite3_errmsg(l->db));
    rollback(l);
    yn_err("ledger %s: %s not recorded, rolled back: %s (sqlite %d: %s): %s", l->path, what,
           yn_strerror(st), src, msg, advice_for(st));
    return st;
}

/* ---- statements ---------------------------------------------------------- */

/* Run a statement that returns no rows, then reset it. */
static int run(yn_ledger *l, enum stmt_id id)
{
    int rc = sqlite3_step(l->st[id]);
    sqlite3_reset(l->st[id]);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int tx_begin(yn_ledger *l, bool write)
{
    return run(l, write ? ST_BEGIN_WRITE : ST_BEGIN_READ);
}

static int tx_commit(yn_ledger *l)
{
    return run(l, ST_COMMIT);
}

static void head_remember(yn_ledger *l, const yn_ledger_record *r);

/* Commit a transaction whose last append was r, and remember r as the head. */
static int tx_commit_append(yn_ledger *l, const yn_ledger_record *r)
{
    int rc = run(l, ST_COMMIT);
    if (rc == SQLITE_OK)
        head_remember(l, r);
    return rc;
}

/* End a transaction that wrote nothing (a refusal, a replay, a read). */
static void tx_end(yn_ledger *l)
{
    if (!sqlite3_get_autocommit(l->db) && run(l, ST_COMMIT) != SQLITE_OK)
        (void)run(l, ST_ROLLBACK);
}

static void bind_text_or_null(sqlite3_stmt *s, int i, const char *t)
{
    if (t && *t)
        sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

static void col_text(sqlite3_stmt *s, int i, char *dst, size_t size)
{
    copy_str(dst, size, (const char *)sqlite3_column_text(s, i));
}

/* ---- canonical encoding and hash ----------------------------------------- */

struct enc {
    uint8_t buf[ENC_MAX];
    size_t n;
};

static void put_u8(struct enc *e, uint8_t v)
{
    if (e->n < sizeof e->buf)
        e->buf[e->n++] = v;
}

static void put_i64(struct enc *e, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int shift = 56; shift >= 0; shift -= 8)
        put_u8(e, (uint8_t)(u >> shift));
}

static void put_str(struct enc *e, const char *s, size_t max)
{
    size_t n = strnlen(s, max);
    if (n > 255)
        n = 255;
    put_u8(e, (uint8_t)n);
    for (size_t i = 0; i < n; i++)
        put_u8(e, (uint8_t)s[i]);
}

/* The canonical byte encoding of a record's content (LEDGER.md, "Hash chain"). */
static void encode(const yn_ledger_record *r, struct enc *e)
{
    e->n = 0;
    put_u8(e, 'Y');
    put_u8(e, 'N');
    put_u8(e, 'L');
    put_u8(e, '1');
    put_i64(e, r->seq);
    put_str(e, r->terminal, sizeof r->terminal);
    put_i64(e, r->tap_id);
    put_str(e, r->card_no, sizeof r->card_no);
    put_u8(e, (uint8_t)r->kind);
    put_str(e, r->category, sizeof r->category);
    put_str(e, r->period, sizeof r->period);
    put_i64(e, r->local_ymd);
    put_i64(e, r->price_fen);
    put_i64(e, r->subsidy_fen);
    put_i64(e, r->wallet_fen);
    put_i64(e, r->cash_fen);
    int n = r->n_layers < 0                      ? 0
            : r->n_layers > YN_POLICY_MAX_LAYERS ? YN_POLICY_MAX_LAYERS
                                                 : r->n_layers;
    put_u8(e, (uint8_t)n);
    for (int i = 0; i < n; i++) {
        put_str(e, r->layers[i].source, sizeof r->layers[i].source);
        put_i64(e, r->layers[i].fen);
    }
    put_i64(e, r->weight_g);
    put_i64(e, r->price_per_100g_fen);
    put_str(e, r->reason == YN_REASON_NONE ? "" : yn_reason_code(r->reason), 64);
    put_str(e, r->operator_id, sizeof r->operator_id);
    put_i64(e, r->utc_s);
    put_i64(e, r->mono_ms);
    put_i64(e, r->boot_no);
    put_u8(e, r->clock_trusted ? 1 : 0);
    put_i64(e, r->reverses_seq);
    put_str(e, r->ref, sizeof r->ref);
    put_i64(e, r->policy_version);
    put_i64(e, r->wallet_after_fen);
    put_i64(e, r->card_prev_seq);
}

void yn_ledger_record_hash(const yn_ledger_record *r, const uint8_t prev_hash[YN_LEDGER_HASH_LEN],
                           uint8_t out[YN_LEDGER_HASH_LEN])
{
    struct enc e;
    encode(r, &e);
    memcpy(e.buf + e.n, prev_hash, YN_LEDGER_HASH_LEN); /* ENC_MAX leaves room */
    unsigned int len = 0;
    if (!EVP_Digest(e.buf, e.n + YN_LEDGER_HASH_LEN, out, &len, EVP_sha256(), NULL))
        memset(out, 0, YN_LEDGER_HASH_LEN);
}

/* The same with the handle's cached digest context (hot path). */
static bool hash_record(yn_ledger *l, const yn_ledger_record *r, uint8_t out[YN_LEDGER_HASH_LEN])
{
    struct enc e;
    encode(r, &e);
    unsigned int len = 0;
    return EVP_DigestInit_ex(l->md_ctx, l->md, NULL) && EVP_DigestUpdate(l->md_ctx, e.buf, e.n) &&
           EVP_DigestUpdate(l->md_ctx, r->prev_hash, YN_LEDGER_HASH_LEN) &&
           EVP_DigestFinal_ex(l->md_ctx, out, &len) && len == YN_LEDGER_HASH_LEN;
}

/* ---- journal rows --------------------------------------------------------- */

static void row_to_record(sqlite3_stmt *s, yn_ledger_record *r)
{
    memset(r, 0, sizeof *r);
    r->seq = sqlite3_column_int64(s, 0);
    col_text(s, 1, r->terminal, sizeof r->terminal);
    r->tap_id = sqlite3_column_int64(s, 2);
    col_text(s, 3, r->card_no, sizeof r->card_no);
    r->kind = sqlite3_column_int(s, 4);
    col_text(s, 5, r->category, sizeof r->category);
    col_text(s, 6, r->period, sizeof r->period);
    r->local_ymd = sqlite3_column_int(s, 7);
    r->price_fen = sqlite3_column_int64(s, 8);
    r->subsidy_fen = sqlite3_column_int64(s, 9);
    r->wallet_fen = sqlite3_column_int64(s, 10);
    r->cash_fen = sqlite3_column_int64(s, 11);
    for (int i = 0; i < YN_POLICY_MAX_LAYERS; i++) {
        if (sqlite3_column_type(s, 12 + 2 * i) == SQLITE_NULL)
            break;
        col_text(s, 12 + 2 * i, r->layers[i].source, sizeof r->layers[i].source);
        r->layers[i].fen = sqlite3_column_int64(s, 13 + 2 * i);
        r->n_layers = i + 1;
    }
    r->weight_g = sqlite3_column_int(s, 20);
    r->price_per_100g_fen = sqlite3_column_int64(s, 21);
    r->reason = reason_from_code((const char *)sqlite3_column_text(s, 22));
    col_text(s, 23, r->operator_id, sizeof r->operator_id);
    r->utc_s = sqlite3_column_int64(s, 24);
    r->mono_ms = sqlite3_column_int64(s, 25);
    r->boot_no = sqlite3_column_int64(s, 26);
    r->clock_trusted = sqlite3_column_int(s, 27) != 0;
    r->reverses_seq = sqlite3_column_int64(s, 28);
    col_text(s, 29, r->ref, sizeof r->ref);
    r->policy_version = sqlite3_column_int64(s, 30);
    r->wallet_after_fen = sqlite3_column_int64(s, 31);
    r->card_prev_seq = sqlite3_column_int64(s, 32);
    if (sqlite3_column_bytes(s, 33) == YN_LEDGER_HASH_LEN)
        memcpy(r->prev_hash, sqlite3_column_blob(s, 33), YN_LEDGER_HASH_LEN);
    if (sqlite3_column_bytes(s, 34) == YN_LEDGER_HASH_LEN)
        memcpy(r->hash, sqlite3_column_blob(s, 34), YN_LEDGER_HASH_LEN);
}

/* Look a record up by the statement's one integer key; *found says if it is there. */
static int record_by(yn_ledger *l, enum stmt_id id, int64_t key, yn_ledger_record *r, bool *found)
{
    sqlite3_stmt *s = l->st[id];
    sqlite3_bind_int64(s, 1, key);
    int rc = sqlite3_step(s);
    *found = rc == SQLITE_ROW;
    if (*found)
        row_to_record(s, r);
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static void result_from_record(const yn_ledger_record *r, yn_ledger_result *out)
{
    memset(out, 0, sizeof *out);
    out->seq = r->seq;
    out->kind = r->kind;
    out->wallet_after_fen = r->wallet_after_fen;
    yn_decision *d = &out->decision;
    d->allowed = true;
    d->reason = r->reason;
    memcpy(d->category, r->category, sizeof d->category);
    memcpy(d->period, r->period, sizeof d->period);
    d->price_fen = r->price_fen;
    d->n_layers = r->n_layers;
    memcpy(d->layers, r->layers, sizeof d->layers);
    d->subsidy_fen = r->subsidy_fen;
    d->wallet_fen = r->wallet_fen;
    d->cash_fen = r->cash_fen;
}

/* Append r as the next record: seq, prev_hash and hash are filled here. The
 * day index gets a row when the local date differs from the previous record's. */
static unsigned int data_version(yn_ledger *l)
{
    unsigned int dv = 0;
    if (sqlite3_file_control(l->db, "main", SQLITE_FCNTL_DATA_VERSION, &dv) != SQLITE_OK)
        return 0;
    return dv;
}

/* Call after the commit of a transaction that appended r last. */
static void head_remember(yn_ledger *l, const yn_ledger_record *r)
{
    l->head_seq = r->seq;
    l->head_ymd = r->local_ymd;
    memcpy(l->head_hash, r->hash, sizeof l->head_hash);
    l->head_dv = data_version(l);
    l->head_valid = l->head_dv != 0;
    if (l->tap_known && l->tap_upto == r->seq - 1) { /* head_current() ran in that transaction */
        l->tap_upto = r->seq;
        if (r->tap_id > l->tap_max)
            l->tap_max = r->tap_id;
    }
}

static int meta_get_i64(yn_ledger *l, const char *key, int64_t *v);

/* Inside a transaction that holds the lock (BEGIN IMMEDIATE, or after a first
 * statement): make the cached head and highest tap id those of the file. Free
 * while no other commit happened since this handle's last one (the data
 * version says so); else one read of the head and a backward walk over the
 * records appended since this handle last looked, down to the newest with a
 * tap id (usually the first one, or none at all). The first time, and if the
 * journal became shorter than seen before (a restored file), the walk starts
 * from the head of the whole journal, and the highest tap id of the records
 * made before ids had to increase (meta tap_id_floor) counts too. */
static int head_current(yn_ledger *l)
{
    if (l->head_valid && data_version(l) == l->head_dv)
        return SQLITE_OK;
    l->head_valid = false;
    int64_t seq = 0;
    int32_t ymd = 0;
    uint8_t hash[YN_LEDGER_HASH_LEN] = {0};
    sqlite3_stmt *s = l->st[ST_HEAD];
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        seq = sqlite3_column_int64(s, 0);
        if (sqlite3_column_bytes(s, 1) == YN_LEDGER_HASH_LEN)
            memcpy(hash, sqlite3_column_blob(s, 1), YN_LEDGER_HASH_LEN);
        ymd = sqlite3_column_int(s, 2);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    int64_t upto = l->tap_upto, max = l->tap_max;
    if (!l->tap_known || seq < upto) {
        upto = 0;
        if ((rc = meta_get_i64(l, "tap_id_floor", &max)) != SQLITE_OK)
            return rc;
    }
    if (seq > upto) {
        s = l->st[ST_TAP_NEWEST];
        sqlite3_bind_int64(s, 1, upto);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW && sqlite3_column_int64(s, 0) > max)
            max = sqlite3_column_int64(s, 0);
        sqlite3_reset(s);
        if (rc != SQLITE_ROW && rc != SQLITE_DONE)
            return rc;
    }
    l->tap_known = true;
    l->tap_upto = seq;
    l->tap_max = max;
    l->head_seq = seq;
    l->head_ymd = ymd;
    memcpy(l->head_hash, hash, sizeof l->head_hash);
    l->head_dv = data_version(l);
    l->head_valid = l->head_dv != 0;
    return SQLITE_OK;
}

static int append(yn_ledger *l, yn_ledger_record *r)
{
    int rc = head_current(l);
    if (rc != SQLITE_OK)
        return rc;
    r->seq = l->head_seq + 1;
    memcpy(r->prev_hash, l->head_hash, YN_LEDGER_HASH_LEN);
    yn_rules_fault fault; /* never journal what the district would refuse */
    if (yn_rules_record(r, &fault) != YN_OK) {
        yn_err("ledger %s: record %" PRId64 " (%s) breaks the record rules: %s: %s", l->path,
               r->seq, r->card_no, fault.field, fault.why);
        return SQLITE_CONSTRAINT_CHECK;
    }
    int32_t head_ymd = l->head_ymd;
    l->head_valid = false; /* until this transaction commits */
    if (!hash_record(l, r, r->hash))
        return SQLITE_ERROR;

    sqlite3_stmt *s = l->st[ST_INSERT];
    sqlite3_bind_int64(s, 1, r->seq);
    sqlite3_bind_text(s, 2, r->terminal, -1, SQLITE_STATIC);
    if (r->tap_id)
        sqlite3_bind_int64(s, 3, r->tap_id);
    else
        sqlite3_bind_null(s, 3);
    sqlite3_bind_text(s, 4, r->card_no, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 5, r->kind);
    bind_text_or_null(s, 6, r->category);
    bind_text_or_null(s, 7, r->period);
    sqlite3_bind_int(s, 8, r->local_ymd);
    sqlite3_bind_int64(s, 9, r->price_fen);
    sqlite3_bind_int64(s, 10, r->subsidy_fen);
    sqlite3_bind_int64(s, 11, r->wallet_fen);
    sqlite3_bind_int64(s, 12, r->cash_fen);
    for (int i = 0; i < YN_POLICY_MAX_LAYERS; i++) {
        if (i < r->n_layers) {
            sqlite3_bind_text(s, 13 + 2 * i, r->layers[i].source, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 14 + 2 * i, r->layers[i].fen);
        } else {
            sqlite3_bind_null(s, 13 + 2 * i);
            sqlite3_bind_null(s, 14 + 2 * i);
        }
    }
    sqlite3_bind_int(s, 21, r->weight_g);
    sqlite3_bind_int64(s, 22, r->price_per_100g_fen);
    bind_text_or_null(s, 23, r->reason == YN_REASON_NONE ? NULL : yn_reason_code(r->reason));
    bind_text_or_null(s, 24, r->operator_id);
    sqlite3_bind_int64(s, 25, r->utc_s);
    sqlite3_bind_int64(s, 26, r->mono_ms);
    sqlite3_bind_int64(s, 27, r->boot_no);
    sqlite3_bind_int(s, 28, r->clock_trusted);
    if (r->reverses_seq)
        sqlite3_bind_int64(s, 29, r->reverses_seq);
    else
        sqlite3_bind_null(s, 29);
    bind_text_or_null(s, 30, r->ref);
    sqlite3_bind_int64(s, 31, r->policy_version);
    sqlite3_bind_int64(s, 32, r->wallet_after_fen);
    sqlite3_bind_int64(s, 33, r->card_prev_seq);
    sqlite3_bind_blob(s, 34, r->prev_hash, YN_LEDGER_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(s, 35, r->hash, YN_LEDGER_HASH_LEN, SQLITE_STATIC);
    rc = run(l, ST_INSERT); /* every parameter is bound each time: no clearing */
    if (rc != SQLITE_OK)
        return rc;

    if (r->seq == 1 || head_ymd != r->local_ymd) {
        s = l->st[ST_DAY_RUN];
        sqlite3_bind_int64(s, 1, r->seq);
        sqlite3_bind_int(s, 2, r->local_ymd);
        rc = run(l, ST_DAY_RUN);
    }
    return rc;
}

/* ---- card state ------------------------------------------------------------ */

/* The card state in columns 0..STATE_NCOLS of a row; column STATE_NCOLS says
 * whether the card has a state row at all. */
static void state_from_row(sqlite3_stmt *s, struct card_state *cs)
{
    memset(cs, 0, sizeof *cs);
    cs->exists = sqlite3_column_int(s, STATE_NCOLS) != 0;
    if (cs->exists) {
        cs->balance_fen = sqlite3_column_int64(s, 0);
        cs->last_seq = sqlite3_column_int64(s, 1);
        cs->meal_seq = sqlite3_column_int64(s, 2);
        cs->meal_utc_s = sqlite3_column_int64(s, 3);
        cs->meal_mono_ms = sqlite3_column_int64(s, 4);
        cs->meal_boot = sqlite3_column_int64(s, 5);
        cs->month_ym = sqlite3_column_int(s, 6);
        cs->month_meals = sqlite3_column_int(s, 7);
        cs->month_subsidy_fen = sqlite3_column_int64(s, 8);
        cs->day_ymd = sqlite3_column_int(s, 9);
        cs->day_meals = sqlite3_column_int(s, 10);
        col_text(s, 11, cs->period, sizeof cs->period);
        cs->period_meals = sqlite3_column_int(s, 12);
        cs->last_tap = sqlite3_column_int64(s, 13);
        cs->day_subsidy_fen = sqlite3_column_int64(s, 14);
    }
}

static int state_get(yn_ledger *l, const char *card_no, struct card_state *cs)
{
    memset(cs, 0, sizeof *cs);
    sqlite3_stmt *s = l->st[ST_STATE_GET];
    sqlite3_bind_text(s, 1, card_no, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        state_from_row(s, cs);
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int state_put(yn_ledger *l, const char *card_no, const struct card_state *cs)
{
    enum stmt_id id = cs->exists ? ST_STATE_UPDATE : ST_STATE_INSERT;
    sqlite3_stmt *s = l->st[id];
    sqlite3_bind_text(s, 1, card_no, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, cs->balance_fen);
    sqlite3_bind_int64(s, 3, cs->last_seq);
    sqlite3_bind_int64(s, 4, cs->meal_seq);
    sqlite3_bind_int64(s, 5, cs->meal_utc_s);
    sqlite3_bind_int64(s, 6, cs->meal_mono_ms);
    sqlite3_bind_int64(s, 7, cs->meal_boot);
    sqlite3_bind_int(s, 8, cs->month_ym);
    sqlite3_bind_int(s, 9, cs->month_meals);
    sqlite3_bind_int64(s, 10, cs->month_subsidy_fen);
    sqlite3_bind_int(s, 11, cs->day_ymd);
    sqlite3_bind_int(s, 12, cs->day_meals);
    sqlite3_bind_text(s, 13, cs->period, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 14, cs->period_meals);
    sqlite3_bind_int64(s, 15, cs->last_tap);
    sqlite3_bind_int64(s, 16, cs->day_subsidy_fen);
    return run(l, id);
}

/* Usage counted so far under the keys of moment m (counters of other keys are stale). */
static void usage_of(const struct card_state *cs, const yn_moment *m, yn_usage *u)
{
    memset(u, 0, sizeof *u);
    if (cs->month_ym == m->local_ym) {
        u->meals_month = cs->month_meals;
        u->subsidy_month_fen = cs->month_subsidy_fen;
    }
    if (cs->day_ymd == m->local_ymd) {
        u->meals_day = cs->day_meals;
        if (strcmp(cs->period, m->period) == 0)
            u->meals_period = cs->period_meals;
    }
}

/* Count one subsidised meal of subsidy_fen under the keys ymd / period. */
static void usage_add(struct card_state *cs, int32_t ymd, const char *period, int64_t subsidy_fen)
{
    if (cs->month_ym != ymd / 100) {
        cs->month_ym = ymd / 100;
        cs->month_meals = 0;
        cs->month_subsidy_fen = 0;
    }
    cs->month_meals++;
    cs->month_subsidy_fen += subsidy_fen;
    if (cs->day_ymd != ymd) {
        cs->day_ymd = ymd;
        cs->day_meals = 0;
        cs->day_subsidy_fen = 0;
        cs->period[0] = '\0';
        cs->period_meals = 0;
    }
    cs->day_meals++;
    cs->day_subsidy_fen += subsidy_fen;
    if (strcmp(cs->period, period) != 0) {
        copy_str(cs->period, sizeof cs->period, period);
        cs->period_meals = 0;
    }
    cs->period_meals++;
}

/* Give back a reversed meal's usage, where the counters still have its keys. */
static void usage_remove(struct card_state *cs, int32_t ymd, const char *period,
                         int64_t subsidy_fen)
{
    if (cs->month_ym == ymd / 100 && cs->month_meals > 0) {
        cs->month_meals--;
        cs->month_subsidy_fen -= subsidy_fen;
        if (cs->month_subsidy_fen < 0)
            cs->month_subsidy_fen = 0;
    }
    if (cs->day_ymd == ymd && cs->day_meals > 0) {
        cs->day_meals--;
        cs->day_subsidy_fen -= subsidy_fen;
        if (cs->day_subsidy_fen < 0)
            cs->day_subsidy_fen = 0;
        if (strcmp(cs->period, period) == 0 && cs->period_meals > 0)
            cs->period_meals--;
    }
}

static void record_base(yn_ledger *l, yn_ledger_record *r, int kind, const char *card_no,
                        const yn_ledger_when *when)
{
    memset(r, 0, sizeof *r);
    memcpy(r->terminal, l->terminal, sizeof r->terminal);
    copy_str(r->card_no, sizeof r->card_no, card_no);
    r->kind = kind;
    r->utc_s = when->utc_s;
    r->mono_ms = when->mono_ms;
    r->boot_no = l->boot_no;
    r->clock_trusted = when->clock_trusted;
    r->local_ymd = local_ymd_of(when->utc_s);
}

#define CHECK_READY(l)                                                                             \
    do {                                                                                           \
        if (!(l) || !(l)->ready)                                                                   \
            return YN_EINVAL;                                                                      \
    } while (0)

/* ---- debit ------------------------------------------------------------------ */

/* Inside a tap's write transaction, once the card row is read (cs): the tap
 * id rules of LEDGER.md, "Tap ids". Returns SQLITE_OK with *st = YN_OK when
 * the tap is new and may be recorded; YN_EDUPLICATE when it is the card's last
 * tap (out holds that record's result: found along the card's own chain, a
 * reversal or allocation may have followed it); YN_EINVAL when the id is not
 * above the highest tap id journaled. In the last two cases the transaction
 * is ended. Anything else is a storage error (rolled back by the caller). */
static int tap_check(yn_ledger *l, const char *op, const char *card_no, const struct card_state *cs,
                     int64_t tap_id, yn_ledger_result *out, int *st)
{
    *st = YN_OK;
    int rc = head_current(l);
    if (rc != SQLITE_OK)
        return rc;
    if (cs->last_tap == tap_id) {
        yn_ledger_record rec;
        int64_t seq = cs->last_seq;
        bool found = false;
        while (seq > 0 && rc == SQLITE_OK) {
            rc = record_by(l, ST_BY_SEQ, seq, &rec, &found);
            if (rc != SQLITE_OK || !found || rec.tap_id == tap_id)
                break;
            found = false;
            if (rec.card_prev_seq >= seq) /* a damaged chain: it must go back */
                break;
            seq = rec.card_prev_seq;
        }
        if (rc != SQLITE_OK)
            return rc;
        if (!found || strcmp(rec.card_no, card_no) != 0) {
            yn_err("ledger %s: %s tap %" PRId64 " card %s: the card's last tap id is not in"
                   " its records: run yinian-diag ledger verify",
                   l->path, op, tap_id, card_no);
            return SQLITE_CORRUPT;
        }
        tx_end(l);
        result_from_record(&rec, out);
        *st = YN_EDUPLICATE;
        return SQLITE_OK;
    }
    if (tap_id <= l->tap_max) {
        tx_end(l);
        yn_warn("ledger %s: %s tap %" PRId64 " card %s refused: tap id not increasing (highest"
                " tap id journaled is %" PRId64 ", this card's last is %" PRId64 "): nothing"
                " recorded; the terminal must give every new tap a higher id",
                l->path, op, tap_id, card_no, l->tap_max, cs->last_tap);
        *st = YN_EINVAL;
    }
    return SQLITE_OK;
}

/* Inside a debit's transaction, after the policy granted d->subsidy_fen > 0:
 * the offline cap (LEDGER.md, "Offline cap"). Offline = no successful sync
 * recorded (meta last_sync_utc_s, written by a batch acknowledgement and by
 * an applied update) or the last one more than offline_after_s before the
 * tap. Then the card's subsidy of the local day may not exceed
 * offline_cap_fen: the layers are cut, last first (as the month cap does),
 * and what is cut is paid by the diner like any due, wallet first as far as
 * the balance left covers it, then cash. Nothing left: no subsidy at all,
 * reason month_cap (the subsidy cap reached; the log says which). */
static int offline_cap(yn_ledger *l, const struct card_state *cs, const yn_moment *m,
                       const yn_ledger_tap *tap, yn_decision *d)
{
    int64_t last_sync = 0;
    int rc = meta_get_i64(l, "last_sync_utc_s", &last_sync);
    if (rc != SQLITE_OK)
        return rc;
    if (last_sync > 0 && tap->when.utc_s - last_sync <= l->offline_after_s)
        return SQLITE_OK; /* online */
    int64_t used_fen = cs->day_ymd == m->local_ymd ? cs->day_subsidy_fen : 0;
    int64_t room_fen = l->offline_cap_fen - used_fen;
    if (room_fen < 0)
        room_fen = 0;
    int64_t cut_fen = d->subsidy_fen - room_fen;
    if (cut_fen <= 0)
        return SQLITE_OK;
    int64_t excess_fen = cut_fen;
    for (int i = d->n_layers - 1; i >= 0 && excess_fen > 0; i--) {
        int64_t c = d->layers[i].fen < excess_fen ? d->layers[i].fen : excess_fen;
        d->layers[i].fen -= c;
        excess_fen -= c;
    }
    d->subsidy_fen -= cut_fen;
    int64_t balance_left_fen = cs->balance_fen - d->wallet_fen;
    int64_t from_wallet_fen = balance_left_fen <= 0        ? 0
                              : balance_left_fen < cut_fen ? balance_left_fen
                                                           : cut_fen;
    d->wallet_fen += from_wallet_fen;
    d->cash_fen += cut_fen - from_wallet_fen;
    if (d->subsidy_fen == 0) { /* as the policy's "no subsidy" */
        d->reason = YN_REASON_MONTH_CAP;
        d->n_layers = 0;
        memset(d->layers, 0, sizeof d->layers);
    }
    yn_info("ledger: debit tap %" PRId64 " card %s: offline (last sync %" PRId64 ", %s): day"
            " subsidy capped at %" PRId64 " fen, %" PRId64 " fen used today, %" PRId64
            " fen of subsidy moved to the diner",
            tap->tap_id, tap->card->card_no, last_sync, last_sync ? "too long ago" : "never",
            l->offline_cap_fen, used_fen, cut_fen);
    return SQLITE_OK;
}

/* The refusal the ledger itself decides, before the policy is asked. */
static void refuse(yn_ledger_result *out, enum yn_reason why)
{
    out->decision.allowed = false;
    out->decision.reason = why;
}

int yn_ledger_debit(yn_ledger *l, const yn_policy *p, const yn_ledger_tap *tap,
                    yn_ledger_result *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    if (!p || !tap || !tap->card || !tap->meal || !tap->canteen || tap->tap_id <= 0 ||
        !text_ok(tap->card->card_no, CARD_NO_MAX, false) ||
        !text_ok(tap->operator_id, YN_LEDGER_ID_MAX, true))
        return YN_EINVAL;
    const char *card_no = tap->card->card_no;
    char what[96]; /* filled only when there is something to say */

    int rc = tx_begin(l, true);
    if (rc != SQLITE_OK)
        goto storage;

    /* 1. the card: wallet, usage and last tap, the district's blacklist and roster */
    sqlite3_stmt *s = l->st[ST_CARD];
    sqlite3_bind_text(s, 1, card_no, -1, SQLITE_STATIC);
    rc = sqlite3_step(s);
    struct card_state cs;
    memset(&cs, 0, sizeof cs);
    yn_card_facts facts = *tap->card;
    bool lost = false;
    if (rc == SQLITE_ROW) {
        state_from_row(s, &cs);
        lost = sqlite3_column_int(s, STATE_NCOLS + 1) != 0;
        if (sqlite3_column_int(s, STATE_NCOLS + 2)) { /* the roster's word supersedes */
            if (facts.birth_ymd == 0)
                facts.birth_ymd = sqlite3_column_int(s, STATE_NCOLS + 3);
            facts.flags = (uint32_t)sqlite3_column_int64(s, STATE_NCOLS + 4);
            facts.district = (uint32_t)sqlite3_column_int64(s, STATE_NCOLS + 5);
            facts.street = (uint32_t)sqlite3_column_int64(s, STATE_NCOLS + 6);
            facts.expiry_ymd = sqlite3_column_int(s, STATE_NCOLS + 7);
        }
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        goto storage;

    /* 2. the card's last tap again is a replay: its original result, no charge,
     * even if the card was blacklisted or the interval has not passed since.
     * Any other tap id must be above every one journaled. */
    int st;
    if ((rc = tap_check(l, "debit", card_no, &cs, tap->tap_id, out, &st)) != SQLITE_OK)
        goto storage;
    if (st != YN_OK)
        return st;

    if (lost) {
        tx_end(l);
        refuse(out, YN_REASON_LOST);
        yn_info("ledger: debit tap %" PRId64 " card %s refused: card is on the blacklist",
                tap->tap_id, card_no);
        return YN_EREFUSED;
    }

    /* 3. not twice within the minimum interval */
    int64_t since_ms;
    if (l->min_interval_ms > 0 && cs.meal_seq > 0 &&
        elapsed_ms(l, cs.meal_boot, cs.meal_mono_ms, cs.meal_utc_s, &tap->when, &since_ms) &&
        since_ms < l->min_interval_ms) {
        tx_end(l);
        refuse(out, YN_REASON_TOO_SOON);
        yn_info("ledger: debit tap %" PRId64 " card %s refused: last meal (seq %" PRId64
                ") %" PRId64 " ms ago",
                tap->tap_id, card_no, cs.meal_seq, since_ms);
        return YN_EREFUSED;
    }

    /* 4. the policy */
    yn_moment m;
    yn_policy_locate(p, tap->when.utc_s, &m);
    yn_usage usage;
    usage_of(&cs, &m, &usage);
    if (tap->usage_floor) { /* e.g. the card's stamp of a meal at another canteen */
        const yn_usage *f = tap->usage_floor;
        if (f->meals_period > usage.meals_period)
            usage.meals_period = f->meals_period;
        if (f->meals_day > usage.meals_day)
            usage.meals_day = f->meals_day;
        if (f->meals_month > usage.meals_month)
            usage.meals_month = f->meals_month;
        if (f->subsidy_month_fen > usage.subsidy_month_fen)
            usage.subsidy_month_fen = f->subsidy_month_fen;
    }
    st = yn_policy_decide(p, &facts, tap->meal, tap->canteen, tap->when.utc_s, &usage,
                          cs.balance_fen > 0 ? cs.balance_fen : 0, &out->decision);
    if (st != YN_OK || !out->decision.allowed) {
        tx_end(l);
        if (st != YN_OK) {
            yn_warn("ledger: debit tap %" PRId64 " card %s: policy %s refused the input: %s",
                    tap->tap_id, card_no, yn_policy_id(p), yn_strerror(st));
            memset(out, 0, sizeof *out);
            return st;
        }
        return YN_EREFUSED;
    }

    /* 5. while offline, the day's subsidy of the card is capped */
    if (l->offline_cap_fen > 0 && out->decision.subsidy_fen > 0) {
        if ((rc = offline_cap(l, &cs, &m, tap, &out->decision)) != SQLITE_OK)
            goto storage;
    }

    /* 6. the record, then the card's state, in the same transaction */
    const yn_decision *d = &out->decision;
    yn_ledger_record rec;
    record_base(l, &rec, YN_LEDGER_MEAL, card_no, &tap->when);
    rec.tap_id = tap->tap_id;
    rec.local_ymd = m.local_ymd;
    memcpy(rec.category, d->category, sizeof rec.category);
    copy_str(rec.period, sizeof rec.period, d->period[0] ? d->period : m.period);
    rec.price_fen = d->price_fen;
    rec.n_layers = d->n_layers;
    memcpy(rec.layers, d->layers, sizeof rec.layers);
    rec.subsidy_fen = d->subsidy_fen;
    rec.wallet_fen = d->wallet_fen;
    rec.cash_fen = d->cash_fen;
    if (tap->meal->weight_g > 0) {
        rec.weight_g = tap->meal->weight_g;
        rec.price_per_100g_fen = tap->meal->price_per_100g_fen;
    }
    rec.reason = d->reason;
    copy_str(rec.operator_id, sizeof rec.operator_id, tap->operator_id);
    rec.policy_version = yn_policy_version(p);
    rec.wallet_after_fen = cs.balance_fen - d->wallet_fen;
    rec.card_prev_seq = cs.last_seq;
    if ((rc = append(l, &rec)) != SQLITE_OK)
        goto storage;

    cs.balance_fen = rec.wallet_after_fen;
    cs.last_seq = rec.seq;
    cs.last_tap = rec.tap_id;
    cs.meal_seq = rec.seq;
    cs.meal_utc_s = rec.utc_s;
    cs.meal_mono_ms = rec.mono_ms;
    cs.meal_boot = rec.boot_no;
    if (rec.subsidy_fen > 0)
        usage_add(&cs, m.local_ymd, m.period, rec.subsidy_fen);
    if ((rc = state_put(l, card_no, &cs)) != SQLITE_OK)
        goto storage;
    out->seq = rec.seq;
    out->kind = YN_LEDGER_MEAL;
    out->wallet_after_fen = rec.wallet_after_fen;
    if (tap->before_commit) { /* e.g. the card's new stamp: no stamp, no charge */
        st = tap->before_commit(tap->hook_arg, out);
        if (st != YN_OK) {
            (void)run(l, ST_ROLLBACK);
            yn_info("ledger: debit tap %" PRId64 " card %s rolled back: the before-commit"
                    " step failed: %s",
                    tap->tap_id, card_no, yn_strerror(st));
            memset(out, 0, sizeof *out);
            return st;
        }
    }
    if ((rc = tx_commit_append(l, &rec)) != SQLITE_OK)
        goto storage;
    return YN_OK;

storage:
    snprintf(what, sizeof what, "debit tap %" PRId64 " card %s", tap->tap_id, card_no);
    st = fail(l, rc, what);
    memset(out, 0, sizeof *out);
    refuse(out, YN_REASON_STORAGE);
    return st;
}

/* ---- reversal ---------------------------------------------------------------- */

int yn_ledger_reverse(yn_ledger *l, const yn_policy *p, int64_t seq, const char *operator_id,
                      const yn_ledger_when *when, yn_ledger_result *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    if (seq <= 0 || !when || !text_ok(operator_id, YN_LEDGER_ID_MAX, false))
        return YN_EINVAL;
    char what[96];
    snprintf(what, sizeof what, "reversal of seq %" PRId64 " by %s", seq, operator_id);
    int32_t window_s = l->reverse_window_s > 0 ? l->reverse_window_s
                       : p                     ? yn_policy_reverse_window_s(p)
                                               : YN_LEDGER_DEFAULT_REVERSE_WINDOW_S;

    int rc = tx_begin(l, true);
    if (rc != SQLITE_OK)
        goto storage;
    yn_ledger_record meal, rec;
    bool found;
    if ((rc = record_by(l, ST_BY_SEQ, seq, &meal, &found)) != SQLITE_OK)
        goto storage;
    if (!found) {
        tx_end(l);
        yn_warn("ledger %s: %s: no such record", l->path, what);
        return YN_ENOTFOUND;
    }
    if (meal.kind != YN_LEDGER_MEAL) {
        tx_end(l);
        yn_warn("ledger %s: %s refused: record is a %s, only meals can be reversed", l->path, what,
                meal.kind == YN_LEDGER_REVERSAL ? "reversal" : "credit");
        return YN_EREFUSED;
    }
    if ((rc = record_by(l, ST_BY_REVERSES, seq, &rec, &found)) != SQLITE_OK)
        goto storage;
    if (found) {
        tx_end(l);
        result_from_record(&rec, out);
        yn_warn("ledger %s: %s refused: already reversed by seq %" PRId64, l->path, what, rec.seq);
        return YN_EDUPLICATE;
    }
    int64_t age_ms;
    if (!elapsed_ms(l, meal.boot_no, meal.mono_ms, meal.utc_s, when, &age_ms) ||
        age_ms > (int64_t)window_s * 1000) {
        tx_end(l);
        yn_warn("ledger %s: %s refused: outside the %d s window", l->path, what, (int)window_s);
        return YN_EREFUSED;
    }

    struct card_state cs;
    if ((rc = state_get(l, meal.card_no, &cs)) != SQLITE_OK)
        goto storage;
    record_base(l, &rec, YN_LEDGER_REVERSAL, meal.card_no, when);
    memcpy(rec.category, meal.category, sizeof rec.category);
    memcpy(rec.period, meal.period, sizeof rec.period);
    rec.price_fen = -meal.price_fen;
    rec.n_layers = meal.n_layers;
    for (int i = 0; i < meal.n_layers; i++) {
        rec.layers[i] = meal.layers[i];
        rec.layers[i].fen = -meal.layers[i].fen;
    }
    rec.subsidy_fen = -meal.subsidy_fen;
    rec.wallet_fen = -meal.wallet_fen;
    rec.cash_fen = -meal.cash_fen;
    rec.weight_g = meal.weight_g;
    rec.price_per_100g_fen = meal.price_per_100g_fen;
    rec.reason = meal.reason;
    copy_str(rec.operator_id, sizeof rec.operator_id, operator_id);
    rec.reverses_seq = meal.seq;
    rec.policy_version = meal.policy_version;
    rec.wallet_after_fen = cs.balance_fen + meal.wallet_fen;
    rec.card_prev_seq = cs.last_seq;
    if ((rc = append(l, &rec)) != SQLITE_OK)
        goto storage;

    cs.balance_fen = rec.wallet_after_fen;
    cs.last_seq = rec.seq;
    if (cs.meal_seq == meal.seq) /* a wrong charge undone: the right one may follow at once */
        cs.meal_seq = cs.meal_utc_s = cs.meal_mono_ms = cs.meal_boot = 0;
    if (meal.subsidy_fen > 0)
        usage_remove(&cs, meal.local_ymd, meal.period, meal.subsidy_fen);
    if ((rc = state_put(l, meal.card_no, &cs)) != SQLITE_OK)
        goto storage;
    if ((rc = tx_commit_append(l, &rec)) != SQLITE_OK)
        goto storage;
    result_from_record(&rec, out);
    yn_info("ledger: %s recorded as seq %" PRId64, what, rec.seq);
    return YN_OK;

storage:;
    int st = fail(l, rc, what);
    memset(out, 0, sizeof *out);
    return st;
}

/* ---- credits: allocations and top-ups ------------------------------------------ */

/* Append a wallet credit record (allocation or top-up) to the card whose
 * state is cs, and update the card. */
static int credit(yn_ledger *l, struct card_state *cs, yn_ledger_record *rec, int64_t amount_fen)
{
    rec->wallet_fen = -amount_fen;
    rec->wallet_after_fen = cs->balance_fen + amount_fen;
    rec->card_prev_seq = cs->last_seq;
    int rc = append(l, rec);
    if (rc != SQLITE_OK)
        return rc;
    cs->balance_fen = rec->wallet_after_fen;
    cs->last_seq = rec->seq;
    if (rec->tap_id)
        cs->last_tap = rec->tap_id;
    return state_put(l, rec->card_no, cs);
}

static bool alloc_ok(const yn_ledger_alloc *a)
{
    return text_ok(a->id, YN_LEDGER_REF_MAX, false) && text_ok(a->card_no, CARD_NO_MAX, false) &&
           text_ok(a->source, YN_NAME_MAX, false) && a->amount_fen > 0;
}

/* Inside an open write transaction: credit allocation a (checked with
 * alloc_ok). *st = YN_EDUPLICATE when its id was applied before, with *rec
 * that original record (seq 0 if it cannot be found); else YN_OK with *rec
 * the record appended. Returns a SQLite code. */
static int allocate_tx(yn_ledger *l, const yn_ledger_alloc *a, const yn_ledger_when *when,
                       yn_ledger_record *rec, int *st)
{
    *st = YN_OK;
    memset(rec, 0, sizeof *rec);
    sqlite3_stmt *s = l->st[ST_ALLOC_GET];
    sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int64_t seq = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    if (seq) {
        bool found;
        *st = YN_EDUPLICATE;
        rc = record_by(l, ST_BY_SEQ, seq, rec, &found);
        if (rc == SQLITE_OK && !found)
            memset(rec, 0, sizeof *rec);
        return rc;
    }
    record_base(l, rec, YN_LEDGER_ALLOCATION, a->card_no, when);
    copy_str(rec->ref, sizeof rec->ref, a->id);
    rec->n_layers = 1;
    copy_str(rec->layers[0].source, sizeof rec->layers[0].source, a->source);
    rec->layers[0].fen = a->amount_fen;
    rec->subsidy_fen = a->amount_fen;
    struct card_state cs;
    if ((rc = state_get(l, a->card_no, &cs)) != SQLITE_OK ||
        (rc = credit(l, &cs, rec, a->amount_fen)) != SQLITE_OK)
        return rc;
    s = l->st[ST_ALLOC_PUT];
    sqlite3_bind_text(s, 1, a->id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, rec->seq);
    return run(l, ST_ALLOC_PUT);
}

int yn_ledger_allocate(yn_ledger *l, const char *alloc_id, const char *card_no, const char *source,
                       int64_t amount_fen, const yn_ledger_when *when, yn_ledger_result *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    yn_ledger_alloc a = {.amount_fen = amount_fen};
    if (!text_ok(alloc_id, YN_LEDGER_REF_MAX, false) || !text_ok(card_no, CARD_NO_MAX, false) ||
        !text_ok(source, YN_NAME_MAX, false) || !when)
        return YN_EINVAL;
    copy_str(a.id, sizeof a.id, alloc_id);
    copy_str(a.card_no, sizeof a.card_no, card_no);
    copy_str(a.source, sizeof a.source, source);
    if (!alloc_ok(&a))
        return YN_EINVAL;
    char what[160];
    snprintf(what, sizeof what, "allocation %s to card %s", alloc_id, card_no);

    yn_ledger_record rec;
    int st = YN_OK;
    int rc = tx_begin(l, true);
    if (rc == SQLITE_OK)
        rc = allocate_tx(l, &a, when, &rec, &st);
    if (rc == SQLITE_OK && st == YN_EDUPLICATE) {
        tx_end(l);
        if (rec.seq)
            result_from_record(&rec, out);
        return YN_EDUPLICATE;
    }
    if (rc == SQLITE_OK)
        rc = tx_commit_append(l, &rec);
    if (rc != SQLITE_OK) {
        st = fail(l, rc, what);
        memset(out, 0, sizeof *out);
        return st;
    }
    result_from_record(&rec, out);
    return YN_OK;
}

int yn_ledger_topup(yn_ledger *l, int64_t tap_id, const char *card_no, int64_t amount_fen,
                    const char *operator_id, const yn_ledger_when *when, yn_ledger_result *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    if (tap_id <= 0 || !text_ok(card_no, CARD_NO_MAX, false) || amount_fen <= 0 || !when ||
        !text_ok(operator_id, YN_LEDGER_ID_MAX, false))
        return YN_EINVAL;
    char what[96];
    snprintf(what, sizeof what, "top-up tap %" PRId64 " card %s", tap_id, card_no);

    int rc = tx_begin(l, true);
    if (rc != SQLITE_OK)
        goto storage;
    struct card_state cs;
    int st;
    if ((rc = state_get(l, card_no, &cs)) != SQLITE_OK ||
        (rc = tap_check(l, "top-up", card_no, &cs, tap_id, out, &st)) != SQLITE_OK)
        goto storage;
    if (st != YN_OK)
        return st;
    yn_ledger_record rec;
    record_base(l, &rec, YN_LEDGER_TOPUP, card_no, when);
    rec.tap_id = tap_id;
    rec.cash_fen = amount_fen;
    copy_str(rec.operator_id, sizeof rec.operator_id, operator_id);
    if ((rc = credit(l, &cs, &rec, amount_fen)) != SQLITE_OK)
        goto storage;
    if ((rc = tx_commit_append(l, &rec)) != SQLITE_OK)
        goto storage;
    result_from_record(&rec, out);
    return YN_OK;

storage:
    st = fail(l, rc, what);
    memset(out, 0, sizeof *out);
    return st;
}

/* ---- reads: kiosk, records, head ---------------------------------------------- */

/* Report a failed read (nothing to roll back but the read transaction). */
static int read_fail(yn_ledger *l, int rc, const char *what)
{
    int st = status_of(rc);
    yn_err("ledger %s: %s failed: %s (sqlite %d: %s): %s", l->path, what, yn_strerror(st), rc,
           sqlite3_errmsg(l->db), advice_for(st));
    if (!sqlite3_get_autocommit(l->db))
        (void)run(l, ST_ROLLBACK);
    return st;
}

int yn_ledger_balance(yn_ledger *l, const char *card_no, int64_t now_utc_s, int n_last,
                      yn_ledger_account *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    if (!text_ok(card_no, CARD_NO_MAX, false))
        return YN_EINVAL;
    if (n_last < 0)
        n_last = 0;
    if (n_last > YN_LEDGER_LAST_MAX)
        n_last = YN_LEDGER_LAST_MAX;
    out->month_ym = local_ymd_of(now_utc_s) / 100;

    int rc = tx_begin(l, false);
    if (rc != SQLITE_OK)
        return read_fail(l, rc, "balance");
    struct card_state cs;
    if ((rc = state_get(l, card_no, &cs)) != SQLITE_OK)
        return read_fail(l, rc, "balance");
    out->wallet_fen = cs.balance_fen;
    if (cs.month_ym == out->month_ym) {
        out->meals_month = cs.month_meals;
        out->subsidy_month_fen = cs.month_subsidy_fen;
    }
    /* newest first along the card's own chain; a reversal is met before its meal */
    int64_t reversed[WALK_MAX];
    int n_reversed = 0;
    int64_t seq = cs.last_seq;
    for (int step = 0; seq > 0 && out->n_last < n_last && step < WALK_MAX; step++) {
        yn_ledger_record r;
        bool found;
        if ((rc = record_by(l, ST_BY_SEQ, seq, &r, &found)) != SQLITE_OK)
            return read_fail(l, rc, "balance");
        if (!found)
            break;
        if (r.kind == YN_LEDGER_REVERSAL && n_reversed < WALK_MAX) {
            reversed[n_reversed++] = r.reverses_seq;
        } else if (r.kind == YN_LEDGER_MEAL) {
            yn_ledger_meal_line *line = &out->last[out->n_last++];
            line->seq = r.seq;
            memcpy(line->terminal, r.terminal, sizeof line->terminal);
            line->local_ymd = r.local_ymd;
            memcpy(line->period, r.period, sizeof line->period);
            line->price_fen = r.price_fen;
            line->subsidy_fen = r.subsidy_fen;
            line->paid_fen = r.wallet_fen + r.cash_fen;
            for (int i = 0; i < n_reversed; i++)
                if (reversed[i] == r.seq)
                    line->reversed = true;
        }
        seq = r.card_prev_seq;
    }
    tx_end(l);
    return YN_OK;
}

int yn_ledger_record_get(yn_ledger *l, int64_t seq, yn_ledger_record *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    bool found;
    int rc = record_by(l, ST_BY_SEQ, seq, out, &found);
    if (rc != SQLITE_OK)
        return read_fail(l, rc, "record read");
    return found ? YN_OK : YN_ENOTFOUND;
}

int yn_ledger_head(yn_ledger *l, int64_t *seq, uint8_t hash[YN_LEDGER_HASH_LEN])
{
    CHECK_READY(l);
    if (!seq || !hash)
        return YN_EINVAL;
    *seq = 0;
    memset(hash, 0, YN_LEDGER_HASH_LEN);
    sqlite3_stmt *s = l->st[ST_HEAD];
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(s, 0);
        if (sqlite3_column_bytes(s, 1) == YN_LEDGER_HASH_LEN)
            memcpy(hash, sqlite3_column_blob(s, 1), YN_LEDGER_HASH_LEN);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return read_fail(l, rc, "head");
    return YN_OK;
}

/* ---- settlement (日结) ----------------------------------------------------------- */

/* The records of one local day: the runs of the day index with that date. */
#define DAY_ROWS                                                                                   \
    "WITH runs(a, b) AS (SELECT r.first_seq, IFNULL((SELECT MIN(n.first_seq) FROM day_runs n"      \
    " WHERE n.first_seq > r.first_seq), 9223372036854775807) - 1"                                  \
    " FROM day_runs r WHERE r.local_ymd = ?1),"                                                    \
    " d AS (SELECT j.* FROM runs JOIN journal j ON j.seq BETWEEN runs.a AND runs.b) "

#define SIGNED_COUNT "SUM(CASE kind WHEN 2 THEN -1 ELSE 1 END)"

static void sum_from_row(sqlite3_stmt *s, int first_col, yn_ledger_sum *sum)
{
    sum->count += sqlite3_column_int64(s, first_col);
    sum->price_fen += sqlite3_column_int64(s, first_col + 1);
    sum->subsidy_fen += sqlite3_column_int64(s, first_col + 2);
    sum->wallet_fen += sqlite3_column_int64(s, first_col + 3);
    sum->cash_fen += sqlite3_column_int64(s, first_col + 4);
}

/* Add a named row to a section; names beyond the section's room fold into "other". */
static void section_add(yn_ledger_sum *rows, int *n, sqlite3_stmt *s)
{
    char name[YN_NAME_MAX];
    col_text(s, 0, name, sizeof name);
    int i = 0;
    while (i < *n && strcmp(rows[i].name, name) != 0)
        i++;
    if (i == *n) {
        if (*n == YN_LEDGER_SUM_MAX) {
            i = YN_LEDGER_SUM_MAX - 1;
            copy_str(rows[i].name, sizeof rows[i].name, "other");
        } else {
            (*n)++;
            copy_str(rows[i].name, sizeof rows[i].name, name);
        }
    }
    sum_from_row(s, 1, &rows[i]);
}

static int settle_query(yn_ledger *l, const char *sql, int32_t ymd, yn_ledger_settlement *out,
                        int section)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(l->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int(s, 1, ymd);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        switch (section) {
        case 0: { /* by kind */
            int kind = sqlite3_column_int(s, 0);
            yn_ledger_sum *sum = kind == YN_LEDGER_MEAL         ? &out->meals
                                 : kind == YN_LEDGER_REVERSAL   ? &out->reversals
                                 : kind == YN_LEDGER_ALLOCATION ? &out->allocations
                                                                : &out->topups;
            sum_from_row(s, 1, sum);
            int64_t lo = sqlite3_column_int64(s, 6), hi = sqlite3_column_int64(s, 7);
            if (out->first_seq == 0 || lo < out->first_seq)
                out->first_seq = lo;
            if (hi > out->last_seq)
                out->last_seq = hi;
            break;
        }
        case 1:
            section_add(out->categories, &out->n_categories, s);
            break;
        case 2:
            section_add(out->periods, &out->n_periods, s);
            break;
        default:
            section_add(out->sources, &out->n_sources, s);
            break;
        }
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int yn_ledger_settle(yn_ledger *l, int32_t local_ymd, yn_ledger_settlement *out)
{
    static const char *const sql[4] = {
        DAY_ROWS "SELECT kind, " SIGNED_COUNT ", SUM(price_fen), SUM(subsidy_fen),"
                 " SUM(wallet_fen), SUM(cash_fen), MIN(seq), MAX(seq) FROM d GROUP BY kind",
        DAY_ROWS "SELECT IFNULL(category, ''), " SIGNED_COUNT ", SUM(price_fen),"
                 " SUM(subsidy_fen), SUM(wallet_fen), SUM(cash_fen) FROM d"
                 " WHERE kind IN (1, 2) GROUP BY 1 ORDER BY 1",
        DAY_ROWS "SELECT IFNULL(period, ''), " SIGNED_COUNT ", SUM(price_fen),"
                 " SUM(subsidy_fen), SUM(wallet_fen), SUM(cash_fen) FROM d"
                 " WHERE kind IN (1, 2) GROUP BY 1 ORDER BY 1",
        DAY_ROWS ", l(src, kind, fen) AS (SELECT src1, kind, fen1 FROM d WHERE src1 IS NOT NULL"
                 " UNION ALL SELECT src2, kind, fen2 FROM d WHERE src2 IS NOT NULL"
                 " UNION ALL SELECT src3, kind, fen3 FROM d WHERE src3 IS NOT NULL"
                 " UNION ALL SELECT src4, kind, fen4 FROM d WHERE src4 IS NOT NULL)"
                 " SELECT src, " SIGNED_COUNT ", 0, SUM(fen), 0, 0 FROM l"
                 " WHERE kind IN (1, 2) AND fen != 0 GROUP BY 1 ORDER BY 1",
    };
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    out->local_ymd = local_ymd;
    int rc = tx_begin(l, false);
    for (int i = 0; i < 4 && rc == SQLITE_OK; i++)
        rc = settle_query(l, sql[i], local_ymd, out, i);
    if (rc != SQLITE_OK)
        return read_fail(l, rc, "settlement");
    tx_end(l);
    out->total = out->meals;
    out->total.count += out->reversals.count;
    out->total.price_fen += out->reversals.price_fen;
    out->total.subsidy_fen += out->reversals.subsidy_fen;
    out->total.wallet_fen += out->reversals.wallet_fen;
    out->total.cash_fen += out->reversals.cash_fen;
    return YN_OK;
}

static void csv_row(FILE *f, int32_t ymd, const char *section, const yn_ledger_sum *s)
{
    /* names are policy identifiers ([a-z0-9_] per POLICY.md); quote anyway */
    fprintf(
        f, "%" PRId32 ",%s,\"%s\",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 "\n",
        ymd, section, s->name, s->count, s->price_fen, s->subsidy_fen, s->wallet_fen, s->cash_fen);
}

int yn_ledger_settle_csv(yn_ledger *l, int32_t local_ymd, FILE *f)
{
    if (!f)
        return YN_EINVAL;
    yn_ledger_settlement s;
    int st = yn_ledger_settle(l, local_ymd, &s);
    if (st != YN_OK)
        return st;
    fprintf(f, "local_ymd,section,name,count,price_fen,subsidy_fen,wallet_fen,cash_fen\n");
    csv_row(f, local_ymd, "total", &s.total);
    csv_row(f, local_ymd, "meals", &s.meals);
    csv_row(f, local_ymd, "reversals", &s.reversals);
    for (int i = 0; i < s.n_categories; i++)
        csv_row(f, local_ymd, "category", &s.categories[i]);
    for (int i = 0; i < s.n_periods; i++)
        csv_row(f, local_ymd, "period", &s.periods[i]);
    for (int i = 0; i < s.n_sources; i++)
        csv_row(f, local_ymd, "source", &s.sources[i]);
    csv_row(f, local_ymd, "allocations", &s.allocations);
    csv_row(f, local_ymd, "topups", &s.topups);
    return ferror(f) ? YN_EIO : YN_OK;
}

static int fsync_dir_of(const char *path)
{
    char dir[PATH_MAX];
    copy_str(dir, sizeof dir, path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        copy_str(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int yn_ledger_settle_csv_path(yn_ledger *l, int32_t local_ymd, const char *path)
{
    CHECK_READY(l);
    if (!path)
        return YN_EINVAL;
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.new", path) >= (int)sizeof tmp)
        return YN_EINVAL;
    (void)unlink(tmp);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        yn_err("ledger: settlement %s: cannot create: %s", tmp, strerror(errno));
        return errno == ENOSPC ? YN_ENOSPC : errno == EROFS ? YN_EROFS : YN_EIO;
    }
    int st = yn_ledger_settle_csv(l, local_ymd, f);
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        st = st ? st : (errno == ENOSPC ? YN_ENOSPC : YN_EIO);
    if (fclose(f) != 0 && st == YN_OK)
        st = YN_EIO;
    if (st == YN_OK && (rename(tmp, path) != 0 || fsync_dir_of(path) != 0))
        st = YN_EIO;
    if (st != YN_OK) {
        yn_err("ledger: settlement %s not written: %s", path, yn_strerror(st));
        (void)unlink(tmp);
    }
    return st;
}

/* ---- verify ----------------------------------------------------------------------- */

static void report(yn_ledger_verify_report *out, int64_t seq, const char *fmt, const char *arg)
{
    if (out->what[0])
        return;
    out->first_bad_seq = seq;
    snprintf(out->what, sizeof out->what, fmt, arg ? arg : "");
}

/* The chain: seq without gaps, links, hashes, shares, the day index, and tap
 * ids increasing (after the records made before that rule, if any). */
static int verify_chain(yn_ledger *l, yn_ledger_verify_report *out)
{
    sqlite3_stmt *s = NULL, *runs = NULL;
    int64_t increasing_after = 0, max_tap = 0;
    int rc = meta_get_i64(l, "tap_ids_increase_after_seq", &increasing_after);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(l->db, "SELECT " JOURNAL_COLS " FROM journal ORDER BY seq", -1, &s,
                                NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            l->db, "SELECT first_seq, local_ymd FROM day_runs ORDER BY first_seq", -1, &runs, NULL);
    uint8_t prev[YN_LEDGER_HASH_LEN] = {0}, h[YN_LEDGER_HASH_LEN];
    int64_t expect = 1;
    int32_t prev_ymd = 0;
    int run_rc = SQLITE_DONE;
    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        yn_ledger_record r;
        row_to_record(s, &r);
        out->records++;
        rc = SQLITE_OK;
        if (out->what[0])
            continue; /* count the rest, report the first */
        int64_t layers_fen = 0;
        for (int i = 0; i < r.n_layers; i++)
            layers_fen += r.layers[i].fen;
        if (r.seq != expect) {
            report(out, expect, "record missing: seq jumps to the next one%s", NULL);
        } else if (memcmp(r.prev_hash, prev, sizeof prev) != 0) {
            report(out, r.seq, "prev_hash does not match the hash of the record before%s", NULL);
        } else if (!hash_record(l, &r, h) || memcmp(h, r.hash, sizeof h) != 0) {
            report(out, r.seq, "hash does not match the record's content: altered%s", NULL);
        } else if (r.price_fen != r.subsidy_fen + r.wallet_fen + r.cash_fen ||
                   (r.n_layers > 0 && layers_fen != r.subsidy_fen) || r.reason == YN_REASON_COUNT) {
            report(out, r.seq, "shares do not add up%s", NULL);
        } else if (r.tap_id && r.tap_id <= max_tap && r.seq > increasing_after) {
            report(out, r.seq, "tap id not above the tap ids before it%s", NULL);
        } else if (r.seq == 1 || r.local_ymd != prev_ymd) {
            run_rc = sqlite3_step(runs);
            if (run_rc != SQLITE_ROW || sqlite3_column_int64(runs, 0) != r.seq ||
                sqlite3_column_int(runs, 1) != r.local_ymd)
                report(out, r.seq, "day index has no run starting here%s", NULL);
        }
        memcpy(prev, r.hash, sizeof prev);
        prev_ymd = r.local_ymd;
        if (r.tap_id > max_tap)
            max_tap = r.tap_id;
        expect = r.seq + 1;
    }
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    if (rc == SQLITE_OK && !out->what[0] && sqlite3_step(runs) == SQLITE_ROW)
        report(out, sqlite3_column_int64(runs, 0), "day index has a run of no record%s", NULL);
    (void)run_rc;
    sqlite3_finalize(s);
    sqlite3_finalize(runs);
    return rc;
}

/* Every wallet and usage counter against the journal's sums. */
static int verify_cards(yn_ledger *l, yn_ledger_verify_report *out)
{
    static const char *const setup =
        "CREATE TEMP TABLE v_bal AS SELECT card_no, -SUM(wallet_fen) AS bal, MAX(seq) AS last"
        " FROM journal GROUP BY card_no;"
        "CREATE TEMP TABLE v_use AS SELECT card_no, local_ymd AS ymd, IFNULL(period, '') AS period,"
        " COUNT(*) AS n, SUM(subsidy_fen) AS fen FROM journal WHERE kind = 1 AND subsidy_fen > 0"
        " AND seq NOT IN (SELECT reverses_seq FROM journal WHERE reverses_seq IS NOT NULL)"
        " GROUP BY 1, 2, 3;"
        "CREATE INDEX temp.v_use_key ON v_use(card_no, ymd, period);"
        /* each card's newest tap id (bare column of MAX) */
        "CREATE TEMP TABLE v_tap AS SELECT card_no, tap_id AS tap, MAX(seq) AS seq FROM journal"
        " WHERE tap_id IS NOT NULL GROUP BY card_no;"
        "CREATE UNIQUE INDEX temp.v_tap_card ON v_tap(card_no);";
    static const char *const checks[] = {
        /* wallet balance and newest record, both ways */
        "SELECT b.card_no, 'wallet balance or newest record disagrees with the journal'"
        " FROM v_bal b LEFT JOIN cards c USING (card_no)"
        " WHERE c.card_no IS NULL OR c.balance_fen != b.bal OR c.last_seq != b.last LIMIT 1",
        "SELECT c.card_no, 'wallet or usage of a card without records' FROM cards c"
        " WHERE c.last_seq = 0 AND (c.balance_fen != 0 OR c.meal_seq != 0"
        " OR c.month_meals != 0 OR c.day_meals != 0 OR c.period_meals != 0"
        " OR c.day_subsidy_fen != 0) LIMIT 1",
        /* usage counters under their keys */
        "SELECT c.card_no, 'usage counters disagree with the journal' FROM cards c"
        " WHERE c.last_seq > 0 AND ("
        " c.month_meals != IFNULL((SELECT SUM(n) FROM v_use u WHERE u.card_no = c.card_no"
        "   AND u.ymd BETWEEN c.month_ym * 100 AND c.month_ym * 100 + 99), 0)"
        " OR c.month_subsidy_fen != IFNULL((SELECT SUM(fen) FROM v_use u"
        "   WHERE u.card_no = c.card_no AND u.ymd BETWEEN c.month_ym * 100"
        "   AND c.month_ym * 100 + 99), 0)"
        " OR c.day_meals != IFNULL((SELECT SUM(n) FROM v_use u WHERE u.card_no = c.card_no"
        "   AND u.ymd = c.day_ymd), 0)"
        " OR c.day_subsidy_fen != IFNULL((SELECT SUM(fen) FROM v_use u"
        "   WHERE u.card_no = c.card_no AND u.ymd = c.day_ymd), 0)"
        " OR c.period_meals != IFNULL((SELECT n FROM v_use u WHERE u.card_no = c.card_no"
        "   AND u.ymd = c.day_ymd AND u.period = c.period), 0)) LIMIT 1",
        /* each record's running balance and link to the card's previous record */
        "SELECT card_no, 'running balance or card link of a record is wrong', seq FROM"
        " (SELECT seq, card_no, wallet_after_fen AS w, card_prev_seq AS p,"
        "  -SUM(wallet_fen) OVER (PARTITION BY card_no ORDER BY seq ROWS UNBOUNDED PRECEDING) AS s,"
        "  IFNULL(LAG(seq) OVER (PARTITION BY card_no ORDER BY seq), 0) AS q FROM journal)"
        " WHERE w != s OR p != q ORDER BY seq LIMIT 1",
        /* the last tap id a replay is checked against */
        ("SELECT c.card_no, 'last tap id of the card disagrees with the journal' FROM cards c"
         " LEFT JOIN v_tap t USING (card_no) WHERE c.last_tap != IFNULL(t.tap, 0) LIMIT 1"),
    };
    int rc = sqlite3_exec(l->db, setup, NULL, NULL, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < sizeof checks / sizeof checks[0]; i++) {
        sqlite3_stmt *s;
        rc = sqlite3_prepare_v2(l->db, checks[i], -1, &s, NULL);
        if (rc != SQLITE_OK)
            break;
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW && !out->bad_card[0]) {
            col_text(s, 0, out->bad_card, sizeof out->bad_card);
            if (!out->what[0]) {
                snprintf(out->what, sizeof out->what, "card %s: %s", out->bad_card,
                         (const char *)sqlite3_column_text(s, 1));
                if (sqlite3_column_count(s) > 2)
                    out->first_bad_seq = sqlite3_column_int64(s, 2);
            }
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_finalize(s);
    }
    sqlite3_stmt *n;
    if (rc == SQLITE_OK &&
        (rc = sqlite3_prepare_v2(l->db, "SELECT COUNT(*) FROM cards WHERE last_seq > 0", -1, &n,
                                 NULL)) == SQLITE_OK) {
        if (sqlite3_step(n) == SQLITE_ROW)
            out->cards = sqlite3_column_int64(n, 0);
        sqlite3_finalize(n);
    }
    (void)sqlite3_exec(l->db,
                       "DROP TABLE IF EXISTS temp.v_bal; DROP TABLE IF EXISTS temp.v_use;"
                       " DROP TABLE IF EXISTS temp.v_tap;",
                       NULL, NULL, NULL);
    return rc;
}

int yn_ledger_verify(yn_ledger *l, yn_ledger_verify_report *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    int rc = tx_begin(l, false);
    if (rc == SQLITE_OK)
        rc = verify_chain(l, out);
    if (rc == SQLITE_OK)
        rc = verify_cards(l, out);
    if (rc != SQLITE_OK)
        return read_fail(l, rc, "verify");
    tx_end(l);
    if (out->what[0]) {
        yn_err("ledger %s: verify: seq %" PRId64 ": %s: %s", l->path, out->first_bad_seq, out->what,
               advice_for(YN_ECORRUPT));
        return YN_ECORRUPT;
    }
    return YN_OK;
}

/* ---- roster, blacklist, policies --------------------------------------------------- */

static int meta_get_i64(yn_ledger *l, const char *key, int64_t *v)
{
    sqlite3_stmt *s = l->st[ST_META_GET];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int meta_put_text(yn_ledger *l, const char *key, const char *value)
{
    sqlite3_stmt *s = l->st[ST_META_PUT];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
    return run(l, ST_META_PUT);
}

static int meta_put_i64(yn_ledger *l, const char *key, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return meta_put_text(l, key, buf);
}

static bool roster_ok(const yn_card_facts *cards, size_t n)
{
    if (!cards && n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!text_ok(cards[i].card_no, CARD_NO_MAX, false))
            return false;
    return true;
}

/* Inside an open write transaction: upsert the roster entries (checked with
 * roster_ok) and note roster_version. Returns a SQLite code. */
static int roster_put_tx(yn_ledger *l, const yn_card_facts *cards, size_t n, int64_t roster_version)
{
    int rc = SQLITE_OK;
    sqlite3_stmt *s = l->st[ST_ROSTER_PUT];
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        sqlite3_bind_text(s, 1, cards[i].card_no, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, cards[i].birth_ymd);
        sqlite3_bind_int64(s, 3, cards[i].flags);
        sqlite3_bind_int64(s, 4, cards[i].district);
        sqlite3_bind_int64(s, 5, cards[i].street);
        sqlite3_bind_int(s, 6, cards[i].expiry_ymd);
        sqlite3_bind_int64(s, 7, roster_version);
        rc = run(l, ST_ROSTER_PUT);
    }
    if (rc == SQLITE_OK)
        rc = meta_put_i64(l, "roster_version", roster_version);
    return rc;
}

int yn_ledger_roster_put(yn_ledger *l, const yn_card_facts *cards, size_t n, int64_t roster_version)
{
    CHECK_READY(l);
    if (!roster_ok(cards, n))
        return YN_EINVAL;
    int rc = tx_begin(l, true);
    if (rc == SQLITE_OK)
        rc = roster_put_tx(l, cards, n, roster_version);
    if (rc == SQLITE_OK)
        rc = tx_commit(l);
    return rc == SQLITE_OK ? YN_OK : fail(l, rc, "roster update");
}

static bool blacklist_ok(const yn_ledger_blacklist_entry *e, size_t n)
{
    if (!e && n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!text_ok(e[i].card_no, CARD_NO_MAX, false) || e[i].seq <= 0)
            return false;
    return true;
}

/* Inside an open write transaction: apply the changes (checked with
 * blacklist_ok) in order. skip_applied: the leading ones at or below the seq
 * applied already are skipped (a document re-applied), else refused. *st =
 * YN_ESTALE when a seq is not above the one before it (logged; the caller
 * rolls back). Returns a SQLite code. */
static int blacklist_tx(yn_ledger *l, const yn_ledger_blacklist_entry *e, size_t n,
                        bool skip_applied, int *st)
{
    *st = YN_OK;
    int64_t last = 0;
    int rc = meta_get_i64(l, "blacklist_seq", &last);
    size_t i = 0;
    while (skip_applied && i < n && e[i].seq <= last)
        i++;
    bool any = i < n;
    sqlite3_stmt *s = l->st[ST_BLACKLIST_PUT];
    for (; i < n && rc == SQLITE_OK; i++) {
        if (e[i].seq <= last) {
            yn_warn("ledger %s: blacklist change seq %" PRId64 " (card %s) refused: seq %" PRId64
                    " already applied; nothing of this update was applied",
                    l->path, e[i].seq, e[i].card_no, last);
            *st = YN_ESTALE;
            return SQLITE_OK;
        }
        sqlite3_bind_text(s, 1, e[i].card_no, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, e[i].seq);
        sqlite3_bind_int(s, 3, e[i].lost);
        rc = run(l, ST_BLACKLIST_PUT);
        last = e[i].seq;
    }
    if (rc == SQLITE_OK && any)
        rc = meta_put_i64(l, "blacklist_seq", last);
    return rc;
}

int yn_ledger_blacklist_apply_many(yn_ledger *l, const yn_ledger_blacklist_entry *e, size_t n)
{
    CHECK_READY(l);
    if (!blacklist_ok(e, n))
        return YN_EINVAL;
    int st = YN_OK;
    int rc = tx_begin(l, true);
    if (rc == SQLITE_OK)
        rc = blacklist_tx(l, e, n, false, &st);
    if (rc == SQLITE_OK && st != YN_OK) {
        rollback(l);
        return st;
    }
    if (rc == SQLITE_OK)
        rc = tx_commit(l);
    return rc == SQLITE_OK ? YN_OK : fail(l, rc, "blacklist update");
}

int yn_ledger_blacklist_apply(yn_ledger *l, int64_t seq, const char *card_no, bool lost)
{
    yn_ledger_blacklist_entry e = {.seq = seq, .lost = lost};
    if (!text_ok(card_no, CARD_NO_MAX, false))
        return YN_EINVAL;
    copy_str(e.card_no, sizeof e.card_no, card_no);
    return yn_ledger_blacklist_apply_many(l, &e, 1);
}

int yn_ledger_blacklist_seq(yn_ledger *l, int64_t *seq)
{
    CHECK_READY(l);
    if (!seq)
        return YN_EINVAL;
    int rc = meta_get_i64(l, "blacklist_seq", seq);
    return rc == SQLITE_OK ? YN_OK : read_fail(l, rc, "blacklist seq");
}

/* A policy document's id and version, once yn_policy_load accepts it. */
struct policy_doc {
    char id[128];
    int64_t version;
};

static int policy_check(const char *json, size_t len, struct policy_doc *doc, char *err,
                        size_t errlen)
{
    yn_policy *p = NULL;
    int st = yn_policy_load(json, len, &p, err, errlen);
    if (st != YN_OK)
        return st;
    copy_str(doc->id, sizeof doc->id, yn_policy_id(p));
    doc->version = yn_policy_version(p);
    yn_policy_free(p);
    return YN_OK;
}

/* Inside an open write transaction: store a checked document (policy_check)
 * and, if activate, make it the active one. *st = YN_ESTALE / YN_EDUPLICATE
 * (err says why) when the same id is stored at that or a higher version:
 * nothing written. Returns a SQLite code. */
static int policy_store_tx(yn_ledger *l, const struct policy_doc *doc, const char *json, size_t len,
                           bool activate, char *err, size_t errlen, int *st)
{
    *st = YN_OK;
    sqlite3_stmt *s = NULL;
    int64_t top = -1;
    int rc =
        sqlite3_prepare_v2(l->db, "SELECT MAX(version) FROM policies WHERE id = ?1", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(s, 1, doc->id, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
            top = sqlite3_column_int64(s, 0);
        rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
        sqlite3_finalize(s);
    }
    if (rc == SQLITE_OK && top >= doc->version) {
        if (err && errlen)
            snprintf(err, errlen, "policy %s version %" PRId64 " not newer than stored %" PRId64,
                     doc->id, doc->version, top);
        *st = top == doc->version ? YN_EDUPLICATE : YN_ESTALE;
        return SQLITE_OK;
    }
    if (rc == SQLITE_OK && activate)
        rc = sqlite3_exec(l->db, "UPDATE policies SET active = 0 WHERE active = 1", NULL, NULL,
                          NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(l->db,
                                "INSERT INTO policies(id, version, json, active)"
                                " VALUES (?1, ?2, ?3, ?4)",
                                -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(s, 1, doc->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, doc->version);
        sqlite3_bind_text(s, 3, json, (int)len, SQLITE_STATIC);
        sqlite3_bind_int(s, 4, activate);
        rc = sqlite3_step(s);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_finalize(s);
    }
    return rc;
}

int yn_ledger_policy_store(yn_ledger *l, const char *json, size_t len, bool activate, char *err,
                           size_t errlen)
{
    CHECK_READY(l);
    if (err && errlen)
        err[0] = '\0';
    if (!json)
        return YN_EINVAL;
    struct policy_doc doc;
    int st = policy_check(json, len, &doc, err, errlen);
    if (st != YN_OK)
        return st;
    int rc = tx_begin(l, true);
    if (rc == SQLITE_OK)
        rc = policy_store_tx(l, &doc, json, len, activate, err, errlen, &st);
    if (rc == SQLITE_OK && st != YN_OK) {
        tx_end(l); /* nothing written */
        return st;
    }
    if (rc == SQLITE_OK)
        rc = tx_commit(l);
    return rc == SQLITE_OK ? YN_OK : fail(l, rc, "policy store");
}

/* The parts in the order of yn_ledger_apply_update; the blacklist comes after
 * the allocations and the policy, so that a refused blacklist part shows that
 * everything written before it in the transaction is rolled back. */
int yn_ledger_apply_update(yn_ledger *l, const yn_ledger_update *u, char *err, size_t errlen)
{
    CHECK_READY(l);
    if (err && errlen)
        err[0] = '\0';
    if (!u || !roster_ok(u->cards, u->n_cards) || !blacklist_ok(u->blacklist, u->n_blacklist) ||
        (!u->allocs && u->n_allocs) || (!u->meta && u->n_meta)) {
        if (err && errlen)
            snprintf(err, errlen, "bad roster, blacklist, allocation or meta entry");
        return YN_EINVAL;
    }
    for (size_t i = 0; i < u->n_allocs; i++)
        if (!alloc_ok(&u->allocs[i])) {
            if (err && errlen)
                snprintf(err, errlen, "allocation %zu: bad id, card, source or amount", i);
            return YN_EINVAL;
        }
    for (size_t i = 0; i < u->n_meta; i++)
        if (!text_ok(u->meta[i].key, 64, false) || !u->meta[i].value) {
            if (err && errlen)
                snprintf(err, errlen, "meta entry %zu: bad key or value", i);
            return YN_EINVAL;
        }
    struct policy_doc doc;
    int st = YN_OK;
    if (u->policy_json && (st = policy_check(u->policy_json, u->policy_len, &doc, err, errlen)))
        return st;

    yn_ledger_record rec, last;
    bool appended = false;
    int rc = tx_begin(l, true);
    if (rc == SQLITE_OK && u->n_cards)
        rc = roster_put_tx(l, u->cards, u->n_cards, u->roster_version);
    for (size_t i = 0; rc == SQLITE_OK && i < u->n_allocs; i++) {
        rc = allocate_tx(l, &u->allocs[i], &u->alloc_when, &rec, &st);
        if (rc == SQLITE_OK && st == YN_OK) {
            last = rec;
            appended = true;
        }
    }
    st = YN_OK;
    if (rc == SQLITE_OK && u->policy_json) {
        char why[160];
        rc = policy_store_tx(l, &doc, u->policy_json, u->policy_len, u->policy_activate, why,
                             sizeof why, &st);
        if (st != YN_OK) /* the same or an older document: the stored one stays */
            yn_info("ledger %s: update: %s: kept as stored", l->path, why);
        st = YN_OK;
    }
    if (rc == SQLITE_OK)
        rc = blacklist_tx(l, u->blacklist, u->n_blacklist, true, &st);
    if (rc == SQLITE_OK && st != YN_OK) {
        rollback(l);
        if (err && errlen)
            snprintf(err, errlen, "blacklist seqs not increasing: nothing of the update applied");
        return st;
    }
    for (size_t i = 0; rc == SQLITE_OK && i < u->n_meta; i++)
        rc = meta_put_text(l, u->meta[i].key, u->meta[i].value);
    if (rc == SQLITE_OK)
        rc = appended ? tx_commit_append(l, &last) : tx_commit(l);
    if (rc != SQLITE_OK) {
        st = fail(l, rc, "update");
        if (err && errlen)
            snprintf(err, errlen, "storage: %s", yn_strerror(st));
        return st;
    }
    return YN_OK;
}

int yn_ledger_policy_active(yn_ledger *l, char **json, size_t *len, char *id, size_t idlen,
                            int64_t *version)
{
    CHECK_READY(l);
    if (!json)
        return YN_EINVAL;
    *json = NULL;
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(l->db, "SELECT id, version, json FROM policies WHERE active = 1",
                                -1, &s, NULL);
    if (rc != SQLITE_OK)
        return read_fail(l, rc, "policy read");
    int st = YN_ENOTFOUND;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_bytes(s, 2);
        *json = malloc((size_t)n + 1);
        if (!*json) {
            st = YN_ENOMEM;
        } else {
            memcpy(*json, sqlite3_column_text(s, 2), (size_t)n);
            (*json)[n] = '\0';
            if (len)
                *len = (size_t)n;
            if (id && idlen)
                copy_str(id, idlen, (const char *)sqlite3_column_text(s, 0));
            if (version)
                *version = sqlite3_column_int64(s, 1);
            st = YN_OK;
        }
    } else if (rc != SQLITE_DONE) {
        st = status_of(rc);
    }
    sqlite3_finalize(s);
    return st;
}

/* ---- sync ------------------------------------------------------------------------- */

/* One row of two integers from sql (binding ?1 = a), default 0 for NULL. */
static int query_i64x2(yn_ledger *l, const char *sql, int64_t a, int64_t *x, int64_t *y)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(l->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int64(s, 1, a);
    *x = *y = 0;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *x = sqlite3_column_int64(s, 0);
        if (sqlite3_column_count(s) > 1)
            *y = sqlite3_column_int64(s, 1);
    }
    sqlite3_finalize(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int yn_ledger_batch_next(yn_ledger *l, int64_t max_records, int64_t now_utc_s, yn_ledger_batch *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    if (max_records <= 0)
        return YN_EINVAL;
    int rc = tx_begin(l, true);
    int64_t id = 0, first = 0, last = 0, acked = 0, head = 0, unused;
    if (rc == SQLITE_OK)
        rc = query_i64x2(l,
                         "SELECT id, first_seq FROM batches WHERE acked_utc_s IS NULL"
                         " ORDER BY id LIMIT 1",
                         0, &id, &first);
    if (rc == SQLITE_OK && id) {
        rc = query_i64x2(l, "SELECT last_seq FROM batches WHERE id = ?1", id, &last, &unused);
        if (rc == SQLITE_OK) {
            tx_end(l);
            *out = (yn_ledger_batch){.id = id, .first_seq = first, .last_seq = last};
            return YN_OK;
        }
    }
    if (rc == SQLITE_OK)
        rc = meta_get_i64(l, "acked_seq", &acked);
    if (rc == SQLITE_OK)
        rc = query_i64x2(l, "SELECT IFNULL(MAX(seq), 0) FROM journal", 0, &head, &unused);
    if (rc == SQLITE_OK && head <= acked) {
        tx_end(l);
        return YN_ENOTFOUND;
    }
    if (rc == SQLITE_OK) {
        first = acked + 1;
        last = head - first + 1 > max_records ? first + max_records - 1 : head;
        sqlite3_stmt *s;
        rc = sqlite3_prepare_v2(l->db,
                                "INSERT INTO batches(first_seq, last_seq, created_utc_s)"
                                " VALUES (?1, ?2, ?3)",
                                -1, &s, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(s, 1, first);
            sqlite3_bind_int64(s, 2, last);
            sqlite3_bind_int64(s, 3, now_utc_s);
            rc = sqlite3_step(s);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
            sqlite3_finalize(s);
            id = sqlite3_last_insert_rowid(l->db);
        }
    }
    if (rc == SQLITE_OK)
        rc = tx_commit(l);
    if (rc != SQLITE_OK)
        return fail(l, rc, "sync batch");
    *out = (yn_ledger_batch){.id = id, .first_seq = first, .last_seq = last};
    return YN_OK;
}

int yn_ledger_batch_ack(yn_ledger *l, int64_t batch_id, int64_t now_utc_s)
{
    CHECK_READY(l);
    int rc = tx_begin(l, true);
    int64_t last = 0, acked_at = 0;
    if (rc == SQLITE_OK)
        rc = query_i64x2(l, "SELECT last_seq, IFNULL(acked_utc_s, 0) FROM batches WHERE id = ?1",
                         batch_id, &last, &acked_at);
    if (rc == SQLITE_OK && last == 0) {
        tx_end(l);
        return YN_ENOTFOUND;
    }
    if (rc == SQLITE_OK && acked_at) {
        tx_end(l);
        return YN_EDUPLICATE;
    }
    if (rc == SQLITE_OK) {
        sqlite3_stmt *s;
        rc = sqlite3_prepare_v2(l->db, "UPDATE batches SET acked_utc_s = ?2 WHERE id = ?1", -1, &s,
                                NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(s, 1, batch_id);
            sqlite3_bind_int64(s, 2, now_utc_s > 0 ? now_utc_s : 1);
            rc = sqlite3_step(s);
            rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
            sqlite3_finalize(s);
        }
    }
    if (rc == SQLITE_OK)
        rc = meta_put_i64(l, "acked_seq", last);
    if (rc == SQLITE_OK)
        rc = meta_put_i64(l, "last_sync_utc_s", now_utc_s);
    if (rc == SQLITE_OK)
        rc = tx_commit(l);
    return rc == SQLITE_OK ? YN_OK : fail(l, rc, "sync acknowledgement");
}

int yn_ledger_unsent(yn_ledger *l, int64_t now_utc_s, int64_t *count, int64_t *oldest_age_s)
{
    CHECK_READY(l);
    if (!count || !oldest_age_s)
        return YN_EINVAL;
    *count = *oldest_age_s = 0;
    int64_t acked = 0, head = 0, utc = 0, unused;
    int rc = tx_begin(l, false);
    if (rc == SQLITE_OK)
        rc = meta_get_i64(l, "acked_seq", &acked);
    if (rc == SQLITE_OK)
        rc = query_i64x2(l, "SELECT IFNULL(MAX(seq), 0) FROM journal", 0, &head, &unused);
    if (rc == SQLITE_OK && head > acked)
        rc = query_i64x2(l, "SELECT utc_s FROM journal WHERE seq = ?1", acked + 1, &utc, &unused);
    if (rc != SQLITE_OK)
        return read_fail(l, rc, "unsent count");
    tx_end(l);
    if (head > acked) {
        *count = head - acked;
        *oldest_age_s = now_utc_s > utc ? now_utc_s - utc : 0;
    }
    return YN_OK;
}

int yn_ledger_meta_put(yn_ledger *l, const char *key, const char *value)
{
    CHECK_READY(l);
    if (!text_ok(key, 64, false) || !value)
        return YN_EINVAL;
    int rc = meta_put_text(l, key, value); /* one statement: its own transaction */
    return rc == SQLITE_OK ? YN_OK : fail(l, rc, "meta update");
}

int yn_ledger_meta_get(yn_ledger *l, const char *key, char *value, size_t size)
{
    CHECK_READY(l);
    if (!key || !value || !size)
        return YN_EINVAL;
    sqlite3_stmt *s = l->st[ST_META_GET];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        copy_str(value, size, (const char *)sqlite3_column_text(s, 0));
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return YN_OK;
    return rc == SQLITE_DONE ? YN_ENOTFOUND : read_fail(l, rc, "meta read");
}

int yn_ledger_checkpoint(yn_ledger *l)
{
    CHECK_READY(l);
    if (l->read_only)
        return YN_OK;
    int rc = sqlite3_wal_checkpoint_v2(l->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc == SQLITE_OK && (rc = tx_begin(l, false)) == SQLITE_OK) {
        /* while idle, catch up with what other handles appended (e.g. sync's
         * allocations), so that the next tap need not walk over it */
        l->head_valid = false;
        rc = head_current(l);
        if (rc == SQLITE_OK)
            tx_end(l);
    }
    return rc == SQLITE_OK ? YN_OK : read_fail(l, rc, "checkpoint");
}

int yn_ledger_tap_id_max(yn_ledger *l, int64_t *tap_id)
{
    CHECK_READY(l);
    int rc = tx_begin(l, false);
    if (rc == SQLITE_OK) {
        l->head_valid = false; /* see what other handles appended */
        rc = head_current(l);
        if (rc == SQLITE_OK)
            tx_end(l);
    }
    if (rc != SQLITE_OK)
        return read_fail(l, rc, "highest tap id");
    *tap_id = l->tap_max;
    return YN_OK;
}

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

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Copy the ledger as it is to path.v<version>.bak with the online backup API,
 * atomically (written to .new, synced, renamed, directory synced). */
static int backup_before_migration(yn_ledger *l, int64_t version)
{
    char bak[PATH_MAX], tmp[PATH_MAX + 8], tmp_journal[PATH_MAX + 16];
    if (snprintf(bak, sizeof bak, "%s.v%" PRId64 ".bak", l->path, version) >= (int)sizeof bak)
        return SQLITE_CANTOPEN;
    snprintf(tmp, sizeof tmp, "%s.new", bak);
    snprintf(tmp_journal, sizeof tmp_journal, "%s-journal", tmp);
    (void)unlink(tmp);
    (void)unlink(tmp_journal);
    sqlite3 *dst = NULL;
    int rc = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_backup *b = sqlite3_backup_init(dst, "main", l->db, "main");
        if (!b) {
            rc = sqlite3_errcode(dst);
        } else {
            rc = sqlite3_backup_step(b, -1);
            int frc = sqlite3_backup_finish(b);
            rc = rc == SQLITE_DONE ? frc : rc;
        }
    }
    if (sqlite3_close(dst) != SQLITE_OK && rc == SQLITE_OK)
        rc = SQLITE_IOERR;
    if (rc == SQLITE_OK &&
        (fsync_path(tmp) != 0 || rename(tmp, bak) != 0 || fsync_dir_of(bak) != 0))
        rc = SQLITE_IOERR;
    if (rc != SQLITE_OK) {
        yn_err("ledger %s: backup to %s before the schema upgrade failed (sqlite %d): the "
               "upgrade is not run; free space next to the ledger and restart",
               l->path, bak, rc);
        (void)unlink(tmp);
        return rc;
    }
    yn_info("ledger %s: backed up to %s before the schema upgrade from v%" PRId64, l->path, bak,
            version);
    return SQLITE_OK;
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
               sqlite3_errmsg(l->db), rc, advice_for(status_of(rc)));
        return status_of(rc);
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
        return status_of(rc);
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
    copy_str(msg, sizeof msg, sqlite3_errmsg(l->db));
    if (rc != SQLITE_OK && !sqlite3_get_autocommit(l->db))
        (void)sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    int fk = sqlite3_exec(l->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    if (rc == SQLITE_OK && fk != SQLITE_OK) {
        rc = fk;
        copy_str(msg, sizeof msg, sqlite3_errmsg(l->db));
    }
    if (rc != SQLITE_OK) {
        int st = status_of(rc);
        yn_err("ledger %s: schema upgrade v%" PRId64 " -> v%d failed, nothing changed: %s "
               "(sqlite %d: %s): %s",
               l->path, version, target, yn_strerror(st), rc, msg, advice_for(st));
        return st;
    }
    if (version > 0)
        yn_info("ledger %s: schema upgraded v%" PRId64 " -> v%d", l->path, version, target);
    return YN_OK;
}

static void read_boot_id(const yn_ledger_opts *o, char *buf, size_t size)
{
    if (o->boot_id) {
        copy_str(buf, size, o->boot_id);
        return;
    }
    copy_str(buf, size, "unknown");
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
    int rc = tx_begin(l, !l->read_only);
    sqlite3_stmt *s = l->st[ST_META_GET];
    sqlite3_bind_text(s, 1, "terminal_id", -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
        col_text(s, 0, stored, sizeof stored);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rc = SQLITE_OK;
    if (rc == SQLITE_OK && stored[0] && strcmp(stored, l->terminal) != 0) {
        tx_end(l);
        yn_err("ledger %s belongs to terminal %s, but this terminal is %s: check "
               "terminal.id and ledger.path in board.conf",
               l->path, stored, l->terminal);
        return YN_ECONFIG;
    }
    if (rc == SQLITE_OK && !stored[0] && !l->read_only)
        rc = meta_put_text(l, "terminal_id", l->terminal);
    int64_t boot_no = 0;
    if (rc == SQLITE_OK)
        rc = meta_get_i64(l, "boot_no", &boot_no);
    stored[0] = '\0';
    sqlite3_bind_text(s, 1, "boot_id", -1, SQLITE_STATIC);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW)
        col_text(s, 0, stored, sizeof stored);
    sqlite3_reset(s);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        rc = SQLITE_OK;
    if (rc == SQLITE_OK && !l->read_only && (boot_no == 0 || strcmp(stored, boot_id) != 0)) {
        boot_no++;
        rc = meta_put_i64(l, "boot_no", boot_no);
        if (rc == SQLITE_OK)
            rc = meta_put_text(l, "boot_id", boot_id);
    }
    if (rc == SQLITE_OK && !l->read_only)
        rc = head_current(l); /* the highest tap id, before the first tap asks */
    if (rc == SQLITE_OK)
        rc = tx_commit(l);
    if (rc != SQLITE_OK) {
        int st = status_of(rc);
        yn_err("ledger %s: cannot read or stamp the terminal identity: %s (sqlite %d: %s): %s",
               l->path, yn_strerror(st), rc, sqlite3_errmsg(l->db), advice_for(st));
        if (!sqlite3_get_autocommit(l->db))
            (void)run(l, ST_ROLLBACK);
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
    snprintf(sql, sizeof sql, "PRAGMA cache_size = -%d", CACHE_KIB);
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
        int st = status_of(rc);
        yn_err("ledger %s: cannot set up the connection: %s (sqlite %d: %s): %s", l->path,
               yn_strerror(st), rc, sqlite3_errmsg(l->db), advice_for(st));
        return st;
    }
    return YN_OK;
}

int yn_ledger_open(const yn_ledger_opts *o, yn_ledger **out)
{
    if (!out)
        return YN_EINVAL;
    *out = NULL;
    if (!o || !o->path || !*o->path || !text_ok(o->terminal_id, YN_LEDGER_ID_MAX, false) ||
        o->min_interval_s < 0 || o->reverse_window_s < 0 || o->schema_target < 0 ||
        o->offline_cap_fen < 0 || o->offline_after_s < 0 || o->schema_target > SCHEMA_LATEST)
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
    l->path = strdup(o->path);
    l->md_ctx = EVP_MD_CTX_new();
    l->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!l->path || !l->md_ctx || !l->md) {
        yn_ledger_close(l);
        return YN_ENOMEM;
    }
    copy_str(l->terminal, sizeof l->terminal, o->terminal_id);
    l->min_interval_ms = (int64_t)o->min_interval_s * 1000;
    l->reverse_window_s = o->reverse_window_s;
    l->offline_cap_fen = o->offline_cap_fen;
    l->offline_after_s = o->offline_after_s > 0 ? o->offline_after_s : DEFAULT_OFFLINE_AFTER_S;
    l->read_only = o->read_only;

    int flags = SQLITE_OPEN_NOMUTEX |
                (o->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    int rc = sqlite3_open_v2(o->path, &l->db, flags, NULL);
    int st;
    if (rc != SQLITE_OK) {
        st = status_of(rc);
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
        rc = sqlite3_prepare_v3(l->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &l->st[i], NULL);
        if (rc != SQLITE_OK) {
            st = status_of(rc);
            yn_err("ledger %s: cannot prepare a statement: %s (sqlite %d: %s): %s", o->path,
                   yn_strerror(st), rc, sqlite3_errmsg(l->db), advice_for(st));
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
    EVP_MD_free(l->md);
    EVP_MD_CTX_free(l->md_ctx);
    free(l->path);
    free(l);
}
