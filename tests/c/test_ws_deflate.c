/* permessage-deflate (src/core/ws_deflate.c): negotiation of offers,
 * compress/inflate round trips with context takeover and without, empty
 * messages, the inflated-size limit, corrupt input, allocation failures;
 * and RSV1 handling in the frame parser. */
#include "test.h"

#include <zlib.h>

#include "alloc.h"
#include "errors.h"
#include "ws.h"
#include "ws_deflate.h"

static int negotiate(const char *value, cel_ws_deflate_params *p, char *resp)
{
    cel_header h[2] = { { { "Sec-WebSocket-Extensions", 24 }, { value, strlen(value) } },
                        { { "X", 1 }, { "y", 1 } } };
    cel_http_request req;
    memset(&req, 0, sizeof req);
    req.headers = h;
    req.num_headers = 2;
    return cel_ws_deflate_negotiate(&req, p, resp, 128);
}

TEST(negotiation)
{
    cel_ws_deflate_params p;
    char r[128];
    CHECK_EQ_INT(negotiate("permessage-deflate", &p, r), 1);
    CHECK(strcmp(r, "permessage-deflate; server_max_window_bits=12") == 0);
    CHECK(p.server_max_window_bits == 12 && !p.server_no_context_takeover);
    CHECK_EQ_INT(negotiate("permessage-deflate; client_max_window_bits", &p, r), 1);
    CHECK_EQ_INT(negotiate("permessage-deflate; client_max_window_bits=9", &p, r), 1);
    CHECK_EQ_INT(negotiate("Permessage-Deflate ; Server_No_Context_Takeover ;client_no_context_takeover",
                           &p, r), 1);
    CHECK(strcmp(r, "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
                    "server_max_window_bits=12") == 0);
    CHECK(p.server_no_context_takeover && p.client_no_context_takeover);
    CHECK_EQ_INT(negotiate("permessage-deflate; server_max_window_bits=9", &p, r), 1);
    CHECK(p.server_max_window_bits == 9 && strstr(r, "server_max_window_bits=9") != NULL);
    CHECK_EQ_INT(negotiate("permessage-deflate; server_max_window_bits=\"10\"", &p, r), 1);
    CHECK_EQ_INT(p.server_max_window_bits, 10);
    CHECK_EQ_INT(negotiate("permessage-deflate; server_max_window_bits=15", &p, r), 1);
    CHECK_EQ_INT(p.server_max_window_bits, 12);
    /* the first acceptable offer wins */
    CHECK_EQ_INT(negotiate("permessage-deflate; server_max_window_bits=8, permessage-deflate; "
                           "server_no_context_takeover", &p, r), 1);
    CHECK(p.server_no_context_takeover);
    /* unacceptable offers */
    const char *bad[] = {
        "", "x-webkit-deflate-frame", "permessage-deflate; foo", "permessage-deflate; foo=1",
        "permessage-deflate; server_max_window_bits", "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; server_max_window_bits=16", "permessage-deflate; server_max_window_bits=09",
        "permessage-deflate; client_max_window_bits=7", "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits; client_max_window_bits",
        "permessage-deflatex",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (negotiate(bad[i], &p, r) != 0) {
            fprintf(stderr, "  accepted: %s\n", bad[i]);
            CHECK(0);
        }
    }
}

/* Compress like a client would (raw deflate, sync flush, tail removed). */
static size_t client_deflate(z_stream *z, const char *in, size_t n, char *out, size_t cap)
{
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)n;
    z->next_out = (Bytef *)out;
    z->avail_out = (uInt)cap;
    int rc = deflate(z, Z_SYNC_FLUSH);
    size_t len = cap - z->avail_out;
    if (rc == Z_BUF_ERROR && len == 0) {
        out[0] = 0;             /* nothing to flush: an empty message is a lone 0x00 */
        return 1;
    }
    CHECK(rc == Z_OK);
    CHECK(len >= 4 && memcmp(out + len - 4, "\x00\x00\xff\xff", 4) == 0);
    return len - 4;
}

TEST(inflate_client_messages)
{
    cel_ws_deflate_params p = { 0, 0, 12 };
    cel_ws_deflate *d = cel_ws_deflate_new(&p);
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    static char msg[200000], comp[200000];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (char)("abcdefgh"[i % 8] + (i % 1000 == 0));
    size_t sizes[] = { 5, 0, 1000, 200000, 3 };
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = client_deflate(&z, msg, sizes[k], comp, sizeof comp);
        cel_buf out = {0};
        /* fed in pieces of 7 bytes, the last one with last = 1 */
        int rc = 0;
        size_t off = 0;
        do {
            size_t take = n - off < 7 ? n - off : 7;
            rc = cel_ws_inflate(d, comp + off, take, off + take == n, &out, 0);
            off += take;
        } while (rc == 0 && off < n);
        CHECK_EQ_INT(rc, 0);
        CHECK_EQ_INT(out.len, sizes[k]);
        CHECK(sizes[k] == 0 || memcmp(cel_buf_head(&out), msg, sizes[k]) == 0);
        cel_buf_free(&out);
    }
    deflateEnd(&z);
    cel_ws_deflate_free(d);
}

