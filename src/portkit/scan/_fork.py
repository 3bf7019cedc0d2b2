"""Forked helper processes of the scanner: started clean, talking over one pipe.

A child made by ``fork`` inside a running event loop holds a copy of every descriptor
of its parent: the loop's epoll set, its self-pipe, every socket in flight. Sharing an
epoll set is how one process's ``EPOLL_CTL`` calls corrupt the other's (epoll(7):
registrations belong to the open file, not to the process), and a socket the parent
closes stays open in the child. So each forked helper of the scanner lets go of all
of them but the few it was made to use (:func:`portkit._inherited.silence_inherited`).

:func:`fork_process` is the one way the scan forks a process that runs Python work
(the scan's extra processes, shards run in processes of their own): the child gets a
fresh event loop and a pipe, sends framed messages (:func:`send`) and exits; the
parent reads them with a :class:`Messages` buffer. (The SYN engine's packet sender is
a C-speed loop of its own, ``_rawsend``; it closes what it inherited too.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import struct
from collections.abc import Callable, Coroutine
from typing import Any

from portkit._errors import PortkitError
from portkit._inherited import silence_inherited

__all__ = ["Messages", "fork_process", "send"]

_HEADER = struct.Struct("!I")  # the length of one pickled (kind, payload) message


def send(fd: int, kind: str, payload: object) -> None:
    """Write one message (``kind``, ``payload``) to the pipe ``fd``, whole."""
    import pickle  # here: a scan that forks nothing does not pay its import

    data = pickle.dumps((kind, payload), protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


class Messages:
    """The parent's side of a forked process's pipe: bytes in, whole messages out."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, chunk: bytes) -> list[tuple[str, Any]]:
        """Add what was read; return the messages now complete.

        Raises:
            PortkitError: the process reported an error (its one-line message).
        """
        import pickle

        buffer = self._buffer
        buffer += chunk
        out: list[tuple[str, Any]] = []
        while len(buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(buffer)
            if len(buffer) < _HEADER.size + size:
                break
            kind, payload = pickle.loads(buffer[_HEADER.size : _HEADER.size + size])
            del buffer[: _HEADER.size + size]
            if kind == "error":
                raise PortkitError(f"scan process failed: {payload}")
            out.append((kind, payload))
        return out


def fork_process(work: Callable[[int], Coroutine[Any, Any, None]]) -> tuple[int, int]:
    """Fork a process that runs ``work(write_fd)`` in an event loop of its own.

    The child keeps none of this process's descriptors but its end of the pipe,
    ignores Ctrl-C (the parent decides when to stop), reports an exception as an
    ``error`` message and exits. Returns (its pid, the non-blocking read end).
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked process
        code = 0
        try:
            import asyncio  # here: the parent may run without it (_loopless)

            silence_inherited(write_fd)  # the parent's loop, sockets and pipes are not ours
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.set_wakeup_fd(-1)
            asyncio.events._set_running_loop(None)  # the parent's loop is not ours
            loop = asyncio.new_event_loop()
            loop.run_until_complete(work(write_fd))
        except BaseException as exc:  # report it to the parent, whatever it is
            message = str(exc) if isinstance(exc, PortkitError) else f"{type(exc).__name__}: {exc}"
            with contextlib.suppress(OSError):
                send(write_fd, "error", message)
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    os.set_blocking(read_fd, False)
    return pid, read_fd
