"""The registry's value objects."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RegistryInfo", "Service"]

TRANSPORTS = ("tcp", "udp", "sctp", "dccp")


@dataclass(frozen=True, slots=True, kw_only=True)
class Service:
    """One registry entry: a service name on a port (or range) and transport.

    ``port`` is ``None`` for name-only entries (names registered for DNS-SD/SRV use
    without a port). For a range such as X11's 6000-6063, ``port`` is the first port and
    ``port_end`` the last; for a single port both are equal.
    """

    name: str
    port: int | None
    port_end: int | None
    transport: str | None
    description: str
    aliases: tuple[str, ...] = ()
    plain: str = ""  # a plain-language description, for the ports every course teaches
    common_use: str = ""  # what usually runs there in practice, e.g. "Vite dev server"

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


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistryInfo:
    """Where the loaded registry data came from."""

    source: str
    date: str
    path: str
    entries: int
