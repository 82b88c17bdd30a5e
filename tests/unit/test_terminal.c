/* test_terminal.c — the terminal state machine on simulated devices, a real
 * ledger and the Shenzhen policy: taps become debits and screens, the same
 * card is one tap, staff key in prices, a failed read can be tapped again,
 * the kiosk shows balances and never debits; pay-by-weight on the simulated
 * scale: a settled weight is priced to the fen in the diner's favour and
 * recorded, an untrustworthy one is refused and charges nothing. What the
 * diner hears (exact clip sequences). Staff behind PINs: login, the wrong-PIN
 * streak and the lock, logout, 冲正 (in and out of its window, and only with a
 * supervisor's PIN), 日结 on screen and as CSV; and a meal period that begins
 * while the idle screen waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardfix.h"
#include "config.h"
#include "devices.h"
#include "nfc_sim.h"
#include "terminal.h"
#include "testkeys.h"
#include "testutil.h"

#define LUNCH_MS 1773115200000LL /* 2026-03-10 (Tuesday) 12:00 Asia/Shanghai */

struct rig {
    char dir[256];
    yn_config cfg;
    yn_devices dev;
    yn_cardfix fix;
    yn_ledger *ledger;
    yn_policy *policy;
    yn_terminal *term;
};

static int open_rig(void **state, enum yn_mode mode, bool weighed)
{
    struct rig *r = calloc(1, sizeof *r);
    char path[512], err[256];
    yn_test_tmpdir(r->dir, sizeof r->dir);
    yn_cardfix_init(&r->fix);
    yn_config_defaults(&r->cfg);
    snprintf(r->cfg.terminal.id, sizeof r->cfg.terminal.id, "T1");
    snprintf(r->cfg.terminal.canteen_id, sizeof r->cfg.terminal.canteen_id, "C-FT-001");
    snprintf(r->cfg.terminal.canteen_name, sizeof r->cfg.terminal.canteen_name, "测试饭堂");
    r->cfg.terminal.district = 440304;
    r->cfg.terminal.street = 440304001;
    r->cfg.terminal.mode = mode;
    snprintf(r->cfg.display.backend, sizeof r->cfg.display.backend, "sim");
    snprintf(r->cfg.input.backend, sizeof r->cfg.input.backend, "script");
    snprintf(r->cfg.ledger.settle_dir, sizeof r->cfg.ledger.settle_dir, "%s/settlements", r->dir);
    /* 1001: operator, PIN 1234; 2001: supervisor, PIN 8888 (tools/hash-pin) */
    r->cfg.operators.n = 2;
    r->cfg.operators.list[0] = (yn_operator){
        .id = "1001",
        .role = YN_ROLE_OPERATOR,
        .salt = "00112233aabbccdd",
        .pin_sha256 = "b203a58385b5bd0d3667471c92668a92b1ae81aa5ab31ffba3ef401d33df2a7e"};
    r->cfg.operators.list[1] = (yn_operator){
        .id = "2001",
        .role = YN_ROLE_SUPERVISOR,
        .salt = "0123456789abcdef",
        .pin_sha256 = "be6d77efebcd83209c002d47d8cc74222926e71ca2a384adb77345bf48c7354c"};
    if (weighed) {
        snprintf(r->cfg.scale.backend, sizeof r->cfg.scale.backend, "sim");
        r->cfg.menu.price_per_100g_fen = 250; /* ¥2.50 per 100 g */
        r->cfg.scale.stable_timeout_ms = 100; /* the least allowed: quick tests */
    }
    assert_int_equal(yn_testkeys_configure(&r->cfg, r->dir), YN_OK);
    assert_int_equal(yn_devices_open(&r->dev, &r->cfg), YN_OK);
    assert_int_equal(
        yn_keystore_store(&r->dev.keys, YN_KEYID_CARD_MASTER, r->fix.master, 16, false), YN_OK);
    yn_clock_init(&r->dev.clock, &yn_clock_sim_ops);
    yn_clock_sim_set(&r->dev.clock, LUNCH_MS);

    snprintf(path, sizeof path, "%s/firmware/policies/shenzhen-2025.json", yn_test_srcdir());
    assert_int_equal(yn_policy_load_file(path, &r->policy, err, sizeof err), YN_OK);
    snprintf(path, sizeof path, "%s/ledger.db", r->dir);
    yn_ledger_opts lo = {.path = path, .terminal_id = "T1", .min_interval_s = 60};
    assert_int_equal(yn_ledger_open(&lo, &r->ledger), YN_OK);

    yn_sim_card c;
    yn_cardfix_card(&r->fix, &c, 1, "4403040001", 19450312, YN_FLAG_DIBAO, 440304001);
    assert_int_equal(yn_nfc_sim_add(&r->dev.nfc, &c), 0);
    yn_cardfix_card(&r->fix, &c, 2, "4403040002", 19500505, 0, 440304002);
    assert_int_equal(yn_nfc_sim_add(&r->dev.nfc, &c), 1);
    c.key[3] ^= 0x40; /* card 2: a clone of card 1's neighbour */
    assert_int_equal(yn_nfc_sim_add(&r->dev.nfc, &c), 2);

    yn_terminal_deps deps = {
        .ledger = r->ledger, .policy = r->policy, .keys = &r->dev.keys, .ring = &r->fix.ring};
    assert_int_equal(yn_terminal_new(&r->cfg, &r->dev, &deps, &r->term), YN_OK);
    yn_terminal_start(r->term);
    *state = r;
    return 0;
}

