"""BaseHTTPMiddleware (`@app.middleware("http")`, dispatch-only subclasses) on
the native tier's stack mode (python/celeris/native/middleware.py) against
FastAPI itself: the same app on the ASGI tier, i.e. FastAPI's and Starlette's
own middleware stack run by Celeris's server.

Each comparison is (status, raw headers, body, EVENTS): EVENTS is what the
app recorded while serving the request -- dispatch code before and after
call_next, endpoint, dependencies with yield and their teardown, streamed
chunks, background tasks -- so the ORDER of those steps is compared too.
The TestClient returns only when the request's background work is done, so
EVENTS is complete when a response is returned.

The dispatch functions cover what stays native (response rewrites, own
responses, exceptions, request.state, request.app, contextvars, reading
query/headers) and what must fall back to the app's own inner stack
(scope rewrites, the body read before call_next, call_next twice): in both
cases the answer must be FastAPI's.  A smaller section runs the same kind of
app over real sockets (`celeris run` with and without --no-native)."""

import json
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Optional

import pytest
from fastapi import (BackgroundTasks, Depends, FastAPI, Header, HTTPException, Request,
                     Response)
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel
from starlette.middleware.base import BaseHTTPMiddleware

from celeris import testclient as tc
from celeris.native import compile_app
from conftest import ServerProcess, native_and_asgi_clients
from rawhttp import Conn, build_request

HERE = Path(__file__).resolve().parent

EVENTS: list = []
CV_IN: ContextVar = ContextVar("CV_IN", default="unset")      # set by dispatch
CV_OUT: ContextVar = ContextVar("CV_OUT", default="unset")    # set by the endpoint


class Item(BaseModel):
    name: str
    price: float


class ItemOut(BaseModel):
    name: str


class Boom(Exception):
    pass


# ---------------------------------------------------------------- the app

def add_routes(app: FastAPI) -> None:
    """The endpoints every app of this module serves."""

    async def dep_yield(q: str = ""):
        EVENTS.append(f"dep enter {q}")
        try:
            yield q
        finally:
            EVENTS.append("dep exit")

    @app.get("/json")
    async def json_route():
        EVENTS.append("endpoint json")
        return {"ok": True, "n": [1, 2]}

    @app.get("/sync")
    def sync_route(n: int = 3):
        EVENTS.append("endpoint sync")
        return {"sync": "s" * n}

    @app.get("/model", response_model=ItemOut)
    async def model_route():
        EVENTS.append("endpoint model")
        return {"name": "kept", "secret": "dropped"}

    @app.get("/text")
    async def text_route():
        return PlainTextResponse("plain text", headers={"x-text": "1"})

    @app.api_route("/headable", methods=["GET", "HEAD"])
    async def headable():
        EVENTS.append("endpoint headable")
        return {"head": "able"}

    @app.get("/stream")
    async def stream_route():
        async def gen():
            for i in range(3):
                EVENTS.append(f"chunk {i}")
                yield f"part {i};"
        return StreamingResponse(gen(), media_type="text/plain", headers={"x-s": "1"})

    @app.get("/stream-crash")
    async def stream_crash():
        async def gen():
            EVENTS.append("chunk 0")
            yield "first"
            raise RuntimeError("mid-stream")
        return StreamingResponse(gen(), media_type="text/plain")

    @app.get("/bg")
    async def bg_route(tasks: BackgroundTasks):
        tasks.add_task(EVENTS.append, "bg")
        EVENTS.append("endpoint bg")
        return {"bg": "scheduled"}

    @app.get("/deps")
    async def deps_route(q: Annotated[str, Depends(dep_yield)], tasks: BackgroundTasks):
        tasks.add_task(EVENTS.append, "bg deps")
        EVENTS.append(f"endpoint deps {q}")
        return {"q": q}

    @app.get("/respparam")
    async def respparam(response: Response):
        response.headers["x-p"] = "endpoint"
        response.set_cookie("rc", "1", max_age=10)
        response.status_code = 201
        return {"param": True}

    @app.get("/http-error")
    async def http_error():
        EVENTS.append("endpoint http-error")
        raise HTTPException(status_code=409, detail="conflict", headers={"x-e": "1"})

    @app.get("/handled")
    async def handled():
        EVENTS.append("endpoint handled")
        raise Boom("handled?")

    @app.get("/crash")
    async def crash():
        EVENTS.append("endpoint crash")
        raise RuntimeError("crash")

    @app.get("/items/{item_id}")
    async def get_item(item_id: int, q: str = ""):
        return {"item_id": item_id, "q": q}

    @app.post("/items")
    async def create_item(item: Item, d: Annotated[str, Depends(dep_yield)], tasks: BackgroundTasks):
        tasks.add_task(EVENTS.append, "bg items")
        EVENTS.append(f"endpoint items {item.name}")
        return {"item": item, "d": d}

    @app.get("/state")
    async def state_route(request: Request):
        request.state.from_endpoint = "set-in-endpoint"
        return {"user": getattr(request.state, "user", "missing")}

    @app.get("/cv")
    async def cv_route():
        CV_OUT.set("set-in-endpoint")
        return {"cv_in": CV_IN.get()}

    @app.get("/header")
    async def header_route(x_token: Annotated[Optional[str], Header()] = None):
        return {"x_token": x_token}

    @app.get("/method")
    async def method_get(request: Request):
        return {"method": request.method}

    @app.get("/redir/")
    async def redir():
        return {"redir": True}

    @app.get("/route-info")
    async def route_info(request: Request):
        # what the router put in the scope for the endpoint
        route = request.scope.get("route")
        return {"route": getattr(route, "path", None), "path_params": request.path_params,
                "endpoint": getattr(request.scope.get("endpoint"), "__name__", None),
                "url": str(request.url), "root_path": request.scope.get("root_path")}


