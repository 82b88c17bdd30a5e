/* yinian-modbus-emu — an emulated RS-485 weighing scale and relay I/O module,
 * each a Modbus RTU slave on its own pty, built on libmodbus's own server side
 * (modbus_receive / modbus_reply), that misbehaves on cue.
 *
 *   yinian-modbus-emu [--scale LINK] [--io LINK] [--scale-id N] [--io-id N]
 *                     [--control FIFO] [--state FILE] [--weight G] [--line-baud B]
 *                     [--verbose]
 *
 * The firmware's "modbus" backends (hal/scale/scale_modbus.c, hal/io/io_modbus.c), and
 * Debian's mbpoll, talk to LINK unmodified. The scale holds the same net
 * weight in several layouts at once (hal/chips/MODBUS.md, "The emulated devices"),
 * so one emulator serves every register map the tests configure. Control
 * commands, one a line, on the FIFO: see usage() and hal/chips/MODBUS.md. After
 * every change (a coil written, a tare, a command) the state file is
 * rewritten atomically (key=value lines), for tests to read. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <modbus.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "emu/emu_io.h"

/* scale registers (holding and input alike), 0-based */
enum {
    R_NET32 = 0,       /* 0-1: net weight int32, high word first (abcd), grams */
    R_STATUS = 2,      /* bit 0 stable, 1 overload, 2 negative, 3 tare active */
    R_COMMAND = 3,     /* write 1 zero, 2 tare, 3 clear tare; other values: exception 03 */
    R_NET32_CDAB = 4,  /* 4-5: net int32, low word first, grams */
    R_NET16 = 6,       /* net int16, grams */
    R_MOTION = 7,      /* bit 0 set while in motion, bit 1 overload */
    R_FLOAT_KG = 8,    /* 8-9: net float32 abcd, kilograms */
    R_NET32_DG = 10,   /* 10-11: net int32 abcd, 0.1 g */
    R_NET32_BADC = 12, /* 12-13: net int32, bytes swapped in each word, grams */
    R_CAPACITY = 14,   /* capacity, grams / 10 */
    R_HOLE = 16,       /* 16-23: a deliberate hole in the map: reads get exception 02 */
    R_HOLE_END = 24,
    R_STATUS_GAP = 24, /* a copy of R_STATUS beyond the hole */
    R_STATUS_FAR = 30, /* a copy of R_STATUS far from the weight (two requests) */
    SCALE_REGS = 32
};
enum { C_ZERO = 0, C_TARE = 1, SCALE_COILS = 8 }; /* scale coils: write 1 to act */
enum { IO_COILS = 16, IO_INPUTS = 8 };

enum fault { F_NONE, F_SLOW, F_BADCRC, F_EXCEPTION, F_SILENT };

struct dev {
    const char *name; /* "scale" / "io" */
    yn_emu_pty pty;   /* pty.link NULL: not emulated */
    int slave_id;
    modbus_t *ctx;
    modbus_mapping_t *map;
    enum fault fault;
    int fault_arg;  /* slow: ms; exception: code */
    int fault_left; /* requests the fault still applies to; -1 = until cleared */
    unsigned long requests, replies, dropped;
};

struct emu {
    struct dev scale, io;
    const char *control, *state_path;
    yn_emu_ctl ctl;
    bool verbose;
    int line_baud; /* > 0: answer as late as a real line at this baud would (8N1) */
    /* the scale's platform */
    int64_t gross_mg;    /* what lies on the platform */
    int64_t zero_mg;     /* zero offset (zero command) */
    int64_t tare_mg;     /* tare (tare command) */
    int64_t capacity_mg; /* above this the overload bit is set */
    bool stable_flag;    /* "stable 0" forces motion */
    bool overload_flag;  /* "overload 1" forces over range */
    bool unstable;       /* "fault unstable": the reading wanders, never settles */
    int64_t drift_mg;    /* "drift G": the weight moves this much at every request, while
                            the stable flag stays set (a scale whose flag lies) */
    int settle_ms;       /* after a weight change, in motion this long */
    int64_t changed_ms;  /* monotonic: last weight change */
    unsigned long tares, zeros;
    unsigned jitter;
    /* the I/O module's coils */
    uint8_t coil_prev[IO_COILS];
    int64_t on_since_ms[IO_COILS];
    int last_pulse_ms[IO_COILS]; /* length of the last on-period, as seen here */
    unsigned long pulses[IO_COILS], coil_writes;
};

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

