"""HTTP/1.1 request serialisation and response parsing for the TestClient.

This is the *client* side of the in-memory connection: it turns an httpx
request into wire bytes for the C core and parses the bytes the core wrote.
"""
from __future__ import annotations

from typing import Any


def serialize_request(request: Any) -> bytes:
    """Wire bytes of an httpx.Request (body read fully; chunked when the
    request says so)."""
    body = request.read()
    target = request.url.raw_path or b"/"
    out = [request.method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
    names = set()
    chunked = False
    for name, value in request.headers.raw:
        lname = name.lower()
        names.add(lname)
        if lname == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        out += [name, b": ", value, b"\r\n"]
    if b"host" not in names:
        out.insert(4, b"host: " + request.url.netloc + b"\r\n")
    if body and not chunked and b"content-length" not in names:
        out.append(b"content-length: %d\r\n" % len(body))
    out.append(b"\r\n")
    if chunked:
        if body:
            out += [b"%x\r\n" % len(body), body, b"\r\n"]
        out.append(b"0\r\n\r\n")
    else:
        out.append(body)
    return b"".join(out)


class ResponseParser:
    """Incremental parser for one HTTP/1.1 response (interim 1xx skipped)."""

    def __init__(self, head_request: bool) -> None:
        self.head_request = head_request
        self.buf = bytearray()
        self.status: int | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.complete = False
        self._mode: str | None = None      # "length" | "chunked" | "close" | "none"
        self._left = 0
        self._chunk_state = "size"

    def feed(self, data: bytes) -> None:
        if data:
            self.buf += data
        while not self.complete:
            if self.status is None:
                if not self._parse_head():
                    return
                continue
            if not self._parse_body():
                return

    def feed_eof(self) -> None:
        """The server closed: a close-delimited body ends here; anything else
        incomplete is kept as received (a truncated response)."""
        if self.status is not None:
            if self._mode == "close":
                self.body += self.buf
                self.buf.clear()
            self.complete = True

    def _parse_head(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).split(b"\r\n")
        del self.buf[: end + 4]
        parts = head[0].split(b" ", 2)
        status = int(parts[1])
        headers = []
        for line in head[1:]:
            name, _, value = line.partition(b":")
            headers.append((name, value.strip()))
        if 100 <= status < 200:
            return True         # interim response (100 Continue): skip
        self.status = status
        self.headers = headers
        lower = {n.lower(): v for n, v in headers}
        if self.head_request or status in (204, 304):
            self._mode = "none"
            self.complete = True
        elif lower.get(b"transfer-encoding", b"").lower() == b"chunked":
            self._mode = "chunked"
        elif b"content-length" in lower:
            self._mode = "length"
            self._left = int(lower[b"content-length"])
            if self._left == 0:
                self.complete = True
        else:
            self._mode = "close"
        return True

    def _parse_body(self) -> bool:
        if self._mode == "length":
            take = min(self._left, len(self.buf))
            self.body += self.buf[:take]
            del self.buf[:take]
            self._left -= take
            if self._left == 0:
                self.complete = True
                return True
            return False
        if self._mode == "chunked":
            while True:
                if self._chunk_state == "size":
                    end = self.buf.find(b"\r\n")
                    if end < 0:
                        return False
                    size = int(bytes(self.buf[:end]).split(b";")[0], 16)
                    del self.buf[: end + 2]
                    if size == 0:
                        self._chunk_state = "trailers"
                    else:
                        self._left = size
                        self._chunk_state = "data"
                elif self._chunk_state == "data":
                    if len(self.buf) < self._left + 2:
                        return False
                    self.body += self.buf[: self._left]
                    del self.buf[: self._left + 2]
                    self._chunk_state = "size"
                else:
                    end = self.buf.find(b"\r\n")
                    if end < 0:
                        return False
                    line = bytes(self.buf[:end])
                    del self.buf[: end + 2]
                    if not line:
                        self.complete = True
                        return True
        return False            # "close": wait for EOF
