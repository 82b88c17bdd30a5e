/* fuzz_update.c — libFuzzer target: any bytes as an update body (must be
 * refused without a crash), and any bytes as a payload signed with a known key
 * (reaches the payload parser): a parsed document must be within its limits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "card.h"
#include "update.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t priv[32], pub[32];
    static int ready;
    if (!ready) {
        for (int i = 0; i < 32; i++)
            priv[i] = (uint8_t)(i * 7 + 1);
        if (yn_card_public_key(priv, pub) != YN_OK)
            abort();
        ready = 1;
    }
    yn_update u;
    char err[256];
    if (yn_update_parse((const char *)data, size, pub, "T1", 0, &u, err, sizeof err) == YN_OK)
        yn_update_free(&u); /* only a forged signature could get here */
    char *body = NULL;
    size_t len = 0;
    if (yn_update_sign((const char *)data, size, priv, &body, &len) != YN_OK)
        abort();
    int rc = yn_update_parse(body, len, pub, "T1", 3, &u, err, sizeof err);
    free(body);
    if (rc == YN_OK) {
        if (u.version <= 3 || strcmp(u.terminal, "T1") != 0 || u.n_cards > YN_UPDATE_MAX_ITEMS)
            abort();
        for (size_t i = 1; i < u.n_blacklist; i++)
            if (u.blacklist[i].seq <= u.blacklist[i - 1].seq)
                abort();
        yn_update_free(&u);
    } else if (u.cards || u.blacklist || u.allocs || u.policy_json || strncmp(err, "update: ", 8)) {
        abort();
    }
    return 0;
}
