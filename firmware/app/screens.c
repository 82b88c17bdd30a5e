/* screens.c — the terminal's screens composed from plain data (screens.h). */
#include "screens.h"

#include <stdio.h>
#include <string.h>

#include "money.h"

/* A status as staff read it. Technicians get yn_strerror() in the log. */
const char *yn_screens_status_text(int rc)
{
    switch (rc) {
    case YN_OK:
        return "正常";
    case YN_ETIMEDOUT:
        return "设备没有应答：请检查电缆、电源和通信设置（波特率、从站地址）";
    case YN_ENODEV:
        return "设备没有连接：请检查电缆和电源";
    case YN_ENOTSUP:
        return "此设备不支持这个操作";
    case YN_EPROTO:
        return "设备的应答无效：请检查通信设置";
    case YN_ECRC:
        return "通信受到干扰（校验错误）：请检查电缆、屏蔽、接地和终端电阻";
    case YN_EDEV_FUNCTION:
        return "设备拒绝了请求（异常码 01 非法功能）：请对照设备说明书检查寄存器表";
    case YN_EDEV_ADDRESS:
        return "设备拒绝了请求（异常码 02 非法数据地址）：请对照设备说明书检查寄存器表";
    case YN_EDEV_VALUE:
        return "设备拒绝了请求（异常码 03 非法数据值）：请对照设备说明书检查设置";
    case YN_EDEV_FAILURE:
        return "设备报告内部故障（异常码 04）：请检修或更换设备";
    case YN_EDEV_BUSY:
        return "设备正忙（异常码 06）：请稍后再试";
    case YN_EDEV_EXCEPTION:
        return "设备报告异常：请对照设备说明书检查";
    case YN_ENOSPC:
        return "存储空间已满：请联系技术人员";
    case YN_EROFS:
        return "存储变为只读：请联系技术人员";
    case YN_EBUSY:
        return "账本正被占用：请稍后再试";
    case YN_ECORRUPT:
        return "数据校验失败：请停止使用并联系技术人员";
    case YN_EIO:
        return "读写出错：请联系技术人员";
    case YN_ENOMEM:
        return "内存不足：请重启终端";
    default:
        return "内部错误：请联系技术人员";
    }
}

void yn_screens_footer(yn_screen *s, const yn_screens_ctx *c)
{
    size_t len = sizeof s->footer;
    int n = snprintf(s->footer, len, "终端" YN_NB "%s", c->terminal_id);
    if (c->operator_id && c->operator_id[0] && n > 0 && (size_t)n < len)
        n += snprintf(s->footer + n, len - (size_t)n, "  操作员" YN_NB "%s", c->operator_id);
    if (n <= 0 || (size_t)n >= len)
        return;
    if (c->unsent > 0)
        snprintf(s->footer + n, len - (size_t)n,
                 "  待上传" YN_NB "%lld" YN_NB "条（最早" YN_NB "%lld" YN_NB "分钟前）",
                 (long long)c->unsent, (long long)(c->unsent_age_s / 60));
    else if (c->unsent == 0)
        snprintf(s->footer + n, len - (size_t)n, "  记录已全部上传");
}

static const char *period_name(const yn_screens_ctx *c, const char *id)
{
    return yn_policy_display(c->policy, YN_POLICY_PERIOD, id);
}

void yn_screens_idle(yn_screen *s, const yn_screens_ctx *c, const yn_idle_view *v)
{
    char price[32];
    yn_screen_init(s, YN_SCREEN_IDLE, v->kiosk ? "kiosk_idle" : "idle", v->canteen);
    if (v->clock_unknown)
        yn_screen_add(s, YN_TEXT_NORMAL, "时钟有误，暂停刷卡：请接通网络对时或校准时钟  %s",
                      v->online);
    else
        yn_screen_add(s, YN_TEXT_NORMAL, "%d-%02d-%02d %02d:%02d%s  %s", v->local_ymd / 10000,
                      v->local_ymd / 100 % 100, v->local_ymd % 100, v->seconds_of_day / 3600,
                      v->seconds_of_day / 60 % 60,
                      v->clock_estimated ? "（时钟跳变，按估算时间）" : "", v->online);
    if (v->kiosk) {
        yn_screen_add(s, YN_TEXT_HUGE, "请刷卡查询余额");
        yn_screen_add(s, YN_TEXT_NORMAL, "可查本月和今天还剩多少补贴、卡内余额和最近用餐");
    } else {
        if (v->period[0])
            yn_screen_add(s, YN_TEXT_NORMAL, "%s补贴时段", period_name(c, v->period));
        else
            yn_screen_add(s, YN_TEXT_NORMAL, "现在不是补贴用餐时间，按原价收费");
        yn_fen_format(v->weighed ? v->per100g_fen : v->price_fen, price, sizeof price);
        if (v->weighed) {
            yn_screen_add(s, YN_TEXT_LARGE, "称重计价 %s/100克", price);
            yn_screen_add(s, YN_TEXT_HUGE, "请放好餐盘后刷卡");
        } else {
            yn_screen_add(s, YN_TEXT_LARGE, "本餐价格 %s", price);
            yn_screen_add(s, YN_TEXT_HUGE, "请刷卡");
        }
    }
    if (v->demo_cards > 0)
        yn_screen_add(s, YN_TEXT_NORMAL, "演示：按 a 到 %c 刷 %d 张演示卡，x 拿走卡，q 退出",
                      'a' + (v->demo_cards > 26 ? 25 : v->demo_cards - 1), v->demo_cards);
    yn_screens_footer(s, c);
}

