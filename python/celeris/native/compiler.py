"""Compile a FastAPI app's route table into native plans.

Every route of `app.router.routes` becomes one router entry, in order, so the
C router reproduces Starlette's "first full match wins":
  - a route the compiler fully understands gets a RoutePlan (native tier);
  - any other route is still entered (with its own path/methods) but routes to
    the ASGI tier, with the reason recorded for `celeris routes`;
  - a route whose matching the compiler cannot reproduce is "opaque": it stops
    the router, so every later route is ASGI too.
A request that matches no route at all (404, 405, redirect_slashes) is
answered natively when `noroute_reason` is "" (src/binding/native_noroute.c),
else by the ASGI tier.  Starlette Routes with a function endpoint (FastAPI's
docs/openapi routes, add_route) get a runner reproducing request_response.

Native v1 covers: APIRoute with path/query parameters only (no dependencies,
body, header or cookie parameters, no Request/Response/BackgroundTasks
injection), default response class, no response_model, async or sync
endpoints, on an app without user middleware and with FastAPI's default
exception handlers.  Everything else is served, unchanged, by the ASGI tier.
"""
from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass, field
from typing import Any, Optional, Union, get_args, get_origin

KIND_PATH, KIND_MOUNT, KIND_OPAQUE = 0, 1, 2
FAST_NONE, FAST_STR, FAST_INT = 0, 1, 2
PARAM_PATH, PARAM_QUERY, PARAM_HEADER, PARAM_COOKIE = 0, 1, 2, 3

# FastAPI versions whose request pipeline this compiler was written against.
KNOWN_FASTAPI = ((0, 115), (0, 165))


@dataclass
class ParamPlan:
    where: int              # PARAM_PATH | PARAM_QUERY | PARAM_HEADER | PARAM_COOKIE
    key: str                # request key (path param name / query alias)
    kwname: str             # endpoint keyword
    fast: int               # FAST_STR / FAST_INT / FAST_NONE (validate with pydantic)
    field: Any              # fastapi ModelField (validate(value, values, loc=...))
    loc: tuple
    required: bool
    default: Any            # deep-copied per request when not immutable


@dataclass
class RoutePlan:
    endpoint: Any
    is_coroutine: bool
    params: list[ParamPlan]
    status_code: Optional[int]
    response_class: Any
    kwnames: tuple = ()
    serializer: Any = None      # response_model: callable(content) -> JSON bytes
    runner: bool = False        # endpoint is a generated runner (celeris.native.runner)
    overrides_owner: Any = None  # app whose dependency_overrides send requests to ASGI
    slow: Any = None            # simple plans: slow(scope, path_params) for invalid parameters


@dataclass
class RouteEntry:
    index: int
    kind: int
    template: str           # Starlette path template (with convertors), "" for opaque
    methods: Optional[str]  # "GET,HEAD" or None for any method
    plan: Optional[RoutePlan]
    reason: str             # why the ASGI tier, "" when native
    display_methods: str = ""
    display_path: str = ""
    name: str = ""
    route: Any = None       # the route (an included route: its effective context); for PATH
                            # entries the object whose .methods make a 405's Allow header


@dataclass
class CompiledApp:
    entries: list[RouteEntry] = field(default_factory=list)
    app_reason: str = ""    # non-empty: the whole app is ASGI tier
    telemetry_enabled: Any = None   # callable() -> bool, checked per request, or None
    cors: Any = None                # CORSMiddleware instance run natively, or None
    # Requests no route takes (404, 405, redirect_slashes): "" when the native
    # tier answers them, else why the ASGI tier does.
    noroute_reason: str = "not compiled"
    redirect_slashes: bool = True
    # FastAPI tries low-priority (frontend) routes after redirect_slashes and
    # before not_found: with any, the last step (404) stays on the ASGI tier.
    low_priority: bool = False


def _fastapi_version() -> tuple[int, int]:
    import fastapi

    parts = fastapi.__version__.split(".")
    return int(parts[0]), int(parts[1])


