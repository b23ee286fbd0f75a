/* _celeris.WsMethod: WebSocket.receive_text/receive_bytes/send_text/send_bytes
 * of the session class of native/ws_session.py, in C.
 *
 * Why: per echoed message the two Python coroutines (creation, frames, the
 * extra await level on every step, ~80 bytecodes) cost ~4k of ~15.6k
 * instructions (callgrind, 1 connection).
 *
 * What: a WsMethod is a method descriptor (Py_TPFLAGS_METHOD_DESCRIPTOR, so
 * `ws.receive_text()` calls it with ws first and no bound method); a call
 * checks the arguments as Python would for `async def receive_text(self)` /
 * `async def send_text(self, data)` and returns a WsOp, a coroutine-like
 * awaitable (send/throw/close/__await__, registered as a
 * collections.abc.Coroutine by ws_session.py so asyncio accepts it) that
 * runs ws_session.py's Python code, step for step, when awaited:
 *
 *   receive_text:  if self.application_state != CONNECTED:
 *                      raise WebSocketDisconnected('WebSocket is not connected. Need to call "accept" first.')
 *                  if self.client_state == CONNECTED:          # fast: receive()'s branch inline
 *                      message = await self._receive()
 *                      message_type = message["type"]
 *                      if message_type not in {"websocket.receive", "websocket.disconnect"}:
 *                          raise RuntimeError(f'Expected ASGI message "websocket.receive" or '
 *                                             f'"websocket.disconnect", but got {message_type!r}')
 *                      if message_type == "websocket.disconnect":
 *                          self.client_state = DISCONNECTED
 *                  else:
 *                      message = await self.receive()
 *                  if message["type"] == "websocket.disconnect":
 *                      raise WebSocketDisconnect(message["code"], message.get("reason"))
 *                  return message["text"]                      # "bytes" for receive_bytes
 *   send_text:     message = {"type": "websocket.send", "text": data}   # "bytes"
 *                  if self.application_state == CONNECTED:
 *                      try:
 *                          await self._send(message)
 *                      except OSError:
 *                          self.application_state = DISCONNECTED
 *                          raise WebSocketDisconnect(code=1006)
 *                  else:
 *                      await self.send(message)
 *
 * Nothing runs before the first send() (as a coroutine); exceptions thrown
 * in while suspended go to the awaited object's throw() and then through the
 * code above (an OSError into send_text's try becomes the 1006), close()
 * closes the awaited object first, a WsOp freed while suspended is closed
 * (as a coroutine is finalized), a finished one refuses to run again.
 * Differences from a Python coroutine, none of which asyncio or Starlette
 * looks at: no frame (tracebacks lack these methods' lines), no "never
 * awaited" warning, inspect.iscoroutine()/iscoroutinefunction() are False.
 *
 * Ownership: a WsMethod holds its configuration (the CONNECTED and
 * DISCONNECTED states, the two exception classes, interned strings, the
 * message template); a WsOp holds its method, the WebSocket, the data (send)
 * and the object it awaits (strong, while suspended). */
#include "binding.h"

#include <structmember.h>

enum { K_RECV_TEXT, K_RECV_BYTES, K_SEND_TEXT, K_SEND_BYTES };
enum { OP_NEW, OP_AWAIT, OP_DONE };

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    int kind;
    PyObject *name;                 /* "receive_text", ...: for argument errors */
    PyObject *connected, *disconnected, *WebSocketDisconnect, *WebSocketDisconnected;
    PyObject *s_type, *s_data, *s_code, *s_reason, *s_get, *s_client_state, *s_app_state,
             *s_receive_attr, *s_send_attr, *s_receive, *s_send, *s_disconnect, *s_data_kw;
    PyObject *receive_types;        /* frozenset({"websocket.receive", "websocket.disconnect"}) */
    PyObject *tmpl;                 /* {"type": "websocket.send", "text"/"bytes": None} */
} WsMethodObject;

typedef struct {
    PyObject_HEAD
    WsMethodObject *m;              /* strong */
    PyObject *ws;                   /* strong */
    PyObject *data;                 /* send: the data (strong) */
    PyObject *inner;                /* the awaited iterator while OP_AWAIT (strong) */
    int state;
    int fast;                       /* the inline branch (receive: client CONNECTED; send: app CONNECTED) */
    int running;
} WsOpObject;

