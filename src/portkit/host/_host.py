"""The host process: bind, drop privileges, start applications, announce ready, reload, stop.

The order of :meth:`Host.start` is the order trusted daemons use:

1. every listener is bound (or taken from socket activation) before anything starts; one
   failure closes what was bound and nothing runs half-configured;
2. privileges are dropped to ``[host] user`` when running as root;
3. applications start on duplicates of the listening sockets (the host keeps the
   originals, so a reload can hand an unchanged address to a new application without ever
   closing the port); an application with ``workers`` above 1 (web, video) gets one
   ``SO_REUSEPORT`` socket per worker and address, bound in step 1 with the others, and is
   run by a :class:`~portkit.host._workers.WorkerGroup` that forks its worker processes;
4. readiness is announced: a log line, the ``--ready-file``, ``READY=1`` to ``NOTIFY_SOCKET``.

SIGTERM/SIGINT stop gracefully (stop accepting, ``grace`` seconds for in-flight
connections, exit 0). SIGHUP reloads: a new configuration that does not validate or cannot
bind is rejected and the old one keeps running; otherwise added applications start, removed
and changed ones stop (gracefully), unchanged ones are not touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import importlib
import json
import logging
import os
import signal
import socket
import sys
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from portkit._errors import NetworkError, PortkitError, PrivilegeError
from portkit.endpoint import host_port
from portkit.host import _systemd
from portkit.host._app import BACKLOG, AppContext, Application, Counters, Listener
from portkit.host._config import (
    HTTP_KINDS,
    STDERR,
    AppConfig,
    HostConfig,
    ListenAddress,
    load_config,
    what_changed,
)
from portkit.host.apps import load_kind

__all__ = [
    "BindError",
    "Host",
    "bind_listener",
    "default_status_path",
    "read_status",
]

log = logging.getLogger("portkit.host")

STATUS_INTERVAL = 1.0

#: Modules the standard library imports lazily while serving: the thread pool behind
#: ``asyncio.to_thread``/``run_in_executor``, and the IDNA codec that ``getaddrinfo``
#: uses for a host name (forward's ``to``).
PRELOAD = ("concurrent.futures.thread", "encodings.idna")

#: The hosts alive in this process, so that an application can show its siblings (the
#: console's host view reads their status, as ``--status`` does).
HOSTS: weakref.WeakSet[Host] = weakref.WeakSet()


class BindError(NetworkError):
    """A listening socket could not be bound."""


def bind_listener(
    address: ListenAddress, owner: str, *, reuse_port: bool = False, port: int | None = None
) -> socket.socket:
    """Bind and listen on ``address`` (non-blocking, SO_REUSEADDR, IPv6-only for v6).

    ``reuse_port``: with ``SO_REUSEPORT``, so that more sockets (one per worker process)
    can join it on the same address; ``port`` overrides the address's port (the port a
    first socket got for port 0).
    """
    sock = socket.socket(address.family, socket.SOCK_STREAM)
    where = (address.host, address.port if port is None else port)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if address.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if reuse_port:
            if port is None and address.port != 0:
                _check_free(address)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(where)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        what = f"cannot listen on {address} for [apps.{owner}]"
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise PrivilegeError(
                f"{what}: permission denied (ports below 1024 need root)"
            ) from None
        raise BindError(f"{what}: {exc.strerror or exc}") from None
    return sock


def _check_free(address: ListenAddress) -> None:
    """Fail as a plain bind would when something listens on ``address`` already.

    Sockets with ``SO_REUSEPORT`` of one user share a port: without this check a second
    ``portkit serve`` on the same port would silently take half of the connections. A
    socket without it cannot bind where anything listens.
    """
    probe = socket.socket(address.family, socket.SOCK_STREAM)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if address.family == socket.AF_INET6:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        probe.bind((address.host, address.port))
    finally:
        probe.close()


def workers_of(config: AppConfig) -> int:
    """How many processes serve ``config``: its ``workers`` option, else one per CPU.

    Kinds without the option are served by the host process itself (1).
    """
    if not hasattr(config.options, "workers"):
        return 1
    count: int | None = config.options.workers
    if count is None:
        from portkit.host._workers import default_workers

        return default_workers()
    return count


def default_status_path() -> Path:
    """Where the status file goes when the configuration does not say."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "portkit" / "serve.json"
    return Path(tempfile.gettempdir()) / f"portkit-{os.getuid()}" / "serve.json"


def _socket_key(app: str, address: ListenAddress) -> str:
    # Port 0 means "any free port": each such listener is its own, owned by its app.
    return f"{app}/{address}" if address.port == 0 else str(address)


