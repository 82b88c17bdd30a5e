/* display.c — dispatch to the display backend, and screen-building helpers. */
#include "display.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hal.h"
#include "log.h"

int yn_display_open(yn_display *dev, const yn_display_conf *cfg)
{
    dev->priv = NULL;
    dev->ops = yn_hal_find(YN_HAL_DISPLAY, cfg->backend);
    if (!dev->ops)
        return YN_ENODEV;
    int rc = dev->ops->open(dev, cfg);
    if (rc != YN_OK) {
        yn_err("display: %s backend failed to open: %s", dev->ops->name, yn_strerror(rc));
        dev->ops = NULL;
    }
    return rc;
}

void yn_display_close(yn_display *dev)
{
    if (dev->ops && dev->ops->close)
        dev->ops->close(dev);
    dev->ops = NULL;
}

int yn_display_show(yn_display *dev, const yn_screen *screen)
{
    return dev->ops ? dev->ops->show(dev, screen) : YN_ENODEV;
}

int yn_display_describe(yn_display *dev, char *buf, size_t len)
{
    if (!dev->ops)
        return YN_ENODEV;
    return dev->ops->describe ? dev->ops->describe(dev, buf, len) : YN_ENOTSUP;
}

void yn_screen_init(yn_screen *s, enum yn_screen_kind kind, const char *name, const char *title)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    snprintf(s->name, sizeof s->name, "%s", name);
    snprintf(s->title, sizeof s->title, "%s", title);
}

void yn_screen_add(yn_screen *s, enum yn_text_size size, const char *fmt, ...)
{
    if (s->n_lines >= YN_SCREEN_LINES) {
        yn_err("display: screen '%s' has more than %d lines; line dropped", s->name,
               YN_SCREEN_LINES);
        s->cut = true;
        return;
    }
    yn_screen_line *l = &s->lines[s->n_lines++];
    l->size = size;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->text, sizeof l->text, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof l->text) {
        s->cut = true;
        /* never half a UTF-8 character at the end */
        size_t end = sizeof l->text - 1, lead = end - 1;
        while (lead > 0 && ((unsigned char)l->text[lead] & 0xC0) == 0x80)
            lead--;
        unsigned char b = (unsigned char)l->text[lead];
        size_t need = b < 0x80 ? 1 : b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
        if (lead + need > end)
            l->text[lead] = '\0';
        yn_err("display: screen '%s': line %d longer than %d bytes; cut", s->name, s->n_lines,
               YN_SCREEN_TEXT - 1);
    }
}