void yn_screens_price_entry(yn_screen *s, bool weighed, const char *text)
{
    yn_screen_init(s, YN_SCREEN_PROMPT, "price", weighed ? "输入每100克价格" : "输入本餐价格");
    yn_screen_add(s, YN_TEXT_HUGE, "¥%s_", text);
    yn_screen_add(s, YN_TEXT_NORMAL, "确认键 保存   取消键 放弃");
}

void yn_screens_price_invalid(yn_screen *s, bool weighed)
{
    yn_screen_init(s, YN_SCREEN_ERROR, "price_invalid", "价格无效");
    yn_screen_add(s, YN_TEXT_LARGE, "%s",
                  weighed ? "请输入每100克 0.01 到 1000 元，最多两位小数"
                          : "请输入 0 到 1000 元，最多两位小数");
}

static void refusal(yn_screen *s, const yn_tap_outcome *o, const char *staff_note)
{
    yn_screen_init(s, YN_SCREEN_REFUSED, "refused", "未能扣款");
    snprintf(s->name, sizeof s->name, "refused_%s", yn_reason_code(o->reason));
    yn_screen_add(s, YN_TEXT_HUGE, "%s", yn_reason_kind(o->reason));
    yn_screen_add(s, YN_TEXT_NORMAL, "工作人员：%s%s%s", yn_reason_staff(o->reason),
                  staff_note ? "。" : "", staff_note ? staff_note : "");
    if (o->card_ok)
        yn_screen_add(s, YN_TEXT_NORMAL, "卡号" YN_NB "%s", o->card.card_no);
    if (o->ident[0]) /* what the issuing desk binds, for an unknown card */
        yn_screen_add(s, YN_TEXT_NORMAL, "卡识别号" YN_NB "%s", o->ident);
}

/* How the holder was known, when not by reading the 颐年卡 (staff line). */
static void identified_line(yn_screen *s, const yn_screens_ctx *c, const yn_tap_outcome *o)
{
    if (o->by == YN_LEDGER_BY_IDENT)
        yn_screen_add(s, YN_TEXT_NORMAL, "身份识别卡" YN_NB "%s：卡上不写用餐标记", o->ident);
    else if (o->by == YN_LEDGER_BY_MANUAL)
        yn_screen_add(s, YN_TEXT_NORMAL, "忘带卡人工登记  操作员" YN_NB "%s  主管" YN_NB "%s",
                      c->operator_id && c->operator_id[0] ? c->operator_id : "无",
                      o->supervisor_id);
}

