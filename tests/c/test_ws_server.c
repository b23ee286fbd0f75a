/* The server's WebSocket mode (server.c ws_*, conn.c cel_conn_ws_*) driven
 * through in-memory connections: handshake validation and the 101, message
 * delivery (split at every byte, zero-copy and reassembled), backpressure,
 * ping/pong, both closing handshakes, protocol errors and their close
 * codes, the size limit, shutdown, allocation failures. */
#include <string.h>

#include "alloc.h"
#include "errors.h"
#include "server.h"
#include "test.h"
#include "ws.h"

typedef struct harness {
    cel_server *srv;
    cel_conn *conn;             /* the connection a head arrived on */
    int requests, closes, messages;
    int accept_inline;          /* accept from inside on_request */
    int want_again;             /* ask for the next message from inside on_ws_message */
    int close_code;             /* c->ws->close_code seen in on_close */
    char last[1 << 17];
    size_t last_len;
    int last_opcode;
    char all[1 << 17];          /* every message, concatenated */
    size_t all_len;
} harness;

static int h_on_request(void *ud, cel_conn *c, const cel_http_request *req)
{
    (void)req;
    harness *h = ud;
    h->requests++;
    h->conn = c;
    if (h->accept_inline && c->ws)
        return cel_server_ws_accept(h->srv, c, NULL, 0, NULL, 0) == CEL_ENOMEM ? CEL_ENOMEM : 0;
    return 0;
}

static void h_on_close(void *ud, cel_conn *c)
{
    harness *h = ud;
    h->closes++;
    h->close_code = c->ws ? c->ws->close_code : -1;
}

static void h_on_ws_message(void *ud, cel_conn *c, int opcode, const char *p, size_t n)
{
    harness *h = ud;
    h->messages++;
    h->last_opcode = opcode;
    h->last_len = n < sizeof h->last ? n : sizeof h->last;
    memcpy(h->last, p, h->last_len);
    if (h->all_len + n <= sizeof h->all) {
        memcpy(h->all + h->all_len, p, n);
        h->all_len += n;
    }
    if (h->want_again)
        cel_server_ws_want_message(h->srv, c);
}

static cel_server *new_server(harness *h, uint64_t max_message)
{
    cel_server_config sc;
    cel_server_config_default(&sc);
    sc.conn.date_header = 0;
    sc.conn.server_header = 0;
    sc.ws_max_message = max_message;
    cel_server_callbacks cb = { .ud = h, .on_request = h_on_request, .on_close = h_on_close,
                                .on_ws_message = h_on_ws_message };
    h->srv = cel_server_new(&sc, &cb);
    return h->srv;
}

static const char HANDSHAKE[] =
    "GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

static const char ACCEPT_101[] =
    "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
    "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

static const unsigned char MASK[4] = { 1, 2, 3, 4 };

static size_t cframe(char *out, int fin, int op, const void *p, size_t n)
{
    size_t h = cel_ws_frame_header((unsigned char *)out, fin, op, n, MASK);
    if (n)
        memcpy(out + h, p, n);
    cel_ws_unmask(out + h, n, MASK, 0);
    return h + n;
}

/* Take all output of c into buf (NUL-terminated for convenience). */
static size_t take(harness *h, cel_conn *c, char *buf, size_t cap)
{
    size_t n = cel_server_take_output(h->srv, c, buf, cap - 1);
    buf[n] = 0;
    return n;
}

/* An accepted connection. */
static cel_conn *open_ws(harness *h, uint64_t max_message)
{
    new_server(h, max_message);
    cel_conn *c = cel_server_memory_conn(h->srv, NULL, 0);
    CHECK_EQ_INT(cel_server_feed(h->srv, c, HANDSHAKE, sizeof HANDSHAKE - 1, 0), 0);
    CHECK_EQ_INT(h->requests, 1);
    CHECK(c->ws != NULL && c->state == CEL_CONN_ACTIVE);
    CHECK_EQ_INT(cel_server_ws_accept(h->srv, c, NULL, 0, NULL, 0), 0);
    CHECK_EQ_INT(c->state, CEL_CONN_WS);
    char out[512];
    size_t n = take(h, c, out, sizeof out);
    CHECK(n == sizeof ACCEPT_101 - 1 && memcmp(out, ACCEPT_101, n) == 0);
    return c;
}

