"""Celeris: FastAPI and any ASGI application, served by a C core."""
from celeris.config import Config
from celeris.server import Server, run

__all__ = ["Config", "Server", "run"]
__version__ = "0.1.0"
