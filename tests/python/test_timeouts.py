"""Timeouts, on a server started with --timeout-keep-alive 1
--timeout-request-header 1 --timeout-request-body 1.

Nothing here asserts on timing beyond "it happened before a generous bound"
(the socket timeout, several times the configured 1 s)."""
import uuid

from rawhttp import Conn, build_request, get, record, wait_until

BOUND = 6.0     # > 3x the configured 1 s timeouts (the sweep runs once a second)


def test_slow_header_gets_408_and_close(timeout_server):
    with Conn(timeout_server.addr, timeout=BOUND) as c:
        c.send(b"GET /id?n=1 HTTP/1.1\r\nHost: testserver\r\nX-Slow: ")
        r = c.read_response()
        assert r.status == 408
        assert r.header("connection") == "close"
        assert r.body == b"Request Timeout"
        c.assert_closed(BOUND)
    assert get(timeout_server.addr, "/id?n=ok").body == b"ok"


def test_slowloris_trickle_still_times_out(timeout_server):
    # bytes keep arriving, but the head as a whole is not complete in time
    with Conn(timeout_server.addr, timeout=0.3) as c:
        c.send(b"GET /id?n=1 HTTP/1.1\r\n")
        got = b""
        for i in range(40):          # up to ~12 s of trickling, far over the 1 s timeout
            c.send(b"X-%d: y\r\n" % i)
            try:
                got = c.sock.recv(4096)
            except TimeoutError:
                continue
            break
        assert got.startswith(b"HTTP/1.1 408 "), got[:100]


def test_idle_keep_alive_connection_closed(timeout_server):
    with Conn(timeout_server.addr, timeout=BOUND) as c:
        r = c.request("GET", "/id?n=1")
        assert r.status == 200
        # say nothing more: the server closes the idle connection, with no bytes
        c.assert_closed(BOUND)


def test_connection_without_any_request_is_closed(timeout_server):
    with Conn(timeout_server.addr, timeout=BOUND) as c:
        c.assert_closed(BOUND)


def test_stalled_body_closes_and_app_sees_disconnect(timeout_server):
    tag = uuid.uuid4().hex
    with Conn(timeout_server.addr, timeout=BOUND) as c:
        c.send(build_request("POST", f"/record-body?tag={tag}",
                             headers=[("Content-Length", "100")]) + b"x" * 50)
        rest = c.read_to_eof()
        # no response was started by the app, so at most an error answer, then close
        assert rest == b"" or rest.startswith(b"HTTP/1.1 "), rest[:200]
    msgs = wait_until(lambda: (lambda m: m if m and m[-1]["type"] == "done" else None)(
        record(timeout_server.addr, tag)), timeout=BOUND)
    assert msgs[-1]["disconnected"] is True
    assert msgs[-1]["length"] == 50
    assert any(m["type"] == "http.disconnect" for m in msgs)
    assert get(timeout_server.addr, "/id?n=ok").body == b"ok"


def test_active_keep_alive_is_not_closed_between_quick_requests(timeout_server):
    with Conn(timeout_server.addr, timeout=BOUND) as c:
        for i in range(10):
            assert c.request("GET", f"/id?n={i}").body == str(i).encode()


def test_long_running_request_not_cut_by_keep_alive_timeout(timeout_server):
    with Conn(timeout_server.addr, timeout=BOUND) as c:
        assert c.request("GET", "/sleep?s=2.5").body == b"slept"
        assert c.request("GET", "/id?n=after").body == b"after"


def test_steady_slow_body_is_not_a_stall(timeout_server):
    import time
    with Conn(timeout_server.addr, timeout=BOUND) as c:
        c.send(build_request("POST", "/echo", headers=[("Content-Length", "8")]))
        for _ in range(8):          # 8 x 0.2 s: longer than the 1 s timeout in total,
            time.sleep(0.2)         # but never stalled for anywhere near 1 s
            c.send(b"x")
        r = c.read_response()
        assert r.status == 200 and r.json()["length"] == 8


def test_partial_second_head_on_keep_alive_gets_408(timeout_server):
    with Conn(timeout_server.addr, timeout=BOUND) as c:
        assert c.request("GET", "/id?n=1").body == b"1"
        c.send(b"GET /id?n=2 HTTP/1.1\r\nHost: x\r\n")
        r = c.read_response()
        assert r.status == 408
        c.assert_closed(BOUND)
