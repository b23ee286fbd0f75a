"""Per-route runners: a route's dependency graph, JSON body and injections
compiled to one straight-line coroutine.

FastAPI walks `solve_dependencies` recursively on every request, building
sub-Dependants, dicts and cache keys as it goes.  All of that is static for
a route (overrides aside, and the C dispatcher sends a request to the ASGI
tier whenever `app.dependency_overrides` is non-empty), so the compiler
unrolls it once: the generated `runner(nc, p0, p1, ...)` receives the
parameters the C dispatcher extracted and validated, calls each dependency
in FastAPI's order with its cache decisions made at compile time, reads
and validates the body with FastAPI's own functions, calls the endpoint,
and answers through the NativeCall (`nc.prepare(result)` inside both exit
stacks, `await nc.respond()` after the function-scoped teardown and before
the request-scoped one -- FastAPI's `request_response` order).

Generators use FastAPI's own `_solve_generator` (same context managers,
cancel scopes and thread-pool handling); the exit stacks are the same
`AsyncExitStack` pair FastAPI puts in the scope.
"""
from __future__ import annotations

import email.message
import inspect
import json
import re
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Callable, Optional

from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

_RESPONSE_NOT_AWAITED = (
    "Response not awaited. There's a high chance that the "
    "application code is raising an exception and a dependency with yield "
    "has a block with a bare except, or a block with except Exception, "
    "and is not raising the exception again. Read more about it in the "
    "docs: https://fastapi.tiangolo.com/tutorial/dependencies/dependencies-with-yield/#dependencies-with-yield-and-except"
)


class _ScopeHolder:
    """What FastAPI's `_solve_generator` reads from its `request` argument."""

    __slots__ = ("scope",)

    def __init__(self, scope: dict) -> None:
        self.scope = scope


def _SOLVE_GEN_TAKES_REQUEST() -> bool:
    """FastAPI >= 0.163 passes the request to _solve_generator (cancel scopes)."""
    from fastapi.dependencies import utils

    return "request" in inspect.signature(utils._solve_generator).parameters


def supported() -> str:
    """"" when this FastAPI's dependency machinery is the one the runner
    reproduces, else the reason it is not."""
    try:
        from fastapi import routing
        from fastapi.dependencies import models, utils

        for name in ("_is_gen_callable", "_is_async_gen_callable", "_is_coroutine_callable",
                     "_get_cache_key"):
            if not hasattr(models, name):
                return f"dependencies on this FastAPI version ({name} missing)"
        params = inspect.signature(utils._solve_generator).parameters
        if not {"dependant", "stack", "sub_values"} <= set(params):
            return "yield dependencies on this FastAPI version"
        if "fastapi_function_astack" not in inspect.getsource(routing.request_response):
            return "dependency exit stacks of this FastAPI version"
        if not hasattr(routing, "_build_response_args") or not hasattr(routing, "serialize_response"):
            return "response building of this FastAPI version"
    except Exception as exc:  # an internal the runner does not know
        return f"dependencies on this FastAPI version ({type(exc).__name__})"
    return ""


async def read_body(nc: Any) -> bytes:
    """Starlette's Request.body() over the NativeCall's receive()."""
    chunks = []
    while True:
        message = await nc.receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            if body:
                chunks.append(body)
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            raise ClientDisconnect()
    body = nc.body = b"".join(chunks)     # an exception handler's request.body() returns it
    return body


_JSON_TYPES: dict[str, bool] = {}

_SCAN = json._default_decoder.scan_once     # what json.loads(b) runs, default arguments
_JSON_LOADS: list = []                      # json.loads once seen to be the json module's own


def _is_own_json_loads(f: Any) -> bool:
    """Is f the json module's own loads (not a patch or mock)?  Checked by
    what it is, not by identity with an earlier read: this module may be
    imported while json.loads is patched."""
    if _JSON_LOADS and f is _JSON_LOADS[0]:
        return True
    code = getattr(f, "__code__", None)
    own = (type(f) is type(_is_own_json_loads) and getattr(f, "__module__", None) == "json"
           and f.__qualname__ == "loads" and code is not None
           and code.co_filename == getattr(json, "__file__", None))
    if own:
        _JSON_LOADS[:] = [f]
    return own


