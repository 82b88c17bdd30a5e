/* test_fileio.c — atomic replacement: content, mode, stale .new, failures; the
 * leftovers of interrupted writes removed, and nothing else; bounded reads of
 * regular files only; and torture: every write, fsync and rename of a
 * replacement failed in turn through the fault hook, the old file whole
 * after each. */
#include <errno.h>
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

/* What a file holds now (at most 63 bytes), "" when absent. */
static const char *content(const char *path)
{
    static char buf[64];
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
    }
    return buf;
}

/* The same with the sentence a technician reads, for the district's inputs. */
static void test_read_regular_says_why(void **state)
{
    (void)state;
    char dir[512], path[700], link_path[700], fifo[700], err[300], *data = NULL;
    size_t len;
    yn_test_tmpdir(dir, sizeof dir);
    yn_test_write(dir, "small", "hello", 0644, path, sizeof path);
    assert_int_equal(yn_file_read_regular(path, 4, &data, &len, err, sizeof err), YN_ELIMIT);
    assert_non_null(strstr(err, "over the limit"));
    snprintf(link_path, sizeof link_path, "%s/link", dir);
    assert_int_equal(symlink("/dev/zero", link_path), 0);
    assert_int_equal(yn_file_read_regular(link_path, 100, &data, &len, err, sizeof err), YN_EINVAL);
    assert_non_null(strstr(err, "symbolic link"));
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(yn_file_read_regular(fifo, 100, &data, &len, err, sizeof err), YN_EINVAL);
    assert_non_null(strstr(err, "not a regular file"));
    assert_null(data);
}

/* A replacement is: one write here, the file's fsync, the rename, the
 * folder's fsync — the folder's is never skipped. */
static void test_replacement_syncs_file_and_folder(void **state)
{
    (void)state;
    char dir[256], path[512];
    yn_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/f", dir);
    yn_file_fault(YN_FILE_OP_SYNC, 1000, EIO);
    assert_int_equal(yn_file_write_atomic(path, "abc", 3, 0644), YN_OK);
    assert_int_equal(yn_file_fault_count(), 2);
    yn_file_fault(YN_FILE_OP_RENAME, 1000, EIO);
    assert_int_equal(yn_file_write_atomic(path, "abc", 3, 0644), YN_OK);
    assert_int_equal(yn_file_fault_count(), 1);
    yn_file_fault(0, 0, 0);
}

/* Torture: fail each write, fsync and rename of a replacement in turn (the
 * error each would give: full, I/O). Before the rename the old file is
 * whole and no .new is left; a failed folder fsync (after the rename) is
 * reported too. Then the same replacement goes through. */
