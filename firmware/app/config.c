/* config.c — board.conf parser and validator.
 *
 * libinih splits the file into (section, key, value); a table of key
 * descriptors says what each key is, where it goes, its default and what is
 * valid. Every problem is reported as "FILE:LINE: what is wrong, what is
 * expected", and all of them are reported, not only the first. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "card.h"
#include "hex.h"

enum key_type {
    T_ID,       /* identifier: 1..16 of [A-Za-z0-9_-] */
    T_TEXT,     /* free UTF-8 text */
    T_DISTRICT, /* six-digit GB/T 2260 code */
    T_STREET,   /* nine-digit street code */
    T_INT,      /* integer in [min, max] */
    T_MONEY,    /* int64 fen in [min, max] */
    T_BOOL,
    T_ENUM,    /* one of opts, stored as int index */
    T_BACKEND, /* a backend of the section's device class built into this firmware */
    T_DEVICE,  /* device name or connstring */
    T_PATH,    /* any path; relative to board.conf's directory */
    T_FILE,    /* existing readable regular file */
    T_SECRET,  /* existing key file owned by us with mode 0600 or 0400 */
    T_PUBLIC,  /* existing file not writable by group or others */
    T_LIBRARY, /* existing shared library not writable by group or others (loaded as code) */
    T_URL,     /* https://host[:port][/path] */
};

struct key_desc {
    const char *section, *name;
    enum key_type type;
    size_t offset, size;     /* where in yn_config; size of the field */
    long long min, max;      /* T_INT, T_MONEY */
    const char *const *opts; /* T_ENUM */
    const char *def;         /* default as text, NULL = required (see required()) */
};

static const char *const modes[] = {"pos", "kiosk", NULL};
static const char *const parities[] = {"none", "even", "odd", NULL};
static const char *const rs485_modes[] = {"off", "on", "auto", NULL};
static const char *const rts_modes[] = {"none", "up", "down", NULL};
static const char *const reg_types[] = {"holding", "input", NULL};
static const char *const weight_types[] = {"int16", "int32", "float32", NULL};
static const char *const byte_orders[] = {"abcd", "cdab", "badc", "dcba", NULL};
static const char *const weight_units[] = {"g", "kg", NULL};
static const char *const stable_whens[] = {"set", "clear", NULL};
static const char *const key_types[] = {"hmac", "ecdsa-p256", NULL}; /* enum yn_key_type */

#define F(field) offsetof(yn_config, field), sizeof(((yn_config *)0)->field)
#define K(sec, key, type, field, def)                                                              \
    {                                                                                              \
        sec, key, type, F(field), 0, 0, NULL, def                                                  \
    }
#define KI(sec, key, field, lo, hi, def)                                                           \
    {                                                                                              \
        sec, key, T_INT, F(field), lo, hi, NULL, def                                               \
    }
#define KE(sec, key, field, opts, def)                                                             \
    {                                                                                              \
        sec, key, T_ENUM, F(field), 0, 0, opts, def                                                \
    }
#define KB(sec, key, field, def)                                                                   \
    {                                                                                              \
        sec, key, T_BACKEND, F(field), 0, 0, NULL, def                                             \
    }

/* The keys of an RS-485 line (yn_serial_line), the same in [scale] and [io]. */
#define LINE_KEYS(sec, line, slave_default)                                                        \
    K(sec, "device", T_DEVICE, line.device, ""), KI(sec, "baud", line.baud, 1200, 115200, "9600"), \
        KE(sec, "parity", line.parity, parities, "none"),                                          \
        KI(sec, "stop_bits", line.stop_bits, 1, 2, "1"),                                           \
        KI(sec, "slave_id", line.slave_id, 1, 247, slave_default),                                 \
        KI(sec, "timeout_ms", line.timeout_ms, 10, 5000, "200"),                                   \
        KE(sec, "rs485_mode", line.rs485, rs485_modes, "off"),                                     \
        KE(sec, "rts", line.rts, rts_modes, "none"),                                               \
        KI(sec, "rts_delay_us", line.rts_delay_us, 0, 100000, "0"),                                \
        KI(sec, "reconnect_ms", line.reconnect_ms, 50, 60000, "1000")

