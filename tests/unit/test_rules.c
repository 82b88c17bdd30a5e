/* test_rules.c — the shared record and entry rules: fields (card numbers,
 * ids, names, dates, districts, UTF-8, strict integers), the kind table, a
 * whole record of each kind, an undo against its meal, and the district's
 * entries (roster card, blacklist change, allocation). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "rules.h"

static void test_fields(void **state)
{
    (void)state;
    assert_true(yn_rules_card_no("4403040001"));
    assert_true(yn_rules_card_no("CARD-X"));
    assert_true(yn_rules_card_no("1234567890123456789"));
    assert_false(yn_rules_card_no("12345678901234567890")); /* 20 */
    assert_false(yn_rules_card_no(""));
    assert_false(yn_rules_card_no("AB C"));
    assert_false(yn_rules_card_no("4403 040001'; DROP TABLE cards;--"));
    assert_false(yn_rules_card_no("x\xc3\xa9"));
    assert_true(yn_rules_id("T-FT-0001"));
    assert_false(yn_rules_id("12345678901234567")); /* 17 */
    assert_true(yn_rules_name("district"));
    assert_false(yn_rules_name("a23456789012345678901234"));
    assert_true(yn_rules_ref("A-2025-03-0001"));
    assert_true(yn_rules_district(440304));
    assert_false(yn_rules_district(440000)); /* a province, not a county */
    assert_false(yn_rules_district(990304)); /* no province 99 */
    assert_true(yn_rules_street(440304001, 440304));
    assert_false(yn_rules_street(440304000, 440304));
    assert_false(yn_rules_street(440305001, 440304));
}

