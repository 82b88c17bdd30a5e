/* ledger_district.c — what the district sends: the roster, the blacklist,
 * policy documents, and whole update documents applied in one transaction. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_int.h"
#include "log.h"

static bool roster_ok(const yn_card_facts *cards, size_t n)
{
    if (!cards && n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!yn_lg_text_ok(cards[i].card_no, CARD_NO_MAX, false) ||
            (cards[i].ident[0] && !yn_ident_valid(cards[i].ident)))
            return false;
    return true;
}

/* Inside an open write transaction: upsert the roster entries (checked with
 * roster_ok) and note roster_version. Returns a SQLite code. */
static int roster_put_tx(yn_ledger *l, const yn_card_facts *cards, size_t n, int64_t roster_version)
{
    int rc = SQLITE_OK;
    sqlite3_stmt *s = l->st[ST_ROSTER_PUT];
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        if (cards[i].ident[0]) { /* the identifier leaves the card it was bound to */
            sqlite3_stmt *u = l->st[ST_IDENT_UNBIND];
            sqlite3_bind_text(u, 1, cards[i].ident, -1, SQLITE_STATIC);
            sqlite3_bind_text(u, 2, cards[i].card_no, -1, SQLITE_STATIC);
            if ((rc = yn_lg_run(l, ST_IDENT_UNBIND)) != SQLITE_OK)
                break;
        }
        sqlite3_bind_text(s, 1, cards[i].card_no, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 2, cards[i].birth_ymd);
        sqlite3_bind_int64(s, 3, cards[i].flags);
        sqlite3_bind_int64(s, 4, cards[i].district);
        sqlite3_bind_int64(s, 5, cards[i].street);
        sqlite3_bind_int(s, 6, cards[i].expiry_ymd);
        sqlite3_bind_int64(s, 7, roster_version);
        yn_lg_bind_text_or_null(s, 8, cards[i].ident);
        rc = yn_lg_run(l, ST_ROSTER_PUT);
    }
    if (rc == SQLITE_OK)
        rc = yn_lg_meta_put_i64(l, "roster_version", roster_version);
    return rc;
}

int yn_ledger_roster_put(yn_ledger *l, const yn_card_facts *cards, size_t n, int64_t roster_version)
{
    CHECK_READY(l);
    if (!roster_ok(cards, n))
        return YN_EINVAL;
    int rc = yn_lg_tx_begin(l, true);
    if (rc == SQLITE_OK)
        rc = roster_put_tx(l, cards, n, roster_version);
    if (rc == SQLITE_OK)
        rc = yn_lg_tx_commit(l);
    return rc == SQLITE_OK ? YN_OK : yn_lg_fail(l, rc, "roster update");
}

static bool blacklist_ok(const yn_ledger_blacklist_entry *e, size_t n)
{
    if (!e && n)
        return false;
    for (size_t i = 0; i < n; i++) /* a card number or an identifier, not both */
        if (e[i].seq <= 0 ||
            (e[i].card_no[0] ? !yn_lg_text_ok(e[i].card_no, CARD_NO_MAX, false) || e[i].ident[0]
                             : !yn_ident_valid(e[i].ident)))
            return false;
    return true;
}

/* Inside an open write transaction: apply the changes (checked with
 * blacklist_ok) in order. skip_applied: the leading ones at or below the seq
 * applied already are skipped (a document re-applied), else refused. *st =
 * YN_ESTALE when a seq is not above the one before it (logged; the caller
 * rolls back). Returns a SQLite code. */
static int blacklist_tx(yn_ledger *l, const yn_ledger_blacklist_entry *e, size_t n,
                        bool skip_applied, int *st)
{
    *st = YN_OK;
    int64_t last = 0;
    int rc = yn_lg_meta_get_i64(l, "blacklist_seq", &last);
    size_t i = 0;
    while (skip_applied && i < n && e[i].seq <= last)
        i++;
    bool any = i < n;
    sqlite3_stmt *s;
    for (; i < n && rc == SQLITE_OK; i++) {
        if (e[i].seq <= last) {
            yn_warn("ledger %s: blacklist change seq %" PRId64 " (card %s%s) refused: seq %" PRId64
                    " already applied; nothing of this update was applied",
                    l->path, e[i].seq, e[i].card_no, e[i].ident, last);
            *st = YN_ESTALE;
            return SQLITE_OK;
        }
        enum stmt_id id = e[i].card_no[0] ? ST_BLACKLIST_PUT : ST_IDENT_BL_PUT;
        s = l->st[id];
        sqlite3_bind_text(s, 1, e[i].card_no[0] ? e[i].card_no : e[i].ident, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, e[i].seq);
        sqlite3_bind_int(s, 3, e[i].lost);
        rc = yn_lg_run(l, id);
        last = e[i].seq;
    }
    if (rc == SQLITE_OK && any)
        rc = yn_lg_meta_put_i64(l, "blacklist_seq", last);
    return rc;
}

