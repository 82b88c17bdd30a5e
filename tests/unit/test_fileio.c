/* test_fileio.c — atomic replacement: content, mode, stale .new, failures; the
 * leftovers of interrupted writes removed, and nothing else. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Read whole, bounded: never a link, a FIFO (it would block) or a file
 * larger than asked for (refused before reading). */
static void test_read_all_regular_files_only(void **state)
{
    (void)state;
    char dir[512], path[700], link_path[700], fifo[700], missing[700];
    yn_test_tmpdir(dir, sizeof dir);
    yn_test_write(dir, "a", "hello", 0600, path, sizeof path);
    char *data;
    size_t len;
    assert_int_equal(yn_file_read_all(path, 5, &data, &len), YN_OK);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    free(data);
    assert_int_equal(yn_file_read_all(path, 4, &data, &len), YN_ELIMIT);
    assert_null(data);
    snprintf(link_path, sizeof link_path, "%s/link", dir);
    assert_int_equal(symlink(path, link_path), 0);
    assert_int_equal(yn_file_read_all(link_path, 100, &data, &len), YN_EINVAL);
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(yn_file_read_all(fifo, 100, &data, &len), YN_EINVAL);
    assert_int_equal(yn_file_read_all(dir, 100, &data, &len), YN_EINVAL);
    snprintf(missing, sizeof missing, "%s/none", dir);
    assert_int_equal(yn_file_read_all(missing, 100, &data, &len), YN_ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replace_keeps_mode_and_content),
        cmocka_unit_test(test_missing_directory),
        cmocka_unit_test(test_stale_new_files_removed),
        cmocka_unit_test(test_read_all_regular_files_only),
    };
    return cmocka_run_group_tests_name("fileio", tests, NULL, NULL);
}
