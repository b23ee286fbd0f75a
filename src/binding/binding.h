/* Shared declarations of the _celeris extension module.
 *
 * Ownership: every PyObject* field below is a strong reference owned by the
 * struct that holds it, released in its dealloc/clear, unless marked
 * "borrowed".  Core objects (cel_server, cel_conn) never hold Python
 * references except through cel_conn.user (borrowed Cycle*) and
 * cel_conn.cache (ConnCache*, owned by the binding, freed in on_close). */
#ifndef CELERIS_BINDING_H
#define CELERIS_BINDING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "server.h"

/* Interned strings and objects of the WebSocket path (websocket.c). */
typedef struct {
    PyObject *s_websocket, *s_websocket_connect, *s_websocket_accept, *s_websocket_receive,
             *s_websocket_send, *s_websocket_close, *s_websocket_disconnect,
             *s_ws_http_response_start, *s_ws_http_response_body, *s_text, *s_bytes, *s_code,
             *s_reason, *s_subprotocol, *s_subprotocols, *s_extensions, *s_v24, *s_ws, *s_wss,
             *s_ext_http_response;
    /* {"type": "websocket.receive", "text"/"bytes": None}: each message's dict
     * is a copy with the data put in (a copy of a two-key dict costs less
     * than building it key by key) */
    PyObject *tmpl_text, *tmpl_bytes;
    PyObject *ClientDisconnected;   /* celeris._celeris.ClientDisconnected(OSError) */
} celeris_ws_state;

/* A free list of one type's objects, kept between requests (freelist.c):
 * `items` hold the memory of deallocated objects (untracked, cleared,
 * refcount 0, no type reference), reused by the next new object of the type
 * instead of a GC allocation.  Only touched with the GIL held. */
#define CELERIS_FREELIST_MAX 32
typedef struct {
    PyObject *items[CELERIS_FREELIST_MAX];
    int n;
    int closed;                     /* module state cleared: nothing is kept any more */
} celeris_freelist;

typedef struct {
    PyTypeObject *Server_Type;
    PyTypeObject *Cycle_Type;
    PyTypeObject *Ready_Type;
    PyTypeObject *MemConn_Type;
    PyTypeObject *NativeApp_Type;
    PyTypeObject *NativeCall_Type;
    PyTypeObject *ThreadPool_Type;
    PyTypeObject *Driver_Type;
    PyTypeObject *Waiter_Type;
    PyObject *ready_none;           /* awaitable resolving to None */
    PyObject *disconnect_msg_proto; /* {"type": "http.disconnect"} (copied per use) */
    /* interned strings */
    PyObject *s_type, *s_asgi, *s_http_version, *s_server, *s_client, *s_scheme,
             *s_method, *s_root_path, *s_path, *s_raw_path, *s_query_string,
             *s_headers, *s_state, *s_http, *s_version, *s_spec_version,
             *s_v30, *s_v23, *s_v11, *s_v10, *s_body, *s_more_body,
             *s_http_request, *s_http_disconnect, *s_status,
             *s_http_response_start, *s_http_response_body, *s_http_response_pathsend, *s_empty,
             *s_submit, *s_set_exception, *s_set_result, *s_done, *s_cancelled,
             *s_dependency_overrides,
             *s_GET, *s_POST, *s_HEAD, *s_PUT, *s_DELETE, *s_PATCH, *s_OPTIONS;
    PyObject *empty_bytes;
    celeris_ws_state ws;
    celeris_freelist fl_cycle, fl_ncall;   /* one Cycle and one NativeCall per native request */
} celeris_state;

/* freelist.c: a new object of heap type tp (a GC type without tp_finalize)
 * from the list, initialised as PyObject_GC_New would leave it (refcount 1,
 * a reference to tp taken, untracked, fields unset), or from
 * PyObject_GC_New when the list is empty.  NULL with MemoryError. */
PyObject *celeris_fl_new(celeris_freelist *fl, PyTypeObject *tp);

/* freelist.c: the end of a dealloc, after PyObject_GC_UnTrack and the
 * object's clear: keeps op's memory on the list, or frees it (tp_free);
 * then drops the reference to its type either way. */
