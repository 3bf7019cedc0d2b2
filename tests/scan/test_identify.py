"""The identification ladder against real and hostile servers on loopback.

Each call runs under a hard bound (``budget`` plus slack): finishing is part of the
contract, so an identification that hangs fails the test instead of the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from pathlib import Path

import pytest
from aiohttp import web

from portkit._errors import ConnectionRefused
from portkit.proto import MAX_RESPONSE_BYTES
from portkit.scan import Identification, PortState, identify, probe_port, same_protocol
from portkit.scan._identify import EVIDENCE_BYTES
from tests.scan._servers import (
    FIXTURES,
    HOST,
    drip,
    flood,
    greeter,
    reset,
    self_signed_context,
    serve,
    tarpit,
    tls_garbage,
)

BUDGET = 2.5
SLACK = 3.0  # the bound is for hangs, not for speed


async def bounded_identify(port: int, **kw: object) -> Identification:
    budget = float(kw.pop("budget", BUDGET))  # type: ignore[arg-type]
    host = str(kw.pop("host", HOST))
    async with asyncio.timeout(budget + SLACK):
        return await identify(host, port, budget=budget, **kw)  # type: ignore[arg-type]


async def aiohttp_site(ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello from aiohttp")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, ssl_context=ssl_context)
    await site.start()
    addresses = runner.addresses
    port: int = addresses[0][1]
    return runner, port


async def test_tarpit_is_unknown_within_budget() -> None:
    async with serve(tarpit) as port:
        found = await bounded_identify(port)
    assert found.service is None
    assert found.evidence == b""
    assert found.extra == "no answer to any probe"


async def test_flood_is_unknown_and_reads_are_bounded() -> None:
    async with serve(flood) as port:
        found = await bounded_identify(port)
    assert found.service is None
    assert found.evidence.startswith(b"AAAA")
    assert len(found.evidence) <= EVIDENCE_BYTES < MAX_RESPONSE_BYTES


async def test_drip_of_a_partial_ssh_banner_is_not_called_ssh() -> None:
    # A byte a second: within the budget only "SSH-2.0-..." begins to arrive; a prefix is
    # not a banner, so the honest verdict is unknown, with the bytes as evidence.
    async with serve(drip) as port:
        found = await bounded_identify(port, budget=2.0)
    assert found.service is None
    assert found.evidence.startswith(b"S")
    assert b"\n" not in found.evidence


async def test_reset_at_once_is_unknown() -> None:
    async with serve(reset) as port:
        found = await bounded_identify(port)
    assert found.service is None
    assert found.evidence == b""
    assert found.extra == "the server closes every connection without a word"


async def test_garbage_answer_to_client_hello_is_not_tls() -> None:
    async with serve(tls_garbage) as port:
        found = await bounded_identify(port, expected="https")
    assert found.service is None
    assert found.tls is None
    assert found.evidence.startswith(b"\x17\x99")


async def test_http_server_on_the_ssh_port() -> None:
    runner, port = await aiohttp_site()
    try:
        found = await bounded_identify(port, expected="ssh", budget=4.0)
    finally:
        await runner.cleanup()
    assert found.service == "http"
    assert found.product == "aiohttp"
    assert same_protocol("ssh", found.service) is False


async def test_ssh_on_the_http_port() -> None:
    banner = (FIXTURES / "ssh-22-tcp.bin").read_bytes()
    async with serve(greeter(banner)) as port:
        found = await bounded_identify(port, expected="http")
    assert (found.service, found.product, found.version) == (
        "ssh",
        "OpenSSH",
        "9.2p1 Debian 2+deb12u10",
    )
    assert found.probe in ("banner", "http-get")


async def test_greeting_server_on_an_unknown_port_is_named_from_its_banner() -> None:
    banner = (FIXTURES / "imap-143-tcp.bin").read_bytes()
    async with serve(greeter(banner)) as port:
        found = await bounded_identify(port)
    assert (found.service, found.product, found.probe) == ("imap", "Dovecot imapd", "banner")
    assert found.evidence == banner[:EVIDENCE_BYTES]


async def test_imap_inside_tls_on_an_unknown_port_is_imaps(tmp_path: Path) -> None:
    banner = (FIXTURES / "imaps-993-tcp.bin").read_bytes()
    async with serve(greeter(banner), tls=self_signed_context(tmp_path)) as port:
        found = await bounded_identify(port, budget=4.0)
    assert (found.service, found.product) == ("imaps", "Dovecot imapd")
    assert found.tls is not None
    assert found.tls.subject == "CN=identify.portkit.test"
    assert found.tls.self_signed is True
    assert "127.0.0.1" in found.tls.subject_alt_names
    assert found.tls.version in ("TLSv1.2", "TLSv1.3")


async def test_https_from_aiohttp(tmp_path: Path) -> None:
    runner, port = await aiohttp_site(self_signed_context(tmp_path))
    try:
        found = await bounded_identify(port, expected="https")
    finally:
        await runner.cleanup()
    assert (found.service, found.product, found.probe) == ("https", "aiohttp", "tls+http-get")
    assert found.tls is not None
    assert found.tls.not_after is not None


async def test_refused_port_raises() -> None:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionRefused):
        await bounded_identify(port)
    result = await probe_port(HOST, port, budget=1.0)
    assert (result.state, result.reason) == (PortState.CLOSED, "conn-refused")


async def test_closed_udp_port_is_reported_closed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionRefused):
        await bounded_identify(port, transport="udp")


async def test_silent_udp_port_is_open_filtered() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))  # bound, never answers
        port = sock.getsockname()[1]
        result = await probe_port(HOST, port, transport="udp", budget=1.5)
    assert result.state == PortState.OPEN_FILTERED
    assert result.identified is not None
    assert result.identified.service is None


def test_same_protocol_knows_registry_spellings() -> None:
    assert same_protocol("submission", "smtp") is True
    assert same_protocol("http-alt", "http") is True
    assert same_protocol("https", "http") is False
    assert same_protocol(None, "http") is None


def test_nmap_service_attributes_name_the_tunnel() -> None:
    from portkit.scan import TlsInfo, nmap_service

    imaps = Identification(service="imaps", product="Dovecot imapd", tls=TlsInfo(), confidence=10)
    assert nmap_service(imaps) == {"name": "imap", "tunnel": "ssl", "product": "Dovecot imapd",
                                   "method": "probed", "conf": "10"}  # fmt: skip
    smtps = Identification(service="submissions", tls=TlsInfo(), confidence=10)
    assert nmap_service(smtps)["name"] == "smtp"
    https = Identification(service="https", product="nginx", tls=TlsInfo(), confidence=10)
    assert nmap_service(https)["name"] == "http"
    assert nmap_service(https)["tunnel"] == "ssl"
    bare_tls = Identification(service="tls", tls=TlsInfo(), confidence=6)
    assert (nmap_service(bare_tls)["name"], nmap_service(bare_tls)["tunnel"]) == ("unknown", "ssl")
    # STARTTLS: the protocol keeps its name, and there is no tunnel.
    starttls = Identification(service="smtp", product="Postfix smtpd", tls=TlsInfo(), confidence=10)
    assert "tunnel" not in nmap_service(starttls)
    assert nmap_service(starttls)["name"] == "smtp"
    # Nothing recognised: the port table's guess, as nmap writes it.
    unknown = Identification(service=None, evidence=b"\x00\x01")
    assert nmap_service(unknown) == {"name": "unknown", "method": "table", "conf": "3"}
    assert nmap_service(unknown, "ssh") == {"name": "ssh", "method": "table", "conf": "3"}
    assert nmap_service(None, "ssh") == nmap_service(unknown, "ssh")
    # nmap's probes name these otherwise than the registry (ndiff against nmap -sV).
    memcached = Identification(service="memcache", product="memcached", confidence=10)
    assert nmap_service(memcached)["name"] == "memcached"
    assert nmap_service(Identification(service="rfb", confidence=10))["name"] == "vnc"


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"port": 0}, "port must be 1-65535, not 0"),
        ({"port": 70000}, "not 70000"),
        ({"port": 22, "transport": "sctp"}, "'sctp'"),
        ({"port": 22, "budget": 0}, "budget must be positive"),
    ],
)
async def test_bad_arguments_are_usage_errors(kw: dict[str, object], needle: str) -> None:
    from portkit._errors import UsageError

    with pytest.raises(UsageError, match=needle):
        await identify(HOST, **kw)  # type: ignore[arg-type]


async def test_bare_220_greeting_is_settled_by_ehlo() -> None:
    # aiosmtpd with an ident that names no protocol: only the EHLO answer says SMTP.
    from aiosmtpd.smtp import SMTP

    class Sink:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Sink(), hostname="box", ident="ready"), HOST, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        found = await bounded_identify(port)
    finally:
        server.close()
        await server.wait_closed()
    assert found.service == "smtp"
    assert found.probe == "smtp-ehlo"
    assert found.evidence.startswith(b"220 box ready")


async def test_slow_web_app_on_an_unknown_port() -> None:
    # GET / takes longer than the probe waits; the server's HTTP parser still answers the
    # TLS ClientHello at once with a 400, which names it.
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(text="late")

    app = web.Application()
    app.router.add_get("/", slow)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        found = await bounded_identify(port, budget=4.0)
    finally:
        await runner.cleanup()
    assert (found.service, found.product) == ("http", "aiohttp")
    assert found.probe == "tls-handshake"


async def test_ipv6_loopback() -> None:
    banner = (FIXTURES / "ssh-22-tcp.bin").read_bytes()

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(banner)
        await writer.drain()
        await reader.read(4096)
        writer.close()

    try:
        server = await asyncio.start_server(greet, "::1", 0)
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    port = server.sockets[0].getsockname()[1]
    try:
        found = await bounded_identify(port, host="::1")
    finally:
        server.close()
        await server.wait_closed()
    assert (found.service, found.product) == ("ssh", "OpenSSH")


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send back whatever arrives (bounded reads), like `socat ... EXEC:cat`."""
    while data := await reader.read(4096):
        writer.write(data)
        await writer.drain()


