"""The client side: talk to an application, see who listens here, find a free port.

- :func:`listening_sockets` — this machine's listening sockets and their owners;
- :func:`free_ports` — ports free to bind now, away from well-known and dev ports;
- :func:`converse` — a port-aware netcat: bytes between a source, a sink and an application.
"""

from portkit.client._connect import (
    DEFAULT_CONNECT_TIMEOUT,
    Conversation,
    Timeouts,
    TlsError,
    converse,
    read_fd,
    tls_context,
)
from portkit.client._free_port import ephemeral_range, free_ports, is_free
from portkit.client._listening import ListeningSocket, Listing, listening_sockets

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "Conversation",
    "ListeningSocket",
    "Listing",
    "Timeouts",
    "TlsError",
    "converse",
    "ephemeral_range",
    "free_ports",
    "is_free",
    "listening_sockets",
    "read_fd",
    "tls_context",
]
