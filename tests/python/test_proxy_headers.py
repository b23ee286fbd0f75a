"""--proxy-headers / --forwarded-allow-ips: X-Forwarded-For / -Proto reach the
scope as client and scheme exactly as uvicorn's ProxyHeadersMiddleware puts
them there (the installed uvicorn is the reference), on both tiers."""
from __future__ import annotations

import asyncio
import itertools
import os
import re

import pytest
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from celeris.proxy import ProxyHeaders
from conftest import ServerProcess, start_server
from rawhttp import Conn, get

TRUSTED = ["127.0.0.1", "127.0.0.1,::1", "*", "10.0.0.0/8, 127.0.0.1", "192.168.1.1",
           "127.0.0.0/8,unix:sock", ["10.1.2.3", "127.0.0.1"], "10.0.0.1/8", ""]
CLIENTS = [("127.0.0.1", 5000), ("10.9.9.9", 1), ("192.168.1.1", 2), None, ("::1", 3)]
PROTOS = [None, [b"https"], [b" wss "], [b"ftp"], [b"http", b"https"], [b"HTTPS"], [b"\xa0https\xa0"]]
FORS = [None, [b"1.2.3.4"], [b"1.2.3.4, 10.0.0.5"], [b"1.2.3.4", b"127.0.0.1"], [b""], [b" , "],
        [b"1.2.3.4:8080"], [b"[2001:db8::1]:443, 127.0.0.1"], [b"[::1"], [b"2001:db8::2"],
        [b"unix:sock, 127.0.0.1"], [b"1.2.3.4:x"], [b"1.2.3.4: 81"], [b"caf\xe9, 127.0.0.1"],
        [b"10.0.0.7, 10.0.0.8"], [b"5.6.7.8:+9"]]


def uvicorn_scope(trusted, client, protos, fors):
    headers = [(b"x-forwarded-proto", v) for v in protos or []]
    headers += [(b"x-forwarded-for", v) for v in fors or []]
    scope = {"type": "http", "client": client, "scheme": "http", "headers": headers}
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    asyncio.run(ProxyHeadersMiddleware(app, trusted_hosts=trusted)(scope, None, None))
    return seen["scheme"], seen["client"]


def celeris_scope(trusted, client, protos, fors):
    """What scope.c does: trusts(peer host) once, then resolve(last proto, joined fors)."""
    p = ProxyHeaders(trusted)
    scheme, out_client = "http", client
    if protos is None and fors is None:
        return scheme, out_client
    if not p.trusts(client[0] if client else None):
        return scheme, out_client
    xfp = protos[-1] if protos else None
    xff = b", ".join(fors) if fors else None
    s, c = p.resolve(xfp, xff)
    return (s or scheme), (c or out_client)


def test_resolution_matches_uvicorn_on_a_matrix():
    n = 0
    for trusted, client, protos, fors in itertools.product(TRUSTED, CLIENTS, PROTOS, FORS):
        want = uvicorn_scope(trusted, client, protos, fors)
        got = celeris_scope(trusted, client, protos, fors)
        assert tuple(got[1]) == tuple(want[1]) if want[1] else got[1] == want[1], \
            (trusted, client, protos, fors)
        assert got[0] == want[0], (trusted, client, protos, fors)
        n += 1
    assert n > 1000


# ---- through the C server (ASGI tier: raw_app's /scope) ----

def scope_via(srv, headers):
    with Conn(srv.addr) as c:
        r = c.request("GET", "/scope", headers=headers)
        assert r.status == 200
        return r.json()


CASES = [
    [("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https")],
    [("x-forwarded-for", "1.2.3.4"), ("X-FORWARDED-FOR", "10.0.0.5"), ("x-forwarded-proto", "http"),
     ("X-Forwarded-Proto", "wss")],
    [("X-Forwarded-For", "1.2.3.4:8080, 127.0.0.1")],
    [("X-Forwarded-For", "[2001:db8::1]:443")],
    [("X-Forwarded-For", "")],
    [("X-Forwarded-Proto", "ftp")],
    [("X-Forwarded-For", "caf\xe9"), ("X-Forwarded-Proto", " https ")],
    [],
]


@pytest.mark.parametrize("args,trusted", [
    ((), "127.0.0.1,::1"),
    (("--forwarded-allow-ips", "*"), "*"),
    (("--forwarded-allow-ips", "10.0.0.0/8,127.0.0.1"), "10.0.0.0/8,127.0.0.1"),
    (("--forwarded-allow-ips", "192.168.1.1"), "192.168.1.1"),
    (("--no-proxy-headers",), None),
])
def test_scope_client_and_scheme_through_the_server(args, trusted):
    srv = start_server("raw_app:app", *args)
    try:
        peer = tuple(scope_via(srv, [])["client"])      # the real peer: no proxy headers
        assert peer[0] == "127.0.0.1" and peer[1] > 0
        for headers in CASES:
            got = scope_via(srv, headers)
            if trusted is None:         # --no-proxy-headers: the socket's view
                want_scheme, want_client = "http", (peer[0], got["client"][1])
            else:
                raw = [(k.lower().encode(), v.encode("latin-1")) for k, v in headers]
                protos = [v for k, v in raw if k == b"x-forwarded-proto"] or None
                fors = [v for k, v in raw if k == b"x-forwarded-for"] or None
                want_scheme, want_client = uvicorn_scope(trusted, (peer[0], got["client"][1]),
                                                         protos, fors)
            assert got["scheme"] == want_scheme, headers
            assert tuple(got["client"]) == tuple(want_client), headers
    finally:
        srv.stop()


def test_env_forwarded_allow_ips(monkeypatch):
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "192.0.2.1")
    srv = start_server("raw_app:app")
    try:
        got = scope_via(srv, [("X-Forwarded-For", "1.2.3.4"), ("X-Forwarded-Proto", "https")])
        assert got["client"][0] == "127.0.0.1" and got["scheme"] == "http"
    finally:
        srv.stop()


def test_native_tier_and_access_log_see_the_forwarded_client():
    srv = start_server("workers_app:app")
    try:
        r = get(srv.addr, "/pid", headers=[("X-Forwarded-For", "198.51.100.7:4321"),
                                          ("X-Forwarded-Proto", "https")])
        assert r.status == 200          # /pid is on the native tier
        w = get(srv.addr, "/whoami", headers=[("X-Forwarded-For", "198.51.100.8"),
                                             ("X-Forwarded-Proto", "https")]).json()
        assert w["client"] == ["198.51.100.8", 0] and w["scheme"] == "https"
    finally:
        srv.stop()
    assert re.search(r'198\.51\.100\.7:4321 - "GET /pid HTTP/1\.1" 200', srv.stdout), srv.stdout
    assert re.search(r'198\.51\.100\.8:0 - "GET /whoami HTTP/1\.1" 200', srv.stdout), srv.stdout
