"""The app's user middleware on the native tier (stack mode,
python/celeris/native/middleware.py): GZip, TrustedHost, HTTPSRedirect and
CORS -- Starlette's own classes around the native call -- against FastAPI
itself: same status, headers and body (gzip bodies decompressed: GZip writes
a timestamp), same side effects, and the requests really served natively."""
import gzip
from typing import Annotated

import pytest
from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.middleware.httpsredirect import HTTPSRedirectMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel

from celeris import testclient as tc
from celeris.native import compile_app
from conftest import add_tagging_middleware, native_and_asgi_clients

EVENTS: list = []


class Item(BaseModel):
    name: str
    price: float


class Boom(Exception):
    pass


def make_app(stack: str) -> FastAPI:
    app = FastAPI()
    for name in stack.split("+"):
        if name == "gzip":
            app.add_middleware(GZipMiddleware, minimum_size=100)
        elif name == "trusted":
            app.add_middleware(TrustedHostMiddleware, allowed_hosts=["testserver", "*.example.com"])
        elif name == "https":
            app.add_middleware(HTTPSRedirectMiddleware)
        elif name == "cors":
            app.add_middleware(CORSMiddleware, allow_origins=["https://a.example"], allow_methods=["*"])
        elif name == "http":
            @app.middleware("http")
            async def mark(request: Request, call_next):
                EVENTS.append(f"mw {request.method} {request.url.path}")
                response = await call_next(request)
                response.headers["x-mw"] = str(response.status_code)
                EVENTS.append("mw after")
                return response

    @app.exception_handler(Boom)
    async def boom_handler(request: Request, exc: Boom):
        return JSONResponse({"boom": True, "path": request.url.path}, status_code=418)

    async def dep(n: int = 1):
        EVENTS.append(f"dep {n}")
        try:
            yield n
        finally:
            EVENTS.append("dep close")

    @app.get("/small")
    async def small():
        return {"ok": True}

    @app.get("/big")
    async def big(n: int = 200):
        return {"data": "x" * n}

    @app.get("/items/{item_id}")
    async def item(item_id: int, q: str = ""):
        return {"item_id": item_id, "q": q}

    @app.post("/items")
    async def create(item: Item, d: Annotated[int, Depends(dep)], tasks: BackgroundTasks):
        tasks.add_task(EVENTS.append, "background")
        return {"item": item, "d": d, "pad": "y" * 150}

    @app.get("/sync")
    def sync(n: int = 0):
        return PlainTextResponse("s" * n)

    @app.get("/stream")
    async def stream():
        async def gen():
            for i in range(5):
                yield ("chunk %d " % i) * 40
        return StreamingResponse(gen(), media_type="text/plain")

    @app.get("/http-error")
    async def http_error():
        raise HTTPException(status_code=409, detail="conflict " * 30, headers={"x-e": "1"})

    @app.get("/handled")
    async def handled():
        raise Boom()

    @app.get("/crash")
    async def crash():
        raise RuntimeError("crash")

    return app


REQUESTS = [
    ("GET", "/small", {}, None), ("GET", "/big", {}, None), ("GET", "/big?n=5", {}, None),
    ("GET", "/items/3?q=a", {}, None), ("GET", "/items/x", {}, None), ("GET", "/nope", {}, None),
    ("POST", "/items", {"content-type": "application/json"}, b'{"name": "a", "price": 1}'),
    ("POST", "/items", {"content-type": "application/json"}, b'{"name": 1}'),
    ("GET", "/sync?n=300", {}, None), ("GET", "/stream", {}, None), ("GET", "/http-error", {}, None),
    ("GET", "/handled", {}, None), ("GET", "/crash", {}, None), ("POST", "/small", {}, None),
    ("GET", "/small", {"host": "evil.test"}, None), ("GET", "/big", {"host": "api.example.com"}, None),
    ("OPTIONS", "/small", {"origin": "https://a.example", "access-control-request-method": "GET"}, None),
    ("GET", "/big", {"origin": "https://a.example"}, None), ("HEAD", "/big", {}, None),
]

