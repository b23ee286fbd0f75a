/* Connection state machine (conn.c) and the dispatcher (server.c) driven
 * through in-memory connections: no sockets, same code as production. */
#include <string.h>

#include "alloc.h"
#include "conn.h"
#include "errors.h"
#include "server.h"
#include "test.h"

/* ---- conn.c alone ---- */

static cel_conn_config cfg;

static void conn_with(cel_conn *c, const char *bytes)
{
    cel_conn_config_default(&cfg);
    cfg.date_header = 0;
    cfg.server_header = 0;
    cel_conn_init(c, -1, &cfg);
    cel_buf_append(&c->in, bytes, strlen(bytes));
}

static int out_is(cel_conn *c, const char *expect)
{
    return c->out.len == strlen(expect) && memcmp(cel_buf_head(&c->out), expect, c->out.len) == 0;
}

TEST(head_then_length_body)
{
    cel_conn c;
    cel_http_request req;
    cel_header h[16];
    conn_with(&c, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel");
    CHECK_EQ_INT(cel_conn_parse_head(&c, &req, h, 16), 1);
    CHECK_EQ_INT(c.state, CEL_CONN_ACTIVE);
    CHECK(c.keep_alive);
    const char *p;
    size_t n;
    CHECK_EQ_INT(cel_conn_body_read(&c, &p, &n), 1);
    CHECK_EQ_INT(n, 3);
    CHECK(memcmp(p, "hel", 3) == 0);
    CHECK_EQ_INT(cel_conn_body_read(&c, &p, &n), CEL_EAGAIN);
    cel_buf_append(&c.in, "loGET", 5);
    CHECK_EQ_INT(cel_conn_body_read(&c, &p, &n), 1);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(cel_conn_body_read(&c, &p, &n), 0);
    CHECK_EQ_INT(c.in.len, 3);      /* the next request's bytes stay */
    cel_conn_release(&c);
}

TEST(in_swap_keeps_the_last_body_slice)
{
    cel_conn c;
    cel_http_request req;
    cel_header h[16];
    conn_with(&c, "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello");
    CHECK_EQ_INT(cel_conn_parse_head(&c, &req, h, 16), 1);
    const char *p;
    size_t n;
    CHECK_EQ_INT(cel_conn_body_read(&c, &p, &n), 1);
    CHECK_EQ_INT(n, 5);
    cel_buf spare = {0};
    CHECK_EQ_INT(cel_conn_in_swap(&c, &spare), 0);
    CHECK(spare.cap > 0 && spare.len == 0);
    CHECK(p >= spare.data && p + n <= spare.data + spare.cap);
    CHECK_EQ_INT(c.in.cap, 0);              /* the connection reads on into other storage */
    cel_buf_append(&c.in, "worldGET", 8);
    CHECK(memcmp(p, "hello", 5) == 0);      /* the slice is intact in spare */
    CHECK_EQ_INT(cel_conn_body_read(&c, &p, &n), 1);
    CHECK(n == 5 && memcmp(p, "world", 5) == 0);
    CHECK_EQ_INT(cel_conn_body_read(&c, &p, &n), 0);
    CHECK_EQ_INT(cel_conn_in_swap(&c, &spare), CEL_EAGAIN);   /* "GET" unread: nothing changes */
    CHECK_EQ_INT(c.in.len, 3);
    cel_buf_free(&spare);
    cel_conn_release(&c);
}

TEST(chunked_body_and_eof)
{
    cel_conn c;
    cel_http_request req;
    cel_header h[16];
    conn_with(&c, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
    CHECK_EQ_INT(cel_conn_parse_head(&c, &req, h, 16), 1);
    const char *p;
    size_t n;
    CHECK_EQ_INT(cel_conn_body_read(&c, &p, &n), 1);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_INT(cel_conn_body_read(&c, &p, &n), CEL_EAGAIN);
    c.read_eof = 1;
    CHECK_EQ_INT(cel_conn_body_read(&c, &p, &n), CEL_ECLOSED);
    cel_conn_release(&c);
}

TEST(body_limit_content_length_and_chunked)
{
    cel_conn c;
    cel_http_request req;
    cel_header h[16];
    conn_with(&c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n");
    cfg.max_body = 10;
    CHECK_EQ_INT(cel_conn_parse_head(&c, &req, h, 16), CEL_EBODYTOOLARGE);
    cel_conn_release(&c);

    conn_with(&c, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n");
    cfg.max_body = 10;
    CHECK_EQ_INT(cel_conn_parse_head(&c, &req, h, 16), 1);
    const char *p;
    size_t n;
    CHECK_EQ_INT(cel_conn_body_read(&c, &p, &n), 1);
    CHECK_EQ_INT(cel_conn_body_read(&c, &p, &n), CEL_EBODYTOOLARGE);
    cel_conn_release(&c);
}

static cel_header hdr(const char *name, const char *value)
{
    cel_header x = { { name, strlen(name) }, { value, strlen(value) } };
    return x;
}

TEST(response_content_length)
{
    cel_conn c;
    cel_http_request req;
    cel_header h[16];
    conn_with(&c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK_EQ_INT(cel_conn_parse_head(&c, &req, h, 16), 1);
    cel_header rh[2] = { hdr("Content-Type", "text/plain"), hdr("content-length", "2") };
    CHECK_EQ_INT(cel_conn_response_start(&c, 200, rh, 2, NULL), 0);
    CHECK_EQ_INT(cel_conn_response_start(&c, 200, rh, 2, NULL), CEL_ESTATE);
    CHECK_EQ_INT(cel_conn_response_body(&c, "okX", 3, 0), CEL_ERESPLONG);
    CHECK_EQ_INT(cel_conn_response_body(&c, "ok", 2, 0), 0);
    CHECK(out_is(&c, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok"));
    CHECK_EQ_INT(cel_conn_finish(&c), CEL_CONN_IDLE);
    cel_conn_release(&c);
}

TEST(response_short_closes)
{
    cel_conn c;
    cel_http_request req;
    cel_header h[16];
    conn_with(&c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    cel_conn_parse_head(&c, &req, h, 16);
    cel_header rh[1] = { hdr("content-length", "5") };
    cel_conn_response_start(&c, 200, rh, 1, NULL);
    CHECK_EQ_INT(cel_conn_response_body(&c, "ok", 2, 0), CEL_ERESPSHORT);
    CHECK_EQ_INT(cel_conn_finish(&c), CEL_CONN_CLOSING);
    cel_conn_release(&c);
}

TEST(response_chunked_and_head_and_204)
{
    cel_conn c;
    cel_http_request req;
    cel_header h[16];
    conn_with(&c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    cel_conn_parse_head(&c, &req, h, 16);
    CHECK_EQ_INT(cel_conn_response_start(&c, 200, NULL, 0, NULL), 0);
    CHECK_EQ_INT(cel_conn_response_body(&c, "abc", 3, 1), 0);
    CHECK_EQ_INT(cel_conn_response_body(&c, "", 0, 0), 0);
    CHECK(out_is(&c, "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"));
    cel_conn_release(&c);

    conn_with(&c, "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    cel_conn_parse_head(&c, &req, h, 16);
    cel_header rh[1] = { hdr("content-length", "3") };
    CHECK_EQ_INT(cel_conn_response_start(&c, 200, rh, 1, NULL), 0);
    CHECK_EQ_INT(cel_conn_response_body(&c, "abc", 3, 0), 0);
    CHECK(out_is(&c, "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n"));
    cel_conn_release(&c);

    conn_with(&c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    cel_conn_parse_head(&c, &req, h, 16);
    CHECK_EQ_INT(cel_conn_response_start(&c, 204, NULL, 0, NULL), 0);
    CHECK_EQ_INT(cel_conn_response_body(&c, "", 0, 0), 0);
    CHECK(out_is(&c, "HTTP/1.1 204 No Content\r\n\r\n"));
    cel_conn_release(&c);
}

TEST(http10_keepalive_and_close_delimited)
{
    cel_conn c;
    cel_http_request req;
    cel_header h[16];
    conn_with(&c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    cel_conn_parse_head(&c, &req, h, 16);
    CHECK(c.keep_alive);
    cel_header rh[1] = { hdr("content-length", "1") };
    cel_conn_response_start(&c, 200, rh, 1, NULL);
    cel_conn_response_body(&c, "x", 1, 0);
    CHECK(out_is(&c, "HTTP/1.1 200 OK\r\ncontent-length: 1\r\nconnection: keep-alive\r\n\r\nx"));
    CHECK_EQ_INT(cel_conn_finish(&c), CEL_CONN_IDLE);
    cel_conn_release(&c);

    conn_with(&c, "GET / HTTP/1.0\r\n\r\n");
    cel_conn_parse_head(&c, &req, h, 16);
    cel_conn_response_start(&c, 200, NULL, 0, NULL);
    cel_conn_response_body(&c, "x", 1, 0);
    CHECK(out_is(&c, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nx"));
    CHECK_EQ_INT(cel_conn_finish(&c), CEL_CONN_CLOSING);
    cel_conn_release(&c);
}

TEST(invalid_response_headers)
{
    cel_conn c;
    cel_http_request req;
    cel_header h[16];
    conn_with(&c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    cel_conn_parse_head(&c, &req, h, 16);
    cel_header bad_name[1] = { hdr("bad name", "x") };
    CHECK_EQ_INT(cel_conn_response_start(&c, 200, bad_name, 1, NULL), CEL_EHDRNAME);
    cel_header bad_value[1] = { hdr("x", "a\r\nb") };
    CHECK_EQ_INT(cel_conn_response_start(&c, 200, bad_value, 1, NULL), CEL_EHDRVALUE);
    cel_header bad_cl[1] = { hdr("content-length", "12x") };
    CHECK_EQ_INT(cel_conn_response_start(&c, 200, bad_cl, 1, NULL), CEL_EBADCL);
    CHECK_EQ_INT(c.out.len, 0);
    cel_conn_release(&c);
}

/* Every byte as a header-name and a header-value byte, checked against the
 * rule (tchar names, lower-cased; values without CTLs but HTAB), and a bad
 * header after good ones leaves `out` untouched. */
TEST(response_header_bytes)
{
    static const char sep[] = "(),/:;<=>?@[\\]{}\"";
    for (int b = 0; b < 256; b++) {
        cel_conn c;
        cel_http_request req;
        cel_header h[16];
        conn_with(&c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        cel_conn_parse_head(&c, &req, h, 16);
        char name[3] = {'x', (char)b, 'Y'}, value[3] = {'v', (char)b, 'w'};
        int tchar = b > 0x20 && b < 0x7f && !memchr(sep, b, sizeof sep - 1);
        int vok = !((b < 0x20 && b != '\t') || b == 0x7f);
        cel_header good = hdr("Content-Type", "text/plain");
        cel_header hs[2] = { good, { { name, 3 }, { "v", 1 } } };
        int rc = cel_conn_response_start(&c, 200, hs, 2, NULL);
        CHECK_EQ_INT(rc, tchar ? 0 : CEL_EHDRNAME);
        if (rc == 0) {
            char want[64];
            char lower = (char)(b >= 'A' && b <= 'Z' ? b + 32 : b);
            snprintf(want, sizeof want, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nx%cy: v\r\n", lower);
            CHECK(c.out.len > strlen(want) && memcmp(cel_buf_head(&c.out), want, strlen(want)) == 0);
        } else {
            CHECK_EQ_INT(c.out.len, 0);
            CHECK_EQ_INT(c.resp_started, 0);
        }
        cel_conn_release(&c);
        conn_with(&c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
        cel_conn_parse_head(&c, &req, h, 16);
        cel_header vs[2] = { good, { { "x", 1 }, { value, 3 } } };
        rc = cel_conn_response_start(&c, 200, vs, 2, NULL);
        CHECK_EQ_INT(rc, vok ? 0 : CEL_EHDRVALUE);
        if (rc)
            CHECK_EQ_INT(c.out.len, 0);
        cel_conn_release(&c);
        /* the byte at every position of a 20-byte value: the 8-byte words
         * and the tail are checked alike */
        for (int pos = 0; pos < 20; pos++) {
            char longv[20];
            memcpy(longv, "abcdefghijklmnopqrst", 20);
            longv[pos] = (char)b;
            conn_with(&c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            cel_conn_parse_head(&c, &req, h, 16);
            cel_header ls[1] = { { { "x", 1 }, { longv, 20 } } };
            CHECK_EQ_INT(cel_conn_response_start(&c, 200, ls, 1, NULL), vok ? 0 : CEL_EHDRVALUE);
            cel_conn_release(&c);
        }
    }
}

TEST(continue_only_when_body_wanted)
{
    cel_conn c;
    cel_http_request req;
    cel_header h[16];
    conn_with(&c, "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    cel_conn_parse_head(&c, &req, h, 16);
    CHECK(c.expect_continue);
    CHECK_EQ_INT(cel_conn_send_continue(&c), 1);
    CHECK_EQ_INT(cel_conn_send_continue(&c), 0);
    CHECK(out_is(&c, "HTTP/1.1 100 Continue\r\n\r\n"));
    cel_conn_release(&c);

    /* never read: the response goes out, and the connection closes since
     * the client's next bytes cannot be framed */
    conn_with(&c, "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n");
    cel_conn_parse_head(&c, &req, h, 16);
    cel_header rh[1] = { hdr("content-length", "0") };
    cel_conn_response_start(&c, 200, rh, 1, NULL);
    cel_conn_response_body(&c, "", 0, 0);
    CHECK_EQ_INT(cel_conn_finish(&c), CEL_CONN_CLOSING);
    cel_conn_release(&c);
}

TEST(unread_body_is_drained)
{
    cel_conn c;
    cel_http_request req;
    cel_header h[16];
    conn_with(&c, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab");
    cel_conn_parse_head(&c, &req, h, 16);
    cel_header rh[1] = { hdr("content-length", "0") };
    cel_conn_response_start(&c, 200, rh, 1, NULL);
    cel_conn_response_body(&c, "", 0, 0);
    CHECK_EQ_INT(cel_conn_finish(&c), CEL_CONN_DRAIN);
    cel_conn_release(&c);
}

/* ---- the dispatcher over in-memory connections ---- */

typedef struct harness {
    cel_server *srv;
    int requests;
    int closes;
    int respond_inline;         /* answer inside on_request */
} harness;

static int h_on_request(void *ud, cel_conn *c, const cel_http_request *req)
{
    harness *h = ud;
    h->requests++;
    if (h->respond_inline) {
        char body[64];
        int n = snprintf(body, sizeof body, "%.*s", (int)req->path.len, req->path.p);
        char len[16];
        snprintf(len, sizeof len, "%d", n);
        cel_header rh[1] = { { { "content-length", 14 }, { len, strlen(len) } } };
        int rc = cel_conn_response_start(c, 200, rh, 1, NULL);
        if (rc == 0)
            rc = cel_conn_response_body(c, body, (size_t)n, 0);
        if (rc)
            return rc;
        cel_server_response_done(h->srv, c);
    }
    return 0;
}

static void h_on_close(void *ud, cel_conn *c)
{
    (void)c;
    ((harness *)ud)->closes++;
}

static cel_server *new_server(harness *h)
{
    cel_server_config sc;
    cel_server_config_default(&sc);
    sc.conn.date_header = 0;
    sc.conn.server_header = 0;
    cel_server_callbacks cb = { .ud = h, .on_request = h_on_request, .on_close = h_on_close };
    h->srv = cel_server_new(&sc, &cb);
    return h->srv;
}

TEST(pipelined_inline_responses_in_order)
{
    harness h = { 0 };
    h.respond_inline = 1;
    cel_server *s = new_server(&h);
    CHECK(s != NULL);
    cel_conn *c = cel_server_memory_conn(s, NULL, 0);
    const char *reqs = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /bb HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /ccc HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ_INT(cel_server_feed(s, c, reqs, strlen(reqs), 0), 0);
    CHECK_EQ_INT(h.requests, 3);
    char out[512];
    size_t n = cel_server_take_output(s, c, out, sizeof out);
    const char *expect = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n/a"
                         "HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\n/bb"
                         "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\n/ccc";
    CHECK_EQ_INT(n, strlen(expect));
    CHECK(memcmp(out, expect, n) == 0);
    cel_server_free(s);
}

/* Regression (UBSan under the Python suite): taking the output of a connection
 * with nothing pending used to memcpy from the empty buffer's NULL head. */
TEST(take_output_with_nothing_pending)
{
    harness h = { 0 };
    cel_server *s = new_server(&h);
    CHECK(s != NULL);
    cel_conn *c = cel_server_memory_conn(s, NULL, 0);
    char out[16];
    CHECK_EQ_INT(cel_server_take_output(s, c, out, sizeof out), 0);
    CHECK_EQ_INT(cel_server_take_output(s, c, NULL, 0), 0);
    cel_server_close(s, c);
    cel_server_free(s);
}

TEST(bad_request_answers_400_and_closes)
{
    harness h = { 0 };
    cel_server *s = new_server(&h);
    cel_conn *c = cel_server_memory_conn(s, NULL, 0);
    const char *bad = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
    CHECK_EQ_INT(cel_server_feed(s, c, bad, strlen(bad), 0), CEL_ECLOSED);
    CHECK_EQ_INT(h.requests, 0);
    char out[512];
    size_t n = cel_server_take_output(s, c, out, sizeof out - 1);
    out[n] = 0;
    CHECK(strncmp(out, "HTTP/1.1 400 Bad Request\r\n", 26) == 0);
    CHECK(strstr(out, "connection: close\r\n") != NULL);
    CHECK(strstr(out, "Invalid HTTP request received.") != NULL);
    cel_server_close(s, c);
    cel_server_free(s);
}

TEST(split_head_at_every_byte)
{
    const char *req = "GET /split HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n\r\n";
    size_t len = strlen(req);
    for (size_t cut = 1; cut < len; cut++) {
        harness h = { 0 };
        h.respond_inline = 1;
        cel_server *s = new_server(&h);
        cel_conn *c = cel_server_memory_conn(s, NULL, 0);
        CHECK_EQ_INT(cel_server_feed(s, c, req, cut, 0), 0);
        CHECK_EQ_INT(h.requests, 0);
        CHECK_EQ_INT(cel_server_feed(s, c, req + cut, len - cut, 0), 0);
        CHECK_EQ_INT(h.requests, 1);
        cel_server_free(s);
    }
}

/* Every allocation failure point: the core must fail cleanly (an error code
 * or a closed connection), never crash or leak (ASan build checks leaks). */
TEST(allocation_failure_every_n)
{
    const char *reqs = "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                       "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    for (unsigned long n = 1; n < 40; n++) {
        harness h = { 0 };
        h.respond_inline = 1;
        cel_alloc_fail_after(n);
        cel_server *s = new_server(&h);
        if (s) {
            cel_conn *c = cel_server_memory_conn(s, NULL, 0);
            if (c) {
                int rc = cel_server_feed(s, c, reqs, strlen(reqs), 0);
                CHECK(rc == 0 || rc == CEL_ENOMEM || rc == CEL_ECLOSED);
            }
            cel_alloc_fail_after(0);
            cel_server_free(s);
        }
        cel_alloc_fail_after(0);
    }
}

static int close_on_request(void *ud, cel_conn *c, const cel_http_request *req)
{
    (void)req;
    harness *h = ud;
    h->requests++;
    cel_server_close(h->srv, c);    /* from inside the dispatcher: must be deferred */
    return 0;
}

TEST(close_from_inside_a_callback_is_deferred)
{
    harness h = { 0 };
    cel_server_config sc;
    cel_server_config_default(&sc);
    cel_server_callbacks cb = { .ud = &h, .on_request = close_on_request, .on_close = h_on_close };
    h.srv = cel_server_new(&sc, &cb);
    cel_conn *c = cel_server_memory_conn(h.srv, NULL, 0);
    const char *reqs = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK_EQ_INT(cel_server_feed(h.srv, c, reqs, strlen(reqs), 0), CEL_ECLOSED);
    CHECK_EQ_INT(h.requests, 1);
    CHECK_EQ_INT(h.closes, 1);
    cel_server_free(h.srv);
}

/* The requests and statuses the fixed-head tests run every response over. */
static const char *const reqs[] = {
    "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    "HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
    "GET / HTTP/1.0\r\n\r\n",
    "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
};
static const int statuses[] = { 200, 201, 204, 304, 404, 101, 599, 1000, 42 };

/* cel_conn_response_start_fixed writes what cel_conn_response_start writes
 * for ("content-length", n), ("content-type", t) and leaves the same state,
 * over statuses, methods, versions, keep-alive, 100-continue and cfg. */
TEST(fixed_head_equals_general_head)
{
    static const uint64_t lengths[] = { 0, 17, 1234567, UINT64_MAX };
    static const char *const types[] = { "application/json", "", "text/plain; charset=utf-8" };
    const char date[] = "Sun, 06 Dec 2026 20:00:00 GMT";
    for (size_t r = 0; r < sizeof reqs / sizeof reqs[0]; r++)
    for (size_t s = 0; s < sizeof statuses / sizeof statuses[0]; s++)
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++)
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
    for (int dated = 0; dated < 4; dated++) {
        cel_conn a, b;
        cel_http_request ra, rb;
        cel_header ha[16], hb[16];
        conn_with(&a, reqs[r]);
        cfg.date_header = dated & 1;
        cfg.server_header = dated >> 1;
        CHECK_EQ_INT(cel_conn_parse_head(&a, &ra, ha, 16), 1);
        char len[24];
        int ln = snprintf(len, sizeof len, "%llu", (unsigned long long)lengths[l]);
        cel_header hs[2] = {
            { { "content-length", 14 }, { len, (size_t)ln } },
            { { "content-type", 12 }, { types[t], strlen(types[t]) } },
        };
        CHECK_EQ_INT(cel_conn_response_start(&a, statuses[s], hs, 2, date), 0);
        conn_with(&b, reqs[r]);
        cfg.date_header = dated & 1;
        cfg.server_header = dated >> 1;
        CHECK_EQ_INT(cel_conn_parse_head(&b, &rb, hb, 16), 1);
        CHECK_EQ_INT(cel_conn_response_start_fixed(&b, statuses[s], lengths[l], types[t],
                                                   strlen(types[t]), date), 0);
        int same = a.out.len == b.out.len
                   && memcmp(cel_buf_head(&a.out), cel_buf_head(&b.out), a.out.len) == 0
                   && a.keep_alive == b.keep_alive && a.resp_started == b.resp_started
                   && a.resp_status == b.resp_status && a.resp_chunked == b.resp_chunked
                   && a.resp_has_length == b.resp_has_length && a.resp_left == b.resp_left;
        CHECK(same);
        if (!same)
            fprintf(stderr, "  req %zu status %d length %zu type %zu dated %d:\n%.*s---\n%.*s\n", r,
                    statuses[s], l, t, dated, (int)a.out.len, cel_buf_head(&a.out),
                    (int)b.out.len, cel_buf_head(&b.out));
        CHECK_EQ_INT(cel_conn_response_start_fixed(&b, 200, 1, "x", 1, date), CEL_ESTATE);
        cel_conn_release(&a);
        cel_conn_release(&b);
    }
}

/* cel_conn_respond_fixed writes and leaves what cel_conn_response_start_fixed
 * followed by cel_conn_response_body(.., 0) do, over the same matrix, and
 * appends to output already buffered (a pipelined batch). */
TEST(respond_fixed_equals_start_and_body)
{
    static const size_t lengths[] = { 0, 1, 9, 10, 17, 99, 100, 1000, 70000 };
    static const char *const types[] = { "application/json", "", "text/plain; charset=utf-8" };
    const char date[] = "Sun, 06 Dec 2026 20:00:00 GMT";
    char *body = malloc(70000);
    CHECK(body != NULL);
    if (!body)
        return;
    for (size_t i = 0; i < 70000; i++)
        body[i] = (char)('a' + i % 26);
    for (size_t r = 0; r < sizeof reqs / sizeof reqs[0]; r++)
    for (size_t s = 0; s < sizeof statuses / sizeof statuses[0]; s++)
    for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++)
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
    for (int dated = 0; dated < 4; dated++)
    for (int queued = 0; queued < 2; queued++) {
        cel_conn a, b;
        cel_http_request ra, rb;
        cel_header ha[16], hb[16];
        conn_with(&a, reqs[r]);
        conn_with(&b, reqs[r]);
        cfg.date_header = dated & 1;
        cfg.server_header = dated >> 1;
        if (queued) {
            CHECK_EQ_INT(cel_buf_append(&a.out, "earlier", 7), 0);
            CHECK_EQ_INT(cel_buf_append(&b.out, "earlier", 7), 0);
        }
        CHECK_EQ_INT(cel_conn_parse_head(&a, &ra, ha, 16), 1);
        CHECK_EQ_INT(cel_conn_parse_head(&b, &rb, hb, 16), 1);
        const char *ct = types[t];
        CHECK_EQ_INT(cel_conn_response_start_fixed(&a, statuses[s], lengths[l], ct, strlen(ct),
                                                   date), 0);
        CHECK_EQ_INT(cel_conn_response_body(&a, body, lengths[l], 0), 0);
        CHECK_EQ_INT(cel_conn_respond_fixed(&b, statuses[s], ct, strlen(ct), body, lengths[l],
                                            date), 0);
        int same = a.out.len == b.out.len
                   && memcmp(cel_buf_head(&a.out), cel_buf_head(&b.out), a.out.len) == 0
                   && a.keep_alive == b.keep_alive && a.resp_started == b.resp_started
                   && a.resp_done == b.resp_done && a.resp_status == b.resp_status
                   && a.resp_chunked == b.resp_chunked && a.resp_has_length == b.resp_has_length
                   && a.resp_left == b.resp_left;
        CHECK(same);
        if (!same)
            fprintf(stderr, "  req %zu status %d length %zu type %zu dated %d queued %d\n", r,
                    statuses[s], lengths[l], t, dated, queued);
        CHECK_EQ_INT(cel_conn_respond_fixed(&b, 200, "x", 1, "y", 1, date), CEL_ESTATE);
        cel_conn_release(&a);
        cel_conn_release(&b);
    }
    free(body);
}
