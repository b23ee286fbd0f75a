"""The WebSocket object a native-tier session hands the endpoint.

FastAPI's websocket_session builds a Starlette `WebSocket(scope, receive,
send)`; `_session` (websocket.py) builds `session_class()(scope, receive,
send)` instead: a subclass of Starlette's WebSocket whose per-message
methods (receive, send, receive_text/bytes, send_text/bytes) are Starlette's
own code with two changes that do not alter what they do:

- `WebSocketState.X` is read from module constants.  On Python < 3.12 the
  Enum metaclass defines __getattr__, so every `WebSocketState.CONNECTED`
  in Starlette's methods costs a slot_tp_getattr_hook call (~170 ns, ~850
  instructions); an echo loop reads it five times per message.
- receive_text/receive_bytes run receive()'s CONNECTED branch inline and
  send_text/send_bytes run send()'s CONNECTED branch inline; every other
  state goes through receive() / send() as before.  These four are C
  awaitables (_celeris.WsMethod, src/binding/ws_methods.c, whose header
  holds their code): no coroutine object, frame or bytecode per message.

Same checks in the same order, same state transitions, same exceptions with
the same messages and contexts; the frames in a traceback differ (no
receive()/send()/_raise_on_disconnect() frame on the inlined paths, no frame
at all for the C four), and what receive_text() etc. return is a
coroutine-like awaitable that asyncio accepts as a coroutine but
inspect.iscoroutine() does not.

Used only when the installed Starlette's WebSocket class has a source this
file was written against (`_KNOWN`: sha256 of inspect.getsource(WebSocket)),
and WebSocketState has the members used here; otherwise Starlette's own class
(session_class() returns it) -- a newer Starlette never runs stale copies.
"""
from __future__ import annotations

import hashlib
import inspect
from typing import Any

# sha256(inspect.getsource(starlette.websockets.WebSocket))[:16] -> versions.
_KNOWN = {"698bd7cb0b2abe25": "Starlette 1.7.0, 1.10.0"}

_cls: list = []


def _source_known(cls: Any) -> bool:
    try:
        digest = hashlib.sha256(inspect.getsource(cls).encode()).hexdigest()[:16]
    except (OSError, TypeError):
        return False
    return digest in _KNOWN


def session_class() -> Any:
    """The class `_session` instantiates (decided once per process)."""
    if not _cls:
        from starlette import websockets

        cls = websockets.WebSocket
        if _source_known(cls) and hasattr(websockets, "WebSocketDisconnected") \
                and {m.name for m in websockets.WebSocketState} >= {
                    "CONNECTING", "CONNECTED", "DISCONNECTED", "RESPONSE"}:
            cls = _build(websockets)
        _cls.append(cls)
    return _cls[0]


def _build(websockets: Any) -> Any:
    State = websockets.WebSocketState
    CONNECTING, CONNECTED = State.CONNECTING, State.CONNECTED
    DISCONNECTED, RESPONSE = State.DISCONNECTED, State.RESPONSE
    WebSocketDisconnect = websockets.WebSocketDisconnect
    WebSocketDisconnected = websockets.WebSocketDisconnected
    from collections.abc import Coroutine

    from celeris import _celeris

    cfg = (CONNECTED, DISCONNECTED, WebSocketDisconnect, WebSocketDisconnected)
    Coroutine.register(_celeris.WsOp)      # asyncio.iscoroutine(): create_task, ensure_future

    class WebSocket(websockets.WebSocket):
        async def receive(self) -> Any:
            if self.client_state == CONNECTING:
                message = await self._receive()
                message_type = message["type"]
                if message_type != "websocket.connect":
                    raise RuntimeError(f'Expected ASGI message "websocket.connect", but got {message_type!r}')
                self.client_state = CONNECTED
                return message
            elif self.client_state == CONNECTED:
                message = await self._receive()
                message_type = message["type"]
                if message_type not in {"websocket.receive", "websocket.disconnect"}:
                    raise RuntimeError(
                        f'Expected ASGI message "websocket.receive" or "websocket.disconnect", '
                        f"but got {message_type!r}"
                    )
                if message_type == "websocket.disconnect":
                    self.client_state = DISCONNECTED
                return message
            else:
                raise WebSocketDisconnected('Cannot call "receive" once a disconnect message has been received.')

        async def send(self, message: Any) -> None:
            if self.application_state == CONNECTING:
                message_type = message["type"]
                if message_type not in {"websocket.accept", "websocket.close", "websocket.http.response.start"}:
                    raise RuntimeError(
                        'Expected ASGI message "websocket.accept", "websocket.close" or '
                        f'"websocket.http.response.start", but got {message_type!r}'
                    )
                if message_type == "websocket.close":
                    self.application_state = DISCONNECTED
                elif message_type == "websocket.http.response.start":
                    self.application_state = RESPONSE
                else:
                    self.application_state = CONNECTED
                await self._send(message)
            elif self.application_state == CONNECTED:
                message_type = message["type"]
                if message_type not in {"websocket.send", "websocket.close"}:
                    raise RuntimeError(
                        f'Expected ASGI message "websocket.send" or "websocket.close", but got {message_type!r}'
                    )
                if message_type == "websocket.close":
                    self.application_state = DISCONNECTED
                try:
                    await self._send(message)
                except OSError:
                    self.application_state = DISCONNECTED
                    raise WebSocketDisconnect(code=1006)
            elif self.application_state == RESPONSE:
                message_type = message["type"]
                if message_type != "websocket.http.response.body":
                    raise RuntimeError(
                        f'Expected ASGI message "websocket.http.response.body", but got {message_type!r}')
                if not message.get("more_body", False):
                    self.application_state = DISCONNECTED
                await self._send(message)
            else:
                raise WebSocketDisconnected('Cannot call "send" once a close message has been sent.')

        # receive_text/receive_bytes/send_text/send_bytes: the code in
        # src/binding/ws_methods.c's header, run by C awaitables
        receive_text = _celeris.WsMethod("receive_text", *cfg)
        receive_bytes = _celeris.WsMethod("receive_bytes", *cfg)
        send_text = _celeris.WsMethod("send_text", *cfg)
        send_bytes = _celeris.WsMethod("send_bytes", *cfg)

    return WebSocket
