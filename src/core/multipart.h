/* Request-body form parsers: multipart/form-data (streaming) and
 * application/x-www-form-urlencoded.
 *
 * Both reproduce what Starlette's MultiPartParser / FormParser build on
 * python-multipart (0.0.x) accept, reject and produce; docs/multipart.md
 * has the mapping to Starlette's error messages and the few places where a
 * split-independent parser must pick one of python-multipart's
 * chunk-dependent behaviours.
 *
 * Multipart is incremental and zero-copy for part data: cel_mp_parse returns
 * one event at a time; data slices point into the caller's buffer (or, for
 * bytes held back because they might have begun a delimiter, into the
 * parser), so no part is ever buffered whole.  Only one part's header block
 * is buffered, bounded by the header limits.
 */
#ifndef CEL_MULTIPART_H
#define CEL_MULTIPART_H

#include <stddef.h>

#include "http1.h"

/* Longest boundary accepted (python-multipart's MAX_BOUNDARY_LENGTH). */
#define CEL_MP_MAX_BOUNDARY 256

typedef struct cel_mp_limits {
    size_t max_header_count;    /* headers per part; default 8 */
    size_t max_header_size;     /* one header line without its CRLF; default 4224 */
    size_t max_files;           /* parts with a filename; default 1000 */
    size_t max_fields;          /* parts without one; default 1000 */
    size_t max_field_size;      /* data bytes of one part without filename; default 1 MiB */
} cel_mp_limits;

/* Starlette's defaults (request.form() with no arguments). */
void cel_mp_limits_default(cel_mp_limits *l);

/* A part's head, handed out with CEL_MP_PART.  Every slice points into the
 * parser and is valid until the next cel_mp_parse / cel_mp_free call. */
typedef struct cel_mp_part {
    const cel_header *headers;  /* all header lines in order, names as sent */
    size_t nheaders;
    cel_slice name;             /* Content-Disposition name, unquoted (bytes) */
    int has_filename;           /* a filename parameter was present: an upload */
    cel_slice filename;         /* unquoted, IE full-path prefix removed */
    cel_slice content_type;     /* first Content-Type header value; p NULL if none */
    /* RFC 5987 filename*=charset'lang'value, percent-decoded.  RFC 7578
     * forbids it in forms and python-multipart/Starlette ignore it: only for
     * callers that want it.  p NULL if absent or not of that form. */
    cel_slice filename_star;
    cel_slice filename_star_charset;
} cel_mp_part;

/* Events returned by cel_mp_parse. */
enum {
    CEL_MP_PART = 1,            /* a part's headers are complete: ev->part */
    CEL_MP_DATA = 2,            /* part data: ev->data (never empty) */
    CEL_MP_PART_END = 3,        /* the current part ended at a delimiter */
    CEL_MP_END = 4              /* the closing delimiter; the rest is epilogue */
};

typedef struct cel_mp_event {
    cel_mp_part part;           /* CEL_MP_PART */
    cel_slice data;             /* CEL_MP_DATA */
} cel_mp_event;

typedef struct cel_multipart cel_multipart;

/* A parser for a body whose boundary is boundary[0..blen) (the parameter's
 * value, as returned by cel_mp_param).  lim may be NULL (defaults).  On
 * success stores a new parser in *out (caller frees with cel_mp_free) and
 * returns 0; CEL_EMPBOUNDARY when the boundary is longer than
 * CEL_MP_MAX_BOUNDARY or holds CR or LF; CEL_ENOMEM. */
int cel_mp_new(cel_multipart **out, const char *boundary, size_t blen, const cel_mp_limits *lim);

/* Accepts NULL. */
void cel_mp_free(cel_multipart *mp);

/* Parse from buf[0..len); *consumed bytes of buf were used.  Call again with
 * the rest until it returns CEL_EAGAIN (also with len 0: an event may be
 * pending).  Returns:
 *   CEL_MP_PART, CEL_MP_DATA, CEL_MP_PART_END, CEL_MP_END  (see above; *ev
 *              filled, slices valid until the next call);
 *   CEL_EAGAIN all of buf consumed, feed more (after CEL_MP_END every later
 *              byte is consumed and ignored);
 *   CEL_EMPSYNTAX   malformed framing or part header;
 *   CEL_EMPHEADER   a part header line over max_header_size or more than
 *                   max_header_count headers;
 *   CEL_EMPNONAME   a part without a Content-Disposition name;
 *   CEL_EMPFILES / CEL_EMPFIELDS  too many file / non-file parts;
 *   CEL_EMPPARTSIZE a non-file part's data over max_field_size;
 *   CEL_ENOMEM.
 * After an error every later call returns the same error. */
int cel_mp_parse(cel_multipart *mp, const char *buf, size_t len, size_t *consumed,
                 cel_mp_event *ev);

/* 1 once CEL_MP_END has been returned, else 0.  At the end of the body a
 * parser that is not done was truncated: Starlette keeps the parts that
 * ended (CEL_MP_PART_END) and silently drops the one in progress. */
int cel_mp_done(const cel_multipart *mp);

/* python-multipart's parse_options_header(value)[1][key] for a header value
 * such as Content-Type or Content-Disposition: params split on ';' outside
 * quotes, keys compared lower-cased (a param without '=' keeps its case and
 * has the value ""), keys containing '*' ignored, a quoted value loses its
 * quotes and then "\\\\" -> "\\" and "\\\"" -> "\"", the last param of a key
 * wins; a value without ';' has no params.  key must be lower-case ASCII.
 * The value is written to buf (cap >= n always suffices).  Returns 1 found
 * (*outlen set), 0 missing, CEL_ENOSPC. */
int cel_mp_param(const char *value, size_t n, const char *key, size_t klen, char *buf,
                 size_t cap, size_t *outlen);

/* parse_options_header(value)[0]: the media type, lower-cased (ASCII and
 * latin-1 letters, like str.lower on the latin-1 text).  Written to buf,
 * which needs n bytes.  Returns its length. */
size_t cel_mp_media_type(const char *value, size_t n, char *buf);

/* ---- application/x-www-form-urlencoded ---- */

typedef struct cel_form_limits {
    size_t max_fields;          /* default 1000 */
    size_t max_field_size;      /* raw name + value bytes of one field; default 1 MiB */
} cel_form_limits;

void cel_form_limits_default(cel_form_limits *l);

/* One decoded field: Python's unquote_plus of the latin-1 text, as UTF-8
 * (what Starlette's FormParser stores).  Slices point into the parser, valid
 * until the next call. */
typedef struct cel_form_field {
    cel_slice name;
    cel_slice value;
} cel_form_field;

typedef struct cel_form cel_form;

/* New decoder (caller frees with cel_form_free); lim may be NULL.  NULL on
 * allocation failure. */
cel_form *cel_form_new(const cel_form_limits *lim);

/* Accepts NULL. */
void cel_form_free(cel_form *f);

/* Decode from buf[0..len); *consumed bytes were used.  Returns 1 with a
 * complete field in *out (call again with the rest), CEL_EAGAIN when all of
 * buf is consumed, CEL_EMPFIELDS (more than max_fields fields),
 * CEL_EFORMFIELDSIZE (a field over max_field_size), CEL_ENOMEM.  Fields are
 * the non-empty '&'-separated pieces; the name ends at the first '='. */
int cel_form_parse(cel_form *f, const char *buf, size_t len, size_t *consumed,
                   cel_form_field *out);

/* End of body: returns 1 with the last field in *out if one was in
 * progress, 0 if none, or an error as above. */
int cel_form_finish(cel_form *f, cel_form_field *out);

#endif
