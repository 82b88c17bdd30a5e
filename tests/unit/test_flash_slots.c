/* test_flash_slots.c — yinian-flash's A/B slot state machine as pure logic
 * (tools/flash/slots.c): the state file, the decisions of install, start and
 * rollback, and whole update histories walked through them. The same
 * machine on real files, killed at every durable step, is
 * tests/integration/flash.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slots.h"

static yn_bundle_version ver(const char *s)
{
    yn_bundle_version v = {0, 0, 0};
    assert_int_equal(yn_bundle_version_parse(s, &v), YN_OK);
    return v;
}

static void test_state_file(void **state)
{
    (void)state;
    yn_slots st = {.active = 1, .attempts_left = 2}, back;
    st.slot[0] = (yn_slot){.status = YN_SLOT_CONFIRMED, .version = "0.1.0", .ledger_schema = 2};
    st.slot[1] = (yn_slot){.status = YN_SLOT_INSTALLED, .version = "0.2.0", .ledger_schema = 3};
    char text[1024], err[128];
    size_t len;
    assert_int_equal(yn_slots_format(&st, text, sizeof text, &len), YN_OK);
    assert_non_null(strstr(text, "active = b\n"));
    assert_non_null(strstr(text, "b.status = installed\n"));
    assert_int_equal(yn_slots_parse(text, len, &back, err, sizeof err), YN_OK);
    assert_int_equal(back.active, 1);
    assert_int_equal(back.attempts_left, 2);
    assert_int_equal(back.slot[0].status, YN_SLOT_CONFIRMED);
    assert_string_equal(back.slot[0].version, "0.1.0");
    assert_int_equal(back.slot[1].ledger_schema, 3);
    assert_int_equal(yn_slots_format(&st, text, 40, &len), YN_ELIMIT);

    yn_slots empty = {.active = -1};
    assert_int_equal(yn_slots_format(&empty, text, sizeof text, &len), YN_OK);
    assert_int_equal(yn_slots_parse(text, len, &back, err, sizeof err), YN_OK);
    assert_int_equal(back.active, -1);
    assert_int_equal(back.slot[1].status, YN_SLOT_EMPTY);
    assert_string_equal(back.slot[1].version, "");

    const char *later = "format = 1\nactive = a\na.status = confirmed\nnew_key = whatever\n";
    assert_int_equal(yn_slots_parse(later, strlen(later), &back, err, sizeof err), YN_OK);
    const char *bad[] = {
        "active = a\na.status = confirmed\n", /* no format line */
        "format = 1\nactive = c\n",
        "format = 1\nactive = a\n", /* active slot empty */
        "format = 1\nactive = b\nb.status = writing\n",
        "format = 1\nattempts_left = -1\n",
        "format = 1\nattempts_left = x\n",
        "format = 1\na.status = maybe\n",
        "format = 1\na.version = 1.0\n",
        "format = 1\nno equals sign\n",
        "format = 0\n", /* damage, not a newer format */
        "format = x\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_int_equal(yn_slots_parse(bad[i], strlen(bad[i]), &back, err, sizeof err), YN_EINVAL);
    const char *newer = "format = 2\n";
    assert_int_equal(yn_slots_parse(newer, strlen(newer), &back, err, sizeof err), YN_ENOTSUP);
    assert_non_null(strstr(err, "format newer than this tool"));
    const char *zero = "format = 0\n";
    assert_int_equal(yn_slots_parse(zero, strlen(zero), &back, err, sizeof err), YN_EINVAL);
    assert_null(strstr(err, "newer"));
}

/* a confirmed, b installed with `attempts` starts left, b active */
static yn_slots after_install(int attempts)
{
    yn_slots st = {.active = 1, .attempts_left = attempts};
    st.slot[0] = (yn_slot){.status = YN_SLOT_CONFIRMED, .version = "0.1.0"};
    st.slot[1] = (yn_slot){.status = YN_SLOT_INSTALLED, .version = "0.2.0"};
    return st;
}

