/* yinian-flash — firmware bundles and A/B updates for technicians in the field.
 *
 *   keygen     the vendor's Ed25519 signing key pair
 *   bundle     build a signed bundle (manifest + payload) for one board architecture
 *   verify     check a bundle against the vendor public key and print its manifest
 *   install    verify, write the inactive slot, back up the ledger, switch
 *   boot       run by the board's init before the daemon: count the new slot's
 *              starts, self-test it, confirm it or roll back by itself
 *   status     both slots, which one is active and confirmed
 *   rollback   go back to the other slot by hand
 *   provision  give a new board its identity: board.conf and keys (files, or
 *              a PKCS#11 token that keeps them non-extractable)
 *   import-key put one secret key into the board's keystore (the token)
 *
 * Every change is a sequence of durable steps (each file fsynced, each switch
 * an atomic rename), so a kill or power cut at any point leaves a board that
 * starts a good version. YN_FLASH_STOP_AT=N makes the tool SIGKILL itself
 * right after its N-th durable step (the tests kill it at every step in turn).
 * Layout, bundle format and state file: tools/FLASH.md.
 *
 * Exit codes: 0 done (boot: the active slot may start); 1 refused or failed
 * (the message says why and what to do); 2 bad command line or input. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bundle.h"
#include "card.h"
#include "client.h"
#include "config.h"
#include "fileio.h"
#include "keystore.h"
#include "ledger.h"
#include "log.h"
#include "policy.h"

enum { EXIT_FAIL = 1, EXIT_USAGE = 2 };

#define DEFAULT_ROOT     "/opt/yinian"
#define DEFAULT_ATTEMPTS 3
#define DEFAULT_TIMEOUT  120 /* seconds for one self-test */
#define CHUNK            (256 * 1024)
#define MAX_SETS         64

static void usage(FILE *to)
{
    fputs(
        "usage: yinian-flash COMMAND [options]\n"
        "  keygen [--force] PRIVATE_OUT PUBLIC_OUT\n"
        "      vendor Ed25519 key pair (hex; private 0600)\n"
        "  bundle --key VENDOR_KEY --out FILE [--version X.Y.Z] [--arch host|aarch64|armhf]\n"
        "      [--ledger-schema N] [--gitrev REV] ENTRY...\n"
        "      ENTRY: DIR (its files, at their paths under DIR) or DEST=SRC (one file);\n"
        "      the payload must hold bin/yinian-pos and share/board.conf\n"
        "  verify --pubkey VENDOR_PUB [--json] BUNDLE\n"
        "  install [--root DIR] [--pubkey FILE] [--arch A] [--attempts N] [--config FILE]\n"
        "      [--force] [--json] BUNDLE\n"
        "      --force installs an older or the same version, or over an unconfirmed one\n"
        "  boot [--root DIR] [--config FILE] [--timeout S] [--json]\n"
        "      before the daemon starts: self-test a new slot, confirm it or roll back\n"
        "  status [--root DIR] [--json]\n"
        "  rollback [--root DIR] [--config FILE] [--force] [--json]\n"
        "  provision [--root DIR] --terminal-id ID --canteen ID --district CODE --street CODE\n"
        "      [--canteen-name TEXT] [--mode pos|kiosk] --card-master-key FILE --issuer-pub FILE\n"
        "      [--terminal-key FILE] [--district-pub FILE] [--vendor-pub FILE] [--policy FILE]\n"
        "      [--server-url https://HOST[:PORT] --ca FILE] [--template FILE]\n"
        "      [--set SECTION.KEY=VALUE]... [--enrol-token TOKEN] [--force]\n"
        "      [--pkcs11-module PATH --token-label LABEL --pin-file FILE]\n"
        "      writes ROOT/etc/board.conf from the shipped template and the keys (0600);\n"
        "      with --pkcs11-module the secret keys go into that token instead (non-\n"
        "      extractable; the master once: --force replaces another), no key file is kept;\n"
        "      with --enrol-token, then enrols with the district server (needs --server-url)\n"
        "  import-key [--config FILE] [--force] card-master|terminal KEYFILE\n"
        "      one secret key (hex file) into the keystore board.conf names: with backend =\n"
        "      pkcs11 a non-extractable token object; --force replaces another key\n"
        "  --root defaults to " DEFAULT_ROOT "; --config to ROOT/etc/board.conf;\n"
        "  --pubkey to ROOT/etc/keys/vendor.pub; --arch to this machine's\n"
        "exit: 0 done (boot: may start), 1 refused or failed, 2 bad command line or input\n",
        to);
}

/* ---- options and output ---------------------------------------------------------------------- */

struct opts {
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
    const char *sets[MAX_SETS];
    int n_sets;
};

static struct {
    bool json;        /* --json: JSON lines on stdout, nothing else there */
    bool tty;         /* human progress on stderr */
    bool progress_on; /* a progress line is open on the tty */
    long stop_at;     /* YN_FLASH_STOP_AT: SIGKILL after this durable step */
    long steps;       /* durable steps taken so far */
    char error[512];  /* last failure, for the JSON result */
    bool result_done; /* the command emitted its JSON result itself */
    const char *command;
} g;

/* Write one JSON object as a line on stdout (takes the reference). */
static void emit(json_t *o)
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

static void end_progress_line(void)
{
    if (g.progress_on) {
        fputc('\n', stderr);
        g.progress_on = false;
    }
}

/* A step the technician may want to follow (stderr; a JSON event with --json). */
static void say(const char *step, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const char *step, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g.json) {
        emit(json_pack("{s:s, s:s, s:s}", "event", "step", "step", step, "message", msg));
        return;
    }
    end_progress_line();
    fprintf(stderr, "yinian-flash: %s\n", msg);
}

/* Report a failure (always on stderr) and return code. */
static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g.error, sizeof g.error, fmt, ap);
    va_end(ap);
    end_progress_line();
    fprintf(stderr, "yinian-flash %s: %s\n", g.command ? g.command : "", g.error);
    return code;
}

struct progress {
    const char *step;
    const char *file;
    uint64_t done, total; /* bytes */
    int last_pct;         /* last percent shown, -1 = none */
};

/* Bytes written on a long step: a line redrawn on a terminal, events with
 * --json (one per percent), nothing otherwise. */
static void progress_add(struct progress *p, uint64_t bytes)
{
    p->done += bytes;
    int pct = p->total ? (int)(p->done * 100 / p->total) : 100;
    if (pct == p->last_pct)
        return;
    p->last_pct = pct;
    if (g.json) {
        emit(json_pack("{s:s, s:s, s:s, s:I, s:I, s:i}", "event", "progress", "step", p->step,
                       "file", p->file ? p->file : "", "bytes", (json_int_t)p->done, "total",
                       (json_int_t)p->total, "percent", pct));
    } else if (g.tty) {
        fprintf(stderr, "\r  %-7s %-28.28s %8" PRIu64 " / %" PRIu64 " KiB %3d%%", p->step,
                p->file ? p->file : "", p->done / 1024, p->total / 1024, pct);
        g.progress_on = true;
        if (p->done >= p->total)
            end_progress_line();
    }
}

/* One durable step is done. The crash tests set YN_FLASH_STOP_AT=N to be
 * killed right here, as a power cut would, after the N-th one. */
static void durable_step(const char *what)
{
    g.steps++;
    if (g.stop_at > 0 && g.steps == g.stop_at) {
        end_progress_line();
        fprintf(stderr, "yinian-flash: YN_FLASH_STOP_AT=%ld: killed after step %ld (%s)\n",
                g.stop_at, g.steps, what);
        fflush(stderr);
        raise(SIGKILL);
    }
}

/* ---- small file helpers ---------------------------------------------------------------------- */

static int pathf(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? YN_ELIMIT : YN_OK;
}

static bool exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return YN_EIO;
    int rc = fsync(fd) == 0 ? YN_OK : YN_EIO;
    close(fd);
    return rc;
}

static void dir_of(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s", path);
    char *slash = strrchr(out, '/');
    if (!slash)
        snprintf(out, cap, ".");
    else
        *(slash == out ? slash + 1 : slash) = '\0';
}

/* mkdir -p; each directory it creates is fsynced into its parent. */
static int mkdir_p(const char *path, unsigned mode)
{
    char buf[PATH_MAX];
    if (pathf(buf, sizeof buf, "%s", path) != YN_OK)
        return YN_ELIMIT;
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, mode) == 0) {
            char parent[PATH_MAX];
            dir_of(buf, parent, sizeof parent);
            (void)fsync_dir(parent);
        } else if (errno != EEXIST) {
            return fail(YN_EIO, "cannot create folder %s: %s", buf, strerror(errno));
        }
        *p = saved;
        if (!saved)
            break;
    }
    return YN_OK;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -rf path (absent is fine). */
static int rm_rf(const char *path)
{
    if (!exists(path))
        return YN_OK;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return fail(YN_EIO, "cannot remove %s: %s", path, strerror(errno));
    return YN_OK;
}

static int fsync_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return flag == FTW_D || flag == FTW_DP ? (fsync_dir(path) == YN_OK ? 0 : -1) : 0;
}

/* Read a whole (small) file; NUL-terminated, free() it. */
static int read_file(const char *path, size_t max, char **out, size_t *len)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return errno == ENOENT ? YN_ENOENT : YN_EIO;
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int rc = !buf ? YN_ENOMEM : ferror(f) ? YN_EIO : n > max ? YN_ELIMIT : YN_OK;
    fclose(f);
    if (rc != YN_OK) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return YN_OK;
}

/* A file written in full before it replaces its name: path.new, fsync,
 * rename, fsync the folder (for files too large to hold in memory). */
struct atomic_out {
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    int fd;
};

static int aout_open(struct atomic_out *o, const char *path, unsigned mode)
{
    if (pathf(o->path, sizeof o->path, "%s", path) != YN_OK ||
        pathf(o->tmp, sizeof o->tmp, "%s.new", path) != YN_OK)
        return YN_ELIMIT;
    unlink(o->tmp);
    o->fd = open(o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (o->fd < 0)
        return fail(YN_EIO, "cannot create %s: %s", o->tmp, strerror(errno));
    (void)fchmod(o->fd, mode);
    return YN_OK;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return errno == ENOSPC ? YN_ENOSPC : YN_EIO;
        p += n;
        len -= (size_t)n;
    }
    return YN_OK;
}

/* Finish (ok: sync and rename into place) or abandon (remove the .new). */
static int aout_close(struct atomic_out *o, bool ok)
{
    int rc = ok ? YN_OK : YN_EIO;
    if (ok && fsync(o->fd) != 0)
        rc = YN_EIO;
    if (close(o->fd) != 0 && rc == YN_OK)
        rc = YN_EIO;
    if (rc == YN_OK && rename(o->tmp, o->path) != 0)
        rc = YN_EIO;
    if (rc != YN_OK) {
        if (ok)
            fail(rc, "cannot write %s: %s", o->path, strerror(errno));
        unlink(o->tmp);
        return rc;
    }
    char dir[PATH_MAX];
    dir_of(o->path, dir, sizeof dir);
    return fsync_dir(dir);
}

/* Copy src to dst atomically with mode. */
static int copy_file_atomic(const char *src, const char *dst, unsigned mode)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return fail(YN_EIO, "cannot read %s: %s", src, strerror(errno));
    struct atomic_out o;
    int rc = aout_open(&o, dst, mode);
    if (rc != YN_OK) {
        close(in);
        return rc;
    }
    static char buf[CHUNK];
    ssize_t n = 0;
    while (rc == YN_OK && (n = read(in, buf, sizeof buf)) > 0)
        rc = write_all(o.fd, buf, (size_t)n);
    if (n < 0)
        rc = YN_EIO;
    close(in);
    int crc = aout_close(&o, rc == YN_OK);
    return rc != YN_OK ? rc : crc;
}

static bool same_file_content(const char *a, const char *b)
{
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    bool same = x && y;
    static char bx[CHUNK], by[CHUNK];
    while (same) {
        size_t nx = fread(bx, 1, sizeof bx, x), ny = fread(by, 1, sizeof by, y);
        same = nx == ny && memcmp(bx, by, nx) == 0 && !ferror(x) && !ferror(y);
        if (nx < sizeof bx)
            break;
    }
    if (x)
        fclose(x);
    if (y)
        fclose(y);
    return same;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
    out[2 * n] = '\0';
}

