"""conformance/: the pieces of the FastAPI-suite runner that decide what is measured.

- celeris_autopatch (through conformance/autopatch/sitecustomize.py) replaces
  Starlette's TestClient in every interpreter of the Celeris run, including those
  a test starts itself (FastAPI's tests/test_telemetry runs tests in a fresh
  ``python -m``), without importing anything at startup, and writes the
  subprocess's request counts at exit;
- CELERIS_CONFORMANCE_NATIVE=0 turns the native tier off (diagnosis runs);
- the known-regressions ratchet file keeps one cause per test id.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conformance"

CHILD = r"""
import os, sys
# Nothing is imported at interpreter start: tests may set the environment first.
assert "starlette" not in sys.modules and "celeris" not in sys.modules, sorted(sys.modules)
from fastapi import FastAPI
from fastapi.testclient import TestClient
import starlette.testclient
import celeris.testclient

assert starlette.testclient.TestClient is TestClient
assert issubclass(TestClient, celeris.testclient.TestClient), TestClient

app = FastAPI()

@app.get("/items/{item_id}")
async def read(item_id: int):
    return {"item_id": item_id}

with TestClient(app) as client:
    assert client.get("/items/3").json() == {"item_id": 3}
    assert client.get("/items/x").status_code == 422
print("OK", dict(celeris.testclient.stats))
"""


def _run_script(script: str, marker: str, **extra_env: str) -> str:
    """Run `script` in a fresh interpreter with conformance/autopatch on
    PYTHONPATH (and `extra_env`); it must exit 0.  Returns the rest of the
    last line of its stdout that starts with `marker`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(CONF / "autopatch"), str(CONF)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra_env)
    res = subprocess.run([sys.executable, "-W", "ignore", "-c", script], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    return [ln for ln in res.stdout.splitlines() if ln.startswith(marker)][-1][len(marker):]


def _run_child(tmp_path: Path, native: str | None) -> tuple[dict, list[dict]]:
    extra_env = {"CELERIS_CONFORMANCE_STATS_DIR": str(tmp_path)}
    if native is not None:
        extra_env["CELERIS_CONFORMANCE_NATIVE"] = native
    stats = eval(_run_script(CHILD, "OK ", **extra_env))  # a dict literal printed by the child
    files = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("stats-subprocess-*.json"))]
    return stats, files


def _reasons(written: dict) -> dict:
    return {k.split(":", 1)[1]: v for k, v in written.items() if k.startswith("asgi_reason:")}


def test_subprocess_serves_through_celeris_and_writes_its_stats(tmp_path):
    stats, files = _run_child(tmp_path, None)
    assert stats["core"] == 2 and stats["fallback"] == 0
    assert len(files) == 1
    assert {k: v for k, v in files[0].items() if ":" not in k} == stats
    # Every ASGI-tier request is attributed to a reason.
    assert sum(_reasons(files[0]).values()) == stats["core"] - stats["native"]


def test_native_tier_off_serves_every_request_on_the_asgi_tier(tmp_path):
    stats, files = _run_child(tmp_path, "0")
    assert (stats["core"], stats["native"], stats["fallback"]) == (2, 0, 0)
    assert len(files) == 1
    assert _reasons(files[0]) == {"native tier off (TestClient(native=False))": 2}


