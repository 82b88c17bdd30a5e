/* io_modbus.c — lights, buzzer and gate as coils of a Modbus RTU relay module
 * on RS-485, through libmodbus (backend "modbus" of hal/io.h).
 *
 * board.conf [io] names the serial line (as [scale] does), the coil of each
 * output (green, red, buzzer, gate; -1 = not wired) and the pulse of each.
 *
 * Decision: a worker thread owns the libmodbus context, and set()/pulse()
 * only record the wanted state under a mutex and wake it. So the terminal
 * loop never waits on the RS-485 line: not for a pulse's length, and not for
 * a module that has stopped answering (each request may take timeout_ms). The
 * worker reconciles the coils with the wanted state: it switches an output on
 * at once, off when its pulse deadline passes (pthread_cond_timedwait on
 * CLOCK_MONOTONIC), and after a failure retries every reconnect_ms; a module
 * that comes back (or a port that was reopened) gets every coil written
 * afresh, so it never keeps a stale light on. A pulse asked for while the
 * module is away is not replayed late: only what is wanted now is written.
 * set()/pulse() return YN_OK, or the status of the module's last exchange
 * when that failed (the request is kept all the same); describe() probes the
 * module (reads a coil) and waits for the answer, for the self-test.
 *
 * Faults are those of scale_modbus.c: every request is bounded, OS-level
 * failures close the port and it is reopened after reconnect_ms. */
#include <errno.h>
#include <modbus.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "io.h"
#include "log.h"

#define TIMEOUTS_REOPEN 3  /* consecutive timeouts before the port is reopened */
#define BYTE_TIMEOUT_MS 50 /* longest gap between two bytes of one answer */

/* --- the serial link (same as scale_modbus.c) ---------------------------- */

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

/* --- the module --------------------------------------------------------- */

struct mb_io {
    struct link link; /* used by the worker thread only */
    int coil[YN_OUT_COUNT];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t wake;   /* the worker has something to do */
    pthread_cond_t probed; /* a probe finished */
    /* under mu: what is wanted */
    bool steady[YN_OUT_COUNT];            /* set() */
    int64_t pulse_until_ms[YN_OUT_COUNT]; /* pulse(): on until then (monotonic) */
    bool stop;
    unsigned probe_asked, probe_done;
    /* under mu: what the worker last saw */
    int status;     /* YN_OK, or the last exchange's failure */
    char text[256]; /* link_describe() after the last exchange */
    /* worker only: what the coils hold */
    bool written[YN_OUT_COUNT];
    bool known[YN_OUT_COUNT]; /* false after (re)open: write it whatever it is */
    unsigned long opens_seen; /* link opens when the coils were last written */
};

static bool wanted(const struct mb_io *m, int i, int64_t now)
{
    return m->steady[i] || m->pulse_until_ms[i] > now;
}

/* One pass of the worker with mu released: bring the coils to `want`, answer
 * a probe. Returns the status of the exchanges. */
static int reconcile(struct mb_io *m, const bool want[YN_OUT_COUNT], bool probe)
{
    struct link *l = &m->link;
    int rc = link_ready(l);
    if (rc != YN_OK)
        return rc;
    if (m->opens_seen != l->opens) {
        memset(m->known, 0, sizeof m->known); /* a new port: the module may hold anything */
        m->opens_seen = l->opens;
    }
    for (int i = 0; i < YN_OUT_COUNT; i++) {
        if (m->coil[i] < 0 || (m->known[i] && m->written[i] == want[i]))
            continue;
        l->requests++;
        if (modbus_write_bit(l->ctx, m->coil[i], want[i]) != 1) {
            char op[64];
            snprintf(op, sizeof op, "%s %s: writing coil %d", yn_output_name((enum yn_output)i),
                     want[i] ? "on" : "off", m->coil[i]);
            return link_fail(l, errno, op);
        }
        m->written[i] = want[i];
        m->known[i] = true;
    }
    if (probe) {
        int addr = 0;
        for (int i = YN_OUT_COUNT - 1; i >= 0; i--)
            addr = m->coil[i] >= 0 ? m->coil[i] : addr;
        uint8_t bit;
        l->requests++;
        if (modbus_read_bits(l->ctx, addr, 1, &bit) != 1) {
            char op[64];
            snprintf(op, sizeof op, "reading coil %d", addr);
            return link_fail(l, errno, op);
        }
    }
    link_ok(l);
    return YN_OK;
}

static struct timespec abs_mono(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    return ts;
}

