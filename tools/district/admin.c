/* admin.c — the district's admin commands (admin.h). */
#include "admin.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "fileio.h"
#include "ingest.h"
#include "policy.h"
#include "rules.h"
#include "terminals.h"
#include "timeutil.h"
#include "update.h"

#define CSV_MAX       (512u << 20) /* bytes of a card or token CSV */
#define CSV_LINE_MAX  512
#define ERRORS_SHOWN  20 /* bad lines listed before the count */
#define CHECK_KEY_MAX 128

static int storage_failed(yn_db *db, const char *what, int status)
{
    fprintf(stderr, "yinian-district: %s: %s%s\n", what, yn_db_errmsg(db),
            status == YN_EBUSY ? " (the database is busy: try again)" : "");
    return YN_EXIT_RUNTIME;
}

/* --- tokens ------------------------------------------------------------------ */

int yn_admin_token(yn_db *db, const char *terminal, const char *canteen)
{
    char token[33];
    int rc = yn_terminal_token_new(db, terminal, canteen, token);
    if (rc == YN_EINVAL) {
        fprintf(stderr, "enrol-token: terminal id must be 1..16 and canteen 1..64 characters of"
                        " printable ASCII without spaces\n");
        return YN_EXIT_USAGE;
    }
    if (rc != YN_OK)
        return storage_failed(db, "enrol-token", rc);
    printf("%s\n", token);
    return YN_EXIT_OK;
}

/* Split a CSV line (no quoting) into n fields, or n + 1 when allow_extra
 * (then field[n] is NULL unless present); false otherwise. */
static bool split_upto(char *line, char **field, int n, bool allow_extra)
{
    line[strcspn(line, "\r\n")] = '\0';
    for (int i = 0; i < n; i++) {
        field[i] = strsep(&line, ",");
        if (!field[i])
            return false;
    }
    if (allow_extra)
        field[n] = strsep(&line, ",");
    return line == NULL;
}

static bool split(char *line, char **field, int n)
{
    return split_upto(line, field, n, false);
}

int yn_admin_tokens(yn_db *db, const char *csv_path)
{
    FILE *f;
    size_t size;
    char err[300], line[CSV_LINE_MAX];
    if (yn_file_open_regular(csv_path, CSV_MAX, &f, &size, err, sizeof err) != YN_OK) {
        fprintf(stderr, "enrol-tokens: %s\n", err);
        return YN_EXIT_USAGE;
    }
    int rc = YN_EXIT_OK, lineno = 0;
    for (int pass = 0; pass < 2 && rc == YN_EXIT_OK; pass++) { /* check all, then make */
        rewind(f);
        lineno = 0;
        while (rc == YN_EXIT_OK && fgets(line, sizeof line, f)) {
            char *fl[2];
            lineno++;
            if (!split(line, fl, 2) || !yn_rules_id(fl[0]) || !yn_rules_ref(fl[1])) {
                fprintf(stderr, "%s:%d: expected terminal,canteen (ids of printable ASCII)\n",
                        csv_path, lineno);
                rc = YN_EXIT_USAGE;
            } else if (pass == 1) {
                char token[33];
                int st = yn_terminal_token_new(db, fl[0], fl[1], token);
                if (st != YN_OK)
                    rc = storage_failed(db, "enrol-tokens", st);
                else
                    printf("%s,%s\n", fl[0], token);
            }
        }
    }
    fclose(f);
    return rc;
}

/* --- cards ------------------------------------------------------------------- */

/* One line of a card CSV into c; false with the field and why. A seventh
 * column, ident, binds an identity-only card's identifier to the card
 * (firmware/core/CARD.md §8; what `yinian-card enrol` writes). */
