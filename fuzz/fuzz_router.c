/* libFuzzer driver for the path router.
 *
 * Input: up to four route segments, then the path, separated by 0xFF bytes.
 * The first byte of a route segment picks its kind and methods; each further
 * byte is a token of a small template grammar (convertor params, '/', '-',
 * '.', digits, 'é', "\n", stray braces, duplicate or unknown params), so most
 * templates compile and backtrack in interesting ways.  The path is the
 * first route's template with each param replaced by the next
 * 0xFE-separated chunk of the path bytes, so that matches and near misses
 * are common; a path segment starting with 0xFE is used raw instead.
 *
 * Checks: no crash or over-read (the path sits in an exact-size heap copy);
 * add fails exactly when the reference compiler rejects the template, and
 * route_info agrees with it; every match is deterministic, param values are
 * slices of the path, and the result (route, params, partial, mount prefix)
 * equals that of a brute-force reference matcher below that shares no code
 * with router.c: it tries every end position longest-first and tests it
 * with a whole-substring predicate per convertor.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "router.h"

#define REQUIRE(cond) do { if (!(cond)) { fprintf(stderr, "REQUIRE(%s) line %d\n", #cond, __LINE__); abort(); } } while (0)

#define MAX_ROUTES 4
#define REF_STEPS 40000         /* reference work cap per input */
#define REF_MAX_PATH 512        /* longer paths: only the invariants */

/* ---- building the input's routes ---------------------------------------- */

typedef struct troute {
    int kind;
    const char *methods;
    char tpl[1024];
    size_t len;
} troute;

static void put(troute *t, const char *s, size_t n)
{
    if (t->len + n <= sizeof(t->tpl)) {
        memcpy(t->tpl + t->len, s, n);
        t->len += n;
    }
}

static void build_route(troute *t, const uint8_t *seg, size_t n)
{
    static const char *const methods[4] = { NULL, "GET", "post", "GET,POST" };
    static const char *const convs[5] = { "", ":path", ":int", ":float", ":uuid" };
    static const char raw[8] = { 'x', ':', '_', ' ', '0', 'A', '%', '?' };
    uint8_t ctl = n ? seg[0] : 0;
    int nparam = 0;
    char buf[32];

    t->len = 0;
    t->kind = ctl % 8 == 7 ? CEL_ROUTE_OPAQUE : (ctl % 8 >= 5 ? CEL_ROUTE_MOUNT : CEL_ROUTE_PATH);
    t->methods = t->kind == CEL_ROUTE_PATH ? methods[(ctl >> 3) & 3] : NULL;
    if (t->kind != CEL_ROUTE_MOUNT || !(ctl & 0x20))
        put(t, "/", 1);
    for (size_t i = 1; i < n; i++) {
        uint8_t b = seg[i], hi = b >> 4;
        int k;
        switch (b & 15) {
        case 0: case 1: case 2: case 3: case 4:
            k = snprintf(buf, sizeof(buf), "{p%d%s}", nparam++, convs[b & 15]);
            put(t, buf, (size_t)k);
            break;
        case 5: put(t, "/", 1); break;
        case 6: put(t, "-", 1); break;
        case 7: put(t, ".", 1); break;
        case 8: put(t, "a", 1); break;
        case 9: put(t, "1", 1); break;
        case 10: put(t, "\xc3\xa9", 2); break;
        case 11: put(t, "\n", 1); break;
        case 12: put(t, "{", 1); break;
        case 13: put(t, "}", 1); break;
        case 14: put(t, &raw[hi & 7], 1); break;
        case 15:    /* an earlier name again, "path", or an unknown convertor */
            if (hi < 12)
                k = snprintf(buf, sizeof(buf), "{p%d}", nparam ? hi % nparam : 0);
            else if (hi < 14)
                k = snprintf(buf, sizeof(buf), "{path}");
            else
                k = snprintf(buf, sizeof(buf), "{p%d:nope}", nparam++);
            put(t, buf, (size_t)k);
            break;
        }
    }
}

/* ---- reference: compile_path ----------------------------------------- */

enum { R_LIT, R_STR, R_PATH, R_INT, R_FLOAT, R_UUID };

typedef struct rpart {
    int type;
    const char *s;              /* literal bytes, or param name */
    size_t len;
} rpart;

typedef struct rroute {
    int ok;
    int kind;
    rpart parts[128];
    int nparts, nparams;
} rroute;

static int alpha_(int c) { return (c | 32) >= 'a' && (c | 32) <= 'z' ? 1 : c == '_'; }
static int alnum_(int c) { return alpha_(c) || (c >= '0' && c <= '9'); }

