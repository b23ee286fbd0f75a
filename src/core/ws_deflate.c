#include "ws_deflate.h"

#include <string.h>
#include <zlib.h>

#include "alloc.h"
#include "errors.h"

#define OUR_WINDOW_BITS 12
#define OUR_MEM_LEVEL 5

struct cel_ws_deflate {
    cel_ws_deflate_params params;
    z_stream in, out;
    unsigned in_ready : 1;
    unsigned out_ready : 1;
};

/* ---- negotiation ---- */

static int ieq(const char *a, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = a[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != lit[i])
            return 0;
    }
    return 1;
}

static void trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

/* Window bits 8..15 written without leading zeros (RFC 7692 7.1.2); -1 if not. */
static int window_bits(const char *s, const char *e)
{
    if (e - s >= 2 && *s == '"' && e[-1] == '"') {
        s++;
        e--;
    }
    if (e - s == 1 && *s >= '8' && *s <= '9')
        return *s - '0';
    if (e - s == 2 && s[0] == '1' && s[1] >= '0' && s[1] <= '5')
        return 10 + s[1] - '0';
    return -1;
}

/* One offer "permessage-deflate; a; b=c" in [s, e); 1 if acceptable. */
static int parse_offer(const char *s, const char *e, cel_ws_deflate_params *out)
{
    const char *semi = memchr(s, ';', (size_t)(e - s));
    const char *ne = semi ? semi : e;
    const char *ns = s;
    trim(&ns, &ne);
    if (!ieq(ns, (size_t)(ne - ns), "permessage-deflate"))
        return 0;
    int seen_snct = 0, seen_cnct = 0, seen_smwb = 0, seen_cmwb = 0;
    memset(out, 0, sizeof *out);
    out->server_max_window_bits = 15;
    const char *p = semi ? semi + 1 : e;
    while (p < e) {
        const char *pe = memchr(p, ';', (size_t)(e - p));
        if (!pe)
            pe = e;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ks = p, *ke = eq ? eq : pe;
        trim(&ks, &ke);
        const char *vs = eq ? eq + 1 : pe, *ve = pe;
        trim(&vs, &ve);
        size_t kl = (size_t)(ke - ks);
        if (ieq(ks, kl, "server_no_context_takeover")) {
            if (eq || seen_snct++)
                return 0;
            out->server_no_context_takeover = 1;
        } else if (ieq(ks, kl, "client_no_context_takeover")) {
            if (eq || seen_cnct++)
                return 0;
            out->client_no_context_takeover = 1;
        } else if (ieq(ks, kl, "server_max_window_bits")) {
            int b = eq ? window_bits(vs, ve) : -1;
            if (b < 9 || seen_smwb++)       /* 8: zlib's raw deflate cannot keep to it */
                return 0;
            out->server_max_window_bits = b;
        } else if (ieq(ks, kl, "client_max_window_bits")) {
            if (seen_cmwb++ || (eq && window_bits(vs, ve) < 0))
                return 0;
            /* we inflate with a 15-bit window: any client window fits */
        } else {
            return 0;
        }
        p = pe + 1;
    }
    return 1;
}

int cel_ws_deflate_negotiate(const cel_http_request *req, cel_ws_deflate_params *params,
                             char *response, size_t cap)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const cel_header *h = &req->headers[i];
        if (!ieq(h->name.p, h->name.len, "sec-websocket-extensions"))
            continue;
        const char *p = h->value.p, *end = p + h->value.len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *oe = comma ? comma : end;
            if (parse_offer(p, oe, params)) {
                int bits = params->server_max_window_bits < OUR_WINDOW_BITS
                           ? params->server_max_window_bits : OUR_WINDOW_BITS;
                params->server_max_window_bits = bits;
                size_t n = 0;
                const char *base = "permessage-deflate";
                if (cap < 128)
                    return 0;
                memcpy(response, base, strlen(base));
                n = strlen(base);
                if (params->server_no_context_takeover) {
                    memcpy(response + n, "; server_no_context_takeover", 28);
                    n += 28;
                }
                if (params->client_no_context_takeover) {
                    memcpy(response + n, "; client_no_context_takeover", 28);
                    n += 28;
                }
                memcpy(response + n, "; server_max_window_bits=", 25);
                n += 25;
                if (bits >= 10)
                    response[n++] = '1';
                response[n++] = (char)('0' + bits % 10);
                response[n] = '\0';
                return 1;
            }
            p = oe + 1;
        }
    }
    return 0;
}

/* ---- streams ---- */

static voidpf z_alloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    if (size && items > (size_t)-1 / size)
        return Z_NULL;
    return cel_malloc((size_t)items * size);
}

static void z_free(voidpf opaque, voidpf p)
{
    (void)opaque;
    cel_free(p);
}

cel_ws_deflate *cel_ws_deflate_new(const cel_ws_deflate_params *params)
{
    cel_ws_deflate *d = cel_calloc(1, sizeof *d);
    if (d)
        d->params = *params;
    return d;
}

void cel_ws_deflate_free(cel_ws_deflate *d)
{
    if (!d)
        return;
    if (d->in_ready)
        inflateEnd(&d->in);
    if (d->out_ready)
        deflateEnd(&d->out);
    cel_free(d);
}

