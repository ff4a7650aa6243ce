/*
 * test_uuidmap.c — unit tests for UUID parsing and the UUIDv5 mapping rule
 * (common/uuidmap.c), against known RFC 4122 vectors.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <uuid/uuid.h>

#include "common/uuidmap.h"

static const char *ns_dns = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";

Test(uuidmap, parse_canonical)
{
    unsigned char b[16];
    cr_assert(uuidmap_parse(ns_dns, b));
    cr_assert_eq(b[0], 0x6b);
    cr_assert_eq(b[15], 0xc8);
    cr_assert(uuidmap_parse("6BA7B810-9DAD-11D1-80B4-00C04FD430C8", b));
}

Test(uuidmap, parse_rejects_malformed)
{
    static const char *bad[] = {"",
                                "6ba7b810-9dad-11d1-80b4-00c04fd430c",
                                "6ba7b810-9dad-11d1-80b4-00c04fd430c8a",
                                "6ba7b8109dad11d180b400c04fd430c8",
                                "6ba7b810-9dad-11d1-80b4-00c04fd430cg",
                                "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}",
                                " 6ba7b810-9dad-11d1-80b4-00c04fd430c8"};
    unsigned char b[16];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(uuidmap_parse(bad[i], b), "accepted \"%s\"", bad[i]);
    cr_assert_not(uuidmap_parse(NULL, b));
}

/*
 * The brief's reference vector, uuid5(NAMESPACE_DNS, "python.org"), checks the
 * libuuid generator uuidmap_v5 is built on (its name always contains ':', so
 * it cannot produce this exact name itself).
 */
Test(uuidmap, libuuid_sha1_matches_rfc_vector)
{
    unsigned char ns[16];
    uuid_t id;
    char out[UUID_TEXT_LEN + 1];
    cr_assert(uuidmap_parse(ns_dns, ns));
    uuid_generate_sha1(id, ns, "python.org", strlen("python.org"));
    uuid_unparse_lower(id, out);
    cr_assert_str_eq(out, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
}

/* Expected values computed independently with Python's uuid.uuid5. */
Test(uuidmap, v5_of_table_and_key)
{
    unsigned char ns[16];
    char out[UUID_TEXT_LEN + 1];
    cr_assert(uuidmap_parse(ns_dns, ns));
    uuidmap_v5(ns, "public.offices", "42", out);
    cr_assert_str_eq(out, "06e9a0fb-85a3-5bd2-92ae-877ca0a8534a");

    cr_assert(uuidmap_parse("0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42", ns));
    uuidmap_v5(ns, "public.offices", "1", out);
    cr_assert_str_eq(out, "c4d740f5-1fc3-5ad1-8afa-beda1f029c11");
    uuidmap_v5(ns, "public.patients", "1234567890123", out);
    cr_assert_str_eq(out, "ee300704-191a-52b6-8e55-45d4058b619e");
}

Test(uuidmap, v5_depends_on_table_key_and_namespace)
{
    unsigned char ns1[16], ns2[16];
    char a[UUID_TEXT_LEN + 1], b[UUID_TEXT_LEN + 1], c[UUID_TEXT_LEN + 1], d[UUID_TEXT_LEN + 1];
    cr_assert(uuidmap_parse(ns_dns, ns1));
    cr_assert(uuidmap_parse("0b6e2c1e-5d1f-4f4e-9a51-1c8a3f0e7d42", ns2));
    uuidmap_v5(ns1, "public.offices", "7", a);
    uuidmap_v5(ns1, "public.doctors", "7", b);
    uuidmap_v5(ns1, "public.offices", "8", c);
    uuidmap_v5(ns2, "public.offices", "7", d);
    cr_assert_str_neq(a, b);
    cr_assert_str_neq(a, c);
    cr_assert_str_neq(a, d);
    cr_assert_eq(a[14], '5', "version nibble must be 5: %s", a);
    cr_assert(strchr("89ab", a[19]) != NULL, "RFC 4122 variant: %s", a);
}