/* The shipped board.conf documents each of these keys with the same default. */
static const struct key_desc keys[] = {
    K("terminal", "id", T_ID, terminal.id, NULL),
    K("terminal", "canteen_id", T_ID, terminal.canteen_id, NULL),
    K("terminal", "canteen_name", T_TEXT, terminal.canteen_name, ""),
    K("terminal", "district", T_DISTRICT, terminal.district, NULL),
    K("terminal", "street", T_STREET, terminal.street, NULL),
    KE("terminal", "mode", terminal.mode, modes, "pos"),

    {"menu", "price_fen", T_MONEY, F(menu.price_fen), 0, 100000, NULL, "1500"},
    {"menu", "price_per_100g_fen", T_MONEY, F(menu.price_per_100g_fen), 0, 100000, NULL, "0"},

    KB("reader", "backend", reader.backend, "sim"),
    K("reader", "connstring", T_DEVICE, reader.connstring, ""),
    KI("reader", "timeout_ms", reader.timeout_ms, 20, 5000, "300"),
    KI("reader", "debounce_ms", reader.debounce_ms, 0, 60000, "2000"),
    KI("reader", "rf_kbps", reader.rf_kbps, 106, 424, "106"),
    K("reader", "type_b", T_BOOL, reader.type_b, "false"),
    K("reader", "sim_cards", T_FILE, reader.sim_cards, ""),
    K("reader", "demo_control", T_PATH, reader.demo_control, ""),

    KB("scale", "backend", scale.backend, "none"),
    LINE_KEYS("scale", scale.line, "1"),
    KI("scale", "stable_timeout_ms", scale.stable_timeout_ms, 100, 30000, "3000"),
    KE("scale", "register_type", scale.reg_type, reg_types, "holding"),
    KI("scale", "weight_register", scale.weight_register, 0, 65535, "0"),
    KE("scale", "weight_type", scale.weight_type, weight_types, "int32"),
    KE("scale", "byte_order", scale.byte_order, byte_orders, "abcd"),
    KE("scale", "weight_unit", scale.weight_unit, weight_units, "g"),
    KI("scale", "weight_decimals", scale.weight_decimals, 0, 4, "0"),
    KI("scale", "status_register", scale.status_register, -1, 65535, "2"),
    KI("scale", "stable_bit", scale.stable_bit, -1, 15, "0"),
    KE("scale", "stable_when", scale.stable_when, stable_whens, "set"),
    KI("scale", "overload_bit", scale.overload_bit, -1, 15, "1"),
    KI("scale", "stable_band_g", scale.stable_band_g, 0, 1000, "2"),
    KI("scale", "max_weight_g", scale.max_weight_g, 1, 1000000, "5000"),
    KI("scale", "zero_coil", scale.zero_coil, -1, 65535, "-1"),
    KI("scale", "tare_coil", scale.tare_coil, -1, 65535, "-1"),
    KI("scale", "command_register", scale.command_register, -1, 65535, "-1"),
    KI("scale", "zero_command", scale.zero_command, 0, 65535, "1"),
    KI("scale", "tare_command", scale.tare_command, 0, 65535, "2"),

    KB("io", "backend", io.backend, "sim"),
    LINE_KEYS("io", io.line, "2"),
    KI("io", "pulse_ms", io.pulse_ms, 20, 10000, "800"),
    KI("io", "green_coil", io.coil[0], -1, 65535, "0"),
    KI("io", "red_coil", io.coil[1], -1, 65535, "1"),
    KI("io", "buzzer_coil", io.coil[2], -1, 65535, "2"),
    KI("io", "gate_coil", io.coil[3], -1, 65535, "3"),
    KI("io", "green_pulse_ms", io.out_pulse_ms[0], 0, 10000, "0"),
    KI("io", "red_pulse_ms", io.out_pulse_ms[1], 0, 10000, "0"),
    KI("io", "buzzer_pulse_ms", io.out_pulse_ms[2], 0, 10000, "200"),
    KI("io", "gate_pulse_ms", io.out_pulse_ms[3], 0, 10000, "1500"),

    KB("display", "backend", display.backend, "terminal"),
    K("display", "device", T_DEVICE, display.device, "/dev/fb0"),
    KI("display", "width_px", display.width_px, 320, 4096, "800"),
    KI("display", "height_px", display.height_px, 240, 4096, "480"),
    K("display", "snapshot_dir", T_PATH, display.snapshot_dir, "screens"),
    KI("display", "result_ms", display.result_ms, 500, 60000, "4000"),

    KB("input", "backend", input.backend, "terminal"),
    K("input", "device", T_DEVICE, input.device, ""),
    K("input", "script", T_FILE, input.script, ""),

    KB("audio", "backend", audio.backend, "silent"),
    K("audio", "device", T_DEVICE, audio.device, "default"),
    K("audio", "clips_dir", T_PATH, audio.clips_dir, "clips"),
    KI("audio", "volume_pct", audio.volume_pct, 0, 100, "80"),

    K("ledger", "path", T_PATH, ledger.path, NULL),
    KI("ledger", "min_interval_s", ledger.min_interval_s, 0, 86400, "60"),
    K("ledger", "settle_dir", T_PATH, ledger.settle_dir, "settlements"),

    K("policy", "file", T_FILE, policy.file, NULL),

    K("sync", "enabled", T_BOOL, sync.enabled, "false"),
    K("sync", "url", T_URL, sync.url, ""),
    KI("sync", "interval_s", sync.interval_s, 5, 86400, "60"),
    K("sync", "ca_file", T_FILE, sync.ca_file, ""),
    {"sync", "offline_cap_fen", T_MONEY, F(sync.offline_cap_fen), 0, 100000000, NULL, "0"},

    KB("keys", "backend", keys.backend, "file"),
    KE("keys", "terminal_key_type", keys.terminal_key_type, key_types, "hmac"),
    K("keys", "terminal_key", T_SECRET, keys.terminal_key, ""),
    K("keys", "card_master_key", T_SECRET, keys.card_master_key, ""),
    K("keys", "issuer_pubkey", T_PUBLIC, keys.issuer_pubkey, NULL),
    K("keys", "district_pubkey", T_PUBLIC, keys.district_pubkey, ""),
    K("keys", "pkcs11_module", T_LIBRARY, keys.pkcs11_module, ""),
    K("keys", "token_label", T_TEXT, keys.token_label, ""),
    K("keys", "pin_file", T_SECRET, keys.pin_file, ""),
};
#define NKEYS (sizeof keys / sizeof keys[0])

