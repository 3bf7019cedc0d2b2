"""The registry's names for a scan's ports, computed in a forked process meanwhile.

Naming every port of a sweep (the ``expected`` field of each result) means loading
the registry and building a table of 65,536 entries: about a tenth of a second of
Python, as long as the rest of a small scan's start-up. :class:`BackgroundNames` forks
a process that builds the table (with :func:`portkit.scan._scan.expected_names`, the
same function, so the same answers) and sends it back through a pipe, while the scan
itself starts at once. The engine holds its results until :meth:`poll` has the table.

If the process fails for any reason, the table is built here instead: slower, never
different.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
from collections.abc import Callable, Sequence

__all__ = ["BackgroundNames"]

Names = Sequence[str | None]


class BackgroundNames:
    """A table of names being built by ``build`` in a forked process."""

    def __init__(self, build: Callable[[], Names]) -> None:
        self._build = build
        self._names: Names | None = None
        self._buffer = bytearray()
        read_fd, write_fd = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:  # pragma: no cover - runs in the forked process
            os.close(read_fd)
            self._child(write_fd)
        os.close(write_fd)
        os.set_blocking(read_fd, False)
        self._fd: int | None = read_fd

    def fileno(self) -> int | None:
        """The descriptor to watch while the table is on its way (None once it is here)."""
        return self._fd

    def poll(self) -> Names | None:
        """The table if it has arrived, else None (never blocks)."""
        if self._names is None and self._fd is not None:
            while True:
                try:
                    chunk = os.read(self._fd, 1 << 20)
                except BlockingIOError:
                    return None
                if not chunk:
                    self._finish()
                    break
                self._buffer += chunk
        return self._names

    def wait(self) -> Names:
        """The table, waiting for it if need be."""
        if self._names is None and self._fd is not None:
            os.set_blocking(self._fd, True)
            while chunk := os.read(self._fd, 1 << 20):
                self._buffer += chunk
            self._finish()
        assert self._names is not None
        return self._names

    def close(self) -> None:
        """Stop the process if it is still working; idempotent."""
        if self._fd is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            os.close(self._fd)
            self._fd = None

    def _finish(self) -> None:
        assert self._fd is not None
        _pid, status = os.waitpid(self._pid, 0)
        os.close(self._fd)
        self._fd = None
        names: Names | None = None
        if os.waitstatus_to_exitcode(status) == 0:
            with contextlib.suppress(Exception):
                names = pickle.loads(self._buffer)
        self._buffer = bytearray()
        # The process failed (or said nothing sensible): build it here, same answers.
        self._names = names if isinstance(names, list) else self._build()

    def _child(self, write_fd: int) -> None:  # pragma: no cover - in the forked process
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the scan decides when to stop
            signal.set_wakeup_fd(-1)  # the scan's event loop is not ours
            data = memoryview(pickle.dumps(list(self._build()), pickle.HIGHEST_PROTOCOL))
            while data:
                data = data[os.write(write_fd, data) :]
            code = 0
        finally:
            os._exit(code)
