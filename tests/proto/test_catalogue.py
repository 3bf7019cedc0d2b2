"""The catalogue that joins the protocol modules: names, probe order, TLS names."""

from __future__ import annotations

from portkit.proto import (
    BANNER_MATCHERS,
    MATCHERS,
    TCP_PROBES,
    UDP_PROBES,
    NoMatch,
    matchers_for,
    plain_name,
    probes_for,
    tls_name,
    udp_payload,
    wants_tls_first,
)


def test_every_probe_names_known_matchers() -> None:
    for probe in (*TCP_PROBES, *UDP_PROBES):
        assert probe.matchers, probe.name
        for name in probe.matchers:
            assert name in MATCHERS, (probe.name, name)


def test_every_matcher_is_reachable() -> None:
    used = {m.name for p in (*TCP_PROBES, *UDP_PROBES) for m in matchers_for(p)}
    used |= {m.name for m in BANNER_MATCHERS} | {"tls"}  # tls judges failed handshakes
    assert used == set(MATCHERS)


def test_probe_payloads_are_bytes_and_name_the_host_where_needed() -> None:
    for probe in (*TCP_PROBES, *UDP_PROBES):
        payload = probe.build("example.test")
        assert isinstance(payload, bytes)
        assert payload
    http = next(p for p in TCP_PROBES if p.name == "http-get")
    assert b"Host: example.test\r\n" in http.build("example.test")
    assert b"Host: [::1]\r\n" in http.build("::1")


def test_the_expected_services_probe_comes_first() -> None:
    assert probes_for("redis")[0].name == "redis-ping"
    assert probes_for("postgresql")[0].name == "postgresql-startup"
    assert probes_for("domain", "udp")[0].name == "dns-version-udp"
    assert probes_for("snmp", "udp")[0].name.startswith("snmp-")
    # A TLS service's plain protocol decides: ldaps tries the LDAP probe first inside.
    assert probes_for("ldaps")[0].name == "ldap-rootdse"
    # Every probe is still tried, once.
    assert sorted(p.name for p in probes_for("redis")) == sorted(p.name for p in TCP_PROBES)


def test_tls_names() -> None:
    assert tls_name("imap") == "imaps"
    assert tls_name("pop3") == "pop3s"
    assert tls_name("smtp") == "submissions"
    assert tls_name("http") == "https"
    assert tls_name("ssh") == "ssh"  # nothing conventional: the name stays
    assert wants_tls_first("imaps")
    assert wants_tls_first("submissions")
    assert not wants_tls_first("imap")
    assert not wants_tls_first(None)


def test_plain_names_of_implicit_tls_services() -> None:
    assert plain_name("imaps") == "imap"
    assert plain_name("https") == "http"
    assert plain_name("submissions") == "smtp"
    assert plain_name("smtps") == "smtp"  # the registry's alias
    assert plain_name("imap") is None  # not a TLS name
    assert plain_name("ssh") is None


def test_udp_scan_payloads_come_from_the_probes_likely_first() -> None:
    by_name = {p.name: p.build("192.0.2.1") for p in UDP_PROBES}
    # The registry's service decides the first datagram; each re-send tries another.
    assert udp_payload("snmp", 0, "192.0.2.1") == by_name["snmp-v3-discovery"]
    assert udp_payload("ntp", 0, "192.0.2.1") == by_name["ntp-client"]
    assert udp_payload("memcache", 0, "192.0.2.1") == by_name["memcached-version-udp"]
    # A port the registry knows nothing of: DNS first, then NTP, ... every probe once.
    sent = [udp_payload(None, attempt, "192.0.2.1") for attempt in range(len(UDP_PROBES))]
    assert sent[0] == by_name["dns-version-udp"]
    assert sent[1] == by_name["ntp-client"]
    assert sorted(sent) == sorted(by_name.values())
    assert udp_payload(None, len(UDP_PROBES), "192.0.2.1") == sent[0]  # and round again
    assert udp_payload("DOMAIN", 0, "192.0.2.1") == by_name["dns-version-udp"]


def test_memcached_udp_needs_its_frame() -> None:
    memcached_udp = MATCHERS["memcached-udp"]
    assert isinstance(memcached_udp(b"VERSION 1.6.18\r\n", True), NoMatch)  # no frame header
    frame = b"pk\x00\x00\x00\x01\x00\x00"
    assert isinstance(
        memcached_udp(frame[:4] + b"\x00\x00" + frame[6:] + b"VERSION 1\r\n", True), NoMatch
    )
