"""Request bodies: chunked uploads, large streamed bodies, 100-continue,
clients that go away mid-body."""
import hashlib
import json
import os
import uuid

from rawhttp import Conn, build_request, chunked, get, record, wait_until


def test_chunked_upload_received_intact(raw_server):
    body_parts = [b"hello", b" ", b"chunked", b" world" * 100]
    expected = b"".join(body_parts)
    with Conn(raw_server.addr) as c:
        c.send(build_request("POST", "/echo?return=1",
                             headers=[("Transfer-Encoding", "chunked")]) + chunked(*body_parts))
        r = c.read_response()
        assert r.status == 200
        assert r.body == expected
        # and the connection is reusable after a chunked body
        assert c.request("GET", "/id?n=7").body == b"7"


def test_chunked_upload_with_extensions_and_trailers(raw_server):
    raw = (b"5;name=value\r\nhello\r\n"
           b"6 ; ext\r\n world\r\n"
           b"0\r\nX-Trailer: yes\r\n\r\n")
    with Conn(raw_server.addr) as c:
        c.send(build_request("POST", "/echo?return=1",
                             headers=[("Transfer-Encoding", "chunked")]) + raw)
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"hello world"
        assert c.request("GET", "/id?n=ok").body == b"ok"


def test_chunked_upload_sent_byte_by_byte(raw_server):
    payload = chunked(b"abc", b"defgh", b"ij")
    with Conn(raw_server.addr) as c:
        c.send(build_request("POST", "/echo?return=1", headers=[("Transfer-Encoding", "chunked")]))
        for i in range(len(payload)):
            c.send(payload[i:i + 1])
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"abcdefghij"


def test_empty_chunked_body(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")])
               + b"0\r\n\r\n")
        r = c.read_response()
        assert r.json()["length"] == 0
        assert c.request("GET", "/id?n=1").body == b"1"


