"""Server memory under large payloads: peak RSS growth, no throughput.

Scenarios, each against Celeris and uvicorn (`python -m uvicorn`, its
defaults) serving bench/apps/mem_app.py:

  download     GET a 1 GB file (FileResponse); the client reads it all
  upload       POST 100 MB, streamed by the app through request.stream() into sha256
  upload-form  POST 100 MB as multipart/form-data; the app reads the UploadFile into sha256
  upload-form-size  the same body to an endpoint that only returns the UploadFile's size:
               the time is the upload's own (parse + spool), the ratio issue 5 asks about

For each, the server's peak RSS during the transfer minus its RSS just
before it (after a small warm-up request to the same endpoint, so lazy
imports do not count).  The peak is the kernel's VmHWM, reset before each
scenario through /proc/PID/clear_refs ("5"), with a 5 ms VmRSS sampler as a
cross-check (the larger of the two is reported).  The client checks every
byte (length and sha256) so a server cannot look lean by dropping data.

Celeris runs from this checkout when it has an in-place build (python/ is
then put first on PYTHONPATH), else the installed package (`make install`).  The 1 GB file is made under /tmp and
deleted afterwards.

    python bench/mem.py                     # writes bench/results/mem.json and mem.md
    python bench/mem.py --servers celeris --scenarios download
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MiB = 1024 * 1024
SCENARIOS = ("download", "upload", "upload-form", "upload-form-size")
SERVERS = ("celeris", "uvicorn")


def server_cmd(name: str, port: int) -> list[str]:
    if name == "celeris":
        return [sys.executable, "-m", "celeris", "run", "mem_app:app", "--app-dir", str(HERE / "apps"),
                "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    return [sys.executable, "-m", "uvicorn", "mem_app:app", "--app-dir", str(HERE / "apps"),
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        env = dict(os.environ)
        if list((REPO / "python" / "celeris").glob("_celeris*.so")):
            # an in-place build (python setup.py build_ext --inplace) is what is measured
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "python"), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(server_cmd(name, self.port), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 30
        while True:
            try:
                status, _, body = request("GET", self.port, "/pid")
                if status == 200:
                    self.pid = json.loads(body)["pid"]
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"{name} did not start")
            time.sleep(0.1)

    def status(self) -> dict[str, int]:
        with open(f"/proc/{self.pid}/status") as f:
            text = f.read()
        return {k: int(re.search(rf"{k}:\s+(\d+) kB", text).group(1)) for k in ("VmRSS", "VmHWM")}

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads; in
        clock ticks, so 0.01 s steps -- wall seconds are kept to 1 ms)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def reset_peak(self) -> bool:
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Sampler(threading.Thread):
    """Polls VmRSS every 5 ms; keeps the maximum."""

    def __init__(self, server: Server) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.peak = max(self.peak, self.server.status()["VmRSS"])
            except (OSError, AttributeError):
                return
            time.sleep(0.005)


# ---- a minimal HTTP/1.1 client over a socket (bytes are streamed, never held) ----

def read_head(f) -> tuple[int, dict]:
    line = f.readline()
    status = int(line.split()[1])
    headers = {}
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


def read_body(f, headers: dict, sink) -> None:
    if headers.get("transfer-encoding") == "chunked":
        while True:
            n = int(f.readline().split(b";")[0], 16)
            if n == 0:
                f.readline()
                return
            left = n
            while left:
                part = f.read(min(left, MiB))
                if not part:
                    raise ConnectionError("closed mid-chunk")
                sink(part)
                left -= len(part)
            f.read(2)
    left = int(headers.get("content-length", "0"))
    while left:
        part = f.read(min(left, MiB))
        if not part:
            raise ConnectionError(f"closed with {left} bytes missing")
        sink(part)
        left -= len(part)


def request(method: str, port: int, target: str, headers: dict | None = None, body_parts=(),
            sink=None) -> tuple[int, dict, bytes]:
    """One request on a fresh connection; body_parts is an iterable of bytes
    (Content-Length must be in headers when it is not empty)."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        head = f"{method} {target} HTTP/1.1\r\nHost: bench\r\n"
        for k, v in (headers or {}).items():
            head += f"{k}: {v}\r\n"
        s.sendall((head + "\r\n").encode("latin-1"))
        for part in body_parts:
            s.sendall(part)
        f = s.makefile("rb", buffering=MiB)
        status, rh = read_head(f)
        collected = bytearray()
        read_body(f, rh, sink or collected.extend)
        return status, rh, bytes(collected)


# ---- payloads ----

