"""Malformed and oversized requests: each gets its error status with
"connection: close", the connection is closed, and the server keeps serving
new connections."""
import pytest

from rawhttp import Conn, get

MESSAGES = {
    400: b"Invalid HTTP request received.",
}

H = b"Host: testserver\r\n"

# (id, request bytes, status) on the default server (raw_app, /echo reads the body)
DEFAULT_CASES = [
    ("cl-and-te",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400),
    ("te-and-cl",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"
     b"0\r\n\r\n", 400),
    ("two-differing-content-lengths",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("content-length-list-differing",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\nhello!", 400),
    ("content-length-not-a-number",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5x\r\n\r\nhello", 400),
    ("content-length-negative",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    ("content-length-plus",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400),
    ("te-chunked-identity",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    ("te-xchunked",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
    ("te-chunked-twice",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-on-http10",
     b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("bad-chunk-size",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
     400),
    ("chunk-size-overflow",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"FFFFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-missing-crlf-after-data",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
     400),
    ("obs-fold",
     b"GET /scope HTTP/1.1\r\n" + H + b"X-Folded: a\r\n b\r\n\r\n", 400),
    ("nul-in-header-value",
     b"GET /scope HTTP/1.1\r\n" + H + b"X-Nul: a\x00b\r\n\r\n", 400),
    ("cr-in-header-value",
     b"GET /scope HTTP/1.1\r\n" + H + b"X-Cr: a\rb\r\n\r\n", 400),
    ("bare-lf-line-endings",
     b"GET /scope HTTP/1.1\nHost: testserver\n\n", 400),
    ("bare-lf-in-headers",
     b"GET /scope HTTP/1.1\r\nHost: testserver\nX-A: b\r\n\r\n", 400),
    ("whitespace-before-colon",
     b"GET /scope HTTP/1.1\r\nHost : testserver\r\n\r\n", 400),
    ("header-without-colon",
     b"GET /scope HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n", 400),
    ("empty-header-name",
     b"GET /scope HTTP/1.1\r\n" + H + b": value\r\n\r\n", 400),
    ("invalid-method-chars",
     b"G(E)T /scope HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("space-in-target",
     b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("missing-version",
     b"GET /scope\r\n" + H + b"\r\n", 400),
    ("lowercase-http",
     b"GET /scope http/1.1\r\n" + H + b"\r\n", 400),
    ("http-2.0", b"GET /scope HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("http-1.2", b"GET /scope HTTP/1.2\r\n" + H + b"\r\n", 505),
    ("http-0.9-style", b"GET /scope HTTP/0.9\r\n" + H + b"\r\n", 505),
    ("missing-host-http11", b"GET /scope HTTP/1.1\r\nAccept: */*\r\n\r\n", 400),
    ("two-hosts", b"GET /scope HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("trailing-space-in-request-line", b"GET /scope HTTP/1.1 \r\n" + H + b"\r\n", 400),
    ("double-space-in-request-line", b"GET  /scope HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("leading-space-request-line", b" GET /scope HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("fragment-in-target", b"GET /scope#frag HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("non-token-header-name", b"GET /scope HTTP/1.1\r\n" + H + b"\xffbad: v\r\n\r\n", 400),
    ("del-in-header-value", b"GET /scope HTTP/1.1\r\n" + H + b"X-Del: a\x7fb\r\n\r\n", 400),
    ("two-hosts-different-case", b"GET /scope HTTP/1.1\r\nhost: a\r\nHOST: a\r\n\r\n", 400),
    ("connect-authority-form",
     b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 400),
    ("target-not-origin-form", b"GET example.com HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute-form-empty-authority", b"GET http:///x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("chunk-size-0x-prefix",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n",
     400),
    ("chunk-size-negative",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
     400),
    ("chunk-bare-lf",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", 400),
    ("chunk-bad-trailer",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n", 400),
    ("101-header-fields",
     b"GET /scope HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(100)) + b"\r\n",
     431),
]


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


@pytest.mark.parametrize("data,status", [c[1:] for c in DEFAULT_CASES],
                         ids=[c[0] for c in DEFAULT_CASES])
def test_malformed(raw_server, data, status):
    with Conn(raw_server.addr) as c:
        c.send(data)
        assert_error_response(c, status)
    assert_still_serving(raw_server)


def test_malformed_logs_warning(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(b"GET /scope HTTP/1.1\r\nHost : x\r\n\r\n")
        assert_error_response(c, 400)
    raw_server.wait_for(r"WARNING:  Invalid HTTP request received")


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


# ---- limits (server with --limit-request-line 1024 --limit-request-header-size 4096
#      --limit-request-body 1000) ----

LIMIT_CASES = [
    ("request-line-too-long",
     b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("request-line-too-long-incomplete",
     b"GET /" + b"a" * 2000, 414),
    ("header-block-too-large",
     b"GET /scope HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 5000 + b"\r\n\r\n", 431),
    ("many-headers-too-large",
     b"GET /scope HTTP/1.1\r\n" + H + b"".join(b"X-H%02d: " % i + b"v" * 90 + b"\r\n"
                                                for i in range(60)) + b"\r\n", 431),
    ("body-over-limit-content-length",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 2000\r\n\r\n" + b"x" * 2000, 413),
    ("body-over-limit-content-length-noread",
     b"POST /noread HTTP/1.1\r\n" + H + b"Content-Length: 2000\r\n\r\n" + b"x" * 2000, 413),
    ("body-over-limit-chunked",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     + b"".join(b"100\r\n" + b"y" * 256 + b"\r\n" for _ in range(6)) + b"0\r\n\r\n", 413),
    ("body-over-limit-single-chunk",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"5dc\r\n" + b"z" * 1500 + b"\r\n0\r\n\r\n", 413),
]


@pytest.mark.parametrize("data,status", [c[1:] for c in LIMIT_CASES],
                         ids=[c[0] for c in LIMIT_CASES])
def test_limits(limits_server, data, status):
    with Conn(limits_server.addr) as c:
        c.send(data)
        assert_error_response(c, status)
    assert_still_serving(limits_server)


def test_within_limits_ok(limits_server):
    with Conn(limits_server.addr) as c:
        r = c.request("POST", "/echo?return=1", body=b"b" * 1000)
        assert r.status == 200 and len(r.body) == 1000
        r = c.request("GET", "/scope/" + "p" * 900)
        assert r.status == 200
        r = c.request("POST", "/echo", headers=[("Transfer-Encoding", "chunked")],
                      body=b"3e8\r\n" + b"c" * 1000 + b"\r\n0\r\n\r\n")
        assert r.status == 200 and r.json()["length"] == 1000


@pytest.mark.parametrize("data,expect", [
    (b"GET /scope HTTP/1.1\r\n" + H + b"Content-Length: 0\r\nContent-Length: 0\r\n\r\n", 0),
    (b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 3),
    (b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc", 3),
    (b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 3),
    (b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding:\tchunked \r\n\r\n3\r\nabc\r\n0\r\n\r\n", 3),
    (b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n00003\r\nabc\r\n0\r\n\r\n", 3),
], ids=["identical-cl-zero", "identical-cl", "identical-cl-list", "te-uppercase", "te-ows",
        "chunk-size-leading-zeros"])
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
