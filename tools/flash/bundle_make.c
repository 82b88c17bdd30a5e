/* bundle_make.c — keygen, bundle and verify: the vendor's key pair, a
 * signed bundle made from a build, and a bundle checked and described. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "flash.h"
#include "fileio.h"
#include "hex.h"
#include "keystore.h"
#include "ledger.h"

int yn_fl_cmd_keygen(const struct yn_fl_opts *o, int argc, char **argv)
{
    if (argc != 2) {
        yn_fl_usage(stderr);
        return EXIT_USAGE;
    }
    if (!o->force && (yn_fl_exists(argv[0]) || yn_fl_exists(argv[1])))
        return yn_fl_fail(EXIT_FAIL,
                          "%s or %s exists: a vendor key is not replaced (--force to do it)",
                          argv[0], argv[1]);
    uint8_t priv[YN_BUNDLE_KEY_LEN], pub[YN_BUNDLE_KEY_LEN];
    if (RAND_priv_bytes(priv, sizeof priv) != 1 || yn_bundle_public_key(priv, pub) != YN_OK)
        return yn_fl_fail(EXIT_FAIL, "cannot generate a key");
    char text[200], h[2 * YN_BUNDLE_KEY_LEN + 1];
    yn_hex_encode(priv, sizeof priv, h);
    int n = snprintf(text, sizeof text,
                     "# yinian-pos vendor firmware signing key (Ed25519) — keep secret\n%s\n", h);
    explicit_bzero(priv, sizeof priv);
    int rc = yn_file_write_atomic(argv[0], text, (size_t)n, 0600);
    explicit_bzero(text, sizeof text);
    explicit_bzero(h, sizeof h);
    yn_hex_encode(pub, sizeof pub, h);
    n = snprintf(text, sizeof text, "# yinian-pos vendor firmware public key (Ed25519)\n%s\n", h);
    if (rc == YN_OK)
        rc = yn_file_write_atomic(argv[1], text, (size_t)n, 0644);
    if (rc != YN_OK)
        return yn_fl_fail(EXIT_FAIL, "cannot write the key files: %s", yn_strerror(rc));
    if (yn_fl.json)
        yn_fl_emit(json_pack("{s:s, s:b, s:s, s:s, s:s}", "event", "result", "ok", 1, "private",
                             argv[0], "public", argv[1], "public_hex", h));
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
        return yn_fl_fail(EXIT_USAGE, "more than %d files in the payload", YN_BUNDLE_MAX_FILES);
    if (!yn_bundle_path_ok(dest))
        return yn_fl_fail(EXIT_USAGE,
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
        walk.err = yn_fl_fail(EXIT_USAGE, "%s: only regular files go into a bundle", path);
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
        return yn_fl_fail(EXIT_USAGE, "cannot read %s: %s", path, strerror(errno));
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
        return yn_fl_fail(EXIT_FAIL, "cannot read %s: %s", path, strerror(errno));
    if (*size > YN_BUNDLE_FILE_MAX)
        return yn_fl_fail(EXIT_USAGE, "%s is larger than a bundle file may be", path);
    return 0;
}

int yn_fl_cmd_bundle(const struct yn_fl_opts *o, int argc, char **argv)
{
    static struct entry entries[YN_BUNDLE_MAX_FILES];
    static yn_bundle_manifest m;
    uint8_t priv[YN_BUNDLE_KEY_LEN], sig[YN_BUNDLE_SIG_LEN];
    size_t n;
    if (!o->key || !o->out || argc < 1) {
        yn_fl_usage(stderr);
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
        return yn_fl_fail(EXIT_USAGE, "--version '%s' is not x.y.z", m.version);
    if (!yn_bundle_arch_ok(m.arch))
        return yn_fl_fail(EXIT_USAGE, "--arch must be host, aarch64 or armhf");

    walk.e = entries;
    walk.n = 0;
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        struct stat sb;
        if (eq) {
            char dest[YN_BUNDLE_PATH_MAX];
            snprintf(dest, sizeof dest, "%.*s", (int)(eq - argv[i]), argv[i]);
            if (stat(eq + 1, &sb) != 0 || !S_ISREG(sb.st_mode))
                return yn_fl_fail(EXIT_USAGE, "%s: not a regular file", eq + 1);
            if (add_entry(dest, eq + 1))
                return EXIT_USAGE;
        } else if (stat(argv[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            walk.base = argv[i];
            walk.err = 0;
            if (nftw(argv[i], walk_entry, 16, FTW_PHYS) != 0)
                return walk.err ? walk.err : yn_fl_fail(EXIT_USAGE, "cannot walk %s", argv[i]);
        } else {
            return yn_fl_fail(EXIT_USAGE, "%s: expected a folder or DEST=SRC", argv[i]);
        }
    }
    qsort(entries, (size_t)walk.n, sizeof *entries, entry_cmp);
    for (int i = 1; i < walk.n; i++)
        if (!strcmp(entries[i].path, entries[i - 1].path))
            return yn_fl_fail(EXIT_USAGE, "%s is given twice", entries[i].path);
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
        return yn_fl_fail(EXIT_USAGE, "the payload must hold bin/yinian-pos (the daemon) and "
                                      "share/board.conf (the board.conf template)");
    if (m.files[yn_bundle_manifest_find(&m, "bin/yinian-pos")].mode != 0755)
        return yn_fl_fail(EXIT_USAGE, "bin/yinian-pos must be executable");

    int rc = yn_key_file_load(o->key, true, "vendor signing key", priv, sizeof priv, &n);
    if (rc != YN_OK || n != sizeof priv)
        return yn_fl_fail(EXIT_USAGE, "%s: a vendor signing key is 32 bytes of hex, mode 0600",
                          o->key);
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
        return yn_fl_fail(EXIT_FAIL, "cannot make the manifest: %s", yn_strerror(rc));
    }

    yn_file_atomic out;
    uint8_t head[YN_BUNDLE_HEADER_LEN];
    yn_bundle_header_encode(head, (uint32_t)jlen);
    if ((rc = yn_file_atomic_open(&out, o->out, 0644)) != YN_OK) {
        free(json);
        return yn_fl_fail(EXIT_FAIL, "cannot create %s.new: %s", o->out, yn_strerror(rc));
    }
    rc = yn_file_atomic_write(&out, head, sizeof head);
    if (rc == YN_OK)
        rc = yn_file_atomic_write(&out, json, jlen);
    if (rc == YN_OK)
        rc = yn_file_atomic_write(&out, sig, sizeof sig);
    free(json);
    struct yn_fl_progress p = {.step = "bundle", .total = m.payload_size, .last_pct = -1};
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
            rc = yn_file_atomic_write(&out, buf, (size_t)got);
            yn_fl_progress_add(&p, (uint64_t)got);
        }
        EVP_DigestFinal_ex(ctx, digest, &dlen);
        EVP_MD_CTX_free(ctx);
        if (in >= 0)
            close(in);
        if (rc == YN_OK && (in < 0 || got < 0 || total != m.files[i].size ||
                            memcmp(digest, m.files[i].sha256, sizeof digest) != 0))
            rc = yn_fl_fail(YN_ECORRUPT, "%s changed while the bundle was made: try again",
                            entries[i].src);
    }
    if (rc != YN_OK)
        yn_file_atomic_abort(&out);
    if (rc != YN_OK || yn_file_atomic_commit(&out) != YN_OK)
        return yn_fl_fail(EXIT_FAIL, "bundle %s not written", o->out);
    if (yn_fl.json)
        yn_fl_emit(json_pack("{s:s, s:b, s:s, s:s, s:s, s:i, s:I}", "event", "result", "ok", 1,
                             "bundle", o->out, "version", m.version, "arch", m.arch, "files",
                             m.n_files, "payload_size", (json_int_t)m.payload_size));
    else
        printf("bundle %s: yinian-pos %s for %s, %d files, %" PRIu64
               " bytes, ledger schema %d, signed\n",
               o->out, m.version, m.arch, m.n_files, m.payload_size, m.ledger_schema);
    return 0;
}

int yn_fl_cmd_verify(const struct yn_fl_opts *o, int argc, char **argv)
{
    uint8_t pub[YN_BUNDLE_KEY_LEN];
    static struct yn_fl_bundle b;
    if (argc != 1 || !o->pubkey) {
        yn_fl_usage(stderr);
        return EXIT_USAGE;
    }
    if (yn_fl_load_pubkey(o->pubkey, pub) != YN_OK)
        return EXIT_USAGE;
    if (yn_fl_bundle_open(argv[0], pub, &b) != YN_OK)
        return EXIT_FAIL;
    int rc = yn_fl_bundle_check_payload(&b);
    if (rc == YN_OK) {
        if (yn_fl.json)
            yn_fl_emit(json_pack("{s:s, s:b, s:s, s:o}", "event", "result", "ok", 1, "signature",
                                 "valid", "manifest", yn_fl_manifest_json_obj(&b)));
        else {
            printf("bundle %s: signature valid, every file matches its hash\n", argv[0]);
            yn_fl_print_manifest(&b.m);
        }
    }
    yn_fl_bundle_close(&b);
    return rc == YN_OK ? 0 : EXIT_FAIL;
}
