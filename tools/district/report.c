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
    " CAST(SUM(r.cash_fen) AS BIGINT) FROM " from " GROUP BY 1, 2 ORDER BY 1, 2"

static const struct {
    const char *by, *sql;
} reports[] = {
    {"canteen", GROUPED("e.canteen", "records r JOIN enrolments e ON e.terminal = r.terminal AND"
                                     " r.seq >= e.from_seq AND r.seq < e.to_seq")},
    {"terminal", GROUPED("r.terminal", "records r")},
    {"category", GROUPED("r.category", "records r")},
    {"period", GROUPED("r.period", "records r")},
    {"day", GROUPED("CAST(r.local_ymd AS TEXT)", "records r")},
    /* a layer's share is its source's subsidy; price, wallet and cash are the records' */
    {"layer", "SELECT source, kind, COUNT(*), 0, CAST(SUM(fen) AS BIGINT), 0, 0 FROM"
              " (SELECT src1 AS source, kind, fen1 AS fen FROM records WHERE src1 IS NOT NULL"
              " UNION ALL SELECT src2, kind, fen2 FROM records WHERE src2 IS NOT NULL"
              " UNION ALL SELECT src3, kind, fen3 FROM records WHERE src3 IS NOT NULL"
              " UNION ALL SELECT src4, kind, fen4 FROM records WHERE src4 IS NOT NULL) AS l"
              " GROUP BY 1, 2 ORDER BY 1, 2"},
};

struct sheet {
    FILE *out;
    char key[256];
    bool have_key;
    int64_t sum[N_COLS];
    char *err;
    size_t errlen;
};

static void flush_row(struct sheet *s)
{
    if (!s->have_key)
        return;
    yn_csv_text(s->out, s->key);
    for (int c = 0; c < N_COLS; c++)
        fprintf(s->out, ",%lld", (long long)s->sum[c]);
    fputs("\r\n", s->out);
}

static int add(struct sheet *s, int col, int64_t v)
{
    if (__builtin_add_overflow(s->sum[col], v, &s->sum[col])) {
        snprintf(s->err, s->errlen, "%s of \"%s\" beyond 64 bits: run yinian-district check",
                 col_names[col], s->key);
        return YN_ELIMIT;
    }
    return YN_OK;
}

static int sheet_row(void *arg, const yn_db_row *row)
{
    struct sheet *s = arg;
    const char *key = yn_db_text(row, 0);
    if (!s->have_key || strcmp(key, s->key) != 0) {
        flush_row(s);
        snprintf(s->key, sizeof s->key, "%s", key);
        memset(s->sum, 0, sizeof s->sum);
        s->have_key = true;
    }
    const yn_rules_kind *k = yn_rules_kind_of((int)yn_db_int(row, 1));
    if (!k) {
        snprintf(s->err, s->errlen, "records of kind %lld: no report column for that kind",
                 (long long)yn_db_int(row, 1));
        return YN_ENOTSUP;
    }
    /* a kind whose ref names a district allocation credits wallets; any other
     * kind's subsidy is paid for meals */
    int rc = add(s, RECORDS, yn_db_int(row, 2));
    if (rc == YN_OK)
        rc = add(s, PRICE, yn_db_int(row, 3));
    if (rc == YN_OK)
        rc = add(s, k->ref == YN_RULES_TEXT_ALLOCATION ? ALLOCATION : MEAL_SUBSIDY,
                 yn_db_int(row, 4));
    if (rc == YN_OK)
        rc = add(s, WALLET, yn_db_int(row, 5));
    if (rc == YN_OK)
        rc = add(s, CASH, yn_db_int(row, 6));
    return rc;
}

int yn_report_write(yn_db *db, const char *by, FILE *out, char *err, size_t errlen)
{
    const char *sql = NULL;
    for (size_t i = 0; i < sizeof reports / sizeof reports[0] && !sql; i++)
        if (strcmp(by, reports[i].by) == 0)
            sql = reports[i].sql;
    if (!sql) {
        snprintf(err, errlen,
                 "no report by \"%s\": canteen, terminal, category, period, day or"
                 " layer",
                 by);
        return YN_EINVAL;
    }
    char *text = NULL;
    size_t len = 0;
    struct sheet s = {.out = open_memstream(&text, &len), .err = err, .errlen = errlen};
    if (!s.out) {
        snprintf(err, errlen, "out of memory");
        return YN_ENOMEM;
    }
    yn_csv_text(s.out, by);
    for (int c = 0; c < N_COLS; c++)
        fprintf(s.out, ",%s", col_names[c]);
    fputs("\r\n", s.out);
    err[0] = '\0';
    int rc = yn_db_begin(db, false);
    if (rc == YN_OK) {
        rc = yn_db_run(db, sql, NULL, 0, sheet_row, &s);
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
