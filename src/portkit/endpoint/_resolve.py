"""The asynchronous step after parsing: an endpoint's addresses and DNS SRV records."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from typing import Literal

from portkit._errors import EndpointError, ResolveError
from portkit.endpoint._oserror import network_error
from portkit.endpoint._parse import Endpoint, parse_endpoint

__all__ = ["DEFAULT_RESOLVE_TIMEOUT", "Address", "Resolution", "SrvRecord", "resolve", "srv_name"]

_FAMILIES: dict[int, Literal["ipv4", "ipv6"]] = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6"}

#: Seconds allowed for each phase: the address lookup, then the SRV query.
DEFAULT_RESOLVE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Address:
    """One address a client may connect to."""

    family: Literal["ipv4", "ipv6"]
    address: str
    port: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SrvRecord:
    """One DNS SRV record (RFC 2782): a server for the service, and its preference."""

    priority: int  #: lower is tried first
    weight: int  #: among equal priorities, the share of load
    port: int
    target: str  #: the server's host name, without the final dot; "." means "no service"


@dataclass(frozen=True, slots=True, kw_only=True)
class Resolution:
    """What DNS said about an endpoint."""

    endpoint: Endpoint
    addresses: tuple[Address, ...] = ()
    srv_name: str | None = None  #: the name queried, ``_imaps._tcp.example.com``
    srv: tuple[SrvRecord, ...] = ()


def srv_name(endpoint: Endpoint) -> str:
    """Return the SRV owner name for an endpoint: ``_service._transport.host`` (RFC 2782).

    Raises:
        EndpointError: the endpoint has no service name, or its host is an address.
    """
    service = endpoint.service or endpoint.scheme
    if service is None:
        raise EndpointError(
            f"no service name for an SRV lookup in {endpoint.text!r}; "
            "use a URL or host:service (example.com:imaps)"
        )
    if endpoint.host_type != "domain":
        raise EndpointError(f"an SRV lookup needs a domain name, not {endpoint.host!r}")
    return f"_{service}._{endpoint.transport}.{endpoint.host}"


async def resolve(
    endpoint: Endpoint | str,
    *,
    addresses: bool = True,
    srv: bool = False,
    nameserver: str | None = None,
    nameserver_port: int = 53,
    lookup_timeout: float = DEFAULT_RESOLVE_TIMEOUT,
) -> Resolution:
    """Look up an endpoint's addresses (IPv4 and IPv6) and, on request, its SRV records.

    Addresses come from the event loop's ``getaddrinfo`` (the system resolver, so
    ``/etc/hosts`` applies); SRV records from dnspython's asynchronous resolver.

    Args:
        endpoint: a parsed endpoint, or text for :func:`parse_endpoint`
            (``"http://localhost:8080/"``, ``"example.com:imaps"``).
        addresses: look up the host's addresses.
        srv: also query ``_service._transport.host`` for SRV records.
        nameserver: the DNS server for the SRV query (default: the system's).
        nameserver_port: that server's port.
        lookup_timeout: seconds allowed for each lookup (addresses, then SRV).

    Raises:
        ResolveError: the host does not resolve, or DNS failed or timed out.
        EndpointError: ``endpoint`` is text that does not parse, or ``srv`` was asked
            for an endpoint that has no SRV name.
    """
    if isinstance(endpoint, str):
        endpoint = parse_endpoint(endpoint)
    name = srv_name(endpoint) if srv else None  # bad requests fail before any I/O
    found: tuple[Address, ...] = ()
    if addresses:
        found = await _addresses(endpoint, lookup_timeout)
    records: tuple[SrvRecord, ...] = ()
    if name is not None:
        records = await _srv_records(name, nameserver, nameserver_port, lookup_timeout)
    return Resolution(endpoint=endpoint, addresses=found, srv_name=name, srv=records)


async def _addresses(endpoint: Endpoint, lookup_timeout: float) -> tuple[Address, ...]:
    loop = asyncio.get_running_loop()
    sock_type = socket.SOCK_DGRAM if endpoint.transport == "udp" else socket.SOCK_STREAM
    flags = socket.AI_NUMERICHOST if endpoint.host_type != "domain" else 0
    try:
        async with asyncio.timeout(lookup_timeout):
            infos = await loop.getaddrinfo(
                endpoint.host, endpoint.port, type=sock_type, flags=flags
            )
    except TimeoutError:
        raise ResolveError(
            f"resolving {endpoint.host!r} timed out after {lookup_timeout:g} s"
        ) from None
    except socket.gaierror as exc:
        raise network_error(exc, endpoint.host) from None
    seen: dict[tuple[str, str], Address] = {}
    for family, _type, _proto, _canon, sockaddr in infos:
        fam = _FAMILIES.get(family)
        if fam is None:  # getaddrinfo may list other families; only IP is connectable
            continue
        address = str(sockaddr[0])
        seen.setdefault((fam, address), Address(family=fam, address=address, port=endpoint.port))
    return tuple(seen.values())


async def _srv_records(
    name: str, nameserver: str | None, nameserver_port: int, lookup_timeout: float
) -> tuple[SrvRecord, ...]:
    import dns.asyncresolver
    import dns.exception
    import dns.rdatatype
    import dns.resolver

    try:
        resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
    except dns.exception.DNSException as exc:
        raise ResolveError(f"no DNS configuration for the SRV query {name!r}: {exc}") from None
    if nameserver is not None:
        resolver.nameservers = [nameserver]
        resolver.port = nameserver_port
    resolver.lifetime = lookup_timeout
    try:
        answer = await resolver.resolve(name, dns.rdatatype.SRV, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return ()
    except dns.exception.Timeout:
        raise ResolveError(f"the SRV query {name!r} timed out after {lookup_timeout:g} s") from None
    except dns.exception.DNSException as exc:
        raise ResolveError(f"the SRV query {name!r} failed: {exc}") from None
    if answer.rrset is None:
        return ()
    records = [
        SrvRecord(
            priority=int(rdata.priority),
            weight=int(rdata.weight),
            port=int(rdata.port),
            target=rdata.target.to_text(omit_final_dot=True) or ".",
        )
        for rdata in answer.rrset
    ]
    # RFC 2782: lowest priority first; higher weight first among equals (for display).
    records.sort(key=lambda r: (r.priority, -r.weight, r.target, r.port))
    return tuple(records)
