/* Tests for src/core/urlcode.c.  Expected values come from Python
 * (urllib.parse.unquote / unquote_plus / parse_qsl, starlette's
 * cookie_parser); inputs end at a guard page so over-reads crash. */
#include "test.h"

#include "errors.h"
#include "urlcode.h"

#define S(lit) lit, (sizeof(lit) - 1)

static int decodes_to(const char *in, size_t n, int plus, const char *want, size_t wn)
{
    guard_buf g = guard_copy(in, n);
    char out[256];
    size_t o = cel_url_decode(g.p, n, out, plus);
    int ok = o == wn && memcmp(out, want, wn) == 0 && cel_url_decoded_len(g.p, n) == o;
    guard_free(&g);
    return ok;
}

TEST(decode_basic)
{
    CHECK(decodes_to(S("a%20b"), 0, S("a b")));
    CHECK(decodes_to(S("a+b"), 0, S("a+b")));
    CHECK(decodes_to(S("a+b"), 1, S("a b")));
    CHECK(decodes_to(S("%41%4a%4A"), 0, S("AJJ")));
    CHECK(decodes_to(S("%"), 0, S("%")));
    CHECK(decodes_to(S("%4"), 0, S("%4")));
    CHECK(decodes_to(S("%4g"), 0, S("%4g")));
    CHECK(decodes_to(S("%%41"), 0, S("%A")));
    CHECK(decodes_to(S("%2+"), 1, S("%2 ")));
    CHECK(decodes_to(S("%00"), 0, "\0", 1));
    CHECK(decodes_to(S(""), 1, S("")));
    CHECK(decodes_to(S("%C3%A9"), 0, S("\xc3\xa9")));
}

TEST(decode_in_place_and_len)
{
    char b[] = "x%2Fy+z%";
    CHECK_EQ_INT(cel_url_decoded_len(b, 8), 6);
    size_t n = cel_url_decode(b, 8, b, 1);
    CHECK_EQ_INT(n, 6);
    CHECK(memcmp(b, "x/y z%", 6) == 0);
}

TEST(decoded_equals)
{
    CHECK(cel_url_decoded_equals(S("a%62c"), S("abc"), 1));
    CHECK(cel_url_decoded_equals(S("a+b"), S("a b"), 1));
    CHECK(!cel_url_decoded_equals(S("a+b"), S("a b"), 0));
    CHECK(!cel_url_decoded_equals(S("abc"), S("ab"), 1));
    CHECK(!cel_url_decoded_equals(S("ab"), S("abc"), 1));
    CHECK(cel_url_decoded_equals(S(""), S(""), 1));
}

TEST(encode_roundtrip)
{
    char src[256], enc[768], dec[256];
    for (int i = 0; i < 256; i++)
        src[i] = (char)i;
    for (int plus = 0; plus < 2; plus++) {
        size_t e = cel_url_encode(src, 256, enc, plus);
        size_t d = cel_url_decode(enc, e, dec, plus);
        CHECK_EQ_INT(d, 256);
        CHECK(memcmp(src, dec, 256) == 0);
    }
    size_t e = cel_url_encode(S("a b/~_.-+"), enc, 0);
    CHECK_EQ_INT(e, 15);
    CHECK(memcmp(enc, "a%20b%2F~_.-%2B", 15) == 0);
    e = cel_url_encode(S("a b"), enc, 1);
    CHECK_EQ_INT(e, 3);
    CHECK(memcmp(enc, "a+b", 3) == 0);
    e = cel_url_encode(S("\xff/"), enc, 0);
    CHECK_EQ_INT(e, 6);
    CHECK(memcmp(enc, "%FF%2F", 6) == 0);
}

TEST(utf8_validity)
{
    CHECK(cel_url_utf8_valid(S("")));
    CHECK(cel_url_utf8_valid(S("abc\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80")));
    CHECK(!cel_url_utf8_valid(S("\xc0\xaf")));             /* overlong */
    CHECK(!cel_url_utf8_valid(S("\xe0\x80\xaf")));         /* overlong */
    CHECK(!cel_url_utf8_valid(S("\xed\xa0\x80")));         /* surrogate */
    CHECK(!cel_url_utf8_valid(S("\xf4\x90\x80\x80")));     /* > U+10FFFF */
    CHECK(!cel_url_utf8_valid(S("\xc3")));                 /* truncated */
    CHECK(!cel_url_utf8_valid(S("\x80")));
    CHECK(!cel_url_utf8_valid(S("\xff")));
    guard_buf g = guard_copy("\xe2\x82", 2);
    CHECK(!cel_url_utf8_valid(g.p, 2));
    guard_free(&g);
}

