"""celeris.native.http_middleware.FastHTTPMiddleware against Starlette's own
BaseHTTPMiddleware.__call__: the same dispatch functions around the same
inner ASGI apps, run once through each; what reaches the server's send, the
order of side effects (dispatch, inner app, background work), what the inner
app's receive() returns, and the exception that comes out (type, text,
__cause__, __suppress_context__) must be the same.  The native tier's use of
it (stack mode) is covered by test_native_http_middleware.py."""
from __future__ import annotations

import asyncio
import contextvars

import pytest
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import PlainTextResponse, Response

from celeris.native import http_middleware as hm

VAR: contextvars.ContextVar = contextvars.ContextVar("VAR", default="unset")


def test_the_installed_starlette_is_known():
    """The suite below compares the flavour of the installed Starlette; a
    Starlette whose BaseHTTPMiddleware source is not in _KNOWN (a new
    release) fails here until someone has read its source and added it."""
    assert hm.source_digest() in hm._KNOWN
    assert hm.flavour() == hm._KNOWN[hm.source_digest()][1]


def test_unknown_starlette_keeps_its_own_class(monkeypatch):
    """For a BaseHTTPMiddleware source it does not know, stack mode runs
    Starlette's own __call__ around the native call."""
    from fastapi import FastAPI

    from celeris import testclient as tc
    from celeris.native import middleware

    app = FastAPI()

    @app.middleware("http")
    async def mark(request, call_next):
        response = await call_next(request)
        response.headers["x-mw"] = "1"
        return response

    @app.get("/")
    async def root():
        return {"ok": 1}

    monkeypatch.setitem(hm._known_cache, "flavour", 0)
    calls = []
    orig = BaseHTTPMiddleware.__call__

    async def spy(self, scope, receive, send):
        calls.append(1)
        await orig(self, scope, receive, send)

    monkeypatch.setattr(BaseHTTPMiddleware, "__call__", spy)
    # the class check compares __call__ with BaseHTTPMiddleware's own: the spy is it now
    assert middleware._is_base_http(BaseHTTPMiddleware)
    before = tc.stats["native"]
    r = tc.TestClient(app).get("/")
    assert (r.status_code, r.json(), r.headers["x-mw"]) == (200, {"ok": 1}, "1")
    assert tc.stats["native"] == before + 1 and calls == [1]


# ---- inner apps: each records into ev ----

def _start(status=200, headers=((b"content-type", b"text/plain"),)):
    return {"type": "http.response.start", "status": status, "headers": list(headers)}


async def inner_ok(scope, receive, send, ev):
    ev.append(f"inner sees {VAR.get()}")
    VAR.set("inner")
    await send(_start())
    await send({"type": "http.response.body", "body": b"hello"})
    ev.append("inner after body")


async def inner_stream(scope, receive, send, ev):
    await send(_start(201, [(b"x-a", b"1")]))
    for i in range(3):
        await send({"type": "http.response.body", "body": b"chunk%d " % i, "more_body": True})
        ev.append(f"sent {i}")
    await send({"type": "http.response.body", "body": b"", "more_body": False})
    ev.append("inner done")


async def inner_raise_before(scope, receive, send, ev):
    ev.append("inner raising")
    try:
        raise KeyError("cause")
    except KeyError as e:
        raise ValueError("inner failed") from e


async def inner_raise_plain(scope, receive, send, ev):
    try:
        {}["x"]
    except KeyError:
        raise ValueError("with context")


async def inner_raise_after_start(scope, receive, send, ev):
    await send(_start())
    ev.append("started")
    raise RuntimeError("after start")


async def inner_raise_after_body(scope, receive, send, ev):
    await send(_start())
    await send({"type": "http.response.body", "body": b"done"})
    ev.append("background failing")
    raise RuntimeError("in background")


async def inner_no_response(scope, receive, send, ev):
    ev.append("inner returns")


async def inner_debug_hint(scope, receive, send, ev):
    await send({"type": "http.response.debug", "info": {"template": "t"}})
    await send({"type": "http.response.early_hint", "links": ["</a.css>; rel=preload"]})
    await send(_start())
    await send({"type": "http.response.body", "body": b"x"})


async def inner_pathsend(scope, receive, send, ev):
    await send(_start())
    await send({"type": "http.response.pathsend", "path": "/tmp/file"})
    ev.append("after pathsend")


async def inner_echo_body(scope, receive, send, ev):
    chunks = []
    while True:
        m = await receive()
        ev.append(("inner got", m["type"], m.get("body"), m.get("more_body")))
        if m["type"] != "http.request":
            break
        chunks.append(m.get("body", b""))
        if not m.get("more_body"):
            break
    await send(_start())
    await send({"type": "http.response.body", "body": b"|".join(chunks)})


