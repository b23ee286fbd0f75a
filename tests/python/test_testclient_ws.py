"""TestClient.websocket_connect through the C core: the same tests run with
Starlette's stock TestClient and with Celeris's, which must agree (the
stock one is the reference); plus checks that the session really went
through the core."""
import pytest
from fastapi import Depends, FastAPI, WebSocket, WebSocketDisconnect
from starlette import testclient as st_testclient
from starlette.websockets import WebSocketState

from celeris import testclient as cel_testclient

CLIENTS = {"stock": st_testclient.TestClient, "celeris": cel_testclient.TestClient}


def make_app():
    app = FastAPI()
    app.state.log = []

    def dep(websocket: WebSocket):
        return websocket.query_params.get("who", "anon")

    @app.websocket("/echo/{room}")
    async def echo(websocket: WebSocket, room: str, who: str = Depends(dep)):
        await websocket.accept(subprotocol=(websocket.scope["subprotocols"] or [None])[0],
                               headers=[(b"x-room", room.encode())])
        await websocket.send_json({"room": room, "who": who})
        try:
            while True:
                msg = await websocket.receive()
                if msg["type"] == "websocket.disconnect":
                    # reason: "" through the core (as over a socket), None from
                    # Starlette's client when close() got none
                    app.state.log.append(("disconnect", msg["code"], msg.get("reason") or ""))
                    return
                if msg.get("text") is not None:
                    await websocket.send_text(msg["text"].upper())
                else:
                    await websocket.send_bytes(msg["bytes"][::-1])
        finally:
            assert websocket.client_state in (WebSocketState.CONNECTED, WebSocketState.DISCONNECTED)

    @app.websocket("/receive-text")
    async def receive_text(websocket: WebSocket):
        await websocket.accept()
        await websocket.receive_text()

    @app.websocket("/close-early")
    async def close_early(websocket: WebSocket):
        await websocket.close(code=4003, reason="not allowed")

    @app.websocket("/server-closes")
    async def server_closes(websocket: WebSocket):
        await websocket.accept()
        await websocket.send_text("bye")
        await websocket.close(code=4000, reason="done")

    @app.websocket("/deny")
    async def deny(websocket: WebSocket):
        from starlette.responses import PlainTextResponse
        await websocket.send_denial_response(PlainTextResponse("go away", status_code=418))

    @app.websocket("/boom")
    async def boom(websocket: WebSocket):
        raise RuntimeError("boom")

    @app.websocket("/boom-after")
    async def boom_after(websocket: WebSocket):
        await websocket.accept()
        await websocket.receive_text()
        raise ValueError("boom after")

    @app.websocket("/scope")
    async def scope(websocket: WebSocket):
        await websocket.accept()
        s = websocket.scope
        await websocket.send_json({"type": s["type"], "path": s["path"], "query": s["query_string"].decode(),
                                   "scheme": s["scheme"], "subprotocols": s["subprotocols"],
                                   "root_path": s["root_path"], "client": list(s["client"])})
        await websocket.close()

    return app


@pytest.fixture(params=["stock", "celeris"])
def client(request):
    app = make_app()
    with CLIENTS[request.param](app) as c:
        c.kind = request.param
        yield c


def test_echo_session(client):
    before = dict(cel_testclient.stats)
    with client.websocket_connect("/echo/lobby?who=ann", subprotocols=["p1", "p2"]) as ws:
        assert ws.accepted_subprotocol == "p1"
        assert ws.receive_json() == {"room": "lobby", "who": "ann"}
        ws.send_text("hello")
        assert ws.receive_text() == "HELLO"
        ws.send_bytes(b"abc")
        assert ws.receive_bytes() == b"cba"
        ws.send_json({"k": "v"})
        assert ws.receive_text() == '{"K":"V"}'
        big = "x" * 100000
        ws.send_text(big)
        assert ws.receive_text() == big.upper()
        assert dict(ws.extra_headers or [])[b"x-room"] == b"lobby"
    if client.kind == "celeris":
        assert cel_testclient.stats["websocket"] == before["websocket"] + 1
        assert cel_testclient.stats["fallback"] == before["fallback"]


def test_client_close_code_reaches_app(client):
    with client.websocket_connect("/echo/r") as ws:
        ws.receive_json()
        ws.close(code=4321)
    assert client.app.state.log[-1] == ("disconnect", 4321, "")


@pytest.mark.parametrize("code", [1000, 1001, 1005, 1006, 1015, 4321])
def test_client_close_code_and_reason_reach_app(client, code):
    """Codes that can't go on the wire (1005/1006/1015) reach the app too, as
    Starlette's TestClient hands them over: the core drops the connection and
    reports the code the client gave."""
    with client.websocket_connect("/echo/r") as ws:
        ws.receive_json()
        ws.close(code=code, reason="bye \u00e9")
    assert client.app.state.log[-1] == ("disconnect", code, "bye \u00e9")


@pytest.mark.parametrize("code", [1000, 1006, 4001])
def test_disconnect_raised_by_receive_text_comes_out(client, code):
    """receive_text() raises WebSocketDisconnect(code); the endpoint lets it
    escape and the TestClient re-raises it when the session ends."""
    with pytest.raises(WebSocketDisconnect) as exc:
        with client.websocket_connect("/receive-text") as ws:
            ws.close(code=code)
    assert exc.value.code == code


def test_close_before_accept(client):
    with pytest.raises(WebSocketDisconnect) as exc:
        with client.websocket_connect("/close-early"):
            pass
    assert exc.value.code == 4003
    assert exc.value.reason == "not allowed"


def test_server_closes(client):
    with client.websocket_connect("/server-closes") as ws:
        assert ws.receive_text() == "bye"
        with pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_text()
        assert exc.value.code == 4000 and exc.value.reason == "done"


def test_denial_response(client):
    with pytest.raises(st_testclient.WebSocketDenialResponse) as exc:
        with client.websocket_connect("/deny"):
            pass
    assert exc.value.status_code == 418
    assert exc.value.content == b"go away"


def test_app_exception_propagates(client):
    with pytest.raises(RuntimeError, match="boom"):
        with client.websocket_connect("/boom"):
            pass
    with pytest.raises(ValueError, match="boom after"):
        with client.websocket_connect("/boom-after") as ws:
            ws.send_text("go")
            ws.receive_text()


def test_unknown_route(client):
    with pytest.raises(WebSocketDisconnect) as exc:
        with client.websocket_connect("/nope"):
            pass
    assert exc.value.code == 1000


def test_scope(client):
    with client.websocket_connect("/scope?a=1", subprotocols=["x"]) as ws:
        s = ws.receive_json()
    assert s == {"type": "websocket", "path": "/scope", "query": "a=1", "scheme": "ws",
                 "subprotocols": ["x"], "root_path": "", "client": ["testclient", 50000]}


def test_dropped_close_reason_cut_like_a_close_frame():
    """The core keeps at most 123 bytes of reason (what a close frame holds),
    cut on a character boundary: a close(1006) with a longer reason reaches the
    app shortened, never as broken UTF-8."""
    app = make_app()
    with cel_testclient.TestClient(app) as c:
        with c.websocket_connect("/echo/r") as ws:
            ws.receive_json()
            ws.close(code=1006, reason="\u00e9" * 70)       # 140 bytes
    assert app.state.log[-1] == ("disconnect", 1006, "\u00e9" * 61)
