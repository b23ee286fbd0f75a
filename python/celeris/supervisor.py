"""Process supervisor: `--workers N` and `--reload`.

The supervisor binds the listening socket once and forks workers that inherit
it (one accept queue shared by all; see docs/workers.md for why not
SO_REUSEPORT).  It never imports the application, so every worker it forks
imports the current code: that is what SIGHUP and --reload rely on.

Each worker is an ordinary single-process Celeris server (server.Server):
its own lifespan, its own graceful shutdown.  A worker tells the supervisor
it is serving by writing one byte on a pipe once lifespan startup completed.

Signals (as uvicorn's Multiprocess, plus restarts with back-off):
  SIGINT/SIGTERM  every worker gets SIGTERM and shuts down gracefully;
                  the supervisor waits for all of them, then exits.
  SIGHUP          rolling restart: for each worker, fork a replacement, wait
                  until it is ready, then SIGTERM the old one (which finishes
                  its in-flight requests).  A replacement that fails to become
                  ready aborts the restart and the old workers keep serving.
  SIGTTIN/SIGTTOU one worker more / fewer.
A worker that dies is replaced: at once the first time, then with an
exponential back-off (0.5 s doubling to 30 s) while replacements keep dying
within 10 s of being ready.  A worker that exits with an error before it ever
became ready (the app does not import, lifespan startup failed) would fail
the same way again: the supervisor stops, with exit code 3 (uvicorn's
STARTUP_FAILURE).  In --reload mode such a failure just waits for the next
file change.
"""
from __future__ import annotations

import dataclasses
import os
import select
import signal
import socket
import stat
import sys
import time
import traceback
from pathlib import Path
from typing import Iterator

from celeris.config import Config
from celeris.logs import logger

STARTUP_FAILURE = 3
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
STABLE_AFTER = 10.0     # a worker up this long resets its slot's back-off

SIGNAL_NAMES = {getattr(signal, f"SIG{x}"): x for x in "INT TERM HUP TTIN TTOU".split()}
# What the supervisor handles itself; a worker resets them to the default
# (SIGHUP is ignored there: a terminal hangup is the supervisor's business).
_SUPERVISOR_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD)


class Worker:
    def __init__(self, pid: int, ready_fd: int, health: socket.socket, slot: int) -> None:
        self.pid = pid
        self.ready_fd: int | None = ready_fd
        self.health: socket.socket | None = health     # ping/pong with the worker's pong thread
        self.ping_sent: float | None = None             # an unanswered ping, sent then
        self.next_ping = 0.0
        self.slot = slot
        self.ready = False
        self.started_at = time.monotonic()
        self.ready_at: float | None = None
        self.stopping = False                   # we asked it to stop: do not replace it
        self.replaces: Worker | None = None     # rolling restart: retire this one once ready
        self.replaced_by: Worker | None = None


def bind_socket(config: Config) -> tuple[socket.socket, str]:
    """The listening socket every worker inherits, and where it listens."""
    if config.fd is not None:
        sock = socket.socket(fileno=config.fd)
        where = f"socket fd {config.fd}"
    elif config.uds:
        try:
            if stat.S_ISSOCK(os.stat(config.uds).st_mode):
                os.unlink(config.uds)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(config.uds)
        os.chmod(config.uds, 0o666)
        where = f"unix socket {config.uds}"
    else:
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if config.reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((config.host, config.port))
        host = f"[{config.host}]" if family == socket.AF_INET6 else config.host
        where = f"http://{host}:{sock.getsockname()[1]}"
        if config.reuse_port:
            # Only reserves the port (bound, never listening): each worker
            # listens on its own SO_REUSEPORT socket.
            return sock, where
    sock.listen(config.backlog)
    sock.set_inheritable(True)
    return sock, where


