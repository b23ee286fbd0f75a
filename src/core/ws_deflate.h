/* permessage-deflate (RFC 7692) for the WebSocket server, on system zlib.
 *
 * Negotiation picks the first acceptable offer in Sec-WebSocket-Extensions
 * and answers it; the server compresses with a 12-bit window and memLevel 5
 * (websockets' defaults: a few dozen KiB per connection instead of ~300),
 * and the zlib streams are only created when a message first needs them.
 * zlib allocates through alloc.h. */
#ifndef CEL_WS_DEFLATE_H
#define CEL_WS_DEFLATE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http1.h"

typedef struct cel_ws_deflate_params {
    int server_no_context_takeover;     /* reset our compressor after each message */
    int client_no_context_takeover;     /* echoed: the client resets its own */
    int server_max_window_bits;         /* the window we compress with (9..15) */
} cel_ws_deflate_params;

typedef struct cel_ws_deflate cel_ws_deflate;

/* Find an acceptable permessage-deflate offer among req's
 * Sec-WebSocket-Extensions headers.  Returns 1 and fills *params and
 * response (the header value to answer, NUL-terminated; cap >= 128), or 0
 * when none is offered or acceptable (unknown or duplicate parameters, bad
 * values, server_max_window_bits=8 which zlib cannot honour). */
int cel_ws_deflate_negotiate(const cel_http_request *req, cel_ws_deflate_params *params,
                             char *response, size_t cap);

/* New state for negotiated params; NULL on allocation failure.  Free with
 * cel_ws_deflate_free (NULL ok). */
cel_ws_deflate *cel_ws_deflate_new(const cel_ws_deflate_params *params);
void cel_ws_deflate_free(cel_ws_deflate *d);

/* Decompress the next piece of a compressed message's payload into out;
 * last = 1 on its final piece (the 00 00 ff ff tail is added here).
 * out may not grow past max bytes (0 = unlimited).  Returns 0,
 * CEL_EWSTOOBIG, CEL_EWSPROTO (corrupt data), CEL_ENOMEM. */
int cel_ws_inflate(cel_ws_deflate *d, const char *p, size_t n, int last, cel_buf *out,
                   uint64_t max);

/* Compress a whole message into out (appended; without the 00 00 ff ff
 * tail, ready to be a frame payload with RSV1).  Returns 0 or CEL_ENOMEM. */
int cel_ws_deflate_message(cel_ws_deflate *d, const char *p, size_t n, cel_buf *out);

#endif