def add_handlers(app: FastAPI) -> None:
    @app.exception_handler(Boom)
    async def boom_handler(request: Request, exc: Boom):
        EVENTS.append("boom handler")
        return JSONResponse({"boom": str(exc)}, status_code=418, headers={"x-h": "boom"})

    @app.exception_handler(Exception)
    async def any_handler(request: Request, exc: Exception):
        # FastAPI hands this one to ServerErrorMiddleware (outside the user middleware)
        EVENTS.append(f"500 handler {type(exc).__name__}")
        return JSONResponse({"error": type(exc).__name__}, status_code=500)


def make_app(*middleware, handlers: bool = True) -> FastAPI:
    """An app with add_routes' endpoints behind `middleware`, listed
    outermost first: a dispatch function (added as @app.middleware("http")
    adds it) or a (class, kwargs) pair (app.add_middleware)."""
    app = FastAPI(title="mwtest")
    app.state.flag = "flag"
    for m in reversed(middleware):
        if callable(m) and not isinstance(m, tuple):
            app.middleware("http")(m)
        else:
            cls, kwargs = m
            app.add_middleware(cls, **kwargs)
    if handlers:
        add_handlers(app)
    add_routes(app)
    return app


# ---------------------------------------------------------------- dispatch functions

def recorder(tag: str):
    async def dispatch(request: Request, call_next):
        EVENTS.append(f"{tag} before {request.method} {request.url.path}")
        response = await call_next(request)
        EVENTS.append(f"{tag} after {response.status_code}")
        return response
    dispatch.__name__ = f"recorder_{tag}"
    return dispatch


async def headers_mw(request: Request, call_next):
    response = await call_next(request)
    response.headers["x-mw"] = "added"
    if "x-p" in response.headers:
        response.headers["x-p"] = "changed-by-mw"
    response.headers.append("x-multi", "1")
    response.headers.append("x-multi", "2")
    response.set_cookie("mwc", "v", httponly=True, path="/")
    if response.status_code == 200:
        response.status_code = 203
    if request.url.path != "/events":   # (the socket app's EVENTS reader)
        EVENTS.append(f"headers after {response.status_code}")
    return response


OWN_PATHS = {"/json", "/sync", "/bg", "/deps", "/stream", "/items", "/crash"}


async def own_mw(request: Request, call_next):
    if request.url.path in OWN_PATHS:
        EVENTS.append(f"own {request.method}")
        return JSONResponse({"own": request.url.path}, status_code=202, headers={"x-own": "1"})
    return await call_next(request)


async def replace_mw(request: Request, call_next):
    response = await call_next(request)
    EVENTS.append(f"replace after {response.status_code}")
    return PlainTextResponse(f"replaced {response.status_code} {response.headers.get('content-type')}",
                             headers={"x-replaced": "1"})


async def rebody_mw(request: Request, call_next):
    response = await call_next(request)
    chunks = []
    async for chunk in response.body_iterator:
        EVENTS.append(f"rebody chunk {len(chunk)}")
        chunks.append(chunk)
    headers = {k: v for k, v in response.headers.items() if k != "content-length"}
    return Response(b"".join(chunks).upper() + b"!", status_code=response.status_code, headers=headers)


async def rewrap_mw(request: Request, call_next):
    response = await call_next(request)
    body = b""
    async for chunk in response.body_iterator:
        body += chunk
    EVENTS.append(f"rewrap {len(body)}")
    return Response(body, status_code=response.status_code, headers=dict(response.headers),
                    media_type=response.media_type)


RAISE_PATHS = {"/json", "/sync", "/bg", "/deps", "/stream", "/items", "/text"}


def raiser(when: str, make_exc):
    async def dispatch(request: Request, call_next):
        if request.url.path in RAISE_PATHS and when == "before":
            EVENTS.append("raising before")
            raise make_exc()
        response = await call_next(request)
        if request.url.path in RAISE_PATHS:
            EVENTS.append("raising after")
            raise make_exc()
        return response
    return dispatch