TEST(inflate_limits_and_corruption)
{
    cel_ws_deflate_params p = { 0, 0, 12 };
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK(deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    static char zeros[1000000], comp[100000];
    size_t n = client_deflate(&z, zeros, sizeof zeros, comp, sizeof comp);
    CHECK(n < 2000);
    cel_ws_deflate *d = cel_ws_deflate_new(&p);
    cel_buf out = {0};
    CHECK_EQ_INT(cel_ws_inflate(d, comp, n, 1, &out, 65536), CEL_EWSTOOBIG);
    CHECK_EQ_INT(out.len, 65537);           /* stopped one byte past the limit */
    cel_buf_free(&out);
    cel_ws_deflate_free(d);
    deflateEnd(&z);
    d = cel_ws_deflate_new(&p);
    CHECK_EQ_INT(cel_ws_inflate(d, "\xff\xff\xff\xff", 4, 1, &out, 0), CEL_EWSPROTO);
    cel_buf_free(&out);
    cel_ws_deflate_free(d);
}

static void roundtrip(int no_context)
{
    cel_ws_deflate_params p = { no_context, 0, 12 };
    cel_ws_deflate *d = cel_ws_deflate_new(&p);
    z_stream z;
    memset(&z, 0, sizeof z);
    CHECK(inflateInit2(&z, -12) == Z_OK);
    const char *msgs[] = { "hello hello hello", "", "hello hello hello", "", "", "x" };
    static char big[300000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7 % 251);
    for (int k = 0; k < 7; k++) {
        const char *m = k < 6 ? msgs[k] : big;
        size_t mlen = k < 6 ? strlen(m) : sizeof big;
        cel_buf out = {0};
        CHECK_EQ_INT(cel_ws_deflate_message(d, m, mlen, &out), 0);
        CHECK(out.len > 0);
        /* the receiver: payload + 00 00 ff ff through a 12-bit window */
        CHECK_EQ_INT(cel_buf_append(&out, "\x00\x00\xff\xff", 4), 0);
        static char plain[400000];
        z.next_in = (Bytef *)cel_buf_head(&out);
        z.avail_in = (uInt)out.len;
        z.next_out = (Bytef *)plain;
        z.avail_out = sizeof plain;
        int rc = inflate(&z, Z_SYNC_FLUSH);
        CHECK(rc == Z_OK || rc == Z_BUF_ERROR);
        CHECK_EQ_INT(sizeof plain - z.avail_out, mlen);
        CHECK(memcmp(plain, m, mlen) == 0);
        if (no_context)
            inflateReset(&z);
        cel_buf_free(&out);
    }
    inflateEnd(&z);
    cel_ws_deflate_free(d);
}

TEST(deflate_roundtrip_context_takeover)
{
    roundtrip(0);
}

TEST(deflate_roundtrip_no_context_takeover)
{
    roundtrip(1);
}

TEST(allocation_failures)
{
    cel_ws_deflate_params p = { 0, 0, 12 };
    for (unsigned long k = 1; k < 12; k++) {
        cel_alloc_fail_after(k);
        cel_ws_deflate *d = cel_ws_deflate_new(&p);
        if (d) {
            cel_buf out = {0};
            int rc = cel_ws_deflate_message(d, "some text some text", 19, &out);
            CHECK(rc == 0 || rc == CEL_ENOMEM);
            cel_buf_free(&out);
            rc = cel_ws_inflate(d, "\x2a\x49\xad\x28\x01\x00", 6, 1, &out, 0);
            CHECK(rc == 0 || rc == CEL_ENOMEM || rc == CEL_EWSPROTO);
            cel_buf_free(&out);
        }
        cel_alloc_fail_after(0);
        cel_ws_deflate_free(d);
    }
}

TEST(parser_rsv1)
{
    unsigned char f[16] = { 0xC1, 0x81, 0, 0, 0, 0, 'x' };     /* RSV1 text, masked */
    cel_ws_parser p;
    cel_ws_event ev;
    size_t used;
    cel_ws_parser_init(&p, CEL_WS_SERVER, 0);
    CHECK_EQ_INT(cel_ws_parse(&p, (char *)f, 7, &used, &ev), CEL_EWSPROTO);
    cel_ws_parser_init(&p, CEL_WS_SERVER, 0);
    p.allow_rsv1 = 1;
    /* compressed: the payload is not UTF-8-checked here */
    f[6] = (char)0xff;
    CHECK_EQ_INT(cel_ws_parse(&p, (char *)f, 7, &used, &ev), 1);
    CHECK(ev.compressed && ev.last && ev.len == 1);
    /* RSV1 on a control frame, on a continuation, RSV2/RSV3: errors */
    unsigned char ping[6] = { 0xC9, 0x80, 0, 0, 0, 0 };
    CHECK_EQ_INT(cel_ws_parse(&p, (char *)ping, 6, &used, &ev), CEL_EWSPROTO);
    cel_ws_parser_init(&p, CEL_WS_SERVER, 0);
    p.allow_rsv1 = 1;
    unsigned char frag[14] = { 0x41, 0x80, 0, 0, 0, 0, 0xC0, 0x80, 0, 0, 0, 0 };
    CHECK_EQ_INT(cel_ws_parse(&p, (char *)frag, 12, &used, &ev), 1);
    CHECK(ev.compressed && !ev.last);
    CHECK_EQ_INT(cel_ws_parse(&p, (char *)frag + 6, 6, &used, &ev), CEL_EWSPROTO);
    cel_ws_parser_init(&p, CEL_WS_SERVER, 0);
    p.allow_rsv1 = 1;
    unsigned char rsv2[6] = { 0xA1, 0x80, 0, 0, 0, 0 };
    CHECK_EQ_INT(cel_ws_parse(&p, (char *)rsv2, 6, &used, &ev), CEL_EWSPROTO);
    /* an uncompressed message is still checked */
    cel_ws_parser_init(&p, CEL_WS_SERVER, 0);
    p.allow_rsv1 = 1;
    unsigned char plain[7] = { 0x81, 0x81, 0, 0, 0, 0, 0xff };
    CHECK_EQ_INT(cel_ws_parse(&p, (char *)plain, 7, &used, &ev), CEL_EWSUTF8);
}
