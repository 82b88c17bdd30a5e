/* ledger_int.h — private to the ledger's files (firmware/ledger*.c): the
 * handle, the prepared statements, the card row and the helpers the parts
 * share. Nothing outside the ledger includes it; the public API is ledger.h.
 *
 * The parts, by responsibility (firmware/ledger/LEDGER.md, "Code layout"):
 *   ledger.c           core: status mapping, transactions, the hash-chained
 *                      append, the card row and its usage counters, meta
 *   ledger_schema.c    schema, migrations with their backups, open and close
 *   ledger_counter.c   the counter: debit, reversal, top-up, allocations
 *   ledger_district.c  what the district sends: roster, blacklist, policies,
 *                      whole update documents
 *   ledger_outbox.c    the sync outbox: batches, acknowledgements, meta,
 *                      checkpoints
 *   ledger_report.c    reads: kiosk balance, records, head; settlement (日结)
 *   ledger_verify.c    verification of the chain and of every card row
 *   ledger_health.c    fit to sell from? the lock, the high-water mark and
 *                      the quick check of pages and the chain's tail
 *   ledger_restore.c   records the ledger lost, restored from the district
 *
 * Internal functions shared between the parts are named yn_lg_*. They return
 * SQLite result codes (the public functions map them to enum yn_status once,
 * through yn_lg_fail/yn_lg_read_fail). */
#ifndef YN_LEDGER_INT_H
#define YN_LEDGER_INT_H

#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "ledger.h"

#define SCHEMA_LATEST           6
#define CACHE_KIB               8192 /* SQLite page cache per handle */
#define WALK_MAX                256  /* records walked for the kiosk's last meals */
#define ENC_MAX                 1024 /* canonical encoding of one record, bytes */
#define CARD_NO_MAX             20   /* as yn_card_facts.card_no, incl. NUL */
#define DEFAULT_BUSY_MS         1000
#define DEFAULT_OFFLINE_AFTER_S (3 * 300) /* 3 x the default sync interval */

#define JOURNAL_COLS                                                                               \
    "seq, terminal, tap_id, card_no, kind, category, period, local_ymd, price_fen, "               \
    "subsidy_fen, wallet_fen, cash_fen, src1, fen1, src2, fen2, src3, fen3, src4, fen4, "          \
    "weight_g, per100g_fen, reason, operator, utc_s, mono_ms, boot_no, clock_trusted, "            \
    "reverses_seq, ref, policy_version, wallet_after_fen, card_prev_seq, prev_hash, hash, "        \
    "identified, ident, supervisor"
#define JOURNAL_NCOLS 38

#define STATE_COLS                                                                                 \
    "balance_fen, last_seq, meal_seq, meal_utc_s, meal_mono_ms, meal_boot, month_ym, "             \
    "month_meals, month_subsidy_fen, day_ymd, day_meals, period, period_meals, last_tap, "         \
    "day_subsidy_fen, stamp_seq"
#define STATE_NCOLS 16

/* Statements prepared once per handle (SQLITE_PREPARE_PERSISTENT). */
enum stmt_id {
    ST_BEGIN_WRITE,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_TAP_NEWEST,
    ST_BY_SEQ,
    ST_BY_REVERSES,
    ST_NOTICE_OF,
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
    ST_IDENT_UNBIND,
    ST_BLACKLIST_PUT,
    ST_IDENT_BL_PUT,
    ST_IDENT_GET,
    ST_ROSTER_FIND,
    ST_MANUAL_COUNT,
    ST_COUNT
};

/* SQL of each statement, prepared at open (ledger_schema.c). */
extern const char *const yn_lg_stmt_sql[ST_COUNT];

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
    bool ready;             /* statements prepared (schema is the latest) */
    int lock_fd;            /* <path>.lock held (flock) for the handle's life; -1: none */
    int64_t storage_errors; /* storage failures reported so far (yn_lg_fail, yn_lg_read_fail) */
    int last_storage_error; /* the yn_status of the last one */
    sqlite3_stmt *st[ST_COUNT];
    EVP_MD_CTX *md_ctx; /* reused for every record hash */
    EVP_MD *md;         /* SHA-256, fetched once */
    /* The journal's last record as this handle last saw it committed. Valid
     * while the file's data version is head_dv: any other commit (another
     * connection, another process, any other operation) changes that version,
     * and yn_lg_head_current() reads the head again. */
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
    int64_t stamp_seq;       /* newest subsidised meal if not reversed since (the card
                                stamp should name it); 0 = none */
};

