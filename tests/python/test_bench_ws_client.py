"""bench/ws_load.c, the WebSocket echo load client of bench/run.py, compiles and runs against a
Celeris echo server.  No timing assertions: it only must not rot."""
import json
import subprocess
from pathlib import Path

from conftest import start_server

ROOT = Path(__file__).resolve().parents[2]


def test_ws_load_c(tmp_path):
    exe = tmp_path / "ws_load"
    subprocess.run(["gcc", "-O2", "-std=c11", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                    str(ROOT / "bench" / "ws_load.c")], check=True)
    srv = start_server("ws_echo_app:app")
    try:
        host, port, _ = srv
        out = subprocess.run([str(exe), "--host", host, "--port", str(port), "--path", "/ws",
                              "--connections", "2", "--duration", "1", "--warmup", "0.2"],
                             capture_output=True, text=True, timeout=30, check=True)
    finally:
        srv.stop()
    res = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("msgs", "seconds", "msgs_per_s", "errors", "connections", "p50_ms", "p99_ms",
                "avg_ms"):
        assert key in res, (key, res)
    assert res["msgs"] > 0, out.stderr
    assert res["errors"] == 0, out.stderr
    assert res["connections"] == 2
