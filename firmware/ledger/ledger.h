/* ledger.h — the terminal's durable ledger: one SQLite file holding the
 * append-only, hash-chained transaction journal and the state kept in step
 * with it (wallets, usage counters), plus what the district sends (roster,
 * blacklist, policies, allocations) and what sync needs (batches, meta).
 *
 * Every operation is one SQLite transaction: it happened entirely or not at
 * all (a whole update document too: yn_ledger_apply_update). A debit returns YN_OK only after its
 * commit returned (WAL, synchronous=FULL): that is the moment the sale may be shown as 成功.
 * Schema, invariants, the hash encoding and the refusal rules: firmware/ledger/LEDGER.md.
 *
 * A handle is not thread-safe: one thread uses it at a time. Several
 * processes may open the same file; writers wait up to busy_timeout_ms.
 *
 * Tap ids (debits and top-ups) are the terminal's contract with the ledger:
 * every new tap gets an id above every id used before on this ledger (a
 * counter kept across restarts, or a clock-based id), and a retry of the same
 * tap reuses its id. The ledger keeps no index of tap ids: a retry is
 * recognised as the card's last tap, and any other id not above the highest
 * one journaled is refused (YN_EINVAL, logged "tap id not increasing").
 * LEDGER.md, "Tap ids". */
#ifndef YN_LEDGER_H
#define YN_LEDGER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "ident.h"
#include "policy.h"
#include "status.h"

#define YN_LEDGER_ID_MAX   17 /* terminal/operator ids: 1..16 bytes + NUL (as config.h) */
#define YN_LEDGER_REF_MAX  65 /* allocation ids and other references, incl. NUL */
#define YN_LEDGER_HASH_LEN 32 /* SHA-256 */
#define YN_LEDGER_LAST_MAX 10 /* meals listed by yn_ledger_balance() */
#define YN_LEDGER_SUM_MAX  16 /* rows per section of a settlement */

/* Default 冲正 window when neither the options nor a policy give one. */
#define YN_LEDGER_DEFAULT_REVERSE_WINDOW_S 600

/* Kinds of journal records. The values are stored and hashed: never renumber. */
enum yn_ledger_kind {
    YN_LEDGER_MEAL = 1,       /* a sale at the counter */
    YN_LEDGER_REVERSAL = 2,   /* 冲正 of a meal: every share negated */
    YN_LEDGER_ALLOCATION = 3, /* district credit into the wallet */
    YN_LEDGER_TOPUP = 4,      /* cash paid in at the counter into the wallet */
    /* A notice, no money: the card stamp of meal reverses_seq could not be
     * written, or its outcome is unknown, after that meal committed: an
     * offline double-subsidy window of at most that one meal (LEDGER.md,
     * "Card stamps"). All amounts 0; ref says why. */
    YN_LEDGER_STAMP_MISSING = 5,
};
#define YN_LEDGER_KIND_MAX YN_LEDGER_STAMP_MISSING /* highest kind this firmware writes */

/* How the holder of a meal was identified (LEDGER.md, "How the holder was
 * identified"; firmware/core/CARD.md §8). Stored and hashed: never renumber. A
 * record that is not a meal, and every record made before the field
 * existed, is YN_LEDGER_BY_CARD; 0 in a record built in memory means the
 * same. */
enum yn_ledger_by {
    YN_LEDGER_BY_CARD = 1,   /* the 颐年卡 read and authenticated */
    YN_LEDGER_BY_IDENT = 2,  /* an identity-only card: its identifier bound in the roster */
    YN_LEDGER_BY_MANUAL = 3, /* 忘带卡: staff looked the senior up, a supervisor authorised */
};
#define YN_LEDGER_BY_MAX YN_LEDGER_BY_MANUAL
/* "card", "identity", "manual" (CSV, logs, the district's reports); "?" otherwise. */
const char *yn_ledger_by_name(int by);

typedef struct yn_ledger yn_ledger;