void yn_screens_tap(yn_screen *s, const yn_screens_ctx *c, const yn_tap_outcome *o,
                    const yn_meal *meal, const char *staff_note)
{
    char a[32], b[32], cc[32];
    const yn_decision *d = &o->result.decision;
    if (!o->charged) {
        refusal(s, o, staff_note);
        yn_screens_footer(s, c);
        return;
    }
    bool subsidised = d->subsidy_fen > 0;
    yn_screen_init(s, YN_SCREEN_OK, subsidised ? "ok" : "ok_full_price",
                   subsidised ? "成功" : "请按原价付款");
    /* the 流水号 first: staff key it in for a 冲正 */
    char who[64] = "";
    if (o->card_ok)
        snprintf(who, sizeof who, "   卡号" YN_NB "%s", o->card.card_no);
    yn_screen_add(s, YN_TEXT_NORMAL, "流水号" YN_NB "%lld%s", (long long)o->result.seq, who);
    if (meal && meal->weight_g > 0) {
        yn_fen_format(meal->price_per_100g_fen, a, sizeof a);
        yn_fen_format(d->price_fen, b, sizeof b);
        yn_screen_add(s, YN_TEXT_LARGE, "重量" YN_NB "%d" YN_NB "克  %s/100克  计" YN_NB "%s",
                      (int)meal->weight_g, a, b);
    }
    if (subsidised) {
        yn_fen_format(d->subsidy_fen, a, sizeof a);
        yn_screen_add(s, YN_TEXT_HUGE, "补贴 %s", a);
    } else {
        yn_screen_add(s, YN_TEXT_LARGE, "%s", yn_reason_kind(d->reason));
    }
    yn_fen_format(d->wallet_fen, a, sizeof a);
    yn_fen_format(d->cash_fen, b, sizeof b);
    yn_fen_format(o->result.wallet_after_fen, cc, sizeof cc);
    if (d->cash_fen > 0)
        yn_screen_add(s, YN_TEXT_HUGE, "请付现金 %s", b);
    if (d->wallet_fen > 0)
        yn_screen_add(s, YN_TEXT_LARGE, "卡内扣 %s  余额 %s", a, cc);
    else
        yn_screen_add(s, YN_TEXT_NORMAL, "卡内余额 %s", cc);
    if (o->status == YN_EDUPLICATE && o->unshown_utc_s && c->policy) {
        /* the tap a crash kept from being shown, shown now: when it was */
        yn_moment at;
        yn_policy_locate(c->policy, o->unshown_utc_s, &at);
        yn_screen_add(s, YN_TEXT_NORMAL,
                      "这是" YN_NB "%d月%d日" YN_NB "%02d:%02d" YN_NB "那次刷卡的结果，未重复扣款",
                      (int)(at.local_ymd / 100 % 100), (int)(at.local_ymd % 100),
                      at.seconds_of_day / 3600, at.seconds_of_day / 60 % 60);
    } else if (o->status == YN_EDUPLICATE) {
        yn_screen_add(s, YN_TEXT_NORMAL, "同一次刷卡，未重复扣款");
    }
    if (o->stamp == YN_TAP_STAMP_MISSING || o->stamp == YN_TAP_STAMP_UNNOTED)
        yn_screen_add(s, YN_TEXT_NORMAL, "工作人员：卡片未写入用餐标记，已登记，下次刷卡时补写");
    identified_line(s, c, o);
    yn_screens_footer(s, c);
}

/* "还可补贴 N 餐": limit minus used, never below 0. */
static int32_t left(int32_t limit, int32_t used)
{
    return limit > used ? limit - used : 0;
}

void yn_screens_balance(yn_screen *s, const yn_screens_ctx *c, const yn_balance_view *v)
{
    const yn_ledger_account *acc = v->acc;
    const yn_policy_limit *lim = &v->limits;
    char a[32], b[32];
    yn_screen_init(s, YN_SCREEN_INFO, "balance", "余额查询");
    /* what the senior asks first: how much subsidy is left, this month and today */
    if (lim->month_cap_fen > 0) {
        yn_fen_format(lim->month_cap_fen > acc->subsidy_month_fen
                          ? lim->month_cap_fen - acc->subsidy_month_fen
                          : 0,
                      a, sizeof a);
        yn_screen_add(s, YN_TEXT_HUGE, "本月补贴还剩 %s", a);
    } else if (lim->per_month > 0) {
        yn_screen_add(s, YN_TEXT_HUGE, "本月还可补贴 %d" YN_NB "餐",
                      left(lim->per_month, acc->meals_month));
    } else {
        yn_screen_add(s, YN_TEXT_LARGE, "本月补贴不限次数");
    }
    if (lim->day_max > 0)
        yn_screen_add(s, YN_TEXT_LARGE, "今天还可补贴 %d" YN_NB "餐",
                      left(lim->day_max, acc->meals_day));
    yn_fen_format(acc->subsidy_month_fen, a, sizeof a);
    yn_fen_format(acc->subsidy_day_fen, b, sizeof b);
    char more[64] = "";
    if (lim->month_cap_fen > 0 && lim->per_month > 0)
        snprintf(more, sizeof more, "，还可补贴" YN_NB "%d" YN_NB "餐",
                 left(lim->per_month, acc->meals_month));
    yn_screen_add(s, YN_TEXT_NORMAL,
                  "本月已补贴" YN_NB "%d" YN_NB "餐 共 %s%s；今天" YN_NB "%d" YN_NB "餐 %s",
                  acc->meals_month, a, more, acc->meals_day, b);
    yn_fen_format(acc->wallet_fen, a, sizeof a);
    yn_screen_add(s, YN_TEXT_LARGE, "卡内余额 %s", a);
    for (int i = 0; i < acc->n_last && i < YN_SCREENS_KIOSK_MEALS; i++) {
        const yn_ledger_meal_line *m = &acc->last[i];
        yn_fen_format(m->subsidy_fen, a, sizeof a);
        yn_fen_format(m->paid_fen, b, sizeof b);
        yn_screen_add(s, YN_TEXT_NORMAL, "%d月%d日 %s  补贴 %s  自付 %s%s",
                      m->local_ymd / 100 % 100, m->local_ymd % 100, period_name(c, m->period), a, b,
                      m->reversed ? "（已冲正）" : "");
    }
    yn_screens_footer(s, c);
}