static bool card_line(char *line, yn_card_facts *c, yn_rules_fault *f)
{
    char *fl[7];
    int64_t v[5];
    static const char *const names[5] = {"birth_ymd", "flags", "district", "street", "expiry_ymd"};
    if (!split_upto(line, fl, 6, true)) {
        *f = (yn_rules_fault){"line", "expected card_no,birth_ymd,flags,district,street,"
                                      "expiry_ymd[,ident]"};
        return false;
    }
    if (fl[6] && fl[6][0] && !yn_ident_valid(fl[6])) {
        *f = (yn_rules_fault){"ident", yn_ident_fault(fl[6])};
        return false;
    }
    if (strlen(fl[0]) >= sizeof c->card_no || !yn_rules_card_no(fl[0])) {
        *f = (yn_rules_fault){"card_no", "must be 1..19 bytes of graphic ASCII"};
        return false;
    }
    for (int i = 0; i < 5; i++)
        if (!yn_rules_parse_int(fl[1 + i], 0, UINT32_MAX, &v[i])) {
            *f = (yn_rules_fault){names[i], "not a whole number 0..4294967295"};
            return false;
        }
    memset(c, 0, sizeof *c);
    snprintf(c->card_no, sizeof c->card_no, "%s", fl[0]);
    c->birth_ymd = (int32_t)(v[0] > INT32_MAX ? -1 : v[0]);
    c->flags = (uint32_t)v[1];
    c->district = (uint32_t)v[2];
    c->street = (uint32_t)v[3];
    c->expiry_ymd = (int32_t)(v[4] > INT32_MAX ? -1 : v[4]);
    snprintf(c->ident, sizeof c->ident, "%s", fl[6] ? fl[6] : "");
    return yn_rules_roster_card(c, f) == YN_OK;
}

static int count_row(void *arg, const yn_db_row *row)
{
    (void)row;
    (*(int64_t *)arg)++;
    return YN_OK;
}

/* One short transaction: n cards (distinct), each change numbered with the
 * next roster version; unchanged cards keep theirs. They are staged in a
 * temporary table (one COPY with PostgreSQL) and merged with one statement. */
/* The first row's text: an identifier bound to two cards and those cards. */
static int twice_row(void *arg, const yn_db_row *row)
{
    snprintf(arg, 160, "%.22s (cards %.19s and %.19s)", yn_db_text(row, 0), yn_db_text(row, 1),
             yn_db_text(row, 2));
    return YN_EDUPLICATE;
}

static int put_cards(yn_db *db, const yn_card_facts *c, size_t n, int64_t *changed, char twice[160])
{
    int64_t v;
    int rc = yn_db_begin(db, true);
    if (rc == YN_OK)
        rc = yn_db_counter_take(db, "roster_version", (int64_t)n, &v);
    if (rc == YN_OK)
        rc = yn_db_run(db,
                       "CREATE TEMP TABLE IF NOT EXISTS cards_in(card_no TEXT, birth_ymd BIGINT,"
                       " flags BIGINT, district BIGINT, street BIGINT, expiry_ymd BIGINT,"
                       " version BIGINT, ident TEXT)",
                       NULL, 0, NULL, NULL);
    if (rc == YN_OK)
        rc = yn_db_stage_cards(db, c, n, v);
    if (rc == YN_OK)
        rc = yn_db_run(db,
                       "INSERT INTO cards SELECT * FROM cards_in WHERE true ON CONFLICT(card_no)"
                       " DO UPDATE SET birth_ymd = excluded.birth_ymd, flags = excluded.flags,"
                       " district = excluded.district, street = excluded.street,"
                       " expiry_ymd = excluded.expiry_ymd, version = excluded.version,"
                       " ident = excluded.ident"
                       " WHERE cards.birth_ymd <> excluded.birth_ymd OR"
                       " cards.flags <> excluded.flags OR cards.district <> excluded.district OR"
                       " cards.street <> excluded.street OR"
                       " cards.expiry_ymd <> excluded.expiry_ymd OR cards.ident <> excluded.ident"
                       " RETURNING 1",
                       NULL, 0, count_row, changed);
    /* one card per identifier: a group that would bind one to two cards is
     * refused whole (YN_EDUPLICATE, rolled back below; twice says which) */
    if (rc == YN_OK)
        rc = yn_db_run(db,
                       "SELECT ident, MIN(card_no), MAX(card_no) FROM cards WHERE ident <> ''"
                       " AND ident IN (SELECT ident FROM cards_in) GROUP BY ident"
                       " HAVING COUNT(*) > 1 ORDER BY ident LIMIT 1",
                       NULL, 0, twice_row, twice);
    if (rc == YN_OK)
        rc = yn_db_run(db, "DELETE FROM cards_in", NULL, 0, NULL, NULL);
    if (rc == YN_OK)
        return yn_db_commit(db);
    yn_db_rollback(db);
    return rc;
}

