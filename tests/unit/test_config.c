/* test_config.c — board.conf: good files load with the right values and
 * defaults; every single mistake is refused with its line and a clear text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "card.h"
#include "config.h"
#include "hal.h"
#include "testutil.h"

/* A minimal valid file; line numbers matter to the cases below. */
static const char *const base_lines[] = {
    "[terminal]",                        /* 1 */
    "id = T1",                           /* 2 */
    "canteen_id = C1",                   /* 3 */
    "district = 440304",                 /* 4 */
    "street = 440304001",                /* 5 */
    "[reader]",                          /* 6 */
    "sim_cards = cards.txt",             /* 7 */
    "[ledger]",                          /* 8 */
    "path = ledger.db",                  /* 9 */
    "[policy]",                          /* 10 */
    "file = policy.json",                /* 11 */
    "[keys]",                            /* 12 */
    "terminal_key = keys/terminal.key",  /* 13 */
    "card_master_key = keys/master.key", /* 14 */
    "issuer_pubkey = keys/issuer.pub",   /* 15 */
    NULL,
};

struct fixture {
    char dir[256];
    char conf[512];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    char p[512];
    yn_test_tmpdir(f->dir, sizeof f->dir);
    yn_test_write(f->dir, "cards.txt", "# none\n", 0644, p, sizeof p);
    yn_test_write(f->dir, "policy.json", "{}\n", 0644, p, sizeof p);
    yn_test_write(f->dir, "keys/terminal.key", "00112233\n", 0600, p, sizeof p);
    yn_test_write(f->dir, "keys/master.key", "00112233\n", 0600, p, sizeof p);
    yn_test_write(f->dir, "keys/issuer.pub", "1 00\n", 0644, p, sizeof p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

/* Write the base file with line `at` (1-based) replaced by `repl` (NULL: keep;
 * "" with del: delete), plus `extra` appended. */
static void write_conf(struct fixture *f, int at, const char *repl, const char *extra)
{
    char text[4096] = "";
    for (int i = 0; base_lines[i]; i++) {
        const char *l = (i + 1 == at && repl) ? repl : base_lines[i];
        strcat(text, l);
        strcat(text, "\n");
    }
    if (extra)
        strcat(text, extra);
    yn_test_write(f->dir, "board.conf", text, 0644, f->conf, sizeof f->conf);
}

static void test_good_file_and_defaults(void **state)
{
    struct fixture *f = *state;
    write_conf(f, 0, NULL, "[terminal]\n");
    /* a repeated section header is an error; use a clean file instead */
    write_conf(f, 0, NULL, NULL);
    yn_config cfg;
    yn_config_errors errs;
    assert_int_equal(yn_config_load(f->conf, yn_hal_backend_ok, &cfg, &errs), YN_OK);
    assert_int_equal(errs.count, 0);
    assert_string_equal(cfg.terminal.id, "T1");
    assert_int_equal(cfg.terminal.district, 440304);
    assert_int_equal(cfg.terminal.street, 440304001);
    assert_int_equal(cfg.terminal.mode, YN_MODE_POS);
    assert_string_equal(cfg.reader.backend, "sim");
    assert_int_equal(cfg.reader.timeout_ms, 300);
    assert_int_equal(cfg.reader.debounce_ms, 2000);
    assert_string_equal(cfg.scale.backend, "none");
    assert_int_equal(cfg.io.pulse_ms, 800);
    assert_int_equal(cfg.ledger.min_interval_s, 60);
    assert_false(cfg.sync.enabled);
    assert_int_equal(cfg.sync.offline_cap_fen, 0);
    /* weighed meals and the RS-485 devices (hal/chips/MODBUS.md) */
    assert_int_equal(cfg.menu.price_per_100g_fen, 0);
    assert_int_equal(cfg.scale.line.stop_bits, 1);
    assert_int_equal(cfg.scale.line.rs485, YN_RS485_OFF);
    assert_int_equal(cfg.scale.line.rts, YN_RTS_NONE);
    assert_int_equal(cfg.scale.line.reconnect_ms, 1000);
    assert_int_equal(cfg.scale.reg_type, YN_REG_HOLDING);
    assert_int_equal(cfg.scale.weight_register, 0);
    assert_int_equal(cfg.scale.weight_type, YN_WEIGHT_INT32);
    assert_int_equal(cfg.scale.byte_order, YN_ORDER_ABCD);
    assert_int_equal(cfg.scale.weight_unit, YN_UNIT_G);
    assert_int_equal(cfg.scale.status_register, 2);
    assert_int_equal(cfg.scale.stable_bit, 0);
    assert_int_equal(cfg.scale.stable_when, YN_STABLE_WHEN_SET);
    assert_int_equal(cfg.scale.overload_bit, 1);
    assert_int_equal(cfg.scale.max_weight_g, 5000);
    assert_int_equal(cfg.scale.zero_coil, -1);
    assert_int_equal(cfg.scale.tare_coil, -1);
    assert_int_equal(cfg.scale.command_register, -1);
    assert_int_equal(cfg.scale.tare_command, 2);
    assert_int_equal(cfg.io.line.timeout_ms, 200);
    assert_int_equal(cfg.io.coil[0], 0);
    assert_int_equal(cfg.io.coil[3], 3);
    assert_int_equal(cfg.io.out_pulse_ms[0], 0);
    assert_int_equal(cfg.io.out_pulse_ms[2], 200);
    assert_int_equal(cfg.io.out_pulse_ms[3], 1500);
    /* relative paths follow board.conf */
    char want[600];
    snprintf(want, sizeof want, "%s/ledger.db", f->dir);
    assert_string_equal(cfg.ledger.path, want);
    snprintf(want, sizeof want, "%s/keys/terminal.key", f->dir);
    assert_string_equal(cfg.keys.terminal_key, want);
    snprintf(want, sizeof want, "%s/screens", f->dir);
    assert_string_equal(cfg.display.snapshot_dir, want);
    snprintf(want, sizeof want, "%s/settlements", f->dir);
    assert_string_equal(cfg.ledger.settle_dir, want);
    assert_string_equal(cfg.reader.demo_control, "");
    assert_int_equal(cfg.operators.n, 0);
}

#define HASH_1234 "b203a58385b5bd0d3667471c92668a92b1ae81aa5ab31ffba3ef401d33df2a7e"

/* [operators]: roles, salted PIN hashes checked without the PIN ever stored. */
static void test_operators(void **state)
{
    struct fixture *f = *state;
    write_conf(f, 7, "sim_cards = cards.txt\ndemo_control = run/pn532.ctl",
               "[operators]\n"
               "1001 = operator:00112233aabbccdd:" HASH_1234 "\n"
               "2001 = supervisor:0123456789abcdef:"
               "be6d77efebcd83209c002d47d8cc74222926e71ca2a384adb77345bf48c7354c\n");
    yn_config cfg;
    yn_config_errors errs;
    int rc = yn_config_load(f->conf, yn_hal_backend_ok, &cfg, &errs);
    for (int i = 0; i < errs.count && i < YN_CONFIG_MAX_ERRORS; i++)
        fprintf(stderr, "%s\n", errs.msg[i]);
    assert_int_equal(rc, YN_OK);
    assert_int_equal(cfg.operators.n, 2);
    const yn_operator *op = yn_config_operator(&cfg, "1001");
    assert_non_null(op);
    assert_int_equal(op->role, YN_ROLE_OPERATOR);
    assert_true(yn_operator_pin_ok(op, "1234"));
    assert_false(yn_operator_pin_ok(op, "12345"));
    assert_false(yn_operator_pin_ok(op, ""));
    op = yn_config_operator(&cfg, "2001");
    assert_int_equal(op->role, YN_ROLE_SUPERVISOR);
    assert_true(yn_operator_pin_ok(op, "8888"));
    assert_false(yn_operator_pin_ok(op, "1234"));
    assert_null(yn_config_operator(&cfg, "3001"));
    char want[600];
    snprintf(want, sizeof want, "%s/run/pn532.ctl", f->dir);
    assert_string_equal(cfg.reader.demo_control, want);

    static const struct {
        const char *line, *msg;
    } bad[] = {
        {"10a1 = operator:00112233:" HASH_1234, "an operator id is 1 to 8 digits"},
        {"123456789 = operator:00112233:" HASH_1234, "an operator id is 1 to 8 digits"},
        {"1001 = admin:00112233:" HASH_1234, "expected 'operator|supervisor:SALT:HASH'"},
        {"1001 = operator:0011:" HASH_1234, "SALT 8 to 64"},
        {"1001 = operator:00112233:1234", "make it with tools/hash-pin"},
        {"1001 = operator:00112233:" HASH_1234 "\n1001 = operator:00112233:" HASH_1234,
         "[operators] 1001 is listed twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char extra[512];
        snprintf(extra, sizeof extra, "[operators]\n%s\n", bad[i].line);
        write_conf(f, 0, NULL, extra);
        assert_int_equal(yn_config_load(f->conf, yn_hal_backend_ok, &cfg, &errs), YN_ECONFIG);
        const char *at = strchr(bad[i].line, '\n') ? "board.conf:18:" : "board.conf:17:";
        if (!strstr(errs.msg[0], bad[i].msg) || !strstr(errs.msg[0], at))
            fail_msg("case %zu: got '%s', want %s and '%s'", i, errs.msg[0], at, bad[i].msg);
    }
}

static void test_shipped_board_conf_is_valid(void **state)
{
    struct fixture *f = *state;
    char src[600], p[600];
    snprintf(src, sizeof src, "%s/board.conf", yn_test_srcdir());
    FILE *in = fopen(src, "r");
    assert_non_null(in);
    static char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, in);
    text[n] = '\0';
    fclose(in);
    yn_test_write(f->dir, "board.conf", text, 0644, p, sizeof p);
    yn_test_write(f->dir, "keys/card-master.key", "00\n", 0600, src, sizeof src);
    yn_config cfg;
    yn_config_errors errs;
    int rc = yn_config_load(p, yn_hal_backend_ok, &cfg, &errs);
    for (int i = 0; i < errs.count && i < YN_CONFIG_MAX_ERRORS; i++)
        fprintf(stderr, "%s\n", errs.msg[i]);
    assert_int_equal(rc, YN_OK);
    assert_string_equal(cfg.terminal.canteen_name, "福田街道长者饭堂");
    assert_int_equal(cfg.terminal.street, 440304001);
}

struct bad_case {
    int at;             /* line replaced (0 = none) */
    const char *repl;   /* its new text */
    const char *extra;  /* appended lines */
    int line;           /* expected line in the message */
    const char *expect; /* expected substring */
};

static const struct bad_case bad_cases[] = {
    {2, "id = T 1", NULL, 2, "[terminal] id = 'T 1': expected 1 to 16 letters"},
    {2, "id = ABCDEFGHIJKLMNOPQ", NULL, 2, "expected 1 to 16"},
    {2, "id =", NULL, 2, "expected 1 to 16"},
    {2, "; id removed", NULL, 1, "[terminal] id is required"},
    {4, "district = 44030", NULL, 4, "six-digit GB/T 2260"},
    {4, "district = 990304", NULL, 4, "six-digit GB/T 2260"},
    {5, "street = 440305001", NULL, 5, "does not lie in district 440304"},
    {5, "street = 4403040011", NULL, 5, "nine-digit street code"},
    {2, "id = T1", "[terminal]\nmode = cashier\n", 16, "section [terminal] appears twice"},
    {0, NULL, "[reader]\n", 16, "section [reader] appears twice"},
    {0, NULL, "[readr]\nbackend = sim\n", 16, "unknown section [readr]"},
    {3, "canteen = C1", NULL, 3, "unknown key 'canteen' in [terminal]"},
    {2, "id = T1", NULL, 0, NULL}, /* control: the base is good */
    {7, "sim_cards = missing.txt", NULL, 7,
     "missing.txt' (No such file or directory); expected an existing file"},
    {9, "this line has no equals sign", NULL, 9, "cannot parse this line"},
    {6, "[reader", NULL, 6, "without closing ']'"},
    {2, "id = T1", "[reader]\n", 16, "appears twice"},
    {3, "canteen_id = C1\ncanteen_id = C2", NULL, 4, "set twice (first on line 3)"},
    {7, "backend = libnfcx\nsim_cards = cards.txt", NULL, 7,
     "not a reader backend of this firmware; built in: sim"},
    {7, "timeout_ms = 0\nsim_cards = cards.txt", NULL, 7, "from 20 to 5000"},
    {7, "timeout_ms = 30x\nsim_cards = cards.txt", NULL, 7, "expected a whole number"},
    {7, "debounce_ms = -5\nsim_cards = cards.txt", NULL, 7, "from 0 to 60000"},
    {1, "[terminal]\nmode = cashier", NULL, 2, "expected pos | kiosk"},
    {9, "; no path", NULL, 8, "[ledger] path is required"},
    {11, "file = nothere.json", NULL, 11, "nothere.json' (No such file"},
    {13, "terminal_key = keys/loose.key", NULL, 13, "has mode 0644; a secret key must be"},
    {15, "issuer_pubkey = keys/writable.pub", NULL, 15, "must not be writable by group"},
    {14, "; no master key", NULL, 12, "[keys] card_master_key is required"},
    {0, NULL, "[sync]\nenabled = maybe\n", 17, "expected true or false"},
    {0, NULL, "[sync]\nenabled = true\n", 16, "[sync] url is required when enabled = true"},
    {0, NULL, "[sync]\nurl = http://example.org\n", 17, "plain http is not allowed"},
    {0, NULL, "[sync]\nurl = https://\n", 17, "expected https://host"},
    {0, NULL, "[scale]\nbackend = sim\nslave_id = 300\n", 18, "from 1 to 247"},
    {0, NULL, "[scale]\nparity = mark\n", 17, "expected none | even | odd"},
    {0, NULL, "[input]\nbackend = script\n", 16,
     "[input] script is required when backend = script"},
    {0, NULL, "[sync]\noffline_cap_fen = 1.5\n", 17, "whole number from 0 to 100000000 (fen)"},
    {0, NULL, "[display]\nwidth_px = 100\n", 17, "from 320 to 4096"},
    {0, NULL, "  indented = key\n", 16, "unknown key 'indented'"},
    /* weighed meals and the RS-485 devices */
    {0, NULL, "[menu]\nprice_per_100g_fen = -1\n", 17, "whole number from 0 to 100000 (fen)"},
    {0, NULL, "[menu]\nprice_per_100g_fen = 250\n", 17, "weighed meals need a scale"},
    {0, NULL, "[menu]\nprice_per_100g_fen = 250\n[scale]\nbackend = sim\n", 0, NULL},
    {0, NULL, "[scale]\nbackend = modbus\n", 16,
     "[scale] device is required when backend = modbus"},
    {0, NULL, "[scale]\nweight_type = double\n", 17, "expected int16 | int32 | float32"},
    {0, NULL, "[scale]\nbyte_order = big\n", 17, "expected abcd | cdab | badc | dcba"},
    {0, NULL, "[scale]\nweight_unit = lb\n", 17, "expected g | kg"},
    {0, NULL, "[scale]\nregister_type = coil\n", 17, "expected holding | input"},
    {0, NULL, "[scale]\nstable_when = moving\n", 17, "expected set | clear"},
    {0, NULL, "[scale]\nstable_bit = 16\n", 17, "from -1 to 15"},
    {0, NULL, "[scale]\nweight_decimals = 5\n", 17, "from 0 to 4"},
    {0, NULL, "[scale]\nstop_bits = 3\n", 17, "from 1 to 2"},
    {0, NULL, "[scale]\nrs485_mode = yes\n", 17, "expected off | on | auto"},
    {0, NULL, "[scale]\nrs485_mode = on\nrts = up\n", 18, "the kernel's RS-485 mode drives RTS"},
    {0, NULL, "[scale]\nrs485_mode = auto\nrts = down\nrts_delay_us = 2000\n", 0, NULL},
    {0, NULL, "[scale]\nstatus_register = -1\n", 17, "status_register = -1 but stable_bit"},
    {0, NULL, "[scale]\nstatus_register = -1\nstable_bit = -1\noverload_bit = -1\n", 0, NULL},
    {0, NULL, "[scale]\nweight_register = 1\n", 16, "status_register = 2 overlaps the weight"},
    {0, NULL, "[scale]\nweight_register = 65535\n", 17, "does not fit below 65536"},
    {0, NULL, "[scale]\nweight_type = int16\nweight_register = 1\n", 0, NULL},
    {0, NULL, "[scale]\nmax_weight_g = 0\n", 17, "from 1 to 1000000"},
    {0, NULL, "[scale]\ncommand_register = -2\n", 17, "from -1 to 65535"},
    {0, NULL, "[io]\ngate_coil = -2\n", 17, "from -1 to 65535"},
    {0, NULL, "[io]\nbuzzer_pulse_ms = 20000\n", 17, "from 0 to 10000"},
    {0, NULL, "[io]\nrts = sideways\n", 17, "expected none | up | down"},
    {0, NULL, "[io]\nbackend = modbus\n", 16, "[io] device is required when backend = modbus"},
    {0, NULL,
     "[scale]\nbackend = modbus\ndevice = /dev/ttyUSB0\n[io]\nbackend = modbus\n"
     "device = /dev/ttyUSB0\n",
     21, "also the scale's port"},
};

/* Each case alone: refused with its line and text, or (no text) accepted. */
static void expect_cases(struct fixture *f, const struct bad_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct bad_case *c = &cases[i];
        write_conf(f, c->at, c->repl, c->extra);
        yn_config cfg;
        yn_config_errors errs;
        int rc = yn_config_load(f->conf, yn_hal_backend_ok, &cfg, &errs);
        if (!c->expect) {
            assert_int_equal(rc, YN_OK);
            continue;
        }
        char want[700];
        snprintf(want, sizeof want, "%s:%d: ", f->conf, c->line);
        bool found = false;
        for (int e = 0; e < errs.count && e < YN_CONFIG_MAX_ERRORS; e++)
            if (strncmp(errs.msg[e], want, strlen(want)) == 0 && strstr(errs.msg[e], c->expect))
                found = true;
        if (!found) {
            fprintf(stderr, "case %zu: wanted '%s…%s', got %d errors:\n", i, want, c->expect,
                    errs.count);
            for (int e = 0; e < errs.count && e < YN_CONFIG_MAX_ERRORS; e++)
                fprintf(stderr, "  %s\n", errs.msg[e]);
        }
        assert_int_equal(rc, YN_ECONFIG);
        assert_true(found);
    }
}

static void test_each_mistake_is_refused_with_its_line(void **state)
{
    struct fixture *f = *state;
    char p[600];
    yn_test_write(f->dir, "keys/loose.key", "00\n", 0644, p, sizeof p);
    yn_test_write(f->dir, "keys/writable.pub", "00\n", 0666, p, sizeof p);
    chmod(p, 0666); /* umask may have masked it */
    expect_cases(f, bad_cases, sizeof bad_cases / sizeof bad_cases[0]);
}

/* [keys] backend: a token's keys under backend = file, key files under
 * pkcs11, a typo in the backend or a key name, a PIN file others can read, a
 * module others can write — each refused with its line; none falls back to
 * the other backend. The [keys] section is the case's text from line 12 on,
 * then issuer_pubkey. */
#define TOKEN_KEYS                                                                                 \
    "[keys]\nbackend = pkcs11\npkcs11_module = lib/p11.so\ntoken_label = yinian\n"                 \
    "pin_file = keys/token.pin\n"
#define FILE_KEYS "[keys]\nterminal_key = keys/terminal.key\ncard_master_key = keys/master.key\n"
static const struct {
    const char *keys; /* lines 12.. */
    int line;         /* expected line in the message (0: accepted) */
    const char *expect;
} key_cases[] = {
    {TOKEN_KEYS, 0, NULL}, /* control: a good token configuration */
    {FILE_KEYS, 0, NULL},  /* control: a good file configuration */
    {TOKEN_KEYS "terminal_key =\ncard_master_key =\n", 0, NULL},
    {TOKEN_KEYS "terminal_key = keys/terminal.key\n", 17,
     "[keys] terminal_key is set but backend = pkcs11 keeps the secret keys in the token"},
    {TOKEN_KEYS "card_master_key = keys/master.key\n", 17,
     "[keys] card_master_key is set but backend = pkcs11"},
    {"[keys]\nbackend = pkcs11\ntoken_label = yinian\npin_file = keys/token.pin\n", 12,
     "[keys] pkcs11_module is required when backend = pkcs11"},
    {"[keys]\nbackend = pkcs11\npkcs11_module = lib/p11.so\ntoken_label = yinian\n", 12,
     "[keys] pin_file is required when backend = pkcs11"},
    {"[keys]\nbackend = pkcs11\npkcs11_module = lib/p11.so\npin_file = keys/token.pin\n", 12,
     "[keys] token_label is required when backend = pkcs11"},
    {"[keys]\nbackend = pkcs12\npkcs11_module = lib/p11.so\ntoken_label = yinian\n", 13,
     "not a keys backend of this firmware; built in: file, pkcs11"},
    {"[keys]\nbackend = PKCS11\n", 13, "not a keys backend"},
    {FILE_KEYS "pkcs11_module = lib/p11.so\n", 15,
     "[keys] pkcs11_module is set but backend = file reads the secret keys from files"},
    {FILE_KEYS "pin_file = keys/token.pin\n", 15, "[keys] pin_file is set but backend = file"},
    {FILE_KEYS "token_label = yinian\n", 15, "[keys] token_label is set but backend = file"},
    {TOKEN_KEYS "pin_flie = keys/token.pin\n", 17, "unknown key 'pin_flie' in [keys]"},
    {"[keys]\nbackend = pkcs11\npkcs11_module = lib/p11.so\ntoken_label = yinian\n"
     "pin_file = keys/loose.pin\n",
     16, "has mode 0644; a secret key must be"},
    {"[keys]\nbackend = pkcs11\npkcs11_module = lib/open.so\ntoken_label = yinian\n"
     "pin_file = keys/token.pin\n",
     14, "code loaded into the terminal must not be writable by group or others"},
    {"[keys]\nbackend = pkcs11\npkcs11_module = lib/none.so\ntoken_label = yinian\n"
     "pin_file = keys/token.pin\n",
     14, "none.so' (No such file or directory)"},
    {"[keys]\nbackend = pkcs11\npkcs11_module = lib/p11.so\n"
     "token_label = a-label-of-thirty-three-bytes-xxx\npin_file = keys/token.pin\n",
     15, "at most 32 allowed"},
    /* with backend = file (said or not) the key files stay required */
    {"[keys]\nbackend = file\ncard_master_key = keys/master.key\n", 12,
     "[keys] terminal_key is required"},
    {"[keys]\nterminal_key = keys/terminal.key\n", 12, "[keys] card_master_key is required"},
    /* a key pair's file is made by the keystore: it may be missing, a shared key's not */
    {"[keys]\nterminal_key_type = ecdsa-p256\nterminal_key = keys/pair.pem\n"
     "card_master_key = keys/master.key\n",
     0, NULL},
    {"[keys]\nterminal_key_type = hmac\nterminal_key = keys/pair.pem\n"
     "card_master_key = keys/master.key\n",
     14, "pair.pem' (No such file or directory)"},
    {"[keys]\nterminal_key_type = ecdsa-p256\nterminal_key = keys/loose.pin\n"
     "card_master_key = keys/master.key\n",
     14, "has mode 0644; a secret key must be"},
    {"[keys]\nterminal_key_type = ed25519\n" FILE_KEYS, 13, "terminal_key_type"},
};

static void test_keys_backend(void **state)
{
    struct fixture *f = *state;
    char p[600], text[4096];
    yn_test_write(f->dir, "lib/p11.so",
                  "\x7f"
                  "ELF\n",
                  0644, p, sizeof p);
    yn_test_write(f->dir, "lib/open.so",
                  "\x7f"
                  "ELF\n",
                  0666, p, sizeof p);
    chmod(p, 0666); /* umask may have masked it */
    yn_test_write(f->dir, "keys/token.pin", "123456\n", 0600, p, sizeof p);
    yn_test_write(f->dir, "keys/loose.pin", "123456\n", 0644, p, sizeof p);
    yn_config cfg;
    yn_config_errors errs;
    for (size_t i = 0; i < sizeof key_cases / sizeof key_cases[0]; i++) {
        text[0] = '\0';
        for (int l = 0; l < 11; l++)
            strcat(strcat(text, base_lines[l]), "\n");
        strcat(strcat(text, key_cases[i].keys), "issuer_pubkey = keys/issuer.pub\n");
        yn_test_write(f->dir, "board.conf", text, 0644, f->conf, sizeof f->conf);
        int rc = yn_config_load(f->conf, yn_hal_backend_ok, &cfg, &errs);
        char want[700];
        snprintf(want, sizeof want, "%s:%d: ", f->conf, key_cases[i].line);
        bool found = !key_cases[i].expect && rc == YN_OK;
        for (int e = 0; e < errs.count && e < YN_CONFIG_MAX_ERRORS; e++) {
            if (key_cases[i].expect && strncmp(errs.msg[e], want, strlen(want)) == 0 &&
                strstr(errs.msg[e], key_cases[i].expect))
                found = true;
            else if (!found)
                fprintf(stderr, "case %zu: %s\n", i, errs.msg[e]);
        }
        if (!found)
            fail_msg("case %zu: wanted '%s…%s'", i, want,
                     key_cases[i].expect ? key_cases[i].expect : "(no error)");
    }
    /* the good token configuration's values, in place */
    write_conf(f, 0, NULL, NULL);
    assert_int_equal(yn_config_load(f->conf, yn_hal_backend_ok, &cfg, &errs), YN_OK);
    assert_string_equal(cfg.keys.backend, "file"); /* the default */
    snprintf(text, sizeof text, "%s", "");
    for (int l = 0; l < 11; l++)
        strcat(strcat(text, base_lines[l]), "\n");
    strcat(strcat(text, TOKEN_KEYS), "issuer_pubkey = keys/issuer.pub\n");
    yn_test_write(f->dir, "board.conf", text, 0644, f->conf, sizeof f->conf);
    assert_int_equal(yn_config_load(f->conf, yn_hal_backend_ok, &cfg, &errs), YN_OK);
    assert_string_equal(cfg.keys.backend, "pkcs11");
    assert_string_equal(cfg.keys.token_label, "yinian");
    assert_string_equal(cfg.keys.terminal_key, "");
    assert_string_equal(cfg.keys.card_master_key, "");
    snprintf(p, sizeof p, "%s/lib/p11.so", f->dir);
    assert_string_equal(cfg.keys.pkcs11_module, p);
    snprintf(p, sizeof p, "%s/keys/token.pin", f->dir);
    assert_string_equal(cfg.keys.pin_file, p);
}

static void test_modbus_devices(void **state)
{
    struct fixture *f = *state;
    write_conf(f, 0, NULL,
               "[menu]\nprice_per_100g_fen = 250\n"
               "[scale]\nbackend = modbus\ndevice = /dev/ttyUSB0\nbaud = 19200\nparity = even\n"
               "stop_bits = 1\nslave_id = 3\ntimeout_ms = 150\nstable_timeout_ms = 2500\n"
               "rs485_mode = auto\nrts = up\nrts_delay_us = 1500\nreconnect_ms = 500\n"
               "register_type = input\nweight_register = 8\nweight_type = float32\n"
               "byte_order = cdab\nweight_unit = kg\nweight_decimals = 3\nstatus_register = 4\n"
               "stable_bit = 12\nstable_when = clear\noverload_bit = 10\nstable_band_g = 5\n"
               "max_weight_g = 3000\nzero_coil = -1\ntare_coil = 1\ncommand_register = 5\n"
               "zero_command = 2048\ntare_command = 4096\n"
               "[io]\nbackend = modbus\ndevice = /dev/ttyUSB1\nslave_id = 7\ngate_coil = -1\n"
               "red_coil = 5\nbuzzer_pulse_ms = 150\nrs485_mode = on\n");
    yn_config cfg;
    yn_config_errors errs;
    int rc = yn_config_load(f->conf, yn_hal_backend_ok, &cfg, &errs);
    for (int i = 0; i < errs.count && i < YN_CONFIG_MAX_ERRORS; i++)
        fprintf(stderr, "%s\n", errs.msg[i]);
    assert_int_equal(rc, YN_OK);
    assert_int_equal(cfg.menu.price_per_100g_fen, 250);
    assert_string_equal(cfg.scale.backend, "modbus");
    assert_string_equal(cfg.scale.line.device, "/dev/ttyUSB0");
    assert_int_equal(cfg.scale.line.baud, 19200);
    assert_int_equal(cfg.scale.line.parity, YN_PARITY_EVEN);
    assert_int_equal(cfg.scale.line.slave_id, 3);
    assert_int_equal(cfg.scale.line.timeout_ms, 150);
    assert_int_equal(cfg.scale.stable_timeout_ms, 2500);
    assert_int_equal(cfg.scale.line.rs485, YN_RS485_AUTO);
    assert_int_equal(cfg.scale.line.rts, YN_RTS_UP);
    assert_int_equal(cfg.scale.line.rts_delay_us, 1500);
    assert_int_equal(cfg.scale.line.reconnect_ms, 500);
    assert_int_equal(cfg.scale.reg_type, YN_REG_INPUT);
    assert_int_equal(cfg.scale.weight_register, 8);
    assert_int_equal(cfg.scale.weight_type, YN_WEIGHT_FLOAT32);
    assert_int_equal(cfg.scale.byte_order, YN_ORDER_CDAB);
    assert_int_equal(cfg.scale.weight_unit, YN_UNIT_KG);
    assert_int_equal(cfg.scale.weight_decimals, 3);
    assert_int_equal(cfg.scale.status_register, 4);
    assert_int_equal(cfg.scale.stable_bit, 12);
    assert_int_equal(cfg.scale.stable_when, YN_STABLE_WHEN_CLEAR);
    assert_int_equal(cfg.scale.overload_bit, 10);
    assert_int_equal(cfg.scale.stable_band_g, 5);
    assert_int_equal(cfg.scale.max_weight_g, 3000);
    assert_int_equal(cfg.scale.tare_coil, 1);
    assert_int_equal(cfg.scale.command_register, 5);
    assert_int_equal(cfg.scale.zero_command, 2048);
    assert_int_equal(cfg.scale.tare_command, 4096);
    assert_string_equal(cfg.io.backend, "modbus");
    assert_string_equal(cfg.io.line.device, "/dev/ttyUSB1");
    assert_int_equal(cfg.io.line.slave_id, 7);
    assert_int_equal(cfg.io.line.rs485, YN_RS485_ON);
    assert_int_equal(cfg.io.coil[0], 0);
    assert_int_equal(cfg.io.coil[1], 5);
    assert_int_equal(cfg.io.coil[3], -1);
    assert_int_equal(cfg.io.out_pulse_ms[2], 150);
    assert_int_equal(cfg.io.pulse_ms, 800);
}

/* Which backends exist is the caller's answer (config.c knows no device):
 * a registry of one backend per class accepts it, refuses the others with
 * its own list; each class's section lands in that class's own struct. */
static bool only_x(const char *section, const char *name, char *built_in, size_t len)
{
    snprintf(built_in, len, "x-%s", section);
    return strcmp(name, "x") == 0 || strcmp(section, "reader") != 0; /* the others: any */
}

static void test_backends_are_the_callers(void **state)
{
    struct fixture *f = *state;
    yn_config cfg;
    yn_config_errors errs;
    write_conf(f, 7, "backend = x", NULL);
    assert_int_equal(yn_config_load(f->conf, only_x, &cfg, &errs), YN_OK);
    assert_string_equal(cfg.reader.backend, "x");
    const yn_nfc_conf *reader = &cfg.reader; /* hal/nfc/nfc.h's own struct */
    assert_int_equal(reader->record_len, yn_card_record_size(YN_CARD_FORMAT_V1));
    assert_string_equal(cfg.keys.source, f->conf);
    write_conf(f, 7, "backend = sim\nsim_cards = cards.txt", NULL);
    assert_int_equal(yn_config_load(f->conf, only_x, &cfg, &errs), YN_ECONFIG);
    assert_non_null(
        strstr(errs.msg[0], "not a reader backend of this firmware; built in: x-reader"));
    /* left out, its default (sim) is not built in either (a board build):
     * refused at load with the section's line, not when the device opens */
    write_conf(f, 7, "# no backend", NULL);
    assert_int_equal(yn_config_load(f->conf, only_x, &cfg, &errs), YN_ECONFIG);
    assert_int_equal(errs.count, 1);
    assert_non_null(strstr(errs.msg[0], ":6: [reader] backend is required: the default 'sim' is"
                                        " not built into this firmware; built in: x-reader"));
}

static void test_missing_file(void **state)
{
    struct fixture *f = *state;
    char p[600];
    snprintf(p, sizeof p, "%s/nope.conf", f->dir);
    yn_config cfg;
    yn_config_errors errs;
    assert_int_equal(yn_config_load(p, yn_hal_backend_ok, &cfg, &errs), YN_ENOENT);
    assert_int_equal(errs.count, 1);
    assert_non_null(strstr(errs.msg[0], "cannot open configuration"));
}

static void test_all_errors_reported_not_only_first(void **state)
{
    struct fixture *f = *state;
    write_conf(f, 2, "id = bad id", "[sync]\ninterval_s = 1\n");
    yn_config cfg;
    yn_config_errors errs;
    assert_int_equal(yn_config_load(f->conf, yn_hal_backend_ok, &cfg, &errs), YN_ECONFIG);
    assert_int_equal(errs.count, 2);
    assert_non_null(strstr(errs.msg[0], ":2: [terminal] id"));
    assert_non_null(strstr(errs.msg[1], ":17: [sync] interval_s"));
}

static void test_long_line_refused(void **state)
{
    struct fixture *f = *state;
    char extra[600] = "[terminal]\ncanteen_name = ";
    memset(extra + strlen(extra), 'x', 300);
    write_conf(f, 0, NULL, NULL);
    char text[4096];
    snprintf(text, sizeof text, "[display]\nsnapshot_dir = %.*s\n", 300,
             extra + strlen("[terminal]\ncanteen_name = "));
    write_conf(f, 0, NULL, text);
    yn_config cfg;
    yn_config_errors errs;
    assert_int_equal(yn_config_load(f->conf, yn_hal_backend_ok, &cfg, &errs), YN_ECONFIG);
    assert_non_null(strstr(errs.msg[0], ":17: line longer than"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_file_and_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backends_are_the_callers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shipped_board_conf_is_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operators, setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_mistake_is_refused_with_its_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_modbus_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_backend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_errors_reported_not_only_first, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_refused, setup, teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
