"""Port specifications: ``22,80,443``, ``1-1024``, ``-``, ``http,ssh``, ``T:80,U:53``.

Parsing is pure apart from service names, which are looked up in the registry (an
in-memory index, no I/O after its first load). The grammar follows what nmap users type:

- items are separated by commas; spaces around them are ignored;
- ``N`` is one port (0-65535), ``A-B`` a range with A <= B, ``A-`` runs to 65535,
  ``-B`` starts at 1, and ``-`` alone is 1-65535;
- a name (``http``, ``imaps``) is the registry's port for that service;
- ``T:`` or ``U:`` before an item selects TCP or UDP for it and every item after it,
  until the next prefix; items before any prefix go to every default transport.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from portkit._errors import LookupNotFound, PortSpecError
from portkit.scan._top import top_ports

__all__ = ["PortSet", "parse_ports", "port_set_from_top"]

_MAX_PORT = 65535
_NUMBER = re.compile(r"\d+")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9._+-]*")
_PREFIX = {"t": "tcp", "u": "udp"}


@dataclass(frozen=True, slots=True, kw_only=True)
class PortSet:
    """The ports to scan, per transport, each sorted and without duplicates."""

    tcp: tuple[int, ...] = ()
    udp: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.tcp) + len(self.udp)

    def for_transport(self, transport: str) -> tuple[int, ...]:
        """Return the ports of ``transport`` (``"tcp"`` or ``"udp"``)."""
        return self.udp if transport == "udp" else self.tcp


def _port_number(text: str, spec: str) -> int:
    if not _NUMBER.fullmatch(text):
        raise PortSpecError(f"port must be a number 0-{_MAX_PORT}, not {text!r} in {spec!r}")
    value = int(text)
    if value > _MAX_PORT:
        raise PortSpecError(f"port must be 0-{_MAX_PORT}, not {value} in {spec!r}")
    return value


def _service_port(name: str, transport: str, spec: str) -> int:
    from portkit.registry import default_registry

    try:
        return default_registry().port_for(name, transport)
    except LookupNotFound:
        raise PortSpecError(
            f"unknown service {name!r} for {transport} in port spec {spec!r}"
        ) from None


def _expand(item: str, transport: str, spec: str) -> Iterable[int]:
    if item == "-":
        return range(1, _MAX_PORT + 1)
    if _NAME.fullmatch(item):
        return (_service_port(item, transport, spec),)
    if "-" in item:
        low_text, _, high_text = item.partition("-")
        low = _port_number(low_text, spec) if low_text else 1
        high = _port_number(high_text, spec) if high_text else _MAX_PORT
        if low > high:
            raise PortSpecError(f"port range {item!r} is reversed (start > end) in {spec!r}")
        return range(low, high + 1)
    return (_port_number(item, spec),)


def parse_ports(spec: str, *, transports: Iterable[str] = ("tcp",)) -> PortSet:
    """Parse a port specification into a :class:`PortSet`.

    Args:
        spec: the text the user gave, e.g. ``"22,80,8000-8100"`` or ``"T:80,U:53"``.
        transports: where items without a ``T:``/``U:`` prefix go.

    Raises:
        PortSpecError: a port out of range, a reversed range, an unknown service name,
            an empty item or an empty specification; the message quotes the input.
    """
    defaults = tuple(transports)
    chosen: dict[str, set[int]] = {"tcp": set(), "udp": set()}
    if not spec.strip():
        raise PortSpecError("port specification is empty")
    current: tuple[str, ...] = defaults
    for raw in spec.split(","):
        item = raw.strip()
        if len(item) >= 2 and item[1] == ":" and item[0].lower() in _PREFIX:
            current = (_PREFIX[item[0].lower()],)
            item = item[2:].strip()
        elif len(item) >= 2 and item[1] == ":":
            raise PortSpecError(f"unknown transport prefix {item[:2]!r} in {spec!r} (use T: or U:)")
        if not item:
            raise PortSpecError(f"empty item in port specification {spec!r}")
        for transport in current:
            chosen[transport].update(_expand(item, transport, spec))
    return PortSet(tcp=tuple(sorted(chosen["tcp"])), udp=tuple(sorted(chosen["udp"])))


def port_set_from_top(n: int, *, transports: Iterable[str] = ("tcp",)) -> PortSet:
    """Return the first ``n`` ports of the ``--top`` ordering for each transport."""
    wanted = set(transports)
    return PortSet(
        tcp=tuple(sorted(top_ports(n, "tcp"))) if "tcp" in wanted else (),
        udp=tuple(sorted(top_ports(n, "udp"))) if "udp" in wanted else (),
    )
