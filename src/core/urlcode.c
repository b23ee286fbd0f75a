/* URL and cookie decoding (see urlcode.h for the contracts). */
#include "urlcode.h"

#include <string.h>

#include "errors.h"

int cel_url_hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* The byte at src[*i] decoded: consumes "%XX" or one byte. */
static unsigned char decode_one(const char *src, size_t n, size_t *i, int plus_space)
{
    unsigned char ch = (unsigned char)src[*i];
    int h, l;
    if (ch == '%' && n - *i >= 3 && (h = cel_url_hexval((unsigned char)src[*i + 1])) >= 0
        && (l = cel_url_hexval((unsigned char)src[*i + 2])) >= 0) {
        *i += 3;
        return (unsigned char)(h * 16 + l);
    }
    *i += 1;
    return (ch == '+' && plus_space) ? ' ' : ch;
}

size_t cel_url_decode(const char *src, size_t n, char *dst, int plus_space)
{
    size_t o = 0, i = 0;
    while (i < n)
        dst[o++] = (char)decode_one(src, n, &i, plus_space);
    return o;
}

size_t cel_url_decoded_len(const char *src, size_t n)
{
    size_t o = 0, i = 0;
    while (i < n) {
        decode_one(src, n, &i, 0);
        o++;
    }
    return o;
}

int cel_url_decoded_equals(const char *raw, size_t rn, const char *key, size_t klen,
                           int plus_space)
{
    size_t i = 0, k = 0;
    if (klen > rn)
        return 0;               /* decoding never lengthens */
    while (i < rn) {
        if (k == klen || decode_one(raw, rn, &i, plus_space) != (unsigned char)key[k])
            return 0;
        k++;
    }
    return k == klen;
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
        || c == '.' || c == '-' || c == '~';
}

size_t cel_url_encode(const char *src, size_t n, char *dst, int plus_space)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        if (unreserved(c)) {
            dst[o++] = (char)c;
        } else if (c == ' ' && plus_space) {
            dst[o++] = '+';
        } else {
            dst[o++] = '%';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    return o;
}

/* Number of continuation bytes after lead byte c, or -1 if c cannot start a
 * sequence (ASCII is handled by the callers). */
static int utf8_need(unsigned char c)
{
    if (c >= 0xC2 && c <= 0xDF)
        return 1;
    if (c >= 0xE0 && c <= 0xEF)
        return 2;
    if (c >= 0xF0 && c <= 0xF4)
        return 3;
    return -1;
}

/* Whether b may follow lead (pos = 1 for the first continuation byte): the
 * ranges of the Unicode "well-formed UTF-8" table, which rule out overlongs,
 * surrogates and code points above U+10FFFF. */
static int utf8_cont_ok(unsigned char lead, size_t pos, unsigned char b)
{
    if (pos == 1) {
        switch (lead) {
        case 0xE0: return b >= 0xA0 && b <= 0xBF;
        case 0xED: return b >= 0x80 && b <= 0x9F;
        case 0xF0: return b >= 0x90 && b <= 0xBF;
        case 0xF4: return b >= 0x80 && b <= 0x8F;
        default: break;
        }
    }
    return b >= 0x80 && b <= 0xBF;
}

int cel_url_utf8_valid(const void *s, size_t n)
{
    const unsigned char *p = s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int need = utf8_need(c);
        if (need < 0 || n - i - 1 < (size_t)need)
            return 0;
        for (int k = 1; k <= need; k++)
            if (!utf8_cont_ok(c, (size_t)k, p[i + (size_t)k]))
                return 0;
        i += (size_t)need + 1;
    }
    return 1;
}

/* Streaming UTF-8 decoder with CPython's errors='replace' behaviour, writing
 * UTF-8: valid sequences are copied, each maximal invalid subpart becomes
 * U+FFFD. */
typedef struct u8dec {
    unsigned char seq[4];
    size_t have;                /* bytes of the pending sequence */
    size_t need;                /* total length of the pending sequence */
} u8dec;

static size_t put_replacement(char *dst)
{
    dst[0] = (char)0xEF;
    dst[1] = (char)0xBF;
    dst[2] = (char)0xBD;
    return 3;
}

static size_t u8_flush(u8dec *d, char *dst)
{
    if (!d->have)
        return 0;
    d->have = 0;
    return put_replacement(dst);
}

static size_t u8_push(u8dec *d, unsigned char b, char *dst)
{
    size_t o = 0;
    if (d->have) {
        if (utf8_cont_ok(d->seq[0], d->have, b)) {
            d->seq[d->have++] = b;
            if (d->have == d->need) {
                memcpy(dst, d->seq, d->need);
                d->have = 0;
                return d->need;
            }
            return 0;
        }
        o = u8_flush(d, dst);   /* b starts afresh below */
    }
    if (b < 0x80) {
        dst[o++] = (char)b;
        return o;
    }
    int need = utf8_need(b);
    if (need < 0)
        return o + put_replacement(dst + o);
    d->seq[0] = b;
    d->have = 1;
    d->need = (size_t)need + 1;
    return o;
}

size_t cel_url_unquote_py(const char *src, size_t n, char *dst, int plus_space)
{
    u8dec d = { { 0 }, 0, 0 };
    size_t o = 0, i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)src[i];
        if (c >= 0x80) {
            /* a non-ASCII character of the latin-1 text ends the ASCII run
             * that unquote decodes as one unit */
            o += u8_flush(&d, dst + o);
            dst[o++] = (char)(0xC0 | (c >> 6));
            dst[o++] = (char)(0x80 | (c & 0x3F));
            i++;
            continue;
        }
        /* "%XX" only decodes when both digits are ASCII hex, so a run never
         * borrows a byte >= 0x80 */
        o += u8_push(&d, decode_one(src, n, &i, plus_space), dst + o);
    }
    return o + u8_flush(&d, dst + o);
}

