/* test_policy.c — the policy engine against the three shipped regimes
 * (the JSON files in firmware/policies, found through YN_SRCDIR), a test policy that
 * exercises every field, and a broad set of malformed documents. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"
#include "testutil.h"

#define NOON "12:00:00"

/* ---- helpers ------------------------------------------------------------ */

/* UTC seconds of a local (Asia/Shanghai) date and "HH:MM:SS"; libc is the oracle. */
static int64_t at(int32_t ymd, const char *hms)
{
    struct tm tm = {0};
    tm.tm_year = ymd / 10000 - 1900;
    tm.tm_mon = ymd / 100 % 100 - 1;
    tm.tm_mday = ymd % 100;
    tm.tm_hour = atoi(hms);
    tm.tm_min = atoi(hms + 3);
    tm.tm_sec = atoi(hms + 6);
    return (int64_t)timegm(&tm) - 8 * 3600;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    char *buf = calloc(1, 1 << 20);
    assert_non_null(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void shipped_path(const char *name, char *buf, size_t size)
{
    const char *src = getenv("YN_SRCDIR");
    if (!src)
        fail_msg("YN_SRCDIR is not set (run through tests/run-unit)");
    snprintf(buf, size, "%s/firmware/policies/%s", src, name);
}

static yn_policy *load_shipped(const char *name)
{
    char path[1024], err[256] = "untouched";
    yn_policy *p = NULL;
    shipped_path(name, path, sizeof path);
    int rc = yn_policy_load_file(path, &p, err, sizeof err);
    if (rc != YN_OK)
        fail_msg("%s: %s", path, err);
    assert_non_null(p);
    assert_string_equal(err, "");
    return p;
}

static char *shipped_text(const char *name)
{
    char path[1024];
    shipped_path(name, path, sizeof path);
    return read_text(path);
}

/* A copy of text with the first occurrence of from replaced by to; from must occur. */
static char *replace(const char *text, const char *from, const char *to)
{
    const char *hit = strstr(text, from);
    if (!hit)
        fail_msg("substitution source not found: %s", from);
    size_t pre = (size_t)(hit - text), n = strlen(text) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    assert_non_null(out);
    memcpy(out, text, pre);
    memcpy(out + pre, to, strlen(to));
    strcpy(out + pre + strlen(to), hit + strlen(from));
    return out;
}

static yn_policy *load_text(const char *text)
{
    char err[256] = "";
    yn_policy *p = NULL;
    int rc = yn_policy_load(text, strlen(text), &p, err, sizeof err);
    if (rc != YN_OK)
        fail_msg("load failed: %s", err);
    assert_non_null(p);
    return p;
}

static yn_policy *load_edited(const char *text, const char *from, const char *to)
{
    char *edited = replace(text, from, to);
    yn_policy *p = load_text(edited);
    free(edited);
    return p;
}

static yn_card_facts card_of(uint32_t flags, int32_t birth_ymd, uint32_t street)
{
    yn_card_facts c;
    memset(&c, 0, sizeof c);
    strcpy(c.card_no, "4403040000001234");
    c.birth_ymd = birth_ymd;
    c.flags = flags;
    c.street = street;
    c.district = street / 1000;
    c.expiry_ymd = 20301231;
    return c;
}

static yn_canteen canteen_of(uint32_t street)
{
    yn_canteen k = {street / 1000, street};
    return k;
}

static yn_meal priced(int64_t price_fen)
{
    yn_meal m = {price_fen, 0, 0};
    return m;
}

static const yn_usage no_usage = {0, 0, 0, 0};

static void expect_i64(const char *row, const char *field, int64_t got, int64_t want)
{
    if (got != want)
        fail_msg("%s: %s = %lld, expected %lld", row, field, (long long)got, (long long)want);
}

/* Invariants every decision must satisfy, whatever the case. */
static void check_invariants(const char *row, const yn_decision *d)
{
    int64_t sum = 0;
    for (int i = 0; i < d->n_layers; i++) {
        if (d->layers[i].fen < 0)
            fail_msg("%s: negative layer share", row);
        sum += d->layers[i].fen;
    }
    expect_i64(row, "sum of layers", sum, d->subsidy_fen);
    if (d->allowed) {
        expect_i64(row, "subsidy + wallet + cash", d->subsidy_fen + d->wallet_fen + d->cash_fen,
                   d->price_fen);
        if (d->reason != YN_REASON_NONE)
            expect_i64(row, "subsidy without a reason", d->subsidy_fen, 0);
    } else {
        if (d->reason == YN_REASON_NONE)
            fail_msg("%s: refused without a reason", row);
        expect_i64(row, "refused n_layers", d->n_layers, 0);
        expect_i64(row, "refused subsidy", d->subsidy_fen, 0);
        expect_i64(row, "refused wallet", d->wallet_fen, 0);
        expect_i64(row, "refused cash", d->cash_fen, 0);
    }
}

static yn_decision decide_ok(const char *row, const yn_policy *p, const yn_card_facts *card,
                             const yn_meal *meal, const yn_canteen *canteen, int64_t utc_s,
                             const yn_usage *usage, int64_t wallet_fen)
{
    yn_decision d;
    memset(&d, 0x5a, sizeof d);
    int rc = yn_policy_decide(p, card, meal, canteen, utc_s, usage, wallet_fen, &d);
    if (rc != YN_OK)
        fail_msg("%s: decide returned %d", row, rc);
    check_invariants(row, &d);
    return d;
}

static void expect_reason(const char *row, const yn_decision *d, bool allowed,
                          enum yn_reason reason)
{
    if (d->allowed != allowed)
        fail_msg("%s: allowed = %d, expected %d", row, d->allowed, allowed);
    if (d->reason != reason)
        fail_msg("%s: reason = %s, expected %s", row, yn_reason_code(d->reason),
                 yn_reason_code(reason));
}

static void expect_layers(const char *row, const yn_decision *d, int n, const int64_t *fen,
                          const char *const *sources)
{
    expect_i64(row, "n_layers", d->n_layers, n);
    for (int i = 0; i < n; i++) {
        char field[32];
        snprintf(field, sizeof field, "layers[%d].fen", i);
        expect_i64(row, field, d->layers[i].fen, fen[i]);
        if (sources && strcmp(d->layers[i].source, sources[i]) != 0)
            fail_msg("%s: layers[%d].source = \"%s\", expected \"%s\"", row, i, d->layers[i].source,
                     sources[i]);
    }
}

/* The meal date used by most cases: Wednesday 12 March 2025, an ordinary working day. */
#define DAY 20250312

/* Street codes: district * 1000 + NNN. */
#define FUTIAN_1    440304001u /* 福田 园岭街道 */
#define FUTIAN_2    440304002u /* 福田 南园街道 */
#define LUOHU_1     440303001u /* 罗湖 */
#define ZENGCHENG_1 440118001u /* 增城 荔城街道 */
#define ZENGCHENG_2 440118002u /* 增城 增江街道 */
#define PANYU_1     440113001u /* 番禺 */
#define XIANGZHOU_1 440402001u /* 香洲 */
#define DOUMEN_1    440403001u /* 斗门 */

#define KEY_FLAGS                                                                                  \
    (YN_FLAG_TEKUN | YN_FLAG_DIBAO | YN_FLAG_DIBAO_EDGE | YN_FLAG_SANSHU_WULAO | YN_FLAG_SHIDU)

/* ---- the three shipped regimes ------------------------------------------ */

struct regime_case {
    const char *row;
    uint32_t flags;
    int32_t birth_ymd; /* ages on DAY: 19250101 -> 100, 19400101 -> 85, 19500101 -> 75 */
    uint32_t home_street;
    uint32_t canteen_street;
    int64_t price_fen;
    bool allowed;
    enum yn_reason reason;
    const char *category;
    int n_layers;
    int64_t fen[YN_POLICY_MAX_LAYERS];
    int64_t cash_fen; /* wallet empty: the diner pays the rest in cash */
};

static void run_regime(const char *file, const char *const *sources, const struct regime_case *c,
                       size_t n)
{
    yn_policy *p = load_shipped(file);
    for (size_t i = 0; i < n; i++) {
        yn_card_facts card = card_of(c[i].flags, c[i].birth_ymd, c[i].home_street);
        yn_meal meal = priced(c[i].price_fen);
        yn_canteen k = canteen_of(c[i].canteen_street);
        yn_decision d = decide_ok(c[i].row, p, &card, &meal, &k, at(DAY, NOON), &no_usage, 0);
        expect_reason(c[i].row, &d, c[i].allowed, c[i].reason);
        if (strcmp(d.category, c[i].category) != 0)
            fail_msg("%s: category \"%s\", expected \"%s\"", c[i].row, d.category, c[i].category);
        assert_string_equal(d.period, "lunch");
        expect_i64(c[i].row, "price", d.price_fen, c[i].price_fen);
        expect_layers(c[i].row, &d, c[i].n_layers, c[i].fen, sources);
        expect_i64(c[i].row, "wallet", d.wallet_fen, 0);
        expect_i64(c[i].row, "cash", d.cash_fen, c[i].cash_fen);
    }
    yn_policy_free(p);
}

static void test_shenzhen_groups(void **state)
{
    (void)state;
    static const char *const src[] = {"city"};
    /* clang-format off */
    static const struct regime_case cases[] = {
        {"dibao 65", YN_FLAG_DIBAO, 19600101, FUTIAN_1, FUTIAN_1, 1800, true, YN_REASON_NONE,
         "key_group", 1, {1500}, 300},
        {"tekun 65", YN_FLAG_TEKUN, 19600101, FUTIAN_1, FUTIAN_1, 2000, true, YN_REASON_NONE,
         "key_group", 1, {1500}, 500},
        {"dibao_edge 65", YN_FLAG_DIBAO_EDGE, 19600101, FUTIAN_1, FUTIAN_1, 2000, true,
         YN_REASON_NONE, "key_group", 1, {1500}, 500},
        {"sanshu_wulao 65", YN_FLAG_SANSHU_WULAO, 19600101, FUTIAN_1, FUTIAN_1, 2000, true,
         YN_REASON_NONE, "key_group", 1, {1500}, 500},
        {"shidu 65", YN_FLAG_SHIDU, 19600101, FUTIAN_1, FUTIAN_1, 2000, true, YN_REASON_NONE,
         "key_group", 1, {1500}, 500},
        {"key group capped at price", YN_FLAG_DIBAO, 19600101, FUTIAN_1, FUTIAN_1, 1200, true,
         YN_REASON_NONE, "key_group", 1, {1200}, 0},
        {"key group at exactly 15 yuan", YN_FLAG_SHIDU, 19600101, FUTIAN_1, FUTIAN_1, 1500, true,
         YN_REASON_NONE, "key_group", 1, {1500}, 0},
        {"age 100, no flags", 0, 19250101, FUTIAN_1, FUTIAN_1, 2000, true, YN_REASON_NONE,
         "age_100_plus", 1, {1500}, 500},
        {"age 100 capped at price", 0, 19250101, FUTIAN_1, FUTIAN_1, 900, true, YN_REASON_NONE,
         "age_100_plus", 1, {900}, 0},
        {"age 75", 0, 19500101, FUTIAN_1, FUTIAN_1, 2000, true, YN_REASON_NONE, "age_70_99", 1,
         {500}, 1500},
        {"age 75 capped at price", 0, 19500101, FUTIAN_1, FUTIAN_1, 300, true, YN_REASON_NONE,
         "age_70_99", 1, {300}, 0},
        {"age 99", 0, 19251231, FUTIAN_1, FUTIAN_1, 1200, true, YN_REASON_NONE, "age_70_99", 1,
         {500}, 700},
        {"dibao 75: key group wins", YN_FLAG_DIBAO, 19500101, FUTIAN_1, FUTIAN_1, 2000, true,
         YN_REASON_NONE, "key_group", 1, {1500}, 500},
        {"all key flags", KEY_FLAGS, 19600101, FUTIAN_1, FUTIAN_1, 2000, true, YN_REASON_NONE,
         "key_group", 1, {1500}, 500},
        {"other street, same district", YN_FLAG_DIBAO, 19600101, FUTIAN_2, FUTIAN_1, 2000, true,
         YN_REASON_NONE, "key_group", 1, {1500}, 500},
        {"age 65 without flags pays full price", 0, 19600101, FUTIAN_1, FUTIAN_1, 2000, true,
         YN_REASON_NOT_ELIGIBLE, "", 0, {0}, 2000},
        {"severe disability is not a key group", YN_FLAG_DISABLED_SEVERE, 19600101, FUTIAN_1,
         FUTIAN_1, 2000, true, YN_REASON_NOT_ELIGIBLE, "", 0, {0}, 2000},
        {"dibao 59", YN_FLAG_DIBAO, 19660101, FUTIAN_1, FUTIAN_1, 2000, true,
         YN_REASON_NOT_ELIGIBLE, "", 0, {0}, 2000},
        {"dibao from Luohu eating in Futian", YN_FLAG_DIBAO, 19600101, LUOHU_1, FUTIAN_1, 2000,
         true, YN_REASON_OUTSIDE_AREA, "key_group", 0, {0}, 2000},
        {"age 75 from Luohu eating in Futian", 0, 19500101, LUOHU_1, FUTIAN_1, 2000, true,
         YN_REASON_OUTSIDE_AREA, "age_70_99", 0, {0}, 2000},
        {"age 100 from Futian eating in Luohu", 0, 19250101, FUTIAN_1, LUOHU_1, 2000, true,
         YN_REASON_OUTSIDE_AREA, "age_100_plus", 0, {0}, 2000},
    };
    /* clang-format on */
    run_regime("shenzhen-2025.json", src, cases, sizeof cases / sizeof cases[0]);
}

/* clang-format off */
static const struct regime_case zengcheng_cases[] = {
    /* own street: city 3 + district 3 + street the rest */
    {"low income 65", YN_FLAG_DIBAO, 19600101, ZENGCHENG_1, ZENGCHENG_1, 1200, true, YN_REASON_NONE,
     "low_income_60_plus", 3, {300, 300, 500}, 100},
    {"tekun 65", YN_FLAG_TEKUN, 19600101, ZENGCHENG_1, ZENGCHENG_1, 1200, true, YN_REASON_NONE,
     "low_income_60_plus", 3, {300, 300, 500}, 100},
    {"dibao_edge 65", YN_FLAG_DIBAO_EDGE, 19600101, ZENGCHENG_1, ZENGCHENG_1, 1200, true,
     YN_REASON_NONE, "low_income_60_plus", 3, {300, 300, 500}, 100},
    {"low income 85", YN_FLAG_DIBAO, 19400101, ZENGCHENG_1, ZENGCHENG_1, 1200, true, YN_REASON_NONE,
     "low_income_60_plus", 3, {300, 300, 500}, 100},
    {"age 85", 0, 19400101, ZENGCHENG_1, ZENGCHENG_1, 1200, true, YN_REASON_NONE, "age_80_plus", 3,
     {300, 300, 300}, 300},
    {"age 65", 0, 19600101, ZENGCHENG_1, ZENGCHENG_1, 1200, true, YN_REASON_NONE, "age_60_79", 3,
     {300, 300, 100}, 500},
    {"sanshu_wulao is not low income", YN_FLAG_SANSHU_WULAO, 19600101, ZENGCHENG_1, ZENGCHENG_1,
     1200, true, YN_REASON_NONE, "age_60_79", 3, {300, 300, 100}, 500},
    /* other street in the district: the street share is lost */
    {"low income, other street", YN_FLAG_DIBAO, 19600101, ZENGCHENG_2, ZENGCHENG_1, 1200, true,
     YN_REASON_NONE, "low_income_60_plus", 3, {300, 300, 0}, 600},
    {"age 85, other street", 0, 19400101, ZENGCHENG_2, ZENGCHENG_1, 1200, true, YN_REASON_NONE,
     "age_80_plus", 3, {300, 300, 0}, 600},
    {"age 65, other street", 0, 19600101, ZENGCHENG_2, ZENGCHENG_1, 1200, true, YN_REASON_NONE,
     "age_60_79", 3, {300, 300, 0}, 600},
    /* other district: the district share is lost too */
    {"low income, other district", YN_FLAG_DIBAO, 19600101, PANYU_1, ZENGCHENG_1, 1200, true,
     YN_REASON_NONE, "low_income_60_plus", 3, {300, 0, 0}, 900},
    {"age 85, other district", 0, 19400101, PANYU_1, ZENGCHENG_1, 1200, true, YN_REASON_NONE,
     "age_80_plus", 3, {300, 0, 0}, 900},
    {"age 65, other district", 0, 19600101, PANYU_1, ZENGCHENG_1, 1200, true, YN_REASON_NONE,
     "age_60_79", 3, {300, 0, 0}, 900},
    /* cheaper meals: capped at the price, layer by layer */
    {"low income, 10 yuan meal", YN_FLAG_DIBAO, 19600101, ZENGCHENG_1, ZENGCHENG_1, 1000, true,
     YN_REASON_NONE, "low_income_60_plus", 3, {300, 300, 400}, 0},
    {"age 65, 5 yuan meal", 0, 19600101, ZENGCHENG_1, ZENGCHENG_1, 500, true, YN_REASON_NONE,
     "age_60_79", 3, {300, 200, 0}, 0},
    {"age 59", YN_FLAG_DIBAO, 19660101, ZENGCHENG_1, ZENGCHENG_1, 1200, true,
     YN_REASON_NOT_ELIGIBLE, "", 0, {0}, 1200},
};
/* clang-format on */

static void test_zengcheng_groups(void **state)
{
    (void)state;
    static const char *const src[] = {"city", "district", "street"};
    run_regime("guangzhou-zengcheng.json", src, zengcheng_cases,
               sizeof zengcheng_cases / sizeof zengcheng_cases[0]);
}

/* The government totals of the Zengcheng notice: 11 / 9 / 7 yuan on a 12 yuan meal. */
static void test_zengcheng_totals(void **state)
{
    (void)state;
    static const struct {
        uint32_t flags;
        int32_t birth_ymd;
        int64_t subsidy_fen, diner_fen;
    } rows[] = {
        {YN_FLAG_DIBAO, 19600101, 1100, 100},
        {0, 19400101, 900, 300},
        {0, 19600101, 700, 500},
    };
    yn_policy *p = load_shipped("guangzhou-zengcheng.json");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        yn_card_facts card = card_of(rows[i].flags, rows[i].birth_ymd, ZENGCHENG_1);
        yn_meal meal = priced(1200);
        yn_canteen k = canteen_of(ZENGCHENG_1);
        yn_decision d =
            decide_ok("zengcheng total", p, &card, &meal, &k, at(DAY, NOON), &no_usage, 5000);
        expect_i64("zengcheng total", "subsidy", d.subsidy_fen, rows[i].subsidy_fen);
        expect_i64("zengcheng total", "wallet", d.wallet_fen, rows[i].diner_fen);
        expect_i64("zengcheng total", "cash", d.cash_fen, 0);
    }
    yn_policy_free(p);
}

static void test_zhuhai_groups(void **state)
{
    (void)state;
    static const char *const src[] = {"city", "district"};
    /* clang-format off */
    static const struct regime_case cases[] = {
        {"age 65", 0, 19600101, XIANGZHOU_1, XIANGZHOU_1, 1200, true, YN_REASON_NONE, "age_60_plus",
         2, {300, 300}, 600},
        {"age 100 dibao", YN_FLAG_DIBAO, 19250101, XIANGZHOU_1, XIANGZHOU_1, 1500, true,
         YN_REASON_NONE, "age_60_plus", 2, {300, 300}, 900},
        {"exactly 10 yuan", 0, 19600101, XIANGZHOU_1, XIANGZHOU_1, 1000, true, YN_REASON_NONE,
         "age_60_plus", 2, {300, 300}, 400},
        {"9.99 yuan: below the minimum", 0, 19600101, XIANGZHOU_1, XIANGZHOU_1, 999, true,
         YN_REASON_BELOW_MIN_PRICE, "age_60_plus", 0, {0}, 999},
        {"from Doumen: no locality rule", 0, 19600101, DOUMEN_1, XIANGZHOU_1, 1200, true,
         YN_REASON_NONE, "age_60_plus", 2, {300, 300}, 600},
        {"age 59", 0, 19660101, XIANGZHOU_1, XIANGZHOU_1, 1200, true, YN_REASON_NOT_ELIGIBLE, "", 0,
         {0}, 1200},
    };
    /* clang-format on */
    run_regime("zhuhai.json", src, cases, sizeof cases / sizeof cases[0]);
}

/* Zhuhai: at most once per day, across lunch and dinner. */
static void test_zhuhai_once_per_day(void **state)
{
    (void)state;
    yn_policy *p = load_shipped("zhuhai.json");
    yn_card_facts card = card_of(0, 19600101, XIANGZHOU_1);
    yn_meal meal = priced(1200);
    yn_canteen k = canteen_of(XIANGZHOU_1);
    yn_usage first = {0, 0, 5, 3000}, after_lunch = {0, 1, 6, 3600};

    yn_decision d = decide_ok("dinner first", p, &card, &meal, &k, at(DAY, "18:00:00"), &first, 0);
    expect_reason("dinner first", &d, true, YN_REASON_NONE);
    assert_string_equal(d.period, "dinner");
    expect_i64("dinner first", "subsidy", d.subsidy_fen, 600);

    d = decide_ok("dinner after lunch", p, &card, &meal, &k, at(DAY, "18:00:00"), &after_lunch, 0);
    expect_reason("dinner after lunch", &d, true, YN_REASON_DAY_USED);
    assert_string_equal(d.period, "dinner");
    expect_i64("dinner after lunch", "cash", d.cash_fen, 1200);
    expect_i64("dinner after lunch", "subsidy", d.subsidy_fen, 0);
    yn_policy_free(p);
}

static void test_shipped_identity(void **state)
{
    (void)state;
    static const struct {
        const char *file, *id;
        uint32_t issuer;
    } rows[] = {
        {"shenzhen-2025.json", "shenzhen-2025", 440304},
        {"guangzhou-zengcheng.json", "guangzhou-zengcheng", 440118},
        {"zhuhai.json", "zhuhai", 440402},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        yn_policy *p = load_shipped(rows[i].file);
        assert_string_equal(yn_policy_id(p), rows[i].id);
        assert_int_equal(yn_policy_version(p), 1);
        assert_int_equal(yn_policy_issuer(p), rows[i].issuer);
        assert_int_equal(yn_policy_reverse_window_s(p), 600);
        yn_policy_free(p);
    }
}

/* ---- the test policy: every field, small numbers ------------------------- */

/* Line numbers matter: the malformed cases below name them. */
static const char base_doc[] =
    "{\n"                                        /* 1 */
    "  \"format\": 1,\n"                         /* 2 */
    "  \"id\": \"test-base\",\n"                 /* 3 */
    "  \"version\": 7,\n"                        /* 4 */
    "  \"issuer\": 440304,\n"                    /* 5 */
    "  \"description\": \"unit test policy\",\n" /* 6 */
    "  \"sell_without_subsidy\": false,\n"       /* 7 */
    "  \"reverse_window_s\": 300,\n"             /* 8 */
    "  \"copay\": [\"wallet\", \"cash\"],\n"     /* 9 */
    "  \"min_price_fen\": 100,\n"                /* 10 */
    "  \"limits\": {\"per_period\": 1, \"per_day\": 2, \"per_month\": 30, "
    "\"month_cap_fen\": 20000},\n"                                                       /* 11 */
    "  \"categories\": [\n"                                                              /* 12 */
    "    {\"name\": \"key\", \"min_age\": 60, \"flags_any\": [\"dibao\", \"tekun\"]},\n" /* 13 */
    "    {\"name\": \"senior\", \"min_age\": 70, \"max_age\": 99}\n"                     /* 14 */
    "  ],\n"                                                                             /* 15 */
    "  \"periods\": [\n"                                                                 /* 16 */
    "    {\"name\": \"lunch\", \"start\": \"11:00\", \"end\": \"13:30:00\",\n"           /* 17 */
    "     \"weekdays\": [1, 2, 3, 4, 5],\n"                                              /* 18 */
    "     \"closed_dates\": [\"2025-10-01\"], \"open_dates\": [\"2025-09-28\"]},\n"      /* 19 */
    "    {\"name\": \"dinner\", \"start\": \"17:00\", \"end\": \"24:00\", "
    "\"weekdays\": [1, 2, 3, 4, 5, 6, 7]}\n"                             /* 20 */
    "  ],\n"                                                             /* 21 */
    "  \"subsidies\": [\n"                                               /* 22 */
    "    {\"category\": \"key\", \"period\": \"lunch\", \"layers\": [\n" /* 23 */
    "      {\"source\": \"city\", \"cap_fen\": 300, \"cap_at_price\": true, "
    "\"locality\": \"any\"},\n" /* 24 */
    "      {\"source\": \"district\", \"cap_fen\": 300, \"cap_at_price\": true, "
    "\"locality\": \"same_district\"},\n" /* 25 */
    "      {\"source\": \"street\", \"remainder_of_total_fen\": 1100, "
    "\"cap_at_price\": true, \"locality\": \"same_street\"}]},\n"           /* 26 */
    "    {\"category\": \"senior\", \"period\": \"lunch\", \"layers\": [\n" /* 27 */
    "      {\"source\": \"city\", \"cap_fen\": 500, \"cap_at_price\": false, "
    "\"locality\": \"any\"}]},\n"                                         /* 28 */
    "    {\"category\": \"key\", \"period\": \"dinner\", \"layers\": [\n" /* 29 */
    "      {\"source\": \"city\", \"cap_fen\": 200, \"cap_at_price\": true, "
    "\"locality\": \"any\"}]}\n" /* 30 */
    "  ]\n"                      /* 31 */
    "}\n";                       /* 32 */

static void test_base_policy_loads(void **state)
{
    (void)state;
    yn_policy *p = load_text(base_doc);
    assert_string_equal(yn_policy_id(p), "test-base");
    assert_int_equal(yn_policy_version(p), 7);
    assert_int_equal(yn_policy_issuer(p), 440304);
    assert_int_equal(yn_policy_reverse_window_s(p), 300);
    /* dinner ends at 24:00: open at 23:59:59 */
    yn_moment m;
    yn_policy_locate(p, at(DAY, "23:59:59"), &m);
    assert_string_equal(m.period, "dinner");
    yn_policy_locate(p, at(DAY + 1, "00:00:00"), &m);
    assert_string_equal(m.period, "");
    yn_policy_free(p);
}

/* ---- refusal reasons ---------------------------------------------------- */

struct reason_case {
    const char *row;
    const char *from, *to; /* edit of base_doc, or NULL */
    uint32_t flags;
    int32_t birth_ymd;
    int32_t expiry_ymd;
    uint32_t home_street;
    int64_t price_fen;
    int32_t ymd;
    const char *hms;
    yn_usage usage;
    int64_t wallet_fen;
    enum yn_reason reason;
    bool removes_subsidy; /* false: refused whatever sell_without_subsidy says */
};

/* clang-format off */
static const struct reason_case reason_cases[] = {
    {"expired yesterday", NULL, NULL, YN_FLAG_DIBAO, 19600101, DAY - 1, FUTIAN_1, 1200, DAY, NOON,
     {0, 0, 0, 0}, 0, YN_REASON_EXPIRED, false},
    {"expired, outside any period", NULL, NULL, YN_FLAG_DIBAO, 19600101, DAY - 1, FUTIAN_1, 1200,
     DAY, "15:00:00", {0, 0, 0, 0}, 0, YN_REASON_EXPIRED, false},
    {"not eligible: age 65, no flags", NULL, NULL, 0, 19600101, 20301231, FUTIAN_1, 1200, DAY, NOON,
     {0, 0, 0, 0}, 0, YN_REASON_NOT_ELIGIBLE, true},
    {"not eligible: category without a subsidy in this period", NULL, NULL, 0, 19500101, 20301231,
     FUTIAN_1, 1200, DAY, "18:00:00", {0, 0, 0, 0}, 0, YN_REASON_NOT_ELIGIBLE, true},
    {"no period: 15:00", NULL, NULL, YN_FLAG_DIBAO, 19600101, 20301231, FUTIAN_1, 1200, DAY,
     "15:00:00", {0, 0, 0, 0}, 0, YN_REASON_NO_PERIOD, true},
    {"no period: Saturday lunch", NULL, NULL, YN_FLAG_DIBAO, 19600101, 20301231, FUTIAN_1, 1200,
     20250315, NOON, {0, 0, 0, 0}, 0, YN_REASON_NO_PERIOD, true},
    {"period used", NULL, NULL, YN_FLAG_DIBAO, 19600101, 20301231, FUTIAN_1, 1200, DAY, NOON, {1, 1,
     1, 1100}, 0, YN_REASON_PERIOD_USED, true},
    {"day used", NULL, NULL, YN_FLAG_DIBAO, 19600101, 20301231, FUTIAN_1, 1200, DAY, "18:00:00", {0,
     2, 2, 1300}, 0, YN_REASON_DAY_USED, true},
    {"month used", NULL, NULL, YN_FLAG_DIBAO, 19600101, 20301231, FUTIAN_1, 1200, DAY, NOON, {0, 0,
     30, 0}, 0, YN_REASON_MONTH_USED, true},
    {"month cap reached", NULL, NULL, YN_FLAG_DIBAO, 19600101, 20301231, FUTIAN_1, 1200, DAY, NOON,
     {0, 0, 10, 20000}, 0, YN_REASON_MONTH_CAP, true},
    {"outside area: every layer local", "\"locality\": \"any\"},\n      {\"source\": \"district\"",
     "\"locality\": \"same_district\"},\n      {\"source\": \"district\"", YN_FLAG_DIBAO, 19600101,
     20301231, LUOHU_1, 1200, DAY, NOON, {0, 0, 0, 0}, 0, YN_REASON_OUTSIDE_AREA, true},
    {"below min price", NULL, NULL, YN_FLAG_DIBAO, 19600101, 20301231, FUTIAN_1, 99, DAY, NOON, {0,
     0, 0, 0}, 0, YN_REASON_BELOW_MIN_PRICE, true},
    {"fixed amount larger than the meal", NULL, NULL, 0, 19500101, 20301231, FUTIAN_1, 499, DAY,
     NOON, {0, 0, 0, 0}, 0, YN_REASON_BELOW_MIN_PRICE, true},
    {"insufficient wallet", "[\"wallet\", \"cash\"]", "[\"wallet\"]", YN_FLAG_DIBAO, 19600101,
     20301231, FUTIAN_1, 1200, DAY, NOON, {0, 0, 0, 0}, 99, YN_REASON_INSUFFICIENT, false},
};
/* clang-format on */

/* Each reason under sell_without_subsidy false (refused) and true (full price). */
static void test_refusal_reasons(void **state)
{
    (void)state;
    for (int sell = 0; sell <= 1; sell++) {
        char *doc = sell ? replace(base_doc, "\"sell_without_subsidy\": false",
                                   "\"sell_without_subsidy\": true")
                         : replace(base_doc, "{", "{");
        for (size_t i = 0; i < sizeof reason_cases / sizeof reason_cases[0]; i++) {
            const struct reason_case *c = &reason_cases[i];
            char row[160];
            snprintf(row, sizeof row, "%s (sell_without_subsidy %s)", c->row,
                     sell ? "true" : "false");
            yn_policy *p = c->from ? load_edited(doc, c->from, c->to) : load_text(doc);
            yn_card_facts card = card_of(c->flags, c->birth_ymd, c->home_street);
            card.expiry_ymd = c->expiry_ymd;
            yn_meal meal = priced(c->price_fen);
            yn_canteen k = canteen_of(FUTIAN_1);
            yn_decision d =
                decide_ok(row, p, &card, &meal, &k, at(c->ymd, c->hms), &c->usage, c->wallet_fen);
            bool allowed = sell && c->removes_subsidy;
            expect_reason(row, &d, allowed, c->reason);
            expect_i64(row, "price", d.price_fen, c->price_fen);
            expect_i64(row, "subsidy", d.subsidy_fen, 0);
            expect_i64(row, "n_layers", d.n_layers, 0);
            expect_i64(row, "cash", d.cash_fen, allowed ? c->price_fen : 0);
            yn_policy_free(p);
        }
        free(doc);
    }
}

/* Expiry is the last valid day, Asia/Shanghai. */
static void test_expiry_day(void **state)
{
    (void)state;
    yn_policy *p = load_shipped("shenzhen-2025.json");
    yn_card_facts card = card_of(YN_FLAG_DIBAO, 19600101, FUTIAN_1);
    yn_meal meal = priced(1800);
    yn_canteen k = canteen_of(FUTIAN_1);
    card.expiry_ymd = DAY;
    yn_decision d = decide_ok("last valid day", p, &card, &meal, &k, at(DAY, NOON), &no_usage, 0);
    expect_reason("last valid day", &d, true, YN_REASON_NONE);
    expect_i64("last valid day", "subsidy", d.subsidy_fen, 1500);
    card.expiry_ymd = DAY - 1;
    d = decide_ok("day after", p, &card, &meal, &k, at(DAY, NOON), &no_usage, 0);
    expect_reason("day after", &d, false, YN_REASON_EXPIRED);
    /* 2025-03-12 00:30 local is still 2025-03-11 in UTC: expiry counts local days */
    card.expiry_ymd = DAY - 1;
    d = decide_ok("local midnight", p, &card, &meal, &k, at(DAY, "00:30:00"), &no_usage, 0);
    expect_reason("local midnight", &d, false, YN_REASON_EXPIRED);
    yn_policy_free(p);
}

/* ---- ages across birthdays ---------------------------------------------- */

struct birthday_case {
    const char *row;
    const char *file;
    int32_t birth_ymd;
    int32_t meal_ymd; /* a day the policy's lunch is open */
    enum yn_reason reason;
    const char *category;
    int64_t subsidy_fen; /* price 2000 (Shenzhen) or 1200 (Zengcheng), own street */
};

/* clang-format off */
static const struct birthday_case birthday_cases[] = {
    /* Shenzhen: 70 and 100 */
    {"day before 70th", "shenzhen-2025.json", 19550313, 20250312, YN_REASON_NOT_ELIGIBLE, "", 0},
    {"70th birthday", "shenzhen-2025.json", 19550312, 20250312, YN_REASON_NONE, "age_70_99", 500},
    {"day before 100th", "shenzhen-2025.json", 19250313, 20250312, YN_REASON_NONE, "age_70_99",
     500},
    {"100th birthday", "shenzhen-2025.json", 19250312, 20250312, YN_REASON_NONE, "age_100_plus",
     1500},
    {"end of month birthday, day before", "shenzhen-2025.json", 19550301, 20250228,
     YN_REASON_NOT_ELIGIBLE, "", 0},
    {"end of month birthday", "shenzhen-2025.json", 19550301, 20250303, YN_REASON_NONE, "age_70_99",
     500},
    /* born 29 Feb: in a leap year the birthday is that day */
    {"Feb 29 born, 100th on Feb 28 2024", "shenzhen-2025.json", 19240229, 20240228, YN_REASON_NONE,
     "age_70_99", 500},
    {"Feb 29 born, 100th on Feb 29 2024", "shenzhen-2025.json", 19240229, 20240229, YN_REASON_NONE,
     "age_100_plus", 1500},
    /* in a common year it is 1 March */
    {"Feb 29 born, 70th: Fri Feb 27 2026", "shenzhen-2025.json", 19560229, 20260227,
     YN_REASON_NOT_ELIGIBLE, "", 0},
    {"Feb 29 born, 70th: Mon Mar 2 2026", "shenzhen-2025.json", 19560229, 20260302, YN_REASON_NONE,
     "age_70_99", 500},
    /* Zengcheng: 60 and 80, every day of the week */
    {"day before 60th", "guangzhou-zengcheng.json", 19650313, 20250312, YN_REASON_NOT_ELIGIBLE, "",
     0},
    {"60th birthday", "guangzhou-zengcheng.json", 19650312, 20250312, YN_REASON_NONE, "age_60_79",
     700},
    {"day before 80th", "guangzhou-zengcheng.json", 19450313, 20250312, YN_REASON_NONE, "age_60_79",
     700},
    {"80th birthday", "guangzhou-zengcheng.json", 19450312, 20250312, YN_REASON_NONE, "age_80_plus",
     900},
    /* 80 and 60 are multiples of 4: a 29 February holder turns 80 on a real 29 February */
    {"Feb 29 born, 80th: Feb 28 2024", "guangzhou-zengcheng.json", 19440229, 20240228,
     YN_REASON_NONE, "age_60_79", 700},
    {"Feb 29 born, 80th: Feb 29 2024", "guangzhou-zengcheng.json", 19440229, 20240229,
     YN_REASON_NONE, "age_80_plus", 900},
    {"Feb 29 born, 60th: Feb 28 2024", "guangzhou-zengcheng.json", 19640229, 20240228,
     YN_REASON_NOT_ELIGIBLE, "", 0},
    {"Feb 29 born, 60th: Feb 29 2024", "guangzhou-zengcheng.json", 19640229, 20240229,
     YN_REASON_NONE, "age_60_79", 700},
    /* 70 is not: the 70th birthday of a 29 February holder is 1 March */
    {"Feb 29 born, 70th: Thu Feb 28 2030", "shenzhen-2025.json", 19600229, 20300228,
     YN_REASON_NOT_ELIGIBLE, "", 0},
    {"Feb 29 born, 70th: Fri Mar 1 2030", "shenzhen-2025.json", 19600229, 20300301, YN_REASON_NONE,
     "age_70_99", 500},
};
/* clang-format on */

static void test_birthdays(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof birthday_cases / sizeof birthday_cases[0]; i++) {
        const struct birthday_case *c = &birthday_cases[i];
        bool sz = strcmp(c->file, "shenzhen-2025.json") == 0;
        uint32_t street = sz ? FUTIAN_1 : ZENGCHENG_1;
        int64_t price = sz ? 2000 : 1200;
        yn_policy *p = load_shipped(c->file);
        yn_card_facts card = card_of(0, c->birth_ymd, street);
        yn_meal meal = priced(price);
        yn_canteen k = canteen_of(street);
        yn_decision d = decide_ok(c->row, p, &card, &meal, &k, at(c->meal_ymd, NOON), &no_usage, 0);
        expect_reason(c->row, &d, true, c->reason);
        assert_string_equal(d.period, "lunch");
        if (strcmp(d.category, c->category) != 0)
            fail_msg("%s: category \"%s\", expected \"%s\"", c->row, d.category, c->category);
        expect_i64(c->row, "subsidy", d.subsidy_fen, c->subsidy_fen);
        expect_i64(c->row, "cash", d.cash_fen, price - c->subsidy_fen);
        yn_policy_free(p);
    }
}