typedef struct yn_ledger_opts {
    const char *path;         /* SQLite file; created when absent (unless read_only) */
    const char *terminal_id;  /* this terminal; must match the id the file was made with */
    int32_t min_interval_s;   /* least time between two meals of one card; 0 = no limit */
    int32_t reverse_window_s; /* 冲正 window; 0 = the policy's, else the default */
    int32_t busy_timeout_ms;  /* wait for another writer; 0 = 1000 ms */
    bool read_only;           /* open without writing (diagnostics, exports) */
    int64_t max_pages;        /* storage quota in pages of 4 KiB; 0 = none */
    const char *boot_id;      /* NULL: /proc/sys/kernel/random/boot_id (tests set it) */
    int schema_target;        /* 0: latest. Tests only: build an older ledger (close-only) */
    /* Offline cap (LEDGER.md, "Offline cap"): while the terminal is offline, a
     * card gets at most offline_cap_fen of subsidy per local day. Offline =
     * meta last_sync_utc_s (written by every successful sync: a batch
     * acknowledged or an update applied) is absent or older than
     * offline_after_s at the tap's wall-clock time. */
    int64_t offline_cap_fen; /* fen per card per local day while offline; 0 = no cap */
    int32_t offline_after_s; /* no sync for this long = offline; 0 = 3 x 300 s */
    /* Hold the ledger's lock (flock on <path>.lock, which names the holder's
     * pid) for the handle's life: one daemon per ledger (LEDGER.md, "One
     * daemon per ledger"). YN_EBUSY when another process holds it. The
     * daemon's counter handle and yinian-diag's writing commands take it;
     * sync's handle inside the daemon and read-only checks do not. */
    bool lock;
    int32_t cache_kib; /* SQLite page cache of the handle, KiB; 0 = 8192 (a background
                          verification takes less: it reads every page once) */
} yn_ledger_opts;

/* Wall and monotonic time of an operation (UTC seconds, CLOCK_MONOTONIC ms). */
typedef struct yn_ledger_when {
    int64_t utc_s;      /* wall clock, UTC seconds */
    int64_t mono_ms;    /* CLOCK_MONOTONIC, milliseconds since boot */
    bool clock_trusted; /* wall clock synced with the server since boot */
} yn_ledger_when;

/* Outcome of a debit, reversal, allocation or top-up. */
typedef struct yn_ledger_result {
    int64_t seq;              /* journal record written (or found, on a replay); 0 if none */
    int kind;                 /* enum yn_ledger_kind of that record */
    yn_decision decision;     /* shares as journaled (negated for a reversal) */
    int64_t wallet_after_fen; /* wallet balance right after that record */
    /* A debit's answer, whatever its outcome (a new meal, a replay, a
     * refusal): the card's newest subsidised meal not reversed since — the
     * record its card stamp should name; 0 = none (LEDGER.md, "Card stamps"). */
    int64_t stamp_seq;
} yn_ledger_result;

/* One tap at the counter. */
typedef struct yn_ledger_tap {
    int64_t tap_id;            /* > 0: above every tap id used before; a retry reuses it */
    const yn_card_facts *card; /* as read from the card (roster may override) */
    const yn_meal *meal;
    const yn_canteen *canteen; /* where this terminal stands */
    const char *operator_id;   /* staff at the counter, or NULL */
    yn_ledger_when when;
    /* Optional: usage known from elsewhere (the card's last-meal stamp, for a
     * meal eaten at another canteen). The policy sees, field by field, the
     * larger of this and the ledger's own count. NULL = none. */
    const yn_usage *usage_floor;
    /* How the holder was identified (enum yn_ledger_by; 0 = the card). For
     * YN_LEDGER_BY_IDENT and YN_LEDGER_BY_MANUAL the roster's entry of
     * card->card_no gives every fact the policy needs (the card's are not
     * used) and the policy must accept the way (yn_policy_identity_only,
     * yn_policy_manual_entry): its offline cap applies, and for manual entry
     * its daily cap per terminal (LEDGER.md, "How the holder was identified"). */
    int by;
    const char *ident;         /* BY_IDENT: the identifier read; the roster must bind it
                                  to card->card_no. NULL otherwise */
    const char *supervisor_id; /* BY_MANUAL: who authorised (operator_id served; both
                                  required, and different). NULL otherwise */
} yn_ledger_tap;

