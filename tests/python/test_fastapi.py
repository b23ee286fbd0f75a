"""A FastAPI application served by Celeris, through httpx."""
import hashlib
import os

import httpx
import pytest

from rawhttp import Conn, build_request


@pytest.fixture(scope="module")
def client(fastapi_server):
    with httpx.Client(base_url=fastapi_server.base_url, timeout=10) as c:
        yield c


def test_root(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.json() == {"hello": "world"}
    assert r.headers["content-type"] == "application/json"
    assert r.headers["server"] == "celeris"
    assert "date" in r.headers


def test_path_query_and_dependency(client):
    r = client.get("/items/42", params={"q": "hi there", "limit": 3})
    assert r.json() == {"item_id": 42, "q": "hi there", "limit": 3}


def test_validation_error(client):
    r = client.get("/items/not-an-int")
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["path", "item_id"]


def test_post_json_body(client):
    r = client.post("/items", json={"name": "x", "price": 1.5, "tags": ["a"]})
    assert r.status_code == 200
    assert r.json() == {"created": {"name": "x", "price": 1.5, "tags": ["a"]}, "total": 3.0}


def test_post_invalid_json(client):
    r = client.post("/items", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422


def test_lifespan_state(client):
    assert client.get("/state").json() == {"db": "connected"}


def test_streaming_upload(client):
    data = os.urandom(3 * 1024 * 1024)

    def gen():
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]

    r = client.post("/upload", content=gen())          # chunked upload
    info = r.json()
    assert info["length"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()


def test_streaming_response(client):
    with client.stream("GET", "/stream", params={"n": 5}) as r:
        assert r.headers["transfer-encoding"] == "chunked"
        body = b"".join(r.iter_bytes())
    assert body == b"".join(b"line %d\n" % i for i in range(5))


def test_http_exception(client):
    r = client.get("/http-error")
    assert r.status_code == 418
    assert r.json() == {"detail": "teapot"}


def test_unhandled_exception_gives_500(client, fastapi_server):
    r = client.get("/crash")
    assert r.status_code == 500
    assert r.text == "Internal Server Error"
    fastapi_server.wait_for(r"(?s)Exception in ASGI application.*ValueError: fastapi handler crashed")
    assert client.get("/").status_code == 200


def test_sync_route_in_threadpool(client):
    assert client.get("/sync").json() == {"sync": True}


def test_not_found_and_method_not_allowed(client):
    assert client.get("/nope").status_code == 404
    assert client.delete("/").status_code == 405


def test_openapi(client):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    assert "/items/{item_id}" in r.json()["paths"]
    assert client.get("/docs").status_code == 200


def test_many_requests_keep_alive(client):
    for i in range(100):
        assert client.get(f"/items/{i}").json()["item_id"] == i


def test_head_request(client):
    r = client.head("/openapi.json")
    # FastAPI routes do not answer HEAD for GET endpoints (405); whatever the
    # status, there is no body
    assert r.content == b""


def test_expect_continue_fastapi(fastapi_server):
    with Conn(fastapi_server.addr) as c:
        c.send(build_request("POST", "/upload",
                             headers=[("Expect", "100-continue"), ("Content-Length", "4")]))
        assert c.read_head().status == 100
        c.send(b"data")
        r = c.read_response()
        assert r.status == 200
        assert r.json()["length"] == 4


def test_async_client_concurrency(fastapi_server):
    import asyncio

    async def main():
        async with httpx.AsyncClient(base_url=fastapi_server.base_url, timeout=10) as ac:
            rs = await asyncio.gather(*(ac.get(f"/items/{i}") for i in range(50)))
        return [r.json()["item_id"] for r in rs]

    assert asyncio.run(main()) == list(range(50))


def test_blocking_def_endpoint_does_not_stall_others(fastapi_server):
    """A def endpoint runs in the thread pool: while it sleeps, 50 other
    requests are answered (ordering, not timing: the sleeper is still
    pending when they are all done)."""
    import threading

    result = {}

    def sleeper():
        with httpx.Client(base_url=fastapi_server.base_url, timeout=30) as c:
            result["r"] = c.get("/sleep", params={"seconds": 3})

    t = threading.Thread(target=sleeper)
    t.start()
    with httpx.Client(base_url=fastapi_server.base_url, timeout=10) as c:
        c.get("/")                                  # the sleeper's request is in by now
        for i in range(50):
            assert c.get(f"/items/{i}").json()["item_id"] == i
        assert t.is_alive()
    t.join()
    assert result["r"].json() == {"slept": 3.0}


def test_native_build_failure_still_serves_the_app():
    # A native-tier bug that makes building it raise used to stop `celeris run`
    # at startup; the app is served on the ASGI tier instead, with a warning.
    from conftest import start_server

    srv = start_server("nativebuildfail_app:app")
    try:
        with httpx.Client(base_url=srv.base_url, timeout=10) as c:
            assert c.get("/items/5").json() == {"item_id": 5}
            assert c.get("/items/x").status_code == 422
        assert "Native tier disabled, every route is served on the ASGI tier" in srv.stderr
        assert "not in the template" in srv.stderr
    finally:
        srv.stop()


def test_reason_phrases_are_the_running_pythons(fastapi_server):
    # uvicorn sends http.HTTPStatus's phrase, which Python 3.13 renamed for
    # 413/416/422 ("Unprocessable Content"): the core takes them at import.
    import http

    with Conn(fastapi_server.addr) as c:
        r = c.request("GET", "/items/not-an-int")
        assert r.status == 422
        assert r.reason == http.HTTPStatus(422).phrase
