#!/usr/bin/env python3
"""Celeris benchmark harness: Celeris against uvicorn, granian and nginx, side by side.

How the figures are taken (see /work/shared/BENCHMARKS.md and bench/README.md):
for every scenario, every round, every server (the order rotates each round) a fresh server
process is started on 127.0.0.1 pinned to one core, the harness waits until it answers the
scenario's request correctly, warms it up, runs ``wrk --latency`` pinned to the other core,
and stops the server.  The median over rounds is reported, with ratios between servers measured
in the same run.  The ``idle`` scenario measures the RSS a server adds for N idle keep-alive
connections instead.

This is a tool to run, never a test: nothing here asserts on timings.  A server that fails to
start or answers wrongly gets an error recorded and the run goes on.

Outputs (``--out-dir``, default bench/results): NAME.json, NAME.md, NAME.png (NAME = ``--name``,
default ``latest``).  ``--render FILE.json`` re-renders the markdown and chart from a JSON file.
"""

from __future__ import annotations

import argparse
import atexit
import datetime as _dt
import errno
import http.client
import json
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
APPS_DIR = BENCH_DIR / "apps"
LUA_DIR = BENCH_DIR / "lua"
HOST = "127.0.0.1"

SERVERS = ("celeris", "uvicorn", "granian", "nginx")
REFERENCES = ("uvicorn", "granian", "nginx")
HELLO = b'{"hello":"world"}'
POST_BODY = b'{"name":"widget","price":9.99,"quantity":3,"tags":["a","b"]}'


# --------------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    app: str  # module:attr inside bench/apps
    path: str
    servers: tuple[str, ...]
    kind: str = "http"  # "http" (wrk), "idle" (RSS of idle connections), "ws" (bench/ws_load.py)
    method: str = "GET"
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    lua: str | None = None  # file name in bench/lua
    lua_args: tuple[str, ...] = ()
    pipeline: int = 1
    expect: bytes | None = None  # a substring the sanity response body must contain
    ws_conns: int = 0  # "ws": connections, each with one echo message in flight
    celeris_args: tuple[str, ...] = ()  # extra `celeris run` arguments for this scenario only


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("raw", "raw ASGI hello", "raw_asgi:app", "/",
                 ("celeris", "uvicorn", "granian"), expect=HELLO),
        Scenario("plain", "GET /plain", "fastapi_app:app", "/plain",
                 ("celeris", "uvicorn", "granian", "nginx"), expect=b'"hello"'),
        Scenario("sync", "GET /sync (def)", "fastapi_app:app", "/sync",
                 ("celeris", "uvicorn", "granian"), expect=b'"sync"'),
        Scenario("items", "GET /items/1?q=x", "fastapi_app:app", "/items/1?q=x",
                 ("celeris", "uvicorn", "granian"), expect=b'"item_id"'),
        Scenario("post", "POST /items (Pydantic)", "fastapi_app:app", "/items",
                 ("celeris", "uvicorn", "granian"), method="POST", body=POST_BODY,
                 headers=(("Content-Type", "application/json"),), lua="post_items.lua",
                 expect=b'"widget"'),
        Scenario("chain", "GET /chain (3x Depends)", "fastapi_app:app", "/chain",
                 ("celeris", "uvicorn", "granian"), expect=b'"alice"'),
        Scenario("mw", "GET /mw (CORS)", "fastapi_mw:app", "/mw",
                 ("celeris", "uvicorn", "granian"),
                 headers=(("Origin", "http://example.com"),), expect=b'"hello"'),
        Scenario("httpmw", "GET /httpmw (@app.middleware)", "fastapi_httpmw:app", "/httpmw",
                 ("celeris", "uvicorn", "granian"), expect=b'"hello"'),
        Scenario("pipeline", "pipelined x16 /plain", "fastapi_app:app", "/plain",
                 ("celeris", "uvicorn", "nginx"), lua="pipeline.lua",
                 lua_args=("16", "/plain"), pipeline=16, expect=b'"hello"'),
        Scenario("idle", "idle keep-alive conns (RSS)", "raw_asgi:app", "/",
                 ("celeris", "uvicorn", "granian", "nginx"), kind="idle", expect=HELLO),
        *(Scenario(f"ws{n}", f"WebSocket echo msgs/s ({n} conn{'s' if n > 1 else ''})",
                   "ws_echo:app", "/ws", ("celeris", "uvicorn", "granian"), kind="ws", ws_conns=n)
          for n in (1, 16, 64)),
        # The same one-connection echo with Celeris's busy polling off (it is on by default:
        # while traffic is dense the loop polls instead of sleeping, CPU spent spinning; uvicorn
        # and granian have no such option and run exactly as in "ws1").
        Scenario("ws1nobp", "WebSocket echo msgs/s (1 conn), celeris --busy-poll-us 0",
                 "ws_echo:app", "/ws", ("celeris", "uvicorn", "granian"), kind="ws", ws_conns=1,
                 celeris_args=("--busy-poll-us", "0")),
    )
}


# --------------------------------------------------------------------------------------------
# Process bookkeeping: every server started is killed on exit, whatever the exit.

_LIVE: dict[int, subprocess.Popen] = {}


def _kill_all_live() -> None:
    for pid, proc in list(_LIVE.items()):
        _kill_group(proc, signal.SIGKILL)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        _LIVE.pop(pid, None)


def _kill_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # started with start_new_session: pgid == pid
    except (ProcessLookupError, PermissionError):
        pass


def _on_signal(signum, _frame):
    raise KeyboardInterrupt  # SIGTERM/SIGHUP end the run like Ctrl-C: servers stopped, results kept


atexit.register(_kill_all_live)