def json_loads(body: bytes) -> Any:
    """json.loads(body), with json.loads' own steps skipped where they are
    no-ops: a body starting with '{' or '[' (not NUL next) is UTF-8 by
    json.detect_encoding and has no leading whitespace, so when the
    scanner's document ends exactly at the end, decode() would return it
    unchanged.  Anything else -- trailing whitespace, any error -- goes
    through json.loads itself (same scanner: same value, same exception),
    and so does every body while json.loads is not the json module's own
    (patched, as FastAPI's tests do: what it does then is what counts)."""
    if body[:1] in (b"{", b"[") and (len(body) < 2 or body[1]) and _is_own_json_loads(json.loads):
        try:
            text = body.decode("utf-8", "surrogatepass")
            obj, end = _SCAN(text, 0)
            if end == len(text):
                return obj
        except Exception:
            pass
    return json.loads(body)


def _is_json_type(content_type: str) -> bool:
    """FastAPI's test (email.message parsing of the header), memoised:
    parsing costs more than the rest of a small request."""
    known = _JSON_TYPES.get(content_type)
    if known is not None:
        return known
    message = email.message.Message()
    message["content-type"] = content_type
    result = False
    if message.get_content_maintype() == "application":
        subtype = message.get_content_subtype()
        result = subtype == "json" or subtype.endswith("+json")
    if len(_JSON_TYPES) < 256:
        _JSON_TYPES[content_type] = result
    return result


def make_body_decoder(strict_content_type: bool, endpoint_ctx: dict) -> Callable:
    """FastAPI's get_request_handler body step (JSON bodies)."""
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    try:
        from fastapi.routing import _validation_failed
    except ImportError:  # pragma: no cover - version guard
        def _validation_failed(exc: Any) -> None:
            return None

    _undefined = object()

    async def decode(nc: Any, content_type: Optional[str], request: Any = None) -> Any:
        try:
            body: Any = _undefined
            body_bytes = await (request.body() if request is not None else read_body(nc))
            if body_bytes:
                json_body: Any = _undefined
                if not content_type:
                    if not strict_content_type:
                        json_body = await request.json() if request is not None else json_loads(body_bytes)
                elif _is_json_type(content_type):
                    json_body = await request.json() if request is not None else json_loads(body_bytes)
                body = json_body if json_body is not _undefined else body_bytes
        except json.JSONDecodeError as e:
            validation_error = RequestValidationError(
                [{"type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error",
                  "input": {}, "ctx": {"error": e.msg}}],
                body=e.doc, endpoint_ctx=endpoint_ctx)
            _validation_failed(validation_error)
            raise validation_error from e
        except HTTPException:
            raise
        except Exception as e:
            raise HTTPException(status_code=400, detail="There was an error parsing the body") from e
        return _UNDEFINED if body is _undefined else body

    return decode


def make_form_decoder() -> Callable:
    """FastAPI's get_request_handler body step for Form/File bodies: the form
    parsed by the C parsers as Starlette's request.form() would parse it
    (native/forms.py), the FormData closed by the middleware exit stack."""
    from starlette.exceptions import HTTPException

    from .forms import parse_form, starlette_form, starlette_matches

    parse = parse_form if starlette_matches() else starlette_form   # another Starlette: its own parser

    async def decode(request: Any, file_stack: Any) -> Any:
        try:
            body = await parse(request)
            file_stack.push_async_callback(body.close)
        except HTTPException:
            raise
        except Exception as e:
            raise HTTPException(status_code=400, detail="There was an error parsing the body") from e
        return body

    return decode


class _Undefined:
    __slots__ = ()


_UNDEFINED = _Undefined()


def _single_body_field(request_body_to_args: Callable, fields: list, embed: bool) -> Any:
    """The one body field when FastAPI's request_body_to_args would take its
    "single field, not embedded" branch for a non-form body -- a decision
    that depends only on the fields -- else None.  Only for FastAPI versions
    whose request_body_to_args has that branch as the runner knows it."""
    try:
        from fastapi.dependencies import utils as du

        src = inspect.getsource(request_body_to_args)
        if ("single_not_embedded_field" not in src
                or "_validate_value_with_model_field(" not in src
                or not hasattr(du, "_validate_value_with_model_field")):
            return None
        if len(fields) != 1 or embed or du._should_embed_body_fields(fields) \
                or du._get_form_models(fields[0]):
            return None
        return fields[0]
    except Exception:
        return None


