#include "server_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "date.h"
#include "errors.h"
#include "ws.h"

#define MAX_EVENTS 256
#define READ_CHUNK 16384
#define LINGER_MS 2000

void cel_server_config_default(cel_server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cel_conn_config_default(&cfg->conn);
    cfg->backlog = 2048;
    cfg->header_timeout_ms = 10000;
    cfg->keepalive_timeout_ms = 5000;
    cfg->body_timeout_ms = 30000;
    cfg->read_high_water = 256 * 1024;
    cfg->write_high_water = 256 * 1024;
    cfg->accept_batch = 64;
    cfg->ws_max_message = 16 * 1024 * 1024;
    cfg->ws_ping_interval_ms = 20000;
    cfg->ws_ping_timeout_ms = 20000;
    cfg->ws_close_timeout_ms = 10000;
    cfg->ws_per_message_deflate = 1;
}

uint64_t cel_server_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

const char *cel_server_date(void)
{
    return cel_date_format(time(NULL));
}

cel_server *cel_server_new(const cel_server_config *cfg, const cel_server_callbacks *cb)
{
    cel_server *s = cel_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cfg = *cfg;
    s->cb = *cb;
    s->accepting = 1;
    s->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (s->epfd < 0) {
        cel_free(s);
        return NULL;
    }
    return s;
}

/* ---- buffer pool: idle connections hold no buffer memory ---- */

static void buf_acquire(cel_server *s, cel_buf *b)
{
    if (b->cap == 0 && s->npool > 0) {
        b->data = s->pool[--s->npool];
        b->cap = READ_CHUNK;
        b->start = b->len = 0;
    }
}

void cel__server_buf_release(cel_server *s, cel_buf *b)
{
    if (b->len != 0 || b->cap == 0)
        return;
    if (b->cap == READ_CHUNK && s->npool < POOL_MAX) {
        s->pool[s->npool++] = b->data;
        b->data = NULL;
        b->cap = b->start = 0;
    } else {
        cel_buf_free(b);
    }
}

/* ---- epoll interest ---- */

static void update_events(cel_server *s, cel_conn *c)
{
    uint32_t ev = 0;
    if (c->fd < 0)
        return;
    if (c->lingering)
        ev = EPOLLIN;
    else {
        int paused = c->state == CEL_CONN_CLOSING || c->read_eof
                     || (c->state == CEL_CONN_ACTIVE && c->in.len >= s->cfg.read_high_water)
                     || (cel_conn_file_pending(c) && c->in.len >= s->cfg.read_high_water)
                     || (c->state == CEL_CONN_WS && c->ws->msg_ready && !c->ws->want_msg);
        if (!paused)
            ev |= EPOLLIN;
        /* Output of a connection queued on the pending list is flushed by its
         * process() next turn (batching pipelined responses into one write);
         * EPOLLOUT only when a write would block or nothing else will flush. */
        if ((c->out.len || cel_conn_file_pending(c)) && (c->write_blocked || !c->in_pending))
            ev |= EPOLLOUT;
    }
    if (ev != c->epoll_events) {
        struct epoll_event e = { .events = ev, .data.ptr = c };
        epoll_ctl(s->epfd, EPOLL_CTL_MOD, c->fd, &e);
        c->epoll_events = ev;
    }
}

/* ---- pending list ---- */

static void pending_push(cel_server *s, cel_conn *c)
{
    if (c->in_pending)
        return;
    int was_empty = s->pending == NULL;
    c->in_pending = 1;
    c->pending_next = NULL;
    c->pending_prev = s->pending_tail;
    if (s->pending_tail)
        s->pending_tail->pending_next = c;
    else
        s->pending = c;
    s->pending_tail = c;
    if (was_empty && s->cb.on_pending)
        s->cb.on_pending(s->cb.ud);
}