def _app_reason(app: Any) -> str:
    """Why the whole app must run on the ASGI tier ("" if it need not)."""
    try:
        from fastapi import FastAPI
    except ImportError:
        return "FastAPI is not installed"
    if not isinstance(app, FastAPI):
        return "not a FastAPI application"
    lo, hi = KNOWN_FASTAPI
    if not (lo <= _fastapi_version() <= hi):
        import fastapi

        return f"FastAPI {fastapi.__version__} is outside the versions the compiler knows"
    if type(app).__call__ is not FastAPI.__call__ or type(app).build_middleware_stack is not FastAPI.build_middleware_stack:
        return "FastAPI subclass overrides the request path"
    if app.user_middleware and _native_middleware(app) is None:
        from celeris.native.middleware import unsupported

        names = unsupported(app)
        if names:
            return f"user middleware runs on every request ({names})"
        # else: stack mode (native/middleware.py): Starlette's own middleware
        # classes around the native call
    # Custom exception handlers run natively (handlers.py), each as FastAPI
    # calls it; only a key FastAPI's stack could not take is left to it.
    for key in app.exception_handlers:
        if not (isinstance(key, int) or (isinstance(key, type) and issubclass(key, Exception))):
            return f"exception handler for {key!r}"
    if app.debug:
        return "debug=True (tracebacks in 500 responses)"
    if app.root_path:
        return "root_path set on the app"
    if getattr(app, "max_body_size", None) is not None:
        return "max_body_size set on the app"
    return ""


def _native_middleware(app: Any) -> Any:
    """The app's one CORSMiddleware, instantiated with the app's own arguments,
    when that is its only user middleware (the native tier then runs it:
    preflights go to the ASGI tier, every other response passes through
    the middleware's own `send`); None otherwise."""
    from starlette.middleware.cors import CORSMiddleware

    mws = list(app.user_middleware)
    if len(mws) != 1:
        return None
    m = mws[0]
    cls, args, kwargs = getattr(m, "cls", None), getattr(m, "args", ()), getattr(m, "kwargs", {})
    if cls is not CORSMiddleware or type(getattr(CORSMiddleware, "send", None)).__name__ != "function":
        return None
    try:
        return CORSMiddleware(None, *args, **kwargs)
    except Exception:
        return None


def _is_scalar(annotation: Any, types: tuple) -> tuple[bool, bool]:
    """(matches one of types, optional) for T or Optional[T]."""
    origin = get_origin(annotation)
    if origin is Union or (origin is not None and type(annotation).__name__ == "UnionType"):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return args[0] in types, True
        return False, False
    return annotation in types, False


def _param_plan(f: Any, where: int) -> tuple[Optional[ParamPlan], str]:
    from fastapi import params
    from fastapi._compat import field_annotation_is_sequence

    info = f.field_info
    if not isinstance(info, params.Param):
        return None, f"parameter {f.name!r} is not a plain Param"
    if where in (PARAM_QUERY, PARAM_HEADER, PARAM_COOKIE):
        from fastapi.dependencies import utils as du

        get_model = getattr(du, "_get_param_model", None)
        if get_model is not None and get_model(f) is not None:
            return None, f"query parameter model {f.name!r}"
        is_json = any(type(m).__name__ == "Json" for m in info.metadata)
        multi = field_annotation_is_sequence(info.annotation) and not is_json
        if is_json or (multi and where != PARAM_QUERY):
            return None, f"list/Json parameter {f.name!r}"
        get_aliases = getattr(du, "_get_param_aliases", None)
        if get_aliases is None and where != PARAM_QUERY:
            return None, f"header/cookie parameter {f.name!r} on this FastAPI version"
        if get_aliases is not None:
            if where == PARAM_HEADER:
                aliases = get_aliases(f, convert_underscores=bool(getattr(info, "convert_underscores", True)))
            else:
                aliases = get_aliases(f)
            if len(aliases) != 1:
                return None, f"parameter {f.name!r} has alias choices"
            key = aliases[0][1]
        else:       # older FastAPI: the request key is the field's alias
            if getattr(info, "validation_alias", None) not in (None, f.alias):
                return None, f"parameter {f.name!r} has a validation alias"
            key = f.alias
    else:
        from fastapi.dependencies import utils as du

        multi = False
        get_aliases = getattr(du, "_get_param_aliases", None)
        if get_aliases is not None:
            aliases = get_aliases(f)
            if len(aliases) != 1:
                return None, f"path parameter {f.name!r} has alias choices"
            key = aliases[0][1]
        else:
            if getattr(info, "validation_alias", None) not in (None, f.alias):
                return None, f"path parameter {f.name!r} has a validation alias"
            key = f.alias
    fast = FAST_NONE
    constrained = bool(info.metadata) or getattr(f, "config", None)
    if not constrained and not multi:
        is_str, _ = _is_scalar(info.annotation, (str,))
        is_int, _ = _is_scalar(info.annotation, (int,))
        if is_str:
            fast = FAST_STR
        elif is_int:
            fast = FAST_INT
    required = info.is_required()
    if not required and (getattr(info, "validate_default", False)
                         or getattr(info, "default_factory", None) is not None):
        # FastAPI makes (and validates) this default per request: when the
        # value is missing the request goes to the ASGI tier, and the factory
        # is never called here.
        required, default = True, None
    else:
        default = None if required else f.default
    loc = (info.in_.value, key)
    plan = ParamPlan(where, key, f.name, fast, f, loc, required, default)
    plan.multi = multi  # type: ignore[attr-defined]
    return plan, ""


