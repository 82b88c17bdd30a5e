/* fuzz_policy.c — libFuzzer target: any bytes as a policy document. A
 * document that loads must then decide a fixed set of taps without crashing
 * and with the money adding up; one that does not load must say why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const yn_decision *d)
{
    int64_t sum = 0;
    if (d->n_layers < 0 || d->n_layers > YN_POLICY_MAX_LAYERS)
        abort();
    for (int i = 0; i < d->n_layers; i++) {
        if (d->layers[i].fen < 0 || memchr(d->layers[i].source, '\0', YN_NAME_MAX) == NULL)
            abort();
        sum += d->layers[i].fen;
    }
    if (sum != d->subsidy_fen || d->subsidy_fen > d->price_fen || d->wallet_fen < 0 ||
        d->cash_fen < 0)
        abort();
    if (d->allowed && d->subsidy_fen + d->wallet_fen + d->cash_fen != d->price_fen)
        abort();
    if (!d->allowed &&
        (d->reason == YN_REASON_NONE || d->subsidy_fen || d->wallet_fen || d->cash_fen))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    yn_policy *p = NULL;
    char err[256] = "";
    if (yn_policy_load((const char *)data, size, &p, err, sizeof err) != YN_OK) {
        if (p != NULL || strncmp(err, "policy: ", 8) != 0)
            abort();
        return 0;
    }
    static const uint32_t flags[] = {0, YN_FLAG_DIBAO, YN_FLAG_TEKUN | YN_FLAG_SHIDU, 0x7f};
    static const int32_t births[] = {19250312, 19500101, 19600229, 19700101};
    static const uint32_t streets[] = {440304001, 440304002, 440118001, 0};
    static const int64_t moments[] = {1741752000, 1741752000 + 6 * 3600, 1759291200, 0};
    for (int i = 0; i < 4; i++) {
        yn_card_facts card;
        memset(&card, 0, sizeof card);
        memcpy(card.card_no, "4403040000001234", 17);
        card.birth_ymd = births[i];
        card.flags = flags[i];
        card.street = streets[i];
        card.district = streets[i] / 1000;
        card.expiry_ymd = 20301231;
        yn_canteen canteen = {440304, 440304001};
        yn_meal fixed = {1200, 0, 0}, weighed = {0, 333, 250};
        yn_usage usage = {i & 1, i & 2, i, 300 * i};
        yn_moment m;
        yn_decision d;
        yn_policy_locate(p, moments[i], &m);
        if (yn_policy_decide(p, &card, &fixed, &canteen, moments[i], &usage, 100 * i, &d) == YN_OK)
            check(&d);
        if (yn_policy_decide(p, &card, &weighed, &canteen, moments[i], &usage, 0, &d) == YN_OK)
            check(&d);
    }
    (void)yn_policy_id(p);
    (void)yn_policy_version(p);
    (void)yn_policy_reverse_window_s(p);
    yn_policy_free(p);
    return 0;
}
