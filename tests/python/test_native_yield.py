"""Async generator (yield) dependencies on the native tier, entered directly
on FastAPI's exit stacks (runner.py `_ASYNC_GEN_DIRECT`), against FastAPI
itself: every request goes through the C core with the native tier on and
off, and status, raw headers, body and the recorded events (enter, teardown,
the exception each teardown saw, anyio's view of cancel scopes) must be
identical.  Covers teardown order across several generators and both
dependency scopes, exceptions swallowed / re-raised / replaced in teardown,
generators that do not yield or yield twice, cancel scopes inside a
generator, sync generators mixed in, and Request injection (which keeps
FastAPI's own `_solve_generator`)."""
import json
from typing import Annotated, Optional

import anyio
import pytest
from fastapi import Depends, FastAPI, HTTPException, Request

from celeris import testclient as tc
from celeris.native import compile_app
from celeris.native import runner as native_runner
from conftest import answer_with_events, native_and_asgi_clients

EVENTS: list = []


class Boom(Exception):
    pass


def make_app() -> FastAPI:
    app = FastAPI()

    @app.exception_handler(Boom)
    async def boom_handler(request: Request, exc: Boom):
        from fastapi.responses import JSONResponse
        chain, e = [], exc             # the exception contexts the stack(s) left on it
        while e is not None and len(chain) < 6:
            chain.append([type(e).__name__, str(e), e.__cause__ is not None, e.__suppress_context__])
            e = e.__context__
        return JSONResponse({"boom": str(exc), "chain": chain}, status_code=418)

    async def first(mode: Optional[str] = None):
        EVENTS.append("first open")
        try:
            yield "first"
        except Exception as exc:
            EVENTS.append(f"first saw {type(exc).__name__}")
            if mode == "swallow-first":
                return
            raise
        finally:
            EVENTS.append(f"first close deadline={anyio.current_effective_deadline()}")

    async def second(f: Annotated[str, Depends(first)], mode: Optional[str] = None):
        EVENTS.append("second open")
        try:
            yield f + "+second"
        except HTTPException as exc:
            EVENTS.append(f"second saw {exc.status_code}")
            if mode == "replace":
                raise Boom("replaced") from exc
            if mode == "swallow":
                return
            raise
        except Boom:
            EVENTS.append("second saw Boom")
            raise
        finally:
            await anyio.sleep(0)
            EVENTS.append("second close")

    async def function_scoped():
        EVENTS.append("fn open")
        yield "fn"
        EVENTS.append("fn close")

    def sync_gen():
        EVENTS.append("sync open")
        yield "sync"
        EVENTS.append("sync close")

    async def no_yield():
        if False:
            yield None

    async def yields_twice():
        yield 1
        yield 2

    async def teardown_raises(mode: Optional[str] = None):
        yield "t"
        if mode == "http":
            raise HTTPException(status_code=409, detail="teardown")
        if mode == "boom":
            raise Boom("in teardown")

    async def scoped():
        with anyio.move_on_after(30) as scope:
            EVENTS.append(f"scoped deadline finite={scope.deadline != float('inf')}")
            yield "scoped"
        EVENTS.append(f"scoped cancelled={scope.cancelled_caught}")

    @app.get("/two")
    async def two(s: Annotated[str, Depends(second)], mode: Optional[str] = None):
        EVENTS.append("endpoint")
        if mode in ("raise", "replace", "swallow", "swallow-first"):
            raise HTTPException(status_code=400, detail="endpoint")
        if mode == "boom":
            raise Boom("endpoint")
        if mode == "crash":
            raise RuntimeError("crash")
        return {"s": s}

    @app.get("/scopes")
    async def scopes(fn: Annotated[str, Depends(function_scoped, scope="function")],
                     s: Annotated[str, Depends(second)],
                     y: Annotated[str, Depends(sync_gen)]):
        EVENTS.append("endpoint")
        return {"fn": fn, "s": s, "y": y}

    @app.get("/no-yield")
    async def no_yield_route(v: Annotated[None, Depends(no_yield)]):
        return {"v": v}

    @app.get("/twice")
    async def twice(v: Annotated[int, Depends(yields_twice)]):
        return {"v": v}

    @app.get("/teardown")
    async def teardown(t: Annotated[str, Depends(teardown_raises)]):
        EVENTS.append("endpoint")
        return {"t": t}

    @app.get("/scoped")
    async def scoped_route(v: Annotated[str, Depends(scoped)]):
        EVENTS.append("endpoint")
        return {"v": v}

    @app.get("/cached")
    async def cached(a: Annotated[str, Depends(first)], b: Annotated[str, Depends(first)],
                     c: Annotated[str, Depends(first, use_cache=False)]):
        return {"a": a, "b": b, "c": c}

    async def outer_boom(mode: Optional[str] = None):
        try:
            yield "outer"
        except Boom as exc:
            raise Boom(f"outer saw {exc}") if mode == "inner" else exc
        finally:
            EVENTS.append("outer close")

    async def inner_boom(o: Annotated[str, Depends(outer_boom)], mode: Optional[str] = None):
        try:
            yield o + "+inner"
        finally:
            if mode == "inner":
                raise Boom("inner teardown")

    @app.get("/nested-boom")
    async def nested_boom(v: Annotated[str, Depends(inner_boom)], mode: Optional[str] = None):
        EVENTS.append("endpoint")
        raise Boom("endpoint")

    @app.get("/request")
    async def with_request(request: Request, s: Annotated[str, Depends(second)]):
        EVENTS.append("endpoint")
        return {"s": s, "keys": sorted(k for k in request.scope if k.startswith("fastapi_"))}

    return app


