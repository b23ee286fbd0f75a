/* WebSocket connections of the server: frames in, messages to the app,
 * control frames, keepalive pings and the closing handshake (docs/websocket.md).
 * The HTTP side and the connection lifecycle are in server.c. */
#include "server_internal.h"

#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "ws.h"

/* Fail the connection: close frame with `code` (the app will see it as the
 * disconnect code), then CLOSING. */
static int ws_fail(cel_server *s, cel_conn *c, int code, const char *reason)
{
    cel_ws_conn *w = c->ws;
    if (!w->close_sent) {
        size_t rl = strlen(reason);
        if (cel_ws_write_close(&c->out, code, reason, rl) == 0)
            w->close_sent = 1;
        if (!w->close_code) {
            w->close_code = code;
            w->close_reason_len = rl < sizeof w->close_reason ? rl : sizeof w->close_reason - 1;
            memcpy(w->close_reason, reason, w->close_reason_len);
        }
    }
    c->keep_alive = 0;
    c->state = CEL_CONN_CLOSING;
    return cel_server_flush(s, c);
}

static void ws_deliver(cel_server *s, cel_conn *c, int opcode, const char *p, size_t n)
{
    c->ws->want_msg = 0;
    if (s->cb.on_ws_message)
        s->cb.on_ws_message(s->cb.ud, c, opcode, p, n);
}

/* A control frame from the peer. */
static int ws_control(cel_server *s, cel_conn *c, const cel_ws_event *ev)
{
    cel_ws_conn *w = c->ws;
    if (ev->opcode == CEL_WS_PING) {
        if (!w->close_sent && cel_ws_write_frame(&c->out, CEL_WS_PONG, ev->data, ev->len))
            return CEL_ENOMEM;
    } else if (ev->opcode == CEL_WS_PONG) {
        unsigned char want[4] = { (unsigned char)(w->ping_seq >> 24), (unsigned char)(w->ping_seq >> 16),
                                  (unsigned char)(w->ping_seq >> 8), (unsigned char)w->ping_seq };
        if (w->ping_outstanding && ev->len == 4 && memcmp(ev->data, want, 4) == 0) {
            w->ping_outstanding = 0;
            w->pong_deadline_ms = 0;
            if (s->cfg.ws_ping_interval_ms)
                w->next_ping_ms = cel_server_now_ms() + s->cfg.ws_ping_interval_ms;
        }
    } else {
        w->close_rcvd = 1;
        if (!w->close_sent) {
            /* echo the peer's close (RFC 6455 5.5.1); the app sees its code */
            w->close_code = ev->close_code;
            w->close_reason_len = ev->reason_len;
            memcpy(w->close_reason, ev->reason, ev->reason_len);
            if (cel_ws_write_frame(&c->out, CEL_WS_CLOSE, ev->data, ev->len) == 0)
                w->close_sent = 1;
        }
        c->keep_alive = 0;
        c->state = CEL_CONN_CLOSING;
    }
    return 0;
}

/* Parse buffered frames: answer pings, handle close, hand complete
 * messages to the app while it waits for them; stop at a complete message
 * it has not asked for yet (reading pauses, see update_events). */
