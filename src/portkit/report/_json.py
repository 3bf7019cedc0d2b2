"""JSON reports: one document at the end (``json``), or one line per result (``jsonl``).

The schema is documented in docs/scan.md ("JSON schema"); keys are stable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TextIO

from portkit.report._base import Hosts, ScanInfo, ScanSummary, port_ranges
from portkit.scan._model import Identification, PortResult, PortState

__all__ = ["JsonLinesReport", "JsonReport", "result_json"]

SCHEMA_VERSION = 1


def _identification_json(ident: Identification) -> dict[str, Any]:
    tls = ident.tls
    return {
        "service": ident.service,
        "product": ident.product,
        "version": ident.version,
        "extra": ident.extra,
        "confidence": ident.confidence,
        "method": ident.method,
        "probe": ident.probe,
        "evidence": ident.evidence.decode("latin-1"),
        "tls": None
        if tls is None
        else {
            "version": tls.version,
            "cipher": tls.cipher,
            "alpn": tls.alpn,
            "subject": tls.subject,
            "issuer": tls.issuer,
            "not_before": tls.not_before,
            "not_after": tls.not_after,
            "self_signed": tls.self_signed,
            "subject_alt_names": list(tls.subject_alt_names),
        },
    }


def result_json(result: PortResult) -> dict[str, Any]:
    """One port result as a JSON object (the ``port`` object of the schema)."""
    return {
        "host": result.host,
        "hostname": result.hostname,
        "port": result.port,
        "transport": result.transport,
        "state": result.state.value,
        "reason": result.reason,
        "expected": result.expected,
        "rtt_ms": None if result.rtt is None else round(result.rtt * 1000, 3),
        "identified": None
        if result.identified is None
        else _identification_json(result.identified),
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


class JsonReport:
    """One JSON document: scan, hosts (listed ports, counts of the rest), summary."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.hosts = Hosts()
        self.info: ScanInfo | None = None

    def begin(self, info: ScanInfo) -> None:
        self.info = info

    def add(self, results: Sequence[PortResult]) -> None:
        self.hosts.add(results)

    def end(self, summary: ScanSummary) -> None:
        assert self.info is not None
        hosts = [
            {
                "address": table.address,
                "hostname": table.hostname,
                "ports": [result_json(r) for r in table.ports()],
                "not_shown": [
                    {"transport": t, "state": s.value, "count": n} for t, s, n in table.extra()
                ],
                "counts": {f"{t}/{s.value}": n for (t, s), n in sorted(table.counts.items())},
            }
            for table in self.hosts.tables()
        ]
        document = {
            "portkit": self.info.version,
            "schema": SCHEMA_VERSION,
            "scan": _scan_json(self.info),
            "hosts": hosts,
            "summary": {
                "elapsed": round(summary.elapsed, 3),
                "end": summary.end,
                "interrupted": summary.interrupted,
                "hosts": len(hosts),
                "open": sum(t.open_count for t in self.hosts.tables()),
            },
        }
        json.dump(document, self.out, indent=2, ensure_ascii=False)
        self.out.write("\n")


class JsonLinesReport:
    """One JSON object per line, written as found: a scan line, results, a summary line.

    Closed ports are counted in the summary line rather than written, so a full sweep
    of a quiet host is a few lines, not 65,535.
    """

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.counts: dict[str, int] = {}

    def _line(self, value: dict[str, Any]) -> None:
        self.out.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")

    def begin(self, info: ScanInfo) -> None:
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
            if result.state is not PortState.CLOSED:
                self._line({"type": "port"} | result_json(result))
                wrote = True
        if wrote:
            self.out.flush()

    def end(self, summary: ScanSummary) -> None:
        self._line(
            {
                "type": "summary",
                "elapsed": round(summary.elapsed, 3),
                "end": summary.end,
                "interrupted": summary.interrupted,
                "counts": dict(sorted(self.counts.items())),
            }
        )
        self.out.flush()
