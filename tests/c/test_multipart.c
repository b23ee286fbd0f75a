/* Tests for src/core/multipart.c.
 *
 * Each multipart case is parsed whole, split at every byte, and (for short
 * inputs) split at every pair of bytes, every piece in its own buffer ending
 * at a guard page.  The events are written as a transcript (consecutive data
 * merged) that must be the same for every split and equal the expectation,
 * which comes from Starlette's MultiPartParser on python-multipart 0.0.x.
 */
#include "test.h"

#include "alloc.h"
#include "errors.h"
#include "multipart.h"

#define S(lit) lit, (sizeof(lit) - 1)

typedef struct transcript {
    char s[8192];
    size_t n;
    int in_data;
} transcript;

static void put(transcript *t, const char *p, size_t n)
{
    if (n > sizeof t->s - 1 - t->n)
        n = sizeof t->s - 1 - t->n;
    memcpy(t->s + t->n, p, n);
    t->n += n;
    t->s[t->n] = 0;
}

static void puts_(transcript *t, const char *z)
{
    put(t, z, strlen(z));
}

static void put_event(transcript *t, int rc, const cel_mp_event *ev)
{
    if (rc != CEL_MP_DATA && t->in_data) {
        puts_(t, "]");
        t->in_data = 0;
    }
    switch (rc) {
    case CEL_MP_PART:
        puts_(t, "<");
        put(t, ev->part.name.p, ev->part.name.len);
        if (ev->part.has_filename) {
            puts_(t, "|f=");
            put(t, ev->part.filename.p, ev->part.filename.len);
        }
        if (ev->part.content_type.p) {
            puts_(t, "|ct=");
            put(t, ev->part.content_type.p, ev->part.content_type.len);
        }
        puts_(t, ">");
        break;
    case CEL_MP_DATA:
        if (!t->in_data)
            puts_(t, "[");
        t->in_data = 1;
        put(t, ev->data.p, ev->data.len);
        break;
    case CEL_MP_PART_END:
        puts_(t, "/");
        break;
    case CEL_MP_END:
        puts_(t, "$");
        break;
    default: {
        char e[32];
        snprintf(e, sizeof e, "!%d", rc);
        puts_(t, e);
    }
    }
}

/* Runs body through a parser in pieces cut at cuts[0..ncuts); returns the
 * transcript, plus "~" when the parser is not done at the end. */
static void run(const char *boundary, const char *body, size_t len, const size_t *cuts,
                size_t ncuts, const cel_mp_limits *lim, transcript *t)
{
    cel_multipart *mp;
    memset(t, 0, sizeof *t);
    int rc = cel_mp_new(&mp, boundary, strlen(boundary), lim);
    if (rc < 0) {
        put_event(t, rc, NULL);
        return;
    }
    size_t start = 0;
    int stop = 0;
    for (size_t k = 0; k <= ncuts && !stop; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        guard_buf g = guard_copy(body + start, end - start);
        size_t off = 0, plen = end - start;
        for (;;) {
            size_t used;
            cel_mp_event ev;
            rc = cel_mp_parse(mp, g.p + off, plen - off, &used, &ev);
            CHECK(used <= plen - off);
            off += used;
            if (rc == CEL_EAGAIN) {
                CHECK(off == plen);
                break;
            }
            if (rc == CEL_MP_DATA) {
                CHECK(ev.data.len > 0);
            }
            put_event(t, rc, &ev);
            if (rc < 0) {
                size_t u2;
                CHECK_EQ_INT(cel_mp_parse(mp, g.p, plen, &u2, &ev), rc);   /* sticky */
                stop = 1;
                break;
            }
        }
        guard_free(&g);
        start = end;
    }
    if (t->in_data)
        puts_(t, "]");
    if (!stop && !cel_mp_done(mp))
        puts_(t, "~");
    cel_mp_free(mp);
}

