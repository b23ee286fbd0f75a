"""celeris.native.ws_session: the WebSocket subclass native-tier sessions hand
the endpoint must behave exactly as Starlette's WebSocket.

Every overridden method is run on both classes from every combination of
client and application state, with every kind of message the ASGI receive
may deliver (and a send that fails with OSError or another error), and
everything observable is compared: the return value, the exception (type,
args, code/reason, __context__ and __cause__ types), both states afterwards
and the messages passed to the ASGI send/receive callables."""
import asyncio
import itertools

import pytest
from starlette import websockets as sw

from celeris.native import ws_session

State = sw.WebSocketState
STATES = list(State)

INCOMING = [
    {"type": "websocket.connect"},
    {"type": "websocket.receive", "text": "hé"},
    {"type": "websocket.receive", "bytes": b"\x00\xff"},
    {"type": "websocket.receive", "text": None, "bytes": b"b"},
    {"type": "websocket.disconnect", "code": 1001, "reason": "bye"},
    {"type": "websocket.disconnect", "code": 1006},
    {"type": "websocket.send", "text": "x"},
    {"type": "websocket.close"},
    {},
]

OUTGOING = [
    {"type": "websocket.accept", "subprotocol": None, "headers": []},
    {"type": "websocket.send", "text": "t"},
    {"type": "websocket.send", "bytes": b"b"},
    {"type": "websocket.close", "code": 1000, "reason": ""},
    {"type": "websocket.http.response.start", "status": 403, "headers": []},
    {"type": "websocket.http.response.body", "body": b"no", "more_body": True},
    {"type": "websocket.http.response.body", "body": b"no"},
    {"type": "websocket.receive", "text": "x"},
    {},
]

SEND_FAILS = [None, OSError("reset"), ValueError("other")]


def _cls():
    cls = ws_session.session_class()
    assert cls is not sw.WebSocket, "the installed Starlette is not one ws_session knows"
    assert issubclass(cls, sw.WebSocket)
    return cls


def _describe_exc(exc):
    if exc is None:
        return None
    return (type(exc), exc.args, getattr(exc, "code", None), getattr(exc, "reason", None),
            type(exc.__context__), type(exc.__cause__), exc.__suppress_context__)


def _run(cls, client_state, app_state, method, arg, incoming, send_fails):
    log = []

    async def receive():
        log.append("receive")
        return dict(incoming)

    async def send(message):
        log.append(("send", message))
        if send_fails is not None:
            raise send_fails

    scope = {"type": "websocket", "path": "/", "headers": [], "query_string": b""}
    ws = cls(scope, receive, send)
    ws.client_state, ws.application_state = client_state, app_state

    async def go():
        fn = getattr(ws, method)
        return await (fn(arg) if arg is not _NO_ARG else fn())

    result = exc = None
    try:
        result = asyncio.run(go())
    except BaseException as e:       # noqa: BLE001 - compared, not swallowed
        exc = e
    return result, _describe_exc(exc), ws.client_state, ws.application_state, log


_NO_ARG = object()


def _cases():
    for cs, aps in itertools.product(STATES, STATES):
        for inc in INCOMING:
            for m in ("receive", "receive_text", "receive_bytes", "receive_json"):
                yield cs, aps, m, _NO_ARG, inc, None
        for fails in SEND_FAILS:
            for out in OUTGOING:
                yield cs, aps, "send", out, INCOMING[1], fails
            yield cs, aps, "send_text", "hé", INCOMING[1], fails
            yield cs, aps, "send_bytes", b"\x01", INCOMING[1], fails
            yield cs, aps, "send_json", {"a": 1}, INCOMING[1], fails
            yield cs, aps, "close", 1001, INCOMING[1], fails
            yield cs, aps, "accept", _NO_ARG, INCOMING[0], fails


CASES = list(_cases())


def test_known_starlette_gets_the_subclass():
    _cls()


METHODS = sorted({c[2] for c in CASES})


@pytest.mark.parametrize("method", METHODS)
def test_same_as_starlette(method):
    checked = 0
    for cs, aps, m, arg, incoming, fails in CASES:
        if m != method:
            continue
        ours = _run(_cls(), cs, aps, m, arg, incoming, fails)
        theirs = _run(sw.WebSocket, cs, aps, m, arg, incoming, fails)
        assert ours == theirs, (cs, aps, m, arg, incoming, fails)
        checked += 1
    assert checked >= 16


def test_every_case_kind_is_reached():
    # the table above reaches the inlined fast paths and their fall-backs
    outcomes = set()
    for cs, aps, method, arg, incoming, fails in CASES:
        _, exc, *_ = _run(sw.WebSocket, cs, aps, method, arg, incoming, fails)
        outcomes.add((method, exc[0] if exc else None))
    for method in ("receive_text", "receive_bytes", "send_text", "send_bytes"):
        kinds = {k for m, k in outcomes if m == method}
        assert None in kinds and len(kinds) >= 3, (method, kinds)


