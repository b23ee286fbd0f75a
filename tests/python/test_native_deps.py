"""Native runners (Depends graphs, JSON bodies, header/cookie parameters,
Response/BackgroundTasks injection) against FastAPI itself: every request is
sent through the C core twice -- native tier on and off -- and status, raw
headers, body and the side effects the app records (dependency calls,
teardown order, background tasks) must be identical."""
from typing import Annotated, Optional

import pytest
from fastapi import (BackgroundTasks, Body, Cookie, Depends, FastAPI, Header, HTTPException,
                     Query, Request, Response, Security)
from fastapi.security import (APIKeyHeader, HTTPBasic, HTTPBasicCredentials, OAuth2PasswordBearer,
                              SecurityScopes)
from pydantic import BaseModel

from celeris import testclient as tc
from celeris.native import compile_app
from conftest import answer_with_events, native_and_asgi_clients

EVENTS: list = []


class Item(BaseModel):
    name: str
    price: float
    quantity: int = 1
    tags: list[str] = []


class User(BaseModel):
    username: str


def make_app() -> FastAPI:
    app = FastAPI()

    async def settings() -> dict:
        EVENTS.append("settings")
        return {"prefix": "p"}

    async def db(s: Annotated[dict, Depends(settings)]):
        EVENTS.append("db open")
        try:
            yield {"name": s["prefix"] + "-db"}
        except HTTPException as exc:
            EVENTS.append(f"db saw {exc.status_code}")
            raise
        finally:
            EVENTS.append("db close")

    def sync_gen(q: Optional[str] = None):
        EVENTS.append(f"sync gen {q}")
        yield q
        EVENTS.append("sync gen close")

    async def user(d: Annotated[dict, Depends(db)], s: Annotated[dict, Depends(settings)]) -> dict:
        EVENTS.append("user")
        return {"name": "alice", "db": d["name"], "prefix": s["prefix"]}

    def sync_dep(x_token: Annotated[str, Header()] = "none") -> str:
        EVENTS.append("sync dep")
        return x_token

    class Pager:
        def __init__(self, skip: int = 0, limit: int = 10):
            self.skip, self.limit = skip, limit

    async def fresh() -> int:
        EVENTS.append("fresh")
        return len(EVENTS)

    async def guard(fail: int = 0) -> None:
        if fail:
            raise HTTPException(status_code=fail, detail="guarded", headers={"x-why": "guard"})

    @app.get("/chain")
    async def chain(u: Annotated[dict, Depends(user)]):
        EVENTS.append("endpoint")
        return u

    @app.get("/sync-chain")
    def sync_chain(t: Annotated[str, Depends(sync_dep)], g: Annotated[Optional[str], Depends(sync_gen)]):
        EVENTS.append("sync endpoint")
        return {"t": t, "g": g}

    @app.get("/pager")
    async def pager(p: Annotated[Pager, Depends()]):
        return {"skip": p.skip, "limit": p.limit}

    @app.get("/nocache")
    async def nocache(a: Annotated[int, Depends(fresh)], b: Annotated[int, Depends(fresh, use_cache=False)],
                      c: Annotated[int, Depends(fresh)]):
        return [a == c, b > a]

    @app.get("/guarded", dependencies=[Depends(guard), Depends(db)])
    async def guarded():
        EVENTS.append("guarded endpoint")
        return "ok"

    @app.get("/raise-in-endpoint")
    async def raise_in_endpoint(d: Annotated[dict, Depends(db)], code: int = 404):
        raise HTTPException(status_code=code, detail="nope")

    @app.get("/headers")
    async def headers(user_agent: Annotated[Optional[str], Header()] = None,
                      x_num: Annotated[int, Header()] = 0,
                      x_raw: Annotated[Optional[str], Header(convert_underscores=False)] = None,
                      x_alias: Annotated[Optional[str], Header(alias="X-Other")] = None):
        return {"ua": user_agent, "num": x_num, "raw": x_raw, "alias": x_alias}

    @app.get("/need-header")
    async def need_header(x_key: Annotated[str, Header()]):
        return x_key

    @app.get("/cookies")
    async def cookies(session: Annotated[Optional[str], Cookie()] = None,
                      n: Annotated[int, Cookie()] = 0):
        return {"session": session, "n": n}

    @app.post("/items", response_model=Item)
    async def create(item: Item):
        return item

    @app.post("/items-plain")
    async def create_plain(item: Item, q: Optional[str] = None):
        return {"item": item, "q": q}

    @app.post("/embed")
    async def embed(item: Annotated[Item, Body(embed=True)]):
        return item

    @app.post("/two")
    async def two(item: Item, user: User, importance: Annotated[int, Body()] = 1):
        return {"item": item, "user": user, "importance": importance}

    @app.post("/sync-body")
    def sync_body(item: Item, u: Annotated[dict, Depends(user)]):
        return {"name": item.name, "user": u["name"]}

    @app.post("/optional-body")
    async def optional_body(item: Optional[Item] = None):
        return {"item": item}

    @app.get("/response")
    async def with_response(response: Response, code: int = 0):
        response.headers["x-extra"] = "1"
        response.set_cookie("k", "v")
        if code:
            response.status_code = code
        return {"ok": True}

    @app.get("/background", status_code=202)
    async def background(tasks: BackgroundTasks, n: int = 1):
        for i in range(n):
            tasks.add_task(EVENTS.append, f"task {i}")
        return {"queued": n}

    @app.get("/list")
    async def list_params(q: Annotated[list[str], Query()] = [], n: Annotated[list[int], Query()] = [1],
                          req: Annotated[Optional[list[float]], Query()] = None):
        return {"q": q, "n": n, "req": req}

    @app.get("/list-required")
    async def list_required(tag: Annotated[list[str], Query(min_length=1)]):
        return tag

    @app.get("/sync-annotated")
    def sync_annotated(bad: int = 0) -> dict[str, int]:
        return {"a": 1, "b": "x" if bad else 2}

    oauth2 = OAuth2PasswordBearer(tokenUrl="token", scopes={"me": "me", "items": "items"})
    api_key = APIKeyHeader(name="x-api-key", auto_error=False)
    basic = HTTPBasic()

    async def current(scopes: SecurityScopes, token: Annotated[str, Depends(oauth2)]) -> dict:
        return {"token": token, "scopes": scopes.scopes, "scope_str": scopes.scope_str}

    @app.get("/oauth")
    async def oauth(user: Annotated[dict, Security(current, scopes=["me"])],
                    again: Annotated[dict, Security(current, scopes=["items"])]):
        return {"user": user, "again": again}

    @app.get("/apikey")
    async def apikey(key: Annotated[Optional[str], Depends(api_key)]):
        return {"key": key}

    @app.get("/basic")
    def basic_auth(creds: Annotated[HTTPBasicCredentials, Depends(basic)]):
        return {"u": creds.username, "p": creds.password}

    async def peek(request: Request) -> str:
        return request.url.path

    @app.post("/request/{kind}")
    async def with_request(kind: str, request: Request, item: Item, p: Annotated[str, Depends(peek)]):
        body = await request.body()
        return {"kind": kind, "url": str(request.url), "pp": request.path_params,
                "q": dict(request.query_params), "len": len(body), "item": item.name, "peek": p,
                "app": request.app is app, "route": request.scope["route"].path,
                "client": request.client.host if request.client else None,
                "ct": request.headers.get("content-type"), "json": await request.json()}

    @app.get("/request-int/{n:int}")
    async def request_int(n: int, request: Request):
        return {"pp": request.path_params, "keys": sorted(k for k in request.scope
                                                        if not k.startswith("fastapi"))}

    @app.get("/boom-teardown")
    async def boom_teardown(d: Annotated[dict, Depends(db)]):
        return {"db": d["name"]}

    return app


