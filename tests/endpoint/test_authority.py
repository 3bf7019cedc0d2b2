"""host:port written one way everywhere: IPv6 addresses bracketed (RFC 3986 section 3.2.2)."""

from __future__ import annotations

import pytest

from portkit.endpoint import bracket_host, host_port, parse_endpoint


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 80, "127.0.0.1:80"),
        ("example.org", 8080, "example.org:8080"),
        ("::1", 8080, "[::1]:8080"),
        ("fe80::1%eth0", 22, "[fe80::1%eth0]:22"),
        ("[::1]", 443, "[::1]:443"),  # already bracketed: not twice
    ],
)
def test_host_port(host: str, port: int, expected: str) -> None:
    assert host_port(host, port) == expected


def test_bracket_host_leaves_names_and_ipv4_alone() -> None:
    assert bracket_host("localhost") == "localhost"
    assert bracket_host("10.0.0.1") == "10.0.0.1"
    assert bracket_host("2001:db8::1") == "[2001:db8::1]"


@pytest.mark.parametrize("text", ["[::1]:8080", "127.0.0.1:8080", "localhost:8080"])
def test_what_is_written_parses_back(text: str) -> None:
    endpoint = parse_endpoint(text)
    assert host_port(endpoint.host, endpoint.port) == endpoint.authority == text
