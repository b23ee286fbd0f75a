"""CORSMiddleware run by the native tier must answer byte-for-byte what the
middleware itself does under FastAPI (native tier on vs off), for several
configurations, with and without Origin, cookies, preflights, errors and
streaming responses."""

import pytest
from fastapi import Depends, FastAPI, HTTPException, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from celeris import testclient as tc
from celeris.native import compile_app
from conftest import add_tagging_middleware, answer, native_and_asgi_clients

CONFIGS = {
    "star": dict(allow_origins=["*"]),
    "list": dict(allow_origins=["https://a.example", "https://b.example"], allow_methods=["GET", "POST"],
                 expose_headers=["x-total"]),
    "creds": dict(allow_origins=["*"], allow_credentials=True, allow_headers=["*"]),
    "regex": dict(allow_origin_regex=r"https://.*\.example\.org", allow_credentials=True, max_age=60),
}


class Item(BaseModel):
    name: str


def make_app(config: dict) -> FastAPI:
    app = FastAPI()
    app.add_middleware(CORSMiddleware, **config)

    @app.get("/plain")
    async def plain():
        return {"hello": "world"}

    @app.get("/vary")
    async def vary(response: Response):
        response.headers["vary"] = "Accept-Encoding"
        return "v"

    @app.get("/http-error")
    async def http_error():
        raise HTTPException(status_code=403, detail="no", headers={"x-a": "1"})

    @app.get("/boom")
    async def boom():
        raise RuntimeError("boom")

    @app.get("/stream")
    async def stream():
        async def gen():
            yield b"x"
        return StreamingResponse(gen())

    async def dep(q: int = 0) -> int:
        return q

    @app.post("/items")
    async def items(item: Item, q: int = Depends(dep)):
        return {"name": item.name, "q": q}

    return app


HEADERS = [
    {}, {"origin": "https://a.example"}, {"origin": "https://c.example"},
    {"origin": "https://x.example.org", "cookie": "a=1"}, {"origin": "null"},
    {"origin": "https://b.example", "cookie": "s=1"},
]
PATHS = ["/plain", "/vary", "/http-error", "/boom", "/stream", "/nope"]


def _send(client, method, url, headers, content=None):
    return answer(client.request(method, url, headers=headers, content=content))


@pytest.fixture(scope="module")
def clients():
    return {name: native_and_asgi_clients(make_app(cfg)) for name, cfg in CONFIGS.items()}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("hi", range(len(HEADERS)))
def test_cors_native_matches_asgi(clients, config, path, hi):
    n, a = clients[config]
    h = HEADERS[hi]
    assert _send(n, "GET", path, h) == _send(a, "GET", path, h)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_cors_preflight_and_body(clients, config):
    n, a = clients[config]
    pre = {"origin": "https://a.example", "access-control-request-method": "POST",
           "access-control-request-headers": "content-type"}
    assert _send(n, "OPTIONS", "/items", pre) == _send(a, "OPTIONS", "/items", pre)
    h = {"origin": "https://a.example", "content-type": "application/json"}
    for body in (b'{"name":"n"}', b'{"nam'):
        assert _send(n, "POST", "/items?q=3", h, body) == _send(a, "POST", "/items?q=3", h, body)


def test_cors_app_is_native():
    app = make_app(CONFIGS["list"])
    compiled = compile_app(app)
    assert not compiled.app_reason and compiled.cors is not None
    client = tc.TestClient(app)
    before = tc.stats["native"]
    r = client.get("/plain", headers={"origin": "https://a.example"})
    assert r.headers["access-control-allow-origin"] == "https://a.example"
    assert tc.stats["native"] == before + 1


def test_other_middleware_keeps_app_on_asgi_tier():
    from starlette.middleware.gzip import GZipMiddleware

    app = make_app(CONFIGS["star"])
    app.add_middleware(GZipMiddleware)
    assert compile_app(app).app_reason == ""        # stack mode (test_native_middleware.py)
    add_tagging_middleware(app)
    assert "TagMiddleware" in compile_app(app).app_reason
