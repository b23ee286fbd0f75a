"""A tiny, strict HTTP/1.x client over raw sockets for protocol-level tests.

Every socket has a timeout; nothing here sleeps or measures time.
"""
from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field

DEFAULT_TIMEOUT = 10.0


class Closed(Exception):
    """The peer closed the connection before a complete message arrived."""


def connect(addr, timeout: float = DEFAULT_TIMEOUT) -> socket.socket:
    s = socket.create_connection(addr, timeout=timeout)
    s.settimeout(timeout)
    return s


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def recv_to_eof(sock: socket.socket) -> bytes:
    """Everything the peer sends on `sock` until it closes its side."""
    out = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return out
        out += chunk


def send(sock: socket.socket, data: bytes) -> None:
    """sendall that tolerates the server having already answered and closed."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]      # (lower-case name, value) in order
    body: bytes = b""
    raw_head: bytes = b""
    chunks: list[bytes] = field(default_factory=list)   # data of each chunk, when chunked
    complete: bool = True

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name.lower()]

    def has_header(self, name: str) -> bool:
        return any(k == name.lower() for k, _ in self.headers)

    def json(self):
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class Conn:
    """A buffered connection: send requests, read framed responses."""

    def __init__(self, addr, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.sock = connect(addr, timeout)
        self.buf = b""
        self.eof = False

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, t: float) -> None:
        self.sock.settimeout(t)

    def send(self, data: bytes) -> None:
        send(self.sock, data)

    def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, sep: bytes, limit: int = 1 << 20) -> bytes:
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out, self.buf = self.buf[: i + len(sep)], self.buf[i + len(sep):]
                return out
            if len(self.buf) > limit:
                raise AssertionError("line too long")
            if not self._fill():
                raise Closed(f"closed while waiting for {sep!r}; have {self.buf[:200]!r}")

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise Closed(f"closed after {len(self.buf)} of {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self) -> bytes:
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    def read_head(self) -> Response:
        head = self.read_until(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        version, _, rest = lines[0].decode("latin-1").partition(" ")
        code, _, reason = rest.partition(" ")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep, f"bad header line {line!r}"
            assert name == name.strip() and name, f"bad header name in {line!r}"
            headers.append((name.lower(), value.strip()))
        return Response(version=version, status=int(code), reason=reason, headers=headers,
                        raw_head=head)

    def read_response(self, method: str = "GET", allow_incomplete: bool = False) -> Response:
        """Read one response (1xx interim responses are returned as such)."""
        r = self.read_head()
        if r.status < 200 or method == "HEAD" or r.status in (204, 304):
            return r
        te = r.header("transfer-encoding")
        cl = r.header("content-length")
        try:
            if te is not None:
                assert te.lower() == "chunked", te
                assert cl is None, "both content-length and transfer-encoding in response"
                body = b""
                while True:
                    size_line = self.read_until(b"\r\n")
                    size = int(size_line[:-2].split(b";")[0], 16)
                    if size == 0:
                        trailer = self.read_until(b"\r\n")
                        assert trailer == b"\r\n", f"unexpected trailer {trailer!r}"
                        break
                    data = self.read_exact(size)
                    assert self.read_exact(2) == b"\r\n", "chunk data not followed by CRLF"
                    r.chunks.append(data)
                    body += data
                r.body = body
            elif cl is not None:
                r.body = self.read_exact(int(cl))
            else:
                r.body = self.read_to_eof()
        except Closed:
            if not allow_incomplete:
                raise
            r.complete = False
            r.body = self.buf
            self.buf = b""
        return r

    def request(self, method: str = "GET", path: str = "/", headers=None, body: bytes = b"",
                version: str = "1.1", host: str | None = "testserver") -> Response:
        self.send(build_request(method, path, headers, body, version, host))
        return self.read_response(method)

    def assert_closed(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """The server closes the connection (EOF or reset) with no further bytes."""
        self.sock.settimeout(timeout)
        rest = self.read_to_eof()
        assert rest == b"", f"unexpected bytes before close: {rest[:300]!r}"

    def is_open(self) -> bool:
        """Best effort: a following request on this connection gets answered."""
        return not self.eof


def build_request(method: str = "GET", path: str = "/", headers=None, body: bytes = b"",
                  version: str = "1.1", host: str | None = "testserver") -> bytes:
    lines = [f"{method} {path} HTTP/{version}"]
    hdrs = list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    if host is not None and "host" not in names:
        lines.append(f"Host: {host}")
    for k, v in hdrs:
        lines.append(f"{k}: {v}")
    if body and "content-length" not in names and "transfer-encoding" not in names:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def get(addr, path: str = "/", **kw) -> Response:
    with Conn(addr) as c:
        return c.request("GET", path, **kw)


def chunked(*parts: bytes) -> bytes:
    out = b""
    for p in parts:
        if p:
            out += b"%x\r\n" % len(p) + p + b"\r\n"
    return out + b"0\r\n\r\n"


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05):
    """Poll predicate() until it returns something truthy; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def record(addr, tag: str):
    """What the test app recorded under `tag` (GET /record?tag=...: raw_app,
    ws_app and ws_waiter_app all answer it), as decoded JSON."""
    return get(addr, f"/record?tag={tag}").json()


def wait_record(addr, tag: str, n: int = 1, within: float = 30.0):
    """The app records asynchronously: poll until `tag` has n entries or
    `within` seconds passed. Bounded by time, not by a count of polls: the app
    may be waiting on its own timer (e.g. /timeout-receive's 0.05 s), and over
    loopback with busy polling 500 round trips can take less than that."""
    deadline = time.monotonic() + within
    while True:
        r = record(addr, tag)
        if len(r) >= n or time.monotonic() >= deadline:
            break
        time.sleep(0.001)
    if len(r) >= n:
        return r
    raise AssertionError(f"record {tag!r} has {record(addr, tag)}")
