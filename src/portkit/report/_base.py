"""The report protocol, the per-host accumulator, and the format registry."""

from __future__ import annotations

import ipaddress
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Protocol, TextIO

from portkit.results import CountKey, PortResult, PortState

__all__ = ["LIST_LIMIT", "HostTable", "Report", "ScanInfo", "ScanSummary", "Totals"]

# A state with more ports than this on one host is summarised as a count (nmap does
# the same with its "Not shown: N closed ports"); open ports are always listed.
LIST_LIMIT = 25
# What Hosts.add counts a result under: host, then HostTable's (transport, state, reason).
_COUNTED = attrgetter("host", "transport", "state", "reason")
_LISTED = (PortState.OPEN, PortState.OPEN_FILTERED)
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
    open_only: bool = False  # --open: list only open ports, count the rest
    reason: bool = False  # --reason: the table shows why each port has its state


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanSummary:
    """How it ended."""

    end: float  # epoch seconds
    elapsed: float  # seconds
    interrupted: bool = False


class HostTable:
    """What one host showed: the listed ports and a count per state of the rest."""

    __slots__ = ("_held", "_limit", "_reasons", "address", "hostname", "listed")

    def __init__(
        self, address: str, hostname: str | None = None, *, list_limit: int = LIST_LIMIT
    ) -> None:
        self.address = address
        self._limit = list_limit
        self.hostname = hostname
        self.listed: list[PortResult] = []
        # One counter per (transport, state, reason): the per-state counts are its sums.
        self._reasons: dict[tuple[str, PortState, str], int] = {}
        self._held: dict[tuple[str, PortState], list[PortResult] | None] = {}

    def add(self, result: PortResult) -> None:
        state = result.state
        key = (result.transport, state, result.reason)
        self._reasons[key] = self._reasons.get(key, 0) + 1
        if state is PortState.OPEN or state is PortState.OPEN_FILTERED:
            self.listed.append(result)
            return
        held_key = (result.transport, state)
        held = self._held.get(held_key, [])
        if held is None:
            return  # too many already: only counted
        if len(held) < self._limit:
            held.append(result)
            self._held[held_key] = held
        else:
            self._held[held_key] = None

    @property
    def counts(self) -> dict[tuple[str, PortState], int]:
        """Ports per (transport, state)."""
        totals: dict[tuple[str, PortState], int] = {}
        for (transport, state, _reason), n in self._reasons.items():
            totals[(transport, state)] = totals.get((transport, state), 0) + n
        return totals

    def ports(self) -> list[PortResult]:
        """The ports to list one by one, sorted by transport and port."""
        shown = list(self.listed)
        for held in self._held.values():
            if held is not None:
                shown.extend(held)
        return sorted(shown, key=lambda r: (r.transport, r.port))

    def extra(self) -> list[tuple[str, PortState, int]]:
        """(transport, state, count) of every state summarised rather than listed."""
        return sorted(
            (t, s, self.counts[(t, s)]) for (t, s), held in self._held.items() if held is None
        )

    def extra_reasons(self, transport: str, state: PortState) -> list[tuple[str, int]]:
        return sorted(
            (reason, n)
            for (t, s, reason), n in self._reasons.items()
            if (t, s) == (transport, state)
        )

    @property
    def open_count(self) -> int:
        return sum(n for (_t, s), n in self.counts.items() if s is PortState.OPEN)

    @property
    def total(self) -> int:
        return sum(self._reasons.values())


class Hosts:
    """Every host seen so far, in address order on output."""

    def __init__(self, *, list_limit: int = LIST_LIMIT) -> None:
        """``list_limit``: closed or filtered ports listed per state (0: only counted)."""
        self._by_address: dict[str, HostTable] = {}
        self._limit = list_limit

    def add(self, results: Iterable[PortResult]) -> None:
        if isinstance(results, Sequence) and len(results) > 1 and self._count(results):
            return
        # Results come host by host, mostly: look the table up when the host changes.
        # A sweep adds 65,535 results, so HostTable.add's body is inlined for closed and
        # filtered ports past the listing limit, the common case (same effect).
        by_address = self._by_address
        host: str | None = None
        table: HostTable | None = None
        for result in results:
            if result.host != host or table is None:
                host = result.host
                table = by_address.get(host)
                if table is None:
                    table = HostTable(host, result.hostname, list_limit=self._limit)
                    by_address[host] = table
                reasons, held = table._reasons, table._held
            state = result.state
            if state is PortState.OPEN or state is PortState.OPEN_FILTERED:
                table.add(result)
                continue
            transport = result.transport
            if held.get((transport, state), ()) is None:  # only counted from here on
                key = (transport, state, result.reason)
                reasons[key] = reasons.get(key, 0) + 1
            else:
                table.add(result)

    def _count(self, results: Sequence[PortResult]) -> bool:
        """Add ``results`` by counting them in bulk, if that has the same effect; else False.

        It does once every host has its table and every closed or filtered (transport,
        state, reason) in the batch is already only counted (past the listing limit,
        seen before): then those results only add to their counters, in one
        ``Counter`` pass, and the open ones go to :meth:`HostTable.add` in order.
        """
        counts = Counter(map(_COUNTED, results))
        by_address = self._by_address
        listed = False
        for host, transport, state, reason in counts:
            table = by_address.get(host)
            if table is None:
                return False
            if state in _LISTED:
                listed = True
            elif (
                table._held.get((transport, state), ()) is not None
                or (transport, state, reason) not in table._reasons
            ):
                return False
        if listed:
            for result in results:
                if result.state in _LISTED:
                    by_address[result.host].add(result)
        for (host, transport, state, reason), n in counts.items():
            if state not in _LISTED:
                by_address[host]._reasons[(transport, state, reason)] += n
        return True

    def add_counts(self, counts: Mapping[CountKey, int]) -> None:
        """Add ports that were only counted: the same as adding that many results.

        Each (host, transport, state) must already be past the listing limit (its
        results came first), so its ports are only counted either way.
        """
        for (host, transport, state, reason), n in counts.items():
            table = self._by_address.get(host)
            if table is None or table._held.get((transport, state), ()) is not None:
                raise ValueError(f"{host} {transport}/{state.value} is not past the listing limit")
            key = (transport, state, reason)
            table._reasons[key] = table._reasons.get(key, 0) + n

    def tables(self) -> list[HostTable]:
        return sorted(self._by_address.values(), key=_address_key)

    def pop(self, addresses: Iterable[str]) -> list[HostTable]:
        """The tables of ``addresses`` (those seen), in address order, forgotten here."""
        found = (self._by_address.pop(a, None) for a in dict.fromkeys(addresses))
        return sorted((t for t in found if t is not None), key=_address_key)

    def addresses(self) -> Iterable[str]:
        return self._by_address.keys()

    def __len__(self) -> int:
        return len(self._by_address)


