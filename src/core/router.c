/* Path router: Starlette's compile_path + re.match, without a regex engine.
 *
 * A template compiles to a list of parts, each a literal or a convertor.
 * Matching is a depth-first search over the parts in which every convertor
 * offers its candidate end positions in the order Python's backtracking
 * engine would try them (always longest first for these five convertors), so
 * the first success is the match re.match reports.  Cheap pre-checks (minimum
 * length, literal prefix, literal suffix) reject most routes before the
 * search starts.  See docs/router.md.
 */
#include "router.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "errors.h"

#define MAX_PARTS (2 * CEL_ROUTER_MAX_PARAMS + 1)
#define PART_LIT 0

typedef struct part {
    unsigned char type;         /* PART_LIT or enum cel_route_conv */
    size_t off, len;            /* literal bytes or param name, in route->text */
} part;

typedef struct route {
    int kind;
    int id;
    char *text;                 /* owned: compiled template, then the methods list */
    size_t methods_off;         /* upper-cased "GET,HEAD" at text + methods_off */
    size_t methods_len;
    int any_method;
    unsigned method_bits;       /* the list's methods among KNOWN_METHODS, one bit each */
    int other_methods;          /* the list names a method outside KNOWN_METHODS */
    int is_static;              /* a path route without parameters: one literal */
    unsigned char nparts;
    unsigned char nparams;
    unsigned char param_part[CEL_ROUTER_MAX_PARAMS];
    part parts[MAX_PARTS];
    size_t min_len;             /* shortest path that can match */
    size_t prefix_len;          /* leading literal (parts[0]), 0 if none */
    size_t suffix_len;          /* trailing literal, 0 if none */
    size_t suffix_off;
    uint64_t hash;              /* static routes: path_hash of the literal */
    size_t next_same;           /* static routes: index + 1 of the next static
                                   route with the same literal, 0 if none */
} route;

/* Static routes are also indexed by their literal: an open-addressing table
 * maps a literal to the first static route spelling it (whose next_same
 * chain lists the others in insertion order), and `nonstatic` lists every
 * other route in insertion order.  A static route whose literal differs from
 * the path can match neither fully nor partially, so trying only the merge
 * of the path's chain and `nonstatic`, in insertion order, decides exactly
 * what trying every route in order decides. */
struct cel_router {
    route *routes;
    size_t n, cap;
    size_t *slots;              /* index + 1 of a chain head, 0 = empty; nslots a power of 2 */
    size_t nslots, nstatic_texts;
    size_t *nonstatic;          /* indices of non-static routes, ascending */
    size_t n_nonstatic, cap_nonstatic;
    unsigned long budget;
    char err[160];
};

/* A 64-bit hash of a path, 8 bytes per step (the tail as overlapping 4-byte
 * loads, or bytes): only for spreading literals over slots -- every hit is
 * confirmed by comparing the bytes. */
static uint64_t path_hash(const char *p, size_t n)
{
    const uint64_t k = 0xff51afd7ed558ccdull;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ n, x;
    for (; n >= 8; p += 8, n -= 8) {
        memcpy(&x, p, 8);
        h = (h ^ x) * k;
        h ^= h >> 32;
    }
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        x = ((uint64_t)b << 32) | a;
    } else {
        x = 0;
        for (size_t i = 0; i < n; i++)
            x |= (uint64_t)(unsigned char)p[i] << (8 * i);
    }
    h = (h ^ x) * k;
    return h ^ (h >> 29);
}

cel_router *cel_router_new(void)
{
    cel_router *r = cel_calloc(1, sizeof(*r));
    if (r)
        r->budget = CEL_ROUTER_DEFAULT_BUDGET;
    return r;
}

void cel_router_free(cel_router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        cel_free(r->routes[i].text);
    cel_free(r->routes);
    cel_free(r->slots);
    cel_free(r->nonstatic);
    cel_free(r);
}

const char *cel_router_error(const cel_router *r)
{
    return r ? r->err : "";
}

void cel_router_set_budget(cel_router *r, unsigned long units)
{
    r->budget = units ? units : CEL_ROUTER_DEFAULT_BUDGET;
}

size_t cel_router_count(const cel_router *r)
{
    return r ? r->n : 0;
}

