/* test_terminal.c — the terminal state machine on simulated devices, a real
 * ledger and the Shenzhen policy: taps become debits and screens, the same
 * card is one tap, staff key in prices, a failed read can be tapped again,
 * the kiosk shows balances and never debits. */
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

static int open_rig(void **state, enum yn_mode mode)
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
    assert_int_equal(yn_devices_open(&r->dev, &r->cfg), YN_OK);
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
        .ledger = r->ledger, .policy = r->policy, .master = r->fix.master, .ring = &r->fix.ring};
    assert_int_equal(yn_terminal_new(&r->cfg, &r->dev, &deps, &r->term), YN_OK);
    yn_terminal_start(r->term);
    *state = r;
    return 0;
}

static int setup_pos(void **state)
{
    return open_rig(state, YN_MODE_POS);
}

static int setup_kiosk(void **state)
{
    return open_rig(state, YN_MODE_KIOSK);
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
    step(r, "card:0", 1);
    assert_string_equal(screen(r)->name, "ok");
    assert_true(screen_has(r, "补贴 ¥15.00"));
    assert_int_equal(journal(r), 1);
    assert_int_equal(yn_terminal_taps(r->term), 1);
    assert_int_equal(yn_io_sim_state_of(&r->dev.io)->pulses[YN_OUT_GREEN], 1);
    assert_string_equal(yn_audio_silent_last(&r->dev.audio)->clips[0], "success");
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

static void test_clone_is_refused(void **state)
{
    struct rig *r = *state;
    step(r, "card:2", 1);
    assert_string_equal(screen(r)->name, "refused_not_genuine");
    assert_true(screen_has(r, "这张卡无法使用"));
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
    assert_true(screen_has(r, "本月补贴 0 次"));
    assert_int_equal(journal(r), 1); /* only the allocation */
    step(r, "1 enter", 2);           /* no price entry in a kiosk */
    assert_string_equal(screen(r)->name, "balance");
    step(r, "esc", 1);
    assert_string_equal(screen(r)->name, "idle");
    step(r, "quit", 1);
    assert_true(yn_terminal_done(r->term));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idle_tap_result_idle, setup_pos, teardown),
        cmocka_unit_test_setup_teardown(test_same_card_is_one_tap, setup_pos, teardown),
        cmocka_unit_test_setup_teardown(test_staff_key_in_a_price, setup_pos, teardown),
        cmocka_unit_test_setup_teardown(test_failed_read_can_be_tapped_again_at_once, setup_pos,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_clone_is_refused, setup_pos, teardown),
        cmocka_unit_test_setup_teardown(test_kiosk_shows_balance_and_never_debits, setup_kiosk,
                                        teardown),
    };
    return cmocka_run_group_tests_name("terminal", tests, NULL, NULL);
}
