/* display_png.c — the screen as PNG files: every screen shown is rendered and
 * written to <snapshot_dir>/<screen name>.png (replaced atomically), for tests
 * and for documentation. */
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "display.h"
#include "log.h"
#include "render.h"

struct png_display {
    yn_renderer *r;
    yn_canvas canvas;
    char dir[PATH_MAX];
    int written; /* screens written since open */
};

static int png_open(yn_display *dev, const yn_config *cfg)
{
    struct png_display *d = calloc(1, sizeof *d);
    if (!d)
        return YN_ENOMEM;
    snprintf(d->dir, sizeof d->dir, "%s", cfg->display.snapshot_dir);
    if (mkdir(d->dir, 0755) != 0 && errno != EEXIST) {
        yn_err("display: cannot create snapshot folder '%s': %s", d->dir, strerror(errno));
        free(d);
        return YN_EIO;
    }
    int rc = yn_render_open(YN_DEFAULT_FONT, &d->r);
    if (rc == YN_OK)
        rc = yn_canvas_init(&d->canvas, cfg->display.width_px, cfg->display.height_px);
    if (rc != YN_OK) {
        yn_render_close(d->r);
        free(d);
        return rc;
    }
    dev->priv = d;
    return YN_OK;
}

static void png_close(yn_display *dev)
{
    struct png_display *d = dev->priv;
    yn_render_close(d->r);
    yn_canvas_free(&d->canvas);
    free(d);
    dev->priv = NULL;
}

/* Write the canvas as an 8-bit RGB PNG. */
static int write_png(const yn_canvas *c, FILE *f)
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

static int png_show(yn_display *dev, const yn_screen *s)
{
    struct png_display *d = dev->priv;
    char path[PATH_MAX + 64], tmp[PATH_MAX + 80];
    int rc = yn_render_screen(d->r, s, &d->canvas);
    if (rc != YN_OK)
        return rc;
    snprintf(path, sizeof path, "%s/%s.png", d->dir, s->name[0] ? s->name : "screen");
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        yn_err("display: cannot write '%s': %s", tmp, strerror(errno));
        return YN_EIO;
    }
    rc = write_png(&d->canvas, f);
    if (fclose(f) != 0 && rc == YN_OK)
        rc = YN_EIO;
    if (rc == YN_OK && rename(tmp, path) != 0)
        rc = YN_EIO;
    if (rc != YN_OK)
        unlink(tmp);
    else
        d->written++;
    return rc;
}

static int png_describe(yn_display *dev, char *buf, size_t len)
{
    struct png_display *d = dev->priv;
    snprintf(buf, len, "PNG snapshots %dx%d in %s (%d written)", d->canvas.width_px,
             d->canvas.height_px, d->dir, d->written);
    return YN_OK;
}

const yn_display_ops yn_display_png_ops = {
    .name = "png",
    .open = png_open,
    .close = png_close,
    .show = png_show,
    .describe = png_describe,
};
