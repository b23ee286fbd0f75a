"""The Python API: celeris.run(app, ...) and Server(Config(...))."""
import sys

from conftest import APPS_DIR, ServerProcess
from rawhttp import get

RUN_SCRIPT = f"""
import sys
sys.path.insert(0, {str(APPS_DIR)!r})
import celeris
from raw_app import app
celeris.run(app, host="127.0.0.1", port=0, timeout_keep_alive=2)
"""

SERVER_SCRIPT = f"""
import asyncio, sys
sys.path.insert(0, {str(APPS_DIR)!r})
from celeris import Config, Server
from celeris import logs
config = Config(app="raw_app:app", host="127.0.0.1", port=0, app_dir={str(APPS_DIR)!r})
logs.configure()
server = Server(config)
code = asyncio.run(server.serve())
print("serve returned", code, "bound", server.bound_port, flush=True)
sys.exit(code)
"""


def test_celeris_run_function():
    srv = ServerProcess("", cmd=[sys.executable, "-c", RUN_SCRIPT]).wait_started()
    try:
        assert get(srv.addr, "/id?n=api").body == b"api"
        assert get(srv.addr, "/state").json()["state"]["started"] is True
    finally:
        assert srv.stop() == 0
    assert "Application shutdown complete." in srv.stderr


def test_server_and_config_classes():
    srv = ServerProcess("", cmd=[sys.executable, "-c", SERVER_SCRIPT]).wait_started()
    try:
        assert get(srv.addr, "/id?n=server").body == b"server"
    finally:
        assert srv.stop() == 0
    assert f"serve returned 0 bound {srv.port}" in srv.stdout
