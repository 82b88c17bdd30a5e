/* keystore.c — keys from files named in board.conf [keys].
 *
 * A key file holds hex text; whitespace and '#' comments are allowed. Secret
 * key files are re-checked at every load: regular file, owned by this
 * process's user, no access for group or others. A secret that leaked through
 * a bad mode is refused rather than used. */
#include "keystore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

static bool is_secret(enum yn_key_id id)
{
    return id == YN_KEYID_TERMINAL || id == YN_KEYID_CARD_MASTER;
}

static const char *path_of(const yn_config *cfg, enum yn_key_id id)
{
    switch (id) {
    case YN_KEYID_TERMINAL:
        return cfg->keys.terminal_key;
    case YN_KEYID_CARD_MASTER:
        return cfg->keys.card_master_key;
    case YN_KEYID_ISSUER_PUB:
        return cfg->keys.issuer_pubkey;
    case YN_KEYID_DISTRICT_PUB:
        return cfg->keys.district_pubkey;
    default:
        return "";
    }
}

const char *yn_key_id_name(enum yn_key_id id)
{
    static const char *const names[YN_KEYID_COUNT] = {"terminal_key", "card_master_key",
                                                      "issuer_pubkey", "district_pubkey"};
    return (unsigned)id < YN_KEYID_COUNT ? names[id] : "?";
}

int yn_hex_decode(const char *text, uint8_t *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    int hi = -1;
    *len = 0;
    for (const char *p = text; *p; p++) {
        if (*p == '#') {
            while (*p && *p != '\n')
                p++;
            if (!*p)
                break;
            continue;
        }
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            continue;
        int v;
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            v = *p - 'A' + 10;
        else
            return YN_EINVAL;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n >= cap)
            return YN_ELIMIT;
        buf[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    if (hi >= 0)
        return YN_EINVAL; /* odd number of digits */
    *len = n;
    return YN_OK;
}

static int file_open(yn_keystore *ks, const yn_config *cfg)
{
    ks->priv = (void *)cfg;
    return YN_OK;
}

int yn_key_file_load(const char *path, bool secret, const char *what, uint8_t *buf, size_t cap,
                     size_t *len)
{
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        yn_err("keystore: cannot open %s '%s': %s", what, path, strerror(errno));
        return errno == ENOENT ? YN_ENOENT : YN_EPERM;
    }
    struct stat sb;
    int rc = YN_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        yn_err("keystore: %s '%s' is not a regular file", what, path);
        rc = YN_EPERM;
    } else if (secret && ((sb.st_mode & 077) || sb.st_uid != geteuid())) {
        yn_err("keystore: secret %s '%s' has mode %04o owner %u; expected mode 0600 owned by "
               "uid %u",
               what, path, (unsigned)(sb.st_mode & 07777), (unsigned)sb.st_uid,
               (unsigned)geteuid());
        rc = YN_EPERM;
    } else if (sb.st_size > YN_KEY_MAX * 3) {
        yn_err("keystore: %s '%s' is too large", what, path);
        rc = YN_ELIMIT;
    }
    char text[YN_KEY_MAX * 3 + 1];
    ssize_t got = rc == YN_OK ? read(fd, text, sizeof text - 1) : -1;
    close(fd);
    if (rc != YN_OK)
        return rc;
    if (got < 0)
        return YN_EIO;
    text[got] = '\0';
    rc = yn_hex_decode(text, buf, cap, len);
    explicit_bzero(text, sizeof text);
    if (rc != YN_OK)
        yn_err("keystore: %s '%s' is not hex text of at most %zu bytes", what, path, cap);
    return rc;
}

static int file_load(yn_keystore *ks, enum yn_key_id id, uint8_t *buf, size_t cap, size_t *len)
{
    const yn_config *cfg = ks->priv;
    const char *path = path_of(cfg, id);
    if (!path[0]) {
        yn_err("keystore: %s is not configured in %s [keys]", yn_key_id_name(id), cfg->path);
        return YN_ENOTFOUND;
    }
    return yn_key_file_load(path, is_secret(id), yn_key_id_name(id), buf, cap, len);
}

const yn_keystore_ops yn_keystore_file_ops = {
    .name = "file",
    .open = file_open,
    .load = file_load,
};

int yn_keystore_open(yn_keystore *ks, const yn_keystore_ops *ops, const yn_config *cfg)
{
    ks->ops = ops;
    ks->priv = NULL;
    return ops->open(ks, cfg);
}

void yn_keystore_close(yn_keystore *ks)
{
    if (ks->ops && ks->ops->close)
        ks->ops->close(ks);
    ks->ops = NULL;
}

int yn_keystore_load(yn_keystore *ks, enum yn_key_id id, uint8_t *buf, size_t cap, size_t *len)
{
    *len = 0;
    if ((unsigned)id >= YN_KEYID_COUNT)
        return YN_EINVAL;
    return ks->ops ? ks->ops->load(ks, id, buf, cap, len) : YN_ENODEV;
}
