"""The format registry: a report by name, for the CLI's ``-o``.

Kept apart from ``_base`` (which every format imports), so that no format module and the
base import each other. Each writer's module is imported when a report of its format is
made, not before: a table does not pay for the HTML page's jinja2 and hashing, nor for
the XML and JSON writers (``portkit scan`` is mostly start-up on a few ports).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TextIO

from portkit.report._base import Report, ScanInfo, ScanSummary
from portkit.results import CountKey, PortResult

__all__ = ["FORMATS", "TeeReport", "make_report"]

FORMATS = ("table", "json", "jsonl", "grep", "xml", "html")


def report_class(name: str) -> type[Report]:
    """The class of the report called ``name`` (one of :data:`FORMATS`), imported now.

    Raises:
        KeyError: ``name`` is no format.
    """
    # Plain imports rather than import_module(name): the import graph (the layer and
    # cycle checks) sees every edge.
    match name:
        case "table":
            from portkit.report._table import TableReport

            return TableReport
        case "json":
            from portkit.report._json import JsonReport

            return JsonReport
        case "jsonl":
            from portkit.report._json import JsonLinesReport

            return JsonLinesReport
        case "grep":
            from portkit.report._grep import GrepReport

            return GrepReport
        case "xml":
            from portkit.report._xml import NmapXmlReport

            return NmapXmlReport
        case "html":
            from portkit.report._html import HtmlReport

            return HtmlReport
    raise KeyError(name)


def make_report(name: str, out: TextIO) -> Report:
    """Return the report called ``name`` (one of :data:`FORMATS`) writing to ``out``."""
    return report_class(name)(out)  # type: ignore[call-arg]


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
