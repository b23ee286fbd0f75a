"""The 1-connection WebSocket echo floor: the least a server can do per message.

A blocking, single-connection WebSocket echo server with no event loop, no
framework and no validation beyond what the echo needs: it blocks in recv(),
unmasks the frame and sends it back in one send().  Driven by the same load
client as the "ws1" scenario (bench/ws_load.c), its messages/s are what the
loopback round trip and the two processes' wake-ups allow on this machine:
no server that runs Python per message can beat it, so it bounds what a ratio
against uvicorn at one connection can be.

    taskset -c 0 python3 bench/ws_floor.py --port 8990 &
    taskset -c 1 build/bench/ws_load --port 8990 --path /ws --connections 1 --duration 5

Serves connections one after another until killed.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import socket
import struct

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _recv_exact(conn: socket.socket, n: int, buf: bytearray) -> bytes:
    while len(buf) < n:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _serve(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(65536)
        if not chunk:
            return
        buf += chunk
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    buf = bytearray(rest)
    key = b""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    while True:
        b0, b1 = _recv_exact(conn, 2, buf)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", _recv_exact(conn, 2, buf))[0]
        elif n == 127:
            n = struct.unpack("!Q", _recv_exact(conn, 8, buf))[0]
        mask = _recv_exact(conn, 4, buf) if b1 & 0x80 else b""
        data = _recv_exact(conn, n, buf)
        if mask:
            data = bytes(c ^ mask[i & 3] for i, c in enumerate(data))
        op = b0 & 0x0F
        if op == 0x8:                       # close: echo it and stop
            conn.sendall(bytes([0x88, len(data)]) + data)
            return
        if n < 126:
            hdr = bytes([b0, n])
        elif n < 65536:
            hdr = bytes([b0, 126]) + struct.pack("!H", n)
        else:
            hdr = bytes([b0, 127]) + struct.pack("!Q", n)
        conn.sendall(hdr + data)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8990)
    args = p.parse_args()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.host, args.port))
    srv.listen(16)
    while True:
        conn, _ = srv.accept()
        with conn:
            try:
                _serve(conn)
            except (ConnectionError, OSError):
                pass


if __name__ == "__main__":
    main()
