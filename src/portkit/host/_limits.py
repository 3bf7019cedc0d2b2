"""Connection admission: how many connections an application holds, and from whom.

Every kind counts its connections here, at the moment a connection is accepted and before
any task is started for it. Counting inside the connection's own task lets a burst of
simultaneous clients all pass the check before the first one is counted (an accept loop
takes every queued connection without yielding); counting at admission cannot overshoot.

:class:`Admission` holds two limits:

- ``limit``: connections open at once, whoever holds them;
- ``per_source``: connections open at once from one *source*, so that one address cannot
  take every slot (a client that opens connections and never reads would otherwise lock
  everyone else out). A source is an IPv4 address, or an IPv6 /64 prefix (one host
  usually owns a whole /64, RFC 4291 section 2.5.1, so counting single IPv6 addresses
  would let it open as many sources as it likes). IPv4-mapped IPv6 addresses count as the
  IPv4 address. The default is half of ``limit``: whatever one source does, the other
  half of the slots stays open to everyone else.

Usage, from an accept path (no ``await`` between the check and the use)::

    slot = self.admission.admit(peer_host)
    if slot is None:
        refuse(self.admission.refusal(peer_host))
    else:
        try:
            ...serve...
        finally:
            slot.release()

:meth:`Slot.release` may be called more than once; only the first call counts.
"""

from __future__ import annotations

import collections
import ipaddress

__all__ = ["Admission", "SendClock", "Slot", "default_per_source", "source_of"]


def default_per_source(limit: int) -> int:
    """The per-source limit when none is configured: half of ``limit`` (at least 1)."""
    return max(1, limit // 2)


def source_of(host: str) -> str:
    """The source a peer address counts against: the IPv4 address or the IPv6 /64."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])  # drop an IPv6 zone
    except ValueError:
        return host  # not an IP address (a UNIX socket, "?"): counted as itself
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class Slot:
    """One admitted connection; :meth:`release` gives its place back (once)."""

    __slots__ = ("_admission", "source")

    def __init__(self, admission: Admission, source: str) -> None:
        self._admission: Admission | None = admission
        self.source = source

    def release(self) -> None:
        admission, self._admission = self._admission, None
        if admission is not None:
            admission._release(self.source)


class Admission:
    """Counts open connections in total and per source; refuses beyond the limits."""

    __slots__ = ("_by_source", "limit", "open", "per_source")

    def __init__(self, limit: int, per_source: int | None = None) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        self.limit = limit
        self.per_source = default_per_source(limit) if per_source is None else per_source
        if self.per_source < 1:
            raise ValueError(f"per_source must be at least 1, not {self.per_source}")
        self.open = 0
        self._by_source: collections.Counter[str] = collections.Counter()

    def admit(self, host: str) -> Slot | None:
        """A slot for a new connection from ``host``, or None if a limit is reached."""
        source = source_of(host)
        if self.open >= self.limit or self._by_source[source] >= self.per_source:
            return None
        self.open += 1
        self._by_source[source] += 1
        return Slot(self, source)

    def refusal(self, host: str) -> str:
        """Why :meth:`admit` refuses ``host`` now (for the log), or "" if it would not."""
        source = source_of(host)
        if self.open >= self.limit:
            return f"{self.open} connections open (limit {self.limit})"
        if self._by_source[source] >= self.per_source:
            return f"{self._by_source[source]} connections from {source} (limit {self.per_source})"
        return ""

    def held_by(self, host: str) -> int:
        """Connections open from the source of ``host``."""
        return self._by_source[source_of(host)]

    def _release(self, source: str) -> None:
        self.open -= 1
        self._by_source[source] -= 1
        if self._by_source[source] <= 0:
            del self._by_source[source]


class SendClock:
    """When to give up on a peer that does not take what it is sent (a send timeout).

    Progress is what the peer has *acknowledged* (bytes it took), sampled now and then:
    it must take at least ``max(1, min_rate * timeout)`` bytes within every ``timeout``
    seconds, or :meth:`expired` says so. With ``min_rate`` 0 this is nginx's
    ``send_timeout``: nothing taken for ``timeout`` seconds. With a rate, a client that
    takes one byte now and then (to look alive) is dropped too.
    """

    __slots__ = ("_floor", "_mark_bytes", "_mark_time", "timeout")

    def __init__(self, timeout: float, min_rate: float, now: float, acked: int) -> None:
        self.timeout = timeout
        self._floor = max(1, int(min_rate * timeout))
        self._mark_time = now
        self._mark_bytes = acked

    def expired(self, now: float, acked: int) -> bool:
        """Whether the peer took too little since the last mark (a sample at ``now``)."""
        if acked - self._mark_bytes >= self._floor:
            self._mark_time, self._mark_bytes = now, acked
            return False
        return now - self._mark_time >= self.timeout
