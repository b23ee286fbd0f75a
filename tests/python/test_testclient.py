"""celeris.testclient.TestClient: Starlette's API, every request through the C core."""
from __future__ import annotations

import pytest
from fastapi import BackgroundTasks, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel

from celeris import testclient as celeris_testclient
from celeris.testclient import TestClient

events: list[str] = []
app = FastAPI()


class Item(BaseModel):
    name: str
    price: float


@app.get("/hello")
async def hello(request: Request):
    return {
        "hello": "world",
        "client": list(request.client),
        "scheme": request.url.scheme,
        "root_path": request.scope["root_path"],
        "path": request.url.path,
        "state": request.state._state.get("started", False),
    }


@app.api_route("/both", methods=["GET", "HEAD"])
async def both():
    return {"some": "body"}


@app.post("/items")
def create(item: Item, tasks: BackgroundTasks):
    tasks.add_task(events.append, f"bg:{item.name}")
    return item


@app.get("/set-cookie")
async def set_cookie(response: Response):
    response.set_cookie("session", "abc123")
    return {"ok": True}


@app.get("/read-cookie")
async def read_cookie(request: Request):
    return {"session": request.cookies.get("session")}


@app.get("/redirect")
async def redirect():
    return RedirectResponse("/hello")


@app.get("/stream")
async def stream():
    async def gen():
        for i in range(5):
            yield f"part{i};"

    return StreamingResponse(gen(), media_type="text/plain")


@app.get("/teapot")
async def teapot():
    raise HTTPException(status_code=418, detail="short and stout", headers={"x-tea": "earl grey"})


@app.get("/boom")
async def boom():
    raise RuntimeError("boom")


@app.api_route("/echo", methods=["POST", "PUT"])
async def echo(request: Request):
    body = await request.body()
    return PlainTextResponse(body[::-1])


async def no_response_app(scope, receive, send):
    if scope["type"] == "http":
        return


def test_json_roundtrip_and_scope():
    client = TestClient(app)
    r = client.get("/hello")
    assert r.status_code == 200
    assert r.json() == {"hello": "world", "client": ["testclient", 50000], "scheme": "http",
                        "root_path": "", "path": "/hello", "state": False}
    assert r.headers["content-type"] == "application/json"
    assert "date" not in r.headers and "server" not in r.headers


def test_https_base_url_and_custom_client():
    client = TestClient(app, base_url="https://example.org", client=("10.1.2.3", 1234))
    r = client.get("/hello")
    assert r.json()["scheme"] == "https"
    assert r.json()["client"] == ["10.1.2.3", 1234]


