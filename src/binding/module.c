/* _celeris: module setup (multi-phase init, heap types, module state) and the
 * Ready awaitable used to hand results back to `await` without a loop turn. */
#include "binding.h"

int celeris_parse_done_callback(PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames,
                                PyObject **fn, PyObject **ctx)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *f = nargs == 1 ? args[0] : NULL, *c = Py_None;
    for (Py_ssize_t i = 0; f && i < nkw; i++) {
        if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, i), "context") == 0)
            c = args[nargs + i];
        else
            f = NULL;
    }
    if (!f) {
        PyErr_SetString(PyExc_TypeError, "add_done_callback(fn, *, context=None)");
        return -1;
    }
    *fn = f;
    *ctx = c != Py_None ? c : NULL;
    return 0;
}

#include "alloc.h"
#include "status.h"

#include <string.h>

/* ---- Ready: an awaitable that completes immediately with `value` ---- */

typedef struct {
    PyObject_HEAD
    PyObject *value;            /* NULL means None */
} ReadyObject;

static PyObject *ready_await(PyObject *self)
{
    return Py_NewRef(self);
}

static PyObject *ready_next(PyObject *self)
{
    ReadyObject *r = (ReadyObject *)self;
    if (r->value) {
        /* Wrap in a 1-tuple so a tuple or exception value stays itself. */
        PyObject *args = PyTuple_Pack(1, r->value);
        if (!args)
            return NULL;
        PyObject *exc = PyObject_Call(PyExc_StopIteration, args, NULL);
        Py_DECREF(args);
        if (!exc)
            return NULL;
        PyErr_SetObject(PyExc_StopIteration, exc);
        Py_DECREF(exc);
    }
    return NULL;                /* no exception set: StopIteration(None) */
}

/* `await` of a Ready (PyIter_Send, the SEND opcode) gets the value back
 * directly, without a StopIteration raised and caught. */
static PySendResult ready_am_send(PyObject *self, PyObject *Py_UNUSED(arg), PyObject **result)
{
    PyObject *v = ((ReadyObject *)self)->value;
    *result = Py_NewRef(v ? v : Py_None);
    return PYGEN_RETURN;
}

static PyObject *ready_send(PyObject *self, PyObject *Py_UNUSED(arg))
{
    PyObject *r = ready_next(self);
    if (!r && !PyErr_Occurred())
        PyErr_SetNone(PyExc_StopIteration);
    return r;
}

static PyObject *ready_throw(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *typ, *val = NULL, *tb = NULL;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb))
        return NULL;
    if (PyExceptionInstance_Check(typ))
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    else
        PyErr_SetObject(typ, val);
    return NULL;
}

static PyObject *ready_close(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(a))
{
    Py_RETURN_NONE;
}

static int ready_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((ReadyObject *)self)->value);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int ready_clear(PyObject *self)
{
    Py_CLEAR(((ReadyObject *)self)->value);
    return 0;
}

