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
import fcntl
import hashlib
import ipaddress
import mmap
import os
import struct
import zlib

__all__ = [
    "Admission",
    "AdmissionTable",
    "SendClock",
    "SharedAdmission",
    "Slot",
    "default_per_source",
    "source_of",
]


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

    def __init__(self, admission: Admission | SharedAdmission, source: str) -> None:
        self._admission: Admission | SharedAdmission | None = admission
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


#: The most entries of an :class:`AdmissionTable` (sources open at once beyond this many are
#: refused, whatever ``max_connections`` says: 2**20 entries of 24 bytes for two workers).
MAX_TABLE_ENTRIES = 2**20
_TOTAL = struct.Struct("=q")


def _source_key(source: str) -> bytes:
    """Sixteen bytes naming a source (as :func:`source_of` returns it) in the shared table."""
    try:
        if "/" in source:
            network = ipaddress.IPv6Network(source)
            return b"\x06" + network.network_address.packed[:8] + bytes(7)
        return b"\x04" + ipaddress.IPv4Address(source).packed + bytes(11)
    except ValueError:
        # Not an IP address: counted as itself, under a digest (never all zeros: the tag).
        return b"\xff" + hashlib.blake2b(source.encode(), digest_size=15).digest()


class AdmissionTable:
    """Open connections per source and per worker, in memory the worker processes share.

    One :class:`Admission` per process cannot be exact when several processes accept on
    one port: a source's connections land in any of them. This table is the one count they
    all read and write, under a lock (``lockf`` on the memory's file: the kernel lets go
    of it when a process dies, so a worker killed at the wrong moment blocks no one).

    Layout: the connections open per worker (``workers`` 64-bit integers), then an open
    addressing hash table (linear probing, deletion by backward shift) of entries: a
    16-byte source key, then one 32-bit count per worker. Keeping a column per worker lets
    the parent forget what a dead worker held (:meth:`forget`) without knowing which
    sources those were. An entry whose counts are all 0 is removed, so the table holds at
    most one entry per open connection: twice ``limit`` entries never fill up.
    """

    def __init__(self, limit: int, per_source: int | None, workers: int) -> None:
        self.limit = limit
        self.per_source = default_per_source(limit) if per_source is None else per_source
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        entries = 16
        while entries < 2 * limit and entries < MAX_TABLE_ENTRIES:
            entries *= 2
        self._mask = entries - 1
        self._counts = struct.Struct(f"={workers}i")
        self._entry = 16 + self._counts.size
        self._header = 8 * workers
        size = self._header + entries * self._entry
        self._fd = os.memfd_create("portkit-admission")
        try:
            os.ftruncate(self._fd, size)
            self._map = mmap.mmap(self._fd, size)  # MAP_SHARED: forked workers see one table
        except BaseException:
            os.close(self._fd)
            raise

    @property
    def fd(self) -> int:
        """The descriptor of the shared memory (a worker keeps it open: the lock is on it)."""
        return self._fd

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)

    # -- under the lock -------------------------------------------------------------------

    def lock(self) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def total(self) -> int:
        """Connections open in every worker."""
        return sum(_TOTAL.unpack_from(self._map, 8 * w)[0] for w in range(self.workers))

    def held(self, key: bytes) -> int:
        """Connections open from source ``key`` in every worker."""
        index = self._find(key)
        if index < 0:
            return 0
        return sum(self._counts.unpack_from(self._map, self._offset(index) + 16))

    def add(self, key: bytes, worker: int, delta: int) -> bool:
        """Count ``delta`` (+1 or -1) connections of ``key`` in ``worker``; False if full."""
        index = self._find(key)
        if index < 0:
            if delta < 0:
                return True  # forgotten already (the worker was declared dead)
            index = self._free_for(key)
            if index < 0:
                return False
            self._map[self._offset(index) : self._offset(index) + 16] = key
        at = self._offset(index) + 16 + 4 * worker
        (count,) = struct.unpack_from("=i", self._map, at)
        struct.pack_into("=i", self._map, at, count + delta)
        header = 8 * worker
        (total,) = _TOTAL.unpack_from(self._map, header)
        _TOTAL.pack_into(self._map, header, total + delta)
        if not any(self._counts.unpack_from(self._map, self._offset(index) + 16)):
            self._delete(index)
        return True

    def forget(self, worker: int) -> None:
        """Drop everything ``worker`` held (it died; its connections died with it)."""
        self.lock()
        try:
            live = []
            for index in range(self._mask + 1):
                offset = self._offset(index)
                key = bytes(self._map[offset : offset + 16])
                if not any(key):
                    continue
                counts = list(self._counts.unpack_from(self._map, offset + 16))
                counts[worker] = 0
                if any(counts):
                    live.append((key, counts))
            self._map[self._header :] = bytes(len(self._map) - self._header)
            for key, counts in live:
                index = self._free_for(key)
                offset = self._offset(index)
                self._map[offset : offset + 16] = key
                self._counts.pack_into(self._map, offset + 16, *counts)
            _TOTAL.pack_into(self._map, 8 * worker, 0)
        finally:
            self.unlock()

    def _offset(self, index: int) -> int:
        return self._header + index * self._entry

    def _home(self, key: bytes) -> int:
        return zlib.crc32(key) & self._mask

    def _find(self, key: bytes) -> int:
        index = self._home(key)
        for _ in range(self._mask + 1):
            stored = self._map[self._offset(index) : self._offset(index) + 16]
            if stored == key:
                return index
            if not any(stored):
                return -1
            index = (index + 1) & self._mask
        return -1

    def _free_for(self, key: bytes) -> int:
        index = self._home(key)
        for _ in range(self._mask + 1):
            if not any(self._map[self._offset(index) : self._offset(index) + 16]):
                return index
            index = (index + 1) & self._mask
        return -1

    def _delete(self, hole: int) -> None:
        """Empty entry ``hole``, moving later entries of its probe run back into it."""
        index = hole
        while True:
            index = (index + 1) & self._mask
            offset = self._offset(index)
            key = self._map[offset : offset + 16]
            if not any(key):
                break
            home = self._home(key)
            # The entry may move to the hole unless its home lies cyclically in (hole, index].
            if (home - hole - 1) & self._mask < (index - hole) & self._mask:
                continue
            start = self._offset(hole)
            self._map[start : start + self._entry] = self._map[offset : offset + self._entry]
            hole = index
        start = self._offset(hole)
        self._map[start : start + self._entry] = bytes(self._entry)


