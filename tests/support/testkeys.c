/* testkeys.c — see testkeys.h. */
#include "testkeys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

const char *yn_testkeys_backend(void)
{
    const char *b = getenv("YN_KEYS_BACKEND");
    return b && strcmp(b, "pkcs11") == 0 ? "pkcs11" : "file";
}

bool yn_testkeys_token(void)
{
    return strcmp(yn_testkeys_backend(), "pkcs11") == 0;
}

const char *yn_testkeys_softhsm_module(void)
{
    const char *m = getenv("YN_SOFTHSM_MODULE");
    return m && *m ? m : "/usr/lib/softhsm/libsofthsm2.so";
}

static int config_as(yn_testkeys *t, const char *backend, const char *dir)
{
    memset(t, 0, sizeof *t);
    yn_config_defaults(&t->cfg);
    snprintf(t->cfg.path, sizeof t->cfg.path, "%s/board.conf", dir);
    return yn_testkeys_configure_as(&t->cfg, backend, dir);
}

int yn_testkeys_config(yn_testkeys *t, const char *dir)
{
    return config_as(t, yn_testkeys_backend(), dir);
}

int yn_testkeys_configure(yn_config *cfg, const char *dir)
{
    return yn_testkeys_configure_as(cfg, yn_testkeys_backend(), dir);
}

int yn_testkeys_configure_as(yn_config *cfg, const char *backend, const char *dir)
{
    if (strcmp(backend, "pkcs11") != 0) {
        snprintf(cfg->keys.backend, sizeof cfg->keys.backend, "file");
        snprintf(cfg->keys.terminal_key, sizeof cfg->keys.terminal_key, "%s/terminal.key", dir);
        snprintf(cfg->keys.card_master_key, sizeof cfg->keys.card_master_key, "%s/card-master.key",
                 dir);
        return YN_OK;
    }
    char cmd[3 * PATH_MAX], conf[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "'%s/tools/softhsm-token' '%s/softhsm' yinian-test >/dev/null",
             yn_test_srcdir(), dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "testkeys: %s failed\n", cmd);
        return YN_EIO;
    }
    snprintf(conf, sizeof conf, "%s/softhsm/softhsm2.conf", dir);
    setenv("SOFTHSM2_CONF", conf, 1);
    snprintf(cfg->keys.backend, sizeof cfg->keys.backend, "pkcs11");
    snprintf(cfg->keys.pkcs11_module, sizeof cfg->keys.pkcs11_module, "%s",
             yn_testkeys_softhsm_module());
    snprintf(cfg->keys.token_label, sizeof cfg->keys.token_label, "yinian-test");
    snprintf(cfg->keys.pin_file, sizeof cfg->keys.pin_file, "%s/softhsm/yinian-test.pin", dir);
    cfg->keys.terminal_key[0] = cfg->keys.card_master_key[0] = '\0';
    return YN_OK;
}

void yn_testkeys_open(yn_testkeys *t, const char *dir, const uint8_t *master,
                      const uint8_t *terminal, size_t terminal_len)
{
    yn_testkeys_open_as(t, yn_testkeys_backend(), dir, master, terminal, terminal_len);
}

void yn_testkeys_open_as(yn_testkeys *t, const char *backend, const char *dir,
                         const uint8_t *master, const uint8_t *terminal, size_t terminal_len)
{
    int rc = config_as(t, backend, dir);
    if (rc == YN_OK && (rc = yn_keystore_open(&t->ks, NULL, &t->cfg.keys)) != YN_OK)
        fprintf(stderr, "testkeys: %s\n", t->ks.error);
    if (rc == YN_OK && master)
        rc = yn_keystore_store(&t->ks, YN_KEYID_CARD_MASTER, master, 16, false);
    if (rc == YN_OK && terminal)
        rc = yn_keystore_store(&t->ks, YN_KEYID_TERMINAL, terminal, terminal_len, false);
    if (rc != YN_OK) {
        fprintf(stderr, "testkeys: %s keystore in %s: %s\n", backend, dir, yn_strerror(rc));
        abort();
    }
}

void yn_testkeys_open_pair(yn_testkeys *t, const char *backend, const char *dir,
                           const uint8_t *master, uint8_t pub[YN_KEYSTORE_PUB_LEN])
{
    uint8_t ignored[YN_KEYSTORE_PUB_LEN];
    int rc = config_as(t, backend, dir);
    t->cfg.keys.terminal_key_type = YN_KEY_ECDSA_P256;
    if (rc == YN_OK && (rc = yn_keystore_open(&t->ks, NULL, &t->cfg.keys)) != YN_OK)
        fprintf(stderr, "testkeys: %s\n", t->ks.error);
    if (rc == YN_OK && master)
        rc = yn_keystore_store(&t->ks, YN_KEYID_CARD_MASTER, master, 16, false);
    if (rc == YN_OK)
        rc = yn_keystore_generate(&t->ks, false, pub ? pub : ignored, NULL);
    if (rc != YN_OK) {
        fprintf(stderr, "testkeys: %s keystore with a key pair in %s: %s\n", backend, dir,
                yn_strerror(rc));
        abort();
    }
}

void yn_testkeys_close(yn_testkeys *t)
{
    yn_keystore_close(&t->ks);
}