def make_body_validator(route: Any, endpoint_ctx: dict) -> Callable:
    """request_body_to_args + FastAPI's RequestValidationError, raised
    after the dependencies ran (solve_dependencies' order)."""
    from fastapi.dependencies.utils import request_body_to_args
    from fastapi.exceptions import RequestValidationError
    from pydantic_core import PydanticUndefined

    try:
        from fastapi.routing import _validation_failed
    except ImportError:  # pragma: no cover
        def _validation_failed(exc: Any) -> None:
            return None

    fields = route.dependant.body_params
    embed = bool(getattr(route, "_embed_body_fields", False))
    single = _single_body_field(request_body_to_args, fields, embed)
    if single is not None:
        from fastapi.dependencies.utils import _validate_value_with_model_field
        from starlette.datastructures import FormData
    loc = ("body",)

    async def validate(body: Any, prior_errors: list = ()) -> dict:
        received = PydanticUndefined if body is _UNDEFINED else body
        if single is not None and not isinstance(received, FormData):
            # request_body_to_args' own single-field branch, its static
            # decision taken once (see _single_body_field)
            v, errors = _validate_value_with_model_field(field=single, value=received, values={}, loc=loc)
            values = {single.name: v}
        else:
            values, errors = await request_body_to_args(body_fields=fields, received_body=received,
                                                        embed_body_fields=embed)
        errors = [*prior_errors, *errors]
        if errors:
            exc = RequestValidationError(errors, body=None if body is _UNDEFINED else body,
                                         endpoint_ctx=endpoint_ctx)
            _validation_failed(exc)
            raise exc
        return values

    return validate


def make_model_params(fields: dict, endpoint_ctx: dict, has_body: bool) -> Callable:
    """Parameter models (a Pydantic model as a group of query/header/cookie
    parameters) of the route's own dependant, with FastAPI's
    request_params_to_args on Starlette's QueryParams/Headers/cookies of
    the request.  Returns (values, errors); without a body, errors raise
    here (solve_dependencies' order: after the dependencies)."""
    from fastapi.dependencies.utils import request_params_to_args
    from fastapi.exceptions import RequestValidationError
    from starlette.datastructures import Headers, QueryParams
    from starlette.requests import cookie_parser

    try:
        from fastapi.routing import _validation_failed
    except ImportError:  # pragma: no cover
        def _validation_failed(exc: Any) -> None:
            return None

    query, header, cookie = fields.get("query", []), fields.get("header", []), fields.get("cookie", [])

    def params(scope: dict) -> tuple:
        values: dict = {}
        errors: list = []
        headers = Headers(scope=scope)
        for group, source in ((query, lambda: QueryParams(scope["query_string"])),
                              (header, lambda: headers),
                              (cookie, lambda: cookie_parser(headers.get("cookie", "")))):
            if group:
                v, e = request_params_to_args(group, source())
                values.update(v)
                errors += e
        if errors and not has_body:
            exc = RequestValidationError(errors, body=None, endpoint_ctx=endpoint_ctx)
            _validation_failed(exc)
            raise exc
        return values, errors

    return params


def make_finisher(route: Any, endpoint_ctx: dict, is_coroutine: bool) -> Callable:
    """FastAPI's response building for routes that inject Response or
    BackgroundTasks (status code, headers and background from the solved
    values), with FastAPI's own serialize_response."""
    from fastapi import routing
    from fastapi.datastructures import DefaultPlaceholder
    from fastapi.utils import is_body_allowed_for_status_code
    from starlette.responses import Response

    class _Solved:
        __slots__ = ("background_tasks", "response")

    response_class = route.response_class
    actual = response_class.value if isinstance(response_class, DefaultPlaceholder) else response_class
    use_dump_json = route.response_field is not None and isinstance(response_class, DefaultPlaceholder)
    ser_params = inspect.signature(routing.serialize_response).parameters

    async def finish(raw: Any, sub_response: Any, background: Any) -> Any:
        if isinstance(raw, Response):
            if raw.background is None:
                raw.background = background
            return raw
        if sub_response is None:        # solve_dependencies always makes one
            sub_response = new_sub_response()
        solved = _Solved()
        solved.background_tasks = background
        solved.response = sub_response
        args = routing._build_response_args(status_code=route.status_code, solved_result=solved)
        kw = dict(field=route.response_field, response_content=raw,
                  include=route.response_model_include, exclude=route.response_model_exclude,
                  by_alias=route.response_model_by_alias,
                  exclude_unset=route.response_model_exclude_unset,
                  exclude_defaults=route.response_model_exclude_defaults,
                  exclude_none=route.response_model_exclude_none, is_coroutine=is_coroutine)
        if "endpoint_ctx" in ser_params:
            kw["endpoint_ctx"] = endpoint_ctx
        if "dump_json" in ser_params:
            kw["dump_json"] = use_dump_json
        content = await routing.serialize_response(**kw)
        if use_dump_json and "dump_json" in ser_params:
            response = Response(content=content, media_type="application/json", **args)
        else:
            response = actual(content, **args)
        if not is_body_allowed_for_status_code(response.status_code):
            response.body = b""
        if sub_response is not None:
            response.headers.raw.extend(sub_response.headers.raw)
        return response

    return finish


