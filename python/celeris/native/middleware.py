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

_KEY = "celeris.native_call"


def _known() -> tuple:
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    return (CORSMiddleware, GZipMiddleware, HTTPSRedirectMiddleware, TrustedHostMiddleware)


def unsupported(app: Any) -> str:
    """"" when every user middleware of the app can run in stack mode, else
    the names of those that cannot."""
    known = _known()
    bad = [getattr(m.cls, "__name__", repr(m.cls)) for m in app.user_middleware
           if getattr(m, "cls", None) not in known]
    return ", ".join(bad)


def stack_runner(app: Any) -> Optional[Callable]:
    """mw_run for the app's user middleware, or None when it has none."""
    if not app.user_middleware:
        return None

    async def native_inner(scope: dict, receive: Any, send: Any) -> None:
        nc = scope.pop(_KEY)
        nc.scope_dict = scope
        nc.mw_send = send
        await nc

    chain: Any = native_inner
    for m in reversed(app.user_middleware):
        cls, args, kwargs = m
        chain = cls(chain, *args, **kwargs)

    async def run(inner: Any) -> None:
        scope = inner.scope()
        scope[_KEY] = inner
        try:
            await chain(scope, inner.cycle.receive, inner.cycle.send)
        finally:
            if scope.pop(_KEY, None) is not None:
                inner.close()       # a middleware answered by itself: the route never ran

    return run
