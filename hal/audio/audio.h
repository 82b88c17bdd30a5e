/* audio.h — the voice: short prompt clips played in sequence. A phrase is a
 * list of clip names ("yu_e", "9", "shi", "5", "dian", "5", "yuan"); the
 * firmware composes them, backends play them. */
#ifndef YN_HAL_AUDIO_H
#define YN_HAL_AUDIO_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hal_conf.h"
#include "status.h"

/* [audio] of board.conf. */
typedef struct yn_audio_conf {
    char backend[YN_BACKEND_MAX];
    char device[YN_DEV_MAX];  /* ALSA device name */
    char clips_dir[PATH_MAX]; /* prompt clips */
    int volume_pct;
} yn_audio_conf;

#define YN_PHRASE_MAX 32

typedef struct yn_phrase {
    int n;
    const char *clips[YN_PHRASE_MAX]; /* clip names, static strings */
} yn_phrase;

typedef struct yn_audio yn_audio;

typedef struct yn_audio_ops {
    const char *name;
    int (*open)(yn_audio *dev, const yn_audio_conf *cfg);
    void (*close)(yn_audio *dev);
    /* Start playing; does not wait for the end. */
    int (*say)(yn_audio *dev, const yn_phrase *phrase);
} yn_audio_ops;

struct yn_audio {
    const yn_audio_ops *ops;
    void *priv;
};

int yn_audio_open(yn_audio *dev, const yn_audio_conf *cfg) YN_MUST_CHECK;
void yn_audio_close(yn_audio *dev);
int yn_audio_say(yn_audio *dev, const yn_phrase *phrase) YN_MUST_CHECK;
void yn_phrase_add(yn_phrase *p, const char *clip);

/* silent backend: plays nothing, remembers the last phrase for tests. */
extern const yn_audio_ops yn_audio_silent_ops;
const yn_phrase *yn_audio_silent_last(const yn_audio *dev);

/* alsa backend: clips played and missing so far, and whether it is speaking. */
extern const yn_audio_ops yn_audio_alsa_ops;
int yn_audio_alsa_stats(yn_audio *dev, int *played, int *missing, bool *busy) YN_MUST_CHECK;
/* A RIFF/WAVE file of 16 kHz mono 16-bit PCM into malloc'd samples. */
int yn_wav_parse(const uint8_t *buf, size_t len, int16_t **samples, size_t *n,
                 const char **why) YN_MUST_CHECK;

#endif
