/* test_render.c — the screen renderer and the display backends: Chinese
 * glyphs present, large figures really drawn large, PNG files that decode, a
 * framebuffer image of the right bytes, a terminal that wraps and cuts
 * nothing. (Contrast and fit of every screen: test_gallery.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <png.h>
#include <stdio.h>
#include <string.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "display.h"
#include "log.h"
#include "render.h"
#include "testutil.h"

/* Palette contrast is measured on the pixels of every screen by test_gallery. */
static void test_sizes(void **state)
{
    (void)state;
    assert_true(yn_render_px(YN_TEXT_HUGE) >= 48);
    assert_true(yn_render_px(YN_TEXT_LARGE) >= 48);
}

/* Rows of c that contain at least one fg pixel, between y0 and y1. */
static int ink_rows(const yn_canvas *c, uint32_t fg, int y0, int y1)
{
    int rows = 0;
    for (int y = y0; y < y1; y++)
        for (int x = 0; x < c->width_px; x++)
            if (c->px[(size_t)y * (size_t)c->width_px + (size_t)x] == fg) {
                rows++;
                break;
            }
    return rows;
}

static void test_render_draws_big_chinese_text(void **state)
{
    (void)state;
    yn_renderer *r;
    yn_canvas c;
    assert_int_equal(yn_render_open(YN_DEFAULT_FONT, &r), YN_OK);
    assert_true(yn_render_covers(r, "请刷卡成功补贴余额本餐已享受补贴¥0123456789"));
    assert_int_equal(yn_canvas_init(&c, 800, 480), YN_OK);
    yn_screen s;
    yn_screen_init(&s, YN_SCREEN_OK, "ok", "成功");
    yn_screen_add(&s, YN_TEXT_HUGE, "补贴 ¥15.00");
    snprintf(s.footer, sizeof s.footer, "终端 T1");
    assert_int_equal(yn_render_screen(r, &s, &c), YN_OK);
    yn_palette p = yn_render_palette(YN_SCREEN_OK);
    assert_int_equal(c.px[0], p.bg);
    assert_int_equal(c.px[(size_t)479 * 800 + 799], p.bg);
    /* the huge line: its glyphs span most of 72 px in height */
    int title_rows = ink_rows(&c, p.fg, 0, 60);
    assert_true(title_rows >= 25);
    int huge_rows = ink_rows(&c, p.fg, 70, 180);
    assert_true(huge_rows >= 48);
    /* the footer is drawn at the bottom, nothing in between */
    assert_int_equal(ink_rows(&c, p.fg, 200, 440), 0);
    assert_true(ink_rows(&c, p.fg, 448, 480) >= 12);
    yn_canvas_free(&c);
    yn_render_close(r);
    assert_int_equal(yn_render_open("/nonexistent/font.ttf", &r), YN_ENOENT);
    yn_render_close(NULL);
}

static void test_png_backend_writes_decodable_files(void **state)
{
    (void)state;
    char dir[256];
    yn_test_tmpdir(dir, sizeof dir);
    yn_config cfg;
    yn_config_defaults(&cfg);
    snprintf(cfg.display.backend, sizeof cfg.display.backend, "png");
    snprintf(cfg.display.snapshot_dir, sizeof cfg.display.snapshot_dir, "%s/shots", dir);
    yn_display d;
    assert_int_equal(yn_display_open(&d, &cfg.display), YN_OK);
    yn_screen s;
    yn_screen_init(&s, YN_SCREEN_REFUSED, "refused_lost", "未能扣款");
    yn_screen_add(&s, YN_TEXT_HUGE, "这张卡已挂失，请联系工作人员");
    assert_int_equal(yn_display_show(&d, &s), YN_OK);
    char what[256];
    assert_int_equal(yn_display_describe(&d, what, sizeof what), YN_OK);
    assert_non_null(strstr(what, "1 written"));
    yn_display_close(&d);

    char path[600];
    snprintf(path, sizeof path, "%s/shots/refused_lost.png", dir);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&img, path));
    assert_int_equal(img.width, 800);
    assert_int_equal(img.height, 480);
    img.format = PNG_FORMAT_RGB;
    static uint8_t buf[800 * 480 * 3];
    assert_true(png_image_finish_read(&img, NULL, buf, 0, NULL));
    yn_palette p = yn_render_palette(YN_SCREEN_REFUSED);
    assert_int_equal(buf[0] << 16 | buf[1] << 8 | buf[2], p.bg);
    int ink = 0;
    for (size_t i = 0; i < sizeof buf; i += 3)
        ink += (uint32_t)(buf[i] << 16 | buf[i + 1] << 8 | buf[i + 2]) == p.fg;
    assert_true(ink > 2000); /* a big line of Chinese text */
}

