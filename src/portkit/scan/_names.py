"""The registry's names for a scan's ports (computed meanwhile), and fast results.

Naming every port of a sweep (the ``expected`` field of each result) means loading
the registry and building a table of 65,536 entries: about a tenth of a second of
Python, as long as the rest of a small scan's start-up. :class:`BackgroundNames` forks
a process that builds the table (with :func:`portkit.scan._scan.expected_names`, the
same function, so the same answers) and sends it back through a pipe, while the scan
itself starts at once. The engine holds its results until :meth:`poll` has the table.

If the process fails for any reason, the table is built here instead: slower, never
different.

:func:`result_maker` makes the engines' :class:`PortResult` objects at half the cost
of the dataclass constructor; a sweep makes one per port.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from itertools import repeat
from typing import TYPE_CHECKING

from portkit.scan._model import PortResult, PortState

if TYPE_CHECKING:
    from pathlib import Path

# pickle, tempfile, hashlib and pathlib are imported where used: this module is on every
# scan's start-up path, and they cost ~10 ms of imports together.

__all__ = [
    "BackgroundNames",
    "MakeResult",
    "load_table",
    "make_results",
    "result_maker",
    "store_table",
]

Names = Sequence[str | None]
# (host, port, state, reason, hostname, expected, rtt) -> a PortResult of one transport
MakeResult = Callable[[str, int, PortState, str, str | None, str | None, float | None], PortResult]
_KNOWN_FIELDS = (
    "host",
    "port",
    "transport",
    "state",
    "reason",
    "hostname",
    "expected",
    "rtt",
    "identified",
)


def _constructed(transport: str) -> MakeResult:
    def make(
        host: str,
        port: int,
        state: PortState,
        reason: str,
        hostname: str | None,
        expected: str | None,
        rtt: float | None,
    ) -> PortResult:
        return PortResult(
            host=host,
            port=port,
            transport=transport,
            state=state,
            reason=reason,
            hostname=hostname,
            expected=expected,
            rtt=rtt,
        )

    return make


def result_maker(transport: str, *, fast: bool = True) -> MakeResult:
    """A maker of :class:`PortResult` objects of ``transport``, twice as fast as ``PortResult()``.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``;
    a sweep makes 65,536 results, and that was a tenth of its Python time. This one
    fills the slots through their descriptors: the same object (equal, same hash and
    repr; a test checks). Should ``PortResult``'s fields ever differ from the ones
    known here, or with ``fast=False``, it calls the constructor.
    """
    names = tuple(f.name for f in dataclasses.fields(PortResult))
    if not fast or names != _KNOWN_FIELDS or not hasattr(PortResult, "__slots__"):
        return _constructed(transport)
    setters = [getattr(PortResult, name).__set__ for name in _KNOWN_FIELDS]
    host_, port_, transport_, state_, reason_, hostname_, expected_, rtt_, identified_ = setters
    new = object.__new__

    def make(
        host: str,
        port: int,
        state: PortState,
        reason: str,
        hostname: str | None,
        expected: str | None,
        rtt: float | None,
    ) -> PortResult:
        result = new(PortResult)
        host_(result, host)
        port_(result, port)
        transport_(result, transport)
        state_(result, state)
        reason_(result, reason)
        hostname_(result, hostname)
        expected_(result, expected)
        rtt_(result, rtt)
        identified_(result, None)
        return result

    make.fast = True  # type: ignore[attr-defined]
    return make


def make_results(
    transport: str,
    hosts: Iterable[str],
    ports: Sequence[int],
    states: Iterable[PortState],
    reasons: Iterable[str],
    hostnames: Iterable[str | None],
    expected: Iterable[str | None],
    rtts: Iterable[float | None],
    *,
    fast: bool = True,
) -> list[PortResult]:
    """One :class:`PortResult` per port, field by field: the same objects as ``PortResult()``.

    Each field is set for the whole batch by one ``map`` over its slot's setter, so
    the loops run in C; a sweep's 65,535 results cost about a third of what one call
    of :func:`result_maker`'s maker per result does. ``fast=False`` (or fields other
    than the known ones) uses the constructor. Every iterable gives one value per port.
    """
    names = tuple(f.name for f in dataclasses.fields(PortResult))
    if not fast or names != _KNOWN_FIELDS or not hasattr(PortResult, "__slots__"):
        return [
            PortResult(
                host=host,
                port=port,
                transport=transport,
                state=state,
                reason=reason,
                hostname=hostname,
                expected=name,
                rtt=rtt,
            )
            for host, port, state, reason, hostname, name, rtt in zip(
                hosts, ports, states, reasons, hostnames, expected, rtts, strict=True
            )
        ]
    count = len(ports)
    results = list(map(object.__new__, repeat(PortResult, count)))
    run = deque[None](maxlen=0).extend
    columns: tuple[Iterable[object], ...] = (
        hosts,
        ports,
        repeat(transport),
        states,
        reasons,
        hostnames,
        expected,
        rtts,
        repeat(None),
    )
    for name, values in zip(_KNOWN_FIELDS, columns, strict=True):
        setter = getattr(PortResult, name).__set__
        run(map(setter, results, values))
    return results


class BackgroundNames:
    """A table of names being built by ``build`` in a forked process."""

    def __init__(self, build: Callable[[], Names]) -> None:
        self._build = build
        self._names: Names | None = None
        self._buffer = bytearray()
        read_fd, write_fd = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:  # pragma: no cover - runs in the forked process
            os.close(read_fd)
            self._child(write_fd)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self._fd: int | None = read_fd

    def fileno(self) -> int | None:
        """The descriptor to watch while the table is on its way (None once it is here)."""
        return self._fd

    def poll(self) -> Names | None:
        """The table if it has arrived, else None (never blocks)."""
        if self._names is None and self._fd is not None:
            while True:
                try:
                    chunk = os.read(self._fd, 1 << 20)
                except BlockingIOError:
                    return None
                if not chunk:
                    self._finish()
                    break
                self._buffer += chunk
        return self._names

    def wait(self) -> Names:
        """The table, waiting for it if need be."""
        if self._names is None and self._fd is not None:
            os.set_blocking(self._fd, True)
            while chunk := os.read(self._fd, 1 << 20):
                self._buffer += chunk
            self._finish()
        assert self._names is not None
        return self._names

    def close(self) -> None:
        """Stop the process if it is still working; idempotent."""
        if self._fd is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            os.close(self._fd)
            self._fd = None

    def _finish(self) -> None:
        import pickle

        assert self._fd is not None
        _pid, status = os.waitpid(self._pid, 0)
        os.close(self._fd)
        self._fd = None
        names: Names | None = None
        if os.waitstatus_to_exitcode(status) == 0:
            with contextlib.suppress(Exception):
                names = pickle.loads(self._buffer)
        self._buffer = bytearray()
        # The process failed (or said nothing sensible): build it here, same answers.
        self._names = names if isinstance(names, list) else self._build()

    def _child(self, write_fd: int) -> None:  # pragma: no cover - in the forked process
        code = 1
        try:
            import pickle

            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scan decides when to stop
            signal.set_wakeup_fd(-1)  # the scan's event loop is not ours
            data = memoryview(pickle.dumps(list(self._build()), pickle.HIGHEST_PROTOCOL))
            while data:
                data = data[os.write(write_fd, data) :]
            code = 0
        finally:
            os._exit(code)


# --- the table, kept between runs ---------------------------------------------------
#
# Building a sweep's table reads the whole registry: ~0.1 s of Python in every run.
# The table is kept in the registry's cache directory, in a plain text file ("port
# TAB name" lines: nothing is executed on reading it), under a name derived from
# everything it depends on: the transport, portkit's version, this format, and the
# size and modification time of the registry's data files (the shipped one and the
# one `portkit registry update` writes). Any change there gives a new name, so a
# stale table is never read; anything odd about a file means "build it again".

_TABLE_FORMAT = 1
_PREFIX = "scan-names-"


def _table_path(transport: str) -> Path | None:
    import hashlib
    from pathlib import Path

    try:
        import portkit.registry
        from portkit import __version__
        from portkit.registry import cache_path

        live = cache_path()
        # Where the registry keeps its shipped data (a plain path, as the registry does).
        shipped_file = Path(portkit.registry.__file__).with_name("data") / live.name
        parts = [transport, __version__, str(_TABLE_FORMAT)]
        for source in (shipped_file, live):
            try:
                info = source.stat()
                parts += [str(source), str(info.st_size), str(info.st_mtime_ns)]
            except FileNotFoundError:
                parts += [str(source), "-"]
    except Exception:  # no kept table is always a correct answer
        return None
    key = hashlib.blake2b("\0".join(parts).encode(), digest_size=10).hexdigest()
    return live.parent / f"{_PREFIX}{transport}-{key}.txt"


def load_table(transport: str) -> list[str | None] | None:
    """The kept table of names for ``transport``, or None (absent, stale or damaged)."""
    path = _table_path(transport)
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    names: list[str | None] = [None] * 65536
    lines = text.split("\n")
    if lines[0] != f"portkit scan names {_TABLE_FORMAT} {transport}" or lines[-1] != "end":
        return None  # not ours, or cut short
    try:
        for line in lines[1:-1]:
            port, name = line.split("\t")
            names[int(port)] = name
    except (ValueError, IndexError):
        return None
    return names


def store_table(transport: str, names: Sequence[str | None]) -> None:
    """Keep ``names`` for the next runs (quietly nothing if the directory is not writable)."""
    path = _table_path(transport)
    if path is None or len(names) != 65536:
        return
    body = "".join(f"{port}\t{name}\n" for port, name in enumerate(names) if name)
    text = f"portkit scan names {_TABLE_FORMAT} {transport}\n{body}end"
    import tempfile

    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=path.parent, prefix=".names-", delete=False
        ) as handle:
            handle.write(text)
        os.replace(handle.name, path)  # whole or not at all
        for old in path.parent.glob(f"{_PREFIX}{transport}-*.txt"):
            if old != path:  # tables of an older registry
                old.unlink(missing_ok=True)
