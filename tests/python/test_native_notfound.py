"""Requests no route takes (404, 405, redirect_slashes 307) and Starlette
function routes (FastAPI's docs/openapi routes, app.add_route) answered by
the native tier must be byte-for-byte FastAPI's answers: every request is
sent through the C core twice -- native tier on and off, each on its own
instance of the app -- and status, raw headers and body must be identical;
the test also checks which tier served it."""
from __future__ import annotations

from typing import Any, Callable

import pytest
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.routing import Mount, Route

from celeris import testclient as tc
from celeris.native import compile_app
from conftest import add_tagging_middleware, answer, native_and_asgi_clients


def _send(client, method: str, url: str, **kw: Any):
    before = tc.stats["native"]
    r = client.request(method, url, follow_redirects=False, **kw)
    return answer(r), tc.stats["native"] - before


def check(factory: Callable[[], FastAPI], method: str, url: str, *, native: bool | None = True,
          client_kw: dict | None = None, **kw: Any) -> tuple:
    """Same request through a native-tier and an ASGI-tier client, each on a
    fresh app from `factory`; native=True/False asserts the tier, None
    leaves it open."""
    n, a = native_and_asgi_clients(factory(), asgi_app=factory(), **(client_kw or {}))
    got, served = _send(n, method, url, **kw)
    want, _ = _send(a, method, url, **kw)
    assert got == want
    if native is not None:
        assert served == (1 if native else 0), f"{method} {url}: native={served}"
    return got


# ---- no route ----

def basic_app(**kw: Any) -> FastAPI:
    app = FastAPI(**kw)

    @app.get("/items/")
    async def items():
        return ["a"]

    @app.get("/users/{uid}")
    async def user(uid: int):
        return {"uid": uid}

    @app.post("/post-only")
    async def post_only():
        return 1

    @app.api_route("/multi", methods=["GET", "DELETE", "PATCH"], include_in_schema=False)
    async def multi():
        return 2

    @app.get("/")
    async def root():
        return "root"

    @app.get("/café")
    async def cafe():
        return "café"

    return app


NO_ROUTE = [
    ("GET", "/nope"), ("GET", "/nope/"), ("POST", "/nope"), ("HEAD", "/nope"),
    ("GET", "/items"), ("GET", "/items?x=1&y=%20z"), ("GET", "/items//"), ("GET", "/items///"),
    ("HEAD", "/items"), ("POST", "/items"), ("DELETE", "/items"),
    ("GET", "/users/1/"), ("GET", "/users/x/"), ("GET", "/users/"),
    ("GET", "/post-only"), ("HEAD", "/post-only"), ("GET", "/post-only/"), ("PUT", "/multi"),
    ("POST", "/multi/"), ("PUT", "/"), ("GET", "//"), ("GET", "/caf%C3%A9/"),
    ("GET", "/it%65ms"), ("GET", "/a%3Fb"), ("GET", "/a%23b/"), ("OPTIONS", "/nope"),
    ("GET", "/docs/"), ("POST", "/docs"), ("DELETE", "/openapi.json"),
]


@pytest.mark.parametrize("method,url", NO_ROUTE)
def test_no_route_matches_fastapi(method, url):
    check(basic_app, method, url)


@pytest.mark.parametrize("url", ["/nope", "/items", "/items/?q=1", "/post-only"])
@pytest.mark.parametrize("base", ["https://example.org", "http://h:8080", "http://[::1]:81",
                                  "https://example.org:443"])
def test_redirect_location_from_scope(url, base):
    check(basic_app, "GET", url, client_kw={"base_url": base})


@pytest.mark.parametrize("url", ["/items", "/items?a=%C3%A9", "/nope"])
def test_host_header_variants(url):
    for host in ("example.com", "example.com:8000", "[::1]:9", "bad host", ""):
        check(basic_app, "GET", url, headers={"host": host})


@pytest.mark.parametrize("url", ["/api/nope", "/api/items", "/items", "/api", "/api/", "/api//",
                                 "/api/items/", "/apix/items", "/api/post-only"])