# --------------------------------------------------------------------------------------------
# /proc helpers


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # the comm field may contain spaces: split after its closing parenthesis
        ppid = int(stat[stat.rfind(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int) -> list[int]:
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, ()))
    return out


def rss_kib(pid: int) -> int:
    """VmRSS of pid and all its descendants, in KiB (shared pages counted once per process)."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_seconds(pid: int) -> float:
    """utime+stime of pid and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def machine_busy_seconds() -> float:
    """CPU-seconds all processes on the machine have used (from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit: float, threshold: float) -> float:
    """Wait up to `limit` s until the machine is idle enough; return the last busy % seen."""
    deadline = time.monotonic() + limit
    while True:
        b0, t0 = machine_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        busy = 100 * (machine_busy_seconds() - b0) / (time.monotonic() - t0)
        if busy <= threshold or time.monotonic() >= deadline:
            return busy
        time.sleep(2.0)


# --------------------------------------------------------------------------------------------
# Servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


NGINX_CONF = """\
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections {worker_connections};
}}
http {{
    access_log off;
    default_type application/json;
    keepalive_timeout 600s;
    keepalive_requests 100000000;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen {host}:{port} backlog=4096;
        location / {{
            return 200 '{{"hello":"world"}}';
        }}
    }}
}}
"""


@dataclass
class Options:
    server_cpu: str | None
    wrk_cpu: str | None
    start_timeout: float
    celeris_args: list[str]
    python: str
    logs_dir: Path
    idle_conns: int
    workers: int = 1


class Server:
    """One server process on a fresh port; a context manager that always stops it."""

    def __init__(self, name: str, scenario: Scenario, opts: Options, idle: bool, tag: str):
        self.name, self.scenario, self.opts, self.idle = name, scenario, opts, idle
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log_path = opts.logs_dir / f"{tag}.log"
        self.tmp: tempfile.TemporaryDirectory | None = None
        self.stop_info: dict = {}

    def argv(self) -> list[str]:
        app, port, py = self.scenario.app, str(self.port), self.opts.python
        if self.name == "celeris":
            cmd = [py, "-m", "celeris", "run", app, "--host", HOST, "--port", port,
                   "--no-access-log", "--log-level", "warning", *self.opts.celeris_args,
                   *self.scenario.celeris_args]
            if self.opts.workers > 1:
                cmd += ["--workers", str(self.opts.workers)]
            if self.idle:
                cmd += ["--timeout-keep-alive", "600"]
        elif self.name == "uvicorn":
            cmd = [py, "-m", "uvicorn", app, "--host", HOST, "--port", port, "--loop", "uvloop",
                   "--http", "httptools", "--no-access-log", "--log-level", "warning"]
            if self.opts.workers > 1:
                cmd += ["--workers", str(self.opts.workers)]
            if self.idle:
                cmd += ["--timeout-keep-alive", "600"]
        elif self.name == "granian":
            granian = shutil.which("granian") or "granian"
            cmd = [granian, "--interface", "asgi", "--host", HOST, "--port", port,
                   "--workers", str(self.opts.workers), "--http", "1", "--loop", "uvloop", "--no-access-log",
                   "--log-level", "warning"]
            if self.idle:
                # 60 s is the longest header-read timeout granian accepts; its default
                # backpressure (backlog/workers = 1024) caps concurrent connections
                cmd += ["--http1-header-read-timeout", "60000",
                        "--backpressure", str(max(1024, 2 * self.opts.idle_conns))]
            cmd.append(app)
        elif self.name == "nginx":
            self.tmp = tempfile.TemporaryDirectory(prefix="celeris-bench-nginx-")
            prefix = self.tmp.name
            os.chmod(prefix, 0o755)  # the worker runs as nobody when started by root
            conf = Path(prefix) / "nginx.conf"
            conf.write_text(NGINX_CONF.format(prefix=prefix, host=HOST, port=port,
                                              worker_connections=30000))
            nginx = shutil.which("nginx") or "/usr/sbin/nginx"
            cmd = [nginx, "-p", prefix, "-e", f"{prefix}/error.log", "-c", str(conf),
                   "-g", "daemon off;"]
        else:
            raise ValueError(f"unknown server {self.name}")
        if self.opts.server_cpu is not None:
            cmd = ["taskset", "-c", self.opts.server_cpu, *cmd]
        return cmd

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(APPS_DIR)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        env.pop("PYTHONDEVMODE", None)
        env.pop("PYTHONASYNCIODEBUG", None)
        argv = self.argv()
        with open(self.log_path, "wb") as log:
            log.write(("$ " + " ".join(argv) + "\n").encode())
            log.flush()
            try:
                self.proc = subprocess.Popen(argv, cwd=APPS_DIR, env=env,
                                             stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as e:
                log.write(f"cannot start: {e}\n".encode())
                raise RuntimeError(f"cannot start {argv[0]}: {e}") from e
        _LIVE[self.proc.pid] = self.proc

    def log_tail(self, n: int = 2000) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-n:].decode("utf-8", "replace")

    def wait_ready(self) -> None:
        """Wait until the port accepts connections; raise RuntimeError if the server dies."""
        deadline = time.monotonic() + self.opts.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with code {self.proc.returncode} before listening")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"did not listen on {HOST}:{self.port} within "
                           f"{self.opts.start_timeout:g} s")

    def stop(self, timeout: float = 10.0) -> None:
        proc = self.proc
        if proc is None:
            if self.tmp is not None:
                self.tmp.cleanup()
                self.tmp = None
            return
        info = {"returncode": None, "clean": False}
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)  # taskset execs: this is the server itself
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
                info["clean"] = True
            except subprocess.TimeoutExpired:
                info["killed"] = True
        else:
            info["exited_early"] = True
        _kill_group(proc, signal.SIGKILL)  # leftovers: workers, or a server that did not stop
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        info["returncode"] = proc.returncode
        _LIVE.pop(proc.pid, None)
        self.proc = None
        self.stop_info = info
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None


# --------------------------------------------------------------------------------------------
# Sanity check: the server must answer the scenario's request right before it is measured.


def _read_responses(sock: socket.socket, count: int, timeout: float) -> list[tuple[int, bytes]]:
    """Read `count` HTTP/1.1 responses with Content-Length bodies (or chunked) from sock."""
    sock.settimeout(timeout)
    buf = b""
    out: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout
    while len(out) < count:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buf[:head_end].decode("latin-1")
            status = int(head.split(" ", 2)[1])
            m = re.search(r"(?im)^content-length:\s*(\d+)\s*$", head)
            if m:
                n = int(m.group(1))
                if len(buf) >= head_end + 4 + n:
                    out.append((status, buf[head_end + 4:head_end + 4 + n]))
                    buf = buf[head_end + 4 + n:]
                    continue
            elif re.search(r"(?im)^transfer-encoding:\s*chunked", head):
                end = buf.find(b"\r\n0\r\n\r\n", head_end)
                if end >= 0:
                    out.append((status, buf[head_end + 4:end]))
                    buf = buf[end + 7:]
                    continue
            else:
                raise RuntimeError("response without Content-Length or chunked body")
        if time.monotonic() > deadline:
            break
        data = sock.recv(65536)
        if not data:
            break
        buf += data
    return out


def sanity_check(sc: Scenario, port: int) -> None:
    """Send the scenario's request (a pipelined batch for `pipeline`); raise if not all 200."""
    headers = [f"Host: {HOST}:{port}"] + [f"{k}: {v}" for k, v in sc.headers]
    body = sc.body or b""
    if sc.body is not None:
        headers.append(f"Content-Length: {len(body)}")
    one = (f"{sc.method} {sc.path} HTTP/1.1\r\n" + "\r\n".join(headers) + "\r\n\r\n").encode()
    one += body
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.sendall(one * sc.pipeline)
        responses = _read_responses(s, sc.pipeline, timeout=10)
    if len(responses) < sc.pipeline:
        raise RuntimeError(f"sanity check: {len(responses)}/{sc.pipeline} responses received")
    for status, rbody in responses:
        if status != 200:
            raise RuntimeError(f"sanity check: status {status}, body {rbody[:200]!r}")
        if sc.expect and sc.expect not in rbody:
            raise RuntimeError(f"sanity check: unexpected body {rbody[:200]!r}")