int cel__server_ws_process(cel_server *s, cel_conn *c)
{
    cel_ws_conn *w = c->ws;
    while (c->state == CEL_CONN_WS) {
        if (w->msg_ready) {
            if (!w->want_msg)
                break;
            w->msg_ready = 0;
            ws_deliver(s, c, w->msg_opcode, cel_buf_head(&w->msg), w->msg.len);
            cel_buf_consume(&w->msg, w->msg.len);
            cel_buf_shrink(&w->msg, 65536);
            if (c->notified_close)
                return CEL_ECLOSED;
            continue;
        }
        cel_ws_event ev;
        size_t used;
        int rc = cel_ws_parse(&w->parser, cel_buf_head(&c->in), c->in.len, &used, &ev);
        if (rc == 1 && ev.kind == CEL_WS_EV_DATA && ev.compressed) {
            if (!w->close_sent) {
                if (ev.first)
                    w->msg_utf8 = 0;
                size_t before = w->msg.len;
                int zr = cel_ws_inflate(w->deflate, ev.data, ev.len, ev.last, &w->msg,
                                        s->cfg.ws_max_message);
                if (zr == 0 && ev.opcode == CEL_WS_TEXT
                    && (cel_ws_utf8_step(&w->msg_utf8, cel_buf_head(&w->msg) + before,
                                         w->msg.len - before) < 0
                        || (ev.last && w->msg_utf8 != 0)))
                    zr = CEL_EWSUTF8;
                if (zr < 0) {
                    cel_buf_consume(&c->in, used);
                    rc = zr;
                    goto failed;
                }
                if (ev.last) {
                    w->msg_ready = 1;
                    w->msg_opcode = ev.opcode;
                }
            }
            cel_buf_consume(&c->in, used);
            continue;
        }
        if (rc == 1 && ev.kind == CEL_WS_EV_DATA) {
            if (w->close_sent) {
                /* closing: messages are dropped */
            } else if (ev.first && ev.last && w->want_msg) {
                ws_deliver(s, c, ev.opcode, ev.data, ev.len);   /* zero-copy */
            } else if (cel_buf_append(&w->msg, ev.data, ev.len)) {
                return ws_fail(s, c, CEL_WS_CLOSE_INTERNAL, "out of memory");
            } else if (ev.last) {
                w->msg_ready = 1;
                w->msg_opcode = ev.opcode;
            }
            cel_buf_consume(&c->in, used);
            if (c->notified_close)
                return CEL_ECLOSED;
            continue;
        }
        if (rc == 1) {
            if (ws_control(s, c, &ev) < 0)
                return ws_fail(s, c, CEL_WS_CLOSE_INTERNAL, "out of memory");
            cel_buf_consume(&c->in, used);
            continue;
        }
        cel_buf_consume(&c->in, used);
        if (rc == CEL_EAGAIN) {
            if (c->read_eof) {
                cel__server_destroy(s, c);          /* dropped without a close frame */
                return CEL_ECLOSED;
            }
            break;
        }
    failed:
        if (rc == CEL_ENOMEM)
            return ws_fail(s, c, CEL_WS_CLOSE_INTERNAL, "out of memory");
        if (rc == CEL_EWSTOOBIG) {
            char reason[80];
            snprintf(reason, sizeof reason, "Message exceeds the maximum size (%llu bytes)",
                     (unsigned long long)s->cfg.ws_max_message);
            return ws_fail(s, c, CEL_WS_CLOSE_TOO_BIG, reason);
        }
        return ws_fail(s, c, cel_ws_error_close_code(rc), cel_strerror(rc));
    }
    if (c->state == CEL_CONN_WS && c->in.len == 0)
        cel__server_buf_release(s, &c->in);
    return cel_server_flush(s, c);
}

/* Keepalive pings and the closing-handshake timeout (from the sweep). */
void cel__server_ws_sweep(cel_server *s, cel_conn *c, uint64_t now)
{
    cel_ws_conn *w = c->ws;
    if (w->close_sent) {
        if (c->deadline_ms && now >= c->deadline_ms)
            cel__server_destroy(s, c);
        return;
    }
    if (w->ping_outstanding && w->pong_deadline_ms && now >= w->pong_deadline_ms) {
        ws_fail(s, c, CEL_WS_CLOSE_INTERNAL, "keepalive ping timeout");
        return;
    }
    if (!w->ping_outstanding && w->next_ping_ms && now >= w->next_ping_ms) {
        w->ping_seq++;
        unsigned char pl[4] = { (unsigned char)(w->ping_seq >> 24), (unsigned char)(w->ping_seq >> 16),
                                (unsigned char)(w->ping_seq >> 8), (unsigned char)w->ping_seq };
        if (cel_ws_write_frame(&c->out, CEL_WS_PING, (const char *)pl, 4))
            return;
        w->ping_outstanding = 1;
        w->next_ping_ms = 0;
        w->pong_deadline_ms = s->cfg.ws_ping_timeout_ms ? now + s->cfg.ws_ping_timeout_ms : 0;
        if (!s->cfg.ws_ping_timeout_ms) {
            w->ping_outstanding = 0;
            w->next_ping_ms = now + s->cfg.ws_ping_interval_ms;
        }
        cel_server_flush(s, c);
    }
}

