"""Plain output helpers shared by the commands: aligned tables, JSON, output files.

These avoid importing rich so that quick commands start fast; long-running commands
(scan, serve) use rich for progress where a terminal is attached.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
from collections.abc import Iterator, Sequence

from portkit._columns import format_table

TYPE_CHECKING = False  # not `typing` at run time: it is on every command's start-up path
if TYPE_CHECKING:
    from typing import Any, TextIO

__all__ = ["format_table", "open_outputs", "print_json", "print_table"]


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], *, file: TextIO | None = None
) -> None:
    print(format_table(headers, rows), file=file or sys.stdout)


def print_json(value: Any, *, file: TextIO | None = None) -> None:
    import json  # here, not at the top: quick commands that print tables do not pay for it

    json.dump(value, file or sys.stdout, indent=2, ensure_ascii=False)
    (file or sys.stdout).write("\n")


def _aside(path: str) -> tuple[str, str] | None:
    """(temporary name, final name) to write ``path`` aside and rename it into place;
    ``None`` when ``path`` is no regular file to replace (``/dev/null``, a pipe)."""
    real = os.path.realpath(path)  # a symbolic link: its target is what gets replaced
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        mode = stat.S_IFREG
    except OSError:
        return None  # let open() name the problem
    if not stat.S_ISREG(mode):
        return None
    head, name = os.path.split(real)
    return os.path.join(head, f".{name}.{os.getpid()}.tmp"), real


@contextlib.contextmanager
def open_outputs(paths: Sequence[str | None]) -> Iterator[list[TextIO]]:
    """One text stream per path (``None``: stdout), each file opened before any is written.

    A file is written aside and renamed into place when the block ends normally, so a
    reader sees the old file or the whole new one, never half a report; when the block
    raises, the partial files are removed and the old ones stay. Devices and pipes
    (``/dev/null``, a FIFO) are written directly.

    Raises:
        UsageError: a file cannot be created.
    """
    from portkit._errors import UsageError

    streams: list[TextIO] = []
    renames: list[tuple[str, str]] = []
    try:
        for path in paths:
            if path is None:
                streams.append(sys.stdout)
                continue
            if os.path.isdir(path):
                raise UsageError(f"cannot write output file {path!r}: it is a directory")
            names = _aside(path)
            try:
                handle = open(path if names is None else names[0], "w", encoding="utf-8")  # noqa: SIM115 (closed below)
            except OSError as exc:
                raise UsageError(f"cannot write output file {path!r}: {exc.strerror}") from None
            streams.append(handle)
            if names is not None:
                renames.append(names)
        yield streams
        for stream in streams:
            if stream is not sys.stdout:
                stream.close()  # flushed: an error writing it is raised here
        for aside, final in renames:
            os.replace(aside, final)
        renames.clear()
    finally:
        for stream in streams:
            if stream is not sys.stdout:
                stream.close()
        for aside, _final in renames:  # not renamed: the block failed
            with contextlib.suppress(FileNotFoundError):
                os.unlink(aside)