/* ---- running the firmware's programs --------------------------------------------------------- */

/* Run argv[0] with argv, at most timeout_s seconds (then SIGKILL). Its
 * stdout goes to out (cap bytes, NUL-terminated) when out is given, else to
 * our stderr so --json output stays clean. Returns the exit status, or -1
 * when it could not run, was killed or timed out (why says which). */
static void take(int fd, char *out, size_t cap, size_t *got, bool *eof)
{
    char tmp[512];
    ssize_t n = read(fd, tmp, sizeof tmp);
    if (n <= 0) {
        *eof = true;
        return;
    }
    size_t room = cap - 1 - *got, k = (size_t)n < room ? (size_t)n : room;
    memcpy(out + *got, tmp, k);
    *got += k;
}

static int run_prog(char *const argv[], int timeout_s, char *out, size_t cap, const char **why)
{
    int pipefd[2] = {-1, -1};
    *why = "";
    if (out && pipe(pipefd) != 0) {
        *why = "no pipe";
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        *why = "cannot fork";
        return -1;
    }
    if (pid == 0) {
        dup2(out ? pipefd[1] : STDERR_FILENO, STDOUT_FILENO);
        if (out) {
            close(pipefd[0]);
            close(pipefd[1]);
        }
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    if (out)
        close(pipefd[1]);
    size_t got = 0;
    bool eof = !out, timed_out = false;
    int status = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
        if (!eof && poll(&pfd, 1, 5) > 0)
            take(pipefd[0], out, cap, &got, &eof);
        else if (eof)
            nanosleep(&(struct timespec){0, 5000000L}, NULL);
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            timed_out = true;
            break;
        }
    }
    /* what it wrote just before it exited */
    while (!eof && poll(&(struct pollfd){.fd = pipefd[0], .events = POLLIN}, 1, 0) > 0)
        take(pipefd[0], out, cap, &got, &eof);
    if (out) {
        close(pipefd[0]);
        out[got] = '\0';
    }
    if (timed_out) {
        *why = "did not finish in time";
        return -1;
    }
    if (WIFSIGNALED(status)) {
        *why = "crashed";
        return -1;
    }
    if (WEXITSTATUS(status) == 127) {
        *why = "cannot be executed here (missing, or built for another architecture)";
        return -1;
    }
    return WEXITSTATUS(status);
}

/* ---- the root: lock, state, the current link ------------------------------------------------- */

static int root_path(const struct opts *o, char *out, size_t cap, const char *rel)
{
    if (pathf(out, cap, "%s/%s", o->root, rel) != YN_OK)
        return fail(YN_ELIMIT, "path under %s is too long", o->root);
    return YN_OK;
}

static int slot_dir(const struct opts *o, int slot, char *out, size_t cap)
{
    char rel[16];
    snprintf(rel, sizeof rel, "slots/%c", yn_slot_name(slot));
    return root_path(o, out, cap, rel);
}

static void config_path(const struct opts *o, char *out, size_t cap)
{
    if (o->config)
        snprintf(out, cap, "%s", o->config);
    else if (root_path(o, out, cap, "etc/board.conf") != YN_OK)
        out[0] = '\0';
}

/* One yinian-flash at a time works on a root (the lock goes with the process,
 * so a killed one does not leave it held). Waits up to 30 s. */
static int lock_root(const struct opts *o, int *fd)
{
    char path[PATH_MAX];
    if (mkdir_p(o->root, 0755) != YN_OK || root_path(o, path, sizeof path, ".lock") != YN_OK)
        return YN_EIO;
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (*fd < 0)
        return fail(YN_EIO, "cannot open %s: %s", path, strerror(errno));
    for (int waited = 0; flock(*fd, LOCK_EX | LOCK_NB) != 0; waited += 100) {
        if (waited >= 30000) {
            close(*fd);
            return fail(YN_EBUSY, "another yinian-flash is working on %s: wait for it to finish",
                        o->root);
        }
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
    return YN_OK;
}

/* Load ROOT/state. *found = false (and an empty state) when there is none. */
static int state_load(const struct opts *o, yn_bundle_state *st, bool *found)
{
    char path[PATH_MAX], err[256];
    char *text;
    size_t len;
    memset(st, 0, sizeof *st);
    st->active = -1;
    *found = false;
    if (root_path(o, path, sizeof path, "state") != YN_OK)
        return YN_ELIMIT;
    int rc = read_file(path, 16384, &text, &len);
    if (rc == YN_ENOENT)
        return YN_OK;
    if (rc != YN_OK)
        return fail(rc, "cannot read %s: %s", path, yn_strerror(rc));
    rc = yn_bundle_state_parse(text, len, st, err, sizeof err);
    free(text);
    if (rc != YN_OK)
        return fail(rc, "%s: %s", path, err);
    *found = true;
    return YN_OK;
}

/* Write ROOT/state atomically: each call is one durable step. */
static int state_save(const struct opts *o, const yn_bundle_state *st, const char *what)
{
    char path[PATH_MAX], text[1024];
    size_t len;
    int rc = root_path(o, path, sizeof path, "state");
    if (rc == YN_OK)
        rc = yn_bundle_state_format(st, text, sizeof text, &len);
    if (rc == YN_OK)
        rc = yn_file_write_atomic(path, text, len, 0644);
    if (rc != YN_OK)
        return fail(rc, "cannot write %s: %s", path, yn_strerror(rc));
    durable_step(what);
    return YN_OK;
}

/* Which slot ROOT/current points at: 0, 1, or -1 (absent or elsewhere). */
static int current_slot(const struct opts *o)
{
    char path[PATH_MAX], target[64];
    if (root_path(o, path, sizeof path, "current") != YN_OK)
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
static int link_current(const struct opts *o, int slot, const char *what)
{
    if (current_slot(o) == slot)
        return YN_OK;
    char link[PATH_MAX], tmp[PATH_MAX], target[16];
    snprintf(target, sizeof target, "slots/%c", yn_slot_name(slot));
    if (root_path(o, link, sizeof link, "current") != YN_OK ||
        root_path(o, tmp, sizeof tmp, "current.new") != YN_OK)
        return YN_ELIMIT;
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, link) != 0 || fsync_dir(o->root) != YN_OK)
        return fail(YN_EIO, "cannot point %s at %s: %s", link, target, strerror(errno));
    durable_step(what);
    return YN_OK;
}

/* A board whose state file is missing or unreadable but whose current link
 * points at a slot (laid down by a factory image, or by hand): take that
 * slot as the confirmed one, the other as installed if it holds a manifest. */
static int state_recover(const struct opts *o, yn_bundle_state *st)
{
    int cur = current_slot(o);
    if (cur < 0)
        return YN_ENOENT;
    memset(st, 0, sizeof *st);
    for (int i = 0; i < 2; i++) {
        char dir[PATH_MAX], path[PATH_MAX + 16], err[256];
        char *text;
        size_t len;
        static yn_bundle_manifest m;
        if (slot_dir(o, i, dir, sizeof dir) != YN_OK)
            return YN_ELIMIT;
        snprintf(path, sizeof path, "%s/manifest.json", dir);
        if (read_file(path, YN_BUNDLE_MANIFEST_MAX, &text, &len) != YN_OK)
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
    return state_save(o, st, "state recovered");
}

/* ---- the ledger: schema, backup, restore ----------------------------------------------------- */

/* The ledger file named by board.conf; false (with a note) when board.conf is
 * absent or does not load. */
static bool ledger_path_of(const char *conf, char *out, size_t cap)
{
    static yn_config cfg;
    static yn_config_errors errs;
    if (!conf[0] || !exists(conf))
        return false;
    if (yn_config_load(conf, &cfg, &errs) != YN_OK) {
        yn_warn("%s does not load (%s): the ledger cannot be located", conf,
                errs.count ? errs.msg[0] : "?");
        return false;
    }
    snprintf(out, cap, "%s", cfg.ledger.path);
    return true;
}

static int ledger_user_version(const char *path, int *version)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, 5000);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        *version = sqlite3_column_int(s, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_OK)
        fail(YN_EIO, "ledger %s: cannot read its schema version: %s", path,
             db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    return rc == SQLITE_OK ? YN_OK : YN_EIO;
}

/* SQLite online backup of the database at from into to (a live database,
 * in its own transaction), or into a new standalone file to.new renamed to
 * `to` when atomic_new. */
