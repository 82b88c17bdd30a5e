/* modbus_link.h — one Modbus RTU serial line with libmodbus, shared by the
 * scale (scale_modbus.c) and the relay module (io_modbus.c): every request
 * bounded by timeout_ms; after a timeout or a garbled answer the next request
 * first drains the line (RTU answers carry no request id); OS-level failures
 * close the port, which the next call reopens after reconnect_ms; three
 * timeouts in a row reopen it too; only changes of state are logged. */
#ifndef YN_HAL_MODBUS_LINK_H
#define YN_HAL_MODBUS_LINK_H

#include <modbus.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal_conf.h"
#include "status.h"

#define YN_MB_TIMEOUTS_REOPEN 3  /* consecutive timeouts before the port is reopened */
#define YN_MB_BYTE_TIMEOUT_MS 50 /* longest gap between two bytes of one answer */

struct yn_mb_link {
    const char *what; /* "scale" or "io", for log lines */
    char device[YN_DEV_MAX];
    int baud, stop_bits, slave_id, timeout_ms, rts_delay_us, reconnect_ms;
    char parity; /* 'N', 'E', 'O' */
    enum yn_rs485_mode rs485;
    enum yn_rts rts;
    modbus_t *ctx;       /* NULL while closed */
    int64_t retry_at_ms; /* closed after a failure: no reopen before this */
    int down_status;     /* what calls return while closed */
    int timeouts;        /* consecutive timeouts */
    bool failing;        /* the last request failed: log only changes */
    bool resync;         /* a late or partial answer may still come: drain first */
    bool rs485_noted;    /* rs485_mode = auto fallback logged once */
    unsigned long opens; /* successful opens; a new one: the device state is unknown */
    unsigned long requests, errors, reconnects;
    int last_errno; /* of the last failure */
    char last_error[128];
};

/* Set up a closed link from board.conf's line settings; `what` names it in logs. */
void yn_mb_init(struct yn_mb_link *l, const char *what, const yn_serial_line *line);
char yn_mb_parity(enum yn_parity p);
/* libmodbus errno -> enum yn_status. */
int yn_mb_errno(int e);
void yn_mb_close(struct yn_mb_link *l, int64_t retry_at_ms, int status);
/* Open the port with every board.conf setting. YN_ENOTSUP when rs485_mode =
 * on and the port has no RS-485 mode (a configuration error, not a fault). */
int yn_mb_connect(struct yn_mb_link *l);
void yn_mb_drain(struct yn_mb_link *l);
/* Before a request: open or reopen as needed, drain a possibly late answer.
 * YN_OK, or the status calls return while the device is away. */
int yn_mb_ready(struct yn_mb_link *l);
/* After a failed request with libmodbus errno e: the status to return. */
int yn_mb_fail(struct yn_mb_link *l, int e, const char *op);
void yn_mb_ok(struct yn_mb_link *l);
void yn_mb_describe(const struct yn_mb_link *l, char *buf, size_t len);

#endif
