/* files.c — the file work of the installer that fileio does not do: rm -rf,
 * copies put in place atomically, comparing files, and running the
 * firmware's programs with a time limit. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flash.h"
#include "fileio.h"
#include "timeutil.h"

int yn_fl_pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? YN_ELIMIT : YN_OK;
}

bool yn_fl_exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* mkdir -p (fileio: each folder it creates is synced into its parent). */
int yn_fl_mkdir_p(const char *path, unsigned mode)
{
    int rc = yn_file_mkdir_p(path, mode);
    return rc == YN_OK ? YN_OK
                       : yn_fl_fail(rc, "cannot create folder %s: %s", path, yn_strerror(rc));
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -rf path (absent is fine). */
int yn_fl_rm_rf(const char *path)
{
    if (!yn_fl_exists(path))
        return YN_OK;
    if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return yn_fl_fail(YN_EIO, "cannot remove %s: %s", path, strerror(errno));
    return YN_OK;
}

int yn_fl_fsync_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    return flag == FTW_D || flag == FTW_DP ? (yn_file_sync_dir(path) == YN_OK ? 0 : -1) : 0;
}

/* Copy src to dst atomically with mode (fileio's path.new, sync, rename). */
int yn_fl_copy_file_atomic(const char *src, const char *dst, unsigned mode)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return yn_fl_fail(YN_EIO, "cannot read %s: %s", src, strerror(errno));
    yn_file_atomic out;
    int rc = yn_file_atomic_open(&out, dst, mode);
    if (rc != YN_OK) {
        close(in);
        return yn_fl_fail(rc, "cannot create %s.new: %s", dst, yn_strerror(rc));
    }
    static char buf[CHUNK];
    ssize_t n = 0;
    while (rc == YN_OK && (n = read(in, buf, sizeof buf)) > 0)
        rc = yn_file_atomic_write(&out, buf, (size_t)n);
    if (n < 0)
        rc = yn_status_of_errno(errno);
    close(in);
    if (rc != YN_OK) {
        yn_file_atomic_abort(&out);
        return yn_fl_fail(rc, "cannot copy %s to %s: %s", src, dst, yn_strerror(rc));
    }
    if ((rc = yn_file_atomic_commit(&out)) != YN_OK)
        return yn_fl_fail(rc, "cannot write %s: %s", dst, yn_strerror(rc));
    return YN_OK;
}

bool yn_fl_same_file_content(const char *a, const char *b)
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

int yn_fl_run_prog(char *const argv[], int timeout_s, char *out, size_t cap, const char **why)
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
    const int64_t deadline_ms = yn_time_mono_ms() + (int64_t)timeout_s * 1000;
    for (;;) {
        struct pollfd pfd = {.fd = pipefd[0], .events = POLLIN};
        if (!eof && poll(&pfd, 1, 5) > 0)
            take(pipefd[0], out, cap, &got, &eof);
        else if (eof)
            yn_time_sleep_ms(5);
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        if (yn_time_mono_ms() >= deadline_ms) {
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