#define CHECK_READY(l)                                                                             \
    do {                                                                                           \
        if (!(l) || !(l)->ready)                                                                   \
            return YN_EINVAL;                                                                      \
    } while (0)

/* ledger.c — helpers, status mapping, statements and transactions */
void yn_lg_copy_str(char *dst, size_t size, const char *src);
bool yn_lg_text_ok(const char *s, size_t max, bool optional);
bool yn_lg_elapsed_ms(const yn_ledger *l, int64_t then_boot, int64_t then_mono_ms,
                      int64_t then_utc_s, const yn_ledger_when *now, int64_t *out_ms);
int yn_lg_status_of(int src);
const char *yn_lg_advice_for(int status);
void yn_lg_rollback(yn_ledger *l);
int yn_lg_fail(yn_ledger *l, int src, const char *what);
int yn_lg_read_fail(yn_ledger *l, int rc, const char *what);
int yn_lg_run(yn_ledger *l, enum stmt_id id);
int yn_lg_tx_begin(yn_ledger *l, bool write);
int yn_lg_tx_commit(yn_ledger *l);
int yn_lg_tx_commit_append(yn_ledger *l, const yn_ledger_record *r);
void yn_lg_tx_end(yn_ledger *l);
void yn_lg_bind_text_or_null(sqlite3_stmt *s, int i, const char *t);
void yn_lg_col_text(sqlite3_stmt *s, int i, char *dst, size_t size);

/* ledger.c — the journal: canonical hash, rows, head, append */
bool yn_lg_hash_record(yn_ledger *l, const yn_ledger_record *r, uint8_t out[YN_LEDGER_HASH_LEN]);
void yn_lg_row_to_record(sqlite3_stmt *s, yn_ledger_record *r);
int yn_lg_record_by(yn_ledger *l, enum stmt_id id, int64_t key, yn_ledger_record *r, bool *found);
void yn_lg_result_from_record(const yn_ledger_record *r, yn_ledger_result *out);
unsigned int yn_lg_data_version(yn_ledger *l);
void yn_lg_head_remember(yn_ledger *l, const yn_ledger_record *r);
int yn_lg_head_current(yn_ledger *l);
int yn_lg_append(yn_ledger *l, yn_ledger_record *r);
void yn_lg_record_base(yn_ledger *l, yn_ledger_record *r, int kind, const char *card_no,
                       const yn_ledger_when *when);

/* ledger.c — card state and usage counters */
void yn_lg_state_from_row(sqlite3_stmt *s, struct card_state *cs);
int yn_lg_state_get(yn_ledger *l, const char *card_no, struct card_state *cs);
int yn_lg_state_put(yn_ledger *l, const char *card_no, const struct card_state *cs);
void yn_lg_usage_of(const struct card_state *cs, const yn_moment *m, yn_usage *u);
void yn_lg_usage_add(struct card_state *cs, int32_t ymd, const char *period, int64_t subsidy_fen);
void yn_lg_usage_remove(struct card_state *cs, int32_t ymd, const char *period,
                        int64_t subsidy_fen);
void yn_lg_state_apply(struct card_state *cs, const yn_ledger_record *r,
                       const yn_ledger_record *reversed);

/* ledger.c — meta */
int yn_lg_meta_get_i64(yn_ledger *l, const char *key, int64_t *v);
int yn_lg_meta_put_text(yn_ledger *l, const char *key, const char *value);
int yn_lg_meta_put_i64(yn_ledger *l, const char *key, int64_t v);

/* ledger_health.c — the lock, the high-water mark */
int yn_lg_lock_take(yn_ledger *l);
void yn_lg_lock_release(yn_ledger *l);
int yn_lg_mark_lower(yn_ledger *l, int64_t head_seq, const uint8_t head_hash[YN_LEDGER_HASH_LEN]);

/* ledger_counter.c — credits; allocations are also applied by district updates */
int yn_lg_credit(yn_ledger *l, struct card_state *cs, yn_ledger_record *rec, int64_t amount_fen);
bool yn_lg_alloc_ok(const yn_ledger_alloc *a);
int yn_lg_allocate_tx(yn_ledger *l, const yn_ledger_alloc *a, const yn_ledger_when *when,
                      yn_ledger_record *rec, int *st);

#endif