ATTRIBUTION = r"""
import json, sys
from fastapi import FastAPI
from fastapi.testclient import TestClient
import celeris_autopatch


async def raw_asgi(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"sub"})


app = FastAPI()

@app.get("/plain/{n}")
async def plain(n: int):
    return n

app.mount("/sub", raw_asgi)     # a mounted ASGI app: never the native tier's
client = TestClient(app)
assert client.get("/sub/x").text == "sub"
client.get("/nowhere")          # native: 404
client.post("/plain/1")         # native: 405
from starlette.routing import Host
app.router.routes.append(Host("h.example", app=raw_asgi))   # opaque: unmatched requests -> ASGI
client.get("/nowhere")
client.post("/plain/1")
per_route = dict(celeris_autopatch.asgi_reasons)

import tempfile
from fastapi import APIRouter
front_dir = tempfile.mkdtemp()
front = FastAPI()
front_router = APIRouter()
front_router.frontend("/", directory=front_dir)
front.include_router(front_router)
before = dict(celeris_autopatch.asgi_reasons)
TestClient(front).get("/missing")           # frontend routes are tried before the 404
frontend = {k: v - before.get(k, 0) for k, v in celeris_autopatch.asgi_reasons.items()
            if v != before.get(k, 0)}

mw = FastAPI()
mw.add_middleware(type("Passthrough", (), {
    "__init__": lambda self, app: setattr(self, "app", app),
    "__call__": lambda self, scope, receive, send: self.app(scope, receive, send)}))

@mw.get("/")
async def root():
    return 1

before = dict(celeris_autopatch.asgi_reasons)
TestClient(mw).get("/")
app_level = {k: v - before.get(k, 0) for k, v in celeris_autopatch.asgi_reasons.items()
             if v != before.get(k, 0)}
print("REASONS", json.dumps([per_route, app_level, frontend]))
"""


def test_asgi_requests_are_attributed_to_the_native_tier_decline_reason(tmp_path):
    per_route, app_level, frontend = json.loads(_run_script(ATTRIBUTION, "REASONS "))
    assert frontend == {"no route matches (404, or redirect_slashes: 307 to the other slash form): "
                        "low-priority (frontend) routes come before the 404": 1}
    # The reasons' wording is the compiler's; what is fixed is where each request goes.
    assert per_route.pop("method not allowed (405): declined at run time (e.g. an opaque route)") == 1
    assert per_route.pop("no route matches (404, or redirect_slashes: 307 to the other slash form): "
                         "declined at run time (e.g. an opaque route)") == 1
    assert len(per_route) == 1 and list(per_route.values()) == [1]     # GET /sub/x
    assert list(per_route)[0].startswith("route: ")
    assert len(app_level) == 1 and list(app_level.values()) == [1]
    assert list(app_level)[0].startswith("app: ")


WEBSOCKETS = r"""
import json
from fastapi import FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.websockets import WebSocketDisconnect
import celeris_autopatch
from celeris import testclient as ct


def make():
    app = FastAPI()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    @app.get("/")
    async def root():
        return 1

    return app


def hello(client, url="/ws"):
    try:
        with client.websocket_connect(url) as w:
            return w.receive_text()
    except WebSocketDisconnect as exc:
        return exc.code


app = make()
client = TestClient(app)
assert hello(client) == "hi"        # before any HTTP request: the native dispatcher
assert client.get("/").json() == 1
assert hello(client) == "hi"
assert hello(client, "/nope") == 1000
mw = make()
mw.add_middleware(TrustedHostMiddleware, allowed_hosts=["*"])  # acts on websocket scopes too
assert hello(TestClient(mw)) == "hi"
assert hello(TestClient(make(), native=False)) == "hi"
print("WS", json.dumps([dict(ct.stats), celeris_autopatch.asgi_reasons,
                        celeris_autopatch.ws_asgi_reasons]))
"""


def test_websocket_sessions_are_counted_and_attributed_apart(tmp_path):
    # A WebSocket session is no HTTP request: it is never attributed to an
    # HTTP reason (it used to be "native tier failed to build" when no HTTP
    # request had built the client's native tier); the sessions the native
    # dispatcher runs count as native, the others by the dispatcher's reason.
    stats, http, ws = json.loads(_run_script(WEBSOCKETS, "WS "))
    assert (stats["core"], stats["native"], stats["websocket"], stats["websocket_native"]) == (6, 1, 5, 2)
    assert http == {}
    assert ws == {"no websocket route matches": 1,
                  "app: user middleware (websocket scopes kept on the ASGI tier)": 1,
                  "native tier off (TestClient(native=False))": 1}
    run = _load_run()
    split = run._request_split({**stats, **{"ws_asgi_reason:" + k: v for k, v in ws.items()}}, 1)
    assert (split["native"], split["asgi"], split["asgi_http"]) == (3, 3, 0)
    assert (split["websocket_native"], split["websocket_asgi"]) == (2, 3)
    assert sum(split["websocket_asgi_by_reason"].values()) == split["websocket_asgi"]


