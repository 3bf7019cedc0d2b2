"""The identification ladder: what actually answers on one port.

For TCP, in order, within one time budget, stopping at the first match:

1. connect and *listen* (servers that speak first: SSH, SMTP, FTP, POP3, IMAP, Telnet,
   MySQL, VNC), unless the registry names a client-first protocol we can probe;
2. send the probe most likely for the registry's service on that same connection (the
   HTTP GET when the registry knows nothing better); where the service is TLS by
   convention, the TLS handshake comes first instead;
3. a TLS handshake; when it completes, record the certificate and climb the ladder again
   *inside* TLS (https, imaps, pop3s, submissions, ftps, ...);
4. the remaining probes, each on a connection of its own, a few at a time;
5. after a plain SMTP, IMAP, POP3 or FTP match, a STARTTLS upgrade on a new connection,
   to record the certificate (:mod:`portkit.proto.starttls`).

Every probe's answer is judged by the sans-io matchers of :mod:`portkit.proto` as the bytes
arrive, so a quick server is identified as soon as its answer is complete. Waits are per
phase and short; reads stop at :data:`portkit.proto.MAX_RESPONSE_BYTES`. Nothing matched
means an honest "unknown" that keeps the first bytes the server sent.

UDP is ``_identify_udp.py``; one probe's exchange and the ladder's state are
``_exchange.py``; the TCP connection with its memory-BIO TLS is ``_channel.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import time
from collections.abc import Iterator
from dataclasses import replace

from portkit._errors import (
    ConnectionRefused,
    ConnectTimeout,
    RemoteProtocolError,
    UsageError,
)
from portkit.proto import (
    API_DOCUMENTS,
    BANNER_MATCHERS,
    MATCHERS,
    SPEAKS_FIRST,
    TCP_PROBES,
    Probe,
    Reader,
    matchers_for,
    plain_name,
    probes_for,
    wants_tls_first,
)
from portkit.proto.http import HTTP_GET, HTTP_GET_CONSUL_SELF, HTTP_GET_METRICS
from portkit.proto.jetdirect import PJL_INFO_ID
from portkit.proto.mail import SMTP_EHLO
from portkit.proto.starttls import STARTTLS_PROTOCOLS, StartTlsClient
from portkit.scan._channel import (
    EVIDENCE_BYTES,
    Channel,
    Closed,
    is_echo,
    server_hostname,
)
from portkit.scan._exchange import (
    CONNECT_TIMEOUT,
    PROBE_WAIT,
    QUIET_WAIT,
    TLS_TIMEOUT,
    Ladder,
    Outcome,
    exchange,
    named,
    probe_once,
    structured,
)
from portkit.scan._identify_udp import LIGHT_UDP_PROBES, UDP_WAIT, identify_udp
from portkit.scan._model import Identification, PortResult, PortState, TlsInfo, nmap_service

__all__ = [
    "BANNER_WAIT",
    "CONNECT_TIMEOUT",
    "DEFAULT_BUDGET",
    "DETECT_LEVELS",
    "EVIDENCE_BYTES",
    "LIGHT_UDP_PROBES",
    "LIKELY_PROBE_WAIT",
    "PARALLEL_PROBES",
    "PROBE_WAIT",
    "QUIET_WAIT",
    "SPEAKS_FIRST_WAIT",
    "TLS_TIMEOUT",
    "UDP_WAIT",
    "current_level",
    "detect_level",
    "identify",
    "nmap_service",
    "probe_port",
    "same_protocol",
]

DEFAULT_BUDGET = 6.0
"""Seconds one port's whole identification may take."""
BANNER_WAIT = 0.3
"""Seconds to listen for a greeting when the registry names no protocol we can probe."""
SPEAKS_FIRST_WAIT = 1.5
"""Seconds to listen when the registry expects a server that greets first."""
LIKELY_PROBE_WAIT = 1.5
"""Seconds to wait for the answer to the most likely probe (a slow web app, a late greeting)."""
RAW_PRINTING_PORTS = range(9100, 9108)
"""Raw printing ports ("JetDirect"): a printer prints whatever arrives there, so the ladder
sends only the PJL identity query (which prints nothing), as nmap's version detection
leaves these ports alone."""
FOLLOW_UP_WAIT = 3.0
"""Seconds for a recognised server to answer its own protocol's probe (an IRC server
finishes looking up the client's name before it answers registration)."""
PARALLEL_PROBES = 4
"""Probes sent at once (each on its own connection) once the likely ones have failed."""
INNER_PROBES = 4
"""Probes tried inside TLS after the greeting and HTTP, each needing a new handshake
(every probe at ``--detect=all``)."""

