/* crash_ledger.c — kill -9 at random moments while debits are being committed.
 *
 * A child process debits in a loop (with top-ups, allocations and reversals
 * mixed in) and writes "tap seq N|D" to a pipe only after yn_ledger_debit()
 * or yn_ledger_topup() returned YN_OK (N) or YN_EDUPLICATE (D): what a diner
 * would have been shown as 成功. Tap ids increase across restarts as the
 * ledger requires (LEDGER.md, "Tap ids"): each child starts at the tap after
 * the last one acknowledged, which is the tap in flight at the previous kill,
 * retried. The parent SIGKILLs it after a random delay, then reopens the
 * ledger and checks:
 *   - every acknowledged tap is in the journal, with its seq, exactly once;
 *   - no tap is there that was not acknowledged, except the one in flight
 *     (its retry by the next child must get YN_EDUPLICATE and the same seq);
 *   - tap ids increase with seq, none above the next one to be sent;
 *   - PRAGMA integrity_check is ok;
 *   - yn_ledger_verify(): the hash chain, tap ids, and wallets, usage and each
 *     card's last tap id against the journal.
 *
 *   crash_ledger [--kills N]   (default 300; YN_LONG=1: 1000)
 * Prints one summary line; exits non-zero on any violation. */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ledger.h"
#include "log.h"
#include "policy.h"
#include "timeutil.h"

#define TERMINAL     "SZFT0001"
#define CARDS        40
#define NOON_UTC     1749614400LL /* 2025-06-11 12:00 Asia/Shanghai, a Wednesday */
#define MAX_TAPS     2000000
#define MAX_DELAY_US 12000 /* kill within this after the fork */

static char path[1100];
static yn_policy *policy;

static void card_of(int64_t tap, yn_card_facts *c)
{
    int i = (int)(tap % CARDS);
    memset(c, 0, sizeof *c);
    snprintf(c->card_no, sizeof c->card_no, "44030400000%05d", i);
    c->birth_ymd = i % 3 == 0 ? 19450101 : 19500101; /* 80 or 75 */
    c->flags = i % 4 == 0 ? YN_FLAG_DIBAO : 0;
    c->district = 440304;
    c->street = 440304001;
    c->expiry_ymd = 20301231;
}

static yn_ledger *open_ledger(void)
{
    yn_ledger_opts o = {.path = path, .terminal_id = TERMINAL, .busy_timeout_ms = 2000};
    yn_ledger *l = NULL;
    int st = yn_ledger_open(&o, &l);
    if (st != YN_OK) {
        fprintf(stderr, "crash_ledger: open %s: %s\n", path, yn_strerror(st));
        return NULL;
    }
    return l;
}

/* The child: debit (every 11th tap a cash top-up) from tap `first` on until
 * killed. `first` is the tap in flight when the previous child was killed:
 * committed or not, its retry is answered as if it had been sent once. */
static void child(int fd, int64_t first)
{
    yn_ledger *l = open_ledger();
    if (!l)
        _exit(2);
    int64_t last_seq = 0;
    for (int64_t tap = first;; tap++) {
        yn_card_facts card;
        card_of(tap, &card);
        yn_meal meal = {.price_fen = 1200 + (tap % 7) * 100};
        yn_canteen canteen = {.district = 440304, .street = 440304001};
        yn_ledger_when when = {
            .utc_s = NOON_UTC + tap % 3600, .mono_ms = yn_time_mono_ms(), .clock_trusted = true};
        yn_ledger_tap t = {.tap_id = tap,
                           .card = &card,
                           .meal = &meal,
                           .canteen = &canteen,
                           .operator_id = "op1",
                           .when = when};
        yn_ledger_result r;
        int st = tap % 11 == 0 ? yn_ledger_topup(l, tap, card.card_no, 2000, "op1", &when, &r)
                               : yn_ledger_debit(l, policy, &t, &r);
        if (st == YN_OK || st == YN_EDUPLICATE) {
            char line[64];
            int n = snprintf(line, sizeof line, "%" PRId64 " %" PRId64 " %c\n", tap, r.seq,
                             st == YN_OK ? 'N' : 'D');
            if (write(fd, line, (size_t)n) != n)
                _exit(3);
            if (r.kind == YN_LEDGER_MEAL)
                last_seq = r.seq;
        } else {
            fprintf(stderr, "crash_ledger: child: tap %" PRId64 ": %s\n", tap, yn_strerror(st));
            _exit(4);
        }
        if (tap % 5 == 0) { /* a district credit, idempotent on its id */
            char id[32];
            snprintf(id, sizeof id, "alloc-%" PRId64, tap);
            st = yn_ledger_allocate(l, id, card.card_no, "district", 500, &when, &r);
            if (st != YN_OK && st != YN_EDUPLICATE)
                _exit(5);
        }
        if (tap % 7 == 0 && last_seq) { /* 冲正 of the meal just sold */
            st = yn_ledger_reverse(l, policy, last_seq, "op1", &when, &r);
            if (st != YN_OK && st != YN_EDUPLICATE)
                _exit(6);
        }
    }
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int64_t sql_i64(sqlite3 *db, const char *sql, int64_t a)
{
    sqlite3_stmt *s;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        return -2;
    sqlite3_bind_int64(s, 1, a);
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_type(s, 0) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static int integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *s;
    int ok = 0;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL) != SQLITE_OK)
        return 0;
    if (sqlite3_step(s) == SQLITE_ROW)
        ok = strcmp((const char *)sqlite3_column_text(s, 0), "ok") == 0;
    sqlite3_finalize(s);
    return ok;
}

