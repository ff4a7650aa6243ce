/*
 * uuidmap.c — the integer -> UUID rule: UUIDv5(namespace, "<source table>:<key>")
 * computed with libuuid's SHA-1 name-based generator (RFC 4122 section 4.3).
 */
#include "common/uuidmap.h"

#include <string.h>
#include <uuid/uuid.h>

#include "common/strbuf.h"

bool uuidmap_parse(const char *text, unsigned char out[16])
{
    uuid_t parsed;
    if (text == NULL || strlen(text) != UUID_TEXT_LEN)
        return false;
    if (uuid_parse(text, parsed) != 0)
        return false;
    memcpy(out, parsed, 16);
    return true;
}

void uuidmap_v5(const unsigned char ns[16], const char *source_table, const char *key_text,
                char out[UUID_TEXT_LEN + 1])
{
    strbuf name;
    uuid_t id;

    strbuf_init(&name);
    strbuf_append(&name, source_table);
    strbuf_append_char(&name, ':');
    strbuf_append(&name, key_text);
    uuid_generate_sha1(id, ns, name.data, name.len);
    strbuf_free(&name);
    uuid_unparse_lower(id, out);
}
