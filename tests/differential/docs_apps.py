#!/usr/bin/env python3
"""Differential harness over FastAPI's docs_src tutorial apps (issue 3).

For the installed FastAPI version this script takes the release's sdist (the
same download and cache as conformance/run.py: build/conformance/<version>),
imports every docs_src module that defines a FastAPI `app`, and for every
route and method of its OpenAPI document sends valid requests (path
parameters filled from their schema types, required query/header/cookie
parameters, a JSON or form body synthesised from the body schema, the
tutorials' credentials for secured operations) and invalid ones (missing
parameters, wrong types, invalid JSON, wrong content-type, empty body), plus
405s, a 404 and the docs pages (tests/differential/samples.py builds them).

Each request goes through celeris.testclient.TestClient twice: to one copy
of the app with the native tier on, and to a second, separately imported copy
with it off (the ASGI tier, i.e. FastAPI itself), so apps that keep state see
the same sequence of requests on each tier.  Status, headers (date/server
aside) and body bytes must be identical.  When an app has a mismatch, a third
copy is run on the ASGI tier: a request whose answer differs between two
ASGI runs too (time stamps) is reported as unstable, not as a mismatch, when
the native answer equals the first ASGI answer in everything the two ASGI
answers share (status, body, the headers that did not change).  `random` is
seeded alike before every request on each tier.

Modules that need a package that is not installed are skipped and counted,
modules that fail to import for another reason are counted and listed.

Exit status: 0 without mismatches, 1 with mismatches, 2 when the sdist could
not be had.  Deterministic: modules, requests and values are in a fixed order.
"""
from __future__ import annotations

import argparse
import contextlib
import faulthandler
import importlib
import importlib.metadata
import importlib.util
import io
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import traceback
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))

from openapi_requests import Req, operation_requests  # noqa: E402

IGNORED_HEADERS = {b"date", b"server"}
REQUEST_TIMEOUT = 60            # seconds before a hang aborts the run with tracebacks
APP_DEFINITION = re.compile(r"^app\s*(?::[^=]+)?=", re.M)
# Environment the tutorials read at import (as FastAPI's own tests set it).
TUTORIAL_ENV = {"ADMIN_EMAIL": "admin@example.com"}
FIXTURE_MTIME = 1700000000
# Pure-Python packages tutorials import, installed by this script into
# <workdir>/site (not into site-packages).  Heavier ones (sqlmodel+SQLAlchemy,
# strawberry, pwdlib's argon2, a2wsgi+flask) are not: those modules are skipped and counted.
EXTRA_PACKAGES = ["email-validator"]


def log(msg: str) -> None:
    print(f"[differential-docs] {msg}", flush=True)


# ---------------------------------------------------------------------------------------
# The sdist
# ---------------------------------------------------------------------------------------

