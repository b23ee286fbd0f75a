#include "json.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "errors.h"

/* Input bytes escaped per buffer reservation: a string longer than this is
 * written in pieces so its worst case (6 output bytes per input unit) never
 * has to be reserved at once. */
#define STRING_CHUNK 4096u

/* ---- nesting state ---- */

void cel_json_writer_init(cel_json_writer *w, cel_buf *out, uint32_t max_depth)
{
    memset(w, 0, sizeof(*w));
    w->out = out;
    if (max_depth == 0)
        max_depth = CEL_JSON_DEFAULT_DEPTH;
    w->max_depth = max_depth < CEL_JSON_MAX_DEPTH ? max_depth : CEL_JSON_MAX_DEPTH;
}

void cel_json_writer_free(cel_json_writer *w)
{
    if (!w)
        return;
    cel_free(w->spill);
    w->spill = NULL;
    w->spill_cap = 0;
}

int cel_json_complete(const cel_json_writer *w)
{
    return w->done;
}

/* The byte holding the bit of an open level (its spill byte exists). */
static unsigned char *level_byte(const cel_json_writer *w, uint32_t level)
{
    if (level < CEL_JSON_INLINE_DEPTH)
        return (unsigned char *)&w->stack[level >> 3];
    return &w->spill[(level - CEL_JSON_INLINE_DEPTH) >> 3];
}

static int top_is_object(const cel_json_writer *w)
{
    uint32_t level = w->depth - 1;
    return (*level_byte(w, level) >> (level & 7)) & 1;
}

/* Whether a key (is_key) or a value may come next; *sep receives the byte
 * to write before it (0 for none).  Inline: callers pass is_key as a
 * constant, so each gets only its own branch. */
static inline int check_next(const cel_json_writer *w, int is_key, char *sep)
{
    if (w->in_object) {
        if (is_key ? w->after_key : !w->after_key)
            return CEL_ESTATE;
        *sep = is_key ? (w->need_comma ? ',' : 0) : ':';
        return 0;
    }
    if (is_key || w->done)
        return CEL_ESTATE;      /* (done is only ever set at depth 0) */
    *sep = w->need_comma ? ',' : 0;
    return 0;
}

static void value_written(cel_json_writer *w)
{
    if (w->depth == 0) {
        w->done = 1;
    } else {
        w->need_comma = 1;
        w->after_key = 0;
    }
}

/* Write sep (if any) and n bytes as one complete token. */
static int put_token(cel_json_writer *w, char sep, const char *s, size_t n)
{
    cel_buf *b = w->out;
    if (cel_buf_reserve(b, n + 1))
        return CEL_ENOMEM;
    char *start = cel_buf_tail(b), *o = start;
    if (sep)
        *o++ = sep;
    if (n == 1) {               /* brackets and quotes: no memcpy call */
        *o++ = *s;
    } else {
        memcpy(o, s, n);
        o += n;
    }
    b->len += (size_t)(o - start);
    return 0;
}

static int begin(cel_json_writer *w, int object)
{
    char sep;
    int rc = check_next(w, 0, &sep);
    if (rc)
        return rc;
    if (w->depth >= w->max_depth)
        return CEL_ESTATE;
    uint32_t level = w->depth;
    if (level >= CEL_JSON_INLINE_DEPTH
        && (level - CEL_JSON_INLINE_DEPTH) / 8 >= w->spill_cap) {
        size_t cap = w->spill_cap ? w->spill_cap * 2 : 16;
        unsigned char *p = cel_realloc(w->spill, cap);
        if (!p)
            return CEL_ENOMEM;
        w->spill = p;
        w->spill_cap = cap;
    }
    rc = put_token(w, sep, object ? "{" : "[", 1);
    if (rc)
        return rc;
    unsigned char *byte = level_byte(w, level);
    unsigned char bit = (unsigned char)(1u << (level & 7));
    *byte = object ? (unsigned char)(*byte | bit) : (unsigned char)(*byte & ~bit);
    w->depth++;
    w->in_object = (unsigned char)object;
    w->need_comma = 0;
    w->after_key = 0;
    return 0;
}

static int end(cel_json_writer *w, int object)
{
    if (w->depth == 0 || w->in_object != object || w->after_key)
        return CEL_ESTATE;
    int rc = put_token(w, 0, object ? "}" : "]", 1);
    if (rc)
        return rc;
    w->depth--;
    w->in_object = w->depth ? (unsigned char)top_is_object(w) : 0;
    value_written(w);
    return 0;
}

