#!/usr/bin/env python3
"""Measure Celeris against FastAPI's own test suite.

For one FastAPI release this script

  1. downloads the release's sdist (it ships tests/ and docs_src/), extracts it,
  2. makes a venv with that FastAPI version, its test dependencies, pytest-xdist,
     pytest-timeout and Celeris (built from this checkout),
  3. runs the sdist's tests twice from the sdist directory, with its own pytest
     config: "stock" as shipped, and "celeris" with fastapi/starlette's
     TestClient replaced by celeris.testclient.TestClient (conformance/celeris_plugin.py),
  4. compares per-test outcomes (conformance/outcomes_plugin.py) and writes
     <workdir>/<version>/report.json.

Exit status: 0 if every regression (passes stock, fails through Celeris) is
listed in conformance/known_regressions-<version>.txt, 1 if there is a new
one, 2 if the environment could not be set up.  The known list is a ratchet:
fix a regression and the list may shrink (--update-known); never grow it to
make CI pass.

Typical use:
  python3 conformance/run.py                              # newest release, both runs
  python3 conformance/run.py --fastapi-version 0.115.14
  python3 conformance/run.py --only celeris               # reuse the stock outcomes
  python3 conformance/run.py -k sse -- tests/test_sse.py  # a subset (no ratchet update)
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONF = REPO / "conformance"
DEFAULT_VERSION = "0.165.0"   # newest FastAPI release when this was written
OLDEST_VERSION = "0.115.14"   # last patch of the oldest supported minor

# Test dependencies we do not install, and why.  Everything else the release
# lists for its tests is installed; what fails to install is logged and skipped.
SKIP_DEPS = {
    "pytest-sugar": "terminal-output plugin only; it reformats the logs this script keeps",
}
# Always added to the release's own test dependencies.
RUNNER_DEPS = ["pytest-xdist", "pytest-timeout"]

PASS = {"passed", "xfailed", "xpassed"}
FAIL = {"failed", "error"}


def log(msg: str) -> None:
    print(f"[conformance] {msg}", flush=True)


def run(cmd: list, *, log_to: Path | None = None, check: bool = True, **kw) -> int:
    """Run a command; its output goes to log_to (appended) or through."""
    shown = " ".join(str(c) for c in cmd)
    if log_to is not None:
        with open(log_to, "a") as fh:
            fh.write(f"\n$ {shown}\n")
            fh.flush()
            rc = subprocess.call([str(c) for c in cmd], stdout=fh, stderr=subprocess.STDOUT, **kw)
    else:
        rc = subprocess.call([str(c) for c in cmd], **kw)
    if check and rc != 0:
        where = f"  (see {log_to})" if log_to else ""
        raise SetupError(f"command failed ({rc}): {shown}{where}")
    return rc


class SetupError(Exception):
    pass


# ---------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------

def download_sdist(version: str, vdir: Path) -> Path:
    dl = vdir / "sdist"
    tarball = dl / f"fastapi-{version}.tar.gz"
    if tarball.exists():
        return tarball
    dl.mkdir(parents=True, exist_ok=True)
    log(f"downloading fastapi {version} sdist")
    run([sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps",
         "-d", dl, f"fastapi=={version}"], log_to=vdir / "setup.log")
    if not tarball.exists():
        found = list(dl.glob("fastapi-*.tar.gz"))
        if len(found) != 1:
            raise SetupError(f"sdist not found in {dl}")
        found[0].rename(tarball)
    return tarball


def extract_sdist(tarball: Path, version: str, vdir: Path) -> Path:
    src = vdir / "src" / f"fastapi-{version}"
    marker = vdir / "src" / ".extracted"
    if marker.exists() and src.is_dir():
        return src
    shutil.rmtree(vdir / "src", ignore_errors=True)
    (vdir / "src").mkdir(parents=True)
    log(f"extracting {tarball.name}")
    with tarfile.open(tarball) as tf:
        if hasattr(tarfile, "data_filter"):
            tf.extractall(vdir / "src", filter="data")
        else:
            tf.extractall(vdir / "src")
    if not (src / "tests").is_dir():
        raise SetupError(f"{src} has no tests/ directory")
    marker.write_text(version)
    return src


def release_date(tarball: Path) -> str:
    """The sdist's build time (newest member mtime), as YYYY-MM-DD."""
    with tarfile.open(tarball) as tf:
        newest = max(m.mtime for m in tf.getmembers())
    return time.strftime("%Y-%m-%d", time.gmtime(newest))


def deps_cutoff(spec: str, tarball: Path) -> str | None:
    """--deps-as-of: 'release' (the sdist's date + 1 day), 'today' (no cut-off) or a date."""
    if spec == "today":
        return None
    if spec == "release":
        day = time.mktime(time.strptime(release_date(tarball), "%Y-%m-%d")) + 86400
        return time.strftime("%Y-%m-%d", time.localtime(day))
    time.strptime(spec, "%Y-%m-%d")
    return spec


