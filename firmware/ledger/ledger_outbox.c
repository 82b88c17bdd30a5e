/* ledger_outbox.c — the sync outbox: batches of unsent records, their
 * acknowledgements, the backlog, meta for sync, and idle checkpoints. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_int.h"
#include "log.h"

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
    int rc = yn_lg_tx_begin(l, true);
    int64_t id = 0, first = 0, last = 0, acked = 0, head = 0, unused;
    if (rc == SQLITE_OK)
        rc = query_i64x2(l,
                         "SELECT id, first_seq FROM batches WHERE acked_utc_s IS NULL"
                         " ORDER BY id LIMIT 1",
                         0, &id, &first);
    if (rc == SQLITE_OK && id) {
        rc = query_i64x2(l, "SELECT last_seq FROM batches WHERE id = ?1", id, &last, &unused);
        if (rc == SQLITE_OK) {
            yn_lg_tx_end(l);
            *out = (yn_ledger_batch){.id = id, .first_seq = first, .last_seq = last};
            return YN_OK;
        }
    }
    if (rc == SQLITE_OK)
        rc = yn_lg_meta_get_i64(l, "acked_seq", &acked);
    if (rc == SQLITE_OK)
        rc = query_i64x2(l, "SELECT IFNULL(MAX(seq), 0) FROM journal", 0, &head, &unused);
    if (rc == SQLITE_OK && head <= acked) {
        yn_lg_tx_end(l);
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
        rc = yn_lg_tx_commit(l);
    if (rc != SQLITE_OK)
        return yn_lg_fail(l, rc, "sync batch");
    *out = (yn_ledger_batch){.id = id, .first_seq = first, .last_seq = last};
    return YN_OK;
}

/* Mark batch_id acknowledged; note when in meta key `when_key`. */
static int batch_ack(yn_ledger *l, int64_t batch_id, int64_t now_utc_s, const char *when_key)
{
    CHECK_READY(l);
    int rc = yn_lg_tx_begin(l, true);
    int64_t last = 0, acked_at = 0;
    if (rc == SQLITE_OK)
        rc = query_i64x2(l, "SELECT last_seq, IFNULL(acked_utc_s, 0) FROM batches WHERE id = ?1",
                         batch_id, &last, &acked_at);
    if (rc == SQLITE_OK && last == 0) {
        yn_lg_tx_end(l);
        return YN_ENOTFOUND;
    }
    if (rc == SQLITE_OK && acked_at) {
        yn_lg_tx_end(l);
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
        rc = yn_lg_meta_put_i64(l, "acked_seq", last);
    if (rc == SQLITE_OK)
        rc = yn_lg_meta_put_i64(l, when_key, now_utc_s);
    if (rc == SQLITE_OK)
        rc = yn_lg_tx_commit(l);
    return rc == SQLITE_OK ? YN_OK : yn_lg_fail(l, rc, "sync acknowledgement");
}

int yn_ledger_batch_ack(yn_ledger *l, int64_t batch_id, int64_t now_utc_s)
{
    return batch_ack(l, batch_id, now_utc_s, "last_sync_utc_s");
}

int yn_ledger_batch_ack_usb(yn_ledger *l, int64_t batch_id, int64_t now_utc_s)
{
    return batch_ack(l, batch_id, now_utc_s, "last_usb_ack_utc_s");
}

int yn_ledger_unsent(yn_ledger *l, int64_t now_utc_s, int64_t *count, int64_t *oldest_age_s)
{
    CHECK_READY(l);
    if (!count || !oldest_age_s)
        return YN_EINVAL;
    *count = *oldest_age_s = 0;
    int64_t acked = 0, head = 0, utc = 0, unused;
    int rc = yn_lg_tx_begin(l, false);
    if (rc == SQLITE_OK)
        rc = yn_lg_meta_get_i64(l, "acked_seq", &acked);
    if (rc == SQLITE_OK)
        rc = query_i64x2(l, "SELECT IFNULL(MAX(seq), 0) FROM journal", 0, &head, &unused);
    if (rc == SQLITE_OK && head > acked)
        rc = query_i64x2(l, "SELECT utc_s FROM journal WHERE seq = ?1", acked + 1, &utc, &unused);
    if (rc != SQLITE_OK)
        return yn_lg_read_fail(l, rc, "unsent count");
    yn_lg_tx_end(l);
    if (head > acked) {
        *count = head - acked;
        *oldest_age_s = now_utc_s > utc ? now_utc_s - utc : 0;
    }
    return YN_OK;
}

int yn_ledger_meta_put(yn_ledger *l, const char *key, const char *value)
{
    CHECK_READY(l);
    if (!yn_lg_text_ok(key, 64, false) || !value)
        return YN_EINVAL;
    int rc = yn_lg_meta_put_text(l, key, value); /* one statement: its own transaction */
    return rc == SQLITE_OK ? YN_OK : yn_lg_fail(l, rc, "meta update");
}

/* synchronous = NORMAL in WAL mode: the commit writes its WAL frame but does
 * not fsync it; the next FULL commit's fsync covers it (the WAL is synced in
 * order). The handle goes back to FULL whatever happened. */
int yn_ledger_meta_put_lazy(yn_ledger *l, const char *key, const char *value)
{
    CHECK_READY(l);
    if (!yn_lg_text_ok(key, 64, false) || !value)
        return YN_EINVAL;
    int rc = sqlite3_exec(l->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = yn_lg_meta_put_text(l, key, value);
    int full = sqlite3_exec(l->db, "PRAGMA synchronous = FULL", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = full;
    return rc == SQLITE_OK ? YN_OK : yn_lg_fail(l, rc, "meta update (lazy)");
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
        yn_lg_copy_str(value, size, (const char *)sqlite3_column_text(s, 0));
    sqlite3_reset(s);
    if (rc == SQLITE_ROW)
        return YN_OK;
    return rc == SQLITE_DONE ? YN_ENOTFOUND : yn_lg_read_fail(l, rc, "meta read");
}

int yn_ledger_checkpoint(yn_ledger *l)
{
    CHECK_READY(l);
    if (l->read_only)
        return YN_OK;
    int rc = sqlite3_wal_checkpoint_v2(l->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc == SQLITE_OK && (rc = yn_lg_tx_begin(l, false)) == SQLITE_OK) {
        /* while idle, catch up with what other handles appended (e.g. sync's
         * allocations), so that the next tap need not walk over it */
        l->head_valid = false;
        rc = yn_lg_head_current(l);
        if (rc == SQLITE_OK)
            yn_lg_tx_end(l);
    }
    return rc == SQLITE_OK ? YN_OK : yn_lg_read_fail(l, rc, "checkpoint");
}

int yn_ledger_tap_id_max(yn_ledger *l, int64_t *tap_id)
{
    CHECK_READY(l);
    int rc = yn_lg_tx_begin(l, false);
    if (rc == SQLITE_OK) {
        l->head_valid = false; /* see what other handles appended */
        rc = yn_lg_head_current(l);
        if (rc == SQLITE_OK)
            yn_lg_tx_end(l);
    }
    if (rc != SQLITE_OK)
        return yn_lg_read_fail(l, rc, "highest tap id");
    *tap_id = l->tap_max;
    return YN_OK;
}
