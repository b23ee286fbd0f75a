/* The native tier's per-request driver: _celeris.NativeCall implements the
 * coroutine protocol around the endpoint (or the route's runner) inside an
 * asyncio Task and writes the response -- the C JSON fast path, a prepared
 * Response object, or a Response run as an ASGI app -- through the request's
 * Cycle.  Exceptions are answered as FastAPI's default handlers and
 * Starlette's ServerErrorMiddleware would. */
#include "native.h"

#include <string.h>

#include "alloc.h"
#include "errors.h"

/* ---- NativeCall: drives the endpoint coroutine inside the Task ---- */

static PyTypeObject *NativeCall_Type(celeris_state *st) { return st->NativeCall_Type; }

PyObject *celeris_ncall_new(celeris_state *st, PyObject *inner, CycleObject *cycle,
                            NativeAppObject *app, NPlan *plan, const char *head,
                            size_t head_len)
{
    char *copy = NULL;
    if (head_len > NCALL_HEAD_INLINE && !(copy = cel_malloc(head_len))) {
        PyErr_NoMemory();
        return NULL;
    }
    NativeCallObject *nc = (NativeCallObject *)celeris_fl_new(&st->fl_ncall, NativeCall_Type(st));
    if (!nc) {
        cel_free(copy);
        return NULL;
    }
    nc->st = st;
    nc->head = copy ? copy : nc->head_inline;
    nc->head_len = head_len;
    memcpy(nc->head, head, head_len);
    nc->inner = Py_XNewRef(inner);
    nc->prep_body = NULL;
    nc->prep_resp = NULL;
    nc->cors_req = NULL;
    nc->scope = nc->request = nc->body = nc->asgi_send = NULL;
    nc->nested = 0;
    nc->cycle = (CycleObject *)Py_NewRef(cycle);
    nc->app = (NativeAppObject *)Py_NewRef(app);
    nc->plan = plan;
    nc->phase = 0;
    nc->json_declined = 0;
    PyObject_GC_Track(nc);
    return (PyObject *)nc;
}

/* Decimal digits of v into dst (no terminator); returns the length. */
static int fmt_size(char *dst, size_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (int i = 0; i < n; i++)
        dst[i] = tmp[n - 1 - i];
    return n;
}

/* The request's ASGI scope (the ASGI tier's, built from the kept head).
 * New reference, or NULL with an exception (also when the client is gone). */
static PyObject *ncall_scope(PyObject *op, PyObject *Py_UNUSED(a));

static PyObject *scope_from_head(NativeCallObject *nc)
{
    CycleObject *cy = nc->cycle;
    if (!cy->conn) {
        PyErr_SetString(PyExc_RuntimeError, "native: the connection is gone");
        return NULL;
    }
    cel_header hdrs[256];
    cel_http_request req;
    req.headers = hdrs;
    req.num_headers = 256;
    long n = cel_http_parse_request(nc->head, nc->head_len, &cy->conn->cfg->limits, &req);
    if (n < 0) {
        PyErr_SetString(PyExc_RuntimeError, "native: could not re-read the request head");
        return NULL;
    }
    PyObject *scope = celeris_build_scope(cy->server, cy->conn, &req);
    if (scope && cy->server->scope_patch && PyDict_Update(scope, cy->server->scope_patch) < 0)
        Py_CLEAR(scope);
    return scope;
}

/* The response headers after the app's CORSMiddleware.send: new reference
 * or NULL with an exception. */
static PyObject *cors_headers(NativeCallObject *nc, int status, PyObject *headers)
{
    PyObject *st = PyLong_FromLong(status);
    if (!st)
        return NULL;
    PyObject *args[3] = { nc->cors_req, st, headers };
    PyObject *r = PyObject_Vectorcall(nc->app->cors_start, args, 3, NULL);
    Py_DECREF(st);
    return r;
}

/* Serialise an endpoint result as FastAPI would, without writing anything:
 * sets nc->prep_body (JSON bytes sent with the plan's status and
 * JSONResponse's headers) or nc->prep_resp (a Response object).  Errors
 * (ResponseValidationError, unencodable values) are raised here, where
 * FastAPI raises them: inside the dependencies' exit stacks.  0 or -1. */
static int prepare_result_ex(NativeCallObject *nc, PyObject *result, int skip_c_json);

static int prepare_result(NativeCallObject *nc, PyObject *result)
{
    return prepare_result_ex(nc, result, 0);
}