static int setup_pos(void **state)
{
    return open_rig(state, YN_MODE_POS, false);
}

static int setup_weighed(void **state)
{
    return open_rig(state, YN_MODE_POS, true);
}

static int setup_kiosk(void **state)
{
    return open_rig(state, YN_MODE_KIOSK, false);
}

static int teardown(void **state)
{
    struct rig *r = *state;
    yn_terminal_free(r->term);
    yn_devices_close(&r->dev);
    yn_ledger_close(r->ledger);
    yn_policy_free(r->policy);
    free(r);
    return 0;
}

static void step(struct rig *r, const char *tokens, int times)
{
    if (tokens)
        assert_int_equal(yn_input_script_push(&r->dev.input, tokens), YN_OK);
    for (int i = 0; i < times; i++) {
        assert_int_equal(yn_terminal_step(r->term, 0), YN_OK);
        yn_clock_sim_advance(&r->dev.clock, 50);
    }
}

static const yn_screen *screen(struct rig *r)
{
    return yn_display_sim_last(&r->dev.display);
}

static bool screen_has(struct rig *r, const char *text)
{
    const yn_screen *s = screen(r);
    for (int i = 0; i < s->n_lines; i++)
        if (strstr(s->lines[i].text, text))
            return true;
    return strstr(s->title, text) || strstr(s->footer, text);
}

/* The last phrase said, as its clip names joined by spaces. */
static const char *said(struct rig *r)
{
    static char text[512];
    const yn_phrase *p = yn_audio_silent_last(&r->dev.audio);
    text[0] = '\0';
    for (int i = 0; p && i < p->n; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s%s", i ? " " : "",
                 p->clips[i]);
    return text;
}

static int64_t journal(struct rig *r)
{
    int64_t seq;
    uint8_t h[YN_LEDGER_HASH_LEN];
    assert_int_equal(yn_ledger_head(r->ledger, &seq, h), YN_OK);
    return seq;
}

static void test_idle_tap_result_idle(void **state)
{
    struct rig *r = *state;
    assert_string_equal(screen(r)->name, "idle");
    assert_string_equal(screen(r)->title, "测试饭堂");
    assert_true(screen_has(r, "午餐"));
    assert_true(screen_has(r, "本餐价格 ¥15.00"));
    assert_true(screen_has(r, "2026-03-10 12:00  离线模式")); /* sync is off in this rig */
    step(r, NULL, 60000 / 50 + 1); /* a minute at the idle screen: its clock moves on */
    assert_true(screen_has(r, "2026-03-10 12:01"));
    step(r, "card:0", 1);
    assert_string_equal(screen(r)->name, "ok");
    assert_true(screen_has(r, "补贴 ¥15.00"));
    assert_int_equal(journal(r), 1);
    assert_int_equal(yn_terminal_taps(r->term), 1);
    assert_int_equal(yn_io_sim_state_of(&r->dev.io)->pulses[YN_OUT_GREEN], 1);
    assert_string_equal(said(r), "success butie shi wu yuan");
    assert_true(screen_has(r, "流水号 1"));
    step(r, NULL, 4000 / 50 + 1); /* result_ms later */
    assert_string_equal(screen(r)->name, "idle");
    assert_true(screen_has(r, "待上传 1 条"));
}

