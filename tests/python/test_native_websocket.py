"""WebSocket routes on the native tier (celeris.native.websocket) against
FastAPI itself: every session runs through the C core twice -- native tier
on and off -- and what the client sees (messages, close code and reason,
denial responses) and the side effects the app records must be identical;
the native run must really have been served by the native tier."""
import os
import subprocess
import sys
import time
from typing import Annotated, Optional

import pytest
from fastapi import APIRouter, Depends, FastAPI, Query, WebSocket, WebSocketException, status
from starlette.responses import PlainTextResponse
from starlette.websockets import WebSocketDisconnect

from celeris import testclient as tc
from celeris.native import websocket as nws
from conftest import native_and_asgi_clients, ws_outcome
from rawhttp import free_port

EVENTS: list = []


class Boom(Exception):
    pass


def make_app() -> FastAPI:
    app = FastAPI()

    async def settings() -> dict:
        EVENTS.append("settings")
        return {"prefix": "p"}

    async def session(ws: WebSocket, s: Annotated[dict, Depends(settings)]):
        EVENTS.append(("open", ws.scope["path"]))
        try:
            yield s["prefix"]
        finally:
            EVENTS.append("teardown")

    def token(token: Optional[str] = None) -> str:
        if token == "bad":
            raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="bad token")
        return token or "anon"

    @app.websocket("/echo/{room}")
    async def echo(websocket: WebSocket, room: str, who: str = "x", n: int = 1,
                   prefix: Annotated[str, Depends(session)] = "",
                   tok: Annotated[str, Depends(token)] = ""):
        await websocket.accept()
        await websocket.send_json({"room": room, "who": who, "n": n, "prefix": prefix, "tok": tok,
                                   "route": websocket.scope["route"].path,
                                   "app": websocket.scope["app"] is app,
                                   "router": websocket.scope["router"] is app.router,
                                   "pp": websocket.scope["path_params"]})
        try:
            while True:
                msg = await websocket.receive_text()
                await websocket.send_text(f"{room}:{msg}")
        except WebSocketDisconnect as exc:
            EVENTS.append(("disconnect", exc.code))

    @app.websocket("/need")
    async def need(websocket: WebSocket, q: int = Query(...)):
        await websocket.accept()
        await websocket.send_text(str(q))
        await websocket.close()

    @app.websocket("/boom")
    async def boom(websocket: WebSocket):
        await websocket.accept()
        raise RuntimeError("boom")

    @app.websocket("/custom")
    async def custom(websocket: WebSocket):
        raise Boom()

    @app.exception_handler(Boom)
    async def on_boom(websocket: WebSocket, exc: Boom):
        await websocket.close(code=4001, reason="boomed")

    @app.websocket("/deny")
    async def deny(websocket: WebSocket):
        await websocket.send_denial_response(PlainTextResponse("nope", status_code=401))

    @app.websocket("/reject")
    async def reject(websocket: WebSocket):
        await websocket.close(code=1008)

    @app.get("/echo/{room}")
    async def http_echo(room: str):
        return {"http": room}

    r = APIRouter(prefix="/sub")

    @r.websocket("/ws/{x}")
    async def sub(websocket: WebSocket, x: int):
        await websocket.accept()
        await websocket.send_text(f"sub {x}")
        await websocket.close()

    app.include_router(r)
    return app


@pytest.fixture(scope="module")
def clients():
    return native_and_asgi_clients(make_app())


TIERS: list = []     # each session's tier: "" native, else why the ASGI tier


def session(client, url, sends=(), receive=1, **kw):
    """Everything the client sees of one session, as comparable data."""
    out = []
    sess = None
    try:
        sess = client.websocket_connect(url, **kw)
        with sess as ws:
            for _ in range(receive):
                out.append(("recv", ws.receive()))
            for s in sends:
                ws.send_text(s)
                out.append(("recv", ws.receive()))
    except Exception as exc:
        out.append(ws_outcome(exc, 200))
    TIERS.append(getattr(sess, "tier", "no session"))
    return out


