/* multipart/form-data and urlencoded form parsers (contracts in multipart.h,
 * design and Starlette mapping in docs/multipart.md). */
#include "multipart.h"

#include <string.h>

#include "alloc.h"
#include "errors.h"
#include "urlcode.h"

void cel_mp_limits_default(cel_mp_limits *l)
{
    l->max_header_count = 8;
    l->max_header_size = 4096 + 128;
    l->max_files = 1000;
    l->max_fields = 1000;
    l->max_field_size = 1024 * 1024;
}

/* ---- header parameters (python-multipart's parse_options_header) ---- */

static int sp_tab(char c)
{
    return c == ' ' || c == '\t';
}

static void strip_sp_tab(const char **p, size_t *n)
{
    while (*n && sp_tab((*p)[0])) {
        (*p)++;
        (*n)--;
    }
    while (*n && sp_tab((*p)[*n - 1]))
        (*n)--;
}

/* str.lower() of a latin-1 character. */
static unsigned char lower_l1(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 0xC0 && c <= 0xDE && c != 0xD7))
        return (unsigned char)(c + 32);
    return c;
}

typedef struct param {
    const char *key;
    size_t klen;
    int has_eq;                 /* keys are lower-cased only when '=' is present */
    const char *val;
    size_t vlen;
} param;

/* End of the ';'-separated segment starting at pos: the first ';' outside
 * double quotes (a '"' right after a backslash does not count), or n. */
static size_t segment_end(const char *s, size_t n, size_t pos)
{
    int open = 0;
    for (size_t j = pos; j < n; j++) {
        if (s[j] == '"' && !(j > 0 && s[j - 1] == '\\'))
            open ^= 1;
        else if (s[j] == ';' && !open)
            return j;
    }
    return n;
}

static void split_param(const char *seg, size_t n, param *out)
{
    const char *eq = memchr(seg, '=', n);
    if (eq) {
        out->key = seg;
        out->klen = (size_t)(eq - seg);
        out->val = eq + 1;
        out->vlen = n - out->klen - 1;
        out->has_eq = 1;
        strip_sp_tab(&out->val, &out->vlen);
    } else {
        out->key = seg;
        out->klen = n;
        out->val = seg + n;
        out->vlen = 0;
        out->has_eq = 0;
    }
    strip_sp_tab(&out->key, &out->klen);
}

/* Whether param p has key (lower-case ASCII). */
static int key_is(const param *p, const char *key, size_t klen)
{
    if (p->klen != klen)
        return 0;
    for (size_t i = 0; i < klen; i++) {
        unsigned char c = (unsigned char)p->key[i];
        if ((p->has_eq ? lower_l1(c) : c) != (unsigned char)key[i])
            return 0;
    }
    return 1;
}

/* The last param (after the media type) named key, or 0 if none.  '*' keys
 * never match (python-multipart skips them), except through key_star. */
static int find_param(const char *v, size_t n, const char *key, size_t klen, param *out)
{
    if (!memchr(v, ';', n))
        return 0;
    int found = 0;
    size_t pos = segment_end(v, n, 0);
    while (pos < n) {               /* v[pos] == ';' */
        size_t start = pos + 1, end = segment_end(v, n, start);
        param p;
        split_param(v + start, end - start, &p);
        if (key_is(&p, key, klen)) {
            *out = p;
            found = 1;
        }
        pos = end;
    }
    return found;
}

/* The value of a found param: quotes removed and "\\\\" -> "\\" then
 * "\\\"" -> "\"" (two passes, as the two str.replace calls), into dst
 * (p->vlen bytes suffice).  Returns the length. */
static size_t param_value(const param *p, char *dst)
{
    const char *v = p->val;
    size_t n = p->vlen;
    if (n < 2 || v[0] != '"' || v[n - 1] != '"') {
        memcpy(dst, v, n);
        return n;
    }
    size_t o = 0;
    for (size_t i = 1; i < n - 1; i++) {
        dst[o++] = v[i];
        if (v[i] == '\\' && i + 1 < n - 1 && v[i + 1] == '\\')
            i++;
    }
    size_t w = 0;
    for (size_t i = 0; i < o; i++) {
        if (dst[i] == '\\' && i + 1 < o && dst[i + 1] == '"')
            i++;
        dst[w++] = dst[i];
    }
    return w;
}