/* A journal record as stored (see LEDGER.md for every field). */
typedef struct yn_ledger_record {
    int64_t seq; /* 1, 2, 3, … without gaps */
    char terminal[YN_LEDGER_ID_MAX];
    int64_t tap_id; /* client id; 0 = none (allocations, reversals) */
    char card_no[20];
    int kind;                   /* enum yn_ledger_kind */
    char category[YN_NAME_MAX]; /* meal's category, "" if none */
    char period[YN_NAME_MAX];   /* meal period, "" if none */
    int32_t local_ymd;          /* Asia/Shanghai date of the record */
    int64_t price_fen;          /* = subsidy_fen + wallet_fen + cash_fen */
    int n_layers;
    yn_layer_share layers[YN_POLICY_MAX_LAYERS]; /* sum = subsidy_fen */
    int64_t subsidy_fen;
    int64_t wallet_fen;         /* taken from the wallet; < 0 puts money in */
    int64_t cash_fen;           /* paid in cash; < 0 paid back */
    int32_t weight_g;           /* 0 unless weighed */
    int64_t price_per_100g_fen; /* 0 unless weighed */
    enum yn_reason reason;      /* why no subsidy (NONE if subsidised or not a meal) */
    char operator_id[YN_LEDGER_ID_MAX];
    int64_t utc_s;
    int64_t mono_ms;
    int64_t boot_no; /* which boot mono_ms counts from (1, 2, …) */
    bool clock_trusted;
    int64_t reverses_seq; /* the meal a reversal undoes, or a stamp notice is about; 0 otherwise */
    char ref[YN_LEDGER_REF_MAX];           /* allocation id, "" otherwise */
    int64_t policy_version;                /* policy that decided a meal; 0 otherwise */
    int64_t wallet_after_fen;              /* card's wallet balance after this record */
    int64_t card_prev_seq;                 /* previous record of the same card; 0 if first */
    int by;                                /* enum yn_ledger_by; 0 = the card */
    char ident[YN_IDENT_MAX];              /* BY_IDENT: the card's identifier, else "" */
    char supervisor_id[YN_LEDGER_ID_MAX];  /* BY_MANUAL: who authorised, else "" */
    uint8_t prev_hash[YN_LEDGER_HASH_LEN]; /* hash of record seq-1; zeros for seq 1 */
    uint8_t hash[YN_LEDGER_HASH_LEN];
} yn_ledger_record;

/* --- open, close ----------------------------------------------------------- */

/* Open (creating, migrating with a backup first) the ledger. On error *out is
 * NULL and the log says which file and why. */
int yn_ledger_open(const yn_ledger_opts *opts, yn_ledger **out) YN_MUST_CHECK;
void yn_ledger_close(yn_ledger *l);
/* Schema version this firmware writes (PRAGMA user_version). */
int yn_ledger_schema_version(void);

/* --- ledger files, for the tools (firmware updates) ------------------------ */

/* The schema version (PRAGMA user_version) of the ledger file at path. */
int yn_ledger_file_schema(const char *path, int *version) YN_MUST_CHECK;
/* SQLite online backup of the ledger file `from` into `to`: with standalone,
 * a new file written as to.new (journal mode DELETE), synced, renamed into
 * place and its folder synced, the migration backups' way; without, `to` is a
 * live ledger overwritten in one of its transactions (a restore). */
int yn_ledger_file_copy(const char *from, const char *to, bool standalone) YN_MUST_CHECK;

/* --- the counter ----------------------------------------------------------- */

/* Decide and record one tap. Returns
 *   YN_OK         committed: out holds seq, decision and wallet balance after;
 *   YN_EDUPLICATE tap_id is the card's last tap (a retry, even after a crash):
 *                 out holds that ORIGINAL result (kind and seq of the record
 *                 it made), nothing is charged again;
 *   YN_EREFUSED   refused (blacklist, too soon, or the policy): out->decision
 *                 has allowed = false and the reason; nothing is written;
 *   YN_ENOSPC / YN_EROFS / YN_EBUSY / YN_EIO / YN_ECORRUPT: not recorded
 *                 (rolled back), out->decision.reason = YN_REASON_STORAGE;
 *   YN_EINVAL     bad input (policy's verdict on the meal or card, bad ids), or
 *                 a tap id that is not the card's last tap and not above the
 *                 highest tap id journaled: nothing is written.
 * The ledger commits first: the card's stamp is written by the caller after
 * YN_OK returned (LEDGER.md, "Card stamps"); out->stamp_seq says which meal
 * the card's stamp should name. */
