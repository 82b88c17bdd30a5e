/* scale.c — dispatch to the configured scale backend ("none" = no scale). */
#include "scale.h"

#include <string.h>

#include "hal.h"
#include "log.h"

int yn_scale_open(yn_scale *dev, const yn_scale_conf *cfg)
{
    dev->priv = NULL;
    dev->ops = NULL;
    if (strcmp(cfg->backend, "none") == 0)
        return YN_OK;
    const yn_scale_ops *ops = yn_hal_find(YN_HAL_SCALE, cfg->backend);
    if (!ops)
        return YN_ENODEV;
    int rc = ops->open(dev, cfg);
    if (rc != YN_OK)
        yn_err("scale: %s backend on '%s' failed to open: %s", ops->name, cfg->line.device,
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

const char *yn_scale_advice(int status)
{
    switch (status) {
    case YN_OK:
        return "none";
    case YN_ETIMEDOUT:
        return "the scale does not answer: check its power, the RS-485 cable (A/B not swapped) "
               "and [scale] baud, parity and slave_id";
    case YN_ENODEV:
        return "the serial port is missing or unplugged: check the USB/RS-485 adapter and "
               "[scale] device";
    case YN_EPERM:
        return "the serial port cannot be opened: check its permissions (dialout group)";
    case YN_ECRC:
        return "answers arrive garbled (bad CRC): check the cable's shielding and ground, the "
               "120 ohm termination and that no other master shares the line";
    case YN_EDEV_FUNCTION:
    case YN_EDEV_ADDRESS:
    case YN_EDEV_VALUE:
        return "the scale answers but refuses the request: check the register map in "
               "[scale] (reg_type, weight_register, status_register, commands) against the "
               "scale's manual";
    case YN_EDEV_FAILURE:
        return "the scale reports an internal failure: have it serviced";
    case YN_EDEV_BUSY:
        return "the scale is busy with an earlier request: try again; if it stays busy, "
               "power-cycle it";
    case YN_EDEV_EXCEPTION:
        return "the scale answers with an unusual exception (memory parity, gateway): see "
               "its manual";
    case YN_EPROTO:
        return "the answers do not make sense: check [scale] weight_type, byte_order and "
               "that the device at this slave id is the scale";
    case YN_ENOTSUP:
        return "this scale backend or map cannot do that (e.g. no tare coil or command "
               "configured)";
    default:
        return "see the log";
    }
}