async def context_mw(request: Request, call_next):
    request.state.user = "alice"
    CV_IN.set("set-in-dispatch")
    app_info = f"{request.app.title}/{request.app.state.flag}"
    response = await call_next(request)
    response.headers["x-state-back"] = str(getattr(request.state, "from_endpoint", "missing"))
    response.headers["x-cv-out"] = CV_OUT.get()
    response.headers["x-cv-in"] = CV_IN.get()
    response.headers["x-app"] = app_info
    return response


async def reader_mw(request: Request, call_next):
    """Reads the request without changing it: no fallback needed."""
    EVENTS.append(f"reader {request.method} {request.url} q={dict(request.query_params)} "
                  f"tok={request.headers.get('x-token')} ct={request.headers.get('content-type')} "
                  f"client={request.client.host if request.client else None} "
                  f"cookies={request.cookies} pp={request.path_params}")
    return await call_next(request)


async def rewrite_path_mw(request: Request, call_next):
    if request.url.path == "/old":
        request.scope["path"] = "/json"
    elif request.url.path == "/old-item":
        request.scope["path"] = "/items/42"
    return await call_next(request)


async def add_header_mw(request: Request, call_next):
    if request.url.path == "/header":
        if request.query_params.get("mode") == "replace":
            request.scope["headers"] = [*request.scope["headers"], (b"x-token", b"replaced-list")]
        else:
            request.scope["headers"].append((b"x-token", b"appended"))
    return await call_next(request)


async def method_mw(request: Request, call_next):
    override = request.headers.get("x-method")
    if override:
        request.scope["method"] = override
    return await call_next(request)


async def query_mw(request: Request, call_next):
    if request.url.path in ("/deps", "/items/3"):
        request.scope["query_string"] = b"q=rewritten"
    return await call_next(request)


async def body_mw(request: Request, call_next):
    if request.method == "POST":
        body = await request.body()
        EVENTS.append(f"body read {len(body)}")
    return await call_next(request)


async def json_mw(request: Request, call_next):
    if request.method == "POST" and request.headers.get("content-type") == "application/json":
        try:
            EVENTS.append(f"json read {await request.json()}")
        except ValueError:
            EVENTS.append("json invalid")
    return await call_next(request)


async def stream_mw(request: Request, call_next):
    if request.method == "POST":
        n = 0
        async for chunk in request.stream():
            n += len(chunk)
        EVENTS.append(f"streamed {n}")
    return await call_next(request)


async def form_mw(request: Request, call_next):
    if request.method == "POST" and request.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"):
        form = await request.form()
        EVENTS.append(f"form {sorted(form.items())}")
    return await call_next(request)


async def disconnected_mw(request: Request, call_next):
    # (not on a request with a body: Starlette's is_disconnected() takes the
    # body's message and drops it, and the endpoint then waits forever for
    # it -- under FastAPI itself as on either tier)
    if request.method == "GET":
        EVENTS.append(f"disconnected {await request.is_disconnected()}")
    return await call_next(request)


async def twice_mw(request: Request, call_next):
    first = await call_next(request)
    EVENTS.append(f"first {first.status_code}")
    second = await call_next(request)
    EVENTS.append(f"second {second.status_code}")
    return second


async def twice_consumed_mw(request: Request, call_next):
    # (GET only: after a first call_next read a request body, FastAPI's
    # second one waits for a disconnect that never comes, on either tier;
    # not /deps: the two calls' background tasks and dependency teardowns
    # then run concurrently, in an order that varies under FastAPI itself)
    # not /stream: the two calls' StreamingResponses then both wait in the
    # server's receive() (Starlette's listen_for_disconnect), which this
    # server refuses for a second concurrent caller (RuntimeError) -- FastAPI
    # gets it wrapped in its task group's ExceptionGroup and cuts the second
    # body, the native route's response raises it unwrapped; uvicorn allows
    # both waits.  An unsupported pattern (call_next twice) meeting a server
    # detail, not a difference of the native tier's own.
    if request.method != "GET" or request.url.path in ("/deps", "/stream"):
        return await call_next(request)
    first = await call_next(request)
    body = b"".join([c async for c in first.body_iterator])
    second = await call_next(request)
    second.headers["x-first"] = str(len(body))
    return second


async def scope_keys_mw(request: Request, call_next):
    """What a dispatch function sees of the scope (a logging middleware's view)."""
    keys = sorted(request.scope)
    response = await call_next(request)
    response.headers["x-scope-keys"] = ",".join(keys)
    response.headers["x-scope-after"] = ",".join(sorted(request.scope))
    return response


