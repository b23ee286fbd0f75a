/* libFuzzer driver for src/core/multipart.c.
 *
 * Input: one byte k, a boundary of k % 32 bytes, then the body.  The body is
 * parsed in one piece and again in two and three pieces (cuts derived from
 * the input), each piece in an exact-size heap copy so ASan catches
 * over-reads.  Invariants:
 *  - consumed <= len on every call; CEL_EAGAIN only with the piece used up;
 *    data events are never empty and lie inside the piece or, for held-back
 *    delimiter look-alikes, are at most boundary + 5 bytes of parser memory;
 *  - every split gives the same events (data merged), result and done flag;
 *  - no part's data contains a real delimiter (CRLF "--" boundary followed by
 *    CRLF, "--", SP or HT);
 *  - a well-formed body built from the input's bytes (when they hold no
 *    delimiter) parses back to exactly those parts;
 *  - the urlencoded decoder gives the same fields whole and split, each at
 *    most twice its raw size; the header-parameter helpers stay in bounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "multipart.h"

#define REQUIRE(cond) do { if (!(cond)) abort(); } while (0)

typedef struct trace {
    char *s;
    size_t n, cap;
    int in_data;
    int rc, done;
} trace;

static void tput(trace *t, const void *p, size_t n)
{
    if (t->n + n > t->cap) {
        while (t->n + n > t->cap)
            t->cap = t->cap ? 2 * t->cap : 1024;
        t->s = realloc(t->s, t->cap);
        REQUIRE(t->s);
    }
    memcpy(t->s + t->n, p, n);
    t->n += n;
}

static void tmark(trace *t, char m)
{
    if (t->in_data && m != 'D') {
        tput(t, "]", 1);
        t->in_data = 0;
    }
    if (m != 'D')
        tput(t, &m, 1);
}

/* A real delimiter inside data[0..n)? */
static int has_delimiter(const char *d, size_t n, const char *delim, size_t dl)
{
    for (size_t i = 0; i + dl < n; i++) {
        if (memcmp(d + i, delim, dl) != 0)
            continue;
        char c = d[i + dl];
        if (c == ' ' || c == '\t')
            return 1;
        if (i + dl + 1 < n && ((c == '\r' && d[i + dl + 1] == '\n') || (c == '-' && d[i + dl + 1] == '-')))
            return 1;
    }
    return 0;
}

static void parse(const char *bnd, size_t bl, const uint8_t *body, size_t len, const size_t *cuts,
                  size_t ncuts, trace *t)
{
    memset(t, 0, sizeof *t);
    cel_multipart *mp;
    t->rc = cel_mp_new(&mp, bnd, bl, NULL);
    if (t->rc < 0)
        return;
    char delim[300];
    memcpy(delim, "\r\n--", 4);
    memcpy(delim + 4, bnd, bl);
    size_t dl = 4 + bl, start = 0;
    char *pdata = NULL;         /* the current part's data, for has_delimiter */
    size_t pn = 0;
    int stop = 0;
    for (size_t k = 0; k <= ncuts && !stop; k++) {
        size_t end = k < ncuts ? cuts[k] : len, plen = end - start, off = 0;
        char *piece = malloc(plen ? plen : 1);
        REQUIRE(piece);
        if (plen)
            memcpy(piece, body + start, plen);
        for (;;) {
            size_t used;
            cel_mp_event ev;
            int rc = cel_mp_parse(mp, piece + off, plen - off, &used, &ev);
            REQUIRE(used <= plen - off);
            off += used;
            if (rc == CEL_EAGAIN) {
                REQUIRE(off == plen);
                break;
            }
            if (rc < 0) {
                t->rc = rc;
                stop = 1;
                break;
            }
            if (rc == CEL_MP_DATA) {
                REQUIRE(ev.data.len > 0);
                int in_piece = ev.data.p >= piece && ev.data.p + ev.data.len <= piece + plen;
                REQUIRE(in_piece || ev.data.len <= dl + 1);
                if (!t->in_data)
                    tput(t, "[", 1);
                t->in_data = 1;
                tput(t, ev.data.p, ev.data.len);
                pdata = realloc(pdata, pn + ev.data.len);
                REQUIRE(pdata);
                memcpy(pdata + pn, ev.data.p, ev.data.len);
                pn += ev.data.len;
            } else if (rc == CEL_MP_PART) {
                tmark(t, 'P');
                tput(t, ev.part.name.p, ev.part.name.len);
                tput(t, "|", 1);
                if (ev.part.has_filename)
                    tput(t, ev.part.filename.p, ev.part.filename.len);
                REQUIRE(ev.part.name.len <= len && ev.part.filename.len <= len);
                for (size_t h = 0; h < ev.part.nheaders; h++)
                    REQUIRE(ev.part.headers[h].name.len > 0);
                pn = 0;
            } else if (rc == CEL_MP_PART_END) {
                tmark(t, '/');
                REQUIRE(!has_delimiter(pdata, pn, delim, dl));
                pn = 0;
            } else {
                REQUIRE(rc == CEL_MP_END);
                tmark(t, '$');
            }
        }
        free(piece);
        start = end;
    }
    if (t->in_data)
        tmark(t, '.');
    t->done = cel_mp_done(mp);
    free(pdata);
    cel_mp_free(mp);
}

static void same(const trace *a, const trace *b)
{
    REQUIRE(a->rc == b->rc && a->done == b->done && a->n == b->n);
    REQUIRE(a->n == 0 || memcmp(a->s, b->s, a->n) == 0);
}

