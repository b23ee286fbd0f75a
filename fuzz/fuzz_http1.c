/* libFuzzer driver for cel_http_parse_request.
 *
 * Parses the input under the default limits and under tight ones, and checks:
 * the result is a byte count <= len, CEL_EAGAIN or a request error; on
 * success every slice lies inside the consumed head, the fields are sane,
 * re-parsing exactly the consumed bytes gives the same result, and proper
 * prefixes of the head give CEL_EAGAIN.  Each parse reads from a copy of
 * exactly the bytes it is given, so ASan catches any over-read.  A chunked
 * body after a successful head goes through cel_chunked_decode too.
 * Differential: every parse is repeated with the parser as it was before its
 * word-at-a-time/SSE2 fast paths (tests/c/http1_parse_ref.inc), which must
 * give the same return value and the same fields and header slices.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "http1.h"

#include "../tests/c/http1_parse_ref.inc"

#define CAP 64

#define REQUIRE(cond) do { if (!(cond)) abort(); } while (0)

typedef struct result {
    long rc;
    const char *base;
    cel_header hdrs[CAP];
    cel_http_request req;
} result;

static void check_same(const result *a, const result *b);

static void parse(result *r, const char *buf, size_t len, const cel_http_limits *lim)
{
    memset(&r->req, 0, sizeof(r->req));
    r->base = buf;
    r->req.headers = r->hdrs;
    r->req.num_headers = CAP;
    r->rc = cel_http_parse_request(buf, len, lim, &r->req);

    /* the reference parser on the same bytes: the same answer */
    static result ref;
    memset(&ref.req, 0, sizeof(ref.req));
    ref.base = buf;
    ref.req.headers = ref.hdrs;
    ref.req.num_headers = CAP;
    ref.rc = ref_http_parse_request(buf, len, lim, &ref.req);
    if (r->rc > 0)
        check_same(r, &ref);
    else
        REQUIRE(ref.rc == r->rc && ref.req.num_headers == CAP && r->req.num_headers == CAP);
}

/* Parse a private copy of data[0..len) (exact-size allocation). */
static long parse_copy(result *r, const uint8_t *data, size_t len, const cel_http_limits *lim,
                       char **copy)
{
    *copy = malloc(len ? len : 1);
    REQUIRE(*copy);
    if (len)
        memcpy(*copy, data, len);
    parse(r, *copy, len, lim);
    return r->rc;
}

static void slice_inside(cel_slice s, const char *base, long n)
{
    REQUIRE(s.p >= base && s.p + s.len <= base + n);
}

static int slice_same(cel_slice a, const char *ba, cel_slice b, const char *bb)
{
    return a.len == b.len && a.p - ba == b.p - bb;
}

static void check_same(const result *a, const result *b)
{
    const cel_http_request *x = &a->req, *y = &b->req;
    REQUIRE(a->rc == b->rc);
    REQUIRE(x->minor_version == y->minor_version && x->num_headers == y->num_headers);
    REQUIRE(x->body_kind == y->body_kind && x->content_length == y->content_length);
    REQUIRE(x->flags == y->flags);
    REQUIRE(slice_same(x->method, a->base, y->method, b->base));
    REQUIRE(slice_same(x->target, a->base, y->target, b->base));
    REQUIRE(slice_same(x->path, a->base, y->path, b->base));
    REQUIRE(slice_same(x->query, a->base, y->query, b->base));
    for (size_t i = 0; i < x->num_headers; i++) {
        REQUIRE(slice_same(x->headers[i].name, a->base, y->headers[i].name, b->base));
        REQUIRE(slice_same(x->headers[i].value, a->base, y->headers[i].value, b->base));
    }
}

static void check_success(const result *r, size_t len)
{
    const cel_http_request *q = &r->req;
    long n = r->rc;
    REQUIRE((size_t)n <= len && n >= 16);          /* "M / HTTP/1.0\r\n\r\n" */
    REQUIRE(q->minor_version == 0 || q->minor_version == 1);
    REQUIRE(q->num_headers <= CAP);
    REQUIRE(q->method.len > 0 && q->target.len > 0);
    slice_inside(q->method, r->base, n);
    slice_inside(q->target, r->base, n);
    slice_inside(q->path, r->base, n);
    slice_inside(q->query, r->base, n);
    REQUIRE(q->path.p == q->target.p && q->path.len <= q->target.len);
    for (size_t i = 0; i < q->num_headers; i++) {
        slice_inside(q->headers[i].name, r->base, n);
        slice_inside(q->headers[i].value, r->base, n);
        REQUIRE(q->headers[i].name.len > 0);
        if (q->headers[i].value.len) {
            char f = q->headers[i].value.p[0];
            char l = q->headers[i].value.p[q->headers[i].value.len - 1];
            REQUIRE(f != ' ' && f != '\t' && l != ' ' && l != '\t');
        }
    }
    switch (q->body_kind) {
    case CEL_BODY_NONE: REQUIRE(q->content_length == 0); break;
    case CEL_BODY_LENGTH: REQUIRE(q->content_length > 0); break;
    case CEL_BODY_CHUNKED: REQUIRE(q->minor_version == 1); break;
    default: REQUIRE(0);
    }
    if (q->minor_version == 1)
        REQUIRE(q->flags & CEL_REQ_HAS_HOST);
    REQUIRE(r->base[n - 1] == '\n' && r->base[n - 2] == '\r');
}

static void run(const uint8_t *data, size_t size, const cel_http_limits *lim)
{
    result r, again;
    char *buf, *buf2;
    long rc = parse_copy(&r, data, size, lim, &buf);
    REQUIRE(rc == CEL_EAGAIN || rc > 0 || cel_err_http_status((int)rc) != 500);
    if (rc <= 0) {
        free(buf);
        return;
    }
    check_success(&r, size);

    /* exactly the head, in a fresh buffer: same answer */
    parse_copy(&again, data, (size_t)rc, lim, &buf2);
    check_same(&r, &again);
    free(buf2);

    /* proper prefixes need more (a few of them; all would be quadratic) */
    size_t cuts[3] = { (size_t)rc - 1, (size_t)rc / 2, size ? data[0] % (size_t)rc : 0 };
    for (int i = 0; i < 3; i++) {
        REQUIRE(parse_copy(&again, data, cuts[i], lim, &buf2) == CEL_EAGAIN);
        REQUIRE(again.req.num_headers == CAP);
        free(buf2);
    }

    if (r.req.body_kind == CEL_BODY_CHUNKED) {
        cel_chunked c;
        cel_chunked_init(&c);
        const char *p = buf + rc;
        size_t left = size - (size_t)rc, n;
        const char *d;
        size_t dl;
        int crc;
        while ((crc = cel_chunked_decode(&c, p, left, &n, &d, &dl)) == 1) {
            REQUIRE(n <= left && d >= p && d + dl <= p + n);
            p += n;
            left -= n;
        }
        REQUIRE(n <= left);
        REQUIRE(crc == 0 || crc == CEL_EAGAIN || crc == CEL_EBADCHUNK);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cel_http_limits lim;
    cel_http_limits_default(&lim);
    run(data, size, &lim);
    lim.max_request_line = 40;
    lim.max_header_bytes = 96;
    lim.max_headers = 3;
    run(data, size, &lim);
    return 0;
}
