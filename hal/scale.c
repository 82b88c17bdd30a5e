/* scale.c — dispatch to the configured scale backend ("none" = no scale). */
#include "scale.h"

#include <string.h>

#include "config.h"
#include "hal.h"
#include "log.h"

int yn_scale_open(yn_scale *dev, const yn_config *cfg)
{
    dev->priv = NULL;
    dev->ops = NULL;
    if (strcmp(cfg->scale.backend, "none") == 0)
        return YN_OK;
    const yn_scale_ops *ops = yn_hal_find(YN_HAL_SCALE, cfg->scale.backend);
    if (!ops)
        return YN_ENODEV;
    int rc = ops->open(dev, cfg);
    if (rc != YN_OK)
        yn_err("scale: %s backend on '%s' failed to open: %s", ops->name, cfg->scale.line.device,
               yn_strerror(rc));
    else
        dev->ops = ops;
    return rc;
}

void yn_scale_close(yn_scale *dev)
{
    if (dev->ops && dev->ops->close)
        dev->ops->close(dev);
    dev->ops = NULL;
}

int yn_scale_read(yn_scale *dev, yn_weight *w)
{
    return dev->ops ? dev->ops->read(dev, w) : YN_ENODEV;
}

int yn_scale_tare(yn_scale *dev)
{
    if (!dev->ops)
        return YN_ENODEV;
    return dev->ops->tare ? dev->ops->tare(dev) : YN_ENOTSUP;
}

int yn_scale_zero(yn_scale *dev)
{
    if (!dev->ops)
        return YN_ENODEV;
    return dev->ops->zero ? dev->ops->zero(dev) : YN_ENOTSUP;
}

int yn_scale_describe(yn_scale *dev, char *buf, size_t len)
{
    if (!dev->ops)
        return YN_ENODEV;
    return dev->ops->describe ? dev->ops->describe(dev, buf, len) : YN_ENOTSUP;
}