static int by_card_no(const void *a, const void *b)
{
    const yn_card_facts *x = a, *y = b;
    int c = strcmp(x->card_no, y->card_no);
    return c ? c : x < y ? -1 : x > y; /* equal numbers: file order */
}

/* A card listed twice in one chunk: the later line wins (as in a file read
 * top to bottom). Sorts and compacts c; returns the count left. */
static size_t last_of_each(yn_card_facts *c, size_t n)
{
    qsort(c, n, sizeof *c, by_card_no);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && strcmp(c[i].card_no, c[i + 1].card_no) == 0)
            continue;
        c[k++] = c[i];
    }
    return k;
}

int yn_admin_import_cards(yn_db *db, const char *csv_path)
{
    FILE *f;
    size_t size;
    char err[300], line[CSV_LINE_MAX];
    if (yn_file_open_regular(csv_path, CSV_MAX, &f, &size, err, sizeof err) != YN_OK) {
        fprintf(stderr, "import-cards: %s\n", err);
        return YN_EXIT_USAGE;
    }
    /* pass 1: every line checked, nothing stored if one is bad */
    int lineno = 0, bad = 0;
    int64_t total = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        yn_card_facts c;
        yn_rules_fault why;
        if (lineno == 1 && strncmp(line, "card_no,", 8) == 0)
            continue;
        if (!strchr(line, '\n') && !feof(f)) {
            why = (yn_rules_fault){"line", "longer than 511 bytes"};
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
        } else if (card_line(line, &c, &why)) {
            total++;
            continue;
        }
        if (++bad <= ERRORS_SHOWN)
            fprintf(stderr, "%s:%d: %s: %s\n", csv_path, lineno, why.field, why.why);
    }
    bool read_failed = ferror(f) != 0;
    if (read_failed || bad) {
        if (bad > ERRORS_SHOWN)
            fprintf(stderr, "%s: %d more bad lines\n", csv_path, bad - ERRORS_SHOWN);
        fprintf(stderr, "import-cards: %s refused, nothing imported%s\n", csv_path,
                read_failed ? ": read error" : "");
        fclose(f);
        return read_failed ? YN_EXIT_RUNTIME : YN_EXIT_USAGE;
    }
    /* pass 2: short transactions */
    rewind(f);
    static yn_card_facts chunk[YN_ADMIN_CARDS_PER_TX];
    size_t n = 0;
    int64_t changed = 0, longest_ms = 0, transactions = 0;
    char twice[160] = "";
    int rc = YN_OK;
    lineno = 0;
    bool more = true;
    while (rc == YN_OK && more) {
        more = fgets(line, sizeof line, f) != NULL;
        lineno++;
        yn_rules_fault why;
        if (more && !(lineno == 1 && strncmp(line, "card_no,", 8) == 0) &&
            card_line(line, &chunk[n], &why))
            n++;
        if (n == YN_ADMIN_CARDS_PER_TX || (!more && n)) {
            int64_t t0 = yn_time_mono_ms();
            rc = put_cards(db, chunk, last_of_each(chunk, n), &changed, twice);
            int64_t took = yn_time_mono_ms() - t0;
            struct timespec yield = {0, YN_ADMIN_YIELD_MS * 1000000L}; /* uploads' turn */
            nanosleep(&yield, NULL);
            longest_ms = took > longest_ms ? took : longest_ms;
            transactions++;
            n = 0;
        }
    }
    fclose(f);
    if (rc == YN_EDUPLICATE) {
        fprintf(stderr,
                "import-cards: stopped at the group of up to %d lines ending at line %d:"
                " identifier %s would be bound to two cards; the cards before that group are"
                " stored. One identifier belongs to one card: bind it to one (a card bound"
                " elsewhere: import that card without it, or with its new identifier, in the"
                " same file) and run the import again\n",
                YN_ADMIN_CARDS_PER_TX, more ? lineno : lineno - 1, twice);
        return YN_EXIT_USAGE;
    }
    if (rc != YN_OK) {
        fprintf(stderr,
                "import-cards: stopped at line %d; the cards before it are stored, run"
                " the same import again to finish it\n",
                lineno);
        return storage_failed(db, "import-cards", rc);
    }
    printf("%lld cards imported (%lld changed) in %lld transactions, the longest %lld ms\n",
           (long long)total, (long long)changed, (long long)transactions, (long long)longest_ms);
    return YN_EXIT_OK;
}

