/* install.c — install: verify the bundle, write the inactive slot, back up
 * the ledger, switch (each step durable; the decisions are slots.c's). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "flash.h"
#include "fileio.h"

const char *yn_fl_board_arch(const struct yn_fl_opts *o)
{
    static struct utsname u;
    if (o->arch)
        return o->arch;
    if (uname(&u) != 0)
        return "host";
    return yn_bundle_arch_of_machine(u.machine);
}

/* Unpack the payload into ROOT/slots/X.new, then put it in place of slots/X. */
static int unpack_slot(const struct yn_fl_opts *o, struct yn_fl_bundle *b, int slot)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 8], slots[PATH_MAX], path[PATH_MAX + 200];
    if (yn_fl_slot_dir(o, slot, dir, sizeof dir) != YN_OK ||
        yn_fl_root_path(o, slots, sizeof slots, "slots"))
        return YN_ELIMIT;
    snprintf(tmp, sizeof tmp, "%s.new", dir);
    int rc = yn_fl_rm_rf(tmp);
    if (rc == YN_OK)
        rc = yn_fl_mkdir_p(slots, 0755);
    if (rc == YN_OK && mkdir(tmp, 0755) != 0)
        rc = yn_fl_fail(YN_EIO, "cannot create %s: %s", tmp, strerror(errno));
    struct yn_fl_progress p = {.step = "unpack", .total = b->m.payload_size, .last_pct = -1};
    for (int i = 0; i < b->m.n_files && rc == YN_OK; i++) {
        const yn_bundle_file *f = &b->m.files[i];
        char parent[PATH_MAX + 200];
        snprintf(path, sizeof path, "%s/%s", tmp, f->path);
        yn_file_dir_of(path, parent, sizeof parent);
        if ((rc = yn_fl_mkdir_p(parent, 0755)) != YN_OK)
            break;
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = yn_fl_fail(YN_EIO, "cannot create %s: %s", path, strerror(errno));
            break;
        }
        rc = yn_fl_bundle_stream(b, i, fd, &p);
        if (rc == YN_OK && fchmod(fd, f->mode) != 0)
            rc = yn_fl_fail(yn_status_of_errno(errno), "cannot set the mode of %s: %s", path,
                            strerror(errno));
        if (rc == YN_OK && (rc = yn_file_sync(fd)) != YN_OK)
            rc = yn_fl_fail(rc, "cannot write %s: %s", path, yn_strerror(rc));
        if (close(fd) != 0 && rc == YN_OK)
            rc = yn_fl_fail(YN_EIO, "cannot write %s: %s", path, strerror(errno));
        if (rc == YN_OK)
            yn_fl_durable_step("unpack: a file written");
    }
    if (rc == YN_OK) {
        char version[80];
        int n = snprintf(version, sizeof version, "%s\n", b->m.version);
        snprintf(path, sizeof path, "%s/manifest.json", tmp);
        rc = yn_file_write_atomic(path, b->manifest_json, b->manifest_len, 0644);
        snprintf(path, sizeof path, "%s/VERSION", tmp);
        if (rc == YN_OK)
            rc = yn_file_write_atomic(path, version, (size_t)n, 0644);
    }
    if (rc == YN_OK && nftw(tmp, yn_fl_fsync_entry, 16, FTW_PHYS) != 0)
        rc = yn_fl_fail(YN_EIO, "cannot sync %s", tmp);
    if (rc != YN_OK) {
        (void)yn_fl_rm_rf(tmp);
        return rc;
    }
    yn_fl_durable_step("unpack: slot complete");
    if ((rc = yn_fl_rm_rf(dir)) != YN_OK || (rc = yn_file_sync_dir(slots)) != YN_OK)
        return rc;
    yn_fl_durable_step("unpack: old slot removed");
    if ((rc = yn_file_rename(tmp, dir)) != YN_OK)
        return yn_fl_fail(rc, "cannot rename %s to %s: %s", tmp, dir, yn_strerror(rc));
    yn_fl_durable_step("unpack: slot in place");
    return YN_OK;
}