void celeris_fl_release(celeris_freelist *fl, PyObject *op);

/* freelist.c: frees what the list holds and keeps nothing from now on
 * (module clear).  Idempotent. */
void celeris_fl_close(celeris_freelist *fl);

typedef struct ServerObject {
    PyObject_HEAD
    cel_server *srv;
    celeris_state *st;          /* borrowed from module, kept alive by `module` */
    PyObject *module;
    PyObject *handler;          /* handler(scope, cycle) -> coroutine running the app */
    PyObject *create_task;      /* loop.create_task */
    PyObject *enter_task;       /* asyncio.tasks._enter_task, or NULL: no eager Driver steps */
    PyObject *leave_task;       /* asyncio.tasks._leave_task (set together with enter_task) */
    struct CycleObject *live;   /* cycles whose task has not finished (strong refs) */
    Py_ssize_t live_count;
    PyObject *loop;             /* the asyncio loop */
    PyObject *call_soon;        /* loop.call_soon */
    PyObject *create_future;    /* loop.create_future (bound once: receive() and send()
                                   backpressure make one per wait) */
    PyObject *run_pending;      /* bound self.run_pending */
    PyObject *call_soon_kw;     /* {"context": base context} or NULL: request tasks must not
                                   inherit the context of the app task that finished before */
    PyObject *access_log;       /* access_log(scope, status) or None */
    PyObject *error_log;        /* error_log(message) or None: for bad requests */
    PyObject *state;            /* lifespan state dict or None */
    PyObject *root_path;        /* str */
    PyObject *root_path_bytes;  /* bytes */
    PyObject *scheme;           /* str */
    PyObject *native_app;       /* NativeApp or NULL: the native tier */
    PyObject *scope_patch;      /* dict merged into scopes the native tier builds, or NULL
                                   (the TestClient's scheme/root_path/extensions) */
    PyObject *debug_sink;       /* callable(info) taking "http.response.debug" messages, or NULL */
    PyObject *proxy_trusts;     /* proxy_trusts(host or None) -> bool, or NULL: proxy headers off */
    PyObject *proxy_resolve;    /* proxy_resolve(xfp bytes|None, xff bytes|None)
                                   -> (scheme|None, client|None); NULL when off */
    Py_ssize_t limit_concurrency;   /* 503 at this many connections or running requests; 0 = off */
    PyObject *ws_handler;       /* ws_handler(scope, cycle) -> coroutine, for websocket scopes */
    PyObject *ws_log;           /* ws_log(scope, status or None for accepted) or None */
    PyObject *pool;             /* ThreadPool for def endpoints, or NULL until first use */
    PyObject *scope_tmpl;       /* http scope keys in order, values None (scope.c), or NULL */
    PyObject *asgi_tmpl;        /* the http scope's "asgi" dict to copy, or NULL */
    struct WaiterObject *wakes;     /* receive() waiters resolved inside poll()/run_pending(),
                                       woken when it returns (waiter.c; the first, strong, each
                                       holding the next) */
    struct WaiterObject *wakes_tail;/* borrowed: the last of them */
    int pending_scheduled;
    int spin_scheduled;         /* self.spin is queued with loop.call_soon (busy_poll.c) */
    int64_t busy_poll_ns;       /* keep the loop polling this long after the last socket
                                   event; 0 = off (busy_poll.c) */
    int64_t busy_last_ns;       /* CLOCK_MONOTONIC of the last poll that handled events */
    PyObject *spin;             /* bound self.spin, or NULL until busy polling is turned on */
    int in_loop_callback;       /* inside poll()/run_pending(): no Task is running */
    int eager_depth;            /* inside a Driver's eager step (driver.c): a Task IS current,
                                   so no other Task's step may be run directly */
    PyObject *held_task;        /* strong, or NULL: a Driver Task left entered as the loop's
                                   current task after its eager step finished a request of
                                   held_conn with more input buffered (the next pipelined
                                   request's eager step then needs no enter/leave); left by
                                   celeris_release_held() before any other Task is stepped or
                                   entered and before poll()/run_pending() return */
    cel_conn *held_conn;        /* borrowed: held_task's connection (compared only) */
    int drivers;                /* one Driver Task per connection (CELERIS_CONN_DRIVER != "0") */
    int pathsend;               /* offer the ASGI path-send extension in HTTP scopes */
    int stopped;                /* stop_accepting() was called */
    unsigned long long requests;
    cel_server_config cfg;
} ServerObject;

