"""Reports written host by host: a host declared done is written then and forgotten."""

from __future__ import annotations

import io
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from portkit.report import ScanInfo, ScanSummary, make_report
from portkit.report._base import CollectingReport
from portkit.report._read import read_scan, replay
from portkit.results import PortResult, PortState

INFO = ScanInfo(
    args="portkit scan 127.0.0.0/24 -p 1-40",
    start=1_700_000_000.0,
    scan_type="connect",
    tcp_ports=tuple(range(1, 41)),
    host_count=3,
    version="0.1.0",
)
END = ScanSummary(end=1_700_000_002.0, elapsed=2.0)
# As a cluster scan hands them on: .9 done first, then .1 and .5 at the end.
HOSTS = ["127.0.0.9", "127.0.0.5", "127.0.0.1"]


def results(host: str) -> list[PortResult]:
    return [
        PortResult(
            host=host,
            port=p,
            transport="tcp",
            state=PortState.OPEN if p in (22, 8) else PortState.CLOSED,
            reason="syn-ack" if p in (22, 8) else "conn-refused",
        )
        for p in range(1, 41)
    ]


def streamed(fmt: str) -> tuple[str, str, CollectingReport]:
    """(what was written once .9 was done, the whole output, the report)."""
    out = io.StringIO()
    report = make_report(fmt, out)
    assert isinstance(report, CollectingReport)
    report.begin(INFO)
    report.add(results("127.0.0.9"))
    report.add(results("127.0.0.5")[:20])  # .5 half in: not done
    report.hosts_done(["127.0.0.9"])
    early = out.getvalue()
    report.add(results("127.0.0.5")[20:])
    report.add(results("127.0.0.1"))
    report.end(END)
    return early, out.getvalue(), report


def order(fmt: str, text: str) -> list[str]:
    if fmt == "json":
        return [h["address"] for h in json.loads(text)["hosts"]]
    if fmt == "xml":
        return [a.get("addr", "") for a in ET.fromstring(text).iter("address")]
    if fmt == "grep":
        return re.findall(r"^Host: (\S+)", text, flags=re.MULTILINE)
    if fmt == "html":
        return re.findall(r'<section class="host" id="host-\d+" [^>]*>\s*<h2[^>]*>([^<\s]+)', text)
    return re.findall(r"^(127\.\S+)$", text, flags=re.MULTILINE)  # table


@pytest.mark.parametrize("fmt", ["table", "json", "grep", "xml", "html"])
def test_a_done_host_is_written_at_once_and_forgotten(fmt: str) -> None:
    early, whole, report = streamed(fmt)
    # Written when done (HTML needs every host for its summary: spooled to disk), and
    # no longer held; the others at the end, in address order.
    assert ("127.0.0.9" in early) == (fmt != "html")
    assert "127.0.0.5" not in early
    assert order(fmt, whole) == ["127.0.0.9", "127.0.0.1", "127.0.0.5"]
    assert len(report.hosts) == 0
    assert report.totals.hosts == 3
    assert report.totals.open == 6
    assert report.totals.ports == 120


def test_streamed_json_is_laid_out_as_one_dump() -> None:
    _early, whole, _report = streamed("json")
    assert whole == json.dumps(json.loads(whole), indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("fmt", ["table", "json", "grep", "xml", "html"])
def test_counts_in_the_summary_add_up_the_streamed_hosts(fmt: str) -> None:
    _early, whole, _report = streamed(fmt)
    if fmt == "json":
        assert json.loads(whole)["summary"]["hosts"] == 3
        assert json.loads(whole)["summary"]["open"] == 6
    elif fmt == "xml":
        hosts = ET.fromstring(whole).find("runstats/hosts")
        assert hosts is not None
        assert hosts.get("total") == "3"
    elif fmt == "grep":
        assert "-- 3 IP addresses scanned" in whole
    elif fmt == "html":
        assert "portkit scan: 3 hosts, 6 open" in whole
    else:
        assert "scanned 3 hosts, 120 ports in 2.00 s: 6 open" in whole


def test_a_host_done_twice_is_written_once_per_time_it_came() -> None:
    # A host that comes again after it was done (an address listed twice in a plan too
    # big to deduplicate) is written again, as nmap writes it twice.
    out = io.StringIO()
    report = make_report("grep", out)
    report.begin(INFO)
    for _ in range(2):
        report.add(results("127.0.0.9"))
        report.hosts_done(["127.0.0.9", "127.0.0.200"])  # .200: never seen, nothing written
    report.end(END)
    assert order("grep", out.getvalue()) == ["127.0.0.9", "127.0.0.9"]


def test_a_saved_scan_is_written_again_in_its_own_host_order(tmp_path: Path) -> None:
    _early, whole, _report = streamed("json")
    saved = tmp_path / "scan.json"
    saved.write_text(whole)
    for fmt in ("json", "xml", "grep", "table"):
        out = io.StringIO()
        replay(read_scan(str(saved)), make_report(fmt, out))
        assert order(fmt, out.getvalue()) == ["127.0.0.9", "127.0.0.1", "127.0.0.5"]
        if fmt == "json":
            assert out.getvalue() == whole