static void test_boot_decisions(void **state)
{
    (void)state;
    bool rolled;
    /* the new slot passes on its first start */
    yn_slots st = after_install(3);
    assert_int_equal(yn_slots_boot_next(&st), YN_BOOT_TRY);
    assert_int_equal(st.attempts_left, 2);
    assert_true(yn_slots_boot_result(&st, true, &rolled));
    assert_false(rolled);
    assert_int_equal(st.slot[1].status, YN_SLOT_CONFIRMED);
    assert_int_equal(st.attempts_left, 0);
    assert_int_equal(yn_slots_boot_next(&st), YN_BOOT_GOOD);
    assert_false(yn_slots_boot_result(&st, false, &rolled)); /* a confirmed slot stays */
    assert_int_equal(yn_slots_fallback(&st, false), 0);

    /* it fails every start: the third failure rolls back at once */
    st = after_install(3);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(yn_slots_boot_next(&st), YN_BOOT_TRY);
        assert_false(yn_slots_boot_result(&st, false, &rolled));
        assert_false(rolled);
        assert_int_equal(st.active, 1);
    }
    assert_int_equal(yn_slots_boot_next(&st), YN_BOOT_TRY);
    assert_int_equal(st.attempts_left, 0);
    assert_true(yn_slots_boot_result(&st, false, &rolled));
    assert_true(rolled);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.slot[1].status, YN_SLOT_FAILED);
    assert_int_equal(yn_slots_boot_next(&st), YN_BOOT_GOOD);
    assert_int_equal(yn_slots_fallback(&st, false), -1);
    assert_int_equal(yn_slots_fallback(&st, true), -1); /* a failed slot is never a fallback */

    /* power lost during the last try: the next start rolls back before running it */
    st = after_install(0);
    assert_int_equal(yn_slots_boot_next(&st), YN_BOOT_ROLLBACK);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.slot[1].status, YN_SLOT_FAILED);

    /* the first install ever: nothing to go back to, keeps trying */
    yn_slots first = {.active = 0, .attempts_left = 1};
    first.slot[0] = (yn_slot){.status = YN_SLOT_INSTALLED, .version = "0.1.0"};
    assert_int_equal(yn_slots_boot_next(&first), YN_BOOT_TRY);
    assert_false(yn_slots_boot_result(&first, false, &rolled));
    assert_int_equal(yn_slots_boot_next(&first), YN_BOOT_LAST);
    assert_int_equal(yn_slots_boot_next(&first), YN_BOOT_LAST);
    assert_true(yn_slots_boot_result(&first, true, &rolled));
    assert_int_equal(first.slot[0].status, YN_SLOT_CONFIRMED);

    /* a fallback that is only installed (a forced install) is not used by itself */
    st = after_install(0);
    st.slot[0].status = YN_SLOT_INSTALLED;
    assert_int_equal(yn_slots_fallback(&st, false), -1);
    assert_int_equal(yn_slots_fallback(&st, true), 0);
    assert_int_equal(yn_slots_boot_next(&st), YN_BOOT_LAST);

    yn_slots none = {.active = -1};
    assert_int_equal(yn_slots_boot_next(&none), YN_BOOT_NONE);
    assert_int_equal(yn_slots_fallback(&none, true), -1);
    assert_string_equal(yn_slot_status_name(YN_SLOT_WRITING), "writing");
}