int yn_ledger_debit(yn_ledger *l, const yn_policy *p, const yn_ledger_tap *tap,
                    yn_ledger_result *out) YN_MUST_CHECK;

/* The card stamp of subsidised meal meal_seq was not written, or its outcome
 * is unknown (card pulled, reply lost, the terminal stopped before it knew),
 * after that meal committed: record a YN_LEDGER_STAMP_MISSING notice (no
 * money) naming it, cause (1..64 printable bytes, e.g. "card_gone",
 * "restart") in its ref. YN_OK with out->seq the notice; YN_EDUPLICATE when
 * that meal has a notice already (out holds it); YN_ENOTFOUND: no such
 * record; YN_EREFUSED: not a subsidised meal of this ledger; storage errors
 * as for a debit. */
int yn_ledger_stamp_missing(yn_ledger *l, int64_t meal_seq, const char *cause,
                            const yn_ledger_when *when, yn_ledger_result *out) YN_MUST_CHECK;

/* 冲正: undo meal seq by a new reversal record (every share negated), giving
 * back the wallet share and the usage it counted. p (may be NULL) gives the
 * window when the options do not. YN_ENOTFOUND: no such record; YN_EREFUSED:
 * not a meal, or outside the window; YN_EDUPLICATE: already reversed (out
 * holds that reversal); storage errors as for a debit. */
int yn_ledger_reverse(yn_ledger *l, const yn_policy *p, int64_t seq, const char *operator_id,
                      const yn_ledger_when *when, yn_ledger_result *out) YN_MUST_CHECK;

/* District credit of amount_fen (> 0) into card's wallet, from funding
 * source (e.g. "district"), idempotent on alloc_id: YN_EDUPLICATE when that id
 * was applied before (out holds the original record). */
int yn_ledger_allocate(yn_ledger *l, const char *alloc_id, const char *card_no, const char *source,
                       int64_t amount_fen, const yn_ledger_when *when,
                       yn_ledger_result *out) YN_MUST_CHECK;

/* Cash top-up of amount_fen (> 0) into card's wallet at the counter. Its
 * tap_id follows the rules of a debit's (same sequence of ids): the card's
 * last tap again is YN_EDUPLICATE with the original record, an id neither that
 * nor above the highest journaled is YN_EINVAL. */
int yn_ledger_topup(yn_ledger *l, int64_t tap_id, const char *card_no, int64_t amount_fen,
                    const char *operator_id, const yn_ledger_when *when,
                    yn_ledger_result *out) YN_MUST_CHECK;

/* --- the kiosk ------------------------------------------------------------- */

typedef struct yn_ledger_meal_line {
    int64_t seq;
    char terminal[YN_LEDGER_ID_MAX]; /* where it was eaten */
    int32_t local_ymd;
    char period[YN_NAME_MAX];
    int64_t price_fen;
    int64_t subsidy_fen;
    int64_t paid_fen; /* wallet + cash: what the diner paid */
    bool reversed;    /* undone by a 冲正 since */
} yn_ledger_meal_line;

typedef struct yn_ledger_account {
    int64_t wallet_fen;        /* balance now */
    int32_t month_ym;          /* the month counted below, YYYYMM (Asia/Shanghai) */
    int32_t meals_month;       /* subsidised meals this month */
    int64_t subsidy_month_fen; /* subsidy received this month */
    int32_t meals_day;         /* subsidised meals today (Asia/Shanghai) */
    int64_t subsidy_day_fen;   /* subsidy received today */
    int n_last;
    yn_ledger_meal_line last[YN_LEDGER_LAST_MAX]; /* newest first */
} yn_ledger_account;

/* What the senior sees at the kiosk, for the month of now_utc_s. An unknown
 * card is YN_OK with everything zero. n_last is clamped to YN_LEDGER_LAST_MAX. */
