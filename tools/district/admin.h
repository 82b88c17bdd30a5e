/* admin.h — the district's admin commands: tokens, cards, lost and found,
 * allocations, policies, a USB stick's batches, and the check (and fix) of
 * entries an older server let in. Each takes its arguments as typed on the
 * command line, refuses a bad value with the field and why, and returns the
 * exit code: 0 done, 1 runtime failure (storage), 2 bad input.
 *
 * Every entry is checked with the rules terminals apply (rules.h) before it
 * is stored, so nothing here can make a terminal refuse an update. Long
 * jobs (a city's card import) run in short transactions so uploads keep
 * their turn between them (tools/DISTRICT.md). */
#ifndef YN_DISTRICT_ADMIN_H
#define YN_DISTRICT_ADMIN_H

#include <stdbool.h>

#include "db.h"

enum { YN_EXIT_OK = 0, YN_EXIT_RUNTIME = 1, YN_EXIT_USAGE = 2 };

#define YN_ADMIN_CARDS_PER_TX 1000 /* roster rows per transaction of import-cards */
#define YN_ADMIN_YIELD_MS     5    /* pause after each, so a waiting upload gets the lock */

int yn_admin_token(yn_db *db, const char *terminal, const char *canteen);
/* CSV lines "terminal,canteen": prints "terminal,token" for each. */
int yn_admin_tokens(yn_db *db, const char *csv_path);
/* CSV card_no,birth_ymd,flags,district,street,expiry_ymd (a header line may
 * come first): all lines checked first (nothing stored if one is bad), then
 * upserted YN_ADMIN_CARDS_PER_TX at a time; unchanged cards keep their version. */
int yn_admin_import_cards(yn_db *db, const char *csv_path);
/* A blacklist change: lost (挂失) or found again, of a card number or, with
 * by_ident, of an identity-only card's identifier (firmware/core/CARD.md §8). */
int yn_admin_lost(yn_db *db, const char *name, bool lost, bool by_ident);
int yn_admin_allocate(yn_db *db, const char *id, const char *card_no, const char *source,
                      const char *amount_fen);
int yn_admin_publish_policy(yn_db *db, const char *path);
/* import DIR: the batch-T-N.ynb frames of a `yinian-diag export`, through
 * the same ingest as POST /v1/batches; ack-T-N.json written for each — for
 * a key-pair terminal only with district_priv (the Ed25519 seed of
 * --district-key), which signs them (PROTOCOL.md §10). */
int yn_admin_import_dir(yn_db *db, const char *dir, const uint8_t *district_priv);
/* List every stored entry and record that breaks the rules (exit 1 when
 * there is one, 0 when none); with fix, remove the entries and move the
 * records to the quarantine table (kept, out of reports). */
int yn_admin_check(yn_db *db, bool fix);

#endif