static void test_same_card_is_one_tap(void **state)
{
    struct rig *r = *state;
    step(r, "card:0", 10); /* left on the reader */
    step(r, "remove", 2);
    step(r, "card:0", 2); /* back within debounce_ms */
    assert_int_equal(yn_terminal_taps(r->term), 1);
    assert_int_equal(journal(r), 1);
    step(r, "card:1", 2); /* another card is another tap */
    assert_int_equal(journal(r), 2);
    assert_true(screen_has(r, "补贴 ¥5.00"));
    assert_true(screen_has(r, "请付现金 ¥10.00"));
    assert_string_equal(said(r), "success butie wu yuan qing_fu_xianjin shi yuan");
}

static void test_staff_key_in_a_price(void **state)
{
    struct rig *r = *state;
    step(r, "1 2 . 5", 4);
    assert_string_equal(screen(r)->name, "price");
    assert_true(screen_has(r, "¥12.5_"));
    step(r, "back 8 enter", 3);
    assert_int_equal(yn_terminal_price_fen(r->term), 1280);
    assert_true(screen_has(r, "本餐价格 ¥12.80"));
    step(r, "9 9 9 9 enter", 5); /* ¥9999: refused, price kept */
    assert_string_equal(screen(r)->name, "price_invalid");
    assert_int_equal(yn_terminal_price_fen(r->term), 1280);
    step(r, "esc 7 esc", 3); /* cancelled entry */
    assert_int_equal(yn_terminal_price_fen(r->term), 1280);
    step(r, "card:1", 1);
    assert_true(screen_has(r, "请付现金 ¥7.80"));
}

static void test_failed_read_can_be_tapped_again_at_once(void **state)
{
    struct rig *r = *state;
    assert_int_equal(yn_nfc_sim_present(&r->dev.nfc, 1), YN_OK);
    yn_nfc_sim_fault(&r->dev.nfc, YN_SIM_PULL_ON_WRITE);
    step(r, NULL, 1); /* tap: the card leaves while its stamp is written */
    assert_string_equal(screen(r)->name, "refused_read_failed");
    assert_true(screen_has(r, "没有读到卡，请重新刷卡"));
    assert_int_equal(journal(r), 0); /* the debit was rolled back */
    assert_int_equal(yn_io_sim_state_of(&r->dev.io)->pulses[YN_OUT_RED], 1);
    step(r, "remove", 1);
    step(r, "card:1", 1); /* tapped again straight away (no debounce): charged once */
    assert_string_equal(screen(r)->name, "ok");
    assert_int_equal(journal(r), 1);
    step(r, "remove card:1", 2); /* and now it is debounced */
    assert_int_equal(journal(r), 1);
}

static void test_restart_with_clock_set_back_still_debits(void **state)
{
    struct rig *r = *state;
    step(r, "card:0", 1);
    assert_int_equal(journal(r), 1);
    /* the board restarts and its wall clock is an hour behind */
    yn_terminal_free(r->term);
    yn_clock_sim_jump_wall(&r->dev.clock, -3600 * 1000);
    yn_clock_sim_advance(&r->dev.clock, 2 * 3600 * 1000); /* and the lunch is later */
    yn_terminal_deps deps = {
        .ledger = r->ledger, .policy = r->policy, .keys = &r->dev.keys, .ring = &r->fix.ring};
    assert_int_equal(yn_terminal_new(&r->cfg, &r->dev, &deps, &r->term), YN_OK);
    yn_terminal_start(r->term);
    step(r, "card:1", 1);
    assert_string_equal(screen(r)->name, "ok");
    assert_int_equal(journal(r), 2); /* tap ids stayed above the journal's */
}

static void test_clone_is_refused(void **state)
{
    struct rig *r = *state;
    step(r, "card:2", 1);
    assert_string_equal(screen(r)->name, "refused_not_genuine");
    assert_true(screen_has(r, "这张卡无法使用"));
    assert_string_equal(said(r), "reason_not_genuine");
    assert_int_equal(journal(r), 0);
    assert_int_equal(yn_terminal_taps(r->term), 1);
}

