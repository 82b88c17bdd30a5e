/* report.h — CSV reports a finance office can open (tools/DISTRICT.md):
 * RFC 4180 (fields quoted when they hold a comma, a quote, CR or LF; quotes
 * doubled; lines end CRLF), text cells that a spreadsheet would take for a
 * formula (leading = + - @ TAB CR) neutralised with a leading apostrophe,
 * meal subsidies and wallet allocations in separate columns, every sum
 * checked (an overflow fails the report, never wraps), and nothing printed
 * unless the whole report was made. */
#ifndef YN_DISTRICT_REPORT_H
#define YN_DISTRICT_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "db.h"

/* One text cell, quoted and neutralised as above. */
void yn_csv_text(FILE *out, const char *text);

/* The report grouped by `by` (canteen, terminal, category, period, day,
 * layer; identified: canteen and how the holder was identified — card,
 * identity, manual) written to out; or by "shared-ident": the meals of each
 * identity-only card's identifier used at two canteens in one meal period,
 * a row per canteen (tools/DISTRICT.md §5); or by "stamp-missing": every
 * stamp-missing notice with the meal it names and the card's subsidised
 * meals in that day and period (the one-meal window of firmware/ledger/LEDGER.md
 * "Card stamps", used when above 1). YN_EINVAL for an unknown grouping; YN_ELIMIT for a
 * sum beyond int64; YN_ENOTSUP for a record kind no column is defined for;
 * storage errors. err says what. Nothing is written unless YN_OK. */
int yn_report_write(yn_db *db, const char *by, FILE *out, char *err, size_t errlen) YN_MUST_CHECK;

#endif