static void test_utf8(void **state)
{
    (void)state;
    assert_true(yn_rules_utf8("lunch", 5));
    assert_true(yn_rules_utf8("\xe5\x8d\x88\xe9\xa4\x90", 6)); /* 午餐 */
    assert_true(yn_rules_utf8("\xf0\x9f\x8d\x9a", 4));         /* U+1F35A */
    assert_true(yn_rules_utf8("", 0));
    assert_false(yn_rules_utf8("\xff", 1));
    assert_false(yn_rules_utf8("\xc0\x80", 2));         /* overlong NUL */
    assert_false(yn_rules_utf8("\xe0\x80\xaf", 3));     /* overlong '/' */
    assert_false(yn_rules_utf8("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(yn_rules_utf8("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(yn_rules_utf8("\xe5\x8d", 2));         /* cut short */
    assert_false(yn_rules_utf8("a\nb", 3));
    assert_false(yn_rules_utf8("a\x7f", 2));
    assert_false(yn_rules_utf8("\xc2\x85", 2)); /* C1 control NEL */
    assert_false(yn_rules_utf8("a\0b", 3));
}

static void test_parse_int(void **state)
{
    (void)state;
    int64_t v = 7;
    assert_true(yn_rules_parse_int("3000", 1, 100000000, &v));
    assert_int_equal(v, 3000);
    assert_true(yn_rules_parse_int("-9223372036854775808", INT64_MIN, 0, &v));
    assert_true(v == INT64_MIN);
    assert_true(yn_rules_parse_int("9223372036854775807", 0, INT64_MAX, &v));
    v = 7;
    assert_false(yn_rules_parse_int("12abc", 1, 100000000, &v));
    assert_false(yn_rules_parse_int("", 1, 100000000, &v));
    assert_false(yn_rules_parse_int("-", INT64_MIN, 0, &v));
    assert_false(yn_rules_parse_int("+12", 1, 100000000, &v));
    assert_false(yn_rules_parse_int(" 12", 1, 100000000, &v));
    assert_false(yn_rules_parse_int("12 ", 1, 100000000, &v));
    assert_false(yn_rules_parse_int("0", 1, 100000000, &v));
    assert_false(yn_rules_parse_int("100000001", 1, 100000000, &v));
    assert_false(yn_rules_parse_int("9223372036854775808", 0, INT64_MAX, &v));
    assert_false(yn_rules_parse_int("99999999999999999999", 0, INT64_MAX, &v));
    assert_int_equal(v, 7); /* untouched on refusal */
}

static void test_kind_table(void **state)
{
    (void)state;
    for (int k = YN_LEDGER_MEAL; k <= 5; k++) { /* 5: a stamp-missing notice */
        assert_non_null(yn_rules_kind_of(k));
        assert_int_equal(yn_rules_kind_of(k)->kind, k);
    }
    assert_null(yn_rules_kind_of(0));
    assert_null(yn_rules_kind_of(99));
    assert_string_equal(yn_rules_kind_of(YN_LEDGER_REVERSAL)->name, "reversal");
}

static yn_ledger_record meal(void)
{
    yn_ledger_record r = {.seq = 5,
                          .tap_id = 42,
                          .kind = YN_LEDGER_MEAL,
                          .local_ymd = 20250303,
                          .price_fen = 1500,
                          .n_layers = 2,
                          .subsidy_fen = 1100,
                          .wallet_fen = 300,
                          .cash_fen = 100,
                          .utc_s = 1740970800,
                          .mono_ms = 1000,
                          .boot_no = 1,
                          .policy_version = 3,
                          .wallet_after_fen = 700,
                          .card_prev_seq = 2};
    strcpy(r.terminal, "T-0001");
    strcpy(r.card_no, "4403040001");
    strcpy(r.category, "dibao");
    strcpy(r.period, "lunch");
    strcpy(r.layers[0].source, "city");
    r.layers[0].fen = 600;
    strcpy(r.layers[1].source, "district");
    r.layers[1].fen = 500;
    strcpy(r.operator_id, "1001");
    return r;
}

static const char *field_of(const yn_ledger_record *r)
{
    yn_rules_fault f = {0};
    return yn_rules_record(r, &f) == YN_OK ? "ok" : f.field;
}

static void test_records(void **state)
{
    (void)state;
    yn_ledger_record m = meal(), r;
    assert_string_equal(field_of(&m), "ok");
    r = m;
    r.price_fen = r.cash_fen = -1000000;
    r.subsidy_fen = r.wallet_fen = r.n_layers = 0;
    assert_string_equal(field_of(&r), "price_fen");
    r = m;
    r.cash_fen += 1;
    assert_string_equal(field_of(&r), "price_fen"); /* shares do not add up */
    r = m;
    r.layers[1].fen += 1;
    assert_string_equal(field_of(&r), "subsidy_fen");
    r = m;
    r.seq = 0;
    assert_string_equal(field_of(&r), "seq");
    r = m;
    r.card_prev_seq = 5;
    assert_string_equal(field_of(&r), "card_prev_seq");
    r = m;
    r.weight_g = -1;
    assert_string_equal(field_of(&r), "weight_g");
    r = m;
    r.utc_s = -1;
    assert_string_equal(field_of(&r), "utc_s");
    r = m;
    strcpy(r.operator_id, "op 1");
    assert_string_equal(field_of(&r), "operator");
    r = m;
    strcpy(r.ref, "A-1");
    assert_string_equal(field_of(&r), "ref");

    /* the undo of the meal: every share negated, no tap id, names the meal */
    yn_ledger_record u = m;
    u.seq = 9;
    u.kind = YN_LEDGER_REVERSAL;
    u.tap_id = 0;
    u.reverses_seq = 5;
    u.price_fen = -1500;
    u.subsidy_fen = -1100;
    u.wallet_fen = -300;
    u.cash_fen = -100;
    u.layers[0].fen = -600;
    u.layers[1].fen = -500;
    assert_string_equal(field_of(&u), "ok");
    assert_int_equal(yn_rules_undo(&u, &m, NULL), YN_OK);
    r = u;
    r.reverses_seq = 0;
    assert_string_equal(field_of(&r), "reverses_seq");
    r = u;
    r.reverses_seq = 9;
    assert_string_equal(field_of(&r), "reverses_seq");
    r = u;
    r.price_fen = -1400;
    r.cash_fen = 0;
    yn_rules_fault f;
    assert_int_equal(yn_rules_undo(&r, &m, &f), YN_EINVAL);
    assert_string_equal(f.field, "price_fen");
    r = u;
    strcpy(r.card_no, "4403040002");
    assert_int_equal(yn_rules_undo(&r, &m, &f), YN_EINVAL);
    assert_string_equal(f.field, "card_no");
    assert_int_equal(yn_rules_undo(&u, &u, &f), YN_EINVAL); /* an undo of an undo */

    /* an allocation and a top-up as the ledger writes them */
    yn_ledger_record a = m;
    a.kind = YN_LEDGER_ALLOCATION;
    a.tap_id = 0;
    a.category[0] = a.period[0] = a.operator_id[0] = '\0';
    strcpy(a.ref, "A-2025-03-0001");
    a.price_fen = a.cash_fen = 0;
    a.n_layers = 1;
    a.subsidy_fen = a.layers[0].fen = 3000;
    a.wallet_fen = -3000;
    assert_string_equal(field_of(&a), "ok");
    a.ref[0] = '\0';
    assert_string_equal(field_of(&a), "ref");
    yn_ledger_record t = a;
    t.kind = YN_LEDGER_TOPUP;
    t.tap_id = 43;
    t.ref[0] = '\0';
    t.n_layers = 0;
    t.subsidy_fen = 0;
    t.cash_fen = 3000;
    assert_string_equal(field_of(&t), "ok");
    t.cash_fen = 100000001;
    t.wallet_fen = -100000001;
    assert_string_equal(field_of(&t), "wallet_fen");

    /* a stamp-missing notice: names the meal, no money, its cause in ref */
    yn_ledger_record n = m;
    n.seq = 9;
    n.kind = 5;
    n.tap_id = 0;
    n.reverses_seq = 5;
    n.price_fen = n.subsidy_fen = n.wallet_fen = n.cash_fen = 0;
    n.n_layers = 0;
    strcpy(n.ref, "card_gone");
    assert_string_equal(field_of(&n), "ok");
    r = n;
    r.cash_fen = r.price_fen = 100;
    assert_string_equal(field_of(&r), "price_fen");
    r = n;
    r.ref[0] = '\0';
    assert_string_equal(field_of(&r), "ref");
    r = n;
    r.reverses_seq = 0;
    assert_string_equal(field_of(&r), "reverses_seq");
}

/* How the holder was identified: only a meal otherwise than by its card; an
 * identity-only meal names a valid identifier, a manual one a supervisor and
 * an operator who differ; a card's record neither. */
static void test_identified(void **state)
{
    (void)state;
    yn_ledger_record m = meal(), r;
    r = m;
    r.by = YN_LEDGER_BY_IDENT;
    strcpy(r.ident, "A:04A1B2C3D4E5F6");
    assert_string_equal(field_of(&r), "ok");
    strcpy(r.ident, "A:04a1b2c3d4e5f6");
    assert_string_equal(field_of(&r), "ident");
    strcpy(r.ident, "B:1A2B3C4D");
    strcpy(r.supervisor_id, "2001");
    assert_string_equal(field_of(&r), "supervisor");
    r = m;
    r.by = YN_LEDGER_BY_MANUAL;
    strcpy(r.supervisor_id, "2001");
    assert_string_equal(field_of(&r), "ok");
    strcpy(r.supervisor_id, r.operator_id); /* one person both */
    assert_string_equal(field_of(&r), "operator");
    r.operator_id[0] = '\0';
    strcpy(r.supervisor_id, "2001");
    assert_string_equal(field_of(&r), "operator");
    strcpy(r.operator_id, "1001");
    strcpy(r.ident, "A:11223344");
    assert_string_equal(field_of(&r), "ident");
    r = m;
    strcpy(r.supervisor_id, "2001"); /* a card's record with a supervisor */
    assert_string_equal(field_of(&r), "supervisor");
    r = m;
    strcpy(r.ident, "A:11223344");
    assert_string_equal(field_of(&r), "ident");
    r = m;
    r.by = 4;
    assert_string_equal(field_of(&r), "identified");
    r = m; /* a top-up is identified by its card */
    r.kind = YN_LEDGER_TOPUP;
    r.by = YN_LEDGER_BY_MANUAL;
    strcpy(r.supervisor_id, "2001");
    assert_string_equal(field_of(&r), "price_fen"); /* its amounts first */
    assert_int_equal(yn_rules_identified(&r, NULL), YN_EINVAL);
}

static void test_entries(void **state)
{
    (void)state;
    yn_card_facts c = {.birth_ymd = 19400101,
                       .flags = 3,
                       .district = 440304,
                       .street = 440304001,
                       .expiry_ymd = 20301231};
    strcpy(c.card_no, "44030400100001");
    yn_rules_fault f;
    assert_int_equal(yn_rules_roster_card(&c, &f), YN_OK);
    c.birth_ymd = 0; /* use the card's */
    assert_int_equal(yn_rules_roster_card(&c, &f), YN_OK);
    c.flags = 0x80;
    assert_int_equal(yn_rules_roster_card(&c, &f), YN_EINVAL);
    assert_string_equal(f.field, "flags");
    c.flags = 1;
    c.street = 440305001;
    assert_int_equal(yn_rules_roster_card(&c, &f), YN_EINVAL);
    assert_string_equal(f.field, "street");
    c.street = 440304001;
    c.expiry_ymd = 20301232;
    assert_int_equal(yn_rules_roster_card(&c, &f), YN_EINVAL);
    assert_string_equal(f.field, "expiry_ymd");

    /* a binding: an identifier in its one spelling, and then a birth date */
    c.expiry_ymd = 20301231;
    c.birth_ymd = 19400101;
    strcpy(c.ident, "A:04A1B2C3D4E5F6");
    assert_int_equal(yn_rules_roster_card(&c, &f), YN_OK);
    c.birth_ymd = 0;
    assert_int_equal(yn_rules_roster_card(&c, &f), YN_EINVAL);
    assert_string_equal(f.field, "birth_ymd");
    c.birth_ymd = 19400101;
    strcpy(c.ident, "A:04A1B2");
    assert_int_equal(yn_rules_roster_card(&c, &f), YN_EINVAL);
    assert_string_equal(f.field, "ident");

    yn_ledger_blacklist_entry b = {.seq = 1, .lost = true};
    strcpy(b.card_no, "AB C");
    assert_int_equal(yn_rules_blacklist(&b, &f), YN_EINVAL);
    assert_string_equal(f.field, "card_no");
    b.card_no[0] = '\0'; /* by identifier */
    strcpy(b.ident, "B:1A2B3C4D");
    assert_int_equal(yn_rules_blacklist(&b, &f), YN_OK);
    strcpy(b.card_no, "4403040001"); /* not both */
    assert_int_equal(yn_rules_blacklist(&b, &f), YN_EINVAL);
    assert_string_equal(f.field, "ident");
    b.card_no[0] = '\0';
    strcpy(b.ident, "B:1a2b3c4d");
    assert_int_equal(yn_rules_blacklist(&b, &f), YN_EINVAL);
    assert_string_equal(f.field, "ident");
    b.ident[0] = '\0'; /* neither */
    assert_int_equal(yn_rules_blacklist(&b, &f), YN_EINVAL);
    assert_string_equal(f.field, "card_no");

    yn_ledger_alloc a = {.amount_fen = 100000000};
    strcpy(a.id, "A-1");
    strcpy(a.card_no, "44030400100001");
    strcpy(a.source, "district");
    assert_int_equal(yn_rules_alloc(&a, &f), YN_OK);
    a.amount_fen = 1000000000;
    assert_int_equal(yn_rules_alloc(&a, &f), YN_EINVAL);
    assert_string_equal(f.field, "amount_fen");
    a.amount_fen = 0;
    assert_int_equal(yn_rules_alloc(&a, &f), YN_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),     cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_parse_int),  cmocka_unit_test(test_kind_table),
        cmocka_unit_test(test_records),    cmocka_unit_test(test_entries),
        cmocka_unit_test(test_identified),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