int cel_json_begin_object(cel_json_writer *w) { return begin(w, 1); }
int cel_json_end_object(cel_json_writer *w) { return end(w, 1); }
int cel_json_begin_array(cel_json_writer *w) { return begin(w, 0); }
int cel_json_end_array(cel_json_writer *w) { return end(w, 0); }

/* ---- strings ---- */

/* For bytes below 0x80: 0 = copy, 'u' = \u00XX, else the letter after '\'. */
static const unsigned char escape_of[128] = {
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'b', 't', 'n', 'u', 'f', 'r', 'u', 'u',
    'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u', 'u',
    0, 0, '"', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '\\', 0, 0, 0,
};

static char *put_escape(char *o, unsigned c)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char e = escape_of[c];
    *o++ = '\\';
    if (e != 'u') {
        *o++ = (char)e;
        return o;
    }
    *o++ = 'u';
    *o++ = '0';
    *o++ = '0';
    *o++ = hex[c >> 4];
    *o++ = hex[c & 15];
    return o;
}

/* Escaped UTF-8 bytes, copied through in runs. */
static int put_utf8_body(cel_buf *b, const unsigned char *s, size_t n)
{
    while (n) {
        size_t chunk = n < STRING_CHUNK ? n : STRING_CHUNK;
        if (cel_buf_reserve(b, chunk * 6))
            return CEL_ENOMEM;
        char *start = cel_buf_tail(b), *o = start;
        const unsigned char *stop = s + chunk;
        while (s < stop) {
            const unsigned char *run = s;
            while (s < stop && (*s >= 0x80 || !escape_of[*s]))
                s++;
            memcpy(o, run, (size_t)(s - run));
            o += s - run;
            if (s < stop)
                o = put_escape(o, *s++);
        }
        b->len += (size_t)(o - start);
        n -= chunk;
    }
    return 0;
}

/* Code units of one width encoded to UTF-8 (surrogates in their 3-byte
 * form); adds the number of surrogates to *surrogates.  Code points above
 * U+10FFFF are CEL_EINVAL. */
#define DEFINE_PUT_UCS(name, unit_t)                                          \
static int name(cel_buf *b, const unit_t *s, size_t n, size_t *surrogates)    \
{                                                                             \
    while (n) {                                                               \
        size_t chunk = n < STRING_CHUNK ? n : STRING_CHUNK;                   \
        if (cel_buf_reserve(b, chunk * 6))                                    \
            return CEL_ENOMEM;                                                \
        char *start = cel_buf_tail(b), *o = start;                            \
        const unit_t *stop = s + chunk;                                       \
        for (; s < stop; s++) {                                               \
            uint32_t c = *s;                                                  \
            if (c < 0x80) {                                                   \
                if (escape_of[c])                                             \
                    o = put_escape(o, c);                                     \
                else                                                          \
                    *o++ = (char)c;                                           \
            } else if (c < 0x800) {                                           \
                *o++ = (char)(0xC0 | (c >> 6));                               \
                *o++ = (char)(0x80 | (c & 0x3F));                             \
            } else if (c < 0x10000) {                                         \
                if (c >= 0xD800 && c <= 0xDFFF)                               \
                    ++*surrogates;                                            \
                *o++ = (char)(0xE0 | (c >> 12));                              \
                *o++ = (char)(0x80 | ((c >> 6) & 0x3F));                      \
                *o++ = (char)(0x80 | (c & 0x3F));                             \
            } else if (c <= 0x10FFFF) {                                       \
                *o++ = (char)(0xF0 | (c >> 18));                              \
                *o++ = (char)(0x80 | ((c >> 12) & 0x3F));                     \
                *o++ = (char)(0x80 | ((c >> 6) & 0x3F));                      \
                *o++ = (char)(0x80 | (c & 0x3F));                             \
            } else {                                                          \
                return CEL_EINVAL;                                            \
            }                                                                 \
        }                                                                     \
        b->len += (size_t)(o - start);                                        \
        n -= chunk;                                                           \
    }                                                                         \
    return 0;                                                                 \
}

DEFINE_PUT_UCS(put_ucs1_body, uint8_t)
DEFINE_PUT_UCS(put_ucs2_body, uint16_t)
DEFINE_PUT_UCS(put_ucs4_body, uint32_t)
#undef DEFINE_PUT_UCS

