/* fix_ledger.h — the fixture the ledger's unit tests share (test_ledger*.c):
 * a fresh ledger file per test, the Shenzhen 2025 policy, cards of each kind,
 * taps at a fixed lunch, the log captured, raw SQL views of the file. */
#ifndef YN_FIX_LEDGER_H
#define YN_FIX_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ledger.h"
#include "policy.h"

#define WED_NOON_UTC  1749614400 /* 2025-06-11 12:00 Asia/Shanghai, a Wednesday lunch */
#define WED_EVE_UTC   1749636000 /* 2025-06-11 18:00: no period open */
#define DAY           20250611
#define HOME_DISTRICT 440304
#define HOME_STREET   440304001

struct fx {
    char dir[512];
    char path[600];
    yn_ledger *l;
    int64_t next_tap;
    int64_t mono_ms;
};

extern yn_policy *lf_policy;       /* shenzhen-2025, loaded once by lf_group_setup */
extern yn_policy *lf_policy_ident; /* the same accepting identity-only cards (offline cap
                                      ¥5) and 忘带卡 (2 a terminal a day, offline cap ¥5) */
extern const yn_canteen lf_canteen;

/* cmocka group and per-test fixtures: a fresh ledger file per test */
int lf_group_setup(void **state);
int lf_group_teardown(void **state);
yn_ledger_opts lf_opts_for(const struct fx *f);
int lf_setup(void **state);
int lf_teardown(void **state);
/* close and open the test's ledger again with o */
void lf_reopen(struct fx *f, const yn_ledger_opts *o);
/* an 80-year-old 低保 card of the home district (¥15) / a 75-year-old without flags (¥5) */
yn_card_facts lf_key_card(const char *no);
yn_card_facts lf_senior_card(const char *no);
/* the moment utc_s, the monotonic clock one second on, clock trusted */
yn_ledger_when lf_at(struct fx *f, int64_t utc_s);
int lf_debit_at(struct fx *f, const yn_card_facts *c, int64_t price_fen, int64_t utc_s,
                int64_t tap_id, yn_ledger_result *r);
/* a debit (¥15, the next tap id, under lf_policy_ident) of a holder
 * identified otherwise than by the card: by = enum yn_ledger_by */
int lf_debit_by(struct fx *f, int by, const char *card_no, const char *ident,
                const char *operator_id, const char *supervisor_id, int64_t utc_s,
                yn_ledger_result *r);
/* card_no on the roster as lf_key_card (an 80-year-old 低保 of the home
 * district), bound to ident ("" none) */
void lf_roster(struct fx *f, const char *card_no, const char *ident, int64_t version);
/* a debit with the next tap id at the Wednesday lunch */
int lf_debit(struct fx *f, const yn_card_facts *c, int64_t price_fen, yn_ledger_result *r);
void lf_topup(struct fx *f, const char *card_no, int64_t fen);
/* n meals of ¥15 with the next tap ids, a key card and a senior card in turn */
void lf_sell(struct fx *f, int n);
/* the log (stderr) into a file until lf_log_end(), which returns its text */
void lf_log_begin(const struct fx *f);
const char *lf_log_end(void);
/* a tamperer: record seq's cash and price moved by fen (shares still add
 * up; the hash no longer matches), past the append-only triggers */
void lf_tamper(struct fx *f, int64_t seq, int64_t fen);
/* raw SQL on the file through a second connection */
int64_t lf_sql_i64(const char *path, const char *sql);
void lf_sql_exec(const char *path, const char *sql);
int64_t lf_journal_count(struct fx *f);
int64_t lf_wallet_of(struct fx *f, const char *card_no);
/* verify passes, every record counted, integrity_check ok */
void lf_assert_verifies(struct fx *f);
void lf_make_some_records(struct fx *f);
/* The test's ledger closed (its WAL checkpointed into the file) and copied
 * to `to`, then opened again: an older copy to put back later with
 * lf_put_back (the ledger as a lost WAL or a restored backup leaves it). */
void lf_snapshot(struct fx *f, const char *to);
void lf_put_back(struct fx *f, const char *from);
/* A ledger that lost records the district holds: kept meals sold, an older
 * copy taken, lost more sold, uploaded (the high-water mark raised to
 * kept + lost), then the older copy put back. Returns the district's copy of
 * the lost records (malloc'd, free() it). */
yn_ledger_record *lf_lose_records(struct fx *f, int kept, int lost);
/* Every card row of the file at path, as one text (to compare two files). */
char *lf_cards_text(const char *path);
size_t lf_read_policy_doc(char *doc, size_t size);

#endif
