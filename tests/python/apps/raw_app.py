"""A raw ASGI3 application for the Celeris protocol tests.

Routes (by scope["path"], after root_path is stripped):
  /scope, /scope/...     the scope as JSON (bytes as latin-1 strings); reads the body first
  /echo                  read the body with receive(); report chunks, length, sha256
                         (?return=1 also returns the body itself, base64-free, as the response)
  /noread                answer without reading the body
  /record-body?tag=T     read the body, recording every received message under T
  /record?tag=T          the messages recorded under T (JSON list; [] if none)
  /stream?n=N            N parts (and empty more_body messages) without content-length
  /fixed                 "hello" with content-length 5
  /status?code=N         empty response with that status
  /raise-before          raise before http.response.start
  /raise-after           start a 100-byte response, send 10 bytes, then raise
  /no-start              return without sending anything
  /misuse/body-first     send http.response.body first; report the RuntimeError
  /misuse/start-twice    send http.response.start twice; report the RuntimeError
  /misuse/after-complete send a message after the response completed; record the error
  /asyncio               asyncio facts from inside the request task
  /ctx?set=V             the contextvar's value before setting it to V
  /state                 scope["state"], then mutate the copy
  /id?n=N                "N" (for pipelining)
  /sleep?s=S[&tag=T]     answer "slept" after S seconds (records "started" under T)
  /big?mb=N[&tag=T]      N MiB response in 64 KiB pieces (records the outcome under T)
"""
import asyncio
import contextvars
import hashlib
import json
import sys

from asgi_common import jsonable, query

RECORD: dict[str, list] = {}
REQ_VAR: contextvars.ContextVar = contextvars.ContextVar("req_var")


async def send_json(send, obj, status=200, headers=()):
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def send_text(send, text, status=200):
    body = text.encode() if isinstance(text, str) else text
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def send_recording_error(send, message, tag):
    """send(message), recording under tag the RuntimeError it raised, if any."""
    try:
        await send(message)
        RECORD.setdefault(tag, []).append("no error raised")
    except RuntimeError as exc:
        RECORD.setdefault(tag, []).append(f"RuntimeError: {exc}")


async def read_body(receive, record=None):
    chunks = 0
    total = 0
    h = hashlib.sha256()
    parts = []
    disconnected = False
    while True:
        msg = await receive()
        if record is not None:
            record.append({"type": msg["type"], "len": len(msg.get("body", b"")),
                           "more_body": msg.get("more_body", False)})
        if msg["type"] == "http.disconnect":
            disconnected = True
            break
        assert msg["type"] == "http.request", msg
        body = msg.get("body", b"")
        if body:
            chunks += 1
            total += len(body)
            h.update(body)
            parts.append(body)
        if not msg.get("more_body", False):
            break
    return {"chunks": chunks, "length": total, "sha256": h.hexdigest(),
            "disconnected": disconnected}, b"".join(parts)


