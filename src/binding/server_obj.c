/* _celeris.Server: a cel_server driven from an asyncio loop.
 *
 * Python registers fileno() with loop.add_reader(fileno, server.poll) and
 * calls sweep() once a second.  Each parsed request becomes a scope and a
 * Cycle; handler(scope, cycle) returns the coroutine that runs the app, and
 * the binding starts it as an asyncio Task and tracks it until the
 * coroutine calls cycle.finish(). */
#include "binding.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

#define SELF(ud) ((ServerObject *)(ud))

/* uvicorn's service_unavailable app, answered in C. */
static int service_unavailable(ServerObject *self, cel_conn *c, const cel_http_request *req)
{
    if (self->error_log != Py_None) {
        PyObject *r = PyObject_CallFunction(self->error_log, "is", 503, "concurrency");
        if (!r)
            PyErr_WriteUnraisable(self->error_log);
        Py_XDECREF(r);
    }
    PyObject *scope = NULL;
    if (self->access_log != Py_None && !(scope = celeris_build_scope(self, c, req))) {
        PyErr_WriteUnraisable(self->handler);
        return CEL_ENOMEM;
    }
    PyObject *cycle = celeris_cycle_new(self, c, scope);
    Py_XDECREF(scope);
    if (!cycle) {
        PyErr_WriteUnraisable(self->handler);
        return CEL_ENOMEM;
    }
    static const char body[] = "Service Unavailable";
    const cel_header hs[3] = {
        { { "content-type", 12 }, { "text/plain; charset=utf-8", 25 } },
        { { "content-length", 14 }, { "19", 2 } },
        { { "connection", 10 }, { "close", 5 } },
    };
    int rc = celeris_cycle_respond((CycleObject *)cycle, 503, hs, 3, NULL, body, sizeof body - 1);
    CycleObject *cy = (CycleObject *)cycle;
    if (rc < 0) {
        PyErr_WriteUnraisable(self->handler);
        if (cy->conn == c)
            c->user = NULL;
        cy->conn = NULL;
    }
    int started = cy->response_started;
    Py_DECREF(cycle);
    return rc < 0 && !started ? CEL_ENOMEM : 0;
}

static int on_request(void *ud, cel_conn *c, const cel_http_request *req)
{
    ServerObject *self = SELF(ud);
    /* As uvicorn: open connections (this one included) or running requests
     * at the limit -> 503. */
    if (self->limit_concurrency > 0
        && ((Py_ssize_t)cel_server_num_connections(self->srv) >= self->limit_concurrency
            || self->live_count >= self->limit_concurrency))
        return service_unavailable(self, c, req);
    /* WebSocket handshakes (c->ws, validated by the core) never go to the
     * native tier: its dispatcher matches on method and path only. */
    int ws = c->ws != NULL;
    if (!ws && self->native_app && celeris_native_dispatch(self, c, req))
        return 0;
    PyObject *scope = celeris_build_scope(self, c, req);
    if (!scope) {
        PyErr_WriteUnraisable(self->handler);
        return CEL_ENOMEM;
    }
    PyObject *cycle = celeris_cycle_new(self, c, self->access_log != Py_None && !ws ? scope : NULL);
    if (!cycle) {
        Py_DECREF(scope);
        PyErr_WriteUnraisable(self->handler);
        return CEL_ENOMEM;
    }
    if (ws && self->ws_log != Py_None)
        ((CycleObject *)cycle)->ws_scope = Py_NewRef(scope);
    PyObject *args[2] = { scope, cycle };
    PyObject *handler = ws && self->ws_handler != Py_None ? self->ws_handler : self->handler;
    PyObject *coro = PyObject_Vectorcall(handler, args, 2, NULL);
    Py_DECREF(scope);
    CycleObject *cy = (CycleObject *)cycle;
    int rc = coro ? celeris_drive(self, c, cy, coro) : -1;
    if (rc < 0) {
        PyErr_WriteUnraisable(self->handler);
        if (coro) {
            PyObject *r = PyObject_CallMethod(coro, "close", NULL);    /* never started */
            Py_XDECREF(r);
            PyErr_Clear();
        }
        Py_XDECREF(coro);
        int started = cy->response_started;
        if (cy->conn == c)
            c->user = NULL;
        cy->conn = NULL;
        Py_DECREF(cycle);
        return started ? 0 : CEL_ENOMEM;
    }
    Py_DECREF(coro);
    Py_DECREF(cycle);
    return 0;
}