def ws_sanity_check(sc: Scenario, port: int) -> None:
    """Open the scenario's WebSocket and get one text message echoed; raise otherwise."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    hs = (f"GET {sc.path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    with socket.create_connection((HOST, port), timeout=5) as s:
        s.settimeout(10)
        # the frame goes after the 101: uvicorn drops frames that arrive with the handshake
        s.sendall(hs.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = s.recv(65536)
            if not data:
                break
            buf += data
        head, _, rest = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise RuntimeError(f"sanity check: no 101: {head[:200]!r}")
        s.sendall(b"\x81\x84\x00\x00\x00\x00ping")
        while len(rest) < 6:
            data = s.recv(65536)
            if not data:
                break
            rest += data
        if rest[:6] != b"\x81\x04ping":
            raise RuntimeError(f"sanity check: no echo: {rest[:50]!r}")


WS_LOAD_C = BENCH_DIR / "ws_load.c"
WS_LOAD_BIN = BENCH_DIR.parent / "build" / "bench" / "ws_load"


def build_ws_load() -> Path:
    """Compile bench/ws_load.c into build/bench/ws_load when missing or older than the source."""
    if not WS_LOAD_BIN.exists() or WS_LOAD_BIN.stat().st_mtime < WS_LOAD_C.stat().st_mtime:
        WS_LOAD_BIN.parent.mkdir(parents=True, exist_ok=True)
        cc = shutil.which("cc") or shutil.which("gcc") or "cc"
        subprocess.run([cc, "-O2", "-std=c11", "-Wall", "-Wextra", "-o", str(WS_LOAD_BIN),
                        str(WS_LOAD_C)], check=True)
    return WS_LOAD_BIN


def ws_load_argv(sc: Scenario, port: int, args, opts: "Options", duration: int,
                 warmup: int) -> list[str]:
    client = ([str(build_ws_load())] if getattr(args, "ws_client", "c") == "c"
              else [opts.python, str(BENCH_DIR / "ws_load.py")])
    cmd = [*client, "--host", HOST, "--port", str(port),
           "--path", sc.path, "--connections", str(sc.ws_conns), "--duration", str(duration),
           "--warmup", str(warmup)]
    if args.wrk_cpu is not None:
        cmd = ["taskset", "-c", args.wrk_cpu, *cmd]
    return cmd


def cors_check(port: int) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        conn.request("GET", "/mw", headers={"Origin": "http://example.com"})
        resp = conn.getresponse()
        resp.read()
        return resp.getheader("access-control-allow-origin") == "*"
    finally:
        conn.close()


# --------------------------------------------------------------------------------------------
# wrk


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value.strip())
    if not m:
        raise ValueError(f"cannot parse latency {value!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out: str) -> dict:
    res: dict = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError("wrk printed no Requests/sec")
    res["rps"] = float(m.group(1))
    for pct, key in (("50", "p50_ms"), ("75", "p75_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(rf"^\s+{pct}(?:\.0+)?%\s+(\S+)", out, re.M)
        if m:
            res[key] = round(_ms(m.group(1)), 4)
    m = re.search(r"^\s+Latency\s+(\S+)\s+\S+\s+(\S+)", out, re.M)
    if m:
        res["avg_ms"], res["max_ms"] = round(_ms(m.group(1)), 4), round(_ms(m.group(2)), 4)
    if res.get("avg_ms") and not any(res.get(k) for k in ("p50_ms", "p75_ms", "p90_ms", "p99_ms")):
        # wrk 4.1 prints 0.00us percentiles for pipelined scripts: keep only avg/max then
        for k in ("p50_ms", "p75_ms", "p90_ms", "p99_ms"):
            res.pop(k, None)
        res["percentiles_missing"] = True
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = ({k: int(v) for k, v in zip(("connect", "read", "write", "timeout"),
                                                        m.groups())} if m else {})
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    return res


def wrk_argv(sc: Scenario, port: int, args, duration: int, latency: bool) -> list[str]:
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s"]
    if latency:
        cmd.append("--latency")
    if sc.lua:
        cmd += ["-s", str(LUA_DIR / sc.lua)]
    for k, v in sc.headers:
        if sc.lua == "post_items.lua" and k.lower() == "content-type":
            continue  # set by the script
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(f"http://{HOST}:{port}{sc.path}")
    if sc.lua_args:
        cmd += ["--", *sc.lua_args]
    if args.wrk_cpu is not None:
        cmd = ["taskset", "-c", args.wrk_cpu, *cmd]
    return cmd


def run_wrk(cmd: list[str], duration: int) -> str:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 30,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"wrk did not finish within {duration + 30} s") from e
    if p.returncode != 0:
        raise RuntimeError(f"wrk exited {p.returncode}: {p.stderr.strip()[-500:]}")
    return p.stdout


# --------------------------------------------------------------------------------------------
# Idle keep-alive connections


def raise_nofile(want: int) -> int:
    """Raise RLIMIT_NOFILE to `want` (the hard limit too when allowed); return the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= want:
        return want
    try:
        if hard != resource.RLIM_INFINITY and hard < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))  # root only
        else:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def open_idle_connections(port: int, n: int, timeout: float, in_flight: int = 256):
    """Open n connections, send one GET on each and read its response, leaving them open.

    Non-blocking sockets and a selector; at most `in_flight` connections are being set up at
    once so the listen backlog never overflows.  Returns (open sockets, failures, seconds).
    """
    req = f"GET / HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    done: list[socket.socket] = []
    failed = 0
    started = 0
    pending = 0
    t0 = time.monotonic()
    deadline = t0 + timeout

    def launch():
        nonlocal started, pending, failed
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        started += 1
        rc = s.connect_ex((HOST, port))
        if rc not in (0, errno.EINPROGRESS):
            s.close()
            failed += 1
            return
        sel.register(s, selectors.EVENT_WRITE, {"state": "connect", "buf": b""})
        pending += 1

    try:
        while (started < n or pending) and time.monotonic() < deadline:
            while started < n and pending < in_flight:
                launch()
            for key, mask in sel.select(timeout=0.5):
                s, st = key.fileobj, key.data
                try:
                    if st["state"] == "connect":
                        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                        if err:
                            raise OSError(err, os.strerror(err))
                        s.send(req)  # tiny: fits in the send buffer of a fresh socket
                        st["state"] = "read"
                        sel.modify(s, selectors.EVENT_READ, st)
                        continue
                    data = s.recv(4096)
                    if not data:
                        raise OSError("closed before the response")
                    st["buf"] += data
                    b = st["buf"]
                    he = b.find(b"\r\n\r\n")
                    if he >= 0:
                        m = re.search(rb"(?i)content-length:\s*(\d+)", b[:he])
                        if m and len(b) >= he + 4 + int(m.group(1)):
                            sel.unregister(s)
                            pending -= 1
                            done.append(s)
                except OSError:
                    sel.unregister(s)
                    s.close()
                    pending -= 1
                    failed += 1
    finally:
        for key in list(sel.get_map().values()):
            key.fileobj.close()
            failed += 1
        sel.close()
    failed += n - started
    return done, failed, time.monotonic() - t0


