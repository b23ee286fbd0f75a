/* The ASGI WebSocket protocol on a Cycle (cy->ws), with uvicorn's
 * semantics (its websockets-sansio implementation) and error messages.
 *
 * Phases: HANDSHAKE (the app has the scope; connect, then accept / close /
 * denial) -> OPEN (websocket.accept sent: 101 written, frames both ways) or
 * DENIAL (websocket.http.response.start sent, body being collected) ->
 * CLOSED (the app sent websocket.close, or the 403/denial response went
 * out).  The frames themselves are the core's (server.c ws_process); this
 * file turns messages into ASGI events and back. */
#include "binding.h"

#include <string.h>
#include <strings.h>

#include "errors.h"

enum { WS_HANDSHAKE = 0, WS_OPEN = 1, WS_DENIAL = 2, WS_CLOSED = 3 };

#define WSST(cy) (&(cy)->server->st->ws)

#define INTERN(field, text)                                   \
    do {                                                      \
        ws->field = PyUnicode_InternFromString(text);         \
        if (!ws->field)                                       \
            return -1;                                        \
    } while (0)

int celeris_ws_state_init(PyObject *module, celeris_ws_state *ws)
{
    INTERN(s_websocket, "websocket");
    INTERN(s_websocket_connect, "websocket.connect");
    INTERN(s_websocket_accept, "websocket.accept");
    INTERN(s_websocket_receive, "websocket.receive");
    INTERN(s_websocket_send, "websocket.send");
    INTERN(s_websocket_close, "websocket.close");
    INTERN(s_websocket_disconnect, "websocket.disconnect");
    INTERN(s_ws_http_response_start, "websocket.http.response.start");
    INTERN(s_ws_http_response_body, "websocket.http.response.body");
    INTERN(s_text, "text");
    INTERN(s_bytes, "bytes");
    INTERN(s_code, "code");
    INTERN(s_reason, "reason");
    INTERN(s_subprotocol, "subprotocol");
    INTERN(s_subprotocols, "subprotocols");
    INTERN(s_extensions, "extensions");
    INTERN(s_v24, "2.4");
    INTERN(s_ws, "ws");
    INTERN(s_wss, "wss");
    INTERN(s_ext_http_response, "websocket.http.response");
    PyObject *type = PyUnicode_InternFromString("type");
    if (!type)
        return -1;
    ws->tmpl_text = Py_BuildValue("{OOOO}", type, ws->s_websocket_receive, ws->s_text, Py_None);
    ws->tmpl_bytes = Py_BuildValue("{OOOO}", type, ws->s_websocket_receive, ws->s_bytes, Py_None);
    Py_DECREF(type);
    if (!ws->tmpl_text || !ws->tmpl_bytes)
        return -1;
    ws->ClientDisconnected = PyErr_NewExceptionWithDoc(
        "celeris._celeris.ClientDisconnected",
        "send() on a WebSocket whose client has gone (as uvicorn's ClientDisconnected).",
        PyExc_OSError, NULL);
    if (!ws->ClientDisconnected)
        return -1;
    return PyModule_AddObjectRef(module, "ClientDisconnected", ws->ClientDisconnected);
}