REQUESTS = [
    ("GET", "/chain", {}), ("HEAD", "/chain", {}), ("GET", "/sync-chain", {}),
    ("GET", "/sync-chain?q=x", {"x-token": "tok"}), ("GET", "/pager", {}), ("GET", "/pager?skip=2&limit=3", {}),
    ("GET", "/pager?skip=x", {}), ("GET", "/nocache", {}), ("GET", "/guarded", {}),
    ("GET", "/guarded?fail=403", {}), ("GET", "/guarded?fail=304", {}), ("GET", "/raise-in-endpoint", {}),
    ("GET", "/raise-in-endpoint?code=418", {}),
    ("GET", "/headers", {}), ("GET", "/headers", {"User-Agent": "t/1", "X-Num": "42", "x_raw": "r", "X-Other": "o"}),
    ("GET", "/headers", {"x-num": "nan"}), ("GET", "/headers", {"x-raw": "dash"}),
    ("GET", "/headers", {"user-agent": "caf\u00e9".encode("latin-1")}),
    ("GET", "/need-header", {}), ("GET", "/need-header", {"x-key": "k"}),
    ("GET", "/cookies", {}), ("GET", "/cookies", {"cookie": "session=abc; n=3"}),
    ("GET", "/cookies", {"cookie": "session=\"quoted\\\"x\"; n=1"}), ("GET", "/cookies", {"cookie": "n=x"}),
    ("GET", "/cookies", {"cookie": " session = sp ; junk; =; n=2 ; session=last"}),
    ("GET", "/cookies", {"cookie": 'session="a\\012b\\"c"; n="4"'}),
    ("GET", "/cookies", {"cookie": b"session=caf\xe9\xa0; n=5"}),
    ("GET", "/cookies", {"cookie": 'session="x'}), ("GET", "/cookies", {"cookie": 'session=""'}),
    ("GET", "/response", {}), ("GET", "/response?code=201", {}), ("GET", "/background", {}),
    ("GET", "/background?n=3", {}), ("GET", "/boom-teardown", {}),
    ("GET", "/sync-annotated", {}), ("GET", "/sync-annotated?bad=1", {}),
    ("GET", "/oauth", {}), ("GET", "/oauth", {"authorization": "Bearer tok"}),
    ("GET", "/oauth", {"authorization": "Basic tok"}), ("GET", "/apikey", {}),
    ("GET", "/apikey", {"x-api-key": "k"}), ("GET", "/basic", {}),
    ("GET", "/basic", {"authorization": "Basic dTpw"}), ("GET", "/basic", {"authorization": "Basic !!"}),
    ("GET", "/request-int/7", {}),
    ("GET", "/list", {}), ("GET", "/list?q=a&q=b&n=2&n=3&req=1.5", {}), ("GET", "/list?n=x", {}),
    ("GET", "/list?q=&q=%20x+y&other=1", {}), ("GET", "/list-required", {}),
    ("GET", "/list-required?tag=a&tag=a", {}), ("GET", "/list?q=%E2%82", {}),
]