/* python-multipart's IE6 fix: "C:\\dir\\f" or "\\\\host\\f" -> "f". */
static size_t strip_ie_path(char *v, size_t n)
{
    if ((n >= 3 && v[1] == ':' && v[2] == '\\') || (n >= 2 && v[0] == '\\' && v[1] == '\\')) {
        size_t last = n;
        while (last > 0 && v[last - 1] != '\\')
            last--;
        memmove(v, v + last, n - last);
        return n - last;
    }
    return n;
}

int cel_mp_param(const char *value, size_t n, const char *key, size_t klen, char *buf,
                 size_t cap, size_t *outlen)
{
    param p;
    if (klen == 0 || memchr(key, '*', klen) || !find_param(value, n, key, klen, &p))
        return 0;
    if (p.vlen > cap)
        return CEL_ENOSPC;
    *outlen = param_value(&p, buf);
    return 1;
}

size_t cel_mp_media_type(const char *value, size_t n, char *buf)
{
    const char *s = value;
    size_t len = n, o = 0;
    if (memchr(value, ';', n)) {
        len = segment_end(value, n, 0);
        param p;
        split_param(s, len, &p);
        for (size_t i = 0; i < p.klen; i++)
            buf[o++] = (char)lower_l1((unsigned char)p.key[i]);
        if (!p.has_eq)
            return o;
        buf[o++] = '=';
        for (size_t i = 0; i < p.vlen; i++)
            buf[o++] = (char)lower_l1((unsigned char)p.val[i]);
        return o;
    }
    strip_sp_tab(&s, &len);
    for (size_t i = 0; i < len; i++)
        buf[o++] = (char)lower_l1((unsigned char)s[i]);
    return o;
}

/* ---- multipart/form-data ---- */

enum mp_state {
    S_START,            /* nothing yet */
    S_PREAMBLE,         /* began with CR/LF: skip to the first '-' */
    S_FIRST,            /* matching "--boundary" (idx into delim) */
    S_FIRST_AFTER,      /* CR or '-' */
    S_FIRST_LF,
    S_FIRST_HYPHEN,
    S_HFIELD_START,     /* start of a header line or the blank line */
    S_HFIELD,
    S_HVALUE_START,
    S_HVALUE,
    S_HVALUE_LF,
    S_HEADERS_LF,
    S_DATA,
    S_PADDING,          /* delimiter, SP/HT: more SP/HT then CRLF */
    S_PADDING_LF,
    S_END
};

typedef struct hrec {
    size_t name_off, name_len, value_off, value_len;
} hrec;

#define DELIM_MAX (4 + CEL_MP_MAX_BOUNDARY + 1)

struct cel_multipart {
    cel_mp_limits lim;
    int state;
    int err;                    /* sticky error, 0 if none */
    int pending;                /* event to return first (CEL_MP_END after the last part) */
    int done;
    char delim[DELIM_MAX];      /* "\r\n--" boundary */
    size_t dlen;
    size_t idx;
    char held[DELIM_MAX];       /* possible delimiter carried over from earlier input */
    size_t nheld;
    char *hbuf;                 /* names and values of this part's headers */
    size_t hlen, hcap;
    hrec *recs;
    cel_header *hdrs;
    size_t nrecs, rcap;
    size_t line_size;           /* bytes of the current header line */
    char *dec;                  /* decoded Content-Disposition params */
    size_t dcap;
    size_t files, fields, part_size;
    int is_file;
};

int cel_mp_new(cel_multipart **out, const char *boundary, size_t blen, const cel_mp_limits *lim)
{
    *out = NULL;
    if (blen > CEL_MP_MAX_BOUNDARY || memchr(boundary, '\r', blen) || memchr(boundary, '\n', blen))
        return CEL_EMPBOUNDARY;
    cel_multipart *mp = cel_calloc(1, sizeof *mp);
    if (!mp)
        return CEL_ENOMEM;
    if (lim)
        mp->lim = *lim;
    else
        cel_mp_limits_default(&mp->lim);
    memcpy(mp->delim, "\r\n--", 4);
    if (blen)
        memcpy(mp->delim + 4, boundary, blen);
    mp->dlen = 4 + blen;
    mp->state = S_START;
    *out = mp;
    return 0;
}

void cel_mp_free(cel_multipart *mp)
{
    if (!mp)
        return;
    cel_free(mp->hbuf);
    cel_free(mp->recs);
    cel_free(mp->hdrs);
    cel_free(mp->dec);
    cel_free(mp);
}

