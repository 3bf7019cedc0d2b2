"""A server's words never reach the terminal raw: table, grep and ``probe`` escape them.

The server is real (a listener on loopback) and hostile: its SSH identification string
carries a control character, a colour change and a window-title sequence. The human
outputs show them as ``\\x01``, ``\\x1b``; JSON keeps the exact value; nmap XML stays
well-formed XML 1.0.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.cli.test_probe import run_cli
from tests.scan._servers import greeter, self_signed_context, serve

HOST = "127.0.0.1"
SOFTWARE = "Open\x01\x1b[31mSSH_9.9\x1b]0;owned\x07"
BANNER = f"SSH-2.0-{SOFTWARE} evil\x1b[2J\r\n".encode()


def _raw_free(text: str) -> None:
    for char in ("\x01", "\x1b", "\x07"):
        assert char not in text, repr(text)


@pytest.mark.parametrize("form", ["table", "grep"])
async def test_scan_human_outputs_escape_the_banner(form: str) -> None:
    async with serve(greeter(BANNER)) as port:
        code, out, err = await run_cli("scan", HOST, "-p", str(port), "--detect", "-o", form)
    assert code == 0, err
    _raw_free(out)
    assert "Open\\x01\\x1b[31mSSH" in out  # shown, escaped, not dropped


async def test_scan_json_keeps_the_exact_value_and_xml_stays_valid() -> None:
    async with serve(greeter(BANNER)) as port:
        code, out, err = await run_cli("scan", HOST, "-p", str(port), "--detect", "-o", "json")
        assert code == 0, err
        code, xml_out, err = await run_cli("scan", HOST, "-p", str(port), "--detect", "-o", "xml")
        assert code == 0, err
    (found,) = json.loads(out)["hosts"][0]["ports"]
    assert found["identified"]["service"] == "ssh"
    assert "\x1b[31m" in found["identified"]["product"]  # machine formats: exact
    service = ET.fromstring(xml_out).find("host/ports/port/service")  # parses: valid XML
    assert service is not None
    assert service.get("name") == "ssh"
    product = service.get("product") or ""
    # ESC and the other C0 controls cannot be in XML 1.0 at all: written as \\xNN.
    assert "\\x1b[31m" in product
    _raw_free(product)


async def test_probe_escapes_the_banner() -> None:
    async with serve(greeter(BANNER)) as port:
        code, out, err = await run_cli("probe", f"{HOST}:{port}")
    assert code == 0, err
    _raw_free(out)
    assert "Open\\x01\\x1b[31mSSH" in out
    assert "evil\\x1b[2J" in out


async def test_probe_escapes_certificate_fields(tmp_path: Path) -> None:
    name = "evil\x1b]0;owned\x07.test"
    context = self_signed_context(tmp_path, name)  # the CN and a SAN carry the sequence
    banner = b"SSH-2.0-OpenSSH_9.2p1\r\n"
    async with serve(greeter(banner), tls=context) as port:
        code, out, err = await run_cli("probe", f"{HOST}:{port}")
        assert code == 0, err
        json_code, json_out, err = await run_cli("probe", f"{HOST}:{port}", "--json")
    assert json_code == 0, err
    _raw_free(out)
    assert "evil\\x1b]0;owned\\x07.test, 127.0.0.1" in out  # the names, escaped
    tls = json.loads(json_out)["identified"]["tls"]
    assert name in tls["subject_alt_names"]  # JSON: exact
