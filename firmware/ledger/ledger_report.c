/* ledger_report.c — reads of the ledger: the kiosk's balance and last meals,
 * one record, the head; and the settlement (日结) on screen and as CSV. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fileio.h"
#include "ledger_int.h"
#include "log.h"
#include "timeutil.h"

/* ---- reads: kiosk, records, head ---------------------------------------------- */

int yn_ledger_balance(yn_ledger *l, const char *card_no, int64_t now_utc_s, int n_last,
                      yn_ledger_account *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    if (!yn_lg_text_ok(card_no, CARD_NO_MAX, false))
        return YN_EINVAL;
    if (n_last < 0)
        n_last = 0;
    if (n_last > YN_LEDGER_LAST_MAX)
        n_last = YN_LEDGER_LAST_MAX;
    out->month_ym = yn_time_local_ymd(now_utc_s) / 100;

    int rc = yn_lg_tx_begin(l, false);
    if (rc != SQLITE_OK)
        return yn_lg_read_fail(l, rc, "balance");
    struct card_state cs;
    if ((rc = yn_lg_state_get(l, card_no, &cs)) != SQLITE_OK)
        return yn_lg_read_fail(l, rc, "balance");
    out->wallet_fen = cs.balance_fen;
    if (cs.month_ym == out->month_ym) {
        out->meals_month = cs.month_meals;
        out->subsidy_month_fen = cs.month_subsidy_fen;
    }
    if (cs.day_ymd == yn_time_local_ymd(now_utc_s)) {
        out->meals_day = cs.day_meals;
        out->subsidy_day_fen = cs.day_subsidy_fen;
    }
    /* newest first along the card's own chain; a reversal is met before its meal */
    int64_t reversed[WALK_MAX];
    int n_reversed = 0;
    int64_t seq = cs.last_seq;
    for (int step = 0; seq > 0 && out->n_last < n_last && step < WALK_MAX; step++) {
        yn_ledger_record r;
        bool found;
        if ((rc = yn_lg_record_by(l, ST_BY_SEQ, seq, &r, &found)) != SQLITE_OK)
            return yn_lg_read_fail(l, rc, "balance");
        if (!found)
            break;
        if (r.kind == YN_LEDGER_REVERSAL && n_reversed < WALK_MAX) {
            reversed[n_reversed++] = r.reverses_seq;
        } else if (r.kind == YN_LEDGER_MEAL) {
            yn_ledger_meal_line *line = &out->last[out->n_last++];
            line->seq = r.seq;
            memcpy(line->terminal, r.terminal, sizeof line->terminal);
            line->local_ymd = r.local_ymd;
            memcpy(line->period, r.period, sizeof line->period);
            line->price_fen = r.price_fen;
            line->subsidy_fen = r.subsidy_fen;
            line->paid_fen = r.wallet_fen + r.cash_fen;
            for (int i = 0; i < n_reversed; i++)
                if (reversed[i] == r.seq)
                    line->reversed = true;
        }
        seq = r.card_prev_seq;
    }
    yn_lg_tx_end(l);
    return YN_OK;
}

int yn_ledger_record_get(yn_ledger *l, int64_t seq, yn_ledger_record *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    bool found;
    int rc = yn_lg_record_by(l, ST_BY_SEQ, seq, out, &found);
    if (rc != SQLITE_OK)
        return yn_lg_read_fail(l, rc, "record read");
    return found ? YN_OK : YN_ENOTFOUND;
}

int yn_ledger_head(yn_ledger *l, int64_t *seq, uint8_t hash[YN_LEDGER_HASH_LEN])
{
    CHECK_READY(l);
    if (!seq || !hash)
        return YN_EINVAL;
    *seq = 0;
    memset(hash, 0, YN_LEDGER_HASH_LEN);
    sqlite3_stmt *s = l->st[ST_HEAD];
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(s, 0);
        if (sqlite3_column_bytes(s, 1) == YN_LEDGER_HASH_LEN)
            memcpy(hash, sqlite3_column_blob(s, 1), YN_LEDGER_HASH_LEN);
    }
    sqlite3_reset(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return yn_lg_read_fail(l, rc, "head");
    return YN_OK;
}

int yn_ledger_newest_tap(yn_ledger *l, yn_ledger_record *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    /* a backward walk from the head that stops at the first record with a
     * tap id (off the counter's path: at start) */
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(l->db,
                                "SELECT " JOURNAL_COLS " FROM journal WHERE tap_id IS NOT NULL"
                                " ORDER BY seq DESC LIMIT 1",
                                -1, &s, NULL);
    if (rc != SQLITE_OK)
        return yn_lg_read_fail(l, rc, "newest tap");
    rc = sqlite3_step(s);
    if (rc == SQLITE_ROW)
        yn_lg_row_to_record(s, out);
    sqlite3_finalize(s);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return yn_lg_read_fail(l, rc, "newest tap");
    return rc == SQLITE_ROW ? YN_OK : YN_ENOTFOUND;
}