class Supervisor:
    def __init__(self, config: Config, sock: socket.socket) -> None:
        self.config = config
        self.sock = sock
        self.reload = bool(config.reload)
        self.num = 1 if self.reload else int(config.workers or 1)
        self.slots: list[Worker | None] = [None] * self.num
        self.by_pid: dict[int, Worker] = {}
        self.failures: list[int] = [0] * self.num
        self.respawn_at: dict[int, float] = {}      # slot -> monotonic time
        self.restart_queue: list[Worker] = []
        self.pending: Worker | None = None          # replacement being brought up
        self.signals: list[int] = []
        self.should_exit = False
        self.exit_code = 0
        self.mtimes: dict[Path, float] = {}
        self.next_scan = 0.0
        self.reload_dirs = [Path(d).resolve() for d in _as_list(config.reload_dirs)] or [Path.cwd()]
        self.watcher = None                         # _celeris.Inotify, or None: StatReload polling
        self.watch_filter = FileFilter(_as_list(config.reload_includes), _as_list(config.reload_excludes))
        self.pending_changes: dict[Path, None] = {}   # inotify: changes seen, not yet acted on
        self.reload_at: float | None = None         # inotify: restart at (end of the debounce window)
        self.parent_pid = os.getpid()

    # ---- signals ----

    def _on_signal(self, sig: int, frame: object) -> None:
        self.signals.append(sig)

    def _install_signals(self) -> None:
        self.sig_r, self.sig_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.sig_w, warn_on_full_buffer=False)
        for sig in (*SIGNAL_NAMES, signal.SIGCHLD):
            signal.signal(sig, self._on_signal)

    def _handle_signals(self) -> None:
        while self.signals:
            sig = self.signals.pop(0)
            if sig == signal.SIGCHLD:
                continue
            name = SIGNAL_NAMES[sig]
            if sig in (signal.SIGINT, signal.SIGTERM):
                if self.should_exit:
                    # A second Ctrl+C: workers stop waiting for in-flight requests.
                    self._signal_all(signal.SIGINT)
                    continue
                logger.info("Received SIG%s, exiting.", name)
                self.should_exit = True
            elif sig == signal.SIGHUP and not self.should_exit:
                logger.info("Received SIGHUP, restarting processes.")
                self._begin_restart()
            elif sig == signal.SIGTTIN and not self.should_exit and not self.reload:
                logger.info("Received SIGTTIN, increasing the number of processes.")
                self.slots.append(None)
                self.failures.append(0)
                self.num += 1
                self._spawn(self.num - 1)
            elif sig == signal.SIGTTOU and not self.should_exit and not self.reload:
                logger.info("Received SIGTTOU, decreasing number of processes.")
                if self.num <= 1:
                    logger.info("Already reached one process, cannot decrease the number of processes anymore.")
                    continue
                self.num -= 1
                w = self.slots.pop()
                self.failures.pop()
                self.respawn_at.pop(self.num, None)
                if w is not None:
                    self._terminate(w)

    def _signal_all(self, sig: int) -> None:
        for pid in list(self.by_pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    # ---- workers ----

    def _spawn(self, slot: int, replaces: Worker | None = None) -> Worker:
        r, w = os.pipe2(os.O_CLOEXEC)
        health, child_health = socket.socketpair()
        # Signals stay blocked across fork() until the child has its own
        # dispositions: a SIGTERM sent right after the fork (a shutdown or a
        # restart racing with the spawn) would otherwise run the supervisor's
        # inherited handler in the child, be lost, and leave it serving.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISOR_SIGNALS + (signal.SIGHUP,))
        try:
            pid = os.fork()
        except BaseException:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
            raise
        if pid == 0:                                    # the worker
            code = 1
            try:
                os.close(r)
                health.close()
                self._child_setup()
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
                _start_pong_thread(child_health)
                code = self._worker_main(w)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                try:
                    sys.stdout.flush()
                    sys.stderr.flush()
                finally:
                    os._exit(code)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        os.close(w)
        child_health.close()
        health.setblocking(False)
        worker = Worker(pid, r, health, slot)
        self.by_pid[pid] = worker
        if replaces is not None:
            worker.replaces = replaces
            replaces.replaced_by = worker
            self.pending = worker
        else:
            self.slots[slot] = worker
        return worker

    def _child_setup(self) -> None:
        _die_with_parent(self.parent_pid)
        signal.set_wakeup_fd(-1)
        for sig in _SUPERVISOR_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        # a terminal hangup is the supervisor's business (rolling restart)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        os.close(self.sig_r)
        os.close(self.sig_w)
        if self.watcher is not None:
            self.watcher.close()
        for other in self.by_pid.values():
            if other.ready_fd is not None:
                os.close(other.ready_fd)
            if other.health is not None:
                other.health.close()

    def _worker_main(self, ready_w: int) -> int:
        from celeris.server import serve_config

        # This process's copy of the supervisor's socket: the core adopts it and
        # closes it when it stops accepting, so once every worker has stopped,
        # the socket is closed and new connections are refused, not queued.
        shared = True
        if self.config.reuse_port and self.config.fd is None and not self.config.uds:
            shared = False
            own = socket.socket(self.sock.family, socket.SOCK_STREAM)
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            own.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            own.bind(self.sock.getsockname()[:2])
            own.listen(self.config.backlog)
            fd = own.detach()
            self.sock.close()           # the port placeholder: not ours to keep
        else:
            fd = self.sock.detach()
        config = dataclasses.replace(self.config, fd=fd, uds=None, workers=1, reload=False)

        def started() -> None:
            try:
                os.write(ready_w, b"R")
                os.close(ready_w)
            except OSError:
                pass

        # one accept per wakeup on a shared queue: bursts spread over the workers
        return serve_config(config, on_started=started, announce=False,
                            accept_batch=1 if shared else 64)

    def _terminate(self, w: Worker) -> None:
        w.stopping = True
        try:
            os.kill(w.pid, signal.SIGTERM)
            logger.info("Terminated child process [%d]", w.pid)
        except ProcessLookupError:
            pass

    def _on_ready(self, w: Worker) -> None:
        w.ready = True
        w.ready_at = time.monotonic()
        old = w.replaces
        if old is None:
            return
        w.replaces = None
        if self.pending is w:
            self.pending = None
        self.slots[w.slot] = w
        if old.pid in self.by_pid and not old.stopping:
            self._terminate(old)
        self._restart_next()

    def _on_exit(self, w: Worker, code: int) -> None:
        if w.ready_fd is not None:
            os.close(w.ready_fd)
            w.ready_fd = None
        if w.health is not None:
            w.health.close()
            w.health = None
        if self.pending is w:
            self.pending = None
        if w.stopping or self.should_exit:
            return
        if w.replaces is not None:
            old = w.replaces
            old.replaced_by = None
            logger.error("New child process [%d] failed to start; keeping worker [%d] "
                         "and aborting the restart.", w.pid, old.pid)
            self.restart_queue.clear()
            if old.pid not in self.by_pid:      # the old one died meanwhile
                self._schedule(old.slot, 0.0)
            return
        if w.slot >= self.num or self.slots[w.slot] is not w:
            return
        self.slots[w.slot] = None
        if w.replaced_by is not None and w.replaced_by.pid in self.by_pid:
            return      # its replacement is on its way
        if not w.ready and code > 0:
            if self.reload:
                logger.error("Child process [%d] failed to start; waiting for changes.", w.pid)
                return
            logger.error("Child process [%d] failed to start, stopping the parent process.", w.pid)
            self.exit_code = STARTUP_FAILURE
            self.should_exit = True
            return
        logger.info("Child process [%d] died", w.pid)
        now = time.monotonic()
        if w.ready_at is not None and now - w.ready_at >= STABLE_AFTER:
            self.failures[w.slot] = 0
        delay = 0.0
        if code != 0:           # a worker recycled by --limit-max-requests exits 0
            self.failures[w.slot] += 1
            n = self.failures[w.slot]
            if n > 1:
                delay = min(BACKOFF_FIRST * 2 ** (n - 2), BACKOFF_MAX)
                logger.warning("Child process for worker %d keeps dying (%d times in a row); "
                               "restarting it in %.1f s.", w.slot, n, delay)
        self._schedule(w.slot, delay)

    def _schedule(self, slot: int, delay: float) -> None:
        if slot < self.num:
            self.respawn_at[slot] = time.monotonic() + delay

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            w = self.by_pid.pop(pid, None)
            if w is not None:
                self._on_exit(w, os.waitstatus_to_exitcode(status))

    # ---- health check (uvicorn's ping/pong; here without blocking the loop) ----

    def _check_health(self, now: float) -> None:
        """Ping every ready worker about once a second; one that has not answered
        within --timeout-worker-healthcheck is hung (a frozen process, a C call
        holding the GIL): kill it, the usual restart follows."""
        timeout = self.config.timeout_worker_healthcheck
        for w in list(self.by_pid.values()):
            if not w.ready or w.stopping or w.health is None:
                continue
            if w.ping_sent is not None:
                if now - w.ping_sent >= timeout:
                    logger.error("Child process [%d] did not answer the health check within %g s; "
                                 "killing it.", w.pid, timeout)
                    logger.debug("Health check of [%d]: ping sent %.3f s ago", w.pid, now - w.ping_sent)
                    w.ping_sent = None
                    try:
                        os.kill(w.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                continue
            if now >= w.next_ping:
                try:
                    w.health.send(b"p")
                    w.ping_sent = now
                except (BlockingIOError, OSError):
                    pass
                w.next_ping = now + 1.0

    def _on_pong(self, w: Worker) -> None:
        try:
            data = w.health.recv(64) if w.health is not None else b""
        except (BlockingIOError, OSError):
            return
        if data:
            w.ping_sent = None

    # ---- rolling restart ----

    def _begin_restart(self) -> None:
        if self.pending is not None or self.restart_queue:
            logger.info("A restart is already in progress.")
            return
        self.restart_queue = [w for w in self.slots if w is not None]
        self._restart_next()

    def _restart_next(self) -> None:
        while self.restart_queue and not self.should_exit:
            old = self.restart_queue.pop(0)
            if old.pid not in self.by_pid or old.stopping:
                continue
            self._spawn(old.slot, replaces=old)
            return

    def _check_pending_timeout(self, now: float) -> None:
        w = self.pending
        timeout = self.config.timeout_worker_healthcheck
        if w is None or w.ready or now - w.started_at < timeout:
            return
        old = w.replaces
        logger.error("New child process [%d] was not ready in time; keeping worker [%d] "
                     "and aborting the restart.", w.pid, old.pid if old else -1)
        w.stopping = True
        w.replaces = None
        if old is not None:
            old.replaced_by = None
        self.pending = None
        self.restart_queue.clear()
        try:
            os.kill(w.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    # ---- reload ----

    def _iter_py_files(self) -> Iterator[Path]:
        for d in self.reload_dirs:
            for path in list(d.rglob("*.py")):
                yield path.resolve()

    def _changed(self) -> list[Path]:
        changed = []
        for f in self._iter_py_files():
            try:
                mtime = f.stat().st_mtime
            except OSError:
                continue
            old = self.mtimes.get(f)
            self.mtimes[f] = mtime
            if old is not None and mtime > old:
                changed.append(f)
        return changed

    def _start_watcher(self) -> str:
        """inotify unless CELERIS_RELOAD=stat or it is unavailable (no inotify,
        the watch limit reached: a warning, then StatReload).  The reloader name."""
        if os.environ.get("CELERIS_RELOAD", "").lower() != "stat":
            try:
                from celeris._celeris import Inotify
                self.watcher = Inotify([str(d) for d in self.reload_dirs])
                return "inotify"
            except (ImportError, OSError) as exc:
                logger.warning("inotify is not available (%s); falling back to polling with StatReload.", exc)
                self.watcher = None
        self._changed()             # the baseline
        return "StatReload"

    def _on_watcher(self, now: float) -> None:
        assert self.watcher is not None
        try:
            paths, overflow = self.watcher.read()
        except OSError as exc:
            logger.warning("inotify failed (%s); falling back to polling with StatReload.", exc)
            self.watcher.close()
            self.watcher = None
            self._changed()
            return
        if overflow:
            # events were lost: whatever changed, the code must be reloaded
            logger.warning("inotify event queue overflowed; reloading.")
            self.pending_changes[self.reload_dirs[0]] = None
        for p in paths:
            path = Path(p)
            if self.watch_filter(path):
                self.pending_changes[path] = None
        if self.pending_changes and self.reload_at is None:
            self.reload_at = now + self.config.reload_delay

    def _reload_tick(self, now: float) -> None:
        if self.watcher is not None:
            if self.reload_at is None or now < self.reload_at:
                return
            if self.pending is not None:
                # a restart is still coming up: these changes make the next one
                self.reload_at = now + self.config.reload_delay
                return
            changed = list(self.pending_changes)
            self.pending_changes.clear()
            self.reload_at = None
            name = "inotify"
        else:
            if now < self.next_scan:
                return
            self.next_scan = now + self.config.reload_delay
            changed = self._changed()
            name = "StatReload"
        if not changed:
            return
        logger.warning("%s detected changes in %s. Reloading...",
                       name, ", ".join(_display_path(p) for p in changed))
        w = self.slots[0]
        if w is None:                   # the last start failed: try the new code
            self.respawn_at.pop(0, None)
            self._spawn(0)
        elif self.pending is None:
            self.restart_queue = [w]
            self._restart_next()

    # ---- main loop ----

    def run(self) -> int:
        pid = os.getpid()
        if self.reload:
            logger.info("Will watch for changes in these directories: %s",
                        sorted(str(d) for d in self.reload_dirs))
            name = self._start_watcher()
            logger.info("Started reloader process [%d] using %s", pid, name)
        else:
            logger.info("Started parent process [%d]", pid)
        self._install_signals()
        for slot in range(self.num):
            self._spawn(slot)
        while not self.should_exit:
            self._wait(0.25)
            self._handle_signals()
            self._reap()
            if self.should_exit:
                break
            now = time.monotonic()
            for slot, at in list(self.respawn_at.items()):
                if at <= now:
                    del self.respawn_at[slot]
                    if slot < self.num and self.slots[slot] is None:
                        self._spawn(slot)
            self._check_pending_timeout(now)
            self._check_health(now)
            if self.reload:
                self._reload_tick(now)
        self._stop_all()
        if self.reload:
            logger.info("Stopping reloader process [%d]", pid)
        else:
            logger.info("Stopping parent process [%d]", pid)
        return self.exit_code

    def _wait(self, timeout: float) -> None:
        fds = [self.sig_r] + [w.ready_fd for w in self.by_pid.values() if w.ready_fd is not None]
        health = {w.health.fileno(): w for w in self.by_pid.values() if w.health is not None}
        fds += list(health)
        watch_fd = self.watcher.fileno() if self.watcher is not None else -1
        if watch_fd >= 0:
            fds.append(watch_fd)
            if self.reload_at is not None:
                timeout = max(0.0, min(timeout, self.reload_at - time.monotonic()))
        try:
            readable, _, _ = select.select(fds, [], [], timeout)
        except InterruptedError:
            return
        for fd in readable:
            if fd == watch_fd:
                self._on_watcher(time.monotonic())
                continue
            if fd == self.sig_r:
                try:
                    while os.read(self.sig_r, 512):
                        pass
                except BlockingIOError:
                    pass
                continue
            if fd in health:
                self._on_pong(health[fd])
                continue
            w = next((x for x in self.by_pid.values() if x.ready_fd == fd), None)
            if w is None:
                continue
            data = os.read(fd, 16)
            os.close(fd)
            w.ready_fd = None
            if data:
                self._on_ready(w)

    def _stop_all(self) -> None:
        # The workers drain the shared accept queue as they stop; our copy of
        # the socket goes first so the socket closes with the last worker.
        try:
            self.sock.close()
        except OSError:
            pass
        for w in list(self.by_pid.values()):
            if not w.stopping:
                self._terminate(w)
        for w in list(self.by_pid.values()):
            logger.info("Waiting for child process [%d]", w.pid)
        while self.by_pid:
            self._wait(0.1)
            self._handle_signals()
            self._reap()
        if self.config.uds:
            try:
                os.remove(self.config.uds)
            except OSError:
                pass


def _start_pong_thread(sock: socket.socket) -> None:
    """The worker side of the health check: a daemon thread answering each
    ping byte, as uvicorn's worker does.  It needs the GIL for an instant, so
    a process that is frozen or whose GIL is held for good stops answering."""
    import threading

    def pong() -> None:
        try:
            while True:
                data = sock.recv(64)
                if not data:
                    return
                sock.sendall(b"o" * len(data))
        except OSError:
            return

    threading.Thread(target=pong, name="celeris-health", daemon=True).start()


def _die_with_parent(parent: int) -> None:
    """A worker gets SIGTERM (a graceful stop) if the supervisor dies, even by
    SIGKILL, instead of serving on as an orphan (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:          # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _as_list(v: list[str] | str | None) -> list[str]:
    if v is None:
        return []
    return [v] if isinstance(v, str) else list(v)


class FileFilter:
    """uvicorn's WatchFilesReload filter (uvicorn/supervisors/watchfilesreload.py):
    --reload-include patterns (default *.py) minus --reload-exclude patterns
    (default .*, .py[cod], .sw.*, ~*); an exclude naming a directory excludes
    everything below it."""

    def __init__(self, includes: list[str], excludes: list[str]) -> None:
        includes = [x for x in includes if x not in excludes]     # uvicorn's Config does this
        self.includes = list({*(x for x in ["*.py"] if x not in excludes), *includes})
        self.excludes = [x for x in [".*", ".py[cod]", ".sw.*", "~*"] if x not in includes]
        self.exclude_dirs: list[Path] = []
        for e in excludes:
            p = Path(e)
            try:
                is_dir = p.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                self.exclude_dirs.append(p.resolve())
            else:
                self.excludes.append(e)
        self.excludes = list(set(self.excludes))

    def __call__(self, path: Path) -> bool:
        for include in self.includes:
            if path.match(include):
                if str(path).endswith(include):
                    return True
                for d in self.exclude_dirs:
                    if d in path.parents:
                        return False
                for exclude in self.excludes:
                    if path.match(exclude):
                        return False
                return True
        return False


def _display_path(path: Path) -> str:
    try:
        return f"'{path.relative_to(Path.cwd())}'"
    except ValueError:
        return f"'{path}'"


def run_supervised(config: Config) -> int:
    """--workers N (N > 1) or --reload: bind, fork, supervise.  Exit code."""
    if config.reload and (config.workers or 1) > 1:
        logger.error("--reload and --workers cannot be used together.")
        return 2
    if not isinstance(config.app, str):
        logger.warning("You must pass the application as an import string to enable 'reload' or 'workers'.")
        return STARTUP_FAILURE
    try:
        sock, where = bind_socket(config)
    except OSError as exc:
        logger.error("%s", exc)
        return STARTUP_FAILURE
    logger.info("Celeris running on %s (Press CTRL+C to quit)", where)
    return Supervisor(config, sock).run()
