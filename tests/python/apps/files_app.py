"""File responses, StaticFiles and streaming, for tests/python/test_files.py.

The app makes its own scratch directory at import (shown by GET /dir), so a
test and the server agree on where files live without sharing environment.
"""
import hashlib
import os
import tempfile

from fastapi import FastAPI, Request
from starlette.responses import FileResponse, StreamingResponse
from starlette.staticfiles import StaticFiles

from asgi_common import query

ROOT = tempfile.mkdtemp(prefix="celeris-files-")
STATIC = os.path.join(ROOT, "static")
os.makedirs(STATIC)

app = FastAPI()
seen: list[str] = []        # ASGI message types sent by the last FileResponse


@app.get("/dir")
def directory():
    return {"root": ROOT, "static": STATIC, "pid": os.getpid()}


@app.api_route("/file", methods=["GET", "HEAD"])
def file(path: str, name: str | None = None):
    return FileResponse(path, filename=name)


@app.get("/vanished")
def vanished(path: str):
    """The file is stat'ed (headers promise its length), then deleted before
    the response is sent."""
    st = os.stat(path)
    response = FileResponse(path, stat_result=st)
    os.unlink(path)
    return response


@app.get("/stream")
def stream(size: int, chunk: int = 65536):
    """`size` bytes of a repeating pattern, `chunk` at a time."""
    block = bytes(range(256)) * (chunk // 256 + 1)

    async def gen():
        left = size
        while left > 0:
            n = min(chunk, left)
            yield block[:n]
            left -= n

    return StreamingResponse(gen(), media_type="application/octet-stream")


@app.post("/upload")
async def upload(request: Request):
    h = hashlib.sha256()
    n = 0
    async for part in request.stream():
        h.update(part)
        n += len(part)
    return {"size": n, "sha256": h.hexdigest()}


async def raw_pathsend(scope, receive, send):
    """Raw ASGI: pathsend with the head the query string describes --
    `cl` (a content-length, "" for none) -- and what send() did."""
    q = query(scope)
    headers = [(b"content-type", b"application/octet-stream")]
    if q.get("cl"):
        headers.append((b"content-length", q["cl"].encode()))
    await send({"type": "http.response.start", "status": int(q.get("status", "200")),
                "headers": headers})
    try:
        await send({"type": "http.response.pathsend", "path": q["path"]})
    except Exception as exc:
        seen.append(f"{type(exc).__name__}: {exc}")
        raise


async def extensions(scope, receive, send):
    body = repr(sorted(scope.get("extensions", {}))).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def errors(scope, receive, send):
    body = "\n".join(seen).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


app.mount("/static", StaticFiles(directory=STATIC))
app.mount("/raw", raw_pathsend)
app.mount("/extensions", extensions)
app.mount("/errors", errors)
