"""The report protocol, the per-host accumulator, and the format registry."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from portkit.scan._model import PortResult, PortState

__all__ = ["FORMATS", "LIST_LIMIT", "HostTable", "Report", "ScanInfo", "ScanSummary", "make_report"]

# A state with more ports than this on one host is summarised as a count (nmap does
# the same with its "Not shown: N closed ports"); open ports are always listed.
LIST_LIMIT = 25
_ALWAYS_LISTED = (PortState.OPEN, PortState.OPEN_FILTERED)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanInfo:
    """What was asked for, known before the first probe."""

    args: str  # the command line, as typed
    start: float  # epoch seconds
    scan_type: str  # "connect", "syn" or "udp" (per transport below)
    tcp_ports: Sequence[int] = ()
    udp_ports: Sequence[int] = ()
    host_count: int = 0
    version: str = "0"
    detect: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSummary:
    """How it ended."""

    end: float  # epoch seconds
    elapsed: float  # seconds
    interrupted: bool = False


@dataclass(slots=True)
class HostTable:
    """What one host showed: the listed ports and a count per state of the rest."""

    address: str
    hostname: str | None = None
    counts: Counter[tuple[str, PortState]] = field(default_factory=Counter)
    reasons: Counter[tuple[str, PortState, str]] = field(default_factory=Counter)
    listed: list[PortResult] = field(default_factory=list)
    _held: dict[tuple[str, PortState], list[PortResult]] = field(default_factory=dict)

    def add(self, result: PortResult) -> None:
        key = (result.transport, result.state)
        self.counts[key] += 1
        self.reasons[(result.transport, result.state, result.reason)] += 1
        if result.state in _ALWAYS_LISTED:
            self.listed.append(result)
        elif self.counts[key] <= LIST_LIMIT:
            self._held.setdefault(key, []).append(result)
        else:
            self._held.pop(key, None)  # too many: from now on only counted

    def ports(self) -> list[PortResult]:
        """The ports to list one by one, sorted by transport and port."""
        shown = list(self.listed)
        for held in self._held.values():
            shown.extend(held)
        return sorted(shown, key=lambda r: (r.transport, r.port))

    def extra(self) -> list[tuple[str, PortState, int]]:
        """(transport, state, count) of every state summarised rather than listed."""
        return sorted(
            (t, s, n)
            for (t, s), n in self.counts.items()
            if s not in _ALWAYS_LISTED and n > LIST_LIMIT
        )

    def extra_reasons(self, transport: str, state: PortState) -> list[tuple[str, int]]:
        return sorted(
            (reason, n)
            for (t, s, reason), n in self.reasons.items()
            if (t, s) == (transport, state)
        )

    @property
    def open_count(self) -> int:
        return sum(n for (_t, s), n in self.counts.items() if s is PortState.OPEN)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class Hosts:
    """Every host seen so far, in address order on output."""

    def __init__(self) -> None:
        self._by_address: dict[str, HostTable] = {}

    def add(self, results: Iterable[PortResult]) -> None:
        for result in results:
            table = self._by_address.get(result.host)
            if table is None:
                table = HostTable(result.host, result.hostname)
                self._by_address[result.host] = table
            table.add(result)

    def tables(self) -> list[HostTable]:
        def key(table: HostTable) -> tuple[int, int]:
            ip = ipaddress.ip_address(table.address)
            return (ip.version, int(ip))

        return sorted(self._by_address.values(), key=key)

    def __len__(self) -> int:
        return len(self._by_address)


class Report(Protocol):
    """A scan report: told the plan, fed results as they come, told how it ended."""

    def begin(self, info: ScanInfo) -> None: ...

    def add(self, results: Sequence[PortResult]) -> None: ...

    def end(self, summary: ScanSummary) -> None: ...


def make_report(name: str, out: TextIO) -> Report:
    """Return the report called ``name`` (one of :data:`FORMATS`) writing to ``out``."""
    from portkit.report._grep import GrepReport
    from portkit.report._json import JsonLinesReport, JsonReport
    from portkit.report._table import TableReport
    from portkit.report._xml import NmapXmlReport

    reports: dict[str, type[Report]] = {
        "table": TableReport,
        "json": JsonReport,
        "jsonl": JsonLinesReport,
        "grep": GrepReport,
        "xml": NmapXmlReport,
    }
    return reports[name](out)  # type: ignore[call-arg]


FORMATS = ("table", "json", "jsonl", "grep", "xml")


def port_ranges(ports: Sequence[int]) -> str:
    """``1-3,80,443`` for (1, 2, 3, 80, 443): sorted ports as compact ranges."""
    parts: list[str] = []
    run_start = prev = -2
    for port in sorted(ports):
        if port == prev + 1:
            prev = port
            continue
        if run_start >= 0:
            parts.append(str(run_start) if run_start == prev else f"{run_start}-{prev}")
        run_start = prev = port
    if run_start >= 0:
        parts.append(str(run_start) if run_start == prev else f"{run_start}-{prev}")
    return ",".join(parts)


def service_of(result: PortResult) -> str:
    """The service name to show: the identified one, else the registry's, else ``unknown``."""
    if result.identified is not None and result.identified.service:
        return result.identified.service
    return result.expected or "unknown"


def product_of(result: PortResult) -> str:
    ident = result.identified
    if ident is None:
        return ""
    return " ".join(
        x for x in (ident.product, ident.version, ident.extra and f"({ident.extra})") if x
    )
