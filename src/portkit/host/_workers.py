"""Worker processes: one application served by several processes, one per CPU by default.

One Python process serves on one core. The ``web`` and ``video`` kinds take a ``workers``
option (default: the CPUs this process may run on); with more than one, the host runs the
application as a :class:`WorkerGroup`, an :class:`~portkit.host._app.Application` that
serves nothing itself and keeps ``workers`` processes serving instead.

How the pieces keep their promises:

- **Sockets and privileges.** The host binds every listening socket before privileges
  drop, as for any application, and for a group binds one ``SO_REUSEPORT`` socket per
  worker and address (the kernel spreads new connections over them by a hash of the
  connection's addresses). The group prepares its application (keys, certificates) in
  :meth:`WorkerGroup.prepare`, before the drop, and forks its workers after it: they hold
  the prepared application, their sockets and nothing else. A socket inherited through
  socket activation is one socket: the workers then all accept on it.
- **No inherited event loop.** A worker is forked from the running host: it lets go of
  every descriptor but its own (the loop's epoll set, its self-pipe, other applications'
  sockets, other workers' pipes: :func:`portkit._inherited.silence_inherited`), resets the signal handlers,
  freezes the inherited objects out of the garbage collector (collecting one would close
  a descriptor number that may by then name something else) and runs a new event loop
  of its own.
- **Exact limits.** ``max_connections`` and ``per_source`` are counted in one
  :class:`~portkit.host._limits.AdmissionTable` in shared memory, so a source's
  connections count together whichever worker accepted them.
- **Counters.** Each worker writes its counters into its row of shared memory when a
  connection opens or closes, when a response ends, and every :data:`PUBLISH_INTERVAL`;
  the group's counters are the sum, plus what workers that died had counted.
- **Access log.** Each worker writes every line with one ``write`` to the same file,
  opened once by the host with ``O_APPEND``: lines never mix (for a pipe as standard
  error, lines up to ``PIPE_BUF``, 4096 bytes).
- **Stopping.** :meth:`WorkerGroup.stop` tells every worker to stop with the grace
  period, then kills what is left after it. SIGTERM to a worker itself is a graceful stop
  too (systemd signals every process of a service), after which the group starts another
  unless it is stopping. A worker whose parent dies gets ``SIGKILL``
  from the kernel (``PR_SET_PDEATHSIG``), and one whose control pipe ends stops on its own:
  no worker outlives the host.
- **Restarts.** A worker that dies is started again (its connections died with it, and
  the table forgets them), at once the first :data:`RESTART_BURST` times within
  :data:`RESTART_WINDOW` seconds, then after a doubling delay (at most
  :data:`RESTART_DELAY_MAX` seconds); each time with a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import mmap
import os
import signal
import socket
import struct
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn

from portkit._errors import PortkitError
from portkit._inherited import silence_inherited
from portkit.host._app import ABORT_WAIT, AppContext, Application, Counters, Listener
from portkit.host._limits import Admission, AdmissionTable, SharedAdmission

__all__ = ["WorkerGroup", "default_workers"]

log = logging.getLogger("portkit.host")

#: Seconds a worker has to start serving (fork, then the application's start).
READY_TIMEOUT = 30.0
#: Seconds between two writes of a worker's counters when nothing else writes them.
PUBLISH_INTERVAL = 0.1
#: Restarts at once within RESTART_WINDOW seconds; beyond, a delay doubling up to the max.
RESTART_BURST = 3
RESTART_WINDOW = 60.0
RESTART_DELAY_MAX = 30.0

_PR_SET_PDEATHSIG = 1  # prctl(2)
_ROW = struct.Struct("=6q")
_FIELDS = (
    "connections_open",
    "connections_total",
    "bytes_in",
    "bytes_out",
    "errors",
    "rejected",
)


def default_workers() -> int:
    """The number of CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class _Board:
    """The workers' counters in shared memory: one row of six integers per worker."""

    def __init__(self, workers: int) -> None:
        self._map = mmap.mmap(-1, _ROW.size * workers)  # anonymous, MAP_SHARED
        self.retired = [0] * len(_FIELDS)  # what workers that died had counted

    def publish(self, worker: int, c: Counters) -> None:
        _ROW.pack_into(
            self._map,
            worker * _ROW.size,
            c.connections_open,
            c.connections_total,
            c.bytes_in,
            c.bytes_out,
            c.errors,
            c.rejected,
        )

    def retire(self, worker: int) -> None:
        """A worker died: keep its totals, drop its open connections, clear its row."""
        row = _ROW.unpack_from(self._map, worker * _ROW.size)
        for i, value in enumerate(row):
            if _FIELDS[i] != "connections_open":
                self.retired[i] += value
        _ROW.pack_into(self._map, worker * _ROW.size, 0, 0, 0, 0, 0, 0)

    def fill(self, counters: Counters) -> None:
        """Set ``counters`` to the sum over the workers."""
        sums = list(self.retired)
        for offset in range(0, len(self._map), _ROW.size):
            for i, value in enumerate(_ROW.unpack_from(self._map, offset)):
                sums[i] += value
        for name, value in zip(_FIELDS, sums, strict=True):
            setattr(counters, name, value)

    def close(self) -> None:
        self._map.close()


