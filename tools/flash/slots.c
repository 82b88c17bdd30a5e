/* slots.c — the A/B slot state machine (pure): the state file, install and
 * rollback decisions, the start of a new slot. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slots.h"

#define SET_ERR(...) ((void)(err && errlen && snprintf(err, errlen, __VA_ARGS__) >= 0))

static const char *const status_names[] = {"empty", "writing", "installed", "confirmed", "failed"};

const char *yn_slot_status_name(enum yn_slot_status s)
{
    return (unsigned)s < sizeof status_names / sizeof *status_names ? status_names[s] : "?";
}

/* Apply one "key = value" line of the state file. */
static int state_set(yn_slots *st, const char *key, const char *val, bool *format_seen)
{
    char *end;
    if (!strcmp(key, "format")) {
        long f = strtol(val, &end, 10);
        if (strcmp(val, "1") != 0)
            return *end == '\0' && end != val && f > 1 ? YN_ENOTSUP : YN_EINVAL; /* newer, or bad */
        *format_seen = true;
        return YN_OK;
    }
    if (!strcmp(key, "active")) {
        if (!strcmp(val, "a") || !strcmp(val, "b"))
            st->active = val[0] - 'a';
        else if (!strcmp(val, "-"))
            st->active = -1;
        else
            return YN_EINVAL;
        return YN_OK;
    }
    if (!strcmp(key, "attempts_left")) {
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || *end || end == val || v < 0 || v > 100)
            return YN_EINVAL;
        st->attempts_left = (int)v;
        return YN_OK;
    }
    if ((key[0] == 'a' || key[0] == 'b') && key[1] == '.') {
        yn_slot *s = &st->slot[key[0] - 'a'];
        const char *field = key + 2;
        if (!strcmp(field, "status")) {
            for (size_t i = 0; i < sizeof status_names / sizeof *status_names; i++)
                if (!strcmp(val, status_names[i])) {
                    s->status = (enum yn_slot_status)i;
                    return YN_OK;
                }
            return YN_EINVAL;
        }
        if (!strcmp(field, "version")) {
            yn_bundle_version v;
            if (strcmp(val, "-") != 0 && yn_bundle_version_parse(val, &v) != YN_OK)
                return YN_EINVAL;
            snprintf(s->version, sizeof s->version, "%s", strcmp(val, "-") ? val : "");
            return YN_OK;
        }
        if (!strcmp(field, "ledger_schema")) {
            errno = 0;
            long v = strtol(val, &end, 10);
            if (errno || *end || end == val || v < 0 || v > 1000000)
                return YN_EINVAL;
            s->ledger_schema = (int)v;
            return YN_OK;
        }
    }
    return YN_OK; /* unknown keys: written by a newer tool, ignored */
}

int yn_slots_parse(const char *text, size_t len, yn_slots *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    out->active = -1;
    bool format_seen = false;
    size_t pos = 0;
    for (int lineno = 1; pos < len; lineno++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        char line[256];
        if (n >= sizeof line) {
            SET_ERR("state line %d is too long", lineno);
            return YN_EINVAL;
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos += n + (nl ? 1 : 0);
        char *s = line;
        while (isspace((unsigned char)*s))
            s++;
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            SET_ERR("state line %d: expected key = value", lineno);
            return YN_EINVAL;
        }
        char *kend = eq;
        while (kend > s && isspace((unsigned char)kend[-1]))
            kend--;
        *kend = '\0';
        char *val = eq + 1;
        while (isspace((unsigned char)*val))
            val++;
        char *vend = val + strlen(val);
        while (vend > val && isspace((unsigned char)vend[-1]))
            *--vend = '\0';
        int rc = state_set(out, s, val, &format_seen);
        if (rc != YN_OK) {
            SET_ERR("state line %d: %s = %s: %s", lineno, s, val,
                    rc == YN_ENOTSUP ? "format newer than this tool" : "bad value");
            return rc;
        }
    }
    if (!format_seen) {
        SET_ERR("state: no \"format = 1\" line");
        return YN_EINVAL;
    }
    if (out->active >= 0 && out->slot[out->active].status != YN_SLOT_INSTALLED &&
        out->slot[out->active].status != YN_SLOT_CONFIRMED) {
        SET_ERR("state: active slot %c is %s, expected installed or confirmed",
                yn_slot_name(out->active), yn_slot_status_name(out->slot[out->active].status));
        return YN_EINVAL;
    }
    return YN_OK;
}

int yn_slots_format(const yn_slots *st, char *buf, size_t cap, size_t *len)
{
    int n = snprintf(buf, cap,
                     "# yinian-flash slot state: written by yinian-flash (atomically); do not "
                     "edit\nformat = 1\nactive = %s\nattempts_left = %d\n",
                     st->active < 0 ? "-"
                     : st->active   ? "b"
                                    : "a",
                     st->attempts_left);
    for (int i = 0; i < 2 && n >= 0 && (size_t)n < cap; i++) {
        const yn_slot *s = &st->slot[i];
        n += snprintf(buf + n, cap - (size_t)n,
                      "%c.status = %s\n%c.version = %s\n"
                      "%c.ledger_schema = %d\n",
                      yn_slot_name(i), yn_slot_status_name(s->status), yn_slot_name(i),
                      s->version[0] ? s->version : "-", yn_slot_name(i), s->ledger_schema);
    }
    if (n < 0 || (size_t)n >= cap)
        return YN_ELIMIT;
    *len = (size_t)n;
    return YN_OK;
}