async def route_after_mw(request: Request, call_next):
    """A metrics-style middleware: the matched route's template and path
    parameters, read from the scope after call_next."""
    response = await call_next(request)
    route = request.scope.get("route")
    response.headers["x-route"] = str(getattr(route, "path", None))
    response.headers["x-path-params"] = json.dumps(request.path_params)
    return response


class Tagging(BaseHTTPMiddleware):
    """A documented-style subclass: its own __init__ arguments, dispatch only."""

    def __init__(self, app, tag: str, header: str = "x-tag-sub") -> None:
        super().__init__(app)
        self.tag = tag
        self.header = header

    async def dispatch(self, request: Request, call_next):
        EVENTS.append(f"sub {self.tag} before")
        response = await call_next(request)
        response.headers[self.header] = self.tag
        EVENTS.append(f"sub {self.tag} after")
        return response


class OwnCall(BaseHTTPMiddleware):
    """A subclass overriding __call__: not BaseHTTPMiddleware's semantics."""

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)

    async def dispatch(self, request, call_next):  # pragma: no cover - never called
        return await call_next(request)


GZIP = (GZipMiddleware, {"minimum_size": 10})
CORS = (CORSMiddleware, {"allow_origins": ["https://a.example"], "allow_methods": ["*"],
                         "expose_headers": ["x-mw"]})
TRUSTED = (TrustedHostMiddleware, {"allowed_hosts": ["testserver", "*.example.com"]})

# name -> (middleware outermost first, handlers?)
VARIANTS = {
    "recorder": ([recorder("mw")], True),
    "headers": ([headers_mw], True),
    "own": ([own_mw], True),
    "replace": ([replace_mw], True),
    "rebody": ([rebody_mw], True),
    "rewrap": ([rewrap_mw], True),
    "raise-before-boom": ([raiser("before", lambda: Boom("mw before"))], True),
    "raise-before-boom-bare": ([raiser("before", lambda: Boom("mw before"))], False),
    "raise-before-runtime": ([raiser("before", lambda: RuntimeError("mw"))], True),
    "raise-before-http": ([raiser("before", lambda: HTTPException(403, "mw"))], True),
    "raise-before-http-bare": ([raiser("before", lambda: HTTPException(403, "mw"))], False),
    "raise-after-boom": ([raiser("after", lambda: Boom("mw after"))], True),
    "raise-after-runtime-bare": ([raiser("after", lambda: RuntimeError("mw"))], False),
    "raise-after-http": ([raiser("after", lambda: HTTPException(403, "mw"))], True),
    "context": ([context_mw], True),
    "reader": ([reader_mw], True),
    "route-after": ([route_after_mw], True),
    "bare-recorder": ([recorder("mw")], False),
    # the fallback triggers
    "rewrite-path": ([recorder("mw"), rewrite_path_mw], True),
    "add-header": ([add_header_mw], True),
    "method": ([method_mw], True),
    "query": ([query_mw], True),
    "body": ([recorder("mw"), body_mw], True),
    "json": ([json_mw], True),
    "stream-body": ([stream_mw], True),
    "form": ([form_mw], True),
    "disconnected": ([disconnected_mw], True),
    "twice": ([recorder("mw"), twice_mw], True),
    "twice-consumed": ([twice_consumed_mw], True),
    # stacks
    "two-functions": ([recorder("outer"), headers_mw, recorder("inner")], True),
    "http+gzip": ([recorder("mw"), rewrap_mw, GZIP], True),
    "gzip+http": ([GZIP, headers_mw, recorder("mw")], True),
    "http+cors": ([headers_mw, CORS], True),
    "cors+http": ([CORS, headers_mw], True),
    "http+trusted": ([recorder("mw"), TRUSTED], True),
    "trusted+http": ([TRUSTED, recorder("mw")], True),
    "subclass": ([(Tagging, {"tag": "one"}), (Tagging, {"tag": "two", "header": "x-two"}),
                  context_mw], True),
    "subclass+fallback": ([(Tagging, {"tag": "one"}), body_mw, rewrite_path_mw, GZIP], True),
}

JSON = {"content-type": "application/json"}
FORM = {"content-type": "application/x-www-form-urlencoded"}