static void pending_remove(cel_server *s, cel_conn *c)
{
    if (!c->in_pending)
        return;
    if (c == s->run_last)
        s->run_last = c->pending_prev;  /* (NULL when it was the first: the walk is over) */
    if (c->pending_prev)
        c->pending_prev->pending_next = c->pending_next;
    else
        s->pending = c->pending_next;
    if (c->pending_next)
        c->pending_next->pending_prev = c->pending_prev;
    else
        s->pending_tail = c->pending_prev;
    c->in_pending = 0;
    c->pending_next = c->pending_prev = NULL;
}

/* ---- closing ---- */

static void notify_close(cel_server *s, cel_conn *c)
{
    if (!c->notified_close) {
        c->notified_close = 1;
        if (s->cb.on_close)
            s->cb.on_close(s->cb.ud, c);
        c->user = NULL;
    }
}

static void unlink_conn(cel_server *s, cel_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->nconns--;
}

/* Free c (released, off every list) now, or at the end of the batch
 * running now (see cel__server_batch_begin). */
static void bury(cel_server *s, cel_conn *c)
{
    if (s->batch_depth) {
        c->dead = 1;
        c->next = s->graveyard;
        s->graveyard = c;
        return;
    }
    cel_free(c);
}

void cel__server_destroy(cel_server *s, cel_conn *c)
{
    notify_close(s, c);
    cel_conn_file_close(c);
    if (c->in_process) {
        c->close_pending = 1;       /* process() finishes the job */
        return;
    }
    pending_remove(s, c);
    if (c->fd < 0) {
        /* In-memory: the owner frees it with cel_server_close; keep output. */
        if (!c->closed) {
            c->closed = 1;
            c->state = CEL_CONN_CLOSED;
            if (s->cb.on_output)
                s->cb.on_output(s->cb.ud, c);
        }
        return;
    }
    unlink_conn(s, c);
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    cel_conn_release(c);
    s->freed++;
    bury(s, c);
}

/* A batch: poll, run_pending and sweep walk connections while callbacks run
 * the app's code, which may close any connection (a write to another
 * client's socket failing, a broadcast...).  Connections destroyed meanwhile
 * are freed when the outermost batch ends, so the walk never touches freed
 * memory; it skips those marked dead. */
void cel__server_batch_begin(cel_server *s)
{
    s->batch_depth++;
}

void cel__server_batch_end(cel_server *s)
{
    if (--s->batch_depth)
        return;
    while (s->graveyard) {
        cel_conn *c = s->graveyard;
        s->graveyard = c->next;
        cel_free(c);
    }
}

void cel_server_close(cel_server *s, cel_conn *c)
{
    if (c->in_process) {
        cel__server_destroy(s, c);  /* deferred to the end of process() */
        return;
    }
    if (c->fd < 0) {
        cel__server_destroy(s, c);
        if (c->prev || c->next || s->conns == c)
            unlink_conn(s, c);
        if (s->cb.on_free)
            s->cb.on_free(s->cb.ud, c);
        cel_conn_release(c);
        s->freed++;
        bury(s, c);
        return;
    }
    cel__server_destroy(s, c);
}

/* All output written: shut down our side and drain the peer's input for a
 * moment, so unread request bytes do not turn our close into an RST that
 * destroys the response at the client. */