typedef struct CycleObject {
    PyObject_HEAD
    ServerObject *server;       /* strong */
    cel_conn *conn;             /* borrowed; NULL once detached */
    PyObject *scope;            /* strong when access log is on, else NULL */
    PyObject *recv_future;      /* pending receive() future or NULL */
    PyObject *drain_future;     /* pending send() backpressure future or NULL */
    int response_started;
    int response_complete;
    int disconnected;
    int body_complete;          /* more_body=False delivered */
    int recv_peek;              /* recv_future is body_wait()'s: resolved with None, body left buffered */
    int receive_called;         /* the app called receive() (HTTP): the body may be partly taken */
    PyObject *task;             /* the asyncio Task running the app; cleared by finish() */
    struct CycleObject *live_prev, *live_next;  /* server's live list (linked = one strong ref) */
    int live;
    /* WebSocket cycles (ws != 0) */
    int ws;
    int ws_phase;               /* enum in websocket.c: handshake, open, denial, closed */
    int ws_connect_sent;        /* websocket.connect was received */
    PyObject *ws_scope;         /* for ws_log, or NULL */
    PyObject *ws_msg;           /* a websocket.receive that arrived with no receive() waiting */
    PyObject *ws_waiter;        /* the Waiter every waiting receive() returns, or NULL until one */
    PyObject *ws_disconnect;    /* the websocket.disconnect message once known, or NULL */
    PyObject *ws_denial_headers;/* denial response: headers as sent, body so far */
    PyObject *ws_denial_body;   /* bytearray */
    int ws_denial_status;
    celeris_state *st;          /* borrowed: the module's (it outlives every instance) */
} CycleObject;

/* websocket.c */
int celeris_ws_state_init(PyObject *module, celeris_ws_state *ws);   /* 0 or -1 */
void celeris_ws_state_clear(celeris_ws_state *ws);
PyObject *celeris_ws_receive(CycleObject *cy);
PyObject *celeris_ws_send(CycleObject *cy, PyObject *msg);
void celeris_ws_on_message(CycleObject *cy, int opcode, const char *p, size_t n);
void celeris_ws_on_close(CycleObject *cy, cel_conn *c);
/* The ASGI websocket.disconnect message for cy as things stand (new reference). */
PyObject *celeris_ws_disconnect_msg(CycleObject *cy);

/* module.c: the arguments of add_done_callback(fn, *, context=None) as a
 * vectorcall method receives them (the Driver's and the Waiter's Future
 * protocol).  Sets *fn and *ctx (borrowed; *ctx NULL for None) and returns
 * 0, or -1 with asyncio's TypeError for anything else. */
int celeris_parse_done_callback(PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames,
                                PyObject **fn, PyObject **ctx);

/* waiter.c: the awaitable a WebSocket receive() that must wait returns (one
 * per Cycle, reused).  Functions taking `w` accept NULL where noted. */
/* A new Waiter for cy (new reference; cy borrowed, see celeris_waiter_detach). */
PyObject *celeris_waiter_new(CycleObject *cy);
/* cy is being cleared: forget it (w may be NULL). */
void celeris_waiter_detach(PyObject *w);
/* Before a new receive(): 0, or -1 with RuntimeError if one is waiting.  A
 * message left in w by a receive() never awaited goes to cy->ws_msg. */
int celeris_waiter_arm(PyObject *w);
/* Hand w out for a receive() that waits (after celeris_waiter_arm). */
void celeris_waiter_wait(PyObject *w);
/* 1 while a receive() waits on w for a message (w may be NULL). */
int celeris_waiter_waiting(PyObject *w);
/* Give the waiting receive() `value` (borrowed; kept as a new reference) and
 * wake its Task: after the core returns when called inside poll()/
 * run_pending(), else through loop.call_soon.  1 if w took it, 0 if w is NULL
 * or not waiting (cancelled: the caller keeps the value).  Never leaves an
 * exception set (a failed call_soon is reported as unraisable). */