void yn_screens_balance_failed(yn_screen *s, int rc)
{
    yn_screen_init(s, YN_SCREEN_ERROR, "balance_failed", "暂时无法查询");
    yn_screen_add(s, YN_TEXT_HUGE, "%s", yn_reason_kind(YN_REASON_STORAGE));
    yn_screen_add(s, YN_TEXT_NORMAL, "工作人员：账本读取失败。%s", yn_screens_status_text(rc));
}

void yn_screens_note(yn_screen *s, enum yn_note note, const yn_note_arg *a)
{
    static const struct {
        enum yn_screen_kind kind;
        const char *name, *title;
    } notes[YN_NOTE_COUNT] = {
        [YN_NOTE_WEIGHED_NO_SCALE] = {YN_SCREEN_ERROR, "weighed_unavailable", "未配置称重"},
        [YN_NOTE_WEIGHED_NO_PRICE] = {YN_SCREEN_ERROR, "weighed_no_price", "未配置称重"},
        [YN_NOTE_TARED] = {YN_SCREEN_INFO, "tared", "已去皮"},
        [YN_NOTE_TARE_FAILED] = {YN_SCREEN_ERROR, "tare_failed", "去皮失败"},
        [YN_NOTE_STAFF_LOCKED] = {YN_SCREEN_ERROR, "staff_locked", "管理功能已锁定"},
        [YN_NOTE_PIN_WRONG] = {YN_SCREEN_ERROR, "pin_wrong", "工号或密码错误"},
        [YN_NOTE_NOT_SUPERVISOR] = {YN_SCREEN_ERROR, "not_supervisor", "需要主管授权"},
        [YN_NOTE_SETTLE_FAILED] = {YN_SCREEN_ERROR, "settle_failed", "日结失败"},
        [YN_NOTE_LOGGED_OUT] = {YN_SCREEN_INFO, "logged_out", "已退出登录"},
        [YN_NOTE_DEMO_NO_CARD] = {YN_SCREEN_INFO, "demo_no_card", "没有这张演示卡"},
        [YN_NOTE_CARD_ON_READER] = {YN_SCREEN_INFO, "card_on_reader", "请先拿开卡片"},
        [YN_NOTE_MANUAL_FAILED] = {YN_SCREEN_ERROR, "manual_failed", "人工登记失败"},
        [YN_NOTE_MANUAL_OFF] = {YN_SCREEN_ERROR, "manual_off", "不能人工登记"},
        [YN_NOTE_MANUAL_CAP] = {YN_SCREEN_ERROR, "manual_cap", "今天人工登记已满"},
        [YN_NOTE_MANUAL_NOT_FOUND] = {YN_SCREEN_ERROR, "manual_not_found", "名册中没有找到"},
        [YN_NOTE_MANUAL_MANY] = {YN_SCREEN_ERROR, "manual_many", "找到不止一位长者"},
        [YN_NOTE_MANUAL_SAME_PERSON] = {YN_SCREEN_ERROR, "manual_same_person",
                                        "需要另一位主管授权"},
        [YN_NOTE_MANUAL_NOT_SUPERVISOR] = {YN_SCREEN_ERROR, "manual_not_supervisor",
                                           "需要主管授权"},
    };
    static const yn_note_arg none = {0};
    if (!a)
        a = &none;
    if ((int)note < 0 || note >= YN_NOTE_COUNT)
        note = YN_NOTE_LOGGED_OUT; /* cannot happen: every note is in the table */
    yn_screen_init(s, notes[note].kind, notes[note].name, notes[note].title);
    switch (note) {
    case YN_NOTE_WEIGHED_NO_SCALE:
        yn_screen_add(s, YN_TEXT_LARGE, "没有配置电子秤：请技术人员在设置中接入电子秤");
        break;
    case YN_NOTE_WEIGHED_NO_PRICE:
        yn_screen_add(s, YN_TEXT_LARGE, "没有设定每100克单价：请技术人员在设置中填写");
        break;
    case YN_NOTE_TARED:
        yn_screen_add(s, YN_TEXT_LARGE, "请放上餐食后刷卡");
        break;
    case YN_NOTE_TARE_FAILED:
    case YN_NOTE_SETTLE_FAILED:
    case YN_NOTE_MANUAL_FAILED:
        yn_screen_add(s, YN_TEXT_LARGE, "%s", yn_screens_status_text(a->rc));
        break;
    case YN_NOTE_STAFF_LOCKED:
        yn_screen_add(s, YN_TEXT_LARGE, "密码错误次数过多，请" YN_NB "%lld" YN_NB "秒后再试",
                      (long long)a->n);
        break;
    case YN_NOTE_PIN_WRONG:
        yn_screen_add(s, YN_TEXT_LARGE, "还可以再试" YN_NB "%lld" YN_NB "次", (long long)a->n);
        break;
    case YN_NOTE_NOT_SUPERVISOR:
        yn_screen_add(s, YN_TEXT_LARGE, "工号" YN_NB "%s 不是主管，不能冲正",
                      a->text ? a->text : "");
        break;
    case YN_NOTE_LOGGED_OUT:
        yn_screen_add(s, YN_TEXT_LARGE, "请刷卡");
        break;
    case YN_NOTE_DEMO_NO_CARD:
        if (a->n > 0)
            yn_screen_add(s, YN_TEXT_LARGE, "演示卡只有 a 到 %c 共" YN_NB "%lld" YN_NB "张",
                          'a' + (int)(a->n > 26 ? 25 : a->n - 1), (long long)a->n);
        else
            yn_screen_add(s, YN_TEXT_LARGE, "没有演示卡");
        break;
    case YN_NOTE_CARD_ON_READER:
        yn_screen_add(s, YN_TEXT_LARGE, "读卡器上已有卡片，请拿开后再刷卡");
        break;
    case YN_NOTE_MANUAL_OFF:
        yn_screen_add(s, YN_TEXT_LARGE, "本区补贴政策不允许忘带卡人工登记：请长者带卡用餐");
        break;
    case YN_NOTE_MANUAL_CAP:
        yn_screen_add(s, YN_TEXT_LARGE,
                      "本终端今天已人工登记" YN_NB "%lld" YN_NB "餐，政策上限" YN_NB "%lld" YN_NB
                      "餐",
                      (long long)a->n, (long long)a->of);
        break;
    case YN_NOTE_MANUAL_NOT_FOUND:
        yn_screen_add(s, YN_TEXT_LARGE, "没有这个卡号尾号和出生日期的长者：请核对后重输");
        break;
    case YN_NOTE_MANUAL_MANY:
        yn_screen_add(s, YN_TEXT_LARGE, "请多输入几位卡号再查找");
        break;
    case YN_NOTE_MANUAL_SAME_PERSON:
        yn_screen_add(s, YN_TEXT_LARGE, "工号" YN_NB "%s 已登录操作，不能再为自己授权",
                      a->text ? a->text : "");
        break;
    case YN_NOTE_MANUAL_NOT_SUPERVISOR:
        yn_screen_add(s, YN_TEXT_LARGE, "工号" YN_NB "%s 不是主管，不能授权忘带卡登记",
                      a->text ? a->text : "");
        break;
    default:
        break;
    }
}

