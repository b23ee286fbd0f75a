/* The socket side of the core: listening sockets, an epoll set, accept,
 * read/write, pipelined dispatch and timeouts.  Single-threaded; the
 * embedder calls cel_server_poll() whenever cel_server_fd() is readable
 * (the binding registers it with the asyncio loop) and cel_server_sweep()
 * about once a second.
 *
 * Application work is delegated through cel_server_callbacks; the callbacks
 * may call back into the cel_server_* response functions for the same
 * connection (never free it themselves). */
#ifndef CEL_SERVER_H
#define CEL_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "conn.h"

typedef struct cel_server cel_server;

typedef struct cel_server_config {
    cel_conn_config conn;
    int backlog;                    /* listen(2) backlog; default 2048 */
    uint64_t header_timeout_ms;     /* whole head must arrive within; default 10000 -> 408 */
    uint64_t keepalive_timeout_ms;  /* idle between requests; default 5000 */
    uint64_t body_timeout_ms;       /* no body bytes while the app waits; default 30000 -> close */
    size_t read_high_water;         /* stop reading past this many buffered body bytes; default 256 KiB */
    size_t write_high_water;        /* senders wait past this many unsent bytes; default 256 KiB */
    size_t max_connections;         /* accepting pauses at this count; 0 = unlimited */
    int accept_batch;               /* accepts per listener readiness event; default 64.  Worker
                                       processes sharing one listening socket use 1, so that a
                                       burst of connections spreads over the workers instead of
                                       going to whichever woke first */
    uint64_t ws_max_message;        /* WebSocket message limit -> close 1009; default 16 MiB; 0 = none */
    uint64_t ws_ping_interval_ms;   /* keepalive ping every; default 20000; 0 = no pings */
    uint64_t ws_ping_timeout_ms;    /* pong due within -> close 1011; default 20000; 0 = no limit */
    uint64_t ws_close_timeout_ms;   /* after our close frame, wait for the peer's; default 10000 */
    int ws_per_message_deflate;     /* accept permessage-deflate offers; default 1 */
} cel_server_config;

void cel_server_config_default(cel_server_config *cfg);

typedef struct cel_server_callbacks {
    void *ud;
    /* A head was parsed on c (state ACTIVE).  req's slices are valid only
     * during the call.  Return 0, or a negative cel_err to have the server
     * answer 500 and close. */
    int (*on_request)(void *ud, cel_conn *c, const cel_http_request *req);
    /* Body bytes, the body's end, or EOF arrived while c->want_body is set. */
    void (*on_body)(void *ud, cel_conn *c);
    /* `out` drained below the high-water mark while c->want_drain is set. */
    void (*on_drain)(void *ud, cel_conn *c);
    /* c is about to be closed and freed; drop every reference to it. */
    void (*on_close)(void *ud, cel_conn *c);
    /* Connections have buffered input to process: call
     * cel_server_run_pending() soon (from the event loop, not from inside a
     * callback). */
    void (*on_pending)(void *ud);
    /* A request head was rejected with `status` (for logging). */
    void (*on_bad_request)(void *ud, cel_conn *c, int err, int status);
    /* In-memory connections only: bytes were appended to c->out (take them
     * with cel_server_take_output) or the connection is now closed. */
    void (*on_output)(void *ud, cel_conn *c);
    /* WebSocket: a complete message (text is valid UTF-8) while
     * c->ws->want_msg is set (cleared before the call).  p is valid only
     * during the call. */
    void (*on_ws_message)(void *ud, cel_conn *c, int opcode, const char *p, size_t n);
    /* In-memory connections only: c is being freed (by cel_server_close or
     * cel_server_free); drop the owner's pointer to it. */
    void (*on_free)(void *ud, cel_conn *c);
} cel_server_callbacks;

/* New server with copies of cfg and cb; NULL on allocation or epoll failure
 * (errno set).  Free with cel_server_free. */
cel_server *cel_server_new(const cel_server_config *cfg, const cel_server_callbacks *cb);

/* Close every connection (on_close for each) and listener, then free.  NULL ok. */
void cel_server_free(cel_server *s);

/* Bind and listen; 0 or CEL_EIO with errno set (EADDRINUSE ...).  For TCP,
 * host is a numeric IPv4/IPv6 address or a name resolved with getaddrinfo. */
int cel_server_listen_tcp(cel_server *s, const char *host, int port);
int cel_server_listen_unix(cel_server *s, const char *path);
/* Adopt an already-listening socket (made non-blocking here). */
int cel_server_listen_fd(cel_server *s, int fd);

/* The port actually bound by the first TCP listener (useful with port 0), or -1. */
int cel_server_bound_port(const cel_server *s);

/* The epoll descriptor to watch for readability. */
int cel_server_fd(const cel_server *s);

/* Handle ready events without blocking.  Returns the number handled. */
int cel_server_poll(cel_server *s);

