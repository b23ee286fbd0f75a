"""The native tier's thread pool (src/binding/threadpool.c): def endpoints
and def dependencies run off the loop, concurrently, with the caller's
contextvars, and exceptions come back as FastAPI's would."""
import asyncio
import contextlib
import contextvars
import threading

import httpx
import pytest

from celeris import _celeris
from conftest import _server_fixture

threadpool_server = _server_fixture("threadpool_server", "threadpool_app:app")


def run(coro):
    return asyncio.run(coro)


@contextlib.contextmanager
def draining_pool(max_threads: int):
    """A ThreadPool on the running loop, which drains its completions;
    shut down at exit."""
    loop = asyncio.get_running_loop()
    pool = _celeris.ThreadPool(loop, max_threads)
    loop.add_reader(pool.fileno(), pool.drain)
    try:
        yield pool
    finally:
        loop.remove_reader(pool.fileno())
        pool.shutdown()


def test_submit_returns_the_result_and_passes_kwargs():
    async def main():
        with draining_pool(4) as pool:
            return await pool.submit(lambda a, b: (a, b, threading.current_thread() is threading.main_thread()),
                                     {"a": 1, "b": "two"})

    assert run(main()) == (1, "two", False)


def test_exceptions_come_back_with_their_type():
    def fail():
        raise KeyError("k")

    async def main():
        with draining_pool(2) as pool:
            with pytest.raises(KeyError):
                await pool.submit(fail, {})
            return await pool.submit(lambda: "after", {})

    assert run(main()) == "after"


def test_contextvars_are_copied_in_and_do_not_leak_out():
    var: contextvars.ContextVar = contextvars.ContextVar("var", default="unset")

    def read_and_set():
        seen = var.get()
        var.set("changed in thread")
        return seen

    async def main():
        with draining_pool(2) as pool:
            var.set("caller")
            seen = await pool.submit(read_and_set, {})
            return seen, var.get()

    assert run(main()) == ("caller", "caller")


def test_calls_that_wait_for_each_other_run_concurrently_up_to_max_threads():
    # Eight calls meet at one barrier: with a serial pool they would never
    # return (the barrier's timeout turns that into BrokenBarrierError).
    barrier = threading.Barrier(8, timeout=20)

    async def main():
        with draining_pool(8) as pool:
            rs = await asyncio.gather(*(pool.submit(lambda i=i: (barrier.wait(), i)[1], {})
                                        for i in range(8)))
            return rs, pool.threads, pool.max_threads

    rs, threads, max_threads = run(main())
    assert rs == list(range(8))
    assert threads <= max_threads == 8


def test_many_short_calls_on_few_threads_all_complete():
    async def main():
        with draining_pool(2) as pool:
            rs = await asyncio.gather(*(pool.submit(lambda i=i: i * i, {}) for i in range(2000)))
            return rs, pool.threads

    rs, threads = run(main())
    assert rs == [i * i for i in range(2000)]
    assert 1 <= threads <= 2


def test_cancelled_future_and_shutdown_leave_no_error():
    gate = threading.Event()

    async def main():
        loop = asyncio.get_running_loop()
        pool = _celeris.ThreadPool(loop, 1)
        loop.add_reader(pool.fileno(), pool.drain)
        first = pool.submit(gate.wait, {"timeout": 20})
        queued = pool.submit(lambda: "never", {})
        first.cancel()              # the call still runs to its end
        gate.set()
        await asyncio.sleep(0)
        loop.remove_reader(pool.fileno())
        pool.shutdown()
        with pytest.raises(RuntimeError):
            pool.submit(lambda: 1, {})
        return first.cancelled(), queued.cancelled() or queued.done()

    assert run(main()) == (True, True)


def test_bad_arguments():
    async def main():
        pool = _celeris.ThreadPool(asyncio.get_running_loop(), 1)
        try:
            with pytest.raises(TypeError):
                pool.submit(print, [])
            with pytest.raises(ValueError):
                _celeris.ThreadPool(asyncio.get_running_loop(), 0)
        finally:
            pool.shutdown()

    run(main())


def test_def_endpoints_run_concurrently_in_the_server(threadpool_server):
    results = {}

    def call(side):
        with httpx.Client(base_url=threadpool_server.base_url, timeout=30) as c:
            results[side] = c.get(f"/rendezvous/{side}").json()

    ts = [threading.Thread(target=call, args=(s,)) for s in ("a", "b")]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert results == {"a": {"side": "a", "met": True}, "b": {"side": "b", "met": True}}


def test_def_dependency_and_endpoint_run_off_the_loop_with_the_request_context(threadpool_server):
    with httpx.Client(base_url=threadpool_server.base_url, timeout=10) as c:
        for _ in range(3):
            assert c.get("/ident").json() == {
                "dep_off_loop": True, "endpoint_off_loop": True,
                "dep_var": "from-async-dep", "endpoint_var_before": "from-async-dep"}
        # what /ident set in its thread did not leak into this request's context
        assert c.get("/plain-def", params={"x": 3}).json() == {"x": 3, "var": "unset", "thread_named": True}


def test_def_endpoint_exception_is_a_500(threadpool_server):
    with httpx.Client(base_url=threadpool_server.base_url, timeout=10) as c:
        r = c.get("/boom")
        assert r.status_code == 500 and r.text == "Internal Server Error"
        assert c.get("/plain-def").status_code == 200
    assert "boom in a worker thread" in threadpool_server.stderr


def test_testclient_serves_def_endpoints_through_the_pool():
    import importlib.util

    from conftest import APPS_DIR

    from celeris.testclient import TestClient

    spec = importlib.util.spec_from_file_location("threadpool_app_tc", APPS_DIR / "threadpool_app.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    app = mod.app

    with TestClient(app) as client:
        assert client.get("/plain-def", params={"x": 5}).json() == {"x": 5, "var": "unset", "thread_named": True}
        assert client.get("/ident").json()["endpoint_off_loop"] is True
