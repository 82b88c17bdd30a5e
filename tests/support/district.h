/* district.h — a reference district server for tests on loopback: test
 * certificates for 127.0.0.1, a district key pair, tokens, start/stop, and
 * the server's totals for a terminal. */
#ifndef YN_TEST_DISTRICT_H
#define YN_TEST_DISTRICT_H

#include <stddef.h>
#include <sys/types.h>

typedef struct yn_test_district {
    char dir[512]; /* everything lives here */
    char bin[600]; /* the yinian-district program */
    char db[700], ca[700], cert[700], key[700], dkey[700], dpub[700];
    int port;     /* on 127.0.0.1 */
    char url[64]; /* https://127.0.0.1:port */
} yn_test_district;

/* system() of a formatted command. */
int yn_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A fresh dir with test certificates and a district key pair. 0 on success. */
int yn_test_district_init(yn_test_district *d, const char *build, const char *dir);
/* A one-time enrolment token for terminal (make it before the server runs). */
int yn_test_district_token(const yn_test_district *d, const char *terminal, char *tok, size_t len);
/* Start `serve` signing with district_key (NULL: d->dkey) and faults (NULL:
 * none); its stderr is appended to dir/server.log. */
pid_t yn_test_district_start(const yn_test_district *d, const char *district_key,
                             const char *faults);
void yn_test_district_stop(pid_t pid, int sig);
/* The server's report for terminal: records, price, subsidy, wallet, cash (fen). */
void yn_test_district_totals(const yn_test_district *d, const char *terminal, long long out[5]);

#endif