static void *worker(void *arg)
{
    struct mb_io *m = arg;
    int64_t retry_at_ms = 0; /* after a failure, try again then */
    pthread_mutex_lock(&m->mu);
    while (!m->stop) {
        int64_t now = mono_ms();
        bool want[YN_OUT_COUNT], need = false;
        int64_t next = now + 60000;
        for (int i = 0; i < YN_OUT_COUNT; i++) {
            want[i] = wanted(m, i, now);
            if (m->pulse_until_ms[i] > now && m->pulse_until_ms[i] < next)
                next = m->pulse_until_ms[i];
            if (m->coil[i] >= 0 && (!m->known[i] || m->written[i] != want[i]))
                need = true;
        }
        bool probe = m->probe_asked != m->probe_done;
        if (probe || (need && now >= retry_at_ms)) {
            unsigned asked = m->probe_asked;
            pthread_mutex_unlock(&m->mu);
            int rc = reconcile(m, want, probe);
            char text[256];
            link_describe(&m->link, text, sizeof text);
            pthread_mutex_lock(&m->mu);
            m->status = rc;
            snprintf(m->text, sizeof m->text, "%s", text);
            retry_at_ms = rc == YN_OK ? 0 : mono_ms() + m->link.reconnect_ms;
            if (probe) {
                m->probe_done = asked;
                pthread_cond_broadcast(&m->probed);
            }
            continue;
        }
        if (need && retry_at_ms < next)
            next = retry_at_ms;
        struct timespec until = abs_mono(next);
        pthread_cond_timedwait(&m->wake, &m->mu, &until);
    }
    pthread_mutex_unlock(&m->mu);
    /* leaving: every output off, one try */
    bool off[YN_OUT_COUNT] = {false};
    if (m->link.ctx && reconcile(m, off, false) != YN_OK)
        yn_debug("io: could not switch the outputs off at close");
    link_close(&m->link, 0, YN_ENODEV);
    return NULL;
}

static int mb_set(yn_io *dev, enum yn_output out, bool on)
{
    struct mb_io *m = dev->priv;
    if (m->coil[out] < 0)
        return YN_ENOTSUP;
    pthread_mutex_lock(&m->mu);
    m->steady[out] = on;
    if (!on)
        m->pulse_until_ms[out] = 0;
    int rc = m->status;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mb_pulse(yn_io *dev, enum yn_output out, int ms)
{
    struct mb_io *m = dev->priv;
    if (m->coil[out] < 0)
        return YN_ENOTSUP;
    int64_t until = mono_ms() + ms;
    pthread_mutex_lock(&m->mu);
    if (until > m->pulse_until_ms[out])
        m->pulse_until_ms[out] = until; /* a second pulse extends the first */
    int rc = m->status;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

/* Ask the worker to read a coil and wait for it (bounded): the self-test. */
static int mb_describe(yn_io *dev, char *buf, size_t len)
{
    struct mb_io *m = dev->priv;
    pthread_mutex_lock(&m->mu);
    unsigned mine = ++m->probe_asked;
    pthread_cond_signal(&m->wake);
    struct timespec until = abs_mono(mono_ms() + 2 * (int64_t)m->link.timeout_ms * YN_OUT_COUNT +
                                     m->link.timeout_ms + 500);
    int rc = 0;
    while ((int)(m->probe_done - mine) < 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&m->probed, &m->mu, &until);
    int status = rc == ETIMEDOUT ? YN_ETIMEDOUT : m->status;
    snprintf(buf, len, "relay module, %s", m->text);
    pthread_mutex_unlock(&m->mu);
    return status;
}

static void mb_close(yn_io *dev)
{
    struct mb_io *m = dev->priv;
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    pthread_cond_destroy(&m->wake);
    pthread_cond_destroy(&m->probed);
    pthread_mutex_destroy(&m->mu);
    free(m);
    dev->priv = NULL;
}

static int mb_open(yn_io *dev, const yn_config *cfg)
{
    if (!cfg->io.device[0])
        return YN_EINVAL;
    struct mb_io *m = calloc(1, sizeof *m);
    if (!m)
        return YN_ENOMEM;
    struct link *l = &m->link;
    l->what = "io";
    snprintf(l->device, sizeof l->device, "%s", cfg->io.device);
    l->baud = cfg->io.baud;
    l->parity = parity_char(cfg->io.parity);
    l->stop_bits = cfg->io.stop_bits;
    l->slave_id = cfg->io.slave_id;
    l->timeout_ms = cfg->io.timeout_ms;
    l->rs485 = cfg->io.rs485;
    l->rts = cfg->io.rts;
    l->rts_delay_us = cfg->io.rts_delay_us;
    l->reconnect_ms = cfg->io.reconnect_ms;
    for (int i = 0; i < YN_OUT_COUNT; i++)
        m->coil[i] = cfg->io.coil[i];
    /* as the scale: a module not there yet is not fatal; rs485_mode = on on a
     * port without RS-485 mode is a configuration error */
    int rc = link_ready(l);
    if (rc == YN_ENOTSUP || rc == YN_ENOMEM || rc == YN_EINVAL) {
        free(m);
        return rc;
    }
    m->status = rc;
    link_describe(l, m->text, sizeof m->text);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->wake, &ca);
    pthread_cond_init(&m->probed, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&m->thread, NULL, worker, m) != 0) {
        link_close(l, 0, YN_ENODEV);
        pthread_cond_destroy(&m->wake);
        pthread_cond_destroy(&m->probed);
        pthread_mutex_destroy(&m->mu);
        free(m);
        return YN_ENOMEM;
    }
    dev->priv = m;
    return YN_OK;
}

const yn_io_ops yn_io_modbus_ops = {
    .name = "modbus",
    .open = mb_open,
    .close = mb_close,
    .set = mb_set,
    .pulse = mb_pulse,
    .describe = mb_describe,
};
