/* nfc_libnfc.c — the "libnfc" reader backend: a PN532 (or any libnfc reader)
 * reading 颐年卡 DESFire and Classic cards.
 *
 * These ops are thin proxies. Each operation travels as one request over a
 * socketpair to a worker child (hal/nfc/nfc_libnfc_child.c) that owns libnfc; the
 * parent waits with poll() for at most a budget derived from
 * [reader] timeout_ms. If the worker dies (libnfc abort()s when a PN532 status
 * byte has bit 0x80 — a hostile card can cause that — or it crashes) or
 * overruns its budget, the parent kills and reaps it, starts a new one at once
 * (re-opening the reader) and fails only that operation: YN_EIO for a death,
 * YN_ETIMEDOUT for an overrun. One failed tap, never a dead terminal.
 *
 * hal/nfc/READER.md: the design, the card layouts, the error mapping, and why not
 * libfreefare. */
#include "nfc_libnfc.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "timeutil.h"

/* How long a worker may take to open the reader and greet. */
#define OPEN_BUDGET_MS 4000
/* After the reader could not be opened, do not try again before this. */
#define RETRY_BACKOFF_MS 1000
/* How long close waits for the worker to power the reader down. */
#define QUIT_BUDGET_MS 1000

struct lnfc {
    char connstring[YN_LNFC_CONN_MAX];
    int timeout_ms;          /* per exchange with the card, from board.conf */
    int rf_kbps;             /* ISO-DEP bit rate after activation, from board.conf */
    bool type_b;             /* list ISO 14443-B cards too ([reader] type_b) */
    size_t record_len;       /* bytes of a card record */
    pid_t child;             /* worker, or 0 */
    int sock;                /* our end of the socketpair, or -1 */
    uint32_t seq;            /* last request number */
    bool crashed;            /* the last worker died: clear its claim on the port */
    int64_t retry_after_ms;  /* monotonic: no restart attempt before this */
    unsigned restarts;       /* workers restarted after a death or overrun */
    int64_t last_restart_ms; /* how long the last restart took */
    char describe[YN_LNFC_TEXT_MAX];
};

static struct lnfc *L(const yn_nfc *dev)
{
    return dev->priv;
}

/* The budget of one operation: every exchange has timeout_ms, an operation is a
 * handful of exchanges (a DESFire read: select, 2 × auth, 1–3 × read), libnfc
 * sleeps 50 ms after a failed frame and bounds a card listing at 300 ms. */
static int op_budget_ms(const struct lnfc *s, int extra_ms)
{
    return 4 * s->timeout_ms + 300 + 500 + extra_ms;
}

/* Why a worker ended, for the log. */
static void describe_exit(int status, char *buf, size_t len)
{
    if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, len, "ended");
}

/* Kill (if still running) and reap the worker. */
static void stop_child(struct lnfc *s, char *why, size_t why_len)
{
    if (why_len)
        snprintf(why, why_len, "gone");
    if (s->sock >= 0) {
        close(s->sock);
        s->sock = -1;
    }
    if (s->child <= 0)
        return;
    int status = 0;
    pid_t r = waitpid(s->child, &status, WNOHANG);
    if (r <= 0)
        kill(s->child, SIGKILL); /* r < 0: SIGCHLD ignored, the kernel reaps it */
    while (r == 0) {
        r = waitpid(s->child, &status, 0);
        if (r < 0 && errno == EINTR)
            r = 0;
    }
    if (r == s->child && why_len)
        describe_exit(status, why, why_len);
    s->child = 0;
}

/* Wait for the answer numbered seq. YN_OK; YN_ETIMEDOUT when the budget is
 * spent; YN_EIO when the worker is gone or talks nonsense. */
