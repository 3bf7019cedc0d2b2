"""The library entry point: ``async for result in portkit.scan.scan(...)``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import sys
from collections.abc import (
    AsyncGenerator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Sequence,
)
from dataclasses import dataclass, field
from typing import cast

from portkit._errors import NetworkError, PortkitError, PortSpecError, TargetError
from portkit.results import Batches, Identification, PortResult, PortState, ResultBatch
from portkit.scan._engine import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    EngineOptions,
    ProbeKind,
    run_socket_engine,
)
from portkit.scan._names import BackgroundNames, load_table, store_table
from portkit.scan._ports import PortSet, parse_ports, port_set_from_top
from portkit.scan._shard import Engine, process_count, sharded
from portkit.scan._targets import (
    Target,
    TargetSpec,
    iter_targets,
    parse_target,
    parse_targets,
    resolve_targets,
)

__all__ = ["HOST_GROUP", "ScanPlan", "plan_scan", "scan", "scan_batches"]

log = logging.getLogger("portkit.scan")

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


# Below this many ports, naming each through the registry is cheaper than building the
# whole table (which reads every registry entry once).
_TABLE_THRESHOLD = 4096


def expected_names(transport: str, ports: Sequence[int] | None = None) -> list[str | None]:
    """The registry's service name of every port 0-65535 for ``transport``, as a list.

    Same answers as ``Registry.service_name`` (a port's own entries first, in registry
    order, then the ranges that cover it), so that naming each result of a sweep is a
    list index rather than a registry query. With ``ports`` (fewer than a few thousand),
    only those are named: small scans then do not read the whole registry.
    """
    from portkit.registry import default_registry

    small = ports is not None and len(ports) < _TABLE_THRESHOLD
    if not small or not _registry_loaded():
        kept = load_table(transport)  # a previous run's table: no registry to read
        if kept is not None:
            return kept
    registry = default_registry()
    names: list[str | None] = [None] * 65536
    if ports is not None and small:
        for port in ports:
            names[port] = registry.service_name(port, transport)
        return names
    ranges = []
    for service in registry.services:  # registry order: a port's primary entry first
        if service.port is None or not service.name or service.transport != transport:
            continue
        if service.port_end is not None and service.port_end != service.port:
            ranges.append(service)
        elif names[service.port] is None:
            names[service.port] = service.name
    for service in ranges:
        assert service.port is not None
        assert service.port_end is not None
        for port in range(service.port, min(service.port_end, 65535) + 1):
            if names[port] is None:
                names[port] = service.name
    store_table(transport, names)
    return names


def _registry_loaded() -> bool:
    index = sys.modules.get("portkit.registry._index")
    return index is not None and getattr(index, "_default", None) is not None


def names_for(transport: str, ports: Sequence[int]) -> Sequence[str | None] | BackgroundNames:
    """The names of ``ports``: a table, or one being built in a forked process.

    Loading the registry and naming a sweep's ports costs about 0.1 s of Python; in a
    forked process (Linux) it runs beside the scan's start instead of before it. Once
    this process has the registry, naming a few ports is quicker than a fork, and a
    table kept by a previous run (see :func:`load_table`) quicker still.
    """
    if sys.platform != "linux" or (_registry_loaded() and len(ports) < _TABLE_THRESHOLD):
        return expected_names(transport, ports)
    kept = load_table(transport)  # a previous run's table: quicker than a fork
    if kept is not None:
        return kept
    return BackgroundNames(lambda: expected_names(transport, ports))


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


async def _tcp_batches(plan: ScanPlan, count_after: int | None = None) -> Batches:
    """TCP: connect or SYN scans, sharded onto idle cores when large."""
    if plan.syn and plan.processes is None:
        # One scanning process: the SYN engine's sender process already keeps a second
        # core busy with the kernel's share of the work.
        processes = 1
    else:
        processes = process_count(plan.host_count * len(plan.ports.tcp), plan.processes)
    if plan.options.concurrency is not None:
        processes = min(processes, plan.options.concurrency)  # at least one probe each
    names = names_for("tcp", plan.ports.tcp)
    try:
        options = plan.options.share(processes)

        def engine_with(
            table: Sequence[str | None] | BackgroundNames | None,
        ) -> Engine:
            def engine(
                probes: Iterator[tuple[Target, int]],
            ) -> Batches:
                if plan.syn:
                    from portkit.scan._syn import run_syn_engine

                    # Counts only from one process: shards' results are named here.
                    return run_syn_engine(
                        probes,
                        options,
                        table,
                        count_after=count_after if processes == 1 else None,
                    )
                return run_socket_engine(probes, ProbeKind.TCP_CONNECT, options, table)

            return engine

        if processes > 1:
            # Forked processes send their results unnamed; this process names them.
            batches = sharded(
                engine_with(None),
                plan.probes("tcp"),
                processes,
                transport="tcp",
                names=names,
                own_engine=engine_with(names),
            )
        else:
            batches = engine_with(names)(plan.probes("tcp"))
        async with contextlib.aclosing(batches):
            async for batch in batches:
                yield batch
    finally:
        if isinstance(names, BackgroundNames):
            names.close()


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

    With ``detect``, open TCP ports are handed to identification (at most
    ``detect_concurrency`` at a time) and come out once identified; ``detect`` may be
    the identify function itself (tests pass a stand-in).
    """
    identify: Identify | None = None
    if detect is True:
        identify = _load_identify()
    elif detect is not False:
        identify = detect
    pending: set[asyncio.Task[PortResult]] = set()
    gate = asyncio.Semaphore(max(1, detect_concurrency))

    async def identified(result: PortResult) -> PortResult:
        assert identify is not None
        async with gate:
            try:
                ident = await identify(result.host, result.port, expected=result.expected)
            except NetworkError as exc:
                # The port closed (or stopped answering) between the scan and the probes:
                # it was open when scanned, and what answered is unknown. Say so.
                ident = Identification(service=None, extra=f"gone before identification: {exc}")
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
            if identify is None:
                yield batch
                continue
            ready: list[PortResult] = []
            for result in batch.results:
                if result.state is PortState.OPEN and result.transport == "tcp":
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
    async for batch in scan_batches(plan, detect=detect):
        for result in batch.results:
            yield result