/* ---- template compilation ---------------------------------------------- */

static int is_name_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_name_char(unsigned char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

static int conv_from_name(const char *s, size_t n)
{
    static const struct { const char *name; int conv; } tab[] = {
        { "str", CEL_CONV_STR }, { "path", CEL_CONV_PATH }, { "int", CEL_CONV_INT },
        { "float", CEL_CONV_FLOAT }, { "uuid", CEL_CONV_UUID },
    };
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
        if (strlen(tab[i].name) == n && memcmp(tab[i].name, s, n) == 0)
            return tab[i].conv;
    return 0;
}

static size_t conv_min_len(int conv)
{
    switch (conv) {
    case CEL_CONV_PATH: return 0;
    case CEL_CONV_UUID: return 32;
    default: return 1;
    }
}

/* Record the message for cel_router_error and return CEL_EINVAL. */
static int fail(cel_router *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
    return CEL_EINVAL;
}

/* At most 64 bytes of a template or list in a message. */
static int shown(size_t n)
{
    return n > 64 ? 64 : (int)n;
}

static void add_literal(route *rt, size_t off, size_t len)
{
    if (len == 0)
        return;
    part *p = &rt->parts[rt->nparts++];
    p->type = PART_LIT;
    p->off = off;
    p->len = len;
}

/* Split rt->text[0..len) into parts the way compile_path does: scan for
 * PARAM_REGEX "{name(:type)?}" left to right, non-overlapping; everything
 * else (including braces that do not form a param) is literal.  Errors in
 * Starlette's order: an unknown convertor at once, duplicates at the end. */
static int compile(cel_router *r, route *rt, size_t len)
{
    const char *t = rt->text;
    size_t i = 0, lit = 0;
    int dup = -1;

    while (i < len) {
        if (t[i] != '{' || i + 1 >= len || !is_name_start((unsigned char)t[i + 1])) {
            i++;
            continue;
        }
        size_t name = i + 1, j = name + 1;
        while (j < len && is_name_char((unsigned char)t[j]))
            j++;
        size_t name_len = j - name, conv_off = 0, conv_len = 0;
        if (j + 1 < len && t[j] == ':' && is_name_start((unsigned char)t[j + 1])) {
            conv_off = j + 1;
            j += 2;
            while (j < len && is_name_char((unsigned char)t[j]))
                j++;
            conv_len = j - conv_off;
        }
        if (j >= len || t[j] != '}') {
            i++;
            continue;
        }
        int conv = conv_len ? conv_from_name(t + conv_off, conv_len) : CEL_CONV_STR;
        if (!conv)
            return fail(r, "Unknown path convertor '%.*s'", shown(conv_len), t + conv_off);
        if (rt->nparams == CEL_ROUTER_MAX_PARAMS)
            return fail(r, "more than %d path params", CEL_ROUTER_MAX_PARAMS);
        for (unsigned k = 0; k < rt->nparams && dup < 0; k++) {
            const part *q = &rt->parts[rt->param_part[k]];
            if (q->len == name_len && memcmp(t + q->off, t + name, name_len) == 0)
                dup = (int)rt->nparams;
        }
        add_literal(rt, lit, i - lit);
        rt->param_part[rt->nparams++] = rt->nparts;
        part *p = &rt->parts[rt->nparts++];
        p->type = (unsigned char)conv;
        p->off = name;
        p->len = name_len;
        i = lit = j + 1;
    }
    add_literal(rt, lit, len - lit);
    if (dup >= 0) {
        const part *q = &rt->parts[rt->param_part[dup]];
        return fail(r, "Duplicated param name %.*s", shown(q->len), t + q->off);
    }

    for (unsigned k = 0; k < rt->nparts; k++)
        rt->min_len += rt->parts[k].type == PART_LIT ? rt->parts[k].len
                                                     : conv_min_len(rt->parts[k].type);
    if (rt->nparts && rt->parts[0].type == PART_LIT)
        rt->prefix_len = rt->parts[0].len;
    if (rt->nparts && rt->parts[rt->nparts - 1].type == PART_LIT) {
        rt->suffix_off = rt->parts[rt->nparts - 1].off;
        rt->suffix_len = rt->parts[rt->nparts - 1].len;
    }
    return 0;
}

/* Copy the methods list upper-cased (ASCII, as str.upper() does for method
 * tokens).  Empty items are an error ("GET,,PUT"); an empty list is
 * Starlette's empty set, which allows every method. */
static int copy_methods(cel_router *r, char *dst, const char *src, size_t n)
{
    size_t item = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || src[i] == ',') {
            if (i == item && n != 0)
                return fail(r, "empty method name in '%.*s'", shown(n), src);
            if (i < n)
                dst[i] = ',';
            item = i + 1;
            continue;
        }
        char c = src[i];
        dst[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    return 0;
}

static const char MOUNT_TAIL[] = "/{path:path}";

/* The methods routes name most: membership by one bit per route instead of
 * a walk over its list (method_allowed). */
static const char *const KNOWN_METHODS[] = {
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
};
#define NKNOWN (sizeof KNOWN_METHODS / sizeof KNOWN_METHODS[0])

/* The KNOWN_METHODS bit of method m (exact, case-sensitive), 0 for others. */
static unsigned method_bit(const char *m, size_t n)
{
    if (n == 3 && m[0] == 'G' && m[1] == 'E' && m[2] == 'T')
        return 1u;              /* KNOWN_METHODS[0], most requests */
    for (unsigned k = 0; k < NKNOWN; k++)
        if (strlen(KNOWN_METHODS[k]) == n && memcmp(KNOWN_METHODS[k], m, n) == 0)
            return 1u << k;
    return 0;
}

/* Fill method_bits / other_methods from the upper-cased list. */
static void index_methods(route *rt)
{
    const char *list = rt->text + rt->methods_off;
    size_t n = rt->methods_len, item = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || list[i] == ',') {
            unsigned b = method_bit(list + item, i - item);
            if (b)
                rt->method_bits |= b;
            else
                rt->other_methods = 1;
            item = i + 1;
        }
    }
}