void yn_screens_menu(yn_screen *s, bool manual)
{
    yn_screen_init(s, YN_SCREEN_PROMPT, manual ? "staff_menu_manual" : "staff_menu", "管理菜单");
    yn_screen_add(s, YN_TEXT_LARGE, "1 冲正");
    yn_screen_add(s, YN_TEXT_LARGE, "2 日结");
    yn_screen_add(s, YN_TEXT_LARGE, "3 退出登录");
    if (manual)
        yn_screen_add(s, YN_TEXT_LARGE, "4 忘带卡登记");
    yn_screen_add(s, YN_TEXT_NORMAL, "取消键 返回");
}

void yn_screens_entry(yn_screen *s, enum yn_entry_kind kind, const char *id, const char *keyed)
{
    static const char *const names[] = {"staff_id",         "staff_pin",   "super_id",
                                        "super_pin",        "reverse_seq", "manual_super_id",
                                        "manual_super_pin", "manual_tail", "manual_birth"};
    static const char *const titles[] = {
        "工作人员登录",        "工作人员登录",        "冲正 主管授权", "冲正 主管授权", "冲正",
        "忘带卡登记 主管授权", "忘带卡登记 主管授权", "忘带卡登记",    "忘带卡登记"};
    bool super = kind == YN_ENTRY_SUPER_ID || kind == YN_ENTRY_SUPER_PIN ||
                 kind == YN_ENTRY_MANUAL_SUPER_ID || kind == YN_ENTRY_MANUAL_SUPER_PIN;
    char masked[32];
    size_t n = strlen(keyed) < sizeof masked - 1 ? strlen(keyed) : sizeof masked - 1;
    memset(masked, '*', n);
    masked[n] = '\0';
    yn_screen_init(s, YN_SCREEN_PROMPT, names[kind], titles[kind]);
    switch (kind) {
    case YN_ENTRY_LOGIN_ID:
    case YN_ENTRY_SUPER_ID:
    case YN_ENTRY_MANUAL_SUPER_ID:
        yn_screen_add(s, YN_TEXT_HUGE, "%s %s_", super ? "主管工号" : "工号", keyed);
        if (kind == YN_ENTRY_MANUAL_SUPER_ID)
            yn_screen_add(s, YN_TEXT_NORMAL, "长者忘带卡时由另一位主管授权，按名册查找");
        break;
    case YN_ENTRY_LOGIN_PIN:
    case YN_ENTRY_SUPER_PIN:
    case YN_ENTRY_MANUAL_SUPER_PIN:
        yn_screen_add(s, YN_TEXT_NORMAL, "工号" YN_NB "%s", id);
        yn_screen_add(s, YN_TEXT_HUGE, "密码 %s_", masked);
        break;
    case YN_ENTRY_REVERSE_SEQ:
        yn_screen_add(s, YN_TEXT_HUGE, "流水号 %s_", keyed);
        yn_screen_add(s, YN_TEXT_NORMAL, "输入成功画面上的流水号");
        break;
    case YN_ENTRY_MANUAL_TAIL:
        yn_screen_add(s, YN_TEXT_HUGE, "卡号后几位 %s_", keyed);
        yn_screen_add(s, YN_TEXT_NORMAL, "请长者说出卡号的最后" YN_NB "%d" YN_NB "位或更多",
                      YN_MANUAL_TAIL_MIN);
        break;
    case YN_ENTRY_MANUAL_BIRTH:
        yn_screen_add(s, YN_TEXT_HUGE, "出生日期 %s_", keyed);
        yn_screen_add(s, YN_TEXT_NORMAL, "八位数字，例如" YN_NB "19450312");
        break;
    }
    yn_screen_add(s, YN_TEXT_NORMAL, "确认键 继续   取消键 返回");
}

