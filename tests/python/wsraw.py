"""A minimal raw WebSocket client over a socket, for sending frames no
well-behaved library would (unmasked, reserved bits, bad opcodes, invalid
UTF-8, bad close codes) and reading the server's frames as they are.

Every socket has a timeout; nothing here sleeps or measures time.
"""
from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import zlib

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA    # opcodes


def accept_value(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def deflate(payload: bytes, compressor=None) -> bytes:
    """A permessage-deflate payload (RFC 7692: sync flush, tail removed)."""
    c = compressor or zlib.compressobj(wbits=-15)
    data = c.compress(payload) + c.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return data[:-4]


def close_payload(code: int, reason: bytes = b"") -> bytes:
    """A close frame's payload: the code, big-endian, then the reason."""
    return struct.pack("!H", code) + reason


def frame(op: int, payload: bytes, fin: bool = True, mask: bool = True, rsv: int = 0,
          mask_key: bytes | None = None) -> bytes:
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + struct.pack("!H", n)
    else:
        head = bytes([b0, mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = mask_key or os.urandom(4)
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        head += key
    return head + payload


class RawWS:
    def __init__(self, addr, path: str = "/echo", headers: list[tuple[str, str]] | None = None,
                 timeout: float = 10.0, key: bytes | None = None) -> None:
        self.inflater = zlib.decompressobj(-15)     # for RSV1 (permessage-deflate) frames
        self.compressed_frames = 0
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.settimeout(timeout)
        self.key = key or base64.b64encode(os.urandom(16))
        lines = [f"GET {path} HTTP/1.1", f"Host: {addr[0]}:{addr[1]}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {self.key.decode()}",
                 "Sec-WebSocket-Version: 13"]
        for k, v in headers or []:
            lines.append(f"{k}: {v}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed during handshake")
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        status_line, *hlines = head.decode("latin-1").split("\r\n")
        self.status = int(status_line.split(" ")[1])
        self.headers = [(k.strip().lower(), v.strip()) for k, _, v in (h.partition(":") for h in hlines)]

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def send_frame(self, op: int, payload: bytes = b"", **kw) -> None:
        self.send(frame(op, payload, **kw))

    def close_normally(self) -> None:
        """Send a 1000 close and check that the server's close answers 1000."""
        self.send_frame(CLOSE, close_payload(1000))
        assert self.recv_close()[0] == 1000

    def _read(self, n: int) -> bytes | None:
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv_frame(self) -> tuple[bool, int, bytes] | None:
        """(fin, opcode, payload) of the next server frame; None at EOF."""
        h = self._read(2)
        if h is None:
            return None
        fin, op, masked, n = bool(h[0] & 0x80), h[0] & 0x0F, bool(h[1] & 0x80), h[1] & 0x7F
        assert not masked, "server frames are never masked"
        assert h[0] & 0x30 == 0, "no RSV2/RSV3"
        rsv1 = bool(h[0] & 0x40)
        assert not rsv1 or self.header("sec-websocket-extensions"), "RSV1 without permessage-deflate"
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        payload = self._read(n) if n else b""
        if rsv1:
            self.compressed_frames += 1
            payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
        return fin, op, payload

    def recv_close(self) -> tuple[int | None, str]:
        """Skip to the server's close frame: (code, reason); (None, "") if
        the connection ended without one."""
        while True:
            f = self.recv_frame()
            if f is None:
                return None, ""
            if f[1] == CLOSE:
                payload = f[2]
                if not payload:
                    return 1005, ""
                return struct.unpack("!H", payload[:2])[0], payload[2:].decode()

    def read_eof(self) -> bool:
        """True if the server closes the connection (after any frames)."""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return True
            if not chunk:
                return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> "RawWS":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