def pip_env(cutoff: str | None) -> dict:
    """With a cut-off, pip asks PyPI only: a local mirror carries no upload times."""
    env = dict(os.environ)
    if cutoff:
        cert = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.cert"],
                              capture_output=True, text=True).stdout.strip()
        env["PIP_CONFIG_FILE"] = os.devnull
        if cert and "PIP_CERT" not in env:
            env["PIP_CERT"] = cert
    return env


def make_venv(vdir: Path, python: str, key: str) -> Path:
    """A venv for one (FastAPI version, dependency set); rebuilt when the set changes."""
    venv = vdir / "venv"
    py = venv / "bin" / "python"
    marker = venv / ".conformance-venv"
    if marker.exists() and py.exists() and marker.read_text() == key:
        return py
    shutil.rmtree(venv, ignore_errors=True)
    log(f"creating venv {venv}")
    run([python, "-m", "venv", venv], log_to=vdir / "setup.log")
    run([py, "-m", "pip", "install", "-q", "-U", "pip", "setuptools", "wheel"],
        log_to=vdir / "setup.log")
    marker.write_text(key)
    return py


def _resolve_group(groups: dict, name: str, seen: set | None = None) -> list[str]:
    """PEP 735 dependency group, with {include-group = ...} entries expanded."""
    seen = set() if seen is None else seen
    if name in seen:
        return []
    seen.add(name)
    out: list[str] = []
    for entry in groups.get(name, []):
        if isinstance(entry, dict) and "include-group" in entry:
            out += _resolve_group(groups, entry["include-group"], seen)
        elif isinstance(entry, str):
            out.append(entry)
    return out


def _parse_requirements(path: Path, version: str, seen: set | None = None) -> list[str]:
    """requirements-*.txt: follows -r, maps '-e .[extras]' to fastapi[extras]==version."""
    seen = set() if seen is None else seen
    if path in seen or not path.exists():
        return []
    seen.add(path)
    out: list[str] = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            out += _parse_requirements(path.parent / line.split(None, 1)[1], version, seen)
            continue
        m = re.match(r"^(?:-e\s+|--editable\s+)?\.(\[[^\]]*\])?$", line)
        if m:
            out.append(f"fastapi{m.group(1) or ''}=={version}")
            continue
        if line.startswith("-"):
            continue  # other pip options
        out.append(line)
    return out


def _req_name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;@]", req, 1)[0].strip().lower().replace("_", "-")


def test_requirements(src: Path, version: str) -> tuple[list[str], str]:
    """The release's test dependencies and where they were read from."""
    import tomllib  # Python >= 3.11 (the runner itself runs on 3.11+; its unit tests on 3.10 too)

    pyproject = tomllib.loads((src / "pyproject.toml").read_text())
    groups = pyproject.get("dependency-groups", {})
    if "tests" in groups:
        # As FastAPI's CI: the 'tests' group plus the 'all' extra.
        reqs = _resolve_group(groups, "tests") + [f"fastapi[all]=={version}"]
        origin = "pyproject.toml [dependency-groups] tests + fastapi[all]"
    elif (src / "requirements-tests.txt").exists():
        reqs = _parse_requirements(src / "requirements-tests.txt", version)
        origin = "requirements-tests.txt"
    else:
        extras = pyproject.get("project", {}).get("optional-dependencies", {})
        reqs = [f"fastapi[all]=={version}"]
        for key in ("test", "tests"):
            reqs += extras.get(key, [])
        origin = "pyproject.toml [project.optional-dependencies] test"
    if not any(_req_name(r) == "fastapi" for r in reqs):
        reqs.append(f"fastapi[all]=={version}")
    return reqs, origin


def planned_deps(src: Path, version: str) -> tuple[list[str], str, dict]:
    reqs, origin = test_requirements(src, version)
    reqs += [r for r in RUNNER_DEPS if not any(_req_name(x) == r for x in reqs)]
    skipped = {r: SKIP_DEPS[_req_name(r)] for r in reqs if _req_name(r) in SKIP_DEPS}
    reqs = [r for r in reqs if r not in skipped]
    return reqs, origin, skipped


def deps_key(reqs: list[str], cutoff: str | None, python: str) -> str:
    return hashlib.sha256(json.dumps([reqs, cutoff, python]).encode()).hexdigest()