static PyTypeObject *WsOp_Type;     /* set by ws_methods_add_types; the module keeps it */

static int is_send(const WsMethodObject *m) { return m->kind >= K_SEND_TEXT; }

/* ---- the awaitable ---- */

/* The iterator `await obj` would use; new reference, NULL with an exception
 * set (the TypeError `await` raises for a non-awaitable). */
static PyObject *awaitable_iter(PyObject *obj)
{
    if (PyCoro_CheckExact(obj))
        return Py_NewRef(obj);
    PyAsyncMethods *am = Py_TYPE(obj)->tp_as_async;
    if (am && am->am_await) {
        PyObject *it = am->am_await(obj);
        if (it && (PyCoro_CheckExact(it) || !PyIter_Check(it))) {
            PyErr_Format(PyExc_TypeError, PyCoro_CheckExact(it)
                         ? "__await__() returned a coroutine"
                         : "__await__() returned non-iterator of type '%.100s'",
                         Py_TYPE(it)->tp_name);
            Py_CLEAR(it);
        }
        return it;
    }
    if (PyGen_CheckExact(obj)) {        /* a @types.coroutine generator */
        PyObject *code = PyObject_GetAttrString(obj, "gi_code");
        int flags = code && PyCode_Check(code) ? ((PyCodeObject *)code)->co_flags : 0;
        Py_XDECREF(code);
        if (flags & CO_ITERABLE_COROUTINE)
            return Py_NewRef(obj);
        PyErr_Clear();
    }
    PyErr_Format(PyExc_TypeError, "object %.100s can't be used in 'await' expression",
                 Py_TYPE(obj)->tp_name);
    return NULL;
}

/* `self.application_state == CONNECTED` (op Py_EQ) or `!=` (Py_NE): 1/0, -1 on
 * error.  The attribute comes from the instance __dict__ when it is there
 * (neither Starlette's WebSocket, which ws_session.py checks by its source,
 * nor the subclass defines a descriptor of these names, so the generic lookup
 * would find the same entry), else from the generic lookup.  A value that is
 * the state itself, of a type comparing by identity (object's richcompare, as
 * Enum members), is answered without the comparison call. */
static int state_cmp(PyObject *ws, PyObject *attr, PyObject *state, int op)
{
    PyObject *v = NULL;
    PyObject *dict = PyObject_GenericGetDict(ws, NULL);
    if (dict) {
        v = PyDict_GetItemWithError(dict, attr);
        Py_XINCREF(v);
        Py_DECREF(dict);
        if (!v && PyErr_Occurred())
            return -1;
    } else {
        PyErr_Clear();
    }
    if (!v && !(v = PyObject_GetAttr(ws, attr)))
        return -1;
    if (v == state && Py_TYPE(v)->tp_richcompare == PyBaseObject_Type.tp_richcompare) {
        Py_DECREF(v);
        return op == Py_EQ;
    }
    PyObject *r = PyObject_RichCompare(v, state, op);
    Py_DECREF(v);
    if (!r)
        return -1;
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

/* `a == b` as an if-condition: 1/0, -1 on error (two exact strs: by value, as
 * str.__eq__). */
static int eq(PyObject *a, PyObject *b)
{
    if (PyUnicode_CheckExact(a) && PyUnicode_CheckExact(b))
        return celeris_str_equal(a, b);
    PyObject *r = PyObject_RichCompare(a, b, Py_EQ);
    if (!r)
        return -1;
    int t = PyObject_IsTrue(r);
    Py_DECREF(r);
    return t;
}

static PyObject *raise_new(PyObject *cls, const char *msg)
{
    PyErr_SetString(cls, msg);
    return NULL;
}

/* send_text's `except OSError:` around the await: with an OSError set,
 * `self.application_state = DISCONNECTED; raise WebSocketDisconnect(code=1006)`
 * with the OSError as the handled exception (so it becomes the context, as
 * in Python); any other exception is left as it is.  Always returns -1. */
static int map_oserror(WsOpObject *o)
{
    if (!o->fast || !is_send(o->m) || !PyErr_ExceptionMatches(PyExc_OSError))
        return -1;
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb)
        PyException_SetTraceback(v, tb);
    PyObject *ot, *ov, *otb;
    PyErr_GetExcInfo(&ot, &ov, &otb);
    PyErr_SetExcInfo(t, v, tb);                     /* steals; the handler's exception */
    WsMethodObject *m = o->m;
    if (PyObject_SetAttr(o->ws, m->s_app_state, m->disconnected) == 0) {
        PyObject *code = PyLong_FromLong(1006);
        PyObject *kwnames = code ? PyTuple_Pack(1, m->s_code) : NULL;
        PyObject *exc = kwnames ? PyObject_Vectorcall(m->WebSocketDisconnect, &code, 0, kwnames) : NULL;
        if (exc) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        Py_XDECREF(kwnames);
        Py_XDECREF(code);
    }
    PyErr_SetExcInfo(ot, ov, otb);                  /* steals: back to the outer one */
    return -1;
}

