"""``host:port`` as people and URLs write it: an IPv6 address goes in brackets.

RFC 3986 section 3.2.2 puts an IPv6 literal in brackets so that its colons are not read
as the port's; every message, table and URL portkit writes uses these two functions, so
``[::1]:8080`` reads the same everywhere.
"""

from __future__ import annotations

__all__ = ["bracket_host", "host_port"]


def bracket_host(host: str) -> str:
    """``host`` as it stands before ``:port``: IPv6 addresses bracketed, others as given."""
    # Only an IPv6 address has a colon among the host forms (names, IPv4, IPv6 with an
    # optional %zone); one already bracketed is left as it is.
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 ``host`` bracketed (``[::1]:8080``)."""
    return f"{bracket_host(host)}:{port}"