static void test_kiosk_shows_balance_and_never_debits(void **state)
{
    struct rig *r = *state;
    yn_ledger_when w = {.utc_s = LUNCH_MS / 1000, .mono_ms = 1, .clock_trusted = true};
    yn_ledger_result res;
    assert_int_equal(
        yn_ledger_allocate(r->ledger, "alloc-1", "4403040001", "district", 5000, &w, &res), YN_OK);
    assert_true(screen_has(r, "请刷卡查询余额"));
    step(r, "card:0", 1);
    assert_string_equal(screen(r)->name, "balance");
    assert_true(screen_has(r, "余额 ¥50.00"));
    assert_string_equal(said(r), "yu_e wu shi yuan");
    assert_true(screen_has(r, "本月补贴 0 次"));
    assert_true(screen_has(r, "本月补贴不限次数")); /* Shenzhen sets no monthly limit */
    assert_int_equal(journal(r), 1);                /* only the allocation */
    step(r, "1 enter", 2);                          /* no price entry in a kiosk */
    assert_string_equal(screen(r)->name, "balance");
    step(r, "esc", 1);
    assert_string_equal(screen(r)->name, "idle");
    step(r, "quit", 1);
    assert_true(yn_terminal_done(r->term));
}

static void put_on_scale(struct rig *r, int32_t g, bool stable, bool overload)
{
    yn_scale_sim_set(&r->dev.scale, g, stable, overload);
}

/* The lunch: staff switch to weighed mode, a tray of 333 g settles on the
 * scale, the diner taps. 333 g x ¥2.50/100 g = 832.5 fen → 832 fen (down, the
 * diner's favour); the journal records the weight and the unit price. */
static void test_pay_by_weight_lunch(void **state)
{
    struct rig *r = *state;
    assert_false(yn_terminal_weighed(r->term));
    step(r, "+", 1);
    assert_true(yn_terminal_weighed(r->term));
    assert_string_equal(screen(r)->name, "idle");
    assert_true(screen_has(r, "称重计价 ¥2.50/100克"));
    assert_true(screen_has(r, "请放好餐盘后刷卡"));
    put_on_scale(r, 333, true, false);
    step(r, "card:1", 1); /* aged 70-99: ¥5 subsidy, the rest in cash */
    assert_string_equal(screen(r)->name, "ok");
    assert_true(screen_has(r, "重量 333 克  ¥2.50/100克  计 ¥8.32"));
    assert_true(screen_has(r, "补贴 ¥5.00"));
    assert_true(screen_has(r, "请付现金 ¥3.32"));
    assert_int_equal(journal(r), 1);
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(r->ledger, 1, &rec), YN_OK);
    assert_int_equal(rec.weight_g, 333);
    assert_int_equal(rec.price_per_100g_fen, 250);
    assert_int_equal(rec.price_fen, 832);
    assert_int_equal(rec.subsidy_fen, 500);
    assert_int_equal(rec.cash_fen, 332);
    assert_int_equal(yn_io_sim_state_of(&r->dev.io)->pulses[YN_OUT_GREEN], 1);
    assert_int_equal(yn_io_sim_state_of(&r->dev.io)->pulses[YN_OUT_GATE], 1);
    assert_int_equal(yn_io_sim_state_of(&r->dev.io)->last_pulse_ms[YN_OUT_GATE], 1500);

    /* staff key in a new unit price: it is the price per 100 g now */
    step(r, "esc 3 . 2 enter", 5);
    assert_int_equal(yn_terminal_price_per_100g_fen(r->term), 320);
    assert_int_equal(yn_terminal_price_fen(r->term), 1500); /* the fixed price is kept */
    assert_true(screen_has(r, "称重计价 ¥3.20/100克"));
    step(r, "0 enter", 2); /* a weighed meal cannot be free */
    assert_string_equal(screen(r)->name, "price_invalid");
    assert_int_equal(yn_terminal_price_per_100g_fen(r->term), 320);
    put_on_scale(r, 1001, true, false); /* 1001 g x 320 / 100 = 3203.2 → 3203 fen */
    step(r, "esc card:0", 2);           /* 低保: ¥15 subsidy, capped at the price */
    assert_string_equal(screen(r)->name, "ok");
    assert_true(screen_has(r, "计 ¥32.03"));
    assert_int_equal(yn_ledger_record_get(r->ledger, 2, &rec), YN_OK);
    assert_int_equal(rec.weight_g, 1001);
    assert_int_equal(rec.price_fen, 3203);
    assert_int_equal(rec.subsidy_fen + rec.wallet_fen + rec.cash_fen, 3203);

    /* and back to the fixed price */
    step(r, "esc +", 2);
    assert_false(yn_terminal_weighed(r->term));
    assert_true(screen_has(r, "本餐价格 ¥15.00"));
}