def count_closed(socks: list[socket.socket]) -> int:
    """How many of the idle connections the server has closed (readable at EOF)."""
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    closed = 0
    for key, _ in sel.select(timeout=0.2):
        try:
            if key.fileobj.recv(1, socket.MSG_PEEK) == b"":
                closed += 1
        except OSError:
            closed += 1
    sel.close()
    return closed


def measure_idle(srv: Server, n: int, timeout: float) -> dict:
    time.sleep(0.5)
    before = rss_kib(srv.proc.pid)
    socks, failed, secs = open_idle_connections(srv.port, n, timeout)
    try:
        time.sleep(1.0)  # let the server settle its buffers
        after = rss_kib(srv.proc.pid)
        closed = count_closed(socks)
    finally:
        for s in socks:
            s.close()
    delta = (after - before) / 1024
    res = {"rss_before_mb": round(before / 1024, 2), "rss_after_mb": round(after / 1024, 2),
           "delta_mb": round(delta, 2), "connections": len(socks), "failed": failed,
           "closed_by_server": closed, "open_seconds": round(secs, 2)}
    if socks:
        res["kib_per_conn"] = round((after - before) / len(socks), 2)
    if len(socks) < n or closed:
        # a partial figure is not comparable with the others: keep it, but as an error
        res["error"] = (f"only {len(socks)} of {n} connections established"
                        f"{f', {closed} closed by the server' if closed else ''}")
    return res


# --------------------------------------------------------------------------------------------
# One measurement