void celeris_ws_state_clear(celeris_ws_state *ws)
{
    PyObject **all[] = {
        &ws->s_websocket, &ws->s_websocket_connect, &ws->s_websocket_accept,
        &ws->s_websocket_receive, &ws->s_websocket_send, &ws->s_websocket_close,
        &ws->s_websocket_disconnect, &ws->s_ws_http_response_start, &ws->s_ws_http_response_body,
        &ws->s_text, &ws->s_bytes, &ws->s_code, &ws->s_reason, &ws->s_subprotocol,
        &ws->s_subprotocols, &ws->s_extensions, &ws->s_v24, &ws->s_ws, &ws->s_wss,
        &ws->s_ext_http_response, &ws->tmpl_text, &ws->tmpl_bytes, &ws->ClientDisconnected,
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        Py_CLEAR(*all[i]);
}

/* ---- events to the app ---- */

/* {"type": "websocket.disconnect", "code": code[, "reason": reason]}; new reference. */
static PyObject *disconnect_new(CycleObject *cy, int code, const char *reason, Py_ssize_t rlen)
{
    celeris_ws_state *ws = WSST(cy);
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    PyObject *c = PyLong_FromLong(code);
    if (!c || PyDict_SetItem(d, cy->server->st->s_type, ws->s_websocket_disconnect) < 0
        || PyDict_SetItem(d, ws->s_code, c) < 0)
        goto error;
    Py_CLEAR(c);
    if (reason) {
        PyObject *r = PyUnicode_DecodeUTF8(reason, rlen, "replace");
        if (!r || PyDict_SetItem(d, ws->s_reason, r) < 0) {
            Py_XDECREF(r);
            goto error;
        }
        Py_DECREF(r);
    }
    return d;
error:
    Py_XDECREF(c);
    Py_DECREF(d);
    return NULL;
}

PyObject *celeris_ws_disconnect_msg(CycleObject *cy)
{
    if (cy->ws_disconnect)
        return PyDict_Copy(cy->ws_disconnect);
    /* the connection went away: 1005 once the handshake completed, else 1006 (uvicorn) */
    return disconnect_new(cy, cy->ws_phase == WS_OPEN ? CEL_WS_CLOSE_NO_STATUS : CEL_WS_CLOSE_ABNORMAL,
                          NULL, 0);
}

/* Record the disconnect the app will see (first one wins) and hand it to a
 * waiting receive(). */
static void set_disconnect(CycleObject *cy, PyObject *msg)
{
    if (!msg) {
        PyErr_WriteUnraisable((PyObject *)cy);
        return;
    }
    if (!cy->ws_disconnect)
        cy->ws_disconnect = Py_NewRef(msg);
    if (!cy->ws_msg)
        celeris_waiter_resolve(cy->ws_waiter, cy->ws_disconnect);
    Py_DECREF(msg);
}

void celeris_ws_on_close(CycleObject *cy, cel_conn *c)
{
    cy->disconnected = 1;
    cy->conn = NULL;
    if (!cy->ws_disconnect) {
        cel_ws_conn *w = c ? c->ws : NULL;
        if (w && w->close_code)
            set_disconnect(cy, disconnect_new(cy, w->close_code, w->close_reason,
                                              (Py_ssize_t)w->close_reason_len));
        else
            set_disconnect(cy, celeris_ws_disconnect_msg(cy));
    } else if (!cy->ws_msg) {
        celeris_waiter_resolve(cy->ws_waiter, cy->ws_disconnect);
    }
    celeris_cycle_resolve(cy, &cy->drain_future, Py_None);
}

/* A text message's str: ASCII payloads (the common case) copied straight
 * into a new compact ASCII str, others decoded as UTF-8 ("strict"; the core
 * has validated them).  New reference, NULL with an exception set. */
static PyObject *text_new(const char *p, size_t n)
{
    size_t i = 0;
    uint64_t hi = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        hi |= w;
    }
    for (; i < n; i++)
        hi |= (unsigned char)p[i];
    if (hi & 0x8080808080808080ull)
        return PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "strict");
    PyObject *s = PyUnicode_New((Py_ssize_t)n, 127);
    if (s)
        memcpy(PyUnicode_DATA(s), p, n);
    return s;
}

void celeris_ws_on_message(CycleObject *cy, int opcode, const char *p, size_t n)
{
    celeris_ws_state *ws = WSST(cy);
    PyObject *msg = PyDict_Copy(opcode == CEL_WS_TEXT ? ws->tmpl_text : ws->tmpl_bytes);
    PyObject *data = opcode == CEL_WS_TEXT ? text_new(p, n)
                                           : PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
    if (!msg || !data
        || PyDict_SetItem(msg, opcode == CEL_WS_TEXT ? ws->s_text : ws->s_bytes, data) < 0) {
        Py_XDECREF(msg);
        Py_XDECREF(data);
        PyErr_WriteUnraisable((PyObject *)cy);
        return;
    }
    Py_DECREF(data);
    /* a receive() cancelled meanwhile (asyncio.wait_for) did not take it:
     * the next receive() will */
    if (celeris_waiter_resolve(cy->ws_waiter, msg))
        Py_DECREF(msg);
    else
        Py_XSETREF(cy->ws_msg, msg);
}