/* Each untrustworthy weight refuses the tap with YN_REASON_WEIGHT, before the
 * card is read: nothing charged, and the diner may tap again at once. */
static void test_untrustworthy_weight_is_refused(void **state)
{
    struct rig *r = *state;
    static const struct {
        int32_t g;
        bool stable, overload;
        int fail;
        const char *detail;
    } cases[] = {
        {420, false, false, YN_OK, "not settled within 100 ms (last 420 g, in motion)"},
        {0, true, false, YN_OK, "net weight 0 g: nothing on the scale"},
        {-35, true, false, YN_OK, "net weight -35 g"},
        {2500, true, true, YN_OK, "over range (2500 g)"},
        {6200, true, false, YN_OK, "6200 g is above [scale] max_weight_g = 5000"},
        {300, true, false, YN_ETIMEDOUT, "no reading within 100 ms"},
        {300, true, false, YN_ENODEV, "not connected"},
    };
    step(r, "+", 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        put_on_scale(r, cases[i].g, cases[i].stable, cases[i].overload);
        yn_scale_sim_fail(&r->dev.scale, cases[i].fail);
        step(r, "card:0", 1);
        if (strcmp(screen(r)->name, "refused_weight") != 0 || !screen_has(r, cases[i].detail))
            fail_msg("case %zu: screen %s, want refused_weight with '%s' (line: %s)", i,
                     screen(r)->name, cases[i].detail,
                     screen(r)->n_lines > 1 ? screen(r)->lines[1].text : "");
        assert_true(screen_has(r, "称重未稳定，请放稳餐盘后重新刷卡"));
        assert_int_equal(journal(r), 0);
        step(r, "remove", 1);
    }
    assert_int_equal(yn_io_sim_state_of(&r->dev.io)->pulses[YN_OUT_RED], 7);
    assert_int_equal(yn_io_sim_state_of(&r->dev.io)->pulses[YN_OUT_BUZZER], 7);
    assert_int_equal(yn_io_sim_state_of(&r->dev.io)->last_pulse_ms[YN_OUT_BUZZER], 200);
    assert_int_equal(yn_terminal_taps(r->term), 0);
    /* the tray settles: the same card, at once, is charged once */
    yn_scale_sim_fail(&r->dev.scale, YN_OK);
    put_on_scale(r, 512, true, false);
    step(r, "card:0", 1);
    assert_string_equal(screen(r)->name, "ok");
    assert_true(screen_has(r, "重量 512 克"));
    assert_int_equal(journal(r), 1);
    step(r, "remove card:0", 2); /* and is debounced like any tap */
    assert_int_equal(journal(r), 1);
}

/* Tare with '-': an empty bowl on the scale counts for nothing. */
static void test_tare_key(void **state)
{
    struct rig *r = *state;
    step(r, "-", 1); /* not in weighed mode: nothing happens */
    assert_string_equal(screen(r)->name, "idle");
    step(r, "+", 1);
    put_on_scale(r, 180, true, false); /* the bowl */
    step(r, "-", 1);
    assert_string_equal(screen(r)->name, "tared");
    put_on_scale(r, 180 + 250, true, false); /* bowl and food */
    step(r, "card:1", 1);
    assert_true(screen_has(r, "重量 250 克  ¥2.50/100克  计 ¥6.25"));
    yn_scale_sim_fail(&r->dev.scale, YN_ETIMEDOUT);
    step(r, "-", 1);
    assert_string_equal(screen(r)->name, "tare_failed");
}

/* '+' without a scale or a unit price: staff are told why, the price stays fixed. */
static void test_weighed_mode_needs_a_scale(void **state)
{
    struct rig *r = *state;
    step(r, "+", 1);
    assert_false(yn_terminal_weighed(r->term));
    assert_string_equal(screen(r)->name, "weighed_unavailable");
    assert_true(screen_has(r, "[scale] backend = none"));
    step(r, "card:1", 1);
    assert_true(screen_has(r, "请付现金 ¥10.00")); /* the fixed ¥15 meal */
}