int yn_ledger_blacklist_apply_many(yn_ledger *l, const yn_ledger_blacklist_entry *e, size_t n)
{
    CHECK_READY(l);
    if (!blacklist_ok(e, n))
        return YN_EINVAL;
    int st = YN_OK;
    int rc = yn_lg_tx_begin(l, true);
    if (rc == SQLITE_OK)
        rc = blacklist_tx(l, e, n, false, &st);
    if (rc == SQLITE_OK && st != YN_OK) {
        yn_lg_rollback(l);
        return st;
    }
    if (rc == SQLITE_OK)
        rc = yn_lg_tx_commit(l);
    return rc == SQLITE_OK ? YN_OK : yn_lg_fail(l, rc, "blacklist update");
}

int yn_ledger_blacklist_apply(yn_ledger *l, int64_t seq, const char *card_no, bool lost)
{
    yn_ledger_blacklist_entry e = {.seq = seq, .lost = lost};
    if (!yn_lg_text_ok(card_no, CARD_NO_MAX, false))
        return YN_EINVAL;
    yn_lg_copy_str(e.card_no, sizeof e.card_no, card_no);
    return yn_ledger_blacklist_apply_many(l, &e, 1);
}

int yn_ledger_ident_card(yn_ledger *l, const char *ident, char card_no[20], bool *lost)
{
    CHECK_READY(l);
    if (!card_no || !yn_ident_valid(ident))
        return YN_EINVAL;
    card_no[0] = '\0';
    sqlite3_stmt *s = l->st[ST_IDENT_GET];
    sqlite3_bind_text(s, 1, ident, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        yn_lg_col_text(s, 0, card_no, CARD_NO_MAX);
        if (lost)
            *lost = sqlite3_column_int(s, 1) != 0;
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW)
        return yn_lg_read_fail(l, rc, "identifier lookup");
    return card_no[0] ? YN_OK : YN_ENOTFOUND;
}

int yn_ledger_roster_find(yn_ledger *l, const char *card_tail, int32_t birth_ymd,
                          yn_card_facts *out, size_t max, size_t *n)
{
    CHECK_READY(l);
    if (!n || (!out && max) || !yn_lg_text_ok(card_tail, CARD_NO_MAX, false) || birth_ymd <= 0)
        return YN_EINVAL;
    *n = 0;
    sqlite3_stmt *s = l->st[ST_ROSTER_FIND];
    sqlite3_bind_int(s, 1, birth_ymd);
    sqlite3_bind_text(s, 2, card_tail, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, (int64_t)max + 1);
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (*n < max) {
            yn_card_facts *f = &out[*n];
            memset(f, 0, sizeof *f);
            yn_lg_col_text(s, 0, f->card_no, sizeof f->card_no);
            f->birth_ymd = sqlite3_column_int(s, 1);
            f->flags = (uint32_t)sqlite3_column_int64(s, 2);
            f->district = (uint32_t)sqlite3_column_int64(s, 3);
            f->street = (uint32_t)sqlite3_column_int64(s, 4);
            f->expiry_ymd = sqlite3_column_int(s, 5);
            yn_lg_col_text(s, 6, f->ident, sizeof f->ident);
        }
        (*n)++;
    }
    sqlite3_reset(s);
    return rc == SQLITE_DONE ? YN_OK : yn_lg_read_fail(l, rc, "roster lookup");
}

int yn_ledger_manual_count(yn_ledger *l, int32_t local_ymd, int32_t *n)
{
    CHECK_READY(l);
    if (!n)
        return YN_EINVAL;
    sqlite3_stmt *s = l->st[ST_MANUAL_COUNT];
    sqlite3_bind_int(s, 1, local_ymd);
    int rc = sqlite3_step(s);
    *n = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : 0;
    sqlite3_reset(s);
    return rc == SQLITE_ROW ? YN_OK : yn_lg_read_fail(l, rc, "manual meals of the day");
}