def test_unknown_starlette_source_gets_starlettes_class(monkeypatch):
    monkeypatch.setattr(ws_session, "_cls", [])
    monkeypatch.setattr(ws_session, "_KNOWN", {})
    assert ws_session.session_class() is sw.WebSocket
    monkeypatch.setattr(ws_session, "_cls", [])


def test_native_session_uses_it():
    from fastapi import FastAPI, WebSocket

    from celeris.testclient import TestClient

    app = FastAPI()
    seen = []

    @app.websocket("/ws")
    async def ws(websocket: WebSocket):
        seen.append(type(websocket))
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    with TestClient(app) as client:
        with client.websocket_connect("/ws") as conn:
            conn.send_text("hi")
            assert conn.receive_text() == "hi"
    assert seen == [_cls()]


# ---- the coroutine protocol of the C awaitables (receive_text/bytes, send_text/bytes) ----

def _ws_pair(pending):
    """Both classes' instances, CONNECTED, whose ASGI receive/send return
    `pending()` (an awaitable that suspends until resolved)."""
    out = []
    for cls in (_cls(), sw.WebSocket):
        log = []

        def receive(log=log):
            log.append("receive")
            return pending()

        def send(message, log=log):
            log.append(("send", message))
            return pending()

        ws = cls({"type": "websocket", "path": "/", "headers": [], "query_string": b""},
                 receive, send)
        ws.client_state = ws.application_state = State.CONNECTED
        out.append((ws, log))
    return out


def _outcome(fn):
    try:
        return ("ok", fn())
    except StopIteration as e:
        return ("stop", e.value)
    except BaseException as e:       # noqa: BLE001 - compared
        return ("raise", _describe_exc(e))


class _SuspendBare:
    """An awaitable that yields once (a marker) and then returns its value; no
    throw() or close(): thrown exceptions are raised at the await itself."""

    def __init__(self, value):
        self.value, self.events = value, []

    def __await__(self):
        return self

    def __iter__(self):
        return self

    def __next__(self):
        return self.send(None)

    def send(self, v):
        if not self.events:
            self.events.append("yield")
            return "marker"
        self.events.append("return")
        raise StopIteration(self.value)


class _Suspend(_SuspendBare):
    """_SuspendBare with throw() and close(), recorded."""

    def throw(self, *args):
        self.events.append(("throw", args[0] if isinstance(args[0], type) else type(args[0])))
        if isinstance(args[0], type) and issubclass(args[0], KeyError) or isinstance(args[0], KeyError):
            raise StopIteration({"type": "websocket.receive", "text": "after-throw", "bytes": b"b"})
        raise args[0] if not isinstance(args[0], type) else args[0]()

    def close(self):
        self.events.append("close")


MSG = {"type": "websocket.receive", "text": "t", "bytes": b"b"}

PROTOCOL_SCRIPTS = {
    "step-step": lambda c: [_outcome(lambda: c.send(None)), _outcome(lambda: c.send(None)),
                            _outcome(lambda: c.send(None))],
    "throw-oserror": lambda c: [_outcome(lambda: c.send(None)), _outcome(lambda: c.throw(OSError("x"))),
                                _outcome(lambda: c.send(None))],
    "throw-keyerror-returns": lambda c: [_outcome(lambda: c.send(None)),
                                         _outcome(lambda: c.throw(KeyError))],
    "throw-instance": lambda c: [_outcome(lambda: c.send(None)),
                                 _outcome(lambda: c.throw(ValueError("v")))],
    "close-suspended": lambda c: [_outcome(lambda: c.send(None)), _outcome(c.close),
                                  _outcome(lambda: c.send(None))],
    "close-new": lambda c: [_outcome(c.close), _outcome(lambda: c.send(None))],
    "throw-new": lambda c: [_outcome(lambda: c.throw(RuntimeError("r"))), _outcome(lambda: c.send(None))],
    "send-value-new": lambda c: [_outcome(lambda: c.send(1)), _outcome(lambda: c.send(None))],
    "generatorexit-suspended": lambda c: [_outcome(lambda: c.send(None)),
                                          _outcome(lambda: c.throw(GeneratorExit))],
    "throw-bad-traceback": lambda c: [_outcome(lambda: c.send(None)),
                                      _outcome(lambda: c.throw(ValueError, ValueError("v"), 1)),
                                      _outcome(lambda: c.throw(ValueError("v"), 1))],
    "throw-not-an-exception": lambda c: [_outcome(lambda: c.send(None)), _outcome(lambda: c.throw(1))],
    "throw-oserror-after-done": lambda c: [_outcome(lambda: c.send(None)), _outcome(lambda: c.send(None)),
                                           _outcome(lambda: c.throw(OSError("late")))],
    "throw-oserror-new": lambda c: [_outcome(lambda: c.throw(OSError("early"))),
                                    _outcome(lambda: c.send(None))],
    "bad-traceback-then-step": lambda c: [_outcome(lambda: c.send(None)),
                                          _outcome(lambda: c.throw(OSError, OSError("x"), 5)),
                                          _outcome(lambda: c.send(None))],
    "await-iter": lambda c: [_outcome(lambda: next(c.__await__())), _outcome(lambda: next(c.__await__()))],
}


