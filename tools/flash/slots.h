/* slots.h — the A/B slot state machine of yinian-flash, as pure code (no
 * file, no clock; the caller writes the state durably before it acts on it):
 * the state file, which slot an install writes and whether it may, the start
 * of a new slot (try it, confirm it, or roll back), and a rollback by hand.
 * tools/FLASH.md says what each state means; tests/unit/test_flash_slots.c. */
#ifndef YN_TOOLS_FLASH_SLOTS_H
#define YN_TOOLS_FLASH_SLOTS_H

#include <stdbool.h>
#include <stddef.h>

#include "bundle.h"
#include "status.h"

enum yn_slot_status {
    YN_SLOT_EMPTY = 0, /* nothing installed */
    YN_SLOT_WRITING,   /* being written by an installer: never started */
    YN_SLOT_INSTALLED, /* complete, not yet proven by its self-test */
    YN_SLOT_CONFIRMED, /* passed its self-test on this board */
    YN_SLOT_FAILED,    /* spent its boot budget without passing: rolled back from */
};

typedef struct yn_slot {
    enum yn_slot_status status;
    char version[YN_BUNDLE_NAME_MAX]; /* x.y.z; "" when empty */
    int ledger_schema;                /* from its manifest; 0 when empty */
} yn_slot;

typedef struct yn_slots {
    int active;        /* 0 = slot a, 1 = slot b, -1 = none installed yet */
    int attempts_left; /* starts the unconfirmed active slot may still try */
    yn_slot slot[2];
} yn_slots;

const char *yn_slot_status_name(enum yn_slot_status s);
static inline char yn_slot_name(int slot)
{
    return slot == 1 ? 'b' : 'a';
}

/* The state file (key = value lines, see FLASH.md). parse: YN_EINVAL with err
 * for a malformed file. format: YN_ELIMIT when cap is too small. */
int yn_slots_parse(const char *text, size_t len, yn_slots *out, char *err,
                   size_t errlen) YN_MUST_CHECK;
int yn_slots_format(const yn_slots *st, char *buf, size_t cap, size_t *len) YN_MUST_CHECK;

/* The slot the board can go back to: the inactive one when it is confirmed,
 * or (allow_unconfirmed) at least complete. -1 when there is none. */
int yn_slots_fallback(const yn_slots *st, bool allow_unconfirmed);

enum yn_boot_action {
    YN_BOOT_NONE,     /* nothing installed */
    YN_BOOT_GOOD,     /* the active slot is confirmed: start it */
    YN_BOOT_TRY,      /* unconfirmed: one attempt taken from the budget; self-test it */
    YN_BOOT_ROLLBACK, /* budget spent: the state now points at the fallback slot */
    YN_BOOT_LAST,     /* budget spent and nothing to go back to: self-test it anyway */
};

/* What a start does before the daemon runs; updates st (which the caller
 * writes durably BEFORE running anything). */
enum yn_boot_action yn_slots_boot_next(yn_slots *st);
/* The self-test of the active slot passed (confirm it) or failed. Returns
 * true when st changed. After a failure with the budget spent and a
 * fallback present, st is rolled back (as YN_BOOT_ROLLBACK would). */
bool yn_slots_boot_result(yn_slots *st, bool passed, bool *rolled_back);

/* --- install ------------------------------------------------------------ */

enum yn_slots_verdict {
    YN_SLOTS_GO,          /* go ahead */
    YN_SLOTS_GO_FORCED,   /* go ahead only because of --force (an older version) */
    YN_SLOTS_UNCONFIRMED, /* the active slot has not passed its self-test: the other is its fallback
                           */
    YN_SLOTS_DOWNGRADE,   /* older than the active version */
    YN_SLOTS_SAME,        /* the active version again */
    YN_SLOTS_NOTHING,     /* rollback: no usable slot to go back to */
    YN_SLOTS_SCHEMA,      /* rollback: the ledger is newer than that slot reads */
};

/* May version v be installed, and into which slot (*target: the inactive
 * one, slot a on an empty board)? force overrides every refusal. */
enum yn_slots_verdict yn_slots_install_check(const yn_slots *st, const yn_bundle_version *v,
                                             bool force, int *target);
/* Before a byte of target is written: it is nothing to go back to any more.
 * True when st changed (then write it). */
bool yn_slots_begin_write(yn_slots *st, int target);
/* target is written in full: it becomes the active slot, unconfirmed, with
 * `attempts` starts to pass its self-test; or it failed before the switch
 * (its program does not run here) and stays inactive. */
void yn_slots_installed(yn_slots *st, int target, const char *version, int ledger_schema,
                        int attempts);
void yn_slots_install_failed(yn_slots *st, int target, const char *version, int ledger_schema);

/* --- rollback by hand ----------------------------------------------------- */

/* May the board go back to the inactive slot? It must be confirmed, or with
 * force at least complete (installed, or failed); and the ledger (at schema
 * ledger_schema, 0 when unknown) must be one it reads, unless force.
 * *to is that slot. */
enum yn_slots_verdict yn_slots_rollback_check(const yn_slots *st, bool force, int ledger_schema,
                                              int *to);
/* Go back to the inactive slot: a confirmed one starts as it is, another is
 * tried again with `attempts` starts. */
void yn_slots_rollback(yn_slots *st, int attempts);

#endif
