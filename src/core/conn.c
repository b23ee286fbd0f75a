#include "conn.h"

#include <stdio.h>

#include "alloc.h"
#include <string.h>

#include "date.h"
#include "errors.h"
#include "status.h"

void cel_conn_config_default(cel_conn_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cel_http_limits_default(&cfg->limits);
    cfg->max_body = 0;
    cfg->date_header = 1;
    cfg->server_header = 1;
}

void cel_conn_init(cel_conn *c, int fd, const cel_conn_config *cfg)
{
    memset(c, 0, sizeof *c);
    c->fd = fd;
    c->cfg = cfg;
    c->state = CEL_CONN_IDLE;
    c->file.fd = -1;
}

void cel_conn_release(cel_conn *c)
{
    cel_buf_free(&c->in);
    cel_buf_free(&c->out);
    cel_conn_file_close(c);
    if (c->ws) {
        cel_buf_free(&c->ws->msg);
        cel_buf_free(&c->ws->zbuf);
        cel_ws_deflate_free(c->ws->deflate);
        cel_free(c->ws);
        c->ws = NULL;
    }
    c->state = CEL_CONN_CLOSED;
}

int cel_conn_parse_head(cel_conn *c, cel_http_request *req, cel_header *hdrs, size_t cap)
{
    if (c->state != CEL_CONN_IDLE)
        return CEL_ESTATE;
    if (c->in.len == 0)
        return CEL_EAGAIN;
    req->headers = hdrs;
    req->num_headers = cap;
    long n = cel_http_parse_request(cel_buf_head(&c->in), c->in.len, &c->cfg->limits, req);
    if (n < 0)
        return (int)n;

    c->requests++;
    c->head_end = cel_buf_head(&c->in) + n;
    c->keep_alive = (req->flags & CEL_REQ_KEEP_ALIVE) != 0;
    c->http10 = req->minor_version == 0;
    c->is_head = req->method.len == 4 && memcmp(req->method.p, "HEAD", 4) == 0;
    c->expect_continue = (req->flags & CEL_REQ_EXPECT_CONTINUE) != 0;
    c->body_kind = req->body_kind;
    c->body_left = req->body_kind == CEL_BODY_LENGTH ? req->content_length : 0;
    c->body_seen = 0;
    c->body_done = req->body_kind == CEL_BODY_NONE;
    if (!c->body_done)
        cel_chunked_init(&c->chunked);
    c->resp_started = c->resp_done = c->resp_chunked = c->resp_has_length = 0;
    c->resp_left = 0;
    c->resp_status = 0;
    if (c->body_kind == CEL_BODY_LENGTH && c->cfg->max_body && req->content_length > c->cfg->max_body) {
        cel_buf_consume(&c->in, (size_t)n);
        return CEL_EBODYTOOLARGE;
    }
    if (c->body_done)
        c->expect_continue = 0;
    cel_buf_consume(&c->in, (size_t)n);
    c->state = CEL_CONN_ACTIVE;
    return 1;
}

int cel_conn_body_read(cel_conn *c, const char **p, size_t *n)
{
    if (c->state != CEL_CONN_ACTIVE && c->state != CEL_CONN_DRAIN)
        return CEL_ESTATE;
    if (c->body_done)
        return 0;
    if (c->body_kind == CEL_BODY_LENGTH) {
        if (c->in.len == 0)
            return c->read_eof ? CEL_ECLOSED : CEL_EAGAIN;
        size_t take = c->in.len < c->body_left ? c->in.len : (size_t)c->body_left;
        *p = cel_buf_head(&c->in);
        *n = take;
        cel_buf_consume(&c->in, take);
        c->body_left -= take;
        c->body_seen += take;
        if (c->body_left == 0)
            c->body_done = 1;
        return 1;
    }
    /* chunked */
    size_t consumed = 0;
    const char *data = NULL;
    size_t dlen = 0;
    int rc = cel_chunked_decode(&c->chunked, cel_buf_head(&c->in), c->in.len, &consumed, &data, &dlen);
    if (rc == CEL_EBADCHUNK)
        return rc;
    cel_buf_consume(&c->in, consumed);
    if (rc == 0) {
        c->body_done = 1;
        return 0;
    }
    if (rc == CEL_EAGAIN)
        return c->read_eof ? CEL_ECLOSED : CEL_EAGAIN;
    c->body_seen += dlen;
    if (c->cfg->max_body && c->body_seen > c->cfg->max_body)
        return CEL_EBODYTOOLARGE;
    *p = data;
    *n = dlen;
    return 1;
}