def _conformance_runner() -> Any:
    spec = importlib.util.spec_from_file_location("conformance_run", REPO / "conformance" / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sdist_source(version: str, given: str | None) -> Path:
    """The extracted sdist directory (it holds docs_src/)."""
    if given:
        path = Path(given).resolve()
        if path.is_dir():
            return path
    run = _conformance_runner()
    vdir = REPO / "build" / "conformance" / version
    if given:   # a tarball: put it where the conformance runner keeps its download
        (vdir / "sdist").mkdir(parents=True, exist_ok=True)
        target = vdir / "sdist" / f"fastapi-{version}.tar.gz"
        if Path(given).resolve() != target:
            shutil.copyfile(given, target)
    tarball = run.download_sdist(version, vdir)
    return run.extract_sdist(tarball, version, vdir)


def install_extras(work: Path) -> Path:
    """EXTRA_PACKAGES in <work>/site (pip --target), once per package list."""
    site = work / "site"
    marker = site / ".installed"
    key = " ".join(EXTRA_PACKAGES)
    if marker.exists() and marker.read_text() == key:
        return site
    shutil.rmtree(site, ignore_errors=True)
    log(f"installing {key} into {site}")
    with open(work / "pip.log", "w") as fh:
        rc = subprocess.call([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              "--no-input", "--target", str(site), *EXTRA_PACKAGES],
                             stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if rc == 0:
        marker.write_text(key)
    else:
        log(f"pip failed (see {work / 'pip.log'}): modules needing {key} are skipped")
    return site


def candidate_modules(src: Path) -> list[str]:
    """docs_src modules whose source assigns a module-level `app`, sorted."""
    out = []
    for path in sorted((src / "docs_src").rglob("*.py")):
        if APP_DEFINITION.search(path.read_text(encoding="utf-8", errors="replace")):
            rel = path.relative_to(src).with_suffix("")
            out.append(".".join(rel.parts))
    return out


# ---------------------------------------------------------------------------------------
# One app
# ---------------------------------------------------------------------------------------

@dataclass
class Outcome:
    status: int
    headers: list
    body: bytes

    def key(self) -> tuple:
        return self.status, self.headers, self.body


@dataclass
class Report:
    found: int = 0
    imported: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)         # module -> missing package
    import_errors: dict = field(default_factory=dict)   # module -> error
    not_fastapi: list = field(default_factory=list)
    app_errors: dict = field(default_factory=dict)      # module -> error while serving
    requests: int = 0
    native: int = 0
    by_kind: Counter = field(default_factory=Counter)           # request kind -> sent
    native_by_kind: Counter = field(default_factory=Counter)    # request kind -> served natively
    routes: int = 0
    native_routes: int = 0
    app_reasons: Counter = field(default_factory=Counter)
    decline_reasons: Counter = field(default_factory=Counter)
    mismatches: list = field(default_factory=list)
    unstable: list = field(default_factory=list)
    openapi_errors: dict = field(default_factory=dict)


def purge_docs_modules() -> None:
    for name in [n for n in sys.modules if n == "docs_src" or n.startswith("docs_src.")]:
        del sys.modules[name]


def fresh_cwd(path: Path) -> None:
    """An empty working directory with the files tutorials expect beside them."""
    shutil.rmtree(path, ignore_errors=True)
    (path / "static").mkdir(parents=True)
    (path / "static" / "sample.txt").write_text("This is a sample static file.")
    (path / "dist").mkdir()
    (path / "dist" / "index.html").write_text("<h1>index</h1>")
    (path / "dist" / "404.html").write_text("<h1>not found</h1>")
    (path / "templates").mkdir()
    (path / "templates" / "item.html").write_text("<p>{{ id }}</p>")
    for f in path.rglob("*"):       # fixed times: the tiers' copies must serve equal etags
        os.utime(f, (FIXTURE_MTIME, FIXTURE_MTIME))


def import_copy(module: str, cwd: Path) -> Any:
    """A separately imported copy of the module (its own app and state)."""
    random.seed(0)
    purge_docs_modules()
    fresh_cwd(cwd)
    os.chdir(cwd)
    return importlib.import_module(module)


def missing_package(exc: BaseException) -> str | None:
    """The package whose absence made the import fail, if that is why: a
    top-level module that is not installed, or an optional extra the library
    asks for (pydantic's "pip install 'pydantic[email]'")."""
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        top = exc.name.split(".")[0]
        if top == "docs_src":
            return None
        spec = importlib.util.find_spec(top)
        if spec is None:
            return top
        if spec.origin in (None, "namespace"):   # a namespace package: a missing distribution
            return exc.name
        return None
    if isinstance(exc, ImportError):
        m = re.search(r"pip install '?([\w\-]+\[[\w\-]+\]|[\w\-]+)", str(exc))
        if m:
            return m.group(1)
    return None


def build_requests(app: Any, openapi: dict | None) -> list[Req]:
    from starlette.routing import compile_path

    reqs: list[Req] = []
    covered: set = set()
    if openapi is not None:
        for path, item in (openapi.get("paths") or {}).items():
            methods = [m for m in item if m in ("get", "put", "post", "delete", "options",
                                                  "head", "patch", "trace")]
            for method in methods:
                reqs += operation_requests(path, method, item[method], openapi)
            covered.add(path)
            probe = next((r.path for r in reqs if r.path.split("?")[0] and r.kind == "valid-min"
                          and r.method.lower() in methods), None)
            if probe is not None:
                unused = next(m for m in ("patch", "delete", "put", "post", "get") if m not in methods)
                reqs.append(Req("method-not-allowed", unused.upper(), probe.split("?")[0]))
    # Routes outside the schema (include_in_schema=False, plain Starlette routes).
    for route in getattr(app, "routes", []):
        path = getattr(route, "path", None)
        if not isinstance(path, str) or not path.startswith("/"):
            continue
        _, fmt, _ = compile_path(path)
        if fmt in covered:
            continue
        covered.add(fmt)
        url = re.sub(r"\{[^}]*\}", "1", fmt) or "/"
        for method in sorted(getattr(route, "methods", None) or {"GET"}):
            reqs.append(Req("unlisted", method, url))
    for route in getattr(app, "routes", []):    # mounted apps (static files, sub-applications)
        if type(route).__name__ == "Mount" and isinstance(getattr(route, "path", None), str):
            for tail in ("/sample.txt", "/", "/no-such-file"):
                reqs.append(Req("mount", "GET", route.path + tail))
    reqs.append(Req("not-found", "GET", "/celeris-differential-no-such-path"))
    reqs.append(Req("not-found", "POST", "/celeris-differential-no-such-path/x?y=1",
                    [("content-type", "application/json")], b"{}"))
    return reqs


def send(client: Any, req: Req) -> Outcome:
    client.cookies.clear()
    faulthandler.dump_traceback_later(REQUEST_TIMEOUT, exit=True, file=sys.__stderr__)
    try:
        r = client.request(req.method, req.path, headers=req.headers, content=req.body)
    finally:
        faulthandler.cancel_dump_traceback_later()
    headers = [(k.lower(), v) for k, v in r.headers.raw if k.lower() not in IGNORED_HEADERS]
    return Outcome(r.status_code, headers, r.content)


def run_sequence(app: Any, reqs: list[Req], cwd: Path, native: bool, tc: Any,
                 counts: list | None = None) -> list[Outcome]:
    """Every request in order on one tier, inside the app's lifespan."""
    out = []
    os.chdir(cwd)
    faulthandler.dump_traceback_later(REQUEST_TIMEOUT, exit=True, file=sys.__stderr__)
    client = tc.TestClient(app, native=native, raise_server_exceptions=False, follow_redirects=False)
    with client:
        faulthandler.cancel_dump_traceback_later()
        for i, req in enumerate(reqs):
            random.seed(i)          # tutorials using `random` answer alike on both tiers
            before = tc.stats["native"]
            out.append(send(client, req))
            if counts is not None:
                counts.append(tc.stats["native"] - before)
        faulthandler.dump_traceback_later(REQUEST_TIMEOUT, exit=True, file=sys.__stderr__)
    faulthandler.cancel_dump_traceback_later()
    return out


def agrees_where_stable(a: Outcome, b: Outcome, n: Outcome) -> bool:
    """Two ASGI-tier answers a and b differ: the native answer n must still
    equal a in every part that a and b share (status, body, headers other
    than those whose values changed between a and b, in order)."""
    if a.status == b.status and n.status != a.status:
        return False
    if a.body == b.body and n.body != a.body:
        return False
    varying = {k for k, v in a.headers if (k, v) not in b.headers}
    def keep(headers: list) -> list:
        return [(k, v if k not in varying else b"") for k, v in headers]
    return keep(a.headers) == keep(n.headers)


def diff_text(a: Outcome, n: Outcome) -> str:
    lines = []
    if a.status != n.status:
        lines.append(f"  status: asgi {a.status} native {n.status}")
    if a.headers != n.headers:
        lines.append(f"  headers asgi:   {a.headers}")
        lines.append(f"  headers native: {n.headers}")
    if a.body != n.body:
        lines.append(f"  body asgi:   {a.body[:400]!r}")
        lines.append(f"  body native: {n.body[:400]!r}")
    return "\n".join(lines)


def check_app(module: str, work: Path, report: Report, tc: Any, FastAPI: Any) -> None:
    from celeris.native import compile_app

    cwd_a, cwd_n, cwd_b = work / "asgi", work / "native", work / "asgi-again"
    try:
        mod_a = import_copy(module, cwd_a)
    except BaseException as exc:  # noqa: BLE001 -- any import failure is reported
        missing = missing_package(exc)
        if missing:
            report.skipped[module] = missing
        else:
            report.import_errors[module] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return
    app_a = getattr(mod_a, "app", None)
    if not isinstance(app_a, FastAPI):
        report.not_fastapi.append(module)
        return
    report.imported.append(module)
    app_n = import_copy(module, cwd_n).app

    compiled = compile_app(app_n)
    report.routes += len(compiled.entries)
    report.native_routes += sum(1 for e in compiled.entries if e.plan is not None)
    if compiled.app_reason:
        report.app_reasons[compiled.app_reason] += 1
    else:
        for e in compiled.entries:
            if e.plan is None and e.reason:
                report.decline_reasons[e.reason] += 1

    openapi = None
    try:
        openapi = app_a.openapi()
        app_n.openapi()
    except Exception as exc:  # noqa: BLE001
        report.openapi_errors[module] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
    reqs = build_requests(app_a, openapi)

    try:
        got_a = run_sequence(app_a, reqs, cwd_a, False, tc)
        counts: list = []
        got_n = run_sequence(app_n, reqs, cwd_n, True, tc, counts)
    except Exception as exc:  # noqa: BLE001
        report.app_errors[module] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return
    report.requests += len(reqs)
    report.native += sum(counts)
    for req, n in zip(reqs, counts):
        report.by_kind[req.kind] += 1
        report.native_by_kind[req.kind] += n
    bad = [i for i, (a, n) in enumerate(zip(got_a, got_n)) if a.key() != n.key()]
    if not bad:
        return
    app_b = import_copy(module, cwd_b).app
    got_b = run_sequence(app_b, reqs, cwd_b, False, tc)
    for i in bad:
        entry = (module, reqs[i], diff_text(got_a[i], got_n[i]), counts[i])
        if got_b[i].key() != got_a[i].key() and agrees_where_stable(got_a[i], got_b[i], got_n[i]):
            report.unstable.append(entry)
        else:
            report.mismatches.append(entry)


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------

def summary(report: Report) -> str:
    out = []
    share = f"{100 * report.native / report.requests:.1f}%" if report.requests else "-"
    out.append(f"apps found (modules assigning `app`): {report.found}")
    out.append(f"  imported FastAPI apps:   {len(report.imported)}")
    out.append(f"  skipped, missing package: {len(report.skipped)}"
               + (f" ({', '.join(f'{k} x{v}' for k, v in sorted(Counter(report.skipped.values()).items()))})"
                  if report.skipped else ""))
    out.append(f"  import errors:           {len(report.import_errors)}")
    out.append(f"  not a FastAPI app:       {len(report.not_fastapi)}")
    out.append(f"  errors while serving:    {len(report.app_errors)}")
    out.append(f"routes: {report.routes}, compiled to the native tier: {report.native_routes}")
    out.append(f"requests: {report.requests} per tier, served natively: {report.native} ({share})")
    out.append("  by kind (sent / native): " + ", ".join(
        f"{k} {report.by_kind[k]}/{report.native_by_kind[k]}" for k in sorted(report.by_kind)))
    out.append(f"unstable (differ between two ASGI runs too): {len(report.unstable)}")
    out.append(f"mismatches: {len(report.mismatches)}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fastapi-version", default=None,
                    help="sdist version (default: the installed FastAPI)")
    ap.add_argument("--sdist", default=None,
                    help="a fastapi-<version>.tar.gz or an extracted sdist directory to use")
    ap.add_argument("--workdir", default=str(REPO / "build" / "differential-docs"))
    ap.add_argument("--no-extras", action="store_true",
                    help=f"do not install {', '.join(EXTRA_PACKAGES)} (modules needing them are skipped)")
    ap.add_argument("-k", "--only", default=None, help="only modules whose name contains this")
    ap.add_argument("-v", "--verbose", action="store_true", help="list skipped modules and reasons")
    args = ap.parse_args(argv)

    import fastapi
    version = args.fastapi_version or importlib.metadata.version("fastapi")
    if version != fastapi.__version__:
        log(f"note: installed FastAPI is {fastapi.__version__}, docs_src of {version}")
    try:
        src = sdist_source(version, args.sdist)
    except Exception as exc:  # noqa: BLE001
        log(f"could not get the fastapi {version} sdist: {exc}")
        return 2
    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    app_log = work / "apps.log"
    log(f"docs_src of {src}; app output in {app_log}")

    sys.path.insert(0, str(src))
    if not args.no_extras:
        sys.path.append(str(install_extras(work)))   # after site-packages: never shadows it
    os.environ.update(TUTORIAL_ENV)
    warnings.simplefilter("ignore")
    from fastapi import FastAPI
    from celeris import testclient as tc

    modules = candidate_modules(src)
    if args.only:
        modules = [m for m in modules if args.only in m]
    report = Report(found=len(modules))
    start_dir = os.getcwd()
    with open(app_log, "w") as sink:
        logging.basicConfig(stream=sink, level=logging.INFO, force=True)
        for i, module in enumerate(modules, 1):
            sink.write(f"\n===== {module}\n")
            sink.flush()
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                try:
                    check_app(module, work, report, tc, FastAPI)
                except Exception:  # noqa: BLE001 -- a harness error is an error of the run
                    report.app_errors[module] = traceback.format_exc().strip().splitlines()[-1][:200]
                    sink.write(traceback.format_exc())
                finally:
                    purge_docs_modules()
                    os.chdir(start_dir)
            if i % 50 == 0 or i == len(modules):
                log(f"{i}/{len(modules)} modules, {report.requests} requests, "
                    f"{len(report.mismatches)} mismatches")

    def listing(title: str, items: dict | list) -> None:
        if not items:
            return
        print(f"\n{title}:")
        for k in items:
            print(f"  {k}" + (f": {items[k]}" if isinstance(items, dict) else ""))

    if args.verbose:
        listing("skipped (missing package)", report.skipped)
        listing("not a FastAPI app", report.not_fastapi)
        if report.app_reasons:
            print("\nwhole app on the ASGI tier:")
            for reason, n in report.app_reasons.most_common():
                print(f"  {n:4d}  {reason}")
        if report.decline_reasons:
            print("\nroutes declined by the compiler:")
            for reason, n in report.decline_reasons.most_common():
                print(f"  {n:4d}  {reason}")
    listing("import errors", report.import_errors)
    listing("openapi() errors (routes tried without schema)", report.openapi_errors)
    listing("errors while serving", report.app_errors)
    if report.unstable:
        print("\nunstable (the ASGI tier itself answers differently on a second run):")
        for module, req, _, _ in report.unstable:
            print(f"  {module}: {req.label()}")
    if report.mismatches:
        print("\nMISMATCHES:")
        for module, req, diff, native in report.mismatches:
            tier = "served natively" if native else "declined to the ASGI tier"
            print(f"- {module}: {req.label()} ({tier})\n  request headers: {req.headers}"
                  + (f"\n  request body: {req.body[:200]!r}" if req.body is not None else "") + f"\n{diff}")
    print("\n" + summary(report))
    failed = bool(report.mismatches or report.app_errors)
    if report.app_errors:
        print("FAILED: errors while serving (listed above)")
    # Requests whose two answers agree (unstable ones aside) vs. mismatches.
    agreed = report.requests - len(report.mismatches) - len(report.unstable)
    print(f"differential-docs: {agreed} passed, {len(report.mismatches)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
