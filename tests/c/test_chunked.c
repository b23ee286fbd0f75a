/* Unit tests for the chunked body decoder (src/core/chunked.c).
 *
 * Bodies are fed the way a connection would: pieces arrive one after another
 * (each copied to a guard-page buffer), every call gets what is left of the
 * current piece, and no byte is ever handed in twice.  Every valid body is
 * decoded whole, split at every byte boundary, and one byte at a time, and
 * must give the same data and the same end position each way.
 */
#include <stdint.h>

#include "errors.h"
#include "http1.h"
#include "test.h"

#define IN(lit) lit, sizeof(lit) - 1

typedef struct result {
    int rc;             /* 0 done, CEL_EAGAIN input exhausted, or an error */
    size_t used;        /* input bytes used (through the end of the body when rc == 0) */
    size_t slices;      /* data slices returned */
    char *data;         /* reassembled data */
    size_t data_len;
} result;

/* Decode in[0..len) delivered in pieces ending at the offsets cuts[0..n)
 * (ascending, <= len); the last piece ends at len. */
static result decode_pieces(const char *in, size_t len, const size_t *cuts, size_t ncuts)
{
    result r = { CEL_EAGAIN, 0, 0, malloc(len + 1), 0 };
    cel_chunked c;
    cel_chunked_init(&c);
    size_t start = 0;
    for (size_t piece = 0; piece <= ncuts && r.rc == CEL_EAGAIN; piece++) {
        size_t stop = piece < ncuts ? cuts[piece] : len;
        guard_buf g = guard_copy(in + start, stop - start);
        size_t off = 0;
        for (;;) {
            size_t n = SIZE_MAX, dl = SIZE_MAX;
            const char *d = in;         /* must be overwritten */
            int rc = cel_chunked_decode(&c, g.p + off, stop - start - off, &n, &d, &dl);
            CHECK(n <= stop - start - off);
            if (rc == 1) {
                CHECK(dl > 0 && d == g.p + off + n - dl);
                memcpy(r.data + r.data_len, d, dl);
                r.data_len += dl;
                r.slices++;
                off += n;
                continue;
            }
            CHECK(d == NULL && dl == 0);
            if (rc == CEL_EAGAIN)
                CHECK_EQ_INT(n, stop - start - off);
            off += n;
            r.rc = rc;
            break;
        }
        r.used = start + off;
        guard_free(&g);
        start = stop;
    }
    return r;
}

static result decode_whole(const char *in, size_t len)
{
    return decode_pieces(in, len, NULL, 0);
}

static result decode_bytewise(const char *in, size_t len)
{
    size_t *cuts = malloc((len + 1) * sizeof(*cuts));
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    result r = decode_pieces(in, len, cuts, len);
    free(cuts);
    return r;
}

static int same(const result *a, const result *b)
{
    return a->rc == b->rc && a->used == b->used && a->data_len == b->data_len &&
           memcmp(a->data, b->data, a->data_len) == 0;
}

/* ---------------------------------------------------------------- valid */

typedef struct valid_case {
    const char *in;
    size_t len;
    size_t body_len;            /* bytes of `in` that are the chunked body */
    const char *data;
    size_t data_len;
    size_t slices;              /* data slices when decoded whole */
} valid_case;

#define BODY(lit) lit, sizeof(lit) - 1, sizeof(lit) - 1

