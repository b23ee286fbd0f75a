/* Unit tests for cel_http_parse_request (src/core/http1_parse.c).
 *
 * Every parse goes through a guard-page buffer (test.h), and every valid
 * head is also parsed at every split point: each proper prefix must give
 * CEL_EAGAIN and leave num_headers (the capacity) alone, and the whole head
 * must then parse to the same fields.  Every invalid head must give its
 * error, and each of its prefixes either CEL_EAGAIN or that same error.
 */
#include <stdint.h>

#include "errors.h"
#include "http1.h"
#include "test.h"

#define MAXH 128
#define IN(lit) lit, sizeof(lit) - 1

typedef struct parsed {
    guard_buf g;
    cel_header hdrs[MAXH];
    cel_http_request req;
    long rc;
} parsed;

/* Parse in[0..len) copied to a guard buffer; req->num_headers = cap. */
static long parse_into(parsed *r, const char *in, size_t len,
                       const cel_http_limits *lim, size_t cap)
{
    r->g = guard_copy(in, len);
    memset(&r->req, 0, sizeof(r->req));
    r->req.headers = r->hdrs;
    r->req.num_headers = cap;
    r->rc = cel_http_parse_request(r->g.p, len, lim, &r->req);
    return r->rc;
}

static long parse_once(const char *in, size_t len, const cel_http_limits *lim, size_t cap)
{
    parsed r;
    long rc = parse_into(&r, in, len, lim, cap);
    guard_free(&r.g);
    return rc;
}

static int slice_is(cel_slice s, const char *want)
{
    size_t n = strlen(want);
    return s.len == n && (n == 0 || memcmp(s.p, want, n) == 0);
}

/* Same slice relative to each result's own buffer. */
static int slice_same(cel_slice a, const parsed *ra, cel_slice b, const parsed *rb)
{
    return a.len == b.len && (a.p - ra->g.p) == (b.p - rb->g.p);
}

static int same_result(const parsed *a, const parsed *b)
{
    const cel_http_request *x = &a->req, *y = &b->req;
    if (a->rc != b->rc || x->minor_version != y->minor_version ||
        x->num_headers != y->num_headers || x->body_kind != y->body_kind ||
        x->content_length != y->content_length || x->flags != y->flags ||
        !slice_same(x->method, a, y->method, b) || !slice_same(x->target, a, y->target, b) ||
        !slice_same(x->path, a, y->path, b) || !slice_same(x->query, a, y->query, b))
        return 0;
    for (size_t i = 0; i < x->num_headers; i++)
        if (!slice_same(x->headers[i].name, a, y->headers[i].name, b) ||
            !slice_same(x->headers[i].value, a, y->headers[i].value, b))
            return 0;
    return 1;
}

/* ---------------------------------------------------------------- valid */

typedef struct valid_case {
    const char *in;             /* the head */
    const char *tail;           /* bytes after the head (body, next request) */
    const char *method, *target, *path, *query;
    int minor;
    size_t nh;
    int body;
    uint64_t cl;
    unsigned flags;
} valid_case;

#define KA CEL_REQ_KEEP_ALIVE
#define HOST CEL_REQ_HAS_HOST

