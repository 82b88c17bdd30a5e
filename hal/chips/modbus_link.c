/* modbus_link.c — the Modbus RTU serial line shared by the scale and the relay
 * module backends: see modbus_link.h. */
#include "modbus_link.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "timeutil.h"

void yn_mb_init(struct yn_mb_link *l, const char *what, const yn_serial_line *line)
{
    l->what = what;
    snprintf(l->device, sizeof l->device, "%s", line->device);
    l->baud = line->baud;
    l->parity = yn_mb_parity(line->parity);
    l->stop_bits = line->stop_bits;
    l->slave_id = line->slave_id;
    l->timeout_ms = line->timeout_ms;
    l->rs485 = line->rs485;
    l->rts = line->rts;
    l->rts_delay_us = line->rts_delay_us;
    l->reconnect_ms = line->reconnect_ms;
}

char yn_mb_parity(enum yn_parity p)
{
    return p == YN_PARITY_EVEN ? 'E' : p == YN_PARITY_ODD ? 'O' : 'N';
}

/* libmodbus errno → our status. An exception is the device's clear answer and
 * gets its own status, so that a technician is told "the register map does not
 * fit" (01/02/03), "the device is faulty" (04) or "busy" (05/06) rather than
 * "does not answer"; a bad CRC (noise, wiring) is told apart from both. */
int yn_mb_errno(int e)
{
    switch (e) {
    case ETIMEDOUT:
        return YN_ETIMEDOUT;
    case EMBXILFUN:
        return YN_EDEV_FUNCTION;
    case EMBXILADD:
        return YN_EDEV_ADDRESS;
    case EMBXILVAL:
        return YN_EDEV_VALUE;
    case EMBXSFAIL:
        return YN_EDEV_FAILURE;
    case EMBXSBUSY:
    case EMBXACK:
        return YN_EDEV_BUSY;
    case EMBXMEMPAR:
    case EMBXGPATH:
    case EMBXGTAR:
        return YN_EDEV_EXCEPTION;
    case EMBBADCRC:
        return YN_ECRC;
    case EACCES:
    case EPERM:
        return YN_EPERM;
    case ENOMEM:
        return YN_ENOMEM;
    default:
        if (e > MODBUS_ENOBASE)
            return YN_EPROTO; /* bad data, bad slave, short answer */
        return YN_ENODEV;     /* EIO, ENOENT, ENXIO, ECONNRESET, EBADF: the port is gone */
    }
}

void yn_mb_close(struct yn_mb_link *l, int64_t retry_at_ms, int status)
{
    if (l->ctx) {
        modbus_close(l->ctx);
        modbus_free(l->ctx);
        l->ctx = NULL;
    }
    l->retry_at_ms = retry_at_ms;
    l->down_status = status;
    l->timeouts = 0;
    l->resync = false;
}

/* Open the port with every board.conf setting. YN_ENOTSUP when rs485_mode =
 * on and the port has no RS-485 mode (a configuration error, not a fault). */
int yn_mb_connect(struct yn_mb_link *l)
{
    modbus_t *ctx = modbus_new_rtu(l->device, l->baud, l->parity, 8, l->stop_bits);
    if (!ctx)
        return errno == ENOMEM ? YN_ENOMEM : YN_EINVAL;
    modbus_set_slave(ctx, l->slave_id);
    modbus_set_response_timeout(ctx, (uint32_t)(l->timeout_ms / 1000),
                                (uint32_t)(l->timeout_ms % 1000) * 1000);
    int byte_ms = l->timeout_ms < YN_MB_BYTE_TIMEOUT_MS ? l->timeout_ms : YN_MB_BYTE_TIMEOUT_MS;
    modbus_set_byte_timeout(ctx, 0, (uint32_t)byte_ms * 1000);
    if (modbus_connect(ctx) != 0) {
        int e = errno;
        snprintf(l->last_error, sizeof l->last_error, "open: %s", modbus_strerror(e));
        modbus_free(ctx);
        return yn_mb_errno(e);
    }
    if (l->rs485 != YN_RS485_OFF && modbus_rtu_set_serial_mode(ctx, MODBUS_RTU_RS485) != 0) {
        int e = errno;
        bool no_mode = e == ENOTTY || e == EINVAL || e == ENOTSUP || e == EOPNOTSUPP;
        if (l->rs485 == YN_RS485_AUTO && no_mode) {
            if (!l->rs485_noted)
                yn_info("%s: %s has no kernel RS-485 mode (%s); rs485_mode = auto: using it "
                        "as it is (an adapter that switches direction itself)",
                        l->what, l->device, strerror(e));
            l->rs485_noted = true;
        } else {
            snprintf(l->last_error, sizeof l->last_error, "RS-485 mode: %s", strerror(e));
            yn_err("%s: cannot switch %s to RS-485 (%s); rs485_mode = on needs a UART whose "
                   "driver has RS-485 mode: use rs485_mode = off (or auto) for an adapter that "
                   "switches direction itself",
                   l->what, l->device, strerror(e));
            modbus_close(ctx);
            modbus_free(ctx);
            return no_mode ? YN_ENOTSUP : yn_mb_errno(e);
        }
    }
    if (l->rts != YN_RTS_NONE) {
        modbus_rtu_set_rts(ctx, l->rts == YN_RTS_UP ? MODBUS_RTU_RTS_UP : MODBUS_RTU_RTS_DOWN);
        if (l->rts_delay_us > 0)
            modbus_rtu_set_rts_delay(ctx, l->rts_delay_us);
    }
    modbus_flush(ctx);
    l->ctx = ctx;
    l->timeouts = 0;
    if (l->opens++ > 0) {
        l->reconnects++;
        yn_info("%s: %s reopened (reconnect %lu)", l->what, l->device, l->reconnects);
    }
    return YN_OK;
}

