"""Keep-alive, HTTP/1.0 connection handling and pipelining."""
from rawhttp import Conn, build_request


def test_keep_alive_many_requests_one_connection(raw_server):
    with Conn(raw_server.addr) as c:
        port = c.sock.getsockname()[1]
        for i in range(20):
            r = c.request("GET", f"/id?n={i}")
            assert r.status == 200
            assert r.body == str(i).encode()
            assert not r.has_header("connection")
        # all on the same client socket, as the server sees it
        s = c.request("GET", "/scope").json()
        assert s["client"][1] == port


def test_keep_alive_with_bodies(raw_server):
    with Conn(raw_server.addr) as c:
        for i in range(5):
            body = b"x" * (i * 1000 + 1)
            r = c.request("POST", "/echo?return=1", body=body)
            assert r.status == 200
            assert r.body == body


def test_unread_body_is_discarded_before_next_request(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("POST", "/noread", body=b"GET /id?n=evil HTTP/1.1\r\nHost: x\r\n\r\n")
        assert r.status == 200
        assert r.body == b"not read"
        r = c.request("GET", "/id?n=next")
        assert r.body == b"next"


def test_http10_without_keep_alive_closes(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/fixed", version="1.0", host=None)
        assert r.status == 200
        assert r.body == b"hello"
        assert r.version == "HTTP/1.1"
        assert r.header("connection") == "close"
        c.assert_closed()


def test_http10_with_keep_alive_stays_open(raw_server):
    with Conn(raw_server.addr) as c:
        for i in range(3):
            r = c.request("GET", f"/id?n={i}", version="1.0", host=None,
                          headers=[("Connection", "keep-alive")])
            assert r.status == 200
            assert r.body == str(i).encode()
            assert r.header("connection", "").lower() == "keep-alive"
        # and a final one without keep-alive closes
        r = c.request("GET", "/id?n=last", version="1.0", host=None)
        assert r.body == b"last"
        c.assert_closed()


def test_client_connection_close_closes_after_response(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/id?n=1")
        assert r.status == 200
        r = c.request("GET", "/id?n=2", headers=[("Connection", "close")])
        assert r.status == 200
        assert r.body == b"2"
        assert r.header("connection") == "close"
        c.assert_closed()


def test_connection_close_token_in_list(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/id?n=1", headers=[("Connection", "foo, Close")])
        assert r.body == b"1"
        assert r.header("connection") == "close"
        c.assert_closed()


def test_pipelining_ten_requests_in_one_write(raw_server):
    with Conn(raw_server.addr) as c:
        data = b"".join(build_request("GET", f"/id?n={i}") for i in range(10))
        c.send(data)
        bodies = []
        for i in range(10):
            r = c.read_response()
            assert r.status == 200
            bodies.append(r.body)
        assert bodies == [str(i).encode() for i in range(10)]
        # connection still usable afterwards
        assert c.request("GET", "/id?n=after").body == b"after"


def test_pipelining_mixed_methods_and_bodies(raw_server):
    with Conn(raw_server.addr) as c:
        reqs = []
        expected = []
        for i in range(10):
            if i % 3 == 0:
                body = (b"body-%d-" % i) * (i + 1)
                reqs.append(build_request("POST", "/echo?return=1", body=body))
                expected.append(("GET", body))
            elif i % 3 == 1:
                reqs.append(build_request("HEAD", "/fixed"))
                expected.append(("HEAD", b""))
            else:
                reqs.append(build_request("GET", f"/id?n={i}"))
                expected.append(("GET", str(i).encode()))
        c.send(b"".join(reqs))
        for method, body in expected:
            r = c.read_response(method)
            assert r.status == 200
            assert r.body == body


def test_pipelining_last_request_connection_close(raw_server):
    with Conn(raw_server.addr) as c:
        data = b"".join(build_request("GET", f"/id?n={i}") for i in range(3))
        data += build_request("GET", "/id?n=3", headers=[("Connection", "close")])
        data += build_request("GET", "/id?n=never")
        c.send(data)
        for i in range(4):
            r = c.read_response()
            assert r.body == str(i).encode()
        assert r.header("connection") == "close"
        c.assert_closed()


def test_pipelined_streaming_responses(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(build_request("GET", "/stream?n=2") + build_request("GET", "/stream?n=3"))
        r1 = c.read_response()
        r2 = c.read_response()
        assert r1.body == b"part-0\npart-1\n"
        assert r2.body == b"part-0\npart-1\npart-2\n"


def test_many_concurrent_connections(raw_server):
    conns = [Conn(raw_server.addr) for _ in range(50)]
    try:
        for i, c in enumerate(conns):
            c.send(build_request("GET", f"/id?n={i}"))
        for i, c in enumerate(conns):
            assert c.read_response().body == str(i).encode()
    finally:
        for c in conns:
            c.close()


def test_half_closed_client_still_gets_response(raw_server):
    import socket
    with Conn(raw_server.addr) as c:
        c.send(build_request("GET", "/id?n=half"))
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_response().body == b"half"
        c.assert_closed()


def test_unread_large_bodies_are_drained(raw_server):
    with Conn(raw_server.addr, timeout=30) as c:
        n = 20 * 1024 * 1024
        c.send(build_request("POST", "/noread", headers=[("Content-Length", str(n))]))
        piece = b"x" * (1024 * 1024)
        for _ in range(n // len(piece)):
            c.sock.sendall(piece)
        assert c.read_response().body == b"not read"
        assert c.request("GET", "/id?n=after-cl").body == b"after-cl"
        c.send(build_request("POST", "/noread", headers=[("Transfer-Encoding", "chunked")]))
        chunk = b"10000\r\n" + b"y" * 0x10000 + b"\r\n"
        for _ in range(80):
            c.sock.sendall(chunk)
        c.sock.sendall(b"0\r\n\r\n")
        assert c.read_response().body == b"not read"
        assert c.request("GET", "/id?n=after-chunked").body == b"after-chunked"


def test_pipelined_slow_then_fast_keeps_order(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(build_request("GET", "/sleep?s=0.3") + build_request("GET", "/id?n=fast"))
        assert c.read_response().body == b"slept"
        assert c.read_response().body == b"fast"


def test_pipelined_fast_response_is_not_held_back_by_a_slow_one(raw_server):
    # Pipelined responses are batched into one write; a response must still go
    # out while the request after it is in flight (here: sleeping 20 s).
    with Conn(raw_server.addr, timeout=10) as c:
        c.send(build_request("GET", "/id?n=fast") + build_request("GET", "/sleep?s=20"))
        assert c.read_response().body == b"fast"


def test_pipelined_expect_continue(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(build_request("GET", "/id?n=1") + build_request(
            "POST", "/echo?return=1", headers=[("Expect", "100-continue"), ("Content-Length", "3")]))
        assert c.read_response().body == b"1"
        assert c.read_head().status == 100
        c.send(b"abc")
        assert c.read_response().body == b"abc"


def test_thousands_of_pipelined_requests(raw_server):
    import threading
    n = 3000
    with Conn(raw_server.addr, timeout=30) as c:
        data = b"".join(build_request("GET", f"/id?n={i}") for i in range(n))
        sender = threading.Thread(target=c.sock.sendall, args=(data,))
        sender.start()
        try:
            for i in range(n):
                assert c.read_response().body == str(i).encode()
        finally:
            sender.join(timeout=30)
