/* _celeris.Waiter: what a WebSocket receive() that must wait returns, one per
 * Cycle, reused for every such receive(), instead of a loop.create_future()
 * per message.
 *
 * Why: creating an asyncio Future per message, then set_result() and the
 * Task's wake-up through loop.call_soon (a Handle and a loop turn), cost ~3k
 * of ~26k instructions per echoed message (callgrind).
 *
 * How: `await waiter` yields the waiter itself once, as a Future would, to
 * the Task running the awaiting coroutine; the Task sees a Future-compatible
 * object (_asyncio_future_blocking is True at that moment) and registers its
 * wake-up callback with add_done_callback(fn, context=ctx).  When the message
 * arrives (celeris_waiter_resolve) the waiter keeps it and wakes the Task:
 *   - inside server.poll()/run_pending() (no Task is running there), after
 *     the core has returned: the waiter goes on the server's wake list and
 *     celeris_waiter_run_wakes() calls each callback directly, in its context,
 *     once the epoll batch is done (so an app step never runs inside the
 *     core's processing of a connection, and a connection freed by an app
 *     step is never touched by the rest of the batch);
 *   - anywhere else (inside some Task's step, the sweep, the TestClient):
 *     loop.call_soon(fn, waiter, context=ctx), as a Future does.
 * The Task's step then resumes the coroutine, whose next send() into the
 * waiter returns the message.
 *
 * Cancellation keeps asyncio's semantics: Task.cancel() calls cancel() on the
 * waiter it waits on, which wakes the Task (call_soon) so that result()
 * raises CancelledError(msg) into the coroutine.  Whenever the await is
 * abandoned (an exception thrown in, close()), a message the waiter holds and
 * nobody took goes back to the Cycle (cy->ws_msg): the next receive() gets
 * it, nothing is lost.
 *
 * Outside the instant between its yield and the Task's add_done_callback,
 * _asyncio_future_blocking reads None, so asyncio.isfuture() is False: code
 * that wants a Future (ensure_future, gather, wait_for before 3.12) wraps the
 * waiter in a Task of its own, which then awaits it as above.
 *
 * Ownership: the Cycle holds its waiter (strong, cy->ws_waiter); the waiter
 * points back to it borrowed (w->cy), cleared by celeris_waiter_detach when
 * the Cycle is cleared.  The waiter holds its server (strong), the message
 * (strong, until taken), the Task's callback and its context (strong, while
 * registered), and its bound result/add_done_callback/get_loop methods
 * (strong, made on first use by wt_getattro; each refers back to the
 * waiter, so celeris_waiter_detach drops them, tp_clear too).  The server's
 * wake list holds each queued waiter (strong). */
#include "binding.h"

enum { W_IDLE = 0, W_WAITING = 1, W_DONE = 2, W_CANCELLED = 3 };

typedef struct WaiterObject {
    PyObject_HEAD
    ServerObject *server;           /* strong */
    CycleObject *cy;                /* borrowed; NULL once the Cycle is cleared */
    PyObject *value;                /* W_DONE: the message, until the await takes it */
    PyObject *cancel_msg;           /* W_CANCELLED: cancel(msg), or NULL */
    PyObject *wakeup;               /* the Task's callback, or NULL */
    PyObject *wakeup_ctx;           /* the context it was registered with, or NULL */
    struct WaiterObject *wake_next; /* on the server's wake list: the next one (owned by the list) */
    int state;
    int queued;                     /* on the server's wake list */
    int yielded;                    /* the current await has yielded the waiter */
    int blocking;                   /* _asyncio_future_blocking (True only right after the yield) */
    PyObject *bound[3];             /* result, add_done_callback, get_loop bound to this waiter
                                     * (strong, made on first use; see wt_getattro) */
} WaiterObject;

#define W(op) ((WaiterObject *)(op))