def test_content_length_zero_body(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("POST", "/echo", headers=[("Content-Length", "0")])
        info = r.json()
        assert info["length"] == 0 and info["chunks"] == 0


def test_large_streamed_body_in_many_chunks(raw_server):
    size = 50 * 1024 * 1024
    piece = os.urandom(1024 * 1024)
    h = hashlib.sha256()
    for _ in range(size // len(piece)):
        h.update(piece)
    with Conn(raw_server.addr, timeout=60) as c:
        c.send(build_request("POST", "/echo", headers=[("Content-Length", str(size))]))
        for _ in range(size // len(piece)):
            c.sock.sendall(piece)
        r = c.read_response()
        assert r.status == 200
        info = r.json()
        assert info["length"] == size
        assert info["sha256"] == h.hexdigest()
        assert info["chunks"] > 1          # delivered incrementally (more_body)


def test_large_chunked_body(raw_server):
    piece = os.urandom(256 * 1024)
    n = 20
    h = hashlib.sha256(piece * n)
    with Conn(raw_server.addr, timeout=60) as c:
        c.send(build_request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")]))
        for _ in range(n):
            c.sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        c.sock.sendall(b"0\r\n\r\n")
        info = c.read_response().json()
        assert info["length"] == len(piece) * n
        assert info["sha256"] == h.hexdigest()
        assert info["chunks"] > 1


def test_body_messages_have_more_body_flags(raw_server):
    tag = uuid.uuid4().hex
    with Conn(raw_server.addr) as c:
        c.send(build_request("POST", f"/record-body?tag={tag}",
                             headers=[("Transfer-Encoding", "chunked")]))
        c.send(b"3\r\nabc\r\n")
        # the rest later, after the app has seen the first piece
        wait_until(lambda: len(record(raw_server.addr, tag)) >= 1)
        c.send(b"3\r\ndef\r\n0\r\n\r\n")
        r = c.read_response()
        assert r.json()["length"] == 6
    msgs = record(raw_server.addr, tag)
    assert msgs[-1]["type"] == "done"
    reqs = [m for m in msgs if m["type"] == "http.request"]
    assert all(m["more_body"] for m in reqs[:-1])
    assert reqs[-1]["more_body"] is False
    assert sum(m["len"] for m in reqs) == 6
    assert not any(m["type"] == "http.disconnect" for m in msgs)


# ---- Expect: 100-continue ----

def test_expect_100_continue_when_app_reads(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(build_request("POST", "/echo?return=1",
                             headers=[("Expect", "100-continue"), ("Content-Length", "5")]))
        interim = c.read_head()
        assert interim.status == 100
        assert interim.raw_head == b"HTTP/1.1 100 Continue\r\n\r\n"
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"hello"
        assert c.request("GET", "/id?n=1").body == b"1"


def test_expect_100_continue_not_sent_when_app_does_not_read(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(build_request("POST", "/noread",
                             headers=[("Expect", "100-continue"), ("Content-Length", "5")]))
        r = c.read_response()
        assert r.status == 200               # final response directly, no 100 before it
        assert r.body == b"not read"
        if r.header("connection") == "close":
            c.assert_closed()
        else:
            # The server keeps the connection: per RFC 9110 10.1.1 it reads and
            # discards the announced body, and the next request is served.
            c.send(b"hello" + build_request("GET", "/id?n=next"))
            r2 = c.read_response()
            assert r2.status == 200
            assert r2.body == b"next"


def test_expect_100_continue_with_chunked_body(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(build_request("POST", "/echo?return=1",
                             headers=[("Expect", "100-continue"), ("Transfer-Encoding", "chunked")]))
        assert c.read_head().status == 100
        c.send(chunked(b"chunky"))
        r = c.read_response()
        assert r.body == b"chunky"


def test_no_100_continue_for_http10(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(build_request("POST", "/echo?return=1", version="1.0", host=None,
                             headers=[("Expect", "100-continue"), ("Content-Length", "3")]) + b"abc")
        r = c.read_response()
        assert r.status == 200
        assert r.body == b"abc"


# ---- client going away ----

def test_client_closes_mid_body_app_gets_disconnect(raw_server):
    tag = uuid.uuid4().hex
    c = Conn(raw_server.addr)
    c.send(build_request("POST", f"/record-body?tag={tag}", headers=[("Content-Length", "1000")]))
    c.send(b"x" * 100)
    wait_until(lambda: any(m["type"] == "http.request" for m in record(raw_server.addr, tag)))
    c.close()
    msgs = wait_until(lambda: (lambda m: m if m and m[-1]["type"] == "done" else None)(
        record(raw_server.addr, tag)))
    types = [m["type"] for m in msgs]
    assert "http.disconnect" in types
    assert msgs[-1]["disconnected"] is True
    assert msgs[-1]["length"] == 100
    # server keeps serving
    assert get(raw_server.addr, "/id?n=alive").body == b"alive"
    assert raw_server.alive()


def test_client_closes_mid_chunked_body(raw_server):
    tag = uuid.uuid4().hex
    c = Conn(raw_server.addr)
    c.send(build_request("POST", f"/record-body?tag={tag}",
                         headers=[("Transfer-Encoding", "chunked")]) + b"5\r\nhel")
    wait_until(lambda: record(raw_server.addr, tag))
    c.close()
    msgs = wait_until(lambda: (lambda m: m if m and m[-1]["type"] == "done" else None)(
        record(raw_server.addr, tag)))
    assert msgs[-1]["disconnected"] is True
    assert get(raw_server.addr, "/id?n=alive").body == b"alive"


def test_small_body_arrives_as_one_message(raw_server):
    tag = uuid.uuid4().hex
    with Conn(raw_server.addr) as c:
        r = c.request("POST", f"/record-body?tag={tag}", body=b"abc")
        assert json.loads(r.body)["length"] == 3
    msgs = record(raw_server.addr, tag)
    assert msgs[0] == {"type": "http.request", "len": 3, "more_body": False}


def test_chunked_body_of_one_byte_chunks_in_one_read(raw_server):
    # Several 1-byte chunks buffered together: the first slice makes a
    # one-byte bytes object (a CPython singleton), which the body reader
    # must never resize in place -- that used to lose the body bytes.
    payload = chunked(*[bytes([c]) for c in b"abcdefghij"], b"klm", b"n")
    with Conn(raw_server.addr) as c:
        for _ in range(3):
            c.send(build_request("POST", "/echo?return=1", headers=[("Transfer-Encoding", "chunked")])
                   + payload)
            r = c.read_response()
            assert r.status == 200
            assert r.body == b"abcdefghijklmn"