def install_deps(py: Path, src: Path, version: str, vdir: Path, cutoff: str | None,
                 key: str) -> dict:
    reqs, origin, skipped = planned_deps(src, version)
    marker = vdir / "venv" / ".conformance-deps"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info.get("key") == key:
            return info
    log(f"installing {len(reqs)} test dependencies from {origin}"
        + (f", as uploaded before {cutoff}" if cutoff else "") + f" (log: {vdir / 'setup.log'})")
    constraints = vdir / "constraints.txt"
    constraints.write_text(f"fastapi=={version}\n")
    (vdir / "requirements-resolved.txt").write_text("\n".join(reqs) + "\n")
    base = [py, "-m", "pip", "install", "-q", "-c", constraints]
    if cutoff:
        base += ["--uploaded-prior-to", f"{cutoff}T00:00:00Z"]
    env = pip_env(cutoff)
    failed: dict[str, str] = {}
    if run(base + reqs, log_to=vdir / "setup.log", check=False, env=env) != 0:
        log("installing them together failed; installing one at a time")
        run(base + [f"fastapi[all]=={version}"], log_to=vdir / "setup.log", env=env)
        for r in reqs:
            if run(base + [r], log_to=vdir / "setup.log", check=False, env=env) != 0:
                failed[r] = "failed to install on this machine (see setup.log)"
                log(f"  skipped {r}: failed to install")
    installed = subprocess.run([py, "-c", "import fastapi; print(fastapi.__version__)"],
                               capture_output=True, text=True).stdout.strip()
    if installed != version:
        raise SetupError(f"venv has fastapi {installed!r}, wanted {version}")
    info = {"key": key, "origin": origin, "requirements": reqs, "uploaded_before": cutoff,
            "skipped": {**skipped, **failed}}
    marker.write_text(json.dumps(info, indent=1))
    return info


def _celeris_sources() -> list[Path]:
    files = [REPO / "setup.py", REPO / "pyproject.toml"]
    for top in ("src", "python"):
        for p in sorted((REPO / top).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".so", ".o") \
                    and ".egg-info" not in str(p):
                files.append(p)
    return files