/* The step's start: the checks and the call whose result is awaited.  0 with
 * o->inner set, -1 with an exception set. */
static int op_start(WsOpObject *o)
{
    WsMethodObject *m = o->m;
    PyObject *target;
    if (!is_send(m)) {
        int ne = state_cmp(o->ws, m->s_app_state, m->connected, Py_NE);
        if (ne < 0)
            return -1;
        if (ne) {
            raise_new(m->WebSocketDisconnected, "WebSocket is not connected. Need to call \"accept\" first.");
            return -1;
        }
        int c = state_cmp(o->ws, m->s_client_state, m->connected, Py_EQ);
        if (c < 0)
            return -1;
        o->fast = c;
        target = PyObject_CallMethodNoArgs(o->ws, c ? m->s_receive_attr : m->s_receive);
        if (!target)
            return -1;
    } else {
        PyObject *message = PyDict_Copy(m->tmpl);
        if (!message || PyDict_SetItem(message, m->s_data, o->data) < 0) {
            Py_XDECREF(message);
            return -1;
        }
        int c = state_cmp(o->ws, m->s_app_state, m->connected, Py_EQ);
        if (c < 0) {
            Py_DECREF(message);
            return -1;
        }
        o->fast = c;
        target = PyObject_CallMethodOneArg(o->ws, c ? m->s_send_attr : m->s_send, message);
        Py_DECREF(message);
        if (!target)
            return map_oserror(o);
    }
    o->inner = awaitable_iter(target);
    Py_DECREF(target);
    if (!o->inner)
        return map_oserror(o);
    return 0;
}

/* message[key]: an exact dict read directly (KeyError(key) when missing, as
 * dict.__getitem__), anything else through PyObject_GetItem.  New reference. */
static PyObject *get_item(PyObject *message, PyObject *key)
{
    if (!PyDict_CheckExact(message))
        return PyObject_GetItem(message, key);
    PyObject *v = PyDict_GetItemWithError(message, key);
    if (v)
        return Py_NewRef(v);
    if (!PyErr_Occurred()) {
        PyObject *k = PyTuple_Pack(1, key);
        if (k) {
            PyErr_SetObject(PyExc_KeyError, k);
            Py_DECREF(k);
        }
    }
    return NULL;
}

/* After the awaited object returned `message` (receive): the rest of the code
 * above.  New reference (the method's result), NULL with an exception set. */
