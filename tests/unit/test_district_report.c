/* test_district_report.c — the district's CSV cells (RFC 4180 quoting and
 * formula neutralisation) and the files it reads (regular files only). */
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

#include "files.h"
#include "report.h"
#include "testutil.h"

static char *cell(const char *text)
{
    static char out[256];
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    yn_csv_text(f, text);
    fclose(f);
    snprintf(out, sizeof out, "%s", buf);
    free(buf);
    return out;
}

static void test_csv_cells(void **state)
{
    (void)state;
    assert_string_equal(cell("age70"), "age70");
    assert_string_equal(cell(""), "");
    assert_string_equal(cell("a,b"), "\"a,b\"");
    assert_string_equal(cell("a\nb"), "\"a\nb\"");
    assert_string_equal(cell("a\rb"), "\"a\rb\"");
    assert_string_equal(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    /* what a spreadsheet would run is shown as text */
    assert_string_equal(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
    assert_string_equal(cell("+1"), "\"'+1\"");
    assert_string_equal(cell("-5"), "\"'-5\"");
    assert_string_equal(cell("@SUM(A1)"), "\"'@SUM(A1)\"");
    assert_string_equal(cell("\tx"), "\"'\tx\"");
    assert_string_equal(cell("\rx"), "\"'\rx\"");
    assert_string_equal(cell("a=b"), "a=b"); /* only a leading one */
    assert_string_equal(cell("长者饭堂"), "长者饭堂");
}

static void test_regular_files_only(void **state)
{
    (void)state;
    char dir[512], path[700], link_path[700], fifo[700], err[300], *data = NULL;
    size_t len;
    yn_test_tmpdir(dir, sizeof dir);
    yn_test_write(dir, "small", "hello", 0644, path, sizeof path);
    assert_int_equal(yn_file_read_regular(path, 100, &data, &len, err, sizeof err), YN_OK);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    free(data);
    assert_int_equal(yn_file_read_regular(path, 4, &data, &len, err, sizeof err), YN_ELIMIT);
    assert_non_null(strstr(err, "over the limit"));
    snprintf(link_path, sizeof link_path, "%s/link", dir);
    assert_int_equal(symlink("/dev/zero", link_path), 0);
    assert_int_equal(yn_file_read_regular(link_path, 100, &data, &len, err, sizeof err), YN_EPERM);
    assert_non_null(strstr(err, "symbolic link"));
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(yn_file_read_regular(fifo, 100, &data, &len, err, sizeof err), YN_EPERM);
    assert_non_null(strstr(err, "not a regular file"));
    assert_int_equal(yn_file_read_regular(dir, 100, &data, &len, err, sizeof err), YN_EPERM);
    assert_int_equal(yn_file_read_regular("/nonexistent/x", 100, &data, &len, err, sizeof err),
                     YN_ENOENT);
    assert_null(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_cells),
        cmocka_unit_test(test_regular_files_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
