/* powervfs.h — a test-only SQLite VFS that simulates losing power, the way
 * SQLite's own crash tests do (src/test6.c; this one is written anew).
 *
 * It wraps the default unix VFS and becomes the default itself. The files
 * whose durability matters (main database, WAL, rollback journal) are held
 * as the operating system's page cache would hold them: what is written is
 * read back at once, but reaches the real file only at xSync (or a
 * truncation, in order). Locks and the WAL index (shared memory) are the
 * real unix ones; temporary files pass straight through.
 *
 * A cut comes after a chosen number of writes, truncations and syncs (the
 * one that triggers it is in flight). At the cut, the writes not yet synced
 * are, per cut, either all dropped but the last, which may be torn (a prefix
 * of it reaches the file), or each one on its own kept (with a chance of 30 %
 * or 95 % for the cut), else dropped or torn — a disk may persist unsynced
 * writes in any order. After the cut nothing
 * reaches the real files: the program's handles are closed (they see their
 * own writes, nothing more happens), then yn_power_revive() is the power
 * coming back, and the files are opened again on what is left.
 *
 * Bytes outside a write never change (SQLite's powersafe-overwrite
 * assumption, which the unix VFS reports). Single-threaded use. */
#ifndef YN_TEST_POWERVFS_H
#define YN_TEST_POWERVFS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct yn_power_stats {
    int64_t ops;     /* writes, truncations and syncs of the tracked files */
    int64_t syncs;   /* of which syncs */
    int64_t cuts;    /* power cuts so far */
    int64_t dropped; /* unsynced writes lost at cuts */
    int64_t kept;    /* unsynced writes that reached the file anyway */
    int64_t torn;    /* unsynced writes of which a prefix reached the file */
} yn_power_stats;

/* Register as the default VFS (before the first sqlite3_open). seed: the
 * random choices at each cut. 0 on success. */
int yn_power_install(uint64_t seed);
/* Cut the power at the ops-th write, truncation or sync from now (ops >= 1);
 * 0 disarms. The fate of the unsynced writes is drawn at the cut. */
void yn_power_arm(int64_t ops);
/* The same, every unsynced write dropped and none torn at that cut (for
 * tests that need to know exactly what survives). */
void yn_power_arm_dropping(int64_t ops);
/* Called at each cut, before anything else happens: what else of the
 * terminal loses power (the card reader: nothing is written to a card after
 * the cut, as no code of the terminal runs after a real one). */
void yn_power_on_cut(void (*fn)(void *arg), void *arg);
/* The power went (since the last revive). */
bool yn_power_cut(void);
/* Power back on: forget the page cache. Every handle must be closed. */
void yn_power_revive(void);
/* No cut: the page cache written back (as at a clean shutdown) and
 * forgotten, e.g. between two test runs. Every handle must be closed. */
void yn_power_settle(void);
void yn_power_stats_get(yn_power_stats *out);

#endif