# (method, url, headers, body)
REQUESTS = [
    ("GET", "/json", {}, None),
    ("GET", "/sync?n=5", {}, None),
    ("GET", "/model", {}, None),
    ("GET", "/text", {}, None),
    ("GET", "/headable", {}, None),
    ("HEAD", "/headable", {}, None),
    ("HEAD", "/json", {}, None),                    # 405: GET routes do not answer HEAD
    ("GET", "/stream", {}, None),
    ("GET", "/stream-crash", {}, None),
    ("GET", "/bg", {}, None),
    ("GET", "/deps?q=a", {}, None),
    ("GET", "/respparam", {}, None),
    ("GET", "/http-error", {}, None),
    ("GET", "/handled", {}, None),
    ("GET", "/crash", {}, None),
    ("GET", "/items/3?q=x", {}, None),
    ("GET", "/items/x", {}, None),                  # 422
    ("POST", "/items", JSON, b'{"name": "a", "price": 1.5}'),
    ("POST", "/items", JSON, b'{"name": 1}'),      # 422
    ("POST", "/items", JSON, b'{"name": "a", '),   # 422 invalid JSON
    ("POST", "/items", FORM, b"name=a&price=2"),   # 422 (form to a JSON body)
    ("GET", "/state", {}, None),
    ("GET", "/cv", {}, None),
    ("GET", "/header", {}, None),
    ("GET", "/header?mode=replace", {}, None),
    ("GET", "/header", {"x-token": "client"}, None),
    ("GET", "/old", {}, None),
    ("GET", "/old-item", {}, None),
    ("POST", "/method", {"x-method": "GET"}, None),
    ("GET", "/method", {"x-method": "DELETE"}, None),
    ("GET", "/route-info", {}, None),
    ("GET", "/nope", {}, None),                     # 404
    ("POST", "/json", {}, None),                    # 405
    ("GET", "/redir", {}, None),                    # 307 (redirect_slashes)
    ("GET", "/redir/", {"cookie": "a=1"}, None),
    ("GET", "/json", {"host": "evil.test"}, None),
    ("GET", "/json", {"origin": "https://a.example"}, None),
    ("OPTIONS", "/json", {"origin": "https://a.example", "access-control-request-method": "GET"}, None),
    ("GET", "/stream", {"accept-encoding": "identity"}, None),
]


def _run(client, method, url, headers=None, body=None) -> tuple:
    """(status, raw headers, body, EVENTS) of one request.  The in-memory
    TestClient writes no date/server headers; they are dropped anyway, as
    they are the server's and not the app's."""
    EVENTS.clear()
    CV_IN.set("unset")
    CV_OUT.set("unset")
    r = client.request(method, url, headers=dict(headers or {}), content=body)
    raw = [(k, v) for k, v in r.headers.raw if k.lower() not in (b"date", b"server")]
    return r.status_code, raw, r.content, list(EVENTS)


def _both(clients, method, url, headers=None, body=None) -> tuple:
    """The answer of the native-tier client and of the ASGI-tier one; the
    first must have been served by the native tier (stack mode: a request
    that falls back to the app's own inner stack counts as native too)."""
    n, a = clients
    before = tc.stats["native"]
    got = _run(n, method, url, headers, body)
    assert tc.stats["native"] == before + 1, "served on the ASGI tier"
    return got, _run(a, method, url, headers, body)


@pytest.fixture(scope="module", params=list(VARIANTS))
def variant(request):
    middleware, handlers = VARIANTS[request.param]
    app = make_app(*middleware, handlers=handlers)
    assert compile_app(app).app_reason == "", "the app must be able to run on the native tier"
    return request.param, native_and_asgi_clients(app, follow_redirects=False)


@pytest.mark.parametrize("method,url,headers,body", REQUESTS,
                         ids=[f"{m} {u} {sorted(h)} {b[:12]!r}" if b else f"{m} {u} {sorted(h)}"
                              for m, u, h, b in REQUESTS])
def test_dispatch_matches_fastapi(variant, method, url, headers, body):
    name, clients = variant
    got, want = _both(clients, method, url, headers, body)
    assert got == want, name


# ---------------------------------------------------------------- focused cases

def test_background_task_runs_after_the_dispatch_post_code():
    clients = native_and_asgi_clients(make_app(recorder("mw"), headers_mw))
    for url in ("/bg", "/deps?q=z"):
        got, want = _both(clients, "GET", url)
        assert got == want
        events = got[3]
        bg = [e for e in events if e.startswith("bg")]
        assert len(bg) == 1 and events.index("mw after 203") < events.index(bg[0]), events
    got, want = _both(clients, "POST", "/items", JSON, b'{"name": "n", "price": 2}')
    assert got == want
    assert got[3].index("mw after 203") < got[3].index("bg items"), got


def test_dependency_teardown_order_matches_fastapi():
    clients = native_and_asgi_clients(make_app(recorder("outer"), recorder("inner")))
    got, want = _both(clients, "GET", "/deps?q=t")
    assert got == want
    events = got[3]
    assert events.index("dep enter t") < events.index("endpoint deps t") < events.index("dep exit")
    assert events.index("outer before GET /deps") < events.index("inner before GET /deps")


def test_request_state_both_ways_and_request_app():
    clients = native_and_asgi_clients(make_app(context_mw))
    got, want = _both(clients, "GET", "/state")
    assert got == want
    headers = dict(got[1])
    assert json.loads(got[2]) == {"user": "alice"}
    assert headers[b"x-state-back"] == b"set-in-endpoint" and headers[b"x-app"] == b"mwtest/flag"


