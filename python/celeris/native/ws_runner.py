"""WebSocket routes' dependencies solved by a compiled runner.

FastAPI runs an APIWebSocketRoute as `websocket_session(get_websocket_app(
dependant, ...))`: per session, `solve_dependencies` walks the route's
Dependant tree recursively (sub-dependencies, cache keys, the path, query,
header and cookie parameters of every node, generators on the exit
stacks), then a non-empty error list becomes WebSocketRequestValidationError
and the endpoint is called with the solved values.  All of that is static
for a route -- dependency overrides aside, which the dispatcher checks per
session -- so `compile_route` unrolls it once into one generated coroutine
`run(_ws, _rs, _fs)` (websocket, request and function exit stacks):

* every node is solved in FastAPI's order: its sub-dependencies first, then
  its own path, query, header and cookie parameters (FastAPI's
  request_params_to_args, with its per-field static work -- parameter
  model, aliases -- done once);
* a node whose subtree has parameters collects an error list; its call is
  skipped when the list is not empty (`continue` in solve_dependencies),
  and its errors join its parent's; nodes without parameters cannot fail
  and run unguarded;
* use_cache decisions are taken at compile time with FastAPI's own
  `_get_cache_key`: a repeated key has the same subtree, so it fails
  exactly when its first occurrence failed (its parameters are still
  validated again, as FastAPI re-solves the subtree);
* generators go through FastAPI's `_solve_generator` (its cancel scopes and
  cleanup bookkeeping live in `websocket.scope`, which the endpoint sees;
  it applies a dependency's concurrency limit itself), on the function
  stack for scope="function", else the request stack; coroutines are
  awaited, anything else runs in `run_in_threadpool`, inside the
  dependency's semaphore when it has a concurrency limit (FastAPI 0.165);
* errors raise WebSocketRequestValidationError with FastAPI's endpoint
  context (`WS <mount path><route path>`) after `_validation_failed`, as
  get_websocket_app does; the app's handlers (1008 + the errors as reason
  by default) answer it through the same exception wrappers.

Only FastAPI versions whose relevant functions have a known source (by
SHA-256 of `inspect.getsource`) are compiled: 0.162.5 and 0.165.0.
`compile_route(route)` returns (run, provider, "") or (None, None, reason);
a declined route keeps FastAPI's own route.app (still dispatched without
the middleware stack by native/websocket.py).  CELERIS_WS_RUNNER=0 declines
every route (diagnosis, before/after measurements).
"""
from __future__ import annotations

import hashlib
import inspect
import os
from typing import Any, Callable, Optional

# sha256(inspect.getsource(f))[:16] of the functions the runner reproduces,
# per FastAPI version that has them.
_KNOWN: dict[str, dict[str, str]] = {
    "get_websocket_app": {"cdca26af3eddf12e": "0.162.5, 0.165.0"},
    "websocket_session": {"a6a92255ab814c42": "0.162.5, 0.165.0"},
    "APIWebSocketRoute.__init__": {"5fc5a0fba70a6c99": "0.162.5, 0.165.0"},
    "solve_dependencies": {"9cd7c36098734866": "0.162.5", "19825365bd06b12b": "0.165.0"},
    "request_params_to_args": {"e028df88c5ead125": "0.162.5, 0.165.0"},
    "_get_multidict_value": {"1c0a3bde8f297e56": "0.162.5, 0.165.0"},
}

_known_result: list = []


def source_hash(obj: Any) -> str:
    return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]


def _functions() -> dict[str, Any]:
    from fastapi import routing
    from fastapi.dependencies import utils

    return {"get_websocket_app": routing.get_websocket_app,
            "websocket_session": routing.websocket_session,
            "APIWebSocketRoute.__init__": routing.APIWebSocketRoute.__init__,
            "solve_dependencies": utils.solve_dependencies,
            "request_params_to_args": utils.request_params_to_args,
            "_get_multidict_value": utils._get_multidict_value}