/* memcmp(a, b, n) == 0 without a library call for the short paths most
 * routes have: two overlapping 8- or 4-byte compares up to 16 bytes. */
static int same_bytes(const char *a, const char *b, size_t n)
{
    if (n > 16 || n < 4)
        return memcmp(a, b, n) == 0;
    if (n >= 8) {
        uint64_t a0, a1, b0, b1;
        memcpy(&a0, a, 8);
        memcpy(&b0, b, 8);
        memcpy(&a1, a + n - 8, 8);
        memcpy(&b1, b + n - 8, 8);
        return a0 == b0 && a1 == b1;
    }
    uint32_t a0, a1, b0, b1;
    memcpy(&a0, a, 4);
    memcpy(&b0, b, 4);
    memcpy(&a1, a + n - 4, 4);
    memcpy(&b1, b + n - 4, 4);
    return a0 == b0 && a1 == b1;
}

/* The slot holding the chain head for literal (p, n) with hash h, or the
 * empty slot where it would go.  Needs nslots > 0. */
static size_t *find_slot(const cel_router *r, uint64_t h, const char *p, size_t n)
{
    size_t mask = r->nslots - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        size_t *slot = &r->slots[i];
        if (*slot == 0)
            return slot;
        const route *rt = &r->routes[*slot - 1];
        if (rt->hash == h && rt->parts[0].len == n
            && same_bytes(rt->text + rt->parts[0].off, p, n))
            return slot;
    }
}

/* Rebuilds the table with `nslots` slots from the chain heads.  0 or CEL_ENOMEM
 * (table unchanged). */
static int rehash(cel_router *r, size_t nslots)
{
    size_t *slots = cel_calloc(nslots, sizeof(*slots));
    if (!slots)
        return CEL_ENOMEM;
    size_t *old = r->slots, old_n = r->nslots;
    r->slots = slots;
    r->nslots = nslots;
    for (size_t i = 0; i < old_n; i++) {
        if (old[i]) {
            const route *rt = &r->routes[old[i] - 1];
            *find_slot(r, rt->hash, rt->text + rt->parts[0].off, rt->parts[0].len) = old[i];
        }
    }
    cel_free(old);
    return 0;
}

/* Indexes static route k (not yet counted in r->n): heads a new chain or
 * ends an existing one.  0 or CEL_ENOMEM (index unchanged). */
