/* _celeris.Driver: one asyncio Task per keep-alive connection that runs the
 * connection's requests one after the other, instead of one Task per request.
 *
 * Why: creating, scheduling and destroying an asyncio Task (name formatting,
 * the all-tasks WeakSet, a Handle, a loop turn) costs more than the rest of a
 * small native request.  Requests on a connection are serialised anyway (one
 * request is with the app at a time), so one Task can carry them all.
 *
 * How: a Driver is the coroutine of its Task.  Between requests it parks: it
 * yields itself, a minimal Future (get_loop, add_done_callback, cancel,
 * result, _asyncio_future_blocking), and the Task registers its wake-up
 * callback on it.  celeris_drive() hands the next request's coroutine to an
 * idle Driver and calls that callback directly, so the Task's step -- and
 * the request's first step -- runs at once, inside server.poll() or
 * server.run_pending() (no other Task is running there), as an eagerly
 * started Task would.  A request that awaits suspends the Driver's Task as it
 * would suspend its own Task.  Each request runs in its own copy of the
 * contextvars Context (entered around every step), so contextvars never leak
 * between requests; asyncio.current_task() is the connection's Task.
 * When the Driver is busy (its request still runs background tasks after its
 * response) or the call does not come from the loop's callbacks (TestClient
 * memory connections), the request gets its own Task as before.
 *
 * Ownership: cel_conn.driver holds a strong reference to the connection's
 * Driver until the connection closes (on_close: celeris_driver_close); the
 * Task holds it as its coroutine.  The Driver holds its Task (strong) until it
 * ends; the park callback (which references the Task) is held only while
 * parked; both are cleared when the Driver ends. */
#include "binding.h"

typedef struct {
    PyObject_HEAD
    PyObject *loop;             /* the server's loop */
    PyObject *call_soon;        /* loop.call_soon */
    PyObject *coro;             /* the request coroutine being driven, or NULL (parked) */
    PyObject *ctx;              /* its contextvars Context */
    PyObject *task;             /* the Task running this Driver, until it ends */
    PyObject *wakeup;           /* the Task's callback registered while parked, or NULL */
    PyObject *wakeup_ctx;       /* the context it was registered with */
    int blocking;               /* _asyncio_future_blocking */
    int running;                /* inside a step */
    int closing;                /* the connection closed: end when parked */
    int cancelled;              /* the park was cancelled: result() raises */
    PyObject *cancel_msg;       /* cancel(msg)'s msg while cancelled, or NULL; owned */
    int dead;                   /* ended (StopIteration or an exception) */
    int eager;                  /* inside the eager first step of a request (celeris_drive) */
    int has_pending;            /* the eager step yielded `pending`: the Task's next step returns it */
    PyObject *pending;          /* that yielded object (may be None), owned */
    PyObject *pending_err;      /* a BaseException (not Exception) the eager step raised: the
                                   Task's next step ends with it; owned */
} DriverObject;

static PyTypeObject *Driver_Type(celeris_state *st) { return st->Driver_Type; }

static void drv_release(DriverObject *d)
{
    d->dead = 1;
    Py_CLEAR(d->coro);
    Py_CLEAR(d->ctx);
    Py_CLEAR(d->wakeup);
    Py_CLEAR(d->wakeup_ctx);
    Py_CLEAR(d->task);
    Py_CLEAR(d->pending);
    Py_CLEAR(d->pending_err);
    Py_CLEAR(d->cancel_msg);
    d->has_pending = 0;
}

/* One step of the Driver: advance the request coroutine (value None, or
 * throw exc), or park.  Returns the object the Task must wait on, or NULL
 * with StopIteration (the Driver ended) or another exception. */
