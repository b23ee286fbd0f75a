/* Differential tests for the fast paths of cel_http_parse_request.
 *
 * Three builds of the request-head parser run on every input:
 *   - cel_http_parse_request: src/core/http1_parse.c as shipped (SSE2 blocks
 *     where available, word-at-a-time with ctz, GET/POST and header-name word
 *     compares);
 *   - port_http_parse_request: the same source built with CEL_HTTP1_PORTABLE
 *     (no SSE2, no ctz: the fallback a big-endian or non-GNU build takes);
 *   - ref_http_parse_request: the parser before the fast paths
 *     (http1_parse_ref.inc), the oracle.
 * All three must give the same return value and write the same request
 * fields and header slices (as offsets into their own copy of the input).
 * Inputs end at an inaccessible page, so any read past the end crashes.
 * Where a simple classifier says what a byte is, the outcome is checked
 * against it too (a token/value/target byte accepted or not).
 */
#include <stdint.h>

#include "errors.h"
#include "http1.h"
#include "test.h"

#include "http1_parse_ref.inc"

#define CEL_HTTP1_PORTABLE 1
#define cel_http_parse_request port_http_parse_request
#define cel_http_limits_default port_http_limits_default
#define cel_header_list_has port_header_list_has
#include "http1_parse.c"
#undef cel_http_parse_request
#undef cel_http_limits_default
#undef cel_header_list_has

#define CAP 40
#define MAXIN 8192

/* ------------------------------------------------------------ harness */

/* One mapping reused for every parse: data copied so it ends exactly at a
 * PROT_NONE page. */
static char *guard_base;
static size_t guard_body;

static char *at_guard(const char *data, size_t len)
{
    if (!guard_base) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        guard_body = (MAXIN + page - 1) / page * page;
        guard_base = mmap(NULL, guard_body + page, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (guard_base == MAP_FAILED || mprotect(guard_base + guard_body, page, PROT_NONE) != 0)
            abort();
    }
    if (len > MAXIN)
        abort();
    char *p = guard_base + guard_body - len;
    if (len)
        memmove(p, data, len);
    return p;
}

typedef struct outcome {
    long rc;
    cel_http_request req;
    cel_header hdrs[CAP];
    const char *base;
} outcome;

typedef long (*parse_fn)(const char *, size_t, const cel_http_limits *, cel_http_request *);

static void run_one(parse_fn f, outcome *o, const char *in, size_t len,
                    const cel_http_limits *lim, size_t cap)
{
    o->base = at_guard(in, len);
    memset(&o->req, 0xa5, sizeof(o->req));
    memset(o->hdrs, 0, sizeof(o->hdrs));
    o->req.headers = o->hdrs;
    o->req.num_headers = cap;
    o->rc = f(o->base, len, lim, &o->req);
}

static int same_slice(cel_slice a, const char *ba, cel_slice b, const char *bb)
{
    if (!a.p || !b.p)
        return a.p == b.p && a.len == b.len;
    return a.len == b.len && a.p - ba == b.p - bb;
}

/* Everything the parser wrote, compared field by field (headers[] in full,
 * written or not, so partial writes on failure must agree too). */
static int same_outcome(const outcome *a, const outcome *b)
{
    const cel_http_request *x = &a->req, *y = &b->req;
    if (a->rc != b->rc || x->num_headers != y->num_headers)
        return 0;
    for (size_t i = 0; i < CAP; i++)
        if (!same_slice(a->hdrs[i].name, a->base, b->hdrs[i].name, b->base) ||
            !same_slice(a->hdrs[i].value, a->base, b->hdrs[i].value, b->base))
            return 0;
    if (a->rc <= 0)     /* the rest untouched: the same 0xa5 fill in both */
        return memcmp(&x->method, &y->method, 4 * sizeof(cel_slice)) == 0 &&
               x->minor_version == y->minor_version && x->body_kind == y->body_kind &&
               x->content_length == y->content_length && x->flags == y->flags;
    return same_slice(x->method, a->base, y->method, b->base) &&
           same_slice(x->target, a->base, y->target, b->base) &&
           same_slice(x->path, a->base, y->path, b->base) &&
           same_slice(x->query, a->base, y->query, b->base) &&
           x->minor_version == y->minor_version && x->body_kind == y->body_kind &&
           x->content_length == y->content_length && x->flags == y->flags;
}

static outcome o_ref, o_fast, o_port;
static long n_compared;

/* Parse in[0..len) with all three builds; returns the shared result (and
 * records a failure, with the input, if they differ). */
