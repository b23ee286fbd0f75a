"""--workers: the supervisor, worker death and replacement, SIGTERM / SIGHUP
under load, --limit-max-requests recycling, --limit-concurrency.

Load is a few client threads, each sending one request per connection
("Connection: close") in a loop and recording, per request, when its bytes
were sent and how it ended.  No assertion is about time: only about which
requests were answered.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from conftest import ServerProcess
from rawhttp import Closed, Conn, build_request, get, recv_to_eof, wait_until

APP = "workers_app:app"


class Rec:
    __slots__ = ("started", "sent", "ok", "status", "pid", "error")

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.sent: float | None = None
        self.ok = False
        self.status: int | None = None
        self.pid: int | None = None
        self.error: str | None = None


class Load:
    """`threads` clients, each: connect, send GET path, read the whole response."""

    def __init__(self, addr, path: str = "/work?ms=20", threads: int = 4) -> None:
        self.addr = addr
        self.req = build_request("GET", path, [("Connection", "close")])
        self.records: list[Rec] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=30)

    def _one(self) -> Rec:
        r = Rec()
        try:
            c = Conn(self.addr, timeout=15)
        except OSError as exc:
            r.error = f"connect: {exc!r}"
            return r
        try:
            c.sock.sendall(self.req)
            r.sent = time.monotonic()
            resp = c.read_response()
            r.status = resp.status
            if resp.status == 200:
                r.pid = json.loads(resp.body)["pid"]
                r.ok = True
        except (OSError, Closed, ValueError) as exc:
            r.error = repr(exc)
        finally:
            c.close()
        return r

    def _run(self) -> None:
        while not self.stopping.is_set():
            r = self._one()
            with self.lock:
                self.records.append(r)

    def snapshot(self) -> list[Rec]:
        with self.lock:
            return list(self.records)

    def wait_for(self, n: int, timeout: float = 20.0) -> None:
        wait_until(lambda: sum(r.ok for r in self.snapshot()) >= n, timeout=timeout)


def start_workers(*args: str, n: int = 2) -> ServerProcess:
    srv = ServerProcess(APP, "--workers", str(n), "--no-access-log", *args).wait_started()
    wait_until(lambda: srv.stderr.count("Application startup complete.") >= n, timeout=20)
    return srv


def worker_pids(srv: ServerProcess) -> list[int]:
    return [int(p) for p in re.findall(r"Started server process \[(\d+)\]", srv.stderr)]


def pids_serving(addr, want: int) -> set[int]:
    """The worker pids answering, polled until `want` distinct ones have (a worker
    logs "Application startup complete." a moment before it starts accepting)."""
    seen: set[int] = set()

    def enough() -> bool:
        seen.add(get(addr, "/pid", headers=[("Connection", "close")]).json()["pid"])
        return len(seen) >= want

    wait_until(enough, timeout=30, interval=0.01)
    return seen


def gone(pid: int) -> bool:
    """The process is dead (a zombie counts: it runs no more code)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith(("Z", "X"))
    except (FileNotFoundError, ProcessLookupError):
        # The process was reaped between open() and read(): /proc answers ESRCH.
        return True


def test_workers_start_share_the_port_and_run_lifespan_each():
    srv = start_workers(n=2)
    try:
        pids = worker_pids(srv)
        assert len(pids) == 2 and os.getpid() not in pids
        assert "Started parent process" in srv.stderr
        assert srv.stderr.count("Celeris running on http://127.0.0.1:") == 1
        # both workers accept from the one socket
        assert pids_serving(srv.addr, 2) == set(pids)
        # the ASGI tier in each worker sees the state of its own lifespan
        for _ in range(20):
            w = get(srv.addr, "/whoami", headers=[("Connection", "close")]).json()
            assert w["lifespan_pid"] == w["pid"] and w["pid"] in pids
    finally:
        assert srv.stop() == 0
    assert srv.stdout.count("workers_app: shutdown in") == 2
    assert "Stopping parent process" in srv.stderr


