"""The library entry point: ``async for result in portkit.scan.scan(...)``."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from portkit._errors import NetworkError, PortkitError, PortSpecError, TargetError
from portkit.results import Batches, Identification, PortResult, PortState, ResultBatch
from portkit.scan._engine import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    EngineOptions,
    ProbeKind,
    run_socket_engine,
)
from portkit.scan._names import expected_names
from portkit.scan._ports import PortSet, parse_ports, port_set_from_top
from portkit.scan._shard import Cores, Engine, local_cores
from portkit.scan._targets import (
    Target,
    TargetSpec,
    iter_targets,
    parse_target,
    parse_targets,
    resolve_targets,
)

if TYPE_CHECKING:
    import asyncio

__all__ = ["HOST_GROUP", "ScanPlan", "needs_event_loop", "plan_scan", "scan", "scan_batches"]

# Hosts are probed in groups of this many, ports interleaved across the group, so a
# multi-host scan spreads its load instead of hammering one host at a time.
HOST_GROUP = 256
DETECT_CONCURRENCY = 32

Identify = Callable[..., Awaitable[Identification]]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanPlan:
    """Everything a scan will do, parsed and resolved, before any probe is sent."""

    targets: tuple[TargetSpec, ...]
    exclude: tuple[TargetSpec, ...] = ()
    ports: PortSet
    syn: bool = False
    options: EngineOptions = field(default_factory=EngineOptions)
    processes: int | None = None  # processes for large TCP scans; None: idle cores

    def iter_targets(self) -> Iterator[Target]:
        """Yield each address to scan once, exclusions applied."""
        return iter_targets(self.targets, exclude=self.exclude)

    @property
    def host_count(self) -> int:
        """How many addresses the scan covers (exclusions not subtracted)."""
        return sum(s.size for s in self.targets)

    @property
    def probe_count(self) -> int:
        """How many (address, port, transport) triples the scan covers, at most."""
        return self.host_count * len(self.ports)

    def probes(self, transport: str) -> Iterator[tuple[Target, int]]:
        """Yield (target, port) for ``transport``: host groups, ports interleaved."""
        ports = self.ports.for_transport(transport)
        if not ports:
            return
        hosts = self.iter_targets()
        while group := list(itertools.islice(hosts, HOST_GROUP)):
            if len(group) == 1:
                # One host (a sweep's usual case): the pairs made in C, not one
                # generator step per port.
                yield from zip(itertools.repeat(group[0]), ports)
                continue
            for port in ports:
                for target in group:
                    yield target, port


async def plan_scan(
    targets: Iterable[str] | str,
    ports: str | PortSet | None = None,
    *,
    top: int | None = None,
    udp: bool = False,
    tcp: bool = True,
    syn: bool = False,
    exclude: Iterable[str] = (),
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (per probe, not for the call)
    retries: int = DEFAULT_RETRIES,
    rate: float | None = None,
    concurrency: int | None = None,
    processes: int | None = None,
) -> ScanPlan:
    """Parse and resolve a scan's inputs; raise before anything is sent.

    ``ports`` is a port specification (``"22,80,1000-2000"``, ``"T:80,U:53"``) or a
    :class:`PortSet`; without it and without ``top`` the 1,000 first ports of the
    ``--top`` ordering are scanned. ``udp`` adds UDP to the transports that unprefixed
    ports go to (``tcp=False`` with it: UDP only).
    """
    transports = tuple(t for t, on in (("tcp", tcp), ("udp", udp)) if on)
    if not transports:
        raise PortSpecError("no transport selected (tcp and udp are both off)")
    if isinstance(ports, PortSet):
        port_set = ports
    elif ports is not None:
        if top is not None:
            raise PortSpecError("give either a port specification or --top, not both")
        port_set = parse_ports(ports, transports=transports)
    else:
        port_set = port_set_from_top(top if top is not None else 1000, transports=transports)
    if rate is not None and rate <= 0:
        raise PortSpecError(f"rate must be positive, not {rate:g}")
    if timeout <= 0:
        raise PortSpecError(f"timeout must be positive, not {timeout:g}")
    if retries < 0:
        raise PortSpecError(f"retries must be 0 or more, not {retries}")
    if processes is not None and processes < 1:
        raise PortSpecError(f"processes must be at least 1, not {processes}")
    if concurrency is not None and concurrency < 1:
        raise PortSpecError(f"concurrency must be at least 1, not {concurrency}")
    texts = [targets] if isinstance(targets, str) else list(targets)
    specs = await resolve_targets(parse_targets(texts))
    excluded = await resolve_targets([parse_target(t) for t in exclude])
    plan = ScanPlan(
        targets=specs,
        exclude=excluded,
        ports=port_set,
        syn=syn,
        options=EngineOptions(timeout=timeout, retries=retries, rate=rate, concurrency=concurrency),
        processes=processes,
    )
    if not any(True for _ in itertools.islice(plan.iter_targets(), 1)):
        raise TargetError("every target is excluded; nothing to scan")
    return plan


async def _engine_batches(plan: ScanPlan, count_after: int | None = None) -> Batches:
    if plan.ports.tcp:
        async with contextlib.aclosing(_tcp_batches(plan, count_after)) as tcp:
            async for batch in tcp:
                yield batch
    if plan.ports.udp:
        udp = run_socket_engine(
            plan.probes("udp"), ProbeKind.UDP, plan.options, expected_names("udp", plan.ports.udp)
        )
        async with contextlib.aclosing(udp):
            async for batch in udp:
                yield batch


def _tcp_executor(plan: ScanPlan) -> Cores:
    """The processes of this machine that the TCP part of ``plan`` runs in."""
    if plan.syn and plan.processes is None:
        # One scanning process: the SYN engine's sender process already keeps a second
        # core busy with the kernel's share of the work.
        executor = Cores(1)
    else:
        executor = local_cores(plan.host_count * len(plan.ports.tcp), plan.processes)
    if plan.options.concurrency is not None and executor.slots > plan.options.concurrency:
        executor = Cores(plan.options.concurrency)  # at least one probe in flight each
    return executor


def needs_event_loop(plan: ScanPlan, *, detect: bool = False) -> bool:
    """Whether ``scan_batches(plan, detect=detect)`` needs asyncio's event loop.

    Identification and a scan forked across processes do; the engines of one process
    (connect, SYN, UDP) also run under :func:`~portkit.scan._loopless.run_loopless`,
    which starts without importing asyncio.
    """
    return detect or (bool(plan.ports.tcp) and _tcp_executor(plan).slots > 1)


async def _tcp_batches(plan: ScanPlan, count_after: int | None = None) -> Batches:
    """TCP: connect or SYN scans, sharded onto idle cores when large."""
    executor = _tcp_executor(plan)
    names = expected_names("tcp", plan.ports.tcp)
    options = executor.share(plan.options)

    def engine_with(table: Sequence[str | None] | None) -> Engine:
        def engine(probes: Iterator[tuple[Target, int]]) -> Batches:
            if plan.syn:
                from portkit.scan._syn import run_syn_engine

                return run_syn_engine(probes, options, table, count_after=count_after)
            return run_socket_engine(
                probes, ProbeKind.TCP_CONNECT, options, table, count_after=count_after
            )

        return engine

    # Forked processes send their results unnamed; this process names them.
    batches = executor.stream(
        engine_with(None),
        plan.probes("tcp"),
        transport="tcp",
        names=names,
        own_engine=engine_with(names),
    )
    async with contextlib.aclosing(batches):
        async for batch in batches:
            yield batch


def _load_identify() -> Identify:
    # Identification is its own module (and its own engineer's); imported only on demand.
    import importlib

    try:
        module = importlib.import_module("portkit.scan._identify")
    except ModuleNotFoundError as exc:
        if exc.name != "portkit.scan._identify":
            raise
        raise PortkitError(
            "--detect is not available: this portkit has no identification"
        ) from None
    return cast(Identify, module.identify)


async def scan_batches(
    plan: ScanPlan,
    *,
    detect: bool | Identify = False,
    detect_concurrency: int = DETECT_CONCURRENCY,
    count_after: int | None = None,
) -> Batches:
    """Run ``plan``, yielding :class:`ResultBatch` objects as soon as results are known.

    Without ``count_after`` every port comes as a result. With it (the CLI's
    reports, which only count a host's closed ports past their listing limit), an
    engine may hand over ``counts`` instead, standing for a host's closed ports past
    that many (the SYN engine does).

    With ``detect``, open TCP ports and open or open|filtered UDP ports are handed to
    identification (at most ``detect_concurrency`` at a time) and come out once
    identified (a UDP port that answers a probe there is open); ``detect`` may be the
    identify function itself (tests pass a stand-in).
    """
    identify: Identify | None = None
    if detect is True:
        identify = _load_identify()
    elif detect is not False:
        identify = detect
    if identify is None:
        # Nothing to identify: the engines' batches as they come, and no asyncio (so
        # that run_loopless can run this).
        async with contextlib.aclosing(_engine_batches(plan, count_after)) as plain:
            async for batch in plain:
                yield batch
        return
    import asyncio

    pending: set[asyncio.Task[PortResult]] = set()
    gate = asyncio.Semaphore(max(1, detect_concurrency))

    async def identified(result: PortResult) -> PortResult:
        assert identify is not None  # for mypy: the closure cannot see it narrowed
        udp = result.transport == "udp"
        async with gate:
            try:
                if udp:
                    ident = await identify(
                        result.host, result.port, expected=result.expected, transport="udp"
                    )
                else:
                    ident = await identify(result.host, result.port, expected=result.expected)
            except NetworkError as exc:
                # The port closed (or stopped answering) between the scan and the probes:
                # it was open when scanned, and what answered is unknown. Say so.
                ident = Identification(service=None, extra=f"gone before identification: {exc}")
        if udp and ident.evidence and result.state is PortState.OPEN_FILTERED:
            # Silent to the scan's datagrams, but it answered one of the probes: open.
            return dataclasses.replace(
                result, state=PortState.OPEN, reason="udp-response", identified=ident
            )
        return dataclasses.replace(result, identified=ident)

    async def finished(block: bool) -> list[PortResult]:
        done, _ = await asyncio.wait(
            pending, timeout=None if block else 0, return_when=asyncio.FIRST_COMPLETED
        )
        pending.difference_update(done)
        return [task.result() for task in done]

    batches = _engine_batches(plan, count_after)
    try:
        async for batch in batches:
            ready: list[PortResult] = []
            for result in batch.results:
                if result.state is PortState.OPEN or (
                    result.state is PortState.OPEN_FILTERED and result.transport == "udp"
                ):
                    pending.add(asyncio.ensure_future(identified(result)))
                else:
                    ready.append(result)
            if pending:
                # Hand over what is done; wait when too much is queued (bounded memory).
                ready.extend(await finished(len(pending) > 4 * detect_concurrency))
            if ready or batch.counts:
                yield ResultBatch(ready, batch.counts)
        while pending:
            yield ResultBatch(await finished(True))
    finally:
        await batches.aclose()
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


async def scan(
    targets: Iterable[str] | str,
    ports: str | PortSet | None = None,
    *,
    top: int | None = None,
    udp: bool = False,
    tcp: bool = True,
    syn: bool = False,
    exclude: Sequence[str] = (),
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (per probe, not for the call)
    retries: int = DEFAULT_RETRIES,
    rate: float | None = None,
    concurrency: int | None = None,
    processes: int | None = None,
    detect: bool = False,
) -> AsyncGenerator[PortResult, None]:
    """Scan ``targets`` and yield a :class:`PortResult` for every port, as found.

    Example::

        async for result in scan(["127.0.0.1"], "1-1024"):
            if result.state is PortState.OPEN:
                print(result.port, result.expected)

    Raises:
        TargetError, PortSpecError: bad input, before anything is sent.
        PrivilegeError: ``syn=True`` without root or CAP_NET_RAW.
    """
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
    # Closed with this generator, not whenever the loop finalises it: closing a scan early
    # stops (and reaps) its worker processes at once.
    async with contextlib.aclosing(scan_batches(plan, detect=detect)) as batches:
        async for batch in batches:
            for result in batch.results:
                yield result