static PyObject *op_finish(WsOpObject *o, PyObject *message)
{
    WsMethodObject *m = o->m;
    if (is_send(m))
        Py_RETURN_NONE;
    if (o->fast) {
        PyObject *t = get_item(message, m->s_type);
        if (!t)
            return NULL;
        int in = PySet_Contains(m->receive_types, t);
        if (in <= 0) {
            if (in == 0)
                PyErr_Format(PyExc_RuntimeError, "Expected ASGI message \"websocket.receive\" or "
                             "\"websocket.disconnect\", but got %R", t);
            Py_DECREF(t);
            return NULL;
        }
        int d = eq(t, m->s_disconnect);
        Py_DECREF(t);
        if (d < 0 || (d && PyObject_SetAttr(o->ws, m->s_client_state, m->disconnected) < 0))
            return NULL;
    }
    PyObject *t = get_item(message, m->s_type);
    if (!t)
        return NULL;
    int d = eq(t, m->s_disconnect);
    Py_DECREF(t);
    if (d < 0)
        return NULL;
    if (d) {
        PyObject *code = get_item(message, m->s_code);
        if (!code)
            return NULL;
        PyObject *reason;
        if (PyDict_CheckExact(message)) {
            reason = PyDict_GetItemWithError(message, m->s_reason);
            reason = reason ? Py_NewRef(reason) : PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
        } else {
            reason = PyObject_CallMethodOneArg(message, m->s_get, m->s_reason);
        }
        if (!reason) {
            Py_DECREF(code);
            return NULL;
        }
        PyObject *exc = PyObject_CallFunctionObjArgs(m->WebSocketDisconnect, code, reason, NULL);
        Py_DECREF(code);
        Py_DECREF(reason);
        if (exc) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    return get_item(message, m->s_data);
}

/* What the awaited object's step (send/throw) gave: sr with r. */
static PySendResult op_after(WsOpObject *o, PySendResult sr, PyObject *r, PyObject **result)
{
    if (sr == PYGEN_NEXT) {
        *result = r;
        return PYGEN_NEXT;
    }
    Py_CLEAR(o->inner);
    o->state = OP_DONE;
    if (sr == PYGEN_ERROR) {
        map_oserror(o);
        *result = NULL;
        return PYGEN_ERROR;
    }
    PyObject *v = op_finish(o, r);
    Py_DECREF(r);
    *result = v;
    return v ? PYGEN_RETURN : PYGEN_ERROR;
}

static PySendResult op_am_send(PyObject *self, PyObject *arg, PyObject **result)
{
    WsOpObject *o = (WsOpObject *)self;
    *result = NULL;
    if (o->running) {
        PyErr_SetString(PyExc_ValueError, "coroutine already executing");
        return PYGEN_ERROR;
    }
    if (o->state == OP_DONE) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        return PYGEN_ERROR;
    }
    if (o->state == OP_NEW) {
        if (arg != Py_None) {
            PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
            return PYGEN_ERROR;
        }
        o->running = 1;
        int rc = op_start(o);
        o->running = 0;
        if (rc < 0) {
            o->state = OP_DONE;
            return PYGEN_ERROR;
        }
        o->state = OP_AWAIT;
    }
    PyObject *r = NULL;
    o->running = 1;
    PySendResult sr = PyIter_Send(o->inner, arg, &r);
    o->running = 0;
    return op_after(o, sr, r, result);
}

/* PYGEN_RETURN as a Python-level return: StopIteration(value) (none for None). */
static PyObject *return_as_stop(PySendResult sr, PyObject *r)
{
    if (sr == PYGEN_NEXT)
        return r;
    if (sr == PYGEN_RETURN) {
        if (r != Py_None) {
            PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, r);
            if (e) {
                PyErr_SetObject(PyExc_StopIteration, e);
                Py_DECREF(e);
            }
        } else {
            PyErr_SetNone(PyExc_StopIteration);
        }
        Py_DECREF(r);
    }
    return NULL;
}

static PyObject *op_iternext(PyObject *self)
{
    PyObject *r;
    PySendResult sr = op_am_send(self, Py_None, &r);
    if (sr == PYGEN_RETURN && r == Py_None) {
        Py_DECREF(r);
        return NULL;                /* exhausted, no StopIteration needed */
    }
    return return_as_stop(sr, r);
}

static PyObject *op_send(PyObject *self, PyObject *arg)
{
    PyObject *r;
    PySendResult sr = op_am_send(self, arg, &r);
    return return_as_stop(sr, r);
}

/* getattr(obj, name, None) as *out (new reference or NULL): 0, or -1 with an
 * error other than AttributeError set. */
static int lookup_attr(PyObject *obj, const char *name, PyObject **out)
{
    *out = PyObject_GetAttrString(obj, name);
    if (*out)
        return 0;
    if (!PyErr_ExceptionMatches(PyExc_AttributeError))
        return -1;
    PyErr_Clear();
    return 0;
}

