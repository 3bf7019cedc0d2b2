"""Ports free to bind now, chosen where they are least likely to collide later.

A port is *free* when binding it on every address (IPv4 ``0.0.0.0`` and IPv6 ``::``)
succeeds without ``SO_REUSEADDR``, so a port held by any listener, on any address, or
lingering in TIME_WAIT is not offered. Among free ports, some are better choices than
others:

- never the well-known ports (below 1024: they belong to standard services and need
  privileges to bind) nor the ports the registry marks as common development ports
  (3000, 5000, 8000, 8080, ...: the next dev server started will want them);
- preferably not an IANA-registered port, and not the kernel's ephemeral range, from
  which outgoing connections take their local ports at random.

Only when too few preferred ports are free are the second-choice ones offered.
"""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Iterator
from pathlib import Path

from portkit._errors import NetworkError, PortSpecError, UsageError

__all__ = ["ephemeral_range", "free_ports", "is_free"]

FIRST_UNPRIVILEGED_PORT = 1024
MAX_COUNT = 1000
# IANA's dynamic/private range (RFC 6335 section 6), the ephemeral range of most systems.
_IANA_DYNAMIC = (49152, 65535)
_LINUX_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_NOT_FREE = {errno.EADDRINUSE, errno.EACCES}


def ephemeral_range() -> tuple[int, int]:
    """Return the inclusive range the kernel takes outgoing connections' ports from."""
    try:
        low, high = _LINUX_RANGE.read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):  # not Linux: the IANA dynamic range is the usual choice
        return _IANA_DYNAMIC


def _families() -> list[tuple[socket.AddressFamily, str]]:
    families = [(socket.AF_INET, "0.0.0.0")]
    if socket.has_ipv6:
        families.append((socket.AF_INET6, "::"))
    return families


def is_free(port: int, transport: str = "tcp") -> bool:
    """Return whether ``port`` can be bound now on every address, IPv4 and IPv6."""
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    for family, wildcard in _families():
        try:
            sock = socket.socket(family, kind)
        except OSError as exc:
            if exc.errno == errno.EAFNOSUPPORT:  # IPv6 compiled in but disabled
                continue
            raise
        with sock:
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((wildcard, port))
            except OSError as exc:
                if exc.errno in _NOT_FREE:
                    return False
                if exc.errno == errno.EADDRNOTAVAIL and family == socket.AF_INET6:
                    continue  # no IPv6 address configured at all
                raise
    return True


def _by_distance(near: int) -> Iterator[int]:
    """Yield every unprivileged port, nearest to ``near`` first (upwards on ties)."""
    for step in range(65536):
        up, down = near + step, near - step
        if up > 65535 and down < FIRST_UNPRIVILEGED_PORT:
            return
        if up <= 65535 and up >= FIRST_UNPRIVILEGED_PORT:
            yield up
        if step and FIRST_UNPRIVILEGED_PORT <= down <= 65535:
            yield down


def free_ports(
    *,
    near: int | None = None,
    count: int = 1,
    transport: str = "tcp",
    rng: random.Random | None = None,
) -> list[int]:
    """Return ``count`` distinct ports free to bind now, nearest to ``near`` first.

    Args:
        near: start looking here; default a random port below the ephemeral range,
            so that two callers at the same moment rarely pick the same port.
        count: how many ports (1-1000).
        transport: ``"tcp"`` or ``"udp"``.
        rng: the random source for the default start (tests pass a seeded one).

    Raises:
        PortSpecError: ``near`` outside 0-65535 or an unknown transport.
        UsageError: ``count`` outside 1-1000.
        NetworkError: fewer than ``count`` ports are free on this machine.
    """
    if transport not in ("tcp", "udp"):
        raise PortSpecError(f"transport must be tcp or udp, not {transport!r}")
    if not 1 <= count <= MAX_COUNT:
        raise UsageError(f"count must be 1-{MAX_COUNT}, not {count}")
    low, high = ephemeral_range()
    if near is None:
        near = (rng or random.SystemRandom()).randrange(10000, max(low, 10001))
    elif not 0 <= near <= 65535:  # the one wording of port ranges, as everywhere
        raise PortSpecError(f"port must be 0-65535, not {near}")

    from portkit.registry import default_registry

    registry = default_registry()
    preferred: list[int] = []
    second_choice: list[int] = []
    for port in _by_distance(near):
        services = registry.by_port(port, transport)
        if any(service.note for service in services):
            continue  # a common development port: leave it to the dev servers
        second = bool(services) or low <= port <= high
        if second and len(second_choice) >= count:
            continue  # enough fallbacks already; don't spend binds on more
        if not is_free(port, transport):
            continue
        if second:
            second_choice.append(port)
        else:
            preferred.append(port)
            if len(preferred) == count:
                return preferred
    # Too few preferred ports are free: make up the count with the nearest second choices.
    chosen = preferred + second_choice[: count - len(preferred)]
    if len(chosen) < count:
        raise NetworkError(f"only {len(chosen)} free {transport} ports found, not {count}")
    return chosen
