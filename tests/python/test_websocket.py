"""WebSockets over real sockets: the C core's RFC 6455 implementation driven
by an independent client (the `websockets` library) and, for frames no
library sends, a raw socket client (wsraw.py).  ASGI behaviour follows
uvicorn's websockets-sansio protocol."""
import json
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from conftest import _server_fixture
from rawhttp import Conn, record, wait_record
from wsraw import BINARY, CLOSE, CONT, PING, PONG, TEXT, RawWS, accept_value, close_payload, frame

ws_server = _server_fixture("ws_server", "ws_app:app")
ws_small_server = _server_fixture("ws_small_server", "ws_app:app", "--ws-max-size", "1000",
                                  "--ws-ping-interval", "0")
ws_ping_server = _server_fixture("ws_ping_server", "ws_app:app", "--ws-ping-interval", "0.5",
                                 "--ws-ping-timeout", "1")
ws_fastapi_server = _server_fixture("ws_fastapi_server", "ws_fastapi_app:app")


def url(srv, path):
    return f"ws://{srv.host}:{srv.port}{path}"


# ---- handshake ----

def test_handshake_101_and_accept_value(ws_server):
    with RawWS(ws_server.addr, "/echo", key=b"dGhlIHNhbXBsZSBub25jZQ==") as ws:
        assert ws.status == 101
        assert ws.header("sec-websocket-accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        assert ws.header("upgrade") == "websocket"
        assert ws.header("connection").lower() == "upgrade"
        assert ws.header("server") == "celeris"
        assert ws.header("sec-websocket-extensions") is None   # no permessage-deflate
        assert accept_value(ws.key).decode() == ws.header("sec-websocket-accept")
    ws_server.wait_for(r'"WebSocket /echo" \[accepted\]')


def test_scope(ws_server):
    with connect(url(ws_server, "/scope?x=1&y=%20"), subprotocols=["chat", "superchat"],
                 additional_headers={"X-Custom": "v"}) as ws:
        scope = json.loads(ws.recv())
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope" and scope["raw_path"] == "/scope"
    assert scope["query_string"] == "x=1&y=%20"
    assert scope["root_path"] == ""
    assert scope["subprotocols"] == ["chat", "superchat"]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["state"] == {}
    assert scope["client"][0] == "127.0.0.1" and scope["server"] == ["127.0.0.1", ws_server.port]
    assert ["x-custom", "v"] in scope["headers"]
    assert "method" not in scope


def test_subprotocol_and_accept_headers(ws_server):
    with connect(url(ws_server, "/echo?sub=1"), subprotocols=["b-proto", "a-proto"]) as ws:
        assert ws.subprotocol == "b-proto"
    with RawWS(ws_server.addr, "/headers") as ws:
        assert ws.status == 101
        assert ws.header("x-extra") == "yes"
        assert ws.header("set-cookie") == "a=b"
        assert ws.recv_close() == (1000, "")


@pytest.mark.parametrize("extra,status", [
    ([("Sec-WebSocket-Version", "8")], 426),
])
def test_bad_version_is_426(ws_server, extra, status):
    with Conn(ws_server.addr) as c:
        r = c.request("GET", "/echo", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                               ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")] + extra)
        assert r.status == status
        assert r.header("sec-websocket-version") == "13"
        assert r.header("connection") == "close"


@pytest.mark.parametrize("method,headers", [
    ("GET", [("Sec-WebSocket-Key", "short"), ("Sec-WebSocket-Version", "13")]),
    ("GET", [("Sec-WebSocket-Version", "13")]),
    ("POST", [("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]),
])
def test_invalid_handshake_is_400(ws_server, method, headers):
    with Conn(ws_server.addr) as c:
        r = c.request(method, "/echo", headers=[("Upgrade", "websocket"), ("Connection", "Upgrade")] + headers)
        assert r.status == 400
    # the server still serves
    with connect(url(ws_server, "/echo")) as ws:
        ws.send("still")
        assert ws.recv() == "still"


def test_upgrade_header_without_connection_upgrade_is_plain_http(ws_server):
    with Conn(ws_server.addr) as c:
        r = c.request("GET", "/record?tag=none", headers=[("Upgrade", "websocket")])
        assert r.status == 200 and r.json() == []


def test_h2c_upgrade_served_as_http11(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/id?n=h2c", headers=[("Upgrade", "h2c"),
                                                    ("Connection", "Upgrade, HTTP2-Settings"),
                                                    ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
        assert r.status == 200 and r.body == b"h2c"
        assert r.version == "HTTP/1.1"
        r2 = c.request("GET", "/id?n=after")
        assert r2.status == 200 and r2.body == b"after"


# ---- messages ----

def test_echo_text_and_bytes(ws_server):
    with connect(url(ws_server, "/echo")) as ws:
        for msg in ["hello", "", "héllo wörld ✓ 😀", "x" * 70000]:
            ws.send(msg)
            assert ws.recv() == msg
        for msg in [b"\x00\x01\xff", b"", bytes(range(256)) * 300]:
            ws.send(msg)
            assert ws.recv() == msg


def test_fragmented_messages(ws_server):
    with connect(url(ws_server, "/echo")) as ws:
        ws.send(["frag", "mented ", "tëxt"])
        assert ws.recv() == "fragmented tëxt"
        ws.send([b"a", b"", b"bc"])
        assert ws.recv() == b"abc"
    # fragments with a ping between them, and a character split across fragments
    with RawWS(ws_server.addr, "/echo") as ws:
        ws.send(frame(TEXT, b"ab\xe2", fin=False) + frame(PING, b"p1") + frame(CONT, b"\x82", fin=False)
                + frame(PONG, b"") + frame(CONT, b"\xacz"))
        assert ws.recv_frame() == (True, PONG, b"p1")
        assert ws.recv_frame() == (True, TEXT, "ab€z".encode())


def test_many_messages_in_one_write(ws_server):
    with RawWS(ws_server.addr, "/echo") as ws:
        ws.send(b"".join(frame(BINARY, str(i).encode()) for i in range(200)))
        for i in range(200):
            assert ws.recv_frame() == (True, BINARY, str(i).encode())


def test_burst_of_sends_arrives_in_order(ws_server):
    """Sends write at once, without a loop turn each: 2000 of them back to
    back still reach the client complete and in order."""
    with RawWS(ws_server.addr, "/burst?n=2000") as ws:
        for i in range(2000):
            assert ws.recv_frame() == (True, TEXT, str(i).encode())
        assert ws.recv_close()[0] == 1000


def test_messages_sent_as_other_mappings(ws_server):
    with RawWS(ws_server.addr, "/mapping-send") as ws:
        assert ws.status == 101
        assert ws.recv_frame() == (True, TEXT, b"proxy")
        assert ws.recv_frame() == (True, BINARY, b"mapping")
        assert ws.recv_close()[0] == 1000


def test_cancelled_receive_loses_nothing(ws_server):
    """A receive() cancelled by a timeout (asyncio.wait_for) leaves the
    session usable: the next receive() gets the next message, none is lost."""
    with RawWS(ws_server.addr, "/timeout-receive?tag=tmo") as ws:
        assert wait_record(ws_server.addr, "tmo") == ["timeout"]
        ws.send(b"".join(frame(TEXT, m) for m in (b"a", b"b")))
        assert ws.recv_frame() == (True, TEXT, b"a")
        assert ws.recv_frame() == (True, TEXT, b"b")
        ws.send_frame(TEXT, b"c")
        assert ws.recv_frame() == (True, TEXT, b"c")
        ws.close_normally()
    assert wait_record(ws_server.addr, "tmo", 2)[1] == {"type": "websocket.disconnect", "code": 1000,
                                                    "reason": ""}


def test_large_messages_from_the_server(ws_server):
    with connect(url(ws_server, "/server-send?n=3&size=3000000"), max_size=None) as ws:
        for i in range(3):
            assert ws.recv() == bytes([i]) * 3000000
        with pytest.raises(ConnectionClosed) as exc:
            ws.recv()
        assert exc.value.rcvd.code == 1000


def test_ping_answered_with_pong(ws_server):
    with connect(url(ws_server, "/echo")) as ws:
        assert ws.ping(b"abc").wait(10)
    with RawWS(ws_server.addr, "/echo") as ws:
        ws.send_frame(PING, b"payload")
        assert ws.recv_frame() == (True, PONG, b"payload")
        ws.send_frame(PING, b"")
        assert ws.recv_frame() == (True, PONG, b"")


def test_server_keepalive_ping_and_timeout(ws_ping_server):
    # the server pings; answering keeps the connection open
    with RawWS(ws_ping_server.addr, "/echo") as ws:
        fin, op, payload = ws.recv_frame()
        assert op == PING and len(payload) == 4
        ws.send_frame(PONG, payload)
        fin, op, payload2 = ws.recv_frame()
        assert op == PING and payload2 != payload
        # no answer this time: closed with 1011 once the pong is late
        assert ws.recv_close() == (1011, "keepalive ping timeout")
        ws.send_frame(CLOSE, close_payload(1011))
        assert ws.read_eof()


# ---- closing ----

def test_client_close_with_code_and_reason(ws_server):
    with RawWS(ws_server.addr, "/echo?tag=cc") as ws:
        ws.send_frame(CLOSE, close_payload(4001, "bye ✓".encode()))
        assert ws.recv_close() == (4001, "bye ✓")      # echoed
        assert ws.read_eof()
    assert wait_record(ws_server.addr, "cc") == [{"type": "websocket.disconnect", "code": 4001, "reason": "bye ✓"}]


def test_client_close_without_code(ws_server):
    with RawWS(ws_server.addr, "/echo?tag=nocode") as ws:
        ws.send_frame(CLOSE, b"")
        assert ws.recv_close() == (1005, "")            # an empty close echoed
    assert wait_record(ws_server.addr, "nocode") == [{"type": "websocket.disconnect", "code": 1005, "reason": ""}]


def test_client_close_with_library(ws_server):
    with connect(url(ws_server, "/echo?tag=lib")) as ws:
        ws.send("x")
        assert ws.recv() == "x"
        ws.close(code=1001, reason="going")
    assert wait_record(ws_server.addr, "lib") == [{"type": "websocket.disconnect", "code": 1001, "reason": "going"}]


def test_client_drops_connection(ws_server):
    ws = RawWS(ws_server.addr, "/echo?tag=drop")
    ws.send_frame(TEXT, b"hi")
    assert ws.recv_frame() == (True, TEXT, b"hi")
    ws.close()
    # uvicorn reports 1005 for a connection lost after the handshake
    assert wait_record(ws_server.addr, "drop") == [{"type": "websocket.disconnect", "code": 1005}]


def test_server_close_with_code_and_reason(ws_server):
    with connect(url(ws_server, "/close?tag=sc&code=4002&reason=done")) as ws:
        ws.send("trigger")
        with pytest.raises(ConnectionClosed) as exc:
            ws.recv()
        assert exc.value.rcvd.code == 4002 and exc.value.rcvd.reason == "done"
    rec = wait_record(ws_server.addr, "sc", 2)
    assert rec[0] == {"type": "websocket.receive", "text": "trigger"}
    assert rec[1] == {"type": "websocket.disconnect", "code": 4002, "reason": "done"}


def test_server_close_handshake_raw(ws_server):
    with RawWS(ws_server.addr, "/close?code=1000") as ws:
        ws.send_frame(TEXT, b"go")
        assert ws.recv_close() == (1000, "")
        # messages after the server's close are dropped; our close completes it
        ws.send_frame(TEXT, b"ignored")
        ws.send_frame(CLOSE, close_payload(1000))
        assert ws.read_eof()


# ---- errors ----

def test_oversize_message_is_1009(ws_small_server):
    with RawWS(ws_small_server.addr, "/echo?tag=big") as ws:
        ws.send_frame(BINARY, b"x" * 1000)
        assert ws.recv_frame() == (True, BINARY, b"x" * 1000)
        ws.send_frame(BINARY, b"x" * 1001)
        assert ws.recv_close() == (1009, "Message exceeds the maximum size (1000 bytes)")
    assert wait_record(ws_small_server.addr, "big")[0]["code"] == 1009
    # fragments add up
    with RawWS(ws_small_server.addr, "/echo") as ws:
        ws.send(frame(TEXT, b"a" * 600, fin=False) + frame(CONT, b"b" * 401))
        assert ws.recv_close()[0] == 1009
    with connect(url(ws_small_server, "/echo")) as ws:
        ws.send("y" * 2000)
        with pytest.raises(ConnectionClosed) as exc:
            ws.recv()
        assert exc.value.rcvd.code == 1009


@pytest.mark.parametrize("data", [
    frame(TEXT, b"\xff"),
    frame(TEXT, b"\xce", fin=False) + frame(CONT, b"A"),
    frame(TEXT, b"ok\xf0\x9f\x98"),
    frame(TEXT, b"\xed\xa0\x80"),                      # surrogate
    frame(CLOSE, close_payload(1000, b"\xc3")),         # close reason
])
def test_invalid_utf8_is_1007(ws_server, data):
    with RawWS(ws_server.addr, "/echo?tag=utf8") as ws:
        ws.send(data)
        code, _ = ws.recv_close()
        assert code == 1007
        assert ws.read_eof()


@pytest.mark.parametrize("data", [
    frame(TEXT, b"a", mask=False),                  # clients must mask
    frame(TEXT, b"a", rsv=4),                       # RSV1 without an extension
    frame(TEXT, b"a", rsv=1),
    frame(0x3, b"a"),                               # reserved opcode
    frame(0xB, b""),
    frame(CONT, b"a"),                              # continuation with nothing to continue
    frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"),
    frame(PING, b"a", fin=False),                   # fragmented control frame
    frame(PING, b"x" * 126),                        # control frame over 125 bytes
    frame(CLOSE, b"\x03"),                          # 1-byte close payload
    frame(CLOSE, close_payload(1005)),              # reserved close codes
    frame(CLOSE, close_payload(999)),
    frame(CLOSE, close_payload(5000)),
    bytes([0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4]),   # 64-bit length, top bit set
])
def test_protocol_errors_are_1002(ws_server, data):
    with RawWS(ws_server.addr, "/echo") as ws:
        ws.send(data)
        code, _ = ws.recv_close()
        assert code == 1002
        assert ws.read_eof()


# ---- the handshake answered by the app ----

def test_denial_response(ws_server):
    with pytest.raises(InvalidStatus) as exc:
        with connect(url(ws_server, "/deny?tag=deny")):
            pass
    r = exc.value.response
    assert r.status_code == 401
    assert r.body == b"no entry"
    assert r.headers["x-denied"] == "1"
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["connection"] == "close"
    assert wait_record(ws_server.addr, "deny") == [{"type": "websocket.disconnect", "code": 1006}]
    ws_server.wait_for(r'"WebSocket /deny\?tag=deny" 401')


def test_close_before_accept_is_403(ws_server):
    with pytest.raises(InvalidStatus) as exc:
        with connect(url(ws_server, "/close-before-accept?tag=403")):
            pass
    assert exc.value.response.status_code == 403
    assert wait_record(ws_server.addr, "403") == [{"type": "websocket.disconnect", "code": 1006}]


@pytest.mark.parametrize("path", ["/raise", "/no-accept"])
def test_app_failure_before_accept_is_500(ws_server, path):
    with pytest.raises(InvalidStatus) as exc:
        with connect(url(ws_server, path)):
            pass
    assert exc.value.response.status_code == 500
    assert exc.value.response.body == b"Internal Server Error"


def test_app_failure_messages_logged(ws_server):
    with pytest.raises(InvalidStatus):
        with connect(url(ws_server, "/no-accept")):
            pass
    ws_server.wait_for("ASGI callable returned without completing handshake.")
    with pytest.raises(InvalidStatus):
        with connect(url(ws_server, "/raise")):
            pass
    ws_server.wait_for("ValueError: boom before accept")


@pytest.mark.parametrize("path", ["/raise-after", "/return"])
def test_app_ends_after_accept_drops_connection(ws_server, path):
    with RawWS(ws_server.addr, path) as ws:
        assert ws.status == 101
        assert ws.recv_close() == (None, "")      # no close frame, as uvicorn


def test_asgi_misuse_errors(ws_server):
    with connect(url(ws_server, "/misuse?tag=misuse")) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv()
    assert wait_record(ws_server.addr, "misuse") == [
        "Expected ASGI message 'websocket.send' or 'websocket.close', but got 'http.response.start'."]
    with connect(url(ws_server, "/after-close?tag=after")) as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv()
    assert wait_record(ws_server.addr, "after") == [
        "Unexpected ASGI message 'websocket.send', after sending 'websocket.close'."]
    with pytest.raises(InvalidStatus) as exc:
        with connect(url(ws_server, "/deny-bad-status?tag=bad")):
            pass
    assert exc.value.response.status_code == 403
    assert wait_record(ws_server.addr, "bad") == ["Invalid HTTP status code '700' in response."]


# ---- flow control ----

def test_backpressure_stops_reading(ws_server):
    """While the app does not receive, the server stops reading: the
    client's sends eventually block.  Then every message arrives in order."""
    ws = RawWS(ws_server.addr, "/stall?tag=bp&reply_after=100000")
    try:
        assert ws.recv_frame() == (True, TEXT, b"stalling")
        msg = frame(BINARY, b"z" * 16384)
        ws.sock.setblocking(False)
        sent = 0
        pending = b""
        blocked = False
        while sent < 256 * 1024 * 1024:
            if not pending:
                pending = msg
            try:
                n = ws.sock.send(pending)
            except BlockingIOError:
                blocked = True
                break
            pending = pending[n:]
            if not pending:
                sent += 1
        assert blocked, "the server kept reading while the app did not receive"
        ws.sock.settimeout(30)
        with Conn(ws_server.addr) as c:
            assert c.request("GET", "/go?tag=bp").status == 200
        if pending:
            ws.sock.sendall(pending)
            sent += 1
        ws.close_normally()
    finally:
        ws.close()
    assert wait_record(ws_server.addr, "bp") == [{"messages": sent, "code": 1000}]


def test_close_behind_buffered_messages(ws_server):
    """Messages and the close frame arrive in one write while the app is not
    receiving: the app still gets every message, then the disconnect."""
    ws = RawWS(ws_server.addr, "/stall?tag=cb")
    try:
        assert ws.recv_frame() == (True, TEXT, b"stalling")
        ws.send(b"".join(frame(BINARY, bytes([i])) for i in range(50))
                + frame(CLOSE, close_payload(1000)))
        with Conn(ws_server.addr) as c:
            assert c.request("GET", "/go?tag=cb").status == 200
        assert ws.recv_close()[0] == 1000
    finally:
        ws.close()
    assert wait_record(ws_server.addr, "cb") == [{"messages": 50, "code": 1000}]


def test_send_waits_for_a_client_that_does_not_read(ws_server):
    """A client that does not read: once the socket buffers and the 256 KiB
    write high-water mark are full, the app's send() waits instead of the
    server buffering the rest (32 MiB here); when the client reads, every
    message arrives, in order."""
    n, size = 512, 65536
    ws = RawWS(ws_server.addr, f"/flood?tag=fl&n={n}&size={size}")
    try:
        ws.sock.settimeout(30)
        # wait until the app stops making progress (each poll is a round trip, not a sleep)
        last, still = -1, 0
        while still < 50:
            sent = len(record(ws_server.addr, "fl"))
            still = still + 1 if sent == last else 0
            last = sent
        assert sent < n, "every send() returned though the client read nothing"
        for i in range(n):
            assert ws.recv_frame() == (True, BINARY, bytes([i % 256]) * size)
        assert ws.recv_close()[0] == 1000
    finally:
        ws.close()
    assert len(record(ws_server.addr, "fl")) == n


# ---- shutdown ----

def test_shutdown_closes_with_1012(server_factory):
    srv = server_factory("ws_app:app")
    with connect(url(srv, "/echo?tag=sd")) as ws:
        ws.send("a")
        assert ws.recv() == "a"
        srv.proc.send_signal(2)
        with pytest.raises(ConnectionClosed) as exc:
            ws.recv()
        assert exc.value.rcvd.code == 1012
    assert srv.stop() == 0


# ---- FastAPI ----

def test_fastapi_websocket_route(ws_fastapi_server):
    with connect(url(ws_fastapi_server, "/items/42?q=hello&token=t0k")) as ws:
        assert json.loads(ws.recv()) == {"item_id": 42, "q": "hello", "token": "t0k"}
        ws.send("ping")
        assert ws.recv() == "42: ping"
        ws.close(code=1000)
    with Conn(ws_fastapi_server.addr) as c:
        deadline = time.monotonic() + 30
        while not (d := c.request("GET", "/disconnects").json()) and time.monotonic() < deadline:
            time.sleep(0.001)
        assert d == [1000]


def test_fastapi_websocket_dependency_failures(ws_fastapi_server):
    # missing query parameter: FastAPI closes with 1008 before accepting -> 403
    with pytest.raises(InvalidStatus) as exc:
        with connect(url(ws_fastapi_server, "/items/1")):
            pass
    assert exc.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as exc:
        with connect(url(ws_fastapi_server, "/items/1?token=bad")):
            pass
    assert exc.value.response.status_code == 403
    # a path that does not match: Starlette's websocket 404 is a close before accept
    with pytest.raises(InvalidStatus) as exc:
        with connect(url(ws_fastapi_server, "/nope")):
            pass
    assert exc.value.response.status_code == 403


def test_fastapi_json_and_http_on_same_server(ws_fastapi_server):
    with connect(url(ws_fastapi_server, "/json")) as ws:
        ws.send(json.dumps({"a": [1, 2]}))
        assert json.loads(ws.recv()) == {"got": {"a": [1, 2]}}
        with pytest.raises(ConnectionClosed) as exc:
            ws.recv()
        assert exc.value.rcvd.code == 1000
    with Conn(ws_fastapi_server.addr) as c:
        assert c.request("GET", "/").json() == {"ok": True}


# ---- permessage-deflate ----

DEFLATE = [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]


def test_deflate_negotiated_with_library(ws_server):
    with connect(url(ws_server, "/echo")) as ws:
        assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
        for msg in ["hello " * 1000, "", "x", b"\x00" * 100000, "héllo ✓"]:
            ws.send(msg)
            assert ws.recv() == msg
    with connect(url(ws_server, "/echo"), compression=None) as ws:
        assert ws.protocol.extensions == []
        ws.send("plain")
        assert ws.recv() == "plain"


def test_deflate_frames_raw(ws_server):
    from wsraw import deflate
    import zlib
    with RawWS(ws_server.addr, "/echo", headers=DEFLATE) as ws:
        ext = ws.header("sec-websocket-extensions")
        assert ext == "permessage-deflate; server_max_window_bits=12"
        comp = zlib.compressobj(wbits=-15)
        for text in [b"abc" * 500, b"second message, same context", b""]:
            ws.send_frame(TEXT, deflate(text, comp), rsv=4)
            assert ws.recv_frame() == (True, TEXT, text)
        # uncompressed messages are allowed too; fragmented compressed ones
        ws.send_frame(BINARY, b"raw")
        assert ws.recv_frame() == (True, BINARY, b"raw")
        data = deflate(b"fragmented " * 100, comp)
        ws.send(frame(TEXT, data[:10], fin=False, rsv=4) + frame(PING, b"p") + frame(CONT, data[10:]))
        assert ws.recv_frame() == (True, PONG, b"p")
        assert ws.recv_frame() == (True, TEXT, b"fragmented " * 100)
        assert ws.compressed_frames >= 4


@pytest.mark.parametrize("ext,answer", [
    ("permessage-deflate; server_no_context_takeover; client_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
     "server_max_window_bits=12"),
    ("permessage-deflate; server_max_window_bits=10", "permessage-deflate; server_max_window_bits=10"),
    ("permessage-deflate; server_max_window_bits=8, permessage-deflate",
     "permessage-deflate; server_max_window_bits=12"),
    ("permessage-deflate; unknown_param", None),
    ("permessage-deflate; server_max_window_bits=16", None),
    ("x-webkit-deflate-frame", None),
])
def test_deflate_negotiation(ws_server, ext, answer):
    with RawWS(ws_server.addr, "/echo", headers=[("Sec-WebSocket-Extensions", ext)]) as ws:
        assert ws.status == 101
        assert ws.header("sec-websocket-extensions") == answer


def test_deflate_disabled(server_factory):
    srv = server_factory("ws_app:app", "--ws-per-message-deflate", "false")
    with RawWS(srv.addr, "/echo", headers=DEFLATE) as ws:
        assert ws.header("sec-websocket-extensions") is None
        ws.send_frame(TEXT, b"x", rsv=4)        # RSV1 is then a protocol error
        assert ws.recv_close()[0] == 1002


def test_deflate_errors(ws_small_server):
    from wsraw import deflate
    # a small compressed message that inflates past --ws-max-size: 1009
    with RawWS(ws_small_server.addr, "/echo", headers=DEFLATE) as ws:
        bomb = deflate(b"\0" * 100000)
        assert len(bomb) < 1000
        ws.send_frame(BINARY, bomb, rsv=4)
        assert ws.recv_close()[0] == 1009
    # invalid UTF-8 inside compressed text: 1007
    with RawWS(ws_small_server.addr, "/echo", headers=DEFLATE) as ws:
        ws.send_frame(TEXT, deflate(b"ok\xff"), rsv=4)
        assert ws.recv_close()[0] == 1007
    # corrupt deflate data: 1002; RSV1 on a continuation or a control frame: 1002
    for data in [frame(TEXT, b"\xff\xff\xff\xff", rsv=4),
                 frame(TEXT, deflate(b"a"), fin=False, rsv=4) + frame(CONT, b"", rsv=4),
                 frame(PING, b"", rsv=4)]:
        with RawWS(ws_small_server.addr, "/echo", headers=DEFLATE) as ws:
            ws.send(data)
            assert ws.recv_close()[0] == 1002
