#include "ws.h"

#include <string.h>

#include "errors.h"

void cel_ws_parser_init(cel_ws_parser *p, int role, uint64_t max_message)
{
    memset(p, 0, sizeof *p);
    p->role = role;
    p->max_message = max_message;
}

int cel_ws_error_close_code(int err)
{
    switch (err) {
    case CEL_EWSPROTO: return CEL_WS_CLOSE_PROTOCOL;
    case CEL_EWSUTF8: return CEL_WS_CLOSE_INVALID_DATA;
    case CEL_EWSTOOBIG: return CEL_WS_CLOSE_TOO_BIG;
    default: return CEL_WS_CLOSE_INTERNAL;
    }
}

int cel_ws_close_code_valid(int code)
{
    if (code >= 3000 && code <= 4999)
        return 1;
    switch (code) {
    case 1000: case 1001: case 1002: case 1003: case 1007: case 1008:
    case 1009: case 1010: case 1011: case 1012: case 1013: case 1014:
        return 1;
    default:
        return 0;
    }
}

/* ---- UTF-8 ----
 * state = bytes still needed (bits 0-1) | lowest allowed next byte (8-15) |
 * highest allowed next byte (16-23).  The per-lead-byte ranges exclude
 * overlongs (E0, F0), surrogates (ED) and code points past U+10FFFF (F4). */

#define U8(need, lo, hi) ((uint32_t)(need) | ((uint32_t)(lo) << 8) | ((uint32_t)(hi) << 16))

int cel_ws_utf8_step(uint32_t *state, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    uint32_t st = *state;
    size_t i = 0;
    while (i < n) {
        if (st == 0) {
            /* ASCII runs, 8 bytes at a time */
            while (i + 8 <= n) {
                uint64_t w;
                memcpy(&w, u + i, 8);
                if (w & 0x8080808080808080ull)
                    break;
                i += 8;
            }
            if (i == n)
                break;
            unsigned char b = u[i++];
            if (b < 0x80)
                continue;
            if (b >= 0xC2 && b <= 0xDF)
                st = U8(1, 0x80, 0xBF);
            else if (b == 0xE0)
                st = U8(2, 0xA0, 0xBF);
            else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF)
                st = U8(2, 0x80, 0xBF);
            else if (b == 0xED)
                st = U8(2, 0x80, 0x9F);
            else if (b == 0xF0)
                st = U8(3, 0x90, 0xBF);
            else if (b >= 0xF1 && b <= 0xF3)
                st = U8(3, 0x80, 0xBF);
            else if (b == 0xF4)
                st = U8(3, 0x80, 0x8F);
            else {
                *state = st;
                return -1;
            }
            continue;
        }
        unsigned char b = u[i++];
        unsigned lo = (st >> 8) & 0xFF, hi = (st >> 16) & 0xFF, need = st & 3;
        if (b < lo || b > hi) {
            *state = st;
            return -1;
        }
        st = need == 1 ? 0 : U8(need - 1, 0x80, 0xBF);
    }
    *state = st;
    return 0;
}

int cel_ws_utf8_valid(const char *s, size_t n)
{
    uint32_t st = 0;
    return cel_ws_utf8_step(&st, s, n) == 0 && st == 0;
}

void cel_ws_unmask(char *data, size_t n, const unsigned char mask[4], uint64_t offset)
{
    unsigned char m[8];
    for (int k = 0; k < 8; k++)
        m[k] = mask[(offset + (uint64_t)k) & 3];
    uint64_t w;
    memcpy(&w, m, 8);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t d;
        memcpy(&d, data + i, 8);
        d ^= w;
        memcpy(data + i, &d, 8);
    }
    for (; i < n; i++)
        data[i] = (char)((unsigned char)data[i] ^ m[i & 7]);
}

/* ---- parser ---- */

static int fail(cel_ws_parser *p, int err)
{
    p->err = err;
    return err;
}

static uint64_t be(const unsigned char *b, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | b[i];
    return v;
}