static void begin_linger(cel_server *s, cel_conn *c)
{
    if (c->fd < 0) {
        cel__server_destroy(s, c);
        return;
    }
    notify_close(s, c);
    pending_remove(s, c);
    if (c->in.len == 0 && c->read_eof) {
        cel__server_destroy(s, c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->lingering = 1;
    cel_buf_consume(&c->in, c->in.len);
    c->deadline_ms = cel_server_now_ms() + LINGER_MS;
    update_events(s, c);
}

/* A file body finished on c: the next pipelined request (or the peer's
 * EOF) waited for it in process(), which is run again from the pending list. */
static void file_finished(cel_server *s, cel_conn *c)
{
    if (c->state == CEL_CONN_IDLE && (c->in.len || c->read_eof))
        pending_push(s, c);
}

/* In-memory connection: hand `out` to the owner, refilled from a queued
 * file up to the write high-water mark (cel_server_take_output refills it
 * as the owner takes bytes). */
static int flush_memory(cel_server *s, cel_conn *c)
{
    if (c->closed)
        return CEL_ECLOSED;
    int finished = 0;
    if (cel_conn_file_pending(c) && c->out.len < s->cfg.write_high_water) {
        int rc = cel_conn_file_read(c, s->cfg.write_high_water - c->out.len);
        if (rc < 0) {
            cel__server_destroy(s, c);
            return CEL_ECLOSED;
        }
        finished = rc == 1;
    }
    if (c->out.len && s->cb.on_output)
        s->cb.on_output(s->cb.ud, c);
    if (c->closed)
        return CEL_ECLOSED;
    if (c->state == CEL_CONN_CLOSING && !cel_conn_file_pending(c)) {
        cel__server_destroy(s, c);
        return CEL_ECLOSED;
    }
    if (finished)
        file_finished(s, c);
    if (c->want_drain && c->out.len < s->cfg.write_high_water) {
        c->want_drain = 0;
        if (s->cb.on_drain)
            s->cb.on_drain(s->cb.ud, c);
    }
    return c->closed ? CEL_ECLOSED : 0;
}

int cel_server_flush(cel_server *s, cel_conn *c)
{
    if (c->fd < 0)
        return flush_memory(s, c);
    int finished = 0;
    for (;;) {
        while (c->out.len) {
            ssize_t n = write(c->fd, cel_buf_head(&c->out), c->out.len);
            if (n > 0) {
                cel_buf_consume(&c->out, (size_t)n);
                if (c->out.len || cel_conn_file_pending(c))
                    c->last_write_ms = cel_server_now_ms();
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                c->write_blocked = 1;
                break;
            }
            cel__server_destroy(s, c);
            return CEL_ECLOSED;
        }
        if (c->out.len || !cel_conn_file_pending(c))
            break;
        /* `out` is empty: the file's bytes follow (docs/files.md) */
        int rc = cel_conn_file_send(c, c->fd, READ_CHUNK * 4);
        c->last_write_ms = cel_server_now_ms();
        if (rc < 0) {
            cel__server_destroy(s, c);  /* the head promised bytes that cannot follow */
            return CEL_ECLOSED;
        }
        if (rc == 0) {
            c->write_blocked = 1;
            break;
        }
        if (!cel_conn_file_pending(c))
            finished = 1;
    }
    if (c->out.len == 0 && !cel_conn_file_pending(c)) {
        c->write_blocked = 0;
        cel__server_buf_release(s, &c->out);
        if (c->state == CEL_CONN_CLOSING) {
            begin_linger(s, c);
            return CEL_ECLOSED;
        }
    }
    if (finished)
        file_finished(s, c);
    if (c->want_drain && c->out.len < s->cfg.write_high_water) {
        c->want_drain = 0;
        if (s->cb.on_drain)
            s->cb.on_drain(s->cb.ud, c);
        if (c->notified_close)
            return CEL_ECLOSED;
    }
    update_events(s, c);
    return 0;
}

/* ---- request processing ---- */

static const char *error_message(int status)
{
    switch (status) {
    case 408: return "Request Timeout";
    case 413: return "Request Entity Too Large";
    case 414: return "Request-URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 505: return "HTTP Version Not Supported";
    case 426: return "Unsupported WebSocket version.";
    case 500: return "Internal Server Error";
    default: return "Invalid HTTP request received.";
    }
}

static int answer_error(cel_server *s, cel_conn *c, int err)
{
    int status = cel_err_http_status(err);
    if (s->cb.on_bad_request)
        s->cb.on_bad_request(s->cb.ud, c, err, status);
    if (c->state == CEL_CONN_ACTIVE)
        notify_close(s, c);
    c->state = CEL_CONN_IDLE;
    cel_conn_write_error(c, status, error_message(status), cel_server_date());
    return cel_server_flush(s, c);
}

/* The body of process(); runs with c->in_process set, so a close requested
 * from inside a callback is deferred until process() returns. */
static int process_inner(cel_server *s, cel_conn *c)
{
    cel_http_request req;
    int rc;
    for (;;) {
        switch (c->state) {
        case CEL_CONN_IDLE:
            if (cel_conn_file_pending(c)) {
                /* The last response's file is still going out: the next
                 * request waits for it (responses stay in order); its
                 * completion puts c back on the pending list. */
                if (c->in.len == 0)
                    cel__server_buf_release(s, &c->in);
                return cel_server_flush(s, c);
            }
            if (c->in.len == 0) {
                if (c->read_eof) {
                    if (c->out.len)
                        c->state = CEL_CONN_CLOSING;
                    else {
                        cel__server_destroy(s, c);
                        return CEL_ECLOSED;
                    }
                } else {
                    c->head_started = 0;
                    c->deadline_ms = cel_server_now_ms() +
                        (c->requests ? s->cfg.keepalive_timeout_ms : s->cfg.header_timeout_ms);
                    cel__server_buf_release(s, &c->in);
                }
                return cel_server_flush(s, c);
            }
            if (!c->head_started) {
                c->head_started = 1;
                c->deadline_ms = cel_server_now_ms() + s->cfg.header_timeout_ms;
            }
            rc = cel_conn_parse_head(c, &req, s->headers, MAX_HEADERS_CAP);
            if (rc == CEL_EAGAIN) {
                if (c->read_eof) {
                    cel__server_destroy(s, c);
                    return CEL_ECLOSED;
                }
                return cel_server_flush(s, c);
            }
            if (rc < 0) {
                return answer_error(s, c, rc);
            }
            if (cel_ws_is_upgrade(&req)) {
                cel_ws_handshake hs;
                rc = cel_ws_handshake_check(&req, &hs);
                if (rc < 0)
                    return answer_error(s, c, rc);
                c->ws = cel_calloc(1, sizeof *c->ws);
                if (!c->ws)
                    return answer_error(s, c, CEL_ENOMEM);
                c->ws->hs = hs;
                if (s->cfg.ws_per_message_deflate && hs.deflate_offered)
                    cel_ws_deflate_negotiate(&req, &c->ws->deflate_params, c->ws->deflate_response,
                                             sizeof c->ws->deflate_response);
                c->keep_alive = 0;      /* a denial is the last response on it */
            }
            c->deadline_ms = 0;
            if (s->draining)
                c->keep_alive = 0;      /* shutting down: this is the last response */
            c->dispatch_turn = s->turn;
            c->user = NULL;
            c->notified_close = 0;
            /* The response goes into a pool-sized buffer (back to the pool once
             * written), not one realloc'ed up from 1 KiB per pipelined batch.
             * (An allocation failure here is left to the response's own
             * reserve to report.) */
            buf_acquire(s, &c->out);
            if (c->out.cap == 0)
                (void)cel_buf_reserve(&c->out, READ_CHUNK);
            rc = s->cb.on_request(s->cb.ud, c, &req);
            if (rc < 0 && c->state == CEL_CONN_ACTIVE && !c->resp_started) {
                return answer_error(s, c, CEL_ENOMEM);
            }
            continue;
        case CEL_CONN_ACTIVE:
            if (c->read_eof && c->ws && c->in.len == 0 && !c->resp_started) {
                /* the client left during the handshake: the app sees 1006 */
                cel__server_destroy(s, c);
                return CEL_ECLOSED;
            }
            if (c->read_eof && !c->body_done) {
                /* The client went away mid-request: the app sees http.disconnect. */
                cel__server_destroy(s, c);
                return CEL_ECLOSED;
            }
            if (c->want_body && (c->in.len || c->read_eof)) {
                c->deadline_ms = c->want_body ? cel_server_now_ms() + s->cfg.body_timeout_ms : 0;
                if (s->cb.on_body)
                    s->cb.on_body(s->cb.ud, c);
                if (c->notified_close)
                    return CEL_ECLOSED;
                if (c->state != CEL_CONN_ACTIVE) {
                    continue;
                }
            }
            if (c->out.len) {
                if (c->dispatch_turn == s->turn && c->out.len < s->cfg.write_high_water) {
                    /* Just dispatched: give the app one loop turn so its response
                     * joins the earlier ones in a single write. */
                    pending_push(s, c);
                    update_events(s, c);
                    return 0;
                }
                return cel_server_flush(s, c);
            }
            update_events(s, c);
            return 0;
        case CEL_CONN_DRAIN: {
            const char *p;
            size_t n;
            while ((rc = cel_conn_body_read(c, &p, &n)) == 1)
                ;
            if (rc == 0) {
                c->state = CEL_CONN_IDLE;
                c->head_started = 0;
                continue;
            }
            if (rc == CEL_EAGAIN && !c->read_eof) {
                c->deadline_ms = cel_server_now_ms() + s->cfg.body_timeout_ms;
                return cel_server_flush(s, c);
            }
            c->state = CEL_CONN_CLOSING;
            return cel_server_flush(s, c);
        }
        case CEL_CONN_WS:
            return cel__server_ws_process(s, c);
        default:
            return cel_server_flush(s, c);
        }
    }
}

/* Drive c as far as its buffered input allows.  Callbacks made from here may
 * ask to close c (cel_server_close, a failed flush): that is deferred to the
 * end, so c stays valid throughout.  Returns CEL_ECLOSED if c was closed (freed
 * or lingering), else 0. */
int cel__server_process(cel_server *s, cel_conn *c)
{
    if (c->in_process)
        return 0;
    c->in_process = 1;
    int rc = process_inner(s, c);
    c->in_process = 0;
    if (c->close_pending) {
        c->close_pending = 0;
        cel__server_destroy(s, c);
        return CEL_ECLOSED;
    }
    return rc;
}

static void on_readable(cel_server *s, cel_conn *c)
{
    for (;;) {
        buf_acquire(s, &c->in);
        if (cel_buf_reserve(&c->in, c->in.cap ? 4096 : READ_CHUNK)) {
            cel__server_destroy(s, c);
            return;
        }
        size_t room = cel_buf_room(&c->in);
        ssize_t n = read(c->fd, cel_buf_tail(&c->in), room);
        if (n > 0) {
            c->in.len += (size_t)n;
            if (c->lingering) {
                cel_buf_consume(&c->in, c->in.len);
                continue;
            }
            if ((size_t)n < room)
                break;
            if (c->state != CEL_CONN_IDLE && c->in.len >= s->cfg.read_high_water)
                break;
            if (c->state == CEL_CONN_IDLE && c->in.len > s->cfg.conn.limits.max_request_line
                                                       + s->cfg.conn.limits.max_header_bytes + 4096)
                break;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (c->lingering || n < 0) {
            cel__server_destroy(s, c);
            return;
        }
        c->read_eof = 1;
        break;
    }
    if (c->lingering)
        return;
    cel__server_process(s, c);
}

static void accept_ready(cel_server *s, listener *l)
{
    int batch = s->cfg.accept_batch > 0 ? s->cfg.accept_batch : 64;
    for (int i = 0; i < batch && s->accepting; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return;     /* EAGAIN, or EMFILE etc.: try again on the next event */
        }
        cel_conn *c = cel_malloc(sizeof *c);
        if (!c) {
            close(fd);
            continue;
        }
        cel_conn_init(c, fd, &s->cfg.conn);
        if (peer.ss_family == AF_INET || peer.ss_family == AF_INET6) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (plen > sizeof c->peer)
            plen = sizeof c->peer;
        memcpy(c->peer, &peer, plen);
        c->peer_len = plen;
        socklen_t llen = sizeof c->local;
        if (getsockname(fd, (struct sockaddr *)c->local, &llen) == 0)
            c->local_len = llen;
        c->epoll_events = EPOLLIN;
        struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
            close(fd);
            cel_free(c);
            continue;
        }
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        c->deadline_ms = cel_server_now_ms() + s->cfg.header_timeout_ms;
        if (s->cfg.max_connections && s->nconns >= s->cfg.max_connections)
            return;
    }
}

static listener *as_listener(cel_server *s, void *ptr)
{
    if ((char *)ptr >= (char *)s->listeners && (char *)ptr < (char *)(s->listeners + MAX_LISTENERS))
        return ptr;
    return NULL;
}

int cel_server_poll(cel_server *s)
{
    struct epoll_event ev[MAX_EVENTS];
    s->turn++;
    int n = epoll_wait(s->epfd, ev, MAX_EVENTS, 0);
    cel__server_batch_begin(s);
    for (int i = 0; i < n; i++) {
        listener *l = as_listener(s, ev[i].data.ptr);
        if (l) {
            accept_ready(s, l);
            continue;
        }
        cel_conn *c = ev[i].data.ptr;
        if (c->dead)
            continue;                   /* closed by an earlier event's callbacks */
        if (ev[i].events & EPOLLOUT) {
            uint64_t freed = s->freed;
            int rc = cel_server_flush(s, c);
            if (s->freed != freed)
                continue;               /* c may be gone; a live one is reported again */
            if (rc == CEL_ECLOSED && !c->lingering)
                continue;
            if (c->lingering && !(ev[i].events & EPOLLIN))
                continue;
        }
        if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            on_readable(s, c);
    }
    cel_server_run_pending(s);
    cel__server_batch_end(s);
    return n < 0 ? 0 : n;
}

void cel_server_run_pending(cel_server *s)
{
    s->turn++;
    cel__server_batch_begin(s);
    /* Only the connections queued before this call: ones re-queued by
     * process() wait for the next turn.  The walk ends at run_last, which
     * pending_remove moves back when that connection leaves the list (a
     * callback closed it): without that, a connection re-queued behind it
     * would be taken again and again, in one call. */
    cel_conn *outer = s->run_last;      /* (not nested in practice; kept safe) */
    s->run_last = s->pending_tail;
    while (s->pending && s->run_last) {
        cel_conn *c = s->pending;
        int last = c == s->run_last;
        pending_remove(s, c);
        cel__server_process(s, c);
        if (last)
            break;
    }
    s->run_last = outer;
    cel__server_batch_end(s);
    /* Connections re-queued above did not ask for a turn (the list was not
     * empty when they joined it): ask once for all of them. */
    if (s->pending && s->cb.on_pending)
        s->cb.on_pending(s->cb.ud);
}

void cel_server_sweep(cel_server *s, uint64_t now_ms)
{
    cel__server_batch_begin(s);
    cel_conn *c = s->conns;
    while (c) {
        cel_conn *next = c->next;
        if (c->fd >= 0 && c->deadline_ms && now_ms >= c->deadline_ms) {
            if (c->lingering)
                cel__server_destroy(s, c);
            else if (c->state == CEL_CONN_IDLE && (c->out.len || cel_conn_file_pending(c))
                     && now_ms - c->last_write_ms < s->cfg.body_timeout_ms)
                /* Still sending the last response to a client that reads:
                 * the keep-alive wait starts once it has gone out. */
                c->deadline_ms = now_ms + s->cfg.keepalive_timeout_ms;
            else if (c->state == CEL_CONN_IDLE && c->head_started && c->in.len)
                answer_error(s, c, CEL_ETIMEOUT);
            else if (c->state == CEL_CONN_IDLE || c->state == CEL_CONN_DRAIN
                     || (c->state == CEL_CONN_ACTIVE && c->want_body))
                cel__server_destroy(s, c);
            else if (c->state == CEL_CONN_WS)
                cel__server_ws_sweep(s, c, now_ms);
        } else if (c->fd >= 0 && c->state == CEL_CONN_WS && !c->lingering) {
            cel__server_ws_sweep(s, c, now_ms);
        }
        /* next closed by the callbacks just run: it left the list (its
         * `next` is the graveyard's link now); the rest waits a sweep */
        c = next && !next->dead ? next : NULL;
    }
    cel__server_batch_end(s);
}

int cel_server_response_done(cel_server *s, cel_conn *c)
{
    int st = cel_conn_finish(c);
    c->want_body = 0;
    if (st == CEL_CONN_ACTIVE)
        return 0;
    c->user = NULL;
    if (c->in_process)
        return 0;       /* process() continues with the next request itself */
    if (st == CEL_CONN_IDLE && c->in.len) {
        pending_push(s, c);
        if (c->out.len >= s->cfg.write_high_water)
            return cel_server_flush(s, c);
        return 0;
    }
    if (st == CEL_CONN_IDLE) {
        c->head_started = 0;
        c->deadline_ms = cel_server_now_ms() + s->cfg.keepalive_timeout_ms;
        c->last_write_ms = cel_server_now_ms();
        cel__server_buf_release(s, &c->in);
    } else if (st == CEL_CONN_DRAIN) {
        c->deadline_ms = cel_server_now_ms() + s->cfg.body_timeout_ms;
    }
    return cel_server_flush(s, c);
}

int cel_server_want_body(cel_server *s, cel_conn *c)
{
    c->want_body = 1;
    c->deadline_ms = cel_server_now_ms() + s->cfg.body_timeout_ms;
    if (cel_conn_send_continue(c) == 1 && !c->in_process)
        return cel_server_flush(s, c);
    update_events(s, c);
    return 0;
}

/* ---- listeners ---- */

static int add_listener(cel_server *s, int fd, int port)
{
    if (s->nlisteners >= MAX_LISTENERS) {
        close(fd);
        errno = EMFILE;
        return CEL_EIO;
    }
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    listener *l = &s->listeners[s->nlisteners];
    l->fd = fd;
    l->port = port;
    /* Level-triggered and not EPOLLEXCLUSIVE: with several worker processes
     * on one socket, exclusive wake-ups kept handing connections to the same
     * worker (measured: docs/workers.md); waking all, each accepting
     * accept_batch, spreads them. */
    struct epoll_event e = { .events = EPOLLIN, .data.ptr = l };
    if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return CEL_EIO;
    }
    s->nlisteners++;
    return 0;
}

