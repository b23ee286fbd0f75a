/* libFuzzer driver for the WebSocket frame parser (src/core/ws.c).
 *
 * The first input byte picks the role (server: masked frames expected, or
 * client) and a message size limit; the rest is a byte stream of frames.
 * A third bit allows RSV1 (permessage-deflate negotiated): each complete
 * compressed message is inflated (limit 1 MiB: success, 1009 or 1002, never
 * a crash), and every message is compressed and inflated back unchanged.
 * It is parsed in one piece and again in two and in three pieces (cut
 * points derived from the input), the way the server feeds it: unconsumed
 * bytes are kept and new ones appended, each call on an exact-size copy so
 * ASan catches over-reads.  Checked: consumed <= len; events' slices lie in
 * the bytes just consumed; first/last flags bracket messages; every complete
 * text message and close reason is valid UTF-8; messages respect the limit;
 * control payloads <= 125 bytes; close codes are valid (or 1005 for an empty
 * payload); an error is sticky; every split gives the same messages and the
 * same final result; and each message written back with the frame writer
 * parses (as a client) to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "ws.h"
#include "ws_deflate.h"

#define REQUIRE(cond) do { if (!(cond)) abort(); } while (0)

typedef struct outcome {
    int rc;
    char *log;          /* rendered events: kind, opcode, code, length, bytes */
    size_t log_len, log_cap;
} outcome;

static void log_add(outcome *o, const void *p, size_t n)
{
    if (o->log_len + n > o->log_cap) {
        o->log_cap = (o->log_len + n) * 2 + 64;
        o->log = realloc(o->log, o->log_cap);
        REQUIRE(o->log);
    }
    memcpy(o->log + o->log_len, p, n);
    o->log_len += n;
}

static void check_roundtrip(int opcode, const char *msg, size_t n)
{
    cel_buf b = {0};
    REQUIRE(cel_ws_write_frame(&b, opcode, msg, n) == 0);
    cel_ws_parser p;
    cel_ws_parser_init(&p, CEL_WS_CLIENT, 0);
    cel_ws_event ev;
    size_t used;
    REQUIRE(cel_ws_parse(&p, cel_buf_head(&b), b.len, &used, &ev) == 1);
    REQUIRE(used == b.len && ev.len == n && ev.first && ev.last && ev.opcode == opcode);
    REQUIRE(n == 0 || memcmp(ev.data, msg, n) == 0);
    cel_buf_free(&b);
}

static void check_deflate(int compressed, const char *msg, size_t n)
{
    cel_ws_deflate_params params = { 0, 0, 12 };
    cel_ws_deflate *d = cel_ws_deflate_new(&params);
    REQUIRE(d);
    cel_buf out = {0};
    if (compressed) {
        int rc = cel_ws_inflate(d, msg, n, 1, &out, 1 << 20);
        REQUIRE(rc == 0 || rc == CEL_EWSTOOBIG || rc == CEL_EWSPROTO);
        REQUIRE(out.len <= (1 << 20) + 1);
    } else {
        cel_buf z = {0};
        REQUIRE(cel_ws_deflate_message(d, msg, n, &z) == 0);
        cel_ws_deflate *back = cel_ws_deflate_new(&params);
        REQUIRE(back);
        REQUIRE(cel_ws_inflate(back, cel_buf_head(&z), z.len, 1, &out, 0) == 0);
        REQUIRE(out.len == n && (n == 0 || memcmp(cel_buf_head(&out), msg, n) == 0));
        cel_ws_deflate_free(back);
        cel_buf_free(&z);
    }
    cel_buf_free(&out);
    cel_ws_deflate_free(d);
}

