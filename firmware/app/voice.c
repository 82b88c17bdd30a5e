/* voice.c — Chinese readings of amounts and reasons as clip sequences. */
#include "voice.h"

#include <stdbool.h>
#include <string.h>

static const char *const digit_clip[10] = {"ling", "yi",  "er", "san", "si",
                                           "wu",   "liu", "qi", "ba",  "jiu"};

static const struct {
    const char *clip, *text;
} clip_texts[] = {
    {"ling", "零"},
    {"yi", "一"},
    {"er", "二"},
    {"san", "三"},
    {"si", "四"},
    {"wu", "五"},
    {"liu", "六"},
    {"qi", "七"},
    {"ba", "八"},
    {"jiu", "九"},
    {"shi", "十"},
    {"bai", "百"},
    {"qian", "千"},
    {"wan", "万"},
    {"yi4", "亿"},
    {"dian", "点"},
    {"yuan", "元"},
    {"success", "扣款成功"},
    {"butie", "补贴"},
    {"qing_fu_xianjin", "请付现金"},
    {"ka_nei_yu_e", "卡内余额"},
    {"yu_e", "余额"},
    {"pay_full_price", "请按原价付款"},
    {"reason_expired", "您的卡已过有效期，请到社区服务中心换卡"},
    {"reason_not_eligible", "本餐暂无补贴，请按原价付款"},
    {"reason_no_period", "现在不是补贴用餐时间"},
    {"reason_period_used", "本餐已享受补贴"},
    {"reason_day_used", "今天的补贴已经用过了"},
    {"reason_month_used", "本月补贴次数已用完"},
    {"reason_month_cap", "本月补贴额度已用完"},
    {"reason_outside_area", "本餐厅不在您的补贴范围内"},
    {"reason_below_min_price", "本餐价格未达到补贴标准"},
    {"reason_insufficient", "卡内余额不足，请充值或付现金"},
    {"reason_lost", "这张卡已挂失，请联系工作人员"},
    {"reason_too_soon", "刚刚已经刷过卡了，请勿重复刷卡"},
    {"reason_storage", "系统忙，请稍候再试"},
    {"reason_not_genuine", "这张卡无法使用，请联系工作人员"},
    {"reason_read_failed", "没有读到卡，请重新刷卡"},
    {"reason_weight", "称重未稳定，请放稳餐盘后重新刷卡"},
    {"reason_clock", "系统时间有误，暂时不能刷卡，请联系工作人员"},
    {"reason_none", "祝您用餐愉快"},
    {"ben_yue_butie_hai_sheng", "本月补贴还剩"},
    {"ben_yue_hai_ke_butie", "本月还可补贴"},
    {"jin_tian_hai_ke_butie", "今天还可补贴"},
    {"can", "餐"},
    {"reason_blank_card", "这张卡还没有开通，请到社区服务中心办理"},
    {"reason_foreign_card", "这不是颐年卡，请换颐年卡再刷"},
    {"reason_other_card", "这是别的卡，不是颐年卡，请换颐年卡再刷"},
    {"reason_not_enrolled", "这张卡还没有登记，请到社区服务中心登记"},
    {"reason_random_uid", "这张卡无法识别，请换颐年卡或已登记的卡再刷"},
    {"reason_manual_cap", "今天人工登记的名额已用完，请下次带卡来"},
};

const char *const yn_voice_clips[] = {"ling",
                                      "yi",
                                      "er",
                                      "san",
                                      "si",
                                      "wu",
                                      "liu",
                                      "qi",
                                      "ba",
                                      "jiu",
                                      "shi",
                                      "bai",
                                      "qian",
                                      "wan",
                                      "yi4",
                                      "dian",
                                      "yuan",
                                      "success",
                                      "butie",
                                      "qing_fu_xianjin",
                                      "ka_nei_yu_e",
                                      "yu_e",
                                      "pay_full_price",
                                      "reason_expired",
                                      "reason_not_eligible",
                                      "reason_no_period",
                                      "reason_period_used",
                                      "reason_day_used",
                                      "reason_month_used",
                                      "reason_month_cap",
                                      "reason_outside_area",
                                      "reason_below_min_price",
                                      "reason_insufficient",
                                      "reason_lost",
                                      "reason_too_soon",
                                      "reason_storage",
                                      "reason_not_genuine",
                                      "reason_read_failed",
                                      "reason_weight",
                                      "reason_clock",
                                      "reason_none",
                                      "ben_yue_butie_hai_sheng",
                                      "ben_yue_hai_ke_butie",
                                      "jin_tian_hai_ke_butie",
                                      "can",
                                      "reason_blank_card",
                                      "reason_foreign_card",
                                      "reason_other_card",
                                      "reason_not_enrolled",
                                      "reason_random_uid",
                                      "reason_manual_cap",
                                      NULL};