DETECT_LEVELS = ("light", "normal", "all")
"""How far down the ladder identification goes (nmap's ``--version-intensity``):

- ``light``: listen, the probe likely for the port, TLS (and inside it the greeting and
  HTTP), and the follow-ups of a match; no generic probes. UDP: the probes likely for
  the port, else the first :data:`LIGHT_UDP_PROBES` of the catalogue.
- ``normal`` (the default): and then every generic TCP probe (the API documents only
  after an HTTP answer), :data:`INNER_PROBES` inside TLS; UDP: every probe.
- ``all``: every probe, inside TLS too, and the API documents as generic probes, in
  twice the budget.
"""
_BUDGET_FACTOR = {"light": 1.0, "normal": 1.0, "all": 2.0}
_LEVEL: contextvars.ContextVar[str] = contextvars.ContextVar(
    "portkit_detect_level", default="normal"
)


@contextlib.contextmanager
def detect_level(level: str) -> Iterator[None]:
    """Within the block, :func:`identify` goes as far as ``level`` unless told otherwise.

    How ``portkit scan --detect=LEVEL`` reaches every identification of a scan without
    threading the level through the scan engine. Tasks created inside the block (and the
    scan's, started from it) see it.

    Raises:
        UsageError: ``level`` is not one of :data:`DETECT_LEVELS`.
    """
    token = _LEVEL.set(_checked_level(level))
    try:
        yield
    finally:
        _LEVEL.reset(token)


def current_level() -> str:
    """The level :func:`detect_level` set for this context (``normal`` if none)."""
    return _LEVEL.get()


def _checked_level(level: str) -> str:
    if level not in DETECT_LEVELS:
        raise UsageError(f"detect level must be light, normal or all, not {level!r}")
    return level


async def identify(
    host: str,
    port: int,
    *,
    transport: str = "tcp",
    expected: str | None = None,
    budget: float | None = None,
    level: str | None = None,
) -> Identification:
    """Find out what answers on ``host``:``port``.

    Args:
        host: an address or name (names are resolved by the connection itself).
        port: the port, 1-65535.
        transport: ``"tcp"`` or ``"udp"``.
        expected: the registry's service name for the port, to try its probes first.
        budget: seconds the whole identification may take (default
            :data:`DEFAULT_BUDGET`, twice that at level ``all``).
        level: how far down the ladder to go, one of :data:`DETECT_LEVELS` (default:
            the :func:`detect_level` in force, else ``normal``).

    Returns:
        The :class:`Identification`; ``service`` is ``None`` when nothing matched, with
        the first bytes the server sent as ``evidence``.

    Raises:
        ConnectionRefused: nothing listens (TCP), or the port is closed (UDP, ICMP).
        ConnectTimeout: the first TCP connection was not accepted in time.
        NetworkError: another connection failure.
        UsageError: a port, transport, budget or level out of range.
    """
    if transport not in ("tcp", "udp"):
        raise UsageError(f"transport must be tcp or udp, not {transport!r}")
    if not 0 < port <= 65535:
        raise UsageError(f"port must be 1-65535, not {port}")
    level, deadline = _level_and_deadline(level, budget)
    if transport == "udp":
        return await identify_udp(host, port, expected, deadline, light=level == "light")
    ladder = Ladder(host=host, port=port, expected=expected, deadline=deadline, level=level)
    return await _identify_tcp(ladder)


def _level_and_deadline(level: str | None, budget: float | None) -> tuple[str, float]:
    level = _LEVEL.get() if level is None else _checked_level(level)
    if budget is None:
        budget = DEFAULT_BUDGET * _BUDGET_FACTOR[level]
    if not budget > 0:
        raise UsageError(f"budget must be positive, not {budget}")
    return level, asyncio.get_running_loop().time() + budget