int yn_ledger_blacklist_seq(yn_ledger *l, int64_t *seq)
{
    CHECK_READY(l);
    if (!seq)
        return YN_EINVAL;
    int rc = yn_lg_meta_get_i64(l, "blacklist_seq", seq);
    return rc == SQLITE_OK ? YN_OK : yn_lg_read_fail(l, rc, "blacklist seq");
}

/* A policy document's id and version, once yn_policy_load accepts it. */
struct policy_doc {
    char id[128];
    int64_t version;
};

static int policy_check(const char *json, size_t len, struct policy_doc *doc, char *err,
                        size_t errlen)
{
    yn_policy *p = NULL;
    int st = yn_policy_load(json, len, &p, err, errlen);
    if (st != YN_OK)
        return st;
    yn_lg_copy_str(doc->id, sizeof doc->id, yn_policy_id(p));
    doc->version = yn_policy_version(p);
    yn_policy_free(p);
    return YN_OK;
}

/* Inside an open write transaction: store a checked document (policy_check)
 * and, if activate, make it the active one. *st = YN_ESTALE / YN_EDUPLICATE
 * (err says why) when the same id is stored at that or a higher version:
 * nothing written. Returns a SQLite code. */
static int policy_store_tx(yn_ledger *l, const struct policy_doc *doc, const char *json, size_t len,
                           bool activate, char *err, size_t errlen, int *st)
{
    *st = YN_OK;
    sqlite3_stmt *s = NULL;
    int64_t top = -1;
    int rc =
        sqlite3_prepare_v2(l->db, "SELECT MAX(version) FROM policies WHERE id = ?1", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(s, 1, doc->id, -1, SQLITE_STATIC);
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
            top = sqlite3_column_int64(s, 0);
        rc = rc == SQLITE_ROW ? SQLITE_OK : rc;
        sqlite3_finalize(s);
    }
    if (rc == SQLITE_OK && top >= doc->version) {
        if (err && errlen)
            snprintf(err, errlen, "policy %s version %" PRId64 " not newer than stored %" PRId64,
                     doc->id, doc->version, top);
        *st = top == doc->version ? YN_EDUPLICATE : YN_ESTALE;
        return SQLITE_OK;
    }
    if (rc == SQLITE_OK && activate)
        rc = sqlite3_exec(l->db, "UPDATE policies SET active = 0 WHERE active = 1", NULL, NULL,
                          NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(l->db,
                                "INSERT INTO policies(id, version, json, active)"
                                " VALUES (?1, ?2, ?3, ?4)",
                                -1, &s, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(s, 1, doc->id, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 2, doc->version);
        sqlite3_bind_text(s, 3, json, (int)len, SQLITE_STATIC);
        sqlite3_bind_int(s, 4, activate);
        rc = sqlite3_step(s);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_finalize(s);
    }
    return rc;
}

int yn_ledger_policy_store(yn_ledger *l, const char *json, size_t len, bool activate, char *err,
                           size_t errlen)
{
    CHECK_READY(l);
    if (err && errlen)
        err[0] = '\0';
    if (!json)
        return YN_EINVAL;
    struct policy_doc doc;
    int st = policy_check(json, len, &doc, err, errlen);
    if (st != YN_OK)
        return st;
    int rc = yn_lg_tx_begin(l, true);
    if (rc == SQLITE_OK)
        rc = policy_store_tx(l, &doc, json, len, activate, err, errlen, &st);
    if (rc == SQLITE_OK && st != YN_OK) {
        yn_lg_tx_end(l); /* nothing written */
        return st;
    }
    if (rc == SQLITE_OK)
        rc = yn_lg_tx_commit(l);
    return rc == SQLITE_OK ? YN_OK : yn_lg_fail(l, rc, "policy store");
}

/* The parts in the order of yn_ledger_apply_update; the blacklist comes after
 * the allocations and the policy, so that a refused blacklist part shows that
 * everything written before it in the transaction is rolled back. */
int yn_ledger_apply_update(yn_ledger *l, const yn_ledger_update *u, char *err, size_t errlen)
{
    CHECK_READY(l);
    if (err && errlen)
        err[0] = '\0';
    if (!u || !roster_ok(u->cards, u->n_cards) || !blacklist_ok(u->blacklist, u->n_blacklist) ||
        (!u->allocs && u->n_allocs) || (!u->meta && u->n_meta)) {
        if (err && errlen)
            snprintf(err, errlen, "bad roster, blacklist, allocation or meta entry");
        return YN_EINVAL;
    }
    for (size_t i = 0; i < u->n_allocs; i++)
        if (!yn_lg_alloc_ok(&u->allocs[i])) {
            if (err && errlen)
                snprintf(err, errlen, "allocation %zu: bad id, card, source or amount", i);
            return YN_EINVAL;
        }
    for (size_t i = 0; i < u->n_meta; i++)
        if (!yn_lg_text_ok(u->meta[i].key, 64, false) || !u->meta[i].value) {
            if (err && errlen)
                snprintf(err, errlen, "meta entry %zu: bad key or value", i);
            return YN_EINVAL;
        }
    struct policy_doc doc;
    int st = YN_OK;
    if (u->policy_json && (st = policy_check(u->policy_json, u->policy_len, &doc, err, errlen)))
        return st;

    yn_ledger_record rec, last;
    bool appended = false;
    int rc = yn_lg_tx_begin(l, true);
    if (rc == SQLITE_OK && u->n_cards)
        rc = roster_put_tx(l, u->cards, u->n_cards, u->roster_version);
    for (size_t i = 0; rc == SQLITE_OK && i < u->n_allocs; i++) {
        rc = yn_lg_allocate_tx(l, &u->allocs[i], &u->alloc_when, &rec, &st);
        if (rc == SQLITE_OK && st == YN_OK) {
            last = rec;
            appended = true;
        }
    }
    st = YN_OK;
    if (rc == SQLITE_OK && u->policy_json) {
        char why[160];
        rc = policy_store_tx(l, &doc, u->policy_json, u->policy_len, u->policy_activate, why,
                             sizeof why, &st);
        if (st != YN_OK) /* the same or an older document: the stored one stays */
            yn_info("ledger %s: update: %s: kept as stored", l->path, why);
        st = YN_OK;
    }
    if (rc == SQLITE_OK)
        rc = blacklist_tx(l, u->blacklist, u->n_blacklist, true, &st);
    if (rc == SQLITE_OK && st != YN_OK) {
        yn_lg_rollback(l);
        if (err && errlen)
            snprintf(err, errlen, "blacklist seqs not increasing: nothing of the update applied");
        return st;
    }
    for (size_t i = 0; rc == SQLITE_OK && i < u->n_meta; i++)
        rc = yn_lg_meta_put_text(l, u->meta[i].key, u->meta[i].value);
    if (rc == SQLITE_OK)
        rc = appended ? yn_lg_tx_commit_append(l, &last) : yn_lg_tx_commit(l);
    if (rc != SQLITE_OK) {
        st = yn_lg_fail(l, rc, "update");
        if (err && errlen)
            snprintf(err, errlen, "storage: %s", yn_strerror(st));
        return st;
    }
    return YN_OK;
}

int yn_ledger_policy_active(yn_ledger *l, char **json, size_t *len, char *id, size_t idlen,
                            int64_t *version)
{
    CHECK_READY(l);
    if (!json)
        return YN_EINVAL;
    *json = NULL;
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(l->db, "SELECT id, version, json FROM policies WHERE active = 1",
                                -1, &s, NULL);
    if (rc != SQLITE_OK)
        return yn_lg_read_fail(l, rc, "policy read");
    int st = YN_ENOTFOUND;
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        int n = sqlite3_column_bytes(s, 2);
        *json = malloc((size_t)n + 1);
        if (!*json) {
            st = YN_ENOMEM;
        } else {
            memcpy(*json, sqlite3_column_text(s, 2), (size_t)n);
            (*json)[n] = '\0';
            if (len)
                *len = (size_t)n;
            if (id && idlen)
                yn_lg_copy_str(id, idlen, (const char *)sqlite3_column_text(s, 0));
            if (version)
                *version = sqlite3_column_int64(s, 1);
            st = YN_OK;
        }
    } else if (rc != SQLITE_DONE) {
        st = yn_lg_status_of(rc);
    }
    sqlite3_finalize(s);
    return st;
}
