"""Every error portkit raises derives from one root, :class:`PortkitError`.

The tree is split by who is at fault and by phase, so callers can catch exactly
what they mean and the CLI can map each branch to one exit code::

    PortkitError
    ├── UsageError              the caller's input is wrong (CLI exit 2)
    │   ├── PortSpecError       "-p 5-1", "70000", "nosuchservice"
    │   ├── EndpointError       a URL / host:port / service that cannot be parsed
    │   ├── TargetError         "10.0.0.0/33", an empty target list
    │   ├── ConfigError         a serve configuration that does not validate
    │   └── LookupNotFound      a registry query that matched nothing
    ├── RegistryError           registry data missing, corrupt or not importable
    │   └── RegistryFileError   a CSV the user gave us is not the IANA registry (also a
    │                           UsageError: exit 2)
    ├── PrivilegeError          needs root / CAP_NET_RAW / a low port (exit 5)
    ├── NetworkError            the network said no (exit 1, or the subclass's code)
    │   ├── ConnectionRefused   nothing listens there (exit 3)
    │   ├── ConnectTimeout      no answer in time (exit 4)
    │   ├── ResolveError        a name did not resolve
    │   ├── TlsError            a TLS handshake failed (client.TlsError)
    │   └── BindError           a listening socket could not be bound (host._host.BindError)
    ├── ProtocolError           bytes that break a protocol
    │   ├── LocalProtocolError  we were asked to send something illegal
    │   └── RemoteProtocolError the peer sent something illegal
    ├── MaildropLocked          another session holds a POP3 maildrop (mail._store)
    ├── MessageGone             another session removed a message (mail._store)
    └── DemoError               a part of ``portkit demo`` did not work (portkit.demo)

The classes marked with a module live beside the code that raises them; they are still
part of this tree, and ``tests/test_errors.py`` walks every module of the package to keep
it that way (with the few internal control-flow signals it names, and why).

Messages are lower case, name the problem and quote the bad value, e.g.
``port must be 0-65535, not 70000``.
"""

from __future__ import annotations

__all__ = [
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PRIVILEGE",
    "EXIT_REFUSED",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
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

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_TIMEOUT = 4
EXIT_PRIVILEGE = 5
EXIT_INTERRUPTED = 130


class PortkitError(Exception):
    """The root of every error portkit raises."""

    exit_code: int = EXIT_FAILURE


class UsageError(PortkitError):
    """The caller's input is wrong; nothing was done."""

    exit_code = EXIT_USAGE


class PortSpecError(UsageError):
    """A port specification that cannot be parsed or is out of range."""


class EndpointError(UsageError):
    """A URL, ``host:port`` or ``host:service`` that cannot be parsed."""


class TargetError(UsageError):
    """A scan target (address, CIDR block, range, file) that cannot be parsed."""


class ConfigError(UsageError):
    """A configuration file that does not validate."""


class LookupNotFound(UsageError):
    """A registry query that matched nothing."""


class RegistryError(PortkitError):
    """Registry data is missing, corrupt, or could not be imported."""


class RegistryFileError(RegistryError, UsageError):
    """A registry file the user supplied (``--from``, a download) is not importable."""


class PrivilegeError(PortkitError):
    """The operation needs privileges this process does not have."""

    exit_code = EXIT_PRIVILEGE


class NetworkError(PortkitError):
    """The network refused, dropped or failed an operation."""


class ConnectionRefused(NetworkError):
    """The peer answered that nothing listens on that port."""

    exit_code = EXIT_REFUSED


class ConnectTimeout(NetworkError):
    """The peer did not answer within the time allowed."""

    exit_code = EXIT_TIMEOUT


class ResolveError(NetworkError):
    """A host name did not resolve."""


class ProtocolError(PortkitError):
    """Bytes that break a protocol's rules."""


class LocalProtocolError(ProtocolError):
    """We were asked to do something the protocol forbids."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids."""
