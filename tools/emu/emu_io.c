/* emu_io.c — pty, control FIFO, messages and clock of the device emulators. */
#include "emu_io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pty.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static const char *emu_name = "emu";

void yn_emu_set_name(const char *name)
{
    emu_name = name;
}

void yn_emu_say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s: ", emu_name);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
}

void yn_emu_hexdump(const char *what, const uint8_t *p, size_t n)
{
    fprintf(stderr, "%s %s:", emu_name, what);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %02x", p[i]);
    fputc('\n', stderr);
}

int64_t yn_emu_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t yn_emu_now_ms(void)
{
    return yn_emu_now_us() / 1000;
}

void yn_emu_sleep_us(int64_t us)
{
    if (us <= 0)
        return;
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int yn_emu_pty_plug(yn_emu_pty *p)
{
    struct termios tio;
    if (openpty(&p->master, &p->slave, p->pts, NULL, NULL) < 0) {
        perror("openpty");
        return -1;
    }
    tcgetattr(p->slave, &tio);
    cfmakeraw(&tio);
    tcsetattr(p->slave, TCSANOW, &tio);
    fcntl(p->master, F_SETFL, fcntl(p->master, F_GETFL) | O_NONBLOCK);
    fcntl(p->master, F_SETFD, FD_CLOEXEC);
    fcntl(p->slave, F_SETFD, FD_CLOEXEC);
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s.new", p->link);
    unlink(tmp);
    if (symlink(p->pts, tmp) < 0 || rename(tmp, p->link) < 0) {
        perror("symlink");
        close(p->master);
        close(p->slave);
        return -1;
    }
    p->plugged = true;
    return 0;
}

void yn_emu_pty_unplug(yn_emu_pty *p)
{
    if (!p->plugged)
        return;
    unlink(p->link);
    close(p->master);
    close(p->slave);
    p->master = p->slave = -1;
    p->plugged = false;
}

unsigned yn_emu_pty_client_baud(const yn_emu_pty *p)
{
    static const struct {
        speed_t code;
        unsigned baud;
    } rates[] = {{B9600, 9600},       {B19200, 19200},     {B38400, 38400},    {B57600, 57600},
                 {B115200, 115200},   {B230400, 230400},   {B460800, 460800},  {B921600, 921600},
                 {B1000000, 1000000}, {B1152000, 1152000}, {B1500000, 1500000}};
    struct termios tio;
    if (!p->plugged || tcgetattr(p->slave, &tio) != 0)
        return 0;
    speed_t s = cfgetospeed(&tio);
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++)
        if (rates[i].code == s)
            return rates[i].baud;
    return 0;
}

void yn_emu_pty_write(yn_emu_pty *p, const uint8_t *data, size_t n)
{
    while (n && p->plugged) {
        ssize_t w = write(p->master, data, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pfd = {.fd = p->master, .events = POLLOUT};
                poll(&pfd, 1, 100);
                continue;
            }
            return;
        }
        data += w;
        n -= (size_t)w;
    }
}

int yn_emu_ctl_open(yn_emu_ctl *c, const char *path)
{
    struct stat st;
    c->path = path;
    c->fd = -1;
    c->len = 0;
    c->made = false;
    if (!path)
        return 0;
    if (stat(path, &st) != 0) {
        if (mkfifo(path, 0600) != 0) {
            perror("mkfifo");
            return -1;
        }
        c->made = true;
    }
    /* O_RDWR: we are a writer too, so the FIFO never reports end of file */
    c->fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (c->fd < 0) {
        perror(path);
        return -1;
    }
    return 0;
}

void yn_emu_ctl_close(yn_emu_ctl *c)
{
    if (c->fd >= 0)
        close(c->fd);
    if (c->made)
        unlink(c->path);
    c->fd = -1;
}

bool yn_emu_ctl_read(yn_emu_ctl *c, yn_emu_line_fn fn, void *arg)
{
    ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (r <= 0)
        return true;
    c->len += (size_t)r;
    char *nl;
    while ((nl = memchr(c->buf, '\n', c->len))) {
        char line[sizeof c->buf];
        size_t used = (size_t)(nl - c->buf) + 1;
        memcpy(line, c->buf, used - 1);
        line[used - 1] = '\0';
        memmove(c->buf, nl + 1, c->len - used);
        c->len -= used;
        if (!fn(arg, line))
            return false;
    }
    if (c->len == sizeof c->buf - 1)
        c->len = 0; /* an endless line: drop it */
    return true;
}

int yn_emu_words(char *line, char **words, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(line, " \t\r", &save); tok && n < max;
         tok = strtok_r(NULL, " \t\r", &save))
        words[n++] = tok;
    return n;
}
