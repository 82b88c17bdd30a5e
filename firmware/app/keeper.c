/* keeper.c — whether sales may go on (keeper.h): the ledger checked at start
 * and after storage failures, verified in the background, checkpointed while
 * idle. firmware/ledger/LEDGER.md, "Health". */
#include "keeper.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "timeutil.h"

#define DEFAULT_IDLE_MS     2000
#define DEFAULT_VERIFY_MS   (24LL * 3600 * 1000)
#define PAGES_EVERY_MS      600000 /* every page after a failure not about damage: at most */
#define LOST_POLL_MS        1000   /* records lost: look whether sync restored them */
#define CHECKPOINT_EVERY_MS 60000  /* while idle, also for what sync wrote */
#define VERIFY_NICE         19     /* the background verification yields to the counter */
#define VERIFY_IDLE_MS      600000 /* a periodic verification waits for this much quiet */
#define VERIFY_CACHE_KIB    1024   /* its page cache (and sorter): the daemon's RSS budget */

struct yn_keeper {
    yn_keeper_opts o;
    char *path, *terminal;
    yn_sales_stop stop;       /* the verdict */
    int64_t storage_errors;   /* of the counter's handle, as last seen */
    int64_t pages_checked_ms; /* monotonic: the last quick_check */
    int64_t lost_polled_ms;   /* monotonic: the last look for a restore */
    int taps;                 /* as last seen */
    int64_t active_ms;        /* monotonic: the last tap */
    int64_t checkpointed_ms;  /* monotonic: the last idle checkpoint */
    bool dirty;               /* taps since the last checkpoint */
    /* shared with the verification thread and sync (mu) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t verifier;
    bool verifier_running, quit;
    bool verify_bad;        /* the background verification found damage */
    int64_t verify_bad_seq; /* its first bad record (0: a card row) */
    bool conflict;          /* sync: the district refused our records */
    int64_t conflict_first, conflict_last;
    int64_t tap_real_ms; /* CLOCK_MONOTONIC ms of the last tap the keeper saw */
};

/* Wait on the keeper's condition until ms from now (or quit); with mu held. */
static void wait_ms(yn_keeper *k, int64_t ms)
{
    struct timespec until = yn_clock_mono_deadline(yn_time_mono_ms() + ms);
    while (!k->quit && pthread_cond_timedwait(&k->cv, &k->mu, &until) == 0)
        ;
}

static const char *why_name(enum yn_stop_why why)
{
    switch (why) {
    case YN_STOP_DAMAGED:
        return "damaged";
    case YN_STOP_LOST:
        return "records lost";
    case YN_STOP_CONFLICT:
        return "conflict with the district";
    default:
        return "selling";
    }
}

static void set_stop(yn_keeper *k, enum yn_stop_why why, int64_t first, int64_t last)
{
    /* damage and conflict stay until a restart checks again; lost gives way to either */
    if (k->stop.why == YN_STOP_DAMAGED ||
        (k->stop.why == YN_STOP_CONFLICT && why != YN_STOP_DAMAGED))
        return;
    if (why != k->stop.why)
        yn_log(why == YN_STOP_NONE ? YN_LOG_INFO : YN_LOG_ERR, "keeper: sales %s (%s)",
               why == YN_STOP_NONE ? "go on" : "stopped", why_name(why));
    k->stop = (yn_sales_stop){.why = why,
                              .first_seq = first,
                              .last_seq = last,
                              .can_restore = why == YN_STOP_LOST && k->o.can_restore};
}