/* ---- time: periods, weekdays, holidays, 调休 ----------------------------- */

struct time_case {
    int32_t ymd;
    const char *hms;
    int weekday;
    const char *period; /* "" = closed */
};

static void run_times(const char *file, const struct time_case *c, size_t n)
{
    yn_policy *p = load_shipped(file);
    yn_card_facts card = card_of(YN_FLAG_DIBAO, 19600101, FUTIAN_1);
    yn_meal meal = priced(1800);
    yn_canteen k = canteen_of(FUTIAN_1);
    for (size_t i = 0; i < n; i++) {
        char row[64];
        snprintf(row, sizeof row, "%d %s", c[i].ymd, c[i].hms);
        yn_moment m;
        memset(&m, 0x5a, sizeof m);
        yn_policy_locate(p, at(c[i].ymd, c[i].hms), &m);
        expect_i64(row, "local_ymd", m.local_ymd, c[i].ymd);
        expect_i64(row, "local_ym", m.local_ym, c[i].ymd / 100);
        expect_i64(row, "weekday", m.weekday, c[i].weekday);
        expect_i64(row, "seconds_of_day", m.seconds_of_day,
                   atoi(c[i].hms) * 3600 + atoi(c[i].hms + 3) * 60 + atoi(c[i].hms + 6));
        if (strcmp(m.period, c[i].period) != 0)
            fail_msg("%s: period \"%s\", expected \"%s\"", row, m.period, c[i].period);
        yn_decision d = decide_ok(row, p, &card, &meal, &k, at(c[i].ymd, c[i].hms), &no_usage, 0);
        bool open = c[i].period[0] != '\0';
        expect_reason(row, &d, true, open ? YN_REASON_NONE : YN_REASON_NO_PERIOD);
        assert_string_equal(d.period, c[i].period);
        expect_i64(row, "subsidy", d.subsidy_fen, open ? 1500 : 0);
    }
    yn_policy_free(p);
}