static const valid_case valid[] = {
    { BODY("0\r\n\r\n"), IN(""), 0 },
    { BODY("5\r\nhello\r\n0\r\n\r\n"), IN("hello"), 1 },
    { BODY("4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n"),
      IN("Wikipedia in\r\n\r\nchunks."), 3 },
    { BODY("a\r\n0123456789\r\nA\r\nabcdefghij\r\nf\r\n0\r\n\r\n0\r\n\r\nxyzwv\r\n0\r\n\r\n"),
      IN("0123456789abcdefghij0\r\n\r\n0\r\n\r\nxyzwv"), 3 },
    { BODY("0005\r\nhello\r\n0000\r\n\r\n"), IN("hello"), 1 },
    { BODY("0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n"), IN("hello"), 1 },
    { BODY("5;name=value\r\nhello\r\n0;last\r\n\r\n"), IN("hello"), 1 },
    { BODY("5 ; a=\"q;x\" ;b\r\nhello\r\n0\t;c\r\n\r\n"), IN("hello"), 1 },
    { BODY("3;\xe2\x98\x83\r\nabc\r\n0\r\n\r\n"), IN("abc"), 1 },
    { BODY("5\r\nhello\r\n0\r\nX-Checksum: abc\r\nX-Other:\r\nx:  \t v \r\n\r\n"), IN("hello"), 1 },
    { BODY("1\r\n\0\r\n1\r\n\xff\r\n0\r\n\r\n"), IN("\0\xff"), 2 },
    { IN("5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), 15, IN("hello"), 1 },
    { IN("0\r\n\r\n0\r\n\r\n"), 5, IN(""), 0 },
    { IN("0\r\nA: b\r\n\r\n\r\n"), 11, IN(""), 0 },
};

static void check_valid(const valid_case *v, size_t idx)
{
    result w = decode_whole(v->in, v->len);
    if (w.rc != 0 || w.used != v->body_len)
        fprintf(stderr, "  valid[%zu]: rc=%d used=%zu\n", idx, w.rc, w.used);
    CHECK_EQ_INT(w.rc, 0);
    CHECK_EQ_INT(w.used, v->body_len);
    CHECK_EQ_INT(w.slices, v->slices);
    CHECK_EQ_INT(w.data_len, v->data_len);
    CHECK(w.data_len == v->data_len && memcmp(w.data, v->data, w.data_len) == 0);

    for (size_t k = 0; k <= v->len; k++) {
        result s = decode_pieces(v->in, v->len, &k, 1);
        if (!same(&w, &s))
            fprintf(stderr, "  valid[%zu] split %zu: rc=%d used=%zu\n", idx, k, s.rc, s.used);
        CHECK(same(&w, &s));
        free(s.data);
    }
    /* three pieces: every pair of cut points */
    for (size_t a = 0; a <= v->len; a++) {
        for (size_t b = a; b <= v->len; b++) {
            size_t cuts[2] = { a, b };
            result s = decode_pieces(v->in, v->len, cuts, 2);
            CHECK(same(&w, &s));
            free(s.data);
        }
    }
    result b = decode_bytewise(v->in, v->len);
    CHECK(same(&w, &b));
    free(b.data);
    /* every proper prefix of the body needs more */
    for (size_t k = 0; k < v->body_len; k++) {
        result p = decode_whole(v->in, k);
        CHECK_EQ_INT(p.rc, CEL_EAGAIN);
        CHECK_EQ_INT(p.used, k);
        free(p.data);
    }
    free(w.data);
}

TEST(valid_bodies)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        check_valid(&valid[i], i);
}

TEST(data_content)
{
    result r = decode_whole(IN("1\r\n\0\r\n1\r\n\xff\r\n0\r\n\r\n"));
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.data_len, 2);
    CHECK(r.data[0] == '\0' && (unsigned char)r.data[1] == 0xff);
    free(r.data);
    r = decode_whole(IN("4\r\nWiki\r\n5\r\npedia\r\n0\r\n\r\n"));
    CHECK_EQ_INT(r.data_len, 9);
    CHECK(memcmp(r.data, "Wikipedia", 9) == 0);
    free(r.data);
}

TEST(large_chunk)
{
    size_t n = 100000;
    char *in = malloc(n + 32);
    size_t o = (size_t)sprintf(in, "%zx\r\n", n);
    for (size_t i = 0; i < n; i++)
        in[o + i] = (char)('a' + i % 26);
    o += n;
    memcpy(in + o, "\r\n0\r\n\r\n", 7);
    o += 7;
    result r = decode_whole(in, o);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.used, o);
    CHECK_EQ_INT(r.slices, 1);
    CHECK_EQ_INT(r.data_len, n);
    CHECK(memcmp(r.data, in + 7, n) == 0);
    free(r.data);
    /* split in the middle of the data: two slices, same bytes */
    size_t cut = 5000;
    r = decode_pieces(in, o, &cut, 1);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.slices, 2);
    CHECK(r.data_len == n && memcmp(r.data, in + 7, n) == 0);
    free(r.data);
    free(in);
}

TEST(huge_size_is_accepted)
{
    /* 16 hex digits is the most a uint64_t holds; data then just flows */
    result r = decode_whole(IN("FFFFFFFFFFFFFFFF\r\nabc"));
    CHECK_EQ_INT(r.rc, CEL_EAGAIN);
    CHECK_EQ_INT(r.data_len, 3);
    free(r.data);
}

