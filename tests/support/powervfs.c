/* powervfs.c — simulated power loss under SQLite (powervfs.h).
 *
 * One node per tracked path plays that file's page cache: img is the file
 * as the program sees it, pending the writes and truncations since the last
 * sync, oldest first, each with its own copy of the bytes. xSync applies the
 * pending list to the real file (pwrite / ftruncate on a descriptor of the
 * node's own) and empties it; no fsync is needed, as the real file *is* what
 * survives in this simulation. Nodes outlive the handles (a closed file's
 * page cache is still the page cache) until yn_power_revive(). */
#include "powervfs.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TRACKED (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL)

struct pending {
    struct pending *next;
    bool truncate;  /* else a write */
    int64_t offset; /* write: where; truncate: the new size */
    int64_t len;
    uint64_t order; /* global order of writes, for "the last one" */
    uint8_t *data;
};

struct node {
    struct node *next;
    char *path;
    int refs;     /* handles open on it */
    bool deleted; /* the file was deleted: gone with its last handle */
    int fd;       /* the real file, for what survives */
    uint8_t *img; /* the file as the program sees it */
    int64_t size, cap;
    struct pending *head, *tail;
};

struct pw_file {
    sqlite3_file base;
    struct node *node;
    sqlite3_file *real; /* the unix VFS's file, right after this struct */
};

static struct {
    sqlite3_vfs vfs;
    sqlite3_vfs *unix_vfs;
    struct node *nodes;
    uint64_t rng;
    uint64_t order;
    int64_t armed;          /* ops left before the cut; 0 = none */
    bool drop_all;          /* that cut drops every unsynced write, tears none */
    bool dead;              /* the power is off */
    void (*on_cut)(void *); /* the rest of the terminal losing power too */
    void *on_cut_arg;
    yn_power_stats st;
} g;

static uint64_t rnd(void)
{
    g.rng ^= g.rng << 13;
    g.rng ^= g.rng >> 7;
    g.rng ^= g.rng << 17;
    return g.rng;
}

/* ---- the page cache ------------------------------------------------------------ */

static void pending_free(struct node *n)
{
    for (struct pending *p = n->head, *next; p; p = next) {
        next = p->next;
        free(p->data);
        free(p);
    }
    n->head = n->tail = NULL;
}

static void node_free(struct node *n)
{
    pending_free(n);
    if (n->fd >= 0)
        close(n->fd);
    free(n->img);
    free(n->path);
    free(n);
}

static int img_reserve(struct node *n, int64_t size)
{
    if (size <= n->cap)
        return SQLITE_OK;
    int64_t cap = n->cap ? n->cap : 65536;
    while (cap < size)
        cap *= 2;
    uint8_t *p = realloc(n->img, (size_t)cap);
    if (!p)
        return SQLITE_NOMEM;
    memset(p + n->cap, 0, (size_t)(cap - n->cap));
    n->img = p;
    n->cap = cap;
    return SQLITE_OK;
}

static struct node *node_find(const char *path)
{
    for (struct node *n = g.nodes; n; n = n->next)
        if (strcmp(n->path, path) == 0)
            return n;
    return NULL;
}

/* The node of path (one more handle on it), loaded from the real file the
 * first time. */
static struct node *node_get(const char *path)
{
    struct node *n = node_find(path);
    if (n) {
        n->refs++;
        return n;
    }
    n = calloc(1, sizeof *n);
    if (!n || !(n->path = strdup(path))) {
        free(n);
        return NULL;
    }
    n->fd = open(path, O_RDWR | O_CLOEXEC);
    off_t size = n->fd >= 0 ? lseek(n->fd, 0, SEEK_END) : -1;
    if (size < 0 || img_reserve(n, size) != SQLITE_OK ||
        (size > 0 && pread(n->fd, n->img, (size_t)size, 0) != size)) {
        node_free(n);
        return NULL;
    }
    n->size = size;
    n->refs = 1;
    n->next = g.nodes;
    g.nodes = n;
    return n;
}

/* The file was deleted: its page cache goes with it (with its last handle). */
static void node_drop(struct node *n)
{
    for (struct node **pp = &g.nodes; *pp; pp = &(*pp)->next)
        if (*pp == n) {
            *pp = n->next;
            break;
        }
    if (n->refs == 0)
        node_free(n);
    else
        n->deleted = true;
}