def test_contextvars_flow_into_the_endpoint_not_back():
    # Starlette runs call_next's app in a child task (a copied context): a
    # variable the dispatch set is seen by the endpoint, one the endpoint set
    # is not seen by the dispatch afterwards.
    clients = native_and_asgi_clients(make_app(context_mw))
    got, want = _both(clients, "GET", "/cv")
    assert got == want
    headers = dict(got[1])
    assert json.loads(got[2]) == {"cv_in": "set-in-dispatch"}
    assert headers[b"x-cv-out"] == b"unset" and headers[b"x-cv-in"] == b"set-in-dispatch"
    # and nothing leaks into the next request
    got, want = _both(clients, "GET", "/cv")
    assert got == want and headers[b"x-cv-out"] == b"unset"


@pytest.mark.parametrize("method,url,headers,body,expect", [
    ("GET", "/old", {}, None, {"ok": True, "n": [1, 2]}),
    ("GET", "/old-item", {}, None, {"item_id": 42, "q": ""}),
    ("GET", "/header", {}, None, {"x_token": "appended"}),
    ("GET", "/header?mode=replace", {}, None, {"x_token": "replaced-list"}),
    ("POST", "/method", {"x-method": "GET"}, None, {"method": "GET"}),
    ("GET", "/deps?q=orig", {}, None, {"q": "rewritten"}),
    ("GET", "/items/3?q=orig", {}, None, {"item_id": 3, "q": "rewritten"}),
])
def test_scope_rewrites_reach_the_router(method, url, headers, body, expect):
    app = make_app(rewrite_path_mw, add_header_mw, method_mw, query_mw)
    clients = native_and_asgi_clients(app)
    got, want = _both(clients, method, url, headers, body)
    assert got == want
    assert got[0] == 200 and json.loads(got[2]) == expect


