/* test_district_ident.c — the district's side of identity-only cards and
 * 忘带卡 (firmware/core/CARD.md §8) on a real SQLite file, through the district's
 * own modules: version 2 frames ingested with their identification stored
 * (the identifier; both staff ids of a manual entry); an identifier used at
 * two canteens in one meal period put on the blacklist once; the reports
 * `identified` and `shared-ident` to the cell; update documents carrying
 * roster bindings and blacklist changes by identifier, leaving out a bad
 * binding; a schema-2 database upgraded in place. Also the listing of
 * stamp-missing notices (firmware/ledger/LEDGER.md "Card stamps"), which needs the
 * same two-canteen fixture. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "db.h"
#include "ingest.h"
#include "log.h"
#include "report.h"
#include "terminals.h"
#include "testutil.h"
#include "updates.h"

#define IDENT     "A:04A1B2C3D4E5F6"
#define LUNCH_UTC 1773201600LL /* 2026-03-11 12:00 Asia/Shanghai */

static char dir[512];
static yn_db *db;

/* A terminal enrolled at canteen: its key. */
typedef struct term {
    const char *id;
    uint8_t key[32];
    yn_ledger_record rec[4];
    int n;
} term;

static void enrol(term *t, const char *canteen)
{
    char token[33], id[17], got_canteen[65], hex[65];
    assert_int_equal(yn_terminal_token_new(db, t->id, canteen, token), YN_OK);
    assert_int_equal(yn_terminal_enrol(db, token, 0, NULL, id, got_canteen, hex), YN_OK);
    for (int i = 0; i < 32; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        t->key[i] = (uint8_t)v;
    }
}

/* The terminal's next meal: ¥15 paid by the city layer, lunch of 20260311. */
static yn_ledger_record *meal(term *t, const char *card_no, int by, const char *ident,
                              const char *supervisor)
{
    yn_ledger_record *r = &t->rec[t->n];
    *r = (yn_ledger_record){.seq = t->n + 1,
                            .tap_id = 100 + t->n,
                            .kind = YN_LEDGER_MEAL,
                            .local_ymd = 20260311,
                            .price_fen = 1500,
                            .subsidy_fen = 1500,
                            .n_layers = 1,
                            .utc_s = LUNCH_UTC + 60 * t->n,
                            .mono_ms = 1000 * (t->n + 1),
                            .boot_no = 1,
                            .clock_trusted = true,
                            .policy_version = 7,
                            .by = by};
    snprintf(r->terminal, sizeof r->terminal, "%s", t->id);
    snprintf(r->card_no, sizeof r->card_no, "%s", card_no);
    strcpy(r->category, "dibao");
    strcpy(r->period, "lunch");
    strcpy(r->operator_id, "staff01");
    strcpy(r->layers[0].source, "city");
    r->layers[0].fen = 1500;
    snprintf(r->ident, sizeof r->ident, "%s", ident ? ident : "");
    snprintf(r->supervisor_id, sizeof r->supervisor_id, "%s", supervisor ? supervisor : "");
    static const uint8_t zero[YN_LEDGER_HASH_LEN];
    const uint8_t *prev = t->n ? t->rec[t->n - 1].hash : zero;
    memcpy(r->prev_hash, prev, YN_LEDGER_HASH_LEN);
    yn_ledger_record_hash(r, prev, r->hash);
    t->n++;
    return r;
}

/* Upload the terminal's records from seq first as one frame: the HTTP status. */
static unsigned upload(term *t, int first, int64_t batch_id)
{
    uint8_t *frame;
    size_t len;
    assert_int_equal(yn_batch_encode(batch_id, t->rec + first - 1, (size_t)(t->n - first + 1),
                                     t->key, sizeof t->key, &frame, &len),
                     YN_OK);
    yn_ingest g;
    memset(&g, 0, sizeof g);
    (void)yn_ingest_frame(db, frame, len, NULL, LUNCH_UTC + 3600, &g);
    unsigned status = g.status;
    if (status != 200)
        print_message("upload %s: %u %s\n", t->id, status, g.message);
    yn_ingest_done(&g);
    free(frame);
    return status;
}

static int64_t count(const char *sql)
{
    int64_t n = -1;
    assert_int_equal(yn_db_int_of(db, sql, NULL, 0, &n), YN_OK);
    return n;
}

/* Run statements separated by ";" (one yn_db_run runs one statement). */
static void sql(const char *text)
{
    char buf[2048], *save = NULL;
    snprintf(buf, sizeof buf, "%s", text);
    for (char *st = strtok_r(buf, ";", &save); st; st = strtok_r(NULL, ";", &save))
        assert_int_equal(yn_db_run(db, st, NULL, 0, NULL, NULL), YN_OK);
}

static char *report(const char *by)
{
    static char text[4096];
    char *buf = NULL, err[300];
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(yn_report_write(db, by, f, err, sizeof err), YN_OK);
    fclose(f);
    snprintf(text, sizeof text, "%s", buf);
    free(buf);
    return text;
}

static int setup(void **state)
{
    (void)state;
    char path[700], err[300];
    yn_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/district.db", dir);
    return yn_db_open(path, NULL, &db, err, sizeof err) == YN_OK ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    yn_db_close(db);
    return 0;
}