async def _identify_tcp(ladder: Ladder) -> Identification:
    try:
        found = await _climb(ladder)
    except Closed:
        found = None  # the budget ran out or the server stopped accepting
    if found is not None:
        if found.tls is None and found.service in STARTTLS_PROTOCOLS:
            # The plain protocol may offer TLS: its certificate is worth recording.
            tls = await _starttls(ladder, found.service)
            if tls is not None:
                found = replace(found, tls=tls)
        return found
    return Identification(
        service=None,
        extra=ladder.unknown(),
        evidence=ladder.evidence,
        confidence=0,
    )


async def _starttls(ladder: Ladder, protocol: str) -> TlsInfo | None:
    """On a new connection, walk ``protocol``'s STARTTLS dialogue; what TLS showed, or None.

    None when the server refuses, does not answer in time, or the budget is spent: the
    identification already made stands either way.
    """
    try:
        chan = await ladder.connect()
    except Closed:
        return None
    dialogue = StartTlsClient(protocol, client_name="portkit.invalid")
    try:
        while True:
            if out := dialogue.data_to_send():
                await chan.send(out)
            if dialogue.receive(await chan.recv(ladder.phase_deadline(PROBE_WAIT))):
                break
        return await chan.start_tls(
            server_hostname(ladder.host),
            ladder.phase_deadline(PROBE_WAIT),
            ladder.phase_deadline(TLS_TIMEOUT),
        )
    except (TimeoutError, Closed, RemoteProtocolError):
        return None
    finally:
        await chan.close()


async def _climb(ladder: Ladder) -> Identification | None:
    """Walk the TCP ladder; ``None`` when nothing matched."""
    expected = ladder.expected
    raw_printing = ladder.port in RAW_PRINTING_PORTS
    tls_first = wants_tls_first(expected) and not raw_printing
    speaks_first = expected is not None and expected.lower() in SPEAKS_FIRST
    first: Probe | None = None  # the probe sent on the first connection
    chan = await ladder.connect()
    # 1. Listen: a server that speaks first identifies itself. On a TLS port the first
    #    bytes are ours (the ClientHello), so the handshake is the first step there.
    if tls_first:
        found = await _try_tls(ladder, chan)
        if found is not None:
            return await _follow_up(ladder, found)
    else:
        first = probes_for(expected)[0] if expected else HTTP_GET
        if raw_printing:
            first = PJL_INFO_ID
        said = b""  # what the server said on this connection before our probe
        try:
            # A greeting is sent on accept, so it arrives before the answer to any probe
            # and is recognised then too: where the registry names a client-first
            # protocol we can probe, the probe goes out at once.
            likely = expected is not None and expected.lower() in first.services
            listen = SPEAKS_FIRST_WAIT if speaks_first else BANNER_WAIT
            if likely and not speaks_first:
                listen = 0.0
            if listen:
                got = await exchange(
                    chan, None, BANNER_MATCHERS, ladder.wait(listen), ladder.deadline
                )
                ladder.note(got.data, eof=got.eof, echo=got.echo)
                if got.match is not None:
                    return await _follow_up(ladder, ladder.result(got.match, "banner", got.data))
                said = got.data
                if got.eof:
                    await chan.close()
                    chan = await ladder.connect()
                    said = b""
            if ladder.evidence and first is HTTP_GET:
                # It greeted us with something we do not know; HTTP will not help. A 220
                # greeting may be SMTP or FTP: EHLO settles it (with the greeting).
                first = SMTP_EHLO
            # 2. The first probe goes on the same connection.
            got = await exchange(
                chan,
                first.build(ladder.host),
                matchers_for(first),
                # A slow application behind the expected protocol gets time to answer;
                # a guess gets the usual wait (an HTTP server answers the next step's
                # ClientHello with an instant 400, so a slow web app is still found).
                ladder.wait(LIKELY_PROBE_WAIT if likely or speaks_first else PROBE_WAIT),
                ladder.deadline,
                own=len(first.matchers),
                carry=said,
            )
        finally:
            await chan.close()
        ladder.note(got.data, eof=got.eof, echo=got.echo)
        if got.match is not None:
            return await _follow_up(ladder, ladder.result(got.match, first.name, got.data))
        if raw_printing:
            return None  # any other probe, or a ClientHello, would come out of the printer
        # 3. TLS.
        found = await _try_tls(ladder, await ladder.connect())
        if found is not None:
            return await _follow_up(ladder, found)
    # 4. The remaining probes, each on a connection of its own, a few at a time: a server
    #    that ignores what it does not understand costs one wait per few probes, not one
    #    per probe. The API documents (GET /version, ...) are not among them: they follow
    #    an HTTP answer (step 2's follow-up), and a server that did not answer GET / will
    #    not answer them either. Where the registry expects etcd, Docker, Kubernetes or
    #    Consul, its document was step 2.
    if ladder.level == "light":
        return None
    remaining = [
        p
        for p in probes_for(expected)
        if p is not first and (p not in API_DOCUMENTS or ladder.level == "all")
    ]
    return await _first_match(ladder, remaining)


