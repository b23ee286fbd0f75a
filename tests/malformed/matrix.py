#!/usr/bin/env python3
"""The malformed/abusive input matrix (`make malformed`; docs/reliability.md).

Starts three Celeris servers (`python -m celeris run raw_app:app`, the raw ASGI
app of tests/python/apps): one with the default limits, one with small limits
(--limit-request-line 1024 --limit-request-header-size 4096
--limit-request-fields 100 --limit-request-body 1000) and one with 1 s
timeouts (--timeout-request-header 1 --timeout-request-body 1
--timeout-keep-alive 1).  Every case is sent over a real socket; the answer
is read until the server closes (or, for a case whose connection must stay
open, a follow-up request is sent on it), and then a fresh connection must
still be served (GET /id?n=...).  The byte cases are the ones
tests/python/test_malformed.py runs (tests/python/malformed_cases.py); the
timed and client-side cases (slowloris, slow and stalled bodies, clients
closing or resetting mid-request, garbage after a valid request, a TLS
ClientHello) are defined here.

Writes docs/reliability-matrix.md (the table) and build/malformed.json;
exit status 1 on any mismatch or a server that stops serving.
"""
from __future__ import annotations

import argparse
import json
import socket
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "python"))

from conftest import start_server  # noqa: E402
from malformed_cases import (DEFAULT_CASES, EXTRA_CASES, H, LENIENT_CASES,  # noqa: E402
                             LIMIT_CASES)

READ_TIMEOUT = 5.0      # per read on the default and limits servers
SLOW_TIMEOUT = 6.0      # per read on the 1 s timeout server (the sweep runs once a second)

SERVERS = {
    "default": (),
    "limits": ("--limit-request-line", "1024", "--limit-request-header-size", "4096",
               "--limit-request-fields", "100", "--limit-request-body", "1000"),
    "timeouts": ("--timeout-keep-alive", "1", "--timeout-request-header", "1",
                 "--timeout-request-body", "1"),
}

TLS_CLIENT_HELLO = bytes.fromhex(
    "16030100c4010000c00303" + "ab" * 32 + "20" + "cd" * 32
    + "0020c02bc02fc02cc030cca9cca8c013c014009c009d002f0035c012000a130113021303"
    "0100005500000010000e00000b6578616d706c652e636f6d000b000403000102000a000a0008"
    "001d001700180019000d0012001004030804040105030805050108060601")


@dataclass
class Case:
    name: str
    category: str
    sent: str                   # short description of the bytes
    expect: list[str]           # acceptable observations ("400, close", "clean close", ...)
    server: str = "default"
    data: bytes = b""           # byte cases: sent at once
    run: object = None          # timed/custom cases: fn(addr) -> observation
    keep_open: int = 0          # responses expected before the follow-up on the same conn


@dataclass
class Result:
    name: str
    category: str
    server: str
    sent: str
    expected: str
    observed: str
    still_serving: bool
    ok: bool
    seconds: float
    detail: str = ""
    statuses: list = field(default_factory=list)


# ---------------------------------------------------------------- observing

def parse_responses(buf: bytes) -> tuple[list[tuple[int, dict]], bytes]:
    """Split a byte stream into (status, headers) responses (Content-Length
    framed, as all of raw_app's and the server's answers here are)."""
    out = []
    while True:
        i = buf.find(b"\r\n\r\n")
        if i < 0:
            return out, buf
        lines = buf[:i].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            return out, buf
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        n = int(hdrs.get("content-length", "0"))
        if len(buf) < i + 4 + n:
            return out, buf
        out.append((status, hdrs))
        buf = buf[i + 4 + n:]


def read_all(sock: socket.socket, timeout: float) -> tuple[bytes, str]:
    """Read until EOF; returns (bytes, how): how is close / RST / open."""
    sock.settimeout(timeout)
    buf = b""
    while True:
        try:
            d = sock.recv(65536)
        except ConnectionResetError:
            return buf, "RST"
        except (socket.timeout, TimeoutError):
            return buf, "open"
        if not d:
            return buf, "close"
        buf += d


