"""Routes of included routers (FastAPI keeps `_IncludedRouter` entries) are
compiled from their effective inclusion contexts, in FastAPI's matching
order, and answer byte-for-byte what FastAPI does."""
from typing import Annotated, Optional

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from celeris import testclient as tc
from celeris.native import compile_app
from conftest import answer_with_events, native_and_asgi_clients

CALLS: list = []


class Item(BaseModel):
    name: str
    price: float = 0


async def router_dep(x_token: Annotated[Optional[str], Header()] = None):
    CALLS.append(("router_dep", x_token))
    if x_token == "bad":
        raise HTTPException(status_code=403, detail="bad token")


async def inner_dep(q: int = 0) -> int:
    CALLS.append(("inner_dep", q))
    return q


def make_app() -> FastAPI:
    app = FastAPI()
    items = APIRouter(prefix="/items", tags=["items"], dependencies=[Depends(router_dep)])
    inner = APIRouter(prefix="/inner")
    text = APIRouter(prefix="/text", default_response_class=PlainTextResponse)

    @items.get("/")
    async def list_items(limit: int = 10):
        return {"limit": limit}

    @items.get("/{item_id}")
    async def get_item(item_id: int, q: Annotated[int, Depends(inner_dep)]):
        return {"item_id": item_id, "q": q}

    @items.post("/", response_model=Item, status_code=201)
    async def create(item: Item):
        return item

    @inner.get("/deep/{name}")
    def deep(name: str):
        return {"deep": name}

    @text.get("/hello")
    async def hello():
        return "hello"

    @app.get("/items/special")     # registered before the include: wins over /items/{item_id}
    async def special():
        return "special"

    items.include_router(inner)
    app.include_router(items)
    app.include_router(text)
    app.include_router(inner, prefix="/again", dependencies=[Depends(router_dep)])

    @app.get("/after")
    async def after():
        return "after"

    return app


REQUESTS = [
    ("GET", "/items/", {}), ("GET", "/items/?limit=3", {}), ("GET", "/items", {}),
    ("GET", "/items/5", {}), ("GET", "/items/5?q=2", {}), ("GET", "/items/x", {}),
    ("GET", "/items/5", {"x-token": "bad"}), ("GET", "/items/special", {}),
    ("GET", "/items/inner/deep/a", {}), ("GET", "/again/inner/deep/b", {"x-token": "t"}),
    ("GET", "/again/inner/deep/b", {"x-token": "bad"}), ("GET", "/text/hello", {}),
    ("GET", "/after", {}), ("DELETE", "/items/5", {}), ("GET", "/nope", {}),
]


@pytest.fixture(scope="module")
def clients():
    return native_and_asgi_clients(make_app())


def _run(client, method, url, headers=None, content=None):
    return answer_with_events(CALLS, client, method, url, headers=headers, content=content)


@pytest.mark.parametrize("method,url,headers", REQUESTS)
def test_included_routes_match_asgi(clients, method, url, headers):
    n, a = clients
    assert _run(n, method, url, headers) == _run(a, method, url, headers)


def test_included_post_matches_asgi(clients):
    n, a = clients
    for body in (b'{"name":"a","price":2}', b'{"price":2}', b'{'):
        h = {"content-type": "application/json"}
        assert _run(n, "POST", "/items/", h, body) == _run(a, "POST", "/items/", h, body)


def test_included_routes_are_native(clients):
    compiled = {e.display_path: e for e in compile_app(make_app()).entries}
    for path in ("/items/", "/items/{item_id}", "/items/inner/deep/{name}", "/again/inner/deep/{name}",
                 "/after", "/items/special"):
        assert compiled[path].plan is not None, (path, compiled[path].reason)
    assert compiled["/text/hello"].plan is not None      # router default_response_class: native too
    n, _ = clients
    before = tc.stats["native"]
    n.get("/items/5")
    n.get("/again/inner/deep/z")
    assert tc.stats["native"] == before + 2
