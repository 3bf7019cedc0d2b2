"""connect and probe describe one certificate the same way (one summary function)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from portkit.client import converse, tls_context
from portkit.scan import identify
from tests._tls import self_signed_cert, server_tls_context
from tests.client.helpers import echo_server


async def _quit() -> AsyncIterator[bytes]:
    yield b"QUIT\n"


async def test_connect_reports_names_and_validity_as_probe_does(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path, "summary.test")
    async with echo_server(tls=server_tls_context(cert, key)) as server:
        result = await converse(
            "127.0.0.1",
            server.port,
            _quit(),
            bytearray().extend,
            tls=tls_context(cafile=str(cert)),
            server_hostname="summary.test",
        )
        found = await identify("127.0.0.1", server.port, budget=5.0)
    connected, probed = result.tls, found.tls
    assert connected is not None
    assert probed is not None
    assert connected.subject == "CN=summary.test"
    assert connected.subject_alt_names == ("summary.test", "127.0.0.1")
    assert connected.not_before is not None
    assert connected.not_after is not None
    assert connected.not_before < connected.not_after
    # The certificate reads the same in both; the handshakes may differ (ALPN offered).
    fields = ("subject", "issuer", "not_before", "not_after", "self_signed", "subject_alt_names")
    assert [getattr(connected, f) for f in fields] == [getattr(probed, f) for f in fields]
