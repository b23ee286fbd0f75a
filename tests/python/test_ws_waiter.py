"""A WebSocket receive() that has to wait returns the Cycle's reusable Waiter
(src/binding/waiter.c), not a loop Future: these tests pin the asyncio
semantics the app sees (cancellation, other tasks, contextvars, the
connection ending meanwhile) through real sockets, where the Task is woken
right after the core's poll, and through the TestClient's memory
connections, where it is woken with loop.call_soon.  App:
apps/ws_waiter_app.py.  No test depends on timings: the app says "ready"
when its wait is under way, and the client only sends then."""
import sys

import pytest

from celeris.testclient import TestClient
from conftest import APPS_DIR, _server_fixture
from rawhttp import wait_record
from wsraw import CLOSE, TEXT, RawWS, close_payload, frame

sys.path.insert(0, str(APPS_DIR))
import ws_waiter_app  # noqa: E402

waiter_server = _server_fixture("waiter_server", "ws_waiter_app:app", "--ws-ping-interval", "0")


def ready(ws):
    assert ws.recv_frame() == (True, TEXT, b"ready")


# asyncio.timeout() exists from 3.11: on 3.10 that path is not a case at all
CANCEL_PATHS = ["/wait-for", "/wait-for-coro", "/task-cancel"]
if sys.version_info >= (3, 11):
    CANCEL_PATHS.append("/timeout-cm")
DISCONNECT_1000 = {"type": "websocket.disconnect", "code": 1000, "reason": ""}


@pytest.mark.parametrize("path", CANCEL_PATHS)
def test_cancelled_receive_then_next_message(waiter_server, path):
    """A receive() cancelled while it waits (wait_for timeout on the bare
    awaitable or on a coroutine, asyncio.timeout, Task.cancel) raises in the
    app; the next receive() gets the next message."""
    tag = "c" + path.replace("/", "-")
    with RawWS(waiter_server.addr, f"{path}?tag={tag}") as ws:
        ready(ws)
        ws.send_frame(TEXT, b"after")
        assert ws.recv_frame() == (True, TEXT, b"after")
        ws.close_normally()
    rec = wait_record(waiter_server.addr, tag, 2)
    assert rec[0] in ("timeout", "cancelled")
    assert rec[1] == DISCONNECT_1000


def test_receive_from_other_tasks(waiter_server):
    """receive() awaited directly, through ensure_future, gather and a Task of
    its own created by the app: every message arrives, in order."""
    with RawWS(waiter_server.addr, "/modes?tag=modes") as ws:
        ready(ws)
        for i in range(12):
            ws.send_frame(TEXT, f"m{i}".encode())
            assert ws.recv_frame() == (True, TEXT, f"{i % 4}:m{i}".encode())
        ws.close_normally()
    assert wait_record(waiter_server.addr, "modes", 1) == [DISCONNECT_1000]


def test_many_messages_in_a_row(waiter_server):
    """Many messages in one write: each waiting receive() gets the next, in order."""
    with RawWS(waiter_server.addr, "/many?tag=many") as ws:
        ready(ws)
        ws.send(b"".join(frame(TEXT, f"n{i}".encode()) for i in range(300)))
        for i in range(300):
            assert ws.recv_frame() == (True, TEXT, f"n{i}".encode())
        ws.close_normally()
    assert wait_record(waiter_server.addr, "many", 1) == [DISCONNECT_1000]


def test_many_connections_in_a_row(waiter_server):
    """Messages of several connections in the same loop turn wake each one's Task."""
    socks = [RawWS(waiter_server.addr, f"/many?tag=conns{k}") for k in range(8)]
    try:
        for ws in socks:
            ready(ws)
        for r in range(20):
            for k, ws in enumerate(socks):
                ws.send_frame(TEXT, f"{k}.{r}".encode())
            for k, ws in enumerate(socks):
                assert ws.recv_frame() == (True, TEXT, f"{k}.{r}".encode())
        for ws in socks:
            ws.close_normally()
    finally:
        for ws in socks:
            ws.close()


def test_disconnect_while_waiting(waiter_server):
    with RawWS(waiter_server.addr, "/disconnect?tag=dis-close") as ws:
        ready(ws)
        ws.send_frame(CLOSE, close_payload(4001, b"gone"))
        assert ws.recv_close()[0] == 4001
    assert wait_record(waiter_server.addr, "dis-close", 1) == [
        {"type": "websocket.disconnect", "code": 4001, "reason": "gone"}]


def test_connection_lost_while_waiting(waiter_server):
    with RawWS(waiter_server.addr, "/disconnect?tag=dis-drop") as ws:
        ready(ws)
    assert wait_record(waiter_server.addr, "dis-drop", 1) == [{"type": "websocket.disconnect", "code": 1005}]


def test_app_close_while_a_receive_waits(waiter_server):
    """The app's own websocket.close (from another task) ends a receive()
    waiting meanwhile with the app's code and reason, as uvicorn."""
    with RawWS(waiter_server.addr, "/app-close?tag=appclose") as ws:
        assert ws.recv_close() == (4002, "bye")
        ws.send_frame(CLOSE, close_payload(4002))
    assert wait_record(waiter_server.addr, "appclose", 1) == [
        {"type": "websocket.disconnect", "code": 4002, "reason": "bye"}]


