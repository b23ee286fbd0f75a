/* Unit tests for the JSON writer (src/core/json.c).
 *
 * Expected texts are what Python 3 gives for
 *     json.dumps(v, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
 * (the double table was generated with repr() and pasted).  String inputs
 * are copied to guard-page buffers so an over-read crashes.
 */
#include <math.h>
#include <stdint.h>

#include "alloc.h"
#include "buf.h"
#include "errors.h"
#include "json.h"
#include "test.h"

#define IN(lit) lit, sizeof(lit) - 1

/* The buffer holds exactly text[0..len). */
static int buf_is(const cel_buf *b, const char *text, size_t len)
{
    return b->len == len && (len == 0 || memcmp(cel_buf_head(b), text, len) == 0);
}

#define CHECK_BUF(b, lit) CHECK(buf_is((b), IN(lit)))

/* cel_json_string of s[0..n) (from a guard-page copy) as a whole text. */
static int string_is(const char *s, size_t n, const char *want, size_t want_len)
{
    cel_buf b = { 0 };
    cel_json_writer w;
    cel_json_writer_init(&w, &b, 0);
    guard_buf g = guard_copy(s, n);
    int ok = cel_json_string(&w, g.p, n) == 0 && cel_json_complete(&w)
             && buf_is(&b, want, want_len);
    guard_free(&g);
    cel_json_writer_free(&w);
    cel_buf_free(&b);
    return ok;
}

TEST(string_short_escapes)
{
    CHECK(string_is(IN(""), IN("\"\"")));
    CHECK(string_is(IN("plain"), IN("\"plain\"")));
    CHECK(string_is(IN("\"\\\n\r\t\b\f"), IN("\"\\\"\\\\\\n\\r\\t\\b\\f\"")));
    CHECK(string_is(IN("a/b"), IN("\"a/b\"")));            /* '/' is not escaped */
    CHECK(string_is(IN("\x7f"), IN("\"\x7f\"")));          /* DEL copied through */
}

/* json.dumps(chr(i), ensure_ascii=False)[1:-1] for i in range(32) */
static const char *const ctl_escape[32] = {
    "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
    "\\b", "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f",
    "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017",
    "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
};

TEST(string_control_bytes_match_python)
{
    for (int c = 0; c < 32; c++) {
        char in = (char)c, exp[16];
        int n = snprintf(exp, sizeof(exp), "\"%s\"", ctl_escape[c]);
        CHECK(string_is(&in, 1, exp, (size_t)n));
    }
    for (int c = 32; c < 256; c++) {
        if (c == '"' || c == '\\')
            continue;
        char in = (char)c, exp[3] = { '"', (char)c, '"' };
        CHECK(string_is(&in, 1, exp, 3));
    }
}

/* Every byte at every position of strings of 1..20 bytes, so that the
 * word-at-a-time test for "nothing to escape" sees it in every lane of its
 * 4- and 8-byte (overlapping) loads. */
TEST(string_any_byte_at_any_position)
{
    int failures = 0;
    for (int c = 0; c < 256; c++) {
        for (size_t n = 1; n <= 20; n++) {
            for (size_t pos = 0; pos < n; pos++) {
                char in[20], exp[64];
                size_t e = 0;
                memset(in, 'k', n);
                in[pos] = (char)c;
                exp[e++] = '"';
                for (size_t i = 0; i < n; i++) {
                    unsigned char ch = (unsigned char)in[i];
                    const char *esc = ch < 32 ? ctl_escape[ch] : ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : NULL;
                    if (esc) {
                        memcpy(exp + e, esc, strlen(esc));
                        e += strlen(esc);
                    } else {
                        exp[e++] = (char)ch;
                    }
                }
                exp[e++] = '"';
                int ok = string_is(in, n, exp, e);
                CHECK(ok);
                if (!ok && failures++ < 5)
                    fprintf(stderr, "  byte 0x%02x at %zu of %zu\n", (unsigned)c, pos, n);
            }
        }
    }
}