/* Builds "--B\r\nContent-Disposition: form-data; name=pI\r\n\r\n<chunk>\r\n"
 * for up to three chunks of data and checks they come back. */
static void roundtrip(const uint8_t *data, size_t size)
{
    static const char bnd[] = "fuzzB0undary";
    size_t third = size / 3;
    const uint8_t *parts[3] = { data, data + third, data + 2 * third };
    size_t lens[3] = { third, third, size - 2 * third };
    char *body = malloc(3 * 80 + size + 40);
    REQUIRE(body);
    size_t n = (size_t)sprintf(body, "--%s\r\n", bnd);
    for (int i = 0; i < 3; i++) {
        if (memmem(parts[i], lens[i], "\r\n--fuzzB0undary", 16)) {
            free(body);
            return;
        }
        n += (size_t)sprintf(body + n, "Content-Disposition: form-data; name=p%d\r\n\r\n", i);
        memcpy(body + n, parts[i], lens[i]);
        n += lens[i];
        n += (size_t)sprintf(body + n, "\r\n--%s%s", bnd, i == 2 ? "--" : "\r\n");
    }
    trace t;
    parse(bnd, sizeof bnd - 1, (const uint8_t *)body, n, NULL, 0, &t);
    REQUIRE(t.rc == 0 && t.done);
    size_t want_n = 0;
    char *want = malloc(size + 64);
    REQUIRE(want);
    for (int i = 0; i < 3; i++) {
        want_n += (size_t)sprintf(want + want_n, "Pp%d|", i);
        if (lens[i]) {
            want[want_n++] = '[';
            memcpy(want + want_n, parts[i], lens[i]);
            want_n += lens[i];
            want[want_n++] = ']';
        }
        want[want_n++] = '/';
    }
    want[want_n++] = '$';
    REQUIRE(t.n == want_n && memcmp(t.s, want, want_n) == 0);
    free(want);
    free(t.s);
    free(body);
}

static void form(const uint8_t *body, size_t len, size_t cut)
{
    char *out[2] = { NULL, NULL };
    size_t on[2] = { 0, 0 };
    int fin[2];
    for (int pass = 0; pass < 2; pass++) {
        cel_form_limits lim = { 50, 64 };
        cel_form *f = cel_form_new(&lim);
        REQUIRE(f);
        size_t cuts[2] = { pass ? cut : 0, len }, start = 0;
        int rc = CEL_EAGAIN;
        out[pass] = malloc(4 * len + 16);
        REQUIRE(out[pass]);
        for (int k = 0; k < 2 && rc == CEL_EAGAIN; k++) {
            size_t plen = cuts[k] - start, off = 0, used;
            char *piece = malloc(plen ? plen : 1);
            REQUIRE(piece);
            if (plen)
                memcpy(piece, body + start, plen);
            cel_form_field fld;
            while ((rc = cel_form_parse(f, piece + off, plen - off, &used, &fld)) == 1) {
                off += used;
                REQUIRE(fld.name.len + fld.value.len <= 2 * 64);
                memcpy(out[pass] + on[pass], fld.name.p, fld.name.len);
                on[pass] += fld.name.len;
                out[pass][on[pass]++] = '=';
                memcpy(out[pass] + on[pass], fld.value.p, fld.value.len);
                on[pass] += fld.value.len;
                out[pass][on[pass]++] = '&';
            }
            REQUIRE(rc != CEL_EAGAIN || off + used == plen);
            free(piece);
            start = cuts[k];
        }
        if (rc == CEL_EAGAIN) {
            cel_form_field fld;
            rc = cel_form_finish(f, &fld);
            if (rc == 1)
                on[pass] += fld.name.len + fld.value.len;
        }
        fin[pass] = rc;
        cel_form_free(f);
    }
    REQUIRE(fin[0] == fin[1] && on[0] == on[1] && memcmp(out[0], out[1], on[0]) == 0);
    free(out[0]);
    free(out[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t bl = data[0] % 32;
    if (bl > size - 1)
        bl = size - 1;
    char *bnd = malloc(bl ? bl : 1);
    REQUIRE(bnd);
    if (bl)
        memcpy(bnd, data + 1, bl);
    const uint8_t *body = data + 1 + bl;
    size_t len = size - 1 - bl;

    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    size_t c1 = len ? h % (len + 1) : 0, c2 = len ? (h / 7919) % (len + 1) : 0;
    if (c2 < c1) {
        size_t x = c1;
        c1 = c2;
        c2 = x;
    }
    trace whole, two, three;
    size_t cuts[2] = { c1, c2 };
    parse(bnd, bl, body, len, NULL, 0, &whole);
    parse(bnd, bl, body, len, cuts, 1, &two);
    parse(bnd, bl, body, len, cuts, 2, &three);
    same(&whole, &two);
    same(&whole, &three);
    free(whole.s);
    free(two.s);
    free(three.s);

    roundtrip(body, len);
    form(body, len, c1);

    char *buf = malloc(len + 1);
    REQUIRE(buf);
    size_t on = 0;
    int rc = cel_mp_param((const char *)body, len, "boundary", 8, buf, len, &on);
    REQUIRE(rc == 0 || (rc == 1 && on <= len));
    REQUIRE(cel_mp_media_type((const char *)body, len, buf) <= len);
    free(buf);
    free(bnd);
    return 0;
}