async def _first_match(
    ladder: Ladder, probes: list[Probe], tls: TlsInfo | None = None
) -> Identification | None:
    """Run ``probes``, :data:`PARALLEL_PROBES` at a time, in order; the first match wins.

    A sliding window, not batches: a probe that ends early (the server closed, or its
    matchers all said no) makes room for the next at once, so a server that hangs up on
    what it does not understand does not hold the ladder for the slowest of a batch.
    The order is a priority: a match wins only once every earlier probe has ended
    without one, so a server that answers two probes (Dante answers SOCKS 5 and SOCKS 4)
    is named by the earlier, whichever answer arrives first. Once something matched, no
    new probe starts and the later ones still running are stopped; every probe has ended
    (and closed its connection) when this returns. With ``tls`` (the handshake that
    showed TLS on this port) each probe goes inside a handshake of its own.
    """
    slots = asyncio.Semaphore(PARALLEL_PROBES)
    running: dict[int, asyncio.Task[None]] = {}
    best: tuple[int, Identification] | None = None  # the earliest match so far

    async def run(index: int, probe: Probe) -> None:
        nonlocal best
        outcome = await probe_once(ladder, probe, tls=tls is not None)
        if outcome is None:
            return
        ladder.note(outcome.data, eof=outcome.eof, echo=outcome.echo)
        if outcome.match is not None and (best is None or index < best[0]):
            name = named(probe, tls is not None)
            best = (index, ladder.result(outcome.match, name, outcome.data, tls))
            for later, task in list(running.items()):
                if later > index:
                    task.cancel()

    def ended(index: int, _task: asyncio.Task[None]) -> None:
        slots.release()
        running.pop(index, None)

    async with structured() as group:
        for index, probe in enumerate(probes):
            await slots.acquire()
            if best is not None or ladder.remaining() <= 0:
                slots.release()
                break
            task = group.create_task(run(index, probe))
            running[index] = task
            # A task cancelled before it started never runs its own code: its slot is
            # given back when it is done, however it ended.
            task.add_done_callback(functools.partial(ended, index))
    return None if best is None else best[1]


async def _follow_up(ladder: Ladder, found: Identification) -> Identification:
    """Complete a match made by someone else's probe, or one that named no product.

    A plain answer that says "this is a TLS port" (nginx's 400 page) is confirmed with a
    handshake. A server recognised only from its reaction to another protocol's probe
    (RabbitMQ answering an HTTP request with its AMQP header, an IRC server's notices
    before registration) is asked once with its own probe, which names the product. An
    HTTP server that named no product is asked for the documents that name API servers
    (:func:`_api_documents`). A match made inside TLS is followed up inside TLS.
    """
    if found.service is None or ladder.remaining() <= 0:
        return found
    inside = found.tls is not None
    if not inside and wants_tls_first(found.service):
        try:
            within = await _try_tls(ladder, await ladder.connect())
        except Closed:
            return found
        return within if within is not None else found
    service = (plain_name(found.service) or found.service) if inside else found.service
    if service == "consul" and found.version is None:
        return await _api_documents(ladder, found, (HTTP_GET_CONSUL_SELF,))
    if _exporter(found) and found.version is None:
        return await _api_documents(ladder, found, (HTTP_GET_METRICS,))
    if found.product is not None:
        return found
    if service == "http":
        return await _api_documents(ladder, found, API_DOCUMENTS)
    own = next((p for p in TCP_PROBES if service in p.services), None)
    if own is None or found.probe in (own.name, f"tls+{own.name}"):
        return found
    got = await probe_once(ladder, own, wait=FOLLOW_UP_WAIT, tls=inside)
    if got is None or got.match is None or got.match.service != service:
        return found
    better = ladder.result(got.match, named(own, inside), got.data, found.tls)
    return better if better.product or better.version else found


