/* render.c — the one screen renderer: title bar, lines at three sizes,
 * footer; long lines wrap (CJK text may break between any two characters);
 * what does not fit is cut at the footer. Integer arithmetic only. */
#include "render.h"

#include <ft2build.h>
#include FT_FREETYPE_H
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct yn_renderer {
    FT_Library lib;
    FT_Face face;
};

int yn_canvas_init(yn_canvas *c, int width_px, int height_px)
{
    c->width_px = width_px;
    c->height_px = height_px;
    c->px = calloc((size_t)width_px * (size_t)height_px, sizeof *c->px);
    return c->px ? YN_OK : YN_ENOMEM;
}

void yn_canvas_free(yn_canvas *c)
{
    free(c->px);
    c->px = NULL;
}

yn_palette yn_render_palette(enum yn_screen_kind kind)
{
    switch (kind) {
    case YN_SCREEN_OK:
        return (yn_palette){.bg = 0x0B5D1E, .fg = 0xFFFFFF}; /* dark green */
    case YN_SCREEN_REFUSED:
    case YN_SCREEN_ERROR:
        return (yn_palette){.bg = 0x9B0000, .fg = 0xFFFFFF}; /* dark red */
    case YN_SCREEN_PROMPT:
        return (yn_palette){.bg = 0xFFD400, .fg = 0x000000}; /* yellow */
    case YN_SCREEN_INFO:
        return (yn_palette){.bg = 0xFFFFFF, .fg = 0x000000};
    default:
        return (yn_palette){.bg = 0x0A2A5C, .fg = 0xFFFFFF}; /* navy */
    }
}

int yn_render_px(enum yn_text_size size)
{
    return size == YN_TEXT_HUGE ? YN_PX_HUGE : size == YN_TEXT_LARGE ? YN_PX_LARGE : YN_PX_NORMAL;
}

int yn_render_open(const char *font_path, yn_renderer **out)
{
    yn_renderer *r = calloc(1, sizeof *r);
    if (!r)
        return YN_ENOMEM;
    if (FT_Init_FreeType(&r->lib) != 0) {
        free(r);
        return YN_ENOMEM;
    }
    if (FT_New_Face(r->lib, font_path, 0, &r->face) != 0) {
        yn_err("display: cannot load font '%s' (install fonts-wqy-microhei)", font_path);
        FT_Done_FreeType(r->lib);
        free(r);
        return YN_ENOENT;
    }
    *out = r;
    return YN_OK;
}

void yn_render_close(yn_renderer *r)
{
    if (!r)
        return;
    FT_Done_Face(r->face);
    FT_Done_FreeType(r->lib);
    free(r);
}

/* Next code point of UTF-8 text; invalid bytes come out as U+FFFD. */
static uint32_t utf8_next(const char **p)
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

static uint32_t blend(uint32_t bg, uint32_t fg, unsigned a)
{
    uint32_t out = 0;
    for (int shift = 0; shift <= 16; shift += 8) {
        unsigned b = (bg >> shift) & 0xFF, f = (fg >> shift) & 0xFF;
        out |= ((f * a + b * (255 - a) + 127) / 255) << shift;
    }
    return out;
}

static void fill_rect(yn_canvas *c, int x0, int y0, int w, int h, uint32_t rgb)
{
    for (int y = y0 < 0 ? 0 : y0; y < y0 + h && y < c->height_px; y++)
        for (int x = x0 < 0 ? 0 : x0; x < x0 + w && x < c->width_px; x++)
            c->px[(size_t)y * (size_t)c->width_px + (size_t)x] = rgb;
}

/* Advance width of one code point at the face's current size. */
static int advance_px(yn_renderer *r, uint32_t cp)
{
    if (FT_Load_Char(r->face, cp, FT_LOAD_DEFAULT) != 0)
        return 0;
    return (int)(r->face->glyph->advance.x >> 6);
}

static void draw_glyph(yn_renderer *r, yn_canvas *c, int pen_x, int baseline, yn_palette pal,
                       int clip_bottom)
{
    const FT_GlyphSlot g = r->face->glyph;
    const FT_Bitmap *bm = &g->bitmap;
    for (unsigned row = 0; row < bm->rows; row++) {
        int y = baseline - g->bitmap_top + (int)row;
        if (y < 0 || y >= clip_bottom || y >= c->height_px)
            continue;
        for (unsigned col = 0; col < bm->width; col++) {
            int x = pen_x + g->bitmap_left + (int)col;
            unsigned a = bm->buffer[row * (unsigned)bm->pitch + col];
            if (x < 0 || x >= c->width_px || a == 0)
                continue;
            uint32_t *px = &c->px[(size_t)y * (size_t)c->width_px + (size_t)x];
            *px = blend(*px, pal.fg, a);
        }
    }
}

/* Draw text at size_px from the top y, wrapping within [margin, width-margin).
 * Returns the y below the last line drawn. */
static int draw_text(yn_renderer *r, yn_canvas *c, const char *text, int size_px, int y, int margin,
                     yn_palette pal, int clip_bottom)
{
    FT_Set_Pixel_Sizes(r->face, 0, (FT_UInt)size_px);
    int line_h = size_px + size_px / 4;
    int baseline = y + size_px;
    int x = margin;
    for (const char *p = text; *p;) {
        uint32_t cp = utf8_next(&p);
        int adv = advance_px(r, cp);
        if (x + adv > c->width_px - margin && x > margin) {
            x = margin;
            baseline += line_h;
        }
        if (FT_Load_Char(r->face, cp, FT_LOAD_RENDER) == 0)
            draw_glyph(r, c, x, baseline, pal, clip_bottom);
        x += adv;
    }
    return baseline - size_px + line_h;
}

bool yn_render_covers(yn_renderer *r, const char *text)
{
    for (const char *p = text; *p;)
        if (FT_Get_Char_Index(r->face, utf8_next(&p)) == 0)
            return false;
    return true;
}

int yn_render_screen(yn_renderer *r, const yn_screen *s, yn_canvas *c)
{
    const int margin = c->width_px / 32;
    yn_palette pal = yn_render_palette(s->kind);
    fill_rect(c, 0, 0, c->width_px, c->height_px, pal.bg);

    int footer_h = s->footer[0] ? YN_PX_FOOTER + YN_PX_FOOTER / 2 + 4 : 0;
    int clip = c->height_px - footer_h;
    int y = draw_text(r, c, s->title, YN_PX_TITLE, margin / 2, margin, pal, clip);
    fill_rect(c, margin, y, c->width_px - 2 * margin, 3, pal.fg); /* rule under the title */
    y += margin / 2;
    for (int i = 0; i < s->n_lines && y < clip; i++)
        y = draw_text(r, c, s->lines[i].text, yn_render_px(s->lines[i].size), y, margin, pal, clip);
    if (footer_h) {
        fill_rect(c, 0, clip, c->width_px, 2, pal.fg);
        draw_text(r, c, s->footer, YN_PX_FOOTER, clip + 4, margin, pal, c->height_px);
    }
    return YN_OK;
}
