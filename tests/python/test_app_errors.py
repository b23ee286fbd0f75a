"""Application failures and ASGI send() misuse, with uvicorn's behaviour
and messages."""
import uuid

from rawhttp import Conn, build_request, get, record, wait_until


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
    got = wait_until(lambda: record(raw_server.addr, tag))
    assert got == ["RuntimeError: Unexpected ASGI message 'http.response.body' sent, "
                   "after response already completed."]


def test_server_survives_many_failures(raw_server):
    for _ in range(20):
        with Conn(raw_server.addr) as c:
            assert c.request("GET", "/raise-before").status == 500
    assert get(raw_server.addr, "/id?n=ok").body == b"ok"
    assert raw_server.alive()


def test_head_request_to_failing_app_has_no_body(raw_server):
    with Conn(raw_server.addr) as c:
        c.send(build_request("HEAD", "/raise-before"))
        r = c.read_response("HEAD")
        assert r.status == 500
        assert r.header("content-length") == "21"
        c.assert_closed()       # and no body bytes before the close


def test_response_longer_than_content_length(raw_server):
    tag = uuid.uuid4().hex
    with Conn(raw_server.addr) as c:
        c.send(build_request("GET", f"/misuse/too-long?tag={tag}"))
        # the app returns without completing the response: the connection is
        # closed, with at most the head and never more than the declared 3 bytes
        data = c.read_to_eof()
        if data:
            head, _, body = data.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ")
            assert len(body) <= 3
    got = wait_until(lambda: record(raw_server.addr, tag))
    assert got == ["RuntimeError: Response content longer than Content-Length"]


def test_response_shorter_than_content_length(raw_server):
    tag = uuid.uuid4().hex
    with Conn(raw_server.addr) as c:
        c.send(build_request("GET", f"/misuse/too-short?tag={tag}"))
        r = c.read_response(allow_incomplete=True)
        assert r.status == 200
        assert not r.complete
        assert r.body == b"12345"
    got = wait_until(lambda: record(raw_server.addr, tag))
    assert got == ["RuntimeError: Response content shorter than Content-Length"]


def test_invalid_response_header_value_rejected(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/misuse/bad-header")
        assert r.status == 200
        assert r.text == "RuntimeError: Invalid HTTP header value."
        assert not r.has_header("x-injected")
        assert not r.has_header("x-bad")
        assert c.request("GET", "/id?n=1").body == b"1"


def test_invalid_response_header_name_rejected(raw_server):
    with Conn(raw_server.addr) as c:
        r = c.request("GET", "/misuse/bad-header-name")
        assert r.text == "RuntimeError: Invalid HTTP header name."


def test_receive_after_response_reports_disconnect(raw_server):
    tag = uuid.uuid4().hex
    with Conn(raw_server.addr) as c:
        r = c.request("POST", f"/receive-after-response?tag={tag}", body=b"abc")
        assert r.body == b"done"
        assert c.request("GET", "/id?n=1").body == b"1"
    got = wait_until(lambda: record(raw_server.addr, tag))
    assert got == ["http.disconnect"]


def test_access_log_for_app_failure_500(raw_server):
    import re
    with Conn(raw_server.addr) as c:
        port = c.sock.getsockname()[1]
        assert c.request("GET", "/raise-before?log=1").status == 500
    # uvicorn's 500 goes through send(), so it is access-logged like any response
    raw_server.wait_for(
        re.escape(f'INFO:     127.0.0.1:{port} - "GET /raise-before?log=1 HTTP/1.1" '
                  f'500 Internal Server Error'), stream="stdout", timeout=5)
