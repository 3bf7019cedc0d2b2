"""Running a scan's coroutines without an event loop.

A connect, SYN or UDP scan in one process waits on one thing only: its transport's
descriptors, or the scheduler's next deadline (:func:`~portkit.scan._drive.drive`).
Importing asyncio to do that costs a one-port scan about a fifth of its run (asyncio
brings ssl, concurrent.futures, logging and inspect with it), so such a scan runs under
:func:`run_loopless` instead: a coroutine runner whose only wait is :class:`Wait`, one
``poll`` call. Anything else (identification, forked processes, a cluster, a host
timeout) runs under ``asyncio.run`` as before; code that may run under either asks
:func:`running_loop` which it is under.

Ctrl-C behaves as under ``asyncio.run``: the first one is thrown into the coroutine at
the wait it is in (or its next one) as :class:`Cancelled`, so that it can stop and
report what it has, and comes out of the runner as KeyboardInterrupt if the coroutine
lets it through (or ends before a wait); a second one raises KeyboardInterrupt at once.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import sys
from collections.abc import Coroutine, Generator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from asyncio import AbstractEventLoop
    from types import FrameType

__all__ = ["Cancelled", "Wait", "cancellations", "run_loopless", "running_loop"]

T = TypeVar("T")


class Cancelled(BaseException):
    """Thrown into a coroutine run by :func:`run_loopless` on Ctrl-C (asyncio's
    CancelledError, for a coroutine with no event loop)."""


class Wait:
    """Await this, under :func:`run_loopless`, to sleep until one of ``fds`` is readable
    or ``delay`` seconds have passed (None: no time limit)."""

    __slots__ = ("delay", "fds")

    def __init__(self, fds: Sequence[int], delay: float | None) -> None:
        self.fds = fds
        self.delay = delay

    def __await__(self) -> Generator[Wait, None, None]:
        yield self


def running_loop() -> AbstractEventLoop | None:
    """The asyncio event loop running in this thread, or None (run by :func:`run_loopless`).

    Asks without importing asyncio: a loop can only be running if it is imported.
    """
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        loop: AbstractEventLoop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return loop


def cancellations() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "cancelled" here: :class:`Cancelled`, and asyncio's
    CancelledError where asyncio is imported (for ``except cancellations():``)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return (Cancelled,)
    return (Cancelled, asyncio.CancelledError)


def _wait(fds: Sequence[int], delay: float | None) -> None:
    """Sleep until one of ``fds`` is readable or ``delay`` seconds have passed.

    A poll(2) made for each wait, not an epoll set kept between them: the descriptors
    may be closed and their numbers reused between two waits (a scan's TCP engine, then
    its UDP engine), which a kept set would silently stop watching. poll() rounds the
    delay up to the next millisecond: it never wakes before a deadline.
    """
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    poller.poll(None if delay is None else max(0.0, delay) * 1000)


def run_loopless(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to its end in this thread, with no event loop; return its value.

    ``main`` may await only :class:`Wait` (and bare yields, which return at once);
    anything else (an asyncio future) is a RuntimeError thrown into it.
    """
    interrupted = cancelled = False
    thrown: BaseException | None = None
    # As asyncio.run: Ctrl-C is caught only where nobody has set a handler of their
    # own, and only in the main thread (elsewhere the calls below raise ValueError).
    catch = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    wakeup: tuple[socket.socket, socket.socket] | None = None
    old_wakeup = -1

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        nonlocal interrupted
        if interrupted:
            raise KeyboardInterrupt  # the second Ctrl-C: now
        interrupted = True

    if catch:
        # The signal's byte on this socket ends the wait (PEP 475 would retry it).
        wakeup = socket.socketpair()
        for end in wakeup:
            end.setblocking(False)
        try:
            old_wakeup = signal.set_wakeup_fd(wakeup[1].fileno(), warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            for end in wakeup:
                end.close()
            wakeup = None
            catch = False
        else:
            signal.signal(signal.SIGINT, on_sigint)
    try:
        while True:
            try:
                request = main.send(None) if thrown is None else main.throw(thrown)
            except StopIteration as done:
                if interrupted and not cancelled:
                    raise KeyboardInterrupt from None  # it ended before it could be told
                value: T = done.value
                return value
            except Cancelled:
                if cancelled:
                    raise KeyboardInterrupt from None  # as asyncio.run: it did not stop itself
                raise
            thrown = None
            if interrupted and not cancelled:  # Ctrl-C while it ran: cancel it here
                cancelled = True
                thrown = Cancelled()
            elif isinstance(request, Wait):
                fds = list(request.fds)
                if wakeup is not None:
                    fds.append(wakeup[0].fileno())
                _wait(fds, request.delay)
                if wakeup is not None:
                    with contextlib.suppress(BlockingIOError):
                        wakeup[0].recv(4096)
                if interrupted and not cancelled:
                    cancelled = True
                    thrown = Cancelled()
            elif request is not None:
                thrown = RuntimeError(f"run_loopless cannot wait for {request!r}")
    finally:
        main.close()
        if wakeup is not None:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.set_wakeup_fd(old_wakeup)
            for end in wakeup:
                end.close()