static int ledger_copy(const char *from, const char *to, bool atomic_new)
{
    char tmp[PATH_MAX + 16], journal[PATH_MAX + 32];
    if (pathf(tmp, sizeof tmp, "%s%s", to, atomic_new ? ".new" : "") != YN_OK)
        return YN_ELIMIT;
    snprintf(journal, sizeof journal, "%s-journal", tmp);
    if (atomic_new) {
        unlink(tmp);
        unlink(journal);
    }
    sqlite3 *src = NULL, *dst = NULL;
    int rc = sqlite3_open_v2(from, &src, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(src, 5000);
    if (rc == SQLITE_OK)
        rc = sqlite3_open_v2(tmp, &dst,
                             SQLITE_OPEN_READWRITE | (atomic_new ? SQLITE_OPEN_CREATE : 0), NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(dst, 5000);
    if (rc == SQLITE_OK) {
        sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
        if (!b) {
            rc = sqlite3_errcode(dst);
        } else {
            rc = sqlite3_backup_step(b, -1);
            int frc = sqlite3_backup_finish(b);
            rc = rc == SQLITE_DONE ? frc : rc;
        }
    }
    /* a copy stands alone: no -wal or -shm next to it */
    if (rc == SQLITE_OK && atomic_new)
        rc = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
    char msg[256];
    snprintf(msg, sizeof msg, "%s", dst ? sqlite3_errmsg(dst) : src ? sqlite3_errmsg(src) : "");
    if (sqlite3_close(dst) != SQLITE_OK && rc == SQLITE_OK)
        rc = SQLITE_IOERR;
    sqlite3_close(src);
    if (rc == SQLITE_OK && atomic_new) {
        int fd = open(tmp, O_RDONLY | O_CLOEXEC);
        char dir[PATH_MAX];
        dir_of(to, dir, sizeof dir);
        if (fd < 0 || fsync(fd) != 0 || rename(tmp, to) != 0 || fsync_dir(dir) != YN_OK)
            rc = SQLITE_IOERR;
        if (fd >= 0)
            close(fd);
    }
    if (rc != SQLITE_OK) {
        if (atomic_new)
            unlink(tmp);
        return fail(YN_EIO, "ledger copy %s -> %s failed (sqlite %d: %s)", from, to, rc, msg);
    }
    return YN_OK;
}

/* Before a version that migrates the ledger runs: copy the ledger to
 * <ledger>.before-<version>.bak. Nothing to do when the ledger is absent or
 * already at (or above) that schema. */
static int ledger_backup_if_needed(const char *conf, int schema, const char *version)
{
    char ledger[PATH_MAX], bak[PATH_MAX + 80];
    int uv = 0;
    if (!ledger_path_of(conf, ledger, sizeof ledger) || !exists(ledger))
        return YN_OK;
    int rc = ledger_user_version(ledger, &uv);
    if (rc != YN_OK || uv >= schema)
        return rc;
    if (pathf(bak, sizeof bak, "%s.before-%s.bak", ledger, version) != YN_OK)
        return YN_ELIMIT;
    say("ledger", "ledger %s is at schema %d; %s brings it to %d: backing it up to %s", ledger, uv,
        version, schema, bak);
    if ((rc = ledger_copy(ledger, bak, true)) != YN_OK)
        return fail(rc, "the ledger backup failed: not switching to %s; free space next to %s",
                    version, ledger);
    durable_step("ledger backed up");
    return YN_OK;
}

/* Going back to a slot that reads ledger schemas up to `schema` after
 * `failed_version` (which never ran the counter: it failed its self-test)
 * may have migrated the ledger: keep the migrated file as
 * <ledger>.failed-<version>.bak and bring back the copy made before it ran. */
static int ledger_restore_if_needed(const char *conf, int schema, const char *failed_version)
{
    char ledger[PATH_MAX], bak[PATH_MAX + 80], failed[PATH_MAX + 80];
    int uv = 0, buv = 0;
    if (schema <= 0 || !ledger_path_of(conf, ledger, sizeof ledger) || !exists(ledger))
        return YN_OK;
    int rc = ledger_user_version(ledger, &uv);
    if (rc != YN_OK || uv <= schema)
        return rc;
    if (pathf(bak, sizeof bak, "%s.before-%s.bak", ledger, failed_version) != YN_OK ||
        pathf(failed, sizeof failed, "%s.failed-%s.bak", ledger, failed_version) != YN_OK)
        return YN_ELIMIT;
    if (!exists(bak) || ledger_user_version(bak, &buv) != YN_OK || buv > schema)
        return fail(YN_ENOTFOUND,
                    "ledger %s is at schema %d, the version rolled back to reads up to %d, and "
                    "there is no usable backup %s: restore a ledger backup by hand",
                    ledger, uv, schema, bak);
    say("ledger",
        "ledger %s was migrated to schema %d by %s: restoring %s (the migrated file "
        "is kept as %s)",
        ledger, uv, failed_version, bak, failed);
    if ((rc = ledger_copy(ledger, failed, true)) != YN_OK)
        return rc;
    durable_step("migrated ledger kept");
    if ((rc = ledger_copy(bak, ledger, false)) != YN_OK)
        return rc;
    durable_step("ledger restored");
    return YN_OK;
}

/* ---- bundles: reading ------------------------------------------------------------------------ */

struct bundle {
    FILE *f;
    const char *path;
    char *manifest_json; /* the signed bytes, NUL-terminated */
    size_t manifest_len;
    uint64_t payload_start; /* file offset of the first payload byte */
    yn_bundle_manifest m;
};

static int load_pubkey(const char *path, uint8_t pub[YN_BUNDLE_KEY_LEN])
{
    size_t n;
    int rc = yn_key_file_load(path, false, "vendor public key", pub, YN_BUNDLE_KEY_LEN, &n);
    if (rc == YN_OK && n != YN_BUNDLE_KEY_LEN)
        rc = YN_EINVAL;
    if (rc != YN_OK)
        return fail(rc, "%s: a vendor public key is 32 bytes of hex (%s)", path, yn_strerror(rc));
    return YN_OK;
}

static void bundle_close(struct bundle *b)
{
    if (b->f)
        fclose(b->f);
    free(b->manifest_json);
    b->f = NULL;
    b->manifest_json = NULL;
}

/* Open a bundle: header, manifest and its signature (checked first, before a
 * byte of the manifest is trusted), then the manifest's fields and the size. */
static int bundle_open(const char *path, const uint8_t pub[YN_BUNDLE_KEY_LEN], struct bundle *b)
{
    uint8_t head[YN_BUNDLE_HEADER_LEN], sig[YN_BUNDLE_SIG_LEN];
    uint32_t mlen;
    char err[256];
    memset(b, 0, sizeof *b);
    b->path = path;
    b->f = fopen(path, "rb");
    if (!b->f)
        return fail(YN_ENOENT, "cannot open bundle %s: %s", path, strerror(errno));
    if (fread(head, 1, sizeof head, b->f) != sizeof head) {
        bundle_close(b);
        return fail(YN_EINVAL, "%s: too short to be a firmware bundle", path);
    }
    int rc = yn_bundle_header_decode(head, &mlen, err, sizeof err);
    if (rc != YN_OK) {
        bundle_close(b);
        return fail(rc, "%s: %s", path, err);
    }
    b->manifest_json = malloc(mlen + 1);
    if (!b->manifest_json || fread(b->manifest_json, 1, mlen, b->f) != mlen ||
        fread(sig, 1, sizeof sig, b->f) != sizeof sig) {
        bundle_close(b);
        return fail(YN_EINVAL, "%s: truncated (manifest or signature missing)", path);
    }
    b->manifest_json[mlen] = '\0';
    b->manifest_len = mlen;
    b->payload_start = YN_BUNDLE_HEADER_LEN + (uint64_t)mlen + YN_BUNDLE_SIG_LEN;
    if ((rc = yn_bundle_verify(pub, b->manifest_json, mlen, sig)) != YN_OK) {
        bundle_close(b);
        return fail(YN_EAUTH,
                    "%s: the signature does not verify with the vendor key: the bundle was "
                    "altered or signed by someone else; do not install it",
                    path);
    }
    if ((rc = yn_bundle_manifest_decode(b->manifest_json, mlen, &b->m, err, sizeof err)) != YN_OK) {
        bundle_close(b);
        return fail(rc, "%s: %s", path, err);
    }
    struct stat sb;
    if (fstat(fileno(b->f), &sb) != 0 ||
        (uint64_t)sb.st_size != b->payload_start + b->m.payload_size) {
        bundle_close(b);
        return fail(YN_ECORRUPT,
                    "%s: %lld bytes, the manifest says %" PRIu64 ": truncated or "
                    "appended to; copy the bundle again",
                    path, (long long)sb.st_size, b->payload_start + b->m.payload_size);
    }
    return YN_OK;
}

/* Stream file i of the bundle through SHA-256, and (fd >= 0) into fd. */
static int bundle_stream(struct bundle *b, int i, int fd, struct progress *p)
{
    const yn_bundle_file *f = &b->m.files[i];
    static uint8_t buf[CHUNK];
    uint8_t digest[YN_BUNDLE_HASH_LEN];
    unsigned dlen = 0;
    if (fseeko(b->f, (off_t)(b->payload_start + f->offset), SEEK_SET) != 0)
        return fail(YN_EIO, "%s: cannot seek to %s", b->path, f->path);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? YN_OK : YN_ENOMEM;
    p->file = f->path;
    for (uint64_t left = f->size; left > 0 && rc == YN_OK;) {
        size_t want = left < sizeof buf ? (size_t)left : sizeof buf;
        if (fread(buf, 1, want, b->f) != want) {
            rc = fail(YN_EIO, "%s: cannot read %s", b->path, f->path);
            break;
        }
        EVP_DigestUpdate(ctx, buf, want);
        if (fd >= 0 && (rc = write_all(fd, buf, want)) != YN_OK) {
            rc = fail(rc, "cannot write %s: %s", f->path,
                      rc == YN_ENOSPC ? "storage full" : strerror(errno));
            break;
        }
        left -= want;
        progress_add(p, want);
        if (fd >= 0)
            durable_step("unpack: a chunk written");
    }
    if (rc == YN_OK && (EVP_DigestFinal_ex(ctx, digest, &dlen) != 1 ||
                        memcmp(digest, f->sha256, sizeof digest) != 0))
        rc = fail(YN_ECORRUPT,
                  "%s: %s does not match its hash in the signed manifest: the bundle is "
                  "damaged or was altered; copy it again",
                  b->path, f->path);
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* Every file of the payload against its hash. */
static int bundle_check_payload(struct bundle *b)
{
    struct progress p = {.step = "verify", .total = b->m.payload_size, .last_pct = -1};
    for (int i = 0; i < b->m.n_files; i++) {
        int rc = bundle_stream(b, i, -1, &p);
        if (rc != YN_OK)
            return rc;
    }
    return YN_OK;
}

static json_t *manifest_json_obj(const struct bundle *b)
{
    return json_loadb(b->manifest_json, b->manifest_len, 0, NULL);
}

static void print_manifest(const yn_bundle_manifest *m)
{
    char created[32], h[2 * YN_BUNDLE_HASH_LEN + 1];
    time_t t = (time_t)m->created_utc;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(created, sizeof created, "%Y-%m-%d %H:%M:%SZ", &tm);
    printf("product        %s\n", m->product);
    printf("version        %s%s%s\n", m->version, m->gitrev[0] ? " " : "", m->gitrev);
    printf("architecture   %s\n", m->arch);
    printf("ledger schema  %d\n", m->ledger_schema);
    printf("created        %s\n", created);
    printf("files          %d, %" PRIu64 " bytes\n", m->n_files, m->payload_size);
    for (int i = 0; i < m->n_files; i++) {
        hex(m->files[i].sha256, 8, h);
        printf("  %04o %10" PRIu64 "  %s…  %s\n", m->files[i].mode, m->files[i].size, h,
               m->files[i].path);
    }
}

/* ---- keygen, bundle, verify ------------------------------------------------------------------ */

static int cmd_keygen(const struct opts *o, int argc, char **argv)
{
    if (argc != 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!o->force && (exists(argv[0]) || exists(argv[1])))
        return fail(EXIT_FAIL, "%s or %s exists: a vendor key is not replaced (--force to do it)",
                    argv[0], argv[1]);
    uint8_t priv[YN_BUNDLE_KEY_LEN], pub[YN_BUNDLE_KEY_LEN];
    if (RAND_priv_bytes(priv, sizeof priv) != 1 || yn_bundle_public_key(priv, pub) != YN_OK)
        return fail(EXIT_FAIL, "cannot generate a key");
    char text[200], h[2 * YN_BUNDLE_KEY_LEN + 1];
    hex(priv, sizeof priv, h);
    int n = snprintf(text, sizeof text,
                     "# yinian-pos vendor firmware signing key (Ed25519) — keep secret\n%s\n", h);
    explicit_bzero(priv, sizeof priv);
    int rc = yn_file_write_atomic(argv[0], text, (size_t)n, 0600);
    explicit_bzero(text, sizeof text);
    explicit_bzero(h, sizeof h);
    hex(pub, sizeof pub, h);
    n = snprintf(text, sizeof text, "# yinian-pos vendor firmware public key (Ed25519)\n%s\n", h);
    if (rc == YN_OK)
        rc = yn_file_write_atomic(argv[1], text, (size_t)n, 0644);
    if (rc != YN_OK)
        return fail(EXIT_FAIL, "cannot write the key files: %s", yn_strerror(rc));
    if (g.json)
        emit(json_pack("{s:s, s:b, s:s, s:s, s:s}", "event", "result", "ok", 1, "private", argv[0],
                       "public", argv[1], "public_hex", h));
    else
        printf("vendor key pair: private %s (0600), public %s\n", argv[0], argv[1]);
    return 0;
}

struct entry {
    char path[YN_BUNDLE_PATH_MAX];
    char src[PATH_MAX];
};

static struct {
    struct entry *e;
    int n;
    const char *base; /* the DIR being walked */
    int err;
} walk;

static int add_entry(const char *dest, const char *src)
{
    if (walk.n >= YN_BUNDLE_MAX_FILES)
        return fail(EXIT_USAGE, "more than %d files in the payload", YN_BUNDLE_MAX_FILES);
    if (!yn_bundle_path_ok(dest))
        return fail(EXIT_USAGE,
                    "payload path '%s' is not allowed (relative, [A-Za-z0-9._+-] components, "
                    "no '..', not manifest.json or VERSION)",
                    dest);
    struct entry *e = &walk.e[walk.n++];
    snprintf(e->path, sizeof e->path, "%s", dest);
    snprintf(e->src, sizeof e->src, "%s", src);
    return 0;
}

static int walk_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_D)
        return 0;
    if (flag != FTW_F || !S_ISREG(sb->st_mode)) {
        walk.err = fail(EXIT_USAGE, "%s: only regular files go into a bundle", path);
        return 1;
    }
    const char *rel = path + strlen(walk.base);
    while (*rel == '/')
        rel++;
    walk.err = add_entry(rel, path);
    return walk.err ? 1 : 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

/* SHA-256 and size of a file. */
static int hash_file(const char *path, uint8_t out[YN_BUNDLE_HASH_LEN], uint64_t *size,
                     unsigned *mode)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        if (fd >= 0)
            close(fd);
        return fail(EXIT_USAGE, "cannot read %s: %s", path, strerror(errno));
    }
    *mode = (sb.st_mode & 0111) ? 0755 : 0644;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    static uint8_t buf[CHUNK];
    ssize_t n;
    *size = 0;
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        *size += (uint64_t)n;
    }
    unsigned dlen;
    EVP_DigestFinal_ex(ctx, out, &dlen);
    EVP_MD_CTX_free(ctx);
    close(fd);
    if (n < 0)
        return fail(EXIT_FAIL, "cannot read %s: %s", path, strerror(errno));
    if (*size > YN_BUNDLE_FILE_MAX)
        return fail(EXIT_USAGE, "%s is larger than a bundle file may be", path);
    return 0;
}

