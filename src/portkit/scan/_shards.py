"""Scan shards: a scan cut into host blocks x port blocks, and the resume journal.

A cluster scan (see :mod:`portkit.scan._cluster`) runs the same engine as a local one,
shard by shard. This module holds the parts that do no I/O on the network:

- :func:`choose_layout` sizes the blocks so a shard is a few thousand probes (seconds
  of work, not milliseconds or hours) and there are enough host blocks to keep every
  worker busy;
- :func:`make_shards` lists the shards in *release order*: port block major, host block
  minor, so consecutive shards touch different hosts and each host's ports are spread
  over the whole scan instead of arriving from every worker at once;
- :class:`Order` permutes the hosts over the whole scan (a walk of a cyclic group, as
  ZMap walks the address space), so a host block is hosts from all over the plan and
  no network receives a burst; the walk is fixed by a few integers, kept in the
  journal, so ``--resume`` cuts the same shards;
- :func:`result_key` is the order results are handed out in within a shard, so the
  stream a cluster scan produces is the same run to run;
- :class:`ShardJournal` is the ``--resume`` state file: a header line naming the scan,
  then one line per finished shard with its results. A record is written with one
  ``write`` and made durable with ``fsync``; a line cut short by a crash is ignored
  (and cut off) when the file is opened again, so a shard is recorded whole or not at
  all, and every output format can be rebuilt from the records.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

from portkit._errors import UsageError
from portkit.results import Identification, PortResult, PortState, TlsInfo, identification_json
from portkit.scan._engine import EngineOptions
from portkit.scan._ports import PortSet
from portkit.scan._scan import ScanPlan
from portkit.scan._targets import Target, TargetSpec, TargetTable

__all__ = [
    "DEFAULT_SHARD_PROBES",
    "JOURNAL_VERSION",
    "Layout",
    "Order",
    "Shard",
    "ShardJournal",
    "ShardList",
    "ShardTask",
    "choose_layout",
    "make_shards",
    "result_from_json",
    "result_key",
    "result_to_json",
    "scan_fingerprint",
]

# Probes per shard. A connect scan of open or closed ports runs tens of thousands of
# probes a second; filtered ones cost their timeouts (1 + 2 + 4 s with two retries) but
# run side by side in the window, so a few thousand probes is seconds of work either way.
DEFAULT_SHARD_PROBES = 4096
JOURNAL_VERSION = 2
_MAGIC = "portkit-scan-state"


def _is_prime(n: int) -> bool:
    if n < 2:
        return False
    for q in (2, 3, 5, 7, 11, 13):
        if n % q == 0:
            return n == q
    # Deterministic Miller-Rabin for n < 3.3e24 with these bases (enough for any plan).
    d, r = n - 1, 0
    while d % 2 == 0:
        d, r = d // 2, r + 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41):
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime_factors(n: int) -> list[int]:
    factors: list[int] = []
    q = 2
    while q * q <= n:
        if n % q == 0:
            factors.append(q)
            while n % q == 0:
                n //= q
        q += 1 if q == 2 else 2
    if n > 1:
        factors.append(n)
    return factors


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """A permutation of host indices 0..n-1: the walk g^(offset+k) mod p, k = 0, 1, ...

    ``p`` is the least prime above ``n`` and ``g`` a generator of the multiplicative
    group mod ``p``, so the walk visits every value 1..p-1 once in p-1 steps; value
    ``v`` stands for host ``v - 1``, and the few values past ``n`` are skipped. The
    position ``k`` is what shards are cut by, so any stretch of the walk is computed
    from its start alone (one modular power), without the rest of the plan.
    """

    prime: int
    generator: int
    offset: int

    @classmethod
    def for_count(cls, n: int, seed: int) -> Order:
        """A walk over ``n`` hosts chosen by ``seed`` (the same seed: the same walk)."""
        import random

        p = n + 1
        while not _is_prime(p):
            p += 1
        rng = random.Random(seed)
        if p == 2:
            return cls(prime=2, generator=1, offset=0)
        factors = _prime_factors(p - 1)
        while True:  # about a third of the candidates are generators
            g = rng.randrange(2, p)
            if all(pow(g, (p - 1) // q, p) != 1 for q in factors):
                return cls(prime=p, generator=g, offset=rng.randrange(p - 1))

    @property
    def positions(self) -> int:
        """Steps in the walk (the group's order, ``p - 1``)."""
        return self.prime - 1

    def hosts(self, start: int, stop: int, count: int) -> Iterator[int]:
        """Host indices (below ``count``) at walk positions ``start`` to ``stop``."""
        p = self.prime
        value = pow(self.generator, self.offset + start, p)
        for _ in range(start, min(stop, self.positions)):
            if value <= count:
                yield value - 1
            value = value * self.generator % p


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """How a scan is cut: hosts per host block, (transport, port) items per port block.

    ``order`` walks the hosts in a permuted order (``None``: as listed).
    """

    host_block: int
    port_block: int
    order: Order | None = None

    def __post_init__(self) -> None:
        if self.host_block < 1 or self.port_block < 1:
            raise UsageError(
                f"shard blocks must be at least 1, not {self.host_block}x{self.port_block}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Shard:
    """One unit of cluster work: some hosts, some ports, numbered in release order."""

    index: int
    host_block: int  # which block of hosts; shards of one host block never run at once
    port_block: int
    targets: tuple[Target, ...]
    ports: PortSet

    @property
    def probe_count(self) -> int:
        """How many (host, port, transport) results this shard produces."""
        return len(self.targets) * len(self.ports)


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardTask:
    """What a worker needs to run one shard: the shard and the engine's settings."""

    shard: Shard
    syn: bool
    options: EngineOptions
    detect: bool
    # How far identification goes (``--detect=LEVEL``): a worker is another process, so
    # the level the command set in its own context travels with the task.
    level: str = "normal"
    # A cluster worker is a process already: its shard runs in it, without forking more
    # (``None``: the engine's own choice, as a local scan; used when shards run here).
    processes: int | None = 1

    def plan(self) -> ScanPlan:
        """The shard as an ordinary :class:`ScanPlan` (each host its own resolved spec)."""
        specs = tuple(
            TargetSpec(text=t.address, hostname=t.hostname, addresses=(t.address,))
            for t in self.shard.targets
        )
        return ScanPlan(
            targets=specs,
            ports=self.shard.ports,
            syn=self.syn,
            options=self.options,
            processes=self.processes,
        )


def _port_items(ports: PortSet) -> list[tuple[str, int]]:
    return [("tcp", p) for p in ports.tcp] + [("udp", p) for p in ports.udp]


def choose_layout(
    host_count: int, ports: PortSet, *, slots: int, shard_probes: int = DEFAULT_SHARD_PROBES
) -> Layout:
    """Size the blocks: about ``shard_probes`` probes a shard, work for ``slots`` workers.

    Many ports (a full sweep) are cut into port blocks of one host each; few ports keep
    whole and group hosts instead. Host blocks are made small enough that there are at
    least ``slots`` of them when there are that many hosts, because two shards of the
    same host block never run at the same time (politeness, see :func:`make_shards`).
    """
    if shard_probes < 1:
        raise UsageError(f"shard size must be at least 1 probe, not {shard_probes}")
    items = max(1, len(ports))
    hosts = max(1, host_count)
    if items >= shard_probes:
        return Layout(host_block=1, port_block=shard_probes)
    host_block = max(1, shard_probes // items)
    host_block = min(host_block, max(1, math.ceil(hosts / max(1, slots))))
    return Layout(host_block=host_block, port_block=items)


class ShardList(Sequence[Shard]):
    """The shards of a scan in release order, each made when asked for (a /8 has 4,096
    of 4,096 hosts: listing them all would hold the whole plan in memory)."""

    def __init__(
        self, targets: Sequence[Target] | TargetTable, ports: PortSet, layout: Layout
    ) -> None:
        self._targets = targets
        self._layout = layout
        items = _port_items(ports)
        self._port_blocks = [
            _port_set(items[i : i + layout.port_block])
            for i in range(0, len(items), layout.port_block)
        ]
        positions = len(targets) if layout.order is None else layout.order.positions
        self._host_blocks = max(1, math.ceil(positions / layout.host_block))
        if not targets:
            self._host_blocks = 0

    def __len__(self) -> int:
        return self._host_blocks * len(self._port_blocks)

    def _hosts(self, block: int) -> tuple[Target, ...]:
        start = block * self._layout.host_block
        stop = start + self._layout.host_block
        count = len(self._targets)
        order = self._layout.order
        indices = (
            range(start, min(stop, count)) if order is None else order.hosts(start, stop, count)
        )
        if isinstance(self._targets, TargetTable):
            table = self._targets
            return tuple(t for i in indices if (t := table.at(i)) is not None)
        return tuple(self._targets[i] for i in indices)

    @overload
    def __getitem__(self, index: int) -> Shard: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[Shard]: ...

    def __getitem__(self, index: int | slice) -> Shard | Sequence[Shard]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not 0 <= index < len(self):
            raise IndexError(index)
        pb, hb = divmod(index, self._host_blocks)
        return Shard(
            index=index,
            host_block=hb,
            port_block=pb,
            targets=self._hosts(hb),
            ports=self._port_blocks[pb],
        )


def _port_set(chunk: Sequence[tuple[str, int]]) -> PortSet:
    return PortSet(
        tcp=tuple(p for t, p in chunk if t == "tcp"), udp=tuple(p for t, p in chunk if t == "udp")
    )


def make_shards(
    targets: Sequence[Target] | TargetTable, ports: PortSet, layout: Layout
) -> ShardList:
    """Cut ``targets`` x ``ports`` into shards, in release order (port block major).

    Consecutive shards belong to different host blocks, so with several workers the
    shards running at once touch different hosts, and one host's ports are spread over
    the scan's duration. The shards are made as they are asked for (:class:`ShardList`).
    """
    return ShardList(targets, ports, layout)


def result_key(result: PortResult) -> tuple[int, int, str, int]:
    """Sort key of results within a shard: address (numerically), transport, port."""
    ip = ipaddress.ip_address(result.host)
    return (ip.version, int(ip), result.transport, result.port)


def scan_fingerprint(plan: ScanPlan, *, detect: bool) -> str:
    """A digest of what a scan covers and how, to refuse resuming a different scan.

    Made from the target specs, not the addresses they expand to (a /8 is 16.7 million).
    Rate and concurrency are left out: they may be changed on resume.
    """

    def spec(s: TargetSpec) -> list[object]:
        return [s.text, None if s.network is None else str(s.network), s.octets, s.hostname,
                list(s.addresses)]  # fmt: skip

    head = {
        "tcp": list(plan.ports.tcp),
        "udp": list(plan.ports.udp),
        "syn": plan.syn,
        "detect": detect,
        "timeout": plan.options.timeout,
        "retries": plan.options.retries,
        "targets": [spec(s) for s in plan.targets],
        "exclude": [spec(s) for s in plan.exclude],
    }
    return hashlib.sha256(json.dumps(head, sort_keys=True).encode()).hexdigest()


# --- results to and from JSON (the journal's records) ------------------------------


def _base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def result_to_json(result: PortResult) -> dict[str, Any]:
    """Every field of ``result`` as JSON values (bytes as base64); see :func:`result_from_json`."""
    return {
        "host": result.host,
        "port": result.port,
        "transport": result.transport,
        "state": result.state.value,
        "reason": result.reason,
        "hostname": result.hostname,
        "expected": result.expected,
        "rtt": result.rtt,
        "identified": identification_json(result.identified, evidence=_base64),
    }


def result_from_json(data: dict[str, Any]) -> PortResult:
    """Rebuild the :class:`PortResult` that :func:`result_to_json` wrote."""
    ident = data["identified"]
    identified = None
    if ident is not None:
        tls = ident["tls"]
        identified = Identification(
            service=ident["service"],
            product=ident["product"],
            version=ident["version"],
            extra=ident["extra"],
            tls=None
            if tls is None
            else TlsInfo(
                version=tls["version"],
                cipher=tls["cipher"],
                alpn=tls["alpn"],
                subject=tls["subject"],
                issuer=tls["issuer"],
                not_before=tls["not_before"],
                not_after=tls["not_after"],
                self_signed=tls["self_signed"],
                subject_alt_names=tuple(tls["subject_alt_names"]),
            ),
            confidence=ident["confidence"],
            method=ident["method"],
            probe=ident["probe"],
            evidence=base64.b64decode(ident["evidence"]),
        )
    return PortResult(
        host=data["host"],
        port=data["port"],
        transport=data["transport"],
        state=PortState(data["state"]),
        reason=data["reason"],
        hostname=data["hostname"],
        expected=data["expected"],
        rtt=data["rtt"],
        identified=identified,
    )


# --- the resume journal ---------------------------------------------------------------


class ShardJournal:
    """The ``--resume`` state file: which shards finished, and what they found.

    :meth:`open_existing` checks a file against the scan; :meth:`create` starts one.
    """

    def __init__(self, path: Path, fd: int, layout: Layout, offsets: dict[int, int]) -> None:
        self.path = path
        self.layout = layout
        self._fd = fd
        self._offsets = offsets  # shard index -> byte offset of its record

    @classmethod
    def open_existing(
        cls, path: str | os.PathLike[str], *, fingerprint: str
    ) -> ShardJournal | None:
        """Open the state file at ``path`` if there is one; ``None`` when there is none.

        Raises:
            UsageError: the file cannot be read or written, is no portkit scan state,
                or belongs to a different scan than ``fingerprint`` names.
        """
        target = Path(path)
        try:
            fd = os.open(target, os.O_RDWR | os.O_APPEND)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UsageError(f"cannot use state file {str(target)!r}: {exc.strerror}") from None
        try:
            layout, offsets = cls._load(target, fd, fingerprint=fingerprint)
        except BaseException:
            os.close(fd)
            raise
        return cls(target, fd, layout, offsets)

    @classmethod
    def create(
        cls, path: str | os.PathLike[str], *, fingerprint: str, layout: Layout, shard_count: int
    ) -> ShardJournal:
        """Create a state file for a new scan (written aside, then renamed into place).

        Raises:
            UsageError: the file cannot be written.
        """
        target = Path(path)
        try:
            cls._create(target, fingerprint=fingerprint, layout=layout, count=shard_count)
            fd = os.open(target, os.O_RDWR | os.O_APPEND)
        except OSError as exc:
            raise UsageError(f"cannot write state file {str(target)!r}: {exc.strerror}") from None
        return cls(target, fd, layout, {})

    @staticmethod
    def _create(target: Path, *, fingerprint: str, layout: Layout, count: int) -> None:
        header = {
            _MAGIC: JOURNAL_VERSION,
            "fingerprint": fingerprint,
            "host_block": layout.host_block,
            "port_block": layout.port_block,
            "order": None
            if layout.order is None
            else [layout.order.prime, layout.order.generator, layout.order.offset],
            "shards": count,
        }
        aside = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with open(aside, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(header) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(aside, target)

    @staticmethod
    def _load(target: Path, fd: int, *, fingerprint: str) -> tuple[Layout, dict[int, int]]:
        name = str(target)
        offsets: dict[int, int] = {}
        good_end = 0
        with open(target, "rb") as handle:
            first = handle.readline()
            try:
                header = json.loads(first)
                valid = isinstance(header, dict) and header.get(_MAGIC) == JOURNAL_VERSION
            except ValueError:
                valid = False
            if not valid or not first.endswith(b"\n"):
                raise UsageError(f"{name!r} is not a portkit scan state file")
            if header.get("fingerprint") != fingerprint:
                raise UsageError(
                    f"state file {name!r} belongs to a different scan "
                    "(targets, ports, --detect, --syn, --timeout or --retries differ)"
                )
            try:
                walk = header.get("order")
                order = None
                if walk is not None:
                    prime, generator, offset = (int(v) for v in walk)
                    order = Order(prime=prime, generator=generator, offset=offset)
                layout = Layout(
                    host_block=int(header["host_block"]),
                    port_block=int(header["port_block"]),
                    order=order,
                )
            except (KeyError, TypeError, ValueError, UsageError):
                raise UsageError(f"{name!r} is not a portkit scan state file") from None
            good_end = handle.tell()
            while line := handle.readline():
                if not line.endswith(b"\n"):
                    break  # a record cut short by a crash: the shard runs again
                try:
                    record = json.loads(line)
                    index = int(record["shard"])
                    if not isinstance(record["results"], list) or index < 0:
                        break
                except (ValueError, KeyError, TypeError):
                    break  # not a record of ours: it and what follows run again
                offsets.setdefault(index, good_end)
                good_end = handle.tell()
        if good_end < target.stat().st_size:
            os.ftruncate(fd, good_end)
        return layout, offsets

    @property
    def finished(self) -> frozenset[int]:
        """Indices of the shards recorded so far."""
        return frozenset(self._offsets)

    def record(self, index: int, results: Sequence[PortResult]) -> None:
        """Append shard ``index``'s results as one line and make it durable."""
        if index in self._offsets:
            return  # recorded already: a shard counts once
        line = json.dumps(
            {"shard": index, "results": [result_to_json(r) for r in results]},
            separators=(",", ":"),
        )
        data = (line + "\n").encode("utf-8")
        offset = os.lseek(self._fd, 0, os.SEEK_END)
        written = os.write(self._fd, data)
        while written < len(data):  # a short write: finish it so the line stays whole
            written += os.write(self._fd, data[written:])
        os.fsync(self._fd)
        self._offsets[index] = offset

    def results(self, index: int) -> list[PortResult]:
        """The results recorded for shard ``index``."""
        offset = self._offsets[index]
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            line = handle.readline()
        try:
            return [result_from_json(r) for r in json.loads(line)["results"]]
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise UsageError(
                f"state file {str(self.path)!r} is damaged at shard {index} "
                "(edited by hand?); remove it and scan again"
            ) from None

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._offsets))

    def close(self) -> None:
        """Close the file (the records stay for the next ``--resume``)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ShardJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
