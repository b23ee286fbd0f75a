/* One HTTP/1.1 connection's protocol state, without any I/O.
 *
 * The server (server.c) moves bytes between the socket and `in`/`out`; the
 * TestClient path moves them between memory and the same buffers.  Everything
 * HTTP -- parsing heads, body framing, 100-continue, response framing,
 * keep-alive decisions, error answers -- happens here, so both paths behave
 * identically.
 *
 * Request lifecycle:  IDLE --parse_head--> ACTIVE --response done--> IDLE
 * (keep-alive) or CLOSING (write out, then close).  A request whose body was
 * not read by the app is discarded before the next head is parsed (DRAIN).
 *
 * WebSocket: a valid opening handshake gets c->ws and goes to the app like
 * any request (ACTIVE); cel_conn_ws_accept writes the 101 and moves the
 * connection to WS, where `in` holds frames and `out` gets frames, until a
 * close (CLOSING).  A denial is an ordinary response followed by CLOSING.
 */
#ifndef CEL_CONN_H
#define CEL_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "http1.h"
#include "ws.h"
#include "ws_deflate.h"

typedef struct cel_conn_config {
    cel_http_limits limits;
    uint64_t max_body;          /* request body limit in bytes; 0 = unlimited (413) */
    int date_header;            /* send "date" unless the app did */
    int server_header;          /* send "server: celeris" */
} cel_conn_config;

void cel_conn_config_default(cel_conn_config *cfg);

enum cel_conn_state {
    CEL_CONN_IDLE = 0,          /* waiting for (more of) a request head */
    CEL_CONN_ACTIVE = 1,        /* a request is with the app */
    CEL_CONN_DRAIN = 2,         /* response done; discarding the unread request body */
    CEL_CONN_CLOSING = 3,       /* write what is buffered, then close */
    CEL_CONN_CLOSED = 4,
    CEL_CONN_WS = 5             /* upgraded: WebSocket frames both ways (c->ws) */
};

/* A WebSocket connection's state beyond the HTTP fields (allocated when a
 * valid handshake is parsed, freed with the connection). */
typedef struct cel_ws_conn {
    cel_ws_handshake hs;        /* accept value for the 101 */
    cel_ws_parser parser;
    cel_buf msg;                /* message being reassembled / waiting for the app */
    int msg_opcode;             /* TEXT or BINARY of the message in msg */
    unsigned msg_ready : 1;     /* msg holds a complete message the app has not taken */
    unsigned want_msg : 1;      /* the app waits in receive() */
    unsigned close_sent : 1;    /* our close frame is written */
    unsigned close_rcvd : 1;    /* the peer's close frame arrived */
    unsigned ping_outstanding : 1;
    int close_code;             /* for the app's websocket.disconnect: the peer's code (1005
                                   when its close had none) or the one we sent on a protocol
                                   error / ping timeout; 0 = the connection just dropped */
    char close_reason[124];
    size_t close_reason_len;
    cel_ws_deflate_params deflate_params;
    char deflate_response[128]; /* sec-websocket-extensions answer, "" if not negotiated */
    cel_ws_deflate *deflate;    /* permessage-deflate state once accepted, or NULL (owned) */
    cel_buf zbuf;               /* scratch for compressed output */
    uint32_t msg_utf8;          /* UTF-8 check of an inflated text message */
    uint64_t next_ping_ms;      /* keepalive: when to send the next ping (0 = off) */
    uint64_t pong_deadline_ms;  /* when the outstanding ping's pong is late */
    uint32_t ping_seq;
} cel_ws_conn;

/* A response body being sent from a file (see conn_file.c): the head and
 * any earlier output go first, from `out`; then `left` bytes of the file
 * from `off`; then `tail` (the chunked terminator, when chunked). */