/* The transcript must be want for the whole input and every split. */
static int parses_to(const char *boundary, const char *body, size_t len, const cel_mp_limits *lim,
                     const char *want)
{
    static transcript t;
    int ok = 1;
    run(boundary, body, len, NULL, 0, lim, &t);
    if (strcmp(t.s, want) != 0) {
        fprintf(stderr, "    whole: got  %s\n    want %s\n", t.s, want);
        return 0;
    }
    for (size_t a = 0; a <= len && ok; a++) {
        run(boundary, body, len, &a, 1, lim, &t);
        if (strcmp(t.s, want) != 0) {
            fprintf(stderr, "    split %zu: got %s\n", a, t.s);
            ok = 0;
        }
        for (size_t b = a; len <= 200 && b <= len && ok; b++) {
            size_t cuts[2] = { a, b };
            run(boundary, body, len, cuts, 2, lim, &t);
            if (strcmp(t.s, want) != 0) {
                fprintf(stderr, "    split %zu,%zu: got %s\n", a, b, t.s);
                ok = 0;
            }
        }
    }
    return ok;
}

#define PARSES(b, body, want) CHECK(parses_to(b, body, sizeof(body) - 1, NULL, want))

TEST(two_fields_and_a_file)
{
    PARSES("XyZ",
           "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nhello\r\n"
           "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"C:\\\\x\\\\y.txt\"\r\n"
           "Content-Type: text/plain\r\n\r\nline1\r\n--XyZa\r\n--Xy\r\n\r\n--XyZ\r\n"
           "content-disposition: form-data; name=b\r\n\r\n\r\n--XyZ--\r\nepilogue",
           "<a>[hello]/<f|f=y.txt|ct=text/plain>[line1\r\n--XyZa\r\n--Xy\r\n]/<b>/$");
}

TEST(empty_message_and_preamble)
{
    PARSES("b", "--b--", "$");
    PARSES("b", "--b--\r\nanything at all", "$");
    PARSES("b", "\r\nignored--b\r\nContent-Disposition: form-data; name=x\r\n\r\n1\r\n--b--",
           "<x>[1]/$");
    PARSES("", "----", "$");
    PARSES("", "--\r\nContent-Disposition: form-data; name=e\r\n\r\nv\r\n----", "<e>[v]/$");
}

TEST(delimiter_lookalikes_are_data)
{
    /* CR, "--" without the CRLF before, partial boundaries, boundary followed
     * by anything but CRLF / "--" / whitespace */
    PARSES("bb",
           "--bb\r\nContent-Disposition: form-data; name=d\r\n\r\n"
           "\r\r\n\r\n-\r\n--b\r\n--bbx\r\n--bb-x\r\n--bb\rx--bb\r\r\n--bb\r\n",
           "<d>[\r\r\n\r\n-\r\n--b\r\n--bbx\r\n--bb-x\r\n--bb\rx--bb\r]/~");
}

TEST(padding_after_delimiter)
{
    PARSES("b",
           "--b\r\nContent-Disposition: form-data; name=p\r\n\r\nv\r\n--b \t \r\n"
           "Content-Disposition: form-data; name=q\r\n\r\nw\r\n--b--",
           "<p>[v]/<q>[w]/$");
    PARSES("b", "--b\r\nContent-Disposition: form-data; name=p\r\n\r\nv\r\n--b x\r\n",
           "<p>[v]!-26");
    PARSES("b", "--b\r\nContent-Disposition: form-data; name=p\r\n\r\nv\r\n--b \r--",
           "<p>[v]!-26");
}

TEST(truncated_bodies)
{
    PARSES("b", "--b\r\nContent-Disposition: form-data; name=p\r\n\r\npartial", "<p>[partial]~");
    PARSES("b", "--b\r\nContent-Disposition: form-data; name=p\r\n\r\nv\r\n--b", "<p>[v]~");
    PARSES("b", "--b\r\nContent-Disposition: form-data; name=p\r\n\r\nv\r\n--b\r\n", "<p>[v]/~");
    PARSES("b", "--b\r\nContent-Dispo", "~");
    PARSES("b", "", "~");
    PARSES("b", "\r\n\r\n", "~");
}

