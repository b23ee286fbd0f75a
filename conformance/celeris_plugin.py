"""pytest plugin: serve every TestClient request through the Celeris C core.

Loaded with ``-p celeris_plugin`` (conformance/ on PYTHONPATH).  pytest imports
``-p`` plugins before it reads conftest files or imports any test module, so
replacing the attribute here is early enough for
``from fastapi.testclient import TestClient`` at a test module's import time.
Under pytest-xdist every worker re-imports this plugin (the ``-p`` option is
forwarded), so each worker is patched the same way.

The replacement class comes from celeris_autopatch (which the runner also
installs in every interpreter the tests start, through autopatch/sitecustomize.py;
with CELERIS_CONFORMANCE_NATIVE=0 it is the TestClient with the native tier off).

Requests are counted per test by outcomes_plugin (which must be loaded too).
At session end each process writes ``celeris.testclient.stats`` to
``$CELERIS_CONFORMANCE_STATS_DIR/stats-<worker>-<pid>.json``; the runner sums them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import celeris_autopatch
import outcomes_plugin

celeris_autopatch.install()

import fastapi.testclient  # noqa: E402
import starlette.testclient  # noqa: E402

import celeris.testclient  # noqa: E402

CelerisTestClient = celeris_autopatch.client_class()

starlette.testclient.TestClient = CelerisTestClient  # type: ignore[misc]
fastapi.testclient.TestClient = CelerisTestClient  # type: ignore[misc]

# Per-test accounting: attempts through Celeris's transport ("sent"), and the
# change of celeris.testclient.stats ("core", "fallback", ...).
outcomes_plugin.count_requests_of(celeris.testclient._CelerisTransport)
outcomes_plugin.add_counter(celeris.testclient.stats)


def pytest_report_header(config) -> str:
    return (f"celeris conformance: fastapi.testclient.TestClient -> "
            f"{CelerisTestClient.__module__}.{CelerisTestClient.__qualname__}"
            + ("" if celeris_autopatch.native_enabled() else " (native tier off)"))


def pytest_sessionstart(session) -> None:
    # Something (a conftest, a re-import) undoing the patch would silently measure stock.
    assert fastapi.testclient.TestClient is CelerisTestClient
    assert starlette.testclient.TestClient is CelerisTestClient


def pytest_sessionfinish(session, exitstatus) -> None:
    out_dir = os.environ.get("CELERIS_CONFORMANCE_STATS_DIR")
    if not out_dir:
        return
    wid = getattr(session.config, "workerinput", {}).get("workerid", "main")
    path = Path(out_dir) / f"stats-{wid}-{os.getpid()}.json"
    path.write_text(json.dumps(celeris_autopatch.stats_snapshot()))
