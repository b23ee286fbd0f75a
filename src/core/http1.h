/* HTTP/1.x request-head parser and chunked body decoder.
 *
 * Incremental and zero-copy: every string handed back is a slice of the
 * caller's buffer and is valid only while that buffer is.  The parser is
 * stateless; on CEL_EAGAIN the caller appends more bytes and calls again with
 * the whole head from its start (heads are small and bounded by the limits).
 */
#ifndef CEL_HTTP1_H
#define CEL_HTTP1_H

#include <stddef.h>
#include <stdint.h>

typedef struct cel_slice {
    const char *p;
    size_t len;
} cel_slice;

typedef struct cel_header {
    cel_slice name;             /* as sent (case preserved); a valid token */
    cel_slice value;            /* leading/trailing OWS stripped */
} cel_header;

typedef struct cel_http_limits {
    size_t max_request_line;    /* bytes incl. CRLF; default 8192 -> 414 */
    size_t max_header_bytes;    /* bytes of the header block after the request line; default 65536 -> 431 */
    size_t max_headers;         /* count; default 100 -> 431 */
} cel_http_limits;

void cel_http_limits_default(cel_http_limits *l);

enum cel_body_kind {
    CEL_BODY_NONE = 0,          /* no body (no CL, no TE, or CL: 0) */
    CEL_BODY_LENGTH = 1,        /* Content-Length > 0 */
    CEL_BODY_CHUNKED = 2        /* Transfer-Encoding ending in chunked */
};

enum cel_req_flags {
    CEL_REQ_KEEP_ALIVE = 1u << 0,   /* connection persists after this exchange
                                       (1.1 without "close", or 1.0 with "keep-alive") */
    CEL_REQ_EXPECT_CONTINUE = 1u << 1, /* "Expect: 100-continue" (case-insensitive) on HTTP/1.1 */
    CEL_REQ_UPGRADE = 1u << 2,      /* Connection: upgrade and an Upgrade header present */
    CEL_REQ_HAS_HOST = 1u << 3
};

typedef struct cel_http_request {
    cel_slice method;
    cel_slice target;           /* raw request-target, e.g. "/a%20b?x=1" */
    cel_slice path;             /* target up to '?' (or "*" / absolute-form as sent) */
    cel_slice query;            /* after '?', without it; len 0 if none */
    int minor_version;          /* 0 or 1 (HTTP/1.0, HTTP/1.1) */
    cel_header *headers;        /* caller-provided array */
    size_t num_headers;         /* in: capacity of headers[]; out: number parsed */
    int body_kind;              /* enum cel_body_kind */
    uint64_t content_length;    /* valid when body_kind == CEL_BODY_LENGTH */
    unsigned flags;             /* enum cel_req_flags */
} cel_http_request;

/* Parse one request head (request line + headers + empty line) from buf.
 *
 * Returns the number of bytes consumed (> 0, the head including its final
 * CRLFCRLF) on success; CEL_EAGAIN when buf holds a valid prefix of a head
 * that is still under the limits; or a negative cel_err for invalid input
 * (see cel_err_http_status for the answer to give).  Limit violations are
 * reported as soon as they are certain, even on incomplete input.
 *
 * Enforces RFC 9112: tokens for method and header names, no whitespace
 * before the colon, no obs-fold, no NUL/CR/LF in values, bare LF line endings
 * rejected, HTTP/1.0 and 1.1 only (other HTTP/x.y -> CEL_EVERSION), CL+TE ->
 * CEL_ECLTE, differing duplicate CL -> CEL_EBADCL, TE whose last coding is
 * not "chunked" (or TE on HTTP/1.0) -> CEL_EBADTE.  Leading empty lines
 * before the request line are skipped (RFC 9112 2.2).  limits == NULL means
 * the defaults.  Until it succeeds only headers[] is written: on CEL_EAGAIN or
 * an error the rest of *req (num_headers included) is left untouched. */
long cel_http_parse_request(const char *buf, size_t len,
                            const cel_http_limits *limits,
                            cel_http_request *req);

/* Incremental chunked-body decoder; zero-copy (data slices point into input). */
typedef struct cel_chunked {
    int state;                  /* private */
    uint64_t remaining;         /* private: bytes left in the current chunk */
    size_t line_len;            /* private: bytes of the current size/trailer line seen */
    size_t trailer_bytes;       /* private */
} cel_chunked;

void cel_chunked_init(cel_chunked *c);

/* Decode from buf[0..len).  On return *consumed bytes of buf were used.
 * Returns:
 *   1          a data slice is in *data and *data_len (points into buf); call again
 *              with the rest of the input;
 *   0          the body is complete (last chunk and trailers consumed);
 *   CEL_EAGAIN all of buf consumed (*consumed may be < len only if 0), need more;
 *   CEL_EBADCHUNK malformed framing (bad hex, size overflow, missing CRLF,
 *              trailer section over 64 KiB, ...).
 * Chunk extensions are skipped; trailers are validated and discarded. */
int cel_chunked_decode(cel_chunked *c, const char *buf, size_t len,
                       size_t *consumed, const char **data, size_t *data_len);

/* Does the comma-separated header value v contain tok (lower-case ASCII;
 * compared ignoring case, OWS trimmed)?  With prefix set an element only has
 * to start with tok followed by ';', OWS or its end (extension parameters). */
int cel_header_list_has(const cel_slice *v, const char *tok, int prefix);

#endif