static void allocate(struct rig *r, const char *card_no, int64_t fen)
{
    yn_ledger_when w = {
        .utc_s = yn_clock_utc_s(&r->dev.clock), .mono_ms = 1, .clock_trusted = true};
    yn_ledger_result res;
    char id[32];
    snprintf(id, sizeof id, "alloc-%s", card_no);
    assert_int_equal(yn_ledger_allocate(r->ledger, id, card_no, "district", fen, &w, &res), YN_OK);
}

/* What the diner hears: the subsidy, then the cash to pay and the wallet left;
 * without subsidy the reason first. */
static void test_voice_phrases(void **state)
{
    struct rig *r = *state;
    allocate(r, "4403040002", 5000);
    step(r, "card:1", 1); /* ¥5 subsidy, ¥10 from the wallet */
    assert_string_equal(screen(r)->name, "ok");
    assert_string_equal(said(r), "success butie wu yuan ka_nei_yu_e si shi yuan");
    step(r, "remove", 1);
    yn_clock_sim_advance(&r->dev.clock, 61 * 1000); /* past min_interval_s */
    step(r, "card:1", 1); /* the lunch subsidy is used: full price from the wallet */
    assert_string_equal(screen(r)->name, "ok_full_price");
    assert_string_equal(said(r), "reason_period_used ka_nei_yu_e er shi wu yuan");
    step(r, "card:0", 1); /* 低保: the whole meal is subsidised */
    assert_string_equal(said(r), "success butie shi wu yuan");
    step(r, "remove", 1);
    yn_clock_sim_advance(&r->dev.clock, 61 * 1000);
    step(r, "card:0", 1); /* no wallet: the full price in cash */
    assert_string_equal(said(r), "reason_period_used qing_fu_xianjin shi wu yuan");
}

static void login_keys(struct rig *r, const char *id, const char *pin)
{
    char keys[96] = "menu";
    for (const char *c = id; *c; c++)
        snprintf(keys + strlen(keys), sizeof keys - strlen(keys), " %c", *c);
    strcat(keys, " enter");
    for (const char *c = pin; *c; c++)
        snprintf(keys + strlen(keys), sizeof keys - strlen(keys), " %c", *c);
    strcat(keys, " enter");
    step(r, keys, 3 + (int)strlen(id) + (int)strlen(pin));
}

static void test_login_records_operator_and_logout(void **state)
{
    struct rig *r = *state;
    step(r, "menu", 1);
    assert_string_equal(screen(r)->name, "staff_id");
    step(r, "1 0 0 1 enter", 5);
    assert_string_equal(screen(r)->name, "staff_pin");
    step(r, "1 2 3", 3);
    assert_true(screen_has(r, "密码 ***_"));
    assert_false(screen_has(r, "123"));
    step(r, "4 enter", 2);
    assert_string_equal(screen(r)->name, "staff_menu");
    assert_true(screen_has(r, "操作员 1001"));
    step(r, "esc card:0", 2);
    assert_string_equal(screen(r)->name, "ok");
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(r->ledger, 1, &rec), YN_OK);
    assert_string_equal(rec.operator_id, "1001");
    step(r, "menu", 1); /* logged in: straight to the menu */
    assert_string_equal(screen(r)->name, "staff_menu");
    step(r, "3", 1);
    assert_string_equal(screen(r)->name, "logged_out");
    assert_false(screen_has(r, "操作员"));
    step(r, "card:1", 1); /* nobody logged in: the tap is taken, without operator */
    assert_int_equal(yn_ledger_record_get(r->ledger, 2, &rec), YN_OK);
    assert_string_equal(rec.operator_id, "");
    step(r, "menu", 1);
    assert_string_equal(screen(r)->name, "staff_id");
}

static void test_wrong_pins_lock_the_menu(void **state)
{
    struct rig *r = *state;
    login_keys(r, "1001", "9999");
    assert_string_equal(screen(r)->name, "pin_wrong");
    assert_true(screen_has(r, "还可以再试 2 次"));
    login_keys(r, "7777", "1234"); /* an unknown id counts the same */
    assert_string_equal(screen(r)->name, "pin_wrong");
    assert_true(screen_has(r, "还可以再试 1 次"));
    login_keys(r, "1001", "4321");
    assert_string_equal(screen(r)->name, "staff_locked");
    assert_true(screen_has(r, "请 60 秒后再试"));
    yn_clock_sim_advance(&r->dev.clock, 30 * 1000);
    step(r, "esc menu", 2); /* no PIN can even be keyed in while locked */
    assert_string_equal(screen(r)->name, "staff_locked");
    assert_true(screen_has(r, "请 30 秒后再试"));
    step(r, "esc card:0", 2); /* diners are served meanwhile */
    assert_string_equal(screen(r)->name, "ok");
    yn_clock_sim_advance(&r->dev.clock, 30 * 1000);
    step(r, "esc", 1);
    login_keys(r, "1001", "1234");
    assert_string_equal(screen(r)->name, "staff_menu");
    /* a success resets the streak: two wrong PINs later, one try is left */
    step(r, "3", 1);
    login_keys(r, "1001", "0000");
    login_keys(r, "1001", "0000");
    assert_true(screen_has(r, "还可以再试 1 次"));
}