static outcome parse(int role, uint64_t max, int rsv1, const uint8_t *in, size_t len,
                     const size_t *cuts, size_t ncuts)
{
    outcome o = { CEL_EAGAIN, NULL, 0, 0 };
    cel_ws_parser p;
    cel_ws_parser_init(&p, role, max);
    p.allow_rsv1 = rsv1;
    char *pending = malloc(len + 1);
    char *msg = malloc(len + 1);
    REQUIRE(pending && msg);
    size_t plen = 0, mlen = 0, start = 0;
    int in_msg = 0, msg_op = 0;
    for (size_t piece = 0; piece <= ncuts && (o.rc == CEL_EAGAIN || o.rc == 1); piece++) {
        size_t stop = piece < ncuts ? cuts[piece] : len;
        memcpy(pending + plen, in + start, stop - start);
        plen += stop - start;
        start = stop;
        char *buf = malloc(plen ? plen : 1);
        REQUIRE(buf);
        memcpy(buf, pending, plen);
        size_t off = 0;
        for (;;) {
            cel_ws_event ev;
            size_t used;
            int rc = cel_ws_parse(&p, buf + off, plen - off, &used, &ev);
            REQUIRE(used <= plen - off);
            o.rc = rc;
            if (rc != 1) {
                REQUIRE(rc == CEL_EAGAIN || rc == CEL_EWSPROTO || rc == CEL_EWSUTF8
                        || rc == CEL_EWSTOOBIG);
                if (rc != CEL_EAGAIN) {
                    /* sticky */
                    cel_ws_event ev2;
                    size_t u2;
                    REQUIRE(cel_ws_parse(&p, buf + off, plen - off, &u2, &ev2) == rc && u2 == 0);
                }
                off += used;
                break;
            }
            REQUIRE(ev.data >= buf + off && ev.data + ev.len <= buf + off + used);
            if (ev.kind == CEL_WS_EV_DATA) {
                REQUIRE(ev.opcode == CEL_WS_TEXT || ev.opcode == CEL_WS_BINARY);
                REQUIRE(ev.first == !in_msg);
                if (in_msg)
                    REQUIRE(ev.opcode == msg_op);
                in_msg = 1;
                msg_op = ev.opcode;
                memcpy(msg + mlen, ev.data, ev.len);
                mlen += ev.len;
                REQUIRE(!max || mlen <= max);
                if (ev.last) {
                    if (ev.opcode == CEL_WS_TEXT && !ev.compressed)
                        REQUIRE(cel_ws_utf8_valid(msg, mlen));
                    if (!ev.compressed)
                        check_roundtrip(ev.opcode, msg, mlen);
                    if (rsv1 && ncuts == 0)
                        check_deflate(ev.compressed, msg, mlen);
                    unsigned char tag[9] = { 'M', (unsigned char)ev.opcode };
                    memcpy(tag + 2, &mlen, sizeof(uint32_t));
                    log_add(&o, tag, 6);
                    log_add(&o, msg, mlen);
                    in_msg = 0;
                    mlen = 0;
                }
            } else {
                REQUIRE(ev.kind == CEL_WS_EV_CONTROL && ev.len <= 125);
                REQUIRE(ev.opcode == CEL_WS_CLOSE || ev.opcode == CEL_WS_PING
                        || ev.opcode == CEL_WS_PONG);
                if (ev.opcode == CEL_WS_CLOSE) {
                    if (ev.len == 0)
                        REQUIRE(ev.close_code == CEL_WS_CLOSE_NO_STATUS);
                    else
                        REQUIRE(cel_ws_close_code_valid(ev.close_code)
                                && cel_ws_utf8_valid(ev.reason, ev.reason_len)
                                && ev.reason_len == ev.len - 2);
                }
                unsigned char tag[4] = { 'C', (unsigned char)ev.opcode, (unsigned char)ev.len,
                                         (unsigned char)(ev.close_code & 0xFF) };
                log_add(&o, tag, 4);
                log_add(&o, ev.data, ev.len);
            }
            off += used;
        }
        memmove(pending, buf + off, plen - off);
        plen -= off;
        free(buf);
    }
    free(pending);
    free(msg);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int role = data[0] & 1 ? CEL_WS_CLIENT : CEL_WS_SERVER;
    static const uint64_t limits[4] = { 0, 1, 16, 300 };
    uint64_t max = limits[(data[0] >> 1) & 3];
    int rsv1 = (data[0] >> 3) & 1;
    data++;
    size--;

    outcome whole = parse(role, max, rsv1, data, size, NULL, 0);
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size && i < 64; i++)
        h = (h ^ data[i]) * 16777619u;

    size_t cut = size ? h % (size + 1) : 0;
    outcome two = parse(role, max, rsv1, data, size, &cut, 1);
    size_t cuts[2] = { size ? (h >> 8) % (size + 1) : 0, size ? (h >> 16) % (size + 1) : 0 };
    if (cuts[0] > cuts[1]) {
        size_t t = cuts[0];
        cuts[0] = cuts[1];
        cuts[1] = t;
    }
    outcome three = parse(role, max, rsv1, data, size, cuts, 2);
    const outcome *all[2] = { &two, &three };
    for (int k = 0; k < 2; k++) {
        REQUIRE(all[k]->rc == whole.rc);
        REQUIRE(all[k]->log_len == whole.log_len);
        REQUIRE(whole.log_len == 0 || memcmp(all[k]->log, whole.log, whole.log_len) == 0);
    }
    free(whole.log);
    free(two.log);
    free(three.log);
    return 0;
}
