/* scale_modbus.c — the pay-by-weight scale as a Modbus RTU device on RS-485,
 * through libmodbus (backend "modbus" of hal/scale/scale.h).
 *
 * Everything about the device comes from board.conf [scale]: the serial line
 * (port, baud, parity, stop bits, slave id, kernel RS-485 mode, RTS toggling),
 * and the register map (where the net weight is, its type, byte order, unit
 * and decimals, the status register with its stable and overload bits, and
 * how to tare and zero). hal/chips/MODBUS.md has example maps and the fault rules.
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
 * it) is the caller's: firmware/app/terminal.c. The serial line is hal/chips/modbus_link.c. */
#include <errno.h>
#include <modbus.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "modbus_link.h"
#include "scale.h"

#define HISTORY          3  /* readings that must agree when the scale has no stable bit */
#define ONE_REQUEST_SPAN 16 /* weight and status read in one request when this close */

/* --- the scale ----------------------------------------------------------- */

struct mb_scale {
    struct yn_mb_link link;
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
    struct yn_mb_link *l = &s->link;
    l->requests++;
    int n = s->reg_type == YN_REG_INPUT ? modbus_read_input_registers(l->ctx, addr, count, dst)
                                        : modbus_read_registers(l->ctx, addr, count, dst);
    if (n == count)
        return YN_OK;
    char op[64];
    snprintf(op, sizeof op, "reading %s registers %d..%d",
             s->reg_type == YN_REG_INPUT ? "input" : "holding", addr, addr + count - 1);
    return yn_mb_fail(l, n < 0 ? errno : EMBBADDATA, op);
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
    int rc = yn_mb_ready(&s->link);
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
        return yn_mb_fail(&s->link, EMBBADDATA, "the weight register holds no number (NaN)");
    }
    yn_mb_ok(&s->link);
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
    struct yn_mb_link *l = &s->link;
    if (coil < 0 && (s->command_register < 0 || value == 0))
        return YN_ENOTSUP;
    int rc = yn_mb_ready(l);
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
        return yn_mb_fail(l, n < 0 ? errno : EMBBADDATA, op);
    yn_mb_ok(l);
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
    int rc = yn_mb_ready(&s->link);
    char text[256];
    yn_mb_describe(&s->link, text, sizeof text);
    snprintf(buf, len, "scale, %s", text);
    return rc;
}

static void mb_close(yn_scale *dev)
{
    struct mb_scale *s = dev->priv;
    if (!s)
        return;
    yn_mb_close(&s->link, 0, YN_ENODEV);
    free(s);
    dev->priv = NULL;
}

static int mb_open(yn_scale *dev, const yn_scale_conf *cfg)
{
    struct mb_scale *s = calloc(1, sizeof *s);
    if (!s)
        return YN_ENOMEM;
    struct yn_mb_link *l = &s->link;
    yn_mb_init(l, "scale", &cfg->line);
    s->reg_type = cfg->reg_type;
    s->weight_register = cfg->weight_register;
    s->weight_type = cfg->weight_type;
    s->words = cfg->weight_type == YN_WEIGHT_INT16 ? 1 : 2;
    s->order = cfg->byte_order;
    s->unit_mg = cfg->weight_unit == YN_UNIT_KG ? 1000000 : 1000;
    s->divisor = 1;
    for (int i = 0; i < cfg->weight_decimals && cfg->weight_type != YN_WEIGHT_FLOAT32; i++)
        s->divisor *= 10;
    s->status_register = cfg->status_register;
    s->stable_bit = cfg->status_register >= 0 ? cfg->stable_bit : -1;
    s->stable_when_set = cfg->stable_when == YN_STABLE_WHEN_SET;
    s->overload_bit = cfg->status_register >= 0 ? cfg->overload_bit : -1;
    s->stable_band_g = cfg->stable_band_g;
    s->zero_coil = cfg->zero_coil;
    s->tare_coil = cfg->tare_coil;
    s->command_register = cfg->command_register;
    s->zero_command = cfg->zero_command;
    s->tare_command = cfg->tare_command;
    if (!l->device[0]) {
        free(s);
        return YN_EINVAL;
    }
    dev->priv = s;
    /* A scale that is not there yet is not fatal: the terminal starts, weighed
     * meals are refused until it answers. A port that cannot do what
     * board.conf asks (rs485_mode = on) is a configuration error. */
    int rc = yn_mb_ready(l);
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
