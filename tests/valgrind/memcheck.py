#!/usr/bin/env python3
"""Valgrind memcheck of a Celeris server under a mixed request load (`make valgrind`).

Starts ``python -m celeris run app:app`` (tests/valgrind/app.py) under
``valgrind --tool=memcheck`` with PYTHONMALLOC=malloc, sends --requests requests
over real sockets -- keep-alive GETs on both tiers, POST bodies with
Content-Length and chunked, pipelined batches, malformed requests, clients
that vanish mid-body -- checks every answer, stops the server with SIGTERM
(graceful shutdown, so leak checking runs at a clean exit) and reads
valgrind's XML report.

An error (invalid read/write, use of uninitialised memory, bad free...) or a
definite leak counts against Celeris when a frame of its stack lies in
_celeris*.so; everything else is CPython's or a library's and is listed
separately.  Writes OUT/summary.json; exits 1 when Celeris has any error or
definite leak, or when a request got a wrong answer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "tests" / "python"))
import rawhttp  # noqa: E402

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Load:
    """Sends the request mix and checks each answer; counts requests sent."""

    def __init__(self, addr) -> None:
        self.addr = addr
        self.sent = 0
        self.wrong: list[str] = []
        self.kinds: dict[str, int] = {}

    def expect(self, what: str, resp: rawhttp.Response, status: int, body: bytes | None = None) -> None:
        self.sent += 1
        self.kinds[what] = self.kinds.get(what, 0) + 1
        if resp.status != status or (body is not None and body not in resp.body):
            if len(self.wrong) < 20:
                self.wrong.append(f"{what}: got {resp.status} {resp.body[:80]!r}")

    def keepalive_gets(self, n: int) -> None:
        paths = [("/", b'"hello"', 200), ("/items/7?q=x%20y", b'"q":"x y"', 200),
                 ("/items/abc", b"int_parsing", 422), ("/sync", b"true", 200),
                 ("/missing", b"nope", 404), ("/stream", b"chunk-4", 200), ("/nowhere", None, 404)]
        with rawhttp.Conn(self.addr, timeout=60) as c:
            for i in range(n):
                path, body, status = paths[i % len(paths)]
                c.send(rawhttp.build_request("GET", path))
                self.expect("keepalive-get", c.read_response(), status, body)

    def posts(self, n: int) -> None:
        with rawhttp.Conn(self.addr, timeout=60) as c:
            for i in range(n):
                size = (0, 5, 1000, 70000)[i % 4]
                body = bytes((65 + j % 26 for j in range(size)))
                if i % 2:
                    req = (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           + (rawhttp.chunked(body[: size // 2], body[size // 2:]) if size else b"0\r\n\r\n"))
                    kind = "post-chunked"
                else:
                    req = rawhttp.build_request("POST", "/echo", body=body)
                    kind = "post-length"
                c.send(req)
                self.expect(kind, c.read_response(), 200, b'"len":%d' % size)

    def pipelined(self, batch: int) -> None:
        with rawhttp.Conn(self.addr, timeout=60) as c:
            reqs = b"".join(rawhttp.build_request("GET", f"/items/{i}") if i % 3 else
                            rawhttp.build_request("POST", "/echo", body=b"x" * i)
                            for i in range(batch))
            c.send(reqs)
            for i in range(batch):
                want = b'"item_id":%d' % i if i % 3 else b'"len":%d' % i
                self.expect("pipelined", c.read_response("GET" if i % 3 else "POST"), 200, want)

    MALFORMED = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n", 400),
        (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"v" * 70000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n", 500),
    ]

    def malformed(self, i: int) -> None:
        data, status = self.MALFORMED[i % len(self.MALFORMED)]
        with rawhttp.Conn(self.addr, timeout=60) as c:
            c.send(data)
            self.expect("malformed", c.read_response(allow_incomplete=True), status)

    def abort_mid_body(self) -> None:
        s = rawhttp.connect(self.addr, timeout=60)
        rawhttp.send(s, b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"a" * 5000)
        s.close()
        self.sent += 1
        self.kinds["abort-mid-body"] = self.kinds.get("abort-mid-body", 0) + 1

    def run(self, total: int) -> None:
        step = 0
        while self.sent < total:
            left = total - self.sent
            k = step % 5
            if k == 0:
                self.keepalive_gets(min(50, left))
            elif k == 1:
                self.posts(min(20, left))
            elif k == 2:
                self.pipelined(min(16, left))
            elif k == 3:
                for j in range(min(5, left)):
                    self.malformed(step + j)
            else:
                self.abort_mid_body()
            step += 1


def get_status(addr, path: str) -> int:
    with rawhttp.Conn(addr, timeout=60) as c:
        return c.request("GET", path).status


def wait_ready(addr, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering")
        try:
            if get_status(addr, "/") == 200:
                return
        except (OSError, rawhttp.Closed):
            pass
        time.sleep(0.5)
    raise RuntimeError("server did not answer in time")


def frames(err: ET.Element) -> list[dict]:
    out = []
    for st in err.iter("stack"):
        for fr in st.iter("frame"):
            out.append({k: (fr.findtext(k) or "") for k in ("obj", "fn", "file", "line")})
    return out


def where(fr: list[dict]) -> str:
    """First frame outside valgrind's preload and the allocator, as obj:fn."""
    for f in fr:
        if "vgpreload" not in f["obj"] and f["fn"] not in ("malloc", "realloc", "calloc"):
            return f"{Path(f['obj']).name}:{f['fn']}"
    return "?"


