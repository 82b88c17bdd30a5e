/* bundle.c — firmware bundle format, signatures, versions and path rules
 * (pure: no files, no clock). Spec: tools/FLASH.md; the A/B slot state
 * machine is tools/flash/slots.c. */
#include "bundle.h"
#include "hex.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sign_tag[] = "yinian-pos firmware bundle v1"; /* signed with its NUL */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- versions ------------------------------------------------------------------------ */

static bool parse_part(const char **p, uint32_t *out)
{
    const char *s = *p;
    uint32_t v = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9') {
        if (++digits > 6)
            return false;
        v = v * 10 + (uint32_t)(*s++ - '0');
    }
    /* no leading zeros ("01"), as semver */
    if (digits == 0 || (digits > 1 && **p == '0'))
        return false;
    *out = v;
    *p = s;
    return true;
}

int yn_bundle_version_parse(const char *text, yn_bundle_version *out)
{
    const char *p = text;
    yn_bundle_version v;
    if (!text || !parse_part(&p, &v.major) || *p++ != '.' || !parse_part(&p, &v.minor) ||
        *p++ != '.' || !parse_part(&p, &v.patch) || *p)
        return YN_EINVAL;
    *out = v;
    return YN_OK;
}

int yn_bundle_version_cmp(const yn_bundle_version *a, const yn_bundle_version *b)
{
    if (a->major != b->major)
        return a->major < b->major ? -1 : 1;
    if (a->minor != b->minor)
        return a->minor < b->minor ? -1 : 1;
    if (a->patch != b->patch)
        return a->patch < b->patch ? -1 : 1;
    return 0;
}

/* ---- names ----------------------------------------------------------------------------- */

bool yn_bundle_path_ok(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    if (n == 0 || n >= YN_BUNDLE_PATH_MAX || path[0] == '/')
        return false;
    if (!strcmp(path, "manifest.json") || !strcmp(path, "VERSION"))
        return false;
    const char *c = path;
    while (*c) {
        const char *end = strchr(c, '/');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return false;
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)c[i];
            if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-' && ch != '+')
                return false;
        }
        if (!end)
            break;
        c = end + 1;
        if (!*c)
            return false; /* trailing '/' */
    }
    return true;
}

bool yn_bundle_arch_ok(const char *arch)
{
    return arch && (!strcmp(arch, "host") || !strcmp(arch, "aarch64") || !strcmp(arch, "armhf"));
}

const char *yn_bundle_arch_of_machine(const char *machine)
{
    if (!strcmp(machine, "aarch64") || !strcmp(machine, "arm64"))
        return "aarch64";
    if (!strncmp(machine, "armv6", 5) || !strncmp(machine, "armv7", 5) || !strcmp(machine, "armhf"))
        return "armhf";
    return "host";
}

static bool name_ok(const char *s, bool allow_empty)
{
    size_t n = strlen(s);
    if (n == 0)
        return allow_empty;
    if (n >= YN_BUNDLE_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!isalnum(ch) && ch != '.' && ch != '_' && ch != '-' && ch != '+')
            return false;
    }
    return true;
}

/* ---- manifest ---------------------------------------------------------------------------- */

/* Recompute offsets and the payload size; YN_ELIMIT when too large. */
static int layout(yn_bundle_manifest *m)
{
    uint64_t off = 0;
    for (int i = 0; i < m->n_files; i++) {
        if (m->files[i].size > YN_BUNDLE_FILE_MAX)
            return YN_ELIMIT;
        m->files[i].offset = off;
        off += m->files[i].size;
    }
    m->payload_size = off;
    return YN_OK;
}

int yn_bundle_manifest_encode(yn_bundle_manifest *m, char **json, size_t *len)
{
    *json = NULL;
    if (m->n_files < 1 || m->n_files > YN_BUNDLE_MAX_FILES || layout(m) != YN_OK)
        return YN_EINVAL;
    json_t *files = json_array();
    json_t *root = json_pack(
        "{s:i, s:s, s:s, s:s, s:s, s:i, s:I, s:I}", "format", 1, "product", m->product, "version",
        m->version, "arch", m->arch, "gitrev", m->gitrev, "ledger_schema", m->ledger_schema,
        "created_utc", (json_int_t)m->created_utc, "payload_size", (json_int_t)m->payload_size);
    int rc = root && files ? YN_OK : YN_ENOMEM;
    for (int i = 0; i < m->n_files && rc == YN_OK; i++) {
        const yn_bundle_file *f = &m->files[i];
        char hash[2 * YN_BUNDLE_HASH_LEN + 1], mode[8];
        yn_hex_encode(f->sha256, sizeof f->sha256, hash);
        snprintf(mode, sizeof mode, "%04o", f->mode);
        json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "path", f->path, "mode", mode, "size",
                              (json_int_t)f->size, "sha256", hash);
        if (!o || json_array_append_new(files, o) != 0)
            rc = YN_ENOMEM;
    }
    if (rc == YN_OK && json_object_set(root, "files", files) != 0)
        rc = YN_ENOMEM;
    if (rc == YN_OK) {
        *json = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        rc = *json ? YN_OK : YN_ENOMEM;
    }
    json_decref(files);
    json_decref(root);
    if (rc == YN_OK)
        *len = strlen(*json);
    return rc;
}