#define say yn_emu_say

static int64_t now_ms(void)
{
    return yn_emu_now_ms();
}

static void sleep_ms(int ms)
{
    yn_emu_sleep_us((int64_t)ms * 1000);
}

static void hexdump(const struct emu *e, const struct dev *d, const char *what, const uint8_t *p,
                    size_t n)
{
    if (!e->verbose)
        return;
    fprintf(stderr, "modbus-emu %s %s:", d->name, what);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %02x", p[i]);
    fputc('\n', stderr);
}

/* --- state file ---------------------------------------------------------- */

static int64_t net_mg(const struct emu *e)
{
    return e->gross_mg - e->zero_mg - e->tare_mg;
}

/* The state file is written by a thread of its own: a disk busy with other
 * work (fsync storms) must not delay the devices' answers. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    bool running, pending, busy, quit;
    char path[PATH_MAX];
    char text[4096];
} writer = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void put_file(const char *path, const char *text)
{
    char tmp[PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fputs(text, f);
    if (fclose(f) == 0)
        rename(tmp, path);
}

static void *writer_main(void *arg)
{
    (void)arg;
    static char text[sizeof writer.text];
    pthread_mutex_lock(&writer.mu);
    for (;;) {
        while (!writer.pending && !writer.quit)
            pthread_cond_wait(&writer.cv, &writer.mu); /* (also woken by waiters: harmless) */
        if (!writer.pending)
            break;
        memcpy(text, writer.text, sizeof text);
        writer.pending = false;
        writer.busy = true;
        pthread_mutex_unlock(&writer.mu);
        put_file(writer.path, text);
        pthread_mutex_lock(&writer.mu);
        writer.busy = false;
        pthread_cond_broadcast(&writer.cv);
    }
    pthread_mutex_unlock(&writer.mu);
    return NULL;
}

static void format_state(const struct emu *e, char *buf, size_t cap)
{
    size_t n = 0;
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int k_ = snprintf(buf + n, cap - n, __VA_ARGS__);                                          \
        if (k_ > 0 && (size_t)k_ < cap - n)                                                        \
            n += (size_t)k_;                                                                       \
    } while (0)
    PUT("scale_plugged=%d\nscale_requests=%lu\nscale_net_mg=%lld\nscale_tare_mg=%lld\n",
        e->scale.pty.plugged, e->scale.requests, (long long)net_mg(e), (long long)e->tare_mg);
    PUT("scale_tares=%lu\nscale_zeros=%lu\n", e->tares, e->zeros);
    PUT("io_plugged=%d\nio_requests=%lu\nio_coil_writes=%lu\nio_coils=", e->io.pty.plugged,
        e->io.requests, e->coil_writes);
    for (int i = 0; i < IO_COILS; i++)
        PUT("%c", e->io.map && e->io.map->tab_bits[i] ? '1' : '0');
    PUT("\n");
    for (int i = 0; i < IO_COILS; i++)
        if (e->pulses[i])
            PUT("io_pulses.%d=%lu\nio_last_pulse_ms.%d=%d\n", i, e->pulses[i], i,
                e->last_pulse_ms[i]);
#undef PUT
}