static int unquotes_to(const char *in, size_t n, int plus, const char *want, size_t wn)
{
    guard_buf g = guard_copy(in, n);
    char out[512];
    size_t o = cel_url_unquote_py(g.p, n, out, plus);
    guard_free(&g);
    return o == wn && memcmp(out, want, wn) == 0 && o <= 2 * n;
}

/* Each expectation is Python's unquote(s.decode('latin-1')).encode(). */
TEST(unquote_like_python)
{
    CHECK(unquotes_to(S("%C3%A9"), 0, S("\xc3\xa9")));
    CHECK(unquotes_to(S("\xc3\xa9"), 0, S("\xc3\x83\xc2\xa9")));       /* raw bytes are latin-1 */
    CHECK(unquotes_to(S("%FF"), 0, S("\xef\xbf\xbd")));
    CHECK(unquotes_to(S("%E0%80"), 0, S("\xef\xbf\xbd\xef\xbf\xbd")));  /* E0 80: two subparts */
    CHECK(unquotes_to(S("%E1%80A"), 0, S("\xef\xbf\xbd" "A")));         /* E1 80: one subpart */
    CHECK(unquotes_to(S("%E2%82"), 0, S("\xef\xbf\xbd")));              /* truncated at end */
    CHECK(unquotes_to(S("%C3\xa9%A9"), 0, S("\xef\xbf\xbd\xc2\xa9\xef\xbf\xbd"))); /* runs split */
    CHECK(unquotes_to(S("%ED%A0%80"), 0, S("\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd")));
    CHECK(unquotes_to(S("%F0%9F%98%80"), 0, S("\xf0\x9f\x98\x80")));
    CHECK(unquotes_to(S("a+b%2B"), 1, S("a b+")));
    CHECK(unquotes_to(S("a+b%2B"), 0, S("a+b+")));
    CHECK(unquotes_to(S("\xff"), 1, S("\xc3\xbf")));
    CHECK(unquotes_to(S("%"), 1, S("%")));
    CHECK(unquotes_to(S(""), 1, S("")));
}

TEST(parse_int)
{
    long long v = 7;
    CHECK(cel_url_parse_int(S("0"), &v) && v == 0);
    CHECK(cel_url_parse_int(S("-12"), &v) && v == -12);
    CHECK(cel_url_parse_int(S("999999999999999999"), &v) && v == 999999999999999999LL);
    v = 7;
    CHECK(!cel_url_parse_int(S("1000000000000000000"), &v));
    CHECK(!cel_url_parse_int(S("01"), &v));
    CHECK(!cel_url_parse_int(S("-0"), &v));
    CHECK(!cel_url_parse_int(S("-"), &v));
    CHECK(!cel_url_parse_int(S(""), &v));
    CHECK(!cel_url_parse_int(S("+1"), &v));
    CHECK(!cel_url_parse_int(S("1a"), &v));
    CHECK(!cel_url_parse_int(S(" 1"), &v));
    CHECK_EQ_INT(v, 7);
}

/* parse_qsl("&a=1&&b&=x&c=&a=2=3", keep_blank_values=True) */
TEST(query_iteration)
{
    const char *q = "&a=1&&b&=x&c=&a=2=3&";
    guard_buf g = guard_copy(q, strlen(q));
    cel_url_query_iter it;
    cel_url_pair p;
    static const char *want[][2] = { { "a", "1" }, { "b", "" }, { "", "x" }, { "c", "" },
                                     { "a", "2=3" } };
    static const int want_eq[] = { 1, 0, 1, 1, 1 };
    cel_url_query_init(&it, g.p, strlen(q));
    size_t k = 0;
    while (cel_url_query_next(&it, &p)) {
        CHECK(k < 5);
        if (k >= 5)
            break;
        CHECK(p.key_len == strlen(want[k][0]) && memcmp(p.key, want[k][0], p.key_len) == 0);
        CHECK(p.value_len == strlen(want[k][1]) && memcmp(p.value, want[k][1], p.value_len) == 0);
        CHECK_EQ_INT(p.has_eq, want_eq[k]);
        k++;
    }
    CHECK_EQ_INT(k, 5);
    CHECK(!cel_url_query_next(&it, &p));
    cel_url_query_init(&it, g.p, 0);
    CHECK(!cel_url_query_next(&it, &p));
    guard_free(&g);
}

