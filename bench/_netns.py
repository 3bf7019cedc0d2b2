"""Network namespaces for benchmarks and tests: created fresh, always deleted.

Traffic of a scan or load run stays inside the namespace (its own loopback), so it
neither reaches other machines nor meets the listeners that come and go on the host's.
Needs root and iproute2. Importable from the tests as ``bench._netns``.
"""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["namespace"]


@contextmanager
def namespace(prefix: str, *, loopback: bool = True) -> Iterator[str]:
    """Yield the name of a new namespace ``<prefix><random hex>``; delete it on the way out.

    Args:
        prefix: the start of the name, e.g. ``"pk-scan-"`` (project namespaces start ``pk-``).
        loopback: bring its loopback interface up (a fresh namespace has it down).
    """
    name = f"{prefix}{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        if loopback:
            subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
