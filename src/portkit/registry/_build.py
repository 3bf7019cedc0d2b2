"""Turn IANA-style rows into registry entries (grouped, with portkit's conventions).

Pure functions, no I/O: the same pipeline serves the data shipped with portkit (built by
``scripts/build-registry.py``) and a live IANA download (``portkit registry update``).
The file format itself is in :mod:`portkit.registry._datafile`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from portkit._errors import RegistryError
from portkit.registry._conventional import COMMON_USE, EXTRA_ALIASES, WELL_KNOWN
from portkit.registry._datafile import dump, row_to_service, split_lines
from portkit.registry._model import TRANSPORTS, Service

__all__ = [
    "RawRow",
    "apply_conventions",
    "dump",
    "group_rows",
    "load_lines",
    "parse_port_field",
    "row_to_service",
    "split_lines",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RawRow:
    """One row as IANA publishes it: a name (maybe empty) for a port or range."""

    name: str
    port: int | None
    port_end: int | None
    transport: str | None
    description: str


def parse_port_field(text: str) -> tuple[int | None, int | None]:
    """Parse IANA's "Port Number" column: ``""``, ``"80"`` or ``"6000-6063"``."""
    text = text.strip()
    if not text:
        return None, None
    lo_text, sep, hi_text = text.partition("-")
    try:
        lo = int(lo_text)
        hi = int(hi_text) if sep else lo
    except ValueError:
        raise RegistryError(f"port must be a number or a range, not {text!r}") from None
    if not (0 <= lo <= hi <= 65535):
        raise RegistryError(f"port range must lie within 0-65535, not {text!r}")
    return lo, hi


def group_rows(rows: Iterable[RawRow]) -> list[Service]:
    """Merge rows that are one service under several names.

    IANA lists 80/tcp three times (``http``, ``www``, ``www-http``) with one
    description: those are one service with aliases. Rows without a name
    ("Reserved", "Unassigned") are not services and are dropped. Order is kept: the
    first name listed becomes the primary name.
    """
    Key = tuple[int | None, int | None, str | None, str]
    names_of: dict[Key, list[str]] = {}
    description_of: dict[Key, str] = {}
    for row in rows:
        name = row.name.strip().lower()
        if not name:
            continue
        transport = row.transport.strip().lower() if row.transport else None
        if transport is not None and transport not in TRANSPORTS:
            raise RegistryError(f"unknown transport {row.transport!r} for service {name!r}")
        description = " ".join(row.description.split())
        # Name-only rows each stand alone; ported rows group by port, transport, description.
        key: Key = (
            row.port,
            row.port_end,
            transport,
            name if row.port is None else description.lower(),
        )
        names = names_of.setdefault(key, [])
        description_of.setdefault(key, description)
        if name not in names:
            names.append(name)
    return [
        Service(
            name=names[0],
            port=key[0],
            port_end=key[1],
            transport=key[2],
            description=description_of[key],
            aliases=tuple(names[1:]),
        )
        for key, names in names_of.items()
    ]


def apply_conventions(services: Iterable[Service]) -> list[Service]:
    """Apply what every course and developer knows on top of IANA-derived entries.

    The conventional name becomes the primary name of its port (``http`` on 80, not
    ``www-http``), everyday aliases are added, and well-known and development ports get
    their plain-language descriptions. Conventional entries missing from the data are
    added, so the well-known list is always complete.
    """
    result = list(services)
    where: dict[tuple[int, str], list[int]] = {}
    for index, service in enumerate(result):
        if service.port is not None and service.transport is not None and not service.is_range:
            where.setdefault((service.port, service.transport), []).append(index)

    for primary, port, transports, aliases, plain in WELL_KNOWN:
        for transport in transports:
            indexes = where.get((port, transport), [])
            hit = next((i for i in indexes if primary in result[i].names), None)
            if hit is None:
                result.append(
                    Service(
                        name=primary,
                        port=port,
                        port_end=port,
                        transport=transport,
                        description=plain,
                        aliases=aliases,
                        plain=plain,
                    )
                )
                where.setdefault((port, transport), []).insert(0, len(result) - 1)
                continue
            old = result[hit]
            others = [n for n in old.names if n != primary]
            merged = tuple(dict.fromkeys([*others, *aliases]))
            result[hit] = old.replace(name=primary, aliases=merged, plain=plain)
            # The conventional entry is listed first for its port.
            indexes.remove(hit)
            indexes.insert(0, hit)

    for index, service in enumerate(result):
        extra = EXTRA_ALIASES.get(service.name)
        if extra:
            merged = tuple(dict.fromkeys([*service.aliases, *extra]))
            result[index] = service.replace(aliases=merged)

    for port, transport, label in COMMON_USE:
        indexes = where.get((port, transport), [])
        if indexes:
            first = indexes[0]
            result[first] = result[first].replace(common_use=label)
        else:
            result.append(
                Service(
                    name="",
                    port=port,
                    port_end=port,
                    transport=transport,
                    description="not registered with IANA",
                    common_use=label,
                )
            )
            where[(port, transport)] = [len(result) - 1]

    # Stable order: by port (name-only last), the conventional entry first within a port.
    rank = {i: pos for indexes in where.values() for pos, i in enumerate(indexes)}

    transport_order = {t: i for i, t in enumerate(TRANSPORTS)}

    def sort_key(item: tuple[int, Service]) -> tuple[int, int, int, int, int]:
        index, service = item
        port = service.port if service.port is not None else 65536
        order = transport_order.get(service.transport or "", len(TRANSPORTS))
        return (port, 0 if not service.is_range else 1, order, rank.get(index, 0), index)

    return [service for _, service in sorted(enumerate(result), key=sort_key)]


def load_lines(lines: Iterable[str]) -> tuple[dict[str, str], list[Service]]:
    """Parse the data file's lines into its header and entries."""
    header, rows = split_lines(lines)
    return header, [row_to_service(parts) for parts in rows]
