/* status.c — technician-facing texts of enum yn_status. */
#include "status.h"

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
};

const char *yn_strerror(int status)
{
    if (status < 0 || status >= YN_STATUS_COUNT || !texts[status])
        return "unknown status";
    return texts[status];
}
