"""Text messages reach the app as the str the client sent and go back out as
the same bytes: ASCII payloads take websocket.c's copy path, anything else
UTF-8 decoding; the app's send() recognises "websocket.send" however the str
was made.  Through the TestClient, i.e. the same C frame parser and
dispatcher as the server."""
from fastapi import FastAPI, WebSocket

from celeris.testclient import TestClient

app = FastAPI()


@app.websocket("/echo")
async def echo(websocket: WebSocket):
    await websocket.accept()
    while True:
        msg = await websocket.receive_text()
        if msg == "bye":
            break
        assert type(msg) is str
        await websocket.send_text(msg)
    await websocket.close()


@app.websocket("/types")
async def types(websocket: WebSocket):
    class S(str):
        pass

    await websocket.accept()
    # the ASGI send with "websocket.send" built at run time and as a str subclass
    await websocket._send({"type": "".join(["websocket.", "send"]), "text": "joined"})
    await websocket._send({"type": S("websocket.send"), "text": "subclass"})
    await websocket._send({"type": "websocket.send", "bytes": b"\x00\xff"})
    # both keys: bytes wins unless None (as uvicorn); dict subclasses take the general path
    await websocket._send({"type": "websocket.send", "bytes": b"B", "text": "T"})
    await websocket._send({"type": "websocket.send", "text": "T2", "bytes": None})
    await websocket._send({"type": "websocket.send", "bytes": None, "text": "T3"})
    await websocket._send(type("D", (dict,), {})({"type": "websocket.send", "text": "T4"}))
    await websocket._send({"type": "websocket.send", "text": "é€😀"})
    await websocket.close()


def _cases():
    for n in range(0, 25):
        yield "a" * n
        for ch in ("\x7f", "é", "€", "😀"):
            for pos in range(n):
                yield "a" * pos + ch + "a" * (n - pos - 1)


def test_text_round_trip_every_length_and_position():
    with TestClient(app) as client:
        with client.websocket_connect("/echo") as ws:
            count = 0
            for text in _cases():
                ws.send_text(text)
                got = ws.receive_text()
                assert got == text and len(got) == len(text), repr(text)
                count += 1
            ws.send_text("bye")
    assert count > 1000


def test_send_type_strings():
    with TestClient(app) as client:
        with client.websocket_connect("/types") as ws:
            assert ws.receive_text() == "joined"
            assert ws.receive_text() == "subclass"
            assert ws.receive_bytes() == b"\x00\xff"
            assert ws.receive_bytes() == b"B"
            assert ws.receive_text() == "T2"
            assert ws.receive_text() == "T3"
            assert ws.receive_text() == "T4"
            assert ws.receive_text() == "é€😀"
