"""The app's user middleware on the native tier ("stack mode").

FastAPI's stack is ServerErrorMiddleware -> user middleware ->
ExceptionMiddleware -> router.  For the middleware classes below, which pass
the request scope through unchanged (they only answer early or rewrite the
response), the native tier builds the same user-middleware chain once, with
the native call as its innermost app in place of ExceptionMiddleware + router:

    mw_run(inner)  ->  await chain(scope, receive, cycle.send)

`inner` is the request's NativeCall in nested mode (native_call.c): it runs
the route as usual (the app's exception handlers included, as
ExceptionMiddleware would), writes its response through the `send` the
middleware handed to the innermost app, and lets unhandled exceptions out
through the middleware to the outer call, which answers them as
ServerErrorMiddleware does.  A middleware that answers by itself
(TrustedHost's 400, HTTPSRedirect's 307, CORS preflights) never calls the
innermost app: the route's coroutine is then closed unstarted.

Each middleware is Starlette's own class with the app's own arguments, so its
behaviour is the same code as on the ASGI tier; CORSMiddleware alone keeps its
cheaper per-response hook (runtime.cors_hooks) when it is the only one."""
from __future__ import annotations

from typing import Any, Callable, Optional


def _known() -> tuple:
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    return (CORSMiddleware, GZipMiddleware, HTTPSRedirectMiddleware, TrustedHostMiddleware)


def _is_base_http(cls: Any) -> bool:
    """BaseHTTPMiddleware or a subclass that keeps its __call__ (overriding
    dispatch, as `@app.middleware("http")` and the documented subclasses do)."""
    from starlette.middleware.base import BaseHTTPMiddleware

    return (isinstance(cls, type) and issubclass(cls, BaseHTTPMiddleware)
            and cls.__call__ is BaseHTTPMiddleware.__call__)


def unsupported(app: Any) -> str:
    """"" when every user middleware of the app can run in stack mode, else
    the names of those that cannot."""
    known = _known()
    bad = [getattr(m.cls, "__name__", repr(m.cls)) for m in app.user_middleware
           if getattr(m, "cls", None) not in known and not _is_base_http(getattr(m, "cls", None))]
    return ", ".join(bad)


def _app_inner(app: Any) -> Any:
    """The ASGI app FastAPI's stack puts inside the user middleware
    (ExceptionMiddleware -> [AsyncExitStackMiddleware ->] router, as the
    installed FastAPI builds it), taken from a freshly built stack."""
    node = app.build_middleware_stack()
    want = [m.cls for m in app.user_middleware]
    chain = []
    while node is not None and len(chain) < 64:
        chain.append(node)
        node = getattr(node, "app", None)
    for i in range(len(chain) - len(want) + 1):
        if [type(n) for n in chain[i:i + len(want)]] == want:
            return chain[i + len(want) - 1].app
    raise RuntimeError("the app's middleware stack does not have its user middleware in order")


def _snapshot(scope: dict) -> tuple:
    """What the route was matched and its parameters read from.  A
    BaseHTTPMiddleware dispatch may rewrite these (request.scope["path"] =
    ..., a header appended to scope["headers"]) before call_next; FastAPI's
    router then sees the changed request, so the native call must not run
    the route it matched.  Compared by value (==): an equal value routes the
    same; the header list is copied so that changes in place show."""
    g = scope.get
    return (g("type"), g("method"), g("path"), g("raw_path"), g("root_path"), g("query_string"),
            g("scheme"), g("http_version"), g("server"), g("client"), list(g("headers", ())))