int yn_ledger_balance(yn_ledger *l, const char *card_no, int64_t now_utc_s, int n_last,
                      yn_ledger_account *out) YN_MUST_CHECK;

/* --- 日结 ------------------------------------------------------------------ */

typedef struct yn_ledger_sum {
    char name[YN_NAME_MAX]; /* category, period or funding source; "" = none */
    int64_t count;          /* records, a reversal counting -1 */
    int64_t price_fen;
    int64_t subsidy_fen; /* for a funding source: its share */
    int64_t wallet_fen;
    int64_t cash_fen;
} yn_ledger_sum;

typedef struct yn_ledger_settlement {
    int32_t local_ymd;
    int64_t first_seq, last_seq; /* records of the day; 0 if none */
    yn_ledger_sum meals;         /* meal records, gross */
    yn_ledger_sum reversals;     /* reversal records (count and fen negative) */
    yn_ledger_sum total;         /* meals + reversals: the day's net sales */
    int n_categories, n_periods, n_sources;
    yn_ledger_sum categories[YN_LEDGER_SUM_MAX];
    yn_ledger_sum periods[YN_LEDGER_SUM_MAX];
    yn_ledger_sum sources[YN_LEDGER_SUM_MAX]; /* funding layers */
    yn_ledger_sum allocations;                /* district credits (wallet_fen < 0) */
    yn_ledger_sum topups;                     /* cash top-ups (wallet_fen < 0, cash_fen > 0) */
    yn_ledger_sum stamp_missing;              /* notices of meals whose card stamp is missing */
    yn_ledger_sum by_ident;                   /* meals of identity-only cards (gross) */
    yn_ledger_sum by_manual;                  /* meals by manual entry, 忘带卡 (gross) */
} yn_ledger_settlement;

/* Sums of one local day (YYYYMMDD). Reversals are counted on the day they are
 * made, netting the meal they undo. */
int yn_ledger_settle(yn_ledger *l, int32_t local_ymd, yn_ledger_settlement *out) YN_MUST_CHECK;
/* The same as CSV (header line first; amounts in integer fen). */
int yn_ledger_settle_csv(yn_ledger *l, int32_t local_ymd, FILE *out) YN_MUST_CHECK;
/* The same written atomically to path (path.new, fsync, rename, fsync dir). */
int yn_ledger_settle_csv_path(yn_ledger *l, int32_t local_ymd, const char *path) YN_MUST_CHECK;

/* --- integrity ------------------------------------------------------------- */

typedef struct yn_ledger_verify_report {
    int64_t records;       /* journal records checked */
    int64_t cards;         /* wallets checked against the journal */
    int64_t first_bad_seq; /* first record that breaks the chain; 0 if none */
    char bad_card[20];     /* first card whose wallet disagrees; "" if none */
    char what[160];        /* what is wrong, for the technician */
} yn_ledger_verify_report;

/* Walk the whole chain (seq without gaps, prev_hash links, each hash
 * recomputed, shares adding up, day index) and compare every wallet and its
 * usage head with the journal. YN_OK, or YN_ECORRUPT with the report filled. */
int yn_ledger_verify(yn_ledger *l, yn_ledger_verify_report *out) YN_MUST_CHECK;

/* SHA-256 of the canonical encoding of r (LEDGER.md) followed by prev_hash. */
void yn_ledger_record_hash(const yn_ledger_record *r, const uint8_t prev_hash[YN_LEDGER_HASH_LEN],
                           uint8_t out[YN_LEDGER_HASH_LEN]);

/* Read one journal record. YN_ENOTFOUND when seq is not there. */
int yn_ledger_record_get(yn_ledger *l, int64_t seq, yn_ledger_record *out) YN_MUST_CHECK;
/* Last record: its seq (0 for an empty journal) and hash (zeros then). */
int yn_ledger_head(yn_ledger *l, int64_t *seq, uint8_t hash[YN_LEDGER_HASH_LEN]) YN_MUST_CHECK;

/* --- what the district sends ------------------------------------------------ */

/* Upsert n roster entries at roster_version, all in one transaction. A card
 * on the roster uses the roster's flags, district, street and expiry. An
 * entry's ident ("" none) binds that identifier to the card: a card holds at
 * most one, an identifier belongs to one card (binding it again moves it). */