def _load_run():
    spec = importlib.util.spec_from_file_location("conformance_run", CONF / "run.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_known_regressions_keep_their_causes(tmp_path, monkeypatch):
    run = _load_run()
    monkeypatch.setattr(run, "CONF", tmp_path)
    run.write_known("9.9.9", {"tests/a.py::t[x]": "a.py:3: assert 1 == 2 -> AssertionError",
                              "tests/b.py::u": ""}, {"celeris_commit": "abc"})
    assert run.read_known_causes("9.9.9") == {
        "tests/a.py::t[x]": "a.py:3: assert 1 == 2 -> AssertionError",
        "tests/b.py::u": "(no traceback)"}
    # A cause written by hand survives a rewrite; an id that is gone is dropped.
    path = tmp_path / "known_regressions-9.9.9.txt"
    path.write_text(path.read_text().replace("(no traceback)", "native tier: aliases"))
    run.write_known("9.9.9", {"tests/b.py::u": "other text"}, {"celeris_commit": "def"})
    assert run.read_known_causes("9.9.9") == {"tests/b.py::u": "native tier: aliases"}
    assert run.read_known("9.9.9") == ["tests/b.py::u"]


def test_request_split():
    run = _load_run()
    split = run._request_split({"core": 90, "native": 72, "fallback": 10,
                                "asgi_reason:app: custom exception handlers": 5,
                                "asgi_reason:route: request body not compiled yet": 13}, 3)
    assert split["native"] == 72 and split["asgi"] == 18 and split["fallback"] == 10
    assert split["asgi_by_reason"] == {"route: request body not compiled yet": 13,
                                       "app: custom exception handlers": 5}
    assert not any(k.startswith("asgi_reason:") for k in split)
    assert split["total"] == 100 and split["native_share"] == 72.0
    assert run._request_split({}, 0)["native_share"] is None
    # WebSocket sessions through the core: apart from the HTTP requests
    split = run._request_split({"core": 90, "native": 60, "websocket": 20, "websocket_native": 12,
                                "fallback": 10, "asgi_reason:app: x": 10,
                                "ws_asgi_reason:no websocket route matches": 8}, 3)
    assert (split["native"], split["asgi"]) == (72, 18)
    assert (split["native_http"], split["asgi_http"]) == (60, 10)
    assert (split["websocket_native"], split["websocket_asgi"]) == (12, 8)
    assert split["asgi_by_reason"] == {"app: x": 10}
    assert split["websocket_asgi_by_reason"] == {"no websocket route matches": 8}
    assert split["native_share"] == 72.0 and split["native_http_share"] == 75.0
    assert not any(":" in k for k in split)


def test_report_compares_only_tests_both_runs_selected(tmp_path):
    # --only celeris with a subset, against a full stock run: the tests the
    # subset did not select are not regressions.
    run = _load_run()
    vdir = tmp_path
    full = {"tests": ["tests"], "k": None, "extra": [], "timeout": 60}
    part = {"tests": ["tests/test_a.py"], "k": None, "extra": [], "timeout": 60}
    for mode, sel, outcomes in (
            ("stock", full, {"tests/test_a.py::t": "passed", "tests/test_b.py::u": "passed"}),
            ("celeris", part, {"tests/test_a.py::t": "failed"})):
        (vdir / mode).mkdir()
        (vdir / mode / "meta.json").write_text(json.dumps(
            {"exit": 0, "seconds": 1.0, "summary": "", "selection": sel, "stats": {}}))
        (vdir / mode / "outcomes.json").write_text(json.dumps(outcomes))
    r = run.build_report("9.9.9", vdir, {}, True, None)
    assert [x["nodeid"] for x in r["regressions"]] == ["tests/test_a.py::t"]
    assert r["collected"] == 1
    # Same selection: a test missing from the Celeris run (e.g. its module failed
    # to import) is a regression.
    meta = json.loads((vdir / "celeris" / "meta.json").read_text())
    meta["selection"] = full
    (vdir / "celeris" / "meta.json").write_text(json.dumps(meta))
    r = run.build_report("9.9.9", vdir, {}, False, None)
    assert sorted(x["nodeid"] for x in r["regressions"]) == ["tests/test_a.py::t",
                                                            "tests/test_b.py::u"]
