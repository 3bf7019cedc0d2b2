"""The grepable report, one line per host, in the layout of nmap's ``-oG``.

``Host: ADDR (NAME)<TAB>Ports: PORT/STATE/PROTO//SERVICE//PRODUCT/, ...<TAB>Ignored State: closed (N)``
"""

from __future__ import annotations

import time

from portkit._display import escape_controls
from portkit.report._base import (
    CollectingReport,
    HostTable,
    ScanInfo,
    ScanSummary,
    product_of,
    service_of,
)

__all__ = ["GrepReport"]


def _field(text: str) -> str:
    # The format separates fields with "/" and ports with ","; keep them out of values.
    # Lines are read by grep and by terminals: no control characters either.
    return escape_controls(text.replace("/", "|").replace(",", " "))


class GrepReport(CollectingReport):
    """Comment header, one ``Host:`` line per host as it is done, comment trailer."""

    def begin(self, info: ScanInfo) -> None:
        super().begin(info)
        started = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(info.start))
        print(f"# portkit {info.version} scan initiated {started} as: {info.args}", file=self.out)
        self.out.flush()

    def write_host(self, table: HostTable, done: float) -> None:
        ports = ", ".join(
            f"{r.port}/{r.state.value}/{r.transport}//{_field(service_of(r))}//"
            f"{_field(product_of(r))}/"
            for r in table.ports()
        )
        hostname = escape_controls(table.hostname or "")
        line = f"Host: {table.address} ({hostname})\tPorts: {ports}"
        extra = table.extra()
        if extra:
            _t, state, count = max(extra, key=lambda e: e[2])
            line += f"\tIgnored State: {state.value} ({count})"
        print(line, file=self.out)

    def finish(self, summary: ScanSummary) -> None:
        ended = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(summary.end))
        word = "interrupted" if summary.interrupted else "done"
        hosts = self.totals.hosts
        print(
            f"# portkit {word} at {ended} -- {hosts} IP address"
            f"{'es' if hosts != 1 else ''} scanned in {summary.elapsed:.2f} seconds",
            file=self.out,
        )
