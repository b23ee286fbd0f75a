"""Python helpers the native tier calls for the rare, exact-fallback paths.

The fast path (C JSON writer, hand-framed JSONResponse headers) covers the
common case; everything here reproduces what FastAPI/Starlette do, with their
own classes, so the bytes are theirs."""
from __future__ import annotations

import logging
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.utils import is_body_allowed_for_status_code
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)

logger = logging.getLogger("celeris.error")

# Response classes whose ASGI __call__ is exactly "start(status, raw_headers);
# body(body); then background": these can be written without an ASGI round.
_SIMPLE = (Response, JSONResponse, PlainTextResponse, HTMLResponse, RedirectResponse)


def run_sync(func: Any, kwargs: dict) -> Any:
    """A `def` endpoint runs in the thread pool, as FastAPI runs it."""
    return run_in_threadpool(func, **kwargs)


def render(response_class: Any, status_code: int | None, content: Any) -> Response:
    """FastAPI's path for a plain return value without response_model:
    serialize_response -> jsonable_encoder, then the route's response class."""
    args: dict[str, Any] = {"background": None}
    if status_code:
        args["status_code"] = status_code
    response = response_class(jsonable_encoder(content), **args)
    if not is_body_allowed_for_status_code(response.status_code):
        response.body = b""
    return response


def http_exception(exc: HTTPException) -> Response:
    """fastapi.exception_handlers.http_exception_handler."""
    headers = getattr(exc, "headers", None)
    if not is_body_allowed_for_status_code(exc.status_code):
        return Response(status_code=exc.status_code, headers=headers)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)


def server_error(exc: BaseException) -> Response:
    """ServerErrorMiddleware's answer (debug off); the server logs the error
    as uvicorn does for the exception ServerErrorMiddleware re-raises."""
    logger.error("Exception in ASGI application\n", exc_info=exc)
    return PlainTextResponse("Internal Server Error", status_code=500)


def unpack(response: Any) -> tuple[int, list, bytes] | None:
    """(status, raw_headers, body) when the response can be written directly,
    None when it must run as an ASGI app (streaming, files, background tasks,
    subclasses)."""
    if type(response) in _SIMPLE and response.background is None:
        return response.status_code, response.raw_headers, response.body
    return None


def is_http_exception(exc: BaseException) -> bool:
    return isinstance(exc, HTTPException)


def copy_default(value: Any) -> Any:
    """FastAPI deep-copies a parameter's default for each request."""
    if value is None or type(value) in (int, str, float, bool, bytes, tuple, frozenset):
        return value
    import copy

    return copy.deepcopy(value)
