"""Follow-ups of a match that named no product, on real listeners on loopback.

- an HTTPS server with a bare 404 at ``/`` and etcd's ``/version`` (the real etcd's
  answer, captured) is named etcd: the document is asked for inside TLS;
- Consul with its web UI on redirects ``/`` to ``/ui/``; its ``/v1/agent/self`` names it
  and its version;
- an IRC server that greets with notices at once and answers registration only after
  its hostname lookup (more than a probe's usual wait) is named with its product;
- a RADIUS server that holds its Access-Reject back a second (FreeRADIUS's
  ``reject_delay``) is named over UDP.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

from aiohttp import web

from portkit.scan import Identification, identify

from ._servers import drain_until_eof, self_signed_context, serve

HOST = "127.0.0.1"
FIXTURES = Path(__file__).resolve().parents[1] / "proto" / "fixtures"


async def _bounded(port: int, **kw: object) -> Identification:
    async with asyncio.timeout(15):
        return await identify(HOST, port, **kw)  # type: ignore[arg-type]


@asynccontextmanager
async def _site(app: web.Application, **kw: object) -> AsyncIterator[int]:
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0, **kw)  # type: ignore[arg-type]
    await site.start()
    try:
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


def _bare(app: web.Application) -> web.Application:
    """No ``Server`` header (etcd and Consul send none), as the real servers answer."""

    async def strip(request: web.Request, response: web.StreamResponse) -> None:
        del response.headers["Server"]

    app.on_response_prepare.append(strip)
    return app


async def test_version_document_inside_tls_names_etcd(tmp_path: Path) -> None:
    captured = (FIXTURES / "etcd-client-2379-tcp-etcd.bin").read_bytes()
    document = captured.partition(b"\r\n\r\n")[2]
    assert json.loads(document)["etcdserver"]  # the real etcd's /version body

    async def version(request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    app = _bare(web.Application())
    app.router.add_get("/version", version)
    async with _site(app, ssl_context=self_signed_context(tmp_path)) as port:
        found = await _bounded(port)
    assert (found.service, found.product) == ("etcd-client", "etcd")
    assert found.version == json.loads(document)["etcdserver"]
    assert found.tls is not None
    assert found.probe == "tls+http-get-version"


async def test_consul_with_its_ui_on_is_named_by_its_agent_document() -> None:
    async def root(request: web.Request) -> web.Response:
        # Consul's agent with the UI on: a redirect and nothing that names it.
        raise web.HTTPMovedPermanently("/ui/")

    async def agent_self(request: web.Request) -> web.Response:
        doc = {
            "Config": {"Datacenter": "dc1", "NodeName": "lab", "Version": "1.15.4"},
            "Member": {"Name": "lab"},
        }
        return web.json_response(doc, headers={"X-Consul-Default-Acl-Policy": "allow"})

    app = _bare(web.Application())
    app.router.add_get("/", root)
    app.router.add_get("/v1/agent/self", agent_self)
    async with _site(app) as port:
        found = await _bounded(port)
    assert (found.service, found.product, found.version) == ("consul", "Consul", "1.15.4")
    assert found.probe == "http-get-consul-self"


async def test_a_slow_irc_registration_still_names_the_product() -> None:
    registered = (FIXTURES / "irc-6669-tcp-inspircd-registered.bin").read_bytes()
    notice, _, welcome = registered.partition(b"\r\n")

    async def inspircd(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(notice + b"\r\n")  # at once, as InspIRCd starts its lookups
        await writer.drain()
        if await reader.read(512):
            await asyncio.sleep(1.2)  # the hostname lookup times out first
            writer.write(welcome)
            await writer.drain()
        await drain_until_eof(reader)

    async with serve(inspircd) as port:
        found = await _bounded(port)
    assert (found.service, found.product, found.version) == ("irc", "InspIRCd", "3")


class _SlowRadius(asyncio.DatagramProtocol):
    """Rejects every Access-Request a second late, echoing its Identifier."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if data[:1] == b"\x01":  # RFC 2865 §4.1: Access-Request
            reject = b"\x03" + data[1:2] + (20).to_bytes(2, "big") + bytes(16)
            asyncio.get_running_loop().call_later(1.0, self.transport.sendto, reject, addr)


async def test_a_late_radius_reject_is_named() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(_SlowRadius, sock=sock)
    try:
        found = await _bounded(sock.getsockname()[1], transport="udp")
    finally:
        transport.close()
    assert found.service == "radius"
    assert found.extra == "Access-Reject"