/* Go on with c's buffered input: now if no process() is running for it,
 * else process() picks it up itself. */
static int kick(cel_server *s, cel_conn *c)
{
    if (c->in_process)
        return 0;
    return cel__server_process(s, c);
}

int cel_server_ws_accept(cel_server *s, cel_conn *c, const char *subprotocol, size_t sublen,
                         const cel_header *headers, size_t n)
{
    int rc = cel_conn_ws_accept(c, subprotocol, sublen, headers, n, cel_server_date(),
                                s->cfg.ws_max_message);
    if (rc < 0)
        return rc;
    c->deadline_ms = 0;
    c->want_body = 0;
    if (s->cfg.ws_ping_interval_ms)
        c->ws->next_ping_ms = cel_server_now_ms() + s->cfg.ws_ping_interval_ms;
    if (c->in_process)
        return 0;
    return cel__server_process(s, c);       /* CEL_ECLOSED: c may be freed, do not touch it */
}

int cel_server_ws_want_message(cel_server *s, cel_conn *c)
{
    if (c->state != CEL_CONN_WS)
        return 0;
    cel_ws_conn *w = c->ws;
    w->want_msg = 1;
    /* Nothing buffered, no frame begun, no end of input, nothing to write:
     * processing would parse nothing and change no epoll interest (reading
     * pauses only while a message waits unasked), so the next read does it. */
    if (c->in.len == 0 && !w->msg_ready && !w->parser.in_frame && !c->read_eof && c->out.len == 0
            && !c->in_process)
        return 0;
    return kick(s, c);
}

int cel_server_ws_send(cel_server *s, cel_conn *c, int opcode, const char *p, size_t n)
{
    int rc = cel_conn_ws_send(c, opcode, p, n);
    if (rc < 0 || c->in_process)
        return rc;
    return cel_server_flush(s, c);
}

int cel_server_ws_close(cel_server *s, cel_conn *c, int code, const char *reason, size_t len)
{
    int rc = cel_conn_ws_close(c, code, reason, len);
    if (rc < 0)
        return rc;
    cel_ws_conn *w = c->ws;
    /* the app is done reading: drop a waiting message, read until the peer's close */
    w->msg_ready = 0;
    cel_buf_consume(&w->msg, w->msg.len);
    w->want_msg = 0;
    w->ping_outstanding = 0;
    c->deadline_ms = cel_server_now_ms() + s->cfg.ws_close_timeout_ms;
    if (c->in_process)
        return 0;
    return cel__server_process(s, c);
}

size_t cel_server_ws_going_away(cel_server *s)
{
    size_t n = 0;
    cel__server_batch_begin(s);
    cel_conn *c = s->conns;
    while (c) {
        cel_conn *next = c->next;
        if (c->state == CEL_CONN_WS && !c->ws->close_sent && !c->in_process) {
            ws_fail(s, c, CEL_WS_CLOSE_RESTART, "");
            n++;
        } else if (c->state == CEL_CONN_ACTIVE && c->ws && !c->resp_started && !c->in_process) {
            /* a handshake the app has not answered yet: 500, as uvicorn */
            cel_conn_write_error(c, 500, "Internal Server Error", cel_server_date());
            cel_server_flush(s, c);
            n++;
        }
        /* next closed by the callbacks just run: restart the walk (those
         * already told are skipped by the conditions above) */
        c = next && next->dead ? s->conns : next;
    }
    cel__server_batch_end(s);
    return n;
}
