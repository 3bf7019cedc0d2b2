"""What the host view shows: the applications of this host, their ports and counters.

The console runs inside ``portkit serve`` beside the applications it shows. It finds its
host through :data:`portkit.host._host.HOSTS` (the hosts alive in this process): the one
running an application whose context is the console's own. Counters are the same objects
``portkit serve --status`` reads (:meth:`Host.status`), sampled once a second for the
sparklines.

Each port is compared with the registry: the well-known port of the service a kind speaks
(web → http, 80), and what the registry says about the port actually used.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import time
from typing import TYPE_CHECKING, Any

from portkit.host._app import AppContext

if TYPE_CHECKING:
    from portkit.host._host import Host

__all__ = ["History", "PortNote", "describe_port", "find_host", "host_document"]

#: kind -> the registry service it speaks, plain and over TLS.
KIND_SERVICES: dict[str, tuple[str, str]] = {
    "web": ("http", "https"),
    "video": ("http", "https"),
    "console": ("http", "https"),
    "smtp": ("smtp", "submissions"),
    "pop3": ("pop3", "pop3s"),
    "imap": ("imap", "imaps"),
    "echo": ("echo", "echo"),
}

#: Samples kept per application for the sparkline (one a second).
HISTORY = 60


@dataclasses.dataclass(frozen=True, slots=True)
class PortNote:
    """How a port compares with the registry."""

    service: str | None  # the service the kind speaks, e.g. "http"
    well_known: int | None  # that service's registered port
    standard: bool
    registered: str  # what the registry has on the port used, e.g. "http-alt (HTTP Alternate)"
    reason: str  # one sentence a person reads

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@functools.lru_cache(maxsize=1024)
def describe_port(kind: str, port: int, *, tls: bool = False) -> PortNote:
    """Compare ``port`` with the registry's well-known port for what ``kind`` speaks."""
    from portkit._errors import PortkitError
    from portkit.registry import default_registry

    registry = default_registry()
    entries = registry.by_port(port, "tcp")
    registered = ""
    if entries:
        top = entries[0]
        registered = f"{top.name} ({top.description})" if top.description else top.name
        if top.note:
            registered += f"; in practice: {top.note}"
    pair = KIND_SERVICES.get(kind)
    if pair is None:
        return PortNote(None, None, False, registered, f"a {kind} application has no standard port")
    service = pair[1] if tls else pair[0]
    try:
        well_known: int | None = registry.port_for(service, "tcp")
    except PortkitError:
        well_known = None
    if well_known == port:
        reason = f"{port} is the registered port of {service}"
        return PortNote(service, well_known, True, registered, reason)
    if well_known is None:
        reason = f"{service} has no registered port"
    else:
        where = f"the registry lists {registered}" if registered else "nothing is registered"
        reason = f"{service} is registered on {well_known}; on {port} {where}"
    return PortNote(service, well_known, False, registered, reason)


def find_host(ctx: AppContext) -> Host | None:
    """The host running the application whose context is ``ctx``, if any."""
    from portkit.host._host import HOSTS

    for host in list(HOSTS):
        app = host.apps.get(ctx.name)
        if app is not None and app.ctx is ctx:
            return host
    return None


class History:
    """Per application: traffic (bytes in + out) and new connections per second."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, int, int]] = {}
        self.series: dict[str, collections.deque[tuple[int, int]]] = {}

    def sample(self, doc: dict[str, Any]) -> None:
        now = time.monotonic()
        names = set()
        for app in doc["apps"]:
            name = app["name"]
            names.add(name)
            c = app["counters"]
            traffic, total = c["bytes_in"] + c["bytes_out"], c["connections_total"]
            last = self._last.get(name)
            series = self.series.setdefault(name, collections.deque(maxlen=HISTORY))
            if last is not None:
                # A restarted application (reload) starts from zero: no negative rates.
                series.append((max(traffic - last[1], 0), max(total - last[2], 0)))
            self._last[name] = (now, traffic, total)
        for gone in [n for n in self.series if n not in names]:
            del self.series[gone]
            self._last.pop(gone, None)


def host_document(host: Host | None, history: History | None = None) -> dict[str, Any]:
    """The ``GET /api/host`` document: the host's status, each port described."""
    if host is None:
        return {"pid": None, "apps": []}
    doc = host.status()
    for app in doc["apps"]:
        options = host.config.app(app["name"]).options
        tls = getattr(options, "tls", False)
        tls = tls is True or tls == "implicit"
        ports = []
        for address in app["listen"]:
            port = int(address.rsplit(":", 1)[1])
            ports.append(
                {
                    "address": address,
                    "port": port,
                    **describe_port(app["kind"], port, tls=tls).as_json(),
                }
            )
        app["ports"] = ports
        app["tls"] = tls
        if history is not None:
            app["history"] = list(history.series.get(app["name"], ()))
    return doc
