/* test_powervfs.c — the power-loss VFS the crash tests stand on
 * (tests/support/powervfs.c): what was synced survives a cut, what was not
 * is lost, nothing reaches the disk between the cut and the revival, and a
 * clean settle writes the page cache back. On plain SQLite files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "powervfs.h"
#include "testutil.h"

/* A new database in a folder of its own (path written), in WAL mode with
 * synchronous = sync, and sql run on it. */
static sqlite3 *fresh(char *path, size_t size, const char *sync, const char *sql)
{
    char dir[256], pragmas[128];
    sqlite3 *db = NULL;
    yn_test_tmpdir(dir, sizeof dir);
    snprintf(path, size, "%s/test.db", dir);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(pragmas, sizeof pragmas, "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;", sync);
    assert_int_equal(sqlite3_exec(db, pragmas, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static int64_t rows(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s;
    int64_t n = -1;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    if (sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM t", -1, &s, NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW)
        n = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    sqlite3_close(db);
    return n;
}

static void cut_now(sqlite3 *db, const char *path)
{
    yn_power_arm_dropping(1);
    /* the next write or sync brings the cut; what follows goes nowhere */
    assert_int_equal(sqlite3_exec(db, "INSERT INTO t VALUES (99)", NULL, NULL, NULL), SQLITE_OK);
    assert_true(yn_power_cut());
    sqlite3_close(db);
    char shm[600];
    snprintf(shm, sizeof shm, "%s-shm", path);
    unlink(shm);
    yn_power_revive();
    assert_false(yn_power_cut());
}

static void test_synced_survives_unsynced_is_lost(void **state)
{
    (void)state;
    char path[512];
    sqlite3 *db =
        fresh(path, sizeof path, "FULL", "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)");
    cut_now(db, path);
    assert_int_equal(rows(path), 2); /* committed with a sync: there; the third: not */

    db = fresh(path, sizeof path, "FULL",
               "CREATE TABLE t(x); PRAGMA synchronous = OFF; INSERT INTO t VALUES (1), (2)");
    assert_int_equal(rows(path), 2); /* read back at once ... */
    cut_now(db, path);
    assert_int_equal(rows(path), 0); /* ... but never synced: gone with the power */
    yn_power_stats st;
    yn_power_stats_get(&st);
    assert_int_equal(st.cuts, 2);
    assert_true(st.dropped + st.kept + st.torn > 0);
}

static void test_settle_writes_back(void **state)
{
    (void)state;
    char path[512];
    sqlite3 *db = fresh(path, sizeof path, "OFF", "CREATE TABLE t(x); INSERT INTO t VALUES (1)");
    sqlite3_close(db);
    yn_power_settle(); /* a clean shutdown: the page cache reaches the disk */
    yn_power_arm(0);
    assert_int_equal(rows(path), 1);
    yn_power_settle();
}

int main(void)
{
    if (yn_power_install(42) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synced_survives_unsynced_is_lost),
        cmocka_unit_test(test_settle_writes_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