/* After a timeout or a garbled answer, the device may still be sending: wait
 * until the line has been quiet for timeout_ms (at most 5 x timeout_ms) and
 * drop what came. Modbus RTU answers carry no request id, so an answer that
 * arrived late would otherwise be taken for the answer to the next request —
 * an old weight priced as a new one. */
void yn_mb_drain(struct yn_mb_link *l)
{
    int fd = modbus_get_socket(l->ctx);
    int64_t end = yn_time_mono_ms() + 5 * (int64_t)l->timeout_ms;
    size_t dropped = 0;
    uint8_t junk[256];
    for (int64_t now = yn_time_mono_ms(); fd >= 0 && now < end; now = yn_time_mono_ms()) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int wait = (int)(end - now < l->timeout_ms ? end - now : l->timeout_ms);
        if (poll(&p, 1, wait) <= 0)
            break; /* quiet (or gone: the request will tell) */
        ssize_t n = read(fd, junk, sizeof junk);
        if (n <= 0)
            break;
        dropped += (size_t)n;
    }
    modbus_flush(l->ctx);
    l->resync = false;
    if (dropped)
        yn_debug("%s: dropped %zu late bytes from slave %d", l->what, dropped, l->slave_id);
}

/* Ready for a request: open (again) when closed and the backoff is over. */
int yn_mb_ready(struct yn_mb_link *l)
{
    if (l->ctx) {
        if (l->resync)
            yn_mb_drain(l);
        return YN_OK;
    }
    int64_t now = yn_time_mono_ms();
    if (now < l->retry_at_ms)
        return l->down_status;
    int rc = yn_mb_connect(l);
    if (rc != YN_OK) {
        if (!l->failing)
            yn_warn("%s: cannot open %s: %s; trying again every %d ms", l->what, l->device,
                    l->last_error, l->reconnect_ms);
        l->failing = true;
        l->errors++;
        l->retry_at_ms = now + l->reconnect_ms;
        l->down_status = rc;
        return rc;
    }
    if (l->resync)
        yn_mb_drain(l);
    else
        modbus_flush(l->ctx); /* nothing stale may answer our next request */
    return YN_OK;
}

/* Account for a failed request (errno e) and decide what happens to the port. */
int yn_mb_fail(struct yn_mb_link *l, int e, const char *op)
{
    int st = yn_mb_errno(e);
    l->errors++;
    l->last_errno = e;
    snprintf(l->last_error, sizeof l->last_error, "%s: %s", op, modbus_strerror(e));
    if (!l->failing)
        yn_warn("%s: %s (slave %d on %s)", l->what, l->last_error, l->slave_id, l->device);
    else
        yn_debug("%s: %s (slave %d on %s)", l->what, l->last_error, l->slave_id, l->device);
    l->failing = true;
    if (e == ETIMEDOUT && ++l->timeouts >= YN_MB_TIMEOUTS_REOPEN) {
        yn_mb_close(l, yn_time_mono_ms(), st); /* reopen with the next request */
        l->resync = true;                      /* and let the line go quiet first */
    } else if (st == YN_ENODEV || st == YN_EPERM)
        yn_mb_close(l, yn_time_mono_ms() + l->reconnect_ms, YN_ENODEV);
    else if (l->ctx && (e == ETIMEDOUT || e > EMBXGTAR))
        l->resync = true; /* drop a late or partial answer before the next request */
    else if (l->ctx)
        modbus_flush(l->ctx); /* an exception: a whole, clear answer */
    if (e != ETIMEDOUT)
        l->timeouts = 0;
    return st;
}

void yn_mb_ok(struct yn_mb_link *l)
{
    if (l->failing)
        yn_info("%s: slave %d on %s answers again", l->what, l->slave_id, l->device);
    l->failing = false;
    l->timeouts = 0;
}

void yn_mb_describe(const struct yn_mb_link *l, char *buf, size_t len)
{
    int n = snprintf(buf, len, "Modbus RTU slave %d on %s %d %d%c%d: %s; %lu requests, %lu errors",
                     l->slave_id, l->device, l->baud, 8, l->parity, l->stop_bits,
                     l->ctx ? (l->failing ? "open, not answering" : "answering") : "closed",
                     l->requests, l->errors);
    if (n > 0 && (size_t)n < len && l->reconnects)
        n += snprintf(buf + n, len - (size_t)n, ", %lu reconnects", l->reconnects);
    if (n > 0 && (size_t)n < len && l->failing && l->last_error[0])
        snprintf(buf + n, len - (size_t)n, " (last: %s)", l->last_error);
}
