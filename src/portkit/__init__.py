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
from portkit._lazy import lazy_attributes as _lazy_attributes
from portkit._version import __version__ as __version__

# Not `typing`: importing it costs every `portkit` command a few milliseconds of start-up,
# and type checkers treat any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from portkit.client import free_ports, listening_sockets
    from portkit.endpoint import Endpoint, parse_endpoint, parse_host_service, resolve
    from portkit.host import Host, load_config
    from portkit.registry import Registry, Service, default_registry
    from portkit.scan import Identification, PortResult, PortState, TlsInfo, identify, scan
del TYPE_CHECKING  # not part of the package's namespace

# The rest of the public API is imported on first use, so that `import portkit` (and so
# every `portkit` command) does not pay for asyncio, aiohttp or ada-url up front.
_LAZY = {
    "Endpoint": "portkit.endpoint",
    "Host": "portkit.host",
    "Identification": "portkit.scan",
    "PortResult": "portkit.scan",
    "PortState": "portkit.scan",
    "Registry": "portkit.registry",
    "Service": "portkit.registry",
    "TlsInfo": "portkit.scan",
    "default_registry": "portkit.registry",
    "free_ports": "portkit.client",
    "identify": "portkit.scan",
    "listening_sockets": "portkit.client",
    "load_config": "portkit.host",
    "parse_endpoint": "portkit.endpoint",
    "parse_host_service": "portkit.endpoint",
    "resolve": "portkit.endpoint",
    "scan": "portkit.scan",
}


__getattr__ = _lazy_attributes(__name__, globals(), _LAZY)


__all__ = [
    "ConfigError",
    "ConnectTimeout",
    "ConnectionRefused",
    "Endpoint",
    "EndpointError",
    "Host",
    "Identification",
    "LocalProtocolError",
    "LookupNotFound",
    "NetworkError",
    "PortResult",
    "PortSpecError",
    "PortState",
    "PortkitError",
    "PrivilegeError",
    "ProtocolError",
    "Registry",
    "RegistryError",
    "RegistryFileError",
    "RemoteProtocolError",
    "ResolveError",
    "Service",
    "TargetError",
    "TlsInfo",
    "UsageError",
    "default_registry",
    "free_ports",
    "identify",
    "listening_sockets",
    "load_config",
    "parse_endpoint",
    "parse_host_service",
    "resolve",
    "scan",
]
