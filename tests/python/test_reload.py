"""--reload and SIGHUP: a changed .py file is picked up by fresh workers; the socket
stays open throughout (the supervisor owns it)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import ServerProcess
from rawhttp import get, wait_until

APP_SRC = '''
VERSION = {version!r}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = VERSION.encode()
    await send({{"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]}})
    await send({{"type": "http.response.body", "body": body}})
'''


def write_app(path: Path, version: str) -> None:
    path.write_text(APP_SRC.format(version=version))
    # a later mtime than any earlier write, whatever the filesystem's resolution
    t = time.time() + 2 + len(version)
    os.utime(path, (t, t))


def test_reload_picks_up_a_changed_file(tmp_path):
    app_file = tmp_path / "reload_app.py"
    write_app(app_file, "one")
    srv = ServerProcess("reload_app:app", "--reload", "--reload-dir", str(tmp_path),
                        "--reload-delay", "0.1", app_dir=tmp_path).wait_started()
    try:
        assert get(srv.addr, "/").body == b"one"
        assert "Started reloader process" in srv.stderr and "using inotify" in srv.stderr
        write_app(app_file, "second version")
        srv.wait_for(r"inotify detected changes in '.*reload_app\.py'\. Reloading\.\.\.")
        wait_until(lambda: get(srv.addr, "/").body == b"second version", timeout=20)
        # a broken edit: the old worker keeps serving, the next good edit is picked up
        app_file.write_text("this is not python(\n")
        t = time.time() + 30
        os.utime(app_file, (t, t))
        srv.wait_for(r"failed to start|not ready in time", timeout=20)
        assert get(srv.addr, "/").body == b"second version"
        write_app(app_file, "third version, fixed")
        t = time.time() + 60
        os.utime(app_file, (t, t))
        wait_until(lambda: get(srv.addr, "/").body == b"third version, fixed", timeout=20)
    finally:
        assert srv.stop() == 0
    assert "Stopping reloader process" in srv.stderr


def test_sighup_loads_new_code_in_every_worker(tmp_path):
    import re
    import signal

    app_file = tmp_path / "hup_app.py"
    write_app(app_file, "old code")
    srv = ServerProcess("hup_app:app", "--workers", "2", app_dir=tmp_path).wait_started()
    try:
        wait_until(lambda: srv.stderr.count("Started server process") == 2, timeout=20)
        old = re.findall(r"Started server process \[(\d+)\]", srv.stderr)
        assert get(srv.addr, "/").body == b"old code"
        write_app(app_file, "new code!")
        srv.proc.send_signal(signal.SIGHUP)
        for pid in old:
            srv.wait_for(rf"Finished server process \[{pid}\]", timeout=30)
        # only new workers remain: every answer is the new code
        assert {get(srv.addr, "/", headers=[("Connection", "close")]).body for _ in range(20)} \
            == {b"new code!"}
    finally:
        assert srv.stop() == 0


def _reload_server(tmp_path, *extra, env=None):
    app_file = tmp_path / "reload_app.py"
    write_app(app_file, "one")
    srv = ServerProcess("reload_app:app", "--reload", "--reload-dir", str(tmp_path),
                        "--reload-delay", "0.1", *extra, app_dir=tmp_path, env=env).wait_started()
    assert get(srv.addr, "/").body == b"one"
    return app_file, srv


def test_stat_fallback_forced_by_env(tmp_path):
    app_file, srv = _reload_server(tmp_path, env={"CELERIS_RELOAD": "stat"})
    try:
        assert "using StatReload" in srv.stderr
        write_app(app_file, "two")
        srv.wait_for(r"StatReload detected changes in '.*reload_app\.py'\. Reloading\.\.\.")
        wait_until(lambda: get(srv.addr, "/").body == b"two", timeout=20)
    finally:
        assert srv.stop() == 0


def test_inotify_new_subdirectory_and_atomic_save(tmp_path):
    app_file, srv = _reload_server(tmp_path)
    try:
        assert "using inotify" in srv.stderr
        sub = tmp_path / "pkg" / "deeper"
        sub.mkdir(parents=True)
        time.sleep(0.5)
        (sub / "mod.py").write_text("X = 1\n")
        srv.wait_for(r"inotify detected changes in '.*mod\.py'")
        time.sleep(1.0)
        (sub / "mod.py").write_text("X = 2\n")         # a watch was added for the new directory
        wait_until(lambda: srv.stderr.count("mod.py'") >= 2, timeout=20)
        # editor-style save: write a temporary file, rename it over the app
        tmp = tmp_path / ".reload_app.py.swp.tmp"
        tmp.write_text(APP_SRC.format(version="atomic"))
        os.rename(tmp, app_file)
        wait_until(lambda: get(srv.addr, "/").body == b"atomic", timeout=20)
    finally:
        assert srv.stop() == 0


def test_reload_exclude_and_include(tmp_path):
    (tmp_path / "skipme.py").write_text("A = 1\n")
    (tmp_path / "page.html").write_text("<p>1</p>\n")
    app_file, srv = _reload_server(tmp_path, "--reload-exclude", "skipme.py",
                                   "--reload-include", "*.html")
    try:
        (tmp_path / "skipme.py").write_text("A = 2\n")
        time.sleep(3)
        assert "detected changes" not in srv.stderr
        assert get(srv.addr, "/").body == b"one"
        (tmp_path / "page.html").write_text("<p>2</p>\n")
        srv.wait_for(r"inotify detected changes in '.*page\.html'\. Reloading\.\.\.")
        wait_until(lambda: srv.stderr.count("Started server process") >= 2, timeout=20)
        assert "skipme" not in srv.stderr
    finally:
        assert srv.stop() == 0
