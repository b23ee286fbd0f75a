/* One HTTP request/response exchange as seen by an ASGI app: the `receive`
 * and `send` callables, with uvicorn's semantics and error messages.
 *
 * A Cycle is attached to its cel_conn (conn->user == cycle, cycle->conn ==
 * conn) from dispatch until the response completes or the connection
 * closes; after that every call answers as for a disconnected client. */
#include "binding.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errors.h"

static celeris_state *ST(CycleObject *cy) { return cy->server->st; }

static void detach(CycleObject *cy)
{
    if (cy->conn && cy->conn->user == cy)
        cy->conn->user = NULL;
    cy->conn = NULL;
}

static PyObject *disconnect_msg(celeris_state *st)
{
    PyObject *d = PyDict_New();
    if (d && PyDict_SetItem(d, st->s_type, st->s_http_disconnect) < 0)
        Py_CLEAR(d);
    return d;
}

/* Resolve *slot (a future) with value unless it is already done; clears
 * slot.  1 if the future took the value (binding.h). */
int celeris_cycle_resolve(CycleObject *cy, PyObject **slot, PyObject *value)
{
    PyObject *fut = *slot;
    if (!fut)
        return 0;

    *slot = NULL;
    /* set_result first: a future cancelled meanwhile (the app's task was
     * cancelled) refuses it, which is the only case done() would have caught */
    int took = 1;
    PyObject *r = PyObject_CallMethodOneArg(fut, ST(cy)->s_set_result, value ? value : Py_None);
    if (!r) {
        PyErr_Clear();
        took = 0;
        PyObject *done = PyObject_CallMethodNoArgs(fut, ST(cy)->s_done);
        if (done == Py_False) {     /* a real failure: raise it again, for the report */
            r = PyObject_CallMethodOneArg(fut, ST(cy)->s_set_result, value ? value : Py_None);
            took = r != NULL;
        }
        if (!r && done != Py_True)
            PyErr_WriteUnraisable(fut);
        Py_XDECREF(done);
    }
    Py_XDECREF(r);
    Py_DECREF(fut);
    return took;
}

/* Send what is already buffered, then close (as asyncio's transport.close()). */
static void close_after_output(cel_conn *c)
{
    c->keep_alive = 0;
    c->state = CEL_CONN_CLOSING;
}

static void resolve_disconnect(CycleObject *cy)
{
    if (!cy->recv_future && !cy->ws_waiter && !cy->drain_future)
        return;                 /* nothing waits (every response of a plain request) */
    if (cy->recv_future || celeris_waiter_waiting(cy->ws_waiter)) {
        PyObject *msg = cy->ws ? celeris_ws_disconnect_msg(cy) : disconnect_msg(ST(cy));
        if (!msg) {
            PyErr_WriteUnraisable((PyObject *)cy);
            return;
        }
        if (cy->ws)
            celeris_waiter_resolve(cy->ws_waiter, msg);
        else
            celeris_cycle_resolve(cy, &cy->recv_future, msg);
        Py_DECREF(msg);
    }
    celeris_cycle_resolve(cy, &cy->drain_future, Py_None);
}

/* Close the connection because of a protocol failure on the body; an app
 * still reading sees http.disconnect. */
static void fail_body(CycleObject *cy, int err)
{
    cel_conn *c = cy->conn;
    cel_server *srv = cy->server->srv;
    cy->disconnected = 1;
    detach(cy);
    if (cy->server->error_log != Py_None) {
        PyObject *r = PyObject_CallFunction(cy->server->error_log, "is", cel_err_http_status(err),
                                            cel_strerror(err));
        if (!r)
            PyErr_WriteUnraisable(cy->server->error_log);
        Py_XDECREF(r);
    }
    if (!c->resp_started) {
        /* 400 for bad framing, 413 for an oversize chunked body */
        cel_conn_write_error(c, cel_err_http_status(err),
                             err == CEL_EBODYTOOLARGE ? "Request Entity Too Large"
                                                      : "Invalid HTTP request received.",
                             cel_server_date());
        if (!c->in_process)
            cel_server_flush(srv, c);
    } else {
        cel_server_close(srv, c);
    }
}

/* Collect the body bytes that are buffered now.  Returns a new
 * {"type": "http.request", ...} dict, Py_None (borrowed, meaning "nothing
 * yet, wait"), or NULL with an exception / after failing the connection
 * (then *failed is set and no exception). */