/* Length of PARAM_REGEX's match at s (0 if none); name and type spans out. */
static size_t param_at(const char *s, size_t n, size_t *nl, const char **ty, size_t *tl)
{
    size_t i = 1;
    if (n < 3 || s[0] != '{' || !alpha_((unsigned char)s[1]))
        return 0;
    while (i < n && alnum_((unsigned char)s[i]))
        i++;
    *nl = i - 1;
    *ty = NULL;
    *tl = 0;
    if (i + 1 < n && s[i] == ':' && alpha_((unsigned char)s[i + 1])) {
        size_t j = i + 1;
        while (j < n && alnum_((unsigned char)s[j]))
            j++;
        *ty = s + i + 1;
        *tl = j - i - 1;
        i = j;
    }
    return i < n && s[i] == '}' ? i + 1 : 0;
}

static void ref_compile(rroute *rr, const troute *t, char *text)
{
    static const char *const names[] = { "str", "path", "int", "float", "uuid" };
    size_t n = t->len;
    memcpy(text, t->tpl, n);
    rr->kind = t->kind;
    rr->nparts = rr->nparams = 0;
    rr->ok = 1;
    if (t->kind == CEL_ROUTE_OPAQUE)
        return;
    if (n && text[0] != '/') {
        rr->ok = 0;             /* "Routed paths must start with '/'" */
        return;
    }
    if (t->kind == CEL_ROUTE_MOUNT) {
        while (n && text[n - 1] == '/')
            n--;
        memcpy(text + n, "/{path:path}", 12);
        n += 12;
    }
    int dup = 0;
    size_t lit = 0;
    for (size_t i = 0; i < n;) {
        size_t nl, tl;
        const char *ty;
        size_t m = param_at(text + i, n - i, &nl, &ty, &tl);
        if (!m) {
            i++;
            continue;
        }
        int type = ty ? 0 : R_STR;
        for (int k = 0; ty && k < 5; k++)
            if (strlen(names[k]) == tl && memcmp(names[k], ty, tl) == 0)
                type = R_STR + k;
        if (!type || rr->nparams == CEL_ROUTER_MAX_PARAMS) {
            rr->ok = 0;
            return;
        }
        for (int k = 0; k < rr->nparts; k++)
            if (rr->parts[k].type != R_LIT && rr->parts[k].len == nl
                && memcmp(rr->parts[k].s, text + i + 1, nl) == 0)
                dup = 1;
        if (i > lit)
            rr->parts[rr->nparts++] = (rpart){ R_LIT, text + lit, i - lit };
        rr->parts[rr->nparts++] = (rpart){ type, text + i + 1, nl };
        rr->nparams++;
        i = lit = i + m;
    }
    if (n > lit)
        rr->parts[rr->nparts++] = (rpart){ R_LIT, text + lit, n - lit };
    if (dup)
        rr->ok = 0;
}

/* ---- reference: re.match, by brute force ------------------------------ */

typedef struct rmatch {
    const char *p;
    size_t n;
    long steps;
    size_t beg[128], end[128];
} rmatch;

static int dig(int c) { return c >= '0' && c <= '9'; }
static int hex(int c) { return dig(c) || ((c | 32) >= 'a' && (c | 32) <= 'f'); }

/* Does p[a..b) as a whole match the convertor's regex? */
static int full(const rmatch *m, int type, size_t a, size_t b)
{
    const char *p = m->p;
    size_t k;
    switch (type) {
    case R_STR:
        return b > a && !memchr(p + a, '/', b - a);
    case R_PATH:
        return b == a || !memchr(p + a, '\n', b - a);
    case R_INT:
        for (k = a; k < b; k++)
            if (!dig((unsigned char)p[k]))
                return 0;
        return b > a;
    case R_FLOAT: {
        size_t dot = b;
        for (k = a; k < b; k++) {
            if (p[k] == '.' && dot == b)
                dot = k;
            else if (!dig((unsigned char)p[k]))
                return 0;
        }
        return dot > a && (dot == b || dot + 1 < b);
    }
    case R_UUID: {
        static const int groups[5] = { 8, 4, 4, 4, 12 };
        k = a;
        for (int g = 0; g < 5; g++) {
            if (g && k < b && p[k] == '-')
                k++;
            for (int j = 0; j < groups[g]; j++, k++)
                if (k >= b || !hex((unsigned char)p[k]))
                    return 0;
        }
        return k == b;
    }
    }
    return 0;
}

