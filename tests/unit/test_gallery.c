/* test_gallery.c — every screen the terminal can show, rendered on the 800x480
 * panel with long canteen names, long ids and the largest amounts, and checked
 * from the pixels:
 *   - nothing drawn past the panel (the body is drawn on a larger canvas
 *     painted with a colour no screen uses; it must stay untouched outside);
 *   - nothing under the footer (the body alone leaves the footer band bare,
 *     the footer alone leaves the body bare);
 *   - every text pixel lies between the background and the text colour, and
 *     those two have a contrast of at least 7:1 (WCAG, measured on the pixels);
 *   - the main figure is at least 48 px, and its glyphs are drawn that large;
 *   - every word is Chinese (ids, numbers, amounts and single demo keys aside).
 * The screens go to build/<arch>/gallery/<name>.png with a contact sheet,
 * gallery.png; tools/screens copies them to firmware/screens/ for the README.
 *
 * Adding a screen: one SHOT("name", builder call) line in gallery() below. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "render.h"
#include "screens.h"
#include "testutil.h"

#define PANEL_W    800
#define PANEL_H    480
#define SPILL_PX   120      /* canvas beyond the panel, to catch what is drawn past it */
#define SENTINEL   0xFF00FF /* a colour no screen uses */
#define THUMB_DIV  2        /* contact sheet: each screen at half size */
#define SHEET_COLS 5
#define SHEET_GAP  8
#define MAX_SHOTS  96

static yn_renderer *R;
static char gallery_dir[512];
static struct shot {
    char name[48];
    uint32_t *thumb; /* PANEL_W/THUMB_DIV x PANEL_H/THUMB_DIV */
} shots[MAX_SHOTS];
static int n_shots;

/* --- pixel checks ------------------------------------------------------- */

static double luminance(uint32_t rgb)
{
    double c[3];
    for (int i = 0; i < 3; i++) {
        double v = (double)((rgb >> (16 - 8 * i)) & 0xFF) / 255.0;
        c[i] = v <= 0.03928 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
    }
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
}

static double contrast(uint32_t a, uint32_t b)
{
    double x = luminance(a), y = luminance(b);
    return (fmax(x, y) + 0.05) / (fmin(x, y) + 0.05);
}

static int channel_distance(uint32_t a, uint32_t b)
{
    int d = 0;
    for (int sh = 0; sh <= 16; sh += 8) {
        int x = (int)((a >> sh) & 0xFF) - (int)((b >> sh) & 0xFF);
        d = abs(x) > d ? abs(x) : d;
    }
    return d;
}

/* p lies on the way from bg to fg in every channel (anti-aliased text). */
static bool between(uint32_t p, uint32_t bg, uint32_t fg)
{
    for (int sh = 0; sh <= 16; sh += 8) {
        int v = (int)((p >> sh) & 0xFF), a = (int)((bg >> sh) & 0xFF), b = (int)((fg >> sh) & 0xFF);
        if (v < (a < b ? a : b) - 1 || v > (a > b ? a : b) + 1)
            return false;
    }
    return true;
}

static uint32_t px_at(const yn_canvas *c, int x, int y)
{
    return c->px[(size_t)y * (size_t)c->width_px + (size_t)x];
}

/* Rows in [y0, y1) of the panel with a pixel at least half way to fg. */
static int ink_rows(const yn_canvas *c, int y0, int y1, uint32_t bg, uint32_t fg)
{
    int rows = 0, half = channel_distance(bg, fg) / 2;
    for (int y = y0; y < y1 && y < PANEL_H; y++)
        for (int x = 0; x < PANEL_W; x++)
            if (channel_distance(px_at(c, x, y), bg) > half) {
                rows++;
                break;
            }
    return rows;
}

/* Pixels of the panel's rows [y0, y1) that are not the background. */
static long marks(const yn_canvas *c, int y0, int y1, uint32_t bg)
{
    long n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = 0; x < PANEL_W; x++)
            n += px_at(c, x, y) != bg;
    return n;
}

static void fill(yn_canvas *c, uint32_t rgb)
{
    for (size_t i = 0; i < (size_t)c->width_px * (size_t)c->height_px; i++)
        c->px[i] = rgb;
}

/* "Every word is Chinese": a run of ASCII letters of two or more, in a token
 * without digits, is an English word (T-FT-0001, ¥12.50, a single demo key
 * and settle-T1-20260310.csv pass). */
