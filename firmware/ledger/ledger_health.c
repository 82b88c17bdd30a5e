/* ledger_health.c — is this ledger fit to sell from? The one-daemon lock,
 * the high-water mark (what may have left the terminal), and the quick check
 * of the pages, the chain's tail and the mark that the daemon runs at start
 * and after a storage error. firmware/ledger/LEDGER.md, "Health". */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "fileio.h"
#include "ledger_int.h"
#include "hex.h"
#include "log.h"

#define MARK_MAGIC "yinian-ledger-mark"
#define MARK_MAX   160 /* bytes of a mark file: magic, terminal, seq, hash and spaces */

/* ---- one daemon per ledger ------------------------------------------------------ */

/* flock on <path>.lock, which holds "PID PROGRAM" of the holder for the
 * message the next one gets. The lock goes with the process (closed on exit,
 * kill -9 included); the file stays, empty of meaning until locked again. */
int yn_lg_lock_take(yn_ledger *l)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s.lock", l->path) >= (int)sizeof path)
        return YN_EINVAL;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        yn_err("ledger %s: cannot open its lock file %s: %s: check the folder's owner and mode",
               l->path, path, strerror(e));
        return e == EROFS ? YN_EROFS : e == EACCES || e == EPERM ? YN_EPERM : YN_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char holder[64] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = '\0';
        close(fd);
        long pid = 0;
        char prog[32] = "program";
        (void)sscanf(holder, "%ld %31s", &pid, prog);
        if (e == EWOULDBLOCK) {
            yn_err("ledger %s is in use by another %s (pid %ld): one daemon per ledger; stop "
                   "that one first (systemctl stop yinian-pos), or check [ledger] path",
                   l->path, prog, pid);
            return YN_EBUSY;
        }
        yn_err("ledger %s: cannot lock %s: %s", l->path, path, strerror(e));
        return YN_EIO;
    }
    char me[64];
    int n = snprintf(me, sizeof me, "%ld %s\n", (long)getpid(), program_invocation_short_name);
    if (ftruncate(fd, 0) != 0 || pwrite(fd, me, (size_t)n, 0) != n)
        yn_warn("ledger %s: lock taken, but the holder's pid not written to %s: %s", l->path, path,
                strerror(errno));
    l->lock_fd = fd;
    return YN_OK;
}

void yn_lg_lock_release(yn_ledger *l)
{
    if (l->lock_fd >= 0)
        close(l->lock_fd);
    l->lock_fd = -1;
}

int64_t yn_ledger_storage_errors(const yn_ledger *l, int *last_status)
{
    if (last_status)
        *last_status = l ? l->last_storage_error : YN_OK;
    return l ? l->storage_errors : 0;
}

/* ---- the high-water mark ----------------------------------------------------------- */

struct mark {
    bool present;
    char terminal[YN_LEDGER_ID_MAX];
    int64_t seq;
    uint8_t hash[YN_LEDGER_HASH_LEN]; /* of record seq, as it was when it could leave */
};

static int mark_path(const yn_ledger *l, char *buf, size_t size)
{
    return snprintf(buf, size, "%s.mark", l->path) < (int)size ? YN_OK : YN_EINVAL;
}

/* YN_OK (m->present false when there is no mark yet), YN_ECORRUPT for a file
 * that is not a mark (why in what), or an I/O status. */
static int mark_read(const yn_ledger *l, struct mark *m, char *what, size_t len)
{
    char path[PATH_MAX], text[MARK_MAX + 1], hash[2 * YN_LEDGER_HASH_LEN + 2];
    memset(m, 0, sizeof *m);
    if (mark_path(l, path, sizeof path) != YN_OK)
        return YN_EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return YN_OK;
        snprintf(what, len, "high-water mark %.120s: %s", path, strerror(errno));
        return YN_EIO;
    }
    ssize_t n = read(fd, text, MARK_MAX);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
    long long seq = 0;
    char version[8] = "";
    if (n <= 0 ||
        sscanf(text, MARK_MAGIC " %7s %16s %lld %65s", version, m->terminal, &seq, hash) != 4 ||
        strcmp(version, "1") != 0 || seq < 1 ||
        !yn_hex_decode_exact(hash, m->hash, sizeof m->hash)) {
        snprintf(what, len, "high-water mark %.120s is not a mark file", path);
        return YN_ECORRUPT;
    }
    m->seq = seq;
    m->present = true;
    return YN_OK;
}

