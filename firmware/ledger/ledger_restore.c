/* ledger_restore.c — records the ledger lost (a lost WAL, an older copy put
 * back), restored from the district, which holds them exactly as this
 * terminal sent them: appended with the same seq and hash, the card rows
 * rebuilt from them in the same transaction. firmware/ledger/LEDGER.md, "Restore". */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_int.h"
#include "log.h"
#include "rules.h"

/* A record fit to be journaled at all: ours, a known kind, shares adding up. */
static bool record_sane(const yn_ledger *l, const yn_ledger_record *r)
{
    int64_t layers_fen = 0;
    for (int i = 0; i < r->n_layers && i < YN_POLICY_MAX_LAYERS; i++)
        layers_fen += r->layers[i].fen;
    return strcmp(r->terminal, l->terminal) == 0 && r->kind >= YN_LEDGER_MEAL &&
           r->kind <= YN_LEDGER_KIND_MAX && r->n_layers >= 0 &&
           r->n_layers <= YN_POLICY_MAX_LAYERS &&
           r->price_fen == r->subsidy_fen + r->wallet_fen + r->cash_fen &&
           (r->n_layers == 0 || layers_fen == r->subsidy_fen) && r->reason != YN_REASON_COUNT &&
           yn_lg_text_ok(r->card_no, CARD_NO_MAX, false) && yn_rules_identified(r, NULL) == YN_OK;
}

/* Inside the write transaction: append r (the next record) as it is, and
 * bring its card row, the allocation ids and the day index along. *why says
 * what does not fit (then nothing is to be committed). */
static int restore_one(yn_ledger *l, const yn_ledger_record *r, const char **why)
{
    *why = NULL;
    if (!record_sane(l, r)) {
        *why = "not a record of this terminal, or its shares do not add up";
        return SQLITE_OK;
    }
    struct card_state cs;
    int rc = yn_lg_state_get(l, r->card_no, &cs);
    if (rc != SQLITE_OK)
        return rc;
    if (r->card_prev_seq != cs.last_seq || r->wallet_after_fen != cs.balance_fen - r->wallet_fen) {
        *why = "it does not follow its card's row here (previous record or balance)";
        return SQLITE_OK;
    }
    yn_ledger_record reversed, copy = *r;
    bool found = false;
    if (r->kind == YN_LEDGER_REVERSAL &&
        ((rc = yn_lg_record_by(l, ST_BY_SEQ, r->reverses_seq, &reversed, &found)) != SQLITE_OK ||
         !found || reversed.kind != YN_LEDGER_MEAL)) {
        *why = rc == SQLITE_OK ? "it reverses a record that is not a meal here" : NULL;
        return rc;
    }
    if ((rc = yn_lg_append(l, &copy)) != SQLITE_OK) /* seq, prev_hash and hash from our head */
        return rc;
    if (copy.seq != r->seq || memcmp(copy.prev_hash, r->prev_hash, YN_LEDGER_HASH_LEN) != 0) {
        *why = "it does not chain to this ledger's head";
        return SQLITE_OK;
    }
    if (memcmp(copy.hash, r->hash, YN_LEDGER_HASH_LEN) != 0) {
        *why = "its hash recomputed here differs from the district's";
        return SQLITE_OK;
    }
    yn_lg_state_apply(&cs, &copy, found ? &reversed : NULL);
    if ((rc = yn_lg_state_put(l, r->card_no, &cs)) != SQLITE_OK)
        return rc;
    if (r->kind == YN_LEDGER_ALLOCATION) {
        sqlite3_stmt *s = l->st[ST_ALLOC_PUT];
        sqlite3_bind_text(s, 1, r->ref, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, r->seq);
        rc = yn_lg_run(l, ST_ALLOC_PUT);
    }
    return rc;
}