TEST(query_lookup)
{
    const char *q = "x=1&a+b=%C3%A9&x=2&y&x%3D=no&bad=%FF&big=12345";
    guard_buf g = guard_copy(q, strlen(q));
    size_t qn = strlen(q), vn = 99;
    char buf[8];
    CHECK_EQ_INT(cel_url_query_lookup(g.p, qn, S("x"), buf, sizeof buf, &vn), 1);
    CHECK(vn == 1 && buf[0] == '2');
    CHECK_EQ_INT(cel_url_query_lookup(g.p, qn, S("a b"), buf, sizeof buf, &vn), 1);
    CHECK(vn == 2 && memcmp(buf, "\xc3\xa9", 2) == 0);
    CHECK_EQ_INT(cel_url_query_lookup(g.p, qn, S("y"), buf, sizeof buf, &vn), 1);
    CHECK_EQ_INT(vn, 0);
    CHECK_EQ_INT(cel_url_query_lookup(g.p, qn, S("x="), buf, sizeof buf, &vn), 1);
    CHECK(vn == 2 && memcmp(buf, "no", 2) == 0);
    CHECK_EQ_INT(cel_url_query_lookup(g.p, qn, S("z"), buf, sizeof buf, &vn), 0);
    CHECK_EQ_INT(cel_url_query_lookup(g.p, qn, S("bad"), buf, sizeof buf, &vn), CEL_EUTF8);
    CHECK_EQ_INT(cel_url_query_lookup(g.p, qn, S("big"), buf, 4, &vn), CEL_ENOSPC);
    CHECK_EQ_INT(cel_url_query_lookup(g.p, qn, S("big"), buf, 5, &vn), 1);
    CHECK_EQ_INT(cel_url_query_lookup(g.p, 0, S("x"), buf, sizeof buf, &vn), 0);
    guard_free(&g);
}

typedef struct kv {
    const char *k, *v;
} kv;

static int cookies_are(const char *h, const kv *want, size_t nwant)
{
    guard_buf g = guard_copy(h, strlen(h));
    cel_cookie_iter it;
    cel_cookie c;
    size_t k = 0;
    int ok = 1;
    cel_cookie_init(&it, g.p, strlen(h));
    while (cel_cookie_next(&it, &c)) {
        char v[128];
        size_t vn = cel_cookie_unquote(c.value, c.value_len, v);
        if (k >= nwant || c.key_len != strlen(want[k].k) || memcmp(c.key, want[k].k, c.key_len)
            || vn != strlen(want[k].v) || memcmp(v, want[k].v, vn))
            ok = 0;
        k++;
    }
    guard_free(&g);
    return ok && k == nwant;
}

TEST(cookie_parsing)
{
    static const kv a[] = { { "a", "1" }, { "b", "2" } };
    CHECK(cookies_are("a=1; b=2", a, 2));
    static const kv b[] = { { "", "bare" }, { "k", "v=w" } };
    CHECK(cookies_are(" bare ;k=v=w;;  ; ", b, 2));
    static const kv c[] = { { "q", "a\"b;" }, { "o", "\n!" }, { "s", "x\\\ny" } };
    CHECK(cookies_are("q=\"a\\\"b\\073\";o=\"\\012\\!\";s=\"x\\\ny\"", c, 3));
    static const kv d[] = { { "w", "x" } };
    CHECK(cookies_are("\xa0w\x85=\x1cx\x0b", d, 1));
    static const kv e[] = { { "k", "\"" }, { "e", "" } };
    CHECK(cookies_are("k=\";e=\"\"", e, 2));
    static const kv f[] = { { "o", "\\8\\477" } };           /* not octal: quote-pairs */
    CHECK(cookies_are("o=\"\\\\8\\\\477\"", f, 1));
    static const kv g2[] = { { "o", "8'7" } };
    CHECK(cookies_are("o=\"\\8\\0477\"", g2, 1));
    CHECK(cookies_are("", NULL, 0));
    CHECK(cookies_are(" ; ;", NULL, 0));
}

TEST(cookie_lookup)
{
    const char *h = "a=1; b=\"x\\\"y\"; a=3; =empty";
    size_t vn = 0;
    char buf[16];
    CHECK_EQ_INT(cel_cookie_lookup(h, strlen(h), S("a"), buf, sizeof buf, &vn), 1);
    CHECK(vn == 1 && buf[0] == '3');
    CHECK_EQ_INT(cel_cookie_lookup(h, strlen(h), S("b"), buf, sizeof buf, &vn), 1);
    CHECK(vn == 3 && memcmp(buf, "x\"y", 3) == 0);
    CHECK_EQ_INT(cel_cookie_lookup(h, strlen(h), S(""), buf, sizeof buf, &vn), 1);
    CHECK(vn == 5 && memcmp(buf, "empty", 5) == 0);
    CHECK_EQ_INT(cel_cookie_lookup(h, strlen(h), S("c"), buf, sizeof buf, &vn), 0);
    CHECK_EQ_INT(cel_cookie_lookup(h, strlen(h), S("b"), buf, 2, &vn), CEL_ENOSPC);
}