def measure(name: str, sc: Scenario, args, opts: Options, rnd: int) -> dict:
    tag = f"{sc.name}-{name}-r{rnd}"
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet, args.busy_threshold)
    t0 = time.monotonic()
    srv = Server(name, sc, opts, idle=(sc.kind == "idle"), tag=tag)
    rec: dict = {"round": rnd}
    try:
        with srv:
            try:
                srv.start()
                srv.wait_ready()
                if sc.kind == "ws":
                    ws_sanity_check(sc, srv.port)
                else:
                    sanity_check(sc, srv.port)
                if sc.name == "mw" and not cors_check(srv.port):
                    rec["warning"] = "no access-control-allow-origin: * in the response"
            except (RuntimeError, OSError, ValueError) as e:
                rec["error"] = f"start: {e}"
                rec["start_failed"] = True
                rec["log_tail"] = srv.log_tail()
                return rec
            if sc.kind == "idle":
                rec.update(measure_idle(srv, args.idle_conns, args.idle_timeout))
            elif sc.kind == "ws":
                cmd = ws_load_argv(sc, srv.port, args, opts, args.duration, args.warmup)
                ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                m0, c0, w0 = machine_busy_seconds(), cpu_seconds(srv.proc.pid), time.monotonic()
                out = run_wrk(cmd, args.duration + args.warmup)
                m1, c1, w1 = machine_busy_seconds(), cpu_seconds(srv.proc.pid), time.monotonic()
                ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                load = json.loads(out.strip().splitlines()[-1])
                wall = w1 - w0
                client_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
                rec["rps"] = load["msgs_per_s"]
                for k in ("p50_ms", "p99_ms", "avg_ms"):
                    if k in load:
                        rec[k] = load[k]
                rec["ws_load"] = load
                rec["wrk_cpu_pct"] = round(100 * client_cpu / wall, 1)
                rec["server_cpu_pct"] = round(100 * (c1 - c0) / wall, 1)
                rec["other_cpu_pct"] = round(
                    max(0.0, 100 * ((m1 - m0) - (c1 - c0) - client_cpu) / wall), 1)
                rec["busy"] = rec["other_cpu_pct"] > args.busy_threshold
                if load.get("errors") or load.get("connections") != sc.ws_conns:
                    rec["warning"] = (f"{load.get('errors')} connection errors, "
                                      f"{load.get('connections')}/{sc.ws_conns} connected")
                if srv.proc.poll() is not None:
                    rec["error"] = f"server exited with {srv.proc.returncode} during the run"
            else:
                if args.warmup > 0:
                    run_wrk(wrk_argv(sc, srv.port, args, args.warmup, latency=False), args.warmup)
                cmd = wrk_argv(sc, srv.port, args, args.duration, latency=True)
                ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                m0, c0, w0 = machine_busy_seconds(), cpu_seconds(srv.proc.pid), time.monotonic()
                out = run_wrk(cmd, args.duration)
                m1, c1, w1 = machine_busy_seconds(), cpu_seconds(srv.proc.pid), time.monotonic()
                ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                wrk_cpu = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
                rec.update(parse_wrk(out))
                wall = w1 - w0
                rec["wrk_cpu_pct"] = round(100 * wrk_cpu / wall, 1)
                # whatever else ran on the machine meanwhile (other jobs, the harness itself)
                rec["other_cpu_pct"] = round(
                    max(0.0, 100 * ((m1 - m0) - (c1 - c0) - wrk_cpu) / wall), 1)
                if sc.pipeline > 1:
                    # wrk 4.1's percentiles are garbage with pipelining (0.00us, or p99 < p50);
                    # its average is per batch of `pipeline` requests
                    for k in ("p50_ms", "p75_ms", "p90_ms", "p99_ms"):
                        rec.pop(k, None)
                    rec["percentiles_missing"] = True
                rec["server_cpu_pct"] = round(100 * (c1 - c0) / wall, 1)
                warnings = []
                if rec["non_2xx"]:
                    warnings.append(f"{rec['non_2xx']} non-2xx responses")
                if any(rec["socket_errors"].values()):
                    warnings.append("wrk socket errors: " + ", ".join(
                        f"{k} {v}" for k, v in rec["socket_errors"].items() if v))
                # reported apart (see render_markdown), not as a per-figure warning
                rec["busy"] = rec["other_cpu_pct"] > args.busy_threshold
                if warnings:
                    rec["warning"] = "; ".join(warnings)
                if srv.proc.poll() is not None:
                    rec["error"] = f"server exited with {srv.proc.returncode} during the run"
    except (RuntimeError, OSError, ValueError) as e:
        rec["error"] = str(e)
        rec["log_tail"] = srv.log_tail()
    finally:
        rec["stop"] = srv.stop_info
        rec["seconds"] = round(time.monotonic() - t0, 1)
    if sc.kind in ("http", "ws") and "error" not in rec and not rec["stop"].get("clean"):
        rec["warning"] = (rec.get("warning", "") + " did not stop on SIGTERM within 10 s").strip()
    return rec


# --------------------------------------------------------------------------------------------
# Summaries


def summarize(sc: Scenario, rounds: list[dict]) -> dict:
    ok = [r for r in rounds if "error" not in r]
    out: dict = {"rounds": rounds}
    if not ok:
        out["error"] = rounds[-1].get("error", "no successful round") if rounds else "not run"
        return out
    if sc.kind == "idle":
        for key in ("delta_mb", "rss_before_mb", "rss_after_mb", "kib_per_conn"):
            vals = [r[key] for r in ok if key in r]
            if vals:
                out[key] = round(statistics.median(vals), 2)
        out["connections"] = min(r["connections"] for r in ok)
    else:
        out["rps"] = round(statistics.median(r["rps"] for r in ok), 1)
        for key in ("p50_ms", "p99_ms", "avg_ms", "server_cpu_pct", "wrk_cpu_pct",
                    "other_cpu_pct"):
            vals = [r[key] for r in ok if key in r]
            if vals:
                out[key] = round(statistics.median(vals), 4)
    warnings = [f"round {r['round']}: {r['warning']}" for r in rounds if r.get("warning")]
    if warnings:
        out["warnings"] = warnings
    out["ok_rounds"] = len(ok)
    busy = sum(1 for r in ok if r.get("busy"))
    if busy:
        out["busy_rounds"] = busy
    return out


