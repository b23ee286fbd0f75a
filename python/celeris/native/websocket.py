"""WebSocket routes on the native tier.

`ws_app(app)` returns an ASGI callable for websocket scopes that skips
FastAPI's middleware stack (ServerErrorMiddleware, ExceptionMiddleware,
AsyncExitStackMiddleware) and the router's matching loop, and runs the
matched route exactly as FastAPI's stack would: the same scope keys (app,
root_path, starlette.exception_handlers, fastapi_middleware_astack, router,
the route's child scope), ExceptionMiddleware's wrap_app_handling_exceptions
around route.handle (APIWebSocketRoute's own solve_dependencies, validation
errors, yield-dependency teardown and exception handlers all run as FastAPI's
code).  Routes are matched with the route objects' own `matches`, in
registration order; a websocket scope no compiled route takes, or an app the
compiler does not understand, goes to the app itself (the ASGI tier).

ExceptionMiddleware's wrapper runs as `_handling_exceptions` below, a copy of
Starlette's `wrap_app_handling_exceptions` whose per-message `sender`
coroutine is the C callable `_celeris.ExcSender` (same `response_started`
flag), used only when the installed Starlette's function is the one copied
(`_WRAP_IS_KNOWN`); otherwise Starlette's own wrapper runs.

A route whose dependencies the compiled runner reproduces (ws_runner.py)
does not run its own route.app: `_session` (FastAPI's websocket_session:
a WebSocket, the exception wrapper, the request and function exit stacks)
calls the route's generated runner instead of get_websocket_app's app and
its solve_dependencies -- unless the route's dependency overrides provider
has overrides at the time of the session (FastAPI's own app runs it then),
or route.app was replaced since it was compiled.

`ws_report(app)` lists (route, reason) for `celeris routes` ("" = native);
`ws_report(app, detail=True)` adds the runner's reason ("" = compiled).
`served` counts sessions run on the native tier (tests check it);
`compiled` those of them whose dependencies the compiled runner solved.
`tier_note`: when it holds a callable, each session reports its tier to it:
``note("")`` on the native tier, ``note(reason)`` when the session goes to
the app (the ASGI tier) -- the TestClient counts and attributes sessions so.
"""
from __future__ import annotations

from contextlib import AsyncExitStack
from contextvars import ContextVar
from typing import Any, Callable, Optional

from .ws_session import session_class as _session_class

served = 0
compiled = 0

#: A callable the current session reports its tier to ("" = native, else why not).
tier_note: "ContextVar[Optional[Callable[[str], None]]]" = ContextVar("celeris_ws_tier_note",
                                                                     default=None)

# Starlette's wrap_app_handling_exceptions as copied into _handling_exceptions
# (Starlette 1.10; whitespace-insensitive; 1.7's lacks the traceback reset).  Any other text: Starlette's own runs.
_KNOWN_WRAP = """
def wrap_app_handling_exceptions(app: ASGIApp, conn: Request | WebSocket) -> ASGIApp:
    exception_handlers: ExceptionHandlers
    status_handlers: StatusHandlers
    try:
        exception_handlers, status_handlers = conn.scope["starlette.exception_handlers"]
    except KeyError:
        exception_handlers, status_handlers = {}, {}

    async def wrapped_app(scope: Scope, receive: Receive, send: Send) -> None:
        response_started = False

        async def sender(message: Message) -> None:
            nonlocal response_started

            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await app(scope, receive, sender)
        except Exception as exc:
            handler = None

            if isinstance(exc, HTTPException):
                handler = status_handlers.get(exc.status_code)

            if handler is None:
                handler = _lookup_exception_handler(exception_handlers, exc)

            if handler is None:
                raise exc

            if response_started:
                raise RuntimeError("Caught handled exception, but response already started.") from exc

            if is_async_callable(handler):
                response = await handler(conn, exc)  # type: ignore[arg-type]
            else:
                response = await run_in_threadpool(handler, conn, exc)  # type: ignore[arg-type]
            if response is not None:
                await response(scope, receive, sender)
            # Reused exception instances accumulate tracebacks across requests.
            exc.__traceback__ = None

    return wrapped_app
"""

# Starlette < 1.8 (e.g. 1.7) has the same function without the traceback reset.
_TB_RESET = """
            # Reused exception instances accumulate tracebacks across requests.
            exc.__traceback__ = None
"""
_wrap_known: Optional[bool] = None
_wrap_resets_tb = True