static const valid_case valid[] = {
    { "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", "",
      "GET", "/", "/", "", 1, 1, CEL_BODY_NONE, 0, KA | HOST },
    { "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\n"
      "Content-Type: text/plain\r\n\r\n", "Hello, world!",
      "POST", "/submit", "/submit", "", 1, 3, CEL_BODY_LENGTH, 13, KA | HOST },
    { "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
      "5\r\nhello\r\n0\r\n\r\n",
      "POST", "/up", "/up", "", 1, 2, CEL_BODY_CHUNKED, 0, KA | HOST },
    { "POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n", "",
      "POST", "/up", "/up", "", 1, 2, CEL_BODY_CHUNKED, 0, KA | HOST },
    { "POST /up HTTP/1.1\r\nTransfer-Encoding: gzip\r\nHost: a\r\n"
      "transfer-encoding:Chunked\r\n\r\n", "",
      "POST", "/up", "/up", "", 1, 3, CEL_BODY_CHUNKED, 0, KA | HOST },
    { "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", "",
      "GET", "/", "/", "", 0, 1, CEL_BODY_NONE, 0, KA },
    { "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: h\r\n\r\n", "",
      "GET", "/", "/", "", 0, 2, CEL_BODY_NONE, 0, KA | HOST },
    { "GET / HTTP/1.0\r\n\r\n", "",
      "GET", "/", "/", "", 0, 0, CEL_BODY_NONE, 0, 0 },
    { "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", "",
      "GET", "/", "/", "", 0, 1, CEL_BODY_NONE, 0, 0 },
    { "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", "",
      "GET", "/", "/", "", 1, 2, CEL_BODY_NONE, 0, HOST },
    { "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: foo, CLOSE\r\n\r\n", "",
      "GET", "/", "/", "", 1, 3, CEL_BODY_NONE, 0, HOST },
    { "GET /search?q=a%20b&x=1 HTTP/1.1\r\nHost: a\r\n\r\n", "",
      "GET", "/search?q=a%20b&x=1", "/search", "q=a%20b&x=1", 1, 1, CEL_BODY_NONE, 0, KA | HOST },
    { "GET /? HTTP/1.1\r\nHost: a\r\n\r\n", "",
      "GET", "/?", "/", "", 1, 1, CEL_BODY_NONE, 0, KA | HOST },
    { "GET /a?b?c=/d HTTP/1.1\r\nHost: a\r\n\r\n", "",
      "GET", "/a?b?c=/d", "/a", "b?c=/d", 1, 1, CEL_BODY_NONE, 0, KA | HOST },
    { "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", "",
      "OPTIONS", "*", "*", "", 1, 1, CEL_BODY_NONE, 0, KA | HOST },
    { "GET http://example.com/a/b?x=y HTTP/1.1\r\nHost: example.com\r\n\r\n", "",
      "GET", "http://example.com/a/b?x=y", "http://example.com/a/b", "x=y", 1, 1,
      CEL_BODY_NONE, 0, KA | HOST },
    { "GET HTTPS://h:8443 HTTP/1.1\r\nHost: h:8443\r\n\r\n", "",
      "GET", "HTTPS://h:8443", "HTTPS://h:8443", "", 1, 1, CEL_BODY_NONE, 0, KA | HOST },
    { "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "",
      "GET", "/", "/", "", 1, 1, CEL_BODY_NONE, 0, KA | HOST },
    { "GET / HTTP/1.1\r\nHost:a\r\nX-A: \t  value with  inner  spaces \t \r\n"
      "X-Empty:\r\nX-Blank:   \t\r\n\r\n", "",
      "GET", "/", "/", "", 1, 4, CEL_BODY_NONE, 0, KA | HOST },
    { "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\nX-Utf8: caf\xc3\xa9 \xff\x80\r\n\r\n", "",
      "GET", "/caf\xc3\xa9", "/caf\xc3\xa9", "", 1, 2, CEL_BODY_NONE, 0, KA | HOST },
    { "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 10\r\n\r\n", "",
      "PUT", "/x", "/x", "", 1, 3, CEL_BODY_LENGTH, 10, KA | HOST | CEL_REQ_EXPECT_CONTINUE },
    { "PUT /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n", "",
      "PUT", "/x", "/x", "", 0, 2, CEL_BODY_LENGTH, 10, 0 },
    { "PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue-not\r\n\r\n", "",
      "PUT", "/x", "/x", "", 1, 2, CEL_BODY_NONE, 0, KA | HOST },
    { "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n", "",
      "GET", "/ws", "/ws", "", 1, 3, CEL_BODY_NONE, 0, KA | HOST | CEL_REQ_UPGRADE },
    { "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", "",
      "GET", "/ws", "/ws", "", 1, 2, CEL_BODY_NONE, 0, KA | HOST },
    { "GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n", "",
      "GET", "/ws", "/ws", "", 1, 2, CEL_BODY_NONE, 0, KA | HOST },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", "",
      "POST", "/", "/", "", 1, 2, CEL_BODY_NONE, 0, KA | HOST },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\ncontent-length: 5\r\n\r\n", "",
      "POST", "/", "/", "", 1, 3, CEL_BODY_LENGTH, 5, KA | HOST },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", "",
      "POST", "/", "/", "", 1, 2, CEL_BODY_LENGTH, 7, KA | HOST },
    { "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n", "",
      "POST", "/", "/", "", 1, 2, CEL_BODY_LENGTH, UINT64_MAX, KA | HOST },
    { "PURGE /cache HTTP/1.1\r\nHost: a\r\n\r\n", "",
      "PURGE", "/cache", "/cache", "", 1, 1, CEL_BODY_NONE, 0, KA | HOST },
    { "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n", "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET", "/1", "/1", "", 1, 1, CEL_BODY_NONE, 0, KA | HOST },
    { "GET /\"<>{|}^`\\[] HTTP/1.1\r\nHost: \r\n\r\n", "",
      "GET", "/\"<>{|}^`\\[]", "/\"<>{|}^`\\[]", "", 1, 1, CEL_BODY_NONE, 0, KA | HOST },
    { "GET / HTTP/1.1\r\n!#$%&'*+-.^_`|~09azAZ: v\r\nHost: h\r\n\r\n", "",
      "GET", "/", "/", "", 1, 2, CEL_BODY_NONE, 0, KA | HOST },
};

