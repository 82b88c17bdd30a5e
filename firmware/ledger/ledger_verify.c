/* ledger_verify.c — verification: the hash chain from the first record, and
 * every card row against what the journal says it must hold. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ledger_int.h"
#include "log.h"
#include "rules.h"

/* ---- verify ----------------------------------------------------------------------- */

static void report(yn_ledger_verify_report *out, int64_t seq, const char *fmt, const char *arg)
{
    if (out->what[0])
        return;
    out->first_bad_seq = seq;
    snprintf(out->what, sizeof out->what, fmt, arg ? arg : "");
}

/* The chain: seq without gaps, links, hashes, shares, the day index, and tap
 * ids increasing (after the records made before that rule, if any). */
static int verify_chain(yn_ledger *l, yn_ledger_verify_report *out)
{
    sqlite3_stmt *s = NULL, *runs = NULL;
    int64_t increasing_after = 0, max_tap = 0;
    int rc = yn_lg_meta_get_i64(l, "tap_ids_increase_after_seq", &increasing_after);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(l->db, "SELECT " JOURNAL_COLS " FROM journal ORDER BY seq", -1, &s,
                                NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(
            l->db, "SELECT first_seq, local_ymd FROM day_runs ORDER BY first_seq", -1, &runs, NULL);
    uint8_t prev[YN_LEDGER_HASH_LEN] = {0}, h[YN_LEDGER_HASH_LEN];
    int64_t expect = 1;
    int32_t prev_ymd = 0;
    int run_rc = SQLITE_DONE;
    while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        yn_ledger_record r;
        yn_lg_row_to_record(s, &r);
        out->records++;
        rc = SQLITE_OK;
        if (out->what[0])
            continue; /* count the rest, report the first */
        int64_t layers_fen = 0;
        for (int i = 0; i < r.n_layers; i++)
            layers_fen += r.layers[i].fen;
        if (r.seq != expect) {
            report(out, expect, "record missing: seq jumps to the next one%s", NULL);
        } else if (memcmp(r.prev_hash, prev, sizeof prev) != 0) {
            report(out, r.seq, "prev_hash does not match the hash of the record before%s", NULL);
        } else if (!yn_lg_hash_record(l, &r, h) || memcmp(h, r.hash, sizeof h) != 0) {
            report(out, r.seq, "hash does not match the record's content: altered%s", NULL);
        } else if (r.price_fen != r.subsidy_fen + r.wallet_fen + r.cash_fen ||
                   (r.n_layers > 0 && layers_fen != r.subsidy_fen) || r.reason == YN_REASON_COUNT) {
            report(out, r.seq, "shares do not add up%s", NULL);
        } else if (yn_rules_identified(&r, NULL) != YN_OK) {
            report(out, r.seq, "how the holder was identified does not fit the record%s", NULL);
        } else if (r.tap_id && r.tap_id <= max_tap && r.seq > increasing_after) {
            report(out, r.seq, "tap id not above the tap ids before it%s", NULL);
        } else if (r.seq == 1 || r.local_ymd != prev_ymd) {
            run_rc = sqlite3_step(runs);
            if (run_rc != SQLITE_ROW || sqlite3_column_int64(runs, 0) != r.seq ||
                sqlite3_column_int(runs, 1) != r.local_ymd)
                report(out, r.seq, "day index has no run starting here%s", NULL);
        }
        memcpy(prev, r.hash, sizeof prev);
        prev_ymd = r.local_ymd;
        if (r.tap_id > max_tap)
            max_tap = r.tap_id;
        expect = r.seq + 1;
    }
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    if (rc == SQLITE_OK && !out->what[0] && sqlite3_step(runs) == SQLITE_ROW)
        report(out, sqlite3_column_int64(runs, 0), "day index has a run of no record%s", NULL);
    (void)run_rc;
    sqlite3_finalize(s);
    sqlite3_finalize(runs);
    return rc;
}

