/* district.c — see district.h. */
#include "district.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "config.h"
#include "keystore.h"

int yn_test_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

int yn_test_district_init(yn_test_district *d, const char *build, const char *dir)
{
    memset(d, 0, sizeof *d);
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    snprintf(d->bin, sizeof d->bin, "%s/yinian-district", build);
    const char *backend = getenv("YN_DISTRICT_BACKEND"), *pg_host = getenv("YN_PG_HOST");
    if (backend && !strcmp(backend, "postgresql")) {
        static int n;
        char name[64];
        if (!pg_host || !*pg_host) {
            fprintf(stderr,
                    "YN_DISTRICT_BACKEND=postgresql needs YN_PG_HOST (tests/with-postgres)\n");
            return -1;
        }
        snprintf(name, sizeof name, "yn_%d_%d", (int)getpid(), n++);
        if (yn_test_sh("psql -h '%s' -U postgres -d postgres -qAtc 'CREATE DATABASE %s'"
                       " >/dev/null",
                       pg_host, name) != 0) {
            fprintf(stderr, "cannot create PostgreSQL database %s at %s\n", name, pg_host);
            return -1;
        }
        snprintf(d->db, sizeof d->db, "host=%s user=postgres dbname=%s", pg_host, name);
        d->postgresql = 1;
    } else {
        snprintf(d->db, sizeof d->db, "%s/district.db", dir);
    }
    snprintf(d->ca, sizeof d->ca, "%s/ca.pem", dir);
    snprintf(d->cert, sizeof d->cert, "%s/server.pem", dir);
    snprintf(d->key, sizeof d->key, "%s/server.key", dir);
    snprintf(d->dkey, sizeof d->dkey, "%s/district.key", dir);
    snprintf(d->dpub, sizeof d->dpub, "%s/district.pub", dir);
    d->port = 20000 + (int)(getpid() % 20000);
    snprintf(d->url, sizeof d->url, "https://127.0.0.1:%d", d->port);
    if (yn_test_sh("rm -rf %s && mkdir -p %s && cd %s && openssl req -x509 -newkey ec -pkeyopt"
                   " ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem -days 2"
                   " -subj /CN=yn-test-ca 2>/dev/null && openssl req -newkey ec -pkeyopt"
                   " ec_paramgen_curve:P-256 -nodes -keyout server.key -out server.csr"
                   " -subj /CN=127.0.0.1 2>/dev/null &&"
                   " printf 'subjectAltName=IP:127.0.0.1\\n' > ext.cnf &&"
                   " openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
                   " -out server.pem -days 2 -extfile ext.cnf 2>/dev/null",
                   dir, dir, dir) != 0) {
        fprintf(stderr, "openssl could not make test certificates\n");
        return -1;
    }
    return yn_test_sh("%s keygen %s %s >/dev/null", d->bin, d->dkey, d->dpub) == 0 ? 0 : -1;
}

int yn_test_district_token(const yn_test_district *d, const char *terminal, char *tok, size_t len)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s --db '%s' enrol-token %s canteen-1", d->bin, d->db, terminal);
    FILE *p = popen(cmd, "r");
    int ok = p && fgets(tok, (int)len, p);
    if (p)
        pclose(p);
    if (!ok)
        return -1;
    tok[strcspn(tok, "\n")] = '\0';
    return 0;
}

static char serve_args[512];

void yn_test_district_serve_args(const char *args)
{
    snprintf(serve_args, sizeof serve_args, "%s", args ? args : "");
}

/* Until the server accepts connections (or has died): at most 20 s. */
static void wait_listening(const yn_test_district *d, pid_t pid)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    for (int i = 0; i < 1000; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        if (fd >= 0)
            close(fd);
        if (ok || waitpid(pid, NULL, WNOHANG) == pid)
            return;
        usleep(20000);
    }
}

pid_t yn_test_district_start(const yn_test_district *d, const char *district_key,
                             const char *faults)
{
    pid_t pid = fork();
    if (pid == 0) {
        char port[16], log[600], extra[512];
        const char *argv[64] = {d->bin,
                                "--db",
                                d->db,
                                "serve",
                                "--cert",
                                d->cert,
                                "--key",
                                d->key,
                                "--district-key",
                                district_key ? district_key : d->dkey,
                                "--listen",
                                "127.0.0.1",
                                "--port",
                                port,
                                "--slow-ms",
                                "2500",
                                "--faults",
                                faults ? faults : "none"};
        int n = 18;
        snprintf(port, sizeof port, "%d", d->port);
        snprintf(log, sizeof log, "%s/server.log", d->dir);
        snprintf(extra, sizeof extra, "%s", serve_args);
        for (char *save = NULL, *t = strtok_r(extra, " ", &save); t && n < 62;
             t = strtok_r(NULL, " ", &save))
            argv[n++] = t;
        argv[n] = NULL;
        if (!freopen(log, "a", stderr))
            _exit(126);
        execv(d->bin, (char *const *)argv);
        _exit(127);
    }
    if (pid > 0)
        wait_listening(d, pid);
    return pid;
}

