/* bench_scale.c — how long the terminal waits for a stable weight: the "modbus"
 * scale backend through the real libmodbus, a pty and the emulated scale
 * (build/…/yinian-modbus-emu), with board.conf's default register map (net
 * weight and status in one request of three holding registers).
 *
 * Prints BENCH scale_read_p50_ms / scale_read_p99_ms: one yn_scale_read() of a
 * settled weight (one Modbus transaction), and scale_confirmed_p50_ms /
 * _p99_ms: two identical settled readings in a row, which is what the terminal
 * waits for before it prices a weighed meal. A pty moves bytes at memory speed;
 * on a real RS-485 line each transaction also spends its bytes' time on the
 * wire, so the same is measured again with the emulator answering as late as
 * a 9600-baud 8N1 line would (…_9600baud_…: 19 bytes, 19.8 ms).
 *
 * Env: BUILD, TMPDIR. Exit 0 unless the scale could not be read. */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "scale.h"
#include "testutil.h"

#define READS  2000
#define WEIGHS 500
#define WARMUP 50

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(double *v, int n, int pct)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    int i = (n * pct + 99) / 100 - 1;
    return v[i < 0 ? 0 : i];
}

/* Start the emulator on link (line_baud 0 = memory speed). */
static pid_t start_emu(const char *prog, const char *link, const char *ctl, const char *log_path,
                       int line_baud)
{
    char baud[16];
    snprintf(baud, sizeof baud, "%d", line_baud);
    unlink(link);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(prog, prog, "--scale", link, "--control", ctl, "--weight", "487", "--line-baud", baud,
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && access(link, F_OK) != 0; i++) {
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    return pid;
}

static void stop_emu(pid_t pid, const char *ctl)
{
    FILE *f = fopen(ctl, "w");
    if (f) {
        fputs("quit\n", f);
        fclose(f);
    }
    int status;
    for (int i = 0; i < 100 && waitpid(pid, &status, WNOHANG) == 0; i++) {
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
}

/* reads single reads and weighs confirmed pairs; prints them under prefix.
 * Returns 0, or 1 when the scale did not read 487 g stable. */
static int measure(const char *link, const char *prefix, int reads, int weighs)
{
    static double t[READS];
    yn_config cfg;
    yn_config_defaults(&cfg);
    snprintf(cfg.scale.backend, sizeof cfg.scale.backend, "modbus");
    if (snprintf(cfg.scale.line.device, sizeof cfg.scale.line.device, "%s", link) >=
        (int)sizeof cfg.scale.line.device) {
        fprintf(stderr, "bench_scale: TMPDIR too long for a device name\n");
        return 1;
    }
    yn_scale sc;
    yn_weight w = {0};
    int rc = yn_scale_open(&sc, &cfg.scale), failed = 0;
    for (int i = 0; rc == YN_OK && i < WARMUP; i++)
        rc = yn_scale_read(&sc, &w);
    if (rc != YN_OK || w.net_g != 487 || !w.stable) {
        fprintf(stderr, "bench_scale: the emulated scale does not read 487 g stable: %s\n",
                yn_strerror(rc));
        failed = 1;
    }
    for (int i = 0; !failed && i < reads; i++) {
        double t0 = now_ms();
        rc = yn_scale_read(&sc, &w);
        t[i] = now_ms() - t0;
        if (rc != YN_OK || !w.stable || w.net_g != 487) {
            fprintf(stderr, "bench_scale: read %d: %s\n", i, yn_strerror(rc));
            failed = 1;
        }
    }
    if (!failed) {
        printf("BENCH %s_p50_ms %.3f ms\n", prefix, percentile(t, reads, 50));
        printf("BENCH %s_p99_ms %.3f ms\n", prefix, percentile(t, reads, 99));
    }
    for (int i = 0; !failed && i < weighs; i++) {
        yn_weight a = {0}, b = {0};
        double t0 = now_ms();
        if (yn_scale_read(&sc, &a) != YN_OK || yn_scale_read(&sc, &b) != YN_OK || !a.stable ||
            !b.stable || a.net_g != b.net_g)
            failed = 1;
        t[i] = now_ms() - t0;
    }
    if (!failed) {
        /* "scale_read" → "scale_confirmed", "scale_read_9600baud" → "scale_confirmed_9600baud" */
        const char *rest = strncmp(prefix, "scale_read", 10) == 0 ? prefix + 10 : "";
        printf("BENCH scale_confirmed%s_p50_ms %.3f ms\n", rest, percentile(t, weighs, 50));
        printf("BENCH scale_confirmed%s_p99_ms %.3f ms\n", rest, percentile(t, weighs, 99));
    }
    yn_scale_close(&sc);
    return failed;
}

int main(void)
{
    char dir[PATH_MAX], link[PATH_MAX + 16], ctl[PATH_MAX + 16], log_path[PATH_MAX + 16];
    yn_log_init("bench_scale", YN_LOG_WARN, false);
    alarm(300);
    yn_test_tmpdir(dir, sizeof dir);
    snprintf(link, sizeof link, "%s/scale", dir);
    snprintf(ctl, sizeof ctl, "%s/emu.ctl", dir);
    snprintf(log_path, sizeof log_path, "%s/emu.log", dir);
    const char *build = getenv("BUILD");
    char prog[PATH_MAX];
    snprintf(prog, sizeof prog, "%s/yinian-modbus-emu", build && *build ? build : "build/host");

    /* the software path: a pty moves bytes at memory speed */
    pid_t pid = start_emu(prog, link, ctl, log_path, 0);
    int failed = measure(link, "scale_read", READS, WEIGHS);
    stop_emu(pid, ctl);
    /* as on the counter: the emulator answers as late as a 9600-baud line would */
    pid = start_emu(prog, link, ctl, log_path, 9600);
    failed |= measure(link, "scale_read_9600baud", READS / 10, WEIGHS / 10);
    stop_emu(pid, ctl);
    return failed;
}