PyObject *celeris_waiter_new(CycleObject *cy)
{
    WaiterObject *w = PyObject_GC_New(WaiterObject, cy->server->st->Waiter_Type);
    if (!w)
        return NULL;
    w->server = (ServerObject *)Py_NewRef(cy->server);
    w->cy = cy;
    w->value = w->cancel_msg = w->wakeup = w->wakeup_ctx = NULL;
    w->wake_next = NULL;
    w->state = W_IDLE;
    w->queued = w->yielded = w->blocking = 0;
    w->bound[0] = w->bound[1] = w->bound[2] = NULL;
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

void celeris_waiter_detach(PyObject *op)
{
    if (op) {
        WaiterObject *w = W(op);
        w->cy = NULL;
        /* each bound method refers back to the waiter: drop them so that
         * the waiter goes with its last reference, not with the next GC */
        for (int i = 0; i < 3; i++)
            Py_CLEAR(w->bound[i]);
    }
}

/* Back to W_IDLE.  A message nobody took goes back to the Cycle for its next
 * receive() (unless that already has one, or it is the disconnect, which the
 * Cycle keeps anyway).  Never raises. */
static void reset(WaiterObject *w)
{
    PyObject *v = w->value;
    w->value = NULL;
    CycleObject *cy = w->cy;
    if (v && cy && !cy->ws_msg && v != cy->ws_disconnect)
        cy->ws_msg = v;
    else
        Py_XDECREF(v);
    Py_CLEAR(w->cancel_msg);
    Py_CLEAR(w->wakeup);
    Py_CLEAR(w->wakeup_ctx);
    w->state = W_IDLE;
    w->yielded = w->blocking = 0;
}

int celeris_waiter_arm(PyObject *op)
{
    WaiterObject *w = W(op);
    if (w->state == W_WAITING) {
        PyErr_SetString(PyExc_RuntimeError, "receive() called while another receive() is pending");
        return -1;
    }
    /* W_DONE: an earlier receive() never awaited; its message goes first (reset
     * hands it to the Cycle, the caller looks there). W_CANCELLED: over. */
    reset(w);
    return 0;
}

void celeris_waiter_wait(PyObject *op)
{
    W(op)->state = W_WAITING;
}

int celeris_waiter_waiting(PyObject *op)
{
    return op && W(op)->state == W_WAITING;
}

/* An asyncio exception (CancelledError, InvalidStateError) set as the current
 * one, with msg (or none); rare paths only.  Always returns NULL. */
static PyObject *asyncio_error(const char *name, PyObject *msg)
{
    PyObject *mod = PyImport_ImportModule("asyncio");
    PyObject *cls = mod ? PyObject_GetAttrString(mod, name) : NULL;
    Py_XDECREF(mod);
    PyObject *exc = cls ? (msg ? PyObject_CallOneArg(cls, msg) : PyObject_CallNoArgs(cls)) : NULL;
    if (exc)
        PyErr_SetObject(cls, exc);
    Py_XDECREF(exc);
    Py_XDECREF(cls);
    return NULL;
}

/* loop.call_soon(cb, w, context=ctx) for the registered callback, which is
 * taken off the waiter.  0, or -1 with an exception. */
static int wake_soon(WaiterObject *w)
{
    PyObject *cb = w->wakeup, *ctx = w->wakeup_ctx;
    w->wakeup = w->wakeup_ctx = NULL;
    if (!cb)
        return 0;
    PyObject *args = PyTuple_Pack(2, cb, (PyObject *)w);
    PyObject *kw = args && ctx ? Py_BuildValue("{sO}", "context", ctx) : NULL;
    PyObject *r = args && (kw || !ctx) ? PyObject_Call(w->server->call_soon, args, kw) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_DECREF(cb);
    Py_XDECREF(ctx);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

int celeris_waiter_resolve(PyObject *op, PyObject *value)
{
    WaiterObject *w = W(op);
    if (!op || w->state != W_WAITING)
        return 0;
    w->value = Py_NewRef(value ? value : Py_None);
    w->state = W_DONE;
    if (!w->wakeup)
        return 1;               /* not awaited yet: the await takes it without yielding */
    ServerObject *srv = w->server;
    if (srv->in_loop_callback) {
        if (!w->queued) {
            w->queued = 1;
            w->wake_next = NULL;
            if (srv->wakes_tail)
                srv->wakes_tail->wake_next = (WaiterObject *)Py_NewRef(op);
            else
                srv->wakes = (WaiterObject *)Py_NewRef(op);
            srv->wakes_tail = w;
        }
        return 1;
    }
    PyObject *exc = PyErr_GetRaisedException_compat();
    if (wake_soon(w) < 0)
        PyErr_WriteUnraisable(op);
    PyErr_SetRaisedException_compat(exc);
    return 1;
}

void celeris_waiter_run_wakes(ServerObject *srv)
{
    while (srv->wakes) {
        WaiterObject *w = srv->wakes;          /* the list's reference, now ours */
        srv->wakes = w->wake_next;
        if (!srv->wakes)
            srv->wakes_tail = NULL;
        w->wake_next = NULL;
        w->queued = 0;
        PyObject *cb = w->wakeup, *ctx = w->wakeup_ctx;
        w->wakeup = w->wakeup_ctx = NULL;
        if (cb) {
            /* What the loop would do for call_soon(cb, w, context=ctx), now:
             * no Task is running, and the Task's step must see its own context. */
            if (ctx && PyContext_Enter(ctx) < 0) {
                PyErr_WriteUnraisable((PyObject *)w);
            } else {
                PyObject *r = PyObject_CallOneArg(cb, (PyObject *)w);
                if (!r)
                    PyErr_WriteUnraisable(cb);
                Py_XDECREF(r);
                if (ctx && PyContext_Exit(ctx) < 0)
                    PyErr_WriteUnraisable((PyObject *)w);
            }
        }
        Py_XDECREF(cb);
        Py_XDECREF(ctx);
        Py_DECREF(w);
    }
}

void celeris_waiter_drop_wakes(ServerObject *srv)
{
    while (srv->wakes) {
        WaiterObject *w = srv->wakes;
        srv->wakes = w->wake_next;
        w->wake_next = NULL;
        w->queued = 0;
        Py_DECREF(w);
    }
    srv->wakes_tail = NULL;
}

/* ---- the await ---- */

/* One step of `await w` (the value sent in is ignored, as by a Future):
 * yields w the first time while waiting, returns the message once it is
 * there.  PYGEN_ERROR with an exception otherwise. */
static PySendResult wt_am_send(PyObject *op, PyObject *Py_UNUSED(arg), PyObject **result)
{
    WaiterObject *w = W(op);
    *result = NULL;
    switch (w->state) {
    case W_DONE:
        *result = w->value;
        w->value = NULL;
        reset(w);
        return PYGEN_RETURN;
    case W_WAITING:
        if (!w->yielded) {
            w->yielded = 1;
            w->blocking = 1;
            *result = Py_NewRef(op);
            return PYGEN_NEXT;
        }
        PyErr_SetString(PyExc_RuntimeError, "await wasn't used with future");
        return PYGEN_ERROR;
    case W_CANCELLED: {
        PyObject *msg = Py_XNewRef(w->cancel_msg);
        reset(w);
        asyncio_error("CancelledError", msg);
        Py_XDECREF(msg);
        return PYGEN_ERROR;
    }
    default:
        PyErr_SetString(PyExc_RuntimeError, "this receive() was already awaited");
        return PYGEN_ERROR;
    }
}

/* tp_iternext / send(): the same step with StopIteration(value) at the end. */
static PyObject *wt_next_impl(PyObject *op, int raise_stop)
{
    PyObject *r;
    PySendResult st = wt_am_send(op, Py_None, &r);
    if (st == PYGEN_NEXT)
        return r;
    if (st == PYGEN_RETURN) {
        if (r == Py_None && !raise_stop) {
            Py_DECREF(r);
            return NULL;
        }
        /* a 1-tuple, so that a tuple or an exception value stays itself */
        PyObject *args = PyTuple_Pack(1, r);
        Py_DECREF(r);
        PyObject *exc = args ? PyObject_Call(PyExc_StopIteration, args, NULL) : NULL;
        Py_XDECREF(args);
        if (exc) {
            PyErr_SetObject(PyExc_StopIteration, exc);
            Py_DECREF(exc);
        }
    }
    return NULL;
}

static PyObject *wt_next(PyObject *op) { return wt_next_impl(op, 0); }

static PyObject *wt_send(PyObject *op, PyObject *Py_UNUSED(v)) { return wt_next_impl(op, 1); }

/* throw(exc) into the await: abandoned (a message it held goes back to the
 * Cycle); the exception is raised at the await. */
static PyObject *wt_throw(PyObject *op, PyObject *args)
{
    PyObject *typ, *val = NULL, *tb = NULL;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb))
        return NULL;
    reset(W(op));
    if (PyExceptionInstance_Check(typ))
        PyErr_SetRaisedException_compat(Py_NewRef(typ));
    else
        PyErr_SetObject(typ, val);
    return NULL;
}

