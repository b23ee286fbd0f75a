/* The native tier: requests to compiled FastAPI routes are matched, their
 * parameters extracted and validated, and the endpoint called without going
 * through Starlette's middleware, routing, solve_dependencies and
 * JSONResponse in Python.
 *
 * _celeris.NativeApp(entries, runtime) holds the C router and the plans made
 * by celeris.native.compiler.  celeris_native_dispatch() is called for every
 * request head; it either starts the endpoint (returns 1) or declines
 * (returns 0) so the request goes to the ASGI tier.  It declines -- before
 * any user code has run -- on anything it does not reproduce exactly:
 * validation errors (FastAPI builds the 422), non-ASCII query strings,
 * invalid UTF-8 in the path, a missing required parameter, ...
 *
 * _celeris.NativeCall drives the endpoint coroutine inside an asyncio Task
 * (so current_task, contextvars and sniffio behave) and, when it returns,
 * writes the response: the fast path serialises the result with the C JSON
 * writer and frames JSONResponse's exact headers; other results and
 * exceptions go through celeris.native.runtime, which uses FastAPI's and
 * Starlette's own classes. */
#include "binding.h"

#include <string.h>

#include "errors.h"
#include "router.h"
#include "urlcode.h"

#include "native.h"

/* ---- NativeApp construction ---- */

static void plan_free(NPlan *p)
{
    if (!p)
        return;
    for (Py_ssize_t i = 0; i < p->nparams; i++) {
        NParam *q = &p->params[i];
        PyMem_Free(q->key);
        Py_XDECREF(q->field);
        Py_XDECREF(q->validate);
        Py_XDECREF(q->loc);
        Py_XDECREF(q->dflt);
        Py_XDECREF(q->convertor);
    }
    PyMem_Free(p->params);
    Py_XDECREF(p->endpoint);
    Py_XDECREF(p->status_obj);
    Py_XDECREF(p->response_class);
    Py_XDECREF(p->kwnames);
    Py_XDECREF(p->serializer);
    Py_XDECREF(p->overrides_owner);
    Py_XDECREF(p->slow);
    PyMem_Free(p);
}

/* plan tuple: (endpoint, is_coroutine, status_code|None, response_class, kwnames,
 *              fast_json, params, serializer|None, runner, overrides_owner|None, model_plain
 *              [, slow|None]) with params a list of
 *              (where, key, fast, field, loc, required, default, convertor|None) */
static NPlan *plan_new(PyObject *t, const cel_route_info *info)
{
    PyObject *endpoint, *status, *rclass, *kwnames, *params, *serializer, *owner, *slow = Py_None;
    int is_coro, fast_json, runner, model_plain;
    if (!PyArg_ParseTuple(t, "OpOOO!pO!OpOp|O", &endpoint, &is_coro, &status, &rclass,
                          &PyTuple_Type, &kwnames, &fast_json, &PyList_Type, &params, &serializer,
                          &runner, &owner, &model_plain, &slow))
        return NULL;
    NPlan *p = PyMem_Calloc(1, sizeof *p);
    if (!p)
        return (NPlan *)PyErr_NoMemory();
    p->endpoint = Py_NewRef(endpoint);
    p->is_coroutine = is_coro;
    p->status_obj = Py_NewRef(status);
    p->status = status == Py_None ? 0 : (int)PyLong_AsLong(status);
    p->response_class = Py_NewRef(rclass);
    p->kwnames = Py_NewRef(kwnames);
    p->fast_json = fast_json;
    p->serializer = serializer == Py_None ? NULL : Py_NewRef(serializer);
    p->runner = runner;
    p->model_plain = model_plain;
    p->overrides_owner = owner == Py_None ? NULL : Py_NewRef(owner);
    p->slow = slow == Py_None || runner ? NULL : Py_NewRef(slow);
    p->nparams = PyList_GET_SIZE(params);
    if (p->nparams != PyTuple_GET_SIZE(kwnames) || p->nparams > CEL_ROUTER_MAX_PARAMS * 4) {
        PyErr_SetString(PyExc_ValueError, "plan: params and kwnames differ");
        plan_free(p);
        return NULL;
    }
    p->params = PyMem_Calloc((size_t)p->nparams + 1, sizeof(NParam));
    if (!p->params) {
        plan_free(p);
        return (NPlan *)PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < p->nparams; i++) {
        NParam *q = &p->params[i];
        PyObject *key, *field, *loc, *dflt, *conv;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(params, i), "iUiOO!pOOp", &q->where, &key, &q->fast,
                              &field, &PyTuple_Type, &loc, &q->required, &dflt, &conv, &q->multi)) {
            plan_free(p);
            return NULL;
        }
        q->field = Py_NewRef(field);
        /* field None: a raw str parameter (F_STR) never validated, e.g. the
         * Content-Type a body runner needs. */
        q->validate = field == Py_None ? Py_NewRef(Py_None) : PyObject_GetAttrString(field, "validate");
        if (!q->validate || (field == Py_None && q->fast != F_STR)) {
            if (q->validate)
                PyErr_SetString(PyExc_ValueError, "plan: a parameter without a field must be F_STR");
            plan_free(p);
            return NULL;
        }
        q->loc = Py_NewRef(loc);
        q->dflt = Py_NewRef(dflt);
        q->convertor = conv == Py_None ? NULL : Py_NewRef(conv);
        Py_ssize_t klen;
        const char *k = PyUnicode_AsUTF8AndSize(key, &klen);
        if (!k) {
            plan_free(p);
            return NULL;
        }
        q->path_slot = -1;
        if (q->where == P_PATH) {
            for (size_t j = 0; j < info->nparams; j++)
                if (info->params[j].name.len == (size_t)klen
                    && memcmp(info->params[j].name.p, k, (size_t)klen) == 0)
                    q->path_slot = (int)j;
            if (q->path_slot < 0) {
                PyErr_Format(PyExc_ValueError, "plan: path parameter %R not in the template", key);
                plan_free(p);
                return NULL;
            }
        } else {
            if (q->where == P_QUERY)
                p->has_query = 1;
            q->key = PyMem_Malloc((size_t)klen + 1);
            if (!q->key) {
                plan_free(p);
                return (NPlan *)PyErr_NoMemory();
            }
            memcpy(q->key, k, (size_t)klen + 1);
            q->key_len = (size_t)klen;
            if (q->where == P_HEADER)
                for (Py_ssize_t j = 0; j < klen; j++)
                    if (q->key[j] >= 'A' && q->key[j] <= 'Z')
                        q->key[j] = (char)(q->key[j] - 'A' + 'a');
        }
    }
    return p;
}