/* Queue the state for the writer; with now, wait until it is on disk. */
static void write_state_now(const struct emu *e, bool now)
{
    if (!e->state_path)
        return;
    char text[sizeof writer.text];
    format_state(e, text, sizeof text);
    if (!writer.running) {
        put_file(e->state_path, text);
        return;
    }
    pthread_mutex_lock(&writer.mu);
    memcpy(writer.text, text, sizeof text);
    writer.pending = true;
    pthread_cond_broadcast(&writer.cv);
    while (now && (writer.pending || writer.busy))
        pthread_cond_wait(&writer.cv, &writer.mu);
    pthread_mutex_unlock(&writer.mu);
}

static void write_state(const struct emu *e)
{
    write_state_now(e, false);
}

static void writer_start(const struct emu *e)
{
    if (!e->state_path)
        return;
    snprintf(writer.path, sizeof writer.path, "%s", e->state_path);
    writer.running = pthread_create(&writer.thread, NULL, writer_main, NULL) == 0;
}

static void writer_stop(void)
{
    if (!writer.running)
        return;
    pthread_mutex_lock(&writer.mu);
    writer.quit = true;
    pthread_cond_broadcast(&writer.cv);
    pthread_mutex_unlock(&writer.mu);
    pthread_join(writer.thread, NULL);
    writer.running = false;
}

/* --- the scale model ----------------------------------------------------- */

static void put32(uint16_t *r, uint32_t v)
{
    r[0] = (uint16_t)(v >> 16);
    r[1] = (uint16_t)v;
}

static uint16_t swap16(uint16_t v)
{
    return (uint16_t)(v << 8 | v >> 8);
}

/* What the scale shows now, into every layout of the register map. */
static void refresh_scale(struct emu *e)
{
    int64_t mg = net_mg(e);
    bool moving = !e->stable_flag || e->unstable ||
                  (e->settle_ms > 0 && now_ms() - e->changed_ms < e->settle_ms);
    if (moving) {
        /* a wandering reading: ±3..17 g */
        e->jitter = e->jitter * 1103515245u + 12345u;
        int64_t j = (int64_t)(3 + (e->jitter >> 16) % 15) * 1000;
        mg += (e->jitter >> 8) & 1 ? j : -j;
    }
    bool overload = e->overload_flag || mg > e->capacity_mg;
    int64_t g = mg >= 0 ? mg / 1000 : -((-mg + 999) / 1000); /* floor */
    int64_t dg = mg >= 0 ? mg / 100 : -((-mg + 99) / 100);
    uint16_t *h = e->scale.map->tab_registers, *in = e->scale.map->tab_input_registers;
    put32(h + R_NET32, (uint32_t)(int32_t)g);
    h[R_STATUS] =
        (uint16_t)((moving ? 0 : 1) | overload << 1 | (mg < 0) << 2 | (e->tare_mg != 0) << 3);
    put32(h + R_NET32_CDAB, (uint32_t)(int32_t)g);
    uint16_t t = h[R_NET32_CDAB];
    h[R_NET32_CDAB] = h[R_NET32_CDAB + 1];
    h[R_NET32_CDAB + 1] = t;
    h[R_NET16] = (uint16_t)(int16_t)(g > 32767 ? 32767 : g < -32768 ? -32768 : g);
    h[R_MOTION] = (uint16_t)(moving | overload << 1);
    float kg = (float)((double)mg / 1e6);
    uint32_t bits;
    memcpy(&bits, &kg, sizeof bits);
    put32(h + R_FLOAT_KG, bits);
    put32(h + R_NET32_DG, (uint32_t)(int32_t)dg);
    put32(h + R_NET32_BADC, (uint32_t)(int32_t)g);
    h[R_NET32_BADC] = swap16(h[R_NET32_BADC]);
    h[R_NET32_BADC + 1] = swap16(h[R_NET32_BADC + 1]);
    h[R_CAPACITY] = (uint16_t)(e->capacity_mg / 10000);
    h[R_STATUS_FAR] = h[R_STATUS];
    h[R_STATUS_GAP] = h[R_STATUS];
    h[R_COMMAND] = 0;
    memcpy(in, h, SCALE_REGS * sizeof *h);
}

