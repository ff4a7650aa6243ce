/*
 * uuidmap.h — the integer→UUID mapping rule of walbridge.
 *
 * A source row that the original migration did not create gets
 * UUIDv5(uuid_namespace, "<source table>:<key>") where <source table> is the
 * configured source name as written in the config after normalisation
 * ("public.offices") and <key> the decimal text of the legacy key.  Every
 * run, anywhere, computes the same id.
 */
#ifndef WALBRIDGE_UUIDMAP_H
#define WALBRIDGE_UUIDMAP_H

#include <stdbool.h>
#include <stddef.h>

#define UUID_TEXT_LEN 36 /* without NUL */

/* Parses a canonical textual UUID into 16 bytes; false if malformed. */
bool uuidmap_parse(const char *text, unsigned char out[16]);
/* Writes the v5 UUID text (lower case, 36 chars + NUL) into out[37]. */
void uuidmap_v5(const unsigned char ns[16], const char *source_table, const char *key_text,
                char out[UUID_TEXT_LEN + 1]);

#endif