def install_celeris(py: Path, vdir: Path, ref: str | None) -> str:
    """Builds Celeris from a copy of this checkout's work tree, or of commit `ref`
    (the checkout is not written to)."""
    if ref:
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--verify", f"{ref}^{{commit}}"],
                                capture_output=True, text=True)
        if commit.returncode != 0:
            raise SetupError(f"--celeris-ref {ref}: not a commit")
        digest = "git:" + commit.stdout.strip()
    else:
        h = hashlib.sha256()
        for f in _celeris_sources():
            h.update(str(f.relative_to(REPO)).encode() + b"\0" + f.read_bytes() + b"\0")
        digest = h.hexdigest()
    marker = vdir / "venv" / ".conformance-celeris"
    if marker.exists() and marker.read_text() == digest:
        return digest
    log("building and installing Celeris into the venv" + (f" from {ref}" if ref else ""))
    build = vdir / "celeris-src"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    names = [n for n in ("src", "python", "setup.py", "pyproject.toml", "README.md")
             if (REPO / n).exists()]
    if ref:
        archive = subprocess.run(["git", "-C", REPO, "archive", "--format=tar", digest[4:],
                                  *names], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tf:
            tf.extractall(build, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    else:
        ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.o", "*.egg-info")
        for name in names:
            if (REPO / name).is_dir():
                shutil.copytree(REPO / name, build / name, ignore=ignore)
            else:
                shutil.copy2(REPO / name, build / name)
    run([py, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", "--force-reinstall",
         build], log_to=vdir / "setup.log")
    run([py, "-c", "import celeris.testclient, celeris._celeris"], log_to=vdir / "setup.log")
    marker.write_text(digest)
    return digest


def versions_in_venv(py: Path) -> dict:
    code = ("import json, importlib.metadata as m, sys\n"
            "out = {'python': sys.version.split()[0]}\n"
            "for n in ('fastapi', 'starlette', 'pydantic', 'httpx', 'anyio', 'pytest', "
            "'pytest-xdist', 'pytest-timeout', 'celeris'):\n"
            "    try: out[n] = m.version(n)\n"
            "    except Exception: out[n] = None\n"
            "print(json.dumps(out))")
    return json.loads(subprocess.run([py, "-c", code], capture_output=True, text=True,
                                     check=True).stdout)


def git_describe(ref: str | None = None) -> str:
    if ref:
        return subprocess.run(["git", "-C", REPO, "rev-parse", "--short", f"{ref}^{{commit}}"],
                              capture_output=True, text=True).stdout.strip() or ref
    try:
        head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "src", "python",
                                "setup.py"], capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except Exception:
        return "unknown"


# ---------------------------------------------------------------------------------------
# Test runs
# ---------------------------------------------------------------------------------------

def pytest_cmd(py: Path, src: Path, mode: str, out: Path, args: argparse.Namespace,
               tests: list[str], extra: list[str]) -> list:
    # Options take their values with '=': pytest looks for its rootdir and config
    # file before the plugins' options are known, and would take a separate value
    # for a path argument (and so find Celeris's own pyproject.toml).
    cmd = [py, "-m", "pytest", *tests,
           "-p", "outcomes_plugin",
           f"--rootdir={src}",
           f"--conformance-out={out}",
           f"--conformance-excluded={CONF / 'excluded.txt'}",
           "-p", "no:cacheprovider", "-p", "no:sugar",
           f"--timeout={args.timeout}",
           "-q", "--tb=short", "-rfE"]
    # After outcomes_plugin, which the mode plugin imports.
    at = cmd.index("outcomes_plugin") + 1
    cmd[at:at] = ["-p", "celeris_plugin" if mode == "celeris" else "stock_plugin"]
    if args.jobs > 0:
        cmd += ["-n", str(args.jobs)]
    if args.k:
        cmd += ["-k", args.k]
    return cmd + extra


def run_mode(py: Path, src: Path, vdir: Path, mode: str, args: argparse.Namespace,
             tests: list[str], extra: list[str], tag: str = "") -> dict:
    rdir = vdir / (mode + tag)
    shutil.rmtree(rdir, ignore_errors=True)
    (rdir / "stats").mkdir(parents=True)
    out = rdir / "outcomes.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(CONF)
    overlay = getattr(args, "celeris_pythonpath", None)
    native = not getattr(args, "no_native", False)
    if mode == "celeris":
        # autopatch/: a sitecustomize that makes interpreters the tests start
        # (tests/test_telemetry's subprocesses) use Celeris's TestClient too.
        path = [str(CONF / "autopatch"), str(CONF)]
        if overlay:
            path.insert(0, str(Path(overlay).resolve()))
        env["PYTHONPATH"] = os.pathsep.join(path)
        env["CELERIS_CONFORMANCE_NATIVE"] = "1" if native else "0"
    env["CELERIS_CONFORMANCE_STATS_DIR"] = str(rdir / "stats")
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_PLUGINS", None)
    cmd = pytest_cmd(py, src, mode, out, args, tests, extra)
    logfile = rdir / "pytest.log"
    log(f"run '{mode}{tag}': {len(tests)} path(s), log {logfile}")
    t0 = time.monotonic()
    rc = run(cmd, log_to=logfile, check=False, cwd=src, env=env)
    elapsed = time.monotonic() - t0
    last = ""
    for line in reversed(logfile.read_text(errors="replace").splitlines()):
        if line.strip():
            last = line.strip()
            break
    log(f"  pytest exit {rc} in {elapsed:.0f}s: {last}")
    if not out.exists():
        raise SetupError(f"pytest wrote no outcomes for '{mode}' (exit {rc}); see {logfile}")
    session = json.loads(out.with_suffix(".session.json").read_text())
    if Path(session["rootpath"]) != src or not session["inipath"] or \
            Path(session["inipath"]).parent != src:
        raise SetupError(f"pytest did not use the release's config: {session}")
    stats = {"core": 0, "fallback": 0}
    files = list((rdir / "stats").glob("stats-*.json"))
    for f in files:
        for k, v in json.loads(f.read_text()).items():
            stats[k] = stats.get(k, 0) + v
    meta = {"mode": mode, "exit": rc,
            "selection": {"tests": tests, "k": args.k, "extra": extra, "timeout": args.timeout},
            "celeris_pythonpath": overlay if mode == "celeris" else None,
            "native": native if mode == "celeris" else None,
            "seconds": round(elapsed, 1),
            "command": [str(c) for c in cmd], "summary": last,
            "stats": stats if mode == "celeris" else None, "stats_files": len(files),
            "pytest_session": session,
            "celeris_commit": git_describe(getattr(args, "celeris_ref", None)),
            "celeris_build": (vdir / "venv" / ".conformance-celeris").read_text()[:12]}
    (rdir / "meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def load_mode(vdir: Path, mode: str) -> tuple[dict, dict, dict]:
    rdir = vdir / mode
    meta = json.loads((rdir / "meta.json").read_text())
    outcomes = json.loads((rdir / "outcomes.json").read_text())
    details_p = rdir / "outcomes.details.json"
    details = json.loads(details_p.read_text()) if details_p.exists() else {}
    return meta, outcomes, details


# ---------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------

def known_path(version: str) -> Path:
    return CONF / f"known_regressions-{version}.txt"


def read_known_causes(version: str) -> dict[str, str]:
    """{test id: cause} from the known list; a line is 'test-id  # cause'."""
    p = known_path(version)
    if not p.exists():
        return {}
    out = {}
    for ln in p.read_text().splitlines():
        if not ln.strip() or ln.lstrip().startswith("#"):
            continue
        nodeid, _, cause = ln.partition(" #")
        out[nodeid.strip()] = cause.strip()
    return out


def read_known(version: str) -> list[str]:
    return list(read_known_causes(version))


def write_known(version: str, regressions: dict[str, str], info: dict) -> None:
    """regressions: {test id: failure}; a cause already written (by hand) is kept."""
    old = read_known_causes(version)
    lines = [
        f"# Tests of FastAPI {version}'s suite that pass with Starlette's TestClient and fail",
        "# through Celeris (conformance/run.py).  A ratchet: this list may only shrink.",
        "# A regression not listed here fails `make conformance`.  Rewrite it with",
        f"#   python3 conformance/run.py --fastapi-version {version} --update-known",
        "# Format: test id  # cause (kept on rewrite; a new entry gets its failing line).",
        f"# Last written for celeris {info.get('celeris_commit')}: "
        f"{len(regressions)} regression(s).",
    ]
    for n in sorted(regressions):
        cause = old.get(n) or " ".join(regressions[n].split()) or "(no traceback)"
        lines.append(f"{n}  # {cause}")
    known_path(version).write_text("\n".join(lines) + "\n")


def _short_reason(details: dict, nodeid: str) -> str:
    """'where: code -> E message' of the innermost frame of a failure."""
    d = details.get(nodeid) or {}
    text = d.get("call") or d.get("setup") or d.get("teardown") or ""
    lines = text.splitlines()
    first_e = next((i for i, ln in enumerate(lines) if ln.startswith("E ")), None)
    if first_e is None:
        return (lines[-1].strip() if lines else "")[:300]
    msg = lines[first_e][1:].strip()
    code = where = ""
    for ln in reversed(lines[:first_e]):
        if not code and ln.strip() and not set(ln.strip()) <= set("^~ "):
            code = ln.strip()
        if ln and not ln[0].isspace() and ": in " in ln:
            where = ln.split(": in ")[0]
            where = where.split("site-packages/")[-1]
            break
    return f"{where}: {code} -> {msg}"[:300]


def _causes(regressions: list[str], details: dict) -> list[dict]:
    """Regressions grouped by the failing frame and line (the message may vary)."""
    groups: dict[str, list[str]] = {}
    for n in regressions:
        key = _short_reason(details, n).split(" -> ")[0] or "(no traceback)"
        groups.setdefault(key, []).append(n)
    return [{"where": k, "count": len(v), "example": v[0],
             "example_reason": _short_reason(details, v[0])}
            for k, v in sorted(groups.items(), key=lambda kv: -len(kv[1]))]


def _by_count(reasons: dict) -> dict:
    return dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))


