"""Command line: `celeris run module:app [options]` with uvicorn's flag names
and defaults; bad flags or an app that fails to import give one line and a
non-zero exit."""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from celeris.config import Config

LOG_LEVELS = ["critical", "error", "warning", "info", "debug", "trace"]


def _bool_pair(p: argparse.ArgumentParser, name: str, default: bool, help: str) -> None:
    dest = name.replace("-", "_")
    g = p.add_mutually_exclusive_group()
    g.add_argument(f"--{name}", dest=dest, action="store_true", default=default,
                   help=f"{help} (default: {'on' if default else 'off'})")
    g.add_argument(f"--no-{name}", dest=dest, action="store_false", help=f"Disable: {help.lower()}")


def _parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("1", "true", "t", "yes", "y", "on"):
        return True
    if v in ("0", "false", "f", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} is not a valid boolean")


def _busy_poll_us(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1e6:     # (also false for nan)
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of microseconds from 0 to 1000000")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="celeris",
        description="Serve FastAPI/Starlette/ASGI applications from a C core.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run = sub.add_parser("run", help="Serve an ASGI application.",
                         description="Serve an ASGI application (module:attribute).")
    run.add_argument("app", metavar="APP", help='The application, as "module:attribute".')
    run.add_argument("--host", default="127.0.0.1", help="Bind socket to this host (default: 127.0.0.1).")
    run.add_argument("--port", type=int, default=8000, help="Bind socket to this port; 0 picks a free one (default: 8000).")
    run.add_argument("--uds", default=None, help="Bind to a UNIX domain socket.")
    run.add_argument("--fd", type=int, default=None, help="Use an already-listening socket descriptor.")
    run.add_argument("--workers", type=int, default=None,
                     help="Number of worker processes. Defaults to the $WEB_CONCURRENCY environment "
                          "variable if available, or 1. Not valid with --reload.")
    run.add_argument("--reuse-port", action="store_true",
                     help="With --workers: each worker listens on its own SO_REUSEPORT socket instead of "
                          "sharing one accept queue (see docs/workers.md: connections queued at a worker "
                          "that dies or restarts are reset).")
    run.add_argument("--reload", action="store_true", help="Enable auto-reload (inotify on the reload directories; CELERIS_RELOAD=stat polls instead).")
    run.add_argument("--reload-dir", dest="reload_dirs", action="append", default=None,
                     help="Watch this directory for changes instead of the current directory (repeatable).")
    run.add_argument("--reload-include", dest="reload_includes", action="append", default=None,
                     help="Set glob patterns to include while watching for files. Includes '*.py' by "
                          "default; these defaults can be overridden with `--reload-exclude`. "
"(repeatable)")
    run.add_argument("--reload-exclude", dest="reload_excludes", action="append", default=None,
                     help="Set glob patterns to exclude while watching for files. Includes '.*, .py[cod], "
                          ".sw.*, ~*' by default; these defaults can be overridden with `--reload-include`. "
                          "(repeatable)")
    run.add_argument("--reload-delay", type=float, default=0.25,
                     help="Delay between previous and next check if application needs to be reloaded; "
                          "changes within it coalesce into one restart (default: 0.25).")
    run.add_argument("--app-dir", default=".", help="Look for APP in this directory, by adding it to sys.path (default: .).")
    run.add_argument("--factory", action="store_true", help="Treat APP as an application factory: call it to get the app.")
    run.add_argument("--root-path", default="", help="ASGI root_path for applications mounted below a path prefix.")
    run.add_argument("--log-level", choices=LOG_LEVELS, default=None, help="Log level (default: info).")
    run.add_argument("--log-config", default=None, help="Logging configuration file: .json / .yaml (dictConfig) or .ini.")
    _bool_pair(run, "access-log", True, "Access log")
    run.add_argument("--timeout-keep-alive", type=float, default=5.0,
                     help="Close idle keep-alive connections after this many seconds (default: 5).")
    run.add_argument("--timeout-request-header", type=float, default=10.0,
                     help="A request head must arrive within this many seconds, else 408 (default: 10).")
    run.add_argument("--timeout-request-body", type=float, default=30.0,
                     help="Close a connection whose body stalls this many seconds while the app reads it (default: 30).")
    run.add_argument("--timeout-graceful-shutdown", type=float, default=None,
                     help="Seconds to wait for in-flight requests on shutdown before cancelling them (default: wait).")
    run.add_argument("--backlog", type=int, default=2048, help="listen(2) backlog (default: 2048).")
    _bool_pair(run, "proxy-headers", True,
               "Use X-Forwarded-Proto, X-Forwarded-For from trusted proxies to populate scheme and client")
    run.add_argument("--forwarded-allow-ips", default=None,
                     help="Comma separated list of IP Addresses, IP Networks, or literals (e.g. UNIX Socket "
                          "path) to trust with proxy headers. Defaults to the $FORWARDED_ALLOW_IPS "
                          "environment variable if available, or '127.0.0.1,::1'. '*' trusts everything.")
    run.add_argument("--limit-concurrency", type=int, default=None,
                     help="Maximum number of concurrent connections or tasks to allow, before issuing "
                          "HTTP 503 responses.")
    run.add_argument("--limit-max-requests", type=int, default=None,
                     help="Maximum number of requests to service before terminating the process "
                          "(a worker is then replaced by the supervisor).")
    run.add_argument("--limit-max-requests-jitter", type=int, default=0,
                     help="Maximum jitter to add to --limit-max-requests, to stagger worker restarts (default: 0).")
    run.add_argument("--timeout-worker-healthcheck", type=float, default=5.0,
                     help="Seconds a new worker has to become ready during a SIGHUP restart (default: 5).")
    run.add_argument("--busy-poll-us", type=_busy_poll_us, default=50.0, metavar="USEC",
                     help="While socket events come less than this many microseconds apart, keep the "
                          "event loop polling instead of sleeping until this long after the last one: "
                          "lower latency for clients that answer quickly, for CPU spent spinning while "
                          "traffic is dense; sparse traffic never spins (default: 50; 0 = off).")
    _bool_pair(run, "server-header", True, "Send a 'server: celeris' header")
    _bool_pair(run, "native", True, "Serve compiled FastAPI routes on the native tier")
    _bool_pair(run, "date-header", True, "Send a 'date' header")
    run.add_argument("--lifespan", choices=["auto", "on", "off"], default="auto", help="Lifespan mode (default: auto).")
    run.add_argument("--loop", choices=["auto", "asyncio", "uvloop"], default="auto",
                     help="Event loop: uvloop when installed under auto (default: auto).")
    run.add_argument("--interface", choices=["auto", "asgi3", "asgi2"], default="auto",
                     help="Application interface (default: auto).")
    run.add_argument("--limit-request-line", type=int, default=8192,
                     help="Max request line bytes; longer gets 414 (default: 8192).")
    run.add_argument("--limit-request-header-size", type=int, default=65536,
                     help="Max header block bytes; larger gets 431 (default: 65536).")
    run.add_argument("--limit-request-fields", type=int, default=100,
                     help="Max number of header fields; more gets 431 (default: 100).")
    run.add_argument("--limit-request-body", type=int, default=0,
                     help="Max request body bytes; larger gets 413 (default: 0 = unlimited).")
    run.add_argument("--ws-max-size", type=int, default=16777216,
                     help="WebSocket max message size in bytes; larger closes with 1009 (default: 16777216).")
    run.add_argument("--ws-ping-interval", type=float, default=20.0,
                     help="WebSocket ping interval in seconds; 0 disables (default: 20.0).")
    run.add_argument("--ws-ping-timeout", type=float, default=20.0,
                     help="WebSocket pong timeout in seconds, then close 1011; 0 disables (default: 20.0).")
    run.add_argument("--ws-per-message-deflate", type=_parse_bool, default=True, metavar="BOOLEAN",
                     help="WebSocket permessage-deflate compression when the client offers it "
                          "(default: True).")
    routes = sub.add_parser("routes", help="Show which tier serves each route, and why.",
                            description="Compile the app's routes and show each one's tier (native "
                                        "or ASGI) and, for the ASGI tier, the reason.")
    routes.add_argument("app", metavar="APP", help='The application, as "module:attribute".')
    routes.add_argument("--app-dir", default=".", help="Look for APP in this directory (default: .).")
    routes.add_argument("--factory", action="store_true", help="Treat APP as an application factory.")
    return parser


