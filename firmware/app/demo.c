/* demo.c — the card keys of a demo: the simulated reader, or an emulated
 * reader's control FIFO ([reader] demo_control). */
#include "demo.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "nfc_sim.h"

static bool is_sim_reader(const yn_demo *d)
{
    return d->nfc->ops == &yn_nfc_sim_ops;
}

/* How many demo cards the keys present: the simulated reader's, or for
 * demo_control the cards of [reader] sim_cards, the file the emulator holds
 * too (tools/demo-run); -1 when those are not known here. */
static int demo_cards(void *ctx)
{
    yn_demo *d = ctx;
    if (is_sim_reader(d))
        return yn_nfc_sim_count(d->nfc);
    if (d->cards_known)
        return d->cards;
    d->cards_known = true;
    const char *path = d->cfg->reader.sim_cards;
    FILE *f = path[0] ? fopen(path, "r") : NULL;
    char line[512];
    d->cards = f ? 0 : -1;
    while (f && fgets(line, sizeof line, f))
        if (line[0] != '#' && line[0] != '\n' && line[0] != '\0')
            d->cards++;
    if (f)
        fclose(f);
    return d->cards;
}

/* demo_control: "present N" / "remove" to the emulator's control FIFO (a
 * failure is logged: the emulator may not be listening). */
static void to_fifo(const yn_demo *d, int card)
{
    const char *path = d->cfg->reader.demo_control;
    char line[32];
    int n = card >= 0 ? snprintf(line, sizeof line, "present %d\n", card)
                      : snprintf(line, sizeof line, "remove\n");
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        yn_warn("reader: demo_control %s: %s", path, strerror(errno));
        return;
    }
    if (write(fd, line, (size_t)n) != n)
        yn_warn("reader: demo_control %s: write: %s", path, strerror(errno));
    close(fd);
}

static int card_key(void *ctx, int card)
{
    yn_demo *d = ctx;
    if (!is_sim_reader(d)) {
        to_fifo(d, card);
        return YN_OK;
    }
    return yn_nfc_sim_present(d->nfc, card);
}

const yn_terminal_demo *yn_demo_init(yn_demo *d, const yn_config *cfg, yn_nfc *nfc)
{
    *d = (yn_demo){
        .hooks = {.ctx = d, .cards = demo_cards, .card_key = card_key}, .cfg = cfg, .nfc = nfc};
    return is_sim_reader(d) || cfg->reader.demo_control[0] ? &d->hooks : NULL;
}
