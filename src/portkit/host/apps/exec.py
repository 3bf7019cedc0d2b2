"""exec: inetd-style services, one program run per connection with the socket as its stdio.

The program is an argv list, executed directly (never through a shell), with the connected
socket as stdin and stdout (a blocking socket, as inetd hands it over). Its stderr goes to
the host's log, line by line, prefixed with the application and peer. The environment is
``PATH`` plus ``env`` from the configuration plus the peer, under the names inetd-style
tools use: ``REMOTE_HOST``/``REMOTE_ADDR``/``REMOTE_PORT`` (xinetd, CGI) and
``TCPREMOTEIP``/``TCPREMOTEPORT``/``TCPLOCALIP``/``TCPLOCALPORT``/``PROTO=TCP`` (UCSPI).

Limits, as xinetd has them: ``instances`` programs at once, ``per_source`` programs per
peer address, and ``cps``: more than ``cps`` connections in one second and the service
refuses connections for ``cps_wait`` seconds. Refused connections are closed at once and
counted as ``rejected``. ``timeout`` ends a program that runs too long. On stop, programs
get the grace period, then SIGTERM, then SIGKILL (their whole process group).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from portkit.host._app import AppContext, Application, Kind, Where, format_peer, option
from portkit.host._limits import Admission
from portkit.host.apps._sockets import SocketApplication, tcp_byte_counts

__all__ = ["KINDS", "ExecApp", "ExecKind", "ExecOptions", "peer_environment"]

#: Seconds between SIGTERM and SIGKILL when a program must end. Shorter than the host's
#: ABORT_WAIT, so that a program ignoring SIGTERM is killed before a stop gives up waiting
#: (after which the process may exit and leave the program running on its own).
KILL_WAIT = 1.0
#: Longest stderr line passed to the log (longer lines are split).
STDERR_LINE = 4096


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ExecOptions:
    """Options of an ``exec`` application."""

    argv: tuple[str, ...] = dataclasses.field(
        metadata={"help": "program and arguments, e.g. ['/usr/bin/date', '-u']; no shell"}
    )
    instances: int = option(64, help="programs running at once (xinetd instances)", min=1)
    per_source: int = option(16, help="programs at once per peer address", min=1)
    cps: int = option(50, help="connections per second before pausing; 0: no limit", min=0)
    cps_wait: float = option(
        10.0, help="seconds to refuse connections after cps is exceeded", min=0
    )
    timeout: float = option(0.0, help="seconds a program may run; 0: no limit", min=0)
    env: tuple[str, ...] = option((), help="extra environment, NAME=value entries")
    cwd: Path | None = option(None, help="working directory of the program")


def peer_environment(
    peer: tuple[str, int], local: tuple[str, int], base: Mapping[str, str]
) -> dict[str, str]:
    """The program's environment: ``base`` plus the connection's addresses."""
    env = dict(base)
    env.update(
        REMOTE_HOST=peer[0],
        REMOTE_ADDR=peer[0],
        REMOTE_PORT=str(peer[1]),
        TCPREMOTEIP=peer[0],
        TCPREMOTEPORT=str(peer[1]),
        TCPLOCALIP=local[0],
        TCPLOCALPORT=str(local[1]),
        PROTO="TCP",
    )
    return env


class ExecApp(SocketApplication):
    """Runs ``argv`` for each connection."""

    def __init__(self, options: ExecOptions, ctx: AppContext) -> None:
        super().__init__(ctx)
        self.options = options
        self.base_env = {"PATH": os.environ.get("PATH", os.defpath)}
        for entry in options.env:
            name, _, value = entry.partition("=")
            self.base_env[name] = value
        self.admission = Admission(options.instances, options.per_source)
        self._recent: collections.deque[float] = collections.deque()
        self._paused_until = 0.0

    def admit(self, peer: tuple[str, int]) -> bool:
        # instances and per_source are counted by self.admission before this is asked.
        now = time.monotonic()
        if now < self._paused_until:
            return False
        if self.options.cps:
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.options.cps:
                self._paused_until = now + self.options.cps_wait
                self.ctx.logger.warning(
                    "more than %d connections/s: refusing for %.1fs",
                    self.options.cps,
                    self.options.cps_wait,
                )
                return False
            self._recent.append(now)
        return True

    async def serve(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        who = format_peer(peer)
        local = conn.getsockname()
        env = peer_environment(peer, (str(local[0]), int(local[1])), self.base_env)
        # The program shares the socket's open file description: it must be blocking,
        # as inetd hands it over; the host does not touch it again.
        conn.setblocking(True)
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *self.options.argv,
            stdin=conn.fileno(),
            stdout=conn.fileno(),
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=self.options.cwd,
            start_new_session=True,  # its own process group, to end it whole
        )
        # The child holds the connection now. The host keeps its descriptor, untouched,
        # only to read the connection's byte counts from the kernel when the program ends
        # (the bytes never pass through the host); the client sees the close then.
        # A task of its own, awaited below, not a TaskGroup's: when the host's stop cancels
        # this connection, the relay must go on reading until the program has ended, so that
        # its last words (often why it failed) still reach the log.
        relay = asyncio.create_task(self._relay_stderr(proc, who))
        try:
            if self.options.timeout:
                try:
                    async with asyncio.timeout(self.options.timeout):
                        await proc.wait()
                except TimeoutError:
                    self.ctx.logger.warning(
                        "%s: %s ran over %.1fs", who, self.options.argv[0], self.options.timeout
                    )
                    await _end(proc)
            else:
                await proc.wait()
        finally:
            if proc.returncode is None:  # cancelled: the host is stopping and grace ran out
                await asyncio.shield(_end(proc))
            await relay
            counts = tcp_byte_counts(conn)
            if counts is not None:
                self.counters.bytes_in += counts[0]
                self.counters.bytes_out += counts[1]
            conn.close()
        status = proc.returncode
        if status:
            self.counters.errors += 1
        self.ctx.access(
            who, f"{self.options.argv[0]} exit {status} in {time.monotonic() - started:.3f}s"
        )

    async def _relay_stderr(self, proc: asyncio.subprocess.Process, who: str) -> None:
        assert proc.stderr is not None
        while True:
            try:
                line = await proc.stderr.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:
                line = exc.partial
                if line:
                    self._log_stderr(who, line)
                return
            except asyncio.LimitOverrunError as exc:
                line = await proc.stderr.read(min(exc.consumed, STDERR_LINE))
            self._log_stderr(who, line)

    def _log_stderr(self, who: str, line: bytes) -> None:
        text = line[:STDERR_LINE].decode("utf-8", "replace").rstrip()
        self.ctx.logger.warning("%s: %s: %s", who, self.options.argv[0], text)


async def _end(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM the program's process group, SIGKILL it if still there after KILL_WAIT."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            async with asyncio.timeout(KILL_WAIT):
                await proc.wait()
            return
        except TimeoutError:
            continue


@dataclasses.dataclass(frozen=True, slots=True)
class ExecKind:
    """The ``exec`` kind."""

    name: str = "exec"
    options: type[ExecOptions] = ExecOptions

    def check(self, options: ExecOptions, where: Where) -> None:
        if not options.argv or not options.argv[0]:
            raise where.error("argv", "must name a program: ['/usr/bin/date', '-u']")
        program = options.argv[0]
        found = shutil.which(program) if "/" not in program else program
        if found is None or not os.access(found, os.X_OK) or not Path(found).is_file():
            raise where.error("argv", f"program {program!r} not found or not executable")
        for entry in options.env:
            name, sep, _value = entry.partition("=")
            if not sep or not name or not name.replace("_", "").isalnum():
                raise where.error("env", f"entries are NAME=value, not {entry!r}")
        if options.cwd is not None and not options.cwd.is_dir():
            raise where.error("cwd", f"directory {str(options.cwd)!r} does not exist")

    def create(self, options: ExecOptions, ctx: AppContext) -> Application:
        return ExecApp(options, ctx)


KINDS: Mapping[str, Kind[Any]] = {"exec": ExecKind()}
