/* _celeris.ExcSender: the `sender` of Starlette's wrap_app_handling_exceptions
 * as a C callable, for the native websocket dispatcher (native/websocket.py).
 *
 * Starlette wraps the ASGI send of every routed connection in
 *
 *     async def sender(message):
 *         nonlocal response_started
 *         if message["type"] == "http.response.start":
 *             response_started = True
 *         await send(message)
 *
 * which costs a coroutine per message.  ExcSender(send) does the same check
 * and returns send(message)'s awaitable itself; `response_started` is an
 * attribute the dispatcher's copy of the wrapper reads.  Awaiting the result
 * of `sender(message)` behaves as awaiting the coroutine, except that an
 * error raised by the call of send (not by its awaitable) surfaces at the
 * call instead of at the await -- the same line in every caller
 * (`await self._send(message)`).
 *
 * Owns one reference to `send` (GC-tracked: send may be part of a cycle)
 * and one to the interned key "type". */
#include "binding.h"

#include <structmember.h>

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *send;             /* owned */
    PyObject *type_key;         /* owned: the interned "type" */
    char response_started;
} ExcSenderObject;

static PyObject *sender_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames);

static PyObject *sender_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *send;
    static char *kwlist[] = {"send", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:ExcSender", kwlist, &send))
        return NULL;
    ExcSenderObject *self = (ExcSenderObject *)type->tp_alloc(type, 0);
    if (!self)
        return NULL;
    self->vectorcall = sender_call;
    self->send = Py_NewRef(send);
    self->response_started = 0;
    self->type_key = PyUnicode_InternFromString("type");
    if (!self->type_key) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* sender(message) -> send(message): sets response_started first when
 * message["type"] == "http.response.start".  Errors of message["type"] and of
 * the send call propagate.  Returns a new reference. */
static PyObject *sender_call(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    ExcSenderObject *self = (ExcSenderObject *)op;
    if (PyVectorcall_NARGS(nargsf) != 1 || (kwnames && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "sender() takes exactly one argument (message)");
        return NULL;
    }
    PyObject *message = args[0];
    PyObject *t;
    if (PyDict_CheckExact(message)) {       /* what Starlette sends: no KeyError made and cleared */
        t = PyDict_GetItemWithError(message, self->type_key);
        if (!t) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, self->type_key);
            return NULL;
        }
        Py_INCREF(t);
    } else if (!(t = PyObject_GetItem(message, self->type_key))) {
        return NULL;
    }
    if (PyUnicode_Check(t) && PyUnicode_GET_LENGTH(t) == 19
            && PyUnicode_CompareWithASCIIString(t, "http.response.start") == 0)
        self->response_started = 1;
    Py_DECREF(t);
    return PyObject_CallOneArg(self->send, message);
}

static int sender_traverse(PyObject *op, visitproc visit, void *arg)
{
    ExcSenderObject *self = (ExcSenderObject *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->send);
    return 0;
}

static int sender_clear(PyObject *op)
{
    Py_CLEAR(((ExcSenderObject *)op)->send);
    Py_CLEAR(((ExcSenderObject *)op)->type_key);
    return 0;
}

static void sender_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    sender_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMemberDef sender_members[] = {
    {"response_started", T_BOOL, offsetof(ExcSenderObject, response_started), READONLY,
     "True once an http.response.start message went through."},
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(ExcSenderObject, vectorcall), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot sender_slots[] = {
    {Py_tp_new, sender_new},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_traverse, sender_traverse},
    {Py_tp_clear, sender_clear},
    {Py_tp_dealloc, sender_dealloc},
    {Py_tp_members, sender_members},
    {Py_tp_doc, "ExcSender(send): Starlette's exception-wrapper sender as a C callable."},
    {0, NULL},
};

PyType_Spec celeris_excsender_spec = {
    .name = "celeris._celeris.ExcSender",
    .basicsize = sizeof(ExcSenderObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = sender_slots,
};
