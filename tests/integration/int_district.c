/* int_district.c — the district's admin side and its storage against a real
 * yinian-district over TLS, on either backend (issue 13's defects 1, 2, 5, 6):
 *
 * - admin commands refuse what terminals refuse, with the field, exit 2:
 *   `lost "4403 040001'; DROP TABLE cards;--"`, `allocate … 12abc`, a bad
 *   card CSV line (nothing imported), a duplicate allocation id;
 * - bad entries an older server let in (planted with SQL) never block
 *   updates: the terminal applies the document, without them, and a card
 *   reported lost afterwards reaches it in the next update; `check` lists
 *   them (exit 1), `fix` removes them, `check` is then clean;
 * - a writer holding the database longer than the busy budget: the upload
 *   gets 503 with Retry-After and nothing is stored; the retry stores it all;
 * - reports: RFC 4180 quoting (a category "a\nb" stays one cell), formula-like
 *   cells neutralised, checked by Python's csv module; records summing
 *   beyond 64 bits make `report` exit 1 printing nothing, `fix` quarantines
 *   them;
 * - `import DIR` with a symbolic link to /dev/zero, a FIFO and a 10 MB sparse
 *   file named batch-*.ynb: each refused at once, nothing read;
 * - re-enrolment into another canteen keeps the history where it was made;
 * - a card import of 50,000 cards in short transactions while a terminal
 *   uploads: every upload goes through (the longest is printed). */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "batch.h"
#include "check.h"
#include "client.h"
#include "district.h"
#include "keystore.h"
#include "ledger.h"
#include "log.h"
#include "policy.h"
#include "testutil.h"

static yn_test_district D;
static char out_path[800], err_path[800];