static PyObject *drv_step(DriverObject *d, PyObject *exc)
{
    if (d->running) {
        PyErr_SetString(PyExc_RuntimeError, "celeris Driver re-entered");
        return NULL;
    }
    if (d->pending_err) {                       /* the eager step raised a BaseException */
        PyObject *err = d->pending_err;
        d->pending_err = NULL;
        drv_release(d);
        PyErr_SetRaisedException_compat(err);
        return NULL;
    }
    if (d->has_pending) {
        /* The eager step's first await: the Task now waits on what it yielded.
         * Thrown into meanwhile (cancelled during the eager step): the
         * exception goes to the coroutine at that await instead. */
        PyObject *y = d->pending;
        d->pending = NULL;
        d->has_pending = 0;
        if (!exc)
            return y;
        Py_DECREF(y);
    }
    for (;;) {
        if (!d->coro) {
            if (exc) {                          /* cancelled (or thrown into) while parked */
                drv_release(d);
                PyErr_SetRaisedException_compat(Py_NewRef(exc));
                return NULL;
            }
            if (d->closing || d->dead) {
                drv_release(d);
                PyErr_SetNone(PyExc_StopIteration);
                return NULL;
            }
            d->blocking = 1;
            return Py_NewRef((PyObject *)d);   /* park */
        }
        PyObject *result = NULL;
        PySendResult st;
        d->running = 1;
        if (PyContext_Enter(d->ctx) < 0) {
            d->running = 0;
            return NULL;
        }
        if (exc) {
            result = PyObject_CallMethod(d->coro, "throw", "O", exc);
            if (result)
                st = PYGEN_NEXT;
            else if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
                PyErr_Clear();
                st = PYGEN_RETURN;
            } else {
                st = PYGEN_ERROR;
            }
        } else {
            st = PyIter_Send(d->coro, Py_None, &result);
        }
        PyObject *err = st == PYGEN_ERROR ? PyErr_GetRaisedException_compat() : NULL;
        if (PyContext_Exit(d->ctx) < 0)
            PyErr_Clear();
        d->running = 0;
        if (st == PYGEN_NEXT)
            return result;
        Py_XDECREF(result);
        Py_CLEAR(d->coro);
        Py_CLEAR(d->ctx);
        exc = NULL;
        if (err) {
            if (!PyObject_TypeCheck(err, (PyTypeObject *)PyExc_Exception)) {
                /* Cancellation, KeyboardInterrupt...: the Task ends with it,
                 * as the request's own Task would have. */
                drv_release(d);
                PyErr_SetRaisedException_compat(err);
                return NULL;
            }
            /* The request coroutines map their errors themselves; one that
             * escapes is reported as a Task's unretrieved exception would be. */
            PyErr_SetRaisedException_compat(err);
            PyErr_WriteUnraisable((PyObject *)d);
        }
    }
}

static PyObject *drv_next(PyObject *op)
{
    PyObject *r = drv_step((DriverObject *)op, NULL);
    if (!r && PyErr_ExceptionMatches(PyExc_StopIteration))
        PyErr_Clear();          /* iternext: no exception = StopIteration */
    return r;
}

static PyObject *drv_send(PyObject *op, PyObject *Py_UNUSED(value))
{
    return drv_step((DriverObject *)op, NULL);
}

static PyObject *drv_throw(PyObject *op, PyObject *args)
{
    PyObject *typ, *val = NULL, *tb = NULL;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb))
        return NULL;
    PyObject *exc;
    if (PyExceptionInstance_Check(typ))
        exc = Py_NewRef(typ);
    else if (!(exc = val && val != Py_None ? PyObject_CallOneArg(typ, val) : PyObject_CallNoArgs(typ)))
        return NULL;
    PyObject *r = drv_step((DriverObject *)op, exc);
    Py_DECREF(exc);
    return r;
}

static PyObject *drv_close(PyObject *op, PyObject *Py_UNUSED(a))
{
    DriverObject *d = (DriverObject *)op;
    if (d->coro && !d->running) {
        PyObject *r = PyObject_CallMethod(d->coro, "close", NULL);
        Py_XDECREF(r);
        PyErr_Clear();
    }
    if (!d->running)
        drv_release(d);
    Py_RETURN_NONE;
}

static PyObject *drv_await(PyObject *op)
{
    return Py_NewRef(op);
}

/* ---- the park: the Future protocol the Task's step uses ---- */

static PyObject *drv_get_loop(PyObject *op, PyObject *Py_UNUSED(a))
{
    return Py_NewRef(((DriverObject *)op)->loop);
}

/* add_done_callback(fn, *, context=None): called by the Task's step on every
 * park, hence parsed by hand (vectorcall). */
static PyObject *drv_add_done_callback(PyObject *op, PyObject *const *args, Py_ssize_t nargsf,
                                       PyObject *kwnames)
{
    DriverObject *d = (DriverObject *)op;
    PyObject *fn, *ctx;
    if (celeris_parse_done_callback(args, nargsf, kwnames, &fn, &ctx) < 0)
        return NULL;
    if (d->wakeup) {
        PyErr_SetString(PyExc_RuntimeError, "celeris Driver: one waiter only");
        return NULL;
    }
    d->wakeup = Py_NewRef(fn);
    d->wakeup_ctx = Py_XNewRef(ctx);
    Py_RETURN_NONE;
}

