"""`portkit report FILE.json`: a saved scan read back writes what the scan wrote.

Also the HTML report's own pieces that need no browser: the expected-vs-actual
verdict, escaping at the source, the page's policy matching its inlined script.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from portkit.cli import cmd_report, cmd_scan
from portkit.report import FORMATS, ScanInfo, ScanSummary, make_report
from portkit.report._base import LIST_LIMIT
from portkit.report._html import _asset, _csp_hash, verdict_of
from portkit.report._read import parse_scan, replay
from portkit.results import Identification, PortResult, PortState, TlsInfo

INFO = ScanInfo(
    args="portkit scan 127.0.0.1 ::1 -p 1-200,2222,8443,9443 --detect",
    start=1_700_000_000.25,
    scan_type="connect",
    tcp_ports=(*range(1, 201), 2222, 8443, 9443),
    host_count=2,
    version="0.1.0",
    detect=True,
)
END = ScanSummary(end=1_700_000_003.75, elapsed=3.5)
TLS = TlsInfo(
    version="TLSv1.3",
    cipher="TLS_AES_256_GCM_SHA384",
    alpn="http/1.1",
    subject="CN=localhost",
    issuer="CN=localhost",
    not_before="2023-11-01T00:00:00+00:00",
    not_after="2024-11-01T00:00:00+00:00",
    self_signed=True,
    subject_alt_names=("localhost", "127.0.0.1"),
)


def port(number: int, state: PortState, host: str = "127.0.0.1", **kw: object) -> PortResult:
    reason = {"open": "syn-ack", "closed": "conn-refused"}.get(state.value, "no-response")
    return PortResult(host=host, port=number, transport="tcp", state=state, reason=reason, **kw)  # type: ignore[arg-type]


def ident(service: str | None, **kw: object) -> Identification:
    return Identification(service=service, confidence=10, probe="banner", **kw)  # type: ignore[arg-type]


RESULTS = [
    *[port(p, PortState.CLOSED, expected=None) for p in range(1, 200)],
    port(200, PortState.FILTERED),
    port(
        2222,
        PortState.OPEN,
        expected="ethernet/ip-1",
        rtt=0.000123,
        identified=ident(
            "ssh", product="OpenSSH", version="9.2p1", evidence=b"SSH-2.0-\xff\x1b\r\n"
        ),
    ),
    port(
        8443,
        PortState.OPEN,
        expected="pcsync-https",
        identified=ident("https", product="nginx", tls=TLS, evidence=b"HTTP/1.1 200 OK\r\n"),
    ),
    port(9443, PortState.OPEN, host="::1", hostname="localhost", expected="tungsten-https"),
]


def render(fmt: str) -> str:
    out = io.StringIO()
    report = make_report(fmt, out)
    report.begin(INFO)
    report.add(RESULTS[:50])
    report.add(RESULTS[50:])
    report.end(END)
    return out.getvalue()


@pytest.mark.parametrize("fmt", cmd_report.FORMATS)
def test_a_saved_scan_writes_what_the_scan_wrote(fmt: str) -> None:
    saved = parse_scan(render("json"), "scan.json")
    assert saved.not_shown == [("127.0.0.1", "tcp", PortState.CLOSED, 199)]
    out = io.StringIO()
    replay(saved, make_report(fmt, out))
    assert out.getvalue() == render(fmt)


def test_the_command_lists_every_format_it_offers() -> None:
    # Written out in the commands (so that --help imports no report): kept in step here.
    assert set(cmd_report.FORMATS) == set(FORMATS) - {"jsonl"}
    parser = __import__("argparse").ArgumentParser()
    cmd_scan.configure(parser)
    choices = next(a.choices for a in parser._actions if a.dest == "format")
    assert tuple(choices) == FORMATS


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "portkit", *args], capture_output=True, text=True, timeout=60
    )


def test_report_command_converts_a_file(tmp_path: Path) -> None:
    saved = tmp_path / "scan.json"
    saved.write_text(render("json"))
    done = run_cli("report", str(saved), "-o", "html", "--output", str(tmp_path / "scan.html"))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert (tmp_path / "scan.html").read_text() == render("html")
    done = run_cli("report", str(saved))
    assert done.returncode == 0
    assert done.stdout == render("table")


BAD = {
    "not json": ("garbage", "bad.json: not a JSON scan: line 1 column 1: Expecting value"),
    "jsonl": (
        '{"type":"scan"}\n{"type":"port"}\n',
        "(a -o jsonl stream? save the scan with -o json)",
    ),
    "other json": ('{"a": 1}', "bad.json: the document: not a portkit JSON scan"),
    "schema": (
        '{"schema": 7, "hosts": []}',
        "bad.json: schema: version 7 is not supported (this portkit reads 1)",
    ),
    "state": (
        render("json").replace('"state": "filtered"', '"state": "opne"'),
        "bad.json: hosts[0].ports[0].state: unknown port state 'opne'",
    ),
    "address": (
        render("json").replace('"address": "::1"', '"address": "<b>"'),
        "bad.json: hosts[1].address: not an IP address: '<b>'",
    ),
    "transport": (
        render("json").replace('"transport": "tcp"', '"transport": "icmp"', 1),
        "bad.json: hosts[0].ports[0].transport: transport must be tcp or udp, not 'icmp'",
    ),
    "port": (
        render("json").replace('"port": 2222', '"port": "2222"'),
        "bad.json: hosts[0].ports[1].port: expected an integer, not '2222'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_file_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    text, message = BAD[case]
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    done = run_cli("report", str(bad), "-o", "html")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("portkit: ")
    assert message in done.stderr


def test_a_missing_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = run_cli("report", str(tmp_path / "nothing.json"))
    assert done.returncode == 2
    assert (
        done.stderr
        == f"portkit: cannot read '{tmp_path / 'nothing.json'}': No such file or directory\n"
    )


@pytest.mark.parametrize(
    ("number", "expected", "service", "kind"),
    [
        (80, "http", "ssh", "unexpected"),  # SSH on 80
        (9443, "tungsten-https", "http", "unexpected"),  # HTTP on 9443
        (9443, "tungsten-https", "https", "alternate"),  # its name says https
        (8080, "http-alt", "http", "alternate"),
        (8025, "ca-audit-da", "http", "unexpected"),
        (443, "https", "https", "match"),
        (53, "domain", "dns", "match"),  # an alias of the registered name
        (47001, None, "http", "unregistered"),
        (22, "ssh", None, "unidentified"),
    ],
)
def test_expected_vs_actual(
    number: int, expected: str | None, service: str | None, kind: str
) -> None:
    result = port(number, PortState.OPEN, expected=expected, identified=ident(service))
    assert verdict_of(result).kind == kind


def test_no_identification_no_verdict() -> None:
    assert verdict_of(port(80, PortState.OPEN, expected="http")).kind == ""


def test_server_text_is_escaped_in_the_page() -> None:
    hostile = ident(
        "ssh",
        product="<script>alert(1)</script>",
        version='"><img src=x onerror=alert(2)>',
        extra="\x1b]0;title\x07\u202eevil",
        evidence=b"SSH-2.0-<b>\r\n",
    )
    out = io.StringIO()
    report = make_report("html", out)
    report.begin(INFO)
    report.add([port(80, PortState.OPEN, expected="http", identified=hostile)])
    report.end(END)
    page = out.getvalue()
    assert "<script>alert" not in page
    assert "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "\\x1b]0;title\\x07\\u202eevil" in page  # controls shown, not obeyed
    assert "SSH-2.0-&lt;b&gt;\\r\\n" in page
    assert page.count("<script>") == 1  # the page's own


def test_the_policy_allows_exactly_the_inlined_script_and_style() -> None:
    page = render("html")
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy is not None
    text = policy.group(1).replace("&#39;", "'")
    assert "default-src 'none'" in text
    assert f"script-src {_csp_hash(_asset('report.js'))};" in text
    assert f"style-src {_csp_hash(_asset('report.css'))};" in text
    assert f"<script>{_asset('report.js')}</script>" in page
    assert f"<style>{_asset('report.css')}</style>" in page


def test_json_round_trip_keeps_every_field() -> None:
    saved = parse_scan(render("json"), "scan.json")
    assert json.loads(render("json"))["hosts"][0]["ports"][1]["identified"]["evidence"] == (
        "SSH-2.0-\xff\x1b\r\n"
    )
    ssh = next(r for r in saved.results if r.port == 2222)
    assert ssh.identified is not None
    assert ssh.identified.evidence == b"SSH-2.0-\xff\x1b\r\n"
    assert len([r for r in saved.results if r.state is PortState.CLOSED]) == 0  # counted
    assert LIST_LIMIT < 199
