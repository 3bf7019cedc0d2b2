"""The transport written into an endpoint: ``host:port/udp``, ``host:service/udp``, ``udp://``."""

import pytest

from portkit import EndpointError
from portkit.endpoint import parse_endpoint, parse_host_service


@pytest.mark.parametrize(
    ("text", "port", "transport", "service"),
    [
        ("127.0.0.1:53/udp", 53, "udp", "domain"),
        ("127.0.0.1:53/UDP", 53, "udp", "domain"),
        ("127.0.0.1:53/tcp", 53, "tcp", "domain"),
        ("127.0.0.1:53", 53, "tcp", "domain"),
        ("[::1]:5353/udp", 5353, "udp", "mdns"),
        ("ntp.example:ntp/udp", 123, "udp", "ntp"),
        ("udp://127.0.0.1:9", 9, "udp", None),
        ("tcp://127.0.0.1:7", 7, "tcp", None),
        ("udp://[::1]:514/", 514, "udp", None),
    ],
)
def test_transport_forms(text: str, port: int, transport: str, service: str | None) -> None:
    endpoint = parse_endpoint(text)
    assert (endpoint.port, endpoint.transport, endpoint.service) == (port, transport, service)
    expected_source = "registry" if service == "ntp" else "explicit"
    assert endpoint.port_source == expected_source


def test_two_argument_form_takes_a_transport() -> None:
    endpoint = parse_host_service("127.0.0.1", "53/udp")
    assert (endpoint.port, endpoint.transport) == (53, "udp")


@pytest.mark.parametrize(
    ("text", "quoted"),
    [
        ("udp://127.0.0.1", "udp://127.0.0.1"),
        ("udp://127.0.0.1:70000", "70000"),
        ("h:53/sctp", "h:53/sctp"),
        ("h:nosuchservice/udp", "nosuchservice"),
    ],
)
def test_bad_transport_forms_quote_the_input(text: str, quoted: str) -> None:
    with pytest.raises(EndpointError) as info:
        parse_endpoint(text)
    assert quoted in str(info.value)