int main(int argc, char **argv)
{
    int kills = getenv("YN_LONG") && atoi(getenv("YN_LONG")) == 1 ? 1000 : 300;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--kills") == 0 && i + 1 < argc) {
            kills = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: crash_ledger [--kills N]\n");
            return 2;
        }
    }
    const char *tmp = getenv("TMPDIR"), *src = getenv("YN_SRCDIR");
    char dir[1024], ppath[1024], err[256];
    snprintf(dir, sizeof dir, "%s/crash-ledger.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("crash_ledger: mkdtemp");
        return 2;
    }
    snprintf(path, sizeof path, "%s/ledger.db", dir);
    snprintf(ppath, sizeof ppath, "%s/firmware/policies/shenzhen-2025.json", src ? src : ".");
    if (yn_policy_load_file(ppath, &policy, err, sizeof err) != YN_OK) {
        fprintf(stderr, "crash_ledger: %s: %s\n", ppath, err);
        return 2;
    }
    yn_log_quiet(true); /* children die mid-sentence; the summary says what matters */
    rng ^= (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ull;

    yn_ledger *made = open_ledger(); /* the schema exists before the first kill */
    if (!made)
        return 2;
    yn_ledger_close(made);
    int64_t *acked_seq = calloc(MAX_TAPS, sizeof *acked_seq);     /* tap -> seq, 0 = none */
    int64_t *journal_seq = calloc(MAX_TAPS, sizeof *journal_seq); /* the same, as journaled */
    if (!acked_seq || !journal_seq)
        return 2;
    /* the journal is append-only: its records are read once, up to read_upto */
    int64_t read_upto = 0, max_tap = 0;
    int64_t next_tap = 1, acked = 0, violations = 0, records = 0, duplicates_seen = 0;
    time_t started = time(NULL);
    for (int k = 0; k < kills && violations == 0; k++) {
        int fds[2];
        if (pipe(fds) != 0) {
            perror("crash_ledger: pipe");
            return 2;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(fds[0]);
            child(fds[1], next_tap);
            _exit(0);
        }
        close(fds[1]);
        struct timespec d = {0, (long)(rnd() % MAX_DELAY_US) * 1000};
        nanosleep(&d, NULL);
        kill(pid, SIGKILL);
        int wst;
        waitpid(pid, &wst, 0);
        if (!WIFSIGNALED(wst)) {
            fprintf(stderr, "crash_ledger: child exited by itself (status %d)\n", WEXITSTATUS(wst));
            violations++;
        }
        /* what the child acknowledged */
        FILE *in = fdopen(fds[0], "r");
        char line[128];
        int64_t first = next_tap;
        while (in && fgets(line, sizeof line, in)) {
            int64_t tap, seq;
            char how;
            if (sscanf(line, "%" SCNd64 " %" SCNd64 " %c", &tap, &seq, &how) != 3 ||
                strchr(line, '\n') == NULL)
                continue; /* a line cut by the kill was not acknowledged */
            if (tap <= 0 || tap >= MAX_TAPS) {
                violations++;
                continue;
            }
            if (acked_seq[tap] && acked_seq[tap] != seq) {
                fprintf(stderr,
                        "crash_ledger: tap %" PRId64 " acknowledged as seq %" PRId64
                        " and as seq %" PRId64 "\n",
                        tap, acked_seq[tap], seq);
                violations++;
            }
            if (how == 'D') {
                if (tap != first) { /* only the tap in flight at the last kill may be a replay */
                    fprintf(stderr,
                            "crash_ledger: tap %" PRId64 " was a replay but never sent"
                            " before\n",
                            tap);
                    violations++;
                }
                duplicates_seen++;
            }
            if (!acked_seq[tap])
                acked++;
            acked_seq[tap] = seq;
            if (tap >= next_tap)
                next_tap = tap + 1;
        }
        if (in)
            fclose(in);

        /* the ledger after the crash */
        sqlite3 *db;
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
            fprintf(stderr, "crash_ledger: reopen: %s\n", sqlite3_errmsg(db));
            violations++;
            sqlite3_close(db);
            break;
        }
        sqlite3_busy_timeout(db, 2000);
        if (!integrity_ok(db)) {
            fprintf(stderr, "crash_ledger: integrity_check failed after kill %d\n", k + 1);
            violations++;
        }
        /* the records committed since the last look: tap ids once each, increasing */
        records = sql_i64(db, "SELECT COUNT(*) FROM journal", 0);
        if (records < read_upto ||
            sql_i64(db, "SELECT IFNULL(MAX(seq), 0) FROM journal", 0) != records) {
            fprintf(stderr,
                    "crash_ledger: %" PRId64 " records after kill %d, %" PRId64
                    " before, or a gap\n",
                    records, k + 1, read_upto);
            violations++;
        }
        sqlite3_stmt *rows;
        if (sqlite3_prepare_v2(db,
                               "SELECT seq, tap_id FROM journal WHERE seq > ?1 AND tap_id IS NOT"
                               " NULL ORDER BY seq",
                               -1, &rows, NULL) != SQLITE_OK) {
            fprintf(stderr, "crash_ledger: %s\n", sqlite3_errmsg(db));
            return 2;
        }
        sqlite3_bind_int64(rows, 1, read_upto);
        while (sqlite3_step(rows) == SQLITE_ROW) {
            int64_t seq = sqlite3_column_int64(rows, 0), tap = sqlite3_column_int64(rows, 1);
            if (tap <= 0 || tap >= MAX_TAPS || journal_seq[tap] || tap <= max_tap) {
                fprintf(stderr,
                        "crash_ledger: seq %" PRId64 " has tap id %" PRId64
                        " (%s; highest before %" PRId64 ") after kill %d\n",
                        seq, tap, tap > 0 && tap < MAX_TAPS && journal_seq[tap] ? "twice" : "stale",
                        max_tap, k + 1);
                violations++;
                continue;
            }
            journal_seq[tap] = seq;
            max_tap = tap;
        }
        sqlite3_finalize(rows);
        read_upto = records;
        for (int64_t tap = first; tap < next_tap; tap++) {
            if (acked_seq[tap] && journal_seq[tap] != acked_seq[tap]) {
                fprintf(stderr,
                        "crash_ledger: acknowledged tap %" PRId64 " (seq %" PRId64
                        ") is %s after kill %d\n",
                        tap, acked_seq[tap], journal_seq[tap] ? "under another seq" : "missing",
                        k + 1);
                violations++;
            }
        }
        /* nothing unacknowledged, but the one tap in flight (retried next round) */
        if (max_tap > next_tap) {
            fprintf(stderr,
                    "crash_ledger: taps up to %" PRId64 " journaled, only up to %" PRId64
                    " acknowledged, after kill %d\n",
                    max_tap, next_tap - 1, k + 1);
            violations++;
        }
        sqlite3_close(db);

        yn_ledger *l = open_ledger();
        if (!l) {
            violations++;
            break;
        }
        yn_ledger_verify_report rep;
        if (yn_ledger_verify(l, &rep) != YN_OK) {
            fprintf(stderr, "crash_ledger: verify after kill %d: seq %" PRId64 " card %s: %s\n",
                    k + 1, rep.first_bad_seq, rep.bad_card, rep.what);
            violations++;
        }
        yn_ledger_close(l);
    }
    printf("crash_ledger: %d kills in %ld s, %" PRId64 " taps acknowledged, %" PRId64
           " in-flight taps retried, %" PRId64 " records, %" PRId64 " violations\n",
           kills, (long)(time(NULL) - started), acked, duplicates_seen, records, violations);
    free(acked_seq);
    free(journal_seq);
    yn_policy_free(policy);
    if (violations == 0) {
        char cmd[1100];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "crash_ledger: could not remove %s\n", dir);
    } else {
        fprintf(stderr, "crash_ledger: ledger kept for inspection: %s\n", path);
    }
    return violations == 0 ? 0 : 1;
}