def new_sub_response() -> Any:
    """The Response FastAPI's solve_dependencies injects (no status, no length)."""
    from starlette.responses import Response

    response = Response()
    del response.headers["content-length"]
    response.status_code = None  # type: ignore[assignment]
    return response


def endpoint_context(route: Any) -> dict:
    try:
        from fastapi.routing import _extract_endpoint_context

        ctx = _extract_endpoint_context(route.dependant.call)
    except (ImportError, TypeError):
        return {}
    methods = sorted(route.methods or ())
    if route.dependant.path and methods:
        ctx["path"] = f"{methods[0]} {route.dependant.path}"
    return ctx


def exception_handlers_tuple(app: Any) -> tuple:
    """scope["starlette.exception_handlers"] as the app's ExceptionMiddleware sets it."""
    from starlette.middleware.exceptions import ExceptionMiddleware

    handlers = {k: v for k, v in app.exception_handlers.items() if k not in (500, Exception)}
    mw = ExceptionMiddleware(None, handlers=handlers, debug=app.debug)
    return (mw._exception_handlers, mw._status_handlers)


def starlette_supported(route: Any, app: Any) -> str:
    """"" when a Starlette Route's request handling is Starlette's
    request_response(endpoint) as the starlette_runner reproduces it, else
    why not."""
    from fastapi.routing import APIRouter
    from starlette import routing

    if "app" not in APIRouter.__dict__:
        return "Starlette route (docs/openapi or add_route) on this FastAPI version"
    handler = route.app
    if (getattr(handler, "__qualname__", "") != "request_response.<locals>.app"
            or getattr(handler, "__module__", "") != "starlette.routing"):
        return "Starlette route with an ASGI endpoint, middleware or a body limit"
    try:
        src = inspect.getsource(routing.request_response)
    except (OSError, TypeError):
        return "Starlette's request_response could not be read"
    if "wrap_app_handling_exceptions(app, request)" not in src or "run_in_threadpool" not in src:
        return "Starlette route on this Starlette version"
    if getattr(app.router, "form_limits", None):
        return "form limits set on the router"
    return ""


def routed_scope(app: Any, matches: Callable) -> Callable:
    """routed(nc, stack) -> the request's scope as FastAPI's middleware stack
    and router leave it for a matched route or mount (app, exception handlers,
    the middleware exit stack `stack`, router, then the route's child scope),
    keys in that order."""
    handlers = exception_handlers_tuple(app)
    router = app.router

    def routed(nc: Any, stack: Any) -> dict:
        scope = nc.scope()
        scope["app"] = app
        scope["starlette.exception_handlers"] = handlers
        scope["fastapi_middleware_astack"] = stack
        scope["router"] = router
        scope.update(matches(scope)[1])
        return scope

    return routed


def starlette_runner(route: Any, app: Any) -> Callable:
    """The runner of a Starlette Route with a function endpoint: the Request
    gets the scope FastAPI's middleware stack and router build (app,
    exception handlers, middleware exit stack, router, endpoint, path
    params); the endpoint runs on the loop (async) or in the thread pool
    (def), as request_response runs it; a returned Response is written by
    the NativeCall, anything else is called as an ASGI app, as Starlette
    does.  Exceptions propagate to the NativeCall, which answers them as
    the app's default handlers and ServerErrorMiddleware do."""
    from starlette._utils import is_async_callable
    from starlette.requests import Request
    from starlette.responses import Response

    endpoint = route.endpoint
    is_async = is_async_callable(endpoint)
    routed = routed_scope(app, route.matches)

    async def runner(nc: Any) -> None:
        async with AsyncExitStack() as stack:
            scope = routed(nc, stack)
            cycle = nc.cycle
            request = Request(scope, cycle.receive, cycle.send)
            if is_async:
                response = await endpoint(request)
            else:
                response = await run_in_threadpool(endpoint, request)
            if isinstance(response, Response):
                nc.prepare(response)
                await nc.respond()
            else:
                await response(scope, cycle.receive, nc.asgi_send())

    return runner


def mount_supported(app: Any) -> str:
    """"" when the router's handling of a matched Mount is what
    mount_runner reproduces (Router.app: scope.update(child_scope), then
    Mount.handle -> self.app), else why not."""
    from fastapi.routing import APIRouter
    from starlette import routing

    if "app" not in APIRouter.__dict__:
        return "mounted sub-application on this FastAPI version"
    try:
        src = inspect.getsource(routing.Mount.handle)
    except (OSError, TypeError):
        return "Starlette's Mount could not be read"
    if "await self.app(scope, receive, send)" not in src:
        return "mounted sub-application on this Starlette version"
    return ""


