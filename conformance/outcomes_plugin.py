"""pytest plugin: per-test outcomes as JSON, and the conformance exclusion list.

Loaded with ``-p outcomes_plugin`` (conformance/ on PYTHONPATH) in both the
stock and the Celeris run, so both see exactly the same selection.

Options:
  --conformance-out PATH        write {nodeid: outcome} here at session end
  --conformance-excluded PATH   exclusion list (conformance/excluded.txt format)

Outcome per test id, combining the setup/call/teardown reports:
  passed | failed | error (setup/teardown failed) | skipped | xfailed | xpassed
Collection errors are recorded as ``"<collect>::<nodeid>": "error"``.
Requests each test sent go to ``<out>.requests.json`` (``{nodeid: {"sent": n,
...}}``; see count_requests_of below).
Tracebacks of failed phases go to ``<out>.details.json`` (``{nodeid: {when: text}}``).

Under pytest-xdist the controller receives every worker's reports through
pytest_runtest_logreport, so the JSON is written once, by the controller.
The exclusion hooks run wherever collection happens (the workers).
"""
from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path

import pytest

_DETAIL_LIMIT = 6000  # characters of traceback kept per failed phase


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance")
    group.addoption("--conformance-out", default=None, help="write per-test outcomes JSON here")
    group.addoption("--conformance-excluded", default=None,
                    help="file of excluded paths / nodeid prefixes ('pattern  # reason')")


def load_excluded(path: str | os.PathLike) -> list[str]:
    patterns = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            patterns.append(line)
    return patterns


# -- per-test request accounting ---------------------------------------------------------
# A mode plugin (stock_plugin / celeris_plugin) calls count_requests_of() on the
# transport class its TestClient uses, and may register extra counters (e.g.
# celeris.testclient.stats).  Each test's teardown report then carries, in
# user_properties, "requests": {"sent": n, <counter>: delta, ...} over its
# setup, call and teardown (a module-scoped fixture's requests count for the
# test that set it up).  "sent" counts attempts, so a request that raised counts.
SENT = {"sent": 0}
_COUNTERS: list[dict] = [SENT]


def count_requests_of(transport_cls: type) -> None:
    original = transport_cls.handle_request
    if getattr(original, "_conformance_counted", False):
        return

    def handle_request(self, request):
        SENT["sent"] += 1
        return original(self, request)

    handle_request._conformance_counted = True  # type: ignore[attr-defined]
    transport_cls.handle_request = handle_request


def add_counter(counter: dict) -> None:
    _COUNTERS.append(counter)


def _snapshot() -> dict[str, int]:
    snap: dict[str, int] = {}
    for c in _COUNTERS:
        snap.update({k: v for k, v in c.items() if isinstance(v, int)})
    return snap


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class _Exclusions:
    """File/dir patterns are ignored before import; '::' patterns deselect items."""

    def __init__(self, patterns: list[str], rootdir: Path) -> None:
        self.rootdir = rootdir
        self.paths = [p.rstrip("/") for p in patterns if "::" not in p]
        self.nodeids = [p for p in patterns if "::" in p]
        self.ignored: set[str] = set()
        self.deselected: list[str] = []

    def path_excluded(self, rel: str) -> bool:
        for pat in self.paths:
            if rel == pat or rel.startswith(pat + "/") or fnmatch.fnmatchcase(rel, pat):
                return True
        return False

    def nodeid_excluded(self, nodeid: str) -> bool:
        for pat in self.nodeids:
            if nodeid == pat or nodeid.startswith(pat + "[") or nodeid.startswith(pat + "::") \
                    or fnmatch.fnmatchcase(nodeid, pat):
                return True
        return self.path_excluded(nodeid.split("::", 1)[0])