TEST(string_utf8_copied_through)
{
    CHECK(string_is(IN("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"),
                    IN("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"")));
    CHECK(string_is(IN("\xe2\x80\xa8"), IN("\"\xe2\x80\xa8\"")));   /* U+2028 not escaped */
}

TEST(string_long_crosses_chunks)
{
    /* Longer than the writer's per-reservation chunk, escapes at the seams. */
    size_t n = 20000;
    char *in = malloc(n), *want = malloc(n * 6 + 2);
    size_t wl = 0;
    want[wl++] = '"';
    for (size_t i = 0; i < n; i++) {
        in[i] = (char)(i % 7 == 0 ? '\n' : i % 11 == 0 ? 1 : 'a' + (int)(i % 26));
        if (in[i] == '\n') {
            memcpy(want + wl, "\\n", 2);
            wl += 2;
        } else if (in[i] == 1) {
            memcpy(want + wl, "\\u0001", 6);
            wl += 6;
        } else {
            want[wl++] = in[i];
        }
    }
    want[wl++] = '"';
    CHECK(string_is(in, n, want, wl));
    free(in);
    free(want);
}

TEST(string_ucs_widths)
{
    cel_buf b = { 0 };
    cel_json_writer w;
    cel_json_writer_init(&w, &b, 0);
    static const uint8_t latin1[] = { 'a', 0xe9, '\n', 0xff };
    static const uint16_t ucs2[] = { 0x20ac, '"', 0xd800, 0x7f, 0xdfff };
    static const uint32_t ucs4[] = { 0x1f600, 0x10ffff, 1, 0xdc80 };
    CHECK_EQ_INT(cel_json_begin_array(&w), 0);
    CHECK_EQ_INT(cel_json_string_ucs(&w, latin1, 4, 1), 0);
    CHECK_EQ_INT(cel_json_string_ucs(&w, ucs2, 5, 2), 2);          /* two surrogates */
    CHECK_EQ_INT(cel_json_string_ucs(&w, ucs4, 4, 4), 1);
    CHECK_EQ_INT(cel_json_end_array(&w), 0);
    CHECK_BUF(&b, "[\"a\xc3\xa9\\n\xc3\xbf\","
                  "\"\xe2\x82\xac\\\"\xed\xa0\x80\x7f\xed\xbf\xbf\","
                  "\"\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\\u0001\xed\xb2\x80\"]");
    cel_json_writer_free(&w);
    cel_buf_free(&b);
}

TEST(string_ucs_rejects_bad_input_without_writing)
{
    cel_buf b = { 0 };
    cel_json_writer w;
    cel_json_writer_init(&w, &b, 0);
    static const uint32_t beyond[] = { 'a', 0x110000 };
    CHECK_EQ_INT(cel_json_begin_array(&w), 0);
    CHECK_EQ_INT(cel_json_string_ucs(&w, beyond, 2, 4), CEL_EINVAL);
    CHECK_EQ_INT(cel_json_string_ucs(&w, beyond, 1, 3), CEL_EINVAL);
    CHECK_EQ_INT(cel_json_string_ucs(&w, beyond, 1, 0), CEL_EINVAL);
    CHECK_EQ_INT(cel_json_string_ucs(&w, beyond, 1, 4), 0);
    CHECK_EQ_INT(cel_json_end_array(&w), 0);
    CHECK_BUF(&b, "[\"a\"]");
    cel_json_writer_free(&w);
    cel_buf_free(&b);
}

TEST(nesting_commas_and_colons)
{
    cel_buf b = { 0 };
    cel_json_writer w;
    cel_json_writer_init(&w, &b, 0);
    CHECK_EQ_INT(cel_json_begin_object(&w), 0);
    CHECK_EQ_INT(cel_json_key(&w, IN("a")), 0);
    CHECK_EQ_INT(cel_json_begin_array(&w), 0);
    CHECK_EQ_INT(cel_json_int64(&w, 1), 0);
    CHECK_EQ_INT(cel_json_double(&w, 2.5), 0);
    CHECK_EQ_INT(cel_json_begin_object(&w), 0);
    CHECK_EQ_INT(cel_json_key(&w, IN("b")), 0);
    CHECK_EQ_INT(cel_json_null(&w), 0);
    CHECK_EQ_INT(cel_json_end_object(&w), 0);
    CHECK_EQ_INT(cel_json_begin_array(&w), 0);
    CHECK_EQ_INT(cel_json_end_array(&w), 0);
    CHECK_EQ_INT(cel_json_begin_object(&w), 0);
    CHECK_EQ_INT(cel_json_end_object(&w), 0);
    CHECK_EQ_INT(cel_json_end_array(&w), 0);
    CHECK_EQ_INT(cel_json_key(&w, IN("k\"")), 0);
    CHECK_EQ_INT(cel_json_bool(&w, 1), 0);
    CHECK_EQ_INT(cel_json_key(&w, IN("r")), 0);
    CHECK_EQ_INT(cel_json_raw(&w, IN("{\"x\":[]}")), 0);
    CHECK_EQ_INT(cel_json_key(&w, IN("f")), 0);
    CHECK_EQ_INT(cel_json_bool(&w, 0), 0);
    CHECK(!cel_json_complete(&w));
    CHECK_EQ_INT(cel_json_end_object(&w), 0);
    CHECK(cel_json_complete(&w));
    CHECK_BUF(&b, "{\"a\":[1,2.5,{\"b\":null},[],{}],\"k\\\"\":true,\"r\":{\"x\":[]},\"f\":false}");
    cel_json_writer_free(&w);
    cel_buf_free(&b);
}

TEST(scalars_at_top_level)
{
    cel_buf b = { 0 };
    cel_json_writer w;
    cel_json_writer_init(&w, &b, 0);
    CHECK_EQ_INT(cel_json_string(&w, IN("x")), 0);
    CHECK(cel_json_complete(&w));
    CHECK_EQ_INT(cel_json_null(&w), CEL_ESTATE);          /* one top-level value */
    CHECK_EQ_INT(cel_json_begin_array(&w), CEL_ESTATE);
    CHECK_BUF(&b, "\"x\"");
    cel_json_writer_free(&w);
    cel_buf_free(&b);
}

TEST(misuse_is_estate_and_writes_nothing)
{
    cel_buf b = { 0 };
    cel_json_writer w;
    cel_json_writer_init(&w, &b, 0);
    CHECK_EQ_INT(cel_json_key(&w, IN("a")), CEL_ESTATE);  /* key at top level */
    CHECK_EQ_INT(cel_json_end_array(&w), CEL_ESTATE);
    CHECK_EQ_INT(cel_json_end_object(&w), CEL_ESTATE);
    CHECK_EQ_INT(cel_json_begin_array(&w), 0);
    CHECK_EQ_INT(cel_json_key(&w, IN("a")), CEL_ESTATE);  /* key in array */
    CHECK_EQ_INT(cel_json_key_ucs(&w, "a", 1, 1), CEL_ESTATE);
    CHECK_EQ_INT(cel_json_end_object(&w), CEL_ESTATE);
    CHECK_EQ_INT(cel_json_begin_object(&w), 0);
    CHECK_EQ_INT(cel_json_int64(&w, 1), CEL_ESTATE);      /* value where a key is due */
    CHECK_EQ_INT(cel_json_string(&w, IN("v")), CEL_ESTATE);
    CHECK_EQ_INT(cel_json_begin_array(&w), CEL_ESTATE);
    CHECK_EQ_INT(cel_json_end_array(&w), CEL_ESTATE);
    CHECK_EQ_INT(cel_json_key(&w, IN("k")), 0);
    CHECK_EQ_INT(cel_json_key(&w, IN("k2")), CEL_ESTATE); /* two keys in a row */
    CHECK_EQ_INT(cel_json_end_object(&w), CEL_ESTATE);    /* dangling key */
    CHECK_EQ_INT(cel_json_uint64(&w, 7), 0);
    CHECK_EQ_INT(cel_json_end_object(&w), 0);
    CHECK_EQ_INT(cel_json_end_array(&w), 0);
    CHECK_BUF(&b, "[{\"k\":7}]");
    cel_json_writer_free(&w);
    cel_buf_free(&b);
}

TEST(depth_limit_default)
{
    cel_buf b = { 0 };
    cel_json_writer w;
    cel_json_writer_init(&w, &b, 0);
    for (uint32_t i = 0; i < CEL_JSON_DEFAULT_DEPTH; i++)
        CHECK_EQ_INT(cel_json_begin_array(&w), 0);
    size_t len = b.len;
    CHECK_EQ_INT(cel_json_begin_array(&w), CEL_ESTATE);
    CHECK_EQ_INT(cel_json_begin_object(&w), CEL_ESTATE);
    CHECK_EQ_INT(b.len, len);
    CHECK_EQ_INT(cel_json_int64(&w, 0), 0);               /* a scalar is still fine */
    for (uint32_t i = 0; i < CEL_JSON_DEFAULT_DEPTH; i++)
        CHECK_EQ_INT(cel_json_end_array(&w), 0);
    CHECK(cel_json_complete(&w));
    CHECK_EQ_INT(b.len, 2 * CEL_JSON_DEFAULT_DEPTH + 1);
    cel_json_writer_free(&w);
    cel_buf_free(&b);
}

TEST(depth_beyond_inline_stack)
{
    /* Object/array bits past the inline stack live in the spill area and
     * must still pair every end with its begin. */
    uint32_t depth = 3 * CEL_JSON_INLINE_DEPTH + 5;
    cel_buf b = { 0 };
    cel_json_writer w;
    cel_json_writer_init(&w, &b, depth);
    for (uint32_t i = 0; i < depth; i++) {
        if (i % 3 == 1) {
            CHECK_EQ_INT(cel_json_begin_object(&w), 0);
            CHECK_EQ_INT(cel_json_key(&w, IN("k")), 0);
        } else {
            CHECK_EQ_INT(cel_json_begin_array(&w), 0);
        }
    }
    CHECK_EQ_INT(cel_json_begin_array(&w), CEL_ESTATE);
    CHECK_EQ_INT((depth - 1) % 3, 1);                   /* innermost: {"k": */
    CHECK_EQ_INT(cel_json_null(&w), 0);
    for (uint32_t i = depth; i-- > 0;) {
        if (i % 3 == 1) {
            CHECK_EQ_INT(cel_json_end_array(&w), CEL_ESTATE);
            CHECK_EQ_INT(cel_json_end_object(&w), 0);
        } else {
            CHECK_EQ_INT(cel_json_end_object(&w), CEL_ESTATE);
            CHECK_EQ_INT(cel_json_end_array(&w), 0);
        }
    }
    CHECK(cel_json_complete(&w));
    cel_json_writer_free(&w);
    cel_json_writer_free(NULL);
    cel_buf_free(&b);
}

TEST(integers)
{
    cel_buf b = { 0 };
    cel_json_writer w;
    cel_json_writer_init(&w, &b, 0);
    CHECK_EQ_INT(cel_json_begin_array(&w), 0);
    CHECK_EQ_INT(cel_json_int64(&w, 0), 0);
    CHECK_EQ_INT(cel_json_int64(&w, -1), 0);
    CHECK_EQ_INT(cel_json_int64(&w, INT64_MIN), 0);
    CHECK_EQ_INT(cel_json_int64(&w, INT64_MAX), 0);
    CHECK_EQ_INT(cel_json_uint64(&w, UINT64_MAX), 0);
    CHECK_EQ_INT(cel_json_bigint(&w, IN("123456789012345678901234567890")), 0);
    CHECK_EQ_INT(cel_json_bigint(&w, IN("-98765432109876543210")), 0);
    CHECK_EQ_INT(cel_json_bigint(&w, IN("0")), 0);
    CHECK_EQ_INT(cel_json_bigint(&w, IN("")), CEL_EINVAL);
    CHECK_EQ_INT(cel_json_bigint(&w, IN("-")), CEL_EINVAL);
    CHECK_EQ_INT(cel_json_bigint(&w, IN("01")), CEL_EINVAL);
    CHECK_EQ_INT(cel_json_bigint(&w, IN("--1")), CEL_EINVAL);
    CHECK_EQ_INT(cel_json_bigint(&w, IN("12a")), CEL_EINVAL);
    CHECK_EQ_INT(cel_json_bigint(&w, IN("1.5")), CEL_EINVAL);
    CHECK_EQ_INT(cel_json_end_array(&w), 0);
    CHECK_BUF(&b, "[0,-1,-9223372036854775808,9223372036854775807,18446744073709551615,"
                  "123456789012345678901234567890,-98765432109876543210,0]");
    cel_json_writer_free(&w);
    cel_buf_free(&b);
}

/* python3 -c 'print(repr(x))' for each x. */
static const struct {
    double v;
    const char *repr;
} doubles[] = {
    {0.1, "0.1"},
    {1e16, "1e+16"},
    {1e-5, "1e-05"},
    {123456789012345678.0, "1.2345678901234568e+17"},
    {5e-324, "5e-324"},
    {1.7976931348623157e308, "1.7976931348623157e+308"},
    {-0.0, "-0.0"},
    {0.30000000000000004, "0.30000000000000004"},
    {1e22, "1e+22"},
    {9007199254740993.0, "9007199254740992.0"},
    {2.5, "2.5"},
    {100.0, "100.0"},
    {0.0, "0.0"},
    {1e-4, "0.0001"},
    {9999999999999998.0, "9999999999999998.0"},
    {1.5e-5, "1.5e-05"},
    {1e-7, "1e-07"},
    {2.2250738585072014e-308, "2.2250738585072014e-308"},
    {1.5e-323, "1.5e-323"},
    {5e-310, "5e-310"},
    {123.456, "123.456"},
    {-1.5, "-1.5"},
    {1e15, "1000000000000000.0"},
    {1e100, "1e+100"},
    {9.223372036854776e18, "9.223372036854776e+18"},
    {1.8446744073709552e19, "1.8446744073709552e+19"},
    {4.35, "4.35"},
    {0.001, "0.001"},
    {1.0 / 3.0, "0.3333333333333333"},
    {9.332636185032189e-302, "9.332636185032189e-302"},
    {-1.7976931348623157e308, "-1.7976931348623157e+308"},
    {-2.2250738585072014e-308, "-2.2250738585072014e-308"},
    {-0.00012345678901234567, "-0.00012345678901234567"},
};

TEST(doubles_match_python_repr)
{
    for (size_t i = 0; i < sizeof(doubles) / sizeof(doubles[0]); i++) {
        char out[CEL_JSON_DOUBLE_MAX];
        int n = cel_json_format_double(doubles[i].v, out);
        CHECK_EQ_INT(n, (long long)strlen(doubles[i].repr));
        if (strcmp(out, doubles[i].repr) != 0) {
            char m[128];
            snprintf(m, sizeof(m), "double %zu: %s != %s", i, out, doubles[i].repr);
            test_fail_(__FILE__, __LINE__, m);
        }
        cel_buf b = { 0 };
        cel_json_writer w;
        cel_json_writer_init(&w, &b, 0);
        CHECK_EQ_INT(cel_json_double(&w, doubles[i].v), 0);
        CHECK(buf_is(&b, doubles[i].repr, strlen(doubles[i].repr)));
        cel_json_writer_free(&w);
        cel_buf_free(&b);
    }
}

static double from_bits(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

TEST(doubles_round_trip_and_powers_of_two)
{
    /* Every power of two and its neighbours reads back to the same bits
     * (the asymmetric-gap case), and no output overflows the buffer. */
    for (uint64_t e = 0; e < 2047; e++) {
        for (uint64_t m = 0; m < 4; m++) {
            uint64_t mant = m == 0 ? 0 : m == 1 ? 1 : m == 2 ? 0xFFFFFFFFFFFFFull : 0x8000000000000ull;
            uint64_t bits = e << 52 | mant;
            if (bits == 0)
                continue;
            double v = from_bits(bits);
            char out[CEL_JSON_DOUBLE_MAX];
            int n = cel_json_format_double(v, out);
            CHECK(n > 0 && n < CEL_JSON_DOUBLE_MAX);
            CHECK(strtod(out, NULL) == v);
        }
    }
}

TEST(nonfinite_doubles_rejected)
{
    cel_buf b = { 0 };
    cel_json_writer w;
    cel_json_writer_init(&w, &b, 0);
    char out[CEL_JSON_DOUBLE_MAX];
    CHECK_EQ_INT(cel_json_format_double(NAN, out), CEL_EINVAL);
    CHECK_EQ_INT(cel_json_format_double(INFINITY, out), CEL_EINVAL);
    CHECK_EQ_INT(cel_json_begin_array(&w), 0);
    CHECK_EQ_INT(cel_json_double(&w, NAN), CEL_EINVAL);
    CHECK_EQ_INT(cel_json_double(&w, -INFINITY), CEL_EINVAL);
    CHECK_EQ_INT(cel_json_double(&w, 1.0), 0);
    CHECK_EQ_INT(cel_json_end_array(&w), 0);
    CHECK_BUF(&b, "[1.0]");
    cel_json_writer_free(&w);
    cel_buf_free(&b);
}

TEST(out_of_memory_leaves_buffer_unchanged)
{
    cel_buf b = { 0 };
    cel_json_writer w;
    cel_json_writer_init(&w, &b, 2000);
    CHECK_EQ_INT(cel_json_begin_array(&w), 0);
    CHECK_EQ_INT(cel_json_string(&w, IN("first")), 0);
    size_t len = b.len;
    char big[5000];
    memset(big, 'x', sizeof(big));
    cel_alloc_fail_after(1);
    CHECK_EQ_INT(cel_json_string(&w, big, sizeof(big)), CEL_ENOMEM);
    CHECK_EQ_INT(b.len, len);
    for (uint32_t i = 0; i < CEL_JSON_INLINE_DEPTH - 1; i++)
        CHECK_EQ_INT(cel_json_begin_array(&w), 0);
    CHECK_EQ_INT(cel_json_begin_array(&w), CEL_ENOMEM);   /* spill allocation */
    cel_alloc_fail_after(0);
    for (uint32_t i = 0; i < CEL_JSON_INLINE_DEPTH - 1; i++)
        CHECK_EQ_INT(cel_json_end_array(&w), 0);
    CHECK_EQ_INT(cel_json_string(&w, big, 3), 0);
    CHECK_EQ_INT(cel_json_end_array(&w), 0);
    CHECK(cel_json_complete(&w));
    CHECK_EQ_INT(b.len, len + 1 + 2 * (CEL_JSON_INLINE_DEPTH - 1) + 7);  /* ,[..] ,"xxx" ] */
    cel_json_writer_free(&w);
    cel_buf_free(&b);
}

TEST(appends_after_existing_bytes)
{
    /* The writer appends; bytes already in the buffer (and a consumed
     * prefix) are left alone. */
    cel_buf b = { 0 };
    CHECK_EQ_INT(cel_buf_append(&b, IN("HTTP/1.1 200 OK\r\n\r\n")), 0);
    cel_buf_consume(&b, 9);
    cel_json_writer w;
    cel_json_writer_init(&w, &b, 0);
    CHECK_EQ_INT(cel_json_begin_object(&w), 0);
    CHECK_EQ_INT(cel_json_end_object(&w), 0);
    CHECK_BUF(&b, "200 OK\r\n\r\n{}");
    cel_json_writer_free(&w);
    cel_buf_free(&b);
}
