/* bundle.h — the firmware bundle and the A/B slot state, as pure code: the
 * container header, the signed manifest (JSON), Ed25519 signing and
 * verification, x.y.z versions, payload path rules. The A/B slot state
 * machine is tools/flash/slots.h.
 *
 * No file or clock is touched here: tools/yinian-flash.c does the I/O. The
 * format is specified in tools/FLASH.md. */
#ifndef YN_BUNDLE_H
#define YN_BUNDLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define YN_BUNDLE_MAGIC        "YNFWBUN1" /* 8 bytes, no NUL: format 1 */
#define YN_BUNDLE_HEADER_LEN   16         /* magic, manifest length, signature length */
#define YN_BUNDLE_SIG_LEN      64         /* Ed25519 signature */
#define YN_BUNDLE_KEY_LEN      32         /* raw Ed25519 private (seed) or public key */
#define YN_BUNDLE_HASH_LEN     32         /* SHA-256 */
#define YN_BUNDLE_MANIFEST_MAX (256 * 1024)
#define YN_BUNDLE_MAX_FILES    256
#define YN_BUNDLE_PATH_MAX     160                    /* payload path, incl. NUL */
#define YN_BUNDLE_FILE_MAX     (256ULL * 1024 * 1024) /* one payload file, bytes */
#define YN_BUNDLE_PRODUCT      "yinian-pos"
#define YN_BUNDLE_NAME_MAX     64 /* version, arch, product, gitrev: incl. NUL */

/* A semantic version x.y.z (digits only, each part 0..999999). */
typedef struct yn_bundle_version {
    uint32_t major, minor, patch;
} yn_bundle_version;

int yn_bundle_version_parse(const char *text, yn_bundle_version *out) YN_MUST_CHECK;
/* <0, 0, >0 as a is older than, equal to, newer than b. */
int yn_bundle_version_cmp(const yn_bundle_version *a, const yn_bundle_version *b);

typedef struct yn_bundle_file {
    char path[YN_BUNDLE_PATH_MAX];      /* relative, see yn_bundle_path_ok() */
    unsigned mode;                      /* 0755 or 0644 */
    uint64_t size;                      /* bytes */
    uint64_t offset;                    /* from the start of the payload (derived, not stored) */
    uint8_t sha256[YN_BUNDLE_HASH_LEN]; /* of the file's bytes */
} yn_bundle_file;

typedef struct yn_bundle_manifest {
    int format;                       /* 1 */
    char product[YN_BUNDLE_NAME_MAX]; /* "yinian-pos" */
    char version[YN_BUNDLE_NAME_MAX]; /* x.y.z as written */
    yn_bundle_version v;              /* version parsed */
    char arch[YN_BUNDLE_NAME_MAX];    /* host | aarch64 | armhf */
    char gitrev[YN_BUNDLE_NAME_MAX];  /* what it was built from; may be "" */
    int ledger_schema;                /* the ledger schema this firmware migrates to, >= 1 */
    int64_t created_utc;              /* when the bundle was made, UTC seconds */
    uint64_t payload_size;            /* sum of the files' sizes */
    int n_files;                      /* 1..YN_BUNDLE_MAX_FILES */
    yn_bundle_file files[YN_BUNDLE_MAX_FILES]; /* payload order */
} yn_bundle_manifest;

/* A payload path: 1..159 bytes of components [A-Za-z0-9._+-] joined by '/',
 * no empty, "." or ".." component, not absolute, and not one of the names the
 * installer writes itself ("manifest.json", "VERSION"). */
bool yn_bundle_path_ok(const char *path);
/* host | aarch64 | armhf */
bool yn_bundle_arch_ok(const char *arch);
/* The architecture name of a board from uname -m (aarch64/arm64 -> aarch64,
 * armv6l/armv7l/armhf -> armhf, anything else -> host). */
const char *yn_bundle_arch_of_machine(const char *machine);

/* The manifest as JSON (malloc'd, NUL-terminated; free() it). Offsets and
 * payload_size are recomputed from the files. */
int yn_bundle_manifest_encode(yn_bundle_manifest *m, char **json, size_t *len) YN_MUST_CHECK;
/* Parse and check a manifest: every field present and valid, paths legal and
 * unique, sizes adding up. YN_EINVAL (err says what) otherwise. */
int yn_bundle_manifest_decode(const char *json, size_t len, yn_bundle_manifest *out, char *err,
                              size_t errlen) YN_MUST_CHECK;
/* Index of path in m, or -1. */
int yn_bundle_manifest_find(const yn_bundle_manifest *m, const char *path);

/* The 16-byte header: magic, manifest length and signature length (u32
 * big-endian each). decode: YN_EINVAL with err when it is not a bundle. */
void yn_bundle_header_encode(uint8_t out[YN_BUNDLE_HEADER_LEN], uint32_t manifest_len);
int yn_bundle_header_decode(const uint8_t in[YN_BUNDLE_HEADER_LEN], uint32_t *manifest_len,
                            char *err, size_t errlen) YN_MUST_CHECK;

/* Ed25519 over the domain tag "yinian-pos firmware bundle v1\0" and the
 * manifest bytes. verify: YN_OK, or YN_EAUTH for a wrong signature. */
int yn_bundle_sign(const uint8_t priv[YN_BUNDLE_KEY_LEN], const char *manifest, size_t len,
                   uint8_t sig[YN_BUNDLE_SIG_LEN]) YN_MUST_CHECK;
int yn_bundle_verify(const uint8_t pub[YN_BUNDLE_KEY_LEN], const char *manifest, size_t len,
                     const uint8_t sig[YN_BUNDLE_SIG_LEN]) YN_MUST_CHECK;
int yn_bundle_public_key(const uint8_t priv[YN_BUNDLE_KEY_LEN],
                         uint8_t pub[YN_BUNDLE_KEY_LEN]) YN_MUST_CHECK;

#endif
