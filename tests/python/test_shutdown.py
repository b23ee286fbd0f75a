"""Graceful shutdown: in-flight requests finish, idle connections close."""
import signal
import socket

from conftest import start_server
from rawhttp import Conn, build_request, record, wait_until


def test_inflight_request_completes_on_sigint():
    srv = start_server("raw_app:app")
    try:
        idle = Conn(srv.addr)
        assert idle.request("GET", "/id?n=1").body == b"1"
        busy = Conn(srv.addr)
        busy.send(build_request("GET", "/sleep?s=1&tag=inflight"))
        # make sure the request reached the app before signalling
        wait_until(lambda: record(srv.addr, "inflight") == ["started"])
        srv.proc.send_signal(signal.SIGINT)
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


def test_timeout_graceful_shutdown_cancels_inflight():
    srv = start_server("raw_app:app", "--timeout-graceful-shutdown", "1")
    try:
        busy = Conn(srv.addr)
        busy.send(build_request("GET", "/sleep?s=60&tag=cancel"))
        wait_until(lambda: record(srv.addr, "cancel") == ["started"])
        srv.proc.send_signal(signal.SIGINT)
        assert srv.proc.wait(timeout=15) == 0       # long before the 60 s sleep ends
        rest = busy.read_to_eof()
        # the cancelled request gets a 500 (nothing was sent yet) or a bare close
        assert rest == b"" or rest.startswith(b"HTTP/1.1 500 "), rest[:100]
    finally:
        srv.stop()
    assert "Cancel 1 running task(s), timeout graceful shutdown exceeded" in srv.stderr
    assert "Application shutdown complete." in srv.stderr


def test_second_sigint_forces_exit():
    srv = start_server("raw_app:app")
    try:
        busy = Conn(srv.addr)
        busy.send(build_request("GET", "/sleep?s=60&tag=force"))
        wait_until(lambda: record(srv.addr, "force") == ["started"])
        srv.proc.send_signal(signal.SIGINT)
        srv.wait_for(r"INFO:     Shutting down")
        srv.proc.send_signal(signal.SIGINT)
        srv.proc.wait(timeout=15)                  # long before the 60 s sleep ends
    finally:
        srv.stop()