/* skip_c_json: the C writer already declined this result (respond_result). */
static int prepare_result_ex(NativeCallObject *nc, PyObject *result, int skip_c_json)
{
    NativeAppObject *app = nc->app;
    NPlan *plan = nc->plan;
    Py_CLEAR(nc->prep_body);
    Py_CLEAR(nc->prep_resp);
    /* the exact JSON types are never a Response: no isinstance walk for them */
    PyTypeObject *rt = Py_TYPE(result);
    int is_resp = rt == &PyDict_Type || rt == &PyList_Type || rt == &PyUnicode_Type
                  || rt == &PyLong_Type || result == Py_None
                  ? 0 : PyObject_IsInstance(result, app->response_type);
    if (is_resp < 0)
        return -1;
    if (is_resp) {
        nc->prep_resp = Py_NewRef(result);
        return 0;
    }
    if (plan->serializer && plan->model_plain && plan->fast_json && !skip_c_json) {
        /* A dict/list/Any response model and a plain JSON tree: pydantic
         * would return the same bytes the C writer makes (any other tree
         * is declined and goes to the serializer below). */
        PyObject *body = celeris_json_dumps_mode(result, CELERIS_JSON_FASTAPI | CELERIS_JSON_PLAIN);
        if (body) {
            nc->prep_body = body;
            return 0;
        }
        PyErr_Clear();
    }
    if (plan->serializer) {
        /* response_model: FastAPI validates and dumps with pydantic-core, then
         * Response(content, media_type="application/json"). */
        PyObject *body = PyObject_CallOneArg(plan->serializer, result);
        if (!body)
            return -1;
        if (!PyBytes_Check(body)) {
            Py_DECREF(body);
            PyErr_SetString(PyExc_TypeError, "serialize_json did not return bytes");
            return -1;
        }
        if (plan->fast_json) {
            nc->prep_body = body;
            return 0;
        }
        PyObject *args[2] = { plan->status_obj, body };
        nc->prep_resp = PyObject_Vectorcall(app->rt_render_json_bytes, args, 2, NULL);
        Py_DECREF(body);
        return nc->prep_resp ? 0 : -1;
    }
    if (plan->fast_json && !skip_c_json) {
        PyObject *body = celeris_json_dumps_mode(result, CELERIS_JSON_FASTAPI);
        if (body) {
            nc->prep_body = body;
            return 0;
        }
        /* Not plain JSON data (models, datetimes, "_sa" keys, NaN ...): FastAPI's own path. */
        PyErr_Clear();
    }
    PyObject *args[3] = { plan->response_class, plan->status_obj, result };
    nc->prep_resp = PyObject_Vectorcall(app->rt_render, args, 3, NULL);
    return nc->prep_resp ? 0 : -1;
}

/* app(scope, cycle.receive, send): the ASGI call of `app` on this request,
 * as a new reference to its coroutine, or NULL with an exception.  `send` is
 * borrowed; NULL means the Cycle's own send. */
static PyObject *asgi_call(NativeCallObject *nc, PyObject *app, PyObject *send)
{
    PyObject *coro = NULL;
    PyObject *scope = ncall_scope((PyObject *)nc, NULL);
    PyObject *recv = scope ? PyObject_GetAttrString((PyObject *)nc->cycle, "receive") : NULL;
    PyObject *own = recv && !send ? PyObject_GetAttrString((PyObject *)nc->cycle, "send") : NULL;
    if (recv && (send || own)) {
        PyObject *args[3] = { scope, recv, send ? send : own };
        coro = PyObject_Vectorcall(app, args, 3, NULL);
    }
    Py_XDECREF(own);
    Py_XDECREF(recv);
    Py_XDECREF(scope);
    return coro;
}

/* Write the prepared response.  Returns 0 when written (or the client is
 * gone), 1 when *coro was set to the ASGI call of a Response that must be
 * awaited (streaming, files, background tasks), -1 with an exception. */
/* Stack mode: the prepared response (JSON bytes or a Response) runs as an
 * ASGI app with the user middleware's send -- the Response FastAPI builds
 * around JSON bytes for the fast path.  Same convention as send_prepared. */
static int send_through_middleware(NativeCallObject *nc, PyObject **coro)
{
    PyObject *response;
    int status = nc->plan->status ? nc->plan->status : 200;
    if (nc->prep_body && status >= 200 && status != 204 && status != 205 && status != 304) {
        /* the Response's two messages without the Response (runtime.send_json_bytes) */
        PyObject *args[3] = { nc->asgi_send, nc->plan->status_obj, nc->prep_body };
        *coro = PyObject_Vectorcall(nc->app->rt_send_json_bytes, args, 3, NULL);
        Py_CLEAR(nc->prep_body);
        return *coro ? 1 : -1;
    }
    if (nc->prep_body) {
        PyObject *args[2] = { nc->plan->status_obj, nc->prep_body };
        response = PyObject_Vectorcall(nc->app->rt_render_json_bytes, args, 2, NULL);
        Py_CLEAR(nc->prep_body);
    } else {
        response = nc->prep_resp;
        nc->prep_resp = NULL;
        if (!response) {
            PyErr_SetString(PyExc_RuntimeError, "native: nothing prepared to send");
            return -1;
        }
    }
    if (!response)
        return -1;
    *coro = asgi_call(nc, response, nc->asgi_send);
    Py_DECREF(response);
    return *coro ? 1 : -1;
}

