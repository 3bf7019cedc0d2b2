"""Saved scans (``portkit scan -o json``, schema 1) for the console's ``/scans`` pages.

Only files directly inside the configured directory, named like ``name.json``, are
listed or opened; a file is read whole (at most :data:`MAX_SCAN_BYTES`) and checked to be a
portkit scan before anything is shown. Every string in it is shown escaped (the pages are
autoescaped templates): a scan records what remote servers said about themselves.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from portkit._errors import PortkitError

__all__ = ["MAX_SCAN_BYTES", "ScanFile", "ScanRow", "list_scans", "load_scan"]

MAX_SCAN_BYTES = 32 * 1024 * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.json")


class ScanFileError(PortkitError):
    """A file in the scans directory is not a readable portkit scan."""


@dataclasses.dataclass(frozen=True, slots=True)
class ScanFile:
    name: str
    size: int
    modified: datetime


@dataclasses.dataclass(frozen=True, slots=True)
class ScanRow:
    """One port of one host, as the table shows it."""

    host: str
    port: int
    transport: str
    state: str
    reason: str
    expected: str  # the registry's name for the port, "" when none
    service: str  # what answered, "" when not identified
    product: str
    tls: str
    unexpected: bool  # something answered that is not what the registry expects there


def list_scans(directory: Path) -> list[ScanFile]:
    """The saved scans in ``directory``, newest first."""
    files = []
    for path in directory.iterdir():
        if _NAME.fullmatch(path.name) and path.is_file():
            st = path.stat()
            files.append(ScanFile(path.name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
    return sorted(files, key=lambda f: f.modified, reverse=True)


def scan_path(directory: Path, name: str) -> Path | None:
    """The file called ``name`` directly in ``directory``, or None (never anything else)."""
    if not _NAME.fullmatch(name):
        return None
    path = directory / name
    return path if path.is_file() else None


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _unexpected(expected: str, service: str) -> bool:
    if not expected or not service:
        return False
    # "https" on the "http" port's TLS sibling, "imaps" for "imap": the same family.
    a, b = expected.lower(), service.lower()
    return not (a == b or a.startswith(b) or b.startswith(a))


def load_scan(path: Path) -> tuple[dict[str, Any], list[ScanRow]]:
    """The scan's header (``scan`` and ``summary``) and one row per listed port."""
    if path.stat().st_size > MAX_SCAN_BYTES:
        raise ScanFileError(f"{path.name!r} is larger than {MAX_SCAN_BYTES} bytes")
    try:
        doc = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ScanFileError(f"{path.name!r} is not JSON: {exc}") from None
    if (
        not isinstance(doc, dict)
        or doc.get("schema") != 1
        or not isinstance(doc.get("hosts"), list)
    ):
        raise ScanFileError(f"{path.name!r} is not a portkit scan (portkit scan -o json, schema 1)")
    rows = []
    for host in doc["hosts"]:
        if not isinstance(host, dict):
            continue
        for port in host.get("ports") or []:
            if not isinstance(port, dict):
                continue
            ident = port.get("identified") if isinstance(port.get("identified"), dict) else {}
            assert isinstance(ident, dict)
            tls = ident.get("tls") if isinstance(ident.get("tls"), dict) else None
            expected, service = _text(port.get("expected")), _text(ident.get("service"))
            product = " ".join(
                _text(ident.get(k)) for k in ("product", "version", "extra") if ident.get(k)
            )
            rows.append(
                ScanRow(
                    host=_text(host.get("hostname") or host.get("address")),
                    port=int(port.get("port") or 0),
                    transport=_text(port.get("transport")),
                    state=_text(port.get("state")),
                    reason=_text(port.get("reason")),
                    expected=expected,
                    service=service,
                    product=product,
                    tls=(
                        f"{_text(tls.get('version'))} {_text(tls.get('subject'))}".strip()
                        if tls
                        else ""
                    ),
                    unexpected=_unexpected(expected, service),
                )
            )
    header: dict[str, Any] = {
        "scan": doc.get("scan") if isinstance(doc.get("scan"), dict) else {},
        "summary": doc.get("summary") if isinstance(doc.get("summary"), dict) else {},
        "hosts": len(doc["hosts"]),
    }
    return header, rows