/* Check the counter's ledger and take the verdict. when says why (the log). */
static void check(yn_keeper *k, enum yn_ledger_check_depth depth, int64_t now_ms, const char *when)
{
    yn_ledger_health h;
    int64_t t0 = yn_time_mono_ms();
    int st = yn_ledger_check(k->o.ledger, depth, &h);
    long took_ms = (long)(yn_time_mono_ms() - t0);
    if (depth == YN_LEDGER_CHECK_PAGES)
        k->pages_checked_ms = now_ms;
    switch (st) {
    case YN_OK:
        yn_log(k->stop.why == YN_STOP_LOST || depth == YN_LEDGER_CHECK_PAGES ? YN_LOG_INFO
                                                                             : YN_LOG_DEBUG,
               "ledger %s: checked %s in %ld ms (%s, the chain's last %d records, high-water "
               "mark %" PRId64 "): fit to sell, %" PRId64 " records",
               k->path, when, took_ms, depth == YN_LEDGER_CHECK_PAGES ? "every page" : "no pages",
               YN_LEDGER_TAIL_RECORDS, h.mark_seq, h.head_seq);
        if (k->stop.why == YN_STOP_LOST)
            set_stop(k, YN_STOP_NONE, 0, 0);
        break;
    case YN_ESTALE:
        if (k->stop.why != YN_STOP_LOST)
            yn_err("ledger %s: checked %s: %s: no sale until they are restored from the "
                   "district%s",
                   k->path, when, h.what,
                   k->o.can_restore ? " (sync does it, the network is needed)"
                                    : "; sync is off here: turn it on ([sync] enabled), or run "
                                      "yinian-diag ledger verify");
        set_stop(k, YN_STOP_LOST, h.lost_first, h.lost_last);
        break;
    case YN_EBUSY:
    case YN_ENOMEM: /* not the ledger's fault: look again next time */
        yn_warn("ledger %s: check %s not done: %s", k->path, when, yn_strerror(st));
        k->storage_errors = -1;
        break;
    default:
        yn_err("ledger %s: checked %s: damaged (%s): %s: sales stopped; run yinian-diag ledger "
               "verify",
               k->path, when, yn_strerror(st), h.what[0] ? h.what : "the file cannot be read");
        set_stop(k, YN_STOP_DAMAGED, h.first_bad_seq, h.first_bad_seq);
        break;
    }
}

/* ---- the background verification --------------------------------------------------- */

/* At start, then every verify_every_ms once the counter has been quiet for
 * VERIFY_IDLE_MS: reading the whole file must not fall into a lunch rush. */