TEST(handshake_accept_with_subprotocol_and_headers)
{
    harness h = { 0 };
    new_server(&h, 0);
    cel_conn *c = cel_server_memory_conn(h.srv, NULL, 0);
    CHECK_EQ_INT(cel_server_feed(h.srv, c, HANDSHAKE, sizeof HANDSHAKE - 1, 0), 0);
    cel_header hs[1] = { { { "X-Extra", 7 }, { "yes", 3 } } };
    cel_header bad[1] = { { { "X Bad", 5 }, { "v", 1 } } };
    CHECK_EQ_INT(cel_server_ws_accept(h.srv, c, "chat", 4, bad, 1), CEL_EHDRNAME);
    CHECK_EQ_INT(c->out.len, 0);
    CHECK_EQ_INT(cel_server_ws_accept(h.srv, c, "chat", 4, hs, 1), 0);
    char out[512];
    take(&h, c, out, sizeof out);
    CHECK(strstr(out, "sec-websocket-protocol: chat\r\n") != NULL);
    CHECK(strstr(out, "x-extra: yes\r\n\r\n") != NULL);
    CHECK_EQ_INT(cel_server_ws_accept(h.srv, c, NULL, 0, NULL, 0), CEL_ESTATE);
    cel_server_free(h.srv);
}

TEST(invalid_handshakes_answered_400_426)
{
    const char *reqs[] = {
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: bad\r\nSec-WebSocket-Version: 13\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n",
    };
    const char *status[] = { "HTTP/1.1 400 ", "HTTP/1.1 426 " };
    for (int i = 0; i < 2; i++) {
        harness h = { 0 };
        new_server(&h, 0);
        cel_conn *c = cel_server_memory_conn(h.srv, NULL, 0);
        CHECK_EQ_INT(cel_server_feed(h.srv, c, reqs[i], strlen(reqs[i]), 0), CEL_ECLOSED);
        CHECK_EQ_INT(h.requests, 0);
        char out[512];
        take(&h, c, out, sizeof out);
        CHECK(strncmp(out, status[i], 13) == 0);
        if (i == 1)
            CHECK(strstr(out, "sec-websocket-version: 13\r\n") != NULL);
        cel_server_free(h.srv);
    }
    /* h2c is not a WebSocket upgrade: an ordinary request */
    harness h = { 0 };
    new_server(&h, 0);
    cel_conn *c = cel_server_memory_conn(h.srv, NULL, 0);
    const char *h2c = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n";
    CHECK_EQ_INT(cel_server_feed(h.srv, c, h2c, strlen(h2c), 0), 0);
    CHECK(h.requests == 1 && c->ws == NULL && c->state == CEL_CONN_ACTIVE);
    cel_server_free(h.srv);
}

TEST(messages_split_at_every_byte)
{
    char in[4096];
    size_t n = 0;
    n += cframe(in + n, 1, CEL_WS_TEXT, "hello", 5);
    n += cframe(in + n, 0, CEL_WS_BINARY, "ab", 2);
    n += cframe(in + n, 1, CEL_WS_PING, "pp", 2);
    n += cframe(in + n, 1, CEL_WS_CONT, "cd", 2);
    static char big[300];
    memset(big, 'q', sizeof big);
    n += cframe(in + n, 1, CEL_WS_BINARY, big, sizeof big);
    for (size_t cut = 0; cut <= n; cut++) {
        harness h = { 0 };
        cel_conn *c = open_ws(&h, 0);
        h.want_again = 1;
        CHECK_EQ_INT(cel_server_ws_want_message(h.srv, c), 0);
        CHECK_EQ_INT(cel_server_feed(h.srv, c, in, cut, 0), 0);
        CHECK_EQ_INT(cel_server_feed(h.srv, c, in + cut, n - cut, 0), 0);
        CHECK_EQ_INT(h.messages, 3);
        CHECK(h.all_len == 5 + 4 + 300 && memcmp(h.all, "helloabcd", 9) == 0);
        CHECK(h.last_opcode == CEL_WS_BINARY && h.last_len == 300);
        char out[64];
        size_t k = take(&h, c, out, sizeof out);
        CHECK(k == 4 && memcmp(out, "\x8a\x02pp", 4) == 0);     /* the pong */
        cel_server_free(h.srv);
    }
}

