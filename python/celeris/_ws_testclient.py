"""TestClient.websocket_connect through the C core.

The session has Starlette's WebSocketTestSession API (send/receive and the
text/bytes/json helpers, close, accepted_subprotocol, extra_headers,
WebSocketDisconnect / WebSocketDenialResponse), but the conversation goes
over an in-memory connection of a core Server: the opening handshake as
HTTP/1.1 bytes, then masked client frames in and the server's frames out,
through the same handshake validation, frame parser, close handshake and
ASGI websocket bridge as a socket.

ASGI details that never reach the wire are taken from the app's own
messages, as Starlette reports them: the headers given to
websocket.accept, and the code/reason of a websocket.close sent before
accepting (the client sees a 403).
"""
from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import json
import os
import struct
from typing import Any

from starlette import testclient as _st
from starlette.websockets import WebSocketDisconnect

from celeris import _celeris
from celeris._http_client import ResponseParser

_HANDSHAKE_HEADERS = {b"upgrade", b"connection", b"sec-websocket-accept", b"sec-websocket-protocol"}


def _mask(data: bytes, key: bytes) -> bytes:
    n = len(data)
    if not n:
        return data
    m = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(m, "little")).to_bytes(n, "little")


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked, final client frame."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + struct.pack("!Q", n)
    key = os.urandom(4)
    return head + key + _mask(payload, key)


def handshake_bytes(request: Any) -> bytes:
    """The opening handshake for an httpx request from websocket_connect:
    Starlette's client sends neither "upgrade: websocket" nor a valid key
    ("testserver=="); a real client does, so the core gets both."""
    target = request.url.raw_path or b"/"
    out = [b"GET ", target, b" HTTP/1.1\r\n"]
    names = set()
    for name, value in request.headers.raw:
        lname = name.lower()
        if lname == b"sec-websocket-key" and len(value) != 24:
            value = base64.b64encode(os.urandom(16))
        names.add(lname)
        out += [name, b": ", value, b"\r\n"]
    if b"host" not in names:
        out.insert(3, b"host: " + request.url.netloc + b"\r\n")
    if b"upgrade" not in names:
        out.append(b"upgrade: websocket\r\n")
    out.append(b"\r\n")
    return b"".join(out)


