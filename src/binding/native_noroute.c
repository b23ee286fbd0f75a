/* The native tier's answers for requests no route takes, as FastAPI's router
 * (APIRouter.app, Starlette's Router.app) gives them:
 *
 *   - a route matched the path but not the method: that route's 405
 *     (HTTPException with "Allow", answered by FastAPI's http_exception_handler);
 *   - else, with redirect_slashes, when any route matches the path with the
 *     trailing slash added or stripped: a 307 RedirectResponse to it;
 *   - else (unless the app has low-priority routes, tried at this point)
 *     Router.not_found's HTTPException(404).
 *
 * C decides which (with the same router that routes everything else); the
 * answer itself is made by celeris.native.runtime with Starlette's and
 * FastAPI's own classes, inside a NativeCall, so CORS headers, HEAD and
 * exception handling are those of every native response.  The compiler only
 * turns this on for apps whose router, default handler and exception
 * handlers are FastAPI's own, and whose every route the C router
 * reproduces (an opaque route makes the router answer OPAQUE, never NONE);
 * and only while the app's route table is still the one compiled. */
#include "native.h"

#include <string.h>

#include "router.h"

/* Does any route match `path` (the request's scope path with the trailing
 * slash toggled, Starlette's redirect_scope) by path, whatever the method?
 * 1 yes, 0 no, -1 undecided (an opaque route, or the work budget ran out). */
static int other_slash_matches(NativeAppObject *app, const cel_http_request *req,
                               const celeris_npath *path)
{
    char alt[8192 + 1];
    size_t an;
    if (path->rp_len > 0 && path->rp[path->rp_len - 1] == '/') {
        an = path->full_len;                    /* scope["path"].rstrip("/") */
        while (an > 0 && path->full[an - 1] == '/')
            an--;
        memcpy(alt, path->full, an);
    } else {
        if (path->full_len + 1 > sizeof alt)
            return -1;
        memcpy(alt, path->full, path->full_len);  /* scope["path"] + "/" */
        alt[path->full_len] = '/';
        an = path->full_len + 1;
    }
    const char *rp;
    size_t rn;
    celeris__native_strip_root(alt, an, path->root, path->root_len, &rp, &rn);
    cel_route_match am;
    int r = cel_router_match(app->router, req->method.p, req->method.len, rp, rn, &am);
    if (r == CEL_ROUTER_FULL)
        return 1;
    if (r == CEL_ROUTER_NONE)
        return am.partial_seen ? 1 : 0;
    return -1;
}

/* The request's ASGI scope as the ASGI tier builds it (TestClient patch
 * included): new reference or NULL with an exception. */
static PyObject *request_scope(ServerObject *self, cel_conn *c, const cel_http_request *req)
{
    PyObject *scope = celeris_build_scope(self, c, req);
    if (scope && self->scope_patch && PyDict_Update(scope, self->scope_patch) < 0)
        Py_CLEAR(scope);
    return scope;
}

int celeris__native_noroute(ServerObject *self, cel_conn *c, const cel_http_request *req,
                            NativeAppObject *app, const cel_route_match *m,
                            const celeris_npath *path)
{
    PyObject *coro = NULL, *cors_req = NULL;
    PyObject *route = NULL;
    int redirect = 0;
    PyObject *fresh = PyObject_CallNoArgs(app->noroute_fresh);
    int ok = fresh ? PyObject_IsTrue(fresh) : -1;
    Py_XDECREF(fresh);
    if (ok <= 0) {
        if (ok < 0)
            PyErr_WriteUnraisable(app->noroute_fresh);
        return 0;                       /* a route was added: FastAPI's router decides */
    }
    if (m->partial_seen) {
        if (m->partial_id < 0 || m->partial_id >= PyList_GET_SIZE(app->allow_routes))
            return 0;
        route = PyList_GET_ITEM(app->allow_routes, m->partial_id);
        if (route == Py_None)
            return 0;
    } else if (app->redirect_slashes && !(path->rp_len == 1 && path->rp[0] == '/')) {
        redirect = other_slash_matches(app, req, path);
        if (redirect < 0)
            return 0;
    }
    if (!route && !redirect && !app->noroute_404)
        return 0;                       /* low-priority routes, then not_found: FastAPI's */
    if (app->cors_start && !(cors_req = celeris__native_req_headers(req)))
        goto error;
    if (route) {
        coro = PyObject_CallOneArg(app->rt_not_allowed, route);
    } else if (redirect) {
        PyObject *scope = request_scope(self, c, req);
        coro = scope ? PyObject_CallOneArg(app->rt_redirect, scope) : NULL;
        Py_XDECREF(scope);
    } else {
        coro = PyObject_CallNoArgs(app->rt_not_found);
    }
    if (!coro)
        goto error;
    return celeris__native_start(self, c, req, app, &app->noroute_plan, coro, cors_req);
error:
    Py_XDECREF(cors_req);
    PyErr_WriteUnraisable(app->rt_not_found);
    app->declined++;
    return 0;
}
