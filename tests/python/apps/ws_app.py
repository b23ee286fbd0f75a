"""A raw ASGI3 application for the WebSocket tests.

WebSocket routes (scope["path"]):
  /echo[?sub=1][&tag=T]  accept (with the first offered subprotocol when sub=1), echo every
                         message back as it came (text/bytes); records the disconnect under T
  /scope                 accept, send the scope as JSON text, close 1000
  /headers               accept with extra response headers
  /close?code=N&reason=R accept, wait for one message, close with N/R; record what receive() gives
  /close-before-accept   websocket.close before accept -> 403
  /deny                  websocket.http.response.start 401 + body in two parts
  /deny-bad-status       websocket.http.response.start with status 700 (RuntimeError recorded)
  /raise                 raise before accepting -> 500
  /raise-after           accept, then raise (the connection drops)
  /return                accept, then return without closing (the connection drops)
  /no-accept             return without any handshake message -> 500
  /misuse?tag=T          accept, then send http.response.start (RuntimeError recorded)
  /after-close?tag=T     accept, close, send again (RuntimeError recorded)
  /stall?tag=T           accept; wait for a "go" on /go?tag=T before receiving (backpressure);
                         then count messages until disconnect
  /server-send?n=N&size=S  accept, send N binary messages of S bytes, close
  /burst?n=N             accept, send texts "0".."N-1" back to back, close 1000
  /flood?tag=T&n=N&size=S  accept, send N binary messages of S bytes (byte i % 256), recording
                         i under T after each send returned; close 1000
  /mapping-send          accept, send messages that are Mappings but not dicts, close 1000
  /timeout-receive?tag=T accept; receive() under asyncio.wait_for(0.05 s), recording "timeout"
                         once it expired, and echo texts until disconnect (recorded)
HTTP routes:
  /record?tag=T          the JSON list recorded under T
  /go?tag=T              release /stall
  /count?tag=T           connections seen by /stall under T (JSON)
"""
import asyncio
import json
from collections.abc import Mapping

from asgi_common import jsonable, lifespan_ok, query

RECORD: dict[str, list] = {}
GO: dict[str, asyncio.Event] = {}


def _event(name):
    ev = GO.get(name)
    if ev is None:
        ev = GO[name] = asyncio.Event()
    return ev


async def http_app(scope, receive, send):
    q = query(scope)
    path = scope["path"]
    if path == "/record":
        body = json.dumps(jsonable(RECORD.get(q.get("tag", ""), []))).encode()
    elif path == "/go":
        _event(q["tag"]).set()
        body = b"ok"
    else:
        body = b"not found"
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan_ok(receive, send)
    if scope["type"] == "http":
        return await http_app(scope, receive, send)
    assert scope["type"] == "websocket"
    path = scope["path"]
    q = query(scope)
    rec = RECORD.setdefault(q.get("tag", ""), [])
    msg = await receive()
    assert msg == {"type": "websocket.connect"}, msg

    if path == "/echo":
        sub = scope["subprotocols"][0] if q.get("sub") and scope["subprotocols"] else None
        await send({"type": "websocket.accept", "subprotocol": sub})
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                rec.append(msg)
                return
            out = {"type": "websocket.send"}
            if msg.get("text") is not None:
                out["text"] = msg["text"]
            else:
                out["bytes"] = msg["bytes"]
            await send(out)
    elif path == "/scope":
        await send({"type": "websocket.accept"})
        s = dict(scope)
        await send({"type": "websocket.send", "text": json.dumps(jsonable(s))})
        await send({"type": "websocket.close", "code": 1000})
    elif path == "/headers":
        await send({"type": "websocket.accept", "headers": [(b"x-extra", b"yes"), (b"Set-Cookie", b"a=b")]})
        await send({"type": "websocket.close"})
    elif path == "/close":
        await send({"type": "websocket.accept"})
        rec.append(await receive())
        await send({"type": "websocket.close", "code": int(q.get("code", 1000)),
                    "reason": q.get("reason", "")})
        rec.append(await receive())
    elif path == "/close-before-accept":
        await send({"type": "websocket.close"})
        rec.append(await receive())
    elif path == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401,
                    "headers": [(b"x-denied", b"1")]})
        await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"entry"})
        rec.append(await receive())
    elif path == "/deny-bad-status":
        try:
            await send({"type": "websocket.http.response.start", "status": 700, "headers": []})
        except RuntimeError as exc:
            rec.append(str(exc))
        await send({"type": "websocket.close"})
    elif path == "/raise":
        raise ValueError("boom before accept")
    elif path == "/raise-after":
        await send({"type": "websocket.accept"})
        raise ValueError("boom after accept")
    elif path == "/return":
        await send({"type": "websocket.accept"})
    elif path == "/no-accept":
        return
    elif path == "/misuse":
        await send({"type": "websocket.accept"})
        try:
            await send({"type": "http.response.start", "status": 200})
        except RuntimeError as exc:
            rec.append(str(exc))
        await send({"type": "websocket.close"})
    elif path == "/after-close":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})
        try:
            await send({"type": "websocket.send", "text": "late"})
        except RuntimeError as exc:
            rec.append(str(exc))
        except OSError as exc:
            rec.append("disconnected: " + type(exc).__name__)
    elif path == "/stall":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "stalling"})
        await _event(q["tag"]).wait()
        n = 0
        while True:
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                rec.append({"messages": n, "code": msg["code"]})
                return
            n += 1
            if n == int(q.get("reply_after", 0) or -1):
                await send({"type": "websocket.send", "text": f"got {n}"})
    elif path == "/server-send":
        await send({"type": "websocket.accept"})
        size = int(q.get("size", 10))
        for i in range(int(q.get("n", 1))):
            await send({"type": "websocket.send", "bytes": bytes([i % 256]) * size})
        await send({"type": "websocket.close", "code": 1000})
    elif path == "/burst":
        await send({"type": "websocket.accept"})
        for i in range(int(q["n"])):
            await send({"type": "websocket.send", "text": str(i)})
        await send({"type": "websocket.close", "code": 1000})
    elif path == "/flood":
        await send({"type": "websocket.accept"})
        size = int(q["size"])
        for i in range(int(q["n"])):
            await send({"type": "websocket.send", "bytes": bytes([i % 256]) * size})
            rec.append(i)
        await send({"type": "websocket.close", "code": 1000})
    elif path == "/mapping-send":
        from types import MappingProxyType

        await send(MappingProxyType({"type": "websocket.accept"}))
        await send(MappingProxyType({"type": "websocket.send", "text": "proxy"}))
        await send(_Message(type="websocket.send", bytes=b"mapping"))
        await send(_Message(type="websocket.close", code=1000))
    elif path == "/timeout-receive":
        await send({"type": "websocket.accept"})
        timed_out = False
        while True:
            try:
                msg = await asyncio.wait_for(receive(), 0.05)
            except asyncio.TimeoutError:
                if not timed_out:
                    timed_out = True
                    rec.append("timeout")
                continue
            if msg["type"] == "websocket.disconnect":
                rec.append(msg)
                return
            await send({"type": "websocket.send", "text": msg["text"]})
    else:
        await send({"type": "websocket.close"})


class _Message(Mapping):
    """An ASGI message that is a Mapping but not a dict."""

    def __init__(self, **items):
        self._items = items

    def __getitem__(self, key):
        return self._items[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self):
        return len(self._items)
