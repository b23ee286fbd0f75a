/* libFuzzer driver for the JSON writer.
 *
 * The input is read as a program: each byte picks the next value (null,
 * bool, integers, a double from 8 raw bytes, a UTF-8 or UCS string, big
 * integer digits, an array or object of some length) and the payload bytes
 * follow.  The driver writes the tree through the writer and also calls it
 * wrongly on purpose (keys in arrays, values where a key is due, containers
 * past the depth limit, NaN, allocation failures), requiring the documented
 * error and an unchanged buffer each time.  Every scalar written is recorded;
 * a small validating scanner then walks the output, requires strict JSON in
 * the writer's exact form (no whitespace, Python's escapes, Python repr
 * layout for doubles), and compares each scalar with the record: strings
 * unescape to their input, integers parse back, doubles strtod back to the
 * same bits and are no longer than needed.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "buf.h"
#include "errors.h"
#include "json.h"

#define REQUIRE(cond) do { if (!(cond)) abort(); } while (0)

/* ---- input ---- */

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static uint8_t take(reader *r)
{
    if (!r->n)
        return 0;
    r->n--;
    return *r->p++;
}

static uint64_t take64(reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | take(r);
    return v;
}

/* ---- record of the scalars written, in document order ---- */

enum kind { K_NULL, K_TRUE, K_FALSE, K_I64, K_U64, K_DBL, K_STR, K_BIG };

typedef struct token {
    enum kind kind;
    int is_key;
    union {
        int64_t i;
        uint64_t u;
        double d;
    } v;
    size_t off, len;            /* K_STR/K_BIG: expected bytes in the arena */
} token;

typedef struct state {
    reader in;
    cel_buf out;
    cel_json_writer w;
    token *toks;
    size_t ntoks, captoks;
    char *arena;
    size_t arena_len, arena_cap;
    uint32_t max_depth;
} state;

static token *push_tok(state *s, enum kind k, int is_key)
{
    if (s->ntoks == s->captoks) {
        s->captoks = s->captoks ? s->captoks * 2 : 64;
        s->toks = realloc(s->toks, s->captoks * sizeof(*s->toks));
        REQUIRE(s->toks);
    }
    token *t = &s->toks[s->ntoks++];
    memset(t, 0, sizeof(*t));
    t->kind = k;
    t->is_key = is_key;
    return t;
}

static char *arena_grow(state *s, size_t n)
{
    if (!s->arena || s->arena_len + n > s->arena_cap) {
        while (s->arena_len + n > s->arena_cap)
            s->arena_cap = s->arena_cap ? s->arena_cap * 2 : 4096;
        s->arena = realloc(s->arena, s->arena_cap);
        REQUIRE(s->arena);
    }
    char *p = s->arena + s->arena_len;
    s->arena_len += n;
    return p;
}

/* ---- writing, with deliberate misuse ---- */

/* A call that must fail with `want` and leave the output unchanged. */
#define MUST_FAIL(s, call, want)                                      \
    do {                                                              \
        size_t len_ = (s)->out.len;                                   \
        REQUIRE((call) == (want));                                    \
        REQUIRE((s)->out.len == len_);                                \
    } while (0)

