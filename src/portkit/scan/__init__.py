"""Discovery: which applications a computer runs, on which ports, and what answers."""

from portkit.scan._identify import (
    DEFAULT_BUDGET,
    identify,
    nmap_service,
    probe_port,
    same_protocol,
)
from portkit.scan._model import Identification, PortResult, PortState, TlsInfo

__all__ = [
    "DEFAULT_BUDGET",
    "Identification",
    "PortResult",
    "PortState",
    "TlsInfo",
    "identify",
    "nmap_service",
    "probe_port",
    "same_protocol",
]