def _WRAP_IS_KNOWN() -> bool:
    """Whether the installed Starlette's wrap_app_handling_exceptions is the
    function _handling_exceptions copies (checked once, by its source)."""
    global _wrap_known, _wrap_resets_tb
    if _wrap_known is None:
        try:
            import inspect

            from starlette import _exception_handler as eh

            def norm(text: str) -> str:
                return " ".join(text.split())

            src = norm(inspect.getsource(eh.wrap_app_handling_exceptions))
            ok = hasattr(eh, "_lookup_exception_handler")
            if ok and src == norm(_KNOWN_WRAP):
                _wrap_known, _wrap_resets_tb = True, True
            elif ok and src == norm(_KNOWN_WRAP.replace(_TB_RESET, "\n")):
                _wrap_known, _wrap_resets_tb = True, False
            else:
                _wrap_known = False
        except Exception:
            _wrap_known = False
    return _wrap_known


async def _handling_exceptions(app: Any, conn: Any, scope: dict, receive: Any, send: Any) -> None:
    """Starlette's wrap_app_handling_exceptions(app, conn)(scope, receive, send)
    (the text in _KNOWN_WRAP), with the sender as _celeris.ExcSender."""
    from starlette._exception_handler import _lookup_exception_handler
    from starlette._utils import is_async_callable
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    from celeris import _celeris

    try:
        exception_handlers, status_handlers = conn.scope["starlette.exception_handlers"]
    except KeyError:
        exception_handlers, status_handlers = {}, {}
    sender = _celeris.ExcSender(send)
    try:
        await app(scope, receive, sender)
    except Exception as exc:
        handler = None

        if isinstance(exc, HTTPException):
            handler = status_handlers.get(exc.status_code)

        if handler is None:
            handler = _lookup_exception_handler(exception_handlers, exc)

        if handler is None:
            raise exc

        if sender.response_started:
            raise RuntimeError("Caught handled exception, but response already started.") from exc

        if is_async_callable(handler):
            response = await handler(conn, exc)
        else:
            response = await run_in_threadpool(handler, conn, exc)
        if response is not None:
            await response(scope, receive, sender)
        if _wrap_resets_tb:
            # Reused exception instances accumulate tracebacks across requests.
            exc.__traceback__ = None


def _session(run: Any, scope: dict, receive: Any, send: Any) -> Any:
    """FastAPI's websocket_session(func)(scope, receive, send) with `func`
    the route's compiled runner, which gets the exit stacks directly.  A
    plain function returning the coroutine to await (its one caller awaits
    it at once): one coroutine level fewer for every resume of the session."""
    session = _session_class()(scope, receive=receive, send=send)

    async def app(scope: dict, receive: Any, send: Any) -> None:
        async with AsyncExitStack() as request_stack:
            scope["fastapi_inner_astack"] = request_stack
            async with AsyncExitStack() as function_stack:
                scope["fastapi_function_astack"] = function_stack
                await run(session, request_stack, function_stack)

    if _WRAP_IS_KNOWN():
        return _handling_exceptions(app, session, scope, receive, send)
    from starlette._exception_handler import wrap_app_handling_exceptions

    return wrap_app_handling_exceptions(app, session)(scope, receive, send)


_PASS_THROUGH = ['if scope["type"] != "http":', "await self.app(scope, receive, send)", "return"]


def _ws_pass_through(cls: Any) -> bool:
    """A user middleware class that hands a websocket scope to its app
    untouched: CORSMiddleware, GZipMiddleware and BaseHTTPMiddleware (a
    subclass keeping its __call__), when their __call__ begins with exactly
    that (`if scope["type"] != "http": await self.app(...); return`) in the
    installed Starlette.  TrustedHost and HTTPSRedirect act on websocket
    scopes and are not."""
    import inspect

    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware

    from celeris.native.middleware import _is_base_http

    if not isinstance(cls, type):
        return False
    if cls in (CORSMiddleware, GZipMiddleware):
        call = cls.__call__
    elif _is_base_http(cls):
        call = BaseHTTPMiddleware.__call__
    else:
        return False
    try:
        lines = inspect.getsource(call).splitlines()[1:]
    except (OSError, TypeError):
        return False
    body = [ln.split("#")[0].strip() for ln in lines]
    body = [ln for ln in body if ln]
    return body[:3] == _PASS_THROUGH


