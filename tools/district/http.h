/* http.h — the district's HTTPS front (PROTOCOL.md §1): libmicrohttpd with
 * epoll and a pool of threads, so slow or idle clients cannot lock terminals
 * out — connections are bounded in number (>= 10,000, RLIMIT_NOFILE raised
 * to fit), per client address, in idle time and in the memory their bodies
 * may hold — and the four endpoints over the storage (db.h), one database
 * handle per worker thread. --faults make replies misbehave on cue for the
 * tests (as libmodbus's unit-test server does). Deployment: tools/DISTRICT.md. */
#ifndef YN_DISTRICT_HTTP_H
#define YN_DISTRICT_HTTP_H

#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "db.h"

enum yn_http_fault {
    YN_FAULT_NONE,
    YN_FAULT_503,
    YN_FAULT_RESET,
    YN_FAULT_SLOW,
    YN_FAULT_TRUNCATE,
    YN_FAULT_CORRUPT
};

#define YN_HTTP_FAULTS_MAX 64

typedef struct yn_http_opts {
    const char *db_where; /* each worker thread opens its own handle on it */
    yn_db_opts db;
    const char *cert_pem, *key_pem; /* PEM text of the TLS certificate and key */
    uint8_t district_priv[32];      /* Ed25519 key that signs update documents */
    struct sockaddr_in listen;
    unsigned threads;         /* worker threads (each its own epoll) */
    unsigned max_connections; /* all clients together */
    unsigned per_ip;          /* connections from one address */
    unsigned timeout_s;       /* a connection idle this long is closed */
    size_t body_budget;       /* bytes of request bodies held at once, all clients */
    enum yn_http_fault faults[YN_HTTP_FAULTS_MAX]; /* applied to successive 200s */
    int n_faults;
    int slow_ms; /* YN_FAULT_SLOW */
} yn_http_opts;

/* Serve until *stop becomes non-zero. 0, or 1 when the server cannot start
 * (the reason on stderr). */
int yn_http_serve(yn_http_opts *opts, volatile sig_atomic_t *stop);

#endif