TEST(framing_errors)
{
    PARSES("b", "-b\r\n", "!-26");
    PARSES("b", "--c\r\n", "!-26");
    PARSES("b", "--b\n", "!-26");
    PARSES("b", "--b\rx", "!-26");
    PARSES("b", "--b-x", "!-26");
    PARSES("b", "junk--b\r\n", "!-26");
    PARSES("b", "--b\r\nBad Name: v\r\n\r\n", "!-26");
    PARSES("b", "--b\r\n: v\r\n\r\n", "!-26");
    PARSES("b", "--b\r\nName\r\n\r\n", "!-26");
    PARSES("b", "--b\r\nA: v\rx", "!-26");
    PARSES("b", "--b\r\n\rx", "!-26");
}

TEST(header_values_and_names)
{
    /* leading spaces (not tabs) skipped, trailing kept; LF inside a value is
     * data; names are matched case-insensitively; the last
     * Content-Disposition wins; the first Content-Type wins */
    PARSES("b",
           "--b\r\nCONTENT-DISPOSITION:   form-data; name=old\r\n"
           "Content-Type:\ttext/x \r\ncontent-type: second\r\nX-Odd: a\nb\r\n"
           "content-disposition: form-data; name=new\r\n\r\nd\r\n--b--",
           "<new|ct=\ttext/x >[d]/$");
}

TEST(content_disposition_params)
{
    PARSES("b", "--b\r\nContent-Disposition: form-data; name=\"a;b\"; filename=\"x\\\"y\"\r\n\r\n"
                "\r\n--b--",
           "<a;b|f=x\"y>/$");
    PARSES("b", "--b\r\nContent-Disposition: form-data; NAME = \"sp\" ;filename=\r\n\r\n\r\n--b--",
           "<sp|f=>/$");
    PARSES("b", "--b\r\nContent-Disposition: form-data; name\r\n\r\nv\r\n--b--", "<>[v]/$");
    PARSES("b", "--b\r\nContent-Disposition: form-data; name=a; filename=\"\\\\\\\\srv\\\\f\"\r\n"
                "\r\n\r\n--b--",
           "<a|f=f>/$");
    PARSES("b", "--b\r\nContent-Disposition: form-data; name=a; name=z\r\n\r\n\r\n--b--", "<z>/$");
}

TEST(missing_name)
{
    PARSES("b", "--b\r\n\r\nv\r\n--b--", "!-28");
    PARSES("b", "--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--", "!-28");
    PARSES("b", "--b\r\nContent-Disposition: form-data; filename=f\r\n\r\n--b--", "!-28");
    PARSES("b", "--b\r\nContent-Disposition: form-data; Name\r\n\r\n--b--", "!-28");
    PARSES("b", "--b\r\nContent-Disposition: form-data; name*=utf-8''x\r\n\r\n--b--", "!-28");
}

TEST(filename_star)
{
    const char *body = "--b\r\nContent-Disposition: form-data; name=u; filename*=UTF-8''%C3%A9.txt\r\n"
                       "\r\nd\r\n--b--";
    cel_multipart *mp;
    CHECK_EQ_INT(cel_mp_new(&mp, S("b"), NULL), 0);
    size_t used, len = strlen(body);
    cel_mp_event ev;
    CHECK_EQ_INT(cel_mp_parse(mp, body, len, &used, &ev), CEL_MP_PART);
    CHECK(!ev.part.has_filename);
    CHECK(ev.part.filename_star.len == 6 && memcmp(ev.part.filename_star.p, "\xc3\xa9.txt", 6) == 0);
    CHECK(ev.part.filename_star_charset.len == 5
          && memcmp(ev.part.filename_star_charset.p, "UTF-8", 5) == 0);
    CHECK_EQ_INT(ev.part.nheaders, 1);
    CHECK(ev.part.headers[0].name.len == 19
          && ev.part.headers[0].value.len == strlen("form-data; name=u; filename*=UTF-8''%C3%A9.txt"));
    cel_mp_free(mp);
}