static void test_period_boundaries(void **state)
{
    (void)state;
    static const struct time_case cases[] = {
        {DAY, "00:00:00", 3, ""},      /* midnight */
        {DAY, "10:59:59", 3, ""},      /* one second early */
        {DAY, "11:00:00", 3, "lunch"}, /* start is inclusive */
        {DAY, "11:00:01", 3, "lunch"}, /* open */
        {DAY, "13:29:59", 3, "lunch"}, /* last second */
        {DAY, "13:30:00", 3, ""},      /* end is exclusive */
        {DAY, "23:59:59", 3, ""},      /* evening */
    };
    run_times("shenzhen-2025.json", cases, sizeof cases / sizeof cases[0]);
}

static void test_weekdays_holidays_tiaoxiu(void **state)
{
    (void)state;
    static const struct time_case cases[] = {
        {20250310, NOON, 1, "lunch"}, /* Monday */
        {20250314, NOON, 5, "lunch"}, /* Friday */
        {20250315, NOON, 6, ""},      /* Saturday */
        {20250316, NOON, 7, ""},      /* Sunday */
        {20250101, NOON, 3, ""},      /* 元旦, a Wednesday */
        {20250102, NOON, 4, "lunch"}, /* the day after */
        {20250126, NOON, 7, "lunch"}, /* Sunday worked before 春节 */
        {20250128, NOON, 2, ""},      /* 春节 */
        {20250204, NOON, 2, ""},      /* last day of 春节 */
        {20250205, NOON, 3, "lunch"}, /* back to work */
        {20250208, NOON, 6, "lunch"}, /* Saturday worked after 春节 */
        {20250404, NOON, 5, ""},      /* 清明 */
        {20250427, NOON, 7, "lunch"}, /* Sunday worked before 劳动节 */
        {20250505, NOON, 1, ""},      /* 劳动节 */
        {20250602, NOON, 1, ""},      /* 端午 */
        {20250928, NOON, 7, "lunch"}, /* Sunday worked before 国庆 */
        {20251001, NOON, 3, ""},      /* 国庆 */
        {20251008, NOON, 3, ""},      /* 国庆 + 中秋 */
        {20251009, NOON, 4, "lunch"}, /* back to work */
        {20251011, NOON, 6, "lunch"}, /* Saturday worked after 国庆 */
        {20251012, NOON, 7, ""},      /* an ordinary Sunday */
        {20260102, NOON, 5, ""},      /* 元旦 2026 */
        {20260104, NOON, 7, "lunch"}, /* Sunday worked */
        {20260214, NOON, 6, "lunch"}, /* Saturday worked before 春节 */
        {20260216, NOON, 1, ""},      /* 春节 2026 */
        {20260223, NOON, 1, ""},      /* last day of 春节 2026 */
        {20260224, NOON, 2, "lunch"}, /* back to work */
        {20260228, NOON, 6, "lunch"}, /* Saturday worked after 春节 */
        {20260925, NOON, 5, ""},      /* 中秋 2026 */
        {20261010, NOON, 6, "lunch"}, /* Saturday worked after 国庆 */
    };
    run_times("shenzhen-2025.json", cases, sizeof cases / sizeof cases[0]);
}