STACKS = ["gzip", "trusted", "https", "gzip+cors", "cors+trusted+gzip", "https+gzip", "http",
          "gzip+http", "http+cors+trusted"]


def _run(client, method, url, headers, body):
    EVENTS.clear()
    r = client.request(method, url, headers=dict(headers), content=body)
    content = r.content
    raw = [(k, v) for k, v in r.headers.raw if k.lower() != b"content-length"
           or r.headers.get("content-encoding") != "gzip"]
    return r.status_code, raw, content, list(EVENTS)


@pytest.fixture(scope="module", params=STACKS)
def clients(request):
    return native_and_asgi_clients(make_app(request.param), follow_redirects=False)


@pytest.mark.parametrize("method,url,headers,body", REQUESTS)
@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_stack_mode_matches_fastapi(clients, method, url, headers, body, encoding):
    n, a = clients
    headers = dict(headers, **{"accept-encoding": encoding})
    before = tc.stats["native"]
    got = _run(n, method, url, headers, body)
    assert tc.stats["native"] == before + 1, "served on the ASGI tier"
    assert got == _run(a, method, url, headers, body)


def test_gzip_really_compresses_natively():
    app = make_app("gzip")
    n = tc.TestClient(app)
    r = n.get("/big?n=5000", headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip"
    assert r.json() == {"data": "x" * 5000}
    raw = n.get("/big?n=5000", headers={"accept-encoding": "gzip"}, extensions={})
    assert len(gzip.compress(b"x" * 5000)) < 5000 and raw.status_code == 200


def test_unknown_middleware_keeps_the_app_on_the_asgi_tier():
    app = make_app("gzip")
    add_tagging_middleware(app)
    assert "TagMiddleware" in compile_app(app).app_reason
    assert compile_app(make_app("gzip+cors+trusted+https")).app_reason == ""


def _scope_view_app() -> FastAPI:
    from fastapi import APIRouter

    app = FastAPI()

    @app.middleware("http")
    async def view(request: Request, call_next):
        before = list(request.scope)
        response = await call_next(request)
        s = request.scope
        route = s.get("route")
        response.headers["x-view"] = repr((
            before, list(s), getattr(route, "path", None), s.get("path_params"),
            sorted(s["fastapi"]) if isinstance(s.get("fastapi"), dict) else None,
            getattr(s.get("endpoint"), "__name__", None)))
        return response

    @app.get("/top/{x}")
    async def top(x: int):
        return {"x": x}

    @app.get("/req")
    async def req(request: Request):
        return {"p": request.url.path}

    inner = APIRouter(prefix="/in")

    @inner.get("/items/{item_id}")
    async def item(item_id: int, q: str = ""):
        return {"item_id": item_id}

    @inner.post("/only-post")
    async def only_post():
        return {}

    nested = APIRouter(prefix="/nested")

    @nested.get("/n/{k}")
    def deep(k: str):
        return {"k": k}

    inner.include_router(nested)
    app.include_router(inner)
    return app


@pytest.mark.parametrize("url", ["/top/3", "/req", "/in/items/7?q=1", "/in/only-post", "/top/x",
                                 "/nowhere", "/in/nested/n/z"])
def test_dispatch_sees_the_scope_keys_fastapi_adds(url):
    """What a metrics/logging middleware reads after call_next: the scope's
    keys in order, the route's path, path_params, FastAPI's own scope dict
    (included routers) and the endpoint -- as FastAPI's router leaves them."""
    n, a = native_and_asgi_clients(_scope_view_app())
    before = tc.stats["native"]
    got = n.get(url)
    assert tc.stats["native"] == before + 1, "served on the ASGI tier"
    want = a.get(url)
    assert (got.status_code, got.headers["x-view"]) == (want.status_code, want.headers["x-view"])
