"""WebSocket upgrade requests.  Celeris has no WebSocket support: like uvicorn
without a WebSocket library, it serves the upgrade request as plain HTTP (the
app gets an "http" scope and answers it; no 101 Switching Protocols)."""
from rawhttp import Conn

WS_HEADERS = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
              ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
              ("Sec-WebSocket-Version", "13")]


def test_upgrade_to_raw_app_served_as_http(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/scope", headers=WS_HEADERS)
        assert r.status == 200
        s = r.json()
        assert s["type"] == "http"
        assert ["upgrade", "websocket"] in s["headers"]
        assert not r.has_header("sec-websocket-accept")
        # the connection was not switched: a normal request follows on it
        r2 = c.request("GET", "/id?n=after-upgrade")
        assert r2.status == 200 and r2.body == b"after-upgrade"
    # and warns, as uvicorn does without a WebSocket library
    raw_server.wait_for(r"WARNING:  Unsupported upgrade request\.")


def test_upgrade_to_fastapi_websocket_route(fastapi_server):
    with Conn(fastapi_server.addr) as c:
        r = c.request("GET", "/ws", headers=WS_HEADERS)
        # Starlette answers an http request to a websocket-only route with 404
        assert r.status == 404
        assert r.status != 101
        assert not r.has_header("sec-websocket-accept")
        r2 = c.request("GET", "/")
        assert r2.status == 200
    fastapi_server.wait_for(r"WARNING:  Unsupported upgrade request\.")


def test_upgrade_header_without_connection_upgrade_is_plain(raw_server):
    # "Upgrade" alone (no "Connection: upgrade") is not an upgrade request
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/id?n=plain", headers=[("Upgrade", "websocket")])
        assert r.status == 200 and r.body == b"plain"


def test_h2c_upgrade_served_as_http11(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/id?n=h2c", headers=[("Upgrade", "h2c"),
                                                    ("Connection", "Upgrade, HTTP2-Settings"),
                                                    ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA")])
        assert r.status == 200 and r.body == b"h2c"
        assert r.version == "HTTP/1.1"