int celeris_waiter_resolve(PyObject *w, PyObject *value);
/* Wake the Tasks of the waiters resolved inside poll()/run_pending(); called
 * when the core has returned, with no Task running.  Never raises. */
void celeris_waiter_run_wakes(ServerObject *srv);
/* Release the wake list without waking anyone (the server is going away). */
void celeris_waiter_drop_wakes(ServerObject *srv);
/* scope.c: websocket scope extras (subprotocols from the request headers) */
PyObject *celeris_ws_subprotocols(const cel_http_request *req);

/* module.c */
celeris_state *celeris_get_state_from_type(PyTypeObject *tp);
PyObject *celeris_ready_new(celeris_state *st, PyObject *value);   /* new ref; steals nothing */

/* scope.c: the ASGI http scope for req on c; new reference or NULL. */
PyObject *celeris_build_scope(ServerObject *self, cel_conn *c, const cel_http_request *req);
/* uvicorn's ProxyHeadersMiddleware for req on c: when proxy headers are on,
 * the peer is trusted and X-Forwarded-Proto / X-Forwarded-For are present,
 * *client and/or *scheme are set to new references (left NULL otherwise).
 * 0, or -1 with an exception.  The native tier calls this (through
 * celeris_build_scope) wherever it needs the client or the scheme. */
int celeris_proxy_apply(ServerObject *self, cel_conn *c, const cel_http_request *req,
                        PyObject **client, PyObject **scheme);
/* Release the per-connection cache (c->cache); safe when there is none. */
void celeris_conn_cache_free(cel_conn *c);
/* Set the client/server address tuples of c (borrowed refs, stored as new
 * references; None allowed).  0 or -1 with an exception. */
int celeris_conn_cache_set(cel_conn *c, PyObject *client, PyObject *server);

/* memconn.c */
PyObject *celeris_memconn_new(ServerObject *server, PyObject *client, PyObject *srvaddr,
                              PyObject *on_output);
void celeris_memconn_on_output(cel_conn *c);
void celeris_memconn_on_free(cel_conn *c);

/* cycle.c */
PyObject *celeris_cycle_new(ServerObject *server, cel_conn *c, PyObject *scope);
void celeris_cycle_on_body(CycleObject *cy);
/* The request-body bytes buffered now, handed to fn slice by slice without
 * a copy (form_parse.c's direct multipart feed).  Each slice is valid until
 * the connection reads again, which cannot happen before this returns; fn
 * returns 0, or -1 with an exception to stop.  obj (borrowed) must be a
 * Cycle.  Returns:
 *   0  the body is complete (the cycle counts it delivered, as receive()'s
 *      more_body=False);
 *   1  more body to come: await cycle.body_wait(), then call again;
 *   2  no bytes this way (disconnected, response complete, a receive()
 *      pending, body already delivered, framing error -- then answered as
 *      receive() answers it): the caller's next step is receive(), which
 *      reports what happened;
 *  -1  fn failed (its exception is set; bytes handed to it are consumed). */
typedef int (*celeris_body_fn)(void *ud, const char *p, size_t n);
int celeris_cycle_body_feed(CycleObject *cy, celeris_body_fn fn, void *ud);
void celeris_cycle_on_drain(CycleObject *cy);
void celeris_cycle_on_close(CycleObject *cy);
/* Write a complete response (head + body) on cy's connection, headers either
 * as C slices (hs, n) or as a Python iterable of (bytes, bytes) pairs
 * (py_headers, when not NULL).  A disconnected cycle accepts and drops it.
 * 0, or -1 with an exception. */
int celeris_cycle_respond(CycleObject *cy, int status, const cel_header *hs, size_t n,
                          PyObject *py_headers, const char *body, size_t len);