def pattern_block(seed: int) -> bytes:
    return hashlib.sha256(str(seed).encode()).digest() * (MiB // 32)


def make_file(path: str, size: int) -> str:
    h = hashlib.sha256()
    block = pattern_block(1)
    with open(path, "wb") as f:
        left = size
        while left:
            part = block[: min(left, len(block))]
            f.write(part)
            h.update(part)
            left -= len(part)
    return h.hexdigest()


def upload_parts(size: int):
    block = pattern_block(2)
    left = size
    while left:
        part = block[: min(left, len(block))]
        yield part
        left -= len(part)


def upload_digest(size: int) -> str:
    h = hashlib.sha256()
    for part in upload_parts(size):
        h.update(part)
    return h.hexdigest()


# ---- scenarios: each returns a check string ("ok" or what went wrong) ----

def run_download(srv: Server, args, ctx) -> str:
    h = hashlib.sha256()
    n = [0]

    def sink(part: bytes) -> None:
        h.update(part)
        n[0] += len(part)

    status, _, _ = request("GET", srv.port, "/download?path=" + quote(ctx["file"]), sink=sink)
    if status != 200 or n[0] != args.file_mb * MiB or h.hexdigest() != ctx["file_sha"]:
        return f"bad download: status {status}, {n[0]} bytes"
    return "ok"


def run_upload(srv: Server, args, ctx) -> str:
    size = args.upload_mb * MiB
    status, _, body = request("POST", srv.port, "/upload-stream",
                              {"Content-Length": str(size), "Content-Type": "application/octet-stream"},
                              upload_parts(size))
    r = json.loads(body) if status == 200 else {}
    if r.get("size") != size or r.get("sha256") != ctx["upload_sha"]:
        return f"bad upload: status {status}, {body[:200]!r}"
    return "ok"


def run_upload_form(srv: Server, args, ctx, target: str = "/upload-form") -> str:
    size = args.upload_mb * MiB
    boundary = "----celerisbench7d2f"
    pre = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
           f"Content-Type: application/octet-stream\r\n\r\n").encode()
    post = f"\r\n--{boundary}--\r\n".encode()

    def parts():
        yield pre
        yield from upload_parts(size)
        yield post

    status, _, body = request("POST", srv.port, target,
                              {"Content-Length": str(len(pre) + size + len(post)),
                               "Content-Type": f"multipart/form-data; boundary={boundary}"},
                              parts())
    r = json.loads(body) if status == 200 else {}
    if r.get("size") != size or (target == "/upload-form" and r.get("sha256") != ctx["upload_sha"]):
        return f"bad form upload: status {status}, {body[:200]!r}"
    return "ok"


def run_upload_form_size(srv: Server, args, ctx) -> str:
    return run_upload_form(srv, args, ctx, "/upload-form-size")


RUNNERS = {"download": run_download, "upload": run_upload, "upload-form": run_upload_form,
           "upload-form-size": run_upload_form_size}


def warm_up(srv: Server, scenario: str, ctx) -> None:
    """The same endpoint with a small payload: imports and caches load now."""
    if scenario == "download":
        request("GET", srv.port, "/download?path=" + quote(ctx["small"]))
    elif scenario == "upload":
        request("POST", srv.port, "/upload-stream", {"Content-Length": "3"}, [b"abc"])
    else:
        b = "w"
        body = (f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc\r\n"
                f"--{b}--\r\n").encode()
        request("POST", srv.port, "/upload-form-size" if scenario == "upload-form-size" else "/upload-form",
                {"Content-Length": str(len(body)), "Content-Type": f"multipart/form-data; boundary={b}"},
                [body])


def measure(srv: Server, scenario: str, args, ctx) -> dict:
    warm_up(srv, scenario, ctx)
    time.sleep(0.3)
    idle = srv.status()["VmRSS"]
    hwm_ok = srv.reset_peak()
    sampler = Sampler(srv)
    sampler.start()
    cpu0 = srv.cpu_seconds()
    t0 = time.monotonic()
    check = RUNNERS[scenario](srv, args, ctx)
    elapsed = time.monotonic() - t0
    cpu = srv.cpu_seconds() - cpu0
    sampler.stopped.set()
    sampler.join()
    st = srv.status()
    peak = max(sampler.peak, st["VmHWM"] if hwm_ok else 0, st["VmRSS"])
    return {"idle_rss_kib": idle, "peak_rss_kib": peak, "growth_kib": peak - idle,
            "after_rss_kib": st["VmRSS"], "seconds": round(elapsed, 3),
            "cpu_seconds": round(cpu, 2), "check": check,
            "peak_source": "VmHWM+sampler" if hwm_ok else "sampler"}


