/* test_time64.c — the terminal after 2038-01-19T03:14:07Z, where a 32-bit
 * time_t ends: libc's own calendar, the policy (local date, period, age
 * brackets), the ledger (debits across the rollover second, period use,
 * reversal, verify, 日结, the kiosk's month, sync batches and acks), the card
 * stamp, the batch frame and update documents, at 2038-01-19T03:14:08Z
 * (11:14 in Shanghai: lunch), 2040-02-29 and 2099-12-31 (the last day a
 * card can carry). Runs natively and under qemu-arm (make check-cross
 * ARCH=armhf), where a 32-bit time_t made libc disagree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "card.h"
#include "client.h"
#include "clock.h"
#include "clock_sim.h"
#include "ledger.h"
#include "log.h"
#include "policy.h"
#include "testkeys.h"
#include "testutil.h"
#include "update.h"

#define LAST_32  2147483647LL /* 2038-01-19T03:14:07Z = 11:14:07 local, a Tuesday */
#define FIRST_64 2147483648LL /* one second later: a 32-bit time_t is 1901 here */
#define NEXT_DAY 2147572800LL /* 2038-01-20T04:00:00Z = 12:00 local, Wednesday */
#define LEAP_DAY 2214100800LL /* 2040-02-29T04:00:00Z = 12:00 local, Wednesday */
#define LAST_DAY 4102372800LL /* 2099-12-31T04:00:00Z = 12:00 local, Thursday */
#define U32_END  4294967296LL /* 2106-02-07T06:28:16Z: an unsigned 32-bit count ends */

#define STREET   440304001u
#define DISTRICT 440304u

static yn_policy *policy; /* shenzhen-2025: weekday lunch, 100+ 15 yuan, 70-99 5 yuan */

/* UTC seconds of "YYYY-MM-DDTHH:MM:SS" by libc (timegm): the oracle. */
static int64_t libc_utc(const char *iso)
{
    struct tm tm = {0};
    if (sscanf(iso, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec) != 6)
        fail_msg("bad date %s", iso);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm);
}

static int group_setup(void **state)
{
    (void)state;
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/firmware/policies/shenzhen-2025.json", yn_test_srcdir());
    if (yn_policy_load_file(path, &policy, err, sizeof err) != YN_OK) {
        fprintf(stderr, "cannot load %s: %s\n", path, err);
        return -1;
    }
    yn_log_quiet(true);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    yn_policy_free(policy);
    return 0;
}

/* A card of the canteen's own street, valid to the end of the card format. */
static yn_card_facts card_born(const char *no, int32_t birth_ymd)
{
    yn_card_facts c = {
        .birth_ymd = birth_ymd, .district = DISTRICT, .street = STREET, .expiry_ymd = 20991231};
    snprintf(c.card_no, sizeof c.card_no, "%s", no);
    return c;
}

static const yn_canteen canteen = {.district = DISTRICT, .street = STREET};

/* ---- libc ----------------------------------------------------------------- */

static void test_libc_calendar_is_64_bit(void **state)
{
    (void)state;
    assert_int_equal(sizeof(time_t), 8);
    assert_int_equal(libc_utc("2038-01-19T03:14:07"), LAST_32);
    assert_int_equal(libc_utc("2038-01-19T03:14:08"), FIRST_64);
    assert_int_equal(libc_utc("2040-02-29T04:00:00"), LEAP_DAY);
    assert_int_equal(libc_utc("2099-12-31T04:00:00"), LAST_DAY);
    assert_int_equal(libc_utc("2106-02-07T06:28:16"), U32_END);
    time_t t = (time_t)FIRST_64;
    struct tm tm;
    assert_non_null(gmtime_r(&t, &tm));
    assert_int_equal(tm.tm_year + 1900, 2038);
    assert_int_equal(tm.tm_sec, 8);
    /* the system clock reads through the 64-bit call, here too */
    struct timespec now;
    assert_int_equal(clock_gettime(CLOCK_REALTIME, &now), 0);
    assert_true(now.tv_sec > 1735689600); /* after 2025-01-01 */
}

