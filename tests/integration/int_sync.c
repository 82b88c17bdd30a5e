/* int_sync.c — sync end to end on loopback against a real yinian-district
 * process over TLS: enrolment, normal sync, replies lost to 5xx / reset /
 * truncation / corruption / slowness, the server killed and restarted, a
 * forged update. After recovery the server holds every record exactly once
 * and its totals agree with the terminal's to the fen. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "keystore.h"
#include "ledger.h"
#include "log.h"

static char dir[512], bin[600], db[700], ca[700], cert[700], key[700], dkey[700], dpub[700],
    ledger_path[700];
static int port;
static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

static pid_t start_server(const char *faults, const char *district_key)
{
    pid_t pid = fork();
    if (pid == 0) {
        char p[16];
        snprintf(p, sizeof p, "%d", port);
        execl(bin, bin, "--db", db, "serve", "--cert", cert, "--key", key, "--district-key",
              district_key, "--listen", "127.0.0.1", "--port", p, "--slow-ms", "2500", "--faults",
              faults, (char *)NULL);
        _exit(127);
    }
    usleep(300000);
    return pid;
}

static void stop_server(pid_t pid, int sig)
{
    kill(pid, sig);
    waitpid(pid, NULL, 0);
}

/* Server-side totals for this terminal: records, price, subsidy, wallet, cash. */
static void server_totals(long long out[5])
{
    char cmd[1600], line[256];
    snprintf(cmd, sizeof cmd, "%s --db %s report terminal", bin, db);
    FILE *p = popen(cmd, "r");
    memset(out, 0, 5 * sizeof out[0]);
    while (p && fgets(line, sizeof line, p))
        if (strncmp(line, "T-INT,", 6) == 0)
            sscanf(line + 6, "%lld,%lld,%lld,%lld,%lld", &out[0], &out[1], &out[2], &out[3],
                   &out[4]);
    if (p)
        pclose(p);
}

static int64_t n_records;
static int64_t sum_wallet, sum_cash;

static void add_records(yn_ledger *l, int n)
{
    for (int i = 0; i < n; i++) {
        yn_ledger_when w = {.utc_s = 1740970800 + n_records * 11, .mono_ms = n_records * 11000};
        yn_ledger_result r;
        char card[20];
        snprintf(card, sizeof card, "4403040010%04d", (int)(n_records % 300));
        int64_t amount = 500 + (n_records % 7) * 100;
        int rc = yn_ledger_topup(l, 1000 + n_records, card, amount, "staff01", &w, &r);
        CHECK(rc == YN_OK, "topup: %s", yn_strerror(rc));
        n_records++;
        sum_wallet -= amount;
        sum_cash += amount;
    }
}

/* Rounds with backoff until everything is acknowledged (bounded). */
static int sync_until_done(yn_sync *s, yn_ledger *l, int max_rounds)
{
    for (int round = 0; round < max_rounds; round++) {
        yn_sync_stats st;
        int rc = yn_sync_round(s, l, 1740990000, &st);
        int64_t count, age;
        if (rc == YN_OK && yn_ledger_unsent(l, 1740990000, &count, &age) == YN_OK && count == 0)
            return YN_OK;
        usleep((useconds_t)yn_sync_backoff_ms(round < 3 ? round : 3, 50, 400) * 1000);
    }
    return YN_ETIMEDOUT;
}

static void check_agree(const char *when)
{
    long long t[5];
    server_totals(t);
    CHECK(t[0] == n_records, "%s: server holds %lld records, terminal made %lld", when, t[0],
          (long long)n_records);
    CHECK(t[3] == sum_wallet && t[4] == sum_cash,
          "%s: totals differ: wallet %lld/%lld cash %lld/%lld", when, t[3], (long long)sum_wallet,
          t[4], (long long)sum_cash);
}