PyObject *celeris_ws_receive(CycleObject *cy)
{
    celeris_state *st = cy->server->st;
    /* refused while a receive() waits; one cancelled (a timeout) is over, and
     * a message it held comes back to cy->ws_msg */
    if (cy->ws_waiter && celeris_waiter_arm(cy->ws_waiter) < 0)
        return NULL;
    if (!cy->ws_connect_sent) {
        cy->ws_connect_sent = 1;
        PyObject *m = Py_BuildValue("{OO}", st->s_type, st->ws.s_websocket_connect);
        if (!m)
            return NULL;
        PyObject *r = celeris_ready_new(st, m);
        Py_DECREF(m);
        return r;
    }
    if (!cy->ws_msg && !cy->ws_disconnect && cy->conn && cy->ws_phase == WS_OPEN) {
        /* may deliver a buffered message right now, through on_message */
        cel_server_ws_want_message(cy->server->srv, cy->conn);
    }
    if (cy->ws_msg) {
        PyObject *m = cy->ws_msg;
        cy->ws_msg = NULL;
        PyObject *r = celeris_ready_new(st, m);
        Py_DECREF(m);
        return r;
    }
    if (cy->ws_disconnect || !cy->conn) {
        PyObject *m = celeris_ws_disconnect_msg(cy);
        if (!m)
            return NULL;
        PyObject *r = celeris_ready_new(st, m);
        Py_DECREF(m);
        return r;
    }
    /* wait: on the Cycle's Waiter (waiter.c), made once and reused */
    if (!cy->ws_waiter && !(cy->ws_waiter = celeris_waiter_new(cy)))
        return NULL;
    celeris_waiter_wait(cy->ws_waiter);
    return Py_NewRef(cy->ws_waiter);
}

/* ---- send ---- */

/* msg[key], or None when missing; new reference.  An exact dict (what
 * Starlette sends) is read without raising and clearing a KeyError. */
static PyObject *item(PyObject *msg, PyObject *key)
{
    if (PyDict_CheckExact(msg)) {
        PyObject *v = PyDict_GetItemWithError(msg, key);
        if (v)
            return Py_NewRef(v);
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    PyObject *v = PyObject_GetItem(msg, key);
    if (!v && PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
        return Py_NewRef(Py_None);
    }
    return v;
}

static void ws_log(CycleObject *cy, PyObject *status)
{
    PyObject *log = cy->server->ws_log;
    if (!log || log == Py_None || !cy->ws_scope)
        return;
    PyObject *r = PyObject_CallFunctionObjArgs(log, cy->ws_scope, status, NULL);
    if (!r)
        PyErr_WriteUnraisable(log);
    Py_XDECREF(r);
}

/* Headers of an ASGI message as C slices (kept alive by *seq). */
static int headers_c(PyObject *headers, PyObject **seq, cel_header **hs, Py_ssize_t *n)
{
    *seq = PySequence_Fast(headers, "ASGI 'headers' must be an iterable of [name, value] pairs");
    if (!*seq)
        return -1;
    *n = PySequence_Fast_GET_SIZE(*seq);
    *hs = PyMem_Malloc(sizeof(cel_header) * (size_t)(*n ? *n : 1));
    if (!*hs) {
        Py_CLEAR(*seq);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < *n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(*seq, i);
        if (!(PyTuple_Check(pair) || PyList_Check(pair)) || PySequence_Size(pair) != 2) {
            PyErr_SetString(PyExc_TypeError, "ASGI header must be a [name, value] pair of bytes");
            goto error;
        }
        PyObject *name = PySequence_Fast_GET_ITEM(pair, 0);
        PyObject *value = PySequence_Fast_GET_ITEM(pair, 1);
        if (!PyBytes_Check(name) || !PyBytes_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "ASGI header name and value must be bytes");
            goto error;
        }
        (*hs)[i].name.p = PyBytes_AS_STRING(name);
        (*hs)[i].name.len = (size_t)PyBytes_GET_SIZE(name);
        (*hs)[i].value.p = PyBytes_AS_STRING(value);
        (*hs)[i].value.len = (size_t)PyBytes_GET_SIZE(value);
    }
    return 0;
error:
    PyMem_Free(*hs);
    *hs = NULL;
    Py_CLEAR(*seq);
    return -1;
}

