"""The registry shipped with portkit: contents, conventions and lookups."""

from __future__ import annotations

import pytest

from portkit import LookupNotFound
from portkit.registry import Registry, default_registry, load_registry


@pytest.fixture(scope="module")
def reg() -> Registry:
    return load_registry(use_cache=False)


def test_holds_every_iana_entry(reg: Registry) -> None:
    assert len(reg) > 10_000
    assert reg.info.entries == len(reg)
    assert "port-numbers" in reg.info.source


@pytest.mark.parametrize(
    ("port", "transport", "name"),
    [
        (21, "tcp", "ftp"),
        (22, "tcp", "ssh"),
        (23, "tcp", "telnet"),
        (25, "tcp", "smtp"),
        (53, "tcp", "domain"),
        (53, "udp", "domain"),
        (80, "tcp", "http"),
        (109, "tcp", "pop2"),
        (110, "tcp", "pop3"),
        (143, "tcp", "imap"),
        (220, "tcp", "imap3"),
        (443, "tcp", "https"),
        (993, "tcp", "imaps"),
        (995, "tcp", "pop3s"),
        (8080, "tcp", "http-alt"),
        (6379, "tcp", "redis"),
    ],
)
def test_conventional_primary_name(reg: Registry, port: int, transport: str, name: str) -> None:
    assert reg.service_name(port, transport) == name


def test_well_known_ports_have_plain_language(reg: Registry) -> None:
    expectations = {
        23: "login",
        22: "secure login",
        80: "world wide web",
        443: "secure web",
        25: "incoming mail",
        143: "mail retrieval",
        220: "mail retrieval",
        993: "mail retrieval",
        109: "mail retrieval",
        110: "mail retrieval",
        53: "domain name resolution",
        21: "file transfer",
    }
    for port, words in expectations.items():
        first = reg.by_port(port, "tcp")[0]
        assert words in first.plain.lower(), (port, first.plain)


def test_aliases(reg: Registry) -> None:
    (http,) = reg.by_port(80, "tcp")
    assert http.name == "http"
    assert {"www", "www-http"} <= set(http.aliases)
    (dns,) = reg.by_name("dns", "udp")
    assert dns.name == "domain"
    assert dns.port == 53
    assert reg.by_name("WWW", "tcp")[0].port == 80


def test_range_answers_a_port_inside_it(reg: Registry) -> None:
    (x11,) = reg.by_port(6010, "tcp")
    assert (x11.name, x11.port, x11.port_end) == ("x11", 6000, 6063)
    assert x11.port_text == "6000-6063"
    assert x11.covers(6063)
    assert not x11.covers(6064)


def test_name_only_entries_exist(reg: Registry) -> None:
    name_only = [s for s in reg.services if s.port is None]
    assert len(name_only) > 100
    assert all(s.name for s in name_only)


def test_development_ports_are_labelled(reg: Registry) -> None:
    (first, *_) = reg.by_port(3000, "tcp")
    assert "node" in first.common_use.lower()
    assert first.name == "remoteware-cl"  # IANA's name is kept beside the label
    vite = reg.by_port(5173, "tcp")[0]
    assert "vite" in vite.common_use.lower()
    for port in (4200, 5000, 8000, 8080, 8443, 8888, 9000):
        assert reg.by_port(port, "tcp")[0].common_use, port


def test_related_names(reg: Registry) -> None:
    ports = {s.port for s in reg.by_name("imap")} | {s.port for s in reg.related("imap")}
    assert {143, 220, 993} <= ports


def test_port_for(reg: Registry) -> None:
    assert reg.port_for("imaps") == 993
    assert reg.port_for("HTTPS") == 443
    assert reg.port_for("postgres") == 5432
    with pytest.raises(LookupNotFound, match="unknown service name 'nosuchservice'"):
        reg.port_for("nosuchservice")
    with pytest.raises(LookupNotFound, match="no registered tcp port"):
        reg.port_for("airplay")


def test_transport_filter(reg: Registry) -> None:
    assert {s.transport for s in reg.by_port(53)} >= {"tcp", "udp"}
    assert {s.transport for s in reg.by_port(53, "udp")} == {"udp"}
    with pytest.raises(LookupNotFound, match="transport must be one of"):
        reg.by_port(53, "quic")


def test_search(reg: Registry) -> None:
    names = {s.name for s in reg.search("mail retrieval")}
    assert {"pop3", "imap", "imaps"} <= names
    with pytest.raises(LookupNotFound):
        reg.search("   ")


def test_in_range(reg: Registry) -> None:
    names = {s.name for s in reg.in_range(20, 25, "tcp")}
    assert {"ftp-data", "ftp", "ssh", "telnet", "smtp"} <= names


def test_default_registry_is_cached() -> None:
    assert default_registry() is default_registry()
