"""Every matcher against what real daemons answered (captured by lab/capture-fixtures.py).

Each fixture is judged twice, all bytes at once and one byte at a time, and must give the
same verdict; the verdict must agree with what the server is known to be (the lab's
ground truth, or the capture script's daemon table), and no other matcher may claim it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from portkit.proto import MATCHERS, TLS_SERVICES, Match, Reader

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST: dict[str, dict[str, Any]] = json.loads((FIXTURES / "manifest.json").read_text())
PLAIN = {tls: plain for plain, tls in TLS_SERVICES.items()}

# One matcher per transport answers for a service.
UDP_MATCHERS = (
    "dns-udp", "ntp", "snmp", "sip", "memcached-udp", "tftp", "stun", "coap", "netbios-ns", "radius", "mdns", "ike",
    "ssdp", "quic", "dtls", "llmnr", "rpcbind-udp",
)  # fmt: skip


def _candidates(entry: dict[str, Any]) -> tuple[Any, ...]:
    names = [n for n in MATCHERS if (n in UDP_MATCHERS) == (entry["transport"] == "udp")]
    return tuple(MATCHERS[n] for n in names)


def _at_once(data: bytes, entry: dict[str, Any]) -> Match | None:
    reader = Reader(_candidates(entry))
    return reader.feed(data) or reader.finish()


def _byte_by_byte(data: bytes, entry: dict[str, Any]) -> Match | None:
    reader = Reader(_candidates(entry))
    for i in range(len(data)):
        found = reader.feed(data[i : i + 1])
        if found is not None:
            return found
    return reader.finish()


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_fixture_identifies_the_real_server(name: str) -> None:
    entry = MANIFEST[name]
    data = (FIXTURES / f"{name}.bin").read_bytes()
    found = _at_once(data, entry)
    assert found is not None, f"nothing matched {data[:80]!r}"
    # Inside TLS the matcher sees the plain protocol; the ladder adds the TLS name.
    service = PLAIN.get(entry["service"], entry["service"]) if entry["tls"] else entry["service"]
    assert found.service == service
    if entry["product"]:
        assert found.product is not None
        assert entry["product"].lower() in found.product.lower()
    if entry["version"]:
        assert found.version == entry["version"]
    assert found.confidence >= 8


# A UDP datagram arrives whole, so only stream fixtures can arrive a byte at a time.
@pytest.mark.parametrize("name", sorted(n for n, e in MANIFEST.items() if e["transport"] == "tcp"))
def test_fixture_byte_by_byte_gives_the_same_verdict(name: str) -> None:
    entry = MANIFEST[name]
    data = (FIXTURES / f"{name}.bin").read_bytes()
    assert _byte_by_byte(data, entry) == _at_once(data, entry)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_no_other_matcher_claims_the_fixture(name: str) -> None:
    entry = MANIFEST[name]
    data = (FIXTURES / f"{name}.bin").read_bytes()
    claims = {
        m.name: verdict for m in _candidates(entry) if isinstance(verdict := m(data, True), Match)
    }
    assert len(claims) == 1, claims


def test_fixtures_cover_the_lab_and_more() -> None:
    services = {e["service"] for e in MANIFEST.values()}
    lab = {"ftp", "ssh", "telnet", "smtp", "domain", "http", "https", "pop3", "imap", "imaps",
           "pop3s", "redis", "memcache", "submissions"}  # fmt: skip
    more = {"postgresql", "mysql", "mqtt", "ldap", "snmp", "ntp", "rfb", "ms-wbt-server",
            "microsoft-ds", "amqp"}  # fmt: skip
    assert lab <= services
    assert more <= services