int cel_mp_done(const cel_multipart *mp)
{
    return mp->done;
}

static int fail(cel_multipart *mp, int err)
{
    mp->err = err;
    return err;
}

static int hbuf_put(cel_multipart *mp, char c)
{
    if (mp->hlen == mp->hcap) {
        size_t ncap = mp->hcap ? 2 * mp->hcap : 256;
        char *nb = cel_realloc(mp->hbuf, ncap);
        if (!nb)
            return CEL_ENOMEM;
        mp->hbuf = nb;
        mp->hcap = ncap;
    }
    mp->hbuf[mp->hlen++] = c;
    return 0;
}

static int new_rec(cel_multipart *mp)
{
    if (mp->nrecs == mp->rcap) {
        size_t ncap = mp->rcap ? 2 * mp->rcap : 8;
        hrec *nr = cel_realloc(mp->recs, ncap * sizeof *nr);
        if (!nr)
            return CEL_ENOMEM;
        mp->recs = nr;
        cel_header *nh = cel_realloc(mp->hdrs, ncap * sizeof *nh);
        if (!nh)
            return CEL_ENOMEM;
        mp->hdrs = nh;
        mp->rcap = ncap;
    }
    hrec *r = &mp->recs[mp->nrecs++];
    r->name_off = mp->hlen;
    r->name_len = r->value_off = r->value_len = 0;
    return 0;
}

static void begin_part(cel_multipart *mp)
{
    mp->hlen = 0;
    mp->nrecs = 0;
    mp->state = S_HFIELD_START;
}

static int name_is(const cel_multipart *mp, const hrec *r, const char *lname, size_t n)
{
    if (r->name_len != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower_l1((unsigned char)mp->hbuf[r->name_off + i]) != (unsigned char)lname[i])
            return 0;
    return 1;
}

/* RFC 5987 ext-value charset'lang'pct-encoded -> charset and decoded value
 * (into dst, vlen bytes suffice). */
static void ext_value(const char *v, size_t n, char *dst, cel_mp_part *part)
{
    const char *q1 = memchr(v, '\'', n);
    const char *q2 = q1 ? memchr(q1 + 1, '\'', n - (size_t)(q1 + 1 - v)) : NULL;
    if (!q2)
        return;
    size_t rest = n - (size_t)(q2 + 1 - v);
    part->filename_star_charset.p = v;
    part->filename_star_charset.len = (size_t)(q1 - v);
    part->filename_star.p = dst;
    part->filename_star.len = cel_url_decode(q2 + 1, rest, dst, 0);
}

/* Headers complete: fill ev->part, apply Starlette's per-part checks. */
static int finish_head(cel_multipart *mp, cel_mp_part *part)
{
    memset(part, 0, sizeof *part);
    const hrec *cd = NULL;
    for (size_t i = 0; i < mp->nrecs; i++) {
        const hrec *r = &mp->recs[i];
        mp->hdrs[i].name.p = mp->hbuf + r->name_off;
        mp->hdrs[i].name.len = r->name_len;
        mp->hdrs[i].value.p = mp->hbuf + r->value_off;
        mp->hdrs[i].value.len = r->value_len;
        if (name_is(mp, r, "content-disposition", 19))
            cd = r;             /* the last one wins */
        else if (!part->content_type.p && name_is(mp, r, "content-type", 12))
            part->content_type = mp->hdrs[i].value;
    }
    part->headers = mp->hdrs;
    part->nheaders = mp->nrecs;
    if (!cd)
        return CEL_EMPNONAME;
    const char *v = mp->hbuf + cd->value_off;
    size_t n = cd->value_len;
    if (3 * n > mp->dcap) {
        char *nd = cel_realloc(mp->dec, 3 * n);
        if (!nd)
            return CEL_ENOMEM;
        mp->dec = nd;
        mp->dcap = 3 * n;
    }
    param p;
    if (!find_param(v, n, "name", 4, &p))
        return CEL_EMPNONAME;
    part->name.p = mp->dec;
    part->name.len = param_value(&p, mp->dec);
    if (find_param(v, n, "filename", 8, &p)) {
        char *f = mp->dec + n;
        part->has_filename = 1;
        part->filename.p = f;
        part->filename.len = strip_ie_path(f, param_value(&p, f));
    }
    if (find_param(v, n, "filename*", 9, &p))
        ext_value(p.val, p.vlen, mp->dec + 2 * n, part);
    if (part->has_filename) {
        if (++mp->files > mp->lim.max_files)
            return CEL_EMPFILES;
    } else if (++mp->fields > mp->lim.max_fields) {
        return CEL_EMPFIELDS;
    }
    mp->is_file = part->has_filename;
    mp->part_size = 0;
    return 0;
}