static PyObject *take_body(CycleObject *cy, int *failed)
{
    celeris_state *st = ST(cy);
    cel_conn *c = cy->conn;
    const char *p;
    size_t n;
    PyObject *body = NULL;
    int rc;
    *failed = 0;
    /* The slices stay valid until the input buffer is appended to, which
     * cannot happen here: collect them, then make one bytes object.  (Growing
     * a bytes object with _PyBytes_Resize is wrong here: a one-byte bytes is
     * CPython's shared singleton, and resizing it fails -- the body bytes
     * already consumed were lost.) */
    struct { const char *p; size_t n; } local[16], *sl = local;
    size_t nsl = 0, cap = 16, total = 0;
    while ((rc = cel_conn_body_read(c, &p, &n)) == 1) {
        if (nsl == cap) {
            size_t ncap = cap * 2;
            void *grown = sl == local ? PyMem_Malloc(ncap * sizeof *sl)
                                      : PyMem_Realloc(sl, ncap * sizeof *sl);
            if (!grown) {
                if (sl != local)
                    PyMem_Free(sl);
                PyErr_NoMemory();
                return NULL;
            }
            if (sl == local)
                memcpy(grown, local, sizeof local);
            sl = grown;
            cap = ncap;
        }
        sl[nsl].p = p;
        sl[nsl].n = n;
        nsl++;
        total += n;
    }
    if (nsl) {
        body = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
        if (body) {
            char *dst = PyBytes_AS_STRING(body);
            for (size_t i = 0; i < nsl; i++) {
                memcpy(dst, sl[i].p, sl[i].n);
                dst += sl[i].n;
            }
        }
    }
    if (sl != local)
        PyMem_Free(sl);
    if (nsl && !body)
        return NULL;
    if (rc == CEL_EAGAIN && !body)
        return Py_None;
    if (rc < 0 && rc != CEL_EAGAIN) {
        Py_XDECREF(body);
        if (rc == CEL_ECLOSED) {
            cy->disconnected = 1;
            return disconnect_msg(st);
        }
        fail_body(cy, rc);
        *failed = 1;
        return NULL;
    }
    int more = rc != 0;
    if (!more)
        cy->body_complete = 1;
    PyObject *msg = PyDict_New();
    if (!msg) {
        Py_XDECREF(body);
        return NULL;
    }
    if (PyDict_SetItem(msg, st->s_type, st->s_http_request) < 0
        || PyDict_SetItem(msg, st->s_body, body ? body : st->empty_bytes) < 0
        || PyDict_SetItem(msg, st->s_more_body, more ? Py_True : Py_False) < 0) {
        Py_XDECREF(body);
        Py_DECREF(msg);
        return NULL;
    }
    Py_XDECREF(body);
    return msg;
}

static PyObject *new_future(CycleObject *cy)
{
    return PyObject_CallNoArgs(cy->server->create_future);
}

static PyObject *cycle_receive(PyObject *self, PyObject *Py_UNUSED(a))
{
    CycleObject *cy = (CycleObject *)self;
    celeris_state *st = ST(cy);
    if (cy->ws)
        return celeris_ws_receive(cy);
    cy->receive_called = 1;
    if (cy->disconnected || cy->response_complete || !cy->conn) {
        PyObject *msg = disconnect_msg(st);
        if (!msg)
            return NULL;
        PyObject *r = celeris_ready_new(st, msg);
        Py_DECREF(msg);
        return r;
    }
    if (cy->recv_future) {
        PyErr_SetString(PyExc_RuntimeError, "receive() called while another receive() is pending");
        return NULL;
    }
    if (!cy->body_complete) {
        int failed;
        PyObject *msg = take_body(cy, &failed);
        if (failed) {
            msg = disconnect_msg(st);
            if (!msg)
                return NULL;
        } else if (!msg) {
            return NULL;
        }
        if (msg != Py_None) {
            PyObject *r = celeris_ready_new(st, msg);
            Py_DECREF(msg);
            return r;
        }
        PyObject *fut = new_future(cy);
        if (!fut)
            return NULL;
        cy->recv_future = Py_NewRef(fut);
        cy->recv_peek = 0;
        if (cel_server_want_body(cy->server->srv, cy->conn) == CEL_ECLOSED) {
            /* on_close already resolved the future with http.disconnect */
        }
        return fut;
    }
    /* Body fully delivered: wait until the response completes or the client
     * disconnects, then report http.disconnect (as uvicorn). */
    PyObject *fut = new_future(cy);
    if (!fut)
        return NULL;
    cy->recv_future = Py_NewRef(fut);
    cy->recv_peek = 0;
    return fut;
}