static void on_body(void *ud, cel_conn *c)
{
    (void)ud;
    if (c->user)
        celeris_cycle_on_body((CycleObject *)c->user);
}

static void on_drain(void *ud, cel_conn *c)
{
    (void)ud;
    if (c->user)
        celeris_cycle_on_drain((CycleObject *)c->user);
}

static void on_close(void *ud, cel_conn *c)
{
    CycleObject *cy = c->user;
    c->user = NULL;
    if (cy)
        celeris_cycle_on_close(cy);
    celeris_driver_close(SELF(ud), c);
    celeris_conn_cache_free(c);
}

static void on_ws_message(void *ud, cel_conn *c, int opcode, const char *p, size_t n)
{
    (void)ud;
    if (c->user)
        celeris_ws_on_message((CycleObject *)c->user, opcode, p, n);
}

int celeris_call_soon(ServerObject *self, PyObject *cb)
{
    PyObject *args = PyTuple_Pack(1, cb);
    PyObject *r = args ? PyObject_Call(self->call_soon, args, self->call_soon_kw) : NULL;
    Py_XDECREF(args);
    if (!r) {
        PyErr_WriteUnraisable(self->call_soon);
        return -1;
    }
    Py_DECREF(r);
    return 0;
}

static void on_pending(void *ud)
{
    ServerObject *self = SELF(ud);
    if (!self->pending_scheduled && celeris_call_soon(self, self->run_pending) == 0)
        self->pending_scheduled = 1;
}

static void on_bad_request(void *ud, cel_conn *c, int err, int status)
{
    (void)c;
    ServerObject *self = SELF(ud);
    if (self->error_log == Py_None)
        return;
    PyObject *r = PyObject_CallFunction(self->error_log, "is", status, cel_strerror(err));
    if (!r)
        PyErr_WriteUnraisable(self->error_log);
    Py_XDECREF(r);
}

static void on_output(void *ud, cel_conn *c)
{
    (void)ud;
    celeris_memconn_on_output(c);
}

static void on_free(void *ud, cel_conn *c)
{
    (void)ud;
    celeris_memconn_on_free(c);
}

static int ms_from(PyObject *o, uint64_t *out)
{
    double d = PyFloat_AsDouble(o);
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    if (d < 0) {
        PyErr_SetString(PyExc_ValueError, "timeouts must be >= 0");
        return -1;
    }
    *out = (uint64_t)(d * 1000.0);
    return 0;
}

