"""The malformed/oversized request cases shared by tests/python/test_malformed.py
(pytest) and tests/malformed/matrix.py (`make malformed`, the table in
docs/reliability-matrix.md): (id, request bytes, expected status)."""

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


# More cases (default server), each answered with its status and a close.
TLS_HELLO_HEAD = bytes.fromhex("16030100c4010000c00303") + b"\xab" * 32
EXTRA_CASES = [
    # request smuggling
    ("te-whitespace-before-colon",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("cl-whitespace-before-colon",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length : 5\r\n\r\nhello", 400),
    ("te-chunked-then-identity-fields",
     b"POST /echo HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400),
    ("te-identity-only",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\nhello", 400),
    ("te-vertical-tab",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n", 400),
    ("te-quoted-chunked",
     b'POST /echo HTTP/1.1\r\n' + H + b'Transfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n', 400),
    ("identical-cls-plus-te",
     b"POST /echo HTTP/1.1\r\n" + H
     + b"Content-Length: 3\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("content-length-overflow",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\n", 400),
    ("content-length-hex",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", 400),
    ("content-length-empty",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: \r\n\r\n", 400),
    # chunk sizes, extensions, trailers
    ("chunk-ext-oversize",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5;" + b"a" * 20000
     + b"\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-trailing-space",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-empty",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-17-hex-digits",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"10000000000000000\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-data-longer-than-size",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-bare-cr",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\rhello\r\n0\r\n\r\n", 400),
    ("chunk-trailer-nul",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\nX-T: a\x00b\r\n\r\n", 400),
    # NUL bytes
    ("nul-in-target", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("nul-in-method", b"G\x00T /scope HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("nul-in-header-name", b"GET /scope HTTP/1.1\r\n" + H + b"X-N\x00l: v\r\n\r\n", 400),
    ("nul-before-request", b"\x00GET /scope HTTP/1.1\r\n" + H + b"\r\n", 400),
    # bare CR
    ("bare-cr-after-request-line", b"GET /scope HTTP/1.1\r" + H + b"\r\n", 400),
    ("bare-cr-before-final-crlf", b"GET /scope HTTP/1.1\r\n" + H + b"\r\r\n", 400),
    ("cr-in-target", b"GET /a\rb HTTP/1.1\r\n" + H + b"\r\n", 400),
    # obs-fold
    ("obs-fold-tab", b"GET /scope HTTP/1.1\r\n" + H + b"X-F: a\r\n\tb\r\n\r\n", 400),
    ("whitespace-before-first-header", b"GET /scope HTTP/1.1\r\n x: y\r\n" + H + b"\r\n", 400),
    # request-line oddities
    ("http-0.9-simple-request", b"GET /\r\n\r\n", 400),
    ("http-3.0", b"GET /scope HTTP/3.0\r\n" + H + b"\r\n", 505),
    ("http-2-preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    ("http-1.10", b"GET /scope HTTP/1.10\r\n" + H + b"\r\n", 400),
    ("http-1-no-minor", b"GET /scope HTTP/1\r\n" + H + b"\r\n", 400),
    ("http-11-no-dot", b"GET /scope HTTP/11\r\n" + H + b"\r\n", 400),
    ("asterisk-form-get", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("ssh-banner", b"SSH-2.0-OpenSSH_9.6\r\n", 400),
    ("binary-garbage", bytes(range(256)), 400),
    ("tls-record-head-only", TLS_HELLO_HEAD, 400),
    # oversize on the default limits (request line 8190, header block 8190)
    ("target-70k", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("method-70k", b"A" * 70000 + b" / HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("header-value-70k", b"GET /scope HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 70000 + b"\r\n\r\n", 431),
    ("header-name-70k", b"GET /scope HTTP/1.1\r\n" + H + b"X" * 70000 + b": v\r\n\r\n", 431),
]

# Lenient but valid framing (default server): answered 200 by /echo or /scope,
# the connection kept open.  (id, request bytes, body length the app reads)
LENIENT_CASES = [
    ("identical-cl-zero",
     b"GET /scope HTTP/1.1\r\n" + H + b"Content-Length: 0\r\nContent-Length: 0\r\n\r\n", 0),
    ("identical-cl",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 3),
    ("identical-cl-list",
     b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc", 3),
    ("te-uppercase",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: CHUNKED\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 3),
    ("te-ows",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding:\tchunked \r\n\r\n3\r\nabc\r\n0\r\n\r\n", 3),
    ("chunk-size-leading-zeros",
     b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n00003\r\nabc\r\n0\r\n\r\n", 3),
]
