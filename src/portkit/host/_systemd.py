"""The two systemd conventions a daemon speaks: readiness notification and socket activation.

- ``sd_notify``: when ``NOTIFY_SOCKET`` is set, send ``READY=1`` (and ``RELOADING=1``,
  ``STOPPING=1``, ``STATUS=...``) as one datagram to that AF_UNIX socket; a leading ``@``
  means the abstract namespace (sd_notify(3)).
- Socket activation: when ``LISTEN_PID`` is our pid, file descriptors 3 .. 3+LISTEN_FDS-1 are
  listening sockets passed in, named by ``LISTEN_FDNAMES`` (colon-separated)
  (sd_listen_fds(3)). The variables are removed after reading so children do not see them.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["SD_LISTEN_FDS_START", "inherited_sockets", "notify"]

log = logging.getLogger("portkit.host")

SD_LISTEN_FDS_START = 3


def notify(*fields: str) -> bool:
    """Send ``fields`` (``"READY=1"``, ...) to ``NOTIFY_SOCKET``; False when not set."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto("\n".join(fields).encode(), address)
        except OSError as exc:
            log.warning("cannot notify %r: %s", os.environ.get("NOTIFY_SOCKET"), exc)
            return False
    return True


def inherited_sockets(*, unset: bool = True) -> list[tuple[str, socket.socket]]:
    """The listening sockets passed by socket activation, as ``(name, socket)`` pairs.

    Only TCP stream sockets that are listening are returned; others are reported and left
    alone. An fd without a name gets ``""``.
    """
    pid, count = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")
    names_text = os.environ.get("LISTEN_FDNAMES", "")
    if unset:
        for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(var, None)
    if not pid or not count or not pid.isdigit() or int(pid) != os.getpid():
        return []
    if not count.isdigit():
        log.warning("ignoring LISTEN_FDS=%r: not a number", count)
        return []
    names = names_text.split(":") if names_text else []
    result = []
    for index in range(int(count)):
        fd = SD_LISTEN_FDS_START + index
        name = names[index] if index < len(names) else ""
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            log.warning("ignoring inherited fd %d (%s): %s", fd, name or "unnamed", exc)
            continue
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_ACCEPTCONN
        ):
            log.warning("ignoring inherited fd %d (%s): not a listening TCP socket", fd, name)
            sock.detach()
            continue
        os.set_inheritable(fd, False)
        sock.setblocking(False)
        result.append((name, sock))
    return result