/* Menu → 1 → seq → supervisor id and PIN. */
static void reverse_keys(struct rig *r, const char *seq, const char *id, const char *pin)
{
    char keys[96] = "menu 1";
    for (const char *c = seq; *c; c++)
        snprintf(keys + strlen(keys), sizeof keys - strlen(keys), " %c", *c);
    strcat(keys, " enter");
    for (const char *c = id; *c; c++)
        snprintf(keys + strlen(keys), sizeof keys - strlen(keys), " %c", *c);
    strcat(keys, " enter");
    for (const char *c = pin; *c; c++)
        snprintf(keys + strlen(keys), sizeof keys - strlen(keys), " %c", *c);
    strcat(keys, " enter");
    step(r, keys, 5 + (int)(strlen(seq) + strlen(id) + strlen(pin)));
}

static void test_reversal_by_supervisor(void **state)
{
    struct rig *r = *state;
    allocate(r, "4403040002", 5000); /* seq 1 */
    step(r, "card:1", 1);            /* seq 2: ¥5 subsidy + ¥10 wallet */
    assert_true(screen_has(r, "流水号 2"));
    login_keys(r, "1001", "1234");
    step(r, "esc", 1);
    reverse_keys(r, "2", "1001", "1234"); /* an operator may not */
    assert_string_equal(screen(r)->name, "not_supervisor");
    assert_int_equal(journal(r), 2);
    reverse_keys(r, "2", "2001", "8888");
    assert_string_equal(screen(r)->name, "reversed");
    assert_true(screen_has(r, "流水号 2 已冲正"));
    assert_true(screen_has(r, "退回卡内 ¥10.00"));
    assert_true(screen_has(r, "补贴退回 ¥5.00"));
    assert_true(screen_has(r, "卡内余额 ¥50.00"));
    assert_int_equal(journal(r), 3);
    yn_ledger_record rec;
    assert_int_equal(yn_ledger_record_get(r->ledger, 3, &rec), YN_OK);
    assert_int_equal(rec.kind, YN_LEDGER_REVERSAL);
    assert_int_equal(rec.reverses_seq, 2);
    assert_string_equal(rec.operator_id, "2001");
    reverse_keys(r, "2", "2001", "8888"); /* once only */
    assert_string_equal(screen(r)->name, "reverse_refused");
    assert_true(screen_has(r, "已经冲正过"));
    /* the lunch's usage was given back: the card is subsidised again */
    step(r, "esc remove", 2);
    yn_clock_sim_advance(&r->dev.clock, 61 * 1000);
    step(r, "card:1", 1);
    assert_string_equal(screen(r)->name, "ok");
    assert_true(screen_has(r, "补贴 ¥5.00"));
    assert_true(screen_has(r, "余额 ¥40.00"));
    /* outside the window (600 s): refused */
    yn_clock_sim_advance(&r->dev.clock, 601 * 1000);
    reverse_keys(r, "4", "2001", "8888");
    assert_string_equal(screen(r)->name, "reverse_refused");
    assert_true(screen_has(r, "已超过冲正时限 (10 分钟)"));
    assert_int_equal(journal(r), 4);
    reverse_keys(r, "99", "2001", "8888");
    assert_true(screen_has(r, "没有流水号 99"));
}