int yn_ledger_restore_append(yn_ledger *l, const yn_ledger_record *recs, size_t n,
                             int64_t *appended)
{
    if (appended)
        *appended = 0;
    CHECK_READY(l);
    if (!recs && n)
        return YN_EINVAL;
    if (l->read_only)
        return YN_EROFS;
    int rc = yn_lg_tx_begin(l, true);
    l->head_valid = false; /* read the head afresh: it is what the records must follow */
    if (rc == SQLITE_OK)
        rc = yn_lg_head_current(l);
    int64_t head = l->head_seq, count = 0;
    const yn_ledger_record *last = NULL;
    const char *why = NULL;
    for (size_t i = 0; rc == SQLITE_OK && !why && i < n; i++) {
        if (recs[i].seq <= head)
            continue; /* the frame began below the head */
        if (recs[i].seq != head + count + 1) {
            why = "it does not follow the record before";
        } else {
            rc = restore_one(l, &recs[i], &why);
            last = &recs[i];
            count++;
        }
        if (why) {
            yn_lg_rollback(l);
            yn_err("ledger %s: restore: record %" PRId64 " from the district refused, nothing "
                   "restored: %s: the district's copy and this ledger disagree; keep both and "
                   "run yinian-diag ledger verify",
                   l->path, recs[i].seq, why);
            return YN_ECORRUPT;
        }
    }
    if (rc == SQLITE_OK && last)
        rc = yn_lg_tx_commit_append(l, last);
    else if (rc == SQLITE_OK)
        yn_lg_tx_end(l);
    if (rc != SQLITE_OK)
        return yn_lg_fail(l, rc, "restore from the district");
    if (count)
        yn_info("ledger %s: restore: records %" PRId64 "-%" PRId64 " appended as the district "
                "holds them",
                l->path, head + 1, head + count);
    if (appended)
        *appended = count;
    return YN_OK;
}

int yn_ledger_restore_finish(yn_ledger *l, int64_t first_seq, int64_t held_seq, int64_t now_utc_s)
{
    CHECK_READY(l);
    if (l->read_only)
        return YN_EROFS;
    int64_t head = 0;
    uint8_t head_hash[YN_LEDGER_HASH_LEN];
    int st = yn_ledger_head(l, &head, head_hash);
    if (st != YN_OK)
        return st;
    if (head < held_seq) {
        yn_err("ledger %s: restore not finished: the journal ends at %" PRId64
               " but the district holds records up to %" PRId64,
               l->path, head, held_seq);
        return YN_EINVAL;
    }
    yn_ledger_health h;
    st = yn_ledger_check(l, YN_LEDGER_CHECK_TAIL, &h);
    if (st != YN_OK && st != YN_ESTALE)
        return st;
    int64_t mark = h.mark_seq;
    bool any = first_seq >= 1 && first_seq <= head; /* records came back */
    int rc = yn_lg_tx_begin(l, true);
    if (rc == SQLITE_OK)
        rc = yn_lg_meta_put_i64(l, "restored_first", any ? first_seq : 0);
    if (rc == SQLITE_OK)
        rc = yn_lg_meta_put_i64(l, "restored_last", any ? head : 0);
    if (rc == SQLITE_OK)
        rc = yn_lg_meta_put_i64(l, "restored_mark", mark);
    if (rc == SQLITE_OK)
        rc = yn_lg_meta_put_i64(l, "restored_utc_s", now_utc_s);
    if (rc == SQLITE_OK)
        rc = yn_lg_tx_commit(l);
    if (rc != SQLITE_OK)
        return yn_lg_fail(l, rc, "restore note");
    if (mark > head)
        yn_warn("ledger %s: restore: the district holds records up to %" PRId64 " only; records "
                "%" PRId64 "-%" PRId64 " (below the high-water mark) never reached it and are "
                "not held anywhere: the next sales take those seqs",
                l->path, held_seq, head + 1, mark);
    yn_info("ledger %s: restore finished: journal head %" PRId64 ", the district holds %" PRId64,
            l->path, head, held_seq);
    return yn_lg_mark_lower(l, head, head_hash);
}
