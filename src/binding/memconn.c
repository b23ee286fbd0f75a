/* _celeris.MemoryConn: an in-memory connection of a Server, for the
 * TestClient.  Bytes fed in go through the same parser, state machine and
 * dispatch as socket input; the response bytes are taken from the core's
 * output buffer.  on_output() is called (no arguments) whenever output was
 * produced or the connection closed. */
#include "binding.h"

#include "errors.h"

typedef struct {
    PyObject_HEAD
    ServerObject *server;       /* strong */
    cel_conn *conn;             /* owned via the server; NULL once freed */
    PyObject *on_output;        /* callable or None */
} MemConnObject;

void celeris_memconn_on_output(cel_conn *c)
{
    MemConnObject *m = c->owner;
    if (!m || m->on_output == Py_None)
        return;
    PyObject *r = PyObject_CallNoArgs(m->on_output);
    if (!r)
        PyErr_WriteUnraisable(m->on_output);
    Py_XDECREF(r);
}

void celeris_memconn_on_free(cel_conn *c)
{
    MemConnObject *m = c->owner;
    if (m)
        m->conn = NULL;
    c->owner = NULL;
}

PyObject *celeris_memconn_new(ServerObject *server, PyObject *client, PyObject *srvaddr,
                              PyObject *on_output)
{
    MemConnObject *m = PyObject_GC_New(MemConnObject, server->st->MemConn_Type);
    if (!m)
        return NULL;
    m->server = (ServerObject *)Py_NewRef(server);
    m->on_output = Py_NewRef(on_output);
    m->conn = cel_server_memory_conn(server->srv, NULL, 0);
    if (!m->conn) {
        m->conn = NULL;
        PyObject_GC_Track(m);
        Py_DECREF(m);
        return PyErr_NoMemory();
    }
    m->conn->owner = m;
    PyObject_GC_Track(m);
    if (celeris_conn_cache_set(m->conn, client, srvaddr) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return (PyObject *)m;
}

static PyObject *mc_feed(PyObject *op, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"data", "eof", NULL};
    MemConnObject *m = (MemConnObject *)op;
    Py_buffer view;
    int eof = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "y*|p:feed", kwlist, &view, &eof))
        return NULL;
    if (!m->conn || !m->server->srv) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_RuntimeError, "connection is closed");
        return NULL;
    }
    int rc = cel_server_feed(m->server->srv, m->conn, view.buf, (size_t)view.len, eof);
    PyBuffer_Release(&view);
    if (rc == CEL_ENOMEM)
        return PyErr_NoMemory();
    if (PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(rc == CEL_ECLOSED);
}

/* ws_abort(code, reason="") -> closed: the client side of a WebSocket drops
 * the connection and the app's websocket.disconnect carries `code`/`reason`.
 * For the TestClient's close() with a code that never goes on the wire (1005,
 * 1006, 1015): Starlette's TestClient hands such a code to the app directly,
 * so the in-memory connection records it as the peer's code, then feeds EOF.
 * Before the upgrade (no WebSocket state yet) it is a plain EOF.  The reason
 * is cut to what a close frame could carry (123 bytes, on a character
 * boundary).  Errors: RuntimeError when the connection is closed. */
static PyObject *mc_ws_abort(PyObject *op, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"code", "reason", NULL};
    MemConnObject *m = (MemConnObject *)op;
    int code;
    const char *reason = "";
    Py_ssize_t rlen = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "i|s#:ws_abort", kwlist, &code, &reason, &rlen))
        return NULL;
    if (!m->conn || !m->server->srv) {
        PyErr_SetString(PyExc_RuntimeError, "connection is closed");
        return NULL;
    }
    cel_ws_conn *w = m->conn->ws;
    if (w && !w->close_code) {
        size_t n = (size_t)rlen;
        if (n > sizeof w->close_reason - 1) {
            n = sizeof w->close_reason - 1;
            while (n && ((unsigned char)reason[n] & 0xC0) == 0x80)
                n--;                        /* don't split a UTF-8 sequence */
        }
        w->close_code = code;
        memcpy(w->close_reason, reason, n);
        w->close_reason_len = n;
    }
    int rc = cel_server_feed(m->server->srv, m->conn, "", 0, 1);
    if (rc == CEL_ENOMEM)
        return PyErr_NoMemory();
    if (PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(rc == CEL_ECLOSED);
}

static PyObject *mc_take(PyObject *op, PyObject *Py_UNUSED(a))
{
    MemConnObject *m = (MemConnObject *)op;
    if (!m->conn || !m->server->srv)
        return PyBytes_FromStringAndSize("", 0);
    size_t n = m->conn->out.len;
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
    if (!b)
        return NULL;
    cel_server_take_output(m->server->srv, m->conn, PyBytes_AS_STRING(b), n);
    return b;
}

static PyObject *mc_close(PyObject *op, PyObject *Py_UNUSED(a))
{
    MemConnObject *m = (MemConnObject *)op;
    if (m->conn && m->server->srv)
        cel_server_close(m->server->srv, m->conn);   /* on_free clears m->conn */
    m->conn = NULL;
    Py_RETURN_NONE;
}

static PyObject *mc_get_closed(PyObject *op, void *Py_UNUSED(c))
{
    MemConnObject *m = (MemConnObject *)op;
    return PyBool_FromLong(!m->conn || m->conn->closed);
}

static PyObject *mc_get_pending(PyObject *op, void *Py_UNUSED(c))
{
    MemConnObject *m = (MemConnObject *)op;
    return PyLong_FromSize_t(m->conn ? m->conn->out.len : 0);
}

static int mc_traverse(PyObject *op, visitproc visit, void *arg)
{
    MemConnObject *m = (MemConnObject *)op;
    Py_VISIT(m->server);
    Py_VISIT(m->on_output);
    Py_VISIT(Py_TYPE(op));
    return 0;
}

static int mc_clear(PyObject *op)
{
    MemConnObject *m = (MemConnObject *)op;
    if (m->conn && m->server && m->server->srv)
        cel_server_close(m->server->srv, m->conn);
    m->conn = NULL;
    Py_CLEAR(m->server);
    Py_CLEAR(m->on_output);
    return 0;
}

static void mc_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    mc_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef mc_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))mc_feed, METH_VARARGS | METH_KEYWORDS,
     "feed(data, eof=False) -> closed: process request bytes through the core."},
    {"ws_abort", (PyCFunction)(void (*)(void))mc_ws_abort, METH_VARARGS | METH_KEYWORDS,
     "ws_abort(code, reason='') -> closed: drop a WebSocket connection, the app's "
     "websocket.disconnect carrying code/reason."},
    {"take", mc_take, METH_NOARGS, "Take all pending response bytes."},
    {"close", mc_close, METH_NOARGS, "Close and free the connection."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef mc_getset[] = {
    {"closed", mc_get_closed, NULL, "the core closed the connection", NULL},
    {"pending", mc_get_pending, NULL, "bytes of output not yet taken", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot mc_slots[] = {
    {Py_tp_methods, mc_methods},
    {Py_tp_getset, mc_getset},
    {Py_tp_traverse, mc_traverse},
    {Py_tp_clear, mc_clear},
    {Py_tp_dealloc, mc_dealloc},
    {0, NULL},
};

PyType_Spec celeris_memconn_spec = {
    .name = "celeris._celeris.MemoryConn",
    .basicsize = sizeof(MemConnObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = mc_slots,
};
