/* voice.h — what the terminal says, as a sequence of clip names: amounts read
 * the Chinese way ("九十五点五元"), composed from digit and unit clips. Pure
 * code; hal/audio plays the clips. The clip files are made by
 * tools/make-clips from the texts in yn_voice_clip_text(). */
#ifndef YN_VOICE_H
#define YN_VOICE_H

#include <stdint.h>

#include "audio.h"
#include "ledger.h"
#include "policy.h"
#include "reason.h"

/* Append the reading of an amount in fen: 1500 → 十五 元; 9550 → 九十五 点 五 元;
 * 10500 → 一百 零 五 元; 50 → 零 点 五 元; 5 → 零 点 零 五 元. Negative amounts
 * are read as their magnitude. */
void yn_voice_amount(yn_phrase *p, int64_t fen);
/* Append the reading of a whole number (meals): 3 → 三. */
void yn_voice_count(yn_phrase *p, int64_t n);
/* What the kiosk says: 本月补贴还剩 X元 (or 本月还可补贴 N 餐), 今天还可补贴 N 餐
 * (when the policy limits the day), 卡内余额 Y元. */
void yn_voice_balance(yn_phrase *p, const yn_ledger_account *acc, const yn_policy_limit *lim);
/* Append the spoken sentence for a reason (one clip per reason). */
void yn_voice_reason(yn_phrase *p, enum yn_reason r);
/* The Chinese text of a clip name, for the clip generator; NULL if unknown. */
const char *yn_voice_clip_text(const char *clip);
/* Every clip name, NULL-terminated. */
extern const char *const yn_voice_clips[];

#endif