typedef struct cel_conn_file {
    int fd;                     /* -1 when no file is queued (owned: closed when done) */
    uint64_t off;               /* next file offset to send */
    uint64_t left;              /* file bytes still to send */
    char tail[8];               /* framing written after the file bytes */
    unsigned char tail_len;
    unsigned no_sendfile : 1;   /* sendfile(2) refused this file: copy through `out` */
} cel_conn_file;

typedef struct cel_conn {
    int fd;                     /* -1 for in-memory connections */
    int state;                  /* enum cel_conn_state */
    cel_buf in;                 /* received, not yet consumed bytes */
    cel_buf out;                /* bytes to send */
    const cel_conn_config *cfg; /* borrowed; outlives the connection */

    /* current request */
    int body_kind;              /* enum cel_body_kind */
    uint64_t body_left;         /* CEL_BODY_LENGTH: bytes still to come */
    uint64_t body_seen;         /* bytes of body handed out so far */
    cel_chunked chunked;
    unsigned keep_alive : 1;
    unsigned http10 : 1;
    unsigned is_head : 1;
    unsigned expect_continue : 1;   /* 100 Continue owed if the app reads the body */
    unsigned body_done : 1;
    unsigned read_eof : 1;          /* peer half-closed or closed */

    /* current response */
    unsigned resp_started : 1;
    unsigned resp_done : 1;
    unsigned resp_chunked : 1;
    unsigned resp_has_length : 1;
    uint64_t resp_left;         /* bytes of declared Content-Length still owed */
    int resp_status;

    cel_conn_file file;         /* body from a file, queued behind `out` */

    uint64_t requests;          /* heads parsed on this connection */
    cel_ws_conn *ws;            /* WebSocket handshake/connection state, or NULL (owned) */
    const char *head_end;       /* end of the last parsed head in `in` (valid like req's slices) */

    /* owned by the server */
    uint64_t deadline_ms;       /* monotonic ms at which the current timeout fires; 0 = none */
    uint64_t last_write_ms;     /* when output last made progress (a response still being
                                   sent keeps an idle connection open while it moves) */
    uint32_t epoll_events;
    unsigned in_pending : 1;
    unsigned write_blocked : 1;  /* the last write() hit EAGAIN: wait for EPOLLOUT */
    unsigned want_body : 1;     /* the app waits in receive() */
    unsigned want_drain : 1;    /* the app waits for `out` to drain */
    unsigned head_started : 1;  /* first byte of the current head has arrived */
    unsigned in_process : 1;    /* the server is inside process() for this connection */
    unsigned close_pending : 1; /* closed from a callback during process(); freed after it */
    unsigned lingering : 1;     /* write side shut down; discarding input until EOF */
    unsigned notified_close : 1;/* on_close has been called */
    unsigned closed : 1;        /* in-memory connection: closed, output still takeable */
    unsigned dead : 1;          /* destroyed inside a server batch; freed at its end */
    uint64_t dispatch_turn;     /* server turn in which the active request was dispatched */
    struct cel_conn *pending_next;
    struct cel_conn *pending_prev;
    struct cel_conn *prev, *next;   /* server's list of all connections */
    void *user;                 /* binding's object for the active request (borrowed) */
    void *driver;               /* binding's per-connection request driver (owned by the
                                   binding, released in its on_close) */
    void *cache;                /* binding's per-connection data; it frees it in on_close */
    void *owner;                /* in-memory connections: the embedder's handle (borrowed) */
    unsigned char peer[128];    /* struct sockaddr_storage of the peer */
    unsigned peer_len;
    unsigned char local[128];
    unsigned local_len;
} cel_conn;

/* Initialise a connection in IDLE state with empty buffers. */
void cel_conn_init(cel_conn *c, int fd, const cel_conn_config *cfg);

/* Free the buffers (the struct itself belongs to the caller). */
void cel_conn_release(cel_conn *c);