/* yinian-district --db DB <args>: its exit status; stdout and stderr in files. */
static int district(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int district(const char *fmt, ...)
{
    char args[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    return yn_test_exit(
        yn_test_sh("%s --db '%s' %s >'%s' 2>'%s'", D.bin, D.db, args, out_path, err_path));
}

/* Whether file holds text. */
static bool file_has(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    static char buf[1 << 16];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f)
        fclose(f);
    buf[n] = '\0';
    return strstr(buf, text) != NULL;
}

static long file_size(const char *path)
{
    FILE *f = fopen(path, "r");
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (f)
        fclose(f);
    return n;
}

/* A terminal: enrolled at canteen, its own ledger and sync client. */
typedef struct term {
    char id[YN_LEDGER_ID_MAX], canteen[64], key_path[800];
    yn_test_key k; /* its key file and keystore */
    yn_ledger *l;
    yn_sync *s;
    int64_t tap;
} term;

static int term_enrol(term *t)
{
    char token[64] = "";
    if (district("enrol-token %s %s", t->id, t->canteen) != 0)
        return -1;
    FILE *f = fopen(out_path, "r");
    if (!f || !fgets(token, sizeof token, f)) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    token[strcspn(token, "\n")] = '\0';
    snprintf(t->key_path, sizeof t->key_path, "%s/%s.key", D.dir, t->id);
    uint8_t pub[64];
    size_t pl;
    yn_test_key_close(&t->k); /* a re-enrolment: the new key */
    if (yn_test_district_enrol(&D, token, t->key_path, &t->k) != YN_OK ||
        yn_key_file_load(D.dpub, false, "district key", pub, sizeof pub, &pl) != YN_OK)
        return -1;
    yn_sync_opts so = {.url = D.url,
                       .ca_file = D.ca,
                       .terminal_id = t->id,
                       .keys = &t->k.ks,
                       .max_batch_records = 50,
                       .timeout_ms = 20000};
    memcpy(so.district_pub, pub, 32);
    yn_sync_free(t->s);
    return yn_sync_new(&so, &t->s) == YN_OK ? 0 : -1;
}

static int term_open(term *t, const char *id, const char *canteen)
{
    memset(t, 0, sizeof *t);
    snprintf(t->id, sizeof t->id, "%s", id);
    snprintf(t->canteen, sizeof t->canteen, "%s", canteen);
    char path[900];
    snprintf(path, sizeof path, "%s/%s.db", D.dir, id);
    yn_ledger_opts lo = {.path = path, .terminal_id = t->id};
    if (yn_ledger_open(&lo, &t->l) != YN_OK)
        return -1;
    return term_enrol(t);
}

static void term_topups(term *t, int n)
{
    for (int i = 0; i < n; i++) {
        yn_ledger_when w = {.utc_s = 1773115200 + t->tap, .mono_ms = t->tap * 1000};
        yn_ledger_result r;
        char card[20];
        snprintf(card, sizeof card, "4403040010%04d", (int)(t->tap % 97));
        t->tap++;
        CHECK_RC(yn_ledger_topup(t->l, t->tap, card, 100 + t->tap % 50, "1001", &w, &r), YN_OK);
    }
}

static int term_sync(term *t)
{
    yn_sync_stats st;
    return t->s ? yn_sync_round(t->s, t->l, 1773200000, &st) : YN_ENOTSUP; /* not enrolled */
}

static void term_close(term *t)
{
    yn_sync_free(t->s);
    yn_ledger_close(t->l);
}

static long long records_of(const char *terminal)
{
    long long tot[YN_TOT_N];
    yn_test_district_totals(&D, terminal, tot);
    return tot[YN_TOT_RECORDS];
}

/* --- the parts ------------------------------------------------------------------- */

static void admin_refusals(void)
{
    int rc = district("lost \"4403 040001'; DROP TABLE cards;--\"");
    CHECK(rc == 2 && file_has(err_path, "card number"), "lost with SQL in it: exit %d", rc);
    rc = district("allocate A-9 44030400100001 district 12abc");
    CHECK(rc == 2 && file_has(err_path, "amount_fen \"12abc\" refused"), "allocate 12abc: exit %d",
          rc);
    rc = district("allocate A-9 44030400100001 district 100000001");
    CHECK(rc == 2, "allocate 100000001 fen: exit %d", rc);
    rc = district("allocate A-9 44030400100001 district 0");
    CHECK(rc == 2, "allocate 0 fen: exit %d", rc);
    rc = district("allocate A-9 '4403 0401' district 100");
    CHECK(rc == 2 && file_has(err_path, "card_no"), "allocate to card '4403 0401': exit %d", rc);
    rc = district("allocate 'A 9' 44030400100001 district 100");
    CHECK(rc == 2 && file_has(err_path, "id"), "allocation id with a space: exit %d", rc);
    rc = district("allocate A-9 44030400100001 'dist rict' 100");
    CHECK(rc == 2 && file_has(err_path, "source"), "source with a space: exit %d", rc);
    char csv[800];
    snprintf(csv, sizeof csv, "%s/bad.csv", D.dir);
    yn_test_sh("printf 'card_no,birth_ymd,flags,district,street,expiry_ymd\\n"
               "44030400100011,19400101,1,440304,440304001,20301231\\n"
               "44030400100012,19400101,1,440304,440305001,20301231\\n"
               "44030400100013,1940x101,1,440304,440304001,20301231\\n' > '%s'",
               csv);
    rc = district("import-cards '%s'", csv);
    CHECK(rc == 2 && file_has(err_path, "bad.csv:3: street") &&
              file_has(err_path, "bad.csv:4: birth_ymd"),
          "a card CSV with bad lines: exit %d, each line named", rc);
    CHECK(district("report terminal") == 0, "report");
    yn_test_sh("cp '%s' '%s.cards'", out_path, out_path);
    rc = district("enrol-token 'T X' canteen-1");
    CHECK(rc == 2, "a terminal id with a space: exit %d", rc);
    rc = district("publish-policy /dev/zero");
    CHECK(rc == 2 && file_has(err_path, "not a regular file"), "policy from /dev/zero: exit %d",
          rc);
}

/* Bad entries of an older server never block updates; check and fix. */
static void bad_entries(term *t)
{
    char sql[2048];
    snprintf(
        sql, sizeof sql,
        "INSERT INTO blacklist(seq, card_no, lost) VALUES (1, '4403 040001'';DROP TABLE cards;--',"
        " 1);\n"
        "INSERT INTO cards(card_no, birth_ymd, flags, district, street, expiry_ymd, version)"
        " VALUES ('44030400100009', 19400101, 1, 0, 0, 20301231, 1);\n"
        "INSERT INTO allocations VALUES (1, 'A-BAD', '44030400100001', 'district',"
        " 1000000000);\n"
        "INSERT INTO policies VALUES (99, '{\"not\": \"a policy\"}');\n"
        "UPDATE meta SET value = 1 WHERE key IN ('blacklist_seq', 'alloc_seq');\n"
        "INSERT INTO meta VALUES ('roster_version', 1) ON CONFLICT(key) DO UPDATE SET"
        " value = 1;\n");
    CHECK(yn_test_district_sql(&D, sql) == 0, "bad entries planted");
    char csv[800];
    snprintf(csv, sizeof csv, "%s/good.csv", D.dir);
    yn_test_sh("printf '44030400100001,19400101,1,440304,440304001,20301231\\n' > '%s'", csv);
    CHECK(district("import-cards '%s'", csv) == 0, "a good card imported");
    CHECK(district("lost 44030400100002") == 0, "a good card reported lost");
    CHECK(district("allocate A-1 44030400100001 district 3000") == 0, "a good allocation");

    int rc = term_sync(t);
    CHECK(rc == YN_OK, "the terminal syncs in spite of the bad entries: %s", yn_strerror(rc));
    int64_t bl = 0;
    CHECK(yn_ledger_blacklist_seq(t->l, &bl) == YN_OK && bl == 2,
          "the card reported lost reached the terminal (blacklist seq %lld, want 2)",
          (long long)bl);
    char v[32] = "";
    CHECK(yn_ledger_meta_get(t->l, "sync_alloc_seq", v, sizeof v) == YN_OK && !strcmp(v, "2"),
          "allocations applied past the bad one: %s", v);
    CHECK(yn_ledger_meta_get(t->l, "sync_roster_version", v, sizeof v) == YN_OK && atoll(v) >= 2,
          "roster applied past the bad card: %s", v);
    CHECK(file_has(D.dir, "") || true, "-");
    char log[800];
    snprintf(log, sizeof log, "%s/server.log", D.dir);
    CHECK(file_has(log, "left out, a terminal would refuse it"),
          "the server logs what it left out");

    rc = district("check");
    CHECK(rc == 1 && file_has(out_path, "blacklist change 1") &&
              file_has(out_path, "card 44030400100009: district") &&
              file_has(out_path, "allocation A-BAD: amount_fen") && file_has(out_path, "policy 99"),
          "check lists each bad entry: exit %d", rc);
    rc = district("fix");
    CHECK(rc == 0 && file_has(out_path, "4 entries removed"), "fix: exit %d", rc);
    rc = district("check");
    CHECK(rc == 0 && file_has(out_path, "0 entries"), "check after fix: exit %d", rc);
    /* a lost card after the fix still goes out */
    CHECK(district("lost 44030400100004") == 0, "another card reported lost");
    bool more;
    CHECK_RC(yn_sync_update_one(t->s, t->l, &more), YN_OK);
    CHECK(yn_ledger_blacklist_seq(t->l, &bl) == YN_OK && bl == 3, "blacklist seq %lld, want 3",
          (long long)bl);
}

/* Another writer holds the database past the busy budget: 503, nothing stored. */
static void writer_holds_lock(term *t)
{
    CHECK(term_sync(t) == YN_OK, "T-A has sent everything");
    term_topups(t, 30);
    long long before = records_of(t->id);
    char hold[1024];
    if (D.postgresql)
        snprintf(hold, sizeof hold,
                 "psql '%s' -qc 'BEGIN; LOCK TABLE terminals IN ACCESS EXCLUSIVE MODE;"
                 " SELECT pg_sleep(4); COMMIT;' >/dev/null 2>&1 &",
                 D.db);
    else
        snprintf(hold, sizeof hold,
                 "printf 'BEGIN IMMEDIATE;\\nUPDATE meta SET value = value WHERE key = "
                 "\\047schema_version\\047;\\n.shell sleep 4\\nCOMMIT;\\n' | sqlite3 '%s' &",
                 D.db);
    yn_test_sh("%s", hold);
    yn_test_sleep_ms(800);
    yn_ledger_batch b;
    uint8_t *frame = NULL;
    size_t len = 0;
    CHECK_RC(yn_ledger_batch_next(t->l, 50, 1773200000, &b), YN_OK);
    CHECK_RC(yn_sync_batch_frame(t->l, &b, &t->k.ks, &frame, &len), YN_OK);
    int64_t t0 = yn_test_now_ms();
    yn_test_reply r = yn_test_district_post(&D, "POST", "/v1/batches", frame, len, NULL, 0);
    int64_t took = yn_test_now_ms() - t0;
    CHECK(r.status == 503 && r.retry_after_s >= 1 && strstr(r.body, "\"unavailable\""),
          "upload while another writer holds the database: HTTP %ld Retry-After %d after %lld ms"
          " (%s)",
          r.status, r.retry_after_s, (long long)took, r.body);
    yn_test_reply_free(&r);
    CHECK(records_of(t->id) == before, "nothing stored: %lld records", records_of(t->id));
    yn_test_sleep_ms(4500);
    r = yn_test_district_post(&D, "POST", "/v1/batches", frame, len, NULL, 0);
    CHECK(r.status == 200, "the retry: HTTP %ld %s", r.status, r.body);
    yn_test_reply_free(&r);
    r = yn_test_district_post(&D, "POST", "/v1/batches", frame, len, NULL, 0);
    CHECK(r.status == 200, "and again (held already): HTTP %ld", r.status);
    yn_test_reply_free(&r);
    free(frame);
    CHECK(term_sync(t) == YN_OK, "the terminal catches up");
    CHECK(records_of(t->id) == before + 30, "all of it stored once: %lld", records_of(t->id));
}

/* The columns a planted record fills (the layers stay NULL). */
#define COLS                                                                                       \
    "(terminal, seq, kind, card_no, category, period, local_ymd, price_fen, subsidy_fen,"          \
    " wallet_fen, cash_fen, utc_s, clock_trusted, reverses_seq, ref, hash)"

static void reports(void)
{
    const char *hash = D.postgresql ? "'\\x00'" : "X'00'";
    char sql[4096];
    snprintf(
        sql, sizeof sql,
        "INSERT INTO records " COLS " VALUES ('T-RPT', 1, 1, '1', 'a\nb', 'lunch', 20260310, 1500,"
        " 500, 0, 1000, 1773115200, 1, 0, '', %s);\n"
        "INSERT INTO records " COLS " VALUES ('T-RPT', 2, 1, '1', '=HYPERLINK(\"http://x\",\"y\")',"
        " 'lunch', 20260310, 1500, 500, 0, 1000, 1773115200, 1, 0, '', %s);\n"
        "INSERT INTO records " COLS " VALUES ('T-RPT', 3, 1, '1', '-5', 'lunch', 20260310, 1500,"
        " 500, 0, 1000, 1773115200, 1, 0, '', %s);\n"
        "INSERT INTO records " COLS " VALUES ('T-RPT', 4, 1, '1', '@x', 'lunch', 20260310, 1500,"
        " 500, 0, 1000, 1773115200, 1, 0, '', %s);\n"
        "INSERT INTO records " COLS " VALUES ('T-RPT', 5, 1, '1', 'x,\"y\"', 'lunch', 20260310,"
        " 1500, 500, 0, 1000, 1773115200, 1, 0, '', %s);\n"
        "INSERT INTO enrolments VALUES ('T-RPT', 1, 9223372036854775807, '+cmd|calc');\n",
        hash, hash, hash, hash, hash);
    CHECK(yn_test_district_sql(&D, sql) == 0, "report records planted");
    int rc = district("report category");
    CHECK(rc == 0, "report category: exit %d", rc);
    /* Python's csv module reads it back cell for cell */
    rc = yn_test_exit(yn_test_sh(
        "python3 -c 'import csv,sys\n"
        "rows = list(csv.reader(open(sys.argv[1], newline=\"\")))\n"
        "cats = {r[0] for r in rows[1:]}\n"
        "want = {\"a\\nb\", \"\\x27=HYPERLINK(\\\"http://x\\\",\\\"y\\\")\", \"\\x27-5\","
        " \"\\x27@x\", \"x,\\\"y\\\"\"}\n"
        "assert rows[0][:4] == [\"category\", \"records\", \"price_fen\", \"meal_subsidy_fen\"],"
        " rows[0]\n"
        "assert want <= cats, (want - cats)\n"
        "assert open(sys.argv[1], \"rb\").read().count(b\"\\r\\n\") == len(rows)\n' '%s'",
        out_path));
    CHECK(rc == 0, "the category report reads back as RFC 4180 with formulas neutralised");
    rc = district("report canteen");
    CHECK(rc == 0 && file_has(out_path, "\"'+cmd|calc\",5,"), "canteen neutralised: exit %d", rc);
    rc = district("report nonsense");
    CHECK(rc == 2, "an unknown report: exit %d", rc);

    /* sums beyond 64 bits: the report fails, prints nothing */
    snprintf(sql, sizeof sql,
             "INSERT INTO records " COLS " VALUES ('T-OVF', 1, 1, '1', 'x', 'lunch', 20260310,"
             " 4611686018427387904, 0, 0, 4611686018427387904, 1773115200, 1, 0, '', %s);\n"
             "INSERT INTO records " COLS " VALUES ('T-OVF', 2, 1, '1', 'x', 'lunch', 20260310,"
             " 4611686018427387904, 0, 0, 4611686018427387904, 1773115200, 1, 0, '', %s);\n",
             hash, hash);
    CHECK(yn_test_district_sql(&D, sql) == 0, "records of 2^62 fen planted");
    rc = district("report terminal");
    CHECK(rc == 1 && file_size(out_path) == 0, "report over 64 bits: exit %d, %ld bytes out", rc,
          file_size(out_path));
    rc = district("check");
    CHECK(rc == 1 && file_has(out_path, "record T-OVF/1: price_fen"), "check names them: %d", rc);
    rc = district("fix");
    CHECK(rc == 0 && file_has(out_path, "records quarantined"), "fix: exit %d", rc);
    rc = district("report terminal");
    CHECK(rc == 0 && !file_has(out_path, "T-OVF"), "report after fix: exit %d", rc);
}

/* A database of the first reference server (d18a5b3's schema) opens: it is
 * upgraded in one transaction, its layers moved into the records, its
 * terminals' history attributed to their canteen, its bad entries listed. */
static void version1_database(void)
{
    char old[800], sql[800];
    snprintf(old, sizeof old, "%s/v1.db", D.dir);
    snprintf(sql, sizeof sql, "%s/v1.sql", D.dir);
    FILE *f = fopen(sql, "w");
    if (!f)
        return;
    fputs("CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);\n"
          "CREATE TABLE terminals(id TEXT PRIMARY KEY, canteen TEXT NOT NULL, key BLOB NOT NULL,"
          " last_seq INTEGER NOT NULL DEFAULT 0, last_hash BLOB NOT NULL DEFAULT (zeroblob(32)),"
          " update_version INTEGER NOT NULL DEFAULT 0);\n"
          "CREATE TABLE tokens(token_hash BLOB PRIMARY KEY, terminal TEXT NOT NULL,"
          " canteen TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0);\n"
          "CREATE TABLE records(terminal TEXT NOT NULL, seq INTEGER NOT NULL,"
          " kind INTEGER NOT NULL, card_no TEXT NOT NULL, category TEXT NOT NULL, period TEXT NOT"
          " NULL, local_ymd INTEGER NOT NULL, price_fen INTEGER NOT NULL, subsidy_fen INTEGER NOT"
          " NULL, wallet_fen INTEGER NOT NULL, cash_fen INTEGER NOT NULL, utc_s INTEGER NOT NULL,"
          " clock_trusted INTEGER NOT NULL, reverses_seq INTEGER NOT NULL, ref TEXT NOT NULL,"
          " hash BLOB NOT NULL, PRIMARY KEY(terminal, seq)) WITHOUT ROWID;\n"
          "CREATE TABLE layers(terminal TEXT NOT NULL, seq INTEGER NOT NULL, source TEXT NOT"
          " NULL, fen INTEGER NOT NULL, PRIMARY KEY(terminal, seq, source)) WITHOUT ROWID;\n"
          "CREATE TABLE batches(terminal TEXT NOT NULL, batch_id INTEGER NOT NULL, first_seq"
          " INTEGER NOT NULL, last_seq INTEGER NOT NULL, received_utc_s INTEGER NOT NULL,"
          " PRIMARY KEY(terminal, batch_id, first_seq));\n"
          "CREATE TABLE cards(card_no TEXT PRIMARY KEY, birth_ymd INTEGER NOT NULL, flags INTEGER"
          " NOT NULL, district INTEGER NOT NULL, street INTEGER NOT NULL, expiry_ymd INTEGER NOT"
          " NULL, version INTEGER NOT NULL);\n"
          "CREATE INDEX cards_version ON cards(version);\n"
          "CREATE TABLE blacklist(seq INTEGER PRIMARY KEY, card_no TEXT NOT NULL, lost INTEGER"
          " NOT NULL);\n"
          "CREATE TABLE policies(version INTEGER PRIMARY KEY, json TEXT NOT NULL);\n"
          "CREATE TABLE allocations(seq INTEGER PRIMARY KEY, id TEXT UNIQUE NOT NULL, card_no"
          " TEXT NOT NULL, source TEXT NOT NULL, amount_fen INTEGER NOT NULL);\n"
          "INSERT INTO terminals(id, canteen, key, last_seq) VALUES ('T-OLD', 'C-OLD', X'00', 1);\n"
          "INSERT INTO records VALUES ('T-OLD', 1, 1, '4403040001', 'dibao', 'lunch', 20250303,"
          " 1200, 1200, 0, 0, 1740970800, 1, 0, '', X'00');\n"
          "INSERT INTO layers VALUES ('T-OLD', 1, 'district', 600), ('T-OLD', 1, 'city', 600);\n"
          "INSERT INTO blacklist VALUES (1, 'AB C', 1), (2, '4403040002', 1);\n",
          f);
    fclose(f);
    CHECK(yn_test_sh("sqlite3 '%s' < '%s'", old, sql) == 0, "a version-1 database made");
    int rc = yn_test_exit(yn_test_sh("%s --db '%s' check > '%s' 2>&1", D.bin, old, out_path));
    CHECK(rc == 1 && file_has(out_path, "blacklist change 1 (card AB C): card_no"),
          "check on a version-1 database: exit %d", rc);
    rc = yn_test_exit(yn_test_sh("%s --db '%s' report layer > '%s' 2>&1", D.bin, old, out_path));
    CHECK(rc == 0 && file_has(out_path, "city,1,0,600,0,0,0") &&
              file_has(out_path, "district,1,0,600,0,0,0"),
          "its layers moved into the records: exit %d", rc);
    rc = yn_test_exit(yn_test_sh("%s --db '%s' report canteen > '%s' 2>&1", D.bin, old, out_path));
    CHECK(rc == 0 && file_has(out_path, "C-OLD,1,1200,1200,0,0,0"), "its canteen: exit %d", rc);
}

static void import_hostile_files(void)
{
    char dir[800];
    snprintf(dir, sizeof dir, "%s/usb", D.dir);
    yn_test_sh(
        "mkdir -p '%s' && ln -sf /dev/zero '%s/batch-T-A-1.ynb' && mkfifo '%s/batch-T-A-2.ynb'"
        " && truncate -s 10M '%s/batch-T-A-3.ynb'",
        dir, dir, dir, dir);
    int64_t t0 = yn_test_now_ms();
    int rc = yn_test_exit(yn_test_sh("timeout 30 %s --db '%s' import '%s' >'%s' 2>'%s'", D.bin,
                                     D.db, dir, out_path, err_path));
    int64_t took = yn_test_now_ms() - t0;
    CHECK(rc == 1, "import of a link, a FIFO and a huge file: exit %d (124 = hung)", rc);
    CHECK(file_has(err_path, "batch-T-A-1.ynb: a symbolic link"), "the link refused");
    CHECK(file_has(err_path, "batch-T-A-2.ynb: not a regular file"), "the FIFO refused");
    CHECK(file_has(err_path, "batch-T-A-3.ynb: 10485760 bytes, over the limit"),
          "the big file refused before reading");
    printf("int_district: hostile import refused in %lld ms\n", (long long)took);
}

static void reenrolment(void)
{
    term m;
    CHECK(term_open(&m, "T-MOVE", "C-OLD") == 0, "T-MOVE enrolled at C-OLD");
    term_topups(&m, 10);
    CHECK(term_sync(&m) == YN_OK, "10 records at C-OLD, and the district's allocation A-1");
    CHECK(term_sync(&m) == YN_OK, "the allocation's record uploaded before the move");
    snprintf(m.canteen, sizeof m.canteen, "C-NEW");
    CHECK(term_enrol(&m) == 0, "T-MOVE re-enrolled at C-NEW");
    term_topups(&m, 5);
    CHECK(term_sync(&m) == YN_OK, "5 records at C-NEW, under the new key");
    int rc = district("report canteen");
    CHECK(rc == 0 && file_has(out_path, "C-OLD,11,") && file_has(out_path, "C-NEW,5,"),
          "each canteen keeps its own history: exit %d", rc);
    term_close(&m);
}

/* 50,000 cards imported in short transactions while a terminal uploads. */
static void import_while_uploading(term *t)
{
    char csv[800];
    snprintf(csv, sizeof csv, "%s/city.csv", D.dir);
    FILE *f = fopen(csv, "w");
    for (int i = 0; f && i < 50000; i++)
        fprintf(f, "44030420%06d,19%02d0101,%d,440304,440304%03d,20301231\n", i, 30 + i % 60,
                1 << (i % 7), 1 + i % 999);
    if (f)
        fclose(f);
    char import_out[800];
    snprintf(import_out, sizeof import_out, "%s/import.out", D.dir);
    pid_t pid = fork();
    if (pid == 0) {
        execlp("sh", "sh", "-c", "exec \"$0\" --db \"$1\" import-cards \"$2\" >\"$3\" 2>&1", D.bin,
               D.db, csv, import_out, (char *)NULL);
        _exit(127);
    }
    int64_t longest = 0;
    int failures = 0, uploads = 0, status = 0;
    bool done = false;
    while (!done || uploads < 3) { /* uploads only: the roster download is not a stall */
        done = done || waitpid(pid, &status, WNOHANG) == pid;
        term_topups(t, 20);
        int64_t t0 = yn_test_now_ms(), n;
        failures += yn_sync_upload_one(t->s, t->l, 1773200000, &n) != YN_OK;
        int64_t took = yn_test_now_ms() - t0;
        longest = took > longest ? took : longest;
        uploads++;
    }
    CHECK(yn_test_exit(status) == 0 && file_has(import_out, "50000 cards imported"),
          "the import: exit %d", yn_test_exit(status));
    CHECK(failures == 0, "%d of %d uploads failed during the import", failures, uploads);
    CHECK(term_sync(t) == YN_OK, "the terminal then takes the new roster");
    printf("int_district: %d uploads during a 50,000-card import, the longest %lld ms\n", uploads,
           (long long)longest);
    FILE *o = fopen(import_out, "r");
    char line[256] = "";
    if (o && fgets(line, sizeof line, o))
        printf("int_district: %s", line);
    if (o)
        fclose(o);
}

/* --- identity-only cards and 忘带卡 (issue 16) ---------------------------------------- */

#define WED_LUNCH_UTC 1773201600LL /* 2026-03-11 (Wednesday) 12:00 Asia/Shanghai */
#define BOUND_IDENT   "A:04A1B2C3D4E5F6"

/* A meal at t of a holder identified by (identity-only card or manual
 * entry), under policy: its record committed. */
static void term_meal_by(term *t, const yn_policy *policy, int by, const char *card_no,
                         const char *ident, const char *supervisor, int64_t utc_s)
{
    yn_card_facts c = {0}; /* nothing read from a card: the roster says it all */
    snprintf(c.card_no, sizeof c.card_no, "%s", card_no);
    yn_meal meal = {.price_fen = 1500};
    yn_canteen canteen = {.district = 440304, .street = 440304001};
    t->tap++;
    yn_ledger_tap tap = {.tap_id = t->tap,
                         .card = &c,
                         .meal = &meal,
                         .canteen = &canteen,
                         .operator_id = "staff01",
                         .when = {.utc_s = utc_s, .mono_ms = t->tap * 1000, .clock_trusted = true},
                         .by = by,
                         .ident = ident,
                         .supervisor_id = supervisor};
    yn_ledger_result r;
    int rc = yn_ledger_debit(t->l, policy, &tap, &r);
    CHECK(rc == YN_OK && r.decision.subsidy_fen > 0, "%s: %s meal of %s: %s, subsidy %lld", t->id,
          yn_ledger_by_name(by), card_no, yn_strerror(rc), (long long)r.decision.subsidy_fen);
}

/* The roster binds an enrolled card's identifier (import-cards, the CSV of
 * yinian-card enrol), refusing bad identifiers with the reason; a lost one
 * goes out by its identifier; two terminals at two canteens serve the same
 * identifier in one lunch, and one serves a 忘带卡 meal; all synced over
 * HTTPS; the district puts the identifier on the blacklist, reports it
 * (shared-ident) and counts identity-only and manual meals apart. */
static void identity_cards(void)
{
    char csv[800];
    snprintf(csv, sizeof csv, "%s/idbad.csv", D.dir);
    yn_test_sh("printf 'card_no,birth_ymd,flags,district,street,expiry_ymd,ident\\n"
               "44030400200001,19400101,2,440304,440304001,20301231,A:08A1B2C3\\n"
               "44030400200002,19400101,2,440304,440304001,20301231,A:04a1b2c3d4e5f6\\n"
               "44030400200003,19400101,2,440304,440304001,20301231,A:04A1B2C3D4\\n"
               "44030400200004,0,2,440304,440304001,20301231,A:5C010203\\n' > '%s'",
               csv);
    int rc = district("import-cards '%s'", csv);
    CHECK(rc == 2 && file_has(err_path, "idbad.csv:2: ident: a random UID") &&
              file_has(err_path, "idbad.csv:3: ident: the UID must be hex digits") &&
              file_has(err_path, "idbad.csv:4: ident: a type A UID is 4, 7 or 10 bytes") &&
              file_has(err_path, "idbad.csv:5: birth_ymd") &&
              file_has(err_path, "nothing imported"),
          "bad identifiers refused, each line with why: exit %d", rc);
    snprintf(csv, sizeof csv, "%s/ids.csv", D.dir);
    yn_test_sh("printf 'card_no,birth_ymd,flags,district,street,expiry_ymd,ident\\n"
               "44030400200001,19400101,2,440304,440304001,20301231," BOUND_IDENT "\\n"
               "44030400200002,19400101,2,440304,440304001,20301231\\n' > '%s'",
               csv);
    CHECK(district("import-cards '%s'", csv) == 0, "a card bound to " BOUND_IDENT " imported");
    snprintf(csv, sizeof csv, "%s/idtwice.csv", D.dir);
    yn_test_sh("printf '44030400200005,19400101,2,440304,440304001,20301231," BOUND_IDENT
               "\\n' > '%s'",
               csv);
    rc = district("import-cards '%s'", csv);
    CHECK(rc == 2 && file_has(err_path, "ending at line 1: identifier " BOUND_IDENT
                                        " (cards 44030400200001 and 44030400200005) would be"
                                        " bound to two cards"),
          "an identifier bound to a second card refused: exit %d", rc);
    rc = district("lost-ident A:08A1B2C3");
    CHECK(rc == 2 && file_has(err_path, "random UID"), "lost-ident of a random UID: exit %d", rc);
    CHECK(district("lost-ident B:1A2B3C4D") == 0, "a lost identity-only card by its PUPI");

    yn_policy *policy = yn_test_policy_ident(2);
    term a, b;
    CHECK(term_open(&a, "T-I1", "C-ID-1") == 0 && term_open(&b, "T-I2", "C-ID-2") == 0,
          "two terminals at two canteens");
    if (!policy || !a.s || !b.s)
        return;
    CHECK_RC(term_sync(&a), YN_OK);
    CHECK_RC(term_sync(&b), YN_OK);
    char card_no[20] = "";
    bool lost = true;
    rc = yn_ledger_ident_card(a.l, BOUND_IDENT, card_no, &lost);
    CHECK(rc == YN_OK && !strcmp(card_no, "44030400200001") && !lost,
          "the binding reached the terminal: %s %s lost %d", yn_strerror(rc), card_no, lost);
    rc = yn_ledger_ident_card(a.l, "B:1A2B3C4D", card_no, &lost);
    CHECK(rc == YN_ENOTFOUND && lost, "the lost identifier reached it: %s, lost %d",
          yn_strerror(rc), lost);

    CHECK_RC(term_sync(&a), YN_OK); /* the allocations the update made, uploaded */
    CHECK_RC(term_sync(&b), YN_OK);
    long long held_a = records_of("T-I1"), held_b = records_of("T-I2");
    /* the same identifier at two canteens in one lunch; a 忘带卡 meal at one */
    term_meal_by(&a, policy, YN_LEDGER_BY_IDENT, "44030400200001", BOUND_IDENT, NULL,
                 WED_LUNCH_UTC);
    term_meal_by(&a, policy, YN_LEDGER_BY_MANUAL, "44030400200002", NULL, "super02",
                 WED_LUNCH_UTC + 60);
    term_meal_by(&b, policy, YN_LEDGER_BY_IDENT, "44030400200001", BOUND_IDENT, NULL,
                 WED_LUNCH_UTC + 300);
    CHECK_RC(term_sync(&a), YN_OK);
    CHECK_RC(term_sync(&b), YN_OK);
    CHECK(records_of("T-I1") == held_a + 2 && records_of("T-I2") == held_b + 1,
          "the meals reached the district");
    char log[800];
    snprintf(log, sizeof log, "%s/server.log", D.dir);
    CHECK(file_has(log, "identifier " BOUND_IDENT " used at 2 canteens in lunch of 20260311"),
          "the server logs the copied identifier");

    rc = district("report shared-ident");
    CHECK(rc == 0 &&
              file_has(out_path, "ident,local_ymd,period,canteen,card_no,meals,meal_subsidy_fen,"
                                 "first_utc_s,last_utc_s\r\n") &&
              file_has(out_path, BOUND_IDENT ",20260311,lunch,C-ID-1,44030400200001,1,") &&
              file_has(out_path, BOUND_IDENT ",20260311,lunch,C-ID-2,44030400200001,1,"),
          "report shared-ident lists both canteens: exit %d", rc);
    rc = district("report identified");
    CHECK(rc == 0 && file_has(out_path, "canteen,identified,records,price_fen,") &&
              file_has(out_path, "C-ID-1,identity,1,1500,") &&
              file_has(out_path, "C-ID-1,manual,1,1500,") &&
              file_has(out_path, "C-ID-2,identity,1,1500,") && !file_has(out_path, "C-ID-2,manual"),
          "report identified counts identity-only and manual meals apart: exit %d", rc);
    /* the stored identification obeys the rules: ident kept, both staff ids kept */
    rc = district("check");
    CHECK(rc == 0, "check after identity-only and manual meals: exit %d", rc);

    /* the next update takes the identifier off every terminal */
    bool more;
    CHECK_RC(yn_sync_update_one(a.s, a.l, &more), YN_OK);
    rc = yn_ledger_ident_card(a.l, BOUND_IDENT, card_no, &lost);
    CHECK(rc == YN_OK && lost, "the copied identifier is on T-I1's blacklist: %s, lost %d",
          yn_strerror(rc), lost);
    /* found again after the district looked into it */
    CHECK(district("found-ident " BOUND_IDENT) == 0, "found-ident");
    CHECK_RC(yn_sync_update_one(a.s, a.l, &more), YN_OK);
    rc = yn_ledger_ident_card(a.l, BOUND_IDENT, card_no, &lost);
    CHECK(rc == YN_OK && !lost, "found again: %s, lost %d", yn_strerror(rc), lost);
    term_close(&a);
    term_close(&b);
    yn_policy_free(policy);
}

int main(void)
{
    const char *build = getenv("BUILD"), *tmp = getenv("TMPDIR");
    if (!build || !tmp)
        return 2;
    yn_log_init("int_district", YN_LOG_ERR, false);
    char dir_path[512];
    snprintf(dir_path, sizeof dir_path, "%s/district", tmp);
    if (yn_test_district_init(&D, build, dir_path) != 0)
        return 1;
    snprintf(out_path, sizeof out_path, "%s/cmd.out", D.dir);
    snprintf(err_path, sizeof err_path, "%s/cmd.err", D.dir);
    admin_refusals();
    if (!D.postgresql)
        version1_database();
    pid_t srv = yn_test_district_start(&D, NULL, NULL);
    term t;
    CHECK(term_open(&t, "T-A", "C-FT-001") == 0, "T-A enrolled");
    bad_entries(&t);
    writer_holds_lock(&t);
    reports();
    import_hostile_files();
    reenrolment();
    identity_cards();
    import_while_uploading(&t);
    term_close(&t);
    yn_test_district_stop(srv, SIGTERM);
    printf("int_district: %d checks, %d failed\n", yn_checks, yn_failures);
    return yn_failures ? 1 : 0;
}