/* Copy a required string member into out (cap bytes). */
static bool get_str(json_t *o, const char *key, char *out, size_t cap, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v) || json_string_length(v) >= cap ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        set_err(err, errlen, "manifest: \"%s\" must be a string of at most %zu bytes", key,
                cap - 1);
        return false;
    }
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return true;
}

static bool get_int(json_t *o, const char *key, int64_t lo, int64_t hi, int64_t *out, char *err,
                    size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        set_err(err, errlen, "manifest: \"%s\" must be an integer in %" PRId64 "..%" PRId64, key,
                lo, hi);
        return false;
    }
    *out = json_integer_value(v);
    return true;
}

static int decode_file(json_t *o, int i, yn_bundle_file *f, char *err, size_t errlen)
{
    char mode[8], hash[2 * YN_BUNDLE_HASH_LEN + 1];
    int64_t size;
    if (!json_is_object(o)) {
        set_err(err, errlen, "manifest: files[%d] must be an object", i);
        return YN_EINVAL;
    }
    if (!get_str(o, "path", f->path, sizeof f->path, err, errlen) ||
        !get_str(o, "mode", mode, sizeof mode, err, errlen) ||
        !get_str(o, "sha256", hash, sizeof hash, err, errlen) ||
        !get_int(o, "size", 0, (int64_t)YN_BUNDLE_FILE_MAX, &size, err, errlen))
        return YN_EINVAL;
    if (!yn_bundle_path_ok(f->path)) {
        set_err(err, errlen, "manifest: files[%d]: path \"%s\" is not allowed", i, f->path);
        return YN_EINVAL;
    }
    if (strcmp(mode, "0755") != 0 && strcmp(mode, "0644") != 0) {
        set_err(err, errlen, "manifest: %s: mode must be \"0755\" or \"0644\"", f->path);
        return YN_EINVAL;
    }
    f->mode = mode[1] == '7' ? 0755 : 0644;
    if (!yn_hex_decode_exact(hash, f->sha256, sizeof f->sha256)) {
        set_err(err, errlen, "manifest: %s: sha256 must be 64 lowercase hex digits", f->path);
        return YN_EINVAL;
    }
    f->size = (uint64_t)size;
    return YN_OK;
}

int yn_bundle_manifest_decode(const char *json, size_t len, yn_bundle_manifest *out, char *err,
                              size_t errlen)
{
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        set_err(err, errlen, "manifest: not a JSON object (line %d: %s)", jerr.line, jerr.text);
        json_decref(root);
        return YN_EINVAL;
    }
    int64_t format = 0, schema = 0, created = 0, payload = 0;
    int rc = YN_EINVAL;
    json_t *files = json_object_get(root, "files");
    if (!get_int(root, "format", 1, 1, &format, err, errlen) ||
        !get_str(root, "product", out->product, sizeof out->product, err, errlen) ||
        !get_str(root, "version", out->version, sizeof out->version, err, errlen) ||
        !get_str(root, "arch", out->arch, sizeof out->arch, err, errlen) ||
        !get_str(root, "gitrev", out->gitrev, sizeof out->gitrev, err, errlen) ||
        !get_int(root, "ledger_schema", 1, 1000000, &schema, err, errlen) ||
        !get_int(root, "created_utc", 0, INT64_MAX, &created, err, errlen) ||
        !get_int(root, "payload_size", 0, INT64_MAX, &payload, err, errlen))
        goto out;
    if (strcmp(out->product, YN_BUNDLE_PRODUCT) != 0) {
        set_err(err, errlen, "manifest: product \"%s\" is not %s", out->product, YN_BUNDLE_PRODUCT);
        goto out;
    }
    if (yn_bundle_version_parse(out->version, &out->v) != YN_OK) {
        set_err(err, errlen, "manifest: version \"%s\" is not x.y.z", out->version);
        goto out;
    }
    if (!yn_bundle_arch_ok(out->arch)) {
        set_err(err, errlen, "manifest: arch \"%s\" is not host, aarch64 or armhf", out->arch);
        goto out;
    }
    if (!name_ok(out->gitrev, true)) {
        set_err(err, errlen, "manifest: gitrev \"%s\" has characters not allowed", out->gitrev);
        goto out;
    }
    if (!json_is_array(files) || json_array_size(files) < 1 ||
        json_array_size(files) > YN_BUNDLE_MAX_FILES) {
        set_err(err, errlen, "manifest: \"files\" must list 1..%d files", YN_BUNDLE_MAX_FILES);
        goto out;
    }
    out->format = (int)format;
    out->ledger_schema = (int)schema;
    out->created_utc = created;
    out->n_files = (int)json_array_size(files);
    for (int i = 0; i < out->n_files; i++) {
        if (decode_file(json_array_get(files, (size_t)i), i, &out->files[i], err, errlen) != YN_OK)
            goto out;
        if (yn_bundle_manifest_find(out, out->files[i].path) != i) {
            set_err(err, errlen, "manifest: %s is listed twice", out->files[i].path);
            goto out;
        }
    }
    if (layout(out) != YN_OK || out->payload_size != (uint64_t)payload) {
        set_err(err, errlen, "manifest: payload_size %" PRId64 " is not the sum of the files",
                payload);
        goto out;
    }
    rc = YN_OK;