static void test_ingest_and_reports(void **state)
{
    (void)state;
    term a = {.id = "T-1"}, b = {.id = "T-2"};
    enrol(&a, "C-1");
    enrol(&b, "=C,2"); /* a canteen id a spreadsheet would misread */
    meal(&a, "44030400200001", YN_LEDGER_BY_IDENT, IDENT, NULL);
    meal(&a, "44030400200002", YN_LEDGER_BY_MANUAL, NULL, "super02");
    meal(&a, "44030400200003", YN_LEDGER_BY_CARD, NULL, NULL);
    assert_int_equal(upload(&a, 1, 1), 200);
    /* one canteen so far: nothing flagged */
    assert_int_equal(count("SELECT COUNT(*) FROM blacklist"), 0);
    /* what was stored: identification, the identifier, both staff ids of the manual entry */
    assert_int_equal(count("SELECT COUNT(*) FROM records WHERE terminal = 'T-1' AND seq = 1 AND"
                           " identified = 2 AND ident = '" IDENT "' AND supervisor = '' AND"
                           " served_by = ''"),
                     1);
    assert_int_equal(count("SELECT COUNT(*) FROM records WHERE terminal = 'T-1' AND seq = 2 AND"
                           " identified = 3 AND ident = '' AND supervisor = 'super02' AND"
                           " served_by = 'staff01'"),
                     1);
    assert_int_equal(count("SELECT COUNT(*) FROM records WHERE terminal = 'T-1' AND seq = 3 AND"
                           " identified = 1 AND ident = '' AND served_by = ''"),
                     1);

    /* the same identifier at another canteen in the same lunch, twice */
    meal(&b, "44030400200001", YN_LEDGER_BY_IDENT, IDENT, NULL);
    meal(&b, "44030400200001", YN_LEDGER_BY_IDENT, IDENT, NULL);
    assert_int_equal(upload(&b, 1, 1), 200);
    assert_int_equal(count("SELECT COUNT(*) FROM blacklist WHERE ident = '" IDENT "' AND lost = 1"
                           " AND card_no = ''"),
                     1);
    assert_int_equal(upload(&b, 1, 1), 200); /* a retry: held already, nothing added */
    assert_int_equal(count("SELECT COUNT(*) FROM blacklist"), 1);

    /* ordered by canteen: "=C,2" sorts before "C-1" */
    assert_string_equal(report("identified"),
                        "canteen,identified,records,price_fen,meal_subsidy_fen,allocation_fen,"
                        "wallet_fen,cash_fen\r\n"
                        "\"'=C,2\",identity,2,3000,3000,0,0,0\r\n"
                        "C-1,card,1,1500,1500,0,0,0\r\n"
                        "C-1,identity,1,1500,1500,0,0,0\r\n"
                        "C-1,manual,1,1500,1500,0,0,0\r\n");
    assert_string_equal(report("shared-ident"),
                        "ident,local_ymd,period,canteen,card_no,meals,meal_subsidy_fen,"
                        "first_utc_s,last_utc_s\r\n" IDENT
                        ",20260311,lunch,\"'=C,2\",44030400200001,2,3000,1773201600,"
                        "1773201660\r\n" IDENT
                        ",20260311,lunch,C-1,44030400200001,1,1500,1773201600,1773201600\r\n");
}

static void test_updates_carry_bindings(void **state)
{
    (void)state;
    term t = {.id = "T-U"};
    enrol(&t, "C-U");
    sql("INSERT INTO cards(card_no, birth_ymd, flags, district, street, expiry_ymd, version,"
        " ident) VALUES"
        " ('44030400200001', 19400101, 2, 440304, 440304001, 20301231, 1, '" IDENT "'),"
        " ('44030400200002', 19400101, 2, 440304, 440304001, 20301231, 2, ''),"
        " ('44030400200003', 19400101, 2, 440304, 440304001, 20301231, 3, 'A:08A1B2C3');"
        "INSERT INTO blacklist(seq, card_no, ident, lost) VALUES (1, '', 'B:1A2B3C4D', 1),"
        " (2, '44030400200002', '', 1)");
    yn_updates_have have = {0};
    char *doc = NULL;
    int64_t skipped = 0;
    assert_int_equal(yn_updates_build(db, "T-U", &have, 1773201600000, &doc, &skipped), YN_OK);
    assert_non_null(doc);
    assert_int_equal(skipped, 1); /* the random UID: a terminal would refuse it */
    assert_non_null(strstr(doc, "\"card_no\":\"44030400200001\",\"birth_ymd\":19400101"));
    assert_non_null(strstr(doc, "\"expiry_ymd\":20301231,\"ident\":\"" IDENT "\"}"));
    assert_non_null(strstr(doc, "\"card_no\":\"44030400200002\""));
    assert_null(strstr(doc, "A:08A1B2C3"));
    assert_non_null(strstr(doc, "{\"seq\":1,\"ident\":\"B:1A2B3C4D\",\"lost\":true}"));
    assert_non_null(strstr(doc, "{\"seq\":2,\"card_no\":\"44030400200002\",\"lost\":true}"));
    free(doc);
}