/* One quoted string in key or value position; width 0 means UTF-8.
 * Returns the surrogate count or a negative cel_err (buffer rolled back). */
/* A string needing no escapes or validation: one reserve, one copy.
 * Returns 1 (not such a string: nothing done), else put_string's result. */
static int put_verbatim(cel_json_writer *w, int is_key, const char *s, size_t n)
{
    if (n > STRING_CHUNK || !cel_json_verbatim(s, n))
        return 1;
    char sep;
    int rc = check_next(w, is_key, &sep);
    if (rc)
        return rc;
    cel_buf *b = w->out;
    if (cel_buf_reserve(b, n + 3))
        return CEL_ENOMEM;
    char *t = cel_buf_tail(b), *o = t;
    if (sep)
        *o++ = sep;
    *o++ = '"';
    cel_json_copy_short(o, s, n);
    o[n] = '"';
    b->len += (size_t)(o + n + 1 - t);
    if (is_key)
        w->after_key = 1;
    else
        value_written(w);
    return 0;
}

static int put_string(cel_json_writer *w, int is_key, const void *s, size_t n, int width)
{
    char sep;
    int rc = check_next(w, is_key, &sep);
    if (rc)
        return rc;
    cel_buf *b = w->out;
    size_t mark = b->len;
    size_t surrogates = 0;
    /* Room for a short string, its quotes and separator at once: the body
     * writers then never grow the buffer and the closing quote needs no
     * check (one reserve per string). */
    int short_str = n <= STRING_CHUNK;
    if (short_str) {
        if (cel_buf_reserve(b, n * 6 + 3))
            return CEL_ENOMEM;
        char *start = cel_buf_tail(b), *o = start;
        if (sep)
            *o++ = sep;
        *o++ = '"';
        b->len += (size_t)(o - start);
    } else {
        rc = put_token(w, sep, "\"", 1);
    }
    if (rc == 0) {
        switch (width) {
        case 0: rc = put_utf8_body(b, s, n); break;
        case 1: rc = put_ucs1_body(b, s, n, &surrogates); break;
        case 2: rc = put_ucs2_body(b, s, n, &surrogates); break;
        default: rc = put_ucs4_body(b, s, n, &surrogates); break;
        }
    }
    if (rc == 0 && short_str) {
        *cel_buf_tail(b) = '"';
        b->len++;
    } else if (rc == 0) {
        rc = put_token(w, 0, "\"", 1);
    }
    if (rc) {
        b->len = mark;
        return rc;
    }
    if (is_key)
        w->after_key = 1;
    else
        value_written(w);
    return surrogates > (size_t)INT32_MAX ? INT32_MAX : (int)surrogates;
}

int cel_json_key(cel_json_writer *w, const char *s, size_t n)
{
    int rc = put_verbatim(w, 1, s, n);
    return rc != 1 ? rc : put_string(w, 1, s, n, 0);
}

int cel_json_string(cel_json_writer *w, const char *s, size_t n)
{
    int rc = put_verbatim(w, 0, s, n);
    return rc != 1 ? rc : put_string(w, 0, s, n, 0);
}

int cel_json_key_ucs(cel_json_writer *w, const void *units, size_t n, int width)
{
    if (width != 1 && width != 2 && width != 4)
        return CEL_EINVAL;
    return put_string(w, 1, units, n, width);
}

int cel_json_string_ucs(cel_json_writer *w, const void *units, size_t n, int width)
{
    if (width != 1 && width != 2 && width != 4)
        return CEL_EINVAL;
    return put_string(w, 0, units, n, width);
}

/* ---- scalars ---- */

static int put_value(cel_json_writer *w, const char *s, size_t n)
{
    char sep;
    int rc = check_next(w, 0, &sep);
    if (rc == 0)
        rc = put_token(w, sep, s, n);
    if (rc == 0)
        value_written(w);
    return rc;
}

