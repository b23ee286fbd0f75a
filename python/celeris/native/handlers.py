"""The app's exception handlers, run by the native tier as FastAPI runs them.

FastAPI's middleware stack routes an exception raised by a route (endpoint,
dependency, body validation, response serialisation) through two places:
  - Starlette's ExceptionMiddleware handlers (`wrap_app_handling_exceptions`):
    status-code handlers for HTTPException first, then the exception's MRO;
    the handler's Response passes through the user middleware (CORS) on its way out;
  - otherwise ServerErrorMiddleware (outermost): the 500/Exception handler, or
    the plain "Internal Server Error", then the exception is re-raised to the
    server, which logs it.

`responders(app, server_error)` returns the three functions the C driver calls
(native_call.c respond_exception, server_error_started):
  handle(nc, exc)       -> a Response, an ASGI callable running the app's own
                           handler, or None (not handled: server error path);
  server_response(nc, exc) -> what ServerErrorMiddleware sends (and logs);
  server_started(nc, exc) -> the same once the response started: the app's
                           500 handler still runs (nothing sent), or None.
FastAPI's default handlers are answered by runtime.http_exception directly
(the same bytes, without a Request or an await)."""
from __future__ import annotations

from typing import Any, Callable

from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request


class HandlerCall:
    """An ASGI callable standing in for the Response: awaits the app's
    handler with the request, then sends what it returned (nothing if None,
    as Starlette).  `log`: the exception is re-raised to the server after
    the response, as ServerErrorMiddleware does (here: handed to `log`)."""

    __slots__ = ("handler", "nc", "exc", "app", "log")

    def __init__(self, handler: Callable, nc: Any, exc: BaseException, app: Any,
                 log: Callable | None = None) -> None:
        self.handler = handler
        self.nc = nc
        self.exc = exc
        self.app = app
        self.log = log

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        request = self.nc.request
        if request is None:
            _complete_scope(scope, self.app)
            request = Request(scope, receive, send)
            body = self.nc.body
            if body is not None:
                request._body = body     # read already: request.body() returns it, as in FastAPI
        handler, exc = self.handler, self.exc
        if is_async_callable(handler):
            response = await handler(request, exc)
        else:
            response = await run_in_threadpool(handler, request, exc)
        if self.log is None:
            if response is not None:
                await response(scope, receive, send)
            return
        try:
            if not self.nc.cycle.response_started:   # ServerErrorMiddleware's own check
                await response(scope, receive, send)
        finally:
            self.log(exc)


def _complete_scope(scope: dict, app: Any) -> None:
    """The keys FastAPI's stack and router put in the scope before the route
    runs (app, router, route, endpoint, path_params, exception handlers),
    for a handler that reads them from its Request."""
    if "route" in scope:
        return
    scope.setdefault("app", app)
    router = app.router
    scope.setdefault("router", router)
    try:
        from starlette.routing import Match

        for route in router.routes:
            match, child = route.matches(scope)
            if match == Match.FULL:
                scope.update(child)
                scope.setdefault("route", route)
                break
    except Exception:  # pragma: no cover - the handler still gets a usable Request
        pass


def responders(app: Any, runtime: Any) -> tuple[Callable, Callable, Callable]:
    """(handle, server_response, server_started) for `app`; runtime supplies http_exception,
    server_error (logs; returns the default 500) and PlainTextResponse."""
    from fastapi import exception_handlers as eh
    from starlette.middleware.exceptions import ExceptionMiddleware

    error_handler = None
    handlers = {}
    for key, value in app.exception_handlers.items():
        if key in (500, Exception):
            error_handler = value          # FastAPI: the last of the two wins
        else:
            handlers[key] = value
    mw = ExceptionMiddleware(None, handlers=handlers, debug=app.debug)
    exc_handlers, status_handlers = mw._exception_handlers, mw._status_handlers
    defaults = (eh.http_exception_handler, eh.request_validation_exception_handler)
    http_exception = runtime.http_exception
    server_error = runtime.server_error

    def lookup(exc: BaseException) -> Any:
        handler = None
        if isinstance(exc, HTTPException) and status_handlers:
            handler = status_handlers.get(exc.status_code)
        if handler is None:
            for cls in type(exc).__mro__:
                handler = exc_handlers.get(cls)
                if handler is not None:
                    break
        return handler

    def handle(nc: Any, exc: BaseException) -> Any:
        handler = lookup(exc)
        if handler is None:
            return None
        if handler in defaults:
            return http_exception(exc)
        return HandlerCall(handler, nc, exc, app)

    def log_error(exc: BaseException) -> None:
        server_error(exc)

    def server_response(nc: Any, exc: BaseException) -> Any:
        if error_handler is None:
            return server_error(exc)
        return HandlerCall(error_handler, nc, exc, app, log=log_error)

    def server_started(nc: Any, exc: BaseException) -> Any:
        """An Exception after the response started (a streaming body, a
        background task, a yield dependency's teardown): Starlette's
        exception wrapper turns one the app has a handler for into
        RuntimeError("Caught handled exception, but response already
        started.") from it; ServerErrorMiddleware then still calls the app's
        500 handler (its answer is not sent) and re-raises.  Returns that
        handler's HandlerCall (the exception is logged after it), or None
        when the app has no 500 handler (logged here)."""
        if lookup(exc) is not None:
            err = RuntimeError("Caught handled exception, but response already started.")
            err.__cause__ = exc
            err.__context__ = exc
            exc = err
        if error_handler is None:
            server_error(exc)
            return None
        return HandlerCall(error_handler, nc, exc, app, log=log_error)

    return handle, server_response, server_started