static PyObject *send_accept(CycleObject *cy, PyObject *msg)
{
    celeris_state *st = cy->server->st;
    PyObject *sub = item(msg, st->ws.s_subprotocol);
    if (!sub)
        return NULL;
    PyObject *headers = item(msg, st->s_headers);
    if (!headers) {
        Py_DECREF(sub);
        return NULL;
    }
    const char *sp = NULL;
    Py_ssize_t splen = 0;
    if (sub != Py_None) {
        sp = PyUnicode_AsUTF8AndSize(sub, &splen);
        if (!sp)
            goto fail;
    }
    PyObject *seq = NULL;
    cel_header *hs = NULL;
    Py_ssize_t n = 0;
    if (headers != Py_None && headers_c(headers, &seq, &hs, &n) < 0)
        goto fail;
    ws_log(cy, Py_None);
    int rc = 0;
    if (cy->conn)
        rc = cel_server_ws_accept(cy->server->srv, cy->conn, sp, (size_t)splen, hs, (size_t)n);
    PyMem_Free(hs);
    Py_XDECREF(seq);
    if (rc == CEL_EHDRNAME || rc == CEL_EHDRVALUE) {
        PyErr_SetString(PyExc_RuntimeError, rc == CEL_EHDRNAME ? "Invalid HTTP header name."
                                                               : "Invalid HTTP header value.");
        goto fail;
    }
    if (rc == CEL_ENOMEM) {
        PyErr_NoMemory();
        goto fail;
    }
    cy->ws_phase = WS_OPEN;
    Py_DECREF(sub);
    Py_DECREF(headers);
    /* a receive() that waited since before the accept now waits for messages */
    if (celeris_waiter_waiting(cy->ws_waiter) && cy->conn)
        cel_server_ws_want_message(cy->server->srv, cy->conn);
    return Py_NewRef(st->ready_none);
fail:
    Py_DECREF(sub);
    Py_DECREF(headers);
    return NULL;
}

/* Write the denial (or the 403 of a close before accept): the app's
 * headers plus content-type / content-length defaults (as uvicorn), then
 * the connection closes and the app sees websocket.disconnect 1006. */
static PyObject *respond(CycleObject *cy, int status, PyObject *headers, const char *body, size_t len)
{
    celeris_state *st = cy->server->st;
    PyObject *list = headers && headers != Py_None ? PySequence_List(headers) : PyList_New(0);
    if (!list)
        return NULL;
    int has_ct = 0, has_cl = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        PyObject *pair = PyList_GET_ITEM(list, i);
        PyObject *name = PySequence_Size(pair) == 2 ? PySequence_GetItem(pair, 0) : NULL;
        if (!name) {
            PyErr_Clear();
            continue;
        }
        if (PyBytes_Check(name)) {
            if (PyBytes_GET_SIZE(name) == 12 && strncasecmp(PyBytes_AS_STRING(name), "content-type", 12) == 0)
                has_ct = 1;
            if (PyBytes_GET_SIZE(name) == 14 && strncasecmp(PyBytes_AS_STRING(name), "content-length", 14) == 0)
                has_cl = 1;
        }
        Py_DECREF(name);
    }
    PyObject *extra = NULL;
    if (!has_cl) {
        char num[32];
        int k = snprintf(num, sizeof num, "%zu", len);
        extra = Py_BuildValue("(yy#)", "content-length", num, (Py_ssize_t)k);
        if (!extra || PyList_Append(list, extra) < 0)
            goto error;
        Py_CLEAR(extra);
    }
    if (!has_ct) {
        extra = Py_BuildValue("(yy)", "content-type", "text/plain; charset=utf-8");
        if (!extra || PyList_Append(list, extra) < 0)
            goto error;
        Py_CLEAR(extra);
    }
    PyObject *code = PyLong_FromLong(status);
    if (!code)
        goto error;
    ws_log(cy, code);
    Py_DECREF(code);
    cy->ws_phase = WS_CLOSED;
    if (celeris_cycle_respond(cy, status, NULL, 0, list, body, len) < 0)
        goto error;
    Py_DECREF(list);
    set_disconnect(cy, disconnect_new(cy, CEL_WS_CLOSE_ABNORMAL, NULL, 0));
    return Py_NewRef(st->ready_none);
error:
    Py_XDECREF(extra);
    Py_DECREF(list);
    return NULL;
}

