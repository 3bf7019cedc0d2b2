"""The client side: talk to an application, see who listens here, find a free port.

- :func:`listening_sockets` — this machine's listening sockets and their owners;
- :func:`free_ports` — ports free to bind now, away from well-known and dev ports;
- :func:`connect` — a port-aware netcat: bytes between two streams and an endpoint.
"""

from portkit.client._free_port import ephemeral_range, free_ports, is_free
from portkit.client._listening import ListeningSocket, Listing, listening_sockets

__all__ = [
    "ListeningSocket",
    "Listing",
    "ephemeral_range",
    "free_ports",
    "is_free",
    "listening_sockets",
]