int cel_conn_in_swap(cel_conn *c, cel_buf *spare)
{
    if (c->in.len != 0 || spare->len != 0)
        return CEL_EAGAIN;
    cel_buf t = c->in;
    c->in = *spare;
    c->in.start = 0;
    *spare = t;
    spare->start = 0;
    return 0;
}

int cel_conn_send_continue(cel_conn *c)
{
    if (!c->expect_continue || c->resp_started || c->body_done)
        return 0;
    c->expect_continue = 0;
    static const char line[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (cel_buf_append(&c->out, line, sizeof line - 1))
        return CEL_ENOMEM;
    return 1;
}

/* RFC 9110 tchar, as uvicorn's HEADER_RE rejects everything else: visible
 * ASCII except the separators "(),/:;<=>?@[\\]{}" and DQUOTE.  A table, as
 * every response header name goes through it.  Non-zero for a tchar; the
 * upper-case letters hold 0x21, so ch | (TCHAR[ch] & 0x20) lower-cases. */
static const unsigned char TCHAR[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x01, 0x01, 0x00, 0x01, 0x01, 0x00,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21,
    0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x21, 0x00, 0x00, 0x00, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01,
    0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x01, 0x00, 0x01, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static int is_tchar(unsigned char ch)
{
    return TCHAR[ch];
}

static int valid_name(const cel_slice *s)
{
    if (s->len == 0)
        return 0;
    for (size_t i = 0; i < s->len; i++)
        if (!is_tchar((unsigned char)s->p[i]))
            return 0;
    return 1;
}

/* uvicorn's HEADER_VALUE_RE: no CTL except HTAB. */
static int valid_value(const cel_slice *s)
{
    /* 1 for the bytes a value may not hold: CTLs but HTAB, and DEL */
    static const unsigned char CTL[256] = {
        [0x00] = 1, [0x01] = 1, [0x02] = 1, [0x03] = 1, [0x04] = 1, [0x05] = 1, [0x06] = 1,
        [0x07] = 1, [0x08] = 1, [0x0a] = 1, [0x0b] = 1, [0x0c] = 1, [0x0d] = 1, [0x0e] = 1,
        [0x0f] = 1, [0x10] = 1, [0x11] = 1, [0x12] = 1, [0x13] = 1, [0x14] = 1, [0x15] = 1,
        [0x16] = 1, [0x17] = 1, [0x18] = 1, [0x19] = 1, [0x1a] = 1, [0x1b] = 1, [0x1c] = 1,
        [0x1d] = 1, [0x1e] = 1, [0x1f] = 1, [0x7f] = 1,
    };
    const unsigned char *p = (const unsigned char *)s->p;
    size_t n = s->len, i = 0;
    unsigned bad = 0;
    /* 8 bytes at a time: a word with no byte < 0x20 and none == 0x7f is
     * clean (both tests are exact about whether such a byte exists); a word
     * that fails (an HTAB, say) is decided byte by byte. */
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, d;
        memcpy(&x, p + i, 8);
        d = x ^ (0x7f * ones);
        if ((((x - 0x20 * ones) & ~x) | ((d - ones) & ~d)) & highs)
            for (size_t k = i; k < i + 8; k++)
                bad |= CTL[p[k]];
    }
    for (; i < n; i++)
        bad |= CTL[p[i]];
    return !bad;
}

static int name_is(const cel_slice *s, const char *lit, size_t len)
{
    if (s->len != len)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s->p[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (unsigned char)(ch + 32);
        if (ch != (unsigned char)lit[i])
            return 0;
    }
    return 1;
}

static int parse_u64(const cel_slice *v, uint64_t *out)
{
    size_t i = 0, e = v->len;
    while (i < e && (v->p[i] == ' ' || v->p[i] == '\t'))
        i++;
    while (e > i && (v->p[e - 1] == ' ' || v->p[e - 1] == '\t'))
        e--;
    if (i == e)
        return -1;
    uint64_t x = 0;
    for (; i < e; i++) {
        unsigned d = (unsigned)(v->p[i] - '0');
        if (d > 9 || x > (UINT64_MAX - d) / 10)
            return -1;
        x = x * 10 + d;
    }
    *out = x;
    return 0;
}

static int append_lower(cel_buf *b, const cel_slice *s)
{
    if (cel_buf_reserve(b, s->len))
        return CEL_ENOMEM;
    char *t = cel_buf_tail(b);
    for (size_t i = 0; i < s->len; i++) {
        char ch = s->p[i];
        t[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    b->len += s->len;
    return 0;
}

/* Copy a header name into t lower-cased; 0 if it is empty or holds a byte
 * that is not a tchar (nothing else is promised about t then). */
static int put_name(char *t, const cel_slice *s)
{
    /* the two names nearly every response has, already valid and lower-case */
    if ((s->len == 14 && memcmp(s->p, "content-length", 14) == 0)
        || (s->len == 12 && memcmp(s->p, "content-type", 12) == 0)) {
        memcpy(t, s->p, s->len);
        return 1;
    }
    if (s->len == 0)
        return 0;
    for (size_t i = 0; i < s->len; i++) {
        unsigned char ch = (unsigned char)s->p[i], v = TCHAR[ch];
        if (!v)
            return 0;
        t[i] = (char)(ch | (v & 0x20));
    }
    return 1;
}

static char *put_lit(char *t, const char *lit, size_t n)
{
    memcpy(t, lit, n);
    return t + n;
}

/* Status line, date and server headers into t (room reserved by the
 * caller: at most 21 + strlen(phrase) + 2 + 8 + CEL_DATE_LEN + 17 bytes);
 * returns the end. */
static char *put_status_date_server(const cel_conn *c, char *w, int status, const char *phrase,
                                    size_t plen, int with_date, const char *date)
{
    if (status == 200) {
        w = put_lit(w, "HTTP/1.1 200 OK\r\n", 17);    /* most responses: no phrase lookup */
    } else if (status >= 100 && status <= 999) {
        w = put_lit(w, "HTTP/1.1 ", 9);
        w[0] = (char)('0' + status / 100);
        w[1] = (char)('0' + status / 10 % 10);
        w[2] = (char)('0' + status % 10);
        w[3] = ' ';
        w += 4;
    } else {
        char line[32];
        int ln = snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
        w = put_lit(w, line, (size_t)ln);
    }
    if (status != 200) {
        w = put_lit(w, phrase, plen);
        w = put_lit(w, "\r\n", 2);
    }
    if (with_date) {
        w = put_lit(w, "date: ", 6);
        w = put_lit(w, date, CEL_DATE_LEN);
        w = put_lit(w, "\r\n", 2);
    }
    if (c->cfg->server_header)
        w = put_lit(w, "server: celeris\r\n", 17);
    return w;
}

/* Framing and the end of the head (room for 24 + 28 + 2 bytes reserved),
 * then the head [t, w) committed to `out` and the response state set. */
static void end_head(cel_conn *c, char *t, char *w, int status, int has_cl, uint64_t cl,
                     int has_te_chunked, int has_close)
{
    if (c->expect_continue && !c->body_done)
        c->keep_alive = 0;      /* the body never came: its bytes cannot be framed later */
    int body_allowed = !c->is_head && status != 204 && status != 304 && status >= 200;
    int chunked = 0;
    if (!has_cl && !has_te_chunked && body_allowed) {
        if (c->http10)
            c->keep_alive = 0;      /* HTTP/1.0 has no chunked: delimit by close */
        else
            chunked = 1;
    }
    if (!c->keep_alive && !has_close)
        w = put_lit(w, "connection: close\r\n", 19);
    else if (c->keep_alive && c->http10)
        w = put_lit(w, "connection: keep-alive\r\n", 24);
    if (chunked)
        w = put_lit(w, "transfer-encoding: chunked\r\n", 28);
    w = put_lit(w, "\r\n", 2);
    c->out.len += (size_t)(w - t);
    c->resp_started = 1;
    c->resp_status = status;
    c->resp_chunked = (unsigned)(chunked || has_te_chunked);
    c->resp_has_length = (unsigned)has_cl;
    c->resp_left = has_cl ? cl : 0;
}

/* One pass: the whole head is measured, room reserved once, and every header
 * validated as it is written into the reserved tail of `out`.  The bytes are
 * committed (out.len moved) only at the end, so an invalid header leaves
 * `out` as it was and the connection able to answer 500 instead. */
int cel_conn_response_start(cel_conn *c, int status, const cel_header *headers,
                            size_t n, const char *date)
{
    if (c->resp_started)
        return CEL_ESTATE;
    const char *phrase = status == 200 ? "OK" : cel_status_phrase(status);
    size_t plen = status == 200 ? 2 : strlen(phrase);
    int with_date = c->cfg->date_header && date;
    /* status line (at most "HTTP/1.1 " + 11 digits + " "), phrase, CRLF,
     * date, server, connection (24), transfer-encoding (28), final CRLF */
    size_t need = 21 + plen + 2 + (with_date ? 8 + CEL_DATE_LEN : 0) + 17 + 24 + 28 + 2;
    for (size_t i = 0; i < n; i++) {
        size_t h = headers[i].name.len + headers[i].value.len + 4;
        if (h > (size_t)-1 / 2 - need)
            return CEL_ENOMEM;
        need += h;
    }
    cel_buf *o = &c->out;
    if (cel_buf_reserve(o, need))
        return CEL_ENOMEM;
    char *t = cel_buf_tail(o);
    char *w = put_status_date_server(c, t, status, phrase, plen, with_date, date);
    int has_cl = 0, has_te_chunked = 0, has_close = 0;
    uint64_t cl = 0;
    for (size_t i = 0; i < n; i++) {
        const cel_slice *name = &headers[i].name, *value = &headers[i].value;
        if (!put_name(w, name))
            return CEL_EHDRNAME;
        if (!valid_value(value))
            return CEL_EHDRVALUE;
        w += name->len;
        w = put_lit(w, ": ", 2);
        if (value->len)
            w = put_lit(w, value->p, value->len);
        w = put_lit(w, "\r\n", 2);
        /* names compared through the lower-cased copy just written */
        const char *lname = w - 4 - value->len - name->len;
        if (name->len == 14 && !has_cl && !has_te_chunked
            && memcmp(lname, "content-length", 14) == 0) {
            if (parse_u64(value, &cl))
                return CEL_EBADCL;
            has_cl = 1;
        } else if (name->len == 17 && memcmp(lname, "transfer-encoding", 17) == 0
                   && name_is(value, "chunked", 7)) {
            has_te_chunked = 1;
            has_cl = 0;
        } else if (name->len == 10 && memcmp(lname, "connection", 10) == 0
                   && cel_header_list_has(value, "close", 0)) {
            c->keep_alive = 0;
            has_close = 1;
        }
    }
    end_head(c, t, w, status, has_cl, cl, has_te_chunked, has_close);
    return 0;
}

/* The decimal digits of v at w; returns the end.  The length first (a
 * comparison per digit), then the digits from the back: no reversal. */
static char *put_u64(char *w, uint64_t v)
{
    size_t n = 1;
    for (uint64_t p = 10; n < 20 && v >= p; p *= 10)
        n++;
    char *e = w + n;
    do {
        *--e = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return w + n;
}

/* The head of cel_conn_response_start_fixed into the reserved tail of out
 * (room: FIXED_HEAD_ROOM + ctype_len), committed. */
#define FIXED_HEAD_ROOM (21 + 2 + 8 + CEL_DATE_LEN + 17 + 24 + 28 + 2 + 16 + 20 + 2 + 14 + 2)
static void put_fixed_head(cel_conn *c, char *t, int status, const char *phrase, size_t plen,
                           uint64_t length, const char *ctype, size_t ctype_len, const char *date)
{
    const cel_conn_config *cfg = c->cfg;
    char *w;
    if (status == 200 && date && cfg->date_header && cfg->server_header) {
        /* put_status_date_server's bytes for the usual configuration */
        w = put_lit(t, "HTTP/1.1 200 OK\r\ndate: ", 23);
        w = put_lit(w, date, CEL_DATE_LEN);
        w = put_lit(w, "\r\nserver: celeris\r\ncontent-length: ", 35);
    } else {
        w = put_status_date_server(c, t, status, phrase, plen, cfg->date_header && date, date);
        w = put_lit(w, "content-length: ", 16);
    }
    w = put_u64(w, length);
    w = put_lit(w, "\r\ncontent-type: ", 16);
    if (ctype_len == 16)
        w = put_lit(w, ctype, 16);      /* "application/json": a fixed-size move */
    else if (ctype_len)
        w = put_lit(w, ctype, ctype_len);
    /* end_head with a content-length: never chunked */
    if (c->expect_continue && !c->body_done)
        c->keep_alive = 0;      /* the body never came: its bytes cannot be framed later */
    if (!c->keep_alive)
        w = put_lit(w, "\r\nconnection: close\r\n\r\n", 23);
    else if (c->http10)
        w = put_lit(w, "\r\nconnection: keep-alive\r\n\r\n", 28);
    else
        w = put_lit(w, "\r\n\r\n", 4);
    c->out.len += (size_t)(w - t);
    c->resp_started = 1;
    c->resp_status = status;
    c->resp_chunked = 0;
    c->resp_has_length = 1;
    c->resp_left = length;
}

int cel_conn_response_start_fixed(cel_conn *c, int status, uint64_t length,
                                  const char *ctype, size_t ctype_len, const char *date)
{
    if (c->resp_started)
        return CEL_ESTATE;
    const char *phrase = status == 200 ? "OK" : cel_status_phrase(status);
    size_t plen = status == 200 ? 2 : strlen(phrase);
    if (ctype_len > (size_t)-1 / 4 || plen > (size_t)-1 / 4)
        return CEL_ENOMEM;
    /* as cel_conn_response_start, plus "content-length: " 20 digits CRLF
     * and "content-type: " ctype CRLF */
    cel_buf *o = &c->out;
    if (cel_buf_reserve(o, FIXED_HEAD_ROOM + plen + ctype_len))
        return CEL_ENOMEM;
    put_fixed_head(c, cel_buf_tail(o), status, phrase, plen, length, ctype, ctype_len, date);
    return 0;
}

int cel_conn_respond_fixed(cel_conn *c, int status, const char *ctype, size_t ctype_len,
                           const char *body, size_t len, const char *date)
{
    if (c->resp_started)
        return CEL_ESTATE;
    const char *phrase = status == 200 ? "OK" : cel_status_phrase(status);
    size_t plen = status == 200 ? 2 : strlen(phrase);
    if (ctype_len > (size_t)-1 / 4 || plen > (size_t)-1 / 4 || len > (size_t)-1 / 4)
        return CEL_ENOMEM;
    cel_buf *o = &c->out;
    if (cel_buf_reserve(o, FIXED_HEAD_ROOM + plen + ctype_len + len))
        return CEL_ENOMEM;
    put_fixed_head(c, cel_buf_tail(o), status, phrase, plen, len, ctype, ctype_len, date);
    /* cel_conn_response_body(c, body, len, 0): the length is exact */
    if (!c->is_head) {
        if (len)
            memcpy(cel_buf_tail(o), body, len);
        o->len += len;
        c->resp_left = 0;
    }
    c->resp_done = 1;
    return 0;
}

int cel_conn_response_body(cel_conn *c, const char *p, size_t n, int more)
{
    if (!c->resp_started || c->resp_done)
        return CEL_ESTATE;
    int rc = 0;
    if (c->is_head) {
        /* HEAD: the head already carries the length; no body bytes go out. */
    } else if (c->resp_chunked) {
        if (n) {
            char sz[24];
            int k = snprintf(sz, sizeof sz, "%zx\r\n", n);
            rc |= cel_buf_append(&c->out, sz, (size_t)k);
            rc |= cel_buf_append(&c->out, p, n);
            rc |= cel_buf_append(&c->out, "\r\n", 2);
        }
        if (!more)
            rc |= cel_buf_append(&c->out, "0\r\n\r\n", 5);
    } else {
        if (c->resp_has_length) {
            if (n > c->resp_left)
                return CEL_ERESPLONG;
            c->resp_left -= n;
        }
        rc |= cel_buf_append(&c->out, p, n);
    }
    if (rc)
        return CEL_ENOMEM;
    if (!more) {
        c->resp_done = 1;
        if (c->resp_has_length && c->resp_left && !c->is_head) {
            c->keep_alive = 0;
            return CEL_ERESPSHORT;
        }
    }
    return 0;
}

int cel_conn_finish(cel_conn *c)
{
    if (!c->keep_alive || c->read_eof) {
        c->state = CEL_CONN_CLOSING;
        return c->state;
    }
    if (!c->body_done) {
        if (c->expect_continue) {
            /* The client still waits for 100 Continue and will not send the
             * body: the framing of anything it sends next is unknowable. */
            c->state = CEL_CONN_CLOSING;
            return c->state;
        }
        c->state = CEL_CONN_DRAIN;
        const char *p;
        size_t n;
        int rc;
        while ((rc = cel_conn_body_read(c, &p, &n)) == 1)
            ;
        if (rc == CEL_EAGAIN)
            return c->state;
        if (rc != 0) {
            c->state = CEL_CONN_CLOSING;
            return c->state;
        }
    }
    c->state = CEL_CONN_IDLE;
    c->head_started = 0;
    return c->state;
}

int cel_conn_write_error(cel_conn *c, int status, const char *msg, const char *date)
{
    char head[256];
    size_t mlen = strlen(msg);
    int k = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", status, cel_status_phrase(status));
    int rc = cel_buf_append(&c->out, head, (size_t)k);
    if (c->cfg->date_header && date) {
        rc |= cel_buf_append(&c->out, "date: ", 6);
        rc |= cel_buf_append(&c->out, date, CEL_DATE_LEN);
        rc |= cel_buf_append(&c->out, "\r\n", 2);
    }
    if (c->cfg->server_header)
        rc |= cel_buf_append(&c->out, "server: celeris\r\n", 17);
    /* 426 is only answered to a WebSocket handshake of another version
     * (RFC 6455 4.4): name the one we speak. */
    if (status == 426)
        rc |= cel_buf_append(&c->out, "sec-websocket-version: 13\r\n", 27);
    k = snprintf(head, sizeof head,
                 "content-type: text/plain; charset=utf-8\r\ncontent-length: %zu\r\n"
                 "connection: close\r\n\r\n", mlen);
    rc |= cel_buf_append(&c->out, head, (size_t)k);
    if (!c->is_head || c->state == CEL_CONN_IDLE)
        rc |= cel_buf_append(&c->out, msg, mlen);
    c->resp_started = 1;
    c->resp_done = 1;
    c->keep_alive = 0;
    c->state = CEL_CONN_CLOSING;
    return rc ? CEL_ENOMEM : 0;
}

int cel_conn_ws_accept(cel_conn *c, const char *subprotocol, size_t sublen,
                       const cel_header *headers, size_t n, const char *date,
                       uint64_t max_message)
{
    if (!c->ws || c->state != CEL_CONN_ACTIVE || c->resp_started)
        return CEL_ESTATE;
    for (size_t i = 0; i < n; i++) {
        if (!valid_name(&headers[i].name))
            return CEL_EHDRNAME;
        if (!valid_value(&headers[i].value))
            return CEL_EHDRVALUE;
    }
    cel_slice sub = { subprotocol, sublen };
    if (subprotocol && !valid_value(&sub))
        return CEL_EHDRVALUE;
    cel_ws_conn *w = c->ws;
    if (w->deflate_response[0] && !w->deflate) {
        w->deflate = cel_ws_deflate_new(&w->deflate_params);
        if (!w->deflate)
            return CEL_ENOMEM;
    }
    size_t mark = c->out.len;
    cel_buf *o = &c->out;
    int rc = 0;
    rc |= cel_buf_append(o, "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n"
                            "connection: Upgrade\r\nsec-websocket-accept: ", 97);
    rc |= cel_buf_append(o, c->ws->hs.accept, CEL_WS_ACCEPT_LEN);
    rc |= cel_buf_append(o, "\r\n", 2);
    if (subprotocol) {
        rc |= cel_buf_append(o, "sec-websocket-protocol: ", 24);
        rc |= cel_buf_append(o, subprotocol, sublen);
        rc |= cel_buf_append(o, "\r\n", 2);
    }
    if (w->deflate) {
        rc |= cel_buf_append(o, "sec-websocket-extensions: ", 26);
        rc |= cel_buf_append(o, w->deflate_response, strlen(w->deflate_response));
        rc |= cel_buf_append(o, "\r\n", 2);
    }
    if (c->cfg->date_header && date) {
        rc |= cel_buf_append(o, "date: ", 6);
        rc |= cel_buf_append(o, date, CEL_DATE_LEN);
        rc |= cel_buf_append(o, "\r\n", 2);
    }
    if (c->cfg->server_header)
        rc |= cel_buf_append(o, "server: celeris\r\n", 17);
    for (size_t i = 0; i < n && !rc; i++) {
        rc |= append_lower(o, &headers[i].name);
        rc |= cel_buf_append(o, ": ", 2);
        rc |= cel_buf_append(o, headers[i].value.p, headers[i].value.len);
        rc |= cel_buf_append(o, "\r\n", 2);
    }
    rc |= cel_buf_append(o, "\r\n", 2);
    if (rc) {
        o->len = mark;
        return CEL_ENOMEM;
    }
    c->resp_started = 1;
    c->resp_done = 1;
    c->resp_status = 101;
    cel_ws_parser_init(&c->ws->parser, CEL_WS_SERVER, max_message);
    c->ws->parser.allow_rsv1 = c->ws->deflate != NULL;
    c->state = CEL_CONN_WS;
    return 0;
}

int cel_conn_ws_send(cel_conn *c, int opcode, const char *p, size_t n)
{
    cel_ws_conn *w = c->ws;
    if (c->state != CEL_CONN_WS || w->close_sent)
        return CEL_ESTATE;
    if (!w->deflate)
        return cel_ws_write_frame(&c->out, opcode, p, n);
    int rc = cel_ws_deflate_message(w->deflate, p, n, &w->zbuf);
    if (rc == 0)
        rc = cel_ws_write_frame_ex(&c->out, opcode, 1, cel_buf_head(&w->zbuf), w->zbuf.len);
    cel_buf_consume(&w->zbuf, w->zbuf.len);
    cel_buf_shrink(&w->zbuf, 65536);
    return rc;
}

int cel_conn_ws_close(cel_conn *c, int code, const char *reason, size_t len)
{
    if (c->state != CEL_CONN_WS || c->ws->close_sent)
        return CEL_ESTATE;
    if (cel_ws_write_close(&c->out, code, reason, len))
        return CEL_ENOMEM;
    c->ws->close_sent = 1;
    return 0;
}
