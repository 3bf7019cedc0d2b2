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
from importlib import resources
from pathlib import Path

from portkit._errors import LookupNotFound, RegistryError
from portkit.registry._build import load_lines
from portkit.registry._model import TRANSPORTS, RegistryInfo, Service

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
    """Every registered service, indexed by port and by name."""

    def __init__(self, services: Iterable[Service], *, info: RegistryInfo) -> None:
        self._services = tuple(services)
        self.info = info
        self._by_port: dict[int, list[Service]] = {}
        self._ranges: list[Service] = []
        self._by_name: dict[str, list[Service]] = {}
        for service in self._services:
            if service.port is not None:
                if service.is_range:
                    self._ranges.append(service)
                else:
                    self._by_port.setdefault(service.port, []).append(service)
            for name in service.names:
                if name:
                    self._by_name.setdefault(name, []).append(service)

    def __len__(self) -> int:
        return len(self._services)

    def __iter__(self) -> Iterator[Service]:
        return iter(self._services)

    @property
    def services(self) -> tuple[Service, ...]:
        return self._services

    def by_port(self, port: int, transport: str | None = None) -> list[Service]:
        """Entries for ``port``: its own first (conventional first), then ranges covering it."""
        transport = _check_transport(transport)
        found = [
            s for s in self._by_port.get(port, ()) if transport is None or s.transport == transport
        ]
        found += [
            s
            for s in self._ranges
            if s.covers(port) and (transport is None or s.transport == transport)
        ]
        return found

    def in_range(self, low: int, high: int, transport: str | None = None) -> list[Service]:
        """Entries on any port from ``low`` to ``high`` inclusive."""
        transport = _check_transport(transport)
        found = []
        for port in range(low, high + 1):
            found += [
                s
                for s in self._by_port.get(port, ())
                if transport is None or s.transport == transport
            ]
        found += [
            s
            for s in self._ranges
            if s.port is not None
            and s.port <= high
            and (s.port_end or s.port) >= low
            and (transport is None or s.transport == transport)
        ]
        return found

    def service_name(self, port: int, transport: str = "tcp") -> str | None:
        """The primary name of ``port``: what a port number means to people (443 → https)."""
        for service in self.by_port(port, transport):
            if service.name:
                return service.name
        return None

    def by_name(self, name: str, transport: str | None = None) -> list[Service]:
        """Entries whose name or alias is ``name`` (case-insensitive)."""
        transport = _check_transport(transport)
        return [
            s
            for s in self._by_name.get(name.strip().lower(), ())
            if transport is None or s.transport == transport
        ]

    def related(self, name: str, transport: str | None = None) -> list[Service]:
        """Entries named like ``name`` plus a version digit or TLS ``s`` (imap → imap3, imaps)."""
        transport = _check_transport(transport)
        pattern = re.compile(re.escape(name.strip().lower()) + r"(?:\d+|s|\d+s)")
        exact = set(map(id, self.by_name(name, transport)))
        found: dict[int, Service] = {}
        for key, services in self._by_name.items():
            if pattern.fullmatch(key):
                for s in services:
                    if id(s) not in exact and (transport is None or s.transport == transport):
                        found.setdefault(id(s), s)
        return sorted(found.values(), key=lambda s: s.port if s.port is not None else 65536)

    def port_for(self, name: str, transport: str = "tcp") -> int:
        """The port of the service called ``name``; raises LookupNotFound if it has none."""
        for service in self.by_name(name, transport):
            if service.port is not None:
                return service.port
        if self.by_name(name):
            raise LookupNotFound(f"service {name!r} has no registered {transport} port")
        raise LookupNotFound(f"unknown service name {name!r}")

    def search(self, text: str, transport: str | None = None) -> list[Service]:
        """Entries whose names, description or notes contain every word of ``text``."""
        transport = _check_transport(transport)
        words = text.lower().split()
        if not words:
            raise LookupNotFound("search text must not be empty")
        found = []
        for s in self._services:
            if transport is not None and s.transport != transport:
                continue
            haystack = f"{' '.join(s.names)} {s.description} {s.plain} {s.common_use}".lower()
            if all(word in haystack for word in words):
                found.append(s)
        return found


def _load_file(path: Path, *, default_source: str) -> Registry:
    try:
        with path.open(encoding="utf-8") as handle:
            header, services = load_lines(handle)
    except OSError as exc:
        raise RegistryError(f"cannot read registry data {str(path)!r}: {exc.strerror}") from None
    except RegistryError as exc:
        raise RegistryError(
            f"{path}: {exc} (run 'portkit registry reset' to go back to the shipped data)"
        ) from None
    info = RegistryInfo(
        source=header.get("source", default_source),
        date=header.get("date", "unknown"),
        path=str(path),
        entries=len(services),
    )
    return Registry(services, info=info)


def load_registry(*, use_cache: bool = True) -> Registry:
    """Load the registry: the cached live IANA data if present, else the shipped data."""
    if use_cache:
        cached = cache_path()
        if cached.is_file():
            return _load_file(cached, default_source="IANA (downloaded)")
    shipped = resources.files("portkit.registry") / "data" / DATA_FILE
    with resources.as_file(shipped) as path:
        return _load_file(path, default_source="shipped with portkit")


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