BODIES = [
    ("/items", b'{"name":"w","price":9.99,"quantity":3,"tags":["a"]}', "application/json"),
    ("/items", b'{"name":"w","price":"x"}', "application/json"),
    ("/items", b'{"name":"w",', "application/json"),
    ("/items", b'', "application/json"),
    ("/items", b'{"name":"w","price":1}', None),
    ("/items", b'{"name":"w","price":1}', "text/plain"),
    ("/items", b'{"name":"w","price":1}', "application/vnd.api+json; charset=utf-8"),
    ("/items", b'[1,2]', "application/json"),
    ("/items", b'\xff\xfe', "application/json"),
    ("/items-plain?q=z", b'{"name":"w","price":1.5}', "application/json"),
    ("/embed", b'{"item":{"name":"w","price":1}}', "application/json"),
    ("/embed", b'{"name":"w","price":1}', "application/json"),
    ("/two", b'{"item":{"name":"w","price":1},"user":{"username":"u"},"importance":5}', "application/json"),
    ("/two", b'{"item":{"name":"w","price":1}}', "application/json"),
    ("/sync-body", b'{"name":"w","price":1}', "application/json"),
    ("/optional-body", b'', "application/json"),
    ("/optional-body", b'{"name":"w","price":1}', "application/json"),
    ("/request/a%20b?x=1&y=2", b'{"name":"w","price":1}', "application/json"),
    ("/request/k", b'{"name":"w","price":"bad"}', "application/json"),
    ("/request/k", b'{"name"', "application/json"),
]


def _run(client, method, url, headers=None, content=None):
    return answer_with_events(EVENTS, client, method, url, headers=headers, content=content)


@pytest.fixture(scope="module")
def clients():
    return native_and_asgi_clients(make_app())


@pytest.mark.parametrize("method,url,headers", REQUESTS)
def test_native_runner_matches_asgi(clients, method, url, headers):
    n, a = clients
    assert _run(n, method, url, headers) == _run(a, method, url, headers)


@pytest.mark.parametrize("url,body,ctype", BODIES)
def test_native_body_matches_asgi(clients, url, body, ctype):
    n, a = clients
    headers = {"content-type": ctype} if ctype else {}
    assert _run(n, "POST", url, headers, body) == _run(a, "POST", url, headers, body)


