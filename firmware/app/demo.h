/* demo.h — the card keys of a demo (a..j present a demo card, x takes it
 * away; input "card:N" / "remove"): the simulated reader presents its
 * virtual cards, or with [reader] demo_control the keys go to an emulated
 * reader's control FIFO (the PN532 emulator of tools/demo-run). The terminal
 * only sees yn_terminal_demo (terminal.h). Built with WITH_SIM=1 only: a
 * board's daemon has no demo. */
#ifndef YN_DEMO_H
#define YN_DEMO_H

#include <stdbool.h>

#include "config.h"
#include "nfc.h"
#include "terminal.h"

typedef struct yn_demo {
    yn_terminal_demo hooks; /* what the terminal calls; ctx is this yn_demo */
    const yn_config *cfg;
    yn_nfc *nfc;
    int cards;        /* demo_control: cards in [reader] sim_cards; -1 not known */
    bool cards_known; /* cards was counted */
} yn_demo;

/* The card keys' hooks for this board.conf and reader: NULL when the reader
 * is neither the simulated one nor given a demo_control (the keys then do
 * nothing but say so). d must outlive the terminal. */
const yn_terminal_demo *yn_demo_init(yn_demo *d, const yn_config *cfg, yn_nfc *nfc);

#endif
