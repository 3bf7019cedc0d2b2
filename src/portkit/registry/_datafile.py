"""The registry data file: one entry per line, tab-separated.

Columns::

    name  port  port_end  transport  aliases(space-separated)  plain  common_use  description

with ``#`` header lines ``# source: ...`` and ``# date: ...``; empty fields are empty
strings. This module is on the start-up path of every lookup, so it imports little.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from portkit._errors import RegistryError
from portkit.registry._model import Service

__all__ = ["dump", "row_to_service", "split_lines"]

_FIELDS = 8


def _field(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ").replace("\r", " ")


def dump(services: Iterable[Service], *, source: str, date: str) -> Iterator[str]:
    """Yield the data file's lines (without newlines) for ``services``."""
    yield f"# source: {_field(source)}"
    yield f"# date: {_field(date)}"
    for s in services:
        yield "\t".join(
            (
                s.name,
                "" if s.port is None else str(s.port),
                "" if s.port_end is None else str(s.port_end),
                s.transport or "",
                " ".join(s.aliases),
                _field(s.plain),
                _field(s.common_use),
                _field(s.description),
            )
        )


def split_lines(lines: Iterable[str]) -> tuple[dict[str, str], list[list[str]]]:
    """Split the data file into its header and rows of fields, checking each row's shape.

    Port fields are checked where they are first converted (the registry's port index).
    """
    header: dict[str, str] = {}
    rows: list[list[str]] = []
    append = rows.append
    for number, line in enumerate(lines, start=1):
        if not line or line == "\n":
            continue
        if line[0] == "#":
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
            continue
        parts = line.rstrip("\n").split("\t")
        if len(parts) != _FIELDS:
            raise RegistryError(
                f"registry data line {number} has {len(parts)} fields, not {_FIELDS}"
            )
        append(parts)
    return header, rows


def row_to_service(parts: list[str]) -> Service:
    """Make the entry for one row of :func:`split_lines`."""
    name, port, port_end, transport, aliases, plain, common_use, description = parts
    return Service(
        name=name,
        port=int(port) if port else None,
        port_end=int(port_end) if port_end else None,
        transport=transport or None,
        description=description,
        aliases=tuple(aliases.split()),
        plain=plain,
        common_use=common_use,
    )