/* Parse the next request head from `in` (state must be IDLE).
 * Returns 1 when a head was parsed: req (with hdrs[0..cap)) describes it,
 * the state is ACTIVE, and the head bytes are consumed -- req's slices point
 * into `in` and stay valid until the next write into `in`.  Returns CEL_EAGAIN
 * if more bytes are needed, or a negative cel_err for a bad request (answer it
 * with cel_conn_write_error(c, cel_err_http_status(err), ...)). */
int cel_conn_parse_head(cel_conn *c, cel_http_request *req, cel_header *hdrs, size_t cap);

/* Next piece of the request body (state ACTIVE or DRAIN).
 * Returns 1 with the slice (*p, *n) pointing into `in` (valid until the next write into
 * `in`; already consumed), 0 when the body is complete, CEL_EAGAIN when more
 * bytes must arrive, CEL_ECLOSED if the peer closed first, CEL_EBADCHUNK on bad
 * framing, CEL_EBODYTOOLARGE past cfg->max_body. */
int cel_conn_body_read(cel_conn *c, const char **p, size_t *n);

/* Keep the body bytes last handed out by cel_conn_body_read while c reads
 * on: when c holds no unread input (in.len == 0), exchange the storage of
 * c's input buffer with that of *spare (len 0; its storage, possibly none,
 * becomes c's), so the slices stay valid in *spare until its owner reuses or
 * frees it (cel_buf_free).  Returns 0, or CEL_EAGAIN when c has unread input
 * (nothing changed). */
int cel_conn_in_swap(cel_conn *c, cel_buf *spare);

/* If the client asked for 100-continue and it is still owed, append
 * "HTTP/1.1 100 Continue" to `out`.  Returns 1 if written, 0 if not owed,
 * CEL_ENOMEM. */
int cel_conn_send_continue(cel_conn *c);

/* Append the response head.  headers are (name, value) slices as the app
 * sent them; names are written lower-cased.  Adds date/server (per cfg,
 * before the app's headers, as uvicorn), "connection: close" when the
 * connection will not be kept alive, and "transfer-encoding: chunked" when
 * the app gave no length and a body is allowed.  `date` is a CEL_DATE_LEN
 * string.  Returns 0, CEL_ESTATE (already started), CEL_EHDRNAME,
 * CEL_EHDRVALUE, CEL_EBADCL (unparsable content-length), CEL_ENOMEM. */
int cel_conn_response_start(cel_conn *c, int status, const cel_header *headers,
                            size_t n, const char *date);

/* The head of a response with a known length and a content type, exactly as
 * cel_conn_response_start(c, status, {("content-length", "<length>"),
 * ("content-type", ctype)}, 2, date) writes it, without its checks: ctype
 * (ctype_len bytes, borrowed) must be a valid header value (no CTL byte but
 * HTAB) -- the caller's promise, for types it knows (a literal, a media type
 * checked once).  Returns 0, CEL_ESTATE, CEL_ENOMEM. */
int cel_conn_response_start_fixed(cel_conn *c, int status, uint64_t length,
                                  const char *ctype, size_t ctype_len, const char *date);

/* A whole response of len body bytes (borrowed) with that head: what
 * cel_conn_response_start_fixed(c, status, len, ...) and then
 * cel_conn_response_body(c, body, len, 0) write and leave, with one buffer
 * reservation.  Returns 0, CEL_ESTATE, CEL_ENOMEM (nothing written). */
int cel_conn_respond_fixed(cel_conn *c, int status, const char *ctype, size_t ctype_len,
                           const char *body, size_t len, const char *date);

/* Append body bytes, framed per the head.  more = 0 finishes the response.
 * Returns 0, CEL_ESTATE (not started / already done), CEL_ERESPLONG,
 * CEL_ERESPSHORT (finished short; the response is still marked done and the
 * connection will close), CEL_ENOMEM. */
int cel_conn_response_body(cel_conn *c, const char *p, size_t n, int more);

