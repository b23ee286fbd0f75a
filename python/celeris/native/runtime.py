"""Python helpers the native tier calls for the rare, exact-fallback paths.

The fast path (C JSON writer, hand-framed JSONResponse headers) covers the
common case; everything here reproduces what FastAPI/Starlette do, with their
own classes, so the bytes are theirs."""
from __future__ import annotations

import logging
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
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


def thread_limit() -> int:
    """How many worker threads the native tier's pool may start: anyio's
    default thread limiter's tokens (what FastAPI's run_in_threadpool is
    bounded by, 40 unless the app changed it), when it can be read here."""
    try:
        import anyio.to_thread

        return int(anyio.to_thread.current_default_thread_limiter().total_tokens)
    except Exception:
        return 40


def run_sync(func: Any, kwargs: dict) -> Any:
    """A `def` endpoint runs in the thread pool, as FastAPI runs it."""
    return run_in_threadpool(func, **kwargs)


async def submit_later(pool: Any, func: Any, kwargs: dict) -> Any:
    """Stack mode: a `def` endpoint goes to the thread pool when the native
    call first runs -- after the user middleware reached the route -- not
    when the request is dispatched (a middleware may answer by itself, or
    send the request to FastAPI's own router)."""
    return await pool.submit(func, kwargs)


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


def make_serializer(field: Any, include: Any, exclude: Any, by_alias: bool, exclude_unset: bool,
                    exclude_defaults: bool, exclude_none: bool, endpoint: Any) -> Any:
    """FastAPI's serialize_response with dump_json=True for an async endpoint:
    validate against the response field, then pydantic-core's JSON bytes."""
    validate = field.validate
    serialize_json = field.serialize_json

    def serialize(content: Any) -> bytes:
        value, errors = validate(content, {}, loc=("response",))
        if errors:
            raise _response_validation_error(errors, content, endpoint)
        return serialize_json(value, include=include, exclude=exclude, by_alias=by_alias,
                              exclude_unset=exclude_unset, exclude_defaults=exclude_defaults,
                              exclude_none=exclude_none)

    return serialize


def _response_validation_error(errors: Any, body: Any, endpoint: Any) -> Exception:
    from fastapi.exceptions import ResponseValidationError

    try:
        from fastapi.routing import _extract_endpoint_context

        return ResponseValidationError(errors=errors, body=body,
                                       endpoint_ctx=_extract_endpoint_context(endpoint))
    except (ImportError, TypeError):
        return ResponseValidationError(errors=errors, body=body)


def render_json_bytes(status_code: int | None, content: bytes) -> Response:
    """The Response FastAPI builds around dump_json bytes."""
    args: dict[str, Any] = {"background": None}
    if status_code:
        args["status_code"] = status_code
    response = Response(content=content, media_type="application/json", **args)
    if not is_body_allowed_for_status_code(response.status_code):
        response.body = b""
    return response


async def send_json_bytes(send: Any, status_code: int | None, content: bytes) -> None:
    """Stack mode: the two messages render_json_bytes(status_code, content)'s
    Response sends (Response.__call__: start with content-length and
    content-type, then the body), without building the Response.  Only for
    statuses whose body is kept (not 1xx, 204, 205, 304: native_call.c
    checks)."""
    await send({"type": "http.response.start", "status": status_code or 200,
                "headers": [(b"content-length", str(len(content)).encode("latin-1")),
                            (b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": content})


def http_exception(exc: Exception) -> Response:
    """fastapi.exception_handlers.http_exception_handler, or
    request_validation_exception_handler for a RequestValidationError."""
    if isinstance(exc, RequestValidationError):
        return JSONResponse(status_code=422, content={"detail": jsonable_encoder(exc.errors())})
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


async def not_found() -> None:
    """Router.not_found inside a Starlette app: FastAPI's http_exception_handler
    answers it (404 {"detail":"Not Found"})."""
    raise HTTPException(status_code=404)


async def method_not_allowed(route: Any) -> None:
    """Route.handle (or APIRoute.handle for an included route's effective
    context) for a path-only match: the Allow header joins the same methods
    set, in its own iteration order."""
    raise HTTPException(status_code=405, headers={"Allow": ", ".join(route.methods)})


async def redirect_slashes(scope: dict) -> Response:
    """Router.app's redirect_slashes answer: the same scope with the trailing
    slash toggled, as a URL (scheme, Host header or server, query string)."""
    from starlette._utils import get_route_path
    from starlette.datastructures import URL

    redirect_scope = dict(scope)
    if get_route_path(scope).endswith("/"):
        redirect_scope["path"] = redirect_scope["path"].rstrip("/")
    else:
        redirect_scope["path"] = redirect_scope["path"] + "/"
    return RedirectResponse(url=str(URL(scope=redirect_scope)))


def copy_default(value: Any) -> Any:
    """FastAPI deep-copies a parameter's default for each request."""
    if value is None or type(value) in (int, str, float, bool, bytes, tuple, frozenset):
        return value
    import copy

    return copy.deepcopy(value)


def cors_hooks(mw: Any) -> tuple:
    """(start, wrap) running CORSMiddleware's own `send` for native responses:
    start(req_headers, status, headers) -> headers after the middleware,
    wrap(req_headers, send) -> the send a Response run as ASGI must use."""
    import functools

    from starlette.datastructures import Headers

    send = mw.send

    async def _sink(message: Any) -> None:
        return None

    def run(req_headers: list, status: int, headers: list) -> list:
        message = {"type": "http.response.start", "status": status, "headers": headers}
        coro = send(message, send=_sink, request_headers=Headers(raw=req_headers))
        try:
            coro.send(None)
        except StopIteration:
            return message["headers"]
        coro.close()
        raise RuntimeError("CORSMiddleware.send suspended")

    # The middleware's effect depends on the request's Origin (and, in some
    # Starlette versions, whether a Cookie header is present) and on the
    # response's headers other than content-length: when it only appends
    # headers, the appended tail is remembered for that key.
    cache: dict = {}

    # Older Starlette (< 0.47) calls the app untouched when the request has no
    # Origin (its `send` then assumes one); newer runs `send` for every request.
    import inspect

    try:
        bypass = "if origin is None" in inspect.getsource(type(mw).__call__)
    except (OSError, TypeError):
        bypass = False

    def start(req_headers: list, status: int, headers: list) -> list:
        origin = None
        cookie = False
        for name, value in req_headers:
            if name == b"origin":
                if origin is None:
                    origin = value
            elif name == b"cookie":
                cookie = True
        if origin is None and bypass:
            return headers
        key = (origin, cookie, status, tuple(h for h in headers if h[0] != b"content-length"))
        tail = cache.get(key)
        if tail is not None:
            return [*headers, *tail]
        copy = list(headers)
        out = run(req_headers, status, headers)
        n = len(copy)
        if len(out) >= n and [tuple(h) for h in out[:n]] == [tuple(h) for h in copy] and len(cache) < 1024:
            cache[key] = tuple(tuple(h) for h in out[n:])
        return out

    def wrap(req_headers: list, asgi_send: Any) -> Any:
        if bypass and not any(name == b"origin" for name, _ in req_headers):
            return asgi_send
        return functools.partial(send, send=asgi_send, request_headers=Headers(raw=req_headers))

    return start, wrap