int yn_ledger_roster_put(yn_ledger *l, const yn_card_facts *cards, size_t n,
                         int64_t roster_version) YN_MUST_CHECK;

typedef struct yn_ledger_blacklist_entry {
    int64_t seq;              /* the district's sequence number, increasing */
    char card_no[20];         /* a card number, or "" when ident names a card */
    char ident[YN_IDENT_MAX]; /* "" or an identity-only card's identifier (one of the two) */
    bool lost;                /* true: 挂失 (block); false: found again (unblock) */
} yn_ledger_blacklist_entry;

/* The card an identifier is bound to in the roster: YN_OK with card_no
 * (20 bytes), or YN_ENOTFOUND. *lost (may be NULL): the identifier itself is
 * on the blacklist (a lost identity-only card), bound or not. */
int yn_ledger_ident_card(yn_ledger *l, const char *ident, char card_no[20],
                         bool *lost) YN_MUST_CHECK;

/* 忘带卡: roster entries whose card number ends with card_tail (1..19
 * characters) and whose birth date is birth_ymd, at most max of them into
 * out (*n = how many were found, up to max + 1 tells "more"). */
int yn_ledger_roster_find(yn_ledger *l, const char *card_tail, int32_t birth_ymd,
                          yn_card_facts *out, size_t max, size_t *n) YN_MUST_CHECK;

/* Meals recorded on local day local_ymd by manual entry (忘带卡), reversed or
 * not: what the policy's per_terminal_day bounds. */
int yn_ledger_manual_count(yn_ledger *l, int32_t local_ymd, int32_t *n) YN_MUST_CHECK;

/* Apply one blacklist change. YN_ESTALE when seq is not above the last applied. */
int yn_ledger_blacklist_apply(yn_ledger *l, int64_t seq, const char *card_no,
                              bool lost) YN_MUST_CHECK;
/* Apply n changes in order in one transaction, all or none. */
int yn_ledger_blacklist_apply_many(yn_ledger *l, const yn_ledger_blacklist_entry *e,
                                   size_t n) YN_MUST_CHECK;
/* Highest blacklist seq applied (0 if none): what sync asks the delta from. */
int yn_ledger_blacklist_seq(yn_ledger *l, int64_t *seq) YN_MUST_CHECK;

/* One district credit (yn_ledger_allocate's arguments), for yn_ledger_apply_update. */
typedef struct yn_ledger_alloc {
    char id[YN_LEDGER_REF_MAX]; /* district's allocation id: applied once */
    char card_no[20];
    char source[YN_NAME_MAX]; /* funding source, e.g. "district" */
    int64_t amount_fen;       /* > 0 */
} yn_ledger_alloc;

/* A small fact written with an update (e.g. the document's version). */
typedef struct yn_ledger_meta_kv {
    const char *key;   /* 1..63 printable bytes */
    const char *value; /* NUL-terminated */
} yn_ledger_meta_kv;

/* Everything of one verified update document, applied by
 * yn_ledger_apply_update in ONE transaction. Each part may be empty. */
typedef struct yn_ledger_update {
    const yn_card_facts *cards; /* roster entries, upserted at roster_version */
    size_t n_cards;             /* 0 = no roster part (roster_version ignored) */
    int64_t roster_version;
    const yn_ledger_blacklist_entry *blacklist; /* increasing seqs; those already */
    size_t n_blacklist;                         /* applied are skipped (a re-applied document) */
    const yn_ledger_alloc *allocs;              /* ids applied before are skipped */
    size_t n_allocs;
    yn_ledger_when alloc_when; /* time stamped on the allocation records */
    const char *policy_json;   /* NULL = no policy part; same or older version: kept as is */
    size_t policy_len;
    bool policy_activate;
    const yn_ledger_meta_kv *meta; /* written last, e.g. the document version */
    size_t n_meta;
} yn_ledger_update;

/* Store a policy document (validated with yn_policy_load; id and version read
 * from it) and, if activate, make it the active one. YN_EINVAL (err says why)
 * for a bad document; YN_ESTALE when a higher version of the same id is
 * stored; YN_EDUPLICATE when this exact id and version are stored already. */
