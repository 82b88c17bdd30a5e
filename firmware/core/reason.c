/* reason.c — texts for enum yn_reason: a kind sentence for seniors, an exact
 * Chinese line for staff (both on screen), an English line for the log, and a
 * stable code for records. */
#include "reason.h"

struct reason_text {
    const char *code;  /* stable, for records, CSV and clip names */
    const char *kind;  /* the senior's sentence, shown large and spoken */
    const char *staff; /* what staff see under it: what happened, what to do */
    const char *log;   /* the same for technicians, in the log */
};

static const struct reason_text texts[YN_REASON_COUNT] = {
    [YN_REASON_NONE] = {.code = "none", .kind = "祝您用餐愉快", .staff = "正常", .log = "ok"},
    [YN_REASON_EXPIRED] = {.code = "expired",
                           .kind = "您的卡已过有效期，请到社区服务中心换卡",
                           .staff = "卡已过有效期：请长者到发卡点换卡",
                           .log = "card expired: send the holder to the issuing office"},
    [YN_REASON_NOT_ELIGIBLE] = {.code = "not_eligible",
                                .kind = "本餐暂无补贴，请按原价付款",
                                .staff = "持卡人不属于本政策的任何补贴类别",
                                .log = "holder is in no subsidised category of this policy"},
    [YN_REASON_NO_PERIOD] = {.code = "no_period",
                             .kind = "现在不是补贴用餐时间",
                             .staff = "现在没有开放的补贴餐次（时间、星期或节假日）",
                             .log = "no subsidised meal period is open now"},
    [YN_REASON_PERIOD_USED] = {.code = "period_used",
                               .kind = "本餐已享受补贴",
                               .staff = "本餐次的补贴已用过",
                               .log = "subsidy already used in this meal period"},
    [YN_REASON_DAY_USED] = {.code = "day_used",
                            .kind = "今天的补贴已经用过了",
                            .staff = "今天的补贴次数已用完",
                            .log = "daily subsidy already used"},
    [YN_REASON_MONTH_USED] = {.code = "month_used",
                              .kind = "本月补贴次数已用完",
                              .staff = "本月补贴次数已达上限",
                              .log = "monthly number of subsidised meals reached"},
    [YN_REASON_MONTH_CAP] = {.code = "month_cap",
                             .kind = "本月补贴额度已用完",
                             .staff = "本月补贴金额已达上限",
                             .log = "monthly subsidy cap reached"},
    [YN_REASON_OUTSIDE_AREA] =
        {.code = "outside_area",
         .kind = "本餐厅不在您的补贴范围内，请在户籍所在区用餐",
         .staff = "本餐厅不在持卡人户籍所在的区或街道，本政策在此不补贴",
         .log = "canteen is outside the holder's district/street for this policy"},
    [YN_REASON_BELOW_MIN_PRICE] = {.code = "below_min_price",
                                   .kind = "本餐价格未达到补贴标准",
                                   .staff = "餐价低于本政策的补贴最低价",
                                   .log = "meal price is below the policy's minimum for a subsidy"},
    [YN_REASON_INSUFFICIENT] = {.code = "insufficient",
                                .kind = "卡内余额不足，请充值或付现金",
                                .staff = "卡内余额不足，且本政策不收现金",
                                .log = "wallet balance too low and cash is not accepted"},
    [YN_REASON_LOST] =
        {.code = "lost",
         .kind = "这张卡已挂失，请联系工作人员",
         .staff = "此卡已挂失（在黑名单上）：请收下此卡，并联系社区服务中心",
         .log = "card is on the blacklist (reported lost): keep the card, call the office"},
    [YN_REASON_TOO_SOON] = {.code = "too_soon",
                            .kind = "刚刚已经刷过卡了，请勿重复刷卡",
                            .staff = "同一张卡刚刚扣过款（在最短间隔内），未再扣款",
                            .log = "same card debited within the minimum interval"},
    [YN_REASON_STORAGE] =
        {.code = "storage",
         .kind = "系统忙，请稍候再试",
         .staff = "账本无法写入（存储已满、只读或被占用），未扣款：请联系技术人员",
         .log = "ledger could not commit (disk full, read-only or locked): run yinian-diag"},
    [YN_REASON_NOT_GENUINE] =
        {.code = "not_genuine",
         .kind = "这张卡无法使用，请联系工作人员",
         .staff = "卡片验证失败（签名或卡密钥不符，可能是伪造或复制的卡）：请收下此卡",
         .log = "card failed signature or key authentication (forged or cloned)"},
    [YN_REASON_READ_FAILED] = {.code = "read_failed",
                               .kind = "没有读到卡，请重新刷卡",
                               .staff = "读卡失败，未扣款：请长者把卡放稳后重新刷卡",
                               .log = "card read failed: ask the diner to tap again"},
    [YN_REASON_WEIGHT] = {.code = "weight",
                          .kind = "称重未稳定，请放稳餐盘后重新刷卡",
                          .staff = "电子秤没有给出可信的重量，未扣款",
                          .log = "weighed meal refused, nothing charged: the scale gave no "
                                 "trustworthy weight (not settled in time, zero or negative, "
                                 "over range or above max_weight_g, or not answering)"},
    [YN_REASON_CLOCK] = {.code = "clock",
                         .kind = "系统时间有误，暂时不能刷卡，请联系工作人员",
                         .staff = "系统时钟有误，未扣款：请接通网络自动对时，或请技术人员校准时钟",
                         .log = "nothing charged: the system clock is before the ledger's last "
                                "record and the server's time is not known: connect the network "
                                "(sync sets the time) or set the clock"},
    [YN_REASON_BLANK_CARD] = {.code = "blank_card",
                              .kind = "这张卡还没有开通，请到社区服务中心办理",
                              .staff =
                                  "空白卡：卡里还没有颐年卡资料（未发卡），请持卡人到发卡点办卡",
                              .log = "blank card: never issued (no application / no record)"},
    [YN_REASON_FOREIGN_CARD] = {.code = "foreign_card",
                                .kind = "这不是颐年卡，请换颐年卡再刷",
                                .staff = "不是颐年卡：卡的类型或密钥不是本系统的（外来卡），未扣款",
                                .log = "foreign card: its type or keys are not ours"},
    [YN_REASON_OTHER_CARD] = {.code = "other_card",
                              .kind = "这是别的卡，不是颐年卡，请换颐年卡再刷",
                              .staff =
                                  "不是颐年卡：卡里只有其他应用（如公交、门禁），没有颐年卡应用",
                              .log = "a DESFire with other applications only, none of ours"},
    [YN_REASON_NOT_ENROLLED] =
        {.code = "not_enrolled",
         .kind = "这张卡还没有登记，请到社区服务中心登记",
         .staff = "不是颐年卡，名册里也没有登记这张卡：请长者带卡和身份证到发卡点登记，未扣款",
         .log = "not a 颐年卡 and its identifier is bound to no card in the roster"},
    [YN_REASON_RANDOM_UID] =
        {.code = "random_uid",
         .kind = "这张卡无法识别，请换颐年卡或已登记的卡再刷",
         .staff = "这张卡每次刷卡号码都会变（如手机、部分银行卡），不能作为身份卡登记，未扣款",
         .log = "random UID (08 xx xx xx, or another UID at each activation): no identity"},
    [YN_REASON_MANUAL_CAP] =
        {.code = "manual_cap",
         .kind = "今天人工登记的名额已用完，请下次带卡来",
         .staff = "本终端今天的忘带卡人工登记已达政策规定的上限，未扣款",
         .log = "this terminal's manual meals (forgot the card) of the day reached the policy's "
                "per_terminal_day"},
};

const char *yn_reason_kind(enum yn_reason r)
{
    return (unsigned)r < YN_REASON_COUNT ? texts[r].kind : "请联系工作人员";
}

const char *yn_reason_staff(enum yn_reason r)
{
    return (unsigned)r < YN_REASON_COUNT ? texts[r].staff : "未知原因";
}

const char *yn_reason_log(enum yn_reason r)
{
    return (unsigned)r < YN_REASON_COUNT ? texts[r].log : "unknown reason";
}

const char *yn_reason_code(enum yn_reason r)
{
    return (unsigned)r < YN_REASON_COUNT ? texts[r].code : "unknown";
}
