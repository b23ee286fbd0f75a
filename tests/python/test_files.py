"""File responses through the core: the ASGI path-send extension (sendfile),
Starlette's FileResponse and StaticFiles compared byte for byte with the
same app on uvicorn (which has no path-send, so Starlette reads the file
itself there), Range requests, errors, descriptors, pipelining, the
TestClient's in-memory path, and StreamingResponse backpressure.
"""
from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from starlette.responses import FileResponse

from conftest import ServerProcess
from rawhttp import Conn, wait_until

APPS = Path(__file__).parent / "apps"
MTIME = 1_700_000_000.25        # the same Last-Modified/ETag on both servers


class Served:
    """A server running files_app, with its scratch directories."""

    def __init__(self, proc: ServerProcess) -> None:
        self.proc = proc
        with Conn(proc.addr) as c:
            info = c.request("GET", "/dir").json()
        self.root, self.static, self.pid = info["root"], info["static"], info["pid"]

    @property
    def addr(self):
        return self.proc.addr

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


@pytest.fixture(scope="module")
def celeris():
    proc = ServerProcess("files_app:app").wait_started()
    try:
        yield Served(proc)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def uvicorn():
    proc = ServerProcess("files_app:app", cmd=[sys.executable, "-m", "uvicorn", "files_app:app",
                                               "--port", "0", "--app-dir", str(APPS)])
    try:
        proc.port = int(proc.wait_for(r"Uvicorn running on http://127\.0\.0\.1:(\d+)").group(1))
        yield Served(proc)
    finally:
        proc.stop()


def put(servers, rel: str, data: bytes) -> list[str]:
    """Write data at rel under each server's root (same mtime); the paths."""
    paths = []
    for srv in servers:
        p = os.path.join(srv.root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        os.utime(p, (MTIME, MTIME))
        paths.append(p)
    return paths


def exchange(addr, method: str, target: str, headers=()):
    with Conn(addr) as c:
        return c.request(method, target, headers=list(headers))


def normalized(r) -> tuple:
    """Status, headers without date/server, body; a multipart boundary replaced."""
    headers = [(k, v) for k, v in r.headers if k not in ("date", "server")]
    body = r.body
    ct = r.header("content-type") or ""
    m = re.match(r"multipart/byteranges; boundary=(\w+)$", ct)
    if m:
        b = m.group(1)
        headers = [(k, v.replace(b, "BOUNDARY")) for k, v in headers]
        body = body.replace(b.encode(), b"BOUNDARY")
    return r.status, r.reason, headers, body


def same_as_uvicorn(celeris, uvicorn, method, target_for, headers=()):
    """Send the request to both (target_for(server) -> request target) and
    assert the responses match; returns Celeris's."""
    mine = exchange(celeris.addr, method, target_for(celeris), headers)
    theirs = exchange(uvicorn.addr, method, target_for(uvicorn), headers)
    assert normalized(mine) == normalized(theirs)
    assert mine.header("server") == "celeris" and mine.header("date")
    return mine


def file_target(srv, rel, name=None):
    t = "/file?path=" + quote(os.path.join(srv.root, rel))
    return t + ("&name=" + quote(name) if name else "")


def test_http_scope_offers_path_send(celeris):
    r = exchange(celeris.addr, "GET", "/extensions/")
    assert r.body == b"['http.response.pathsend']"


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 5 * 1024 * 1024 + 11])
def test_file_response_whole_file_matches_uvicorn(celeris, uvicorn, size):
    data = os.urandom(size)
    rel = f"whole-{size}.bin"
    put([celeris, uvicorn], rel, data)
    r = same_as_uvicorn(celeris, uvicorn, "GET", lambda s: file_target(s, rel))
    assert r.status == 200 and r.body == data
    assert r.header("content-length") == str(size)


def test_file_response_head_and_filename_match_uvicorn(celeris, uvicorn):
    put([celeris, uvicorn], "doc.txt", b"hello file\n" * 100)
    r = same_as_uvicorn(celeris, uvicorn, "HEAD", lambda s: file_target(s, "doc.txt"))
    assert r.header("content-length") == "1100" and r.body == b""
    r = same_as_uvicorn(celeris, uvicorn, "GET", lambda s: file_target(s, "doc.txt", "résumé.txt"))
    assert r.header("content-disposition") == "attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt"
    assert r.header("content-type") == "text/plain; charset=utf-8"


