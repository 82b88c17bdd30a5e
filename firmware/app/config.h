/* config.h — board.conf: the terminal's configuration, parsed with libinih and
 * validated key by key. Every error carries "FILE:LINE: what is wrong, what is
 * expected". Relative paths are resolved against the directory of board.conf. */
#ifndef YN_CONFIG_H
#define YN_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audio.h"
#include "display.h"
#include "input.h"
#include "io.h"
#include "keystore.h"
#include "nfc.h"
#include "scale.h"
#include "status.h"

#define YN_CONFIG_MAX_ERRORS 16
#define YN_CONFIG_ERR_LEN    512
#define YN_ID_MAX            17 /* identifiers: 1..16 of [A-Za-z0-9_-] + NUL */
#define YN_OPERATORS_MAX     32 /* entries of [operators] */
#define YN_OPERATOR_ID_MAX   9  /* operator ids: 1..8 digits (keyed in) + NUL */
#define YN_PIN_SALT_MAX      65 /* salt: 8..64 hex digits + NUL */
#define YN_PIN_HASH_HEX      65 /* SHA-256 as 64 lowercase hex digits + NUL */

enum yn_mode { YN_MODE_POS, YN_MODE_KIOSK };
enum yn_role { YN_ROLE_OPERATOR, YN_ROLE_SUPERVISOR }; /* supervisors may also 冲正 */

/* One member of staff from [operators]: "id = role:salt:sha256hex", where the
 * hash is SHA-256 of the salt text followed by the PIN (tools/hash-pin). The
 * PIN itself is never stored. */
typedef struct yn_operator {
    char id[YN_OPERATOR_ID_MAX]; /* digits, keyed in at login */
    enum yn_role role;
    char salt[YN_PIN_SALT_MAX];       /* hex text, hashed as text */
    char pin_sha256[YN_PIN_HASH_HEX]; /* lowercase hex of SHA-256(salt ‖ PIN) */
} yn_operator;

/* board.conf: the device classes' sections are their own structs (hal/). */
typedef struct yn_config {
    char path[PATH_MAX]; /* board.conf as given */

    struct {
        char id[YN_ID_MAX];         /* terminal id, unique in the district */
        char canteen_id[YN_ID_MAX]; /* canteen this terminal serves */
        char canteen_name[96];      /* shown on the idle screen (UTF-8) */
        uint32_t district;          /* GB/T 2260 six-digit code */
        uint32_t street;            /* nine digits, starts with district */
        enum yn_mode mode;          /* pos (counter) or kiosk (balance) */
    } terminal;

    struct {
        int64_t price_fen;          /* meal price charged until staff key in another */
        int64_t price_per_100g_fen; /* weighed meals (称重): price per 100 g; 0 = none */
    } menu;

    yn_nfc_conf reader;      /* [reader]: hal/nfc/nfc.h */
    yn_scale_conf scale;     /* [scale]: hal/scale/scale.h */
    yn_io_conf io;           /* [io]: hal/io/io.h */
    yn_display_conf display; /* [display]: hal/display/display.h */
    yn_input_conf input;     /* [input]: hal/input/input.h */
    yn_audio_conf audio;     /* [audio]: hal/audio/audio.h */

    struct {
        char path[PATH_MAX];       /* SQLite ledger file */
        int min_interval_s;        /* least time between two debits of one card */
        char settle_dir[PATH_MAX]; /* 日结 CSV files are written here */
    } ledger;

    struct {
        char file[PATH_MAX]; /* policy in force until the district sends one */
    } policy;

    struct {
        bool enabled;
        char url[256];           /* https://host[:port] of the district server */
        int interval_s;          /* between sync rounds */
        char ca_file[PATH_MAX];  /* CA that signed the server certificate */
        int64_t offline_cap_fen; /* per card per day while offline; 0 = none */
    } sync;

    yn_keys_conf keys; /* [keys]: hal/keystore/keystore.h */

    struct {
        int n;                              /* entries used */
        yn_operator list[YN_OPERATORS_MAX]; /* in file order */
    } operators;
} yn_config;

typedef struct yn_config_errors {
    int count;                                         /* errors found (may exceed stored) */
    char msg[YN_CONFIG_MAX_ERRORS][YN_CONFIG_ERR_LEN]; /* "FILE:LINE: ..." */
} yn_config_errors;

/* Fill every key with its documented default. */
void yn_config_defaults(yn_config *cfg);

/* Whether name is a backend of the device class of [section] built into this
 * firmware; when not, built_in gets those that are ("sim, libnfc"). The hal
 * registry answers (hal/registry/hal.h yn_hal_backend_ok): config.c knows no device. */
typedef bool yn_config_backend_fn(const char *section, const char *name, char *built_in,
                                  size_t len);

/* Parse and validate path into cfg, each [section] backend checked with
 * backend_ok (NULL: any name). YN_OK, or YN_ECONFIG / YN_ENOENT with every
 * problem (up to YN_CONFIG_MAX_ERRORS) listed in errs. */
int yn_config_load(const char *path, yn_config_backend_fn *backend_ok, yn_config *cfg,
                   yn_config_errors *errs) YN_MUST_CHECK;

const char *yn_mode_name(enum yn_mode m);
/* The entry of operator id, or NULL. */
const yn_operator *yn_config_operator(const yn_config *cfg, const char *id);
/* Whether pin is op's PIN: SHA-256(salt ‖ pin) compared in constant time. */
bool yn_operator_pin_ok(const yn_operator *op, const char *pin);

#endif
