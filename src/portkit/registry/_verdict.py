"""What the registry's name for a port and the service that answers there say together.

One judgement for every place that shows it (the demo's directory, the HTML report):

- ``match``: the registered service answers (its name or one of its aliases);
- ``alternate``: a usual alternate port for what answers. The registered name may say the
  protocol (``pcsync-https`` on 8443, ``http-alt`` on 8080), or the registry's notes name
  what usually runs there besides its registered service ("HTTP alternate" on 8081);
- ``unexpected``: registered to one service, another answers (SSH on 80);
- ``unregistered``: nothing is registered on the port;
- ``unidentified``: something answers, but no protocol matched.
"""

from __future__ import annotations

import re

from portkit.registry._index import Registry

__all__ = ["port_verdict"]


def port_verdict(
    registry: Registry, port: int, transport: str, expected: str | None, actual: str | None
) -> str:
    """The kind of agreement between ``expected`` (the registry's name) and ``actual``."""
    if not actual:
        return "unidentified"
    if expected is None:
        return "unregistered"
    if actual == expected:
        return "match"
    entries = registry.by_port(port, transport)
    if any(actual in entry.names for entry in entries):
        return "match"
    words = {word for entry in entries for word in entry.name.split("-")}
    notes = " ".join(entry.note for entry in entries)
    if actual in words or re.search(rf"\b{re.escape(actual)}\b", notes, re.IGNORECASE):
        return "alternate"
    return "unexpected"
