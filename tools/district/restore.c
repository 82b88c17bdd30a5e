/* restore.c — a terminal's frames back (restore.h). Each stored frame added
 * the records from the previous stored frame's last_seq + 1 to its own
 * last_seq (ingest stores a frame only when it adds records), so the frames
 * with last_seq > after_seq, in order, are exactly what holds the records
 * wanted; the first may also hold some at or below after_seq. */
#include "restore.h"

#include <stdlib.h>
#include <string.h>

#define PLAN_MAX 65536 /* frames looked at for one reply (each is >= 161 bytes) */

struct plan {
    int64_t after;
    size_t max_bytes, bytes;
    int64_t last;  /* last_seq of the last frame chosen */
    bool gap;      /* the first frame does not reach back to after + 1 */
    bool full;     /* a frame did not fit */
    int64_t count; /* frames chosen */
};

static int plan_frame(void *arg, const yn_db_row *row)
{
    struct plan *p = arg;
    int64_t last = yn_db_int(row, 0), first = yn_db_int(row, 1);
    size_t len = (size_t)yn_db_int(row, 2);
    if (p->count == 0 && first > p->after + 1) {
        p->gap = true;
        return YN_ENOTFOUND;
    }
    if (p->count > 0 && p->bytes + len > p->max_bytes) {
        p->full = true;
        return YN_ELIMIT; /* stop here */
    }
    p->bytes += len;
    p->last = last;
    p->count++;
    return YN_OK;
}

struct gather {
    uint8_t *out;
    size_t len, cap;
};

static int gather_frame(void *arg, const yn_db_row *row)
{
    struct gather *g = arg;
    size_t len;
    const uint8_t *b = yn_db_blob(row, 0, &len);
    if (g->len + len > g->cap)
        return YN_EIO; /* the frames changed size under a read transaction: never */
    memcpy(g->out + g->len, b, len);
    g->len += len;
    return YN_OK;
}

int yn_restore_frames(yn_db *db, const char *terminal, int64_t after_seq, size_t max_bytes,
                      yn_restore *out)
{
    memset(out, 0, sizeof *out);
    if (max_bytes == 0 || max_bytes > YN_RESTORE_MAX_BYTES)
        max_bytes = YN_RESTORE_MAX_BYTES;
    int rc = yn_db_begin(db, false);
    if (rc != YN_OK)
        return rc;
    rc = yn_db_int_of(db, "SELECT last_seq FROM terminals WHERE id = $1",
                      (const yn_db_val[]){DB_TEXT(terminal)}, 1, &out->held);
    if (rc != YN_OK || out->held <= after_seq) {
        yn_db_rollback(db);
        return rc;
    }
    struct plan p = {.after = after_seq, .max_bytes = max_bytes};
    rc = YN_DB_RUN(db,
                   "SELECT last_seq, first_seq, length(frame) FROM frames WHERE terminal = $1"
                   " AND last_seq > $2 ORDER BY last_seq LIMIT $3",
                   plan_frame, &p, DB_TEXT(terminal), DB_INT(after_seq), DB_INT(PLAN_MAX));
    if (rc == YN_ELIMIT)
        rc = YN_OK;
    if (rc == YN_OK && p.count == 0)
        p.gap = true; /* records held, no frame for them */
    if (p.gap && (rc == YN_OK || rc == YN_ENOTFOUND)) {
        yn_db_rollback(db);
        return YN_ENOTFOUND;
    }
    struct gather g = {.out = rc == YN_OK ? malloc(p.bytes ? p.bytes : 1) : NULL, .cap = p.bytes};
    if (rc == YN_OK && !g.out)
        rc = YN_ENOMEM;
    if (rc == YN_OK)
        rc = YN_DB_RUN(db,
                       "SELECT frame FROM frames WHERE terminal = $1 AND last_seq > $2"
                       " AND last_seq <= $3 ORDER BY last_seq",
                       gather_frame, &g, DB_TEXT(terminal), DB_INT(after_seq), DB_INT(p.last));
    yn_db_rollback(db); /* a read: nothing to commit */
    if (rc != YN_OK) {
        free(g.out);
        return rc;
    }
    out->frames = g.out;
    out->len = g.len;
    out->more = p.full || p.last < out->held;
    return YN_OK;
}
