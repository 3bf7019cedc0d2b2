"""Scan shards: a scan cut into host blocks x port blocks, and the resume journal.

A cluster scan (see :mod:`portkit.scan._cluster`) runs the same engine as a local one,
shard by shard. This module holds the parts that do no I/O on the network:

- :func:`choose_layout` sizes the blocks so a shard is a few thousand probes (seconds
  of work, not milliseconds or hours) and there are enough host blocks to keep every
  worker busy;
- :func:`make_shards` lists the shards in *release order*: port block major, host block
  minor, so consecutive shards touch different hosts and each host's ports are spread
  over the whole scan instead of arriving from every worker at once;
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
from typing import Any

from portkit._errors import UsageError
from portkit.results import Identification, PortResult, PortState, TlsInfo, identification_json
from portkit.scan._engine import EngineOptions
from portkit.scan._ports import PortSet
from portkit.scan._scan import ScanPlan
from portkit.scan._targets import Target, TargetSpec

__all__ = [
    "DEFAULT_SHARD_PROBES",
    "JOURNAL_VERSION",
    "Layout",
    "Shard",
    "ShardJournal",
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
JOURNAL_VERSION = 1
_MAGIC = "portkit-scan-state"


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """How a scan is cut: hosts per host block, (transport, port) items per port block."""

    host_block: int
    port_block: int

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


def make_shards(targets: Sequence[Target], ports: PortSet, layout: Layout) -> list[Shard]:
    """Cut ``targets`` x ``ports`` into shards, in release order (port block major).

    Consecutive shards belong to different host blocks, so with several workers the
    shards running at once touch different hosts, and one host's ports are spread over
    the scan's duration.
    """
    items = _port_items(ports)
    host_blocks = [
        tuple(targets[i : i + layout.host_block]) for i in range(0, len(targets), layout.host_block)
    ]
    port_blocks: list[PortSet] = []
    for i in range(0, len(items), layout.port_block):
        chunk = items[i : i + layout.port_block]
        port_blocks.append(
            PortSet(
                tcp=tuple(p for t, p in chunk if t == "tcp"),
                udp=tuple(p for t, p in chunk if t == "udp"),
            )
        )
    shards: list[Shard] = []
    for pb, port_set in enumerate(port_blocks):
        for hb, block in enumerate(host_blocks):
            shards.append(
                Shard(
                    index=len(shards), host_block=hb, port_block=pb, targets=block, ports=port_set
                )
            )
    return shards


def result_key(result: PortResult) -> tuple[int, int, str, int]:
    """Sort key of results within a shard: address (numerically), transport, port."""
    ip = ipaddress.ip_address(result.host)
    return (ip.version, int(ip), result.transport, result.port)


def scan_fingerprint(plan: ScanPlan, targets: Sequence[Target], *, detect: bool) -> str:
    """A digest of what a scan covers and how, to refuse resuming a different scan.

    Rate and concurrency are left out: they may be changed on resume.
    """
    digest = hashlib.sha256()
    head = {
        "tcp": list(plan.ports.tcp),
        "udp": list(plan.ports.udp),
        "syn": plan.syn,
        "detect": detect,
        "timeout": plan.options.timeout,
        "retries": plan.options.retries,
    }
    digest.update(json.dumps(head, sort_keys=True).encode())
    for target in targets:
        digest.update(f"\n{target.address} {target.hostname or ''}".encode())
    return digest.hexdigest()


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
                layout = Layout(
                    host_block=int(header["host_block"]), port_block=int(header["port_block"])
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
