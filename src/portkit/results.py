"""The nouns of discovery, shared by the engines, identification and the reports.

``PortResult`` is what discovery found at (host, port, transport); ``Identification``
is what answered there, when the scan was asked to find out; ``ResultBatch`` is how
results travel from the engines to the reports. A layer of its own, below ``scan``
and ``report`` (registry -> endpoint -> proto -> results -> scan -> report -> cli), so
neither reaches into the other for them.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Batches",
    "CountKey",
    "Identification",
    "PortResult",
    "PortState",
    "ResultBatch",
    "TlsInfo",
    "identification_json",
    "nmap_service",
    "tls_json",
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


# Where nmap's service detection names a protocol otherwise than the registry does
# (nmap-service-probes' match lines: "memcached", "vnc").
_NMAP_NAMES = {"memcache": "memcached", "rfb": "vnc"}


def nmap_service(found: Identification | None, expected: str | None = None) -> dict[str, str]:
    """The attributes of nmap's XML ``<service>`` element for what answered on a port.

    The one mapping from portkit's names to nmap's (the XML report uses it). nmap names
    the protocol inside implicit TLS and marks the wrapping with ``tunnel="ssl"``:
    ``imaps`` is ``name="imap" tunnel="ssl"``, ``https`` is ``name="http"
    tunnel="ssl"``, TLS with nothing recognised inside is ``name="unknown"
    tunnel="ssl"``. A protocol that upgraded with STARTTLS keeps its own name and has
    no tunnel. Where nmap's probes name a protocol otherwise than the registry, nmap's
    name is used (``memcache`` is ``memcached``, ``rfb`` is ``vnc``). Nothing identified
    (or no identification run): the port table's guess, ``expected`` or ``unknown``,
    with ``method="table" conf="3"``, as nmap writes it.
    """
    if found is None or not found.service:
        return {"name": expected or "unknown", "method": "table", "conf": "3"}
    name = found.service
    tunnel = None
    if found.tls is not None:
        # Here, not at the top: importing every protocol module (dnspython among them)
        # is 40 ms, and a scan without identification needs none of it.
        from portkit.proto import plain_name

        plain = "unknown" if name == "tls" else plain_name(name)
        if plain is not None:
            name, tunnel = plain, "ssl"
    given = {
        "product": found.product,
        "version": found.version,
        "extrainfo": found.extra,
        "tunnel": tunnel,
    }
    attrs = {"name": _NMAP_NAMES.get(name, name)} | {
        key: value for key, value in given.items() if value
    }
    attrs["method"] = "probed" if found.method == "probed" else "table"
    attrs["conf"] = str(found.confidence)
    return attrs


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
    # Hosts whose every port has now been handed on (a cluster scan knows it after a
    # host's last shard): a report may write them now and forget them.
    done: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """Results plus counted ports."""
        return len(self.results) + sum(self.counts.values())


# A stream of batches: what every engine, and scan_batches, yields.
Batches = AsyncGenerator[ResultBatch, None]


# The JSON objects of the schema (docs/scan.md), written once for every output: reports,
# probe --json and the cluster's journal.


def tls_json(tls: TlsInfo | None) -> dict[str, Any] | None:
    """A TLS handshake's facts as a JSON object (``None`` when the port spoke no TLS)."""
    if tls is None:
        return None
    return {
        "version": tls.version,
        "cipher": tls.cipher,
        "alpn": tls.alpn,
        "subject": tls.subject,
        "issuer": tls.issuer,
        "not_before": tls.not_before,
        "not_after": tls.not_after,
        "self_signed": tls.self_signed,
        "subject_alt_names": list(tls.subject_alt_names),
    }


def _latin1(raw: bytes) -> str:
    return raw.decode("latin-1")


def identification_json(
    ident: Identification | None, *, evidence: Callable[[bytes], str] = _latin1
) -> dict[str, Any] | None:
    """What answered on a port as a JSON object (``None`` when nothing was identified).

    Args:
        ident: the identification, or ``None``.
        evidence: how the raw evidence bytes become a JSON string (latin-1 by default,
            so every byte survives the round trip).
    """
    if ident is None:
        return None
    return {
        "service": ident.service,
        "product": ident.product,
        "version": ident.version,
        "extra": ident.extra,
        "confidence": ident.confidence,
        "method": ident.method,
        "probe": ident.probe,
        "evidence": evidence(ident.evidence),
        "tls": tls_json(ident.tls),
    }
