/* layout.c — line breaking and screen fitting (see layout.h). Pure: integer
 * arithmetic on UTF-8 text and the caller's advance widths. */
#include "layout.h"

#include <string.h>

uint32_t yn_utf8_next(const char **p)
{
    const unsigned char *s = (const unsigned char *)*p;
    uint32_t cp;
    int n;
    if (s[0] < 0x80) {
        cp = s[0];
        n = 1;
    } else if ((s[0] & 0xE0) == 0xC0) {
        cp = s[0] & 0x1F;
        n = 2;
    } else if ((s[0] & 0xF0) == 0xE0) {
        cp = s[0] & 0x0F;
        n = 3;
    } else if ((s[0] & 0xF8) == 0xF0) {
        cp = s[0] & 0x07;
        n = 4;
    } else {
        *p += 1;
        return 0xFFFD;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *p += i;
            return 0xFFFD;
        }
        cp = cp << 6 | (s[i] & 0x3F);
    }
    *p += n;
    return cp;
}

enum cls { C_SPACE, C_GLUE, C_CJK, C_OPEN, C_CLOSE, C_DIGIT, C_OTHER };

static bool in(uint32_t cp, const char *set)
{
    for (const char *p = set; *p;)
        if (yn_utf8_next(&p) == cp)
            return true;
    return false;
}

static enum cls classify(uint32_t cp)
{
    if (cp == ' ' || cp == 0x3000)
        return C_SPACE;
    if (cp == 0xA0)
        return C_GLUE;
    if (in(cp, "，。、：；！？）」』】〉》”’…,.:;!?)]}%"))
        return C_CLOSE;
    if (in(cp, "（「『【〈《“‘([{"))
        return C_OPEN;
    if (cp >= '0' && cp <= '9')
        return C_DIGIT;
    if ((cp >= 0x2E80 && cp <= 0x9FFF) || (cp >= 0xF900 && cp <= 0xFAFF) ||
        (cp >= 0xFF00 && cp <= 0xFFEF) || cp >= 0x20000)
        return C_CJK;
    return C_OTHER;
}

/* May a row end between a character of class a and one of class b? (Spaces
 * are handled by the caller: a row may always end at one.) */
static bool may_break(enum cls a, enum cls b)
{
    if (a == C_GLUE || b == C_GLUE || b == C_CLOSE || a == C_OPEN || b == C_SPACE)
        return false;
    if ((a == C_DIGIT && b == C_CJK) || (a == C_CJK && b == C_DIGIT))
        return false; /* 100克, 3次, 长者02: a number stays with the word it counts */
    return a == C_CJK || b == C_CJK || a == C_SPACE;
}

/* The code point that ends just before p (text <= p), and where it starts. */
static uint32_t prev_cp(const char *text, const char **p)
{
    const char *q = *p;
    do
        q--;
    while (q > text && ((unsigned char)*q & 0xC0) == 0x80);
    *p = q;
    const char *r = q;
    return yn_utf8_next(&r);
}

/* A CJK run that touches a no-break space is one word with its number
 * ("流水号\u00a03", "待上传\u00a012\u00a0条"): no break inside it. */
static bool glued(const char *text, const char *at)
{
    const char *p = at;
    while (p > text) {
        enum cls c = classify(prev_cp(text, &p));
        if (c == C_GLUE)
            return true;
        if (c != C_CJK)
            break;
    }
    for (p = at; *p;) {
        enum cls c = classify(yn_utf8_next(&p));
        if (c == C_GLUE)
            return true;
        if (c != C_CJK)
            break;
    }
    return false;
}

int yn_layout_wrap(const char *text, int width, int size_px, yn_layout_advance_fn advance,
                   void *arg, int *start, int *end, int max)
{
    int n = 0;
    const char *p = text;
    while (n < max) {
        while (*p == ' ')
            p++;
        if (!*p && n > 0)
            break;
        const char *row = p, *brk = NULL; /* last place the row may end */
        int w = 0;
        enum cls prev = C_SPACE;
        bool first = true;
        while (*p) {
            const char *here = p;
            uint32_t cp = yn_utf8_next(&p);
            enum cls c = classify(cp);
            if (!first && may_break(prev, c) && !(prev == C_CJK && c == C_CJK && glued(text, here)))
                brk = here;
            int adv = advance(arg, cp, size_px);
            if (w + adv > width && !first && c != C_SPACE && n + 1 < max) {
                if (!brk)
                    brk = here; /* one run wider than the row: cut it */
                p = brk;
                break;
            }
            w += adv;
            prev = c;
            first = false;
        }
        const char *stop = p;
        while (stop > row && stop[-1] == ' ')
            stop--;
        start[n] = (int)(row - text);
        end[n] = (int)(stop - text);
        n++;
        if (!*p)
            break;
    }
    return n;
}