int cel_server_listen_tcp(cel_server *s, const char *host, int port)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = getaddrinfo(host && *host ? host : NULL, portstr, &hints, &res);
    if (gai != 0) {
        errno = EADDRNOTAVAIL;
        return CEL_EIO;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return CEL_EIO;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, s->cfg.backlog) < 0) {
        int saved = errno;
        freeaddrinfo(res);
        close(fd);
        errno = saved;
        return CEL_EIO;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int bound = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            bound = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            bound = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return add_listener(s, fd, bound);
}

int cel_server_listen_unix(cel_server *s, const char *path)
{
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        errno = ENAMETOOLONG;
        return CEL_EIO;
    }
    strcpy(sa.sun_path, path);
    unlink(path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return CEL_EIO;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, s->cfg.backlog) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return CEL_EIO;
    }
    return add_listener(s, fd, -1);
}

int cel_server_listen_fd(cel_server *s, int fd)
{
    return add_listener(s, fd, -1);
}

int cel_server_bound_port(const cel_server *s)
{
    for (int i = 0; i < s->nlisteners; i++)
        if (s->listeners[i].port >= 0)
            return s->listeners[i].port;
    return -1;
}

int cel_server_fd(const cel_server *s)
{
    return s->epfd;
}

void cel_server_stop_accepting(cel_server *s)
{
    /* Take what the kernel already queued (connections whose handshake
     * completed, maybe with a request sent) so that closing the listener does
     * not reset them; they are served with "connection: close". */
    for (int i = 0; i < s->nlisteners; i++) {
        if (s->listeners[i].fd < 0)
            continue;
        size_t before;
        do {
            before = s->nconns;
            accept_ready(s, &s->listeners[i]);
        } while (s->nconns > before && s->accepting);
    }
    s->accepting = 0;
    s->draining = 1;
    for (cel_conn *c = s->conns; c; c = c->next)
        if (c->state == CEL_CONN_ACTIVE && !c->resp_started)
            c->keep_alive = 0;
    for (int i = 0; i < s->nlisteners; i++) {
        if (s->listeners[i].fd < 0)
            continue;
        epoll_ctl(s->epfd, EPOLL_CTL_DEL, s->listeners[i].fd, NULL);
        close(s->listeners[i].fd);
        s->listeners[i].fd = -1;
    }
    s->nlisteners = 0;
}

