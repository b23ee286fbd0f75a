"""The native tier: FastAPI routes compiled to plans the C core executes.

`build(app)` compiles the route table and returns the C NativeApp (or None
when the whole app must stay on the ASGI tier) plus the compile report used
by `celeris routes`."""
from __future__ import annotations

import collections.abc
from typing import Any

from celeris import _celeris
from celeris.native.compiler import (
    KIND_OPAQUE,
    KIND_PATH,
    CompiledApp,
    compile_app,
)

# asyncio.Task accepts any collections.abc.Coroutine: the C driver is one.
collections.abc.Coroutine.register(_celeris.NativeCall)

__all__ = ["build", "compile_app", "CompiledApp"]

_NO_BODY = {204, 205, 304}


def _plan_tuple(plan: Any) -> tuple:
    params = []
    for p in plan.params:
        conv = getattr(p, "convertor", None)
        params.append((p.where, p.key, p.fast, p.field, tuple(p.loc), p.required, p.default, conv,
                       bool(getattr(p, "multi", False))))
    status = plan.status_code
    from starlette.responses import JSONResponse

    fast_json = (status is None or (200 <= status and status not in _NO_BODY)) \
        and plan.response_class is JSONResponse
    return (plan.endpoint, plan.is_coroutine, status, plan.response_class, tuple(plan.kwnames),
            fast_json, params, plan.serializer, plan.runner, plan.overrides_owner,
            bool(getattr(plan, "model_plain", False)), getattr(plan, "slow", None))


def build(app: Any, runtime: Any = None) -> tuple[Any, CompiledApp]:
    """runtime: celeris.native.runtime, or an object with the same functions
    (the TestClient overrides server_error to capture exceptions)."""
    compiled = compile_app(app)
    if compiled.app_reason or not (compiled.noroute_reason == "" or any(e.plan for e in compiled.entries)):
        return None, compiled
    if runtime is None:
        from celeris.native import runtime
    runtime = _app_runtime(app, runtime)

    entries = []
    for e in compiled.entries:
        plan = _plan_tuple(e.plan) if e.plan is not None else None
        entries.append((e.kind, e.template if e.kind != KIND_OPAQUE else "", e.methods, plan))
    cors = None
    if compiled.cors is not None:
        from celeris.native import runtime as rt

        cors = rt.cors_hooks(compiled.cors)
    noroute = None
    if compiled.noroute_reason == "":
        key = routes_key(app)

        def fresh() -> bool:
            return routes_key(app) == key

        noroute = (compiled.redirect_slashes,
                   [e.route if e.kind == KIND_PATH else None for e in compiled.entries], fresh,
                   not compiled.low_priority)
    stack = None
    if compiled.cors is None:
        from celeris.native.middleware import stack_runner

        stack = stack_runner(app, [e.route if e.kind == KIND_PATH else None for e in compiled.entries])
    return _celeris.NativeApp(entries, runtime, cors=cors, noroute=noroute, stack=stack), compiled


def routes_key(app: Any) -> tuple:
    """What the compiled route table was built from: routes may be added
    while the app runs (FastAPI counts changes in included routers too), and
    a request no compiled route takes must then go to FastAPI's own router."""
    router = getattr(app, "router", None)
    routes = getattr(router, "routes", None) or ()
    version = getattr(router, "_get_routes_version", None)
    return (id(router), len(routes), version() if version is not None else None,
            getattr(router, "redirect_slashes", None),
            len(getattr(app, "exception_handlers", None) or ()),
            len(getattr(app, "user_middleware", None) or ()))


def _app_runtime(app: Any, runtime: Any) -> Any:
    """runtime's functions plus the app's exception responders
    (handlers.py): handle_exception(nc, exc) and server_response(nc, exc)."""
    import types

    from celeris.native.handlers import responders

    ns = types.SimpleNamespace(**{k: getattr(runtime, k) for k in dir(runtime) if not k.startswith("__")})
    ns.handle_exception, ns.server_response, ns.server_started = responders(app, ns)
    return ns


def telemetry_refresher(native_app: Any, compiled: CompiledApp):
    """FastAPI checks its telemetry switch on every request (~14 us); the
    native tier checks it when started and then once a second, and leaves
    requests to the ASGI tier while it is on."""
    enabled = compiled.telemetry_enabled

    def refresh() -> None:
        on = bool(enabled()) if enabled is not None else False
        native_app.set_enabled(not on)

    return refresh
