"""Replace Starlette's TestClient with Celeris's in any Python process of the
Celeris conformance run -- pytest itself and the interpreters tests start
(FastAPI's tests/test_telemetry runs tests in a fresh ``python -m ...``).

``install()`` (called from conformance/autopatch/sitecustomize.py, whose
directory the runner puts on PYTHONPATH for the Celeris run only) adds an
import hook and imports nothing: tests that set environment variables before
importing FastAPI keep working.  When ``starlette.testclient`` has been
executed, its ``TestClient`` is replaced before any importer sees the module,
so ``from starlette.testclient import TestClient`` and ``fastapi.testclient``
(which re-exports it) both get Celeris's.

Each HTTP request the ASGI tier serves is attributed to the reason the native
tier did not take it (the route's decline reason from the compiler, the app's,
"no route", ...) in ``asgi_reasons``; written with the stats as
"asgi_reason:<why>".  WebSocket sessions through the core are counted apart
(celeris.testclient.stats "websocket", of which "websocket_native" run by the
native WebSocket dispatcher); each one the dispatcher leaves to the app is
attributed to the dispatcher's own reason in ``ws_asgi_reasons``
("ws_asgi_reason:<why>").

Environment:
  CELERIS_CONFORMANCE_NATIVE=0     diagnosis: TestClient(native=False), every
                                   request on the ASGI tier
  CELERIS_CONFORMANCE_STATS_DIR    a process other than pytest's (which
                                   celeris_plugin handles) writes
                                   celeris.testclient.stats there at exit
"""
from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import json
import os
import re
import sys
import weakref
from typing import Any

TARGET = "starlette.testclient"

_client: Any = None

#: ASGI-tier HTTP requests by why the native tier did not serve them.
asgi_reasons: dict[str, int] = {}
#: WebSocket sessions on the ASGI tier, by why the native dispatcher left them.
ws_asgi_reasons: dict[str, int] = {}
_compiled: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def native_enabled() -> bool:
    return os.environ.get("CELERIS_CONFORMANCE_NATIVE", "1") != "0"


def client_class() -> Any:
    """The class that replaces Starlette's TestClient (created once)."""
    global _client
    if _client is None:
        from celeris.testclient import TestClient

        if native_enabled():
            _client = TestClient
        else:
            class TestClientASGIOnly(TestClient):
                """celeris.testclient.TestClient with the native tier off."""

                __test__ = False

                def __init__(self, *args: Any, **kwargs: Any) -> None:
                    kwargs["native"] = False
                    super().__init__(*args, **kwargs)

            TestClientASGIOnly.__name__ = TestClientASGIOnly.__qualname__ = "TestClient"
            _client = TestClientASGIOnly
    return _client


def _normalise(reason: str) -> str:
    """Decline reasons without the names of parameters / routes: they group."""
    return re.sub(r"'[^']*'", "'…'", reason) or "(no reason given)"


def _why_asgi(transport: Any, request: Any) -> str:
    if not transport.native:
        return "native tier off (TestClient(native=False))"
    app = transport.app
    try:
        compiled = _compiled.get(app)
    except TypeError:
        compiled = None
    if compiled is None:
        return "native tier failed to build" if hasattr(app, "router") else \
            "not a FastAPI application"
    if compiled.app_reason:
        return "app: " + compiled.app_reason
    enabled = compiled.telemetry_enabled
    if transport._native_app is not None and enabled is not None and enabled():
        return "app: FastAPI telemetry enabled"
    from starlette.routing import Match

    scope = {"type": "http", "path": request.url.path, "method": request.method,
             "root_path": transport.root_path, "headers": [], "query_string": b""}
    routes = app.router.routes
    partial = None
    for e in compiled.entries:
        route = e.route if e.route is not None else (routes[e.index] if e.index < len(routes) else None)
        if route is None:
            continue
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return "route: " + _normalise(e.reason) if e.reason else \
                "route compiled, this request declined (e.g. invalid parameter: 422 via ASGI)"
        if match is Match.PARTIAL and partial is None:
            partial = e
    why = getattr(compiled, "noroute_reason", "not compiled")
    if why:
        why = _normalise(why)
    elif getattr(compiled, "low_priority", False) and partial is None:
        why = "low-priority (frontend) routes come before the 404"
    else:
        why = "declined at run time (e.g. an opaque route)"
    if partial is not None:
        return f"method not allowed (405): {why}"
    return f"no route matches (404, or redirect_slashes: 307 to the other slash form): {why}"


