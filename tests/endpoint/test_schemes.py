"""Scheme defaults come from the registry, agree with the URL Standard, and derive TLS."""

import ada_url
import pytest

from portkit import EndpointError, LookupNotFound
from portkit.endpoint import SCHEME_ALIASES, parse_endpoint
from portkit.endpoint._schemes import describes_tls, service_info
from portkit.registry import Registry, RegistryInfo, Service, default_registry


@pytest.mark.parametrize("scheme", ["http", "https", "ws", "wss", "ftp"])
def test_registry_default_is_the_port_the_url_standard_drops(scheme: str) -> None:
    # The registry supplies the number; the URL parser independently drops exactly that
    # port for the special schemes. The two must agree.
    default = service_info(scheme, default_registry()).port
    assert ada_url.parse_url(f"{scheme}://h:{default}/")["port"] == ""
    assert ada_url.parse_url(f"{scheme}://h:{default + 1}/")["port"] == str(default + 1)


@pytest.mark.parametrize("scheme", sorted(SCHEME_ALIASES))
def test_every_alias_names_a_registered_service(scheme: str) -> None:
    info = service_info(scheme, default_registry())
    assert info.service == SCHEME_ALIASES[scheme].service
    assert info.alias is SCHEME_ALIASES[scheme]
    assert parse_endpoint(f"{scheme}://h").port == info.port


def test_aliases_are_not_duplicates_of_registry_aliases() -> None:
    # A map entry is only needed where the registry resolves the name differently
    # (sftp is IANA's unrelated port 115) or not at all (ws, rediss).
    registry = default_registry()
    for scheme, alias in SCHEME_ALIASES.items():
        named = registry.by_name(scheme)
        assert not any(s.name == alias.service for s in named), scheme


def test_unknown_names_raise_lookup_not_found() -> None:
    with pytest.raises(LookupNotFound):
        service_info("no-such-service-here", default_registry())


def test_udp_only_service_gets_udp() -> None:
    # bootps (DHCP, 67) is registered for UDP in practice; find any udp-only service
    # from the registry itself rather than hard-coding one.
    registry = default_registry()
    udp_only = next(
        s.name
        for s in registry.services
        if s.transport == "udp"
        and s.port is not None
        and s.name
        and not registry.by_name(s.name, "tcp")
    )
    info = service_info(udp_only, registry)
    assert info.transport == "udp"
    assert parse_endpoint(f"h:{udp_only}").transport == "udp"


@pytest.mark.parametrize(
    ("description", "tls"),
    [
        ("http protocol over TLS/SSL", True),
        ("IMAP over TLS protocol", True),
        ("SIP-TLS", True),
        ("Oracle GIOP SSL", True),
        ("Calendaring Extensions to WebDAV (CalDAV) - non-TLS", False),
        ("World Wide Web HTTP", False),
        ("DTLS-SRTP", False),
        ("Secure Shell Login", False),
        ("ATLS gateway", False),
    ],
)
def test_tls_is_derived_from_registry_descriptions(description: str, tls: bool) -> None:
    assert describes_tls(description) is tls


def _tiny_registry() -> Registry:
    services = [
        Service(name="ssh", port=2200, port_end=2200, transport="tcp", description="Shell"),
        Service(name="http", port=80, port_end=80, transport="tcp", description="Web"),
        Service(
            name="gadget", port=7000, port_end=7000, transport="tcp", description="Gadget over TLS"
        ),
    ]
    return Registry(services, info=RegistryInfo(source="test", date="", path="", entries=3))


def test_default_ports_come_from_the_given_registry_only() -> None:
    registry = _tiny_registry()
    assert parse_endpoint("ssh://h", registry=registry).port == 2200
    gadget = parse_endpoint("gadget://h", registry=registry)
    assert (gadget.port, gadget.port_source, gadget.tls) == (7000, "registry", True)
    assert parse_endpoint("h:gadget", registry=registry).port == 7000
    with pytest.raises(EndpointError, match="no registered default port for scheme 'imaps'"):
        parse_endpoint("imaps://h", registry=registry)