static int emit_data(cel_multipart *mp, const char *p, size_t n, cel_mp_event *ev)
{
    if (!mp->is_file) {
        mp->part_size += n;
        if (mp->part_size > mp->lim.max_field_size)
            return fail(mp, CEL_EMPPARTSIZE);
    }
    ev->data.p = p;
    ev->data.len = n;
    return CEL_MP_DATA;
}

enum { C_EXTEND, C_MISMATCH, C_NEXT, C_LAST, C_PAD };

/* One more byte c of a candidate delimiter whose first m bytes are cand[0..m)
 * (already matched): the delimiter, then CRLF (next part), "--" (end) or
 * SP/HT (padding before CRLF). */
static int cand_step(const cel_multipart *mp, const char *cand, size_t m, char c)
{
    if (m < mp->dlen)
        return c == mp->delim[m] ? C_EXTEND : C_MISMATCH;
    if (m == mp->dlen) {
        if (c == '\r' || c == '-')
            return C_EXTEND;
        return sp_tab(c) ? C_PAD : C_MISMATCH;
    }
    if (cand[mp->dlen] == '\r')
        return c == '\n' ? C_NEXT : C_MISMATCH;
    return c == '-' ? C_LAST : C_MISMATCH;
}

/* A delimiter was recognised and its last byte is at buf[at]. */
static int delimiter(cel_multipart *mp, int kind, size_t at, size_t *i, size_t *consumed)
{
    mp->nheld = 0;
    if (kind == C_PAD) {
        mp->state = S_PADDING;
        *i = at + 1;
        return 0;
    }
    *consumed = at + 1;
    if (kind == C_NEXT) {
        begin_part(mp);
    } else {
        mp->state = S_END;
        mp->pending = CEL_MP_END;
    }
    return CEL_MP_PART_END;
}

/* S_DATA from buf[*i]: an event, or 0 with *i advanced (padding state or all
 * input used). */
static int data_step(cel_multipart *mp, const char *buf, size_t len, size_t *i,
                     size_t *consumed, cel_mp_event *ev)
{
    if (mp->nheld) {
        while (*i < len) {
            int k = cand_step(mp, mp->held, mp->nheld, buf[*i]);
            if (k == C_EXTEND) {
                mp->held[mp->nheld++] = buf[*i];
                (*i)++;
                continue;
            }
            if (k == C_MISMATCH) {
                /* the held bytes were data; buf[*i] is looked at afresh */
                size_t n = mp->nheld;
                mp->nheld = 0;
                *consumed = *i;
                return emit_data(mp, mp->held, n, ev);
            }
            return delimiter(mp, k, *i, i, consumed);
        }
        return 0;
    }
    size_t start = *i, from = *i;
    while (from < len) {
        const char *cr = memchr(buf + from, '\r', len - from);
        if (!cr)
            break;
        size_t q = (size_t)(cr - buf), k = q, m = 0;
        int kind = C_EXTEND;
        while (k < len && (kind = cand_step(mp, buf + q, m, buf[k])) == C_EXTEND) {
            m++;
            k++;
        }
        if (kind == C_MISMATCH) {
            from = q + 1;
            continue;
        }
        if (q > start) {
            *consumed = q;
            return emit_data(mp, buf + start, q - start, ev);
        }
        if (k == len) {         /* ran out mid-candidate: hold it */
            memcpy(mp->held, buf + q, len - q);
            mp->nheld = len - q;
            *i = len;
            return 0;
        }
        return delimiter(mp, kind, k, i, consumed);
    }
    *i = len;
    if (len > start) {
        *consumed = len;
        return emit_data(mp, buf + start, len - start, ev);
    }
    return 0;
}

static int header_byte(cel_multipart *mp)
{
    if (++mp->line_size > mp->lim.max_header_size)
        return CEL_EMPHEADER;
    return 0;
}

static int is_token(unsigned char c)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || (c && memchr(extra, c, sizeof extra - 1));
}

