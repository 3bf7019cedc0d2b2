"""The ``portkit scan`` command's driver: progress bar, report, Ctrl-C."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from portkit._errors import EXIT_INTERRUPTED, EXIT_OK
from portkit.cli._output import open_outputs
from portkit.report import ScanInfo, ScanSummary, make_report
from portkit.report._base import LIST_LIMIT
from portkit.results import PortResult, PortState
from portkit.scan._loopless import cancellations
from portkit.scan._scan import ScanPlan, scan_batches

if TYPE_CHECKING:
    from portkit.report import Report
    from portkit.scan._cluster import ClusterOptions

__all__ = ["run_scan_command"]


def _version() -> str:
    import portkit

    return portkit.__version__


def _announce_open(results: Sequence[PortResult]) -> None:
    """-v: each open port on stderr as it is found (nmap's "Discovered open port")."""
    for r in results:
        if r.state is PortState.OPEN:
            print(f"open port {r.port}/{r.transport} on {r.host}", file=sys.stderr, flush=True)


async def run_scan_command(
    plan: ScanPlan,
    *,
    detect: bool,
    outputs: Sequence[tuple[str, str | None]] = (("table", None),),
    open_only: bool = False,
    reason: bool = False,
    verbosity: int = 0,
    deadline: float | None = None,
    command_line: str,
    cluster: ClusterOptions | None = None,
) -> int:
    """Run the scan ``plan`` for the command line; return the exit status.

    ``outputs``: (report format, file or None for stdout) for each report to write.
    ``deadline``: seconds after which the scan stops and reports what it found
    (``--host-timeout``). ``verbosity`` 1 and up prints open ports on stderr as found;
    -1 (``-q``) leaves only errors there.

    Runs under ``asyncio.run``, or under ``run_loopless`` where
    :func:`~portkit.scan._scan.needs_event_loop` says it may and there is no
    ``cluster`` and no ``deadline``.
    """
    syn = plan.syn
    if syn:
        from portkit.scan._syn import check_privilege

        check_privilege()
    sharded = None
    if cluster is not None:  # a cluster or --resume: checked and started before any output
        from portkit.scan._cluster import ClusterScan

        sharded = await ClusterScan.open(plan, cluster, detect=detect)
    started = time.time()
    clock = time.monotonic()
    interrupted = timed_out = False
    with open_outputs([path for _fmt, path in outputs]) as streams:
        reports = [
            make_report(fmt, out) for (fmt, _path), out in zip(outputs, streams, strict=True)
        ]
        report: Report = reports[0]
        if len(reports) > 1:
            from portkit.report._formats import TeeReport

            report = TeeReport(reports)
        report.begin(
            ScanInfo(
                args=command_line,
                start=started,
                scan_type="syn" if syn else "connect",
                tcp_ports=plan.ports.tcp,
                udp_ports=plan.ports.udp,
                host_count=plan.host_count,
                version=_version(),
                detect=detect,
                open_only=open_only,
                reason=reason,
            )
        )
        progress = _progress(plan.probe_count) if verbosity >= 0 else _Bar()
        try:
            async with _timeout(deadline):
                with progress as bar:
                    # Past LIST_LIMIT + 1 closed ports of a host, every report only counts
                    # them (HostTable): the engine may hand over counts instead.
                    source = (
                        scan_batches(plan, detect=detect, count_after=LIST_LIMIT + 1)
                        if sharded is None
                        else sharded.batches()
                    )
                    async with contextlib.aclosing(source) as batches:
                        async for batch in batches:
                            if verbosity > 0:
                                _announce_open(batch.results)
                            report.add(batch.results)
                            if batch.counts:
                                report.add_counts(batch.counts)
                            if batch.done:  # a cluster scan: these hosts are complete
                                report.hosts_done(batch.done)
                            bar.advance(batch.total)
        except TimeoutError:  # --host-timeout: like Ctrl-C, but the user asked for it
            timed_out = True
        except cancellations():  # Ctrl-C: the runner cancels us; report what we have
            interrupted = True
        report.end(
            ScanSummary(
                end=time.time(),
                elapsed=time.monotonic() - clock,
                interrupted=interrupted or timed_out,
            )
        )
    if timed_out:
        # As nmap, a host timeout is not an error: the scan ran as asked.
        print(
            f"portkit: --host-timeout reached after {deadline:g} s; the results above are partial",
            file=sys.stderr,
        )
        return EXIT_OK
    if interrupted:
        print("portkit: interrupted; the results above are partial", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


def _timeout(deadline: float | None) -> contextlib.AbstractAsyncContextManager[object]:
    """``asyncio.timeout(deadline)``; with no deadline a no-op, which needs no event loop."""
    if deadline is None:
        return contextlib.nullcontext()
    import asyncio

    return asyncio.timeout(deadline)


class _Bar:
    """The progress bar's interface; the silent one does nothing (pipes, files, tests)."""

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def advance(self, count: int) -> None:
        return None


class _RichBar(_Bar):
    def __init__(self, total: int) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("scanning"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._task = self._progress.add_task("scan", total=total)

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def advance(self, count: int) -> None:
        self._progress.advance(self._task, count)


def _progress(total: int) -> _Bar:
    # Only on a terminal: pipes, files and CI logs stay clean.
    if sys.stderr.isatty():
        return _RichBar(total)
    return _Bar()
