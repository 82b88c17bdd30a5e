/* testutil.h — helpers shared by the test programs. */
#ifndef YN_TESTUTIL_H
#define YN_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "display.h"
#include "policy.h"

/* The repository root (env YN_SRCDIR, else "."). */
const char *yn_test_srcdir(void);
/* A fresh directory under $TMPDIR for this test; path written to buf. */
void yn_test_tmpdir(char *buf, size_t len);
/* Under qemu-user (tests/run-unit sets YN_CROSS=1 there): say why the test
 * is skipped (stderr) and return true. */
bool yn_test_under_qemu(const char *why);
/* Write text to dir/name with the given mode; returns the full path in buf. */
void yn_test_write(const char *dir, const char *name, const char *text, unsigned mode, char *buf,
                   size_t len);

/* firmware/policies/shenzhen-2025.json that also accepts identity-only cards
 * (offline cap ¥5) and 忘带卡 (manual_per_day a terminal a day, offline cap
 * ¥5): POLICY.md "Other ways to identify the holder". NULL if it does not load. */
yn_policy *yn_test_policy_ident(int manual_per_day);

/* text in a line, the title or the footer of s; a no-break space on the
 * screen (screens.h's YN_NB) matches a space in text. */
bool yn_test_screen_has(const yn_screen *s, const char *text);

#endif