int yn_ledger_policy_store(yn_ledger *l, const char *json, size_t len, bool activate, char *err,
                           size_t errlen) YN_MUST_CHECK;
/* The active policy's document (malloc'd, NUL-terminated; free() it), its id
 * and version. YN_ENOTFOUND when none is active. */
int yn_ledger_policy_active(yn_ledger *l, char **json, size_t *len, char *id, size_t idlen,
                            int64_t *version) YN_MUST_CHECK;

/* Apply a whole update in one write transaction (BEGIN IMMEDIATE … COMMIT):
 * roster, allocations, policy, blacklist, then meta. All of it or nothing:
 *   YN_OK      committed (parts already applied before were skipped);
 *   YN_EINVAL  a bad entry or policy document (err says why): nothing written;
 *   YN_ESTALE  blacklist seqs not increasing after the applied ones: nothing
 *              written;
 *   storage errors as for a debit: rolled back, nothing written. */
int yn_ledger_apply_update(yn_ledger *l, const yn_ledger_update *u, char *err,
                           size_t errlen) YN_MUST_CHECK;

/* --- sync ------------------------------------------------------------------- */

typedef struct yn_ledger_batch {
    int64_t id; /* 1, 2, … */
    int64_t first_seq;
    int64_t last_seq;
    bool acked;
} yn_ledger_batch;

/* The batch to send: the open (unacknowledged) one if any, else a new one of
 * up to max_records records after the last acknowledged. YN_ENOTFOUND when
 * every record is acknowledged. */
int yn_ledger_batch_next(yn_ledger *l, int64_t max_records, int64_t now_utc_s,
                         yn_ledger_batch *out) YN_MUST_CHECK;
/* The server has batch id: mark it acknowledged and note the sync time. */
int yn_ledger_batch_ack(yn_ledger *l, int64_t batch_id, int64_t now_utc_s) YN_MUST_CHECK;
/* The same acknowledgement carried on a USB stick (yinian-diag import-ack):
 * noted as meta last_usb_ack_utc_s, NOT as a sync — the network may still be
 * down, so the terminal stays offline (offline cap, 离线 on screen). */
int yn_ledger_batch_ack_usb(yn_ledger *l, int64_t batch_id, int64_t now_utc_s) YN_MUST_CHECK;
/* For the staff screen: records not yet acknowledged, and how old the
 * oldest of them is (0 when none). */
int yn_ledger_unsent(yn_ledger *l, int64_t now_utc_s, int64_t *count,
                     int64_t *oldest_age_s) YN_MUST_CHECK;

/* Small key/value facts (last_sync_utc_s, roster_version, …). */
int yn_ledger_meta_put(yn_ledger *l, const char *key, const char *value) YN_MUST_CHECK;
/* YN_ENOTFOUND when key is absent; value truncated to size. */
int yn_ledger_meta_get(yn_ledger *l, const char *key, char *value, size_t size) YN_MUST_CHECK;

/* The highest tap id journaled (0 if none): a terminal starts its tap ids
 * above it, whatever its wall clock says after a reboot. */
int yn_ledger_tap_id_max(yn_ledger *l, int64_t *tap_id) YN_MUST_CHECK;

/* This boot's number in the ledger (1, 2, …; it increments when the kernel's
 * boot id changes): what monotonic and boot times of records count from. */
int64_t yn_ledger_boot_no(const yn_ledger *l);

/* The newest record that carries a tap id (a meal or a top-up): the tap the
 * terminal may not have finished showing when it stopped. YN_ENOTFOUND when
 * there is none. */
int yn_ledger_newest_tap(yn_ledger *l, yn_ledger_record *out) YN_MUST_CHECK;

/* Like yn_ledger_meta_put, but without a durable commit of its own: the
 * value survives a crash of the program at once, and a power cut from the
 * next durable commit on (the WAL is synced in order). For marks written
 * while the counter is idle that may lag on power loss, never money. */
int yn_ledger_meta_put_lazy(yn_ledger *l, const char *key, const char *value) YN_MUST_CHECK;

/* Copy the WAL into the main file while the counter is idle, so no debit
 * pays for it, and catch the handle up with records other handles appended
 * (the journal head and highest tap id it keeps). Safe to call any time. */
