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
import sys
from typing import Any

TARGET = "starlette.testclient"

_client: Any = None


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


def patch(module: Any) -> None:
    """Replace TestClient in starlette.testclient (and fastapi.testclient if loaded)."""
    cls = client_class()
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
    stats = dict(ct.stats)
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