static char *join(const char *a, const char *b, size_t *len)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    *len = la + lb;
    return s;
}

static void check_fields(const parsed *r, const valid_case *v, size_t consumed)
{
    const cel_http_request *q = &r->req;
    CHECK_EQ_INT(r->rc, (long)consumed);
    CHECK(slice_is(q->method, v->method));
    CHECK(slice_is(q->target, v->target));
    CHECK(slice_is(q->path, v->path));
    CHECK(slice_is(q->query, v->query));
    CHECK_EQ_INT(q->minor_version, v->minor);
    CHECK_EQ_INT(q->num_headers, v->nh);
    CHECK_EQ_INT(q->body_kind, v->body);
    CHECK(q->content_length == v->cl);
    CHECK_EQ_INT(q->flags, v->flags);
    /* every slice lies inside the head */
    CHECK(q->method.p >= r->g.p && q->method.p + q->method.len <= r->g.p + consumed);
    CHECK(q->target.p >= r->g.p && q->target.p + q->target.len <= r->g.p + consumed);
    for (size_t i = 0; i < q->num_headers; i++) {
        CHECK(q->headers[i].name.len > 0);
        CHECK(q->headers[i].value.p >= r->g.p);
        CHECK(q->headers[i].value.p + q->headers[i].value.len <= r->g.p + consumed);
    }
}

TEST(valid_requests)
{
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        const valid_case *v = &valid[i];
        size_t consumed = strlen(v->in), len;
        char *in = join(v->in, v->tail, &len);
        parsed r;
        parse_into(&r, in, len, NULL, MAXH);
        if (r.rc != (long)consumed)
            fprintf(stderr, "  valid[%zu] rc=%ld: %s\n", i, r.rc, v->in);
        check_fields(&r, v, consumed);
        guard_free(&r.g);
        free(in);
    }
}

