"""Application failures and ASGI send() misuse, with uvicorn's behaviour
and messages."""
import uuid

from rawhttp import Conn, build_request, get, wait_until


def test_exception_before_start_gives_500(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/raise-before")
        assert r.status == 500
        assert r.body == b"Internal Server Error"
        assert r.header("content-type", "").startswith("text/plain")
        assert r.header("connection") == "close"
        c.assert_closed()
    raw_server.wait_for(r"ERROR:    Exception in ASGI application")
    raw_server.wait_for(r"(?s)Traceback.*RuntimeError: boom-before-start")
    assert get(raw_server.addr, "/id?n=1").body == b"1"


def test_exception_after_start_closes_connection(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(build_request("GET", "/raise-after"))
        r = c.read_response(allow_incomplete=True)
        assert r.status == 200
        assert r.header("content-length") == "100"
        assert not r.complete
        assert r.body == b"0123456789"
        assert c.eof
    raw_server.wait_for(r"(?s)Traceback.*RuntimeError: boom-after-start")
    assert get(raw_server.addr, "/id?n=2").body == b"2"


def test_return_without_start_gives_500(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/no-start")
        assert r.status == 500
        assert r.body == b"Internal Server Error"
        c.assert_closed()
    raw_server.wait_for(r"ASGI callable returned without starting response\.")


def test_body_before_start_raises_runtime_error(raw_server):
    r = get(raw_server.addr, "/misuse/body-first")
    assert r.status == 200
    assert r.text == ("RuntimeError: Expected ASGI message 'http.response.start', "
                      "but got 'http.response.body'.")


def test_start_twice_raises_runtime_error(raw_server):
    r = get(raw_server.addr, "/misuse/start-twice")
    assert r.status == 200
    assert r.text == ("RuntimeError: Expected ASGI message 'http.response.body', "
                      "but got 'http.response.start'.")


def test_message_after_completion_raises_runtime_error(raw_server):
    tag = uuid.uuid4().hex
    with Conn(raw_server.addr) as c:
        r = c.request("GET", f"/misuse/after-complete?tag={tag}")
        assert r.status == 200
        assert r.body == b"done"
        # the connection is not disturbed
        assert c.request("GET", "/id?n=3").body == b"3"
    got = wait_until(lambda: get(raw_server.addr, f"/record?tag={tag}").json())
    assert got == ["RuntimeError: Unexpected ASGI message 'http.response.body' sent, "
                   "after response already completed."]


def test_server_survives_many_failures(raw_server):
    for _ in range(20):
        with Conn(raw_server.addr) as c:
            assert c.request("GET", "/raise-before").status == 500
    assert get(raw_server.addr, "/id?n=ok").body == b"ok"
    assert raw_server.alive()