int yn_test_district_enrol(const yn_test_district *d, const char *token, const char *key_path,
                           yn_test_key *k)
{
    char id[YN_LEDGER_ID_MAX];
    memset(k, 0, sizeof *k);
    yn_config_defaults(&k->cfg);
    snprintf(k->cfg.keys.backend, sizeof k->cfg.keys.backend, "file");
    snprintf(k->cfg.keys.terminal_key, sizeof k->cfg.keys.terminal_key, "%s", key_path);
    k->cfg.keys.card_master_key[0] = '\0';
    int rc = yn_keystore_open(&k->ks, NULL, &k->cfg.keys);
    for (int i = 0; rc == YN_OK && i < 100; i++) { /* the server may still be starting */
        if ((rc = yn_sync_enrol(d->url, d->ca, token, &k->ks, id, sizeof id)) == YN_OK)
            break;
        if (i < 99)
            rc = YN_OK;
        usleep(100000);
    }
    if (rc == YN_OK)
        rc = yn_key_file_load(key_path, true, "terminal key", k->key, sizeof k->key, &k->key_len);
    return rc;
}

void yn_test_key_close(yn_test_key *k)
{
    yn_keystore_close(&k->ks);
    explicit_bzero(k->key, sizeof k->key);
}

void yn_test_district_stop(pid_t pid, int sig)
{
    kill(pid, sig);
    waitpid(pid, NULL, 0);
}

int yn_test_district_sql(const yn_test_district *d, const char *sql)
{
    char path[800];
    snprintf(path, sizeof path, "%s/plant.sql", d->dir);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(sql, f);
    fclose(f);
    if (d->postgresql)
        return yn_test_sh("psql '%s' -v ON_ERROR_STOP=1 -qAt -f '%s' >/dev/null", d->db, path);
    return yn_test_sh("sqlite3 -bail '%s' < '%s' >/dev/null", d->db, path);
}

void yn_test_district_totals(const yn_test_district *d, const char *terminal,
                             long long out[YN_TOT_N])
{
    static const char *const names[YN_TOT_N] = {"records",        "price_fen",  "meal_subsidy_fen",
                                                "allocation_fen", "wallet_fen", "cash_fen"};
    char cmd[2048], line[512];
    int col[YN_TOT_N];
    snprintf(cmd, sizeof cmd, "%s --db '%s' report terminal", d->bin, d->db);
    FILE *p = popen(cmd, "r");
    memset(out, 0, YN_TOT_N * sizeof out[0]);
    for (int i = 0; i < YN_TOT_N; i++)
        col[i] = -1;
    for (int row = 0; p && fgets(line, sizeof line, p); row++) {
        line[strcspn(line, "\r\n")] = '\0';
        char *save = NULL, *cell[16];
        int n = 0;
        for (char *t = strtok_r(line, ",", &save); t && n < 16; t = strtok_r(NULL, ",", &save))
            cell[n++] = t;
        for (int i = 0; row == 0 && i < YN_TOT_N; i++) /* the header names the columns */
            for (int c = 0; c < n; c++)
                if (!strcmp(cell[c], names[i]))
                    col[i] = c;
        if (row > 0 && n > 0 && !strcmp(cell[0], terminal))
            for (int i = 0; i < YN_TOT_N; i++)
                out[i] = col[i] >= 0 && col[i] < n ? atoll(cell[col[i]]) : -1;
    }
    if (p)
        pclose(p);
}

static size_t on_reply_body(char *data, size_t size, size_t n, void *arg)
{
    yn_test_reply *r = arg;
    char *p = realloc(r->body, r->len + size * n + 1);
    if (!p)
        return 0;
    memcpy(p + r->len, data, size * n);
    r->body = p;
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

static size_t on_reply_header(char *data, size_t size, size_t n, void *arg)
{
    yn_test_reply *r = arg;
    char line[128];
    snprintf(line, sizeof line, "%.*s", (int)(size * n), data);
    if (strncasecmp(line, "X-YN-Held:", 10) == 0)
        r->held = atoll(line + 10);
    else if (strncasecmp(line, "X-YN-More:", 10) == 0)
        r->more = atoi(line + 10);
    else if (strncasecmp(line, "Retry-After:", 12) == 0)
        r->retry_after_s = atoi(line + 12);
    return size * n;
}

yn_test_reply yn_test_district_post(const yn_test_district *d, const char *method, const char *path,
                                    const void *body, size_t len, const uint8_t *mac_key,
                                    size_t key_len)
{
    yn_test_reply r = {.status = -1, .held = -1, .more = -1, .retry_after_s = -1};
    CURL *c = curl_easy_init();
    char u[256], mac_line[96] = "X-YN-MAC: ";
    snprintf(u, sizeof u, "%s%s", d->url, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/octet-stream");
    h = curl_slist_append(h, "Expect:");
    if (mac_key) {
        uint8_t mac[32];
        unsigned int mac_len = 32;
        HMAC(EVP_sha256(), mac_key, (int)key_len, body, len, mac, &mac_len);
        for (int i = 0; i < 32; i++)
            snprintf(mac_line + 10 + 2 * i, 3, "%02x", mac[i]);
        h = curl_slist_append(h, mac_line);
    }
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_CAINFO, d->ca);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_reply_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_reply_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    if (!r.body)
        r.body = calloc(1, 1);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

void yn_test_reply_free(yn_test_reply *r)
{
    free(r->body);
    r->body = NULL;
}

int yn_test_exit(int status)
{
    if (status == -1)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