static const char *const sections[] = {"terminal", "menu",  "reader",   "scale",  "io",
                                       "display",  "input", "audio",    "ledger", "policy",
                                       "sync",     "keys",  "operators"};
#define NSECTIONS (sizeof sections / sizeof sections[0])

struct parse_state {
    yn_config *cfg;
    yn_config_backend_fn *backend_ok; /* NULL: any name (the defaults) */
    yn_config_errors *errs;
    const char *file;   /* name used in messages */
    char dir[PATH_MAX]; /* directory of board.conf, for relative paths */
    FILE *fp;
    int line; /* line the reader returned last */
    bool line_too_long;
    int section_line[NSECTIONS]; /* where each known section started (0 = absent) */
    int key_line[NKEYS];         /* where each key was set (0 = default) */
    bool key_bad[NKEYS];         /* its value was refused (already reported) */
};

static void add_error(struct parse_state *st, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_error(struct parse_state *st, int line, const char *fmt, ...)
{
    yn_config_errors *e = st->errs;
    if (e->count < YN_CONFIG_MAX_ERRORS) {
        char *m = e->msg[e->count];
        int n = snprintf(m, YN_CONFIG_ERR_LEN, "%s:%d: ", st->file, line);
        va_list ap;
        va_start(ap, fmt);
        if (n > 0 && n < YN_CONFIG_ERR_LEN)
            vsnprintf(m + n, YN_CONFIG_ERR_LEN - (size_t)n, fmt, ap);
        va_end(ap);
    }
    e->count++;
}

/* "[terminal] [menu] …" for messages. */
static const char *section_list(void)
{
    static char list[160];
    if (!list[0])
        for (size_t i = 0; i < NSECTIONS; i++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s[%s]", i ? " " : "",
                     sections[i]);
    return list;
}

static int section_index(const char *name)
{
    for (size_t i = 0; i < NSECTIONS; i++)
        if (strcmp(sections[i], name) == 0)
            return (int)i;
    return -1;
}

static void *field(yn_config *cfg, const struct key_desc *k)
{
    return (char *)cfg + k->offset;
}

static bool parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    if (!*s || isspace((unsigned char)*s))
        return false;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

static bool all_digits(const char *s, size_t n)
{
    if (strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* GB/T 2260 province codes: 11-15, 21-23, 31-37, 41-46, 50-54, 61-65, 71, 81, 82. */
static bool province_ok(unsigned p)
{
    static const unsigned ranges[][2] = {{11, 15}, {21, 23}, {31, 37}, {41, 46},
                                         {50, 54}, {61, 65}, {71, 71}, {81, 82}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (p >= ranges[i][0] && p <= ranges[i][1])
            return true;
    return false;
}

/* Relative paths follow board.conf's directory. Returns false when too long. */
static bool resolve_path(const struct parse_state *st, const char *v, char *out, size_t cap)
{
    size_t dl = strlen(st->dir), vl = strlen(v);
    if (v[0] == '/' || v[0] == '\0') {
        if (vl >= cap)
            return false;
        memcpy(out, v, vl + 1);
        return true;
    }
    if (dl + 1 + vl >= cap)
        return false;
    memcpy(out, st->dir, dl);
    out[dl] = '/';
    memcpy(out + dl + 1, v, vl + 1);
    return true;
}

/* Check that a file named by key k exists and is acceptable for its type. */
static void check_file(struct parse_state *st, const struct key_desc *k, int line, const char *path,
                       const char *given)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        add_error(st, line, "[%s] %s: cannot open '%s' (%s); expected an existing file", k->section,
                  k->name, given, strerror(errno));
        return;
    }
    if (!S_ISREG(sb.st_mode)) {
        add_error(st, line, "[%s] %s: '%s' is not a regular file", k->section, k->name, given);
        return;
    }
    unsigned mode = sb.st_mode & 07777;
    if (k->type == T_SECRET) {
        if (mode & 077)
            add_error(st, line,
                      "[%s] %s: key file '%s' has mode %04o; a secret key must be readable by "
                      "its owner only (chmod 600 '%s')",
                      k->section, k->name, given, mode, given);
        else if (sb.st_uid != geteuid())
            add_error(st, line,
                      "[%s] %s: key file '%s' belongs to uid %u, not to this process (uid %u); "
                      "chown it to the terminal's user",
                      k->section, k->name, given, (unsigned)sb.st_uid, (unsigned)geteuid());
    } else if (k->type == T_PUBLIC && (mode & 022)) {
        add_error(st, line,
                  "[%s] %s: public key file '%s' has mode %04o; it must not be writable by "
                  "group or others (chmod 644 '%s')",
                  k->section, k->name, given, mode, given);
    } else if (k->type == T_LIBRARY && (mode & 022)) {
        add_error(st, line,
                  "[%s] %s: '%s' has mode %04o; code loaded into the terminal must not be "
                  "writable by group or others (chmod 644 '%s')",
                  k->section, k->name, given, mode, given);
    } else if (access(path, R_OK) != 0) {
        add_error(st, line, "[%s] %s: '%s' is not readable (%s)", k->section, k->name, given,
                  strerror(errno));
    }
}

/* Parse one value into the config. Returns false (after add_error) when bad. */
static bool set_value(struct parse_state *st, const struct key_desc *k, const char *v, int line)
{
    void *dst = field(st->cfg, k);
    long long n;
    if (v[0] == '\0' && k->type >= T_DEVICE) {
        /* "key =" leaves an optional text, path or URL unset */
        *(char *)dst = '\0';
        return true;
    }
    switch (k->type) {
    case T_ID: {
        size_t len = strlen(v);
        bool ok = len >= 1 && len < k->size;
        for (size_t i = 0; ok && i < len; i++)
            ok = isalnum((unsigned char)v[i]) || v[i] == '-' || v[i] == '_';
        if (!ok) {
            add_error(st, line, "[%s] %s = '%s': expected 1 to %zu letters, digits, '-' or '_'",
                      k->section, k->name, v, k->size - 1);
            return false;
        }
        memcpy(dst, v, len + 1);
        return true;
    }
    case T_TEXT:
    case T_DEVICE:
        if (strlen(v) >= k->size) {
            add_error(st, line, "[%s] %s: value is %zu bytes long; at most %zu allowed", k->section,
                      k->name, strlen(v), k->size - 1);
            return false;
        }
        memcpy(dst, v, strlen(v) + 1);
        return true;
    case T_DISTRICT:
        if (!all_digits(v, 6) || !province_ok((unsigned)((v[0] - '0') * 10 + (v[1] - '0')))) {
            add_error(st, line,
                      "[%s] %s = '%s': expected a six-digit GB/T 2260 district code such as "
                      "440304",
                      k->section, k->name, v);
            return false;
        }
        *(uint32_t *)dst = (uint32_t)strtoul(v, NULL, 10);
        return true;
    case T_STREET:
        if (!all_digits(v, 9)) {
            add_error(st, line,
                      "[%s] %s = '%s': expected a nine-digit street code (district code + three "
                      "digits) such as 440304001",
                      k->section, k->name, v);
            return false;
        }
        *(uint32_t *)dst = (uint32_t)strtoul(v, NULL, 10);
        return true;
    case T_INT:
    case T_MONEY:
        if (!parse_ll(v, &n) || n < k->min || n > k->max) {
            add_error(st, line, "[%s] %s = '%s': expected a whole number from %lld to %lld%s",
                      k->section, k->name, v, k->min, k->max, k->type == T_MONEY ? " (fen)" : "");
            return false;
        }
        if (k->type == T_MONEY)
            *(int64_t *)dst = (int64_t)n;
        else
            *(int *)dst = (int)n;
        return true;
    case T_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "1"))
            *(bool *)dst = true;
        else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "0"))
            *(bool *)dst = false;
        else {
            add_error(st, line, "[%s] %s = '%s': expected true or false", k->section, k->name, v);
            return false;
        }
        return true;
    case T_ENUM:
        for (int i = 0; k->opts[i]; i++)
            if (strcmp(k->opts[i], v) == 0) {
                *(int *)dst = i;
                return true;
            }
        {
            char list[128] = "";
            for (int i = 0; k->opts[i]; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? " | " : "",
                         k->opts[i]);
            add_error(st, line, "[%s] %s = '%s': expected %s", k->section, k->name, v, list);
        }
        return false;
    case T_BACKEND: {
        char list[128] = "";
        bool known = !st->backend_ok || st->backend_ok(k->section, v, list, sizeof list);
        if (strlen(v) >= k->size || !known) {
            add_error(st, line, "[%s] %s = '%s': not a %s backend of this firmware; built in: %s",
                      k->section, k->name, v, k->section, list);
            return false;
        }
        memcpy(dst, v, strlen(v) + 1);
        return true;
    }
    case T_URL: {
        const char *host = v + 8;
        if (strncmp(v, "https://", 8) != 0 || !*host || *host == '/' || *host == ':' ||
            strlen(v) >= k->size || strpbrk(v, " \t\"'")) {
            add_error(st, line,
                      "[%s] %s = '%s': expected https://host[:port] (plain http is not allowed)",
                      k->section, k->name, v);
            return false;
        }
        memcpy(dst, v, strlen(v) + 1);
        return true;
    }
    case T_PATH:
    case T_FILE:
    case T_SECRET:
    case T_PUBLIC:
    case T_LIBRARY: {
        char full[PATH_MAX];
        if (!resolve_path(st, v, full, k->size)) {
            add_error(st, line, "[%s] %s: path too long (at most %zu bytes)", k->section, k->name,
                      k->size - 1);
            return false;
        }
        memcpy(dst, full, strlen(full) + 1);
        return true;
    }
    }
    return false;
}