/* close() of the awaited object, if it has one: 0, or -1 with its error set. */
static int close_inner(PyObject *inner)
{
    PyObject *meth;
    if (lookup_attr(inner, "close", &meth) < 0)
        return -1;
    if (!meth)
        return 0;
    PyObject *r = PyObject_CallNoArgs(meth);
    Py_DECREF(meth);
    if (!r)
        return -1;
    Py_DECREF(r);
    return 0;
}

static PyObject *op_throw(PyObject *self, PyObject *args)
{
    WsOpObject *o = (WsOpObject *)self;
    PyObject *typ, *val = NULL, *tb = NULL;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb))
        return NULL;
    if (o->running) {
        PyErr_SetString(PyExc_ValueError, "coroutine already executing");
        return NULL;
    }
    if (o->state == OP_AWAIT) {
        PyObject *inner = o->inner;
        if (PyErr_GivenExceptionMatches(typ, PyExc_GeneratorExit)) {
            /* as a coroutine: close what it awaits, then GeneratorExit at the await */
            o->running = 1;
            int rc = close_inner(inner);
            o->running = 0;
            Py_CLEAR(o->inner);
            if (rc < 0) {
                o->state = OP_DONE;
                map_oserror(o);
                return NULL;
            }
            /* fall through: raise the given GeneratorExit at the await */
        } else {
            PyObject *meth;
            if (lookup_attr(inner, "throw", &meth) < 0) {
                Py_CLEAR(o->inner);
                o->state = OP_DONE;
                return NULL;
            }
            if (meth) {
                o->running = 1;
                PyObject *r = PyObject_Call(meth, args, NULL);
                o->running = 0;
                Py_DECREF(meth);
                PySendResult sr;
                if (r) {
                    sr = PYGEN_NEXT;
                } else if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
                    PyObject *t, *v, *etb;
                    PyErr_Fetch(&t, &v, &etb);
                    PyErr_NormalizeException(&t, &v, &etb);
                    r = v ? PyObject_GetAttrString(v, "value") : Py_NewRef(Py_None);
                    Py_XDECREF(t);
                    Py_XDECREF(v);
                    Py_XDECREF(etb);
                    sr = r ? PYGEN_RETURN : PYGEN_ERROR;
                } else {
                    sr = PYGEN_ERROR;
                }
                PyObject *res;
                sr = op_after(o, sr, r, &res);
                return return_as_stop(sr, res);
            }
            /* no throw(): raised at the await itself (through send's except), below */
        }
    }
    /* Raise typ(val) with tb in the code, as generator.throw() does, with its
     * checks in its order: at the await (send's except applies) when
     * suspended; at the start when not started (a failed check leaves it
     * unstarted); finished or closed: RuntimeError, as an exhausted coroutine. */
    int at_await = o->state == OP_AWAIT;
    if (at_await) {
        /* Starlette's methods await a coroutine (receive()/send()) that awaits
         * this object: an argument error comes out of that coroutine's throw()
         * and is raised at the method's await, which ends it */
        Py_CLEAR(o->inner);
        o->state = OP_DONE;
    }
    if (tb == Py_None)
        tb = NULL;
    else if (tb && !PyTraceBack_Check(tb)) {
        PyErr_SetString(PyExc_TypeError, "throw() third argument must be a traceback object");
        return NULL;
    }
    if (PyExceptionInstance_Check(typ)) {
        if (val && val != Py_None) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            return NULL;
        }
        val = typ;
        typ = PyExceptionInstance_Class(typ);
    } else if (!PyExceptionClass_Check(typ)) {
        PyErr_Format(PyExc_TypeError, "exceptions must be classes or instances deriving from "
                     "BaseException, not %s", Py_TYPE(typ)->tp_name);
        return NULL;
    }
    if (o->state == OP_DONE && !at_await) {     /* finished or closed: as an exhausted coroutine */
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
        return NULL;
    }
    Py_CLEAR(o->inner);
    o->state = OP_DONE;
    Py_INCREF(typ);
    Py_XINCREF(val);
    Py_XINCREF(tb);
    PyErr_Restore(typ, val, tb);
    PyObject *t2, *v2, *tb2;
    PyErr_Fetch(&t2, &v2, &tb2);
    PyErr_NormalizeException(&t2, &v2, &tb2);
    if (tb2)
        PyException_SetTraceback(v2, tb2);
    PyErr_Restore(t2, v2, tb2);
    if (at_await)
        map_oserror(o);
    return NULL;
}