def mount_runner(mount: Any, app: Any) -> Callable:
    """The runner of a Mount of StaticFiles: the scope FastAPI's stack,
    router and the Mount build (app, exception handlers, middleware exit
    stack, router, the Mount's child scope: root_path, app_root_path,
    path_params, endpoint), then the mounted app itself with the request's
    ASGI receive/send (files go out through path-send when offered).  Its
    HTTPExceptions (404/405) propagate to the NativeCall, which answers them
    with the app's handlers, as ExceptionMiddleware does."""
    target = mount.app
    routed = routed_scope(app, mount.matches)

    async def runner(nc: Any) -> None:
        async with AsyncExitStack() as stack:
            scope = routed(nc, stack)
            await target(scope, nc.cycle.receive, nc.asgi_send())

    return runner


class RunnerBuilder:
    """Unrolls one route's Dependant tree into Python source.

    `param(field, where)` is the compiler's parameter planner: it returns
    (ParamPlan, "") or (None, reason); the builder renames each plan's
    kwname to the runner's positional slot name."""

    def __init__(self, route: Any, param: Callable, app: Any) -> None:
        from fastapi.dependencies import models

        self.app = app
        self.route = route
        self.param = param
        self.models = models
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {}
        self.params: list[Any] = []
        self.cache: dict[Any, str] = {}
        self.uses_scopes: dict = {}
        self.n = 0
        self.needs = {"response": False, "background": False, "gen": False, "request": False,
                      "slowgen": False, "fs": False}
        self.model_fields: dict = {}

    def _name(self, prefix: str, obj: Any = None) -> str:
        self.n += 1
        name = f"_{prefix}{self.n}"
        if obj is not None:
            self.ns[name] = obj
        return name

    def _add_param(self, field: Any, where: int) -> str:
        plan, why = self.param(field, where)
        if plan is None:
            raise _Reject(why)
        slot = f"p{len(self.params)}"
        plan.kwname = slot
        self.params.append(plan)
        return slot

    def solve(self, dependant: Any, top: bool) -> dict[str, str]:
        """Emit the code solving `dependant`'s sub-dependencies; return its
        keyword arguments as {name: expression}."""
        from celeris.native.compiler import PARAM_COOKIE, PARAM_HEADER, PARAM_PATH, PARAM_QUERY

        m = self.models
        values: dict[str, str] = {}
        for sub in dependant.dependencies:
            if getattr(sub, "concurrency", None) is not None:
                raise _Reject("dependency with a concurrency limit")
            sub_values = self.solve(sub, False)
            key = m._get_cache_key(dependant=sub, uses_scopes_cache=self.uses_scopes)
            if sub.use_cache and key in self.cache:
                var = self.cache[key]
            else:
                call = sub.call
                fn = self._name("c", call)
                var = self._name("v")
                kwargs = ", ".join(f"{k}={v}" for k, v in sub_values.items())
                if m._is_gen_callable(call) or m._is_async_gen_callable(call):
                    self.needs["gen"] = True
                    dep = self._name("d", sub)
                    stack = "_fs" if getattr(sub, "scope", None) == "function" else "_rs"
                    self.needs["fs"] = self.needs["fs"] or stack == "_fs"
                    sv = "{" + ", ".join(f"{k!r}: {v}" for k, v in sub_values.items()) + "}"
                    req = ", request=_holder" if _SOLVE_GEN_TAKES_REQUEST() else ""
                    slow = (f"{var} = await _solve_generator(dependant={dep}, stack={stack}, "
                            f"sub_values={sv}{req})")
                    if m._is_async_gen_callable(call) and _ASYNC_GEN_DIRECT():
                        # Decided in build(): direct entry unless the route injects Request.
                        if _GEN_CM is not None:
                            self.ns["_GenCM"] = _GEN_CM
                            cm = f"_GenCM({fn}({kwargs}))"
                        else:
                            cm = f"{self._name('acm', asynccontextmanager(call))}({kwargs})"
                        fast = f"{var} = await {stack}.enter_async_context({cm})"
                        self.lines.append(_GenLine(slow, fast))
                    else:
                        self.needs["slowgen"] = True
                        self.lines.append(slow)
                elif m._is_coroutine_callable(call):
                    self.lines.append(f"{var} = await {fn}({kwargs})")
                else:
                    self.lines.append(f"{var} = await _nc.run_sync({fn}, dict({kwargs}))")
            if sub.name is not None:
                values[sub.name] = var
            if key not in self.cache:
                self.cache[key] = var
        for f in dependant.path_params:
            values[f.name] = self._add_param(f, PARAM_PATH)
        from fastapi.dependencies import utils as du

        get_model = getattr(du, "_get_param_model", None)
        for where, kind, fields in ((PARAM_QUERY, "query", dependant.query_params),
                                    (PARAM_HEADER, "header", dependant.header_params),
                                    (PARAM_COOKIE, "cookie", dependant.cookie_params)):
            for f in fields:
                if get_model is not None and get_model(f) is not None:
                    if not top:
                        raise _Reject(f"{kind} parameter model in a dependency")
                    self.model_fields.setdefault(kind, []).append(f)
                    values[f.name] = f"_mv[{f.name!r}]"
                else:
                    values[f.name] = self._add_param(f, where)
        if dependant.body_params and not top:
            raise _Reject("request body read by a dependency")
        if getattr(dependant, "websocket_param_name", None):
            raise _Reject("injects websocket")
        for attr in ("http_connection_param_name", "request_param_name"):
            if getattr(dependant, attr, None):
                self.needs["request"] = True
                values[getattr(dependant, attr)] = "_request"
        if dependant.security_scopes_param_name:
            scopes = self._name("scopes", tuple(m._get_oauth_scopes(dependant=dependant)))
            values[dependant.security_scopes_param_name] = f"_SecurityScopes(scopes=list({scopes}))"
        if dependant.background_tasks_param_name:
            self.needs["background"] = True
            values[dependant.background_tasks_param_name] = "_bg"
        if dependant.response_param_name:
            self.needs["response"] = True
            values[dependant.response_param_name] = "_sub_response"
        return values

    def build(self, is_coroutine: bool, content_type_slot: Optional[str]) -> Callable:
        """The runner function.  Body routes get `content_type_slot`, the
        parameter carrying the Content-Type header."""
        from fastapi.dependencies.utils import _solve_generator
        from fastapi.exceptions import FastAPIError
        from starlette.background import BackgroundTasks

        route = self.route
        d = route.dependant
        ctx = endpoint_context(route)
        body_lines: list[str] = []
        has_body = bool(d.body_params)
        if has_body:
            from fastapi.datastructures import DefaultPlaceholder

            strict = getattr(route, "strict_content_type", True)
            if isinstance(strict, DefaultPlaceholder):
                strict = strict.value
            self.ns["_decode_body"] = make_body_decoder(bool(strict), ctx)
            self.ns["_validate_body"] = make_body_validator(route, ctx)
        if has_body and getattr(self, "is_form", False):
            self.needs["request"] = True
        values = self.solve(d, True)
        if has_body and getattr(self, "is_form", False):
            self.ns["_decode_form"] = make_form_decoder()
            body_lines.append("_body = await _decode_form(_request, _ms)")
        elif has_body:
            req = "_request" if self.needs["request"] else "None"
            body_lines.append(f"_body = await _decode_body(_nc, {content_type_slot}, {req})")
        # Async generator dependencies enter their context manager directly on
        # the exit stack (FastAPI's own asynccontextmanager, same stack, same
        # order) unless the route sees the scope through a Request, where
        # FastAPI's cleanup bookkeeping would be visible (see _ASYNC_GEN_DIRECT).
        direct = not self.needs["request"]
        dep_lines = []
        for line in self.lines:
            if isinstance(line, _GenLine):
                if not direct:
                    self.needs["slowgen"] = True
                line = line.fast if direct else line.slow
            dep_lines.append(line)
        self.lines = dep_lines
        call = self._name("endpoint", d.call)
        kwargs = ", ".join(f"{k}={v}" for k, v in values.items())
        prior = "()"
        if self.model_fields:
            self.ns["_model_params"] = make_model_params(self.model_fields, ctx, has_body)
            scope_expr = "_scope" if self.needs["request"] else "_nc.scope()"
            dep_lines.append(f"_mv, _merr = _model_params({scope_expr})")
            prior = "_merr"
        if has_body:
            dep_lines.append(f"_bv = await _validate_body(_body, {prior})")
            kwargs = kwargs + (", " if kwargs else "") + "**_bv"
        if is_coroutine:
            call_line = f"_result = await {call}({kwargs})"
        else:
            call_line = f"_result = await _nc.run_sync({call}, dict({kwargs}))"
        finish = self.needs["response"] or self.needs["background"] or self.needs.get("finish", False)
        from fastapi.security import SecurityScopes
        from starlette.requests import Request

        self.ns.update(_SecurityScopes=SecurityScopes, _Request=Request,
                       _AsyncExitStack=AsyncExitStack, _run_in_threadpool=run_in_threadpool,
                       _solve_generator=_solve_generator, _ScopeHolder=_ScopeHolder,
                       _FastAPIError=FastAPIError, _MSG=_RESPONSE_NOT_AWAITED,
                       _BackgroundTasks=BackgroundTasks, _new_sub_response=new_sub_response)
        if finish:
            self.ns["_finish"] = make_finisher(route, ctx, is_coroutine)
        slots = ", ".join(p.kwname for p in self.params)
        src = [f"async def runner(_nc{', ' if slots else ''}{slots}):"]
        if not self.needs["gen"] and not self.needs["request"]:
            # No generator dependency: the exit stacks FastAPI opens would stay
            # empty, so they are left out (exceptions propagate the same way).
            inner = ["_bg = _BackgroundTasks()" if self.needs["background"] else "_bg = None"]
            if self.needs["response"]:
                inner.append("_sub_response = _new_sub_response()")
            inner += body_lines + dep_lines + [call_line]
            if finish:
                inner.append("_nc.prepare(await _finish(_result, "
                             f"{'_sub_response' if self.needs['response'] else 'None'}, _bg))")
            else:
                inner.append("_nc.prepare(_result)")
            inner.append("await _nc.respond()")
            src += ["    " + line for line in inner]
            return self._compile(src)
        pre = "    "
        if self.needs["request"] and getattr(self, "included", False):
            # FastAPI's scope for an included route also carries its
            # inclusion context ("fastapi" key): not reproduced yet.
            raise _Reject("Request injection in an included router")
        if self.needs["request"]:
            # The scope FastAPI's middleware stack and router would have built.
            app = self.app
            self.ns.update(_app=app, _route=route, _router=app.router,
                           _eh=exception_handlers_tuple(app))
            src += ["    _scope = _nc.scope()",
                    "    _scope['app'] = _app",
                    "    _scope['starlette.exception_handlers'] = _eh",
                    "    async with _AsyncExitStack() as _ms:",
                    "        _scope['fastapi_middleware_astack'] = _ms",
                    "        _scope['router'] = _router",
                    "        _scope['route'] = _route",
                    "        _scope.update(_route.matches(_scope)[1])"]
            pre = "        "
        # FastAPI's function-scoped stack, exited before the response is
        # sent: left out when nothing could put anything on it or see it (no
        # function-scoped yield dependency, no Request, no _solve_generator).
        # Its exit would then run no callback and re-raise what came in.
        fs = self.needs["request"] or self.needs["slowgen"] or self.needs["fs"]
        inner = []
        if self.needs["request"]:
            inner.append("_scope['fastapi_inner_astack'] = _rs")
            inner.append("_scope['fastapi_function_astack'] = _fs")
            inner.append("_request = _Request(_scope, _nc.cycle.receive, _nc.cycle.send)")
            inner.append("_nc.request = _request")
            inner.append("_holder = _request")
        elif self.needs["slowgen"]:
            inner.append("_holder = _ScopeHolder({'fastapi_inner_astack': _rs, "
                         "'fastapi_function_astack': _fs})")
        if self.needs["response"]:
            inner.append("_sub_response = _new_sub_response()")
        inner.append("_bg = _BackgroundTasks()" if self.needs["background"] else "_bg = None")
        inner += body_lines + dep_lines + [call_line]
        if finish:
            inner.append("_nc.prepare(await _finish(_result, "
                         f"{'_sub_response' if self.needs['response'] else 'None'}, _bg))")
        else:
            inner.append("_nc.prepare(_result)")
        nested = None if fs else _nest_request_stack(inner)
        if nested is not None:
            src += [pre + line for line in ["_sent = False", *nested,
                                            "if not _sent:", "    raise _FastAPIError(_MSG)"]]
            return self._compile(src)
        src += [pre + "_sent = False",
                pre + "async with _AsyncExitStack() as _rs:"]
        if fs:
            src.append(pre + "    async with _AsyncExitStack() as _fs:")
        src += [pre + ("        " if fs else "    ") + line for line in inner]
        src += [pre + "    await _nc.respond()",
                pre + "    _sent = True",
                pre + "if not _sent:",
                pre + "    raise _FastAPIError(_MSG)"]
        return self._compile(src)

    def _compile(self, src: list[str]) -> Callable:
        code = "\n".join(src) + "\n"
        route = self.route
        exec(compile(code, f"<celeris runner {route.path}>", "exec"), self.ns)
        runner = self.ns["runner"]
        runner.__celeris_source__ = code
        return runner