static int mark_write(yn_ledger *l, int64_t seq, const uint8_t hash[YN_LEDGER_HASH_LEN])
{
    char path[PATH_MAX], hex[2 * YN_LEDGER_HASH_LEN + 1], text[MARK_MAX];
    if (mark_path(l, path, sizeof path) != YN_OK)
        return YN_EINVAL;
    yn_hex_encode(hash, YN_LEDGER_HASH_LEN, hex);
    int n = snprintf(text, sizeof text, MARK_MAGIC " 1 %s %" PRId64 " %s\n", l->terminal, seq, hex);
    int st = yn_file_write_atomic(path, text, (size_t)n, 0644);
    if (st != YN_OK)
        yn_err("ledger %s: high-water mark %" PRId64 " not written: %s: nothing leaves the "
               "terminal until it is",
               l->path, seq, yn_strerror(st));
    return st;
}

/* The record seq in a transaction of its own; *found says whether it is there. */
static int record_read(yn_ledger *l, int64_t seq, yn_ledger_record *r, bool *found)
{
    int rc = yn_lg_tx_begin(l, false);
    if (rc == SQLITE_OK)
        rc = yn_lg_record_by(l, ST_BY_SEQ, seq, r, found);
    if (rc != SQLITE_OK)
        return yn_lg_read_fail(l, rc, "high-water mark");
    yn_lg_tx_end(l);
    return YN_OK;
}

int yn_ledger_mark_raise(yn_ledger *l, int64_t seq)
{
    CHECK_READY(l);
    if (seq < 1)
        return YN_EINVAL;
    struct mark m;
    char what[160] = "";
    int st = mark_read(l, &m, what, sizeof what);
    if (st != YN_OK) {
        yn_err("ledger %s: %s: nothing leaves the terminal until it is repaired (run "
               "yinian-diag ledger verify)",
               l->path, what);
        return st;
    }
    if (m.present && seq <= m.seq)
        return YN_OK;
    yn_ledger_record r;
    bool found = false;
    if ((st = record_read(l, seq, &r, &found)) != YN_OK)
        return st;
    if (!found)
        return YN_ENOTFOUND;
    return mark_write(l, seq, r.hash);
}

/* Bring the mark down to the head after a restore reached what the district
 * holds (yn_ledger_restore_finish): records above it never reached it. */
int yn_lg_mark_lower(yn_ledger *l, int64_t head_seq, const uint8_t head_hash[YN_LEDGER_HASH_LEN])
{
    struct mark m;
    char what[160] = "";
    int st = mark_read(l, &m, what, sizeof what);
    if (st == YN_OK && m.present && m.seq <= head_seq)
        return YN_OK;
    return head_seq > 0 ? mark_write(l, head_seq, head_hash) : YN_OK;
}

/* ---- the check ------------------------------------------------------------------------ */

static void bad(yn_ledger_health *out, int64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void bad(yn_ledger_health *out, int64_t seq, const char *fmt, ...)
{
    if (out->what[0])
        return;
    out->first_bad_seq = seq;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->what, sizeof out->what, fmt, ap);
    va_end(ap);
}

/* SQLite's own check of every page (PRAGMA quick_check: b-tree structure,
 * free list, record formats; not index contents). */