RANGE_CASES = [
    [("Range", "bytes=0-99")],
    [("Range", "bytes=100-")],
    [("Range", "bytes=-10")],
    [("Range", "bytes=5-5")],
    [("Range", "bytes=0-9, 20-29, 25-40")],              # merged, multipart
    [("Range", "bytes=0-0,-1")],
    [("Range", "bytes=1000000-")],                       # 416
    [("Range", "bytes=")],                               # 400 malformed
    [("Range", "items=0-1")],                            # 400 units
    [("Range", "bytes=9-3")],                            # 400 start > end
    [("Range", "bytes=0-10"), ("If-Range", '"nope"')],   # If-Range mismatch: whole file
    [("Range", "bytes=0-10"), ("If-Range", "W/\"x\"")],  # weak: whole file
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("headers", RANGE_CASES, ids=lambda h: "|".join(v for _, v in h))
def test_range_requests_match_uvicorn(celeris, uvicorn, method, headers):
    data = bytes(range(256)) * 40
    put([celeris, uvicorn], "ranged.bin", data)
    same_as_uvicorn(celeris, uvicorn, method, lambda s: file_target(s, "ranged.bin"), headers)


def test_if_range_with_the_current_etag_or_date_gets_the_range(celeris, uvicorn):
    data = os.urandom(5000)
    put([celeris, uvicorn], "ifrange.bin", data)
    full = exchange(celeris.addr, "GET", file_target(celeris, "ifrange.bin"))
    for validator in (full.header("etag"), full.header("last-modified")):
        r = same_as_uvicorn(celeris, uvicorn, "GET", lambda s: file_target(s, "ifrange.bin"),
                            [("Range", "bytes=10-19"), ("If-Range", validator)])
        assert r.status == 206 and r.body == data[10:20]
        assert r.header("content-range") == "bytes 10-19/5000"


def test_static_files_match_uvicorn(celeris, uvicorn):
    page = b"<html><body>static</body></html>\n"
    put([celeris, uvicorn], "static/index.html", page)
    put([celeris, uvicorn], "static/sub/data.json", b'{"a": 1}')
    put([celeris, uvicorn], "static/big.bin", bytes(range(256)) * 8192)
    for method, target, headers in [
        ("GET", "/static/sub/data.json", []),
        ("HEAD", "/static/sub/data.json", []),
        ("GET", "/static/big.bin", []),
        ("GET", "/static/big.bin", [("Range", "bytes=1000-1999")]),
        ("GET", "/static/big.bin", [("Range", "bytes=0-1,10-11")]),
        ("GET", "/static/big.bin", [("Range", "bytes=9999999-")]),
        ("GET", "/static/missing.txt", []),
        ("POST", "/static/sub/data.json", []),
        ("GET", "/static/../files_app.py", []),
        ("GET", "/static/index.html", []),
    ]:
        same_as_uvicorn(celeris, uvicorn, method, lambda s: target, headers)
    r = exchange(celeris.addr, "GET", "/static/big.bin")
    assert r.body == bytes(range(256)) * 8192
    # conditional requests: 304 for the current etag / date, 200 otherwise
    etag = r.header("etag")
    for headers in ([("If-None-Match", etag)], [("If-None-Match", '"other"')],
                    [("If-Modified-Since", r.header("last-modified"))]):
        mine = same_as_uvicorn(celeris, uvicorn, "GET", lambda s: "/static/big.bin", headers)
        assert mine.status == (200 if headers[0][1] == '"other"' else 304)


def test_path_send_frames_a_response_without_length_as_one_chunk(celeris):
    data = os.urandom(100_000)
    (path,) = put([celeris], "raw.bin", data)
    with Conn(celeris.addr) as c:
        r = c.request("GET", "/raw/x?path=" + quote(path))
        assert r.header("transfer-encoding") == "chunked"
        assert r.chunks == [data]
        r = c.request("GET", "/raw/x?path=" + quote(path) + "&cl=100000")     # kept alive
        assert r.body == data and r.header("transfer-encoding") is None
        (empty,) = put([celeris], "empty.bin", b"")
        r = c.request("GET", "/raw/x?path=" + quote(empty))
        assert r.chunks == [] and r.body == b""
        r = c.request("HEAD", "/raw/x?path=" + quote(path) + "&cl=100000")
        assert r.header("content-length") == "100000"
        r = c.request("GET", "/raw/x?path=" + quote(path) + "&status=304")
        assert r.status == 304 and r.body == b""
        assert c.request("GET", "/extensions/").status == 200


def test_path_send_of_a_longer_file_stops_at_content_length(celeris):
    data = os.urandom(5000)
    (path,) = put([celeris], "long.bin", data)
    with Conn(celeris.addr) as c:
        r = c.request("GET", "/raw/x?path=" + quote(path) + "&cl=1000")
        assert r.body == data[:1000]
        assert c.request("GET", "/extensions/").status == 200      # framing intact


def errors_seen(srv) -> str:
    return exchange(srv.addr, "GET", "/errors/").body.decode()


def test_path_send_errors_close_the_connection(celeris):
    (short,) = put([celeris], "short.bin", b"x" * 10)
    cases = [
        (short, 50, "RuntimeError: Response content shorter than Content-Length", b"x" * 10),
        (short + "-missing", 5, "FileNotFoundError: [Errno 2] No such file or directory", b""),
    ]
    for path, cl, error, body in cases:
        with Conn(celeris.addr) as c:
            c.send(f"GET /raw/x?path={quote(path)}&cl={cl} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            r = c.read_response(allow_incomplete=True)
            assert r.status == 200 and not r.complete and r.body == body
            c.assert_closed()
        assert error in errors_seen(celeris)
    with Conn(celeris.addr) as c:          # a directory is not a regular file
        c.send(f"GET /raw/x?path={quote(celeris.root)}&cl=5 HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        r = c.read_response(allow_incomplete=True)
        assert not r.complete
        c.assert_closed()
    assert "is not a regular file" in errors_seen(celeris)


def test_file_deleted_between_stat_and_send(celeris):
    base = celeris.fds()
    (path,) = put([celeris], "vanishing.bin", b"v" * 4096)
    with Conn(celeris.addr) as c:
        c.send(f"GET /vanished?path={quote(path)} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        r = c.read_response(allow_incomplete=True)
        assert r.status == 200 and r.header("content-length") == "4096"
        assert not r.complete and r.body == b""
        c.assert_closed()
    assert not os.path.exists(path)
    r = exchange(celeris.addr, "GET", "/extensions/")     # still serving
    assert r.status == 200
    # (<=: base may still count the socket of an earlier request, closed since)
    wait_until(lambda: celeris.fds() <= base)


def test_client_disconnect_mid_sendfile_leaks_nothing(celeris):
    data = b"\xab" * (64 * 1024 * 1024)
    (path,) = put([celeris], "huge.bin", data)
    exchange(celeris.addr, "GET", "/extensions/")
    base = celeris.fds()
    for _ in range(3):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.settimeout(10)
        s.connect(celeris.addr)
        s.sendall(f"GET /file?path={quote(path)} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        got = 0
        while got < 200_000:
            got += len(s.recv(65536))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()                                          # reset mid-file
    r = exchange(celeris.addr, "GET", "/extensions/")
    assert r.status == 200

    def holding_the_file() -> int:
        d = f"/proc/{celeris.pid}/fd"
        n = 0
        for name in os.listdir(d):
            try:
                n += os.readlink(os.path.join(d, name)) == path
            except FileNotFoundError:
                pass
        return n

    # No descriptor of the file is left open, and no other one either (base
    # may still count the socket of the request before it, closed since).
    wait_until(lambda: holding_the_file() == 0 and celeris.fds() <= base)
    os.unlink(path)


def test_pipelined_requests_after_a_file_response(celeris):
    data = os.urandom(3 * 1024 * 1024)
    (path,) = put([celeris], "pipe.bin", data)
    q = quote(path)
    with Conn(celeris.addr) as c:
        c.send((f"GET /file?path={q} HTTP/1.1\r\nHost: t\r\n\r\n"
                f"GET /extensions/ HTTP/1.1\r\nHost: t\r\n\r\n"
                f"GET /file?path={q} HTTP/1.1\r\nHost: t\r\nRange: bytes=10-19\r\n\r\n"
                f"HEAD /file?path={q} HTTP/1.1\r\nHost: t\r\n\r\n"
                f"GET /file?path={q} HTTP/1.1\r\nHost: t\r\n\r\n").encode())
        assert c.read_response().body == data
        assert c.read_response().body == b"['http.response.pathsend']"
        r = c.read_response()
        assert r.status == 206 and r.body == data[10:20]
        assert c.read_response("HEAD").header("content-length") == str(len(data))
        assert c.read_response().body == data


def test_testclient_sends_files_through_the_core(tmp_path):
    sys.path.insert(0, str(APPS))
    try:
        import files_app
    finally:
        sys.path.remove(str(APPS))
    from celeris.testclient import TestClient
    from starlette.testclient import TestClient as StarletteClient

    data = os.urandom(5 * 1024 * 1024 + 3)
    path = tmp_path / "t.bin"
    path.write_bytes(data)
    q = quote(str(path))
    with TestClient(files_app.app) as client, StarletteClient(files_app.app) as ref:
        assert client.get("/extensions/").content == b"['http.response.debug', 'http.response.pathsend']"
        r = client.get("/raw/x?path=" + q + f"&cl={len(data)}")     # only path-send can answer
        assert r.content == data
        for headers in ({}, {"range": "bytes=0-9"}, {"range": "bytes=0-9,100-109"}, {"range": "bytes=-3"}):
            mine, theirs = client.get("/file?path=" + q, headers=headers), ref.get("/file?path=" + q, headers=headers)
            assert mine.status_code == theirs.status_code
            if "multipart" not in mine.headers["content-type"]:
                assert mine.content == theirs.content
                assert mine.headers == theirs.headers
        assert client.get("/file?path=" + q).content == data
        with pytest.raises(FileNotFoundError):
            client.get("/raw/x?path=" + q + "-gone&cl=5")


def expected_stream_digest(size: int, chunk: int) -> str:
    block = bytes(range(256)) * (chunk // 256 + 1)
    h = hashlib.sha256()
    left = size
    while left > 0:
        n = min(chunk, left)
        h.update(block[:n])
        left -= n
    return h.hexdigest()


def test_streaming_response_backpressure_bounds_server_memory(celeris):
    size, chunk = 200 * 1024 * 1024, 65536
    exchange(celeris.addr, "GET", "/stream?size=1000")
    base = celeris.rss_kib()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.settimeout(30)
    s.connect(celeris.addr)
    s.sendall(f"GET /stream?size={size}&chunk={chunk} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    time.sleep(2.0)             # the client reads nothing; unbounded buffering would show here
    grown = celeris.rss_kib() - base
    assert grown < 64 * 1024, f"server RSS grew {grown} KiB while the client did not read"
    # now read it all: chunked framing, every byte
    f = s.makefile("rb", buffering=1 << 20)
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += f.read(1)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
    h = hashlib.sha256()
    total = 0
    while True:
        n = int(f.readline().split(b";")[0], 16)
        if n == 0:
            assert f.readline() == b"\r\n"
            break
        part = f.read(n)
        assert len(part) == n
        h.update(part)
        total += n
        assert f.read(2) == b"\r\n"
    s.close()
    assert total == size
    assert h.hexdigest() == expected_stream_digest(size, chunk)
    # After 200 MiB went through, nothing is kept either.  Under ASan
    # (make pytest-asan) freed blocks sit in its quarantine (256 MiB by
    # default) and count as RSS: allow for that there.
    quarantine = 256 * 1024 if os.environ.get("CELERIS_EXPECT_SANITIZED") else 0
    assert celeris.rss_kib() - base < 64 * 1024 + quarantine


def test_gzip_middleware_app_gets_no_path_send_so_files_are_compressed_as_on_uvicorn(tmp_path):
    """Starlette's GZipMiddleware passes path-send responses through
    uncompressed; uvicorn offers no path-send, so there the file is read and
    compressed.  Celeris does not offer path-send to an app with such a
    middleware (celeris/extensions.py): the answer is uvicorn's."""
    from celeris.extensions import pathsend_allowed
    from celeris.testclient import TestClient
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.routing import Route
    from starlette.testclient import TestClient as StarletteClient

    data = b"compressible text\n" * 10000
    path = tmp_path / "page.txt"
    path.write_bytes(data)
    app = Starlette(routes=[Route("/", lambda request: FileResponse(path))],
                    middleware=[Middleware(GZipMiddleware)])
    assert not pathsend_allowed(app)
    assert pathsend_allowed(Starlette(middleware=[Middleware(CORSMiddleware, allow_origins=["*"])]))
    r = TestClient(app).get("/", headers={"accept-encoding": "gzip"})
    ref = StarletteClient(app).get("/", headers={"accept-encoding": "gzip"})
    assert r.headers["content-encoding"] == ref.headers["content-encoding"] == "gzip"
    assert r.content == ref.content == data                      # httpx decoded both
    assert "content-length" not in r.headers and "content-length" not in ref.headers