const char *yn_voice_clip_text(const char *clip)
{
    for (size_t i = 0; i < sizeof clip_texts / sizeof clip_texts[0]; i++)
        if (strcmp(clip_texts[i].clip, clip) == 0)
            return clip_texts[i].text;
    return NULL;
}

/* 1..9999 of a larger number. leading: nothing precedes it, so 10..19 read
 * 十X rather than 一十X. A gap of zeros inside the group is read as one 零;
 * zeros before the group are the caller's business. */
static void read_group(yn_phrase *p, unsigned n, bool leading)
{
    static const char *const unit[4] = {"qian", "bai", "shi", NULL};
    static const unsigned place[4] = {1000, 100, 10, 1};
    bool started = false, gap = false;
    for (int i = 0; i < 4; i++) {
        unsigned d = n / place[i] % 10;
        if (d == 0) {
            gap = started;
            continue;
        }
        if (gap)
            yn_phrase_add(p, "ling");
        gap = false;
        if (!(d == 1 && i == 2 && !started && leading))
            yn_phrase_add(p, digit_clip[d]); /* 十五, not 一十五 */
        if (unit[i])
            yn_phrase_add(p, unit[i]);
        started = true;
    }
}

/* Whole yuan, 0 .. 9999,9999,9999. */
static void read_yuan(yn_phrase *p, uint64_t yuan)
{
    if (yuan == 0) {
        yn_phrase_add(p, "ling");
        return;
    }
    unsigned groups[3] = {(unsigned)(yuan / 100000000 % 10000), (unsigned)(yuan / 10000 % 10000),
                          (unsigned)(yuan % 10000)};
    static const char *const group_unit[3] = {"yi4", "wan", NULL};
    bool any = false;
    for (int g = 0; g < 3; g++) {
        if (groups[g] == 0) {
            continue;
        }
        if (any && groups[g] < 1000)
            yn_phrase_add(p, "ling"); /* 一万零五 */
        read_group(p, groups[g], !any);
        if (group_unit[g])
            yn_phrase_add(p, group_unit[g]);
        any = true;
    }
}

void yn_voice_amount(yn_phrase *p, int64_t fen)
{
    uint64_t mag = fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;
    uint64_t yuan = mag / 100;
    unsigned jiao = (unsigned)(mag / 10 % 10), cents = (unsigned)(mag % 10);
    if (yuan > 999999999999ULL)
        yuan = 999999999999ULL;
    read_yuan(p, yuan);
    if (jiao || cents) {
        yn_phrase_add(p, "dian");
        yn_phrase_add(p, digit_clip[jiao]);
        if (cents)
            yn_phrase_add(p, digit_clip[cents]);
    }
    yn_phrase_add(p, "yuan");
}

void yn_voice_count(yn_phrase *p, int64_t n)
{
    read_yuan(p, n < 0 ? 0 : (uint64_t)n);
}

void yn_voice_balance(yn_phrase *p, const yn_ledger_account *acc, const yn_policy_limit *lim)
{
    if (lim->month_cap_fen > 0) {
        yn_phrase_add(p, "ben_yue_butie_hai_sheng");
        yn_voice_amount(p, lim->month_cap_fen > acc->subsidy_month_fen
                               ? lim->month_cap_fen - acc->subsidy_month_fen
                               : 0);
    } else if (lim->per_month > 0) {
        yn_phrase_add(p, "ben_yue_hai_ke_butie");
        yn_voice_count(p,
                       lim->per_month > acc->meals_month ? lim->per_month - acc->meals_month : 0);
        yn_phrase_add(p, "can");
    }
    if (lim->day_max > 0) {
        yn_phrase_add(p, "jin_tian_hai_ke_butie");
        yn_voice_count(p, lim->day_max > acc->meals_day ? lim->day_max - acc->meals_day : 0);
        yn_phrase_add(p, "can");
    }
    yn_phrase_add(p, "ka_nei_yu_e");
    yn_voice_amount(p, acc->wallet_fen);
}

void yn_voice_reason(yn_phrase *p, enum yn_reason r)
{
    static char names[YN_REASON_COUNT][40];
    if ((unsigned)r >= YN_REASON_COUNT)
        r = YN_REASON_READ_FAILED;
    if (!names[r][0]) {
        strcpy(names[r], "reason_");
        strncat(names[r], yn_reason_code(r), sizeof names[r] - 8);
    }
    /* the same static string each time: clip names are stored by pointer */
    for (int i = 0; yn_voice_clips[i]; i++)
        if (strcmp(yn_voice_clips[i], names[r]) == 0) {
            yn_phrase_add(p, yn_voice_clips[i]);
            return;
        }
}
