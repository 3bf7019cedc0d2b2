"""Endpoint resolution: from a URL, ``host:port`` or ``host:service`` to where to connect.

:func:`parse_endpoint` is pure (no I/O): it returns a frozen :class:`Endpoint` that keeps
the explicit port, the default port and the effective port apart and says where the
effective one came from. :func:`resolve` is the separate, asynchronous DNS step.
"""

from typing import TYPE_CHECKING, Any

from portkit.endpoint._authority import bracket_host, host_port
from portkit.endpoint._parse import (
    Endpoint,
    EndpointForm,
    HostType,
    PortSource,
    parse_endpoint,
    parse_host_service,
)
from portkit.endpoint._schemes import SCHEME_ALIASES, SchemeAlias, ServiceDirectory

if TYPE_CHECKING:
    from portkit.endpoint._oserror import network_error
    from portkit.endpoint._resolve import (
        DEFAULT_RESOLVE_TIMEOUT,
        Address,
        Resolution,
        SrvRecord,
        resolve,
        srv_name,
    )

# The resolve step imports asyncio and the OS-error mapping socket; load them on first
# use so that parsing (and `import portkit`) stays cheap for quick commands.
_LAZY = frozenset(
    {"DEFAULT_RESOLVE_TIMEOUT", "Address", "Resolution", "SrvRecord", "resolve", "srv_name"}
)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from portkit.endpoint import _resolve

        return getattr(_resolve, name)
    if name == "network_error":
        from portkit.endpoint._oserror import network_error

        return network_error
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_RESOLVE_TIMEOUT",
    "SCHEME_ALIASES",
    "Address",
    "Endpoint",
    "EndpointForm",
    "HostType",
    "PortSource",
    "Resolution",
    "SchemeAlias",
    "ServiceDirectory",
    "SrvRecord",
    "bracket_host",
    "host_port",
    "network_error",
    "parse_endpoint",
    "parse_host_service",
    "resolve",
    "srv_name",
]
