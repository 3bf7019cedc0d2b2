"""The human report: one aligned table per host, then a one-line summary."""

from __future__ import annotations

from portkit._columns import format_table
from portkit._display import escape_controls
from portkit.report._base import (
    CollectingReport,
    HostTable,
    ScanSummary,
    product_of,
    service_of,
)
from portkit.results import PortState

__all__ = ["TableReport"]


class TableReport(CollectingReport):
    """A table per host, each written once the host is done (at the end, or at Ctrl-C,
    for a scan in one process), then the summary line."""

    def write_host(self, table: HostTable, done: float) -> None:
        detect = self.info is not None and self.info.detect
        reason = self.info is not None and self.info.reason
        hostname = table.hostname and escape_controls(table.hostname)
        name = f"{table.address} ({hostname})" if hostname else table.address
        print(name, file=self.out)
        headers = ["PORT", "TRANSPORT", "STATE", "SERVICE"]
        if reason:
            headers.insert(3, "REASON")
        if detect:
            headers += ["PRODUCT", "TLS"]
        rows = []
        for r in table.ports():
            # Products and versions are the server's own words: escaped for the terminal.
            service = escape_controls(service_of(r))
            row: list[object] = [r.port, r.transport, r.state.value, service]
            if reason:
                row.insert(3, r.reason)
            if detect:
                tls = r.identified.tls if r.identified is not None else None
                shown_tls = (tls.version or "yes") if tls is not None else ""
                row += [escape_controls(product_of(r)), escape_controls(shown_tls)]
            rows.append(row)
        if rows:
            for line in format_table(headers, rows).splitlines():
                print(f"  {line}", file=self.out)
        for transport, state, count in table.extra():
            print(f"  not shown: {count} {state.value} {transport} ports", file=self.out)
        print(file=self.out)

    def finish(self, summary: ScanSummary) -> None:
        totals = self.totals
        open_filtered = totals.by_state.get(PortState.OPEN_FILTERED, 0)
        extra = f", {open_filtered} open|filtered" if open_filtered else ""
        status = "interrupted after" if summary.interrupted else "scanned"
        print(
            f"{status} {totals.hosts} host{'s' if totals.hosts != 1 else ''}, "
            f"{totals.ports} port{'s' if totals.ports != 1 else ''} in {summary.elapsed:.2f} s: "
            f"{totals.open} open{extra}",
            file=self.out,
        )
