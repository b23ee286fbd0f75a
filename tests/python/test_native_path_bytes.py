"""The native tier routes a path with no '%' and no byte >= 0x80 as is and
percent-decodes (and UTF-8-checks) every other one: a '%41' or a raw
non-ASCII byte at every position of paths of every length up to 24 bytes
(every alignment of the 8-byte check) must be answered exactly as the ASGI
tier (--no-native) answers it, over real sockets with the raw bytes."""
from __future__ import annotations

import pytest

import rawhttp
from conftest import start_server

INSERTS = [b"%41", b"%2F", b"%", b"\xc3\xa9", b"\xff", b"\x80"]


@pytest.fixture(scope="module")
def servers():
    native = start_server("path_app:app")
    asgi = start_server("path_app:app", "--no-native")
    try:
        yield native, asgi
    finally:
        native.stop()
        asgi.stop()


def exchange(srv, target: bytes) -> tuple:
    with rawhttp.Conn(srv.addr) as conn:
        conn.send(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        r = conn.read_response()
        return r.status, r.body


@pytest.mark.parametrize("insert", INSERTS, ids=lambda b: b.hex())
def test_every_position_answered_as_the_asgi_tier(servers, insert):
    native, asgi = servers
    checked = 0
    for n in range(1, 25):
        for pos in range(n):
            seg = b"a" * pos + insert + b"b" * (n - pos - 1)
            target = b"/p/" + seg
            assert exchange(native, target) == exchange(asgi, target), target
            checked += 1
    assert checked == 300


def test_plain_paths_answered_as_the_asgi_tier(servers):
    native, asgi = servers
    for n in range(1, 25):
        target = b"/p/" + bytes(b"abcdefghijklmnopqrstuvwxyz"[:n])
        got = exchange(native, target)
        assert got == exchange(asgi, target)
        assert got[0] == 200
