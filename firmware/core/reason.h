/* reason.h — why a tap gets no subsidy or is refused: one vocabulary shared by
 * the policy engine, the ledger, the card reader and the screens. */
#ifndef YN_REASON_H
#define YN_REASON_H

enum yn_reason {
    YN_REASON_NONE = 0,
    /* decided by the policy engine */
    YN_REASON_EXPIRED,         /* card past its expiry date */
    YN_REASON_NOT_ELIGIBLE,    /* no category of the policy applies to the holder */
    YN_REASON_NO_PERIOD,       /* no meal period open now (time, weekday, holiday) */
    YN_REASON_PERIOD_USED,     /* subsidised meals per period already used */
    YN_REASON_DAY_USED,        /* subsidised meals per day already used */
    YN_REASON_MONTH_USED,      /* subsidised meals per month already used */
    YN_REASON_MONTH_CAP,       /* monthly subsidy cap in fen reached */
    YN_REASON_OUTSIDE_AREA,    /* locality rules leave no layer at this canteen */
    YN_REASON_BELOW_MIN_PRICE, /* meal cheaper than the policy's minimum price */
    YN_REASON_INSUFFICIENT,    /* wallet cannot pay and cash is not accepted */
    /* decided by the ledger */
    YN_REASON_LOST,     /* card on the district's blacklist (挂失) */
    YN_REASON_TOO_SOON, /* same card debited within the minimum interval */
    YN_REASON_STORAGE,  /* the ledger could not commit (disk full, locked) */
    /* decided by the card reader */
    YN_REASON_NOT_GENUINE, /* signature or card authentication failed */
    YN_REASON_READ_FAILED, /* card could not be read: tap again */
    /* decided by the terminal before any debit */
    YN_REASON_WEIGHT, /* weighed meal: no trustworthy weight from the scale */
    YN_REASON_CLOCK,  /* no evidence for the date: the clock is below the ledger's last record */
    /* decided by the card reader: the card is not a 颐年卡 (never "a clone") */
    YN_REASON_BLANK_CARD,   /* a blank card: never issued */
    YN_REASON_FOREIGN_CARD, /* another kind of card, or keys that are not ours */
    YN_REASON_OTHER_CARD,   /* a DESFire that carries other applications only */
    /* identity-only cards and 忘带卡 (firmware/core/CARD.md §8) */
    YN_REASON_NOT_ENROLLED, /* not a 颐年卡, and its identifier is bound to nobody */
    YN_REASON_RANDOM_UID,   /* the card shows another number at each tap: no identity */
    YN_REASON_MANUAL_CAP,   /* this terminal's manual meals of the day are used up */
    YN_REASON_COUNT
};

/* The kind sentence shown and spoken to the senior (Chinese). */
const char *yn_reason_kind(enum yn_reason r);
/* The exact line for staff on the screen (Chinese): what happened, what to do. */
const char *yn_reason_staff(enum yn_reason r);
/* The same for technicians in the log (English). */
const char *yn_reason_log(enum yn_reason r);
/* A short stable code for records, CSV and JSON ("period_used"). */
const char *yn_reason_code(enum yn_reason r);

#endif