/* Every wallet and usage counter against the journal's sums. */
static int verify_cards(yn_ledger *l, yn_ledger_verify_report *out)
{
    static const char *const setup =
        "CREATE TEMP TABLE v_bal AS SELECT card_no, -SUM(wallet_fen) AS bal, MAX(seq) AS last"
        " FROM journal GROUP BY card_no;"
        "CREATE TEMP TABLE v_use AS SELECT card_no, local_ymd AS ymd, IFNULL(period, '') AS period,"
        " COUNT(*) AS n, SUM(subsidy_fen) AS fen FROM journal WHERE kind = 1 AND subsidy_fen > 0"
        " AND seq NOT IN (SELECT reverses_seq FROM journal WHERE kind = 2)"
        " GROUP BY 1, 2, 3;"
        "CREATE INDEX temp.v_use_key ON v_use(card_no, ymd, period);"
        /* each card's newest tap id (bare column of MAX) */
        "CREATE TEMP TABLE v_tap AS SELECT card_no, tap_id AS tap, MAX(seq) AS seq FROM journal"
        " WHERE tap_id IS NOT NULL GROUP BY card_no;"
        "CREATE UNIQUE INDEX temp.v_tap_card ON v_tap(card_no);"
        /* each card's newest subsidised meal, 0 when reversed: its stamp meal */
        "CREATE TEMP TABLE v_stamp AS SELECT card_no, CASE WHEN MAX(seq) IN (SELECT reverses_seq"
        " FROM journal WHERE kind = 2) THEN 0 ELSE MAX(seq) END AS seq FROM journal"
        " WHERE kind = 1 AND subsidy_fen > 0 GROUP BY card_no;"
        "CREATE UNIQUE INDEX temp.v_stamp_card ON v_stamp(card_no);";
    static const char *const checks[] = {
        /* wallet balance and newest record, both ways */
        "SELECT b.card_no, 'wallet balance or newest record disagrees with the journal'"
        " FROM v_bal b LEFT JOIN cards c USING (card_no)"
        " WHERE c.card_no IS NULL OR c.balance_fen != b.bal OR c.last_seq != b.last LIMIT 1",
        "SELECT c.card_no, 'wallet or usage of a card without records' FROM cards c"
        " WHERE c.last_seq = 0 AND (c.balance_fen != 0 OR c.meal_seq != 0"
        " OR c.month_meals != 0 OR c.day_meals != 0 OR c.period_meals != 0"
        " OR c.day_subsidy_fen != 0) LIMIT 1",
        /* usage counters under their keys */
        "SELECT c.card_no, 'usage counters disagree with the journal' FROM cards c"
        " WHERE c.last_seq > 0 AND ("
        " c.month_meals != IFNULL((SELECT SUM(n) FROM v_use u WHERE u.card_no = c.card_no"
        "   AND u.ymd BETWEEN c.month_ym * 100 AND c.month_ym * 100 + 99), 0)"
        " OR c.month_subsidy_fen != IFNULL((SELECT SUM(fen) FROM v_use u"
        "   WHERE u.card_no = c.card_no AND u.ymd BETWEEN c.month_ym * 100"
        "   AND c.month_ym * 100 + 99), 0)"
        " OR c.day_meals != IFNULL((SELECT SUM(n) FROM v_use u WHERE u.card_no = c.card_no"
        "   AND u.ymd = c.day_ymd), 0)"
        " OR c.day_subsidy_fen != IFNULL((SELECT SUM(fen) FROM v_use u"
        "   WHERE u.card_no = c.card_no AND u.ymd = c.day_ymd), 0)"
        " OR c.period_meals != IFNULL((SELECT n FROM v_use u WHERE u.card_no = c.card_no"
        "   AND u.ymd = c.day_ymd AND u.period = c.period), 0)) LIMIT 1",
        /* each record's running balance and link to the card's previous record */
        "SELECT card_no, 'running balance or card link of a record is wrong', seq FROM"
        " (SELECT seq, card_no, wallet_after_fen AS w, card_prev_seq AS p,"
        "  -SUM(wallet_fen) OVER (PARTITION BY card_no ORDER BY seq ROWS UNBOUNDED PRECEDING) AS s,"
        "  IFNULL(LAG(seq) OVER (PARTITION BY card_no ORDER BY seq), 0) AS q FROM journal)"
        " WHERE w != s OR p != q ORDER BY seq LIMIT 1",
        /* the last tap id a replay is checked against */
        ("SELECT c.card_no, 'last tap id of the card disagrees with the journal' FROM cards c"
         " LEFT JOIN v_tap t USING (card_no) WHERE c.last_tap != IFNULL(t.tap, 0) LIMIT 1"),
        /* the meal the card's stamp should name */
        ("SELECT c.card_no, 'stamp meal of the card disagrees with the journal' FROM cards c"
         " LEFT JOIN v_stamp t USING (card_no) WHERE c.stamp_seq != IFNULL(t.seq, 0) LIMIT 1"),
        /* a stamp notice: no money, about an earlier subsidised meal of its card */
        ("SELECT n.card_no, 'stamp notice is not about a subsidised meal of its card, or moves"
         " money', n.seq FROM journal n LEFT JOIN journal m ON m.seq = n.reverses_seq"
         " WHERE n.kind = 5 AND (m.seq IS NULL OR m.kind != 1 OR m.subsidy_fen <= 0"
         " OR m.card_no != n.card_no OR n.price_fen != 0 OR n.subsidy_fen != 0"
         " OR n.wallet_fen != 0 OR n.cash_fen != 0 OR n.src1 IS NOT NULL OR n.tap_id IS NOT NULL)"
         " ORDER BY n.seq LIMIT 1"),
    };
    int rc = sqlite3_exec(l->db, setup, NULL, NULL, NULL);
    for (size_t i = 0; rc == SQLITE_OK && i < sizeof checks / sizeof checks[0]; i++) {
        sqlite3_stmt *s;
        rc = sqlite3_prepare_v2(l->db, checks[i], -1, &s, NULL);
        if (rc != SQLITE_OK)
            break;
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW && !out->bad_card[0]) {
            yn_lg_col_text(s, 0, out->bad_card, sizeof out->bad_card);
            if (!out->what[0]) {
                snprintf(out->what, sizeof out->what, "card %s: %s", out->bad_card,
                         (const char *)sqlite3_column_text(s, 1));
                if (sqlite3_column_count(s) > 2)
                    out->first_bad_seq = sqlite3_column_int64(s, 2);
            }
        }
        rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
        sqlite3_finalize(s);
    }
    sqlite3_stmt *n;
    if (rc == SQLITE_OK &&
        (rc = sqlite3_prepare_v2(l->db, "SELECT COUNT(*) FROM cards WHERE last_seq > 0", -1, &n,
                                 NULL)) == SQLITE_OK) {
        if (sqlite3_step(n) == SQLITE_ROW)
            out->cards = sqlite3_column_int64(n, 0);
        sqlite3_finalize(n);
    }
    (void)sqlite3_exec(l->db,
                       "DROP TABLE IF EXISTS temp.v_bal; DROP TABLE IF EXISTS temp.v_use;"
                       " DROP TABLE IF EXISTS temp.v_tap; DROP TABLE IF EXISTS temp.v_stamp;",
                       NULL, NULL, NULL);
    return rc;
}

int yn_ledger_verify(yn_ledger *l, yn_ledger_verify_report *out)
{
    if (!out)
        return YN_EINVAL;
    memset(out, 0, sizeof *out);
    CHECK_READY(l);
    int rc = yn_lg_tx_begin(l, false);
    if (rc == SQLITE_OK)
        rc = verify_chain(l, out);
    if (rc == SQLITE_OK)
        rc = verify_cards(l, out);
    if (rc != SQLITE_OK)
        return yn_lg_read_fail(l, rc, "verify");
    yn_lg_tx_end(l);
    if (out->what[0]) {
        yn_err("ledger %s: verify: seq %" PRId64 ": %s: %s", l->path, out->first_bad_seq, out->what,
               yn_lg_advice_for(YN_ECORRUPT));
        return YN_ECORRUPT;
    }
    return YN_OK;
}
