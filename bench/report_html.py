"""What the HTML report costs to write, next to the JSON report of the same results.

Both reports are fed the same results in one process (no network): ``HOSTS`` hosts with
``PORTS`` open ports each, identified, a third of them with TLS. Each round renders JSON,
then HTML; reported are the medians of the rounds and the median of the per-round ratios
(paired, so shared-machine noise hits both alike), plus the size of each document.

    python bench/report_html.py                 # 256 hosts x 10 ports, 5 rounds
    python bench/report_html.py --hosts 1 --ports 1000
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

from portkit.report import ScanInfo, ScanSummary, make_report
from portkit.results import Identification, PortResult, PortState, TlsInfo

_TLS = TlsInfo(
    version="TLSv1.3",
    cipher="TLS_AES_256_GCM_SHA384",
    subject="CN=bench",
    issuer="CN=bench",
    not_before="2026-01-01T00:00:00+00:00",
    not_after="2027-01-01T00:00:00+00:00",
    self_signed=True,
    subject_alt_names=("bench",),
)
_PORTS = (22, 80, 443, 8080, 9443, 25, 110, 143, 993, 3306)


def results(hosts: int, ports: int) -> list[PortResult]:
    return [
        PortResult(
            host=f"127.80.{h // 250}.{h % 250 + 1}",
            port=_PORTS[i % 10] + 10_000 * (i // 10),
            transport="tcp",
            state=PortState.OPEN,
            reason="syn-ack",
            expected="http",
            identified=Identification(
                service="https" if i % 3 == 0 else "ssh",
                product="nginx",
                version="1.22.1",
                tls=_TLS if i % 3 == 0 else None,
                confidence=10,
                probe="banner",
                evidence=b"HTTP/1.1 200 OK\r\nServer: nginx\r\n\r\n",
            ),
        )
        for h in range(hosts)
        for i in range(ports)
    ]


def render(fmt: str, found: list[PortResult], hosts: int) -> tuple[float, int]:
    info = ScanInfo(
        args="bench",
        start=1.8e9,
        scan_type="connect",
        tcp_ports=_PORTS,
        host_count=hosts,
        version="bench",
        detect=True,
    )
    out = io.StringIO()
    started = time.perf_counter()
    report = make_report(fmt, out)
    report.begin(info)
    report.add(found)
    report.end(ScanSummary(end=1.8e9 + 5, elapsed=5.0))
    return time.perf_counter() - started, len(out.getvalue().encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=256)
    parser.add_argument("--ports", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    found = results(args.hosts, args.ports)
    render("html", found, args.hosts)  # templates compiled, registry loaded: not timed
    rounds = [
        (render("json", found, args.hosts), render("html", found, args.hosts))
        for _ in range(args.rounds)
    ]
    json_s = statistics.median(j[0] for j, _ in rounds)
    html_s = statistics.median(h[0] for _, h in rounds)
    ratio = statistics.median(h[0] / j[0] for j, h in rounds)
    (_, json_bytes), (_, html_bytes) = rounds[0]
    print(
        f"{args.hosts} hosts x {args.ports} ports ({len(found)} rows), medians of "
        f"{args.rounds}: json {json_s * 1000:.0f} ms ({json_bytes / 1e6:.1f} MB), "
        f"html {html_s * 1000:.0f} ms ({html_bytes / 1e6:.1f} MB), html/json {ratio:.2f}x"
    )


if __name__ == "__main__":
    main()