static int key_index(const char *section, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

static bool all_hex(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);
    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i]) && !(s[i] >= 'a' && s[i] <= 'f'))
            return false;
    return true;
}

/* One line of [operators]: "ID = operator|supervisor:SALT:SHA256HEX". */
static int on_operator(struct parse_state *st, const char *id, const char *value, int line)
{
    yn_config *c = st->cfg;
    char role[16], salt[YN_PIN_SALT_MAX + 1], hash[YN_PIN_HASH_HEX + 1];
    size_t idlen = strlen(id);
    bool id_ok = idlen >= 1 && idlen < YN_OPERATOR_ID_MAX && strspn(id, "0123456789") == idlen;
    if (!id_ok) {
        add_error(st, line,
                  "[operators] '%s': an operator id is 1 to %d digits (it is keyed in on the "
                  "keypad)",
                  id, YN_OPERATOR_ID_MAX - 1);
        return 0;
    }
    if (yn_config_operator(c, id)) {
        add_error(st, line, "[operators] %s is listed twice; keep one", id);
        return 0;
    }
    if (c->operators.n >= YN_OPERATORS_MAX) {
        add_error(st, line, "[operators] more than %d operators", YN_OPERATORS_MAX);
        return 0;
    }
    if (sscanf(value, "%15[a-z]:%65[^:]:%65s", role, salt, hash) != 3 ||
        (strcmp(role, "operator") != 0 && strcmp(role, "supervisor") != 0) ||
        !all_hex(salt, 8, YN_PIN_SALT_MAX - 1) || !all_hex(hash, 64, 64)) {
        add_error(st, line,
                  "[operators] %s: expected 'operator|supervisor:SALT:HASH' with SALT 8 to 64 "
                  "lowercase hex digits and HASH the 64 hex digits of SHA-256(SALT then PIN); "
                  "make it with tools/hash-pin",
                  id);
        return 0;
    }
    yn_operator *op = &c->operators.list[c->operators.n++];
    memcpy(op->id, id, idlen + 1);
    op->role = strcmp(role, "supervisor") == 0 ? YN_ROLE_SUPERVISOR : YN_ROLE_OPERATOR;
    memcpy(op->salt, salt, strlen(salt) + 1);
    memcpy(op->pin_sha256, hash, 65);
    return 1;
}