def _routed_keys(app: Any, routes: list) -> Callable:
    """complete(scope, index): the keys FastAPI's stack and router add to the
    scope below the user middleware before the endpoint runs -- the
    exception handlers (ExceptionMiddleware), the middleware exit stack
    (AsyncExitStackMiddleware, its key as the installed FastAPI names it),
    the router, then for a matched route its child scope (endpoint,
    path_params, route) and the request handler's two exit stacks -- so a
    dispatch function reads them after call_next (request.scope["route"],
    request.path_params) as on FastAPI.  The stacks are fresh and empty: the
    native call closes what it opens itself."""
    import inspect
    from contextlib import AsyncExitStack

    from fastapi import routing
    from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
    from starlette.routing import Match

    from celeris.native.runner import exception_handlers_tuple

    handlers = exception_handlers_tuple(app)
    router = app.router
    try:
        mw_key = inspect.signature(AsyncExitStackMiddleware.__init__).parameters["context_name"].default
        src = inspect.getsource(routing.request_response)
    except (KeyError, OSError, TypeError, AttributeError):
        mw_key, src = "fastapi_middleware_astack", ""
    inner_keys = tuple(k for k in ("fastapi_inner_astack", "fastapi_function_astack") if f'"{k}"' in src)

    top = {id(r) for r in router.routes}
    # a route of the app's own table matches as FastAPI's router loop would
    # find it (the first full match: the one the C router chose); an included
    # router's route goes through that loop (its entry adds its own keys)
    direct = [r if r is not None and id(r) in top else None for r in routes]

    def router_match(scope: dict, full: bool) -> Any:
        """Starlette's router loop: a full match's child scope (full=True),
        else the first partial match's; returns the fully matching route."""
        partial = partial_route = None
        for r in router.routes:
            match, child = r.matches(scope)
            if match == Match.FULL:
                if full:
                    scope.update(child)
                return r
            if match == Match.PARTIAL and partial is None:
                partial, partial_route = child, r
        if partial is not None:
            scope.update(partial)
            if "endpoint" not in scope:
                # an included router matched the path only: its first route
                # that does (in FastAPI's order) is the one it hands the 405
                for ctx in routes:
                    if ctx is not None and id(ctx) not in top and hasattr(ctx, "matches") \
                            and ctx.matches(scope)[0] == Match.PARTIAL:
                        included(scope, partial_route, ctx)
                        break
        return None

    def included(scope: dict, top_route: Any, ctx: Any) -> None:
        """An included router's route (FastAPI >= 0.16x keeps _IncludedRouter
        entries): what its handle and the selected route add -- the
        included router and the effective route context in scope["fastapi"],
        then endpoint, path_params and route.  For routers included in
        included routers the innermost router is not tracked (the outer one
        is recorded)."""
        fs = scope.get("fastapi")
        if isinstance(fs, dict):
            fs["included_router"] = top_route
            fs["effective_route_context"] = ctx
        scope.update(ctx.matches(scope)[1])
        scope["route"] = getattr(ctx, "original_route", ctx)

    def complete(scope: dict, index: int) -> None:
        scope["starlette.exception_handlers"] = handlers
        scope[mw_key] = AsyncExitStack()
        scope["router"] = router
        if index < 0:
            # a no-route answer: a 405's route matched the path only, and
            # Starlette's router puts the first such route's child scope in
            router_match(scope, False)
            return
        route = direct[index] if index < len(direct) else None
        if route is not None:
            scope.update(route.matches(scope)[1])
        else:
            top_route = router_match(scope, True)
            ctx = routes[index] if index < len(routes) else None
            if top_route is not None and ctx is not None and "route" not in scope and hasattr(ctx, "matches"):
                included(scope, top_route, ctx)
        for k in inner_keys:
            scope[k] = AsyncExitStack()

    return complete


def stack_runner(app: Any, routes: Optional[list] = None) -> Optional[Callable]:
    """mw_run for the app's user middleware, or None when it has none.
    routes: the compiled route table's routes by index (None for entries
    that are not routes), for the keys a dispatch function reads after
    call_next (_routed_keys).

    With a BaseHTTPMiddleware in the chain, the innermost app checks the
    request first: when the scope was rewritten, the body was (partly) read
    through receive() before call_next, or call_next runs a second time, the
    request goes to the app's own inner stack (_app_inner: FastAPI's
    ExceptionMiddleware and router) with the receive/send the middleware gave
    -- what FastAPI would run -- and the native call is closed unstarted.
    The request's native call reaches the innermost app through `pending`
    (by the scope's id), not through a scope key a dispatch function would
    see."""
    if not app.user_middleware:
        return None
    checked = any(_is_base_http(m.cls) for m in app.user_middleware)
    fallback: list = []
    pending: dict = {}
    complete = _routed_keys(app, list(routes or ())) if checked else None

    async def asgi_inner(scope: dict, receive: Any, send: Any) -> None:
        if not fallback:
            fallback.append(_app_inner(app))
        await fallback[0](scope, receive, send)

    async def native_inner(scope: dict, receive: Any, send: Any) -> None:
        nc = pending.pop(id(scope), None)
        if nc is None:      # call_next again, or a middleware passed another scope: FastAPI's router
            await asgi_inner(scope, receive, send)
            return
        if checked:
            nc, snap = nc
            if snap != _snapshot(scope) or nc.cycle.receive_called:
                nc.close()
                await asgi_inner(scope, receive, send)
                return
            complete(scope, nc.route_index)
        nc.scope_dict = scope
        nc.mw_send = send
        await nc

    fast = False
    if checked:
        try:        # imports Starlette's _CachedRequest/_StreamingResponse by name
            from celeris.native import http_middleware
            fast = http_middleware.available()
        except ImportError:
            pass
    chain: Any = native_inner
    for m in reversed(app.user_middleware):
        cls, args, kwargs = m
        chain = cls(chain, *args, **kwargs)
        if fast and _is_base_http(cls):
            chain = http_middleware.FastHTTPMiddleware(chain)

    async def run(inner: Any) -> None:
        scope = inner.scope()
        key = id(scope)
        if checked:
            # what Starlette.__call__ adds before the middleware stack: a
            # dispatch function reads request.app
            scope["app"] = app
            pending[key] = (inner, _snapshot(scope))
        else:
            pending[key] = inner
        try:
            await chain(scope, inner.cycle.receive, inner.cycle.send)
        finally:
            if pending.pop(key, None) is not None:
                inner.close()       # a middleware answered by itself: the route never ran

    return run
