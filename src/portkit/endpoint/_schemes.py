"""URL schemes and service names as the registry knows them: default port, transport, TLS.

This module holds the one place where a URL scheme's name differs from its IANA
service name (``postgres`` is IANA's ``postgresql``). Every port number comes from
the registry; nothing here repeats a port table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from portkit._errors import LookupNotFound

__all__ = [
    "SCHEME_ALIASES",
    "SchemeAlias",
    "ServiceDirectory",
    "ServiceInfo",
    "describes_tls",
    "service_info",
]


class _ServiceEntry(Protocol):
    """The parts of a registry ``Service`` that endpoint parsing reads."""

    @property
    def name(self) -> str: ...

    @property
    def description(self) -> str: ...


class ServiceDirectory(Protocol):
    """What endpoint parsing needs from the registry (``portkit.registry.default_registry()``)."""

    def port_for(self, name: str, transport: str, /) -> int: ...

    def by_name(self, name: str, transport: str | None = None) -> Sequence[_ServiceEntry]: ...

    def service_name(self, port: int, transport: str, /) -> str | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SchemeAlias:
    """A scheme (or common service nickname) whose IANA service name is different."""

    service: str
    #: ``None``: derive "TLS is conventional" from the registry's description.
    tls: bool | None = None
    why: str


# The one alias map. Keys are lower-case scheme / service names as people type them;
# values name the IANA service whose registered port and transport apply.
SCHEME_ALIASES: Mapping[str, SchemeAlias] = MappingProxyType(
    {
        "ws": SchemeAlias(service="http", why="RFC 6455 section 3: ws uses HTTP's port"),
        "wss": SchemeAlias(service="https", why="RFC 6455 section 3: wss uses HTTPS's port"),
        "postgres": SchemeAlias(service="postgresql", why="libpq URIs accept postgres://"),
        "smtps": SchemeAlias(
            service="submissions", why="RFC 8314 section 7.3: mail submission over TLS, 465"
        ),
        "mqtts": SchemeAlias(
            service="secure-mqtt", tls=True, why="IANA names MQTT over TLS secure-mqtt"
        ),
        "sftp": SchemeAlias(
            service="ssh",
            why="SFTP runs over SSH; IANA's 'sftp' (115) is an older, unrelated protocol",
        ),
        "scp": SchemeAlias(service="ssh", why="scp runs over SSH"),
        "vnc": SchemeAlias(service="rfb", why="RFC 7869: vnc URIs speak RFB"),
        "rediss": SchemeAlias(
            service="redis", tls=True, why="redis over TLS on redis's port (redis-py, Jedis)"
        ),
        "xmpp": SchemeAlias(service="xmpp-client", why="RFC 6120: clients connect to xmpp-client"),
        "dns": SchemeAlias(service="domain", why="IANA names DNS 'domain'"),
        "ircs": SchemeAlias(service="ircs-u", why="RFC 7194: IRC over TLS"),
    }
)

# A registry description announcing TLS: "http protocol over TLS/SSL", "SIP-TLS",
# "IMAP over TLS protocol"; but not "CalDAV - non-TLS".
_TLS_WORD = re.compile(r"(?<![A-Za-z])(?<!non-)(?:TLS|SSL)(?![A-Za-z])")

_TRANSPORTS = ("tcp", "udp")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceInfo:
    """A scheme or service name resolved against the registry."""

    name: str  #: what the caller typed, lower-cased (``postgres``)
    service: str  #: the IANA service name (``postgresql``)
    port: int
    transport: str
    tls: bool
    alias: SchemeAlias | None = None


def describes_tls(description: str) -> bool:
    """Return whether a registry description says the service runs over TLS/SSL."""
    return _TLS_WORD.search(description) is not None


def service_info(name: str, registry: ServiceDirectory) -> ServiceInfo:
    """Resolve a scheme or service name to its registered port, transport and TLS convention.

    TCP wins when the service is registered for both TCP and UDP.

    Raises:
        LookupNotFound: the registry knows no port for ``name``.
    """
    key = name.lower()
    alias = SCHEME_ALIASES.get(key)
    service = alias.service if alias else key
    for transport in _TRANSPORTS:
        try:
            port = registry.port_for(service, transport)
        except LookupNotFound:
            continue
        if alias is not None and alias.tls is not None:
            tls = alias.tls
        else:
            tls = any(describes_tls(s.description) for s in registry.by_name(service, transport))
        return ServiceInfo(
            name=key, service=service, port=port, transport=transport, tls=tls, alias=alias
        )
    raise LookupNotFound(f"no registered port for service {name!r}")
