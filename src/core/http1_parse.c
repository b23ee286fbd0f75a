/* HTTP/1.x request-head parser (RFC 9112).  See http1.h for the contract.
 *
 * The parser is a single forward pass over the buffer with no state kept
 * between calls: on CEL_EAGAIN the caller re-feeds the whole head.  Syntax is
 * checked as it is read (runs of ordinary bytes sixteen or eight at a time,
 * see the scanners below), so a malformed prefix (a TLS ClientHello, a bad
 * method) is rejected without waiting for a line end, while a valid prefix
 * yields CEL_EAGAIN.  Each section is scanned only up to its limit, so the
 * limits bound both the work and what is reported on incomplete input.
 * Framing headers (Content-Length, Transfer-Encoding, Host, Connection, ...)
 * are interpreted in a second pass over the parsed header array.
 */
#include <string.h>

#include "errors.h"
#include "http1.h"

/* Character classes, indexed by byte value. */
enum {
    C_TCHAR = 1,        /* RFC 9110 token character */
    C_TARGET = 2,       /* allowed in a request-target: VCHAR except '#', obs-text */
    C_VALUE = 4         /* allowed in a field value: HTAB, SP, VCHAR, obs-text */
};

#define T (C_TCHAR | C_TARGET | C_VALUE)
#define U (C_TARGET | C_VALUE)
#define V C_VALUE
#define W (C_TCHAR | C_VALUE)
static const unsigned char cls[256] = {
    /* 0x00 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, V, 0, 0, 0, 0, 0, 0,
    /* 0x10 */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x20  SP !  "  #  $  %  &  '  (  )  *  +  ,  -  .  / */
               V, T, U, W, T, T, T, T, U, U, T, T, U, T, T, U,
    /* 0x30  0-9 : ; < = > ? */
               T, T, T, T, T, T, T, T, T, T, U, U, U, U, U, U,
    /* 0x40  @ A-O */
               U, T, T, T, T, T, T, T, T, T, T, T, T, T, T, T,
    /* 0x50  P-Z [ \ ] ^ _ */
               T, T, T, T, T, T, T, T, T, T, T, U, U, U, T, T,
    /* 0x60  ` a-o */
               T, T, T, T, T, T, T, T, T, T, T, T, T, T, T, T,
    /* 0x70  p-z { | } ~ DEL */
               T, T, T, T, T, T, T, T, T, T, T, U, T, U, T, 0,
    /* 0x80-0xff: obs-text */
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
    U, U, U, U, U, U, U, U, U, U, U, U, U, U, U, U,
};
#undef T
#undef U
#undef V
#undef W

#define IS_TCHAR(c) (cls[(unsigned char)(c)] & C_TCHAR)
#define IS_TARGET(c) (cls[(unsigned char)(c)] & C_TARGET)
#define IS_VALUE(c) (cls[(unsigned char)(c)] & C_VALUE)
#define IS_OWS(c) ((c) == ' ' || (c) == '\t')

/* Eight bytes at a time: SWAR tests that are exact for "does any byte of w
 * match", used to skip over runs of ordinary bytes.  For the first
 * (lowest-addressed) matching byte of a little-endian load they are exact per
 * byte as well: a borrow only ever runs from a matching byte towards the
 * higher ones, so the lowest flagged byte of a mask (or of an OR of such
 * masks) is a true match and the bytes below it are true non-matches. */
#define ONES 0x0101010101010101ull
#define HIGHS 0x8080808080808080ull
#define HAS_LESS(w, n) (((w) - ONES * (n)) & ~(w) & HIGHS)     /* n <= 128 */
#define HAS_BYTE(w, b) HAS_LESS((w) ^ (ONES * (b)), 1)

