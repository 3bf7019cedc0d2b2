"""The registry's value objects.

They are plain classes with ``__slots__`` rather than dataclasses: ``portkit lookup``
imports this module on every start-up, and importing :mod:`dataclasses` (with
:mod:`inspect`) alone cost about a tenth of that start-up.
"""

from __future__ import annotations

from portkit._value import Frozen

TYPE_CHECKING = False  # not `typing` at run time: it is on every command's start-up path
if TYPE_CHECKING:
    from typing import Any


__all__ = ["RegistryInfo", "Service"]

TRANSPORTS = ("tcp", "udp", "sctp", "dccp")


class Service(Frozen):
    """One registry entry: a service name on a port (or range) and transport.

    ``port`` is ``None`` for name-only entries (names registered for DNS-SD/SRV use
    without a port). For a range such as X11's 6000-6063, ``port`` is the first port and
    ``port_end`` the last; for a single port both are equal.
    """

    __slots__ = (  # noqa: RUF023 (the order of the fields in repr and comparisons)
        "name",
        "port",
        "port_end",
        "transport",
        "description",
        "aliases",
        "plain",
        "common_use",
    )

    name: str
    port: int | None
    port_end: int | None
    transport: str | None
    description: str
    aliases: tuple[str, ...]
    plain: str  # a plain-language description, for the ports every course teaches
    common_use: str  # what usually runs there in practice, e.g. "Vite dev server"

    def __init__(
        self,
        *,
        name: str,
        port: int | None,
        port_end: int | None,
        transport: str | None,
        description: str,
        aliases: tuple[str, ...] = (),
        plain: str = "",
        common_use: str = "",
    ) -> None:
        setter = object.__setattr__
        setter(self, "name", name)
        setter(self, "port", port)
        setter(self, "port_end", port_end)
        setter(self, "transport", transport)
        setter(self, "description", description)
        setter(self, "aliases", aliases)
        setter(self, "plain", plain)
        setter(self, "common_use", common_use)

    def replace(self, **changes: Any) -> Service:
        result: Service = super().replace(**changes)
        return result

    @property
    def note(self) -> str:
        """The most useful human note: what usually runs there, else the plain description."""
        return self.common_use or self.plain

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    @property
    def is_range(self) -> bool:
        return self.port is not None and self.port_end is not None and self.port_end != self.port

    @property
    def port_text(self) -> str:
        if self.port is None:
            return "-"
        return f"{self.port}-{self.port_end}" if self.is_range else str(self.port)

    def covers(self, port: int) -> bool:
        return self.port is not None and self.port <= port <= (self.port_end or self.port)


class RegistryInfo(Frozen):
    """Where the loaded registry data came from."""

    __slots__ = ("source", "date", "path", "entries")  # noqa: RUF023 (field order)

    source: str
    date: str
    path: str
    entries: int

    def __init__(self, *, source: str, date: str, path: str, entries: int) -> None:
        setter = object.__setattr__
        setter(self, "source", source)
        setter(self, "date", date)
        setter(self, "path", path)
        setter(self, "entries", entries)