static PyObject *getattr_s(PyObject *o, const char *name)
{
    return PyObject_GetAttrString(o, name);
}

/* NativeApp(entries, runtime, cors=None, noroute=None): entries is a list of
 * (kind, template, methods|None, plan|None); cors is (start, wrap) (see
 * runtime.cors_hooks); noroute is (redirect_slashes, allow_routes, fresh,
 * not_found) when requests no route takes are answered natively,
 * allow_routes a list by entry of the object whose .methods make a 405's
 * Allow header, or None, fresh() true while the app's route table is still
 * the compiled one, not_found false when the last step (the 404) must be
 * left to FastAPI (low-priority routes come before it). */
static PyObject *napp_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    PyObject *entries, *runtime, *cors = Py_None, *noroute = Py_None;
    PyObject *stack = Py_None;
    static char *kwlist[] = {"entries", "runtime", "cors", "noroute", "stack", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O!O|OOO:NativeApp", kwlist, &PyList_Type, &entries,
                                     &runtime, &cors, &noroute, &stack))
        return NULL;
    NativeAppObject *self = (NativeAppObject *)tp->tp_alloc(tp, 0);
    if (!self)
        return NULL;
    if (stack != Py_None)
        self->mw_run = Py_NewRef(stack);
    if (cors != Py_None) {
        PyObject *start, *wrap;
        if (!PyArg_ParseTuple(cors, "OO", &start, &wrap)) {
            Py_DECREF(self);
            return NULL;
        }
        self->cors_start = Py_NewRef(start);
        self->cors_wrap = Py_NewRef(wrap);
    }
    if (noroute != Py_None) {
        PyObject *allow, *fresh;
        int redirect, not_found;
        if (!PyArg_ParseTuple(noroute, "pO!Op", &redirect, &PyList_Type, &allow, &fresh,
                              &not_found)) {
            Py_DECREF(self);
            return NULL;
        }
        if (PyList_GET_SIZE(allow) != PyList_GET_SIZE(entries)) {
            PyErr_SetString(PyExc_ValueError, "noroute: one allow entry per route");
            Py_DECREF(self);
            return NULL;
        }
        self->noroute = 1;
        self->redirect_slashes = redirect;
        self->noroute_404 = not_found;
        self->allow_routes = Py_NewRef(allow);
        self->noroute_fresh = Py_NewRef(fresh);
    }
    self->enabled = 1;
    self->runtime = Py_NewRef(runtime);
    self->kw_loc = Py_BuildValue("(s)", "loc");
    if (!self->kw_loc)
        goto error;
    self->router = cel_router_new();
    Py_ssize_t n = PyList_GET_SIZE(entries);
    self->plans = PyMem_Calloc((size_t)n + 1, sizeof(NPlan *));
    if (!self->router || !self->plans) {
        PyErr_NoMemory();
        goto error;
    }
    self->nplans = n;
    if (!(self->rt_render = getattr_s(runtime, "render"))
        || !(self->rt_handle_exception = getattr_s(runtime, "handle_exception"))
        || !(self->rt_server_response = getattr_s(runtime, "server_response"))
        || !(self->rt_server_started = getattr_s(runtime, "server_started"))
        || !(self->rt_submit_later = getattr_s(runtime, "submit_later"))
        || !(self->rt_server_error = getattr_s(runtime, "server_error"))
        || !(self->rt_unpack = getattr_s(runtime, "unpack"))
        || !(self->rt_run_sync = getattr_s(runtime, "run_sync"))
        || !(self->rt_copy_default = getattr_s(runtime, "copy_default"))
        || !(self->rt_render_json_bytes = getattr_s(runtime, "render_json_bytes"))
        || !(self->rt_send_json_bytes = getattr_s(runtime, "send_json_bytes"))
        || !(self->response_type = getattr_s(runtime, "Response"))
        || !(self->rt_not_found = getattr_s(runtime, "not_found"))
        || !(self->rt_not_allowed = getattr_s(runtime, "method_not_allowed"))
        || !(self->rt_redirect = getattr_s(runtime, "redirect_slashes")))
        goto error;
    /* Borrowed: the plan is never freed, and its coroutines only return
     * Response objects or raise, so these are never used to render. */
    self->noroute_plan.index = -1;
    self->noroute_plan.status_obj = Py_None;
    self->noroute_plan.response_class = self->response_type;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyList_GET_ITEM(entries, i);
        int kind;
        const char *tpl = NULL;
        Py_ssize_t tlen = 0;
        PyObject *methods, *plan;
        if (!PyArg_ParseTuple(e, "iz#OO", &kind, &tpl, &tlen, &methods, &plan))
            goto error;
        const char *m = NULL;
        if (methods != Py_None && !(m = PyUnicode_AsUTF8(methods)))
            goto error;
        int rc = cel_router_add(self->router, kind, tpl, (size_t)tlen, m, (int)i);
        if (rc == CEL_EINVAL) {
            /* A template the C router does not reproduce (custom convertor,
             * too many params): from here on only the ASGI tier may route. */
            rc = cel_router_add(self->router, CEL_ROUTE_OPAQUE, NULL, 0, NULL, (int)i);
            plan = Py_None;
        }
        if (rc < 0) {
            PyErr_Format(PyExc_ValueError, "route %zd (%s): %s", i, tpl ? tpl : "", cel_router_error(self->router));
            goto error;
        }
        if (plan != Py_None) {
            cel_route_info info;
            cel_router_route_info(self->router, (size_t)i, &info);
            if (!(self->plans[i] = plan_new(plan, &info))) {
                /* A plan the C side cannot take (the compiler should have
                 * declined it): that route stays on the ASGI tier. */
                PyErr_Clear();
                self->plan_errors++;
            } else {
                self->plans[i]->index = i;
            }
        }
    }
    return (PyObject *)self;