const yn_operator *yn_config_operator(const yn_config *cfg, const char *id)
{
    for (int i = 0; i < cfg->operators.n; i++)
        if (strcmp(cfg->operators.list[i].id, id) == 0)
            return &cfg->operators.list[i];
    return NULL;
}

bool yn_operator_pin_ok(const yn_operator *op, const char *pin)
{
    uint8_t md[32];
    unsigned md_len = 0;
    char buf[YN_PIN_SALT_MAX + 64], hex[YN_PIN_HASH_HEX];
    size_t sl = strlen(op->salt), pl = strlen(pin);
    if (sl + pl > sizeof buf || strlen(op->pin_sha256) != 64)
        return false;
    memcpy(buf, op->salt, sl);
    memcpy(buf + sl, pin, pl);
    int ok = EVP_Digest(buf, sl + pl, md, &md_len, EVP_sha256(), NULL);
    OPENSSL_cleanse(buf, sizeof buf);
    if (!ok || md_len != sizeof md)
        return false;
    yn_hex_encode(md, sizeof md, hex);
    return CRYPTO_memcmp(hex, op->pin_sha256, 64) == 0;
}

/* libinih handler: one (section, key, value), on line st->line. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    struct parse_state *st = user;
    int line = st->line;
    if (st->line_too_long)
        return 1; /* reported by the reader */
    if (section_index(section) < 0)
        return 1; /* the unknown section was reported at its header */
    if (strcmp(section, "operators") == 0)
        return on_operator(st, name, value, line);
    int ki = key_index(section, name);
    if (ki < 0) {
        char list[512] = "";
        for (size_t i = 0; i < NKEYS; i++)
            if (strcmp(keys[i].section, section) == 0)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                         list[0] ? ", " : "", keys[i].name);
        add_error(st, line, "unknown key '%s' in [%s]; keys of [%s] are: %s", name, section,
                  section, list);
        return 0;
    }
    if (st->key_line[ki]) {
        add_error(st, line, "[%s] %s is set twice (first on line %d); keep one", section, name,
                  st->key_line[ki]);
        return 0;
    }
    st->key_line[ki] = line;
    st->key_bad[ki] = !set_value(st, &keys[ki], value, line);
    return !st->key_bad[ki];
}

