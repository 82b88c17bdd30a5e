/* bench_district.c — the district at a city's lunch, on each storage backend
 * (SQLite; PostgreSQL when tests/with-postgres runs a cluster):
 *
 * - district_lunch_<backend>_records_per_s, _p99_ms: 1,000 terminals each
 *   upload one batch of 200 meal records (a canteen's lunch), at most 100 at a
 *   time over TLS on loopback (bars: >= 50,000 records/s, p99 <= 2,000 ms);
 * - district_<backend>_bytes_per_million_records: what the database grew by;
 * - district_import_<backend>_s and district_upload_during_import_<backend>_max_ms:
 *   780,000 cards (Shenzhen's cardholders) imported while 10 terminals keep
 *   uploading: how long the import takes and the longest upload meanwhile.
 *
 * Every figure is a line "BENCH name value unit". */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "batch.h"
#include "check.h"
#include "district.h"
#include "ledger.h"
#include "log.h"
#include "lunch.h"

enum { TERMINALS = 1000, RECORDS = 200, CLIENTS = 100, IMPORT_CARDS = 780000, UPLOADERS = 10 };

static yn_test_district D;

struct terminal {
    char id[YN_LEDGER_ID_MAX];
    uint8_t key[32];
    uint8_t *frame;
    size_t len;
    int64_t ms; /* the upload's latency */
    long status;
};
static struct terminal *terms;
static atomic_int next_terminal;

/* A lunch at one canteen: 200 meals of a 2,000-card roster (Shenzhen shares). */
static void make_lunch(struct terminal *t, int n)
{
    yn_ledger_record *r = calloc(RECORDS, sizeof *r);
    uint8_t prev[32] = {0};
    int64_t utc = 1773115200 + 3 * 3600;
    for (int i = 0; i < RECORDS; i++) {
        yn_ledger_record *x = &r[i];
        yn_test_lunch_meal(x, (n * 7919 + i * 104729) % 2000);
        x->seq = i + 1;
        snprintf(x->terminal, sizeof x->terminal, "%s", t->id);
        x->tap_id = 1000 + i;
        x->local_ymd = 20260310;
        utc += 5 + (i * 13) % 30;
        x->utc_s = utc;
        x->mono_ms = (utc - 1773115200) * 1000 + (i * 7) % 1000;
        x->wallet_after_fen = 20000 - x->wallet_fen;
        memcpy(x->prev_hash, prev, 32);
        yn_ledger_record_hash(x, prev, x->hash);
        memcpy(prev, x->hash, 32);
    }
    if (yn_batch_encode(1, r, RECORDS, t->key, sizeof t->key, &t->frame, &t->len) != YN_OK)
        t->frame = NULL;
    free(r);
}

static void *client(void *arg)
{
    (void)arg;
    for (int i; (i = atomic_fetch_add(&next_terminal, 1)) < TERMINALS;) {
        struct terminal *t = &terms[i];
        int64_t t0 = yn_test_now_ms();
        yn_test_reply r =
            yn_test_district_post(&D, "POST", "/v1/batches", t->frame, t->len, NULL, 0);
        t->ms = yn_test_now_ms() - t0;
        t->status = r.status;
        yn_test_reply_free(&r);
    }
    return NULL;
}

/* CPU time (user + system) of a process so far, in ms. */
static int64_t cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (int64_t)(ut + st) * 1000 / sysconf(_SC_CLK_TCK);
}

