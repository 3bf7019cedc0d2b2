"""One probe's exchange, and the state of one port's identification (its ladder).

:func:`exchange` sends a probe on a connection and judges the answer with the sans-io
matchers as it arrives; :class:`Ladder` holds the budget, the connections made and what
the server did; :func:`probe_once` is one probe on a connection of its own, inside TLS
when asked. The ladder's steps are in ``_identify.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from portkit._errors import ConnectionRefused, ConnectTimeout
from portkit.proto import Match, Matcher, NoMatch, Probe, Reader, matchers_for, tls_name
from portkit.scan._channel import EVIDENCE_BYTES, Channel, Closed, is_echo, server_hostname
from portkit.scan._model import Identification, TlsInfo

__all__ = [
    "CONNECT_TIMEOUT",
    "PROBE_WAIT",
    "QUIET_WAIT",
    "RTT_FACTOR",
    "TLS_TIMEOUT",
    "Ladder",
    "Outcome",
    "exchange",
    "named",
    "probe_once",
    "structured",
]

CONNECT_TIMEOUT = 2.0
"""Seconds to wait for a TCP connection to be accepted."""
PROBE_WAIT = 0.6
"""Seconds to wait for the answer to one probe (plus a few round trips)."""
QUIET_WAIT = 0.1
"""Once a probe's own matchers have all said no, seconds of silence that end its answer."""
TLS_TIMEOUT = 2.0
"""Seconds a TLS handshake may take."""
RTT_FACTOR = 4
"""Waits grow by this many measured connect round trips, for distant servers."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    match: Match | None
    data: bytes
    eof: bool
    echo: bool = False  # the server sent our own bytes back


async def exchange(
    chan: Channel,
    payload: bytes | None,
    matchers: tuple[Matcher, ...],
    wait: float,
    deadline: float,
    carry: bytes = b"",
    own: int | None = None,
) -> Outcome:
    """Send ``payload`` (if any) and judge the answer until a verdict, EOF or ``wait``.

    ``carry`` is what the server already said on this connection (its greeting), judged
    together with the answer. Once the first ``own`` matchers (the probe's) have all said
    no, only :data:`QUIET_WAIT` more silence is awaited for a late greeting.
    """
    reader = Reader(matchers)
    if carry:
        reader.feed(carry)
    loop = asyncio.get_running_loop()
    if payload:
        try:
            await chan.send(payload)
        except Closed:
            return Outcome(match=reader.finish(), data=b"", eof=True)
    end = min(loop.time() + wait, deadline)
    eof = False
    while True:
        try:
            chunk = await chan.recv(end)
        except (TimeoutError, Closed):
            match = reader.finish()
            break
        if not chunk:
            eof = True
            match = reader.finish()
            break
        match = reader.feed(chunk)
        if match is not None or reader.done or reader.full:
            break
        if own is not None and all(
            isinstance(reader.verdicts.get(m.name), NoMatch) for m in matchers[:own]
        ):
            end = min(end, loop.time() + QUIET_WAIT)
    data = bytes(reader.data)
    answer = data[len(carry) :]
    if is_echo(payload, answer):
        # Whatever a matcher saw in our own bytes (RabbitMQ does answer garbage with the
        # AMQP header we also send), an echo is not an answer.
        return Outcome(match=None, data=data, eof=eof, echo=True)
    return Outcome(match=match, data=data, eof=eof)


@dataclass(slots=True)
class Ladder:
    """One port's identification: the budget, what was seen, the connections made."""

    host: str
    port: int
    expected: str | None
    deadline: float
    level: str = "normal"
    rtt: float = 0.0
    evidence: bytes = b""
    connections: int = 0
    hangups: int = 0  # answers that were a close and nothing else
    silences: int = 0  # answers that were nothing until the wait ran out
    echoes: int = 0  # answers that were our own bytes sent back
    noted: int = 0  # answers seen with some bytes in them

    def answers(self) -> int:
        return self.noted

    def remaining(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()

    def wait(self, base: float) -> float:
        return min(base + RTT_FACTOR * self.rtt, max(self.remaining(), 0.0))

    def phase_deadline(self, base: float) -> float:
        return asyncio.get_running_loop().time() + self.wait(base)

    def note(self, data: bytes, *, eof: bool = False, echo: bool = False) -> None:
        """Keep the first bytes seen as evidence; count closes, silences and echoes."""
        self.echoes += echo
        if data and not self.evidence:
            self.evidence = data[:EVIDENCE_BYTES]
        if data:
            self.noted += 1
        elif eof:
            self.hangups += 1
        else:
            self.silences += 1

    def unknown(self) -> str:
        """Say honestly what an unrecognised server did."""
        if self.echoes and self.echoes == self.answers():
            return "the server echoes what it is sent"
        if self.evidence:
            return "no probe matched"
        if self.hangups and not self.silences:
            return "the server closes every connection without a word"
        return "no answer to any probe"

    async def connect(self) -> Channel:
        if self.remaining() <= 0:
            raise Closed("budget spent")
        timeout = min(CONNECT_TIMEOUT, self.remaining())
        try:
            chan, rtt = await Channel.open(self.host, self.port, timeout)
        except (ConnectionRefused, ConnectTimeout) as exc:
            if self.connections == 0:
                raise
            raise Closed(str(exc)) from None
        if self.connections == 0:
            self.rtt = rtt
        self.connections += 1
        return chan

    def result(
        self, match: Match, probe: str, data: bytes, tls: TlsInfo | None = None
    ) -> Identification:
        service = tls_name(match.service) if tls is not None else match.service
        return Identification(
            service=service,
            product=match.product,
            version=match.version,
            extra=match.extra,
            tls=tls,
            confidence=match.confidence,
            method="probed",
            probe=probe,
            evidence=data[:EVIDENCE_BYTES],
        )


@contextlib.asynccontextmanager
async def structured() -> AsyncIterator[asyncio.TaskGroup]:
    """An :class:`asyncio.TaskGroup` whose one failure comes out as itself.

    The ladder's tasks fail only with portkit's own errors (a connection that broke in
    an unexpected way); callers catch those by class, not inside an exception group.
    """
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except BaseExceptionGroup as failed:
        first = failed.exceptions[0]
        raise first from first.__cause__


async def probe_once(
    ladder: Ladder, probe: Probe, *, wait: float | None = None, tls: bool = False
) -> Outcome | None:
    """Send ``probe`` on a new connection and judge the answer; ``None`` if none was made.

    With ``tls`` the probe goes inside a TLS handshake made first (``None`` when that
    fails). ``wait`` replaces the probe's own wait (:data:`PROBE_WAIT` unless it says).
    """
    try:
        chan = await ladder.connect()
    except Closed:
        return None
    try:
        if tls:
            shaken = await chan.start_tls(
                server_hostname(ladder.host),
                ladder.phase_deadline(PROBE_WAIT),
                ladder.phase_deadline(TLS_TIMEOUT),
            )
            if shaken is None:
                return None
        return await exchange(
            chan,
            probe.build(ladder.host),
            matchers_for(probe),
            ladder.wait(wait or probe.wait or PROBE_WAIT),
            ladder.deadline,
            own=len(probe.matchers),
        )
    finally:
        await chan.close()


def named(probe: Probe, inside: bool) -> str:
    return f"tls+{probe.name}" if inside else probe.name