/* celeris_cycle_respond with the headers ("content-length", len),
 * ("content-type", ctype): the same bytes, through
 * cel_conn_response_start_fixed (ctype must be a valid header value: the
 * caller's promise).  0, or -1 with an exception. */
int celeris_cycle_respond_fixed(CycleObject *cy, int status, const char *ctype, size_t ctype_len,
                                const char *body, size_t len);
/* Resolve the future in *slot with value (NULL: None) unless done; clears *slot.
 * Returns 1 if the future took the value, 0 if there was none or it was
 * already done (cancelled: the value is still the caller's to keep). */
int celeris_cycle_resolve(CycleObject *cy, PyObject **slot, PyObject *value);
/* Link cy into server's live list (takes a new reference) / unlink it (drops it). */
void celeris_cycle_link(CycleObject *cy);
/* cy.finish() / cy.abort() / cy.app_failed(): new reference (None) or NULL. */
PyObject *celeris_cycle_finish(CycleObject *cy);
/* cy.receive(): the ASGI receive() awaitable (new reference), or NULL with an exception. */
PyObject *celeris_cycle_receive(CycleObject *cy);
PyObject *celeris_cycle_abort(CycleObject *cy);
PyObject *celeris_cycle_app_failed(CycleObject *cy);
void celeris_cycle_unlink(CycleObject *cy);

extern PyType_Spec celeris_server_spec;
extern PyType_Spec celeris_cycle_spec;
extern PyType_Spec celeris_ready_spec;
extern PyType_Spec celeris_memconn_spec;
extern PyType_Spec celeris_nativeapp_spec;
extern PyType_Spec celeris_nativecall_spec;
extern PyType_Spec celeris_threadpool_spec;
extern PyType_Spec celeris_driver_spec;
extern PyType_Spec celeris_waiter_spec;

/* ws_methods.c: adds _celeris.WsMethod and _celeris.WsOp to the module; 0 or -1. */
int celeris_ws_methods_add_types(PyObject *module);
extern PyType_Spec celeris_inotify_spec;
extern PyType_Spec celeris_excsender_spec;

/* form_parse.c: adds MultipartParser and UrlencodedParser to the module; 0 or -1. */
int celeris_form_add_types(PyObject *m);

/* driver.c: run `coro` (the request's app coroutine; borrowed) for cy on c:
 * on the connection's idle Driver Task at once, in a new Driver Task, or in
 * a Task of its own; the Task is tracked on cy.  0, or -1 with an exception. */
int celeris_drive(ServerObject *self, cel_conn *c, struct CycleObject *cy, PyObject *coro);
/* A request whose first step is the caller's own (celeris_drive_first):
 * step(arg, coro, task, &result, &next) runs with the Driver's Task current
 * and the request's Context entered, in place of PyIter_Send(coro, None,
 * &result), and returns what that would (PYGEN_ERROR with an exception
 * set); *next gets the coroutine the Task carries on with (a new reference,
 * or NULL when nothing is left; required with PYGEN_NEXT).  The step may
 * make the request's Cycle then (tracked with celeris_drive_track). */
typedef struct celeris_first {
    PySendResult (*step)(void *arg, PyObject *coro, PyObject *task, PyObject **result,
                         PyObject **next);
    void *arg;
} celeris_first;
/* Run `coro` (borrowed) on c's idle Driver now, its first step being
 * first->step: 1 when it ran (the Driver holds what the step handed on),
 * 0 when it could not (no idle Driver, not from the loop's callbacks, the
 * task not enterable): nothing ran, no exception; the caller uses
 * celeris_drive. */
int celeris_drive_first(ServerObject *self, cel_conn *c, PyObject *coro, const celeris_first *first);
/* Track `task` as the Task running cy's app (cy made during such a step). */
void celeris_drive_track(struct CycleObject *cy, PyObject *task);
/* The connection closed: release its Driver (its Task ends when parked). */
void celeris_driver_close(ServerObject *self, cel_conn *c);
/* Leaves self->held_task (the loop has no current task afterwards); no-op
 * when none is held.  Keeps any exception set by the caller; a failing
 * _leave_task is reported as unraisable. */
void celeris_release_held(ServerObject *self);

