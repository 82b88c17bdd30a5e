/* audio.c — dispatch to the voice backend, and phrase building. */
#include "audio.h"

#include "hal.h"
#include "log.h"

int yn_audio_open(yn_audio *dev, const yn_audio_conf *cfg)
{
    dev->priv = NULL;
    dev->ops = yn_hal_find(YN_HAL_AUDIO, cfg->backend);
    if (!dev->ops)
        return YN_ENODEV;
    int rc = dev->ops->open(dev, cfg);
    if (rc != YN_OK) {
        yn_err("audio: %s backend on '%s' failed to open: %s", dev->ops->name, cfg->device,
               yn_strerror(rc));
        dev->ops = NULL;
    }
    return rc;
}

void yn_audio_close(yn_audio *dev)
{
    if (dev->ops && dev->ops->close)
        dev->ops->close(dev);
    dev->ops = NULL;
}

int yn_audio_say(yn_audio *dev, const yn_phrase *phrase)
{
    return dev->ops ? dev->ops->say(dev, phrase) : YN_ENODEV;
}

void yn_phrase_add(yn_phrase *p, const char *clip)
{
    if (p->n < YN_PHRASE_MAX)
        p->clips[p->n++] = clip;
}