TEST(valid_requests_every_split)
{
    cel_http_limits lim;
    cel_http_limits_default(&lim);
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        const valid_case *v = &valid[i];
        size_t consumed = strlen(v->in), len;
        char *in = join(v->in, v->tail, &len);
        parsed ref, r;
        parse_into(&ref, in, consumed, &lim, MAXH);
        CHECK_EQ_INT(ref.rc, (long)consumed);
        for (size_t k = 0; k < consumed; k++) {
            long rc = parse_into(&r, in, k, &lim, MAXH);
            if (rc != CEL_EAGAIN)
                fprintf(stderr, "  valid[%zu] prefix %zu: rc=%ld\n", i, k, rc);
            CHECK_EQ_INT(rc, CEL_EAGAIN);
            CHECK_EQ_INT(r.req.num_headers, MAXH);
            guard_free(&r.g);
        }
        /* whole head, alone and followed by the rest of the input */
        parse_into(&r, in, consumed, &lim, MAXH);
        CHECK(same_result(&ref, &r));
        guard_free(&r.g);
        parse_into(&r, in, len, &lim, MAXH);
        CHECK(same_result(&ref, &r));
        guard_free(&r.g);
        guard_free(&ref.g);
        free(in);
    }
}

TEST(header_fields)
{
    static const char in[] =
        "GET / HTTP/1.1\r\nHost: example.com:8080\r\nX-A: \t  value with  inner  spaces \t \r\n"
        "X-Empty:\r\nx-lower: a:b:c\r\nAccept: */*\r\n\r\n";
    parsed r;
    CHECK_EQ_INT(parse_into(&r, IN(in), NULL, MAXH), sizeof(in) - 1);
    CHECK_EQ_INT(r.req.num_headers, 5);
    CHECK(slice_is(r.hdrs[0].name, "Host"));
    CHECK(slice_is(r.hdrs[0].value, "example.com:8080"));
    CHECK(slice_is(r.hdrs[1].name, "X-A"));
    CHECK(slice_is(r.hdrs[1].value, "value with  inner  spaces"));
    CHECK(slice_is(r.hdrs[2].name, "X-Empty"));
    CHECK(slice_is(r.hdrs[2].value, ""));
    CHECK(slice_is(r.hdrs[3].name, "x-lower"));
    CHECK(slice_is(r.hdrs[3].value, "a:b:c"));
    CHECK(slice_is(r.hdrs[4].name, "Accept"));
    CHECK(slice_is(r.hdrs[4].value, "*/*"));
    guard_free(&r.g);
}