static void ready_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    ready_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef ready_methods[] = {
    {"send", ready_send, METH_O, NULL},
    {"throw", ready_throw, METH_VARARGS, NULL},
    {"close", ready_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ready_slots[] = {
    {Py_am_await, ready_await},
    {Py_am_send, ready_am_send},
    {Py_tp_iter, ready_await},
    {Py_tp_iternext, ready_next},
    {Py_tp_methods, ready_methods},
    {Py_tp_traverse, ready_traverse},
    {Py_tp_clear, ready_clear},
    {Py_tp_dealloc, ready_dealloc},
    {0, NULL},
};

PyType_Spec celeris_ready_spec = {
    .name = "celeris._celeris.Ready",
    .basicsize = sizeof(ReadyObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = ready_slots,
};

PyObject *celeris_ready_new(celeris_state *st, PyObject *value)
{
    if (value == NULL || value == Py_None)
        return Py_NewRef(st->ready_none);
    ReadyObject *r = PyObject_GC_New(ReadyObject, st->Ready_Type);
    if (!r)
        return NULL;
    r->value = Py_NewRef(value);
    PyObject_GC_Track(r);
    return (PyObject *)r;
}

/* ---- module ---- */

static struct PyModuleDef celeris_module;

celeris_state *celeris_get_state_from_type(PyTypeObject *tp)
{
    /* Our types are final, so the defining module is the type's own
     * (PyType_GetModuleByDef would need 3.11). */
    PyObject *m = PyType_GetModule(tp);
    return m ? PyModule_GetState(m) : NULL;
}

#define INTERN(field, text)                                   \
    do {                                                      \
        st->field = PyUnicode_InternFromString(text);         \
        if (!st->field)                                       \
            return -1;                                        \
    } while (0)

/* The core's reason phrases are Python 3.11's http.HTTPStatus; later
 * Pythons renamed some (3.13: 413 Content Too Large, 416 Range Not
 * Satisfiable, 422 Unprocessable Content), and uvicorn sends the running
 * Python's.  Take those over, once per process (the copies live as long). */
static int phrases_from_python(void)
{
    static int done;
    if (done)
        return 0;
    PyObject *mod = PyImport_ImportModule("http");
    PyObject *cls = mod ? PyObject_GetAttrString(mod, "HTTPStatus") : NULL;
    Py_XDECREF(mod);
    PyObject *it = cls ? PyObject_GetIter(cls) : NULL;
    Py_XDECREF(cls);
    if (!it)
        return -1;
    PyObject *member;
    while ((member = PyIter_Next(it))) {
        PyObject *value = PyObject_GetAttrString(member, "value");
        PyObject *phrase = value ? PyObject_GetAttrString(member, "phrase") : NULL;
        long code = value ? PyLong_AsLong(value) : -1;
        const char *p = phrase && PyUnicode_Check(phrase) ? PyUnicode_AsUTF8(phrase) : NULL;
        if (p && code >= 100 && code < 600 && strcmp(p, cel_status_phrase((int)code)) != 0) {
            char *copy = strdup(p);
            if (copy)
                cel_status_set_phrase((int)code, copy);
        }
        Py_XDECREF(value);
        Py_XDECREF(phrase);
        Py_DECREF(member);
        if (PyErr_Occurred())
            break;
    }
    Py_DECREF(it);
    if (PyErr_Occurred())
        return -1;
    done = 1;
    return 0;
}

static int celeris_exec(PyObject *m)
{
    if (phrases_from_python() < 0)
        return -1;
    celeris_state *st = PyModule_GetState(m);
    INTERN(s_type, "type");
    INTERN(s_asgi, "asgi");
    INTERN(s_http_version, "http_version");
    INTERN(s_server, "server");
    INTERN(s_client, "client");
    INTERN(s_scheme, "scheme");
    INTERN(s_method, "method");
    INTERN(s_root_path, "root_path");
    INTERN(s_path, "path");
    INTERN(s_raw_path, "raw_path");
    INTERN(s_query_string, "query_string");
    INTERN(s_headers, "headers");
    INTERN(s_state, "state");
    INTERN(s_http, "http");
    INTERN(s_version, "version");
    INTERN(s_spec_version, "spec_version");
    INTERN(s_v30, "3.0");
    INTERN(s_v23, "2.3");
    INTERN(s_v11, "1.1");
    INTERN(s_v10, "1.0");
    INTERN(s_body, "body");
    INTERN(s_more_body, "more_body");
    INTERN(s_http_request, "http.request");
    INTERN(s_http_disconnect, "http.disconnect");
    INTERN(s_status, "status");
    INTERN(s_http_response_start, "http.response.start");
    INTERN(s_http_response_body, "http.response.body");
    INTERN(s_http_response_pathsend, "http.response.pathsend");
    INTERN(s_empty, "");
    INTERN(s_submit, "submit");
    INTERN(s_set_exception, "set_exception");
    INTERN(s_set_result, "set_result");
    INTERN(s_done, "done");
    INTERN(s_cancelled, "cancelled");
    INTERN(s_dependency_overrides, "dependency_overrides");
    INTERN(s_GET, "GET");
    INTERN(s_POST, "POST");
    INTERN(s_HEAD, "HEAD");
    INTERN(s_PUT, "PUT");
    INTERN(s_DELETE, "DELETE");
    INTERN(s_PATCH, "PATCH");
    INTERN(s_OPTIONS, "OPTIONS");
    st->empty_bytes = PyBytes_FromStringAndSize("", 0);
    if (!st->empty_bytes)
        return -1;
    if (celeris_ws_state_init(m, &st->ws) < 0)
        return -1;

    st->Ready_Type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &celeris_ready_spec, NULL);
    if (!st->Ready_Type)
        return -1;
    st->Server_Type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &celeris_server_spec, NULL);
    if (!st->Server_Type)
        return -1;
    st->Cycle_Type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &celeris_cycle_spec, NULL);
    if (!st->Cycle_Type)
        return -1;
    st->MemConn_Type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &celeris_memconn_spec, NULL);
    if (!st->MemConn_Type)
        return -1;
    st->NativeApp_Type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &celeris_nativeapp_spec, NULL);
    if (!st->NativeApp_Type)
        return -1;
    st->NativeCall_Type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &celeris_nativecall_spec, NULL);
    if (!st->NativeCall_Type)
        return -1;
    st->ThreadPool_Type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &celeris_threadpool_spec, NULL);
    if (!st->ThreadPool_Type)
        return -1;
    st->Driver_Type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &celeris_driver_spec, NULL);
    if (!st->Driver_Type)
        return -1;
    st->Waiter_Type = (PyTypeObject *)PyType_FromModuleAndSpec(m, &celeris_waiter_spec, NULL);
    if (!st->Waiter_Type)
        return -1;
    if (PyModule_AddObjectRef(m, "Driver", (PyObject *)st->Driver_Type) < 0
        || PyModule_AddObjectRef(m, "ThreadPool", (PyObject *)st->ThreadPool_Type) < 0
        || PyModule_AddObjectRef(m, "NativeApp", (PyObject *)st->NativeApp_Type) < 0
        || PyModule_AddObjectRef(m, "NativeCall", (PyObject *)st->NativeCall_Type) < 0)
        return -1;
    if (celeris_form_add_types(m) < 0)
        return -1;
    /* Inotify needs no module state: the module's reference keeps it alive. */
    PyObject *inotify_type = PyType_FromModuleAndSpec(m, &celeris_inotify_spec, NULL);
    if (!inotify_type)
        return -1;
    int inotify_rc = PyModule_AddObjectRef(m, "Inotify", inotify_type);
    Py_DECREF(inotify_type);
    if (inotify_rc < 0)
        return -1;
    if (celeris_ws_methods_add_types(m) < 0)
        return -1;
    PyObject *sender_type = PyType_FromModuleAndSpec(m, &celeris_excsender_spec, NULL);
    if (!sender_type)
        return -1;
    int sender_rc = PyModule_AddObjectRef(m, "ExcSender", sender_type);
    Py_DECREF(sender_type);
    if (sender_rc < 0)
        return -1;
    ReadyObject *none = PyObject_GC_New(ReadyObject, st->Ready_Type);
    if (!none)
        return -1;
    none->value = NULL;
    PyObject_GC_Track(none);
    st->ready_none = (PyObject *)none;

    if (PyModule_AddObjectRef(m, "Server", (PyObject *)st->Server_Type) < 0)
        return -1;
    if (PyModule_AddObjectRef(m, "Cycle", (PyObject *)st->Cycle_Type) < 0)
        return -1;
    return 0;
}