def test_kill_9_one_worker_under_load():
    srv = start_workers(n=2)
    try:
        victim, survivor = worker_pids(srv)
        with Load(srv.addr, "/work?ms=30", threads=4) as load:
            load.wait_for(40)
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: gone(victim))
            dead_at = time.monotonic()
            srv.wait_for(rf"Child process \[{victim}\] died")
            wait_until(lambda: len(worker_pids(srv)) == 3, timeout=20)
            replacement = worker_pids(srv)[2]
            n_before = len(load.snapshot())
            wait_until(lambda: any(r.pid == replacement for r in load.snapshot()[n_before:]), timeout=20)
            load.wait_for(sum(r.ok for r in load.snapshot()) + 40)
        recs = load.records
        failed = [r for r in recs if not r.ok]
        # only requests that the killed worker held can fail: at most one per client
        # thread, all begun before it died; every later request was answered
        assert len(failed) <= 4, [r.error for r in failed]
        assert all(r.started < dead_at for r in failed), [r.error for r in failed]
        assert all(r.ok for r in recs if r.started > dead_at)
        assert {r.pid for r in recs if r.ok and r.started > dead_at} <= {survivor, replacement}
    finally:
        srv.stop()


def test_sigterm_under_load_answers_every_request_sent_before_it():
    srv = start_workers(n=2)
    with Load(srv.addr, "/work?ms=50", threads=6) as load:
        load.wait_for(30)
        signalled = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=30) == 0
    srv.stop()
    before = [r for r in load.records if r.sent is not None and r.sent < signalled]
    assert len(before) >= 30
    bad = [(r.status, r.error) for r in before if not r.ok]
    assert not bad, bad
    assert "Received SIGTERM, exiting." in srv.stderr
    assert srv.stdout.count("workers_app: shutdown in") == 2


def test_sighup_under_load_replaces_every_worker_without_a_failed_request():
    srv = start_workers(n=2)
    try:
        old = set(worker_pids(srv))
        with Load(srv.addr, "/work?ms=20", threads=4) as load:
            load.wait_for(30)
            srv.proc.send_signal(signal.SIGHUP)
            srv.wait_for("Received SIGHUP, restarting processes.")
            for pid in old:
                srv.wait_for(rf"Terminated child process \[{pid}\]", timeout=30)
                wait_until(lambda pid=pid: gone(pid), timeout=30)
            new = set(worker_pids(srv)) - old
            assert len(new) == 2
            n_before = len(load.snapshot())
            wait_until(lambda: {r.pid for r in load.snapshot()[n_before:] if r.ok} >= new, timeout=20)
        recs = load.records
        bad = [(r.status, r.error) for r in recs if not r.ok]
        assert not bad, bad
        assert srv.stdout.count("workers_app: shutdown in") == 2       # the old ones', gracefully
        assert srv.alive()
    finally:
        srv.stop()


def test_limit_max_requests_recycles_workers():
    srv = start_workers("--limit-max-requests", "10", n=2)
    try:
        first = set(worker_pids(srv))

        def recycled() -> bool:
            # every request is answered, by old workers or by their replacements
            r = get(srv.addr, "/pid", headers=[("Connection", "close")])
            assert r.status == 200
            return len(set(worker_pids(srv))) >= 4

        wait_until(recycled, timeout=60, interval=0)
        assert "Maximum request limit of 10 exceeded. Terminating process." in srv.stderr
        assert len(set(worker_pids(srv)) - first) >= 2
        assert re.search(r"Child process \[\d+\] died", srv.stderr)
        assert srv.alive()
    finally:
        assert srv.stop() == 0


def test_worker_that_cannot_start_stops_the_supervisor():
    srv = ServerProcess("workers_app:nope", "--workers", "2")
    assert srv.proc.wait(timeout=30) == 3
    srv.stop()
    assert "failed to start, stopping the parent process." in srv.stderr