def analyse(xml_path: Path) -> dict:
    root = ET.parse(xml_path).getroot()
    errors, leaks, other = [], [], {}
    leak_bytes = 0
    for err in root.iter("error"):
        kind = err.findtext("kind") or "?"
        fr = frames(err)        # every stack: the error's and, with --track-origins, the origin's
        ours = any("_celeris" in f["obj"] for f in fr)
        if kind.startswith("Leak_") and kind != "Leak_DefinitelyLost":
            continue
        if ours:
            item = {"kind": kind, "what": err.findtext("what") or err.findtext("xwhat/text") or "",
                    "stack": fr[:12]}
            if kind == "Leak_DefinitelyLost":
                leaks.append(item)
                leak_bytes += int(err.findtext("xwhat/leakedbytes") or 0)
            else:
                errors.append(item)
            continue
        stacks = list(err.iter("stack"))
        origin = [{k: (f.findtext(k) or "") for k in ("obj", "fn")} for f in stacks[-1].iter("frame")]
        key = f"{kind} at {where(fr)}" + (f" (origin {where(origin)})" if len(stacks) > 1 else "")
        other[key] = other.get(key, 0) + 1
    return {"celeris_errors": errors, "celeris_definite_leaks": leaks,
            "celeris_definite_leak_bytes": leak_bytes, "other": other}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--out", default=str(ROOT / "build" / "valgrind-report"))
    ap.add_argument("--valgrind", default="valgrind")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    xml_path = out / "memcheck.xml"
    port = free_port()
    env = dict(os.environ, PYTHONMALLOC="malloc")
    cmd = [args.valgrind, "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite",
           "--errors-for-leak-kinds=definite", "--num-callers=40", "--track-origins=yes", "--xml=yes",
           f"--xml-file={xml_path}", f"--suppressions={HERE / 'python.supp'}",
           sys.executable, "-m", "celeris", "run", "app:app", "--app-dir", str(HERE),
           "--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "warning",
           "--timeout-graceful-shutdown", "30"]
    log = open(out / "server.log", "wb")
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    addr = (HOST, port)
    load = Load(addr)
    try:
        wait_ready(addr, proc, 600)
        t1 = time.monotonic()
        load.run(args.requests)
        t2 = time.monotonic()
        # still serving after everything above
        alive = get_status(addr, "/") == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        log.close()
    res = analyse(xml_path)
    summary = {
        "requests": load.sent, "by_kind": load.kinds, "wrong_answers": load.wrong,
        "served_after_load": alive, "server_exit": rc,
        "startup_s": round(t1 - t0, 1), "load_s": round(t2 - t1, 1),
        "celeris_errors": len(res["celeris_errors"]),
        "celeris_definite_leaks": len(res["celeris_definite_leaks"]),
        "celeris_definite_leak_bytes": res["celeris_definite_leak_bytes"],
        "other_errors": sum(v for k, v in res["other"].items() if not k.startswith("Leak_")),
        "other_definite_leaks": sum(v for k, v in res["other"].items() if k.startswith("Leak_")),
        "other": dict(sorted(res["other"].items(), key=lambda kv: -kv[1])),
        "details": res["celeris_errors"][:20] + res["celeris_definite_leaks"][:20],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "details"}, indent=2))
    bad = summary["celeris_errors"] or summary["celeris_definite_leaks"] or load.wrong or not alive
    if bad:
        print(f"memcheck: FAILED (details in {out / 'summary.json'})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