/* Line reader for ini_parse_stream: counts lines and notes where sections begin. */
static char *read_line(char *buf, int num, void *user)
{
    struct parse_state *st = user;
    if (!fgets(buf, num, st->fp))
        return NULL;
    st->line++;
    size_t len = strlen(buf);
    if (len == (size_t)num - 1 && buf[len - 1] != '\n' && !feof(st->fp)) {
        add_error(st, st->line, "line longer than %d characters", num - 2);
        int c;
        while ((c = fgetc(st->fp)) != EOF && c != '\n')
            ;
        buf[0] = '\0'; /* parse the rest as an empty line */
        return buf;
    }
    const char *p = buf;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0' || *p == ';' || *p == '#')
        return buf;
    if (*p != '[') {
        if (!strchr(p, '='))
            add_error(st, st->line,
                      "cannot parse this line; expected 'key = value', '[section]' "
                      "or a comment starting with ';' or '#'");
        return buf;
    }
    char name[64];
    if (!strchr(p, ']') || sscanf(p + 1, "%63[^]]", name) != 1) {
        add_error(st, st->line, "section header without closing ']'; expected '[name]'");
        return buf;
    }
    int si = section_index(name);
    if (si < 0)
        add_error(st, st->line, "unknown section [%s]; expected one of %s", name, section_list());
    else if (st->section_line[si])
        add_error(st, st->line, "section [%s] appears twice (first on line %d)", name,
                  st->section_line[si]);
    else
        st->section_line[si] = st->line;
    return buf;
}

static int section_line_of(const struct parse_state *st, const char *section)
{
    int si = section_index(section);
    return si >= 0 && st->section_line[si] ? st->section_line[si] : st->line;
}

/* A key that must be present: when absent, say so at its section. */
static void require(struct parse_state *st, int ki, const char *why)
{
    const struct key_desc *k = &keys[ki];
    const char *v = field(st->cfg, k);
    if (st->key_bad[ki])
        return; /* its bad value was reported already */
    bool empty =
        (k->type == T_DISTRICT || k->type == T_STREET) ? *(const uint32_t *)v == 0 : v[0] == '\0';
    if (!st->key_line[ki] || empty)
        add_error(st, st->key_line[ki] ? st->key_line[ki] : section_line_of(st, k->section),
                  "[%s] %s is required%s%s", k->section, k->name, why ? " " : "", why ? why : "");
}

/* The line to blame for key (section, name): where it was set, else its section. */
static int line_of_key(const struct parse_state *st, const char *section, const char *name)
{
    int ki = key_index(section, name);
    return ki >= 0 && st->key_line[ki] ? st->key_line[ki] : section_line_of(st, section);
}