static int celeris_traverse(PyObject *m, visitproc visit, void *arg)
{
    celeris_state *st = PyModule_GetState(m);
    Py_VISIT(st->Server_Type);
    Py_VISIT(st->Cycle_Type);
    Py_VISIT(st->Ready_Type);
    Py_VISIT(st->MemConn_Type);
    Py_VISIT(st->NativeApp_Type);
    Py_VISIT(st->NativeCall_Type);
    Py_VISIT(st->ThreadPool_Type);
    Py_VISIT(st->Driver_Type);
    Py_VISIT(st->Waiter_Type);
    Py_VISIT(st->ready_none);
    Py_VISIT(st->ws.ClientDisconnected);
    return 0;
}

static int celeris_clear(PyObject *m)
{
    celeris_state *st = PyModule_GetState(m);
    Py_CLEAR(st->Server_Type);
    Py_CLEAR(st->Cycle_Type);
    Py_CLEAR(st->Ready_Type);
    Py_CLEAR(st->MemConn_Type);
    Py_CLEAR(st->NativeApp_Type);
    Py_CLEAR(st->NativeCall_Type);
    Py_CLEAR(st->ThreadPool_Type);
    Py_CLEAR(st->Driver_Type);
    Py_CLEAR(st->Waiter_Type);
    Py_CLEAR(st->ready_none);
    PyObject **strs[] = {
        &st->s_type, &st->s_asgi, &st->s_http_version, &st->s_server, &st->s_client,
        &st->s_scheme, &st->s_method, &st->s_root_path, &st->s_path, &st->s_raw_path,
        &st->s_query_string, &st->s_headers, &st->s_state, &st->s_http, &st->s_version,
        &st->s_spec_version, &st->s_v30, &st->s_v23, &st->s_v11, &st->s_v10, &st->s_body,
        &st->s_more_body, &st->s_http_request, &st->s_http_disconnect, &st->s_status,
        &st->s_http_response_start, &st->s_http_response_body, &st->s_http_response_pathsend,
        &st->s_empty,
        &st->s_submit, &st->s_set_exception, &st->s_set_result, &st->s_done,
        &st->s_cancelled, &st->s_dependency_overrides,
        &st->s_GET, &st->s_POST, &st->s_HEAD, &st->s_PUT, &st->s_DELETE, &st->s_PATCH,
        &st->s_OPTIONS, &st->empty_bytes,
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        Py_CLEAR(*strs[i]);
    celeris_ws_state_clear(&st->ws);
    celeris_fl_close(&st->fl_cycle);
    celeris_fl_close(&st->fl_ncall);
    return 0;
}

static void celeris_free(void *m)
{
    celeris_clear((PyObject *)m);
}

static PyObject *alloc_fail_after(PyObject *Py_UNUSED(m), PyObject *arg)
{
    unsigned long n = PyLong_AsUnsignedLong(arg);
    if (n == (unsigned long)-1 && PyErr_Occurred())
        return NULL;
    return PyLong_FromUnsignedLong(cel_alloc_fail_after(n));
}

static PyMethodDef celeris_methods[] = {
    {"json_dumps", celeris_json_dumps, METH_O,
     "json_dumps(obj) -> bytes: json.dumps(obj, ensure_ascii=False, allow_nan=False, "
     "separators=(',', ':')).encode() for exact JSON types; TypeError otherwise."},
    {"_json_dumps_small", celeris_json_dumps_small, METH_O,
     "Test hook: json_dumps's small flat-dict path alone; None where it declines."},
    {"_alloc_fail_after", alloc_fail_after, METH_O,
     "Test hook: make the core's nth allocation from now on fail (0 disables)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot celeris_slots[] = {
    {Py_mod_exec, celeris_exec},
    {0, NULL},
};

static struct PyModuleDef celeris_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "celeris._celeris",
    .m_doc = "Celeris C core binding.",
    .m_size = sizeof(celeris_state),
    .m_methods = celeris_methods,
    .m_slots = celeris_slots,
    .m_traverse = celeris_traverse,
    .m_clear = celeris_clear,
    .m_free = celeris_free,
};

PyMODINIT_FUNC PyInit__celeris(void)
{
    return PyModuleDef_Init(&celeris_module);
}
