"""A simple native route's first step runs before its Cycle and NativeCall
exist (native_call.c celeris_ncall_first_step): a result the C JSON writer
takes is written straight onto the connection, any other outcome makes the
objects then and carries on as they would have.  Over real sockets (where a
keep-alive connection's Driver runs requests eagerly), every outcome must be
answered as FastAPI itself answers it (the same app on the ASGI tier), one
request at a time and pipelined, and contextvars must not leak."""
import pytest

from conftest import _server_fixture
from rawhttp import Conn, build_request

# (without the access log: a logged request gets its Cycle from the start)
native_server = _server_fixture("native_server", "firststep_app:app", "--no-access-log")
asgi_server = _server_fixture("asgi_server", "firststep_app:app", "--no-native", "--no-access-log")

PATHS = ["/flat", "/flat-typed", "/nested", "/nested-typed", "/list", "/declined",
         "/declined-typed", "/nan", "/str", "/none", "/created", "/nocontent", "/response",
         "/json-response", "/stream", "/http-error", "/boom", "/yield0", "/sleep", "/sleep-boom",
         "/items/3?q=x", "/items/x", "/items/7"]


def comparable(r, method="GET"):
    return (r.status, r.reason, [(k, v) for k, v in r.headers if k != "date"], r.body)


def answers(addr, method, path, times=3):
    # the first request on a connection starts its Driver; the later ones
    # are the eager first steps
    with Conn(addr) as c:
        return [comparable(c.request(method, path)) for _ in range(times)]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_first_step_outcomes_match_fastapi(native_server, asgi_server, method, path):
    assert answers(native_server.addr, method, path) == answers(asgi_server.addr, method, path)


def pipelined(addr):
    with Conn(addr) as c:
        c.request("GET", "/flat")       # the Driver exists from here on
        c.send(b"".join(build_request("GET", p, host="testserver") for p in PATHS * 2))
        return [comparable(c.read_response()) for _ in PATHS * 2]


def test_pipelined_outcomes_match_fastapi(native_server, asgi_server):
    assert pipelined(native_server.addr) == pipelined(asgi_server.addr)


def test_contextvars_do_not_leak_between_first_steps(native_server):
    with Conn(native_server.addr) as c:
        c.request("GET", "/flat")
        first = c.request("GET", "/var?set=a").json()
        second = c.request("GET", "/var?set=b").json()
        c.send(build_request("GET", "/var?set=c", host="testserver")
               + build_request("GET", "/var", host="testserver"))
        third, fourth = c.read_response().json(), c.read_response().json()
    assert first == second == third == fourth == {"before": "unset", "task": True}


def closing(addr, version, headers):
    with Conn(addr) as c:
        c.request("GET", "/flat", version=version,
                  headers=[("Connection", "keep-alive")] if version == "1.0" else None)
        c.send(build_request("GET", "/flat", headers, version=version, host="testserver"))
        r = comparable(c.read_response())
        c.assert_closed()
        return r


@pytest.mark.parametrize("version,headers", [("1.1", [("Connection", "close")]), ("1.0", None)])
def test_last_response_on_a_connection_matches_fastapi(native_server, asgi_server, version, headers):
    # written straight onto the connection, then the connection closes as
    # after any other response
    assert closing(native_server.addr, version, headers) == closing(asgi_server.addr, version, headers)