static inline uint64_t load64(const char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

static inline uint32_t load32(const char *p)
{
    uint32_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

/* FIRST_LANE(m): offset of the first flagged byte of a non-zero mask m from
 * the macros above (ctz of a little-endian load).  Without it (big-endian,
 * other compilers, or CEL_HTTP1_PORTABLE, which the tests build to exercise
 * this path) the scanners walk the flagged word byte by byte instead, to the
 * same byte.  With SSE2 the scanners first take sixteen bytes at a time
 * (exact per byte: one compare result per byte), then words, then bytes. */
#if !defined(CEL_HTTP1_PORTABLE) && defined(__GNUC__) && defined(__BYTE_ORDER__) \
    && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define FIRST_LANE(m) ((size_t)__builtin_ctzll(m) >> 3)
#if defined(__SSE2__)
#include <emmintrin.h>
#define SCAN16 1
#endif
#endif

#ifdef SCAN16
static inline __m128i load128(const char *p)
{
    __m128i x;
    memcpy(&x, p, sizeof(x));
    return x;
}

/* Bytes <= n (unsigned), as a compare mask. */
static inline __m128i le16(__m128i x, unsigned char n)
{
    return _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8((char)n)), x);
}

static inline __m128i eq16(__m128i x, char c)
{
    return _mm_cmpeq_epi8(x, _mm_set1_epi8(c));
}

/* One bit per byte of p[0..16): set where a field-value block stops (any
 * CTL, HTAB included, or DEL), as HAS_LESS(w, 0x20) | HAS_BYTE(w, 0x7f). */
static inline unsigned value_stops16(const char *p)
{
    __m128i x = load128(p);
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(le16(x, 0x1f), eq16(x, 0x7f)));
}

/* Set where a request-target stops (CTL, SP, DEL, '#'), plus '?' if qmark. */
static inline unsigned target_stops16(const char *p, int qmark)
{
    __m128i x = load128(p);
    __m128i m = _mm_or_si128(_mm_or_si128(le16(x, 0x20), eq16(x, 0x7f)), eq16(x, '#'));
    if (qmark)
        m = _mm_or_si128(m, eq16(x, '?'));
    return (unsigned)_mm_movemask_epi8(m);
}

/* Set where a byte is not one of A-Z a-z 0-9 '-' (as not_alnum_dash). */
static inline unsigned not_alnum_dash16(const char *p)
{
    __m128i x = load128(p);
    __m128i l = _mm_sub_epi8(_mm_or_si128(x, _mm_set1_epi8(0x20)), _mm_set1_epi8('a'));
    __m128i d = _mm_sub_epi8(x, _mm_set1_epi8('0'));
    __m128i ok = _mm_or_si128(_mm_or_si128(le16(l, 25), le16(d, 9)), eq16(x, '-'));
    return (unsigned)_mm_movemask_epi8(ok) ^ 0xffffu;
}
#endif

/* Per byte of w, exactly (no borrow crosses a byte): high bit set where the
 * byte is NOT one of A-Z a-z 0-9 '-' (the bytes of nearly every header
 * name).  Each range test works on the low seven bits x, where x + k cannot
 * carry out of its byte; bytes >= 0x80 are flagged through w itself. */
static inline uint64_t not_alnum_dash(uint64_t w)
{
    uint64_t x = w & ~HIGHS;
    uint64_t l = x | (ONES * 0x20);         /* A-Z folded onto a-z; nothing else lands there */
    uint64_t alpha = (l + ONES * (0x80 - 'a')) & ~(l + ONES * (0x7f - 'z'));
    uint64_t digit = (x + ONES * (0x80 - '0')) & ~(x + ONES * (0x7f - '9'));
    uint64_t dash = ~((x ^ (ONES * '-')) + ONES * 0x7f);
    return (~(alpha | digit | dash) | w) & HIGHS;
}

#ifndef FIRST_LANE
static inline int is_alnum_dash(unsigned char c)
{
    return (unsigned)((c | 0x20) - 'a') < 26 || (unsigned)(c - '0') < 10 || c == '-';
}
#endif

/* End of the run of field-value bytes (C_VALUE) starting at p (<= end).
 * A block with a CTL (HTAB included) or DEL in it stops at that byte; an
 * HTAB is stepped over and the scan goes on from the next byte. */
