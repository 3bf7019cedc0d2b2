"""Answer a user's registry query: a port, a range, ``port/transport`` or a name."""

from __future__ import annotations

import re

from portkit._errors import LookupNotFound
from portkit._value import Frozen
from portkit.registry._model import TRANSPORTS, Service

TYPE_CHECKING = False  # not `typing` at run time: it is on every command's start-up path
if TYPE_CHECKING:
    from typing import Protocol

    class Registry(Protocol):
        """The lookups a query needs (``Registry`` has them; ``Registry.lookup`` calls here)."""

        def by_port(self, port: int, transport: str | None = None) -> list[Service]: ...

        def in_range(self, low: int, high: int, transport: str | None = None) -> list[Service]: ...

        def by_name(self, name: str, transport: str | None = None) -> list[Service]: ...

        def related(self, name: str, transport: str | None = None) -> list[Service]: ...


__all__ = ["Answer", "answer", "service_to_dict"]

_PORT_QUERY = re.compile(r"(?P<lo>\d+)(?:-(?P<hi>\d+))?(?:/(?P<transport>[A-Za-z]+))?")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


class Answer(Frozen):
    """What one query found: its exact matches and, for names, related services."""

    __slots__ = ("query", "kind", "matches", "related")  # noqa: RUF023 (field order)

    query: str
    kind: str  # "port", "range" or "name"
    matches: tuple[Service, ...]
    related: tuple[Service, ...]

    def __init__(
        self,
        *,
        query: str,
        kind: str,
        matches: tuple[Service, ...],
        related: tuple[Service, ...] = (),
    ) -> None:
        setter = object.__setattr__
        setter(self, "query", query)
        setter(self, "kind", kind)
        setter(self, "matches", matches)
        setter(self, "related", related)


def _port(text: str, query: str) -> int:
    value = int(text)
    if value > 65535:
        raise LookupNotFound(f"port must be 0-65535, not {value} in {query!r}")
    return value


def answer(registry: Registry, query: str, transport: str | None = None) -> Answer:
    """Look ``query`` up; raise LookupNotFound (a usage error) for malformed or unknown names."""
    text = query.strip()
    port_match = _PORT_QUERY.fullmatch(text)
    if port_match:
        lo = _port(port_match["lo"], query)
        wanted = transport
        if port_match["transport"]:
            wanted = port_match["transport"].lower()
            if wanted not in TRANSPORTS:
                raise LookupNotFound(
                    f"transport must be one of {', '.join(TRANSPORTS)}, not {port_match['transport']!r}"
                )
        if port_match["hi"] is None:
            return Answer(query=query, kind="port", matches=tuple(registry.by_port(lo, wanted)))
        hi = _port(port_match["hi"], query)
        if hi < lo:
            raise LookupNotFound(f"port range must run low to high, not {query!r}")
        if hi - lo > 10000:
            raise LookupNotFound(f"port range {query!r} is too wide to list (at most 10001 ports)")
        return Answer(query=query, kind="range", matches=tuple(registry.in_range(lo, hi, wanted)))
    if not _NAME.fullmatch(text):
        raise LookupNotFound(f"not a port, port range or service name: {query!r}")
    matches = registry.by_name(text, transport)
    related = registry.related(text, transport)
    if not matches and not related:
        raise LookupNotFound(
            f"unknown service name {query!r} (try 'portkit lookup --search {text}')"
        )
    return Answer(query=query, kind="name", matches=tuple(matches), related=tuple(related))


def service_to_dict(service: Service) -> dict[str, object]:
    """The documented JSON form of an entry (see docs/registry.md)."""
    return {
        "name": service.name or None,
        "port": service.port,
        "port_end": service.port_end,
        "transport": service.transport,
        "aliases": list(service.aliases),
        "description": service.description,
        "plain": service.plain or None,
        "common_use": service.common_use or None,
    }