/* threadpool.c: the Server's pool for def endpoints (borrowed; started on
 * first use, NULL with an exception on failure) and its shutdown. */
PyObject *celeris_server_pool(ServerObject *self);
void celeris_server_pool_close(ServerObject *self);
/* 1 while the Server's pool has submitted jobs whose Future is not settled. */
int celeris_server_pool_busy(ServerObject *self);

/* server_obj.c: loop.call_soon(cb) in the server's base context; 0, or -1
 * (the failure reported as unraisable, no exception left set). */
int celeris_call_soon(ServerObject *self, PyObject *cb);

/* busy_poll.c: keep polling for a while after traffic (`--busy-poll-us`). */
int celeris_busy_poll_set(ServerObject *self, double usec);
void celeris_busy_poll_after(ServerObject *self, int events, int from_spin);

/* native.c: serve the request natively (1) or decline (0: use the ASGI tier).
 * Never leaves an exception set. */
int celeris_native_dispatch(ServerObject *self, cel_conn *c, const cel_http_request *req);

/* json_encode.c */
PyObject *celeris_json_dumps(PyObject *module, PyObject *obj);
/* Test hook: the small flat-dict path alone (bytes, or None where it declines). */
PyObject *celeris_json_dumps_small(PyObject *module, PyObject *obj);
/* The bytes FastAPI's JSONResponse(jsonable_encoder(obj)) renders, for
 * values where jsonable_encoder is the identity (exact JSON types, no "_sa"
 * keys); NULL with an exception otherwise (the caller falls back). */
/* json_encode.c: celeris_json_dumps with modes, for the native tier.
 * CELERIS_JSON_FASTAPI: also decline (TypeError) dicts with a str key
 * starting with "_sa" (jsonable_encoder drops those) and trees deeper than
 * 200.  CELERIS_JSON_PLAIN: only exact dict (str keys) / list / str without
 * lone surrogates / int / bool / None, at most 64 deep -- trees for which a
 * dict/list/Any response model's pydantic JSON is these very bytes; floats
 * and tuples decline.  A declined tree is FastAPI's to answer: the caller
 * clears the error and falls back.  New reference, or NULL with an error. */
#define CELERIS_JSON_FASTAPI 1
#define CELERIS_JSON_PLAIN 2
PyObject *celeris_json_dumps_mode(PyObject *obj, int flags);

/* celeris_json_dumps_mode without the bytes object: the JSON is handed to
 * use(ctx, p, n) (p valid only during the call; a JSON encode inside use
 * gets its own buffer) and use's result (>= 0, or -1 with an exception) returned; -2 with
 * the encoder's error when obj is not encoded (declined or failed). */
int celeris_json_dumps_with(PyObject *obj, int flags,
                            int (*use)(void *ctx, const char *p, size_t n), void *ctx);


/* Two str objects (subclasses allowed) equal by value, as str.__eq__: the
 * same object, else length and bytes when both are compact ASCII, else
 * PyUnicode_Compare.  Never raises. */
static inline int celeris_str_equal(PyObject *a, PyObject *b)
{
    if (a == b)
        return 1;
    if (PyUnicode_IS_COMPACT_ASCII(a) && PyUnicode_IS_COMPACT_ASCII(b))
        return PyUnicode_GET_LENGTH(a) == PyUnicode_GET_LENGTH(b)
               && memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)PyUnicode_GET_LENGTH(a)) == 0;
    return PyUnicode_Compare(a, b) == 0;
}

/* 3.12's PyErr_GetRaisedException/SetRaisedException on every version. */
static inline PyObject *PyErr_GetRaisedException_compat(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *t, *v, *tb;
    PyErr_Fetch(&t, &v, &tb);
    if (!t)
        return NULL;
    PyErr_NormalizeException(&t, &v, &tb);
    if (tb)
        PyException_SetTraceback(v, tb);
    Py_XDECREF(t);
    Py_XDECREF(tb);
    return v;
#endif
}

static inline void PyErr_SetRaisedException_compat(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    if (!exc)
        return;
    PyObject *tb = PyException_GetTraceback(exc);
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, tb);
#endif
}

#endif