def median_run(runs: list[dict]) -> dict:
    """The run with the median time, with the largest growth of all runs
    and every run's seconds (`--repeat`)."""
    r = dict(sorted(runs, key=lambda x: x["seconds"])[len(runs) // 2])
    r["growth_kib"] = max(x["growth_kib"] for x in runs)
    r["peak_rss_kib"] = max(x["peak_rss_kib"] for x in runs)
    r["all_seconds"] = [x["seconds"] for x in runs]
    r["all_cpu_seconds"] = [x["cpu_seconds"] for x in runs]
    r["cpu_seconds"] = sorted(r["all_cpu_seconds"])[len(runs) // 2]
    bad = [x["check"] for x in runs if x["check"] != "ok"]
    r["check"] = bad[0] if bad else "ok"
    return r


def render_md(results: dict, args) -> str:
    lines = [
        "# Server memory under large payloads (bench/mem.py)",
        "",
        f"Peak RSS growth of the server process over its idle RSS just before each transfer. "
        f"download: a {args.file_mb} MiB FileResponse; upload: {args.upload_mb} MiB through "
        f"`request.stream()`; upload-form: {args.upload_mb} MiB multipart read as an UploadFile. "
        "upload-form-size: the same body to an endpoint that returns the UploadFile's size without "
        "reading it (the upload's own time). "
        "Every byte is checked by the client (length + sha256; size for upload-form-size). Seconds "
        "are wall time on a shared 2-core machine (median of the runs, all runs in parentheses; "
        f"load average at the end {os.getloadavg()[0]:.2f}): indicative only.",
        "",
        "| scenario | server | idle RSS (MiB) | peak RSS (MiB) | growth (MiB) | seconds | server CPU s | check |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for scenario in SCENARIOS:
        for server in SERVERS:
            r = results.get(server, {}).get(scenario)
            if not r:
                continue
            if "error" in r:
                lines.append(f"| {scenario} | {server} | | | | | | {r['error']} |")
                continue
            secs = r["seconds"] if len(r.get("all_seconds", [])) < 2 else \
                f"{r['seconds']} ({', '.join(str(x) for x in r['all_seconds'])})"
            lines.append(f"| {scenario} | {server} | {r['idle_rss_kib'] / 1024:.1f} | "
                         f"{r['peak_rss_kib'] / 1024:.1f} | {r['growth_kib'] / 1024:.1f} | "
                         f"{secs} | {r.get('cpu_seconds', '')} | {r['check']} |")
    ratios = []
    for scenario in SCENARIOS:
        c, u = (results.get(s, {}).get(scenario) or {} for s in SERVERS)
        if c.get("seconds") and u.get("seconds"):
            cpu = ""
            if c.get("cpu_seconds") and u.get("cpu_seconds"):
                cpu = f", server CPU {u['cpu_seconds'] / c['cpu_seconds']:.2f}x"
            ratios.append(f"{scenario}: wall {u['seconds'] / c['seconds']:.2f}x{cpu}")
    if ratios:
        lines += ["", "uvicorn/Celeris ratios of the median wall time and of the median server CPU time "
                  "(higher: Celeris faster; CPU time is the steadier figure on a loaded machine): "
                  + "; ".join(ratios) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default=",".join(SERVERS))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--file-mb", type=int, default=1024)
    ap.add_argument("--upload-mb", type=int, default=100)
    ap.add_argument("--out-dir", default=str(HERE / "results"))
    ap.add_argument("--name", default="mem")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per scenario: the median time and the largest growth are reported")
    args = ap.parse_args()
    servers = [s for s in args.servers.split(",") if s]
    scenarios = [s for s in args.scenarios.split(",") if s]
    tmp = tempfile.mkdtemp(prefix="celeris-mem-", dir="/tmp")
    ctx = {"file": os.path.join(tmp, "big.bin"), "small": os.path.join(tmp, "small.bin")}
    results: dict = {}
    try:
        with open(ctx["small"], "wb") as f:
            f.write(b"small file\n")
        if "download" in scenarios:
            print(f"creating a {args.file_mb} MiB file in {tmp} ...", flush=True)
            ctx["file_sha"] = make_file(ctx["file"], args.file_mb * MiB)
            os.sync()   # its writeback now, not 30 s later in the middle of another scenario
        ctx["upload_sha"] = upload_digest(args.upload_mb * MiB)
        for name in servers:
            results[name] = {}
            try:
                srv = Server(name)
            except RuntimeError as exc:
                for sc in scenarios:
                    results[name][sc] = {"error": str(exc)}
                continue
            try:
                for sc in scenarios:
                    try:
                        runs = [measure(srv, sc, args, ctx) for _ in range(args.repeat)]
                        r = median_run(runs)
                    except (OSError, ValueError, ConnectionError) as exc:
                        r = {"error": f"{type(exc).__name__}: {exc}"}
                    results[name][sc] = r
                    print(f"{name:8} {sc:12} {json.dumps(r)}", flush=True)
            finally:
                srv.stop()
    finally:
        for p in (ctx["file"], ctx["small"]):
            if os.path.exists(p):
                os.unlink(p)
        os.rmdir(tmp)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"file_mb": args.file_mb, "upload_mb": args.upload_mb, "python": sys.version.split()[0],
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "repeat": args.repeat,
            "loadavg": os.getloadavg()}
    (out / f"{args.name}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    md = render_md(results, args)
    (out / f"{args.name}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