static void test_settlement_on_screen_and_csv(void **state)
{
    struct rig *r = *state;
    step(r, "card:0", 1); /* 低保 ¥15 subsidy */
    step(r, "card:1", 1); /* ¥5 subsidy, ¥10 cash */
    login_keys(r, "1001", "1234");
    step(r, "2", 1);
    assert_string_equal(screen(r)->name, "settlement");
    assert_string_equal(screen(r)->title, "日结 2026-03-10");
    assert_true(screen_has(r, "餐数 2  金额 ¥30.00"));
    assert_true(screen_has(r, "补贴 ¥20.00  卡内 ¥0.00  现金 ¥10.00"));
    assert_true(screen_has(r, "冲正 0 笔"));
    assert_true(screen_has(r, "餐次: lunch 2"));
    assert_true(screen_has(r, "已保存 settle-T1-20260310.csv"));
    char path[512], want[4096], got[4096];
    snprintf(path, sizeof path, "%s/settlements/settle-T1-20260310.csv", r->dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(got, 1, sizeof got - 1, f);
    got[n] = '\0';
    fclose(f);
    FILE *mem = fmemopen(want, sizeof want, "w");
    assert_int_equal(yn_ledger_settle_csv(r->ledger, 20260310, mem), YN_OK);
    fclose(mem);
    assert_string_equal(got, want);
    step(r, NULL, 4000 / 50 + 1); /* stays longer than a tap's result */
    assert_string_equal(screen(r)->name, "settlement");
    step(r, "esc", 1);
    assert_string_equal(screen(r)->name, "idle");
}

/* Waiting at 请刷卡 when lunch begins at 11:00: the screen says so; each
 * debit is decided at the time of its tap. */
static void test_period_begins_while_idle(void **state)
{
    struct rig *r = *state;
    yn_clock_sim_set(&r->dev.clock, LUNCH_MS - 3610 * 1000LL); /* 10:59:50 */
    step(r, "esc", 1);
    yn_terminal_start(r->term);
    assert_true(screen_has(r, "现在不是补贴用餐时间"));
    step(r, "card:1", 1);
    assert_string_equal(screen(r)->name, "ok_full_price");
    assert_string_equal(said(r), "reason_no_period qing_fu_xianjin shi wu yuan");
    step(r, "remove", 1);
    step(r, NULL, 4000 / 50 + 1);
    assert_string_equal(screen(r)->name, "idle");
    assert_true(screen_has(r, "现在不是补贴用餐时间"));
    int shown = yn_display_sim_count(&r->dev.display);
    yn_clock_sim_advance(&r->dev.clock, 6 * 1000); /* 11:00:00 and a bit */
    step(r, NULL, 1);
    assert_int_equal(yn_display_sim_count(&r->dev.display), shown + 1);
    assert_true(screen_has(r, "午餐"));
    step(r, NULL, 2); /* not redrawn while nothing changes */
    assert_int_equal(yn_display_sim_count(&r->dev.display), shown + 1);
    step(r, "card:0", 1);
    assert_string_equal(screen(r)->name, "ok");
    assert_true(screen_has(r, "补贴 ¥15.00"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idle_tap_result_idle, setup_pos, teardown),
        cmocka_unit_test_setup_teardown(test_same_card_is_one_tap, setup_pos, teardown),
        cmocka_unit_test_setup_teardown(test_staff_key_in_a_price, setup_pos, teardown),
        cmocka_unit_test_setup_teardown(test_failed_read_can_be_tapped_again_at_once, setup_pos,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_with_clock_set_back_still_debits, setup_pos,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_clone_is_refused, setup_pos, teardown),
        cmocka_unit_test_setup_teardown(test_kiosk_shows_balance_and_never_debits, setup_kiosk,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pay_by_weight_lunch, setup_weighed, teardown),
        cmocka_unit_test_setup_teardown(test_untrustworthy_weight_is_refused, setup_weighed,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_tare_key, setup_weighed, teardown),
        cmocka_unit_test_setup_teardown(test_weighed_mode_needs_a_scale, setup_pos, teardown),
        cmocka_unit_test_setup_teardown(test_voice_phrases, setup_pos, teardown),
        cmocka_unit_test_setup_teardown(test_login_records_operator_and_logout, setup_pos,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_wrong_pins_lock_the_menu, setup_pos, teardown),
        cmocka_unit_test_setup_teardown(test_reversal_by_supervisor, setup_pos, teardown),
        cmocka_unit_test_setup_teardown(test_settlement_on_screen_and_csv, setup_pos, teardown),
        cmocka_unit_test_setup_teardown(test_period_begins_while_idle, setup_pos, teardown),
    };
    return cmocka_run_group_tests_name("terminal", tests, NULL, NULL);
}