/* Local date, weekday and time of day against libc's gmtime of UTC+8. */
static void test_locate_matches_libc(void **state)
{
    (void)state;
    yn_policy *p = load_shipped("zhuhai.json");
    int checked = 0;
    for (int64_t t = -8 * 3600; t < 4102444800LL; t += 86400 * 5 + 3607) {
        time_t local = (time_t)(t + 8 * 3600);
        struct tm tm;
        assert_non_null(gmtime_r(&local, &tm));
        yn_moment m;
        yn_policy_locate(p, t, &m);
        int32_t ymd = (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
        expect_i64("locate", "local_ymd", m.local_ymd, ymd);
        expect_i64("locate", "local_ym", m.local_ym, ymd / 100);
        expect_i64("locate", "weekday", m.weekday, tm.tm_wday == 0 ? 7 : tm.tm_wday);
        expect_i64("locate", "seconds_of_day", m.seconds_of_day,
                   tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
        int32_t sod = m.seconds_of_day;
        const char *want = sod >= 11 * 3600 && sod < 13 * 3600 + 1800 ? "lunch"
                           : sod >= 17 * 3600 && sod < 19 * 3600      ? "dinner"
                                                                      : "";
        assert_string_equal(m.period, want);
        checked++;
    }
    assert_true(checked > 5000);

    /* fixed points: the UTC day turns at 08:00 local */
    yn_moment m;
    yn_policy_locate(p, 1735660800, &m); /* 2024-12-31T16:00:00Z */
    assert_int_equal(m.local_ymd, 20250101);
    assert_int_equal(m.local_ym, 202501);
    assert_int_equal(m.weekday, 3);
    assert_int_equal(m.seconds_of_day, 0);
    yn_policy_locate(p, 1735660799, &m);
    assert_int_equal(m.local_ymd, 20241231);
    assert_int_equal(m.seconds_of_day, 86399);
    yn_policy_locate(p, 0, &m);
    assert_int_equal(m.local_ymd, 19700101);
    assert_int_equal(m.weekday, 4);
    assert_int_equal(m.seconds_of_day, 8 * 3600);
    /* out of range: a zeroed moment */
    memset(&m, 0x5a, sizeof m);
    yn_policy_locate(p, INT64_MAX, &m);
    assert_int_equal(m.local_ymd, 0);
    assert_int_equal(m.weekday, 0);
    assert_string_equal(m.period, "");
    yn_policy_free(p);
}

/* ---- money -------------------------------------------------------------- */

/* Month cap 200 yuan, 11 yuan a meal: the remaining cap is paid, last layer trimmed first. */
static void test_month_cap(void **state)
{
    (void)state;
    static const struct {
        int64_t used_fen;
        bool allowed;
        enum yn_reason reason;
        int n;
        int64_t fen[3];
    } rows[] = {
        {0, true, YN_REASON_NONE, 3, {300, 300, 500}},
        {18900, true, YN_REASON_NONE, 3, {300, 300, 500}}, /* the last full meal */
        {19000, true, YN_REASON_NONE, 3, {300, 300, 400}}, /* 10 yuan of room */
        {19500, true, YN_REASON_NONE, 3, {300, 200, 0}},
        {19999, true, YN_REASON_NONE, 3, {1, 0, 0}}, /* the last meal with any subsidy */
        {20000, false, YN_REASON_MONTH_CAP, 0, {0}}, /* and the one after it */
        {25000, false, YN_REASON_MONTH_CAP, 0, {0}},
    };
    static const char *const src[] = {"city", "district", "street"};
    yn_policy *p = load_text(base_doc);
    yn_card_facts card = card_of(YN_FLAG_DIBAO, 19600101, FUTIAN_1);
    yn_meal meal = priced(1200);
    yn_canteen k = canteen_of(FUTIAN_1);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char row[48];
        snprintf(row, sizeof row, "month cap, %lld used", (long long)rows[i].used_fen);
        yn_usage u = {0, 0, 12, rows[i].used_fen};
        yn_decision d = decide_ok(row, p, &card, &meal, &k, at(DAY, NOON), &u, 0);
        expect_reason(row, &d, rows[i].allowed, rows[i].reason);
        expect_layers(row, &d, rows[i].n, rows[i].fen, src);
        int64_t sum = rows[i].fen[0] + rows[i].fen[1] + rows[i].fen[2];
        expect_i64(row, "cash", d.cash_fen, rows[i].allowed ? 1200 - sum : 0);
    }
    yn_policy_free(p);
}

static void test_month_count(void **state)
{
    (void)state;
    yn_policy *p = load_text(base_doc);
    yn_card_facts card = card_of(YN_FLAG_DIBAO, 19600101, FUTIAN_1);
    yn_meal meal = priced(1200);
    yn_canteen k = canteen_of(FUTIAN_1);
    yn_usage u29 = {0, 0, 29, 0}, u30 = {0, 0, 30, 0}, day1 = {0, 1, 1, 0};
    yn_decision d = decide_ok("29th meal", p, &card, &meal, &k, at(DAY, NOON), &u29, 0);
    expect_reason("29 used", &d, true, YN_REASON_NONE);
    expect_i64("29 used", "subsidy", d.subsidy_fen, 1100);
    d = decide_ok("30 used", p, &card, &meal, &k, at(DAY, NOON), &u30, 0);
    expect_reason("30 used", &d, false, YN_REASON_MONTH_USED);
    /* per_day 2: a second subsidised meal today is fine (dinner) */
    d = decide_ok("second meal today", p, &card, &meal, &k, at(DAY, "18:00:00"), &day1, 0);
    expect_reason("second meal today", &d, true, YN_REASON_NONE);
    assert_string_equal(d.period, "dinner");
    expect_i64("second meal today", "subsidy", d.subsidy_fen, 200);
    yn_policy_free(p);
}

/* The base policy's Zengcheng-style layers through the locality rules. */
static void test_locality_losses(void **state)
{
    (void)state;
    static const struct {
        const char *row;
        uint32_t home_street;
        int64_t fen[3];
    } rows[] = {
        {"own street", FUTIAN_1, {300, 300, 500}},
        {"other street", FUTIAN_2, {300, 300, 0}},
        {"other district", LUOHU_1, {300, 0, 0}},
        {"no home recorded", 0, {300, 0, 0}},
    };
    yn_policy *p = load_text(base_doc);
    yn_meal meal = priced(1200);
    yn_canteen k = canteen_of(FUTIAN_1);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        yn_card_facts card = card_of(YN_FLAG_DIBAO, 19600101, rows[i].home_street);
        yn_decision d = decide_ok(rows[i].row, p, &card, &meal, &k, at(DAY, NOON), &no_usage, 0);
        expect_reason(rows[i].row, &d, true, YN_REASON_NONE);
        expect_layers(rows[i].row, &d, 3, rows[i].fen, NULL);
    }
    yn_policy_free(p);
}

