"""The native tier must answer byte-for-byte what FastAPI (the ASGI tier)
answers.  Every request below is sent through the C core twice -- native tier
on and off -- and status, raw headers and body must be identical; requests to
compiled routes must really have been served natively."""
from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Optional

import pytest
from fastapi import FastAPI, HTTPException, Path, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel

from celeris import testclient as tc
from celeris.native import compile_app
from conftest import add_tagging_middleware, answer, native_and_asgi_clients


class Color(str, enum.Enum):
    red = "red"
    blue = "blue"


class Thing(BaseModel):
    name: str
    size: int = 1


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/plain")
    async def plain():
        return {"hello": "world"}

    @app.get("/sync")
    def sync():
        return {"sync": True, "n": None, "f": 1.5, "l": [1, "2", 3.25e-7, 1e22]}

    @app.get("/items/{item_id}")
    async def item(item_id: int, q: Optional[str] = None):
        return {"item_id": item_id, "q": q}

    @app.get("/users/{name}/posts/{post}")
    async def posts(name: str, post: int, limit: int = 10, flag: bool = False):
        return {"name": name, "post": post, "limit": limit, "flag": flag}

    @app.get("/conv/{n:int}/{f:float}/{u:uuid}/{p:path}")
    async def conv(n: int, f: float, u: uuid.UUID, p: str):
        return {"n": n, "f": f, "u": str(u), "p": p}

    @app.get("/constrained")
    async def constrained(q: Annotated[str, Query(min_length=2, max_length=5)] = "ab",
                          n: Annotated[int, Query(gt=0, le=100)] = 5):
        return [q, n]

    @app.get("/required")
    async def required(q: str, n: int):
        return {"q": q, "n": n}

    @app.get("/alias")
    async def alias(item_query: Annotated[str, Query(alias="item-query")] = "d"):
        return {"v": item_query}

    @app.get("/enum/{color}")
    async def color(color: Color):
        return {"color": color}

    @app.get("/status", status_code=201)
    async def status():
        return {"created": True}

    @app.get("/nocontent", status_code=204)
    async def nocontent():
        return None

    @app.get("/teapot")
    async def teapot():
        raise HTTPException(status_code=418, detail={"tea": ["earl", "grey"]}, headers={"X-Tea": "1"})

    @app.get("/notmod")
    async def notmod():
        raise HTTPException(status_code=304)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("kaboom")

    @app.get("/rich")
    async def rich():
        return {"d": date(2024, 1, 2), "dt": datetime(2024, 1, 2, 3, 4, 5), "dec": Decimal("1.50"),
                "u": uuid.UUID(int=1), "set": {1}, "tuple": (1, 2), "enum": Color.red,
                "model": Thing(name="x"), "_sa_hidden": 1, "bytes": b"raw"}

    @app.get("/model")
    async def model():
        return Thing(name="y", size=3)

    @app.get("/nan")
    async def nan():
        return {"x": float("nan")}

    @app.get("/response")
    async def response():
        return PlainTextResponse("hi there", status_code=202, headers={"x-custom": "v"})

    @app.get("/json-response")
    async def json_response():
        return JSONResponse({"a": 1}, headers={"set-cookie": "a=b"})

    @app.get("/raw-response")
    def raw_response():
        return Response(b"\x00\x01", media_type="application/octet-stream")

    @app.get("/stream")
    async def stream():
        async def gen():
            yield b"a"
            yield b"b"
        return StreamingResponse(gen(), media_type="text/plain")

    @app.get("/unicode")
    async def unicode():
        return {"s": "zoë ☃ 😀 \u2028 \x00 \"quoted\" back\\slash", "k\u00e9y": 1}

    @app.get("/bigint")
    async def bigint():
        return {"big": 2**80, "neg": -(2**63), "f": [0.1, -0.0, 1e16, 1e-5, 123.456]}

    @app.post("/post-only")
    async def post_only():
        return {"post": True}

    @app.api_route("/multi", methods=["GET", "DELETE"], include_in_schema=False)
    async def multi():
        return "multi"

    return app