int celeris_cycle_body_feed(CycleObject *cy, celeris_body_fn fn, void *ud)
{
    if (cy->ws || cy->disconnected || cy->response_complete || !cy->conn || cy->recv_future
        || cy->body_complete)
        return 2;
    cel_conn *c = cy->conn;
    const char *p;
    size_t n;
    int rc;
    while ((rc = cel_conn_body_read(c, &p, &n)) == 1) {
        if (fn(ud, p, n) < 0)
            return -1;
        if (cy->conn != c)      /* not expected (fn is C only), but then stop here */
            return 2;
    }
    if (rc == 0) {
        cy->body_complete = 1;
        return 0;
    }
    if (rc == CEL_EAGAIN)
        return 1;
    if (rc == CEL_ECLOSED) {
        cy->disconnected = 1;
        return 2;
    }
    fail_body(cy, rc);      /* 400/413 as take_body answers it; receive() then says disconnect */
    return 2;
}

/* body_wait() -> awaitable: resolves (with None, or with http.disconnect when
 * the client left) once more request-body bytes have arrived; the bytes stay
 * buffered for celeris_cycle_body_feed.  Resolves at once when there is
 * nothing to wait for on this path (see celeris_cycle_body_feed's 2). */
static PyObject *cycle_body_wait(PyObject *self, PyObject *Py_UNUSED(a))
{
    CycleObject *cy = (CycleObject *)self;
    celeris_state *st = ST(cy);
    if (cy->ws || cy->disconnected || cy->response_complete || !cy->conn || cy->body_complete)
        return celeris_ready_new(st, Py_None);
    if (cy->recv_future) {
        PyErr_SetString(PyExc_RuntimeError, "receive() called while another receive() is pending");
        return NULL;
    }
    PyObject *fut = new_future(cy);
    if (!fut)
        return NULL;
    cy->recv_future = Py_NewRef(fut);
    cy->recv_peek = 1;
    /* (CEL_ECLOSED: on_close already resolved the future with http.disconnect) */
    (void)cel_server_want_body(cy->server->srv, cy->conn);
    return fut;
}

PyObject *celeris_cycle_receive(CycleObject *cy)
{
    return cycle_receive((PyObject *)cy, NULL);
}

void celeris_cycle_on_body(CycleObject *cy)
{
    if (!cy->recv_future || !cy->conn)
        return;
    if (cy->recv_peek) {
        /* body_wait(): the bytes stay buffered for celeris_cycle_body_feed */
        cy->recv_peek = 0;
        cy->conn->want_body = 0;
        celeris_cycle_resolve(cy, &cy->recv_future, Py_None);
        return;
    }
    int failed;
    PyObject *msg = take_body(cy, &failed);
    if (failed)
        return;             /* fail_body detached us; on_close resolves the future */
    if (!msg) {
        PyErr_WriteUnraisable((PyObject *)cy);
        return;
    }
    if (msg == Py_None)
        return;
    if (cy->conn)
        cy->conn->want_body = 0;
    celeris_cycle_resolve(cy, &cy->recv_future, msg);
    Py_DECREF(msg);
}

void celeris_cycle_on_drain(CycleObject *cy)
{
    celeris_cycle_resolve(cy, &cy->drain_future, Py_None);
}

void celeris_cycle_on_close(CycleObject *cy)
{
    if (cy->ws) {
        celeris_ws_on_close(cy, cy->conn);
        return;
    }
    cy->disconnected = 1;
    cy->conn = NULL;
    resolve_disconnect(cy);
}

/* ---- send ---- */

