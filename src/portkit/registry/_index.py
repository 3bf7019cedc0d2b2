"""The loaded registry and its indexes.

Data is read on first use (not at import), from the user's cache when ``portkit
registry update`` has put a live IANA file there, else from the data shipped with
portkit. The port index is three flat arrays (ports, offsets, entry numbers) read from the
saved index with one copy each, so a lookup costs microseconds once loaded and loading costs
little more than reading two files.
"""

from __future__ import annotations

import _thread
import marshal
import os
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator

from portkit._errors import LookupNotFound, RegistryError
from portkit.registry._datafile import row_to_service, split_lines
from portkit.registry._model import TRANSPORTS, RegistryInfo, Service

TYPE_CHECKING = False  # not `typing` at run time: it is on every command's start-up path
if TYPE_CHECKING:
    from pathlib import Path

    from portkit.registry._query import Answer

__all__ = ["Registry", "cache_path", "default_registry", "reset_default_registry"]

DATA_FILE = "services.tsv"


def cache_path() -> Path:
    """Where ``portkit registry update`` keeps the live registry ($PORTKIT_CACHE_DIR wins)."""
    from pathlib import Path

    return Path(_cache_file())


def _cache_file() -> str:
    """:func:`cache_path` as a string: the start-up path of a lookup does not import pathlib."""
    override = os.environ.get("PORTKIT_CACHE_DIR")
    if override:
        return os.path.join(override, DATA_FILE)
    platform = sys.platform  # a variable: type checkers would call the other branch dead
    if platform == "linux":
        # What platformdirs answers on Linux (the XDG base directory rule), without
        # importing it on every start-up.
        base = os.environ.get("XDG_CACHE_HOME", "").strip() or os.path.expanduser("~/.cache")
        return os.path.join(base, "portkit", DATA_FILE)
    from platformdirs import user_cache_dir

    return os.path.join(user_cache_dir("portkit"), DATA_FILE)


