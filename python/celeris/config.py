"""Server configuration, with uvicorn's option names and defaults, and app
loading ("module:attr", --factory, --app-dir, ASGI2/ASGI3 detection)."""
from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable


class AppLoadError(Exception):
    """The application could not be imported; the message is one clear line."""


def import_from_string(spec: str) -> Any:
    module_str, _, attrs_str = spec.partition(":")
    if not module_str or not attrs_str:
        raise AppLoadError(f'Import string "{spec}" must be in format "<module>:<attribute>".')
    try:
        module = importlib.import_module(module_str)
    except ModuleNotFoundError as exc:
        if exc.name != module_str:
            raise
        raise AppLoadError(f'Could not import module "{module_str}".') from None
    instance: Any = module
    try:
        for attr in attrs_str.split("."):
            instance = getattr(instance, attr)
    except AttributeError:
        raise AppLoadError(f'Attribute "{attrs_str}" not found in module "{module_str}".') from None
    return instance


class ASGI2Middleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        instance = self.app(scope)
        await instance(receive, send)


def _is_asgi3(app: Any) -> bool:
    if inspect.isclass(app):
        return hasattr(app, "__await__")
    if inspect.isfunction(app):
        return asyncio.iscoroutinefunction(app)
    call = getattr(app, "__call__", None)
    return asyncio.iscoroutinefunction(call)


@dataclass
class Config:
    app: Any
    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    fd: int | None = None
    app_dir: str | None = "."
    factory: bool = False
    root_path: str = ""
    log_level: str | int | None = None
    log_config: str | dict | None = None
    access_log: bool = True
    timeout_keep_alive: float = 5.0
    timeout_request_header: float = 10.0
    timeout_request_body: float = 30.0
    timeout_graceful_shutdown: float | None = None
    backlog: int = 2048
    server_header: bool = True
    date_header: bool = True
    lifespan: str = "auto"
    loop: str = "auto"
    interface: str = "auto"
    limit_request_line: int = 8192
    limit_request_header_size: int = 65536
    limit_request_fields: int = 100
    limit_request_body: int = 0
    limit_concurrency: int | None = None
    limit_max_requests: int | None = None
    limit_max_requests_jitter: int = 0
    proxy_headers: bool = True
    forwarded_allow_ips: list[str] | str | None = None
    workers: int | None = None
    reload: bool = False
    reload_dirs: list[str] | str | None = None
    reload_delay: float = 0.25
    reload_includes: list[str] | str | None = None
    reload_excludes: list[str] | str | None = None
    timeout_worker_healthcheck: float = 5.0
    reuse_port: bool = False
    busy_poll_us: float = 50.0
    native: bool = True
    ws_max_size: int = 16 * 1024 * 1024
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float | None = 20.0
    ws_per_message_deflate: bool = True
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # uvicorn: --workers, else $WEB_CONCURRENCY, else 1
        if self.workers is None:
            env = os.environ.get("WEB_CONCURRENCY")
            self.workers = int(env) if env else 1
        if not 0.0 <= self.busy_poll_us <= 1e6:     # (also false for nan)
            raise ValueError(f"busy_poll_us must be from 0 to 1000000 microseconds, not {self.busy_poll_us!r}")

    def load_app(self) -> Any:
        """Import (or take) the app; returns an ASGI3 callable."""
        if self.app_dir is not None:
            path = os.path.abspath(self.app_dir)
            if path not in sys.path:
                sys.path.insert(0, path)
        app = import_from_string(self.app) if isinstance(self.app, str) else self.app
        if self.factory:
            try:
                app = app()
            except TypeError as exc:
                raise AppLoadError(f"Error loading ASGI app factory: {exc}") from exc
        interface = self.interface
        if interface == "auto":
            interface = "asgi3" if _is_asgi3(app) else "asgi2"
        if interface == "asgi2":
            app = ASGI2Middleware(app)
        return app
