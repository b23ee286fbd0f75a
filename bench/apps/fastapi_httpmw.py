"""/plain behind an ``@app.middleware("http")`` function (Starlette's BaseHTTPMiddleware): the
/httpmw scenario of bench/run.py.  The middleware is the kind most FastAPI apps have -- it times
the request and adds a response header -- so the scenario measures what call_next costs.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Request

app = FastAPI()


@app.middleware("http")
async def add_process_time(request: Request, call_next):
    start = time.perf_counter()
    response = await call_next(request)
    response.headers["x-process-time"] = f"{time.perf_counter() - start:.6f}"
    return response


@app.get("/httpmw")
@app.get("/plain")
async def plain() -> dict:
    return {"hello": "world"}
