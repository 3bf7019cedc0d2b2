"""Network namespaces for benchmarks and tests: created fresh, always deleted.

Traffic of a scan or load run stays inside the namespace (its own loopback), so it
neither reaches other machines nor meets the listeners that come and go on the host's.
Needs root and iproute2. Importable from the tests as ``bench._netns``.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["namespace", "python_in_namespace"]


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


@contextmanager
def python_in_namespace(ns: str, script: str, args: list[str], *, what: str) -> Iterator[None]:
    """Run ``python -c script args`` inside ``ns`` while the block runs.

    The script prints ``ready`` once it serves and exits when its stdin closes, which is how
    the block's end stops it. ``what`` names it in the error when it does not start.
    """
    proc = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"{what} did not start")
        yield
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=30)
