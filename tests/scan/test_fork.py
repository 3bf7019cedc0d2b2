"""Forked scan processes let go of the caller's descriptors without freeing their numbers."""

from __future__ import annotations

import os
import select
import socket
from typing import Any

from portkit.scan._fork import Messages, fork_process, send


def _run(work: Any) -> list[tuple[str, Any]]:
    pid, read_fd = fork_process(work)
    messages = Messages()
    out: list[tuple[str, Any]] = []
    try:
        while True:
            select.select([read_fd], [], [], 10)
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            out += messages.feed(chunk)
    finally:
        os.close(read_fd)
        os.waitpid(pid, 0)
    return out


def test_a_stale_object_of_the_caller_cannot_close_the_childs_socket() -> None:
    # The caller's socket object lives on in the child (Python objects are copied by
    # fork); closing it there must not close whatever the child opened since.
    stale, peer = socket.socketpair()
    with stale, peer:

        async def work(fd: int) -> None:
            fresh = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            reused = fresh.fileno() == stale.fileno()
            stale.close()
            kind = fresh.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)  # EBADF if closed
            fresh.close()
            send(fd, "done", (reused, kind))

        assert _run(work) == [("done", (False, socket.SOCK_DGRAM))]


def test_the_child_holds_none_of_the_callers_files() -> None:
    marker, peer = socket.socketpair()  # stands for the event loop's epoll set and sockets
    with marker, peer:
        info = os.fstat(marker.fileno())

        async def work(fd: int) -> None:
            held = set()
            for name in os.listdir("/proc/self/fd"):
                try:
                    found = os.stat(f"/proc/self/fd/{name}")
                except OSError:
                    continue
                held.add((found.st_dev, found.st_ino))
            send(fd, "held", sorted(held))

        [(kind, held)] = _run(work)
    assert kind == "held"
    assert held  # the pipe at least: the check sees something
    assert (info.st_dev, info.st_ino) not in {tuple(h) for h in held}
