"""Instructions per request of a Celeris server, counted by callgrind.

Wall-clock figures on this 2-core machine move with whatever else runs;
callgrind counts the server's user-space instructions, which do not.  The
server (`python -m celeris run APP`) runs under
`valgrind --tool=callgrind --instr-atstart=no`; this script warms it up,
switches collection on (`callgrind_control -i on`), sends N keep-alive
requests over one connection, switches it off, dumps, and divides the total
by N.  The client is this process, outside valgrind, so none of its work is
counted.

    python3 bench/instructions.py /plain /chain            # bench/apps/fastapi_app.py
    python3 bench/instructions.py --app fastapi_mw:app /mw -H "Origin: http://example.com"
    python3 bench/instructions.py --json out.json /plain
    python3 bench/instructions.py --pipeline 16 /plain     # 16 requests per write

Each path is measured in turn on the same server; output: one line per path
(instructions per request) and, with --json, the figures as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def _request(path: str, method: str, headers: list[str], body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: bench"] + headers
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _read_response(sock: socket.socket, buf: bytearray) -> None:
    """Reads one response with a Content-Length body (the benchmark apps')."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end]).decode("latin-1")
            m = re.search(r"(?im)^content-length:\s*(\d+)", head)
            if not head.startswith("HTTP/1.1 2"):
                raise SystemExit(f"unexpected answer: {head.splitlines()[0]!r}")
            need = end + 4 + (int(m.group(1)) if m else 0)
            if len(buf) >= need:
                del buf[:need]
                return
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("server closed the connection")
        buf += chunk


def _send_many(port: int, raw: bytes, n: int, depth: int = 1) -> None:
    """n requests over one connection, `depth` of them per write (pipelining)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        buf = bytearray()
        for _ in range(n // depth):
            sock.sendall(raw * depth)
            for _ in range(depth):
                _read_response(sock, buf)


def _ctl(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _total(out_dir: Path, before: set) -> int:
    """Sum of the events of the dumps written since `before`."""
    total = 0
    for f in sorted(set(out_dir.glob("callgrind.out*")) - before):
        for line in f.read_text(errors="replace").splitlines():
            if line.startswith("totals:"):
                total += int(line.split()[1])
                break
    return total


def start_server(app: str, extra: list[str], prefix: str) -> tuple[subprocess.Popen, int, Path]:
    """`python -m celeris run APP` under callgrind (collection off), on a free
    port; returns (process, port, callgrind output dir) once it accepts."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    port_sock = socket.socket()
    port_sock.bind(("127.0.0.1", 0))
    port = port_sock.getsockname()[1]
    port_sock.close()
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
           f"--callgrind-out-file={tmp}/callgrind.out.%p",
           sys.executable, "-m", "celeris", "run", app, "--app-dir", str(BENCH_DIR / "apps"),
           "--host", "127.0.0.1", "--port", str(port), "--no-access-log", *extra]
    env = dict(os.environ, PYTHONMALLOC=os.environ.get("PYTHONMALLOC", "pymalloc"))
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 180
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server, port, tmp
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise SystemExit("server did not start:\n" + server.stderr.read().decode())
            time.sleep(0.5)


def count(server: subprocess.Popen, tmp: Path, work) -> int:
    """Instructions the server spends while work() runs (collection on only then)."""
    before = set(tmp.glob("callgrind.out*"))
    _ctl(server.pid, "-z")
    _ctl(server.pid, "-i", "on")
    work()
    _ctl(server.pid, "-i", "off")
    _ctl(server.pid, "-d")
    time.sleep(0.5)
    return _total(tmp, before)


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+")
    p.add_argument("--app", default="fastapi_app:app", help="APP in bench/apps (fastapi_app:app)")
    p.add_argument("-n", "--requests", type=int, default=2000, help="requests counted per path (2000)")
    p.add_argument("--warmup", type=int, default=300, help="requests before counting (300)")
    p.add_argument("-X", "--method", default="GET")
    p.add_argument("-H", "--header", action="append", default=[])
    p.add_argument("-d", "--data", default="", help="request body (sets Content-Length)")
    p.add_argument("--pipeline", type=int, default=1, metavar="K",
                   help="K requests per write, K responses read back (1); -n is rounded down to a multiple")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--celeris-args", default="", help="extra `celeris run` arguments")
    args = p.parse_args(argv)

    server, port, tmp = start_server(args.app, args.celeris_args.split(), "celeris-callgrind-")
    results = {}
    try:
        body = args.data.encode()
        for path in args.paths:
            raw = _request(path, args.method, args.header, body)
            _send_many(port, raw, args.warmup, args.pipeline)
            total = count(server, tmp, lambda: _send_many(port, raw, args.requests, args.pipeline))
            per = total / (args.requests // args.pipeline * args.pipeline)
            results[path] = round(per)
            print(f"{args.method} {path}: {per:,.0f} instructions per request")
    finally:
        stop_server(server)
    if args.json:
        args.json.write_text(json.dumps({"app": args.app, "requests": args.requests,
                                         "instructions_per_request": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