error:
    Py_DECREF(self);
    return NULL;
}

static int napp_clear(PyObject *op)
{
    NativeAppObject *self = (NativeAppObject *)op;
    Py_CLEAR(self->runtime);
    Py_CLEAR(self->rt_render);
    Py_CLEAR(self->rt_handle_exception);
    Py_CLEAR(self->rt_server_response);
    Py_CLEAR(self->rt_server_error);
    Py_CLEAR(self->rt_unpack);
    Py_CLEAR(self->rt_run_sync);
    Py_CLEAR(self->rt_copy_default);
    Py_CLEAR(self->rt_render_json_bytes);
    Py_CLEAR(self->rt_send_json_bytes);
    Py_CLEAR(self->rt_server_started);
    Py_CLEAR(self->rt_submit_later);
    Py_CLEAR(self->response_type);
    Py_CLEAR(self->kw_loc);
    Py_CLEAR(self->cors_start);
    Py_CLEAR(self->cors_wrap);
    Py_CLEAR(self->mw_run);
    Py_CLEAR(self->allow_routes);
    Py_CLEAR(self->noroute_fresh);
    Py_CLEAR(self->rt_not_found);
    Py_CLEAR(self->rt_not_allowed);
    Py_CLEAR(self->rt_redirect);
    return 0;
}

static int napp_traverse(PyObject *op, visitproc visit, void *arg)
{
    NativeAppObject *self = (NativeAppObject *)op;
    Py_VISIT(self->runtime);
    Py_VISIT(self->rt_handle_exception);
    Py_VISIT(self->rt_server_response);
    Py_VISIT(self->rt_server_started);
    Py_VISIT(self->cors_start);
    Py_VISIT(self->cors_wrap);
    Py_VISIT(self->mw_run);
    Py_VISIT(self->allow_routes);
    Py_VISIT(self->noroute_fresh);
    for (Py_ssize_t i = 0; i < self->nplans; i++) {
        NPlan *p = self->plans ? self->plans[i] : NULL;
        if (!p)
            continue;
        Py_VISIT(p->endpoint);
        Py_VISIT(p->response_class);
        Py_VISIT(p->serializer);
        Py_VISIT(p->slow);
        Py_VISIT(p->overrides_owner);
        for (Py_ssize_t j = 0; j < p->nparams; j++) {
            Py_VISIT(p->params[j].field);
            Py_VISIT(p->params[j].dflt);
            Py_VISIT(p->params[j].convertor);
        }
    }
    Py_VISIT(Py_TYPE(op));
    return 0;
}

