"""--log-config (dictConfig JSON or YAML; PyYAML comes with uvicorn[standard]) with uvicorn's access-log record fields
(client_addr, request_line, status_code), in single-process and worker mode."""
from __future__ import annotations

import json

import pytest

from conftest import ServerProcess
from rawhttp import get, wait_until


def log_config(path) -> dict:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": "celeris.logs.DefaultFormatter", "fmt": "%(levelprefix)s %(message)s"},
            "access": {"()": "celeris.logs.AccessFormatter",
                       "fmt": "ACCESS %(process)d|%(client_addr)s|%(request_line)s|%(status_code)s"},
        },
        "handlers": {
            "default": {"formatter": "default", "class": "logging.StreamHandler",
                        "stream": "ext://sys.stderr"},
            "file": {"formatter": "access", "class": "logging.FileHandler", "filename": str(path)},
        },
        "loggers": {
            "celeris": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "celeris.error": {"level": "INFO"},
            "celeris.access": {"handlers": ["file"], "level": "INFO", "propagate": False},
        },
    }


@pytest.mark.parametrize("workers,fmt", [("1", "json"), ("2", "json"), ("2", "yaml")])
def test_log_config_with_access_fields(tmp_path, workers, fmt):
    access = tmp_path / "access.log"
    cfg = tmp_path / f"log.{fmt}"
    if fmt == "json":
        cfg.write_text(json.dumps(log_config(access)))
    else:
        import yaml

        cfg.write_text(yaml.safe_dump(log_config(access)))
    srv = ServerProcess("workers_app:app", "--log-config", str(cfg), "--workers", workers).wait_started()
    try:
        if workers == "2":
            wait_until(lambda: srv.stderr.count("Application startup complete.") == 2, timeout=20)
        for i in range(6):
            r = get(srv.addr, f"/pid?i={i}", headers=[("X-Forwarded-For", "192.0.2.9:77"),
                                                     ("Connection", "close")])
            assert r.status == 200
        assert get(srv.addr, "/missing", headers=[("Connection", "close")]).status == 404
    finally:
        assert srv.stop() == 0
    lines = access.read_text().splitlines()
    assert len(lines) == 7, lines
    for i, line in enumerate(lines[:6]):
        pid, rest = line.removeprefix("ACCESS ").split("|", 1)
        assert rest == f"192.0.2.9:77|GET /pid?i={i} HTTP/1.1|200 OK"
    assert lines[6].endswith("|GET /missing HTTP/1.1|404 Not Found")
    assert "ACCESS" not in srv.stdout      # the file handler replaced stdout