async def test_echo_server_is_unknown_and_said_so() -> None:
    # Our own probes coming back must not be taken for answers (the AMQP header and an
    # SMB NEGOTIATE would otherwise look like a server's).
    async with serve(echo) as port:
        found = await bounded_identify(port, budget=4.0)
    assert found.service is None
    assert found.extra == "the server echoes what it is sent"


async def test_udp_echo_server_is_unknown() -> None:
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.transport.sendto(data, addr)  # type: ignore[attr-defined]

    transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=(HOST, 0))
    port = transport.get_extra_info("sockname")[1]
    try:
        found = await bounded_identify(port, transport="udp")
    finally:
        transport.close()
    assert found.service is None
    assert found.extra == "the server echoes what it is sent"


async def test_udp_identification_takes_answers_from_any_port_of_the_target_only() -> None:
    # A TFTP server answers from a new port (RFC 1350 section 4); another host's
    # datagram that reaches the probing socket is no answer at all.
    from portkit.scan._identify_udp import _UdpProtocol

    proto = _UdpProtocol("::1")
    proto.datagram_received(b"other host", ("::2", 69, 0, 0))
    proto.datagram_received(b"new port", ("0:0::1", 40001, 0, 0))
    proto.datagram_received(b"other v4 host", ("127.0.0.1", 69))
    assert proto.queue.get_nowait() == b"new port"
    assert proto.queue.empty()