void yn_screens_manual_confirm(yn_screen *s, const yn_screens_ctx *c, const yn_manual_view *v)
{
    const yn_card_facts *f = v->card;
    yn_screen_init(s, YN_SCREEN_PROMPT, "manual_confirm", "忘带卡登记 请核对");
    yn_screen_add(s, YN_TEXT_LARGE, "卡号" YN_NB "%s", f->card_no);
    yn_screen_add(s, YN_TEXT_NORMAL, "出生日期" YN_NB "%d-%02d-%02d", (int)(f->birth_ymd / 10000),
                  (int)(f->birth_ymd / 100 % 100), (int)(f->birth_ymd % 100));
    char flags[160] = "";
    int w = 0;
    for (uint32_t bit = 1; bit && bit <= YN_FLAG_DISABLED_MODERATE; bit <<= 1)
        if ((f->flags & bit) && yn_flag_name(bit))
            w += snprintf(flags + w, sizeof flags - (size_t)w, "%s%s", w ? "、" : "",
                          yn_policy_display(c->policy, YN_POLICY_CATEGORY, yn_flag_name(bit)));
    yn_screen_add(s, YN_TEXT_NORMAL, "名册类别：%s", w ? flags : "无");
    yn_screen_add(s, YN_TEXT_HUGE, "按确认键登记用餐");
    yn_screen_add(s, YN_TEXT_NORMAL,
                  "主管" YN_NB "%s 已授权  本终端今天已人工登记" YN_NB "%d" YN_NB "餐，上限" YN_NB
                  "%d" YN_NB "餐",
                  v->supervisor_id, (int)v->used_today, (int)v->per_day);
    yn_screen_add(s, YN_TEXT_NORMAL, "取消键 返回");
    yn_screens_footer(s, c);
}