static long compare3(const char *in, size_t len, const cel_http_limits *lim, size_t cap)
{
    run_one(ref_http_parse_request, &o_ref, in, len, lim, cap);
    run_one(cel_http_parse_request, &o_fast, in, len, lim, cap);
    run_one(port_http_parse_request, &o_port, in, len, lim, cap);
    n_compared++;
    int ok_fast = same_outcome(&o_ref, &o_fast), ok_port = same_outcome(&o_ref, &o_port);
    if (!ok_fast || !ok_port) {
        if (test_case_failures_ < TEST_MAX_REPORTS) {
            fprintf(stderr, "  differs (%s%s): ref rc=%ld fast rc=%ld portable rc=%ld, len %zu, limits %zu/%zu/%zu cap %zu:\n  \"",
                    ok_fast ? "" : "fast ", ok_port ? "" : "portable", o_ref.rc, o_fast.rc,
                    o_port.rc, len, lim->max_request_line, lim->max_header_bytes,
                    lim->max_headers, cap);
            for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)in[i];
                if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
                    fputc(c, stderr);
                else
                    fprintf(stderr, "\\x%02x", c);
            }
            fprintf(stderr, "\"\n");
        }
        CHECK(ok_fast && ok_port);
    }
    return o_ref.rc;
}

/* The whole input and every proper prefix of it. */
static void compare_prefixes(const char *in, size_t len, const cel_http_limits *lim, size_t cap)
{
    for (size_t k = 0; k <= len; k++)
        compare3(in, k, lim, cap);
}

/* ------------------------------------------------ reference classifiers */

static int ref_is_tchar(unsigned c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", (int)c) != NULL);
}

static int ref_is_target(unsigned c)
{
    return c > 0x20 && c != 0x7f && c != '#';
}

