/* updates.h — the update document for one terminal (PROTOCOL.md §5): what
 * changed since what it has, numbered by a per-terminal version. Every entry
 * is checked by the rules the terminal applies (rules.h) before it goes in: an
 * entry a terminal would refuse — a bad row of an old database — is left
 * out and logged, so one bad entry never blocks updates to every terminal,
 * and the document still reaches past it (roster version and allocation seq
 * are those of the last entry looked at). */
#ifndef YN_DISTRICT_UPDATES_H
#define YN_DISTRICT_UPDATES_H

#include <stdint.h>

#include "db.h"

#define YN_UPDATES_ITEMS 5000   /* entries of each kind in one document */
#define YN_UPDATES_SCAN  100000 /* entries of each kind looked at for one document */

/* What the terminal says it has (the request of PROTOCOL.md §5.1). */
typedef struct yn_updates_have {
    int64_t roster;      /* roster version */
    int64_t blacklist;   /* highest blacklist seq applied */
    int64_t allocations; /* highest allocation seq applied */
    int64_t policy;      /* active policy version */
} yn_updates_have;

/* The payload (JSON text, malloc'd) for terminal at server time now_ms, in
 * one write transaction (the document version is taken in it). *skipped
 * counts entries left out. YN_ENOTFOUND for an unknown terminal; storage
 * errors. */
int yn_updates_build(yn_db *db, const char *terminal, const yn_updates_have *have, int64_t now_ms,
                     char **payload, int64_t *skipped) YN_MUST_CHECK;

#endif