@dataclasses.dataclass(slots=True)
class _Running:
    config: AppConfig
    app: Application
    ctx: AppContext
    listeners: list[Listener]
    handler: logging.Handler | None


class Host:
    """Hosts the applications of one configuration; reloadable, gracefully stoppable."""

    def __init__(
        self,
        config: HostConfig,
        *,
        config_path: str | None = None,
        ready_file: Path | None = None,
        status_file: Path | None = None,
        inherited: Iterable[tuple[str, socket.socket]] = (),
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.ready_file = ready_file
        self.status_file = status_file or config.host.status_file or default_status_path()
        self._inherited = list(inherited)
        self._sockets: dict[str, socket.socket] = {}
        # More SO_REUSEPORT sockets on the address of a key, one per worker beyond the first.
        self._siblings: dict[str, list[socket.socket]] = {}
        self._running: dict[str, _Running] = {}
        self._stopped = asyncio.Event()
        self.ready = asyncio.Event()  # set once every application serves
        self._lock = asyncio.Lock()
        self._status_task: asyncio.Task[None] | None = None
        self._started = time.time()
        self._privileges_dropped = False
        self.reloads = 0
        HOSTS.add(self)

    # -- public ---------------------------------------------------------------------------

    @property
    def apps(self) -> dict[str, Application]:
        return {name: run.app for name, run in self._running.items()}

    def bound(self, name: str) -> list[tuple[str, int]]:
        """The addresses application ``name`` listens on (ports resolved)."""
        return [
            _sockname(self._sockets[_socket_key(name, a)])
            for a in self._running[name].config.listen
        ]

    async def start(self) -> None:
        """Bind everything, drop privileges, start every application, announce ready."""
        async with self._lock:
            fresh = self._bind_all(self.config)
            try:
                await self._start_apps(
                    self.config.apps, self.config, before_start=self._before_serving
                )
            except BaseException:
                await self._stop_apps(list(self._running), 0.0)
                for key in fresh:
                    self._close_key(key)
                raise
            for name, sock in self._inherited:
                if sock.fileno() >= 0 and sock not in self._sockets.values():
                    log.warning(
                        "inherited socket %r (%s) matches no application", name, _sockname(sock)
                    )
            self._write_status()
            self._status_task = asyncio.create_task(self._status_loop())
            self._announce_ready()

    async def stop(self, grace: float | None = None) -> None:
        """Stop every application (``grace`` seconds for in-flight work), close listeners."""
        _systemd.notify("STOPPING=1")
        grace = self.config.host.grace if grace is None else grace
        async with self._lock:
            log.info("stopping: %s, %.1fs grace", _count(len(self._running), "application"), grace)
            # Stop accepting first: with the host's copies closed, a listening socket dies
            # as soon as its application closes its own, and new clients are refused rather
            # than left waiting in a backlog that nobody will accept from.
            for key in list(self._sockets):
                self._close_key(key)
            await self._stop_apps(list(self._running), grace)
            if self._status_task is not None:
                self._status_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._status_task
            with contextlib.suppress(FileNotFoundError):
                self.status_file.unlink()
        self._stopped.set()

    async def reload(self, new: HostConfig | None = None) -> bool:
        """Apply a new configuration (re-read from ``config_path`` by default).

        Returns False, keeping the running configuration, when it is invalid or its
        listeners cannot be bound.
        """
        async with self._lock:
            _systemd.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")
            try:
                if new is None:
                    if self.config_path is None:
                        raise PortkitError("no configuration file to reload")
                    new = load_config(self.config_path)
                self._bind_all(new)
            except PortkitError as exc:
                log.error("reload rejected, keeping the running configuration: %s", exc)
                _systemd.notify("READY=1", "STATUS=reload rejected")
                return False
            old = self.config
            new_names = {app.name for app in new.apps}
            changed = [
                name
                for name, run in self._running.items()
                if name not in new_names or new.app(name) != run.config
            ]
            to_start = [
                app for app in new.apps if app.name not in self._running or app.name in changed
            ]
            # Removed and changed applications stop accepting at once and drain in the
            # background; addresses no longer configured are closed now (new clients are
            # refused), addresses kept are handed to the new applications without ever
            # closing, so their clients see no gap.
            stopping = asyncio.create_task(self._stop_runs(self._detach(changed), new.host.grace))
            needed = {_socket_key(a.name, addr) for a in new.apps for addr in a.listen}
            for key in list(self._sockets):
                if key not in needed:
                    self._close_key(key)
            self._trim_siblings(new)
            await asyncio.sleep(0)  # let each stop close its servers before others accept
            try:
                await self._start_apps(to_start, new)
            except Exception as exc:
                # Stopped applications cannot come back half-way through; report loudly and
                # keep serving what did start (the next SIGHUP retries the rest).
                log.error("reload failed while starting applications: %r", exc)
                self.config = new  # what is not running now starts on the next reload
                _systemd.notify("READY=1", "STATUS=reload failed")
                self._write_status()
                return False
            finally:
                await stopping
            self.config = new
            if new.host.user != old.host.user and self._privileges_dropped:
                log.warning("[host] user changes take effect on restart, not reload")
            self.reloads += 1
            self._log_reload(old, new, changed, to_start)
            self._write_status()
            _systemd.notify("READY=1", f"STATUS={_count(len(self._running), 'application')}")
            return True

    def _log_reload(
        self, old: HostConfig, new: HostConfig, changed: list[str], started: list[AppConfig]
    ) -> None:
        """Say what moved: each application started, stopped or restarted, and why."""
        restarted = [name for name in changed if name in self._running]
        stopped = [name for name in changed if name not in self._running]
        added = [app.name for app in started if app.name not in changed]
        for name in added:
            where = ", ".join(_format(a) for a in self.bound(name))
            log.info("reload: [apps.%s] started (%s on %s)", name, new.app(name).kind, where)
        for name in stopped:
            log.info("reload: [apps.%s] stopped (no longer configured)", name)
        for name in restarted:
            moved = what_changed(old.app(name), new.app(name))
            log.info("reload: [apps.%s] restarted: %s", name, "; ".join(moved) or "configuration")
        log.info(
            "reloaded: %d started, %d stopped, %d restarted, %d unchanged",
            len(added),
            len(stopped),
            len(restarted),
            len(self._running) - len(started),
        )

    async def run(self) -> None:
        """Start, then serve until SIGTERM/SIGINT (graceful stop); SIGHUP reloads."""
        loop = asyncio.get_running_loop()
        stopping: list[asyncio.Task[None]] = []
        reloads: set[asyncio.Task[bool]] = set()

        def on_term(signame: str) -> None:
            if not stopping:
                log.info("%s: stopping gracefully", signame)
                stopping.append(asyncio.create_task(self.stop()))

        def on_hup() -> None:
            log.info("SIGHUP: reloading %s", self.config_path)
            task = asyncio.create_task(self.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        # Handlers first: a signal that arrives while starting waits for the start to
        # finish (both take the lock) instead of killing the process half-started.
        loop.add_signal_handler(signal.SIGTERM, on_term, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, on_term, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, on_hup)
        try:
            await self.start()
            await self._stopped.wait()
            if stopping:
                await stopping[0]
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    def status(self) -> dict[str, Any]:
        """The status document (``--status``, ``--ready-file``): apps, endpoints, counters."""
        apps = []
        for name, run in self._running.items():
            snap = run.app.counters.snapshot()
            entry: dict[str, Any] = {
                "name": name,
                "kind": run.config.kind,
                "listen": [_format(a) for a in self.bound(name)],
                "counters": dataclasses.asdict(snap),
            }
            pids = getattr(run.app, "pids", None)
            if pids is not None:
                entry["workers"] = pids
            apps.append(entry)
        return {
            "pid": os.getpid(),
            "config": self.config.source,
            "started": self._started,
            "reloads": self.reloads,
            "apps": apps,
        }

    # -- internals ------------------------------------------------------------------------

    def _bind_all(self, config: HostConfig) -> list[str]:
        """Bind every listener ``config`` needs that is not bound yet; all or nothing.

        An application served by worker processes gets one ``SO_REUSEPORT`` socket per
        worker and address (the first one in ``_sockets``, the others in ``_siblings``).
        """
        fresh: list[str] = []
        fresh_siblings: list[tuple[str, socket.socket]] = []
        try:
            for app in config.apps:
                workers = workers_of(app)
                reuse_port = hasattr(app.options, "workers")
                for address in app.listen:
                    key = _socket_key(app.name, address)
                    if key not in self._sockets:
                        self._sockets[key] = self._take_inherited(
                            app.name, address
                        ) or bind_listener(address, app.name, reuse_port=reuse_port)
                        fresh.append(key)
                    primary = self._sockets[key]
                    if workers < 2 or not primary.getsockopt(
                        socket.SOL_SOCKET, socket.SO_REUSEPORT
                    ):
                        continue  # one process, or one socket the workers share
                    siblings = self._siblings.setdefault(key, [])
                    while len(siblings) < workers - 1:
                        port = _sockname(primary)[1]
                        sibling = bind_listener(address, app.name, reuse_port=True, port=port)
                        siblings.append(sibling)
                        fresh_siblings.append((key, sibling))
        except BaseException:
            for key, sibling in fresh_siblings:
                self._siblings[key].remove(sibling)
                sibling.close()
            for key in fresh:
                self._close_key(key)
            raise
        return fresh

    def _close_key(self, key: str) -> None:
        """Close the listening socket(s) of ``key``."""
        self._sockets.pop(key).close()
        for sibling in self._siblings.pop(key, []):
            sibling.close()

    def _trim_siblings(self, config: HostConfig) -> None:
        """Close the worker sockets no application of ``config`` needs any longer."""
        for app in config.apps:
            for address in app.listen:
                siblings = self._siblings.get(_socket_key(app.name, address), [])
                while len(siblings) > max(0, workers_of(app) - 1):
                    siblings.pop().close()

    def _take_inherited(self, name: str, address: ListenAddress) -> socket.socket | None:
        """An activation socket named after the app, else one bound to ``address``."""
        for index, (fd_name, sock) in enumerate(self._inherited):
            same_name = fd_name == name
            same_address = sock.family == address.family and _sockname(sock) == (
                address.host,
                address.port,
            )
            if same_name or same_address:
                del self._inherited[index]
                log.info(
                    "[apps.%s] uses inherited socket %s (%s)",
                    name,
                    _format(_sockname(sock)),
                    fd_name or "unnamed",
                )
                return sock
        return None

    def _before_serving(self) -> None:
        """Import what serving will need, then drop privileges (the first start only).

        After the drop, a module under a directory the new user cannot read can no longer
        be imported, and a request that needs it fails; so nothing is left to import
        lazily: the kinds import theirs at load, applications prepare in ``prepare()``,
        and the standard library's own lazy imports are done here.
        """
        for name in PRELOAD:
            importlib.import_module(name)
        self._drop_privileges()

    def _drop_privileges(self) -> None:
        user = self.config.host.user
        if os.geteuid() != 0 or self._privileges_dropped:
            return
        if user is None:
            log.warning("running as root: set [host] user to drop privileges after binding")
            return
        import grp
        import pwd

        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            raise PrivilegeError(f"[host] user {user!r} does not exist") from None
        gid = entry.pw_gid
        if self.config.host.group is not None:
            try:
                gid = grp.getgrnam(self.config.host.group).gr_gid
            except KeyError:
                raise PrivilegeError(
                    f"[host] group {self.config.host.group!r} does not exist"
                ) from None
        os.setgroups([])
        os.setgid(gid)
        os.setuid(entry.pw_uid)
        self._privileges_dropped = True
        log.info("dropped privileges to user %s (uid %d, gid %d)", user, entry.pw_uid, gid)

    async def _start_apps(
        self,
        apps: Iterable[AppConfig],
        whole: HostConfig,
        *,
        before_start: Callable[[], None] | None = None,
    ) -> None:
        """Create and prepare every application, call ``before_start``, then start them.

        Preparing (reading keys, generating certificates, importing what serving needs)
        happens before ``before_start``, which is where the first start drops privileges.
        """
        runs: list[_Running] = []
        name = None  # the application being prepared or started, for the error line
        try:
            for config in apps:
                name = config.name
                runs.append(self._create_app(config, whole))
                runs[-1].app.prepare()
            name = None
            if before_start is not None:
                before_start()
            while runs:
                run = runs[0]
                name = run.config.name
                await run.app.start(run.listeners)
                self._running[run.config.name] = runs.pop(0)
                log.debug("[apps.%s] started (%s)", run.config.name, run.config.kind)
        except Exception as exc:
            if name is not None:
                log.error("[apps.%s] cannot start: %s", name, exc)
            raise
        finally:
            for run in runs:  # created but never started: give their sockets back
                for listener in run.listeners:
                    listener.sock.close()
                if run.handler is not None:
                    run.handler.close()

    def _create_app(self, config: AppConfig, whole: HostConfig) -> _Running:
        kind = load_kind(config.kind)
        access_format = _access_format(config, whole)
        ctx = AppContext.for_app(config.name, config.kind, Counters(), access_format=access_format)
        handler = _access_handler(config, whole)
        ctx.access_logger.handlers.clear()
        ctx.access_logger.propagate = False
        ctx.access_logger.setLevel(logging.INFO)
        if handler is not None:
            ctx.access_logger.addHandler(handler)
        workers = workers_of(config)
        app: Application
        listeners = []
        for index in range(workers):
            for address in config.listen:
                key = _socket_key(config.name, address)
                siblings = self._siblings.get(key, [])
                original = siblings[index - 1] if 0 < index <= len(siblings) else self._sockets[key]
                dup = original.dup()
                dup.setblocking(False)
                listeners.append(Listener(sock=dup, endpoint=address.text))
        if workers == 1:
            app = kind.create(config.options, ctx)
        else:
            from portkit.host._workers import WorkerGroup

            # The application each worker runs; its counters are the worker's own.
            inner = AppContext.for_app(
                config.name, config.kind, Counters(), access_format=access_format
            )
            app = WorkerGroup(
                kind.create(config.options, inner),
                ctx,
                count=workers,
                access_fd=_handler_fd(handler),
                grace=whole.host.grace,
            )
        return _Running(config=config, app=app, ctx=ctx, listeners=listeners, handler=handler)

    async def _stop_apps(self, names: list[str], grace: float) -> None:
        await self._stop_runs(self._detach(names), grace)

    def _detach(self, names: list[str]) -> list[_Running]:
        """Take applications out of the running set (before stopping them)."""
        return [self._running.pop(name) for name in names if name in self._running]

    async def _stop_runs(self, runs: list[_Running], grace: float) -> None:
        results = await asyncio.gather(
            *(run.app.stop(grace) for run in runs), return_exceptions=True
        )
        for run, result in zip(runs, results, strict=True):
            if isinstance(result, BaseException):
                log.error("[apps.%s] did not stop cleanly: %r", run.config.name, result)
            for listener in run.listeners:
                listener.sock.close()
            if run.handler is not None:
                run.ctx.access_logger.removeHandler(run.handler)
                run.handler.close()

    def _announce_ready(self) -> None:
        self.ready.set()
        count = sum(len(run.config.listen) for run in self._running.values())
        apps = _count(len(self._running), "application")
        log.info("ready: %s on %s (pid %d)", apps, _count(count, "listener"), os.getpid())
        if self.ready_file is not None:
            _write_json_atomic(self.ready_file, self.status())
        _systemd.notify("READY=1", f"STATUS={apps}", f"MAINPID={os.getpid()}")

    def _write_status(self) -> None:
        try:
            _write_json_atomic(self.status_file, self.status())
        except OSError as exc:
            log.warning("cannot write status file %s: %s", self.status_file, exc)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(STATUS_INTERVAL)
            self._write_status()


def _access_handler(config: AppConfig, whole: HostConfig) -> logging.Handler | None:
    path = config.access_log
    if path is None and whole.host.access_log_dir is not None:
        path = whole.host.access_log_dir / f"{config.name}.log"
    if path is None:
        return None
    handler: logging.Handler
    if path == STDERR:
        handler = logging.StreamHandler(sys.stderr)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
    if _access_format(config, whole) == "combined":
        # The line is whole (time included, where the format puts it).
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    return handler


def _handler_fd(handler: logging.Handler | None) -> int | None:
    """The descriptor an access-log handler writes to (workers write there too)."""
    stream = getattr(handler, "stream", None)
    return None if stream is None else int(stream.fileno())


def _access_format(config: AppConfig, whole: HostConfig) -> str:
    """The application's access-log format; the [host] one applies to HTTP kinds only."""
    if config.access_log_format is not None:
        return config.access_log_format
    return whole.host.access_log_format if config.kind in HTTP_KINDS else "portkit"


def _sockname(sock: socket.socket) -> tuple[str, int]:
    name = sock.getsockname()
    return (str(name[0]), int(name[1]))


def _format(address: tuple[str, int]) -> str:
    host, port = address
    return host_port(host, port)


def _count(number: int, noun: str) -> str:
    """``1 application``, ``2 applications``: log lines a person reads."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _write_json_atomic(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_status(path: Path, *, alive: Callable[[int], bool] | None = None) -> dict[str, Any]:
    """Read a status file written by a running host (raises PortkitError if none runs)."""
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PortkitError(f"no status file at {str(path)!r}: is portkit serve running?") from None
    except (OSError, ValueError) as exc:
        raise PortkitError(f"cannot read status file {str(path)!r}: {exc}") from None
    check = alive or _pid_alive
    if not check(int(doc.get("pid", 0))):
        raise PortkitError(
            f"status file {str(path)!r} is stale: pid {doc.get('pid')} is not running"
        )
    return doc


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