/* cap_at_price false: the whole fixed amount or nothing. */
static void test_fixed_amount_layer(void **state)
{
    (void)state;
    yn_policy *p = load_text(base_doc);
    yn_card_facts card = card_of(0, 19500101, FUTIAN_1);
    yn_canteen k = canteen_of(FUTIAN_1);
    static const struct {
        int64_t price_fen, subsidy_fen;
        enum yn_reason reason;
        bool allowed;
    } rows[] = {
        {1200, 500, YN_REASON_NONE, true},
        {500, 500, YN_REASON_NONE, true},
        {499, 0, YN_REASON_BELOW_MIN_PRICE, false},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        yn_meal meal = priced(rows[i].price_fen);
        yn_decision d = decide_ok("fixed", p, &card, &meal, &k, at(DAY, NOON), &no_usage, 0);
        expect_reason("fixed", &d, rows[i].allowed, rows[i].reason);
        expect_i64("fixed", "subsidy", d.subsidy_fen, rows[i].subsidy_fen);
    }
    yn_policy_free(p);
}

static void test_weight_pricing(void **state)
{
    (void)state;
    static const struct {
        int32_t weight_g;
        int64_t per_100g_fen, price_fen;
    } rows[] = {
        {333, 250, 832},     /* 832.5 -> 832 */
        {100, 250, 250},     /* exact */
        {250, 333, 832},     /* 832.5 -> 832 */
        {399, 1, 3},         /* 3.99 -> 3 */
        {1, 99, 0},          /* 0.99 -> 0 */
        {1000, 1999, 19990}, /* exact */
        {199, 1000, 1990},   /* exact */
        {567, 1234, 6996},   /* 6996.78 -> 6996 */
    };
    yn_policy *p = load_shipped("shenzhen-2025.json");
    yn_canteen k = canteen_of(FUTIAN_1);
    yn_card_facts senior = card_of(0, 19500101, FUTIAN_1);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        yn_meal meal = {0, rows[i].weight_g, rows[i].per_100g_fen};
        yn_decision d = decide_ok("weighed", p, &senior, &meal, &k, at(DAY, NOON), &no_usage, 0);
        expect_i64("weighed", "price", d.price_fen, rows[i].price_fen);
        int64_t sub = rows[i].price_fen < 500 ? rows[i].price_fen : 500;
        expect_i64("weighed", "subsidy", d.subsidy_fen, sub);
        expect_i64("weighed", "cash", d.cash_fen, rows[i].price_fen - sub);
    }
    /* the weighed price goes through the key-group cap like any other */
    yn_card_facts dibao = card_of(YN_FLAG_DIBAO, 19600101, FUTIAN_1);
    yn_meal meal = {0, 333, 250};
    yn_decision d = decide_ok("weighed dibao", p, &dibao, &meal, &k, at(DAY, NOON), &no_usage, 0);
    expect_i64("weighed dibao", "price", d.price_fen, 832);
    expect_i64("weighed dibao", "subsidy", d.subsidy_fen, 832);
    expect_i64("weighed dibao", "cash", d.cash_fen, 0);
    yn_policy_free(p);
}

static void test_wallet_cash_split(void **state)
{
    (void)state;
    static const struct {
        const char *copay; /* replaces ["wallet", "cash"] */
        int64_t wallet_balance_fen;
        bool allowed;
        int64_t wallet_fen, cash_fen;
    } rows[] = {
        {"[\"wallet\", \"cash\"]", 0, true, 0, 600},
        {"[\"wallet\", \"cash\"]", 1, true, 1, 599},
        {"[\"wallet\", \"cash\"]", 250, true, 250, 350},
        {"[\"wallet\", \"cash\"]", 600, true, 600, 0},
        {"[\"wallet\", \"cash\"]", 100000, true, 600, 0},
        {"[\"cash\"]", 100000, true, 0, 600},
        {"[\"cash\"]", 0, true, 0, 600},
        {"[\"wallet\"]", 599, false, 0, 0},
        {"[\"wallet\"]", 600, true, 600, 0},
        {"[\"wallet\"]", 5000, true, 600, 0},
    };
    char *zhuhai = shipped_text("zhuhai.json");
    yn_card_facts card = card_of(0, 19600101, XIANGZHOU_1);
    yn_meal meal = priced(1200);
    yn_canteen k = canteen_of(XIANGZHOU_1);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char row[80];
        snprintf(row, sizeof row, "copay %s, wallet %lld", rows[i].copay,
                 (long long)rows[i].wallet_balance_fen);
        yn_policy *p = load_edited(zhuhai, "[\"wallet\", \"cash\"]", rows[i].copay);
        yn_decision d = decide_ok(row, p, &card, &meal, &k, at(DAY, NOON), &no_usage,
                                  rows[i].wallet_balance_fen);
        expect_reason(row, &d, rows[i].allowed,
                      rows[i].allowed ? YN_REASON_NONE : YN_REASON_INSUFFICIENT);
        expect_i64(row, "subsidy", d.subsidy_fen, rows[i].allowed ? 600 : 0);
        expect_i64(row, "wallet", d.wallet_fen, rows[i].wallet_fen);
        expect_i64(row, "cash", d.cash_fen, rows[i].cash_fen);
        yn_policy_free(p);
    }
    /* sold at full price from a wallet that cannot pay it: refused as insufficient */
    yn_policy *strict = load_edited(zhuhai, "[\"wallet\", \"cash\"]", "[\"wallet\"]");
    yn_card_facts young = card_of(0, 19660101, XIANGZHOU_1);
    yn_decision u =
        decide_ok("unsubsidised", strict, &young, &meal, &k, at(DAY, NOON), &no_usage, 1199);
    expect_reason("unsubsidised, wallet 1199", &u, false, YN_REASON_INSUFFICIENT);
    u = decide_ok("unsubsidised", strict, &young, &meal, &k, at(DAY, NOON), &no_usage, 1200);
    expect_reason("unsubsidised, wallet 1200", &u, true, YN_REASON_NOT_ELIGIBLE);
    expect_i64("unsubsidised, wallet 1200", "wallet", u.wallet_fen, 1200);
    yn_policy_free(strict);
    /* fully subsidised: a wallet-only policy accepts an empty wallet */
    yn_policy *p = load_shipped("shenzhen-2025.json");
    char *sz = shipped_text("shenzhen-2025.json");
    yn_policy *wallet_only = load_edited(sz, "[\"wallet\", \"cash\"]", "[\"wallet\"]");
    yn_card_facts dibao = card_of(YN_FLAG_DIBAO, 19600101, FUTIAN_1);
    yn_canteen futian = canteen_of(FUTIAN_1);
    yn_meal cheap = priced(1400);
    yn_decision d =
        decide_ok("free meal", wallet_only, &dibao, &cheap, &futian, at(DAY, NOON), &no_usage, 0);
    expect_reason("free meal", &d, true, YN_REASON_NONE);
    expect_i64("free meal", "subsidy", d.subsidy_fen, 1400);
    expect_i64("free meal", "wallet", d.wallet_fen, 0);
    expect_i64("free meal", "cash", d.cash_fen, 0);
    yn_policy_free(wallet_only);
    yn_policy_free(p);
    free(sz);
    free(zhuhai);
}

/* Bad arguments: YN_EINVAL and *out untouched. */
static void test_decide_bad_input(void **state)
{
    (void)state;
    yn_policy *p = load_shipped("shenzhen-2025.json");
    yn_card_facts good = card_of(YN_FLAG_DIBAO, 19600101, FUTIAN_1);
    yn_canteen k = canteen_of(FUTIAN_1);
    yn_meal ok_meal = priced(1200);
    static const struct {
        const char *row;
        yn_meal meal;
    } meals[] = {
        {"negative price", {-1, 0, 0}},
        {"weight without unit price", {0, 300, 0}},
        {"unit price without weight", {0, 0, 250}},
        {"both fixed and weighed", {1200, 300, 250}},
        {"negative weight", {0, -300, 250}},
        {"negative unit price", {0, 300, -250}},
        {"price above 1,000,000 yuan", {100000001, 0, 0}},
        {"unit price above the limit", {0, 300, 100000001}},
        {"weighed price above the limit", {0, 2000000000, 100000}},
    };
    yn_decision d, sentinel;
    memset(&sentinel, 0x5a, sizeof sentinel);
    for (size_t i = 0; i < sizeof meals / sizeof meals[0]; i++) {
        d = sentinel;
        int rc = yn_policy_decide(p, &good, &meals[i].meal, &k, at(DAY, NOON), &no_usage, 0, &d);
        if (rc != YN_EINVAL)
            fail_msg("%s: rc %d, expected YN_EINVAL", meals[i].row, rc);
        assert_memory_equal(&d, &sentinel, sizeof d);
    }
    yn_usage neg = {-1, 0, 0, 0}, neg_fen = {0, 0, 0, -1};
    yn_card_facts bad_birth = good, bad_expiry = good, unborn = good;
    bad_birth.birth_ymd = 19460229; /* 1946 was not a leap year */
    bad_expiry.expiry_ymd = 0;
    unborn.birth_ymd = DAY + 1;
    d = sentinel;
    assert_int_equal(yn_policy_decide(p, &good, &ok_meal, &k, at(DAY, NOON), &neg, 0, &d),
                     YN_EINVAL);
    assert_int_equal(yn_policy_decide(p, &good, &ok_meal, &k, at(DAY, NOON), &neg_fen, 0, &d),
                     YN_EINVAL);
    assert_int_equal(yn_policy_decide(p, &good, &ok_meal, &k, at(DAY, NOON), &no_usage, -1, &d),
                     YN_EINVAL);
    assert_int_equal(yn_policy_decide(p, &bad_birth, &ok_meal, &k, at(DAY, NOON), &no_usage, 0, &d),
                     YN_EINVAL);
    assert_int_equal(
        yn_policy_decide(p, &bad_expiry, &ok_meal, &k, at(DAY, NOON), &no_usage, 0, &d), YN_EINVAL);
    assert_int_equal(yn_policy_decide(p, &unborn, &ok_meal, &k, at(DAY, NOON), &no_usage, 0, &d),
                     YN_EINVAL);
    assert_int_equal(yn_policy_decide(p, &good, &ok_meal, &k, INT64_MAX, &no_usage, 0, &d),
                     YN_EINVAL);
    assert_int_equal(yn_policy_decide(p, &good, &ok_meal, &k, INT64_MIN, &no_usage, 0, &d),
                     YN_EINVAL);
    assert_int_equal(yn_policy_decide(NULL, &good, &ok_meal, &k, at(DAY, NOON), &no_usage, 0, &d),
                     YN_EINVAL);
    assert_int_equal(yn_policy_decide(p, NULL, &ok_meal, &k, at(DAY, NOON), &no_usage, 0, &d),
                     YN_EINVAL);
    assert_memory_equal(&d, &sentinel, sizeof d);
    /* and the good call still works */
    assert_int_equal(yn_policy_decide(p, &good, &ok_meal, &k, at(DAY, NOON), &no_usage, 0, &d),
                     YN_OK);
    assert_int_equal(d.subsidy_fen, 1200);
    yn_policy_free(p);
}