def test_reload_and_workers_are_refused():
    srv = ServerProcess(APP, "--workers", "2", "--reload")
    assert srv.proc.wait(timeout=30) == 2
    srv.stop()
    assert "--reload and --workers cannot be used together" in srv.stderr


def test_repeated_deaths_back_off():
    srv = start_workers(n=2)
    try:
        for _ in range(3):
            # kill whatever currently serves slot 0 / 1 as soon as it is up
            pids = worker_pids(srv)
            latest = pids[-1]
            wait_until(lambda: not gone(latest))
            os.kill(latest, signal.SIGKILL)
            srv.wait_for(rf"Child process \[{latest}\] died", timeout=30)
            wait_until(lambda: len(worker_pids(srv)) > len(pids), timeout=40)
        assert "keeps dying" in srv.stderr
        assert pids_serving(srv.addr, 1)
    finally:
        srv.stop()


# ---- --limit-concurrency (single process, as uvicorn) ----

def test_limit_concurrency_answers_503_like_uvicorn():
    srv = ServerProcess(APP, "--limit-concurrency", "2").wait_started()
    try:
        busy = Conn(srv.addr)
        assert busy.request("GET", "/pid").status == 200      # 1 connection open: fine
        busy.send(build_request("GET", "/work?ms=1500"))
        # as uvicorn, open connections count (this one included): 2 >= 2 -> 503
        with Conn(srv.addr) as c:
            r = c.request("GET", "/pid")
            assert r.status == 503 and r.reason == "Service Unavailable"
            assert r.body == b"Service Unavailable"
            assert r.header("content-type") == "text/plain; charset=utf-8"
            assert r.header("content-length") == "19"
            assert r.header("connection") == "close"
            c.assert_closed()
        assert busy.read_response().status == 200
        busy.close()
        wait_until(lambda: get(srv.addr, "/pid").status == 200)
    finally:
        srv.stop()
    assert "WARNING:  Exceeded concurrency limit." in srv.stderr
    assert '"GET /pid HTTP/1.1" 503' in srv.stdout


def test_limit_max_requests_single_process_exits():
    srv = ServerProcess(APP, "--limit-max-requests", "3").wait_started()
    for _ in range(3):
        assert get(srv.addr, "/pid", headers=[("Connection", "close")]).status == 200
    assert srv.proc.wait(timeout=20) == 0
    srv.stop()
    assert "Maximum request limit of 3 exceeded. Terminating process." in srv.stderr
    assert "Finished server process" in srv.stderr


def test_graceful_stop_serves_a_request_already_queued():
    """A connection still in the kernel's accept queue when shutdown begins is
    accepted and answered (with "connection: close" if shutdown came first),
    not reset."""
    srv = ServerProcess(APP).wait_started()
    try:
        busy = Conn(srv.addr)
        assert busy.request("GET", "/pid").status == 200
        busy.send(build_request("GET", "/work?ms=800"))
        srv.proc.send_signal(signal.SIGSTOP)        # the server accepts nothing now
        try:
            late = socket.create_connection(srv.addr, timeout=10)   # queued by the kernel
            late.sendall(build_request("GET", "/pid"))
            srv.proc.send_signal(signal.SIGTERM)
        finally:
            srv.proc.send_signal(signal.SIGCONT)
        assert busy.read_response().status == 200
        data = recv_to_eof(late)
        assert data.startswith(b"HTTP/1.1 200 OK"), data[:200]
        late.close()
        assert srv.proc.wait(timeout=20) == 0
    finally:
        srv.stop()


@pytest.mark.parametrize("n", [1])
def test_workers_1_is_single_process(n):
    srv = ServerProcess(APP, "--workers", str(n)).wait_started()
    try:
        assert "Started parent process" not in srv.stderr
        assert get(srv.addr, "/pid").json()["pid"] == srv.proc.pid
    finally:
        srv.stop()


