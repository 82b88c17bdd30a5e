/* boot.c — boot (self-test a new slot, confirm it or roll back), status and
 * rollback by hand. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "flash.h"
#include "fileio.h"
#include "log.h"

/* Run the active slot's self-test against board.conf. */
static bool self_test(const struct yn_fl_opts *o, int slot, const char *conf)
{
    char dir[PATH_MAX], prog[PATH_MAX + 32];
    const char *why;
    if (yn_fl_slot_dir(o, slot, dir, sizeof dir) != YN_OK)
        return false;
    snprintf(prog, sizeof prog, "%s/bin/yinian-pos", dir);
    char *args[] = {prog, "--config", (char *)conf, "--self-test", NULL};
    yn_fl_say("self-test", "self-test of slot %c: %s --config %s --self-test", yn_slot_name(slot),
              prog, conf);
    int ex = yn_fl_run_prog(args, o->timeout_s, NULL, 0, &why);
    if (ex != 0)
        yn_fl_say("self-test", "self-test of slot %c failed: %s", yn_slot_name(slot),
                  ex < 0 ? why : "exit status not 0");
    return ex == 0;
}

/* After a slot is confirmed: adopt its yinian-flash as the boot helper when
 * it differs and answers --version. */
static void refresh_boot_helper(const struct yn_fl_opts *o, int slot)
{
    char dir[PATH_MAX], src[PATH_MAX + 32], dst[PATH_MAX], out[128];
    const char *why;
    if (yn_fl_slot_dir(o, slot, dir, sizeof dir) != YN_OK ||
        yn_fl_root_path(o, dst, sizeof dst, "bin/yinian-flash") != YN_OK)
        return;
    snprintf(src, sizeof src, "%s/bin/yinian-flash", dir);
    if (!yn_fl_exists(src) || yn_fl_same_file_content(src, dst))
        return;
    char *args[] = {src, "--version", NULL};
    if (yn_fl_run_prog(args, 30, out, sizeof out, &why) != 0 || strncmp(out, "yinian-flash ", 13)) {
        yn_warn("%s does not run: the boot helper %s stays as it is", src, dst);
        return;
    }
    char bin[PATH_MAX];
    yn_file_dir_of(dst, bin, sizeof bin);
    if (yn_fl_mkdir_p(bin, 0755) == YN_OK && yn_fl_copy_file_atomic(src, dst, 0755) == YN_OK)
        yn_fl_durable_step("boot helper updated");
}

/* The outcome of a start: a JSON result, or the message (stdout when the
 * daemon may start, stderr when not). Returns the exit code. */
static int boot_result(const yn_slots *st, const char *result, bool ok, const char *message)
{
    if (!ok)
        yn_fl_fail(EXIT_FAIL, "%s", message);
    if (yn_fl.json) {
        const yn_slot *s = st->active >= 0 ? &st->slot[st->active] : NULL;
        yn_fl_emit(json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:i, s:s}", "event", "result", "ok",
                             ok, "command", "boot", "result", result, "slot",
                             st->active >= 0 ? (char[]){yn_slot_name(st->active), 0} : "-",
                             "version", s ? s->version : "", "attempts_left", st->attempts_left,
                             "message", message));
        yn_fl.result_done = true;
    } else if (ok) {
        printf("%s\n", message);
    }
    return ok ? 0 : EXIT_FAIL;
}

