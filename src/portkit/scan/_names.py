"""The registry's names for a scan's ports, and fast results.

Every result carries the registry's name for its port (``expected``).
:func:`expected_names` gives them as a table indexed by port, built in this process
before the first probe: from a table kept on disk by an earlier run (about 1 ms),
else by asking the registry about the scanned ports (a few ports: about 20 ms, the
registry's load), else, for a sweep, by building the whole table from the registry
(about 40 ms) and keeping it for the next runs. No helper process: one that was
forked once the event loop existed shared its epoll set and sockets, and lost the
first port of a scan with identification (see docs/scan.md for the figures that
chose this).

:func:`result_maker` makes the engines' :class:`PortResult` objects at half the cost
of the dataclass constructor; a sweep makes one per port.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
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
    "MakeResult",
    "expected_names",
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


# Below this many ports, naming each through the registry is cheaper than building the
# whole table (which reads every registry entry once).
_TABLE_THRESHOLD = 4096


def expected_names(transport: str, ports: Sequence[int] | None = None) -> list[str | None]:
    """The registry's service name of every port 0-65535 for ``transport``, as a list.

    Same answers as ``Registry.service_name`` (a port's own entries first, in registry
    order, then the ranges that cover it), so that naming each result of a sweep is a
    list index rather than a registry query. With ``ports`` (fewer than a few thousand),
    only those are named, through the registry: small scans neither build a table nor
    read a kept one (loading the registry's index and naming a few ports takes under a
    millisecond; reading a kept table, several).
    """
    small = ports is not None and len(ports) < _TABLE_THRESHOLD
    if not small:
        kept = load_table(transport)  # a previous run's table: no registry to read
        if kept is not None:
            return kept
    from portkit.registry import default_registry

    registry = default_registry()
    names: list[str | None] = [None] * 65536
    if ports is not None and small:
        for port in ports:
            names[port] = registry.service_name(port, transport)
        return names
    ranges = []
    for service in registry.services:  # registry order: a port's primary entry first
        if service.port is None or not service.name or service.transport != transport:
            continue
        if service.port_end is not None and service.port_end != service.port:
            ranges.append(service)
        elif names[service.port] is None:
            names[service.port] = service.name
    for service in ranges:
        assert service.port is not None
        assert service.port_end is not None
        for port in range(service.port, min(service.port_end, 65535) + 1):
            if names[port] is None:
                names[port] = service.name
    store_table(transport, names)
    return names


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
        from portkit._version import __version__
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