static int cmd_bundle(const struct opts *o, int argc, char **argv)
{
    static struct entry entries[YN_BUNDLE_MAX_FILES];
    static yn_bundle_manifest m;
    uint8_t priv[YN_BUNDLE_KEY_LEN], sig[YN_BUNDLE_SIG_LEN];
    size_t n;
    if (!o->key || !o->out || argc < 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    memset(&m, 0, sizeof m);
    snprintf(m.product, sizeof m.product, "%s", YN_BUNDLE_PRODUCT);
    snprintf(m.version, sizeof m.version, "%s", o->version ? o->version : YN_VERSION);
    snprintf(m.arch, sizeof m.arch, "%s", o->arch ? o->arch : "host");
    snprintf(m.gitrev, sizeof m.gitrev, "%s", o->gitrev ? o->gitrev : YN_GITREV);
    m.ledger_schema = o->ledger_schema > 0 ? o->ledger_schema : yn_ledger_schema_version();
    m.created_utc = (int64_t)time(NULL);
    if (yn_bundle_version_parse(m.version, &m.v) != YN_OK)
        return fail(EXIT_USAGE, "--version '%s' is not x.y.z", m.version);
    if (!yn_bundle_arch_ok(m.arch))
        return fail(EXIT_USAGE, "--arch must be host, aarch64 or armhf");

    walk.e = entries;
    walk.n = 0;
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        struct stat sb;
        if (eq) {
            char dest[YN_BUNDLE_PATH_MAX];
            snprintf(dest, sizeof dest, "%.*s", (int)(eq - argv[i]), argv[i]);
            if (stat(eq + 1, &sb) != 0 || !S_ISREG(sb.st_mode))
                return fail(EXIT_USAGE, "%s: not a regular file", eq + 1);
            if (add_entry(dest, eq + 1))
                return EXIT_USAGE;
        } else if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            walk.base = argv[i];
            walk.err = 0;
            if (nftw(argv[i], walk_entry, 16, FTW_PHYS) != 0)
                return walk.err ? walk.err : fail(EXIT_USAGE, "cannot walk %s", argv[i]);
        } else {
            return fail(EXIT_USAGE, "%s: expected a folder or DEST=SRC", argv[i]);
        }
    }
    qsort(entries, (size_t)walk.n, sizeof *entries, entry_cmp);
    for (int i = 1; i < walk.n; i++)
        if (!strcmp(entries[i].path, entries[i - 1].path))
            return fail(EXIT_USAGE, "%s is given twice", entries[i].path);
    m.n_files = walk.n;
    for (int i = 0; i < walk.n; i++) {
        yn_bundle_file *f = &m.files[i];
        memcpy(f->path, entries[i].path, sizeof f->path); /* same size, NUL-terminated */
        int rc = hash_file(entries[i].src, f->sha256, &f->size, &f->mode);
        if (rc)
            return rc;
    }
    if (yn_bundle_manifest_find(&m, "bin/yinian-pos") < 0 ||
        yn_bundle_manifest_find(&m, "share/board.conf") < 0)
        return fail(EXIT_USAGE, "the payload must hold bin/yinian-pos (the daemon) and "
                                "share/board.conf (the board.conf template)");
    if (m.files[yn_bundle_manifest_find(&m, "bin/yinian-pos")].mode != 0755)
        return fail(EXIT_USAGE, "bin/yinian-pos must be executable");

    int rc = yn_key_file_load(o->key, true, "vendor signing key", priv, sizeof priv, &n);
    if (rc != YN_OK || n != sizeof priv)
        return fail(EXIT_USAGE, "%s: a vendor signing key is 32 bytes of hex, mode 0600", o->key);
    char *json = NULL;
    size_t jlen = 0;
    rc = yn_bundle_manifest_encode(&m, &json, &jlen);
    if (rc == YN_OK && jlen > YN_BUNDLE_MANIFEST_MAX)
        rc = YN_ELIMIT;
    if (rc == YN_OK)
        rc = yn_bundle_sign(priv, json, jlen, sig);
    explicit_bzero(priv, sizeof priv);
    if (rc != YN_OK) {
        free(json);
        return fail(EXIT_FAIL, "cannot make the manifest: %s", yn_strerror(rc));
    }

    struct atomic_out out;
    uint8_t head[YN_BUNDLE_HEADER_LEN];
    yn_bundle_header_encode(head, (uint32_t)jlen);
    if (aout_open(&out, o->out, 0644) != YN_OK) {
        free(json);
        return EXIT_FAIL;
    }
    rc = write_all(out.fd, head, sizeof head);
    if (rc == YN_OK)
        rc = write_all(out.fd, json, jlen);
    if (rc == YN_OK)
        rc = write_all(out.fd, sig, sizeof sig);
    free(json);
    struct progress p = {.step = "bundle", .total = m.payload_size, .last_pct = -1};
    for (int i = 0; i < m.n_files && rc == YN_OK; i++) {
        int in = open(entries[i].src, O_RDONLY | O_CLOEXEC);
        static uint8_t buf[CHUNK];
        uint8_t digest[YN_BUNDLE_HASH_LEN];
        unsigned dlen;
        uint64_t total = 0;
        ssize_t got = 0;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
        p.file = m.files[i].path;
        while (in >= 0 && rc == YN_OK && (got = read(in, buf, sizeof buf)) > 0) {
            EVP_DigestUpdate(ctx, buf, (size_t)got);
            total += (uint64_t)got;
            rc = write_all(out.fd, buf, (size_t)got);
            progress_add(&p, (uint64_t)got);
        }
        EVP_DigestFinal_ex(ctx, digest, &dlen);
        EVP_MD_CTX_free(ctx);
        if (in >= 0)
            close(in);
        if (rc == YN_OK && (in < 0 || got < 0 || total != m.files[i].size ||
                            memcmp(digest, m.files[i].sha256, sizeof digest) != 0))
            rc = fail(YN_ECORRUPT, "%s changed while the bundle was made: try again",
                      entries[i].src);
    }
    if (aout_close(&out, rc == YN_OK) != YN_OK || rc != YN_OK)
        return fail(EXIT_FAIL, "bundle %s not written", o->out);
    if (g.json)
        emit(json_pack("{s:s, s:b, s:s, s:s, s:s, s:i, s:I}", "event", "result", "ok", 1, "bundle",
                       o->out, "version", m.version, "arch", m.arch, "files", m.n_files,
                       "payload_size", (json_int_t)m.payload_size));
    else
        printf("bundle %s: yinian-pos %s for %s, %d files, %" PRIu64
               " bytes, ledger schema %d, signed\n",
               o->out, m.version, m.arch, m.n_files, m.payload_size, m.ledger_schema);
    return 0;
}

static int cmd_verify(const struct opts *o, int argc, char **argv)
{
    uint8_t pub[YN_BUNDLE_KEY_LEN];
    static struct bundle b;
    if (argc != 1 || !o->pubkey) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (load_pubkey(o->pubkey, pub) != YN_OK)
        return EXIT_USAGE;
    if (bundle_open(argv[0], pub, &b) != YN_OK)
        return EXIT_FAIL;
    int rc = bundle_check_payload(&b);
    if (rc == YN_OK) {
        if (g.json)
            emit(json_pack("{s:s, s:b, s:s, s:o}", "event", "result", "ok", 1, "signature", "valid",
                           "manifest", manifest_json_obj(&b)));
        else {
            printf("bundle %s: signature valid, every file matches its hash\n", argv[0]);
            print_manifest(&b.m);
        }
    }
    bundle_close(&b);
    return rc == YN_OK ? 0 : EXIT_FAIL;
}

/* ---- install --------------------------------------------------------------------------------- */

static const char *board_arch(const struct opts *o)
{
    static struct utsname u;
    if (o->arch)
        return o->arch;
    if (uname(&u) != 0)
        return "host";
    return yn_bundle_arch_of_machine(u.machine);
}

/* Unpack the payload into ROOT/slots/X.new, then put it in place of slots/X. */
static int unpack_slot(const struct opts *o, struct bundle *b, int slot)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 8], slots[PATH_MAX], path[PATH_MAX + 200];
    if (slot_dir(o, slot, dir, sizeof dir) != YN_OK || root_path(o, slots, sizeof slots, "slots"))
        return YN_ELIMIT;
    snprintf(tmp, sizeof tmp, "%s.new", dir);
    int rc = rm_rf(tmp);
    if (rc == YN_OK)
        rc = mkdir_p(slots, 0755);
    if (rc == YN_OK && mkdir(tmp, 0755) != 0)
        rc = fail(YN_EIO, "cannot create %s: %s", tmp, strerror(errno));
    struct progress p = {.step = "unpack", .total = b->m.payload_size, .last_pct = -1};
    for (int i = 0; i < b->m.n_files && rc == YN_OK; i++) {
        const yn_bundle_file *f = &b->m.files[i];
        char parent[PATH_MAX + 200];
        snprintf(path, sizeof path, "%s/%s", tmp, f->path);
        dir_of(path, parent, sizeof parent);
        if ((rc = mkdir_p(parent, 0755)) != YN_OK)
            break;
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0) {
            rc = fail(YN_EIO, "cannot create %s: %s", path, strerror(errno));
            break;
        }
        rc = bundle_stream(b, i, fd, &p);
        if (rc == YN_OK && (fchmod(fd, f->mode) != 0 || fsync(fd) != 0))
            rc = fail(YN_EIO, "cannot write %s: %s", path, strerror(errno));
        close(fd);
        if (rc == YN_OK)
            durable_step("unpack: a file written");
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
    if (rc == YN_OK && nftw(tmp, fsync_entry, 16, FTW_PHYS) != 0)
        rc = fail(YN_EIO, "cannot sync %s", tmp);
    if (rc != YN_OK) {
        (void)rm_rf(tmp);
        return rc;
    }
    durable_step("unpack: slot complete");
    if ((rc = rm_rf(dir)) != YN_OK || fsync_dir(slots) != YN_OK)
        return YN_EIO;
    durable_step("unpack: old slot removed");
    if (rename(tmp, dir) != 0 || fsync_dir(slots) != YN_OK)
        return fail(YN_EIO, "cannot rename %s to %s: %s", tmp, dir, strerror(errno));
    durable_step("unpack: slot in place");
    return YN_OK;
}

/* ROOT/bin/yinian-flash is the boot helper the board's init runs: it lives
 * outside the slots so a broken slot cannot take it down. Put one there
 * (src, or this very program) when it is missing. */
static int ensure_boot_helper(const struct opts *o, const char *src)
{
    char path[PATH_MAX], bin[PATH_MAX];
    if (root_path(o, path, sizeof path, "bin/yinian-flash") || root_path(o, bin, sizeof bin, "bin"))
        return YN_ELIMIT;
    if (exists(path))
        return YN_OK;
    int rc = mkdir_p(bin, 0755);
    if (rc == YN_OK)
        rc = copy_file_atomic(src ? src : "/proc/self/exe", path, 0755);
    if (rc == YN_OK)
        durable_step("boot helper installed");
    return rc;
}

