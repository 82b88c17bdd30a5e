/* test_card_cache.c — the verified-record cache (firmware/core/card_cache.c): hits
 * within the TTL, the file form that outlives a restart, and every way a file
 * could carry something it should not: an altered record, a record moved to
 * another UID, entries too old or dated in the future, a truncated or foreign
 * file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "card.h"
#include "card_cache.h"
#include "cardfix.h"

#define NOW_UTC  1796290000LL /* 2026-12-03 */
#define DAY_MS   (86400LL * 1000)
#define ENTRY_AT 8 /* first entry in the file */

static yn_cardfix fix;
static yn_sim_card cards[3];
static uint8_t file[YN_CARD_CACHE_FILE_MAX];

static int group_setup(void **state)
{
    (void)state;
    yn_cardfix_init(&fix);
    yn_cardfix_card(&fix, &cards[0], 1, "4403040001", 19400101, 0, 440304001);
    yn_cardfix_card(&fix, &cards[1], 2, "4403040002", 19250606, 1, 440304002);
    yn_cardfix_card(&fix, &cards[2], 3, "4403040003", 19500505, 2, 440304001);
    return 0;
}

/* A cache holding the three cards, verified now_ms - age_ms[i] ago. */
static void fill(yn_card_cache *c, int64_t now_ms, const int64_t age_ms[3])
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < 3; i++) {
        yn_card_record rec;
        const char *why;
        assert_int_equal(yn_card_read(cards[i].record, cards[i].record_len, cards[i].tag.uid,
                                      cards[i].tag.uid_len, &fix.ring, &rec, &why),
                         YN_OK);
        yn_card_cache_put(c, cards[i].tag.uid, cards[i].tag.uid_len, &rec, now_ms - age_ms[i]);
    }
}

static void test_find_within_ttl(void **state)
{
    (void)state;
    static yn_card_cache c;
    static const int64_t ages[3] = {0, 0, 0};
    fill(&c, 1000, ages);
    assert_true(c.dirty);
    const yn_card_record *r = yn_card_cache_find(&c, cards[1].tag.uid, cards[1].tag.uid_len, 1000);
    assert_non_null(r);
    assert_string_equal(r->card_no, "4403040002");
    assert_non_null(yn_card_cache_find(&c, cards[1].tag.uid, cards[1].tag.uid_len,
                                       1000 + YN_CARD_CACHE_TTL_MS - 1));
    assert_null(yn_card_cache_find(&c, cards[1].tag.uid, cards[1].tag.uid_len,
                                   1000 + YN_CARD_CACHE_TTL_MS));
    assert_int_equal(c.hits, 2);
    assert_int_equal(c.misses, 1);
}

/* Written by one run of the terminal, read by the next one (another boot:
 * the monotonic clock starts again), with the ages carried by the wall clock. */
static void test_survives_a_restart(void **state)
{
    (void)state;
    static yn_card_cache before, after;
    static const int64_t ages[3] = {0, 5 * DAY_MS, 29 * DAY_MS};
    fill(&before, 40 * DAY_MS, ages);
    size_t len;
    assert_int_equal(yn_card_cache_encode(&before, 40 * DAY_MS, NOW_UTC, file, sizeof file, &len),
                     YN_OK);
    assert_false(before.dirty);
    int kept, dropped;
    memset(&after, 0, sizeof after);
    /* the next morning: 12 hours later, the board booted 10 s ago */
    assert_int_equal(yn_card_cache_decode(&after, file, len, &fix.ring, 10000, NOW_UTC + 12 * 3600,
                                          &kept, &dropped),
                     YN_OK);
    assert_int_equal(kept, 3);
    assert_int_equal(dropped, 0);
    for (int i = 0; i < 3; i++)
        assert_non_null(yn_card_cache_find(&after, cards[i].tag.uid, cards[i].tag.uid_len, 10000));
    /* 29.5 days old by then: the third one expires first */
    assert_null(yn_card_cache_find(&after, cards[2].tag.uid, cards[2].tag.uid_len,
                                   10000 + DAY_MS / 2 + 1000));
    /* two weeks later the file is read again: the 29-day entry is left out */
    memset(&after, 0, sizeof after);
    assert_int_equal(yn_card_cache_decode(&after, file, len, &fix.ring, 10000, NOW_UTC + 14 * 86400,
                                          &kept, &dropped),
                     YN_OK);
    assert_int_equal(kept, 2);
    assert_int_equal(dropped, 1);
    assert_null(yn_card_cache_find(&after, cards[2].tag.uid, cards[2].tag.uid_len, 10000));
}

/* Bytes on disk can be changed by whoever holds the disk: nothing changed
 * is believed, since each record's issuer signature is checked again. */
static void test_altered_file_yields_nothing_false(void **state)
{
    (void)state;
    static yn_card_cache c, d;
    static const int64_t ages[3] = {0, 0, 0};
    fill(&c, 1000, ages);
    size_t len;
    assert_int_equal(yn_card_cache_encode(&c, 1000, NOW_UTC, file, sizeof file, &len), YN_OK);
    size_t entry = 1 + YN_CARD_UID_MAX + 9 + 116;
    assert_int_equal(len, ENTRY_AT + 3 * entry);
    int kept, dropped;
    /* a category bit set in the second record (record byte 31) */
    file[ENTRY_AT + entry + 1 + YN_CARD_UID_MAX + 9 + 31] ^= 0x02;
    /* the third record moved to the first card's UID */
    memcpy(file + ENTRY_AT + 2 * entry + 1, cards[0].tag.uid, cards[0].tag.uid_len);
    /* the first one dated tomorrow */
    file[ENTRY_AT + 1 + YN_CARD_UID_MAX + 5] ^= 0x02;
    memset(&d, 0, sizeof d);
    assert_int_equal(yn_card_cache_decode(&d, file, len, &fix.ring, 1000, NOW_UTC, &kept, &dropped),
                     YN_OK);
    assert_int_equal(kept, 0);
    assert_int_equal(dropped, 3);
    for (int i = 0; i < 3; i++)
        assert_null(yn_card_cache_find(&d, cards[i].tag.uid, cards[i].tag.uid_len, 1000));
}

static void test_damaged_file_is_refused(void **state)
{
    (void)state;
    static yn_card_cache c, d;
    static const int64_t ages[3] = {0, 0, 0};
    fill(&c, 1000, ages);
    size_t len;
    int kept, dropped;
    assert_int_equal(yn_card_cache_encode(&c, 1000, NOW_UTC, file, sizeof file, &len), YN_OK);
    for (size_t cut = 0; cut < len; cut += 7) {
        memset(&d, 0, sizeof d);
        assert_int_equal(
            yn_card_cache_decode(&d, file, cut, &fix.ring, 1000, NOW_UTC, &kept, &dropped),
            YN_ECORRUPT);
    }
    memset(&d, 0, sizeof d);
    static const uint8_t foreign[] = "SQLite format 3";
    assert_int_equal(yn_card_cache_decode(&d, foreign, sizeof foreign, &fix.ring, 1000, NOW_UTC,
                                          &kept, &dropped),
                     YN_ECORRUPT);
    assert_int_equal(yn_card_cache_encode(&c, 1000, NOW_UTC, file, 20, &len), YN_ELIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_within_ttl),
        cmocka_unit_test(test_survives_a_restart),
        cmocka_unit_test(test_altered_file_yields_nothing_false),
        cmocka_unit_test(test_damaged_file_is_refused),
    };
    return cmocka_run_group_tests_name("card_cache", tests, group_setup, NULL);
}
