"""The client side: talk to an application, see who listens here, find a free port.

- :func:`listening_sockets` — this machine's listening sockets and their owners;
- :func:`free_ports` — ports free to bind now, away from well-known and dev ports;
- :func:`converse` — a port-aware netcat: bytes between a source, a sink and an
  application over TCP, with implicit TLS or STARTTLS;
- :func:`converse_udp` — the same with UDP datagrams;
- :func:`listen` — netcat's listen mode: wait for one peer (TCP or UDP), then talk.

The connection half (asyncio, ssl) is imported on first use, so that ``portkit
listening`` and ``portkit free-port`` start without it.
"""

from __future__ import annotations

from portkit._lazy import lazy_attributes as _lazy_attributes

TYPE_CHECKING = False  # not `typing` at run time: `portkit listening` starts faster
if TYPE_CHECKING:
    from portkit.client._connect import (
        DEFAULT_CONNECT_TIMEOUT,
        Conversation,
        Timeouts,
        TlsError,
        converse,
        crlf,
        read_fd,
        tls_context,
        write_fd,
    )
    from portkit.client._free_port import ephemeral_range, free_ports, is_free
    from portkit.client._listen import DEFAULT_BIND, listen
    from portkit.client._listening import ListeningSocket, Listing, listening_sockets
    from portkit.client._udp import MAX_DATAGRAM, UDP_LINGER, converse_udp

__all__ = [
    "DEFAULT_BIND",
    "DEFAULT_CONNECT_TIMEOUT",
    "MAX_DATAGRAM",
    "UDP_LINGER",
    "Conversation",
    "ListeningSocket",
    "Listing",
    "Timeouts",
    "TlsError",
    "converse",
    "converse_udp",
    "crlf",
    "ephemeral_range",
    "free_ports",
    "is_free",
    "listen",
    "listening_sockets",
    "read_fd",
    "tls_context",
    "write_fd",
]

# Which private module holds each name, imported on first use: a command pays only for
# what it uses (`portkit listening` neither for asyncio and ssl nor for pathlib).
_LAZY = {
    "ephemeral_range": "._free_port",
    "free_ports": "._free_port",
    "is_free": "._free_port",
    "ListeningSocket": "._listening",
    "Listing": "._listening",
    "listening_sockets": "._listening",
    "DEFAULT_CONNECT_TIMEOUT": "._connect",
    "Conversation": "._connect",
    "Timeouts": "._connect",
    "TlsError": "._connect",
    "converse": "._connect",
    "crlf": "._connect",
    "read_fd": "._connect",
    "write_fd": "._connect",
    "tls_context": "._connect",
    "DEFAULT_BIND": "._listen",
    "listen": "._listen",
    "MAX_DATAGRAM": "._udp",
    "UDP_LINGER": "._udp",
    "converse_udp": "._udp",
}


__getattr__ = _lazy_attributes(__name__, globals(), _LAZY)