/* --- lost, found, allocations, policies ----------------------------------------- */

int yn_admin_lost(yn_db *db, const char *name, bool lost, bool by_ident)
{
    const char *cmd = by_ident ? (lost ? "lost-ident" : "found-ident") : (lost ? "lost" : "found");
    if (by_ident && !yn_ident_valid(name)) {
        fprintf(stderr,
                "%s: identifier \"%s\" refused: %s (the form yinian-card enrol writes:"
                " A:04A1B2C3D4E5F6)\n",
                cmd, name, yn_ident_fault(name));
        return YN_EXIT_USAGE;
    }
    if (!by_ident && !yn_rules_card_no(name)) {
        fprintf(stderr,
                "%s: card number \"%s\" refused: 1..19 characters of printable ASCII"
                " without spaces, as on the card\n",
                cmd, name);
        return YN_EXIT_USAGE;
    }
    int64_t seq = 0;
    int rc = yn_db_begin(db, true);
    if (rc == YN_OK)
        rc = yn_db_blacklist_put(db, by_ident ? "" : name, by_ident ? name : "", lost, &seq);
    if (rc == YN_OK)
        rc = yn_db_commit(db);
    else
        yn_db_rollback(db);
    if (rc != YN_OK)
        return storage_failed(db, cmd, rc);
    printf("%s %s %s: blacklist change %lld, sent with the next update\n",
           by_ident ? "identity-only card" : "card", name, lost ? "reported lost" : "found again",
           (long long)seq);
    return YN_EXIT_OK;
}

int yn_admin_allocate(yn_db *db, const char *id, const char *card_no, const char *source,
                      const char *amount_fen)
{
    yn_ledger_alloc a;
    yn_rules_fault f = {"amount_fen", "must be a whole number of fen, 1..100000000"};
    bool ok = strlen(id) < sizeof a.id && strlen(card_no) < sizeof a.card_no &&
              strlen(source) < sizeof a.source &&
              yn_rules_parse_int(amount_fen, 1, YN_RULES_MAX_FEN, &a.amount_fen);
    if (ok) {
        snprintf(a.id, sizeof a.id, "%s", id);
        snprintf(a.card_no, sizeof a.card_no, "%s", card_no);
        snprintf(a.source, sizeof a.source, "%s", source);
        ok = yn_rules_alloc(&a, &f) == YN_OK;
    } else if (strlen(id) >= sizeof a.id || strlen(card_no) >= sizeof a.card_no ||
               strlen(source) >= sizeof a.source) {
        f = (yn_rules_fault){"id, card_no or source", "too long"};
    }
    if (!ok) {
        fprintf(stderr, "allocate: %s \"%s\" refused: %s\n", f.field,
                !strcmp(f.field, "amount_fen") ? amount_fen
                : !strcmp(f.field, "id")       ? id
                : !strcmp(f.field, "source")   ? source
                                               : card_no,
                f.why);
        return YN_EXIT_USAGE;
    }
    int64_t seq = 0, existing = 0;
    int rc = yn_db_begin(db, true);
    if (rc == YN_OK) {
        rc = yn_db_int_of(db, "SELECT seq FROM allocations WHERE id = $1",
                          (const yn_db_val[]){DB_TEXT(a.id)}, 1, &existing);
        rc = rc == YN_OK ? YN_EDUPLICATE : rc == YN_ENOTFOUND ? YN_OK : rc;
    }
    if (rc == YN_OK)
        rc = yn_db_counter_take(db, "alloc_seq", 1, &seq);
    if (rc == YN_OK)
        rc = YN_DB_RUN(db, "INSERT INTO allocations VALUES ($1, $2, $3, $4, $5)", NULL, NULL,
                       DB_INT(seq), DB_TEXT(a.id), DB_TEXT(a.card_no), DB_TEXT(a.source),
                       DB_INT(a.amount_fen));
    if (rc == YN_OK)
        rc = yn_db_commit(db);
    else
        yn_db_rollback(db);
    if (rc == YN_EDUPLICATE) {
        fprintf(stderr, "allocate: allocation id \"%s\" exists already (ids are used once)\n",
                a.id);
        return YN_EXIT_USAGE;
    }
    if (rc != YN_OK)
        return storage_failed(db, "allocate", rc);
    printf("allocation %s: %lld fen to card %s from %s, sent with the next update\n", a.id,
           (long long)a.amount_fen, a.card_no, a.source);
    return YN_EXIT_OK;
}