static PyObject *server_new(PyTypeObject *tp, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {
        "handler", "loop", "access_log", "error_log", "state", "root_path",
        "header_timeout", "keepalive_timeout", "body_timeout", "max_body",
        "max_request_line", "max_header_bytes", "max_headers", "date_header",
        "server_header", "backlog", "max_connections", "context", "native", "scope_patch",
        "debug_sink", "task_factory", "proxy", "limit_concurrency", "accept_batch",
        "ws_handler", "ws_log", "ws_max_size", "ws_ping_interval", "ws_ping_timeout",
        "ws_per_message_deflate", "pathsend", NULL,
    };
    PyObject *native = Py_None, *scope_patch = Py_None, *debug_sink = Py_None;
    PyObject *task_factory = Py_None;
    int ws_deflate = 1;
    int pathsend = 1;
    PyObject *ws_handler = Py_None, *ws_log = Py_None;
    unsigned long long ws_max_size = 16 * 1024 * 1024;
    PyObject *ws_ping_interval = Py_None, *ws_ping_timeout = Py_None;
    PyObject *context = Py_None;
    PyObject *proxy = Py_None;
    Py_ssize_t limit_concurrency = 0;
    int accept_batch = 64;
    PyObject *handler, *loop, *access_log = Py_None, *error_log = Py_None, *state = Py_None;
    PyObject *root_path = NULL;
    PyObject *header_timeout = NULL, *keepalive_timeout = NULL, *body_timeout = NULL;
    unsigned long long max_body = 0;
    Py_ssize_t max_request_line = 8192, max_header_bytes = 65536, max_headers = 100;
    int date_header = 1, server_header = 1, backlog = 2048;
    Py_ssize_t max_connections = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|$OOOUOOOKnnnppinOOOOOOniOOKOOpp:Server", kwlist,
                                     &handler, &loop, &access_log, &error_log, &state,
                                     &root_path, &header_timeout, &keepalive_timeout,
                                     &body_timeout, &max_body, &max_request_line,
                                     &max_header_bytes, &max_headers, &date_header,
                                     &server_header, &backlog, &max_connections, &context,
                                     &native, &scope_patch, &debug_sink, &task_factory,
                                     &proxy, &limit_concurrency, &accept_batch,
                                     &ws_handler, &ws_log, &ws_max_size, &ws_ping_interval,
                                     &ws_ping_timeout, &ws_deflate, &pathsend))
        return NULL;
    if (scope_patch != Py_None && !PyDict_Check(scope_patch)) {
        PyErr_SetString(PyExc_TypeError, "scope_patch must be a dict or None");
        return NULL;
    }
    if (state != Py_None && !PyDict_Check(state)) {
        PyErr_SetString(PyExc_TypeError, "state must be a dict or None");
        return NULL;
    }
    if (max_request_line < 64 || max_header_bytes < 64 || max_headers < 1 || max_headers > 256) {
        PyErr_SetString(PyExc_ValueError,
                        "limits: max_request_line and max_header_bytes >= 64, 1 <= max_headers <= 256");
        return NULL;
    }
    ServerObject *self = (ServerObject *)tp->tp_alloc(tp, 0);
    if (!self)
        return NULL;
    self->st = celeris_get_state_from_type(tp);
    self->module = Py_NewRef(PyType_GetModule(tp));
    self->handler = Py_NewRef(handler);
    if (native != Py_None) {
        if (!PyObject_TypeCheck(native, celeris_get_state_from_type(tp)->NativeApp_Type)) {
            PyErr_SetString(PyExc_TypeError, "native must be a NativeApp or None");
            Py_DECREF(self);
            return NULL;
        }
        self->native_app = Py_NewRef(native);
    }
    self->limit_concurrency = limit_concurrency > 0 ? limit_concurrency : 0;
    if (proxy != Py_None) {
        self->proxy_trusts = PyObject_GetAttrString(proxy, "trusts");
        self->proxy_resolve = self->proxy_trusts ? PyObject_GetAttrString(proxy, "resolve") : NULL;
        if (!self->proxy_resolve) {
            Py_DECREF(self);
            return NULL;
        }
    }
    self->loop = Py_NewRef(loop);
    self->ws_handler = Py_NewRef(ws_handler);
    self->ws_log = Py_NewRef(ws_log);
    self->access_log = Py_NewRef(access_log);
    self->error_log = Py_NewRef(error_log);
    self->state = Py_NewRef(state);
    self->scope_patch = scope_patch == Py_None ? NULL : Py_NewRef(scope_patch);
    self->debug_sink = debug_sink == Py_None ? NULL : Py_NewRef(debug_sink);
    self->root_path = root_path ? Py_NewRef(root_path) : PyUnicode_FromString("");
    self->scheme = PyUnicode_InternFromString("http");
    self->call_soon = PyObject_GetAttrString(loop, "call_soon");
    self->create_future = PyObject_GetAttrString(loop, "create_future");
    if (context != Py_None) {
        self->call_soon_kw = Py_BuildValue("{sO}", "context", context);
        if (!self->call_soon_kw)
            goto error;
    }
    /* task_factory(coro) -> Task: e.g. eagerly started Tasks (Python >= 3.12),
     * so a coroutine that finishes without suspending costs no loop turn. */
    self->pathsend = pathsend;
    /* One Driver Task per keep-alive connection (driver.c); CELERIS_CONN_DRIVER=0: a Task per request. */
    {
        const char *e = getenv("CELERIS_CONN_DRIVER");
        self->drivers = !(e && strcmp(e, "0") == 0);
    }
    self->create_task = task_factory != Py_None ? Py_NewRef(task_factory)
                                                : PyObject_GetAttrString(loop, "create_task");
    if (!self->create_task)
        goto error;
    /* Eager Driver steps (driver.c) need asyncio's current-task bookkeeping;
     * CELERIS_DRIVER_EAGER=0 turns them off (every request a Task step). */
    {
        const char *e = getenv("CELERIS_DRIVER_EAGER");
        PyObject *tasks = e && strcmp(e, "0") == 0 ? NULL : PyImport_ImportModule("asyncio.tasks");
        if (tasks) {
            self->enter_task = PyObject_GetAttrString(tasks, "_enter_task");
            self->leave_task = self->enter_task ? PyObject_GetAttrString(tasks, "_leave_task") : NULL;
            if (!self->leave_task)
                Py_CLEAR(self->enter_task);
            Py_DECREF(tasks);
        }
        PyErr_Clear();
    }
    self->run_pending = PyObject_GetAttrString((PyObject *)self, "run_pending");
    if (!self->root_path || !self->scheme || !self->call_soon || !self->create_future
        || !self->run_pending)
        goto error;
    self->root_path_bytes = PyUnicode_AsUTF8String(self->root_path);
    if (!self->root_path_bytes)
        goto error;

    cel_server_config *cfg = &self->cfg;
    cel_server_config_default(cfg);
    if ((header_timeout && ms_from(header_timeout, &cfg->header_timeout_ms) < 0)
        || (keepalive_timeout && ms_from(keepalive_timeout, &cfg->keepalive_timeout_ms) < 0)
        || (body_timeout && ms_from(body_timeout, &cfg->body_timeout_ms) < 0))
        goto error;
    cfg->conn.max_body = max_body;
    cfg->conn.limits.max_request_line = (size_t)max_request_line;
    cfg->conn.limits.max_header_bytes = (size_t)max_header_bytes;
    cfg->conn.limits.max_headers = (size_t)max_headers;
    cfg->conn.date_header = date_header;
    cfg->conn.server_header = server_header;
    cfg->backlog = backlog;
    cfg->max_connections = max_connections > 0 ? (size_t)max_connections : 0;
    cfg->accept_batch = accept_batch > 0 ? accept_batch : 64;
    cfg->ws_max_message = ws_max_size;
    cfg->ws_per_message_deflate = ws_deflate;
    /* None disables pings / the pong deadline, as uvicorn's --ws-ping-* */
    if (ws_ping_interval == Py_None)
        cfg->ws_ping_interval_ms = 0;
    else if (ms_from(ws_ping_interval, &cfg->ws_ping_interval_ms) < 0)
        goto error;
    if (ws_ping_timeout == Py_None)
        cfg->ws_ping_timeout_ms = 0;
    else if (ms_from(ws_ping_timeout, &cfg->ws_ping_timeout_ms) < 0)
        goto error;

    cel_server_callbacks cb = {
        .ud = self,
        .on_request = on_request,
        .on_body = on_body,
        .on_drain = on_drain,
        .on_close = on_close,
        .on_pending = on_pending,
        .on_bad_request = on_bad_request,
        .on_output = on_output,
        .on_ws_message = on_ws_message,
        .on_free = on_free,
    };
    self->srv = cel_server_new(cfg, &cb);
    if (!self->srv) {
        PyErr_SetFromErrno(PyExc_OSError);
        goto error;
    }
    /* run_pending is a bound method holding a strong reference to self;
     * it is broken in close()/tp_clear. */
    return (PyObject *)self;
