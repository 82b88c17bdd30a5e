/* flash.h — what the modules of yinian-flash share (tools/FLASH.md): the
 * command line, the output, the root on disk, the ledger around an update,
 * bundles, and one function per subcommand. The A/B slot state machine is
 * pure and apart: slots.h. */
#ifndef YN_TOOLS_FLASH_H
#define YN_TOOLS_FLASH_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <ftw.h>

#include "bundle.h"
#include "slots.h"

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define DEFAULT_ROOT     "/opt/yinian"
#define DEFAULT_ATTEMPTS 3
#define DEFAULT_TIMEOUT  120 /* seconds for one self-test */
#define CHUNK            (256 * 1024)
#define MAX_SETS         64

struct yn_fl_opts {
    char root[PATH_MAX];
    const char *key, *pubkey, *out, *arch, *version, *gitrev, *config;
    int ledger_schema, attempts, timeout_s;
    bool force, json;
    /* provision */
    const char *terminal_id, *canteen, *canteen_name, *district, *street, *mode;
    const char *card_master_key, *issuer_pub, *terminal_key, *district_pub, *vendor_pub;
    const char *policy, *server_url, *ca, *template;
    const char *enrol_token; /* one-time token: enrol with the district after provisioning */
    const char *pkcs11_module, *token_label, *pin_file; /* provision into a token */
    bool key_pair; /* provision: the terminal key is a key pair made on the board */
    const char *sets[MAX_SETS];
    int n_sets;
};

struct yn_fl_out {
    bool json;        /* --json: JSON lines on stdout, nothing else there */
    bool tty;         /* human progress on stderr */
    bool progress_on; /* a progress line is open on the tty */
    long stop_at;     /* YN_FLASH_STOP_AT: SIGKILL after this durable step */
    long steps;       /* durable steps taken so far */
    char error[512];  /* last failure, for the JSON result */
    bool result_done; /* the command emitted its JSON result itself */
    const char *command;
};
extern struct yn_fl_out yn_fl;

struct yn_fl_progress {
    const char *step;
    const char *file;
    uint64_t done, total; /* bytes */
    int last_pct;         /* last percent shown, -1 = none */
};

struct yn_fl_bundle {
    FILE *f;
    const char *path;
    char *manifest_json; /* the signed bytes, NUL-terminated */
    size_t manifest_len;
    uint64_t payload_start; /* file offset of the first payload byte */
    yn_bundle_manifest m;
};

/* --- out.c: the technician's view (stderr, or JSON lines on stdout with --json) */
void yn_fl_emit(json_t *o);
void yn_fl_end_progress_line(void);
void yn_fl_say(const char *step, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int yn_fl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void yn_fl_progress_add(struct yn_fl_progress *p, uint64_t bytes);
void yn_fl_durable_step(const char *what);

/* --- files.c */
int yn_fl_pathf(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
bool yn_fl_exists(const char *path);
int yn_fl_mkdir_p(const char *path, unsigned mode);
int yn_fl_rm_rf(const char *path);
int yn_fl_fsync_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw);
int yn_fl_copy_file_atomic(const char *src, const char *dst, unsigned mode);
bool yn_fl_same_file_content(const char *a, const char *b);
int yn_fl_run_prog(char *const argv[], int timeout_s, char *out, size_t cap, const char **why);

/* --- root.c: ROOT/state, ROOT/current, ROOT/slots/X */
int yn_fl_root_path(const struct yn_fl_opts *o, char *out, size_t cap, const char *rel);
int yn_fl_slot_dir(const struct yn_fl_opts *o, int slot, char *out, size_t cap);
void yn_fl_config_path(const struct yn_fl_opts *o, char *out, size_t cap);
int yn_fl_lock_root(const struct yn_fl_opts *o, int *fd);
int yn_fl_state_load(const struct yn_fl_opts *o, yn_slots *st, bool *found);
int yn_fl_state_save(const struct yn_fl_opts *o, const yn_slots *st, const char *what);
int yn_fl_current_slot(const struct yn_fl_opts *o);
int yn_fl_link_current(const struct yn_fl_opts *o, int slot, const char *what);
int yn_fl_state_recover(const struct yn_fl_opts *o, yn_slots *st);

/* --- backup.c: the ledger around an update */
bool yn_fl_ledger_path_of(const char *conf, char *out, size_t cap);
int yn_fl_ledger_user_version(const char *path, int *version);
int yn_fl_ledger_backup_if_needed(const char *conf, int schema, const char *version);
int yn_fl_ledger_restore_if_needed(const char *conf, int schema, const char *failed_version);

/* --- bundle_read.c */
int yn_fl_load_pubkey(const char *path, uint8_t pub[YN_BUNDLE_KEY_LEN]);
int yn_fl_bundle_open(const char *path, const uint8_t pub[YN_BUNDLE_KEY_LEN],
                      struct yn_fl_bundle *b);
void yn_fl_bundle_close(struct yn_fl_bundle *b);
int yn_fl_bundle_stream(struct yn_fl_bundle *b, int i, int fd, struct yn_fl_progress *p);
int yn_fl_bundle_check_payload(struct yn_fl_bundle *b);
json_t *yn_fl_manifest_json_obj(const struct yn_fl_bundle *b);
void yn_fl_print_manifest(const yn_bundle_manifest *m);

/* --- install.c */
const char *yn_fl_board_arch(const struct yn_fl_opts *o);
int yn_fl_ensure_boot_helper(const struct yn_fl_opts *o, const char *src);

/* --- the subcommands: one each, argc/argv after the options; an exit code */
int yn_fl_cmd_keygen(const struct yn_fl_opts *o, int argc, char **argv);
int yn_fl_cmd_bundle(const struct yn_fl_opts *o, int argc, char **argv);
int yn_fl_cmd_verify(const struct yn_fl_opts *o, int argc, char **argv);
int yn_fl_cmd_install(const struct yn_fl_opts *o, int argc, char **argv);
int yn_fl_cmd_boot(const struct yn_fl_opts *o, int argc, char **argv);
int yn_fl_cmd_status(const struct yn_fl_opts *o, int argc, char **argv);
int yn_fl_cmd_rollback(const struct yn_fl_opts *o, int argc, char **argv);
int yn_fl_cmd_provision(const struct yn_fl_opts *o, int argc, char **argv);
int yn_fl_cmd_import_key(const struct yn_fl_opts *o, int argc, char **argv);

/* --- yinian-flash.c */
void yn_fl_usage(FILE *to);

#endif