def _check_transport(transport: str | None) -> str | None:
    if transport is None:
        return None
    lowered = transport.lower()
    if lowered not in TRANSPORTS:
        raise LookupNotFound(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
    return lowered


class _PortIndex:
    """Entry numbers by single port, flat: ``ports`` sorted, the entries of ``ports[i]`` are
    ``entries[offsets[i]:offsets[i + 1]]`` (in data file order, so conventional first)."""

    __slots__ = ("entries", "offsets", "ports")

    def __init__(self, ports: array[int], offsets: array[int], entries: array[int]) -> None:
        self.ports = ports
        self.offsets = offsets
        self.entries = entries

    @classmethod
    def of(cls, by_port: dict[int, list[int]]) -> _PortIndex:
        ports = array("H", sorted(by_port))
        offsets = array("I", [0])
        entries = array("I")
        for port in ports:
            entries.extend(by_port[port])
            offsets.append(len(entries))
        return cls(ports, offsets, entries)

    def get(self, port: int) -> array[int]:
        i = bisect_left(self.ports, port)
        if i == len(self.ports) or self.ports[i] != port:
            return array("I")
        return self.entries[self.offsets[i] : self.offsets[i + 1]]

    def between(self, low: int, high: int) -> array[int]:
        """The entries of every port from ``low`` to ``high``, by port."""
        first = bisect_left(self.ports, low)
        last = bisect_right(self.ports, high)
        return self.entries[self.offsets[first] : self.offsets[last]]


def _port_index(items: list[Service | list[str] | None]) -> tuple[_PortIndex, list[int]]:
    """Entry numbers by single port, and the numbers of range entries."""
    by_port: dict[int, list[int]] = {}
    ranges: list[int] = []
    for index, item in enumerate(items):
        if isinstance(item, Service):
            port, port_end = item.port, item.port_end
        else:
            assert item is not None
            try:
                port = int(item[1]) if item[1] else None
                port_end = int(item[2]) if item[2] else None
            except ValueError:
                raise RegistryError(
                    f"registry entry {index + 1} has a bad port: {item[1]!r}-{item[2]!r}"
                ) from None
        if port is not None:
            if not 0 <= port <= 65535:
                raise RegistryError(f"registry entry {index + 1} has a bad port: {port}")
            if port_end is not None and port_end != port:
                ranges.append(index)
            else:
                by_port.setdefault(port, []).append(index)
    return _PortIndex.of(by_port), ranges


def _name_index(items: list[Service | list[str] | None]) -> dict[str, list[int]]:
    """Entry indexes by every name and alias."""
    names: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        if isinstance(item, Service):
            all_names: Iterable[str] = item.names
        else:
            assert item is not None
            all_names = (item[0], *item[4].split())
        for name in all_names:
            if name:
                names.setdefault(name, []).append(index)
    return names


class _CompactIndex:
    """The precomputed part of a loaded registry: where each entry's line starts in the
    data file (byte offsets), the port indexes, and the name index (kept marshalled until a
    lookup by name needs it)."""

    __slots__ = ("by_port", "names", "ranges", "starts")

    def __init__(
        self, starts: array[int], by_port: _PortIndex, ranges: list[int], names: bytes
    ) -> None:
        self.starts = starts
        self.by_port = by_port
        self.ranges = ranges
        self.names = names


class Registry:
    """Every registered service, indexed by port and by name.

    Entries are kept as rows of text fields and become :class:`Service` objects when a
    lookup first returns them, so loading the whole registry costs a few milliseconds.
    """

    def __init__(self, services: Iterable[Service], *, info: RegistryInfo) -> None:
        items: list[Service | list[str] | None] = list(services)
        self._setup(items, info)

    @classmethod
    def from_rows(cls, rows: list[list[str]], *, info: RegistryInfo) -> Registry:
        """Index rows as :func:`~portkit.registry._build.split_lines` returns them."""
        registry = cls.__new__(cls)
        registry._setup(list(rows), info)
        return registry

    @classmethod
    def _from_index(cls, data: bytes, index: _CompactIndex, *, info: RegistryInfo) -> Registry:
        """A registry over the data file's bytes whose port and name indexes were
        precomputed (see :func:`_build_index`): entries are decoded and parsed only when
        returned."""
        registry = cls.__new__(cls)
        registry.info = info
        registry._data = data
        registry._starts = index.starts
        registry._items = [None] * len(index.starts)
        registry._by_port = index.by_port
        registry._ranges = index.ranges
        registry._names = None
        registry._names_blob = index.names
        registry._names_of_ports = {}
        return registry

    def _setup(self, items: list[Service | list[str] | None], info: RegistryInfo) -> None:
        self.info = info
        self._items = items
        self._data = b""
        self._starts: array[int] = array("I")
        self._names_blob: bytes | None = None
        self._by_port, self._ranges = _port_index(items)
        self._names: dict[str, list[int]] | None = None  # built on the first name lookup
        self._names_of_ports: dict[tuple[int, str], str | None] = {}

    @property
    def _by_name(self) -> dict[str, list[int]]:
        if self._names is None:
            if self._names_blob is not None:
                self._names = marshal.loads(self._names_blob)
            else:
                self._names = _name_index(self._items)
        assert self._names is not None
        return self._names

    def _get(self, index: int) -> Service:
        item = self._items[index]
        if isinstance(item, Service):
            return item
        if item is None:
            start = self._starts[index]
            line = self._data[start : self._data.index(b"\n", start)]
            item = line.decode("utf-8").split("\t")
        service = row_to_service(item)
        self._items[index] = service
        return service

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Service]:
        return (self._get(i) for i in range(len(self._items)))

    @property
    def services(self) -> tuple[Service, ...]:
        return tuple(self)

    def _select(self, indexes: Iterable[int], transport: str | None) -> list[Service]:
        found = (self._get(i) for i in indexes)
        return [s for s in found if transport is None or s.transport == transport]

    def by_port(self, port: int, transport: str | None = None) -> list[Service]:
        """Entries for ``port``: its own first (conventional first), then ranges covering it."""
        transport = _check_transport(transport)
        found = self._select(self._by_port.get(port), transport)
        ranges = self._select(self._ranges, transport)
        return found + [s for s in ranges if s.covers(port)]

    def in_range(self, low: int, high: int, transport: str | None = None) -> list[Service]:
        """Entries on any port from ``low`` to ``high`` inclusive."""
        transport = _check_transport(transport)
        found: list[Service] = []
        found += self._select(self._by_port.between(low, high), transport)
        found += [
            s
            for s in self._select(self._ranges, transport)
            if s.port is not None and s.port <= high and (s.port_end or s.port) >= low
        ]
        return found

    def service_name(self, port: int, transport: str = "tcp") -> str | None:
        """The primary name of ``port``: what a port number means to people (443 → https)."""
        key = (port, transport)
        try:
            return self._names_of_ports[key]
        except KeyError:
            pass
        name = next((s.name for s in self.by_port(port, transport) if s.name), None)
        # Scans ask this for every port they report: remember the answer.
        self._names_of_ports[key] = name
        return name

    def by_name(self, name: str, transport: str | None = None) -> list[Service]:
        """Entries whose name or alias is ``name`` (case-insensitive)."""
        transport = _check_transport(transport)
        return self._select(self._by_name.get(name.strip().lower(), ()), transport)

    def related(self, name: str, transport: str | None = None) -> list[Service]:
        """Entries named like ``name`` plus a version digit or TLS ``s`` (imap → imap3, imaps)."""
        import re  # here, not at the top: `re` (with enum) is most of a short command's imports

        transport = _check_transport(transport)
        pattern = re.compile(re.escape(name.strip().lower()) + r"(?:\d+|s|\d+s)")
        exact = set(self._by_name.get(name.strip().lower(), ()))
        indexes = sorted(
            {
                i
                for key, found in self._by_name.items()
                if pattern.fullmatch(key)
                for i in found
                if i not in exact
            }
        )
        return sorted(
            self._select(indexes, transport),
            key=lambda s: s.port if s.port is not None else 65536,
        )

    def port_for(self, name: str, transport: str = "tcp") -> int:
        """The port of the service called ``name``; raises LookupNotFound if it has none."""
        for service in self.by_name(name, transport):
            if service.port is not None:
                return service.port
        if self.by_name(name):
            raise LookupNotFound(f"service {name!r} has no registered {transport} port")
        raise LookupNotFound(f"unknown service name {name!r}")

    def lookup(self, query: str, transport: str | None = None) -> Answer:
        """Answer ``query`` as ``portkit lookup`` does: a port (``443``), a range
        (``20-25``), ``53/udp``, or a name (``imap``, with related ``imap3``, ``imaps``).

        >>> [s.name for s in default_registry().lookup("443/tcp").matches]
        ['https']

        Raises:
            LookupNotFound: a malformed query, a port above 65535, or an unknown name.
        """
        from portkit.registry._query import answer  # the query grammar lives there (lazily:
        # a lookup by port at start-up does not need its regular expressions)

        return answer(self, query, transport)

    def search(self, text: str, transport: str | None = None) -> list[Service]:
        """Entries whose names, description or notes contain every word of ``text``."""
        transport = _check_transport(transport)
        words = text.lower().split()
        if not words:
            raise LookupNotFound("search text must not be empty")
        found = []
        for s in self:
            if transport is not None and s.transport != transport:
                continue
            haystack = f"{' '.join(s.names)} {s.description} {s.plain} {s.common_use}".lower()
            if all(word in haystack for word in words):
                found.append(s)
        return found