TEST(asterisk_form_needs_options)
{
    CHECK_EQ_INT(parse_once(IN("M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n"), NULL, MAXH), CEL_ETARGET);
    CHECK_EQ_INT(parse_once(IN("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), NULL, MAXH), CEL_ETARGET);
    CHECK_EQ_INT(parse_once(IN("options * HTTP/1.1\r\nHost: a\r\n\r\n"), NULL, MAXH), CEL_ETARGET);
}

TEST(null_limits_are_defaults)
{
    char line[8300];
    memcpy(line, "GET /", 5);
    memset(line + 5, 'a', sizeof(line) - 5);
    CHECK_EQ_INT(parse_once(line, sizeof(line), NULL, MAXH), CEL_EURITOOLONG);
}

TEST(eagain_keeps_capacity)
{
    parsed r;
    CHECK_EQ_INT(parse_into(&r, IN("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n"), NULL, 7), CEL_EAGAIN);
    CHECK_EQ_INT(r.req.num_headers, 7);
    guard_free(&r.g);
    static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n";
    CHECK_EQ_INT(parse_into(&r, IN(in), NULL, 7), sizeof(in) - 1);
    CHECK_EQ_INT(r.req.num_headers, 2);
    guard_free(&r.g);
}

/* -------------------------------------------------------------- invalid */

typedef struct invalid_case {
    const char *in;
    size_t len;
    int err;
} invalid_case;

static const invalid_case invalid[] = {
    /* framing */
    { IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), CEL_ECLTE },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n"), CEL_ECLTE },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"), CEL_EBADCL },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\n"), CEL_EBADCL },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5,\r\n\r\n"), CEL_EBADCL },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n"), CEL_EBADCL },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), CEL_EBADCL },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), CEL_EBADCL },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n"), CEL_EBADCL },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n"), CEL_EBADCL },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), CEL_EBADCL },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n"), CEL_EBADCL },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"), CEL_EBADCL },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"), CEL_EBADTE },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"), CEL_EBADTE },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"), CEL_EBADTE },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), CEL_EBADTE },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), CEL_EBADTE },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), CEL_EBADTE },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked,\r\n\r\n"), CEL_EBADTE },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n"), CEL_EBADTE },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;x=1\r\n\r\n"), CEL_EBADTE },
    { IN("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \"chunked\"\r\n\r\n"), CEL_EBADTE },
    { IN("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), CEL_EBADTE },
    /* header syntax */
    { IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"), CEL_EHDRVALUE },
    { IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n"), CEL_EHDRVALUE },
    { IN("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), CEL_EHDRVALUE },
    { IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), CEL_EHDRVALUE },
    { IN("GET / HTTP/1.1\r\nHost: a\r\nX: \0\r\n\r\n"), CEL_EHDRVALUE },
    { IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n"), CEL_EHDRVALUE },
    { IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\r\n\r\n"), CEL_EHDRVALUE },
    { IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n"), CEL_EHDRVALUE },
    { IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), CEL_EHDRVALUE },
    { IN("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1b[0m\r\n\r\n"), CEL_EHDRVALUE },
    { IN("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\r\nHost: a\r\n\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\nHost: a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\rHost: a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\r\nHost: a\r\nX-(a): b\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: b\r\n\r\n"), CEL_EBADREQ },
    /* method */
    { IN("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_EMETHOD },
    { IN("GE@T / HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_EMETHOD },
    { IN(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_EMETHOD },
    { IN("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_EMETHOD },
    { IN("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), CEL_EMETHOD },
    { IN("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), CEL_EVERSION },
    /* target */
    { IN("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_ETARGET },
    { IN("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_ETARGET },
    { IN("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_ETARGET },
    { IN("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_ETARGET },
    { IN("GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_ETARGET },
    { IN("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_ETARGET },
    { IN("GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_ETARGET },
    { IN("OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_ETARGET },
    { IN("GET ftp://h/ HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_ETARGET },
    { IN("GET http:///a HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_ETARGET },
    { IN("GET http:// HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_ETARGET },
    { IN("GET http:/a HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_ETARGET },
    { IN("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), CEL_ETARGET },
    /* version */
    { IN("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), CEL_EVERSION },
    { IN("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), CEL_EVERSION },
    { IN("GET / HTTP/0.9\r\n\r\n"), CEL_EVERSION },
    { IN("GET / HTTP/9.9\r\n\r\n"), CEL_EVERSION },
    { IN("GET /\r\n"), CEL_EBADREQ },
    { IN("GET /\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / \r\nHost: a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1\r\nHost: a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTX/1.1\r\nHost: a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / http/1.1\r\nHost: a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/10.1\r\nHost: a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\r\r\nHost: a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET\r\n\r\n"), CEL_EBADREQ },
    { IN("\r\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_EBADREQ },
    { IN("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"), CEL_EBADREQ },
    /* Host */
    { IN("GET / HTTP/1.1\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\r\nX-Host: a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), CEL_EBADREQ },
    { IN("GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"), CEL_EBADREQ },
};

TEST(invalid_requests)
{
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        const invalid_case *c = &invalid[i];
        long rc = parse_once(c->in, c->len, NULL, MAXH);
        if (rc != c->err)
            fprintf(stderr, "  invalid[%zu] rc=%ld want %d: %.*s\n", i, rc, c->err,
                    (int)c->len, c->in);
        CHECK_EQ_INT(rc, c->err);
        CHECK(cel_err_http_status((int)rc) >= 400 && cel_err_http_status((int)rc) < 600);
    }
}

/* A prefix of an invalid head is either still a valid prefix or already
 * fails with the error of the whole; never a different error. */
TEST(invalid_requests_every_split)
{
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        const invalid_case *c = &invalid[i];
        for (size_t k = 0; k < c->len; k++) {
            long rc = parse_once(c->in, k, NULL, MAXH);
            if (rc != CEL_EAGAIN && rc != c->err)
                fprintf(stderr, "  invalid[%zu] prefix %zu rc=%ld\n", i, k, rc);
            CHECK(rc == CEL_EAGAIN || rc == c->err);
        }
    }
}

TEST(tls_client_hello)
{
    static const unsigned char hello[] = {
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        0x9a, 0x1f, 0x00, 0x20, 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x00,
    };
    for (size_t k = 1; k <= sizeof(hello); k++) {
        long rc = parse_once((const char *)hello, k, NULL, MAXH);
        CHECK(rc == CEL_EMETHOD);
        CHECK_EQ_INT(cel_err_http_status((int)rc), 400);
    }
}

/* ---------------------------------------------------------------- limits */

/* "GET /aaa...a HTTP/1.1\r\n" of exactly n bytes (n >= 17). */
static char *request_line(size_t n)
{
    char *s = malloc(n + 64);
    memcpy(s, "GET /", 5);
    memset(s + 5, 'a', n - 16);
    memcpy(s + n - 11, " HTTP/1.1\r\n", 11);
    memcpy(s + n, "Host: a\r\n\r\n", 12);
    return s;
}

TEST(request_line_limit)
{
    cel_http_limits lim;
    cel_http_limits_default(&lim);
    CHECK_EQ_INT(lim.max_request_line, 8192);
    CHECK_EQ_INT(lim.max_header_bytes, 65536);
    CHECK_EQ_INT(lim.max_headers, 100);

    char *s = request_line(8192);
    CHECK_EQ_INT(parse_once(s, 8192 + 11, &lim, MAXH), 8192 + 11);
    CHECK_EQ_INT(parse_once(s, 8192, &lim, MAXH), CEL_EAGAIN);
    CHECK_EQ_INT(parse_once(s, 8191, &lim, MAXH), CEL_EAGAIN);
    free(s);

    s = request_line(8193);
    CHECK_EQ_INT(parse_once(s, 8193 + 11, &lim, MAXH), CEL_EURITOOLONG);
    CHECK_EQ_INT(parse_once(s, 8193, &lim, MAXH), CEL_EURITOOLONG);
    CHECK_EQ_INT(parse_once(s, 8192, &lim, MAXH), CEL_EURITOOLONG);   /* no CRLF yet */
    CHECK_EQ_INT(parse_once(s, 8191, &lim, MAXH), CEL_EAGAIN);
    CHECK_EQ_INT(parse_once(s, 100, &lim, MAXH), CEL_EAGAIN);
    free(s);

    s = request_line(20000);            /* incomplete and far over */
    CHECK_EQ_INT(parse_once(s, 10000, &lim, MAXH), CEL_EURITOOLONG);
    free(s);

    /* leading empty lines count toward the request line */
    static const char lead[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
    lim.max_request_line = 20;
    CHECK_EQ_INT(parse_once(IN(lead), &lim, MAXH), sizeof(lead) - 1);
    lim.max_request_line = 19;
    CHECK_EQ_INT(parse_once(IN(lead), &lim, MAXH), CEL_EURITOOLONG);
    CHECK_EQ_INT(parse_once(lead, 19, &lim, MAXH), CEL_EURITOOLONG);
    CHECK_EQ_INT(parse_once(lead, 18, &lim, MAXH), CEL_EAGAIN);
    lim.max_request_line = 3;
    CHECK_EQ_INT(parse_once("\r\n\r\n", 4, &lim, MAXH), CEL_EURITOOLONG);
}

/* Head whose header block (after the request line) is exactly n bytes:
 * "Host: a\r\n" + "X: vvv...\r\n" + "\r\n". */
static char *header_block(size_t n, size_t *total)
{
    static const char rl[] = "GET / HTTP/1.1\r\n";
    size_t r = sizeof(rl) - 1;
    char *s = malloc(r + n + 16);
    memcpy(s, rl, r);
    memcpy(s + r, "Host: a\r\nX: ", 12);
    memset(s + r + 12, 'v', n - 16);
    memcpy(s + r + n - 4, "\r\n\r\n", 4);
    *total = r + n;
    return s;
}

TEST(header_bytes_limit)
{
    cel_http_limits lim;
    cel_http_limits_default(&lim);
    size_t total;
    char *s = header_block(65536, &total);
    CHECK_EQ_INT(parse_once(s, total, &lim, MAXH), (long)total);
    CHECK_EQ_INT(parse_once(s, total - 1, &lim, MAXH), CEL_EAGAIN);
    free(s);

    s = header_block(65537, &total);
    CHECK_EQ_INT(parse_once(s, total, &lim, MAXH), CEL_EHDRTOOLARGE);
    CHECK_EQ_INT(parse_once(s, total - 1, &lim, MAXH), CEL_EHDRTOOLARGE);
    CHECK_EQ_INT(parse_once(s, 16 + 65536, &lim, MAXH), CEL_EHDRTOOLARGE);  /* incomplete */
    CHECK_EQ_INT(parse_once(s, 16 + 65535, &lim, MAXH), CEL_EAGAIN);
    free(s);

    /* small limit: the final CRLF counts */
    static const char in[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";   /* block = 11 bytes */
    lim.max_header_bytes = 11;
    CHECK_EQ_INT(parse_once(IN(in), &lim, MAXH), sizeof(in) - 1);
    lim.max_header_bytes = 10;
    CHECK_EQ_INT(parse_once(IN(in), &lim, MAXH), CEL_EHDRTOOLARGE);
    CHECK_EQ_INT(parse_once(in, 26, &lim, MAXH), CEL_EHDRTOOLARGE);
    CHECK_EQ_INT(parse_once(in, 25, &lim, MAXH), CEL_EAGAIN);
}

/* Head with Host plus n-1 "X-i: v" fields (n fields in all). */
static char *many_headers(size_t n, size_t *len)
{
    char *s = malloc(64 + n * 16);
    size_t o = (size_t)sprintf(s, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (size_t i = 1; i < n; i++)
        o += (size_t)sprintf(s + o, "X-%zu: v\r\n", i);
    o += (size_t)sprintf(s + o, "\r\n");
    *len = o;
    return s;
}

TEST(header_count_limit)
{
    size_t len;
    char *s = many_headers(100, &len);
    parsed r;
    CHECK_EQ_INT(parse_into(&r, s, len, NULL, MAXH), (long)len);
    CHECK_EQ_INT(r.req.num_headers, 100);
    guard_free(&r.g);
    CHECK_EQ_INT(parse_once(s, len, NULL, 100), (long)len);
    CHECK_EQ_INT(parse_once(s, len, NULL, 99), CEL_EHDRTOOLARGE);   /* capacity */
    free(s);

    s = many_headers(101, &len);
    CHECK_EQ_INT(parse_once(s, len, NULL, MAXH), CEL_EHDRTOOLARGE);
    CHECK_EQ_INT(parse_once(s, len - 2, NULL, MAXH), CEL_EHDRTOOLARGE);  /* incomplete */
    cel_http_limits lim;
    cel_http_limits_default(&lim);
    lim.max_headers = 101;
    CHECK_EQ_INT(parse_once(s, len, &lim, MAXH), (long)len);
    free(s);
}

/* --------------------------------------------------- head + chunked body */

static int decode_all(const char *body, size_t len, size_t *used)
{
    cel_chunked c;
    cel_chunked_init(&c);
    guard_buf g = guard_copy(body, len);
    size_t off = 0, n;
    const char *d;
    size_t dl;
    int rc;
    while ((rc = cel_chunked_decode(&c, g.p + off, len - off, &n, &d, &dl)) == 1)
        off += n;
    off += n;
    *used = off;
    guard_free(&g);
    return rc;
}

TEST(head_then_chunked_body)
{
    static const char ok[] =
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\nWiki\r\n0\r\n\r\nGET";
    static const char bad[] =
        "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "4\r\nWikiXX\r\n0\r\n\r\n";
    size_t used;
    long head = parse_once(IN(ok), NULL, MAXH);
    CHECK_EQ_INT(head, strstr(ok, "\r\n\r\n") + 4 - ok);
    CHECK_EQ_INT(decode_all(ok + head, sizeof(ok) - 1 - (size_t)head, &used), 0);
    CHECK_EQ_INT(used, 14);
    CHECK(memcmp(ok + head + used, "GET", 3) == 0);

    head = parse_once(IN(bad), NULL, MAXH);
    CHECK_EQ_INT(head, strstr(bad, "\r\n\r\n") + 4 - bad);
    CHECK_EQ_INT(decode_all(bad + head, sizeof(bad) - 1 - (size_t)head, &used), CEL_EBADCHUNK);
}

/* ------------------------------------------- byte-class edges at every offset */

/* The value and target scanners skip 8 bytes at a time; put each special
 * byte at every offset of runs of every length around that stride. */
TEST(value_bytes_at_every_offset)
{
    static const struct { unsigned char byte; int err; } cases[] = {
        { 0x00, CEL_EHDRVALUE }, { 0x01, CEL_EHDRVALUE }, { 0x1f, CEL_EHDRVALUE },
        { 0x7f, CEL_EHDRVALUE }, { '\r', CEL_EHDRVALUE }, { '\n', CEL_EBADREQ },
        { '\t', 0 }, { ' ', 0 }, { 0x80, 0 }, { 0xff, 0 }, { '~', 0 }, { '"', 0 },
    };
    char in[128];
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (size_t n = 1; n <= 24; n++) {
            for (size_t k = 0; k < n; k++) {
                size_t o = (size_t)sprintf(in, "GET / HTTP/1.1\r\nHost: a\r\nX: v");
                memset(in + o, 'v', n);
                in[o + k] = (char)cases[c].byte;
                o += n;
                o += (size_t)sprintf(in + o, "v\r\n\r\n");
                parsed r;
                long rc = parse_into(&r, in, o, NULL, MAXH);
                if (cases[c].err) {
                    CHECK_EQ_INT(rc, cases[c].err);
                } else {
                    CHECK_EQ_INT(rc, (long)o);
                    CHECK_EQ_INT(r.hdrs[1].value.len, n + 2);
                }
                guard_free(&r.g);
            }
        }
    }
}

TEST(target_bytes_at_every_offset)
{
    static const struct { unsigned char byte; int err; } cases[] = {
        { 0x00, CEL_ETARGET }, { 0x01, CEL_ETARGET }, { '\t', CEL_ETARGET },
        { 0x7f, CEL_ETARGET }, { '#', CEL_ETARGET }, { ' ', CEL_ETARGET },
        { '\r', CEL_EBADREQ }, { '\n', CEL_EBADREQ },
        { '!', 0 }, { 0x80, 0 }, { 0xff, 0 }, { '~', 0 }, { '?', 0 }, { '%', 0 },
    };
    char in[128];
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        for (size_t n = 1; n <= 24; n++) {
            for (size_t k = 0; k < n; k++) {
                size_t o = (size_t)sprintf(in, "GET /");
                memset(in + o, 't', n);
                in[o + k] = (char)cases[c].byte;
                o += n;
                o += (size_t)sprintf(in + o, " HTTP/1.1\r\nHost: a\r\n\r\n");
                parsed r;
                long rc = parse_into(&r, in, o, NULL, MAXH);
                CHECK_EQ_INT(rc, cases[c].err ? cases[c].err : (long)o);
                if (!cases[c].err)
                    CHECK_EQ_INT(r.req.target.len, n + 1);
                guard_free(&r.g);
            }
        }
    }
}
