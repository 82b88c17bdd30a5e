/* status.h — the one status convention of yinian-pos.
 *
 * Every function that can fail returns an int from enum yn_status: YN_OK (0)
 * on success, a positive code otherwise. yn_strerror() gives the technician's
 * text; what a senior sees is chosen by the UI, never this string. */
#ifndef YN_STATUS_H
#define YN_STATUS_H

#include "time64.h" /* 64-bit time_t and off_t, or no build */

#define YN_MUST_CHECK __attribute__((warn_unused_result))

enum yn_status {
    YN_OK = 0,
    YN_EINVAL,     /* bad argument or malformed input */
    YN_ENOMEM,     /* out of memory */
    YN_EIO,        /* I/O error talking to a file or device */
    YN_ETIMEDOUT,  /* device or peer did not answer in time */
    YN_ENOTSUP,    /* operation not supported by this backend */
    YN_ENODEV,     /* device absent, unplugged or not configured */
    YN_ENOCARD,    /* no card in the reader's field */
    YN_ECARDGONE,  /* card left the field during an operation */
    YN_ECONFIG,    /* configuration is invalid */
    YN_EPERM,      /* permission or file mode not acceptable */
    YN_ENOENT,     /* file or object does not exist */
    YN_EBUSY,      /* resource locked by someone else */
    YN_ENOSPC,     /* storage full */
    YN_EROFS,      /* storage is read-only */
    YN_ECORRUPT,   /* integrity, checksum or hash chain failure */
    YN_EAUTH,      /* signature, MAC or card authentication failed */
    YN_EDUPLICATE, /* already recorded: an idempotent replay */
    YN_ENOTFOUND,  /* no such card, record or key */
    YN_ESTALE,     /* older or replayed version refused */
    YN_EREFUSED,   /* a business rule refused the operation */
    YN_ELIMIT,     /* too many attempts, or a size limit exceeded */
    YN_EPROTO,     /* peer broke the protocol (bad frame, bad reply) */
    /* a device on a field bus answered, and said no (Modbus exceptions) */
    YN_EDEV_FUNCTION,  /* exception 01 illegal function: the device has no such request */
    YN_EDEV_ADDRESS,   /* exception 02 illegal data address: register map does not fit */
    YN_EDEV_VALUE,     /* exception 03 illegal data value */
    YN_EDEV_FAILURE,   /* exception 04 server device failure: the device itself is faulty */
    YN_EDEV_BUSY,      /* exception 05 acknowledge / 06 server device busy: try later */
    YN_EDEV_EXCEPTION, /* another exception code (08, 0A, 0B) */
    YN_ECRC,           /* an answer with a bad CRC: noise on the line, wiring, termination */
    YN_STATUS_COUNT
};

/* Technician-facing text for a status; never NULL. */
const char *yn_strerror(int status);

/* The status of a failed system call's errno: full or over quota
 * YN_ENOSPC, read-only YN_EROFS, access YN_EPERM, missing YN_ENOENT, out of
 * memory YN_ENOMEM, a name too long YN_ELIMIT, anything else (0 too: a call
 * that failed without saying why) YN_EIO. The one mapping of the project. */
int yn_status_of_errno(int e);

#endif