static int wait_answer(struct lnfc *s, uint32_t seq, int budget_ms, yn_lnfc_rsp *rs)
{
    int64_t deadline = yn_time_mono_ms() + budget_ms;
    for (;;) {
        int64_t left = deadline - yn_time_mono_ms();
        struct pollfd p = {.fd = s->sock, .events = POLLIN};
        int r = poll(&p, 1, left > 0 ? (int)left : 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return YN_EIO;
        if (r == 0)
            return YN_ETIMEDOUT;
        ssize_t n = recv(s->sock, rs, sizeof *rs, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n != (ssize_t)sizeof *rs)
            return YN_EIO; /* 0: the worker closed its end — it died */
        if (rs->seq == seq)
            return YN_OK;
        /* a late answer to an operation we already gave up on: drop it */
    }
}

/* The worker's side of the fork: never returns. */
static void run_child(struct lnfc *s, int sock, pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* the worker never outlives the terminal */
    if (getppid() != parent)
        _exit(0);
    /* default dispositions: the parent's handlers are not ours */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    /* an abort() provoked by a hostile card must not fill the disk with cores */
    struct rlimit no_core = {0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    /* keep stdio and the socket, drop the rest of the parent's descriptors */
    if (sock != 3) {
        if (dup2(sock, 3) < 0)
            _exit(1);
        sock = 3;
    }
    close_range(4, ~0U, 0);
    yn_lnfc_child_main(sock, s->connstring, s->timeout_ms, s->rf_kbps, s->type_b, s->record_len,
                       s->crashed);
}

/* Start a worker and wait for its greeting. */
static int start_child(struct lnfc *s)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        yn_err("reader: socketpair: %s", strerror(errno));
        return YN_EIO;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        yn_err("reader: fork: %s", strerror(errno));
        close(sv[0]);
        close(sv[1]);
        return YN_EIO;
    }
    if (pid == 0) {
        close(sv[0]);
        run_child(s, sv[1], parent);
    }
    close(sv[1]);
    s->sock = sv[0];
    s->child = pid;
    yn_lnfc_rsp rs;
    int rc = wait_answer(s, 0, OPEN_BUDGET_MS, &rs);
    if (rc == YN_OK)
        rc = rs.status;
    if (rc != YN_OK) {
        char why[96];
        stop_child(s, why, sizeof why);
        s->retry_after_ms = yn_time_mono_ms() + RETRY_BACKOFF_MS;
        yn_err("reader: %s: %s", s->connstring,
               rc == YN_ETIMEDOUT ? "the reader did not answer while opening"
               : rs.text[0]       ? rs.text
                                  : why);
        return rc == YN_ENODEV || rc == YN_ETIMEDOUT || rc == YN_EIO ? YN_ENODEV : rc;
    }
    s->crashed = false;
    snprintf(s->describe, sizeof s->describe, "%s", rs.text);
    return YN_OK;
}

/* Replace a worker that died or overran: at once, once; logged. */
static void restart_child(struct lnfc *s, const char *what, const char *how)
{
    char why[96];
    stop_child(s, why, sizeof why);
    s->crashed = true;
    s->restarts++;
    int64_t t0 = yn_time_mono_ms();
    int rc = start_child(s);
    s->last_restart_ms = yn_time_mono_ms() - t0;
    if (rc == YN_OK)
        yn_warn("reader: libnfc worker %s during %s (%s); restarted in %lld ms (restart %u)", how,
                what, why, (long long)s->last_restart_ms, s->restarts);
    else
        yn_err("reader: libnfc worker %s during %s (%s); restart failed: %s — will retry", how,
               what, why, yn_strerror(rc));
}

static int ensure_child(struct lnfc *s)
{
    if (s->child > 0)
        return YN_OK;
    if (yn_time_mono_ms() < s->retry_after_ms)
        return YN_ENODEV;
    return start_child(s);
}