def describe(buf: bytes, how: str) -> tuple[str, list]:
    resps, rest = parse_responses(buf)
    parts = []
    for status, hdrs in resps:
        s = str(status)
        if status >= 400 and hdrs.get("connection", "").lower() != "close":
            s += " (no connection: close)"
        parts.append(s)
    if rest:
        parts.append(f"{len(rest)} stray bytes {rest[:40]!r}")
    statuses = [s for s, _ in resps]
    if not parts:
        return {"close": "clean close", "RST": "RST", "open": "no answer, still open"}[how], statuses
    return ", ".join(parts + [how]), statuses


def send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


def connect(addr, timeout=READ_TIMEOUT) -> socket.socket:
    s = socket.create_connection(addr, timeout=timeout)
    s.settimeout(timeout)
    return s


def follow_up(sock: socket.socket, buf: bytes, count: int, timeout: float) -> tuple[str, list]:
    """For cases that must keep the connection: wait for `count` responses,
    then send GET /id?n=next on the same connection and expect it served."""
    sock.settimeout(timeout)
    while len(parse_responses(buf)[0]) < count:
        try:
            d = sock.recv(65536)
        except (socket.timeout, TimeoutError, ConnectionResetError):
            break
        if not d:
            break
        buf += d
    resps, _ = parse_responses(buf)
    statuses = [s for s, _ in resps]
    if len(resps) < count:
        return describe(buf, "close")
    send(sock, b"GET /id?n=next HTTP/1.1\r\n" + H + b"\r\n")
    more = b""
    while not parse_responses(more)[0]:
        try:
            d = sock.recv(65536)
        except (socket.timeout, TimeoutError, ConnectionResetError):
            break
        if not d:
            break
        more += d
    nxt = parse_responses(more)[0]
    tail = "next request served on it" if nxt and nxt[0][0] == 200 else "next request NOT served"
    return ", ".join([str(s) for s in statuses] + [tail]), statuses


def run_bytes(case: Case, addr) -> tuple[str, list]:
    timeout = SLOW_TIMEOUT if case.server == "timeouts" else READ_TIMEOUT
    with connect(addr, timeout) as s:
        send(s, case.data)
        if case.keep_open:
            return follow_up(s, b"", case.keep_open, timeout)
        return describe(*read_all(s, timeout))


def still_serving(addr, n: int) -> bool:
    try:
        with connect(addr) as s:
            send(s, b"GET /id?n=alive%d HTTP/1.1\r\n" % n + H + b"Connection: close\r\n\r\n")
            buf, _ = read_all(s, READ_TIMEOUT)
        return buf.startswith(b"HTTP/1.1 200 ") and buf.endswith(b"alive%d" % n)
    except OSError:
        return False


# ---------------------------------------------------------------- timed / client-side cases

def reset(s: socket.socket) -> None:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def c_slow_head(addr):
    with connect(addr, SLOW_TIMEOUT) as s:
        send(s, b"GET /id?n=1 HTTP/1.1\r\nHost: testserver\r\nX-Slow: ")
        return describe(*read_all(s, SLOW_TIMEOUT))


def c_trickle(addr):
    # bytes keep arriving (a header line every 0.25 s), the head never completes
    with connect(addr, SLOW_TIMEOUT) as s:
        send(s, b"GET /id?n=1 HTTP/1.1\r\n")
        s.settimeout(0.25)
        buf = b""
        for i in range(40):
            send(s, b"X-%d: y\r\n" % i)
            try:
                d = s.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            except ConnectionResetError:
                return describe(buf, "RST")
            buf += d
            break
        more, how = read_all(s, SLOW_TIMEOUT)
        return describe(buf + more, how)


def c_second_head_stalls(addr):
    with connect(addr, SLOW_TIMEOUT) as s:
        send(s, b"GET /id?n=1 HTTP/1.1\r\n" + H + b"\r\n")
        buf = b""
        while not parse_responses(buf)[0]:
            buf += s.recv(65536)
        send(s, b"GET /id?n=2 HTTP/1.1\r\nHost: x\r\n")
        more, how = read_all(s, SLOW_TIMEOUT)
        return describe(buf + more, how)