int yn_admin_publish_policy(yn_db *db, const char *path)
{
    char *text = NULL, err[300];
    size_t len;
    yn_policy *p = NULL;
    if (yn_file_read_regular(path, YN_UPDATE_MAX_POLICY, &text, &len, err, sizeof err) != YN_OK ||
        yn_policy_load(text, len, &p, err, sizeof err) != YN_OK) {
        fprintf(stderr, "publish-policy: %s: policy refused: %s\n", path, err);
        free(text);
        return YN_EXIT_USAGE;
    }
    int64_t version = yn_policy_version(p);
    yn_policy_free(p);
    int rc = YN_DB_RUN(db, "INSERT INTO policies VALUES ($1, $2)", NULL, NULL, DB_INT(version),
                       DB_TEXT(text));
    free(text);
    if (rc == YN_EDUPLICATE) {
        fprintf(stderr, "publish-policy: policy version %lld already published\n",
                (long long)version);
        return YN_EXIT_USAGE;
    }
    if (rc != YN_OK)
        return storage_failed(db, "publish-policy", rc);
    printf("policy version %lld published\n", (long long)version);
    return YN_EXIT_OK;
}

/* --- import of a USB stick ------------------------------------------------------- */

static int names_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int yn_admin_import_dir(yn_db *db, const char *dir, const uint8_t *district_priv)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "import: %s: cannot open the folder\n", dir);
        return YN_EXIT_USAGE;
    }
    char **names = NULL;
    size_t n = 0;
    const struct dirent *e;
    bool oom = false;
    while ((e = readdir(d)) && !oom) {
        size_t l = strlen(e->d_name);
        if (strncmp(e->d_name, "batch-", 6) != 0 || l < 11 || strcmp(e->d_name + l - 4, ".ynb"))
            continue;
        char **grown = realloc(names, (n + 1) * sizeof *names);
        oom = !grown || !(grown[n] = strdup(e->d_name));
        names = grown ? grown : names;
        n += !oom;
    }
    closedir(d);
    if (oom) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        fprintf(stderr, "import: out of memory\n");
        return YN_EXIT_RUNTIME;
    }
    if (n == 0)
        fprintf(stderr, "import: %s: no batch-*.ynb files: not a yinian-diag export folder\n", dir);
    if (n)
        qsort(names, n, sizeof *names, names_cmp);
    int rc = n ? YN_EXIT_OK : YN_EXIT_USAGE;
    int64_t stored = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096], ack_path[4096], err[300];
        char *frame = NULL, *text = NULL;
        size_t len;
        yn_ingest g;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (yn_file_read_regular(path, YN_BATCH_MAX_FRAME, &frame, &len, err, sizeof err) !=
            YN_OK) {
            fprintf(stderr, "import: %s: skipped\n", err);
            rc = YN_EXIT_RUNTIME;
        } else if (yn_ingest_frame(db, (const uint8_t *)frame, len, district_priv,
                                   (int64_t)time(NULL), &g) != 0) {
            fprintf(stderr, "import: %s: refused (%u %s): %s\n", path, g.status, g.code, g.message);
            rc = YN_EXIT_RUNTIME;
        } else if (!g.ack) { /* a key-pair terminal's: the district key signs its acknowledgement */
            fprintf(stderr,
                    "import: %s: %s; no acknowledgement written: terminal %s is enrolled with a "
                    "key pair, whose acknowledgements the district key signs: import again with "
                    "--district-key FILE\n",
                    path, g.message, g.hdr.terminal);
            stored += g.stored;
            rc = YN_EXIT_RUNTIME;
            yn_ingest_done(&g);
        } else {
            snprintf(ack_path, sizeof ack_path, "%s/ack-%.*s.json", dir,
                     (int)(strlen(names[i]) - 10), names[i] + 6);
            if (asprintf(&text, "%s\n", g.ack) < 0 ||
                yn_file_write_atomic(ack_path, text, strlen(text), 0644) != YN_OK) {
                fprintf(stderr, "import: %s: acknowledgement not written\n", ack_path);
                rc = YN_EXIT_RUNTIME;
            } else {
                printf("%s: terminal %s batch %lld records %lld..%lld: %s; %s written\n", names[i],
                       g.hdr.terminal, (long long)g.hdr.batch_id, (long long)g.hdr.first_seq,
                       (long long)g.hdr.last_seq, g.message, ack_path);
                stored += g.stored;
            }
            free(text);
            yn_ingest_done(&g);
        }
        free(frame);
        free(names[i]);
    }
    free(names);
    if (n)
        printf("%zu batch files, %lld new records stored\n", n, (long long)stored);
    return rc;
}