/* ---- settlement (日结) ----------------------------------------------------------- */

/* The records of one local day: the runs of the day index with that date. */
#define DAY_ROWS                                                                                   \
    "WITH runs(a, b) AS (SELECT r.first_seq, IFNULL((SELECT MIN(n.first_seq) FROM day_runs n"      \
    " WHERE n.first_seq > r.first_seq), 9223372036854775807) - 1"                                  \
    " FROM day_runs r WHERE r.local_ymd = ?1),"                                                    \
    " d AS (SELECT j.* FROM runs JOIN journal j ON j.seq BETWEEN runs.a AND runs.b) "

#define SIGNED_COUNT "SUM(CASE kind WHEN 2 THEN -1 ELSE 1 END)"

static void sum_from_row(sqlite3_stmt *s, int first_col, yn_ledger_sum *sum)
{
    sum->count += sqlite3_column_int64(s, first_col);
    sum->price_fen += sqlite3_column_int64(s, first_col + 1);
    sum->subsidy_fen += sqlite3_column_int64(s, first_col + 2);
    sum->wallet_fen += sqlite3_column_int64(s, first_col + 3);
    sum->cash_fen += sqlite3_column_int64(s, first_col + 4);
}

/* Add a named row to a section; names beyond the section's room fold into "other". */
static void section_add(yn_ledger_sum *rows, int *n, sqlite3_stmt *s)
{
    char name[YN_NAME_MAX];
    yn_lg_col_text(s, 0, name, sizeof name);
    int i = 0;
    while (i < *n && strcmp(rows[i].name, name) != 0)
        i++;
    if (i == *n) {
        if (*n == YN_LEDGER_SUM_MAX) {
            i = YN_LEDGER_SUM_MAX - 1;
            yn_lg_copy_str(rows[i].name, sizeof rows[i].name, "other");
        } else {
            (*n)++;
            yn_lg_copy_str(rows[i].name, sizeof rows[i].name, name);
        }
    }
    sum_from_row(s, 1, &rows[i]);
}