int yn_ledger_checkpoint(yn_ledger *l) YN_MUST_CHECK;

/* --- health: fit to sell from? (LEDGER.md, "Health") ------------------------ */

#define YN_LEDGER_TAIL_RECORDS 64 /* newest records whose hashes yn_ledger_check recomputes */

enum yn_ledger_check_depth {
    YN_LEDGER_CHECK_TAIL,  /* the chain's tail and the high-water mark: well under a millisecond */
    YN_LEDGER_CHECK_PAGES, /* and PRAGMA quick_check of every page: seconds on a large file */
};

typedef struct yn_ledger_health {
    int64_t head_seq;      /* the journal's last record (0: empty) */
    int64_t mark_seq;      /* high-water mark: highest seq that may have left the terminal */
    int64_t lost_first;    /* records the district may hold that the ledger lacks: */
    int64_t lost_last;     /*   lost_first..lost_last; 0 when none */
    int64_t first_bad_seq; /* first record found damaged; 0 if none (or not a record) */
    char what[200];        /* what is wrong, for the technician (English); "" when fit */
} yn_ledger_health;

/* Is the ledger fit to sell from: the pages (YN_LEDGER_CHECK_PAGES only),
 * the newest YN_LEDGER_TAIL_RECORDS records (seqs consecutive, each hash
 * recomputed from its stored prev_hash, each linked to the one before, the
 * last one the head) and the high-water mark (the head at or above it, and
 * the record at the mark the one that may have been sent). Returns
 *   YN_OK        fit to sell;
 *   YN_ESTALE    records lost: lost_first..lost_last may be held by the
 *                district and are missing here; sell again only once they
 *                are restored from it (yn_ledger_restore_append);
 *   YN_ECORRUPT  damaged: out->what says how, sales must stop;
 *   a storage status when the file cannot be read. Logs nothing when fit. */
int yn_ledger_check(yn_ledger *l, enum yn_ledger_check_depth depth,
                    yn_ledger_health *out) YN_MUST_CHECK;

/* Raise the high-water mark (<path>.mark) to seq before records up to seq
 * leave the terminal (a sync upload, a USB export): every record the district
 * can hold is then at or below the mark. Written atomically and durably
 * (fsync) before it returns; a seq at or below the mark changes nothing.
 * YN_ENOTFOUND when record seq is not in the journal. */
int yn_ledger_mark_raise(yn_ledger *l, int64_t seq) YN_MUST_CHECK;

/* Storage failures reported by this handle so far (every operation that
 * returned a storage status), and the status of the last one (may be NULL):
 * the daemon checks the ledger after each. */
int64_t yn_ledger_storage_errors(const yn_ledger *l, int *last_status);

/* --- restore from the district (LEDGER.md, "Restore") ------------------------ */

/* Append records the district holds back to this ledger, exactly as they
 * were: recs[0..n) from this terminal's own batch frames (their MAC verified
 * by the caller), in seq order; those at or below the head are skipped, the
 * others must follow the head one by one, chain to it (prev_hash = the head's
 * hash) and have the same hash when recomputed here. The card rows (balance,
 * usage, last meal and tap), the allocation ids and the day index are
 * rebuilt from them in the same transaction, and each record must agree with
 * its card's row (card_prev_seq, wallet_after_fen). All or nothing:
 * YN_ECORRUPT (the log says which record and why) when one does not fit.
 * *appended (may be NULL) = records appended. */
int yn_ledger_restore_append(yn_ledger *l, const yn_ledger_record *recs, size_t n,
                             int64_t *appended) YN_MUST_CHECK;
/* The district holds records up to held_seq and nothing above (what its
 * /v1/records said): once the head reached held_seq, note the restore in
 * meta (restored_first = first_seq, restored_last, restored_mark,
 * restored_utc_s, for yinian-diag) and bring the high-water mark down to the
 * head (records above held_seq never reached the district). YN_EINVAL when
 * the head is below held_seq (restore those first). */
int yn_ledger_restore_finish(yn_ledger *l, int64_t first_seq, int64_t held_seq,
                             int64_t now_utc_s) YN_MUST_CHECK;

#endif
