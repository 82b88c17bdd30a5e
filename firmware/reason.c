/* reason.c — texts for enum yn_reason: a kind sentence for seniors, an exact
 * one for staff, and a stable code for records. */
#include "reason.h"

struct reason_text {
    const char *code;
    const char *kind;
    const char *staff;
};

static const struct reason_text texts[YN_REASON_COUNT] = {
    [YN_REASON_NONE] = {"none", "祝您用餐愉快", "ok"},
    [YN_REASON_EXPIRED] = {"expired", "您的卡已过有效期，请到社区服务中心换卡",
                           "card expired: send the holder to the issuing office"},
    [YN_REASON_NOT_ELIGIBLE] = {"not_eligible", "本餐暂无补贴，请按原价付款",
                                "holder is in no subsidised category of this policy"},
    [YN_REASON_NO_PERIOD] = {"no_period", "现在不是补贴用餐时间",
                             "no subsidised meal period is open now"},
    [YN_REASON_PERIOD_USED] = {"period_used", "本餐已享受补贴",
                               "subsidy already used in this meal period"},
    [YN_REASON_DAY_USED] = {"day_used", "今天的补贴已经用过了", "daily subsidy already used"},
    [YN_REASON_MONTH_USED] = {"month_used", "本月补贴次数已用完",
                              "monthly number of subsidised meals reached"},
    [YN_REASON_MONTH_CAP] = {"month_cap", "本月补贴额度已用完", "monthly subsidy cap reached"},
    [YN_REASON_OUTSIDE_AREA] = {"outside_area", "本餐厅不在您的补贴范围内，请在户籍所在区用餐",
                                "canteen is outside the holder's district/street for this policy"},
    [YN_REASON_BELOW_MIN_PRICE] = {"below_min_price", "本餐价格未达到补贴标准",
                                   "meal price is below the policy's minimum for a subsidy"},
    [YN_REASON_INSUFFICIENT] = {"insufficient", "卡内余额不足，请充值或付现金",
                                "wallet balance too low and cash is not accepted"},
    [YN_REASON_LOST] = {"lost", "这张卡已挂失，请联系工作人员",
                        "card is on the blacklist (reported lost): keep the card, call the office"},
    [YN_REASON_TOO_SOON] = {"too_soon", "刚刚已经刷过卡了，请勿重复刷卡",
                            "same card debited within the minimum interval"},
    [YN_REASON_STORAGE] =
        {"storage", "系统忙，请稍候再试",
         "ledger could not commit (disk full, read-only or locked): run yinian-diag"},
    [YN_REASON_NOT_GENUINE] = {"not_genuine", "这张卡无法使用，请联系工作人员",
                               "card failed signature or key authentication (forged or cloned)"},
    [YN_REASON_READ_FAILED] = {"read_failed", "没有读到卡，请重新刷卡",
                               "card read failed: ask the diner to tap again"},
    [YN_REASON_WEIGHT] = {"weight", "称重未稳定，请放稳餐盘后重新刷卡",
                          "weighed meal refused, nothing charged: the scale gave no trustworthy "
                          "weight (not settled in time, zero or negative, over range or above "
                          "max_weight_g, or not answering)"},
    [YN_REASON_BLANK_CARD] = {"blank_card", "这张卡还没有开通，请到社区服务中心办理",
                              "空白卡：卡里还没有颐年卡资料（未发卡），请持卡人到发卡点办卡"},
    [YN_REASON_FOREIGN_CARD] = {"foreign_card", "这不是颐年卡，请换颐年卡再刷",
                                "不是颐年卡：卡的类型或密钥不是本系统的（外来卡），未扣款"},
    [YN_REASON_OTHER_CARD] = {"other_card", "这是别的卡，不是颐年卡，请换颐年卡再刷",
                              "不是颐年卡：卡里只有其他应用（如公交、门禁），没有颐年卡应用"},
};

const char *yn_reason_kind(enum yn_reason r)
{
    return (unsigned)r < YN_REASON_COUNT ? texts[r].kind : "请联系工作人员";
}

const char *yn_reason_staff(enum yn_reason r)
{
    return (unsigned)r < YN_REASON_COUNT ? texts[r].staff : "unknown reason";
}

const char *yn_reason_code(enum yn_reason r)
{
    return (unsigned)r < YN_REASON_COUNT ? texts[r].code : "unknown";
}
