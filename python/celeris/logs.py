"""Logging in uvicorn's format: "INFO:     message" on stderr, access lines
'INFO:     127.0.0.1:50000 - "GET / HTTP/1.1" 200 OK' on stdout."""
from __future__ import annotations

import http
import json
import logging
import logging.config
import sys
import urllib.parse
from typing import Any

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LEVELS = {"critical": logging.CRITICAL, "error": logging.ERROR, "warning": logging.WARNING,
          "info": logging.INFO, "debug": logging.DEBUG, "trace": TRACE}


class DefaultFormatter(logging.Formatter):
    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: Any = "%",
                 use_colors: bool | None = None) -> None:
        super().__init__(fmt or "%(levelprefix)s %(message)s", datefmt, style)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.__dict__["levelprefix"] = (record.levelname + ":").ljust(9)
        return super().formatMessage(record)


class AccessFormatter(DefaultFormatter):
    def __init__(self, fmt: str | None = None, datefmt: str | None = None, style: Any = "%",
                 use_colors: bool | None = None) -> None:
        super().__init__(fmt or '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
                         datefmt, style)

    def formatMessage(self, record: logging.LogRecord) -> str:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            client_addr, method, path, version, status = args
            try:
                phrase = http.HTTPStatus(status).phrase
            except ValueError:
                phrase = ""
            record.__dict__.update(client_addr=client_addr,
                                   request_line=f"{method} {path} HTTP/{version}",
                                   status_code=f"{status} {phrase}".rstrip())
        return super().formatMessage(record)


LOGGING_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {"()": "celeris.logs.DefaultFormatter"},
        "access": {"()": "celeris.logs.AccessFormatter"},
    },
    "handlers": {
        "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "celeris": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "celeris.error": {"level": "INFO"},
        "celeris.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}

logger = logging.getLogger("celeris.error")
access_logger = logging.getLogger("celeris.access")


def configure(log_level: str | int | None = None, log_config: str | dict | None = None) -> None:
    if isinstance(log_config, dict):
        logging.config.dictConfig(log_config)
    elif isinstance(log_config, str) and log_config:
        if log_config.endswith(".json"):
            with open(log_config) as f:
                logging.config.dictConfig(json.load(f))
        elif log_config.endswith((".yaml", ".yml")):
            import yaml  # optional: only when the user asks for a YAML config

            with open(log_config) as f:
                logging.config.dictConfig(yaml.safe_load(f))
        else:
            logging.config.fileConfig(log_config, disable_existing_loggers=False)
    else:
        logging.config.dictConfig(LOGGING_CONFIG)
    if log_level is not None:
        level = LEVELS[log_level] if isinstance(log_level, str) else log_level
        logging.getLogger("celeris").setLevel(level)
        logging.getLogger("celeris.error").setLevel(level)
        logging.getLogger("celeris.access").setLevel(level)


def make_access_log():
    """The callable the core invokes at each response start."""
    info = access_logger.info
    quote = urllib.parse.quote

    def access_log(scope: dict, status: int) -> None:
        client = scope.get("client")
        addr = "%s:%d" % tuple(client) if client else ""
        path = quote(scope["root_path"] + scope["path"]) if scope["root_path"] else quote(scope["path"])
        if scope["query_string"]:
            path = f"{path}?{scope['query_string'].decode('ascii', 'replace')}"
        info('%s - "%s %s HTTP/%s" %d', addr, scope["method"], path, scope["http_version"], status)

    return access_log


def make_error_log():
    warning = logger.warning

    def error_log(status: int, reason: str) -> None:
        if status == 503 and reason == "concurrency":
            warning("Exceeded concurrency limit.")
            return
        warning("Invalid HTTP request received (%d: %s).", status, reason)

    return error_log


def make_ws_log():
    """Called when a WebSocket app accepts (status None) or answers the
    handshake with an HTTP status: uvicorn's lines on its error logger."""
    info = logger.info
    quote = urllib.parse.quote

    def ws_log(scope: dict, status: int | None) -> None:
        client = scope.get("client")
        addr = "%s:%d" % tuple(client) if client else ""
        path = quote(scope["root_path"] + scope["path"]) if scope["root_path"] else quote(scope["path"])
        if scope["query_string"]:
            path = f"{path}?{scope['query_string'].decode('ascii', 'replace')}"
        if status is None:
            info('%s - "WebSocket %s" [accepted]', addr, path)
        else:
            info('%s - "WebSocket %s" %d', addr, path, status)

    return ws_log


def enabled(lg: logging.Logger, level: int = logging.INFO) -> bool:
    return lg.isEnabledFor(level)


def stderr_line(msg: str) -> None:
    sys.stderr.write(msg + "\n")
