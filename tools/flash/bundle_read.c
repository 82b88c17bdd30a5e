/* bundle_read.c — checking a bundle: its header and manifest, the vendor's
 * signature over them (checked before a byte is trusted), each payload file
 * against its hash. */
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "flash.h"
#include "fileio.h"
#include "hex.h"
#include "keystore.h"

int yn_fl_load_pubkey(const char *path, uint8_t pub[YN_BUNDLE_KEY_LEN])
{
    size_t n;
    int rc = yn_key_file_load(path, false, "vendor public key", pub, YN_BUNDLE_KEY_LEN, &n);
    if (rc == YN_OK && n != YN_BUNDLE_KEY_LEN)
        rc = YN_EINVAL;
    if (rc != YN_OK)
        return yn_fl_fail(rc, "%s: a vendor public key is 32 bytes of hex (%s)", path,
                          yn_strerror(rc));
    return YN_OK;
}

void yn_fl_bundle_close(struct yn_fl_bundle *b)
{
    if (b->f)
        fclose(b->f);
    free(b->manifest_json);
    b->f = NULL;
    b->manifest_json = NULL;
}

/* Open a bundle: header, manifest and its signature (checked first, before a
 * byte of the manifest is trusted), then the manifest's fields and the size. */
int yn_fl_bundle_open(const char *path, const uint8_t pub[YN_BUNDLE_KEY_LEN],
                      struct yn_fl_bundle *b)
{
    uint8_t head[YN_BUNDLE_HEADER_LEN], sig[YN_BUNDLE_SIG_LEN];
    uint32_t mlen;
    char err[256];
    memset(b, 0, sizeof *b);
    b->path = path;
    b->f = fopen(path, "rb");
    if (!b->f)
        return yn_fl_fail(YN_ENOENT, "cannot open bundle %s: %s", path, strerror(errno));
    if (fread(head, 1, sizeof head, b->f) != sizeof head) {
        yn_fl_bundle_close(b);
        return yn_fl_fail(YN_EINVAL, "%s: too short to be a firmware bundle", path);
    }
    int rc = yn_bundle_header_decode(head, &mlen, err, sizeof err);
    if (rc != YN_OK) {
        yn_fl_bundle_close(b);
        return yn_fl_fail(rc, "%s: %s", path, err);
    }
    b->manifest_json = malloc(mlen + 1);
    if (!b->manifest_json || fread(b->manifest_json, 1, mlen, b->f) != mlen ||
        fread(sig, 1, sizeof sig, b->f) != sizeof sig) {
        yn_fl_bundle_close(b);
        return yn_fl_fail(YN_EINVAL, "%s: truncated (manifest or signature missing)", path);
    }
    b->manifest_json[mlen] = '\0';
    b->manifest_len = mlen;
    b->payload_start = YN_BUNDLE_HEADER_LEN + (uint64_t)mlen + YN_BUNDLE_SIG_LEN;
    if ((rc = yn_bundle_verify(pub, b->manifest_json, mlen, sig)) != YN_OK) {
        yn_fl_bundle_close(b);
        return yn_fl_fail(YN_EAUTH,
                          "%s: the signature does not verify with the vendor key: the bundle was "
                          "altered or signed by someone else; do not install it",
                          path);
    }
    if ((rc = yn_bundle_manifest_decode(b->manifest_json, mlen, &b->m, err, sizeof err)) != YN_OK) {
        yn_fl_bundle_close(b);
        return yn_fl_fail(rc, "%s: %s", path, err);
    }
    struct stat sb;
    if (fstat(fileno(b->f), &sb) != 0 ||
        (uint64_t)sb.st_size != b->payload_start + b->m.payload_size) {
        yn_fl_bundle_close(b);
        return yn_fl_fail(YN_ECORRUPT,
                          "%s: %lld bytes, the manifest says %" PRIu64 ": truncated or "
                          "appended to; copy the bundle again",
                          path, (long long)sb.st_size, b->payload_start + b->m.payload_size);
    }
    return YN_OK;
}

/* Stream file i of the bundle through SHA-256, and (fd >= 0) into fd. */
int yn_fl_bundle_stream(struct yn_fl_bundle *b, int i, int fd, struct yn_fl_progress *p)
{
    const yn_bundle_file *f = &b->m.files[i];
    static uint8_t buf[CHUNK];
    uint8_t digest[YN_BUNDLE_HASH_LEN];
    unsigned dlen = 0;
    if (fseeko(b->f, (off_t)(b->payload_start + f->offset), SEEK_SET) != 0)
        return yn_fl_fail(YN_EIO, "%s: cannot seek to %s", b->path, f->path);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? YN_OK : YN_ENOMEM;
    p->file = f->path;
    for (uint64_t left = f->size; left > 0 && rc == YN_OK;) {
        size_t want = left < sizeof buf ? (size_t)left : sizeof buf;
        if (fread(buf, 1, want, b->f) != want) {
            rc = yn_fl_fail(YN_EIO, "%s: cannot read %s", b->path, f->path);
            break;
        }
        EVP_DigestUpdate(ctx, buf, want);
        if (fd >= 0 && (rc = yn_file_write_all(fd, buf, want)) != YN_OK) {
            rc = yn_fl_fail(rc, "cannot write %s: %s", f->path,
                            rc == YN_ENOSPC ? "storage full" : yn_strerror(rc));
            break;
        }
        left -= want;
        yn_fl_progress_add(p, want);
        if (fd >= 0)
            yn_fl_durable_step("unpack: a chunk written");
    }
    if (rc == YN_OK && (EVP_DigestFinal_ex(ctx, digest, &dlen) != 1 ||
                        memcmp(digest, f->sha256, sizeof digest) != 0))
        rc = yn_fl_fail(YN_ECORRUPT,
                        "%s: %s does not match its hash in the signed manifest: the bundle is "
                        "damaged or was altered; copy it again",
                        b->path, f->path);
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* Every file of the payload against its hash. */
int yn_fl_bundle_check_payload(struct yn_fl_bundle *b)
{
    struct yn_fl_progress p = {.step = "verify", .total = b->m.payload_size, .last_pct = -1};
    for (int i = 0; i < b->m.n_files; i++) {
        int rc = yn_fl_bundle_stream(b, i, -1, &p);
        if (rc != YN_OK)
            return rc;
    }
    return YN_OK;
}

json_t *yn_fl_manifest_json_obj(const struct yn_fl_bundle *b)
{
    return json_loadb(b->manifest_json, b->manifest_len, 0, NULL);
}

void yn_fl_print_manifest(const yn_bundle_manifest *m)
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
        yn_hex_encode(m->files[i].sha256, 8, h);
        printf("  %04o %10" PRIu64 "  %s…  %s\n", m->files[i].mode, m->files[i].size, h,
               m->files[i].path);
    }
}