TEST(header_limits)
{
    cel_mp_limits lim;
    cel_mp_limits_default(&lim);
    lim.max_header_count = 2;
    lim.max_header_size = 40;
    const char ok[] = "--b\r\nContent-Disposition: form-data; name=a\r\nX: 1\r\n\r\n\r\n--b--";
    CHECK(parses_to("b", ok, sizeof ok - 1, &lim, "<a>/$"));
    const char three[] = "--b\r\nContent-Disposition: form-data; name=a\r\nX: 1\r\nY: 2\r\n\r\n";
    CHECK(parses_to("b", three, sizeof three - 1, &lim, "!-27"));
    /* 40 bytes of "name:" + spaces + value is the most */
    const char at[] = "--b\r\nContent-Disposition:    form-data;name=a\r\n\r\n\r\n--b--";
    CHECK(parses_to("b", at, sizeof at - 1, &lim, "<a>/$"));
    const char over[] = "--b\r\nContent-Disposition:     form-data;name=a\r\n\r\n\r\n--b--";
    CHECK(parses_to("b", over, sizeof over - 1, &lim, "!-27"));
}

TEST(part_count_and_size_limits)
{
    cel_mp_limits lim;
    cel_mp_limits_default(&lim);
    lim.max_fields = 1;
    lim.max_files = 1;
    lim.max_field_size = 3;
    const char two_fields[] = "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n"
                              "--b\r\nContent-Disposition: form-data; name=b\r\n\r\n2\r\n--b--";
    CHECK(parses_to("b", two_fields, sizeof two_fields - 1, &lim, "<a>[1]/!-30"));
    const char two_files[] = "--b\r\nContent-Disposition: form-data; name=a; filename=x\r\n\r\n"
                             "12345\r\n--b\r\nContent-Disposition: form-data; name=b; filename=y\r\n"
                             "\r\n2\r\n--b--";
    CHECK(parses_to("b", two_files, sizeof two_files - 1, &lim, "<a|f=x>[12345]/!-29"));
    const char big[] = "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n123\r\n--b--";
    CHECK(parses_to("b", big, sizeof big - 1, &lim, "<a>[123]/$"));
    /* the error arrives with the data that crosses the limit, whatever the split */
    const char bigger[] = "--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1234\r\n--b--";
    static transcript t;
    run("b", bigger, sizeof bigger - 1, NULL, 0, &lim, &t);
    CHECK(strcmp(t.s, "<a>!-31") == 0);
    for (size_t a = 0; a <= sizeof bigger - 1; a++) {
        run("b", bigger, sizeof bigger - 1, &a, 1, &lim, &t);
        CHECK(strncmp(t.s, "<a>", 3) == 0 && strstr(t.s, "!-31") && !strstr(t.s, "/"));
    }
}

TEST(boundary_validation)
{
    cel_multipart *mp = NULL;
    char b[300];
    memset(b, 'x', sizeof b);
    CHECK_EQ_INT(cel_mp_new(&mp, b, 257, NULL), CEL_EMPBOUNDARY);
    CHECK(mp == NULL);
    CHECK_EQ_INT(cel_mp_new(&mp, S("a\rb"), NULL), CEL_EMPBOUNDARY);
    CHECK_EQ_INT(cel_mp_new(&mp, S("a\nb"), NULL), CEL_EMPBOUNDARY);
    CHECK_EQ_INT(cel_mp_new(&mp, b, 256, NULL), 0);
    cel_mp_free(mp);
    cel_mp_free(NULL);
}

TEST(long_boundary_split_everywhere)
{
    char bnd[71], body[512];
    memset(bnd, 'q', 70);
    bnd[70] = 0;
    int n = snprintf(body, sizeof body,
                     "--%s\r\nContent-Disposition: form-data; name=l\r\n\r\n\r\n--%.69s\r\n--%s--",
                     bnd, bnd, bnd);
    static transcript t;
    run(bnd, body, (size_t)n, NULL, 0, NULL, &t);
    char want[200];
    snprintf(want, sizeof want, "<l>[\r\n--%.69s]/$", bnd);
    CHECK(strcmp(t.s, want) == 0);
    for (size_t a = 0; a <= (size_t)n; a++) {
        run(bnd, body, (size_t)n, &a, 1, NULL, &t);
        CHECK(strcmp(t.s, want) == 0);
    }
}

