"""The loaded registry and its indexes.

Data is read on first use (not at import), from the user's cache when ``portkit
registry update`` has put a live IANA file there, else from the data shipped with
portkit. Indexes are dictionaries, so a lookup costs microseconds once loaded.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from portkit._errors import LookupNotFound, RegistryError
from portkit.registry._datafile import row_to_service, split_lines
from portkit.registry._model import TRANSPORTS, RegistryInfo, Service

if TYPE_CHECKING:
    from portkit.registry._query import Answer

__all__ = ["Registry", "cache_path", "default_registry", "reset_default_registry"]

DATA_FILE = "services.tsv"


def cache_path() -> Path:
    """Where ``portkit registry update`` keeps the live registry ($PORTKIT_CACHE_DIR wins)."""
    override = os.environ.get("PORTKIT_CACHE_DIR")
    if override:
        return Path(override) / DATA_FILE
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("portkit")) / DATA_FILE


def _check_transport(transport: str | None) -> str | None:
    if transport is None:
        return None
    lowered = transport.lower()
    if lowered not in TRANSPORTS:
        raise LookupNotFound(f"transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
    return lowered


class Registry:
    """Every registered service, indexed by port and by name.

    Entries are kept as rows of text fields and become :class:`Service` objects when a
    lookup first returns them, so loading the whole registry costs a few milliseconds.
    """

    def __init__(self, services: Iterable[Service], *, info: RegistryInfo) -> None:
        items: list[Service | list[str]] = list(services)
        self._setup(items, info)

    @classmethod
    def from_rows(cls, rows: list[list[str]], *, info: RegistryInfo) -> Registry:
        """Index rows as :func:`~portkit.registry._build.split_lines` returns them."""
        registry = cls.__new__(cls)
        registry._setup(list(rows), info)
        return registry

    def _setup(self, items: list[Service | list[str]], info: RegistryInfo) -> None:
        self.info = info
        self._items = items
        self._by_port: dict[int, list[int]] = {}
        self._ranges: list[int] = []
        self._names: dict[str, list[int]] | None = None  # built on the first name lookup
        self._names_of_ports: dict[tuple[int, str], str | None] = {}
        by_port = self._by_port
        for index, item in enumerate(items):
            if isinstance(item, Service):
                port, port_end = item.port, item.port_end
            else:
                try:
                    port = int(item[1]) if item[1] else None
                    port_end = int(item[2]) if item[2] else None
                except ValueError:
                    raise RegistryError(
                        f"registry entry {index + 1} has a bad port: {item[1]!r}-{item[2]!r}"
                    ) from None
            if port is not None:
                if port_end is not None and port_end != port:
                    self._ranges.append(index)
                else:
                    by_port.setdefault(port, []).append(index)

    @property
    def _by_name(self) -> dict[str, list[int]]:
        if self._names is None:
            names: dict[str, list[int]] = {}
            for index, item in enumerate(self._items):
                if isinstance(item, Service):
                    all_names: Iterable[str] = item.names
                else:
                    all_names = (item[0], *item[4].split())
                for name in all_names:
                    if name:
                        names.setdefault(name, []).append(index)
            self._names = names
        return self._names

    def _get(self, index: int) -> Service:
        item = self._items[index]
        if isinstance(item, Service):
            return item
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
        found = self._select(self._by_port.get(port, ()), transport)
        ranges = self._select(self._ranges, transport)
        return found + [s for s in ranges if s.covers(port)]

    def in_range(self, low: int, high: int, transport: str | None = None) -> list[Service]:
        """Entries on any port from ``low`` to ``high`` inclusive."""
        transport = _check_transport(transport)
        found: list[Service] = []
        for port in range(low, high + 1):
            found += self._select(self._by_port.get(port, ()), transport)
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


def _load_file(path: Path, *, default_source: str) -> Registry:
    try:
        header, rows = split_lines(path.read_text(encoding="utf-8").split("\n"))
        info = RegistryInfo(
            source=header.get("source", default_source),
            date=header.get("date", "unknown"),
            path=str(path),
            entries=len(rows),
        )
        return Registry.from_rows(rows, info=info)
    except OSError as exc:
        raise RegistryError(f"cannot read registry data {str(path)!r}: {exc.strerror}") from None
    except (RegistryError, UnicodeDecodeError) as exc:
        raise RegistryError(
            f"{path}: {exc} (run 'portkit registry reset' to go back to the shipped data)"
        ) from None


def _readable_cache() -> Path | None:
    """The cached live registry, if there is one this user may read."""
    cached = cache_path()
    try:
        if cached.is_file() and os.access(cached, os.R_OK):
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
    return _load_file(Path(__file__).with_name("data") / DATA_FILE, default_source="shipped")


_lock = threading.Lock()
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