int cel_url_parse_int(const char *s, size_t n, long long *out)
{
    size_t i = 0;
    int neg = 0;
    if (n && s[0] == '-') {
        neg = 1;
        i = 1;
    }
    size_t digits = n - i;
    if (digits == 0 || digits > 18 || (s[i] == '0' && (digits > 1 || neg)))
        return 0;
    long long v = 0;
    for (; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = neg ? -v : v;
    return 1;
}

void cel_url_query_init(cel_url_query_iter *it, const char *q, size_t len)
{
    it->q = q;
    it->len = len;
    it->pos = 0;
}

int cel_url_query_next(cel_url_query_iter *it, cel_url_pair *out)
{
    while (it->pos < it->len) {
        const char *s = it->q + it->pos;
        size_t rest = it->len - it->pos;
        const char *amp = memchr(s, '&', rest);
        size_t n = amp ? (size_t)(amp - s) : rest;
        it->pos += n + (amp ? 1 : 0);
        if (n == 0)
            continue;
        const char *eq = memchr(s, '=', n);
        out->key = s;
        out->key_len = eq ? (size_t)(eq - s) : n;
        out->value = eq ? eq + 1 : s + n;
        out->value_len = eq ? n - out->key_len - 1 : 0;
        out->has_eq = eq != NULL;
        return 1;
    }
    return 0;
}

int cel_url_query_lookup(const char *q, size_t qn, const char *key, size_t klen, char *buf,
                         size_t cap, size_t *vlen)
{
    cel_url_query_iter it;
    cel_url_pair p, last = { NULL, 0, NULL, 0, 0 };
    int found = 0;
    cel_url_query_init(&it, q, qn);
    while (cel_url_query_next(&it, &p)) {
        if (cel_url_decoded_equals(p.key, p.key_len, key, klen, 1)) {
            last = p;
            found = 1;
        }
    }
    if (!found)
        return 0;
    if (cel_url_decoded_len(last.value, last.value_len) > cap)
        return CEL_ENOSPC;
    *vlen = cel_url_decode(last.value, last.value_len, buf, 1);
    if (!cel_url_utf8_valid(buf, *vlen))
        return CEL_EUTF8;
    return 1;
}

/* Python's str.isspace() for a latin-1 character. */
static int py_space(unsigned char c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0;
}

static void strip(const char **p, size_t *n)
{
    while (*n && py_space((unsigned char)(*p)[0])) {
        (*p)++;
        (*n)--;
    }
    while (*n && py_space((unsigned char)(*p)[*n - 1]))
        (*n)--;
}

void cel_cookie_init(cel_cookie_iter *it, const char *header, size_t len)
{
    it->s = header;
    it->len = len;
    it->pos = 0;
}

int cel_cookie_next(cel_cookie_iter *it, cel_cookie *out)
{
    /* pos == len + 1 marks "done": "a;" has a final empty chunk, which is
     * skipped anyway, so stopping at len is equivalent */
    while (it->pos < it->len) {
        const char *s = it->s + it->pos;
        size_t rest = it->len - it->pos;
        const char *semi = memchr(s, ';', rest);
        size_t n = semi ? (size_t)(semi - s) : rest;
        it->pos += n + (semi ? 1 : 0);
        const char *eq = memchr(s, '=', n);
        if (eq) {
            out->key = s;
            out->key_len = (size_t)(eq - s);
            out->value = eq + 1;
            out->value_len = n - out->key_len - 1;
        } else {
            out->key = s;
            out->key_len = 0;
            out->value = s;
            out->value_len = n;
        }
        strip(&out->key, &out->key_len);
        strip(&out->value, &out->value_len);
        if (out->key_len || out->value_len)
            return 1;
    }
    return 0;
}

static int octal_at(const char *v, size_t n, size_t i)
{
    return n - i >= 4 && v[i] == '\\' && v[i + 1] >= '0' && v[i + 1] <= '3' && v[i + 2] >= '0'
        && v[i + 2] <= '7' && v[i + 3] >= '0' && v[i + 3] <= '7';
}

size_t cel_cookie_unquote(const char *v, size_t n, char *dst)
{
    if (n < 2 || v[0] != '"' || v[n - 1] != '"') {
        memmove(dst, v, n);
        return n;
    }
    size_t o = 0, i = 1, end = n - 1;
    /* _unquote takes the earlier of the next octal escape and the next
     * backslash-pair, the octal one on a tie; an escape always starts at a
     * backslash, so scanning backslashes in order is the same thing */
    while (i < end) {
        if (octal_at(v, end, i)) {
            dst[o++] = (char)((v[i + 1] - '0') * 64 + (v[i + 2] - '0') * 8 + (v[i + 3] - '0'));
            i += 4;
        } else if (v[i] == '\\' && i + 1 < end && v[i + 1] != '\n') {
            dst[o++] = v[i + 1];
            i += 2;
        } else {
            dst[o++] = v[i++];
        }
    }
    return o;
}

int cel_cookie_lookup(const char *header, size_t n, const char *name, size_t nlen, char *buf,
                      size_t cap, size_t *vlen)
{
    cel_cookie_iter it;
    cel_cookie c, last = { NULL, 0, NULL, 0 };
    int found = 0;
    cel_cookie_init(&it, header, n);
    while (cel_cookie_next(&it, &c)) {
        if (c.key_len == nlen && (nlen == 0 || memcmp(c.key, name, nlen) == 0)) {
            last = c;
            found = 1;
        }
    }
    if (!found)
        return 0;
    if (last.value_len > cap)
        return CEL_ENOSPC;
    *vlen = cel_cookie_unquote(last.value, last.value_len, buf);
    return 1;
}