/* Decimal digits of v ending at end; returns the first. */
static char *format_u64(char *end, uint64_t v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

int cel_json_uint64(cel_json_writer *w, uint64_t v)
{
    char tmp[20];
    char *p = format_u64(tmp + sizeof(tmp), v);
    return put_value(w, p, (size_t)(tmp + sizeof(tmp) - p));
}

int cel_json_int64(cel_json_writer *w, int64_t v)
{
    char tmp[21];
    uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    char *p = format_u64(tmp + sizeof(tmp), mag);
    if (v < 0)
        *--p = '-';
    return put_value(w, p, (size_t)(tmp + sizeof(tmp) - p));
}

size_t cel_json_format_int64(int64_t v, char *out)
{
    char tmp[CEL_JSON_INT64_MAX];
    uint64_t mag = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    char *p = format_u64(tmp + sizeof(tmp), mag);
    if (v < 0)
        *--p = '-';
    size_t n = (size_t)(tmp + sizeof(tmp) - p);
    memcpy(out, p, n);
    return n;
}

int cel_json_bigint(cel_json_writer *w, const char *digits, size_t n)
{
    size_t i = n && digits[0] == '-';
    if (i == n || (digits[i] == '0' && n - i > 1))
        return CEL_EINVAL;
    for (size_t j = i; j < n; j++)
        if (digits[j] < '0' || digits[j] > '9')
            return CEL_EINVAL;
    return put_value(w, digits, n);
}

int cel_json_bool(cel_json_writer *w, int v)
{
    return v ? put_value(w, "true", 4) : put_value(w, "false", 5);
}

int cel_json_null(cel_json_writer *w)
{
    return put_value(w, "null", 4);
}

int cel_json_raw(cel_json_writer *w, const char *s, size_t n)
{
    return put_value(w, s, n);
}

int cel_json_double(cel_json_writer *w, double v)
{
    char tmp[CEL_JSON_DOUBLE_MAX];
    int n = cel_json_format_double(v, tmp);
    if (n < 0)
        return n;
    return put_value(w, tmp, (size_t)n);
}

/* ---- doubles: Python's repr(float) ---- */

/* Significant digits of a positive finite double and the decimal point
 * position: v ~= 0.d1d2...dn * 10^decpt. */
typedef struct decimal {
    char d[24];
    int n;
    int decpt;
} decimal;

/* v (> 0) correctly rounded to prec significant digits.  snprintf's "%e"
 * output is parsed leniently so a locale's radix character does not matter. */
static void round_to(double v, int prec, decimal *out)
{
    char s[48];
    snprintf(s, sizeof(s), "%.*e", prec - 1, v);
    const char *p = s;
    out->n = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            out->d[out->n++] = *p;
    out->decpt = (int)strtol(p + 1, NULL, 10) + 1;
}

/* The double nearest to the decimal.  The text is built without a radix
 * character ("ddde-N") so strtod's locale does not matter either. */
static double read_decimal(const decimal *x)
{
    char s[48];
    memcpy(s, x->d, (size_t)x->n);
    snprintf(s + x->n, sizeof(s) - (size_t)x->n, "e%d", x->decpt - x->n);
    return strtod(s, NULL);
}

static void strip_zeros(decimal *x)
{
    while (x->n > 1 && x->d[x->n - 1] == '0')
        x->n--;
}

/* x moved one unit in its last digit up (dir > 0) or down, carrying. */
static void step_last(decimal *x, int dir)
{
    int i = x->n - 1;
    if (dir > 0) {
        while (i >= 0 && x->d[i] == '9')
            x->d[i--] = '0';
        if (i >= 0) {
            x->d[i]++;
        } else {                        /* 99..9 -> 100..0, one place up */
            x->d[0] = '1';
            x->decpt++;
        }
    } else {
        while (i >= 0 && x->d[i] == '0')
            x->d[i--] = '9';
        x->d[i]--;                      /* the leading digit is never 0 */
        if (x->d[0] == '0') {           /* 100..0 -> 099..9: drop the 0 */
            memmove(x->d, x->d + 1, (size_t)x->n - 1);
            x->d[x->n - 1] = '9';
            x->decpt--;
        }
    }
}

/* Powers of ten that are exact doubles. */
static const double pow10_exact[23] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

static void set_digits(decimal *x, uint64_t r, int e);

/* Digits of v (1e-7 <= v < 1e15, not integral) when at most 15 of them read
 * back, found without printf: the nearest r / 10^k with the fewest k.  The
 * check r / 10^k == v is exact (r and 10^k are exact doubles and IEEE
 * division rounds correctly, as strtod does); a wrong r from v * 10^k's
 * rounding is possible only near a half, where no candidate of that length
 * can read back.  Returns 0 when the shortest digits number 16 or 17. */
static int short_decimal(double v, decimal *x)
{
    for (int k = 1; k <= 22; k++) {
        double m = v * pow10_exact[k];
        if (m >= 1e15)
            return 0;
        double r = (double)(uint64_t)(m + 0.5);
        if (r != 0 && r / pow10_exact[k] == v) {
            set_digits(x, (uint64_t)r, -k);
            return 1;
        }
    }
    return 0;
}

/* Shortest digits that read back as v (> 0, finite, not integral below
 * 1e16), nearest to v among equally short ones: what David Gay's dtoa mode 0
 * (Python's repr) gives.
 *
 * For a normal double an ulp is at most 2^-52 of it, while 15-digit decimals
 * are at least 10^-15 of it apart, so at most one decimal of 15 or fewer
 * digits reads back and it is v rounded to that many digits; v rounded to
 * 15 digits, trailing zeros dropped, is therefore the answer whenever one
 * that short exists.  17 digits always suffice (half their spacing is below
 * half the narrower ulp).  At 16 the nearest candidate can miss where the one
 * on the other side of v reads back: at powers of two the gap below v is
 * half the gap above, so both neighbours are tried.  Subnormals have a fixed
 * ulp and a symmetric interval, so the nearest candidate of each length is
 * tried from 1 digit up. */
static void shortest(double v, decimal *x)
{
    if (v < DBL_MIN) {
        for (int prec = 1; prec < 17; prec++) {
            round_to(v, prec, x);
            if (read_decimal(x) == v)
                goto found;
        }
        round_to(v, 17, x);
        goto found;
    }
    if (v >= 1e-7 && v < 1e15) {
        if (short_decimal(v, x))
            return;
    } else {
        round_to(v, 15, x);
        if (read_decimal(x) == v)
            goto found;
    }
    round_to(v, 16, x);
    double back = read_decimal(x);
    if (back == v)
        goto found;
    decimal other = *x;
    step_last(&other, back < v ? 1 : -1);
    if (read_decimal(&other) == v) {
        *x = other;
        goto found;
    }
    round_to(v, 17, x);
found:
    strip_zeros(x);
}

/* x = r * 10^e, r > 0, trailing zeros dropped. */
static void set_digits(decimal *x, uint64_t r, int e)
{
    char tmp[20];
    char *p = format_u64(tmp + sizeof(tmp), r);
    x->n = (int)(tmp + sizeof(tmp) - p);
    x->decpt = x->n + e;
    memcpy(x->d, p, (size_t)x->n);
    strip_zeros(x);
}

int cel_json_format_double(double v, char *out)
{
    if (!isfinite(v))
        return CEL_EINVAL;
    char *o = out;
    if (signbit(v)) {
        *o++ = '-';
        v = -v;
    }
    decimal x;
    if (v < 1e16 && v == (double)(uint64_t)v) {
        /* Integral and exact: its digits are the shortest that read back
         * (doubles below 1e16 are at most 2 apart and even above 2^53). */
        if (v == 0) {
            x.d[0] = '0';
            x.n = x.decpt = 1;
        } else {
            set_digits(&x, (uint64_t)v, 0);
        }
    } else {
        shortest(v, &x);
    }
    if (x.decpt <= -4 || x.decpt > 16) {
        int e = x.decpt - 1;
        *o++ = x.d[0];
        if (x.n > 1) {
            *o++ = '.';
            memcpy(o, x.d + 1, (size_t)x.n - 1);
            o += x.n - 1;
        }
        *o++ = 'e';
        *o++ = e < 0 ? '-' : '+';
        if (e < 0)
            e = -e;
        if (e >= 100)
            *o++ = (char)('0' + e / 100);
        *o++ = (char)('0' + e / 10 % 10);
        *o++ = (char)('0' + e % 10);
    } else if (x.decpt <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = x.decpt; i < 0; i++)
            *o++ = '0';
        memcpy(o, x.d, (size_t)x.n);
        o += x.n;
    } else if (x.decpt >= x.n) {
        memcpy(o, x.d, (size_t)x.n);
        o += x.n;
        for (int i = x.n; i < x.decpt; i++)
            *o++ = '0';
        *o++ = '.';
        *o++ = '0';
    } else {
        memcpy(o, x.d, (size_t)x.decpt);
        o += x.decpt;
        *o++ = '.';
        memcpy(o, x.d + x.decpt, (size_t)(x.n - x.decpt));
        o += x.n - x.decpt;
    }
    *o = '\0';
    return (int)(o - out);
}
