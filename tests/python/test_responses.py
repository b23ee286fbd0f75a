"""Response framing: HEAD, chunked responses, close-delimited HTTP/1.0
bodies, default headers."""
import email.utils

from rawhttp import Conn, build_request


def test_default_headers_date_and_server_first(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/fixed")
    assert r.version == "HTTP/1.1"
    assert r.status == 200 and r.reason == "OK"
    names = [k for k, _ in r.headers]
    assert names[:2] == ["date", "server"]
    assert r.header("server") == "celeris"
    assert email.utils.parsedate_to_datetime(r.header("date")) is not None
    assert r.header("date").endswith(" GMT")
    # app headers follow, lower-cased, in the app's order
    assert names[2:] == ["content-type", "content-length"]
    assert r.body == b"hello"


def test_head_has_headers_but_no_body(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("HEAD", "/fixed")
        assert r.status == 200
        assert r.header("content-length") == "5"
        assert r.body == b""
        # no stray body bytes: the next response parses cleanly
        r2 = c.request("GET", "/id?n=after-head")
        assert r2.body == b"after-head"


def test_head_on_streamed_response(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("HEAD", "/stream?n=3")
        assert r.status == 200
        assert r.header("transfer-encoding") is None
        r2 = c.request("GET", "/id?n=x")
        assert r2.body == b"x"


def test_chunked_response_framing(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(build_request("GET", "/stream?n=3"))
        head = c.read_head()
        assert head.status == 200
        assert head.header("transfer-encoding") == "chunked"
        assert head.header("content-length") is None
        # exact wire format: one chunk per non-empty message, then the last chunk
        expected = b"".join(b"7\r\npart-%d\n\r\n" % i for i in range(3)) + b"0\r\n\r\n"
        assert c.read_exact(len(expected)) == expected
        # nothing else, and the connection stays usable
        assert c.request("GET", "/id?n=1").body == b"1"


def test_chunked_response_parsed(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/stream?n=50")
    assert r.body == b"".join(b"part-%d\n" % i for i in range(50))
    assert len(r.chunks) == 50


def test_http10_response_without_length_is_close_delimited(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(build_request("GET", "/stream?n=4", version="1.0", host=None,
                             headers=[("Connection", "keep-alive")]))
        head = c.read_head()
        assert head.status == 200
        assert head.header("transfer-encoding") is None
        assert head.header("content-length") is None
        assert head.header("connection") == "close"
        body = c.read_to_eof()
        assert body == b"".join(b"part-%d\n" % i for i in range(4))


def test_no_body_statuses(raw_server):
    with Conn(raw_server.addr) as c:
        for code in (204, 304):
            r = c.request("GET", f"/status?code={code}")
            assert r.status == code
            assert r.header("transfer-encoding") is None
        r = c.request("GET", "/status?code=404")
        assert r.status == 404
        r = c.request("GET", "/id?n=ok")
        assert r.body == b"ok"


def test_status_reason_phrases(raw_server):
    with Conn(raw_server.addr) as c:
        for code, reason in [(201, "Created"), (404, "Not Found"), (418, "I'm a Teapot"),
                             (500, "Internal Server Error"), (503, "Service Unavailable")]:
            r = c.request("GET", f"/status?code={code}")
            assert r.status == code
            assert r.reason.lower() == reason.lower()


def test_no_server_and_date_headers(quiet_server):
    with Conn(quiet_server.addr) as c:
        r = c.request("GET", "/fixed")
        assert r.status == 200
        assert not r.has_header("server")
        assert not r.has_header("date")
        assert r.body == b"hello"
    with Conn(quiet_server.addr) as c:
        c.send(b"GET / HTTP/1.1\r\nHost x\r\n\r\n")
        r = c.read_response()
        assert r.status == 400
        assert not r.has_header("server")
        assert not r.has_header("date")


def _big_expected(total):
    piece = bytes(range(256)) * 256
    out = piece * (total // len(piece))
    return out + piece[: total - len(out)]


def test_large_response_body(raw_server):
    import hashlib
    total = 20 * 1024 * 1024
    with Conn(raw_server.addr, timeout=60) as c:
        r = c.request("GET", "/big?mb=20")
        assert r.status == 200
        assert len(r.body) == total
        assert hashlib.sha256(r.body).digest() == hashlib.sha256(_big_expected(total)).digest()
        assert c.request("GET", "/id?n=after-big").body == b"after-big"


def test_client_disconnect_during_large_response(raw_server):
    import uuid
    from rawhttp import get, record, wait_until
    tag = uuid.uuid4().hex
    c = Conn(raw_server.addr)
    c.send(build_request("GET", f"/big?mb=64&tag={tag}"))
    head = c.read_head()
    assert head.status == 200
    c.read_exact(65536)
    c.close()
    rec = wait_until(lambda: record(raw_server.addr, tag), timeout=30)
    # send() after the client went away does not raise (uvicorn semantics) and
    # receive() then reports http.disconnect
    assert rec == [{"sent": 64 * 1024 * 1024, "error": None, "after": "http.disconnect"}]
    assert get(raw_server.addr, "/id?n=alive").body == b"alive"


def test_app_connection_close_header_closes(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/close-header")
        assert r.body == b"ok"
        assert r.header_all("connection") == ["close"]
        c.assert_closed()


def test_app_provided_transfer_encoding_chunked(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/app-chunked")
        assert r.header_all("transfer-encoding") == ["chunked"]
        assert r.body == b"abcdef"
        assert c.request("GET", "/id?n=1").body == b"1"


def test_head_request_sent_in_tiny_pieces(raw_server):
    data = build_request("GET", "/id?n=tiny", headers=[("X-Long", "y" * 50)])
    with Conn(raw_server.addr) as c:
        for i in range(len(data)):
            c.send(data[i:i + 1])
        assert c.read_response().body == b"tiny"


def test_raw_utf8_and_obs_text_in_target(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(b"GET /scope/\xc3\xa9?q=\xff HTTP/1.1\r\nHost: x\r\n\r\n")
        s = c.read_response().json()
    assert s["path"] == "/scope/\u00e9"
    assert s["raw_path"].encode("latin-1") == b"/scope/\xc3\xa9"
    assert s["query_string"].encode("latin-1") == b"q=\xff"
