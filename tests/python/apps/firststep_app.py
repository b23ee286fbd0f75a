"""A FastAPI app for tests/python/test_native_first_step.py: simple native
routes whose endpoints end in every way a first step can -- a result the C
JSON writer takes (written with no Cycle or NativeCall made), results it
declines, other results, exceptions, suspensions -- served over real
sockets, where a keep-alive connection's Driver runs them eagerly."""
import asyncio
import contextvars
from datetime import datetime

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

app = FastAPI()
VAR: contextvars.ContextVar = contextvars.ContextVar("VAR", default="unset")


@app.get("/flat")
async def flat():
    return {"hello": "world"}


@app.get("/flat-typed")
async def flat_typed() -> dict:
    return {"hello": "world", "n": 1, "t": True, "z": None}


@app.get("/nested")
async def nested():
    return {"a": [1, 2.5, {"b": "é\n"}], "c": {}}


@app.get("/nested-typed")
async def nested_typed() -> dict:
    return {"a": [1, 2.5, {"b": "é\n"}], "c": {}}


@app.get("/list")
async def as_list():
    return [1, "two", None]


@app.get("/declined")
async def declined():
    return {"when": datetime(2024, 1, 2, 3, 4, 5), "_sa_state": 1, "kept": 2}


@app.get("/declined-typed")
async def declined_typed() -> dict:
    return {"f": 1.5, "s": "x"}


@app.get("/nan")
async def nan():
    return {"x": float("nan")}


@app.get("/str")
async def as_str():
    return "text"


@app.get("/none")
async def as_none():
    return None


@app.get("/created", status_code=201)
async def created():
    return {"created": True}


@app.get("/nocontent", status_code=204)
async def nocontent():
    return None


@app.get("/response")
async def response():
    return PlainTextResponse("hi", status_code=202, headers={"x-a": "b"})


@app.get("/json-response")
async def json_response():
    return JSONResponse({"a": 1}, headers={"set-cookie": "a=b"})


@app.get("/stream")
async def stream():
    async def gen():
        yield b"a"
        await asyncio.sleep(0)
        yield b"b"
    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/http-error")
async def http_error():
    raise HTTPException(status_code=418, detail="teapot", headers={"x-t": "1"})


@app.get("/boom")
async def boom():
    raise RuntimeError("kaboom")


@app.get("/yield0")
async def yield0():
    await asyncio.sleep(0)
    return {"slept": 0}


@app.get("/sleep")
async def sleep():
    await asyncio.sleep(0.01)
    return {"slept": 0.01}


@app.get("/sleep-boom")
async def sleep_boom():
    await asyncio.sleep(0)
    raise HTTPException(status_code=409, detail="late")


@app.get("/var")
async def var(set: str = ""):
    before = VAR.get()
    if set:
        VAR.set(set)
    return {"before": before, "task": asyncio.current_task() is not None}


@app.get("/items/{item_id}")
async def item(item_id: int, q: str | None = None):
    return {"item_id": item_id, "q": q}
