"""Malformed and oversized requests: each gets its error status with
"connection: close", the connection is closed, and the server keeps serving
new connections."""
import pytest

from malformed_cases import DEFAULT_CASES, EXTRA_CASES, LENIENT_CASES, LIMIT_CASES, MESSAGES, H
from rawhttp import Conn, get


def assert_error_response(c: Conn, status: int) -> None:
    r = c.read_response()
    assert r.status == status, (r.status, r.body)
    assert r.header("connection") == "close"
    assert r.header("content-type", "").startswith("text/plain")
    if status in MESSAGES:
        assert r.body == MESSAGES[status]
    else:
        assert r.body and int(r.header("content-length")) == len(r.body)
    c.assert_closed()


def assert_still_serving(server) -> None:
    assert server.alive()
    r = get(server.addr, "/id?n=still-alive")
    assert r.status == 200 and r.body == b"still-alive"


def assert_rejected(server, data: bytes, status: int) -> None:
    """`data` on a new connection gets `status` and a close; the server
    goes on serving."""
    with Conn(server.addr) as c:
        c.send(data)
        assert_error_response(c, status)
    assert_still_serving(server)


@pytest.mark.parametrize("data,status", [c[1:] for c in DEFAULT_CASES + EXTRA_CASES],
                         ids=[c[0] for c in DEFAULT_CASES + EXTRA_CASES])
def test_malformed(raw_server, data, status):
    assert_rejected(raw_server, data, status)


def test_malformed_logs_warning(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(b"GET /scope HTTP/1.1\r\nHost : x\r\n\r\n")
        assert_error_response(c, 400)
    raw_server.wait_for(r"WARNING:  Invalid HTTP request received")


# Host values are passed to the app as sent, valid or not (as uvicorn does):
# RFC 9112 3.2 asks for a 400 on an invalid one, but FastAPI's own suite
# (tests/test_telemetry/test_semantic_conventions.py) expects apps to see
# "public.example:invalid", "[invalid", "user:password@public.example" and
# "public.example/path" and answer them.
@pytest.mark.parametrize("host", [b"", b"example.com", b"example.com.", b"EXAMPLE.com:8080",
                                  b"127.0.0.1:1", b"[::1]", b"[::1]:8000", b"[fe80::1%25eth0]",
                                  b"a%20b", b"x_y~z-1", b"host:", b"!$&'()*+,;=",
                                  b"public.example:invalid", b"[invalid",
                                  b"user:password@public.example", b"public.example/path", b"a b"])
def test_host_values_passed_to_the_app(raw_server, host):
    with Conn(raw_server.addr) as c:
        c.send(b"GET /scope HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        assert [v for k, v in r.json()["headers"] if k == "host"] == [host.decode("latin-1")]


def test_100_header_fields_allowed(raw_server):
    # exactly the limit (Host + 99 more = 100 fields) is fine
    data = (b"GET /scope HTTP/1.1\r\n" + H
            + b"".join(b"X-H%d: v\r\n" % i for i in range(99)) + b"\r\n")
    with Conn(raw_server.addr) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 200
        assert len(r.json()["headers"]) == 100


def test_tls_client_hello_on_plain_port(raw_server):
    hello = bytes.fromhex(
        "16030100c4010000c00303" + "ab" * 32 + "20" + "cd" * 32 +
        "0020c02bc02fc02cc030cca9cca8c013c014009c009d002f0035c012000a130113021303"
        "0100005500000010000e00000b6578616d706c652e636f6d000b000403000102000a000a0008"
        "001d001700180019000d0012001004030804040105030805050108060601")
    with Conn(raw_server.addr) as c:
        c.send(hello)
        rest = c.read_to_eof()
        # 400 or a clean close, never a crash
        if rest:
            assert rest.startswith(b"HTTP/1.1 400 "), rest[:100]
    assert_still_serving(raw_server)


def test_garbage_pipelined_after_valid_request(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(b"GET /id?n=first HTTP/1.1\r\n" + H + b"\r\n" + b"\x01\x02GARBAGE \xff\r\n\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"first"
        assert_error_response(c, 400)
    assert_still_serving(raw_server)


def test_leading_empty_lines_are_ignored(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(b"\r\n\r\nGET /id?n=lead HTTP/1.1\r\n" + H + b"\r\n")
        r = c.read_response()
        assert r.status == 200 and r.body == b"lead"


@pytest.mark.parametrize("data,status", [c[1:] for c in LIMIT_CASES],
                         ids=[c[0] for c in LIMIT_CASES])
def test_limits(limits_server, data, status):
    assert_rejected(limits_server, data, status)


def test_within_limits_ok(limits_server):
    with Conn(limits_server.addr) as c:
        r = c.request("POST", "/echo?return=1", body=b"b" * 1000)
        assert r.status == 200 and len(r.body) == 1000
        r = c.request("GET", "/scope/" + "p" * 900)
        assert r.status == 200
        r = c.request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                      body=b"3e8\r\n" + b"c" * 1000 + b"\r\n0\r\n\r\n")
        assert r.status == 200 and r.json()["length"] == 1000


@pytest.mark.parametrize("data,expect", [c[1:] for c in LENIENT_CASES],
                         ids=[c[0] for c in LENIENT_CASES])
def test_lenient_but_valid_framing_accepted(raw_server, data, expect):
    with Conn(raw_server.addr) as c:
        c.send(data)
        r = c.read_response()
        assert r.status == 200
        body = r.json()
        if "length" in body:
            assert body["length"] == expect
        assert c.request("GET", "/id?n=next").body == b"next"


def test_odd_but_valid_header_values(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(b"GET /scope HTTP/1.1\r\n" + H
               + b"X-Latin: caf\xe9\r\nX-Empty:\r\nX-Tab:\ta\tb\t\r\n\r\n")
        r = c.read_response()
        assert r.status == 200
        hdrs = [tuple(h) for h in r.json()["headers"]]
    assert ("x-latin", "caf\xe9") in hdrs
    assert ("x-empty", "") in hdrs
    assert ("x-tab", "a\tb") in hdrs


def test_expect_continue_with_body_over_limit_gets_413_without_100(limits_server):
    with Conn(limits_server.addr) as c:
        c.send(b"POST /echo HTTP/1.1\r\n" + H
               + b"Content-Length: 2000\r\nExpect: 100-continue\r\n\r\n")
        assert_error_response(c, 413)


@pytest.mark.parametrize("total,status", [(1023, 200), (1024, 200), (1025, 414)])
def test_request_line_limit_boundary(limits_server, total, status):
    # --limit-request-line counts the request line including its CRLF
    k = total - len(b"GET /scope/ HTTP/1.1\r\n")
    line = b"GET /scope/" + b"a" * k + b" HTTP/1.1\r\n"
    assert len(line) == total
    with Conn(limits_server.addr) as c:
        c.send(line + H + b"\r\n")
        if status == 200:
            assert c.read_response().status == 200
        else:
            assert_error_response(c, status)


@pytest.mark.parametrize("total,status", [(4095, 200), (4096, 200), (4097, 431)])
def test_header_block_limit_boundary(limits_server, total, status):
    # --limit-request-header-size counts the header fields and the final CRLF
    k = total - len(H) - len(b"X-Pad: \r\n") - 2
    block = H + b"X-Pad: " + b"p" * k + b"\r\n\r\n"
    assert len(block) == total
    with Conn(limits_server.addr) as c:
        c.send(b"GET /scope HTTP/1.1\r\n" + block)
        if status == 200:
            assert c.read_response().status == 200
        else:
            assert_error_response(c, status)