def _exporter(found: Identification) -> bool:
    """A Prometheus exporter, known by its page: its metrics name its version."""
    return found.product is not None and found.product.startswith("Prometheus ")


async def _api_documents(
    ladder: Ladder, found: Identification, probes: tuple[Probe, ...]
) -> Identification:
    """``found`` (HTTP) named better by the server's answer to one of ``probes``.

    etcd, Docker and Kubernetes answer ``GET /`` with a bare 404 and name themselves in
    ``GET /version``; Consul with its web UI on redirects ``/`` to ``/ui/`` and names
    its version in ``GET /v1/agent/self``; a Prometheus exporter's ``GET /metrics``
    holds its version. The documents are asked for at once, each on
    a connection of its own (inside TLS when ``found`` was); the first in ``probes``
    order that names a product wins. Not asked again when ``found`` came from one.
    """
    inside = found.tls is not None
    if found.probe in {named(p, inside) for p in probes}:
        return found
    async with structured() as group:
        asked = [group.create_task(probe_once(ladder, p, tls=inside)) for p in probes]
    for probe, task in zip(probes, asked, strict=True):
        got = task.result()
        if got is None or got.match is None:
            continue
        better = ladder.result(got.match, named(probe, inside), got.data, found.tls)
        # A web server's 404 page for /version says no more than its / did: keep the first.
        if better.product:
            return better
    return found


async def _try_tls(ladder: Ladder, chan: Channel) -> Identification | None:
    """Handshake on ``chan`` (and close it); on success, climb the ladder inside TLS.

    Returns ``None`` when the server is not TLS and its answer matched nothing.
    """
    try:
        info = await chan.start_tls(
            server_hostname(ladder.host),
            ladder.phase_deadline(PROBE_WAIT),
            ladder.phase_deadline(TLS_TIMEOUT),
        )
        if info is None:
            raw = bytes(chan.raw)
            echo = is_echo(chan.hello, raw)
            ladder.note(raw, eof=chan.saw_eof, echo=echo)
            if echo:
                return None
            reader = Reader((MATCHERS["tls"], MATCHERS["http"], *BANNER_MATCHERS))
            reader.feed(raw)
            match = reader.finish()
            if match is None:
                return None
            return ladder.result(match, "tls-handshake", raw)
        return await _inside_tls(ladder, chan, info)
    finally:
        await chan.close()


async def _inside_tls(ladder: Ladder, chan: Channel, info: TlsInfo) -> Identification:
    """The ladder again, inside a completed TLS handshake."""
    plain_expected = ladder.expected
    if plain_expected:
        plain_expected = plain_name(plain_expected) or plain_expected.lower()
    # Inside TLS the same holds: greetings arrive first. Listen only where the registry
    # expects a greeting (imaps, pop3s, submissions, ftps), else ask HTTP at once.
    listen = SPEAKS_FIRST_WAIT if plain_expected in SPEAKS_FIRST else BANNER_WAIT
    if plain_expected is not None and plain_expected in HTTP_GET.services:
        listen = 0.0
    got = Outcome(match=None, data=b"", eof=False)
    if listen:
        got = await exchange(chan, None, BANNER_MATCHERS, ladder.wait(listen), ladder.deadline)
        ladder.note(got.data, eof=got.eof, echo=got.echo)
        if got.match is not None:
            return ladder.result(got.match, "tls+banner", got.data, info)
    if not got.eof:
        got = await exchange(
            chan,
            HTTP_GET.build(ladder.host),
            matchers_for(HTTP_GET),
            ladder.wait(LIKELY_PROBE_WAIT),
            ladder.deadline,
            own=len(HTTP_GET.matchers),
        )
        ladder.note(got.data, eof=got.eof, echo=got.echo)
        if got.match is not None:
            return ladder.result(got.match, "tls+http-get", got.data, info)
    if ladder.level != "light":
        others = [p for p in probes_for(plain_expected) if p is not HTTP_GET]
        if ladder.level == "normal":
            others = [p for p in others if p not in API_DOCUMENTS][:INNER_PROBES]
        found = await _first_match(ladder, others, tls=info)
        if found is not None:
            return found
    h2 = await _alpn_h2(ladder)
    if h2 is not None:
        return Identification(
            service="https",
            tls=h2,
            extra="HTTP/2 only",
            confidence=8,
            probe="tls-alpn-h2",
            evidence=ladder.evidence,
        )
    return Identification(
        service="tls",
        tls=info,
        extra="the protocol inside TLS was not recognised",
        confidence=5,
        probe="tls-handshake",
        evidence=ladder.evidence,
    )


