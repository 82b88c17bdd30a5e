/* out.c — what yinian-flash tells the technician: steps and failures on
 * stderr (JSON events with --json), progress lines, and the durable steps the
 * crash tests kill it after (YN_FLASH_STOP_AT). */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "flash.h"

struct yn_fl_out yn_fl;

/* Write one JSON object as a line on stdout (takes the reference). */
void yn_fl_emit(json_t *o)
{
    if (!o)
        return;
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s) {
        puts(s);
        fflush(stdout);
        free(s);
    }
    json_decref(o);
}

void yn_fl_end_progress_line(void)
{
    if (yn_fl.progress_on) {
        fputc('\n', stderr);
        yn_fl.progress_on = false;
    }
}

/* A step the technician may want to follow (stderr; a JSON event with --json). */
void yn_fl_say(const char *step, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (yn_fl.json) {
        yn_fl_emit(json_pack("{s:s, s:s, s:s}", "event", "step", "step", step, "message", msg));
        return;
    }
    yn_fl_end_progress_line();
    fprintf(stderr, "yinian-flash: %s\n", msg);
}

/* Report a failure (always on stderr) and return code. */
int yn_fl_fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(yn_fl.error, sizeof yn_fl.error, fmt, ap);
    va_end(ap);
    yn_fl_end_progress_line();
    fprintf(stderr, "yinian-flash %s: %s\n", yn_fl.command ? yn_fl.command : "", yn_fl.error);
    return code;
}

/* Bytes written on a long step: a line redrawn on a terminal, events with
 * --json (one per percent), nothing otherwise. */
void yn_fl_progress_add(struct yn_fl_progress *p, uint64_t bytes)
{
    p->done += bytes;
    int pct = p->total ? (int)(p->done * 100 / p->total) : 100;
    if (pct == p->last_pct)
        return;
    p->last_pct = pct;
    if (yn_fl.json) {
        yn_fl_emit(json_pack("{s:s, s:s, s:s, s:I, s:I, s:i}", "event", "progress", "step", p->step,
                             "file", p->file ? p->file : "", "bytes", (json_int_t)p->done, "total",
                             (json_int_t)p->total, "percent", pct));
    } else if (yn_fl.tty) {
        fprintf(stderr, "\r  %-7s %-28.28s %8" PRIu64 " / %" PRIu64 " KiB %3d%%", p->step,
                p->file ? p->file : "", p->done / 1024, p->total / 1024, pct);
        yn_fl.progress_on = true;
        if (p->done >= p->total)
            yn_fl_end_progress_line();
    }
}

/* One durable step is done. The crash tests set YN_FLASH_STOP_AT=N to be
 * killed right here, as a power cut would, after the N-th one. */
void yn_fl_durable_step(const char *what)
{
    yn_fl.steps++;
    if (yn_fl.stop_at > 0 && yn_fl.steps == yn_fl.stop_at) {
        yn_fl_end_progress_line();
        fprintf(stderr, "yinian-flash: YN_FLASH_STOP_AT=%ld: killed after step %ld (%s)\n",
                yn_fl.stop_at, yn_fl.steps, what);
        fflush(stderr);
        raise(SIGKILL);
    }
}