/* This process's CPU time (the clients: TLS and curl), in ms. */
static int64_t self_cpu_ms(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t stat_of(const char *what)
{
    char cmd[2400], line[128];
    snprintf(cmd, sizeof cmd, "%s --db '%s' stats", D.bin, D.db);
    FILE *p = popen(cmd, "r");
    int64_t v = -1;
    while (p && fgets(line, sizeof line, p))
        if (!strncmp(line, what, strlen(what)))
            v = atoll(line + strlen(what));
    if (p)
        pclose(p);
    return v;
}

/* Enrol every terminal: tokens in one command, then /v1/enrol. */
static int enrol_all(void)
{
    char csv[800], out[800];
    snprintf(csv, sizeof csv, "%s/terminals.csv", D.dir);
    snprintf(out, sizeof out, "%s/tokens.csv", D.dir);
    FILE *f = fopen(csv, "w");
    for (int i = 0; f && i < TERMINALS; i++)
        fprintf(f, "T-%04d,C-%03d\n", i, i % 360);
    if (!f || fclose(f) != 0 ||
        yn_test_sh("%s --db '%s' enrol-tokens '%s' > '%s'", D.bin, D.db, csv, out) != 0)
        return -1;
    f = fopen(out, "r");
    char line[128];
    for (int i = 0; f && i < TERMINALS && fgets(line, sizeof line, f); i++) {
        line[strcspn(line, "\n")] = '\0';
        char *token = strchr(line, ',');
        if (!token)
            break;
        *token++ = '\0';
        snprintf(terms[i].id, sizeof terms[i].id, "%.16s", line);
        char body[128];
        snprintf(body, sizeof body, "{\"token\":\"%s\"}", token);
        yn_test_reply r =
            yn_test_district_post(&D, "POST", "/v1/enrol", body, strlen(body), NULL, 0);
        char *k = r.status == 200 ? strstr(r.body, "\"key\":\"") : NULL;
        for (int b = 0; k && b < 32; b++) {
            unsigned v;
            if (sscanf(k + 7 + 2 * b, "%2x", &v) != 1)
                k = NULL;
            else
                terms[i].key[b] = (uint8_t)v;
        }
        yn_test_reply_free(&r);
        if (!k) {
            fclose(f);
            return -1;
        }
    }
    if (f)
        fclose(f);
    return 0;
}

/* 780,000 cards imported while 10 terminals upload small batches. */
struct uploader {
    int index;
    int64_t worst_ms, uploads, failures;
};
static atomic_bool import_done;

static void *uploader(void *arg)
{
    struct uploader *u = arg;
    struct terminal *t = &terms[u->index];
    /* more batches after the lunch: 20 top-ups each, chained from its head */
    yn_batch_header h;
    yn_ledger_record *prev = NULL;
    if (yn_batch_decode(t->frame, t->len, t->key, sizeof t->key, &h, &prev, NULL) != YN_OK)
        return NULL;
    yn_ledger_record last = prev[RECORDS - 1];
    free(prev);
    for (int64_t b = 2; !atomic_load(&import_done); b++) {
        yn_ledger_record r[20];
        for (int i = 0; i < 20; i++) {
            memset(&r[i], 0, sizeof r[i]);
            r[i].seq = last.seq + 1 + i;
            snprintf(r[i].terminal, sizeof r[i].terminal, "%s", t->id);
            r[i].tap_id = last.tap_id + 1 + i;
            r[i].kind = YN_LEDGER_TOPUP;
            strcpy(r[i].card_no, "4403040100037");
            r[i].local_ymd = 20260310;
            r[i].wallet_fen = -1000;
            r[i].cash_fen = 1000;
            r[i].utc_s = last.utc_s + 1;
            r[i].mono_ms = last.mono_ms + 1000;
            r[i].boot_no = 4;
            strcpy(r[i].operator_id, "1001");
            r[i].wallet_after_fen = 1000;
            memcpy(r[i].prev_hash, i ? r[i - 1].hash : last.hash, 32);
            yn_ledger_record_hash(&r[i], r[i].prev_hash, r[i].hash);
        }
        uint8_t *f;
        size_t len;
        if (yn_batch_encode(b, r, 20, t->key, sizeof t->key, &f, &len) != YN_OK)
            break;
        int64_t t0 = yn_test_now_ms();
        yn_test_reply rep = yn_test_district_post(&D, "POST", "/v1/batches", f, len, NULL, 0);
        int64_t ms = yn_test_now_ms() - t0;
        free(f);
        u->worst_ms = ms > u->worst_ms ? ms : u->worst_ms;
        u->uploads++;
        if (rep.status == 200)
            last = r[19];
        else
            u->failures++;
        yn_test_reply_free(&rep);
        usleep(50000);
    }
    return NULL;
}

static int import_under_load(const char *backend)
{
    char csv[800];
    snprintf(csv, sizeof csv, "%s/city.csv", D.dir);
    FILE *f = fopen(csv, "w");
    for (int i = 0; f && i < IMPORT_CARDS; i++)
        fprintf(f, "4403%010d,19%02d0%d01,%d,440304,440304%03d,20301231\n", i, 25 + i % 70,
                1 + i % 9, 1 << (i % 7), 1 + i % 999);
    if (!f || fclose(f) != 0)
        return -1;
    struct uploader u[UPLOADERS];
    pthread_t th[UPLOADERS];
    atomic_store(&import_done, false);
    for (int i = 0; i < UPLOADERS; i++) {
        u[i] = (struct uploader){.index = i * 97};
        pthread_create(&th[i], NULL, uploader, &u[i]);
    }
    int64_t t0 = yn_test_now_ms();
    int rc =
        yn_test_exit(yn_test_sh("%s --db '%s' import-cards '%s' >/dev/null", D.bin, D.db, csv));
    int64_t took = yn_test_now_ms() - t0;
    atomic_store(&import_done, true);
    int64_t worst = 0, uploads = 0, failures = 0;
    for (int i = 0; i < UPLOADERS; i++) {
        pthread_join(th[i], NULL);
        worst = u[i].worst_ms > worst ? u[i].worst_ms : worst;
        uploads += u[i].uploads;
        failures += u[i].failures;
    }
    if (rc != 0 || failures)
        fprintf(stderr, "bench_district: import exit %d, %lld of %lld uploads failed\n", rc,
                (long long)failures, (long long)uploads);
    printf("BENCH district_import_%s_s %.1f s\n", backend, (double)took / 1000);
    printf("BENCH district_upload_during_import_%s_max_ms %lld ms\n", backend, (long long)worst);
    printf("BENCH district_uploads_during_import_%s_failed %lld uploads\n", backend,
           (long long)failures);
    return rc == 0 ? 0 : -1;
}

static int lunch(const char *backend)
{
    char dir_path[512];
    const char *tmp = getenv("TMPDIR");
    snprintf(dir_path, sizeof dir_path, "%s/bdistrict-%s", tmp && *tmp ? tmp : "/tmp", backend);
    setenv("YN_DISTRICT_BACKEND", backend, 1);
    if (yn_test_district_init(&D, getenv("BUILD") ? getenv("BUILD") : "build/host", dir_path) != 0)
        return -1;
    char args[64] = ""; /* the server's defaults, unless YN_BENCH_THREADS says */
    if (getenv("YN_BENCH_THREADS"))
        snprintf(args, sizeof args, "--threads %s", getenv("YN_BENCH_THREADS"));
    yn_test_district_serve_args(args);
    pid_t srv = yn_test_district_start(&D, NULL, NULL);
    memset(terms, 0, TERMINALS * sizeof *terms);
    if (enrol_all() != 0) {
        fprintf(stderr, "bench_district: enrolment failed\n");
        yn_test_district_stop(srv, SIGTERM);
        return -1;
    }
    for (int i = 0; i < TERMINALS; i++)
        make_lunch(&terms[i], i);
    int64_t before = stat_of("bytes "), cpu0 = cpu_ms(srv), mine0 = self_cpu_ms();
    atomic_store(&next_terminal, 0);
    pthread_t th[CLIENTS];
    int64_t t0 = yn_test_now_ms();
    for (int i = 0; i < CLIENTS; i++)
        pthread_create(&th[i], NULL, client, NULL);
    for (int i = 0; i < CLIENTS; i++)
        pthread_join(th[i], NULL);
    int64_t took = yn_test_now_ms() - t0, cpu = cpu_ms(srv) - cpu0, mine = self_cpu_ms() - mine0;
    double load = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (!la || fscanf(la, "%lf", &load) != 1)
        load = -1;
    if (la)
        fclose(la);
    int64_t ms[TERMINALS];
    int failed = 0;
    for (int i = 0; i < TERMINALS; i++) {
        ms[i] = terms[i].ms;
        failed += terms[i].status != 200;
    }
    qsort(ms, TERMINALS, sizeof ms[0], cmp_i64);
    int64_t held = stat_of("records "), after = stat_of("bytes ");
    if (failed || held != (int64_t)TERMINALS * RECORDS)
        fprintf(stderr, "bench_district: %d uploads failed, %lld records held\n", failed,
                (long long)held);
    printf("BENCH district_lunch_%s_records_per_s %.0f records/s\n", backend,
           (double)TERMINALS * RECORDS * 1000 / (double)(took ? took : 1));
    printf("BENCH district_lunch_%s_p99_ms %lld ms\n", backend,
           (long long)ms[TERMINALS * 99 / 100 - 1]);
    printf("BENCH district_lunch_%s_p50_ms %lld ms\n", backend, (long long)ms[TERMINALS / 2]);
    printf("BENCH district_lunch_%s_server_cpu_per_batch_ms %.2f ms\n", backend,
           (double)cpu / TERMINALS);
    printf("BENCH district_lunch_%s_client_cpu_per_batch_ms %.2f ms\n", backend,
           (double)mine / TERMINALS);
    printf("BENCH district_lunch_%s_host_load_average %.1f runnable\n", backend, load);
    printf("BENCH district_%s_bytes_per_million_records %.0f bytes\n", backend,
           held > 0 ? (double)(after - before) * 1e6 / (double)held : -1.0);
    int rc = failed || held != (int64_t)TERMINALS * RECORDS ? -1 : 0;
    if (rc == 0 && !getenv("YN_BENCH_NO_IMPORT"))
        rc = import_under_load(backend);
    yn_test_district_stop(srv, SIGTERM);
    for (int i = 0; i < TERMINALS; i++)
        free(terms[i].frame);
    return rc;
}

int main(void)
{
    yn_log_init("bench_district", YN_LOG_ERR, false);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    terms = calloc(TERMINALS, sizeof *terms);
    int rc = lunch("sqlite");
    if (getenv("YN_PG_HOST") && *getenv("YN_PG_HOST"))
        rc |= lunch("postgresql");
    else
        printf("bench_district: no PostgreSQL cluster (run through tests/with-postgres)\n");
    free(terms);
    curl_global_cleanup();
    return rc ? 1 : 0;
}