int main(void)
{
    yn_log_init("int_sync", YN_LOG_WARN, false);
    const char *build = getenv("BUILD"), *tmp = getenv("TMPDIR");
    if (!build)
        build = "build/host";
    snprintf(dir, sizeof dir, "%s/sync", tmp && *tmp ? tmp : "/tmp");
    sh("rm -rf %s && mkdir -p %s", dir, dir);
    snprintf(bin, sizeof bin, "%s/yinian-district", build);
    snprintf(db, sizeof db, "%s/district.db", dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    snprintf(cert, sizeof cert, "%s/server.pem", dir);
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(dkey, sizeof dkey, "%s/district.key", dir);
    snprintf(dpub, sizeof dpub, "%s/district.pub", dir);
    snprintf(ledger_path, sizeof ledger_path, "%s/ledger.db", dir);
    port = 20000 + (int)(getpid() % 20000);

    /* test certificates: a CA and a server certificate for 127.0.0.1 */
    if (sh("cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
           " -keyout ca.key -out ca.pem -days 2 -subj /CN=yn-test-ca 2>/dev/null &&"
           " openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key"
           " -out server.csr -subj /CN=127.0.0.1 2>/dev/null &&"
           " printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf &&"
           " openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
           " -out server.pem -days 2 -extfile ext.cnf 2>/dev/null",
           dir) != 0) {
        fprintf(stderr, "openssl could not make test certificates\n");
        return 1;
    }
    CHECK(sh("%s keygen %s %s", bin, dkey, dpub) == 0, "keygen");
    char token[64] = "";
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s --db %s enrol-token T-INT canteen-1", bin, db);
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(token, sizeof token, p))
        return 1;
    pclose(p);
    token[strcspn(token, "\n")] = '\0';

    pid_t srv = start_server("none", dkey);
    char url[64], term[YN_LEDGER_ID_MAX], tkey[700];
    snprintf(url, sizeof url, "https://127.0.0.1:%d", port);
    snprintf(tkey, sizeof tkey, "%s/terminal.key", dir);
    int rc = yn_sync_enrol(url, ca, token, tkey, term, sizeof term);
    CHECK(rc == YN_OK && strcmp(term, "T-INT") == 0, "enrol: %s", yn_strerror(rc));
    rc = yn_sync_enrol(url, ca, token, tkey, term, sizeof term);
    CHECK(rc != YN_OK, "a used token must be refused");

    uint8_t kb[64], pub[64];
    size_t kl, pl;
    CHECK(yn_key_file_load(tkey, true, "terminal key", kb, sizeof kb, &kl) == YN_OK && kl == 32,
          "terminal key file 0600 with 32 bytes");
    CHECK(yn_key_file_load(dpub, false, "district key", pub, sizeof pub, &pl) == YN_OK && pl == 32,
          "district public key");
    yn_sync_opts so = {.url = url,
                       .ca_file = ca,
                       .terminal_id = "T-INT",
                       .terminal_key = kb,
                       .terminal_key_len = kl,
                       .max_batch_records = 40,
                       .timeout_ms = 1500};
    memcpy(so.district_pub, pub, 32);
    yn_sync *s;
    CHECK(yn_sync_new(&so, &s) == YN_OK, "sync new");
    yn_sync_opts plain = so;
    plain.url = "http://127.0.0.1:1";
    yn_sync *bad;
    CHECK(yn_sync_new(&plain, &bad) == YN_ECONFIG, "http:// must be refused");

    yn_ledger_opts lo = {.path = ledger_path, .terminal_id = "T-INT"};
    yn_ledger *l;
    if (yn_ledger_open(&lo, &l) != YN_OK)
        return 1;

    /* 1. normal sync, with district data coming down */
    sh("printf 'card_no,birth_ymd,flags,district,street,expiry_ymd\\n44030400100001,19400101,1,"
       "440304,440304001,20301231\\n' > %s/cards.csv && %s --db %s import-cards %s/cards.csv"
       " >/dev/null && %s --db %s lost 44030400100002 && %s --db %s allocate A-1 44030400100001"
       " district 3000",
       dir, bin, db, dir, bin, db, bin, db);
    add_records(l, 100);
    rc = sync_until_done(s, l, 5);
    CHECK(rc == YN_OK, "normal sync: %s", yn_strerror(rc));
    n_records++; /* the allocation A-1 became a journal record, uploaded next round */
    sum_wallet -= 3000;
    sum_cash += 0;
    rc = sync_until_done(s, l, 5);
    CHECK(rc == YN_OK, "second round: %s", yn_strerror(rc));
    int64_t bl;
    CHECK(yn_ledger_blacklist_seq(l, &bl) == YN_OK && bl == 1, "blacklist delta applied");
    check_agree("normal sync");

    /* 2. every kind of lost reply, then recovery */
    stop_server(srv, SIGTERM);
    srv = start_server("500,reset,truncate,corrupt,slow,500,reset", dkey);
    add_records(l, 200);
    rc = sync_until_done(s, l, 40);
    CHECK(rc == YN_OK, "sync through faults: %s", yn_strerror(rc));
    check_agree("after faults");

    /* 3. server killed (SIGKILL) and restarted between and during uploads */
    for (int k = 0; k < 3; k++) {
        add_records(l, 120);
        yn_sync_stats st;
        pid_t child = fork();
        if (child == 0) { /* kill the server while the parent uploads */
            usleep(20000 + (useconds_t)k * 15000);
            kill(srv, SIGKILL);
            _exit(0);
        }
        int killed_rc = yn_sync_round(s, l, 1740990000, &st);
        (void)killed_rc; /* may fail: the server dies under it */
        waitpid(child, NULL, 0);
        waitpid(srv, NULL, 0);
        srv = start_server("none", dkey);
        rc = sync_until_done(s, l, 20);
        CHECK(rc == YN_OK, "after kill %d: %s", k, yn_strerror(rc));
    }
    check_agree("after kills");

    /* 4. a forged update (signed by another key) changes nothing */
    char fkey[700], fpub[700];
    snprintf(fkey, sizeof fkey, "%s/forged.key", dir);
    snprintf(fpub, sizeof fpub, "%s/forged.pub", dir);
    sh("%s keygen %s %s", bin, fkey, fpub);
    stop_server(srv, SIGTERM);
    srv = start_server("none", fkey);
    sh("%s --db %s lost 44030400100003", bin, db);
    bool more;
    rc = yn_sync_update_one(s, l, &more);
    CHECK(rc == YN_EAUTH, "forged update must be refused: %s", yn_strerror(rc));
    CHECK(yn_ledger_blacklist_seq(l, &bl) == YN_OK && bl == 1, "forged update changed nothing");
    stop_server(srv, SIGTERM);
    srv = start_server("none", dkey);
    rc = yn_sync_update_one(s, l, &more);
    CHECK(rc == YN_OK, "genuine update after the forged one: %s", yn_strerror(rc));
    CHECK(yn_ledger_blacklist_seq(l, &bl) == YN_OK && bl == 2, "blacklist now at 2");

    /* 5. hostile batch: wrong key gets 401 and changes nothing */
    uint8_t wrong[32] = {7};
    yn_sync_opts wo = so;
    wo.terminal_key = wrong;
    wo.terminal_key_len = 32;
    yn_sync *ws;
    CHECK(yn_sync_new(&wo, &ws) == YN_OK, "sync new");
    add_records(l, 5);
    int64_t n;
    rc = yn_sync_upload_one(ws, l, 1740990000, &n);
    CHECK(rc == YN_EAUTH, "bad HMAC must get 401: %s", yn_strerror(rc));
    yn_sync_free(ws);
    rc = sync_until_done(s, l, 5);
    CHECK(rc == YN_OK, "final sync: %s", yn_strerror(rc));
    check_agree("final");

    stop_server(srv, SIGTERM);
    yn_sync_free(s);
    yn_ledger_close(l);
    if (failures)
        fprintf(stderr, "int_sync: %d failures\n", failures);
    else
        printf("int_sync: ok (%lld records, exactly once, totals agree)\n", (long long)n_records);
    return failures ? 1 : 0;
}