def _plain_router(router: Any) -> bool:
    """An APIRouter whose matching and handling are FastAPI's own."""
    from fastapi.routing import APIRouter

    return type(router) is APIRouter


def _expand_routes(routes: Any):
    """(route, included) in matching order: the app's own routes, and in
    place of each included router (FastAPI >= 0.16x keeps `_IncludedRouter`
    entries) its effective routes, recursively -- the order in which
    FastAPI's router and the included router's `_match` try them.  An
    included router whose candidates cannot be listed stays as it is (an
    opaque entry)."""
    for r in routes:
        if (type(r).__name__ == "_IncludedRouter" and hasattr(r, "effective_candidates")
                and _plain_router(getattr(r, "original_router", None))):
            try:
                candidates = list(r.effective_candidates())
            except Exception:
                yield r, False
                continue
            for c in candidates:
                if type(c).__name__ == "_IncludedRouter":
                    yield from _expand_routes([c])
                else:
                    yield c, True
        else:
            yield r, False


def _route_plan(route: Any, app: Any, included: bool = False) -> tuple[Optional[RoutePlan], str]:
    from fastapi.datastructures import DefaultPlaceholder
    from fastapi.responses import JSONResponse

    d = route.dependant
    if d is None:
        return None, "no dependant"
    if included and getattr(route, "max_body_size", None) is not None:
        return None, "max_body_size on the included router"
    needs_runner = bool(d.dependencies or d.body_params or route.body_field is not None
                        or d.response_param_name or d.background_tasks_param_name)
    is_form = False
    if d.body_params or route.body_field is not None:
        from fastapi import params as fparams

        is_form = isinstance(route.body_field.field_info, fparams.Form)
        if is_form and (getattr(route, "form_limits", None) or getattr(app.router, "form_limits", None)):
            return None, "form limits set on the route or router"
    needs_runner = needs_runner or bool(d.request_param_name or d.http_connection_param_name
                                        or d.security_scopes_param_name)
    from fastapi.dependencies import utils as _du

    _get_model = getattr(_du, "_get_param_model", None)
    if _get_model is not None and any(_get_model(f) is not None for f in
                                      (*d.query_params, *d.header_params, *d.cookie_params)):
        needs_runner = True     # parameter models: validated by the runner with FastAPI's code
    if getattr(d, "websocket_param_name", None):
        return None, "injects websocket"
    rclass = route.response_class
    is_default_class = isinstance(rclass, DefaultPlaceholder)
    actual_class = rclass.value if is_default_class else rclass
    if not (inspect.isclass(actual_class) and issubclass(actual_class, _starlette_response())):
        return None, "response_class is not a Response class"
    if getattr(actual_class, "__name__", "") == "EventSourceResponse":
        return None, "server-sent events response class"
    # FastAPI dumps a response model straight to JSON bytes only when no
    # response_class was given; otherwise serialize_response + the class.
    model_via_class = route.response_field is not None and not is_default_class
    call = d.call
    if inspect.isasyncgenfunction(call) or inspect.isgeneratorfunction(call):
        return None, "streaming (generator) endpoint"
    if getattr(route, "stream_item_field", None) is not None or getattr(route, "is_json_stream", False):
        return None, "streaming endpoint"
    if not (inspect.isfunction(call) or inspect.ismethod(call)):
        return None, "endpoint is not a plain function"
    try:
        from fastapi.routing import _is_coroutine_callable as fastapi_is_coro  # the test FastAPI uses
    except ImportError:  # older FastAPI
        from fastapi.dependencies.utils import is_coroutine_callable as fastapi_is_coro
    is_coro = bool(fastapi_is_coro(call))
    # A def endpoint with a response model FastAPI validates in the thread pool:
    # the runner's finisher calls FastAPI's serialize_response, which does that.
    sync_model = (route.response_field is not None and not fastapi_is_coro(call)
                  and not _runs_no_user_code(route.response_field.field_info.annotation))
    sync_model = sync_model or model_via_class
    needs_runner = needs_runner or sync_model

    runner_fn = None
    finisher = False
    params_: list[ParamPlan] = []
    if needs_runner:
        from celeris.native import runner as rn

        why = rn.supported()
        if why:
            return None, why
        builder = rn.RunnerBuilder(route, _param_plan, app)
        builder.needs["finish"] = sync_model
        builder.included = included
        builder.is_form = is_form
        ct_slot = None
        if d.body_params and not is_form:
            ct = ParamPlan(PARAM_HEADER, "content-type", "", FAST_STR, None, ("header", "content-type"),
                           False, None)
            ct_slot = ct.kwname = "p_ct"
        try:
            if d.body_params and not is_form:
                builder.params.append(ct)
            runner_fn = builder.build(is_coro, ct_slot)
            finisher = builder.needs["response"] or builder.needs["background"] or sync_model
        except rn._Reject as exc:
            return None, str(exc)
        params_ = builder.params
    else:
        for where, fields in ((PARAM_PATH, d.path_params), (PARAM_QUERY, d.query_params),
                              (PARAM_HEADER, d.header_params), (PARAM_COOKIE, d.cookie_params)):
            for f in fields:
                p, why = _param_plan(f, where)
                if p is None:
                    return None, why
                params_.append(p)
    template_params = set(route.param_convertors)
    for p in params_:
        if p.where == PARAM_PATH and p.key not in template_params:
            return None, f"path parameter {p.key!r} is not in the path"
    for name, conv in route.param_convertors.items():
        if type(conv).__name__ not in ("StringConvertor", "IntegerConvertor", "FloatConvertor",
                                       "PathConvertor", "UUIDConvertor"):
            return None, f"custom path convertor for {name!r}"
        if type(conv).__name__ != "StringConvertor" and type(conv).__name__ != "PathConvertor":
            # The convertor changes the value's type before validation.
            for p in params_:
                if p.where == PARAM_PATH and p.key == name:
                    p.fast = FAST_NONE
                    p.convertor = conv  # type: ignore[attr-defined]
    plan = RoutePlan(endpoint=call, is_coroutine=is_coro, params=params_,
                     status_code=route.status_code, response_class=actual_class)
    plan.kwnames = tuple(p.kwname for p in params_)
    if runner_fn is not None:
        plan.endpoint = runner_fn
        plan.is_coroutine = True
        plan.runner = True
        if d.dependencies:
            plan.overrides_owner = route.dependency_overrides_provider
    if finisher:
        return plan, ""     # the runner's finisher serialises (FastAPI's serialize_response)
    if runner_fn is None:
        from celeris.native.invalid import make_slow_path

        plan.slow = make_slow_path(route, is_coro)
    if route.response_field is not None:
        if not is_coro and not _runs_no_user_code(route.response_field.field_info.annotation):
            return None, "response_model on a def endpoint (FastAPI validates it in the thread pool)"
        if not _dump_json_path():
            return None, "response_model serialisation of this FastAPI version not compiled"
        from celeris.native import runtime

        plan.model_plain = (_plain_model(route.response_field)  # type: ignore[attr-defined]
                            and route.response_model_include is None
                            and route.response_model_exclude is None
                            and not route.response_model_exclude_unset
                            and not route.response_model_exclude_defaults
                            and not route.response_model_exclude_none)
        plan.serializer = runtime.make_serializer(
            route.response_field, route.response_model_include, route.response_model_exclude,
            route.response_model_by_alias, route.response_model_exclude_unset,
            route.response_model_exclude_defaults, route.response_model_exclude_none, call)
    return plan, ""