/* --- check and fix ---------------------------------------------------------------- */

/* The bad entries of one table: their keys, for fix. */
struct bad_list {
    const char *table;
    char (*key)[CHECK_KEY_MAX];
    int64_t *num;
    size_t n, cap;
    int oom;
};

static void note_bad(struct bad_list *b, const char *key, int64_t num, const char *field,
                     const char *why)
{
    printf("%s %s: %s: %s\n", b->table, key, field, why);
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        void *k = realloc(b->key, cap * sizeof *b->key), *m = k ? realloc(b->num, cap * 8) : NULL;
        if (k)
            b->key = k;
        if (!m) {
            b->oom = 1;
            return;
        }
        b->num = m;
        b->cap = cap;
    }
    snprintf(b->key[b->n], CHECK_KEY_MAX, "%s", key);
    b->num[b->n++] = num;
}

static int check_card(void *arg, const yn_db_row *row)
{
    struct bad_list *b = arg;
    yn_card_facts c;
    yn_rules_fault f;
    if (!yn_db_card_of(row, &c, &f) || yn_rules_roster_card(&c, &f) != YN_OK)
        note_bad(b, yn_db_text(row, 0), 0, f.field, f.why);
    return YN_OK;
}

static int check_blacklist(void *arg, const yn_db_row *row)
{
    struct bad_list *b = arg;
    yn_ledger_blacklist_entry e = {.seq = yn_db_int(row, 0)};
    const char *no = yn_db_text(row, 1), *ident = yn_db_text(row, 3);
    yn_rules_fault f = {"card_no", "must be 1..19 bytes of graphic ASCII"};
    snprintf(e.card_no, sizeof e.card_no, "%s", no);
    snprintf(e.ident, sizeof e.ident, "%s", ident);
    if (strlen(no) >= sizeof e.card_no || strlen(ident) >= sizeof e.ident ||
        yn_rules_blacklist(&e, &f) != YN_OK) {
        char key[CHECK_KEY_MAX];
        snprintf(key, sizeof key, "%lld (card %.80s)", (long long)e.seq, no);
        note_bad(b, key, e.seq, f.field, f.why);
    }
    return YN_OK;
}

static int check_allocation(void *arg, const yn_db_row *row)
{
    struct bad_list *b = arg;
    yn_ledger_alloc a = {.amount_fen = yn_db_int(row, 4)};
    const char *id = yn_db_text(row, 1), *no = yn_db_text(row, 2), *src = yn_db_text(row, 3);
    yn_rules_fault f = {"id, card_no or source", "too long"};
    snprintf(a.id, sizeof a.id, "%s", id);
    snprintf(a.card_no, sizeof a.card_no, "%s", no);
    snprintf(a.source, sizeof a.source, "%s", src);
    if (strlen(id) >= sizeof a.id || strlen(no) >= sizeof a.card_no ||
        strlen(src) >= sizeof a.source || yn_rules_alloc(&a, &f) != YN_OK)
        note_bad(b, id, yn_db_int(row, 0), f.field, f.why);
    return YN_OK;
}

