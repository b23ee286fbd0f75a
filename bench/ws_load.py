#!/usr/bin/env python3
"""WebSocket echo load generator for bench/run.py (wrk does not speak WebSocket).

N connections, each with one message in flight: send a masked text frame of --size bytes, wait
for the echo, send the next.  Messages are counted over --duration seconds after --warmup
seconds; latency is the time from a send to its echo.  Prints one JSON object:
{"msgs", "seconds", "msgs_per_s", "p50_ms", "p99_ms", "avg_ms", "errors", "connections"}.
A tool, not a test.  uvloop is used when installed.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import time


class EchoClient(asyncio.Protocol):
    def __init__(self, handshake: bytes, frame: bytes, stats: dict) -> None:
        self.handshake, self.frame, self.stats = handshake, frame, stats
        self.buf = bytearray()
        self.upgraded = False
        self.sent_at = 0.0
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.handshake)

    def send(self) -> None:
        self.sent_at = time.perf_counter()
        self.transport.write(self.frame)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.stats["errors"] += 1
                self.transport.close()
                return
            del buf[: end + 4]
            self.upgraded = True
            self.send()
        while len(buf) >= 2:
            n = buf[1] & 0x7F
            off = 2
            if n == 126:
                if len(buf) < 4:
                    return
                n, off = int.from_bytes(buf[2:4], "big"), 4
            elif n == 127:
                if len(buf) < 10:
                    return
                n, off = int.from_bytes(buf[2:10], "big"), 10
            if len(buf) < off + n:
                return
            op = buf[0] & 0x0F
            del buf[: off + n]
            if op == 0x1 or op == 0x2:
                st = self.stats
                if st["counting"]:
                    st["msgs"] += 1
                    if st["msgs"] % st["sample_every"] == 0:
                        st["lat"].append(time.perf_counter() - self.sent_at)
                self.send()
            elif op == 0x9:     # ping: answer it (masked pong, zero mask)
                self.transport.write(b"\x8a\x80\x00\x00\x00\x00")
            elif op == 0x8:
                self.transport.close()

    def connection_lost(self, exc) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


def masked_text(payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def run(args) -> dict:
    loop = asyncio.get_running_loop()
    stats = {"msgs": 0, "errors": 0, "lat": [], "counting": False, "sample_every": 7}
    frame = masked_text(b"x" * args.size)
    conns = []
    for _ in range(args.connections):
        key = base64.b64encode(os.urandom(16)).decode()
        hs = (f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\nUpgrade: websocket\r\n"
              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        try:
            _, proto = await loop.create_connection(
                lambda: EchoClient(hs.encode(), frame, stats), args.host, args.port)
        except OSError:
            stats["errors"] += 1
            continue
        conns.append(proto)
    await asyncio.sleep(args.warmup)
    stats["counting"] = True
    t0 = time.perf_counter()
    await asyncio.sleep(args.duration)
    stats["counting"] = False
    secs = time.perf_counter() - t0
    for c in conns:
        c.transport.close()
    lat = sorted(stats["lat"])
    res = {"msgs": stats["msgs"], "seconds": round(secs, 3),
           "msgs_per_s": round(stats["msgs"] / secs, 1), "errors": stats["errors"],
           "connections": len(conns)}
    if lat:
        res["p50_ms"] = round(1000 * lat[len(lat) // 2], 4)
        res["p99_ms"] = round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 4)
        res["avg_ms"] = round(1000 * statistics.fmean(lat), 4)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/ws")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--size", type=int, default=32, help="message bytes (< 65536)")
    args = p.parse_args(argv)
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    print(json.dumps(runner(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