_PURE_TYPES = (str, int, float, bool, type(None), dict, list, bytes)


def _starlette_response() -> Any:
    from starlette.responses import Response

    return Response


def _runs_no_user_code(annotation: Any, depth: int = 0) -> bool:
    """True when validating against `annotation` cannot call user code (only
    builtin scalars and containers of them), so validating on the loop is
    indistinguishable from FastAPI's validation in the thread pool."""
    if depth > 8:
        return False
    if annotation is Any:
        return True
    if annotation in _PURE_TYPES:
        return True
    origin = get_origin(annotation)
    if origin is None:
        return False
    if origin is Union or type(annotation).__name__ == "UnionType" or origin in (dict, list):
        return all(_runs_no_user_code(a, depth + 1) for a in get_args(annotation))
    return False


def _plain_model(field: Any) -> bool:
    """A response model of type dict, list or Any (bare, or with Any/str
    parameters) with no include/exclude/alias options that could change a
    plain JSON tree: validating such a tree returns it unchanged, and
    pydantic-core's JSON of it is the C writer's."""
    ann = field.field_info.annotation
    args = get_args(ann)
    origin = get_origin(ann)
    if ann in (dict, list, Any):
        return True
    if origin is dict and args in ((str, Any),):
        return True
    if origin is list and args in ((Any,),):
        return True
    return False