static PyObject *op_close(PyObject *self, PyObject *Py_UNUSED(a))
{
    WsOpObject *o = (WsOpObject *)self;
    if (o->running) {
        PyErr_SetString(PyExc_ValueError, "coroutine already executing");
        return NULL;
    }
    if (o->state != OP_AWAIT) {
        o->state = OP_DONE;
        Py_RETURN_NONE;
    }
    o->running = 1;
    int rc = close_inner(o->inner);
    o->running = 0;
    Py_CLEAR(o->inner);
    o->state = OP_DONE;
    if (rc < 0) {
        /* the close error is raised at the await (GeneratorExit is not) */
        map_oserror(o);
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *op_await(PyObject *self)
{
    return Py_NewRef(self);
}

static void op_finalize(PyObject *self)
{
    WsOpObject *o = (WsOpObject *)self;
    if (o->state != OP_AWAIT)
        return;
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    PyObject *r = op_close(self, NULL);
    if (!r)
        PyErr_WriteUnraisable(self);
    Py_XDECREF(r);
    PyErr_Restore(t, v, tb);
}

static int op_traverse(PyObject *self, visitproc visit, void *arg)
{
    WsOpObject *o = (WsOpObject *)self;
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(o->m);
    Py_VISIT(o->ws);
    Py_VISIT(o->data);
    Py_VISIT(o->inner);
    return 0;
}

static int op_clear(PyObject *self)
{
    WsOpObject *o = (WsOpObject *)self;
    Py_CLEAR(o->m);
    Py_CLEAR(o->ws);
    Py_CLEAR(o->data);
    Py_CLEAR(o->inner);
    return 0;
}

static void op_dealloc(PyObject *self)
{
    if (PyObject_CallFinalizerFromDealloc(self) < 0)
        return;                     /* resurrected */
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    op_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *op_repr(PyObject *self)
{
    WsOpObject *o = (WsOpObject *)self;
    return PyUnicode_FromFormat("<WebSocket.%U awaitable at %p>", o->m->name, self);
}

static PyMethodDef op_methods[] = {
    {"send", op_send, METH_O, NULL},
    {"throw", op_throw, METH_VARARGS, NULL},
    {"close", op_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot op_slots[] = {
    {Py_am_await, op_await},
    {Py_am_send, op_am_send},
    {Py_tp_iter, op_await},
    {Py_tp_iternext, op_iternext},
    {Py_tp_methods, op_methods},
    {Py_tp_finalize, op_finalize},
    {Py_tp_traverse, op_traverse},
    {Py_tp_clear, op_clear},
    {Py_tp_dealloc, op_dealloc},
    {Py_tp_repr, op_repr},
    {Py_tp_doc, "What WebSocket.receive_text()/... return on a native session (internal)."},
    {0, NULL},
};

static PyType_Spec op_spec = {
    .name = "celeris._celeris.WsOp",
    .basicsize = sizeof(WsOpObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = op_slots,
};

/* ---- the method ---- */

/* The arguments of `async def name(self)` / `async def name(self, data)`,
 * bound as Python binds them, with Python's errors in Python's order (too
 * many positional, then each keyword: unknown / given twice, then missing).
 * vals[0] = self, vals[1] = data (borrowed); 0, or -1 with TypeError set. */
static int bind_args(WsMethodObject *m, PyObject *const *args, Py_ssize_t npos, PyObject *kwnames,
                     PyObject *vals[2])
{
    static const char *const names[2] = { "self", "data" };
    int nparams = is_send(m) ? 2 : 1;
    vals[0] = vals[1] = NULL;
    if (npos > nparams) {
        PyErr_Format(PyExc_TypeError, "WebSocket.%U() takes %d positional argument%s but %zd were given",
                     m->name, nparams, nparams == 1 ? "" : "s", npos);
        return -1;
    }
    for (Py_ssize_t i = 0; i < npos; i++)
        vals[i] = args[i];
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *k = PyTuple_GET_ITEM(kwnames, i);
        int which = -1;
        for (int j = 0; j < nparams; j++)
            if (PyUnicode_CompareWithASCIIString(k, names[j]) == 0)
                which = j;
        if (which < 0) {
            PyErr_Format(PyExc_TypeError, "WebSocket.%U() got an unexpected keyword argument '%S'",
                         m->name, k);
            return -1;
        }
        if (vals[which]) {
            PyErr_Format(PyExc_TypeError, "WebSocket.%U() got multiple values for argument '%s'",
                         m->name, names[which]);
            return -1;
        }
        vals[which] = args[npos + i];
    }
    if (!vals[0] && nparams == 2 && !vals[1]) {
        PyErr_Format(PyExc_TypeError,
                     "WebSocket.%U() missing 2 required positional arguments: 'self' and 'data'", m->name);
        return -1;
    }
    for (int j = 0; j < nparams; j++) {
        if (!vals[j]) {
            PyErr_Format(PyExc_TypeError, "WebSocket.%U() missing 1 required positional argument: '%s'",
                         m->name, names[j]);
            return -1;
        }
    }
    return 0;
}

static PyObject *method_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    WsMethodObject *m = (WsMethodObject *)op;
    PyObject *vals[2];
    if (bind_args(m, args, PyVectorcall_NARGS(nargsf), kwnames, vals) < 0)
        return NULL;
    PyObject *data = vals[1];
    WsOpObject *o = PyObject_GC_New(WsOpObject, WsOp_Type);
    if (!o)
        return NULL;
    o->m = (WsMethodObject *)Py_NewRef(op);
    o->ws = Py_NewRef(vals[0]);
    o->data = Py_XNewRef(data);
    o->inner = NULL;
    o->state = OP_NEW;
    o->fast = o->running = 0;
    PyObject_GC_Track(o);
    return (PyObject *)o;
}

static PyObject *method_get(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (!obj || obj == Py_None)
        return Py_NewRef(self);
    return PyMethod_New(self, obj);
}

static PyObject *intern(const char *s)
{
    return PyUnicode_InternFromString(s);
}

/* WsMethod(name, CONNECTED, DISCONNECTED, WebSocketDisconnect, WebSocketDisconnected) */
static PyObject *method_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "connected", "disconnected", "disconnect_exc",
                             "disconnected_exc", NULL};
    const char *name;
    PyObject *connected, *disconnected, *exc1, *exc2;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "sOOOO:WsMethod", kwlist, &name, &connected,
                                     &disconnected, &exc1, &exc2))
        return NULL;
    int kind;
    if (strcmp(name, "receive_text") == 0)
        kind = K_RECV_TEXT;
    else if (strcmp(name, "receive_bytes") == 0)
        kind = K_RECV_BYTES;
    else if (strcmp(name, "send_text") == 0)
        kind = K_SEND_TEXT;
    else if (strcmp(name, "send_bytes") == 0)
        kind = K_SEND_BYTES;
    else
        return PyErr_Format(PyExc_ValueError, "unknown WebSocket method %s", name);
    WsMethodObject *m = (WsMethodObject *)type->tp_alloc(type, 0);
    if (!m)
        return NULL;
    m->vectorcall = method_call;
    m->kind = kind;
    m->connected = Py_NewRef(connected);
    m->disconnected = Py_NewRef(disconnected);
    m->WebSocketDisconnect = Py_NewRef(exc1);
    m->WebSocketDisconnected = Py_NewRef(exc2);
    const char *data = (kind == K_RECV_TEXT || kind == K_SEND_TEXT) ? "text" : "bytes";
    PyObject *recv = intern("websocket.receive"), *send = intern("websocket.send");
    m->name = PyUnicode_FromString(name);
    m->s_type = intern("type");
    m->s_data = intern(data);
    m->s_code = intern("code");
    m->s_reason = intern("reason");
    m->s_get = intern("get");
    m->s_client_state = intern("client_state");
    m->s_app_state = intern("application_state");
    m->s_receive_attr = intern("_receive");
    m->s_send_attr = intern("_send");
    m->s_receive = intern("receive");
    m->s_send = intern("send");
    m->s_disconnect = intern("websocket.disconnect");
    m->s_data_kw = intern("data");
    m->receive_types = (recv && m->s_disconnect) ? PyFrozenSet_New(NULL) : NULL;
    if (m->receive_types && (PySet_Add(m->receive_types, recv) < 0
                             || PySet_Add(m->receive_types, m->s_disconnect) < 0))
        Py_CLEAR(m->receive_types);
    m->tmpl = (send && m->s_type && m->s_data)
        ? Py_BuildValue("{OOOO}", m->s_type, send, m->s_data, Py_None) : NULL;
    Py_XDECREF(recv);
    Py_XDECREF(send);
    if (!m->name || !m->s_type || !m->s_data || !m->s_code || !m->s_reason || !m->s_get
        || !m->s_client_state || !m->s_app_state || !m->s_receive_attr || !m->s_send_attr
        || !m->s_receive || !m->s_send || !m->s_disconnect || !m->s_data_kw || !m->receive_types
        || !m->tmpl) {
        Py_DECREF(m);
        return NULL;
    }
    return (PyObject *)m;
}