def test_second_receive_while_one_waits(waiter_server):
    with RawWS(waiter_server.addr, "/second-receive?tag=second") as ws:
        ready(ws)
        ws.send_frame(TEXT, b"first")
        assert ws.recv_frame() == (True, TEXT, b"first")
        ws.send_frame(TEXT, b"then")
        assert ws.recv_frame() == (True, TEXT, b"then")
        ws.close_normally()
    assert wait_record(waiter_server.addr, "second", 2) == [
        "receive() called while another receive() is pending", DISCONNECT_1000]


def test_unawaited_receive_loses_nothing(waiter_server):
    """A receive() whose message arrived but that was never awaited hands
    the message to the next receive()."""
    with RawWS(waiter_server.addr, "/unawaited?tag=unaw") as ws:
        ready(ws)
        ws.send_frame(TEXT, b"kept")
        assert ws.recv_frame() == (True, TEXT, b"kept")
        ws.send_frame(TEXT, b"more")
        assert ws.recv_frame() == (True, TEXT, b"more")
        ws.close_normally()
    assert wait_record(waiter_server.addr, "unaw", 2) == ["unawaited", DISCONNECT_1000]


def test_contextvars_survive_the_wait(waiter_server):
    with RawWS(waiter_server.addr, "/contextvar?tag=ctx") as ws:
        ready(ws)
        for i in range(5):
            ws.send_frame(TEXT, b"x")
            assert ws.recv_frame() == (True, TEXT, f"v{i}:x".encode())
        ws.close_normally()


# ---- the same through the TestClient (memory connections: woken with call_soon) ----

@pytest.fixture
def client():
    with TestClient(ws_waiter_app.app) as c:
        yield c


@pytest.mark.parametrize("path", CANCEL_PATHS)
def test_testclient_cancelled_receive_then_next_message(client, path):
    tag = "tc" + path.replace("/", "-")
    with client.websocket_connect(f"{path}?tag={tag}") as ws:
        assert ws.receive_text() == "ready"
        ws.send_text("after")
        assert ws.receive_text() == "after"
    assert ws_waiter_app.RECORD[tag][0] in ("timeout", "cancelled")


def test_testclient_modes_many_and_contextvars(client):
    with client.websocket_connect("/modes?tag=tcmodes") as ws:
        assert ws.receive_text() == "ready"
        for i in range(8):
            ws.send_text(f"m{i}")
            assert ws.receive_text() == f"{i % 4}:m{i}"
    with client.websocket_connect("/contextvar?tag=tcctx") as ws:
        assert ws.receive_text() == "ready"
        for i in range(3):
            ws.send_text("x")
            assert ws.receive_text() == f"v{i}:x"
    with client.websocket_connect("/second-receive?tag=tcsecond") as ws:
        assert ws.receive_text() == "ready"
        ws.send_text("first")
        assert ws.receive_text() == "first"
    assert ws_waiter_app.RECORD["tcsecond"][0] == "receive() called while another receive() is pending"



def test_waiter_attributes_as_the_generic_lookup_gives_them():
    """wt_getattro/wt_setattro answer the names an asyncio Task uses per await
    from fast paths; what they return must be what the type's own
    descriptors give, and the waiter must still go with its last reference
    (the bound methods it keeps are dropped when its Cycle is cleared)."""
    import gc

    from fastapi import FastAPI, WebSocket

    app = FastAPI()
    seen = {}

    @app.websocket("/w")
    async def w(websocket: WebSocket):
        await websocket.accept()
        waiter = websocket._receive()
        tp = type(waiter)
        if tp.__name__ != "Waiter":       # a message was already queued
            seen["skip"] = True
            return
        for name in ("result", "add_done_callback", "get_loop"):
            got = getattr(waiter, name)
            ref = tp.__dict__[name].__get__(waiter, tp)
            seen[name] = (got.__self__ is waiter, got.__name__ == ref.__name__,
                          getattr(waiter, name) is got)
        seen["loop"] = waiter.get_loop() is __import__("asyncio").get_running_loop()
        seen["blocking0"] = waiter._asyncio_future_blocking
        waiter._asyncio_future_blocking = True
        seen["blocking1"] = waiter._asyncio_future_blocking
        waiter._asyncio_future_blocking = False
        seen["blocking2"] = waiter._asyncio_future_blocking
        try:
            waiter.nope
        except AttributeError as exc:
            seen["missing"] = str(exc)
        try:
            waiter.nope = 1
        except AttributeError as exc:
            seen["set_missing"] = type(exc).__name__
        waiter._asyncio_future_blocking = True
        del waiter._asyncio_future_blocking      # the getset's setter with NULL: cleared
        seen["del"] = waiter._asyncio_future_blocking
        seen["done"] = waiter.done()
        msg = await waiter
        seen["msg"] = msg["text"]
        await websocket.close()

    gc.collect()
    gc.disable()
    try:
        with TestClient(app) as c:
            with c.websocket_connect("/w") as ws:
                ws.send_text("hi")
        leftover = [o for o in gc.get_objects() if type(o).__name__ == "Waiter"]
    finally:
        gc.enable()
    assert "skip" not in seen
    for name in ("result", "add_done_callback", "get_loop"):
        assert seen[name] == (True, True, True), name
    assert seen["loop"] is True
    assert (seen["blocking0"], seen["blocking1"], seen["blocking2"]) == (None, True, None)
    assert "Waiter' object has no attribute 'nope'" in seen["missing"]
    assert seen["set_missing"] == "AttributeError"
    assert seen["del"] is None
    assert seen["done"] is False and seen["msg"] == "hi"
    assert leftover == []