static int pages_check(yn_ledger *l, yn_ledger_health *out)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(l->db, "PRAGMA quick_check(3)", -1, &s, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *row = (const char *)sqlite3_column_text(s, 0);
        if (row && strcmp(row, "ok") != 0)
            bad(out, 0, "SQLite quick_check: %s", row);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* The newest records: consecutive, linked, each hash recomputed, shares
 * adding up, the last one the head. Inside a read transaction. */
static int tail_check(yn_ledger *l, yn_ledger_health *out)
{
    sqlite3_stmt *s = l->st[ST_HEAD];
    int rc = sqlite3_step(s);
    uint8_t head_hash[YN_LEDGER_HASH_LEN] = {0};
    if (rc == SQLITE_ROW) {
        out->head_seq = sqlite3_column_int64(s, 0);
        if (sqlite3_column_bytes(s, 1) == YN_LEDGER_HASH_LEN)
            memcpy(head_hash, sqlite3_column_blob(s, 1), YN_LEDGER_HASH_LEN);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return rc;
    if (out->head_seq == 0)
        return SQLITE_OK;
    rc = sqlite3_prepare_v2(
        l->db, "SELECT " JOURNAL_COLS " FROM journal WHERE seq > ?1 ORDER BY seq", -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    int64_t from = out->head_seq - YN_LEDGER_TAIL_RECORDS;
    sqlite3_bind_int64(s, 1, from > 0 ? from : 0);
    int64_t expect = from > 0 ? from + 1 : 1;
    static const uint8_t zero[YN_LEDGER_HASH_LEN];
    uint8_t prev[YN_LEDGER_HASH_LEN], h[YN_LEDGER_HASH_LEN];
    bool have_prev = false; /* the record before is in the tail */
    yn_ledger_record r = {0};
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        yn_lg_row_to_record(s, &r);
        int64_t layers_fen = 0;
        for (int i = 0; i < r.n_layers; i++)
            layers_fen += r.layers[i].fen;
        if (r.seq != expect)
            bad(out, expect, "record %" PRId64 " missing: the journal jumps to %" PRId64, expect,
                r.seq);
        else if (have_prev ? memcmp(r.prev_hash, prev, sizeof prev) != 0
                           : r.seq == 1 && memcmp(r.prev_hash, zero, sizeof zero) != 0)
            bad(out, r.seq, "record %" PRId64 ": prev_hash is not the hash of the record before",
                r.seq);
        else if (!yn_lg_hash_record(l, &r, h) || memcmp(h, r.hash, sizeof h) != 0)
            bad(out, r.seq, "record %" PRId64 ": its hash does not match its content: altered",
                r.seq);
        else if (r.price_fen != r.subsidy_fen + r.wallet_fen + r.cash_fen ||
                 (r.n_layers > 0 && layers_fen != r.subsidy_fen) || r.reason == YN_REASON_COUNT)
            bad(out, r.seq, "record %" PRId64 ": shares do not add up", r.seq);
        memcpy(prev, r.hash, sizeof prev);
        have_prev = true;
        expect = r.seq + 1;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE)
        return rc;
    if (!out->what[0] && (r.seq != out->head_seq || memcmp(r.hash, head_hash, sizeof h) != 0))
        bad(out, out->head_seq, "the head (record %" PRId64 ") is not the chain's last record",
            out->head_seq);
    return SQLITE_OK;
}

/* The head against the high-water mark and what the district acknowledged.
 * Inside the read transaction of tail_check. Returns a yn_status. */
static int mark_check(yn_ledger *l, yn_ledger_health *out)
{
    struct mark m;
    int st = mark_read(l, &m, out->what, sizeof out->what);
    if (st != YN_OK)
        return st;
    int64_t acked = 0;
    int rc = yn_lg_meta_get_i64(l, "acked_seq", &acked);
    if (rc != SQLITE_OK)
        return yn_lg_status_of(rc);
    out->mark_seq = m.present ? m.seq : 0;
    if (m.present && strcmp(m.terminal, l->terminal) != 0) {
        bad(out, 0, "the high-water mark beside this ledger is terminal %s's, not %s's", m.terminal,
            l->terminal);
        return YN_ECORRUPT;
    }
    int64_t held = out->mark_seq > acked ? out->mark_seq : acked;
    if (out->head_seq < held) {
        out->lost_first = out->head_seq + 1;
        out->lost_last = held;
        snprintf(out->what, sizeof out->what,
                 "records %" PRId64 "-%" PRId64 " lost: the journal ends at %" PRId64
                 " but records up to %" PRId64 " %s",
                 out->lost_first, out->lost_last, out->head_seq, held,
                 acked >= held ? "were acknowledged by the district"
                               : "may have been sent to the district (high-water mark)");
        return YN_ESTALE;
    }
    if (m.present) {
        yn_ledger_record r;
        bool found = false;
        if ((rc = yn_lg_record_by(l, ST_BY_SEQ, m.seq, &r, &found)) != SQLITE_OK)
            return yn_lg_status_of(rc);
        if (!found || memcmp(r.hash, m.hash, sizeof r.hash) != 0) {
            bad(out, m.seq,
                "record %" PRId64 " is not the one that may have been sent (high-water "
                "mark): this ledger was replaced, or written again over lost records",
                m.seq);
            return YN_ECORRUPT;
        }
    }
    return YN_OK;
}

int yn_ledger_check(yn_ledger *l, enum yn_ledger_check_depth depth, yn_ledger_health *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    int rc = depth == YN_LEDGER_CHECK_PAGES ? pages_check(l, out) : SQLITE_OK;
    if (rc == SQLITE_OK && !out->what[0] && (rc = yn_lg_tx_begin(l, false)) == SQLITE_OK)
        rc = tail_check(l, out);
    int st = rc == SQLITE_OK ? YN_OK : yn_lg_status_of(rc);
    if (rc != SQLITE_OK && st == YN_ECORRUPT)
        bad(out, 0, "SQLite: %s", sqlite3_errmsg(l->db));
    if (st == YN_OK && out->what[0])
        st = YN_ECORRUPT;
    if (st == YN_OK)
        st = mark_check(l, out);
    if (!sqlite3_get_autocommit(l->db))
        yn_lg_tx_end(l);
    return st;
}
