/* ff_client.c — a small DESFire client written on libfreefare 0.4.0, a second
 * DESFire implementation independent of ours, used by
 * tests/integration/card_conformance.sh against the emulated card: it
 * authenticates (DES at PICC level with the factory key, AES and DES in
 * applications), creates applications and files, reads and writes standard,
 * backup and value files in plain, MACed and enciphered modes, commits and
 * aborts, and checks that the card enforces its access rules (key settings,
 * access rights, the session lost on errors and SelectApplication).
 *
 * Tests only. libfreefare waits forever for a silent card (timeout 0) and
 * writes MAC and padding past the caller's buffer (hal/nfc/READER.md §1): buffers
 * here are generous and the script runs this under `timeout`.
 *
 *   ff-client CONNSTRING      exit 0 = every step passed */
#include <freefare.h>
#include <nfc/nfc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

/* A call that must fail with the card status want; prints what it got. */
#define REFUSED(call, want, what)                                                                  \
    do {                                                                                           \
        int r_ = (int)(call);                                                                      \
        uint8_t st_ = mifare_desfire_last_picc_error(tag);                                         \
        check(r_ < 0 && st_ == (want), "%s (status 0x%02x)", what, st_);                           \
    } while (0)

static void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("ff: %s: ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
    failures += !ok;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: ff-client CONNSTRING\n");
        return 2;
    }
    nfc_context *ctx;
    nfc_init(&ctx);
    nfc_device *dev = ctx ? nfc_open(ctx, argv[1]) : NULL;
    if (!dev) {
        fprintf(stderr, "ff-client: cannot open %s\n", argv[1]);
        return 1;
    }
    MifareTag *tags = freefare_get_tags(dev);
    MifareTag tag = tags && tags[0] ? tags[0] : NULL;
    check(tag && freefare_get_tag_type(tag) == DESFIRE, "a DESFire in the field");
    if (!tag)
        return 1;
    check(mifare_desfire_connect(tag) == 0, "connect");

    static uint8_t zero8[8] = {0}, zero16[16] = {0};
    uint8_t k1[16], buf[512], data[64];
    for (int i = 0; i < 16; i++)
        k1[i] = (uint8_t)(0x40 + i);
    for (int i = 0; i < 64; i++)
        data[i] = (uint8_t)(0xC0 ^ i);
    MifareDESFireKey des0 = mifare_desfire_des_key_new(zero8);
    MifareDESFireKey aes0 = mifare_desfire_aes_key_new(zero16);
    MifareDESFireKey aes1 = mifare_desfire_aes_key_new(k1);
    MifareDESFireAID picc = mifare_desfire_aid_new(0x000000);
    MifareDESFireAID app = mifare_desfire_aid_new(0x112233);
    MifareDESFireAID strict = mifare_desfire_aid_new(0x445566);
    MifareDESFireAID legacy = mifare_desfire_aid_new(0x778899);

    /* PICC level: the factory DES key, legacy authentication */
    check(mifare_desfire_select_application(tag, picc) == 0, "select PICC level");
    check(mifare_desfire_authenticate(tag, 0, des0) == 0, "PICC master key: DES zero (0x0A)");
    uint8_t settings = 0, max_keys = 0;
    int rc = mifare_desfire_get_key_settings(tag, &settings, &max_keys);
    check(rc == 0 && settings == 0x0F, "PICC key settings 0x%02x (factory 0x0F)", settings);
    check(mifare_desfire_create_application_aes(tag, app, 0x0B, 2) == 0, "create AES app 112233");
    check(mifare_desfire_create_application_aes(tag, strict, 0x09, 2) == 0,
          "create AES app 445566 (settings 0x09)");
    check(mifare_desfire_create_application(tag, legacy, 0x0F, 2) == 0, "create DES app 778899");

    /* an AES application: files of every kind */
    check(mifare_desfire_select_application(tag, app) == 0, "select 112233");
    check(mifare_desfire_authenticate_aes(tag, 0, aes0) == 0, "AES key 0 (zero)");
    check(mifare_desfire_create_std_data_file(tag, 1, MDCM_ENCIPHERED, MDAR(1, 0, 0, 0), 100) == 0,
          "std file 1, enciphered, R key 1 W key 0");
    check(mifare_desfire_create_backup_data_file(tag, 2, MDCM_MACED, MDAR(1, 1, 1, 0), 32) == 0,
          "backup file 2, MACed");
    check(mifare_desfire_create_value_file(tag, 3, MDCM_PLAIN, MDAR(1, 1, 1, 0), 0, 1000, 100, 0) ==
              0,
          "value file 3, plain, 100 in 0..1000");
    check(mifare_desfire_create_std_data_file(
              tag, 4, MDCM_PLAIN, MDAR(MDAR_FREE, MDAR_KEY0, MDAR_KEY0, MDAR_KEY0), 8) == 0,
          "std file 4, free read");
    check(mifare_desfire_change_key(tag, 1, aes1, aes0) == 0, "ChangeKey 1");
    check(mifare_desfire_write_data(tag, 1, 0, 40, data) == 40, "key 0 writes file 1 (enciphered)");
    check(mifare_desfire_write_data(tag, 4, 0, 8, "FREEFILE") == 8, "key 0 writes file 4");

    check(mifare_desfire_authenticate_aes(tag, 1, aes1) == 0, "AES key 1");
    memset(buf, 0, sizeof buf);
    check(mifare_desfire_read_data(tag, 1, 0, 40, buf) == 40 && memcmp(buf, data, 40) == 0,
          "key 1 reads file 1 back (enciphered)");
    REFUSED(mifare_desfire_write_data(tag, 1, 0, 4, data), 0x9D,
            "key 1 may not write file 1: PERMISSION_DENIED");
    REFUSED(mifare_desfire_read_data(tag, 1, 0, 40, buf), 0xAE,
            "the error ended the session: AUTHENTICATION_ERROR");
    check(mifare_desfire_authenticate_aes(tag, 1, aes1) == 0, "AES key 1 again");
    struct mifare_desfire_file_settings fs;
    check(mifare_desfire_get_file_settings(tag, 1, &fs) == 0 &&
              fs.settings.standard_file.file_size == 100,
          "settings 0x0B: key 1 may ask GetFileSettings");

    /* backup file: only CommitTransaction makes a write permanent */
    check(mifare_desfire_write_data(tag, 2, 0, 16, data) == 16, "write backup file 2 (MACed)");
    check(mifare_desfire_read_data(tag, 2, 0, 16, buf) == 16 && buf[0] == 0 && buf[15] == 0,
          "before the commit the backup file reads its old content");
    check(mifare_desfire_commit_transaction(tag) == 0, "CommitTransaction");
    check(mifare_desfire_read_data(tag, 2, 0, 16, buf) == 16 && memcmp(buf, data, 16) == 0,
          "after the commit the new content");
    check(mifare_desfire_write_data(tag, 2, 0, 16, zero16) == 16, "write again");
    check(mifare_desfire_abort_transaction(tag) == 0, "AbortTransaction");
    check(mifare_desfire_read_data(tag, 2, 0, 16, buf) == 16 && memcmp(buf, data, 16) == 0,
          "aborted: the committed content stands");

    /* value file */
    int32_t v = 0;
    check(mifare_desfire_credit(tag, 3, 50) == 0, "credit 50");
    rc = mifare_desfire_get_value(tag, 3, &v);
    check(rc == 0 && v == 100, "uncommitted: the value is still %d", v);
    check(mifare_desfire_commit_transaction(tag) == 0, "commit");
    rc = mifare_desfire_get_value(tag, 3, &v);
    check(rc == 0 && v == 150, "committed: value %d", v);
    REFUSED(mifare_desfire_debit(tag, 3, 500), 0xBE,
            "a debit below the lower limit: BOUNDARY_ERROR");

    /* free access, and SelectApplication ends the session */
    check(mifare_desfire_select_application(tag, app) == 0, "select 112233 again");
    check(mifare_desfire_read_data(tag, 4, 0, 8, buf) == 8 && memcmp(buf, "FREEFILE", 8) == 0,
          "free file read without authentication");
    REFUSED(mifare_desfire_read_data(tag, 1, 0, 40, buf), 0xAE,
            "after SelectApplication key 1's session is gone");

    /* key settings 0x09: directory listing needs the application master key */
    check(mifare_desfire_select_application(tag, strict) == 0, "select 445566");
    check(mifare_desfire_authenticate_aes(tag, 0, aes0) == 0, "its key 0");
    check(mifare_desfire_create_std_data_file(tag, 1, MDCM_PLAIN, MDAR(1, 0, 0, 0), 16) == 0,
          "a file");
    check(mifare_desfire_authenticate_aes(tag, 1, aes0) == 0, "its key 1");
    REFUSED(mifare_desfire_get_file_settings(tag, 1, &fs), 0xAE,
            "settings 0x09: GetFileSettings with key 1 is AUTHENTICATION_ERROR");

    /* a DES application: legacy authentication and its secure messaging */
    check(mifare_desfire_select_application(tag, legacy) == 0, "select 778899 (DES keys)");
    check(mifare_desfire_authenticate(tag, 0, des0) == 0, "DES key 0 (0x0A)");
    check(mifare_desfire_create_std_data_file(tag, 1, MDCM_ENCIPHERED, MDAR(0, 0, 0, 0), 48) == 0,
          "std file, enciphered");
    check(mifare_desfire_create_std_data_file(tag, 2, MDCM_MACED, MDAR(0, 0, 0, 0), 24) == 0,
          "std file, MACed");
    check(mifare_desfire_write_data(tag, 1, 0, 48, data) == 48, "D40 enciphered write");
    check(mifare_desfire_read_data(tag, 1, 0, 48, buf) == 48 && memcmp(buf, data, 48) == 0,
          "D40 enciphered read back");
    /* 20 bytes: libfreefare 0.4.0 checks a D40 MAC over data + 2 bytes of room for
     * a CRC, which adds a zero block when the length is 0 or 7 mod 8 — against
     * the D40 rule (zero padding to 8 only); hal/nfc/READER.md notes it */
    check(mifare_desfire_write_data(tag, 2, 0, 20, data + 8) == 20, "D40 MACed write");
    check(mifare_desfire_read_data(tag, 2, 0, 20, buf) == 20 && memcmp(buf, data + 8, 20) == 0,
          "D40 MACed read back");

    /* clean up at PICC level */
    check(mifare_desfire_select_application(tag, picc) == 0 &&
              mifare_desfire_authenticate(tag, 0, des0) == 0 &&
              mifare_desfire_delete_application(tag, app) == 0 &&
              mifare_desfire_delete_application(tag, strict) == 0 &&
              mifare_desfire_delete_application(tag, legacy) == 0,
          "delete the applications with the PICC master key");

    mifare_desfire_key_free(des0);
    mifare_desfire_key_free(aes0);
    mifare_desfire_key_free(aes1);
    free(picc);
    free(app);
    free(strict);
    free(legacy);
    mifare_desfire_disconnect(tag);
    freefare_free_tags(tags);
    nfc_close(dev);
    nfc_exit(ctx);
    printf("ff-client: %d failed\n", failures);
    return failures ? 1 : 0;
}