def c_empty_lines_stall(addr):
    with connect(addr, SLOW_TIMEOUT) as s:
        send(s, b"\r\n" * 10)
        return describe(*read_all(s, SLOW_TIMEOUT))


def c_idle_no_bytes(addr):
    with connect(addr, SLOW_TIMEOUT) as s:
        return describe(*read_all(s, SLOW_TIMEOUT))


def c_idle_keep_alive(addr):
    with connect(addr, SLOW_TIMEOUT) as s:
        send(s, b"GET /id?n=1 HTTP/1.1\r\n" + H + b"\r\n")
        return describe(*read_all(s, SLOW_TIMEOUT))


def c_stalled_body(path, chunked=False):
    def run(addr):
        with connect(addr, SLOW_TIMEOUT) as s:
            if chunked:
                send(s, b"POST %s HTTP/1.1\r\n" % path + H
                     + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel")
            else:
                send(s, b"POST %s HTTP/1.1\r\n" % path + H
                     + b"Content-Length: 100\r\n\r\n" + b"x" * 50)
            return describe(*read_all(s, SLOW_TIMEOUT))
    return run


def c_steady_slow_body(addr):
    # 8 bytes at 0.2 s intervals: 1.6 s in total, over the 1 s timeout, never stalled for 1 s
    with connect(addr, SLOW_TIMEOUT) as s:
        send(s, b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 8\r\n\r\n")
        for _ in range(8):
            time.sleep(0.2)
            send(s, b"x")
        return follow_up(s, b"", 1, SLOW_TIMEOUT)


def c_fin_mid(data):
    def run(addr):
        with connect(addr, SLOW_TIMEOUT) as s:
            send(s, data)
            s.shutdown(socket.SHUT_WR)
            return describe(*read_all(s, SLOW_TIMEOUT))
    return run


def c_rst_mid(data, n=30):
    def run(addr):
        socks = []
        for _ in range(n):
            s = connect(addr)
            send(s, data)
            socks.append(s)
        time.sleep(0.05)
        for s in socks:
            reset(s)
        return f"{n} clients reset", []
    return run


def c_expect_over_limit(addr):
    with connect(addr) as s:
        send(s, b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 2000\r\nExpect: 100-continue\r\n\r\n")
        return describe(*read_all(s, READ_TIMEOUT))


def c_tls_hello(addr):
    with connect(addr) as s:
        send(s, TLS_CLIENT_HELLO)
        return describe(*read_all(s, READ_TIMEOUT))


# ---------------------------------------------------------------- the matrix

def short(data: bytes, n: int = 70) -> str:
    """A short, table-safe rendering of the bytes sent."""
    out, i = [], 0
    # collapse long runs (b"a" * 2000 -> a{2000})
    while i < len(data):
        j = i
        while j < len(data) and data[j] == data[i]:
            j += 1
        run = data[i:j]
        if len(run) > 8:
            out.append(repr(bytes([data[i]]))[2:-1] + "{%d}" % len(run))
        else:
            out.append(repr(run)[2:-1])
        i = j
    s = "".join(out)
    s = s.replace("Host: testserver\\r\\n", "")
    if len(s) > n:
        s = s[:n - 3] + "..."
    return s


CATEGORY_RULES = [
    (("cl-and-te", "te-and-cl", "two-differing", "content-length", "te-", "cl-", "identical-cls",
      "whitespace-before-colon"), "smuggling"),
    (("chunk", "bad-chunk"), "chunk sizes"),
    (("nul-", "del-"), "NUL / control bytes"),
    (("bare-", "cr-"), "bare CR / LF"),
    (("obs-fold", "whitespace-before-first"), "obs-fold"),
    (("101-header", "target-70k", "method-70k", "header-value-70k", "header-name-70k", "request-line-too",
      "header-block", "many-headers", "body-over"), "oversize"),
    (("header-without", "empty-header", "non-token", "two-hosts", "missing-host"), "header syntax"),
    (("tls-",), "TLS on plain port"),
    (("binary-garbage", "ssh-banner", "http-2-preface"), "garbage / other protocols"),
]


def category(name: str) -> str:
    for prefixes, cat in CATEGORY_RULES:
        if any(name.startswith(p) for p in prefixes):
            return cat
    return "request line"


def status_expect(status: int) -> list[str]:
    return [f"{status}, close"]


def build_cases() -> list[Case]:
    cases = []
    for name, data, status in DEFAULT_CASES + EXTRA_CASES:
        cases.append(Case(name, category(name), short(data), status_expect(status), data=data))
    for name, data, status in LIMIT_CASES:
        cases.append(Case(name, "oversize", short(data), status_expect(status), "limits", data=data))
    for name, data, _ in LENIENT_CASES:
        cases.append(Case(name, "lenient but valid", short(data), ["200, next request served on it"],
                          data=data, keep_open=1))
    served = ["200, next request served on it"]
    more = [
        Case("te-gzip-then-chunked", "smuggling",
             "POST /echo TE: gzip, chunked (chunked last: framed by chunked, codings passed on)",
             served, data=b"POST /echo HTTP/1.1\r\n" + H
             + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", keep_open=1),
        Case("cl-zero-then-pipelined-request", "smuggling",
             "POST /echo CL: 0, then a GET in the same packet (a request, not body)",
             ["200, 200, next request served on it"],
             data=b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n"
             b"GET /id?n=smuggled HTTP/1.1\r\n" + H + b"\r\n", keep_open=2),
        Case("absolute-form", "request line", "GET http://testserver/id?n=abs HTTP/1.1",
             served, data=b"GET http://testserver/id?n=abs HTTP/1.1\r\n" + H + b"\r\n", keep_open=1),
        Case("asterisk-form-options", "request line",
             "OPTIONS * HTTP/1.1 (reaches the app: raw_app answers 404)",
             ["404, next request served on it"],
             data=b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n", keep_open=1),
        Case("http-1.0-no-host", "request line", "GET /id?n=x HTTP/1.0 (no Host needed)",
             ["200, close"], data=b"GET /id?n=x HTTP/1.0\r\n\r\n"),
        Case("garbage-after-valid-request", "pipelined garbage",
             "GET /id?n=first, then \\x01\\x02GARBAGE \\xff in the same packet",
             ["200, 400, close"], data=b"GET /id?n=first HTTP/1.1\r\n" + H + b"\r\n"
             b"\x01\x02GARBAGE \xff\r\n\r\n"),
        Case("valid-then-te-cl-smuggle", "pipelined garbage",
             "GET, then a CL+TE POST in the same packet",
             ["200, 400, close"], data=b"GET /id?n=first HTTP/1.1\r\n" + H + b"\r\n"
             b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"0\r\n\r\n"),
        Case("valid-then-oversize-head", "pipelined garbage",
             "GET, then a 70 KB header in the same stream", ["200, 431, close"],
             data=b"GET /id?n=first HTTP/1.1\r\n" + H + b"\r\n"
             b"GET /scope HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 70000 + b"\r\n\r\n"),
        Case("tls-client-hello", "TLS on plain port", "a TLS 1.2/1.3 ClientHello (SNI example.com)",
             ["400, close", "clean close"], run=c_tls_hello),
        Case("expect-100-body-over-limit", "oversize",
             "POST CL: 2000, Expect: 100-continue (limit 1000): 413 without 100",
             ["413, close"], "limits", run=c_expect_over_limit),
        # slowloris and slow bodies (1 s timeouts)
        Case("slowloris-stalled-head", "slowloris", "partial head, then nothing",
             ["408, close"], "timeouts", run=c_slow_head),
        Case("slowloris-trickle", "slowloris", "a header line every 0.25 s, head never complete",
             ["408, close"], "timeouts", run=c_trickle),
        Case("slowloris-second-head", "slowloris",
             "a served request, then a partial second head on the keep-alive connection",
             ["200, 408, close"], "timeouts", run=c_second_head_stalls),
        Case("slowloris-empty-lines", "slowloris", "ten empty lines (ignored), then nothing",
             ["408, close"], "timeouts", run=c_empty_lines_stall),
        Case("idle-connection-no-bytes", "slowloris", "connect, send nothing",
             ["clean close"], "timeouts", run=c_idle_no_bytes),
        Case("idle-keep-alive", "slowloris", "one request, then idle on the keep-alive connection",
             ["200, close"], "timeouts", run=c_idle_keep_alive),
        Case("slow-body-stalled-cl", "slow body",
             "POST /echo CL: 100, 50 bytes, then nothing (app waiting in receive())",
             ["clean close"], "timeouts", run=c_stalled_body(b"/echo")),
        Case("slow-body-stalled-chunked", "slow body",
             "POST /echo chunked, half a chunk, then nothing",
             ["clean close"], "timeouts", run=c_stalled_body(b"/echo", chunked=True)),
        Case("slow-body-stalled-app-answered", "slow body",
             "POST /noread CL: 100, 50 bytes (app answers without reading), then nothing",
             ["200, close"], "timeouts", run=c_stalled_body(b"/noread")),
        Case("slow-body-steady", "slow body",
             "POST CL: 8, one byte every 0.2 s (1.6 s in total, never 1 s stalled)",
             ["200, next request served on it"], "timeouts", run=c_steady_slow_body),
        # clients going away
        Case("client-fin-mid-body", "client closes mid-body",
             "POST CL: 100, 50 bytes, then shutdown(SHUT_WR)", ["clean close"],
             run=c_fin_mid(b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\n" + b"x" * 50)),
        Case("client-fin-mid-chunked-body", "client closes mid-body",
             "POST chunked, half a chunk, then shutdown(SHUT_WR)", ["clean close"],
             run=c_fin_mid(b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                           b"a\r\nhello")),
        Case("client-fin-mid-head", "client closes mid-body",
             "half a head, then shutdown(SHUT_WR)", ["clean close"],
             run=c_fin_mid(b"GET /scope HTTP/1.1\r\n" + H + b"X-Partial: ")),
        Case("client-rst-mid-body", "client closes mid-body",
             "30 clients: POST CL: 100000 + 5000 bytes, then RST", ["30 clients reset"],
             run=c_rst_mid(b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 100000\r\n\r\n"
                           + b"x" * 5000)),
        Case("client-rst-mid-chunked-body", "client closes mid-body",
             "30 clients: POST chunked, half a chunk, then RST", ["30 clients reset"],
             run=c_rst_mid(b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                           b"1000\r\n" + b"y" * 100)),
        Case("client-rst-mid-response", "client closes mid-body",
             "30 clients: GET /big?mb=4, then RST before reading", ["30 clients reset"],
             run=c_rst_mid(b"GET /big?mb=4 HTTP/1.1\r\n" + H + b"\r\n")),
    ]
    return cases + more


def run_matrix(only: str | None = None) -> list[Result]:
    cases = build_cases()
    if only:
        cases = [c for c in cases if only in c.name]
    servers = {}
    results = []
    try:
        for key in dict.fromkeys(c.server for c in cases):
            servers[key] = start_server("raw_app:app", "--no-access-log", *SERVERS[key])
        for i, case in enumerate(cases):
            srv = servers[case.server]
            t0 = time.monotonic()
            detail = ""
            try:
                if case.run is not None:
                    observed, statuses = case.run(srv.addr)
                else:
                    observed, statuses = run_bytes(case, srv.addr)
            except Exception as e:      # a failure of the case itself is a mismatch
                observed, statuses, detail = f"client error {type(e).__name__}", [], repr(e)
            dt = time.monotonic() - t0
            alive = srv.alive() and still_serving(srv.addr, i)
            ok = observed in case.expect and alive
            results.append(Result(case.name, case.category, case.server, case.sent,
                                  " or ".join(case.expect), observed, alive, ok, round(dt, 3),
                                  detail, statuses))
            if not ok:
                print(f"MISMATCH {case.name}: expected {case.expect}, observed {observed!r}, "
                      f"still serving {alive}", file=sys.stderr)
    finally:
        for key, srv in servers.items():
            rc = srv.stop()
            err = srv.stderr
            bad = [ln for ln in err.splitlines()
                   if ln.startswith(("ERROR", "CRITICAL")) or "Traceback" in ln]
            if rc not in (0, None) or bad:
                results.append(Result(f"server-{key}-exit", "server", key, "SIGINT at the end",
                                      "exit 0, no ERROR/Traceback in the log",
                                      f"exit {rc}, {len(bad)} error lines", True, False, 0.0,
                                      "\n".join(bad[:5])))
                print(f"server {key}: exit {rc}\n{err[-2000:]}", file=sys.stderr)
    return results


def write_markdown(results: list[Result], path: Path, elapsed: float) -> None:
    n_ok = sum(r.ok for r in results)
    cats = {}
    for r in results:
        cats.setdefault(r.category, []).append(r)
    lines = [
        "# Malformed and abusive input: the matrix",
        "",
        "Generated by `make malformed` (`tests/malformed/matrix.py`); do not edit by hand.",
        "Every case is sent over a real socket to `python -m celeris run raw_app:app`",
        "(`tests/python/apps/raw_app.py`) on one of three servers: `default` (default limits),",
        "`limits` (`--limit-request-line 1024 --limit-request-header-size 4096"
        " --limit-request-fields 100 --limit-request-body 1000`) and `timeouts`",
        "(`--timeout-request-header 1 --timeout-request-body 1 --timeout-keep-alive 1`).",
        "\"Observed\" lists the status of every response on the connection, then how it ended:",
        "`close` (the server closed it), `RST`, or, for cases whose connection must stay open,",
        "a follow-up `GET` served on it. \"Still serving\": a fresh connection got `200` afterwards.",
        "`Host: testserver\\r\\n` is left out of the \"sent\" column.",
        "",
        f"**{len(results)} cases, {n_ok} as expected, {len(results) - n_ok} mismatches** "
        f"({elapsed:.0f} s; {time.strftime('%Y-%m-%d', time.gmtime())}).",
        "",
        "| category | cases | as expected |",
        "|---|---|---|",
    ]
    for cat, rs in cats.items():
        lines.append(f"| {cat} | {len(rs)} | {sum(r.ok for r in rs)} |")
    lines += ["", "| # | case | category | server | sent | expected | observed | still serving | ok |",
              "|---|---|---|---|---|---|---|---|---|"]

    def cell(s: str) -> str:
        return s.replace("|", "\\|").replace("`", "'")

    for i, r in enumerate(results, 1):
        lines.append(f"| {i} | `{r.name}` | {r.category} | {r.server} | `{cell(r.sent)}` | "
                     f"{cell(r.expected)} | {cell(r.observed)} | {'yes' if r.still_serving else '**NO**'} | "
                     f"{'ok' if r.ok else '**MISMATCH**'} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--md", default=str(ROOT / "docs" / "reliability-matrix.md"))
    ap.add_argument("--json", default=str(ROOT / "build" / "malformed.json"))
    ap.add_argument("-k", dest="only", help="only the cases whose name contains this (no .md written)")
    args = ap.parse_args()
    t0 = time.monotonic()
    results = run_matrix(args.only)
    elapsed = time.monotonic() - t0
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({
        "cases": len(results), "ok": sum(r.ok for r in results), "seconds": round(elapsed, 1),
        "results": [asdict(r) for r in results]}, indent=1))
    if not args.only:
        write_markdown(results, Path(args.md), elapsed)
    bad = [r for r in results if not r.ok]
    print(f"malformed matrix: {len(results)} cases, {len(results) - len(bad)} as expected, "
          f"{len(bad)} mismatches ({elapsed:.1f} s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
