"""Plain output helpers shared by the commands: aligned tables and JSON.

These avoid importing rich so that quick commands start fast; long-running commands
(scan, serve) use rich for progress where a terminal is attached.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["format_table", "print_json", "print_table"]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Return ``rows`` as left-aligned columns under ``headers``, one line per row."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, file: TextIO | None = None
) -> None:
    print(format_table(headers, rows), file=file or sys.stdout)


def print_json(value: Any, *, file: TextIO | None = None) -> None:
    json.dump(value, file or sys.stdout, indent=2, ensure_ascii=False)
    (file or sys.stdout).write("\n")