REQUESTS = [
    ("GET", "/plain"), ("HEAD", "/plain"), ("GET", "/sync"),
    ("GET", "/items/5"), ("GET", "/items/5?q=hello"), ("GET", "/items/-7?q="),
    ("GET", "/items/007"), ("GET", "/items/abc"), ("GET", "/items/1.5"), ("GET", "/items/99999999999999999999"),
    ("GET", "/items/5?q=a&q=b"), ("GET", "/items/5?q=%C3%A9t%C3%A9+x"), ("GET", "/items/5?q=%ZZ"),
    ("GET", "/items/%35"), ("GET", "/items/5?q=%E2%82"), ("GET", "/items/5?q=\xe9"),
    ("GET", "/users/ann/posts/3"), ("GET", "/users/ann/posts/3?limit=2&flag=true"),
    ("GET", "/users/ann/posts/3?flag=yes"), ("GET", "/users/ann/posts/3?flag=maybe"),
    ("GET", "/users/a%2Fb/posts/3"), ("GET", "/users/%E2%98%83/posts/1"),
    ("GET", "/conv/1/2.5/00000000-0000-0000-0000-000000000001/a/b/c"),
    ("GET", "/conv/x/2.5/00000000-0000-0000-0000-000000000001/a"),
    ("GET", "/constrained"), ("GET", "/constrained?q=a"), ("GET", "/constrained?q=abcdef&n=0"),
    ("GET", "/constrained?q=abc&n=100"), ("GET", "/required"), ("GET", "/required?q=1"),
    ("GET", "/required?q=1&n=2"), ("GET", "/alias?item-query=zz"), ("GET", "/alias?item_query=zz"),
    ("GET", "/enum/red"), ("GET", "/enum/green"), ("GET", "/status"), ("GET", "/nocontent"),
    ("GET", "/teapot"), ("GET", "/notmod"), ("GET", "/boom"), ("GET", "/rich"), ("GET", "/model"),
    ("GET", "/nan"), ("GET", "/response"), ("GET", "/json-response"), ("GET", "/raw-response"),
    ("GET", "/stream"), ("GET", "/unicode"), ("GET", "/bigint"), ("GET", "/post-only"),
    ("POST", "/post-only"), ("PUT", "/plain"), ("GET", "/multi"), ("DELETE", "/multi"),
    ("POST", "/multi"), ("GET", "/plain/"), ("GET", "/nope"), ("GET", "/docs"),
    ("GET", "/openapi.json"), ("OPTIONS", "/plain"),
]


def _send(client, method: str, url: str):
    return answer(client.request(method, url))


@pytest.fixture(scope="module")
def clients():
    return native_and_asgi_clients(make_app())


@pytest.mark.parametrize("method,url", REQUESTS)
def test_native_matches_asgi(clients, method, url):
    native, asgi = clients
    assert _send(native, method, url) == _send(asgi, method, url)


def test_compiled_routes_are_served_natively(clients):
    native, _ = clients
    before = tc.stats["native"]
    for url in ("/plain", "/sync", "/items/5?q=x", "/users/a/posts/1", "/status", "/boom", "/rich"):
        native.get(url)
    assert tc.stats["native"] - before == 7


def test_invalid_parameters_are_answered_natively_by_fastapis_validation(clients):
    # a simple plan's invalid/missing parameter: FastAPI's request_params_to_args
    # and RequestValidationError on the native tier (native/invalid.py)
    native, asgi = clients
    for url in ("/items/abc", "/items/abc?q=1", "/users/ann/posts/x?limit=y", "/users/ann/posts/3?flag=maybe"):
        before = tc.stats["native"]
        r = native.get(url)
        assert tc.stats["native"] == before + 1, url
        assert answer(r) == answer(asgi.get(url))


def test_exceptions_propagate_from_native_routes():
    client = tc.TestClient(make_app())
    with pytest.raises(RuntimeError, match="kaboom"):
        client.get("/boom")


def test_routes_report():
    compiled = compile_app(make_app())
    by_path = {e.display_path: e for e in compiled.entries}
    assert by_path["/plain"].plan is not None
    assert by_path["/openapi.json"].plan is not None     # a Starlette function route
    assert compiled.app_reason == ""


def test_middleware_app_stays_on_asgi_tier():
    app = make_app()
    add_tagging_middleware(app)
    compiled = compile_app(app)
    assert "middleware" in compiled.app_reason
    client = tc.TestClient(app)
    before = tc.stats["native"]
    r = client.get("/plain")
    assert r.headers["x-tag"] == "1"
    assert tc.stats["native"] == before


def test_route_order_first_match_wins():
    app = FastAPI()

    @app.get("/users/me")
    async def me():
        return {"who": "me"}

    @app.get("/users/{uid}")
    async def user(uid: str):
        return {"who": uid}

    n, a = native_and_asgi_clients(app, raise_server_exceptions=True)
    for url in ("/users/me", "/users/42"):
        assert _send(n, "GET", url) == _send(a, "GET", url)