def _request_split(stats: dict, files: int | None) -> dict:
    """Requests of the Celeris run by where they were served: "native" (native
    tier: HTTP requests "native_http" + WebSocket sessions the native dispatcher
    ran "websocket_native"), "asgi" (C core, ASGI tier: HTTP requests "asgi_http"
    + WebSocket sessions "websocket_asgi"), "fallback" (Starlette's own
    transport: the trio backend).  A WebSocket session counts as one request."""
    reasons = {k.split(":", 1)[1]: v for k, v in stats.items() if k.startswith("asgi_reason:")}
    ws_reasons = {k.split(":", 1)[1]: v for k, v in stats.items()
                  if k.startswith("ws_asgi_reason:")}
    stats = {k: v for k, v in stats.items() if ":" not in k}
    core, fallback = stats.get("core", 0), stats.get("fallback", 0)
    native_http, ws = stats.get("native", 0), stats.get("websocket", 0)
    ws_native = stats.get("websocket_native", 0)
    native = native_http + ws_native
    total = core + fallback
    return {**stats, "core": core, "native": native, "asgi": core - native,
            "native_http": native_http, "asgi_http": core - ws - native_http,
            "websocket": ws, "websocket_native": ws_native, "websocket_asgi": ws - ws_native,
            # why the native tier did not serve them (celeris_autopatch), most first
            "asgi_by_reason": _by_count(reasons),
            "websocket_asgi_by_reason": _by_count(ws_reasons),
            "fallback": fallback, "total": total,
            "native_share": round(100.0 * native / total, 1) if total else None,
            "native_http_share": round(100.0 * native_http / (total - ws), 1)
            if total - ws else None,
            "core_share": round(100.0 * core / total, 1) if total else None,
            "worker_stats_files": files}