static PyObject *drv_remove_done_callback(PyObject *op, PyObject *fn)
{
    DriverObject *d = (DriverObject *)op;
    if (d->wakeup && d->wakeup == fn) {
        Py_CLEAR(d->wakeup);
        Py_CLEAR(d->wakeup_ctx);
        return PyLong_FromLong(1);
    }
    return PyLong_FromLong(0);
}

/* Wake the parked Task later (loop.call_soon), in the callback's context. */
static int drv_wake_soon(DriverObject *d)
{
    PyObject *cb = d->wakeup, *ctx = d->wakeup_ctx;
    d->wakeup = d->wakeup_ctx = NULL;
    if (!cb)
        return 0;
    PyObject *args = PyTuple_Pack(2, cb, (PyObject *)d);
    PyObject *kw = args && ctx ? Py_BuildValue("{sO}", "context", ctx) : NULL;
    PyObject *r = args && (kw || !ctx) ? PyObject_Call(d->call_soon, args, kw) : NULL;
    Py_XDECREF(args);
    Py_XDECREF(kw);
    Py_DECREF(cb);
    Py_XDECREF(ctx);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* cancel(msg=None): the Task's cancel() passes its message on. */
static PyObject *drv_cancel(PyObject *op, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"msg", NULL};
    PyObject *msg = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:cancel", kwlist, &msg))
        return NULL;
    DriverObject *d = (DriverObject *)op;
    if (d->eager) {
        /* Task.cancel() while the eager step runs (the Task is parked on this
         * Driver): accepted here and delivered after the step -- to what the
         * step awaits (drv_eager), else at its next await, as asyncio does
         * for a running Task (drv_result raises CancelledError). */
        d->cancelled = 1;
        Py_XSETREF(d->cancel_msg, msg != Py_None ? Py_NewRef(msg) : NULL);
        Py_RETURN_TRUE;
    }
    if (d->coro || !d->wakeup)
        Py_RETURN_FALSE;
    d->cancelled = 1;
    Py_XSETREF(d->cancel_msg, msg != Py_None ? Py_NewRef(msg) : NULL);
    if (drv_wake_soon(d) < 0)
        return NULL;
    Py_RETURN_TRUE;
}

