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
    def port(self) -> int | None: ...

    @property
    def description(self) -> str: ...

    @property
    def note(self) -> str: ...


class ServiceDirectory(Protocol):
    """What endpoint parsing needs from the registry (``portkit.registry.default_registry()``)."""

    def by_name(self, name: str, transport: str | None = None) -> Sequence[_ServiceEntry]: ...

    def by_port(self, port: int, transport: str | None = None) -> Sequence[_ServiceEntry]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class SchemeAlias:
    """A scheme (or common service nickname) whose IANA service name is different."""

    service: str
    #: ``None``: derive "TLS is conventional" from the registry's description.
    tls: bool | None = None
    why: str


# The one alias map: URL schemes whose name is not (or not only) the IANA service name.
# Keys are lower-case scheme names; values name the IANA service whose registered port
# and transport apply. Nicknames the registry itself knows as aliases (postgres ->
# postgresql, smtps -> submissions, dns -> domain, vnc -> rfb) need no entry here.
SCHEME_ALIASES: Mapping[str, SchemeAlias] = MappingProxyType(
    {
        "ws": SchemeAlias(service="http", why="RFC 6455 section 3: ws uses HTTP's port"),
        "wss": SchemeAlias(service="https", why="RFC 6455 section 3: wss uses HTTPS's port"),
        "mqtts": SchemeAlias(
            service="secure-mqtt", tls=True, why="IANA names MQTT over TLS secure-mqtt"
        ),
        "sftp": SchemeAlias(
            service="ssh",
            why="SFTP runs over SSH; IANA's 'sftp' (115) is an older, unrelated protocol",
        ),
        "scp": SchemeAlias(service="ssh", why="scp runs over SSH"),
        "rediss": SchemeAlias(
            service="redis", tls=True, why="redis over TLS on redis's port (redis-py, Jedis)"
        ),
        "xmpp": SchemeAlias(service="xmpp-client", why="RFC 6120: clients connect to xmpp-client"),
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


def service_info(
    name: str, registry: ServiceDirectory, transports: Sequence[str] = _TRANSPORTS
) -> ServiceInfo:
    """Resolve a scheme or service name to its registered port, transport and TLS convention.

    Names are matched as the registry matches them (case-insensitive, aliases too), after
    :data:`SCHEME_ALIASES`. TCP wins when the service is registered for both TCP and UDP,
    unless ``transports`` names only one.

    Raises:
        LookupNotFound: the registry knows no port for ``name``.
    """
    key = name.lower()
    alias = SCHEME_ALIASES.get(key)
    wanted = alias.service if alias else key
    for transport in transports:
        entries = [e for e in registry.by_name(wanted, transport) if e.port is not None]
        if not entries:
            continue
        primary = entries[0]
        assert primary.port is not None  # filtered above; narrows the type
        if alias is not None and alias.tls is not None:
            tls = alias.tls
        else:
            tls = any(describes_tls(e.description) for e in entries)
        return ServiceInfo(
            name=key,
            service=primary.name,
            port=primary.port,
            transport=transport,
            tls=tls,
            alias=alias,
        )
    only = f" over {transports[0]}" if len(transports) == 1 else ""
    raise LookupNotFound(f"no registered port for service {name!r}{only}")