/* One operation through the worker. */
static int call(struct lnfc *s, yn_lnfc_req *rq, yn_lnfc_rsp *rs, int budget_ms, const char *what)
{
    int rc = ensure_child(s);
    if (rc != YN_OK)
        return rc;
    if (++s->seq == 0)
        s->seq = 1;
    rq->seq = s->seq;
    ssize_t n;
    do
        n = send(s->sock, rq, sizeof *rq, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof *rq) {
        restart_child(s, what, "was gone");
        return YN_EIO;
    }
    rc = wait_answer(s, rq->seq, budget_ms, rs);
    if (rc == YN_ETIMEDOUT) {
        restart_child(s, what, "overran its budget");
        return YN_ETIMEDOUT;
    }
    if (rc != YN_OK) {
        restart_child(s, what, "died");
        return YN_EIO;
    }
    if (rs->status == YN_ENODEV) {
        /* the reader itself is gone: drop the worker, reopen later */
        char why[96];
        stop_child(s, why, sizeof why);
        s->crashed = true; /* killed holding the port: its claim is stale */
        s->retry_after_ms = yn_time_mono_ms() + RETRY_BACKOFF_MS;
        yn_err("reader: %s: %s", s->connstring, rs->text[0] ? rs->text : "reader gone");
    } else if (rs->status != YN_OK && rs->status != YN_ENOCARD && rs->text[0]) {
        yn_debug("reader: %s: %s (%s)", what, yn_strerror(rs->status), rs->text);
    }
    return rs->status;
}

static int lnfc_open(yn_nfc *dev, const yn_nfc_conf *cfg)
{
    if (!cfg || !cfg->connstring[0])
        return YN_ECONFIG;
    struct lnfc *s = calloc(1, sizeof *s);
    if (!s)
        return YN_ENOMEM;
    snprintf(s->connstring, sizeof s->connstring, "%s", cfg->connstring);
    s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 300;
    s->rf_kbps = cfg->rf_kbps;
    s->record_len = cfg->record_len;
    s->type_b = cfg->type_b;
    s->sock = -1;
    dev->priv = s;
    int rc = start_child(s);
    if (rc != YN_OK) {
        free(s);
        dev->priv = NULL;
        return rc;
    }
    yn_info("reader: %s", s->describe);
    return YN_OK;
}

static void lnfc_close(yn_nfc *dev)
{
    struct lnfc *s = L(dev);
    if (!s)
        return;
    if (s->child > 0 && s->sock >= 0) {
        /* ask politely (the worker powers the reader down), then wait or kill */
        yn_lnfc_req rq;
        memset(&rq, 0, sizeof rq);
        rq.op = YN_LNFC_QUIT;
        if (send(s->sock, &rq, sizeof rq, MSG_NOSIGNAL) == (ssize_t)sizeof rq) {
            struct pollfd p = {.fd = s->sock, .events = POLLIN};
            int64_t deadline = yn_time_mono_ms() + QUIT_BUDGET_MS;
            int status;
            while (waitpid(s->child, &status, WNOHANG) == 0 && yn_time_mono_ms() < deadline) {
                if (poll(&p, 1, 20) > 0) {
                    char b;
                    if (recv(s->sock, &b, 1, MSG_DONTWAIT) == 0)
                        p.fd = -1; /* closed: the worker is exiting */
                }
            }
            if (waitpid(s->child, &status, WNOHANG) != 0)
                s->child = 0;
        }
    }
    char why[96];
    stop_child(s, why, sizeof why);
    free(s);
    dev->priv = NULL;
}

static int lnfc_poll(yn_nfc *dev, int timeout_ms, yn_nfc_tag *tag)
{
    struct lnfc *s = L(dev);
    yn_lnfc_req rq;
    yn_lnfc_rsp rs;
    memset(&rq, 0, sizeof rq);
    rq.op = YN_LNFC_POLL;
    rq.timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    int rc = call(s, &rq, &rs, op_budget_ms(s, rq.timeout_ms), "card poll");
    if (rc == YN_OK)
        *tag = rs.tag;
    return rc;
}