def _dump_json_path() -> bool:
    """FastAPI serialises response models straight to JSON bytes (dump_json)
    when no response_class is given -- the path the native tier reproduces."""
    import inspect as _inspect

    from fastapi import routing

    try:
        return "use_dump_json" in _inspect.getsource(routing.get_request_handler)
    except (OSError, TypeError):
        return False


def compile_app(app: Any) -> CompiledApp:
    """Compile every route; never raises for an app it does not understand."""
    out = CompiledApp()
    try:
        reason = _app_reason(app)
    except Exception as exc:
        reason = f"compiler: {type(exc).__name__}: {exc}"
    out.app_reason = reason
    routes = getattr(getattr(app, "router", None), "routes", None)
    if routes is None:
        out.app_reason = out.app_reason or "no route table"
        return out
    try:
        from fastapi.routing import APIRoute, APIWebSocketRoute
        from starlette.routing import Mount, Route, WebSocketRoute
    except ImportError:
        return out
    if not reason and getattr(app, "user_middleware", None):
        out.cors = _native_middleware(app)
    telemetry = getattr(app, "_native_telemetry", None)
    out.telemetry_enabled = getattr(telemetry, "enabled", None)
    opaque_seen = False
    for i, (r, included) in enumerate(_expand_routes(routes)):
        t = type(r)
        if included:
            # An inclusion context of FastAPI >= 0.16x's include_router: an
            # APIRoute-like object (effective path, dependant, response class...)
            orig = getattr(r, "original_route", None)
            srt = getattr(r, "starlette_route", None)
            if type(orig) is APIRoute and srt is None:
                t = APIRoute
            elif srt is not None and type(srt) in (Mount, Route, WebSocketRoute, APIWebSocketRoute):
                r, t = srt, type(srt)
            else:
                t = type(orig)
        name = getattr(r, "name", "") or ""
        if t in (WebSocketRoute, APIWebSocketRoute):
            continue        # never matches an http request
        if t is Mount:
            plan, why = None, "mounted sub-application"
            if not (reason or opaque_seen or included):
                try:
                    plan, why = _mount_plan(r, app)
                except Exception as exc:
                    plan, why = None, f"compiler: {type(exc).__name__}: {exc}"
            out.entries.append(RouteEntry(i, KIND_MOUNT, r.path, None, plan, why,
                                          "*", r.path + "/*", name, route=r))
            continue
        if t not in (APIRoute, Route) or (t is APIRoute and not included and type(r) is not APIRoute):
            out.entries.append(RouteEntry(i, KIND_OPAQUE, "", None, None,
                                          f"{t.__name__}: matching not reproduced (stops native routing)",
                                          "*", getattr(r, "path", "?"), name, route=r))
            opaque_seen = True
            continue
        methods = ",".join(sorted(r.methods)) if r.methods else None
        display = ",".join(sorted(r.methods)) if r.methods else "*"
        plan, why = (None, "")
        if t is Route and (reason or opaque_seen or included):
            why = reason or ("follows an opaque route" if opaque_seen else
                             "Starlette route in an included router")
        elif t is Route:
            try:
                plan, why = _starlette_route_plan(r, app)
            except Exception as exc:
                plan, why = None, f"compiler: {type(exc).__name__}: {exc}"
        elif reason:
            why = reason
        elif opaque_seen:
            why = "follows an opaque route"
        else:
            try:
                plan, why = _route_plan(r, app, included)
            except Exception as exc:  # an internal the compiler does not know: stay exact
                plan, why = None, f"compiler: {type(exc).__name__}: {exc}"
        out.entries.append(RouteEntry(i, KIND_PATH, r.path, methods, plan, why, display, r.path, name,
                                      route=r))
    try:
        out.noroute_reason = reason or _noroute_reason(app, out)
    except Exception as exc:
        out.noroute_reason = f"compiler: {type(exc).__name__}: {exc}"
    out.redirect_slashes = bool(getattr(app.router, "redirect_slashes", True))
    return out