def show_routes(app_spec: str, app_dir: str, factory: bool) -> int:
    from celeris.config import AppLoadError
    from celeris.native import compile_app

    try:
        app = Config(app=app_spec, app_dir=app_dir, factory=factory, interface="asgi3").load_app()
    except AppLoadError as exc:
        sys.stderr.write(f"ERROR:    Error loading ASGI app. {exc}\n")
        return 1
    compiled = compile_app(app)
    rows = [("METHODS", "PATH", "TIER", "REASON")]
    for e in compiled.entries:
        tier = "native" if e.plan is not None else "asgi"
        rows.append((e.display_methods, e.display_path, tier, e.reason))
    try:
        from celeris.native.websocket import ws_report

        for r, why, runner_why in ws_report(app, detail=True):
            if not why and runner_why:
                why = f"dependencies solved by FastAPI: {runner_why}"
            rows.append(("WS", getattr(r, "path", "?"), "asgi" if why and not runner_why else "native",
                         why))
    except Exception as exc:   # the report only: never fails the command
        rows.append(("WS", "*", "asgi", f"compiler: {type(exc).__name__}: {exc}"))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip())
    native = sum(1 for e in compiled.entries if e.plan is not None)
    if compiled.noroute_reason:
        unmatched = f"go to the ASGI tier ({compiled.noroute_reason})"
    else:
        unmatched = "are answered natively"
    print(f"\n{native} of {len(compiled.entries)} routes on the native tier; unmatched requests "
          f"(404/405/redirects) {unmatched}.")
    if compiled.app_reason:
        print(f"Whole app on the ASGI tier: {compiled.app_reason}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "routes":
        return show_routes(args.app, args.app_dir, args.factory)
    if args.command == "run":
        opts = vars(args).copy()
        opts.pop("command")
        if args.reload and args.workers is not None and args.workers > 1:
            parser.error("--reload and --workers cannot be used together")
        config = Config(**opts)
        from celeris.server import run_config

        try:
            return run_config(config)
        except KeyboardInterrupt:
            return 0
        except Exception as exc:  # one clear line unless debugging
            if args.log_level in ("debug", "trace"):
                raise
            sys.stderr.write(f"ERROR:    {type(exc).__name__}: {exc}\n")
            return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