void yn_screens_reversed(yn_screen *s, int64_t seq, const char *card_no,
                         const yn_ledger_result *res)
{
    char a[32], b[32];
    yn_screen_init(s, YN_SCREEN_OK, "reversed", "冲正成功");
    yn_screen_add(s, YN_TEXT_LARGE, "流水号" YN_NB "%lld 已冲正", (long long)seq);
    yn_screen_add(s, YN_TEXT_NORMAL, "卡号" YN_NB "%s  冲正流水号" YN_NB "%lld", card_no,
                  (long long)res->seq);
    yn_fen_format(-res->decision.subsidy_fen, a, sizeof a);
    yn_screen_add(s, YN_TEXT_NORMAL, "补贴退回 %s", a);
    yn_fen_format(-res->decision.wallet_fen, a, sizeof a);
    yn_fen_format(res->wallet_after_fen, b, sizeof b);
    yn_screen_add(s, YN_TEXT_LARGE, "退回卡内 %s", a);
    yn_fen_format(-res->decision.cash_fen, a, sizeof a);
    yn_screen_add(s, YN_TEXT_LARGE, "退还现金 %s", a);
    yn_screen_add(s, YN_TEXT_NORMAL, "卡内余额 %s", b);
}

void yn_screens_reverse_refused(yn_screen *s, int rc, int64_t seq, int64_t earlier_seq,
                                int window_min)
{
    yn_screen_init(s, YN_SCREEN_ERROR, "reverse_refused", "未冲正");
    switch (rc) {
    case YN_ENOTFOUND:
        yn_screen_add(s, YN_TEXT_LARGE, "没有流水号" YN_NB "%lld", (long long)seq);
        break;
    case YN_EDUPLICATE:
        yn_screen_add(s, YN_TEXT_LARGE, "流水号" YN_NB "%lld 已经冲正过", (long long)seq);
        yn_screen_add(s, YN_TEXT_NORMAL, "冲正流水号" YN_NB "%lld", (long long)earlier_seq);
        break;
    case YN_EREFUSED:
        yn_screen_add(s, YN_TEXT_LARGE, "流水号" YN_NB "%lld 不能冲正", (long long)seq);
        yn_screen_add(s, YN_TEXT_NORMAL, "不是餐费记录，或已超过冲正时限（%d" YN_NB "分钟）",
                      window_min);
        break;
    default:
        yn_screen_add(s, YN_TEXT_LARGE, "账本出错，未冲正");
        yn_screen_add(s, YN_TEXT_NORMAL, "%s", yn_screens_status_text(rc));
        break;
    }
}

/* "类别：低保 3 餐、特困 2 餐" — names from the policy, counts or amounts. A
 * list longer than SUM_LINE_BYTES ends with "等 N 项" (the CSV has them all). */
#define SUM_LINE_BYTES 160
static void sum_line(yn_screen *s, const yn_screens_ctx *c, const char *label,
                     enum yn_policy_name kind, const yn_ledger_sum *sums, int n, bool money)
{
    char line[YN_SCREEN_TEXT], item[96];
    int w = snprintf(line, sizeof line, "%s：%s", label, n == 0 ? "无" : "");
    for (int i = 0; i < n; i++) {
        char a[32];
        const char *name = yn_policy_display(c->policy, kind, sums[i].name);
        if (money) {
            yn_fen_format(sums[i].subsidy_fen, a, sizeof a);
            snprintf(item, sizeof item, "%s%s" YN_NB "%s", i ? "、" : "", name, a);
        } else {
            snprintf(item, sizeof item, "%s%s" YN_NB "%lld" YN_NB "餐", i ? "、" : "", name,
                     (long long)sums[i].count);
        }
        if (w + strlen(item) > SUM_LINE_BYTES) {
            snprintf(line + w, sizeof line - (size_t)w, " 等" YN_NB "%d" YN_NB "项", n);
            break;
        }
        w += snprintf(line + w, sizeof line - (size_t)w, "%s", item);
    }
    yn_screen_add(s, YN_TEXT_NORMAL, "%s", line);
}

