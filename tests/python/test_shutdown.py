"""Graceful shutdown: in-flight requests finish, idle connections close."""
import socket
import threading

from conftest import start_server
from rawhttp import Conn, build_request


def test_inflight_request_completes_on_sigint():
    srv = start_server("raw_app:app")
    try:
        idle = Conn(srv.addr)
        assert idle.request("GET", "/id?n=1").body == b"1"
        busy = Conn(srv.addr)
        busy.send(build_request("GET", "/sleep?s=1"))
        # make sure the request reached the app before signalling
        srv.wait_for(r'"GET /id\?n=1 HTTP/1.1" 200', stream="stdout")
        import time
        time.sleep(0.2)
        srv.proc.send_signal(2)
        r = busy.read_response()
        assert r.status == 200 and r.body == b"slept"
        idle.assert_closed()
        assert srv.proc.wait(timeout=10) == 0
    finally:
        srv.stop()
    assert "Application shutdown complete." in srv.stderr


def test_new_connections_refused_after_shutdown():
    srv = start_server("raw_app:app")
    addr = srv.addr
    assert srv.stop() == 0
    try:
        s = socket.create_connection(addr, timeout=5)
    except OSError:
        return
    # if a connect slipped through, it must be closed without an answer
    s.settimeout(5)
    try:
        assert s.recv(100) == b""
    except ConnectionResetError:
        pass
    finally:
        s.close()