static int lnfc_read(yn_nfc *dev, const yn_nfc_tag *tag, enum yn_nfc_area area,
                     const uint8_t key[YN_NFC_KEY_LEN], uint8_t *buf, size_t cap, size_t *len)
{
    struct lnfc *s = L(dev);
    yn_lnfc_req rq;
    yn_lnfc_rsp rs;
    memset(&rq, 0, sizeof rq);
    rq.op = YN_LNFC_READ;
    rq.area = (uint8_t)area;
    rq.tag = *tag;
    memcpy(rq.key, key, YN_NFC_KEY_LEN);
    int rc = call(s, &rq, &rs, op_budget_ms(s, 0),
                  area == YN_NFC_AREA_RECORD ? "record read" : "stamp read");
    memset(rq.key, 0, sizeof rq.key);
    if (rc != YN_OK)
        return rc;
    if (rs.len > sizeof rs.data)
        return YN_EPROTO;
    if (rs.len > cap)
        return YN_ELIMIT;
    memcpy(buf, rs.data, rs.len);
    *len = rs.len;
    return YN_OK;
}

static int lnfc_read_card(yn_nfc *dev, const yn_nfc_tag *tag, const uint8_t key[YN_NFC_KEY_LEN],
                          unsigned flags, yn_nfc_card_data *out)
{
    struct lnfc *s = L(dev);
    yn_lnfc_req rq;
    yn_lnfc_rsp rs;
    memset(&rq, 0, sizeof rq);
    rq.op = YN_LNFC_READ_CARD;
    rq.tag = *tag;
    rq.flags = (uint8_t)flags;
    memcpy(rq.key, key, YN_NFC_KEY_LEN);
    rs.kind = YN_CARD_KIND_OURS;
    int rc = call(s, &rq, &rs, op_budget_ms(s, 0), "card read");
    explicit_bzero(rq.key, sizeof rq.key);
    out->kind = rs.kind;
    if (rc != YN_OK)
        return rc;
    if (rs.len > sizeof out->record || rs.stamp_len > sizeof out->stamp)
        return YN_EPROTO;
    memcpy(out->record, rs.data, rs.len);
    out->record_len = rs.len;
    memcpy(out->stamp, rs.stamp, rs.stamp_len);
    out->stamp_len = rs.stamp_len;
    return YN_OK;
}

static int lnfc_write(yn_nfc *dev, const yn_nfc_tag *tag, enum yn_nfc_area area,
                      const uint8_t key[YN_NFC_KEY_LEN], const uint8_t *buf, size_t len)
{
    struct lnfc *s = L(dev);
    yn_lnfc_req rq;
    yn_lnfc_rsp rs;
    if (len > sizeof rq.data)
        return YN_ELIMIT;
    memset(&rq, 0, sizeof rq);
    rq.op = YN_LNFC_WRITE;
    rq.area = (uint8_t)area;
    rq.tag = *tag;
    memcpy(rq.key, key, YN_NFC_KEY_LEN);
    memcpy(rq.data, buf, len);
    rq.len = (uint16_t)len;
    int rc = call(s, &rq, &rs, op_budget_ms(s, 0),
                  area == YN_NFC_AREA_RECORD ? "record write" : "stamp write");
    memset(rq.key, 0, sizeof rq.key);
    return rc;
}

/* The issuing desk's requests: many exchanges (a Classic format authenticates
 * 15 sectors, re-selecting the card after each refused key), so a budget of
 * ISSUE_EXCHANGES × timeout_ms on top of the usual one. */
#define ISSUE_EXCHANGES 120

