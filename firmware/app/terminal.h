/* terminal.h — the terminal's main loop: one state machine that turns keys
 * and card taps into debits (pos) or balance enquiries (kiosk), and into
 * screens, voice and lights. */
#ifndef YN_TERMINAL_H
#define YN_TERMINAL_H

#include <stdbool.h>

#include "card.h"
#include "config.h"
#include "devices.h"
#include "keeper.h"
#include "ledger.h"
#include "policy.h"

/* The card keys of a demo (input "card:N" / "remove"): who answers them
 * (firmware/app/demo.h: the simulated reader or an emulator's control FIFO). */
typedef struct yn_terminal_demo {
    void *ctx;
    /* How many demo cards the keys present; -1 when not known here. */
    int (*cards)(void *ctx);
    /* Present demo card `card` (-1: take it away): YN_OK, or not (no such card). */
    int (*card_key)(void *ctx, int card);
} yn_terminal_demo;

/* What the terminal works with besides its devices; owned by the caller. */
typedef struct yn_terminal_deps {
    yn_ledger *ledger;
    const yn_policy *policy;
    yn_keystore *keys;            /* the card keys, derived per tap */
    const yn_card_keyring *ring;  /* issuer public keys */
    const yn_terminal_demo *demo; /* card keys of a demo; NULL: they do nothing (a board) */
} yn_terminal_deps;

typedef struct yn_terminal yn_terminal;

int yn_terminal_new(const yn_config *cfg, yn_devices *dev, const yn_terminal_deps *deps,
                    yn_terminal **out) YN_MUST_CHECK;
void yn_terminal_free(yn_terminal *t);
/* Show the first screen. */
void yn_terminal_start(yn_terminal *t);
/* One turn of the loop: wait up to timeout_ms for a key, look for a card,
 * advance the state. A tap in progress always finishes within the turn. */
int yn_terminal_step(yn_terminal *t, int timeout_ms) YN_MUST_CHECK;
/* The operator (or the script) asked to stop. */
bool yn_terminal_done(const yn_terminal *t);
/* Taps that reached a decision since start. */
int yn_terminal_taps(const yn_terminal *t);
/* The current meal price (fen) that the next tap is charged. */
int64_t yn_terminal_price_fen(const yn_terminal *t);
/* Weighed mode (staff key '+'): the next tap is priced by the scale's weight
 * at yn_terminal_price_per_100g_fen() per 100 g, rounded down to the fen. */
bool yn_terminal_weighed(const yn_terminal *t);
int64_t yn_terminal_price_per_100g_fen(const yn_terminal *t);

/* Sales stopped (the keeper's verdict, keeper.h) or going on again: while
 * stopped, the idle screen says why for staff and a tap charges nothing (the
 * card is not even read), keys are ignored. Going on again, the highest tap
 * id is read afresh (a restore may have brought records back). */
void yn_terminal_set_stop(yn_terminal *t, const yn_sales_stop *stop);

#endif
