/* scale_modbus.c — the pay-by-weight scale as a Modbus RTU device on RS-485,
 * through libmodbus (backend "modbus" of hal/scale.h).
 *
 * Everything about the device comes from board.conf [scale]: the serial line
 * (port, baud, parity, stop bits, slave id, kernel RS-485 mode, RTS toggling),
 * and the register map (where the net weight is, its type, byte order, unit
 * and decimals, the status register with its stable and overload bits, and
 * how to tare and zero). hal/MODBUS.md has example maps and the fault rules.
 *
 * Faults: every request is bounded by timeout_ms. A timeout, a bad CRC or a
 * Modbus exception fails that call only; after a timeout or a garbled answer
 * the next request first waits for the line to go quiet and drops what came
 * (RTU answers carry no request id: a late answer must not pass for the next
 * one). A port that fails at the OS level (unplugged adapter, EIO, hang-up)
 * is closed and reopened by the next call after reconnect_ms; three timeouts
 * in a row reopen it too. A scale absent at start is not fatal. Only changes
 * of state are logged (first failure, recovery), not every failed request.
 *
 * read() returns one reading; waiting for a settled weight (and confirming
 * it) is the caller's: firmware/terminal.c. The link code is the same in
 * io_modbus.c (see hal/MODBUS.md, "Code"). */
#include <errno.h>
#include <modbus.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "scale.h"

#define HISTORY          3  /* readings that must agree when the scale has no stable bit */
#define TIMEOUTS_REOPEN  3  /* consecutive timeouts before the port is reopened */
#define ONE_REQUEST_SPAN 16 /* weight and status read in one request when this close */
#define BYTE_TIMEOUT_MS  50 /* longest gap between two bytes of one answer */

/* --- the serial link (same as io_modbus.c) ------------------------------- */

