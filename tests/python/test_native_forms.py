"""Form and file bodies on the native tier (Starlette's form parser inside a
compiled runner) against FastAPI itself, byte for byte."""
from typing import Annotated, Optional

import pytest
from fastapi import Depends, FastAPI, File, Form, UploadFile

from celeris import testclient as tc
from celeris.native import compile_app
from conftest import answer, native_and_asgi_clients


def make_app() -> FastAPI:
    app = FastAPI()

    @app.post("/login")
    async def login(username: Annotated[str, Form()], password: Annotated[str, Form(min_length=3)],
                    remember: Annotated[bool, Form()] = False):
        return {"u": username, "p": password, "r": remember}

    @app.post("/upload")
    async def upload(file: UploadFile, note: Annotated[Optional[str], Form()] = None):
        data = await file.read()
        return {"name": file.filename, "ct": file.content_type, "size": len(data), "note": note,
                "head": data[:10].decode("latin-1")}

    @app.post("/files")
    async def files(files: Annotated[list[UploadFile], File()], tag: Annotated[str, Form()] = "t"):
        return {"names": [f.filename for f in files], "sizes": [len(await f.read()) for f in files],
                "tag": tag}

    @app.post("/bytes")
    def raw_bytes(data: Annotated[bytes, File()]):
        return {"len": len(data)}

    async def who(user: Annotated[str, Form()]) -> str:
        return user.upper()

    @app.post("/dep-form")
    async def dep_form(u: Annotated[str, Depends(who)], n: Annotated[int, Form()] = 1):
        return {"u": u, "n": n}

    return app


CASES = [
    ("/login", dict(data={"username": "a", "password": "secret"})),
    ("/login", dict(data={"username": "a", "password": "x"})),
    ("/login", dict(data={"username": "a"})),
    ("/login", dict(data={"username": "a", "password": "secret", "remember": "yes"})),
    ("/login", dict(content=b"username=a&password=abc&remember=nope",
                    headers={"content-type": "application/x-www-form-urlencoded"})),
    ("/login", dict(json={"username": "a", "password": "secret"})),
    ("/upload", dict(files={"file": ("a.txt", b"hello world", "text/plain")}, data={"note": "n"})),
    ("/upload", dict(files={"file": ("big.bin", bytes(range(256)) * 8192, "application/octet-stream")})),
    ("/upload", dict(data={"note": "no file"})),
    ("/upload", dict(content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data; boundary=x"})),
    ("/upload", dict(content=b"junk", headers={"content-type": "multipart/form-data"})),
    ("/files", dict(files=[("files", ("a", b"1", "text/plain")), ("files", ("b", b"22", "text/plain"))])),
    ("/files", dict(data={"tag": "only"})),
    ("/bytes", dict(files={"data": ("d", b"xyz", "application/octet-stream")})),
    ("/dep-form", dict(data={"user": "bob", "n": "4"})),
    ("/dep-form", dict(data={"n": "4"})),
]


@pytest.fixture(scope="module")
def clients():
    return native_and_asgi_clients(make_app())


def _send(client, url, kw):
    return answer(client.post(url, **kw))


@pytest.mark.parametrize("i", range(len(CASES)))
def test_form_native_matches_asgi(clients, i):
    url, kw = CASES[i]
    n, a = clients
    assert _send(n, url, kw) == _send(a, url, kw)


def test_form_routes_are_native(clients):
    compiled = {e.display_path: e for e in compile_app(make_app()).entries}
    for path in ("/login", "/upload", "/files", "/bytes"):
        assert compiled[path].plan is not None, (path, compiled[path].reason)
    assert "dependency" in compiled["/dep-form"].reason     # a body read by a dependency: ASGI
    n, _ = clients
    before = tc.stats["native"]
    n.post("/login", data={"username": "a", "password": "secret"})
    n.post("/upload", files={"file": ("a.txt", b"x", "text/plain")})
    assert tc.stats["native"] == before + 2