/* ---- malformed documents ------------------------------------------------- */

struct bad_case {
    const char *from, *to; /* edit of base_doc; from NULL: to is the whole document */
    const char *message;   /* expected substring of the error */
};

#define LAYER(src)                                                                                 \
    "{\"source\": \"" src "\", \"cap_fen\": 1, \"cap_at_price\": true, \"locality\": \"any\"}"
#define PERIOD(n)                                                                                  \
    "{\"name\": \"" n "\", \"start\": \"01:00\", \"end\": \"02:00\", \"weekdays\": [1]}, "

static const struct bad_case bad_cases[] = {
    /* not a policy at all */
    {NULL, "", "policy: line 1: "},
    {NULL, "{", "policy: line 1: "},
    {NULL, "[]", "policy: line 1: expected a JSON object at the top level, got array"},
    {NULL, "{\"format\": 1,\n\"format\": 1}", "policy: line 2: duplicate object key"},
    {"\"version\": 7,", "\"version\": 7", "policy: line 5: "},
    {"\"reverse_window_s\": 300,", "\"reverse_window_s\": 300,,", "policy: line 8: "},
    {"\"id\": \"test-base\",", "\"id\": \"test-base\", \"id\": \"again\",",
     "policy: line 3: duplicate object key"},
    {"\"copay\"", "\"copy\"", "policy: line 9: copy: unknown key (expected format, id,"},
    {"\"description\"", "\"comment\"", "policy: line 6: comment: unknown key"},
    /* identity: unsigned-looking documents */
    {"  \"id\": \"test-base\",\n", "",
     "policy: line 1: id: missing: a policy must carry format, "
     "id, version and issuer; refusing an unsigned-looking"},
    {"  \"version\": 7,\n", "", "policy: line 1: version: missing: a policy must carry"},
    {"  \"issuer\": 440304,\n", "", "policy: line 1: issuer: missing: a policy must carry"},
    {"  \"format\": 1,\n", "", "policy: line 1: format: missing: a policy must carry"},
    {"\"test-base\"", "\"\"", "policy: line 3: id: expected a name of 1 to 63 characters"},
    {"\"test-base\"", "\"test base\"", "line 3: id: expected a name of 1 to 63"},
    {"\"test-base\"", "42",
     "line 3: id: expected a name of 1 to 63 characters [A-Za-z0-9_.-], "
     "got integer"},
    {"\"format\": 1", "\"format\": 2", "line 2: format: expected an integer from 1 to 1"},
    {"\"version\": 7", "\"version\": 0", "line 4: version: expected an integer from 1 to"},
    {"\"version\": 7", "\"version\": \"7\"", "line 4: version: expected an integer from 1"},
    {"\"version\": 7", "\"version\": 7.5", "line 4: version: expected an integer from 1"},
    {"\"version\": 7", "\"version\": -7", "line 4: version: expected an integer from 1"},
    {"\"issuer\": 440304", "\"issuer\": 44030",
     "line 5: issuer: expected an integer from 110000 "
     "to 829999"},
    {"\"issuer\": 440304", "\"issuer\": \"440304\"", "line 5: issuer: expected an integer"},
    /* top-level settings */
    {"\"unit test policy\"", "7", "line 6: description: expected a string"},
    {"\"sell_without_subsidy\": false", "\"sell_without_subsidy\": \"no\"",
     "line 7: sell_without_subsidy: expected true or false, got string"},
    {"  \"sell_without_subsidy\": false,\n", "",
     "line 1: sell_without_subsidy: missing (expected true or false)"},
    {"\"reverse_window_s\": 300", "\"reverse_window_s\": -1",
     "line 8: reverse_window_s: expected an integer from 0 to 86400"},
    {"\"reverse_window_s\": 300", "\"reverse_window_s\": 86401",
     "line 8: reverse_window_s: expected an integer from 0 to 86400"},
    {"  \"reverse_window_s\": 300,\n", "", "line 1: reverse_window_s: missing"},
    {"[\"wallet\", \"cash\"]", "[\"cash\", \"wallet\"]",
     "line 9: copay: expected [\"wallet\", \"cash\"], [\"wallet\"] or [\"cash\"]"},
    {"[\"wallet\", \"cash\"]", "[\"wallet\", \"cash\", \"cash\"]", "line 9: copay: expected ["},
    {"[\"wallet\", \"cash\"]", "[]", "line 9: copay: expected ["},
    {"[\"wallet\", \"cash\"]", "\"cash\"", "line 9: copay: expected ["},
    {"[\"wallet\", \"cash\"]", "[\"card\"]", "line 9: copay: expected ["},
    {"  \"copay\": [\"wallet\", \"cash\"],\n", "", "line 1: copay: missing"},
    {"\"min_price_fen\": 100", "\"min_price_fen\": -100",
     "line 10: min_price_fen: expected an integer from 0 to 100000000"},
    {"\"min_price_fen\": 100", "\"min_price_fen\": 100000001",
     "line 10: min_price_fen: expected an integer from 0 to 100000000"},
    {"\"min_price_fen\": 100", "\"min_price_fen\": 1.5",
     "line 10: min_price_fen: expected an integer"},
    /* limits */
    {"\"per_period\": 1", "\"per_period\": 0",
     "line 11: limits.per_period: expected an integer from 1 to 1000"},
    {"\"per_day\": 2", "\"per_day\": -2", "line 11: limits.per_day: expected an integer from 1"},
    {"\"per_month\": 30", "\"per_week\": 30",
     "line 11: limits.per_week: unknown key (expected "
     "per_period, per_day, per_month, month_cap_fen)"},
    {"\"month_cap_fen\": 20000", "\"month_cap_fen\": -1",
     "line 11: limits.month_cap_fen: expected an integer from 1 to 100000000"},
    {"{\"per_period\": 1, \"per_day\": 2, \"per_month\": 30, \"month_cap_fen\": 20000}", "[1]",
     "line 11: limits: expected an object, got array"},
    /* categories */
    {"\"categories\": [", "\"categories\": [], \"x\": [", "line 12: x: unknown key"},
    {"  \"categories\": [\n    {\"name\": \"key\", \"min_age\": 60, \"flags_any\": [\"dibao\", "
     "\"tekun\"]},\n    {\"name\": \"senior\", \"min_age\": 70, \"max_age\": 99}\n  ],\n",
     "  \"categories\": [],\n",
     "line 12: categories: expected an array of 1 to 16 categories, got 0"},
    {"  \"categories\": [\n    {\"name\": \"key\", \"min_age\": 60, \"flags_any\": [\"dibao\", "
     "\"tekun\"]},\n    {\"name\": \"senior\", \"min_age\": 70, \"max_age\": 99}\n  ],\n",
     "  \"categories\": {\"a\": 1},\n",
     "line 12: categories: expected an array of 1 to 16 categories, got object"},
    {"{\"name\": \"key\",", "{\"nam\": \"key\",",
     "line 13: categories[0].nam: unknown key (expected name, display, min_age, max_age, "
     "flags_any, flags_all)"},
    /* screen names: short, printable, a string */
    {"{\"name\": \"key\",", "{\"name\": \"key\", \"display\": \"一二三四五六七八九\",",
     "line 13: categories[0].display: expected a screen name of 1 to 8 characters, e.g. "
     "\"低保\""},
    {"{\"name\": \"key\",", "{\"name\": \"key\", \"display\": 5,",
     "line 13: categories[0].display: expected a screen name of 1 to 8 characters, e.g. "
     "\"低保\", got integer"},
    {"{\"name\": \"key\",", "{\"name\": \"key\", \"display\": \"低\\u0001保\",",
     "line 13: categories[0].display: control character in a screen name (expected a screen name "
     "of 1 to 8 characters, e.g. \"低保\")"},
    {"{\"name\": \"key\",", "{\"name\": \"key\", \"display\": \"\",",
     "line 13: categories[0].display: expected a screen name of 1 to 8 characters, e.g. "
     "\"低保\""},
    {"{\"name\": \"dinner\",", "{\"name\": \"dinner\", \"display\": \" 晚餐\",",
     "line 20: periods[1].display: expected a screen name of 1 to 8 characters, e.g. \"低保\""},
    {"  \"limits\":", "  \"sources\": [{\"name\": \"city\"}], \"limits\":",
     "line 11: sources[0].display: missing (a source is listed here only for its screen name)"},
    {"  \"limits\":",
     "  \"sources\": [{\"name\": \"city\", \"display\": \"市级\"}, {\"name\": \"city\", "
     "\"display\": \"市\"}], \"limits\":",
     "line 11: sources[1].name: duplicate source name \"city\""},
    {"{\"name\": \"senior\",", "{\"name\": \"key\",",
     "line 14: categories[1].name: duplicate category name \"key\""},
    {"{\"name\": \"senior\",", "{\"name\": \"senior-citizens-over-seventy\",",
     "line 14: categories[1].name: expected a name of 1 to 23 characters"},
    {"{\"name\": \"senior\",", "{\"name\": \"长者\",",
     "line 14: categories[1].name: expected a "
     "name"},
    {"{\"name\": \"senior\", \"min_age\": 70, \"max_age\": 99}", "42",
     "line 14: categories[1]: expected an object, got integer"},
    {"\"min_age\": 60", "\"min_age\": -1",
     "line 13: categories[0].min_age: expected an integer "
     "from 0 to 150"},
    {"\"max_age\": 99", "\"max_age\": 69",
     "line 14: categories[1].max_age: less than min_age "
     "(70)"},
    {"\"max_age\": 99", "\"max_age\": 151",
     "line 14: categories[1].max_age: expected an integer "
     "from 0 to 150"},
    {"[\"dibao\", \"tekun\"]", "[\"dibao\", \"dibo\"]",
     "line 13: categories[0].flags_any[1]: unknown category flag (expected one of tekun, dibao,"},
    {"[\"dibao\", \"tekun\"]", "[\"dibao\", \"dibao\"]",
     "line 13: categories[0].flags_any[1]: duplicate category flag"},
    {"[\"dibao\", \"tekun\"]", "[]",
     "line 13: categories[0].flags_any: expected an array of 1 to 7 category flags, got 0"},
    {"[\"dibao\", \"tekun\"]", "[1]", "line 13: categories[0].flags_any[0]: unknown category flag"},
    {"\"flags_any\"", "\"flags_all\": \"dibao\", \"flags_any\"",
     "line 13: categories[0].flags_all: expected an array of 1 to 7 category flags, got string"},
    /* periods */
    {"\"start\": \"11:00\"", "\"start\": \"11:0\"",
     "policy: line 17: periods[0].start: expected \"HH:MM\" or \"HH:MM:SS\", 00:00 to 23:59:59"},
    {"\"start\": \"11:00\"", "\"start\": \"25:00\"",
     "line 17: periods[0].start: expected \"HH:MM\""},
    {"\"start\": \"11:00\"", "\"start\": \"11:60\"",
     "line 17: periods[0].start: expected \"HH:MM\""},
    {"\"start\": \"11:00\"", "\"start\": \"11:00:60\"", "line 17: periods[0].start: expected"},
    {"\"start\": \"11:00\"", "\"start\": \"24:00\"", "line 17: periods[0].start: expected"},
    {"\"start\": \"11:00\"", "\"start\": \"1100\"", "line 17: periods[0].start: expected"},
    {"\"start\": \"11:00\"", "\"start\": \" 11:00\"", "line 17: periods[0].start: expected"},
    {"\"start\": \"11:00\"", "\"start\": \"11:00:00.5\"", "line 17: periods[0].start: expected"},
    {"\"start\": \"11:00\"", "\"start\": \"+1:00\"", "line 17: periods[0].start: expected"},
    {"\"start\": \"11:00\"", "\"start\": 1100",
     "line 17: periods[0].start: expected \"HH:MM\" or "
     "\"HH:MM:SS\", 00:00 to 23:59:59, got integer"},
    {"\"start\": \"11:00\", ", "", "line 17: periods[0].start: missing"},
    {"\"end\": \"13:30:00\"", "\"end\": \"24:01\"",
     "line 17: periods[0].end: expected \"HH:MM\" or \"HH:MM:SS\", 00:00:01 to 24:00"},
    {"\"end\": \"13:30:00\"", "\"end\": \"11:00\"",
     "line 17: periods[0].end: must be later than start"},
    {"\"end\": \"13:30:00\"", "\"end\": \"10:00\"", "line 17: periods[0].end: must be later"},
    {"\"weekdays\": [1, 2, 3, 4, 5]", "\"weekdays\": [0, 1]",
     "line 18: periods[0].weekdays[0]: expected a weekday 1 (Monday) to 7 (Sunday)"},
    {"\"weekdays\": [1, 2, 3, 4, 5]", "\"weekdays\": [1, 8]",
     "line 18: periods[0].weekdays[1]: expected a weekday 1"},
    {"\"weekdays\": [1, 2, 3, 4, 5]", "\"weekdays\": [1, 1]",
     "line 18: periods[0].weekdays[1]: duplicate weekday"},
    {"\"weekdays\": [1, 2, 3, 4, 5]", "\"weekdays\": [\"Mon\"]",
     "line 18: periods[0].weekdays[0]: expected a weekday"},
    {"\"weekdays\": [1, 2, 3, 4, 5]", "\"weekdays\": [1, 2, 3, 4, 5, 6, 7, 1]",
     "line 18: periods[0].weekdays: expected an array of 0 to 7 weekdays"},
    {"\"weekdays\": [1, 2, 3, 4, 5]", "\"weekdays\": 1",
     "line 18: periods[0].weekdays: expected an array of 0 to 7 weekdays 1 (Monday) to 7 "
     "(Sunday), got integer"},
    {"\"weekdays\": [1, 2, 3, 4, 5, 6, 7]", "\"weekdays\": []",
     "line 20: periods[1].weekdays: period is never open (no weekdays and no open_dates)"},
    {"[\"2025-10-01\"]", "[\"2025-02-29\"]",
     "line 19: periods[0].closed_dates[0]: expected a date \"YYYY-MM-DD\""},
    {"[\"2025-10-01\"]", "[20251001]", "line 19: periods[0].closed_dates[0]: expected a date"},
    {"[\"2025-10-01\"]", "[\"2025-10-1\"]", "line 19: periods[0].closed_dates[0]: expected a date"},
    {"[\"2025-10-01\"]", "[\"2025/10/01\"]",
     "line 19: periods[0].closed_dates[0]: expected a date"},
    {"[\"2025-10-01\"]", "[\"2025-10-01\", \"2025-10-02\", \"2025-10-01\"]",
     "line 19: periods[0].closed_dates[2]: duplicate date"},
    {"[\"2025-09-28\"]", "[\"2025-09-28\", \"2025-10-01\"]",
     "line 19: periods[0].open_dates[1]: date is also in closed_dates"},
    {"{\"name\": \"dinner\",", "{\"name\": \"lunch\",",
     "line 20: periods[1].name: duplicate period name \"lunch\""},
    {"\"start\": \"17:00\"", "\"strat\": \"17:00\"",
     "line 20: periods[1].strat: unknown key (expected name, display, start, end, weekdays, "
     "closed_dates, open_dates)"},
    {"\"periods\": [",
     "\"periods\": [" PERIOD("p1") PERIOD("p2") PERIOD("p3") PERIOD("p4") PERIOD("p5") PERIOD("p6")
         PERIOD("p7"),
     "line 16: periods: expected an array of 1 to 8 meal periods, got 9"},
    /* subsidies and layers */
    {"{\"category\": \"senior\",", "{\"category\": \"seniors\",",
     "line 27: subsidies[1].category: no category of that name"},
    {"\"period\": \"dinner\"", "\"period\": \"supper\"",
     "line 29: subsidies[2].period: no period of that name"},
    {"{\"category\": \"key\", \"period\": \"dinner\"",
     "{\"category\": \"key\", \"period\": \"lunch\"",
     "line 29: subsidies[2].period: duplicate subsidy for category \"key\" in period \"lunch\""},
    {"{\"category\": \"senior\", \"period\": \"lunch\", \"layers\": [\n      {\"source\": "
     "\"city\", \"cap_fen\": 500, \"cap_at_price\": false, \"locality\": \"any\"}]}",
     "{\"category\": \"senior\", \"period\": \"lunch\", \"layers\": []}",
     "line 27: subsidies[1].layers: expected an array of 1 to 4 funding layers, got 0"},
    {"\"locality\": \"same_street\"}]}",
     "\"locality\": \"same_street\"}, " LAYER("a") ", " LAYER("b") "]}",
     "line 23: subsidies[0].layers: expected an array of 1 to 4 funding layers, got 5"},
    {"\"cap_fen\": 300, \"cap_at_price\": true, \"locality\": \"same_district\"",
     "\"cap_fen\": -300, \"cap_at_price\": true, \"locality\": \"same_district\"",
     "policy: line 25: subsidies[0].layers[1].cap_fen: expected an integer from 0 to 100000000"},
    {"\"cap_fen\": 300", "\"cap_fen\": 3.00",
     "line 24: subsidies[0].layers[0].cap_fen: expected "
     "an integer"},
    {"\"cap_fen\": 300", "\"cap_fen\": \"300\"",
     "line 24: subsidies[0].layers[0].cap_fen: "
     "expected an integer"},
    {"\"cap_fen\": 300", "\"cap_fen\": 100000001",
     "line 24: subsidies[0].layers[0].cap_fen: "
     "expected an integer from 0 to 100000000"},
    {"\"cap_fen\": 300", "\"cap_fen\": 300, \"remainder_of_total_fen\": 600",
     "line 24: subsidies[0].layers[0]: expected exactly one of cap_fen and remainder_of_total_fen"},
    {"\"cap_fen\": 300, ", "", "line 24: subsidies[0].layers[0]: expected exactly one of cap_fen"},
    {"\"remainder_of_total_fen\": 1100", "\"remainder_of_total_fen\": 500",
     "line 26: subsidies[0].layers[2].remainder_of_total_fen: less than the 600 fen of the layers "
     "before it"},
    {"\"remainder_of_total_fen\": 1100", "\"remainder_of_total_fen\": -1100",
     "line 26: subsidies[0].layers[2].remainder_of_total_fen: expected an integer from 0 to"},
    {"\"locality\": \"same_street\"", "\"locality\": \"same_city\"",
     "line 26: subsidies[0].layers[2].locality: unknown locality (expected \"any\", "
     "\"same_district\" or \"same_street\")"},
    {"\"locality\": \"same_street\"", "\"locality\": true",
     "line 26: subsidies[0].layers[2].locality: expected \"any\", \"same_district\" or "
     "\"same_street\", got boolean"},
    {", \"locality\": \"any\"}]},", "}]},", "line 28: subsidies[1].layers[0].locality: missing"},
    {"\"cap_at_price\": false", "\"cap_at_price\": 0",
     "line 28: subsidies[1].layers[0].cap_at_price: expected true or false, got integer"},
    {"\"cap_fen\": 500, \"cap_at_price\": false, ", "\"cap_fen\": 500, ",
     "line 28: subsidies[1].layers[0].cap_at_price: missing"},
    {"{\"source\": \"district\"", "{\"source\": \"city\"",
     "line 25: subsidies[0].layers[1].source: duplicate source \"city\" in this subsidy"},
    {"{\"source\": \"district\"", "{\"source\": \"\"",
     "line 25: subsidies[0].layers[1].source: expected a name of 1 to 23 characters"},
    {"{\"source\": \"district\"", "{\"source\": null",
     "line 25: subsidies[0].layers[1].source: expected a name of 1 to 23 characters "
     "[A-Za-z0-9_.-], got null"},
    {"{\"source\": \"district\"", "{\"src\": \"district\"",
     "line 25: subsidies[0].layers[1].src: unknown key (expected source, cap_fen, "
     "remainder_of_total_fen, cap_at_price, locality)"},
    {"\"layers\": [\n      {\"source\": \"city\", \"cap_fen\": 200",
     "\"layers\": [\n      7, {\"source\": \"city\", \"cap_fen\": 200",
     "line 30: subsidies[2].layers[0]: expected an object, got integer"},
    {"{\"category\": \"senior\", \"period\": \"lunch\", \"layers\"",
     "{\"category\": \"senior\", \"period\": \"lunch\", \"layer\"",
     "line 27: subsidies[1].layer: unknown key (expected category, period, layers)"},
    {"  \"subsidies\": [\n", "  \"subsidies\": [], \"s\": [\n", "line 22: s: unknown key"},
    /* other ways to identify the holder */
    {"  \"categories\": [\n", "  \"identity_only\": true,\n  \"categories\": [\n",
     "line 12: identity_only: expected an object, got boolean"},
    {"  \"categories\": [\n", "  \"identity_only\": {},\n  \"categories\": [\n",
     "line 12: identity_only.offline_cap_fen: missing (expected an integer from 0 to 100000000)"},
    {"  \"categories\": [\n",
     "  \"identity_only\": {\"offline_cap_fen\": 500, \"per_terminal_day\": 3},\n"
     "  \"categories\": [\n",
     "line 12: identity_only.per_terminal_day: unknown key (expected offline_cap_fen)"},
    {"  \"categories\": [\n",
     "  \"manual_entry\": {\"offline_cap_fen\": 500},\n  \"categories\": [\n",
     "line 12: manual_entry.per_terminal_day: missing (expected an integer from 1 to 1000)"},
    {"  \"categories\": [\n",
     "  \"manual_entry\": {\"offline_cap_fen\": -1, \"per_terminal_day\": 5},\n"
     "  \"categories\": [\n",
     "line 12: manual_entry.offline_cap_fen: expected an integer from 0 to 100000000"},
    {"  \"categories\": [\n",
     "  \"manual_entry\": {\"offline_cap_fen\": 0, \"per_terminal_day\": 0},\n"
     "  \"categories\": [\n",
     "line 12: manual_entry.per_terminal_day: expected an integer from 1 to 1000"},
};