def test_root_path(url):
    check(basic_app, "GET", url, client_kw={"root_path": "/api"})


def test_no_redirect_slashes():
    def factory():
        app = basic_app()
        app.router.redirect_slashes = False
        return app

    status = check(factory, "GET", "/items")[0]
    assert status == 404
    # Turned off after the native tier was built: the TestClient rebuilds it.
    app = basic_app()
    client = tc.TestClient(app)
    assert client.get("/items", follow_redirects=False).status_code == 307
    app.router.redirect_slashes = False
    assert client.get("/items", follow_redirects=False).status_code == 404


def included_app() -> FastAPI:
    app = FastAPI()
    inner = APIRouter()

    @inner.get("/leaf/")
    async def leaf():
        return "leaf"

    @inner.api_route("/both", methods=["PUT", "POST"])
    async def both():
        return "both"

    mid = APIRouter()
    mid.include_router(inner, prefix="/in")
    app.include_router(mid, prefix="/mid")

    @app.get("/after")
    async def after():
        return "after"

    return app


@pytest.mark.parametrize("method,url", [
    ("GET", "/mid/in/leaf"), ("POST", "/mid/in/leaf/"), ("GET", "/mid/in/both"),
    ("DELETE", "/mid/in/both/"), ("GET", "/mid/in/nope"), ("GET", "/mid"), ("POST", "/after"),
])
def test_included_routers(method, url):
    check(included_app, method, url)


CORS_CONFIGS = [
    dict(allow_origins=["*"]),
    dict(allow_origins=["https://a.example"], allow_methods=["GET"], expose_headers=["x-total"]),
    dict(allow_origins=["*"], allow_credentials=True, allow_headers=["*"]),
    dict(allow_origin_regex=r"https://.*\.example\.org", allow_credentials=True, max_age=60),
]


@pytest.mark.parametrize("config", range(len(CORS_CONFIGS)))
@pytest.mark.parametrize("method,url", [("GET", "/nope"), ("GET", "/items"), ("PUT", "/multi"),
                                        ("GET", "/docs"), ("HEAD", "/openapi.json")])
@pytest.mark.parametrize("origin", [None, "https://a.example", "https://x.example.org"])
def test_cors_apps(config, method, url, origin):
    def factory():
        app = basic_app()
        app.add_middleware(CORSMiddleware, **CORS_CONFIGS[config])
        return app

    headers = {"origin": origin, "cookie": "a=b"} if origin else {}
    check(factory, method, url, headers=headers)


@pytest.mark.parametrize("url", ["/nope", "/items"])
def test_cors_preflight_on_no_route_stays_asgi(url):
    def factory():
        app = basic_app()
        app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"])
        return app

    check(factory, "OPTIONS", url, native=False,
          headers={"origin": "https://a.example", "access-control-request-method": "GET"})


def test_custom_404_handler_runs_natively():
    # the app's handlers run on the native tier as FastAPI runs them (handlers.py)
    def factory():
        app = basic_app()

        @app.exception_handler(404)
        async def nf(request, exc):
            return PlainTextResponse("custom 404", status_code=404)

        return app

    got = check(factory, "GET", "/nope", native=True)
    assert got[2] == b"custom 404"
    check(factory, "GET", "/items", native=True)


def test_custom_http_exception_handler_runs_natively():
    def factory():
        app = basic_app()

        @app.exception_handler(StarletteHTTPException)
        async def h(request, exc):
            return PlainTextResponse(f"h{exc.status_code}", status_code=exc.status_code)

        return app

    assert check(factory, "POST", "/items/", native=True)[2] == b"h405"
    assert check(factory, "GET", "/nope", native=True)[2] == b"h404"


def test_user_middleware_stays_asgi():
    def factory():
        app = basic_app()
        add_tagging_middleware(app)
        return app

    check(factory, "GET", "/nope", native=False)
    check(factory, "GET", "/docs", native=False)


def mounted_app() -> FastAPI:
    from starlette.staticfiles import StaticFiles

    app = basic_app()
    sub = FastAPI()

    @sub.get("/x")
    async def x():
        return "x"

    app.mount("/sub", sub)
    app.mount("/static", StaticFiles(directory=".", check_dir=False), name="static")
    return app


