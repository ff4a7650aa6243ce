/*
 * lsn.h — PostgreSQL log sequence numbers as text ("16/B374D848") and uint64.
 */
#ifndef WALBRIDGE_LSN_H
#define WALBRIDGE_LSN_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

typedef uint64_t wb_lsn;
#define LSN_INVALID ((wb_lsn)0)
#define LSN_TEXT_MAX 20 /* "FFFFFFFF/FFFFFFFF" + NUL, rounded up */

/* Strict parse of "X/Y" hex; false on anything else (empty, junk, overflow). */
bool lsn_parse(const char *text, wb_lsn *out);
/* Writes "X/Y" upper-case hex into buf (at least LSN_TEXT_MAX bytes); returns buf. */
char *lsn_format(wb_lsn lsn, char *buf);

#endif