def fastapi_known() -> str:
    """"" when every function the runner reproduces has a known source,
    else the reason (checked once per process)."""
    if not _known_result:
        why = ""
        try:
            for name, fn in _functions().items():
                if source_hash(fn) not in _KNOWN[name]:
                    import fastapi

                    why = (f"FastAPI {getattr(fastapi, '__version__', '?')}: unknown {name} "
                           "(websocket dependencies solved by FastAPI)")
                    break
        except Exception as exc:
            why = f"FastAPI's websocket internals not readable ({type(exc).__name__})"
        _known_result.append(why)
    return _known_result[0]


class _Reject(Exception):
    """The route uses something the runner does not reproduce (message: why)."""


def _closure(fn: Any) -> dict[str, Any]:
    code = getattr(fn, "__code__", None)
    cells = getattr(fn, "__closure__", None) or ()
    if code is None:
        return {}
    return {name: cell.cell_contents for name, cell in zip(code.co_freevars, cells)}


_CODES: list = []


def _reference_codes() -> tuple:
    """The code objects of websocket_session's and get_websocket_app's inner
    `app` functions (what an untouched APIWebSocketRoute.app is made of)."""
    if not _CODES:
        from fastapi import routing

        func = routing.get_websocket_app(dependant=None)     # only closes over it
        session = routing.websocket_session(func)
        _CODES.append((session.__code__, func.__code__))
    return _CODES[0]


def route_parts(route: Any) -> tuple[Any, Any]:
    """(dependant, dependency_overrides_provider) of the get_websocket_app
    closure the route's app runs; _Reject when route.app is not FastAPI's
    untouched websocket_session(get_websocket_app(...))."""
    from fastapi.routing import APIWebSocketRoute

    if type(route) is not APIWebSocketRoute:
        raise _Reject(f"{type(route).__name__} (no FastAPI dependencies)")
    session_code, app_code = _reference_codes()
    app = route.app
    if getattr(app, "__code__", None) is not session_code:
        raise _Reject("route.app replaced")
    func = _closure(app).get("func")
    if getattr(func, "__code__", None) is not app_code:
        raise _Reject("route.app replaced")
    cells = _closure(func)
    if "dependant" not in cells or "dependency_overrides_provider" not in cells:
        raise _Reject("route.app replaced")
    provider = cells["dependency_overrides_provider"]
    if provider and not hasattr(provider, "dependency_overrides"):
        raise _Reject("dependency overrides provider without dependency_overrides")
    return cells["dependant"], provider


def _param_reader(fields: list, kind: str) -> Callable:
    """FastAPI's request_params_to_args(fields, received) for `kind`'s
    source (path: a dict, query: QueryParams, header: Headers, cookie: a
    dict) with each field's static part computed once: its parameter model,
    its request aliases (one alias: no lookup to choose), and
    _get_multidict_value's decisions (a sequence annotation and not Json:
    getlist on QueryParams/Headers; an empty sequence is missing)."""
    from fastapi import params
    from fastapi.dependencies import utils as du

    multi_source = kind in ("query", "header")      # ImmutableMultiDict / Headers
    plan = []
    for field in fields:
        model = du._get_param_model(field)
        if model is not None:
            plan.append((field, field.name, model, None, None, False, False))
            continue
        if not isinstance(field.field_info, params.Param):
            raise _Reject("parameter that is not a Param")
        aliases = du._get_param_aliases(field)
        if not aliases:
            raise _Reject("parameter without an alias")
        seq = bool(du.field_annotation_is_sequence(field.field_info.annotation))
        getlist = multi_source and seq and not du._is_json_field(field)
        plan.append((field, field.name, None, aliases if len(aliases) > 1 else aliases[0][1],
                     field.field_info.in_.value, seq, getlist))
    model_to_args = du._request_param_model_to_args
    validate = du._validate_value_with_model_field
    undefined = du.Undefined

    def read(received: Any) -> tuple[dict, list]:
        values: dict[str, Any] = {}
        errors: list[Any] = []
        for field, name, model, aliases, in_, seq, getlist in plan:
            if model is not None:
                v_, errors_ = model_to_args(field, model, received)
            else:
                if type(aliases) is str:
                    alias = aliases
                else:
                    _, alias = next((pair for pair in aliases if pair[1] in received), aliases[0])
                value = received.getlist(alias) if getlist else received.get(alias, None)
                if value is None or (seq and len(value) == 0):
                    value = undefined
                v_, errors_ = validate(field=field, value=value, values=values, loc=(in_, alias))
            if errors_:
                errors.extend(errors_)
            else:
                values[name] = v_
        return values, errors

    return read