int cel_mp_parse(cel_multipart *mp, const char *buf, size_t len, size_t *consumed,
                 cel_mp_event *ev)
{
    size_t i = 0;
    int rc;
    *consumed = 0;
    if (mp->err)
        return mp->err;
    if (mp->pending) {
        rc = mp->pending;
        mp->pending = 0;
        mp->done = 1;
        return rc;
    }
    while (i < len) {
        char c = buf[i];
        switch (mp->state) {
        case S_START:
            if (c == '\r' || c == '\n') {
                mp->state = S_PREAMBLE;
                i++;
            } else {
                mp->state = S_FIRST;
                mp->idx = 2;
            }
            break;
        case S_PREAMBLE: {
            const char *h = memchr(buf + i, '-', len - i);
            if (!h) {
                i = len;
                break;
            }
            i = (size_t)(h - buf);
            mp->state = S_FIRST;
            mp->idx = 2;
            break;
        }
        case S_FIRST:
            if (c != mp->delim[mp->idx])
                return fail(mp, CEL_EMPSYNTAX);
            i++;
            if (++mp->idx == mp->dlen)
                mp->state = S_FIRST_AFTER;
            break;
        case S_FIRST_AFTER:
            if (c == '-')
                mp->state = S_FIRST_HYPHEN;
            else if (c == '\r')
                mp->state = S_FIRST_LF;
            else
                return fail(mp, CEL_EMPSYNTAX);
            i++;
            break;
        case S_FIRST_HYPHEN:
            if (c != '-')
                return fail(mp, CEL_EMPSYNTAX);
            mp->state = S_END;
            mp->done = 1;
            *consumed = i + 1;
            return CEL_MP_END;
        case S_FIRST_LF:
            if (c != '\n')
                return fail(mp, CEL_EMPSYNTAX);
            i++;
            begin_part(mp);
            break;
        case S_HFIELD_START:
            if (c == '\r') {
                mp->state = S_HEADERS_LF;
                i++;
                break;
            }
            if (mp->nrecs == mp->lim.max_header_count)
                return fail(mp, CEL_EMPHEADER);
            if ((rc = new_rec(mp)) < 0)
                return fail(mp, rc);
            mp->line_size = 0;
            mp->state = S_HFIELD;
            break;
        case S_HFIELD: {
            hrec *r = &mp->recs[mp->nrecs - 1];
            if ((rc = header_byte(mp)) < 0)
                return fail(mp, rc);
            if (c == ':') {
                if (r->name_len == 0)
                    return fail(mp, CEL_EMPSYNTAX);
                mp->state = S_HVALUE_START;
            } else if (is_token((unsigned char)c)) {
                if ((rc = hbuf_put(mp, c)) < 0)
                    return fail(mp, rc);
                r->name_len++;
            } else {
                return fail(mp, CEL_EMPSYNTAX);
            }
            i++;
            break;
        }
        case S_HVALUE_START:
            if (c == ' ') {
                if ((rc = header_byte(mp)) < 0)
                    return fail(mp, rc);
                i++;
                break;
            }
            mp->recs[mp->nrecs - 1].value_off = mp->hlen;
            mp->state = S_HVALUE;
            break;
        case S_HVALUE:
            if (c == '\r') {
                mp->state = S_HVALUE_LF;
            } else {
                if ((rc = header_byte(mp)) < 0 || (rc = hbuf_put(mp, c)) < 0)
                    return fail(mp, rc);
                mp->recs[mp->nrecs - 1].value_len++;
            }
            i++;
            break;
        case S_HVALUE_LF:
            if (c != '\n')
                return fail(mp, CEL_EMPSYNTAX);
            mp->state = S_HFIELD_START;
            i++;
            break;
        case S_HEADERS_LF:
            if (c != '\n')
                return fail(mp, CEL_EMPSYNTAX);
            if ((rc = finish_head(mp, &ev->part)) < 0)
                return fail(mp, rc);
            mp->state = S_DATA;
            mp->nheld = 0;
            *consumed = i + 1;
            return CEL_MP_PART;
        case S_DATA:
            rc = data_step(mp, buf, len, &i, consumed, ev);
            if (rc)
                return rc;
            break;
        case S_PADDING:
            if (c == '\r')
                mp->state = S_PADDING_LF;
            else if (!sp_tab(c))
                return fail(mp, CEL_EMPSYNTAX);
            i++;
            break;
        case S_PADDING_LF:
            if (c != '\n')
                return fail(mp, CEL_EMPSYNTAX);
            begin_part(mp);
            *consumed = i + 1;
            return CEL_MP_PART_END;
        default:                /* S_END: the epilogue is ignored */
            i = len;
            break;
        }
    }
    *consumed = len;
    return CEL_EAGAIN;
}