@pytest.mark.parametrize("method,url,native", [
    ("GET", "/nope", True), ("GET", "/items", True), ("GET", "/sub", True),
    ("GET", "/sub/x", False), ("GET", "/sub/nope", False), ("GET", "/subx", True),
    ("GET", "/static", True), ("POST", "/post-only/", True),
])
def test_mounted_sub_apps(method, url, native):
    check(mounted_app, method, url, native=native)


def test_opaque_route_keeps_no_route_on_asgi():
    from fastapi.routing import APIRoute

    class MyRoute(APIRoute):
        pass

    def factory():
        app = basic_app()
        app.router.route_class = MyRoute

        @app.get("/custom")
        async def custom():
            return "c"

        return app

    check(factory, "GET", "/nope", native=False)
    check(factory, "GET", "/items", native=False)
    check(factory, "GET", "/items/", native=True)


def test_host_route_keeps_no_route_on_asgi():
    from starlette.routing import Host

    def factory():
        app = basic_app()
        app.router.routes.append(Host("api.example", app=PlainTextResponse("host")))
        return app

    check(factory, "GET", "/nope", native=False)


def test_frontend_routes_keep_the_404_on_asgi(tmp_path):
    # FastAPI tries low-priority (frontend) routes after the 405 and the
    # redirect_slashes check, before not_found.
    (tmp_path / "index.html").write_text("<p>front</p>")
    (tmp_path / "page").mkdir()
    (tmp_path / "page" / "index.html").write_text("<p>page</p>")

    def factory():
        app = basic_app()
        router = APIRouter()
        router.frontend("/", directory=str(tmp_path))
        app.include_router(router)
        return app

    compiled = compile_app(factory())
    assert compiled.noroute_reason == "" and compiled.low_priority
    for url in ("/nope", "/index.html", "/page", "/page/", "/"):
        check(factory, "GET", url, native=None if url == "/" else False)
    check(factory, "GET", "/items", native=True)
    check(factory, "POST", "/items/", native=True)


def test_allow_header_follows_route_methods():
    status, headers, body = check(basic_app, "PUT", "/multi")
    assert status == 405
    assert dict(headers)[b"allow"] in (b", ".join(p) for p in _perms([b"GET", b"DELETE", b"PATCH"]))
    assert body == b'{"detail":"Method Not Allowed"}'


def _perms(items: list) -> list:
    import itertools

    return list(itertools.permutations(items))


def test_compiled_report():
    assert compile_app(basic_app()).noroute_reason == ""
    app = basic_app()

    @app.exception_handler(404)
    async def nf(request, exc):
        return PlainTextResponse("x", status_code=404)

    assert compile_app(app).noroute_reason == ""     # the handler runs natively
    app.router.form_limits = {"max_files": 1}
    assert compile_app(app).noroute_reason == "form limits on the router"