def _count_tiers(transport_cls: Any) -> None:
    """Attribute each ASGI-tier request of a transport class to a reason."""
    original = transport_cls.handle_request
    if getattr(original, "_celeris_attributed", False):
        return
    from celeris import native as native_pkg
    from celeris import testclient as ct

    build = native_pkg.build

    def recording_build(app: Any, *args: Any, **kwargs: Any) -> Any:
        native_app, compiled = build(app, *args, **kwargs)
        try:
            _compiled[app] = compiled
        except TypeError:
            pass
        return native_app, compiled

    native_pkg.build = recording_build

    def handle_request(self: Any, request: Any) -> Any:
        core, native, ws = ct.stats["core"], ct.stats["native"], ct.stats["websocket"]
        try:
            return original(self, request)
        finally:
            # A WebSocket session (counted in "core" and "websocket") is
            # attributed by its session (_ws_tier below), once it has run.
            if ct.stats["core"] > core and ct.stats["native"] == native \
                    and ct.stats["websocket"] == ws:
                try:
                    why = _why_asgi(self, request)
                except Exception as exc:  # attribution must never fail a test
                    why = f"unattributed ({type(exc).__name__})"
                asgi_reasons[why] = asgi_reasons.get(why, 0) + 1

    handle_request._celeris_attributed = True  # type: ignore[attr-defined]
    transport_cls.handle_request = handle_request

    from celeris._ws_testclient import CoreWebSocketSession

    note = CoreWebSocketSession._note_tier

    def _ws_tier(self: Any, why: str) -> None:
        first = self.tier is None
        note(self, why)
        if first and why:
            ws_asgi_reasons[why] = ws_asgi_reasons.get(why, 0) + 1

    CoreWebSocketSession._note_tier = _ws_tier


def stats_snapshot() -> dict:
    """celeris.testclient.stats and the ASGI-tier reasons, as one flat dict of ints."""
    from celeris import testclient as ct

    out = dict(ct.stats)
    out.update({"asgi_reason:" + k: v for k, v in asgi_reasons.items()})
    out.update({"ws_asgi_reason:" + k: v for k, v in ws_asgi_reasons.items()})
    return out


def patch(module: Any) -> None:
    """Replace TestClient in starlette.testclient (and fastapi.testclient if loaded)."""
    cls = client_class()
    from celeris import testclient as ct

    _count_tiers(ct._CelerisTransport)
    module.TestClient = cls
    ft = sys.modules.get("fastapi.testclient")
    if ft is not None:
        ft.TestClient = cls


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:     # get_source, get_filename, ...
        return getattr(self.inner, name)

    def create_module(self, spec: Any) -> Any:
        return self.inner.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self.inner.exec_module(module)
        patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _Loader(spec.loader)
        return spec


def _write_stats() -> None:
    out_dir = os.environ.get("CELERIS_CONFORMANCE_STATS_DIR")
    ct = sys.modules.get("celeris.testclient")
    if not out_dir or ct is None or "celeris_plugin" in sys.modules:
        return      # pytest's own process: celeris_plugin writes its stats
    stats = stats_snapshot()
    if any(stats.values()):
        path = os.path.join(out_dir, f"stats-subprocess-{os.getpid()}.json")
        with open(path, "w") as fh:
            json.dump(stats, fh)


def install() -> None:
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    mod = sys.modules.get(TARGET)
    if mod is not None:
        patch(mod)
    else:
        sys.meta_path.insert(0, _Finder())
    atexit.register(_write_stats)