static void scale_command(struct emu *e, int what)
{
    if (what == 1) {
        e->zero_mg = e->gross_mg;
        e->tare_mg = 0;
        e->zeros++;
        say("scale zeroed");
    } else if (what == 2) {
        e->tare_mg = e->gross_mg - e->zero_mg;
        e->tares++;
        say("scale tared at %lld mg", (long long)e->tare_mg);
    } else if (what == 3) {
        e->tare_mg = 0;
        say("scale tare cleared");
    }
    e->changed_ms = now_ms();
}

/* --- the wire -------------------------------------------------------------- */

static void write_all(struct dev *d, const uint8_t *p, size_t n)
{
    yn_emu_pty_write(&d->pty, p, n);
}

/* Let libmodbus build the answer into a pipe instead of the pty, so that a
 * fault can be applied to the bytes before they go out. */
static ssize_t capture(struct dev *d, const uint8_t *req, int req_len, bool exception, int code,
                       uint8_t *out, size_t cap)
{
    int p[2];
    if (pipe(p) != 0)
        return -1;
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    modbus_set_socket(d->ctx, p[1]);
    int rc = exception ? modbus_reply_exception(d->ctx, req, (unsigned)code)
                       : modbus_reply(d->ctx, req, req_len, d->map);
    modbus_set_socket(d->ctx, d->pty.master);
    ssize_t n = rc < 0 ? -1 : read(p[0], out, cap);
    close(p[0]);
    close(p[1]);
    return n;
}

/* The fault for this request; a counted one wears off. */
static enum fault take_fault(struct dev *d, int *arg)
{
    enum fault f = d->fault;
    *arg = d->fault_arg;
    if (f != F_NONE && d->fault_left > 0 && --d->fault_left == 0)
        d->fault = F_NONE;
    return f;
}

/* A request for the scale that must be refused before libmodbus applies it. */
static int scale_precheck(const uint8_t *req)
{
    int fc = req[1], addr = req[2] << 8 | req[3], value = req[4] << 8 | req[5];
    if ((fc == MODBUS_FC_READ_HOLDING_REGISTERS || fc == MODBUS_FC_READ_INPUT_REGISTERS) &&
        addr < R_HOLE_END && addr + value > R_HOLE)
        return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS; /* a hole in this scale's map */
    if (fc == MODBUS_FC_WRITE_SINGLE_REGISTER && addr == R_COMMAND && (value < 1 || value > 3))
        return MODBUS_EXCEPTION_ILLEGAL_DATA_VALUE;
    if (fc == MODBUS_FC_WRITE_SINGLE_REGISTER && addr != R_COMMAND)
        return MODBUS_EXCEPTION_ILLEGAL_DATA_ADDRESS; /* measured values are read-only */
    return 0;
}

/* After libmodbus applied a request: commands, coil changes. Returns whether
 * the state file needs rewriting. */
