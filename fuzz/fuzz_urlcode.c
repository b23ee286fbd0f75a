/* libFuzzer driver for src/core/urlcode.c.
 *
 * The first byte picks a key length k; the next k bytes are a query key, the
 * rest is used as a query string, a path, a cookie header and arbitrary
 * bytes.  Every input lives in an exact-size heap copy so ASan catches
 * over-reads.  Invariants:
 *  - decoding never grows (cel_url_decode <= n, unquote_py <= 2n) and
 *    cel_url_decoded_len agrees with cel_url_decode; in-place decoding gives
 *    the same bytes;
 *  - unquote_py output is valid UTF-8, and equals the strict decode whenever
 *    the input is ASCII and its strict decode is valid UTF-8;
 *  - decode(encode(x)) == x for both plus modes;
 *  - cel_url_query_lookup agrees with a naive reference (split on '&', split
 *    on '=', decode both, last match wins), and iteration slices lie inside
 *    the input;
 *  - cookie slices lie inside the header and are stripped, unquote <= n and
 *    cel_cookie_lookup agrees with the iterator (last match wins).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "urlcode.h"

#define REQUIRE(cond) do { if (!(cond)) abort(); } while (0)

static char *dup_exact(const uint8_t *p, size_t n)
{
    char *c = malloc(n ? n : 1);
    REQUIRE(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

static int inside(const char *s, size_t sn, const char *base, size_t n)
{
    return s >= base && s + sn <= base + n;
}

/* The reference: decode every key into a fresh buffer and compare. */
static int naive_lookup(const char *q, size_t qn, const char *key, size_t klen, char *out,
                        size_t *on)
{
    int found = 0;
    size_t s = 0;
    while (s <= qn) {
        size_t e = s;
        while (e < qn && q[e] != '&')
            e++;
        if (e > s) {
            size_t eq = s;
            while (eq < e && q[eq] != '=')
                eq++;
            char *kb = malloc(eq - s + 1);
            REQUIRE(kb);
            size_t kn = cel_url_decode(q + s, eq - s, kb, 1);
            if (kn == klen && memcmp(kb, key, klen) == 0) {
                size_t vs = eq < e ? eq + 1 : e;
                *on = cel_url_decode(q + vs, e - vs, out, 1);
                found = 1;
            }
            free(kb);
        }
        s = e + 1;
    }
    return found;
}

static int py_space(unsigned char c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t klen = data[0] % 8;
    if (klen > size - 1)
        klen = size - 1;
    char *key = dup_exact(data + 1, klen);
    size_t n = size - 1 - klen;
    char *in = dup_exact(data + 1 + klen, n);
    char *out = malloc(3 * n + 1), *back = malloc(n + 1), *ref = malloc(n + 1);
    REQUIRE(out && back && ref);

    for (int plus = 0; plus < 2; plus++) {
        size_t d = cel_url_decode(in, n, out, plus);
        REQUIRE(d <= n && d == cel_url_decoded_len(in, n));
        memcpy(back, in, n);
        REQUIRE(cel_url_decode(back, n, back, plus) == d && memcmp(back, out, d) == 0);

        size_t u = cel_url_unquote_py(in, n, out, plus);
        REQUIRE(u <= 2 * n && cel_url_utf8_valid(out, u));
        int ascii = 1;
        for (size_t i = 0; i < n; i++)
            ascii &= (unsigned char)in[i] < 0x80;
        size_t sd = cel_url_decode(in, n, ref, plus);
        if (ascii && cel_url_utf8_valid(ref, sd))
            REQUIRE(u == sd && memcmp(out, ref, u) == 0);

        size_t e = cel_url_encode(in, n, out, plus);
        REQUIRE(e <= 3 * n);
        size_t r = cel_url_decode(out, e, back, plus);
        REQUIRE(r == n && memcmp(back, in, n) == 0);
    }

    long long v;
    if (cel_url_parse_int(in, n, &v))
        REQUIRE(n >= 1 && n <= 19);

    cel_url_query_iter it;
    cel_url_pair p;
    cel_url_query_init(&it, in, n);
    while (cel_url_query_next(&it, &p)) {
        REQUIRE(inside(p.key, p.key_len, in, n) && inside(p.value, p.value_len, in, n));
        REQUIRE(p.key_len + p.value_len > 0 || p.has_eq);
    }
    size_t vn = 0, rn = 0;
    int rc = cel_url_query_lookup(in, n, key, klen, out, n, &vn);
    int want = naive_lookup(in, n, key, klen, ref, &rn);
    if (!want) {
        REQUIRE(rc == 0);
    } else {
        REQUIRE(rc == 1 || rc == CEL_EUTF8);
        REQUIRE(vn == rn && memcmp(out, ref, vn) == 0);
        REQUIRE((rc == 1) == cel_url_utf8_valid(ref, rn));
    }
    if (want && rn > 0)
        REQUIRE(cel_url_query_lookup(in, n, key, klen, out, rn - 1, &vn) == CEL_ENOSPC);

    cel_cookie_iter ci;
    cel_cookie c;
    int have = 0;
    size_t last_n = 0;
    cel_cookie_init(&ci, in, n);
    while (cel_cookie_next(&ci, &c)) {
        REQUIRE(inside(c.key, c.key_len, in, n) && inside(c.value, c.value_len, in, n));
        REQUIRE(c.key_len + c.value_len > 0);
        if (c.key_len)
            REQUIRE(!py_space((unsigned char)c.key[0]) && !py_space((unsigned char)c.key[c.key_len - 1]));
        if (c.value_len)
            REQUIRE(!py_space((unsigned char)c.value[0]) && !py_space((unsigned char)c.value[c.value_len - 1]));
        size_t un = cel_cookie_unquote(c.value, c.value_len, out);
        REQUIRE(un <= c.value_len);
        if (c.key_len == klen && (klen == 0 || memcmp(c.key, key, klen) == 0)) {
            memcpy(ref, out, un);
            last_n = un;
            have = 1;
        }
    }
    rc = cel_cookie_lookup(in, n, key, klen, out, n, &vn);
    REQUIRE(rc == have);
    if (have)
        REQUIRE(vn == last_n && memcmp(out, ref, vn) == 0);

    free(key);
    free(in);
    free(out);
    free(back);
    free(ref);
    return 0;
}