void yn_screens_settlement(yn_screen *s, const yn_screens_ctx *c, const yn_ledger_settlement *st,
                           const char *csv_name, int csv_rc)
{
    char title[64], a[32], b[32], cc[32];
    snprintf(title, sizeof title, "日结 %d-%02d-%02d", (int)(st->local_ymd / 10000),
             (int)(st->local_ymd / 100 % 100), (int)(st->local_ymd % 100));
    yn_screen_init(s, YN_SCREEN_INFO, "settlement", title);
    yn_fen_format(st->total.price_fen, a, sizeof a);
    yn_screen_add(s, YN_TEXT_LARGE, "%lld" YN_NB "餐  金额 %s", (long long)st->total.count, a);
    yn_fen_format(st->total.subsidy_fen, a, sizeof a);
    yn_fen_format(st->total.wallet_fen, b, sizeof b);
    yn_fen_format(st->total.cash_fen, cc, sizeof cc);
    yn_screen_add(s, YN_TEXT_NORMAL, "补贴 %s  卡内 %s  现金 %s", a, b, cc);
    yn_fen_format(-st->reversals.price_fen, a, sizeof a);
    yn_fen_format(-st->topups.wallet_fen, b, sizeof b);
    yn_fen_format(-st->allocations.wallet_fen, cc, sizeof cc);
    yn_screen_add(s, YN_TEXT_NORMAL, "冲正" YN_NB "%lld" YN_NB "笔 %s  充值 %s  拨款 %s",
                  (long long)-st->reversals.count, a, b, cc);
    sum_line(s, c, "类别", YN_POLICY_CATEGORY, st->categories, st->n_categories, false);
    sum_line(s, c, "餐次", YN_POLICY_PERIOD, st->periods, st->n_periods, false);
    sum_line(s, c, "补贴来源", YN_POLICY_SOURCE, st->sources, st->n_sources, true);
    if (csv_name)
        yn_screen_add(s, YN_TEXT_NORMAL, "日结表已保存：%s", csv_name);
    else
        yn_screen_add(s, YN_TEXT_NORMAL, "日结表未能保存：%s", yn_screens_status_text(csv_rc));
    yn_screens_footer(s, c);
}

void yn_screens_sales_stopped(yn_screen *s, const yn_sales_stop *stop)
{
    long long a = (long long)stop->first_seq, b = (long long)stop->last_seq;
    switch (stop->why) {
    case YN_STOP_LOST:
        yn_screen_init(s, YN_SCREEN_ERROR, "sales_stopped_lost", "账本缺少记录，暂停收款");
        if (a > 0 && b > a)
            yn_screen_add(s, YN_TEXT_LARGE, "缺少第 %lld 至 %lld 条已上传的记录", a, b);
        else if (a > 0)
            yn_screen_add(s, YN_TEXT_LARGE, "缺少第 %lld 条已上传的记录", a);
        if (stop->can_restore) {
            yn_screen_add(s, YN_TEXT_LARGE, "正在从区里恢复，恢复后自动继续收款");
            yn_screen_add(s, YN_TEXT_NORMAL, "请保持网络畅通。长时间未恢复，请联系技术员");
        } else {
            yn_screen_add(s, YN_TEXT_LARGE, "本机未开启同步，无法自动恢复");
            yn_screen_add(s, YN_TEXT_NORMAL, "请联系技术员");
        }
        break;
    case YN_STOP_CONFLICT:
        yn_screen_init(s, YN_SCREEN_ERROR, "sales_stopped_conflict",
                       "账本与区里的记录不一致，已停止收款");
        if (a > 0)
            yn_screen_add(s, YN_TEXT_LARGE, "区里已有第 %lld 条起不同的记录", a);
        yn_screen_add(s, YN_TEXT_LARGE, "请联系技术员");
        break;
    default:
        yn_screen_init(s, YN_SCREEN_ERROR, "sales_stopped_damaged", "账本损坏，已停止收款");
        if (a > 0)
            yn_screen_add(s, YN_TEXT_LARGE, "第 %lld 条记录校验不符", a);
        yn_screen_add(s, YN_TEXT_LARGE, "请联系技术员");
        yn_screen_add(s, YN_TEXT_NORMAL, "请勿删除或复制替换账本文件");
        break;
    }
    yn_screen_add(s, YN_TEXT_NORMAL, "技术员请运行: yinian-diag ledger verify");
}
