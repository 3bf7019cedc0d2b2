"""portkit: the port layer of networked software.

A computer has one address and many server applications, each listening on its own
port; a client reaches the one it wants by address *and* port. portkit makes that
system real: a registry of well-known ports, endpoint resolution, a host for server
applications, clients, and discovery of what answers where.
"""

from portkit._errors import (
    ConfigError,
    ConnectionRefused,
    ConnectTimeout,
    EndpointError,
    LocalProtocolError,
    LookupNotFound,
    NetworkError,
    PortkitError,
    PortSpecError,
    PrivilegeError,
    ProtocolError,
    RegistryError,
    RegistryFileError,
    RemoteProtocolError,
    ResolveError,
    TargetError,
    UsageError,
)

__all__ = [
    "ConfigError",
    "ConnectTimeout",
    "ConnectionRefused",
    "EndpointError",
    "LocalProtocolError",
    "LookupNotFound",
    "NetworkError",
    "PortSpecError",
    "PortkitError",
    "PrivilegeError",
    "ProtocolError",
    "RegistryError",
    "RegistryFileError",
    "RemoteProtocolError",
    "ResolveError",
    "TargetError",
    "UsageError",
]