static void test_framebuffer_on_a_file(void **state)
{
    (void)state;
    char dir[256];
    yn_test_tmpdir(dir, sizeof dir);
    yn_config cfg;
    yn_config_defaults(&cfg);
    snprintf(cfg.display.backend, sizeof cfg.display.backend, "fb");
    yn_test_write(dir, "fb0", "", 0644, cfg.display.device, sizeof cfg.display.device);
    cfg.display.width_px = 320;
    cfg.display.height_px = 240;
    yn_display d;
    assert_int_equal(yn_display_open(&d, &cfg.display), YN_OK);
    yn_screen s;
    yn_screen_init(&s, YN_SCREEN_PROMPT, "price", "输入本餐价格");
    assert_int_equal(yn_display_show(&d, &s), YN_OK);
    yn_display_close(&d);
    FILE *f = fopen(cfg.display.device, "rb");
    assert_non_null(f);
    uint32_t px[320];
    assert_int_equal(fread(px, sizeof px[0], 320, f), 320);
    fclose(f);
    assert_int_equal(px[0] & 0xFFFFFF, yn_render_palette(YN_SCREEN_PROMPT).bg);
    struct stat sb;
    assert_int_equal(stat(cfg.display.device, &sb), 0);
    assert_int_equal(sb.st_size, 320 * 240 * 4);
    snprintf(cfg.display.device, sizeof cfg.display.device, "/nonexistent/fb9");
    assert_int_equal(yn_display_open(&d, &cfg.display), YN_ENODEV);
}

/* The terminal backend on a 40-column terminal (a pty): every line wraps at
 * the width, between words, and no text is lost — the staff line used to be
 * cut at 128 bytes. */
static void test_terminal_display_wraps_and_keeps_everything(void **state)
{
    (void)state;
    int master, slave;
    struct winsize ws = {.ws_row = 40, .ws_col = 40};
    assert_int_equal(openpty(&master, &slave, NULL, NULL, &ws), 0);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    assert_true(dup2(slave, STDOUT_FILENO) >= 0);
    yn_config cfg;
    yn_config_defaults(&cfg);
    snprintf(cfg.display.backend, sizeof cfg.display.backend, "terminal");
    yn_display d;
    assert_int_equal(yn_display_open(&d, &cfg.display), YN_OK);
    yn_screen s;
    yn_screen_init(&s, YN_SCREEN_REFUSED, "refused_lost", "未能扣款");
    yn_screen_add(&s, YN_TEXT_HUGE, "这张卡已挂失，请联系工作人员");
    yn_screen_add(&s, YN_TEXT_NORMAL,
                  "工作人员：此卡已挂失（在黑名单上）：请收下此卡，并联系社区服务中心。"
                  "卡号 4403042050 流水号 12345 最后一句话在这里结束");
    assert_int_equal(yn_display_show(&d, &s), YN_OK);
    yn_display_close(&d);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    close(saved);
    close(slave);
    static char out[8192];
    size_t n = 0;
    ssize_t got;
    while (n < sizeof out - 1 && (got = read(master, out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)got;
    out[n] = '\0';
    close(master);
    /* each printed row fits 40 cells (escape sequences aside), and the text
     * read back without the breaks and indents is all there */
    static char plain[8192];
    size_t k = 0;
    int cells = 0;
    for (const char *p = out; *p; p++) {
        if (*p == '\033') {
            while (*p && !((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
                p++;
            continue;
        }
        if (*p == '\n' || *p == '\r') {
            cells = 0;
            continue;
        }
        if (*p != ' ')
            plain[k++] = *p;
        if (((unsigned char)*p & 0xC0) == 0x80)
            continue;
        cells += (unsigned char)*p >= 0xE0 ? 2 : 1;
        assert_true(cells <= 40);
    }
    plain[k] = '\0';
    assert_non_null(strstr(plain, "卡号4403042050流水号12345最后一句话在这里结束"));
    assert_non_null(strstr(plain, "这张卡已挂失，请联系工作人员"));
}

/* A line composed longer than a screen line holds is a bug the gallery must
 * see (cut), and what is kept ends on a whole character, never on half of
 * one (255 bytes of three-byte characters). */
static void test_overlong_line_is_flagged(void **state)
{
    (void)state;
    yn_log_quiet(true);
    yn_screen s;
    yn_screen_init(&s, YN_SCREEN_INFO, "long", "长");
    yn_screen_add(&s, YN_TEXT_NORMAL, "%s", "正常");
    assert_false(s.cut);
    char text[400] = "";
    for (int i = 0; i < 100; i++)
        strcat(text, "字");
    yn_screen_add(&s, YN_TEXT_NORMAL, "x%s", text); /* 1 + 300 bytes */
    assert_true(s.cut);
    assert_int_equal(strlen(s.lines[1].text), 1 + 84 * 3); /* 85 whole would be 256 */
    for (int i = 2; i < YN_SCREEN_LINES; i++)
        yn_screen_add(&s, YN_TEXT_NORMAL, "%d", i);
    yn_screen_init(&s, YN_SCREEN_INFO, "many", "多");
    for (int i = 0; i < YN_SCREEN_LINES; i++)
        yn_screen_add(&s, YN_TEXT_NORMAL, "%d", i);
    assert_false(s.cut);
    yn_screen_add(&s, YN_TEXT_NORMAL, "one too many");
    assert_true(s.cut);
    yn_log_quiet(false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_overlong_line_is_flagged),
        cmocka_unit_test(test_render_draws_big_chinese_text),
        cmocka_unit_test(test_png_backend_writes_decodable_files),
        cmocka_unit_test(test_framebuffer_on_a_file),
        cmocka_unit_test(test_terminal_display_wraps_and_keeps_everything),
    };
    return cmocka_run_group_tests_name("render", tests, NULL, NULL);
}