class WsBuilder:
    """Unrolls one APIWebSocketRoute's Dependant tree into Python source."""

    def __init__(self, dependant: Any) -> None:
        from fastapi.dependencies import models

        self.dependant = dependant
        self.models = models
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {}
        self.cache: dict[Any, str] = {}
        self.uses_scopes: dict = {}
        self.n = 0

    def _name(self, prefix: str, obj: Any = None) -> str:
        self.n += 1
        name = f"_{prefix}{self.n}"
        if obj is not None:
            self.ns[name] = obj
        return name

    def _emit(self, line: str, guard: Optional[str]) -> None:
        self.lines.append(f"if not {guard}: {line}" if guard else line)

    def solve(self, dependant: Any) -> tuple[dict[str, str], Optional[str]]:
        """Emit the code solving `dependant` (not calling it); return its
        keyword arguments {name: expression} and the variable holding its
        error list (None: it cannot fail)."""
        from fastapi.dependencies.utils import _solve_generator

        m = self.models
        values: dict[str, str] = {}
        errs: list[str] = []
        err = self._name("e")
        for sub in dependant.dependencies:
            sub_values, sub_err = self.solve(sub)
            if sub_err:
                errs.append(sub_err)
            key = m._get_cache_key(dependant=sub, uses_scopes_cache=self.uses_scopes)
            if sub.use_cache and key in self.cache:
                var = self.cache[key]
            else:
                call = sub.call
                fn = self._name("c", call)
                var = self._name("v")
                kwargs = ", ".join(f"{k}={v}" for k, v in sub_values.items())
                if m._is_gen_callable(call) or m._is_async_gen_callable(call):
                    dep = self._name("d", sub)
                    stack = "_fs" if getattr(sub, "scope", None) == "function" else "_rs"
                    sv = "{" + ", ".join(f"{k!r}: {v}" for k, v in sub_values.items()) + "}"
                    req = ", request=_ws" if "request" in inspect.signature(
                        _solve_generator).parameters else ""
                    line = (f"{var} = await _solve_generator(dependant={dep}, stack={stack}, "
                            f"sub_values={sv}{req})")
                elif getattr(sub, "concurrency", None) is not None:
                    # FastAPI >= 0.165: the call inside the dependency's semaphore
                    dep = self._name("d", sub)
                    way = "_limited_async" if m._is_coroutine_callable(call) else "_limited_sync"
                    line = f"{var} = await {way}({dep}, {fn}, dict({kwargs}))"
                elif m._is_coroutine_callable(call):
                    line = f"{var} = await {fn}({kwargs})"
                else:
                    line = f"{var} = await _run_in_threadpool({fn}{', ' if kwargs else ''}{kwargs})"
                self._emit(line, sub_err)
            if sub.name is not None:
                values[sub.name] = var
            if key not in self.cache:
                self.cache[key] = var
        own = []
        # read where FastAPI reads them (after this node's sub-dependencies
        # ran); the WebSocket caches its QueryParams, Headers and cookies
        for kind, fields, source in (("path", dependant.path_params, "_ws.path_params"),
                                     ("query", dependant.query_params, "_ws.query_params"),
                                     ("header", dependant.header_params, "_ws.headers"),
                                     ("cookie", dependant.cookie_params, "_ws.cookies")):
            if not fields:
                continue
            reader = self._name("r", _param_reader(list(fields), kind))
            pv, pe = self._name("pv"), self._name("pe")
            self.lines.append(f"{pv}, {pe} = {reader}({source})")
            own.append((pv, fields))
            errs.append(pe)
        for pv, fields in own:
            for f in fields:
                values[f.name] = f"{pv}[{f.name!r}]"
        if dependant.body_params:
            raise _Reject("body parameter")
        if dependant.http_connection_param_name:
            values[dependant.http_connection_param_name] = "_ws"
        if getattr(dependant, "request_param_name", None):
            raise _Reject("Request parameter (not injected into websocket routes)")
        if dependant.websocket_param_name:
            values[dependant.websocket_param_name] = "_ws"
        if dependant.background_tasks_param_name:
            raise _Reject("BackgroundTasks parameter")
        if dependant.response_param_name:
            raise _Reject("Response parameter")
        if dependant.security_scopes_param_name:
            scopes = self._name("scopes", tuple(m._get_oauth_scopes(dependant=dependant)))
            values[dependant.security_scopes_param_name] = f"_SecurityScopes(scopes=list({scopes}))"
        if not errs:
            return values, None
        if len(errs) == 1:
            return values, errs[0]       # one list: it is this node's (lists are never mutated)
        self.lines.append(f"{err} = [{', '.join('*' + e for e in errs)}]")
        return values, err

    def build(self) -> Callable:
        """run(_ws, _rs, _fs): solve, then the endpoint (a coroutine function, or a
        plain one returning the endpoint's coroutine when solving awaits nothing)."""
        from fastapi.exceptions import WebSocketRequestValidationError
        from fastapi.security import SecurityScopes
        from starlette.concurrency import run_in_threadpool

        from fastapi.dependencies import utils as du

        d = self.dependant
        if d.call is None:
            raise _Reject("dependant without a call")
        values, err = self.solve(d)
        endpoint = self._name("endpoint", d.call)
        kwargs = ", ".join(f"{k}={v}" for k, v in values.items())
        pool = getattr(du, "run_in_threadpool", run_in_threadpool)

        async def _limited_async(dep: Any, call: Any, kwargs: dict) -> Any:
            async with dep.concurrency.get_semaphore():
                return await call(**kwargs)

        async def _limited_sync(dep: Any, call: Any, kwargs: dict) -> Any:
            async with dep.concurrency.get_semaphore():
                return await pool(call, **kwargs)

        self.ns.update(_solve_generator=du._solve_generator, _SecurityScopes=SecurityScopes,
                       _run_in_threadpool=pool, _limited_async=_limited_async,
                       _limited_sync=_limited_sync,
                       _fail=_failer(d, WebSocketRequestValidationError))
        body = list(self.lines)
        if err:
            body.append(f"if {err}: _fail(_ws, {err})")
        if any("await" in line or "async" in line for line in body):
            body.append(f"await {endpoint}({kwargs})")
            head = "async def run(_ws, _rs, _fs):\n"
        else:
            # nothing to await before the endpoint: a plain function returning the
            # endpoint's coroutine, which the caller awaits at once (one coroutine
            # level fewer for every resume of the session)
            body.append(f"return {endpoint}({kwargs})")
            head = "def run(_ws, _rs, _fs):\n"
        code = head + "".join(f"    {line}\n" for line in body)
        exec(compile(code, f"<celeris ws runner {d.path}>", "exec"), self.ns)
        run = self.ns["run"]
        run.__celeris_source__ = code
        return run