static int ref_is_value(unsigned c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/* --------------------------------------------- every byte, every position */

enum { PART_METHOD, PART_TARGET, PART_NAME, PART_VALUE, NPARTS };

/* A head whose part `part` is a run of n filler bytes with c at position k.
 * Returns the length; *run is the offset of the run. */
static size_t build(char *out, int part, size_t n, size_t k, unsigned char c, size_t *run)
{
    static const char fill[NPARTS] = { 'M', 't', 'N', 'v' };
    char r[32];
    memset(r, fill[part], n);
    r[k] = (char)c;
    size_t o = 0;
#define PUT(s) (memcpy(out + o, s, strlen(s)), o += strlen(s))
#define PUTRUN() (*run = o, memcpy(out + o, r, n), o += n)
    if (part == PART_METHOD)
        PUTRUN();
    else
        PUT("GET");
    PUT(" /");
    if (part == PART_TARGET)
        PUTRUN();
    PUT(" HTTP/1.1\r\nHost: a\r\n");
    if (part == PART_NAME)
        PUTRUN();
    else
        PUT("X");
    PUT(": v");
    if (part == PART_VALUE)
        PUTRUN();
    PUT("v\r\n\r\n");
#undef PUT
#undef PUTRUN
    return o;
}

TEST(every_byte_at_every_position)
{
    cel_http_limits lim;
    cel_http_limits_default(&lim);
    char in[128];
    for (int part = 0; part < NPARTS; part++) {
        for (size_t n = 1; n <= 20; n++) {
            for (size_t k = 0; k < n; k++) {
                for (unsigned c = 0; c < 256; c++) {
                    size_t run, len = build(in, part, n, k, (unsigned char)c, &run);
                    long rc = compare3(in, len, &lim, CAP);
                    /* the classifier's view: the run is accepted whole or not */
                    int in_class = part == PART_TARGET ? ref_is_target(c)
                                 : part == PART_VALUE ? ref_is_value(c) : ref_is_tchar(c);
                    cel_slice got = part == PART_METHOD ? o_ref.req.method
                                  : part == PART_TARGET ? o_ref.req.target
                                  : part == PART_NAME ? o_ref.hdrs[1].name : o_ref.hdrs[1].value;
                    size_t want = part == PART_TARGET ? n + 1 : part == PART_VALUE ? n + 2 : n;
                    int whole = rc == (long)len && got.len == want;
                    if (whole != in_class)
                        fprintf(stderr, "  part %d n %zu k %zu byte 0x%02x: rc=%ld\n", part, n, k, c, rc);
                    CHECK(whole == in_class);
                    /* windows ending in and just after the run: the word and
                     * byte tails instead of the 16-byte blocks */
                    for (size_t cut = run + k; cut <= run + n + 9 && cut < len; cut += 3)
                        compare3(in, cut, &lim, CAP);
                }
            }
        }
    }
}

/* The same runs with the request-line / header-block limits ending inside or
 * right after them: the scanners stop at the limit window, not the buffer. */
TEST(every_byte_under_tight_limits)
{
    char in[128];
    static const unsigned char bytes[] = { 0, '\t', ' ', '!', '"', '#', '-', '.', ':', '?', '_',
                                           'a', 'Z', 0x7f, 0x80, 0xff, '\r', '\n' };
    for (int part = 0; part < NPARTS; part++) {
        for (size_t n = 1; n <= 20; n += 1) {
            for (size_t k = 0; k < n; k++) {
                for (size_t b = 0; b < sizeof(bytes); b++) {
                    size_t run, len = build(in, part, n, k, bytes[b], &run);
                    for (size_t l = 1; l <= 48; l++) {
                        cel_http_limits lim;
                        cel_http_limits_default(&lim);
                        if (part <= PART_TARGET)
                            lim.max_request_line = l;
                        else
                            lim.max_header_bytes = l;
                        compare3(in, len, &lim, CAP);
                    }
                }
            }
        }
    }
}

/* ------------------------------------------------ method recognition */

TEST(method_recognition)
{
    static const char *methods[] = {
        "GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "PURGE", "M-SEARCH",
        "get", "Get", "GEt", "post", "Post", "POSt", "GE", "G", "P", "PO", "POS", "GETS",
        "POSTS", "GETT", "POST_", "xGET", "GET\t", "POST\t", "GET\r", "POST\n",
        "GET:", "POST/", "\xc7\x45T", "G\xc5T", "GE\xd4", "POS\xd4", "\x50OST", "GET ",
        "POST ", "",
    };
    static const char *rests[] = {
        " / HTTP/1.1\r\nHost: a\r\n\r\n", " /x?y HTTP/1.0\r\n\r\n", " * HTTP/1.1\r\nHost: a\r\n\r\n",
        " http://h/ HTTP/1.1\r\nHost: h\r\n\r\n", "  / HTTP/1.1\r\nHost: a\r\n\r\n", "",
        " ", "\r\n",
    };
    char in[256];
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        for (size_t j = 0; j < sizeof(rests) / sizeof(rests[0]); j++) {
            for (int lead = 0; lead < 2; lead++) {
                size_t len = (size_t)sprintf(in, "%s%s%s", lead ? "\r\n" : "", methods[i], rests[j]);
                cel_http_limits lim;
                cel_http_limits_default(&lim);
                compare_prefixes(in, len, &lim, CAP);
                for (size_t l = 1; l <= 12; l++) {
                    lim.max_request_line = l;
                    compare_prefixes(in, len, &lim, CAP);
                }
            }
        }
    }
    /* GET and POST followed by every byte, and POS + every byte + SP */
    for (unsigned c = 0; c < 256; c++) {
        cel_http_limits lim;
        cel_http_limits_default(&lim);
        size_t len = (size_t)sprintf(in, "GET_/ HTTP/1.1\r\nHost: a\r\n\r\n");
        in[3] = (char)c;
        compare_prefixes(in, len, &lim, CAP);
        len = (size_t)sprintf(in, "POST_/ HTTP/1.1\r\nHost: a\r\n\r\n");
        in[4] = (char)c;
        compare_prefixes(in, len, &lim, CAP);
        in[3] = (char)c;
        in[4] = ' ';
        compare_prefixes(in, len, &lim, CAP);
    }
}

/* ---------------------------------------- header names and list tokens */

/* Every case mix of the recognised names (all of them up to 2^11, sampled
 * beyond), and each byte of them replaced by every byte value. */
TEST(header_name_recognition)
{
    static const struct { const char *name, *value; } fields[] = {
        { "host", "a" }, { "expect", "100-continue" }, { "upgrade", "websocket" },
        { "connection", "keep-alive, upgrade" }, { "connection", "close" },
        { "content-length", "12" }, { "transfer-encoding", "chunked" },
        { "transfer-encoding", "gzip, chunked" },
    };
    cel_http_limits lim;
    cel_http_limits_default(&lim);
    char in[256], name[32];
    uint32_t seed = 12345;
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        size_t n = strlen(fields[f].name);
        unsigned long combos = n <= 11 ? 1ul << n : 2048;
        for (unsigned long mask = 0; mask < combos; mask++) {
            unsigned long bits = mask;
            if (n > 11) {
                seed = seed * 1103515245u + 12345u;
                bits = mask ^ ((unsigned long)seed << 11);
            }
            for (size_t i = 0; i < n; i++) {
                char c = fields[f].name[i];
                name[i] = ((bits >> i) & 1) && c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
            }
            name[n] = 0;
            size_t len = (size_t)sprintf(in, "POST / HTTP/1.1\r\n%s: %s\r\n%s\r\n\r\n", name,
                                         fields[f].value, f == 0 ? "" : "Host: a\r\n");
            compare3(in, len, &lim, CAP);
        }
        for (size_t i = 0; i < n; i++) {
            for (unsigned c = 0; c < 256; c++) {
                memcpy(name, fields[f].name, n);
                name[i] = (char)c;      /* any byte, NUL included: placed by hand */
                size_t o = (size_t)sprintf(in, "POST / HTTP/1.1\r\nHost: a\r\n");
                memcpy(in + o, name, n);
                o += n;
                o += (size_t)sprintf(in + o, ": %s\r\n\r\n", fields[f].value);
                compare3(in, o, &lim, CAP);
            }
        }
    }
}