static PyObject *send_denial_start(CycleObject *cy, PyObject *msg)
{
    celeris_state *st = cy->server->st;
    PyObject *status = PyObject_GetItem(msg, st->s_status);
    if (!status)
        return NULL;
    long code = PyLong_AsLong(status);
    Py_DECREF(status);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    if (code < 100 || code >= 600) {
        PyErr_Format(PyExc_RuntimeError, "Invalid HTTP status code '%ld' in response.", code);
        return NULL;
    }
    PyObject *headers = item(msg, st->s_headers);
    if (!headers)
        return NULL;
    PyObject *body = PyByteArray_FromStringAndSize(NULL, 0);
    if (!body) {
        Py_DECREF(headers);
        return NULL;
    }
    Py_XSETREF(cy->ws_denial_headers, headers);
    Py_XSETREF(cy->ws_denial_body, body);
    cy->ws_denial_status = (int)code;
    cy->ws_phase = WS_DENIAL;
    return Py_NewRef(st->ready_none);
}

static PyObject *send_denial_body(CycleObject *cy, PyObject *msg)
{
    celeris_state *st = cy->server->st;
    PyObject *body = item(msg, st->s_body);
    if (!body)
        return NULL;
    if (body != Py_None) {
        PyObject *r = PyByteArray_Concat(cy->ws_denial_body, body);
        Py_DECREF(body);
        if (!r)
            return NULL;
        Py_SETREF(cy->ws_denial_body, r);
    } else {
        Py_DECREF(body);
    }
    PyObject *more = item(msg, st->s_more_body);
    if (!more)
        return NULL;
    int m = PyObject_IsTrue(more);
    Py_DECREF(more);
    if (m < 0)
        return NULL;
    if (m)
        return Py_NewRef(st->ready_none);
    return respond(cy, cy->ws_denial_status, cy->ws_denial_headers,
                   PyByteArray_AS_STRING(cy->ws_denial_body),
                   (size_t)PyByteArray_GET_SIZE(cy->ws_denial_body));
}

static PyObject *client_disconnected(CycleObject *cy)
{
    PyErr_SetNone(WSST(cy)->ClientDisconnected);
    return NULL;
}

static PyObject *send_data(CycleObject *cy, PyObject *msg)
{
    celeris_state *st = cy->server->st;
    PyObject *data;
    int opcode = CEL_WS_BINARY;
    PyObject *text;
    if (PyDict_CheckExact(msg) && PyDict_GET_SIZE(msg) == 2
            && (text = PyDict_GetItemWithError(msg, st->ws.s_text)) && text != Py_None) {
        /* {"type": "websocket.send", "text": str} (send_text's message): no "bytes" key */
        data = Py_NewRef(text);
        opcode = CEL_WS_TEXT;
    } else if (PyErr_Occurred()) {
        return NULL;
    } else if (!(data = item(msg, st->ws.s_bytes))) {
        return NULL;
    }
    if (opcode == CEL_WS_BINARY && data == Py_None) {
        Py_DECREF(data);
        data = item(msg, st->ws.s_text);
        if (!data)
            return NULL;
        opcode = CEL_WS_TEXT;
    }
    const char *p;
    Py_ssize_t n;
    Py_buffer view = {0};
    int have_view = 0;
    if (opcode == CEL_WS_TEXT) {
        if (!PyUnicode_Check(data)) {
            PyErr_SetString(PyExc_TypeError, "websocket.send 'text' must be a str");
            Py_DECREF(data);
            return NULL;
        }
        p = PyUnicode_AsUTF8AndSize(data, &n);
        if (!p) {
            Py_DECREF(data);
            return NULL;
        }
    } else {
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
            Py_DECREF(data);
            return NULL;
        }
        have_view = 1;
        p = view.buf;
        n = view.len;
    }
    cel_conn *c = cy->conn;
    int rc = cel_server_ws_send(cy->server->srv, c, opcode, p, (size_t)n);
    if (have_view)
        PyBuffer_Release(&view);
    Py_DECREF(data);
    if (rc == CEL_ENOMEM)
        return PyErr_NoMemory();
    if (rc < 0 || !cy->conn)
        return client_disconnected(cy);
    if (c->out.len >= cy->server->cfg.write_high_water) {
        PyObject *fut = PyObject_CallNoArgs(cy->server->create_future);
        if (!fut)
            return NULL;
        Py_XSETREF(cy->drain_future, Py_NewRef(fut));
        c->want_drain = 1;
        return fut;
    }
    return Py_NewRef(st->ready_none);
}

