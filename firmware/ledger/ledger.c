/* ledger.c — the durable SQLite ledger: hash-chained append-only journal,
 * wallets and usage counters kept in step in the same transaction, and the
 * tables the district fills (roster, blacklist, policies, allocations).
 *
 * Design notes, schema and the canonical hash encoding: firmware/ledger/LEDGER.md.
 * Internal helpers return SQLite result codes; the public functions map them
 * to enum yn_status once, log what failed with the file and the record, and
 * roll back, so nothing half-written remains.
 *
 * This file is the core the other parts share; ledger_int.h lists the parts. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ledger_int.h"
#include "log.h"
#include "rules.h"
#include "timeutil.h"

/* ---- small helpers ------------------------------------------------------- */

void yn_lg_copy_str(char *dst, size_t size, const char *src)
{
    if (!src)
        src = "";
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* A printable id of 1..max-1 bytes without control characters. */
bool yn_lg_text_ok(const char *s, size_t max, bool optional)
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
bool yn_lg_elapsed_ms(const yn_ledger *l, int64_t then_boot, int64_t then_mono_ms,
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

int yn_lg_status_of(int src)
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

const char *yn_lg_advice_for(int status)
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
 * forget them, yn_lg_head_current() reads them again. */
void yn_lg_rollback(yn_ledger *l)
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
int yn_lg_fail(yn_ledger *l, int src, const char *what)
{
    int st = yn_lg_status_of(src);
    l->storage_errors++;
    l->last_storage_error = st;
    char msg[256];
    yn_lg_copy_str(msg, sizeof msg, sqlite3_errmsg(l->db));
    yn_lg_rollback(l);
    yn_err("ledger %s: %s not recorded, rolled back: %s (sqlite %d: %s): %s", l->path, what,
           yn_strerror(st), src, msg, yn_lg_advice_for(st));
    return st;
}

/* ---- statements ---------------------------------------------------------- */

/* Run a statement that returns no rows, then reset it. */
int yn_lg_run(yn_ledger *l, enum stmt_id id)
{
    int rc = sqlite3_step(l->st[id]);
    sqlite3_reset(l->st[id]);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

int yn_lg_tx_begin(yn_ledger *l, bool write)
{
    return yn_lg_run(l, write ? ST_BEGIN_WRITE : ST_BEGIN_READ);
}

int yn_lg_tx_commit(yn_ledger *l)
{
    return yn_lg_run(l, ST_COMMIT);
}

void yn_lg_head_remember(yn_ledger *l, const yn_ledger_record *r);

/* Commit a transaction whose last append was r, and remember r as the head. */
int yn_lg_tx_commit_append(yn_ledger *l, const yn_ledger_record *r)
{
    int rc = yn_lg_run(l, ST_COMMIT);
    if (rc == SQLITE_OK)
        yn_lg_head_remember(l, r);
    return rc;
}

/* End a transaction that wrote nothing (a refusal, a replay, a read). */
void yn_lg_tx_end(yn_ledger *l)
{
    if (!sqlite3_get_autocommit(l->db) && yn_lg_run(l, ST_COMMIT) != SQLITE_OK)
        (void)yn_lg_run(l, ST_ROLLBACK);
}

void yn_lg_bind_text_or_null(sqlite3_stmt *s, int i, const char *t)
{
    if (t && *t)
        sqlite3_bind_text(s, i, t, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, i);
}

void yn_lg_col_text(sqlite3_stmt *s, int i, char *dst, size_t size)
{
    yn_lg_copy_str(dst, size, (const char *)sqlite3_column_text(s, i));
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
    /* fields 28-30, only for a holder not identified by the card: every
     * record identified by its card hashes exactly as before they existed */
    if (r->by != 0 && r->by != YN_LEDGER_BY_CARD) {
        put_u8(e, (uint8_t)r->by);
        put_str(e, r->ident, sizeof r->ident);
        put_str(e, r->supervisor_id, sizeof r->supervisor_id);
    }
}

const char *yn_ledger_by_name(int by)
{
    switch (by) {
    case 0:
    case YN_LEDGER_BY_CARD:
        return "card";
    case YN_LEDGER_BY_IDENT:
        return "identity";
    case YN_LEDGER_BY_MANUAL:
        return "manual";
    default:
        return "?";
    }
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
bool yn_lg_hash_record(yn_ledger *l, const yn_ledger_record *r, uint8_t out[YN_LEDGER_HASH_LEN])
{
    struct enc e;
    encode(r, &e);
    unsigned int len = 0;
    return EVP_DigestInit_ex(l->md_ctx, l->md, NULL) && EVP_DigestUpdate(l->md_ctx, e.buf, e.n) &&
           EVP_DigestUpdate(l->md_ctx, r->prev_hash, YN_LEDGER_HASH_LEN) &&
           EVP_DigestFinal_ex(l->md_ctx, out, &len) && len == YN_LEDGER_HASH_LEN;
}

/* ---- journal rows --------------------------------------------------------- */

void yn_lg_row_to_record(sqlite3_stmt *s, yn_ledger_record *r)
{
    memset(r, 0, sizeof *r);
    r->seq = sqlite3_column_int64(s, 0);
    yn_lg_col_text(s, 1, r->terminal, sizeof r->terminal);
    r->tap_id = sqlite3_column_int64(s, 2);
    yn_lg_col_text(s, 3, r->card_no, sizeof r->card_no);
    r->kind = sqlite3_column_int(s, 4);
    yn_lg_col_text(s, 5, r->category, sizeof r->category);
    yn_lg_col_text(s, 6, r->period, sizeof r->period);
    r->local_ymd = sqlite3_column_int(s, 7);
    r->price_fen = sqlite3_column_int64(s, 8);
    r->subsidy_fen = sqlite3_column_int64(s, 9);
    r->wallet_fen = sqlite3_column_int64(s, 10);
    r->cash_fen = sqlite3_column_int64(s, 11);
    for (int i = 0; i < YN_POLICY_MAX_LAYERS; i++) {
        if (sqlite3_column_type(s, 12 + 2 * i) == SQLITE_NULL)
            break;
        yn_lg_col_text(s, 12 + 2 * i, r->layers[i].source, sizeof r->layers[i].source);
        r->layers[i].fen = sqlite3_column_int64(s, 13 + 2 * i);
        r->n_layers = i + 1;
    }
    r->weight_g = sqlite3_column_int(s, 20);
    r->price_per_100g_fen = sqlite3_column_int64(s, 21);
    r->reason = reason_from_code((const char *)sqlite3_column_text(s, 22));
    yn_lg_col_text(s, 23, r->operator_id, sizeof r->operator_id);
    r->utc_s = sqlite3_column_int64(s, 24);
    r->mono_ms = sqlite3_column_int64(s, 25);
    r->boot_no = sqlite3_column_int64(s, 26);
    r->clock_trusted = sqlite3_column_int(s, 27) != 0;
    r->reverses_seq = sqlite3_column_int64(s, 28);
    yn_lg_col_text(s, 29, r->ref, sizeof r->ref);
    r->policy_version = sqlite3_column_int64(s, 30);
    r->wallet_after_fen = sqlite3_column_int64(s, 31);
    r->card_prev_seq = sqlite3_column_int64(s, 32);
    if (sqlite3_column_bytes(s, 33) == YN_LEDGER_HASH_LEN)
        memcpy(r->prev_hash, sqlite3_column_blob(s, 33), YN_LEDGER_HASH_LEN);
    if (sqlite3_column_bytes(s, 34) == YN_LEDGER_HASH_LEN)
        memcpy(r->hash, sqlite3_column_blob(s, 34), YN_LEDGER_HASH_LEN);
    r->by = sqlite3_column_int(s, 35);
    yn_lg_col_text(s, 36, r->ident, sizeof r->ident);
    yn_lg_col_text(s, 37, r->supervisor_id, sizeof r->supervisor_id);
}

/* Look a record up by the statement's one integer key; *found says if it is there. */
int yn_lg_record_by(yn_ledger *l, enum stmt_id id, int64_t key, yn_ledger_record *r, bool *found)
{
    sqlite3_stmt *s = l->st[id];
    sqlite3_bind_int64(s, 1, key);
    int rc = sqlite3_step(s);
    *found = rc == SQLITE_ROW;
    if (*found)
        yn_lg_row_to_record(s, r);
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

void yn_lg_result_from_record(const yn_ledger_record *r, yn_ledger_result *out)
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
unsigned int yn_lg_data_version(yn_ledger *l)
{
    unsigned int dv = 0;
    if (sqlite3_file_control(l->db, "main", SQLITE_FCNTL_DATA_VERSION, &dv) != SQLITE_OK)
        return 0;
    return dv;
}

/* Call after the commit of a transaction that appended r last. */
void yn_lg_head_remember(yn_ledger *l, const yn_ledger_record *r)
{
    l->head_seq = r->seq;
    l->head_ymd = r->local_ymd;
    memcpy(l->head_hash, r->hash, sizeof l->head_hash);
    l->head_dv = yn_lg_data_version(l);
    l->head_valid = l->head_dv != 0;
    if (l->tap_known &&
        l->tap_upto == r->seq - 1) { /* yn_lg_head_current() ran in that transaction */
        l->tap_upto = r->seq;
        if (r->tap_id > l->tap_max)
            l->tap_max = r->tap_id;
    }
}

int yn_lg_meta_get_i64(yn_ledger *l, const char *key, int64_t *v);

/* Inside a transaction that holds the lock (BEGIN IMMEDIATE, or after a first
 * statement): make the cached head and highest tap id those of the file. Free
 * while no other commit happened since this handle's last one (the data
 * version says so); else one read of the head and a backward walk over the
 * records appended since this handle last looked, down to the newest with a
 * tap id (usually the first one, or none at all). The first time, and if the
 * journal became shorter than seen before (a restored file), the walk starts
 * from the head of the whole journal, and the highest tap id of the records
 * made before ids had to increase (meta tap_id_floor) counts too. */
int yn_lg_head_current(yn_ledger *l)
{
    if (l->head_valid && yn_lg_data_version(l) == l->head_dv)
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
        if ((rc = yn_lg_meta_get_i64(l, "tap_id_floor", &max)) != SQLITE_OK)
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
    l->head_dv = yn_lg_data_version(l);
    l->head_valid = l->head_dv != 0;
    return SQLITE_OK;
}

int yn_lg_append(yn_ledger *l, yn_ledger_record *r)
{
    int rc = yn_lg_head_current(l);
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
    if (!yn_lg_hash_record(l, r, r->hash))
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
    yn_lg_bind_text_or_null(s, 6, r->category);
    yn_lg_bind_text_or_null(s, 7, r->period);
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
    yn_lg_bind_text_or_null(s, 23, r->reason == YN_REASON_NONE ? NULL : yn_reason_code(r->reason));
    yn_lg_bind_text_or_null(s, 24, r->operator_id);
    sqlite3_bind_int64(s, 25, r->utc_s);
    sqlite3_bind_int64(s, 26, r->mono_ms);
    sqlite3_bind_int64(s, 27, r->boot_no);
    sqlite3_bind_int(s, 28, r->clock_trusted);
    if (r->reverses_seq)
        sqlite3_bind_int64(s, 29, r->reverses_seq);
    else
        sqlite3_bind_null(s, 29);
    yn_lg_bind_text_or_null(s, 30, r->ref);
    sqlite3_bind_int64(s, 31, r->policy_version);
    sqlite3_bind_int64(s, 32, r->wallet_after_fen);
    sqlite3_bind_int64(s, 33, r->card_prev_seq);
    sqlite3_bind_blob(s, 34, r->prev_hash, YN_LEDGER_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(s, 35, r->hash, YN_LEDGER_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int(s, 36, r->by ? r->by : YN_LEDGER_BY_CARD);
    yn_lg_bind_text_or_null(s, 37, r->ident);
    yn_lg_bind_text_or_null(s, 38, r->supervisor_id);
    rc = yn_lg_run(l, ST_INSERT); /* every parameter is bound each time: no clearing */
    if (rc != SQLITE_OK)
        return rc;

    if (r->seq == 1 || head_ymd != r->local_ymd) {
        s = l->st[ST_DAY_RUN];
        sqlite3_bind_int64(s, 1, r->seq);
        sqlite3_bind_int(s, 2, r->local_ymd);
        rc = yn_lg_run(l, ST_DAY_RUN);
    }
    return rc;
}

/* ---- card state ------------------------------------------------------------ */

/* The card state in columns 0..STATE_NCOLS of a row; column STATE_NCOLS says
 * whether the card has a state row at all. */
void yn_lg_state_from_row(sqlite3_stmt *s, struct card_state *cs)
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
        yn_lg_col_text(s, 11, cs->period, sizeof cs->period);
        cs->period_meals = sqlite3_column_int(s, 12);
        cs->last_tap = sqlite3_column_int64(s, 13);
        cs->day_subsidy_fen = sqlite3_column_int64(s, 14);
        cs->stamp_seq = sqlite3_column_int64(s, 15);
    }
}

int yn_lg_state_get(yn_ledger *l, const char *card_no, struct card_state *cs)
{
    memset(cs, 0, sizeof *cs);
    sqlite3_stmt *s = l->st[ST_STATE_GET];
    sqlite3_bind_text(s, 1, card_no, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        yn_lg_state_from_row(s, cs);
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int yn_lg_state_put(yn_ledger *l, const char *card_no, const struct card_state *cs)
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
    sqlite3_bind_int64(s, 17, cs->stamp_seq);
    return yn_lg_run(l, id);
}

/* Usage counted so far under the keys of moment m (counters of other keys are stale). */
void yn_lg_usage_of(const struct card_state *cs, const yn_moment *m, yn_usage *u)
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
void yn_lg_usage_add(struct card_state *cs, int32_t ymd, const char *period, int64_t subsidy_fen)
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
        yn_lg_copy_str(cs->period, sizeof cs->period, period);
        cs->period_meals = 0;
    }
    cs->period_meals++;
}

/* Give back a reversed meal's usage, where the counters still have its keys. */
void yn_lg_usage_remove(struct card_state *cs, int32_t ymd, const char *period, int64_t subsidy_fen)
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

/* The card's state after its record r: what the counter writes with each
 * record, and what a restore rebuilds from the district's records. reversed
 * is the meal r undoes when r is a reversal (else NULL): the wrong charge
 * undone lets the right one follow at once, and its usage is given back
 * where the counters still carry its keys. */
void yn_lg_state_apply(struct card_state *cs, const yn_ledger_record *r,
                       const yn_ledger_record *reversed)
{
    cs->balance_fen = r->wallet_after_fen;
    cs->last_seq = r->seq;
    if (r->tap_id)
        cs->last_tap = r->tap_id;
    if (r->kind == YN_LEDGER_MEAL) {
        cs->meal_seq = r->seq;
        cs->meal_utc_s = r->utc_s;
        cs->meal_mono_ms = r->mono_ms;
        cs->meal_boot = r->boot_no;
        if (r->subsidy_fen > 0) {
            yn_lg_usage_add(cs, r->local_ymd, r->period, r->subsidy_fen);
            cs->stamp_seq = r->seq; /* what the card's stamp should name */
        }
    } else if (r->kind == YN_LEDGER_REVERSAL && reversed) {
        if (cs->meal_seq == reversed->seq) /* a wrong charge undone: the right one may follow */
            cs->meal_seq = cs->meal_utc_s = cs->meal_mono_ms = cs->meal_boot = 0;
        if (cs->stamp_seq ==
            reversed->seq) /* the card's stamp names a meal that no longer counts */
            cs->stamp_seq = 0;
        if (reversed->subsidy_fen > 0)
            yn_lg_usage_remove(cs, reversed->local_ymd, reversed->period, reversed->subsidy_fen);
    }
}

void yn_lg_record_base(yn_ledger *l, yn_ledger_record *r, int kind, const char *card_no,
                       const yn_ledger_when *when)
{
    memset(r, 0, sizeof *r);
    memcpy(r->terminal, l->terminal, sizeof r->terminal);
    yn_lg_copy_str(r->card_no, sizeof r->card_no, card_no);
    r->kind = kind;
    r->by = YN_LEDGER_BY_CARD;
    r->utc_s = when->utc_s;
    r->mono_ms = when->mono_ms;
    r->boot_no = l->boot_no;
    r->clock_trusted = when->clock_trusted;
    r->local_ymd = yn_time_local_ymd(when->utc_s);
}

/* Report a failed read (nothing to roll back but the read transaction). */
int yn_lg_read_fail(yn_ledger *l, int rc, const char *what)
{
    int st = yn_lg_status_of(rc);
    l->storage_errors++;
    l->last_storage_error = st;
    yn_err("ledger %s: %s failed: %s (sqlite %d: %s): %s", l->path, what, yn_strerror(st), rc,
           sqlite3_errmsg(l->db), yn_lg_advice_for(st));
    if (!sqlite3_get_autocommit(l->db))
        (void)yn_lg_run(l, ST_ROLLBACK);
    return st;
}

int64_t yn_ledger_boot_no(const yn_ledger *l)
{
    return l && l->ready ? l->boot_no : 0;
}

/* ---- meta ---------------------------------------------------------------- */

int yn_lg_meta_get_i64(yn_ledger *l, const char *key, int64_t *v)
{
    sqlite3_stmt *s = l->st[ST_META_GET];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    *v = rc == SQLITE_ROW ? sqlite3_column_int64(s, 0) : 0;
    sqlite3_reset(s);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int yn_lg_meta_put_text(yn_ledger *l, const char *key, const char *value)
{
    sqlite3_stmt *s = l->st[ST_META_PUT];
    sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, value, -1, SQLITE_STATIC);
    return yn_lg_run(l, ST_META_PUT);
}

int yn_lg_meta_put_i64(yn_ledger *l, const char *key, int64_t v)
{
    char buf[24];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return yn_lg_meta_put_text(l, key, buf);
}