/* Values of the framing headers with each byte of the recognised tokens
 * replaced by every byte value, and every case mix. */
TEST(list_token_recognition)
{
    static const struct { const char *name, *value; } fields[] = {
        { "Expect", "100-continue" }, { "Connection", "close" }, { "Connection", "keep-alive" },
        { "Connection", "upgrade" }, { "Transfer-Encoding", "chunked" },
        { "Content-Length", "1234567890" }, { "Content-Length", "1234567890123456789" },
        { "Content-Length", "18446744073709551615" }, { "Content-Length", "12, 12" },
        { "Connection", "x, keep-alive ,close" }, { "Transfer-Encoding", "gzip, chunked" },
    };
    cel_http_limits lim;
    cel_http_limits_default(&lim);
    char in[256], value[64];
    for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
        size_t n = strlen(fields[f].value);
        for (int ver = 0; ver < 2; ver++) {
            for (size_t i = 0; i < n; i++) {
                for (unsigned c = 0; c < 256; c++) {
                    memcpy(value, fields[f].value, n + 1);
                    value[i] = (char)c;
                    size_t o = (size_t)sprintf(in, "POST / HTTP/1.%d\r\nHost: a\r\nUpgrade: x\r\n%s: ",
                                               ver, fields[f].name);
                    memcpy(in + o, value, n);
                    o += n;
                    o += (size_t)sprintf(in + o, "\r\n\r\n");
                    compare3(in, o, &lim, CAP);
                }
            }
            for (unsigned long mask = 0; mask < (1ul << (n < 12 ? n : 12)); mask++) {
                for (size_t i = 0; i < n; i++) {
                    char c = fields[f].value[i];
                    value[i] = ((mask >> i) & 1) && c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
                }
                size_t o = (size_t)sprintf(in, "POST / HTTP/1.%d\r\nHost: a\r\nUpgrade: x\r\n%s: ",
                                           ver, fields[f].name);
                memcpy(in + o, value, n);
                o += n;
                o += (size_t)sprintf(in + o, "\r\n\r\n");
                compare3(in, o, &lim, CAP);
            }
        }
    }
}

/* Every sequence of up to three framing fields (duplicates, conflicts and
 * merges of Content-Length, Transfer-Encoding, Connection, Host, ...) on
 * HTTP/1.0 and 1.1. */
TEST(framing_field_combinations)
{
    static const char *const fields[] = {
        "", "Host: a", "host: b", "Content-Length: 5", "Content-Length: 6", "content-length: 5, 5",
        "Content-Length: 007", "Content-Length: 0", "Content-Length: 5,6",
        "Transfer-Encoding: chunked", "transfer-encoding: gzip", "Transfer-Encoding: gzip, chunked",
        "Connection: close", "Connection: keep-alive", "connection: Upgrade", "Connection: close, upgrade",
        "Upgrade: websocket", "Expect: 100-continue", "Expect: 100-continue, x",
    };
    size_t nf = sizeof(fields) / sizeof(fields[0]);
    cel_http_limits lim;
    cel_http_limits_default(&lim);
    char in[512];
    for (int ver = 0; ver < 2; ver++)
        for (size_t a = 0; a < nf; a++)
            for (size_t b = 0; b < nf; b++)
                for (size_t c = 0; c < nf; c++) {
                    size_t o = (size_t)sprintf(in, "POST / HTTP/1.%d\r\n", ver);
                    const char *f3[3] = { fields[a], fields[b], fields[c] };
                    for (int i = 0; i < 3; i++)
                        if (*f3[i])
                            o += (size_t)sprintf(in + o, "%s\r\n", f3[i]);
                    o += (size_t)sprintf(in + o, "\r\n");
                    compare3(in, o, &lim, CAP);
                }
}

