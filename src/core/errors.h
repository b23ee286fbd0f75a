/* Celeris core error codes.
 *
 * Every core function that can fail returns a negative cel_err value (or a
 * pointer/NULL where documented).  cel_strerror() gives a short, stable,
 * human-readable message; cel_err_http_status() gives the HTTP status a
 * server should answer with when the error comes from parsing a request.
 */
#ifndef CEL_ERRORS_H
#define CEL_ERRORS_H

typedef enum cel_err {
    CEL_OK = 0,
    CEL_EAGAIN = -1,            /* incomplete input: feed more bytes and call again */
    CEL_ENOMEM = -2,            /* allocation failed */
    CEL_EBADREQ = -3,           /* malformed request line or header syntax (400) */
    CEL_EURITOOLONG = -4,       /* request line over the limit (414) */
    CEL_EHDRTOOLARGE = -5,      /* header block over the byte or count limit (431) */
    CEL_EVERSION = -6,          /* HTTP version not supported (505) */
    CEL_ECLTE = -7,             /* both Content-Length and Transfer-Encoding (400) */
    CEL_EBADCL = -8,            /* invalid or conflicting Content-Length (400) */
    CEL_EBADTE = -9,            /* Transfer-Encoding whose last coding is not chunked (400) */
    CEL_EBADCHUNK = -10,        /* malformed chunked body framing (400) */
    CEL_EBODYTOOLARGE = -11,    /* body over the configured limit (413) */
    CEL_EHDRVALUE = -12,        /* NUL/CR/LF or obs-fold in a header (400) */
    CEL_EMETHOD = -13,          /* invalid method token (400) */
    CEL_ETARGET = -14,          /* invalid request-target (400) */
    CEL_EIO = -15,              /* socket error; errno holds the detail */
    CEL_ECLOSED = -16,          /* peer closed the connection */
    CEL_ESTATE = -17,           /* call not valid in the current state (programmer/app misuse) */
    CEL_EINVAL = -18,           /* invalid argument */
    CEL_ETIMEOUT = -19,         /* a timeout expired */
    CEL_ERESPLONG = -20,        /* response body longer than its Content-Length */
    CEL_ERESPSHORT = -21,       /* response finished shorter than its Content-Length */
    CEL_EHDRNAME = -22,         /* response header name is not a token */
    CEL_ENOSPC = -23,           /* output buffer too small for the result */
    CEL_EUTF8 = -24,            /* decoded bytes are not valid UTF-8 */
    CEL_EMPBOUNDARY = -25,      /* multipart: boundary too long or holding CR/LF (400) */
    CEL_EMPSYNTAX = -26,        /* multipart: malformed body framing or part header (400) */
    CEL_EMPHEADER = -27,        /* multipart: part header line too long or too many (400) */
    CEL_EMPNONAME = -28,        /* multipart: Content-Disposition has no name (400) */
    CEL_EMPFILES = -29,         /* multipart: too many file parts (400) */
    CEL_EMPFIELDS = -30,        /* form: too many fields (400) */
    CEL_EMPPARTSIZE = -31,      /* multipart: a non-file part over its size limit (400) */
    CEL_EFORMFIELDSIZE = -32,   /* urlencoded form: a field over its size limit (400) */
    CEL_ERR_MIN_ = -33,
    /* WebSocket (ws.h); a separate range so other additions do not collide */
    CEL_EWSPROTO = -40,         /* frame protocol violation (close 1002) */
    CEL_EWSUTF8 = -41,          /* invalid UTF-8 in a text message or close reason (close 1007) */
    CEL_EWSTOOBIG = -42,        /* message over the size limit (close 1009) */
    CEL_EWSHANDSHAKE = -43,     /* invalid opening handshake (400) */
    CEL_EWSVERSION = -44        /* unsupported Sec-WebSocket-Version (426) */
} cel_err;

/* Static message for err; never NULL ("unknown error" for unknown codes). */
const char *cel_strerror(int err);

/* HTTP status to answer for a request-parsing error: 400, 413, 414, 431, 505;
 * 500 for codes that are not request errors. */
int cel_err_http_status(int err);

#endif
