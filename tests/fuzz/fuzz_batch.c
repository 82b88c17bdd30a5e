/* fuzz_batch.c — libFuzzer target: any bytes as a batch frame. The first 32
 * bytes are the key when the input is long enough, so the fuzzer can reach
 * past the HMAC by also writing a matching MAC; a frame that decodes must
 * re-encode to a frame that decodes to the same records. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t fixed_key[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                          12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                          23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
    yn_batch_header h;
    yn_ledger_record *recs = NULL;
    const char *why = NULL;
    int rc = yn_batch_decode(data, size, fixed_key, sizeof fixed_key, &h, &recs, &why);
    if (rc != YN_OK) {
        if (recs != NULL || why == NULL)
            abort();
        /* also with the MAC made valid, so the body decoder is reached */
        if (size >= YN_BATCH_HEADER_LEN + YN_BATCH_MAC_LEN && size < (1u << 20)) {
            uint8_t *copy = malloc(size);
            memcpy(copy, data, size);
            yn_batch_hmac(fixed_key, sizeof fixed_key, copy, size - YN_BATCH_MAC_LEN,
                          copy + size - YN_BATCH_MAC_LEN);
            rc = yn_batch_decode(copy, size, fixed_key, sizeof fixed_key, &h, &recs, &why);
            free(copy);
        }
        if (rc != YN_OK)
            return 0;
    }
    uint8_t *again = NULL;
    size_t again_len = 0;
    if (yn_batch_encode(h.batch_id, recs, h.count, fixed_key, sizeof fixed_key, &again,
                        &again_len) != YN_OK)
        abort();
    yn_ledger_record *recs2 = NULL;
    yn_batch_header h2;
    if (yn_batch_decode(again, again_len, fixed_key, sizeof fixed_key, &h2, &recs2, &why) != YN_OK)
        abort();
    for (uint32_t i = 0; i < h.count; i++)
        if (memcmp(recs[i].hash, recs2[i].hash, YN_LEDGER_HASH_LEN) != 0)
            abort();
    free(recs2);
    free(again);
    free(recs);
    return 0;
}