static int index_static(cel_router *r, size_t k)
{
    route *rt = &r->routes[k];
    const char *lit = rt->text + rt->parts[0].off;
    size_t len = rt->parts[0].len;
    rt->hash = path_hash(lit, len);
    rt->next_same = 0;
    if ((r->nstatic_texts + 1) * 2 > r->nslots) {
        int rc = rehash(r, r->nslots ? r->nslots * 2 : 16);
        if (rc)
            return rc;
    }
    size_t *slot = find_slot(r, rt->hash, lit, len);
    if (*slot == 0) {
        *slot = k + 1;
        r->nstatic_texts++;
        return 0;
    }
    size_t j = *slot - 1;
    while (r->routes[j].next_same)
        j = r->routes[j].next_same - 1;
    r->routes[j].next_same = k + 1;
    return 0;
}

/* Room for one more element in the array *items (n used of *cap, each
 * `size` bytes): doubled (first 16) when full.  0, or CEL_ENOMEM with the
 * array unchanged. */
static int grow_for_one(void **items, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *p = cel_realloc(*items, c * size);
    if (!p)
        return CEL_ENOMEM;
    *items = p;
    *cap = c;
    return 0;
}

/* Appends route k to the non-static list.  0 or CEL_ENOMEM (unchanged). */
static int index_nonstatic(cel_router *r, size_t k)
{
    void *items = r->nonstatic;
    if (grow_for_one(&items, r->n_nonstatic, &r->cap_nonstatic, sizeof(*r->nonstatic)))
        return CEL_ENOMEM;
    r->nonstatic = items;
    r->nonstatic[r->n_nonstatic++] = k;
    return 0;
}

int cel_router_add(cel_router *r, int kind, const char *tpl, size_t len,
                   const char *methods, int id)
{
    if (!r)
        return CEL_EINVAL;
    r->err[0] = '\0';
    if (kind != CEL_ROUTE_PATH && kind != CEL_ROUTE_MOUNT && kind != CEL_ROUTE_OPAQUE)
        return fail(r, "unknown route kind %d", kind);
    if (kind == CEL_ROUTE_OPAQUE)
        len = 0;
    else if (!tpl && len)
        return fail(r, "NULL template");
    if (len > CEL_ROUTER_MAX_TEMPLATE)
        return fail(r, "template longer than %d bytes", CEL_ROUTER_MAX_TEMPLATE);
    if (kind != CEL_ROUTE_PATH && methods)
        return fail(r, "methods are only for path routes");
    if ((kind == CEL_ROUTE_PATH && len == 0) || (len && tpl[0] != '/'))
        return fail(r, "Routed paths must start with '/': '%.*s'", shown(len), tpl ? tpl : "");
    if (kind == CEL_ROUTE_MOUNT)
        while (len && tpl[len - 1] == '/')
            len--;

    size_t tlen = len + (kind == CEL_ROUTE_MOUNT ? sizeof(MOUNT_TAIL) - 1 : 0);
    size_t mlen = methods ? strlen(methods) : 0;
    void *items = r->routes;
    if (grow_for_one(&items, r->n, &r->cap, sizeof(*r->routes)))
        return CEL_ENOMEM;
    r->routes = items;
    route *rt = &r->routes[r->n];
    memset(rt, 0, sizeof(*rt));
    rt->kind = kind;
    rt->id = id;
    rt->any_method = methods == NULL || mlen == 0;
    rt->text = cel_malloc(tlen + mlen + 1);
    if (!rt->text)
        return CEL_ENOMEM;
    if (len)
        memcpy(rt->text, tpl, len);
    if (kind == CEL_ROUTE_MOUNT)
        memcpy(rt->text + len, MOUNT_TAIL, sizeof(MOUNT_TAIL) - 1);
    rt->methods_off = tlen;
    rt->methods_len = mlen;
    rt->text[tlen + mlen] = '\0';

    int rc = 0;
    if (methods)
        rc = copy_methods(r, rt->text + tlen, methods, mlen);
    if (rc == 0 && kind != CEL_ROUTE_OPAQUE)
        rc = compile(r, rt, tlen);
    if (rc) {
        cel_free(rt->text);
        return rc;
    }
    if (!rt->any_method)
        index_methods(rt);
    rt->is_static = kind == CEL_ROUTE_PATH && rt->nparams == 0 && rt->nparts == 1
                    && rt->parts[0].type == PART_LIT;
    rc = rt->is_static ? index_static(r, r->n) : index_nonstatic(r, r->n);
    if (rc) {
        cel_free(rt->text);
        return rc;
    }
    r->n++;
    return 0;
}