/* One pending operation reaching the real file, whole or its first len bytes. */
static void apply(struct node *n, const struct pending *p, int64_t len)
{
    if (p->truncate) {
        if (ftruncate(n->fd, p->offset) != 0)
            abort();
    } else if (len > 0 && pwrite(n->fd, p->data, (size_t)len, p->offset) != len) {
        abort();
    }
}

/* The power goes: what was not synced is dropped, kept or torn, and every
 * other device of the terminal stops with it (on_cut). */
static void power_cut(void)
{
    if (g.on_cut)
        g.on_cut(g.on_cut_arg);
    uint64_t last = 0;
    for (struct node *n = g.nodes; n; n = n->next)
        for (struct pending *p = n->head; p; p = p->next)
            if (!p->truncate && p->order > last)
                last = p->order;
    /* half the cuts: all dropped, the last one maybe torn; the others: each
     * write on its own kept (with a chance of 30 % or 95 %: a disk that had
     * written little or nearly all of its cache), else torn or dropped */
    bool scramble = !g.drop_all && rnd() % 2;
    uint64_t keep_pct = rnd() % 2 ? 95 : 30;
    for (struct node *n = g.nodes; n; n = n->next) {
        for (struct pending *p = n->head; p; p = p->next) {
            uint64_t r = rnd() % 100;
            int fate = !scramble      ? (!g.drop_all && p->order == last && r < 50 ? 2 : 0)
                       : r < keep_pct ? 1
                       : r < keep_pct + (100 - keep_pct) / 2 ? 2
                                                             : 0;
            if (fate == 2 && (p->truncate || p->len < 2))
                fate = 1;
            if (fate == 0) {
                g.st.dropped++;
            } else if (fate == 1) {
                apply(n, p, p->len);
                g.st.kept++;
            } else {
                apply(n, p, 1 + (int64_t)(rnd() % (uint64_t)(p->len - 1)));
                g.st.torn++;
            }
        }
        pending_free(n);
    }
    g.dead = true;
    g.armed = 0;
    g.st.cuts++;
}

/* Count one op of a tracked file; true when it brings the cut. */
static bool op_cuts(void)
{
    if (g.dead)
        return false;
    g.st.ops++;
    return g.armed > 0 && --g.armed == 0;
}

static int pending_add(struct node *n, bool truncate, int64_t offset, const void *data, int64_t len)
{
    struct pending *p = calloc(1, sizeof *p);
    if (!p || (len > 0 && !(p->data = malloc((size_t)len)))) {
        free(p);
        return SQLITE_NOMEM;
    }
    p->truncate = truncate;
    p->offset = offset;
    p->len = len;
    p->order = ++g.order;
    if (len > 0)
        memcpy(p->data, data, (size_t)len);
    if (n->tail)
        n->tail->next = p;
    else
        n->head = p;
    n->tail = p;
    return SQLITE_OK;
}

/* ---- file methods ------------------------------------------------------------------ */

static int pw_close(sqlite3_file *f)
{
    struct pw_file *p = (struct pw_file *)f;
    int rc = p->real->pMethods->xClose(p->real);
    if (--p->node->refs == 0 && p->node->deleted)
        node_free(p->node);
    return rc;
}

static int pw_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    struct node *n = ((struct pw_file *)f)->node;
    int64_t have = off >= n->size ? 0 : n->size - off < amt ? n->size - off : amt;
    if (have > 0)
        memcpy(buf, n->img + off, (size_t)have);
    if (have < amt) {
        memset((uint8_t *)buf + (have > 0 ? have : 0), 0, (size_t)(amt - (have > 0 ? have : 0)));
        return SQLITE_IOERR_SHORT_READ;
    }
    return SQLITE_OK;
}

static int pw_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    struct node *n = ((struct pw_file *)f)->node;
    if (img_reserve(n, off + amt) != SQLITE_OK)
        return SQLITE_IOERR_NOMEM;
    memcpy(n->img + off, buf, (size_t)amt);
    if (off + amt > n->size)
        n->size = off + amt;
    if (g.dead)
        return SQLITE_OK; /* nothing reaches the disk any more */
    if (pending_add(n, false, off, buf, amt) != SQLITE_OK)
        return SQLITE_IOERR_NOMEM;
    if (op_cuts())
        power_cut();
    return SQLITE_OK;
}

