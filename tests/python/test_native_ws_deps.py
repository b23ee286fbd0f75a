"""WebSocket routes whose dependencies and parameters the compiled runner
(celeris.native.ws_runner) solves, against FastAPI itself: every session
runs through the C core twice -- native tier on (the compiled runner) and
off (FastAPI's middleware stack, router and solve_dependencies) -- and what
the client sees (messages, close code and reason) and the calls and
teardowns the app records must be identical.  The native run must have
been solved by the compiled runner (websocket.compiled), or, for the
declined cases, by FastAPI's own route app, with the reason reported."""
import inspect
import time
import warnings
from typing import Annotated, Optional

import pytest
from conftest import native_and_asgi_clients, ws_outcome
from fastapi import (APIRouter, Body, Cookie, Depends, FastAPI, Header, Path, Query, Security,
                     WebSocket, WebSocketException, status)
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer, SecurityScopes
from pydantic import BaseModel
from starlette.background import BackgroundTasks
from starlette.requests import HTTPConnection, Request
from starlette.websockets import WebSocketDisconnect

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from celeris.native import websocket as nws
    from celeris.native import ws_runner

EVENTS: list = []


class Boom(Exception):
    pass


class Filters(BaseModel):
    limit: int = 10
    tags: list[str] = []


async def settings() -> dict:
    EVENTS.append("settings")
    return {"prefix": "p"}


async def resource(s: Annotated[dict, Depends(settings)], limit: int = 5):
    EVENTS.append(("enter resource", limit))
    try:
        yield f"{s['prefix']}{limit}"
    except Boom:
        EVENTS.append("resource saw Boom")
        raise
    finally:
        EVENTS.append("exit resource")


def sync_resource(s: Annotated[dict, Depends(settings)]):
    EVENTS.append("enter sync")
    yield "sync"
    EVENTS.append("exit sync")


async def fn_scoped():
    EVENTS.append("enter fn")
    yield "fn"
    EVENTS.append("exit fn")


def token(token: Optional[str] = None, x_token: Annotated[Optional[str], Header()] = None) -> str:
    EVENTS.append("token")
    if token == "bad":
        raise WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason="bad token")
    if token == "boom":
        raise Boom()
    return token or x_token or "anon"


def page(n: int = Query(1, ge=1), size: int = 10) -> tuple:
    EVENTS.append(("page", n))
    return (n, size)


class Pager:
    def __init__(self, offset: int = 0, s: dict = Depends(settings)):
        EVENTS.append(("Pager", offset))
        self.offset = offset


class Checker:
    def __init__(self, word: str) -> None:
        self.word = word

    async def __call__(self, q: str = "") -> bool:
        EVENTS.append(("checker", q))
        return self.word in q


def scoped(security_scopes: SecurityScopes, user: str = "u") -> str:
    EVENTS.append(("scopes", tuple(security_scopes.scopes), security_scopes.scope_str))
    return user


oauth2 = OAuth2PasswordBearer(tokenUrl="token", scopes={"read": "read", "admin": "admin"})


async def current_user(security_scopes: SecurityScopes,
                       token: Annotated[str, Depends(oauth2)]) -> str:
    EVENTS.append(("current_user", security_scopes.scope_str))
    if token == "weak" and "admin" in security_scopes.scopes:
        raise WebSocketException(code=4403, reason="not admin")
    return token


def counted() -> int:
    EVENTS.append("counted")
    return len(EVENTS)