def test_celeris_routes_cli(tmp_path):
    import subprocess
    import sys

    (tmp_path / "nfapp.py").write_text(
        "from fastapi import FastAPI\napp = FastAPI()\n"
        "@app.get('/a')\nasync def a():\n    return 1\n")
    out = subprocess.run([sys.executable, "-m", "celeris", "routes", "nfapp:app", "--app-dir",
                          str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "5 of 5 routes on the native tier" in out.stdout
    assert "unmatched requests (404/405/redirects) are answered natively" in out.stdout
    lines = out.stdout.splitlines()
    assert any(line.split()[:3] == ["GET,HEAD", "/openapi.json", "native"] for line in lines)


# ---- Starlette routes ----

def starlette_app(**kw: Any) -> FastAPI:
    app = FastAPI(**kw)

    @app.get("/api-item")
    async def api_item():
        return 1

    async def hello(request: Request):
        return JSONResponse({"keys": [k for k in request.scope if k not in ("state",)],
                             "path_params": request.path_params, "q": dict(request.query_params),
                             "root_path": request.scope.get("root_path"),
                             "route": type(request.scope.get("route")).__name__,
                             "endpoint": request.scope["endpoint"].__name__,
                             "app": request.app is app, "url": str(request.url),
                             "cookies": request.cookies})

    def sync_hello(request: Request):
        import threading

        return PlainTextResponse(f"sync {threading.current_thread() is threading.main_thread()} "
                                 f"{request.path_params}")

    async def teapot(request: Request):
        raise HTTPException(status_code=418, detail="tea", headers={"x-tea": "1"})

    async def starlette_error(request: Request):
        raise StarletteHTTPException(status_code=401, detail="who")

    async def boom(request: Request):
        raise RuntimeError("kaboom")

    async def body(request: Request):
        data = await request.body()
        return PlainTextResponse(data[::-1], headers={"x-len": str(len(data))})

    async def stream(request: Request):
        async def gen():
            yield b"a"
            yield b"b"
        return StreamingResponse(gen(), media_type="text/x-ab")

    done: list = []

    async def background(request: Request):
        return PlainTextResponse("bg", background=BackgroundTask(done.append, 1))

    async def asgi_object(request: Request):
        return PlainTextResponse("inner", status_code=203)

    async def not_a_response(request: Request):
        class App:
            async def __call__(self, scope, receive, send):
                await send({"type": "http.response.start", "status": 202,
                            "headers": [(b"x-asgi", b"1")]})
                await send({"type": "http.response.body", "body": b"asgi"})
        return App()

    async def nothing(request: Request):
        return None

    class Endpoint(HTTPEndpoint):
        async def get(self, request):
            return PlainTextResponse("class")

    async def with_mw(request: Request):
        return PlainTextResponse("mw")

    app.add_route("/hello/{name}", hello)
    app.add_route("/hello", hello, methods=["GET", "POST"])
    app.add_route("/sync/{n:int}", sync_hello)
    app.add_route("/teapot", teapot)
    app.add_route("/unauthorized", starlette_error)
    app.add_route("/boom", boom)
    app.add_route("/body", body, methods=["POST"])
    app.add_route("/stream", stream)
    app.add_route("/background", background)
    app.add_route("/not-response", not_a_response)
    app.add_route("/nothing", nothing)
    app.add_route("/class", Endpoint)
    app.router.routes.append(Route("/with-mw", with_mw, middleware=[Middleware(_Tag)]))
    app.router.routes.append(Route("/asgi-object", asgi_object))
    return app


class _Tag:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)


@pytest.mark.parametrize("method,url,native", [
    ("GET", "/hello/bob?x=1&x=2", True), ("GET", "/hello", True), ("POST", "/hello", True),
    ("HEAD", "/hello/x", True), ("PUT", "/hello", True), ("GET", "/sync/12", True),
    ("GET", "/teapot", True), ("GET", "/unauthorized", True), ("GET", "/boom", True),
    ("GET", "/stream", True), ("GET", "/background", True), ("GET", "/not-response", True),
    ("GET", "/nothing", True), ("GET", "/asgi-object", True),
    ("GET", "/class", False), ("GET", "/with-mw", False),
    ("GET", "/docs", True), ("GET", "/redoc", True), ("GET", "/docs/oauth2-redirect", True),
    ("GET", "/openapi.json", True), ("HEAD", "/docs", True),
])
def test_starlette_routes(method, url, native):
    check(starlette_app, method, url, native=native, headers={"cookie": "c=1"})


def test_starlette_route_body():
    check(starlette_app, "POST", "/body", content=b"hello world")
    check(starlette_app, "POST", "/body", content=b"x" * 100_000)


def test_starlette_route_exceptions_propagate():
    client = tc.TestClient(starlette_app())
    with pytest.raises(RuntimeError, match="kaboom"):
        client.get("/boom")
    with pytest.raises(TypeError):
        client.get("/nothing")


@pytest.mark.parametrize("kw", [
    {}, {"servers": [{"url": "https://srv.example"}]}, {"root_path_in_servers": False},
    {"openapi_url": "/api/schema.json", "docs_url": "/api/docs", "redoc_url": None},
    {"swagger_ui_oauth2_redirect_url": None}, {"docs_url": None},
    {"swagger_ui_parameters": {"deepLinking": False}, "title": "T", "version": "9"},
])
@pytest.mark.parametrize("root_path", ["", "/proxy", "/proxy/"])
def test_openapi_and_docs(kw, root_path):
    def factory():
        return starlette_app(**kw)

    urls = [kw.get("openapi_url", "/openapi.json"), "/docs", "/redoc", "/docs/oauth2-redirect",
            "/api/docs"]
    for url in urls:
        for prefix in ("", root_path):
            check(factory, "GET", prefix + url, native=None, client_kw={"root_path": root_path})


def test_openapi_servers_across_requests():
    # The schema is cached on the app by the first request; each request's
    # root_path is put in front of its servers (older FastAPI versions also
    # changed app.servers): later requests must see the same state in both tiers.
    n_app, a_app = starlette_app(), starlette_app()
    for rp in ("/one", "/two", "/one", ""):
        n, a = native_and_asgi_clients(n_app, asgi_app=a_app, raise_server_exceptions=True,
                                       root_path=rp)
        got, served = _send(n, "GET", "/openapi.json")
        want, _ = _send(a, "GET", "/openapi.json")
        assert got == want and served == 1
    assert n_app.servers == a_app.servers
    assert n_app.openapi_schema == a_app.openapi_schema


def test_background_task_runs():
    app = starlette_app()
    client = tc.TestClient(app)
    before = tc.stats["native"]
    r = client.get("/background")
    assert r.text == "bg" and tc.stats["native"] == before + 1


def test_routes_report_starlette():
    compiled = compile_app(starlette_app())
    by_path = {e.display_path: e for e in compiled.entries}
    for path in ("/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect", "/hello/{name}"):
        assert by_path[path].plan is not None, path
    assert by_path["/class"].plan is None and "ASGI endpoint" in by_path["/class"].reason
    assert by_path["/with-mw"].plan is None


# ---- routes added while the app runs ----

def router_app() -> tuple:
    """(app, router, TestClient): a router with GET /items included at /api."""
    router = APIRouter()

    @router.get("/items")
    async def items():
        return "items"

    app = FastAPI()
    app.include_router(router, prefix="/api")
    return app, router, tc.TestClient(app)


def add_later_route(router: APIRouter) -> None:
    """GET /later on the router, after the app has served requests."""
    @router.get("/later")
    async def later():
        return "later"


def test_routes_added_later_are_found():
    app, router, client = router_app()
    assert client.get("/api/later").status_code == 404
    add_later_route(router)

    @app.get("/top")
    async def top():
        return "top"

    assert client.get("/api/later").json() == "later"
    assert client.get("/top").json() == "top"
    before = tc.stats["native"]
    assert client.get("/api/nope").status_code == 404      # the rebuilt native tier answers
    assert tc.stats["native"] == before + 1


def test_stale_native_tier_leaves_new_routes_to_fastapi():
    # The server builds the native tier once: a route added afterwards (to an
    # included router, which the app's own route list does not show) must
    # not get the native tier's 404.
    app, router, client = router_app()
    transport = client._transport
    assert client.get("/api/later").status_code == 404
    stale = transport._native_app
    add_later_route(router)

    from celeris import native

    transport._native_key = native.routes_key(app)     # as if never rebuilt
    before = tc.stats["native"]
    assert client.get("/api/later").json() == "later"
    assert client.get("/api/nope").status_code == 404
    assert transport._native_app is stale and tc.stats["native"] == before


def test_telemetry_switched_on_later_is_seen_per_request():
    from opentelemetry import trace

    app = FastAPI()
    client = tc.TestClient(app)
    before = tc.stats["native"]
    assert client.get("/nope").status_code == 404
    assert tc.stats["native"] == before + 1
    # FastAPI checks its telemetry switch on every request; so does the TestClient.
    app._native_telemetry.config["tracer_provider"] = trace.NoOpTracerProvider()
    assert app._native_telemetry.enabled()
    assert client.get("/nope").json() == {"detail": "Not Found"}
    assert tc.stats["native"] == before + 1
