"""Discovery: which applications a computer runs, on which ports, and what answers.

``async for result in scan(targets, ports)`` probes every (address, port) and yields a
:class:`PortResult` for each as soon as it is known; ``identify`` says what answers on one.

Identification pulls in every protocol matcher, so its names are imported on first
use (PEP 562): ``portkit scan`` without ``--detect`` starts without them.
"""

from typing import TYPE_CHECKING, Any

from portkit.results import Identification, PortResult, PortState, TlsInfo
from portkit.scan._ports import PortSet, parse_ports
from portkit.scan._scan import ScanPlan, plan_scan, scan, scan_batches
from portkit.scan._targets import Target, TargetSpec, parse_target, parse_targets
from portkit.scan._top import top_ports

if TYPE_CHECKING:
    from portkit.scan._identify import (
        DEFAULT_BUDGET,
        identify,
        nmap_service,
        probe_port,
        same_protocol,
    )

__all__ = [
    "DEFAULT_BUDGET",
    "Identification",
    "PortResult",
    "PortSet",
    "PortState",
    "ScanPlan",
    "Target",
    "TargetSpec",
    "TlsInfo",
    "identify",
    "nmap_service",
    "parse_ports",
    "parse_target",
    "parse_targets",
    "plan_scan",
    "probe_port",
    "same_protocol",
    "scan",
    "scan_batches",
    "top_ports",
]

_FROM_IDENTIFY = {"DEFAULT_BUDGET", "identify", "nmap_service", "probe_port", "same_protocol"}


def __getattr__(name: str) -> Any:
    if name in _FROM_IDENTIFY:
        from portkit.scan import _identify

        return getattr(_identify, name)
    raise AttributeError(f"module 'portkit.scan' has no attribute {name!r}")