def make_app(**kw) -> FastAPI:
    app = FastAPI(**kw)

    @app.websocket("/items/{item_id}")
    async def items(websocket: WebSocket, item_id: int, q: Optional[str] = None,
                    tags: Annotated[list[str], Query()] = [],
                    alias: Annotated[str, Query(alias="item-alias")] = "dflt",
                    pg: Annotated[tuple, Depends(page)] = (),
                    user_agent: Annotated[str, Header()] = "",
                    session_id: Annotated[Optional[str], Cookie()] = None):
        await websocket.accept()
        await websocket.send_json({"item_id": item_id, "q": q, "tags": tags, "alias": alias,
                                   "pg": list(pg), "ua": user_agent, "sid": session_id})
        await websocket.close()

    @app.websocket("/chain/{room}")
    async def chain(websocket: WebSocket, room: Annotated[str, Path(min_length=2)],
                    r: Annotated[str, Depends(resource)],
                    s: Annotated[str, Depends(sync_resource)],
                    f: Annotated[str, Depends(fn_scoped, scope="function")],
                    tok: Annotated[str, Depends(token)],
                    c1: Annotated[int, Depends(counted)],
                    c2: Annotated[int, Depends(counted)],
                    c3: Annotated[int, Depends(counted, use_cache=False)],
                    stop: int = 0):
        EVENTS.append(("endpoint", room))
        await websocket.accept()
        await websocket.send_json({"room": room, "r": r, "s": s, "f": f, "tok": tok,
                                   "same": c1 == c2, "fresh": c3 != c1})
        if stop == 1:
            raise Boom()
        try:
            while True:
                msg = await websocket.receive_text()
                if msg == "bye":
                    await websocket.close()
                    return
                await websocket.send_text(f"{room}:{msg}")
        except WebSocketDisconnect as exc:
            EVENTS.append(("disconnect", exc.code))

    @app.websocket("/classes")
    async def classes(websocket: WebSocket, p: Annotated[Pager, Depends()],
                      hit: Annotated[bool, Depends(Checker("x"))],
                      conn: HTTPConnection):
        await websocket.accept()
        await websocket.send_json({"offset": p.offset, "hit": hit,
                                   "same": conn is websocket})
        await websocket.close()

    @app.websocket("/secure")
    async def secure(websocket: WebSocket,
                     user: Annotated[str, Security(scoped, scopes=["read", "write"])],
                     again: Annotated[str, Security(scoped, scopes=["admin"])]):
        await websocket.accept()
        await websocket.send_text(f"{user}:{again}")
        await websocket.close()

    @app.websocket("/oauth")
    async def oauth(websocket: WebSocket,
                    user: Annotated[str, Security(current_user, scopes=["read"])],
                    key: Annotated[Optional[str], Depends(APIKeyHeader(name="x-key", auto_error=False))],
                    admin: bool = False):
        if admin:
            await current_user(SecurityScopes(["admin"]), user)
        await websocket.accept()
        await websocket.send_text(f"{user}:{key}")
        await websocket.close()

    @app.websocket("/model")
    async def model(websocket: WebSocket, filters: Annotated[Filters, Query()]):
        await websocket.accept()
        await websocket.send_json(filters.model_dump())
        await websocket.close()

    async def accepting(websocket: WebSocket) -> str:
        await websocket.accept()
        return "accepted"

    @app.websocket("/late-invalid")
    async def late_invalid(websocket: WebSocket, a: Annotated[str, Depends(accepting)], n: int):
        await websocket.send_text(str(n))
        await websocket.close()

    @app.websocket("/plain")
    async def plain(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text("plain")
        await websocket.close()

    def inner_dep(i: int = 0, x_i: Annotated[int, Header()] = 0) -> int:
        EVENTS.append("inner")
        return i

    def outer_dep(v: Annotated[int, Depends(inner_dep)], o: int = 0) -> int:
        EVENTS.append("outer")
        return v + o

    @app.websocket("/nested")
    async def nested(websocket: WebSocket, a: Annotated[int, Depends(outer_dep)],
                     b: Annotated[int, Depends(inner_dep)],
                     c: Annotated[int, Depends(inner_dep, use_cache=False)], e: int = 0):
        await websocket.accept()
        await websocket.send_text(f"{a}:{b}:{c}:{e}")
        await websocket.close()

    @app.websocket("/sync-endpoint")
    def sync_endpoint(websocket: WebSocket, n: int = 0):
        EVENTS.append(("sync endpoint", n))

    @app.exception_handler(Boom)
    async def on_boom(websocket: WebSocket, exc: Boom):
        EVENTS.append("handler")
        await websocket.close(code=4000, reason="boom")

    return app


@pytest.fixture(scope="module")
def clients():
    return native_and_asgi_clients(make_app())


def session(client, url, sends=(), receive=1, until=None, **kw):
    """Everything the client sees of one session, as comparable data.
    `until`: an event the app records at its end (the last teardown),
    waited for before the client leaves the session -- the TestClient, as
    Starlette's, cancels an app still running a few loop turns later."""
    out = []
    try:
        with client.websocket_connect(url, **kw) as ws:
            for _ in range(receive):
                out.append(("recv", ws.receive()))
            for s in sends:
                ws.send_text(s)
                out.append(("recv", ws.receive()))
            if until is not None:
                deadline = time.monotonic() + 10
                while until not in EVENTS and time.monotonic() < deadline:
                    time.sleep(0.001)
    except Exception as exc:
        out.append(ws_outcome(exc, 300))
    return out


def both(clients, url, compiled=True, **kw):
    """The session on both tiers; returns (what the client saw, events).
    `compiled`: whether the native run's dependencies were solved by the
    compiled runner (else by FastAPI's own route app, still dispatched
    natively)."""
    n, a = clients
    EVENTS.clear()
    served, done = nws.served, nws.compiled
    got_n = session(n, url, **kw)
    ev_n = list(EVENTS)
    assert nws.served - served == 1
    assert nws.compiled - done == (1 if compiled else 0)
    EVENTS.clear()
    served, done = nws.served, nws.compiled
    got_a = session(a, url, **kw)
    ev_a = list(EVENTS)
    assert (nws.served, nws.compiled) == (served, done)
    assert got_n == got_a
    assert ev_n == ev_a
    return got_n, ev_n


def text(got, i=0):
    return got[i][1]["text"]


def test_path_query_header_cookie(clients):
    got, ev = both(clients, "/items/7?q=x&tags=a&tags=b&item-alias=al&n=2",
                   headers={"user-agent": "tester", "cookie": "session_id=s1"}, receive=1)
    assert text(got).startswith('{"item_id":7,"q":"x","tags":["a","b"],"alias":"al","pg":[2,10]')
    assert '"ua":"tester","sid":"s1"' in text(got)
    assert ev == [("page", 2)]


def test_defaults(clients):
    got, _ = both(clients, "/items/1")
    assert '"q":null,"tags":[],"alias":"dflt","pg":[1,10]' in text(got)


def test_invalid_params_close_1008_same_reason(clients):
    # errors from a dependency's query, the path and the endpoint's own query, in FastAPI's order
    got, ev = both(clients, "/items/x?n=0&size=y")
    assert got[-1][:2] == ("closed", 1008)
    reason = str(got[-1][2])
    assert reason.index("greater_than_equal") < reason.index("'size'") < reason.index("'item_id'")
    assert ev == []      # page's own parameters failed: it is not called


def test_invalid_path_constraint(clients):
    got, ev = both(clients, "/chain/a")
    assert got[-1][:2] == ("closed", 1008) and "string_too_short" in str(got[-1][2])
    # the dependencies without errors ran, and their teardown with the error
    assert ev[0] == "settings" and "exit resource" in ev and ("endpoint", "a") not in ev


def test_dependency_param_error_only(clients):
    got, ev = both(clients, "/chain/room?limit=no")
    assert got[-1][:2] == ("closed", 1008) and "'limit'" in str(got[-1][2])
    assert ("enter resource", 5) not in ev and "enter sync" in ev


def test_chain_cache_and_teardown_order(clients):
    got, ev = both(clients, "/chain/lobby?limit=3&token=t", sends=("hi", "bye"),
                   until="exit resource")
    assert text(got) == ('{"room":"lobby","r":"p3","s":"sync","f":"fn","tok":"t",'
                         '"same":true,"fresh":true}')
    assert text(got, 1) == "lobby:hi"
    assert ev.count("settings") == 1 and ev.count("counted") == 2
    # function-scoped teardown first, then the request stack in reverse order
    tail = [e for e in ev if isinstance(e, str) and e.startswith("exit")]
    assert tail == ["exit fn", "exit sync", "exit resource"]


def test_header_token(clients):
    got, _ = both(clients, "/chain/lobby", headers={"x-token": "hdr"}, sends=("bye",),
                  until="exit resource")
    assert '"tok":"hdr"' in text(got)


def test_dependency_raises_websocket_exception(clients):
    got, ev = both(clients, "/chain/lobby?token=bad")
    assert got[-1] == ("closed", 1008, "bad token")
    assert ev[-1] == "exit resource"


def test_dependency_raises_handled_exception(clients):
    got, ev = both(clients, "/chain/lobby?token=boom")
    assert got[-1] == ("closed", 4000, "boom")
    assert "resource saw Boom" in ev and ev.index("resource saw Boom") < ev.index("handler")


def test_endpoint_raises_through_yield_dependencies(clients):
    got, ev = both(clients, "/chain/lobby?stop=1", receive=2)
    assert got[-1] == ("recv", {"type": "websocket.close", "code": 4000, "reason": "boom"})
    assert "resource saw Boom" in ev


def test_class_dependencies_and_http_connection(clients):
    got, ev = both(clients, "/classes?offset=4&q=xyz")
    assert text(got) == '{"offset":4,"hit":true,"same":true}'
    assert ev == ["settings", ("Pager", 4), ("checker", "xyz")]
    got, _ = both(clients, "/classes?offset=bad")
    assert got[-1][:2] == ("closed", 1008)


def test_security_scopes(clients):
    got, ev = both(clients, "/secure?user=ann")
    assert text(got) == "ann:ann"
    assert ev == [("scopes", ("read", "write"), "read write"), ("scopes", ("admin",), "admin")]


def test_security_classes(clients):
    got, ev = both(clients, "/oauth", headers={"authorization": "Bearer tok", "x-key": "k"})
    assert text(got) == "tok:k" and ev == [("current_user", "read")]
    # no credentials: OAuth2PasswordBearer's 401 HTTPException, a denial response
    got, ev = both(clients, "/oauth")
    assert got[-1][:2] == ("WebSocketDenialResponse", 401) and ev == []
    got, _ = both(clients, "/oauth?admin=1", headers={"authorization": "Bearer weak"})
    assert got[-1] == ("closed", 4403, "not admin")


def test_query_parameter_model(clients):
    got, _ = both(clients, "/model?limit=3&tags=a&tags=b")
    assert text(got) == '{"limit":3,"tags":["a","b"]}'
    got, _ = both(clients, "/model?limit=x")
    assert got[-1][:2] == ("closed", 1008) and "int_parsing" in str(got[-1][2])


def test_validation_error_after_accept(clients):
    # a dependency accepted the session; FastAPI's handler then closes with
    # the error list as the reason, which the core refuses (not a str) on
    # both tiers alike (uvicorn's protocols raise too: reason.encode())
    got, _ = both(clients, "/late-invalid?n=x", receive=0)
    assert got == [("TypeError", "websocket.close 'reason' must be a str, not list")]


def test_nested_errors_repeated_as_fastapi_repeats_them(clients):
    got, ev = both(clients, "/nested?i=1&o=2&e=3", headers={"x-i": "4"})
    assert text(got) == "3:1:1:3" and ev == ["inner", "outer", "inner"]
    # inner_dep's errors come once per occurrence (cached or not), outer's own after them
    got, ev = both(clients, "/nested?i=x&o=y&e=z", headers={"x-i": "w"})
    reason = str(got[-1][2])
    assert got[-1][:2] == ("closed", 1008) and ev == []
    assert reason.count("'query', 'i'") == 3 and reason.count("'header', 'x-i'") == 3
    assert reason.index("'query', 'o'") < reason.index("'query', 'e'")
    got, ev = both(clients, "/nested?o=y")
    assert got[-1][:2] == ("closed", 1008) and ev == ["inner", "inner"]


def test_sync_endpoint_fails_as_in_fastapi(clients):
    got, ev = both(clients, "/sync-endpoint?n=2", receive=0)
    assert ev == [("sync endpoint", 2)]
    assert got[0][0] == "TypeError"


def test_no_dependencies(clients):
    got, _ = both(clients, "/plain")
    assert text(got) == "plain"


def test_dependency_overrides_consulted_per_session(clients):
    app = clients[0].app

    def other_token() -> str:
        EVENTS.append("override")
        return "over"

    app.dependency_overrides[token] = other_token
    try:
        got, ev = both(clients, "/chain/lobby?token=bad", compiled=False, sends=("bye",),
                       until="exit resource")
        assert '"tok":"over"' in text(got) and "override" in ev
    finally:
        app.dependency_overrides.clear()
    got, _ = both(clients, "/chain/lobby?token=t", sends=("bye",), until="exit resource")
    assert '"tok":"t"' in text(got)


def test_app_level_dependencies():
    def guard(key: str = "") -> None:
        EVENTS.append(("guard", key))
        if key != "k":
            raise WebSocketException(code=4003, reason="no key")

    app = make_app(dependencies=[Depends(guard)])
    c = native_and_asgi_clients(app)
    got, ev = both(c, "/plain?key=k")
    assert text(got) == "plain" and ev == [("guard", "k")]
    got, _ = both(c, "/plain")
    assert got[-1] == ("closed", 4003, "no key")


def declined_app() -> FastAPI:
    app = FastAPI()

    @app.websocket("/body")
    async def body(websocket: WebSocket, b: Annotated[int, Body()] = 1):
        await websocket.accept()
        await websocket.send_text(str(b))
        await websocket.close()

    @app.websocket("/bg")
    async def bg(websocket: WebSocket, tasks: BackgroundTasks):
        await websocket.accept()
        await websocket.send_text(type(tasks).__name__)
        await websocket.close()

    def wants_request(request: Request) -> str:
        return "r"

    @app.websocket("/request")
    async def request(websocket: WebSocket, r: Annotated[str, Depends(wants_request)]):
        await websocket.accept()
        await websocket.close()

    @app.websocket("/replaced")
    async def replaced(websocket: WebSocket, n: int = 0):
        await websocket.accept()
        await websocket.send_text(f"n={n}")
        await websocket.close()

    async def starlette_ws(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text("starlette")
        await websocket.close()

    app.router.add_websocket_route("/starlette", starlette_ws)

    route = next(r for r in app.router.routes if getattr(r, "path", "") == "/replaced")
    original = route.app

    async def wrapped(scope, receive, send):
        EVENTS.append("wrapped")
        await original(scope, receive, send)

    route.app = wrapped
    return app


def test_declines_with_reasons():
    app = declined_app()
    rep = {r.path: (why, rwhy) for r, why, rwhy in nws.ws_report(app, detail=True)}
    assert rep["/body"] == ("", "body parameter")
    assert rep["/bg"] == ("", "BackgroundTasks parameter")
    assert rep["/request"] == ("", "Request parameter (not injected into websocket routes)")
    assert rep["/replaced"] == ("", "route.app replaced")
    assert rep["/starlette"] == ("", "WebSocketRoute (no FastAPI dependencies)")
    c = native_and_asgi_clients(app)

    got, _ = both(c, "/bg", compiled=False)
    assert text(got) == "BackgroundTasks"
    got, ev = both(c, "/replaced?n=2", compiled=False)
    assert text(got) == "n=2" and ev == ["wrapped"]
    got, _ = both(c, "/starlette", compiled=False)
    assert text(got) == "starlette"
    got, _ = both(c, "/body", compiled=False)
    assert text(got) == "1"


def test_concurrency_limited_dependencies():
    app = FastAPI()

    async def slow(n: int = 0) -> int:
        EVENTS.append(("slow", n))
        return n

    if "max_concurrency" not in inspect.signature(Depends).parameters:
        # FastAPI < 0.165 has no dependency concurrency limits: nothing to compile
        with pytest.raises(TypeError):
            Depends(slow, max_concurrency=1)
        return

    async def limited_gen():
        EVENTS.append("gen in")
        yield "g"
        EVENTS.append("gen out")

    @app.websocket("/limited")
    async def limited(websocket: WebSocket,
                      a: Annotated[int, Depends(slow, max_concurrency=1)],
                      b: Annotated[int, Depends(counted, max_concurrency=2)],
                      g: Annotated[str, Depends(limited_gen, max_concurrency=1)]):
        await websocket.accept()
        await websocket.send_text(f"{a}:{g}")
        await websocket.close()
        EVENTS.append("done")

    c = native_and_asgi_clients(app)
    got, ev = both(c, "/limited?n=4", until="gen out")
    assert text(got) == "4:g" and ev == [("slow", 4), "counted", "gen in", "done", "gen out"]
    got, ev = both(c, "/limited?n=x")
    assert got[-1][:2] == ("closed", 1008) and ev == ["counted", "gen in"]   # no finally: the error ends it


def test_route_app_replaced_after_compiling():
    app = make_app()
    c = native_and_asgi_clients(app)
    both(c, "/plain")
    route = next(r for r in app.router.routes if getattr(r, "path", "") == "/plain")
    original = route.app

    async def wrapped(scope, receive, send):
        EVENTS.append("wrapped")
        await original(scope, receive, send)

    route.app = wrapped
    got, ev = both(c, "/plain", compiled=False)
    assert ev == ["wrapped"] and text(got) == "plain"


def test_unknown_fastapi_version_declines(monkeypatch):
    monkeypatch.setitem(ws_runner._KNOWN, "solve_dependencies", {})
    monkeypatch.setattr(ws_runner, "_known_result", [])
    app = make_app()
    rep = {r.path: rwhy for r, _, rwhy in nws.ws_report(app, detail=True)}
    assert "unknown solve_dependencies" in rep["/plain"]
    c = native_and_asgi_clients(app)
    got, _ = both(c, "/items/3", compiled=False)
    assert '"item_id":3' in text(got)
    monkeypatch.setattr(ws_runner, "_known_result", [])


def test_runner_switched_off(monkeypatch):
    monkeypatch.setenv("CELERIS_WS_RUNNER", "0")
    app = make_app()
    rep = {r.path: rwhy for r, _, rwhy in nws.ws_report(app, detail=True)}
    assert rep["/plain"] == "compiled websocket runner off (CELERIS_WS_RUNNER=0)"
    got, _ = both(native_and_asgi_clients(app), "/items/5", compiled=False)
    assert '"item_id":5' in text(got)


def test_known_hashes_match_installed_fastapi():
    import fastapi

    assert ws_runner.fastapi_known() == "", fastapi.__version__
    for name, fn in ws_runner._functions().items():
        assert ws_runner.source_hash(fn) in ws_runner._KNOWN[name]


def test_generated_runner_unrolls_the_graph():
    app = make_app()
    route = next(r for r in app.router.routes if getattr(r, "path", "") == "/chain/{room}")
    run, provider, why = ws_runner.compile_route(route)
    assert why == "" and provider is app
    src = run.__celeris_source__
    assert "solve_dependencies" not in src
    assert src.count("_solve_generator(") == 3
    assert src.count("_run_in_threadpool(") == 3     # token, counted twice (use_cache=False)


def test_runner_without_awaits_is_a_plain_function():
    """Solving that awaits nothing: run() returns the endpoint's coroutine (one
    coroutine level fewer per resume); with an async dependency it stays a
    coroutine function.  Both kinds run through the differential tests above
    (/plain: plain; /items/{item_id}, /chain/{room}: coroutine)."""
    import inspect

    app = make_app()
    routes = {getattr(r, "path", ""): r for r in app.router.routes}
    plain, _, why = ws_runner.compile_route(routes["/plain"])
    assert why == ""
    assert not inspect.iscoroutinefunction(plain)
    assert plain.__celeris_source__.startswith("def run(")
    assert "return " in plain.__celeris_source__.splitlines()[-1]
    chained, _, why = ws_runner.compile_route(routes["/chain/{room}"])
    assert why == "" and inspect.iscoroutinefunction(chained)
    assert chained.__celeris_source__.startswith("async def run(")


def test_celeris_routes_shows_runner_reason(tmp_path):
    import os
    import subprocess
    import sys

    (tmp_path / "wsdeclined.py").write_text(
        "from typing import Annotated\n"
        "from fastapi import FastAPI, WebSocket, Body\n"
        "app = FastAPI()\n"
        "@app.websocket('/ok/{x}')\n"
        "async def ok(websocket: WebSocket, x: int):\n"
        "    pass\n"
        "@app.websocket('/body')\n"
        "async def body(websocket: WebSocket, b: Annotated[int, Body()] = 1):\n"
        "    pass\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-m", "celeris", "routes", "wsdeclined:app",
                          "--app-dir", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=60).stdout
    rows = {line.split()[1]: line for line in out.splitlines() if line.startswith("WS")}
    assert rows["/ok/{x}"].split()[2] == "native" and len(rows["/ok/{x}"].split()) == 3
    assert rows["/body"].split()[2] == "native"
    assert "dependencies solved by FastAPI: body parameter" in rows["/body"]