/* A slice of the current data frame's payload (in_frame set). */
static int parse_payload(cel_ws_parser *p, char *buf, size_t len, size_t *consumed,
                         cel_ws_event *ev)
{
    size_t take = p->frame_left < len ? (size_t)p->frame_left : len;
    if (take == 0 && p->frame_left > 0)
        return CEL_EAGAIN;
    if (p->masked)
        cel_ws_unmask(buf, take, p->mask, p->frame_off);
    int check = p->msg_opcode == CEL_WS_TEXT && !p->msg_compressed;
    if (check && cel_ws_utf8_step(&p->utf8, buf, take) < 0)
        return fail(p, CEL_EWSUTF8);
    p->frame_left -= take;
    p->frame_off += take;
    int last = p->fin && p->frame_left == 0;
    if (last && check && p->utf8 != 0)
        return fail(p, CEL_EWSUTF8);
    ev->kind = CEL_WS_EV_DATA;
    ev->opcode = p->msg_opcode;
    ev->data = buf;
    ev->len = take;
    ev->first = !p->msg_started;
    ev->last = (unsigned)last;
    ev->compressed = p->msg_compressed;
    p->msg_started = 1;
    if (p->frame_left == 0) {
        p->in_frame = 0;
        if (p->fin) {
            p->msg_opcode = 0;
            p->msg_started = 0;
        }
    }
    *consumed = take;
    return 1;
}

int cel_ws_parse(cel_ws_parser *p, char *buf, size_t len, size_t *consumed, cel_ws_event *ev)
{
    *consumed = 0;
    memset(ev, 0, sizeof *ev);
    if (p->err)
        return p->err;
    if (p->in_frame)
        return parse_payload(p, buf, len, consumed, ev);

    /* Frame header.  Each check uses only bytes already present, in a fixed
     * order, so the verdict does not depend on how the input was split. */
    const unsigned char *u = (const unsigned char *)buf;
    if (len < 1)
        return CEL_EAGAIN;
    int fin = u[0] >> 7, rsv = (u[0] >> 4) & 7, op = u[0] & 0xF;
    int control = op & 8;
    if ((rsv & 3) || ((rsv & 4) && (!p->allow_rsv1 || control || op == CEL_WS_CONT)))
        return fail(p, CEL_EWSPROTO);
    if (op != CEL_WS_CONT && op != CEL_WS_TEXT && op != CEL_WS_BINARY && op != CEL_WS_CLOSE
        && op != CEL_WS_PING && op != CEL_WS_PONG)
        return fail(p, CEL_EWSPROTO);
    if (control && !fin)
        return fail(p, CEL_EWSPROTO);
    if (op == CEL_WS_CONT && !p->msg_opcode)
        return fail(p, CEL_EWSPROTO);
    if ((op == CEL_WS_TEXT || op == CEL_WS_BINARY) && p->msg_opcode)
        return fail(p, CEL_EWSPROTO);
    if (len < 2)
        return CEL_EAGAIN;
    int masked = u[1] >> 7;
    unsigned len7 = u[1] & 0x7F;
    if (masked != (p->role == CEL_WS_SERVER))
        return fail(p, CEL_EWSPROTO);
    if (control && len7 > 125)
        return fail(p, CEL_EWSPROTO);
    size_t extlen = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    size_t hlen = 2 + extlen + (masked ? 4 : 0);
    if (len < 2 + extlen)
        return CEL_EAGAIN;
    uint64_t plen = extlen ? be(u + 2, (int)extlen) : len7;
    if (extlen == 8 && (plen >> 63))
        return fail(p, CEL_EWSPROTO);
    if (!control && p->max_message) {
        uint64_t so_far = op == CEL_WS_CONT ? p->msg_len : 0;
        if (plen > p->max_message || so_far + plen > p->max_message)
            return fail(p, CEL_EWSTOOBIG);
    }
    if (len < hlen)
        return CEL_EAGAIN;

    if (control) {
        if (len - hlen < plen)
            return CEL_EAGAIN;
        char *pl = buf + hlen;
        if (masked)
            cel_ws_unmask(pl, (size_t)plen, u + 2 + extlen, 0);
        ev->kind = CEL_WS_EV_CONTROL;
        ev->opcode = op;
        ev->data = pl;
        ev->len = (size_t)plen;
        if (op == CEL_WS_CLOSE) {
            if (plen == 1)
                return fail(p, CEL_EWSPROTO);
            if (plen == 0) {
                ev->close_code = CEL_WS_CLOSE_NO_STATUS;
                ev->reason = pl;
            } else {
                ev->close_code = (int)be((const unsigned char *)pl, 2);
                if (!cel_ws_close_code_valid(ev->close_code))
                    return fail(p, CEL_EWSPROTO);
                ev->reason = pl + 2;
                ev->reason_len = (size_t)plen - 2;
                if (!cel_ws_utf8_valid(ev->reason, ev->reason_len))
                    return fail(p, CEL_EWSUTF8);
            }
        }
        *consumed = hlen + (size_t)plen;
        return 1;
    }

    /* data frame: consume the header, then hand out the payload as it comes */
    if (op != CEL_WS_CONT) {
        p->msg_opcode = op;
        p->msg_len = 0;
        p->utf8 = 0;
        p->msg_started = 0;
        p->msg_compressed = (rsv & 4) != 0;
    }
    p->msg_len += plen;
    p->in_frame = 1;
    p->fin = (unsigned)fin;
    p->masked = (unsigned)masked;
    if (masked)
        memcpy(p->mask, u + 2 + extlen, 4);
    p->frame_left = plen;
    p->frame_off = 0;
    int rc = parse_payload(p, buf + hlen, len - hlen, consumed, ev);
    if (rc == CEL_EAGAIN) {
        *consumed = hlen;
        return CEL_EAGAIN;
    }
    if (rc == 1)
        *consumed += hlen;
    return rc;
}