static const char *skip_value(const char *p, const char *end)
{
#ifdef SCAN16
    while (end - p >= 16) {
        unsigned m = value_stops16(p);
        if (!m) {
            p += 16;
            continue;
        }
        p += __builtin_ctz(m);
        if (*p != '\t')
            return p;
        p++;
    }
#endif
    while (end - p >= 8) {
        uint64_t w = load64(p);
        uint64_t m = HAS_LESS(w, 0x20) | HAS_BYTE(w, 0x7f);
        if (!m) {
            p += 8;
            continue;
        }
#ifdef FIRST_LANE
        p += FIRST_LANE(m);
#else
        while ((unsigned char)*p >= 0x20 && *p != 0x7f)
            p++;
#endif
        if (*p != '\t')
            return p;
        p++;
    }
    while (p < end && IS_VALUE(*p))
        p++;
    return p;
}

/* End of the run of request-target bytes (C_TARGET) starting at p (<= end);
 * *qm gets the first '?' of the run (NULL if none), so the query needs no
 * second look.  Until one is seen '?' stops a block too. */
static const char *skip_target(const char *p, const char *end, const char **qm)
{
    const char *q = NULL;
#ifdef SCAN16
    while (end - p >= 16) {
        unsigned m = target_stops16(p, !q);
        if (!m) {
            p += 16;
            continue;
        }
        p += __builtin_ctz(m);
        if (*p != '?') {
            *qm = q;
            return p;
        }
        q = p++;
    }
#endif
    while (end - p >= 8) {
        uint64_t w = load64(p);
        uint64_t m = HAS_LESS(w, 0x21) | HAS_BYTE(w, 0x7f) | HAS_BYTE(w, '#');
        if (!q)
            m |= HAS_BYTE(w, '?');
        if (!m) {
            p += 8;
            continue;
        }
#ifdef FIRST_LANE
        p += FIRST_LANE(m);
#else
        while (IS_TARGET(*p) && (q || *p != '?'))
            p++;
#endif
        if (*p != '?') {
            *qm = q;
            return p;
        }
        q = p++;
    }
    for (; p < end && IS_TARGET(*p); p++)
        if (*p == '?' && !q)
            q = p;
    *qm = q;
    return p;
}

/* End of the run of token characters (C_TCHAR) starting at p (<= end).
 * Blocks of letters, digits and '-' are skipped whole; any other tchar is
 * stepped over and the scan goes on from the next byte. */
static const char *skip_token(const char *p, const char *end)
{
#ifdef SCAN16
    while (end - p >= 16) {
        unsigned m = not_alnum_dash16(p);
        if (!m) {
            p += 16;
            continue;
        }
        p += __builtin_ctz(m);
        if (!IS_TCHAR(*p))
            return p;
        p++;
    }
#endif
    while (end - p >= 8) {
        uint64_t m = not_alnum_dash(load64(p));
        if (!m) {
            p += 8;
            continue;
        }
#ifdef FIRST_LANE
        p += FIRST_LANE(m);
#else
        while (is_alnum_dash((unsigned char)*p))
            p++;
#endif
        if (!IS_TCHAR(*p))
            return p;
        p++;
    }
    while (p < end && IS_TCHAR(*p))
        p++;
    return p;
}

void cel_http_limits_default(cel_http_limits *l)
{
    l->max_request_line = 8192;
    l->max_header_bytes = 65536;
    l->max_headers = 100;
}

static int lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* True if [p, p+n) equals lit (lowercase ASCII) ignoring ASCII case. */
static int ieq(const char *p, size_t n, const char *lit, size_t litlen)
{
    if (n != litlen)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != (unsigned char)lit[i])
            return 0;
    return 1;
}

#define IEQ(p, n, lit) ieq((p), (n), lit, sizeof(lit) - 1)

/* Case-insensitive compare against a literal of lower-case letters, digits
 * and '-' only (the header names and list tokens below), a word at a time:
 * bit 0x20 is ORed into exactly the bytes where the literal has a letter
 * (bit 0x40 set: only the letters among those characters), so a letter
 * matches either case and every other byte must match exactly. */