def _noroute_reason(app: Any, compiled: CompiledApp) -> str:
    """Why requests no route takes must stay on the ASGI tier ("" if the
    native tier may answer them).  The C router answers NONE only when it
    tried every entry, each a PATH or MOUNT entry it matches as Starlette
    does (an opaque entry makes it answer OPAQUE, and the request goes to
    the ASGI tier); what remains to check is that FastAPI's router then ends
    in its own 405, redirect_slashes and not_found."""
    from fastapi.routing import APIRouter
    from starlette.routing import Router

    router = app.router
    if type(router) is not APIRouter:
        return "custom router class"
    default = getattr(router, "default", None)
    if getattr(default, "__func__", None) is not Router.not_found or getattr(default, "__self__", None) is not router:
        return "custom router default"
    low = getattr(router, "_iter_low_priority_routes", None)
    compiled.low_priority = low is not None and any(True for _ in low())
    if getattr(router, "form_limits", None):
        return "form limits on the router"
    if "app" not in APIRouter.__dict__ and not _starlette_router_app_known():
        return "router of this FastAPI version"
    return ""


def _starlette_router_app_known() -> bool:
    """Starlette's own Router.app (older FastAPI) ends in redirect_slashes and
    self.default as the native tier reproduces."""
    import inspect as _inspect

    from starlette.routing import Router

    try:
        src = _inspect.getsource(Router.app)
    except (OSError, TypeError):
        return False
    return "redirect_slashes" in src and "self.default" in src


def _mount_plan(mount: Any, app: Any) -> tuple[Optional[RoutePlan], str]:
    """A Mount of Starlette's StaticFiles (nothing wrapped around it): the
    mounted app called by a runner with the scope FastAPI's stack and the
    Mount build (celeris.native.runner.mount_runner); anything else mounted
    stays a sub-application on the ASGI tier."""
    from starlette.staticfiles import StaticFiles

    from celeris.native import runner as rn

    if type(mount.app) is not StaticFiles:
        return None, "mounted sub-application"
    why = rn.mount_supported(app)
    if why:
        return None, why
    plan = RoutePlan(endpoint=rn.mount_runner(mount, app), is_coroutine=True, params=[],
                     status_code=None, response_class=_starlette_response(), runner=True)
    return plan, ""


def _starlette_route_plan(route: Any, app: Any) -> tuple[Optional[RoutePlan], str]:
    """A Starlette Route whose endpoint is a function (FastAPI's docs/openapi
    routes, app.add_route): request_response(endpoint) reproduced by a runner
    (celeris.native.runner.starlette_runner)."""
    from celeris.native import runner as rn

    why = rn.starlette_supported(route, app)
    if why:
        return None, why
    fn = rn.starlette_runner(route, app)
    plan = RoutePlan(endpoint=fn, is_coroutine=True, params=[], status_code=None,
                     response_class=_starlette_response(), runner=True)
    return plan, ""