/* ---- writer ---- */

size_t cel_ws_frame_header(unsigned char hdr[14], int fin, int opcode, uint64_t n,
                           const unsigned char *mask)
{
    size_t k = 0;
    hdr[k++] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0xF));
    unsigned char mbit = mask ? 0x80 : 0;
    if (n < 126) {
        hdr[k++] = (unsigned char)(mbit | n);
    } else if (n <= 0xFFFF) {
        hdr[k++] = (unsigned char)(mbit | 126);
        hdr[k++] = (unsigned char)(n >> 8);
        hdr[k++] = (unsigned char)n;
    } else {
        hdr[k++] = (unsigned char)(mbit | 127);
        for (int i = 7; i >= 0; i--)
            hdr[k++] = (unsigned char)(n >> (8 * i));
    }
    if (mask) {
        memcpy(hdr + k, mask, 4);
        k += 4;
    }
    return k;
}

int cel_ws_write_frame(cel_buf *b, int opcode, const char *p, size_t n)
{
    return cel_ws_write_frame_ex(b, opcode, 0, p, n);
}

int cel_ws_write_frame_ex(cel_buf *b, int opcode, int rsv1, const char *p, size_t n)
{
    unsigned char hdr[14];
    size_t h = cel_ws_frame_header(hdr, 1, opcode, n, NULL);
    if (rsv1)
        hdr[0] |= 0x40;
    if (cel_buf_reserve(b, h + n))
        return CEL_ENOMEM;
    memcpy(cel_buf_tail(b), hdr, h);
    if (n)
        memcpy(cel_buf_tail(b) + h, p, n);
    b->len += h + n;
    return 0;
}

int cel_ws_write_close(cel_buf *b, int code, const char *reason, size_t len)
{
    char payload[125];
    size_t n = 0;
    if (code) {
        if (len > 123) {
            len = 123;
            while (len > 0 && ((unsigned char)reason[len] & 0xC0) == 0x80)
                len--;
        }
        payload[0] = (char)(code >> 8);
        payload[1] = (char)code;
        if (len)
            memcpy(payload + 2, reason, len);
        n = 2 + len;
    }
    return cel_ws_write_frame(b, CEL_WS_CLOSE, payload, n);
}

/* ---- handshake ---- */

static int lower(int ch)
{
    return ch >= 'A' && ch <= 'Z' ? ch + 32 : ch;
}

