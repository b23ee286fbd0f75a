"""The ASGI lifespan protocol: startup, shutdown, failures, apps without it."""
from conftest import APPS_DIR, ServerProcess, run_celeris, start_server
from rawhttp import get


def test_startup_and_shutdown_run():
    srv = start_server("raw_app:app")
    try:
        err = srv.stderr
        assert "INFO:     Started server process [" in err
        assert "INFO:     Waiting for application startup." in err
        assert "INFO:     Application startup complete." in err
        # startup set state, seen by requests
        assert get(srv.addr, "/state").json()["state"]["started"] is True
    finally:
        rc = srv.stop()
    assert rc == 0
    err = srv.stderr
    assert "INFO:     Shutting down" in err
    assert "INFO:     Waiting for application shutdown." in err
    assert "INFO:     Application shutdown complete." in err
    assert "INFO:     Finished server process [" in err
    assert "raw_app: lifespan shutdown ran" in srv.stdout
    # order, as uvicorn logs it
    order = ["Started server process", "Waiting for application startup.",
             "Application startup complete.", "Celeris running on", "Shutting down",
             "Waiting for application shutdown.", "Application shutdown complete.",
             "Finished server process"]
    positions = [err.index(s) for s in order]
    assert positions == sorted(positions)


def test_fastapi_lifespan_state_and_shutdown():
    srv = start_server("fastapi_app:app")
    try:
        assert get(srv.addr, "/state").json() == {"db": "connected"}
    finally:
        rc = srv.stop()
    assert rc == 0
    assert "Application shutdown complete." in srv.stderr
    assert "fastapi_app: lifespan shutdown ran" in srv.stdout


def test_failing_startup_exits_nonzero():
    proc = run_celeris("run", "failstartup_app:app", "--port", "0", "--app-dir", str(APPS_DIR))
    assert proc.returncode != 0
    assert "ERROR:    Application startup failed. Exiting." in proc.stderr
    assert "startup exploded" in proc.stderr       # starlette reports the traceback
    assert "Celeris running on" not in proc.stderr


def test_failing_startup_lifespan_on_mode():
    proc = run_celeris("run", "failstartup_app:app", "--port", "0", "--lifespan", "on",
                       "--app-dir", str(APPS_DIR))
    assert proc.returncode != 0
    assert "Application startup failed. Exiting." in proc.stderr


def test_app_without_lifespan_support_works():
    srv = start_server("nolifespan_app:app")
    try:
        r = get(srv.addr, "/")
        assert r.status == 200 and r.body == b"no lifespan here"
        assert "ASGI 'lifespan' protocol appears unsupported." in srv.stderr
        assert "Traceback" not in srv.stderr
    finally:
        rc = srv.stop()
    assert rc == 0
    assert "Traceback" not in srv.stderr


def test_lifespan_off_skips_it():
    srv = start_server("raw_app:app", "--lifespan", "off")
    try:
        r = get(srv.addr, "/state")
        assert r.status == 200
        assert r.json()["state"] in ({}, None)
        assert "Waiting for application startup." not in srv.stderr
    finally:
        srv.stop()
    assert "raw_app: lifespan shutdown ran" not in srv.stdout


def test_nolifespan_with_lifespan_on_fails():
    proc = run_celeris("run", "nolifespan_app:app", "--port", "0", "--lifespan", "on",
                       "--app-dir", str(APPS_DIR))
    assert proc.returncode != 0
    assert "Application startup failed. Exiting." in proc.stderr


def test_factory_flag():
    srv = start_server("factory_app:create_app", "--factory")
    try:
        assert get(srv.addr, "/").body == b"factory"
    finally:
        srv.stop()


def test_sigterm_also_shuts_down_gracefully():
    import signal
    srv = start_server("raw_app:app")
    srv.proc.send_signal(signal.SIGTERM)
    rc = srv.proc.wait(timeout=10)
    srv.stop()
    assert rc == 0
    assert "Application shutdown complete." in srv.stderr


def test_server_process_tuple_unpacking():
    srv = ServerProcess("raw_app:app").wait_started()
    try:
        host, port, proc = srv
        assert host == "127.0.0.1" and port == srv.port and proc is srv
    finally:
        srv.stop()