/* Which slot an install writes, and when it is refused. */
static void test_install_decisions(void **state)
{
    (void)state;
    int target = -1;
    yn_slots empty = {.active = -1};
    yn_bundle_version v020 = ver("0.2.0"), v010 = ver("0.1.0"), v005 = ver("0.0.5");
    assert_int_equal(yn_slots_install_check(&empty, &v010, false, &target), YN_SLOTS_GO);
    assert_int_equal(target, 0); /* an empty board: slot a */

    yn_slots st = after_install(3); /* b (0.2.0) active, not yet confirmed */
    assert_int_equal(yn_slots_install_check(&st, &v020, false, &target), YN_SLOTS_UNCONFIRMED);
    assert_int_equal(target, 0); /* it would overwrite a, b's fallback */
    assert_int_equal(yn_slots_install_check(&st, &v020, true, &target), YN_SLOTS_GO);

    st.slot[1].status = YN_SLOT_CONFIRMED;
    yn_bundle_version v030 = ver("0.3.0");
    assert_int_equal(yn_slots_install_check(&st, &v030, false, &target), YN_SLOTS_GO);
    assert_int_equal(target, 0);
    assert_int_equal(yn_slots_install_check(&st, &v020, false, &target), YN_SLOTS_SAME);
    assert_int_equal(yn_slots_install_check(&st, &v020, true, &target), YN_SLOTS_GO);
    assert_int_equal(yn_slots_install_check(&st, &v005, false, &target), YN_SLOTS_DOWNGRADE);
    assert_int_equal(yn_slots_install_check(&st, &v005, true, &target), YN_SLOTS_GO_FORCED);
    /* an active slot whose version does not parse (a damaged state) never blocks */
    snprintf(st.slot[1].version, sizeof st.slot[1].version, "x");
    assert_int_equal(yn_slots_install_check(&st, &v005, false, &target), YN_SLOTS_GO);

    /* writing: the target is nothing to go back to any more (once) */
    st = after_install(0);
    st.slot[1].status = YN_SLOT_CONFIRMED;
    assert_true(yn_slots_begin_write(&st, 0));
    assert_int_equal(st.slot[0].status, YN_SLOT_WRITING);
    assert_string_equal(st.slot[0].version, "");
    assert_false(yn_slots_begin_write(&st, 0));
    assert_int_equal(yn_slots_fallback(&st, true), -1);

    /* the switch */
    yn_slots_installed(&st, 0, "0.3.0", 7, 3);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.attempts_left, 3);
    assert_int_equal(st.slot[0].status, YN_SLOT_INSTALLED);
    assert_string_equal(st.slot[0].version, "0.3.0");
    assert_int_equal(st.slot[0].ledger_schema, 7);
    assert_int_equal(yn_slots_fallback(&st, false), 1);

    /* a slot whose program does not run here: marked, not switched to */
    st = after_install(0);
    st.slot[1].status = YN_SLOT_CONFIRMED;
    assert_true(yn_slots_begin_write(&st, 0));
    yn_slots_install_failed(&st, 0, "0.3.0", 7);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.slot[0].status, YN_SLOT_FAILED);
    assert_string_equal(st.slot[0].version, "0.3.0");
}

/* Going back by hand: only to a slot that can run, and with a ledger it reads. */
static void test_rollback_decisions(void **state)
{
    (void)state;
    int to = -1;
    yn_slots none = {.active = -1};
    assert_int_equal(yn_slots_rollback_check(&none, true, 0, &to), YN_SLOTS_NOTHING);

    yn_slots st = after_install(2); /* a confirmed (0.1.0), b installed active */
    st.slot[0].ledger_schema = 4;
    assert_int_equal(yn_slots_rollback_check(&st, false, 4, &to), YN_SLOTS_GO);
    assert_int_equal(to, 0);
    assert_int_equal(yn_slots_rollback_check(&st, false, 0, &to), YN_SLOTS_GO); /* no ledger */
    assert_int_equal(yn_slots_rollback_check(&st, false, 5, &to), YN_SLOTS_SCHEMA);
    assert_int_equal(yn_slots_rollback_check(&st, true, 5, &to), YN_SLOTS_GO_FORCED);
    yn_slots_rollback(&st, 3);
    assert_int_equal(st.active, 0);
    assert_int_equal(st.attempts_left, 0); /* confirmed: starts as it is */
    assert_int_equal(st.slot[1].status, YN_SLOT_INSTALLED);

    /* back to b, which is only installed: --force, and it is tried again */
    assert_int_equal(yn_slots_rollback_check(&st, false, 0, &to), YN_SLOTS_NOTHING);
    assert_int_equal(yn_slots_rollback_check(&st, true, 0, &to), YN_SLOTS_GO);
    assert_int_equal(to, 1);
    yn_slots_rollback(&st, 3);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.attempts_left, 3);

    /* a failed slot: with --force it becomes installed again, to be tried */
    st = after_install(0);
    assert_int_equal(yn_slots_boot_next(&st), YN_BOOT_ROLLBACK); /* b failed, a active */
    assert_int_equal(yn_slots_rollback_check(&st, false, 0, &to), YN_SLOTS_NOTHING);
    assert_int_equal(yn_slots_rollback_check(&st, true, 0, &to), YN_SLOTS_GO);
    yn_slots_rollback(&st, 2);
    assert_int_equal(st.active, 1);
    assert_int_equal(st.slot[1].status, YN_SLOT_INSTALLED);
    assert_int_equal(st.attempts_left, 2);
    /* an empty slot is never a place to go */
    yn_slots one = {.active = 0};
    one.slot[0] = (yn_slot){.status = YN_SLOT_CONFIRMED, .version = "0.1.0"};
    assert_int_equal(yn_slots_rollback_check(&one, true, 0, &to), YN_SLOTS_NOTHING);
}