int yn_fl_cmd_boot(const struct yn_fl_opts *o, int argc, char **argv)
{
    (void)argv;
    char conf[PATH_MAX], msg[512];
    yn_slots st;
    bool found;
    int lock = -1;
    if (argc != 0) {
        yn_fl_usage(stderr);
        return EXIT_USAGE;
    }
    yn_fl_config_path(o, conf, sizeof conf);
    if (yn_fl_lock_root(o, &lock) != YN_OK)
        return EXIT_FAIL;
    int rc = yn_fl_state_load(o, &st, &found);
    if (rc != YN_OK || !found) {
        if (yn_fl_state_recover(o, &st) != YN_OK) {
            close(lock);
            return yn_fl_fail(EXIT_FAIL,
                              "%s: no firmware installed (no state, no current link): "
                              "install a bundle with yinian-flash install",
                              o->root);
        }
    }
    if (st.active < 0) {
        close(lock);
        return yn_fl_fail(EXIT_FAIL, "%s: no firmware installed: install a bundle", o->root);
    }
    if (!yn_fl_exists(conf)) {
        (void)yn_fl_link_current(o, st.active, "boot: current link repaired");
        close(lock);
        return yn_fl_fail(EXIT_FAIL,
                          "%s is missing: the board is not provisioned; run yinian-flash "
                          "provision",
                          conf);
    }
    int before = st.active;
    enum yn_boot_action act = yn_slots_boot_next(&st);
    int exit_code = 0;
    bool rolled_back = false;
    switch (act) {
    case YN_BOOT_NONE:
        exit_code = yn_fl_fail(EXIT_FAIL, "no firmware installed");
        break;
    case YN_BOOT_GOOD:
        rc = yn_fl_link_current(o, st.active, "boot: current link repaired");
        snprintf(msg, sizeof msg, "slot %c: %s, confirmed", yn_slot_name(st.active),
                 st.slot[st.active].version);
        exit_code = boot_result(&st, "good", rc == YN_OK, msg);
        break;
    case YN_BOOT_ROLLBACK:
        rolled_back = true;
        break;
    case YN_BOOT_TRY:
    case YN_BOOT_LAST: {
        const yn_slot *s = &st.slot[st.active];
        if (act == YN_BOOT_TRY)
            rc = yn_fl_state_save(o, &st, "boot: attempt taken");
        if (rc == YN_OK)
            rc = yn_fl_link_current(o, st.active, "boot: current link repaired");
        if (rc == YN_OK)
            rc = yn_fl_ledger_backup_if_needed(conf, s->ledger_schema, s->version);
        if (rc != YN_OK) {
            exit_code = EXIT_FAIL;
            break;
        }
        bool passed = self_test(o, st.active, conf);
        int tried = st.active;
        if (yn_slots_boot_result(&st, passed, &rolled_back) && !rolled_back)
            rc = yn_fl_state_save(o, &st, "boot: confirmed");
        if (passed && rc == YN_OK) {
            refresh_boot_helper(o, tried);
            snprintf(msg, sizeof msg, "slot %c: %s passed its self-test: confirmed",
                     yn_slot_name(tried), st.slot[tried].version);
            exit_code = boot_result(&st, "confirmed", true, msg);
        } else if (!passed && !rolled_back) {
            if (act == YN_BOOT_LAST)
                snprintf(msg, sizeof msg,
                         "slot %c: %s failed its self-test and there is no confirmed version to "
                         "go back to: check board.conf and the devices (yinian-pos --self-test "
                         "says what fails), or install another bundle",
                         yn_slot_name(tried), st.slot[tried].version);
            else
                snprintf(msg, sizeof msg,
                         "slot %c: %s failed its self-test; %d more start(s) will try it "
                         "before going back",
                         yn_slot_name(tried), st.slot[tried].version, st.attempts_left);
            exit_code =
                boot_result(&st, act == YN_BOOT_LAST ? "no-good-version" : "retry", false, msg);
        }
        if (rc != YN_OK && exit_code == 0)
            exit_code = boot_result(&st, "error", false, yn_fl.error);
        break;
    }
    }
    if (rolled_back) {
        /* before the state says so: the fallback must find a ledger it reads */
        const yn_slot *from = &st.slot[before], *to = &st.slot[st.active];
        rc = yn_fl_ledger_restore_if_needed(conf, to->ledger_schema, from->version);
        int rc2 = yn_fl_state_save(o, &st, "boot: rolled back");
        if (rc2 == YN_OK)
            rc2 = yn_fl_link_current(o, st.active, "boot: rolled back link");
        snprintf(msg, sizeof msg,
                 "slot %c: %s did not pass its self-test within its starts: rolled back to slot "
                 "%c, %s",
                 yn_slot_name(before), from->version, yn_slot_name(st.active), to->version);
        exit_code = boot_result(&st, "rolled-back", rc == YN_OK && rc2 == YN_OK, msg);
    }
    close(lock);
    return exit_code;
}

/* ---- status, rollback ------------------------------------------------------------------------ */

static json_t *slot_json(const yn_slot *s)
{
    return json_pack("{s:s, s:s, s:i}", "status", yn_slot_status_name(s->status), "version",
                     s->version, "ledger_schema", s->ledger_schema);
}