TEST(data_is_zero_copy)
{
    const char body[] = "--b\r\nContent-Disposition: form-data; name=z\r\n\r\n0123456789\r\n--b--";
    cel_multipart *mp;
    CHECK_EQ_INT(cel_mp_new(&mp, S("b"), NULL), 0);
    size_t used, off = 0, len = sizeof body - 1;
    cel_mp_event ev;
    CHECK_EQ_INT(cel_mp_parse(mp, body, len, &used, &ev), CEL_MP_PART);
    off += used;
    CHECK_EQ_INT(cel_mp_parse(mp, body + off, len - off, &used, &ev), CEL_MP_DATA);
    CHECK(ev.data.p == body + off && ev.data.len == 10);
    off += used;
    CHECK_EQ_INT(cel_mp_parse(mp, body + off, len - off, &used, &ev), CEL_MP_PART_END);
    off += used;
    CHECK_EQ_INT(cel_mp_parse(mp, body + off, len - off, &used, &ev), CEL_MP_END);
    CHECK_EQ_INT(used, 0);
    CHECK_EQ_INT(cel_mp_parse(mp, body + off, len - off, &used, &ev), CEL_EAGAIN);
    CHECK(off + used == len && cel_mp_done(mp));
    cel_mp_free(mp);
}

TEST(allocation_failures)
{
    const char body[] = "--b\r\nContent-Disposition: form-data; name=a; filename=f\r\nA: 1\r\nB: 2\r\n"
                        "\r\nxyz\r\n--b--";
    for (unsigned long n = 1; n < 12; n++) {
        cel_alloc_fail_after(n);
        cel_multipart *mp;
        int rc = cel_mp_new(&mp, S("b"), NULL);
        if (rc == 0) {
            size_t used, off = 0, len = sizeof body - 1;
            cel_mp_event ev;
            do {
                rc = cel_mp_parse(mp, body + off, len - off, &used, &ev);
                off += used;
            } while (rc > 0);
            CHECK(rc == CEL_EAGAIN || rc == CEL_ENOMEM);
            cel_mp_free(mp);
        } else {
            CHECK_EQ_INT(rc, CEL_ENOMEM);
        }
    }
    cel_alloc_fail_after(0);
}

TEST(params_and_media_type)
{
    char buf[64];
    size_t n = 0;
    const char *ct = "Multipart/Form-Data ; Boundary=\"a\\\\\\\"b\" ; charset=latin-1";
    CHECK_EQ_INT(cel_mp_param(ct, strlen(ct), S("boundary"), buf, sizeof buf, &n), 1);
    CHECK(n == 4 && memcmp(buf, "a\\\"b", 4) == 0);
    CHECK_EQ_INT(cel_mp_param(ct, strlen(ct), S("charset"), buf, sizeof buf, &n), 1);
    CHECK(n == 7 && memcmp(buf, "latin-1", 7) == 0);
    CHECK_EQ_INT(cel_mp_param(ct, strlen(ct), S("name"), buf, sizeof buf, &n), 0);
    CHECK_EQ_INT(cel_mp_param(ct, strlen(ct), S("boundary"), buf, 3, &n), CEL_ENOSPC);
    n = cel_mp_media_type(ct, strlen(ct), buf);
    CHECK(n == 19 && memcmp(buf, "multipart/form-data", 19) == 0);
    n = cel_mp_media_type(S(" Multipart/Form-Data\t"), buf);
    CHECK(n == 19 && memcmp(buf, "multipart/form-data", 19) == 0);
    /* no ';': no params at all */
    CHECK_EQ_INT(cel_mp_param(S("multipart/form-data boundary=x"), S("boundary"), buf, 64, &n), 0);
    /* a quoted ';' does not split; an unterminated quote runs to the end */
    const char *q = "x; a=\"1;2\"; b=\"3;4";
    CHECK_EQ_INT(cel_mp_param(q, strlen(q), S("a"), buf, sizeof buf, &n), 1);
    CHECK(n == 3 && memcmp(buf, "1;2", 3) == 0);
    CHECK_EQ_INT(cel_mp_param(q, strlen(q), S("b"), buf, sizeof buf, &n), 1);
    CHECK(n == 4 && memcmp(buf, "\"3;4", 4) == 0);
    CHECK_EQ_INT(cel_mp_param(S("x; boundary*=y"), S("boundary*"), buf, 64, &n), 0);
    CHECK_EQ_INT(cel_mp_param(S("x; boundary*=y; boundary=z"), S("boundary"), buf, 64, &n), 1);
    CHECK(n == 1 && buf[0] == 'z');
}