def _failer(dependant: Any, error_class: type) -> Callable:
    """get_websocket_app's error path: the endpoint context, telemetry's
    _validation_failed, the raise."""
    from fastapi import routing

    extract = getattr(routing, "_extract_endpoint_context", None)
    failed = getattr(routing, "_validation_failed", None)

    def fail(ws: Any, errors: list) -> None:
        if extract is not None:
            ctx = extract(dependant.call)
            if dependant.path:
                mount_path = ws.scope.get("root_path", "").rstrip("/")
                ctx["path"] = f"WS {mount_path}{dependant.path}"
            exc = error_class(errors, endpoint_ctx=ctx)
        else:
            exc = error_class(errors)
        if failed is not None:
            failed(exc)
        raise exc

    return fail


def compile_route(route: Any) -> tuple[Optional[Callable], Any, str]:
    """(run, dependency_overrides_provider, "") for a route the runner
    reproduces, else (None, None, reason)."""
    if os.environ.get("CELERIS_WS_RUNNER", "1") == "0":
        return None, None, "compiled websocket runner off (CELERIS_WS_RUNNER=0)"
    why = fastapi_known()
    if why:
        return None, None, why
    try:
        dependant, provider = route_parts(route)
        return WsBuilder(dependant).build(), provider, ""
    except _Reject as exc:
        return None, None, str(exc)
    except Exception as exc:      # something in the route the builder does not know
        return None, None, f"ws runner: {type(exc).__name__}: {exc}"
