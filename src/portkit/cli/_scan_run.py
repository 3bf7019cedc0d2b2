"""The ``portkit scan`` command's driver: plan, progress bar, report, Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, TextIO

from portkit._errors import EXIT_INTERRUPTED, EXIT_OK
from portkit.report import ScanInfo, ScanSummary, make_report
from portkit.report._base import LIST_LIMIT
from portkit.scan._scan import plan_scan, scan_batches

if TYPE_CHECKING:
    from portkit.scan._cluster import ClusterOptions

__all__ = ["run_scan_command"]


def _version() -> str:
    import portkit

    return portkit.__version__


@contextlib.contextmanager
def _open_output(path: str | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    from portkit._errors import UsageError

    try:
        handle = open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise UsageError(f"cannot write output file {path!r}: {exc.strerror}") from None
    with handle:
        yield handle


async def run_scan_command(
    *,
    targets: Sequence[str],
    ports: str | None,
    top: int | None,
    syn: bool,
    udp: bool,
    tcp: bool,
    exclude: Sequence[str],
    timeout: float,  # noqa: ASYNC109 (per probe)
    retries: int,
    rate: float | None,
    concurrency: int | None,
    processes: int | None = None,
    detect: bool,
    fmt: str,
    output: str | None,
    command_line: str,
    cluster: ClusterOptions | None = None,
) -> int:
    """Run one scan for the command line; return the exit status."""
    plan = await plan_scan(
        targets,
        ports,
        top=top,
        udp=udp,
        tcp=tcp,
        syn=syn,
        exclude=exclude,
        timeout=timeout,
        retries=retries,
        rate=rate,
        concurrency=concurrency,
        processes=processes,
    )
    if syn:
        from portkit.scan._syn import check_privilege

        check_privilege()
    sharded = None
    if cluster is not None:  # a cluster or --resume: checked and started before any output
        from portkit.scan._cluster import ClusterScan

        sharded = await ClusterScan.open(plan, cluster, detect=detect)
    started = time.time()
    clock = time.monotonic()
    interrupted = False
    with _open_output(output) as out:
        report = make_report(fmt, out)
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
            )
        )
        progress = _progress(plan.probe_count)
        try:
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
                        report.add(batch.results)
                        if batch.counts:
                            report.add_counts(batch.counts)
                        bar.advance(batch.total)
        except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels us; report what we have
            interrupted = True
        report.end(
            ScanSummary(end=time.time(), elapsed=time.monotonic() - clock, interrupted=interrupted)
        )
    if interrupted:
        print("portkit: interrupted; the results above are partial", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK


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
