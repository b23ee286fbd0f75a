"""Requests whose parameters the C extractor found invalid or missing, on a
simple plan (no dependencies, no body): answered natively by FastAPI's own
validation instead of being handed to the ASGI tier.

`make_slow_path(route)` returns `slow(scope, path_params)`, a coroutine
function doing what FastAPI's get_request_handler + solve_dependencies do
for such a route: path, query, header and cookie parameters validated with
FastAPI's request_params_to_args against the Request's own path_params,
query_params, headers and cookies, errors in FastAPI's order, then
RequestValidationError (answered by the app's handler, FastAPI's default
422 unless the app replaced it) -- or, should the parameters turn out valid
after all, the endpoint called with them (its result goes the usual way)."""
from __future__ import annotations

from typing import Any, Callable


def make_slow_path(route: Any, is_coroutine: bool) -> Callable:
    from fastapi.dependencies.utils import request_params_to_args
    from fastapi.exceptions import RequestValidationError
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request

    from celeris.native.runner import endpoint_context

    try:
        from fastapi.routing import _validation_failed
    except ImportError:  # pragma: no cover - version guard
        def _validation_failed(exc: Any) -> None:
            return None

    d = route.dependant
    call = d.call
    import inspect

    # endpoint_ctx: FastAPI >= 0.12x's RequestValidationError takes it, older ones do not
    extra = {}
    if "endpoint_ctx" in inspect.signature(RequestValidationError.__init__).parameters:
        extra["endpoint_ctx"] = endpoint_context(route)

    async def slow(scope: dict, path_params: dict) -> Any:
        scope["path_params"] = path_params
        request = Request(scope)
        values: dict = {}
        errors: list = []
        for fields, source in ((d.path_params, lambda: request.path_params),
                               (d.query_params, lambda: request.query_params),
                               (d.header_params, lambda: request.headers),
                               (d.cookie_params, lambda: request.cookies)):
            if fields:
                v, e = request_params_to_args(fields, source())
                values.update(v)
                errors += e
        if errors:
            exc = RequestValidationError(errors, body=None, **extra)
            _validation_failed(exc)
            raise exc
        if is_coroutine:
            return await call(**values)
        return await run_in_threadpool(call, **values)

    return slow
