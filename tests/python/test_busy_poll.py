"""`--busy-poll-us` (50 by default): while traffic is dense the loop keeps
polling instead of sleeping.

The same answers as without it (HTTP keep-alive, pipelined, def endpoints on
the thread pool, WebSocket echo), it stops spinning once traffic stops (the
process's CPU time stays flat while idle), sparse traffic does not spin at
all, it is on by default and off with 0, and bad values are refused.  (The
rest of the suite runs its servers with the default, i.e. with it on.)
"""
from __future__ import annotations

import os
import time

import pytest

import rawhttp
from conftest import APPS_DIR, run_celeris, start_server
from wsraw import TEXT, RawWS

BUSY = ("--busy-poll-us", "2000")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def busy_server():
    srv = start_server("fastapi_app:app", *BUSY)
    try:
        yield srv
    finally:
        srv.stop()


def test_keep_alive_requests_answered(busy_server):
    with rawhttp.Conn(busy_server.addr) as conn:
        for i in range(200):
            conn.send(rawhttp.build_request("GET", f"/items/{i}?q=x"))
            r = conn.read_response()
            assert r.status == 200
            assert r.json() == {"item_id": i, "q": "x", "limit": 10}


def test_pipelined_requests_answered_in_order(busy_server):
    with rawhttp.Conn(busy_server.addr) as conn:
        conn.send(b"".join(rawhttp.build_request("GET", f"/items/{i}") for i in range(32)))
        for i in range(32):
            r = conn.read_response()
            assert r.status == 200
            assert r.json()["item_id"] == i


def test_def_endpoints_on_the_thread_pool(busy_server):
    # While pool jobs are in flight the loop does not spin; each still completes.
    with rawhttp.Conn(busy_server.addr) as conn:
        for _ in range(50):
            conn.send(rawhttp.build_request("GET", "/sync"))
            r = conn.read_response()
            assert r.status == 200
            assert r.json() == {"sync": True}


def test_websocket_echo():
    srv = start_server("ws_echo_app:app", *BUSY)
    try:
        ws = RawWS(srv.addr, "/ws")
        assert ws.status == 101
        for i in range(300):
            msg = f"message {i}".encode()
            ws.send_frame(TEXT, msg)
            assert ws.recv_frame() == (True, TEXT, msg)
        ws.close_normally()
    finally:
        srv.stop()


def test_stops_spinning_when_idle(busy_server):
    with rawhttp.Conn(busy_server.addr) as conn:
        for _ in range(100):
            conn.send(rawhttp.build_request("GET", "/"))
            assert conn.read_response().status == 200
    time.sleep(0.2)                     # ten times the 2 ms window
    pid = busy_server.proc.pid
    before = cpu_seconds(pid)
    time.sleep(1.0)
    # A loop still spinning would have used about a second of CPU here; an
    # idle one wakes once for its 1 s sweep and a few 0.1 s checks.
    assert cpu_seconds(pid) - before < 0.3


def test_sparse_traffic_does_not_spin():
    # A 20 ms window; requests 60 ms apart.  Were every burst followed by a
    # spin, each would burn its 20 ms: ~0.4 s of CPU for the 20 requests.
    # Sparse traffic (each burst after a quiet spell longer than the window)
    # starts none: the CPU time is the requests' own.
    srv = start_server("fastapi_app:app", "--busy-poll-us", "20000")
    try:
        pid = srv.proc.pid
        with rawhttp.Conn(srv.addr) as conn:
            conn.send(rawhttp.build_request("GET", "/"))
            assert conn.read_response().status == 200
            time.sleep(0.2)
            before = cpu_seconds(pid)
            for _ in range(20):
                time.sleep(0.06)
                conn.send(rawhttp.build_request("GET", "/"))
                assert conn.read_response().status == 200
            used = cpu_seconds(pid) - before
        assert used < 0.2, used
    finally:
        srv.stop()


def test_default_and_off():
    from celeris import Config

    from celeris.cli import build_parser

    assert Config(app="fastapi_app:app").busy_poll_us == 50.0
    args = build_parser().parse_args(["run", "fastapi_app:app"])
    assert args.busy_poll_us == 50.0
    assert build_parser().parse_args(["run", "x:app", "--busy-poll-us", "0"]).busy_poll_us == 0.0
    # off: answers as before
    srv = start_server("fastapi_app:app", "--busy-poll-us", "0")
    try:
        with rawhttp.Conn(srv.addr) as conn:
            for i in range(20):
                conn.send(rawhttp.build_request("GET", f"/items/{i}"))
                assert conn.read_response().json()["item_id"] == i
    finally:
        srv.stop()


@pytest.mark.parametrize("value", ["-1", "2000000", "nan"])
def test_bad_values_refused(value):
    r = run_celeris("run", "fastapi_app:app", "--app-dir", str(APPS_DIR), "--port", "0",
                    "--busy-poll-us", value)
    assert r.returncode == 2
    assert "--busy-poll-us" in r.stderr



@pytest.mark.parametrize("value", [-1.0, 2e6, float("nan")])
def test_bad_values_refused_by_config(value):
    from celeris import Config
    with pytest.raises(ValueError, match="busy_poll_us"):
        Config(app="fastapi_app:app", busy_poll_us=value)