int yn_fl_cmd_status(const struct yn_fl_opts *o, int argc, char **argv)
{
    (void)argv;
    yn_slots st;
    bool found;
    char conf[PATH_MAX], ledger[PATH_MAX];
    int uv = -1;
    if (argc != 0) {
        yn_fl_usage(stderr);
        return EXIT_USAGE;
    }
    if (yn_fl_state_load(o, &st, &found) != YN_OK)
        return EXIT_FAIL;
    yn_fl_config_path(o, conf, sizeof conf);
    bool have_ledger = yn_fl_ledger_path_of(conf, ledger, sizeof ledger) && yn_fl_exists(ledger) &&
                       yn_fl_ledger_user_version(ledger, &uv) == YN_OK;
    int cur = yn_fl_current_slot(o), fb = yn_slots_fallback(&st, false);
    bool confirmed = st.active >= 0 && st.slot[st.active].status == YN_SLOT_CONFIRMED;
    if (yn_fl.json) {
        json_t *r = json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:s, s:{s:o, s:o}}",
                              "event", "result", "ok", 1, "command", "status", "root", o->root,
                              "arch", yn_fl_board_arch(o), "active",
                              st.active >= 0 ? (char[]){yn_slot_name(st.active), 0} : "-",
                              "current", cur >= 0 ? (char[]){yn_slot_name(cur), 0} : "-",
                              "confirmed", confirmed, "attempts_left", st.attempts_left, "fallback",
                              fb >= 0 ? (char[]){yn_slot_name(fb), 0} : "-", "slots", "a",
                              slot_json(&st.slot[0]), "b", slot_json(&st.slot[1]));
        if (r && have_ledger)
            json_object_set_new(r, "ledger_file_schema", json_integer(uv));
        yn_fl_emit(r);
        return 0;
    }
    printf("root           %s (board %s)\n", o->root, yn_fl_board_arch(o));
    if (!found && cur < 0) {
        printf("firmware       none installed\n");
        return 0;
    }
    for (int i = 0; i < 2; i++) {
        const yn_slot *s = &st.slot[i];
        printf("slot %c         %-10s %-9s%s\n", yn_slot_name(i), s->version[0] ? s->version : "-",
               yn_slot_status_name(s->status), i == st.active ? "  ACTIVE" : "");
    }
    if (st.active >= 0 && !confirmed)
        printf("               %s not yet confirmed: %d start(s) left to pass its self-test\n",
               st.slot[st.active].version, st.attempts_left);
    printf("fall back to   %s\n", fb >= 0 ? (char[]){yn_slot_name(fb), 0} : "nothing");
    if (cur != st.active)
        printf("current link   -> %s (repaired at the next start)\n",
               cur >= 0 ? (cur ? "slots/b" : "slots/a") : "missing");
    if (have_ledger)
        printf("ledger         %s, schema %d\n", ledger, uv);
    return 0;
}

int yn_fl_cmd_rollback(const struct yn_fl_opts *o, int argc, char **argv)
{
    (void)argv;
    yn_slots st;
    bool found;
    char conf[PATH_MAX], ledger[PATH_MAX];
    int lock = -1, uv = 0;
    if (argc != 0) {
        yn_fl_usage(stderr);
        return EXIT_USAGE;
    }
    if (yn_fl_lock_root(o, &lock) != YN_OK)
        return EXIT_FAIL;
    if (yn_fl_state_load(o, &st, &found) != YN_OK || st.active < 0) {
        close(lock);
        return yn_fl_fail(EXIT_FAIL, "%s: no firmware installed", o->root);
    }
    int from = st.active, to;
    yn_fl_config_path(o, conf, sizeof conf);
    if (!(yn_fl_ledger_path_of(conf, ledger, sizeof ledger) && yn_fl_exists(ledger) &&
          yn_fl_ledger_user_version(ledger, &uv) == YN_OK))
        uv = 0;
    switch (yn_slots_rollback_check(&st, o->force, uv, &to)) {
    case YN_SLOTS_NOTHING: {
        enum yn_slot_status ts = st.slot[1 - from].status;
        close(lock);
        return yn_fl_fail(EXIT_FAIL, "nothing to roll back to: slot %c is %s%s",
                          yn_slot_name(1 - from), yn_slot_status_name(ts),
                          ts == YN_SLOT_INSTALLED || ts == YN_SLOT_FAILED ? " (--force to use it)"
                                                                          : "");
    }
    case YN_SLOTS_SCHEMA:
        close(lock);
        return yn_fl_fail(EXIT_FAIL,
                          "the ledger is at schema %d, %s reads up to %d: it would not start. Not "
                          "rolled back (--force to switch anyway and restore a ledger backup by "
                          "hand)",
                          uv, st.slot[to].version, st.slot[to].ledger_schema);
    case YN_SLOTS_GO_FORCED:
        yn_fl_say("check", "the ledger is at schema %d, %s reads up to %d (--force)", uv,
                  st.slot[to].version, st.slot[to].ledger_schema);
        break;
    default:
        break;
    }
    yn_slots_rollback(&st, DEFAULT_ATTEMPTS);
    int rc = yn_fl_state_save(o, &st, "rollback: state");
    if (rc == YN_OK)
        rc = yn_fl_link_current(o, to, "rollback: current link");
    close(lock);
    if (rc != YN_OK)
        return EXIT_FAIL;
    if (yn_fl.json)
        yn_fl_emit(json_pack("{s:s, s:b, s:s, s:s, s:s, s:s}", "event", "result", "ok", 1,
                             "command", "rollback", "slot", (char[]){yn_slot_name(to), 0},
                             "version", st.slot[to].version, "from", st.slot[from].version));
    else
        printf("rolled back from %s (slot %c) to %s (slot %c); restart the terminal to run it\n",
               st.slot[from].version, yn_slot_name(from), st.slot[to].version, yn_slot_name(to));
    return 0;
}