static int check_policy(void *arg, const yn_db_row *row)
{
    struct bad_list *b = arg;
    const char *text = yn_db_text(row, 1);
    yn_policy *p = NULL;
    char err[200], key[32];
    int64_t version = yn_db_int(row, 0);
    snprintf(key, sizeof key, "%lld", (long long)version);
    if (yn_policy_load(text, strlen(text), &p, err, sizeof err) != YN_OK)
        note_bad(b, key, version, "json", err);
    else if (yn_policy_version(p) != version)
        note_bad(b, key, version, "version", "differs from the document's version");
    yn_policy_free(p);
    return YN_OK;
}

/* Records: the stored fields by the record rules (fields a row does not keep
 * are given valid values). */
static int check_record_row(void *arg, const yn_db_row *row)
{
    struct bad_list *b = arg;
    yn_ledger_record r;
    yn_db_record_of(row, 0, &r);
    const yn_rules_kind *k = yn_rules_kind_of(r.kind);
    r.tap_id = k && k->tap_id ? 1 : 0;
    yn_rules_fault f;
    if (yn_rules_record(&r, &f) != YN_OK) {
        char key[CHECK_KEY_MAX];
        snprintf(key, sizeof key, "%s/%lld", yn_db_text(row, 0), (long long)r.seq);
        note_bad(b, key, r.seq, f.field, f.why);
    }
    return YN_OK;
}

/* Undo records whose meal is missing, is not a meal, or was undone before. */
struct undo_check {
    struct bad_list *b;
};

static int check_undo_row(void *arg, const yn_db_row *row)
{
    struct undo_check *c = arg;
    const yn_rules_kind *k = yn_rules_kind_of((int)yn_db_int(row, 3));
    if (!k || k->reverses != YN_RULES_REF_UNDO)
        return YN_OK;
    const char *why = yn_db_int(row, 4) != YN_LEDGER_MEAL ? "names no meal this terminal holds"
                      : yn_db_int(row, 5) > 0             ? "that meal was undone before"
                                                          : NULL;
    if (why) {
        char key[CHECK_KEY_MAX];
        snprintf(key, sizeof key, "%s/%lld", yn_db_text(row, 0), (long long)yn_db_int(row, 1));
        note_bad(c->b, key, yn_db_int(row, 1), "reverses_seq", why);
    }
    return YN_OK;
}

static const char undo_rows[] =
    "SELECT r.terminal, r.seq, r.reverses_seq, r.kind, COALESCE(m.kind, 0),"
    " (SELECT COUNT(*) FROM records d WHERE d.terminal = r.terminal AND"
    " d.reverses_seq = r.reverses_seq AND d.kind = r.kind AND d.seq < r.seq)"
    " FROM records r LEFT JOIN records m ON m.terminal = r.terminal AND m.seq = r.reverses_seq"
    " WHERE r.reverses_seq > 0 ORDER BY r.terminal, r.seq";

static const char record_rows[] =
    "SELECT " YN_DB_RECORD_COLUMNS " FROM records ORDER BY terminal, seq";

static int fix_table(yn_db *db, struct bad_list *b, const char *sql, bool by_num)
{
    int rc = yn_db_begin(db, true);
    for (size_t i = 0; i < b->n && rc == YN_OK; i++)
        rc = by_num ? YN_DB_RUN(db, sql, NULL, NULL, DB_INT(b->num[i]))
                    : YN_DB_RUN(db, sql, NULL, NULL, DB_TEXT(b->key[i]));
    if (rc == YN_OK)
        return yn_db_commit(db);
    yn_db_rollback(db);
    return rc;
}