class CoreWebSocketSession:
    """starlette.testclient.WebSocketTestSession, served by the C core."""

    def __init__(self, transport: Any, request: Any, patch: dict, server_addr: list) -> None:
        self.transport = transport
        self.app = transport.app
        #: The session's tier: None until known, "" native, else why the ASGI tier.
        self.tier: str | None = None
        self._why_asgi = ""     # when the native dispatcher is not used at all
        if not getattr(transport, "native", False):
            self._why_asgi = "native tier off (TestClient(native=False))"
        elif os.environ.get("CELERIS_NATIVE_WS", "1") == "0":
            self._why_asgi = "native WebSocket dispatcher off (CELERIS_NATIVE_WS=0)"
        else:
            try:
                from celeris.native.websocket import ws_app

                cached = getattr(transport, "_ws_app", None)
                if cached is None or cached[0] is not transport.app:
                    cached = (transport.app, ws_app(transport.app))
                    transport._ws_app = cached
                self.app = cached[1]
            except Exception as exc:
                self._why_asgi = f"native WebSocket dispatcher not built ({type(exc).__name__}: {exc})"
        self.portal_factory = transport.portal_factory
        self.raw = handshake_bytes(request)
        self.patch = patch
        self.server_addr = server_addr
        self.accepted_subprotocol = None
        self.extra_headers = None
        self.exc: BaseException | None = None
        self._exc_raised = False
        self._app_msgs: list[dict] = []         # the app's handshake-phase messages
        self._messages: collections.deque = collections.deque()
        self._buf = bytearray()
        self._parser: ResponseParser | None = None
        self._upgraded = False
        self._closed = False                    # the core closed the connection
        self._close_seen = False                # the server's close frame arrived

    # ---- the core side (runs on the portal's loop) ----

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._done = loop.create_future()
        self._task_cancelled = False

        def handler(scope: dict, cycle: Any) -> Any:
            scope.update(self.patch)
            return self._run(scope, cycle)

        self.core = _celeris.Server(handler, loop, state=self.transport.app_state, date_header=False,
                                    server_header=False, ws_handler=handler, ws_ping_interval=None)
        self.conn = self.core.memory_conn(client=self.transport.client, server=self.server_addr,
                                          on_output=self._ready.set)
        self.conn.feed(self.raw)

    async def _run(self, scope: dict, cycle: Any) -> None:
        core_send = cycle.send
        app_msgs = self._app_msgs

        async def send(message: dict) -> None:
            if not self._upgraded and message.get("type", "").startswith("websocket."):
                app_msgs.append(dict(message))
            await core_send(message)

        from celeris.native.websocket import tier_note

        token = tier_note.set(self._note_tier)
        if self._why_asgi:
            self._note_tier(self._why_asgi)
        try:
            try:
                await self.app(scope, cycle.receive, send)
            except _celeris.ClientDisconnected:
                pass
            except asyncio.CancelledError:
                if not self._task_cancelled:
                    raise
            except BaseException as exc:
                self.exc = exc
                cycle.app_failed()
            else:
                if not cycle.response_started:
                    cycle.app_failed()
        finally:
            cycle.ws_finish()
            cycle.finish()
            if not self._done.done():
                self._done.set_result(None)
            with contextlib.suppress(ValueError):
                tier_note.reset(token)

    def _note_tier(self, why: str) -> None:
        """The tier the session runs on ("" native, else why the ASGI tier)."""
        if self.tier is not None:
            return
        self.tier = why
        if not why:
            from celeris.testclient import stats

            stats["websocket_native"] += 1

    def _parse(self) -> None:
        """Turn the bytes the core wrote into client-side ASGI messages."""
        self._buf += self.conn.take()
        if not self._upgraded and self._parser is None:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if self._buf.startswith(b"HTTP/1.1 101 "):
                head = bytes(self._buf[:end]).split(b"\r\n")
                del self._buf[: end + 4]
                headers = []
                for line in head[1:]:
                    name, _, value = line.partition(b":")
                    headers.append((name.strip().lower(), value.strip()))
                self._upgraded = True
                msg = next((m for m in self._app_msgs if m["type"] == "websocket.accept"), None)
                if msg is None:
                    sub = next((v.decode() for k, v in headers if k == b"sec-websocket-protocol"), None)
                    extra = [(k, v) for k, v in headers if k not in _HANDSHAKE_HEADERS]
                    msg = {"type": "websocket.accept", "subprotocol": sub, "headers": extra}
                self._messages.append(msg)
            else:
                self._parser = ResponseParser(False)
        if self._parser is not None:
            self._parser.feed(bytes(self._buf))
            self._buf.clear()
            if self.conn.closed and not self._parser.complete:
                self._parser.feed_eof()
            if self._parser.complete and not self._messages:
                self._denial(self._parser)
                self._parser.complete = False     # reported once
            return
        while True:
            frame = self._next_frame()
            if frame is None:
                return
            op, payload = frame
            if op == 0x1:
                self._messages.append({"type": "websocket.send", "text": payload.decode("utf-8")})
            elif op == 0x2:
                self._messages.append({"type": "websocket.send", "bytes": payload})
            elif op == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                self._messages.append({"type": "websocket.close", "code": code,
                                       "reason": payload[2:].decode("utf-8")})
                if not self._close_seen and not self.conn.closed:
                    self._close_seen = True
                    self.conn.feed(client_frame(0x8, payload))   # complete the close handshake
            elif op == 0x9:
                if not self.conn.closed:
                    self.conn.feed(client_frame(0xA, payload))

    def _denial(self, parser: ResponseParser) -> None:
        status = parser.status or 500
        start = next((m for m in self._app_msgs if m["type"] == "websocket.http.response.start"), None)
        close = next((m for m in self._app_msgs if m["type"] == "websocket.close"), None)
        if close is not None and start is None and status == 403:
            self._messages.append({"type": "websocket.close", "code": close.get("code", 1000),
                                   "reason": close.get("reason", "") or ""})
            return
        headers = list(start.get("headers", [])) if start is not None else parser.headers
        self._messages.append({"type": "websocket.http.response.start", "status": status,
                               "headers": headers})
        self._messages.append({"type": "websocket.http.response.body", "body": bytes(parser.body),
                               "more_body": False})

    def _next_frame(self) -> tuple[int, bytes] | None:
        b = self._buf
        if len(b) < 2:
            return None
        n, off = b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, off = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, off = struct.unpack("!Q", b[2:10])[0], 10
        if len(b) < off + n:
            return None
        op, payload = b[0] & 0x0F, bytes(b[off: off + n])
        del b[: off + n]
        return op, payload

    async def _receive(self) -> dict:
        while True:
            self._parse()
            if self._messages:
                return self._messages.popleft()
            if self.exc is not None and not self._exc_raised and (self.conn.closed or self._done.done()):
                self._exc_raised = True
                raise self.exc
            if self.conn.closed:
                return {"type": "websocket.close", "code": 1006, "reason": ""}
            self._ready.clear()
            waiters = [asyncio.ensure_future(self._ready.wait())]
            if not self._done.done():
                waiters.append(self._done)
            _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                if w is not self._done:
                    w.cancel()

    async def _send(self, message: dict) -> None:
        t = message["type"]
        if t == "websocket.connect" or self.conn.closed:
            return
        if t == "websocket.receive":
            if message.get("bytes") is not None:
                self.conn.feed(client_frame(0x2, bytes(message["bytes"])))
            else:
                self.conn.feed(client_frame(0x1, message["text"].encode("utf-8")))
        elif t == "websocket.disconnect":
            code = message.get("code", 1000) or 1000
            reason = (message.get("reason") or "").encode("utf-8")
            if code in (1005, 1006, 1015) or not self._upgraded:
                # codes that never go on the wire: drop the connection, the app
                # sees the code (Starlette's TestClient hands it over directly)
                self.conn.ws_abort(code, reason.decode("utf-8"))
            elif not self._close_seen:
                self._close_seen = True
                self.conn.feed(client_frame(0x8, struct.pack("!H", code) + reason))
        await asyncio.sleep(0)

    async def _stop(self) -> None:
        # let the app see what was sent last, then stop it as Starlette does
        for _ in range(10):
            if self._done.done():
                break
            await asyncio.sleep(0)
        if not self._done.done():
            self._task_cancelled = True
            self.core.cancel_all()
            with contextlib.suppress(asyncio.CancelledError):
                await self._done
        spins = 0
        while self.core.live_requests:
            spins += 1
            await asyncio.sleep(0 if spins < 100 else 0.001)
        self.conn.close()
        self.core.close()

    # ---- the test's side ----

    def __enter__(self) -> "CoreWebSocketSession":
        with contextlib.ExitStack() as stack:
            self.portal = portal = stack.enter_context(self.portal_factory())
            portal.call(self._start)
            stack.callback(self._finish)
            self.send({"type": "websocket.connect"})
            message = self.receive()
            self._raise_on_close(message)
            self.accepted_subprotocol = message.get("subprotocol", None)
            self.extra_headers = message.get("headers", None)
            stack.callback(self.close, 1000)
            self.exit_stack = stack.pop_all()
            return self

    def __exit__(self, *args: Any) -> bool | None:
        return self.exit_stack.__exit__(*args)

    def _finish(self) -> None:
        self.portal.call(self._stop)
        if self.tier is None:
            self._note_tier("the app was never called (the core answered the handshake)")
        if self.exc is not None and not self._exc_raised:
            self._exc_raised = True
            raise self.exc

    def _raise_on_close(self, message: dict) -> None:
        if message["type"] == "websocket.close":
            raise WebSocketDisconnect(code=message.get("code", 1000), reason=message.get("reason", ""))
        if message["type"] == "websocket.http.response.start":
            status_code: int = message["status"]
            headers = message["headers"]
            body: list[bytes] = []
            while True:
                message = self.receive()
                assert message["type"] == "websocket.http.response.body"
                body.append(message["body"])
                if not message.get("more_body", False):
                    break
            denial = getattr(_st, "WebSocketDenialResponse", None)
            if denial is None:      # older Starlette: no denial responses
                raise WebSocketDisconnect(code=1000)
            raise denial(status_code=status_code, headers=headers, content=b"".join(body))

    def send(self, message: dict) -> None:
        self.portal.call(self._send, message)

    def send_text(self, data: str) -> None:
        self.send({"type": "websocket.receive", "text": data})

    def send_bytes(self, data: bytes) -> None:
        self.send({"type": "websocket.receive", "bytes": data})

    def send_json(self, data: Any, mode: str = "text") -> None:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if mode == "text":
            self.send({"type": "websocket.receive", "text": text})
        else:
            self.send({"type": "websocket.receive", "bytes": text.encode("utf-8")})

    def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.send({"type": "websocket.disconnect", "code": code, "reason": reason})

    def receive(self) -> dict:
        return self.portal.call(self._receive)

    def receive_text(self) -> str:
        message = self.receive()
        self._raise_on_close(message)
        return message["text"]

    def receive_bytes(self) -> bytes:
        message = self.receive()
        self._raise_on_close(message)
        return message["bytes"]

    def receive_json(self, mode: str = "text") -> Any:
        message = self.receive()
        self._raise_on_close(message)
        text = message["text"] if mode == "text" else message["bytes"].decode("utf-8")
        return json.loads(text)
