/* Incremental chunked transfer-coding decoder (RFC 9112 7.1).
 *
 * A byte-at-a-time state machine for the framing (size lines, CRLFs,
 * trailers) and a single slice per call for chunk data, so the data itself is
 * never copied or inspected.  All state lives in struct cel_chunked: input may
 * be split anywhere and no byte is ever handed in twice.
 */
#include <string.h>

#include "errors.h"
#include "http1.h"

#define MAX_SIZE_DIGITS 16          /* 16 hex digits fill a uint64_t exactly */
#define MAX_SIZE_LINE 4096          /* chunk-size line incl. extensions and CRLF */
#define MAX_TRAILER_BYTES 65536     /* trailer section incl. its final CRLF */

enum {
    ST_SIZE = 0,        /* hex digits of a chunk-size line */
    ST_SIZE_WS,         /* BWS after the size; only ';' may follow */
    ST_EXT,             /* chunk extensions, skipped up to CR */
    ST_SIZE_LF,         /* CR of the size line seen */
    ST_DATA,            /* c->remaining bytes of chunk data left */
    ST_DATA_CR,         /* CRLF after chunk data */
    ST_DATA_LF,
    ST_TRAILER,         /* start of a trailer field line or of the final CRLF */
    ST_TNAME,
    ST_TVALUE,
    ST_TLF,
    ST_END_LF,          /* CR of the final empty line seen */
    ST_DONE,
    ST_ERROR
};

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

static int is_tchar(unsigned char ch)
{
    unsigned char l = ch | 0x20;
    if ((ch >= '0' && ch <= '9') || (l >= 'a' && l <= 'z'))
        return 1;
    return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

/* HTAB, SP, VCHAR, obs-text: what a field value or chunk-ext may contain. */
static int is_value(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

void cel_chunked_init(cel_chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = ST_SIZE;
}

int cel_chunked_decode(cel_chunked *c, const char *buf, size_t len,
                       size_t *consumed, const char **data, size_t *data_len)
{
    size_t i = 0;

    *data = NULL;
    *data_len = 0;
    if (c->state == ST_DONE) {
        *consumed = 0;
        return 0;
    }
    if (c->state == ST_ERROR) {
        *consumed = 0;
        return CEL_EBADCHUNK;
    }

    while (i < len) {
        if (c->state == ST_DATA) {
            size_t n = len - i;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            *data = buf + i;
            *data_len = n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = ST_DATA_CR;
            *consumed = i + n;
            return 1;
        }

        unsigned char ch = (unsigned char)buf[i];
        int h;
        if (c->state <= ST_SIZE_LF && ++c->line_len > MAX_SIZE_LINE)
            goto bad;
        if (c->state >= ST_TRAILER && ++c->trailer_bytes > MAX_TRAILER_BYTES)
            goto bad;

        switch (c->state) {
        case ST_SIZE:
            h = hexval(ch);
            if (h >= 0) {
                /* line_len already counts this digit */
                if (c->line_len > MAX_SIZE_DIGITS)
                    goto bad;
                c->remaining = (c->remaining << 4) | (uint64_t)h;
                break;
            }
            if (c->line_len == 1)
                goto bad;               /* no digits */
            if (ch == ';')
                c->state = ST_EXT;
            else if (ch == ' ' || ch == '\t')
                c->state = ST_SIZE_WS;
            else if (ch == '\r')
                c->state = ST_SIZE_LF;
            else
                goto bad;
            break;
        case ST_SIZE_WS:
            if (ch == ';')
                c->state = ST_EXT;
            else if (ch != ' ' && ch != '\t')
                goto bad;
            break;
        case ST_EXT:
            if (ch == '\r')
                c->state = ST_SIZE_LF;
            else if (!is_value(ch))
                goto bad;
            break;
        case ST_SIZE_LF:
            if (ch != '\n')
                goto bad;
            c->line_len = 0;
            c->state = c->remaining ? ST_DATA : ST_TRAILER;
            break;
        case ST_DATA_CR:
            if (ch != '\r')
                goto bad;
            c->state = ST_DATA_LF;
            break;
        case ST_DATA_LF:
            if (ch != '\n')
                goto bad;
            c->state = ST_SIZE;
            break;
        case ST_TRAILER:
            if (ch == '\r')
                c->state = ST_END_LF;
            else if (is_tchar(ch))
                c->state = ST_TNAME;
            else
                goto bad;               /* obs-fold, bare LF, empty name, ... */
            break;
        case ST_TNAME:
            if (ch == ':')
                c->state = ST_TVALUE;
            else if (!is_tchar(ch))
                goto bad;
            break;
        case ST_TVALUE:
            if (ch == '\r')
                c->state = ST_TLF;
            else if (!is_value(ch))
                goto bad;
            break;
        case ST_TLF:
            if (ch != '\n')
                goto bad;
            c->state = ST_TRAILER;
            break;
        case ST_END_LF:
            if (ch != '\n')
                goto bad;
            c->state = ST_DONE;
            *consumed = i + 1;
            return 0;
        default:
            goto bad;
        }
        i++;
    }
    *consumed = len;
    return CEL_EAGAIN;

bad:
    c->state = ST_ERROR;
    *consumed = i;
    return CEL_EBADCHUNK;
}