/* After the response is done: choose the next state.  IDLE for keep-alive
 * (unread body fully discarded), DRAIN when some of it still has to arrive,
 * CLOSING otherwise.  Returns the new state. */
int cel_conn_finish(cel_conn *c);

/* WebSocket: c->ws is set and the request is ACTIVE.  Append the 101
 * response (sec-websocket-accept from the handshake, the subprotocol when
 * given, the permessage-deflate answer when one was negotiated, date/server
 * per cfg, then the app's headers) and move to WS with a parser limited to
 * max_message bytes per message (0 = unlimited).
 * Returns 0, CEL_ESTATE, CEL_EHDRNAME, CEL_EHDRVALUE, CEL_ENOMEM. */
int cel_conn_ws_accept(cel_conn *c, const char *subprotocol, size_t sublen,
                       const cel_header *headers, size_t n, const char *date,
                       uint64_t max_message);

/* Append a data frame (TEXT or BINARY; compressed when permessage-deflate
 * is on) / a close frame (code 0: no payload).
 * Returns 0, CEL_ESTATE (not WS, or a close was already sent), CEL_ENOMEM. */
int cel_conn_ws_send(cel_conn *c, int opcode, const char *p, size_t n);
int cel_conn_ws_close(cel_conn *c, int code, const char *reason, size_t len);

/* ---- file bodies (conn_file.c; docs/files.md) ---- */

/* Finish the started response with the body read from fd: `size` bytes
 * from `offset`.  Takes ownership of fd in every case (closed now when no
 * body goes out -- HEAD, 204, 304, 1xx, size 0 -- or on error; else when the
 * file has been sent or the connection is released).  Framing follows the
 * head: with a Content-Length, at most the bytes still owed are sent (a
 * bigger file is cut there); chunked gets one chunk plus the terminator.
 * The response is done afterwards (resp_done) and the bytes go out through
 * cel_conn_file_send / cel_conn_file_read after what `out` holds.
 * Returns 0, CEL_ESTATE (not started / already done; fd closed),
 * CEL_ENOMEM (fd closed, nothing queued), or CEL_ERESPSHORT (the file is
 * shorter than the Content-Length still owed: it is queued all the same and
 * keep-alive is off, so the connection closes after it). */
int cel_conn_response_file(cel_conn *c, int fd, uint64_t offset, uint64_t size);

/* 1 while a file body is queued on c. */
static inline int cel_conn_file_pending(const cel_conn *c) { return c->file.fd >= 0; }

/* Send the queued file to socket `sock` with sendfile(2); `out` must be
 * empty (its bytes go first).  Returns 0 when the socket would block,
 * 1 when the caller should write `out` and call again (the file is done and
 * its tail was appended -- cel_conn_file_pending is then 0 -- or, for files
 * sendfile refuses, up to `chunk` bytes were read into `out`), or a negative
 * cel_err: CEL_ERESPSHORT (the file ended early), CEL_EIO (errno set: the
 * peer is gone or the file could not be read), CEL_ENOMEM.  On an error the
 * connection must be closed: the head promised bytes that cannot follow. */
int cel_conn_file_send(cel_conn *c, int sock, size_t chunk);

/* Read up to `chunk` more bytes of the queued file into `out` (the
 * in-memory connection's path, and the fallback when sendfile cannot be
 * used).  Returns 1 when the file is done (tail appended, fd closed), 0 when
 * more remains, or CEL_ERESPSHORT / CEL_EIO / CEL_ENOMEM as above. */
int cel_conn_file_read(cel_conn *c, size_t chunk);

/* Close the queued file, if any (connection closing).  Safe to repeat. */
void cel_conn_file_close(cel_conn *c);

/* Append a complete plain-text error response with "connection: close" and
 * move to CLOSING.  msg is ASCII.  Returns 0 or CEL_ENOMEM. */
int cel_conn_write_error(cel_conn *c, int status, const char *msg, const char *date);

#endif
