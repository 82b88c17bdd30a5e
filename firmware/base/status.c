/* status.c — technician-facing texts of enum yn_status. */
#include "status.h"

#include <errno.h>

static const char *const texts[YN_STATUS_COUNT] = {
    [YN_OK] = "success",
    [YN_EINVAL] = "invalid argument or malformed input",
    [YN_ENOMEM] = "out of memory",
    [YN_EIO] = "input/output error",
    [YN_ETIMEDOUT] = "timed out",
    [YN_ENOTSUP] = "not supported by this backend",
    [YN_ENODEV] = "device absent or unplugged",
    [YN_ENOCARD] = "no card in the field",
    [YN_ECARDGONE] = "card removed during the operation",
    [YN_ECONFIG] = "invalid configuration",
    [YN_EPERM] = "permission or file mode not acceptable",
    [YN_ENOENT] = "no such file",
    [YN_EBUSY] = "resource busy or locked",
    [YN_ENOSPC] = "storage full",
    [YN_EROFS] = "storage is read-only",
    [YN_ECORRUPT] = "integrity check failed",
    [YN_EAUTH] = "authentication or signature check failed",
    [YN_EDUPLICATE] = "already recorded",
    [YN_ENOTFOUND] = "not found",
    [YN_ESTALE] = "older or replayed version",
    [YN_EREFUSED] = "refused by rule",
    [YN_ELIMIT] = "limit exceeded",
    [YN_EPROTO] = "protocol error",
    [YN_EDEV_FUNCTION] = "device answered with exception 01 (illegal function): check the "
                         "register map against the device's manual",
    [YN_EDEV_ADDRESS] = "device answered with exception 02 (illegal data address): check the "
                        "register map against the device's manual",
    [YN_EDEV_VALUE] = "device answered with exception 03 (illegal data value): check the "
                      "register map and the value written against the device's manual",
    [YN_EDEV_FAILURE] = "device answered with exception 04 (server device failure): the "
                        "device reports an internal fault; service or replace it",
    [YN_EDEV_BUSY] = "device answered with exception 05/06 (busy): it is working on an "
                     "earlier request; try again",
    [YN_EDEV_EXCEPTION] = "device answered with a Modbus exception (08, 0A or 0B: memory "
                          "parity or gateway error); check the device and its manual",
    [YN_ECRC] = "answer with a bad CRC: noise or a wiring fault on the line (check shielding, "
                "ground and the 120 ohm termination at both ends)",
};

const char *yn_strerror(int status)
{
    if (status < 0 || status >= YN_STATUS_COUNT || !texts[status])
        return "unknown status";
    return texts[status];
}

int yn_status_of_errno(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
        return YN_ENOSPC;
    case EROFS:
        return YN_EROFS;
    case EACCES:
    case EPERM:
        return YN_EPERM;
    case ENOENT:
        return YN_ENOENT;
    case ENOMEM:
        return YN_ENOMEM;
    case ENAMETOOLONG:
        return YN_ELIMIT;
    default:
        return YN_EIO;
    }
}