/* Process connections with buffered, unprocessed input (pipelining). */
void cel_server_run_pending(cel_server *s);

/* Enforce timeouts: 408 for slow heads, close idle keep-alive and stalled
 * bodies.  now_ms from cel_server_now_ms(). */
void cel_server_sweep(cel_server *s, uint64_t now_ms);

uint64_t cel_server_now_ms(void);

/* Try to write c->out now.  On EAGAIN waits for EPOLLOUT; on error closes c.
 * Returns 0, or CEL_ECLOSED if c was closed (do not touch it again). */
int cel_server_flush(cel_server *s, cel_conn *c);

/* The response on c is complete (cel_conn_response_body with more = 0, or
 * cel_conn_write_error): decide keep-alive, flush or batch, and move on to
 * the next pipelined request.  Returns 0 or CEL_ECLOSED (c freed). */
int cel_server_response_done(cel_server *s, cel_conn *c);

/* The app wants body bytes: resume reading, send 100-continue if owed.
 * Returns 0 or CEL_ECLOSED. */
int cel_server_want_body(cel_server *s, cel_conn *c);

/* ---- WebSocket (c->ws set by a valid handshake; see docs/websocket.md) ---- */

/* Accept the handshake: write the 101 (see cel_conn_ws_accept), start the
 * keepalive pings, and go on with frames already buffered.  Returns 0, a
 * cel_conn_ws_accept error (nothing written), or CEL_ECLOSED. */
int cel_server_ws_accept(cel_server *s, cel_conn *c, const char *subprotocol, size_t sublen,
                         const cel_header *headers, size_t n);

/* The app waits for a message: on_ws_message is called when one is
 * complete -- possibly before this returns, if one is buffered.  Reading
 * is paused while a complete message waits for the app (backpressure).
 * Returns 0 or CEL_ECLOSED. */
int cel_server_ws_want_message(cel_server *s, cel_conn *c);

/* Send a TEXT/BINARY message and write it out.  Returns 0, CEL_ESTATE (not
 * open, or closing), CEL_ENOMEM, CEL_ECLOSED (the write failed). */
int cel_server_ws_send(cel_server *s, cel_conn *c, int opcode, const char *p, size_t n);

/* Send a close frame (code 0: none) and wait up to ws_close_timeout_ms for
 * the peer's; messages arriving meanwhile are dropped.  Returns 0,
 * CEL_ESTATE, CEL_ENOMEM, CEL_ECLOSED. */
int cel_server_ws_close(cel_server *s, cel_conn *c, int code, const char *reason, size_t len);

/* Graceful shutdown: close every open WebSocket with 1012 (service
 * restart; the app sees websocket.disconnect 1012) and answer handshakes
 * still waiting for the app with 500 (it sees 1006).  Returns how many. */
size_t cel_server_ws_going_away(cel_server *s);

/* Close c now (on_close is called). */
void cel_server_close(cel_server *s, cel_conn *c);

/* Stop accepting (graceful shutdown): connections already queued by the
 * kernel are accepted first (so closing the listener resets none of them),
 * then the listeners are closed.  From now on every response carries
 * "connection: close" (requests in flight included, unless their response
 * has started); existing connections continue. */
void cel_server_stop_accepting(cel_server *s);

/* Close idle keep-alive connections (IDLE after at least one response, with
 * no partial head and no unread bytes waiting in the kernel, checked with
 * MSG_PEEK) and lingering ones; returns how many remain open.  A connection
 * whose request has arrived but not yet been read stays open, so the next
 * poll serves it, and so does a new connection that has not sent its first
 * request yet (its client is about to): the caller bounds how long it waits
 * for those. */
size_t cel_server_close_idle(cel_server *s);

size_t cel_server_num_connections(const cel_server *s);

/* ---- in-memory connections (the TestClient path) ----
 * Same parser, state machine and dispatch as sockets; bytes go in with
 * cel_server_feed and come out of c->out.  Such a connection (fd -1) is
 * freed by cel_server_close or cel_server_free, never by the peer. */

/* New in-memory connection; peer/local are optional sockaddrs (may be NULL).
 * NULL on allocation failure. */
cel_conn *cel_server_memory_conn(cel_server *s, const void *peer, unsigned peer_len);

/* Append request bytes (n may be 0) and process them; eof marks the client's
 * write side closed.  Returns 0, CEL_ENOMEM, or CEL_ECLOSED if the connection
 * has closed (its output may still be taken). */
int cel_server_feed(cel_server *s, cel_conn *c, const char *p, size_t n, int eof);

/* Move up to cap bytes of c's pending output to dst; returns the count. */
size_t cel_server_take_output(cel_server *s, cel_conn *c, char *dst, size_t cap);

/* Current Date header value (cached per second). */
const char *cel_server_date(void);

#endif
