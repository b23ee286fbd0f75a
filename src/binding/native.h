/* Private to the native tier (native.c, native_call.c): the compiled plans,
 * the NativeApp holding them and the NativeCall driving one request. */
#ifndef CELERIS_NATIVE_H
#define CELERIS_NATIVE_H

#include "binding.h"
#include "router.h"

enum { P_PATH = 0, P_QUERY = 1, P_HEADER = 2, P_COOKIE = 3 };
enum { F_NONE = 0, F_STR = 1, F_INT = 2 };

typedef struct {
    int where;
    int fast;
    int required;
    int path_slot;              /* P_PATH: index in the router's params */
    char *key;                  /* P_QUERY, P_HEADER, P_COOKIE: request key, UTF-8 (owned;
                                   lower-case for headers) */
    size_t key_len;
    PyObject *field;            /* fastapi ModelField */
    PyObject *validate;         /* bound field.validate */
    PyObject *loc;              /* ("query", "q") */
    PyObject *dflt;             /* default value (not required) */
    PyObject *convertor;        /* starlette convertor or NULL */
    int multi;                  /* P_QUERY list parameter: every value (QueryParams.getlist) */
} NParam;

typedef struct {
    PyObject *endpoint;
    Py_ssize_t index;           /* the route's index in the compiled table (-1: no-route plan) */
    int is_coroutine;
    int status;                 /* route status_code, 0 = default */
    PyObject *status_obj;       /* int or None */
    PyObject *response_class;
    PyObject *kwnames;          /* tuple of endpoint keyword names */
    Py_ssize_t nparams;
    NParam *params;
    int has_query;
    int fast_json;              /* status allows a body: JSON bytes get fixed headers */
    PyObject *serializer;       /* response_model: callable(content) -> bytes, or NULL */
    int model_plain;            /* the response model is dict/list/Any: plain trees skip pydantic */
    int runner;                 /* endpoint is a generated runner(nc, **params) that solves
                                   dependencies/body, calls nc.prepare(result), awaits nc.send() */
    PyObject *slow;             /* simple plans: slow(scope, path_params) -> coroutine answering
                                   a request with invalid parameters as FastAPI (invalid.py) */
    PyObject *overrides_owner;  /* app whose dependency_overrides, when non-empty, send the
                                   request to the ASGI tier; NULL when the plan has no Depends */
} NPlan;

typedef struct NativeAppObject {
    PyObject_HEAD
    cel_router *router;
    NPlan **plans;              /* by router id; NULL: ASGI tier */
    Py_ssize_t nplans;
    PyObject *runtime;          /* celeris.native.runtime */
    PyObject *rt_render, *rt_handle_exception, *rt_server_response, *rt_server_error, *rt_unpack,
             *rt_run_sync, *rt_copy_default, *rt_render_json_bytes, *rt_send_json_bytes, *rt_server_started,
             *rt_submit_later,
             *response_type;
    PyObject *kw_loc;           /* ("loc",) */
    PyObject *cors_start;       /* CORSMiddleware run natively: start(req_headers, status,
                                   headers) -> headers, or NULL */
    PyObject *cors_wrap;        /* wrap(req_headers, send) -> send, for ASGI-run responses */
    PyObject *mw_run;           /* stack mode: mw_run(inner_nc) -> coroutine running the user
                                   middleware around the inner call, or NULL */
    int enabled;                /* cleared while telemetry is on (refreshed by Python) */
    int noroute;                /* requests no route takes (404, 405, redirect_slashes 307)
                                   are answered natively (native_noroute.c) */
    int redirect_slashes;       /* the app router's redirect_slashes */
    int noroute_404;            /* the final 404 too (no low-priority routes come before it) */
    PyObject *allow_routes;     /* list by router id: the object whose .methods make a 405's
                                   Allow header, or None (then a 405 goes to the ASGI tier) */
    PyObject *noroute_fresh;    /* fresh() -> True while the app's route table is the compiled
                                   one (routes may be added while the app runs) */
    PyObject *rt_not_found, *rt_not_allowed, *rt_redirect;  /* runtime coroutine factories */
    NPlan noroute_plan;         /* the plan NativeCalls of no-route answers carry (no params,
                                   no serializer; its coroutines return a Response or raise) */
    unsigned long long native_requests, declined;
    unsigned long long plan_errors;     /* plans rejected at construction (ASGI tier) */
} NativeAppObject;

/* Request heads up to this many bytes are kept inside the NativeCall (most
 * are): no allocation per request; longer ones are copied to the heap. */
#define NCALL_HEAD_INLINE 224