@pytest.mark.parametrize("mw", [body_mw, json_mw, form_mw, stream_mw],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("headers,body", [
    (JSON, b'{"name": "bodied", "price": 3}'),
    (FORM, b"name=bodied&price=3"),
    (JSON, b"{}"),
])
def test_body_read_before_call_next(mw, headers, body):
    clients = native_and_asgi_clients(make_app(recorder("mw"), mw))
    got, want = _both(clients, "POST", "/items", headers, body)
    assert got == want
    if mw in (body_mw, json_mw) and body.startswith(b'{"name"'):
        # the endpoint still gets the body the dispatch read
        assert got[0] == 200 and json.loads(got[2])["item"]["name"] == "bodied", got


@pytest.mark.parametrize("mw", [twice_mw, twice_consumed_mw], ids=lambda f: f.__name__)
@pytest.mark.parametrize("method,url,headers,body", [
    ("GET", "/json", {}, None), ("GET", "/bg", {}, None), ("GET", "/deps?q=2", {}, None),
    ("GET", "/stream", {}, None), ("GET", "/crash", {}, None), ("GET", "/handled", {}, None),
    ("POST", "/items", JSON, b'{"name": "t", "price": 1}'),
])
def test_call_next_twice(mw, method, url, headers, body):
    clients = native_and_asgi_clients(make_app(recorder("mw"), mw))
    got, want = _both(clients, method, url, headers, body)
    assert got == want


async def query_sync_mw(request: Request, call_next):
    request.scope["query_string"] = b"n=4"
    return await call_next(request)


@pytest.mark.parametrize("mw", [own_mw, raiser("before", lambda: Boom("before")), disconnected_mw,
                                query_sync_mw],
                         ids=["own-response", "raise-before", "is_disconnected", "query-rewrite"])
def test_def_endpoint_runs_once_or_never_as_under_fastapi(mw):
    # a def endpoint runs in the threadpool: when the dispatch never calls
    # call_next it must not run at all, and when the request falls back to
    # the app's own stack (is_disconnected, a rewrite) it must run once.
    # Repeated: a race shows in some requests only.
    clients = native_and_asgi_clients(make_app(mw))
    mismatches = set()
    for _ in range(500):
        got, want = _both(clients, "GET", "/sync?n=2")
        if got != want:
            mismatches.add((repr(got), repr(want)))
    assert mismatches == set()


def test_reading_query_and_headers_keeps_the_native_route():
    clients = native_and_asgi_clients(make_app(reader_mw))
    for args in [("GET", "/items/5?q=r", {"x-token": "t", "cookie": "c=1"}, None),
                 ("POST", "/items", JSON, b'{"name": "r", "price": 1}')]:
        got, want = _both(clients, *args)
        assert got == want and got[0] == 200


@pytest.mark.parametrize("url", ["/json", "/items/7", "/route-info"])
def test_dispatch_sees_the_scope_fastapi_gives_it(url):
    # a logging middleware listing request.scope, before and after call_next
    # (after it, FastAPI's router has added route, endpoint, path_params ...)
    clients = native_and_asgi_clients(make_app(scope_keys_mw))
    got, want = _both(clients, "GET", url)
    assert got == want


@pytest.mark.parametrize("url,route", [("/items/7?q=1", "/items/{item_id}"), ("/json", "/json"),
                                       ("/route-info", "/route-info")])
def test_route_in_scope_after_call_next(url, route):
    clients = native_and_asgi_clients(make_app(route_after_mw))
    got, want = _both(clients, "GET", url)
    assert got == want
    assert dict(got[1])[b"x-route"] == route.encode()


@pytest.mark.parametrize("exc_factory,handlers", [
    (lambda: HTTPException(status_code=401, detail="no"), True),
    (lambda: HTTPException(status_code=401, detail="no"), False),
    (lambda: Boom("in dispatch"), True),
    (lambda: Boom("in dispatch"), False),
    (lambda: ValueError("in dispatch"), False),
], ids=["http-handlers", "http-bare", "boom-handlers", "boom-bare", "value-bare"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_exception_in_dispatch_is_answered_as_fastapi_does(exc_factory, handlers, when):
    # BaseHTTPMiddleware sits outside FastAPI's ExceptionMiddleware: the
    # app's handlers for these types are not consulted (FastAPI answers 500)
    app = make_app(recorder("outer"), raiser(when, exc_factory), handlers=handlers)
    clients = native_and_asgi_clients(app)
    for url in ("/json", "/bg", "/deps?q=e", "/stream"):
        got, want = _both(clients, "GET", url)
        assert got == want, url
        assert got[0] == 500


def test_exception_in_dispatch_with_raise_server_exceptions():
    app = make_app(raiser("after", lambda: Boom("raised")))
    n, a = native_and_asgi_clients(app, raise_server_exceptions=True)
    outcomes = []
    for client in (n, a):
        EVENTS.clear()
        with pytest.raises(Boom) as info:
            client.get("/bg")
        outcomes.append((str(info.value), list(EVENTS)))
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize("middleware", [
    [recorder("mw"), GZIP], [GZIP, recorder("mw")], [headers_mw, CORS], [CORS, headers_mw],
    [recorder("mw"), TRUSTED], [TRUSTED, recorder("mw")],
], ids=["http+gzip", "gzip+http", "http+cors", "cors+http", "http+trusted", "trusted+http"])
@pytest.mark.parametrize("method,url,headers", [
    ("GET", "/sync?n=500", {"accept-encoding": "gzip"}),
    ("GET", "/stream", {"accept-encoding": "gzip", "origin": "https://a.example"}),
    ("OPTIONS", "/json", {"origin": "https://a.example", "access-control-request-method": "GET"}),
    ("OPTIONS", "/json", {"origin": "https://b.example", "access-control-request-method": "GET"}),
    ("GET", "/bg", {"host": "x.example.com", "origin": "https://a.example"}),
    ("GET", "/bg", {"host": "evil.test"}),
])
def test_stacked_with_starlette_middleware(middleware, method, url, headers):
    clients = native_and_asgi_clients(make_app(*middleware))
    got, want = _both(clients, method, url, headers)
    assert got == want


def test_subclass_with_init_args():
    app = make_app((Tagging, {"tag": "a"}), (Tagging, {"tag": "b", "header": "x-b"}))
    clients = native_and_asgi_clients(app)
    got, want = _both(clients, "GET", "/bg")
    assert got == want
    headers = dict(got[1])
    assert headers[b"x-tag-sub"] == b"a" and headers[b"x-b"] == b"b"
    assert got[3][:2] == ["sub a before", "sub b before"]


def test_subclass_overriding_call_keeps_the_app_on_the_asgi_tier():
    app = make_app((OwnCall, {}), recorder("mw"))
    assert "OwnCall" in compile_app(app).app_reason
    assert compile_app(make_app((Tagging, {"tag": "x"}), recorder("mw"))).app_reason == ""
    n, a = native_and_asgi_clients(app)
    before = tc.stats["native"]
    got = _run(n, "GET", "/bg")
    assert tc.stats["native"] == before
    assert got == _run(a, "GET", "/bg")


@pytest.mark.parametrize("method,url,status", [
    ("GET", "/nope", 404), ("DELETE", "/json", 405), ("GET", "/redir", 307),
    ("GET", "/redir?x=1", 307), ("HEAD", "/nope", 404),
])
def test_router_answers_behind_the_middleware(method, url, status):
    clients = native_and_asgi_clients(make_app(recorder("mw"), headers_mw),
                                      follow_redirects=False)
    got, want = _both(clients, method, url)
    assert got == want
    assert got[0] == status and "mw after " + str(status) in got[3]


# ---------------------------------------------------------------- over real sockets

async def _events_endpoint_mw(request: Request, call_next):
    # the recorder of the socket app, silent for /events itself
    if request.url.path == "/events":
        return await call_next(request)
    return await recorder("sock")(request, call_next)


def make_socket_app() -> FastAPI:
    app = make_app(_events_endpoint_mw, headers_mw, json_mw, rewrite_path_mw, GZIP)

    @app.get("/events")
    async def events(clear: bool = False):
        out = list(EVENTS)
        if clear:
            EVENTS.clear()
        return out

    return app


# served by `celeris run test_native_http_middleware:SOCKET_APP --app-dir tests/python`
SOCKET_APP = make_socket_app()


def _socket_server(*args: str):
    @pytest.fixture(scope="module")
    def fixture():
        srv = ServerProcess("test_native_http_middleware:SOCKET_APP", "--no-access-log", *args,
                            app_dir=HERE).wait_started()
        try:
            yield srv
        finally:
            srv.stop()
    return fixture


native_server = _socket_server()
asgi_server = _socket_server("--no-native")

SOCKET_REQUESTS = [
    ("GET", "/json", [], b""),
    ("GET", "/sync?n=400", [("Accept-Encoding", "identity")], b""),
    ("GET", "/stream", [], b""),
    ("GET", "/bg", [], b""),
    ("GET", "/deps?q=s", [], b""),
    ("GET", "/respparam", [], b""),
    ("GET", "/http-error", [], b""),
    ("GET", "/handled", [], b""),
    ("GET", "/items/x", [], b""),
    ("POST", "/items", [("Content-Type", "application/json")], b'{"name": "sock", "price": 9}'),
    ("POST", "/items", [("Content-Type", "application/json")], b'{"name": 5}'),
    ("GET", "/old", [], b""),
    ("GET", "/nope", [], b""),
    ("GET", "/redir", [], b""),
    ("HEAD", "/headable", [], b""),
]


def _comparable(r) -> tuple:
    # the date header is the server's clock, not the app's answer
    return (r.status, r.reason, [(k, v) for k, v in r.headers if k != "date"], r.body)


def _settled_events(c: Conn, n_bg: int) -> list:
    """EVENTS of the server, once every background task and dependency
    teardown of the requests sent so far has run (they run after the
    response is written): polled, bounded by a deadline in seconds."""
    deadline = time.monotonic() + 10.0
    while True:
        events = c.request("GET", "/events").json()
        done = (events.count("dep exit") == sum(e.startswith("dep enter") for e in events)
                and sum(e.startswith("bg") for e in events) >= n_bg)
        if done or time.monotonic() > deadline:
            c.request("GET", "/events?clear=true")
            return events


def _side_effects(events: list) -> list:
    """The server's EVENTS of a connection's requests, as a multiset: over
    a real connection a request's background task and dependency teardown
    run after its response was written, concurrently with the next request
    -- on either tier, under any server -- so their order relative to the
    next request's events is not the app's answer (the in-memory tests above
    compare the order within one request)."""
    return sorted(events)


def keep_alive(addr) -> tuple:
    with Conn(addr) as c:
        c.request("GET", "/events?clear=true")
        answers = [_comparable(c.request(m, p, h, b)) for m, p, h, b in SOCKET_REQUESTS]
        return answers, _side_effects(_settled_events(c, 3))


def pipelined(addr) -> tuple:
    with Conn(addr) as c:
        c.request("GET", "/events?clear=true")
        c.send(b"".join(build_request(m, p, h, b) for m, p, h, b in SOCKET_REQUESTS))
        answers = [_comparable(c.read_response(m)) for m, _, _, _ in SOCKET_REQUESTS]
        return answers, _side_effects(_settled_events(c, 3))


def test_keep_alive_over_sockets_matches_fastapi(native_server, asgi_server):
    got = keep_alive(native_server.addr)
    assert got == keep_alive(asgi_server.addr)
    assert got[0][9][0] == 203 and b'"sock"' in got[0][9][3]


def test_pipelined_over_sockets_matches_fastapi(native_server, asgi_server):
    assert pipelined(native_server.addr) == pipelined(asgi_server.addr)


def test_post_body_read_by_dispatch_over_sockets(native_server, asgi_server):
    def post(addr):
        with Conn(addr) as c:
            c.request("GET", "/events?clear=true")
            rs = [_comparable(c.request("POST", "/items", [("Content-Type", "application/json")],
                                        b'{"name": "n%d", "price": %d}' % (i, i)))
                  for i in range(3)]
            return rs, _side_effects(_settled_events(c, 3))
    got = post(native_server.addr)
    assert got == post(asgi_server.addr)
    assert [json.loads(r[3])["item"]["name"] for r in got[0]] == ["n0", "n1", "n2"]
    assert "json read {'name': 'n0', 'price': 0}" in got[1]