def _stack(app: Any) -> tuple[Optional[Any], str]:
    """The ExceptionMiddleware of FastAPI's default stack, or a reason."""
    try:
        from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
    except ImportError:         # FastAPI < 0.1xx: its stack is not the one reproduced here
        return None, "FastAPI version without AsyncExitStackMiddleware (stack not reproduced)"
    from fastapi.routing import APIRouter
    from starlette.middleware.errors import ServerErrorMiddleware
    from starlette.middleware.exceptions import ExceptionMiddleware

    user = list(getattr(app, "user_middleware", None) or ())
    if user and not all(_ws_pass_through(getattr(m, "cls", None)) for m in user):
        return None, "user middleware (websocket scopes kept on the ASGI tier)"
    if type(app.router) is not APIRouter:
        return None, "custom router class"
    if type(app).__call__ is not _fastapi_call():
        return None, "custom app __call__"
    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    s = app.middleware_stack
    if type(s) is not ServerErrorMiddleware:
        return None, "middleware stack not reproduced"
    e = s.app
    # FastAPI >= 0.16x: ExceptionTelemetryMiddleware (re-raises; records only
    # with "fastapi.telemetry" in the scope, which the native tier leaves to
    # the ASGI tier) and AppBodyLimitMiddleware (a pass-through without
    # max_body_size and without its scope key).
    if type(e).__name__ == "ExceptionTelemetryMiddleware" \
            and type(e).__module__ == "fastapi.telemetry._asgi":
        e = e.app
    if type(e).__name__ == "AppBodyLimitMiddleware" and type(e).__module__ == "fastapi._body_limit":
        if getattr(app, "max_body_size", None) is not None:
            return None, "max_body_size set on the app"
        e = e.app
    for m in user:                  # each hands websocket scopes straight to its app
        if type(e) is not m.cls:
            return None, "middleware stack not reproduced"
        e = e.app
    if type(e) is not ExceptionMiddleware:
        return None, "middleware stack not reproduced"
    a = e.app
    if type(a) is not AsyncExitStackMiddleware or a.app is not app.router \
            or a.context_name != "fastapi_middleware_astack":
        return None, "middleware stack not reproduced"
    return e, ""


def _fastapi_call() -> Any:
    from fastapi import FastAPI

    return FastAPI.__call__


def ws_report(app: Any, detail: bool = False) -> list[tuple]:
    """(route, reason) for every route that may match a websocket scope;
    with `detail`, (route, reason, runner reason): for the routes the
    dispatcher runs, "" when the compiled runner solves their dependencies,
    else why FastAPI's solve_dependencies does."""
    out = _ws_tiers(app)
    if not detail:
        return out
    from .ws_runner import compile_route

    return [(r, why, "" if why else compile_route(r)[2]) for r, why in out]


def _ws_tiers(app: Any) -> list[tuple[Any, str]]:
    from fastapi.routing import APIRoute, APIWebSocketRoute
    from starlette.routing import Route, WebSocketRoute

    try:
        _, why = _stack(app)
    except Exception as exc:
        why = f"compiler: {type(exc).__name__}: {exc}"
    out = []
    opaque = ""
    for r in getattr(app.router, "routes", ()):
        t = type(r)
        if t in (Route, APIRoute):
            continue                    # never match a websocket scope
        if t in (APIWebSocketRoute, WebSocketRoute):
            out.append((r, why or opaque))
            continue
        if not opaque:
            opaque = f"follows a {t.__name__} (websocket matching not reproduced)"
        if t.__name__ == "_IncludedRouter":
            for sub in _included_ws(r):
                out.append((sub, why or "route of an included router (FastAPI's inclusion context not reproduced)"))
    return out


def _included_ws(inc: Any) -> list:
    router = getattr(inc, "router", None) or getattr(inc, "original_router", None)
    routes = getattr(router, "routes", None) or ()
    from fastapi.routing import APIWebSocketRoute
    from starlette.routing import WebSocketRoute

    return [r for r in routes if type(r) in (APIWebSocketRoute, WebSocketRoute)]


