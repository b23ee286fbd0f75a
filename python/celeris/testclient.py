"""A TestClient that runs every request through the C core.

API-compatible with starlette.testclient.TestClient (it subclasses it:
lifespan via `with`, cookies, redirects, base_url, root_path and
raise_server_exceptions behave the same).  Each HTTP request is serialised to
HTTP/1.1 bytes and fed through the core's parser, connection state machine
and dispatcher on an in-memory connection -- the production path without a
socket -- and the response is parsed from the bytes the core wrote.

WebSocket sessions (websocket_connect) run through the core too: the
handshake and every frame go over an in-memory connection (see
_ws_testclient.py).  The trio backend still uses Starlette's own transport;
`stats` counts both paths.
"""
from __future__ import annotations

import asyncio
import contextvars
import types
from typing import Any

from starlette import testclient as _st

# The HTTP client library Starlette's TestClient is built on (httpx2 when
# installed with newer Starlette, else httpx): responses must be its types.
httpx = _st.httpx

from celeris import _celeris
from celeris.server import task_factory
from celeris._http_client import ResponseParser, serialize_request
from celeris._ws_testclient import CoreWebSocketSession
from celeris.extensions import pathsend_allowed
from celeris.logs import logger

__all__ = ["TestClient", "stats"]

#: Requests served: "core" (through the C core; of which "native" HTTP
#: requests on the native tier, "websocket" WebSocket sessions -- of those
#: "websocket_native" run by the native WebSocket dispatcher -- and the rest
#: HTTP requests on the ASGI tier), "fallback" (Starlette's own transport: the
#: trio backend) and "native_build_errors" (apps whose native tier failed to
#: build: served on the ASGI tier instead, as `celeris run` does).
stats: dict[str, int] = {"core": 0, "native": 0, "websocket": 0, "websocket_native": 0,
                         "fallback": 0, "native_build_errors": 0}


_exchange: contextvars.ContextVar["_Exchange | None"] = contextvars.ContextVar(
    "celeris_testclient_exchange", default=None)


def _native_runtime() -> Any:
    """celeris.native.runtime, except that an unhandled exception is handed to
    the test (raise_server_exceptions) instead of being logged."""
    from celeris.native import runtime

    ns = types.SimpleNamespace(**{k: getattr(runtime, k) for k in dir(runtime) if not k.startswith("__")})

    def server_error(exc: BaseException) -> Any:
        ex = _exchange.get()
        if ex is not None:
            ex.exc = exc
        return runtime.PlainTextResponse("Internal Server Error", status_code=500)

    ns.server_error = server_error
    return ns


class _Exchange:
    __slots__ = ("done", "exc", "debug", "started", "patch")

    def __init__(self, patch: dict) -> None:
        self.done: asyncio.Future | None = None
        self.exc: BaseException | None = None
        self.debug: Any = None
        self.started = False
        self.patch = patch