/* ------------------------------------------------------ random heads */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t rn(size_t n)
{
    return (size_t)(rnd() % n);
}

static const char *pick(const char *const *v, size_t n)
{
    return v[rn(n)];
}

#define PICK(v) pick(v, sizeof(v) / sizeof(v[0]))

/* Bytes from a mix weighted towards the classes' edges. */
static char rbyte(void)
{
    static const char edge[] = "\t \r\n\x00\x01\x1f\x7f\x80\xff:?#/%;,=\"()<>@[]{}\\_-.~!";
    switch (rn(4)) {
    case 0: return edge[rn(sizeof(edge) - 1)];
    case 1: return (char)rn(256);
    default: return "abcxyzABCXYZ0189-"[rn(17)];
    }
}

static void put_random_run(char *out, size_t *o, size_t maxn)
{
    size_t n = rn(maxn + 1);
    for (size_t i = 0; i < n; i++)
        out[(*o)++] = rn(8) ? "abcdefghijKLMNOP0123456789-_./"[rn(30)] : rbyte();
}

static size_t random_head(char *out)
{
    static const char *const methods[] = { "GET", "POST", "PUT", "OPTIONS", "DELETE", "get", "GET",
                                           "POST", "M-SEARCH", "PATCH" };
    static const char *const targets[] = { "/", "/plain", "/items/1?q=x", "*", "http://h/p?q",
                                           "https://h:1/", "/a?b?c", "/a#b", "/%20?", "" };
    static const char *const versions[] = { "HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0",
                                            "HTTP/1.2", "HTTP/1.1 ", "HTTP/1" };
    static const char *const names[] = {
        "Host", "host", "HOST", "Content-Length", "content-length", "Transfer-Encoding",
        "transfer-encoding", "Connection", "connection", "Expect", "Upgrade", "User-Agent",
        "Accept", "Accept-Language", "Accept-Encoding", "Upgrade-Insecure-Requests",
        "Sec-Fetch-Dest", "Cache-Control", "X-A", "x_y.z!", "Content-Lengtx", "Hosx",
    };
    static const char *const values[] = {
        "a", "127.0.0.1:8080", "0", "5", "5, 5", "007", "18446744073709551616", "chunked",
        "gzip, chunked", "chunked, gzip", "CHUNKED", "close", "keep-alive", "Keep-Alive, Upgrade",
        "upgrade", "100-continue", "100-Continue", "websocket", "",
        "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", " \t x \t ",
    };
    size_t o = 0;
#define PUTS(s) do { const char *s_ = (s); size_t l_ = strlen(s_); memcpy(out + o, s_, l_); o += l_; } while (0)
    if (!rn(16))
        PUTS("\r\n");
    if (rn(4))
        PUTS(PICK(methods));
    else
        put_random_run(out, &o, 10);
    PUTS(" ");
    if (rn(3))
        PUTS(PICK(targets));
    if (rn(2))
        put_random_run(out, &o, 40);
    PUTS(" ");
    PUTS(rn(6) ? "HTTP/1.1" : PICK(versions));
    PUTS("\r\n");
    size_t nh = rn(12);
    for (size_t i = 0; i < nh; i++) {
        if (rn(5))
            PUTS(PICK(names));
        else
            put_random_run(out, &o, 30);
        PUTS(rn(8) ? ": " : ":");
        if (rn(4))
            PUTS(PICK(values));
        else
            put_random_run(out, &o, 60);
        PUTS("\r\n");
    }
    PUTS("\r\n");
    if (rn(2))
        PUTS("GET / HTTP/1.1\r\n");
#undef PUTS
    /* a few random edits */
    size_t edits = rn(3) ? 0 : 1 + rn(3);
    for (size_t e = 0; e < edits && o > 0; e++)
        out[rn(o)] = rbyte();
    return o;
}

TEST(random_heads_every_prefix)
{
    char in[2048];
    size_t rounds = getenv("HTTP1_DIFF_ROUNDS") ? (size_t)atol(getenv("HTTP1_DIFF_ROUNDS")) : 6000;
    for (size_t i = 0; i < rounds; i++) {
        size_t len = random_head(in);
        cel_http_limits lim;
        cel_http_limits_default(&lim);
        compare_prefixes(in, len, &lim, CAP);
        lim.max_request_line = 1 + rn(60);
        lim.max_header_bytes = 1 + rn(200);
        lim.max_headers = rn(12);
        compare_prefixes(in, len, &lim, 1 + rn(CAP));
    }
    fprintf(stderr, "  %ld inputs compared\n", n_compared);
}