async def lifespan(scope, receive, send):
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            scope["state"]["started"] = True
            scope["state"]["name"] = "raw_app"
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            print("raw_app: lifespan shutdown ran", flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(scope, receive, send)
    assert scope["type"] == "http", scope["type"]
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    qs = query(scope, "latin-1")

    if path == "/scope" or path.startswith("/scope/"):
        info, _ = await read_body(receive)
        out = {k: jsonable(v) for k, v in scope.items()}
        out["_body"] = info
        return await send_json(send, out)

    if path == "/echo":
        info, body = await read_body(receive)
        if info["disconnected"]:
            return
        if qs.get("return"):
            return await send_text(send, body)
        return await send_json(send, info)

    if path == "/noread":
        return await send_text(send, "not read")

    if path == "/record-body":
        rec = RECORD.setdefault(qs["tag"], [])
        info, _ = await read_body(receive, rec)
        rec.append({"type": "done", **info})
        return await send_json(send, info)

    if path == "/record":
        return await send_json(send, RECORD.get(qs["tag"], []))

    if path == "/stream":
        n = int(qs.get("n", "3"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        for i in range(n):
            await send({"type": "http.response.body", "body": f"part-{i}\n".encode(),
                        "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return

    if path == "/fixed":
        return await send_text(send, "hello")

    if path == "/status":
        code = int(qs["code"])
        await send({"type": "http.response.start", "status": code, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return

    if path == "/raise-before":
        raise RuntimeError("boom-before-start")

    if path == "/raise-after":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"100")]})
        await send({"type": "http.response.body", "body": b"0123456789", "more_body": True})
        raise RuntimeError("boom-after-start")

    if path == "/no-start":
        return None

    if path == "/misuse/body-first":
        try:
            await send({"type": "http.response.body", "body": b"x"})
        except RuntimeError as exc:
            return await send_text(send, f"RuntimeError: {exc}")
        return await send_text(send, "no error raised")

    if path == "/misuse/start-twice":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            msg = "no error raised"
        except RuntimeError as exc:
            msg = f"RuntimeError: {exc}"
        await send({"type": "http.response.body", "body": msg.encode()})
        return

    if path == "/misuse/after-complete":
        await send_text(send, "done")
        return await send_recording_error(send, {"type": "http.response.body", "body": b"extra"}, qs["tag"])

    if path == "/asyncio":
        facts = {}
        task = asyncio.current_task()
        facts["current_task"] = task is not None
        facts["is_task"] = isinstance(task, asyncio.Task)
        try:
            import sniffio
            facts["sniffio"] = sniffio.current_async_library()
        except ImportError:
            facts["sniffio"] = None
        if sys.version_info >= (3, 11):
            try:
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(5)
                facts["timeout"] = "not fired"
            except TimeoutError:
                facts["timeout"] = "fired"
        else:
            facts["timeout"] = "fired"
        try:
            await asyncio.wait_for(asyncio.sleep(5), 0.01)
            facts["wait_for"] = "not fired"
        except asyncio.TimeoutError:
            facts["wait_for"] = "fired"
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.call_soon(fut.set_result, 42)
        facts["future"] = await fut
        facts["gather"] = await asyncio.gather(asyncio.sleep(0, 1), asyncio.sleep(0, 2))
        return await send_json(send, facts)

    if path == "/ctx":
        before = REQ_VAR.get("<unset>")
        REQ_VAR.set(qs.get("set", "x"))
        await asyncio.sleep(0)
        return await send_json(send, {"before": before, "after": REQ_VAR.get()})

    if path == "/state":
        state = scope.get("state")
        snapshot = dict(state) if state is not None else None
        if state is not None:
            state["mutated_by_request"] = True
        return await send_json(send, {"state": jsonable(snapshot)})

    if path == "/id":
        return await send_text(send, qs.get("n", ""))

    if path == "/big":
        # ?mb=N megabytes in 64 KiB pieces, deterministic content; ?tag= records the outcome
        total = int(qs.get("mb", "10")) * 1024 * 1024
        piece = bytes(range(256)) * 256
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(total).encode())]})
        sent = 0
        error = None
        try:
            while sent < total:
                n = min(len(piece), total - sent)
                sent += n
                await send({"type": "http.response.body", "body": piece[:n],
                            "more_body": sent < total})
        except BaseException as exc:   # must not happen: send() after disconnect is a no-op
            error = repr(exc)
        if "tag" in qs:
            after = await receive()
            RECORD.setdefault(qs["tag"], []).append(
                {"sent": sent, "error": error, "after": after["type"]})
        return

    if path == "/sleep":
        if "tag" in qs:
            RECORD.setdefault(qs["tag"], []).append("started")
        await asyncio.sleep(float(qs.get("s", "1")))
        return await send_text(send, "slept")

    if path == "/close-header":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"connection", b"close"), (b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
        return

    if path == "/app-chunked":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"transfer-encoding", b"chunked")]})
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"def"})
        return

    if path in ("/misuse/too-long", "/misuse/too-short"):
        # a 5-byte body against content-length 3 or 10
        length = b"3" if path == "/misuse/too-long" else b"10"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", length)]})
        return await send_recording_error(send, {"type": "http.response.body", "body": b"12345"},
                                          qs["tag"])

    if path in ("/misuse/bad-header", "/misuse/bad-header-name"):
        header = ((b"x-bad", b"a\r\nx-injected: 1") if path == "/misuse/bad-header"
                  else (b"x bad", b"v"))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": [header]})
            return await send({"type": "http.response.body", "body": b"no error raised"})
        except RuntimeError as exc:
            return await send_text(send, f"RuntimeError: {exc}")

    if path == "/receive-after-response":
        # uvicorn: after the response, receive() waits and then reports http.disconnect
        await read_body(receive)
        await send_text(send, "done")
        msg = await asyncio.wait_for(receive(), 5)
        RECORD.setdefault(qs["tag"], []).append(msg["type"])
        return

    return await send_text(send, "not found", status=404)
