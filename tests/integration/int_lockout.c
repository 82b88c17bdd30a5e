/* int_lockout.c — no lock-out (issue 13, defect 3): while 2,000 slow TLS
 * clients hold connections open, each dribbling a header line every few
 * seconds (from 40 loopback addresses, 50 each: under the per-address limit,
 * as a botnet would spread them), and 1,100 TCP connections sit idle without
 * a handshake, 100 terminals — threads running the real sync client on their
 * own ledgers — still sync, each round within the 10 s sync interval of
 * `make run`. On d18a5b3 (select(), FD_SETSIZE) every terminal was refused
 * for 60 s and more. Also: one address gets no more than the per-address
 * limit. Prints the server's memory with all of it held. About 30 s. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "district.h"
#include "keystore.h"
#include "ledger.h"
#include "log.h"

enum {
    SLOW = 2000,         /* slow TLS clients */
    SLOW_PER_ADDR = 50,  /* from 127.0.0.2.. */
    IDLE = 1100,         /* idle TCP connections, from 127.0.1.1.. */
    TERMINALS = 100,     /* syncing terminals */
    ROUNDS = 3,          /* sync rounds each */
    INTERVAL_MS = 10000, /* a terminal's sync interval (make run) */
    DRIP_MS = 4000,      /* a slow client's header line every … */
    PER_IP = 256,        /* the server's per-address limit (its default) */
};

static yn_test_district D;
static uint8_t pub[32];

