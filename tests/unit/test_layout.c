/* test_layout.c — the pure layout: where lines break (never inside an amount,
 * a number, a Latin word or an id; never before closing punctuation), and how
 * a screen that would overflow is fitted (secondary lines smaller, the main
 * figure never). Widths are terminal cells: CJK 2, the rest 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "layout.h"

static int cells(void *arg, uint32_t cp, int size)
{
    (void)arg;
    (void)size;
    return cp >= 0x2E80 ? 2 : 1;
}

/* The rows of text at width, joined with '|'. */
static const char *wrap(const char *text, int width)
{
    static char out[512];
    int start[32], end[32];
    int n = yn_layout_wrap(text, width, 1, cells, NULL, start, end, 32);
    size_t w = 0;
    for (int i = 0; i < n; i++)
        w += (size_t)snprintf(out + w, sizeof out - w, "%s%.*s", i ? "|" : "", end[i] - start[i],
                              text + start[i]);
    return out;
}

static void test_breaks_between_words_and_characters(void **state)
{
    (void)state;
    assert_string_equal(wrap("请刷卡", 4), "请刷|卡");
    assert_string_equal(wrap("pay the cash now", 9), "pay the|cash now");
    /* the weighed line that used to wrap as "计 ¥37." / "50" */
    assert_string_equal(wrap("重量 1500 克  ¥2.50/100克  计 ¥37.50", 30),
                        "重量 1500 克  ¥2.50/100克  计|¥37.50");
    /* a label and its number stay together across a no-break space */
    assert_string_equal(wrap("卡内余额 ¥12.00 流水号\u00a03", 20), "卡内余额 ¥12.00|流水号\u00a03");
    /* never inside an id or a card number; a number stays with its CJK word */
    assert_string_equal(wrap("终端 T-FT-0001", 10), "终端|T-FT-0001");
    assert_string_equal(wrap("待上传12条", 8), "待上|传12条");
    /* closing punctuation never starts a row, opening never ends one */
    assert_string_equal(wrap("请稍候，再试", 8), "请稍候，|再试");
    assert_string_equal(wrap("已冲正（流水号）", 7), "已冲正|（流水|号）");
    /* only a run wider than the row is cut */
    assert_string_equal(wrap("4403042050123456789", 10), "4403042050|123456789");
    assert_string_equal(wrap("", 10), "");
}

/* The advance of a glyph at size_px: half the size for Latin, the size for CJK. */
static int px(void *arg, uint32_t cp, int size)
{
    (void)arg;
    return cp >= 0x2E80 ? size : size / 2;
}

static void test_fit_and_overflow(void **state)
{
    (void)state;
    yn_screen s;
    yn_layout l;
    yn_screen_init(&s, YN_SCREEN_OK, "ok", "成功");
    yn_screen_add(&s, YN_TEXT_NORMAL, "流水号\u00a03");
    yn_screen_add(&s, YN_TEXT_HUGE, "补贴 ¥15.00");
    snprintf(s.footer, sizeof s.footer, "终端 T1");
    yn_layout_screen(&s, 800, 480, px, NULL, &l);
    assert_true(l.fits);
    assert_int_equal(l.main_px, 72);
    assert_int_equal(l.rows[1].size_px, 30); /* the 流水号 at its normal size */
    /* more secondary text: it gets smaller, the main figure does not */
    for (int i = 0; i < 7; i++)
        yn_screen_add(&s, YN_TEXT_NORMAL,
                      "这是一条很长的说明文字，用来把屏幕几乎填满的一行字还要更长一些");
    yn_layout_screen(&s, 800, 480, px, NULL, &l);
    assert_true(l.fits);
    int huge = 0, smallest = 99;
    for (int i = 0; i < l.n_rows; i++) {
        if (l.rows[i].line >= 0 && s.lines[l.rows[i].line].size == YN_TEXT_HUGE)
            huge = l.rows[i].size_px;
        if (l.rows[i].line >= 0 && l.rows[i].size_px < smallest)
            smallest = l.rows[i].size_px;
        assert_true(l.rows[i].width_px <= 800 - 2 * l.margin_px);
        if (l.rows[i].line >= 0)
            assert_true(l.rows[i].top_px + l.rows[i].size_px <= l.footer_top_px);
    }
    assert_int_equal(huge, 72);
    assert_true(smallest < 30);
    /* and a screen that cannot fit says so (the renderer logs it, the gallery fails) */
    for (int i = s.n_lines; i < YN_SCREEN_LINES; i++)
        yn_screen_add(&s, YN_TEXT_HUGE, "请付现金 ¥9999.99 请付现金 ¥9999.99");
    yn_layout_screen(&s, 800, 480, px, NULL, &l);
    assert_false(l.fits);
    /* a footer that wraps keeps its height: the body stops above it */
    yn_screen_init(&s, YN_SCREEN_IDLE, "idle", "长者饭堂");
    yn_screen_add(&s, YN_TEXT_HUGE, "请刷卡");
    snprintf(
        s.footer, sizeof s.footer, "%s",
        "终端 T-FT-0001  操作员 1001  待上传 12 条（最早 5 分钟前）  记录很多很多很多很多很多");
    yn_layout_screen(&s, 800, 480, px, NULL, &l);
    int footer_rows = 0;
    for (int i = 0; i < l.n_rows; i++)
        if (l.rows[i].line == YN_LAYOUT_FOOTER) {
            footer_rows++;
            assert_true(l.rows[i].top_px >= l.footer_top_px);
            assert_true(l.rows[i].top_px + l.rows[i].size_px <= 480);
        }
    assert_int_equal(footer_rows, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_breaks_between_words_and_characters),
        cmocka_unit_test(test_fit_and_overflow),
    };
    return cmocka_run_group_tests_name("layout", tests, NULL, NULL);
}