def test_celeris_routes_cli(tmp_path):
    import subprocess
    import sys

    (tmp_path / "routesapp.py").write_text(
        "from fastapi import FastAPI, Header\n"
        "app = FastAPI()\n"
        "@app.get('/a')\nasync def a():\n    return 1\n"
        "@app.post('/b')\nasync def b(x: list[str] = Header([])):\n    return x\n")
    out = subprocess.run([sys.executable, "-m", "celeris", "routes", "routesapp:app", "--app-dir",
                          str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.split()[:3] == ["GET", "/a", "native"] for line in lines)
    assert any(line.split()[:3] == ["POST", "/b", "asgi"] and "list" in line for line in lines)
    assert "5 of 6 routes on the native tier" in out.stdout


def test_custom_convertor_route_is_opaque_not_fatal():
    from starlette.convertors import Convertor, register_url_convertor

    class HexConvertor(Convertor):
        regex = "[0-9a-f]+"

        def convert(self, value: str) -> int:
            return int(value, 16)

        def to_string(self, value: int) -> str:
            return format(value, "x")

    register_url_convertor("celerishex", HexConvertor())
    app = FastAPI()

    @app.get("/early")
    async def early():
        return {"early": True}

    @app.get("/h/{x:celerishex}")
    async def hexed(x: int):
        return {"x": x}

    @app.get("/late")
    async def late():
        return {"late": True}

    n, a = native_and_asgi_clients(app, raise_server_exceptions=True)
    for url in ("/early", "/h/ff", "/h/zz", "/late"):
        assert _send(n, "GET", url) == _send(a, "GET", url)
    before = tc.stats["native"]
    n.get("/early")
    n.get("/late")              # after an opaque route: ASGI tier
    assert tc.stats["native"] == before + 1


def make_model_app() -> FastAPI:
    from pydantic import Field

    app = FastAPI()

    class Out(BaseModel):
        name: str
        price: float
        tags: list[str] = []
        note: Optional[str] = None
        secret: str = "s"
        alias_field: int = Field(default=1, alias="aliasField")

    @app.get("/annotated")
    async def annotated() -> dict[str, int]:
        return {"a": 1, "b": 2}

    @app.get("/model", response_model=Out)
    async def model():
        return {"name": "x", "price": 1.5, "aliasField": 7}

    @app.get("/model-obj")
    async def model_obj() -> Out:
        return Out(name="y", price=2, tags=["a"], aliasField=3)

    @app.get("/invalid", response_model=Out)
    async def invalid():
        return {"name": "x"}

    @app.get("/exclude", response_model=Out, response_model_exclude={"secret"},
             response_model_exclude_none=True)
    async def exclude():
        return {"name": "x", "price": 1e-5, "note": None}

    @app.get("/include", response_model=Out, response_model_include={"name", "price"},
             response_model_by_alias=False)
    async def include(q: float = 0.1):
        return {"name": "x", "price": q}

    @app.get("/unset", response_model=Out, response_model_exclude_unset=True)
    async def unset():
        return Out(name="u", price=3)

    @app.get("/floats")
    async def floats() -> list[float]:
        return [1e-7, 1e-5, 1e16, float("inf"), 0.1]

    @app.get("/model-201", response_model=Out, status_code=201)
    async def model_201():
        return {"name": "c", "price": 0}

    @app.get("/model-response", response_model=Out)
    async def model_response():
        return JSONResponse({"raw": True})

    @app.get("/sync-model", response_model=Out)
    def sync_model():
        return {"name": "s", "price": 1}

    @app.get("/sync-model-invalid", response_model=Out)
    def sync_model_invalid():
        return {"name": "s"}

    @app.get("/sync-model-status", response_model=Out, status_code=201)
    def sync_model_status(response: Response):
        response.headers["x-h"] = "1"
        return Out(name="t", price=2, aliasField=5)

    return app


MODEL_REQUESTS = ["/annotated", "/model", "/model-obj", "/invalid", "/exclude", "/include",
                  "/include?q=2.5", "/include?q=abc", "/unset", "/floats", "/model-201",
                  "/model-response", "/sync-model", "/sync-model-invalid", "/sync-model-status"]


@pytest.mark.parametrize("url", MODEL_REQUESTS)
def test_response_model_native_matches_asgi(url):
    n, a = native_and_asgi_clients(make_model_app())
    assert _send(n, "GET", url) == _send(a, "GET", url)


def test_response_model_routes_are_native_and_raise_like_fastapi():
    from fastapi.exceptions import ResponseValidationError

    app = make_model_app()
    compiled = {e.display_path: e for e in compile_app(app).entries}
    assert compiled["/model"].plan is not None and compiled["/annotated"].plan is not None
    assert compiled["/sync-model"].plan is not None and compiled["/sync-model"].plan.runner  # thread-pool validation via serialize_response
    client = tc.TestClient(app)
    before = tc.stats["native"]
    client.get("/model")
    assert tc.stats["native"] == before + 1
    with pytest.raises(ResponseValidationError):
        client.get("/invalid")


def make_plain_model_app() -> FastAPI:
    from typing import Any

    app = FastAPI()

    @app.get("/dict")
    async def as_dict() -> dict:
        return {"s": "zoë ☃ 😀 \u2028 \x00 \"q\" \\", "n": None, "b": [True, False], "i": -(2**70),
                "nested": {"l": [{"x": 1}], "e": {}}}

    @app.get("/dict-any")
    async def dict_any() -> dict[str, Any]:
        return {"a": [1, "2", None]}

    @app.get("/list")
    async def as_list() -> list:
        return [1, "a", {"k": [None]}]

    @app.get("/floats")
    async def floats() -> dict:
        return {"f": [1e16, 0.1, 1e-7, 2.5]}

    @app.get("/tuple")
    async def as_tuple() -> dict:
        return {"t": (1, 2), "intkey": {1: "a"}}

    @app.get("/excluded", response_model=dict, response_model_exclude={"secret"})
    async def excluded():
        return {"secret": 1, "open": 2}

    @app.get("/surrogate")
    async def surrogate() -> dict:
        return {"s": "\ud800"}

    @app.get("/sa")
    async def sa_keys() -> dict:
        return {"_sa_instance_state": 1, "kept": {"_sa": 2}}

    @app.get("/deep")
    async def deep(n: int = 70) -> list:
        tree: list = [1]
        for _ in range(n):
            tree = [tree]
        return tree

    @app.get("/deep-dict")
    async def deep_dict(n: int = 70) -> dict:
        tree: dict = {"x": "y"}
        for _ in range(n):
            tree = {"d": tree}
        return tree

    @app.get("/deep-untyped")
    async def deep_untyped(n: int = 250):
        tree: dict = {"_sa": 1} if n < 0 else {"x": 1.5}
        for _ in range(abs(n)):
            tree = {"d": [tree]}
        return tree

    return app


@pytest.mark.parametrize("url", ["/dict", "/dict-any", "/list", "/floats", "/tuple", "/excluded",
                                 "/surrogate", "/sa", "/deep", "/deep?n=62", "/deep?n=63",
                                 "/deep?n=64", "/deep?n=250", "/deep-dict", "/deep-dict?n=63",
                                 "/deep-dict?n=199", "/deep-dict?n=201", "/deep-untyped",
                                 "/deep-untyped?n=99", "/deep-untyped?n=100", "/deep-untyped?n=-50"])
def test_plain_response_models_match_asgi(url):
    n, a = native_and_asgi_clients(make_plain_model_app())
    assert _send(n, "GET", url) == _send(a, "GET", url)


# Flat dicts: the JSON writer's small path (json_encode.c encode_small) takes
# the plain ones; the others go to the general encoder or to FastAPI.  Untyped
# and with a `-> dict` response model (pydantic's serializer otherwise).
FLAT_CASES = [
    {}, {"hello": "world"}, {"item_id": 3, "q": None}, {"a": True, "b": False, "c": -1, "d": ""},
    {"max": 2**63 - 1, "min": -(2**63)}, {"over": 2**63}, {"under": -(2**63) - 1},
    {"k" * 9: "v" * 17}, {"q\"": 1}, {"b\\": 1}, {"nl": "a\nb"}, {"é": 1}, {"v": "é"},
    {"v": "\x7f"}, {"v": "\x1f"}, {"_sa": 1}, {"_sax": 1}, {"_s": 1}, {"f": 1.5}, {"l": []},
    {"d": {}}, {1: "int key"}, {None: 1}, {"long": "x" * 600}, {"s": "\ud800"},
    {str(i): i for i in range(40)},
]


def make_flat_app() -> FastAPI:
    app = FastAPI()

    @app.get("/flat/{i}")
    async def flat(i: int):
        return FLAT_CASES[i]

    @app.get("/flat-typed/{i}")
    async def flat_typed(i: int) -> dict:
        return FLAT_CASES[i]

    return app


@pytest.mark.parametrize("i", range(len(FLAT_CASES)))
def test_flat_dicts_match_asgi(i):
    n, a = native_and_asgi_clients(make_flat_app())
    for url in (f"/flat/{i}", f"/flat-typed/{i}"):
        before = tc.stats["native"]
        assert _send(n, "GET", url) == _send(a, "GET", url)
        assert tc.stats["native"] == before + 1
