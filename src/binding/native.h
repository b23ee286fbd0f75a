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
             *rt_run_sync, *rt_copy_default, *rt_render_json_bytes, *response_type;
    PyObject *kw_loc;           /* ("loc",) */
    PyObject *cors_start;       /* CORSMiddleware run natively: start(req_headers, status,
                                   headers) -> headers, or NULL */
    PyObject *cors_wrap;        /* wrap(req_headers, send) -> send, for ASGI-run responses */
    int enabled;                /* cleared while telemetry is on (refreshed by Python) */
    unsigned long long native_requests, declined;
    unsigned long long plan_errors;     /* plans rejected at construction (ASGI tier) */
} NativeAppObject;

typedef struct {
    PyObject_HEAD
    PyObject *inner;            /* the coroutine being driven */
    CycleObject *cycle;         /* writes the response */
    NativeAppObject *app;       /* keeps the plan alive */
    NPlan *plan;                /* borrowed from app */
    PyObject *head;             /* raw request head, to build a scope if a Response must run as ASGI */
    int phase;                  /* 0: endpoint; 1: a Response running as an ASGI app;
                                   2: ServerErrorMiddleware's answer running as one;
                                   3: the answer to an exception (handler / error response) */
    PyObject *prep_body;        /* prepared JSON body (plan status, JSONResponse headers) */
    PyObject *prep_resp;        /* or: prepared Response object */
    PyObject *cors_req;         /* request headers [(name, value)] when CORS applies, or NULL */
    PyObject *scope;            /* the request's ASGI scope once built (nc.scope()), or NULL */
    PyObject *request;          /* nc.request: the Request the runner built, or NULL (None) */
    PyObject *body;             /* nc.body: the raw body once read, or NULL (None) */
} NativeCallObject;

/* native_call.c: a NativeCall driving `inner` (new reference taken; NULL
 * allowed, set before the Task starts) for the request on `cycle`.  New
 * reference or NULL with an exception. */
PyObject *celeris_ncall_new(celeris_state *st, PyObject *inner, CycleObject *cycle,
                            NativeAppObject *app, NPlan *plan, PyObject *head);

#endif
