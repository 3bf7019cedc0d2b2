"""A shard's results packed as columns, the way they travel from a Dask worker.

A shard of 4,096 probes is 4,096 :class:`~portkit.results.PortResult` objects. Pickled
one by one they cost the worker and the client about 2 µs each to write and read (the
client's share is most of its work per result); packed, each is a few numbers in
arrays and indices into small tables of the strings that repeat (hosts, reasons,
registry's names). Results with an identification, few and rich, travel whole.
:func:`unpack` gives back the same results in the same order.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

from portkit.results import PortResult, PortState

__all__ = ["PackedResults", "pack", "unpack"]

_STATES = tuple(PortState)
_STATE_CODE = {state: n for n, state in enumerate(_STATES)}


@dataclass(frozen=True, slots=True)
class PackedResults:
    """Results as columns: row ``i`` is result ``i`` unless ``whole`` has position ``i``."""

    hosts: tuple[tuple[str, str | None], ...]  # (address, hostname), each once
    words: tuple[str, ...]  # transports and reasons, each once
    names: tuple[str | None, ...]  # the registry's names, each once
    host: array[int]  # index into hosts, a row
    port: array[int]
    transport: array[int]  # index into words
    state: array[int]  # index into PortState
    reason: array[int]  # index into words
    expected: array[int]  # index into names
    rtt: array[float]  # seconds; NaN for none
    whole: tuple[tuple[int, PortResult], ...]  # (position, result) of identified ones

    def __len__(self) -> int:
        return len(self.host) + len(self.whole)


def pack(results: Sequence[PortResult]) -> PackedResults:
    """``results`` as columns (see :class:`PackedResults`)."""
    hosts: dict[tuple[str, str | None], int] = {}
    words: dict[str, int] = {}
    names: dict[str | None, int] = {}
    host, port, transport = array("I"), array("H"), array("H")
    state, reason, expected = array("B"), array("H"), array("I")
    rtt = array("d")  # no float | None in an array: NaN stands for None
    whole: list[tuple[int, PortResult]] = []
    for position, r in enumerate(results):
        if r.identified is not None:
            whole.append((position, r))
            continue
        host.append(hosts.setdefault((r.host, r.hostname), len(hosts)))
        port.append(r.port)
        transport.append(words.setdefault(r.transport, len(words)))
        state.append(_STATE_CODE[r.state])
        reason.append(words.setdefault(r.reason, len(words)))
        expected.append(names.setdefault(r.expected, len(names)))
        rtt.append(math.nan if r.rtt is None else r.rtt)
    return PackedResults(
        hosts=tuple(hosts),
        words=tuple(words),
        names=tuple(names),
        host=host,
        port=port,
        transport=transport,
        state=state,
        reason=reason,
        expected=expected,
        rtt=rtt,
        whole=tuple(whole),
    )


def unpack(packed: PackedResults) -> list[PortResult]:
    """The results :func:`pack` was given, in their order."""
    hosts, words, names = packed.hosts, packed.words, packed.names
    rows = zip(
        packed.host,
        packed.port,
        packed.transport,
        packed.state,
        packed.reason,
        packed.expected,
        packed.rtt,
        strict=True,
    )
    results: list[PortResult] = []
    wait = iter(packed.whole)
    position, result = next(wait, (-1, None))
    for h, p, t, s, why, name, seconds in rows:
        while len(results) == position and result is not None:
            results.append(result)
            position, result = next(wait, (-1, None))
        address, hostname = hosts[h]
        results.append(
            PortResult(
                host=address,
                port=p,
                transport=words[t],
                state=_STATES[s],
                reason=words[why],
                hostname=hostname,
                expected=names[name],
                rtt=None if seconds != seconds else seconds,  # NaN: none
            )
        )
    while result is not None:  # identified ones after the last row
        results.append(result)
        position, result = next(wait, (-1, None))
    return results