static inline int weq64(const char *p, const char *lit)
{
    uint64_t l = load64(lit);
    return (load64(p) | ((l >> 1) & (ONES * 0x20))) == l;
}

static inline int weq32(const char *p, const char *lit)
{
    uint32_t l = load32(lit);
    return (load32(p) | ((l >> 1) & 0x20202020u)) == l;
}

/* [p, p+n) equals lit (n == its length, from the caller) ignoring the case of
 * its letters.  Reads only [p, p+n): the last word overlaps the one before. */
static inline int weq(const char *p, const char *lit, size_t n)
{
    if (n >= 8) {
        for (size_t i = 8; i < n; i += 8)
            if (!weq64(p + i - 8, lit + i - 8))
                return 0;
        return weq64(p + n - 8, lit + n - 8);
    }
    if (n >= 4)
        return weq32(p, lit) && weq32(p + n - 4, lit + n - 4);
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)p[i]) != (unsigned char)lit[i])
            return 0;
    return 1;
}

/* IEQ for such literals (lit: a string literal of [a-z0-9-]). */
#define WEQ(p, n, lit) ((n) == sizeof(lit) - 1 && weq((p), lit, sizeof(lit) - 1))

/* Next element of a comma-separated list in [*p, end), with OWS trimmed;
 * *p becomes NULL after the last element.  Returns 0 when the list is
 * exhausted; an element may be empty. */
static int list_next(const char **p, const char *end, cel_slice *elem)
{
    const char *s = *p;
    if (!s)
        return 0;
    const char *comma = memchr(s, ',', (size_t)(end - s));
    const char *e = comma ? comma : end;
    *p = comma ? comma + 1 : NULL;
    while (s < e && IS_OWS(*s))
        s++;
    while (e > s && IS_OWS(e[-1]))
        e--;
    elem->p = s;
    elem->len = (size_t)(e - s);
    return 1;
}

int cel_header_list_has(const cel_slice *v, const char *tok, int prefix)
{
    const char *p = v->len ? v->p : NULL, *end = v->p + v->len;
    size_t tlen = strlen(tok);
    cel_slice e;
    while (list_next(&p, end, &e)) {
        size_t n = e.len;
        if (prefix)
            for (n = 0; n < e.len && e.p[n] != ';' && e.p[n] != ' ' && e.p[n] != '\t'; n++)
                ;
        if (ieq(e.p, n, tok, tlen))
            return 1;
    }
    return 0;
}

/* Content-Length value: a list of identical 1*DIGIT values (RFC 9110 8.6).
 * Merges into *cl / *have_cl; returns 0 or CEL_EBADCL. */
static int parse_content_length(const cel_slice *v, uint64_t *cl, int *have_cl)
{
    const char *p = v->p, *end = v->p + v->len;
    cel_slice e;
    /* the usual case, one value of at most 19 digits (cannot overflow): the
     * list below would see it as its only element */
    if (v->len && v->len <= 19) {
        uint64_t n = 0;
        size_t i = 0;
        for (; i < v->len; i++) {
            unsigned d = (unsigned char)v->p[i] - '0';
            if (d > 9)
                break;
            n = n * 10 + d;
        }
        if (i == v->len) {
            if (*have_cl && n != *cl)
                return CEL_EBADCL;
            *cl = n;
            *have_cl = 1;
            return 0;
        }
    }
    while (list_next(&p, end, &e)) {
        if (e.len == 0)
            return CEL_EBADCL;
        uint64_t n = 0;
        for (size_t i = 0; i < e.len; i++) {
            unsigned d = (unsigned char)e.p[i] - '0';
            if (d > 9 || n > (UINT64_MAX - d) / 10)
                return CEL_EBADCL;
            n = n * 10 + d;
        }
        if (*have_cl && n != *cl)
            return CEL_EBADCL;
        *cl = n;
        *have_cl = 1;
    }
    return 0;
}

