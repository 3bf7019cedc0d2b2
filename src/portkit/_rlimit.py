"""The open-files limit, raised once by the programs that hold many sockets.

``portkit serve`` holds a socket per client and ``portkit scan`` one per probe in flight;
both ask for as many descriptors as the hard limit allows before they start.
"""

from __future__ import annotations

import resource

__all__ = ["raise_fd_limit"]

# An unlimited hard limit cannot be the soft limit (the kernel caps it at fs.nr_open);
# a million descriptors is more than either program uses.
_UNLIMITED_AS = 1 << 20


def raise_fd_limit(*, warn: bool = False) -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit now in force.

    A container may forbid the change; the old limit stays and is returned. ``warn`` logs
    that as a warning (a server's operator should know its ceiling), otherwise at debug
    level (a scan fits its window to whatever limit it has).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, _UNLIMITED_AS)
    if soft >= hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        import logging  # only here: a scan's start-up need not pay for it

        log = logging.getLogger("portkit")
        level = logging.WARNING if warn else logging.DEBUG
        log.log(level, "cannot raise the open-files limit from %d to %d: %s", soft, hard, exc)
        return soft
    return hard
