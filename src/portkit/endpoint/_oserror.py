"""An operating-system error met while reaching a peer, as a member of the error tree.

Connecting (``connect``, ``probe``, identification during ``scan``), sending a datagram
and resolving a name all meet the same few OS errors; this is the one place that says
which branch of :class:`~portkit.PortkitError` each belongs to, and so which exit code
the command line gives:

* a name that does not resolve is :class:`ResolveError`, a :class:`NetworkError`
  (exit 1) and not a usage error (exit 2): the name was well formed and the resolver
  answered; whether a name resolves depends on the machine and the moment (``/etc/hosts``,
  split DNS, a resolver that is down), not on how the command was written;
* refused is :class:`ConnectionRefused` (exit 3), no answer in time :class:`ConnectTimeout`
  (exit 4), anything else :class:`NetworkError` (exit 1) with the system's reason.
"""

from __future__ import annotations

import errno
import socket

from portkit._errors import ConnectionRefused, ConnectTimeout, NetworkError, ResolveError
from portkit.endpoint._authority import host_port

__all__ = ["network_error"]

_NO_ROUTE = (errno.ENETUNREACH, errno.EHOSTUNREACH)


def network_error(
    exc: OSError,
    host: str,
    port: int | None = None,
    *,
    action: str = "connect to",
    timeout: float | None = None,
) -> NetworkError:
    """The error to raise for ``exc``, met while trying to ``action`` ``host`` (``port``).

    ``timeout`` is the limit that ran out when ``exc`` is a :class:`TimeoutError`, for
    the message. Raise the result ``from`` ``exc`` (or ``from None`` where the chain adds
    nothing a user needs).
    """
    if isinstance(exc, socket.gaierror):
        return ResolveError(f"cannot resolve {host!r}: {_reason(exc)}")
    where = host_port(host, port) if port is not None else repr(host)
    if isinstance(exc, TimeoutError):
        within = f" within {timeout:g} s" if timeout is not None else ""
        return ConnectTimeout(f"no answer from {where}{within}")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectionRefused(f"connection to {where} refused: nothing listens there")
    if isinstance(exc, ConnectionResetError):
        return NetworkError(f"connection to {where} reset by peer during setup")
    reason = _reason(exc)
    if exc.errno in _NO_ROUTE:
        reason = f"{reason} (no route to it from this machine)"
    return NetworkError(f"cannot {action} {where}: {reason}")


def _reason(exc: OSError) -> str:
    # strerror is "Connection refused"-style; messages are lower case (the style of the
    # error tree), and an OSError raised without one still says something.
    return (exc.strerror or str(exc) or type(exc).__name__).lower()
