/* restore.h — a terminal's frames back (POST /v1/records, PROTOCOL.md §6):
 * the frames it uploaded, byte for byte, that hold every record above a seq,
 * in order, whole frames only, within a byte budget but at least one. */
#ifndef YN_DISTRICT_RESTORE_H
#define YN_DISTRICT_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

#define YN_RESTORE_MAX_BYTES (8 << 20) /* default and cap of max_bytes */

typedef struct yn_restore {
    uint8_t *frames; /* concatenated (malloc'd; NULL when none) */
    size_t len;
    int64_t held; /* highest seq held for the terminal */
    bool more;    /* frames above the last one sent remain */
} yn_restore;

/* The frames of terminal with last_seq > after_seq, at most max_bytes (but
 * at least one). YN_OK (out filled; free out->frames); YN_ENOTFOUND when
 * records above after_seq are held but their frames are not (stored by a
 * server that did not keep them); storage errors. */
int yn_restore_frames(yn_db *db, const char *terminal, int64_t after_seq, size_t max_bytes,
                      yn_restore *out) YN_MUST_CHECK;

#endif
