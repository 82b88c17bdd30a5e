/* audio_alsa.c — the voice through ALSA: phrases are sequences of WAV clips
 * (16 kHz mono 16-bit PCM, made by tools/make-clips) from [audio] clips_dir,
 * played by a worker thread so the terminal loop never waits for speech. A
 * new phrase cuts the one still playing (the next diner matters more). Clips
 * are loaded on first use and kept. */
#include <alsa/asoundlib.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"
#include "log.h"

#define RATE_HZ        16000
#define MAX_CLIPS      64
#define MAX_CLIP_BYTES (4 * 1024 * 1024)

struct clip {
    const char *name; /* static string from the phrase */
    int16_t *samples; /* NULL: missing or unreadable (logged once) */
    size_t n_samples;
};

struct alsa {
    snd_pcm_t *pcm;
    char dir[PATH_MAX];
    int volume_pct;
    pthread_t worker;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    yn_phrase pending; /* next phrase to play */
    bool has_pending, stop, cut;
    bool playing; /* the worker is on a phrase */
    struct clip clips[MAX_CLIPS];
    int n_clips;
    int played, missing; /* clips played / clips that could not be found (for diagnostics) */
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int yn_wav_parse(const uint8_t *buf, size_t len, int16_t **samples, size_t *n, const char **why)
{
    *samples = NULL;
    *n = 0;
    if (len < 12 || memcmp(buf, "RIFF", 4) != 0 || memcmp(buf + 8, "WAVE", 4) != 0) {
        *why = "not a RIFF/WAVE file";
        return YN_EINVAL;
    }
    bool fmt_ok = false;
    for (size_t off = 12; off + 8 <= len;) {
        uint32_t size = le32(buf + off + 4);
        if (size > len - off - 8) {
            *why = "chunk runs past the end of the file";
            return YN_EINVAL;
        }
        const uint8_t *body = buf + off + 8;
        if (memcmp(buf + off, "fmt ", 4) == 0) {
            if (size < 16 || (body[0] | body[1] << 8) != 1 || (body[2] | body[3] << 8) != 1 ||
                le32(body + 4) != RATE_HZ || (body[14] | body[15] << 8) != 16) {
                *why = "not 16 kHz mono 16-bit PCM (remake it with tools/make-clips)";
                return YN_EINVAL;
            }
            fmt_ok = true;
        } else if (memcmp(buf + off, "data", 4) == 0) {
            if (!fmt_ok) {
                *why = "data before the format chunk";
                return YN_EINVAL;
            }
            *n = size / 2;
            *samples = malloc(*n * sizeof **samples + 1);
            if (!*samples)
                return YN_ENOMEM;
            for (size_t i = 0; i < *n; i++)
                (*samples)[i] = (int16_t)(uint16_t)(body[2 * i] | body[2 * i + 1] << 8);
            return YN_OK;
        }
        off += 8 + size + (size & 1);
    }
    *why = "no data chunk";
    return YN_EINVAL;
}

/* The samples of a clip, loading it on first use. Called by the worker only. */
static const struct clip *clip_get(struct alsa *a, const char *name)
{
    for (int i = 0; i < a->n_clips; i++)
        if (strcmp(a->clips[i].name, name) == 0)
            return &a->clips[i];
    if (a->n_clips >= MAX_CLIPS)
        return NULL;
    struct clip *c = &a->clips[a->n_clips++];
    c->name = name;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s.wav", a->dir, name);
    FILE *f = fopen(path, "rb");
    uint8_t *buf = malloc(MAX_CLIP_BYTES);
    size_t len = f && buf ? fread(buf, 1, MAX_CLIP_BYTES, f) : 0;
    const char *why = "cannot read the file";
    if (!f || !len || yn_wav_parse(buf, len, &c->samples, &c->n_samples, &why) != YN_OK)
        yn_warn("audio: clip '%s': %s", path, why);
    if (f)
        fclose(f);
    free(buf);
    return c;
}

static void play(struct alsa *a, const struct clip *c)
{
    enum { CHUNK = 1600 }; /* 100 ms: a new phrase cuts in within that */
    int16_t out[CHUNK];
    for (size_t pos = 0; pos < c->n_samples;) {
        pthread_mutex_lock(&a->lock);
        bool cut = a->cut || a->stop;
        pthread_mutex_unlock(&a->lock);
        if (cut)
            return;
        size_t n = c->n_samples - pos < CHUNK ? c->n_samples - pos : CHUNK;
        for (size_t i = 0; i < n; i++)
            out[i] = (int16_t)(c->samples[pos + i] * a->volume_pct / 100);
        snd_pcm_sframes_t w = snd_pcm_writei(a->pcm, out, n);
        if (w < 0)
            w = snd_pcm_recover(a->pcm, (int)w, 1);
        if (w < 0) {
            yn_warn("audio: playback failed: %s", snd_strerror((int)w));
            return;
        }
        pos += n;
    }
}

static void *worker(void *arg)
{
    struct alsa *a = arg;
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        if (!a->has_pending) {
            pthread_cond_wait(&a->wake, &a->lock);
            continue;
        }
        yn_phrase p = a->pending;
        a->has_pending = false;
        a->cut = false;
        a->playing = true;
        pthread_mutex_unlock(&a->lock);
        for (int i = 0; i < p.n; i++) {
            const struct clip *c = clip_get(a, p.clips[i]);
            if (!c || !c->samples) {
                pthread_mutex_lock(&a->lock);
                a->missing++;
                pthread_mutex_unlock(&a->lock);
                continue;
            }
            play(a, c);
            pthread_mutex_lock(&a->lock);
            bool cut = a->cut || a->stop;
            a->played += !cut;
            pthread_mutex_unlock(&a->lock);
            if (cut)
                break;
        }
        snd_pcm_drain(a->pcm);
        pthread_mutex_lock(&a->lock);
        a->playing = false;
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

static int alsa_open(yn_audio *dev, const yn_audio_conf *cfg)
{
    struct alsa *a = calloc(1, sizeof *a);
    if (!a)
        return YN_ENOMEM;
    snprintf(a->dir, sizeof a->dir, "%s", cfg->clips_dir);
    a->volume_pct = cfg->volume_pct;
    int err = snd_pcm_open(&a->pcm, cfg->device, SND_PCM_STREAM_PLAYBACK, 0);
    if (err == 0)
        err = snd_pcm_set_params(a->pcm, SND_PCM_FORMAT_S16_LE, SND_PCM_ACCESS_RW_INTERLEAVED, 1,
                                 RATE_HZ, 1, 200000);
    if (err < 0) {
        yn_err("audio: cannot open ALSA device '%s': %s", cfg->device, snd_strerror(err));
        if (a->pcm)
            snd_pcm_close(a->pcm);
        free(a);
        return YN_ENODEV;
    }
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->wake, NULL);
    if (pthread_create(&a->worker, NULL, worker, a) != 0) {
        snd_pcm_close(a->pcm);
        free(a);
        return YN_ENOMEM;
    }
    dev->priv = a;
    return YN_OK;
}

static void alsa_close(yn_audio *dev)
{
    struct alsa *a = dev->priv;
    pthread_mutex_lock(&a->lock);
    a->stop = true;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->worker, NULL);
    snd_pcm_close(a->pcm);
    for (int i = 0; i < a->n_clips; i++)
        free(a->clips[i].samples);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->wake);
    free(a);
    dev->priv = NULL;
}

static int alsa_say(yn_audio *dev, const yn_phrase *phrase)
{
    struct alsa *a = dev->priv;
    pthread_mutex_lock(&a->lock);
    a->pending = *phrase;
    a->has_pending = true;
    a->cut = true; /* stop what is playing */
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
    return YN_OK;
}

int yn_audio_alsa_stats(yn_audio *dev, int *played, int *missing, bool *busy)
{
    struct alsa *a = dev->priv;
    pthread_mutex_lock(&a->lock);
    *played = a->played;
    *missing = a->missing;
    *busy = a->has_pending || a->playing;
    pthread_mutex_unlock(&a->lock);
    return YN_OK;
}

const yn_audio_ops yn_audio_alsa_ops = {
    .name = "alsa",
    .open = alsa_open,
    .close = alsa_close,
    .say = alsa_say,
};
