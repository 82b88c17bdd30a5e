/* district.c — see district.h. */
#include "district.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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
    snprintf(d->db, sizeof d->db, "%s/district.db", dir);
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
    snprintf(cmd, sizeof cmd, "%s --db %s enrol-token %s canteen-1", d->bin, d->db, terminal);
    FILE *p = popen(cmd, "r");
    int ok = p && fgets(tok, (int)len, p);
    if (p)
        pclose(p);
    if (!ok)
        return -1;
    tok[strcspn(tok, "\n")] = '\0';
    return 0;
}

pid_t yn_test_district_start(const yn_test_district *d, const char *district_key,
                             const char *faults)
{
    pid_t pid = fork();
    if (pid == 0) {
        char port[16], log[600];
        snprintf(port, sizeof port, "%d", d->port);
        snprintf(log, sizeof log, "%s/server.log", d->dir);
        if (!freopen(log, "a", stderr))
            _exit(126);
        execl(d->bin, d->bin, "--db", d->db, "serve", "--cert", d->cert, "--key", d->key,
              "--district-key", district_key ? district_key : d->dkey, "--listen", "127.0.0.1",
              "--port", port, "--slow-ms", "2500", "--faults", faults ? faults : "none",
              (char *)NULL);
        _exit(127);
    }
    usleep(300000);
    return pid;
}

void yn_test_district_stop(pid_t pid, int sig)
{
    kill(pid, sig);
    waitpid(pid, NULL, 0);
}

void yn_test_district_totals(const yn_test_district *d, const char *terminal, long long out[5])
{
    char cmd[2048], line[256], prefix[40];
    snprintf(cmd, sizeof cmd, "%s --db %s report terminal", d->bin, d->db);
    snprintf(prefix, sizeof prefix, "%s,", terminal);
    FILE *p = popen(cmd, "r");
    memset(out, 0, 5 * sizeof out[0]);
    while (p && fgets(line, sizeof line, p))
        if (strncmp(line, prefix, strlen(prefix)) == 0)
            sscanf(line + strlen(prefix), "%lld,%lld,%lld,%lld,%lld", &out[0], &out[1], &out[2],
                   &out[3], &out[4]);
    if (p)
        pclose(p);
}
