"""An exception after the response started (a streaming body failing, a
background task, a yield dependency's teardown): FastAPI's
ServerErrorMiddleware still calls the app's 500 handler (its answer is not
sent) and re-raises; Starlette's exception wrapper first turns an exception
the app has a handler for into RuntimeError("Caught handled exception, but
response already started.").  The native tier against FastAPI itself, with
and without user middleware (stack mode), over what the client gets and what
the handlers saw."""
import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, Request
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse, StreamingResponse

from celeris import testclient as tc
from conftest import native_and_asgi_clients

EVENTS: list = []


class Handled(Exception):
    pass


def make_app(handler500: bool, handled: bool, mw: str) -> FastAPI:
    app = FastAPI()
    if handler500:
        @app.exception_handler(500)
        async def on_500(request: Request, exc: Exception):
            EVENTS.append(f"500 handler {type(exc).__name__}: {exc} (cause {type(exc.__cause__).__name__})")
            return JSONResponse({"failed": True}, status_code=500)
    if handled:
        @app.exception_handler(Handled)
        async def on_handled(request: Request, exc: Handled):
            EVENTS.append("Handled handler")
            return JSONResponse({"handled": True}, status_code=418)
    if mw == "http":
        @app.middleware("http")
        async def mark(request: Request, call_next):
            response = await call_next(request)
            EVENTS.append("mw after")
            response.headers["x-mw"] = "1"
            return response
    elif mw == "gzip":
        app.add_middleware(GZipMiddleware, minimum_size=10_000)

    @app.get("/stream-crash")
    async def stream_crash(kind: str = "runtime"):
        async def gen():
            yield b"chunk 0;"
            raise Handled("late") if kind == "handled" else RuntimeError("late")
        return StreamingResponse(gen())

    @app.get("/bg-crash")
    async def bg_crash(tasks: BackgroundTasks, kind: str = "runtime"):
        def fail():
            EVENTS.append("background")
            raise Handled("bg") if kind == "handled" else ValueError("bg")
        tasks.add_task(fail)
        return {"ok": True}

    async def dep():
        try:
            yield 1
        finally:
            EVENTS.append("teardown")

    @app.get("/dep-ok")
    async def dep_ok(d: int = Depends(dep)):
        return {"d": d}

    return app


def _run(client, url):
    EVENTS.clear()
    try:
        r = client.get(url)
        out = (r.status_code, [(k, v) for k, v in r.headers.raw if k.lower() not in (b"date", b"server")],
               r.content)
    except Exception as exc:       # noqa: BLE001 -- the TestClient re-raising is compared too
        out = ("raised", type(exc).__name__, str(exc))
    return out, list(EVENTS)


@pytest.mark.parametrize("mw", ["none", "http", "gzip"])
@pytest.mark.parametrize("handler500,handled", [(True, False), (True, True), (False, False), (False, True)])
@pytest.mark.parametrize("url", ["/stream-crash", "/stream-crash?kind=handled", "/bg-crash",
                                 "/bg-crash?kind=handled", "/dep-ok"])
@pytest.mark.parametrize("raise_server_exceptions", [False, True])
def test_error_after_start_as_fastapi(mw, handler500, handled, url, raise_server_exceptions):
    n, a = native_and_asgi_clients(make_app(handler500, handled, mw),
                                   raise_server_exceptions=raise_server_exceptions)
    before = tc.stats["native"]
    got = _run(n, url)
    assert tc.stats["native"] == before + 1, "served on the ASGI tier"
    assert got == _run(a, url)


def test_the_500_handler_really_ran():
    """A guard for the comparison: the case this file is about."""
    n, _ = native_and_asgi_clients(make_app(True, False, "none"), raise_server_exceptions=False)
    _, events = _run(n, "/stream-crash")
    assert events == ["500 handler RuntimeError: late (cause NoneType)"]
    _, events = _run(native_and_asgi_clients(make_app(True, True, "http"),
                                             raise_server_exceptions=False)[0], "/bg-crash?kind=handled")
    assert events == ["mw after", "background",
                      "500 handler RuntimeError: Caught handled exception, but response already started. "
                      "(cause Handled)"]


def test_middleware_answering_itself_never_runs_a_def_endpoint():
    """Stack mode: a def endpoint is submitted to the thread pool when the
    route runs, not when the request is dispatched."""
    from fastapi.middleware.trustedhost import TrustedHostMiddleware

    app = FastAPI()
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=["good.example"])
    ran = []

    @app.get("/sync")
    def sync():
        ran.append(1)
        return {"ran": True}

    n, a = native_and_asgi_clients(app)
    for client in (n, a, n):
        assert client.get("/sync", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/sync", headers={"host": "good.example"}).json() == {"ran": True}
    assert ran == [1]