async def _alpn_h2(ladder: Ladder) -> TlsInfo | None:
    """A handshake offering only HTTP/2 (RFC 7301 ALPN ``h2``, RFC 9113 §3.2).

    A server that speaks only HTTP/2 ignores or closes on every HTTP/1 probe; choosing
    ``h2`` when offered names it. The handshake's summary when it did, else None.
    """
    if ladder.remaining() <= 0:
        return None
    try:
        chan = await ladder.connect()
    except Closed:
        return None
    try:
        info = await chan.start_tls(
            server_hostname(ladder.host),
            ladder.phase_deadline(PROBE_WAIT),
            ladder.phase_deadline(TLS_TIMEOUT),
            alpn=("h2",),
        )
    finally:
        await chan.close()
    return info if info is not None and info.alpn == "h2" else None


# Registry names that are another port's name for the same protocol.
_PROTOCOL_OF = {
    "http-alt": "http",
    "http-proxy": "http",
    "www": "http",
    "www-http": "http",
    "webcache": "http",
    "https-alt": "https",
    "submission": "smtp",
    "smtps": "submissions",
    "dns": "domain",
    "memcached": "memcache",
    "vnc": "rfb",
    "rdp": "ms-wbt-server",
    "smb": "microsoft-ds",
    "postgres": "postgresql",
    "mariadb": "mysql",
    "mqtts": "secure-mqtt",
    "sunrpc": "rpcbind",
}


def same_protocol(expected: str | None, found: str | None) -> bool | None:
    """Whether the registry's ``expected`` service is the protocol that ``found`` names.

    ``None`` when there is nothing to compare (no registry entry, or nothing identified).
    ``submission`` (587) and ``smtp`` are the same protocol; ``https`` and ``http`` are not
    (one is inside TLS).
    """
    if expected is None or found is None:
        return None
    a, b = expected.lower(), found.lower()
    return _PROTOCOL_OF.get(a, a) == _PROTOCOL_OF.get(b, b)


async def probe_port(
    host: str,
    port: int,
    *,
    transport: str = "tcp",
    expected: str | None = None,
    budget: float | None = None,
    level: str | None = None,
) -> PortResult:
    """Identify what answers on ``host``:``port`` and report it as a :class:`PortResult`.

    Unlike :func:`identify`, a refused or silent port is a result (closed, filtered), not
    an error; ``rtt`` is the TCP connect time of the first connection.
    """
    started = time.perf_counter()
    try:
        if transport == "udp":
            found = await identify(
                host, port, transport="udp", expected=expected, budget=budget, level=level
            )
            state = PortState.OPEN if found.service or found.evidence else PortState.OPEN_FILTERED
            reason = "udp-response" if found.evidence else "no-response"
            return PortResult(
                host=host, port=port, transport="udp", state=state, reason=reason,
                expected=expected, identified=found,
            )  # fmt: skip
        level, deadline = _level_and_deadline(level, budget)
        ladder = Ladder(host=host, port=port, expected=expected, deadline=deadline, level=level)
        found = await _identify_tcp(ladder)
    except ConnectionRefused:
        closed = "port-unreach" if transport == "udp" else "conn-refused"
        return PortResult(
            host=host, port=port, transport=transport, state=PortState.CLOSED, reason=closed,
            expected=expected, rtt=time.perf_counter() - started,
        )  # fmt: skip
    except ConnectTimeout:
        return PortResult(
            host=host, port=port, transport=transport, state=PortState.FILTERED,
            reason="no-response", expected=expected,
        )  # fmt: skip
    return PortResult(
        host=host, port=port, transport="tcp", state=PortState.OPEN, reason="syn-ack",
        expected=expected, rtt=ladder.rtt, identified=found,
    )  # fmt: skip
