"""A FastAPI application for the Celeris tests."""
import asyncio
import hashlib
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel


@asynccontextmanager
async def lifespan(app):
    yield {"db": "connected"}
    print("fastapi_app: lifespan shutdown ran", flush=True)


app = FastAPI(lifespan=lifespan)


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def common(q: str | None = None, limit: int = 10):
    return {"q": q, "limit": limit}


@app.get("/")
async def root():
    return {"hello": "world"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, params: dict = Depends(common)):
    return {"item_id": item_id, **params}


@app.post("/items")
async def create_item(item: Item):
    return {"created": item.model_dump(), "total": item.price * 2}


@app.get("/state")
async def state(request: Request):
    return {"db": request.state.db}


@app.post("/upload")
async def upload(request: Request):
    n = 0
    chunks = 0
    h = hashlib.sha256()
    async for chunk in request.stream():
        if chunk:
            chunks += 1
            n += len(chunk)
            h.update(chunk)
    return {"length": n, "chunks": chunks, "sha256": h.hexdigest()}


@app.post("/noread")
async def noread():
    return PlainTextResponse("not read")


@app.get("/stream")
async def stream(n: int = 3):
    async def gen():
        for i in range(n):
            yield f"line {i}\n"
            await asyncio.sleep(0)
    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/http-error")
async def http_error():
    raise HTTPException(status_code=418, detail="teapot")


@app.get("/crash")
async def crash():
    raise ValueError("fastapi handler crashed")


@app.get("/sync")
def sync_route():
    return {"sync": True}


@app.get("/sleep")
def sleep_route(seconds: float = 1.0):
    import time

    time.sleep(seconds)
    return {"slept": seconds}


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()