def _light_cm() -> Optional[type]:
    """asynccontextmanager(call)(**kw)'s context manager without what only
    its ContextDecorator use needs: the same class (its __aexit__ is the
    installed Python's own), built from the generator itself, whose
    __aenter__ is the installed one minus dropping the func/args/kwds that
    are never set here.  None when this Python's version of it is not the
    one this reproduces."""
    import contextlib

    base = getattr(contextlib, "_AsyncGeneratorContextManager", None)
    try:
        src = inspect.getsource(base.__aenter__)
        init = inspect.getsource(contextlib._GeneratorContextManagerBase.__init__)
    except (AttributeError, OSError, TypeError):
        return None
    body = [ln.strip() for ln in src.splitlines()
            if ln.strip() and not ln.strip().startswith(("#", "async def"))]
    if body != ["del self.args, self.kwds, self.func", "try:", "return await anext(self.gen)",
                "except StopAsyncIteration:",
                "raise RuntimeError(\"generator didn't yield\") from None"] \
            or "self.gen = func(*args, **kwds)" not in init:
        return None

    class _GenCM(base):
        def __init__(self, gen: Any) -> None:
            self.gen = gen

        async def __aenter__(self) -> Any:
            try:
                return await anext(self.gen)
            except StopAsyncIteration:
                raise RuntimeError("generator didn't yield") from None

    return _GenCM