int cel_router_route_info(const cel_router *r, size_t index, cel_route_info *out)
{
    if (!r || index >= r->n)
        return CEL_EINVAL;
    const route *rt = &r->routes[index];
    out->id = rt->id;
    out->kind = rt->kind;
    out->nparams = rt->nparams;
    for (unsigned k = 0; k < rt->nparams; k++) {
        const part *p = &rt->parts[rt->param_part[k]];
        out->params[k].name.p = rt->text + p->off;
        out->params[k].name.len = p->len;
        out->params[k].value.p = NULL;
        out->params[k].value.len = 0;
        out->params[k].conv = p->type;
    }
    return 0;
}

/* ---- matching ------------------------------------------------------------ */

typedef struct mctx {
    const char *p;
    size_t n;
    const route *rt;
    long budget;                /* work units left; try_end gives up below 0 */
    size_t start[MAX_PARTS];    /* where each convertor part matched */
    size_t end[MAX_PARTS];
} mctx;

static int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

/* Python's "$" without MULTILINE: end of string, or before a final "\n". */
static int at_end(const mctx *c, size_t s)
{
    return s == c->n || (s + 1 == c->n && c->p[s] == '\n');
}

static size_t span_digits(const mctx *c, size_t s)
{
    size_t e = s;
    while (e < c->n && is_digit((unsigned char)c->p[e]))
        e++;
    return e;
}

/* Index of the first byte `stop` at or after s, or n. */
static size_t span_until(const mctx *c, size_t s, char stop)
{
    const char *q = s < c->n ? memchr(c->p + s, stop, c->n - s) : NULL;
    return q ? (size_t)(q - c->p) : c->n;
}

/* End of a UUID at s, or (size_t)-1.  Deterministic: each "-?" is taken when
 * a '-' is there, and skipping it cannot help since a hex digit must follow. */
static size_t match_uuid(const mctx *c, size_t s)
{
    static const unsigned char groups[5] = { 8, 4, 4, 4, 12 };
    size_t e = s;
    for (int g = 0; g < 5; g++) {
        if (g && e < c->n && c->p[e] == '-')
            e++;
        if (c->n - e < groups[g])
            return (size_t)-1;
        for (int k = 0; k < groups[g]; k++, e++)
            if (!is_hex((unsigned char)c->p[e]))
                return (size_t)-1;
    }
    return e;
}

/* The candidate end before e for a repeat counted in code points: step back
 * over one UTF-8 sequence (never below floor). */
static size_t back_one_char(const mctx *c, size_t e, size_t floor)
{
    e--;
    while (e > floor && is_cont((unsigned char)c->p[e]))
        e--;
    return e;
}

static int match_from(mctx *c, unsigned i, size_t s);

static int try_end(mctx *c, unsigned i, size_t s, size_t e)
{
    if (--c->budget < 0)
        return -1;
    c->start[i] = s;
    c->end[i] = e;
    return match_from(c, i + 1, e);
}

/* Would the literal right after convertor i fail at every candidate end
 * except the longest?  Yes when its first byte is outside the convertor's
 * character class, since every shorter candidate is followed by a byte in
 * the class.  Pure pruning: it never changes the result. */
static int only_longest(const mctx *c, unsigned i)
{
    const route *rt = c->rt;
    if (i + 1 >= rt->nparts || rt->parts[i + 1].type != PART_LIT)
        return 0;
    unsigned char b = (unsigned char)rt->text[rt->parts[i + 1].off];
    switch (rt->parts[i].type) {
    case CEL_CONV_STR: return b == '/';
    case CEL_CONV_PATH: return b == '\n';
    case CEL_CONV_INT: return !is_digit(b);
    default: return 0;
    }
}

