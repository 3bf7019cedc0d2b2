"""What a forked helper process does first: let go of its parent's descriptors.

A child made by ``fork`` inside a running event loop holds a copy of every descriptor
of its parent: the loop's epoll set, its self-pipe, every socket in flight. Sharing an
epoll set is how one process's ``EPOLL_CTL`` calls corrupt the other's (epoll(7):
registrations belong to the open file, not to the process), and a socket the parent
closes stays open in the child. So each forked helper of the scanner closes all of
them but the few it was made to use.
"""

from __future__ import annotations

import os

__all__ = ["close_inherited"]


def close_inherited(*keep: int) -> None:
    """Close every descriptor above stderr except ``keep`` (in the child, after fork)."""
    start = 3
    for fd in sorted(k for k in set(keep) if k >= start):
        os.closerange(start, fd)  # close_range(2) on Linux: one system call
        start = fd + 1
    os.closerange(start, os.sysconf("SC_OPEN_MAX"))
