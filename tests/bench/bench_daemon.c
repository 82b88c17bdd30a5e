/* bench_daemon.c — the daemon's start time and memory with a district-sized
 * ledger: 1,000,000 roster cards and 1,000,000 blacklist entries loaded
 * through the ledger API, then the real yinian-pos started on the demo
 * folder, serving scripted taps.
 *   daemon_start_ms  exec → READY=1 on its NOTIFY_SOCKET (ready for the first tap)
 *   daemon_rss_mib   peak resident memory over the whole run (wait4 rusage)
 * Env: BUILD (build dir), YN_SRCDIR (repo), TMPDIR; YN_BENCH_SMALL=1 for 1/50. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int sh(const char *fmt, const char *a, const char *b, const char *c)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, fmt, a, b, c);
    return system(cmd);
}

static int load(const char *path, long n)
{
    yn_ledger_opts lo = {.path = path, .terminal_id = "T-FT-0001"};
    yn_ledger *l;
    if (yn_ledger_open(&lo, &l) != YN_OK)
        return 1;
    enum { CHUNK = 50000 };
    static yn_card_facts cards[CHUNK];
    static yn_ledger_blacklist_entry bl[CHUNK];
    for (long base = 0; base < n; base += CHUNK) {
        long m = n - base < CHUNK ? n - base : CHUNK;
        for (long i = 0; i < m; i++) {
            yn_card_facts *c = &cards[i];
            memset(c, 0, sizeof *c);
            snprintf(c->card_no, sizeof c->card_no, "44030490%08ld", base + i);
            c->birth_ymd = 19400101 + (int32_t)((base + i) % 28);
            c->flags = (uint32_t)((base + i) % 3 == 0);
            c->district = 440304;
            c->street = 440304001 + (uint32_t)((base + i) % 9);
            c->expiry_ymd = 20301231;
            memset(&bl[i], 0, sizeof bl[i]);
            bl[i].seq = base + i + 1;
            snprintf(bl[i].card_no, sizeof bl[i].card_no, "44030380%08ld", base + i);
            bl[i].lost = true;
        }
        if (yn_ledger_roster_put(l, cards, (size_t)m, 1) != YN_OK ||
            yn_ledger_blacklist_apply_many(l, bl, (size_t)m) != YN_OK) {
            yn_ledger_close(l);
            return 1;
        }
    }
    yn_ledger_close(l);
    return 0;
}

int main(void)
{
    const char *build = getenv("BUILD"), *tmp = getenv("TMPDIR");
    const char *small = getenv("YN_BENCH_SMALL");
    long n = small && *small == '1' ? 20000 : 1000000;
    if (!build || !tmp) {
        fprintf(stderr, "bench_daemon: set BUILD and TMPDIR\n");
        return 2;
    }
    char run[512], path[700], sock[700], conf[700];
    snprintf(run, sizeof run, "%s/run", tmp);
    if (sh("tools/demo-setup %s %s >/dev/null && cd %s && "
           "sed -i -e '/^\\[sync\\]/,/^\\[/s/^enabled = .*/enabled = false/'"
           " -e '/^\\[input\\]/,/^\\[/s/^backend = .*/backend = script/'"
           " -e 's|^script =.*|script = keys.txt|'"
           " -e '/^\\[display\\]/,/^\\[/s/^backend = .*/backend = sim/' board.conf && "
           "printf 'wait:500 card:0 wait:200 remove card:1 wait:200 remove card:2 wait:200 "
           "remove card:3 wait:200 remove card:4 wait:200 remove card:9 wait:200 quit\\n'"
           " > keys.txt",
           run, build, run) != 0)
        return 1;
    snprintf(path, sizeof path, "%s/ledger.db", run);
    double t0 = now_ms();
    if (load(path, n) != 0) {
        fprintf(stderr, "bench_daemon: loading the ledger failed\n");
        return 1;
    }
    printf("loaded %ld roster cards and %ld blacklist entries in %.1f s\n", n, n,
           (now_ms() - t0) / 1000.0);

    snprintf(sock, sizeof sock, "%s/notify", tmp);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(sock) >= sizeof a.sun_path)
        return 1;
    memcpy(a.sun_path, sock, strlen(sock) + 1);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0)
        return 1;
    snprintf(conf, sizeof conf, "%s/board.conf", run);
    char daemon[600];
    snprintf(daemon, sizeof daemon, "%s/yinian-pos", build);
    double start = now_ms();
    pid_t pid = fork();
    if (pid == 0) {
        setenv("NOTIFY_SOCKET", sock, 1);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(daemon, daemon, "--config", conf, (char *)NULL);
        _exit(127);
    }
    double ready = -1;
    char msg[512];
    struct pollfd p = {.fd = fd, .events = POLLIN};
    while (ready < 0 && poll(&p, 1, 30000) > 0) {
        ssize_t got = recv(fd, msg, sizeof msg - 1, 0);
        if (got > 0) {
            msg[got] = '\0';
            if (strstr(msg, "READY=1"))
                ready = now_ms() - start;
        }
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "bench_daemon: the daemon failed (status %d)\n", status);
        return 1;
    }
    if (ready < 0) {
        fprintf(stderr, "bench_daemon: no READY=1 from the daemon\n");
        return 1;
    }
    printf("BENCH daemon_start_ms %.1f ms\n", ready);
    printf("BENCH daemon_rss_mib %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
    return 0;
}