def both(clients, url, native_expected=True, **kw):
    n, a = clients
    EVENTS.clear()
    TIERS.clear()
    before, counted = nws.served, tc.stats["websocket_native"]
    got_n = session(n, url, **kw)
    ev_n = list(EVENTS)
    served = nws.served - before
    # the TestClient counts what the dispatcher served
    assert tc.stats["websocket_native"] - counted == served
    EVENTS.clear()
    before_a, counted = nws.served, tc.stats["websocket_native"]
    got_a = session(a, url, **kw)
    ev_a = list(EVENTS)
    assert nws.served == before_a          # native=False never takes the native tier
    assert tc.stats["websocket_native"] == counted
    assert got_n == got_a
    assert ev_n == ev_a
    assert served == (1 if native_expected else 0)
    # each session knows its tier: "" native, else the reason it was left to the app
    assert (TIERS[0] == "") == native_expected, TIERS
    assert TIERS[1] == "native tier off (TestClient(native=False))"
    return got_n, ev_n


def test_echo_path_query_depends_yield(clients):
    got, ev = both(clients, "/echo/lobby?who=ann&n=3", sends=("hi", "yo"))
    assert got[0][1]["text"].startswith('{"room":"lobby"')
    assert ev[0] == "settings" and ev[-1] == "teardown"


def test_dependency_raises_websocket_exception(clients):
    got, ev = both(clients, "/echo/r?token=bad")
    assert got[-1][:2] == ("closed", 1008) and got[-1][2] == "bad token"
    assert ev[-1] == "teardown"


def test_invalid_query(clients):
    got, _ = both(clients, "/echo/r?n=abc")
    assert got[-1][:2] == ("closed", 1008) and "int_parsing" in str(got[-1][2])


def test_missing_query(clients):
    got, _ = both(clients, "/need")
    assert got[-1][:2] == ("closed", 1008) and "missing" in str(got[-1][2])
    got, _ = both(clients, "/need?q=5", receive=1)
    assert got[0][1]["text"] == "5"


def test_endpoint_raises(clients):
    got, _ = both(clients, "/boom")


def test_custom_exception_handler(clients):
    got, _ = both(clients, "/custom")
    assert got[-1] == ("closed", 4001, "boomed")


def test_denial_and_reject(clients):
    got, _ = both(clients, "/deny")
    assert got[-1][1:] == (401, b"nope")
    got, _ = both(clients, "/reject")
    assert got[-1][:2] == ("closed", 1008)


def test_included_router_declined(clients):
    got, _ = both(clients, "/sub/ws/7", native_expected=False, receive=1)
    assert got[0][1]["text"] == "sub 7"
    assert TIERS[0] == "route: route of an included router (FastAPI's inclusion context not reproduced)"


def test_dependency_overrides(clients):
    app = clients[0].app

    def other_token(token: Optional[str] = None) -> str:
        return "overridden"

    tok = [d.call for d in app.router.routes[4].dependant.dependencies if d.call.__name__ == "token"][0]
    app.dependency_overrides[tok] = other_token
    try:
        got, _ = both(clients, "/echo/r?token=bad")
        assert '"tok":"overridden"' in got[0][1]["text"]
    finally:
        app.dependency_overrides.clear()


def test_root_path():
    app = make_app()
    app.root_path = "/api"
    c = native_and_asgi_clients(app)
    got, _ = both(c, "/api/echo/z")
    assert '"room":"z"' in got[0][1]["text"]


def test_unmatched_goes_to_asgi(clients):
    both(clients, "/nope", native_expected=False)
    assert TIERS[0] == "no websocket route matches"


def test_user_middleware_acting_on_websockets_declined():
    """TrustedHost (and HTTPSRedirect) check websocket scopes too: the app's
    sessions stay with its own stack."""
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    app = make_app()
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["testserver"])
    reps = nws.ws_report(app)
    assert reps and all(why for _, why in reps)
    c = native_and_asgi_clients(app)
    both(c, "/echo/a", native_expected=False)
    assert TIERS[0] == "app: user middleware (websocket scopes kept on the ASGI tier)"


