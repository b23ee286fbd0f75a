/* WebSocket core (src/core/ws.c): SHA-1/base64/accept, key and handshake
 * validation, the frame parser on RFC 6455's example frames, every frame
 * split at every byte, control frames between fragments, every invalid case
 * with its close code, UTF-8 across fragments, size limits, the writer. */
#include "test.h"

#include <stdint.h>

#include "errors.h"
#include "ws.h"

/* ---- helpers ---- */

static void hex(const unsigned char *d, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", d[i]);
}

static const unsigned char MASK[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* A client frame (masked with MASK) or a server frame (mask NULL) into out;
 * returns its length. */
static size_t frame(unsigned char *out, int fin, int op, const void *payload, size_t n,
                    const unsigned char *mask)
{
    size_t h = cel_ws_frame_header(out, fin, op, n, mask);
    if (n)
        memcpy(out + h, payload, n);
    if (mask)
        cel_ws_unmask((char *)out + h, n, mask, 0);
    return h + n;
}

/* The transcript of parsing `in` cut into pieces at cuts[0..ncuts): each
 * piece is appended to a buffer holding the unconsumed bytes (the way the
 * server's input buffer works), events are rendered as text.  Returns the
 * final parser result (0 when the input ended cleanly at a frame boundary,
 * CEL_EAGAIN when it ended inside a frame, or the error). */
typedef struct transcript {
    char text[200000];
    size_t len;
} transcript;

static void tr_add(transcript *t, const char *fmt, const char *data, size_t n, int a, int b)
{
    t->len += (size_t)snprintf(t->text + t->len, sizeof t->text - t->len, fmt, a, b);
    for (size_t i = 0; i < n && t->len + 3 < sizeof t->text; i++)
        t->len += (size_t)snprintf(t->text + t->len, sizeof t->text - t->len, "%02x",
                                   (unsigned char)data[i]);
    t->len += (size_t)snprintf(t->text + t->len, sizeof t->text - t->len, "|");
}

static int run(int role, uint64_t max, const unsigned char *in, size_t len, const size_t *cuts,
               size_t ncuts, transcript *t)
{
    cel_ws_parser p;
    cel_ws_parser_init(&p, role, max);
    t->len = 0;
    t->text[0] = 0;
    /* message reassembly, to render one entry per complete message */
    static char msg[1 << 17];
    size_t mlen = 0;
    char pending[1 << 17];
    size_t plen = 0;
    size_t start = 0;
    int rc = 0;
    for (size_t piece = 0; piece <= ncuts; piece++) {
        size_t stop = piece < ncuts ? cuts[piece] : len;
        memcpy(pending + plen, in + start, stop - start);
        plen += stop - start;
        start = stop;
        /* parse from an exact-size guarded copy so over-reads crash */
        guard_buf g = guard_copy(pending, plen);
        size_t off = 0;
        for (;;) {
            cel_ws_event ev;
            size_t used;
            rc = cel_ws_parse(&p, g.p + off, plen - off, &used, &ev);
            CHECK(used <= plen - off);
            if (rc == 1) {
                if (ev.kind == CEL_WS_EV_DATA) {
                    CHECK(ev.data >= g.p + off && ev.data + ev.len <= g.p + off + used);
                    if (ev.first)
                        CHECK(mlen == 0);
                    memcpy(msg + mlen, ev.data, ev.len);
                    mlen += ev.len;
                    if (ev.last) {
                        tr_add(t, "M%d:%d:", msg, mlen, ev.opcode, 0);
                        mlen = 0;
                    }
                } else {
                    tr_add(t, "C%d:%d:", ev.data, ev.len, ev.opcode, ev.close_code);
                }
                off += used;
                continue;
            }
            off += used;
            break;
        }
        memmove(pending, g.p + off, plen - off);
        plen -= off;
        guard_free(&g);
        if (rc < 0 && rc != CEL_EAGAIN)
            return rc;
    }
    if (rc == CEL_EAGAIN && plen == 0 && !p.in_frame && mlen == 0 && !p.msg_opcode)
        return 0;
    return rc == CEL_EAGAIN ? CEL_EAGAIN : rc;
}

/* Parse whole, then split at every byte and at every pair of bytes (for
 * inputs up to 64 bytes): the transcript and result never change. */
static void check_splits(int role, uint64_t max, const unsigned char *in, size_t len,
                         int expect_rc, const char *expect_text)
{
    static transcript whole, part;
    int rc = run(role, max, in, len, NULL, 0, &whole);
    CHECK_EQ_INT(rc, expect_rc);
    if (expect_text && strcmp(whole.text, expect_text) != 0) {
        fprintf(stderr, "  transcript: %s\n  expected:   %s\n", whole.text, expect_text);
        CHECK(0);
    }
    for (size_t i = 0; i <= len; i++) {
        int r = run(role, max, in, len, &i, 1, &part);
        CHECK_EQ_INT(r, rc);
        if (rc >= 0 || rc == CEL_EAGAIN)
            CHECK(strcmp(part.text, whole.text) == 0);
    }
    if (len <= 64) {
        for (size_t i = 0; i <= len; i++)
            for (size_t j = i; j <= len; j++) {
                size_t cuts[2] = { i, j };
                int r = run(role, max, in, len, cuts, 2, &part);
                CHECK_EQ_INT(r, rc);
                if (rc == 0)
                    CHECK(strcmp(part.text, whole.text) == 0);
            }
    }
    /* every byte on its own */
    if (len <= 70000) {
        static size_t cuts[70000];
        for (size_t i = 0; i < len; i++)
            cuts[i] = i + 1;
        int r = run(role, max, in, len, cuts, len ? len - 1 : 0, &part);
        CHECK_EQ_INT(r, rc);
        if (rc == 0)
            CHECK(strcmp(part.text, whole.text) == 0);
    }
}

static int parse_one(int role, const void *bytes, size_t n, cel_ws_event *ev, size_t *used)
{
    cel_ws_parser p;
    cel_ws_parser_init(&p, role, 0);
    guard_buf g = guard_copy(bytes, n);
    int rc = cel_ws_parse(&p, g.p, n, used, ev);
    static char copy[256];
    if (rc == 1 && ev->len <= sizeof copy) {
        memcpy(copy, ev->data, ev->len);
        ev->data = copy;
        if (ev->reason)
            ev->reason = copy + 2;
    }
    guard_free(&g);
    return rc;
}

/* ---- SHA-1, base64, accept ---- */

TEST(sha1_vectors)
{
    unsigned char d[20];
    char h[41];
    cel_sha1("abc", 3, d);
    hex(d, 20, h);
    CHECK(strcmp(h, "a9993e364706816aba3e25717850c26c9cd0d89d") == 0);
    cel_sha1("", 0, d);
    hex(d, 20, h);
    CHECK(strcmp(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709") == 0);
    const char *s56 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    cel_sha1(s56, strlen(s56), d);
    hex(d, 20, h);
    CHECK(strcmp(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1") == 0);
    static char million[1000000];
    memset(million, 'a', sizeof million);
    cel_sha1(million, sizeof million, d);
    hex(d, 20, h);
    CHECK(strcmp(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f") == 0);
    /* lengths around the padding boundary (55, 56, 63, 64 bytes) */
    const char *s64 = "0123456789012345678901234567890123456789012345678901234567890123";
    cel_sha1(s64, 55, d);
    hex(d, 20, h);
    CHECK(strcmp(h, "9f3a4ce7f66b1b74c34da2c5d732c39f81e0f8df") == 0);
    cel_sha1(s64, 64, d);
    hex(d, 20, h);
    CHECK(strcmp(h, "cf0800f7644ace3cb4c3fa33388d3ba0ea3c8b6e") == 0);
}

TEST(base64_vectors)
{
    const char *in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
    const char *out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy" };
    for (int i = 0; i < 7; i++) {
        char b[16];
        size_t n = cel_base64_encode((const unsigned char *)in[i], strlen(in[i]), b);
        CHECK_EQ_INT(n, strlen(out[i]));
        CHECK(strcmp(b, out[i]) == 0);
    }
}

TEST(accept_key_rfc_example)
{
    char acc[CEL_WS_ACCEPT_LEN + 1];
    cel_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", 24, acc);
    CHECK(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
}

TEST(key_validation)
{
    CHECK(cel_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 24));
    CHECK(cel_ws_key_valid("AAAAAAAAAAAAAAAAAAAAAA==", 24));
    CHECK(!cel_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ=", 23));
    CHECK(!cel_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ===", 25));
    CHECK(!cel_ws_key_valid("dGhlIHNhbXBsZSBub25jZQ==", 0));
    CHECK(!cel_ws_key_valid("dGhlIHNhbXBsZSBub25jZ!==", 24));
    CHECK(!cel_ws_key_valid("dGhlIHNhbXBsZSBub25jZQAA", 24));   /* 18 bytes */
    CHECK(!cel_ws_key_valid("dGhlIHNhbXBsZSBub25j====", 24));
}

/* ---- handshake ---- */

static int check_request(const char *raw, cel_ws_handshake *hs, int *is_upgrade)
{
    cel_header hdrs[32];
    cel_http_request req;
    req.headers = hdrs;
    req.num_headers = 32;
    long n = cel_http_parse_request(raw, strlen(raw), NULL, &req);
    if (n <= 0)
        return -1000;
    *is_upgrade = cel_ws_is_upgrade(&req);
    if (!*is_upgrade)
        return 1;
    return cel_ws_handshake_check(&req, hs);
}

TEST(handshake_valid)
{
    cel_ws_handshake hs;
    int up;
    int rc = check_request("GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                           "Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n", &hs, &up);
    CHECK(up);
    CHECK_EQ_INT(rc, 0);
    CHECK(strcmp(hs.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0);
    CHECK(!hs.deflate_offered);
    /* case-insensitive tokens, lists, deflate offer */
    rc = check_request("GET / HTTP/1.1\r\nHost: x\r\nupgrade: WebSocket\r\n"
                       "connection: keep-alive, Upgrade\r\nsec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"
                       "sec-websocket-extensions: permessage-deflate; client_max_window_bits\r\n"
                       "sec-websocket-version: 13\r\n\r\n", &hs, &up);
    CHECK(up);
    CHECK_EQ_INT(rc, 0);
    CHECK(hs.deflate_offered);
}

TEST(handshake_not_websocket)
{
    cel_ws_handshake hs;
    int up;
    /* Upgrade without Connection: upgrade; h2c */
    check_request("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n", &hs, &up);
    CHECK(!up);
    check_request("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                  "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", &hs, &up);
    CHECK(!up);
}

TEST(handshake_invalid)
{
    cel_ws_handshake hs;
    int up;
    const char *base = "Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    char req[1024];
    struct { const char *line, *extra; int rc; } cases[] = {
        { "GET / HTTP/1.1", "Sec-WebSocket-Version: 13\r\n", CEL_EWSHANDSHAKE },       /* no key */
        { "GET / HTTP/1.1", "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n", CEL_EWSHANDSHAKE },
        { "GET / HTTP/1.1", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
          CEL_EWSHANDSHAKE },
        { "POST / HTTP/1.1", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
          CEL_EWSHANDSHAKE },
        { "GET / HTTP/1.0", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
          CEL_EWSHANDSHAKE },
        { "GET / HTTP/1.1", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                            "Content-Length: 3\r\n", CEL_EWSHANDSHAKE },
        { "GET / HTTP/1.1", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", CEL_EWSVERSION },
        { "GET / HTTP/1.1", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n",
          CEL_EWSVERSION },
        { "GET / HTTP/1.1", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                            "Sec-WebSocket-Version: 13\r\n", CEL_EWSVERSION },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(req, sizeof req, "%s\r\n%s%s\r\n", cases[i].line, base, cases[i].extra);
        int rc = check_request(req, &hs, &up);
        CHECK(up);
        CHECK_EQ_INT(rc, cases[i].rc);
    }
    CHECK_EQ_INT(cel_err_http_status(CEL_EWSHANDSHAKE), 400);
    CHECK_EQ_INT(cel_err_http_status(CEL_EWSVERSION), 426);
}

/* ---- RFC 6455 5.7 examples ---- */

TEST(rfc_examples)
{
    cel_ws_event ev;
    size_t used;
    static const unsigned char hello[] = { 0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
    CHECK_EQ_INT(parse_one(CEL_WS_CLIENT, hello, sizeof hello, &ev, &used), 1);
    CHECK_EQ_INT(used, 7);
    CHECK(ev.kind == CEL_WS_EV_DATA && ev.opcode == CEL_WS_TEXT && ev.first && ev.last);
    CHECK(ev.len == 5 && memcmp(ev.data, "Hello", 5) == 0);
    /* the same unmasked frame sent to a server: clients must mask */
    CHECK_EQ_INT(parse_one(CEL_WS_SERVER, hello, sizeof hello, &ev, &used), CEL_EWSPROTO);

    static const unsigned char masked[] = { 0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f,
                                            0x4d, 0x51, 0x58 };
    CHECK_EQ_INT(parse_one(CEL_WS_SERVER, masked, sizeof masked, &ev, &used), 1);
    CHECK_EQ_INT(used, 11);
    CHECK(ev.len == 5 && memcmp(ev.data, "Hello", 5) == 0 && ev.last);
    CHECK_EQ_INT(parse_one(CEL_WS_CLIENT, masked, sizeof masked, &ev, &used), CEL_EWSPROTO);

    static const unsigned char frag[] = { 0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f };
    check_splits(CEL_WS_CLIENT, 0, frag, sizeof frag, 0, "M1:0:48656c6c6f|");

    static const unsigned char ping[] = { 0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f };
    check_splits(CEL_WS_CLIENT, 0, ping, sizeof ping, 0, "C9:0:48656c6c6f|");
    static const unsigned char pong[] = { 0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f,
                                          0x4d, 0x51, 0x58 };
    check_splits(CEL_WS_SERVER, 0, pong, sizeof pong, 0, "C10:0:48656c6c6f|");

    /* 256 bytes and 64 KiB binary, 16- and 64-bit lengths */
    static unsigned char b256[4 + 256];
    b256[0] = 0x82;
    b256[1] = 0x7E;
    b256[2] = 0x01;
    b256[3] = 0x00;
    for (int i = 0; i < 256; i++)
        b256[4 + i] = (unsigned char)i;
    CHECK_EQ_INT(parse_one(CEL_WS_CLIENT, b256, sizeof b256, &ev, &used), 1);
    CHECK(ev.opcode == CEL_WS_BINARY && ev.len == 256 && used == 260);
    check_splits(CEL_WS_CLIENT, 0, b256, sizeof b256, 0, NULL);

    static unsigned char b64k[10 + 65536];
    b64k[0] = 0x82;
    b64k[1] = 0x7F;
    memcpy(b64k + 2, "\x00\x00\x00\x00\x00\x01\x00\x00", 8);
    for (int i = 0; i < 65536; i++)
        b64k[10 + i] = (unsigned char)(i * 7);
    transcript *t = malloc(sizeof *t);
    CHECK_EQ_INT(run(CEL_WS_CLIENT, 0, b64k, sizeof b64k, NULL, 0, t), 0);
    CHECK(t->len == strlen("M2:0:") + 2 * 65536 + 1);
    size_t cut = 5;
    static transcript part;
    CHECK_EQ_INT(run(CEL_WS_CLIENT, 0, b64k, sizeof b64k, &cut, 1, &part), 0);
    CHECK(strcmp(part.text, t->text) == 0);
    free(t);
}

/* ---- splitting every frame at every byte ---- */

TEST(split_every_frame_every_byte)
{
    unsigned char in[4096];
    size_t n = 0;
    /* a masked conversation: text, empty binary, fragmented text with a ping
     * and a pong between the fragments, a 300-byte binary (16-bit length),
     * an empty text, a close with code and reason */
    n += frame(in + n, 1, CEL_WS_TEXT, "h\xc3\xa9llo", 6, MASK);
    n += frame(in + n, 1, CEL_WS_BINARY, "", 0, MASK);
    n += frame(in + n, 0, CEL_WS_TEXT, "ab\xe2", 3, MASK);     /* splits a 3-byte char */
    n += frame(in + n, 1, CEL_WS_PING, "p", 1, MASK);
    n += frame(in + n, 0, CEL_WS_CONT, "\x82\xac", 2, MASK);
    n += frame(in + n, 1, CEL_WS_PONG, "", 0, MASK);
    n += frame(in + n, 0, CEL_WS_CONT, "", 0, MASK);
    n += frame(in + n, 1, CEL_WS_CONT, "z", 1, MASK);
    unsigned char big[300];
    for (int i = 0; i < 300; i++)
        big[i] = (unsigned char)(i ^ 0x5a);
    n += frame(in + n, 1, CEL_WS_BINARY, big, sizeof big, MASK);
    n += frame(in + n, 1, CEL_WS_TEXT, "", 0, MASK);
    n += frame(in + n, 1, CEL_WS_CLOSE, "\x03\xe8" "bye", 5, MASK);
    check_splits(CEL_WS_SERVER, 0, in, n, 0, NULL);
    static transcript t;
    CHECK_EQ_INT(run(CEL_WS_SERVER, 0, in, n, NULL, 0, &t), 0);
    CHECK(strncmp(t.text, "M1:0:68c3a96c6c6f|M2:0:|C9:0:70|C10:0:|M1:0:6162e282ac7a|M2:0:", 61) == 0);
    CHECK(strstr(t.text, "|M1:0:|C8:1000:03e8627965|") != NULL);

    /* each frame alone, unmasked for the client role too */
    unsigned char one[512];
    size_t k = frame(one, 1, CEL_WS_TEXT, "x", 1, NULL);
    check_splits(CEL_WS_CLIENT, 0, one, k, 0, "M1:0:78|");
    k = frame(one, 1, CEL_WS_CLOSE, "", 0, NULL);
    check_splits(CEL_WS_CLIENT, 0, one, k, 0, "C8:1005:|");
    k = frame(one, 1, CEL_WS_BINARY, big, 200, NULL);
    check_splits(CEL_WS_CLIENT, 0, one, k, 0, NULL);
}

TEST(truncated_input_needs_more)
{
    unsigned char in[64];
    size_t n = frame(in, 1, CEL_WS_TEXT, "hello", 5, MASK);
    static transcript t;
    for (size_t i = 1; i < n; i++)
        CHECK_EQ_INT(run(CEL_WS_SERVER, 0, in, i, NULL, 0, &t), CEL_EAGAIN);
    /* a data frame's header is consumed at once; its payload as it comes */
    cel_ws_parser p;
    cel_ws_parser_init(&p, CEL_WS_SERVER, 0);
    cel_ws_event ev;
    size_t used;
    char buf[64];
    memcpy(buf, in, n);
    CHECK_EQ_INT(cel_ws_parse(&p, buf, 6, &used, &ev), CEL_EAGAIN);
    CHECK_EQ_INT(used, 6);
    CHECK_EQ_INT(cel_ws_parse(&p, buf + 6, 2, &used, &ev), 1);
    CHECK(used == 2 && ev.len == 2 && memcmp(ev.data, "he", 2) == 0 && ev.first && !ev.last);
    CHECK_EQ_INT(cel_ws_parse(&p, buf + 8, 0, &used, &ev), CEL_EAGAIN);
    CHECK_EQ_INT(cel_ws_parse(&p, buf + 8, 3, &used, &ev), 1);
    CHECK(used == 3 && memcmp(ev.data, "llo", 3) == 0 && !ev.first && ev.last);
    /* a control frame waits until complete, consuming nothing */
    n = frame(in, 1, CEL_WS_PING, "abc", 3, MASK);
    memcpy(buf, in, n);
    CHECK_EQ_INT(cel_ws_parse(&p, buf, n - 1, &used, &ev), CEL_EAGAIN);
    CHECK_EQ_INT(used, 0);
}

/* ---- invalid frames and their close codes ---- */

static void expect_error(int role, uint64_t max, const unsigned char *in, size_t n, int err)
{
    check_splits(role, max, in, n, err, NULL);
}

TEST(invalid_frames)
{
    unsigned char in[256];
    size_t n;
    /* reserved bits */
    for (int rsv = 1; rsv < 8; rsv++) {
        n = frame(in, 1, CEL_WS_TEXT, "a", 1, MASK);
        in[0] |= (unsigned char)(rsv << 4);
        expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSPROTO);
    }
    /* unknown opcodes */
    int bad_ops[] = { 3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF };
    for (size_t i = 0; i < sizeof bad_ops / sizeof bad_ops[0]; i++) {
        n = frame(in, 1, bad_ops[i], "a", 1, MASK);
        expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSPROTO);
    }
    /* fragmented control frames */
    n = frame(in, 0, CEL_WS_PING, "a", 1, MASK);
    expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSPROTO);
    n = frame(in, 0, CEL_WS_CLOSE, "", 0, MASK);
    expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSPROTO);
    /* control payload over 125 bytes */
    unsigned char big[200];
    memset(big, 'x', sizeof big);
    n = frame(in, 1, CEL_WS_PING, big, 126, MASK);
    expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSPROTO);
    /* unmasked to a server, masked to a client */
    n = frame(in, 1, CEL_WS_TEXT, "a", 1, NULL);
    expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSPROTO);
    n = frame(in, 1, CEL_WS_TEXT, "a", 1, MASK);
    expect_error(CEL_WS_CLIENT, 0, in, n, CEL_EWSPROTO);
    /* 64-bit length with the most significant bit set */
    static const unsigned char huge[] = { 0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4 };
    expect_error(CEL_WS_SERVER, 0, huge, sizeof huge, CEL_EWSPROTO);
    /* continuation with no message; a new message inside a fragmented one */
    n = frame(in, 1, CEL_WS_CONT, "a", 1, MASK);
    expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSPROTO);
    n = frame(in, 0, CEL_WS_TEXT, "a", 1, MASK);
    n += frame(in + n, 1, CEL_WS_BINARY, "b", 1, MASK);
    expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSPROTO);
    n = frame(in, 0, CEL_WS_BINARY, "a", 1, MASK);
    n += frame(in + n, 1, CEL_WS_TEXT, "b", 1, MASK);
    expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSPROTO);
    /* close payload of one byte */
    n = frame(in, 1, CEL_WS_CLOSE, "\x03", 1, MASK);
    expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSPROTO);
    /* invalid close codes */
    int bad_codes[] = { 0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535 };
    for (size_t i = 0; i < sizeof bad_codes / sizeof bad_codes[0]; i++) {
        unsigned char pl[2] = { (unsigned char)(bad_codes[i] >> 8), (unsigned char)bad_codes[i] };
        n = frame(in, 1, CEL_WS_CLOSE, pl, 2, MASK);
        expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSPROTO);
        CHECK(!cel_ws_close_code_valid(bad_codes[i]));
    }
    int good_codes[] = { 1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
                         3000, 3999, 4000, 4999 };
    for (size_t i = 0; i < sizeof good_codes / sizeof good_codes[0]; i++) {
        unsigned char pl[2] = { (unsigned char)(good_codes[i] >> 8), (unsigned char)good_codes[i] };
        n = frame(in, 1, CEL_WS_CLOSE, pl, 2, MASK);
        cel_ws_event ev;
        size_t used;
        CHECK_EQ_INT(parse_one(CEL_WS_SERVER, in, n, &ev, &used), 1);
        CHECK_EQ_INT(ev.close_code, good_codes[i]);
    }
    /* close reason that is not UTF-8 */
    n = frame(in, 1, CEL_WS_CLOSE, "\x03\xe8\xff", 3, MASK);
    expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSUTF8);
    /* errors are sticky */
    cel_ws_parser p;
    cel_ws_parser_init(&p, CEL_WS_SERVER, 0);
    n = frame(in, 1, CEL_WS_CONT, "a", 1, MASK);
    char buf[64];
    memcpy(buf, in, n);
    cel_ws_event ev;
    size_t used;
    CHECK_EQ_INT(cel_ws_parse(&p, buf, n, &used, &ev), CEL_EWSPROTO);
    n = frame(in, 1, CEL_WS_TEXT, "a", 1, MASK);
    memcpy(buf, in, n);
    CHECK_EQ_INT(cel_ws_parse(&p, buf, n, &used, &ev), CEL_EWSPROTO);
    CHECK_EQ_INT(cel_ws_error_close_code(CEL_EWSPROTO), 1002);
    CHECK_EQ_INT(cel_ws_error_close_code(CEL_EWSUTF8), 1007);
    CHECK_EQ_INT(cel_ws_error_close_code(CEL_EWSTOOBIG), 1009);
    CHECK_EQ_INT(cel_ws_error_close_code(CEL_ENOMEM), 1011);
}

TEST(utf8_text_across_fragments)
{
    unsigned char in[256];
    size_t n;
    /* U+20AC split over three fragments: valid */
    n = frame(in, 0, CEL_WS_TEXT, "\xe2", 1, MASK);
    n += frame(in + n, 0, CEL_WS_CONT, "\x82", 1, MASK);
    n += frame(in + n, 1, CEL_WS_CONT, "\xac", 1, MASK);
    check_splits(CEL_WS_SERVER, 0, in, n, 0, "M1:0:e282ac|");
    /* invalid continuation in the second fragment */
    n = frame(in, 0, CEL_WS_TEXT, "\xce", 1, MASK);
    n += frame(in + n, 1, CEL_WS_CONT, "A", 1, MASK);
    expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSUTF8);
    /* the message ends inside a character */
    n = frame(in, 0, CEL_WS_TEXT, "ok", 2, MASK);
    n += frame(in + n, 1, CEL_WS_CONT, "\xf0\x9f\x98", 3, MASK);
    expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSUTF8);
    n = frame(in, 1, CEL_WS_TEXT, "\xce", 1, MASK);
    expect_error(CEL_WS_SERVER, 0, in, n, CEL_EWSUTF8);
    /* binary is not checked */
    n = frame(in, 1, CEL_WS_BINARY, "\xff\xfe", 2, MASK);
    check_splits(CEL_WS_SERVER, 0, in, n, 0, "M2:0:fffe|");
    /* the invalid byte is found in a partial slice, before the frame ends */
    n = frame(in, 1, CEL_WS_TEXT, "abc\xffxyz", 7, MASK);
    cel_ws_parser p;
    cel_ws_parser_init(&p, CEL_WS_SERVER, 0);
    cel_ws_event ev;
    size_t used;
    CHECK_EQ_INT(cel_ws_parse(&p, (char *)in, 6 + 4, &used, &ev), CEL_EWSUTF8);
}

