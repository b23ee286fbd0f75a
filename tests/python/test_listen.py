"""Listening on a UNIX socket (--uds) and on an inherited descriptor (--fd)."""
import json
import os
import socket
import tempfile

from conftest import ServerProcess
from rawhttp import build_request, get, recv_to_eof


def _unix_request(path: str, data: bytes) -> bytes:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(path)
        s.sendall(data)
        return recv_to_eof(s)
    finally:
        s.close()


def test_uds():
    d = tempfile.mkdtemp(prefix="celeris-uds-")
    path = os.path.join(d, "s.sock")
    srv = ServerProcess("raw_app:app", listen=("--uds", path)).wait_started()
    try:
        assert f"Celeris running on unix socket {path}" in srv.stderr
        raw = _unix_request(path, build_request("GET", "/scope", headers=[("Connection", "close")]))
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        scope = json.loads(body)
        # as uvicorn: no (host, port) for UNIX sockets
        assert scope["client"] is None
        assert scope["server"] is None
        assert scope["path"] == "/scope"
    finally:
        assert srv.stop() == 0


def test_fd():
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    port = ls.getsockname()[1]
    srv = ServerProcess("raw_app:app", listen=("--fd", str(ls.fileno())),
                        pass_fds=(ls.fileno(),)).wait_started()
    try:
        r = get(("127.0.0.1", port), "/id?n=fd")
        assert r.status == 200 and r.body == b"fd"
    finally:
        ls.close()
        assert srv.stop() == 0
