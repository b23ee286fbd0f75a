"""A raw ASGI app for the receive() waiter tests (test_ws_waiter.py): how a
receive() that has to wait behaves under cancellation, in other tasks, and
when the connection ends meanwhile.  Each route accepts, sends "ready" when
its first wait is under way (the client sends nothing before), and records
what it saw under ?tag=T (GET /record?tag=T returns the list as JSON).

  /wait-for          receive() under asyncio.wait_for(0.01) times out (recorded
                     "timeout"), then "ready"; echo texts until the disconnect (recorded)
  /wait-for-coro     the same with a coroutine around receive() (as Starlette's)
  /timeout-cm        the same with `async with asyncio.timeout(0.01)` (3.11+)
  /task-cancel       a Task awaiting receive() is cancelled (recorded "cancelled"), then as /wait-for
  /modes             message i is received by mode i % 4: await, ensure_future,
                     gather, create_task of a coroutine; echoed as "<mode>:<text>"
  /many              echo texts until the disconnect (recorded); the client sends many at once
  /disconnect        "ready", then record what receive() gives (the client closes or drops)
  /app-close         a Task waits in receive(); the app sends websocket.close 4002 "bye";
                     record what the waiting receive() gives
  /second-receive    a Task waits in receive(); a second receive() raises (recorded), then
                     the first gets the next message, echoed
  /unawaited         receive() not awaited until its message is there, then receive() again
                     gets it (echoed; recorded "unawaited"), then echo until disconnect
  /contextvar        a ContextVar set before each wait is still set after it (echoed)
"""
import asyncio
import contextvars
import json

from asgi_common import lifespan_ok, query

RECORD: dict[str, list] = {}
VAR: contextvars.ContextVar = contextvars.ContextVar("VAR", default="unset")


async def _text(send, text):
    await send({"type": "websocket.send", "text": text})


async def _echo_until_disconnect(receive, send, rec):
    while True:
        msg = await receive()
        if msg["type"] == "websocket.disconnect":
            rec.append(msg)
            return
        await _text(send, msg["text"])


async def _wrapped(receive):
    return await receive()


async def _until_waiting(waiter_task):
    # one loop turn lets a just-created Task run to its first wait
    for _ in range(3):
        await asyncio.sleep(0)
    assert not waiter_task.done()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan_ok(receive, send)
    q = query(scope)
    rec = RECORD.setdefault(q.get("tag", ""), [])
    if scope["type"] == "http":
        body = json.dumps(RECORD.get(q.get("tag", ""), [])).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    path = scope["path"]
    assert (await receive()) == {"type": "websocket.connect"}
    await send({"type": "websocket.accept"})

    if path in ("/wait-for", "/wait-for-coro", "/timeout-cm"):
        try:
            if path == "/wait-for":
                await asyncio.wait_for(receive(), 0.01)
            elif path == "/wait-for-coro":
                await asyncio.wait_for(_wrapped(receive), 0.01)
            else:
                async with asyncio.timeout(0.01):
                    await receive()
            rec.append("no timeout")
        except asyncio.TimeoutError:
            rec.append("timeout")
        await _text(send, "ready")
        await _echo_until_disconnect(receive, send, rec)
    elif path == "/task-cancel":
        t = asyncio.ensure_future(_wrapped(receive))
        await _until_waiting(t)
        t.cancel()
        try:
            await t
            rec.append("not cancelled")
        except asyncio.CancelledError:
            rec.append("cancelled")
        await _text(send, "ready")
        await _echo_until_disconnect(receive, send, rec)
    elif path == "/modes":
        await _text(send, "ready")
        i = 0
        while True:
            mode = i % 4
            if mode == 0:
                msg = await receive()
            elif mode == 1:
                msg = await asyncio.ensure_future(receive())
            elif mode == 2:
                (msg,) = await asyncio.gather(receive())
            else:
                msg = await asyncio.get_running_loop().create_task(_wrapped(receive))
            if msg["type"] == "websocket.disconnect":
                rec.append(msg)
                return
            await _text(send, f"{mode}:{msg['text']}")
            i += 1
    elif path == "/many":
        await _text(send, "ready")
        await _echo_until_disconnect(receive, send, rec)
    elif path == "/disconnect":
        await _text(send, "ready")
        rec.append(await receive())
    elif path == "/app-close":
        t = asyncio.ensure_future(_wrapped(receive))
        await _until_waiting(t)
        await send({"type": "websocket.close", "code": 4002, "reason": "bye"})
        rec.append(await t)
    elif path == "/second-receive":
        t = asyncio.ensure_future(_wrapped(receive))
        await _until_waiting(t)
        try:
            await receive()
            rec.append("no error")
        except RuntimeError as e:
            rec.append(str(e))
        await _text(send, "ready")
        msg = await t
        await _text(send, msg["text"])
        await _echo_until_disconnect(receive, send, rec)
    elif path == "/unawaited":
        w = receive()
        await _text(send, "ready")
        while not w.done():
            await asyncio.sleep(0.001)
        msg = await receive()       # the first one was never awaited: its message comes here
        rec.append("unawaited")
        await _text(send, msg["text"])
        await _echo_until_disconnect(receive, send, rec)
    elif path == "/contextvar":
        await _text(send, "ready")
        i = 0
        while True:
            VAR.set(f"v{i}")
            msg = await receive()
            if msg["type"] == "websocket.disconnect":
                rec.append(msg)
                return
            await _text(send, f"{VAR.get()}:{msg['text']}")
            i += 1
    else:
        await send({"type": "websocket.close"})