/* ---- policy ---------------------------------------------------------------- */

static void expect_moment(int64_t utc_s, int32_t ymd, int weekday, int32_t sod, const char *period)
{
    yn_moment m;
    memset(&m, 0x5a, sizeof m);
    yn_policy_locate(policy, utc_s, &m);
    if (m.local_ymd != ymd || m.local_ym != ymd / 100 || m.weekday != weekday ||
        m.seconds_of_day != sod || strcmp(m.period, period) != 0)
        fail_msg("locate(%lld): %d weekday %d at %d s \"%s\"; expected %d weekday %d at %d s "
                 "\"%s\"",
                 (long long)utc_s, m.local_ymd, m.weekday, m.seconds_of_day, m.period, ymd, weekday,
                 sod, period);
}

static void expect_subsidy(const char *row, int32_t birth_ymd, int64_t utc_s, const char *category,
                           int64_t subsidy_fen)
{
    yn_card_facts c = card_born("4403040000003800", birth_ymd);
    yn_meal meal = {.price_fen = 1500};
    yn_usage none = {0, 0, 0, 0};
    yn_decision d;
    assert_int_equal(yn_policy_decide(policy, &c, &meal, &canteen, utc_s, &none, 0, &d), YN_OK);
    if (!d.allowed || strcmp(d.category, category) != 0 || d.subsidy_fen != subsidy_fen ||
        strcmp(d.period, "lunch") != 0)
        fail_msg("%s: allowed %d category \"%s\" subsidy %lld period \"%s\"; expected \"%s\" %lld",
                 row, d.allowed, d.category, (long long)d.subsidy_fen, d.period, category,
                 (long long)subsidy_fen);
}

static void test_policy_after_2038(void **state)
{
    (void)state;
    int32_t at_rollover = 11 * 3600 + 14 * 60;
    expect_moment(LAST_32, 20380119, 2, at_rollover + 7, "lunch");
    expect_moment(FIRST_64, 20380119, 2, at_rollover + 8, "lunch");
    expect_moment(FIRST_64 + 1, 20380119, 2, at_rollover + 9, "lunch");
    expect_moment(NEXT_DAY, 20380120, 3, 12 * 3600, "lunch");
    expect_moment(LEAP_DAY, 20400229, 3, 12 * 3600, "lunch");
    expect_moment(LAST_DAY, 20991231, 4, 12 * 3600, "lunch");
    expect_moment(LAST_DAY + 12 * 3600 - 1, 20991231, 4, 86399, "");
    expect_moment(LAST_DAY + 12 * 3600, 21000101, 5, 0, "");
    expect_moment(U32_END, 21060207, 7, 14 * 3600 + 28 * 60 + 16, "");

    /* age brackets turn on the birthday, past 2038 as before */
    expect_subsidy("100 on 2038-01-19", 19380119, FIRST_64, "age_100_plus", 1500);
    expect_subsidy("99 on 2038-01-19", 19380120, FIRST_64, "age_70_99", 500);
    expect_subsidy("100 on 2040-02-29", 19400229, LEAP_DAY, "age_100_plus", 1500);
    expect_subsidy("99 on 2040-02-29", 19400301, LEAP_DAY, "age_70_99", 500);
    expect_subsidy("100 on 2099-12-31", 19991231, LAST_DAY, "age_100_plus", 1500);
    expect_subsidy("99 on 2099-12-31", 20000101, LAST_DAY, "age_70_99", 500);
}

/* ---- ledger, batches, updates ---------------------------------------------- */

struct fx {
    char dir[512], path[700];
    yn_ledger *l;
    int64_t tap_id;
};

