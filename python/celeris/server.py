"""The serving loop: the C core's epoll fd registered with the asyncio loop,
each request run as a real asyncio Task, lifespan, signals and graceful
shutdown."""
from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import random
import signal
import sys
import threading
from typing import Any

from celeris import _celeris, logs

# asyncio.Task accepts any collections.abc.Coroutine: the connection Driver
# (src/binding/driver.c) is one.
import collections.abc as _abc

_abc.Coroutine.register(_celeris.Driver)
from celeris.config import AppLoadError, Config
from celeris.extensions import pathsend_allowed
from celeris.lifespan import Lifespan
from celeris.logs import logger

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def task_factory(loop: Any) -> Any:
    """How request Tasks are created: eagerly started on Python >= 3.12 (the
    first step runs at once, so a handler that never suspends costs no loop
    turn; current_task() and contextvars are those of a real Task), the loop's
    create_task before.  CELERIS_EAGER_TASKS=0 turns eager start off."""
    if sys.version_info >= (3, 12) and os.environ.get("CELERIS_EAGER_TASKS", "1") != "0":
        return functools.partial(asyncio.Task, loop=loop, eager_start=True)
    return None


class Server:
    """One serving process.  on_started() is called once the app's lifespan
    startup is complete and the socket is being served (the supervisor's
    readiness signal); announce=False leaves the "running on" line to the
    supervisor, which owns the socket."""

    def __init__(self, config: Config, on_started: Any = None, announce: bool = True,
                 accept_batch: int = 64) -> None:
        self.config = config
        self.accept_batch = accept_batch
        self.on_started = on_started
        self.announce = announce
        self.should_exit = False
        self.force_exit = False
        self.started = False
        self.core: Any = None
        self.lifespan: Lifespan | None = None
        self.bound_port: int | None = None

    # ---- request path ----

    def _make_handler(self, app: Any):
        """The coroutine function the core starts as a Task for each request."""
        error = logger.error

        async def run_asgi(scope: dict, cycle: Any) -> None:
            try:
                result = await app(scope, cycle.receive, cycle.send)
            except BaseException as exc:
                error("Exception in ASGI application\n", exc_info=exc)
                cycle.app_failed()
                return
            else:
                if result is not None:
                    error("ASGI callable should return None, but returned '%s'.", result)
                    cycle.abort()
                elif not cycle.response_started and not cycle.disconnected:
                    error("ASGI callable returned without starting response.")
                    cycle.app_failed()
                elif not cycle.response_complete and not cycle.disconnected:
                    error("ASGI callable returned without completing response.")
                    cycle.abort()
            finally:
                cycle.finish()

        return run_asgi

    def _ws_app(self, app: Any) -> Any:
        """The app websocket scopes are run with: the native tier's websocket
        dispatcher (celeris.native.websocket) when native is on, falling back
        to the app for anything it does not take."""
        if not self.config.native or os.environ.get("CELERIS_NATIVE_WS", "1") == "0":
            return app
        try:
            from celeris.native.websocket import ws_app

            return ws_app(app)
        except Exception:
            return app

    def _make_ws_handler(self, app: Any):
        """The coroutine function run for each WebSocket handshake (uvicorn's
        run_asgi of its websockets-sansio protocol)."""
        error = logger.error
        client_disconnected = _celeris.ClientDisconnected

        async def run_ws(scope: dict, cycle: Any) -> None:
            try:
                result = await app(scope, cycle.receive, cycle.send)
            except client_disconnected:
                pass
            except BaseException as exc:
                error("Exception in ASGI application\n", exc_info=exc)
                cycle.app_failed()
            else:
                if not cycle.response_started:
                    error("ASGI callable returned without completing handshake.")
                    cycle.app_failed()
                elif result is not None:
                    error("ASGI callable should return None, but returned '%s'.", result)
            finally:
                cycle.ws_finish()
                cycle.finish()

        return run_ws

    # ---- lifecycle ----

    async def serve(self) -> int:
        """Serve until a shutdown signal; returns the process exit code."""
        config = self.config
        loop = asyncio.get_running_loop()
        # Before anything else (as uvicorn's capture_signals): a SIGTERM during
        # app import or lifespan startup then means "shut down once started",
        # with lifespan shutdown, instead of the default action.
        self._install_signal_handlers(loop)
        try:
            app = config.load_app()
        except AppLoadError as exc:
            logger.error("Error loading ASGI app. %s", exc)
            return 1
        logger.info("Started server process [%d]", os.getpid())

        state: dict | None = None
        if config.lifespan != "off":
            self.lifespan = Lifespan(app, config.lifespan)
            await self.lifespan.startup()
            if self.lifespan.should_exit:
                return 3
            state = self.lifespan.state
        else:
            state = {}

        native_app = None
        self._refresh_native = None
        if config.native:
            from celeris import native

            try:
                native_app, compiled = native.build(app)
            except Exception as exc:
                # The native tier only speeds routes up: an app it cannot build
                # is served, every route on the ASGI tier, rather than not at all.
                logger.warning("Native tier disabled, every route is served on the ASGI tier "
                               "(building it failed: %s: %s)", type(exc).__name__, exc)
                native_app, compiled = None, None
            if native_app is not None:
                self._refresh_native = native.telemetry_refresher(native_app, compiled)
                self._refresh_native()
                n = sum(1 for e in compiled.entries if e.plan)
                logger.debug("Native tier: %d of %d routes", n, len(compiled.entries))
            elif compiled is not None and compiled.app_reason:
                logger.debug("Native tier off: %s", compiled.app_reason)
        access = logs.make_access_log() if config.access_log and logs.enabled(logs.access_logger) else None
        self.core = _celeris.Server(
            self._make_handler(app), loop,
            access_log=access,
            error_log=logs.make_error_log(),
            state=state,
            root_path=config.root_path,
            header_timeout=config.timeout_request_header,
            keepalive_timeout=config.timeout_keep_alive,
            body_timeout=config.timeout_request_body,
            max_body=config.limit_request_body,
            max_request_line=config.limit_request_line,
            max_header_bytes=config.limit_request_header_size,
            max_headers=config.limit_request_fields,
            date_header=config.date_header,
            server_header=config.server_header,
            backlog=config.backlog,
            context=contextvars.copy_context(),
            native=native_app,
            task_factory=task_factory(loop),
            proxy=self._proxy(),
            limit_concurrency=config.limit_concurrency or 0,
            accept_batch=self.accept_batch,
            ws_handler=self._make_ws_handler(self._ws_app(app)),
            ws_log=logs.make_ws_log() if logs.enabled(logger) else None,
            ws_max_size=config.ws_max_size,
            pathsend=pathsend_allowed(app),
            ws_ping_interval=config.ws_ping_interval,
            ws_ping_timeout=config.ws_ping_timeout,
            ws_per_message_deflate=config.ws_per_message_deflate,
        )
        try:
            if config.fd is not None:
                self.core.listen_fd(config.fd)
                where = f"socket fd {config.fd}"
            elif config.uds:
                self.core.listen_unix(config.uds)
                where = f"unix socket {config.uds}"
            else:
                self.bound_port = self.core.listen_tcp(config.host, config.port)
                host = f"[{config.host}]" if ":" in config.host else config.host
                where = f"http://{host}:{self.bound_port}"
        except OSError as exc:
            logger.error("[Errno %s] error while attempting to bind on address (%r, %d): %s",
                         exc.errno, config.host, config.port, (exc.strerror or "").lower())
            self.core.close()
            if self.lifespan:
                await self.lifespan.shutdown()
            return 1

        fd = self.core.fileno()
        loop.add_reader(fd, self.core.poll)
        if config.busy_poll_us:
            self.core.set_busy_poll(config.busy_poll_us)
        ticker = loop.call_later(1.0, self._tick, loop)
        if self.announce:
            logger.info("Celeris running on %s (Press CTRL+C to quit)", where)
        self.started = True
        if self.on_started is not None:
            self.on_started()
        max_requests = None
        if config.limit_max_requests is not None:
            max_requests = config.limit_max_requests + random.randint(0, config.limit_max_requests_jitter)
        core = self.core
        try:
            while not self.should_exit:
                await asyncio.sleep(0.1)
                if max_requests is not None and core.requests >= max_requests:
                    logger.info("Maximum request limit of %d exceeded. Terminating process.", max_requests)
                    break
            await self._shutdown(loop, fd)
        finally:
            ticker.cancel()
            self._ticker_cancelled = True
        return 0

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.core is None or getattr(self, "_ticker_cancelled", False):
            return
        self.core.sweep()
        if self._refresh_native is not None:
            self._refresh_native()
        loop.call_later(1.0, self._tick, loop)

    def _proxy(self) -> Any:
        if not self.config.proxy_headers:
            return None
        from celeris.proxy import ProxyHeaders, forwarded_allow_ips

        return ProxyHeaders(forwarded_allow_ips(self.config.forwarded_allow_ips))

    async def _shutdown(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        logger.info("Shutting down")
        # Connections the kernel already queued are accepted (so none is reset),
        # then the listener closes; every response from now on ends its connection.
        self.core.stop_accepting()
        timeout = self.config.timeout_graceful_shutdown
        deadline = None if timeout is None else loop.time() + timeout
        core = self.core
        # Open WebSockets are told the service restarts (1012), as uvicorn does.
        core.close_websockets()
        # Let in-flight requests finish.  Idle keep-alive connections close now;
        # a connection whose request already arrived (unread, or just accepted)
        # stays until it is served -- for at most EXTRA seconds once no request
        # is running, so a trickling client cannot hold the shutdown.
        EXTRA = 3.0
        quiet_since = None
        while not self.force_exit:
            remaining = core.close_idle()
            live = core.live_requests
            if not live and not remaining:
                break
            now = loop.time()
            if deadline is not None and now >= deadline:
                if live:
                    logger.error("Cancel %d running task(s), timeout graceful shutdown exceeded", live)
                    core.cancel_all()
                break
            if live:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= EXTRA:
                break
            await asyncio.sleep(0.02)
        for _ in range(20):
            if not core.live_requests:
                break
            await asyncio.sleep(0.05)
        loop.remove_reader(fd)
        self.core.close()
        if self.lifespan is not None:
            await self.lifespan.shutdown()

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in HANDLED_SIGNALS:
            try:
                loop.add_signal_handler(sig, self.handle_exit, sig)
            except (NotImplementedError, RuntimeError):
                pass

    def handle_exit(self, sig: int | None = None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def _new_loop_factory(loop: str):
    if loop in ("auto", "uvloop"):
        try:
            import uvloop

            return uvloop.new_event_loop
        except ImportError:
            if loop == "uvloop":
                raise
    return asyncio.new_event_loop


def run_config(config: Config) -> int:
    logs.configure(config.log_level, config.log_config)
    if config.reload or (config.workers or 1) > 1:
        from celeris.supervisor import run_supervised

        return run_supervised(config)
    return serve_config(config)


def serve_config(config: Config, on_started: Any = None, announce: bool = True,
                 accept_batch: int = 64) -> int:
    """Run one serving process (logging already configured); its exit code."""
    server = Server(config, on_started=on_started, announce=announce, accept_batch=accept_batch)
    factory = _new_loop_factory(config.loop)
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            code = runner.run(server.serve())
    else:
        loop = factory()
        asyncio.set_event_loop(loop)
        try:
            code = loop.run_until_complete(server.serve())
        finally:
            loop.close()
    if code == 0:
        logger.info("Finished server process [%d]", os.getpid())
    return code


def run(app: Any, **kwargs: Any) -> None:
    """Serve app (an ASGI app or "module:attr") with uvicorn-style options:
    celeris.run(app, host="127.0.0.1", port=8000, ...)."""
    code = run_config(Config(app=app, **kwargs))
    if code:
        raise SystemExit(code)