/* ---- application/x-www-form-urlencoded ---- */

void cel_form_limits_default(cel_form_limits *l)
{
    l->max_fields = 1000;
    l->max_field_size = 1024 * 1024;
}

enum { F_BETWEEN, F_NAME, F_VALUE };

struct cel_form {
    cel_form_limits lim;
    int state;
    int err;
    char *raw;                  /* name then value bytes of the current field */
    size_t nlen, vlen, cap;
    char *dec;
    size_t dcap;
    size_t nfields;
};

cel_form *cel_form_new(const cel_form_limits *lim)
{
    cel_form *f = cel_calloc(1, sizeof *f);
    if (!f)
        return NULL;
    if (lim)
        f->lim = *lim;
    else
        cel_form_limits_default(&f->lim);
    return f;
}

void cel_form_free(cel_form *f)
{
    if (!f)
        return;
    cel_free(f->raw);
    cel_free(f->dec);
    cel_free(f);
}

static int form_fail(cel_form *f, int err)
{
    f->err = err;
    return err;
}

static int form_append(cel_form *f, const char *p, size_t n)
{
    size_t used = f->nlen + f->vlen;
    if (n == 0)
        return 0;
    if (n > f->lim.max_field_size - used)
        return CEL_EFORMFIELDSIZE;
    if (used + n > f->cap) {
        size_t ncap = f->cap ? f->cap : 256;
        while (ncap < used + n)
            ncap *= 2;
        char *nr = cel_realloc(f->raw, ncap);
        if (!nr)
            return CEL_ENOMEM;
        f->raw = nr;
        f->cap = ncap;
    }
    memcpy(f->raw + used, p, n);
    return 0;
}

/* The field in f->raw is complete: count it and decode it into *out. */
static int form_field_end(cel_form *f, cel_form_field *out)
{
    f->state = F_BETWEEN;
    if (++f->nfields > f->lim.max_fields)
        return form_fail(f, CEL_EMPFIELDS);
    size_t need = 2 * (f->nlen + f->vlen) + 1;     /* never 0: the slices need a base */
    if (need > f->dcap) {
        char *nd = cel_realloc(f->dec, need);
        if (!nd)
            return form_fail(f, CEL_ENOMEM);
        f->dec = nd;
        f->dcap = need;
    }
    size_t dn = f->nlen ? cel_url_unquote_py(f->raw, f->nlen, f->dec, 1) : 0;
    size_t dv = f->vlen ? cel_url_unquote_py(f->raw + f->nlen, f->vlen, f->dec + dn, 1) : 0;
    out->name.p = f->dec;
    out->name.len = dn;
    out->value.p = f->dec + dn;
    out->value.len = dv;
    f->nlen = f->vlen = 0;
    return 1;
}

int cel_form_parse(cel_form *f, const char *buf, size_t len, size_t *consumed,
                   cel_form_field *out)
{
    size_t i = 0;
    int rc;
    *consumed = 0;
    if (f->err)
        return f->err;
    while (i < len) {
        if (f->state == F_BETWEEN) {
            if (buf[i] == '&')
                i++;
            else
                f->state = F_NAME;
            continue;
        }
        size_t j = i;
        while (j < len && buf[j] != '&' && !(f->state == F_NAME && buf[j] == '='))
            j++;
        if ((rc = form_append(f, buf + i, j - i)) < 0)
            return form_fail(f, rc);
        if (f->state == F_NAME)
            f->nlen += j - i;
        else
            f->vlen += j - i;
        i = j;
        if (i == len)
            break;
        i++;
        if (buf[j] == '=') {
            f->state = F_VALUE;
            continue;
        }
        *consumed = i;
        return form_field_end(f, out);
    }
    *consumed = len;
    return CEL_EAGAIN;
}

int cel_form_finish(cel_form *f, cel_form_field *out)
{
    if (f->err)
        return f->err;
    if (f->state == F_BETWEEN)
        return 0;
    return form_field_end(f, out);
}