/* Keys of [scale], [io] and [menu] that only make sense together (hal/chips/MODBUS.md). */
static void validate_modbus(struct parse_state *st)
{
    const yn_config *c = st->cfg;
    static const char *const sec[2] = {"scale", "io"};
    const enum yn_rs485_mode rs485[2] = {c->scale.line.rs485, c->io.line.rs485};
    const enum yn_rts rts[2] = {c->scale.line.rts, c->io.line.rts};
    for (int i = 0; i < 2; i++)
        if (rts[i] != YN_RTS_NONE && rs485[i] == YN_RS485_ON)
            add_error(st, line_of_key(st, sec[i], "rts"),
                      "[%s] rts = %s with rs485_mode = on: the kernel's RS-485 mode drives RTS "
                      "itself; use rts = none, or rs485_mode = off with rts",
                      sec[i], rts[i] == YN_RTS_UP ? "up" : "down");

    int words = c->scale.weight_type == YN_WEIGHT_INT16 ? 1 : 2;
    if (c->scale.status_register < 0 && (c->scale.stable_bit >= 0 || c->scale.overload_bit >= 0))
        add_error(st, line_of_key(st, "scale", "status_register"),
                  "[scale] status_register = -1 but stable_bit or overload_bit names a bit of "
                  "it; give the status register's address, or set both bits to -1");
    if (c->scale.status_register >= c->scale.weight_register &&
        c->scale.status_register < c->scale.weight_register + words)
        add_error(st, line_of_key(st, "scale", "status_register"),
                  "[scale] status_register = %d overlaps the weight (registers %d..%d); expected "
                  "another address",
                  c->scale.status_register, c->scale.weight_register,
                  c->scale.weight_register + words - 1);
    if (c->scale.weight_register + words - 1 > 65535)
        add_error(st, line_of_key(st, "scale", "weight_register"),
                  "[scale] weight_register = %d: a %d-register weight does not fit below 65536",
                  c->scale.weight_register, words);
    if (!strcmp(c->scale.backend, "modbus") && !strcmp(c->io.backend, "modbus") &&
        c->scale.line.device[0] && !strcmp(c->scale.line.device, c->io.line.device))
        add_error(st, line_of_key(st, "io", "device"),
                  "[io] device = '%s' is also the scale's port; two devices on one RS-485 port "
                  "are not supported yet: wire the I/O module to a port of its own",
                  c->io.line.device);
    if (c->menu.price_per_100g_fen > 0 && !strcmp(c->scale.backend, "none"))
        add_error(st, line_of_key(st, "menu", "price_per_100g_fen"),
                  "[menu] price_per_100g_fen = %lld but [scale] backend = none: weighed meals "
                  "need a scale (or set price_per_100g_fen = 0)",
                  (long long)c->menu.price_per_100g_fen);
}

/* [keys]: each backend's keys, and none of the other's — a token configured
 * under backend = file (or a key file left under pkcs11) is refused, never
 * silently taken the other way. */
static void validate_keys(struct parse_state *st)
{
    const yn_config *c = st->cfg;
    static const char *const file_keys[] = {"terminal_key", "card_master_key"};
    static const char *const token_keys[] = {"pkcs11_module", "token_label", "pin_file"};
    bool token = !strcmp(c->keys.backend, "pkcs11");
    if (!token && strcmp(c->keys.backend, "file") != 0)
        return; /* a bad backend was reported with its line */
    const char *const *need = token ? token_keys : file_keys;
    const char *const *refuse = token ? file_keys : token_keys;
    size_t n_need = token ? 3 : 2, n_refuse = token ? 2 : 3;
    for (size_t i = 0; i < n_need; i++)
        require(st, key_index("keys", need[i]), token ? "when backend = pkcs11" : NULL);
    for (size_t i = 0; i < n_refuse; i++) {
        int ki = key_index("keys", refuse[i]);
        if (st->key_line[ki] && !st->key_bad[ki] && *(const char *)field(st->cfg, &keys[ki]))
            add_error(st, st->key_line[ki],
                      token ? "[keys] %s is set but backend = pkcs11 keeps the secret keys in "
                              "the token: remove the line (and the key file from the board)"
                            : "[keys] %s is set but backend = file reads the secret keys from "
                              "files: set backend = pkcs11 to use the token, or remove the line",
                      refuse[i]);
    }
}