static void test_malformed_policies(void **state)
{
    (void)state;
    yn_policy *prev = load_text(base_doc);
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const struct bad_case *c = &bad_cases[i];
        char *doc = c->from ? replace(base_doc, c->from, c->to) : strdup(c->to);
        char err[512];
        memset(err, 'x', sizeof err);
        err[sizeof err - 1] = '\0';
        yn_policy *out = prev;
        int rc = yn_policy_load(doc, strlen(doc), &out, err, sizeof err);
        if (rc != YN_EINVAL)
            fail_msg("case %zu (%s): rc %d, expected YN_EINVAL", i, c->message, rc);
        if (out != prev)
            fail_msg("case %zu: *out changed on failure", i);
        if (!strstr(err, c->message))
            fail_msg("case %zu: error \"%s\"\n  does not contain \"%s\"", i, err, c->message);
        if (strncmp(err, "policy: line ", 13) != 0)
            fail_msg("case %zu: error \"%s\" lacks the \"policy: line N:\" prefix", i, err);
        free(doc);
    }
    /* the previous policy is intact and still decides */
    yn_card_facts card = card_of(YN_FLAG_DIBAO, 19600101, FUTIAN_1);
    yn_meal meal = priced(1200);
    yn_canteen k = canteen_of(FUTIAN_1);
    yn_decision d = decide_ok("prev", prev, &card, &meal, &k, at(DAY, NOON), &no_usage, 0);
    expect_i64("prev", "subsidy", d.subsidy_fen, 1100);
    assert_string_equal(yn_policy_id(prev), "test-base");
    yn_policy_free(prev);
}