def ws_app(app: Any) -> Callable:
    """An ASGI callable for websocket scopes (see the module docstring)."""
    from fastapi.routing import APIRoute
    from starlette._exception_handler import wrap_app_handling_exceptions
    from starlette.routing import Match, Route
    from starlette.websockets import WebSocket

    from fastapi import routing as _fr

    from celeris import native

    _update_scope = getattr(_fr, "_update_scope", None) or (lambda s, c: s.update(c))
    _route_selected = getattr(_fr, "_route_selected", None)

    from .ws_runner import compile_route

    state: dict = {"key": None, "plan": None, "why": ""}
    runners: dict = {}      # id(route) -> (route, route.app compiled from, run, provider)

    def runner_of(route: Any) -> Optional[tuple]:
        entry = runners.get(id(route))
        if entry is None or entry[0] is not route or entry[1] is not route.app:
            run, provider, _ = compile_route(route)
            entry = runners[id(route)] = (route, route.app, run, provider)
        return entry

    def plan() -> Optional[tuple]:
        key = native.routes_key(app)
        if key != state["key"]:
            state["key"] = key
            try:
                exc_mw, why = _stack(app)
                routes = [r for r, w in ws_report(app) if not w] if not why else []
                skip = (Route, APIRoute)
                ordered = [r for r in app.router.routes if type(r) not in skip]
                # only the leading run of native routes (registration order)
                lead = []
                for r in ordered:
                    if r in routes:
                        lead.append(r)
                    else:
                        break
                state["plan"] = (exc_mw, lead) if lead else None
                runners.clear()
                state["why"] = ("app: " + why) if why else "" if lead else \
                    "no leading websocket route the native tier runs"
            except Exception as exc:
                state["plan"] = None
                state["why"] = f"compiler: {type(exc).__name__}: {exc}"
        return state["plan"]

    def unmatched(probe: dict) -> str:
        """Why no native route took this scope (only asked when a note is set)."""
        try:
            for route, why in ws_report(app):
                match, _ = route.matches(probe)
                if match == Match.FULL:
                    return "route: " + why if why else \
                        "route: follows a route the native tier does not run"
        except Exception as exc:
            return f"unmatched ({type(exc).__name__})"
        return "no websocket route matches"

    try:
        from fastapi._body_limit import MAX_BODY_SIZE_SCOPE_KEY as _BODY_KEY
    except ImportError:
        _BODY_KEY = "\0celeris: no such key"
    router = app.router

    async def run(scope: dict, receive: Any, send: Any) -> None:
        global served
        p = plan() if scope.get("type") == "websocket" and "fastapi.telemetry" not in scope \
            and _BODY_KEY not in scope else None
        tel = getattr(app, "_native_telemetry", None)
        if p is None or (tel is not None and tel.enabled()):
            note = tier_note.get()
            if note is not None:
                note(("app: FastAPI telemetry enabled" if p is not None else state["why"])
                     if scope.get("type") == "websocket" and "fastapi.telemetry" not in scope
                     and _BODY_KEY not in scope else "scope not taken by the native tier")
            await app(scope, receive, send)
            return
        exc_mw, routes = p
        root_path = app.root_path
        probe = dict(scope)
        if root_path:
            probe["root_path"] = root_path
        for route in routes:
            match, child = route.matches(probe)
            if match == Match.FULL:
                break
        else:
            note = tier_note.get()
            if note is not None:
                note(unmatched(probe))
            await app(scope, receive, send)
            return
        served += 1
        note = tier_note.get()
        if note is not None:
            note("")
        if root_path:
            scope["root_path"] = root_path
        scope["app"] = app
        scope["starlette.exception_handlers"] = (exc_mw._exception_handlers, exc_mw._status_handlers)
        conn = WebSocket(scope, receive, send)

        async def inner(scope: dict, receive: Any, send: Any) -> None:
            global compiled
            async with AsyncExitStack() as stack:
                scope["fastapi_middleware_astack"] = stack
                if "router" not in scope:
                    scope["router"] = router
                _update_scope(scope, child)
                if _route_selected is not None:
                    _route_selected(scope=scope, path=getattr(route, "path_format", None), mount=False)
                entry = runner_of(route)
                runner = entry[2]
                if runner is not None:
                    provider = entry[3]
                    if not (provider and provider.dependency_overrides):
                        compiled += 1
                        await _session(runner, scope, receive, send)
                        return
                await route.handle(scope, receive, send)

        if _WRAP_IS_KNOWN():
            await _handling_exceptions(inner, conn, scope, receive, send)
        else:
            await wrap_app_handling_exceptions(inner, conn)(scope, receive, send)

    return run
