/* Internal to the server: what server.c and server_ws.c share.  Not part
 * of the public API (src/core/server.h). */
#ifndef CEL_SERVER_INTERNAL_H
#define CEL_SERVER_INTERNAL_H

#include "server.h"

#define MAX_LISTENERS 8
#define POOL_MAX 256
#define MAX_HEADERS_CAP 256

typedef struct listener {
    int fd;
    int port;
} listener;

struct cel_server {
    cel_server_config cfg;
    cel_server_callbacks cb;
    int epfd;
    listener listeners[MAX_LISTENERS];
    int nlisteners;
    int accepting;
    int draining;               /* stop_accepting was called: no more keep-alive */
    cel_conn *conns;            /* all connections (doubly linked) */
    size_t nconns;
    cel_conn *pending;          /* connections with input to process */
    cel_conn *pending_tail;
    uint64_t turn;              /* poll/run_pending invocations */
    uint64_t freed;             /* connections freed so far: tells a caller holding a
                                   cel_conn* whether a call may have freed it */
    int batch_depth;            /* inside poll/run_pending/sweep: frees are deferred */
    cel_conn *run_last;         /* run_pending: the last connection of this turn's walk;
                                   moved to its predecessor when it leaves the list */
    cel_conn *graveyard;        /* connections destroyed during the batch (linked by
                                   next, c->dead set); freed when the batch ends */
    char *pool[POOL_MAX];       /* free READ_CHUNK-sized buffers */
    int npool;
    cel_header headers[MAX_HEADERS_CAP];
};

/* Return an empty buffer's memory to the pool (or free it); a buffer still
 * holding bytes is left alone. */
void cel__server_buf_release(cel_server *s, cel_buf *b);

/* Close c: notify the owner, release the socket and free c (deferred to the
 * end of cel__server_process while it runs for c; an in-memory connection is
 * only marked closed).  Inside a batch (poll, run_pending, sweep) the struct
 * itself stays allocated, marked dead, until the batch ends: the batch's own
 * pointers to it (epoll events, list cursors) stay valid even when a
 * callback -- the app's code -- closed a connection other than the one being
 * processed.  c must not be used afterwards unless in_process or, within
 * the batch, to read c->dead. */
void cel__server_destroy(cel_server *s, cel_conn *c);

/* Open / close a batch (nestable): connections destroyed while one is open
 * are freed when the outermost closes (see cel__server_destroy). */
void cel__server_batch_begin(cel_server *s);
void cel__server_batch_end(cel_server *s);

/* Drive c as far as its buffered input allows (server.c).  Returns
 * CEL_ECLOSED if c was closed (freed or lingering), else 0. */
int cel__server_process(cel_server *s, cel_conn *c);

/* The CEL_CONN_WS state of cel__server_process: parse buffered frames,
 * answer control frames, deliver messages the app waits for, then flush
 * (server_ws.c).  Returns CEL_ECLOSED if c was closed, else 0. */
int cel__server_ws_process(cel_server *s, cel_conn *c);

/* Keepalive pings and the closing-handshake timeout of a WebSocket
 * connection, from cel_server_sweep (server_ws.c).  May free c. */
void cel__server_ws_sweep(cel_server *s, cel_conn *c, uint64_t now);

#endif