static bool after_request(struct emu *e, struct dev *d, const uint8_t *req)
{
    int fc = req[1];
    bool write = fc == MODBUS_FC_WRITE_SINGLE_COIL || fc == MODBUS_FC_WRITE_SINGLE_REGISTER ||
                 fc == MODBUS_FC_WRITE_MULTIPLE_REGISTERS || fc == MODBUS_FC_WRITE_MULTIPLE_COILS;
    if (d == &e->scale) {
        modbus_mapping_t *m = d->map;
        if (m->tab_registers[R_COMMAND]) {
            scale_command(e, m->tab_registers[R_COMMAND]);
            m->tab_registers[R_COMMAND] = 0;
        }
        if (m->tab_bits[C_ZERO]) {
            scale_command(e, 1);
            m->tab_bits[C_ZERO] = 0;
        }
        if (m->tab_bits[C_TARE]) {
            scale_command(e, 2);
            m->tab_bits[C_TARE] = 0;
        }
        return write;
    }
    if (fc != MODBUS_FC_WRITE_SINGLE_COIL && fc != MODBUS_FC_WRITE_MULTIPLE_COILS)
        return false;
    e->coil_writes++;
    int64_t now = now_ms();
    for (int i = 0; i < IO_COILS; i++) {
        uint8_t v = d->map->tab_bits[i] ? 1 : 0;
        if (v && !e->coil_prev[i])
            e->on_since_ms[i] = now;
        if (!v && e->coil_prev[i]) {
            e->last_pulse_ms[i] = (int)(now - e->on_since_ms[i]);
            e->pulses[i]++;
        }
        if (v != e->coil_prev[i] && e->verbose)
            say("io coil %d %s", i, v ? "on" : "off");
        e->coil_prev[i] = v;
    }
    return true;
}