/* Match parts[i..] against path[s..] and the end anchor.  Returns 1 on a
 * match (start/end filled along the successful branch), 0 on none, -1 when
 * the budget ran out.  Recursion depth is at most CEL_ROUTER_MAX_PARAMS + 1. */
static int match_from(mctx *c, unsigned i, size_t s)
{
    const route *rt = c->rt;
    while (i < rt->nparts && rt->parts[i].type == PART_LIT) {
        const part *p = &rt->parts[i];
        c->budget -= 1 + (long)(p->len >> 4);
        if (c->n - s < p->len || memcmp(c->p + s, rt->text + p->off, p->len) != 0)
            return 0;
        s += p->len;
        i++;
    }
    if (i == rt->nparts)
        return at_end(c, s);

    int rc;
    size_t e, max;
    switch (rt->parts[i].type) {
    case CEL_CONV_STR:
    case CEL_CONV_PATH: {
        int str = rt->parts[i].type == CEL_CONV_STR;
        size_t floor = str ? s + 1 : s;     /* [^/]+ needs a char, .* does not */
        max = span_until(c, s, str ? '/' : '\n');
        c->budget -= (long)((max - s) >> 4);
        if (max < floor)
            return 0;
        if (only_longest(c, i))
            return try_end(c, i, s, max);
        for (e = max;;) {
            if ((rc = try_end(c, i, s, e)) != 0 || e == floor)
                return rc;
            e = back_one_char(c, e, s);
            if (e < floor)
                return 0;
        }
    }
    case CEL_CONV_INT:
        max = span_digits(c, s);
        c->budget -= (long)((max - s) >> 4);
        if (max == s)
            return 0;
        if (only_longest(c, i))
            return try_end(c, i, s, max);
        for (e = max; e > s; e--)
            if ((rc = try_end(c, i, s, e)) != 0)
                return rc;
        return 0;
    case CEL_CONV_FLOAT: {
        /* [0-9]+ is greedy, and "(\.[0-9]+)?" can only start after its
         * longest run; the group is tried (longest fraction first) before
         * going without it, then the digit run shrinks. */
        size_t e1 = span_digits(c, s);
        c->budget -= (long)((e1 - s) >> 4);
        if (e1 == s)
            return 0;
        if (e1 + 1 < c->n && c->p[e1] == '.') {
            max = span_digits(c, e1 + 1);
            c->budget -= (long)((max - e1) >> 4);
            for (e = max; e >= e1 + 2; e--)
                if ((rc = try_end(c, i, s, e)) != 0)
                    return rc;
        }
        for (e = e1; e > s; e--)
            if ((rc = try_end(c, i, s, e)) != 0)
                return rc;
        return 0;
    }
    case CEL_CONV_UUID:
        e = match_uuid(c, s);
        return e == (size_t)-1 ? 0 : try_end(c, i, s, e);
    }
    return 0;
}

/* bit: method_bit(m) (0 for a method outside KNOWN_METHODS). */
static int method_allowed(const route *rt, unsigned bit, const char *m, size_t mlen)
{
    if (rt->any_method)
        return 1;
    if (bit)
        return (rt->method_bits & bit) != 0;
    if (!rt->other_methods || mlen == 0)
        return 0;               /* the list has no empty names */
    const char *list = rt->text + rt->methods_off;
    size_t n = rt->methods_len, item = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || list[i] == ',') {
            if (i - item == mlen && memcmp(list + item, m, mlen) == 0)
                return 1;
            item = i + 1;
        }
    }
    return 0;
}

/* Cheap necessary conditions: length, leading literal, trailing literal
 * (which "$" allows to be followed by one "\n"). */
static int may_match(const route *rt, const char *p, size_t n)
{
    if (n < rt->min_len)
        return 0;
    if (rt->prefix_len && memcmp(p, rt->text + rt->parts[0].off, rt->prefix_len) != 0)
        return 0;
    if (rt->suffix_len) {
        const char *suf = rt->text + rt->suffix_off;
        size_t k = rt->suffix_len;
        if (memcmp(p + n - k, suf, k) != 0
            && !(n > k && p[n - 1] == '\n' && memcmp(p + n - 1 - k, suf, k) == 0))
            return 0;
    }
    return 1;
}