static int send_prepared(NativeCallObject *nc, PyObject **coro)
{
    NativeAppObject *app = nc->app;
    NPlan *plan = nc->plan;
    *coro = NULL;
    if (nc->asgi_send)
        return send_through_middleware(nc, coro);
    if (nc->prep_body) {
        PyObject *body = nc->prep_body;
        nc->prep_body = NULL;
        int status = plan->status ? plan->status : 200;
        int rc;
        if (nc->cors_req) {
            char len[24];
            int ln = fmt_size(len, (size_t)PyBytes_GET_SIZE(body));
            PyObject *hl = Py_BuildValue("[(y#y#)(yy)]", "content-length", (Py_ssize_t)14, len,
                                         (Py_ssize_t)ln, "content-type", "application/json");
            PyObject *out = hl ? cors_headers(nc, status, hl) : NULL;
            rc = out ? celeris_cycle_respond(nc->cycle, status, NULL, 0, out, PyBytes_AS_STRING(body),
                                             (size_t)PyBytes_GET_SIZE(body)) : -1;
            Py_XDECREF(out);
            Py_XDECREF(hl);
        } else {
            /* content-length and content-type: application/json, unchecked (known valid) */
            rc = celeris_cycle_respond_fixed(nc->cycle, status, "application/json", 16,
                                             PyBytes_AS_STRING(body), (size_t)PyBytes_GET_SIZE(body));
        }
        Py_DECREF(body);
        return rc;
    }
    PyObject *response = nc->prep_resp;
    if (!response) {
        PyErr_SetString(PyExc_RuntimeError, "native: nothing prepared to send");
        return -1;
    }
    nc->prep_resp = NULL;
    PyObject *u = PyObject_CallOneArg(app->rt_unpack, response);
    if (!u) {
        Py_DECREF(response);
        return -1;
    }
    if (u != Py_None) {
        PyObject *status, *headers, *body;
        int rc = -1;
        if (PyArg_ParseTuple(u, "OOO", &status, &headers, &body) && PyBytes_Check(body)) {
            int st = (int)PyLong_AsLong(status);
            PyObject *hl = !(st == -1 && PyErr_Occurred())
                           ? (nc->cors_req ? cors_headers(nc, st, headers) : Py_NewRef(headers)) : NULL;
            if (hl)
                rc = celeris_cycle_respond(nc->cycle, st, NULL, 0, hl, PyBytes_AS_STRING(body),
                                           (size_t)PyBytes_GET_SIZE(body));
            Py_XDECREF(hl);
        } else if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "unpack: expected (status, headers, bytes)");
        }
        Py_DECREF(u);
        Py_DECREF(response);
        return rc;
    }
    Py_DECREF(u);
    /* A streaming/file/background response: it needs the ASGI scope. */
    CycleObject *cy = nc->cycle;
    if (!cy->conn) {
        Py_DECREF(response);
        return 0;                                   /* client gone: nothing to send */
    }
    PyObject *send = NULL;
    if (nc->cors_req) {
        PyObject *own = PyObject_GetAttrString((PyObject *)cy, "send");
        PyObject *a2[2] = { nc->cors_req, own };
        send = own ? PyObject_Vectorcall(nc->app->cors_wrap, a2, 2, NULL) : NULL;
        Py_XDECREF(own);
        if (!send) {
            Py_DECREF(response);
            return -1;
        }
    }
    *coro = asgi_call(nc, response, send);
    Py_XDECREF(send);
    Py_DECREF(response);
    return *coro ? 1 : -1;
}

/* Install a Response's ASGI call as the inner coroutine (phase 1). */
static int run_coro(NativeCallObject *nc, int rc, PyObject *coro)
{
    if (rc != 1)
        return rc;
    Py_SETREF(nc->inner, coro);
    nc->phase = 1;
    return 1;
}

/* Write a Response object: directly when runtime.unpack says it may be,
 * else run it as an ASGI app in this Task (phase 1).  Returns 1 when a new
 * inner coroutine was installed, 0 when done, -1 with an exception. */
static int respond_object(NativeCallObject *nc, PyObject *response)
{
    PyObject *coro;
    Py_CLEAR(nc->prep_body);
    Py_XSETREF(nc->prep_resp, Py_NewRef(response));
    int rc = send_prepared(nc, &coro);
    return run_coro(nc, rc, coro);
}

/* celeris_json_dumps_with's `use`: the JSON as the plan's response. */
static int write_json(void *ctx, const char *p, size_t n)
{
    NativeCallObject *nc = ctx;
    int status = nc->plan->status ? nc->plan->status : 200;
    return celeris_cycle_respond_fixed(nc->cycle, status, "application/json", 16, p, n);
}

/* The endpoint returned `result`.  Same return convention as respond_object. */
static int respond_result(NativeCallObject *nc, PyObject *result)
{
    NPlan *plan = nc->plan;
    PyTypeObject *rt = Py_TYPE(result);
    int skip_c_json = nc->json_declined;
    if (!skip_c_json && plan->fast_json && (!plan->serializer || plan->model_plain) && !nc->asgi_send
        && !nc->cors_req && (rt == &PyDict_Type || rt == &PyList_Type)) {
        /* prepare_result's C JSON paths with the JSON written straight from
         * the writer's buffer (no bytes object): same bytes, same headers */
        Py_CLEAR(nc->prep_body);
        Py_CLEAR(nc->prep_resp);
        int flags = CELERIS_JSON_FASTAPI | (plan->serializer ? CELERIS_JSON_PLAIN : 0);
        int rc = celeris_json_dumps_with(result, flags, write_json, nc);
        if (rc != -2)
            return rc < 0 ? -1 : 0;
        PyErr_Clear();      /* declined: FastAPI's path, without trying the C writer again */
        skip_c_json = 1;
    }
    if (prepare_result_ex(nc, result, skip_c_json) < 0)
        return -1;          /* ResponseValidationError etc.: the 500 path */
    PyObject *coro;
    int rc = send_prepared(nc, &coro);
    return run_coro(nc, rc, coro);
}

