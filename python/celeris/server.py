"""The serving loop: the C core's epoll fd registered with the asyncio loop,
each request run as a real asyncio Task, lifespan, signals and graceful
shutdown."""
from __future__ import annotations

import asyncio
import contextvars
import os
import signal
import sys
import threading
from typing import Any

from celeris import _celeris, logs
from celeris.config import AppLoadError, Config
from celeris.lifespan import Lifespan
from celeris.logs import logger

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Server:
    def __init__(self, config: Config) -> None:
        self.config = config
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

    # ---- lifecycle ----

    async def serve(self) -> int:
        """Serve until a shutdown signal; returns the process exit code."""
        config = self.config
        loop = asyncio.get_running_loop()
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
        ticker = loop.call_later(1.0, self._tick, loop)
        self._install_signal_handlers(loop)
        logger.info("Celeris running on %s (Press CTRL+C to quit)", where)
        self.started = True
        try:
            while not self.should_exit:
                await asyncio.sleep(0.1)
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

    async def _shutdown(self, loop: asyncio.AbstractEventLoop, fd: int) -> None:
        logger.info("Shutting down")
        self.core.stop_accepting()
        timeout = self.config.timeout_graceful_shutdown
        deadline = None if timeout is None else loop.time() + timeout
        # Let in-flight requests finish; idle keep-alive connections close now.
        core = self.core
        while core.live_requests and not self.force_exit:
            core.close_idle()
            if deadline is not None and loop.time() >= deadline:
                logger.error("Cancel %d running task(s), timeout graceful shutdown exceeded",
                             core.live_requests)
                core.cancel_all()
                break
            await asyncio.sleep(0.05)
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
    server = Server(config)
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