static int settle_query(yn_ledger *l, const char *sql, int32_t ymd, yn_ledger_settlement *out,
                        int section)
{
    sqlite3_stmt *s;
    int rc = sqlite3_prepare_v2(l->db, sql, -1, &s, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_int(s, 1, ymd);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        switch (section) {
        case 0: { /* by kind */
            int kind = sqlite3_column_int(s, 0);
            yn_ledger_sum *sum = kind == YN_LEDGER_MEAL         ? &out->meals
                                 : kind == YN_LEDGER_REVERSAL   ? &out->reversals
                                 : kind == YN_LEDGER_ALLOCATION ? &out->allocations
                                 : kind == YN_LEDGER_TOPUP      ? &out->topups
                                                                : &out->stamp_missing;
            sum_from_row(s, 1, sum);
            int by = sqlite3_column_int(s, 8);
            if (kind == YN_LEDGER_MEAL && by == YN_LEDGER_BY_IDENT)
                sum_from_row(s, 1, &out->by_ident);
            else if (kind == YN_LEDGER_MEAL && by == YN_LEDGER_BY_MANUAL)
                sum_from_row(s, 1, &out->by_manual);
            int64_t lo = sqlite3_column_int64(s, 6), hi = sqlite3_column_int64(s, 7);
            if (out->first_seq == 0 || lo < out->first_seq)
                out->first_seq = lo;
            if (hi > out->last_seq)
                out->last_seq = hi;
            break;
        }
        case 1:
            section_add(out->categories, &out->n_categories, s);
            break;
        case 2:
            section_add(out->periods, &out->n_periods, s);
            break;
        default:
            section_add(out->sources, &out->n_sources, s);
            break;
        }
    }
    sqlite3_finalize(s);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int yn_ledger_settle(yn_ledger *l, int32_t local_ymd, yn_ledger_settlement *out)
{
    static const char *const sql[4] = {
        DAY_ROWS "SELECT kind, " SIGNED_COUNT ", SUM(price_fen), SUM(subsidy_fen),"
                 " SUM(wallet_fen), SUM(cash_fen), MIN(seq), MAX(seq), identified FROM d"
                 " GROUP BY kind, identified",
        DAY_ROWS "SELECT IFNULL(category, ''), " SIGNED_COUNT ", SUM(price_fen),"
                 " SUM(subsidy_fen), SUM(wallet_fen), SUM(cash_fen) FROM d"
                 " WHERE kind IN (1, 2) GROUP BY 1 ORDER BY 1",
        DAY_ROWS "SELECT IFNULL(period, ''), " SIGNED_COUNT ", SUM(price_fen),"
                 " SUM(subsidy_fen), SUM(wallet_fen), SUM(cash_fen) FROM d"
                 " WHERE kind IN (1, 2) GROUP BY 1 ORDER BY 1",
        DAY_ROWS ", l(src, kind, fen) AS (SELECT src1, kind, fen1 FROM d WHERE src1 IS NOT NULL"
                 " UNION ALL SELECT src2, kind, fen2 FROM d WHERE src2 IS NOT NULL"
                 " UNION ALL SELECT src3, kind, fen3 FROM d WHERE src3 IS NOT NULL"
                 " UNION ALL SELECT src4, kind, fen4 FROM d WHERE src4 IS NOT NULL)"
                 " SELECT src, " SIGNED_COUNT ", 0, SUM(fen), 0, 0 FROM l"
                 " WHERE kind IN (1, 2) AND fen != 0 GROUP BY 1 ORDER BY 1",
    };
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    out->local_ymd = local_ymd;
    int rc = yn_lg_tx_begin(l, false);
    for (int i = 0; i < 4 && rc == SQLITE_OK; i++)
        rc = settle_query(l, sql[i], local_ymd, out, i);
    if (rc != SQLITE_OK)
        return yn_lg_read_fail(l, rc, "settlement");
    yn_lg_tx_end(l);
    out->total = out->meals;
    out->total.count += out->reversals.count;
    out->total.price_fen += out->reversals.price_fen;
    out->total.subsidy_fen += out->reversals.subsidy_fen;
    out->total.wallet_fen += out->reversals.wallet_fen;
    out->total.cash_fen += out->reversals.cash_fen;
    return YN_OK;
}

static void csv_row(FILE *f, int32_t ymd, const char *section, const yn_ledger_sum *s)
{
    /* names are policy identifiers ([a-z0-9_] per POLICY.md); quote anyway */
    fprintf(
        f, "%" PRId32 ",%s,\"%s\",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 "\n",
        ymd, section, s->name, s->count, s->price_fen, s->subsidy_fen, s->wallet_fen, s->cash_fen);
}

int yn_ledger_settle_csv(yn_ledger *l, int32_t local_ymd, FILE *f)
{
    if (!f)
        return YN_EINVAL;
    yn_ledger_settlement s;
    int st = yn_ledger_settle(l, local_ymd, &s);
    if (st != YN_OK)
        return st;
    fprintf(f, "local_ymd,section,name,count,price_fen,subsidy_fen,wallet_fen,cash_fen\n");
    csv_row(f, local_ymd, "total", &s.total);
    csv_row(f, local_ymd, "meals", &s.meals);
    csv_row(f, local_ymd, "reversals", &s.reversals);
    for (int i = 0; i < s.n_categories; i++)
        csv_row(f, local_ymd, "category", &s.categories[i]);
    for (int i = 0; i < s.n_periods; i++)
        csv_row(f, local_ymd, "period", &s.periods[i]);
    for (int i = 0; i < s.n_sources; i++)
        csv_row(f, local_ymd, "source", &s.sources[i]);
    csv_row(f, local_ymd, "allocations", &s.allocations);
    csv_row(f, local_ymd, "topups", &s.topups);
    csv_row(f, local_ymd, "stamp_missing", &s.stamp_missing);
    csv_row(f, local_ymd, "identity_only", &s.by_ident);
    csv_row(f, local_ymd, "manual", &s.by_manual);
    return ferror(f) ? YN_EIO : YN_OK;
}

int yn_ledger_settle_csv_path(yn_ledger *l, int32_t local_ymd, const char *path)
{
    CHECK_READY(l);
    if (!path)
        return YN_EINVAL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return YN_ENOMEM;
    int st = yn_ledger_settle_csv(l, local_ymd, f);
    if (fclose(f) != 0 && st == YN_OK)
        st = YN_ENOMEM;
    if (st == YN_OK) /* path.new, fsync, rename, fsync the folder */
        st = yn_file_write_atomic(path, text, len, 0644);
    if (st != YN_OK)
        yn_err("ledger: settlement %s not written: %s", path, yn_strerror(st));
    free(text);
    return st;
}
