"""What a forked process does with the descriptors it inherited.

Both the scanner's helper processes and the host's workers are forked from a process
with a running event loop; neither may keep its parent's files (the loop's epoll set,
sockets in flight, other children's pipes).
"""

from __future__ import annotations

import contextlib
import os

__all__ = ["silence_inherited"]


def silence_inherited(*keep: int) -> None:
    """Point every descriptor above standard error except ``keep`` at ``/dev/null``.

    Run in the child, after fork. Closing them would free their numbers for the child's
    own sockets while the parent's Python objects (its loop, sockets, log handlers) still
    hold them: a stale object closed or written later would hit the child's socket (a log
    handler writing its lines into a client's connection). Pointed at ``/dev/null``, the
    numbers stay taken and those objects are harmless, while the open files themselves
    (the epoll set among them) are released all the same.
    """
    kept = set(keep)
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        try:
            held = [int(name) for name in os.listdir("/proc/self/fd")]
        except OSError:  # no /proc: every number that may be open
            held = list(range(3, os.sysconf("SC_OPEN_MAX")))
        for fd in held:
            if fd > 2 and fd not in kept and fd != null:
                with contextlib.suppress(OSError):  # the listing's own, closed by now
                    os.dup2(null, fd, inheritable=False)
    finally:
        os.close(null)