/* Whole histories through the machine, the state written and read back
 * between every step (as each step is a durable write): install, a start
 * that fails twice then passes, an update that never passes and is rolled
 * back from, and the board still starting a good version after each. */
static void save_load(yn_slots *st)
{
    char text[1024], err[128];
    size_t len;
    assert_int_equal(yn_slots_format(st, text, sizeof text, &len), YN_OK);
    assert_int_equal(yn_slots_parse(text, len, st, err, sizeof err), YN_OK);
}

static void install(yn_slots *st, const char *version, int attempts)
{
    int target;
    yn_bundle_version v = ver(version);
    assert_int_equal(yn_slots_install_check(st, &v, false, &target), YN_SLOTS_GO);
    if (yn_slots_begin_write(st, target))
        save_load(st);
    yn_slots_installed(st, target, version, 1, attempts);
    save_load(st);
}

/* One start: returns the version that runs (NULL: none may). */
static const char *start(yn_slots *st, bool self_test_passes)
{
    bool rolled;
    enum yn_boot_action act = yn_slots_boot_next(st);
    save_load(st);
    if (act == YN_BOOT_GOOD || act == YN_BOOT_ROLLBACK)
        return st->slot[st->active].version;
    if (act == YN_BOOT_NONE)
        return NULL;
    int tried = st->active;
    if (yn_slots_boot_result(st, self_test_passes, &rolled))
        save_load(st);
    if (self_test_passes)
        return st->slot[tried].version;
    return rolled ? st->slot[st->active].version : NULL;
}

static void test_update_histories(void **state)
{
    (void)state;
    yn_slots st = {.active = -1};
    assert_null(start(&st, true));
    install(&st, "1.0.0", 3);
    assert_string_equal(start(&st, true), "1.0.0");
    assert_int_equal(st.slot[0].status, YN_SLOT_CONFIRMED);

    install(&st, "1.1.0", 3); /* into b */
    assert_int_equal(st.active, 1);
    assert_null(start(&st, false));                 /* fails: tried again next start */
    assert_null(start(&st, false));                 /* fails again */
    assert_string_equal(start(&st, true), "1.1.0"); /* third start passes */
    assert_int_equal(st.slot[1].status, YN_SLOT_CONFIRMED);

    install(&st, "1.2.0", 2); /* into a, over 1.0.0 */
    assert_string_equal(st.slot[1].version, "1.1.0");
    assert_null(start(&st, false));
    assert_string_equal(start(&st, false), "1.1.0"); /* budget spent: back to 1.1.0 */
    assert_int_equal(st.active, 1);
    assert_int_equal(st.slot[0].status, YN_SLOT_FAILED);
    assert_string_equal(start(&st, false), "1.1.0"); /* confirmed: no self-test needed */

    /* 1.2.0 again is allowed (it failed, it is not the active version) */
    install(&st, "1.2.1", 3);
    assert_int_equal(st.active, 0);
    assert_string_equal(start(&st, true), "1.2.1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_file),        cmocka_unit_test(test_boot_decisions),
        cmocka_unit_test(test_install_decisions), cmocka_unit_test(test_rollback_decisions),
        cmocka_unit_test(test_update_histories),
    };
    return cmocka_run_group_tests_name("flash_slots", tests, NULL, NULL);
}