TEST(backpressure_one_message_at_a_time)
{
    harness h = { 0 };
    cel_conn *c = open_ws(&h, 0);
    char in[256];
    size_t n = 0;
    n += cframe(in + n, 1, CEL_WS_TEXT, "one", 3);
    n += cframe(in + n, 1, CEL_WS_TEXT, "two", 3);
    n += cframe(in + n, 1, CEL_WS_PING, "", 0);
    CHECK_EQ_INT(cel_server_feed(h.srv, c, in, n, 0), 0);
    /* nobody asked: the first message waits, the rest stays unparsed */
    CHECK_EQ_INT(h.messages, 0);
    CHECK(c->ws->msg_ready && c->in.len > 0);
    CHECK_EQ_INT(cel_server_ws_want_message(h.srv, c), 0);     /* delivered at once */
    CHECK(h.messages == 1 && h.last_len == 3 && memcmp(h.last, "one", 3) == 0);
    CHECK_EQ_INT(h.messages, 1);
    CHECK(c->ws->msg_ready);                                   /* "two" parsed, waiting */
    CHECK_EQ_INT(cel_server_ws_want_message(h.srv, c), 0);
    CHECK(h.messages == 2 && memcmp(h.last, "two", 3) == 0);
    char out[16];
    CHECK_EQ_INT(take(&h, c, out, sizeof out), 2);             /* then the ping's pong */
    CHECK(memcmp(out, "\x8a\x00", 2) == 0);
    cel_server_free(h.srv);
}

TEST(peer_close_echoed_and_code_kept)
{
    harness h = { 0 };
    cel_conn *c = open_ws(&h, 0);
    char in[64];
    size_t n = cframe(in, 1, CEL_WS_CLOSE, "\x0f\xa1" "bye", 5);
    CHECK_EQ_INT(cel_server_feed(h.srv, c, in, n, 0), CEL_ECLOSED);
    CHECK_EQ_INT(h.closes, 1);
    CHECK_EQ_INT(h.close_code, 4001);
    CHECK(c->ws->close_reason_len == 3 && memcmp(c->ws->close_reason, "bye", 3) == 0);
    char out[64];
    CHECK_EQ_INT(take(&h, c, out, sizeof out), 7);
    CHECK(memcmp(out, "\x88\x05\x0f\xa1" "bye", 7) == 0);
    cel_server_free(h.srv);
    /* without a code: 1005 for the app, an empty close back */
    harness h2 = { 0 };
    c = open_ws(&h2, 0);
    n = cframe(in, 1, CEL_WS_CLOSE, "", 0);
    CHECK_EQ_INT(cel_server_feed(h2.srv, c, in, n, 0), CEL_ECLOSED);
    CHECK_EQ_INT(h2.close_code, 1005);
    CHECK_EQ_INT(take(&h2, c, out, sizeof out), 2);
    cel_server_free(h2.srv);
}

TEST(server_close_then_peer_close)
{
    harness h = { 0 };
    cel_conn *c = open_ws(&h, 0);
    CHECK_EQ_INT(cel_server_ws_close(h.srv, c, 1000, "done", 4), 0);
    CHECK_EQ_INT(cel_server_ws_send(h.srv, c, CEL_WS_TEXT, "x", 1), CEL_ESTATE);
    CHECK_EQ_INT(cel_server_ws_close(h.srv, c, 1000, "", 0), CEL_ESTATE);
    char out[64];
    CHECK_EQ_INT(take(&h, c, out, sizeof out), 8);
    CHECK(memcmp(out, "\x88\x06\x03\xe8" "done", 8) == 0);
    /* a message after our close is dropped; the peer's close finishes it */
    char in[64];
    size_t n = cframe(in, 1, CEL_WS_TEXT, "late", 4);
    CHECK_EQ_INT(cel_server_feed(h.srv, c, in, n, 0), 0);
    CHECK_EQ_INT(h.messages, 0);
    CHECK_EQ_INT(h.closes, 0);
    n = cframe(in, 1, CEL_WS_CLOSE, "\x03\xe8", 2);
    CHECK_EQ_INT(cel_server_feed(h.srv, c, in, n, 0), CEL_ECLOSED);
    CHECK_EQ_INT(h.closes, 1);
    CHECK_EQ_INT(take(&h, c, out, sizeof out), 0);             /* no second close */
    cel_server_free(h.srv);
}