/* Route k against the path: CEL_ROUTER_FULL / CEL_ROUTER_OPAQUE (m filled
 * in), CEL_ROUTER_EBUDGET, or -1 to go on with the next route (a PARTIAL
 * recorded in m).  `literal_equal`: k is static and its literal is known to
 * equal the path. */
static int try_route(const cel_router *r, size_t k, mctx *c, unsigned bit,
                     const char *method, size_t mlen, int literal_equal, cel_route_match *m)
{
    const route *rt = &r->routes[k];
    const char *path = c->p;
    size_t plen = c->n;
    if (rt->kind == CEL_ROUTE_OPAQUE) {
        m->id = rt->id;
        m->kind = rt->kind;
        m->index = k;
        return CEL_ROUTER_OPAQUE;
    }
    int allowed = rt->kind == CEL_ROUTE_MOUNT || method_allowed(rt, bit, method, mlen);
    if (!allowed && m->partial_seen)
        return -1;              /* could only be another PARTIAL */
    if (literal_equal) {
        /* matched by the index */
    } else if (rt->is_static) {
        /* the literal itself, or followed by one "\n" ("$" allows it) */
        size_t len = rt->parts[0].len;
        if (!(plen == len || (plen == len + 1 && path[len] == '\n'))
            || memcmp(path, rt->text + rt->parts[0].off, len) != 0)
            return -1;
    } else {
        if (!may_match(rt, path, plen))
            return -1;
        c->rt = rt;
        int rc = match_from(c, 0, 0);
        if (rc < 0)
            return CEL_ROUTER_EBUDGET;
        if (rc == 0)
            return -1;
    }
    if (!allowed) {
        m->partial_seen = 1;
        m->partial_id = rt->id;
        return -1;
    }
    m->id = rt->id;
    m->kind = rt->kind;
    m->index = k;
    m->nparams = rt->nparams;
    for (unsigned j = 0; j < rt->nparams; j++) {
        unsigned pi = rt->param_part[j];
        const part *p = &rt->parts[pi];
        cel_route_param *o = &m->params[j];
        o->name.p = rt->text + p->off;
        o->name.len = p->len;
        o->value.p = path + c->start[pi];
        o->value.len = c->end[pi] - c->start[pi];
        o->conv = p->type;
    }
    if (rt->kind == CEL_ROUTE_MOUNT)
        m->mount_prefix_len = plen - 1 - m->params[rt->nparams - 1].value.len;
    return CEL_ROUTER_FULL;
}

int cel_router_match(const cel_router *r, const char *method, size_t mlen,
                     const char *path, size_t plen, cel_route_match *m)
{
    mctx c;
    c.p = path;
    c.n = plen;
    c.budget = r->budget > (unsigned long)INT32_MAX ? INT32_MAX : (long)r->budget;
    m->partial_seen = 0;
    m->partial_id = -1;
    m->nparams = 0;
    m->mount_prefix_len = 0;
    /* GET (most requests) without the call */
    unsigned bit = mlen == 3 && method[0] == 'G' && method[1] == 'E' && method[2] == 'T'
                   ? 1u : method_bit(method, mlen);

    if (plen && path[plen - 1] == '\n') {
        /* a static literal may match with its "\n" dropped: try every route */
        for (size_t k = 0; k < r->n; k++) {
            int rc = try_route(r, k, &c, bit, method, mlen, 0, m);
            if (rc != -1)
                return rc;
        }
        return CEL_ROUTER_NONE;
    }
    /* the static routes spelling the path, merged with the non-static ones */
    size_t same = 0;            /* index + 1 of the next static candidate */
    if (r->nslots)
        same = *find_slot(r, path_hash(path, plen), path, plen);
    size_t j = 0;
    while (same || j < r->n_nonstatic) {
        size_t k;
        int literal_equal = same && (j == r->n_nonstatic || same - 1 < r->nonstatic[j]);
        if (literal_equal) {
            k = same - 1;
            same = r->routes[k].next_same;
        } else {
            k = r->nonstatic[j++];
        }
        int rc = try_route(r, k, &c, bit, method, mlen, literal_equal, m);
        if (rc != -1)
            return rc;
    }
    return CEL_ROUTER_NONE;
}