@pytest.fixture(scope="module")
def pass_through_clients():
    """GZip, CORS and an @app.middleware("http") function: each hands a
    websocket scope to its app untouched, so sessions run natively."""
    from fastapi.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware

    app = make_app()
    app.add_middleware(GZipMiddleware)
    app.add_middleware(CORSMiddleware, allow_origins=["*"])

    @app.middleware("http")
    async def mark(request, call_next):
        EVENTS.append("http middleware")      # never for a websocket session
        return await call_next(request)

    return native_and_asgi_clients(app)


@pytest.mark.parametrize("url,kw", [("/echo/lobby?who=ann&n=3", {"sends": ("hi", "yo")}),
                                    ("/echo/x?n=bad", {}), ("/nope", {})])
def test_pass_through_user_middleware_keeps_sessions_native(pass_through_clients, url, kw):
    both(pass_through_clients, url, native_expected=url != "/nope", **kw)
    assert "http middleware" not in EVENTS


def test_pass_through_check_reads_the_installed_source():
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    class Sub(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            return await call_next(request)

    class OwnCall(BaseHTTPMiddleware):
        async def __call__(self, scope, receive, send):
            await super().__call__(scope, receive, send)

    assert [nws._ws_pass_through(c) for c in (BaseHTTPMiddleware, Sub, CORSMiddleware, GZipMiddleware)] \
        == [True] * 4
    assert [nws._ws_pass_through(c) for c in (OwnCall, TrustedHostMiddleware, HTTPSRedirectMiddleware,
                                              None, object)] == [False] * 5


def test_report():
    app = make_app()
    rep = {r.path: why for r, why in nws.ws_report(app)}
    assert rep["/echo/{room}"] == "" and rep["/need"] == ""
    assert rep["/sub/ws/{x}"]


APP_FILE = '''
from fastapi import FastAPI, WebSocket, Depends
app = FastAPI()
def dep(n: int = 1):
    return n
@app.websocket("/ws/{room}")
async def ws(websocket: WebSocket, room: str, n: int = Depends(dep)):
    await websocket.accept()
    msg = await websocket.receive_text()
    await websocket.send_text(f"{room}:{n}:{msg}")
    await websocket.close()
'''


def test_real_socket_websockets_client(tmp_path):
    websockets = pytest.importorskip("websockets")
    from websockets.sync.client import connect

    (tmp_path / "wsapp.py").write_text(APP_FILE)
    import socket

    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-m", "celeris", "run", "wsapp:app", "--port", str(port),
                             "--app-dir", str(tmp_path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        with connect(f"ws://127.0.0.1:{port}/ws/lobby?n=4") as ws:
            ws.send("hi")
            assert ws.recv() == "lobby:4:hi"
        # a validation error closes before accept: the handshake is refused (403)
        with pytest.raises(websockets.exceptions.InvalidStatus) as ei:
            connect(f"ws://127.0.0.1:{port}/ws/lobby?n=x")
        assert ei.value.response.status_code == 403
    finally:
        proc.terminate()
        proc.wait(10)


def test_celeris_routes_lists_ws(tmp_path):
    (tmp_path / "wsapp2.py").write_text(APP_FILE + '''
from fastapi import APIRouter
r = APIRouter(prefix="/r")
@r.websocket("/in")
async def inner(websocket: WebSocket):
    pass
app.include_router(r)
''')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-m", "celeris", "routes", "wsapp2:app", "--app-dir", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=60).stdout
    rows = [line.split() for line in out.splitlines() if line.startswith("WS")]
    assert rows[0][:3] == ["WS", "/ws/{room}", "native"]
    assert rows[1][2] == "asgi" and "included router" in " ".join(rows[1])


class Late(Exception):
    pass


class Raw(Exception):
    pass


def make_handler_app() -> FastAPI:
    """Exception handlers around the dispatcher's copy of Starlette's
    wrap_app_handling_exceptions: async and sync handlers, a handler that
    closes an accepted session, and the response_started flag (an endpoint
    pushing `http.response.start` into the raw ASGI send)."""
    app = FastAPI()

    @app.websocket("/late")
    async def late(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text("before")
        raise Late()

    @app.exception_handler(Late)
    async def on_late(websocket: WebSocket, exc: Late):
        EVENTS.append(("late", type(exc).__name__))
        await websocket.close(code=4002, reason="late")

    @app.websocket("/sync-handler")
    async def sync_handler(websocket: WebSocket):
        raise Boom()

    @app.exception_handler(Boom)
    def on_boom_sync(websocket: WebSocket, exc: Boom):
        EVENTS.append("sync handler")
        return None

    @app.websocket("/raw-start")
    async def raw_start(websocket: WebSocket):
        try:
            await websocket._send({"type": "http.response.start", "status": 200, "headers": []})
        except Exception as exc:
            EVENTS.append(("send refused", type(exc).__name__))
        raise Raw()

    @app.exception_handler(Raw)
    async def on_raw(websocket: WebSocket, exc: Raw):
        # Handled by the route's own wrapper (websocket_session); raising
        # Late from here reaches the outer (ExceptionMiddleware's) wrapper,
        # whose sender saw the http.response.start: it refuses to run on_late.
        EVENTS.append("raw handler")
        raise Late()

    return app


@pytest.fixture(scope="module")
def handler_clients():
    return native_and_asgi_clients(make_handler_app())


def test_handler_closes_an_accepted_session(handler_clients):
    got, ev = both(handler_clients, "/late", receive=1)
    assert got[0][1]["text"] == "before"
    assert ev == [("late", "Late")]


def test_sync_exception_handler(handler_clients):
    got, ev = both(handler_clients, "/sync-handler", receive=0)
    assert ev == ["sync handler"]


def test_response_started_flag(handler_clients):
    got, ev = both(handler_clients, "/raw-start", receive=0)
    assert ev == [("send refused", "RuntimeError"), "raw handler"]   # on_late never ran


def test_without_the_flag_the_outer_handler_runs(handler_clients, monkeypatch):
    # The same app, the route not touching the raw send: on_late runs.
    app = make_handler_app()

    @app.websocket("/no-start")
    async def no_start(websocket: WebSocket):
        raise Raw()

    app.router.routes.insert(0, app.router.routes.pop())
    clients = native_and_asgi_clients(app)
    got, ev = both(clients, "/no-start", receive=0)
    assert ev == ["raw handler", ("late", "Late")]


def test_exc_sender_is_starlettes_sender():
    from celeris import _celeris

    import inspect

    from starlette import _exception_handler as eh

    assert nws._WRAP_IS_KNOWN()         # Starlette 1.7 and 1.10 (the versions tested here)
    assert nws._wrap_resets_tb == ("exc.__traceback__ = None" in inspect.getsource(eh))
    seen = []
    s = _celeris.ExcSender(lambda m: seen.append(m) or "awaitable")
    assert s({"type": "websocket.send", "text": "x"}) == "awaitable"
    assert s.response_started is False
    assert s({"type": "http.response.start"}) == "awaitable"
    assert s.response_started is True
    assert [m["type"] for m in seen] == ["websocket.send", "http.response.start"]
    with pytest.raises(KeyError) as ki:
        s({})
    assert ki.value.args == ("type",)
    # the exact-dict fast path and the Mapping path set the flag alike
    from collections import UserDict

    class D(dict):
        pass

    for cls in (D, UserDict):
        s2 = _celeris.ExcSender(lambda m: "ok")
        assert s2(cls({"type": "websocket.send"})) == "ok" and s2.response_started is False
        assert s2(cls({"type": "".join(["http.response.", "start"])})) == "ok"
        assert s2.response_started is True
        with pytest.raises(KeyError):
            s2(cls())
    s3 = _celeris.ExcSender(lambda m: "ok")
    for t in ("http.response.star", "http.response.startx", "http.response.stArt", 1, None,
              "http.response.stärt"):
        s3({"type": t})
    assert s3.response_started is False
    s3({"type": type("S", (str,), {})("http.response.start")})
    assert s3.response_started is True
    with pytest.raises(TypeError):
        s()
    with pytest.raises(TypeError):
        s({"type": "x"}, 1)


def test_unknown_starlette_wrapper_runs_starlettes_own(handler_clients, monkeypatch):
    monkeypatch.setattr(nws, "_wrap_known", False)
    got, ev = both(handler_clients, "/raw-start", receive=0)
    assert ev == [("send refused", "RuntimeError"), "raw handler"]
    got, ev = both(handler_clients, "/late", receive=1)
    assert ev == [("late", "Late")]
