"""FastAPI app for the worker/supervisor tests: every answer names the
process that served it.

  GET /pid              {"pid": ...}                          (native tier)
  GET /work?ms=N        sleep N ms, then {"pid": ...}          (native tier)
  GET /whoami           client, scheme, server, pid, lifespan pid (ASGI tier: uses Request)
"""
import asyncio
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request


@asynccontextmanager
async def lifespan(app):
    print(f"workers_app: startup in {os.getpid()}", flush=True)
    yield {"lifespan_pid": os.getpid()}
    print(f"workers_app: shutdown in {os.getpid()}", flush=True)


app = FastAPI(lifespan=lifespan)


@app.get("/pid")
async def pid():
    return {"pid": os.getpid()}


@app.get("/work")
async def work(ms: int = 10):
    await asyncio.sleep(ms / 1000)
    return {"pid": os.getpid()}


@app.get("/whoami")
async def whoami(request: Request):
    return {"client": list(request.client) if request.client else None,
            "scheme": request.url.scheme,
            "server": list(request.scope["server"]) if request.scope.get("server") else None,
            "pid": os.getpid(),
            "lifespan_pid": request.state.lifespan_pid}
