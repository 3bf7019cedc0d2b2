"""The report formats, fed known results (no network): table, json, jsonl, grep, xml."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET

import pytest

from portkit.report import FORMATS, ScanInfo, ScanSummary, make_report
from portkit.report._base import LIST_LIMIT, port_ranges
from portkit.results import Identification, PortResult, PortState, TlsInfo

INFO = ScanInfo(
    args="portkit scan 127.0.0.1 ::1 -p 1-100",
    start=1_700_000_000.0,
    scan_type="connect",
    tcp_ports=tuple(range(1, 101)),
    host_count=2,
    version="0.1.0",
)
END = ScanSummary(end=1_700_000_001.5, elapsed=1.5)


def result(port: int, state: PortState, host: str = "127.0.0.1", **kw: object) -> PortResult:
    reason = {"open": "syn-ack", "closed": "conn-refused"}.get(state.value, "no-response")
    return PortResult(host=host, port=port, transport="tcp", state=state, reason=reason, **kw)  # type: ignore[arg-type]


RESULTS = [
    result(22, PortState.OPEN, expected="ssh", rtt=0.0001),
    result(443, PortState.OPEN, expected="https"),
    *[result(p, PortState.CLOSED) for p in range(1000, 1000 + LIST_LIMIT + 5)],
    result(9, PortState.FILTERED),
    result(80, PortState.OPEN, host="::1", expected="http", hostname="localhost"),
]


def render(
    fmt: str, results: list[PortResult], info: ScanInfo = INFO, end: ScanSummary = END
) -> str:
    out = io.StringIO()
    report = make_report(fmt, out)
    report.begin(info)
    report.add(results[:3])
    report.add(results[3:])
    report.end(end)
    return out.getvalue()


def test_port_ranges() -> None:
    assert port_ranges([443, 1, 2, 3, 80]) == "1-3,80,443"
    assert port_ranges([]) == ""


def test_table_lists_open_and_summarises_closed() -> None:
    text = render("table", RESULTS)
    assert "127.0.0.1\n" in text
    assert "::1 (localhost)" in text
    lines = text.splitlines()
    assert any(line.split()[:4] == ["22", "tcp", "open", "ssh"] for line in lines)
    assert any(line.split()[:4] == ["9", "tcp", "filtered", "unknown"] for line in lines)
    assert f"not shown: {LIST_LIMIT + 5} closed tcp ports" in text
    assert lines[-1] == f"scanned 2 hosts, {len(RESULTS)} ports in 1.50 s: 3 open"


def test_json_document_schema() -> None:
    doc = json.loads(render("json", RESULTS))
    assert doc["schema"] == 1
    assert doc["scan"]["tcp_ports"] == "1-100"
    assert [h["address"] for h in doc["hosts"]] == ["127.0.0.1", "::1"]
    first = doc["hosts"][0]
    assert [p["port"] for p in first["ports"]] == [9, 22, 443]
    assert first["ports"][1] == {
        "host": "127.0.0.1",
        "hostname": None,
        "port": 22,
        "transport": "tcp",
        "state": "open",
        "reason": "syn-ack",
        "expected": "ssh",
        "expected_iana": "ssh",
        "rtt_ms": 0.1,
        "identified": None,
    }
    assert first["not_shown"] == [{"transport": "tcp", "state": "closed", "count": LIST_LIMIT + 5}]
    assert first["counts"] == {"tcp/closed": LIST_LIMIT + 5, "tcp/filtered": 1, "tcp/open": 2}
    assert doc["summary"]["open"] == 3
    assert doc["summary"]["interrupted"] is False


def test_few_closed_ports_are_listed() -> None:
    doc = json.loads(render("json", [result(p, PortState.CLOSED) for p in range(5)]))
    assert [p["state"] for p in doc["hosts"][0]["ports"]] == ["closed"] * 5
    assert doc["hosts"][0]["not_shown"] == []


def test_jsonl_streams_every_non_closed_result() -> None:
    lines = [json.loads(line) for line in render("jsonl", RESULTS).splitlines()]
    assert lines[0]["type"] == "scan"
    assert lines[-1]["type"] == "summary"
    assert lines[-1]["counts"] == {"closed": LIST_LIMIT + 5, "filtered": 1, "open": 3}
    ports = [(line["host"], line["port"]) for line in lines[1:-1]]
    assert ports == [("127.0.0.1", 22), ("127.0.0.1", 443), ("127.0.0.1", 9), ("::1", 80)]


def test_jsonl_writes_as_results_come() -> None:
    out = io.StringIO()
    report = make_report("jsonl", out)
    report.begin(INFO)
    report.add([result(22, PortState.OPEN)])
    assert '"port":22' in out.getvalue()  # before end()


def test_grep_lines() -> None:
    text = render("grep", RESULTS)
    lines = text.splitlines()
    assert lines[0].startswith("# portkit 0.1.0 scan initiated ")
    assert lines[0].endswith("as: portkit scan 127.0.0.1 ::1 -p 1-100")
    host = lines[1]
    assert host.startswith(
        "Host: 127.0.0.1 ()\tPorts: 9/filtered/tcp//unknown///, 22/open/tcp//ssh///"
    )
    assert host.endswith(f"\tIgnored State: closed ({LIST_LIMIT + 5})")
    assert lines[2] == "Host: ::1 (localhost)\tPorts: 80/open/tcp//http///"
    assert lines[-1].startswith("# portkit done at ")


def test_xml_is_nmap_shaped() -> None:
    root = ET.fromstring(render("xml", RESULTS))
    assert root.tag == "nmaprun"
    assert root.get("scanner") == "portkit"
    assert root.find("scaninfo").attrib == {  # type: ignore[union-attr]
        "type": "connect",
        "protocol": "tcp",
        "numservices": "100",
        "services": "1-100",
    }
    hosts = root.findall("host")
    assert [h.find("address").get("addrtype") for h in hosts] == ["ipv4", "ipv6"]  # type: ignore[union-attr]
    extra = hosts[0].find("ports/extraports")
    assert extra is not None
    assert extra.get("state") == "closed"
    assert extra.get("count") == str(LIST_LIMIT + 5)
    assert extra.find("extrareasons").get("reason") == "conn-refused"  # type: ignore[union-attr]
    ports = {p.get("portid"): p for p in hosts[0].findall("ports/port")}
    assert ports["22"].find("state").get("state") == "open"  # type: ignore[union-attr]
    assert ports["22"].find("service").attrib == {"name": "ssh", "method": "table", "conf": "3"}  # type: ignore[union-attr]
    assert hosts[1].find("hostnames/hostname").get("name") == "localhost"  # type: ignore[union-attr]
    finished = root.find("runstats/finished")
    assert finished is not None
    assert finished.get("exit") == "success"
    assert root.find("runstats/hosts").get("up") == "2"  # type: ignore[union-attr]


def test_xml_escapes_hostile_text() -> None:
    ident = Identification(
        service="http", product='evil"<&>', version="1'2", extra="a\tb\nc\x00\x1b", confidence=10
    )
    text = render("xml", [result(80, PortState.OPEN, identified=ident)])
    service = ET.fromstring(text).find("host/ports/port/service")
    assert service is not None
    assert service.get("product") == 'evil"<&>'
    assert service.get("version") == "1'2"
    # Whitespace kept; what XML 1.0 cannot hold at all is shown as text, not lost.
    assert service.get("extrainfo") == "a\tb\nc\\x00\\x1b"


def test_identified_service_in_every_format() -> None:
    ident = Identification(
        service="https",
        product="nginx",
        version="1.22.1",
        tls=TlsInfo(version="TLSv1.3", subject="CN=localhost"),
        confidence=10,
        probe="tls-http-get",
        evidence=b"HTTP/1.1 200 OK\r\n",
    )
    results = [result(8443, PortState.OPEN, expected="pcsync-https", identified=ident)]
    info = ScanInfo(args="x", start=INFO.start, scan_type="connect", tcp_ports=(8443,), detect=True)
    table = render("table", results, info)
    row = next(line for line in table.splitlines() if line.strip().startswith("8443"))
    assert row.split() == ["8443", "tcp", "open", "https", "nginx", "1.22.1", "TLSv1.3"]
    service = ET.fromstring(render("xml", results, info)).find("host/ports/port/service")
    assert service is not None
    assert service.attrib == {  # as nmap writes it: the protocol inside, and the tunnel
        "name": "http",
        "product": "nginx",
        "version": "1.22.1",
        "tunnel": "ssl",
        "method": "probed",
        "conf": "10",
    }
    port = json.loads(render("json", results, info))["hosts"][0]["ports"][0]
    assert port["identified"]["product"] == "nginx"
    assert port["identified"]["tls"]["version"] == "TLSv1.3"
    assert port["identified"]["evidence"] == "HTTP/1.1 200 OK\r\n"
    assert "8443/open/tcp//https//nginx 1.22.1/" in render("grep", results, info)


@pytest.mark.parametrize("fmt", FORMATS)
def test_interrupted_reports_say_so(fmt: str) -> None:
    text = render(fmt, RESULTS[:2], end=ScanSummary(end=END.end, elapsed=0.5, interrupted=True))
    if fmt == "xml":
        finished = ET.fromstring(text).find("runstats/finished")
        assert finished is not None
        assert finished.get("exit") == "error"
        assert finished.get("errormsg") == "interrupted"
    elif fmt == "json":
        assert json.loads(text)["summary"]["interrupted"] is True
    elif fmt == "jsonl":
        assert json.loads(text.splitlines()[-1])["interrupted"] is True
    else:
        assert "interrupted" in text


def test_unidentified_open_port_shows_a_guess() -> None:
    ident = Identification(service=None, extra="no answer to any probe")
    results = [result(22, PortState.OPEN, expected="ssh", identified=ident)]
    info = ScanInfo(args="x", start=INFO.start, scan_type="connect", tcp_ports=(22,), detect=True)
    row = next(line for line in render("table", results, info).splitlines() if "22" in line)
    assert row.split()[:4] == ["22", "tcp", "open", "ssh?"]
    service = ET.fromstring(render("xml", results, info)).find("host/ports/port/service")
    assert service is not None
    assert service.attrib == {"name": "ssh", "method": "table", "conf": "3"}