#: bump when the index file's layout changes
_INDEX_FORMAT = 2


def _build_index(data: bytes) -> tuple[dict[str, str], _CompactIndex]:
    """Check the data file (its bytes, UTF-8) line by line and compute its indexes."""
    lines = data.split(b"\n")
    header, rows = split_lines([line.decode("utf-8") for line in lines])
    starts = array("I")
    position = 0
    for line in lines:
        if line and line[0] != 0x23:  # "#"
            starts.append(position)
        position += len(line) + 1
    items: list[Service | list[str] | None] = list(rows)
    by_port, ranges = _port_index(items)
    return header, _CompactIndex(starts, by_port, ranges, marshal.dumps(_name_index(items)))


def _index_path(default_source: str) -> str:
    name = "shipped.idx" if default_source == "shipped" else "services.idx"
    return os.path.join(os.path.dirname(_cache_file()), name)


def _read_index(
    index_path: str, key: tuple[str, int, int]
) -> tuple[dict[str, str], _CompactIndex] | None:
    """The index saved for the data file ``key`` names, or None if absent, stale or damaged."""
    try:
        with open(index_path, "rb") as file:
            saved = marshal.loads(file.read())
        version, saved_key, header, *arrays, ranges, names = saved
        if version != _INDEX_FORMAT or saved_key != list(key):
            return None
        if not (isinstance(header, dict) and isinstance(names, bytes)):
            return None
        starts, ports, offsets, entries = (
            array(code, blob) for code, blob in zip("IHII", arrays, strict=True)
        )
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if len(offsets) != len(ports) + 1 or (offsets and offsets[-1] != len(entries)):
        return None
    return header, _CompactIndex(starts, _PortIndex(ports, offsets, entries), ranges, names)


