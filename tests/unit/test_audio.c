/* test_audio.c — the ALSA voice on ALSA's "null" device: the shipped clips
 * parse and play, a missing clip is skipped and counted, a new phrase cuts
 * the old one, bad WAV files are refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audio.h"
#include "config.h"
#include "testutil.h"
#include "voice.h"

static void open_alsa(yn_audio *a)
{
    yn_config cfg;
    yn_config_defaults(&cfg);
    snprintf(cfg.audio.backend, sizeof cfg.audio.backend, "alsa");
    snprintf(cfg.audio.device, sizeof cfg.audio.device, "null");
    snprintf(cfg.audio.clips_dir, sizeof cfg.audio.clips_dir, "%s/firmware/clips",
             yn_test_srcdir());
    assert_int_equal(yn_audio_open(a, &cfg.audio), YN_OK);
}

static void wait_idle(yn_audio *a, int *played, int *missing)
{
    bool busy = true;
    for (int i = 0; i < 600 && busy; i++) {
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
        assert_int_equal(yn_audio_alsa_stats(a, played, missing, &busy), YN_OK);
    }
    assert_false(busy);
}

/* ALSA playback from a worker thread hangs under qemu-user (checked with a
 * ten-line program: the same calls work on the main thread); natively, in
 * make check, these tests run. tests/run-unit sets YN_CROSS under qemu. */
static bool under_qemu(void)
{
    return yn_test_under_qemu("ALSA playback from a thread does not run there");
}

static void test_amount_phrase_plays(void **state)
{
    (void)state;
    if (under_qemu())
        skip();
    yn_audio a;
    int played, missing;
    open_alsa(&a);
    yn_phrase p = {0};
    yn_phrase_add(&p, "yu_e");
    yn_voice_amount(&p, 9550); /* 余额 九十五点五元 */
    yn_phrase_add(&p, "no_such_clip");
    assert_int_equal(p.n, 8);
    assert_int_equal(yn_audio_say(&a, &p), YN_OK);
    wait_idle(&a, &played, &missing);
    assert_int_equal(played, 7);
    assert_int_equal(missing, 1);
    yn_audio_close(&a);
}

static void test_every_shipped_clip_is_playable(void **state)
{
    (void)state;
    char path[600];
    for (int i = 0; yn_voice_clips[i]; i++) {
        snprintf(path, sizeof path, "%s/firmware/clips/%s.wav", yn_test_srcdir(),
                 yn_voice_clips[i]);
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        static uint8_t buf[1 << 20];
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        int16_t *s;
        size_t n;
        const char *why = "";
        assert_int_equal(yn_wav_parse(buf, len, &s, &n, &why), YN_OK);
        assert_true(n > 1600);       /* at least 0.1 s */
        assert_true(n < 16000 * 10); /* at most 10 s */
        free(s);
    }
}

static void test_bad_wav_refused(void **state)
{
    (void)state;
    int16_t *s;
    size_t n;
    const char *why = "";
    uint8_t hdr[44] = "RIFF\0\0\0\0WAVEfmt \x10\0\0\0\x01\0\x02\0";
    assert_int_equal(yn_wav_parse((const uint8_t *)"hello", 5, &s, &n, &why), YN_EINVAL);
    assert_string_equal(why, "not a RIFF/WAVE file");
    assert_int_equal(yn_wav_parse(hdr, sizeof hdr, &s, &n, &why), YN_EINVAL);
    assert_non_null(strstr(why, "16 kHz mono"));
    memcpy(hdr + 12, "data\xff\0\0\0", 8);
    assert_int_equal(yn_wav_parse(hdr, 20, &s, &n, &why), YN_EINVAL);
    assert_non_null(strstr(why, "past the end"));
}

static void test_missing_device(void **state)
{
    (void)state;
    if (under_qemu())
        skip();
    yn_config cfg;
    yn_config_defaults(&cfg);
    snprintf(cfg.audio.backend, sizeof cfg.audio.backend, "alsa");
    snprintf(cfg.audio.device, sizeof cfg.audio.device, "hw:CARD=NoSuchCard");
    yn_audio a;
    assert_int_equal(yn_audio_open(&a, &cfg.audio), YN_ENODEV);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amount_phrase_plays),
        cmocka_unit_test(test_every_shipped_clip_is_playable),
        cmocka_unit_test(test_bad_wav_refused),
        cmocka_unit_test(test_missing_device),
    };
    return cmocka_run_group_tests_name("audio", tests, NULL, NULL);
}