/* websocket.close after accept: `code` (None: 1000) and `reason` (a str;
 * None: empty) go out as the close frame.  New reference to the ready
 * awaitable, or NULL with TypeError (a reason that is not a str) or
 * ValueError (an invalid code) set. */
static PyObject *send_close(CycleObject *cy, PyObject *msg)
{
    celeris_state *st = cy->server->st;
    PyObject *code_obj = item(msg, st->ws.s_code);
    if (!code_obj)
        return NULL;
    long code = code_obj == Py_None ? 1000 : PyLong_AsLong(code_obj);
    Py_DECREF(code_obj);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    PyObject *reason = item(msg, st->ws.s_reason);
    if (!reason)
        return NULL;
    const char *rp = "";
    Py_ssize_t rn = 0;
    if (reason != Py_None) {
        if (!PyUnicode_Check(reason)) {
            /* FastAPI's validation handler passes the error list; uvicorn's
             * protocols fail on it too (reason.encode()). */
            PyErr_Format(PyExc_TypeError, "websocket.close 'reason' must be a str, not %.100s",
                         Py_TYPE(reason)->tp_name);
            Py_DECREF(reason);
            return NULL;
        }
        rp = PyUnicode_AsUTF8AndSize(reason, &rn);
        if (!rp) {
            Py_DECREF(reason);
            return NULL;
        }
    }
    if (code < 1000 || code > 4999 || !cel_ws_close_code_valid((int)code)) {
        Py_DECREF(reason);
        PyErr_Format(PyExc_ValueError, "invalid close code %ld", code);
        return NULL;
    }
    cy->ws_phase = WS_CLOSED;
    Py_CLEAR(cy->ws_msg);
    PyObject *d = disconnect_new(cy, (int)code, rp, rn);
    int rc = cel_server_ws_close(cy->server->srv, cy->conn, (int)code, rp, (size_t)rn);
    Py_DECREF(reason);
    set_disconnect(cy, d);
    if (rc == CEL_ENOMEM)
        return PyErr_NoMemory();
    return Py_NewRef(st->ready_none);
}

/* `s` is interned; the literals apps write ("websocket.send") are not (a code
 * constant is interned only when it looks like an identifier). */
static int type_is(PyObject *type, PyObject *s)
{
    return type == s || (PyUnicode_Check(type) && celeris_str_equal(type, s));
}

PyObject *celeris_ws_send(CycleObject *cy, PyObject *msg)
{
    celeris_state *st = cy->server->st;
    celeris_ws_state *ws = &st->ws;
    if (cy->disconnected || !cy->conn)
        return client_disconnected(cy);
    PyObject *type;
    if (PyDict_CheckExact(msg)) {
        type = PyDict_GetItemWithError(msg, st->s_type);
        if (!type) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, st->s_type);
            return NULL;
        }
        Py_INCREF(type);
    } else if (!(type = PyObject_GetItem(msg, st->s_type))) {
        return NULL;
    }
    PyObject *r = NULL;
    switch (cy->ws_phase) {
    case WS_HANDSHAKE:
        if (type_is(type, ws->s_websocket_accept)) {
            r = send_accept(cy, msg);
        } else if (type_is(type, ws->s_websocket_close)) {
            r = respond(cy, 403, NULL, "", 0);
        } else if (type_is(type, ws->s_ws_http_response_start)) {
            r = send_denial_start(cy, msg);
        } else {
            PyErr_Format(PyExc_RuntimeError,
                         "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                         "'websocket.http.response.start' but got '%S'.", type);
        }
        break;
    case WS_OPEN:
        if (type_is(type, ws->s_websocket_send))
            r = send_data(cy, msg);
        else if (type_is(type, ws->s_websocket_close))
            r = send_close(cy, msg);
        else
            PyErr_Format(PyExc_RuntimeError,
                         "Expected ASGI message 'websocket.send' or 'websocket.close', but got '%S'.",
                         type);
        break;
    case WS_DENIAL:
        if (type_is(type, ws->s_ws_http_response_body))
            r = send_denial_body(cy, msg);
        else
            PyErr_Format(PyExc_RuntimeError,
                         "Expected ASGI message 'websocket.http.response.body' but got '%S'.", type);
        break;
    default:
        PyErr_Format(PyExc_RuntimeError,
                     "Unexpected ASGI message '%S', after sending 'websocket.close'.", type);
        break;
    }
    Py_DECREF(type);
    return r;
}