static int pw_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    struct node *n = ((struct pw_file *)f)->node;
    if (size < n->size) {
        memset(n->img + size, 0, (size_t)(n->size - size));
        n->size = size;
    }
    if (g.dead)
        return SQLITE_OK;
    if (pending_add(n, true, size, NULL, 0) != SQLITE_OK)
        return SQLITE_IOERR_NOMEM;
    if (op_cuts())
        power_cut();
    return SQLITE_OK;
}

static int pw_sync(sqlite3_file *f, int flags)
{
    (void)flags;
    struct node *n = ((struct pw_file *)f)->node;
    if (g.dead)
        return SQLITE_OK;
    g.st.syncs++;
    if (op_cuts()) { /* the power goes before the sync completes */
        power_cut();
        return SQLITE_OK;
    }
    for (struct pending *p = n->head; p; p = p->next)
        apply(n, p, p->len);
    pending_free(n);
    return SQLITE_OK;
}

static int pw_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    *size = ((struct pw_file *)f)->node->size;
    return SQLITE_OK;
}

static int pw_lock(sqlite3_file *f, int level)
{
    sqlite3_file *r = ((struct pw_file *)f)->real;
    return r->pMethods->xLock(r, level);
}

static int pw_unlock(sqlite3_file *f, int level)
{
    sqlite3_file *r = ((struct pw_file *)f)->real;
    return r->pMethods->xUnlock(r, level);
}

static int pw_check_reserved(sqlite3_file *f, int *out)
{
    sqlite3_file *r = ((struct pw_file *)f)->real;
    return r->pMethods->xCheckReservedLock(r, out);
}

static int pw_file_control(sqlite3_file *f, int op, void *arg)
{
    sqlite3_file *r = ((struct pw_file *)f)->real;
    if (op == SQLITE_FCNTL_SIZE_HINT || op == SQLITE_FCNTL_CHUNK_SIZE)
        return SQLITE_OK; /* the unix VFS would grow the real file behind our back */
    return r->pMethods->xFileControl(r, op, arg);
}

static int pw_sector_size(sqlite3_file *f)
{
    sqlite3_file *r = ((struct pw_file *)f)->real;
    return r->pMethods->xSectorSize(r);
}

static int pw_device(sqlite3_file *f)
{
    sqlite3_file *r = ((struct pw_file *)f)->real;
    return r->pMethods->xDeviceCharacteristics(r);
}

static int pw_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    sqlite3_file *r = ((struct pw_file *)f)->real;
    return r->pMethods->xShmMap(r, pg, pgsz, extend, pp);
}

static int pw_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    sqlite3_file *r = ((struct pw_file *)f)->real;
    return r->pMethods->xShmLock(r, offset, n, flags);
}

static void pw_shm_barrier(sqlite3_file *f)
{
    sqlite3_file *r = ((struct pw_file *)f)->real;
    r->pMethods->xShmBarrier(r);
}

static int pw_shm_unmap(sqlite3_file *f, int delete_flag)
{
    sqlite3_file *r = ((struct pw_file *)f)->real;
    return r->pMethods->xShmUnmap(r, delete_flag);
}

/* Version 2: no xFetch, so SQLite never maps the real file past our cache. */
static const sqlite3_io_methods pw_methods = {
    .iVersion = 2,
    .xClose = pw_close,
    .xRead = pw_read,
    .xWrite = pw_write,
    .xTruncate = pw_truncate,
    .xSync = pw_sync,
    .xFileSize = pw_file_size,
    .xLock = pw_lock,
    .xUnlock = pw_unlock,
    .xCheckReservedLock = pw_check_reserved,
    .xFileControl = pw_file_control,
    .xSectorSize = pw_sector_size,
    .xDeviceCharacteristics = pw_device,
    .xShmMap = pw_shm_map,
    .xShmLock = pw_shm_lock,
    .xShmBarrier = pw_shm_barrier,
    .xShmUnmap = pw_shm_unmap,
};

/* ---- the VFS ------------------------------------------------------------------------ */

