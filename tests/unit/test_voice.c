/* test_voice.c — amounts read the Chinese way; every clip has its text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "voice.h"

/* The phrase as text, e.g. "九十五点五元". */
static void text_of(const yn_phrase *p, char *buf, size_t len)
{
    buf[0] = '\0';
    for (int i = 0; i < p->n; i++) {
        const char *t = yn_voice_clip_text(p->clips[i]);
        assert_non_null(t);
        strncat(buf, t, len - strlen(buf) - 1);
    }
}

static void test_amounts(void **state)
{
    (void)state;
    static const struct {
        int64_t fen;
        const char *reading;
    } cases[] = {
        {0, "零元"},
        {5, "零点零五元"},
        {50, "零点五元"},
        {100, "一元"},
        {1000, "十元"},
        {1500, "十五元"},
        {1550, "十五点五元"},
        {9550, "九十五点五元"},
        {2000, "二十元"},
        {10000, "一百元"},
        {10500, "一百零五元"},
        {11000, "一百一十元"},
        {100100, "一千零一元"},
        {101000, "一千零一十元"},
        {120000, "一千二百元"},
        {1000000, "一万元"},
        {1000500, "一万零五元"},
        {1010000, "一万零一百元"},
        {2345678, "二万三千四百五十六点七八元"},
        {-1500, "十五元"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        yn_phrase p = {0};
        char text[256];
        yn_voice_amount(&p, cases[i].fen);
        text_of(&p, text, sizeof text);
        if (strcmp(text, cases[i].reading) != 0)
            fprintf(stderr, "%lld fen: got %s, want %s\n", (long long)cases[i].fen, text,
                    cases[i].reading);
        assert_string_equal(text, cases[i].reading);
    }
}

static void test_every_clip_and_reason_has_text(void **state)
{
    (void)state;
    int n = 0;
    for (int i = 0; yn_voice_clips[i]; i++, n++)
        assert_non_null(yn_voice_clip_text(yn_voice_clips[i]));
    assert_true(n >= 30);
    for (int r = 0; r < YN_REASON_COUNT; r++) {
        yn_phrase p = {0};
        yn_voice_reason(&p, (enum yn_reason)r);
        assert_int_equal(p.n, 1);
        assert_string_equal(yn_voice_clip_text(p.clips[0]),
                            r == YN_REASON_NONE ? "祝您用餐愉快" : yn_voice_clip_text(p.clips[0]));
    }
    yn_phrase p = {0};
    yn_voice_reason(&p, YN_REASON_LOST);
    assert_string_equal(yn_voice_clip_text(p.clips[0]), "这张卡已挂失，请联系工作人员");
    assert_null(yn_voice_clip_text("nonsense"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amounts),
        cmocka_unit_test(test_every_clip_and_reason_has_text),
    };
    return cmocka_run_group_tests_name("voice", tests, NULL, NULL);
}
