"""The asynchronous resolve step, against the system resolver (loopback names only) and a
real DNS server (dnsmasq on 127.0.0.1) for SRV records."""

import ipaddress
import re
import socket

import pytest

from portkit import EndpointError, ResolveError
from portkit.endpoint import Address, Resolution, SrvRecord, parse_endpoint, resolve, srv_name
from portkit.registry import default_registry
from tests.endpoint.dnsmasq import DnsServer


async def resolve_srv(text: str, dns_server: DnsServer) -> Resolution:
    """Only the SRV step for ``text``, asked of the test's DNS server."""
    return await resolve(
        parse_endpoint(text),
        addresses=False,
        srv=True,
        nameserver=dns_server.host,
        nameserver_port=dns_server.port,
    )


async def test_ipv4_literal() -> None:
    r = await resolve(parse_endpoint("http://127.0.0.1:8080/"))
    assert r.addresses == (Address(family="ipv4", address="127.0.0.1", port=8080),)
    assert r.srv == ()
    assert r.srv_name is None


async def test_ipv6_literal() -> None:
    r = await resolve(parse_endpoint("[::1]:2222"))
    assert r.addresses == (Address(family="ipv6", address="::1", port=2222),)


async def test_localhost_resolves_to_loopback() -> None:
    r = await resolve(parse_endpoint("localhost:ssh"))
    assert r.addresses
    assert {a.port for a in r.addresses} == {22}
    assert all(ipaddress.ip_address(a.address).is_loopback for a in r.addresses)
    assert len({(a.family, a.address) for a in r.addresses}) == len(r.addresses)  # no repeats


async def test_addresses_use_the_endpoint_transport() -> None:
    endpoint = parse_endpoint("127.0.0.1:domain")
    r = await resolve(endpoint)
    assert r.addresses == (Address(family="ipv4", address="127.0.0.1", port=53),)


def test_srv_name() -> None:
    assert srv_name(parse_endpoint("imaps://mail.example.test")) == "_imaps._tcp.mail.example.test"
    assert srv_name(parse_endpoint("example.test:submissions")) == (
        "_submissions._tcp.example.test"
    )
    assert srv_name(parse_endpoint("smtps://example.test")) == "_submissions._tcp.example.test"


@pytest.mark.parametrize("text", ["imaps://127.0.0.1", "[::1]:imaps"])
async def test_srv_needs_a_domain(text: str) -> None:
    with pytest.raises(EndpointError, match="needs a domain name"):
        await resolve(parse_endpoint(text), srv=True)


async def test_srv_needs_a_service() -> None:
    registry = default_registry()
    unnamed = next(p for p in range(49151, 65536) if registry.service_name(p, "tcp") is None)
    endpoint = parse_endpoint(f"example.test:{unnamed}")
    assert endpoint.service is None
    with pytest.raises(EndpointError, match="no service name"):
        # fails before any query is sent
        await resolve(endpoint, addresses=False, srv=True, nameserver="127.0.0.1")


def test_srv_name_of_an_unregistered_scheme_is_the_scheme() -> None:
    assert srv_name(parse_endpoint("foo://example.test:5")) == "_foo._tcp.example.test"


async def test_srv_records_from_a_real_dns_server(dns_server: DnsServer) -> None:
    r = await resolve_srv("imaps://example.test", dns_server)
    assert r.srv_name == "_imaps._tcp.example.test"
    assert r.addresses == ()
    # lowest priority first; among equals the heavier weight first
    assert r.srv == (
        SrvRecord(priority=10, weight=50, port=993, target="mail2.example.test"),
        SrvRecord(priority=10, weight=5, port=993, target="mail.example.test"),
        SrvRecord(priority=20, weight=1, port=1993, target="backup.example.test"),
    )


async def test_srv_for_a_scheme_alias(dns_server: DnsServer) -> None:
    r = await resolve_srv("smtps://example.test", dns_server)
    assert r.srv == (SrvRecord(priority=0, weight=0, port=465, target="smtp.example.test"),)


async def test_no_srv_records_is_an_empty_answer(dns_server: DnsServer) -> None:
    r = await resolve_srv("pop3s://example.test", dns_server)
    assert r.srv_name == "_pop3s._tcp.example.test"
    assert r.srv == ()


async def test_a_silent_nameserver_is_a_resolve_error() -> None:
    # A loopback port with nothing listening: the query is refused or times out.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but never answering
        with pytest.raises(ResolveError, match=re.escape("_imaps._tcp.example.test")):
            await resolve(
                parse_endpoint("imaps://example.test"),
                addresses=False,
                srv=True,
                nameserver="127.0.0.1",
                nameserver_port=port,
                lookup_timeout=0.5,
            )


async def test_scoped_link_local_literal() -> None:
    r = await resolve(parse_endpoint("[fe80::1%lo]:22"))
    assert [(a.family, a.port) for a in r.addresses] == [("ipv6", 22)]
    assert r.addresses[0].address.startswith("fe80::1")


async def test_text_is_parsed_first() -> None:
    # The top-level API takes what a user would type, as the CLI does.
    import portkit

    r = await portkit.resolve("http://localhost:8080/")
    assert r.endpoint.port == 8080
    assert r.endpoint.scheme == "http"
    assert {a.port for a in r.addresses} == {8080}
    with pytest.raises(EndpointError, match="99999"):
        await resolve("http://h:99999/")