def build_report(version: str, vdir: Path, env_info: dict, partial: bool,
                 confirm: dict | None) -> dict:
    s_meta, stock, s_details = load_mode(vdir, "stock")
    c_meta, cel, c_details = load_mode(vdir, "celeris")
    tests = sorted(n for n in set(stock) | set(cel) if not n.startswith("<collect>::"))
    def chosen(meta: dict) -> tuple:
        sel = meta.get("selection") or {}
        return sel.get("tests"), sel.get("k"), sel.get("extra")

    if chosen(s_meta) != chosen(c_meta):
        # The runs selected different tests (--only with a subset): compare only
        # what both ran, or every test the other side did not select is "missing".
        tests = [n for n in tests if n in stock and n in cel]
    collect_errors = {m: sorted(n for n in o if n.startswith("<collect>::"))
                      for m, o in (("stock", stock), ("celeris", cel))}

    def state(o: dict, n: str) -> str:
        return o.get(n, "missing")

    regressions = [n for n in tests if state(stock, n) in PASS and state(cel, n) not in PASS]
    fixed = [n for n in tests if state(stock, n) in FAIL | {"missing"} and state(cel, n) in PASS]
    flaky = sorted((confirm or {}).get("flaky", []))
    firm = [n for n in regressions if n not in flaky]
    known = read_known(version)
    new = [n for n in firm if n not in known]
    now_passing = [n for n in known if n not in regressions and n in cel]

    def counts(o: dict) -> dict:
        c: dict[str, int] = {}
        for n in tests:
            s = state(o, n)
            c[s] = c.get(s, 0) + 1
        return c

    sc, cc = counts(stock), counts(cel)
    passed_stock = sum(v for k, v in sc.items() if k in PASS)
    passed_cel = sum(v for k, v in cc.items() if k in PASS)
    excluded = {}
    excl_p = vdir / "stock" / "outcomes.excluded.json"
    if excl_p.exists():
        e = json.loads(excl_p.read_text())
        excluded = {"ignored_paths": len(e.get("ignored_paths", [])),
                    "deselected_items": len(e.get("deselected", []))}
    stats = c_meta.get("stats") or {}
    def per_test(mode: str) -> dict:
        p = vdir / mode / "outcomes.requests.json"
        return json.loads(p.read_text()) if p.exists() else {}

    stock_req, cel_req = per_test("stock"), per_test("celeris")

    def sent(n: str) -> dict:
        return cel_req.get(n) or {}

    # Tests that send requests, by the stock run (independent of how Celeris fares).
    serving = [n for n in tests if (stock_req.get(n) or {}).get("sent", 0) > 0]
    serving_pass = [n for n in serving if state(stock, n) in PASS]
    serving_fb = [n for n in serving if sent(n).get("fallback", 0) > 0]
    return {
        "fastapi_version": version,
        "environment": env_info,
        "partial_run": partial,
        "celeris_pythonpath": c_meta.get("celeris_pythonpath"),
        "native_enabled": c_meta.get("native", True) is not False,
        "collected": len(tests),
        "excluded": excluded,
        "stock": {"outcomes": sc, "passed": passed_stock, "exit": s_meta["exit"],
                  "seconds": s_meta["seconds"], "summary": s_meta["summary"]},
        "celeris": {"outcomes": cc, "passed": passed_cel, "exit": c_meta["exit"],
                    "seconds": c_meta["seconds"], "summary": c_meta["summary"]},
        "conformance": round(100.0 * (passed_stock - len(regressions)) / passed_stock, 2)
        if passed_stock else None,
        "requests": _request_split(stats, c_meta.get("stats_files")),
        "tests_sending_requests": {
            "total": len(serving), "with_fallback_requests": len(serving_fb),
            "passed_stock": len(serving_pass),
            "passed_celeris": sum(1 for n in serving_pass if state(cel, n) in PASS),
            "requests_stock": sum((v or {}).get("sent", 0) for v in stock_req.values()),
        },
        "collect_errors": collect_errors,
        # Apps whose native tier failed to build (a native-tier bug; the TestClient
        # then serves them on the ASGI tier, as `celeris run` does).
        "native_build_errors": sorted(n for n in tests if sent(n).get("native_build_errors")),
        "regressions": [{"nodeid": n, "celeris": state(cel, n),
                         "reason": _short_reason(c_details, n), "flaky": n in flaky,
                         "requests": sent(n),
                         "known": n in known} for n in regressions],
        "causes": _causes(regressions, c_details),
        "new_regressions": new,
        "known_now_passing": now_passing,
        "fixed": [{"nodeid": n, "stock": state(stock, n)} for n in fixed],
        "flaky": flaky,
    }