static int pw_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags)
{
    (void)vfs;
    if (!name || !(flags & TRACKED)) /* temporary files: the unix VFS's own, unchanged */
        return g.unix_vfs->xOpen(g.unix_vfs, name, f, flags, out_flags);
    struct pw_file *p = (struct pw_file *)f;
    memset(p, 0, sizeof *p);
    p->real = (sqlite3_file *)(p + 1);
    int rc = g.unix_vfs->xOpen(g.unix_vfs, name, p->real, flags, out_flags);
    if (rc != SQLITE_OK)
        return rc;
    if (!(p->node = node_get(name))) {
        p->real->pMethods->xClose(p->real);
        return SQLITE_CANTOPEN;
    }
    p->base.pMethods = &pw_methods;
    return SQLITE_OK;
}

static int pw_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void)vfs;
    if (g.dead)
        return SQLITE_OK; /* the power is off */
    struct node *n = node_find(name);
    if (n)
        node_drop(n);
    return g.unix_vfs->xDelete(g.unix_vfs, name, sync_dir);
}

static int pw_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    (void)vfs;
    return g.unix_vfs->xAccess(g.unix_vfs, name, flags, out);
}

static int pw_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    (void)vfs;
    return g.unix_vfs->xFullPathname(g.unix_vfs, name, n, out);
}

static int pw_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return g.unix_vfs->xRandomness(g.unix_vfs, n, out);
}

static int pw_sleep(sqlite3_vfs *vfs, int us)
{
    (void)vfs;
    return g.unix_vfs->xSleep(g.unix_vfs, us);
}

static int pw_current_time(sqlite3_vfs *vfs, double *out)
{
    (void)vfs;
    return g.unix_vfs->xCurrentTime(g.unix_vfs, out);
}

static int pw_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    (void)vfs;
    return g.unix_vfs->xCurrentTimeInt64(g.unix_vfs, out);
}

static int pw_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    (void)vfs;
    return g.unix_vfs->xGetLastError(g.unix_vfs, n, out);
}

int yn_power_install(uint64_t seed)
{
    g.unix_vfs = sqlite3_vfs_find("unix");
    if (!g.unix_vfs)
        return -1;
    g.rng = seed ? seed : 0x9e3779b97f4a7c15ull;
    g.vfs = (sqlite3_vfs){.iVersion = 2,
                          .szOsFile = (int)sizeof(struct pw_file) + g.unix_vfs->szOsFile,
                          .mxPathname = g.unix_vfs->mxPathname,
                          .zName = "yn-power",
                          .xOpen = pw_open,
                          .xDelete = pw_delete,
                          .xAccess = pw_access,
                          .xFullPathname = pw_full_pathname,
                          .xRandomness = pw_randomness,
                          .xSleep = pw_sleep,
                          .xCurrentTime = pw_current_time,
                          .xGetLastError = pw_last_error,
                          .xCurrentTimeInt64 = pw_current_time64};
    return sqlite3_vfs_register(&g.vfs, 1) == SQLITE_OK ? 0 : -1;
}

void yn_power_arm(int64_t ops)
{
    g.armed = ops > 0 ? ops : 0;
    g.drop_all = false;
}

void yn_power_arm_dropping(int64_t ops)
{
    yn_power_arm(ops);
    g.drop_all = true;
}

void yn_power_on_cut(void (*fn)(void *arg), void *arg)
{
    g.on_cut = fn;
    g.on_cut_arg = arg;
}

bool yn_power_cut(void)
{
    return g.dead;
}

/* Forget every node (all handles closed), after writing what is pending or not. */
static void forget(bool write_pending)
{
    while (g.nodes) {
        struct node *n = g.nodes;
        g.nodes = n->next;
        if (n->refs != 0)
            abort(); /* a handle is still open: the test is wrong */
        for (struct pending *p = n->head; write_pending && p; p = p->next)
            apply(n, p, p->len);
        node_free(n);
    }
}

void yn_power_revive(void)
{
    forget(false);
    g.dead = false;
    g.armed = 0;
}

void yn_power_settle(void)
{
    forget(!g.dead);
    g.armed = 0;
}

void yn_power_stats_get(yn_power_stats *out)
{
    *out = g.st;
}
