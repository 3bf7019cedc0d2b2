"""This machine's listening sockets and the processes that own them.

A TCP socket listens when it is in the LISTEN state; a UDP socket "listens" when it is
bound and not connected to a peer (it has no remote address), which is how ``ss -lun``
and ``lsof -i UDP`` show UDP servers. The socket table comes from the kernel through
psutil; which process owns a socket is only visible for processes this user may
inspect, so without root other users' owners are reported as hidden (``pid`` is
``None``) rather than guessed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from portkit._errors import PortSpecError, PrivilegeError
from portkit._value import Frozen

__all__ = ["ListeningSocket", "Listing", "listening_sockets"]

_TRANSPORTS = ("tcp", "udp")


class ListeningSocket(Frozen):
    """One listening socket: where it listens and, when visible, who owns it."""

    __slots__ = (  # noqa: RUF023 (the order of the fields in repr and comparisons)
        "transport",
        "family",
        "address",
        "port",
        "pid",
        "process",
        "user",
        "service",
    )

    transport: str  # "tcp" or "udp"
    family: str  # "ipv4" or "ipv6"
    address: str  # the bound address: "0.0.0.0", "::", "127.0.0.1", ...
    port: int
    pid: int | None  # None when the owner is hidden from this user
    process: str | None  # the owning process's name
    user: str | None  # the owning process's user name
    service: str | None  # the registry's name for (port, transport)

    def __init__(
        self,
        *,
        transport: str,
        family: str,
        address: str,
        port: int,
        pid: int | None = None,
        process: str | None = None,
        user: str | None = None,
        service: str | None = None,
    ) -> None:
        setter = object.__setattr__
        setter(self, "transport", transport)
        setter(self, "family", family)
        setter(self, "address", address)
        setter(self, "port", port)
        setter(self, "pid", pid)
        setter(self, "process", process)
        setter(self, "user", user)
        setter(self, "service", service)

    @property
    def wildcard(self) -> bool:
        """Whether the socket listens on every address of the machine."""
        return self.address in ("0.0.0.0", "::")

    @property
    def local(self) -> bool:
        """Whether the socket listens on a loopback address only."""
        return self.address.startswith("127.") or self.address == "::1"


class Listing(Frozen):
    """The listening sockets found, with how many owners were hidden from this user."""

    __slots__ = ("sockets", "hidden_owners", "privileged")  # noqa: RUF023 (field order)

    sockets: tuple[ListeningSocket, ...]
    hidden_owners: int  # sockets whose owning process this user may not see
    privileged: bool  # whether the listing ran with root (every owner visible)

    def __init__(
        self, *, sockets: tuple[ListeningSocket, ...], hidden_owners: int, privileged: bool
    ) -> None:
        setter = object.__setattr__
        setter(self, "sockets", sockets)
        setter(self, "hidden_owners", hidden_owners)
        setter(self, "privileged", privileged)


def _process_details(
    pid: int, cache: dict[int, tuple[str | None, str | None]]
) -> tuple[str | None, str | None]:
    """Return (name, user) of ``pid``; ``None`` for what this user may not read."""
    if pid in cache:
        return cache[pid]
    import psutil

    name: str | None = None
    user: str | None = None
    try:
        proc = psutil.Process(pid)
        name = proc.name()
        try:
            user = proc.username()
        except KeyError:  # a uid with no passwd entry (containers): show the number
            user = str(proc.uids().real)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        pass  # it exited between the socket table and now; the pid is still the answer
    except psutil.AccessDenied:
        pass  # the pid is known, its details are not ours to read
    cache[pid] = (name, user)
    return name, user


def _service_names(
    sockets: Iterable[tuple[str, int]],
) -> dict[tuple[str, int], str | None]:
    from portkit.registry import default_registry

    registry = default_registry()
    return {
        (transport, port): registry.service_name(port, transport)
        for transport, port in set(sockets)
    }


def listening_sockets(
    *, port: int | None = None, transports: Iterable[str] = _TRANSPORTS
) -> Listing:
    """List this machine's listening TCP and UDP sockets, IPv4 and IPv6.

    Args:
        port: only sockets bound to this port.
        transports: which of ``"tcp"`` and ``"udp"`` to list.

    Returns:
        The sockets sorted by (port, transport, address), with owners where visible.

    Raises:
        PortSpecError: ``port`` is not 0-65535 or a transport is unknown.
        PrivilegeError: the kernel's socket table cannot be read at all.
    """
    # Port numbers are 0-65535, worded so everywhere; nothing is ever bound to 0, so
    # asking about it is a valid question whose answer is "nothing listens".
    if port is not None and not 0 <= port <= 65535:
        raise PortSpecError(f"port must be 0-65535, not {port}")
    wanted = tuple(transports)
    for transport in wanted:
        if transport not in _TRANSPORTS:
            raise PortSpecError(f"transport must be tcp or udp, not {transport!r}")

    details: dict[int, tuple[str | None, str | None]] = {}
    try:
        kernel = _from_kernel(wanted, port, details)
    except OSError:
        kernel = None  # no netlink sock_diag here: ask psutil, which reads /proc's tables
    found = kernel if kernel is not None else _from_psutil(wanted, port)
    names = _service_names((t, p) for t, _, _, p, _ in found)
    sockets = []
    for transport, family, address, bound_port, pid in set(found):
        process, user = _process_details(pid, details) if pid is not None else (None, None)
        sockets.append(
            ListeningSocket(
                transport=transport,
                family=family,
                address=address,
                port=bound_port,
                pid=pid,
                process=process,
                user=user,
                service=names[(transport, bound_port)],
            )
        )
    sockets.sort(key=lambda s: (s.port, s.transport, s.family, s.address, s.pid or 0))
    return Listing(
        sockets=tuple(sockets),
        hidden_owners=sum(1 for s in sockets if s.pid is None),
        privileged=os.geteuid() == 0,
    )


_Found = list[tuple[str, str, str, int, int | None]]


def _from_kernel(
    wanted: tuple[str, ...], port: int | None, details: dict[int, tuple[str | None, str | None]]
) -> _Found:
    """The sockets through netlink sock_diag, their owners through /proc (Linux)."""
    from portkit.client._sockdiag import listening_from_kernel, owners, process_details

    raw = [s for s in listening_from_kernel(wanted) if port is None or s[3] == port]
    holders = owners({s[4] for s in raw})
    found: _Found = []
    for transport, family, address, bound_port, inode in raw:
        pids = holders.get(inode)
        if not pids:
            found.append((transport, family, address, bound_port, None))
        for pid in pids or ():
            if pid not in details:
                details[pid] = process_details(pid)
            found.append((transport, family, address, bound_port, pid))
    return found


def _from_psutil(wanted: tuple[str, ...], port: int | None) -> _Found:
    """The sockets and owners through psutil (where there is no sock_diag)."""
    import socket

    import psutil  # imported here: `portkit connect` should not pay for it

    found: _Found = []
    # One pass over the kernel's tables (and over /proc for the owners) for both
    # transports: the owner lookup is the expensive part.
    kind = "inet" if len(set(wanted)) == 2 else wanted[0]
    try:
        connections = psutil.net_connections(kind=kind)
    except psutil.AccessDenied as exc:  # some platforms (macOS) need root for this
        raise PrivilegeError(f"reading the socket table needs root on this system: {exc}") from exc
    for conn in connections:
        transport = "tcp" if conn.type == socket.SOCK_STREAM else "udp"
        if transport not in wanted or not conn.laddr:
            continue
        if transport == "tcp" and conn.status != psutil.CONN_LISTEN:
            continue
        if transport == "udp" and conn.raddr:
            continue  # a connected UDP socket is a client, not a server
        if port is not None and conn.laddr.port != port:
            continue
        family = "ipv6" if conn.family == socket.AF_INET6 else "ipv4"
        found.append((transport, family, conn.laddr.ip, conn.laddr.port, conn.pid))
    return found