def test_reuse_port_workers_each_listen():
    srv = start_workers("--reuse-port", n=2)
    try:
        pids = set(worker_pids(srv))
        assert pids_serving(srv.addr, 2) == pids
    finally:
        assert srv.stop() == 0


def test_workers_stop_when_the_supervisor_is_killed():
    srv = start_workers(n=2)
    pids = worker_pids(srv)
    srv.proc.send_signal(signal.SIGKILL)
    srv.proc.wait(timeout=10)
    for pid in pids:
        wait_until(lambda pid=pid: gone(pid), timeout=30)
    srv.stop()
    assert srv.stdout.count("workers_app: shutdown in") == 2      # gracefully, lifespan included


def test_sigttin_sigttou_change_the_number_of_workers():
    srv = start_workers(n=2)
    try:
        srv.proc.send_signal(signal.SIGTTIN)
        srv.wait_for("Received SIGTTIN, increasing the number of processes.")
        wait_until(lambda: srv.stderr.count("Application startup complete.") == 3, timeout=20)
        assert len(pids_serving(srv.addr, 3)) == 3
        last = worker_pids(srv)[-1]
        srv.proc.send_signal(signal.SIGTTOU)
        srv.wait_for(rf"Terminated child process \[{last}\]")
        wait_until(lambda: gone(last), timeout=20)
        assert last not in pids_serving(srv.addr, 2)
    finally:
        assert srv.stop() == 0


def _overloaded_response(srv: ServerProcess) -> tuple[bytes, bytes]:
    """(head without date/server lines, body) of the 503 at --limit-concurrency 2."""
    busy = Conn(srv.addr)
    try:
        assert busy.request("GET", "/pid").status == 200
        with Conn(srv.addr) as c:
            c.send(build_request("GET", "/pid"))
            raw = c.read_to_eof()
    finally:
        busy.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = [ln for ln in head.split(b"\r\n") if not ln.lower().startswith((b"date:", b"server:"))]
    return b"\r\n".join(lines), body


def test_limit_concurrency_503_is_byte_identical_to_uvicorn():
    import sys

    ours = ServerProcess(APP, "--limit-concurrency", "2").wait_started()
    try:
        mine = _overloaded_response(ours)
    finally:
        ours.stop()
    uv = ServerProcess(APP, cmd=[sys.executable, "-m", "uvicorn", APP, "--port", "0",
                                 "--app-dir", str(Path(__file__).parent / "apps"),
                                 "--limit-concurrency", "2"])
    try:
        uv.port = int(uv.wait_for(r"Uvicorn running on http://127\.0\.0\.1:(\d+)").group(1))
        theirs = _overloaded_response(uv)
    finally:
        uv.stop()
    assert mine == theirs
    assert mine[0].startswith(b"HTTP/1.1 503 Service Unavailable\r\n")


def test_web_concurrency_sets_the_worker_count(monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    srv = ServerProcess(APP).wait_started()
    try:
        wait_until(lambda: len(worker_pids(srv)) == 2, timeout=20)
        assert "Started parent process" in srv.stderr
    finally:
        assert srv.stop() == 0


def test_a_frozen_worker_fails_the_health_check_and_is_replaced():
    srv = start_workers("--timeout-worker-healthcheck", "1", n=2)
    try:
        frozen, other = worker_pids(srv)
        # both serve, so both have told the supervisor they are ready (health checks start then)
        assert pids_serving(srv.addr, 2) == {frozen, other}
        os.kill(frozen, signal.SIGSTOP)
        srv.wait_for(rf"Child process \[{frozen}\] did not answer the health check within 1 s; "
                     r"killing it\.", timeout=30)
        srv.wait_for(rf"Child process \[{frozen}\] died", timeout=30)
        wait_until(lambda: len(worker_pids(srv)) == 3, timeout=30)
        replacement = worker_pids(srv)[2]
        assert pids_serving(srv.addr, 2) == {other, replacement}
    finally:
        srv.stop()
