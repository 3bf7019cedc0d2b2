"""Scan reports: a table and an HTML page for people; JSON, JSON lines, grepable and nmap
XML for tools.

Every format is a :class:`Report` fed in three steps: ``begin(info)``, ``add(results)``
as batches arrive, ``end(summary)``. Reports keep per host only the ports worth listing
and a count of the rest (bounded memory, as nmap's "extraports").
"""

from portkit.report._base import HostTable, Report, ScanInfo, ScanSummary
from portkit.report._formats import FORMATS, make_report

__all__ = ["FORMATS", "HostTable", "Report", "ScanInfo", "ScanSummary", "make_report"]
