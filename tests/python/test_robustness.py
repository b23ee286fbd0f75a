"""Abusive clients: resets mid-request, mid-body, mid-response and with
pipelined requests queued.  The server stays up and logs nothing alarming."""
import socket
import struct

import pytest

from rawhttp import Conn, build_request, get, wait_until


@pytest.fixture(scope="module")
def server(server_factory):
    return server_factory("raw_app:app")


def reset(c: Conn) -> None:
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()


@pytest.mark.parametrize("kind", ["sleep", "big-response", "partial-body", "stream", "pipelined"])
def test_resets(server, kind):
    conns = []
    for _ in range(30):
        c = Conn(server.addr)
        if kind == "sleep":
            c.send(build_request("GET", "/sleep?s=0.2"))
        elif kind == "big-response":
            c.send(build_request("GET", "/big?mb=4"))
            c.read_head()
        elif kind == "partial-body":
            c.send(build_request("POST", "/echo", headers=[("Content-Length", "100000")])
                   + b"x" * 5000)
        elif kind == "stream":
            c.send(build_request("GET", "/stream?n=500"))
            c.read_head()
        else:
            c.send(b"".join(build_request("GET", "/big?mb=1") for _ in range(5)))
        conns.append(c)
    for c in conns:
        reset(c)
    # the server notices the resets and keeps serving
    assert get(server.addr, "/id?n=alive").body == b"alive"
    assert server.alive()


def test_no_errors_logged_for_resets(server):
    # after all the resets above, wait for a quiet request and check the logs
    wait_until(lambda: get(server.addr, "/id?n=1").body == b"1")
    err = server.stderr
    assert "Traceback" not in err
    assert "Exception ignored" not in err
    assert not [ln for ln in err.splitlines() if ln.startswith(("ERROR", "CRITICAL"))]


def test_half_open_flood_does_not_block_others(server):
    idle = [Conn(server.addr) for _ in range(100)]
    partial = [Conn(server.addr) for _ in range(50)]
    try:
        for c in partial:
            c.send(b"GET /id?n=x HTTP/1.1\r\nHost: x\r\n")
        assert get(server.addr, "/id?n=through").body == b"through"
    finally:
        for c in idle + partial:
            c.close()