/* 1 when the peer has sent bytes we have not read yet (a request on its way). */
static int input_waiting(const cel_conn *c)
{
    char b;
    if (c->fd < 0)
        return 0;
    ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0;
}

size_t cel_server_close_idle(cel_server *s)
{
    cel__server_batch_begin(s);
    cel_conn *c = s->conns;
    while (c) {
        cel_conn *next = c->next;
        if (c->lingering)
            cel__server_destroy(s, c);
        else if (c->state == CEL_CONN_IDLE && c->in.len == 0 && c->out.len == 0
                 && !cel_conn_file_pending(c) && c->requests > 0 && !input_waiting(c))
            cel__server_destroy(s, c);
        /* next closed by the callbacks (on_close) just run: restart the
         * walk; the connections closed so far are off the list */
        c = next && next->dead ? s->conns : next;
    }
    cel__server_batch_end(s);
    return s->nconns;
}

size_t cel_server_num_connections(const cel_server *s)
{
    return s->nconns;
}

cel_conn *cel_server_memory_conn(cel_server *s, const void *peer, unsigned peer_len)
{
    cel_conn *c = cel_malloc(sizeof *c);
    if (!c)
        return NULL;
    cel_conn_init(c, -1, &s->cfg.conn);
    if (peer && peer_len && peer_len <= sizeof c->peer) {
        memcpy(c->peer, peer, peer_len);
        c->peer_len = peer_len;
    }
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    return c;
}