struct link {
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

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static char parity_char(enum yn_parity p)
{
    return p == YN_PARITY_EVEN ? 'E' : p == YN_PARITY_ODD ? 'O' : 'N';
}

/* libmodbus errno → our status. Exceptions are the device's clear answer:
 * illegal function/address/value means the register map does not fit it. */
static int map_errno(int e)
{
    switch (e) {
    case ETIMEDOUT:
        return YN_ETIMEDOUT;
    case EMBXILFUN:
    case EMBXILADD:
    case EMBXILVAL:
        return YN_ENOTSUP;
    case EMBXSBUSY:
    case EMBXACK:
        return YN_EBUSY;
    case EMBXSFAIL:
        return YN_EIO;
    case EACCES:
    case EPERM:
        return YN_EPERM;
    case ENOMEM:
        return YN_ENOMEM;
    default:
        if (e > MODBUS_ENOBASE)
            return YN_EPROTO; /* bad CRC, bad data, other exceptions */
        return YN_ENODEV;     /* EIO, ENOENT, ENXIO, ECONNRESET, EBADF: the port is gone */
    }
}

static void link_close(struct link *l, int64_t retry_at_ms, int status)
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
static int link_connect(struct link *l)
{
    modbus_t *ctx = modbus_new_rtu(l->device, l->baud, l->parity, 8, l->stop_bits);
    if (!ctx)
        return errno == ENOMEM ? YN_ENOMEM : YN_EINVAL;
    modbus_set_slave(ctx, l->slave_id);
    modbus_set_response_timeout(ctx, (uint32_t)(l->timeout_ms / 1000),
                                (uint32_t)(l->timeout_ms % 1000) * 1000);
    int byte_ms = l->timeout_ms < BYTE_TIMEOUT_MS ? l->timeout_ms : BYTE_TIMEOUT_MS;
    modbus_set_byte_timeout(ctx, 0, (uint32_t)byte_ms * 1000);
    if (modbus_connect(ctx) != 0) {
        int e = errno;
        snprintf(l->last_error, sizeof l->last_error, "open: %s", modbus_strerror(e));
        modbus_free(ctx);
        return map_errno(e);
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
            return no_mode ? YN_ENOTSUP : map_errno(e);
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
static void link_drain(struct link *l)
{
    int fd = modbus_get_socket(l->ctx);
    int64_t end = mono_ms() + 5 * (int64_t)l->timeout_ms;
    size_t dropped = 0;
    uint8_t junk[256];
    for (int64_t now = mono_ms(); fd >= 0 && now < end; now = mono_ms()) {
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
static int link_ready(struct link *l)
{
    if (l->ctx) {
        if (l->resync)
            link_drain(l);
        return YN_OK;
    }
    int64_t now = mono_ms();
    if (now < l->retry_at_ms)
        return l->down_status;
    int rc = link_connect(l);
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
        link_drain(l);
    else
        modbus_flush(l->ctx); /* nothing stale may answer our next request */
    return YN_OK;
}

/* Account for a failed request (errno e) and decide what happens to the port. */
static int link_fail(struct link *l, int e, const char *op)
{
    int st = map_errno(e);
    l->errors++;
    l->last_errno = e;
    snprintf(l->last_error, sizeof l->last_error, "%s: %s", op, modbus_strerror(e));
    if (!l->failing)
        yn_warn("%s: %s (slave %d on %s)", l->what, l->last_error, l->slave_id, l->device);
    else
        yn_debug("%s: %s (slave %d on %s)", l->what, l->last_error, l->slave_id, l->device);
    l->failing = true;
    if (e == ETIMEDOUT && ++l->timeouts >= TIMEOUTS_REOPEN) {
        link_close(l, mono_ms(), st); /* reopen with the next request */
        l->resync = true;             /* and let the line go quiet first */
    } else if (st == YN_ENODEV || st == YN_EPERM)
        link_close(l, mono_ms() + l->reconnect_ms, YN_ENODEV);
    else if (l->ctx && (e == ETIMEDOUT || e > EMBXGTAR))
        l->resync = true; /* drop a late or partial answer before the next request */
    else if (l->ctx)
        modbus_flush(l->ctx); /* an exception: a whole, clear answer */
    if (e != ETIMEDOUT)
        l->timeouts = 0;
    return st;
}

static void link_ok(struct link *l)
{
    if (l->failing)
        yn_info("%s: slave %d on %s answers again", l->what, l->slave_id, l->device);
    l->failing = false;
    l->timeouts = 0;
}

static void link_describe(const struct link *l, char *buf, size_t len)
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

/* --- the scale ----------------------------------------------------------- */

struct mb_scale {
    struct link link;
    enum yn_reg_type reg_type;
    int weight_register, words; /* words: 1 (int16) or 2 */
    enum yn_weight_type weight_type;
    enum yn_byte_order order;
    int64_t unit_mg;      /* milligrams per raw count (integers) or per unit (float) */
    int64_t divisor;      /* 10^weight_decimals for integers */
    int status_register;  /* -1 = none */
    int stable_bit;       /* -1 = judge by HISTORY readings */
    bool stable_when_set; /* the bit set means stable */
    int overload_bit;     /* -1 = none */
    int stable_band_g;
    int zero_coil, tare_coil, command_register, zero_command, tare_command;
    bool split;                 /* the scale refused one request over weight and status */
    int32_t history_g[HISTORY]; /* last readings, newest last (stable_bit = -1) */
    int n_history;
};

static uint16_t swap16(uint16_t v)
{
    return (uint16_t)(v << 8 | v >> 8);
}

/* Two registers → the 32-bit value, for each byte order (A = most significant). */
static uint32_t assemble32(const uint16_t r[2], enum yn_byte_order o)
{
    uint16_t hi = r[0], lo = r[1];
    switch (o) {
    case YN_ORDER_ABCD:
        break;
    case YN_ORDER_CDAB:
        hi = r[1];
        lo = r[0];
        break;
    case YN_ORDER_BADC:
        hi = swap16(r[0]);
        lo = swap16(r[1]);
        break;
    case YN_ORDER_DCBA:
        hi = swap16(r[1]);
        lo = swap16(r[0]);
        break;
    }
    return (uint32_t)hi << 16 | lo;
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The weight registers → grams, rounded down (the diner's favour). Returns
 * false for a value that is no weight at all (a float NaN); a value beyond
 * any scale (infinite, or outside int32 grams) is marked overload. */
static bool decode_weight(const struct mb_scale *s, const uint16_t *r, yn_weight *w)
{
    int64_t mg;
    if (s->weight_type == YN_WEIGHT_FLOAT32) {
        uint32_t bits = assemble32(r, s->order);
        float f;
        memcpy(&f, &bits, sizeof f);
        if (f != f) /* NaN */
            return false;
        double v = (double)f * (double)s->unit_mg;
        if (v > 9.0e15 || v < -9.0e15) { /* infinite or beyond any scale */
            w->overload = true;
            v = v < 0 ? -9.0e15 : 9.0e15;
        }
        mg = (int64_t)(v < 0 ? v - 0.5 : v + 0.5); /* nearest mg; grams round down below */
    } else {
        int64_t raw;
        if (s->weight_type == YN_WEIGHT_INT16) {
            uint16_t v =
                (s->order == YN_ORDER_BADC || s->order == YN_ORDER_DCBA) ? swap16(r[0]) : r[0];
            raw = (int16_t)v;
        } else {
            raw = (int32_t)assemble32(r, s->order);
        }
        mg = raw * s->unit_mg / s->divisor;
    }
    int64_t g = floor_div(mg, 1000);
    if (g > INT32_MAX || g < INT32_MIN) {
        w->overload = true;
        g = g > 0 ? INT32_MAX : INT32_MIN;
    }
    w->net_g = (int32_t)g;
    return true;
}

/* Read count registers of the configured type at addr. */
static int read_regs(struct mb_scale *s, int addr, int count, uint16_t *dst)
{
    struct link *l = &s->link;
    l->requests++;
    int n = s->reg_type == YN_REG_INPUT ? modbus_read_input_registers(l->ctx, addr, count, dst)
                                        : modbus_read_registers(l->ctx, addr, count, dst);
    if (n == count)
        return YN_OK;
    char op[64];
    snprintf(op, sizeof op, "reading %s registers %d..%d",
             s->reg_type == YN_REG_INPUT ? "input" : "holding", addr, addr + count - 1);
    return link_fail(l, n < 0 ? errno : EMBBADDATA, op);
}

/* No stable bit: the weight is stable when HISTORY readings in a row agree
 * within stable_band_g. */
static bool settled(struct mb_scale *s, int32_t g)
{
    if (s->n_history == HISTORY) {
        memmove(s->history_g, s->history_g + 1, (HISTORY - 1) * sizeof s->history_g[0]);
        s->n_history--;
    }
    s->history_g[s->n_history++] = g;
    if (s->n_history < HISTORY)
        return false;
    int32_t lo = s->history_g[0], hi = s->history_g[0];
    for (int i = 1; i < HISTORY; i++) {
        lo = s->history_g[i] < lo ? s->history_g[i] : lo;
        hi = s->history_g[i] > hi ? s->history_g[i] : hi;
    }
    return (int64_t)hi - lo <= s->stable_band_g;
}

static int mb_read(yn_scale *dev, yn_weight *w)
{
    struct mb_scale *s = dev->priv;
    uint16_t regs[ONE_REQUEST_SPAN], wr[2] = {0, 0}, status = 0;
    int rc = link_ready(&s->link);
    if (rc != YN_OK) {
        s->n_history = 0;
        return rc;
    }
    int lo = s->weight_register, hi = s->weight_register + s->words - 1;
    bool has_status = s->status_register >= 0;
    if (has_status) {
        lo = s->status_register < lo ? s->status_register : lo;
        hi = s->status_register > hi ? s->status_register : hi;
    }
    if (hi - lo + 1 <= ONE_REQUEST_SPAN && !s->split) {
        /* one request: weight and status of the same instant */
        rc = read_regs(s, lo, hi - lo + 1, regs);
        if (rc == YN_OK) {
            memcpy(wr, regs + (s->weight_register - lo), (size_t)s->words * sizeof wr[0]);
            if (has_status)
                status = regs[s->status_register - lo];
        } else if (s->link.last_errno == EMBXILADD && has_status) {
            /* a gap in the scale's map between weight and status: ask separately */
            yn_info("scale: registers %d..%d are not all readable at once; reading the weight "
                    "and the status separately from now on",
                    lo, hi);
            s->split = true;
            return mb_read(dev, w);
        }
    } else {
        rc = read_regs(s, s->weight_register, s->words, wr);
        if (rc == YN_OK && has_status)
            rc = read_regs(s, s->status_register, 1, &status);
    }
    if (rc != YN_OK) {
        s->n_history = 0;
        return rc;
    }
    yn_weight got = {0};
    if (!decode_weight(s, wr, &got)) {
        s->n_history = 0;
        return link_fail(&s->link, EMBBADDATA, "the weight register holds no number (NaN)");
    }
    link_ok(&s->link);
    if (s->overload_bit >= 0 && (status >> s->overload_bit & 1u))
        got.overload = true;
    if (s->stable_bit >= 0)
        got.stable = (bool)(status >> s->stable_bit & 1u) == s->stable_when_set;
    else
        got.stable = settled(s, got.net_g);
    *w = got;
    return YN_OK;
}

/* Tare or zero: a coil written 1, or a value written to the command register. */
static int command(yn_scale *dev, int coil, int value, const char *what)
{
    struct mb_scale *s = dev->priv;
    struct link *l = &s->link;
    if (coil < 0 && (s->command_register < 0 || value == 0))
        return YN_ENOTSUP;
    int rc = link_ready(l);
    if (rc != YN_OK)
        return rc;
    char op[64];
    int n;
    l->requests++;
    if (coil >= 0) {
        n = modbus_write_bit(l->ctx, coil, 1);
        snprintf(op, sizeof op, "%s: writing coil %d", what, coil);
    } else {
        n = modbus_write_register(l->ctx, s->command_register, (uint16_t)value);
        snprintf(op, sizeof op, "%s: writing %d to register %d", what, value, s->command_register);
    }
    if (n != 1)
        return link_fail(l, n < 0 ? errno : EMBBADDATA, op);
    link_ok(l);
    s->n_history = 0; /* the weight jumps: judge stability afresh */
    yn_info("scale: %s done", what);
    return YN_OK;
}

static int mb_tare(yn_scale *dev)
{
    struct mb_scale *s = dev->priv;
    return command(dev, s->tare_coil, s->tare_command, "tare");
}

static int mb_zero(yn_scale *dev)
{
    struct mb_scale *s = dev->priv;
    return command(dev, s->zero_coil, s->zero_command, "zero");
}

static int mb_describe(yn_scale *dev, char *buf, size_t len)
{
    struct mb_scale *s = dev->priv;
    int rc = link_ready(&s->link);
    char text[256];
    link_describe(&s->link, text, sizeof text);
    snprintf(buf, len, "scale, %s", text);
    return rc;
}

static void mb_close(yn_scale *dev)
{
    struct mb_scale *s = dev->priv;
    if (!s)
        return;
    link_close(&s->link, 0, YN_ENODEV);
    free(s);
    dev->priv = NULL;
}

static int mb_open(yn_scale *dev, const yn_config *cfg)
{
    struct mb_scale *s = calloc(1, sizeof *s);
    if (!s)
        return YN_ENOMEM;
    struct link *l = &s->link;
    l->what = "scale";
    snprintf(l->device, sizeof l->device, "%s", cfg->scale.device);
    l->baud = cfg->scale.baud;
    l->parity = parity_char(cfg->scale.parity);
    l->stop_bits = cfg->scale.stop_bits;
    l->slave_id = cfg->scale.slave_id;
    l->timeout_ms = cfg->scale.timeout_ms;
    l->rs485 = cfg->scale.rs485;
    l->rts = cfg->scale.rts;
    l->rts_delay_us = cfg->scale.rts_delay_us;
    l->reconnect_ms = cfg->scale.reconnect_ms;
    s->reg_type = cfg->scale.reg_type;
    s->weight_register = cfg->scale.weight_register;
    s->weight_type = cfg->scale.weight_type;
    s->words = cfg->scale.weight_type == YN_WEIGHT_INT16 ? 1 : 2;
    s->order = cfg->scale.byte_order;
    s->unit_mg = cfg->scale.weight_unit == YN_UNIT_KG ? 1000000 : 1000;
    s->divisor = 1;
    for (int i = 0; i < cfg->scale.weight_decimals && cfg->scale.weight_type != YN_WEIGHT_FLOAT32;
         i++)
        s->divisor *= 10;
    s->status_register = cfg->scale.status_register;
    s->stable_bit = cfg->scale.status_register >= 0 ? cfg->scale.stable_bit : -1;
    s->stable_when_set = cfg->scale.stable_when == YN_STABLE_WHEN_SET;
    s->overload_bit = cfg->scale.status_register >= 0 ? cfg->scale.overload_bit : -1;
    s->stable_band_g = cfg->scale.stable_band_g;
    s->zero_coil = cfg->scale.zero_coil;
    s->tare_coil = cfg->scale.tare_coil;
    s->command_register = cfg->scale.command_register;
    s->zero_command = cfg->scale.zero_command;
    s->tare_command = cfg->scale.tare_command;
    if (!l->device[0]) {
        free(s);
        return YN_EINVAL;
    }
    dev->priv = s;
    /* A scale that is not there yet is not fatal: the terminal starts, weighed
     * meals are refused until it answers. A port that cannot do what
     * board.conf asks (rs485_mode = on) is a configuration error. */
    int rc = link_ready(l);
    if (rc == YN_ENOTSUP || rc == YN_ENOMEM || rc == YN_EINVAL) {
        mb_close(dev);
        return rc;
    }
    return YN_OK;
}

const yn_scale_ops yn_scale_modbus_ops = {
    .name = "modbus",
    .open = mb_open,
    .close = mb_close,
    .read = mb_read,
    .tare = mb_tare,
    .zero = mb_zero,
    .describe = mb_describe,
};