TEST(protocol_errors_close_with_their_codes)
{
    struct { int op, fin; const char *p; size_t n; int code; } cases[] = {
        { 0x3, 1, "a", 1, 1002 },
        { CEL_WS_CONT, 1, "a", 1, 1002 },
        { CEL_WS_PING, 0, "a", 1, 1002 },
        { CEL_WS_TEXT, 1, "\xff", 1, 1007 },
        { CEL_WS_CLOSE, 1, "\x03\xed", 2, 1002 },
        { CEL_WS_BINARY, 1, "0123456789a", 11, 1009 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        harness h = { 0 };
        cel_conn *c = open_ws(&h, 10);
        char in[64];
        size_t n = cframe(in, cases[i].fin, cases[i].op, cases[i].p, cases[i].n);
        CHECK_EQ_INT(cel_server_feed(h.srv, c, in, n, 0), CEL_ECLOSED);
        CHECK_EQ_INT(h.close_code, cases[i].code);
        char out[256];
        size_t k = take(&h, c, out, sizeof out);
        CHECK(k >= 4 && (unsigned char)out[0] == 0x88);
        CHECK_EQ_INT(((unsigned char)out[2] << 8) | (unsigned char)out[3], cases[i].code);
        if (cases[i].code == 1009)
            CHECK(strstr(out + 4, "Message exceeds the maximum size (10 bytes)") != NULL);
        cel_server_free(h.srv);
    }
    /* unmasked client frame */
    harness h = { 0 };
    cel_conn *c = open_ws(&h, 0);
    CHECK_EQ_INT(cel_server_feed(h.srv, c, "\x81\x01x", 3, 0), CEL_ECLOSED);
    CHECK_EQ_INT(h.close_code, 1002);
    cel_server_free(h.srv);
}

TEST(eof_without_close)
{
    harness h = { 0 };
    cel_conn *c = open_ws(&h, 0);
    char in[64];
    size_t n = cframe(in, 1, CEL_WS_TEXT, "partial", 7);
    CHECK_EQ_INT(cel_server_feed(h.srv, c, in, n - 2, 1), CEL_ECLOSED);
    CHECK_EQ_INT(h.closes, 1);
    CHECK_EQ_INT(h.close_code, 0);      /* dropped: no close code */
    cel_server_free(h.srv);
}

TEST(accept_inside_on_request_and_pipelined_frames)
{
    harness h = { 0 };
    h.accept_inline = 1;
    h.want_again = 1;
    new_server(&h, 0);
    cel_conn *c = cel_server_memory_conn(h.srv, NULL, 0);
    char in[512];
    memcpy(in, HANDSHAKE, sizeof HANDSHAKE - 1);
    size_t n = sizeof HANDSHAKE - 1;
    n += cframe(in + n, 1, CEL_WS_TEXT, "early", 5);
    CHECK_EQ_INT(cel_server_feed(h.srv, c, in, n, 0), 0);
    CHECK_EQ_INT(c->state, CEL_CONN_WS);
    CHECK(c->ws->msg_ready);            /* parsed; waits for the app */
    CHECK_EQ_INT(cel_server_ws_want_message(h.srv, c), 0);
    CHECK(h.messages == 1 && memcmp(h.last, "early", 5) == 0);
    cel_server_free(h.srv);
}

TEST(going_away_closes_with_1012)
{
    harness h = { 0 };
    cel_conn *c = open_ws(&h, 0);
    CHECK_EQ_INT(cel_server_ws_going_away(h.srv), 1);
    CHECK_EQ_INT(h.close_code, 1012);
    char out[16];
    CHECK_EQ_INT(take(&h, c, out, sizeof out), 4);
    CHECK(memcmp(out, "\x88\x02\x03\xf4", 4) == 0);
    CHECK_EQ_INT(cel_server_ws_going_away(h.srv), 0);
    cel_server_free(h.srv);
}

TEST(large_send_and_message)
{
    harness h = { 0 };
    cel_conn *c = open_ws(&h, 0);
    static char big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    CHECK_EQ_INT(cel_server_ws_send(h.srv, c, CEL_WS_TEXT, big, sizeof big), 0);
    CHECK_EQ_INT(c->out.len, 10 + sizeof big);
    static char out[200000];
    take(&h, c, out, sizeof out);
    CHECK((unsigned char)out[0] == 0x81 && (unsigned char)out[1] == 127);
    CHECK(memcmp(out + 10, big, sizeof big) == 0);
    /* a large message from the peer, fragmented, reassembled */
    static char in[200000];
    size_t n = cframe(in, 0, CEL_WS_TEXT, big, 60000);
    n += cframe(in + n, 1, CEL_WS_CONT, big + 60000, sizeof big - 60000);
    CHECK_EQ_INT(cel_server_ws_want_message(h.srv, c), 0);
    CHECK_EQ_INT(cel_server_feed(h.srv, c, in, n, 0), 0);
    CHECK(h.messages == 1 && h.all_len == sizeof big && memcmp(h.all, big, sizeof big) == 0);
    cel_server_free(h.srv);
}

/* Every allocation failure point of a whole conversation: an error code or
 * a closed connection, never a crash or a leak (the ASan build checks). */
TEST(allocation_failure_every_n)
{
    char in[1024];
    memcpy(in, HANDSHAKE, sizeof HANDSHAKE - 1);
    size_t n = sizeof HANDSHAKE - 1;
    n += cframe(in + n, 0, CEL_WS_TEXT, "frag", 4);
    n += cframe(in + n, 1, CEL_WS_PING, "p", 1);
    n += cframe(in + n, 1, CEL_WS_CONT, "ment", 4);
    n += cframe(in + n, 1, CEL_WS_CLOSE, "\x03\xe8", 2);
    for (unsigned long k = 1; k < 30; k++) {
        harness h = { 0 };
        h.accept_inline = 1;
        h.want_again = 1;
        cel_alloc_fail_after(k);
        if (new_server(&h, 0)) {
            cel_conn *c = cel_server_memory_conn(h.srv, NULL, 0);
            if (c) {
                int rc = cel_server_feed(h.srv, c, in, n, 0);
                CHECK(rc == 0 || rc == CEL_ENOMEM || rc == CEL_ECLOSED);
                if (c->state == CEL_CONN_WS) {
                    cel_server_ws_want_message(h.srv, c);
                    cel_server_ws_send(h.srv, c, CEL_WS_TEXT, "x", 1);
                }
            }
            cel_alloc_fail_after(0);
            cel_server_free(h.srv);
        }
        cel_alloc_fail_after(0);
    }
}

TEST(client_leaves_during_handshake)
{
    harness h = { 0 };
    new_server(&h, 0);
    cel_conn *c = cel_server_memory_conn(h.srv, NULL, 0);
    CHECK_EQ_INT(cel_server_feed(h.srv, c, HANDSHAKE, sizeof HANDSHAKE - 1, 0), 0);
    CHECK_EQ_INT(h.requests, 1);
    CHECK_EQ_INT(cel_server_feed(h.srv, c, NULL, 0, 1), CEL_ECLOSED);
    CHECK_EQ_INT(h.closes, 1);
    CHECK_EQ_INT(h.close_code, 0);
    cel_server_free(h.srv);
}

TEST(going_away_answers_pending_handshake_500)
{
    harness h = { 0 };
    new_server(&h, 0);
    cel_conn *c = cel_server_memory_conn(h.srv, NULL, 0);
    CHECK_EQ_INT(cel_server_feed(h.srv, c, HANDSHAKE, sizeof HANDSHAKE - 1, 0), 0);
    CHECK_EQ_INT(cel_server_ws_going_away(h.srv), 1);
    CHECK_EQ_INT(h.closes, 1);
    CHECK_EQ_INT(h.close_code, 0);
    char out[512];
    take(&h, c, out, sizeof out);
    CHECK(strncmp(out, "HTTP/1.1 500 ", 13) == 0);
    cel_server_free(h.srv);
}