def ratios(sc: Scenario, per_server: dict) -> dict:
    key = "delta_mb" if sc.kind == "idle" else "rps"
    vals = {s: v[key] for s, v in per_server.items() if v.get(key)}
    return {f"{s}/{ref}": round(vals[s] / vals[ref], 3)
            for s in vals for ref in REFERENCES if ref in vals and ref != s}


def _version(pkg: str) -> str | None:
    try:
        from importlib.metadata import version
        return version(pkg)
    except Exception:
        return None


def _cmd_version(cmd: list[str]) -> str | None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (p.stdout + p.stderr).strip().splitlines()
    return text[0].strip() if text else None


def machine_info() -> dict:
    cpu = None
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
            "platform": platform.platform(), "python": platform.python_version()}


def versions(python: str) -> dict:
    v = {p: _version(p) for p in ("celeris", "fastapi", "starlette", "pydantic", "pydantic-core",
                                  "uvicorn", "granian", "uvloop", "httptools")}
    v["nginx"] = _cmd_version(["nginx", "-v"])
    v["wrk"] = _cmd_version(["wrk", "-v"])
    if python != sys.executable:
        v["python_for_servers"] = _cmd_version([python, "--version"])
    return v


# --------------------------------------------------------------------------------------------
# Rendering


def _fmt_rps(entry: dict | None) -> str:
    if entry is None:
        return "—"
    if "rps" not in entry:
        return "error"
    s = f"{entry['rps']:,.0f}"
    return s + " ⚠" if entry.get("warnings") else s


def _fmt_mb(entry: dict | None) -> str:
    if entry is None:
        return "—"
    if "delta_mb" not in entry:
        return "error"
    return f"{entry['delta_mb']:.1f} MB"


def render_markdown(result: dict) -> str:
    cfg = result["config"]
    lines = [
        f"Requests/s, median of {cfg['rounds']} rounds; `wrk -t{cfg['threads']} "
        f"-c{cfg['connections']} -d{cfg['duration']}s` after a {cfg['warmup']} s warm-up; one "
        f"worker per server pinned to one core, wrk on the other; {result['date'][:10]}, "
        f"{result['machine'].get('cpu')}, {result['machine'].get('cores')} cores.",
        "",
        "| scenario | celeris | uvicorn | granian | nginx | celeris/uvicorn | celeris/granian "
        "| celeris/nginx |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    recs = [r for b in result["scenarios"].values() for e in b["servers"].values()
            for r in e["rounds"] if "other_cpu_pct" in r and "error" not in r]
    busy = [r for r in recs if r.get("busy")]
    if busy:
        worst = max(r["other_cpu_pct"] for r in busy)
        median = statistics.median(r["other_cpu_pct"] for r in busy)
        lines[1:1] = ["", f"⚠ The machine was busy: during {len(busy)} of {len(recs)} measurements "
                  f"other processes used more than {cfg.get('busy_threshold', 15):g}% of a core "
                  f"(median {median:.0f}%, worst {worst:.0f}%). Treat these figures, ratios "
                  "included, as unreliable and rerun on a quiet machine."]
    idle = None
    for name, block in result["scenarios"].items():
        if block["kind"] == "idle":
            idle = (name, block)
            continue
        srv = block["servers"]
        cells = [_fmt_rps(srv.get(s)) for s in SERVERS]
        rat = [f"{block['ratios'][k]:.2f}x" if k in block["ratios"] else "—"
               for k in ("celeris/uvicorn", "celeris/granian", "celeris/nginx")]
        lines.append(f"| {block['title']} | " + " | ".join(cells + rat) + " |")
    lat = ["", "Latency p50 / p99 (ms), same runs:", "",
           "| scenario | celeris | uvicorn | granian | nginx |", "| --- | ---: | ---: | ---: | ---: |"]
    for name, block in result["scenarios"].items():
        if block["kind"] == "idle":
            continue
        cells = []
        for s in SERVERS:
            e = block["servers"].get(s)
            if e is None:
                cells.append("—")
            elif "p50_ms" in e and "p99_ms" in e:
                cells.append(f"{e['p50_ms']:.2f} / {e['p99_ms']:.2f}")
            elif "avg_ms" in e:
                cells.append(f"avg {e['avg_ms']:.2f} per batch")
            else:
                cells.append("error")
        lat.append(f"| {block['title']} | " + " | ".join(cells) + " |")
    lines += lat
    if idle:
        name, block = idle
        srv = block["servers"]
        n = cfg.get("idle_conns")
        lines += ["", f"RSS added by {n:,} idle keep-alive connections (one request served on "
                  "each, raw ASGI app; nginx serves the same body from its config):", "",
                  "| scenario | celeris | uvicorn | granian | nginx | celeris/uvicorn "
                  "| celeris/granian | celeris/nginx |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        rat = [f"{block['ratios'][k]:.2f}x" if k in block["ratios"] else "—"
               for k in ("celeris/uvicorn", "celeris/granian", "celeris/nginx")]
        lines.append(f"| {block['title']} | " + " | ".join(
            [_fmt_mb(srv.get(s)) for s in SERVERS] + rat) + " |")
    errors = [(b["title"], s, e["error"]) for b in result["scenarios"].values()
              for s, e in b["servers"].items() if "error" in e]
    warns = [(b["title"], s, w) for b in result["scenarios"].values()
             for s, e in b["servers"].items() for w in e.get("warnings", ())]
    if errors or warns:
        lines += [""]
        lines += [f"- error: {t} / {s}: {str(e).splitlines()[0][:200]}" for t, s, e in errors]
        lines += [f"- ⚠ {t} / {s}: {w}" for t, s, w in warns]
    return "\n".join(lines) + "\n"


