"""StaticFiles mounted on a FastAPI app, served by the native tier (the
mounted app called by native/runner.py mount_runner with the scope FastAPI's
stack and the Mount build) -- against FastAPI itself: same status, headers and
body for files, HEAD, ranges, conditional requests, missing files, traversal
attempts and directories, and the requests really served natively."""

import pytest
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from celeris import testclient as tc
from celeris.native import compile_app
from conftest import answer, native_and_asgi_clients


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    (root / "hello.txt").write_bytes(b"hello static world\n" * 50)
    (root / "data.bin").write_bytes(bytes(range(256)) * 300)
    (root / "sub").mkdir()
    (root / "sub" / "index.html").write_text("<h1>sub index</h1>")
    (root / "index.html").write_text("<h1>root index</h1>")
    (root / "empty.txt").write_bytes(b"")
    return root


def make_app(root, html=False, cors=False, handler=False):
    app = FastAPI()
    if cors:
        app.add_middleware(CORSMiddleware, allow_origins=["*"])
    if handler:
        @app.exception_handler(StarletteHTTPException)
        async def h(request: Request, exc):
            return PlainTextResponse(f"custom {exc.status_code} {request.url.path}", status_code=exc.status_code)

    @app.get("/api")
    async def api():
        return {"ok": True}

    app.mount("/static", StaticFiles(directory=root, html=html), name="static")
    return app


URLS = ["/static/hello.txt", "/static/data.bin", "/static/empty.txt", "/static/missing.txt",
        "/static/sub", "/static/sub/", "/static/sub/index.html", "/static/", "/static",
        "/static/../hello.txt", "/static/%2e%2e/%2e%2e/etc/passwd", "/static/hello.txt?x=1"]


@pytest.mark.parametrize("variant", [{}, {"html": True}, {"cors": True}, {"handler": True}],
                         ids=["plain", "html", "cors", "handler"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_static_mount_matches_fastapi(site, variant, method):
    n, a = native_and_asgi_clients(make_app(site, **variant), follow_redirects=False)
    for url in URLS:
        for headers in ({}, {"range": "bytes=5-30"}, {"origin": "https://x.example"}):
            r = n.request(method, url, headers=headers)
            w = a.request(method, url, headers=headers)
            assert answer(r) == answer(w), url
    etag = n.get("/static/hello.txt").headers["etag"]
    for client in (n, a):
        assert client.get("/static/hello.txt", headers={"if-none-match": etag}).status_code == 304


def test_static_mount_is_native(site):
    app = make_app(site)
    entry = [e for e in compile_app(app).entries if e.display_path.startswith("/static")][0]
    assert entry.plan is not None, entry.reason
    n = tc.TestClient(app)
    before = tc.stats["native"]
    assert n.get("/static/hello.txt").content == b"hello static world\n" * 50
    assert n.get("/static/missing.txt").status_code == 404
    assert tc.stats["native"] == before + 2


def test_other_mounts_stay_on_the_asgi_tier(site):
    app = FastAPI()
    sub = FastAPI()
    app.mount("/sub", sub)
    app.mount("/wrapped", StaticFiles(directory=site), name="w")
    entries = {e.display_path: e for e in compile_app(app).entries}
    assert entries["/sub/*"].plan is None and entries["/sub/*"].reason == "mounted sub-application"
    assert entries["/wrapped/*"].plan is not None