static void issue_request(yn_lnfc_req *rq, const yn_nfc_tag *tag, const yn_nfc_issue_keys *keys)
{
    rq->tag = *tag;
    memcpy(rq->key, keys->card_key, YN_NFC_KEY_LEN);
    memcpy(rq->issuer_key, keys->issuer_key, YN_NFC_KEY_LEN);
    memcpy(rq->picc_key, keys->picc_key, sizeof rq->picc_key);
    rq->picc_key_type = keys->picc_key_type;
    rq->has_picc_key = keys->has_picc_key;
    memcpy(rq->new_picc_key, keys->new_picc_key, YN_NFC_KEY_LEN);
    rq->has_new_picc_key = keys->has_new_picc_key;
    rq->key_version = keys->key_version;
}

static int lnfc_format(yn_nfc *dev, const yn_nfc_tag *tag, const yn_nfc_issue_keys *keys,
                       size_t record_size, unsigned flags)
{
    struct lnfc *s = L(dev);
    yn_lnfc_req rq;
    yn_lnfc_rsp rs;
    if (record_size == 0 || record_size > UINT16_MAX)
        return YN_ELIMIT;
    memset(&rq, 0, sizeof rq);
    rq.op = YN_LNFC_FORMAT;
    issue_request(&rq, tag, keys);
    rq.record_size = (uint16_t)record_size;
    rq.flags = (uint8_t)flags;
    rs.text[0] = '\0';
    int rc = call(s, &rq, &rs, op_budget_ms(s, ISSUE_EXCHANGES * s->timeout_ms), "card format");
    explicit_bzero(&rq, sizeof rq);
    if (rc != YN_OK && rs.text[0] && rc != YN_EIO && rc != YN_ETIMEDOUT)
        yn_err("reader: card format: %s (%s)", yn_strerror(rc), rs.text);
    return rc;
}

static int lnfc_issue(yn_nfc *dev, const yn_nfc_tag *tag, const yn_nfc_issue_keys *keys,
                      const uint8_t *record, size_t len)
{
    struct lnfc *s = L(dev);
    yn_lnfc_req rq;
    yn_lnfc_rsp rs;
    if (len == 0 || len > sizeof rq.data)
        return YN_ELIMIT;
    memset(&rq, 0, sizeof rq);
    rq.op = YN_LNFC_ISSUE;
    issue_request(&rq, tag, keys);
    memcpy(rq.data, record, len);
    rq.len = (uint16_t)len;
    rs.text[0] = '\0';
    int rc = call(s, &rq, &rs, op_budget_ms(s, ISSUE_EXCHANGES * s->timeout_ms), "card issue");
    explicit_bzero(&rq, sizeof rq);
    if (rc != YN_OK && rs.text[0] && rc != YN_EIO && rc != YN_ETIMEDOUT)
        yn_err("reader: card issue: %s (%s)", yn_strerror(rc), rs.text);
    return rc;
}

static int lnfc_release(yn_nfc *dev)
{
    struct lnfc *s = L(dev);
    yn_lnfc_req rq;
    yn_lnfc_rsp rs;
    memset(&rq, 0, sizeof rq);
    rq.op = YN_LNFC_RELEASE;
    return call(s, &rq, &rs, op_budget_ms(s, 0), "card release");
}

static int lnfc_describe(yn_nfc *dev, char *buf, size_t len)
{
    struct lnfc *s = L(dev);
    int rc = ensure_child(s);
    if (rc != YN_OK) {
        snprintf(buf, len, "libnfc reader %s: not available", s->connstring);
        return rc;
    }
    if (s->restarts)
        snprintf(buf, len, "%s, worker restarted %u times (last took %lld ms)", s->describe,
                 s->restarts, (long long)s->last_restart_ms);
    else
        snprintf(buf, len, "%s", s->describe);
    return YN_OK;
}

const yn_nfc_ops yn_nfc_libnfc_ops = {
    .name = "libnfc",
    .open = lnfc_open,
    .close = lnfc_close,
    .poll = lnfc_poll,
    .read_card = lnfc_read_card,
    .read = lnfc_read,
    .write = lnfc_write,
    .release = lnfc_release,
    .describe = lnfc_describe,
    .format = lnfc_format,
    .issue = lnfc_issue,
};
