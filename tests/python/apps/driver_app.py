"""A FastAPI app for tests/python/test_driver.py: what a request sees of the
asyncio Task running it (one Driver Task per keep-alive connection)."""
import asyncio
import contextvars

import anyio
import sniffio
from fastapi import BackgroundTasks, FastAPI

app = FastAPI()
VAR: contextvars.ContextVar = contextvars.ContextVar("VAR", default="unset")
GATE: dict = {}
DONE: list = []


@app.get("/task")
async def task_info(set: str = ""):
    before = VAR.get()
    if set:
        VAR.set(set)
    t = asyncio.current_task()
    return {"task": t.get_name(), "is_task": isinstance(t, asyncio.Task), "var_before": before,
            "cancelling": t.cancelling() if hasattr(t, "cancelling") else 0,
            "library": sniffio.current_async_library(),
            "anyio_task": anyio.get_current_task().id == id(t)}


@app.get("/cancel-now")
async def cancel_now():
    # Task.cancel() on the running request (no await yet): delivered at the
    # next await, as asyncio does for a running Task
    t = asyncio.current_task()
    t.cancel("bye")
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError as exc:
        if hasattr(t, "uncancel"):
            t.uncancel()
        return {"caught": True, "args": list(exc.args)}
    return {"caught": False}


@app.get("/cancel-awaited")
async def cancel_awaited():
    # Task.cancel() on the running request, which then awaits another task:
    # asyncio cancels what the request awaits (that task ends cancelled), and
    # the request sees CancelledError at its await
    t = asyncio.current_task()
    inner = asyncio.ensure_future(asyncio.sleep(30))
    t.cancel()
    try:
        await inner
    except asyncio.CancelledError:
        if hasattr(t, "uncancel"):
            t.uncancel()
        return {"caught": True, "inner_cancelled": inner.cancelled()}
    return {"caught": False}


@app.get("/sync-task")
def sync_task():
    return {"var": VAR.get()}


@app.get("/timeout")
async def timeout():
    # anyio's cancel scope cancels the Task running the request, then absorbs it
    try:
        with anyio.fail_after(0.01):
            await asyncio.sleep(30)
    except TimeoutError:
        return {"timed_out": True}
    return {"timed_out": False}


@app.get("/background")
async def background(tasks: BackgroundTasks):
    GATE["event"] = asyncio.Event()

    async def wait_for_release():
        await GATE["event"].wait()
        DONE.append("background done")

    tasks.add_task(wait_for_release)
    return {"queued": True}


@app.get("/release")
async def release():
    GATE["event"].set()
    await asyncio.sleep(0)
    return {"released": True}


@app.get("/done")
async def done():
    return {"done": list(DONE)}


@app.get("/cancel-self")
async def cancel_self():
    raise asyncio.CancelledError()


@app.get("/tasks")
async def tasks():
    return {"tasks": len(asyncio.all_tasks())}


@app.get("/sleep")
async def sleep():
    await asyncio.sleep(0.01)
    return {"slept": True}


SPAWNED: list = []


@app.get("/spawn")
async def spawn(tag: str):
    # A Task created by a request (possibly in the middle of a pipelined
    # burst): it must run as a Task of its own, and the request's own Task
    # stays what asyncio.current_task() reports afterwards.
    me = asyncio.current_task()

    async def child():
        SPAWNED.append((tag, asyncio.current_task() is not me))

    asyncio.get_running_loop().create_task(child())
    return {"task": me.get_name(), "same": asyncio.current_task() is me}


@app.get("/spawned")
async def spawned():
    return {"spawned": sorted(SPAWNED)}


@app.get("/boom")
async def boom():
    raise RuntimeError("boom")
