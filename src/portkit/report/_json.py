"""JSON reports: one document at the end (``json``), or one line per result (``jsonl``).

The schema is documented in docs/scan.md ("JSON schema"); keys are stable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from portkit.report._base import (
    CollectingReport,
    HostTable,
    ScanInfo,
    ScanSummary,
    expected_of,
    port_ranges,
)
from portkit.results import (
    CountKey,
    PortResult,
    PortState,
    identification_json,
    tls_json,
)

__all__ = [
    "JsonLinesReport",
    "JsonReport",
    "identification_json",
    "result_json",
    "tls_json",
]

SCHEMA_VERSION = 1


def result_json(result: PortResult) -> dict[str, Any]:
    """One port result as a JSON object (the ``port`` object of the schema)."""
    return {
        "host": result.host,
        "hostname": result.hostname,
        "port": result.port,
        "transport": result.transport,
        "state": result.state.value,
        "reason": result.reason,
        # What people call the port (as the table's SERVICE column), and the IANA
        # registry's own name, which differ where IANA's is obscure (8000: irdmi).
        "expected": expected_of(result),
        "expected_iana": result.expected,
        "rtt_ms": None if result.rtt is None else round(result.rtt * 1000, 3),
        "identified": identification_json(result.identified),
    }


def _scan_json(info: ScanInfo) -> dict[str, Any]:
    return {
        "args": info.args,
        "start": info.start,
        "type": info.scan_type,
        "tcp_ports": port_ranges(info.tcp_ports),
        "udp_ports": port_ranges(info.udp_ports),
        "hosts": info.host_count,
        "detect": info.detect,
    }


def _summary_json(summary: ScanSummary) -> dict[str, Any]:
    return {
        "elapsed": round(summary.elapsed, 3),
        "end": summary.end,
        "interrupted": summary.interrupted,
    }


def _nested(value: Any, depth: int) -> str:
    """``value`` as ``json.dump(..., indent=2)`` writes it ``depth`` levels down."""
    # JSON strings hold no raw newline (it is escaped), so every newline is layout.
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return text.replace("\n", "\n" + "  " * depth)


def host_json(table: HostTable) -> dict[str, Any]:
    """One host as a JSON object (the ``hosts`` items of the schema)."""
    return {
        "address": table.address,
        "hostname": table.hostname,
        "ports": [result_json(r) for r in table.ports()],
        "not_shown": [{"transport": t, "state": s.value, "count": n} for t, s, n in table.extra()],
        "counts": {f"{t}/{s.value}": n for (t, s), n in sorted(table.counts.items())},
    }


class JsonReport(CollectingReport):
    """One JSON document: scan, hosts (listed ports, counts of the rest), summary.

    Written as it goes, byte for byte what one ``json.dump(document, indent=2)`` of
    the whole would be: the head at ``begin``, each host as it is done, the end of the
    ``hosts`` array and the summary at ``end`` (which also runs on Ctrl-C).
    """

    def begin(self, info: ScanInfo) -> None:
        super().begin(info)
        self.out.write(
            "{\n"
            f'  "portkit": {_nested(info.version, 1)},\n'
            f'  "schema": {SCHEMA_VERSION},\n'
            f'  "scan": {_nested(_scan_json(info), 1)},\n'
            '  "hosts": ['
        )
        self.out.flush()

    def write_host(self, table: HostTable, done: float) -> None:
        comma = "," if self.totals.hosts > 1 else ""  # totals count this host already
        self.out.write(f"{comma}\n    {_nested(host_json(table), 2)}")

    def finish(self, summary: ScanSummary) -> None:
        closing = "\n  ]" if self.totals.hosts else "]"
        tail = {
            **_summary_json(summary),
            "hosts": self.totals.hosts,
            "open": self.totals.open,
        }
        self.out.write(f'{closing},\n  "summary": {_nested(tail, 1)}\n}}\n')


class JsonLinesReport:
    """One JSON object per line, written as found: a scan line, results, a summary line.

    Closed ports are counted in the summary line rather than written, so a full sweep
    of a quiet host is a few lines, not 65,535.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.counts: dict[str, int] = {}
        self._listed: tuple[PortState, ...] = (
            PortState.OPEN,
            PortState.OPEN_FILTERED,
            PortState.FILTERED,
        )

    def _line(self, value: dict[str, Any]) -> None:
        self.out.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")

    def begin(self, info: ScanInfo) -> None:
        if info.open_only:
            self._listed = (PortState.OPEN, PortState.OPEN_FILTERED)  # as nmap's --open
        self._line(
            {
                "type": "scan",
                "portkit": info.version,
                "schema": SCHEMA_VERSION,
                "scan": _scan_json(info),
            }
        )
        self.out.flush()

    def add(self, results: Sequence[PortResult]) -> None:
        wrote = False
        for result in results:
            self.counts[result.state.value] = self.counts.get(result.state.value, 0) + 1
            if result.state in self._listed:
                self._line({"type": "port"} | result_json(result))
                wrote = True
        if wrote:
            self.out.flush()

    def add_counts(self, counts: Mapping[CountKey, int]) -> None:
        for (_host, _transport, state, _reason), n in counts.items():
            if state is not PortState.CLOSED:
                raise ValueError(f"only closed ports are counted, not {state.value}")
            self.counts[state.value] = self.counts.get(state.value, 0) + n

    def hosts_done(self, addresses: Sequence[str], *, at: float | None = None) -> None:
        return None  # every line is written as found already

    def end(self, summary: ScanSummary) -> None:
        self._line(
            {
                "type": "summary",
                **_summary_json(summary),
                "counts": dict(sorted(self.counts.items())),
            }
        )
        self.out.flush()