class SharedAdmission:
    """:class:`Admission` for one worker of several, counting in an :class:`AdmissionTable`.

    Same interface and same decisions as one :class:`Admission` that would see every
    worker's connections: the limits are exact across the processes.
    """

    __slots__ = ("_table", "limit", "per_source", "worker")

    def __init__(self, table: AdmissionTable, worker: int) -> None:
        self._table = table
        self.worker = worker
        self.limit = table.limit
        self.per_source = table.per_source

    @property
    def open(self) -> int:
        table = self._table
        table.lock()
        try:
            return table.total()
        finally:
            table.unlock()

    def admit(self, host: str) -> Slot | None:
        """A slot for a new connection from ``host``, or None if a limit is reached."""
        source = source_of(host)
        key = _source_key(source)
        table = self._table
        table.lock()
        try:
            if table.total() >= self.limit or table.held(key) >= self.per_source:
                return None
            if not table.add(key, self.worker, 1):
                return None  # more sources at once than MAX_TABLE_ENTRIES
        finally:
            table.unlock()
        return Slot(self, source)

    def refusal(self, host: str) -> str:
        """Why :meth:`admit` refuses ``host`` now (for the log), or "" if it would not."""
        source = source_of(host)
        table = self._table
        table.lock()
        try:
            total, held = table.total(), table.held(_source_key(source))
        finally:
            table.unlock()
        if total >= self.limit:
            return f"{total} connections open (limit {self.limit})"
        if held >= self.per_source:
            return f"{held} connections from {source} (limit {self.per_source})"
        return ""

    def held_by(self, host: str) -> int:
        """Connections open from the source of ``host``, in every worker."""
        table = self._table
        table.lock()
        try:
            return table.held(_source_key(source_of(host)))
        finally:
            table.unlock()

    def _release(self, source: str) -> None:
        table = self._table
        table.lock()
        try:
            table.add(_source_key(source), self.worker, -1)
        finally:
            table.unlock()


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
