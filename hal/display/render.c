/* render.c — the one screen renderer: FreeType glyphs placed by the pure
 * layout (layout.h): title bar, lines at their sizes, footer band. The layout
 * never clips; a screen that does not fit even at the smallest secondary sizes
 * is drawn as far as the footer and logged as an error (the screen gallery
 * test, tests/unit/test_gallery.c, keeps every screen from getting there).
 * Integer arithmetic only. */
#include "render.h"

#include <ft2build.h>
#include FT_FREETYPE_H
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct yn_renderer {
    FT_Library lib;
    FT_Face face;
    int size_px; /* the face's current pixel size, 0 = not set */
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

static void set_size(yn_renderer *r, int size_px)
{
    if (r->size_px != size_px) {
        FT_Set_Pixel_Sizes(r->face, 0, (FT_UInt)size_px);
        r->size_px = size_px;
    }
}

/* The layout's measure: advance width of one code point at size_px. A no-break
 * space is as wide as a space. */
static int advance_px(void *arg, uint32_t cp, int size_px)
{
    yn_renderer *r = arg;
    set_size(r, size_px);
    if (FT_Load_Char(r->face, cp == 0xA0 ? ' ' : cp, FT_LOAD_DEFAULT) != 0)
        return 0;
    return (int)(r->face->glyph->advance.x >> 6);
}

static void draw_glyph(yn_renderer *r, yn_canvas *c, int pen_x, int baseline, uint32_t fg,
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
            *px = blend(*px, fg, a);
        }
    }
}

static void draw_row(yn_renderer *r, yn_canvas *c, const char *text, const yn_layout_row *row,
                     int x, uint32_t fg, int clip_bottom)
{
    set_size(r, row->size_px);
    for (const char *p = text + row->start; p < text + row->end;) {
        uint32_t cp = yn_utf8_next(&p);
        if (cp == 0xA0)
            cp = ' ';
        int adv = advance_px(r, cp, row->size_px);
        if (FT_Load_Char(r->face, cp, FT_LOAD_RENDER) == 0)
            draw_glyph(r, c, x, row->top_px + row->size_px, fg, clip_bottom);
        x += adv;
    }
}

bool yn_render_covers(yn_renderer *r, const char *text)
{
    for (const char *p = text; *p;) {
        uint32_t cp = yn_utf8_next(&p);
        if (cp != 0xA0 && FT_Get_Char_Index(r->face, cp) == 0)
            return false;
    }
    return true;
}

void yn_render_layout(yn_renderer *r, const yn_screen *s, int width_px, int height_px,
                      yn_layout *out)
{
    yn_layout_screen(s, width_px, height_px, advance_px, r, out);
}

static const char *row_text(const yn_screen *s, const yn_layout_row *row)
{
    return row->line == YN_LAYOUT_TITLE    ? s->title
           : row->line == YN_LAYOUT_FOOTER ? s->footer
                                           : s->lines[row->line].text;
}

int yn_render_parts(yn_renderer *r, const yn_screen *s, yn_canvas *c, int panel_w, int panel_h,
                    unsigned parts, yn_layout *out)
{
    yn_layout lay = {0};
    yn_layout *l = out ? out : &lay;
    yn_render_layout(r, s, panel_w, panel_h, l);
    if (!l->fits)
        yn_err("display: screen '%s' does not fit %dx%d even with smaller secondary lines; "
               "shorten its text",
               s->name, panel_w, panel_h);
    yn_palette pal = yn_render_palette(s->kind);
    fill_rect(c, 0, 0, panel_w, panel_h, pal.bg);
    const int m = l->margin_px;
    if (parts & YN_PART_BODY)
        fill_rect(c, m, l->rule_y_px, panel_w - 2 * m, 3, pal.fg); /* rule under the title */
    if ((parts & YN_PART_FOOTER) && s->footer[0])
        fill_rect(c, 0, l->footer_top_px, panel_w, 2, pal.fg);
    for (int i = 0; i < l->n_rows; i++) {
        const yn_layout_row *row = &l->rows[i];
        bool footer = row->line == YN_LAYOUT_FOOTER;
        if (!(parts & (footer ? YN_PART_FOOTER : YN_PART_BODY)))
            continue;
        /* only a screen that does not fit is cut, at the footer */
        draw_row(r, c, row_text(s, row), row, m, pal.fg,
                 footer || l->fits ? c->height_px : l->footer_top_px);
    }
    return YN_OK;
}

int yn_render_screen(yn_renderer *r, const yn_screen *s, yn_canvas *c)
{
    return yn_render_parts(r, s, c, c->width_px, c->height_px, YN_PART_BODY | YN_PART_FOOTER, NULL);
}

int yn_canvas_write_png(const yn_canvas *c, FILE *f)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *row = malloc((size_t)c->width_px * 3);
    if (!png || !info || !row) {
        png_destroy_write_struct(&png, &info);
        free(row);
        return YN_ENOMEM;
    }
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(row);
        return YN_EIO;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)c->width_px, (png_uint_32)c->height_px, 8,
                 PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < c->height_px; y++) {
        for (int x = 0; x < c->width_px; x++) {
            uint32_t p = c->px[(size_t)y * (size_t)c->width_px + (size_t)x];
            row[3 * x] = (uint8_t)(p >> 16);
            row[3 * x + 1] = (uint8_t)(p >> 8);
            row[3 * x + 2] = (uint8_t)p;
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    return YN_OK;
}