/* ROOT/bin/yinian-flash is the boot helper the board's init runs: it lives
 * outside the slots so a broken slot cannot take it down. Put one there
 * (src, or this very program) when it is missing. */
int yn_fl_ensure_boot_helper(const struct yn_fl_opts *o, const char *src)
{
    char path[PATH_MAX], bin[PATH_MAX];
    if (yn_fl_root_path(o, path, sizeof path, "bin/yinian-flash") ||
        yn_fl_root_path(o, bin, sizeof bin, "bin"))
        return YN_ELIMIT;
    if (yn_fl_exists(path))
        return YN_OK;
    int rc = yn_fl_mkdir_p(bin, 0755);
    if (rc == YN_OK)
        rc = yn_fl_copy_file_atomic(src ? src : "/proc/self/exe", path, 0755);
    if (rc == YN_OK)
        yn_fl_durable_step("boot helper installed");
    return rc;
}

int yn_fl_cmd_install(const struct yn_fl_opts *o, int argc, char **argv)
{
    uint8_t pub[YN_BUNDLE_KEY_LEN];
    char pubpath[PATH_MAX], conf[PATH_MAX], dir[PATH_MAX], prog[PATH_MAX + 32], out[256];
    static struct yn_fl_bundle b;
    yn_slots st;
    bool found;
    int lock = -1;
    if (argc != 1) {
        yn_fl_usage(stderr);
        return EXIT_USAGE;
    }
    if (o->pubkey)
        snprintf(pubpath, sizeof pubpath, "%s", o->pubkey);
    else if (yn_fl_root_path(o, pubpath, sizeof pubpath, "etc/keys/vendor.pub") != YN_OK)
        return EXIT_USAGE;
    if (yn_fl_load_pubkey(pubpath, pub) != YN_OK)
        return EXIT_USAGE;
    yn_fl_config_path(o, conf, sizeof conf);

    yn_fl_say("verify", "checking %s against the vendor key %s", argv[0], pubpath);
    if (yn_fl_bundle_open(argv[0], pub, &b) != YN_OK)
        return EXIT_FAIL;
    int rc = yn_fl_bundle_check_payload(&b);
    const yn_bundle_manifest *m = &b.m;
    const char *arch = yn_fl_board_arch(o);
    if (rc == YN_OK && strcmp(m->arch, arch) != 0)
        rc = yn_fl_fail(YN_EREFUSED, "%s is built for %s, this board is %s: get the %s bundle",
                        argv[0], m->arch, arch, arch);
    if (rc == YN_OK)
        rc = yn_fl_lock_root(o, &lock);
    if (rc == YN_OK)
        rc = yn_fl_state_load(o, &st, &found);
    if (rc == YN_OK && !found && yn_fl_current_slot(o) >= 0)
        rc = yn_fl_state_recover(o, &st);
    if (rc != YN_OK) {
        yn_fl_bundle_close(&b);
        return EXIT_FAIL;
    }

    /* what is running now, and may this replace it? */
    int target;
    const yn_slot *cur = st.active >= 0 ? &st.slot[st.active] : NULL;
    switch (yn_slots_install_check(&st, &m->v, o->force, &target)) {
    case YN_SLOTS_UNCONFIRMED:
        rc = yn_fl_fail(YN_EREFUSED,
                        "%s in slot %c has not passed its self-test yet, and slot %c holds what "
                        "it would fall back to: restart the terminal (or run yinian-flash boot) "
                        "first, or --force",
                        cur->version, yn_slot_name(st.active), yn_slot_name(target));
        break;
    case YN_SLOTS_DOWNGRADE:
        rc = yn_fl_fail(YN_EREFUSED,
                        "downgrade from %s to %s refused: older firmware may not read what the "
                        "newer one wrote; --force if you mean it",
                        cur->version, m->version);
        break;
    case YN_SLOTS_SAME:
        rc = yn_fl_fail(YN_EREFUSED, "%s is already installed (slot %c); --force to reinstall",
                        m->version, yn_slot_name(st.active));
        break;
    case YN_SLOTS_GO_FORCED:
        yn_fl_say("check", "installing the older %s over %s (--force)", m->version, cur->version);
        break;
    default:
        break;
    }
    struct statvfs vfs;
    if (rc == YN_OK && statvfs(o->root, &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * vfs.f_frsize < m->payload_size + (1u << 20))
        rc = yn_fl_fail(YN_ENOSPC,
                        "%s has %llu KiB free, the firmware needs %llu KiB: free space first",
                        o->root, (unsigned long long)vfs.f_bavail * vfs.f_frsize / 1024,
                        (unsigned long long)(m->payload_size + (1u << 20)) / 1024);
    if (rc != YN_OK) {
        yn_fl_bundle_close(&b);
        return EXIT_FAIL;
    }

    if (st.slot[target].status == YN_SLOT_FAILED && !strcmp(st.slot[target].version, m->version))
        yn_fl_say("check", "note: %s failed its self-test on this board before", m->version);
    /* the target slot is overwritten: it is no longer anything to go back to */
    if (yn_slots_begin_write(&st, target))
        rc = yn_fl_state_save(o, &st, "target slot marked writing");
    yn_fl_say("unpack", "writing %s (%" PRIu64 " bytes) to slot %c", m->version, m->payload_size,
              yn_slot_name(target));
    if (rc == YN_OK)
        rc = unpack_slot(o, &b, target);

    /* it has to run on this board at all */
    if (rc == YN_OK && yn_fl_slot_dir(o, target, dir, sizeof dir) == YN_OK) {
        const char *why;
        snprintf(prog, sizeof prog, "%s/bin/yinian-pos", dir);
        char *args[] = {prog, "--version", NULL};
        int ex = yn_fl_run_prog(args, 30, out, sizeof out, &why);
        if (ex != 0 || strncmp(out, "yinian-pos ", 11) != 0) {
            rc = yn_fl_fail(YN_EREFUSED, "%s --version %s: not switching to it", prog,
                            ex < 0 ? why : "failed");
            yn_slots_install_failed(&st, target, m->version, m->ledger_schema);
            (void)yn_fl_state_save(o, &st, "new slot failed");
        }
    }
    if (rc == YN_OK)
        rc = yn_fl_ledger_backup_if_needed(conf, m->ledger_schema, m->version);
    if (rc == YN_OK)
        rc = yn_fl_ensure_boot_helper(o, NULL);

    /* the switch: the state file (atomic) decides, the link follows */
    if (rc == YN_OK) {
        yn_slots_installed(&st, target, m->version, m->ledger_schema, o->attempts);
        rc = yn_fl_state_save(o, &st, "switch: state");
    }
    if (rc == YN_OK)
        rc = yn_fl_link_current(o, target, "switch: current link");
    if (rc == YN_OK) {
        int fb = yn_slots_fallback(&st, false);
        const char *prev = fb >= 0 ? st.slot[fb].version : "";
        if (yn_fl.json)
            yn_fl_emit(json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:i, s:i}", "event", "result",
                                 "ok", 1, "command", "install", "version", m->version, "slot",
                                 (char[]){yn_slot_name(target), 0}, "previous", prev, "attempts",
                                 o->attempts, "steps", (int)yn_fl.steps));
        else
            printf("installed %s in slot %c; it starts at the next boot and is kept once it "
                   "passes its self-test (%d tries)%s%s%s\n",
                   m->version, yn_slot_name(target), o->attempts,
                   prev[0] ? ", otherwise the terminal goes back to " : "", prev,
                   prev[0] ? " by itself" : "");
    }
    yn_fl_bundle_close(&b);
    close(lock);
    return rc == YN_OK ? 0 : EXIT_FAIL;
}