async def inner_receive_after_response(scope, receive, send, ev):
    await send(_start())
    await send({"type": "http.response.body", "body": b"r"})
    m = await receive()
    ev.append(("late receive", m))


async def inner_background(scope, receive, send, ev):
    await send(_start())
    await send({"type": "http.response.body", "body": b"bg"})
    ev.append("background ran")


INNER = {f.__name__: f for f in (inner_ok, inner_stream, inner_raise_before, inner_raise_plain,
                                  inner_raise_after_start, inner_raise_after_body, inner_no_response,
                                  inner_debug_hint, inner_pathsend, inner_echo_body,
                                  inner_receive_after_response, inner_background)}


# ---- dispatch functions ----

async def d_pass(request, call_next, ev):
    VAR.set("dispatch")
    ev.append("dispatch before")
    r = await call_next(request)
    ev.append(f"dispatch after {VAR.get()}")
    return r


async def d_header(request, call_next, ev):
    r = await call_next(request)
    r.headers["x-mw"] = "1"
    r.set_cookie("c", "v")
    r.status_code = 202
    return r


async def d_replace(request, call_next, ev):
    await call_next(request)
    ev.append("replacing")
    return PlainTextResponse("replaced", status_code=203)


async def d_consume(request, call_next, ev):
    r = await call_next(request)
    body = b""
    async for chunk in r.body_iterator:
        body += chunk if isinstance(chunk, bytes) else repr(chunk).encode()
        ev.append(("chunk", chunk))
    return Response(body.upper(), status_code=r.status_code, headers={"x-len": str(len(body))})


async def d_own(request, call_next, ev):
    return PlainTextResponse("own answer")


async def d_raise_before(request, call_next, ev):
    raise RuntimeError("dispatch failed")


async def d_raise_after(request, call_next, ev):
    await call_next(request)
    try:
        raise OSError("ctx")
    except OSError:
        raise LookupError("dispatch failed after")


async def d_catch(request, call_next, ev):
    try:
        return await call_next(request)
    except Exception as exc:
        ev.append(("caught", type(exc).__name__, str(exc), type(exc.__cause__).__name__))
        return PlainTextResponse("caught", status_code=500)


async def d_read_body(request, call_next, ev):
    ev.append(("dispatch body", await request.body()))
    return await call_next(request)


async def d_stream_part(request, call_next, ev):
    async for chunk in request.stream():
        ev.append(("dispatch chunk", chunk))
        break
    return await call_next(request)


async def d_twice(request, call_next, ev):
    first = await call_next(request)
    ev.append(("first", first.status_code))
    second = await call_next(request)
    ev.append(("second", second.status_code))
    return second


DISPATCH = {f.__name__: f for f in (d_pass, d_header, d_replace, d_consume, d_own, d_raise_before,
                                     d_raise_after, d_catch, d_read_body, d_stream_part, d_twice)}


# ---- running one request through either implementation ----

def _scope():
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
            "scheme": "http", "path": "/p", "raw_path": b"/p", "query_string": b"", "root_path": "",
            "headers": [(b"host", b"t")], "client": ("1.2.3.4", 5), "server": ("t", 80), "state": {}}


async def _one(kind: str, inner_name: str, dispatch_name: str, body_parts) -> tuple:
    ev: list = []
    sent: list = []
    parts = list(body_parts)
    forever = asyncio.Event()

    async def receive():
        if parts:
            body, more = parts.pop(0)
            return {"type": "http.request", "body": body, "more_body": more}
        await forever.wait()

    async def send(message):
        sent.append(message)

    inner = INNER[inner_name]
    dispatch = DISPATCH[dispatch_name]

    async def app(scope, receive, send):
        await inner(scope, receive, send, ev)

    async def d(request, call_next):
        return await dispatch(request, call_next, ev)

    mw = BaseHTTPMiddleware(app, dispatch=d)
    runner = mw if kind == "starlette" else hm.FastHTTPMiddleware(mw)
    outcome = None
    VAR.set("outer")
    try:
        await asyncio.wait_for(runner(_scope(), receive, send), 5)
    except BaseException as exc:      # noqa: BLE001 -- compared below
        outcome = (type(exc).__name__, str(exc), type(exc.__cause__).__name__, exc.__suppress_context__)
    ev.append(f"outer var {VAR.get()}")
    await asyncio.sleep(0)
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    return _plain(sent), ev, outcome, len(leftover)