/* One request is waiting on d's pty: receive it, answer it (or not). */
static void serve(struct emu *e, struct dev *d)
{
    uint8_t req[MODBUS_RTU_MAX_ADU_LENGTH], rsp[MODBUS_RTU_MAX_ADU_LENGTH + 8];
    int len = modbus_receive(d->ctx, req);
    if (len == 0) {
        /* For another slave. libmodbus's server would now take our next request
         * for that slave's answer and swallow it (it models a shared bus); no
         * other slave answers on this pty, so start a fresh context instead. */
        modbus_t *fresh = modbus_new_rtu("/dev/null", 9600, 'N', 8, 1);
        if (fresh) {
            modbus_set_slave(fresh, d->slave_id);
            modbus_set_socket(fresh, d->pty.master);
            modbus_free(d->ctx);
            d->ctx = fresh;
        }
        return;
    }
    if (len < 0) {
        if (e->verbose)
            say("%s: bad request: %s", d->name, modbus_strerror(errno));
        return;
    }
    d->requests++;
    hexdump(e, d, "RX", req, (size_t)len);
    if (d == &e->scale) {
        e->gross_mg += e->drift_mg;
        refresh_scale(e);
    }
    int arg;
    enum fault f = take_fault(d, &arg);
    if (f == F_SILENT) {
        d->dropped++;
        return;
    }
    int code = f == F_EXCEPTION ? arg : (d == &e->scale ? scale_precheck(req) : 0);
    ssize_t n = capture(d, req, len, code != 0, code, rsp, sizeof rsp);
    if (n <= 0)
        return;
    if (f == F_BADCRC)
        rsp[n - 1] ^= 0x5A;
    bool changed = !code && after_request(e, d, req); /* the device acts, then answers */
    if (f == F_SLOW)
        sleep_ms(arg);
    if (e->line_baud > 0) {
        /* the request's and the answer's bytes on a real line: 10 bits each */
        long us = (long)((len + n) * 10 * 1000000L / e->line_baud);
        struct timespec ts = {us / 1000000, (us % 1000000) * 1000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    hexdump(e, d, "TX", rsp, (size_t)n);
    write_all(d, rsp, (size_t)n);
    d->replies++;
    if (changed)
        write_state(e); /* after the answer: a slow disk must not delay it */
}

/* --- pty ----------------------------------------------------------------- */

static int plug(struct emu *e, struct dev *d)
{
    if (!d->pty.link || d->pty.plugged)
        return 0;
    if (yn_emu_pty_plug(&d->pty) != 0)
        return -1;
    modbus_set_socket(d->ctx, d->pty.master);
    write_state(e);
    return 0;
}

static void unplug(struct emu *e, struct dev *d)
{
    if (!d->pty.plugged)
        return;
    yn_emu_pty_unplug(&d->pty);
    modbus_set_socket(d->ctx, -1);
    write_state(e);
}

static int make_dev(struct dev *d, int bits, int input_bits, int regs)
{
    d->ctx = modbus_new_rtu("/dev/null", 9600, 'N', 8, 1); /* the pty is set as its socket */
    d->map = modbus_mapping_new(bits, input_bits, regs, regs);
    if (!d->ctx || !d->map) {
        fprintf(stderr, "modbus-emu: %s: cannot create a libmodbus context\n", d->name);
        return -1;
    }
    modbus_set_slave(d->ctx, d->slave_id);
    return 0;
}

/* --- control ------------------------------------------------------------- */

static bool parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    if (!s)
        return false;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* weight in grams, with up to three decimals: "352", "352.7", "-20" → mg */
static bool parse_grams(const char *s, int64_t *mg)
{
    char *end = NULL;
    if (!s)
        return false;
    errno = 0;
    double g = strtod(s, &end);
    if (errno || *end || end == s || !(g > -1e9 && g < 1e9))
        return false;
    *mg = (int64_t)(g < 0 ? g * 1000.0 - 0.5 : g * 1000.0 + 0.5); /* nearest mg */
    return true;
}

/* fault [scale|io] KIND [ARG] [times N] */
static bool set_fault(struct emu *e, char **w, int nw)
{
    int i = 1;
    struct dev *d = &e->scale;
    if (i < nw && !strcmp(w[i], "io")) {
        d = &e->io;
        i++;
    } else if (i < nw && !strcmp(w[i], "scale")) {
        i++;
    }
    if (i >= nw)
        return false;
    const char *kind = w[i++];
    long arg = 0, times = -1;
    enum fault f;
    if (!strcmp(kind, "none")) {
        f = F_NONE;
        if (d == &e->scale)
            e->unstable = false;
    } else if (!strcmp(kind, "silent")) {
        f = F_SILENT;
    } else if (!strcmp(kind, "badcrc")) {
        f = F_BADCRC;
    } else if (!strcmp(kind, "slow")) {
        if (i >= nw || !parse_long(w[i++], 0, 600000, &arg))
            return false;
        f = F_SLOW;
    } else if (!strcmp(kind, "exception")) {
        if (i >= nw || !parse_long(w[i++], 1, 255, &arg))
            return false;
        f = F_EXCEPTION;
    } else if (!strcmp(kind, "unstable") && d == &e->scale) {
        e->unstable = true;
        return i == nw;
    } else {
        return false;
    }
    if (i + 1 < nw && !strcmp(w[i], "times") && parse_long(w[i + 1], 1, 1000000, &times))
        i += 2;
    if (i != nw)
        return false;
    d->fault = f;
    d->fault_arg = (int)arg;
    d->fault_left = f == F_NONE ? 0 : (int)times;
    return true;
}

/* Which devices a command names: "scale", "io", or (nothing) both. */
static bool targets(struct emu *e, char **w, int nw, struct dev **out, int *n)
{
    *n = 0;
    if (nw == 1) {
        if (e->scale.pty.link)
            out[(*n)++] = &e->scale;
        if (e->io.pty.link)
            out[(*n)++] = &e->io;
        return true;
    }
    if (nw == 2 && !strcmp(w[1], "scale") && e->scale.pty.link)
        out[(*n)++] = &e->scale;
    else if (nw == 2 && !strcmp(w[1], "io") && e->io.pty.link)
        out[(*n)++] = &e->io;
    else
        return false;
    return true;
}

/* One control line. Returns false on quit. */
static bool control_line(struct emu *e, char *line)
{
    char *w[8] = {0};
    int nw = yn_emu_words(line, w, 8);
    if (nw == 0 || w[0][0] == '#')
        return true;
    long v;
    int64_t mg;
    struct dev *devs[2];
    int nd;
    if (!strcmp(w[0], "weight") && nw == 2 && parse_grams(w[1], &mg)) {
        e->gross_mg = mg + e->zero_mg + e->tare_mg; /* the scale shows this net weight */
        e->changed_ms = now_ms();
        say("ok weight %s", w[1]);
    } else if (!strcmp(w[0], "load") && nw == 2 && parse_grams(w[1], &mg)) {
        e->gross_mg = mg; /* what lies on the platform, before zero and tare */
        e->changed_ms = now_ms();
        say("ok load %s", w[1]);
    } else if (!strcmp(w[0], "drift") && nw == 2 && parse_grams(w[1], &mg)) {
        e->drift_mg = mg;
        say("ok drift %s", w[1]);
    } else if (!strcmp(w[0], "stable") && nw == 2 && parse_long(w[1], 0, 1, &v)) {
        e->stable_flag = v;
        say("ok stable %ld", v);
    } else if (!strcmp(w[0], "overload") && nw == 2 && parse_long(w[1], 0, 1, &v)) {
        e->overload_flag = v;
        say("ok overload %ld", v);
    } else if (!strcmp(w[0], "settle") && nw == 2 && parse_long(w[1], 0, 600000, &v)) {
        e->settle_ms = (int)v;
        say("ok settle %ld", v);
    } else if (!strcmp(w[0], "fault") && set_fault(e, w, nw)) {
        say("ok fault");
    } else if (!strcmp(w[0], "unplug") && targets(e, w, nw, devs, &nd)) {
        for (int i = 0; i < nd; i++)
            unplug(e, devs[i]);
        say("ok unplug");
    } else if (!strcmp(w[0], "plug") && targets(e, w, nw, devs, &nd)) {
        bool ok = true;
        for (int i = 0; i < nd; i++)
            ok = plug(e, devs[i]) == 0 && ok;
        say(ok ? "ok plug" : "error: plug");
    } else if ((!strcmp(w[0], "coils?") || !strcmp(w[0], "state?")) && nw == 1) {
        write_state_now(e, true); /* written when the answer is printed */
        say("ok %s", w[0]);
    } else if (!strcmp(w[0], "verbose") && nw == 2) {
        e->verbose = !strcmp(w[1], "on");
        say("ok verbose %s", e->verbose ? "on" : "off");
    } else if (!strcmp(w[0], "quit") && nw == 1) {
        say("ok quit");
        return false;
    } else {
        say("error: cannot do '%s' (weight G, load G, stable 0|1, overload 0|1, settle MS, "
            "fault [scale|io] silent|badcrc|slow MS|exception N|unstable|none [times N], "
            "unplug [scale|io], plug [scale|io], coils?, state?, verbose on|off, quit)",
            w[0]);
    }
    return true;
}

static bool control_cb(void *arg, char *line)
{
    return control_line(arg, line);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: yinian-modbus-emu [--scale LINK] [--io LINK] [--scale-id N] [--io-id N]\n"
            "                         [--control FIFO] [--state FILE] [--weight G]\n"
            "                         [--line-baud BAUD] [--verbose]\n"
            "  --scale LINK    emulate a weighing scale on a pty, LINK a symlink to it\n"
            "  --io LINK       emulate a 16-coil relay I/O module on a pty\n"
            "  --scale-id N    its Modbus slave address (default 1); --io-id N (default 2)\n"
            "  --control FIFO  commands, one a line (created if missing):\n"
            "                    weight G (net grams, decimals allowed) | load G (gross)\n"
            "                    stable 0|1 | overload 0|1 | settle MS\n"
            "                    fault [scale|io] silent|badcrc|slow MS|exception N|unstable|none\n"
            "                          [times N]   (no 'times': until 'fault none')\n"
            "                    unplug [scale|io] | plug [scale|io] | coils? | state? |\n"
            "                    verbose on|off | quit\n"
            "  --state FILE    key=value state, rewritten after every change and on coils?\n"
            "  --weight G      net weight at start (default 0)\n"
            "  --line-baud B   answer as late as a real 8N1 line at B baud would (default 0:\n"
            "                  at once; a pty moves bytes at memory speed)\n"
            "Register map: hal/chips/MODBUS.md.\n");
}

int main(int argc, char **argv)
{
    static struct emu e = {
        .ctl = {.fd = -1},
        .scale = {.name = "scale", .slave_id = 1, .pty = {.master = -1, .slave = -1}},
        .io = {.name = "io", .slave_id = 2, .pty = {.master = -1, .slave = -1}},
        .stable_flag = true,
        .capacity_mg = 30000000,
        .jitter = 1};
    long v;
    yn_emu_set_name("modbus-emu");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--scale") && val)
            e.scale.pty.link = argv[++i];
        else if (!strcmp(a, "--io") && val)
            e.io.pty.link = argv[++i];
        else if (!strcmp(a, "--scale-id") && parse_long(val, 1, 247, &v) && ++i)
            e.scale.slave_id = (int)v;
        else if (!strcmp(a, "--io-id") && parse_long(val, 1, 247, &v) && ++i)
            e.io.slave_id = (int)v;
        else if (!strcmp(a, "--control") && val)
            e.control = argv[++i];
        else if (!strcmp(a, "--state") && val)
            e.state_path = argv[++i];
        else if (!strcmp(a, "--weight") && parse_grams(val, &e.gross_mg) && ++i)
            ;
        else if (!strcmp(a, "--line-baud") && parse_long(val, 0, 1000000, &v) && ++i)
            e.line_baud = (int)v;
        else if (!strcmp(a, "--verbose"))
            e.verbose = true;
        else {
            usage();
            return 2;
        }
    }
    if (!e.scale.pty.link && !e.io.pty.link) {
        usage();
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (make_dev(&e.scale, SCALE_COILS, 0, SCALE_REGS) != 0 ||
        make_dev(&e.io, IO_COILS, IO_INPUTS, 0) != 0)
        return 1;
    if (yn_emu_ctl_open(&e.ctl, e.control) != 0)
        return 1;
    refresh_scale(&e);
    writer_start(&e);
    /* the links appear last: when they exist, we are ready */
    if (plug(&e, &e.scale) != 0 || plug(&e, &e.io) != 0)
        return 1;
    say("ready scale=%s (slave %d) io=%s (slave %d)", e.scale.pty.link ? e.scale.pty.pts : "-",
        e.scale.slave_id, e.io.pty.link ? e.io.pty.pts : "-", e.io.slave_id);

    bool running = true;
    while (running && !stop_flag) {
        struct pollfd pfd[3];
        struct dev *owner[3] = {NULL, NULL, NULL};
        int n = 0;
        if (e.ctl.fd >= 0)
            pfd[n++] = (struct pollfd){.fd = e.ctl.fd, .events = POLLIN};
        struct dev *ds[2] = {&e.scale, &e.io};
        for (int i = 0; i < 2; i++)
            if (ds[i]->pty.plugged) {
                owner[n] = ds[i];
                pfd[n++] = (struct pollfd){.fd = ds[i]->pty.master, .events = POLLIN};
            }
        int r = poll(pfd, (nfds_t)n, 1000);
        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0)
            continue;
        /* control first: a command written before the host's next request applies to it */
        if (e.ctl.fd >= 0 && (pfd[0].revents & POLLIN))
            running = yn_emu_ctl_read(&e.ctl, control_cb, &e);
        for (int i = 0; i < n && running; i++)
            if (owner[i] && owner[i]->pty.plugged && (pfd[i].revents & POLLIN))
                serve(&e, owner[i]);
    }
    unplug(&e, &e.scale);
    unplug(&e, &e.io);
    writer_stop();
    modbus_mapping_free(e.scale.map);
    modbus_mapping_free(e.io.map);
    modbus_free(e.scale.ctx);
    modbus_free(e.io.ctx);
    yn_emu_ctl_close(&e.ctl);
    return 0;
}