typedef struct {
    PyObject_HEAD
    PyObject *inner;            /* the coroutine being driven */
    CycleObject *cycle;         /* writes the response */
    NativeAppObject *app;       /* keeps the plan alive */
    NPlan *plan;                /* borrowed from app */
    char *head;                 /* raw request head, to build a scope if a Response must run
                                   as ASGI: head_inline or an owned cel_malloc copy */
    size_t head_len;
    int phase;                  /* 0: endpoint; 1: a Response running as an ASGI app;
                                   2: ServerErrorMiddleware's answer running as one;
                                   3: the answer to an exception (handler / error response) */
    PyObject *prep_body;        /* prepared JSON body (plan status, JSONResponse headers) */
    PyObject *prep_resp;        /* or: prepared Response object */
    PyObject *cors_req;         /* request headers [(name, value)] when CORS applies, or NULL */
    PyObject *scope;            /* the request's ASGI scope once built (nc.scope()), or NULL */
    PyObject *request;          /* nc.request: the Request the runner built, or NULL (None) */
    PyObject *body;             /* nc.body: the raw body once read, or NULL (None) */
    PyObject *asgi_send;        /* stack mode: responses go through this ASGI send (the user
                                   middleware's), not straight to the Cycle; or NULL */
    int nested;                 /* stack mode's inner call: awaited by the middleware; never
                                   finishes the Cycle, unhandled exceptions propagate */
    int json_declined;          /* the C JSON writer declined the result already */
    celeris_state *st;          /* borrowed: the module's (it outlives every instance) */
    char head_inline[NCALL_HEAD_INLINE];   /* heads this long or shorter are kept here */
} NativeCallObject;

/* native_call.c: a NativeCall driving `inner` (new reference taken; NULL
 * allowed, set before the Task starts) for the request on `cycle`, whose
 * raw head (head_len bytes, borrowed) it copies.  New reference or NULL with
 * an exception. */
PyObject *celeris_ncall_new(celeris_state *st, PyObject *inner, CycleObject *cycle,
                            NativeAppObject *app, NPlan *plan, const char *head,
                            size_t head_len);

/* The first step of a simple plan's request (no runner, user middleware,
 * CORS or access log), as celeris_drive_first's step (arg: this struct):
 * the endpoint coroutine is sent None; a dict/list result the C JSON
 * writer takes is written straight onto the connection -- no Cycle, no
 * NativeCall ever made.  Any other outcome (a suspension, an exception,
 * another result) makes them then and continues as the NativeCall would
 * have from that outcome (the Cycle tracked on `task`); the NativeCall is
 * handed on in *next. */
typedef struct {
    ServerObject *self;
    cel_conn *c;
    const cel_http_request *req;        /* the request's head (borrowed, valid during the step) */
    NativeAppObject *app;
    NPlan *plan;
} celeris_ncall_first;
PySendResult celeris_ncall_first_step(void *arg, PyObject *coro, PyObject *task,
                                      PyObject **presult, PyObject **pnext);

/* native.c: the request's route path (Starlette's get_route_path): the scope
 * path (the server's root_path + the decoded path) minus the scope's
 * root_path (the TestClient's scope_patch or the server's).  Fills *full,
 * *root (borrowed: full is fullbuf or dec, root from the server) and *rp (a
 * slice of *full).  1, or 0 to decline (too long, not a str root_path). */
typedef struct {
    const char *full, *root, *rp;
    size_t full_len, root_len, rp_len;
} celeris_npath;
int celeris__native_route_path(ServerObject *self, const char *dec, size_t dn, char *fullbuf,
                               size_t cap, celeris_npath *out);

/* native.c: Starlette's get_route_path for path `full` and root_path `root`:
 * a slice of full in *rp / *rn. */
void celeris__native_strip_root(const char *full, size_t fn, const char *root, size_t rn,
                                const char **rp, size_t *rpn);

/* native.c: first value of request header `key` (lower-case), borrowed
 * from the request: 1 found, 0 missing. */
int celeris__native_header(const cel_http_request *req, const char *key, size_t klen,
                           const char **v, size_t *vn);

/* native.c: [(lower-case name bytes, value bytes)] of the request, as
 * Starlette's Headers(raw=...) wants them.  New reference or NULL. */
PyObject *celeris__native_req_headers(const cel_http_request *req);

/* native.c: start `coro` (stolen) as a NativeCall on `plan` in a new Task
 * writing through a new Cycle for the request on c; cors_req (stolen, may be
 * NULL) is the request headers CORSMiddleware needs.  Returns 1 (started,
 * counted as native) or 0 (declined: the request goes to the ASGI tier; an
 * error is written as unraisable). */
int celeris__native_start(ServerObject *self, cel_conn *c, const cel_http_request *req,
                          NativeAppObject *app, NPlan *plan, PyObject *coro, PyObject *cors_req);

/* native_noroute.c: the C router found no route for the request (result
 * NONE, *m filled): answer as FastAPI's router would -- 405 when a route
 * matched the path only, a redirect_slashes 307 when a route matches the
 * other slash form, else 404 -- when app->noroute allows.  1 started, 0
 * declined (the ASGI tier answers). */
int celeris__native_noroute(ServerObject *self, cel_conn *c, const cel_http_request *req,
                            NativeAppObject *app, const cel_route_match *m,
                            const celeris_npath *path);

#endif
