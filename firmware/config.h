/* config.h — board.conf: the terminal's configuration, parsed with libinih and
 * validated key by key. Every error carries "FILE:LINE: what is wrong, what is
 * expected". Relative paths are resolved against the directory of board.conf. */
#ifndef YN_CONFIG_H
#define YN_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "status.h"

#define YN_CONFIG_MAX_ERRORS 16
#define YN_CONFIG_ERR_LEN    512
#define YN_ID_MAX            17  /* identifiers: 1..16 of [A-Za-z0-9_-] + NUL */
#define YN_BACKEND_MAX       16  /* backend names */
#define YN_DEV_MAX           128 /* device names, connstrings */
#define YN_OPERATORS_MAX     32  /* entries of [operators] */
#define YN_OPERATOR_ID_MAX   9   /* operator ids: 1..8 digits (keyed in) + NUL */
#define YN_PIN_SALT_MAX      65  /* salt: 8..64 hex digits + NUL */
#define YN_PIN_HASH_HEX      65  /* SHA-256 as 64 lowercase hex digits + NUL */

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
enum yn_parity { YN_PARITY_NONE, YN_PARITY_EVEN, YN_PARITY_ODD };
/* RS-485 line settings of a Modbus RTU device (hal/MODBUS.md). */
enum yn_rs485_mode {
    YN_RS485_OFF,  /* no kernel RS-485 mode: adapter switches direction itself */
    YN_RS485_ON,   /* the UART driver must switch to RS-485 (TIOCSRS485) */
    YN_RS485_AUTO, /* try it; a port without RS-485 mode (ENOTTY) goes on */
};
enum yn_rts { YN_RTS_NONE, YN_RTS_UP, YN_RTS_DOWN }; /* libmodbus RTS toggling */
/* Scale register map (hal/MODBUS.md). */
enum yn_reg_type { YN_REG_HOLDING, YN_REG_INPUT }; /* function 03 or 04 */
enum yn_weight_type { YN_WEIGHT_INT16, YN_WEIGHT_INT32, YN_WEIGHT_FLOAT32 };
enum yn_byte_order { YN_ORDER_ABCD, YN_ORDER_CDAB, YN_ORDER_BADC, YN_ORDER_DCBA };
enum yn_weight_unit { YN_UNIT_G, YN_UNIT_KG };
enum yn_stable_when {
    YN_STABLE_WHEN_SET,
    YN_STABLE_WHEN_CLEAR
}; /* the bit means stable / motion */

/* An RS-485 line to a Modbus RTU device: [scale] and [io] alike. */
typedef struct yn_serial_line {
    char device[YN_DEV_MAX]; /* serial port */
    int baud;
    enum yn_parity parity;
    int stop_bits;            /* 1 or 2 (8 data bits always) */
    int slave_id;             /* Modbus slave address 1..247 */
    int timeout_ms;           /* per Modbus request */
    enum yn_rs485_mode rs485; /* kernel RS-485 mode of the port */
    enum yn_rts rts;          /* libmodbus RTS toggling (rs485 = off only) */
    int rts_delay_us;         /* RTS settle time; 0 = libmodbus default */
    int reconnect_ms;         /* wait before reopening a port that failed */
} yn_serial_line;

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

    struct {
        char backend[YN_BACKEND_MAX];
        char connstring[YN_DEV_MAX]; /* libnfc connstring, e.g. pn532_uart:/dev/ttyS1 */
        int timeout_ms;              /* per exchange with the card */
        int debounce_ms;             /* same card again within this = same tap */
        int rf_kbps;              /* ISO 14443-4 bit rate after activation (106, 212, 424: InPSL) */
        bool type_b;              /* list ISO 14443-B cards too (identity-only cards by PUPI) */
        char sim_cards[PATH_MAX]; /* sim: file of virtual cards */
        char demo_control[PATH_MAX]; /* demo: emulator's control FIFO for card keys; "" = none */
    } reader;

    struct {
        char backend[YN_BACKEND_MAX];
        yn_serial_line line;       /* the scale's RS-485 line */
        int stable_timeout_ms;     /* how long to wait for a stable weight */
        enum yn_reg_type reg_type; /* weight and status: holding or input */
        int weight_register;       /* 0-based PDU address of the net weight */
        enum yn_weight_type weight_type;
        enum yn_byte_order byte_order; /* of 16- and 32-bit values */
        enum yn_weight_unit weight_unit;
        int weight_decimals;             /* raw integer / 10^decimals = weight in unit */
        int status_register;             /* -1 = none */
        int stable_bit;                  /* bit of status_register; -1 = judge by readings */
        enum yn_stable_when stable_when; /* stable_bit set = stable, or set = in motion */
        int overload_bit;                /* bit of status_register; -1 = none */
        int stable_band_g;               /* stable_bit -1: 3 readings within this many g */
        int max_weight_g;                /* above this a weighed meal is refused */
        int zero_coil, tare_coil;        /* coil written 1 to zero / tare; -1 = none */
        int command_register;            /* register a command value is written to; -1 = none */
        int zero_command, tare_command;  /* values for command_register */
    } scale;

    struct {
        char backend[YN_BACKEND_MAX];
        yn_serial_line line; /* the relay module's RS-485 line */
        int pulse_ms;        /* length of a light/buzzer pulse */
        int coil[4];         /* coil per output, indexed by enum yn_output; -1 = none */
        int out_pulse_ms[4]; /* pulse per output, by enum yn_output; 0 = pulse_ms */
    } io;

    struct {
        char backend[YN_BACKEND_MAX];
        char device[YN_DEV_MAX]; /* fb: /dev/fb0 */
        int width_px, height_px;
        char snapshot_dir[PATH_MAX]; /* png: where screens are written */
        int result_ms;               /* result screen stays this long */
    } display;

    struct {
        char backend[YN_BACKEND_MAX];
        char device[YN_DEV_MAX]; /* evdev: /dev/input/eventN */
        char script[PATH_MAX];   /* script: file of keys and card events */
    } input;

    struct {
        char backend[YN_BACKEND_MAX];
        char device[YN_DEV_MAX];  /* ALSA device name */
        char clips_dir[PATH_MAX]; /* prompt clips */
        int volume_pct;
    } audio;

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

    struct {
        char backend[YN_BACKEND_MAX];   /* file | pkcs11: where the secret keys live */
        char terminal_key[PATH_MAX];    /* file: secret, 0600: HMAC key for batches */
        char card_master_key[PATH_MAX]; /* file: secret, 0600: AN10922 master key */
        char issuer_pubkey[PATH_MAX];   /* card issuer's Ed25519 public key(s) */
        char district_pubkey[PATH_MAX]; /* district's Ed25519 public key */
        char pkcs11_module[PATH_MAX];   /* pkcs11: the token's module, not writable by others */
        char token_label[33];           /* pkcs11: the token's label, 1..32 bytes */
        char pin_file[PATH_MAX];        /* pkcs11: secret, 0600: the token's user PIN */
    } keys;

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

/* Parse and validate path into cfg. YN_OK, or YN_ECONFIG / YN_ENOENT with every
 * problem (up to YN_CONFIG_MAX_ERRORS) listed in errs. */
int yn_config_load(const char *path, yn_config *cfg, yn_config_errors *errs) YN_MUST_CHECK;

const char *yn_mode_name(enum yn_mode m);
/* The entry of operator id, or NULL. */
const yn_operator *yn_config_operator(const yn_config *cfg, const char *id);
/* Whether pin is op's PIN: SHA-256(salt ‖ pin) compared in constant time. */
bool yn_operator_pin_ok(const yn_operator *op, const char *pin);

#endif
