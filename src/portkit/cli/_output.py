"""Plain output helpers shared by the commands: aligned tables and JSON.

These avoid importing rich so that quick commands start fast; long-running commands
(scan, serve) use rich for progress where a terminal is attached.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from portkit._columns import format_table

TYPE_CHECKING = False  # not `typing` at run time: it is on every command's start-up path
if TYPE_CHECKING:
    from typing import Any, TextIO

__all__ = ["format_table", "print_json", "print_table"]


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, file: TextIO | None = None
) -> None:
    print(format_table(headers, rows), file=file or sys.stdout)


def print_json(value: Any, *, file: TextIO | None = None) -> None:
    import json  # here, not at the top: quick commands that print tables do not pay for it

    json.dump(value, file or sys.stdout, indent=2, ensure_ascii=False)
    (file or sys.stdout).write("\n")