static int ieq(const char *a, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)a[i]) != lit[i])
            return 0;
    return 1;
}

int cel_ws_is_upgrade(const cel_http_request *req)
{
    if (!(req->flags & CEL_REQ_UPGRADE))
        return 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const cel_header *h = &req->headers[i];
        if (ieq(h->name.p, h->name.len, "upgrade") && cel_header_list_has(&h->value, "websocket", 0))
            return 1;
    }
    return 0;
}

static int b64val(int ch)
{
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

int cel_ws_key_valid(const char *key, size_t len)
{
    /* 16 bytes -> 22 significant characters and "==" */
    if (len != 24 || key[22] != '=' || key[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (b64val((unsigned char)key[i]) < 0)
            return 0;
    return 1;
}

int cel_ws_handshake_check(const cel_http_request *req, cel_ws_handshake *hs)
{
    memset(hs, 0, sizeof *hs);
    if (req->method.len != 3 || memcmp(req->method.p, "GET", 3) != 0
        || req->minor_version != 1 || req->body_kind != CEL_BODY_NONE)
        return CEL_EWSHANDSHAKE;
    const cel_slice *key = NULL, *version = NULL;
    int nkeys = 0, nversions = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const cel_header *h = &req->headers[i];
        if (ieq(h->name.p, h->name.len, "sec-websocket-key")) {
            key = &h->value;
            nkeys++;
        } else if (ieq(h->name.p, h->name.len, "sec-websocket-version")) {
            version = &h->value;
            nversions++;
        } else if (ieq(h->name.p, h->name.len, "sec-websocket-extensions")) {
            if (cel_header_list_has(&h->value, "permessage-deflate", 1))
                hs->deflate_offered = 1;
        }
    }
    if (nkeys != 1 || !cel_ws_key_valid(key->p, key->len))
        return CEL_EWSHANDSHAKE;
    if (nversions != 1 || version->len != 2 || memcmp(version->p, "13", 2) != 0)
        return CEL_EWSVERSION;
    cel_ws_accept_key(key->p, key->len, hs->accept);
    return 0;
}

void cel_ws_accept_key(const char *key, size_t len, char out[CEL_WS_ACCEPT_LEN + 1])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    char buf[128];
    if (len > sizeof buf - (sizeof guid - 1))
        len = sizeof buf - (sizeof guid - 1);
    memcpy(buf, key, len);
    memcpy(buf + len, guid, sizeof guid - 1);
    unsigned char digest[20];
    cel_sha1(buf, len + sizeof guid - 1, digest);
    cel_base64_encode(digest, 20, out);
}

/* ---- SHA-1 (FIPS 180-4, 6.1) ---- */

static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *blk)
{
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)blk[4 * t] << 24 | (uint32_t)blk[4 * t + 1] << 16
               | (uint32_t)blk[4 * t + 2] << 8 | blk[4 * t + 3];
    for (int t = 16; t < 80; t++)
        w[t] = rol(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t tmp = rol(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = tmp;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

void cel_sha1(const void *data, size_t n, unsigned char digest[20])
{
    uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };
    const unsigned char *p = data;
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        sha1_block(h, p + i);
    unsigned char last[128];
    size_t rest = n - i;
    memset(last, 0, sizeof last);
    if (rest)
        memcpy(last, p + i, rest);
    last[rest] = 0x80;
    size_t total = rest + 1 + 8 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t)n * 8;
    for (int k = 0; k < 8; k++)
        last[total - 1 - k] = (unsigned char)(bits >> (8 * k));
    sha1_block(h, last);
    if (total == 128)
        sha1_block(h, last + 64);
    for (int k = 0; k < 5; k++) {
        digest[4 * k] = (unsigned char)(h[k] >> 24);
        digest[4 * k + 1] = (unsigned char)(h[k] >> 16);
        digest[4 * k + 2] = (unsigned char)(h[k] >> 8);
        digest[4 * k + 3] = (unsigned char)h[k];
    }
}

size_t cel_base64_encode(const unsigned char *in, size_t n, char *out)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = tbl[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}