/* Independent UTF-8 encoder for code units (surrogates as 3 bytes). */
static size_t utf8_of(uint32_t c, char *o)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xC0 | c >> 6);
        o[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | c >> 12);
        o[1] = (char)(0x80 | (c >> 6 & 0x3F));
        o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | c >> 18);
    o[1] = (char)(0x80 | (c >> 12 & 0x3F));
    o[2] = (char)(0x80 | (c >> 6 & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* A string from the input, as key or value, UTF-8 or code units; sometimes
 * with allocation failure armed (then retried unarmed). */
static void write_string(state *s, int is_key)
{
    uint8_t op = take(&s->in);
    size_t n = take(&s->in);
    if (op & 0x80)
        n = n * 37 + take(&s->in);          /* long strings cross the writer's chunks */
    int fail = (op & 0x40) != 0;
    int width = (op & 3) == 3 ? 4 : (op & 3);   /* 0 = UTF-8 */
    uint8_t *units = malloc(n * 4 + 1);
    REQUIRE(units);
    size_t nbytes = width ? n * (size_t)width : n;
    for (size_t i = 0; i < nbytes; i++)
        units[i] = take(&s->in);
    token *t = push_tok(s, K_STR, is_key);
    t->off = s->arena_len;
    size_t surrogates = 0;
    if (width == 0) {
        memcpy(arena_grow(s, n), units, n);
    } else {
        for (size_t i = 0; i < n; i++) {
            uint32_t c;
            if (width == 1) {
                c = units[i];
            } else if (width == 2) {
                uint16_t u;
                memcpy(&u, units + 2 * i, 2);
                c = u;
            } else {
                uint32_t u;
                memcpy(&u, units + 4 * i, 4);
                c = u % 0x110000;           /* keep code points valid */
                memcpy(units + 4 * i, &c, 4);
            }
            surrogates += c >= 0xD800 && c <= 0xDFFF;
            char tmp[4];
            size_t k = utf8_of(c, tmp);
            memcpy(arena_grow(s, k), tmp, k);
        }
    }
    t = &s->toks[s->ntoks - 1];
    t->len = s->arena_len - t->off;
    for (;;) {
        size_t len = s->out.len;
        if (fail)
            cel_alloc_fail_after(1);
        int rc = width == 0
            ? (is_key ? cel_json_key(&s->w, (const char *)units, n)
                      : cel_json_string(&s->w, (const char *)units, n))
            : (is_key ? cel_json_key_ucs(&s->w, units, n, width)
                      : cel_json_string_ucs(&s->w, units, n, width));
        cel_alloc_fail_after(0);
        if (rc == CEL_ENOMEM && fail) {
            REQUIRE(s->out.len == len);
            fail = 0;
            continue;
        }
        REQUIRE(rc >= 0 && (size_t)rc == surrogates);
        break;
    }
    free(units);
}

static void write_value(state *s);

static void write_double(state *s)
{
    uint64_t bits = take64(&s->in);
    double d;
    memcpy(&d, &bits, sizeof(d));
    if (!isfinite(d)) {
        MUST_FAIL(s, cel_json_double(&s->w, d), CEL_EINVAL);
        push_tok(s, K_NULL, 0);
        REQUIRE(cel_json_null(&s->w) == 0);
        return;
    }
    push_tok(s, K_DBL, 0)->v.d = d;
    REQUIRE(cel_json_double(&s->w, d) == 0);
}

static void write_bigint(state *s)
{
    uint8_t op = take(&s->in);
    size_t n = (size_t)(op & 63) + 1;
    char digits[70];
    size_t k = 0;
    if (op & 64)
        digits[k++] = '-';
    for (size_t i = 0; i < n; i++)
        digits[k++] = (char)('0' + take(&s->in) % 10);
    int valid = !(digits[k - n] == '0' && n > 1);
    if (op & 128 && n > 1) {                /* a stray non-digit */
        digits[k - 1] = 'x';
        valid = 0;
    }
    if (!valid) {
        MUST_FAIL(s, cel_json_bigint(&s->w, digits, k), CEL_EINVAL);
        digits[k - n] = '7';
        if (digits[k - 1] == 'x')
            digits[k - 1] = '1';
    }
    token *t = push_tok(s, K_BIG, 0);
    t->off = s->arena_len;
    t->len = k;
    memcpy(arena_grow(s, k), digits, k);
    REQUIRE(cel_json_bigint(&s->w, digits, k) == 0);
}

static void write_container(state *s, int object)
{
    size_t count = take(&s->in) % 9;
    int rc = object ? cel_json_begin_object(&s->w) : cel_json_begin_array(&s->w);
    if (s->w.depth >= s->max_depth && rc == CEL_ESTATE) {
        push_tok(s, K_NULL, 0);
        REQUIRE(cel_json_null(&s->w) == 0);
        return;
    }
    REQUIRE(rc == 0);
    for (size_t i = 0; i < count && s->in.n; i++) {
        if (object) {
            MUST_FAIL(s, cel_json_null(&s->w), CEL_ESTATE);
            MUST_FAIL(s, cel_json_end_array(&s->w), CEL_ESTATE);
            write_string(s, 1);
            MUST_FAIL(s, cel_json_key(&s->w, "k", 1), CEL_ESTATE);
            MUST_FAIL(s, cel_json_end_object(&s->w), CEL_ESTATE);
        } else {
            MUST_FAIL(s, cel_json_key(&s->w, "k", 1), CEL_ESTATE);
            MUST_FAIL(s, cel_json_end_object(&s->w), CEL_ESTATE);
        }
        write_value(s);
    }
    REQUIRE((object ? cel_json_end_object(&s->w) : cel_json_end_array(&s->w)) == 0);
}

static void write_value(state *s)
{
    uint8_t op = take(&s->in);
    switch (op % 10) {
    case 0: push_tok(s, K_NULL, 0); REQUIRE(cel_json_null(&s->w) == 0); break;
    case 1: push_tok(s, op & 16 ? K_TRUE : K_FALSE, 0);
            REQUIRE(cel_json_bool(&s->w, op & 16) == 0); break;
    case 2: {
        int64_t v = (int64_t)take64(&s->in);
        push_tok(s, K_I64, 0)->v.i = v;
        REQUIRE(cel_json_int64(&s->w, v) == 0);
        break;
    }
    case 3: {
        uint64_t v = take64(&s->in);
        push_tok(s, K_U64, 0)->v.u = v;
        REQUIRE(cel_json_uint64(&s->w, v) == 0);
        break;
    }
    case 4: case 5: write_double(s); break;
    case 6: write_string(s, 0); break;
    case 7: write_bigint(s); break;
    case 8: write_container(s, 0); break;
    default: write_container(s, 1); break;
    }
}

/* ---- validating scanner ---- */

typedef struct scanner {
    const char *p, *end;
    const state *s;
    size_t next;                /* next record to match */
} scanner;

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static const token *next_tok(scanner *sc)
{
    REQUIRE(sc->next < sc->s->ntoks);
    return &sc->s->toks[sc->next++];
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    abort();                    /* upper case or not hex: not Python's form */
}

static void scan_string(scanner *sc, int is_key)
{
    const token *t = next_tok(sc);
    REQUIRE(t->kind == K_STR && t->is_key == is_key);
    const char *want = sc->s->arena + t->off;
    size_t got = 0;
    REQUIRE(sc->p < sc->end && *sc->p++ == '"');
    for (;;) {
        REQUIRE(sc->p < sc->end);
        unsigned char c = (unsigned char)*sc->p++;
        if (c == '"')
            break;
        REQUIRE(c >= 0x20);
        if (c == '\\') {
            REQUIRE(sc->p < sc->end);
            char e = *sc->p++;
            switch (e) {
            case '"': c = '"'; break;
            case '\\': c = '\\'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u':
                REQUIRE(sc->end - sc->p >= 4 && sc->p[0] == '0' && sc->p[1] == '0');
                c = (unsigned char)(hexval(sc->p[2]) << 4 | hexval(sc->p[3]));
                sc->p += 4;
                /* Only control bytes without a short escape use \u00XX. */
                REQUIRE(c < 0x20 && c != '\b' && c != '\f' && c != '\n' && c != '\r'
                        && c != '\t');
                break;
            default:
                abort();
            }
        }
        REQUIRE(got < t->len && (unsigned char)want[got] == c);
        got++;
    }
    REQUIRE(got == t->len);
}

/* The double's text must have Python repr's layout, read back to the same
 * bits, and have no digit to spare. */
static void check_double(const char *p, size_t n, double v)
{
    char text[64];
    REQUIRE(n < sizeof(text));
    memcpy(text, p, n);
    text[n] = '\0';
    double back = strtod(text, NULL);
    REQUIRE(memcmp(&back, &v, sizeof(v)) == 0);
    const char *e = memchr(text, 'e', n);
    double a = fabs(v);
    if (a == 0 || (a >= 1e-4 && a < 1e16)) {
        REQUIRE(!e && memchr(text, '.', n));
    } else {
        REQUIRE(e && (e[1] == '+' || e[1] == '-') && strlen(e + 2) >= 2);
        REQUIRE(e[2] != '0' || strlen(e + 2) == 2);
    }
    int seen = 0, digits = 0;   /* significant digits: zeros at both ends dropped */
    for (const char *q = text; *q && *q != 'e'; q++) {
        if (is_digit(*q) && (seen || *q != '0'))
            seen++;
        if (is_digit(*q) && *q != '0')
            digits = seen;
    }
    if (digits > 1 && a != 0) {
        /* Rounding to one digit fewer must not read back. */
        char shorter[64];
        snprintf(shorter, sizeof(shorter), "%.*e", digits - 2, a);
        REQUIRE(strtod(shorter, NULL) != a);
    }
}

static void scan_number(scanner *sc)
{
    const char *start = sc->p;
    if (sc->p < sc->end && *sc->p == '-')
        sc->p++;
    REQUIRE(sc->p < sc->end && is_digit(*sc->p));
    if (*sc->p == '0') {
        sc->p++;
    } else {
        while (sc->p < sc->end && is_digit(*sc->p))
            sc->p++;
    }
    int integral = 1;
    if (sc->p < sc->end && *sc->p == '.') {
        integral = 0;
        sc->p++;
        REQUIRE(sc->p < sc->end && is_digit(*sc->p));
        while (sc->p < sc->end && is_digit(*sc->p))
            sc->p++;
    }
    if (sc->p < sc->end && *sc->p == 'e') {
        integral = 0;
        sc->p++;
        if (sc->p < sc->end && (*sc->p == '+' || *sc->p == '-'))
            sc->p++;
        REQUIRE(sc->p < sc->end && is_digit(*sc->p));
        while (sc->p < sc->end && is_digit(*sc->p))
            sc->p++;
    }
    size_t n = (size_t)(sc->p - start);
    const token *t = next_tok(sc);
    char text[80];
    if (t->kind != K_BIG && t->kind != K_DBL) {
        REQUIRE(n < sizeof(text));
        memcpy(text, start, n);
        text[n] = '\0';
    }
    switch (t->kind) {
    case K_I64:
        REQUIRE(integral && strtoll(text, NULL, 10) == t->v.i);
        break;
    case K_U64:
        REQUIRE(integral && text[0] != '-' && strtoull(text, NULL, 10) == t->v.u);
        break;
    case K_BIG:
        REQUIRE(integral && n == t->len && memcmp(start, sc->s->arena + t->off, n) == 0);
        break;
    case K_DBL:
        REQUIRE(!integral);
        check_double(start, n, t->v.d);
        break;
    default:
        abort();
    }
}

static void scan_literal(scanner *sc, const char *lit, enum kind k)
{
    size_t n = strlen(lit);
    REQUIRE((size_t)(sc->end - sc->p) >= n && memcmp(sc->p, lit, n) == 0);
    sc->p += n;
    REQUIRE(next_tok(sc)->kind == k);
}

static void scan_value(scanner *sc)
{
    REQUIRE(sc->p < sc->end);
    char c = *sc->p;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        sc->p++;
        REQUIRE(sc->p < sc->end);
        if (*sc->p == close) {
            sc->p++;
            return;
        }
        for (;;) {
            if (c == '{') {
                scan_string(sc, 1);
                REQUIRE(sc->p < sc->end && *sc->p++ == ':');
            }
            scan_value(sc);
            REQUIRE(sc->p < sc->end);
            if (*sc->p == close) {
                sc->p++;
                return;
            }
            REQUIRE(*sc->p++ == ',');
        }
    }
    if (c == '"')
        scan_string(sc, 0);
    else if (c == 't')
        scan_literal(sc, "true", K_TRUE);
    else if (c == 'f')
        scan_literal(sc, "false", K_FALSE);
    else if (c == 'n')
        scan_literal(sc, "null", K_NULL);
    else
        scan_number(sc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    state s;
    memset(&s, 0, sizeof(s));
    s.in.p = data;
    s.in.n = size;
    uint8_t d = take(&s.in);
    s.max_depth = d < 128 ? (uint32_t)d + 1 : d < 250 ? CEL_JSON_DEFAULT_DEPTH : 5000;
    cel_json_writer_init(&s.w, &s.out, s.max_depth);
    arena_grow(&s, 0);          /* never NULL, even when every string is empty */
    MUST_FAIL(&s, cel_json_key(&s.w, "k", 1), CEL_ESTATE);
    MUST_FAIL(&s, cel_json_end_array(&s.w), CEL_ESTATE);
    write_value(&s);
    REQUIRE(cel_json_complete(&s.w) && s.w.depth == 0);
    MUST_FAIL(&s, cel_json_null(&s.w), CEL_ESTATE);

    scanner sc = { cel_buf_head(&s.out), cel_buf_head(&s.out) + s.out.len, &s, 0 };
    scan_value(&sc);
    REQUIRE(sc.p == sc.end && sc.next == s.ntoks);

    cel_json_writer_free(&s.w);
    cel_buf_free(&s.out);
    free(s.toks);
    free(s.arena);
    return 0;
}