static int cmd_install(const struct opts *o, int argc, char **argv)
{
    uint8_t pub[YN_BUNDLE_KEY_LEN];
    char pubpath[PATH_MAX], conf[PATH_MAX], dir[PATH_MAX], prog[PATH_MAX + 32], out[256];
    static struct bundle b;
    yn_bundle_state st;
    bool found;
    int lock = -1;
    if (argc != 1) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (o->pubkey)
        snprintf(pubpath, sizeof pubpath, "%s", o->pubkey);
    else if (root_path(o, pubpath, sizeof pubpath, "etc/keys/vendor.pub") != YN_OK)
        return EXIT_USAGE;
    if (load_pubkey(pubpath, pub) != YN_OK)
        return EXIT_USAGE;
    config_path(o, conf, sizeof conf);

    say("verify", "checking %s against the vendor key %s", argv[0], pubpath);
    if (bundle_open(argv[0], pub, &b) != YN_OK)
        return EXIT_FAIL;
    int rc = bundle_check_payload(&b);
    const yn_bundle_manifest *m = &b.m;
    const char *arch = board_arch(o);
    if (rc == YN_OK && strcmp(m->arch, arch) != 0)
        rc = fail(YN_EREFUSED, "%s is built for %s, this board is %s: get the %s bundle", argv[0],
                  m->arch, arch, arch);
    if (rc == YN_OK)
        rc = lock_root(o, &lock);
    if (rc == YN_OK)
        rc = state_load(o, &st, &found);
    if (rc == YN_OK && !found && current_slot(o) >= 0)
        rc = state_recover(o, &st);
    if (rc != YN_OK) {
        bundle_close(&b);
        return EXIT_FAIL;
    }

    /* what is running now, and may this replace it? */
    int target = st.active < 0 ? 0 : 1 - st.active;
    if (st.active >= 0) {
        const yn_bundle_slot *cur = &st.slot[st.active];
        yn_bundle_version cv;
        int cmp = yn_bundle_version_parse(cur->version, &cv) == YN_OK
                      ? yn_bundle_version_cmp(&m->v, &cv)
                      : 1;
        if (cur->status != YN_SLOT_CONFIRMED && !o->force)
            rc = fail(YN_EREFUSED,
                      "%s in slot %c has not passed its self-test yet, and slot %c holds what "
                      "it would fall back to: restart the terminal (or run yinian-flash boot) "
                      "first, or --force",
                      cur->version, yn_slot_name(st.active), yn_slot_name(target));
        else if (cmp < 0 && !o->force)
            rc = fail(YN_EREFUSED,
                      "downgrade from %s to %s refused: older firmware may not read what the "
                      "newer one wrote; --force if you mean it",
                      cur->version, m->version);
        else if (cmp == 0 && !o->force)
            rc = fail(YN_EREFUSED, "%s is already installed (slot %c); --force to reinstall",
                      m->version, yn_slot_name(st.active));
        else if (cmp < 0)
            say("check", "installing the older %s over %s (--force)", m->version, cur->version);
    }
    struct statvfs vfs;
    if (rc == YN_OK && statvfs(o->root, &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * vfs.f_frsize < m->payload_size + (1u << 20))
        rc = fail(YN_ENOSPC, "%s has %llu KiB free, the firmware needs %llu KiB: free space first",
                  o->root, (unsigned long long)vfs.f_bavail * vfs.f_frsize / 1024,
                  (unsigned long long)(m->payload_size + (1u << 20)) / 1024);
    if (rc != YN_OK) {
        bundle_close(&b);
        return EXIT_FAIL;
    }

    if (st.slot[target].status == YN_SLOT_FAILED && !strcmp(st.slot[target].version, m->version))
        say("check", "note: %s failed its self-test on this board before", m->version);
    /* the target slot is overwritten: it is no longer anything to go back to */
    if (st.slot[target].status != YN_SLOT_EMPTY && st.slot[target].status != YN_SLOT_WRITING) {
        st.slot[target] = (yn_bundle_slot){.status = YN_SLOT_WRITING};
        rc = state_save(o, &st, "target slot marked writing");
    }
    say("unpack", "writing %s (%" PRIu64 " bytes) to slot %c", m->version, m->payload_size,
        yn_slot_name(target));
    if (rc == YN_OK)
        rc = unpack_slot(o, &b, target);

    /* it has to run on this board at all */
    if (rc == YN_OK && slot_dir(o, target, dir, sizeof dir) == YN_OK) {
        const char *why;
        snprintf(prog, sizeof prog, "%s/bin/yinian-pos", dir);
        char *args[] = {prog, "--version", NULL};
        int ex = run_prog(args, 30, out, sizeof out, &why);
        if (ex != 0 || strncmp(out, "yinian-pos ", 11) != 0) {
            rc = fail(YN_EREFUSED, "%s --version %s: not switching to it", prog,
                      ex < 0 ? why : "failed");
            st.slot[target] =
                (yn_bundle_slot){.status = YN_SLOT_FAILED, .ledger_schema = m->ledger_schema};
            snprintf(st.slot[target].version, sizeof st.slot[target].version, "%s", m->version);
            (void)state_save(o, &st, "new slot failed");
        }
    }
    if (rc == YN_OK)
        rc = ledger_backup_if_needed(conf, m->ledger_schema, m->version);
    if (rc == YN_OK)
        rc = ensure_boot_helper(o, NULL);

    /* the switch: the state file (atomic) decides, the link follows */
    if (rc == YN_OK) {
        st.slot[target] =
            (yn_bundle_slot){.status = YN_SLOT_INSTALLED, .ledger_schema = m->ledger_schema};
        snprintf(st.slot[target].version, sizeof st.slot[target].version, "%s", m->version);
        st.active = target;
        st.attempts_left = o->attempts;
        rc = state_save(o, &st, "switch: state");
    }
    if (rc == YN_OK)
        rc = link_current(o, target, "switch: current link");
    if (rc == YN_OK) {
        int fb = yn_bundle_fallback(&st, false);
        const char *prev = fb >= 0 ? st.slot[fb].version : "";
        if (g.json)
            emit(json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:i, s:i}", "event", "result", "ok", 1,
                           "command", "install", "version", m->version, "slot",
                           (char[]){yn_slot_name(target), 0}, "previous", prev, "attempts",
                           o->attempts, "steps", (int)g.steps));
        else
            printf("installed %s in slot %c; it starts at the next boot and is kept once it "
                   "passes its self-test (%d tries)%s%s%s\n",
                   m->version, yn_slot_name(target), o->attempts,
                   prev[0] ? ", otherwise the terminal goes back to " : "", prev,
                   prev[0] ? " by itself" : "");
    }
    bundle_close(&b);
    close(lock);
    return rc == YN_OK ? 0 : EXIT_FAIL;
}

/* ---- boot ------------------------------------------------------------------------------------ */

/* Run the active slot's self-test against board.conf. */
static bool self_test(const struct opts *o, int slot, const char *conf)
{
    char dir[PATH_MAX], prog[PATH_MAX + 32];
    const char *why;
    if (slot_dir(o, slot, dir, sizeof dir) != YN_OK)
        return false;
    snprintf(prog, sizeof prog, "%s/bin/yinian-pos", dir);
    char *args[] = {prog, "--config", (char *)conf, "--self-test", NULL};
    say("self-test", "self-test of slot %c: %s --config %s --self-test", yn_slot_name(slot), prog,
        conf);
    int ex = run_prog(args, o->timeout_s, NULL, 0, &why);
    if (ex != 0)
        say("self-test", "self-test of slot %c failed: %s", yn_slot_name(slot),
            ex < 0 ? why : "exit status not 0");
    return ex == 0;
}

/* After a slot is confirmed: adopt its yinian-flash as the boot helper when
 * it differs and answers --version. */
static void refresh_boot_helper(const struct opts *o, int slot)
{
    char dir[PATH_MAX], src[PATH_MAX + 32], dst[PATH_MAX], out[128];
    const char *why;
    if (slot_dir(o, slot, dir, sizeof dir) != YN_OK ||
        root_path(o, dst, sizeof dst, "bin/yinian-flash") != YN_OK)
        return;
    snprintf(src, sizeof src, "%s/bin/yinian-flash", dir);
    if (!exists(src) || same_file_content(src, dst))
        return;
    char *args[] = {src, "--version", NULL};
    if (run_prog(args, 30, out, sizeof out, &why) != 0 || strncmp(out, "yinian-flash ", 13)) {
        yn_warn("%s does not run: the boot helper %s stays as it is", src, dst);
        return;
    }
    char bin[PATH_MAX];
    dir_of(dst, bin, sizeof bin);
    if (mkdir_p(bin, 0755) == YN_OK && copy_file_atomic(src, dst, 0755) == YN_OK)
        durable_step("boot helper updated");
}

/* The outcome of a start: a JSON result, or the message (stdout when the
 * daemon may start, stderr when not). Returns the exit code. */
static int boot_result(const yn_bundle_state *st, const char *result, bool ok, const char *message)
{
    if (!ok)
        fail(EXIT_FAIL, "%s", message);
    if (g.json) {
        const yn_bundle_slot *s = st->active >= 0 ? &st->slot[st->active] : NULL;
        emit(json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:i, s:s}", "event", "result", "ok", ok,
                       "command", "boot", "result", result, "slot",
                       st->active >= 0 ? (char[]){yn_slot_name(st->active), 0} : "-", "version",
                       s ? s->version : "", "attempts_left", st->attempts_left, "message",
                       message));
        g.result_done = true;
    } else if (ok) {
        printf("%s\n", message);
    }
    return ok ? 0 : EXIT_FAIL;
}