/* Framing state accumulated over the header fields. */
typedef struct semantics {
    uint64_t cl;
    int have_cl, have_te, te_last_chunked, te_chunked_count, te_bad;
    int hosts, conn_close, conn_keep_alive, conn_upgrade, have_upgrade, expect;
} semantics;

/* Interpret one header field; returns 0 or a cel_err. */
static int header_semantics(const cel_header *h, semantics *s)
{
    const char *n = h->name.p;
    size_t nl = h->name.len;
    const char *p, *end = h->value.p + h->value.len;
    cel_slice e;

    switch (nl) {
    case 4:
        if (WEQ(n, nl, "host"))
            s->hosts++;
        break;
    case 6:
        if (WEQ(n, nl, "expect") && WEQ(h->value.p, h->value.len, "100-continue"))
            s->expect = 1;
        break;
    case 7:
        if (WEQ(n, nl, "upgrade"))
            s->have_upgrade = 1;
        break;
    case 10:
        if (!WEQ(n, nl, "connection"))
            break;
        /* a value that is one common token (values are OWS-trimmed, so the
         * list would see it as its only element) */
        if (WEQ(h->value.p, h->value.len, "keep-alive")) {
            s->conn_keep_alive = 1;
            break;
        }
        if (WEQ(h->value.p, h->value.len, "close")) {
            s->conn_close = 1;
            break;
        }
        p = h->value.p;
        while (list_next(&p, end, &e)) {
            if (WEQ(e.p, e.len, "close"))
                s->conn_close = 1;
            else if (WEQ(e.p, e.len, "keep-alive"))
                s->conn_keep_alive = 1;
            else if (WEQ(e.p, e.len, "upgrade"))
                s->conn_upgrade = 1;
        }
        break;
    case 14:
        if (WEQ(n, nl, "content-length"))
            return parse_content_length(&h->value, &s->cl, &s->have_cl);
        break;
    case 17:
        if (!WEQ(n, nl, "transfer-encoding"))
            break;
        /* Codings accumulate across fields as one list (RFC 9110 5.3).  Empty
         * elements are rejected rather than skipped: a lenient reading here
         * is exactly where front ends and back ends disagree. */
        s->have_te = 1;
        if (WEQ(h->value.p, h->value.len, "chunked")) {     /* the only coding */
            s->te_chunked_count++;
            s->te_last_chunked = 1;
            break;
        }
        p = h->value.p;
        while (list_next(&p, end, &e)) {
            if (e.len == 0) {
                s->te_bad = 1;
                s->te_last_chunked = 0;
            } else if (WEQ(e.p, e.len, "chunked")) {
                s->te_chunked_count++;
                s->te_last_chunked = 1;
            } else {
                s->te_last_chunked = 0;
            }
        }
        break;
    default:
        break;
    }
    return 0;
}

/* Running out of window: more input can still complete the section unless
 * the window (`full`) already spans the section's whole limit. */
#define RANOUT(toolong) return full ? (toolong) : CEL_EAGAIN

/* Parse "HTTP/d.d" CRLF at p (window end `end`).  On success stores the minor
 * version and returns the position after the LF; otherwise NULL with *err set
 * (CEL_EAGAIN meaning "ran out of window"). */
static const char *parse_version(const char *p, const char *end, int *minor, int *err)
{
    static const char pat[] = "HTTP/0.0\r\n";
    const char *start = p;
    /* the versions served, whole: one comparison of ten bytes */
    if (end - p >= 10 && (memcmp(p, "HTTP/1.1\r\n", 10) == 0 || memcmp(p, "HTTP/1.0\r\n", 10) == 0)) {
        *minor = p[7] - '0';
        return p + 10;
    }
    for (size_t i = 0; i < sizeof(pat) - 1; i++, p++) {
        if (p == end) {
            *err = CEL_EAGAIN;
            return NULL;
        }
        char c = *p;
        int ok = pat[i] == '0' ? (c >= '0' && c <= '9') : c == pat[i];
        if (ok)
            continue;
        if (i >= 8) {           /* well-formed version, bad line end */
            *err = CEL_EBADREQ;
            return NULL;
        }
        /* No "HTTP/d.d" here.  If a SP follows on this line, the target had
         * a space in it; otherwise the version is garbage or missing. */
        for (const char *q = start; q < end; q++) {
            if (*q == ' ') {
                *err = CEL_ETARGET;
                return NULL;
            }
            if (*q == '\r' || *q == '\n') {
                *err = CEL_EBADREQ;
                return NULL;
            }
        }
        *err = CEL_EAGAIN;
        return NULL;
    }
    if (start[5] != '1' || (start[7] != '0' && start[7] != '1')) {
        *err = CEL_EVERSION;
        return NULL;
    }
    *minor = start[7] - '0';
    return p;
}