int yn_slots_fallback(const yn_slots *st, bool allow_unconfirmed)
{
    if (st->active < 0)
        return -1;
    int other = 1 - st->active;
    enum yn_slot_status s = st->slot[other].status;
    if (s == YN_SLOT_CONFIRMED || (allow_unconfirmed && s == YN_SLOT_INSTALLED))
        return other;
    return -1;
}

static void roll_back(yn_slots *st, int to)
{
    st->slot[st->active].status = YN_SLOT_FAILED;
    st->active = to;
    st->attempts_left = 0;
}

enum yn_boot_action yn_slots_boot_next(yn_slots *st)
{
    if (st->active < 0)
        return YN_BOOT_NONE;
    if (st->slot[st->active].status == YN_SLOT_CONFIRMED)
        return YN_BOOT_GOOD;
    if (st->attempts_left > 0) {
        st->attempts_left--;
        return YN_BOOT_TRY;
    }
    int to = yn_slots_fallback(st, false);
    if (to < 0)
        return YN_BOOT_LAST;
    roll_back(st, to);
    return YN_BOOT_ROLLBACK;
}

bool yn_slots_boot_result(yn_slots *st, bool passed, bool *rolled_back)
{
    *rolled_back = false;
    if (st->active < 0 || st->slot[st->active].status == YN_SLOT_CONFIRMED)
        return false;
    if (passed) {
        st->slot[st->active].status = YN_SLOT_CONFIRMED;
        st->attempts_left = 0;
        return true;
    }
    int to = yn_slots_fallback(st, false);
    if (st->attempts_left > 0 || to < 0)
        return false;
    roll_back(st, to);
    *rolled_back = true;
    return true;
}

/* ---- install ------------------------------------------------------------- */

enum yn_slots_verdict yn_slots_install_check(const yn_slots *st, const yn_bundle_version *v,
                                             bool force, int *target)
{
    *target = st->active < 0 ? 0 : 1 - st->active;
    if (st->active < 0)
        return YN_SLOTS_GO;
    const yn_slot *cur = &st->slot[st->active];
    yn_bundle_version cv;
    int cmp =
        yn_bundle_version_parse(cur->version, &cv) == YN_OK ? yn_bundle_version_cmp(v, &cv) : 1;
    if (cur->status != YN_SLOT_CONFIRMED)
        return force ? YN_SLOTS_GO : YN_SLOTS_UNCONFIRMED;
    if (cmp < 0)
        return force ? YN_SLOTS_GO_FORCED : YN_SLOTS_DOWNGRADE;
    if (cmp == 0 && !force)
        return YN_SLOTS_SAME;
    return YN_SLOTS_GO;
}

bool yn_slots_begin_write(yn_slots *st, int target)
{
    enum yn_slot_status s = st->slot[target].status;
    if (s == YN_SLOT_EMPTY || s == YN_SLOT_WRITING)
        return false;
    st->slot[target] = (yn_slot){.status = YN_SLOT_WRITING};
    return true;
}

static void set_slot(yn_slot *s, enum yn_slot_status status, const char *version, int ledger_schema)
{
    *s = (yn_slot){.status = status, .ledger_schema = ledger_schema};
    snprintf(s->version, sizeof s->version, "%s", version);
}

void yn_slots_installed(yn_slots *st, int target, const char *version, int ledger_schema,
                        int attempts)
{
    set_slot(&st->slot[target], YN_SLOT_INSTALLED, version, ledger_schema);
    st->active = target;
    st->attempts_left = attempts;
}

void yn_slots_install_failed(yn_slots *st, int target, const char *version, int ledger_schema)
{
    set_slot(&st->slot[target], YN_SLOT_FAILED, version, ledger_schema);
}

/* ---- rollback by hand ----------------------------------------------------- */

enum yn_slots_verdict yn_slots_rollback_check(const yn_slots *st, bool force, int ledger_schema,
                                              int *to)
{
    *to = st->active < 0 ? -1 : 1 - st->active;
    if (*to < 0)
        return YN_SLOTS_NOTHING;
    const yn_slot *t = &st->slot[*to];
    bool usable = t->status == YN_SLOT_CONFIRMED ||
                  (force && (t->status == YN_SLOT_INSTALLED || t->status == YN_SLOT_FAILED));
    if (!usable)
        return YN_SLOTS_NOTHING;
    if (ledger_schema > 0 && t->ledger_schema > 0 && ledger_schema > t->ledger_schema)
        return force ? YN_SLOTS_GO_FORCED : YN_SLOTS_SCHEMA;
    return YN_SLOTS_GO;
}

void yn_slots_rollback(yn_slots *st, int attempts)
{
    int to = 1 - st->active;
    st->active = to;
    st->attempts_left = st->slot[to].status == YN_SLOT_CONFIRMED ? 0 : attempts;
    if (st->slot[to].status == YN_SLOT_FAILED)
        st->slot[to].status = YN_SLOT_INSTALLED;
}
