/* fileio.h — durable file replacement (write x.new, fsync, rename, fsync the
 * directory), as mosquitto's persist_write does. */
#ifndef YN_FILEIO_H
#define YN_FILEIO_H

#include <stddef.h>

#include "status.h"

/* Replace path with data atomically, the new file having mode `mode`.
 * A stale path.new from an interrupted earlier write is removed first. */
int yn_file_write_atomic(const char *path, const void *data, size_t len,
                         unsigned mode) YN_MUST_CHECK;

/* Read the regular file path whole into a new buffer (*data, NUL-terminated
 * after *len bytes, free() it): never follows a final symlink, never blocks
 * on a FIFO or device, refuses a file larger than max_len (YN_ELIMIT) before
 * reading it. YN_ENOENT when absent, YN_EINVAL when not a regular file. */
int yn_file_read_all(const char *path, size_t max_len, char **data, size_t *len) YN_MUST_CHECK;

/* Remove the leftovers of interrupted atomic writes: the regular files in
 * dir named prefix*.new (a program holding what writes them, e.g. the
 * ledger's lock, calls it at start). Each one removed is logged; returns how
 * many were, or -1 when dir cannot be read (a missing dir: 0). */
int yn_file_remove_stale(const char *dir, const char *prefix);

#endif
