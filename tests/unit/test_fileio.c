/* test_fileio.c — atomic replacement: content, mode, stale .new, failures; the
 * leftovers of interrupted writes removed, and nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fileio.h"
#include "testutil.h"

static void test_replace_keeps_mode_and_content(void **state)
{
    (void)state;
    char dir[256], path[512], stale[600], buf[64];
    yn_test_tmpdir(dir, sizeof dir);
    yn_test_write(dir, "k.key", "old\n", 0644, path, sizeof path);
    snprintf(stale, sizeof stale, "%s.new", path);
    FILE *f = fopen(stale, "w"); /* left by an interrupted write */
    fputs("half", f);
    fclose(f);
    assert_int_equal(yn_file_write_atomic(path, "new secret\n", 11, 0600), YN_OK);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(access(stale, F_OK), -1);
    f = fopen(path, "r");
    assert_non_null(fgets(buf, sizeof buf, f));
    fclose(f);
    assert_string_equal(buf, "new secret\n");
}

static void test_missing_directory(void **state)
{
    (void)state;
    char dir[256], path[512];
    yn_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/no/such/file", dir);
    assert_int_equal(yn_file_write_atomic(path, "x", 1, 0600), YN_ENOENT);
}

static void test_stale_new_files_removed(void **state)
{
    (void)state;
    char dir[256], path[512], sub[600];
    yn_test_tmpdir(dir, sizeof dir);
    yn_test_write(dir, "settle-T1-20250611.csv.new", "half", 0644, path, sizeof path);
    yn_test_write(dir, "settle-T1-20250612.csv.new", "half", 0644, path, sizeof path);
    yn_test_write(dir, "settle-T1-20250611.csv", "whole", 0644, path, sizeof path);
    yn_test_write(dir, "notes.new", "not ours", 0644, path, sizeof path);
    snprintf(sub, sizeof sub, "%s/settle-dir.new", dir); /* a folder is never removed */
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(yn_file_remove_stale(dir, "settle-"), 2);
    snprintf(path, sizeof path, "%s/settle-T1-20250611.csv.new", dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof path, "%s/settle-T1-20250611.csv", dir);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof path, "%s/notes.new", dir);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(access(sub, F_OK), 0);
    assert_int_equal(yn_file_remove_stale(dir, "settle-"), 0);
    snprintf(path, sizeof path, "%s/none", dir);
    assert_int_equal(yn_file_remove_stale(path, "settle-"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replace_keeps_mode_and_content),
        cmocka_unit_test(test_missing_directory),
        cmocka_unit_test(test_stale_new_files_removed),
    };
    return cmocka_run_group_tests_name("fileio", tests, NULL, NULL);
}
