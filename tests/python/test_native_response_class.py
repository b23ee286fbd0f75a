"""Routes with a response_class (route, router or app default) on the native
tier answer byte-for-byte what FastAPI does."""
from typing import Optional

import pytest
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from pydantic import BaseModel

from celeris import testclient as tc
from celeris.native import compile_app
from conftest import answer, native_and_asgi_clients


class Out(BaseModel):
    name: str
    note: Optional[str] = None


class TaggedJSON(Response):
    media_type = "application/vnd.tagged+json"

    def render(self, content) -> bytes:
        return b"TAG:" + repr(content).encode()


def make_app(default=None) -> FastAPI:
    app = FastAPI(default_response_class=default) if default else FastAPI()
    router = APIRouter(prefix="/r", default_response_class=HTMLResponse)

    @app.get("/html", response_class=HTMLResponse)
    async def html():
        return "<b>hi</b>"

    @app.get("/text", response_class=PlainTextResponse, status_code=202)
    def text(q: str = "x"):
        return f"text {q}"

    @app.get("/redirect", response_class=RedirectResponse)
    async def redirect():
        return "/html"

    @app.get("/tagged", response_class=TaggedJSON)
    async def tagged():
        return {"a": [1, 2]}

    @app.get("/model-html", response_class=TaggedJSON, response_model=Out)
    async def model_html():
        return {"name": "n", "extra": 1}

    @app.get("/default-model", response_model=Out)
    async def default_model():
        return {"name": "d"}

    @app.get("/default-plain")
    async def default_plain():
        return {"k": "v"}

    @app.get("/empty", response_class=HTMLResponse, status_code=204)
    async def empty():
        return None

    @router.get("/page")
    async def page():
        return "<p>page</p>"

    app.include_router(router)
    return app


PATHS = ["/html", "/text", "/text?q=zz", "/redirect", "/tagged", "/model-html", "/default-model",
         "/default-plain", "/empty", "/r/page"]


@pytest.mark.parametrize("default", [None, PlainTextResponse, TaggedJSON])
@pytest.mark.parametrize("path", PATHS)
def test_response_class_native_matches_asgi(default, path):
    n, a = native_and_asgi_clients(make_app(default), follow_redirects=False)
    assert answer(n.get(path)) == answer(a.get(path))


def test_response_class_routes_are_native():
    compiled = {e.display_path: e for e in compile_app(make_app()).entries}
    for path in ("/html", "/text", "/redirect", "/tagged", "/model-html", "/r/page"):
        assert compiled[path].plan is not None, (path, compiled[path].reason)
    client = tc.TestClient(make_app())
    before = tc.stats["native"]
    assert client.get("/html").text == "<b>hi</b>"
    assert tc.stats["native"] == before + 1


class ScopeEcho(Response):
    """A Response that runs as an ASGI app (the native tier builds its scope
    from the request head it kept): echoes what the scope says."""

    async def __call__(self, scope, receive, send):
        headers = dict(scope["headers"])
        body = b"|".join([scope["path"].encode(), scope["query_string"],
                          headers.get(b"x-long", b"-"), headers.get(b"x-after", b"-")])
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("size", [0, 10, 150, 224, 400, 6000])
def test_response_running_as_asgi_sees_the_whole_request_head(size):
    """The head is kept inside the NativeCall when short, on the heap when
    long: either way the scope built from it is the request's."""
    app = FastAPI()

    @app.get("/echo/{x}")
    async def echo(x: str):
        return ScopeEcho()

    n, a = native_and_asgi_clients(app)
    headers = {"x-long": "v" * size, "x-after": "end"}
    before = tc.stats["native"]
    got = n.get("/echo/p?q=1", headers=headers)
    assert tc.stats["native"] == before + 1
    assert got.content == b"/echo/p|q=1|" + b"v" * size + b"|end"
    assert answer(got) == answer(a.get("/echo/p?q=1", headers=headers))
