"""ASGI lifespan protocol (uvicorn's LifespanOn semantics, modes auto/on/off)."""
from __future__ import annotations

import asyncio
from typing import Any

from celeris.logs import logger


class Lifespan:
    def __init__(self, app: Any, mode: str = "auto") -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.startup_event = asyncio.Event()
        self.shutdown_event = asyncio.Event()
        self.receive_queue: asyncio.Queue = asyncio.Queue()
        self.error_occured = False
        self.startup_failed = False
        self.shutdown_failed = False
        self.should_exit = False
        self.supported = True

    async def startup(self) -> None:
        logger.info("Waiting for application startup.")
        loop = asyncio.get_running_loop()
        self.task = loop.create_task(self.main())
        await self.receive_queue.put({"type": "lifespan.startup"})
        await self.startup_event.wait()
        if self.startup_failed or (self.error_occured and self.mode == "on"):
            logger.error("Application startup failed. Exiting.")
            self.should_exit = True
        elif self.supported:
            logger.info("Application startup complete.")

    async def shutdown(self) -> None:
        if self.error_occured or not self.supported:
            return
        logger.info("Waiting for application shutdown.")
        await self.receive_queue.put({"type": "lifespan.shutdown"})
        await self.shutdown_event.wait()
        if self.shutdown_failed or (self.error_occured and self.mode == "on"):
            logger.error("Application shutdown failed. Exiting.")
            self.should_exit = True
        else:
            logger.info("Application shutdown complete.")

    async def main(self) -> None:
        try:
            scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                     "state": self.state}
            await self.app(scope, self.receive, self.send)
        except BaseException as exc:
            self.error_occured = True
            if self.startup_failed or self.shutdown_failed:
                return
            if self.mode == "auto":
                self.supported = False
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
            else:
                logger.error("Exception in 'lifespan' protocol\n", exc_info=exc)
        finally:
            self.startup_event.set()
            self.shutdown_event.set()

    async def send(self, message: dict) -> None:
        t = message["type"]
        if t == "lifespan.startup.complete":
            assert not self.startup_event.is_set(), "lifespan.startup.complete sent twice"
            self.startup_event.set()
        elif t == "lifespan.startup.failed":
            assert not self.startup_event.is_set()
            self.startup_event.set()
            self.startup_failed = True
            if message.get("message"):
                logger.error(message["message"])
        elif t == "lifespan.shutdown.complete":
            self.shutdown_event.set()
        elif t == "lifespan.shutdown.failed":
            self.shutdown_event.set()
            self.shutdown_failed = True
            if message.get("message"):
                logger.error(message["message"])
        else:
            raise RuntimeError(f"Unexpected ASGI lifespan message '{t}'.")

    async def receive(self) -> dict:
        return await self.receive_queue.get()
