"""def endpoints and dependencies for tests/python/test_threadpool.py.

/rendezvous/{side}: two def requests that each wait for the other (a
threading.Barrier): they only both complete if they run in the thread pool
at the same time.  /ident: which thread ran the def dependency and endpoint,
and what a contextvar set by an async dependency looked like there.
"""
import contextvars
import threading

from fastapi import Depends, FastAPI

app = FastAPI()
BARRIER = threading.Barrier(2, timeout=20)
VAR: contextvars.ContextVar = contextvars.ContextVar("VAR", default="unset")
LOOP_THREAD: dict = {}


@app.get("/rendezvous/{side}")
def rendezvous(side: str):
    BARRIER.wait()
    return {"side": side, "met": True}


async def async_dep() -> str:
    LOOP_THREAD["id"] = threading.get_ident()
    VAR.set("from-async-dep")
    return "a"


def sync_dep(a: str = Depends(async_dep)) -> dict:
    return {"dep_thread": threading.get_ident(), "dep_var": VAR.get()}


@app.get("/ident")
def ident(d: dict = Depends(sync_dep)):
    VAR.set("set-in-endpoint")     # must not leak into later requests
    return {
        "dep_off_loop": d["dep_thread"] != LOOP_THREAD["id"],
        "endpoint_off_loop": threading.get_ident() != LOOP_THREAD["id"],
        "dep_var": d["dep_var"],
        "endpoint_var_before": "from-async-dep",
    }


@app.get("/plain-def")
def plain_def(x: int = 1):
    return {"x": x, "var": VAR.get(), "thread_named": threading.current_thread().name != "MainThread"}


@app.get("/boom")
def boom():
    raise ValueError("boom in a worker thread")