_GEN_CM = _light_cm()

_ENTER_RS = re.compile(r"(\w+) = await _rs\.enter_async_context\((.*)\)")


def _nest_request_stack(inner: list[str]) -> Optional[list[str]]:
    """The request-scoped exit stack as nested `async with` statements, or
    None when something else uses the stack.

    With no Request, no function-scoped stack and no `_solve_generator`, the
    stack's only callbacks are the context managers of the async generator
    dependencies, entered in order and exited in reverse, which is what
    nested `async with` statements do (ExitStack exists to emulate them,
    exception contexts included).  Each entry opens a block holding the rest
    of the route; the response is sent inside the innermost one, as it is
    sent before the stack closes."""
    out: list[str] = []
    depth = 0
    for line in inner:
        m = _ENTER_RS.fullmatch(line)
        if m:
            out.append("    " * depth + f"async with {m.group(2)} as {m.group(1)}:")
            depth += 1
        elif "_rs" in line or "\n" in line:
            return None
        else:
            out.append("    " * depth + line)
    out += ["    " * depth + "await _nc.respond()", "    " * depth + "_sent = True"]
    return out


class _GenLine:
    """An async generator dependency's line, both ways: `slow` through
    FastAPI's `_solve_generator`, `fast` entering the context manager on
    the stack directly (chosen once the whole route is known)."""

    __slots__ = ("slow", "fast")

    def __init__(self, slow: str, fast: str) -> None:
        self.slow = slow
        self.fast = fast


