/* audio.h — the voice: short prompt clips played in sequence. A phrase is a
 * list of clip names ("yu_e", "9", "shi", "5", "dian", "5", "yuan"); the
 * firmware composes them, backends play them. */
#ifndef YN_HAL_AUDIO_H
#define YN_HAL_AUDIO_H

#include <stddef.h>

#include "status.h"

struct yn_config;

#define YN_PHRASE_MAX 32

typedef struct yn_phrase {
    int n;
    const char *clips[YN_PHRASE_MAX]; /* clip names, static strings */
} yn_phrase;

typedef struct yn_audio yn_audio;

typedef struct yn_audio_ops {
    const char *name;
    int (*open)(yn_audio *dev, const struct yn_config *cfg);
    void (*close)(yn_audio *dev);
    /* Start playing; does not wait for the end. */
    int (*say)(yn_audio *dev, const yn_phrase *phrase);
} yn_audio_ops;

struct yn_audio {
    const yn_audio_ops *ops;
    void *priv;
};

int yn_audio_open(yn_audio *dev, const struct yn_config *cfg) YN_MUST_CHECK;
void yn_audio_close(yn_audio *dev);
int yn_audio_say(yn_audio *dev, const yn_phrase *phrase) YN_MUST_CHECK;
void yn_phrase_add(yn_phrase *p, const char *clip);

/* silent backend: plays nothing, remembers the last phrase for tests. */
extern const yn_audio_ops yn_audio_silent_ops;
const yn_phrase *yn_audio_silent_last(const yn_audio *dev);

#endif