class OutcomesPlugin:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.out = config.getoption("conformance_out")
        excl = config.getoption("conformance_excluded")
        self.excl = _Exclusions(load_excluded(excl) if excl else [], Path(str(config.rootpath)))
        self.phases: dict[str, dict[str, str]] = {}
        self.collect_errors: dict[str, str] = {}
        self.details: dict[str, dict[str, str]] = {}
        self.requests: dict[str, dict[str, int]] = {}

    # -- request accounting --------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item) -> None:
        item._conformance_before = _snapshot()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_teardown(self, item, nextitem):
        yield
        before = getattr(item, "_conformance_before", {})
        delta = {k: v - before.get(k, 0) for k, v in _snapshot().items()}
        item.user_properties.append(("requests", {k: v for k, v in delta.items() if v}))

    # -- exclusion -----------------------------------------------------------------
    def pytest_ignore_collect(self, collection_path: Path, config: pytest.Config):
        try:
            rel = collection_path.resolve().relative_to(self.excl.rootdir.resolve()).as_posix()
        except ValueError:
            return None
        if self.excl.path_excluded(rel):
            self.excl.ignored.add(rel)
            return True
        return None

    def pytest_collection_modifyitems(self, config: pytest.Config, items: list) -> None:
        keep, drop = [], []
        for item in items:
            (drop if self.excl.nodeid_excluded(item.nodeid) else keep).append(item)
        if drop:
            self.excl.deselected = [i.nodeid for i in drop]
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    # -- outcomes ------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if _is_worker(self.config):
            return
        phases = self.phases.setdefault(report.nodeid, {})
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        else:
            outcome = report.outcome
        phases[report.when] = outcome
        for name, value in getattr(report, "user_properties", ()) or ():
            if name == "requests" and report.when == "teardown":
                self.requests[report.nodeid] = value
        if report.failed:
            text = report.longreprtext
            if len(text) > _DETAIL_LIMIT:
                text = "...\n" + text[-_DETAIL_LIMIT:]
            self.details.setdefault(report.nodeid, {})[report.when] = text

    def pytest_collectreport(self, report) -> None:
        if _is_worker(self.config):
            return
        if report.failed:
            self.collect_errors["<collect>::" + report.nodeid] = "error"
            self.details.setdefault("<collect>::" + report.nodeid, {})["collect"] = (
                report.longreprtext[-_DETAIL_LIMIT:])

    @staticmethod
    def combine(phases: dict[str, str]) -> str:
        setup = phases.get("setup")
        call = phases.get("call")
        teardown = phases.get("teardown")
        if setup == "failed":
            return "error"
        if setup in ("skipped", "xfailed"):
            return setup
        if call is None:
            return "error"  # never ran its call phase (e.g. worker crash)
        if call in ("failed",):
            return "failed"
        if teardown == "failed":
            return "error"
        return call

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if _is_worker(self.config):
            wid = self.config.workerinput.get("workerid")
            if self.out and wid == "gw0":
                self._write_exclusions()
            return
        if self.out:
            self._write_exclusions()
            result = {nid: self.combine(p) for nid, p in sorted(self.phases.items())}
            result.update(self.collect_errors)
            Path(self.out).write_text(json.dumps(result, indent=0, sort_keys=True))
            Path(self.out).with_suffix(".session.json").write_text(json.dumps({
                "rootpath": str(self.config.rootpath),
                "inipath": str(self.config.inipath) if self.config.inipath else None,
                "exitstatus": int(session.exitstatus),
            }))
            Path(self.out).with_suffix(".details.json").write_text(
                json.dumps(self.details, indent=1, sort_keys=True))
            if self.requests:
                Path(self.out).with_suffix(".requests.json").write_text(
                    json.dumps(self.requests, indent=0, sort_keys=True))

    def _write_exclusions(self) -> None:
        # Written by the process that collected (a worker, or the single process).
        if not self.excl.ignored and not self.excl.deselected:
            return
        path = Path(self.out).with_suffix(".excluded.json")
        path.write_text(json.dumps({"ignored_paths": sorted(self.excl.ignored),
                                    "deselected": sorted(self.excl.deselected)}, indent=0))


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(OutcomesPlugin(config), "conformance-outcomes")