def render_chart(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"celeris": "#d62728", "uvicorn": "#1f77b4", "granian": "#2ca02c", "nginx": "#7f7f7f"}
    http = [b for b in result["scenarios"].values() if b["kind"] in ("http", "ws")]
    idle = [b for b in result["scenarios"].values() if b["kind"] == "idle"]
    ncols = (1 if http else 0) + (1 if idle else 0)
    if ncols == 0:
        return
    widths = ([max(4, len(http))] if http else []) + ([1.6] if idle else [])
    fig, axes = plt.subplots(1, ncols, figsize=(sum(widths) * 1.35 + 1, 5.2),
                             gridspec_kw={"width_ratios": widths}, squeeze=False)
    axes = list(axes[0])

    def bars(ax, blocks, key, fmt):
        servers = [s for s in SERVERS if any(key in b["servers"].get(s, {}) for b in blocks)]
        width = 0.8 / max(1, len(servers))
        for i, s in enumerate(servers):
            xs, ys = [], []
            for j, b in enumerate(blocks):
                e = b["servers"].get(s)
                if e is not None and key in e:
                    xs.append(j + (i - (len(servers) - 1) / 2) * width)
                    ys.append(e[key])
            rects = ax.bar(xs, ys, width, label=s, color=colors.get(s))
            ax.bar_label(rects, labels=[fmt(y) for y in ys], fontsize=6, rotation=90, padding=2)
        ax.set_xticks(range(len(blocks)))
        ax.set_xticklabels([b["title"] for b in blocks], rotation=20, ha="right", fontsize=8)
        ax.margins(y=0.2)
        if servers:
            ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)

    if http:
        ax = axes.pop(0)
        bars(ax, http, "rps", lambda y: f"{y / 1000:.1f}k")
        ax.set_yscale("log")  # nginx and the raw app are an order of magnitude above FastAPI
        ax.set_ylabel("requests/s (median, log scale)")
        cfg = result["config"]
        ax.set_title(f"Celeris vs uvicorn / granian / nginx — 1 worker, wrk -c{cfg['connections']}"
                     f", median of {cfg['rounds']}", fontsize=10)
    if idle:
        ax = axes.pop(0)
        bars(ax, idle, "delta_mb", lambda y: f"{y:.0f}")
        ax.set_ylabel("MB RSS added (lower is better)")
        ax.set_title(f"{result['config'].get('idle_conns', 0):,} idle conns", fontsize=10)
    recs = [r for b in http for e in b["servers"].values() for r in e["rounds"]
            if "other_cpu_pct" in r and "error" not in r]
    busy = sum(1 for r in recs if r.get("busy"))
    if busy:
        fig.suptitle(f"machine busy during {busy} of {len(recs)} measurements: figures unreliable",
                     color="#b00000", fontsize=9, y=0.995)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(result: dict, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    jpath, mpath, ppath = (out_dir / f"{name}.{ext}" for ext in ("json", "md", "png"))
    jpath.write_text(json.dumps(result, indent=2) + "\n")
    mpath.write_text(render_markdown(result))
    try:
        render_chart(result, ppath)
    except Exception as e:  # a chart must never cost the figures
        print(f"chart not written: {e}", file=sys.stderr)
        return [jpath, mpath]
    return [jpath, mpath, ppath]


# --------------------------------------------------------------------------------------------
# Main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="scenarios: " + ", ".join(
                                    f"{s.name} ({s.title})" for s in SCENARIOS.values()))
    p.add_argument("--scenarios", default=",".join(SCENARIOS),
                   help="comma-separated subset of: " + ",".join(SCENARIOS))
    p.add_argument("--servers", default=",".join(SERVERS),
                   help="comma-separated subset of: " + ",".join(SERVERS))
    p.add_argument("--duration", type=int, default=5, help="wrk seconds per measurement (5)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up wrk seconds, 0 for none (2)")
    p.add_argument("--rounds", type=int, default=3, help="rounds, the median is reported (3)")
    p.add_argument("--connections", type=int, default=50, help="wrk -c (50)")
    p.add_argument("--threads", type=int, default=1, help="wrk -t (1)")
    p.add_argument("--idle-conns", type=int, default=10000,
                   help="idle keep-alive connections for the idle scenario (10000)")
    p.add_argument("--idle-timeout", type=float, default=60.0,
                   help="seconds allowed to open the idle connections (60)")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes for celeris, uvicorn and granian (1); give the server "
                        "as many CPUs, e.g. --workers 2 --server-cpu 0,1 (see docs/workers.md)")
    p.add_argument("--server-cpu", default="0", help="taskset CPU list for the server (0)")
    p.add_argument("--wrk-cpu", default="1", help="taskset CPU list for wrk and the idle client (1)")
    p.add_argument("--ws-client", choices=("c", "python"), default="c",
                   help="ws scenarios' load client: bench/ws_load.c (built on demand into "
                        "build/bench/ws_load) or bench/ws_load.py (c)")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--busy-threshold", type=float, default=15.0,
                   help="warn when other processes use more than this %% of a core during a "
                        "measurement (15)")
    p.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                   help="before each measurement, wait up to this long for the machine's CPU "
                        "use to drop under --busy-threshold (0: do not wait)")
    p.add_argument("--start-timeout", type=float, default=30.0,
                   help="seconds a server gets to start listening (30)")
    p.add_argument("--python", default=sys.executable,
                   help="interpreter that runs celeris and uvicorn (this one)")
    p.add_argument("--celeris-args", default="",
                   help="extra arguments for `celeris run`, one string, split on spaces")
    p.add_argument("--out-dir", type=Path, default=BENCH_DIR / "results")
    p.add_argument("--name", default="latest", help="output file stem (latest)")
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="only re-render NAME.md and NAME.png from a results JSON")
    args = p.parse_args(argv)
    args.scenario_list = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    args.server_list = [s.strip() for s in args.servers.split(",") if s.strip()]
    for s in args.scenario_list:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)}")
    for s in args.server_list:
        if s not in SERVERS:
            p.error(f"unknown server {s!r}; choose from {', '.join(SERVERS)}")
    if args.no_pin or not shutil.which("taskset"):
        args.server_cpu = args.wrk_cpu = None
    if args.threads < 1 or args.connections < args.threads:
        p.error("need --threads >= 1 and --connections >= --threads")
    if args.duration < 1 or args.rounds < 1:
        p.error("need --duration >= 1 and --rounds >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text())
        for path in write_outputs(result, args.out_dir, args.name)[1:]:
            print(f"wrote {path}")
        return 0
    if not shutil.which("wrk") and any(SCENARIOS[s].kind == "http" for s in args.scenario_list):
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    # servers inherit this limit; the idle client needs it too
    nofile = raise_nofile(max(4096, 2 * args.idle_conns + 1000))

    logs = tempfile.TemporaryDirectory(prefix="celeris-bench-logs-")
    opts = Options(server_cpu=args.server_cpu, wrk_cpu=args.wrk_cpu,
                   start_timeout=args.start_timeout, celeris_args=args.celeris_args.split(),
                   python=args.python, logs_dir=Path(logs.name),
                   idle_conns=args.idle_conns, workers=args.workers)
    result = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "versions": versions(args.python),
        "config": {"duration": args.duration, "warmup": args.warmup, "rounds": args.rounds,
                   "connections": args.connections, "threads": args.threads,
                   "idle_conns": args.idle_conns, "workers": args.workers,
                   "server_cpu": args.server_cpu,
                   "wrk_cpu": args.wrk_cpu, "nofile": nofile,
                   "busy_threshold": args.busy_threshold, "ws_client": args.ws_client,
                   "celeris_args": opts.celeris_args, "argv": sys.argv[1:]},
        "scenarios": {},
    }
    interrupted = False
    try:
        for sname in args.scenario_list:
            sc = SCENARIOS[sname]
            servers = [s for s in sc.servers if s in args.server_list]
            if not servers:
                continue
            per: dict[str, list[dict]] = {s: [] for s in servers}
            gave_up: set[str] = set()
            for rnd in range(args.rounds):
                k = rnd % len(servers)
                for name in servers[k:] + servers[:k]:  # rotate the order every round
                    if name in gave_up:
                        continue
                    if sc.kind == "idle" and args.wrk_cpu is not None:
                        os.sched_setaffinity(0, {int(c) for c in args.wrk_cpu.split(",")})
                    try:
                        rec = measure(name, sc, args, opts, rnd + 1)
                    finally:
                        os.sched_setaffinity(0, range(os.cpu_count() or 1))
                    per[name].append(rec)
                    if rec.get("start_failed"):
                        gave_up.add(name)  # it will not start next round either
                    _print_record(sc, name, rec)
                    # kept up to date so that an interrupted run still reports what it measured
                    block = {"title": sc.title, "kind": sc.kind, "path": sc.path,
                             "method": sc.method, "app": sc.app, "pipeline": sc.pipeline,
                             "servers": {s: summarize(sc, per[s]) for s in servers if per[s]}}
                    block["ratios"] = ratios(sc, block["servers"])
                    result["scenarios"][sname] = block
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: writing what was measured", file=sys.stderr)
    finally:
        _kill_all_live()
        logs.cleanup()
    if interrupted:
        result["interrupted"] = True
    for path in write_outputs(result, args.out_dir, args.name):
        print(f"wrote {path}")
    print()
    print(render_markdown(result))
    return 130 if interrupted else 0


