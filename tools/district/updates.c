/* updates.c — the update document for one terminal (updates.h). */
#include "updates.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "rules.h"

/* One part of the document being filled: entries after `after` in key order. */
struct part {
    const char *terminal;
    json_t *items;    /* entries that passed */
    int64_t last;     /* key of the last entry looked at */
    int64_t scanned;  /* entries looked at */
    int64_t skipped;  /* entries left out */
    bool more;        /* stopped at YN_UPDATES_ITEMS or YN_UPDATES_SCAN */
    int64_t page_len; /* rows of the current page */
};

static atomic_long skip_logs;

/* A bad entry is left out; the log says which (the first 50, then every
 * 1,000th, so a bad row does not flood it at every sync). */
static void skip(struct part *p, const char *kind, const char *key, const yn_rules_fault *f)
{
    p->skipped++;
    long n = atomic_fetch_add(&skip_logs, 1);
    if (n < 50 || n % 1000 == 0)
        fprintf(stderr,
                "yinian-district: update for %s: %s %s left out, a terminal would refuse it:"
                " %s: %s (yinian-district check lists such entries, fix removes them)\n",
                p->terminal, kind, key, f->field, f->why);
}

/* Before each row: whether there is room; false stops the page. */
static bool room(struct part *p)
{
    p->page_len++;
    if (json_array_size(p->items) >= YN_UPDATES_ITEMS || p->scanned >= YN_UPDATES_SCAN) {
        p->more = true;
        return false;
    }
    p->scanned++;
    return true;
}

static int roster_row(void *arg, const yn_db_row *row)
{
    struct part *p = arg;
    if (!room(p))
        return YN_ELIMIT;
    yn_card_facts c;
    yn_rules_fault f;
    p->last = yn_db_int(row, 7);
    if (!yn_db_card_of(row, &c, &f) || yn_rules_roster_card(&c, &f) != YN_OK) {
        skip(p, "roster card", yn_db_text(row, 0), &f);
        return YN_OK;
    }
    json_t *card = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}", "card_no", c.card_no, "birth_ymd",
                             (json_int_t)c.birth_ymd, "flags", (json_int_t)c.flags, "district",
                             (json_int_t)c.district, "street", (json_int_t)c.street, "expiry_ymd",
                             (json_int_t)c.expiry_ymd);
    if (card && c.ident[0]) /* an entry is the card's whole state: no ident unbinds */
        json_object_set_new(card, "ident", json_string(c.ident));
    json_array_append_new(p->items, card);
    return YN_OK;
}

static int blacklist_row(void *arg, const yn_db_row *row)
{
    struct part *p = arg;
    if (!room(p))
        return YN_ELIMIT;
    yn_ledger_blacklist_entry e = {.seq = yn_db_int(row, 0), .lost = yn_db_int(row, 2) != 0};
    const char *card_no = yn_db_text(row, 1), *ident = yn_db_text(row, 3);
    snprintf(e.card_no, sizeof e.card_no, "%s", card_no);
    snprintf(e.ident, sizeof e.ident, "%s", ident);
    p->last = e.seq;
    yn_rules_fault f = {"card_no", "must be 1..19 bytes of graphic ASCII"};
    if (strlen(card_no) >= sizeof e.card_no || strlen(ident) >= sizeof e.ident ||
        yn_rules_blacklist(&e, &f) != YN_OK) {
        skip(p, e.ident[0] ? "blacklist change of identifier" : "blacklist change of card",
             e.ident[0] ? ident : card_no, &f);
        return YN_OK;
    }
    /* a change names the card number or the identifier, never both */
    json_array_append_new(p->items, json_pack("{s:I, s:s, s:b}", "seq", (json_int_t)e.seq,
                                              e.ident[0] ? "ident" : "card_no",
                                              e.ident[0] ? e.ident : e.card_no, "lost", e.lost));
    return YN_OK;
}

static int allocation_row(void *arg, const yn_db_row *row)
{
    struct part *p = arg;
    if (!room(p))
        return YN_ELIMIT;
    yn_ledger_alloc a = {.amount_fen = yn_db_int(row, 4)};
    const char *id = yn_db_text(row, 1), *card_no = yn_db_text(row, 2),
               *source = yn_db_text(row, 3);
    snprintf(a.id, sizeof a.id, "%s", id);
    snprintf(a.card_no, sizeof a.card_no, "%s", card_no);
    snprintf(a.source, sizeof a.source, "%s", source);
    p->last = yn_db_int(row, 0);
    yn_rules_fault f = {"id", "too long"};
    if (strlen(id) >= sizeof a.id || strlen(card_no) >= sizeof a.card_no ||
        strlen(source) >= sizeof a.source || yn_rules_alloc(&a, &f) != YN_OK) {
        skip(p, "allocation", id, &f);
        return YN_OK;
    }
    json_array_append_new(p->items,
                          json_pack("{s:s, s:s, s:s, s:I}", "id", a.id, "card_no", a.card_no,
                                    "source", a.source, "amount_fen", (json_int_t)a.amount_fen));
    return YN_OK;
}

