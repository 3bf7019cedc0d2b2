"""The results model, where the scan package's modules have always imported it from.

It lives in :mod:`portkit.results` (a layer below ``scan`` and ``report``).
"""

from portkit.results import (
    Batches,
    CountKey,
    Identification,
    PortResult,
    PortState,
    ResultBatch,
    TlsInfo,
    nmap_service,
)

__all__ = [
    "Batches",
    "CountKey",
    "Identification",
    "PortResult",
    "PortState",
    "ResultBatch",
    "TlsInfo",
    "nmap_service",
]