static PyObject *drv_result(PyObject *op, PyObject *Py_UNUSED(a))
{
    DriverObject *d = (DriverObject *)op;
    if (d->cancelled) {
        d->cancelled = 0;
        PyObject *msg = d->cancel_msg;
        d->cancel_msg = NULL;
        PyObject *mod = PyImport_ImportModule("asyncio");
        PyObject *ce = mod ? PyObject_GetAttrString(mod, "CancelledError") : NULL;
        Py_XDECREF(mod);
        if (ce) {
            if (msg)
                PyErr_SetObject(ce, msg);
            else
                PyErr_SetNone(ce);
            Py_DECREF(ce);
        }
        Py_XDECREF(msg);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *drv_done(PyObject *op, PyObject *Py_UNUSED(a))
{
    (void)op;
    Py_RETURN_FALSE;
}

static PyObject *drv_get_blocking(PyObject *op, void *Py_UNUSED(c))
{
    return PyBool_FromLong(((DriverObject *)op)->blocking);
}

static int drv_set_blocking(PyObject *op, PyObject *v, void *Py_UNUSED(c))
{
    int b = v ? PyObject_IsTrue(v) : 0;
    if (b < 0)
        return -1;
    ((DriverObject *)op)->blocking = b;
    return 0;
}

static int drv_traverse(PyObject *op, visitproc visit, void *arg)
{
    DriverObject *d = (DriverObject *)op;
    Py_VISIT(d->loop);
    Py_VISIT(d->call_soon);
    Py_VISIT(d->coro);
    Py_VISIT(d->ctx);
    Py_VISIT(d->task);
    Py_VISIT(d->wakeup);
    Py_VISIT(d->wakeup_ctx);
    Py_VISIT(d->pending);
    Py_VISIT(d->pending_err);
    Py_VISIT(d->cancel_msg);
    Py_VISIT(Py_TYPE(op));
    return 0;
}

static int drv_clear(PyObject *op)
{
    DriverObject *d = (DriverObject *)op;
    drv_release(d);
    Py_CLEAR(d->loop);
    Py_CLEAR(d->call_soon);
    return 0;
}

static void drv_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    drv_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef drv_methods[] = {
    {"send", drv_send, METH_O, NULL},
    {"throw", drv_throw, METH_VARARGS, NULL},
    {"close", drv_close, METH_NOARGS, NULL},
    {"get_loop", drv_get_loop, METH_NOARGS, NULL},
    {"add_done_callback", (PyCFunction)(void (*)(void))drv_add_done_callback, METH_FASTCALL | METH_KEYWORDS, NULL},
    {"remove_done_callback", drv_remove_done_callback, METH_O, NULL},
    {"cancel", (PyCFunction)(void (*)(void))drv_cancel, METH_VARARGS | METH_KEYWORDS, NULL},
    {"result", drv_result, METH_NOARGS, NULL},
    {"done", drv_done, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef drv_getset[] = {
    {"_asyncio_future_blocking", drv_get_blocking, drv_set_blocking, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot drv_slots[] = {
    {Py_am_await, drv_await},
    {Py_tp_iter, drv_await},
    {Py_tp_iternext, drv_next},
    {Py_tp_methods, drv_methods},
    {Py_tp_getset, drv_getset},
    {Py_tp_traverse, drv_traverse},
    {Py_tp_clear, drv_clear},
    {Py_tp_dealloc, drv_dealloc},
    {Py_tp_doc, "Runs a keep-alive connection's requests in one asyncio Task (internal)."},
    {0, NULL},
};

PyType_Spec celeris_driver_spec = {
    .name = "celeris._celeris.Driver",
    .basicsize = sizeof(DriverObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = drv_slots,
};

/* ---- the server side ---- */

/* Track `task` as the Task running cy's app (unless cy finished already). */
static void track(CycleObject *cy, PyObject *task)
{
    if (cy->live == 0) {
        cy->task = Py_NewRef(task);
        celeris_cycle_link(cy);
    }
}

/* The eager first step of a request handed to an idle (parked) Driver: the
 * request coroutine is advanced here, inside server.poll()/run_pending(),
 * with the Driver's Task entered as the loop's current task (as the Task's
 * own step would: asyncio.current_task(), sniffio and anyio see it) and in
 * the request's Context -- without waking the Task.  A request that finishes
 * without suspending (most native requests) never costs a Task step: the
 * Task stays parked on the Driver with its wake-up callback.
 *
 * With `first`, first->step runs in place of the send (celeris_drive_first).
 *
 * Returns 1 when the Task must be woken now (the caller calls its callback):
 * the coroutine yielded (kept in d->pending: the Task's step hands it to the
 * Task, which then waits on it as if the coroutine had yielded it in that
 * step), it raised a BaseException (d->pending_err: the Task ends with it),
 * the Task was cancelled during the step (drv_cancel accepted it), the
 * connection closed meanwhile, or the current task could not be entered
 * (then nothing ran: the Task's step runs the request as before).  Returns 0
 * when the request finished (its coroutine and Context released); -1, with
 * `first` only, when the task could not be entered (nothing ran: the caller
 * takes d->coro and d->ctx back).  Never leaves an exception set.
 *
 * Entering and leaving the current task is ~640 instructions of asyncio's
 * per request: when the request finished and c has more input buffered (a
 * pipelined request), the Task is left current as self->held_task, and the
 * next eager step of the same Task skips both; whatever else would step,
 * enter or create a Task first calls celeris_release_held(), and so do
 * poll()/run_pending() before they return to the loop. */
static int drv_eager(ServerObject *self, DriverObject *d, PyObject *task, cel_conn *c,
                     const celeris_first *first)
{
    PyObject *args[2] = {self->loop, task};
    PyObject *r;
    if (self->held_task == task) {
        /* Still current since this connection's previous request. */
        Py_CLEAR(self->held_task);
        self->held_conn = NULL;
    } else {
        celeris_release_held(self);
        if (!(r = PyObject_Vectorcall(self->enter_task, args, 2, NULL))) {
            PyErr_Clear();
            return first ? -1 : 1;
        }
        Py_DECREF(r);
    }
    PyObject *result = NULL, *err = NULL;
    PySendResult st = PYGEN_ERROR;
    d->running = d->eager = 1;
    self->eager_depth++;
    if (PyContext_Enter(d->ctx) == 0) {
        if (first) {
            /* the caller's step in place of the send; d->coro becomes what
             * it hands on (the Task's coroutine from now on), or nothing */
            PyObject *next = NULL;
            st = first->step(first->arg, d->coro, task, &result, &next);
            Py_XSETREF(d->coro, next);
        } else {
            st = PyIter_Send(d->coro, Py_None, &result);
        }
        if (st == PYGEN_ERROR)
            err = PyErr_GetRaisedException_compat();
        if (PyContext_Exit(d->ctx) < 0)
            PyErr_Clear();
    } else {
        err = PyErr_GetRaisedException_compat();
    }
    self->eager_depth--;
    d->running = d->eager = 0;
    if (st == PYGEN_RETURN && !d->cancelled && !d->closing && c->fd >= 0 && c->in.len > 0) {
        /* Finished, and the client has sent more: most likely the next
         * pipelined request, which this same Task runs next -- it stays
         * current until then (or until celeris_release_held()). */
        self->held_task = Py_NewRef(task);
        self->held_conn = c;
    } else {
        if (!(r = PyObject_Vectorcall(self->leave_task, args, 2, NULL)))
            PyErr_WriteUnraisable(self->leave_task);    /* the app swapped the current task */
        Py_XDECREF(r);
    }
    if (st == PYGEN_NEXT) {
        if (d->cancelled && result != Py_None) {
            /* Cancelled during the step, which then awaited `result`: as
             * Task.__step does with _must_cancel, cancel what it awaits; if
             * that takes it, the Task just waits on it (its result() raises
             * into the request at that await) and the park is not cancelled. */
            PyObject *msg = d->cancel_msg ? d->cancel_msg : Py_None;
            PyObject *r = PyObject_CallMethod(result, "cancel", "O", msg);
            if (r == Py_True) {
                d->cancelled = 0;
                Py_CLEAR(d->cancel_msg);
            }
            Py_XDECREF(r);
            PyErr_Clear();
        }
        d->pending = result;
        d->has_pending = 1;
        return 1;
    }
    Py_XDECREF(result);
    Py_CLEAR(d->coro);
    Py_CLEAR(d->ctx);
    if (err) {
        if (!PyObject_TypeCheck(err, (PyTypeObject *)PyExc_Exception)) {
            d->pending_err = err;   /* cancellation, KeyboardInterrupt...: as drv_step */
            return 1;
        }
        PyErr_SetRaisedException_compat(err);
        PyErr_WriteUnraisable((PyObject *)d);
    }
    return d->cancelled || d->closing;
}

void celeris_drive_track(CycleObject *cy, PyObject *task)
{
    track(cy, task);
}

/* Whether c's Driver is idle and its request's first step may run here:
 * from the loop's callbacks, not inside another Driver's eager step (its
 * Task is current there, so this connection's Task could not be stepped). */
static int driver_idle(ServerObject *self, cel_conn *c)
{
    DriverObject *d = c->driver;
    return self->drivers && self->in_loop_callback && !self->eager_depth && c->fd >= 0
           && d && !d->dead && !d->coro && !d->running && d->wakeup && !d->closing;
}

/* Hand `coro` (borrowed) to c's idle Driver and run its first step now
 * (drv_eager; `first` as there), tracked on cy when cy is given.  Returns 0,
 * -1 with an exception (nothing ran), or, with `first`, 1 when nothing ran
 * (the task could not be entered; no exception). */
static int drive_idle(ServerObject *self, cel_conn *c, CycleObject *cy, PyObject *coro,
                      const celeris_first *first)
{
    DriverObject *d = c->driver;
    PyObject *ctx = PyContext_CopyCurrent();
    if (!ctx)
        return -1;
    d->coro = Py_NewRef(coro);
    d->ctx = ctx;
    Py_INCREF(d);               /* the step may close the connection (c->driver) */
    PyObject *task = Py_NewRef(d->task);
    if (cy)
        track(cy, task);
    int rc = !self->enter_task ? 1 : drv_eager(self, d, task, c, first);
    if (rc < 0) {
        Py_CLEAR(d->coro);
        Py_CLEAR(d->ctx);
    } else if (rc) {
        PyObject *cb = d->wakeup;
        d->wakeup = NULL;
        Py_CLEAR(d->wakeup_ctx);
        if (cb) {
            PyObject *r = PyObject_CallOneArg(cb, (PyObject *)d);
            if (!r)
                PyErr_WriteUnraisable((PyObject *)d);
            Py_XDECREF(r);
            Py_DECREF(cb);
        }
    }
    Py_DECREF(task);
    Py_DECREF(d);
    return rc < 0 ? 1 : 0;
}

int celeris_drive_first(ServerObject *self, cel_conn *c, PyObject *coro, const celeris_first *first)
{
    if (!self->enter_task || !driver_idle(self, c))
        return 0;
    int rc = drive_idle(self, c, NULL, coro, first);
    if (rc < 0)
        PyErr_Clear();          /* no Context copy: the ordinary path tries (and reports) */
    return rc == 0;
}

int celeris_drive(ServerObject *self, cel_conn *c, CycleObject *cy, PyObject *coro)
{
    DriverObject *d = c->driver;
    /* (not inside another Driver's eager step: its Task is current there, so
     * this connection's Task could not be stepped: a Task of its own) */
    if (self->drivers && self->in_loop_callback && !self->eager_depth && c->fd >= 0) {
        if (driver_idle(self, c))
            return drive_idle(self, c, cy, coro, NULL);     /* (never 1 without `first`) */
        if (!d || d->dead) {
            /* The connection's first request (or its Driver ended): a new
             * Driver, started as an ordinary Task with the request. */
            celeris_release_held(self);
            DriverObject *nd = PyObject_GC_New(DriverObject, Driver_Type(self->st));
            if (!nd)
                return -1;
            nd->loop = Py_NewRef(self->loop);
            nd->call_soon = Py_NewRef(self->call_soon);
            nd->coro = Py_NewRef(coro);
            nd->ctx = nd->task = nd->wakeup = nd->wakeup_ctx = NULL;
            nd->blocking = nd->running = nd->closing = nd->cancelled = nd->dead = 0;
            nd->eager = nd->has_pending = 0;
            nd->pending = nd->pending_err = nd->cancel_msg = NULL;
            PyObject_GC_Track(nd);
            if (!(nd->ctx = PyContext_CopyCurrent())) {
                Py_DECREF(nd);
                return -1;
            }
            PyObject *task = PyObject_CallOneArg(self->create_task, (PyObject *)nd);
            if (!task) {
                Py_CLEAR(nd->coro);
                Py_DECREF(nd);
                return -1;
            }
            nd->task = Py_NewRef(task);
            Py_XSETREF(c->driver, (PyObject *)nd);
            track(cy, task);
            Py_DECREF(task);
            return 0;
        }
    }
    /* Busy Driver, or not called from the loop's callbacks: a Task of its own
     * (created with no Task current: an eager task factory may step it). */
    celeris_release_held(self);
    PyObject *task = PyObject_CallOneArg(self->create_task, coro);
    if (!task)
        return -1;
    track(cy, task);
    Py_DECREF(task);
    return 0;
}

void celeris_driver_close(ServerObject *self, cel_conn *c)
{
    DriverObject *d = c->driver;
    if (!d)
        return;
    c->driver = NULL;
    d->closing = 1;
    if (!d->coro && !d->running && d->wakeup) {
        /* Parked: let its Task end now (or on the next loop turn). */
        PyObject *exc = PyErr_GetRaisedException_compat();
        if (self->in_loop_callback && !self->eager_depth) {   /* no Task is current */
            celeris_release_held(self);
            PyObject *cb = d->wakeup;
            d->wakeup = NULL;
            Py_CLEAR(d->wakeup_ctx);
            PyObject *r = PyObject_CallOneArg(cb, (PyObject *)d);
            Py_DECREF(cb);
            Py_XDECREF(r);
        } else if (drv_wake_soon(d) < 0) {
            drv_release(d);     /* no loop any more: nothing will run the Task again */
        }
        PyErr_Clear();
        PyErr_SetRaisedException_compat(exc);
    }
    Py_DECREF(d);
}

void celeris_release_held(ServerObject *self)
{
    PyObject *task = self->held_task;
    if (!task)
        return;
    self->held_task = NULL;
    self->held_conn = NULL;
    PyObject *exc = PyErr_GetRaisedException_compat();
    PyObject *args[2] = {self->loop, task};
    PyObject *r = PyObject_Vectorcall(self->leave_task, args, 2, NULL);
    if (!r)
        PyErr_WriteUnraisable(self->leave_task);    /* the app swapped the current task */
    Py_XDECREF(r);
    Py_DECREF(task);
    PyErr_SetRaisedException_compat(exc);
}
