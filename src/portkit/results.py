"""The nouns of discovery, shared by the engines, identification and the reports.

``PortResult`` is what discovery found at (host, port, transport); ``Identification``
is what answered there, when the scan was asked to find out; ``ResultBatch`` is how
results travel from the engines to the reports. A layer of its own, below ``scan``
and ``report`` (registry -> endpoint -> proto -> results -> scan -> report -> cli), so
neither reaches into the other for them.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field

__all__ = [
    "Batches",
    "CountKey",
    "Identification",
    "PortResult",
    "PortState",
    "ResultBatch",
    "TlsInfo",
]


class PortState(enum.StrEnum):
    """Port states as nmap users know them."""

    OPEN = "open"
    CLOSED = "closed"
    FILTERED = "filtered"
    OPEN_FILTERED = "open|filtered"


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsInfo:
    """What a completed TLS handshake showed."""

    version: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    subject: str | None = None
    issuer: str | None = None
    not_before: str | None = None  # ISO 8601, UTC
    not_after: str | None = None  # ISO 8601, UTC
    self_signed: bool | None = None
    subject_alt_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Identification:
    """What actually answers on a port.

    ``service`` is the protocol as the registry spells it (``http``, ``ssh``, ``imaps``)
    or ``None`` when nothing matched; then ``evidence`` still holds the first bytes the
    server sent, so "unknown" is honest and inspectable.
    """

    service: str | None
    product: str | None = None
    version: str | None = None
    extra: str | None = None
    tls: TlsInfo | None = None
    confidence: int = 0  # 0-10, as nmap's "conf"; 10 is a full protocol match
    method: str = "probed"  # "probed" (a matcher matched) or "table" (port number only)
    probe: str | None = None  # the probe whose response matched ("banner", "http-get", ...)
    evidence: bytes = b""  # the first bytes of the response, bounded


@dataclass(frozen=True, slots=True, kw_only=True)
class PortResult:
    """What discovery found at (host, port, transport)."""

    host: str  # the address that was scanned
    port: int
    transport: str  # "tcp" or "udp"
    state: PortState
    reason: str  # "syn-ack", "conn-refused", "reset", "no-response", "port-unreach", "udp-response"
    hostname: str | None = None  # the name the user gave, when the target was a name
    expected: str | None = None  # the registry's service name for this port and transport
    rtt: float | None = None  # seconds, when measured
    identified: Identification | None = None


# (host, transport, state, reason): how a port only counted is counted.
CountKey = tuple[str, str, PortState, str]


@dataclass(frozen=True, slots=True)
class ResultBatch:
    """What an engine hands on at a time: results, and ports that were only counted.

    The contract from the engines (and the forked processes, the cluster) to
    identification and the reports. A host's closed ports past what any report
    lists may be counted per (host, transport, state, reason) in ``counts`` instead
    of being made one by one (only when the caller asked for it, see
    ``scan_batches(count_after=...)``); the results of each counted (host, state)
    always come first, in this batch or an earlier one. A batch is not a list: a
    consumer takes ``results`` and ``counts`` by name, so none can iterate the
    results and silently lose the counted ports.
    """

    results: list[PortResult]
    counts: Mapping[CountKey, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Results plus counted ports."""
        return len(self.results) + sum(self.counts.values())


# A stream of batches: what every engine, and scan_batches, yields.
Batches = AsyncGenerator[ResultBatch, None]