TEST(done_is_sticky)
{
    cel_chunked c;
    cel_chunked_init(&c);
    guard_buf g = guard_copy(IN("0\r\n\r\nrest"));
    size_t n;
    const char *d;
    size_t dl;
    CHECK_EQ_INT(cel_chunked_decode(&c, g.p, 9, &n, &d, &dl), 0);
    CHECK_EQ_INT(n, 5);
    CHECK_EQ_INT(cel_chunked_decode(&c, g.p + 5, 4, &n, &d, &dl), 0);
    CHECK_EQ_INT(n, 0);
    guard_free(&g);
}

TEST(empty_input)
{
    cel_chunked c;
    cel_chunked_init(&c);
    size_t n = 99;
    const char *d;
    size_t dl;
    guard_buf g = guard_copy("", 0);
    CHECK_EQ_INT(cel_chunked_decode(&c, g.p, 0, &n, &d, &dl), CEL_EAGAIN);
    CHECK_EQ_INT(n, 0);
    guard_free(&g);
}

/* -------------------------------------------------------------- invalid */

typedef struct invalid_case {
    const char *in;
    size_t len;
} invalid_case;

static const invalid_case invalid[] = {
    /* size line */
    { IN("g\r\n") },
    { IN("\r\n") },
    { IN(";ext\r\n") },
    { IN(" 5\r\nhello\r\n0\r\n\r\n") },
    { IN("5x\r\nhello\r\n") },
    { IN("-5\r\n") },
    { IN("+5\r\n") },
    { IN("0x5\r\n") },
    { IN("5 \r\nhello\r\n") },
    { IN("5 x\r\nhello\r\n") },
    { IN("5\nhello\r\n0\r\n\r\n") },
    { IN("5\rhello\r\n0\r\n\r\n") },
    { IN("5;a\nhello\r\n") },
    { IN("5;a\rhello\r\n") },
    { IN("5;\x01\r\nhello\r\n") },
    { IN("5;\x7f\r\nhello\r\n") },
    /* size overflow: 17+ digits, whatever their value */
    { IN("10000000000000000\r\n") },
    { IN("00000000000000005\r\nhello\r\n0\r\n\r\n") },
    { IN("FFFFFFFFFFFFFFFFF\r\n") },
    { IN("123456789abcdef0123456789\r\n") },
    /* CRLF after data */
    { IN("5\r\nhelloX\r\n0\r\n\r\n") },
    { IN("5\r\nhello\n0\r\n\r\n") },
    { IN("5\r\nhello\r0\r\n\r\n") },
    { IN("5\r\nhello0\r\n\r\n") },
    { IN("5\r\nhello\r\r\n0\r\n\r\n") },
    /* trailers */
    { IN("0\r\n\n") },
    { IN("0\r\n\r\r") },
    { IN("0\r\nX : a\r\n\r\n") },
    { IN("0\r\nX: a\r\n b\r\n\r\n") },
    { IN("0\r\n a: b\r\n\r\n") },
    { IN("0\r\n: b\r\n\r\n") },
    { IN("0\r\nNoColon\r\n\r\n") },
    { IN("0\r\nX: a\nY: b\r\n\r\n") },
    { IN("0\r\nX: a\rb\r\n\r\n") },
    { IN("0\r\nX: \0\r\n\r\n") },
    { IN("0\r\nX: \x01\r\n\r\n") },
    { IN("0\r\nX(: b\r\n\r\n") },
    { IN("0\r\n\xc3\xa9: b\r\n\r\n") },
    { IN("0\r\nX: a\r\n\r\r\n") },
};

TEST(invalid_bodies)
{
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        const invalid_case *c = &invalid[i];
        result w = decode_whole(c->in, c->len);
        if (w.rc != CEL_EBADCHUNK)
            fprintf(stderr, "  invalid[%zu]: rc=%d\n", i, w.rc);
        CHECK_EQ_INT(w.rc, CEL_EBADCHUNK);
        CHECK(w.used <= c->len);
        for (size_t k = 0; k <= c->len; k++) {
            result s = decode_pieces(c->in, c->len, &k, 1);
            CHECK(same(&w, &s));
            free(s.data);
        }
        result b = decode_bytewise(c->in, c->len);
        CHECK(same(&w, &b));
        free(b.data);
        free(w.data);
    }
}

