"""The ASGI http scope Celeris builds, compared with uvicorn's values."""
from rawhttp import Conn


def scope_of(addr, path="/scope", headers=None, version="1.1", host="testserver"):
    with Conn(addr) as c:
        local = c.sock.getsockname()
        r = c.request("GET", path, headers=headers, version=version, host=host)
        assert r.status == 200, r
        return r.json(), local


def test_basic_fields(raw_server):
    scope, _ = scope_of(raw_server.addr, "/scope")
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.3"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == ""
    assert scope["root_path"] == ""


def test_client_and_server_tuples(raw_server):
    scope, local = scope_of(raw_server.addr)
    assert scope["client"] == ["127.0.0.1", local[1]]
    assert scope["server"] == ["127.0.0.1", raw_server.port]


def test_percent_decoded_path_and_raw_path(raw_server):
    s, _ = scope_of(raw_server.addr, "/scope/a%20b")
    assert s["path"] == "/scope/a b"
    assert s["raw_path"] == "/scope/a%20b"


def test_percent_decoding_details(raw_server):
    # encoded letters, UTF-8 sequences, %2F stays a slash in path but not in raw_path,
    # an invalid escape is kept literally (urllib.parse.unquote semantics)
    s, _ = scope_of(raw_server.addr, "/%73cope/caf%C3%A9/x%2Fy/100%zz")
    assert s["path"] == "/scope/café/x/y/100%zz"
    assert s["raw_path"] == "/%73cope/caf%C3%A9/x%2Fy/100%zz"


def test_query_string_bytes(raw_server):
    s, _ = scope_of(raw_server.addr, "/scope?x=1&y=%20z&flag")
    assert s["path"] == "/scope"
    assert s["raw_path"] == "/scope"
    assert s["query_string"] == "x=1&y=%20z&flag"


def test_empty_query_after_question_mark(raw_server):
    s, _ = scope_of(raw_server.addr, "/scope?")
    assert s["path"] == "/scope"
    assert s["query_string"] == ""


def test_headers_lowercased_in_order(raw_server):
    hdrs = [("X-First", "One"), ("x-SECOND", "Two Words"), ("X-First", "again"),
            ("Accept", "*/*"), ("X-Spaces", "  padded  ")]
    s, _ = scope_of(raw_server.addr, headers=hdrs, host="example.com:8080")
    assert s["headers"] == [
        ["host", "example.com:8080"],
        ["x-first", "One"],
        ["x-second", "Two Words"],
        ["x-first", "again"],
        ["accept", "*/*"],
        ["x-spaces", "padded"],
    ]


def test_http_10_version(raw_server):
    s, _ = scope_of(raw_server.addr, version="1.0", host=None)
    assert s["http_version"] == "1.0"
    assert s["headers"] == []


def test_methods(raw_server):
    with Conn(raw_server.addr) as c:
        for m in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "X-CUSTOM"]:
            r = c.request(m, "/scope")
            assert r.status == 200
            assert r.json()["method"] == m


def test_absolute_form_target(raw_server):
    s, _ = scope_of(raw_server.addr, "http://testserver/scope?q=1")
    assert s["path"] == "/scope"
    assert s["query_string"] == "q=1"


def test_state_from_lifespan_is_copied_per_request(raw_server):
    with Conn(raw_server.addr) as c:
        r1 = c.request("GET", "/state").json()["state"]
        assert r1 == {"started": True, "name": "raw_app"}
        # the app mutated its copy; the next request gets a fresh copy
        r2 = c.request("GET", "/state").json()["state"]
        assert r2 == {"started": True, "name": "raw_app"}
    s, _ = scope_of(raw_server.addr)
    assert s["state"] == {"started": True, "name": "raw_app"}


# ---- --root-path ----

def test_root_path_prefixes_path_and_raw_path(root_path_server):
    s, _ = scope_of(root_path_server.addr, "/scope?a=b")
    assert s["root_path"] == "/api"
    assert s["path"] == "/api/scope"
    assert s["raw_path"] == "/api/scope"
    assert s["query_string"] == "a=b"


def test_root_path_with_encoded_path(root_path_server):
    s, _ = scope_of(root_path_server.addr, "/scope/a%20b")
    assert s["path"] == "/api/scope/a b"
    assert s["raw_path"] == "/api/scope/a%20b"


def test_scope_keys_in_uvicorn_order_on_every_request(raw_server):
    # the scope is a copy of a per-server template (scope.c): same keys, same
    # order, fresh values and fresh mutable members on every request
    with Conn(raw_server.addr) as c:
        seen = []
        for i in range(3):
            c.send(f"GET /scope?i={i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            seen.append(c.read_response().json())
    keys = [k for k in seen[0] if k != "_body"]
    assert keys[:12] == ["type", "asgi", "http_version", "server", "client", "scheme", "method",
                         "root_path", "path", "raw_path", "query_string", "headers"]
    assert set(keys[12:]) <= {"extensions", "state"}
    for i, s in enumerate(seen):
        assert [k for k in s if k != "_body"] == keys
        assert s["query_string"] == f"i={i}" and s["asgi"] == {"version": "3.0", "spec_version": "2.3"}
        assert None not in (s["type"], s["method"], s["path"], s["server"], s["client"])