/* May a repeat of code points end at e?  (ASCII-only convertors may end
 * anywhere; their content already forces ASCII.) */
static int boundary(const rmatch *m, int type, size_t s, size_t e)
{
    if (type != R_STR && type != R_PATH)
        return 1;
    return e == s || e == m->n || ((unsigned char)m->p[e] & 0xC0) != 0x80;
}

static int ref_from(rmatch *m, const rroute *rr, int i, size_t s)
{
    if (++m->steps > REF_STEPS)
        return -1;
    if (i == rr->nparts)
        return s == m->n || (s + 1 == m->n && m->p[s] == '\n');
    const rpart *pt = &rr->parts[i];
    if (pt->type == R_LIT) {
        if (m->n - s < pt->len || memcmp(m->p + s, pt->s, pt->len) != 0)
            return 0;
        return ref_from(m, rr, i + 1, s + pt->len);
    }
    for (size_t e = m->n + 1; e-- > s;) {
        m->steps += 1 + (long)((e - s) >> 4);
        if (!boundary(m, pt->type, s, e) || !full(m, pt->type, s, e))
            continue;
        m->beg[i] = s;
        m->end[i] = e;
        int rc = ref_from(m, rr, i + 1, e);
        if (rc)
            return rc;
    }
    return 0;
}

static int method_in(const char *list, const char *m, size_t ml)
{
    if (!list || !*list)
        return 1;
    char up[64];
    size_t n = strlen(list);
    for (size_t i = 0; i < n; i++)
        up[i] = (list[i] >= 'a' && list[i] <= 'z') ? (char)(list[i] - 32) : list[i];
    for (size_t a = 0, i = 0; i <= n; i++)
        if (i == n || up[i] == ',') {
            if (i - a == ml && memcmp(up + a, m, ml) == 0)
                return 1;
            a = i + 1;
        }
    return 0;
}

/* ---- the driver ----------------------------------------------------------- */

/* rr's literals with each param replaced by the next 0xFE-separated chunk
 * of in[0..n).  Returns the length written to out (at most cap). */