static void validate(struct parse_state *st)
{
    yn_config *c = st->cfg;
    /* plain required keys (no default) */
    for (size_t i = 0; i < NKEYS; i++)
        if (!keys[i].def)
            require(st, (int)i, NULL);
    /* a backend left at its default must be built in too (a board build has
     * no sim: the file must name its reader and outputs) */
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key_desc *k = &keys[i];
        char list[128] = "";
        char *v = field(st->cfg, k);
        if (k->type == T_BACKEND && !st->key_line[i] && st->backend_ok &&
            !st->backend_ok(k->section, v, list, sizeof list)) {
            add_error(st, section_line_of(st, k->section),
                      "[%s] %s is required: the default '%s' is not built into this firmware;"
                      " built in: %s",
                      k->section, k->name, v, list);
            v[0] = '\0'; /* none: what the default would require is not asked for */
        }
    }

    /* keys required by another key's value */
    if (!strcmp(c->reader.backend, "libnfc"))
        require(st, key_index("reader", "connstring"), "when backend = libnfc");
    if (!strcmp(c->reader.backend, "sim"))
        require(st, key_index("reader", "sim_cards"), "when backend = sim");
    if (!strcmp(c->scale.backend, "modbus"))
        require(st, key_index("scale", "device"), "when backend = modbus");
    if (!strcmp(c->io.backend, "modbus"))
        require(st, key_index("io", "device"), "when backend = modbus");
    validate_modbus(st);
    if (!strcmp(c->input.backend, "script"))
        require(st, key_index("input", "script"), "when backend = script");
    if (!strcmp(c->input.backend, "evdev"))
        require(st, key_index("input", "device"), "when backend = evdev");
    if (c->sync.enabled) {
        require(st, key_index("sync", "url"), "when enabled = true");
        require(st, key_index("sync", "ca_file"), "when enabled = true");
        require(st, key_index("keys", "district_pubkey"), "when [sync] enabled = true");
    }
    validate_keys(st);
    if (c->terminal.district && c->terminal.street &&
        c->terminal.street / 1000 != c->terminal.district) {
        int ki = key_index("terminal", "street");
        add_error(st, st->key_line[ki],
                  "[terminal] street = %09u does not lie in district %06u; "
                  "expected a code starting with %06u",
                  (unsigned)c->terminal.street, (unsigned)c->terminal.district,
                  (unsigned)c->terminal.district);
    }
    if (c->terminal.mode == YN_MODE_POS && !strcmp(c->input.backend, "none"))
        add_error(st, section_line_of(st, "input"),
                  "[input] backend = none: a pos terminal needs a keypad");

    /* files that must exist, with the right modes */
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key_desc *k = &keys[i];
        const char *path = field(c, k);
        /* a key pair's file is made by the keystore (enrolment, yinian-flash
         * provision --key-pair); once there it is checked as any secret */
        bool made_later = path == c->keys.terminal_key &&
                          c->keys.terminal_key_type == YN_KEY_ECDSA_P256 &&
                          access(path, F_OK) != 0 && errno == ENOENT;
        if ((k->type == T_FILE || k->type == T_SECRET || k->type == T_PUBLIC ||
             k->type == T_LIBRARY) &&
            path[0] && st->key_line[i] && !made_later)
            check_file(st, k, st->key_line[i], path, path);
    }
}

void yn_config_defaults(yn_config *cfg)
{
    struct parse_state st = {.cfg = cfg, .dir = "."};
    yn_config_errors dummy = {0};
    st.errs = &dummy;
    memset(cfg, 0, sizeof *cfg);
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].def && keys[i].def[0])
            set_value(&st, &keys[i], keys[i].def, 0);
    snprintf(cfg->keys.source, sizeof cfg->keys.source, "board.conf");
    /* not a key: the card format this firmware reads decides it */
    cfg->reader.record_len = yn_card_record_size(YN_CARD_FORMAT_V1);
}

int yn_config_load(const char *path, yn_config_backend_fn *backend_ok, yn_config *cfg,
                   yn_config_errors *errs)
{
    struct parse_state st = {.cfg = cfg, .backend_ok = backend_ok, .errs = errs, .file = path};
    memset(errs, 0, sizeof *errs);
    yn_config_defaults(cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    snprintf(cfg->keys.source, sizeof cfg->keys.source, "%s", path);

    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(st.dir, sizeof st.dir, "%.*s", (int)(slash - path),
                 path[0] == '/' && slash == path ? "/" : path);
    else
        snprintf(st.dir, sizeof st.dir, ".");
    /* default relative paths follow board.conf too */
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].type == T_PATH && keys[i].def && keys[i].def[0])
            set_value(&st, &keys[i], keys[i].def, 0);

    st.fp = fopen(path, "r");
    if (!st.fp) {
        add_error(&st, 0, "cannot open configuration (%s)", strerror(errno));
        return YN_ENOENT;
    }
    ini_allow_multiline = false; /* an indented key must not silently join the line above */
    int rc = ini_parse_stream(read_line, &st, on_key, &st);
    fclose(st.fp);
    if (rc < 0)
        add_error(&st, 0, "cannot read configuration (out of memory)");
    /* rc > 0: every line inih refused was reported by read_line or on_key */
    validate(&st);
    return errs->count ? YN_ECONFIG : YN_OK;
}

const char *yn_mode_name(enum yn_mode m)
{
    return m == YN_MODE_KIOSK ? "kiosk" : "pos";
}
