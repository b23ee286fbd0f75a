"""The /plain app with CORSMiddleware installed: the /mw scenario of bench/run.py.

The benchmark sends an ``Origin`` header so the middleware does real work (a simple CORS request
gets ``access-control-allow-origin: *`` added).  /plain is served too, under the same handler.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

app = FastAPI()
app.add_middleware(CORSMiddleware, allow_origins=["*"])


@app.get("/mw")
@app.get("/plain")
async def plain() -> dict:
    return {"hello": "world"}
