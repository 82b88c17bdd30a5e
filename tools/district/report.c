/* report.c — CSV reports (report.h). The database sums each group per
 * record kind (checked: SQLite's SUM and PostgreSQL's cast to bigint fail on
 * overflow); the kinds are folded into the columns here, with checked adds,
 * into a memory buffer that is written out only when complete. */
#include "report.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

void yn_csv_text(FILE *out, const char *s)
{
    bool formula =
        s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' || s[0] == '\t' || s[0] == '\r';
    bool quote = formula || strpbrk(s, ",\"\r\n") != NULL;
    if (quote)
        fputc('"', out);
    if (formula)
        fputc('\'', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    if (quote)
        fputc('"', out);
}

/* The columns after the key, in order. */
enum { RECORDS, PRICE, MEAL_SUBSIDY, ALLOCATION, WALLET, CASH, N_COLS };
static const char *const col_names[N_COLS] = {
    "records", "price_fen", "meal_subsidy_fen", "allocation_fen", "wallet_fen", "cash_fen",
};

#define GROUPED(key, from)                                                                         \
    "SELECT " key ", r.kind, COUNT(*), CAST(SUM(r.price_fen) AS BIGINT),"                          \
    " CAST(SUM(r.subsidy_fen) AS BIGINT), CAST(SUM(r.wallet_fen) AS BIGINT),"                      \
    " CAST(SUM(r.cash_fen) AS BIGINT) FROM " from
#define BY_CANTEEN                                                                                 \
    "records r JOIN enrolments e ON e.terminal = r.terminal AND r.seq >= e.from_seq AND"           \
    " r.seq < e.to_seq"
#define ONE_KEY  " GROUP BY 1, 2 ORDER BY 1, 2"
#define TWO_KEYS " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"

/* The summing reports: the grouping's name, its key columns (one or two,
 * the CSV header's first cells), the query (keys, kind, then the sums). */
static const struct {
    const char *by, *keys[2], *sql;
} reports[] = {
    {"canteen", {"canteen"}, GROUPED("e.canteen", BY_CANTEEN) ONE_KEY},
    {"terminal", {"terminal"}, GROUPED("r.terminal", "records r") ONE_KEY},
    {"category", {"category"}, GROUPED("r.category", "records r") ONE_KEY},
    {"period", {"period"}, GROUPED("r.period", "records r") ONE_KEY},
    {"day", {"day"}, GROUPED("CAST(r.local_ymd AS TEXT)", "records r") ONE_KEY},
    /* a layer's share is its source's subsidy; price, wallet and cash are the records' */
    {"layer",
     {"layer"},
     "SELECT source, kind, COUNT(*), 0, CAST(SUM(fen) AS BIGINT), 0, 0 FROM"
     " (SELECT src1 AS source, kind, fen1 AS fen FROM records WHERE src1 IS NOT NULL"
     " UNION ALL SELECT src2, kind, fen2 FROM records WHERE src2 IS NOT NULL"
     " UNION ALL SELECT src3, kind, fen3 FROM records WHERE src3 IS NOT NULL"
     " UNION ALL SELECT src4, kind, fen4 FROM records WHERE src4 IS NOT NULL) AS l"
     " GROUP BY 1, 2 ORDER BY 1, 2"},
    /* how the holder was identified, per canteen: manual entries (忘带卡) and
     * identity-only cards counted apart from the 颐年卡 (firmware/core/CARD.md §8) */
    {"identified",
     {"canteen", "identified"},
     GROUPED("e.canteen, CASE r.identified WHEN 2 THEN 'identity' WHEN 3 THEN 'manual'"
             " ELSE 'card' END",
             BY_CANTEEN) TWO_KEYS},
};

/* Not a sum: the meals of every identity-only card whose identifier was used
 * at two canteens or more in one meal period (a copied UID), a row per
 * canteen; ingest put each such identifier on the blacklist (ingest.c). */
static const char shared_ident_sql[] =
    "SELECT r.ident, CAST(r.local_ymd AS TEXT), r.period, e.canteen, r.card_no, COUNT(*),"
    " CAST(SUM(r.subsidy_fen) AS BIGINT), MIN(r.utc_s), MAX(r.utc_s) FROM " BY_CANTEEN
    " JOIN (SELECT r2.ident, r2.local_ymd, r2.period FROM records r2 JOIN enrolments e2 ON"
    " e2.terminal = r2.terminal AND r2.seq >= e2.from_seq AND r2.seq < e2.to_seq"
    " WHERE r2.identified = 2 AND r2.kind = 1"
    " GROUP BY r2.ident, r2.local_ymd, r2.period HAVING COUNT(DISTINCT e2.canteen) > 1) AS s"
    " ON s.ident = r.ident AND s.local_ymd = r.local_ymd AND s.period = r.period"
    " WHERE r.identified = 2 AND r.kind = 1"
    " GROUP BY r.ident, r.local_ymd, r.period, e.canteen, r.card_no ORDER BY 1, 2, 3, 4, 5";
static const char *const shared_ident_cols[] = {
    "ident", "local_ymd",        "period",      "canteen",    "card_no",
    "meals", "meal_subsidy_fen", "first_utc_s", "last_utc_s",
};

/* Not a sum: every stamp-missing notice (kind 5, firmware/ledger/LEDGER.md "Card
 * stamps"): a subsidised meal whose card stamp was not written, so another
 * canteen offline could not see it — the one-meal window the design leaves
 * open. With the meal it names, and how many subsidised meals (not reversed)
 * the card had that day and period across the district: above 1, that window
 * was used. */
static const char stamp_missing_sql[] =
    "SELECT e.canteen, r.terminal, CAST(m.local_ymd AS TEXT), m.period, r.card_no, r.ref,"
    " r.seq, r.reverses_seq, m.subsidy_fen, COALESCE(n.meals, 0), r.utc_s FROM " BY_CANTEEN
    " JOIN records m ON m.terminal = r.terminal AND m.seq = r.reverses_seq"
    " LEFT JOIN (SELECT o.card_no, o.local_ymd, o.period, COUNT(*) AS meals FROM records o"
    " WHERE o.kind = 1 AND o.subsidy_fen > 0"
    " AND o.card_no IN (SELECT card_no FROM records WHERE kind = 5)"
    " AND NOT EXISTS (SELECT 1 FROM records x WHERE x.terminal = o.terminal AND"
    " x.reverses_seq = o.seq AND x.kind = 2)"
    " GROUP BY o.card_no, o.local_ymd, o.period) AS n"
    " ON n.card_no = r.card_no AND n.local_ymd = m.local_ymd AND n.period = m.period"
    " WHERE r.kind = 5 ORDER BY 1, 2, 7";
static const char *const stamp_missing_cols[] = {
    "canteen", "terminal", "local_ymd", "period",           "card_no",
    "cause",   "seq",      "meal_seq",  "meal_subsidy_fen", "subsidised_meals_in_period",
    "utc_s",
};

/* The listings: rows as the query gives them, n_text text cells then numbers. */
static const struct {
    const char *by, *sql;
    const char *const *cols;
    int n_cols, n_text;
} listings[] = {
    {"shared-ident", shared_ident_sql, shared_ident_cols,
     (int)(sizeof shared_ident_cols / sizeof shared_ident_cols[0]), 5},
    {"stamp-missing", stamp_missing_sql, stamp_missing_cols,
     (int)(sizeof stamp_missing_cols / sizeof stamp_missing_cols[0]), 6},
};

struct sheet {
    FILE *out;
    int n_cols, n_text; /* a listing's cells (0: a summing report) */
    int keys;           /* key columns: 1 or 2 */
    char key[2][256];   /* the current group's */
    bool have_key;
    int64_t sum[N_COLS];
    char *err;
    size_t errlen;
};

static void flush_row(struct sheet *s)
{
    if (!s->have_key)
        return;
    for (int k = 0; k < s->keys; k++) {
        if (k)
            fputc(',', s->out);
        yn_csv_text(s->out, s->key[k]);
    }
    for (int c = 0; c < N_COLS; c++)
        fprintf(s->out, ",%lld", (long long)s->sum[c]);
    fputs("\r\n", s->out);
}

static int add(struct sheet *s, int col, int64_t v)
{
    if (__builtin_add_overflow(s->sum[col], v, &s->sum[col])) {
        snprintf(s->err, s->errlen, "%s of \"%s\" beyond 64 bits: run yinian-district check",
                 col_names[col], s->key[0]);
        return YN_ELIMIT;
    }
    return YN_OK;
}

static int sheet_row(void *arg, const yn_db_row *row)
{
    struct sheet *s = arg;
    bool same = s->have_key;
    for (int k = 0; k < s->keys; k++)
        same = same && strcmp(yn_db_text(row, k), s->key[k]) == 0;
    if (!same) {
        flush_row(s);
        for (int k = 0; k < s->keys; k++)
            snprintf(s->key[k], sizeof s->key[k], "%s", yn_db_text(row, k));
        memset(s->sum, 0, sizeof s->sum);
        s->have_key = true;
    }
    int c = s->keys; /* kind, then the sums */
    const yn_rules_kind *k = yn_rules_kind_of((int)yn_db_int(row, c));
    if (!k) {
        snprintf(s->err, s->errlen, "records of kind %lld: no report column for that kind",
                 (long long)yn_db_int(row, c));
        return YN_ENOTSUP;
    }
    /* a kind whose ref names a district allocation credits wallets; any other
     * kind's subsidy is paid for meals */
    int rc = add(s, RECORDS, yn_db_int(row, c + 1));
    if (rc == YN_OK)
        rc = add(s, PRICE, yn_db_int(row, c + 2));
    if (rc == YN_OK)
        rc = add(s, k->ref == YN_RULES_TEXT_ALLOCATION ? ALLOCATION : MEAL_SUBSIDY,
                 yn_db_int(row, c + 3));
    if (rc == YN_OK)
        rc = add(s, WALLET, yn_db_int(row, c + 4));
    if (rc == YN_OK)
        rc = add(s, CASH, yn_db_int(row, c + 5));
    return rc;
}

/* A row of a listing: its text cells, then its numbers. */
static int listing_row(void *arg, const yn_db_row *row)
{
    struct sheet *s = arg;
    for (int k = 0; k < s->n_cols; k++) {
        if (k)
            fputc(',', s->out);
        if (k < s->n_text)
            yn_csv_text(s->out, yn_db_text(row, k));
        else
            fprintf(s->out, "%lld", (long long)yn_db_int(row, k));
    }
    fputs("\r\n", s->out);
    return YN_OK;
}

int yn_report_write(yn_db *db, const char *by, FILE *out, char *err, size_t errlen)
{
    const char *sql = NULL;
    const char *const *head = NULL;
    int n_head = 0, keys = 0;
    for (size_t i = 0; i < sizeof reports / sizeof reports[0] && !sql; i++)
        if (strcmp(by, reports[i].by) == 0) {
            sql = reports[i].sql;
            head = reports[i].keys;
            keys = n_head = reports[i].keys[1] ? 2 : 1;
        }
    int n_text = 0;
    for (size_t i = 0; i < sizeof listings / sizeof listings[0] && !sql; i++)
        if (strcmp(by, listings[i].by) == 0) {
            sql = listings[i].sql;
            head = listings[i].cols;
            n_head = listings[i].n_cols;
            n_text = listings[i].n_text;
        }
    bool listing = n_text > 0;
    if (!sql) {
        snprintf(err, errlen,
                 "no report by \"%s\": canteen, terminal, category, period, day, layer,"
                 " identified, shared-ident or stamp-missing",
                 by);
        return YN_EINVAL;
    }
    char *text = NULL;
    size_t len = 0;
    struct sheet s = {.out = open_memstream(&text, &len),
                      .n_cols = listing ? n_head : 0,
                      .n_text = n_text,
                      .keys = keys,
                      .err = err,
                      .errlen = errlen};
    if (!s.out) {
        snprintf(err, errlen, "out of memory");
        return YN_ENOMEM;
    }
    for (int k = 0; k < n_head; k++) {
        if (k)
            fputc(',', s.out);
        yn_csv_text(s.out, head[k]);
    }
    for (int c = 0; !listing && c < N_COLS; c++)
        fprintf(s.out, ",%s", col_names[c]);
    fputs("\r\n", s.out);
    err[0] = '\0';
    int rc = yn_db_begin(db, false);
    if (rc == YN_OK) {
        rc = yn_db_run(db, sql, NULL, 0, listing ? listing_row : sheet_row, &s);
        yn_db_rollback(db);
    }
    if (rc == YN_OK)
        flush_row(&s);
    bool mem_ok = fclose(s.out) == 0;
    if (rc == YN_OK && !mem_ok)
        rc = YN_ENOMEM;
    if (rc != YN_OK && !err[0])
        snprintf(err, errlen, "%s", yn_db_errmsg(db));
    if (rc == YN_OK && (fwrite(text, 1, len, out) != len || fflush(out) != 0 || ferror(out))) {
        snprintf(err, errlen, "report not written out");
        rc = YN_EIO;
    }
    free(text);
    return rc;
}
