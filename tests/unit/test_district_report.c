/* test_district_report.c — the district's CSV cells (RFC 4180 quoting and
 * formula neutralisation). */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_cells),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