static void test_torture_replacement(void **state)
{
    (void)state;
    char dir[256], path[512], tmp[600];
    static char big[64 * 1024];
    memset(big, 'n', sizeof big);
    yn_test_tmpdir(dir, sizeof dir);
    yn_test_write(dir, "data", "old", 0644, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    yn_file_fault(YN_FILE_OP_ALL, 1000, EIO);
    assert_int_equal(yn_file_write_atomic(path, big, sizeof big, 0644), YN_OK);
    long n = yn_file_fault_count();
    assert_true(n >= 4);
    for (long i = 1; i <= n; i++) {
        yn_test_write(dir, "data", "old", 0644, path, sizeof path);
        int err = i % 2 ? ENOSPC : EIO;
        yn_file_fault(YN_FILE_OP_ALL, i, err);
        int rc = yn_file_write_atomic(path, big, sizeof big, 0644);
        assert_true(yn_file_fault_fired());
        assert_int_equal(rc, err == ENOSPC ? YN_ENOSPC : YN_EIO);
        assert_int_equal(access(tmp, F_OK), -1);
        if (i < n)
            assert_string_equal(content(path), "old");
        else /* the folder's fsync, after the rename: the new file is there */
            assert_int_equal(content(path)[0], 'n');
    }
    yn_file_fault(0, 0, 0);
    assert_int_equal(yn_file_write_atomic(path, "new", 3, 0644), YN_OK);
    assert_string_equal(content(path), "new");
}

/* The streaming form: written in pieces, abort leaves the old file, a
 * failed piece is kept and fails the commit. */
static void test_streaming_commit_and_abort(void **state)
{
    (void)state;
    char dir[256], path[512], tmp[600];
    yn_test_tmpdir(dir, sizeof dir);
    yn_test_write(dir, "b", "old", 0644, path, sizeof path);
    snprintf(tmp, sizeof tmp, "%s.new", path);
    yn_file_atomic f;
    assert_int_equal(yn_file_atomic_open(&f, path, 0600), YN_OK);
    assert_int_equal(yn_file_atomic_write(&f, "ne", 2), YN_OK);
    yn_file_atomic_abort(&f);
    assert_string_equal(content(path), "old");
    assert_int_equal(access(tmp, F_OK), -1);

    assert_int_equal(yn_file_atomic_open(&f, path, 0600), YN_OK);
    yn_file_fault(YN_FILE_OP_WRITE, 1, ENOSPC);
    assert_int_equal(yn_file_atomic_write(&f, "ne", 2), YN_ENOSPC);
    assert_int_equal(yn_file_atomic_write(&f, "w", 1), YN_ENOSPC);
    assert_int_equal(yn_file_atomic_commit(&f), YN_ENOSPC);
    assert_string_equal(content(path), "old");
    assert_int_equal(access(tmp, F_OK), -1);
    yn_file_fault(0, 0, 0);

    assert_int_equal(yn_file_atomic_open(&f, path, 0600), YN_OK);
    assert_int_equal(yn_file_atomic_write(&f, "ne", 2), YN_OK);
    assert_int_equal(yn_file_atomic_write(&f, "w", 1), YN_OK);
    assert_int_equal(yn_file_atomic_commit(&f), YN_OK);
    assert_string_equal(content(path), "new");
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
}

/* mkdir -p: nested folders made and each synced into its parent; an
 * existing one is fine, a file in the way is not; a failed sync is reported. */
static void test_mkdir_p(void **state)
{
    (void)state;
    char dir[256], path[512], file[600];
    yn_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/a/b/c", dir);
    yn_file_fault(YN_FILE_OP_SYNC, 1000, EIO);
    assert_int_equal(yn_file_mkdir_p(path, 0750), YN_OK);
    assert_int_equal(yn_file_fault_count(), 3);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    yn_file_fault(YN_FILE_OP_SYNC, 1000, EIO);
    assert_int_equal(yn_file_mkdir_p(path, 0750), YN_OK);
    assert_int_equal(yn_file_fault_count(), 0); /* nothing made, nothing synced */
    snprintf(path, sizeof path, "%s/x/y", dir);
    yn_file_fault(YN_FILE_OP_SYNC, 2, EIO);
    assert_int_equal(yn_file_mkdir_p(path, 0750), YN_EIO);
    yn_file_fault(0, 0, 0);
    yn_test_write(dir, "plain", "", 0644, file, sizeof file);
    snprintf(path, sizeof path, "%s/plain/z", dir);
    assert_int_equal(yn_file_mkdir_p(path, 0750), YN_EINVAL);
}

/* errno to status: the one mapping. */
static void test_status_of_errno(void **state)
{
    (void)state;
    assert_int_equal(yn_status_of_errno(ENOSPC), YN_ENOSPC);
    assert_int_equal(yn_status_of_errno(EDQUOT), YN_ENOSPC);
    assert_int_equal(yn_status_of_errno(EROFS), YN_EROFS);
    assert_int_equal(yn_status_of_errno(EACCES), YN_EPERM);
    assert_int_equal(yn_status_of_errno(ENOENT), YN_ENOENT);
    assert_int_equal(yn_status_of_errno(ENAMETOOLONG), YN_ELIMIT);
    assert_int_equal(yn_status_of_errno(EIO), YN_EIO);
    assert_int_equal(yn_status_of_errno(0), YN_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replace_keeps_mode_and_content),
        cmocka_unit_test(test_missing_directory),
        cmocka_unit_test(test_stale_new_files_removed),
        cmocka_unit_test(test_read_all_regular_files_only),
        cmocka_unit_test(test_read_regular_says_why),
        cmocka_unit_test(test_replacement_syncs_file_and_folder),
        cmocka_unit_test(test_torture_replacement),
        cmocka_unit_test(test_streaming_commit_and_abort),
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_status_of_errno),
    };
    return cmocka_run_group_tests_name("fileio", tests, NULL, NULL);
}