int cel_server_feed(cel_server *s, cel_conn *c, const char *p, size_t n, int eof)
{
    if (c->closed)
        return CEL_ECLOSED;
    if (n && cel_buf_append(&c->in, p, n))
        return CEL_ENOMEM;
    if (eof)
        c->read_eof = 1;
    if (c->in_process)
        return 0;
    s->turn++;
    cel__server_process(s, c);
    return c->closed ? CEL_ECLOSED : 0;
}

size_t cel_server_take_output(cel_server *s, cel_conn *c, char *dst, size_t cap)
{
    size_t n = c->out.len < cap ? c->out.len : cap;
    if (n == 0)
        return 0;
    memcpy(dst, cel_buf_head(&c->out), n);
    cel_buf_consume(&c->out, n);
    if (cel_conn_file_pending(c) && !c->closed && !c->in_process
        && c->out.len < s->cfg.write_high_water) {
        flush_memory(s, c);         /* refill from the file */
        return n;
    }
    if (c->want_drain && c->out.len < s->cfg.write_high_water && !c->closed) {
        c->want_drain = 0;
        if (s->cb.on_drain)
            s->cb.on_drain(s->cb.ud, c);
    }
    return n;
}

void cel_server_free(cel_server *s)
{
    if (!s)
        return;
    while (s->conns)
        cel_server_close(s, s->conns);
    s->batch_depth = 1;         /* (freed inside a batch: release what it deferred) */
    cel__server_batch_end(s);
    for (int i = 0; i < s->nlisteners; i++)
        if (s->listeners[i].fd >= 0)
            close(s->listeners[i].fd);
    for (int i = 0; i < s->npool; i++)
        cel_free(s->pool[i]);
    close(s->epfd);
    cel_free(s);
}
