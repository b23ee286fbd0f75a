"""The app's exception handlers on the native tier (python/celeris/native/
handlers.py) against FastAPI itself: each request goes through the C core
with the native tier on and off; status, raw headers, body and what the
handlers saw must be identical, and the routes must really be native."""
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError, ResponseValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from celeris import testclient as tc
from celeris.native import compile_app
from conftest import answer_with_events, native_and_asgi_clients

SEEN: list = []


class AppError(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


class SubError(AppError):
    pass


class Item(BaseModel):
    name: str
    price: float


def make_app(cors: bool = False) -> FastAPI:
    app = FastAPI()
    if cors:
        app.add_middleware(CORSMiddleware, allow_origins=["https://a.example"], allow_credentials=True)

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError):
        SEEN.append(("app_error", type(exc).__name__, request.url.path, request.path_params,
                     request.query_params.get("q")))
        return JSONResponse({"app_error": exc.code}, status_code=exc.code, headers={"x-h": "1"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        SEEN.append(("http_error", exc.status_code, exc.detail))
        return PlainTextResponse(f"custom {exc.status_code}: {exc.detail}", status_code=exc.status_code,
                                 headers=exc.headers)

    @app.exception_handler(418)
    def teapot(request: Request, exc: HTTPException):        # a def handler: thread pool
        SEEN.append(("teapot", exc.detail))
        return PlainTextResponse("short and stout", status_code=418)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        body = await request.body()
        SEEN.append(("invalid", body, request.state._state.get("marked")))
        return JSONResponse({"errors": jsonable_encoder(exc.errors()), "body": exc.body},
                            status_code=400)

    @app.exception_handler(ResponseValidationError)
    async def bad_response(request: Request, exc: ResponseValidationError):
        return JSONResponse({"bad_response": len(exc.errors())}, status_code=502)

    @app.exception_handler(KeyError)
    async def returns_none(request: Request, exc: KeyError):
        SEEN.append(("none", str(exc)))
        return None

    @app.exception_handler(LookupError)
    async def handler_raises(request: Request, exc: LookupError):
        raise RuntimeError("handler failed")

    async def marker(request: Request) -> None:
        request.state.marked = "yes"

    @app.get("/ok/{n}")
    async def ok(n: int, q: str = ""):
        return {"n": n, "q": q}

    @app.get("/app-error/{code}")
    async def raise_app_error(code: int, q: str = "", sub: bool = False):
        raise (SubError if sub else AppError)(code)

    @app.get("/http/{code}")
    async def raise_http(code: int):
        raise HTTPException(status_code=code, detail=f"d{code}", headers={"x-d": str(code)})

    @app.get("/dep-error")
    async def dep_error(x: Annotated[None, Depends(marker)], fail: int = 0):
        if fail:
            raise AppError(fail)
        return {"ok": True}

    @app.post("/items")
    async def create(item: Item, request: Request, x: Annotated[None, Depends(marker)]):
        return item

    @app.post("/plain-items")
    async def create_plain(item: Item):
        return item

    @app.get("/bad-response", response_model=Item)
    async def bad_response_route():
        return {"name": 1}

    @app.get("/key-error")
    async def key_error():
        raise KeyError("k")

    @app.get("/index-error")
    async def index_error():
        raise IndexError("i")

    @app.get("/sync-app-error")
    def sync_app_error():
        raise AppError(409)

    return app


def make_500_app() -> FastAPI:
    app = FastAPI()

    @app.exception_handler(500)
    async def on_500(request: Request, exc: Exception):
        SEEN.append(("500", type(exc).__name__, request.url.path))
        return JSONResponse({"oops": type(exc).__name__}, status_code=500)

    @app.get("/boom")
    async def boom():
        raise ValueError("boom")

    @app.get("/fine")
    async def fine():
        return {"fine": True}

    return app


REQUESTS = [
    ("GET", "/ok/3?q=a", None, None),
    ("GET", "/ok/x", None, None),
    ("GET", "/app-error/409?q=z", None, None),
    ("GET", "/app-error/422?sub=1", None, None),
    ("GET", "/http/404", None, None),
    ("GET", "/http/401", None, None),
    ("GET", "/http/418", None, None),
    ("GET", "/http/304", None, None),
    ("GET", "/dep-error", None, None),
    ("GET", "/dep-error?fail=409", None, None),
    ("POST", "/items", {"content-type": "application/json"}, b'{"name": "n", "price": 1}'),
    ("POST", "/items", {"content-type": "application/json"}, b'{"name": "n"}'),
    ("POST", "/items", {"content-type": "application/json"}, b'{"name": '),
    ("POST", "/plain-items", {"content-type": "application/json"}, b'{"price": "x"}'),
    ("POST", "/plain-items", {"content-type": "application/json"}, b'not json'),
    ("GET", "/bad-response", None, None),
    ("GET", "/key-error", None, None),
    ("GET", "/index-error", None, None),
    ("GET", "/sync-app-error", None, None),
]


def _run(client, method, url, headers=None, content=None):
    return answer_with_events(SEEN, client, method, url, headers=headers, content=content)


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "cors"])
def clients(request):
    return native_and_asgi_clients(make_app(cors=request.param))


@pytest.mark.parametrize("method,url,headers,body", REQUESTS)
def test_handlers_match_asgi(clients, method, url, headers, body):
    n, a = clients
    headers = dict(headers or {}, origin="https://a.example")
    assert _run(n, method, url, headers, body) == _run(a, method, url, headers, body)


def test_apps_with_custom_handlers_are_native(clients):
    compiled = compile_app(make_app())
    assert compiled.app_reason == ""
    n, _ = clients
    before = tc.stats["native"]
    for method, url, headers, body in REQUESTS:
        n.request(method, url, headers=headers, content=body)
    assert tc.stats["native"] - before >= len(REQUESTS) - 1   # /ok/x: a declined 422 goes to FastAPI


def test_server_error_handler_answers_and_the_error_still_propagates():
    app = make_500_app()
    n, a = native_and_asgi_clients(app)
    assert _run(n, "GET", "/boom") == _run(a, "GET", "/boom")
    assert _run(n, "GET", "/boom")[2] == b'{"oops":"ValueError"}'
    assert _run(n, "GET", "/fine") == _run(a, "GET", "/fine")
    # ServerErrorMiddleware re-raises after its handler answered: the test sees it
    for client in native_and_asgi_clients(app, raise_server_exceptions=True):
        with pytest.raises(ValueError):
            client.get("/boom")
