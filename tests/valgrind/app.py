"""The FastAPI app served under valgrind by memcheck.py.

Covers both tiers: native-tier GETs (path and query parameters), ASGI-tier
routes that read request bodies (Content-Length and chunked), a streaming
response, an app exception (500) and an HTTPException.
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse

app = FastAPI()


@app.get("/")
async def root() -> dict:
    return {"hello": "world"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: str | None = None) -> dict:
    return {"item_id": item_id, "q": q}


@app.get("/sync")
def sync() -> dict:
    return {"sync": True}


@app.get("/missing")
async def missing() -> dict:
    raise HTTPException(status_code=404, detail="nope")


@app.get("/boom")
async def boom() -> dict:
    raise RuntimeError("boom")


@app.post("/echo")
async def echo(request: Request) -> dict:
    body = await request.body()
    return {"len": len(body), "head": body[:16].decode("latin-1")}


@app.get("/stream")
async def stream() -> StreamingResponse:
    async def gen():
        for i in range(5):
            yield b"chunk-%d\n" % i

    return StreamingResponse(gen(), media_type="text/plain")
