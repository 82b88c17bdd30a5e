/* fileio.h — durable files: the one module that writes them (base layer).
 *
 * A file is replaced atomically, as mosquitto's persist_write does: a stale
 * path.new from an interrupted write is removed, path.new is written, given
 * the mode asked for (whatever the umask made of it), fsynced, renamed over
 * path, and the directory is fsynced. Every step is checked: a directory that
 * cannot be opened for its fsync is an error like any other, never skipped.
 * yn_file_atomic_* is the streaming form (a bundle too large to hold in
 * memory), yn_file_write_atomic the whole-buffer one.
 *
 * Every write, fsync and rename of the project goes through here, so a test
 * can fail the N-th one (yn_file_fault), as SQLite's test_vfs fails the N-th
 * write: the torture tests fail each in turn and check that the old file is
 * still whole and that nothing half-written is taken for the new one.
 *
 * Errors are enum yn_status (yn_status_of_errno), each logged with the file. */
#ifndef YN_FILEIO_H
#define YN_FILEIO_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "status.h"

/* A file being replaced: open, write, then commit or abort (always one). */
typedef struct yn_file_atomic {
    char path[PATH_MAX];    /* the file that is replaced */
    char tmp[PATH_MAX + 8]; /* path.new: written first, renamed over path */
    unsigned mode;          /* of the new file (& 07777) */
    int fd;                 /* of tmp; -1 once closed */
    int status;             /* the first failed write; YN_OK */
} yn_file_atomic;

int yn_file_atomic_open(yn_file_atomic *f, const char *path, unsigned mode) YN_MUST_CHECK;
/* A failure is kept: commit then fails with it and removes path.new. */
int yn_file_atomic_write(yn_file_atomic *f, const void *data, size_t len) YN_MUST_CHECK;
/* mode, fsync, close, rename over path, fsync the directory. On failure
 * path.new is removed and path is as it was (or, if only the last directory
 * fsync failed, already the new file: the rename happened). */
int yn_file_atomic_commit(yn_file_atomic *f) YN_MUST_CHECK;
/* Close and remove path.new; path stays as it was. */
void yn_file_atomic_abort(yn_file_atomic *f);

/* Replace path with data atomically, the new file having mode `mode`. */
int yn_file_write_atomic(const char *path, const void *data, size_t len,
                         unsigned mode) YN_MUST_CHECK;

/* The steps on their own, for files others write (SQLite's backup copy, a
 * slot's unpacked files): all of len, retrying EINTR; fsync of an open file,
 * of a file by name, of a directory, of the directory holding path; rename
 * followed by the fsync of the directory of `to`. */
int yn_file_write_all(int fd, const void *data, size_t len) YN_MUST_CHECK;
int yn_file_sync(int fd) YN_MUST_CHECK;
int yn_file_sync_path(const char *path) YN_MUST_CHECK;
int yn_file_sync_dir(const char *dir) YN_MUST_CHECK;
int yn_file_sync_dir_of(const char *path) YN_MUST_CHECK;
int yn_file_rename(const char *from, const char *to) YN_MUST_CHECK;
/* mkdir -p: each directory created is fsynced into its parent; an existing
 * non-directory in the way is YN_EINVAL. */
int yn_file_mkdir_p(const char *path, unsigned mode) YN_MUST_CHECK;
/* The directory part of path ("." when it has none, "/" for "/x"). */
void yn_file_dir_of(const char *path, char *out, size_t cap);

/* Open path for reading if it is a regular file of at most max_len bytes:
 * never follows a final symlink, never blocks on a FIFO or device, checks the
 * size before a byte is read. *f is a stdio stream on it (fclose it), *size
 * its size. YN_ENOENT missing, YN_EINVAL not a regular file (a link, FIFO,
 * device or directory), YN_ELIMIT over max_len, YN_EIO; err (may be NULL)
 * says which in a sentence naming path. */
int yn_file_open_regular(const char *path, size_t max_len, FILE **f, size_t *size, char *err,
                         size_t errlen) YN_MUST_CHECK;
/* The whole regular file (as above) into a new buffer (*data, NUL-terminated
 * after *len bytes, free() it). */
int yn_file_read_all(const char *path, size_t max_len, char **data, size_t *len) YN_MUST_CHECK;
/* The same with the sentence in err. */
int yn_file_read_regular(const char *path, size_t max_len, char **data, size_t *len, char *err,
                         size_t errlen) YN_MUST_CHECK;

/* Remove the leftovers of interrupted atomic writes: the regular files in
 * dir named prefix*.new (a program holding what writes them, e.g. the
 * ledger's lock, calls it at start). Each one removed is logged; returns how
 * many were, or -1 when dir cannot be read (a missing dir: 0). */
int yn_file_remove_stale(const char *dir, const char *prefix);

/* --- fault injection (tests) ------------------------------------------------
 * Arm: of the operations in `ops` (a mask of enum yn_file_op) from now on,
 * the nth fails with errno err (the call returns its status as a real failure
 * would); the others go through. nth 0 disarms. yn_file_fault_count: how many
 * operations of the armed kinds were seen since arming (arm with a large nth
 * to count a run's operations, then fail each in turn). Process-wide; costs
 * one atomic load per operation when disarmed. */
enum yn_file_op {
    YN_FILE_OP_WRITE = 1u << 0,  /* a write(2) of file data */
    YN_FILE_OP_SYNC = 1u << 1,   /* an fsync of a file or directory */
    YN_FILE_OP_RENAME = 1u << 2, /* a rename into place */
    YN_FILE_OP_ALL = 7u,
};
void yn_file_fault(unsigned ops, long nth, int err);
long yn_file_fault_count(void);
/* Whether the armed failure has happened. */
bool yn_file_fault_fired(void);

#endif
