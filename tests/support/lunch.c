/* lunch.c — see lunch.h. */
#include "lunch.h"

#include <stdio.h>
#include <string.h>

void yn_test_lunch_meal(yn_ledger_record *x, int card)
{
    int cat = card % 10;
    x->kind = YN_LEDGER_MEAL;
    snprintf(x->card_no, sizeof x->card_no, "4403040%07d", 100000 + card * 37);
    strcpy(x->category, cat < 3 ? "key_group" : cat < 9 ? "age70" : "");
    strcpy(x->period, "lunch");
    x->price_fen = 1500;
    x->subsidy_fen = cat < 3 ? 1500 : cat < 9 ? 500 : 0;
    x->n_layers = x->subsidy_fen ? 1 : 0;
    strcpy(x->layers[0].source, "city");
    x->layers[0].fen = x->subsidy_fen;
    x->wallet_fen = card % 4 == 0 ? x->price_fen - x->subsidy_fen : 0;
    x->cash_fen = x->price_fen - x->subsidy_fen - x->wallet_fen;
    x->reason = x->subsidy_fen ? YN_REASON_NONE : YN_REASON_NOT_ELIGIBLE;
    x->boot_no = 4;
    x->clock_trusted = true;
    strcpy(x->operator_id, "op1");
    x->policy_version = 3;
}