static yn_ledger_opts opts_for(struct fx *f)
{
    yn_ledger_opts o = {.path = f->path, .terminal_id = "T1", .boot_id = "boot-2038"};
    return o;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    yn_test_tmpdir(f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/ledger.db", f->dir);
    yn_ledger_opts o = opts_for(f);
    if (yn_ledger_open(&o, &f->l) != YN_OK) {
        free(f);
        return -1;
    }
    f->tap_id = 1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    yn_ledger_close(f->l);
    free(f);
    return 0;
}

/* Uptime past 2^31 ms (24.8 days), as a board that has run a month. */
static yn_ledger_when when_at(int64_t utc_s)
{
    yn_ledger_when w = {
        .utc_s = utc_s, .mono_ms = 3000000000LL + (utc_s - LAST_32) * 1000, .clock_trusted = true};
    return w;
}

static yn_ledger_result debit_at(struct fx *f, const yn_card_facts *c, int64_t utc_s,
                                 int64_t subsidy_fen)
{
    yn_meal meal = {.price_fen = 1500};
    yn_ledger_tap tap = {.tap_id = f->tap_id++,
                         .card = c,
                         .meal = &meal,
                         .canteen = &canteen,
                         .when = when_at(utc_s)};
    yn_ledger_result r;
    int rc = yn_ledger_debit(f->l, policy, &tap, &r);
    if (rc != YN_OK || r.decision.subsidy_fen != subsidy_fen)
        fail_msg("debit of %s at %lld: %s, subsidy %lld; expected %lld", c->card_no,
                 (long long)utc_s, yn_strerror(rc), (long long)r.decision.subsidy_fen,
                 (long long)subsidy_fen);
    return r;
}

static void expect_record(struct fx *f, int64_t seq, int64_t utc_s, int32_t ymd, int kind)
{
    yn_ledger_record r;
    assert_int_equal(yn_ledger_record_get(f->l, seq, &r), YN_OK);
    if (r.utc_s != utc_s || r.local_ymd != ymd || r.kind != kind)
        fail_msg("record %lld: utc %lld day %d kind %d; expected %lld %d %d", (long long)seq,
                 (long long)r.utc_s, r.local_ymd, r.kind, (long long)utc_s, ymd, kind);
}

static void test_ledger_after_2038(void **state)
{
    struct fx *f = *state;
    yn_card_facts a = card_born("4403040000003801", 19380119); /* 100 that day */
    yn_card_facts b = card_born("4403040000003802", 19380120); /* 99 */
    /* the same lunch on both sides of the rollover second: one subsidy */
    debit_at(f, &a, LAST_32, 1500);
    yn_ledger_result second = debit_at(f, &a, FIRST_64, 0);
    assert_int_equal(second.decision.reason, YN_REASON_PERIOD_USED);
    yn_ledger_result rb = debit_at(f, &b, FIRST_64 + 1, 500);
    yn_ledger_when w = when_at(FIRST_64 + 60);
    yn_ledger_result rev;
    assert_int_equal(yn_ledger_reverse(f->l, policy, rb.seq, "op1", &w, &rev), YN_OK);
    debit_at(f, &a, NEXT_DAY, 1500); /* a new day, a new lunch */
    yn_card_facts leap = card_born("4403040000004001", 19400229);
    yn_card_facts last = card_born("4403040000009901", 19991231);
    debit_at(f, &leap, LEAP_DAY, 1500);
    debit_at(f, &last, LAST_DAY, 1500);

    expect_record(f, 1, LAST_32, 20380119, YN_LEDGER_MEAL);
    expect_record(f, 2, FIRST_64, 20380119, YN_LEDGER_MEAL);
    expect_record(f, 4, FIRST_64 + 60, 20380119, YN_LEDGER_REVERSAL);
    expect_record(f, 5, NEXT_DAY, 20380120, YN_LEDGER_MEAL);
    expect_record(f, 6, LEAP_DAY, 20400229, YN_LEDGER_MEAL);
    expect_record(f, 7, LAST_DAY, 20991231, YN_LEDGER_MEAL);
    yn_ledger_verify_report vr;
    assert_int_equal(yn_ledger_verify(f->l, &vr), YN_OK);
    assert_int_equal(vr.records, 7);

    /* 日结 of the rollover day: three meals, one reversed */
    yn_ledger_settlement st;
    assert_int_equal(yn_ledger_settle(f->l, 20380119, &st), YN_OK);
    assert_int_equal(st.first_seq, 1);
    assert_int_equal(st.last_seq, 4);
    assert_int_equal(st.meals.count, 3);
    assert_int_equal(st.reversals.count, -1);
    assert_int_equal(st.total.subsidy_fen, 1500);
    assert_int_equal(st.total.price_fen, 3000);
    char csv[800], line[128];
    snprintf(csv, sizeof csv, "%s/settle-20380119.csv", f->dir);
    assert_int_equal(yn_ledger_settle_csv_path(f->l, 20380119, csv), YN_OK);
    FILE *in = fopen(csv, "r");
    assert_non_null(in);
    assert_non_null(fgets(line, sizeof line, in)); /* header */
    assert_non_null(fgets(line, sizeof line, in));
    fclose(in);
    assert_true(strncmp(line, "20380119,", 9) == 0);

    /* the kiosk's month */
    yn_ledger_account acc;
    assert_int_equal(yn_ledger_balance(f->l, a.card_no, NEXT_DAY, 5, &acc), YN_OK);
    assert_int_equal(acc.month_ym, 203801);
    assert_int_equal(acc.meals_month, 2);
    assert_int_equal(acc.subsidy_month_fen, 3000);
    assert_int_equal(acc.n_last, 3);
    assert_int_equal(acc.last[0].local_ymd, 20380120);
}

/* Every record of the ledger goes through the upload frame and back unchanged. */
static void expect_batch_round_trip(struct fx *f, int64_t now_utc_s)
{
    static const uint8_t key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    yn_testkeys keys;
    yn_testkeys_open(&keys, f->dir, NULL, key, sizeof key);
    yn_ledger_batch b;
    assert_int_equal(yn_ledger_batch_next(f->l, 100, now_utc_s, &b), YN_OK);
    uint8_t *frame;
    size_t len;
    assert_int_equal(yn_sync_batch_frame(f->l, &b, &keys.ks, &frame, &len), YN_OK);
    yn_testkeys_close(&keys);
    yn_batch_header h;
    yn_ledger_record *recs = NULL;
    const char *why = NULL;
    assert_int_equal(yn_batch_decode(frame, len, key, sizeof key, &h, &recs, &why), YN_OK);
    assert_int_equal(h.first_seq, b.first_seq);
    assert_int_equal(h.last_seq, b.last_seq);
    for (int64_t seq = b.first_seq; seq <= b.last_seq; seq++) {
        yn_ledger_record want;
        const yn_ledger_record *got = &recs[seq - b.first_seq];
        assert_int_equal(yn_ledger_record_get(f->l, seq, &want), YN_OK);
        assert_int_equal(got->utc_s, want.utc_s);
        assert_int_equal(got->mono_ms, want.mono_ms);
        assert_int_equal(got->local_ymd, want.local_ymd);
        assert_memory_equal(got->hash, want.hash, YN_LEDGER_HASH_LEN);
    }
    free(recs);
    free(frame);
    assert_int_equal(yn_ledger_batch_ack(f->l, b.id, now_utc_s), YN_OK);
    int64_t unsent, oldest_s;
    assert_int_equal(yn_ledger_unsent(f->l, now_utc_s, &unsent, &oldest_s), YN_OK);
    assert_int_equal(unsent, 0);
}

static void test_sync_after_2038(void **state)
{
    struct fx *f = *state;
    yn_card_facts a = card_born("4403040000003803", 19380119);
    debit_at(f, &a, FIRST_64, 1500);
    debit_at(f, &a, LEAP_DAY, 1500);
    yn_ledger_when w = when_at(LEAP_DAY + 30);
    yn_ledger_result r;
    assert_int_equal(yn_ledger_topup(f->l, f->tap_id++, a.card_no, 2000, "op1", &w, &r), YN_OK);
    int64_t unsent, oldest_s;
    assert_int_equal(yn_ledger_unsent(f->l, LAST_DAY, &unsent, &oldest_s), YN_OK);
    assert_int_equal(unsent, 3);
    assert_int_equal(oldest_s, LAST_DAY - FIRST_64);
    expect_batch_round_trip(f, LAST_DAY);

    /* an update signed in 2099 with an allocation, applied on 2040-02-29 */
    uint8_t priv[32], pub[32];
    for (int i = 0; i < 32; i++)
        priv[i] = (uint8_t)(i * 3 + 1);
    assert_int_equal(yn_card_public_key(priv, pub), YN_OK);
    char doc[512], *body, err[256];
    size_t len;
    int64_t server_ms = LAST_DAY * 1000 + 999;
    snprintf(doc, sizeof doc,
             "{\"v\":1,\"terminal\":\"T1\",\"version\":1,\"server_utc_ms\":%lld,"
             "\"allocations\":{\"seq\":1,\"items\":[{\"id\":\"A-2040\",\"card_no\":\"%s\","
             "\"source\":\"district\",\"amount_fen\":3000}]}}",
             (long long)server_ms, a.card_no);
    assert_int_equal(yn_update_sign(doc, strlen(doc), priv, &body, &len), YN_OK);
    yn_update u;
    assert_int_equal(yn_update_parse(body, len, pub, "T1", 0, &u, err, sizeof err), YN_OK);
    free(body);
    assert_int_equal(u.server_utc_ms, server_ms);
    assert_int_equal(yn_sync_apply(f->l, &u, LEAP_DAY), YN_OK);
    yn_update_free(&u);
    char v[32];
    assert_int_equal(yn_ledger_meta_get(f->l, "last_sync_utc_s", v, sizeof v), YN_OK);
    assert_int_equal(strtoll(v, NULL, 10), LEAP_DAY);
    expect_record(f, 4, LEAP_DAY, 20400229, YN_LEDGER_ALLOCATION);
    yn_ledger_account acc;
    assert_int_equal(yn_ledger_balance(f->l, a.card_no, LEAP_DAY, 1, &acc), YN_OK);
    assert_int_equal(acc.wallet_fen, 5000);
    expect_batch_round_trip(f, LAST_DAY);

    /* the server's time after 2038 sets the terminal's clock */
    yn_clock c;
    yn_clock_init(&c, &yn_clock_sim_ops);
    yn_clock_sim_set(&c, LEAP_DAY * 1000);
    assert_int_equal(yn_clock_correct(&c, server_ms, -1), YN_OK);
    assert_true(c.trusted);
    assert_int_equal(yn_clock_utc_ms(&c), server_ms);
    assert_int_equal(yn_clock_utc_s(&c), LAST_DAY);
}

/* ---- the card's stamp ------------------------------------------------------ */

static void test_stamp_after_2038(void **state)
{
    (void)state;
    static const int32_t days[] = {20380119, 20380120, 20400229, 20991231};
    for (size_t i = 0; i < sizeof days / sizeof days[0]; i++) {
        yn_card_stamp s, back;
        uint8_t buf[YN_CARD_STAMP_LEN];
        assert_int_equal(yn_card_stamp_make(days[i], "lunch", 7, 70000 + i, &s), YN_OK);
        assert_int_equal(yn_card_stamp_encode(&s, buf, NULL), YN_OK);
        assert_int_equal(yn_card_stamp_decode(buf, sizeof buf, &back, NULL), YN_OK);
        assert_int_equal(back.date_ymd, days[i]);
        assert_int_equal(back.seq, 70000 + i);
        assert_int_equal(back.terminal_code, 7);
        assert_true(yn_card_stamp_blocks(&back, days[i], "lunch"));
        assert_false(yn_card_stamp_blocks(&back, days[i] + 1, "lunch"));
    }
    /* the card format's dates end with 2099 (CARD.md) */
    yn_card_stamp s;
    assert_int_equal(yn_card_stamp_make(21000101, "lunch", 7, 1, &s), YN_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_libc_calendar_is_64_bit),
        cmocka_unit_test(test_policy_after_2038),
        cmocka_unit_test_setup_teardown(test_ledger_after_2038, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_after_2038, setup, teardown),
        cmocka_unit_test(test_stamp_after_2038),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
