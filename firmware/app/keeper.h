/* keeper.h — the daemon's keeper of its ledger: whether sales may go on.
 *
 * At start it checks the ledger (every page, the chain's tail, the
 * high-water mark); after any storage failure it checks it again before the
 * next tap is taken; a thread of its own verifies the whole chain and every
 * card row in the background (at start, then daily once the counter has been
 * quiet for 10 minutes); and while the counter
 * is idle it checkpoints the WAL, never on a tap's path. A damaged ledger,
 * or the district holding other records under this terminal's seqs, stops
 * sales until a technician has looked (yinian-diag ledger verify; a restart
 * checks again). Records lost that the district may hold stop sales until
 * sync has restored them, then sales go on by themselves.
 * firmware/ledger/LEDGER.md, "Health". Used from the main loop's thread only, but
 * for yn_keeper_conflict. */
#ifndef YN_KEEPER_H
#define YN_KEEPER_H

#include <stdbool.h>
#include <stdint.h>

#include "ledger.h"
#include "status.h"

/* Why sales are stopped. */
enum yn_stop_why {
    YN_STOP_NONE = 0, /* selling */
    YN_STOP_DAMAGED,  /* the ledger is damaged: a technician, yinian-diag ledger verify */
    YN_STOP_LOST,     /* records that may be held by the district are missing here */
    YN_STOP_CONFLICT, /* the district holds other records under this terminal's seqs */
};

typedef struct yn_sales_stop {
    enum yn_stop_why why;
    int64_t first_seq, last_seq; /* the records concerned (lost range, bad record); 0: unknown */
    bool can_restore;            /* LOST: sync is on and restores them by itself */
} yn_sales_stop;

typedef struct yn_keeper_opts {
    yn_ledger *ledger;       /* the counter's handle: checked and checkpointed */
    const char *path;        /* the ledger file and terminal, for the background */
    const char *terminal_id; /*   verification's own read-only handle */
    bool can_restore;        /* sync is on: lost records come back from the district */
    int32_t idle_ms;         /* no tap for this long: the counter is idle; 0 = 2000 */
    int64_t verify_every_ms; /* background verification period; 0 = a day; < 0 = none */
} yn_keeper_opts;

typedef struct yn_keeper yn_keeper;

/* Check the ledger (pages, tail, mark), log what was found, start the
 * background verification. *out is the verdict so far. */
int yn_keeper_start(const yn_keeper_opts *opts, int64_t now_mono_ms, yn_keeper **out,
                    yn_sales_stop *verdict) YN_MUST_CHECK;
void yn_keeper_stop(yn_keeper *k);
/* After each turn of the main loop (no tap in progress): storage failures
 * since the last turn (a check before the next tap), the background
 * verification's finding, a restore done by sync (records lost: checked
 * again every second), a conflict reported by sync; and a checkpoint once no
 * tap came for idle_ms. taps is the terminal's count of decided taps.
 * *verdict is whether sales go on now. */
void yn_keeper_tick(yn_keeper *k, int64_t now_mono_ms, int taps, yn_sales_stop *verdict);
/* Sync says the district refused records first..last as conflicting with
 * what it holds (PROTOCOL.md, 409): sales stop. Safe from any thread. */
void yn_keeper_conflict(yn_keeper *k, int64_t first_seq, int64_t last_seq);

#endif
