"""A real nginx (Debian's package) in front of two Celeris instances: requests
are balanced over both upstreams, and X-Forwarded-For / -Proto set by nginx
reach the app as the scope's client and scheme.  nginx runs in the foreground
with its own config and prefix in a temporary directory, on loopback only."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest

from conftest import start_server
from rawhttp import Conn, free_port, get, wait_until

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream celeris {{
        server 127.0.0.1:{p1};
        server 127.0.0.1:{p2};
        keepalive 8;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://celeris;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
        }}
    }}
}}
"""


@pytest.fixture
def nginx_front(tmp_path):
    if NGINX is None:
        pytest.fail("nginx is not installed (Debian package `nginx`)")
    a = start_server("workers_app:app")
    b = start_server("workers_app:app")
    port = free_port()
    (tmp_path / "nginx.conf").write_text(CONF.format(d=tmp_path, p1=a.port, p2=b.port, port=port))
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def up():
        if proc.poll() is not None:
            raise AssertionError("nginx exited: " + proc.stdout.read().decode()
                                 + (tmp_path / "error.log").read_text())
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    try:
        wait_until(up, timeout=20)
        yield ("127.0.0.1", port), a, b
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        a.stop()
        b.stop()


def test_nginx_balances_and_forwards_client_and_scheme(nginx_front):
    addr, a, b = nginx_front
    upstreams = set()
    pids = set()
    with Conn(addr) as c:
        for i in range(20):
            r = c.request("GET", "/whoami", headers=[("X-Forwarded-For", f"203.0.113.{i}")])
            assert r.status == 200, r.body
            w = r.json()
            # nginx appends the test client (127.0.0.1, trusted): the app sees the one before it
            assert w["client"] == [f"203.0.113.{i}", 0]
            assert w["scheme"] == "https"
            upstreams.add(w["server"][1])
            pids.add(w["pid"])
    assert upstreams == {a.port, b.port}
    assert pids == {a.proc.pid, b.proc.pid}
    # without a client-supplied header the client is nginx's peer: this test
    r = get(addr, "/whoami")
    assert r.json()["client"] == ["127.0.0.1", 0]
    # the native tier behind nginx too
    for _ in range(4):
        assert get(addr, "/pid").json()["pid"] in pids
    wait_until(lambda: "203.0.113.19:0" in a.stdout + b.stdout)