#define M_OBJECTS(m)                                                                     \
    &(m)->name, &(m)->connected, &(m)->disconnected, &(m)->WebSocketDisconnect,          \
    &(m)->WebSocketDisconnected, &(m)->s_type, &(m)->s_data, &(m)->s_code, &(m)->s_reason, \
    &(m)->s_get, &(m)->s_client_state, &(m)->s_app_state, &(m)->s_receive_attr,          \
    &(m)->s_send_attr, &(m)->s_receive, &(m)->s_send, &(m)->s_disconnect,                \
    &(m)->s_data_kw, &(m)->receive_types, &(m)->tmpl

static int method_traverse(PyObject *self, visitproc visit, void *arg)
{
    WsMethodObject *m = (WsMethodObject *)self;
    PyObject **all[] = { M_OBJECTS(m) };
    Py_VISIT(Py_TYPE(self));
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        Py_VISIT(*all[i]);
    return 0;
}

static int method_clear(PyObject *self)
{
    WsMethodObject *m = (WsMethodObject *)self;
    PyObject **all[] = { M_OBJECTS(m) };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        Py_CLEAR(*all[i]);
    return 0;
}

static void method_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    method_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *method_repr(PyObject *self)
{
    return PyUnicode_FromFormat("<WebSocket.%U (celeris)>", ((WsMethodObject *)self)->name);
}