static int cmd_boot(const struct opts *o, int argc, char **argv)
{
    (void)argv;
    char conf[PATH_MAX], msg[512];
    yn_bundle_state st;
    bool found;
    int lock = -1;
    if (argc != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    config_path(o, conf, sizeof conf);
    if (lock_root(o, &lock) != YN_OK)
        return EXIT_FAIL;
    int rc = state_load(o, &st, &found);
    if (rc != YN_OK || !found) {
        if (state_recover(o, &st) != YN_OK) {
            close(lock);
            return fail(EXIT_FAIL,
                        "%s: no firmware installed (no state, no current link): "
                        "install a bundle with yinian-flash install",
                        o->root);
        }
    }
    if (st.active < 0) {
        close(lock);
        return fail(EXIT_FAIL, "%s: no firmware installed: install a bundle", o->root);
    }
    if (!exists(conf)) {
        (void)link_current(o, st.active, "boot: current link repaired");
        close(lock);
        return fail(EXIT_FAIL,
                    "%s is missing: the board is not provisioned; run yinian-flash "
                    "provision",
                    conf);
    }
    int before = st.active;
    enum yn_boot_action act = yn_bundle_boot_next(&st);
    int exit_code = 0;
    bool rolled_back = false;
    switch (act) {
    case YN_BOOT_NONE:
        exit_code = fail(EXIT_FAIL, "no firmware installed");
        break;
    case YN_BOOT_GOOD:
        rc = link_current(o, st.active, "boot: current link repaired");
        snprintf(msg, sizeof msg, "slot %c: %s, confirmed", yn_slot_name(st.active),
                 st.slot[st.active].version);
        exit_code = boot_result(&st, "good", rc == YN_OK, msg);
        break;
    case YN_BOOT_ROLLBACK:
        rolled_back = true;
        break;
    case YN_BOOT_TRY:
    case YN_BOOT_LAST: {
        const yn_bundle_slot *s = &st.slot[st.active];
        if (act == YN_BOOT_TRY)
            rc = state_save(o, &st, "boot: attempt taken");
        if (rc == YN_OK)
            rc = link_current(o, st.active, "boot: current link repaired");
        if (rc == YN_OK)
            rc = ledger_backup_if_needed(conf, s->ledger_schema, s->version);
        if (rc != YN_OK) {
            exit_code = EXIT_FAIL;
            break;
        }
        bool passed = self_test(o, st.active, conf);
        int tried = st.active;
        if (yn_bundle_boot_result(&st, passed, &rolled_back) && !rolled_back)
            rc = state_save(o, &st, "boot: confirmed");
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
            exit_code = boot_result(&st, "error", false, g.error);
        break;
    }
    }
    if (rolled_back) {
        /* before the state says so: the fallback must find a ledger it reads */
        const yn_bundle_slot *from = &st.slot[before], *to = &st.slot[st.active];
        rc = ledger_restore_if_needed(conf, to->ledger_schema, from->version);
        int rc2 = state_save(o, &st, "boot: rolled back");
        if (rc2 == YN_OK)
            rc2 = link_current(o, st.active, "boot: rolled back link");
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

static json_t *slot_json(const yn_bundle_slot *s)
{
    return json_pack("{s:s, s:s, s:i}", "status", yn_slot_status_name(s->status), "version",
                     s->version, "ledger_schema", s->ledger_schema);
}

static int cmd_status(const struct opts *o, int argc, char **argv)
{
    (void)argv;
    yn_bundle_state st;
    bool found;
    char conf[PATH_MAX], ledger[PATH_MAX];
    int uv = -1;
    if (argc != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (state_load(o, &st, &found) != YN_OK)
        return EXIT_FAIL;
    config_path(o, conf, sizeof conf);
    bool have_ledger = ledger_path_of(conf, ledger, sizeof ledger) && exists(ledger) &&
                       ledger_user_version(ledger, &uv) == YN_OK;
    int cur = current_slot(o), fb = yn_bundle_fallback(&st, false);
    bool confirmed = st.active >= 0 && st.slot[st.active].status == YN_SLOT_CONFIRMED;
    if (g.json) {
        json_t *r = json_pack("{s:s, s:b, s:s, s:s, s:s, s:s, s:s, s:b, s:i, s:s, s:{s:o, s:o}}",
                              "event", "result", "ok", 1, "command", "status", "root", o->root,
                              "arch", board_arch(o), "active",
                              st.active >= 0 ? (char[]){yn_slot_name(st.active), 0} : "-",
                              "current", cur >= 0 ? (char[]){yn_slot_name(cur), 0} : "-",
                              "confirmed", confirmed, "attempts_left", st.attempts_left, "fallback",
                              fb >= 0 ? (char[]){yn_slot_name(fb), 0} : "-", "slots", "a",
                              slot_json(&st.slot[0]), "b", slot_json(&st.slot[1]));
        if (r && have_ledger)
            json_object_set_new(r, "ledger_file_schema", json_integer(uv));
        emit(r);
        return 0;
    }
    printf("root           %s (board %s)\n", o->root, board_arch(o));
    if (!found && cur < 0) {
        printf("firmware       none installed\n");
        return 0;
    }
    for (int i = 0; i < 2; i++) {
        const yn_bundle_slot *s = &st.slot[i];
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

static int cmd_rollback(const struct opts *o, int argc, char **argv)
{
    (void)argv;
    yn_bundle_state st;
    bool found;
    char conf[PATH_MAX], ledger[PATH_MAX];
    int lock = -1, uv = 0;
    if (argc != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (lock_root(o, &lock) != YN_OK)
        return EXIT_FAIL;
    if (state_load(o, &st, &found) != YN_OK || st.active < 0) {
        close(lock);
        return fail(EXIT_FAIL, "%s: no firmware installed", o->root);
    }
    int from = st.active, to = 1 - st.active;
    enum yn_slot_status ts = st.slot[to].status;
    bool usable =
        ts == YN_SLOT_CONFIRMED || (o->force && (ts == YN_SLOT_INSTALLED || ts == YN_SLOT_FAILED));
    if (!usable) {
        close(lock);
        return fail(EXIT_FAIL, "nothing to roll back to: slot %c is %s%s", yn_slot_name(to),
                    yn_slot_status_name(ts),
                    ts == YN_SLOT_INSTALLED || ts == YN_SLOT_FAILED ? " (--force to use it)" : "");
    }
    config_path(o, conf, sizeof conf);
    if (ledger_path_of(conf, ledger, sizeof ledger) && exists(ledger) &&
        ledger_user_version(ledger, &uv) == YN_OK && st.slot[to].ledger_schema > 0 &&
        uv > st.slot[to].ledger_schema) {
        if (!o->force) {
            close(lock);
            return fail(EXIT_FAIL,
                        "the ledger is at schema %d, %s reads up to %d: it would not start. Not "
                        "rolled back (--force to switch anyway and restore a ledger backup by "
                        "hand)",
                        uv, st.slot[to].version, st.slot[to].ledger_schema);
        }
        say("check", "the ledger is at schema %d, %s reads up to %d (--force)", uv,
            st.slot[to].version, st.slot[to].ledger_schema);
    }
    st.active = to;
    st.attempts_left = st.slot[to].status == YN_SLOT_CONFIRMED ? 0 : DEFAULT_ATTEMPTS;
    if (st.slot[to].status == YN_SLOT_FAILED)
        st.slot[to].status = YN_SLOT_INSTALLED;
    int rc = state_save(o, &st, "rollback: state");
    if (rc == YN_OK)
        rc = link_current(o, to, "rollback: current link");
    close(lock);
    if (rc != YN_OK)
        return EXIT_FAIL;
    if (g.json)
        emit(json_pack("{s:s, s:b, s:s, s:s, s:s, s:s}", "event", "result", "ok", 1, "command",
                       "rollback", "slot", (char[]){yn_slot_name(to), 0}, "version",
                       st.slot[to].version, "from", st.slot[from].version));
    else
        printf("rolled back from %s (slot %c) to %s (slot %c); restart the terminal to run it\n",
               st.slot[from].version, yn_slot_name(from), st.slot[to].version, yn_slot_name(to));
    return 0;
}

/* ---- provision ------------------------------------------------------------------------------- */

struct setting {
    char section[32], key[48], value[512];
    bool done;
};

static int add_setting(struct setting *s, int *n, const char *section, const char *key,
                       const char *value)
{
    if (*n >= MAX_SETS + 32)
        return fail(EXIT_USAGE, "too many settings");
    if (strchr(value, '\n') || strchr(value, '\r') || strlen(value) >= sizeof s->value ||
        strlen(section) >= sizeof s->section || strlen(key) >= sizeof s->key)
        return fail(EXIT_USAGE, "[%s] %s: the value must be one line under %zu bytes", section, key,
                    sizeof s->value);
    for (int i = 0; i < *n; i++)
        if (!strcmp(s[i].section, section) && !strcmp(s[i].key, key)) {
            snprintf(s[i].value, sizeof s[i].value, "%s", value); /* later wins */
            return 0;
        }
    snprintf(s[*n].section, sizeof s->section, "%s", section);
    snprintf(s[*n].key, sizeof s->key, "%s", key);
    snprintf(s[*n].value, sizeof s->value, "%s", value);
    s[*n].done = false;
    (*n)++;
    return 0;
}

static void buf_add(char **buf, size_t *len, size_t *cap, const char *text, size_t n)
{
    if (*len + n + 1 > *cap) {
        size_t ncap = (*cap + n + 1) * 2;
        char *p = realloc(*buf, ncap);
        if (!p)
            return;
        *buf = p;
        *cap = ncap;
    }
    memcpy(*buf + *len, text, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static void append_pending(char **out, size_t *len, size_t *cap, struct setting *s, int n,
                           const char *section)
{
    char line[700];
    for (int i = 0; i < n; i++)
        if (!s[i].done && !strcmp(s[i].section, section)) {
            int k = snprintf(line, sizeof line, "%s = %s\n", s[i].key, s[i].value);
            buf_add(out, len, cap, line, (size_t)k);
            s[i].done = true;
        }
}

/* The template with each setting's value put in place of its key's line
 * (comments and order kept); keys the template lacks are added at the end of
 * their section, sections it lacks at the end. */
static char *apply_settings(const char *tmpl, struct setting *s, int n, const char *header)
{
    char *out = NULL, section[64] = "";
    size_t len = 0, cap = 0;
    buf_add(&out, &len, &cap, header, strlen(header));
    for (const char *p = tmpl; *p;) {
        const char *nl = strchr(p, '\n');
        size_t ll = nl ? (size_t)(nl - p) : strlen(p);
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(ll < sizeof line ? ll : sizeof line - 1), p);
        const char *t = line;
        while (*t == ' ' || *t == '\t')
            t++;
        bool replaced = false;
        if (*t == '[') {
            append_pending(&out, &len, &cap, s, n, section);
            const char *e = strchr(t, ']');
            snprintf(section, sizeof section, "%.*s", e ? (int)(e - t - 1) : 0, t + 1);
        } else if (*t && *t != ';' && *t != '#' && strchr(t, '=')) {
            char key[64];
            const char *eq = strchr(t, '=');
            int kl = (int)(eq - t);
            while (kl > 0 && (t[kl - 1] == ' ' || t[kl - 1] == '\t'))
                kl--;
            snprintf(key, sizeof key, "%.*s", kl, t);
            for (int i = 0; i < n; i++)
                if (!strcmp(s[i].section, section) && !strcmp(s[i].key, key)) {
                    char nline[700];
                    int k = snprintf(nline, sizeof nline, "%s = %s\n", key, s[i].value);
                    buf_add(&out, &len, &cap, nline, (size_t)k);
                    s[i].done = replaced = true;
                }
        }
        if (!replaced) {
            buf_add(&out, &len, &cap, p, ll);
            buf_add(&out, &len, &cap, "\n", 1);
        }
        p += ll + (nl ? 1 : 0);
    }
    append_pending(&out, &len, &cap, s, n, section);
    for (int i = 0; i < n; i++)
        if (!s[i].done) {
            char line[100];
            int k = snprintf(line, sizeof line, "\n[%s]\n", s[i].section);
            buf_add(&out, &len, &cap, line, (size_t)k);
            append_pending(&out, &len, &cap, s, n, s[i].section);
        }
    return out;
}

/* Check a key file: loads as hex, the right length (0 = an issuer key ring,
 * checked as one). Secret files must be 0600 and ours, as the daemon wants. */
static int check_key(const char *src, bool secret, const char *what, size_t want_len)
{
    uint8_t buf[YN_KEY_MAX];
    size_t n;
    char err[160] = "";
    int rc = yn_key_file_load(src, secret, what, buf, sizeof buf, &n);
    if (rc == YN_OK && want_len && n != want_len) {
        snprintf(err, sizeof err, "%zu bytes, expected %zu", n, want_len);
        rc = YN_EINVAL;
    } else if (rc == YN_OK && !want_len) { /* a key ring: "VV <hex>" lines */
        static yn_card_keyring ring;
        rc = yn_card_keyring_from_bytes(buf, n, &ring, err, sizeof err);
    }
    explicit_bzero(buf, sizeof buf);
    if (rc != YN_OK)
        return fail(EXIT_USAGE, "%s %s: %s", what, src, err[0] ? err : yn_strerror(rc));
    return 0;
}

/* One file provision puts under ROOT/etc, and the board.conf key naming it. */
struct prov_file {
    const char *src;     /* given by the technician, or NULL */
    const char *rel;     /* under ROOT/etc */
    const char *what;    /* for messages */
    const char *section; /* board.conf key naming it, or NULL */
    const char *key;
    unsigned mode;          /* of the copy */
    bool secret;            /* a secret key: 0600 and ours at the source too */
    size_t key_len;         /* key bytes; 0 = issuer ring; SIZE_MAX = not a key */
    bool required;          /* must be given unless ROOT/etc has it already */
    char src_abs[PATH_MAX]; /* where the check reads it from */
    bool into_token;        /* a secret the token takes: checked, never copied or named */
};

/* Inputs checked before anything is written: keys, the CA, the policy. */
static int provision_inputs(const struct opts *o, struct prov_file *f, int n)
{
    char path[PATH_MAX], rel[64];
    for (int i = 0; i < n; i++) {
        snprintf(rel, sizeof rel, "etc/%s", f[i].rel);
        if (root_path(o, path, sizeof path, rel) != YN_OK)
            return EXIT_USAGE;
        f[i].src_abs[0] = '\0';
        if (!f[i].src) {
            if (exists(path))
                snprintf(f[i].src_abs, sizeof f[i].src_abs, "%s", path);
            else if (f[i].required)
                return fail(EXIT_USAGE, "%s is needed (this board has none yet)", f[i].what);
            continue;
        }
        if (!realpath(f[i].src, f[i].src_abs))
            return fail(EXIT_USAGE, "%s %s: %s", f[i].what, f[i].src, strerror(errno));
        int rc = 0;
        if (f[i].key_len != SIZE_MAX) {
            rc = check_key(f[i].src_abs, f[i].secret, f[i].what, f[i].key_len);
        } else if (!strcmp(f[i].rel, "keys/token.pin")) {
            char pin[256];
            size_t pin_len;
            if (yn_secret_file_text(f[i].src_abs, "token PIN file", pin, sizeof pin, &pin_len) !=
                    YN_OK ||
                pin_len == 0)
                rc = fail(EXIT_USAGE,
                          "--pin-file %s: the token's PIN, in a file of ours with mode "
                          "0600",
                          f[i].src);
            explicit_bzero(pin, sizeof pin);
        } else if (!strcmp(f[i].rel, "ca.pem")) {
            FILE *fp = fopen(f[i].src_abs, "r");
            X509 *x = fp ? PEM_read_X509(fp, NULL, NULL, NULL) : NULL;
            if (fp)
                fclose(fp);
            if (!x)
                rc = fail(EXIT_USAGE, "--ca %s is not a PEM certificate", f[i].src);
            X509_free(x);
        } else {
            yn_policy *p = NULL;
            char err[256];
            if (yn_policy_load_file(f[i].src_abs, &p, err, sizeof err) != YN_OK)
                rc = fail(EXIT_USAGE, "--policy %s: %s", f[i].src, err);
            yn_policy_free(p);
        }
        if (rc)
            return rc;
    }
    return 0;
}

/* board.conf text from the template and the settings; in check mode every
 * provisioned file is named where it is now (absolute), else where it goes. */
static char *provision_text(const struct opts *o, const char *tmpl, const char *tmpl_path,
                            const struct prov_file *f, int nf, bool check)
{
    static struct setting sets[MAX_SETS + 32];
    char ledger[PATH_MAX + 16], header[PATH_MAX + 160], stamp[32];
    int n = 0, rc = 0;
    for (int i = 0; i < nf && !rc; i++)
        if (f[i].section && f[i].src_abs[0] && !f[i].into_token)
            rc = add_setting(sets, &n, f[i].section, f[i].key, check ? f[i].src_abs : f[i].rel);
    char module[PATH_MAX];
    if (!rc && o->pkcs11_module && !realpath(o->pkcs11_module, module))
        rc = fail(EXIT_USAGE, "--pkcs11-module %s: %s", o->pkcs11_module, strerror(errno));
    if (!rc && o->pkcs11_module) { /* the secret keys are in the token: no key file is named */
        const char *token[][2] = {{"backend", "pkcs11"},
                                  {"pkcs11_module", module},
                                  {"token_label", o->token_label},
                                  {"terminal_key", ""},
                                  {"card_master_key", ""}};
        for (size_t i = 0; i < sizeof token / sizeof *token && !rc; i++)
            rc = add_setting(sets, &n, "keys", token[i][0], token[i][1]);
    }
    if (!rc && o->server_url)
        rc = add_setting(sets, &n, "sync", "url", o->server_url);
    snprintf(ledger, sizeof ledger, "%s/var/ledger.db", o->root);
    const char *ident[][3] = {
        {"terminal", "id", o->terminal_id},
        {"terminal", "canteen_id", o->canteen},
        {"terminal", "canteen_name", o->canteen_name ? o->canteen_name : ""},
        {"terminal", "district", o->district},
        {"terminal", "street", o->street},
        {"terminal", "mode", o->mode},
        {"ledger", "path", ledger},
    };
    for (size_t i = 0; i < sizeof ident / sizeof *ident && !rc; i++)
        if (ident[i][2])
            rc = add_setting(sets, &n, ident[i][0], ident[i][1], ident[i][2]);
    /* the technician's own --set SECTION.KEY=VALUE last: they win */
    for (int i = 0; i < o->n_sets && !rc; i++) {
        const char *dot = strchr(o->sets[i], '.'), *eq = strchr(o->sets[i], '=');
        char section[32], key[48];
        if (!dot || !eq || dot > eq || dot - o->sets[i] >= (int)sizeof section ||
            eq - dot - 1 >= (int)sizeof key || dot == o->sets[i] || eq == dot + 1) {
            rc = fail(EXIT_USAGE, "--set %s: expected SECTION.KEY=VALUE", o->sets[i]);
            break;
        }
        snprintf(section, sizeof section, "%.*s", (int)(dot - o->sets[i]), o->sets[i]);
        snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
        rc = add_setting(sets, &n, section, key, eq + 1);
    }
    if (rc)
        return NULL;
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%SZ", &tm);
    snprintf(header, sizeof header,
             "; provisioned by yinian-flash on %s for terminal %s (template %s)\n", stamp,
             o->terminal_id, tmpl_path);
    char *text = apply_settings(tmpl, sets, n, header);
    if (!text)
        fail(EXIT_FAIL, "out of memory");
    return text;
}

/* Does text load as board.conf (written next to where it will live)? The
 * configuration it loads to, if cfg is given. */
static int provision_check(const char *conf, const char *text, const yn_config **loaded)
{
    static yn_config cfg;
    static yn_config_errors errs;
    if (loaded)
        *loaded = &cfg;
    char check[PATH_MAX + 16];
    snprintf(check, sizeof check, "%s.check", conf);
    if (yn_file_write_atomic(check, text, strlen(text), 0644) != YN_OK)
        return fail(EXIT_FAIL, "cannot write %s", check);
    int rc = yn_config_load(check, &cfg, &errs);
    unlink(check);
    if (rc == YN_OK)
        return 0;
    for (int i = 0; i < errs.count && i < YN_CONFIG_MAX_ERRORS; i++)
        fprintf(stderr, "%s\n", errs.msg[i]);
    return fail(EXIT_USAGE,
                "the board.conf this would write does not load (above, checked as "
                "%s): fix the options; nothing was changed",
                check);
}

static int check_args(const struct opts *o)
{
    if (!o->terminal_id || !o->canteen || !o->district || !o->street)
        return fail(EXIT_USAGE, "provision needs --terminal-id, --canteen, --district and "
                                "--street");
    if (!!o->server_url != !!o->ca)
        return fail(EXIT_USAGE, "--server-url and --ca go together");
    if (o->enrol_token && !o->server_url)
        return fail(EXIT_USAGE, "--enrol-token needs --server-url and --ca");
    if (o->server_url && strncmp(o->server_url, "https://", 8) != 0)
        return fail(EXIT_USAGE, "--server-url must be https://HOST[:PORT]");
    if (!!o->pkcs11_module != !!o->token_label || !!o->pkcs11_module != !!o->pin_file)
        return fail(EXIT_USAGE, "--pkcs11-module, --token-label and --pin-file go together");
    return 0;
}

/* One secret key from a hex file (0600, ours) into the keystore. */
static int import_key_file(yn_keystore *ks, enum yn_key_id id, const char *path, bool force)
{
    uint8_t key[YN_KEY_MAX];
    size_t n = 0;
    const char *what = id == YN_KEYID_CARD_MASTER ? "card master key" : "terminal key";
    int rc = yn_key_file_load(path, true, what, key, sizeof key, &n);
    if (rc == YN_OK)
        rc = yn_keystore_store(ks, id, key, n, force);
    explicit_bzero(key, sizeof key);
    if (rc == YN_EDUPLICATE)
        return fail(EXIT_FAIL,
                    "%s holds another %s: not replaced (--force replaces it; the old "
                    "one is destroyed)",
                    ks->where, what);
    if (rc != YN_OK)
        return fail(EXIT_FAIL, "%s %s not stored in %s: %s", what, path, ks->where,
                    yn_strerror(rc));
    return 0;
}

/* backend = pkcs11: the master key (and a terminal key, if given) into the
 * token, as non-extractable objects; no file of them goes onto the board. */
static int provision_token(const struct opts *o, const yn_config *cfg, const struct prov_file *f)
{
    yn_keystore ks;
    if (yn_keystore_open(&ks, NULL, cfg) != YN_OK)
        return fail(EXIT_FAIL, "%s", ks.error);
    int rc = 0;
    yn_keystore_key_info info;
    if (f[0].src)
        rc = import_key_file(&ks, YN_KEYID_CARD_MASTER, f[0].src_abs, o->force);
    else if (yn_keystore_inspect(&ks, YN_KEYID_CARD_MASTER, &info) != YN_OK || !info.works)
        rc = fail(EXIT_USAGE, "--card-master-key is needed: %s holds none yet", ks.where);
    if (!rc && f[2].src)
        rc = import_key_file(&ks, YN_KEYID_TERMINAL, f[2].src_abs, o->force);
    if (!rc)
        durable_step("provision: keys in the token");
    yn_keystore_close(&ks);
    return rc;
}

/* A new terminal key (32 random bytes, hex, 0600) when the board has none. */
static int make_terminal_key(const char *path)
{
    uint8_t key[32];
    char text[2 * sizeof key + 2];
    if (exists(path))
        return 0;
    if (RAND_priv_bytes(key, sizeof key) != 1)
        return fail(EXIT_FAIL, "no random bytes for the terminal key");
    hex(key, sizeof key, text);
    explicit_bzero(key, sizeof key);
    strcat(text, "\n");
    int rc = yn_file_write_atomic(path, text, strlen(text), 0600);
    explicit_bzero(text, sizeof text);
    if (rc != YN_OK)
        return fail(EXIT_FAIL, "cannot write %s: %s", path, yn_strerror(rc));
    durable_step("provision: terminal key made");
    return 0;
}

/* Everything is checked first (the key files, the CA, the policy, and the
 * board.conf that would result, loaded as the daemon loads it); then the
 * files are copied in, each atomically, and board.conf is replaced last. */
static int cmd_provision(const struct opts *o, int argc, char **argv)
{
    (void)argv;
    char conf[PATH_MAX], tmpl_path[PATH_MAX], dir[PATH_MAX], path[PATH_MAX], rel[64];
    char *tmpl = NULL, *text = NULL;
    size_t tlen;
    int lock = -1, rc;
    if (argc != 0) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if ((rc = check_args(o)))
        return rc;
    if (root_path(o, conf, sizeof conf, "etc/board.conf") != YN_OK)
        return EXIT_USAGE;
    if (o->template)
        snprintf(tmpl_path, sizeof tmpl_path, "%s", o->template);
    else if (root_path(o, tmpl_path, sizeof tmpl_path, "current/share/board.conf"))
        return EXIT_USAGE;
    if (read_file(tmpl_path, 1 << 20, &tmpl, &tlen) != YN_OK)
        return fail(EXIT_USAGE,
                    "cannot read the board.conf template %s: install a firmware bundle first, "
                    "or give --template",
                    tmpl_path);
    bool token = o->pkcs11_module != NULL;
    /* the order of the first three is provision_token's */
    struct prov_file f[] = {
        {o->card_master_key, "keys/card-master.key", "--card-master-key", "keys", "card_master_key",
         0600, true, YN_CARD_MASTER_LEN, !token, "", token},
        {o->issuer_pub, "keys/issuer.pub", "--issuer-pub", "keys", "issuer_pubkey", 0600, false, 0,
         true, "", false},
        {o->terminal_key, "keys/terminal.key", "--terminal-key", "keys", "terminal_key", 0600, true,
         32, !token, "", token},
        {o->pin_file, "keys/token.pin", "--pin-file", token ? "keys" : NULL, "pin_file", 0600, true,
         SIZE_MAX, token, "", false},
        {o->district_pub, "keys/district.pub", "--district-pub", "keys", "district_pubkey", 0600,
         false, 32, false, "", false},
        {o->vendor_pub, "keys/vendor.pub", "--vendor-pub", NULL, NULL, 0600, false,
         YN_BUNDLE_KEY_LEN, false, "", false},
        {o->ca, "ca.pem", "--ca", "sync", "ca_file", 0644, false, SIZE_MAX, false, "", false},
        {o->policy, "policy.json", "--policy", "policy", "file", 0644, false, SIZE_MAX, true, "",
         false},
    };
    const int nf = (int)(sizeof f / sizeof *f);

    if ((rc = lock_root(o, &lock)) != YN_OK) {
        free(tmpl);
        return EXIT_FAIL;
    }
    if (exists(conf) && !o->force)
        rc = fail(EXIT_FAIL,
                  "%s exists: this board is provisioned already (--force to provision it "
                  "again; the ledger and an existing terminal key are kept)",
                  conf);
    if (!rc && (root_path(o, dir, sizeof dir, "etc/keys") || mkdir_p(dir, 0700) != YN_OK ||
                root_path(o, path, sizeof path, "var") || mkdir_p(path, 0750) != YN_OK ||
                root_path(o, path, sizeof path, "etc/keys/terminal.key")))
        rc = EXIT_FAIL;
    /* the one file made here rather than brought: harmless to make early */
    if (!rc && !o->terminal_key && !token)
        rc = make_terminal_key(path);
    if (!rc)
        rc = provision_inputs(o, f, nf);
    if (!rc && !(text = provision_text(o, tmpl, tmpl_path, f, nf, true)))
        rc = EXIT_USAGE;
    const yn_config *checked = NULL;
    if (!rc)
        rc = provision_check(conf, text, &checked);
    free(text);
    text = NULL;
    /* all checked: the token takes its keys, then files are copied in, then
     * board.conf (checked once more where it lives) */
    if (!rc && token)
        rc = provision_token(o, checked, f);
    for (int i = 0; i < nf && !rc; i++) {
        if (!f[i].src || f[i].into_token)
            continue;
        snprintf(rel, sizeof rel, "etc/%s", f[i].rel);
        if (root_path(o, path, sizeof path, rel) || copy_file_atomic(f[i].src_abs, path, f[i].mode))
            rc = EXIT_FAIL;
        else
            durable_step("provision: file copied in");
    }
    if (!rc && !(text = provision_text(o, tmpl, tmpl_path, f, nf, false)))
        rc = EXIT_FAIL;
    if (!rc)
        rc = provision_check(conf, text, NULL);
    if (!rc && yn_file_write_atomic(conf, text, strlen(text), 0644) != YN_OK)
        rc = fail(EXIT_FAIL, "cannot write %s", conf);
    if (!rc)
        durable_step("provision: board.conf written");
    if (!rc && ensure_boot_helper(o, NULL) != YN_OK)
        rc = EXIT_FAIL;
    free(text);
    free(tmpl);
    close(lock);
    if (rc)
        return rc;
    bool enrolled = false;
    if (o->enrol_token) {
        /* the district issues this terminal's key against the one-time token; it goes
         * into the keystore the new board.conf names (a file, or the token) */
        char ca[PATH_MAX], id[YN_ID_MAX];
        static yn_config cfg;
        static yn_config_errors errs;
        yn_keystore ks;
        if (root_path(o, ca, sizeof ca, "etc/ca.pem"))
            return EXIT_USAGE;
        if (yn_config_load(conf, &cfg, &errs) != YN_OK || yn_keystore_open(&ks, NULL, &cfg))
            return fail(EXIT_FAIL,
                        "provisioned, but %s or its keystore does not open for the "
                        "enrolment (yinian-diag says why)",
                        conf);
        int er = yn_sync_enrol(o->server_url, ca, o->enrol_token, &ks, id, sizeof id);
        yn_keystore_close(&ks);
        if (er != YN_OK)
            return fail(EXIT_FAIL,
                        "provisioned, but enrolment with %s failed: %s (run yinian-pos --config %s "
                        "--enrol TOKEN once the network is there)",
                        o->server_url, yn_strerror(er), conf);
        if (strcmp(id, o->terminal_id) != 0)
            return fail(EXIT_FAIL,
                        "the district enrolled this board as terminal %s, not %s: provision again "
                        "with --terminal-id %s --force",
                        id, o->terminal_id, id);
        durable_step("provision: enrolled");
        enrolled = true;
    }
    if (g.json)
        emit(json_pack("{s:s, s:b, s:s, s:s, s:s, s:b}", "event", "result", "ok", 1, "command",
                       "provision", "terminal", o->terminal_id, "board_conf", conf, "enrolled",
                       enrolled));
    else {
        printf("provisioned terminal %s (canteen %s, district %s, street %s): %s, keys in "
               "%s\n",
               o->terminal_id, o->canteen, o->district, o->street, conf,
               token ? "the token (non-extractable)" : "etc/keys (0600)");
        if (token && o->card_master_key)
            printf("the token holds the card master key now: remove %s from this board (keep it "
                   "only at the issuing desk)\n",
                   o->card_master_key);
        if (enrolled)
            printf("enrolled with %s: the terminal key came from the district\n", o->server_url);
        else if (o->server_url)
            printf("enrol with the district (one-time token from yinian-district enrol-token):\n"
                   "  %s/current/bin/yinian-pos --config %s --enrol TOKEN\n",
                   o->root, conf);
        else
            printf("no district server given: the terminal works offline\n");
    }
    return 0;
}

/* import-key: one secret key into the keystore board.conf names — on a board
 * with a token, how the master key gets there without provisioning again. */
static int cmd_import_key(const struct opts *o, int argc, char **argv)
{
    static yn_config cfg;
    static yn_config_errors errs;
    char conf[PATH_MAX];
    if (argc != 2 || (strcmp(argv[0], "card-master") != 0 && strcmp(argv[0], "terminal") != 0)) {
        usage(stderr);
        return EXIT_USAGE;
    }
    enum yn_key_id id = !strcmp(argv[0], "card-master") ? YN_KEYID_CARD_MASTER : YN_KEYID_TERMINAL;
    if (o->config)
        snprintf(conf, sizeof conf, "%s", o->config);
    else if (root_path(o, conf, sizeof conf, "etc/board.conf"))
        return EXIT_USAGE;
    if (yn_config_load(conf, &cfg, &errs) != YN_OK) {
        for (int i = 0; i < errs.count && i < YN_CONFIG_MAX_ERRORS; i++)
            fprintf(stderr, "%s\n", errs.msg[i]);
        return fail(EXIT_USAGE, "%s does not load: fix it first", conf);
    }
    yn_keystore ks;
    if (yn_keystore_open(&ks, NULL, &cfg) != YN_OK)
        return fail(EXIT_FAIL, "%s", ks.error);
    int rc = import_key_file(&ks, id, argv[1], o->force);
    if (!rc)
        durable_step("import-key: stored");
    if (!rc && g.json)
        emit(json_pack("{s:s, s:b, s:s, s:s, s:s}", "event", "result", "ok", 1, "command",
                       "import-key", "key", argv[0], "keystore", ks.where));
    else if (!rc)
        printf("%s key stored in %s%s\n", argv[0], ks.where,
               strcmp(cfg.keys.backend, "pkcs11") == 0
                   ? " (non-extractable): remove the key file from this board"
                   : "");
    yn_keystore_close(&ks);
    return rc;
}

/* ---- main ------------------------------------------------------------------------------------ */

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option lopts[] = {{"root", required_argument, NULL, 'r'},
                                          {"key", required_argument, NULL, 'k'},
                                          {"pubkey", required_argument, NULL, 'p'},
                                          {"out", required_argument, NULL, 'o'},
                                          {"arch", required_argument, NULL, 'a'},
                                          {"version", required_argument, NULL, 'V'},
                                          {"gitrev", required_argument, NULL, 'g'},
                                          {"ledger-schema", required_argument, NULL, 'L'},
                                          {"attempts", required_argument, NULL, 'n'},
                                          {"timeout", required_argument, NULL, 't'},
                                          {"config", required_argument, NULL, 'c'},
                                          {"force", no_argument, NULL, 'f'},
                                          {"json", no_argument, NULL, 'j'},
                                          {"terminal-id", required_argument, NULL, 1},
                                          {"canteen", required_argument, NULL, 2},
                                          {"canteen-name", required_argument, NULL, 3},
                                          {"district", required_argument, NULL, 4},
                                          {"street", required_argument, NULL, 5},
                                          {"mode", required_argument, NULL, 6},
                                          {"card-master-key", required_argument, NULL, 7},
                                          {"issuer-pub", required_argument, NULL, 8},
                                          {"terminal-key", required_argument, NULL, 9},
                                          {"district-pub", required_argument, NULL, 10},
                                          {"vendor-pub", required_argument, NULL, 11},
                                          {"policy", required_argument, NULL, 12},
                                          {"server-url", required_argument, NULL, 13},
                                          {"ca", required_argument, NULL, 14},
                                          {"template", required_argument, NULL, 15},
                                          {"set", required_argument, NULL, 16},
                                          {"enrol-token", required_argument, NULL, 17},
                                          {"pkcs11-module", required_argument, NULL, 18},
                                          {"token-label", required_argument, NULL, 19},
                                          {"pin-file", required_argument, NULL, 20},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    static struct opts o;
    const char *root = DEFAULT_ROOT;
    o.attempts = DEFAULT_ATTEMPTS;
    o.timeout_s = DEFAULT_TIMEOUT;
    yn_log_init("yinian-flash", YN_LOG_INFO, false);

    if (argc >= 2 && !strcmp(argv[1], "--version")) {
        printf("yinian-flash %s (%s)\n", YN_VERSION, YN_GITREV);
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-') {
        usage(argc < 2 ? stderr : stdout);
        return argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) ? 0 : EXIT_USAGE;
    }
    g.command = argv[1];
    const char *stop = getenv("YN_FLASH_STOP_AT");
    if (stop)
        g.stop_at = strtol(stop, NULL, 10);
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
        switch (c) {
        case 'r':
            root = optarg;
            break;
        case 'k':
            o.key = optarg;
            break;
        case 'p':
            o.pubkey = optarg;
            break;
        case 'o':
            o.out = optarg;
            break;
        case 'a':
            o.arch = optarg;
            break;
        case 'V':
            o.version = optarg;
            break;
        case 'g':
            o.gitrev = optarg;
            break;
        case 'L':
            if (parse_int(optarg, 1, 1000000, &o.ledger_schema))
                return fail(EXIT_USAGE, "--ledger-schema must be a positive integer");
            break;
        case 'n':
            if (parse_int(optarg, 1, 20, &o.attempts))
                return fail(EXIT_USAGE, "--attempts must be 1..20");
            break;
        case 't':
            if (parse_int(optarg, 1, 3600, &o.timeout_s))
                return fail(EXIT_USAGE, "--timeout must be 1..3600 seconds");
            break;
        case 'c':
            o.config = optarg;
            break;
        case 'f':
            o.force = true;
            break;
        case 'j':
            o.json = true;
            break;
        case 1:
            o.terminal_id = optarg;
            break;
        case 2:
            o.canteen = optarg;
            break;
        case 3:
            o.canteen_name = optarg;
            break;
        case 4:
            o.district = optarg;
            break;
        case 5:
            o.street = optarg;
            break;
        case 6:
            o.mode = optarg;
            break;
        case 7:
            o.card_master_key = optarg;
            break;
        case 8:
            o.issuer_pub = optarg;
            break;
        case 9:
            o.terminal_key = optarg;
            break;
        case 10:
            o.district_pub = optarg;
            break;
        case 11:
            o.vendor_pub = optarg;
            break;
        case 12:
            o.policy = optarg;
            break;
        case 13:
            o.server_url = optarg;
            break;
        case 14:
            o.ca = optarg;
            break;
        case 15:
            o.template = optarg;
            break;
        case 17:
            o.enrol_token = optarg;
            break;
        case 18:
            o.pkcs11_module = optarg;
            break;
        case 19:
            o.token_label = optarg;
            break;
        case 20:
            o.pin_file = optarg;
            break;
        case 16:
            if (o.n_sets >= MAX_SETS)
                return fail(EXIT_USAGE, "at most %d --set options", MAX_SETS);
            o.sets[o.n_sets++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (o.arch && !yn_bundle_arch_ok(o.arch))
        return fail(EXIT_USAGE, "--arch must be host, aarch64 or armhf");
    /* the root as an absolute path: the current link and the self-test rely on it */
    if (root[0] == '/') {
        snprintf(o.root, sizeof o.root, "%s", root);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd) || pathf(o.root, sizeof o.root, "%s/%s", cwd, root))
            return fail(EXIT_USAGE, "--root %s: path too long", root);
    }
    g.json = o.json;
    g.tty = !o.json && isatty(STDERR_FILENO);

    static const struct {
        const char *name;
        int (*run)(const struct opts *, int, char **);
    } cmds[] = {
        {"keygen", cmd_keygen},     {"bundle", cmd_bundle},       {"verify", cmd_verify},
        {"install", cmd_install},   {"boot", cmd_boot},           {"status", cmd_status},
        {"rollback", cmd_rollback}, {"provision", cmd_provision}, {"import-key", cmd_import_key}};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        if (strcmp(argv[1], cmds[i].name) != 0)
            continue;
        int rc = cmds[i].run(&o, argc - optind, argv + optind);
        end_progress_line();
        if (rc != 0 && g.json && !g.result_done)
            emit(json_pack("{s:s, s:b, s:s, s:s, s:i}", "event", "result", "ok", 0, "command",
                           argv[1], "error", g.error, "exit", rc));
        return rc;
    }
    fprintf(stderr, "yinian-flash: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