out:
    json_decref(root);
    return rc;
}

int yn_bundle_manifest_find(const yn_bundle_manifest *m, const char *path)
{
    for (int i = 0; i < m->n_files; i++)
        if (!strcmp(m->files[i].path, path))
            return i;
    return -1;
}

/* ---- header -------------------------------------------------------------------------------- */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void yn_bundle_header_encode(uint8_t out[YN_BUNDLE_HEADER_LEN], uint32_t manifest_len)
{
    memcpy(out, YN_BUNDLE_MAGIC, 8);
    put_be32(out + 8, manifest_len);
    put_be32(out + 12, YN_BUNDLE_SIG_LEN);
}

int yn_bundle_header_decode(const uint8_t in[YN_BUNDLE_HEADER_LEN], uint32_t *manifest_len,
                            char *err, size_t errlen)
{
    if (memcmp(in, "YNFWBUN", 7) != 0) {
        set_err(err, errlen, "not a yinian firmware bundle (bad magic)");
        return YN_EINVAL;
    }
    if (in[7] > '1' && in[7] <= '9') {
        set_err(err, errlen,
                "bundle format %c is newer than this tool reads (1): update "
                "yinian-flash first",
                in[7]);
        return YN_ENOTSUP;
    }
    if (in[7] != '1') {
        set_err(err, errlen,
                "bundle format byte 0x%02x is not a format this tool knows (it reads 1): the "
                "file is damaged or was not made by yinian-flash",
                in[7]);
        return YN_EINVAL;
    }
    uint32_t n = get_be32(in + 8);
    if (n < 2 || n > YN_BUNDLE_MANIFEST_MAX || get_be32(in + 12) != YN_BUNDLE_SIG_LEN) {
        set_err(err, errlen, "bundle header: manifest of %u bytes or signature of %u bytes", n,
                get_be32(in + 12));
        return YN_EINVAL;
    }
    *manifest_len = n;
    return YN_OK;
}

/* ---- signatures ---------------------------------------------------------------------------- */

/* The signed message: tag with its NUL, then the manifest (malloc'd). */
static uint8_t *signed_message(const char *manifest, size_t len, size_t *out_len)
{
    uint8_t *msg = malloc(sizeof sign_tag + len);
    if (!msg)
        return NULL;
    memcpy(msg, sign_tag, sizeof sign_tag);
    memcpy(msg + sizeof sign_tag, manifest, len);
    *out_len = sizeof sign_tag + len;
    return msg;
}

int yn_bundle_sign(const uint8_t priv[YN_BUNDLE_KEY_LEN], const char *manifest, size_t len,
                   uint8_t sig[YN_BUNDLE_SIG_LEN])
{
    size_t msg_len, sig_len = YN_BUNDLE_SIG_LEN;
    uint8_t *msg = signed_message(manifest, len, &msg_len);
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, YN_BUNDLE_KEY_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = msg && key && ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
                     EVP_DigestSign(ctx, sig, &sig_len, msg, msg_len) == 1 &&
                     sig_len == YN_BUNDLE_SIG_LEN
                 ? YN_OK
                 : YN_EINVAL;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    free(msg);
    return rc;
}

int yn_bundle_verify(const uint8_t pub[YN_BUNDLE_KEY_LEN], const char *manifest, size_t len,
                     const uint8_t sig[YN_BUNDLE_SIG_LEN])
{
    size_t msg_len;
    uint8_t *msg = signed_message(manifest, len, &msg_len);
    EVP_PKEY *key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub, YN_BUNDLE_KEY_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = YN_EINVAL;
    if (msg && key && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1)
        rc = EVP_DigestVerify(ctx, sig, YN_BUNDLE_SIG_LEN, msg, msg_len) == 1 ? YN_OK : YN_EAUTH;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);
    free(msg);
    return rc;
}

int yn_bundle_public_key(const uint8_t priv[YN_BUNDLE_KEY_LEN], uint8_t pub[YN_BUNDLE_KEY_LEN])
{
    size_t n = YN_BUNDLE_KEY_LEN;
    EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, priv, YN_BUNDLE_KEY_LEN);
    int rc = key && EVP_PKEY_get_raw_public_key(key, pub, &n) == 1 && n == YN_BUNDLE_KEY_LEN
                 ? YN_OK
                 : YN_EINVAL;
    EVP_PKEY_free(key);
    return rc;
}
