"""Instructions per echoed WebSocket message of a Celeris server, counted by callgrind.

The WebSocket counterpart of bench/instructions.py.  The server
(`python -m celeris run ws_echo:app`, bench/apps/ws_echo.py) runs under
`valgrind --tool=callgrind --instr-atstart=no`; this script (outside valgrind,
so none of its work is counted) opens C connections to /ws, warms them up,
switches collection on (`callgrind_control -i on`), runs N rounds, switches
it off, dumps, and divides the server's user-space instructions by the number
of messages echoed.  A round sends one masked text message on every
connection, then reads every echo back, so with -c 16 the server sees up to
16 messages per loop turn, as under load.

    python3 bench/ws_instructions.py                 # 1 connection, 2000 messages
    python3 bench/ws_instructions.py -c 1 -c 16      # one figure per connection count
    python3 bench/ws_instructions.py --json out.json --size 64
    python3 bench/ws_instructions.py --sessions --app ws_deps:app --path '/ws/lobby?n=3'

--sessions counts whole sessions instead of messages: handshake, the server's
first message, its close (answered), one connection at a time
(bench/apps/ws_deps.py: a route with path/query/header parameters and
dependencies, accepted, one message, closed by the server).

Output: one line per connection count (instructions per message), or
instructions per session.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import struct
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
from instructions import count, start_server, stop_server  # noqa: E402


def _handshake(port: int, path: str, extra: str = "") -> tuple[socket.socket, bytes]:
    """A WebSocket opened on path (extra: more header lines, CRLF-terminated);
    returns the socket and whatever followed the 101 head."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"{extra}Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit("server closed the connection during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise SystemExit(f"handshake refused: {head.splitlines()[0]!r}")
    return sock, head.split(b"\r\n\r\n", 1)[1]


def _connect(port: int, path: str) -> socket.socket:
    return _handshake(port, path)[0]


def _frame(payload: bytes) -> bytes:
    """A masked text frame (mask 0: the payload is sent as is)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload


def _read_echo(sock: socket.socket, want: int) -> None:
    """Reads one unmasked server frame of `want` payload bytes (no deflate: it is off)."""
    hdr = 2 + (2 if want >= 126 else 0) + (6 if want >= 65536 else 0)
    need, got = hdr + want, b""
    while len(got) < need:
        chunk = sock.recv(need - len(got))
        if not chunk:
            raise SystemExit("server closed the connection")
        got += chunk


def _rounds(socks: list[socket.socket], frame: bytes, size: int, n: int) -> None:
    for _ in range(n):
        for s in socks:
            s.sendall(frame)
        for s in socks:
            _read_echo(s, size)


def _read_frames_to_close(sock: socket.socket, buf: bytes) -> None:
    """Reads unmasked server frames (after `buf`, bytes already received)
    until the close frame."""
    while True:
        while len(buf) < 2 or len(buf) < 2 + (buf[1] & 0x7F):
            if len(buf) >= 2 and (buf[1] & 0x7F) >= 126:
                raise SystemExit("long frame in --sessions mode")
            chunk = sock.recv(4096)
            if not chunk:
                raise SystemExit("server closed the connection")
            buf += chunk
        n = 2 + (buf[1] & 0x7F)
        op, buf = buf[0] & 0x0F, buf[n:]
        if op == 0x8:
            return


def _sessions(port: int, path: str, n: int) -> None:
    """n sessions: handshake, read frames up to the server's close, answer it."""
    for _ in range(n):
        sock, rest = _handshake(port, path, "User-Agent: bench\r\n")
        _read_frames_to_close(sock, rest)
        sock.sendall(struct.pack("!BB", 0x88, 0x82) + b"\0\0\0\0" + struct.pack("!H", 1000))
        sock.recv(16)      # the server's shutdown: EOF
        sock.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-c", "--connections", type=int, action="append",
                   help="connections (repeatable; default 1)")
    p.add_argument("-n", "--messages", type=int, default=2000,
                   help="messages counted per connection count (2000; rounded down to a multiple of -c)")
    p.add_argument("--warmup", type=int, default=300, help="messages before counting (300)")
    p.add_argument("--size", type=int, default=13, help="payload bytes (13)")
    p.add_argument("--app", default="ws_echo:app", help="APP in bench/apps (ws_echo:app)")
    p.add_argument("--path", default="/ws")
    p.add_argument("--sessions", action="store_true",
                   help="count instructions per session (-n sessions, default 300) instead of per message")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--celeris-args", default="", help="extra `celeris run` arguments")
    args = p.parse_args(argv)
    counts = args.connections or [1]

    server, port, tmp = start_server(
        args.app, ["--ws-per-message-deflate", "false", "--ws-ping-interval", "0",
                   *args.celeris_args.split()], "celeris-callgrind-ws-")
    if args.sessions:
        n = args.messages if args.messages != 2000 else 300
        try:
            _sessions(port, args.path, max(1, args.warmup // 10))
            total = count(server, tmp, lambda: _sessions(port, args.path, n))
        finally:
            stop_server(server)
        print(f"{total / n:,.0f} instructions per session ({args.app} {args.path})")
        if args.json:
            args.json.write_text(json.dumps({"app": args.app, "path": args.path, "sessions": n,
                                             "instructions_per_session": round(total / n)},
                                            indent=2) + "\n")
        return 0
    results = {}
    frame = _frame(b"x" * args.size)
    try:
        for k in counts:
            socks = [_connect(port, args.path) for _ in range(k)]
            _rounds(socks, frame, args.size, max(1, args.warmup // k))
            rounds = max(1, args.messages // k)
            total = count(server, tmp, lambda: _rounds(socks, frame, args.size, rounds))
            per = total / (rounds * k)
            results[k] = round(per)
            print(f"{k} connection(s): {per:,.0f} instructions per echoed message")
            for s in socks:
                s.close()
            time.sleep(0.5)
    finally:
        stop_server(server)
    if args.json:
        args.json.write_text(json.dumps({"app": args.app, "messages": args.messages, "size": args.size,
                                         "instructions_per_message": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
