"""The client side: talk to an application, see who listens here, find a free port.

- :func:`listening_sockets` — this machine's listening sockets and their owners;
- :func:`free_ports` — ports free to bind now, away from well-known and dev ports;
- :func:`converse` — a port-aware netcat: bytes between a source, a sink and an application.

The connection half (asyncio, ssl) is imported on first use, so that ``portkit
listening`` and ``portkit free-port`` start without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from portkit.client._free_port import ephemeral_range, free_ports, is_free
from portkit.client._listening import ListeningSocket, Listing, listening_sockets

if TYPE_CHECKING:
    from portkit.client._connect import (
        DEFAULT_CONNECT_TIMEOUT,
        Conversation,
        Timeouts,
        TlsError,
        converse,
        read_fd,
        tls_context,
    )

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

_LAZY = frozenset(
    {
        "DEFAULT_CONNECT_TIMEOUT",
        "Conversation",
        "Timeouts",
        "TlsError",
        "converse",
        "read_fd",
        "tls_context",
    }
)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module("portkit.client._connect"), name)
    globals()[name] = value  # once imported, a plain module attribute
    return value
