/* district.h — a reference district server for tests on loopback: test
 * certificates for 127.0.0.1, a district key pair, tokens, start/stop, and
 * the server's totals for a terminal. The storage is an SQLite file, or with
 * YN_DISTRICT_BACKEND=postgresql a fresh database in the throwaway cluster
 * whose socket folder is YN_PG_HOST (tests/with-postgres starts it). */
#ifndef YN_TEST_DISTRICT_H
#define YN_TEST_DISTRICT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "keystore.h"

typedef struct yn_test_district {
    char dir[512]; /* everything lives here */
    char bin[600]; /* the yinian-district program */
    char db[700];  /* the --db argument: a file, or a PostgreSQL conninfo */
    char ca[700], cert[700], key[700], dkey[700], dpub[700];
    int postgresql; /* 1 when db is a PostgreSQL database */
    int port;       /* on 127.0.0.1 */
    char url[64];   /* https://127.0.0.1:port */
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
/* A terminal's key for these tests: in a key file (the tests play the
 * district too, which needs its bytes), its keystore open on that file. */
typedef struct yn_test_key {
    yn_config cfg;  /* [keys] backend = file, terminal_key = the file */
    yn_keystore ks; /* open while the key is in use (yn_test_key_close) */
    uint8_t key[64];
    size_t key_len;
} yn_test_key;
/* Enrol with token (retried while the server is not up yet, up to 10 s): the
 * terminal key is written to key_path, read back into k->key and the
 * keystore k->ks left open on it. YN_OK or the last status. */
int yn_test_district_enrol(const yn_test_district *d, const char *token, const char *key_path,
                           yn_test_key *k);
void yn_test_key_close(yn_test_key *k);
/* Run SQL on the district's database (sqlite3 or psql): for tests that plant
 * what an older server let in. 0 on success. */
int yn_test_district_sql(const yn_test_district *d, const char *sql);
/* Extra arguments for `serve` (e.g. "--threads 8"), NULL for none: set before start. */
void yn_test_district_serve_args(const char *args);

/* A reply from the server (yn_test_reply_free it). */
typedef struct yn_test_reply {
    long status; /* HTTP status, -1 when no reply */
    char *body;  /* NUL-terminated */
    size_t len;
    long long held;    /* X-YN-Held, -1 if absent */
    int more;          /* X-YN-More, -1 if absent */
    int retry_after_s; /* Retry-After, -1 if absent */
} yn_test_reply;

/* method (POST, GET) to path with body; signed with X-YN-MAC when mac_key. */
yn_test_reply yn_test_district_post(const yn_test_district *d, const char *method, const char *path,
                                    const void *body, size_t len, const uint8_t *mac_key,
                                    size_t key_len);
void yn_test_reply_free(yn_test_reply *r);
/* The exit status of a shell command (system() decoded; 128+N for a signal). */
int yn_test_exit(int system_status);

/* The server's `report terminal` columns for one terminal. */
enum {
    YN_TOT_RECORDS,
    YN_TOT_PRICE,
    YN_TOT_MEAL_SUBSIDY,
    YN_TOT_ALLOCATION,
    YN_TOT_WALLET,
    YN_TOT_CASH,
    YN_TOT_N
};
void yn_test_district_totals(const yn_test_district *d, const char *terminal,
                             long long out[YN_TOT_N]);

#endif