static void napp_dealloc(PyObject *op)
{
    NativeAppObject *self = (NativeAppObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    napp_clear(op);
    if (self->plans) {
        for (Py_ssize_t i = 0; i < self->nplans; i++)
            plan_free(self->plans[i]);
        PyMem_Free(self->plans);
    }
    cel_router_free(self->router);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *napp_set_enabled(PyObject *op, PyObject *arg)
{
    int on = PyObject_IsTrue(arg);
    if (on < 0)
        return NULL;
    ((NativeAppObject *)op)->enabled = on;
    Py_RETURN_NONE;
}

static PyObject *napp_stats(PyObject *op, PyObject *Py_UNUSED(a))
{
    NativeAppObject *self = (NativeAppObject *)op;
    return Py_BuildValue("{sKsKsK}", "native", self->native_requests, "declined", self->declined,
                         "plan_errors", self->plan_errors);
}

static PyMethodDef napp_methods[] = {
    {"set_enabled", napp_set_enabled, METH_O, "Turn the native tier on/off (e.g. while telemetry is on)."},
    {"stats", napp_stats, METH_NOARGS, "{'native': n, 'declined': n}"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot napp_slots[] = {
    {Py_tp_new, napp_new},
    {Py_tp_methods, napp_methods},
    {Py_tp_traverse, napp_traverse},
    {Py_tp_clear, napp_clear},
    {Py_tp_dealloc, napp_dealloc},
    {0, NULL},
};

PyType_Spec celeris_nativeapp_spec = {
    .name = "celeris._celeris.NativeApp",
    .basicsize = sizeof(NativeAppObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = napp_slots,
};

/* ---- request decoding helpers ---- */

/* Every value of `key` in the query string, decoded (Starlette's
 * QueryParams.getlist).  New list of str; NULL without an exception:
 * decline (a value too long or not UTF-8); NULL with one: error. */
static PyObject *query_getlist(const char *q, size_t qn, const char *key, size_t klen)
{
    PyObject *list = PyList_New(0);
    if (!list)
        return NULL;
    cel_url_query_iter it;
    cel_url_pair pr;
    char buf[4096];
    cel_url_query_init(&it, q, qn);
    while (cel_url_query_next(&it, &pr)) {
        if (!cel_url_decoded_equals(pr.key, pr.key_len, key, klen, 1))
            continue;
        if (pr.value_len > sizeof buf) {
            Py_DECREF(list);
            return NULL;
        }
        size_t n = cel_url_decode(pr.value, pr.value_len, buf, 1);
        if (!cel_url_utf8_valid(buf, n)) {
            Py_DECREF(list);
            return NULL;
        }
        PyObject *v = PyUnicode_DecodeUTF8(buf, (Py_ssize_t)n, "strict");
        if (!v || PyList_Append(list, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(v);
    }
    return list;
}

/* First value of header `key` (lower-case) in req, as Starlette's
 * Headers.get: 1 found (*v, *vn borrowed from the request), 0 missing. */
int celeris__native_header(const cel_http_request *req, const char *key, size_t klen,
                         const char **v, size_t *vn)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const cel_header *h = &req->headers[i];
        if (h->name.len != klen)
            continue;
        size_t j = 0;
        for (; j < klen; j++) {
            char ch = h->name.p[j];
            if (ch >= 'A' && ch <= 'Z')
                ch = (char)(ch - 'A' + 'a');
            if (ch != key[j])
                break;
        }
        if (j == klen) {
            *v = h->value.p;
            *vn = h->value.len;
            return 1;
        }
    }
    return 0;
}

/* FastAPI's field.validate(value, {}, loc=loc): returns the validated value
 * (new ref), NULL+no exception when validation failed (decline), NULL with an
 * exception on an unexpected error. */
static PyObject *validate(NativeAppObject *app, NParam *q, PyObject *value)
{
    PyObject *values = PyDict_New();
    if (!values)
        return NULL;
    PyObject *args[3] = { value, values, q->loc };
    PyObject *r = PyObject_Vectorcall(q->validate, args, 2, app->kw_loc);
    Py_DECREF(values);
    if (!r)
        return NULL;
    PyObject *out = NULL;
    if (PyTuple_Check(r) && PyTuple_GET_SIZE(r) == 2) {
        PyObject *errs = PyTuple_GET_ITEM(r, 1);
        int bad = PyObject_IsTrue(errs);
        if (bad == 0)
            out = Py_NewRef(PyTuple_GET_ITEM(r, 0));
    } else {
        PyErr_SetString(PyExc_TypeError, "ModelField.validate returned an unexpected value");
    }
    Py_DECREF(r);
    return out;
}

/* Convert one raw parameter value.  Returns new ref, or NULL: decline
 * (no exception) or error (exception set). */
static PyObject *param_value(NativeAppObject *app, NParam *q, const char *raw, size_t n, int present,
                             int latin1)
{
    if (!present) {
        if (q->required)
            return NULL;                        /* FastAPI answers 422 */
        return PyObject_CallOneArg(app->rt_copy_default, q->dflt);
    }
    if (q->fast == F_INT) {
        long long v;
        if (cel_url_parse_int(raw, n, &v))
            return PyLong_FromLongLong(v);
    }
    PyObject *s = latin1 ? PyUnicode_DecodeLatin1(raw, (Py_ssize_t)n, NULL)
                         : PyUnicode_DecodeUTF8(raw, (Py_ssize_t)n, "strict");
    if (!s)
        return NULL;
    if (q->fast == F_STR)
        return s;
    if (q->convertor) {
        PyObject *c = PyObject_CallMethod(q->convertor, "convert", "O", s);
        Py_DECREF(s);
        if (!c)
            return NULL;
        s = c;
    }
    PyObject *v = validate(app, q, s);
    Py_DECREF(s);
    return v;
}

/* ---- fast JSON ---- */

/* ---- dispatch ---- */

#define NATIVE_MAX_ARGS 64

/* Detach a Cycle whose request never started from c and drop it
 * (steals the reference): the request goes to the ASGI tier instead. */
static void discard_cycle(PyObject *cycle, cel_conn *c)
{
    CycleObject *cy = (CycleObject *)cycle;
    if (cy->conn == c)
        c->user = NULL;
    cy->conn = NULL;
    Py_DECREF(cycle);
}

/* Discard a coroutine that never ran, without "never awaited" warnings. */
static void drop_coro(PyObject *coro)
{
    PyObject *exc = PyErr_GetRaisedException_compat();
    PyObject *r = PyObject_CallMethod(coro, "close", NULL);
    Py_XDECREF(r);
    PyErr_Clear();
    PyErr_SetRaisedException_compat(exc);
    Py_DECREF(coro);
}

/* The request's headers as Starlette's Headers(raw=...) wants them:
 * [(lower-case name bytes, value bytes)].  New reference or NULL. */
PyObject *celeris__native_req_headers(const cel_http_request *req)
{
    PyObject *list = PyList_New((Py_ssize_t)req->num_headers);
    if (!list)
        return NULL;
    for (size_t i = 0; i < req->num_headers; i++) {
        const cel_header *h = &req->headers[i];
        char name[256];
        size_t n = h->name.len < sizeof name ? h->name.len : sizeof name;
        for (size_t j = 0; j < n; j++) {
            char ch = h->name.p[j];
            name[j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
        }
        PyObject *t = h->name.len <= sizeof name
                      ? Py_BuildValue("(y#y#)", name, (Py_ssize_t)n, h->value.p, (Py_ssize_t)h->value.len)
                      : NULL;
        if (!t) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "header name too long");
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, t);
    }
    return list;
}

/* Stack mode (the app's user middleware run natively, runtime.stack_runner):
 * *ncp becomes an outer NativeCall driving mw_run(inner) -- the middleware
 * stack whose innermost app awaits the inner call -- and the original call
 * becomes the inner one (nested: responses go through the middleware's send,
 * unhandled exceptions propagate out to the outer call, which answers them as
 * ServerErrorMiddleware).  0, or -1 with an exception (*ncp unchanged). */
static int wrap_in_stack(ServerObject *self, NativeAppObject *app, NPlan *plan, CycleObject *cy,
                         PyObject **ncp)
{
    NativeCallObject *inner = (NativeCallObject *)*ncp;
    inner->nested = 1;
    PyObject *run = PyObject_CallOneArg(app->mw_run, (PyObject *)inner);
    if (!run) {
        inner->nested = 0;
        return -1;
    }
    PyObject *outer = celeris_ncall_new(self->st, run, cy, app, plan, inner->head,
                                        inner->head_len);
    Py_DECREF(run);
    if (!outer) {
        inner->nested = 0;
        return -1;
    }
    ((NativeCallObject *)outer)->phase = 3;     /* an answer runs: failures -> ServerErrorMiddleware */
    /* One scope dict for both, as FastAPI's stack passes one down: the outer
     * call's (ServerErrorMiddleware's Request) is the one the middleware saw,
     * and it stays readable after the connection is gone. */
    PyObject *scope = PyObject_CallMethod((PyObject *)inner, "scope", NULL);
    if (!scope) {
        inner->nested = 0;
        Py_DECREF(outer);
        return -1;
    }
    Py_XSETREF(((NativeCallObject *)outer)->scope, scope);
    Py_DECREF(*ncp);
    *ncp = outer;
    return 0;
}

/* The request's Cycle and a NativeCall on it, its inner coroutine not set
 * yet (cors_req stolen: handed to the call, or released).  New reference to
 * the call (the Cycle in *cyclep, new reference), or NULL with an exception. */
static PyObject *call_new(ServerObject *self, cel_conn *c, const cel_http_request *req,
                          NativeAppObject *app, NPlan *plan, PyObject *cors_req, PyObject **cyclep)
{
    PyObject *scope = NULL, *cycle, *nc = NULL;
    if (self->access_log != Py_None && !(scope = celeris_build_scope(self, c, req))) {
        Py_XDECREF(cors_req);
        return NULL;
    }
    cycle = celeris_cycle_new(self, c, scope);
    Py_XDECREF(scope);
    /* The raw head, in case a Response must run as ASGI (a scope is built from it). */
    if (cycle)
        nc = celeris_ncall_new(self->st, NULL, (CycleObject *)cycle, app, plan, req->method.p,
                               (size_t)(c->head_end - req->method.p));
    if (!nc) {
        Py_XDECREF(cors_req);
        if (cycle)
            discard_cycle(cycle, c);
        return NULL;
    }
    ((NativeCallObject *)nc)->cors_req = cors_req;
    *cyclep = cycle;
    return nc;
}

/* Run the call (its inner coroutine set): wrapped in the user middleware in
 * stack mode, on the connection's Driver.  Consumes nc and cycle.  Returns 1
 * (started) or 0 (declined: the coroutine closed unstarted, the error written
 * as unraisable). */
static int call_start(ServerObject *self, cel_conn *c, NativeAppObject *app, NPlan *plan,
                      PyObject *cycle, PyObject *nc)
{
    if ((app->mw_run && wrap_in_stack(self, app, plan, (CycleObject *)cycle, &nc) < 0)
        || celeris_drive(self, c, (CycleObject *)cycle, nc) < 0) {
        NativeCallObject *n = (NativeCallObject *)nc;
        if (n->inner) {
            drop_coro(n->inner);            /* never started */
            n->inner = NULL;
        }
        Py_DECREF(nc);
        discard_cycle(cycle, c);
        PyErr_WriteUnraisable(plan->endpoint);
        app->declined++;
        return 0;
    }
    Py_DECREF(nc);
    Py_DECREF(cycle);
    app->native_requests++;
    return 1;
}

/* Start a runner plan: the NativeCall exists first, because the runner gets
 * it (nc.receive / nc.prepare / nc.respond).  Steals the references in
 * argv[0..nargs) and cors_req (may be NULL).  Returns 1 (started) or 0
 * (declined, the error written as unraisable). */
static int dispatch_runner(ServerObject *self, cel_conn *c, const cel_http_request *req,
                           NativeAppObject *app, NPlan *plan, PyObject **argv, Py_ssize_t nargs,
                           PyObject *cors_req)
{
    PyObject *cycle = NULL, *coro = NULL;
    PyObject *nc = call_new(self, c, req, app, plan, cors_req, &cycle);
    if (nc) {
        PyObject *args[NATIVE_MAX_ARGS + 2];
        args[1] = nc;
        for (Py_ssize_t i = 0; i < nargs; i++)
            args[i + 2] = argv[i];
        coro = PyObject_Vectorcall(plan->endpoint, args + 1,
                                   1 | PY_VECTORCALL_ARGUMENTS_OFFSET, plan->kwnames);
    }
    for (Py_ssize_t i = 0; i < nargs; i++)
        Py_DECREF(argv[i]);
    if (!coro) {
        if (nc) {
            Py_DECREF(nc);
            discard_cycle(cycle, c);
        }
        PyErr_WriteUnraisable(plan->endpoint);
        app->declined++;
        return 0;
    }
    ((NativeCallObject *)nc)->inner = coro;
    return call_start(self, c, app, plan, cycle, nc);
}

int celeris__native_start(ServerObject *self, cel_conn *c, const cel_http_request *req,
                          NativeAppObject *app, NPlan *plan, PyObject *coro, PyObject *cors_req)
{
    if (plan->fast_json && !plan->runner && !app->mw_run && !cors_req
        && self->access_log == Py_None && self->limit_concurrency <= 0) {
        /* Its first step on the connection's idle Driver, the Cycle and the
         * NativeCall made only if the endpoint does not simply return what
         * the C JSON writer answers (celeris_ncall_first_step). */
        celeris_ncall_first a = { self, c, req, app, plan };
        celeris_first first = { celeris_ncall_first_step, &a };
        if (celeris_drive_first(self, c, coro, &first)) {
            Py_DECREF(coro);
            app->native_requests++;
            return 1;
        }
    }
    PyObject *cycle = NULL;
    PyObject *nc = call_new(self, c, req, app, plan, cors_req, &cycle);
    if (!nc) {
        drop_coro(coro);                    /* never started */
        PyErr_WriteUnraisable(plan->endpoint);
        app->declined++;
        return 0;
    }
    ((NativeCallObject *)nc)->inner = coro;  /* the call holds it */
    return call_start(self, c, app, plan, cycle, nc);
}

/* A CORS preflight (OPTIONS + Origin + Access-Control-Request-Method) on an
 * app whose CORSMiddleware runs natively: the middleware answers it. */
static int cors_preflight(NativeAppObject *app, const cel_http_request *req)
{
    const char *v;
    size_t vn;
    return app->cors_start && req->method.len == 7 && memcmp(req->method.p, "OPTIONS", 7) == 0
           && celeris__native_header(req, "origin", 6, &v, &vn)
           && celeris__native_header(req, "access-control-request-method", 29, &v, &vn);
}

/* Start plan->slow(scope, path_params) for a request whose parameters the C
 * extractor found invalid (see invalid.py); its result is rendered as the
 * endpoint's would be.  Returns 1 (started) or 0 (declined, error written as
 * unraisable). */
static int start_slow(ServerObject *self, cel_conn *c, const cel_http_request *req,
                      NativeAppObject *app, NPlan *plan, const cel_route_match *m)
{
    PyObject *scope = NULL, *pp = NULL, *coro = NULL, *cors_req = NULL;
    if (!(scope = celeris_build_scope(self, c, req)) || !(pp = PyDict_New()))
        goto error;
    for (size_t j = 0; j < m->nparams; j++) {
        /* request.path_params: every template parameter, through its
         * convertor when the endpoint declares it with one */
        PyObject *conv = NULL;
        for (Py_ssize_t i = 0; i < plan->nparams; i++)
            if (plan->params[i].where == P_PATH && plan->params[i].path_slot == (int)j)
                conv = plan->params[i].convertor;
        PyObject *s = PyUnicode_DecodeUTF8(m->params[j].value.p, (Py_ssize_t)m->params[j].value.len,
                                           "strict");
        if (s && conv)
            Py_SETREF(s, PyObject_CallMethod(conv, "convert", "O", s));
        PyObject *k = s ? PyUnicode_FromStringAndSize(m->params[j].name.p,
                                                      (Py_ssize_t)m->params[j].name.len) : NULL;
        int rc = k ? PyDict_SetItem(pp, k, s) : -1;
        Py_XDECREF(k);
        Py_XDECREF(s);
        if (rc < 0)
            goto error;
    }
    PyObject *args[2] = { scope, pp };
    coro = PyObject_Vectorcall(plan->slow, args, 2, NULL);
    Py_CLEAR(scope);
    Py_CLEAR(pp);
    if (!coro)
        goto error;
    if (app->cors_start && !(cors_req = celeris__native_req_headers(req)))
        goto error;
    return celeris__native_start(self, c, req, app, plan, coro, cors_req);
error:
    if (coro)
        drop_coro(coro);
    Py_XDECREF(scope);
    Py_XDECREF(pp);
    PyErr_WriteUnraisable(plan->endpoint);
    app->declined++;
    return 0;
}

/* 8 bytes with no '%' and no byte >= 0x80?  (x ^ '%'...: a zero byte where
 * x has '%'; the borrow trick finds a zero byte exactly.) */
static int plain_word(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t y = x ^ (ones * '%');
    return !((x & highs) | ((y - ones) & ~y & highs));
}

/* 1 when p[0..n) has no '%' and no byte >= 0x80: its percent-decoding is
 * itself and it is valid UTF-8.  Checked 8 bytes at a time (the last word
 * overlapping), 4..7 bytes as two overlapping 4-byte loads. */
static int plain_ascii(const char *p, size_t n)
{
    if (n >= 8) {
        uint64_t x;
        for (size_t i = 0; i + 8 <= n; i += 8) {
            memcpy(&x, p + i, 8);
            if (!plain_word(x))
                return 0;
        }
        memcpy(&x, p + n - 8, 8);
        return plain_word(x);
    }
    if (n >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + n - 4, 4);
        return plain_word(((uint64_t)b << 32) | a);
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80 || p[i] == '%')
            return 0;
    return 1;
}

int celeris_native_dispatch(ServerObject *self, cel_conn *c, const cel_http_request *req)
{
    NativeAppObject *app = (NativeAppObject *)self->native_app;
    PyObject *cors_req = NULL;     /* owned until handed to the NativeCall */
    if (!app->enabled)
        return 0;
    const char *pp = req->path.p;
    size_t pn = req->path.len;
    if (pn == 0 || pp[0] != '/' || pn > 4096)
        return 0;                               /* absolute-form, asterisk, huge: ASGI */
    char pathbuf[4096], fullbuf[8192];
    const char *dec = pp;                       /* no '%' and all ASCII: decodes to itself */
    size_t plen = pn;
    if (!plain_ascii(pp, pn)) {
        plen = cel_url_decode(pp, pn, pathbuf, 0);
        if (!cel_url_utf8_valid(pathbuf, plen))
            return 0;
        dec = pathbuf;
    }
    celeris_npath path;
    if (!celeris__native_route_path(self, dec, plen, fullbuf, sizeof fullbuf, &path))
        return 0;
    cel_route_match m;
    int mr = cel_router_match(app->router, req->method.p, req->method.len, path.rp, path.rp_len, &m);
    if (mr == CEL_ROUTER_NONE) {
        if (!app->noroute || cors_preflight(app, req))
            return 0;
        return celeris__native_noroute(self, c, req, app, &m, &path);
    }
    if (mr != CEL_ROUTER_FULL || m.id < 0 || m.id >= app->nplans || !app->plans[m.id])
        return 0;
    NPlan *plan = app->plans[m.id];
    if (cors_preflight(app, req))
        return 0;
    if (plan->overrides_owner) {
        /* dependency_overrides are consulted per request: FastAPI's own path runs them. */
        PyObject *ov = PyObject_GetAttr(plan->overrides_owner, self->st->s_dependency_overrides);
        int busy = !ov || !PyDict_Check(ov) || PyDict_GET_SIZE(ov) > 0;
        Py_XDECREF(ov);
        PyErr_Clear();
        if (busy)
            return 0;
    }
    if (plan->has_query) {
        for (size_t i = 0; i < req->query.len; i++)
            if ((unsigned char)req->query.p[i] >= 0x80)
                return 0;                       /* Starlette decodes these as latin-1 */
    }
    PyObject *argv[NATIVE_MAX_ARGS];
    Py_ssize_t nargs = plan->nparams;
    if (nargs > NATIVE_MAX_ARGS)
        return 0;
    Py_ssize_t made = 0;
    char qbuf[4096];
    for (; made < nargs; made++) {
        NParam *q = &plan->params[made];
        const char *raw = NULL;
        size_t rn = 0;
        int present;
        int latin1 = 0;
        if (q->where == P_PATH) {
            raw = m.params[q->path_slot].value.p;
            rn = m.params[q->path_slot].value.len;
            present = 1;
        } else if (q->where == P_QUERY && q->multi) {
            /* FastAPI: an empty list is a missing value (default or 422). */
            PyObject *lst = query_getlist(req->query.p, req->query.len, q->key, q->key_len);
            if (!lst) {
                if (PyErr_Occurred())
                    goto error;
                goto decline;
            }
            PyObject *v;
            if (PyList_GET_SIZE(lst) == 0) {
                Py_DECREF(lst);
                v = param_value(app, q, NULL, 0, 0, 0);
            } else {
                v = validate(app, q, lst);
                Py_DECREF(lst);
            }
            if (!v) {
                if (PyErr_Occurred())
                    goto error;
                goto invalid;
            }
            argv[made] = v;
            continue;
        } else if (q->where == P_QUERY) {
            present = cel_url_query_lookup(req->query.p, req->query.len, q->key, q->key_len, qbuf,
                                   sizeof qbuf, &rn);
            if (present < 0)
                goto decline;
            raw = qbuf;
        } else if (q->where == P_HEADER) {
            present = celeris__native_header(req, q->key, q->key_len, &raw, &rn);
            latin1 = 1;
        } else {
            /* request.cookies: Starlette's cookie_parser over the first
             * Cookie header (urlcode.c), values unquoted as http.cookies */
            const char *ch;
            size_t chn;
            present = celeris__native_header(req, "cookie", 6, &ch, &chn)
                      ? cel_cookie_lookup(ch, chn, q->key, q->key_len, qbuf, sizeof qbuf, &rn) : 0;
            if (present < 0)
                goto decline;
            raw = qbuf;
            latin1 = 1;
        }
        PyObject *v = param_value(app, q, raw, rn, present, latin1);
        if (!v) {
            if (PyErr_Occurred())
                goto error;
            goto invalid;
        }
        argv[made] = v;
    }
    if (app->cors_start && !(cors_req = celeris__native_req_headers(req)))
        goto error;
    if (plan->runner)
        return dispatch_runner(self, c, req, app, plan, argv, nargs, cors_req);
    PyObject *coro;
    if (plan->is_coroutine) {
        coro = PyObject_Vectorcall(plan->endpoint, argv, 0, plan->kwnames);
    } else {
        PyObject *kw = PyDict_New();
        coro = NULL;
        if (kw) {
            int ok = 0;
            for (Py_ssize_t i = 0; i < nargs; i++)
                if ((ok = PyDict_SetItem(kw, PyTuple_GET_ITEM(plan->kwnames, i), argv[i])) < 0)
                    break;
            PyObject *pool = ok == 0 ? celeris_server_pool(self) : NULL;
            if (pool && app->mw_run) {
                /* stack mode: the user middleware runs first, and may never
                 * call the route (or send the request elsewhere): the job is
                 * submitted when the native call first runs */
                PyObject *a[3] = { pool, plan->endpoint, kw };
                coro = PyObject_Vectorcall(app->rt_submit_later, a, 3, NULL);
            } else if (pool) {
                /* def endpoint: in the pool's worker thread; driven through
                 * the Future's iterator (await fut). */
                PyObject *a[3] = { pool, plan->endpoint, kw };
                PyObject *fut = PyObject_VectorcallMethod(self->st->s_submit, a,
                                                          3, NULL);
                coro = fut ? PyObject_GetIter(fut) : NULL;
                Py_XDECREF(fut);
            }
            Py_DECREF(kw);
        }
    }
    for (Py_ssize_t i = 0; i < made; i++)
        Py_DECREF(argv[i]);
    made = 0;
    if (!coro)
        goto error;
    return celeris__native_start(self, c, req, app, plan, coro, cors_req);

invalid:
    /* A parameter is invalid or missing: FastAPI's own validation answers
     * (invalid.py: its 422, or the app's handler) on a simple plan; a runner
     * plan's dependencies would run first, so FastAPI's path does that. */
    if (plan->slow) {
        for (Py_ssize_t i = 0; i < made; i++)
            Py_DECREF(argv[i]);
        made = 0;
        return start_slow(self, c, req, app, plan, &m);
    }
decline:
    for (Py_ssize_t i = 0; i < made; i++)
        Py_DECREF(argv[i]);
    Py_XDECREF(cors_req);
    app->declined++;
    return 0;
error:
    for (Py_ssize_t i = 0; i < made; i++)
        Py_DECREF(argv[i]);
    Py_XDECREF(cors_req);
    PyErr_WriteUnraisable(plan->endpoint);
    app->declined++;
    return 0;
}