/* ---- urlencoded ---- */

static int form_is(const char *body, size_t len, const cel_form_limits *lim, const char *want)
{
    for (size_t a = 0; a <= len; a++) {
        static transcript t;
        memset(&t, 0, sizeof t);
        cel_form *f = cel_form_new(lim);
        size_t cuts[2] = { a, len };
        size_t start = 0;
        int rc = 0, stop = 0;
        for (int k = 0; k < 2 && !stop; k++) {
            guard_buf g = guard_copy(body + start, cuts[k] - start);
            size_t off = 0, plen = cuts[k] - start, used;
            cel_form_field fld;
            while ((rc = cel_form_parse(f, g.p + off, plen - off, &used, &fld)) == 1) {
                off += used;
                put(&t, fld.name.p, fld.name.len);
                puts_(&t, "=");
                put(&t, fld.value.p, fld.value.len);
                puts_(&t, ";");
            }
            if (rc == CEL_EAGAIN)
                CHECK(off + used == plen);
            guard_free(&g);
            start = cuts[k];
            if (rc < 0 && rc != CEL_EAGAIN) {
                char e[16];
                snprintf(e, sizeof e, "!%d", rc);
                puts_(&t, e);
                stop = 1;
            }
        }
        if (!stop) {
            cel_form_field fld;
            rc = cel_form_finish(f, &fld);
            if (rc == 1) {
                put(&t, fld.name.p, fld.name.len);
                puts_(&t, "=");
                put(&t, fld.value.p, fld.value.len);
                puts_(&t, ";");
            } else if (rc < 0) {
                char e[16];
                snprintf(e, sizeof e, "!%d", rc);
                puts_(&t, e);
            }
        }
        cel_form_free(f);
        if (strcmp(t.s, want) != 0) {
            fprintf(stderr, "    split %zu: got %s want %s\n", a, t.s, want);
            return 0;
        }
    }
    return 1;
}

#define FORM(body, want) CHECK(form_is(body, sizeof(body) - 1, NULL, want))

TEST(urlencoded_fields)
{
    FORM("a=1&b=x+y&&c&=v&d=%3D%26&e=1=2&", "a=1;b=x y;c=;=v;d==&;e=1=2;");
    FORM("", "");
    FORM("&&&", "");
    FORM("name", "name=;");
    FORM("%C3%A9=\xc3\xa9", "\xc3\xa9=\xc3\x83\xc2\xa9;");
    FORM("k=%FF%", "k=\xef\xbf\xbd%;");
}

/* Regression (fuzz_multipart's first minute, UBSan): a field with an empty
 * name and value used to do pointer arithmetic on a NULL decode buffer.  The
 * same input is fuzz/regressions/fuzz_multipart/empty-urlencoded-fields. */
TEST(urlencoded_empty_fields_regression)
{
    FORM("a=&=b&&", "a=;=b;");
    FORM("=", "=;");
    FORM("=&=", "=;=;");
}

TEST(urlencoded_limits)
{
    cel_form_limits lim = { 2, 5 };
    CHECK(form_is(S("a=1&b=2"), &lim, "a=1;b=2;"));
    CHECK(form_is(S("a=1&b=2&c"), &lim, "a=1;b=2;!-30"));
    CHECK(form_is(S("ab=cde"), &lim, "ab=cde;"));
    CHECK(form_is(S("ab=cdef"), &lim, "!-32"));
}
