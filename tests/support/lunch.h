/* lunch.h — a diner's meal at a Shenzhen canteen's lunch, for the benchmarks
 * that need realistic records (2025 shares: key groups ¥15, 70+ ¥5). */
#ifndef YN_TEST_LUNCH_H
#define YN_TEST_LUNCH_H

#include "ledger.h"

/* The meal of card number `card` (0..1999 of a 2,000-card roster): the card
 * fixes its category and whether its holder pays from the wallet. Fills kind,
 * card, category, period, price, shares, layers, reason, boot, clock,
 * operator and policy; seq, terminal, tap id, date, times, the wallet after
 * and the chain are the caller's. */
void yn_test_lunch_meal(yn_ledger_record *x, int card);

#endif