def test_validation_error_body():
    r = TestClient(app).post("/items", json={"name": "x"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "price"]


def test_background_tasks_run_before_return():
    events.clear()
    r = TestClient(app).post("/items", json={"name": "pen", "price": 2})
    assert r.json() == {"name": "pen", "price": 2.0}
    assert events == ["bg:pen"]


def test_cookies_persist():
    client = TestClient(app)
    assert client.get("/set-cookie").status_code == 200
    assert client.cookies.get("session") == "abc123"
    assert client.get("/read-cookie").json() == {"session": "abc123"}


def test_redirects_followed_and_not():
    client = TestClient(app)
    r = client.get("/redirect")
    assert r.status_code == 200 and r.url.path == "/hello"
    r = client.get("/redirect", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/hello"


def test_streaming_response_is_framed_by_the_core():
    r = TestClient(app).get("/stream")
    assert r.text == "part0;part1;part2;part3;part4;"
    # No length from the app: the C core chose chunked framing, which the
    # client decoded -- proof the bytes came from the core, not from Starlette.
    assert r.headers.get("transfer-encoding") == "chunked"


def test_http_exception_with_headers():
    r = TestClient(app).get("/teapot")
    assert r.status_code == 418
    assert r.json() == {"detail": "short and stout"}
    assert r.headers["x-tea"] == "earl grey"


def test_exceptions_propagate():
    with pytest.raises(RuntimeError, match="boom"):
        TestClient(app).get("/boom")


def test_exceptions_as_500_when_not_raising():
    r = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert r.status_code == 500
    assert r.text == "Internal Server Error"


def test_request_bodies():
    client = TestClient(app)
    assert client.post("/echo", content=b"abcdef").content == b"fedcba"
    assert client.put("/echo", content=b"").content == b""

    def gen():
        yield b"chunk-one,"
        yield b"chunk-two"

    assert client.post("/echo", content=gen()).content == b"owt-knuhc,eno-knuhc"
    big = bytes(range(256)) * 4096
    assert client.post("/echo", content=big).content == big[::-1]


def test_head_request():
    r = TestClient(app).head("/both")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["content-length"] == "15"


def test_404_and_405_bodies():
    client = TestClient(app)
    assert client.get("/nope").json() == {"detail": "Not Found"}
    r = client.delete("/hello")
    assert r.status_code == 405 and r.json() == {"detail": "Method Not Allowed"}


def test_root_path():
    r = TestClient(app, root_path="/api").get("/hello")
    assert r.json()["root_path"] == "/api"


def test_lifespan_and_state():
    from contextlib import asynccontextmanager

    seen: list[str] = []

    @asynccontextmanager
    async def lifespan(a):
        seen.append("startup")
        yield {"started": True}
        seen.append("shutdown")

    lapp = FastAPI(lifespan=lifespan)
    lapp.get("/hello")(hello)
    with TestClient(lapp) as client:
        assert seen == ["startup"]
        assert client.get("/hello").json()["state"] is True
    assert seen == ["startup", "shutdown"]


def test_no_response_is_an_error():
    with pytest.raises(AssertionError, match="did not receive any response"):
        TestClient(no_response_app).get("/")
    r = TestClient(no_response_app, raise_server_exceptions=False).get("/")
    assert r.status_code == 500 and r.content == b""


def test_requests_are_counted_as_served_by_the_core():
    before = dict(celeris_testclient.stats)
    client = TestClient(app)
    for _ in range(3):
        client.get("/hello")
    assert celeris_testclient.stats["core"] == before["core"] + 3
    assert celeris_testclient.stats["fallback"] == before["fallback"]


def test_json_response_unicode():
    uapp = FastAPI()

    @uapp.get("/u")
    async def u():
        return JSONResponse({"name": "Zoë ☃ 😀", "ctl": "a\nb"})

    r = TestClient(uapp).get("/u")
    assert r.content == '{"name":"Zoë ☃ 😀","ctl":"a\\nb"}'.encode()


def test_native_tier_build_failure_serves_the_app_on_the_asgi_tier(monkeypatch, caplog):
    # A native-tier bug (e.g. a plan the C side rejects, as FastAPI's
    # Path(validation_alias=...) once produced) must not take the app down:
    # the TestClient, like `celeris run`, serves every route on the ASGI tier.
    from celeris import native

    def broken_build(app, runtime=None):
        raise ValueError("plan: path parameter 'p' not in the template")

    monkeypatch.setattr(native, "build", broken_build)
    bapp = FastAPI()

    @bapp.get("/items/{item_id}")
    async def item(item_id: int):
        return {"item_id": item_id}

    before = dict(celeris_testclient.stats)
    client = TestClient(bapp)
    with caplog.at_level("WARNING", logger="celeris.error"):
        assert client.get("/items/7").json() == {"item_id": 7}
        assert client.get("/items/x").status_code == 422
    stats = celeris_testclient.stats
    assert stats["core"] == before["core"] + 2
    assert stats["native"] == before["native"]
    assert stats["native_build_errors"] == before["native_build_errors"] + 1   # once per app
    assert any("Native tier disabled" in r.getMessage() and "not in the template" in r.getMessage()
               for r in caplog.records)