static PyObject *method_get_name(PyObject *self, void *Py_UNUSED(c))
{
    return Py_NewRef(((WsMethodObject *)self)->name);
}

static PyMemberDef method_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(WsMethodObject, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef method_getset[] = {
    {"__name__", method_get_name, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot method_slots[] = {
    {Py_tp_new, method_new},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_descr_get, method_get},
    {Py_tp_members, method_members},
    {Py_tp_getset, method_getset},
    {Py_tp_traverse, method_traverse},
    {Py_tp_clear, method_clear},
    {Py_tp_dealloc, method_dealloc},
    {Py_tp_repr, method_repr},
    {Py_tp_doc, "WebSocket.receive_text/receive_bytes/send_text/send_bytes in C (internal)."},
    {0, NULL},
};

static PyType_Spec method_spec = {
    .name = "celeris._celeris.WsMethod",
    .basicsize = sizeof(WsMethodObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_METHOD_DESCRIPTOR
             | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = method_slots,
};

int celeris_ws_methods_add_types(PyObject *module)
{
    PyObject *op = PyType_FromModuleAndSpec(module, &op_spec, NULL);
    if (!op)
        return -1;
    if (PyModule_AddObjectRef(module, "WsOp", op) < 0) {
        Py_DECREF(op);
        return -1;
    }
    WsOp_Type = (PyTypeObject *)op;     /* the module's attribute keeps it alive */
    Py_DECREF(op);
    PyObject *m = PyType_FromModuleAndSpec(module, &method_spec, NULL);
    if (!m)
        return -1;
    int rc = PyModule_AddObjectRef(module, "WsMethod", m);
    Py_DECREF(m);
    return rc;
}
