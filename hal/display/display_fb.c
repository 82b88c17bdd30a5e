/* display_fb.c — the Linux framebuffer (/dev/fb0): the rendered canvas is
 * copied into the mmap'd framebuffer at 32 bpp (XRGB8888) or 16 bpp (RGB565),
 * honouring the line stride. A regular file may stand in for the device (a
 * 32 bpp image of the configured size), which is how the tests use it. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "display.h"
#include "log.h"
#include "render.h"

struct fb_display {
    int fd;
    uint8_t *mem; /* the mapped framebuffer */
    size_t mem_len;
    int bpp;          /* 16 or 32 */
    int stride_bytes; /* bytes from one row to the next */
    yn_renderer *r;
    yn_canvas canvas;
    char device[YN_DEV_MAX];
};

static int fb_geometry(struct fb_display *d, const yn_display_conf *cfg, int *w, int *h)
{
    struct fb_var_screeninfo var;
    struct fb_fix_screeninfo fix;
    if (ioctl(d->fd, FBIOGET_VSCREENINFO, &var) == 0 &&
        ioctl(d->fd, FBIOGET_FSCREENINFO, &fix) == 0) {
        *w = (int)var.xres;
        *h = (int)var.yres;
        d->bpp = (int)var.bits_per_pixel;
        d->stride_bytes = (int)fix.line_length;
        d->mem_len = (size_t)fix.smem_len;
    } else {
        struct stat sb;
        if (fstat(d->fd, &sb) != 0 || !S_ISREG(sb.st_mode))
            return YN_ENODEV;
        *w = cfg->width_px; /* a plain file standing in for the panel */
        *h = cfg->height_px;
        d->bpp = 32;
        d->stride_bytes = *w * 4;
        d->mem_len = (size_t)d->stride_bytes * (size_t)*h;
        if ((size_t)sb.st_size < d->mem_len && ftruncate(d->fd, (off_t)d->mem_len) != 0)
            return YN_EIO;
    }
    if (d->bpp != 16 && d->bpp != 32) {
        yn_err("display: %s has %d bits per pixel; 16 or 32 are supported", d->device, d->bpp);
        return YN_ENOTSUP;
    }
    return YN_OK;
}

static void fb_close(yn_display *dev)
{
    struct fb_display *d = dev->priv;
    if (!d)
        return;
    if (d->mem && d->mem != MAP_FAILED)
        munmap(d->mem, d->mem_len);
    if (d->fd >= 0)
        close(d->fd);
    yn_render_close(d->r);
    yn_canvas_free(&d->canvas);
    free(d);
    dev->priv = NULL;
}

static int fb_open(yn_display *dev, const yn_display_conf *cfg)
{
    struct fb_display *d = calloc(1, sizeof *d);
    if (!d)
        return YN_ENOMEM;
    dev->priv = d;
    snprintf(d->device, sizeof d->device, "%s", cfg->device);
    d->fd = open(d->device, O_RDWR | O_CLOEXEC);
    int w = 0, h = 0, rc = YN_OK;
    if (d->fd < 0) {
        yn_err("display: cannot open framebuffer %s: %s", d->device, strerror(errno));
        rc = YN_ENODEV;
    }
    if (rc == YN_OK)
        rc = fb_geometry(d, cfg, &w, &h);
    if (rc == YN_OK) {
        d->mem = mmap(NULL, d->mem_len, PROT_READ | PROT_WRITE, MAP_SHARED, d->fd, 0);
        if (d->mem == MAP_FAILED) {
            yn_err("display: cannot map %s: %s", d->device, strerror(errno));
            rc = YN_EIO;
        }
    }
    if (rc == YN_OK)
        rc = yn_render_open(YN_DEFAULT_FONT, &d->r);
    if (rc == YN_OK)
        rc = yn_canvas_init(&d->canvas, w, h);
    if (rc != YN_OK)
        fb_close(dev);
    return rc;
}

static int fb_show(yn_display *dev, const yn_screen *s)
{
    struct fb_display *d = dev->priv;
    int rc = yn_render_screen(d->r, s, &d->canvas);
    if (rc != YN_OK)
        return rc;
    for (int y = 0; y < d->canvas.height_px; y++) {
        const uint32_t *src = d->canvas.px + (size_t)y * (size_t)d->canvas.width_px;
        uint8_t *row = d->mem + (size_t)y * (size_t)d->stride_bytes;
        for (int x = 0; x < d->canvas.width_px; x++) {
            uint32_t p = src[x];
            if (d->bpp == 32) {
                memcpy(row + 4 * x, &p, 4); /* XRGB8888, host byte order */
            } else {
                uint16_t v =
                    (uint16_t)(((p >> 8) & 0xF800) | ((p >> 5) & 0x07E0) | ((p >> 3) & 0x1F));
                memcpy(row + 2 * x, &v, 2);
            }
        }
    }
    return msync(d->mem, d->mem_len, MS_ASYNC) == 0 ? YN_OK : YN_EIO;
}

static int fb_describe(yn_display *dev, char *buf, size_t len)
{
    struct fb_display *d = dev->priv;
    snprintf(buf, len, "framebuffer %s %dx%d %d bpp", d->device, d->canvas.width_px,
             d->canvas.height_px, d->bpp);
    return YN_OK;
}

const yn_display_ops yn_display_fb_ops = {
    .name = "fb",
    .open = fb_open,
    .close = fb_close,
    .show = fb_show,
    .describe = fb_describe,
};