static void *verify_main(void *arg)
{
    yn_keeper *k = arg;
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), VERIFY_NICE); /* this thread only */
    int64_t every_ms = k->o.verify_every_ms ? k->o.verify_every_ms : DEFAULT_VERIFY_MS;
    pthread_mutex_lock(&k->mu);
    while (!k->quit) {
        pthread_mutex_unlock(&k->mu);
        yn_ledger_opts lo = {.path = k->path,
                             .terminal_id = k->terminal,
                             .read_only = true,
                             .cache_kib = VERIFY_CACHE_KIB};
        yn_ledger *l = NULL;
        yn_ledger_verify_report rep = {0};
        int st = yn_ledger_open(&lo, &l);
        if (st == YN_OK)
            st = yn_ledger_verify(l, &rep); /* logs what it found */
        yn_ledger_close(l);
        if (st == YN_OK)
            yn_info("ledger %s: verified in the background: %" PRId64 " records, %" PRId64
                    " card rows agree with the journal",
                    k->path, rep.records, rep.cards);
        else if (st != YN_ECORRUPT)
            yn_warn("ledger %s: background verification not done: %s", k->path, yn_strerror(st));
        pthread_mutex_lock(&k->mu);
        if (st == YN_ECORRUPT && !k->verify_bad) {
            k->verify_bad = true;
            k->verify_bad_seq = rep.first_bad_seq;
        }
        wait_ms(k, every_ms);
        int64_t quiet_ms;
        while (!k->quit && (quiet_ms = yn_time_mono_ms() - k->tap_real_ms) < VERIFY_IDLE_MS)
            wait_ms(k, VERIFY_IDLE_MS - quiet_ms);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

/* ---- the keeper ------------------------------------------------------------------------ */

int yn_keeper_start(const yn_keeper_opts *o, int64_t now_mono_ms, yn_keeper **out,
                    yn_sales_stop *verdict)
{
    *out = NULL;
    memset(verdict, 0, sizeof *verdict);
    if (!o || !o->ledger || !o->path || !o->terminal_id)
        return YN_EINVAL;
    yn_keeper *k = calloc(1, sizeof *k);
    if (!k)
        return YN_ENOMEM;
    k->o = *o;
    k->path = strdup(o->path);
    k->terminal = strdup(o->terminal_id);
    if (!k->path || !k->terminal) {
        yn_keeper_stop(k);
        return YN_ENOMEM;
    }
    if (!k->o.idle_ms)
        k->o.idle_ms = DEFAULT_IDLE_MS;
    pthread_mutex_init(&k->mu, NULL);
    if (yn_clock_cond_init(&k->cv) != YN_OK) {
        pthread_mutex_destroy(&k->mu);
        free(k->path);
        free(k->terminal);
        free(k);
        return YN_ENOMEM;
    }

    check(k, YN_LEDGER_CHECK_PAGES, now_mono_ms, "at start");
    k->storage_errors = yn_ledger_storage_errors(o->ledger, NULL);
    k->active_ms = k->checkpointed_ms = now_mono_ms;
    k->dirty = true; /* what the last run left in the WAL */
    if (o->verify_every_ms >= 0) {
        if (pthread_create(&k->verifier, NULL, verify_main, k) == 0)
            k->verifier_running = true;
        else
            yn_warn("ledger %s: no background verification (no thread)", k->path);
    }
    *verdict = k->stop;
    *out = k;
    return YN_OK;
}

void yn_keeper_stop(yn_keeper *k)
{
    if (!k)
        return;
    if (k->verifier_running) {
        pthread_mutex_lock(&k->mu);
        k->quit = true;
        pthread_cond_signal(&k->cv);
        pthread_mutex_unlock(&k->mu);
        pthread_join(k->verifier, NULL);
    }
    if (k->path && k->terminal) {
        pthread_mutex_destroy(&k->mu);
        pthread_cond_destroy(&k->cv);
    }
    free(k->path);
    free(k->terminal);
    free(k);
}

void yn_keeper_conflict(yn_keeper *k, int64_t first_seq, int64_t last_seq)
{
    if (!k)
        return;
    pthread_mutex_lock(&k->mu);
    k->conflict = true;
    k->conflict_first = first_seq;
    k->conflict_last = last_seq;
    pthread_mutex_unlock(&k->mu);
}

void yn_keeper_tick(yn_keeper *k, int64_t now_ms, int taps, yn_sales_stop *verdict)
{
    pthread_mutex_lock(&k->mu);
    bool bad = k->verify_bad, conflict = k->conflict;
    int64_t bad_seq = k->verify_bad_seq, c_first = k->conflict_first, c_last = k->conflict_last;
    pthread_mutex_unlock(&k->mu);
    if (bad && k->stop.why != YN_STOP_DAMAGED) {
        yn_err("ledger %s: the background verification found it damaged (record %" PRId64
               "; 0: a card row, the log line above says which): sales stopped; run "
               "yinian-diag ledger verify",
               k->path, bad_seq);
        set_stop(k, YN_STOP_DAMAGED, bad_seq, bad_seq);
    }
    if (conflict && k->stop.why != YN_STOP_CONFLICT && k->stop.why != YN_STOP_DAMAGED)
        set_stop(k, YN_STOP_CONFLICT, c_first, c_last);

    int last = YN_OK;
    int64_t errors = yn_ledger_storage_errors(k->o.ledger, &last);
    if (errors != k->storage_errors && k->stop.why != YN_STOP_DAMAGED) {
        /* SQLite saw damage or an I/O error: every page now; a full disk, a
         * lock or a read-only mount: the tail (the pages now and then) */
        bool pages =
            last == YN_ECORRUPT || last == YN_EIO || now_ms - k->pages_checked_ms >= PAGES_EVERY_MS;
        k->storage_errors = errors;
        check(k, pages ? YN_LEDGER_CHECK_PAGES : YN_LEDGER_CHECK_TAIL, now_ms,
              "after a storage failure");
    } else if (k->stop.why == YN_STOP_LOST && now_ms - k->lost_polled_ms >= LOST_POLL_MS) {
        k->lost_polled_ms = now_ms;
        check(k, YN_LEDGER_CHECK_TAIL, now_ms, "for a restore");
    }

    if (taps != k->taps) {
        k->taps = taps;
        k->active_ms = now_ms;
        k->dirty = true;
        pthread_mutex_lock(&k->mu);
        k->tap_real_ms = yn_time_mono_ms();
        pthread_mutex_unlock(&k->mu);
    }
    if (k->stop.why != YN_STOP_DAMAGED && now_ms - k->active_ms >= k->o.idle_ms &&
        (k->dirty || now_ms - k->checkpointed_ms >= CHECKPOINT_EVERY_MS)) {
        int st = yn_ledger_checkpoint(k->o.ledger); /* the counter is idle: no tap waits */
        if (st != YN_OK)
            yn_warn("ledger %s: idle checkpoint: %s", k->path, yn_strerror(st));
        k->dirty = false;
        k->checkpointed_ms = now_ms;
    }
    *verdict = k->stop;
}
