"""A Response returned by a native route that fails when it runs as an ASGI
app, before it starts (found by the docs_src differential harness: a
FileResponse whose file is missing).  FastAPI runs the response inside
wrap_app_handling_exceptions and ServerErrorMiddleware, so the answer is
FastAPI's 500 (or the HTTPException's response), on a kept-alive connection."""
from __future__ import annotations


import pytest
from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, Response, StreamingResponse

from celeris import testclient as tc
from conftest import answer, native_and_asgi_clients


class RefusingResponse(Response):
    async def __call__(self, scope, receive, send):
        raise HTTPException(status_code=409, detail="refused", headers={"x-why": "test"})


def make_app(tmp_path) -> FastAPI:
    app = FastAPI()

    @app.get("/missing-file")
    async def missing_file():
        return FileResponse(str(tmp_path / "no-such-file.mp4"))

    @app.get("/sync-missing-file")
    def sync_missing_file():
        return FileResponse(str(tmp_path / "no-such-file.txt"), filename="x.txt")

    @app.get("/refused")
    async def refused():
        return RefusingResponse(b"never")

    @app.get("/stream-fails-late")
    async def stream_fails_late():
        async def gen():
            yield b"a"
            raise RuntimeError("late")
        return StreamingResponse(gen())

    @app.get("/ok")
    async def ok():
        return {"ok": True}

    return app


def _send(client, url):
    return answer(client.get(url))


URLS = ["/missing-file", "/sync-missing-file", "/refused"]


@pytest.mark.parametrize("url", URLS)
def test_failing_response_matches_asgi_tier(tmp_path, url):
    native, asgi = native_and_asgi_clients(make_app(tmp_path))
    before = tc.stats["native"]
    got = _send(native, url)
    assert tc.stats["native"] == before + 1        # really served by the native tier
    assert got == _send(asgi, url)
    assert (b"connection", b"close") not in got[1]
    # The connection stays usable, as under FastAPI.
    assert _send(native, "/ok") == _send(asgi, "/ok")


def test_missing_file_is_fastapis_500(tmp_path):
    client = tc.TestClient(make_app(tmp_path), raise_server_exceptions=False)
    r = client.get("/missing-file")
    assert r.status_code == 500
    headers = [(k, v) for k, v in r.headers.raw if k not in (b"date", b"server")]
    assert headers == [(b"content-length", b"21"), (b"content-type", b"text/plain; charset=utf-8")]
    assert r.content == b"Internal Server Error"


def test_refused_is_the_http_exception_answer(tmp_path):
    client = tc.TestClient(make_app(tmp_path))
    r = client.get("/refused")
    assert (r.status_code, r.json(), r.headers["x-why"]) == (409, {"detail": "refused"}, "test")


@pytest.mark.parametrize("native", [True, False])
def test_exception_reaches_the_test_like_starlette(tmp_path, native):
    client = tc.TestClient(make_app(tmp_path), native=native)
    with pytest.raises(RuntimeError, match="does not exist"):
        client.get("/missing-file")


def test_failure_after_start_still_matches(tmp_path):
    native, asgi = native_and_asgi_clients(make_app(tmp_path))
    assert _send(native, "/stream-fails-late") == _send(asgi, "/stream-fails-late")