def _write_index(
    index_path: str, key: tuple[str, int, int], header: dict[str, str], index: _CompactIndex
) -> None:
    """Save the index beside the cache, atomically; quietly skipped where it cannot be
    written (a read-only or another user's home): the next start-up rebuilds it."""
    by_port = index.by_port
    data = marshal.dumps(
        (
            _INDEX_FORMAT,
            list(key),
            header,
            *(a.tobytes() for a in (index.starts, by_port.ports, by_port.offsets, by_port.entries)),
            index.ranges,
            index.names,
        )
    )
    directory, name = os.path.split(index_path)
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.replace(tmp, index_path)
    except OSError:
        from contextlib import suppress

        with suppress(OSError):
            os.unlink(tmp)


def _load_file(path: str, *, default_source: str) -> Registry:
    """Load a data file through its compact index (built and saved on first use, and again
    whenever the file changes), so a lookup parses only the entries it returns."""
    try:
        with open(path, "rb") as file:
            stat = os.fstat(file.fileno())
            data = file.read()
        if not data.endswith(b"\n"):
            data += b"\n"
        key = (path, stat.st_size, stat.st_mtime_ns)
        index_path = _index_path(default_source)
        loaded = _read_index(index_path, key)
        if loaded is None or (loaded[1].starts and loaded[1].starts[-1] >= len(data)):
            loaded = _build_index(data)
            _write_index(index_path, key, *loaded)
        header, index = loaded
        info = RegistryInfo(
            source=header.get("source", default_source),
            date=header.get("date", "unknown"),
            path=path,
            entries=len(index.starts),
        )
        return Registry._from_index(data, index, info=info)
    except OSError as exc:
        raise RegistryError(f"cannot read registry data {path!r}: {exc.strerror}") from None
    except (RegistryError, UnicodeDecodeError) as exc:
        raise RegistryError(
            f"{path}: {exc} (run 'portkit registry reset' to go back to the shipped data)"
        ) from None


def _readable_cache() -> str | None:
    """The cached live registry, if there is one this user may read."""
    cached = _cache_file()
    try:
        if os.path.isfile(cached) and os.access(cached, os.R_OK):
            return cached
    except OSError:
        # Run with another user's HOME (sudo -u, a service account), the cache directory
        # may not even be traversable. The shipped data is a correct answer, so use it
        # (no logging here: it would cost every lookup's start-up).
        pass
    return None


def load_registry(*, use_cache: bool = True) -> Registry:
    """Load the registry: the cached live IANA data if this user may read it, else the
    shipped data."""
    cached = _readable_cache() if use_cache else None
    if cached is not None:
        return _load_file(cached, default_source="IANA (downloaded)")
    # A plain path, not importlib.resources: this is on the start-up path of every lookup.
    shipped = os.path.join(os.path.dirname(__file__), "data", DATA_FILE)
    return _load_file(shipped, default_source="shipped")


_lock = _thread.allocate_lock()  # not threading: start-up cost
_default: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = load_registry()
    return _default


def reset_default_registry() -> None:
    """Forget the loaded registry, so the next use reloads it (after an update)."""
    global _default
    with _lock:
        _default = None