def _plain(messages):
    out = []
    for m in messages:
        m = dict(m)
        if "headers" in m:
            m["headers"] = [(bytes(k), bytes(v)) for k, v in m["headers"]]
        out.append(m)
    return out


def _both(inner, dispatch, body_parts=((b"", False),)):
    got = asyncio.run(_one("fast", inner, dispatch, body_parts))
    want = asyncio.run(_one("starlette", inner, dispatch, body_parts))
    return got, want


@pytest.mark.parametrize("dispatch", sorted(DISPATCH))
@pytest.mark.parametrize("inner", sorted(INNER))
def test_same_as_starlette(inner, dispatch):
    got, want = _both(inner, dispatch, [(b"ab", True), (b"cd", False)])
    assert got == want


@pytest.mark.parametrize("dispatch", ["d_pass", "d_read_body", "d_stream_part", "d_consume"])
def test_request_bodies(dispatch):
    for parts in ([(b"", False)], [(b"one", False)], [(b"a", True), (b"b", True), (b"c", False)]):
        got, want = _both("inner_echo_body", dispatch, parts)
        assert got == want


def test_the_fast_path_is_what_ran():
    """A guard for the comparisons above: FastHTTPMiddleware must not hand
    the request to Starlette's __call__."""
    calls = []
    orig = BaseHTTPMiddleware.__call__

    async def spy(self, scope, receive, send):
        calls.append(1)
        await orig(self, scope, receive, send)

    BaseHTTPMiddleware.__call__ = spy
    try:
        got = asyncio.run(_one("fast", "inner_ok", "d_header", [(b"", False)]))
    finally:
        BaseHTTPMiddleware.__call__ = orig
    assert calls == [] and got[0][0]["status"] == 202


def test_channel_rules():
    """_Channel: rendezvous, EndOfStream after the send side closes,
    BrokenResourceError for a waiting sender when the receive side closes,
    ClosedResourceError for a send after close (anyio's memory stream)."""
    from anyio import BrokenResourceError, ClosedResourceError, EndOfStream

    async def main():
        ch = hm._Channel(asyncio.get_running_loop())
        order = []

        async def producer():
            await ch.send(1)
            order.append("sent 1")
            await ch.send(2)
            order.append("sent 2")

        t = asyncio.ensure_future(producer())
        await asyncio.sleep(0)
        assert order == []                      # nobody took 1 yet
        assert await ch.receive() == 1
        await asyncio.sleep(0)
        assert order == ["sent 1"]
        ch.close_receive()
        with pytest.raises(BrokenResourceError):
            await t
        with pytest.raises(BrokenResourceError):
            await ch.send(3)
        ch2 = hm._Channel(asyncio.get_running_loop())
        r = asyncio.ensure_future(ch2.receive())
        await asyncio.sleep(0)
        ch2.close_send()
        with pytest.raises(EndOfStream):
            await r
        with pytest.raises(ClosedResourceError):
            await ch2.send(1)
        with pytest.raises(EndOfStream):
            await ch2.receive()
        ch2.close_receive()
        with pytest.raises(ClosedResourceError):
            await ch2.receive()
        # a cancelled receiver leaves no trace: the next send waits for a new one
        ch3 = hm._Channel(asyncio.get_running_loop())
        r = asyncio.ensure_future(ch3.receive())
        await asyncio.sleep(0)
        r.cancel()
        await asyncio.gather(r, return_exceptions=True)
        s = asyncio.ensure_future(ch3.send("x"))
        await asyncio.sleep(0)
        assert not s.done()
        assert await ch3.receive() == "x"
        await s

    asyncio.run(main())


def test_cancellation_of_the_request_cancels_the_inner_app():
    """The server cancelling the request (shutdown) while the inner app runs:
    CancelledError comes out of both, the inner app saw it, no task is left."""
    async def run(kind):
        ev = []
        started = asyncio.Event()

        async def app(scope, receive, send):
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                ev.append("inner cancelled")
                raise

        async def d(request, call_next):
            try:
                return await call_next(request)
            finally:
                ev.append("dispatch unwound")

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m):
            pass

        mw = BaseHTTPMiddleware(app, dispatch=d)
        runner = mw if kind == "starlette" else hm.FastHTTPMiddleware(mw)
        t = asyncio.ensure_future(runner(_scope(), receive, send))
        await started.wait()
        t.cancel()
        res = await asyncio.gather(t, return_exceptions=True)
        await asyncio.sleep(0)
        left = [x for x in asyncio.all_tasks() if x is not asyncio.current_task()]
        return type(res[0]).__name__, ev, len(left)

    assert asyncio.run(run("fast")) == asyncio.run(run("starlette"))