static PyObject *get_item(PyObject *msg, PyObject *key, PyObject *dflt)
{
    PyObject *v;
    if (PyDict_CheckExact(msg)) {
        v = PyDict_GetItemWithError(msg, key);
        if (v)
            return Py_NewRef(v);
        if (PyErr_Occurred())
            return NULL;
        if (dflt)
            return Py_NewRef(dflt);
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    v = PyObject_GetItem(msg, key);
    if (!v && dflt && PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
        return Py_NewRef(dflt);
    }
    return v;
}

static int access_log(CycleObject *cy, PyObject *status)
{
    ServerObject *srv = cy->server;
    if (srv->access_log == Py_None || !cy->scope)
        return 0;
    PyObject *r = PyObject_CallFunctionObjArgs(srv->access_log, cy->scope, status, NULL);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* Write the response head from C headers.  0, or -1 with an exception
 * (uvicorn's messages for invalid headers). */
/* The access log line for a response starting with `status` (status_obj:
 * the same as an int object, or NULL to make one), when the server logs.
 * 0, or -1 with an exception. */
static int log_start(CycleObject *cy, int status, PyObject *status_obj)
{
    if (cy->server->access_log != Py_None && cy->scope && !cy->ws) {
        PyObject *owned = NULL;
        if (!status_obj)
            status_obj = owned = PyLong_FromLong(status);
        int rc = status_obj ? access_log(cy, status_obj) : -1;
        Py_XDECREF(owned);
        if (rc < 0)
            return -1;
    }
    return 0;
}

static int start_c(CycleObject *cy, int status, PyObject *status_obj,
                   const cel_header *hs, size_t n)
{
    if (log_start(cy, status, status_obj) < 0)
        return -1;
    int rc = cel_conn_response_start(cy->conn, status, hs, n, cel_server_date());
    if (rc == CEL_EHDRNAME) {
        PyErr_SetString(PyExc_RuntimeError, "Invalid HTTP header name.");
        return -1;
    }
    if (rc == CEL_EHDRVALUE) {
        PyErr_SetString(PyExc_RuntimeError, "Invalid HTTP header value.");
        return -1;
    }
    if (rc == CEL_EBADCL) {
        PyErr_SetString(PyExc_ValueError, "Invalid Content-Length header value.");
        return -1;
    }
    if (rc == CEL_ENOMEM) {
        PyErr_NoMemory();
        return -1;
    }
    cy->response_started = 1;
    return 0;
}

/* Write the head from a Python iterable of (bytes, bytes) pairs. */
static int start_py(CycleObject *cy, int status, PyObject *status_obj, PyObject *headers)
{
    PyObject *seq = PySequence_Fast(headers, "ASGI 'headers' must be an iterable of [name, value] pairs");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    cel_header small[32];
    cel_header *hs = n <= 32 ? small : PyMem_Malloc(sizeof(cel_header) * (size_t)n);
    int result = -1;
    if (!hs) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *name, *value;
        if (PyTuple_CheckExact(pair) && PyTuple_GET_SIZE(pair) == 2) {
            name = PyTuple_GET_ITEM(pair, 0);
            value = PyTuple_GET_ITEM(pair, 1);
        } else if (PyList_CheckExact(pair) && PyList_GET_SIZE(pair) == 2) {
            name = PyList_GET_ITEM(pair, 0);
            value = PyList_GET_ITEM(pair, 1);
        } else {
            PyErr_SetString(PyExc_TypeError, "ASGI header must be a [name, value] pair of bytes");
            goto done;
        }
        /* Both are kept alive by `seq` (or the tuple/list it holds). */
        if (!PyBytes_Check(name) || !PyBytes_Check(value)) {
            PyErr_SetString(PyExc_TypeError, "ASGI header name and value must be bytes");
            goto done;
        }
        hs[i].name.p = PyBytes_AS_STRING(name);
        hs[i].name.len = (size_t)PyBytes_GET_SIZE(name);
        hs[i].value.p = PyBytes_AS_STRING(value);
        hs[i].value.len = (size_t)PyBytes_GET_SIZE(value);
    }
    result = start_c(cy, status, status_obj, hs, (size_t)n);
done:
    if (hs && hs != small)
        PyMem_Free(hs);
    Py_DECREF(seq);
    return result;
}

static PyObject *send_start(CycleObject *cy, PyObject *msg)
{
    celeris_state *st = ST(cy);
    PyObject *status_obj = get_item(msg, st->s_status, NULL);
    if (!status_obj)
        return NULL;
    int status = (int)PyLong_AsLong(status_obj);
    if (status == -1 && PyErr_Occurred()) {
        Py_DECREF(status_obj);
        return NULL;
    }
    PyObject *headers = get_item(msg, st->s_headers, st->empty_bytes);
    if (!headers) {
        Py_DECREF(status_obj);
        return NULL;
    }
    int rc = start_py(cy, status, status_obj, headers);
    Py_DECREF(headers);
    Py_DECREF(status_obj);
    return rc < 0 ? NULL : Py_NewRef(st->ready_none);
}

/* The response on c is complete: detach and hand the connection back to
 * the server; a receive() waiting for the end of the exchange returns now. */
static void complete(CycleObject *cy, cel_conn *c)
{
    cy->response_complete = 1;
    detach(cy);
    cy->server->requests++;
    cel_server_response_done(cy->server->srv, c);
    resolve_disconnect(cy);
}

/* Append body bytes; more = 0 completes the response (detaches the cycle
 * and hands the connection back to the server).  Returns ready_none, a
 * backpressure future, or NULL with an exception. */
static PyObject *body_c(CycleObject *cy, const char *p, size_t n, int more)
{
    celeris_state *st = ST(cy);
    cel_conn *c = cy->conn;
    int rc = cel_conn_response_body(c, p, n, more);
    if (rc == CEL_ERESPLONG) {
        PyErr_SetString(PyExc_RuntimeError, "Response content longer than Content-Length");
        return NULL;
    }
    if (rc == CEL_ENOMEM)
        return PyErr_NoMemory();
    cel_server *srv = cy->server->srv;
    if (!more) {
        complete(cy, c);
        if (rc == CEL_ERESPSHORT) {
            PyErr_SetString(PyExc_RuntimeError, "Response content shorter than Content-Length");
            return NULL;
        }
        return Py_NewRef(st->ready_none);
    }
    /* Inside the dispatcher (an eagerly started Task's first step) the core
     * flushes when the dispatcher returns; past the high-water mark the app
     * still waits for the drain, so a streaming app never buffers it all. */
    if (c->in_process && c->out.len < cy->server->cfg.write_high_water)
        return Py_NewRef(st->ready_none);
    if (!c->in_process && cel_server_flush(srv, c) == CEL_ECLOSED)
        return Py_NewRef(st->ready_none);
    if (c->out.len >= cy->server->cfg.write_high_water) {
        PyObject *fut = new_future(cy);
        if (!fut)
            return NULL;
        Py_XSETREF(cy->drain_future, Py_NewRef(fut));
        c->want_drain = 1;
        return fut;
    }
    return Py_NewRef(st->ready_none);
}

static PyObject *send_body(CycleObject *cy, PyObject *msg)
{
    celeris_state *st = ST(cy);
    PyObject *body = get_item(msg, st->s_body, st->empty_bytes);
    if (!body)
        return NULL;
    PyObject *more_obj = get_item(msg, st->s_more_body, Py_False);
    if (!more_obj) {
        Py_DECREF(body);
        return NULL;
    }
    int more = PyObject_IsTrue(more_obj);
    Py_DECREF(more_obj);
    if (more < 0) {
        Py_DECREF(body);
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(body, &view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(body);
        return NULL;
    }
    PyObject *r = body_c(cy, view.buf, (size_t)view.len, more);
    PyBuffer_Release(&view);
    Py_DECREF(body);
    return r;
}

/* ASGI http.response.pathsend: finish the response with the file at
 * msg["path"], sent by the core (sendfile) after the head.  The file is
 * opened here (O_RDONLY|O_CLOEXEC|O_NONBLOCK) and handed to the core, which closes it
 * when it is sent or the connection goes; send() completes at once, like a
 * final http.response.body whose bytes are still being written.  A file that
 * cannot be opened (or is not a regular file) raises OSError: the app fails
 * after its head went out, so the connection is closed, as when Starlette's
 * own read of a vanished file fails.  Returns ready_none or NULL with an
 * exception. */
static PyObject *send_pathsend(CycleObject *cy, PyObject *msg)
{
    celeris_state *st = ST(cy);
    PyObject *path = get_item(msg, st->s_path, NULL);
    if (!path)
        return NULL;
    PyObject *fspath = NULL;
    if (!PyUnicode_FSConverter(path, &fspath)) {
        Py_DECREF(path);
        return NULL;
    }
    int fd;
    Py_BEGIN_ALLOW_THREADS
    /* O_NONBLOCK: a FIFO must not block the loop here (it is refused below) */
    fd = open(PyBytes_AS_STRING(fspath), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    Py_END_ALLOW_THREADS
    Py_DECREF(fspath);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        if (fd >= 0)
            close(fd);
        Py_DECREF(path);
        return NULL;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        PyErr_Format(PyExc_OSError, "File at path %R is not a regular file.", path);
        Py_DECREF(path);
        return NULL;
    }
    Py_DECREF(path);
    cel_conn *c = cy->conn;
    int rc = cel_conn_response_file(c, fd, 0, (uint64_t)sb.st_size);   /* takes fd */
    if (rc == CEL_ENOMEM)
        return PyErr_NoMemory();
    if (rc == CEL_ESTATE) {
        PyErr_SetString(PyExc_RuntimeError, "http.response.pathsend: the response is not open");
        return NULL;
    }
    cy->response_complete = 1;
    detach(cy);
    cy->server->requests++;
    cel_server_response_done(cy->server->srv, c);
    resolve_disconnect(cy);
    if (rc == CEL_ERESPSHORT) {
        PyErr_SetString(PyExc_RuntimeError, "Response content shorter than Content-Length");
        return NULL;
    }
    return Py_NewRef(st->ready_none);
}

int celeris_cycle_respond(CycleObject *cy, int status, const cel_header *hs, size_t n,
                          PyObject *py_headers, const char *body, size_t len)
{
    if (cy->disconnected || !cy->conn)
        return 0;
    if (cy->response_started) {
        PyErr_SetString(PyExc_RuntimeError, "response already started");
        return -1;
    }
    int rc = py_headers ? start_py(cy, status, NULL, py_headers) : start_c(cy, status, NULL, hs, n);
    if (rc < 0)
        return -1;
    PyObject *r = body_c(cy, body, len, 0);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

int celeris_cycle_respond_fixed(CycleObject *cy, int status, const char *ctype, size_t ctype_len,
                                const char *body, size_t len)
{
    if (cy->disconnected || !cy->conn)
        return 0;
    if (cy->response_started) {
        PyErr_SetString(PyExc_RuntimeError, "response already started");
        return -1;
    }
    if (cy->server->access_log != Py_None && log_start(cy, status, NULL) < 0)
        return -1;
    /* head and body at once (start + body_c's checks cannot fail here) */
    cel_conn *c = cy->conn;
    if (cel_conn_respond_fixed(c, status, ctype, ctype_len, body, len, cel_server_date()) < 0) {
        PyErr_NoMemory();           /* CEL_ENOMEM: the only failure once not started */
        return -1;
    }
    cy->response_started = 1;
    complete(cy, c);
    return 0;
}

static PyObject *cycle_send(PyObject *self, PyObject *msg)
{
    CycleObject *cy = (CycleObject *)self;
    celeris_state *st = ST(cy);
    if (cy->ws)
        return celeris_ws_send(cy, msg);
    if (cy->disconnected)
        return Py_NewRef(st->ready_none);
    PyObject *type = get_item(msg, st->s_type, NULL);
    if (!type)
        return NULL;
    PyObject *r = NULL;
    if (cy->server->debug_sink && PyUnicode_Check(type)
        && PyUnicode_CompareWithASCIIString(type, "http.response.debug") == 0) {
        /* The TestClient's "http.response.debug" extension (template, context). */
        PyObject *key = PyUnicode_FromString("info");
        PyObject *info = key ? get_item(msg, key, Py_None) : NULL;
        Py_XDECREF(key);
        PyObject *res = info ? PyObject_CallOneArg(cy->server->debug_sink, info) : NULL;
        Py_XDECREF(info);
        Py_DECREF(type);
        if (!res)
            return NULL;
        Py_DECREF(res);
        return Py_NewRef(st->ready_none);
    }
    if (!cy->response_started) {
        if (PyUnicode_Check(type) && PyUnicode_Compare(type, st->s_http_response_start) == 0)
            r = send_start(cy, msg);
        else
            PyErr_Format(PyExc_RuntimeError,
                         "Expected ASGI message 'http.response.start', but got '%S'.", type);
    } else if (!cy->response_complete) {
        if (PyUnicode_Check(type) && PyUnicode_Compare(type, st->s_http_response_body) == 0)
            r = send_body(cy, msg);
        else if (PyUnicode_Check(type) && PyUnicode_Compare(type, st->s_http_response_pathsend) == 0)
            r = send_pathsend(cy, msg);
        else
            PyErr_Format(PyExc_RuntimeError,
                         "Expected ASGI message 'http.response.body', but got '%S'.", type);
    } else {
        PyErr_Format(PyExc_RuntimeError,
                     "Unexpected ASGI message '%S' sent, after response already completed.", type);
    }
    Py_DECREF(type);
    return r;
}

/* The app failed or returned without a response: answer 500 if nothing was
 * sent yet, else close the connection (the client sees a truncated reply). */
static PyObject *cycle_app_failed(PyObject *self, PyObject *Py_UNUSED(a))
{
    CycleObject *cy = (CycleObject *)self;
    cel_conn *c = cy->conn;
    if (!c || cy->response_complete)
        Py_RETURN_NONE;
    cel_server *srv = cy->server->srv;
    if (!c->resp_started) {
        PyObject *status = PyLong_FromLong(500);
        if (!status || access_log(cy, status) < 0)
            PyErr_WriteUnraisable(self);
        Py_XDECREF(status);
    }
    detach(cy);
    cy->response_complete = 1;
    if (!c->resp_started)
        cel_conn_write_error(c, 500, "Internal Server Error", cel_server_date());
    else
        close_after_output(c);
    cel_server_flush(srv, c);
    resolve_disconnect(cy);
    Py_RETURN_NONE;
}

/* A WebSocket app is done: unless a closing handshake is under way (the
 * core finishes it), drop the connection as uvicorn does. */
static PyObject *cycle_ws_finish(PyObject *self, PyObject *Py_UNUSED(a))
{
    CycleObject *cy = (CycleObject *)self;
    cel_conn *c = cy->conn;
    if (c) {
        detach(cy);
        if (!(c->state == CEL_CONN_WS && c->ws->close_sent) && c->state != CEL_CONN_CLOSING) {
            close_after_output(c);
            cel_server_flush(cy->server->srv, c);
        }
    }
    cy->disconnected = 1;
    resolve_disconnect(cy);
    Py_RETURN_NONE;
}

static PyObject *cycle_abort(PyObject *self, PyObject *Py_UNUSED(a))
{
    CycleObject *cy = (CycleObject *)self;
    cel_conn *c = cy->conn;
    if (c) {
        detach(cy);
        close_after_output(c);
        cel_server_flush(cy->server->srv, c);
    }
    cy->disconnected = 1;
    resolve_disconnect(cy);
    Py_RETURN_NONE;
}

void celeris_cycle_link(CycleObject *cy)
{
    ServerObject *srv = cy->server;
    Py_INCREF(cy);
    cy->live = 1;
    cy->live_prev = NULL;
    cy->live_next = srv->live;
    if (srv->live)
        srv->live->live_prev = cy;
    srv->live = cy;
    srv->live_count++;
}

void celeris_cycle_unlink(CycleObject *cy)
{
    if (!cy->live)
        return;
    ServerObject *srv = cy->server;
    if (cy->live_prev)
        cy->live_prev->live_next = cy->live_next;
    else
        srv->live = cy->live_next;
    if (cy->live_next)
        cy->live_next->live_prev = cy->live_prev;
    cy->live_prev = cy->live_next = NULL;
    cy->live = 0;
    srv->live_count--;
    Py_CLEAR(cy->task);
    Py_DECREF(cy);
}

/* The app coroutine is done (called from its finally clause). */
static PyObject *cycle_finish(PyObject *self, PyObject *Py_UNUSED(a))
{
    CycleObject *cy = (CycleObject *)self;
    cy->live = cy->live ? cy->live : -1;    /* -1: finished before being linked */
    if (cy->live == 1)
        celeris_cycle_unlink(cy);
    Py_RETURN_NONE;
}

static PyObject *get_task(PyObject *self, void *Py_UNUSED(c))
{
    CycleObject *cy = (CycleObject *)self;
    return Py_NewRef(cy->task ? cy->task : Py_None);
}

static PyObject *get_started(PyObject *self, void *Py_UNUSED(c))
{
    CycleObject *cy = (CycleObject *)self;
    return PyBool_FromLong(cy->ws ? cy->ws_phase != 0 : cy->response_started);
}

static PyObject *get_complete(PyObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(((CycleObject *)self)->response_complete);
}

static PyObject *get_receive_called(PyObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(((CycleObject *)self)->receive_called);
}

static PyObject *get_disconnected(PyObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(((CycleObject *)self)->disconnected);
}

PyObject *celeris_cycle_new(ServerObject *server, cel_conn *c, PyObject *scope)
{
    CycleObject *cy = (CycleObject *)celeris_fl_new(&server->st->fl_cycle, server->st->Cycle_Type);
    if (!cy)
        return NULL;
    cy->st = server->st;
    cy->server = (ServerObject *)Py_NewRef(server);
    cy->conn = c;
    cy->scope = Py_XNewRef(scope);
    cy->recv_future = NULL;
    cy->drain_future = NULL;
    cy->response_started = 0;
    cy->response_complete = 0;
    cy->disconnected = 0;
    cy->body_complete = 0;
    cy->recv_peek = 0;
    cy->receive_called = 0;
    cy->task = NULL;
    cy->live_prev = cy->live_next = NULL;
    cy->live = 0;
    cy->ws = c->ws != NULL;
    cy->ws_phase = 0;
    cy->ws_connect_sent = 0;
    cy->ws_scope = NULL;
    cy->ws_msg = NULL;
    cy->ws_waiter = NULL;
    cy->ws_disconnect = NULL;
    cy->ws_denial_headers = NULL;
    cy->ws_denial_body = NULL;
    cy->ws_denial_status = 0;
    c->user = cy;
    PyObject_GC_Track(cy);
    return (PyObject *)cy;
}

static int cycle_traverse(PyObject *self, visitproc visit, void *arg)
{
    CycleObject *cy = (CycleObject *)self;
    Py_VISIT(cy->server);
    Py_VISIT(cy->scope);
    Py_VISIT(cy->recv_future);
    Py_VISIT(cy->drain_future);
    Py_VISIT(cy->task);
    Py_VISIT(cy->ws_scope);
    Py_VISIT(cy->ws_msg);
    Py_VISIT(cy->ws_waiter);
    Py_VISIT(cy->ws_disconnect);
    Py_VISIT(cy->ws_denial_headers);
    Py_VISIT(cy->ws_denial_body);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int cycle_clear(PyObject *self)
{
    CycleObject *cy = (CycleObject *)self;
    detach(cy);
    Py_CLEAR(cy->server);
    Py_CLEAR(cy->scope);
    Py_CLEAR(cy->recv_future);
    Py_CLEAR(cy->drain_future);
    Py_CLEAR(cy->task);
    Py_CLEAR(cy->ws_scope);
    Py_CLEAR(cy->ws_msg);
    celeris_waiter_detach(cy->ws_waiter);
    Py_CLEAR(cy->ws_waiter);
    Py_CLEAR(cy->ws_disconnect);
    Py_CLEAR(cy->ws_denial_headers);
    Py_CLEAR(cy->ws_denial_body);
    return 0;
}

static void cycle_dealloc(PyObject *self)
{
    PyObject_GC_UnTrack(self);
    cycle_clear(self);
    celeris_fl_release(&((CycleObject *)self)->st->fl_cycle, self);
}

static PyMethodDef cycle_methods[] = {
    {"receive", cycle_receive, METH_NOARGS, "ASGI receive()."},
    {"body_wait", cycle_body_wait, METH_NOARGS,
     "Awaitable: more request-body bytes are buffered (MultipartParser.feed_from reads them)."},
    {"send", cycle_send, METH_O, "ASGI send(message)."},
    {"app_failed", cycle_app_failed, METH_NOARGS,
     "Answer 500 if no response started, else close the connection."},
    {"abort", cycle_abort, METH_NOARGS, "Close the connection now."},
    {"finish", cycle_finish, METH_NOARGS, "The app coroutine is done: stop tracking its task."},
    {"ws_finish", cycle_ws_finish, METH_NOARGS,
     "A WebSocket app returned: close the connection unless a close handshake is under way."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef cycle_getset[] = {
    {"response_started", get_started, NULL, NULL, NULL},
    {"response_complete", get_complete, NULL, NULL, NULL},
    {"disconnected", get_disconnected, NULL, NULL, NULL},
    {"receive_called", get_receive_called, NULL,
     "receive() was called (HTTP): some of the body may have been taken", NULL},
    {"task", get_task, NULL, "the asyncio Task running the app, while it runs", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot cycle_slots[] = {
    {Py_tp_methods, cycle_methods},
    {Py_tp_getset, cycle_getset},
    {Py_tp_traverse, cycle_traverse},
    {Py_tp_clear, cycle_clear},
    {Py_tp_dealloc, cycle_dealloc},
    {0, NULL},
};

PyType_Spec celeris_cycle_spec = {
    .name = "celeris._celeris.Cycle",
    .basicsize = sizeof(CycleObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = cycle_slots,
};

/* The same as cy.finish() / cy.abort() / cy.app_failed() without a method
 * lookup by name (the native driver calls these on every request). */
PyObject *celeris_cycle_finish(CycleObject *cy) { return cycle_finish((PyObject *)cy, NULL); }
PyObject *celeris_cycle_abort(CycleObject *cy) { return cycle_abort((PyObject *)cy, NULL); }
PyObject *celeris_cycle_app_failed(CycleObject *cy) { return cycle_app_failed((PyObject *)cy, NULL); }