@pytest.mark.parametrize("script", sorted(PROTOCOL_SCRIPTS))
@pytest.mark.parametrize("method,args", [("receive_text", ()), ("receive_bytes", ()),
                                         ("send_text", ("hé",)), ("send_bytes", (b"\x01",))])
@pytest.mark.parametrize("awaitable", [_Suspend, _SuspendBare])
def test_protocol_same_as_starlette(script, method, args, awaitable):
    results = []
    for ws, log in _ws_pair(lambda: awaitable(dict(MSG))):
        coro = getattr(ws, method)(*args)
        steps = PROTOCOL_SCRIPTS[script](coro)
        results.append((steps, ws.client_state, ws.application_state, log))
    assert results[0] == results[1]


def test_asyncio_runs_them_as_coroutines():
    async def main():
        got = []
        for ws, log in _ws_pair(lambda: asyncio.sleep(0, dict(MSG))):
            t = asyncio.create_task(ws.receive_text())
            got.append(await t)
            got.append(await asyncio.wait_for(ws.receive_bytes(), 5))
            got.append(await asyncio.ensure_future(ws.send_text("x")))
            got.append(await asyncio.gather(ws.send_bytes(b"y"), ws.receive_text()))
        return got

    got = asyncio.run(main())
    assert got[:4] == got[4:]


def test_cancelled_while_waiting():
    async def main():
        out = []
        for ws, log in _ws_pair(lambda: asyncio.get_running_loop().create_future()):
            for call in (ws.receive_text, lambda: ws.send_text("x")):
                t = asyncio.ensure_future(call())
                await asyncio.sleep(0)
                t.cancel()
                try:
                    await t
                except asyncio.CancelledError as e:
                    out.append(("cancelled", e.args))
            out.append((ws.client_state, ws.application_state, len(log)))
            try:
                await asyncio.wait_for(ws.receive_text(), 0.01)
            except asyncio.TimeoutError:
                out.append("timeout")
        return out

    out = asyncio.run(main())
    assert out[:len(out) // 2] == out[len(out) // 2:]


ARG_CALLS = [
    lambda ws: ws.receive_text(1),
    lambda ws: ws.receive_bytes(x=1),
    lambda ws: ws.send_text(),
    lambda ws: ws.send_text("a", "b"),
    lambda ws: ws.send_text("a", data="b"),
    lambda ws: ws.send_bytes(foo=1),
    lambda ws: ws.send_bytes(data=b"ok"),
    lambda ws: type(ws).receive_text(),
    lambda ws: type(ws).send_text(ws),
    lambda ws: type(ws).send_text(ws, data="k"),
    lambda ws: type(ws).send_text(self=ws, data="k"),
    lambda ws: ws.send_text(data="k", self=ws),
    lambda ws: type(ws).receive_text(self=ws),
    lambda ws: type(ws).send_bytes(),
    lambda ws: type(ws).send_bytes(data=b"x"),
    lambda ws: type(ws).receive_bytes(ws, self=ws),
    lambda ws: ws.send_text("a", "b", "c"),
    lambda ws: ws.send_text("a", x=1, data=2),
    lambda ws: ws.send_text(**{"da" + "ta": "joined"}),
]


@pytest.mark.parametrize("i", range(len(ARG_CALLS)))
def test_arguments_same_as_starlette(i):
    results = []
    for ws, log in _ws_pair(lambda: asyncio.sleep(0, dict(MSG))):
        try:
            c = ARG_CALLS[i](ws)
        except TypeError as e:
            results.append(("TypeError", str(e)))
            continue
        results.append(("ok", asyncio.run(_await(c)), log))
    assert results[0] == results[1]


async def _await(c):
    return await c


def test_freed_while_suspended_closes_what_it_awaits():
    import gc

    s = _Suspend(dict(MSG))
    (ws, _), _ = _ws_pair(lambda: s)
    c = ws.receive_text()
    assert c.send(None) == "marker"
    del c
    gc.collect()
    assert s.events == ["yield", "close"]