error:
    Py_DECREF(self);
    return NULL;
}

static int check_open(ServerObject *self)
{
    if (!self->srv) {
        PyErr_SetString(PyExc_RuntimeError, "server is closed");
        return -1;
    }
    return 0;
}

static PyObject *server_listen_tcp(PyObject *op, PyObject *args)
{
    ServerObject *self = (ServerObject *)op;
    const char *host;
    int port;
    if (!PyArg_ParseTuple(args, "si:listen_tcp", &host, &port) || check_open(self) < 0)
        return NULL;
    if (cel_server_listen_tcp(self->srv, host, port) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    return PyLong_FromLong(cel_server_bound_port(self->srv));
}

static PyObject *server_listen_unix(PyObject *op, PyObject *args)
{
    ServerObject *self = (ServerObject *)op;
    const char *path;
    if (!PyArg_ParseTuple(args, "s:listen_unix", &path) || check_open(self) < 0)
        return NULL;
    if (cel_server_listen_unix(self->srv, path) < 0)
        return PyErr_SetFromErrnoWithFilename(PyExc_OSError, path);
    Py_RETURN_NONE;
}

static PyObject *server_listen_fd(PyObject *op, PyObject *arg)
{
    ServerObject *self = (ServerObject *)op;
    int fd = PyLong_AsLong(arg);
    if ((fd == -1 && PyErr_Occurred()) || check_open(self) < 0)
        return NULL;
    if (cel_server_listen_fd(self->srv, fd) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *server_fileno(PyObject *op, PyObject *Py_UNUSED(a))
{
    ServerObject *self = (ServerObject *)op;
    if (check_open(self) < 0)
        return NULL;
    return PyLong_FromLong(cel_server_fd(self->srv));
}

/* One non-blocking poll of the server's epoll: the number of events handled. */
static int poll_once(ServerObject *self)
{
    self->in_loop_callback = 1;
    int n = cel_server_poll(self->srv);
    celeris_release_held(self);             /* back to the loop: no Task current */
    self->in_loop_callback = 0;
    if (self->wakes)
        celeris_waiter_run_wakes(self);     /* the core is out of the way now */
    return n;
}

static PyObject *server_poll(PyObject *op, PyObject *Py_UNUSED(a))
{
    ServerObject *self = (ServerObject *)op;
    if (self->srv) {
        int n = poll_once(self);
        if (self->busy_poll_ns && self->srv)
            celeris_busy_poll_after(self, n, 0);
    }
    Py_RETURN_NONE;
}

/* spin(): busy_poll.c's loop callback, one poll per loop turn. */
static PyObject *server_spin(PyObject *op, PyObject *Py_UNUSED(a))
{
    ServerObject *self = (ServerObject *)op;
    self->spin_scheduled = 0;
    if (self->srv && self->busy_poll_ns) {
        int n = poll_once(self);
        if (self->srv)
            celeris_busy_poll_after(self, n, 1);
    }
    Py_RETURN_NONE;
}

static PyObject *server_set_busy_poll(PyObject *op, PyObject *arg)
{
    double usec = PyFloat_AsDouble(arg);
    if (usec == -1.0 && PyErr_Occurred())
        return NULL;
    if (celeris_busy_poll_set((ServerObject *)op, usec) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *server_run_pending(PyObject *op, PyObject *Py_UNUSED(a))
{
    ServerObject *self = (ServerObject *)op;
    self->pending_scheduled = 0;
    if (self->srv) {
        self->in_loop_callback = 1;
        cel_server_run_pending(self->srv);
        celeris_release_held(self);             /* back to the loop: no Task current */
        self->in_loop_callback = 0;
        if (self->wakes)
            celeris_waiter_run_wakes(self);     /* the core is out of the way now */
    }
    Py_RETURN_NONE;
}

static PyObject *server_sweep(PyObject *op, PyObject *Py_UNUSED(a))
{
    ServerObject *self = (ServerObject *)op;
    if (self->srv)
        cel_server_sweep(self->srv, cel_server_now_ms());
    Py_RETURN_NONE;
}

static PyObject *server_stop_accepting(PyObject *op, PyObject *Py_UNUSED(a))
{
    ServerObject *self = (ServerObject *)op;
    self->stopped = 1;
    if (self->srv)
        cel_server_stop_accepting(self->srv);
    Py_RETURN_NONE;
}

static PyObject *server_close_idle(PyObject *op, PyObject *Py_UNUSED(a))
{
    ServerObject *self = (ServerObject *)op;
    if (!self->srv)
        return PyLong_FromLong(0);
    return PyLong_FromSize_t(cel_server_close_idle(self->srv));
}

static PyObject *server_close_websockets(PyObject *op, PyObject *Py_UNUSED(a))
{
    ServerObject *self = (ServerObject *)op;
    if (!self->srv)
        return PyLong_FromLong(0);
    return PyLong_FromSize_t(cel_server_ws_going_away(self->srv));
}

static PyObject *server_close(PyObject *op, PyObject *Py_UNUSED(a))
{
    ServerObject *self = (ServerObject *)op;
    cel_server *srv = self->srv;
    if (srv) {
        self->srv = NULL;
        cel_server_free(srv);   /* on_close for every connection */
    }
    celeris_server_pool_close(self);
    Py_CLEAR(self->run_pending);
    Py_CLEAR(self->spin);
    Py_RETURN_NONE;
}

static PyObject *server_memory_conn(PyObject *op, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"client", "server", "on_output", NULL};
    ServerObject *self = (ServerObject *)op;
    PyObject *client = Py_None, *srvaddr = Py_None, *cb = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|OOO:memory_conn", kwlist, &client, &srvaddr, &cb)
        || check_open(self) < 0)
        return NULL;
    return celeris_memconn_new(self, client, srvaddr, cb);
}

static PyObject *server_cancel_all(PyObject *op, PyObject *Py_UNUSED(a))
{
    ServerObject *self = (ServerObject *)op;
    Py_ssize_t n = 0;
    for (CycleObject *cy = self->live; cy; cy = cy->live_next) {
        if (cy->task) {
            PyObject *r = PyObject_CallMethod(cy->task, "cancel", NULL);
            if (!r)
                return NULL;
            Py_DECREF(r);
            n++;
        }
    }
    return PyLong_FromSsize_t(n);
}

static PyObject *get_live_requests(PyObject *op, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(((ServerObject *)op)->live_count);
}

static PyObject *get_num_connections(PyObject *op, void *Py_UNUSED(c))
{
    ServerObject *self = (ServerObject *)op;
    return PyLong_FromSize_t(self->srv ? cel_server_num_connections(self->srv) : 0);
}

static PyObject *get_requests(PyObject *op, void *Py_UNUSED(c))
{
    return PyLong_FromUnsignedLongLong(((ServerObject *)op)->requests);
}

static PyObject *get_draining(PyObject *op, void *Py_UNUSED(c))
{
    ServerObject *self = (ServerObject *)op;
    return PyBool_FromLong(self->stopped);
}

static PyObject *get_bound_port(PyObject *op, void *Py_UNUSED(c))
{
    ServerObject *self = (ServerObject *)op;
    return PyLong_FromLong(self->srv ? cel_server_bound_port(self->srv) : -1);
}

static int server_traverse(PyObject *op, visitproc visit, void *arg)
{
    ServerObject *self = (ServerObject *)op;
    Py_VISIT(self->module);
    Py_VISIT(self->handler);
    Py_VISIT(self->loop);
    Py_VISIT(self->call_soon);
    Py_VISIT(self->create_future);
    Py_VISIT(self->create_task);
    Py_VISIT(self->enter_task);
    Py_VISIT(self->held_task);
    Py_VISIT(self->leave_task);
    Py_VISIT(self->call_soon_kw);
    Py_VISIT(self->native_app);
    Py_VISIT(self->proxy_trusts);
    Py_VISIT(self->proxy_resolve);
    Py_VISIT(self->ws_handler);
    Py_VISIT(self->ws_log);
    for (CycleObject *cy = self->live; cy; cy = cy->live_next)
        Py_VISIT((PyObject *)cy);
    Py_VISIT(self->run_pending);
    Py_VISIT(self->spin);
    Py_VISIT(self->access_log);
    Py_VISIT(self->error_log);
    Py_VISIT(self->state);
    Py_VISIT(self->scope_patch);
    Py_VISIT(self->debug_sink);
    Py_VISIT(self->pool);
    Py_VISIT(self->scope_tmpl);
    Py_VISIT(self->asgi_tmpl);
    Py_VISIT((PyObject *)self->wakes);
    Py_VISIT(Py_TYPE(op));
    return 0;
}

static int server_clear(PyObject *op)
{
    ServerObject *self = (ServerObject *)op;
    while (self->live)
        celeris_cycle_unlink(self->live);
    if (self->loop)
        celeris_server_pool_close(self);
    Py_CLEAR(self->pool);
    Py_CLEAR(self->scope_tmpl);
    Py_CLEAR(self->asgi_tmpl);
    celeris_waiter_drop_wakes(self);
    Py_CLEAR(self->create_task);
    Py_CLEAR(self->enter_task);
    Py_CLEAR(self->held_task);
    Py_CLEAR(self->leave_task);
    Py_CLEAR(self->call_soon_kw);
    Py_CLEAR(self->native_app);
    Py_CLEAR(self->proxy_trusts);
    Py_CLEAR(self->proxy_resolve);
    Py_CLEAR(self->ws_handler);
    Py_CLEAR(self->ws_log);
    Py_CLEAR(self->spin);
    Py_CLEAR(self->run_pending);
    Py_CLEAR(self->handler);
    Py_CLEAR(self->loop);
    Py_CLEAR(self->call_soon);
    Py_CLEAR(self->create_future);
    Py_CLEAR(self->access_log);
    Py_CLEAR(self->error_log);
    Py_CLEAR(self->state);
    Py_CLEAR(self->scope_patch);
    Py_CLEAR(self->debug_sink);
    return 0;
}

static void server_dealloc(PyObject *op)
{
    ServerObject *self = (ServerObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->srv) {
        cel_server *srv = self->srv;
        self->srv = NULL;
        cel_server_free(srv);
    }
    server_clear(op);
    Py_CLEAR(self->root_path);
    Py_CLEAR(self->root_path_bytes);
    Py_CLEAR(self->scheme);
    Py_CLEAR(self->module);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyMethodDef server_methods[] = {
    {"listen_tcp", server_listen_tcp, METH_VARARGS, "Bind and listen on (host, port); returns the bound port."},
    {"listen_unix", server_listen_unix, METH_VARARGS, "Bind and listen on a Unix socket path."},
    {"listen_fd", server_listen_fd, METH_O, "Adopt a listening socket descriptor."},
    {"fileno", server_fileno, METH_NOARGS, "The epoll descriptor to watch for readability."},
    {"poll", server_poll, METH_NOARGS, "Handle ready socket events without blocking."},
    {"spin", server_spin, METH_NOARGS, "One poll while busy polling (queued by poll itself)."},
    {"set_busy_poll", server_set_busy_poll, METH_O,
     "set_busy_poll(usec): keep polling this long after traffic; 0 turns it off."},
    {"run_pending", server_run_pending, METH_NOARGS, "Process buffered pipelined requests."},
    {"sweep", server_sweep, METH_NOARGS, "Enforce timeouts; call about once a second."},
    {"stop_accepting", server_stop_accepting, METH_NOARGS, "Close the listening sockets."},
    {"close_idle", server_close_idle, METH_NOARGS, "Close idle connections; returns how many remain."},
    {"close", server_close, METH_NOARGS, "Close every connection and free the server."},
    {"close_websockets", server_close_websockets, METH_NOARGS,
     "Close every open WebSocket with 1012 (shutdown); returns how many."},
    {"cancel_all", server_cancel_all, METH_NOARGS, "Cancel every running request task; returns how many."},
    {"memory_conn", (PyCFunction)(void (*)(void))server_memory_conn, METH_VARARGS | METH_KEYWORDS,
     "memory_conn(client=None, server=None, on_output=None): an in-memory connection."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef server_getset[] = {
    {"num_connections", get_num_connections, NULL, "open connections", NULL},
    {"requests", get_requests, NULL, "responses completed", NULL},
    {"draining", get_draining, NULL, "stop_accepting was called", NULL},
    {"live_requests", get_live_requests, NULL, "request tasks still running", NULL},
    {"bound_port", get_bound_port, NULL, "first TCP listener's port", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot server_slots[] = {
    {Py_tp_new, server_new},
    {Py_tp_methods, server_methods},
    {Py_tp_getset, server_getset},
    {Py_tp_traverse, server_traverse},
    {Py_tp_clear, server_clear},
    {Py_tp_dealloc, server_dealloc},
    {0, NULL},
};

PyType_Spec celeris_server_spec = {
    .name = "celeris._celeris.Server",
    .basicsize = sizeof(ServerObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = server_slots,
};
