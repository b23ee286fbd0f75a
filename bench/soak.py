#!/usr/bin/env python3
"""Soak test (`make soak SOAK_SECONDS=600`): RSS of a Celeris server under sustained load.

Serves bench/apps/fastapi_app.py with ``celeris run`` and drives it with wrk
(bench/lua/soak_mix.lua: /plain, /items/{id}?q=, POST /items, /chain, /sync)
for --seconds, sampling the server's RSS (/proc/PID/status VmRSS) every
--interval seconds.  Growth is measured from the first sample after the
warm-up (--warmup, default 10% of the run, at least one interval) to the
last sample; the run passes when growth <= --max-growth percent (5) and the
server still answers afterwards.  Writes the samples, wrk's totals and the
verdict as JSON (--out).  A tool to run, not a test: nothing asserts on
throughput.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def answers(port: int) -> bool:
    try:
        c = http.client.HTTPConnection(HOST, port, timeout=5)
        c.request("GET", "/plain")
        r = c.getresponse()
        ok = r.status == 200 and r.read() == b'{"hello":"world"}'
        c.close()
        return ok
    except OSError:
        return False


def parse_wrk(out: str) -> dict:
    res: dict = {}
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if m:
        res["requests"] = int(m.group(1))
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["requests_per_sec"] = float(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    res["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                    map(int, m.groups()))) if m else {}
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=None, help="seconds (default: 10%% of the run)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-growth", type=float, default=5.0, help="percent")
    ap.add_argument("--out", default=str(BENCH / "results" / "soak.json"))
    args = ap.parse_args()
    warmup = args.warmup if args.warmup is not None else max(args.interval, args.seconds // 10)

    port = free_port()
    cmd = [sys.executable, "-m", "celeris", "run", "fastapi_app:app", "--app-dir",
           str(BENCH / "apps"), "--host", HOST, "--port", str(port), "--no-access-log",
           "--log-level", "warning"]
    server = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not answers(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        wrk = subprocess.Popen(
            ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s",
             "-s", str(BENCH / "lua" / "soak_mix.lua"), f"http://{HOST}:{port}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        t0 = time.monotonic()
        samples = [{"t": 0, "rss_kib": rss_kib(server.pid)}]
        while wrk.poll() is None:
            time.sleep(max(0.0, t0 + len(samples) * args.interval - time.monotonic()))
            if wrk.poll() is not None or server.poll() is not None:
                break
            samples.append({"t": round(time.monotonic() - t0, 1), "rss_kib": rss_kib(server.pid)})
        out = wrk.communicate()[0]
        if server.poll() is None:
            samples.append({"t": round(time.monotonic() - t0, 1), "rss_kib": rss_kib(server.pid)})
        alive = answers(port)
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()

    after = [s for s in samples if s["t"] >= warmup]
    base = after[0]["rss_kib"] if after else samples[-1]["rss_kib"]
    last = samples[-1]["rss_kib"]
    growth = 100.0 * (last - base) / base
    peak = max(s["rss_kib"] for s in after) if after else last
    result = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "app": "bench/apps/fastapi_app.py", "mix": "bench/lua/soak_mix.lua",
        "seconds": args.seconds, "interval_s": args.interval, "warmup_s": warmup,
        "connections": args.connections, "threads": args.threads, "cpus": os.cpu_count(),
        "wrk": parse_wrk(out),
        "rss_start_kib": samples[0]["rss_kib"], "rss_after_warmup_kib": base,
        "rss_end_kib": last, "rss_peak_after_warmup_kib": peak,
        "growth_after_warmup_pct": round(growth, 2),
        "peak_growth_after_warmup_pct": round(100.0 * (peak - base) / base, 2),
        "max_growth_pct": args.max_growth, "served_after": alive,
        "passed": alive and growth <= args.max_growth,
        "samples": samples,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