def _address_key(table: HostTable) -> tuple[int, int]:
    ip = ipaddress.ip_address(table.address)
    return (ip.version, int(ip))


class Totals:
    """What the hosts written so far add up to (for a report's closing summary)."""

    __slots__ = ("by_state", "hosts", "open", "ports")

    def __init__(self) -> None:
        self.hosts = 0
        self.ports = 0
        self.open = 0
        self.by_state: dict[PortState, int] = {}

    def add(self, table: HostTable) -> None:
        self.hosts += 1
        for (_transport, state), n in table.counts.items():
            self.by_state[state] = self.by_state.get(state, 0) + n
            self.ports += n
            if state is PortState.OPEN:
                self.open += n


class CollectingReport:
    """A report written host by host, each host's ports sorted (the per-host formats).

    A host is held (its listed ports, counts of the rest) until it is *done*: every
    port of it added. :meth:`hosts_done` says so while the scan runs (a cluster scan
    does after a host's last shard), and the host is written then and forgotten, so
    memory holds the hosts in progress, not the scan. Hosts never declared done are
    written at :meth:`end`, in address order (a scan in one process: all of them).

    Subclasses write a host in :meth:`write_host` and close the document in
    :meth:`finish`; ``begin`` may be extended to write a header, keeping ``self.info``.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.hosts = Hosts()
        self.info: ScanInfo | None = None
        self.totals = Totals()

    def begin(self, info: ScanInfo) -> None:
        self.info = info
        if info.open_only:  # as nmap's --open: every closed or filtered port only counted
            self.hosts = Hosts(list_limit=0)

    def add(self, results: Sequence[PortResult]) -> None:
        self.hosts.add(results)

    def add_counts(self, counts: Mapping[CountKey, int]) -> None:
        self.hosts.add_counts(counts)

    def hosts_done(self, addresses: Sequence[str], *, at: float | None = None) -> None:
        """Every port of ``addresses`` is in: write those hosts now, in address order.

        ``at``: when they were done (epoch seconds; ``None``: now).
        """
        tables = self.hosts.pop(addresses)
        for table in tables:
            self._write(table, time.time() if at is None else at)
        if tables:
            self.out.flush()

    def _write(self, table: HostTable, done: float) -> None:
        self.totals.add(table)
        self.write_host(table, done)

    def write_host(self, table: HostTable, done: float) -> None:
        """Write one host, done at ``done`` (epoch seconds)."""
        raise NotImplementedError

    def finish(self, summary: ScanSummary) -> None:
        """Close the document, every host written (``self.totals`` adds them up)."""
        raise NotImplementedError

    def end(self, summary: ScanSummary) -> None:
        for table in self.hosts.pop(list(self.hosts.addresses())):
            self._write(table, summary.end)
        self.finish(summary)
        self.out.flush()


class Report(Protocol):
    """A scan report: told the plan, fed results as they come, told how it ended."""

    def begin(self, info: ScanInfo) -> None: ...

    def add(self, results: Sequence[PortResult]) -> None: ...

    def add_counts(self, counts: Mapping[CountKey, int]) -> None:
        """Ports only counted, per (host, transport, state, reason), after their results."""

    def hosts_done(self, addresses: Sequence[str], *, at: float | None = None) -> None:
        """Every port of ``addresses`` has been added (nothing more will come for them),
        at ``at`` (epoch seconds; ``None``: now)."""

    def end(self, summary: ScanSummary) -> None: ...


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


def expected_of(result: PortResult) -> str | None:
    """What people call the port: the conventional name where IANA's is obscure.

    ``irdmi`` is IANA's name for 8000, where nearly everyone runs HTTP (see
    :data:`portkit.registry._conventional.CONVENTIONAL_NAMES`); elsewhere the registry's.
    """
    from portkit.registry._conventional import CONVENTIONAL_NAMES

    return CONVENTIONAL_NAMES.get((result.port, result.transport), result.expected)


def service_of(result: PortResult) -> str:
    """The service name to show: the identified one, else the expected one, else ``unknown``."""
    ident = result.identified
    if ident is not None and ident.service:
        return ident.service
    expected = expected_of(result)
    if ident is not None and expected:
        # Identification ran and matched nothing: the port's usual name is only a guess
        # from the port number, marked as nmap marks it.
        return f"{expected}?"
    return expected or "unknown"


def product_of(result: PortResult) -> str:
    ident = result.identified
    if ident is None:
        return ""
    return " ".join(
        x for x in (ident.product, ident.version, ident.extra and f"({ident.extra})") if x
    )