/* Check the form of a request-target (RFC 9112 3.2): origin-form,
 * absolute-form with an http(s) scheme and an authority, or asterisk-form
 * with OPTIONS.  Authority-form (CONNECT) is not served. */
static int check_target(const char *t, size_t n, cel_slice method)
{
    if (t[0] == '/')
        return 0;
    if (t[0] == '*')
        return n == 1 && method.len == 7 && memcmp(method.p, "OPTIONS", 7) == 0
               ? 0 : CEL_ETARGET;
    size_t s;
    if (n >= 7 && IEQ(t, 4, "http") && memcmp(t + 4, "://", 3) == 0)
        s = 7;
    else if (n >= 8 && IEQ(t, 5, "https") && memcmp(t + 5, "://", 3) == 0)
        s = 8;
    else
        return CEL_ETARGET;
    if (s == n || t[s] == '/' || t[s] == '?')
        return CEL_ETARGET;                 /* empty authority */
    return 0;
}

/* limits may be NULL for the defaults.  Until success only req->headers[]
 * is written: on CEL_EAGAIN or an error req->num_headers still holds the
 * capacity, so the caller can simply call again with more bytes. */
long cel_http_parse_request(const char *buf, size_t len,
                            const cel_http_limits *limits,
                            cel_http_request *req)
{
    cel_http_limits defaults;
    if (!limits) {
        cel_http_limits_default(&defaults);
        limits = &defaults;
    }
    const char *buf_end = buf + len;

    /* ---- request line (leading empty lines count toward its limit) ---- */
    int full = len >= limits->max_request_line;
    const char *end = full ? buf + limits->max_request_line : buf_end;
    const char *p = buf;

    while (p < end && *p == '\r') {
        if (p + 1 == end)
            RANOUT(CEL_EURITOOLONG);
        if (p[1] != '\n')
            return CEL_EBADREQ;
        p += 2;
    }

    /* GET and POST whole (the window must hold the SP too, as on the
     * general path); any other method byte by byte */
    const char *m = p;
    if (end - p >= 4 && load32(p) == load32("GET ")) {
        p += 3;
    } else if (end - p >= 5 && load32(p) == load32("POST") && p[4] == ' ') {
        p += 4;
    } else {
        while (p < end && IS_TCHAR(*p))
            p++;
        if (p == end)
            RANOUT(CEL_EURITOOLONG);
        if (*p != ' ')
            return (*p == '\r' || *p == '\n') ? CEL_EBADREQ : CEL_EMETHOD;
        if (p == m)
            return CEL_EMETHOD;
    }
    cel_slice method = { m, (size_t)(p - m) };
    p++;

    const char *t = p, *q;
    p = skip_target(p, end, &q);
    if (p == end)
        RANOUT(CEL_EURITOOLONG);
    if (*p != ' ')
        return (*p == '\r' || *p == '\n') && p > t ? CEL_EBADREQ : CEL_ETARGET;
    if (p == t)
        return CEL_ETARGET;
    size_t tlen = (size_t)(p - t);
    p++;

    int minor = 0, err = 0;
    p = parse_version(p, end, &minor, &err);
    if (!p) {
        if (err == CEL_EAGAIN)
            RANOUT(CEL_EURITOOLONG);
        return err;
    }
    /* Target form is checked only once the line is known to be complete, so
     * a head split anywhere gives the same answer as the whole head. */
    err = check_target(t, tlen, method);
    if (err)
        return err;

    /* ---- header fields ---- */
    const char *hstart = p;
    full = (size_t)(buf_end - hstart) >= limits->max_header_bytes;
    end = full ? hstart + limits->max_header_bytes : buf_end;
    size_t cap = req->num_headers;
    size_t maxh = limits->max_headers < cap ? limits->max_headers : cap;
    size_t nh = 0;

    for (;;) {
        if (p == end)
            RANOUT(CEL_EHDRTOOLARGE);
        char c = *p;
        if (c == '\r') {
            if (p + 1 == end)
                RANOUT(CEL_EHDRTOOLARGE);
            if (p[1] != '\n')
                return CEL_EBADREQ;
            p += 2;
            break;
        }
        const char *name = p;
        p = skip_token(p, end);
        if (p == end)
            RANOUT(CEL_EHDRTOOLARGE);       /* (c, not a token byte, stops short of end) */
        if (*p != ':' || p == name) {
            if (c == ' ' || c == '\t')
                return CEL_EHDRVALUE;       /* obs-fold (or SP before first field) */
            return CEL_EBADREQ;             /* empty name, WS before ':', bad char, bare LF */
        }
        if (nh == maxh)
            return CEL_EHDRTOOLARGE;
        cel_header *h = &req->headers[nh];
        h->name.p = name;
        h->name.len = (size_t)(p - name);
        p++;

        while (p < end && IS_OWS(*p))
            p++;
        const char *v = p;
        p = skip_value(p, end);
        if (p == end)
            RANOUT(CEL_EHDRTOOLARGE);
        if (*p == '\r') {
            if (p + 1 == end)
                RANOUT(CEL_EHDRTOOLARGE);
            if (p[1] != '\n')
                return CEL_EHDRVALUE;       /* bare CR */
        } else {
            return *p == '\n' ? CEL_EBADREQ : CEL_EHDRVALUE;
        }
        const char *ve = p;
        while (ve > v && IS_OWS(ve[-1]))
            ve--;
        h->value.p = v;
        h->value.len = (size_t)(ve - v);
        nh++;
        p += 2;
    }

    /* ---- framing semantics ---- */
    semantics s;
    memset(&s, 0, sizeof(s));
    for (size_t i = 0; i < nh; i++) {
        err = header_semantics(&req->headers[i], &s);
        if (err)
            return err;
    }
    if (s.have_te && s.have_cl)
        return CEL_ECLTE;
    if (s.have_te && (minor == 0 || s.te_bad || !s.te_last_chunked || s.te_chunked_count != 1))
        return CEL_EBADTE;
    if (s.hosts > 1 || (minor == 1 && s.hosts == 0))
        return CEL_EBADREQ;

    req->method = method;
    req->target.p = t;
    req->target.len = tlen;
    req->path.p = t;
    req->path.len = q ? (size_t)(q - t) : tlen;
    req->query.p = q ? q + 1 : t + tlen;
    req->query.len = q ? tlen - req->path.len - 1 : 0;
    req->minor_version = minor;
    req->num_headers = nh;
    if (s.have_te) {
        req->body_kind = CEL_BODY_CHUNKED;
        req->content_length = 0;
    } else {
        req->body_kind = s.cl > 0 ? CEL_BODY_LENGTH : CEL_BODY_NONE;
        req->content_length = s.cl;
    }
    unsigned flags = 0;
    if (!s.conn_close && (minor == 1 || s.conn_keep_alive))
        flags |= CEL_REQ_KEEP_ALIVE;
    if (minor == 1 && s.expect)
        flags |= CEL_REQ_EXPECT_CONTINUE;
    if (s.conn_upgrade && s.have_upgrade)
        flags |= CEL_REQ_UPGRADE;
    if (s.hosts)
        flags |= CEL_REQ_HAS_HOST;
    req->flags = flags;
    return (long)(p - buf);
}