/* A meal whose stamp was lost at T-S1 (a kind-5 notice names it), the same
 * card subsidised again that lunch at T-S2 offline: the listing shows the
 * window used (2 meals); a reversed second meal closes it (1). */
static void test_stamp_missing_listed(void **state)
{
    (void)state;
    term a = {.id = "T-S1"}, b = {.id = "T-S2"};
    enrol(&a, "C-S1");
    enrol(&b, "C-S2");
    meal(&a, "44030400200007", YN_LEDGER_BY_CARD, NULL, NULL);
    yn_ledger_record *n = meal(&a, "44030400200007", YN_LEDGER_BY_CARD, NULL, NULL);
    n->kind = YN_LEDGER_STAMP_MISSING;
    n->tap_id = 0;
    n->price_fen = n->subsidy_fen = 0;
    n->n_layers = 0;
    n->reverses_seq = 1;
    strcpy(n->ref, "card_gone");
    yn_ledger_record_hash(n, a.rec[0].hash, n->hash);
    meal(&b, "44030400200007", YN_LEDGER_BY_CARD, NULL, NULL);
    assert_int_equal(upload(&a, 1, 1), 200);
    assert_int_equal(upload(&b, 1, 1), 200);
    const char *head = "canteen,terminal,local_ymd,period,card_no,cause,seq,meal_seq,"
                       "meal_subsidy_fen,subsidised_meals_in_period,utc_s\r\n";
    char want[512];
    snprintf(want, sizeof want,
             "%sC-S1,T-S1,20260311,lunch,44030400200007,card_gone,2,1,1500,2,%lld\r\n", head,
             LUNCH_UTC + 60);
    assert_string_equal(report("stamp-missing"), want);
    /* staff at T-S2 undo the second meal: the window was not used after all */
    yn_ledger_record *u = meal(&b, "44030400200007", YN_LEDGER_BY_CARD, NULL, NULL);
    u->kind = YN_LEDGER_REVERSAL;
    u->tap_id = 0;
    u->price_fen = -1500;
    u->subsidy_fen = -1500;
    u->layers[0].fen = -1500;
    u->reverses_seq = 1;
    yn_ledger_record_hash(u, b.rec[0].hash, u->hash);
    assert_int_equal(upload(&b, 2, 2), 200);
    snprintf(want, sizeof want,
             "%sC-S1,T-S1,20260311,lunch,44030400200007,card_gone,2,1,1500,1,%lld\r\n", head,
             LUNCH_UTC + 60);
    assert_string_equal(report("stamp-missing"), want);
}

/* A database of schema 2 (before identification) is upgraded when opened. */
static void test_schema2_upgraded(void **state)
{
    (void)state;
    sql("DROP INDEX records_ident; DROP INDEX cards_ident;"
        "ALTER TABLE records DROP COLUMN identified;"
        "ALTER TABLE records DROP COLUMN ident;"
        "ALTER TABLE records DROP COLUMN supervisor;"
        "ALTER TABLE records DROP COLUMN served_by;"
        "ALTER TABLE quarantine DROP COLUMN identified;"
        "ALTER TABLE quarantine DROP COLUMN ident;"
        "ALTER TABLE quarantine DROP COLUMN supervisor;"
        "ALTER TABLE quarantine DROP COLUMN served_by;"
        "ALTER TABLE cards DROP COLUMN ident;"
        "ALTER TABLE blacklist DROP COLUMN ident;"
        "ALTER TABLE terminals DROP COLUMN key_type;"
        "UPDATE meta SET value = 2 WHERE key = 'schema_version'");
    assert_int_equal(count("SELECT COUNT(*) FROM pragma_table_info('records') WHERE name IN"
                           " ('identified', 'ident', 'supervisor', 'served_by')"),
                     0);
    yn_db_close(db);
    char path[700], err[300];
    snprintf(path, sizeof path, "%s/district.db", dir);
    assert_int_equal(yn_db_open(path, NULL, &db, err, sizeof err), YN_OK);
    assert_int_equal(count("SELECT value FROM meta WHERE key = 'schema_version'"), 4);
    assert_int_equal(count("SELECT COUNT(*) FROM pragma_table_info('records') WHERE name IN"
                           " ('identified', 'ident', 'supervisor', 'served_by')"),
                     4);
    assert_int_equal(count("SELECT COUNT(*) FROM pragma_table_info('cards') WHERE name = 'ident'"),
                     1);
    /* an old record reads as identified by its card */
    term t = {.id = "T-OLD"};
    enrol(&t, "C-OLD");
    meal(&t, "44030400200009", YN_LEDGER_BY_CARD, NULL, NULL);
    assert_int_equal(upload(&t, 1, 1), 200);
    assert_non_null(strstr(report("identified"), "C-OLD,card,1,1500,"));
}

int main(void)
{
    yn_log_init("test_district_ident", YN_LOG_ERR, false);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ingest_and_reports, setup, teardown),
        cmocka_unit_test_setup_teardown(test_updates_carry_bindings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema2_upgraded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stamp_missing_listed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
