"""The format registry: a report by name, for the CLI's ``-o``.

Kept apart from ``_base`` (which every format imports), so that no format module and the
base import each other.
"""

from __future__ import annotations

from typing import TextIO

from portkit.report._base import Report
from portkit.report._grep import GrepReport
from portkit.report._html import HtmlReport
from portkit.report._json import JsonLinesReport, JsonReport
from portkit.report._table import TableReport
from portkit.report._xml import NmapXmlReport

__all__ = ["FORMATS", "make_report"]

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
