/* layout.h — pure text layout for screens: where a line of text may break,
 * and what size each line of a screen gets so that the whole screen fits its
 * panel. No font and no I/O: the caller measures (FreeType pixels for a panel,
 * character cells for a text terminal), so one set of rules serves both.
 *
 * Breaking rules (tested in tests/unit/test_layout.c):
 *   - a line breaks at a space, or between two CJK characters, or between a
 *     CJK character and a Latin run;
 *   - never inside a run of Latin letters, digits and signs ("¥37.50",
 *     "T-FT-0001", "4403042050"), never between a number and a CJK
 *     character beside it ("100克", "长者02"), never at a no-break space U+00A0 (screens
 *     write "流水号\u00a03" so a label stays with its number, the CJK word
 *     touching it kept whole);
 *   - closing punctuation (，。：) never starts a line, opening punctuation
 *     (（“) never ends one;
 *   - only a run wider than the whole line is cut, between characters.
 * A screen that would not fit gets smaller secondary lines, step by step; the
 * main figure (every HUGE line, or the first LARGE line when there is no
 * HUGE one) keeps its size (>= 48 px). */
#ifndef YN_HAL_LAYOUT_H
#define YN_HAL_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "display.h"

/* Advance of one code point at size_px (pixels, or cells for a terminal). */
typedef int (*yn_layout_advance_fn)(void *arg, uint32_t cp, int size_px);

/* Next code point of UTF-8 text; invalid bytes come out as U+FFFD. */
uint32_t yn_utf8_next(const char **p);

/* Break text into rows no wider than width. Row i is text[start[i], end[i]);
 * spaces around a break are dropped. Returns the number of rows (at most max;
 * the last row then holds the rest). */
int yn_layout_wrap(const char *text, int width, int size_px, yn_layout_advance_fn advance,
                   void *arg, int *start, int *end, int max);

enum { YN_LAYOUT_TITLE = -1, YN_LAYOUT_FOOTER = -2 };
#define YN_LAYOUT_MAX_ROWS 64

typedef struct yn_layout_row {
    int line;       /* index into yn_screen.lines, or YN_LAYOUT_TITLE / YN_LAYOUT_FOOTER */
    int start, end; /* byte range of that text */
    int size_px;    /* glyph size */
    int top_px;     /* top of the row; the baseline is top_px + size_px */
    int width_px;   /* measured width, <= the text width */
} yn_layout_row;

typedef struct yn_layout {
    int margin_px;      /* left and right margin */
    int rule_y_px;      /* the rule under the title */
    int footer_top_px;  /* the footer band starts here (= panel height when no footer) */
    int body_bottom_px; /* below the last body row */
    int main_px;        /* size of the main figure */
    bool fits;          /* every row lies inside the panel, above the footer */
    int n_rows;
    yn_layout_row rows[YN_LAYOUT_MAX_ROWS];
} yn_layout;

/* Lay s out on a width_px x height_px panel. */
void yn_layout_screen(const yn_screen *s, int width_px, int height_px, yn_layout_advance_fn advance,
                      void *arg, yn_layout *out);

#endif