/* A TCP connection from source address src to the server. -1 on failure. */
static int tcp_from(const char *src)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
    inet_pton(AF_INET, src, &a.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    to.sin_port = htons((uint16_t)D.port);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        connect(fd, (struct sockaddr *)&to, sizeof to) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

struct slow {
    int fd;
    SSL *ssl;
    bool alive;
};
static struct slow slow[SLOW];
static int idle_fd[IDLE];
static atomic_bool stop_drip;

/* Every DRIP_MS, one more header line on every slow connection. */
static void *drip(void *arg)
{
    (void)arg;
    for (int n = 0; !atomic_load(&stop_drip); n++) {
        for (int i = 0; i < SLOW; i++) {
            char line[64];
            int len = snprintf(line, sizeof line, "X-Slow-%d: %d\r\n", n, i);
            if (slow[i].alive && SSL_write(slow[i].ssl, line, len) <= 0)
                slow[i].alive = false;
        }
        for (int t = 0; t < DRIP_MS / 100 && !atomic_load(&stop_drip); t++)
            usleep(100000);
    }
    return NULL;
}

static int open_slow_clients(SSL_CTX *ctx)
{
    int opened = 0;
    for (int i = 0; i < SLOW; i++) {
        char src[32];
        snprintf(src, sizeof src, "127.0.0.%d", 2 + i / SLOW_PER_ADDR);
        slow[i].fd = tcp_from(src);
        slow[i].ssl = slow[i].fd >= 0 ? SSL_new(ctx) : NULL;
        if (!slow[i].ssl)
            continue;
        SSL_set_fd(slow[i].ssl, slow[i].fd);
        static const char start[] = "POST /v1/batches HTTP/1.1\r\nHost: district\r\n";
        slow[i].alive = SSL_connect(slow[i].ssl) == 1 &&
                        SSL_write(slow[i].ssl, start, (int)sizeof start - 1) > 0;
        opened += slow[i].alive;
    }
    return opened;
}

/* --- terminals --------------------------------------------------------------- */

struct terminal {
    char id[YN_LEDGER_ID_MAX], token[64];
    int64_t worst_ms;
    int failures;
    int64_t records;
    pthread_t thread;
};
static struct terminal terms[TERMINALS];

static void *terminal_main(void *arg)
{
    struct terminal *t = arg;
    char key_path[800], ledger_path[800];
    snprintf(key_path, sizeof key_path, "%s/%s.key", D.dir, t->id);
    snprintf(ledger_path, sizeof ledger_path, "%s/%s.db", D.dir, t->id);
    static _Thread_local yn_test_key k;
    yn_ledger_opts lo = {.path = ledger_path, .terminal_id = t->id};
    yn_ledger *l;
    yn_sync *s = NULL;
    if (yn_test_district_enrol(&D, t->token, key_path, &k) != YN_OK ||
        yn_ledger_open(&lo, &l) != YN_OK) {
        t->failures = ROUNDS;
        return NULL;
    }
    yn_sync_opts so = {.url = D.url,
                       .ca_file = D.ca,
                       .terminal_id = t->id,
                       .keys = &k.ks,
                       .timeout_ms = INTERVAL_MS};
    memcpy(so.district_pub, pub, 32);
    if (yn_sync_new(&so, &s) != YN_OK)
        t->failures = ROUNDS;
    for (int r = 0; s && r < ROUNDS; r++) {
        for (int i = 0; i < 20; i++) {
            yn_ledger_when w = {.utc_s = 1773115200 + t->records, .mono_ms = t->records * 1000};
            yn_ledger_result res;
            t->records++;
            if (yn_ledger_topup(l, t->records, "4403040001", 500, "1001", &w, &res) != YN_OK)
                t->failures++;
        }
        int64_t t0 = yn_test_now_ms();
        yn_sync_stats st;
        if (yn_sync_round(s, l, 1773200000, &st) != YN_OK)
            t->failures++;
        int64_t took = yn_test_now_ms() - t0;
        t->worst_ms = took > t->worst_ms ? took : t->worst_ms;
    }
    yn_sync_free(s);
    yn_ledger_close(l);
    return NULL;
}

static long rss_kib(pid_t pid)
{
    char path[64], line[128];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kib = atol(line + 6);
    if (f)
        fclose(f);
    return kib;
}

/* Connections beyond the per-address limit are closed at once by the server. */
static int per_address_accepted(void)
{
    int fds[PER_IP + 16], kept = 0;
    for (int i = 0; i < PER_IP + 16; i++)
        fds[i] = tcp_from("127.0.0.250");
    usleep(500000);
    for (int i = 0; i < PER_IP + 16; i++) {
        if (fds[i] < 0)
            continue;
        struct pollfd p = {.fd = fds[i], .events = POLLIN};
        char b;
        bool closed = poll(&p, 1, 0) == 1 && recv(fds[i], &b, 1, MSG_DONTWAIT) == 0;
        kept += !closed;
        close(fds[i]);
    }
    return kept;
}

int main(void)
{
    const char *build = getenv("BUILD"), *tmp = getenv("TMPDIR");
    if (!build || !tmp)
        return 2;
    yn_log_init("int_lockout", YN_LOG_ERR, false);
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < SLOW + IDLE + 4 * TERMINALS + 100) {
        printf("int_lockout: skipped: RLIMIT_NOFILE %llu is too low for %d connections\n",
               (unsigned long long)rl.rlim_cur, SLOW + IDLE);
        return 0;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char dir_path[512], csv[800], out[800];
    snprintf(dir_path, sizeof dir_path, "%s/lockout", tmp);
    if (yn_test_district_init(&D, build, dir_path) != 0)
        return 1;
    size_t pl;
    uint8_t pubbuf[64];
    if (yn_key_file_load(D.dpub, false, "district key", pubbuf, sizeof pubbuf, &pl) != YN_OK)
        return 1;
    memcpy(pub, pubbuf, 32);
    /* 100 tokens in one command */
    snprintf(csv, sizeof csv, "%s/terminals.csv", D.dir);
    snprintf(out, sizeof out, "%s/tokens.csv", D.dir);
    FILE *f = fopen(csv, "w");
    for (int i = 0; f && i < TERMINALS; i++)
        fprintf(f, "T-L%03d,C-%02d\n", i, i % 12);
    if (f)
        fclose(f);
    CHECK(yn_test_sh("%s --db '%s' enrol-tokens '%s' > '%s'", D.bin, D.db, csv, out) == 0,
          "enrol-tokens");
    f = fopen(out, "r");
    for (int i = 0; f && i < TERMINALS; i++) {
        char line[128];
        if (!fgets(line, sizeof line, f))
            break;
        line[strcspn(line, "\n")] = '\0';
        char *comma = strchr(line, ',');
        if (!comma)
            break;
        *comma = '\0';
        snprintf(terms[i].id, sizeof terms[i].id, "%.16s", line);
        snprintf(terms[i].token, sizeof terms[i].token, "%.63s", comma + 1);
    }
    if (f)
        fclose(f);

    pid_t srv = yn_test_district_start(&D, NULL, NULL);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL); /* an attacker checks nothing */
    int64_t t0 = yn_test_now_ms();
    int opened = open_slow_clients(ctx);
    int idle = 0;
    for (int i = 0; i < IDLE; i++) {
        char src[32];
        snprintf(src, sizeof src, "127.0.1.%d", 1 + i / SLOW_PER_ADDR);
        idle_fd[i] = tcp_from(src);
        idle += idle_fd[i] >= 0;
    }
    printf("int_lockout: %d slow TLS clients and %d idle TCP connections open in %lld ms\n", opened,
           idle, (long long)(yn_test_now_ms() - t0));
    CHECK(opened == SLOW, "%d of %d slow TLS clients got through the handshake", opened, SLOW);
    CHECK(idle == IDLE, "%d of %d idle connections", idle, IDLE);
    pthread_t dripper;
    pthread_create(&dripper, NULL, drip, NULL);

    /* the terminals, all at once */
    t0 = yn_test_now_ms();
    for (int i = 0; i < TERMINALS; i++)
        pthread_create(&terms[i].thread, NULL, terminal_main, &terms[i]);
    int64_t worst = 0;
    int failures = 0;
    for (int i = 0; i < TERMINALS; i++) {
        pthread_join(terms[i].thread, NULL);
        worst = terms[i].worst_ms > worst ? terms[i].worst_ms : worst;
        failures += terms[i].failures;
    }
    long rss = rss_kib(srv);
    CHECK(failures == 0, "%d of %d sync rounds failed", failures, TERMINALS * ROUNDS);
    CHECK(worst < INTERVAL_MS, "the slowest sync round took %lld ms (interval %d ms)",
          (long long)worst, INTERVAL_MS);
    long long tot[YN_TOT_N], held = 0;
    for (int i = 0; i < TERMINALS; i++) {
        yn_test_district_totals(&D, terms[i].id, tot);
        held += tot[YN_TOT_RECORDS];
    }
    CHECK(held == (long long)TERMINALS * ROUNDS * 20, "the district holds %lld records, want %d",
          held, TERMINALS * ROUNDS * 20);
    int alive = 0;
    for (int i = 0; i < SLOW; i++)
        alive += slow[i].alive;
    CHECK(alive == SLOW, "%d of %d slow clients still held open at the end", alive, SLOW);
    int kept = per_address_accepted();
    CHECK(kept == PER_IP - 0 || (kept <= PER_IP && kept >= PER_IP - 2),
          "one address kept %d connections (limit %d)", kept, PER_IP);
    printf("int_lockout: %d terminals x %d rounds in %lld ms, the slowest round %lld ms; server"
           " RSS %ld KiB with %d slow + %d idle connections\n",
           TERMINALS, ROUNDS, (long long)(yn_test_now_ms() - t0), (long long)worst, rss, alive,
           idle);

    atomic_store(&stop_drip, true);
    pthread_join(dripper, NULL);
    for (int i = 0; i < SLOW; i++) {
        if (slow[i].ssl)
            SSL_free(slow[i].ssl);
        if (slow[i].fd >= 0)
            close(slow[i].fd);
    }
    for (int i = 0; i < IDLE; i++)
        if (idle_fd[i] >= 0)
            close(idle_fd[i]);
    SSL_CTX_free(ctx);
    yn_test_district_stop(srv, SIGTERM);
    curl_global_cleanup();
    printf("int_lockout: %d checks, %d failed\n", yn_checks, yn_failures);
    return yn_failures ? 1 : 0;
}