TEST(error_is_sticky)
{
    cel_chunked c;
    cel_chunked_init(&c);
    guard_buf g = guard_copy(IN("zz0\r\n\r\n"));
    size_t n;
    const char *d;
    size_t dl;
    CHECK_EQ_INT(cel_chunked_decode(&c, g.p, 7, &n, &d, &dl), CEL_EBADCHUNK);
    CHECK_EQ_INT(cel_chunked_decode(&c, g.p + 2, 5, &n, &d, &dl), CEL_EBADCHUNK);
    guard_free(&g);
}

/* ---------------------------------------------------------------- limits */

/* "5;xxx...x\r\n" size line of exactly n bytes, then the rest of a body. */
static char *size_line(size_t n, size_t *len)
{
    char *s = malloc(n + 32);
    s[0] = '5';
    s[1] = ';';
    memset(s + 2, 'x', n - 4);
    memcpy(s + n - 2, "\r\nhello\r\n0\r\n\r\n", 15);
    *len = n + 12;
    return s;
}

TEST(size_line_limit)
{
    size_t len;
    char *s = size_line(4096, &len);
    result r = decode_whole(s, len);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.used, len);
    free(r.data);
    free(s);

    s = size_line(4097, &len);
    r = decode_whole(s, len);
    CHECK_EQ_INT(r.rc, CEL_EBADCHUNK);
    free(r.data);
    r = decode_whole(s, 4097);          /* rejected without waiting for more */
    CHECK_EQ_INT(r.rc, CEL_EBADCHUNK);
    free(r.data);
    r = decode_whole(s, 4096);
    CHECK_EQ_INT(r.rc, CEL_EAGAIN);
    free(r.data);
    free(s);

    /* the limit applies to every size line, not just the first */
    s = malloc(8192);
    size_t o = (size_t)sprintf(s, "1\r\na\r\n");
    size_t line_start = o;
    s[o++] = '1';
    s[o++] = ';';
    while (o - line_start < 4097 - 2)
        s[o++] = 'y';
    memcpy(s + o, "\r\nb\r\n0\r\n\r\n", 10);
    o += 10;
    r = decode_whole(s, o);
    CHECK_EQ_INT(r.rc, CEL_EBADCHUNK);
    free(r.data);
    free(s);
}

/* "0\r\n" + trailer fields "X: vvv\r\n" + "\r\n" with a trailer section of
 * exactly n bytes (including the final CRLF). */
static char *trailers(size_t n, size_t *len)
{
    char *s = malloc(n + 16);
    size_t o = (size_t)sprintf(s, "0\r\n");
    size_t left = n - 2;
    while (left > 0) {
        size_t field = left > 1000 ? 1000 : left;
        if (left - field > 0 && left - field < 5)
            field -= 5;             /* leave room for one more minimal field */
        memcpy(s + o, "X: ", 3);
        memset(s + o + 3, 'v', field - 5);
        memcpy(s + o + field - 2, "\r\n", 2);
        o += field;
        left -= field;
    }
    memcpy(s + o, "\r\n", 2);
    *len = o + 2;
    return s;
}

TEST(trailer_limit)
{
    size_t len;
    char *s = trailers(65536, &len);
    CHECK_EQ_INT(len, 65536 + 3);
    result r = decode_whole(s, len);
    CHECK_EQ_INT(r.rc, 0);
    CHECK_EQ_INT(r.used, len);
    free(r.data);
    r = decode_bytewise(s, len);
    CHECK_EQ_INT(r.rc, 0);
    free(r.data);
    free(s);

    s = trailers(65537, &len);
    r = decode_whole(s, len);
    CHECK_EQ_INT(r.rc, CEL_EBADCHUNK);
    free(r.data);
    free(s);

    /* a trailer section that never ends is cut off at the limit */
    s = trailers(100000, &len);
    r = decode_whole(s, 3 + 65537);
    CHECK_EQ_INT(r.rc, CEL_EBADCHUNK);
    free(r.data);
    r = decode_whole(s, 3 + 65536);
    CHECK_EQ_INT(r.rc, CEL_EAGAIN);
    free(r.data);
    free(s);
}