static size_t instantiate(const rroute *rr, const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t len = 0, pos = 0;
    for (int k = 0; k < rr->nparts; k++) {
        const char *src = rr->parts[k].s;
        size_t sl = rr->parts[k].len;
        if (rr->parts[k].type != R_LIT) {
            const uint8_t *fe = memchr(in + pos, 0xFE, n - pos);
            size_t stop = fe ? (size_t)(fe - in) : n;
            src = (const char *)in + pos;
            sl = stop - pos;
            pos = fe ? stop + 1 : n;
        }
        if (sl > cap - len)
            sl = cap - len;
        memcpy(out + len, src, sl);
        len += sl;
    }
    return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static troute tr[MAX_ROUTES];
    static rroute rr[MAX_ROUTES];
    static char rtext[MAX_ROUTES][1100];
    int nr = 0;
    size_t pos = 0;

    while (nr < MAX_ROUTES) {
        const uint8_t *ff = memchr(data + pos, 0xFF, size - pos);
        if (!ff)
            break;
        build_route(&tr[nr], data + pos, (size_t)(ff - (data + pos)));
        pos = (size_t)(ff - data) + 1;
        nr++;
    }
    if (nr == 0)
        build_route(&tr[nr++], (const uint8_t *)"\x00\x00", 2);
    size_t plen = size - pos;
    static char tmp[4096];
    static char ftext[1100];
    const char *src = (const char *)data + pos;
    if (plen && data[pos] == 0xFE) {
        src++;
        plen--;
    } else {
        ref_compile(&rr[0], &tr[0], ftext);
        if (rr[0].ok && tr[0].kind != CEL_ROUTE_OPAQUE) {
            plen = instantiate(&rr[0], data + pos, plen, tmp, sizeof(tmp));
            src = tmp;
        }
    }
    char *path = malloc(plen ? plen : 1);   /* exact size: over-reads trap */
    REQUIRE(path);
    if (plen)
        memcpy(path, src, plen);
    const char *method = size && (data[0] & 0x80) ? "POST" : "GET";
    size_t mlen = strlen(method);

    cel_router *r = cel_router_new();
    REQUIRE(r);
    cel_router_set_budget(r, 2048ul << (size && (data[0] & 0x40) ? 4 : 0));
    int added[MAX_ROUTES], na = 0;
    for (int i = 0; i < nr; i++) {
        ref_compile(&rr[na], &tr[i], rtext[na]);
        int rc = cel_router_add(r, tr[i].kind, tr[i].tpl, tr[i].len, tr[i].methods, 100 + i);
        REQUIRE(rc == (rr[na].ok ? 0 : CEL_EINVAL));
        if (rc == 0) {
            cel_route_info info;
            REQUIRE(cel_router_route_info(r, (size_t)na, &info) == 0);
            REQUIRE(info.id == 100 + i && info.kind == tr[i].kind);
            REQUIRE(info.nparams == (size_t)rr[na].nparams);
            for (int k = 0, j = 0; k < rr[na].nparts; k++) {
                const rpart *q = &rr[na].parts[k];
                if (q->type == R_LIT)
                    continue;
                REQUIRE(info.params[j].name.len == q->len);
                REQUIRE(memcmp(info.params[j].name.p, q->s, q->len) == 0);
                REQUIRE(info.params[j].conv == q->type);    /* same numbering */
                j++;
            }
            added[na++] = i;
        }
    }
    REQUIRE(cel_router_count(r) == (size_t)na);

    cel_route_match m1, m2;
    int rc1 = cel_router_match(r, method, mlen, path, plen, &m1);
    int rc2 = cel_router_match(r, method, mlen, path, plen, &m2);
    REQUIRE(rc1 == rc2);
    REQUIRE(rc1 == CEL_ROUTER_NONE || rc1 == CEL_ROUTER_FULL || rc1 == CEL_ROUTER_OPAQUE
            || rc1 == CEL_ROUTER_EBUDGET);
    if (rc1 != CEL_ROUTER_EBUDGET) {
        REQUIRE(m1.partial_seen == m2.partial_seen && m1.partial_id == m2.partial_id);
    }
    if (rc1 == CEL_ROUTER_FULL || rc1 == CEL_ROUTER_OPAQUE) {
        REQUIRE(m1.id == m2.id && m1.index == m2.index && m1.nparams == m2.nparams);
        REQUIRE(m1.nparams <= CEL_ROUTER_MAX_PARAMS);
        for (size_t k = 0; k < m1.nparams; k++) {
            const cel_slice *v = &m1.params[k].value;
            REQUIRE(v->p >= path && v->len <= plen && (size_t)(v->p - path) <= plen - v->len);
            REQUIRE(v->p == m2.params[k].value.p && v->len == m2.params[k].value.len);
        }
    }

    /* The reference router loop; skipped where either side gave up. */
    int ref_rc = CEL_ROUTER_NONE, ref_idx = -1, partial = -1, gave_up = 0;
    rmatch rm;
    rm.p = path;
    rm.n = plen;
    rm.steps = 0;
    for (int k = 0; k < na && plen <= REF_MAX_PATH; k++) {
        const troute *t = &tr[added[k]];
        if (t->kind == CEL_ROUTE_OPAQUE) {
            ref_rc = CEL_ROUTER_OPAQUE;
            ref_idx = k;
            break;
        }
        int allowed = t->kind == CEL_ROUTE_MOUNT || method_in(t->methods, method, mlen);
        if (!allowed && partial >= 0)
            continue;
        int hit = ref_from(&rm, &rr[k], 0, 0);
        if (hit < 0) {
            gave_up = 1;
            break;
        }
        if (hit && !allowed)
            partial = k;
        else if (hit) {
            ref_rc = CEL_ROUTER_FULL;
            ref_idx = k;
            break;
        }
    }
    if (!gave_up && rc1 != CEL_ROUTER_EBUDGET && plen <= REF_MAX_PATH) {
        REQUIRE(rc1 == ref_rc);
        REQUIRE(m1.partial_id == (partial >= 0 ? 100 + added[partial] : -1));
        if (ref_rc != CEL_ROUTER_NONE)
            REQUIRE(m1.index == (size_t)ref_idx && m1.id == 100 + added[ref_idx]);
        if (ref_rc == CEL_ROUTER_FULL) {
            const rroute *q = &rr[ref_idx];
            for (int k = 0, j = 0; k < q->nparts; k++) {
                if (q->parts[k].type == R_LIT)
                    continue;
                REQUIRE((size_t)(m1.params[j].value.p - path) == rm.beg[k]);
                REQUIRE(m1.params[j].value.len == rm.end[k] - rm.beg[k]);
                j++;
            }
            if (q->kind == CEL_ROUTE_MOUNT)
                REQUIRE(m1.mount_prefix_len == plen - 1 - (rm.end[q->nparts - 1] - rm.beg[q->nparts - 1]));
            else
                REQUIRE(m1.mount_prefix_len == 0);
        }
    }

    cel_router_free(r);
    free(path);
    return 0;
}
