"""The format registry: a report by name, for the CLI's ``-o``.

Kept apart from ``_base`` (which every format imports), so that no format module and the
base import each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TextIO

from portkit.report._base import Report, ScanInfo, ScanSummary
from portkit.report._grep import GrepReport
from portkit.report._html import HtmlReport
from portkit.report._json import JsonLinesReport, JsonReport
from portkit.report._table import TableReport
from portkit.report._xml import NmapXmlReport
from portkit.results import CountKey, PortResult

__all__ = ["FORMATS", "TeeReport", "make_report"]

_REPORTS: dict[str, type[Report]] = {
    "table": TableReport,
    "json": JsonReport,
    "jsonl": JsonLinesReport,
    "grep": GrepReport,
    "xml": NmapXmlReport,
    "html": HtmlReport,
}
FORMATS = tuple(_REPORTS)


def make_report(name: str, out: TextIO) -> Report:
    """Return the report called ``name`` (one of :data:`FORMATS`) writing to ``out``."""
    return _REPORTS[name](out)  # type: ignore[call-arg]


class TeeReport:
    """Several reports of one scan at once (nmap's ``-oA``, or the table plus ``-oX``)."""

    def __init__(self, reports: Sequence[Report]) -> None:
        self.reports = tuple(reports)

    def begin(self, info: ScanInfo) -> None:
        for report in self.reports:
            report.begin(info)

    def add(self, results: Sequence[PortResult]) -> None:
        for report in self.reports:
            report.add(results)

    def add_counts(self, counts: Mapping[CountKey, int]) -> None:
        for report in self.reports:
            report.add_counts(counts)

    def hosts_done(self, addresses: Sequence[str], *, at: float | None = None) -> None:
        for report in self.reports:
            report.hosts_done(addresses, at=at)

    def end(self, summary: ScanSummary) -> None:
        for report in self.reports:
            report.end(summary)