/* Latin text allowed on a screen besides ids, numbers and amounts: the
 * command staff read out to a technician. */
static const char *const commands[] = {"yinian-diag ledger verify"};

static void check_chinese(const char *name, const char *text)
{
    char copy[YN_SCREEN_TEXT];
    snprintf(copy, sizeof copy, "%s", text);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        char *at = strstr(copy, commands[i]);
        if (at)
            memset(at, ' ', strlen(commands[i]));
    }
    const char *p = copy;
    while (*p) {
        while (*p == ' ')
            p++;
        const char *tok = p;
        int letters = 0, run = 0, digits = 0;
        while (*p && *p != ' ' && (unsigned char)*p < 0x80) {
            bool letter = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z');
            run = letter ? run + 1 : 0;
            letters = run > letters ? run : letters;
            digits += *p >= '0' && *p <= '9';
            p++;
        }
        if (letters >= 2 && digits == 0)
            fail_msg("screen %s: English word '%.*s' in \"%s\"", name, (int)(p - tok), tok, text);
        while (*p && (*p == ' ' || (unsigned char)*p >= 0x80))
            p++;
    }
}

static void check_screen(const char *name, const yn_screen *s)
{
    if (s->cut)
        fail_msg("screen %s: a line was cut or dropped when it was composed", name);
    check_chinese(name, s->title);
    check_chinese(name, s->footer);
    for (int i = 0; i < s->n_lines; i++)
        check_chinese(name, s->lines[i].text);
    if (!yn_render_covers(R, s->title))
        fail_msg("screen %s: the font lacks a glyph of the title", name);
    for (int i = 0; i < s->n_lines; i++)
        if (!yn_render_covers(R, s->lines[i].text))
            fail_msg("screen %s: the font lacks a glyph of \"%s\"", name, s->lines[i].text);

    yn_palette pal = yn_render_palette(s->kind);
    yn_canvas big, c;
    yn_layout lay;
    assert_int_equal(yn_canvas_init(&big, PANEL_W + SPILL_PX, PANEL_H + SPILL_PX), YN_OK);
    assert_int_equal(yn_canvas_init(&c, PANEL_W, PANEL_H), YN_OK);

    /* the body alone, on a larger canvas: nothing past the panel, nothing in the footer band */
    fill(&big, SENTINEL);
    assert_int_equal(yn_render_parts(R, s, &big, PANEL_W, PANEL_H, YN_PART_BODY, &lay), YN_OK);
    if (!lay.fits)
        fail_msg("screen %s: does not fit the panel even with smaller secondary lines", name);
    if (lay.main_px < 48)
        fail_msg("screen %s: main figure %d px (< 48)", name, lay.main_px);
    for (int y = 0; y < big.height_px; y++)
        for (int x = 0; x < big.width_px; x++) {
            bool outside = x >= PANEL_W || y >= PANEL_H;
            if (outside != (px_at(&big, x, y) == SENTINEL))
                fail_msg("screen %s: pixel (%d,%d) %s", name, x, y,
                         outside ? "drawn past the panel" : "left unpainted");
        }
    yn_canvas body = {.width_px = big.width_px, .height_px = big.height_px, .px = big.px};
    if (marks(&body, lay.footer_top_px, PANEL_H, pal.bg) != 0)
        fail_msg("screen %s: body text drawn in the footer band (y >= %d)", name,
                 lay.footer_top_px);
    /* the footer alone: nothing of it above its band */
    if (s->footer[0]) {
        fill(&big, SENTINEL);
        assert_int_equal(yn_render_parts(R, s, &big, PANEL_W, PANEL_H, YN_PART_FOOTER, NULL),
                         YN_OK);
        if (marks(&body, 0, lay.footer_top_px, pal.bg) != 0)
            fail_msg("screen %s: footer drawn above its band", name);
        if (marks(&body, lay.footer_top_px + 2, PANEL_H, pal.bg) == 0)
            fail_msg("screen %s: footer text missing", name);
    }

    /* the whole screen: two colours and their blends, contrast >= 7:1 */
    assert_int_equal(yn_render_screen(R, s, &c), YN_OK);
    uint32_t bg = px_at(&c, 0, 0), fg = bg;
    for (int y = 0; y < PANEL_H; y++)
        for (int x = 0; x < PANEL_W; x++)
            if (channel_distance(px_at(&c, x, y), bg) > channel_distance(fg, bg))
                fg = px_at(&c, x, y);
    for (int y = 0; y < PANEL_H; y++)
        for (int x = 0; x < PANEL_W; x++)
            if (!between(px_at(&c, x, y), bg, fg))
                fail_msg("screen %s: pixel (%d,%d) #%06x is neither text nor background", name, x,
                         y, (unsigned)px_at(&c, x, y));
    if (contrast(fg, bg) < 7.0)
        fail_msg("screen %s: text #%06x on #%06x has contrast %.2f:1 (< 7:1)", name, (unsigned)fg,
                 (unsigned)bg, contrast(fg, bg));
    /* the main figure's glyphs are really that large */
    for (int i = 0; i < lay.n_rows; i++) {
        const yn_layout_row *row = &lay.rows[i];
        if (row->line < 0 || row->size_px != lay.main_px)
            continue;
        int rows = ink_rows(&c, row->top_px, row->top_px + row->size_px * 5 / 4, bg, fg);
        if (rows < lay.main_px * 6 / 10)
            fail_msg("screen %s: main figure drawn %d px tall (size %d)", name, rows, lay.main_px);
        break;
    }

    /* the PNG, and a thumbnail for the contact sheet */
    char path[700];
    snprintf(path, sizeof path, "%s/%s.png", gallery_dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(yn_canvas_write_png(&c, f), YN_OK);
    assert_int_equal(fclose(f), 0);
    assert_true(n_shots < MAX_SHOTS);
    struct shot *sh = &shots[n_shots++];
    snprintf(sh->name, sizeof sh->name, "%s", name);
    const int tw = PANEL_W / THUMB_DIV, th = PANEL_H / THUMB_DIV;
    sh->thumb = malloc((size_t)tw * (size_t)th * sizeof *sh->thumb);
    assert_non_null(sh->thumb);
    for (int y = 0; y < th; y++)
        for (int x = 0; x < tw; x++) {
            unsigned sum[3] = {0, 0, 0};
            for (int dy = 0; dy < THUMB_DIV; dy++)
                for (int dx = 0; dx < THUMB_DIV; dx++)
                    for (int ch = 0; ch < 3; ch++)
                        sum[ch] +=
                            (px_at(&c, x * THUMB_DIV + dx, y * THUMB_DIV + dy) >> (16 - 8 * ch)) &
                            0xFF;
            uint32_t v = 0;
            for (int ch = 0; ch < 3; ch++)
                v |= (sum[ch] / (THUMB_DIV * THUMB_DIV)) << (16 - 8 * ch);
            sh->thumb[(size_t)y * (size_t)tw + (size_t)x] = v;
        }
    yn_canvas_free(&big);
    yn_canvas_free(&c);
}

static void write_contact_sheet(void)
{
    const int tw = PANEL_W / THUMB_DIV, th = PANEL_H / THUMB_DIV;
    int rows = (n_shots + SHEET_COLS - 1) / SHEET_COLS;
    yn_canvas sheet;
    assert_int_equal(yn_canvas_init(&sheet, SHEET_COLS * (tw + SHEET_GAP) + SHEET_GAP,
                                    rows * (th + SHEET_GAP) + SHEET_GAP),
                     YN_OK);
    fill(&sheet, 0x404040);
    for (int i = 0; i < n_shots; i++) {
        int x0 = SHEET_GAP + (i % SHEET_COLS) * (tw + SHEET_GAP);
        int y0 = SHEET_GAP + (i / SHEET_COLS) * (th + SHEET_GAP);
        for (int y = 0; y < th; y++)
            memcpy(&sheet.px[(size_t)(y0 + y) * (size_t)sheet.width_px + (size_t)x0],
                   &shots[i].thumb[(size_t)y * (size_t)tw], (size_t)tw * sizeof(uint32_t));
        free(shots[i].thumb);
    }
    char path[700];
    snprintf(path, sizeof path, "%s/gallery.png", gallery_dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(yn_canvas_write_png(&sheet, f), YN_OK);
    assert_int_equal(fclose(f), 0);
    yn_canvas_free(&sheet);
    /* the order, for the README */
    snprintf(path, sizeof path, "%s/gallery.txt", gallery_dir);
    f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < n_shots; i++)
        fprintf(f, "%d %d %s\n", i / SHEET_COLS + 1, i % SHEET_COLS + 1, shots[i].name);
    assert_int_equal(fclose(f), 0);
}

/* --- fixtures: the longest names, the largest amounts ---------------------- */

#define MAX_FEN 999999 /* ¥9999.99 */

static const char long_canteen[] = "深圳市福田区福田街道岗厦社区长者饭堂第一助餐点东门";
static yn_policy *policy;

/* A policy whose names are as long as allowed: 16 categories, 8 periods and
 * 16 sources named with 8 characters each. */
static void load_long_policy(void)
{
    static char doc[16384];
    int n = snprintf(doc, sizeof doc,
                     "{\"format\": 1, \"id\": \"gallery\", \"version\": 1, \"issuer\": 440304,"
                     " \"sell_without_subsidy\": true, \"reverse_window_s\": 600,"
                     " \"copay\": [\"wallet\", \"cash\"], \"sources\": [");
    for (int i = 0; i < 16; i++)
        n += snprintf(doc + n, sizeof doc - (size_t)n,
                      "%s{\"name\": \"s%d\", \"display\": \"区级财政专项%02d\"}", i ? ", " : "", i,
                      i);
    n += snprintf(doc + n, sizeof doc - (size_t)n, "], \"categories\": [");
    for (int i = 0; i < 16; i++)
        n += snprintf(doc + n, sizeof doc - (size_t)n,
                      "%s{\"name\": \"c%d\", \"display\": \"低保边缘长者%02d\", \"min_age\": 60}",
                      i ? ", " : "", i, i);
    n += snprintf(doc + n, sizeof doc - (size_t)n, "], \"periods\": [");
    for (int i = 0; i < 8; i++)
        n += snprintf(doc + n, sizeof doc - (size_t)n,
                      "%s{\"name\": \"p%d\", \"display\": \"午餐第%d时段加餐\", \"start\": "
                      "\"%02d:00\", \"end\": \"%02d:59\", \"weekdays\": [1,2,3,4,5,6,7]}",
                      i ? ", " : "", i, i, 6 + 2 * i, 6 + 2 * i);
    snprintf(doc + n, sizeof doc - (size_t)n,
             "], \"subsidies\": [{\"category\": \"c0\", \"period\": \"p0\", \"layers\": "
             "[{\"source\": \"s0\", \"cap_fen\": 1500, \"cap_at_price\": true, \"locality\": "
             "\"any\"}]}]}");
    char err[256];
    assert_int_equal(yn_policy_load(doc, strlen(doc), &policy, err, sizeof err), YN_OK);
}

/* The busiest status bar: a long terminal id, an operator, many records waiting. */
static yn_screens_ctx ctx(void)
{
    return (yn_screens_ctx){.policy = policy,
                            .terminal_id = "T-FT-0001-CANTEE",
                            .operator_id = "12345678",
                            .unsent = 1234567,
                            .unsent_age_s = 99999 * 60};
}

static yn_idle_view idle_view(bool kiosk, bool weighed, const char *period, int demo_cards)
{
    return (yn_idle_view){.canteen = long_canteen,
                          .local_ymd = 20261231,
                          .seconds_of_day = 12 * 3600 + 34 * 60,
                          .online = "离线（尚未同步）",
                          .period = period,
                          .kiosk = kiosk,
                          .weighed = weighed,
                          .price_fen = MAX_FEN,
                          .per100g_fen = MAX_FEN,
                          .demo_cards = demo_cards};
}

/* A committed sale with these shares. */
static const yn_tap_outcome *sale(int64_t subsidy, int64_t wallet, int64_t cash, int status)
{
    static yn_tap_outcome o;
    memset(&o, 0, sizeof o);
    o.status = status;
    o.charged = true;
    o.card_ok = true;
    snprintf(o.card.card_no, sizeof o.card.card_no, "4403042050123456789");
    o.result.seq = 9223372036854775807LL;
    o.result.decision.price_fen = subsidy + wallet + cash;
    o.result.decision.subsidy_fen = subsidy;
    o.result.decision.wallet_fen = wallet;
    o.result.decision.cash_fen = cash;
    o.result.decision.reason = subsidy > 0 ? YN_REASON_NONE : YN_REASON_OUTSIDE_AREA;
    o.result.wallet_after_fen = MAX_FEN;
    return &o;
}

static const yn_tap_outcome *refused(enum yn_reason r)
{
    static yn_tap_outcome o;
    memset(&o, 0, sizeof o);
    o.status = YN_EREFUSED;
    o.reason = r;
    o.card_ok = r != YN_REASON_READ_FAILED && r != YN_REASON_NOT_GENUINE;
    snprintf(o.card.card_no, sizeof o.card.card_no, "4403042050123456789");
    return &o;
}

static const yn_meal fixed_meal = {.price_fen = MAX_FEN};
static const yn_meal weighed_meal = {.weight_g = 99999, .price_per_100g_fen = MAX_FEN};

static const yn_ledger_account *account(int n_last)
{
    static yn_ledger_account a;
    memset(&a, 0, sizeof a);
    a.wallet_fen = MAX_FEN;
    a.meals_month = 31;
    a.subsidy_month_fen = 46500;
    a.meals_day = 1;
    a.subsidy_day_fen = 1500;
    a.n_last = n_last;
    for (int i = 0; i < n_last; i++)
        a.last[i] = (yn_ledger_meal_line){.seq = 1000 - i,
                                          .local_ymd = 20261231 - i,
                                          .period = "p7",
                                          .price_fen = MAX_FEN,
                                          .subsidy_fen = 150000,
                                          .paid_fen = MAX_FEN - 150000,
                                          .reversed = i == 1};
    return &a;
}

static const yn_ledger_settlement *settlement(void)
{
    static yn_ledger_settlement st;
    memset(&st, 0, sizeof st);
    st.local_ymd = 20261231;
    st.total = (yn_ledger_sum){.count = 99999,
                               .price_fen = 99999999999,
                               .subsidy_fen = 9999999999,
                               .wallet_fen = 9999999999,
                               .cash_fen = 9999999999};
    st.reversals = (yn_ledger_sum){.count = -9999, .price_fen = -99999999};
    st.topups = (yn_ledger_sum){.wallet_fen = -99999999};
    st.allocations = (yn_ledger_sum){.wallet_fen = -99999999};
    st.n_categories = YN_LEDGER_SUM_MAX;
    st.n_periods = 8;
    st.n_sources = YN_LEDGER_SUM_MAX;
    for (int i = 0; i < YN_LEDGER_SUM_MAX; i++) {
        snprintf(st.categories[i].name, YN_NAME_MAX, "c%d", i);
        st.categories[i].count = 9999;
        snprintf(st.sources[i].name, YN_NAME_MAX, "s%d", i);
        st.sources[i].subsidy_fen = 99999999;
        if (i < 8) {
            snprintf(st.periods[i].name, YN_NAME_MAX, "p%d", i);
            st.periods[i].count = 9999;
        }
    }
    return &st;
}

static const yn_ledger_result *reversal(void)
{
    static yn_ledger_result r;
    r = (yn_ledger_result){.seq = 9223372036854775807LL, .wallet_after_fen = MAX_FEN};
    r.decision.subsidy_fen = -MAX_FEN;
    r.decision.wallet_fen = -MAX_FEN;
    r.decision.cash_fen = -MAX_FEN;
    return &r;
}

/* --- the gallery --------------------------------------------------------- */

/* Build a screen with `call` (into s), give it the status bar if the builder
 * did not, check it and add it to the gallery as `name`. */
#define SHOT(name, call)                                                                           \
    do {                                                                                           \
        call;                                                                                      \
        if (!s.footer[0])                                                                          \
            yn_screens_footer(&s, &c);                                                             \
        check_screen(name, &s);                                                                    \
    } while (0)

static void gallery(void)
{
    yn_screen s;
    yn_screens_ctx c = ctx();
    yn_idle_view v;
    yn_balance_view b;
    /* idle */
    SHOT("idle", (v = idle_view(false, false, "p3", 0), yn_screens_idle(&s, &c, &v)));
    SHOT("idle_no_period", (v = idle_view(false, false, "", 0), yn_screens_idle(&s, &c, &v)));
    SHOT("idle_weighed", (v = idle_view(false, true, "p3", 0), yn_screens_idle(&s, &c, &v)));
    SHOT("idle_demo", (v = idle_view(false, false, "p3", 10), yn_screens_idle(&s, &c, &v)));
    SHOT("kiosk_idle", (v = idle_view(true, false, "", 0), yn_screens_idle(&s, &c, &v)));
    v = idle_view(false, false, "p3", 0);
    v.clock_unknown = true;
    SHOT("idle_clock_unknown", yn_screens_idle(&s, &c, &v));
    v = idle_view(false, true, "p3", 10);
    v.clock_estimated = true;
    SHOT("idle_clock_estimated", yn_screens_idle(&s, &c, &v));
    SHOT("price", yn_screens_price_entry(&s, false, "99999.99"));
    SHOT("price_invalid", yn_screens_price_invalid(&s, true));
    /* success, every form */
    SHOT("ok", yn_screens_tap(&s, &c, sale(1500, 0, 0, YN_OK), &fixed_meal, NULL));
    SHOT("ok_wallet", yn_screens_tap(&s, &c, sale(MAX_FEN, MAX_FEN, 0, YN_OK), &fixed_meal, NULL));
    SHOT("ok_cash", yn_screens_tap(&s, &c, sale(MAX_FEN, 0, MAX_FEN, YN_OK), &fixed_meal, NULL));
    SHOT("ok_wallet_cash",
         yn_screens_tap(&s, &c, sale(MAX_FEN, MAX_FEN, MAX_FEN, YN_OK), &weighed_meal, NULL));
    SHOT("ok_full_price", yn_screens_tap(&s, &c, sale(0, 0, MAX_FEN, YN_OK), &fixed_meal, NULL));
    SHOT("ok_full_price_wallet",
         yn_screens_tap(&s, &c, sale(0, MAX_FEN, MAX_FEN, YN_OK), &weighed_meal, NULL));
    SHOT("ok_weighed", yn_screens_tap(&s, &c, sale(500, 0, 3237, YN_OK), &weighed_meal, NULL));
    SHOT("ok_same_tap", yn_screens_tap(&s, &c, sale(MAX_FEN, MAX_FEN, MAX_FEN, YN_EDUPLICATE),
                                       &weighed_meal, NULL));
    yn_tap_outcome o = *sale(MAX_FEN, MAX_FEN, MAX_FEN, YN_EDUPLICATE);
    o.unshown_utc_s = 1798732799; /* 2026-12-31 23:59:59 Asia/Shanghai */
    o.stamp = YN_TAP_STAMP_MISSING;
    SHOT("ok_replayed_after_restart", yn_screens_tap(&s, &c, &o, &weighed_meal, NULL));
    o = *sale(1500, 0, 0, YN_OK);
    o.stamp = YN_TAP_STAMP_UNNOTED;
    SHOT("ok_stamp_missing", yn_screens_tap(&s, &c, &o, &fixed_meal, NULL));
    SHOT("refused_clock_dates",
         yn_screens_tap(&s, &c, refused(YN_REASON_CLOCK), NULL,
                        "本机时钟 1970-01-01 早于账本最后记录 2026-12-31，尚未与区平台对时"));
    /* every refusal */
    for (int r = 1; r < YN_REASON_COUNT; r++) {
        char name[48];
        snprintf(name, sizeof name, "refused_%s", yn_reason_code((enum yn_reason)r));
        SHOT(name, yn_screens_tap(&s, &c, refused((enum yn_reason)r), NULL, NULL));
    }
    SHOT("refused_weight_exception",
         yn_screens_tap(&s, &c, refused(YN_REASON_WEIGHT), NULL,
                        "电子秤读数失败：设备拒绝了请求（异常码 02 非法数据地址）："
                        "请对照设备说明书检查寄存器表"));
    SHOT("refused_weight_unsettled",
         yn_screens_tap(&s, &c, refused(YN_REASON_WEIGHT), NULL,
                        "重量在" YN_NB "60000" YN_NB "毫秒内没有稳定（最后" YN_NB "-99999" YN_NB
                        "克）：请放稳餐盘"));
    /* the kiosk */
    b = (yn_balance_view){.acc = account(4),
                          .limits = {.per_month = 999, .month_cap_fen = MAX_FEN, .day_max = 9}};
    SHOT("balance", yn_screens_balance(&s, &c, &b));
    b = (yn_balance_view){.acc = account(YN_LEDGER_LAST_MAX), .limits = {.per_month = 30}};
    SHOT("balance_meals", yn_screens_balance(&s, &c, &b));
    b = (yn_balance_view){.acc = account(0), .limits = {0}};
    SHOT("balance_no_limits", yn_screens_balance(&s, &c, &b));
    SHOT("balance_failed", yn_screens_balance_failed(&s, YN_ECORRUPT));
    /* staff */
    SHOT("staff_id", yn_screens_entry(&s, YN_ENTRY_LOGIN_ID, "", "12345678"));
    SHOT("staff_pin", yn_screens_entry(&s, YN_ENTRY_LOGIN_PIN, "12345678", "12345678"));
    SHOT("staff_menu", yn_screens_menu(&s, false));
    SHOT("staff_menu_manual", yn_screens_menu(&s, true));
    SHOT("reverse_seq", yn_screens_entry(&s, YN_ENTRY_REVERSE_SEQ, "", "999999999999"));
    SHOT("super_id", yn_screens_entry(&s, YN_ENTRY_SUPER_ID, "", "12345678"));
    SHOT("super_pin", yn_screens_entry(&s, YN_ENTRY_SUPER_PIN, "12345678", "12345678"));
    SHOT("reversed",
         yn_screens_reversed(&s, 9223372036854775807LL, "4403042050123456789", reversal()));
    SHOT("reverse_not_found",
         yn_screens_reverse_refused(&s, YN_ENOTFOUND, 9223372036854775807LL, 0, 0));
    SHOT("reverse_twice", yn_screens_reverse_refused(&s, YN_EDUPLICATE, 9223372036854775807LL,
                                                     9223372036854775807LL, 0));
    SHOT("reverse_too_late",
         yn_screens_reverse_refused(&s, YN_EREFUSED, 9223372036854775807LL, 0, 1440));
    SHOT("reverse_failed", yn_screens_reverse_refused(&s, YN_ENOSPC, 9223372036854775807LL, 0, 0));
    SHOT("settlement", yn_screens_settlement(&s, &c, settlement(),
                                             "settle-T-FT-0001-CANTEE-20261231.csv", YN_OK));
    SHOT("settlement_csv_failed", yn_screens_settlement(&s, &c, settlement(), NULL, YN_EROFS));
    /* 忘带卡 and identity-only cards */
    SHOT("manual_super_id", yn_screens_entry(&s, YN_ENTRY_MANUAL_SUPER_ID, "", "12345678"));
    SHOT("manual_super_pin",
         yn_screens_entry(&s, YN_ENTRY_MANUAL_SUPER_PIN, "12345678", "12345678"));
    SHOT("manual_tail", yn_screens_entry(&s, YN_ENTRY_MANUAL_TAIL, "", "123456789012"));
    SHOT("manual_birth", yn_screens_entry(&s, YN_ENTRY_MANUAL_BIRTH, "", "19450312"));
    yn_card_facts roster = {.card_no = "4403042050123456789",
                            .birth_ymd = 19250229,
                            .flags = 0x7F,
                            .district = 440304,
                            .street = 440304001,
                            .expiry_ymd = 20301231};
    yn_manual_view mv = {
        .card = &roster, .supervisor_id = "1234567890123456", .used_today = 999, .per_day = 1000};
    SHOT("manual_confirm", yn_screens_manual_confirm(&s, &c, &mv));
    o = *sale(MAX_FEN, MAX_FEN, MAX_FEN, YN_OK);
    o.by = YN_LEDGER_BY_IDENT;
    snprintf(o.ident, sizeof o.ident, "A:04010203040506070809");
    SHOT("ok_identity_only", yn_screens_tap(&s, &c, &o, &weighed_meal, NULL));
    o = *sale(MAX_FEN, MAX_FEN, MAX_FEN, YN_OK);
    o.by = YN_LEDGER_BY_MANUAL;
    snprintf(o.supervisor_id, sizeof o.supervisor_id, "1234567890123456");
    SHOT("ok_manual", yn_screens_tap(&s, &c, &o, &weighed_meal, NULL));
    o = *refused(YN_REASON_NOT_ENROLLED);
    o.card_ok = false;
    snprintf(o.ident, sizeof o.ident, "A:04010203040506070809");
    SHOT("refused_not_enrolled_ident", yn_screens_tap(&s, &c, &o, NULL, NULL));
    /* the scale */
    /* every short notice, with the longest arguments it takes */
    for (int n = 0; n < YN_NOTE_COUNT; n++) {
        yn_note_arg a = {.n = 26, .of = 1000, .text = "1234567890123456", .rc = YN_EDEV_ADDRESS};
        yn_screens_note(&s, (enum yn_note)n, &a);
        char name[48];
        snprintf(name, sizeof name, "note_%s", s.name);
        SHOT(name, yn_screens_note(&s, (enum yn_note)n, &a));
    }
    /* sales stopped by the ledger's keeper */
    yn_sales_stop stop = {.why = YN_STOP_LOST,
                          .first_seq = 9223372036854775000LL,
                          .last_seq = 9223372036854775807LL,
                          .can_restore = true};
    SHOT("sales_stopped_lost", yn_screens_sales_stopped(&s, &stop));
    stop.can_restore = false;
    SHOT("sales_stopped_lost_no_sync", yn_screens_sales_stopped(&s, &stop));
    stop.why = YN_STOP_CONFLICT;
    SHOT("sales_stopped_conflict", yn_screens_sales_stopped(&s, &stop));
    stop.why = YN_STOP_DAMAGED;
    SHOT("sales_stopped_damaged", yn_screens_sales_stopped(&s, &stop));
}

static void test_every_screen_fits_and_reads(void **state)
{
    (void)state;
    gallery();
    write_contact_sheet();
}

/* Every palette: text and background at least 7:1 (WCAG AAA). */
static void test_palettes_have_contrast_7(void **state)
{
    (void)state;
    for (int k = YN_SCREEN_IDLE; k <= YN_SCREEN_ERROR; k++) {
        yn_palette p = yn_render_palette((enum yn_screen_kind)k);
        assert_true(contrast(p.fg, p.bg) >= 7.0);
    }
}

/* Every staff status text is Chinese and distinct where it matters. */
static void test_status_texts_are_chinese(void **state)
{
    (void)state;
    for (int rc = 0; rc < YN_STATUS_COUNT; rc++)
        check_chinese("status", yn_screens_status_text(rc));
    for (int r = 0; r < YN_REASON_COUNT; r++) {
        check_chinese("reason", yn_reason_kind((enum yn_reason)r));
        check_chinese("reason", yn_reason_staff((enum yn_reason)r));
    }
    assert_string_not_equal(yn_screens_status_text(YN_ETIMEDOUT),
                            yn_screens_status_text(YN_EDEV_ADDRESS));
    assert_string_not_equal(yn_screens_status_text(YN_ETIMEDOUT), yn_screens_status_text(YN_ECRC));
}

/* The gallery's own checks fail on a bad screen: too much text, English. */
static void test_the_checks_can_fail(void **state)
{
    (void)state;
    yn_screen s;
    yn_screen_init(&s, YN_SCREEN_OK, "overfull", "成功");
    for (int i = 0; i < YN_SCREEN_LINES; i++)
        yn_screen_add(&s, YN_TEXT_HUGE, "补贴 ¥9999.99 请付现金 ¥9999.99");
    yn_layout lay;
    yn_render_layout(R, &s, PANEL_W, PANEL_H, &lay);
    assert_false(lay.fits);
    yn_screen_init(&s, YN_SCREEN_OK, "fits", "成功");
    yn_screen_add(&s, YN_TEXT_HUGE, "补贴 ¥15.00");
    yn_render_layout(R, &s, PANEL_W, PANEL_H, &lay);
    assert_true(lay.fits);
    assert_int_equal(lay.main_px, 72);
}

static int setup(void **state)
{
    (void)state;
    if (yn_render_open(YN_DEFAULT_FONT, &R) != YN_OK)
        return -1;
    load_long_policy();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    yn_render_close(R);
    yn_policy_free(policy);
    return 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    /* build/<arch>/tests/test_gallery -> build/<arch>/gallery */
    char self[512];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(gallery_dir, sizeof gallery_dir, "%s/../gallery", dirname(self));
    mkdir(gallery_dir, 0755);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_screen_fits_and_reads),
        cmocka_unit_test(test_status_texts_are_chinese),
        cmocka_unit_test(test_palettes_have_contrast_7),
        cmocka_unit_test(test_the_checks_can_fail),
    };
    return cmocka_run_group_tests_name("gallery", tests, setup, teardown);
}