_DIRECT: list = []


def _ASYNC_GEN_DIRECT() -> bool:
    """True when this FastAPI's `_solve_generator` enters an async generator
    dependency as `asynccontextmanager(call)(**sub_values)` on the given
    stack, either plainly (FastAPI < 0.163) or wrapped in
    `_asynccontextmanager_with_shielded_exit` with a request-wide anyio
    CancelScope (0.163+), and nothing else -- so that entering
    `asynccontextmanager(call)(**sub_values)` on the same stack is the same
    behaviour on the native tier.

    Why the wrapper may be left out there: its CancelScope (entered on the
    request stack before the first generator, never cancelled itself) is
    shielded while a dependency's exit code runs, which only blocks
    cancellation coming from an *enclosing* anyio scope; a native-tier
    request has none (the runner is the outermost coroutine of its Task,
    no middleware around it), and native asyncio cancellation (shutdown's
    cancel_all) passes anyio shields anyway.  Its closing
    `checkpoint_if_cancelled()` likewise acts only on a cancelled enclosing
    scope.  The scope's bookkeeping lives in `request.scope`
    ("fastapi_async_cleanup_scopes"), which is why routes that inject a
    Request keep `_solve_generator`.  Costs saved per generator: the
    wrapper generator, the CancelScope enter/exit, a stack callback,
    `_solve_generator`'s own frame (~10 us of ~40 us for /chain)."""
    if not _DIRECT:
        ok = False
        try:
            from fastapi.dependencies import utils

            src = inspect.getsource(utils._solve_generator)
            ok = ("asynccontextmanager(dependant.call)(**sub_values)" in src
                  and "return await stack.enter_async_context(cm)" in src)
            if "cleanup_scope" in src or "_asynccontextmanager_with_shielded_exit" in src:
                from fastapi import concurrency

                wrap = inspect.getsource(concurrency._asynccontextmanager_with_shielded_exit)
                ok = ok and "async with cm as value:" in wrap and "checkpoint_if_cancelled" in wrap
        except Exception:
            ok = False
        _DIRECT.append(ok)
    return _DIRECT[0]


class _Reject(Exception):
    """The route uses something the runner does not reproduce (message: why)."""
