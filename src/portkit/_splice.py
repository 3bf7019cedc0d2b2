"""Bulk byte moving for the event loop: ``splice`` through a pipe, and files to sockets.

The forward application (socket -> socket) and ``portkit connect`` (a socket <-> stdin
and stdout) move bulk bytes the same way: the kernel moves pages from the source into
a pipe and from the pipe into the destination (``splice(2)``), without a copy through
Python's memory. A regular file goes to a socket through one reused buffer (see
:func:`file_copy` for why not ``sendfile``). Both sides are driven without blocking: a
call that would block (``EAGAIN``) waits for the descriptor in the running event loop.

Below the client and the host; of portkit's it imports only the error root.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
from collections.abc import Callable

from portkit._errors import PortkitError

__all__ = [
    "CHUNK",
    "HAVE_SPLICE",
    "SpliceUnsupported",
    "file_copy",
    "splice_copy",
    "wait_readable",
    "wait_writable",
]

CHUNK = 256 * 1024  # bytes asked of one splice call
FILE_CHUNK = 1024 * 1024  # bytes read from a regular file at a time
PIPE_SIZE = 1024 * 1024  # the pipe's capacity: a bigger pipe means fewer round trips
HAVE_SPLICE = hasattr(os, "splice")
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)
#: What a descriptor pair that cannot be spliced (an O_APPEND file, a terminal, an old
#: kernel) answers on the first call; anything else is a real error.
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ESPIPE})


class SpliceUnsupported(PortkitError):
    """The descriptors cannot be spliced; copy another way.

    Raised only before the destination has taken any byte. ``pending`` holds what the
    source had already given up (it was in the pipe): it goes to the destination first.
    Not an :class:`OSError`: a caller's ``except OSError`` (a reset, a closed pipe) must
    not take it for a failure of the connection.
    """

    def __init__(self, cause: OSError, pending: bytes = b"") -> None:
        self.errno = cause.errno
        self.strerror = (cause.strerror or str(cause)).lower()
        super().__init__(f"cannot splice: {self.strerror}")
        self.pending = pending


async def wait_readable(fd: int) -> None:
    """Wait until ``fd`` is readable (or has hung up)."""
    await _wait(fd, reading=True)


async def wait_writable(fd: int) -> None:
    """Wait until ``fd`` can take more bytes."""
    await _wait(fd, reading=False)


async def _wait(fd: int, *, reading: bool) -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not future.done():
            future.set_result(None)

    if reading:
        loop.add_reader(fd, ready)
    else:
        loop.add_writer(fd, ready)
    try:
        await future
    finally:
        if reading:
            loop.remove_reader(fd)
        else:
            loop.remove_writer(fd)


async def _wait_writable_within(
    fd: int, limit: float | None, expired: Callable[[], Exception]
) -> None:
    if limit is None:
        await wait_writable(fd)
        return
    try:
        async with asyncio.timeout(limit):
            await wait_writable(fd)
    except TimeoutError:
        raise expired() from None


def _never() -> Exception:  # pragma: no cover - only called with a timeout set
    return TimeoutError(errno.ETIMEDOUT, "send timeout")


async def splice_copy(
    src: int,
    dst: int,
    moved: Callable[[int], None],
    *,
    send_timeout: float | None = None,
    expired: Callable[[], Exception] = _never,
    pollable_dst: bool = True,
) -> None:
    """Move bytes ``src`` -> pipe -> ``dst`` until ``src``'s end of file.

    ``src`` is a socket or a pipe; ``dst`` a socket, a pipe, a regular file or a device
    that takes splices (``/dev/null``). ``moved`` is called with each batch once ``dst``
    has taken all of it. Waiting longer than ``send_timeout`` for ``dst`` to take more
    raises ``expired()``. A ``dst`` that is not ``pollable_dst`` (a regular file) never
    says it would block, so it is never waited for.

    Raises:
        SpliceUnsupported: the very first splice of either side was refused as
            unsupported (nothing has reached ``dst``).
        OSError: the rest (a reset, a broken pipe), as the system raised it.
    """
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, F_SETPIPE_SZ, PIPE_SIZE)
        first = True
        while True:
            try:
                n = os.splice(src, write_end, CHUNK, flags=_FLAGS)
            except BlockingIOError:
                await wait_readable(src)
                continue
            except OSError as exc:
                if first and exc.errno in _UNSUPPORTED:
                    raise SpliceUnsupported(exc) from exc
                raise
            if n == 0:
                return
            pending = n
            waited = False
            while pending:  # the pipe is empty again before the next read
                try:
                    pending -= os.splice(read_end, dst, pending, flags=_FLAGS)
                except BlockingIOError:
                    if not pollable_dst:
                        raise
                    await _wait_writable_within(dst, send_timeout, expired)
                    waited = True
                except OSError as exc:
                    if first and exc.errno in _UNSUPPORTED:
                        raise SpliceUnsupported(exc, _drain(read_end, pending)) from exc
                    raise
                first = False
            moved(n)
            if not waited:
                # A source that always has more and a destination that never blocks
                # (/dev/null) would keep the loop to itself: let the other direction
                # and the idle watchdog run.
                await asyncio.sleep(0)
    finally:
        os.close(read_end)
        os.close(write_end)


def _drain(read_end: int, size: int) -> bytes:
    """Read the ``size`` bytes still in the pipe (they are there: no waiting)."""
    parts = []
    while size > 0:
        part = os.read(read_end, size)
        parts.append(part)
        size -= len(part)
    return b"".join(parts)


async def file_copy(
    src: int,
    sock: int,
    moved: Callable[[int], None],
    *,
    send_timeout: float | None = None,
    expired: Callable[[], Exception] = _never,
) -> None:
    """Send regular file ``src`` from its current offset to its end into socket ``sock``.

    Read into one reused buffer and sent from it, not ``sendfile(2)``: over loopback,
    a socket fed from the page cache by ``sendfile`` (or ``splice``) was slower to drain
    for its reader (0.8x, against socat's sink and against a reader taking 1 MiB at a
    time) than one fed by ``send`` from a buffer of 64 KiB or more (docs/benchmarks.md).
    A partial send leaves the file's offset where the bytes stopped being read.
    """
    buffer = bytearray(FILE_CHUNK)
    while True:
        n = os.readv(src, [buffer])
        if n == 0:
            return
        view = memoryview(buffer)[:n]
        while view:
            try:
                view = view[os.write(sock, view) :]
            except BlockingIOError:
                await _wait_writable_within(sock, send_timeout, expired)
        moved(n)
        # A file never blocks: give the other direction (and the idle watchdog) a turn.
        await asyncio.sleep(0)