/* nc.prepare(result): see prepare_result. */
static PyObject *ncall_prepare(PyObject *op, PyObject *result)
{
    if (prepare_result((NativeCallObject *)op, result) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* nc.send(): an awaitable writing the prepared response (a Ready that
 * completes without a loop turn, or the Response's ASGI coroutine). */
static PyObject *ncall_send_prepared(PyObject *op, PyObject *Py_UNUSED(a))
{
    NativeCallObject *nc = (NativeCallObject *)op;
    PyObject *coro;
    int rc = send_prepared(nc, &coro);
    if (rc < 0)
        return NULL;
    if (rc == 1)
        return coro;
    return Py_NewRef(nc->cycle->server->st->ready_none);
}

/* The endpoint raised (exception is set).  Map it as FastAPI's middleware
 * stack would; BaseExceptions (cancellation...) propagate.  Returns 0 when
 * handled (no exception), 1 when the answer's ASGI call was installed
 * (phase 3: a handler's; phase 2: ServerErrorMiddleware's), -1 to propagate. */
static int respond_exception(NativeCallObject *nc)
{
    NativeAppObject *app = nc->app;
    PyObject *exc = PyErr_GetRaisedException_compat();
    if (!PyObject_TypeCheck(exc, (PyTypeObject *)PyExc_Exception)) {
        PyErr_SetRaisedException_compat(exc);
        return -1;
    }
    /* The app's exception handlers (handlers.py): a Response, an ASGI
     * callable running the app's own handler, or None when no handler takes it. */
    PyObject *args[2] = { (PyObject *)nc, exc };
    PyObject *resp = PyObject_Vectorcall(app->rt_handle_exception, args, 2, NULL);
    int next_phase = 3;         /* a handler's answer runs */
    if (resp == Py_None && nc->nested) {
        /* inside the user middleware (stack mode): no handler took it, so it
         * goes out through the middleware to ServerErrorMiddleware (the outer call) */
        Py_DECREF(resp);
        PyErr_SetRaisedException_compat(exc);
        return -1;
    }
    if (resp == Py_None) {
        Py_DECREF(resp);
        Py_CLEAR(nc->cors_req);     /* ServerErrorMiddleware sits outside user middleware */
        resp = PyObject_Vectorcall(app->rt_server_response, args, 2, NULL);
        next_phase = 2;             /* its answer runs: nothing catches a failure of it */
    }
    Py_DECREF(exc);
    if (!resp)
        return -1;
    int rc = respond_object(nc, resp);
    Py_DECREF(resp);
    if (rc == 1)
        nc->phase = next_phase;
    return rc;
}

/* An Exception nothing answered: logged as the server logs what
 * ServerErrorMiddleware re-raises, then the Cycle's 500 (or a close when the
 * response started).  Steals err; leaves no exception set. */
static void log_app_failure(NativeCallObject *nc, PyObject *err)
{
    PyObject *r = PyObject_CallOneArg(nc->app->rt_server_error, err);
    Py_XDECREF(r);
    PyErr_Clear();
    Py_DECREF(err);
    r = celeris_cycle_app_failed(nc->cycle);
    Py_XDECREF(r);
    PyErr_Clear();
}

/* An Exception after the response started, as ServerErrorMiddleware meets
 * it: the app's 500 handler still runs (runtime server_started: its answer
 * is not sent, the exception is logged after it) -- installed as phase 2,
 * return 1 -- or, without such a handler, the exception was logged and the
 * Cycle fails (return 0).  Steals err; leaves no exception set on 0. */
static int server_error_started(NativeCallObject *nc, PyObject *err)
{
    PyObject *args[2] = { (PyObject *)nc, err };
    PyObject *call = PyObject_Vectorcall(nc->app->rt_server_started, args, 2, NULL);
    if (call && call != Py_None) {
        /* run even when the client is gone (the handler's side effects,
         * then the log): called directly, not through send_prepared */
        Py_DECREF(err);
        PyObject *coro = asgi_call(nc, call, NULL);
        Py_DECREF(call);
        if (coro) {
            Py_SETREF(nc->inner, coro);
            nc->phase = 2;
            return 1;
        }
        log_app_failure(nc, PyErr_GetRaisedException_compat());
        return 0;
    }
    if (!call) {
        log_app_failure(nc, err);   /* server_started itself failed: log the original */
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(call);
    Py_DECREF(err);
    PyObject *r = celeris_cycle_app_failed(nc->cycle);
    Py_XDECREF(r);
    PyErr_Clear();
    return 0;
}

/* Advance the inner coroutine with `value` (or throw when exc is set).
 * Returns a yielded object (the Task awaits it), or NULL: with *finished set
 * and no exception when the call is done, else with an exception.  (No
 * StopIteration is raised here: am_send reports the end without creating
 * one; the Python-level send/throw raise it themselves.) */
static PyObject *ncall_step_from(NativeCallObject *nc, PyObject *value, PyObject *exc,
                                 int *finished, int have_first, PySendResult first_sr,
                                 PyObject *first_result)
{
    *finished = 0;
    for (;;) {
        PyObject *result = NULL;
        int done;
        if (have_first) {
            /* the outcome of a step already taken (celeris_ncall_first_step) */
            have_first = 0;
            if (first_sr == PYGEN_NEXT)
                return first_result;
            result = first_result;
            done = first_sr == PYGEN_RETURN ? 1 : -1;
        } else if (exc) {
            PyObject *r = PyObject_CallMethod(nc->inner, "throw", "O", exc);
            exc = NULL;
            if (r)
                return r;
            if (PyErr_ExceptionMatches(PyExc_StopIteration)) {
                PyObject *e = PyErr_GetRaisedException_compat();
                result = PyObject_GetAttrString(e, "value");
                Py_DECREF(e);
                if (!result)
                    return NULL;
                done = 1;
            } else {
                done = -1;
            }
        } else {
            PySendResult sr = PyIter_Send(nc->inner, value ? value : Py_None, &result);
            if (sr == PYGEN_NEXT)
                return result;
            done = sr == PYGEN_RETURN ? 1 : -1;
        }
        value = NULL;
        CycleObject *cy = nc->cycle;
        int rc;
        if (nc->phase == 0 && nc->plan->runner) {
            /* The runner responded itself (nc.prepare / nc.send); only an
             * exception it let out is left to map. */
            Py_XDECREF(result);
            if (done == 1)
                goto finished;
            if (!cy->response_started && !cy->disconnected && cy->conn) {
                rc = respond_exception(nc);
                if (rc == 1)
                    continue;
                if (rc == 0)
                    goto finished;
            } else {
                if (nc->nested)
                    return NULL;            /* out through the middleware */
                PyObject *err = PyErr_GetRaisedException_compat();
                if (PyObject_TypeCheck(err, (PyTypeObject *)PyExc_Exception)) {
                    /* After the response started (teardown of a yield
                     * dependency, a background task): ServerErrorMiddleware's
                     * handler, then logged as it re-raises it to the server. */
                    if (server_error_started(nc, err) == 1)
                        continue;
                    goto finished;
                }
                PyErr_SetRaisedException_compat(err);
            }
            if (nc->nested)
                return NULL;
            PyObject *err = PyErr_GetRaisedException_compat();
            PyObject *r = celeris_cycle_abort(cy);
            Py_XDECREF(r);
            PyErr_Clear();
            PyObject *f = celeris_cycle_finish(cy);
            Py_XDECREF(f);
            PyErr_SetRaisedException_compat(err);
            return NULL;
        }
        if (nc->phase == 0) {
            rc = done == 1 ? respond_result(nc, result) : respond_exception(nc);
            Py_XDECREF(result);
            if (rc == 1)
                continue;               /* phase 1: drive the Response's ASGI call */
            if (rc < 0) {
                if (done == 1 || !PyErr_ExceptionMatches(PyExc_Exception)) {
                    /* serialisation failed, or cancellation: answer what FastAPI would */
                    if (done == 1 && PyErr_ExceptionMatches(PyExc_Exception)) {
                        rc = respond_exception(nc);
                        if (rc == 1)
                            continue;
                        if (rc == 0)
                            goto finished;
                    }
                }
                if (nc->nested)
                    return NULL;
                PyObject *err = PyErr_GetRaisedException_compat();
                PyObject *r = celeris_cycle_abort(cy);
                Py_XDECREF(r);
                PyErr_Clear();
                PyObject *f = celeris_cycle_finish(cy);
                Py_XDECREF(f);
                PyErr_SetRaisedException_compat(err);
                return NULL;
            }
        } else {
            Py_XDECREF(result);
            if (done < 0 && (nc->phase == 1 || (nc->phase == 3 && !nc->nested)) && !cy->response_started
                && !cy->disconnected && cy->conn && PyErr_ExceptionMatches(PyExc_Exception)) {
                if (nc->phase == 1) {
                    /* The Response raised before starting (a FileResponse whose
                     * file is missing...): FastAPI runs it inside
                     * wrap_app_handling_exceptions and ServerErrorMiddleware, so
                     * it is answered like an endpoint's exception (phase 3). */
                    rc = respond_exception(nc);
                } else {
                    /* The exception handler's answer failed: Starlette lets that
                     * out to ServerErrorMiddleware -- its answer, once (phase 2). */
                    PyObject *err = PyErr_GetRaisedException_compat();
                    Py_CLEAR(nc->cors_req);
                    PyObject *args[2] = { (PyObject *)nc, err };
                    PyObject *resp = PyObject_Vectorcall(nc->app->rt_server_response, args, 2, NULL);
                    Py_DECREF(err);
                    rc = resp ? respond_object(nc, resp) : -1;
                    Py_XDECREF(resp);
                    if (rc == 1)
                        nc->phase = 2;
                }
                if (rc == 1)
                    continue;
                if (rc == 0)
                    goto finished;
            }
            if (done < 0 && nc->nested)
                return NULL;                /* out through the middleware */
            if (done < 0) {
                PyObject *err = PyErr_GetRaisedException_compat();
                if (PyObject_TypeCheck(err, (PyTypeObject *)PyExc_Exception)) {
                    if (nc->phase == 2)
                        log_app_failure(nc, err);   /* ServerErrorMiddleware's own answer failed */
                    else if (server_error_started(nc, err) == 1)
                        continue;
                } else {
                    PyObject *f = celeris_cycle_finish(cy);
                    Py_XDECREF(f);
                    PyErr_SetRaisedException_compat(err);
                    return NULL;
                }
            } else if (!nc->nested && !cy->response_complete && !cy->disconnected) {
                PyObject *r = celeris_cycle_abort(cy);
                Py_XDECREF(r);
                PyErr_Clear();
            }
        }
    finished:
        if (!nc->nested) {
            PyObject *f = celeris_cycle_finish(cy);
            Py_XDECREF(f);
        }
        *finished = 1;
        return NULL;
    }
}

static PyObject *ncall_step(NativeCallObject *nc, PyObject *value, PyObject *exc, int *finished)
{
    return ncall_step_from(nc, value, exc, finished, 0, PYGEN_ERROR, NULL);
}

/* coro.send(value) / throw(): the end raises StopIteration (value None). */
static PyObject *ncall_step_raising(NativeCallObject *nc, PyObject *value, PyObject *exc)
{
    int finished;
    PyObject *r = ncall_step(nc, value, exc, &finished);
    if (!r && finished)
        PyErr_SetNone(PyExc_StopIteration);
    return r;
}

static PyObject *ncall_send(PyObject *op, PyObject *value)
{
    return ncall_step_raising((NativeCallObject *)op, value, NULL);
}

/* iternext: NULL without an exception is the end. */
static PyObject *ncall_next(PyObject *op)
{
    int finished;
    return ncall_step((NativeCallObject *)op, Py_None, NULL, &finished);
}

/* am_send (PyIter_Send: the Driver, and Tasks on 3.12+): the end is
 * PYGEN_RETURN with None, no StopIteration created. */
static PySendResult ncall_am_send(PyObject *op, PyObject *arg, PyObject **presult)
{
    int finished;
    PyObject *r = ncall_step((NativeCallObject *)op, arg, NULL, &finished);
    if (r) {
        *presult = r;
        return PYGEN_NEXT;
    }
    if (finished) {
        *presult = Py_NewRef(Py_None);
        return PYGEN_RETURN;
    }
    *presult = NULL;
    return PYGEN_ERROR;
}

/* ---- a request's first step before any object exists ---- */

/* celeris_json_dumps_with's `use` for celeris_ncall_first_step: the JSON as
 * the plan's response, straight onto the connection (no Cycle: nothing
 * else of the exchange is left once it is written). */
static int write_json_conn(void *ctx, const char *p, size_t n)
{
    celeris_ncall_first *a = ctx;
    cel_conn *c = a->c;
    int status = a->plan->status ? a->plan->status : 200;
    if (cel_conn_respond_fixed(c, status, "application/json", 16, p, n, cel_server_date()) < 0) {
        PyErr_NoMemory();       /* nothing written */
        return -1;
    }
    a->self->requests++;
    cel_server_response_done(a->self->srv, c);
    return 0;
}

PySendResult celeris_ncall_first_step(void *arg, PyObject *coro, PyObject *task,
                                      PyObject **presult, PyObject **pnext)
{
    celeris_ncall_first *a = arg;
    NPlan *plan = a->plan;
    cel_conn *c = a->c;
    PyObject *result = NULL;
    *pnext = NULL;
    PySendResult sr = PyIter_Send(coro, Py_None, &result);
    int declined = 0;
    if (sr == PYGEN_RETURN && plan->fast_json
        && (Py_TYPE(result) == &PyDict_Type || Py_TYPE(result) == &PyList_Type)
        && (!plan->serializer || plan->model_plain) && c->state == CEL_CONN_ACTIVE
        && !c->resp_started && !c->user) {
        /* respond_result's C JSON path, written as the NativeCall would */
        int flags = CELERIS_JSON_FASTAPI | (plan->serializer ? CELERIS_JSON_PLAIN : 0);
        int rc = celeris_json_dumps_with(result, flags, write_json_conn, a);
        if (rc == 0) {
            *presult = result;
            return PYGEN_RETURN;
        }
        /* declined (FastAPI's path answers, without the C writer again), or
         * no memory for the response (the NativeCall tries again and answers
         * the error as before) */
        declined = rc == -2;
        PyErr_Clear();
    }
    /* Anything else: the request's Cycle and NativeCall, made now, carry on
     * from this outcome exactly as if the call had taken the step itself. */
    PyObject *exc = sr == PYGEN_ERROR ? PyErr_GetRaisedException_compat() : NULL;
    PyObject *cycle = celeris_cycle_new(a->self, c, NULL);
    PyObject *nc = cycle ? celeris_ncall_new(a->self->st, coro, (CycleObject *)cycle, a->app, plan,
                                             a->req->method.p,
                                             (size_t)(c->head_end - a->req->method.p))
                         : NULL;
    if (!nc) {
        /* No memory left to answer with: the connection is closed after
         * what is already written (a suspended endpoint is closed). */
        PyObject *err = PyErr_GetRaisedException_compat();
        if (cycle) {
            CycleObject *cy = (CycleObject *)cycle;
            if (c->user == cy)
                c->user = NULL;
            cy->conn = NULL;
            Py_DECREF(cycle);
        }
        c->keep_alive = 0;
        c->state = CEL_CONN_CLOSING;
        if (sr == PYGEN_NEXT) {
            PyObject *r = PyObject_CallMethod(coro, "close", NULL);
            Py_XDECREF(r);
            PyErr_Clear();
        }
        Py_XDECREF(result);
        Py_XDECREF(exc);
        if (err)
            PyErr_SetRaisedException_compat(err);
        else
            PyErr_NoMemory();
        return PYGEN_ERROR;
    }
    celeris_drive_track((CycleObject *)cycle, task);
    Py_DECREF(cycle);                   /* the call holds it */
    ((NativeCallObject *)nc)->json_declined = declined;
    if (exc)
        PyErr_SetRaisedException_compat(exc);
    int finished;
    PyObject *r = ncall_step_from((NativeCallObject *)nc, NULL, NULL, &finished, 1, sr, result);
    *pnext = nc;
    if (r) {
        *presult = r;
        return PYGEN_NEXT;
    }
    if (finished) {
        *presult = Py_NewRef(Py_None);
        return PYGEN_RETURN;
    }
    *presult = NULL;
    return PYGEN_ERROR;
}

static PyObject *ncall_throw(PyObject *op, PyObject *args)
{
    PyObject *typ, *val = NULL, *tb = NULL;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb))
        return NULL;
    PyObject *exc;
    if (PyExceptionInstance_Check(typ)) {
        exc = Py_NewRef(typ);
    } else {
        exc = val && val != Py_None ? PyObject_CallOneArg(typ, val) : PyObject_CallNoArgs(typ);
        if (!exc)
            return NULL;
    }
    PyObject *r = ncall_step_raising((NativeCallObject *)op, NULL, exc);
    Py_DECREF(exc);
    return r;
}

static PyObject *ncall_close(PyObject *op, PyObject *Py_UNUSED(a))
{
    NativeCallObject *nc = (NativeCallObject *)op;
    if (!nc->inner)
        Py_RETURN_NONE;
    PyObject *r = PyObject_CallMethod(nc->inner, "close", NULL);
    if (!r)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* nc.scope(): the request's ASGI scope, built on first use and then the same
 * dict (as in Starlette, the endpoint's Request, an exception handler's and a
 * streamed Response all share one scope). */
static PyObject *ncall_scope(PyObject *op, PyObject *Py_UNUSED(a))
{
    NativeCallObject *nc = (NativeCallObject *)op;
    if (!nc->scope && !(nc->scope = scope_from_head(nc)))
        return NULL;
    return Py_NewRef(nc->scope);
}

/* The settable object slots: 0 request, 1 body, 2 asgi_send, 3 scope. */
static PyObject **ncall_slot(NativeCallObject *nc, void *closure)
{
    switch ((int)(intptr_t)closure) {
    case 1: return &nc->body;
    case 2: return &nc->asgi_send;
    case 3: return &nc->scope;
    default: return &nc->request;
    }
}

static PyObject *ncall_get_obj(PyObject *op, void *closure)
{
    PyObject *v = *ncall_slot((NativeCallObject *)op, closure);
    return Py_NewRef(v ? v : Py_None);
}

static int ncall_set_obj(PyObject *op, PyObject *value, void *closure)
{
    PyObject **slot = ncall_slot((NativeCallObject *)op, closure);
    if (closure == (void *)3 && value && value != Py_None && !PyDict_Check(value)) {
        PyErr_SetString(PyExc_TypeError, "scope must be a dict");
        return -1;
    }
    Py_XSETREF(*slot, value && value != Py_None ? Py_NewRef(value) : NULL);
    return 0;
}

/* nc.asgi_send(): the ASGI send for an object the runner calls as an ASGI
 * app itself (the cycle's send, through CORSMiddleware's when it applies). */
static PyObject *ncall_asgi_send(PyObject *op, PyObject *Py_UNUSED(a))
{
    NativeCallObject *nc = (NativeCallObject *)op;
    if (nc->asgi_send)
        return Py_NewRef(nc->asgi_send);    /* stack mode: the user middleware's send */
    PyObject *send = PyObject_GetAttrString((PyObject *)nc->cycle, "send");
    if (send && nc->cors_req) {
        PyObject *a2[2] = { nc->cors_req, send };
        Py_SETREF(send, PyObject_Vectorcall(nc->app->cors_wrap, a2, 2, NULL));
    }
    return send;
}

static PyObject *ncall_get_cycle(PyObject *op, void *Py_UNUSED(c))
{
    return Py_NewRef((PyObject *)((NativeCallObject *)op)->cycle);
}

static PyObject *ncall_get_route_index(PyObject *op, void *Py_UNUSED(c))
{
    NPlan *p = ((NativeCallObject *)op)->plan;
    return PyLong_FromSsize_t(p ? p->index : -1);
}

static PyGetSetDef ncall_getset[] = {
    {"cycle", ncall_get_cycle, NULL, "the request's Cycle (ASGI receive/send)", NULL},
    {"route_index", ncall_get_route_index, NULL,
     "the route's index in the compiled route table (-1: a no-route answer)", NULL},
    {"request", ncall_get_obj, ncall_set_obj, "the Request the runner built (handed to exception handlers)", NULL},
    {"body", ncall_get_obj, ncall_set_obj, "the raw request body once read, or None", (void *)1},
    {"mw_send", ncall_get_obj, ncall_set_obj,
     "stack mode: the ASGI send every response goes through (the user middleware's)", (void *)2},
    {"scope_dict", ncall_get_obj, ncall_set_obj,
     "the request's scope once built; stack mode sets the scope the middleware passed", (void *)3},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyObject *ncall_receive(PyObject *op, PyObject *Py_UNUSED(a))
{
    NativeCallObject *nc = (NativeCallObject *)op;
    if (!nc->cycle) {
        PyErr_SetString(PyExc_RuntimeError, "request is over");
        return NULL;
    }
    return celeris_cycle_receive(nc->cycle);
}

static PyObject *ncall_await(PyObject *op)
{
    return Py_NewRef(op);
}

static int ncall_traverse(PyObject *op, visitproc visit, void *arg)
{
    NativeCallObject *nc = (NativeCallObject *)op;
    Py_VISIT(nc->inner);
    Py_VISIT(nc->cycle);
    Py_VISIT(nc->app);
    Py_VISIT(nc->prep_body);
    Py_VISIT(nc->prep_resp);
    Py_VISIT(nc->cors_req);
    Py_VISIT(nc->scope);
    Py_VISIT(nc->request);
    Py_VISIT(nc->body);
    Py_VISIT(nc->asgi_send);
    Py_VISIT(Py_TYPE(op));
    return 0;
}

static int ncall_clear(PyObject *op)
{
    NativeCallObject *nc = (NativeCallObject *)op;
    Py_CLEAR(nc->inner);
    Py_CLEAR(nc->cycle);
    Py_CLEAR(nc->app);
    Py_CLEAR(nc->prep_body);
    Py_CLEAR(nc->prep_resp);
    Py_CLEAR(nc->cors_req);
    Py_CLEAR(nc->scope);
    Py_CLEAR(nc->request);
    Py_CLEAR(nc->body);
    Py_CLEAR(nc->asgi_send);
    return 0;
}

static void ncall_dealloc(PyObject *op)
{
    NativeCallObject *nc = (NativeCallObject *)op;
    PyObject_GC_UnTrack(op);
    ncall_clear(op);
    if (nc->head != nc->head_inline)
        cel_free(nc->head);
    celeris_fl_release(&nc->st->fl_ncall, op);
}

/* nc.run_sync(func, kwargs) -> Future: func(**kwargs) in the server's
 * thread pool (threadpool.c), as FastAPI's run_in_threadpool. */
static PyObject *ncall_run_sync(PyObject *op, PyObject *const *args, Py_ssize_t nargs)
{
    NativeCallObject *nc = (NativeCallObject *)op;
    if (!nc->cycle || !nc->cycle->server) {
        PyErr_SetString(PyExc_RuntimeError, "request is over");
        return NULL;
    }
    PyObject *pool = celeris_server_pool(nc->cycle->server);
    if (!pool)
        return NULL;
    PyObject *a[3] = { pool, nargs > 0 ? args[0] : NULL, nargs > 1 ? args[1] : NULL };
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "run_sync(func, kwargs)");
        return NULL;
    }
    return PyObject_VectorcallMethod(nc->cycle->server->st->s_submit, a, 3, NULL);
}

static PyMethodDef ncall_methods[] = {
    {"run_sync", (PyCFunction)(void (*)(void))ncall_run_sync, METH_FASTCALL,
     "Future of func(**kwargs) run in the server's thread pool."},
    {"send", ncall_send, METH_O, NULL},
    {"throw", ncall_throw, METH_VARARGS, NULL},
    {"close", ncall_close, METH_NOARGS, NULL},
    {"prepare", ncall_prepare, METH_O, "Serialise the endpoint's result as FastAPI would."},
    {"respond", ncall_send_prepared, METH_NOARGS, "Awaitable: write the prepared response."},
    {"receive", ncall_receive, METH_NOARGS, "The request's ASGI receive()."},
    {"scope", ncall_scope, METH_NOARGS, "The request's ASGI scope (as the ASGI tier's; built once, then shared)."},
    {"asgi_send", ncall_asgi_send, METH_NOARGS, "The ASGI send (with CORS when it applies)."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ncall_slots[] = {
    {Py_am_await, ncall_await},
    {Py_am_send, ncall_am_send},
    {Py_tp_iter, ncall_await},
    {Py_tp_iternext, ncall_next},
    {Py_tp_methods, ncall_methods},
    {Py_tp_getset, ncall_getset},
    {Py_tp_traverse, ncall_traverse},
    {Py_tp_clear, ncall_clear},
    {Py_tp_dealloc, ncall_dealloc},
    {0, NULL},
};

PyType_Spec celeris_nativecall_spec = {
    .name = "celeris._celeris.NativeCall",
    .basicsize = sizeof(NativeCallObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = ncall_slots,
};