def test_runner_routes_are_native(clients):
    app = make_app()
    compiled = {e.display_path: e for e in compile_app(app).entries}
    for path in ("/chain", "/sync-chain", "/pager", "/nocache", "/guarded", "/headers", "/cookies",
                 "/items", "/embed", "/two", "/sync-body", "/response", "/background",
                 "/sync-annotated", "/oauth", "/apikey", "/basic", "/request/{kind}", "/list",
                 "/list-required"):
        assert compiled[path].plan is not None, (path, compiled[path].reason)
    n, _ = clients
    before = tc.stats["native"]
    n.get("/chain")
    n.post("/items", json={"name": "a", "price": 1})
    n.get("/headers", headers={"x-num": "1"})
    assert tc.stats["native"] == before + 3


def test_yield_teardown_runs_after_the_response(clients):
    n, _ = clients
    EVENTS.clear()
    r = n.get("/chain")
    assert r.json() == {"name": "alice", "db": "p-db", "prefix": "p"}
    assert EVENTS == ["settings", "db open", "user", "endpoint", "db close"]


def test_dependency_overrides_are_honoured():
    app = make_app()
    n = tc.TestClient(app)

    async def fake_user() -> dict:
        return {"name": "bob", "db": "fake", "prefix": "-"}

    routes = {r.path: r for r in app.routes}
    user_dep = routes["/chain"].dependant.dependencies[0].call
    app.dependency_overrides[user_dep] = fake_user
    before = tc.stats["native"]
    assert n.get("/chain").json() == {"name": "bob", "db": "fake", "prefix": "-"}
    assert tc.stats["native"] == before          # overridden: FastAPI's own path
    app.dependency_overrides.clear()
    assert n.get("/chain").json()["name"] == "alice"
    assert tc.stats["native"] == before + 1


def test_exception_in_endpoint_reaches_yield_dependency(clients):
    n, _ = clients
    EVENTS.clear()
    r = n.get("/raise-in-endpoint?code=409")
    assert r.status_code == 409
    assert EVENTS == ["settings", "db open", "db saw 409", "db close"]


def test_background_tasks_run_after_response(clients):
    n, _ = clients
    EVENTS.clear()
    r = n.get("/background?n=2")
    assert r.status_code == 202 and r.json() == {"queued": 2}
    assert EVENTS == ["task 0", "task 1"]


def test_request_scope_follows_testclient_base_url_and_root_path():
    app = make_app()
    n, a = native_and_asgi_clients(app, base_url="https://example.com:8443", root_path="/api")
    body = b'{"name":"w","price":1}'
    h = {"content-type": "application/json"}
    before = tc.stats["native"]
    assert _run(n, "POST", "/request/x?y=1", h, body) == _run(a, "POST", "/request/x?y=1", h, body)
    assert tc.stats["native"] == before + 1
    assert n.post("/request/x", headers=h, content=body).json()["url"].startswith("https://example.com:8443/")


class Filters(BaseModel):
    model_config = {"extra": "forbid"}
    limit: int = 10
    tags: list[str] = []
    order: Optional[str] = None


class HeaderModel(BaseModel):
    x_trace: Optional[str] = None
    user_agent: str = "none"


class CookieModel(BaseModel):
    session: Optional[str] = None


def make_model_param_app() -> FastAPI:
    app = FastAPI()

    @app.get("/filters")
    async def filters(f: Annotated[Filters, Query()], h: Annotated[HeaderModel, Header()],
                      c: Annotated[CookieModel, Cookie()]):
        return {"f": f, "h": h, "c": c}

    @app.post("/filters-body")
    async def filters_body(f: Annotated[Filters, Query()], item: Item):
        return {"f": f, "item": item}

    return app


MODEL_PARAM_REQUESTS = [
    ("GET", "/filters", {}, None), ("GET", "/filters?limit=3&tags=a&tags=b", {"x-trace": "t"}, None),
    ("GET", "/filters?limit=x&extra=1", {}, None), ("GET", "/filters", {"cookie": "session=s1"}, None),
    ("POST", "/filters-body?limit=2", {"content-type": "application/json"}, b'{"name":"a","price":1}'),
    ("POST", "/filters-body?limit=z", {"content-type": "application/json"}, b'{"name":"a"}'),
    ("POST", "/filters-body?limit=z", {"content-type": "application/json"}, b'{"name":"a","price":1}'),
]


@pytest.mark.parametrize("method,url,headers,body", MODEL_PARAM_REQUESTS)
def test_parameter_models_match_asgi(method, url, headers, body):
    n, a = native_and_asgi_clients(make_model_param_app())
    before = tc.stats["native"]
    assert _run(n, method, url, headers, body) == _run(a, method, url, headers, body)
    assert tc.stats["native"] == before + 1