def print_summary(r: dict, vdir: Path) -> None:
    print()
    print(f"FastAPI {r['fastapi_version']} test suite, stock TestClient vs Celeris "
          f"(celeris {r['environment'].get('celeris_commit')}, "
          f"starlette {r['environment'].get('starlette')})")
    if r.get("celeris_pythonpath"):
        print(f"  (celeris imported from {r['celeris_pythonpath']}: a diagnosis run)")
    if not r.get("native_enabled", True):
        print("  (native tier off: a diagnosis run)")
    if r["partial_run"]:
        print("  (partial run: -k / paths / extra args given)")
    ex = r["excluded"]
    print(f"  collected            {r['collected']}"
          + (f"   (excluded: {ex.get('ignored_paths', 0)} paths, "
             f"{ex.get('deselected_items', 0)} items)" if ex else ""))
    print(f"  passed stock         {r['stock']['passed']}   {r['stock']['outcomes']}")
    print(f"  passed celeris       {r['celeris']['passed']}   {r['celeris']['outcomes']}")
    print(f"  regressions          {len(r['regressions'])}"
          f"   (new: {len(r['new_regressions'])}, flaky on re-run: {len(r['flaky'])})")
    print(f"  fixed                {len(r['fixed'])}")
    print(f"  conformance          {r['conformance']}% of stock-passing tests pass through Celeris")
    rq = r["requests"]
    print(f"  requests             {rq['total']}: native tier {rq['native']} "
          f"({rq['native_share']}%), ASGI tier {rq['asgi']}, Starlette fallback "
          f"(trio) {rq['fallback']}")
    if "native_http" in rq:
        print(f"    HTTP requests      {rq['total'] - rq['websocket']}: native tier "
              f"{rq['native_http']} ({rq['native_http_share']}%), ASGI tier {rq['asgi_http']}")
        print(f"    WebSocket sessions {rq['websocket']} through the core: native dispatcher "
              f"{rq['websocket_native']}, ASGI tier {rq['websocket_asgi']}")
    by = rq.get("asgi_by_reason") or {}
    if by:
        print("  ASGI-tier HTTP requests by why the native tier did not take them:")
        for why, n in list(by.items())[:12]:
            print(f"    {n:6d}  {why[:110]}")
    by = rq.get("websocket_asgi_by_reason") or {}
    if by:
        print("  ASGI-tier WebSocket sessions by why the native dispatcher left them:")
        for why, n in list(by.items())[:8]:
            print(f"    {n:6d}  {why[:110]}")
    nb = r.get("native_build_errors") or []
    if nb:
        print(f"  native build errors  {len(nb)} test(s) built an app the native tier failed "
              f"to build (served on the ASGI tier), e.g. {nb[0]}")
    w = r.get("wall_seconds") or {}
    if w:
        print("  wall time            " + ", ".join(f"{k} {v:.0f}s" for k, v in w.items()))
    ts = r["tests_sending_requests"]
    print(f"  tests sending requests {ts['total']} ({ts['requests_stock']} requests in the stock "
          f"run; {ts['with_fallback_requests']} tests used the fallback); of those passing "
          f"stock, {ts['passed_celeris']}/{ts['passed_stock']} pass through Celeris")
    for m, errs in r["collect_errors"].items():
        if errs:
            print(f"  collection errors ({m}): {len(errs)}")
            for e in errs[:10]:
                print(f"    {e}")
    if r["causes"]:
        print("\nRegressions by failing line (top 15):")
        for c in r["causes"][:15]:
            print(f"  {c['count']:5d}  {c['example_reason'][:200]}\n         e.g. {c['example']}")
    if r["regressions"]:
        shown = [x for x in r["regressions"] if not x["known"]]
        if len(shown) > 60:
            print(f"\n{len(shown)} new regressions; the first 60 (all in report.json):")
            shown = shown[:60]
        elif shown:
            print("\nNew regressions (passed stock, not through Celeris):")
        for x in shown:
            tag = "" if x["known"] else "NEW "
            tag += "flaky " if x["flaky"] else ""
            print(f"  {tag}{x['celeris']:7s} {x['nodeid']}\n           {x['reason'][:160]}")
    if r["fixed"]:
        print("\nFixed (failed stock, pass through Celeris):")
        for x in r["fixed"]:
            print(f"  {x['stock']:7s} {x['nodeid']}")
    if r["known_now_passing"]:
        print(f"\n{len(r['known_now_passing'])} known regression(s) now pass; shrink the list "
              "with --update-known:")
        for n in r["known_now_passing"]:
            print(f"  {n}")
    print(f"\nreport: {vdir / 'report.json'}")


# ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Arguments after '--' (and unknown options) go to pytest; a path there "
               "replaces the default 'tests'.")
    ap.add_argument("--fastapi-version", default=DEFAULT_VERSION,
                    help=f"FastAPI release to measure (default {DEFAULT_VERSION}; oldest "
                         f"supported: {OLDEST_VERSION})")
    ap.add_argument("--workdir", default="build/conformance",
                    help="venvs, sdists, logs and reports (relative to the repo root)")
    ap.add_argument("-k", default=None, help="pytest -k expression (both runs)")
    ap.add_argument("--jobs", "-j", type=int, default=2, help="pytest-xdist workers (0: no xdist)")
    ap.add_argument("--only", choices=("celeris", "stock", "both"), default="both",
                    help="run only one side; the other side's last outcomes are reused")
    ap.add_argument("--deps-as-of", default="release", metavar="release|today|YYYY-MM-DD",
                    help="install test dependencies as uploaded before this date (default "
                         "'release': the day after the sdist was built, i.e. the environment "
                         "the release was tested in; 'today': newest)")
    ap.add_argument("--timeout", type=int, default=60, help="per-test timeout, seconds")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the venv")
    ap.add_argument("--update-known", action="store_true",
                    help="rewrite conformance/known_regressions-<version>.txt from this run")
    ap.add_argument("--no-confirm", action="store_true",
                    help="do not re-run regressions to tell flaky ones apart")
    ap.add_argument("--confirm-max", type=int, default=300,
                    help="skip the flakiness re-run when there are more regressions than this")
    ap.add_argument("--celeris-ref", default=None, metavar="REF",
                    help="build Celeris from this commit (git archive) instead of the work tree")
    ap.add_argument("--celeris-pythonpath", default=None, metavar="DIR",
                    help="diagnosis: put DIR (holding a patched 'celeris' package) first on "
                         "PYTHONPATH in the celeris run; the report says so")
    ap.add_argument("--no-native", action="store_true",
                    help="diagnosis: the celeris run with the native tier off (every request "
                         "on the ASGI tier); the report says so")
    ap.add_argument("--setup-only", action="store_true", help="prepare the venv and stop")
    ap.add_argument("--report-only", action="store_true",
                    help="no runs: rebuild the report (and the ratchet check) from the last runs")
    args, extra = ap.parse_known_args(argv)
    extra = [a for a in extra if a != "--"]
    tests = [a for a in extra if not a.startswith("-") and
             (a.startswith("tests") or a.startswith("docs_src"))]
    extra = [a for a in extra if a not in tests]
    partial = bool(args.k or tests or extra)
    tests = tests or ["tests"]

    version = args.fastapi_version
    workdir = Path(args.workdir)
    if not workdir.is_absolute():
        workdir = REPO / workdir
    vdir = workdir / version
    vdir.mkdir(parents=True, exist_ok=True)

    t_setup = time.monotonic()
    try:
        tarball = download_sdist(version, vdir)
        src = extract_sdist(tarball, version, vdir)
        cutoff = deps_cutoff(args.deps_as_of, tarball)
        reqs, _, _ = planned_deps(src, version)
        key = deps_key(reqs, cutoff, args.python)
        py = make_venv(vdir, args.python, key)
        deps = install_deps(py, src, version, vdir, cutoff, key)
        for r, why in deps["skipped"].items():
            log(f"test dependency not installed: {r}: {why}")
        if not args.report_only:
            install_celeris(py, vdir, args.celeris_ref)
        env_info = versions_in_venv(py)
        env_info["celeris_commit"] = git_describe(args.celeris_ref)
        env_info["test_deps_from"] = deps["origin"]
        env_info["test_deps_skipped"] = deps["skipped"]
        env_info["test_deps_uploaded_before"] = deps.get("uploaded_before")
        setup_seconds = round(time.monotonic() - t_setup, 1)
        log(f"setup took {setup_seconds:.0f}s")
        if args.setup_only:
            log(f"venv ready: {py}  ({env_info})")
            return 0
        modes = [] if args.report_only else \
            ["stock", "celeris"] if args.only == "both" else [args.only]
        for mode in modes:
            run_mode(py, src, vdir, mode, args, tests, extra)
        for mode in ("stock", "celeris"):
            if not (vdir / mode / "meta.json").exists():
                raise SetupError(f"no '{mode}' outcomes yet: run with --only both first")
        if args.only != "both":
            sel = [json.loads((vdir / m / "meta.json").read_text()).get("selection")
                   for m in ("stock", "celeris")]
            if sel[0] != sel[1]:
                log(f"warning: the two runs selected tests differently: {sel[0]} vs {sel[1]}")
    except SetupError as e:
        log(f"error: {e}")
        return 2

    # Re-run the regressions once through Celeris, one process, to tell flaky ones apart.
    if args.report_only:
        sels = [json.loads((vdir / m / "meta.json").read_text()).get("selection") or {}
                for m in ("stock", "celeris")]
        partial = any(s.get("k") or s.get("extra") or s.get("tests") != ["tests"] for s in sels)
    confirm = None
    rerun_p = vdir / "celeris-rerun" / "outcomes.json"
    if args.report_only and rerun_p.exists() and \
            rerun_p.stat().st_mtime > (vdir / "celeris" / "outcomes.json").stat().st_mtime:
        outcomes = json.loads(rerun_p.read_text())
        confirm = {"flaky": [n for n, o in outcomes.items() if o in PASS]}
    report = build_report(version, vdir, env_info, partial, confirm)
    ids = [x["nodeid"] for x in report["regressions"]]
    if ids and not args.no_confirm and not args.report_only and len(ids) > args.confirm_max:
        log(f"{len(ids)} regressions: more than --confirm-max, not re-running them")
    elif ids and not args.no_confirm and not args.report_only:
        log(f"re-running {len(ids)} regression(s) through Celeris to check they are stable")
        rargs = argparse.Namespace(**{**vars(args), "k": None})
        rerun = run_mode(py, src, vdir, "celeris", rargs, ids, [], tag="-rerun")
        outcomes = json.loads((vdir / "celeris-rerun" / "outcomes.json").read_text())
        confirm = {"flaky": [n for n in ids if outcomes.get(n) in PASS], "meta": rerun}
        report = build_report(version, vdir, env_info, partial, confirm)

    report["wall_seconds"] = {"setup": setup_seconds}
    for m in ("stock", "celeris", "celeris-rerun"):
        meta_p = vdir / m / "meta.json"
        if meta_p.exists() and (m != "celeris-rerun" or confirm and confirm.get("meta")):
            report["wall_seconds"][m] = json.loads(meta_p.read_text())["seconds"]
    (vdir / "report.json").write_text(json.dumps(report, indent=1))
    print_summary(report, vdir)

    if args.update_known:
        if partial or report.get("celeris_pythonpath") or not report["native_enabled"]:
            log("not updating the known list from a partial or diagnosis run")
        else:
            firm = {x["nodeid"]: x["reason"] for x in report["regressions"] if not x["flaky"]}
            write_known(version, firm, env_info)
            log(f"wrote {known_path(version)} ({len(firm)} entries)")
            return 0
    if report["new_regressions"]:
        log(f"FAIL: {len(report['new_regressions'])} regression(s) not in "
            f"{known_path(version).relative_to(REPO)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
