/* io_modbus.c — lights, buzzer and gate as coils of a Modbus RTU relay module
 * on RS-485, through libmodbus (backend "modbus" of hal/io/io.h).
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
 * Faults are handled by the serial line, hal/chips/modbus_link.c: every request is
 * bounded, OS-level failures close the port and it is reopened after reconnect_ms. */
#include <errno.h>
#include <modbus.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "io.h"
#include "log.h"
#include "modbus_link.h"
#include "timeutil.h"

/* --- the module --------------------------------------------------------- */

struct mb_io {
    struct yn_mb_link link; /* used by the worker thread only */
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
    char text[256]; /* yn_mb_describe() after the last exchange */
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
    struct yn_mb_link *l = &m->link;
    int rc = yn_mb_ready(l);
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
            return yn_mb_fail(l, errno, op);
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
            return yn_mb_fail(l, errno, op);
        }
    }
    yn_mb_ok(l);
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
        int64_t now = yn_time_mono_ms();
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
            yn_mb_describe(&m->link, text, sizeof text);
            pthread_mutex_lock(&m->mu);
            m->status = rc;
            snprintf(m->text, sizeof m->text, "%s", text);
            retry_at_ms = rc == YN_OK ? 0 : yn_time_mono_ms() + m->link.reconnect_ms;
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
    yn_mb_close(&m->link, 0, YN_ENODEV);
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
    int64_t until = yn_time_mono_ms() + ms;
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
    struct timespec until =
        abs_mono(yn_time_mono_ms() + 2 * (int64_t)m->link.timeout_ms * YN_OUT_COUNT +
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

static int mb_open(yn_io *dev, const yn_io_conf *cfg)
{
    if (!cfg->line.device[0])
        return YN_EINVAL;
    struct mb_io *m = calloc(1, sizeof *m);
    if (!m)
        return YN_ENOMEM;
    struct yn_mb_link *l = &m->link;
    yn_mb_init(l, "io", &cfg->line);
    for (int i = 0; i < YN_OUT_COUNT; i++)
        m->coil[i] = cfg->coil[i];
    /* as the scale: a module not there yet is not fatal; rs485_mode = on on a
     * port without RS-485 mode is a configuration error */
    int rc = yn_mb_ready(l);
    if (rc == YN_ENOTSUP || rc == YN_ENOMEM || rc == YN_EINVAL) {
        free(m);
        return rc;
    }
    m->status = rc;
    yn_mb_describe(l, m->text, sizeof m->text);
    pthread_mutex_init(&m->mu, NULL);
    bool wake_ok = yn_clock_cond_init(&m->wake) == YN_OK;
    bool probed_ok = wake_ok && yn_clock_cond_init(&m->probed) == YN_OK;
    if (!probed_ok || pthread_create(&m->thread, NULL, worker, m) != 0) {
        yn_mb_close(l, 0, YN_ENODEV);
        if (wake_ok)
            pthread_cond_destroy(&m->wake);
        if (probed_ok)
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