/* Output space for one inflate call: at most 64 KiB, and one byte past the
 * limit, so a decompression bomb is stopped as soon as it passes it. */
static size_t out_room(const cel_buf *out, uint64_t max)
{
    size_t room = cel_buf_room(out);
    if (room > 65536)
        room = 65536;
    if (max && max - (out->len < max ? out->len : max) + 1 < room)
        room = (size_t)(max - (out->len < max ? out->len : max) + 1);
    return room;
}

static int inflate_some(cel_ws_deflate *d, const unsigned char *p, size_t n, cel_buf *out,
                        uint64_t max)
{
    z_stream *z = &d->in;
    z->next_in = (Bytef *)p;
    z->avail_in = (uInt)n;
    while (z->avail_in > 0) {
        if (cel_buf_reserve(out, 16384))
            return CEL_ENOMEM;
        size_t room = out_room(out, max);
        z->next_out = (Bytef *)cel_buf_tail(out);
        z->avail_out = (uInt)room;
        int rc = inflate(z, Z_SYNC_FLUSH);
        out->len += room - z->avail_out;
        if (max && out->len > max)
            return CEL_EWSTOOBIG;
        if (rc == Z_STREAM_END) {
            /* the peer ended its deflate stream (BFINAL): a new one may follow */
            if (inflateReset(z) != Z_OK)
                return CEL_EWSPROTO;
            continue;
        }
        if (rc == Z_MEM_ERROR)
            return CEL_ENOMEM;
        if (rc == Z_BUF_ERROR && z->avail_out != 0)
            break;      /* no progress possible: everything consumed */
        if (rc != Z_OK && rc != Z_BUF_ERROR)
            return CEL_EWSPROTO;
    }
    /* output may still be pending in zlib when avail_out hit 0 */
    for (;;) {
        if (cel_buf_reserve(out, 16384))
            return CEL_ENOMEM;
        size_t room = out_room(out, max);
        z->next_out = (Bytef *)cel_buf_tail(out);
        z->avail_out = (uInt)room;
        int rc = inflate(z, Z_SYNC_FLUSH);
        out->len += room - z->avail_out;
        if (max && out->len > max)
            return CEL_EWSTOOBIG;
        if (rc == Z_BUF_ERROR || (rc == Z_OK && z->avail_out != 0))
            return 0;
        if (rc == Z_STREAM_END)
            return inflateReset(z) == Z_OK ? 0 : CEL_EWSPROTO;
        if (rc == Z_MEM_ERROR)
            return CEL_ENOMEM;
        if (rc != Z_OK)
            return CEL_EWSPROTO;
    }
}

int cel_ws_inflate(cel_ws_deflate *d, const char *p, size_t n, int last, cel_buf *out,
                   uint64_t max)
{
    if (!d->in_ready) {
        memset(&d->in, 0, sizeof d->in);
        d->in.zalloc = z_alloc;
        d->in.zfree = z_free;
        int rc = inflateInit2(&d->in, -15);
        if (rc != Z_OK)
            return rc == Z_MEM_ERROR ? CEL_ENOMEM : CEL_EWSPROTO;
        d->in_ready = 1;
    }
    int rc = n ? inflate_some(d, (const unsigned char *)p, n, out, max) : 0;
    if (rc == 0 && last) {
        static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };
        rc = inflate_some(d, tail, 4, out, max);
    }
    return rc;
}

int cel_ws_deflate_message(cel_ws_deflate *d, const char *p, size_t n, cel_buf *out)
{
    z_stream *z = &d->out;
    if (!d->out_ready) {
        memset(z, 0, sizeof *z);
        z->zalloc = z_alloc;
        z->zfree = z_free;
        if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -d->params.server_max_window_bits,
                         OUR_MEM_LEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
            return CEL_ENOMEM;
        d->out_ready = 1;
    }
    size_t mark = out->len;
    z->next_in = (Bytef *)p;
    z->avail_in = (uInt)n;
    for (;;) {
        size_t want = deflateBound(z, z->avail_in) + 16;
        if (cel_buf_reserve(out, want)) {
            out->len = mark;
            return CEL_ENOMEM;
        }
        size_t room = cel_buf_room(out);
        if (room > (uInt)-1)
            room = (uInt)-1;
        z->next_out = (Bytef *)cel_buf_tail(out);
        z->avail_out = (uInt)room;
        int rc = deflate(z, Z_SYNC_FLUSH);
        out->len += room - z->avail_out;
        if (rc != Z_OK && rc != Z_BUF_ERROR) {
            out->len = mark;
            return CEL_ENOMEM;
        }
        if (z->avail_in == 0 && z->avail_out != 0)
            break;
    }
    /* a sync flush ends with an empty stored block: 00 00 ff ff (RFC 7692 7.2.1) */
    if (out->len - mark >= 4 && memcmp(cel_buf_tail(out) - 4, "\x00\x00\xff\xff", 4) == 0)
        out->len -= 4;
    /* nothing new to flush (an empty message): the receiver's appended tail
     * needs a block header before it -- a lone 0x00 (RFC 7692 7.2.3.6) */
    if (out->len == mark && cel_buf_append(out, "", 1))
        return CEL_ENOMEM;
    if (d->params.server_no_context_takeover)
        deflateReset(z);
    return 0;
}