class _CelerisTransport(httpx.BaseTransport):
    def __init__(self, app: Any, portal_factory: Any, raise_server_exceptions: bool,
                 root_path: str, *, client: tuple[str, int], app_state: dict,
                 fallback: httpx.BaseTransport, backend: str, native: bool = True) -> None:
        self.app = app
        self.portal_factory = portal_factory
        self.raise_server_exceptions = raise_server_exceptions
        self.root_path = root_path
        self.client = client
        self.app_state = app_state
        self.fallback = fallback
        self.backend = backend
        self._current: _Exchange | None = None
        self.native = native
        self._native_key: Any = None
        self._native_app: Any = None
        self._refresh: Any = None

    def _native_for_app(self) -> Any:
        """The compiled native tier, rebuilt when the route table changes."""
        if not self.native:
            return None
        from celeris import native

        key = native.routes_key(self.app)
        if key != self._native_key:

            self._native_key = key
            try:
                self._native_app, compiled = native.build(self.app, runtime=_native_runtime())
            except Exception as exc:
                # As the server does: the app is served, all of it on the ASGI tier.
                stats["native_build_errors"] += 1
                logger.warning("Native tier disabled, every route is served on the ASGI tier "
                               "(building it failed: %s: %s)", type(exc).__name__, exc)
                self._native_app = None
            self._refresh = None
            if self._native_app is not None:
                self._refresh = native.telemetry_refresher(self._native_app, compiled)
        if self._refresh is not None:
            # FastAPI checks its telemetry switch on every request (the
            # server checks once a second): so does the TestClient.
            self._refresh()
        return self._native_app

    def close(self) -> None:
        self.fallback.close()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        if self.backend != "asyncio":
            stats["fallback"] += 1
            return self.fallback.handle_request(request)
        host = request.url.raw_host.decode("ascii")
        port = request.url.port or {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(scheme, 80)
        if scheme in ("ws", "wss"):
            stats["core"] += 1
            stats["websocket"] += 1
            patch = {"scheme": scheme, "root_path": self.root_path}
            raise _st._Upgrade(CoreWebSocketSession(self, request, patch, [host, port]))
        raw = serialize_request(request)
        patch = {
            "scheme": scheme,
            "root_path": self.root_path,
            # Starlette's TestClient offers http.response.debug; the core adds
            # path-send (FileResponse is sent by the core, as in production).
            "extensions": ({"http.response.debug": {}, "http.response.pathsend": {}}
                           if pathsend_allowed(self.app) else {"http.response.debug": {}}),
        }
        ex = _Exchange(patch)
        with self.portal_factory() as portal:
            status, headers, body = portal.call(self._roundtrip, raw, ex, [host, port],
                                                request.method == "HEAD")
        stats["core"] += 1
        if ex.exc is not None and self.raise_server_exceptions:
            raise ex.exc
        if not ex.started:
            if self.raise_server_exceptions:
                raise AssertionError("TestClient did not receive any response.")
            return httpx.Response(500, headers=[], stream=httpx.ByteStream(b""), request=request)
        response = httpx.Response(status, headers=headers, stream=httpx.ByteStream(bytes(body)),
                                  request=request)
        if ex.debug is not None:
            response.extensions["http.response.debug"] = ex.debug
            if "template" in ex.debug:
                response.template = ex.debug["template"]  # type: ignore[attr-defined]
            if "context" in ex.debug:
                response.context = ex.debug["context"]  # type: ignore[attr-defined]
        return response

    async def _run(self, scope: dict, cycle: Any, ex: _Exchange) -> None:
        core_send = cycle.send

        async def send(message: dict) -> None:
            if message["type"] == "http.response.debug":
                ex.debug = message["info"]
                return
            await core_send(message)

        try:
            try:
                await self.app(scope, cycle.receive, send)
            except BaseException as exc:
                ex.exc = exc
            ex.started = cycle.response_started
            if ex.exc is not None or not cycle.response_started:
                cycle.app_failed()
            elif not cycle.response_complete:
                cycle.abort()
        finally:
            cycle.finish()
            if ex.done is not None and not ex.done.done():
                ex.done.set_result(None)

    async def _roundtrip(self, raw: bytes, ex: _Exchange, server_addr: list,
                         head: bool) -> tuple[int, list, bytearray]:
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()

        def handler(scope: dict, cycle: Any) -> Any:
            current = self._current
            assert current is not None, "request dispatched outside a TestClient exchange"
            scope.update(current.patch)
            current.done = loop.create_future()
            return self._run(scope, cycle, current)

        native_app = self._native_for_app()
        before = native_app.stats()["native"] if native_app is not None else 0
        def debug_sink(info: Any) -> None:
            ex.debug = info

        core = _celeris.Server(handler, loop, state=self.app_state, date_header=False,
                               server_header=False, native=native_app, scope_patch=ex.patch,
                               debug_sink=debug_sink, task_factory=task_factory(loop))
        conn = core.memory_conn(client=self.client, server=server_addr, on_output=ready.set)
        parser = ResponseParser(head)
        token = _exchange.set(ex)
        try:
            self._current = ex
            try:
                conn.feed(raw)
            finally:
                self._current = None
                _exchange.reset(token)
            while True:
                parser.feed(conn.take())
                if parser.complete:
                    break
                if conn.closed:
                    parser.feed(conn.take())
                    parser.feed_eof()
                    break
                if conn.pending:
                    continue    # taking output refilled it (a file body is being read)
                if ex.done is not None and ex.done.done() and not conn.pending:
                    # The app finished; whatever the core wrote is all there is.
                    parser.feed_eof()
                    break
                ready.clear()
                waiters: list = [asyncio.ensure_future(ready.wait())]
                if ex.done is not None and not ex.done.done():
                    waiters.append(ex.done)
                _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                for w in pending:
                    if w is not ex.done:
                        w.cancel()
            if ex.done is not None:
                await ex.done   # background tasks run to completion, as with Starlette's
            else:
                ex.started = parser.status is not None     # served by the native tier
            spins = 0
            while core.live_requests:   # native-tier tasks (and their background work)
                spins += 1
                await asyncio.sleep(0 if spins < 100 else 0.001)
        finally:
            conn.close()
            core.close()
            if native_app is not None:
                stats["native"] += native_app.stats()["native"] - before
        return parser.status or 500, parser.headers, parser.body


class TestClient(_st.TestClient):
    """starlette.testclient.TestClient, with requests served by the C core."""

    __test__ = False

    def __init__(self, app: Any, base_url: str = "http://testserver",
                 raise_server_exceptions: bool = True, root_path: str = "",
                 backend: str = "asyncio", backend_options: dict | None = None,
                 cookies: Any = None, headers: dict[str, str] | None = None,
                 follow_redirects: bool = True,
                 client: tuple[str, int] = ("testclient", 50000), native: bool = True) -> None:
        super().__init__(app, base_url=base_url, raise_server_exceptions=raise_server_exceptions,
                         root_path=root_path, backend=backend,  # type: ignore[arg-type]
                         backend_options=backend_options, cookies=cookies, headers=headers,
                         follow_redirects=follow_redirects, client=client)
        self._transport = _CelerisTransport(
            self.app, self._portal_factory, raise_server_exceptions, root_path,
            client=client, app_state=self.app_state, fallback=self._transport, backend=backend,
            native=native)