static int row_width(const char *text, int a, int b, int size_px, yn_layout_advance_fn advance,
                     void *arg)
{
    int w = 0;
    for (const char *p = text + a; p < text + b;)
        w += advance(arg, yn_utf8_next(&p), size_px);
    return w;
}

/* Secondary sizes, step by step smaller: title, large, normal, footer. */
static const int tiers[][4] = {
    {40, 48, 30, 22}, {36, 44, 28, 22}, {34, 40, 26, 20}, {32, 36, 24, 20}, {30, 32, 22, 18},
};
#define N_TIERS    (int)(sizeof tiers / sizeof tiers[0])
#define HUGE_PX    72
#define MAIN_PX    48
#define LINE_H(px) ((px) + (px) / 4)
#define RULE_PX    3
#define FOOT_RULE  2

static int add_rows(yn_layout *o, const char *text, int line, int size_px, int top_px, int width,
                    yn_layout_advance_fn advance, void *arg)
{
    int start[YN_LAYOUT_MAX_ROWS], end[YN_LAYOUT_MAX_ROWS];
    int room = YN_LAYOUT_MAX_ROWS - o->n_rows;
    int n = room > 0 ? yn_layout_wrap(text, width, size_px, advance, arg, start, end, room) : 0;
    for (int i = 0; i < n; i++) {
        yn_layout_row *r = &o->rows[o->n_rows++];
        *r = (yn_layout_row){.line = line,
                             .start = start[i],
                             .end = end[i],
                             .size_px = size_px,
                             .top_px = top_px,
                             .width_px = row_width(text, start[i], end[i], size_px, advance, arg)};
        if (r->width_px > width)
            o->fits = false;
        top_px += LINE_H(size_px);
    }
    if (room <= 0)
        o->fits = false;
    return top_px;
}

/* The line that is the screen's main figure: the first HUGE line, else the
 * first LARGE one; -1 when there is none. */
static int main_line(const yn_screen *s)
{
    for (enum yn_text_size want = YN_TEXT_HUGE;; want = YN_TEXT_LARGE) {
        for (int i = 0; i < s->n_lines; i++)
            if (s->lines[i].size == want)
                return i;
        if (want == YN_TEXT_LARGE)
            return -1;
    }
}

static void lay_out(const yn_screen *s, int w, int h, const int tier[4],
                    yn_layout_advance_fn advance, void *arg, yn_layout *o)
{
    memset(o, 0, sizeof *o);
    o->fits = true;
    o->margin_px = w / 32;
    const int text_w = w - 2 * o->margin_px, main = main_line(s);
    /* the footer first: its height is reserved at the bottom */
    o->footer_top_px = h;
    if (s->footer[0]) {
        yn_layout probe;
        memset(&probe, 0, sizeof probe);
        int end = add_rows(&probe, s->footer, YN_LAYOUT_FOOTER, tier[3], 0, text_w, advance, arg);
        o->footer_top_px = h - end - FOOT_RULE - 4;
    }
    int y = add_rows(o, s->title, YN_LAYOUT_TITLE, tier[0], o->margin_px / 2, text_w, advance, arg);
    o->rule_y_px = y;
    y += RULE_PX + o->margin_px / 2;
    for (int i = 0; i < s->n_lines; i++) {
        enum yn_text_size size = s->lines[i].size;
        int px = size == YN_TEXT_HUGE    ? HUGE_PX
                 : size == YN_TEXT_LARGE ? (i == main ? MAIN_PX : tier[1])
                                         : tier[2];
        if (px > o->main_px)
            o->main_px = px;
        y = add_rows(o, s->lines[i].text, i, px, y, text_w, advance, arg);
    }
    o->body_bottom_px = y;
    if (s->footer[0])
        add_rows(o, s->footer, YN_LAYOUT_FOOTER, tier[3], o->footer_top_px + FOOT_RULE + 4, text_w,
                 advance, arg);
    if (y > o->footer_top_px)
        o->fits = false;
}

void yn_layout_screen(const yn_screen *s, int width_px, int height_px, yn_layout_advance_fn advance,
                      void *arg, yn_layout *out)
{
    for (int t = 0; t < N_TIERS; t++) {
        lay_out(s, width_px, height_px, tiers[t], advance, arg, out);
        if (out->fits)
            return;
    }
}
