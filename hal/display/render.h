/* render.h — draws a screen (display.h's yn_screen) into a memory canvas with
 * FreeType and a CJK font, large and high-contrast for seniors, placed by the
 * pure layout (layout.h) so that nothing is clipped. The pixel backends (PNG
 * snapshot, Linux framebuffer) present the canvas. */
#ifndef YN_HAL_RENDER_H
#define YN_HAL_RENDER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "display.h"
#include "layout.h"
#include "status.h"

#define YN_DEFAULT_FONT "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"

/* Text sizes in pixels on the panel (main figures at least 48 px). */
enum { YN_PX_NORMAL = 30, YN_PX_LARGE = 48, YN_PX_HUGE = 72, YN_PX_TITLE = 40, YN_PX_FOOTER = 22 };

typedef struct yn_canvas {
    int width_px, height_px;
    uint32_t *px; /* width_px * height_px pixels, 0x00RRGGBB, row-major */
} yn_canvas;

int yn_canvas_init(yn_canvas *c, int width_px, int height_px) YN_MUST_CHECK;
void yn_canvas_free(yn_canvas *c);

typedef struct yn_palette {
    uint32_t bg, fg; /* 0xRRGGBB */
} yn_palette;

/* The colours of a screen kind; every pair has a contrast ratio of at least 7:1. */
yn_palette yn_render_palette(enum yn_screen_kind kind);

typedef struct yn_renderer yn_renderer;

/* Load the font (a .ttf/.ttc path). YN_ENOENT when it cannot be loaded. */
int yn_render_open(const char *font_path, yn_renderer **out) YN_MUST_CHECK;
void yn_render_close(yn_renderer *r);
/* Draw s onto c (all of it: background, title, lines, footer). */
int yn_render_screen(yn_renderer *r, const yn_screen *s, yn_canvas *c) YN_MUST_CHECK;
/* True when the font has a glyph for every character of text. */
bool yn_render_covers(yn_renderer *r, const char *text);
/* Pixel size a line of this size is drawn at when the screen fits as it is
 * (secondary lines may be drawn smaller: layout.h). */
int yn_render_px(enum yn_text_size size);
/* Where every row of s goes on a width_px x height_px panel. */
void yn_render_layout(yn_renderer *r, const yn_screen *s, int width_px, int height_px,
                      yn_layout *out);

/* Parts of a screen, for tests that check one part's pixels against the other's place. */
enum { YN_PART_BODY = 1u, YN_PART_FOOTER = 2u };
/* Draw the given parts of s as a panel_w x panel_h panel at the top left of c
 * (c may be larger: what lands outside the panel was drawn past it); out, when
 * not NULL, receives the layout. */
int yn_render_parts(yn_renderer *r, const yn_screen *s, yn_canvas *c, int panel_w, int panel_h,
                    unsigned parts, yn_layout *out) YN_MUST_CHECK;
/* The canvas as an 8-bit RGB PNG. */
int yn_canvas_write_png(const yn_canvas *c, FILE *f) YN_MUST_CHECK;

#endif