/* A bad record moves to quarantine (all its columns and why), out of reports. */
static int quarantine(yn_db *db, struct bad_list *b)
{
    int rc = yn_db_begin(db, true);
    for (size_t i = 0; i < b->n && rc == YN_OK; i++) {
        char terminal[CHECK_KEY_MAX];
        snprintf(terminal, sizeof terminal, "%s", b->key[i]);
        *strrchr(terminal, '/') = '\0';
        /* a record listed twice (two rules) moved the first time: nothing the second */
        rc = YN_DB_RUN(db,
                       "INSERT INTO quarantine(" YN_DB_RECORD_ROW ", why) SELECT " YN_DB_RECORD_ROW
                       ", 'breaks the record rules' FROM records WHERE terminal = $1 AND seq = $2",
                       NULL, NULL, DB_TEXT(terminal), DB_INT(b->num[i]));
        if (rc == YN_OK)
            rc = YN_DB_RUN(db, "DELETE FROM records WHERE terminal = $1 AND seq = $2", NULL, NULL,
                           DB_TEXT(terminal), DB_INT(b->num[i]));
    }
    if (rc == YN_OK)
        return yn_db_commit(db);
    yn_db_rollback(db);
    return rc;
}

int yn_admin_check(yn_db *db, bool fix)
{
    struct bad_list cards = {.table = "card"}, bl = {.table = "blacklist change"},
                    alloc = {.table = "allocation"}, pol = {.table = "policy"},
                    recs = {.table = "record"};
    int rc = yn_db_run(db, "SELECT " YN_DB_CARD_COLUMNS " FROM cards ORDER BY card_no", NULL, 0,
                       check_card, &cards);
    if (rc == YN_OK)
        rc = yn_db_run(db, "SELECT seq, card_no, lost, ident FROM blacklist ORDER BY seq", NULL, 0,
                       check_blacklist, &bl);
    if (rc == YN_OK)
        rc = yn_db_run(db,
                       "SELECT seq, id, card_no, source, amount_fen FROM allocations ORDER BY seq",
                       NULL, 0, check_allocation, &alloc);
    if (rc == YN_OK)
        rc = yn_db_run(db, "SELECT version, json FROM policies ORDER BY version", NULL, 0,
                       check_policy, &pol);
    if (rc == YN_OK)
        rc = yn_db_run(db, record_rows, NULL, 0, check_record_row, &recs);
    struct undo_check uc = {&recs};
    if (rc == YN_OK)
        rc = yn_db_run(db, undo_rows, NULL, 0, check_undo_row, &uc);
    size_t total = cards.n + bl.n + alloc.n + pol.n + recs.n;
    bool oom = cards.oom || bl.oom || alloc.oom || pol.oom || recs.oom;
    if (rc == YN_OK && fix && !oom) {
        rc = fix_table(db, &cards, "DELETE FROM cards WHERE card_no = $1", false);
        if (rc == YN_OK)
            rc = fix_table(db, &bl, "DELETE FROM blacklist WHERE seq = $1", true);
        if (rc == YN_OK)
            rc = fix_table(db, &alloc, "DELETE FROM allocations WHERE seq = $1", true);
        if (rc == YN_OK)
            rc = fix_table(db, &pol, "DELETE FROM policies WHERE version = $1", true);
        if (rc == YN_OK)
            rc = quarantine(db, &recs);
    }
    struct bad_list *all[] = {&cards, &bl, &alloc, &pol, &recs};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        free(all[i]->key);
        free(all[i]->num);
    }
    if (rc != YN_OK)
        return storage_failed(db, fix ? "fix" : "check", rc);
    if (oom) {
        fprintf(stderr, "check: out of memory listing bad entries\n");
        return YN_EXIT_RUNTIME;
    }
    if (fix) {
        printf("%zu entries removed, %zu records quarantined (kept in table quarantine, out of"
               " reports)\n",
               total - recs.n, recs.n);
        return YN_EXIT_OK;
    }
    printf("%zu entries break the rules terminals apply%s\n", total,
           total ? ": `yinian-district fix` removes them (records are quarantined, not lost)" : "");
    return total ? YN_EXIT_RUNTIME : YN_EXIT_OK;
}