TEST(utf8_validator)
{
    struct { const char *s; int ok; } cases[] = {
        { "", 1 }, { "plain ascii text, longer than eight bytes", 1 },
        { "\xc2\x80", 1 }, { "\xdf\xbf", 1 }, { "\xe0\xa0\x80", 1 }, { "\xef\xbf\xbf", 1 },
        { "\xf0\x90\x80\x80", 1 }, { "\xf4\x8f\xbf\xbf", 1 }, { "\xf0\x9f\x98\x80", 1 },
        { "\xed\x9f\xbf", 1 }, { "\xee\x80\x80", 1 },
        { "\x80", 0 }, { "\xbf", 0 }, { "\xc0\x80", 0 }, { "\xc1\xbf", 0 },     /* overlong */
        { "\xe0\x80\x80", 0 }, { "\xe0\x9f\xbf", 0 }, { "\xf0\x80\x80\x80", 0 },
        { "\xf0\x8f\xbf\xbf", 0 },
        { "\xed\xa0\x80", 0 }, { "\xed\xbf\xbf", 0 },                           /* surrogates */
        { "\xf4\x90\x80\x80", 0 }, { "\xf5\x80\x80\x80", 0 }, { "\xff", 0 },     /* > U+10FFFF */
        { "\xc2", 0 }, { "\xe2\x82", 0 }, { "\xf0\x9f\x98", 0 },                 /* truncated */
        { "\xc2\x41", 0 }, { "abcdefgh\xc3(", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len = strlen(cases[i].s);
        guard_buf g = guard_copy(cases[i].s, len);
        if (cel_ws_utf8_valid(g.p, len) != cases[i].ok) {
            fprintf(stderr, "  utf8 case %zu\n", i);
            CHECK(0);
        }
        /* byte by byte gives the same verdict */
        uint32_t st = 0;
        int bad = 0;
        for (size_t k = 0; k < len && !bad; k++)
            bad = cel_ws_utf8_step(&st, g.p + k, 1) < 0;
        CHECK_EQ_INT(!bad && st == 0, cases[i].ok);
        guard_free(&g);
    }
}

TEST(message_size_limit)
{
    unsigned char in[512];
    size_t n;
    n = frame(in, 1, CEL_WS_TEXT, "0123456789", 10, MASK);
    check_splits(CEL_WS_SERVER, 10, in, n, 0, "M1:0:30313233343536373839|");
    n = frame(in, 1, CEL_WS_TEXT, "0123456789a", 11, MASK);
    expect_error(CEL_WS_SERVER, 10, in, n, CEL_EWSTOOBIG);
    /* reported from the header: the payload never has to arrive */
    static transcript t;
    CHECK_EQ_INT(run(CEL_WS_SERVER, 10, in, 2, NULL, 0, &t), CEL_EWSTOOBIG);
    /* across fragments */
    n = frame(in, 0, CEL_WS_BINARY, "012345", 6, MASK);
    n += frame(in + n, 1, CEL_WS_PING, "", 0, MASK);
    n += frame(in + n, 1, CEL_WS_CONT, "6789", 4, MASK);
    check_splits(CEL_WS_SERVER, 10, in, n, 0, NULL);
    n = frame(in, 0, CEL_WS_BINARY, "012345", 6, MASK);
    n += frame(in + n, 1, CEL_WS_CONT, "6789a", 5, MASK);
    expect_error(CEL_WS_SERVER, 10, in, n, CEL_EWSTOOBIG);
    /* control frames do not count; a new message starts from zero */
    n = frame(in, 1, CEL_WS_BINARY, "0123456789", 10, MASK);
    n += frame(in + n, 1, CEL_WS_PING, "0123456789ab", 12, MASK);
    n += frame(in + n, 1, CEL_WS_BINARY, "0123456789", 10, MASK);
    check_splits(CEL_WS_SERVER, 10, in, n, 0, NULL);
}

/* ---- writer ---- */

TEST(writer_roundtrip)
{
    size_t sizes[] = { 0, 1, 125, 126, 127, 65535, 65536, 70000 };
    static char payload[70000];
    for (size_t i = 0; i < sizeof payload; i++)
        payload[i] = (char)(i * 31);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        cel_buf b = {0};
        CHECK_EQ_INT(cel_ws_write_frame(&b, CEL_WS_BINARY, payload, sizes[s]), 0);
        size_t hlen = sizes[s] < 126 ? 2 : sizes[s] <= 65535 ? 4 : 10;
        CHECK_EQ_INT(b.len, hlen + sizes[s]);
        cel_ws_parser p;
        cel_ws_parser_init(&p, CEL_WS_CLIENT, 0);
        cel_ws_event ev;
        size_t used;
        CHECK_EQ_INT(cel_ws_parse(&p, cel_buf_head(&b), b.len, &used, &ev), 1);
        CHECK_EQ_INT(used, b.len);
        CHECK(ev.len == sizes[s] && ev.last && ev.first && memcmp(ev.data, payload, ev.len) == 0);
        cel_buf_free(&b);
    }
    /* close frames: code + reason; empty; a long reason cut at a character boundary */
    cel_buf b = {0};
    CHECK_EQ_INT(cel_ws_write_close(&b, 1000, "bye", 3), 0);
    CHECK(b.len == 7 && memcmp(cel_buf_head(&b), "\x88\x05\x03\xe8" "bye", 7) == 0);
    cel_buf_consume(&b, b.len);
    CHECK_EQ_INT(cel_ws_write_close(&b, 0, NULL, 0), 0);
    CHECK(b.len == 2 && memcmp(cel_buf_head(&b), "\x88\x00", 2) == 0);
    cel_buf_consume(&b, b.len);
    char reason[200];
    for (int i = 0; i < 200; i += 2) {
        reason[i] = (char)0xc3;
        reason[i + 1] = (char)0xa9;
    }
    CHECK_EQ_INT(cel_ws_write_close(&b, 1001, reason, 200), 0);
    CHECK_EQ_INT(b.len, 2 + 2 + 122);
    cel_ws_parser p;
    cel_ws_parser_init(&p, CEL_WS_CLIENT, 0);
    cel_ws_event ev;
    size_t used;
    CHECK_EQ_INT(cel_ws_parse(&p, cel_buf_head(&b), b.len, &used, &ev), 1);
    CHECK(ev.close_code == 1001 && ev.reason_len == 122);
    cel_buf_free(&b);
    /* masked header */
    unsigned char hdr[14];
    CHECK_EQ_INT(cel_ws_frame_header(hdr, 0, CEL_WS_TEXT, 3, MASK), 6);
    CHECK(hdr[0] == 0x01 && hdr[1] == 0x83 && memcmp(hdr + 2, MASK, 4) == 0);
}

TEST(unmask_phases)
{
    char a[37], b[37];
    for (int i = 0; i < 37; i++)
        a[i] = b[i] = (char)i;
    cel_ws_unmask(a, 37, MASK, 0);
    /* in pieces of odd sizes, continuing the phase */
    size_t off = 0, steps[] = { 3, 1, 9, 17, 7 };
    for (int k = 0; k < 5; k++) {
        cel_ws_unmask(b + off, steps[k], MASK, off);
        off += steps[k];
    }
    CHECK(memcmp(a, b, 37) == 0);
    for (int i = 0; i < 37; i++)
        CHECK_EQ_INT((unsigned char)a[i], (unsigned char)(i ^ MASK[i & 3]));
}
