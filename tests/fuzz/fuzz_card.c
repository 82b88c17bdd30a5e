/* fuzz_card.c — libFuzzer target for the bytes a card (or a key ring file)
 * hands the firmware: the record decoder, the stamp decoder, the key ring
 * parsers. Beyond "no crash": whatever decodes must re-encode to the very
 * same bytes (one encoding per record), and verification must never say yes
 * for a key ring that cannot have signed it.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ifirmware -Ihal \
 *     tests/fuzz/fuzz_card.c firmware/core/card.c -lcrypto -o build/fuzz_card
 *   build/fuzz_card -max_len=300 corpus/ */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "card.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t uid[7] = {0x04, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66};

    yn_card_record rec;
    const char *why = NULL;
    if (yn_card_decode(data, size, &rec, &why) == YN_OK) {
        uint8_t again[YN_CARD_RECORD_MAX];
        size_t len = 0;
        if (yn_card_encode(&rec, again, sizeof again, &len, NULL) != YN_OK || len != size ||
            memcmp(again, data, size) != 0)
            abort(); /* decoder accepted a non-canonical encoding */
        yn_card_facts facts;
        yn_card_to_facts(&rec, &facts);
        (void)yn_card_expired(&rec, 20250314);
        /* an all-zero public key signs nothing */
        yn_card_keyring ring;
        memset(&ring, 0, sizeof ring);
        static const uint8_t zero_key[YN_CARD_PUBKEY_LEN];
        if (yn_card_keyring_add(&ring, rec.key_version, zero_key) != YN_OK)
            abort();
        if (yn_card_verify(&rec, uid, sizeof uid, &ring) == YN_OK)
            abort();
    } else if (!why) {
        abort(); /* every refusal says why */
    }

    yn_card_stamp stamp;
    if (yn_card_stamp_decode(data, size, &stamp, NULL) == YN_OK) {
        if (size == YN_CARD_STAMP_LEN && !yn_card_stamp_is_blank(&stamp)) {
            uint8_t again[YN_CARD_STAMP_LEN];
            if (yn_card_stamp_encode(&stamp, again, NULL) != YN_OK ||
                memcmp(again, data, sizeof again) != 0)
                abort();
        }
        (void)yn_card_stamp_blocks(&stamp, 20250314, "lunch");
    }

    yn_card_keyring ring;
    char err[200];
    if (yn_card_keyring_from_bytes(data, size, &ring, err, sizeof err) == YN_OK &&
        (ring.n_keys < 1 || (size_t)ring.n_keys * 33 != size))
        abort();
    char *text = malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = '\0';
        if (yn_card_keyring_parse(text, &ring, err, sizeof err) == YN_OK &&
            (ring.n_keys < 1 || ring.n_keys > YN_CARD_KEYRING_MAX))
            abort();
        free(text);
    }
    return 0;
}