class _Worker:
    """The parent's view of one worker process."""

    __slots__ = ("control", "exited", "index", "pid", "pidfd")

    def __init__(self, index: int, pid: int, control: socket.socket, pidfd: int) -> None:
        self.index = index
        self.pid = pid
        self.control = control  # the parent's end of the worker's control pipe
        self.pidfd = pidfd  # readable once the process has exited
        self.exited: asyncio.Future[int] = asyncio.get_running_loop().create_future()


class WorkerGroup(Application):
    """Serves one application with ``count`` forked worker processes.

    ``template`` is the application each worker runs (created and prepared here, started
    in the workers only); ``listeners`` holds the listening sockets worker by worker:
    worker ``w`` serves ``listeners[w * per_worker : (w + 1) * per_worker]``.
    """

    def __init__(
        self,
        template: Application,
        ctx: AppContext,
        *,
        count: int,
        access_fd: int | None,
        grace: float,
    ) -> None:
        super().__init__(ctx)
        self.template = template
        self.count = count
        self.grace = grace  # for a worker whose host went away without a word
        self._uvloop = False
        self._access_fd = access_fd
        self._listeners: list[list[Listener]] = []
        self._workers: dict[int, _Worker] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._deaths: dict[int, list[float]] = {}
        self._stopping = asyncio.Event()  # no restarts once set
        self._board = _Board(count)
        admission = getattr(template, "admission", None)
        self._table: AdmissionTable | None = None
        if isinstance(admission, Admission):
            self._table = AdmissionTable(admission.limit, admission.per_source, count)

    @property
    def counters(self) -> Counters:
        self._board.fill(self.ctx.counters)
        return self.ctx.counters

    @property
    def pids(self) -> list[int]:
        """The process ids of the workers now running, in worker order."""
        return [self._workers[i].pid for i in sorted(self._workers)]

    def prepare(self) -> None:
        self.template.prepare()

    async def start(self, listeners: Sequence[Listener]) -> None:
        per_worker = len(listeners) // self.count
        self._listeners = [
            list(listeners[w * per_worker : (w + 1) * per_worker]) for w in range(self.count)
        ]
        try:
            for index in range(self.count):
                await self._spawn(index)
        except BaseException:
            await self.stop(0.0)
            raise

    async def stop(self, grace: float) -> None:
        self._stopping.set()
        for task in list(self._watchers):
            task.cancel()  # no restart from now on
        if self._watchers:
            await asyncio.wait(list(self._watchers))
        workers = list(self._workers.values())
        for worker in workers:
            with contextlib.suppress(OSError):
                worker.control.sendall(f"stop {grace!r}\n".encode())
        if workers:
            # The workers end their connections after `grace` themselves; the margin is
            # for the abort that follows, as for an application in the host process.
            _done, late = await asyncio.wait(
                [w.exited for w in workers], timeout=grace + ABORT_WAIT + 1.0
            )
            for worker in workers:
                if not worker.exited.done():
                    log.warning(
                        "[apps.%s] worker %d (pid %d) did not stop in time: killing it",
                        self.ctx.name,
                        worker.index,
                        worker.pid,
                    )
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(worker.pid, signal.SIGKILL)
            if late:
                await asyncio.wait(late, timeout=ABORT_WAIT)
        for worker in list(self._workers.values()):
            self._forget(worker)
        if self._table is not None:
            self._table.close()
            self._table = None

    # -- the parent's side ----------------------------------------------------------------

    async def _spawn(self, index: int) -> None:
        """Fork worker ``index`` and wait until it serves (or says why it cannot)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        loop = asyncio.get_running_loop()
        self._uvloop = type(loop).__module__.startswith("uvloop")
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the worker (coverage does not follow)
            ours.detach()  # closed with everything else inherited
            self._worker_main(index, theirs)
        theirs.close()
        worker = _Worker(index, pid, ours, os.pidfd_open(pid))
        self._workers[index] = worker
        loop.add_reader(worker.pidfd, self._reap, worker)
        ours.setblocking(False)
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                line = await self._read_line(ours, worker)
        except TimeoutError:
            line = f"error: not serving after {READY_TIMEOUT:.0f}s"
        if line != "ready":
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            await asyncio.wait([worker.exited], timeout=ABORT_WAIT)
            self._forget(worker)
            why = line.removeprefix("error: ") or "it exited"
            raise PortkitError(f"worker {index} cannot start: {why}")
        task = asyncio.create_task(self._watch(worker))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)
        log.debug("[apps.%s] worker %d serving (pid %d)", self.ctx.name, index, pid)

    async def _read_line(self, sock: socket.socket, worker: _Worker) -> str:
        """The worker's one message ("ready" or "error: ..."), or "" if it exited first."""
        loop = asyncio.get_running_loop()
        data = b""
        while not data.endswith(b"\n"):
            receiving = asyncio.ensure_future(loop.sock_recv(sock, 4096))
            either: list[asyncio.Future[Any]] = [receiving, worker.exited]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                return ""
            chunk = receiving.result()
            if not chunk:
                return ""
            data += chunk
        return data.decode("utf-8", "replace").strip()

    def _reap(self, worker: _Worker) -> None:
        """The worker's pidfd is readable: it has exited; collect its status."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(worker.pidfd)
        try:
            _pid, status = os.waitpid(worker.pid, 0)
        except ChildProcessError:
            status = 0
        if not worker.exited.done():
            worker.exited.set_result(status)

    def _forget(self, worker: _Worker) -> None:
        if self._workers.get(worker.index) is worker:
            del self._workers[worker.index]
        if not worker.exited.done():
            asyncio.get_running_loop().remove_reader(worker.pidfd)
            worker.exited.cancel()
        os.close(worker.pidfd)
        worker.control.close()
        self._board.retire(worker.index)
        if self._table is not None:
            self._table.forget(worker.index)

    async def _watch(self, worker: _Worker) -> None:
        """Wait for the worker to exit; unless the group is stopping, start another."""
        # Shielded: cancelling this task (stop) must not cancel the future stop waits on.
        status = await asyncio.shield(worker.exited)
        if self._stopping.is_set():
            return
        self._forget(worker)
        delay = self._restart_delay(worker.index)
        log.error(
            "[apps.%s] worker %d (pid %d) %s: restarting it%s",
            self.ctx.name,
            worker.index,
            worker.pid,
            _describe(status),
            f" in {delay:.0f}s" if delay else "",
        )
        while not self._stopping.is_set():
            await asyncio.sleep(delay)
            if self._stopping.is_set():
                return
            try:
                await self._spawn(worker.index)
            except PortkitError as exc:
                delay = self._restart_delay(worker.index)
                log.error("[apps.%s] %s: retrying in %.0fs", self.ctx.name, exc, delay)
            else:
                return

    def _restart_delay(self, index: int) -> float:
        now = time.monotonic()
        deaths = [t for t in self._deaths.get(index, []) if now - t < RESTART_WINDOW]
        deaths.append(now)
        self._deaths[index] = deaths
        if len(deaths) <= RESTART_BURST:
            return 0.0
        return float(min(RESTART_DELAY_MAX, 2 ** (len(deaths) - RESTART_BURST - 1)))

    # -- the worker's side ----------------------------------------------------------------

    def _worker_main(self, index: int, control: socket.socket) -> NoReturn:  # pragma: no cover
        """Run in the forked worker: serve until told to stop, then exit (never return)."""
        code = 0
        try:
            parent = os.getppid()
            keep = [
                control.fileno(),
                *(listener.sock.fileno() for listener in self._listeners[index]),
            ]
            if self._access_fd is not None:
                keep.append(self._access_fd)
            if self._table is not None:
                keep.append(self._table.fd)
            silence_inherited(*keep)
            _die_with_parent()
            if os.getppid() != parent:
                os._exit(0)  # the parent died before the line above took effect
            # The host's handlers would act on the host's loop, a copy that is not ours.
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGINT, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)  # the host decides (it got them too)
            for signum in (signal.SIGTERM, signal.SIGCHLD, signal.SIGALRM):
                signal.signal(signum, signal.SIG_DFL)
            gc.freeze()
            asyncio.events._set_running_loop(None)
            loop = _new_loop(uvloop=self._uvloop)
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._serve(index, control))
        except BaseException as exc:
            code = 1
            with contextlib.suppress(Exception):
                message = str(exc) or type(exc).__name__
                control.setblocking(True)
                control.sendall(f"error: {message}\n".encode("utf-8", "replace"))
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os._exit(code)

    async def _serve(self, index: int, control: socket.socket) -> None:  # pragma: no cover
        app = self.template
        board = self._board
        counters = app.ctx.counters
        if self._table is not None:
            setattr(app, "admission", SharedAdmission(self._table, index))  # noqa: B010
        counters.on_change = lambda c: board.publish(index, c)
        if self._access_fd is not None:
            _write_lines_to(app.ctx.access_logger, self._access_fd)
        await app.start(self._listeners[index])
        control.setblocking(False)
        loop = asyncio.get_running_loop()
        # SIGTERM to a worker (systemd's stop signals every process of the service) is a
        # graceful stop too; the host starts another unless it is stopping itself.
        terminated = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, terminated.set)
        await loop.sock_sendall(control, b"ready\n")
        publisher = asyncio.create_task(_publish_now_and_then(board, index, counters))
        told = asyncio.create_task(_read_stop(control))
        signalled = asyncio.create_task(terminated.wait())
        await asyncio.wait([told, signalled], return_when=asyncio.FIRST_COMPLETED)
        # Told to stop: with the host's grace for this stop; the host gone without a word
        # (its end of the pipe closed), or SIGTERM: with the configured grace.
        grace = told.result() if told.done() else None
        told.cancel()
        signalled.cancel()
        await app.stop(self.grace if grace is None else grace)
        publisher.cancel()
        board.publish(index, counters)


async def _read_stop(control: socket.socket) -> float | None:  # pragma: no cover - worker
    """Wait for ``stop GRACE`` from the host: GRACE, or None when the pipe ends first."""
    loop = asyncio.get_running_loop()
    data = b""
    while not data.endswith(b"\n"):
        chunk = await loop.sock_recv(control, 4096)
        if not chunk:
            return None
        data += chunk
    return float(data.removeprefix(b"stop ").strip() or 0.0)


async def _publish_now_and_then(board: _Board, index: int, counters: Counters) -> None:
    """Write the counters that change without an event (bytes in) now and then."""
    while True:  # pragma: no cover - runs in the worker
        board.publish(index, counters)
        await asyncio.sleep(PUBLISH_INTERVAL)


class _LineHandler(logging.Handler):
    """Writes each record with one ``write`` to a descriptor opened with ``O_APPEND``.

    Several processes share the access log: a record written in one system call is never
    split by another process's (a buffered stream may write a long line in pieces).
    """

    def __init__(self, fd: int, formatter: logging.Formatter | None) -> None:
        super().__init__()
        self._fd = fd
        if formatter is not None:
            self.setFormatter(formatter)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = (self.format(record) + "\n").encode("utf-8", "backslashreplace")
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view) :]
        except Exception:
            self.handleError(record)


def _write_lines_to(logger: logging.Logger, fd: int) -> None:  # pragma: no cover
    """Replace ``logger``'s handlers (inherited from the host) by one writing to ``fd``."""
    formatter = logger.handlers[0].formatter if logger.handlers else None
    logger.handlers.clear()
    logger.addHandler(_LineHandler(fd, formatter))


def _die_with_parent() -> None:  # pragma: no cover - runs in the worker
    """Ask the kernel for SIGKILL when the host process dies (Linux ``PR_SET_PDEATHSIG``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _new_loop(*, uvloop: bool) -> asyncio.AbstractEventLoop:  # pragma: no cover
    """A new event loop of the host's kind (uvloop when the host runs on it)."""
    if uvloop:
        import uvloop as module

        loop: asyncio.AbstractEventLoop = module.new_event_loop()
        return loop
    return asyncio.new_event_loop()


def _describe(status: int) -> str:
    """``exited with status 3`` / ``was killed by SIGKILL`` for a wait status."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return f"was killed by {name}"
    return f"exited with status {os.waitstatus_to_exitcode(status)}"