async def test_bytes_already_arrived_are_taken_past_the_deadline() -> None:
    # On a busy event loop an answer and its deadline come due in the same turn: the
    # answer, already in the stream's buffer, must win.
    from portkit.scan._channel import Channel

    async with serve(greeter(b"hello\r\n")) as port:
        chan, _rtt = await Channel.open(HOST, port, 2.0)
        try:
            await asyncio.sleep(0.2)  # the greeting reaches the stream's buffer meanwhile
            loop = asyncio.get_running_loop()
            assert await chan.recv(loop.time() - 1.0) == b"hello\r\n"
            with pytest.raises(TimeoutError):
                await chan.recv(loop.time() - 1.0)  # nothing more: the deadline holds
        finally:
            await chan.close()


async def test_generic_ladder_slides_past_a_silent_probe() -> None:
    # A server silent to a Redis PING that hangs up on every other request. While the
    # PING waits out its answer, the probes after it go on (a window, not lockstep
    # batches of PARALLEL_PROBES); GET /version is never sent without an HTTP answer.
    from portkit.scan._identify import PARALLEL_PROBES

    events: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        events.append("open")
        data = await reader.read(4096)
        events.append(data[:16].decode("latin-1"))
        if data.startswith(b"*"):  # RESP, a Redis command
            events.append("silent start")
            with contextlib.suppress(ConnectionError):
                await reader.read()  # until the identifier gives up and closes
            events.append("silent end")

    async with serve(handler) as port:
        found = await identify(HOST, port, budget=6.0)
    assert found.service is None
    during = events[events.index("silent start") : events.index("silent end")]
    assert during.count("open") > 2 * PARALLEL_PROBES, events
    assert not any(e.startswith("GET /version") for e in events), events
