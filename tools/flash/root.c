/* root.c — the installation root on disk: its lock, the slot state file,
 * the current link, and recovering a state from the link alone. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "flash.h"
#include "fileio.h"
#include "log.h"
#include "timeutil.h"

int yn_fl_root_path(const struct yn_fl_opts *o, char *out, size_t cap, const char *rel)
{
    if (yn_fl_pathf(out, cap, "%s/%s", o->root, rel) != YN_OK)
        return yn_fl_fail(YN_ELIMIT, "path under %s is too long", o->root);
    return YN_OK;
}

int yn_fl_slot_dir(const struct yn_fl_opts *o, int slot, char *out, size_t cap)
{
    char rel[16];
    snprintf(rel, sizeof rel, "slots/%c", yn_slot_name(slot));
    return yn_fl_root_path(o, out, cap, rel);
}

void yn_fl_config_path(const struct yn_fl_opts *o, char *out, size_t cap)
{
    if (o->config)
        snprintf(out, cap, "%s", o->config);
    else if (yn_fl_root_path(o, out, cap, "etc/board.conf") != YN_OK)
        out[0] = '\0';
}

/* One yinian-flash at a time works on a root (the lock goes with the process,
 * so a killed one does not leave it held). Waits up to 30 s. */
int yn_fl_lock_root(const struct yn_fl_opts *o, int *fd)
{
    char path[PATH_MAX];
    if (yn_fl_mkdir_p(o->root, 0755) != YN_OK ||
        yn_fl_root_path(o, path, sizeof path, ".lock") != YN_OK)
        return YN_EIO;
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)
        return yn_fl_fail(YN_EIO, "cannot open %s: %s", path, strerror(errno));
    for (int waited = 0; flock(*fd, LOCK_EX | LOCK_NB) != 0; waited += 100) {
        if (waited >= 30000) {
            close(*fd);
            return yn_fl_fail(
                YN_EBUSY, "another yinian-flash is working on %s: wait for it to finish", o->root);
        }
        yn_time_sleep_ms(100);
    }
    return YN_OK;
}

/* Load ROOT/state. *found = false (and an empty state) when there is none. */
int yn_fl_state_load(const struct yn_fl_opts *o, yn_slots *st, bool *found)
{
    char path[PATH_MAX], err[256];
    char *text;
    size_t len;
    memset(st, 0, sizeof *st);
    st->active = -1;
    *found = false;
    if (yn_fl_root_path(o, path, sizeof path, "state") != YN_OK)
        return YN_ELIMIT;
    int rc = yn_file_read_all(path, 16384, &text, &len);
    if (rc == YN_ENOENT)
        return YN_OK;
    if (rc != YN_OK)
        return yn_fl_fail(rc, "cannot read %s: %s", path, yn_strerror(rc));
    rc = yn_slots_parse(text, len, st, err, sizeof err);
    free(text);
    if (rc != YN_OK)
        return yn_fl_fail(rc, "%s: %s", path, err);
    *found = true;
    return YN_OK;
}

/* Write ROOT/state atomically: each call is one durable step. */
int yn_fl_state_save(const struct yn_fl_opts *o, const yn_slots *st, const char *what)
{
    char path[PATH_MAX], text[1024];
    size_t len;
    int rc = yn_fl_root_path(o, path, sizeof path, "state");
    if (rc == YN_OK)
        rc = yn_slots_format(st, text, sizeof text, &len);
    if (rc == YN_OK)
        rc = yn_file_write_atomic(path, text, len, 0644);
    if (rc != YN_OK)
        return yn_fl_fail(rc, "cannot write %s: %s", path, yn_strerror(rc));
    yn_fl_durable_step(what);
    return YN_OK;
}

/* Which slot ROOT/current points at: 0, 1, or -1 (absent or elsewhere). */
int yn_fl_current_slot(const struct yn_fl_opts *o)
{
    char path[PATH_MAX], target[64];
    if (yn_fl_root_path(o, path, sizeof path, "current") != YN_OK)
        return -1;
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0)
        return -1;
    target[n] = '\0';
    if (!strcmp(target, "slots/a"))
        return 0;
    if (!strcmp(target, "slots/b"))
        return 1;
    return -1;
}

/* Point ROOT/current at slot (a symlink made aside and renamed over the old
 * one: atomic). Nothing to do when it already points there. */
int yn_fl_link_current(const struct yn_fl_opts *o, int slot, const char *what)
{
    if (yn_fl_current_slot(o) == slot)
        return YN_OK;
    char link[PATH_MAX], tmp[PATH_MAX], target[16];
    snprintf(target, sizeof target, "slots/%c", yn_slot_name(slot));
    if (yn_fl_root_path(o, link, sizeof link, "current") != YN_OK ||
        yn_fl_root_path(o, tmp, sizeof tmp, "current.new") != YN_OK)
        return YN_ELIMIT;
    unlink(tmp);
    if (symlink(target, tmp) != 0)
        return yn_fl_fail(YN_EIO, "cannot make %s: %s", tmp, strerror(errno));
    int rc = yn_file_rename(tmp, link);
    if (rc != YN_OK)
        return yn_fl_fail(rc, "cannot point %s at %s: %s", link, target, yn_strerror(rc));
    yn_fl_durable_step(what);
    return YN_OK;
}

/* A board whose state file is missing or unreadable but whose current link
 * points at a slot (laid down by a factory image, or by hand): take that
 * slot as the confirmed one, the other as installed if it holds a manifest. */
int yn_fl_state_recover(const struct yn_fl_opts *o, yn_slots *st)
{
    int cur = yn_fl_current_slot(o);
    if (cur < 0)
        return YN_ENOENT;
    memset(st, 0, sizeof *st);
    for (int i = 0; i < 2; i++) {
        char dir[PATH_MAX], path[PATH_MAX + 16], err[256];
        char *text;
        size_t len;
        static yn_bundle_manifest m;
        if (yn_fl_slot_dir(o, i, dir, sizeof dir) != YN_OK)
            return YN_ELIMIT;
        snprintf(path, sizeof path, "%s/manifest.json", dir);
        if (yn_file_read_all(path, YN_BUNDLE_MANIFEST_MAX, &text, &len) != YN_OK)
            continue;
        if (yn_bundle_manifest_decode(text, len, &m, err, sizeof err) == YN_OK) {
            st->slot[i].status = i == cur ? YN_SLOT_CONFIRMED : YN_SLOT_INSTALLED;
            snprintf(st->slot[i].version, sizeof st->slot[i].version, "%s", m.version);
            st->slot[i].ledger_schema = m.ledger_schema;
        }
        free(text);
    }
    if (st->slot[cur].status != YN_SLOT_CONFIRMED)
        return YN_ENOENT;
    st->active = cur;
    yn_warn("%s: no usable state file: taking slot %c (%s), where current points, as "
            "confirmed",
            o->root, yn_slot_name(cur), st->slot[cur].version);
    return yn_fl_state_save(o, st, "state recovered");
}
