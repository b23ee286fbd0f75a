"""Fixtures for the Celeris HTTP server tests.

Each server is a real `python -m celeris run` subprocess serving an app from
tests/python/apps/ (via --app-dir) on a port chosen by the kernel (--port 0),
read back from the startup line "Celeris running on http://HOST:PORT".
Servers are module-scoped where the configuration allows it, so a test module
pays for one startup.  stdout/stderr are captured continuously by reader
threads and exposed for assertions.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
APPS_DIR = HERE / "apps"
STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0
RUNNING_RE = re.compile(r"Celeris running on http://(\[[^\]]+\]|[^:\s]+):(\d+)")

# Make the helper module importable from the test modules regardless of
# pytest's import mode.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

# celeris.testclient imports starlette.testclient, whose first import warns
# (StarletteDeprecationWarning about httpx).  Imported here, quietly, before
# any test module is: the test modules import it plainly.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from celeris import testclient as tc


def celeris_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "celeris", *args]


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    # PYTHONPATH is kept: the ASan run (make pytest-asan) and in-place builds
    # point it at the extension under test, and servers must load that one.
    return env


def run_celeris(*args: str, timeout: float = 30, cwd: str | None = None) -> subprocess.CompletedProcess:
    """`python -m celeris ARGS` in the foreground, to its exit, output captured as text."""
    return subprocess.run(celeris_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          env=subprocess_env(), stdin=subprocess.DEVNULL, cwd=cwd)


class _Pump(threading.Thread):
    """Copies one pipe into a list of lines, forever, so the child never blocks."""

    def __init__(self, stream, sink: list[str], cond: threading.Condition) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.sink = sink
        self.cond = cond

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            with self.cond:
                self.sink.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()


class ServerProcess:
    """A running `celeris run` subprocess."""

    def __init__(self, app: str, *args: str, app_dir: Path = APPS_DIR,
                 listen: tuple[str, ...] = ("--host", "127.0.0.1", "--port", "0"),
                 pass_fds: tuple[int, ...] = (), cmd: list[str] | None = None,
                 env: dict | None = None) -> None:
        self.app = app
        self.args = list(args)
        self.cmd = cmd or celeris_cmd("run", app, *listen, "--app-dir", str(app_dir), *args)
        self._cwd = tempfile.mkdtemp(prefix="celeris-test-")
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, cwd=self._cwd,
                                     env={**subprocess_env(), **(env or {})}, pass_fds=pass_fds)
        self._cond = threading.Condition()
        self._out: list[str] = []
        self._err: list[str] = []
        self._pumps = [_Pump(self.proc.stdout, self._out, self._cond),
                       _Pump(self.proc.stderr, self._err, self._cond)]
        for p in self._pumps:
            p.start()
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.returncode: int | None = None

    # ---- captured output ----
    @property
    def stdout(self) -> str:
        with self._cond:
            return "".join(self._out)

    @property
    def stderr(self) -> str:
        with self._cond:
            return "".join(self._err)

    def wait_for(self, pattern: str, stream: str = "stderr", timeout: float = 10.0) -> re.Match:
        """Wait until `pattern` (a regex) appears in the captured stream."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        lines = self._err if stream == "stderr" else self._out
        with self._cond:
            while True:
                m = rx.search("".join(lines))
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{pattern!r} not seen on {stream} within {timeout}s.\n"
                        f"--- stdout ---\n{''.join(self._out)}\n--- stderr ---\n{''.join(self._err)}")
                self._cond.wait(min(left, 0.2))

    # ---- lifecycle ----
    def wait_started(self, timeout: float = STARTUP_TIMEOUT) -> "ServerProcess":
        """Wait for the "Celeris running on ..." line; for TCP, take the port from it."""
        deadline = time.monotonic() + timeout
        rx = RUNNING_RE
        with self._cond:
            while True:
                text = "".join(self._err)
                m = rx.search(text)
                if m:
                    self.port = int(m.group(2))
                    return self
                if "Celeris running on " in text and "(Press CTRL+C to quit)" in text:
                    return self         # unix socket / fd: no port
                if self.proc.poll() is not None and not any(p.is_alive() for p in self._pumps):
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
        self.stop()
        raise RuntimeError(f"server {self.cmd} did not start (rc={self.proc.returncode}).\n"
                           f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = SHUTDOWN_TIMEOUT) -> int:
        """SIGINT, wait, then SIGKILL if needed.  Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        for p in self._pumps:
            p.join(timeout=5)
        self.returncode = self.proc.returncode
        return self.returncode

    @property
    def addr(self) -> tuple[str, int]:
        assert self.port is not None
        return (self.host, self.port)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # (host, port, process) unpacking, as the fixtures promise
    def __iter__(self):
        return iter((self.host, self.port, self))


def start_server(app: str, *args: str, env: dict | None = None) -> ServerProcess:
    return ServerProcess(app, *args, env=env).wait_started()


def _server_fixture(name: str, app: str, *args: str):
    @pytest.fixture(scope="module", name=name)
    def fixture():
        srv = start_server(app, *args)
        try:
            yield srv
        finally:
            srv.stop()
    return fixture


@pytest.fixture(scope="module")
def server_factory():
    """Start extra servers within a module; all are stopped at module end."""
    started: list[ServerProcess] = []

    def factory(app: str, *args: str) -> ServerProcess:
        srv = start_server(app, *args)
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()


# The raw ASGI app with default settings (limits default, body unlimited).
raw_server = _server_fixture("raw_server", "raw_app:app")
# Small limits for the 413/414/431 cases.
limits_server = _server_fixture(
    "limits_server", "raw_app:app", "--limit-request-line", "1024", "--limit-request-header-size", "4096",
    "--limit-request-fields", "100", "--limit-request-body", "1000")
# Short timeouts (1 s) for the 408 / idle / stalled-body cases.
timeout_server = _server_fixture(
    "timeout_server", "raw_app:app", "--timeout-keep-alive", "1", "--timeout-request-header", "1",
    "--timeout-request-body", "1")
root_path_server = _server_fixture("root_path_server", "raw_app:app", "--root-path", "/api")
fastapi_server = _server_fixture("fastapi_server", "fastapi_app:app")
quiet_server = _server_fixture("quiet_server", "raw_app:app", "--no-access-log", "--no-server-header",
                               "--no-date-header")


def pytest_collection_modifyitems(config, items):
    """A per-test safety net (pytest-timeout, when installed): no test may hang."""
    try:
        import pytest_timeout  # noqa: F401
    except ImportError:
        return
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(120))


def native_and_asgi_clients(app, *, asgi_app=None, raise_server_exceptions: bool = False, **kw):
    """(TestClient with the native tier, TestClient with native=False) for one
    app -- or, with `asgi_app`, the ASGI-tier client on that other instance of
    it -- server exceptions answered as 500s unless told otherwise, other
    TestClient arguments (follow_redirects, root_path, base_url, ...) passed
    to both: the pair the differential tests compare."""
    kw["raise_server_exceptions"] = raise_server_exceptions
    return (tc.TestClient(app, **kw),
            tc.TestClient(app if asgi_app is None else asgi_app, native=False, **kw))


class TagMiddleware:
    """A pure ASGI middleware of the app's own (not one of the Starlette
    classes the native tier runs in stack mode), marking each HTTP response
    with x-tag: 1: it keeps the whole app on the ASGI tier."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), (b"x-tag", b"1")])
            await send(message)

        await self.app(scope, receive, tagged)


def add_tagging_middleware(app) -> None:
    """Wrap `app` in TagMiddleware (a middleware the native tier does not
    run), marking each response with x-tag: 1."""
    app.add_middleware(TagMiddleware)


def ws_outcome(exc: BaseException, text_limit: int) -> tuple:
    """How a TestClient WebSocket session ended, as comparable data: a
    denial response (starlette's WebSocketDenialResponse), a close (code,
    reason), or another exception's type and text (cut to text_limit)."""
    from starlette.websockets import WebSocketDisconnect
    if hasattr(exc, "status_code"):
        return (type(exc).__name__, exc.status_code, exc.content)
    if isinstance(exc, WebSocketDisconnect):
        return ("closed", exc.code, exc.reason)
    return (type(exc).__name__, str(exc)[:text_limit])


def answer(r) -> tuple:
    """(status, raw headers, body) of a TestClient response: what the
    differential tests compare between the tiers."""
    return r.status_code, r.headers.raw, r.content


def answer_with_events(events: list, client, method: str, url: str, **kw) -> tuple:
    """answer() of one request, then what the app appended to `events`
    (cleared first) while serving it."""
    events.clear()
    return (*answer(client.request(method, url, **kw)), list(events))