/* Fill p from the entries after p->last, page by page, until full or done. */
static int fill(yn_db *db, const char *sql, yn_db_each each, struct part *p)
{
    for (;;) {
        p->page_len = 0;
        int rc = YN_DB_RUN(db, sql, each, p, DB_INT(p->last), DB_INT(YN_UPDATES_ITEMS + 1));
        if (rc == YN_ELIMIT || (rc == YN_OK && p->page_len <= YN_UPDATES_ITEMS))
            return YN_OK; /* full, or the last page */
        if (rc != YN_OK)
            return rc;
    }
}

struct newest_policy {
    char *json;
    int64_t skipped;
    const char *terminal;
};

static int policy_row(void *arg, const yn_db_row *row)
{
    struct newest_policy *np = arg;
    const char *text = yn_db_text(row, 1);
    yn_policy *pol = NULL;
    char err[200];
    if (yn_policy_load(text, strlen(text), &pol, err, sizeof err) == YN_OK &&
        yn_policy_version(pol) == yn_db_int(row, 0)) {
        yn_policy_free(pol);
        np->json = strdup(text);
        return np->json ? YN_ELIMIT : YN_ENOMEM; /* found: stop */
    }
    yn_policy_free(pol);
    np->skipped++;
    fprintf(stderr, "yinian-district: update for %s: policy version %lld left out: %s\n",
            np->terminal, (long long)yn_db_int(row, 0), pol ? "version differs" : err);
    return YN_OK;
}

int yn_updates_build(yn_db *db, const char *terminal, const yn_updates_have *have, int64_t now_ms,
                     char **payload, int64_t *skipped)
{
    *payload = NULL;
    *skipped = 0;
    struct part roster = {.terminal = terminal, .items = json_array(), .last = have->roster};
    struct part bl = {.terminal = terminal, .items = json_array(), .last = have->blacklist};
    struct part alloc = {.terminal = terminal, .items = json_array(), .last = have->allocations};
    struct newest_policy np = {.terminal = terminal};
    json_t *doc = json_object();
    int64_t version = 0;
    int rc = roster.items && bl.items && alloc.items && doc ? yn_db_begin(db, true) : YN_ENOMEM;
    bool in_tx = rc == YN_OK;
    if (rc == YN_OK)
        rc = yn_db_int_of(db,
                          "UPDATE terminals SET update_version = update_version + 1 WHERE id = $1"
                          " RETURNING update_version",
                          (const yn_db_val[]){DB_TEXT(terminal)}, 1, &version);
    if (rc == YN_OK)
        rc = fill(db,
                  "SELECT " YN_DB_CARD_COLUMNS ", version"
                  " FROM cards WHERE version > $1 ORDER BY version LIMIT $2",
                  roster_row, &roster);
    if (rc == YN_OK)
        rc = fill(db,
                  "SELECT seq, card_no, lost, ident FROM blacklist WHERE seq > $1 ORDER BY seq"
                  " LIMIT $2",
                  blacklist_row, &bl);
    if (rc == YN_OK)
        rc = fill(db,
                  "SELECT seq, id, card_no, source, amount_fen FROM allocations WHERE seq > $1"
                  " ORDER BY seq LIMIT $2",
                  allocation_row, &alloc);
    if (rc == YN_OK) {
        rc = YN_DB_RUN(db,
                       "SELECT version, json FROM policies WHERE version > $1"
                       " ORDER BY version DESC LIMIT $2",
                       policy_row, &np, DB_INT(have->policy), DB_INT(20));
        rc = rc == YN_ELIMIT ? YN_OK : rc;
    }
    if (in_tx && rc == YN_OK)
        rc = yn_db_commit(db);
    else if (in_tx)
        yn_db_rollback(db);
    if (rc == YN_OK) {
        json_object_set_new(doc, "v", json_integer(1));
        json_object_set_new(doc, "terminal", json_string(terminal));
        json_object_set_new(doc, "version", json_integer(version));
        json_object_set_new(doc, "server_utc_ms", json_integer(now_ms));
        if (json_array_size(roster.items))
            json_object_set_new(
                doc, "roster",
                json_pack("{s:I, s:O}", "version", (json_int_t)roster.last, "cards", roster.items));
        json_object_set_new(doc, "blacklist", json_incref(bl.items));
        if (alloc.scanned)
            json_object_set_new(
                doc, "allocations",
                json_pack("{s:I, s:O}", "seq", (json_int_t)alloc.last, "items", alloc.items));
        if (np.json)
            json_object_set_new(doc, "policy", json_string(np.json));
        json_object_set_new(doc, "more", json_boolean(roster.more || bl.more || alloc.more));
        *payload = json_dumps(doc, JSON_COMPACT);
        *skipped = roster.skipped + bl.skipped + alloc.skipped + np.skipped;
        if (!*payload)
            rc = YN_ENOMEM;
    }
    json_decref(roster.items);
    json_decref(bl.items);
    json_decref(alloc.items);
    json_decref(doc);
    free(np.json);
    return rc;
}
