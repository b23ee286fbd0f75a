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
