/* audio_silent.c — a voice that says nothing but remembers the last phrase
 * (for tests, and for boards without a speaker). */
#include <stdlib.h>

#include "audio.h"
#include "log.h"

static int silent_open(yn_audio *dev, const yn_audio_conf *cfg)
{
    (void)cfg;
    dev->priv = calloc(1, sizeof(yn_phrase));
    return dev->priv ? YN_OK : YN_ENOMEM;
}

static void silent_close(yn_audio *dev)
{
    free(dev->priv);
    dev->priv = NULL;
}

static int silent_say(yn_audio *dev, const yn_phrase *phrase)
{
    *(yn_phrase *)dev->priv = *phrase;
    return YN_OK;
}

const yn_audio_ops yn_audio_silent_ops = {
    .name = "silent",
    .open = silent_open,
    .close = silent_close,
    .say = silent_say,
};

const yn_phrase *yn_audio_silent_last(const yn_audio *dev)
{
    return dev->priv;
}