def _print_record(sc: Scenario, name: str, rec: dict) -> None:
    head = f"[{sc.name} r{rec['round']}] {name:8s}"
    if "error" in rec:
        msg = str(rec["error"]).splitlines()[0]
        tail = rec.get("log_tail", "").strip().splitlines()[-1:] or [""]
        print(f"{head} ERROR {msg} {tail[0][:160]}", flush=True)
    elif sc.kind == "idle":
        print(f"{head} +{rec['delta_mb']:.1f} MB for {rec['connections']} conns "
              f"({rec.get('kib_per_conn', 0):.1f} KiB each; {rec['failed']} failed, "
              f"{rec['closed_by_server']} closed by server, opened in {rec['open_seconds']} s)",
              flush=True)
    else:
        lat = (f"p50 {rec['p50_ms']:.2f} ms  p99 {rec['p99_ms']:.2f} ms" if "p50_ms" in rec
               else f"avg {rec.get('avg_ms', 0):.2f} ms/batch")
        print(f"{head} {rec['rps']:>10,.0f} req/s  {lat}  cpu: server "
              f"{rec.get('server_cpu_pct', 0):.0f}% wrk {rec.get('wrk_cpu_pct', 0):.0f}% "
              f"other {rec.get('other_cpu_pct', 0):.0f}%" + ("  (machine busy)" if rec.get("busy")
                                                             else "")
              + (f"  ⚠ {rec['warning']}" if rec.get("warning") else ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