static PyObject *wt_close(PyObject *op, PyObject *Py_UNUSED(a))
{
    reset(W(op));
    Py_RETURN_NONE;
}

static PyObject *wt_await(PyObject *op)
{
    return Py_NewRef(op);
}

/* ---- the Future protocol an asyncio Task uses ---- */

static PyObject *wt_get_loop(PyObject *op, PyObject *Py_UNUSED(a))
{
    return Py_NewRef(W(op)->server->loop);
}

/* add_done_callback(fn, *, context=None), as the Task's step calls it on
 * every wait: parsed by hand (vectorcall).  One callback at a time. */
static PyObject *wt_add_done_callback(PyObject *op, PyObject *const *args, Py_ssize_t nargsf,
                                      PyObject *kwnames)
{
    WaiterObject *w = W(op);
    PyObject *fn, *ctx;
    if (celeris_parse_done_callback(args, nargsf, kwnames, &fn, &ctx) < 0)
        return NULL;
    if (w->wakeup) {
        PyErr_SetString(PyExc_RuntimeError, "celeris receive() waiter: one waiting Task only");
        return NULL;
    }
    w->wakeup = Py_NewRef(fn);
    w->wakeup_ctx = Py_XNewRef(ctx);
    if (w->state != W_WAITING && wake_soon(w) < 0)     /* done already: as a Future does */
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *wt_remove_done_callback(PyObject *op, PyObject *fn)
{
    WaiterObject *w = W(op);
    if (w->wakeup && w->wakeup == fn) {
        Py_CLEAR(w->wakeup);
        Py_CLEAR(w->wakeup_ctx);
        return PyLong_FromLong(1);
    }
    return PyLong_FromLong(0);
}

/* cancel(msg=None): a waiting receive() is cancelled and its Task woken
 * (call_soon: this runs inside whatever cancels it); False once done. */
static PyObject *wt_cancel(PyObject *op, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"msg", NULL};
    PyObject *msg = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:cancel", kwlist, &msg))
        return NULL;
    WaiterObject *w = W(op);
    if (w->state != W_WAITING)
        Py_RETURN_FALSE;
    w->state = W_CANCELLED;
    Py_XSETREF(w->cancel_msg, msg != Py_None ? Py_NewRef(msg) : NULL);
    if (wake_soon(w) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *wt_result(PyObject *op, PyObject *Py_UNUSED(a))
{
    WaiterObject *w = W(op);
    if (w->state == W_DONE)
        return Py_NewRef(w->value);
    if (w->state == W_CANCELLED)
        return asyncio_error("CancelledError", w->cancel_msg);
    return asyncio_error("InvalidStateError", NULL);
}

static PyObject *wt_exception(PyObject *op, PyObject *Py_UNUSED(a))
{
    WaiterObject *w = W(op);
    if (w->state == W_DONE)
        Py_RETURN_NONE;
    if (w->state == W_CANCELLED)
        return asyncio_error("CancelledError", w->cancel_msg);
    return asyncio_error("InvalidStateError", NULL);
}

static PyObject *wt_done(PyObject *op, PyObject *Py_UNUSED(a))
{
    return PyBool_FromLong(W(op)->state == W_DONE || W(op)->state == W_CANCELLED);
}

static PyObject *wt_cancelled(PyObject *op, PyObject *Py_UNUSED(a))
{
    return PyBool_FromLong(W(op)->state == W_CANCELLED);
}

static PyObject *wt_get_blocking(PyObject *op, void *Py_UNUSED(c))
{
    if (W(op)->blocking)
        Py_RETURN_TRUE;
    Py_RETURN_NONE;             /* not a Future to asyncio.isfuture() */
}

static int wt_set_blocking(PyObject *op, PyObject *v, void *Py_UNUSED(c))
{
    int b = v ? PyObject_IsTrue(v) : 0;
    if (b < 0)
        return -1;
    W(op)->blocking = b;
    return 0;
}

static int wt_traverse(PyObject *op, visitproc visit, void *arg)
{
    WaiterObject *w = W(op);
    Py_VISIT(w->server);
    Py_VISIT(w->value);
    Py_VISIT(w->cancel_msg);
    Py_VISIT(w->wakeup);
    Py_VISIT(w->wakeup_ctx);
    Py_VISIT(w->wake_next);
    for (int i = 0; i < 3; i++)
        Py_VISIT(w->bound[i]);
    Py_VISIT(Py_TYPE(op));
    return 0;
}

/* Drops everything but the wake-list link (the list owns it: the server's
 * clear or run_wakes releases it). */
static int wt_clear(PyObject *op)
{
    WaiterObject *w = W(op);
    w->cy = NULL;
    Py_CLEAR(w->value);
    Py_CLEAR(w->cancel_msg);
    Py_CLEAR(w->wakeup);
    Py_CLEAR(w->wakeup_ctx);
    Py_CLEAR(w->server);
    for (int i = 0; i < 3; i++)
        Py_CLEAR(w->bound[i]);
    return 0;
}

static void wt_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    wt_clear(op);
    Py_CLEAR(W(op)->wake_next);     /* not queued any more (the list held a reference) */
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef wt_methods[] = {
    {"send", wt_send, METH_O, NULL},
    {"throw", wt_throw, METH_VARARGS, NULL},
    {"close", wt_close, METH_NOARGS, NULL},
    {"get_loop", wt_get_loop, METH_NOARGS, NULL},
    {"add_done_callback", (PyCFunction)(void (*)(void))wt_add_done_callback,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"remove_done_callback", wt_remove_done_callback, METH_O, NULL},
    {"cancel", (PyCFunction)(void (*)(void))wt_cancel, METH_VARARGS | METH_KEYWORDS, NULL},
    {"result", wt_result, METH_NOARGS, NULL},
    {"exception", wt_exception, METH_NOARGS, NULL},
    {"done", wt_done, METH_NOARGS, NULL},
    {"cancelled", wt_cancelled, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef wt_getset[] = {
    {"_asyncio_future_blocking", wt_get_blocking, wt_set_blocking, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* The attributes an asyncio Task uses on every await of the waiter (3.11's
 * task_step_impl: _asyncio_future_blocking read, get_loop(), the flag set to
 * False, add_done_callback(); task_wakeup: result()), found by length and
 * bytes instead of the generic lookup, the three methods bound once per
 * waiter.  The type is final, has no __dict__ and these names are its own
 * getset/methods, so the generic lookup would find the same things (the
 * bound methods it returns are fresh objects each time; these are shared,
 * which nothing can tell apart but `is`).  Everything else: generic. */
static int name_is(PyObject *name, Py_ssize_t n, const char *lit)
{
    return PyUnicode_GET_LENGTH(name) == n && memcmp(PyUnicode_DATA(name), lit, (size_t)n) == 0;
}

/* bound[i]: wt_methods' entry `name` bound to the waiter (made on first use);
 * new reference, NULL with an exception set. */
static PyObject *bound(PyObject *op, int i, const char *name)
{
    WaiterObject *w = W(op);
    if (!w->bound[i]) {
        PyMethodDef *m = wt_methods;
        while (strcmp(m->ml_name, name) != 0)
            m++;
        w->bound[i] = PyCFunction_New(m, op);
        if (!w->bound[i])
            return NULL;
    }
    return Py_NewRef(w->bound[i]);
}

static PyObject *wt_getattro(PyObject *op, PyObject *name)
{
    if (PyUnicode_CheckExact(name) && PyUnicode_IS_COMPACT_ASCII(name)) {
        switch (PyUnicode_GET_LENGTH(name)) {
        case 24:
            if (name_is(name, 24, "_asyncio_future_blocking"))
                return wt_get_blocking(op, NULL);
            break;
        case 6:
            if (name_is(name, 6, "result"))
                return bound(op, 0, "result");
            break;
        case 17:
            if (name_is(name, 17, "add_done_callback"))
                return bound(op, 1, "add_done_callback");
            break;
        case 8:
            if (name_is(name, 8, "get_loop"))
                return bound(op, 2, "get_loop");
            break;
        }
    }
    return PyObject_GenericGetAttr(op, name);
}

static int wt_setattro(PyObject *op, PyObject *name, PyObject *v)
{
    if (v && PyUnicode_CheckExact(name) && PyUnicode_IS_COMPACT_ASCII(name)
            && name_is(name, 24, "_asyncio_future_blocking"))
        return wt_set_blocking(op, v, NULL);
    return PyObject_GenericSetAttr(op, name, v);
}

static PyType_Slot wt_slots[] = {
    {Py_tp_getattro, wt_getattro},
    {Py_tp_setattro, wt_setattro},
    {Py_am_await, wt_await},
    {Py_am_send, wt_am_send},
    {Py_tp_iter, wt_await},
    {Py_tp_iternext, wt_next},
    {Py_tp_methods, wt_methods},
    {Py_tp_getset, wt_getset},
    {Py_tp_traverse, wt_traverse},
    {Py_tp_clear, wt_clear},
    {Py_tp_dealloc, wt_dealloc},
    {Py_tp_doc, "What a WebSocket receive() that must wait returns (internal)."},
    {0, NULL},
};

PyType_Spec celeris_waiter_spec = {
    .name = "celeris._celeris.Waiter",
    .basicsize = sizeof(WaiterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = wt_slots,
};
