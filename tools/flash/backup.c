/* backup.c — the ledger around an update: the backup before a version that
 * migrates it, and the restore when that version is rolled back (the ledger's
 * own copy, yn_ledger_file_copy). */
#include <stdio.h>

#include "flash.h"
#include "config.h"
#include "hal.h"
#include "ledger.h"
#include "log.h"

/* The ledger file named by board.conf; false (with a note) when board.conf is
 * absent or does not load. */
bool yn_fl_ledger_path_of(const char *conf, char *out, size_t cap)
{
    static yn_config cfg;
    static yn_config_errors errs;
    if (!conf[0] || !yn_fl_exists(conf))
        return false;
    if (yn_config_load(conf, yn_hal_backend_ok, &cfg, &errs) != YN_OK) {
        yn_warn("%s does not load (%s): the ledger cannot be located", conf,
                errs.count ? errs.msg[0] : "?");
        return false;
    }
    snprintf(out, cap, "%s", cfg.ledger.path);
    return true;
}

/* The ledger's own copy (the one its migrations back up with): standalone,
 * a new file put in place atomically; otherwise into the live ledger. */
static int ledger_copy(const char *from, const char *to, bool standalone)
{
    int rc = yn_ledger_file_copy(from, to, standalone);
    return rc == YN_OK
               ? YN_OK
               : yn_fl_fail(rc, "ledger copy %s -> %s failed: %s", from, to, yn_strerror(rc));
}

int yn_fl_ledger_user_version(const char *path, int *version)
{
    int rc = yn_ledger_file_schema(path, version);
    return rc == YN_OK ? YN_OK
                       : yn_fl_fail(rc, "ledger %s: cannot read its schema version: %s", path,
                                    yn_strerror(rc));
}

/* Before a version that migrates the ledger runs: copy the ledger to
 * <ledger>.before-<version>.bak. Nothing to do when the ledger is absent or
 * already at (or above) that schema. */
int yn_fl_ledger_backup_if_needed(const char *conf, int schema, const char *version)
{
    char ledger[PATH_MAX], bak[PATH_MAX + 80];
    int uv = 0;
    if (!yn_fl_ledger_path_of(conf, ledger, sizeof ledger) || !yn_fl_exists(ledger))
        return YN_OK;
    int rc = yn_fl_ledger_user_version(ledger, &uv);
    if (rc != YN_OK || uv >= schema)
        return rc;
    if (yn_fl_pathf(bak, sizeof bak, "%s.before-%s.bak", ledger, version) != YN_OK)
        return YN_ELIMIT;
    yn_fl_say("ledger", "ledger %s is at schema %d; %s brings it to %d: backing it up to %s",
              ledger, uv, version, schema, bak);
    if ((rc = ledger_copy(ledger, bak, true)) != YN_OK)
        return yn_fl_fail(rc,
                          "the ledger backup failed: not switching to %s; free space next to %s",
                          version, ledger);
    yn_fl_durable_step("ledger backed up");
    return YN_OK;
}

/* Going back to a slot that reads ledger schemas up to `schema` after
 * `failed_version` (which never ran the counter: it failed its self-test)
 * may have migrated the ledger: keep the migrated file as
 * <ledger>.failed-<version>.bak and bring back the copy made before it ran. */
int yn_fl_ledger_restore_if_needed(const char *conf, int schema, const char *failed_version)
{
    char ledger[PATH_MAX], bak[PATH_MAX + 80], failed[PATH_MAX + 80];
    int uv = 0, buv = 0;
    if (schema <= 0 || !yn_fl_ledger_path_of(conf, ledger, sizeof ledger) || !yn_fl_exists(ledger))
        return YN_OK;
    int rc = yn_fl_ledger_user_version(ledger, &uv);
    if (rc != YN_OK || uv <= schema)
        return rc;
    if (yn_fl_pathf(bak, sizeof bak, "%s.before-%s.bak", ledger, failed_version) != YN_OK ||
        yn_fl_pathf(failed, sizeof failed, "%s.failed-%s.bak", ledger, failed_version) != YN_OK)
        return YN_ELIMIT;
    if (!yn_fl_exists(bak) || yn_fl_ledger_user_version(bak, &buv) != YN_OK || buv > schema)
        return yn_fl_fail(
            YN_ENOTFOUND,
            "ledger %s is at schema %d, the version rolled back to reads up to %d, and "
            "there is no usable backup %s: restore a ledger backup by hand",
            ledger, uv, schema, bak);
    yn_fl_say("ledger",
              "ledger %s was migrated to schema %d by %s: restoring %s (the migrated file "
              "is kept as %s)",
              ledger, uv, failed_version, bak, failed);
    if ((rc = ledger_copy(ledger, failed, true)) != YN_OK)
        return rc;
    yn_fl_durable_step("migrated ledger kept");
    if ((rc = ledger_copy(bak, ledger, false)) != YN_OK)
        return rc;
    yn_fl_durable_step("ledger restored");
    return YN_OK;
}