REQUESTS = [
    "/two", "/two?mode=raise", "/two?mode=replace", "/two?mode=swallow",
    "/two?mode=swallow-first", "/two?mode=boom", "/two?mode=crash",
    "/scopes", "/no-yield", "/twice", "/teardown", "/teardown?mode=http", "/teardown?mode=boom",
    "/scoped", "/cached", "/request", "/request?mode=raise", "/request?mode=boom",
    "/request?mode=replace", "/nested-boom", "/nested-boom?mode=inner",
]


def _run(client, url):
    return answer_with_events(EVENTS, client, "GET", url)


@pytest.fixture(scope="module")
def clients():
    return native_and_asgi_clients(make_app())


@pytest.mark.parametrize("url", REQUESTS)
def test_yield_dependencies_match_asgi(clients, url):
    n, a = clients
    assert _run(n, url) == _run(a, url)


def test_routes_are_native_and_enter_generators_directly(clients):
    assert native_runner._ASYNC_GEN_DIRECT()
    compiled = {e.display_path: e for e in compile_app(make_app()).entries}
    for path in ("/two", "/scopes", "/no-yield", "/twice", "/teardown", "/scoped", "/cached",
                 "/request"):
        assert compiled[path].plan is not None, (path, compiled[path].reason)
    # only request-scoped async generators: nested `async with` blocks, no exit stack
    src = compiled["/two"].plan.endpoint.__celeris_source__
    assert src.count("async with _GenCM(") == 2 and "_solve_generator" not in src
    assert "_AsyncExitStack" not in src
    # a sync generator keeps FastAPI's path (thread pool __enter__/__exit__)
    src = compiled["/scopes"].plan.endpoint.__celeris_source__
    assert src.count("enter_async_context") == 3 and src.count("_solve_generator") == 1
    # Request injection: FastAPI's own bookkeeping in request.scope
    src = compiled["/request"].plan.endpoint.__celeris_source__
    assert "enter_async_context" not in src and "_solve_generator" in src
    n, _ = clients
    before = tc.stats["native"]
    for url in ("/two", "/two?mode=raise", "/scopes", "/request"):
        n.get(url)
    assert tc.stats["native"] == before + 4


def test_teardown_order_and_exception_seen(clients):
    n, _ = clients
    assert _run(n, "/two?mode=raise")[3] == [
        "first open", "second open", "endpoint", "second saw 400", "second close",
        "first saw HTTPException", "first close deadline=inf"]
    status, _, body, events = _run(n, "/two?mode=swallow")
    # swallowed in teardown: FastAPI then finds no response was sent
    assert status == 500 and events[-1] == "first close deadline=inf"
    status, _, body, _ = _run(n, "/two?mode=replace")
    assert status == 418 and json.loads(body)["boom"] == "replaced"


def test_light_context_manager_recognised_here():
    # this Python's contextlib is the one _GenCM reproduces (else routes fall
    # back to asynccontextmanager(call), tested below)
    assert native_runner._GEN_CM is not None


@pytest.mark.parametrize("url", ["/two", "/two?mode=raise", "/two?mode=swallow", "/no-yield",
                                 "/twice", "/teardown?mode=boom", "/nested-boom?mode=inner"])
def test_without_light_context_manager(monkeypatch, url):
    monkeypatch.setattr(native_runner, "_GEN_CM", None)
    n, a = native_and_asgi_clients(make_app())
    src = {e.display_path: e for e in compile_app(n.app).entries}["/two"].plan.endpoint
    assert "_GenCM" not in src.__celeris_source__ and "async with _acm" in src.__celeris_source__
    assert _run(n, url) == _run(a, url)
