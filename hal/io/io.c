/* io.c — dispatch to the configured lights/buzzer/gate backend. */
#include "io.h"

#include <string.h>

#include "hal.h"
#include "log.h"

int yn_io_open(yn_io *dev, const yn_io_conf *cfg)
{
    dev->priv = NULL;
    dev->ops = NULL;
    if (strcmp(cfg->backend, "none") == 0)
        return YN_OK;
    const yn_io_ops *ops = yn_hal_find(YN_HAL_IO, cfg->backend);
    if (!ops)
        return YN_ENODEV;
    int rc = ops->open(dev, cfg);
    if (rc != YN_OK)
        yn_err("io: %s backend on '%s' failed to open: %s", ops->name, cfg->line.device,
               yn_strerror(rc));
    else
        dev->ops = ops;
    return rc;
}

void yn_io_close(yn_io *dev)
{
    if (dev->ops && dev->ops->close)
        dev->ops->close(dev);
    dev->ops = NULL;
}

int yn_io_set(yn_io *dev, enum yn_output out, bool on)
{
    if ((unsigned)out >= YN_OUT_COUNT)
        return YN_EINVAL;
    return dev->ops ? dev->ops->set(dev, out, on) : YN_ENODEV;
}

int yn_io_pulse(yn_io *dev, enum yn_output out, int ms)
{
    if ((unsigned)out >= YN_OUT_COUNT || ms <= 0)
        return YN_EINVAL;
    if (!dev->ops)
        return YN_ENODEV;
    return dev->ops->pulse ? dev->ops->pulse(dev, out, ms) : YN_ENOTSUP;
}

int yn_io_describe(yn_io *dev, char *buf, size_t len)
{
    if (!dev->ops)
        return YN_ENODEV;
    return dev->ops->describe ? dev->ops->describe(dev, buf, len) : YN_ENOTSUP;
}

const char *yn_output_name(enum yn_output out)
{
    static const char *const names[YN_OUT_COUNT] = {"green", "red", "buzzer", "gate"};
    return (unsigned)out < YN_OUT_COUNT ? names[out] : "?";
}
