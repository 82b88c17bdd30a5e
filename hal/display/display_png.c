/* display_png.c — the screen as PNG files: every screen shown is rendered and
 * written to <snapshot_dir>/<screen name>.png (replaced atomically), for tests
 * and for documentation. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "display.h"
#include "log.h"
#include "render.h"

struct png_display {
    yn_renderer *r;
    yn_canvas canvas;
    char dir[PATH_MAX];
    int written; /* screens written since open */
};

static int png_open(yn_display *dev, const yn_display_conf *cfg)
{
    struct png_display *d = calloc(1, sizeof *d);
    if (!d)
        return YN_ENOMEM;
    snprintf(d->dir, sizeof d->dir, "%s", cfg->snapshot_dir);
    if (mkdir(d->dir, 0755) != 0 && errno != EEXIST) {
        yn_err("display: cannot create snapshot folder '%s': %s", d->dir, strerror(errno));
        free(d);
        return YN_EIO;
    }
    int rc = yn_render_open(YN_DEFAULT_FONT, &d->r);
    if (rc == YN_OK)
        rc = yn_canvas_init(&d->canvas, cfg->width_px, cfg->height_px);
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
    rc = yn_canvas_write_png(&d->canvas, f);
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