/* Exact texts, so the format itself is pinned. */
static void test_error_text_exact(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"\"start\": \"11:00\"", "\"start\": \"11:0\"",
         "policy: line 17: periods[0].start: expected \"HH:MM\" or \"HH:MM:SS\", 00:00 to "
         "23:59:59"},
        {"\"locality\": \"same_street\"", "\"locality\": \"street\"",
         "policy: line 26: subsidies[0].layers[2].locality: unknown locality (expected \"any\", "
         "\"same_district\" or \"same_street\")"},
        {"\"id\": \"test-base\",", "\"id\": \"test-base\", \"\\u0001weird\": 1,",
         "policy: line 3: ?weird: unknown key (expected format, id, version, issuer, "
         "description, sell_without_subsidy, reverse_window_s, copay, min_price_fen, limits, "
         "categories, periods, subsidies, sources, identity_only, manual_entry)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *doc = replace(base_doc, cases[i].from, cases[i].to);
        char err[512] = "";
        yn_policy *out = NULL;
        assert_int_equal(yn_policy_load(doc, strlen(doc), &out, err, sizeof err), YN_EINVAL);
        assert_null(out);
        assert_string_equal(err, cases[i].message);
        free(doc);
    }
    /* a small error buffer is truncated, never overrun */
    char *doc = replace(base_doc, "\"start\": \"11:00\"", "\"start\": \"11:0\"");
    char small[16];
    memset(small, 'x', sizeof small);
    yn_policy *out = NULL;
    assert_int_equal(yn_policy_load(doc, strlen(doc), &out, small, 10), YN_EINVAL);
    assert_string_equal(small, "policy: l");
    assert_int_equal(small[10], 'x');
    /* and no buffer at all is fine */
    assert_int_equal(yn_policy_load(doc, strlen(doc), &out, NULL, 0), YN_EINVAL);
    assert_null(out);
    free(doc);
}

/* Size limits that need generated documents. */
/* Screen names: from the document, else built in for the shipped ids, else
 * the id; every shipped policy names all its categories, periods and sources. */
static void test_display_names(void **state)
{
    (void)state;
    char *doc =
        replace(base_doc, "{\"name\": \"key\",", "{\"name\": \"key\", \"display\": \"低保特困\",");
    char *doc2 =
        replace(doc, "  \"limits\":",
                "  \"sources\": [{\"name\": \"city\", \"display\": \"市级财政\"}], \"limits\":");
    yn_policy *p = NULL, *old = NULL;
    char err[256] = "";
    assert_int_equal(yn_policy_load(doc2, strlen(doc2), &p, err, sizeof err), YN_OK);
    assert_string_equal(yn_policy_display(p, YN_POLICY_CATEGORY, "key"), "低保特困");
    assert_string_equal(yn_policy_display(p, YN_POLICY_CATEGORY, "senior"), "senior");
    assert_string_equal(yn_policy_display(p, YN_POLICY_SOURCE, "city"), "市级财政");
    assert_string_equal(yn_policy_display(p, YN_POLICY_SOURCE, "district"), "区级");
    assert_string_equal(yn_policy_display(p, YN_POLICY_PERIOD, "lunch"), "午餐");
    assert_string_equal(yn_policy_display(p, YN_POLICY_CATEGORY, ""), "其他");
    /* a document of before "display" still loads, with the built-in names */
    assert_int_equal(yn_policy_load(base_doc, strlen(base_doc), &old, err, sizeof err), YN_OK);
    assert_string_equal(yn_policy_display(old, YN_POLICY_CATEGORY, "key"), "key");
    assert_string_equal(yn_policy_display(old, YN_POLICY_PERIOD, "dinner"), "晚餐");
    assert_string_equal(yn_policy_display(NULL, YN_POLICY_SOURCE, "street"), "街道");
    yn_policy_limit lim;
    yn_policy_limits(old, &lim);
    assert_int_equal(lim.per_day, 2);
    assert_int_equal(lim.day_max, 2);
    assert_int_equal(lim.month_cap_fen, 20000);
    yn_policy_free(p);
    yn_policy_free(old);
    free(doc);
    free(doc2);
    /* the shipped policies: no id shows on a screen */
    static const char *const shipped[] = {"shenzhen-2025", "guangzhou-zengcheng", "zhuhai"};
    static const char *const ids[][2] = {
        {"key_group", "重点群体"},   {"age_100_plus", "百岁老人"},
        {"age_70_99", "70至99岁"},   {"low_income_60_plus", "低收入长者"},
        {"age_80_plus", "80岁以上"}, {"age_60_79", "60至79岁"},
        {"age_60_plus", "60岁以上"}};
    for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/firmware/policies/%s.json", yn_test_srcdir(), shipped[i]);
        assert_int_equal(yn_policy_load_file(path, &p, err, sizeof err), YN_OK);
        for (size_t j = 0; j < sizeof ids / sizeof ids[0]; j++) {
            const char *shown = yn_policy_display(p, YN_POLICY_CATEGORY, ids[j][0]);
            assert_true(strcmp(shown, ids[j][0]) != 0);
        }
        assert_string_equal(yn_policy_display(p, YN_POLICY_PERIOD, "lunch"), "午餐");
        assert_string_equal(yn_policy_display(p, YN_POLICY_SOURCE, "city"), "市级");
        yn_policy_free(p);
    }
}

static void test_list_limits(void **state)
{
    (void)state;
    char dates[129 * 15 + 8], *w = dates;
    w += sprintf(w, "[");
    for (int i = 0; i < 129; i++)
        w += sprintf(w, "%s\"2030-%02d-%02d\"", i ? ", " : "", 1 + i / 28, 1 + i % 28);
    sprintf(w, "]");
    char *doc = replace(base_doc, "[\"2025-10-01\"]", dates);
    yn_policy *out = NULL;
    char err[256] = "";
    assert_int_equal(yn_policy_load(doc, strlen(doc), &out, err, sizeof err), YN_EINVAL);
    assert_null(out);
    assert_non_null(
        strstr(err, "line 19: periods[0].closed_dates: expected an array of 0 to 128 dates"));
    free(doc);
    /* 128 dates are fine */
    w = dates + sprintf(dates, "[");
    for (int i = 0; i < 128; i++)
        w += sprintf(w, "%s\"2030-%02d-%02d\"", i ? ", " : "", 1 + i / 28, 1 + i % 28);
    sprintf(w, "]");
    doc = replace(base_doc, "[\"2025-10-01\"]", dates);
    assert_int_equal(yn_policy_load(doc, strlen(doc), &out, err, sizeof err), YN_OK);
    assert_non_null(out);
    yn_policy_free(out);
    free(doc);
    /* a document above 1 MiB is refused before parsing */
    size_t big = (1 << 20) + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    out = NULL;
    assert_int_equal(yn_policy_load(huge, big, &out, err, sizeof err), YN_EINVAL);
    assert_null(out);
    assert_non_null(strstr(err, "document larger than"));
    free(huge);
}

static void test_load_file_errors(void **state)
{
    (void)state;
    char err[512] = "";
    yn_policy *out = NULL;
    assert_int_equal(yn_policy_load_file("no-such-policy.json", &out, err, sizeof err), YN_ENOENT);
    assert_null(out);
    assert_string_equal(err, "policy: no-such-policy.json: No such file or directory");

    FILE *f = fopen("bad.json", "w"); /* cwd is a fresh temp directory */
    assert_non_null(f);
    char *doc = replace(base_doc, "\"min_price_fen\": 100", "\"min_price_fen\": -5");
    fputs(doc, f);
    fclose(f);
    free(doc);
    assert_int_equal(yn_policy_load_file("bad.json", &out, err, sizeof err), YN_EINVAL);
    assert_null(out);
    assert_string_equal(err, "policy: bad.json: line 10: min_price_fen: expected an integer from "
                             "0 to 100000000");
    remove("bad.json");

    assert_int_equal(yn_policy_load(NULL, 0, &out, err, sizeof err), YN_EINVAL);
    assert_null(out);
    assert_non_null(strstr(err, "no document"));
}

/* Identity-only cards and 忘带卡: absent means not accepted; present, each
 * carries its offline cap (0: no subsidy while offline), manual entry its
 * daily cap per terminal. */
static void test_other_ways_to_identify(void **state)
{
    (void)state;
    yn_policy_ident_rule id, man;
    yn_policy *p = load_text(base_doc);
    yn_policy_identity_only(p, &id);
    yn_policy_manual_entry(p, &man);
    assert_false(id.accepted);
    assert_false(man.accepted);
    yn_policy_free(p);
    for (int i = 0; i < 3; i++) { /* the shipped documents do not accept either */
        static const char *const files[] = {"shenzhen-2025.json", "guangzhou-zengcheng.json",
                                            "zhuhai.json"};
        p = load_shipped(files[i]);
        yn_policy_identity_only(p, &id);
        yn_policy_manual_entry(p, &man);
        assert_false(id.accepted || man.accepted);
        yn_policy_free(p);
    }
    p = load_edited(base_doc, "  \"categories\"",
                    "  \"identity_only\": {\"offline_cap_fen\": 500},\n"
                    "  \"manual_entry\": {\"per_terminal_day\": 20, \"offline_cap_fen\": 0},\n"
                    "  \"categories\"");
    yn_policy_identity_only(p, &id);
    yn_policy_manual_entry(p, &man);
    assert_true(id.accepted);
    assert_int_equal(id.offline_cap_fen, 500);
    assert_true(man.accepted);
    assert_int_equal(man.offline_cap_fen, 0);
    assert_int_equal(man.per_terminal_day, 20);
    yn_policy_free(p);
}

static void test_month_limits_for_the_kiosk(void **state)
{
    (void)state;
    int32_t per_month = -1;
    int64_t cap_fen = -1;
    yn_policy *sz = load_shipped("shenzhen-2025.json");
    yn_policy_month_limits(sz, &per_month, &cap_fen);
    assert_int_equal(per_month, 0);
    assert_int_equal(cap_fen, 0);
    yn_policy_free(sz);
    char *text = shipped_text("zhuhai.json");
    yn_policy *zh = load_edited(text, "\"per_day\": 1",
                                "\"per_day\": 1, \"per_month\": 20, "
                                "\"month_cap_fen\": 12000");
    yn_policy_month_limits(zh, &per_month, &cap_fen);
    assert_int_equal(per_month, 20);
    assert_int_equal(cap_fen, 12000);
    yn_policy_free(zh);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_month_limits_for_the_kiosk),
        cmocka_unit_test(test_other_ways_to_identify),
        cmocka_unit_test(test_shenzhen_groups),
        cmocka_unit_test(test_zengcheng_groups),
        cmocka_unit_test(test_zengcheng_totals),
        cmocka_unit_test(test_zhuhai_groups),
        cmocka_unit_test(test_zhuhai_once_per_day),
        cmocka_unit_test(test_shipped_identity),
        cmocka_unit_test(test_base_policy_loads),
        cmocka_unit_test(test_refusal_reasons),
        cmocka_unit_test(test_expiry_day),
        cmocka_unit_test(test_birthdays),
        cmocka_unit_test(test_period_boundaries),
        cmocka_unit_test(test_weekdays_holidays_tiaoxiu),
        cmocka_unit_test(test_locate_matches_libc),
        cmocka_unit_test(test_month_cap),
        cmocka_unit_test(test_month_count),
        cmocka_unit_test(test_locality_losses),
        cmocka_unit_test(test_fixed_amount_layer),
        cmocka_unit_test(test_weight_pricing),
        cmocka_unit_test(test_wallet_cash_split),
        cmocka_unit_test(test_decide_bad_input),
        cmocka_unit_test(test_malformed_policies),
        cmocka_unit_test(test_error_text_exact),
        cmocka_unit_test(test_list_limits),
        cmocka_unit_test(test_display_names),
        cmocka_unit_test(test_load_file_errors),
    };
    return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
