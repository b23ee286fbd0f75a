"""The command line: help, errors, logging flags, entry points."""
import re
import shutil
import socket
import subprocess
import sys

import pytest

from conftest import APPS_DIR, run_celeris, start_server, subprocess_env
from rawhttp import Conn, get


def run_cli(*args, timeout=30):
    return run_celeris(*args, timeout=timeout, cwd=str(APPS_DIR.parent))


def test_help():
    p = run_cli("--help")
    assert p.returncode == 0
    assert "run" in p.stdout


def test_run_help_mentions_flags():
    p = run_cli("run", "--help")
    assert p.returncode == 0
    for flag in ["--host", "--port", "--uds", "--fd", "--app-dir", "--factory", "--root-path",
                 "--log-level", "--access-log", "--no-access-log", "--timeout-keep-alive",
                 "--timeout-request-header", "--timeout-request-body", "--backlog",
                 "--server-header", "--no-server-header", "--date-header", "--no-date-header",
                 "--lifespan", "--limit-request-line", "--limit-request-header-size",
                 "--limit-request-fields", "--limit-request-body"]:
        assert flag in p.stdout, flag


def test_console_script_entry_point():
    exe = shutil.which("celeris")
    assert exe, "the 'celeris' console script is not installed"
    p = subprocess.run([exe, "run", "--help"], capture_output=True, text=True, timeout=30,
                       env=subprocess_env(), stdin=subprocess.DEVNULL)
    assert p.returncode == 0
    assert "--limit-request-body" in p.stdout


def test_missing_module_one_line_no_traceback():
    p = run_cli("run", "no_such_module_celeris_test:app", "--port", "0", "--app-dir", str(APPS_DIR))
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if "Could not import module" in ln]
    assert len(lines) == 1, p.stderr
    assert 'no_such_module_celeris_test' in lines[0]
    assert "Traceback" not in p.stderr
    assert "Celeris running on" not in p.stderr


def test_missing_attribute():
    p = run_cli("run", "raw_app:no_such_attr", "--port", "0", "--app-dir", str(APPS_DIR))
    assert p.returncode != 0
    assert 'Attribute "no_such_attr" not found in module "raw_app"' in p.stderr
    assert "Traceback" not in p.stderr


def test_bad_import_string():
    p = run_cli("run", "raw_app", "--port", "0", "--app-dir", str(APPS_DIR))
    assert p.returncode != 0
    assert "Traceback" not in p.stderr


def test_port_in_use():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = run_cli("run", "raw_app:app", "--host", "127.0.0.1", "--port", str(port),
                    "--app-dir", str(APPS_DIR))
    assert p.returncode != 0
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("ERROR:")]
    assert len(errors) == 1, p.stderr
    assert "address already in use" in errors[0].lower()
    assert str(port) in errors[0]
    assert "Traceback" not in p.stderr
    assert "Celeris running on" not in p.stderr


@pytest.mark.parametrize("args", [
    ["run", "raw_app:app", "--no-such-flag"],
    ["run", "raw_app:app", "--port", "not-a-number"],
    ["run", "raw_app:app", "--lifespan", "sometimes"],
    ["run"],
    ["frobnicate"],
])
def test_bad_arguments(args):
    p = run_cli(*args)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr


def test_python_m_celeris_run_serves():
    # the fixture servers all run `python -m celeris run`; check one explicitly
    srv = start_server("raw_app:app")
    try:
        assert srv.cmd[:3] == [sys.executable, "-m", "celeris"]
        assert get(srv.addr, "/id?n=1").body == b"1"
        assert re.search(r"INFO:     Celeris running on http://127\.0\.0\.1:\d+ \(Press CTRL\+C to quit\)",
                         srv.stderr)
    finally:
        assert srv.stop() == 0


def test_access_log_format(raw_server):
    with Conn(raw_server.addr) as c:
        port = c.sock.getsockname()[1]
        c.request("GET", "/id?n=access&x=%20y")
        c.request("POST", "/echo", body=b"abc")
        c.request("GET", "/status?code=404")
    raw_server.wait_for(
        re.escape(f'INFO:     127.0.0.1:{port} - "GET /id?n=access&x=%20y HTTP/1.1" 200 OK'),
        stream="stdout")
    raw_server.wait_for(
        re.escape(f'INFO:     127.0.0.1:{port} - "POST /echo HTTP/1.1" 200 OK'), stream="stdout")
    raw_server.wait_for(
        re.escape(f'INFO:     127.0.0.1:{port} - "GET /status?code=404 HTTP/1.1" 404 Not Found'),
        stream="stdout")
    # access lines go to stdout only
    assert f"127.0.0.1:{port} - " not in raw_server.stderr


def test_access_log_http10_and_quoted_path(raw_server):
    with Conn(raw_server.addr) as c:
        port = c.sock.getsockname()[1]
        c.request("GET", "/scope/a%20b", version="1.0", host=None)
    raw_server.wait_for(
        re.escape(f'INFO:     127.0.0.1:{port} - "GET /scope/a%20b HTTP/1.0" 200 OK'),
        stream="stdout")


def test_no_access_log(quiet_server):
    with Conn(quiet_server.addr) as c:
        port = c.sock.getsockname()[1]
        assert c.request("GET", "/id?n=quiet").body == b"quiet"
        assert c.request("GET", "/status?code=404").status == 404
    # the request is finished; nothing was logged for it (and nothing at all on stdout)
    r = get(quiet_server.addr, "/id?n=2")
    assert r.status == 200
    assert f"127.0.0.1:{port}" not in quiet_server.stdout
    assert '"GET /' not in quiet_server.stdout
    assert '"GET /' not in quiet_server.stderr

